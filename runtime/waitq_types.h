/*
 * The wait-queue structures alone, for headers that embed a queue in an
 * object (poller.h) without the wait functions (waitq.h).
 */
#ifndef WEFT_WAITQ_TYPES_H
#define WEFT_WAITQ_TYPES_H

#include <stddef.h>
#include <stdint.h>

struct weft__task;

/* A task waiting in a wait queue. Lives on the waiting task's stack; linked
 * and unlinked only under the lock of the object that owns the queue. */
struct weft__waiter {
    struct weft__waiter *next, *prev;
    struct weft__task *task;
    uint64_t seq;   /* the task's wait this waiter belongs to */
    void *value;    /* handed over by the waker (a channel's value, a future's result) */
    int status;     /* handed over by the waker (a future's rejection) */
    size_t *op;     /* a select's: where the winning waker writes `index` */
    size_t index;
    int linked;     /* still in the queue */
};

struct weft__waitq {
    struct weft__waiter *head, *tail;
};

/* Waiters a shared-stack task has room for from its spawn (waitq.h). */
#define WEFT__TASK_WAITERS 2

#endif
