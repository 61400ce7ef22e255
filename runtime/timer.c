/*
 * Timers: one 4-ary min-heap per worker of waiting tasks, keyed by
 * deadline (Go's choice since 1.14: per-P heaps, no global lock). Every
 * wait with a deadline puts its task here: sleeps, and the deadline forms
 * of joins, futures, channels and locks. A firing deadline ends the wait
 * of the seq it was armed with (waitq.c), which fails harmlessly if
 * something else ended it first.
 *
 * Deletion is lazy, as Go's timers are: a deadline whose wait ended
 * otherwise (woken, cancelled) is not taken out of the heap; the task
 * clears its timer_id, which makes the entry stale, and a stale entry is
 * dropped when it reaches the top (or, when a cancel leaves stale entries
 * outnumbering live ones, in one O(n) rebuild). So no entry records its position
 * in the task, and a sift moves entries within the array and touches no
 * task: before, every level of a sift wrote the moved task's heap index,
 * a cache miss a level in a heap of 100,000 sleepers. `live` is what the
 * rest of the runtime sees (ntimers: deadlock detection, stats).
 *
 * A 4-ary heap is half as deep as a binary one, and an entry holds its
 * deadline beside its task, so the children compared at each level of a
 * sift lie together in the array.
 *
 * The run. Deadlines mostly arrive in order: a deadline is now plus a
 * duration, and a program's waits tend to share a few durations (a
 * sleep in a loop, one timeout for every request). An entry whose
 * deadline is no earlier than the newest in the run goes to the back of
 * the run, a FIFO ring, in O(1); only one that would break its order goes
 * into the heap. The earliest deadline is the earlier of the run's front
 * and the heap's top. So a worker whose waits share one duration never
 * sifts: W6 (100,000 sleepers of 10 ms), whose every pop sifted the
 * heap's last entry down all 8 levels, 280 instructions and a cache miss
 * a level, now pops in a few. Stale entries are dropped at the front of
 * the run as at the top of the heap.
 *
 * Rejected: a hierarchical timing wheel gives O(1) insert but needs a tick
 * and cascading; at the sizes here (10^5-10^6 sleepers) the heap's log n is
 * 9-10 levels and costs less than the wheel's bookkeeping.
 *
 * The scheduler looks at the heap when its run queue is empty and every 61
 * scheduling decisions otherwise (worker.c), never on every yield.
 *
 * Only the owner adds; the owner fires, and so does an idle worker when
 * a deadline in a busy worker's heap has passed (worker.c); cancels come
 * from any worker; all under the heap's lock. weft_sleep lives here too.
 */
#include "timer.h"

#include <errno.h>
#include <stdbool.h>
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
    t->len = t->cap = t->live = 0;
    t->run = NULL;
    t->run_head = t->run_len = t->run_cap = 0;
    t->next_id = 0;
    t->fired = 0;
}

void weft__timers_term(struct weft__timers *t)
{
    weft__free(t->heap, t->cap * sizeof t->heap[0]);
    weft__free(t->run, t->run_cap * sizeof t->run[0]);
    weft__timers_init(t);
}

static void sift_up(struct weft__timers *t, uint32_t i)
{
    struct weft__timer_ent e = t->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (t->heap[parent].deadline <= e.deadline)
            break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
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
        t->heap[i] = t->heap[best];
        i = best;
    }
    t->heap[i] = e;
}

/* The run's entry i (0 is the front). */
static inline struct weft__timer_ent *run_at(const struct weft__timers *t, uint32_t i)
{
    return &t->run[(t->run_head + i) & (t->run_cap - 1)];
}

/* Room for one more entry in the heap and one in the run: the entry goes
 * to one of them, which only its deadline decides. */
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
    if (t->run_len == t->run_cap) {
        /* Doubled and unwrapped: the entries go to the front, in order. */
        uint32_t cap = t->run_cap ? t->run_cap * 2 : 64;
        struct weft__timer_ent *r = weft__alloc(cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        for (uint32_t i = 0; i < t->run_len; i++)
            r[i] = *run_at(t, i);
        weft__free(t->run, t->run_cap * sizeof *r);
        t->run = r;
        t->run_head = 0;
        t->run_cap = cap;
    }
    return 0;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/* Under t's lock. Another heap's lock may guard the task's fields now, but
 * once it left t (under t's lock) they never name t again unless it is
 * armed in t anew, which is under t's lock too. */
static inline bool is_live(const struct weft__timers *t, const struct weft__timer_ent *e)
{
    return LOAD(e->task->timer_id) == e->id && LOAD(e->task->timer_heap) == t;
}

/* Takes the top entry out. */
static void remove_top(struct weft__timers *t)
{
    t->heap[0] = t->heap[--t->len];
    if (t->len > 1)
        sift_down(t, 0);
}

/* Takes the run's front entry out. */
static void remove_front(struct weft__timers *t)
{
    t->run_head = (t->run_head + 1) & (t->run_cap - 1);
    t->run_len--;
}

/* Drops the stale entries at the top of the heap and the front of the
 * run. */
static void drop_stale_top(struct weft__timers *t)
{
    while (t->len && !is_live(t, &t->heap[0]))
        remove_top(t);
    while (t->run_len && !is_live(t, run_at(t, 0)))
        remove_front(t);
}

/* The entry with the earliest deadline, from the heap or the run (ties:
 * the run's, the older), or NULL when both are empty. Stale tops dropped
 * first. */
static struct weft__timer_ent *earliest(struct weft__timers *t, bool *from_run)
{
    drop_stale_top(t);
    struct weft__timer_ent *h = t->len ? &t->heap[0] : NULL;
    struct weft__timer_ent *r = t->run_len ? run_at(t, 0) : NULL;
    *from_run = r && (!h || r->deadline <= h->deadline);
    return *from_run ? r : h;
}

/* Stale entries outnumber live ones: keep the live ones, heapify, and
 * close the run's gaps (its order kept). */
static void compact(struct weft__timers *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->len; i++)
        if (is_live(t, &t->heap[i]))
            t->heap[n++] = t->heap[i];
    t->len = n;
    for (uint32_t i = n / ARITY + 1; i-- > 0;)
        if (i < n)
            sift_down(t, i);
    n = 0;
    for (uint32_t i = 0; i < t->run_len; i++)
        if (is_live(t, run_at(t, i)))
            *run_at(t, n++) = *run_at(t, i);
    t->run_len = n;
}

