/*
 * The runtime: the configuration in force, the stack pool, the task table,
 * the workers and what they share to find work and to sleep.
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "blocking.h"
#include "gil.h"
#include "inject.h"
#include "poller.h"
#include "stack.h"
#include "task.h"
#include "topo.h"
#include "weft.h"

struct weft__worker;
struct weft__curl;

struct weft__runtime {
    struct weft_config cfg;        /* resolved; fixed while running */
    struct weft__topo topo;
    struct weft__stack_pool stacks;
    struct weft__task_table tasks;
    struct weft__inject inject;
    struct weft__worker *workers;
    unsigned nworkers;
    /* One worker, and membarrier() expedited is registered: a commit
     * writes its wake word without a full fence, and a canceller that is
     * not the worker's thread issues the barrier on its behalf (waitq.c,
     * "One worker"). */
    bool solo_commit;
    bool embedded;                 /* started by weft_runtime_start: runs until stopped */
    bool gil_on;                   /* WEFT_MODE=gil: one execution token (gil.c) */
    bool account;                  /* time accounting on (GIL mode, or WEFT_STATS=1) */
    bool trace_on;                 /* WEFT_TRACE: events recorded (trace.c) */
    FILE *trace_file;
    uint64_t trace_t0;
    struct weft__gil gil;
    struct weft__poller poller;    /* descriptors tasks wait on (poller.c) */
    _Atomic(struct weft__curl *) curl; /* libcurl's multi handle (curl.c): made by the first
                                      transfer (CAS), cleaned up at the end of the run */
    void (*curl_term)(struct weft__runtime *rt); /* set with it: so that only programs
                                      that use it link curl.c and libcurl statically */
    struct weft__blocking blocking; /* the blocking-call pool (blocking.c) */
    _Atomic uint64_t next_id;      /* task ids, handed to workers in blocks */
    _Atomic uint64_t ext_spawned;  /* tasks spawned by threads that are not workers */
    _Atomic uint64_t shared_live;  /* WEFT_TASK_SHARED_STACK tasks spawned and not finished:
                                      they map no stack of their own */
    _Atomic uint64_t ext_released; /* finished tasks released by threads that are not workers */
    _Atomic uint64_t ext_waits;    /* tasks waiting on something any thread may end (a
                                      future): while there are any, a run where every task
                                      is blocked is not a deadlock */
    struct weft__task *main_task;
    void *main_result;

    /* Idle workers: searching ones steal; parked ones sleep on their futex
     * and sit on the idle stack (under idle_lock). */
    _Alignas(64) _Atomic uint32_t nsearching;
    _Atomic uint32_t nidle;        /* workers on the idle stack */
    pthread_mutex_t idle_lock;
    struct weft__worker *idle;
    _Atomic bool stopping;         /* weft_runtime_stop was called */
    _Atomic bool done;             /* every worker must leave its loop */
    int exit_err;                  /* 0 or -EDEADLK; written before `done` */
};

/* The running runtime, or NULL. */
extern struct weft__runtime *weft__rt;

/* Fills *out from rt's current state. Any thread. */
void weft__stats_collect(const struct weft__runtime *rt, struct weft_stats *out);
/* Prints rt's configuration and counters on stderr (WEFT_STATS=1). */
void weft__stats_print(const struct weft__runtime *rt, const struct weft_stats *s);

/* Moves t's time accounting to state `to` (enum weft__acct). */
static inline void weft__acct(struct weft__task *t, unsigned to)
{
    if (__builtin_expect(weft__rt && weft__rt->account, 0)) {
        /* Accounting on: every chunk of slots has its cold records. */
        struct weft__task_cold *c = weft__task_cold(&weft__rt->tasks, t);
        uint64_t now = weft_now();
        c->acct_ns[c->acct_state] += now - c->acct_since;
        c->acct_since = now;
        c->acct_state = (uint8_t)to;
    }
}

#endif
