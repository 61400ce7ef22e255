/*
 * The worker: one thread, one scheduler of tasks, and how workers share
 * work: stealing, the injection queue, searching and parking.
 *
 * What it owns: the choice of the next task, every context switch, the idle
 * loop, the hand-off of a finished task's stack, and the counters that say
 * what each worker did.
 *
 * Choosing the next task (pick_next), in order:
 *   1. every 61 decisions, a maintenance pass: due timers, then the
 *      injection queue and (LIFO mode) the oldest task of the ring, so that
 *      none of them waits behind a stream of new work for more than 61
 *      decisions (Go checks its global queue on the same count; a LIFO
 *      order needs the bound, see Tokio's #4941); every 61st pass the
 *      oldest yielder goes first;
 *   2. the ring: its newest task (LIFO, the default: what the running task
 *      just spawned or woke runs next, so fork-join work runs depth-first,
 *      cache-warm, with few tasks alive) or its oldest (WEFT_LIFO=0);
 *   3. the injection queue (where a full ring's older half went);
 *   4. the tasks that yielded, oldest first; then due timers;
 *   5. (in the idle loop) stealing: a share of another worker's ring.
 *
 * Switching. A task that suspends switches directly to the next task: one
 * register swap. Only when nothing is ready does it switch to the worker's
 * own context (`sched`, on the thread's native stack), which searches and
 * parks. Every swap hands the worker pointer to the resumed side, and
 * whoever resumes a task first writes t->worker: that is how a task learns
 * which worker it is on after a suspension, since it may have migrated;
 * nothing read before a suspension is trusted after it.
 *
 * Commit after the switch. A task that suspends must not be visible to
 * other workers while its registers are still being saved: a thief would
 * resume a half-saved context. So nothing makes the suspending task
 * runnable before the switch; the caller of weft__worker_suspend passes a
 * commit function that runs on the next context, right after the swap
 * (after_switch): it queues a yielder, arms a sleeper's timer, registers a
 * joiner with the task it joins, or reaps a task that exited (its stack
 * back to the cache, its joiner woken). This is Go's gopark unlock
 * function, and it is why no task is ever resumed twice.
 *
 * Idle workers. A worker with nothing to run searches: it tries to steal
 * from every other worker (in the order the victim knob says) and looks at
 * the injection queue, twice, then parks on a futex. At most half of the
 * workers search at once (more would only fight over the same rings). When
 * a task is made runnable, the worker that did it wakes a parked worker if
 * none is searching; a searcher that finds work and was the last one wakes
 * another, so stealing ramps up one worker at a time (Go's spinning-M
 * rule).
 *
 * No lost wakeup: the waker publishes the task (its ring store), then
 * executes a full fence, then reads the idle and searching counts; a
 * parking worker puts itself on the idle stack with a read-modify-write of
 * the idle count, then looks at every ring and the injection queue again
 * before sleeping. Either the waker sees the parker counted idle and wakes
 * it, or the parker sees the task. Only a push onto an empty ring (or into
 * the injection queue) pays for the fence: a ring that was not empty has
 * been non-empty since its last such push, so any worker that parked since
 * saw it in its last look, and any that parked before was dealt with by
 * that push. A parked worker sleeps until woken or
 * until its next timer: an idle runtime uses no CPU.
 *
 * The end. The last worker to park (every worker on the idle stack, every
 * ring and the injection queue empty) decides: no task alive means the run
 * is over (weft_run), or the runtime was asked to stop (embedding); tasks
 * alive but no timer anywhere means deadlock: it lists the blocked tasks.
 *
 * Threads: everything here runs on the worker's own thread except what the
 * comments in worker.h say may be called from anywhere.
 */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "poller.h"
#include "race.h"
#include "runtime.h"
#include "task.h"
#include "waitq.h"

#define MAINTENANCE_INTERVAL 61
#define HOT_STACKS_KEPT_IDLE 64
#define SEARCH_ROUNDS 2
#define NEXT_GRACE_NS 5000 /* no switch for 5 us: the owner is busy with one task */
#define ID_BLOCK 1024

/* Read by name from inline asm (worker.h): kept, and under this name,
 * whatever GCC's link-time optimization sees of its uses (clang knows no
 * externally_visible, and its builds here have no link-time
 * optimization). */
#if defined(__GNUC__) && !defined(__clang__)
#define WEFT__KEEP_NAME used, externally_visible
#else
#define WEFT__KEEP_NAME used
#endif
__thread struct weft__worker *weft__tls_worker
    __attribute__((tls_model("initial-exec"), WEFT__KEEP_NAME));

#if !(defined(__x86_64__) && defined(__LP64__) && defined(__ELF__))
/* Never inlined, and not pure (the empty volatile asm), even with the
 * whole program in view: see worker.h. */
__attribute__((noinline)) struct weft__worker *weft__worker_self(void)
{
    __asm__ volatile("");
    return weft__tls_worker;
}
#endif

/* A full fence: orders the store that published a task before the loads of
 * the idle counts (store-load, which release/acquire do not give). */
#if !defined(__x86_64__) || defined(WEFT_TSAN)
static _Atomic uint32_t fence_word;
#endif