/* The task's live entry in t is gone (fired) or stale (cancelled). */
static void forget(struct weft__timers *t, struct weft__task *task)
{
    STORE(task->timer_id, 0);
    STORE(task->timer_heap, NULL);
    t->live--;
}

bool weft__timer_cancel(struct weft__timers *t, struct weft__task *task)
{
    if (LOAD(task->timer_id) == 0 || LOAD(task->timer_heap) != t)
        return false;
    forget(t, task);
    drop_stale_top(t);
    uint32_t stale = t->len + t->run_len - t->live;
    if (stale > 64 && stale > t->live)
        compact(t);
    return true;
}

int weft__timer_add(struct weft__timers *t, struct weft__task *task, uint64_t deadline)
{
    int err = reserve(t);
    if (err < 0)
        return err;
    uint64_t id = ++t->next_id;
    STORE(task->timer_id, id);
    STORE(task->timer_heap, t);
    struct weft__timer_ent e = {deadline, task, id};
    if (t->run_len == 0 || run_at(t, t->run_len - 1)->deadline <= e.deadline) {
        *run_at(t, t->run_len++) = e;
    } else {
        t->heap[t->len] = e;
        sift_up(t, t->len++);
    }
    t->live++;
    return 0;
}

uint64_t weft__timers_first(struct weft__timers *t)
{
    bool from_run;
    const struct weft__timer_ent *e = earliest(t, &from_run);
    return e ? e->deadline : UINT64_MAX;
}

struct weft__task *weft__timers_pop_due(struct weft__timers *t, uint64_t now)
{
    bool from_run;
    const struct weft__timer_ent *e = earliest(t, &from_run);
    if (!e || e->deadline > now)
        return NULL;
    struct weft__task *task = e->task;
    if (from_run)
        remove_front(t);
    else
        remove_top(t);
    forget(t, task);
    __atomic_store_n(&t->fired, t->fired + 1, __ATOMIC_RELAXED); /* read by stats */
    return task;
}

static void publish_len(struct weft__worker *w)
{
    atomic_store_explicit(&w->ntimers, w->timers.live, memory_order_relaxed);
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
    task->timer_seq = seq;
    atomic_store_explicit(&task->timer_w, w, memory_order_relaxed);
    if (weft__timer_add(t, task, deadline) < 0) /* reserved before the switch */
        weft__panic("timer heap: no room after reserving");
    publish_len(w);
    weft__lock_release(&t->lock);
    /* This worker may stay busy with one long task: the parked poller
     * must wake for the deadline. */
    weft__worker_timer_armed(w->rt, deadline);
}

void weft__timer_disarm_slow(struct weft__task *task, struct weft__worker *w)
{
    weft__lock_acquire(&w->timers.lock);
    if (weft__timer_cancel(&w->timers, task))
        publish_len(w);
    weft__lock_release(&w->timers.lock);
    atomic_store_explicit(&task->timer_w, NULL, memory_order_relaxed);
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
         * a new wait with a new seq. Its deadline is gone, so its disarm
         * has nothing to do: release, so that a task that sees NULL there
         * (woken by this fire, or by another party first, when this wake
         * fails) arms its next deadline only after this read. */
        uint64_t seq = task->timer_seq;
        atomic_store_explicit(&task->timer_w, NULL, memory_order_release);
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

/* Sleeps the calling task until deadline, which is in the future. */
static int sleep_until(struct weft__task *self, uint64_t deadline)
{
    uint64_t seq = weft__wait_seq(self);
    int how = weft__wait(self, seq, NULL, deadline, WEFT_W_SLEEP, NULL, false);
    /* A sleep that reaches its deadline has done what it was asked. */
    return how == WEFT_WAKE_TIMEDOUT ? 0 : weft__wait_error(self, how);
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
    /* In the future by construction: one clock read, not two. */
    return sleep_until(self, ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + ns);
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
    return sleep_until(self, deadline);
}
