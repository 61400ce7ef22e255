/*
 * WEFT_TRACE: a Chrome trace-event file of the run (trace.c).
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stdint.h>
#include <stdio.h>

struct weft__worker;
struct weft__runtime;

enum weft__trace_kind { WEFT_TR_RUN, WEFT_TR_TOKEN, WEFT_TR_HANDOFF };

struct weft__trace_ev {
    uint64_t t0, t1;  /* ns of weft_now() */
    uint64_t task;    /* task id, 0 for none */
    uint8_t kind;     /* enum weft__trace_kind */
    char name[23];    /* the task's name when it ran */
};

/* A worker's events, appended by its own thread only. */
struct weft__trace_buf {
    struct weft__trace_ev *ev;
    uint32_t len, cap;
    uint64_t dropped;    /* events past the cap */
    uint64_t run_start;  /* the running span's start, 0 when none */
    uint64_t run_task;
    char run_name[23];
};

/* Opens cfg's trace file (so that a bad path fails the start, named).
 * Returns 0 or -EINVAL. */
int weft__trace_open(struct weft__runtime *rt);
/* Writes every worker's events and closes the file. */
void weft__trace_close(struct weft__runtime *rt);

/* Span bookkeeping, worker w's thread. */
void weft__trace_run_begin(struct weft__worker *w, uint64_t task, const char *name, uint64_t now);
void weft__trace_run_end(struct weft__worker *w, uint64_t now);
void weft__trace_event(struct weft__worker *w, int kind, uint64_t t0, uint64_t t1, uint64_t task);

#endif
