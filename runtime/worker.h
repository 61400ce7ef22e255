/*
 * A worker: one thread running a scheduler of tasks. Its state is one
 * struct made of sub-structs that each module owns.
 */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include <stdint.h>

#include "arch/context.h"
#include "stack.h"
#include "timer.h"

struct weft__runtime;
struct weft__task;

/* The ready tasks of one worker, FIFO, linked through task->next. Owner
 * worker only. */
struct weft__runq {
    struct weft__task *head, *tail;
    uint64_t len;
};

struct weft__worker_counters {
    uint64_t spawned;   /* tasks created on this worker */
    uint64_t finished;  /* tasks that exited on this worker */
    uint64_t switches;  /* context switches */
    uint64_t live_peak; /* most live tasks seen */
    uint64_t unreleased; /* finished tasks whose handle is not released */
};

struct weft__worker {
    struct weft__fiber sched;      /* the thread's own context: the idle loop */
    struct weft__task *current;    /* the running task, NULL in the idle loop */
    struct weft__task *dead;       /* exited task to reap after the next switch */
    struct weft__runq runq;
    struct weft__timers timers;
    struct weft__stack_cache stacks;
    struct weft__altstack altstack;
    struct weft__task *free_tasks; /* free task slots, LIFO */
    struct weft__runtime *rt;
    uint32_t timer_countdown;      /* decisions left before timers are checked */
    unsigned id;
    struct weft__worker_counters n;
};

/* The worker running on this thread, or NULL. The overflow handler reads it,
 * hence initial-exec. Task code must not cache it across a suspension. */
extern __thread struct weft__worker *weft__tls_worker
    __attribute__((tls_model("initial-exec")));

/* The worker of the calling thread, or NULL. Any thread. */
struct weft__worker *weft__worker_self(void);

int weft__worker_init(struct weft__worker *w, struct weft__runtime *rt, unsigned id);
void weft__worker_term(struct weft__worker *w);

/* Makes t runnable on w, at the back of its queue. Owner worker only. */
void weft__worker_ready(struct weft__worker *w, struct weft__task *t);

/* Runs something else until `self` (running on w, already queued or
 * blocked by the caller) is resumed; returns the worker it resumed on.
 * Task context. */
struct weft__worker *weft__worker_suspend(struct weft__worker *w, struct weft__task *self);

/* Ends the running task `self` with result r. Task context; never returns. */
_Noreturn void weft__worker_exit(struct weft__worker *w, struct weft__task *self, void *r);

/* The scheduler loop of w, on its thread, until no task is left. Returns 0,
 * or -EDEADLK after reporting the blocked tasks. Owner thread. */
int weft__worker_loop(struct weft__worker *w);

/* Live tasks on w: spawned and not finished. Owner worker only. */
uint64_t weft__worker_live(const struct weft__worker *w);

#endif
