/*
 * W5 pingpong: two tasks pass a token back and forth through two
 * unbuffered (rendezvous) channels, 1,000,000 round trips. Prints ns per
 * round trip. The worker count comes from WEFT_WORKERS as usual (the
 * workload is measured on 1 worker and on all).
 *   usage: w5_pingpong [ROUND_TRIPS]
 */
#include <stdint.h>

#include "bench.h"
#include "weft.h"

static unsigned long trips;
static weft_chan *ping, *pong;

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

static void *bench_main(void *arg)
{
    (void)arg;
    if (weft_chan_new(&ping, 0) < 0 || weft_chan_new(&pong, 0) < 0)
        return (void *)1;
    weft_task *t;
    if (weft_spawn(&t, ponger, NULL) < 0)
        return (void *)1;
    uintptr_t token = 0;
    uint64_t t0 = weft_now();
    for (unsigned long i = 0; i < trips; i++) {
        void *v;
        if (weft_chan_send(ping, (void *)token) < 0 || weft_chan_recv(pong, &v) < 0)
            return (void *)1;
        token = (uintptr_t)v;
    }
    uint64_t t1 = weft_now();
    void *r;
    weft_join(t, &r);
    int ok = token == trips && r == NULL;
    weft_chan_free(ping);
    weft_chan_free(pong);
    struct weft_stats s;
    weft_stats_get(&s);
    printf("w5_pingpong trips=%lu workers=%u ok=%d figure=%.1f unit=ns/round_trip maxrss_kib=%ld\n",
           trips, s.workers, ok, (double)(t1 - t0) / (double)trips, peak_rss_kib());
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    trips = arg_or(argc, argv, 1, 1000000);
    void *r = (void *)1;
    int err = weft_run(NULL, bench_main, NULL, &r);
    return err == 0 && r == NULL ? 0 : 1;
}
