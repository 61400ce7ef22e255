/*
 * Timers: one 4-ary min-heap per worker of waiting tasks, keyed by
 * deadline (Go's choice since 1.14: per-P heaps, no global lock). Every
 * wait with a deadline puts its task here: sleeps, and the deadline forms
 * of joins, futures, channels and locks. Each task knows its heap position
 * (heap_idx), so a deadline whose wait ended otherwise (woken, cancelled)
 * is removed in O(log n) by the task itself when it resumes, from
 * whichever worker's heap holds it: the heap's spin lock makes that safe,
 * and means no stale entry outlives its wait. A firing deadline ends the
 * wait of the seq it was armed with (waitq.c), which fails harmlessly if
 * something else ended it first. A 4-ary heap is half as deep as a binary
 * one, and an entry holds its deadline beside its task (16 bytes), so
 * that the four children compared at each level of a sift are one cache
 * line of the array: a sift through 100,000 sleepers then misses the
 * cache once a level (the moved task's heap_idx), not five times (each
 * child's task). On W6 (100,000 sleepers, shared stacks) that took the
 * heap's removals from 6.3% to 5.1% of the samples and the run from +69.9
 * to +66.5 ms over the ideal (medians of 9 interleaved rounds).
 *
 * Rejected: a hierarchical timing wheel gives O(1) insert but needs a tick
 * and cascading; at the sizes here (10^5-10^6 sleepers) the heap's log n is
 * 9-10 levels and costs less than the wheel's bookkeeping.
 *
 * The scheduler looks at the heap when its run queue is empty and every 61
 * scheduling decisions otherwise (worker.c), never on every yield.
 *
 * Only the owner adds; the owner fires, and so does an idle worker when
 * a deadline in a busy worker's heap has passed (worker.c); removals come
 * from any worker; all under the heap's lock. weft_sleep lives here too.
 */
#include "timer.h"

#include <errno.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "waitq.h"
#include "task.h"
#include "worker.h"

#define ARITY 4

uint64_t weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weft__timers_init(struct weft__timers *t)
{
    weft__lock_init(&t->lock);
    t->heap = NULL;
    t->len = t->cap = 0;
    t->fired = 0;
}

void weft__timers_term(struct weft__timers *t)
{
    weft__free(t->heap, t->cap * sizeof t->heap[0]);
    weft__timers_init(t);
}

static void place(struct weft__timers *t, uint32_t i, struct weft__timer_ent e)
{
    t->heap[i] = e;
    e.task->heap_idx = i;
}

static void sift_up(struct weft__timers *t, uint32_t i)
{
    struct weft__timer_ent e = t->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (t->heap[parent].deadline <= e.deadline)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, e);
}

static void sift_down(struct weft__timers *t, uint32_t i)
{
    struct weft__timer_ent e = t->heap[i];
    for (;;) {
        uint32_t first = i * ARITY + 1;
        if (first >= t->len)
            break;
        uint32_t best = first;
        uint32_t end = first + ARITY < t->len ? first + ARITY : t->len;
        for (uint32_t c = first + 1; c < end; c++)
            if (t->heap[c].deadline < t->heap[best].deadline)
                best = c;
        if (t->heap[best].deadline >= e.deadline)
            break;
        place(t, i, t->heap[best]);
        i = best;
    }
    place(t, i, e);
}

