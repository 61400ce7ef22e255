/*
 * Generators: struct weft_gen, its states, and what other modules may read
 * of it (the overflow report in stack.c). gen.c owns it; its essay says
 * how a resume works.
 */
#ifndef WEFT_GEN_H
#define WEFT_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/context.h"
#include "weft.h"

struct weft__stack;

/* The low two bits of a generator's word; the other bits hold the task
 * that is resuming it while RUNNING (tasks are 64-byte aligned), and are
 * zero otherwise. Who owns the generator and its stack in each state: */
enum weft__gen_state {
    WEFT_G_NEW = 0,       /* never resumed: no stack; whoever claims it */
    WEFT_G_SUSPENDED = 1, /* stopped at a yield: its stack holds its context; whoever claims it */
    WEFT_G_DONE = 2,      /* returned, or closed: no stack; final */
    WEFT_G_RUNNING = 3,   /* | task: that task is inside a resume of it and owns every field */
};
#define WEFT_G_STATE_BITS ((uintptr_t)3)

struct weft_gen {
    struct weft__fiber fiber;   /* the body's context, from the first resume to the end */
    /* The state word: CAS by a claiming resumer (acq_rel), release store
     * when its resume ends (pairs with the next claim's acquire). */
    _Atomic uintptr_t word;
    /* The fields below are read and written only by the task holding the
     * claim (or by the creator, before the generator is shared). */
    struct weft__fiber *caller; /* the resume in progress: where a yield switches back to */
    struct weft__stack *stack;  /* from the first resume to the end of the body */
    weft_gen_fn fn;
    void *arg;
    void *xfer;                 /* the value crossing: sent in, or yielded or returned out */
    size_t stack_size;          /* bytes, rounded to pages */
    bool returned;              /* the body has returned (set on its stack, before its last switch) */
    bool closing;               /* weft_gen_close() resumed it: every yield returns -EPIPE */
    bool ignored_close;         /* it yielded while closing */
    /* Task groups opened in the body and not yet finished (group.c): while
     * any is, the body may not yield (PEP 789). Changed by the body's task,
     * or by whichever thread frees such a group. */
    _Atomic uint32_t open_scopes;
    char name[32];
};

/* The generator whose context is f; f must be a generator's fiber (a
 * task's fib that is not its stack owner's own fiber). Async-signal-safe. */
static inline const struct weft_gen *weft__gen_of_fiber(const struct weft__fiber *f)
{
    return (const struct weft_gen *)(const void *)((const char *)f -
                                                   offsetof(struct weft_gen, fiber));
}

struct weft__task;

/* The generator whose body t is running in (the innermost, when bodies
 * resume generators), or NULL. Task context of t. */
struct weft_gen *weft__gen_current(const struct weft__task *t);

#endif
