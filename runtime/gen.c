/*
 * Generators: Python's generator protocol (next, send, yield, yield from,
 * close) for C, stackful.
 *
 * What it owns: struct weft_gen (gen.h), its state word, its stack from
 * the first resume to the end of its body, and the switches between a
 * resuming task and the body.
 *
 * A resume is a call. weft_gen_next / _send / _close switch from the
 * calling context to the generator's fiber, and weft_gen_yield (or the end
 * of the body) switches back: two register swaps per value, through
 * weft__fiber_switch, never through the scheduler: no queue, no commit, no
 * worker involved at the switch itself.
 *
 * The body runs as the resuming task. weft_self() in a body is whichever
 * task resumed it, as in Python, and the body may sleep, join or yield
 * that task. For that to work the task's `fib` (task.h: the context the
 * task currently executes in, which the scheduler saves and resumes) points
 * at the generator's fiber for the whole resume: a task suspended inside
 * a body is saved in the generator's fiber and, resumed on any worker,
 * continues inside the body. The resume keeps the task's previous fib in
 * gen->caller (where a yield switches back to) and puts it back in t->fib
 * when the body yields or returns. Nesting is the same rule again: a body
 * that resumes another generator, a child task run inline in a body (its
 * fib is its host's), a generator resumed by an inline child: t->fib is
 * always the innermost context and gen->caller the one around it. Nothing
 * read before a resume's switch is trusted after it: the body may have
 * moved the task to another worker, so the worker is looked up again
 * (weft__worker_self) and never kept, nor any thread-local.
 *
 * The state word (gen->word) is the only shared field: NEW, SUSPENDED or
 * DONE, or RUNNING with the resuming task in the high bits. A resume
 * claims the generator with one CAS from NEW or SUSPENDED to
 * task|RUNNING; its acquire pairs with the release store that ended the
 * previous resume, so the generator's fields and the body's stack, written
 * by another task on another worker maybe, are visible. Every other field
 * belongs to the claim holder. A claim that finds RUNNING is refused:
 * -EDEADLK when the runner is the caller itself (or a task it runs inline
 * in): the caller is inside that body, and resuming it would resume
 * itself; -EBUSY for any other task, which may retry later. DONE is final.
 * So a generator is resumed by one task at a time, by any task in turn.
 *
 * Stacks come from the stack pool through the calling worker's cache at
 * the first resume (a generator never resumed costs its struct only), and
 * go back to the cache of the worker the last resume ended on, right after
 * the body's last switch (the body cannot free the stack it runs on).
 * weft_gen_free closes a suspended generator first, so that its cleanup
 * runs and its stack comes back; a run that ends with a suspended
 * generator never freed shows it as a stack in use (weft_stats_get).
 * A stack overflow in a body is reported by stack.c's fault handler,
 * which finds the guard through t->fib and names the generator.
 *
 * Close. weft_gen_close resumes a suspended body with its yield returning
 * -EPIPE and gen->closing set (Python throws GeneratorExit). The body
 * should clean up and return. A yield made while closing does not suspend:
 * it returns -EPIPE again and the close reports -EPROTO once the body
 * returns (Python's "generator ignored GeneratorExit"). Rejected: letting
 * that yield suspend, as CPython does, would leave a generator that can
 * only be freed without its cleanup, since C cannot unwind a stack.
 *
 * yield from is a loop in the delegating body over the public calls: next
 * inner, yield its value, send inner what came back, close inner on close.
 * Rejected: switching the resumer straight to the innermost generator
 * saves two switches per level, but every entry point would have to walk
 * and keep consistent a delegation chain.
 *
 * Threads: any task may create, resume, close or free any generator; the
 * body runs on the thread of the worker its task is on at the time.
 */
#include "gen.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "runtime.h"
#include "stack.h"
#include "task.h"
#include "worker.h"

static uintptr_t state_of(uintptr_t x)
{
    return x & WEFT_G_STATE_BITS;
}

