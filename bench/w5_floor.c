/*
 * W5's floor on this machine: the ping-pong of W5 with everything a
 * scheduler does taken away. Two contexts bounce a counter through two
 * one-slot rendezvous channels with weft__ctx_swap, the same register
 * swap weft's tasks use; each round trip is two sends, two receives and
 * two swaps. Two forms:
 *
 *   bare    the channels are plain variables: no lock, no atomic
 *           instruction. No runtime on this swap can go below it.
 *   locked  each channel operation takes and releases a spin lock (one
 *           atomic exchange and a release store), and each hand-off ends
 *           the receiver's wait with a compare-and-swap on its wake word,
 *           as a channel that tasks on other threads may use must: the
 *           least synchronisation of weft's design (runtime/chan.c,
 *           runtime/waitq.c), with no run queue, no deadline and no
 *           cancellation.
 *
 * Prints ns per round trip for each, medians of 5 runs in the process.
 *   usage: w5_floor [ROUND_TRIPS]
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "arch/context.h"
#include "bench.h"
#include "weft.h"

struct chan {
    _Atomic int lock;
    void *value;
    int full;    /* value is there: sent before a receiver waited */
    int waiting; /* a receiver waits: a send hands it value */
};

static struct chan ping, pong;
static _Atomic uint64_t wake_word;
static void *main_sp, *ctx_sp;
static unsigned long trips;
static int locked;

static inline void lock(struct chan *c)
{
    if (locked)
        while (atomic_exchange_explicit(&c->lock, 1, memory_order_acquire))
            ;
}

static inline void unlock(struct chan *c)
{
    if (locked)
        atomic_store_explicit(&c->lock, 0, memory_order_release);
}

/* Hands v to c's waiting receiver (ending its wait with the wake CAS when
 * `locked`), or leaves it in c for the next receive. */
static inline void ch_send(struct chan *c, void *v)
{
    lock(c);
    c->value = v;
    if (c->waiting) {
        c->waiting = 0;
        if (locked) {
            uint64_t want = 0;
            atomic_compare_exchange_strong_explicit(&wake_word, &want, 1, memory_order_acq_rel,
                                                    memory_order_relaxed);
            atomic_store_explicit(&wake_word, 0, memory_order_relaxed);
        }
    } else {
        c->full = 1;
    }
    unlock(c);
}

/* Takes c's value, or waits for it: marks itself waiting and swaps to the
 * other context (*from saves this one), whose send hands the value over.
 * One lock a receive, as weft's (its lock is released after the switch). */
static inline void *ch_recv(struct chan *c, void **from, void *to)
{
    lock(c);
    if (c->full) {
        c->full = 0;
        unlock(c);
        return c->value;
    }
    c->waiting = 1;
    unlock(c);
    weft__ctx_swap(from, to, NULL);
    return c->value;
}

static void ponger(void *arg)
{
    (void)arg;
    for (;;) {
        void *v = ch_recv(&ping, &ctx_sp, main_sp);
        ch_send(&pong, (char *)v + 1);
    }
}

static double run_once(int with_locks)
{
    locked = with_locks;
    void *v = NULL;
    uint64_t t0 = weft_now();
    for (unsigned long i = 0; i < trips; i++) {
        ch_send(&ping, v);
        v = ch_recv(&pong, &main_sp, ctx_sp);
    }
    uint64_t t1 = weft_now();
    if ((uintptr_t)v != trips) {
        fprintf(stderr, "w5_floor: %lu round trips counted %lu\n", trips,
                (unsigned long)(uintptr_t)v);
        exit(1);
    }
    return (double)(t1 - t0) / (double)trips;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    trips = arg_or(argc, argv, 1, 2000000);
    size_t len = 64 * 1024;
    char *stack = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return 1;
    for (int with_locks = 0; with_locks < 2; with_locks++) {
        ping = pong = (struct chan){0};
        ctx_sp = weft__ctx_make(stack + len, ponger);
        double r[5];
        for (int i = 0; i < 5; i++)
            r[i] = run_once(with_locks);
        qsort(r, 5, sizeof r[0], cmp);
        printf("w5_floor form=%s trips=%lu ok=1 figure=%.1f unit=ns/round_trip\n",
               with_locks ? "locked" : "bare", trips, r[2]);
    }
    return 0;
}
