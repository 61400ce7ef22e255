/*
 * W4 fib: naive task-parallel fib(30): fib(n) spawns fib(n-1) as a task,
 * computes fib(n-2) itself, joins; no cut-off (1,346,268 tasks). The
 * result must be 832040. Prints the wall time in ms and the peak RSS.
 *   usage: w4_fib [N]
 */
#include <stdint.h>

#include "bench.h"
#include "weft.h"

static void *fib(void *arg)
{
    uintptr_t n = (uintptr_t)arg;
    if (n < 2)
        return arg;
    weft_task *t;
    if (weft_spawn(&t, fib, (void *)(n - 1)) < 0)
        abort();
    uintptr_t y = (uintptr_t)fib((void *)(n - 2));
    void *x;
    if (weft_join(t, &x) < 0)
        abort();
    return (void *)((uintptr_t)x + y);
}

static unsigned long n_arg;

static uint64_t fib_plain(unsigned long n)
{
    return n < 2 ? n : fib_plain(n - 1) + fib_plain(n - 2);
}

static void *bench_main(void *arg)
{
    (void)arg;
    uint64_t t0 = weft_now();
    uint64_t r = (uintptr_t)fib((void *)(uintptr_t)n_arg);
    uint64_t t1 = weft_now();
    int ok = r == fib_plain(n_arg);
    struct weft_stats s;
    weft_stats_get(&s);
    printf("w4_fib workers=%u n=%lu result=%llu ok=%d figure=%.2f unit=ms wall_ms=%.2f "
           "maxrss_kib=%ld\n",
           s.workers, n_arg, (unsigned long long)r, ok, (double)(t1 - t0) / 1e6,
           (double)(t1 - t0) / 1e6, peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    n_arg = arg_or(argc, argv, 1, 30);
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
