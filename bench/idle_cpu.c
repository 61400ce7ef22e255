/*
 * Idle CPU: what a runtime with nothing to do burns. The main task sleeps
 * for S seconds (default 2) while every other worker has nothing to run;
 * prints the process's CPU time (user + system, from getrusage) over the
 * sleep, in ms of CPU per second of wall time. An idle runtime should show
 * about 0: parked workers sleep on a futex, the sleeping worker on its
 * timer.
 *   usage: idle_cpu [SECONDS]
 */
#include <stdint.h>
#include <sys/resource.h>

#include "bench.h"
#include "weft.h"

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static unsigned long seconds;

static void *bench_main(void *arg)
{
    (void)arg;
    /* Let the other workers finish starting and park. */
    weft_sleep(50 * WEFT_MSEC);
    double c0 = cpu_ms();
    uint64_t t0 = weft_now();
    weft_sleep(seconds * WEFT_SEC);
    double c1 = cpu_ms();
    uint64_t t1 = weft_now();
    struct weft_stats s;
    weft_stats_get(&s);
    double wall_s = (double)(t1 - t0) / 1e9;
    printf("idle_cpu workers=%u wall_s=%.3f cpu_ms=%.3f figure=%.3f unit=cpu_ms/s "
           "maxrss_kib=%ld\n",
           s.workers, wall_s, c1 - c0, (c1 - c0) / wall_s, peak_rss_kib());
    return NULL;
}

int main(int argc, char **argv)
{
    seconds = arg_or(argc, argv, 1, 2);
    return weft_run(NULL, bench_main, NULL, NULL) == 0 ? 0 : 1;
}
