/*
 * Waiting: the one way a task suspends until something happens, and the
 * one way it is made runnable again. Sleep, join, futures, task groups,
 * channels and locks are all built on it, and it is what makes deadlines
 * and cancellation work the same everywhere.
 *
 * The wake word. Each task has one (task.h): (seq << 3) | flags | outcome.
 * A wait gets a fresh seq (weft__wait_seq). Up to three parties may try to
 * end it: the object it waits on (a waker), its deadline (the timer heap of
 * the worker where the wait began) and weft_cancel(). Each tries a CAS from
 * (seq, WAITING) to (seq, its outcome); exactly one succeeds, and only that
 * one readies the task. Because the CAS compares the seq too, a party that
 * is late (a deadline that fires after the task was woken and has started
 * another wait, a waker that read an old seq) fails instead of ending the
 * wrong wait.
 *
 * Becoming findable only after the switch. A task waiting on an object
 * puts its waiter (on its own stack) into the object's queue under the
 * object's lock, and keeps the lock while it switches away. The commit
 * (run by the next context on the same worker, Go's gopark pattern) then
 * writes the wake word (outcome WAITING), arms the deadline, and releases
 * the lock. So no party can ready the task before its context is saved:
 * wakers need the lock to find the waiter, the deadline is not armed yet,
 * and a canceller's CAS fails while the word still holds the previous
 * wait's outcome. The deadline is armed after the word is written because
 * an idle worker may fire it at once (it fires other workers' passed
 * deadlines): its CAS must find the wait, or the deadline would be used
 * up without ending it. A task readied meanwhile waits for the commit to
 * finish (`committing`) before it removes its deadline.
 *
 * No lost cancellation. weft_cancel() sets t->cancel and then tries the
 * CAS; the commit writes the wake word and then reads t->cancel (both
 * sequentially consistent). Either the canceller sees WAITING, or the
 * commit sees the flag and ends the wait itself. A cancel that finds no
 * wait stays pending, and the next wait's weft__wait_check() takes it.
 *
 * One worker. The store of the wake word and the load of t->cancel above
 * need a full fence between them (a locked instruction: 12 ns on a 2-vCPU
 * EPYC guest, two of them in each W5 round trip), because a canceller on
 * another thread does the mirror image. A runtime of one worker has no
 * other worker: a canceller that is a task runs on the same thread as
 * every commit, in program order. Only a thread that is not the worker
 * (a blocking-pool job, a thread of the program) can cancel concurrently,
 * and such a canceller issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
 * between its store of the flag and its look at the word: it makes the
 * worker's thread execute a full barrier, so that either the commit's
 * load sees the flag or the canceller sees the word (the asymmetric
 * fence of RCU and of folly's hazard pointers). Registered at start
 * (rt->solo_commit); where the kernel refuses it, the commit keeps its
 * fence. The blocking pool's other Dekker pair with the commit (a job that
 * finishes as its caller commits, blocking.c) puts its fence in its own
 * publish step, which runs once a blocking call.
 *
 * Nothing lost on the object's side. A waker ends a wait only through the
 * CAS, under the object's lock, and hands its unit (a semaphore count, a
 * channel value, a future's result) to the waiter only if the CAS
 * succeeded; a waiter whose wait timed out or was cancelled is skipped
 * and unlinked, and the unit goes to the next one. The waiter itself, once
 * resumed, takes the lock and unlinks itself if nobody did. (asyncio lost
 * a semaphore unit this way in gh-90155: a cancelled waiter had already
 * been handed one.)
 *
 * Threads: the waiting side is task context; the waking side may be any
 * worker, or a thread that is not one (its wake-up goes through the
 * injection queue).
 */
#include "waitq.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "race.h"
#include "runtime.h"
#include "timer.h"
#include "worker.h"

bool weft__waitq_wake_one(struct weft__waitq *q, void *value)
{
    struct weft__waiter *w;
    while ((w = q->head) != NULL) {
        weft__waitq_unlink(q, w);
        /* Written before the CAS: the waiter reads it after resuming. */
        w->value = value;
        if (weft__wake(w->task, w->seq, WEFT_WAKE_WOKEN))
            return true;
    }
    return false;
}

