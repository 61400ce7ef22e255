/*
 * Tasks: the task table, spawn, join, detach.
 *
 * Handles. A weft_task * is not a pointer: it encodes a slot index (low 24
 * bits) and the slot's generation (the rest). Slots live in chunks of 1024
 * that are never freed while the runtime runs, and a slot's generation is
 * bumped each time it is freed. So a handle can always be checked: a
 * second join, or a join after the detached task finished, finds a newer
 * generation and gets -ESRCH instead of touching another task. A raw
 * pointer could not tell (the memory would be reused), and a reference
 * count would make every join pay an atomic. The cost is one chunk lookup
 * per call and slots that stay allocated at the run's high-water mark.
 *
 * Lifetime. A slot is taken at spawn (from the worker's free list: no
 * malloc in steady state) and freed when both the task has finished and its
 * handle is released: by weft_join returning the result, or by
 * weft_detach. A task's stack is taken at its first run (worker.c), so a
 * task that is spawned and not yet run costs only its slot, and is given
 * back at exit, before the joiner is woken (weft__task_reap).
 *
 * States and ownership: see enum weft__task_state in task.h.
 *
 * Joining across workers. A task may finish on one worker while its joiner
 * blocked on another. The join word (t->join, task.h) settles every race
 * with one atomic each side: the joiner claims it (CAS 0 -> joiner|PENDING:
 * a second joiner gets -EBUSY, a detach -EBUSY), then suspends; after its
 * switch (worker.c's commit) it turns PENDING into a plain pointer with a
 * CAS. The finisher, once the stack is reaped, exchanges the word for DONE
 * and wakes whatever pointer it found; if it found PENDING, the joiner's
 * CAS fails on DONE and the joiner readies itself. Exactly one of them
 * makes the joiner runnable, and never before its context is saved.
 *
 * Running a child inline. A join that finds its child still unstarted and
 * newest in the joiner's own ring takes it out and calls its function on
 * the joiner's stack (worker.c), when that stack has at least WEFT_INLINE
 * bytes left (or the child's own stack_size, if it asked for one): no
 * stack, no switch, no queue. This is oneTBB's and Cilk's way of making
 * fork-join cheap; the child is still a task (weft_self, names, reports,
 * its own joins); if it suspends, the joiner's stack suspends with it.
 *
 * Threads: any worker may spawn, join, detach and free; slots are taken
 * from and freed to the calling worker's free list, which hands batches
 * to and from the table's spare list (under tt->lock) so that slots freed
 * on one worker are reused by another. Threads that are not workers use
 * the spare list directly.
 */
#include "task.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "lock.h"
#include "race.h"
#include "config.h"
#include "error.h"
#include "runtime.h"
#include "stack.h"
#include "waitq.h"
#include "worker.h"

#define CHUNK_LEN (1u << WEFT_TASK_CHUNK_BITS)
#define SLAB_SIZE ((size_t)2 << 20)
#define SLAB_CHUNKS ((uint32_t)(SLAB_SIZE / (CHUNK_LEN * sizeof(struct weft__task))))
_Static_assert(SLAB_CHUNKS >= 1, "a slab holds at least one chunk of task slots");
#define INDEX_MASK ((1u << WEFT_TASK_INDEX_BITS) - 1)
#define COLD_CHUNK_BYTES (CHUNK_LEN * sizeof(struct weft__task_cold))
#define FREE_KEEP 2048 /* free slots a worker keeps; twice that and it gives half back */

struct weft__runtime *weft__rt;

int weft__task_table_init(struct weft__task_table *tt, bool huge)
{
    tt->huge = huge;
    tt->dir = weft__zalloc(WEFT_TASK_DIR_LEN * sizeof tt->dir[0]);
    if (!tt->dir)
        return -ENOMEM;
    tt->cold = weft__zalloc(WEFT_TASK_DIR_LEN * sizeof tt->cold[0]);
    if (!tt->cold) {
        weft__free(tt->dir, WEFT_TASK_DIR_LEN * sizeof tt->dir[0]);
        tt->dir = NULL;
        return -ENOMEM;
    }
    tt->cold_all = false;
    atomic_init(&tt->nchunks, 0);
    tt->spare = NULL;
    tt->nspare = 0;
    pthread_mutex_init(&tt->lock, NULL);
    return 0;
}

