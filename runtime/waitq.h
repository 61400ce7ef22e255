/*
 * The one suspend/ready primitive that every waiting call is built on
 * (sleep, join, futures, task groups, channels, locks): a per-task wake
 * word settled by compare-and-swap, wait queues of waiters under a spin
 * lock, deadlines and cancellation. The protocol is in waitq.c.
 */
#ifndef WEFT_WAITQ_H
#define WEFT_WAITQ_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "waitq_types.h"
#include "runtime.h"
#include "task.h"

/* How a wait ended: the low two bits of a task's wake word. */
enum weft__wake {
    WEFT_WAKE_WAITING = 0,  /* not yet: whoever changes it readies the task */
    WEFT_WAKE_WOKEN = 1,    /* by the object it waits on */
    WEFT_WAKE_TIMEDOUT = 2, /* its deadline passed (the normal end of a sleep) */
    WEFT_WAKE_CANCELED = 3, /* weft_cancel() */
};
#define WEFT_WAKE_OUTCOME ((uint64_t)3)
#define WEFT_WAKE_NOCANCEL ((uint64_t)4) /* this wait ignores cancellation */
#define WEFT_WAKE_SEQ_SHIFT 3

/* No deadline. */
#define WEFT__NEVER UINT64_MAX

static inline void weft__waitq_init(struct weft__waitq *q)
{
    q->head = q->tail = 0;
}

/* Queue operations; under the owning object's lock. */
/* Room for n waiters of a shared-stack task's waits, kept with the task
 * (waitq.c). Never NULL for n <= WEFT__TASK_WAITERS, which its first
 * run made room for; NULL for more when there is no memory. Task context of
 * self. */
struct weft__waiter *weft__task_waiters(struct weft__task *self, size_t n);


/* Where the n waiters of the calling task's next wait live: on its own
 * stack (local), except for a shared-stack task, whose stack bytes are
 * copied out while it waits, to addresses that the next task on that
 * stack uses (worker.c): its waiters, which wakers write to, live with
 * the task instead. NULL only for n > WEFT__TASK_WAITERS, when there is no
 * memory: call it before taking any lock then. Task context of self. */
static inline struct weft__waiter *weft__waiters(struct weft__task *self,
                                                 struct weft__waiter *local, size_t n)
{
    if (__builtin_expect(!self->shared, 1))
        return local;
    return weft__task_waiters(self, n);
}

static inline void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = 1;
}

static inline void weft__waitq_unlink(struct weft__waitq *q, struct weft__waiter *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = 0;
}

/* Unlinks waiters from the front of q until one of them is woken with
 * WEFT_WAKE_WOKEN (its task readied), storing `value` in its record first;
 * returns whether one was. Waiters whose wait ended otherwise (timed out,
 * cancelled) are unlinked on the way. A woken waiter may return at once on
 * another worker, so its record is not touched after its wake-up. Under
 * the owning object's lock. Any thread. */
bool weft__waitq_wake_one(struct weft__waitq *q, void *value);
/* Wakes every waiter of q; returns how many were woken. Under the lock. */
uint64_t weft__waitq_wake_all(struct weft__waitq *q);

/* Starts a wait of the calling task: returns its sequence number, to be
 * stored in the waiter (or wherever a waker will find it) before the task
 * becomes findable. Task context. */
uint64_t weft__wait_seq(struct weft__task *self);

/* Cancellation of a child running inline: the child is part of its
 * joiner's join, so a cancellation of any joiner up the chain of inline
 * joins (self->host, its host, ...) is delivered to the child too, once
 * (cancel_inherited), and stays pending for the joiner itself. The chain
 * is stable while self runs: each host waits in its inline join. */
static inline bool weft__host_cancelled(const struct weft__task *self)
{
    for (const struct weft__task *u = self->host; u; u = u->host)
        if (atomic_load(&u->cancel))
            return true;
    return false;
}

/* Whether a cancellation is pending for self. Task context of self, or
 * its commit. */
static inline bool weft__cancel_pending(const struct weft__task *self)
{
    return atomic_load(&self->cancel) ||
           (self->host && !self->cancel_inherited && weft__host_cancelled(self));
}

/* A pending cancellation of the calling task, taken: -ECANCELED, else 0.
 * Task context. */
static inline int weft__cancel_take(struct weft__task *self)
{
    if (atomic_load_explicit(&self->cancel, memory_order_relaxed) != 0 &&
        atomic_exchange(&self->cancel, 0))
        return -ECANCELED;
    if (__builtin_expect(self->host != NULL, 0) && !self->cancel_inherited &&
        weft__host_cancelled(self)) {
        self->cancel_inherited = 1;
        return -ECANCELED;
    }
    return 0;
}

/* If the calling task has a cancellation pending, takes it and returns
 * -ECANCELED; else -ETIMEDOUT if deadline has passed; else 0. Every
 * suspending call starts with this (self NULL: only the deadline, for a
 * wait that ignores cancellation). Task context. */
static inline int weft__wait_check(struct weft__task *self, uint64_t deadline)
{
    int err = self ? weft__cancel_take(self) : 0;
    if (err < 0)
        return err;
    if (deadline != WEFT__NEVER && deadline <= weft_now())
        return -ETIMEDOUT;
    return 0;
}

/* Between a canceller's store of a cancel flag and its look at the wake
 * word: the barrier that a runtime of one worker leaves to cancellers
 * that are not its worker's thread (waitq.c, "One worker"). Any thread. */
