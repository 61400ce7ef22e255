/*
 * Futures, gather and wait_for: the awaitables of asyncio that are not
 * tasks themselves.
 *
 * A future is a spin lock, a state (pending, resolved, rejected), the value
 * or error, and a wait queue. It settles exactly once: the first resolve or
 * reject wins and wakes every waiter, the later ones get -EALREADY (a
 * silent overwrite would let two producers race unnoticed). A waiter is
 * handed the outcome in its waiter record by the settler, under the lock,
 * so once woken it never touches the future again: the future may be
 * freed as soon as nobody is queued on it. A waiter whose wait timed out
 * or was cancelled takes the lock and unlinks itself (waitq.c).
 *
 * gather joins its tasks in order and keeps every outcome (asyncio's
 * return_exceptions=True): a join error or a task's own error result goes
 * to errors[i], the result to results[i]. If the gathering task is
 * cancelled, it cancels every task it has not reaped yet, and still reaps
 * them all, so no task is left unjoined and no handle leaks.
 *
 * wait_for is a bounded join that, when the deadline passes (or the caller
 * is cancelled), cancels the task and reaps it, as asyncio does, so a timed
 * out operation does not run on unobserved.
 *
 * Threads: resolve and reject from any thread (a thread that is not a
 * worker wakes the waiters through the injection queue); await, gather and
 * wait_for in task context.
 */
#include <errno.h>
#include <stdbool.h>

#include "alloc.h"
#include "runtime.h"
#include "task.h"
#include "waitq.h"
#include "weft.h"
#include "worker.h"

enum { PENDING, RESOLVED, REJECTED };

struct weft_future {
    struct weft__lock lock;   /* guards everything below */
    int state;                /* PENDING until settled, then fixed */
    int err;                  /* REJECTED: the negative code */
    void *value;              /* RESOLVED: the value */
    uint64_t nwaiting;        /* tasks inside weft_future_await that will still take the
                                 lock: queued, or whose wait ended by timeout or cancel */
    struct weft__waitq waiters;
};

int weft_future_new(weft_future **out)
{
    if (!out)
        return -EINVAL;
    weft_future *f = weft__zalloc(sizeof *f);
    if (!f)
        return -ENOMEM;
    weft__lock_init(&f->lock);
    f->state = PENDING;
    weft__waitq_init(&f->waiters);
    *out = f;
    return 0;
}

int weft_future_free(weft_future *f)
{
    if (!f)
        return -EINVAL;
    weft__lock_acquire(&f->lock);
    uint64_t n = f->nwaiting;
    weft__lock_release(&f->lock);
    if (n)
        return -EBUSY;
    weft__free(f, sizeof *f);
    return 0;
}

/* Settles f and hands the outcome to every waiter. */
static int settle(weft_future *f, int state, void *value, int err)
{
    weft__lock_acquire(&f->lock);
    if (f->state != PENDING) {
        weft__lock_release(&f->lock);
        return -EALREADY;
    }
    f->state = state;
    f->value = value;
    f->err = err;
    struct weft__waiter *w;
    while ((w = f->waiters.head) != NULL) {
        weft__waitq_unlink(&f->waiters, w);
        w->value = value;
        w->status = err;
        /* A waiter whose wait ended otherwise (timed out, cancelled) still
         * takes f->lock when it resumes, so it stays counted, and keeps f
         * from being freed, until it counts itself out. */
        if (weft__wake(w->task, w->seq, WEFT_WAKE_WOKEN))
            f->nwaiting--;
    }
    weft__lock_release(&f->lock);
    return 0;
}

int weft_future_resolve(weft_future *f, void *value)
{
    if (!f)
        return -EINVAL;
    return settle(f, RESOLVED, value, 0);
}

int weft_future_reject(weft_future *f, int err)
{
    if (!f || err >= 0)
        return -EINVAL;
    return settle(f, REJECTED, NULL, err);
}

int weft_future_done(weft_future *f)
{
    if (!f)
        return -EINVAL;
    weft__lock_acquire(&f->lock);
    int done = f->state != PENDING;
    weft__lock_release(&f->lock);
    return done;
}

int weft_future_await(weft_future *f, uint64_t deadline, void **value)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!f)
        return -EINVAL;
    weft__lock_acquire(&f->lock);
    if (f->state != PENDING) {
        int err = f->err;
        if (value && f->state == RESOLVED)
            *value = f->value;
        weft__lock_release(&f->lock);
        return err;
    }
    /* Any thread may settle it: not a deadlock while it waits. */
    struct weft__waiter local, *me = weft__waiters(self, &local, 1);
    int err = weft__waitq_enter(&f->lock, &f->waiters, &f->nwaiting, self, me, deadline,
                                WEFT__WAIT_EXT);
    if (err == 0)
        err = weft__waitq_park(&f->lock, &f->waiters, &f->nwaiting, self, me, deadline,
                               WEFT_W_FUTURE, f, WEFT__WAIT_EXT);
    if (err < 0)
        return err;
    if (value && me->status == 0)
        *value = me->value;
    return me->status;
}

int weft_gather(weft_task **tasks, size_t n, void **results, int *errors)
{
    return weft_gather_until(tasks, n, WEFT__NEVER, results, errors);
}

int weft_gather_until(weft_task **tasks, size_t n, uint64_t deadline, void **results,
                      int *errors)
{
    /* The task, not the worker: the joins below may resume it elsewhere. */
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if ((n && !tasks) || (n && !errors))
        return -EINVAL;
    int failed = 0;
    bool cancelled = false, late = false;
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        int err = cancelled || late ? weft__join_reap(tasks[i], &r)
                                    : weft_join_until(tasks[i], deadline, &r);
        if ((err == -ECANCELED || err == -ETIMEDOUT) && !cancelled && !late) {
            /* The gatherer is cancelled, or too late: every task not reaped
             * yet is cancelled, and reaped all the same. */
            if (err == -ECANCELED)
                cancelled = true;
            else
                late = true;
            for (size_t j = i; j < n; j++)
                (void)weft_cancel(tasks[j]);
            err = weft__join_reap(tasks[i], &r);
        }
        if (err == 0)
            err = weft_err_of(r);
        errors[i] = err;
        if (results)
            results[i] = err == 0 ? r : NULL;
        failed += err != 0;
    }
    /* A cancellation that arrived while a task ran inline in a join went
     * to that task, and is still pending here. */
    if (!cancelled && weft__cancel_take(self) < 0)
        cancelled = true;
    return cancelled ? -ECANCELED : late ? -ETIMEDOUT : failed;
}

int weft_wait_for(weft_task *t, uint64_t timeout_ns, void **result)
{
    if (!weft__current_task())
        return -EPERM;
    uint64_t now = weft_now();
    uint64_t deadline = timeout_ns >= WEFT__NEVER - now ? WEFT__NEVER - 1 : now + timeout_ns;
    int err = weft_join_until(t, deadline, result);
    if (err != -ETIMEDOUT && err != -ECANCELED)
        return err;
    /* Too late, or the caller is cancelled: cancel t and reap it. */
    (void)weft_cancel(t);
    (void)weft__join_reap(t, NULL);
    return err;
}
