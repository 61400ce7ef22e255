/*
 * Timers: one 4-ary min-heap per worker of sleeping tasks, keyed by
 * deadline (Go's choice since 1.14: per-P heaps, no global lock). Each task
 * knows its heap position (heap_idx), so a sleep can be removed in
 * O(log n) when a task is cancelled. A 4-ary heap is half as deep as a
 * binary one and its four children share a cache line of pointers.
 *
 * Rejected: a hierarchical timing wheel gives O(1) insert but needs a tick
 * and cascading; at the sizes here (10^5-10^6 sleepers) the heap's log n is
 * 9-10 levels and costs less than the wheel's bookkeeping.
 *
 * The scheduler looks at the heap when its run queue is empty and every 61
 * scheduling decisions otherwise (worker.c), never on every yield.
 *
 * Owner worker only: no locks. weft_sleep lives here too.
 */
#include "timer.h"

#include <errno.h>
#include <time.h>

#include "alloc.h"
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
    t->heap = NULL;
    t->len = t->cap = 0;
    t->fired = 0;
}

void weft__timers_term(struct weft__timers *t)
{
    weft__free(t->heap, t->cap * sizeof t->heap[0]);
    weft__timers_init(t);
}

static void place(struct weft__timers *t, uint32_t i, struct weft__task *task)
{
    t->heap[i] = task;
    task->heap_idx = i;
}

static void sift_up(struct weft__timers *t, uint32_t i)
{
    struct weft__task *task = t->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (t->heap[parent]->deadline <= task->deadline)
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, task);
}

static void sift_down(struct weft__timers *t, uint32_t i)
{
    struct weft__task *task = t->heap[i];
    for (;;) {
        uint32_t first = i * ARITY + 1;
        if (first >= t->len)
            break;
        uint32_t best = first;
        uint32_t end = first + ARITY < t->len ? first + ARITY : t->len;
        for (uint32_t c = first + 1; c < end; c++)
            if (t->heap[c]->deadline < t->heap[best]->deadline)
                best = c;
        if (t->heap[best]->deadline >= task->deadline)
            break;
        place(t, i, t->heap[best]);
        i = best;
    }
    place(t, i, task);
}

int weft__timers_reserve(struct weft__timers *t)
{
    if (t->len == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        struct weft__task **h = weft__realloc(t->heap, t->cap * sizeof *h, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        t->heap = h;
        t->cap = cap;
    }
    return 0;
}

int weft__timer_add(struct weft__timers *t, struct weft__task *task)
{
    int err = weft__timers_reserve(t);
    if (err < 0)
        return err;
    t->heap[t->len] = task;
    sift_up(t, t->len++);
    return 0;
}

void weft__timer_del(struct weft__timers *t, struct weft__task *task)
{
    uint32_t i = task->heap_idx;
    struct weft__task *last = t->heap[--t->len];
    if (i == t->len)
        return;
    place(t, i, last);
    if (i > 0 && t->heap[(i - 1) / ARITY]->deadline > last->deadline)
        sift_up(t, i);
    else
        sift_down(t, i);
}

uint64_t weft__timers_next(const struct weft__timers *t)
{
    return t->len ? t->heap[0]->deadline : UINT64_MAX;
}

struct weft__task *weft__timers_pop_due(struct weft__timers *t, uint64_t now)
{
    if (t->len == 0 || t->heap[0]->deadline > now)
        return NULL;
    struct weft__task *task = t->heap[0];
    weft__timer_del(t, task);
    t->fired++;
    return task;
}

/* After the sleeper's switch: only now may it be fired (and so stolen). */
static void commit_sleep(struct weft__worker *w, struct weft__task *self, void *arg)
{
    (void)arg;
    weft__timer_add(&w->timers, self); /* cannot fail: reserved before the switch */
    atomic_store_explicit(&w->ntimers, w->timers.len, memory_order_relaxed);
}

int weft_sleep(uint64_t ns)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    if (ns == 0)
        return weft_yield();
    struct weft__task *self = w->current;
    uint64_t now = weft_now();
    self->deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
    int err = weft__timers_reserve(&w->timers);
    if (err < 0)
        return err;
    atomic_store_explicit(&self->state, WEFT_T_BLOCKED, memory_order_relaxed);
    self->wait = WEFT_W_SLEEP;
    weft__worker_suspend(w, self, commit_sleep, NULL);
    return 0;
}