static inline void fence_full(void)
{
#if defined(__x86_64__) && !defined(WEFT_TSAN)
    /* A locked add to the stack is a full barrier and cheaper than mfence. */
    __asm__ volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
    /* A sequentially consistent read-modify-write (TSan does not model
     * fences). */
    atomic_fetch_add(&fence_word, 0);
#endif
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* ---- the yield queue ------------------------------------------------ */

static void fifo_push(struct weft__fifo *q, struct weft__task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    q->len++;
}

static struct weft__task *fifo_pop(struct weft__fifo *q)
{
    struct weft__task *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return t;
}

/* ---- waking idle workers ------------------------------------------- */

/* Takes w off the idle stack if it is on it. Under rt->idle_lock. */
static bool unlist(struct weft__runtime *rt, struct weft__worker *w)
{
    if (!w->idle_listed)
        return false;
    for (struct weft__worker **p = &rt->idle; *p; p = &(*p)->idle_next) {
        if (*p == w) {
            *p = w->idle_next;
            w->idle_listed = false;
            atomic_fetch_sub(&rt->nidle, 1);
            return true;
        }
    }
    weft__panic("worker %u: marked idle but not on the idle stack", w->id);
}

/* A parked worker sleeps on its futex, or (the poller) in epoll_wait. The
 * stores and loads of park_word and `polling` are sequentially consistent
 * on both sides: the waker stores park_word then reads polling, the parker
 * stores polling then reads park_word, so either the waker interrupts the
 * poll or the parker sees it was woken and does not poll. */
static void wake(struct weft__worker *w)
{
    atomic_store(&w->park_word, 0);
    if (atomic_load(&w->polling))
        weft__poller_interrupt(&w->rt->poller);
    else
        futex(&w->park_word, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Takes a parked worker off the idle stack and wakes it, counted as
 * searching (it comes up looking for work). One asleep on its futex is
 * preferred, so that the poller keeps polling. Returns false when none was
 * parked. Any thread. */
/* Takes w off the idle stack, if it is there, and counts it searching: it
 * comes up looking for work, and no worker counts it idle meanwhile.
 * Returns whether it was there. Under rt->idle_lock. */
static bool take_off_idle(struct weft__runtime *rt, struct weft__worker *w)
{
    if (!unlist(rt, w))
        return false;
    atomic_fetch_add(&rt->nsearching, 1);
    return true;
}

static bool unpark_one(struct weft__runtime *rt)
{
    pthread_mutex_lock(&rt->idle_lock);
    struct weft__worker *w = rt->idle;
    for (struct weft__worker *u = w; u; u = u->idle_next) {
        if (!atomic_load_explicit(&u->polling, memory_order_relaxed)) {
            w = u;
            break;
        }
    }
    if (w)
        take_off_idle(rt, w);
    pthread_mutex_unlock(&rt->idle_lock);
    if (w)
        wake(w);
    return w != NULL;
}

void weft__worker_wake_all(struct weft__runtime *rt)
{
    while (unpark_one(rt))
        ;
}

/* Work was just made runnable: wake a parked worker if none is searching. */
static inline void notify(struct weft__runtime *rt)
{
    fence_full();
    if (atomic_load_explicit(&rt->nsearching, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&rt->nidle, memory_order_relaxed) > 0)
        unpark_one(rt);
}

/* ---- run queues ----------------------------------------------------- */

/* The ring is full: moves its older half to the injection queue. */
static void overflow(struct weft__worker *w, struct weft__task *t)
{
    struct weft__task *batch[WEFT_RING_SLOTS / 2 + 1];
    int n = weft__ring_take_oldest(&w->ring, batch, WEFT_RING_SLOTS / 2, true);
    if (n < 0)
        n = 0;
    /* t goes where the half made room, so that the injection queue keeps
     * the order of spawns and a join in that order finds each child at its
     * head (task.c). A thief mid-steal (n == 0) leaves no room: then t
     * follows the batch. */
    if (n == 0 || !weft__ring_push(&w->ring, t))
        batch[n++] = t;
    /* Shared-stack tasks pinned here go to this worker's inbox: through the
     * injection queue another worker would only send them back. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (__builtin_expect(batch[i]->home != NULL, 0)) {
            batch[i]->next = NULL;
            weft__inject_push(&w->inbox, batch[i], batch[i], 1);
        } else {
            batch[m++] = batch[i];
        }
    }
    for (int i = 0; i + 1 < m; i++)
        batch[i]->next = batch[i + 1];
    if (m)
        weft__inject_push(&w->rt->inject, batch[0], batch[m - 1], (uint64_t)m);
    WEFT_CNT_ADD(w->n.overflows, 1);
}

/* ---- shared stacks ------------------------------------------------------
 *
 * A task spawned with WEFT_TASK_SHARED_STACK has no stack of its own. It
 * runs on its home worker's shared stack (the worker of its first run),
 * whose `occupant` it is while its bytes are there. When a switch brings
 * another shared-stack task onto the stack, the occupant's used bytes,
 * from its saved stack pointer to the top, are copied to its `saved`
 * buffer (the copy out), and the arriving task's bytes are copied back to
 * the same addresses (the copy in). Switches between a shared-stack task
 * and any other context copy nothing. The copy cannot be made while the
 * thread runs on the shared stack itself: a switch from the occupant to
 * another shared-stack task goes through the idle loop (`pending`), which
 * runs on the thread's own stack.
 *
 * The copied bytes hold absolute addresses (frame pointers, pointers to
 * locals), so the task must come back to the same addresses: it stays
 * with its home worker. A worker that finds one of another's shared-stack
 * tasks in its queues (stolen, shared, readied there) sends it home
 * through the home's `inbox` and wakes the home if it is parked; the home
 * looks at its inbox when its ring is empty and at each maintenance pass.
 * The inbox push, a full fence and the look at park_word, against the
 * parker's park_word store, its RMW and its look at the inbox in park(),
 * is the usual pairing: one of the two sees the other. */

/* Whether t must run on another worker than w. */
static inline bool misplaced(const struct weft__worker *w, const struct weft__task *t)
{
    return __builtin_expect(t->home != NULL, 0) && t->home != w;
}

/* Sends t, runnable, to its home worker. Any thread. */
static void send_home(struct weft__task *t)
{
    struct weft__worker *h = t->home, *me = weft__worker_self();
    if (me)
        WEFT_CNT_ADD(me->n.forwarded, 1);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) != WEFT_T_NEW)
        atomic_store_explicit(&t->state, WEFT_T_READY, memory_order_relaxed);
    t->next = NULL;
    weft__inject_push(&h->inbox, t, t, 1);
    fence_full();
    if (atomic_load(&h->park_word) == 1) {
        /* Taken off the idle stack here, as unpark_one does, so that no
         * worker counts it idle (and ends the run) once it runs t. */
        struct weft__runtime *rt = h->rt;
        pthread_mutex_lock(&rt->idle_lock);
        bool listed = take_off_idle(rt, h);
        pthread_mutex_unlock(&rt->idle_lock);
        if (listed)
            wake(h);
    }
}

/* Sends home the tasks of batch[0..n) that are another worker's, keeps
 * the rest in order, and returns how many it kept. For the batches that
 * move tasks from shared queues into w's own (steals, the injection
 * queue), so that w's ring never holds another's shared-stack task: the
 * hot path, a pop from the ring, need not look. */
static __attribute__((noinline)) uint32_t keep_own(struct weft__worker *w, struct weft__task **batch,
                                                 uint32_t n)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (misplaced(w, batch[i])) {
            send_home(batch[i]);
        } else {
            batch[kept++] = batch[i];
        }
    }
    return kept;
}

static struct weft__task *from_inbox(struct weft__worker *w)
{
    struct weft__task *t;
    return weft__inject_len(&w->inbox) && weft__inject_pop(&w->inbox, &t, 1) == 1 ? t : NULL;
}

/* Copies n bytes (a multiple of 8) between a stack and a buffer. Under
 * ASan the occupant's frames carry poisoned red zones, which a checked
 * copy would report: the copy is then unchecked. */
#ifdef WEFT_ASAN
__attribute__((no_sanitize_address)) static void stack_copy(void *dst, const void *src, size_t n)
{
    volatile uint64_t *d = dst;
    const volatile uint64_t *f = src;
    for (size_t i = 0; i < n / 8; i++)
        d[i] = f[i];
}
#else
static inline void stack_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}
#endif

/* ---- side blocks -------------------------------------------------------
 *
 * A shared-stack task's side block (task.h) is sized before the task has
 * run, so before anyone knows how many bytes it will copy out: to what
 * this worker's tasks have copied out lately. Any save larger than the
 * current room makes the next blocks larger at once; every SIDE_WINDOW
 * saves the size is set again from the largest of the window, so that a
 * few deep tasks once do not keep every later block large. The sizes are
 * jemalloc size classes whose slabs hold many blocks (512 bytes is one
 * page of 8, and W6 took 5% longer with it than with 640); a save past
 * the largest room gets a buffer of its own, as before.
 *
 * The bytes depend on how the program was built: W6's sleepers, with
 * the library linked in and optimized with the program (bench/), copy
 * out 256 bytes, in blocks of 448; the same wait through libweft.so,
 * whose calls are not inlined into the program, 300 to 450 bytes. With a
 * fixed 640 for both (and the larger frames of before, docs/bench.md),
 * W6 took 1.04x the time on 2 workers and 1.11x on 1, and 6 MiB more. */

#define SIDE_WINDOW 4096
static const uint32_t side_blocks[] = {448, 640, 896, 1280};
#define SIDE_BLOCKS (sizeof side_blocks / sizeof side_blocks[0])

static inline size_t side_room(uint32_t block)
{
    return block - offsetof(struct weft__task_side, room);
}

/* The smallest block whose room holds n bytes, else the largest. */
static uint32_t side_block_for(size_t n)
{
    for (size_t i = 0; i < SIDE_BLOCKS; i++)
        if (side_room(side_blocks[i]) >= n)
            return side_blocks[i];
    return side_blocks[SIDE_BLOCKS - 1];
}