void weft__cancel_barrier(struct weft__runtime *rt);

/* Maps how a wait ended to a return code: WOKEN 0, TIMEDOUT -ETIMEDOUT,
 * CANCELED -ECANCELED (the request is used up), a negative code itself.
 * Task context. */
int weft__wait_error(struct weft__task *self, int how);

/* Suspends the calling task in the wait `seq` until a waker, its deadline
 * or a cancellation ends it, and returns how (enum weft__wake). `held`,
 * if not NULL, is the lock of the object whose queue the task's waiter is
 * in: it is released only after the task's context is saved, so no waker
 * can find the task before it may be resumed. `why` and `on` are shown by
 * the deadlock report. A wait with `nocancel` ignores weft_cancel (which
 * stays pending). Returns -ENOMEM (having released `held`) if a deadline
 * could not be armed. Task context; suspends. */
int weft__wait(struct weft__task *self, uint64_t seq, struct weft__lock *held, uint64_t deadline,
               enum weft__wait why, const void *on, bool nocancel);

/* The last step of a wait's commit (after the wake word is written): makes
 * the waiting task findable by its wakers. Worker w's thread. */
typedef void (*weft__publish_fn)(struct weft__worker *w, struct weft__task *self, uint64_t seq,
                                 void *arg);

/* weft__wait() for waits that are not in a wait queue: publish(w, self,
 * seq, parg) runs last in the commit (a join turns its claim into a plain
 * pointer there). Returns -ENOMEM before suspending if a deadline could
 * not be armed. Task context; suspends. */
int weft__wait_publish(struct weft__task *self, uint64_t seq, uint64_t deadline,
                       enum weft__wait why, const void *on, bool nocancel,
                       weft__publish_fn publish, void *parg);

/* Flags of weft__waitq_enter / weft__waitq_park. */
#define WEFT__WAIT_EXT 1u      /* any thread may end it: counted in ext_waits (deadlocks) */
#define WEFT__WAIT_NOCANCEL 2u /* ignores cancellation (it stays pending) */

/* The wait of an object with a lock, a queue and a count of the tasks that
 * will still take the lock (futures, channels, sync.c's objects), in two
 * steps, so that a caller may act between them with the lock held (a
 * condition wait releases its mutex there).
 *
 * weft__waitq_enter: called with `lock` held. A pending cancellation
 * (unless NOCANCEL) or a passed deadline: releases the lock and returns
 * its error. Otherwise fills `me` (task, seq, status 0), queues it on q,
 * counts it in *nwaiting and returns 0, the lock still held.
 *
 * weft__waitq_park: suspends until the wait ends; `lock` is released after
 * the switch. 0 when a waker ended it (the waker unlinked `me`, counted it
 * out and handed it what it waits for); otherwise takes the lock back,
 * unlinks and counts itself out, and returns -ETIMEDOUT, -ECANCELED or
 * -ENOMEM. Returns without the lock. Task context; suspends. */

/* Ends the wait `seq` of t with `outcome` if it is still waiting; the one
 * caller that succeeds readies t (on the calling worker, or through the
 * injection queue from any other thread). Returns whether it did. Any
 * thread. */
bool weft__wake(struct weft__task *t, uint64_t seq, enum weft__wake outcome);

/* weft__wake, but t is readied through the injection queue even on a
 * worker: it runs after the tasks that are ready now, not next (the next
 * slot, or the newest end of the ring). For a waker that ends many waits
 * in a row, each of which then runs different code: served in the order
 * woken, after the wakers, the same code runs back to back (curl.c). Any
 * thread. */
bool weft__wake_later(struct weft__task *t, uint64_t seq, enum weft__wake outcome);


/* The two steps of an object's wait (documented above, with the flags);
 * inline, since they are on every blocking channel, future and lock
 * operation. */
static inline int weft__waitq_enter(struct weft__lock *lock, struct weft__waitq *q,
                                    uint64_t *nwaiting, struct weft__task *self,
                                    struct weft__waiter *me, uint64_t deadline, unsigned flags)
{
    int err = weft__wait_check(flags & WEFT__WAIT_NOCANCEL ? NULL : self, deadline);
    if (err < 0) {
        weft__lock_release(lock);
        return err;
    }
    me->task = self;
    me->seq = weft__wait_seq(self);
    me->status = 0;
    weft__waitq_push(q, me);
    ++*nwaiting;
    return 0;
}

static inline int weft__waitq_park(struct weft__lock *lock, struct weft__waitq *q,
                                   uint64_t *nwaiting, struct weft__task *self,
                                   struct weft__waiter *me, uint64_t deadline,
                                   enum weft__wait why, const void *obj, unsigned flags)
{
    if (flags & WEFT__WAIT_EXT)
        atomic_fetch_add(&weft__rt->ext_waits, 1);
    int how = weft__wait(self, me->seq, lock, deadline, why, obj, flags & WEFT__WAIT_NOCANCEL);
    if (flags & WEFT__WAIT_EXT)
        atomic_fetch_sub(&weft__rt->ext_waits, 1);
    if (how == WEFT_WAKE_WOKEN)
        return 0;
    weft__lock_acquire(lock);
    weft__waitq_unlink(q, me);
    --*nwaiting;
    weft__lock_release(lock);
    return weft__wait_error(self, how);
}

#endif