void weft__task_drop_shared(struct weft__task *t)
{
    struct weft__task_side *side = t->side;
    if (weft__task_owns(t, t->saved))
        weft__free(t->saved, t->saved_cap);
    if (weft__task_owns(t, t->waiters))
        weft__free(t->waiters, t->waiters_cap * sizeof *t->waiters);
    if (side)
        weft__free(side, side->size);
    t->side = NULL;
    t->saved = NULL;
    t->saved_len = t->saved_cap = 0;
    t->waiters = NULL;
    t->waiters_cap = 0;
    t->home = NULL;
}

void weft__task_table_term(struct weft__task_table *tt)
{
    uint32_t n = atomic_load(&tt->nchunks);
    /* A run that ended with tasks still blocked (a deadlock, or a stop with
     * tasks alive): a shared-stack task's copied-out bytes and waiters are
     * its own memory, not its stack's, and go with its slot. */
    for (uint32_t c = 0; c < n; c++)
        for (uint32_t i = 0; i < CHUNK_LEN; i++)
            weft__task_drop_shared(&tt->dir[c][i]);
    for (uint32_t c = 0; c < n; c += SLAB_CHUNKS)
        munmap(tt->dir[c], SLAB_SIZE);
    for (uint32_t c = 0; c < n; c++) {
        struct weft__task_cold *cold = atomic_load(&tt->cold[c]);
        if (cold)
            weft__free(cold, COLD_CHUNK_BYTES);
    }
    weft__free(tt->cold, WEFT_TASK_DIR_LEN * sizeof tt->cold[0]);
    tt->cold = NULL;
    weft__free(tt->dir, WEFT_TASK_DIR_LEN * sizeof tt->dir[0]);
    tt->dir = NULL;
    atomic_store(&tt->nchunks, 0);
    pthread_mutex_destroy(&tt->lock);
}

/* A new slab of SLAB_SIZE bytes, aligned to its size, zeroed; NULL when
 * there is no memory. Task slots are 256 bytes and a program that spawns
 * 100,000 tasks touches 26 MB of them, fresh: in 4 KiB pages that is 6,400
 * page faults, each a trap, a page to find and zero and a page-table entry
 * (W6 on 1 worker, with 384-byte slots: 83 ms over its ideal in small
 * pages, 70 in huge ones, 7 rounds A/B; RSS 59 and 62 MiB). With `huge`
 * the slab is marked MADV_HUGEPAGE, which the kernel honours when
 * transparent huge pages are "always" or "madvise" (Debian's default) and
 * a huge page is free or can be made by compaction, a possible pause at
 * the fault that WEFT_HUGE_PAGES=0 avoids. The first slab (8,192 slots)
 * stays in small pages. 2 MiB holds SLAB_CHUNKS chunks exactly. */
static void *slab_map(bool huge)
{
    /* Twice the size, then the unaligned ends go. */
    char *p = mmap(NULL, 2 * SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)p + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + SLAB_SIZE < p + 2 * SLAB_SIZE)
        munmap(a + SLAB_SIZE, (size_t)(p + 2 * SLAB_SIZE - (a + SLAB_SIZE)));
    /* Where the kernel has none to give, or THP is off, small pages. */
    if (huge)
        (void)madvise(a, SLAB_SIZE, MADV_HUGEPAGE);
    return a;
}

/* Adds a chunk of free slots to the spare list. Under tt->lock. */
static int grow(struct weft__task_table *tt)
{
    uint32_t n = atomic_load_explicit(&tt->nchunks, memory_order_relaxed);
    if (n == WEFT_TASK_DIR_LEN)
        return -ENOMEM;
    struct weft__task_cold *cold = NULL;
    if (tt->cold_all && !(cold = weft__zalloc(COLD_CHUNK_BYTES)))
        return -ENOMEM;
    struct weft__task *chunk;
    if (n % SLAB_CHUNKS == 0) {
        /* The first slab in small pages: a program of a few tasks does not
         * zero a whole huge page at its start (0.2 ms). */
        if (!(chunk = slab_map(tt->huge && n > 0))) {
            if (cold)
                weft__free(cold, COLD_CHUNK_BYTES);
            return -ENOMEM;
        }
    } else {
        chunk = tt->dir[n - 1] + CHUNK_LEN; /* the next in the same slab */
    }
    if (cold)
        atomic_store_explicit(&tt->cold[n], cold, memory_order_release);
    uint32_t base = n << WEFT_TASK_CHUNK_BITS;
    for (uint32_t i = CHUNK_LEN; i-- > 0;) {
        chunk[i].index = base + i;
        atomic_init(&chunk[i].gen, 1);
        /* Not waiting: a wake word whose outcome is WAITING would let a
         * canceller ready a task that waits for nothing. */
        atomic_init(&chunk[i].wake, WEFT_WAKE_WOKEN);
        chunk[i].next = tt->spare;
        tt->spare = &chunk[i];
    }
    tt->nspare += CHUNK_LEN;
    tt->dir[n] = chunk;
    atomic_store_explicit(&tt->nchunks, n + 1, memory_order_release);
    return 0;
}