static struct weft__task *runner_of(uintptr_t x)
{
    return (struct weft__task *)(x & ~WEFT_G_STATE_BITS);
}

/* The task running on this thread, or NULL. Looked up afresh on each call:
 * never kept across anything that may suspend. */
static struct weft__task *current_task(void)
{
    struct weft__worker *w = weft__worker_self();
    return w ? w->current : NULL;
}

static const char *name_of(const struct weft_gen *g)
{
    return g->name[0] ? g->name : "(unnamed)";
}

int weft_gen_new_opts(weft_gen **out, weft_gen_fn fn, void *arg, const struct weft_gen_opts *opts)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    if (!out || !fn)
        return -EINVAL;
    size_t size = opts ? opts->stack_size : 0;
    if (size && (size < WEFT_STACK_MIN || size > WEFT_STACK_MAX))
        return -EINVAL;
    struct weft_gen *g = weft__zalloc(sizeof *g);
    if (!g)
        return -ENOMEM;
    g->fn = fn;
    g->arg = arg;
    g->stack_size = weft__stack_round(size ? size : w->rt->cfg.stack_size);
    if (opts && opts->name)
        strncpy(g->name, opts->name, sizeof g->name - 1);
    atomic_init(&g->word, WEFT_G_NEW);
    *out = g;
    return 0;
}

int weft_gen_new(weft_gen **out, weft_gen_fn fn, void *arg)
{
    return weft_gen_new_opts(out, fn, arg, NULL);
}

/* Why `self` may not resume a generator that task r is resuming. */
static int refused(const struct weft__task *self, const struct weft__task *r)
{
    for (const struct weft__task *u = self; u; u = u->host)
        if (u == r)
            return -EDEADLK;
    return -EBUSY;
}

/* Claims g for a resume by self and stores the state it was in (NEW or
 * SUSPENDED) in *was. `may_start`: whether a NEW generator may be claimed
 * (not by a send of a value). Returns 0 or the refusal. */
static int claim(struct weft_gen *g, struct weft__task *self, bool may_start, uintptr_t *was)
{
    /* Acquire (here and in the CAS): pairs with the release in unclaim(). */
    uintptr_t x = atomic_load_explicit(&g->word, memory_order_acquire);
    do {
        if (state_of(x) == WEFT_G_RUNNING)
            return refused(self, runner_of(x));
        if (x == WEFT_G_DONE)
            return -EPIPE;
        if (x == WEFT_G_NEW && !may_start)
            return -EINVAL;
    } while (!atomic_compare_exchange_weak_explicit(&g->word, &x,
                                                    (uintptr_t)self | WEFT_G_RUNNING,
                                                    memory_order_acq_rel, memory_order_acquire));
    *was = x;
    return 0;
}

/* Ends the claim holder's resume: g is left in `state`. Release: pairs
 * with the acquire of the next claim. */
static void unclaim(struct weft_gen *g, uintptr_t state)
{
    atomic_store_explicit(&g->word, state, memory_order_release);
}

/* Whether the running code is g's body, run by the task that resumed it.
 * Relaxed: the only value that matters, self as the runner, was stored by
 * self. */
struct weft_gen *weft__gen_current(const struct weft__task *t)
{
    /* A child running inline shares its host's context: the stack owner is
     * at the end of the host chain, and any other context is a body's. */
    const struct weft__task *owner = t;
    while (owner->host)
        owner = owner->host;
    if (t->fib == &owner->fiber)
        return NULL;
    return (struct weft_gen *)weft__gen_of_fiber(t->fib);
}

static bool in_body(const struct weft_gen *g, const struct weft__task *self)
{
    return runner_of(atomic_load_explicit(&g->word, memory_order_relaxed)) == self &&
           self->fib == &g->fiber;
}

