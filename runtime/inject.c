/*
 * The injection queue (see inject.h). Workers look at it every 61
 * scheduling decisions and whenever their ring is empty, and take a share
 * (len / workers + 1, at most half a ring) so that one worker does not
 * drain it while the others search. Pushes come in batches (half a ring at
 * once when one overflows), so the lock is taken once per batch, not per
 * task.
 */
#include "inject.h"

#include "task.h"

void weft__inject_init(struct weft__inject *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
}

void weft__inject_term(struct weft__inject *q)
{
    pthread_mutex_destroy(&q->lock);
}

void weft__inject_push(struct weft__inject *q, struct weft__task *first, struct weft__task *last,
                       uint64_t n)
{
    last->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_release);
    pthread_mutex_unlock(&q->lock);
}

uint32_t weft__inject_pop(struct weft__inject *q, struct weft__task **out, uint32_t max)
{
    if (weft__inject_len(q) == 0)
        return 0;
    uint32_t n = 0;
    pthread_mutex_lock(&q->lock);
    while (n < max && q->head) {
        struct weft__task *t = q->head;
        q->head = t->next;
        out[n++] = t;
    }
    if (!q->head)
        q->tail = NULL;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n,
                          memory_order_release);
    pthread_mutex_unlock(&q->lock);
    return n;
}

bool weft__inject_take(struct weft__inject *q, const struct weft__task *t)
{
    if (weft__inject_len(q) == 0)
        return false;
    bool took = false;
    pthread_mutex_lock(&q->lock);
    /* Only an unstarted task: one that started elsewhere, blocked and was
     * woken from outside the workers is queued here too, READY or BLOCKED
     * (its push, under this lock, follows those state changes). */
    if (q->head == t && atomic_load_explicit(&t->state, memory_order_relaxed) == WEFT_T_NEW) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - 1,
                              memory_order_release);
        took = true;
    }
    pthread_mutex_unlock(&q->lock);
    return took;
}