/* Gives t's chunk its cold records if it has none yet; 0 or -ENOMEM. Any
 * thread; takes tt->lock only the first time in a chunk. */
static int cold_make(struct weft__task_table *tt, const struct weft__task *t)
{
    _Atomic(struct weft__task_cold *) *slot = &tt->cold[t->index >> WEFT_TASK_CHUNK_BITS];
    if (atomic_load_explicit(slot, memory_order_acquire))
        return 0;
    int err = 0;
    pthread_mutex_lock(&tt->lock);
    if (!atomic_load_explicit(slot, memory_order_relaxed)) {
        struct weft__task_cold *cold = weft__zalloc(COLD_CHUNK_BYTES);
        if (cold)
            atomic_store_explicit(slot, cold, memory_order_release);
        else
            err = -ENOMEM;
    }
    pthread_mutex_unlock(&tt->lock);
    return err;
}

const char *weft__task_name(const struct weft__task *t)
{
    if (!__atomic_load_n(&t->named, __ATOMIC_ACQUIRE))
        return "";
    const struct weft__task_cold *c = weft__task_cold(&weft__rt->tasks, t);
    return c ? c->name : "";
}

/* Takes up to `want` slots off the spare list (growing it if empty). Under
 * tt->lock. Returns the first; *count gets how many, linked by next. */
static struct weft__task *take_spare(struct weft__task_table *tt, uint64_t want, uint64_t *count)
{
    if (!tt->spare && grow(tt) < 0)
        return NULL;
    struct weft__task *first = tt->spare, *last = first;
    uint64_t n = 1;
    while (n < want && last->next) {
        last = last->next;
        n++;
    }
    tt->spare = last->next;
    tt->nspare -= n;
    last->next = NULL;
    *count = n;
    return first;
}

static int refill_free(struct weft__worker *w)
{
    struct weft__task_table *tt = &w->rt->tasks;
    uint64_t n = 0;
    pthread_mutex_lock(&tt->lock);
    struct weft__task *first = take_spare(tt, FREE_KEEP / 2, &n);
    pthread_mutex_unlock(&tt->lock);
    if (!first)
        return -ENOMEM;
    w->free_tasks = first;
    w->nfree_tasks = n;
    return 0;
}

/* w holds too many free slots: half go back to the spare list. */
static void give_back(struct weft__worker *w)
{
    struct weft__task *first = w->free_tasks, *last = first;
    for (uint64_t i = 1; i < FREE_KEEP; i++)
        last = last->next;
    w->free_tasks = last->next;
    w->nfree_tasks -= FREE_KEEP;
    struct weft__task_table *tt = &w->rt->tasks;
    pthread_mutex_lock(&tt->lock);
    last->next = tt->spare;
    tt->spare = first;
    tt->nspare += FREE_KEEP;
    pthread_mutex_unlock(&tt->lock);
}

weft_task *weft__task_handle(const struct weft__task *t)
{
    uint64_t gen = atomic_load_explicit(&t->gen, memory_order_relaxed);
    return (weft_task *)(uintptr_t)((gen << WEFT_TASK_INDEX_BITS) | t->index);
}

struct weft__task *weft__task_lookup(weft_task *h, int *err)
{
    uintptr_t v = (uintptr_t)h;
    const struct weft__task_table *tt = &weft__rt->tasks;
    uint32_t idx = (uint32_t)(v & INDEX_MASK);
    uint64_t gen = (uint64_t)v >> WEFT_TASK_INDEX_BITS;
    uint32_t chunk = idx >> WEFT_TASK_CHUNK_BITS;
    if (gen == 0 || chunk >= atomic_load_explicit(&tt->nchunks, memory_order_acquire)) {
        *err = -EINVAL;
        return NULL;
    }
    struct weft__task *t = &tt->dir[chunk][idx & (CHUNK_LEN - 1)];
    uint64_t now = atomic_load_explicit(&t->gen, memory_order_acquire);
    if (now != gen || atomic_load_explicit(&t->state, memory_order_relaxed) == WEFT_T_FREE) {
        *err = gen < now ? -ESRCH : -EINVAL;
        return NULL;
    }
    return t;
}

