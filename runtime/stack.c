/*
 * Task stacks.
 *
 * What it owns: the address space of every task stack, the guard below each
 * one, the per-worker caches of free stacks, and the report of an overflow.
 *
 * Layout. Stacks are carved from slabs: one mmap (MAP_NORESERVE, so that
 * only touched pages cost memory) holding k slots of the same size, each
 * slot a guard followed by the stack that grows down towards it:
 *
 *     slab:  [guard|stack 0][guard|stack 1] ... [guard|stack k-1]
 *
 * Guards. The kernel limits a process to vm.max_map_count mappings (65530
 * by default) and a guard made with mprotect splits the slab into two
 * mappings per stack, so mprotect guards stop near 32,000 stacks. Linux 6.13
 * added guard markers (madvise(MADV_GUARD_INSTALL)): the guard lives in the
 * page tables, the slab stays one mapping, and a million guarded stacks cost
 * some 5,000 mappings. WEFT_GUARD=auto uses markers when the kernel has them
 * and mprotect otherwise; in mprotect mode weft_spawn refuses with -ENOMEM
 * (and says why, once) past the budget the mapping limit allows, instead of
 * letting mmap fail somewhere later. The guard is 16 KiB: a frame larger
 * than that can step over it, which -fstack-clash-protection prevents.
 *
 * The cache. Each worker keeps its free stacks, by size: hot ones (used
 * before, pages resident, reused first, LIFO so the most recently touched
 * is reused) and cold ones (never touched, or trimmed: their pages given
 * back with MADV_DONTNEED, which keeps guard markers). Nothing is unmapped
 * while the runtime runs; weft__stack_trim, called when a worker goes idle,
 * bounds the resident memory of the hot lists; weft__stack_pool_term unmaps
 * everything. Steady state therefore makes no system call per task.
 *
 * Overflow. A task that runs into its guard faults. The SIGSEGV handler runs
 * on the worker's alternate signal stack (the task's own stack is the one
 * that is full), checks that the fault address lies in the guard of the
 * stack the running task executes on (t->fib: its own, its inline host's,
 * or a generator's), writes one line naming the task (or the generator)
 * and the stack size, and aborts. A fault anywhere else is not ours: the
 * previous handler gets it (or the default action, by re-raising).
 *
 * Balance. Tasks migrate, so a stack taken on one worker may be returned on
 * another: a cache that grows past CACHE_MAX stacks of a size hands half of
 * them to the pool's spare list, and a cache that runs dry takes a batch
 * from there before it maps a new slab. So a worker that mostly starts
 * tasks and one that mostly finishes them do not leak stacks between them.
 *
 * Threads: the pool's slab list, spare lists and counters are shared (under
 * the pool lock: taken to create a slab or move a batch). A cache belongs
 * to one worker.
 */
#include "stack.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef WEFT_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#include "alloc.h"
#include "error.h"
#include "gen.h"
#include "task.h"
#include "worker.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_BYTES ((size_t)16 * 1024)
#define SLAB_BYTES ((size_t)16 * 1024 * 1024)
#define SLAB_MAX_STACKS 256
#define MAPPINGS_RESERVED 4096 /* left for the program's own mappings */

struct weft__slab {
    char *base;
    size_t len;
    size_t count;
    struct weft__slab *next;
    struct weft__stack stacks[];
};

/* Read by the signal handler: the guard size of the running pool. */
static size_t handler_guard;

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

size_t weft__stack_round(size_t size)
{
    size_t p = page_size();
    return (size + p - 1) & ~(p - 1);
}

static bool kernel_has_markers(size_t page)
{
    void *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool ok = madvise(m, page, MADV_GUARD_INSTALL) == 0;
    munmap(m, 2 * page);
    return ok;
}

