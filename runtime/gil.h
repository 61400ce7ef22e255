/*
 * GIL mode: one execution token for the whole runtime (gil.c).
 */
#ifndef WEFT_GIL_H
#define WEFT_GIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft__worker;

struct weft__gil {
    pthread_mutex_t mu;          /* guards the fields below but drop_request */
    pthread_cond_t released;     /* the token was given back */
    pthread_cond_t taken;        /* the token was taken (forced switching) */
    struct weft__worker *holder; /* the worker whose thread holds it, or NULL */
    struct weft__worker *last;   /* the previous holder: a take by another is a hand-off */
    uint64_t switch_number;      /* takes so far */
    unsigned nwaiting;           /* workers waiting in take */
    bool reserved;               /* released while workers waited: one of them takes it next */
    uint64_t interval_ns;        /* the switch interval */
    uint64_t handoffs;           /* takes by a worker other than the last holder */
    uint64_t forced;             /* drops asked for by a waiter */
    /* Set by a waiter that has waited a whole interval; read by the holder
     * at its safe points (relaxed: a late look only delays the drop). */
    _Atomic uint32_t drop_request;
};

int weft__gil_init(struct weft__gil *g, uint64_t interval_us);
void weft__gil_term(struct weft__gil *g);

/* Takes the token for w's thread, waiting as CPython's take_gil does: a
 * wait of a whole switch interval in which nobody else took it sets the
 * drop request. Returns whether the token came from another worker (a
 * hand-off). Worker w's thread; blocks it. */
bool weft__gil_take(struct weft__gil *g, struct weft__worker *w);

/* Gives the token back. When other workers wait for it, one of them gets
 * it next: a take that starts after this drop (the releaser's own, back
 * from its system call) waits until one of them has taken it. With
 * `forced` (the holder drops because it was asked to), the releaser waits
 * here until then. Worker w's thread, which holds the token. */
void weft__gil_drop(struct weft__gil *g, struct weft__worker *w, bool forced);

/* Whether another worker waits for the token. Any thread. */
bool weft__gil_contended(struct weft__gil *g);

/* Whether a waiter asks the holder to drop the token. Any thread. */
static inline bool weft__gil_drop_requested(struct weft__gil *g)
{
    return atomic_load_explicit(&g->drop_request, memory_order_relaxed) != 0;
}

#endif
