/*
 * Task stacks: mmap'd in slabs, a guard below each stack, kept in a
 * per-worker cache so that steady state maps nothing; and the report of a
 * stack overflow. See stack.c for the design and docs/design/stacks.md for
 * what each stack costs.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"

/* One stack. Its memory is [lo, lo + size); the guard lies just below lo. */
struct weft__stack {
    char *lo;                 /* lowest usable byte; fixed */
    size_t size;              /* usable bytes; fixed */
    struct weft__stack *next; /* cache link; owner worker only */
    unsigned vg_id;           /* valgrind's stack id */
};

/* The stacks of one size in one worker's cache. */
struct weft__stack_class {
    size_t size;
    struct weft__stack *hot; /* used before: pages resident */
    struct weft__stack *cold; /* never used, or pages given back */
    uint64_t nhot, ncold;
};

/* Per-worker cache; owner worker only. */
struct weft__stack_cache {
    struct weft__stack_class *cls;
    size_t ncls;
    int64_t in_use;  /* stacks handed out by this cache minus stacks returned to it
                        (tasks migrate: summed over workers it is the stacks in use) */
    int64_t peak;
    uint64_t cached;  /* stacks in all classes: what stats read from any thread (the
                         classes array may move) */
};

struct weft__slab;

/* Runtime-wide: the slabs and how guards are made. Fields below `lock` are
 * written under it; the rest are fixed after init. */
struct weft__stack_pool {
    enum weft_guard mode; /* WEFT_GUARD_MARKER or WEFT_GUARD_MPROTECT */
    size_t page;
    size_t guard;         /* bytes of guard below each stack */
    uint64_t budget;      /* most stacks the mapping limit allows (mprotect mode) */
    pthread_mutex_t lock;
    struct weft__slab *slabs;
    uint64_t nslabs, mappings, bytes, nstacks;
    struct weft__stack_class *spare; /* stacks handed back by workers with too many */
    size_t nspare_cls;
};

/* Chooses the guard mode (`want`, or the best the kernel offers for
 * WEFT_GUARD_AUTO) and prepares an empty pool. Returns 0, or -ENOTSUP when
 * WEFT_GUARD_MARKER is asked for and the kernel lacks guard markers.
 * weft_run's thread. */
int weft__stack_pool_init(struct weft__stack_pool *p, enum weft_guard want);
/* Unmaps every slab. Every worker has stopped. */
void weft__stack_pool_term(struct weft__stack_pool *p);

/* Rounds a stack size up to whole pages. Any thread. */
size_t weft__stack_round(size_t size);

void weft__stack_cache_init(struct weft__stack_cache *c);
void weft__stack_cache_term(struct weft__stack_cache *c);

/* A stack of `size` bytes (already rounded) from the cache, or from a new
 * slab; NULL when no memory or mapping is left. Owner worker only. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, struct weft__stack_cache *c,
                                    size_t size);
/* Returns s to the cache; its pages stay resident. A cache grown past its
 * bound hands half of that size's stacks back to the pool, where other
 * workers find them. Owner worker only. */
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack_cache *c, struct weft__stack *s);
/* Gives the pages of all but `keep` hot stacks of each size back to the
 * kernel (the stacks stay cached, as cold). Owner worker only. */
void weft__stack_trim(struct weft__stack_cache *c, uint64_t keep);
/* Stacks free in the cache. Owner worker only. */
uint64_t weft__stack_cached(const struct weft__stack_cache *c);

/* Installs the SIGSEGV/SIGBUS handler that reports a stack overflow, and
 * restores the previous handlers. weft_run's thread. */
void weft__stack_signals_install(void);
void weft__stack_signals_restore(void);

/* The calling thread's alternate signal stack, on which the overflow
 * handler runs: set up and restored by each worker thread. */
struct weft__altstack {
    void *mem;
    size_t len;
    stack_t old;
};
int weft__altstack_init(struct weft__altstack *a);
void weft__altstack_term(struct weft__altstack *a);

#endif