uint64_t weft__waitq_wake_all(struct weft__waitq *q)
{
    uint64_t n = 0;
    while (weft__waitq_wake_one(q, NULL))
        n++;
    return n;
}

uint64_t weft__wait_seq(struct weft__task *self)
{
    return ++self->wait_seq;
}

struct weft__waiter *weft__task_waiters(struct weft__task *self, size_t n)
{
    if (n > self->waiters_cap) {
        /* The old room stays when there is no memory for more: waits of
         * WEFT__TASK_WAITERS or fewer count on it. */
        struct weft__waiter *more = weft__alloc(n * sizeof *more);
        if (!more)
            return NULL;
        if (weft__task_owns(self, self->waiters))
            weft__free(self->waiters, self->waiters_cap * sizeof *self->waiters);
        self->waiters = more;
        self->waiters_cap = (uint32_t)n;
    }
    return self->waiters;
}

int weft_checkpoint(void)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    /* A task this one woke waits in the next slot for its next decision,
     * which a task at a checkpoint is not about to make. Before the GIL's
     * hand-off, which may keep this thread waiting for the token. */
    weft__worker_flush_next(w);
    if (__builtin_expect(w->rt->gil_on, 0))
        weft__worker_gil_checkpoint(w);
    return weft__cancel_take(w->current);
}

void weft__cancel_barrier(struct weft__runtime *rt)
{
    if (rt->solo_commit && !weft__worker_self())
        (void)syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}

int weft__wait_error(struct weft__task *self, int how)
{
    switch (how) {
    case WEFT_WAKE_WOKEN:
        return 0;
    case WEFT_WAKE_TIMEDOUT:
        return -ETIMEDOUT;
    case WEFT_WAKE_CANCELED:
        /* Delivered: the request is used up (its own, or else the one it
         * inherits from a joiner up the inline chain). */
        if (!atomic_exchange(&self->cancel, 0) && self->host)
            self->cancel_inherited = 1;
        return -ECANCELED;
    default:
        return how;
    }
}

