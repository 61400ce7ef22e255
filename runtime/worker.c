/*
 * The worker: one thread, one scheduler of tasks.
 *
 * What it owns: the choice of the next task, every context switch, the idle
 * loop, and the hand-off of a finished task's stack.
 *
 * Switching. A task that suspends (yield, sleep, join, exit) switches
 * directly to the next ready task: one register swap, not two through a
 * scheduler context. Only when nothing is ready does it switch to the
 * worker's own context (`sched`, on the thread's native stack), whose loop
 * waits for the next timer. Every swap hands the worker pointer to the
 * resumed side, which is how a resumed task learns which worker it is on:
 * nothing read before a suspension is trusted after it.
 *
 * Finished tasks. A task cannot free the stack it is running on. On exit it
 * parks itself in w->dead and switches away; the first thing the resumed
 * context does (after_switch) is reap it: stack back to the cache, joiner
 * woken, slot freed if detached. Hence the invariant: w->dead is non-NULL
 * only between an exiting task's swap and the resumed side's after_switch.
 *
 * Fairness and timers. The run queue is FIFO. Timers are looked at when the
 * queue is empty and every 61 decisions otherwise (the number Go uses for
 * its global queue): a yield never reads the clock by itself.
 *
 * Threads: everything here runs on the worker's own thread. The work-
 * stealing scheduler will replace the queue with a lock-free ring shared
 * with thieves (TODO(#4)).
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "runtime.h"
#include "task.h"

#define TIMER_CHECK_INTERVAL 61
#define HOT_STACKS_KEPT_IDLE 64

__thread struct weft__worker *weft__tls_worker __attribute__((tls_model("initial-exec")));

struct weft__worker *weft__worker_self(void)
{
    return weft__tls_worker;
}

static void runq_push(struct weft__runq *q, struct weft__task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    q->len++;
}

static struct weft__task *runq_pop(struct weft__runq *q)
{
    struct weft__task *t = q->head;
    if (t) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
    }
    return t;
}

void weft__worker_ready(struct weft__worker *w, struct weft__task *t)
{
    runq_push(&w->runq, t);
}

uint64_t weft__worker_live(const struct weft__worker *w)
{
    return w->n.spawned - w->n.finished;
}

static void fire_timers(struct weft__worker *w)
{
    uint64_t now = weft_now();
    struct weft__task *t;
    while ((t = weft__timers_pop_due(&w->timers, now)) != NULL) {
        t->state = WEFT_T_READY;
        t->wait = WEFT_W_NONE;
        runq_push(&w->runq, t);
    }
}

static inline __attribute__((always_inline)) struct weft__task *pick_next(struct weft__worker *w)
{
    if (--w->timer_countdown == 0) {
        w->timer_countdown = TIMER_CHECK_INTERVAL;
        if (w->timers.len)
            fire_timers(w);
    } else if (!w->runq.head && w->timers.len) {
        fire_timers(w);
    }
    return runq_pop(&w->runq);
}

/* Gives a task that has never run its stack and first context. */
static void first_run(struct weft__worker *w, struct weft__task *t);

static void after_switch(struct weft__worker *w)
{
    struct weft__task *d = w->dead;
    if (d) {
        w->dead = NULL;
        weft__task_reap(w, d);
    }
}

/* Switches from the running context `from` to `next` (or to the idle loop
 * when next is NULL). Returns, once `from` is resumed, its worker.
 *
 * Never inlined, on purpose: every suspended context then waits at the one
 * return address inside this function, which is what lets the ret that
 * resumes a context (and the rets after it) be predicted; see the essay in
 * arch/switch_x86_64_sysv_elf.S. */
static __attribute__((noinline)) struct weft__worker *switch_to(struct weft__worker *w, struct weft__fiber *from,
                                      struct weft__task *next, bool exiting)
{
    struct weft__fiber *to = &w->sched;
    if (next) {
        if (next->state == WEFT_T_NEW)
            first_run(w, next);
        next->state = WEFT_T_RUNNING;
        next->worker = w;
        to = &next->fiber;
    }
    w->current = next;
    w->n.switches++;
    struct weft__worker *rw = weft__fiber_switch(from, to, w, exiting);
    after_switch(rw);
    return rw;
}

static void task_entry(void *arg)
{
    struct weft__worker *w = arg;
    struct weft__task *self = w->current;
    weft__fiber_entered(&self->fiber);
    after_switch(w);
    void *r = self->fn(self->arg);
    weft__worker_exit(self->worker, self, r);
}