static int reserve(struct weft__timers *t)
{
    if (t->len == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        struct weft__timer_ent *h = weft__realloc(t->heap, t->cap * sizeof *h, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        t->heap = h;
        t->cap = cap;
    }
    return 0;
}

void weft__timer_del(struct weft__timers *t, struct weft__task *task)
{
    uint32_t i = task->heap_idx;
    task->heap_idx = UINT32_MAX;
    struct weft__timer_ent last = t->heap[--t->len];
    if (i == t->len)
        return;
    place(t, i, last);
    if (i > 0 && t->heap[(i - 1) / ARITY].deadline > last.deadline)
        sift_up(t, i);
    else
        sift_down(t, i);
}

int weft__timer_add(struct weft__timers *t, struct weft__task *task)
{
    int err = reserve(t);
    if (err < 0)
        return err;
    t->heap[t->len] = (struct weft__timer_ent){task->deadline, task};
    sift_up(t, t->len++);
    return 0;
}

uint64_t weft__timers_first(const struct weft__timers *t)
{
    return t->len ? t->heap[0].deadline : UINT64_MAX;
}

struct weft__task *weft__timers_pop_due(struct weft__timers *t, uint64_t now)
{
    if (t->len == 0 || t->heap[0].deadline > now)
        return NULL;
    struct weft__task *task = t->heap[0].task;
    weft__timer_del(t, task);
    __atomic_store_n(&t->fired, t->fired + 1, __ATOMIC_RELAXED); /* read by stats */
    return task;
}

static void publish_len(struct weft__worker *w)
{
    atomic_store_explicit(&w->ntimers, w->timers.len, memory_order_relaxed);
}

int weft__timers_reserve(struct weft__worker *w)
{
    weft__lock_acquire(&w->timers.lock);
    int err = reserve(&w->timers);
    weft__lock_release(&w->timers.lock);
    return err;
}

void weft__timer_arm(struct weft__worker *w, struct weft__task *task, uint64_t deadline,
                     uint64_t seq)
{
    struct weft__timers *t = &w->timers;
    weft__lock_acquire(&t->lock);
    task->deadline = deadline;
    task->timer_seq = seq;
    task->timer_w = w;
    if (weft__timer_add(t, task) < 0) /* reserved before the switch */
        weft__panic("timer heap: no room after reserving");
    publish_len(w);
    weft__lock_release(&t->lock);
    /* This worker may stay busy with one long task: the parked poller
     * must wake for the deadline. */
    weft__worker_timer_armed(w->rt, deadline);
}

void weft__timer_disarm_slow(struct weft__task *task)
{
    struct weft__worker *w = task->timer_w;
    weft__lock_acquire(&w->timers.lock);
    if (task->heap_idx != UINT32_MAX) {
        weft__timer_del(&w->timers, task);
        publish_len(w);
    }
    weft__lock_release(&w->timers.lock);
    task->timer_w = NULL;
}

void weft__timers_fire(struct weft__worker *w)
{
    weft__timers_fire_from(w, w);
}

void weft__timers_fire_from(struct weft__worker *self, struct weft__worker *w)
{
    (void)self; /* woken tasks go to the calling worker (weft__wake) */
    struct weft__timers *t = &w->timers;
    uint64_t now = weft_now();
    for (;;) {
        weft__lock_acquire(&t->lock);
        struct weft__task *task = weft__timers_pop_due(t, now);
        if (!task) {
            weft__lock_release(&t->lock);
            return;
        }
        /* Read under the lock: once the entry is gone the task may start
         * a new wait with a new seq. */
        uint64_t seq = task->timer_seq;
        weft__lock_release(&t->lock);
        weft__wake(task, seq, WEFT_WAKE_TIMEDOUT);
        /* Only now, with the task queued: the last worker to go idle takes
         * an empty heap everywhere and nothing queued for a deadlock. */
        weft__lock_acquire(&t->lock);
        publish_len(w);
        weft__lock_release(&t->lock);
    }
}

uint64_t weft__timers_next(struct weft__worker *w)
{
    weft__lock_acquire(&w->timers.lock);
    uint64_t when = weft__timers_first(&w->timers);
    weft__lock_release(&w->timers.lock);
    return when;
}

int weft_sleep(uint64_t ns)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    struct weft__task *self = w->current;
    int err = weft__cancel_take(self);
    if (err < 0 || ns == 0)
        return err < 0 ? err : weft_yield();
    uint64_t now = weft_now();
    uint64_t deadline = ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + ns;
    return weft_sleep_until(deadline);
}

int weft_sleep_until(uint64_t deadline)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    struct weft__task *self = w->current;
    int err = weft__cancel_take(self);
    if (err < 0)
        return err;
    if (deadline <= weft_now())
        return weft_yield();
    uint64_t seq = weft__wait_seq(self);
    int how = weft__wait(self, seq, NULL, deadline, WEFT_W_SLEEP, NULL, false);
    /* A sleep that reaches its deadline has done what it was asked. */
    return how == WEFT_WAKE_TIMEDOUT ? 0 : weft__wait_error(self, how);
}