static _Noreturn void body_entry(void *arg)
{
    struct weft_gen *g = arg;
    weft__fiber_entered(&g->fiber);
    void *r = g->fn(g, g->arg);
    /* A group opened in the body and still open would outlive the body,
     * and keep a pointer to this generator (group.c): no task may outlive
     * its group, so this is a bug in the body. */
    if (atomic_load(&g->open_scopes))
        weft__panic("generator \"%s\" returned with %u task group(s) it opened still open: "
                    "wait for them (weft_group_wait) before returning",
                    name_of(g), (unsigned)atomic_load(&g->open_scopes));
    g->xfer = r;
    g->returned = true;
    /* g->caller is the resume in progress, not the first one. */
    weft__fiber_switch(&g->fiber, g->caller, g, true);
    weft__panic("generator \"%s\" was resumed after it returned", name_of(g));
}

/* The first resume: a stack from the calling worker's cache, and a fresh
 * context that enters body_entry. Claim holder; task context. */
static int start(struct weft_gen *g)
{
    struct weft__worker *w = weft__worker_self();
    g->stack = weft__stack_get(&w->rt->stacks, &w->stacks, g->stack_size);
    if (!g->stack)
        return -ENOMEM;
#ifdef WEFT_ASAN
    /* A reused stack may still carry the poison of frames its last user
     * left when it switched away for good. */
    __asan_unpoison_memory_region(g->stack->lo, g->stack->size);
#endif
    weft__fiber_make(&g->fiber, g->stack->lo, g->stack->size, body_entry);
    return 0;
}

/* After the body's last switch: its stack goes to the cache of the worker
 * the resumer is on now. Claim holder; task context. */
static void finish(struct weft_gen *g)
{
    struct weft__worker *w = weft__worker_self();
    weft__stack_put(&w->rt->stacks, &w->stacks, g->stack);
    g->stack = NULL;
    weft__fiber_release(&g->fiber);
}

/* Runs the claimed g (in state `was`) in the calling task until the body
 * yields or returns, handing it `in`. Stores what came out in *out and
 * returns the state g is left in (SUSPENDED or DONE), or -ENOMEM; the
 * caller ends the claim. Task context; may suspend (the body may). */
static int run(struct weft_gen *g, struct weft__task *self, uintptr_t was, void *in, void **out)
{
    if (was == WEFT_G_NEW) {
        int err = start(g);
        if (err < 0)
            return err;
    }
    struct weft__fiber *caller = self->fib;
    g->caller = caller;
    g->xfer = in;
    self->fib = &g->fiber;
    weft__fiber_switch(caller, &g->fiber, g, false);
    /* Back from a yield or the end of the body, on whichever worker the
     * task is on now. */
    self->fib = caller;
    if (out)
        *out = g->xfer;
    if (!g->returned)
        return WEFT_G_SUSPENDED;
    finish(g);
    return WEFT_G_DONE;
}

/* next and send: claim, run, release. */
static int resume(struct weft_gen *g, void *in, void **out)
{
    if (out)
        *out = NULL;
    struct weft__task *self = current_task();
    if (!self)
        return -EPERM;
    if (!g)
        return -EINVAL;
    uintptr_t was;
    int err = claim(g, self, in == NULL, &was);
    if (err < 0)
        return err;
    int st = run(g, self, was, in, out);
    unclaim(g, st < 0 ? was : (uintptr_t)st);
    if (st < 0)
        return st;
    return st == WEFT_G_DONE ? WEFT_GEN_DONE : 0;
}

int weft_gen_next(weft_gen *g, void **out)
{
    return resume(g, NULL, out);
}

int weft_gen_send(weft_gen *g, void *value, void **out)
{
    return resume(g, value, out);
}