static unsigned long max_map_count(void)
{
    unsigned long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%lu", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

int weft__stack_pool_init(struct weft__stack_pool *p, enum weft_guard want)
{
    memset(p, 0, sizeof *p);
    p->page = page_size();
    p->guard = GUARD_BYTES < p->page ? p->page : GUARD_BYTES;
    bool markers = kernel_has_markers(p->page);
    if (want == WEFT_GUARD_MARKER && !markers) {
        weft__say("WEFT_GUARD=\"marker\": this kernel has no guard markers "
                  "(MADV_GUARD_INSTALL, Linux 6.13)");
        return -ENOTSUP;
    }
    p->mode = (want == WEFT_GUARD_AUTO ? (markers ? WEFT_GUARD_MARKER : WEFT_GUARD_MPROTECT) : want);
    unsigned long maps = max_map_count();
    p->budget = maps > 2 * MAPPINGS_RESERVED ? (maps - MAPPINGS_RESERVED) / 2 : maps / 4;
    pthread_mutex_init(&p->lock, NULL);
    handler_guard = p->guard;
    return 0;
}

void weft__stack_pool_term(struct weft__stack_pool *p)
{
    struct weft__slab *s = p->slabs;
    while (s) {
        struct weft__slab *next = s->next;
        for (size_t i = 0; i < s->count; i++)
            VALGRIND_STACK_DEREGISTER(s->stacks[i].vg_id);
        /* Count down what was really unmapped: the stats after a run show
         * what teardown left behind. */
        if (munmap(s->base, s->len) == 0) {
            p->nslabs--;
            p->nstacks -= s->count;
            p->bytes -= s->len;
            p->mappings -= p->mode == WEFT_GUARD_MARKER ? 1 : 2 * s->count;
        }
        weft__free(s, sizeof *s + s->count * sizeof s->stacks[0]);
        s = next;
    }
    p->slabs = NULL;
    weft__free(p->spare, p->nspare_cls * sizeof p->spare[0]);
    p->spare = NULL;
    p->nspare_cls = 0;
    pthread_mutex_destroy(&p->lock);
}

static int guard_slots(struct weft__stack_pool *p, char *base, size_t slot, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        char *g = base + i * slot;
        int r = p->mode == WEFT_GUARD_MARKER ? madvise(g, p->guard, MADV_GUARD_INSTALL)
                                             : mprotect(g, p->guard, PROT_NONE);
        if (r != 0)
            return -errno;
    }
    return 0;
}

/* Maps a slab of stacks of `size` bytes and returns it, or NULL. */
static struct weft__slab *slab_new(struct weft__stack_pool *p, size_t size)
{
    size_t slot = p->guard + size;
    size_t k = SLAB_BYTES / slot;
    k = k < 1 ? 1 : (k > SLAB_MAX_STACKS ? SLAB_MAX_STACKS : k);
    size_t len = k * slot;
    struct weft__slab *s = weft__alloc(sizeof *s + k * sizeof s->stacks[0]);
    if (!s)
        return NULL;
    s->base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (s->base == MAP_FAILED)
        goto fail_map;
    if (guard_slots(p, s->base, slot, k) < 0)
        goto fail_guard;
    s->len = len;
    s->count = k;
    for (size_t i = 0; i < k; i++) {
        struct weft__stack *st = &s->stacks[i];
        st->lo = s->base + i * slot + p->guard;
        st->size = size;
        st->next = i + 1 < k ? &s->stacks[i + 1] : NULL;
        st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->lo + size);
    }
    return s;
fail_guard:
    munmap(s->base, len);
fail_map:
    weft__free(s, sizeof *s + k * sizeof s->stacks[0]);
    return NULL;
}

/* The class of `size` in the array *cls of *n classes, appended (empty)
 * if missing; NULL when out of memory. */
static struct weft__stack_class *find_class(struct weft__stack_class **cls, size_t *n, size_t size)
{
    for (size_t i = 0; i < *n; i++)
        if ((*cls)[i].size == size)
            return &(*cls)[i];
    struct weft__stack_class *a = weft__realloc(*cls, *n * sizeof *a, (*n + 1) * sizeof *a);
    if (!a)
        return NULL;
    *cls = a;
    memset(&a[*n], 0, sizeof a[0]);
    a[*n].size = size;
    return &a[(*n)++];
}

static struct weft__stack_class *class_of(struct weft__stack_cache *c, size_t size)
{
    return find_class(&c->cls, &c->ncls, size);
}

void weft__stack_cache_init(struct weft__stack_cache *c)
{
    memset(c, 0, sizeof *c);
}

void weft__stack_cache_term(struct weft__stack_cache *c)
{
    weft__free(c->cls, c->ncls * sizeof c->cls[0]);
    memset(c, 0, sizeof *c);
}

/* The cache's counts are written by its owner only, but stats read them
 * from any thread: single-copy atomic stores and loads, no
 * read-modify-write (the owner's own plain reads race with nothing). */
#define COUNT_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define COUNT_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static struct weft__stack *pop(struct weft__stack **list, uint64_t *n)
{
    struct weft__stack *s = *list;
    if (s) {
        *list = s->next;
        COUNT_SET(*n, *n - 1);
    }
    return s;
}

#define CACHE_MAX 512
#define CACHE_MOVE 256

/* The pool's spare class of `size`, created if needed. Under p->lock. */
static struct weft__stack_class *spare_of(struct weft__stack_pool *p, size_t size)
{
    return find_class(&p->spare, &p->nspare_cls, size);
}

