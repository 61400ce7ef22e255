/*
 * The injection queue: one per runtime, FIFO, for tasks that have no worker
 * ring to go to: spawned by a thread that is not a worker, or moved out of
 * a full ring. A mutex guards the list; `len` lets a worker see that it is
 * empty without taking the lock.
 */
#ifndef WEFT_INJECT_H
#define WEFT_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft__task;

struct weft__inject {
    pthread_mutex_t lock;
    struct weft__task *head, *tail; /* linked through task->next */
    _Atomic uint64_t len;
};

void weft__inject_init(struct weft__inject *q);
void weft__inject_term(struct weft__inject *q);
/* Appends the n tasks first..last (already linked). Any thread. */
void weft__inject_push(struct weft__inject *q, struct weft__task *first, struct weft__task *last,
                       uint64_t n);
/* Removes up to max of the oldest tasks into out[]; returns how many. Any
 * thread. */
uint32_t weft__inject_pop(struct weft__inject *q, struct weft__task **out, uint32_t max);

/* Removes t if it is the oldest task queued and has never run; returns
 * whether it did. Any thread. */
bool weft__inject_take(struct weft__inject *q, const struct weft__task *t);

static inline uint64_t weft__inject_len(struct weft__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif
