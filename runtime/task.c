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
 * Threads: one worker for now; every field is touched by that worker's
 * thread only. Chunk creation is under tt->lock so that the work-stealing
 * scheduler can share the table (TODO(#4)).
 */
#include "task.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "runtime.h"
#include "stack.h"
#include "worker.h"

#define CHUNK_LEN (1u << WEFT_TASK_CHUNK_BITS)
#define INDEX_MASK ((1u << WEFT_TASK_INDEX_BITS) - 1)

struct weft__runtime *weft__rt;

int weft__task_table_init(struct weft__task_table *tt)
{
    tt->dir = weft__zalloc(WEFT_TASK_DIR_LEN * sizeof tt->dir[0]);
    if (!tt->dir)
        return -ENOMEM;
    tt->nchunks = 0;
    pthread_mutex_init(&tt->lock, NULL);
    return 0;
}

void weft__task_table_term(struct weft__task_table *tt)
{
    for (uint32_t c = 0; c < tt->nchunks; c++)
        weft__free(tt->dir[c], CHUNK_LEN * sizeof tt->dir[c][0]);
    weft__free(tt->dir, WEFT_TASK_DIR_LEN * sizeof tt->dir[0]);
    tt->dir = NULL;
    tt->nchunks = 0;
    pthread_mutex_destroy(&tt->lock);
}

/* Adds a chunk of free slots to w's free list. */
static int grow(struct weft__worker *w)
{
    struct weft__task_table *tt = &w->rt->tasks;
    pthread_mutex_lock(&tt->lock);
    if (tt->nchunks == WEFT_TASK_DIR_LEN) {
        pthread_mutex_unlock(&tt->lock);
        return -ENOMEM;
    }
    struct weft__task *chunk = weft__zalloc(CHUNK_LEN * sizeof *chunk);
    if (!chunk) {
        pthread_mutex_unlock(&tt->lock);
        return -ENOMEM;
    }
    uint32_t base = tt->nchunks << WEFT_TASK_CHUNK_BITS;
    for (uint32_t i = CHUNK_LEN; i-- > 0;) {
        chunk[i].index = base + i;
        chunk[i].gen = 1;
        chunk[i].next = w->free_tasks;
        w->free_tasks = &chunk[i];
    }
    tt->dir[tt->nchunks++] = chunk;
    pthread_mutex_unlock(&tt->lock);
    return 0;
}

weft_task *weft__task_handle(const struct weft__task *t)
{
    return (weft_task *)(uintptr_t)((t->gen << WEFT_TASK_INDEX_BITS) | t->index);
}

struct weft__task *weft__task_lookup(weft_task *h, int *err)
{
    uintptr_t v = (uintptr_t)h;
    const struct weft__task_table *tt = &weft__rt->tasks;
    uint32_t idx = (uint32_t)(v & INDEX_MASK);
    uint64_t gen = (uint64_t)v >> WEFT_TASK_INDEX_BITS;
    uint32_t chunk = idx >> WEFT_TASK_CHUNK_BITS;
    if (gen == 0 || chunk >= tt->nchunks) {
        *err = -EINVAL;
        return NULL;
    }
    struct weft__task *t = &tt->dir[chunk][idx & (CHUNK_LEN - 1)];
    if (t->gen != gen || t->state == WEFT_T_FREE) {
        *err = gen < t->gen ? -ESRCH : -EINVAL;
        return NULL;
    }
    return t;
}

int weft__task_new(struct weft__worker *w, struct weft__task **out, weft_fn fn, void *arg,
                   const struct weft_task_opts *opts)
{
    if (!w->free_tasks) {
        int err = grow(w);
        if (err < 0)
            return err;
    }
    struct weft__task *t = w->free_tasks;
    w->free_tasks = t->next;
    t->next = NULL;
    t->worker = w;
    t->stack = NULL;
    t->fn = fn;
    t->arg = arg;
    t->result = NULL;
    t->stack_size = opts && opts->stack_size ? weft__stack_round(opts->stack_size) : 0;
    t->id = ++w->rt->next_id;
    t->joiner = t->waits_on = NULL;
    t->state = WEFT_T_NEW;
    t->wait = WEFT_W_NONE;
    t->detached = 0;
    t->name[0] = '\0';
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = '\0';
    }
    w->n.spawned++;
    if (weft__worker_live(w) > w->n.live_peak)
        w->n.live_peak = weft__worker_live(w);
    *out = t;
    return 0;
}

void weft__task_free(struct weft__worker *w, struct weft__task *t)
{
    if (t->state == WEFT_T_DONE && !t->detached)
        w->n.unreleased--;
    t->gen++;
    t->state = WEFT_T_FREE;
    t->next = w->free_tasks;
    w->free_tasks = t;
}

void weft__task_reap(struct weft__worker *w, struct weft__task *t)
{
    weft__stack_put(&w->stacks, t->stack);
    t->stack = NULL;
    weft__fiber_release(&t->fiber);
    t->state = WEFT_T_DONE;
    if (t->detached) {
        weft__task_free(w, t);
        return;
    }
    w->n.unreleased++;
    struct weft__task *j = t->joiner;
    if (j) {
        j->state = WEFT_T_READY;
        j->wait = WEFT_W_NONE;
        weft__worker_ready(w, j);
    }
}

/* Says once per run why the mprotect guard mode refuses more tasks. */
static int over_budget(struct weft__worker *w)
{
    static const struct weft__runtime *told;
    const struct weft__stack_pool *p = &w->rt->stacks;
    if (told != w->rt) {
        told = w->rt;
        weft__say("%llu tasks alive: the mprotect stack guard costs two mappings a stack and "
                  "vm.max_map_count allows %llu stacks; use a kernel with guard markers "
                  "(Linux 6.13) or raise vm.max_map_count",
                  (unsigned long long)weft__worker_live(w), (unsigned long long)p->budget);
    }
    return -ENOMEM;
}

int weft_spawn_opts(weft_task **out, weft_fn fn, void *arg, const struct weft_task_opts *opts)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    if (!out || !fn)
        return -EINVAL;
    if (opts && opts->stack_size &&
        (opts->stack_size < WEFT_STACK_MIN || opts->stack_size > WEFT_STACK_MAX))
        return -EINVAL;
    const struct weft__stack_pool *p = &w->rt->stacks;
    if (p->mode == WEFT_GUARD_MPROTECT && weft__worker_live(w) >= p->budget)
        return over_budget(w);
    struct weft__task *t;
    int err = weft__task_new(w, &t, fn, arg, opts);
    if (err < 0)
        return err;
    weft__worker_ready(w, t);
    *out = weft__task_handle(t);
    return 0;
}