static void first_run(struct weft__worker *w, struct weft__task *t)
{
    size_t size = t->stack_size ? t->stack_size : w->rt->cfg.stack_size;
    t->stack = weft__stack_get(&w->rt->stacks, &w->stacks, size);
    if (!t->stack)
        weft__panic("no memory or mapping left for a %zu-byte stack (task \"%s\", id %llu)", size,
                    t->name, (unsigned long long)t->id);
    weft__fiber_make(&t->fiber, t->stack->lo, t->stack->size, task_entry);
}

struct weft__worker *weft__worker_suspend(struct weft__worker *w, struct weft__task *self)
{
    struct weft__task *next = pick_next(w);
    if (next == self) {
        self->state = WEFT_T_RUNNING;
        return w;
    }
    return switch_to(w, &self->fiber, next, false);
}

void weft__worker_exit(struct weft__worker *w, struct weft__task *self, void *r)
{
    self->result = r;
    self->state = WEFT_T_EXITED;
    if (self == w->rt->main_task)
        w->rt->main_result = r;
    w->n.finished++;
    w->dead = self;
    switch_to(w, &self->fiber, pick_next(w), true);
    weft__panic("task %llu was resumed after it finished", (unsigned long long)self->id);
}

int weft_yield(void)
{
    struct weft__worker *w = weft__worker_self();
    if (!w || !w->current)
        return -EPERM;
    struct weft__task *self = w->current;
    self->state = WEFT_T_READY;
    runq_push(&w->runq, self);
    weft__worker_suspend(w, self);
    return 0;
}

static void idle_until(uint64_t when)
{
    struct timespec ts = {.tv_sec = (time_t)(when / 1000000000u),
                          .tv_nsec = (long)(when % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static const char *wait_name(const struct weft__task *t)
{
    switch (t->wait) {
    case WEFT_W_JOIN:
        return "joining task";
    case WEFT_W_SLEEP:
        return "sleeping";
    default:
        return "blocked";
    }
}

/* Every live task is blocked and no timer is pending: report them all. */
static int deadlock(struct weft__worker *w)
{
    const struct weft__task_table *tt = &w->rt->tasks;
    weft__say("deadlock: %llu tasks are blocked and nothing can wake one:",
              (unsigned long long)weft__worker_live(w));
    for (uint32_t c = 0; c < tt->nchunks; c++) {
        for (uint32_t i = 0; i < (1u << WEFT_TASK_CHUNK_BITS); i++) {
            const struct weft__task *t = &tt->dir[c][i];
            if (t->state != WEFT_T_BLOCKED)
                continue;
            if (t->wait == WEFT_W_JOIN && t->waits_on)
                weft__say("  task \"%s\" (id %llu): %s %llu", t->name, (unsigned long long)t->id,
                          wait_name(t), (unsigned long long)t->waits_on->id);
            else
                weft__say("  task \"%s\" (id %llu): %s", t->name, (unsigned long long)t->id,
                          wait_name(t));
        }
    }
    return -EDEADLK;
}

int weft__worker_loop(struct weft__worker *w)
{
    /* The central loop: runs until no task is left, so it is long by nature. */
    for (;;) {
        struct weft__task *next = pick_next(w);
        if (next) {
            switch_to(w, &w->sched, next, false);
            continue;
        }
        if (weft__worker_live(w) == 0)
            return 0;
        uint64_t when = weft__timers_next(&w->timers);
        if (when == UINT64_MAX)
            return deadlock(w);
        weft__stack_trim(&w->stacks, HOT_STACKS_KEPT_IDLE);
        idle_until(when);
    }
}

int weft__worker_init(struct weft__worker *w, struct weft__runtime *rt, unsigned id)
{
    memset(w, 0, sizeof *w);
    w->timer_countdown = TIMER_CHECK_INTERVAL;
    w->rt = rt;
    w->id = id;
    weft__timers_init(&w->timers);
    weft__stack_cache_init(&w->stacks);
    void *lo = NULL;
    size_t len = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &len);
        pthread_attr_destroy(&attr);
    }
    weft__fiber_init_thread(&w->sched, lo, len);
    int err = weft__altstack_init(&w->altstack);
    if (err < 0)
        return err;
    weft__tls_worker = w;
    return 0;
}

void weft__worker_term(struct weft__worker *w)
{
    weft__tls_worker = NULL;
    weft__altstack_term(&w->altstack);
    weft__stack_cache_term(&w->stacks);
    weft__timers_term(&w->timers);
}