/* A task on w's shared stack copied n bytes out. */
static void side_learn(struct weft__worker *w, size_t n)
{
    if (n > w->side_max)
        w->side_max = (uint32_t)n;
    if (++w->side_saves >= SIDE_WINDOW) {
        w->side_block = side_block_for(w->side_max);
        w->side_max = 0;
        w->side_saves = 0;
    } else if (n > side_room(w->side_block)) {
        w->side_block = side_block_for(n);
    }
}

/* A side block for t, about to run for the first time on w. */
static struct weft__task_side *side_new(struct weft__worker *w, struct weft__task *t)
{
    uint32_t size = w->side_block;
    struct weft__task_side *side = weft__alloc(size);
    if (!side)
        weft__panic("no memory for the %u bytes of shared-stack task \"%s\" (id %llu) "
                    "off its stack",
                    size, weft__task_name(t), (unsigned long long)t->id);
    side->size = size;
    return side;
}

/* The copy out: o's used bytes go to its buffer. o is suspended. */
static void shared_save(struct weft__worker *w, struct weft__task *o, char *hi)
{
    char *sp = o->fiber.sp;
    size_t n = (size_t)(hi - sp);
    side_learn(w, n);
    if (n > o->saved_cap) {
        /* The old bytes are stale (these replace them): no realloc. The
         * room in the side block stays with it. */
        size_t cap = (n + 255) & ~(size_t)255;
        void *b = weft__alloc(cap);
        if (b && weft__task_owns(o, o->saved))
            weft__free(o->saved, o->saved_cap);
        if (!b)
            weft__panic("no memory to copy the %zu stack bytes of task \"%s\" (id %llu) out", n,
                        weft__task_name(o), (unsigned long long)o->id);
        o->saved = b;
        o->saved_cap = (uint32_t)cap;
    }
    stack_copy(o->saved, sp, n);
    o->saved_len = (uint32_t)n;
    WEFT_CNT_ADD(w->n.shared_saves, 1);
    WEFT_CNT_ADD(w->n.shared_bytes, n);
}

static void task_entry(void *arg);

/* Puts t on w's shared stack before a switch to it. Returns false when the
 * thread runs on that stack now: the switch must go through the idle loop. */
static bool shared_enter(struct weft__worker *w, struct weft__task *t)
{
    if (misplaced(w, t))
        weft__panic("shared-stack task %llu about to run on worker %u, not on its home worker %u",
                    (unsigned long long)t->id, w->id, t->home->id);
    if (w->occupant == t)
        return true;
    struct weft__stack *s = w->shared_stack;
    if (!s) {
        s = weft__stack_get(&w->rt->stacks, &w->stacks, w->rt->cfg.stack_size);
        if (!s)
            weft__panic("no memory or mapping left for worker %u's shared stack (%zu bytes)", w->id,
                        w->rt->cfg.stack_size);
        w->shared_stack = s;
    }
    char *lo = s->lo, *hi = s->lo + s->size;
    char *here = __builtin_frame_address(0);
    if (here >= lo && here < hi)
        return false;
    if (w->occupant)
        shared_save(w, w->occupant, hi);
#ifdef WEFT_ASAN
    __asan_unpoison_memory_region(lo, s->size);
#endif
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == WEFT_T_NEW) {
        struct weft__task_side *side = side_new(w, t);
        t->side = side;
        t->waiters = side->waiters;
        t->waiters_cap = WEFT__TASK_WAITERS;
        t->saved = side->room;
        t->saved_cap = (uint32_t)side_room(side->size);
        t->home = w;
        weft__fiber_make(&t->fiber, lo, s->size, task_entry);
        t->fib = &t->fiber;
        WEFT_CNT_ADD(w->n.started, 1);
    } else {
        stack_copy(hi - t->saved_len, t->saved, t->saved_len);
    }
    w->occupant = t;
    return true;
}

/* Marks t, which has been made runnable on w, READY; or, when it is
 * another worker's shared-stack task, sends it home and returns false. */
static inline bool settle_ready(struct weft__worker *w, struct weft__task *t)
{
    /* A task that has not run has no home yet. */
    if (atomic_load_explicit(&t->state, memory_order_relaxed) != WEFT_T_NEW) {
        if (misplaced(w, t)) {
            send_home(t);
            return false;
        }
        atomic_store_explicit(&t->state, WEFT_T_READY, memory_order_relaxed);
    }
    return true;
}

void weft__worker_ready(struct weft__worker *w, struct weft__task *t)
{
    if (!settle_ready(w, t))
        return;
    /* Only a ring that was empty needs a wake-up: while it is not, every
     * worker that parks sees it in its last look (the essay above). */
    bool was_empty = weft__ring_len(&w->ring) == 0;
    if (!weft__ring_push(&w->ring, t)) {
        overflow(w, t);
        was_empty = true;
    }
    if (was_empty && w->rt->nworkers > 1)
        notify(w->rt);
}

/* The next slot. A task woken by the running task of this worker (a
 * channel hand-off, a lock released, a future resolved, a join's end) goes
 * here rather than into the ring, and no idle worker is woken for it: the
 * waker usually suspends soon (a reply awaited, a lock wanted again), and
 * this worker then runs the woken task at once, cache-warm, where waking a
 * worker costs a system call on the waker's side and sends the task
 * across cores (W5 on 2 workers: 620 ns a round trip with the wake-up, 225
 * without). It is Tokio's LIFO slot; Go's runnext is the same slot with a
 * wake-up. A second wake moves the first woken task to the ring (with the
 * usual wake-up), and so does the waker going on past a point where it is
 * plainly not about to suspend: a spawn, a checkpoint, an operation on a
 * buffered channel (weft__worker_flush_next); and so does a maintenance
 * pass that picks another task to run first (pick_next). Searching
 * workers take a victim's next task only when the victim has made no
 * switch for a grace period (steal_next), as Go's thieves do. What is
 * lost: a task woken by one that then computes without any of those calls
 * waits for it (docs/design/run-queues.md). Wakes from commits (w->commit
 * is set while one runs: a wait's own end, an exit waking its joiner) and
 * timer passes (in_sched) go to the ring, and a poll's to its batch
 * (weft__worker_polled), since the task running then did not make them. */
void weft__worker_woken_next(struct weft__worker *w, struct weft__task *t)
{
    if (!settle_ready(w, t))
        return;
    /* Only the owner puts a task in the slot; thieves only empty it. So an
     * empty slot stays empty until this store, which needs no exchange
     * (12 ns on a 2-vCPU EPYC guest). Release: a thief that takes t sees
     * it whole. */
    struct weft__task *old = atomic_load_explicit(&w->next_task, memory_order_relaxed);
    if (!old) {
        atomic_store_explicit(&w->next_task, t, memory_order_release);
        return;
    }
    old = atomic_exchange_explicit(&w->next_task, t, memory_order_acq_rel);
    if (old)
        weft__worker_ready(w, old);
}

/* Tasks woken by a poll, the I/O readiness of many connections at once,
 * are served first come, first served: they go to the injection queue as
 * one batch in the order epoll gave their descriptors, and from there into
 * a ring oldest-first (from_inject). Pushed onto the ring one by one, the
 * newest-first order would serve the connections of each poll in reverse
 * and, worse, put every later poll's connections ahead of an earlier
 * poll's that still wait: under load the oldest requests waited longest
 * (W9's p99: 1.29 ms this way against 0.57 with WEFT_LIFO=0, same
 * throughput). The batch costs one lock of the injection queue a poll. */
void weft__worker_polled(struct weft__worker *w, struct weft__task *t)
{
    if (t->home) { /* a shared-stack task: to its home worker's inbox */
        send_home(t);
        return;
    }
    atomic_store_explicit(&t->state, WEFT_T_READY, memory_order_relaxed);
    fifo_push(&w->polled, t);
}

