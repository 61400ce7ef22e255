/*
 * struct weft__task, its states, the task table that turns handles into
 * tasks, and spawn / join / detach.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <pthread.h>
#include <stdint.h>

#include "arch/context.h"
#include "weft.h"

struct weft__worker;
struct weft__stack;

/* The states of a task, and who owns the task and its stack in each
 * (as Go's G states). */
enum weft__task_state {
    WEFT_T_FREE = 0, /* a free slot: on a worker's free list; no stack */
    WEFT_T_NEW,      /* spawned, never run: in a run queue; no stack yet */
    WEFT_T_READY,    /* runnable: in a run queue; its stack holds its context */
    WEFT_T_RUNNING,  /* running on worker `worker`; it owns itself */
    WEFT_T_BLOCKED,  /* suspended, waiting for `wait`; whoever wakes it owns it */
    WEFT_T_EXITED,   /* returned; still on its stack until the next switch */
    WEFT_T_DONE,     /* finished, stack recycled; the slot waits for join */
};

/* What a blocked task waits for (shown by the deadlock report). */
enum weft__wait {
    WEFT_W_NONE = 0,
    WEFT_W_JOIN,  /* the task `waits_on` to finish */
    WEFT_W_SLEEP, /* its deadline */
};

struct weft__task {
    struct weft__fiber fiber;     /* its context; valid in READY and BLOCKED */
    struct weft__task *next;      /* run-queue or free-list link; its owner */
    struct weft__worker *worker;  /* the worker that runs it (or ran it last) */
    struct weft__stack *stack;    /* from its first run to its exit */
    weft_fn fn;
    void *arg;
    void *result;                 /* written at exit, read by the joiner */
    size_t stack_size;            /* rounded; 0 = the runtime's default */
    uint64_t id;                  /* unique within the run; the main task is 1 */
    uint64_t gen;                 /* handle generation: bumped at each free */
    uint64_t deadline;            /* WEFT_W_SLEEP: when to wake */
    struct weft__task *joiner;    /* the task waiting in weft_join, or NULL */
    struct weft__task *waits_on;  /* WEFT_W_JOIN: the task joined */
    uint32_t index;               /* slot index in the task table; fixed */
    uint32_t heap_idx;            /* position in the timer heap while sleeping */
    uint8_t state;                /* enum weft__task_state */
    uint8_t wait;                 /* enum weft__wait */
    uint8_t detached;             /* handle released: free the slot at exit */
    char name[32];
};

/* Every task slot, allocated in chunks that live as long as the runtime,
 * so that a handle can be checked (index and generation) after its task is
 * gone. Chunks are added under `lock`; dir entries are written once. */
#define WEFT_TASK_CHUNK_BITS 10
#define WEFT_TASK_INDEX_BITS 24
#define WEFT_TASK_DIR_LEN (1u << (WEFT_TASK_INDEX_BITS - WEFT_TASK_CHUNK_BITS))

struct weft__task_table {
    struct weft__task **dir; /* WEFT_TASK_DIR_LEN chunk pointers */
    uint32_t nchunks;
    pthread_mutex_t lock;
};

int weft__task_table_init(struct weft__task_table *tt);
void weft__task_table_term(struct weft__task_table *tt);

/* The task a handle names, or NULL (*err says -EINVAL or -ESRCH). Owner
 * worker of the caller. */
struct weft__task *weft__task_lookup(weft_task *h, int *err);
/* The handle of a task. Any thread. */
weft_task *weft__task_handle(const struct weft__task *t);

/* Creates a task in state NEW (not queued). Worker thread. */
int weft__task_new(struct weft__worker *w, struct weft__task **out, weft_fn fn, void *arg,
                   const struct weft_task_opts *opts);
/* Returns a finished, released task's slot to w's free list. Worker thread. */
void weft__task_free(struct weft__worker *w, struct weft__task *t);

/* Called on the next context after t exited: recycles t's stack, marks it
 * DONE, wakes its joiner, frees it if detached. Worker thread. */
void weft__task_reap(struct weft__worker *w, struct weft__task *t);

#endif
