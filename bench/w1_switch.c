/*
 * W1 switch: two tasks on ONE worker hand control to each other with a
 * plain weft_yield, 10,000,000 switches in all. Prints ns per switch.
 * With "shared" both are WEFT_TASK_SHARED_STACK tasks, so that every
 * switch copies one's stack bytes out and the other's in.
 *   usage: w1_switch [SWITCHES [shared]]
 */
#include <string.h>

#include "bench.h"
#include "weft.h"

static unsigned long per_task;
static struct weft_task_opts opts;

static void *yielder(void *arg)
{
    for (unsigned long i = 0; i < per_task; i++)
        weft_yield();
    return arg;
}

static void *bench_main(void *arg)
{
    unsigned long *switches = arg;
    weft_task *a, *b;
    if (weft_spawn_opts(&a, yielder, NULL, &opts) < 0 ||
        weft_spawn_opts(&b, yielder, NULL, &opts) < 0)
        return (void *)1;
    struct weft_stats s0, s1;
    weft_stats_get(&s0);
    uint64_t t0 = weft_now();
    weft_join(a, NULL);
    uint64_t t1 = weft_now();
    weft_join(b, NULL);
    weft_stats_get(&s1);
    *switches = s1.switches - s0.switches;
    double ns = (double)(t1 - t0) / (double)(2 * per_task);
    /* Shared stacks: each hand-over goes through the idle loop, where the
     * copies are made, which is two switches. */
    unsigned long hops = opts.flags ? 2 : 1;
    int ok = *switches >= 2 * per_task && *switches <= hops * 2 * per_task + 8;
    printf("w1_switch switches=%lu stacks=%s ok=%d figure=%.2f unit=ns/switch maxrss_kib=%ld\n",
           2 * per_task, opts.flags ? "shared" : "own", ok, ns, peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    per_task = arg_or(argc, argv, 1, 10000000) / 2;
    if (argc > 2) {
        if (strcmp(argv[2], "shared") != 0) {
            fprintf(stderr, "w1_switch: %s: the second argument can only be \"shared\"\n", argv[2]);
            return 2;
        }
        opts.flags = WEFT_TASK_SHARED_STACK;
    }
    unsigned long switches = 0;
    void *r = (void *)1;
    /* One worker, as W1 is defined: on more, each yield finds the other
     * task running elsewhere and nothing to switch to. WEFT_WORKERS still
     * overrides it, for the curious. */
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = 1;
    int err = weft_run(&cfg, bench_main, &switches, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
