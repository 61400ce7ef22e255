/*
 * The runtime: the configuration in force, the stack pool, the task table
 * and the workers. One runtime runs at a time in a process.
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include "stack.h"
#include "task.h"
#include "weft.h"

struct weft__worker;

struct weft__runtime {
    struct weft_config cfg;        /* resolved; fixed while running */
    struct weft__stack_pool stacks;
    struct weft__task_table tasks;
    struct weft__worker *workers;
    unsigned nworkers;
    uint64_t next_id;              /* task ids; owner worker (one worker) */
    struct weft__task *main_task;
    void *main_result;
};

/* The running runtime, or NULL. Set and cleared by weft_run's thread. */
extern struct weft__runtime *weft__rt;

/* Fills *out from rt's current state. Any thread. */
void weft__stats_collect(const struct weft__runtime *rt, struct weft_stats *out);
/* Prints rt's configuration and counters on stderr (WEFT_STATS=1). */
void weft__stats_print(const struct weft__runtime *rt, const struct weft_stats *s);

#endif
