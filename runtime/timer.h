/*
 * Per-worker timers: a 4-ary min-heap of sleeping tasks keyed by deadline.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct weft__task;

/* Owner worker only. */
struct weft__timers {
    struct weft__task **heap;
    uint32_t len, cap;
    uint64_t fired;
};

void weft__timers_init(struct weft__timers *t);
void weft__timers_term(struct weft__timers *t);
/* Makes room for one more timer. Returns 0 or -ENOMEM. Owner worker only. */
int weft__timers_reserve(struct weft__timers *t);
/* Adds task (its deadline set). Returns 0 or -ENOMEM. Owner worker only. */
int weft__timer_add(struct weft__timers *t, struct weft__task *task);
/* Removes a task that is in the heap. Owner worker only. */
void weft__timer_del(struct weft__timers *t, struct weft__task *task);
/* The earliest deadline, or UINT64_MAX when empty. Owner worker only. */
uint64_t weft__timers_next(const struct weft__timers *t);
/* Removes and returns the earliest task if its deadline is <= now, else
 * NULL. Owner worker only. */
struct weft__task *weft__timers_pop_due(struct weft__timers *t, uint64_t now);

#endif