int weft_spawn(weft_task **out, weft_fn fn, void *arg)
{
    return weft_spawn_opts(out, fn, arg, NULL);
}

/* Whether self joining t would close a cycle of joins. */
static int closes_cycle(const struct weft__task *self, const struct weft__task *t)
{
    for (const struct weft__task *u = t; u && u->state == WEFT_T_BLOCKED && u->wait == WEFT_W_JOIN;
         u = u->waits_on)
        if (u->waits_on == self)
            return 1;
    return 0;
}

int weft_join(weft_task *h, void **result)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    struct weft__task *self = w->current;
    int err;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    if (t == self)
        return -EDEADLK;
    if (t->detached)
        return -EINVAL;
    if (t->joiner)
        return -EBUSY;
    if (t->state != WEFT_T_DONE) {
        if (closes_cycle(self, t))
            return -EDEADLK;
        t->joiner = self;
        self->waits_on = t;
        self->state = WEFT_T_BLOCKED;
        self->wait = WEFT_W_JOIN;
        w = weft__worker_suspend(w, self);
        self->waits_on = NULL;
    }
    if (result)
        *result = t->result;
    weft__task_free(w, t);
    return 0;
}

int weft_detach(weft_task *h)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    int err;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    if (t->detached)
        return -EINVAL;
    if (t->joiner)
        return -EBUSY;
    if (t->state == WEFT_T_DONE) {
        weft__task_free(w, t);
        return 0;
    }
    t->detached = 1;
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
    int err;
    struct weft__task *t = weft__task_lookup(h, &err);
    return t ? t->id : 0;
}
