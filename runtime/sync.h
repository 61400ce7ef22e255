/*
 * Mutexes, conditions, semaphores and events (sync.c): what the white-box
 * tests may ask of them beyond weft.h.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdint.h>

#include "weft.h"

/* How many tasks are inside a waiting call on the object: queued, or
 * woken by a timeout or a cancellation and not yet out of the call (what
 * makes _free return -EBUSY). A test waits for this to reach n before it
 * acts, instead of sleeping and hoping. Any thread. */
uint64_t weft__mutex_waiting(weft_mutex *m);
uint64_t weft__cond_waiting(weft_cond *c);
uint64_t weft__sem_waiting(weft_sem *s);
uint64_t weft__event_waiting(weft_event *e);

#endif
