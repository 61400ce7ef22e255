/*
 * Task groups: asyncio.TaskGroup, structured concurrency in C. Tasks are
 * spawned into a group; weft_group_wait() waits for all of them; the first
 * member that fails (its function returns WEFT_ERR(code)) cancels every
 * other member, and wait returns that first error. A group cannot be freed
 * while a member runs, so no task outlives its group.
 *
 * A member is a task that runs a small entry function around the user's:
 * when the user's function returns, the entry records the outcome under the
 * group's lock, leaves the member list, and wakes the waiter when it was
 * the last. Members are detached: the group, not a handle, is what anyone
 * waits on. A member on the list has not left its entry function, so its
 * task is alive and its handle good for weft_cancel(); that is why leaving
 * the list is the last thing a member does under the lock.
 *
 * If the task waiting on the group is itself cancelled, it cancels every
 * member and goes on waiting (ignoring further cancellation) until all have
 * finished, then returns -ECANCELED: the members never outlive the wait.
 *
 * Threads: spawn and wait in task context; members finish on any worker.
 */
#include <errno.h>
#include <stdbool.h>

#include "alloc.h"
#include "gen.h"
#include "task.h"
#include "waitq.h"
#include "weft.h"
#include "worker.h"

struct member {
    struct member *next, *prev;
    weft_group *g;
    weft_fn fn;
    void *arg;
    weft_task *task;  /* its handle, for weft_cancel; set before it can finish */
};

struct weft_group {
    struct weft__lock lock; /* guards everything below */
    struct member *members; /* running members */
    uint64_t live;          /* members spawned and not finished */
    int first_err;          /* the first member failure, or 0 */
    bool cancelling;        /* the members have been cancelled */
    struct weft_gen *scope; /* the generator body it was opened in, until it is done */
    struct weft__waitq waiter; /* the task in weft_group_wait, if any */
    unsigned waiting;       /* tasks inside weft_group_wait (they retake the lock) */
};

int weft_group_new(weft_group **out)
{
    if (!out)
        return -EINVAL;
    weft_group *g = weft__zalloc(sizeof *g);
    if (!g)
        return -ENOMEM;
    weft__lock_init(&g->lock);
    weft__waitq_init(&g->waiter);
    /* Opened inside a generator's body: that body may not yield until the
     * group is done (PEP 789; gen.c refuses with -EPERM). */
    struct weft__task *self = weft__current_task();
    if (self && (g->scope = weft__gen_current(self)) != NULL)
        atomic_fetch_add(&g->scope->open_scopes, 1);
    *out = g;
    return 0;
}

/* The group's scope in a generator body ends. Under g->lock or with g
 * private. */
static void end_scope(weft_group *g)
{
    if (g->scope) {
        atomic_fetch_sub(&g->scope->open_scopes, 1);
        g->scope = NULL;
    }
}

int weft_group_free(weft_group *g)
{
    if (!g)
        return -EINVAL;
    weft__lock_acquire(&g->lock);
    uint64_t live = g->live;
    bool waited = g->waiting != 0;
    weft__lock_release(&g->lock);
    if (live || waited)
        return -EBUSY;
    end_scope(g);
    weft__free(g, sizeof *g);
    return 0;
}

/* Cancels every running member. Under g->lock. */
static void cancel_members(weft_group *g)
{
    g->cancelling = true;
    for (struct member *m = g->members; m; m = m->next)
        if (m->task)
            (void)weft_cancel(m->task);
}

static void *member_entry(void *arg)
{
    struct member *m = arg;
    weft_group *g = m->g;
    void *r = m->fn(m->arg);
    int err = weft_err_of(r);
    weft__lock_acquire(&g->lock);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    if (err && !g->first_err) {
        g->first_err = err;
        cancel_members(g);
    }
    if (--g->live == 0)
        weft__waitq_wake_all(&g->waiter);
    weft__lock_release(&g->lock);
    weft__free(m, sizeof *m);
    return r;
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    if (!weft__current_task())
        return -EPERM;
    if (!g || !fn)
        return -EINVAL;
    struct member *m = weft__zalloc(sizeof *m);
    if (!m)
        return -ENOMEM;
    m->g = g;
    m->fn = fn;
    m->arg = arg;
    weft_task *t;
    /* Listed before it can run, under the lock, so that it can neither
     * finish nor be missed by a cancellation before it is on the list. */
    weft__lock_acquire(&g->lock);
    int err = weft_spawn(&t, member_entry, m);
    if (err < 0) {
        weft__lock_release(&g->lock);
        weft__free(m, sizeof *m);
        return err;
    }
    m->task = t;
    m->next = g->members;
    if (g->members)
        g->members->prev = m;
    g->members = m;
    g->live++;
    if (g->cancelling)
        (void)weft_cancel(t);
    weft__lock_release(&g->lock);
    (void)weft_detach(t);
    return 0;
}

int weft_group_wait(weft_group *g)
{
    return weft_group_wait_until(g, WEFT__NEVER);
}

int weft_group_wait_until(weft_group *g, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!g)
        return -EINVAL;
    bool cancelled = false;
    weft__lock_acquire(&g->lock);
    if (g->waiting) {
        weft__lock_release(&g->lock);
        return -EBUSY;
    }
    g->waiting = 1;
    weft__lock_release(&g->lock);
    for (;;) {
        weft__lock_acquire(&g->lock);
        if (g->live == 0) {
            int err = cancelled ? -ECANCELED : g->first_err;
            end_scope(g);
            g->waiting = 0;
            weft__lock_release(&g->lock);
            return err;
        }
        if (!cancelled && weft__cancel_take(self) < 0) {
            cancelled = true;
            cancel_members(g);
        }
        /* Once the members are cancelled, they are waited for to the end:
         * no deadline then. */
        uint64_t until = cancelled ? WEFT__NEVER : deadline;
        if (until != WEFT__NEVER && until <= weft_now()) {
            g->waiting = 0;
            weft__lock_release(&g->lock);
            return -ETIMEDOUT;
        }
        struct weft__waiter local, *me = weft__waiters(self, &local, 1);
        *me = (struct weft__waiter){.task = self, .seq = weft__wait_seq(self)};
        weft__waitq_push(&g->waiter, me);
        int how = weft__wait(self, me->seq, &g->lock, until, WEFT_W_GROUP, g, cancelled);
        if (how != WEFT_WAKE_WOKEN) {
            weft__lock_acquire(&g->lock);
            weft__waitq_unlink(&g->waiter, me);
            if (how == WEFT_WAKE_TIMEDOUT) {
                /* The members run on; the group stays open. */
                g->waiting = 0;
                weft__lock_release(&g->lock);
                return -ETIMEDOUT;
            }
            weft__lock_release(&g->lock);
            if (how == WEFT_WAKE_CANCELED)
                (void)weft__wait_error(self, how); /* use the request up */
            else if (how < 0) {
                weft__lock_acquire(&g->lock);
                g->waiting = 0;
                weft__lock_release(&g->lock);
                return how;
            }
            if (!cancelled) {
                cancelled = true;
                weft__lock_acquire(&g->lock);
                cancel_members(g);
                weft__lock_release(&g->lock);
            }
        }
    }
}