void weft__worker_poll_end(struct weft__worker *w)
{
    w->polling_wakes = false;
    if (!w->polled.head)
        return;
    struct weft__fifo b = w->polled;
    w->polled = (struct weft__fifo){0};
    weft__inject_push(&w->rt->inject, b.head, b.tail, b.len);
    notify(w->rt);
}

/* Out of line: off the path of the decisions that find the slot empty. */
static __attribute__((noinline)) struct weft__task *take_next(struct weft__worker *w)
{
    return atomic_exchange_explicit(&w->next_task, NULL, memory_order_acquire);
}

void weft__worker_flush_next_slow(struct weft__worker *w)
{
    struct weft__task *t = take_next(w);
    if (t)
        weft__worker_ready(w, t);
}

void weft__worker_inject(struct weft__runtime *rt, struct weft__task *t)
{
    if (t->home) {
        send_home(t);
        return;
    }
    weft__inject_push(&rt->inject, t, t, 1);
    notify(rt);
}

/* A share of the injection queue: one task to run, the rest into the ring. */
static struct weft__task *from_inject(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    uint64_t len = weft__inject_len(&rt->inject);
    if (len == 0)
        return NULL;
    uint64_t want = len / rt->nworkers + 1;
    uint32_t room = weft__ring_room(&w->ring);
    if (want > room + 1)
        want = room + 1;
    if (want > WEFT_RING_SLOTS / 2)
        want = WEFT_RING_SLOTS / 2;
    struct weft__task *batch[WEFT_RING_SLOTS / 2];
    uint32_t n = weft__inject_pop(&rt->inject, batch, (uint32_t)want);
    if (n == 0)
        return NULL;
    WEFT_CNT_ADD(w->n.inject_pops, n);
    if ((n = keep_own(w, batch, n)) == 0)
        return NULL;
    /* The queue's order kept: the owner pops the ring's newest, so the
     * rest go in newest first, and the oldest of them runs next. */
    for (uint32_t i = 1, j = n - 1; i < j && j < WEFT_RING_SLOTS / 2; i++, j--) {
        struct weft__task *x = batch[i];
        batch[i] = batch[j];
        batch[j] = x;
    }
    weft__ring_push_many(&w->ring, batch + 1, n - 1);
    if (n > 1 && rt->nworkers > 1)
        notify(rt);
    return batch[0];
}

/* GIL mode: a waiter asks this worker's thread to give the token up. */
static inline bool gil_asked(const struct weft__worker *w)
{
    return __builtin_expect(w->rt->gil_on, 0) && w->gil_held &&
           weft__gil_drop_requested(&w->rt->gil);
}

/* Other workers may take deadlines out of this heap, so its length is
 * read through the published count. */
static inline bool has_timers(struct weft__worker *w)
{
    return atomic_load_explicit(&w->ntimers, memory_order_relaxed) != 0;
}

/* The yielded tasks are about to wait behind a running task while another
 * worker is idle: hand them to the injection queue, where it can get them. */
static void share_yields(struct weft__worker *w)
{
    if (w->yields.head && w->rt->nworkers > 1 &&
        atomic_load_explicit(&w->rt->nidle, memory_order_relaxed) > 0) {
        /* Shared-stack tasks pinned here stay: another worker would only
         * send them back (and be woken for nothing). */
        struct weft__fifo mine = {0}, others = {0};
        for (struct weft__task *t = w->yields.head, *next; t; t = next) {
            next = t->next;
            fifo_push(t->home ? &mine : &others, t);
        }
        w->yields = mine;
        if (others.head) {
            weft__inject_push(&w->rt->inject, others.head, others.tail, others.len);
            notify(w->rt);
        }
    }
}

static struct weft__task *own_oldest(struct weft__worker *w)
{
    struct weft__task *t;
    return weft__ring_take_oldest(&w->ring, &t, 1, false) == 1 ? t : NULL;
}

/* Descriptors are waited on and no worker polls: takes a look without
 * blocking, so that I/O is noticed while every worker is busy. Then, if a
 * parked worker could be polling instead and none is, wakes it to do so
 * (it takes the role when it parks again). */
static void poll_busy(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    if (!weft__poller_wanted(&rt->poller) || !weft__poller_acquire(&rt->poller))
        return;
    bool timed_out;
    weft__poller_poll(w, 0, &timed_out);
    weft__poller_release(&rt->poller);
    if (weft__poller_wanted(&rt->poller) &&
        atomic_load_explicit(&rt->nidle, memory_order_relaxed) > 0)
        unpark_one(rt);
}

void weft__worker_timer_armed(struct weft__runtime *rt, uint64_t deadline)
{
    if (rt->nworkers == 1)
        return; /* the one worker is running: it will look at its heap */
    uint64_t until = atomic_load(&rt->poller.until);
    if (until == 0) {
        if (atomic_load(&rt->nidle) > 0)
            unpark_one(rt); /* it parks again as the poller, which sees the deadline */
    } else if (until == WEFT__POLL_COMPUTING || deadline < until) {
        /* COMPUTING: the poller is reading the heaps, and may have read
         * this one before the deadline went in (both under the heap's
         * lock, so either it saw it or this look sees COMPUTING or its
         * result). Its poll, interrupted, returns at once and it reads
         * them again. Left alone, it slept past the deadline for as long
         * as this worker stayed busy with one task. */
        weft__poller_interrupt(&rt->poller);
    }
}

void weft__worker_io_waiting(struct weft__runtime *rt)
{
    if (atomic_load(&rt->poller.busy) == 0 && atomic_load(&rt->nidle) > 0)
        unpark_one(rt);
}

/* Fires w's passed deadlines from a decision: the wakes are the timer
 * pass's, not the suspending task's, so they go to the ring. */
static void fire_timers(struct weft__worker *w)
{
    w->in_sched = true;
    weft__timers_fire(w);
    w->in_sched = false;
}

static struct weft__task *maintenance(struct weft__worker *w)
{
    if (has_timers(w))
        fire_timers(w);
    /* Not here: a task suspending with an object's lock held may be the
     * caller, and the poll takes descriptors' locks. After the switch. */
    if (__builtin_expect(weft__poller_wanted(&w->rt->poller), 0))
        w->poll_due = true;
    /* Yielders wait for every other ready task, but not forever: one of
     * them goes first every 61 passes, counted whatever else is ready (a
     * stream of injected tasks that never ends must not starve them). */
    if (w->yields.head && ++w->yield_passes >= MAINTENANCE_INTERVAL) {
        w->yield_passes = 0;
        return fifo_pop(&w->yields);
    }
    /* Each goes first every other pass, so that neither a steady stream of
     * injected tasks nor one of tasks sent home keeps the other waiting. */
    w->maint_flip ^= 1;
    struct weft__task *t = w->maint_flip ? from_inbox(w) : from_inject(w);
    if (!t)
        t = w->maint_flip ? from_inject(w) : from_inbox(w);
    if (!t && w->rt->cfg.lifo)
        t = own_oldest(w);
    return t;
}