/* Moves up to `count` stacks from list `from` to list `to`. */
static uint64_t move_stacks(struct weft__stack **from, uint64_t *nfrom, struct weft__stack **to,
                            uint64_t *nto, uint64_t count)
{
    uint64_t moved = 0;
    while (moved < count && *from) {
        struct weft__stack *s = *from;
        *from = s->next;
        s->next = *to;
        *to = s;
        moved++;
    }
    COUNT_SET(*nfrom, *nfrom - moved);
    COUNT_SET(*nto, *nto + moved);
    return moved;
}

/* Takes a batch of stacks of class k from the pool's spare list, maps a new
 * slab if there is none, keeps one stack and caches the rest. */
static struct weft__stack *refill(struct weft__stack_pool *p, struct weft__stack_class *k)
{
    pthread_mutex_lock(&p->lock);
    struct weft__stack_class *sp = spare_of(p, k->size);
    if (sp && (sp->nhot || sp->ncold)) {
        move_stacks(&sp->hot, &sp->nhot, &k->hot, &k->nhot, CACHE_MOVE);
        move_stacks(&sp->cold, &sp->ncold, &k->cold, &k->ncold, CACHE_MOVE);
        pthread_mutex_unlock(&p->lock);
        struct weft__stack *s = pop(&k->hot, &k->nhot);
        return s ? s : pop(&k->cold, &k->ncold);
    }
    if (p->mode == WEFT_GUARD_MPROTECT && p->nstacks >= p->budget) {
        pthread_mutex_unlock(&p->lock);
        return NULL;
    }
    struct weft__slab *s = slab_new(p, k->size);
    if (s) {
        s->next = p->slabs;
        p->slabs = s;
        p->nslabs++;
        p->nstacks += s->count;
        p->bytes += s->len;
        p->mappings += p->mode == WEFT_GUARD_MARKER ? 1 : 2 * s->count;
    }
    pthread_mutex_unlock(&p->lock);
    if (!s)
        return NULL;
    k->cold = s->stacks[0].next;
    COUNT_SET(k->ncold, k->ncold + s->count - 1);
    s->stacks[0].next = NULL;
    return &s->stacks[0];
}

struct weft__stack *weft__stack_get(struct weft__stack_pool *p, struct weft__stack_cache *c,
                                    size_t size)
{
    struct weft__stack_class *k = class_of(c, size);
    if (!k)
        return NULL;
    uint64_t before = k->nhot + k->ncold;
    struct weft__stack *s = pop(&k->hot, &k->nhot);
    if (!s)
        s = pop(&k->cold, &k->ncold);
    if (!s)
        s = refill(p, k);
    COUNT_SET(c->cached, c->cached + (k->nhot + k->ncold) - before);
    if (s) {
        COUNT_SET(c->in_use, c->in_use + 1);
        if (c->in_use > c->peak)
            COUNT_SET(c->peak, c->in_use);
    }
    return s;
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack_cache *c, struct weft__stack *s)
{
    struct weft__stack_class *k = class_of(c, s->size);
    if (!k)
        weft__panic("stack: no memory to cache a stack of %zu bytes", s->size);
    uint64_t before = k->nhot + k->ncold;
    s->next = k->hot;
    k->hot = s;
    COUNT_SET(k->nhot, k->nhot + 1);
    COUNT_SET(c->in_use, c->in_use - 1);
    if (k->nhot + k->ncold > CACHE_MAX) {
        pthread_mutex_lock(&p->lock);
        struct weft__stack_class *sp = spare_of(p, k->size);
        if (sp) {
            uint64_t moved = move_stacks(&k->cold, &k->ncold, &sp->cold, &sp->ncold, CACHE_MOVE);
            move_stacks(&k->hot, &k->nhot, &sp->hot, &sp->nhot, CACHE_MOVE - moved);
        }
        pthread_mutex_unlock(&p->lock);
    }
    COUNT_SET(c->cached, c->cached + (k->nhot + k->ncold) - before);
}

void weft__stack_trim(struct weft__stack_cache *c, uint64_t keep)
{
    for (size_t i = 0; i < c->ncls; i++) {
        struct weft__stack_class *k = &c->cls[i];
        while (k->nhot > keep) {
            struct weft__stack *s = pop(&k->hot, &k->nhot);
            madvise(s->lo, s->size, MADV_DONTNEED);
            s->next = k->cold;
            k->cold = s;
            COUNT_SET(k->ncold, k->ncold + 1);
        }
    }
}

uint64_t weft__stack_cached(const struct weft__stack_cache *c)
{
    return COUNT_GET(c->cached);
}

/* ---- overflow report ------------------------------------------------ */

static struct sigaction old_segv, old_bus;

/* Appends s to buf at *n; async-signal-safe. */
static void put_str(char *buf, size_t cap, size_t *n, const char *s)
{
    while (*s && *n < cap)
        buf[(*n)++] = *s++;
}

