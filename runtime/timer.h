/*
 * Per-worker timers: a 4-ary min-heap of sleeping tasks keyed by deadline,
 * beside a FIFO run of the deadlines that arrive in order.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"

struct weft__task;
struct weft__worker;

/* A heap entry: the deadline beside the task, so that sifting compares
 * entries of the array and touches no task, and the id the task had when
 * it was armed: the entry is stale once the task's timer_id says
 * otherwise (its wait ended before the deadline). */
struct weft__timer_ent {
    uint64_t deadline;
    struct weft__task *task;
    uint64_t id;
};

/* A worker's timers: the heap, and the run (a FIFO ring of entries added
 * in deadline order, timer.c). `lock` guards everything but `fired`,
 * which is the owner's: the owner adds and fires, an idle worker fires
 * too, and a task whose wait ended otherwise marks its entry stale, from
 * any worker. len counts the heap's entries, run_len the run's, live the
 * entries of both that are not stale. */
struct weft__timers {
    struct weft__lock lock;
    struct weft__timer_ent *heap;
    uint32_t len, cap, live;
    struct weft__timer_ent *run; /* run_cap slots (a power of two), from run_head */
    uint32_t run_head, run_len, run_cap;
    uint64_t next_id;
    uint64_t fired;
};

void weft__timers_init(struct weft__timers *t);
void weft__timers_term(struct weft__timers *t);
/* The heap itself; the caller holds t->lock (or owns t outright). */
int weft__timer_add(struct weft__timers *t, struct weft__task *task, uint64_t deadline);
/* Marks task's entry stale, if it has a live one in t; returns whether it
 * had. */
bool weft__timer_cancel(struct weft__timers *t, struct weft__task *task);
/* The earliest live deadline, or UINT64_MAX (stale entries on top go). */
uint64_t weft__timers_first(struct weft__timers *t);
struct weft__task *weft__timers_pop_due(struct weft__timers *t, uint64_t now);

/* Makes room in w's heap for one more deadline, so that arming it after
 * the switch cannot fail. Returns 0 or -ENOMEM. Worker w's thread. */
int weft__timers_reserve(struct weft__worker *w);
/* Puts task's deadline for its wait `seq` into w's heap (room reserved).
 * Worker w's thread, in a commit (the task is switched out). */
void weft__timer_arm(struct weft__worker *w, struct weft__task *task, uint64_t deadline,
                     uint64_t seq);
/* Takes the calling task's deadline out of whichever heap holds it, if it
 * has not fired. Task context, after its wait ended. */
void weft__timer_disarm_slow(struct weft__task *task, struct weft__worker *w);
#define weft__timer_disarm(task)                                                                   \
    do {                                                                                           \
        struct weft__worker *w_ = atomic_load_explicit(&(task)->timer_w, memory_order_acquire);   \
        if (w_)                                                                                    \
            weft__timer_disarm_slow((task), w_);                                                   \
    } while (0)
/* Ends the waits whose deadlines have passed in w's heap (outcome
 * TIMEDOUT). Worker w's thread. */
void weft__timers_fire(struct weft__worker *w);
/* weft__timers_fire on another worker's heap: the worker `self` (the
 * calling thread's, idle) ends the waits whose deadlines passed in w's heap,
 * and their tasks become runnable on self. */
void weft__timers_fire_from(struct weft__worker *self, struct weft__worker *w);
/* The earliest deadline in w's heap, or UINT64_MAX. Any worker's thread. */
uint64_t weft__timers_next(struct weft__worker *w);

#endif