static inline bool wake_as(struct weft__task *t, uint64_t seq, enum weft__wake outcome, bool later)
{
    uint64_t want = seq << WEFT_WAKE_SEQ_SHIFT;
    uint64_t cur = atomic_load_explicit(&t->wake, memory_order_relaxed);
    if ((cur & ~WEFT_WAKE_NOCANCEL) != want)
        return false;
    if (outcome == WEFT_WAKE_CANCELED && (cur & WEFT_WAKE_NOCANCEL))
        return false;
    /* acq_rel: the waiter reads what the waker wrote before (the handed
     * value), and the waker sees the commit's writes. */
    if (!atomic_compare_exchange_strong_explicit(&t->wake, &cur, cur | (uint64_t)outcome,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    t->wait = WEFT_W_NONE;
    weft__acct(t, WEFT_ACCT_READY);
    struct weft__worker *w = weft__worker_self();
    if (w && !later)
        weft__worker_woken(w, t);
    else
        weft__worker_inject(weft__rt, t);
    return true;
}

__attribute__((noinline)) bool weft__wake(struct weft__task *t, uint64_t seq, enum weft__wake outcome)
{
    return wake_as(t, seq, outcome, false);
}

bool weft__wake_later(struct weft__task *t, uint64_t seq, enum weft__wake outcome)
{
    return wake_as(t, seq, outcome, true);
}

/* The commit's steps after the wake word, for a wait that has more to do
 * than release a lock: a pending cancellation, a deadline to arm, a
 * publish step. Out of line: a channel's or a lock's plain wait (W5) has
 * none of them, and the commit it runs stays small. */
static __attribute__((noinline)) void commit_rest(struct weft__worker *w, struct weft__task *self,
                                                  const struct weft__wait_commit *a, uint64_t word)
{
    uint64_t seq = word >> WEFT_WAKE_SEQ_SHIFT;
    if (!(word & WEFT_WAKE_NOCANCEL) && weft__cancel_pending(self))
        weft__wake(self, seq, WEFT_WAKE_CANCELED);
    /* Armed only once the wake word says WAITING: an idle worker may fire
     * the deadline at once (worker.c), and its CAS must find the wait. */
    if (a->deadline != WEFT__NEVER)
        weft__timer_arm(w, self, a->deadline, seq);
    WEFT_RACE_POINT(PUBLISH);
    if (a->publish)
        a->publish(w, self, seq, a->parg);
    if (a->held)
        weft__lock_release(a->held);
}

/* After the waiter's switch: make it findable (see the essay). Everything
 * in the waiter's frame is read before the wake word is written: from then
 * on the task may run elsewhere and its frame change. The arguments are
 * in the worker (w->wait_commit), which nothing else writes before this
 * commit is over. */
static void commit_wait(struct weft__worker *w, struct weft__task *self, void *arg)
{
    const struct weft__wait_commit *a = arg;
    uint64_t word = a->seq << WEFT_WAKE_SEQ_SHIFT | (a->nocancel ? WEFT_WAKE_NOCANCEL : 0);
    /* The task may be readied from here on (by a canceller, this commit's
     * own check, its deadline) and resume elsewhere before the rest of
     * the commit has run: it waits for `committing` to drop first. */
    atomic_store_explicit(&self->committing, 1, memory_order_relaxed);
    if (w->rt->solo_commit) {
        /* No fence: see "One worker" above. */
        atomic_store_explicit(&self->wake, word, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        atomic_store(&self->wake, word);
    }
    if (__builtin_expect(a->publish != NULL || a->deadline != WEFT__NEVER ||
                             (!(word & WEFT_WAKE_NOCANCEL) && weft__cancel_pending(self)),
                         0)) {
        commit_rest(w, self, a, word);
    } else {
        WEFT_RACE_POINT(PUBLISH);
        if (a->held)
            weft__lock_release(a->held);
    }
    /* Release: pairs with the acquire in wait_commit. */
    atomic_store_explicit(&self->committing, 0, memory_order_release);
}

/* Suspends self in the wait `seq` (weft__wait_publish), with `held`, the
 * lock of a wait queue's object, released last in the commit. */
static int wait_commit(struct weft__task *self, uint64_t seq, struct weft__lock *held,
                       uint64_t deadline, enum weft__wait why, const void *on, bool nocancel,
                       weft__publish_fn publish, void *parg)
{
    struct weft__worker *w = self->worker;
    if (deadline != WEFT__NEVER) {
        int err = weft__timers_reserve(w);
        if (err < 0)
            return err;
    }
    w->wait_commit = (struct weft__wait_commit){.publish = publish,
                                                .parg = parg,
                                                .held = held,
                                                .deadline = deadline,
                                                .seq = seq,
                                                .nocancel = nocancel};
    self->wait_obj = on;
    self->wait = (uint8_t)why;
    atomic_store_explicit(&self->state, WEFT_T_BLOCKED, memory_order_relaxed);
    weft__worker_suspend(w, self, commit_wait, &w->wait_commit);
    /* Nothing of this wait may be undone before its commit is over. */
    for (unsigned spins = 0; atomic_load_explicit(&self->committing, memory_order_acquire);)
        weft__spin_pause(&spins);
    weft__timer_disarm(self);
    self->wait_obj = NULL;
    return (int)(atomic_load_explicit(&self->wake, memory_order_acquire) & WEFT_WAKE_OUTCOME);
}

int weft__wait_publish(struct weft__task *self, uint64_t seq, uint64_t deadline,
                       enum weft__wait why, const void *on, bool nocancel,
                       weft__publish_fn publish, void *parg)
{
    return wait_commit(self, seq, NULL, deadline, why, on, nocancel, publish, parg);
}

int weft__wait(struct weft__task *self, uint64_t seq, struct weft__lock *held, uint64_t deadline,
               enum weft__wait why, const void *on, bool nocancel)
{
    int r = wait_commit(self, seq, held, deadline, why, on, nocancel, NULL, NULL);
    if (r < 0 && held)
        weft__lock_release(held);
    return r;
}