int weft_gen_yield(weft_gen *g, void *value, void **sent)
{
    if (sent)
        *sent = NULL;
    struct weft__task *self = current_task();
    if (!self)
        return -EPERM;
    if (!g)
        return -EINVAL;
    if (!in_body(g, self))
        return -EPERM;
    /* PEP 789: a task group opened in this body and still open would, after
     * the yield, cancel and wait on behalf of whichever task resumes next,
     * not the one that opened it. */
    if (atomic_load(&g->open_scopes))
        return -EPERM;
    if (g->closing) {
        g->ignored_close = true;
        return -EPIPE;
    }
    g->xfer = value;
    weft__fiber_switch(&g->fiber, g->caller, g, false);
    /* Resumed by a next, a send or a close: by any task, on any worker. */
    if (g->closing)
        return -EPIPE;
    if (sent)
        *sent = g->xfer;
    return 0;
}

int weft_gen_yield_from(weft_gen *g, weft_gen *inner, void **result)
{
    if (result)
        *result = NULL;
    struct weft__task *self = current_task();
    if (!self)
        return -EPERM;
    if (!g || !inner)
        return -EINVAL;
    if (!in_body(g, self))
        return -EPERM;
    /* PEP 789, as weft_gen_yield: refused before inner takes a step. */
    if (atomic_load(&g->open_scopes))
        return -EPERM;
    void *v, *sent;
    int r = weft_gen_next(inner, &v);
    while (r == 0) {
        int y = weft_gen_yield(g, v, &sent);
        if (y < 0) {
            /* g is being closed: close inner too (PEP 380), then say so. */
            int c = weft_gen_close(inner);
            return c < 0 ? c : y;
        }
        r = weft_gen_send(inner, sent, &v);
    }
    if (r != WEFT_GEN_DONE)
        return r;
    if (result)
        *result = v;
    return 0;
}

int weft_gen_close(weft_gen *g)
{
    struct weft__task *self = current_task();
    if (!self)
        return -EPERM;
    if (!g)
        return -EINVAL;
    uintptr_t x = atomic_load_explicit(&g->word, memory_order_acquire);
    for (;;) {
        if (state_of(x) == WEFT_G_RUNNING)
            return refused(self, runner_of(x));
        if (x == WEFT_G_DONE)
            return 0;
        /* NEW goes straight to DONE: no body ran, none will. SUSPENDED is
         * claimed. acq_rel: as in claim(). */
        uintptr_t to = x == WEFT_G_NEW ? WEFT_G_DONE : (uintptr_t)self | WEFT_G_RUNNING;
        if (atomic_compare_exchange_weak_explicit(&g->word, &x, to, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (x == WEFT_G_NEW)
                return 0;
            break;
        }
    }
    g->closing = true;
    int st = run(g, self, WEFT_G_SUSPENDED, NULL, NULL);
    /* Every yield returns at once while closing: the body has returned. */
    if (st != WEFT_G_DONE)
        weft__panic("generator \"%s\" suspended while being closed", name_of(g));
    int err = g->ignored_close ? -EPROTO : 0;
    unclaim(g, WEFT_G_DONE);
    return err;
}

bool weft_gen_closing(const weft_gen *g)
{
    return g && g->closing;
}

void weft_gen_free(weft_gen *g)
{
    if (!g)
        return;
    /* Acquire: pairs with the release in unclaim(), which ended the last
     * resume. */
    uintptr_t x = atomic_load_explicit(&g->word, memory_order_acquire);
    if (state_of(x) == WEFT_G_RUNNING)
        weft__panic("weft_gen_free: generator \"%s\" is being resumed", name_of(g));
    if (x == WEFT_G_SUSPENDED) {
        int err = weft_gen_close(g);
        if (err == -EPERM)
            weft__panic("weft_gen_free: generator \"%s\" is suspended at a yield and only a "
                        "task can close it",
                        name_of(g));
        /* -EPROTO: it ignored the close but has returned all the same. */
        if (err < 0 && err != -EPROTO)
            weft__panic("weft_gen_free: generator \"%s\" is being resumed", name_of(g));
    }
    weft__free(g, sizeof *g);
}
