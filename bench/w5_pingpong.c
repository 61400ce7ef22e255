/*
 * W5 pingpong: two tasks pass a token back and forth through two
 * unbuffered (rendezvous) channels, 1,000,000 round trips. Prints ns per
 * round trip. The worker count comes from WEFT_WORKERS as usual (the
 * workload is measured on 1 worker and on all). With "shared" both sides
 * are tasks spawned with WEFT_TASK_SHARED_STACK: on one worker every
 * switch between them then copies one's stack bytes out and the other's
 * in, which is what a switch costs in that mode.
 *   usage: w5_pingpong [ROUND_TRIPS [shared]]
 */
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "weft.h"

static unsigned long trips;
static weft_chan *ping, *pong;
static struct weft_task_opts opts;

static void *ponger(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < trips; i++) {
        void *v;
        if (weft_chan_recv(ping, &v) < 0 || weft_chan_send(pong, (void *)((uintptr_t)v + 1)) < 0)
            return (void *)1;
    }
    return NULL;
}

/* The other side: token out on ping, back on pong; returns the last. */
static void *pinger(void *arg)
{
    (void)arg;
    uintptr_t token = 0;
    for (unsigned long i = 0; i < trips; i++) {
        void *v;
        if (weft_chan_send(ping, (void *)token) < 0 || weft_chan_recv(pong, &v) < 0)
            return (void *)UINTPTR_MAX;
        token = (uintptr_t)v;
    }
    return (void *)token;
}

static void *bench_main(void *arg)
{
    (void)arg;
    if (weft_chan_new(&ping, 0) < 0 || weft_chan_new(&pong, 0) < 0)
        return (void *)1;
    weft_task *t, *p = NULL;
    if (weft_spawn_opts(&t, ponger, NULL, &opts) < 0)
        return (void *)1;
    uint64_t t0 = weft_now();
    uintptr_t token;
    if (opts.flags) {
        /* Both sides on the shared stack: the pinger is a task too. */
        void *r;
        if (weft_spawn_opts(&p, pinger, NULL, &opts) < 0 || weft_join(p, &r) < 0)
            return (void *)1;
        token = (uintptr_t)r;
    } else {
        token = (uintptr_t)pinger(NULL);
    }
    uint64_t t1 = weft_now();
    void *r;
    weft_join(t, &r);
    int ok = token == trips && r == NULL;
    weft_chan_free(ping);
    weft_chan_free(pong);
    struct weft_stats s;
    weft_stats_get(&s);
    printf("w5_pingpong trips=%lu workers=%u stacks=%s ok=%d figure=%.1f unit=ns/round_trip "
           "maxrss_kib=%ld\n",
           trips, s.workers, opts.flags ? "shared" : "own", ok, (double)(t1 - t0) / (double)trips,
           peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    trips = arg_or(argc, argv, 1, 1000000);
    if (argc > 2) {
        if (strcmp(argv[2], "shared") != 0) {
            fprintf(stderr, "w5_pingpong: %s: the second argument can only be \"shared\"\n",
                    argv[2]);
            return 2;
        }
        opts.flags = WEFT_TASK_SHARED_STACK;
    }
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