/* Sets up slot t for a new task; -ENOMEM (t left free, its chunk perhaps
 * given cold records) when its name has no room. */
static inline __attribute__((always_inline)) int
init_task(struct weft__task *t, weft_fn fn, void *arg, const struct weft_task_opts *opts)
{
    struct weft__task_table *tt = &weft__rt->tasks;
    bool account = weft__rt->account;
    /* The slot's last task may have been named: not this one, or not
     * while its name is written. */
    __atomic_store_n(&t->named, false, __ATOMIC_RELAXED);
    if (__builtin_expect(opts && opts->name && opts->name[0], 0)) {
        if (cold_make(tt, t) < 0)
            return -ENOMEM;
        struct weft__task_cold *c = weft__task_cold(tt, t);
        strncpy(c->name, opts->name, sizeof c->name - 1);
        c->name[sizeof c->name - 1] = '\0';
        __atomic_store_n(&t->named, true, __ATOMIC_RELEASE);
    }
    if (__builtin_expect(account, 0)) {
        /* cold_all: every chunk has its records. */
        struct weft__task_cold *c = weft__task_cold(tt, t);
        if (c) {
            memset(c->acct_ns, 0, sizeof c->acct_ns);
            c->acct_state = WEFT_ACCT_READY;
            c->acct_since = weft_now();
        }
    }
    t->next = NULL;
    t->worker = NULL;
    __atomic_store_n(&t->host, NULL, __ATOMIC_RELAXED);
    t->stack = NULL;
    t->fib = &t->fiber;
    t->fn = fn;
    t->arg = arg;
    t->result = NULL;
    /* At most WEFT_STACK_MAX (1 GiB): weft_spawn_opts checks it. */
    t->stack_size = opts && opts->stack_size ? (uint32_t)weft__stack_round(opts->stack_size) : 0;
    /* home, side, saved and waiters are NULL in every free slot: chunks start
     * zeroed, and a shared-stack task's exit (worker.c, reap) clears them. */
    t->shared = opts && (opts->flags & WEFT_TASK_SHARED_STACK);
    atomic_store_explicit(&t->join, 0, memory_order_relaxed);
    atomic_store_explicit(&t->waits_on, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->state, WEFT_T_NEW, memory_order_relaxed);
    atomic_store_explicit(&t->cancel, 0, memory_order_relaxed);
    t->cancel_inherited = 0;
    t->wait = WEFT_W_NONE;
    t->wait_obj = NULL;
    atomic_store_explicit(&t->timer_w, NULL, memory_order_relaxed);
    return 0;
}

int weft__task_new(struct weft__worker *w, struct weft__task **out, weft_fn fn, void *arg,
                   const struct weft_task_opts *opts)
{
    struct weft__task *t;
    if (w) {
        if (!w->free_tasks) {
            int err = refill_free(w);
            if (err < 0)
                return err;
        }
        t = w->free_tasks;
        struct weft__task *rest = t->next;
        if (init_task(t, fn, arg, opts) < 0)
            return -ENOMEM; /* the slot stays first on the free list */
        w->free_tasks = rest;
        w->nfree_tasks--;
        t->id = weft__worker_new_id(w);
        WEFT_CNT_ADD(w->n.spawned, 1);
    } else {
        struct weft__task_table *tt = &weft__rt->tasks;
        uint64_t n;
        pthread_mutex_lock(&tt->lock);
        t = take_spare(tt, 1, &n);
        pthread_mutex_unlock(&tt->lock);
        if (!t)
            return -ENOMEM;
        if (init_task(t, fn, arg, opts) < 0) {
            pthread_mutex_lock(&tt->lock);
            t->next = tt->spare;
            tt->spare = t;
            tt->nspare++;
            pthread_mutex_unlock(&tt->lock);
            return -ENOMEM;
        }
        t->id = atomic_fetch_add(&weft__rt->next_id, 1);
        atomic_fetch_add(&weft__rt->ext_spawned, 1);
    }
    *out = t;
    return 0;
}