static inline __attribute__((always_inline)) struct weft__task *pick_next(struct weft__worker *w)
{
    struct weft__task *t;
    if (__builtin_expect(--w->tick == 0, 0)) {
        w->tick = MAINTENANCE_INTERVAL;
        if ((t = maintenance(w)) != NULL) {
            /* Another task goes first (and may compute for long): the one
             * in the next slot, for which no worker was woken, moves to
             * the ring, where the usual wake-up lets another take it. */
            weft__worker_flush_next(w);
            return t;
        }
    }
    if (__builtin_expect(atomic_load_explicit(&w->next_task, memory_order_relaxed) != NULL, 0) &&
        (t = take_next(w)) != NULL)
        return t;
    t = w->rt->cfg.lifo ? weft__ring_pop_newest(&w->ring, NULL) : own_oldest(w);
    if (t)
        return t;
    /* Before the yielders: a yield lets every other ready task run once,
     * and a ring's overflow waits in the injection queue. */
    if ((t = from_inject(w)) != NULL)
        return t;
    if ((t = fifo_pop(&w->yields)) != NULL) {
        share_yields(w);
        return t;
    }
    /* After the yielders (maintenance looks here too, every
     * MAINTENANCE_INTERVAL decisions): off the path of a yield. */
    if ((t = from_inbox(w)) != NULL)
        return t;
    if (has_timers(w)) {
        fire_timers(w);
        t = weft__ring_pop_newest(&w->ring, NULL);
    }
    return t;
}

/* ---- stealing ------------------------------------------------------- */

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Tries to take a share of v's ring: one task to run, the rest into w's. */
static struct weft__task *steal_from(struct weft__worker *w, struct weft__worker *v)
{
    uint32_t room = weft__ring_room(&w->ring);
    uint32_t max = WEFT_RING_SLOTS / 2 < room + 1 ? WEFT_RING_SLOTS / 2 : room + 1;
    struct weft__task *batch[WEFT_RING_SLOTS / 2];
    WEFT_CNT_ADD(w->n.steal_tries, 1);
    int n = weft__ring_take_oldest(&v->ring, batch, max, w->rt->cfg.steal == WEFT_STEAL_HALF);
    if (n <= 0)
        return NULL;
    WEFT_CNT_ADD(w->n.steals, 1);
    WEFT_CNT_ADD(w->n.stolen, (uint64_t)n);
    n = (int)keep_own(w, batch, (uint32_t)n);
    if (n == 0)
        return NULL;
    weft__ring_push_many(&w->ring, batch, (uint32_t)n - 1);
    return batch[n - 1];
}

static struct weft__task *steal_round(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    unsigned nw = rt->nworkers;
    struct weft__task *t;
    switch (rt->cfg.victim) {
    case WEFT_VICTIM_TOPOLOGY: {
        const unsigned *order = weft__topo_victims(&rt->topo, w->id);
        for (unsigned i = 0; i + 1 < nw; i++)
            if ((t = steal_from(w, &rt->workers[order[i]])) != NULL)
                return t;
        return NULL;
    }
    case WEFT_VICTIM_ROUND_ROBIN:
        for (unsigned i = 0; i < nw; i++) {
            unsigned v = (w->rr + i) % nw;
            if (v == w->id)
                continue;
            if ((t = steal_from(w, &rt->workers[v])) != NULL) {
                w->rr = (v + 1) % nw;
                return t;
            }
        }
        return NULL;
    default: {
        unsigned start = xorshift(&w->rng) % nw;
        for (unsigned i = 0; i < nw; i++) {
            unsigned v = (start + i) % nw;
            if (v != w->id && (t = steal_from(w, &rt->workers[v])) != NULL)
                return t;
        }
        return NULL;
    }
    }
}

/* A victim's next task, taken only if the victim made no switch for
 * NEXT_GRACE_NS after it was seen there: its owner is then busy with a
 * task that does not suspend, and the woken task would wait for it. */
static struct weft__task *steal_next(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *v = &rt->workers[i];
        struct weft__task *t = atomic_load_explicit(&v->next_task, memory_order_relaxed);
        if (v == w || !t)
            continue;
        uint64_t switches = WEFT_CNT(v->n.switches), until = weft_now() + NEXT_GRACE_NS;
        unsigned spins = 0;
        while (weft_now() < until && WEFT_CNT(v->n.switches) == switches &&
               atomic_load_explicit(&v->next_task, memory_order_relaxed) == t)
            weft__spin_pause(&spins);
        if (WEFT_CNT(v->n.switches) != switches ||
            !atomic_compare_exchange_strong_explicit(&v->next_task, &t, NULL,
                                                     memory_order_acq_rel, memory_order_relaxed))
            continue;
        WEFT_CNT_ADD(w->n.steals, 1);
        WEFT_CNT_ADD(w->n.stolen, 1);
        if (keep_own(w, &t, 1) == 1)
            return t;
    }
    return NULL;
}

static void stop_searching(struct weft__worker *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    /* The last searcher found work: there may be more; let another look. */
    if (atomic_fetch_sub(&w->rt->nsearching, 1) == 1)
        notify(w->rt);
}

/* Steals or takes from the injection queue, as one of at most half the
 * workers searching at once. */
static struct weft__task *search(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    if (rt->nworkers == 1)
        return NULL;
    if (!w->searching) {
        if (2 * atomic_load_explicit(&rt->nsearching, memory_order_relaxed) >= rt->nworkers)
            return NULL;
        atomic_fetch_add(&rt->nsearching, 1);
        w->searching = true;
    }
    for (int round = 0; round < SEARCH_ROUNDS; round++) {
        struct weft__task *t = steal_round(w);
        if (!t)
            t = from_inject(w);
        if (t)
            return t;
    }
    return steal_next(w);
}

/* ---- parking and the end of the run ------------------------------------ */

/* Whether any ring or the injection queue holds a task. */
static bool work_anywhere(struct weft__runtime *rt)
{
    if (weft__inject_len(&rt->inject))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__ring_len(&rt->workers[i].ring))
            return true;
    return false;
}