static void put_u64(char *buf, size_t cap, size_t *n, uint64_t v)
{
    char tmp[24];
    size_t i = 0;
    do
        tmp[i++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (i > 0 && *n < cap)
        buf[(*n)++] = tmp[--i];
}

/* The task whose stack t runs on: t, or the outermost task it runs inline
 * in. */
static const struct weft__task *stack_owner(const struct weft__task *t)
{
    while (t->host)
        t = t->host;
    return t;
}

/* The overflow was in a generator's body, on the generator's stack (t->fib
 * is the generator's fiber). */
static _Noreturn void report_gen_overflow(const struct weft__task *t)
{
    char buf[512];
    size_t n = 0;
    const struct weft_gen *g = weft__gen_of_fiber(t->fib);
    put_str(buf, sizeof buf, &n, "weft: stack overflow in generator \"");
    put_str(buf, sizeof buf, &n, g->name[0] ? g->name : "(unnamed)");
    put_str(buf, sizeof buf, &n, "\", resumed by task \"");
    put_str(buf, sizeof buf, &n, weft__task_shown_name(t));
    put_str(buf, sizeof buf, &n, "\" (id ");
    put_u64(buf, sizeof buf, &n, t->id);
    put_str(buf, sizeof buf, &n, "): its stack is ");
    put_u64(buf, sizeof buf, &n, t->fib->stack_len);
    put_str(buf, sizeof buf, &n, " bytes; raise WEFT_STACK_SIZE or weft_gen_opts.stack_size\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static _Noreturn void report_overflow(const struct weft__task *t)
{
    char buf[512];
    size_t n = 0;
    const struct weft__task *o = stack_owner(t);
    if (t->fib != &o->fiber)
        report_gen_overflow(t);
    put_str(buf, sizeof buf, &n, "weft: stack overflow in task \"");
    put_str(buf, sizeof buf, &n, weft__task_shown_name(t));
    put_str(buf, sizeof buf, &n, "\" (id ");
    put_u64(buf, sizeof buf, &n, t->id);
    if (o != t) {
        put_str(buf, sizeof buf, &n, "), running inline on the stack of task \"");
        put_str(buf, sizeof buf, &n, weft__task_shown_name(o));
        put_str(buf, sizeof buf, &n, "\" (id ");
        put_u64(buf, sizeof buf, &n, o->id);
        put_str(buf, sizeof buf, &n, "): that stack is ");
    } else {
        put_str(buf, sizeof buf, &n, "): its stack is ");
    }
    put_u64(buf, sizeof buf, &n, o->stack ? o->stack->size : o->fiber.stack_len);
    if (o->stack)
        put_str(buf, sizeof buf, &n, " bytes; raise WEFT_STACK_SIZE or weft_task_opts.stack_size");
    else
        put_str(buf, sizeof buf, &n, " bytes (its worker's shared stack); raise WEFT_STACK_SIZE");
    if (o != t)
        put_str(buf, sizeof buf, &n, ", or set WEFT_INLINE=0");
    put_str(buf, sizeof buf, &n, "\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void pass_on(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* The default action: returning re-runs the faulting instruction. */
    signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    struct weft__worker *w = weft__tls_worker;
    const struct weft__task *t = w ? w->current : NULL;
    /* The context the task runs in: its own stack, its inline host's, or
     * a generator's. */
    const struct weft__fiber *f = t ? t->fib : NULL;
    if (f && f->stack_lo) {
        const char *a = si->si_addr, *lo = f->stack_lo;
        if (a < lo && a >= lo - handler_guard)
            report_overflow(t);
    }
    pass_on(sig, si, uc);
}

void weft__stack_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void weft__stack_signals_restore(void)
{
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
}

int weft__altstack_init(struct weft__altstack *a)
{
    a->len = 64 * 1024;
    a->mem = mmap(NULL, a->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a->mem == MAP_FAILED) {
        a->mem = NULL;
        return -ENOMEM;
    }
    stack_t ss = {.ss_sp = a->mem, .ss_size = a->len, .ss_flags = 0};
    if (sigaltstack(&ss, &a->old) != 0) {
        int err = -errno;
        munmap(a->mem, a->len);
        a->mem = NULL;
        return err;
    }
    return 0;
}

void weft__altstack_term(struct weft__altstack *a)
{
    if (!a->mem)
        return;
    /* Put back the thread's previous alternate stack (or none). */
    if (a->old.ss_flags & SS_DISABLE) {
        stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    } else {
        sigaltstack(&a->old, NULL);
    }
    munmap(a->mem, a->len);
    a->mem = NULL;
}
