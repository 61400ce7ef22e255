/*
 * W2 spawn: the main task spawns 10,000 tasks that each return their
 * index, joins them all and sums the results; 100 rounds (1,000,000
 * tasks); the sum is checked. Prints ns per task (spawn + run + join).
 *   usage: w2_spawn [ROUNDS [TASKS]]
 */
#include <stdint.h>

#include "bench.h"
#include "weft.h"

static unsigned long rounds, per_round;

static void *ret_index(void *arg)
{
    return arg;
}

static void *bench_main(void *arg)
{
    (void)arg;
    weft_task **t = malloc(per_round * sizeof *t);
    uint64_t sum = 0;
    uint64_t t0 = weft_now();
    for (unsigned long r = 0; r < rounds; r++) {
        for (unsigned long i = 0; i < per_round; i++)
            if (weft_spawn(&t[i], ret_index, (void *)(uintptr_t)i) < 0)
                return (void *)1;
        for (unsigned long i = 0; i < per_round; i++) {
            void *v;
            if (weft_join(t[i], &v) < 0)
                return (void *)1;
            sum += (uintptr_t)v;
        }
    }
    uint64_t t1 = weft_now();
    free(t);
    uint64_t want = (uint64_t)rounds * (per_round * (per_round - 1) / 2);
    int ok = sum == want;
    printf("w2_spawn tasks=%lu sum=%llu ok=%d figure=%.1f unit=ns/task maxrss_kib=%ld\n",
           rounds * per_round, (unsigned long long)sum, ok,
           (double)(t1 - t0) / (double)(rounds * per_round), peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    rounds = arg_or(argc, argv, 1, 100);
    per_round = arg_or(argc, argv, 2, 10000);
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
