/*
 * WEFT_TRACE=file.json: the run as a Chrome trace-event file, which
 * Perfetto and chrome://tracing open, and which tools/weft-trace-svg draws.
 * One row per worker ("tid" is the worker): a "run" span for each stretch a
 * task executed there (name: the task's name, or "task ID"), a "token wait"
 * span for each time the worker waited for the GIL token, and an instant
 * "hand-off" when the token came from another worker. Times are in
 * microseconds from the start of the run.
 *
 * Each worker appends to its own buffer, so recording takes no lock; the
 * file is written at the end of the run, one event per line. A buffer
 * holds at most MAX_EVENTS events; later ones are counted and dropped, and
 * the file says how many. Recording reads the clock at every switch, so it
 * is on only when asked for.
 */
#include "trace.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "runtime.h"
#include "worker.h"

#define MAX_EVENTS (1u << 20)

int weft__trace_open(struct weft__runtime *rt)
{
    rt->trace_file = fopen(rt->cfg.trace_path, "w");
    if (!rt->trace_file) {
        int err = errno;
        weft__say("WEFT_TRACE=\"%s\": cannot write it: %s", rt->cfg.trace_path, strerror(err));
        return -EINVAL;
    }
    rt->trace_t0 = weft_now();
    return 0;
}

static void push(struct weft__trace_buf *b, const struct weft__trace_ev *e)
{
    if (b->len == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 1024;
        if (cap > MAX_EVENTS || !(b->ev = weft__realloc(b->ev, b->cap * sizeof *b->ev,
                                                        cap * sizeof *b->ev))) {
            b->dropped++;
            if (!b->ev)
                b->cap = b->len = 0;
            return;
        }
        b->cap = cap;
    }
    b->ev[b->len++] = *e;
}

void weft__trace_event(struct weft__worker *w, int kind, uint64_t t0, uint64_t t1, uint64_t task)
{
    struct weft__trace_ev e = {.t0 = t0, .t1 = t1, .task = task, .kind = (uint8_t)kind};
    push(&w->trace, &e);
}

void weft__trace_run_begin(struct weft__worker *w, uint64_t task, const char *name, uint64_t now)
{
    struct weft__trace_buf *b = &w->trace;
    b->run_start = now;
    b->run_task = task;
    strncpy(b->run_name, name, sizeof b->run_name - 1);
    b->run_name[sizeof b->run_name - 1] = '\0';
}

void weft__trace_run_end(struct weft__worker *w, uint64_t now)
{
    struct weft__trace_buf *b = &w->trace;
    if (!b->run_start)
        return;
    struct weft__trace_ev e = {.t0 = b->run_start, .t1 = now, .task = b->run_task,
                               .kind = WEFT_TR_RUN};
    memcpy(e.name, b->run_name, sizeof e.name);
    push(b, &e);
    b->run_start = 0;
}

/* A JSON string body: the characters that need it escaped. */
static void put_name(FILE *f, const struct weft__trace_ev *e)
{
    if (!e->name[0]) {
        fprintf(f, "task %llu", (unsigned long long)e->task);
        return;
    }
    for (const char *c = e->name; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', f);
        if ((unsigned char)*c >= 0x20)
            fputc(*c, f);
    }
}

void weft__trace_close(struct weft__runtime *rt)
{
    FILE *f = rt->trace_file;
    if (!f)
        return;
    double t0 = (double)rt->trace_t0;
    uint64_t dropped = 0;
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"weft %s\"}}",
            rt->gil_on ? "gil" : "parallel");
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = &rt->workers[i];
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,"
                   "\"args\":{\"name\":\"worker %u\"}}",
                i, i);
        for (uint32_t k = 0; k < w->trace.len; k++) {
            const struct weft__trace_ev *e = &w->trace.ev[k];
            double ts = ((double)e->t0 - t0) / 1e3, dur = (double)(e->t1 - e->t0) / 1e3;
            if (e->kind == WEFT_TR_RUN) {
                fprintf(f, ",\n{\"name\":\"");
                put_name(f, e);
                fprintf(f, "\",\"cat\":\"run\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":1,"
                           "\"tid\":%u,\"args\":{\"task\":%llu}}",
                        ts, dur, i, (unsigned long long)e->task);
            } else if (e->kind == WEFT_TR_TOKEN) {
                fprintf(f, ",\n{\"name\":\"token wait\",\"cat\":\"gil\",\"ph\":\"X\",\"ts\":%.3f,"
                           "\"dur\":%.3f,\"pid\":1,\"tid\":%u,\"args\":{\"task\":%llu}}",
                        ts, dur, i, (unsigned long long)e->task);
            } else {
                fprintf(f, ",\n{\"name\":\"hand-off\",\"cat\":\"gil\",\"ph\":\"i\",\"s\":\"t\","
                           "\"ts\":%.3f,\"pid\":1,\"tid\":%u}",
                        ts, i);
            }
        }
        dropped += w->trace.dropped;
        weft__free(w->trace.ev, w->trace.cap * sizeof w->trace.ev[0]);
        memset(&w->trace, 0, sizeof w->trace);
    }
    fprintf(f, "\n],\"otherData\":{\"events_dropped\":%llu}}\n", (unsigned long long)dropped);
    if (fclose(f) != 0)
        weft__say("WEFT_TRACE=\"%s\": writing it failed: %s", rt->cfg.trace_path,
                  strerror(errno));
    rt->trace_file = NULL;
}
