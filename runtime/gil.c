/*
 * GIL mode: the workers, their queues and their stealing stay as they are,
 * plus one execution token, and a worker runs a task only while its thread
 * holds the token. So the same program runs concurrent but not parallel,
 * the way CPython 3 threads run under the GIL, and can be measured beside
 * the parallel run.
 *
 * The token follows CPython's ceval_gil.c. A worker that has a task to run
 * and no token waits on `released` for up to the switch interval
 * (WEFT_SWITCH_INTERVAL_US, CPython's 5 ms by default); if a whole interval
 * passed and nobody took the token meanwhile (switch_number unchanged), it
 * sets drop_request. The holder looks at the request at its safe points:
 * weft_checkpoint() and every suspension of a task (worker.c). There it
 * drops the token and, because it was asked to (forced switching), waits
 * until some other worker has taken it before it may ask again: the waiter
 * gets the token, not the releaser. A worker that runs out of tasks drops
 * the token before it parks, and a task that waits (sleep, I/O, a lock)
 * does not hold it: the token belongs to a worker's thread while that
 * thread runs tasks, so waiting overlaps and computing does not.
 *
 * A token released while others wait is theirs (`reserved`): a take that
 * starts after the release waits until one of the waiters has taken it.
 * Without this, a task that releases the token around a short system call
 * (a send on loopback: microseconds) takes it straight back before the
 * waiter's thread has even woken (tens of microseconds on a virtual
 * machine), and the convoy that CPython shows on a host with fast wakeups
 * (every I/O call costs the I/O thread an interval) would depend on how
 * fast this host wakes a thread. With it, the waiter that was there first
 * gets the token, which is what forced switching promises.
 *
 * Threads: take and drop on worker threads only; drop_request is read
 * without the lock by the holder. Everything else is under `mu`.
 */
#include "gil.h"

#include <errno.h>
#include <time.h>

#include "weft.h"
#include "worker.h"

int weft__gil_init(struct weft__gil *g, uint64_t interval_us)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&g->released, &ca);
    if (err == 0)
        err = pthread_cond_init(&g->taken, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return -err;
    pthread_mutex_init(&g->mu, NULL);
    g->holder = g->last = NULL;
    g->switch_number = 0;
    g->nwaiting = 0;
    g->reserved = false;
    g->interval_ns = interval_us * WEFT_USEC;
    g->handoffs = g->forced = 0;
    atomic_init(&g->drop_request, 0);
    return 0;
}

void weft__gil_term(struct weft__gil *g)
{
    pthread_cond_destroy(&g->released);
    pthread_cond_destroy(&g->taken);
    pthread_mutex_destroy(&g->mu);
}

static struct timespec abs_time(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / WEFT_SEC), .tv_nsec = (long)(ns % WEFT_SEC)};
}

bool weft__gil_take(struct weft__gil *g, struct weft__worker *w)
{
    uint64_t t0 = weft_now();
    pthread_mutex_lock(&g->mu);
    /* Released to the workers that were waiting: not to this one. */
    while (g->reserved)
        pthread_cond_wait(&g->taken, &g->mu);
    g->nwaiting++;
    while (g->holder) {
        uint64_t seen = g->switch_number;
        struct timespec until = abs_time(weft_now() + g->interval_ns);
        int r = pthread_cond_timedwait(&g->released, &g->mu, &until);
        if (r == ETIMEDOUT && g->holder && g->switch_number == seen)
            atomic_store_explicit(&g->drop_request, 1, memory_order_relaxed);
    }
    g->nwaiting--;
    g->holder = w;
    g->reserved = false;
    bool handoff = g->last && g->last != w;
    if (handoff)
        g->handoffs++;
    g->last = w;
    g->switch_number++;
    /* A request is for the holder that was asked: this one starts fresh. */
    atomic_store_explicit(&g->drop_request, 0, memory_order_relaxed);
    pthread_cond_broadcast(&g->taken);
    pthread_mutex_unlock(&g->mu);
    w->gil_held = true;
    w->gil_wait_ns += weft_now() - t0;
    return handoff;
}

void weft__gil_drop(struct weft__gil *g, struct weft__worker *w, bool forced)
{
    pthread_mutex_lock(&g->mu);
    g->holder = NULL;
    w->gil_held = false;
    g->reserved = g->nwaiting > 0;
    pthread_cond_signal(&g->released);
    if (forced) {
        g->forced++;
        uint64_t seen = g->switch_number;
        while (g->switch_number == seen && g->nwaiting > 0)
            pthread_cond_wait(&g->taken, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

bool weft__gil_contended(struct weft__gil *g)
{
    pthread_mutex_lock(&g->mu);
    bool waiting = g->nwaiting > 0;
    pthread_mutex_unlock(&g->mu);
    return waiting;
}
