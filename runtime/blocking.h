/*
 * The blocking-call pool (weft_blocking): threads that run calls which
 * block their thread, while the calling task waits. The protocol is in
 * blocking.c.
 */
#ifndef WEFT_BLOCKING_H
#define WEFT_BLOCKING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft.h"

struct weft__blocking_job;
struct weft__blocking_thread;

struct weft__blocking {
    pthread_mutex_t mu;    /* guards every field below but `limit` */
    pthread_cond_t work;   /* a job was queued, or the pool stops (CLOCK_MONOTONIC) */
    struct weft__blocking_job *head, *tail; /* queued jobs, FIFO */
    uint64_t queued;       /* jobs in the queue */
    struct weft__blocking_thread *threads;  /* every thread not yet joined */
    unsigned nthreads;     /* threads alive: started and not yet leaving */
    unsigned nidle;        /* of those, waiting on `work` */
    unsigned nexited;      /* threads in `threads` that have left, waiting to be joined */
    bool stopping;         /* weft__blocking_stop: run what is queued, then leave */
    unsigned limit;        /* most threads alive at once; fixed at init */
    _Atomic uint64_t calls; /* jobs whose fn has returned; atomic, not under mu */
    uint64_t peak;         /* most threads alive at once so far */
};

/* How long a pool thread waits for a job before it leaves (10 s). White-box
 * tests shorten it before weft_run. */
extern uint64_t weft__blocking_idle_ns;

/* Sets up an empty pool of at most `configured` threads (0: min(32,
 * ncores + 4), as Python's to_thread executor). Starts no thread. Any
 * thread, before the workers start. Returns 0 or -errno (the condition
 * variable). */
int weft__blocking_init(struct weft__blocking *p, unsigned configured, unsigned ncores);

/* Lets every queued job run (an abandoned call's fn, then its drop), then
 * joins every pool thread. Idempotent. Any thread but a pool thread, once
 * no task can submit a job any more (the workers have stopped). Blocks
 * until the last fn returns. */
void weft__blocking_stop(struct weft__blocking *p);

/* weft__blocking_stop, then frees what init made. Same context. */
void weft__blocking_term(struct weft__blocking *p);

/* Adds the pool's counters to *s (blocking_calls, blocking_threads_peak).
 * Any thread. */
void weft__blocking_collect(struct weft__blocking *p, struct weft_stats *s);

/* Threads alive now. Any thread. */
unsigned weft__blocking_threads(struct weft__blocking *p);

#endif