void weft__task_free(struct weft__worker *w, struct weft__task *t)
{
    atomic_store_explicit(&t->gen, atomic_load_explicit(&t->gen, memory_order_relaxed) + 1,
                          memory_order_release);
    atomic_store_explicit(&t->state, WEFT_T_FREE, memory_order_relaxed);
    if (w) {
        t->next = w->free_tasks;
        w->free_tasks = t;
        if (++w->nfree_tasks >= 2 * FREE_KEEP)
            give_back(w);
        return;
    }
    struct weft__task_table *tt = &weft__rt->tasks;
    pthread_mutex_lock(&tt->lock);
    t->next = tt->spare;
    tt->spare = t;
    tt->nspare++;
    pthread_mutex_unlock(&tt->lock);
}

static void ext_wake(struct weft__ext_wait *e)
{
    atomic_store_explicit(&e->done, 1, memory_order_release);
    syscall(SYS_futex, (uint32_t *)&e->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The join word of t once no finisher is in the middle of settling it
 * (WAKING lasts a few instructions). Any thread. */
static uintptr_t settled_join(struct weft__task *t, uintptr_t x)
{
    unsigned spins = 0;
    while (x == WEFT_J_WAKING) {
        weft__spin_pause(&spins);
        x = atomic_load_explicit(&t->join, memory_order_acquire);
    }
    return x;
}

void weft__task_finished(struct weft__worker *w, struct weft__task *t)
{
    WEFT_CNT_ADD(w->n.finished, 1);
    atomic_store_explicit(&t->state, WEFT_T_DONE, memory_order_relaxed);
    /* WAKING first: while it stands, a joiner whose wait ended otherwise
     * cannot give its claim up, rejoin and overwrite join_seq, so the seq
     * read here is the one of the wait that claimed t. DONE is stored
     * before anyone is woken: once woken, a joiner frees the slot. */
    uintptr_t x = atomic_exchange_explicit(&t->join, WEFT_J_WAKING, memory_order_acq_rel);
    WEFT_RACE_POINT(FINISH);
    uint64_t seq = atomic_load_explicit(&t->join_seq, memory_order_relaxed);
    atomic_store_explicit(&t->join, WEFT_J_DONE, memory_order_release);
    if (x == WEFT_J_DETACHED) {
        weft__task_free(w, t);
    } else if (x & WEFT_J_PENDING) {
        /* the joiner is still switching out; its commit sees DONE */
    } else if (x & WEFT_J_EXT) {
        ext_wake((struct weft__ext_wait *)(x & ~WEFT_J_TAGS));
    } else if (x) {
        /* If the joiner's wait ended already (cancelled, timed out), this
         * fails, and the joiner, finding DONE when it gives its claim up,
         * counts the result as unreleased itself. */
        (void)weft__wake((struct weft__task *)x, seq, WEFT_WAKE_WOKEN);
    } else {
        WEFT_CNT_ADD(w->n.unreleased, 1);
    }
}

/* Says once per run why the mprotect guard mode refuses more tasks. */
static int over_budget(struct weft__runtime *rt, uint64_t live)
{
    static _Atomic(const struct weft__runtime *) told;
    const struct weft__stack_pool *p = &rt->stacks;
    if (atomic_exchange(&told, rt) != rt) {
        weft__say("%llu tasks alive: the mprotect stack guard costs two mappings a stack and "
                  "vm.max_map_count allows %llu stacks; use a kernel with guard markers "
                  "(Linux 6.13) or raise vm.max_map_count",
                  (unsigned long long)live, (unsigned long long)p->budget);
    }
    return -ENOMEM;
}

int weft_spawn_opts(weft_task **out, weft_fn fn, void *arg, const struct weft_task_opts *opts)
{
    struct weft__runtime *rt = weft__rt;
    if (!rt)
        return -EPERM;
    struct weft__worker *w = weft__worker_self();
    if (w && !w->current)
        return -EPERM;
    if (!out || !fn)
        return -EINVAL;
    if (opts && opts->stack_size &&
        (opts->stack_size < WEFT_STACK_MIN || opts->stack_size > WEFT_STACK_MAX))
        return -EINVAL;
    if (opts && ((opts->flags & ~WEFT_TASK_SHARED_STACK) || opts->reserved32 ||
                 opts->reserved[0] || opts->reserved[1] || opts->reserved[2] ||
                 ((opts->flags & WEFT_TASK_SHARED_STACK) && opts->stack_size)))
        return -EINVAL;
    bool shared = opts && (opts->flags & WEFT_TASK_SHARED_STACK);
    /* Shared-stack tasks map no stack: they neither use the budget nor
     * count against it. */
    if (rt->stacks.mode == WEFT_GUARD_MPROTECT && !shared) {
        uint64_t live = weft__live_tasks(rt), sh = atomic_load(&rt->shared_live);
        live = live > sh ? live - sh : 0;
        if (live >= rt->stacks.budget)
            return over_budget(rt, live);
    }
    struct weft__task *t;
    int err = weft__task_new(w, &t, fn, arg, opts);
    if (err < 0)
        return err;
    if (shared) /* its side block comes at its first run (worker.c) */
        atomic_fetch_add_explicit(&rt->shared_live, 1, memory_order_relaxed);
    *out = weft__task_handle(t);
    if (w) {
        /* The spawner goes on: a task it woke may be taken elsewhere. */
        weft__worker_flush_next(w);
        weft__worker_ready(w, t);
    }
    else
        weft__worker_inject(rt, t);
    return 0;
}

int weft_spawn(weft_task **out, weft_fn fn, void *arg)
{
    return weft_spawn_opts(out, fn, arg, NULL);
}

/* Why a join or detach could not claim a task whose join word is x (not 0,
 * not DONE): it is detached, or someone else joins it. */
static int claim_refused(uintptr_t x)
{
    return x == WEFT_J_DETACHED ? -EINVAL : -EBUSY;
}

/* Whether self joining t closes a cycle of joins: self's waits_on is
 * already t, so a cycle is a chain from t back to self. The hop bound
 * only guards against a cycle that does not include self (two joins that
 * raced past each other's check: the deadlock report catches those). */
static int closes_cycle(const struct weft__task *self, const struct weft__task *t)
{
    unsigned hops = 0;
    for (const struct weft__task *u = t; u && hops < (1u << 20); hops++) {
        if (u == self)
            return 1;
        u = atomic_load(&u->waits_on);
    }
    return 0;
}

/* Last in the joiner's commit: its claim (self|PENDING) becomes a plain
 * pointer, which the finisher wakes. If t finished meanwhile (DONE), the
 * joiner wakes itself; if the joiner already gave its claim up (its wait
 * was cancelled or timed out and it resumed elsewhere: the word is 0 or
 * another joiner's claim), there is nothing to do. */
static void publish_join(struct weft__worker *w, struct weft__task *self, uint64_t seq, void *arg)
{
    struct weft__task *t = arg;
    (void)w;
    uintptr_t x = (uintptr_t)self | WEFT_J_PENDING;
    if (atomic_compare_exchange_strong_explicit(&t->join, &x, (uintptr_t)self,
                                                memory_order_release, memory_order_acquire))
        return;
    /* If this wake fails, the wait ended otherwise, and the joiner counts
     * the result unreleased when it gives its claim up (unclaim). */
    if (settled_join(t, x) == WEFT_J_DONE)
        (void)weft__wake(self, seq, WEFT_WAKE_WOKEN);
}

/* The joiner's wait ended without t's wake-up: gives the claim back unless
 * t finished meanwhile. Returns whether t is done. */
static bool unclaim(struct weft__task *t, struct weft__task *self)
{
    uintptr_t x = (uintptr_t)self | WEFT_J_PENDING;
    if (atomic_compare_exchange_strong(&t->join, &x, 0))
        return false;
    x = (uintptr_t)self;
    if (atomic_compare_exchange_strong(&t->join, &x, 0))
        return false;
    return settled_join(t, x) == WEFT_J_DONE;
}

/* Whether the running task may run the unstarted t on its own stack. */
static bool may_inline(const struct weft__worker *w, const struct weft__task *self,
                       const struct weft__task *t)
{
    size_t need = t->stack_size ? t->stack_size : w->rt->cfg.inline_min;
    /* A shared-stack task's stack is copied out whole when it is switched
     * out (worker.c): a child on it would go with it, under another id. */
    if (w->rt->cfg.inline_min == 0 || !self->fib->stack_lo || self->shared || t->shared)
        return false;
    char *sp = __builtin_frame_address(0);
    return (size_t)(sp - (char *)self->fib->stack_lo) >= need;
}

/* Takes the unstarted t off the queue it waits in, if that is the newest
 * or the oldest end of w's own ring or the head of the injection queue
 * (where a full ring sends its older half): then nobody else can start it
 * and the joiner may run it. A join of children in spawn order finds each
 * one at the oldest end. */
static __attribute__((noinline)) bool take_unstarted_far(struct weft__worker *w,
                                                         struct weft__task *t)
{
    WEFT_RACE_POINT(INLINE_TAKE);
    return weft__ring_take_oldest_if(&w->ring, t) || weft__inject_take(&w->rt->inject, t);
}

static inline __attribute__((always_inline)) bool take_unstarted(struct weft__worker *w,
                                                                 struct weft__task *t)
{
    return weft__ring_pop_newest(&w->ring, t) == t || take_unstarted_far(w, t);
}

static int join_from_thread(struct weft__task *t, void **result);

/* Blocks self until t (claimed: self|PENDING) finishes, the deadline
 * passes or self is cancelled. Returns 0 when t is done, else -ETIMEDOUT,
 * -ECANCELED or -ENOMEM with the claim given back. */
static int join_wait(struct weft__task *self, struct weft__task *t, uint64_t deadline,
                     bool nocancel)
{
    uint64_t seq = weft__wait_seq(self);
    /* Read by the finisher once it finds the plain pointer that
     * publish_join (release) makes of the claim. */
    atomic_store_explicit(&t->join_seq, seq, memory_order_relaxed);
    int how =
        weft__wait_publish(self, seq, deadline, WEFT_W_JOIN, t, nocancel, publish_join, t);
    atomic_store_explicit(&self->waits_on, NULL, memory_order_relaxed);
    if (how != WEFT_WAKE_WOKEN && unclaim(t, self)) {
        /* t finished after all, but this wait ended first: nobody has its
         * result; a later join or detach releases it. */
        struct weft__worker *w = self->worker;
        WEFT_CNT_ADD(w->n.unreleased, 1);
    }
    return weft__wait_error(self, how);
}

static inline __attribute__((always_inline)) int
join_impl(weft_task *h, uint64_t deadline, bool nocancel, void **result)
{
    if (!weft__rt)
        return -EPERM;
    struct weft__worker *w = weft__worker_self();
    if (w && !w->current)
        return -EPERM;
    int err = -EINVAL;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    if (!w)
        return deadline == WEFT__NEVER ? join_from_thread(t, result) : -EPERM;
    struct weft__task *self = w->current;
    if (t == self)
        return -EDEADLK;
    uintptr_t x = settled_join(t, atomic_load_explicit(&t->join, memory_order_acquire));
    bool was_done = x == WEFT_J_DONE;
    if (!was_done) {
        if (x != 0)
            return claim_refused(x);
        uintptr_t mine = (uintptr_t)self | WEFT_J_PENDING;
        if (!atomic_compare_exchange_strong_explicit(&t->join, &x, mine, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            x = settled_join(t, x);
            if (x != WEFT_J_DONE)
                return claim_refused(x);
            was_done = true;
        } else if (deadline == WEFT__NEVER &&
                   atomic_load_explicit(&t->state, memory_order_relaxed) == WEFT_T_NEW &&
                   may_inline(w, self, t) && take_unstarted(w, t)) {
            /* An unstarted task joins nobody: no cycle to look for. */
            w = weft__worker_run_inline(w, self, t);
        } else {
            /* waits_on stays set from the check through the wait: a
             * joiner closing a cycle with us must see this edge. */
            atomic_store(&self->waits_on, t);
            err = closes_cycle(self, t)  ? -EDEADLK
                  : nocancel             ? weft__wait_check(NULL, deadline)
                                         : weft__wait_check(self, deadline);
            if (err < 0) {
                atomic_store(&self->waits_on, NULL);
                /* Give the claim back, unless t finished meanwhile: then
                 * the join is done after all (the finisher saw the claim
                 * and left the wake-up to this joiner), and a cancellation
                 * just taken stays pending. */
                if (atomic_compare_exchange_strong(&t->join, &mine, 0))
                    return err;
                (void)settled_join(t, mine);
                if (err == -ECANCELED)
                    atomic_store(&self->cancel, 1);
            } else {
                err = join_wait(self, t, deadline, nocancel);
                if (err < 0)
                    return err;
                w = self->worker; /* it may have resumed elsewhere */
            }
        }
    }
    if (was_done)
        WEFT_CNT_ADD(w->n.unreleased, (uint64_t)-1);
    if (result)
        *result = t->result;
    weft__task_free(w, t);
    return 0;
}

int weft_join(weft_task *h, void **result)
{
    return join_impl(h, WEFT__NEVER, false, result);
}

int weft_join_until(weft_task *h, uint64_t deadline, void **result)
{
    return join_impl(h, deadline, false, result);
}

int weft__join_reap(weft_task *h, void **result)
{
    return join_impl(h, WEFT__NEVER, true, result);
}

int weft_cancel(weft_task *h)
{
    if (!weft__rt)
        return -EPERM;
    int err = -EINVAL;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    uint8_t st = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (st == WEFT_T_EXITED || st == WEFT_T_DONE)
        return -EALREADY;
    /* seq_cst, then the look at the wake word: pairs with the commit's
     * store of the word and load of the flags (waitq.c), its own or, for a
     * child running inline, its hosts'. */
    atomic_store(&t->cancel, 1);
    weft__cancel_barrier(weft__rt);
    /* The handle's task may have finished and its slot gone to a new task
     * since the lookup: then take the request back. */
    uint64_t hgen = (uint64_t)(uintptr_t)h >> WEFT_TASK_INDEX_BITS;
    if (atomic_load(&t->gen) != hgen) {
        uint32_t one = 1;
        atomic_compare_exchange_strong(&t->cancel, &one, 0);
        return -EALREADY;
    }
    /* The task that waits, if t is suspended: t, or the innermost child
     * running inline on t's stack (t joins it, it joins the next...). */
    struct weft__task *u = t;
    uint64_t gen = hgen;
    for (unsigned hops = 0; hops < 4096; hops++) {
        struct weft__task *c = atomic_load_explicit(&u->waits_on, memory_order_acquire);
        if (!c)
            break;
        uint64_t cgen = atomic_load(&c->gen);
        if (__atomic_load_n(&c->host, __ATOMIC_ACQUIRE) != u)
            break; /* a blocking join, not an inline one */
        u = c;
        gen = cgen;
    }
    uint64_t word = atomic_load(&u->wake);
    /* Trust the word only if it was read while u still was that task:
     * seqs only grow within a slot, so the CAS cannot end a later task's
     * wait. */
    if (atomic_load(&u->gen) == gen && (word & WEFT_WAKE_OUTCOME) == WEFT_WAKE_WAITING)
        weft__wake(u, word >> WEFT_WAKE_SEQ_SHIFT, WEFT_WAKE_CANCELED);
    return 0;
}

/* weft_join from a thread that is not a worker: it blocks on a futex. */
static int join_from_thread(struct weft__task *t, void **result)
{
    struct weft__ext_wait e;
    atomic_init(&e.done, 0);
    uintptr_t x = 0;
    bool was_done = false;
    if (!atomic_compare_exchange_strong_explicit(&t->join, &x, (uintptr_t)&e | WEFT_J_EXT,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        x = settled_join(t, x);
        if (x != WEFT_J_DONE)
            return claim_refused(x);
        was_done = true;
    }
    while (!was_done && atomic_load_explicit(&e.done, memory_order_acquire) == 0)
        syscall(SYS_futex, (uint32_t *)&e.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    /* The acquire load of e.done (or the failed CAS) pairs with the
     * finisher's release: the result is visible. */
    if (was_done)
        atomic_fetch_add(&weft__rt->ext_released, 1);
    if (result)
        *result = t->result;
    weft__task_free(NULL, t);
    return 0;
}

int weft_detach(weft_task *h)
{
    if (!weft__rt)
        return -EPERM;
    struct weft__worker *w = weft__worker_self();
    if (w && !w->current)
        return -EPERM;
    int err = -EINVAL;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    uintptr_t x = 0;
    if (atomic_compare_exchange_strong_explicit(&t->join, &x, WEFT_J_DETACHED,
                                                memory_order_acq_rel, memory_order_acquire))
        return 0;
    x = settled_join(t, x);
    if (x != WEFT_J_DONE)
        return claim_refused(x);
    if (w)
        WEFT_CNT_ADD(w->n.unreleased, (uint64_t)-1);
    else
        atomic_fetch_add(&weft__rt->ext_released, 1);
    weft__task_free(w, t);
    return 0;
}

weft_task *weft_self(void)
{
    struct weft__worker *w = weft__worker_self();
    return w && w->current ? weft__task_handle(w->current) : NULL;
}

uint64_t weft_task_id(weft_task *h)
{
    if (!weft__rt)
        return 0;
    int err = -EINVAL;
    struct weft__task *t = weft__task_lookup(h, &err);
    return t ? t->id : 0;
}
