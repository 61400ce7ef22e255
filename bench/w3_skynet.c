/*
 * W3 skynet: a 10-ary tree of tasks, 6 levels below the root: 1,000,000
 * leaves, leaf i returns i, each inner task spawns its 10 children, joins
 * them and returns their sum (1,111,111 tasks). The root's result must be
 * 499999500000. Prints the wall time of the tree in ms and the peak RSS.
 *
 * Children are joined newest first, the order in which a LIFO worker would
 * run them anyway: that lets a join find the child it waits for still
 * unstarted at the top of its own ring and run it inline
 * (docs/design/run-queues.md).
 *   usage: w3_skynet [LEVELS]
 */
#include <stdint.h>

#include "bench.h"
#include "weft.h"

struct node {
    uint64_t num;  /* first leaf number under this node */
    uint64_t size; /* leaves under this node */
};

static void *skynet(void *arg)
{
    struct node *n = arg;
    if (n->size == 1)
        return (void *)(uintptr_t)n->num;
    struct node kids[10];
    weft_task *t[10];
    uint64_t step = n->size / 10;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct node){n->num + (uint64_t)i * step, step};
        if (weft_spawn(&t[i], skynet, &kids[i]) < 0)
            abort();
    }
    uint64_t sum = 0;
    for (int i = 10; i-- > 0;) {
        void *v;
        if (weft_join(t[i], &v) < 0)
            abort();
        sum += (uintptr_t)v;
    }
    return (void *)(uintptr_t)sum;
}

static unsigned long levels;

static void *bench_main(void *arg)
{
    (void)arg;
    uint64_t leaves = 1;
    for (unsigned long i = 0; i < levels; i++)
        leaves *= 10;
    struct node root = {0, leaves};
    uint64_t t0 = weft_now();
    uint64_t sum = (uintptr_t)skynet(&root);
    uint64_t t1 = weft_now();
    int ok = sum == leaves * (leaves - 1) / 2;
    struct weft_stats s;
    weft_stats_get(&s);
    printf("w3_skynet workers=%u result=%llu ok=%d figure=%.2f unit=ms wall_ms=%.2f "
           "maxrss_kib=%ld\n",
           s.workers, (unsigned long long)sum, ok, (double)(t1 - t0) / 1e6,
           (double)(t1 - t0) / 1e6, peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    levels = arg_or(argc, argv, 1, 6);
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