uint64_t weft__live_tasks(const struct weft__runtime *rt)
{
    uint64_t finished = 0, spawned = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        finished += atomic_load_explicit(&rt->workers[i].n.finished, memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += atomic_load_explicit(&rt->workers[i].n.spawned, memory_order_acquire);
    spawned += atomic_load_explicit(&rt->ext_spawned, memory_order_acquire);
    return spawned > finished ? spawned - finished : 0;
}

static const char *wait_name(const struct weft__task *t)
{
    switch (t->wait) {
    case WEFT_W_JOIN:
        return "joining task";
    case WEFT_W_SLEEP:
        return "sleeping";
    case WEFT_W_FUTURE:
        return "awaiting future";
    case WEFT_W_GROUP:
        return "waiting for task group";
    case WEFT_W_CHAN:
        return "blocked on channel";
    case WEFT_W_SYNC:
        return "blocked on lock, condition, semaphore or event";
    case WEFT_W_IO:
        return "waiting for descriptor";
    case WEFT_W_BLOCKING:
        return "waiting for a blocking call";
    default:
        return "blocked";
    }
}

/* Every live task is blocked and nothing can wake one: report them all.
 * Every other worker is parked. */
static void report_deadlock(struct weft__runtime *rt, uint64_t live)
{
    const struct weft__task_table *tt = &rt->tasks;
    weft__say("deadlock: %llu tasks are blocked and nothing can wake one:", (unsigned long long)live);
    uint32_t nchunks = atomic_load(&tt->nchunks);
    for (uint32_t c = 0; c < nchunks; c++) {
        for (uint32_t i = 0; i < (1u << WEFT_TASK_CHUNK_BITS); i++) {
            const struct weft__task *t = &tt->dir[c][i];
            if (atomic_load_explicit(&t->state, memory_order_relaxed) != WEFT_T_BLOCKED)
                continue;
            const struct weft__task *on = atomic_load_explicit(&t->waits_on, memory_order_relaxed);
            if (t->wait == WEFT_W_JOIN && on)
                weft__say("  task \"%s\" (id %llu): %s %llu", weft__task_shown_name(t),
                          (unsigned long long)t->id, wait_name(t), (unsigned long long)on->id);
            else if (t->wait_obj)
                weft__say("  task \"%s\" (id %llu): %s %p", weft__task_shown_name(t),
                          (unsigned long long)t->id, wait_name(t), t->wait_obj);
            else
                weft__say("  task \"%s\" (id %llu): %s", weft__task_shown_name(t),
                          (unsigned long long)t->id, wait_name(t));
        }
    }
}

/* Called by the last worker to go idle: whether the run is over. */
static bool decide_end(struct weft__runtime *rt)
{
    bool may_end = !rt->embedded || atomic_load(&rt->stopping);
    if (!may_end)
        return false;
    /* The caller's count of idle workers is from its own listing: since
     * then another may have been taken off the idle stack and be running
     * a task (woken by a thread that is not a worker, or sent a task of
     * its own, or the caller itself taken off it). Every such change is
     * made under idle_lock, and a worker runs nothing while it is listed,
     * so under the lock, with every worker listed, nothing runs and the
     * queues are what they are. */
    pthread_mutex_lock(&rt->idle_lock);
    bool quiet = atomic_load(&rt->nidle) == rt->nworkers && !work_anywhere(rt);
    for (unsigned i = 0; quiet && i < rt->nworkers; i++)
        quiet = weft__inject_len(&rt->workers[i].inbox) == 0;
    uint64_t live = quiet ? weft__live_tasks(rt) : 0;
    if (quiet && live != 0) {
        /* A thread that is not a worker may yet settle what they wait on:
         * sleep until it does (its wake-up comes through the injection
         * queue and unparks a worker). */
        if (atomic_load(&rt->ext_waits) || weft__poller_wanted(&rt->poller))
            quiet = false;
        for (unsigned i = 0; quiet && i < rt->nworkers; i++)
            if (atomic_load_explicit(&rt->workers[i].ntimers, memory_order_relaxed))
                quiet = false;
        if (quiet) {
            report_deadlock(rt, live);
            rt->exit_err = -EDEADLK;
        }
    }
    if (quiet)
        atomic_store(&rt->done, true);
    pthread_mutex_unlock(&rt->idle_lock);
    if (!quiet)
        return false;
    weft__worker_wake_all(rt);
    return true;
}

/* The earliest deadline in any worker's heap: a parked worker wakes for
 * it, since the worker that owns the heap may be busy with one long task
 * and make no scheduling decision to fire it (Go's idle Ps look at every
 * P's timers for the same reason). */
static uint64_t next_deadline_anywhere(struct weft__worker *w)
{
    uint64_t when = weft__timers_next(w);
    for (unsigned i = 0; i < w->rt->nworkers; i++) {
        struct weft__worker *v = &w->rt->workers[i];
        if (v != w && has_timers(v)) {
            uint64_t t = weft__timers_next(v);
            if (t < when)
                when = t;
        }
    }
    return when;
}

/* An idle worker fires the deadlines that have passed in other workers'
 * heaps (their tasks become runnable here). Returns whether it fired any. */
static bool fire_others(struct weft__worker *w)
{
    bool any = false;
    uint64_t now = weft_now();
    for (unsigned i = 0; i < w->rt->nworkers; i++) {
        struct weft__worker *v = &w->rt->workers[i];
        if (v != w && has_timers(v) && weft__timers_next(v) <= now) {
            weft__timers_fire_from(w, v);
            any = true;
        }
    }
    return any;
}

static void park(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    if (w->searching) {
        w->searching = false;
        atomic_fetch_sub(&rt->nsearching, 1);
    }
    pthread_mutex_lock(&rt->idle_lock);
    w->idle_next = rt->idle;
    rt->idle = w;
    w->idle_listed = true;
    atomic_store_explicit(&w->park_word, 1, memory_order_relaxed);
    uint32_t nidle = atomic_fetch_add(&rt->nidle, 1) + 1;
    pthread_mutex_unlock(&rt->idle_lock);

    /* Look again now that wakers can see us idle (the fence is the RMW). */
    bool ending = false;
    if (work_anywhere(rt) || weft__inject_len(&w->inbox) || atomic_load(&rt->done)) {
        /* fall through to leave the idle stack */
    } else if (nidle == rt->nworkers && decide_end(rt)) {
        ending = true;
    } else {
        uint64_t when = weft__timers_next(w);
        struct timespec ts = {.tv_sec = (time_t)(when / 1000000000u),
                              .tv_nsec = (long)(when % 1000000000u)};
        WEFT_CNT_ADD(w->n.parks, 1);
        while (atomic_load(&w->park_word) == 1) {
            /* One parked worker, the poller, sleeps in epoll for every
             * descriptor and until the earliest deadline in any heap
             * (wake() and weft__worker_timer_armed() interrupt it); the
             * others sleep on their futexes. */
            if (weft__poller_acquire(&rt->poller)) {
                struct weft__poller *p = &rt->poller;
                atomic_store(&p->until, WEFT__POLL_COMPUTING);
                atomic_store(&w->polling, 1);
                uint64_t until = next_deadline_anywhere(w);
                WEFT_RACE_POINT(POLL_UNTIL);
                atomic_store(&p->until, until);
                bool timed_out = false;
                unsigned woken = 0;
                if (atomic_load(&w->park_word) == 1)
                    woken = weft__poller_poll(w, until, &timed_out);
                atomic_store(&p->until, 0);
                atomic_store(&w->polling, 0);
                weft__poller_release(p);
                if (woken || timed_out)
                    break;
                continue;
            }
            long r = futex(&w->park_word, FUTEX_WAIT_BITSET_PRIVATE, 1,
                           when == UINT64_MAX ? NULL : &ts);
            if (r < 0 && errno == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_lock(&rt->idle_lock);
    bool was_listed = unlist(rt, w);
    pthread_mutex_unlock(&rt->idle_lock);
    if (!was_listed) {
        /* Someone (unpark_one, or wake_all at the end) took us off the
         * stack and counted us searching. */
        w->searching = true;
        if (!ending)
            WEFT_CNT_ADD(w->n.unparks, 1);
    }
}

/* ---- switching ------------------------------------------------------ */

static void first_run(struct weft__worker *w, struct weft__task *t);

/* WEFT_TRACE at a switch: the running span ends, the next one begins. */
static void trace_switch(struct weft__worker *w, struct weft__task *in)
{
    uint64_t now = weft_now();
    weft__trace_run_end(w, now);
    if (in)
        weft__trace_run_begin(w, in->id, weft__task_name(in), now);
}

/* GIL mode: takes the token for the task about to run (task id `task`),
 * recording the wait and any hand-off in the trace. */
static void gil_take_traced(struct weft__worker *w, uint64_t task)
{
    uint64_t t0 = w->rt->trace_on ? weft_now() : 0;
    bool handoff = weft__gil_take(&w->rt->gil, w);
    if (w->rt->trace_on) {
        uint64_t t1 = weft_now();
        weft__trace_event(w, WEFT_TR_TOKEN, t0, t1, task);
        if (handoff)
            weft__trace_event(w, WEFT_TR_HANDOFF, t1, t1, task);
    }
}

/* Time accounting: t has finished on w; its times go into w's sums. */
static void acct_finished(struct weft__worker *w, struct weft__task *t)
{
    weft__acct(t, WEFT_ACCT_RUNNING);
    const struct weft__task_cold *c = weft__task_cold(&w->rt->tasks, t);
    for (unsigned i = 0; i < WEFT_ACCT_N; i++)
        w->acct_sum[i] += c->acct_ns[i];
}

/* Time accounting at a switch: the task leaving goes to the bucket of why
 * it leaves (or, when it exits, its times go into the worker's sums), the
 * one arriving starts running. */
static void account_switch(struct weft__worker *w, struct weft__task *out, struct weft__task *in,
                           bool exiting)
{
    if (out) {
        if (exiting) {
            acct_finished(w, out);
        } else if (atomic_load_explicit(&out->state, memory_order_relaxed) == WEFT_T_BLOCKED) {
            weft__acct(out, out->wait == WEFT_W_SLEEP                                ? WEFT_ACCT_SLEEP
                            : out->wait == WEFT_W_IO || out->wait == WEFT_W_BLOCKING ? WEFT_ACCT_IO
                                                                                     : WEFT_ACCT_WAIT);
        } else {
            weft__acct(out, WEFT_ACCT_READY);
        }
    }
    if (in)
        weft__acct(in, WEFT_ACCT_RUNNING);
}

static inline void after_switch(struct weft__worker *w)
{
    weft__commit_fn c = w->commit;
    if (c) {
        /* Cleared after the call: while w->commit is set, wakes are the
         * commit's, not the running task's (weft__worker_woken). */
        c(w, w->commit_task, w->commit_arg);
        w->commit = NULL;
    }
    if (__builtin_expect(w->poll_due, 0)) {
        w->poll_due = false;
        poll_busy(w);
    }
}

/* Switches from the running context `from` to `next` (or to the idle loop
 * when next is NULL). Returns, once `from` is resumed, its worker.
 *
 * Never inlined, on purpose: every suspended context then waits at the one
 * return address inside this function, which is what lets the ret that
 * resumes a context (and the rets after it) be predicted; see the essay in
 * arch/switch_x86_64_sysv_elf.S. */
static __attribute__((noinline)) struct weft__worker *
switch_to(struct weft__worker *w, struct weft__fiber *from, struct weft__task *next, bool exiting)
{
    struct weft__fiber *to = &w->sched;
    if (next && __builtin_expect(next->shared, 0)) {
        if (!shared_enter(w, next)) {
            w->pending = next; /* from the idle loop, off the shared stack */
            next = NULL;
        }
    }
    if (__builtin_expect(w->rt->account, 0))
        account_switch(w, w->current, next, exiting);
    if (__builtin_expect(w->rt->trace_on, 0))
        trace_switch(w, next);
    if (next) {
        if (__builtin_expect(atomic_load_explicit(&next->state, memory_order_relaxed) == WEFT_T_NEW, 0) &&
            !next->shared)
            first_run(w, next);
        atomic_store_explicit(&next->state, WEFT_T_RUNNING, memory_order_relaxed);
        next->worker = w;
        to = next->fib;
    }
    w->current = next;
    WEFT_CNT_ADD(w->n.switches, 1);
    struct weft__worker *rw = weft__fiber_switch(from, to, w, exiting);
    after_switch(rw);
    return rw;
}

/* A task's first steps on its own context: the commit of the context it
 * came from, then the task itself. Out of line, and so is the end, so
 * that task_entry keeps nothing across the task's run but its return
 * address: a shared-stack task's copy out at each wait carries every
 * byte of the frames below the task's own (W6's sleepers: 256 bytes
 * each, 288 with this frame holding the task and its worker). */
static __attribute__((noinline)) struct weft__task *task_begin(struct weft__worker *w)
{
    struct weft__task *self = w->current;
    weft__fiber_entered(&self->fiber);
    after_switch(w);
    return self;
}

/* The task's return: it is its worker's current task again (an inline
 * child's run ends by making it so), on whichever worker it has moved
 * to. */
static __attribute__((noinline, noreturn)) void task_end(void *r)
{
    struct weft__worker *w = weft__worker_self();
    weft__worker_exit(w, w->current, r);
}

static void task_entry(void *arg)
{
    struct weft__task *self = task_begin(arg);
    task_end(self->fn(self->arg));
}

static void first_run(struct weft__worker *w, struct weft__task *t)
{
    size_t size = t->stack_size ? t->stack_size : w->rt->cfg.stack_size;
    t->stack = weft__stack_get(&w->rt->stacks, &w->stacks, size);
    if (!t->stack)
        weft__panic("no memory or mapping left for a %zu-byte stack (task \"%s\", id %llu)", size,
                    weft__task_name(t), (unsigned long long)t->id);
#ifdef WEFT_ASAN
    /* A reused stack may still carry the poison of frames its last task
     * left when it switched away for good. */
    __asan_unpoison_memory_region(t->stack->lo, t->stack->size);
#endif
    weft__fiber_make(&t->fiber, t->stack->lo, t->stack->size, task_entry);
    t->fib = &t->fiber;
    WEFT_CNT_ADD(w->n.started, 1);
}

struct weft__worker *weft__worker_suspend(struct weft__worker *w, struct weft__task *self,
                                          weft__commit_fn commit, void *arg)
{
    /* GIL mode, asked to drop the token: a suspension is a safe point; the
     * idle loop drops it and takes it back before the next task runs. */
    struct weft__task *next = gil_asked(w) ? NULL : pick_next(w);
    w->commit = commit;
    w->commit_task = self;
    w->commit_arg = arg;
    return switch_to(w, self->fib, next, false);
}

/* After an exit's switch: the stack is free to reuse; tell the joiner. */
static void reap(struct weft__worker *w, struct weft__task *t, void *arg)
{
    (void)arg;
    if (t->shared) {
        if (w->occupant == t)
            w->occupant = NULL;
        weft__task_drop_shared(t);
        atomic_fetch_sub_explicit(&w->rt->shared_live, 1, memory_order_relaxed);
    } else {
        weft__stack_put(&w->rt->stacks, &w->stacks, t->stack);
        t->stack = NULL;
    }
    weft__fiber_release(&t->fiber);
    weft__task_finished(w, t);
}

void weft__worker_exit(struct weft__worker *w, struct weft__task *self, void *r)
{
    self->result = r;
    atomic_store_explicit(&self->state, WEFT_T_EXITED, memory_order_relaxed);
    if (self == w->rt->main_task)
        w->rt->main_result = r;
    struct weft__task *next = gil_asked(w) ? NULL : pick_next(w);
    w->commit = reap;
    w->commit_task = self;
    switch_to(w, self->fib, next, true);
    weft__panic("task %llu was resumed after it finished", (unsigned long long)self->id);
}

struct weft__worker *weft__worker_run_inline(struct weft__worker *w, struct weft__task *self,
                                             struct weft__task *t)
{
    WEFT_CNT_ADD(w->n.started, 1);
    WEFT_CNT_ADD(w->n.inlined, 1);
    atomic_store_explicit(&self->state, WEFT_T_BLOCKED, memory_order_relaxed);
    self->wait = WEFT_W_JOIN;
    /* Atomic, host before waits_on (release): weft_cancel() follows the
     * chain of inline joins from another thread (task.c). A cancellation
     * of self reaches t through t's own checks (waitq.h), which look up the
     * host chain. */
    __atomic_store_n(&t->host, self, __ATOMIC_RELAXED);
    atomic_store_explicit(&self->waits_on, t, memory_order_release);
    t->fib = self->fib;
    t->worker = w;
    atomic_store_explicit(&t->state, WEFT_T_RUNNING, memory_order_relaxed);
    w->current = t;
    if (__builtin_expect(w->rt->account, 0)) {
        weft__acct(self, WEFT_ACCT_WAIT);
        weft__acct(t, WEFT_ACCT_RUNNING);
    }
    if (__builtin_expect(w->rt->trace_on, 0))
        trace_switch(w, t); /* the child's span, on the joiner's stack */
    void *r = t->fn(t->arg);
    /* t may have suspended and resumed elsewhere: its worker is current. */
    w = t->worker;
    if (__builtin_expect(w->rt->account, 0)) {
        acct_finished(w, t);
        weft__acct(self, WEFT_ACCT_RUNNING);
    }
    if (__builtin_expect(w->rt->trace_on, 0))
        trace_switch(w, self);
    t->result = r;
    atomic_store_explicit(&t->state, WEFT_T_EXITED, memory_order_relaxed);
    __atomic_store_n(&t->host, NULL, __ATOMIC_RELAXED);
    /* The joiner's claim (self|PENDING) keeps everyone else off the join
     * word: no exchange, no wake-up; the joiner frees the slot next. */
    WEFT_CNT_ADD(w->n.finished, 1);
    atomic_store_explicit(&t->state, WEFT_T_DONE, memory_order_relaxed);
    atomic_store_explicit(&self->waits_on, NULL, memory_order_relaxed);
    self->wait = WEFT_W_NONE;
    atomic_store_explicit(&self->state, WEFT_T_RUNNING, memory_order_relaxed);
    self->worker = w;
    w->current = self;
    return w;
}

/* After a yielder's switch: it goes behind the other ready tasks. */
static void commit_yield(struct weft__worker *w, struct weft__task *self, void *arg)
{
    (void)arg;
    atomic_store_explicit(&self->state, WEFT_T_READY, memory_order_relaxed);
    if (w->rt->nworkers > 1 && !self->home &&
        atomic_load_explicit(&w->rt->nidle, memory_order_relaxed) > 0) {
        weft__inject_push(&w->rt->inject, self, self, 1);
        notify(w->rt);
        return;
    }
    fifo_push(&w->yields, self);
}

int weft_yield(void)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    struct weft__task *self = w->current;
    if (weft__cancel_take(self) < 0)
        return -ECANCELED;
    struct weft__task *next = NULL;
    if (gil_asked(w)) {
        /* GIL mode: hand the token over (through the idle loop). */
    } else if ((next = pick_next(w)) == NULL) {
        /* Nothing else is ready here, unless a poll that was due (no lock
         * is held here) finds a descriptor ready. */
        if (!__builtin_expect(w->poll_due, 0))
            return 0;
        w->poll_due = false;
        poll_busy(w); /* its wakes go to the poll's batch, not the next slot */
        if ((next = pick_next(w)) == NULL)
            return 0;
    }
    w->commit = commit_yield;
    w->commit_task = self;
    atomic_store_explicit(&self->state, WEFT_T_READY, memory_order_relaxed);
    switch_to(w, self->fib, next, false);
    return 0;
}

uint64_t weft__worker_new_id(struct weft__worker *w)
{
    if (w->next_id == w->last_id) {
        w->next_id = atomic_fetch_add(&w->rt->next_id, ID_BLOCK);
        w->last_id = w->next_id + ID_BLOCK;
    }
    return w->next_id++;
}

/* ---- the loop ------------------------------------------------------- */

/* GIL mode, in the idle loop with a task to run: the thread must hold the
 * token; if a waiter asked for it, it goes to the waiter first (forced
 * switching), and this worker queues for it again. */
static void gil_before_run(struct weft__worker *w, struct weft__task *next)
{
    struct weft__gil *g = &w->rt->gil;
    if (w->gil_held && weft__gil_drop_requested(g))
        weft__gil_drop(g, w, true);
    if (!w->gil_held) {
        weft__acct(next, WEFT_ACCT_TOKEN); /* the GIL-wait category */
        gil_take_traced(w, next->id);
    }
}

void weft__worker_gil_checkpoint(struct weft__worker *w)
{
    if (gil_asked(w)) {
        struct weft__task *self = w->current;
        weft__acct(self, WEFT_ACCT_TOKEN);
        if (w->rt->trace_on)
            weft__trace_run_end(w, weft_now());
        weft__gil_drop(&w->rt->gil, w, true);
        gil_take_traced(w, self->id);
        if (w->rt->trace_on)
            weft__trace_run_begin(w, self->id, weft__task_name(self), weft_now());
        weft__acct(self, WEFT_ACCT_RUNNING);
    }
}

bool weft__worker_gil_io_begin(struct weft__worker *w)
{
    if (!w->gil_held || !weft__gil_contended(&w->rt->gil))
        return false;
    weft__acct(w->current, WEFT_ACCT_TOKEN);
    if (w->rt->trace_on)
        weft__trace_run_end(w, weft_now());
    weft__gil_drop(&w->rt->gil, w, weft__gil_drop_requested(&w->rt->gil));
    return true;
}

void weft__worker_gil_io_end(struct weft__worker *w)
{
    struct weft__task *self = w->current;
    gil_take_traced(w, self->id);
    if (w->rt->trace_on)
        weft__trace_run_begin(w, self->id, weft__task_name(self), weft_now());
    weft__acct(self, WEFT_ACCT_RUNNING);
}

int weft__worker_loop(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    for (;;) {
        struct weft__task *next = w->pending;
        if (next)
            w->pending = NULL;
        else
            next = pick_next(w);
        if (!next)
            next = search(w);
        if (!next && rt->nworkers > 1 && fire_others(w))
            next = pick_next(w);
        if (next) {
            stop_searching(w);
            if (rt->gil_on)
                gil_before_run(w, next);
            switch_to(w, &w->sched, next, false);
            continue;
        }
        if (atomic_load(&rt->done))
            break;
        weft__stack_trim(&w->stacks, HOT_STACKS_KEPT_IDLE);
        if (w->gil_held)
            weft__gil_drop(&rt->gil, w, false); /* nothing to run: do not sit on it */
        park(w);
        if (atomic_load(&rt->done))
            break;
    }
    if (w->searching) {
        w->searching = false;
        atomic_fetch_sub(&rt->nsearching, 1);
    }
    if (w->gil_held)
        weft__gil_drop(&rt->gil, w, false);
    /* Every task has finished: nothing is on the shared stack. */
    if (w->shared_stack) {
        weft__stack_put(&rt->stacks, &w->stacks, w->shared_stack);
        w->shared_stack = NULL;
    }
    return rt->exit_err;
}

int weft__worker_init(struct weft__worker *w, struct weft__runtime *rt, unsigned id)
{
    memset(w, 0, sizeof *w);
    weft__ring_init(&w->ring, rt->nworkers == 1);
    w->tick = MAINTENANCE_INTERVAL;
    w->rt = rt;
    w->id = id;
    w->rng = 0x9e3779b9u * (id + 1);
    w->rr = (id + 1) % (rt->nworkers ? rt->nworkers : 1);
    w->use_next = rt->nworkers > 1 && rt->cfg.lifo && rt->cfg.next_slot;
    w->side_block = side_blocks[0];
    weft__timers_init(&w->timers);
    weft__stack_cache_init(&w->stacks);
    weft__inject_init(&w->inbox);
    return 0;
}

int weft__worker_attach(struct weft__worker *w)
{
    void *lo = NULL;
    size_t len = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &len);
        pthread_attr_destroy(&attr);
    }
    weft__fiber_init_thread(&w->sched, lo, len);
    int err = weft__altstack_init(&w->altstack);
    if (err < 0)
        return err;
    if (w->rt->cfg.pin) {
        err = weft__topo_pin(&w->rt->topo, w->id);
        if (err < 0) {
            weft__say("WEFT_PIN=1: could not bind worker %u to its core: %s", w->id,
                      weft_strerror(err));
            weft__altstack_term(&w->altstack);
            return err;
        }
    }
    weft__tls_worker = w;
    return 0;
}

void weft__worker_detach(struct weft__worker *w)
{
    /* The thread of weft_run goes back to the CPUs it had. */
    if (w->rt->cfg.pin)
        weft__topo_unpin(&w->rt->topo);
    weft__tls_worker = NULL;
    weft__altstack_term(&w->altstack);
}

void weft__worker_term(struct weft__worker *w)
{
    weft__stack_cache_term(&w->stacks);
    weft__inject_term(&w->inbox);
    weft__timers_term(&w->timers);
}
