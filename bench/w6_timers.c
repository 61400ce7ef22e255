/*
 * W6 timers: 100,000 tasks each sleep 10 ms and finish; the main task
 * joins them all. Prints the wall time over the 10 ms ideal (ms) and the
 * peak RSS. With a larger N it is the many-sleepers memory test. With
 * "shared" the sleepers are spawned with WEFT_TASK_SHARED_STACK: they run
 * on their worker's shared stack, and each holds only the bytes it used
 * while it sleeps.
 *   usage: w6_timers [TASKS [SLEEP_MS [shared]]]
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "weft.h"

static unsigned long ntasks, sleep_ms;
static struct weft_task_opts opts;
static _Atomic unsigned long done; /* sleepers run on every worker */

static void *sleeper(void *arg)
{
    if (weft_sleep(sleep_ms * WEFT_MSEC) < 0)
        return (void *)1;
    atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
    return arg;
}

static void *bench_main(void *arg)
{
    (void)arg;
    weft_task **t = malloc(ntasks * sizeof *t);
    uint64_t t0 = weft_now();
    for (unsigned long i = 0; i < ntasks; i++)
        if (weft_spawn_opts(&t[i], sleeper, NULL, &opts) < 0)
            return (void *)1;
    for (unsigned long i = 0; i < ntasks; i++)
        if (weft_join(t[i], NULL) < 0)
            return (void *)1;
    uint64_t t1 = weft_now();
    free(t);
    int ok = done == ntasks;
    double over = (double)(t1 - t0) / 1e6 - (double)sleep_ms;
    printf("w6_timers tasks=%lu sleep_ms=%lu stacks=%s ok=%d figure=%.1f unit=ms_over_ideal "
           "maxrss_kib=%ld\n",
           ntasks, sleep_ms, opts.flags ? "shared" : "own", ok, over, peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    ntasks = arg_or(argc, argv, 1, 100000);
    sleep_ms = arg_or(argc, argv, 2, 10);
    if (argc > 3) {
        if (strcmp(argv[3], "shared") != 0) {
            fprintf(stderr, "w6_timers: %s: the third argument can only be \"shared\"\n", argv[3]);
            return 2;
        }
        opts.flags = WEFT_TASK_SHARED_STACK;
    }
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
