/*
 * A worker: one thread running a scheduler of tasks. Its state is one
 * struct made of sub-structs that each module owns.
 */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/context.h"
#include "inject.h"
#include "ring.h"
#include "task.h"
#include "stack.h"
#include "timer.h"
#include "trace.h"

struct weft__runtime;
struct weft__task;
struct weft__worker;

/* Tasks that yielded, FIFO, linked through task->next: run after the ring,
 * and first every 61 decisions. Owner worker only. */
struct weft__fifo {
    struct weft__task *head, *tail;
    uint64_t len;
};

/* Counters. Each is written by its worker only (a relaxed load and store,
 * no read-modify-write) and may be read by any thread. */
struct weft__worker_counters {
    _Atomic uint64_t spawned;    /* tasks created on this worker */
    _Atomic uint64_t finished;   /* tasks that finished on this worker */
    _Atomic uint64_t started;    /* tasks that first ran here (on a stack or inline) */
    _Atomic uint64_t inlined;    /* of those, run inline by their joiner */
    _Atomic uint64_t switches;   /* context switches */
    _Atomic uint64_t steal_tries; /* victims tried */
    _Atomic uint64_t steals;     /* tries that took at least one task */
    _Atomic uint64_t stolen;     /* tasks taken by those steals */
    _Atomic uint64_t parks;      /* times the thread slept */
    _Atomic uint64_t unparks;    /* times another thread woke it */
    _Atomic uint64_t inject_pops; /* tasks taken from the injection queue */
    _Atomic uint64_t overflows;  /* times the ring was full and half went to the injection queue */
    _Atomic uint64_t unreleased; /* finished tasks whose handle is not released (may go negative) */
    _Atomic uint64_t io_waits;   /* tasks that waited for a descriptor here */
    _Atomic uint64_t shared_saves; /* shared-stack tasks copied off this worker's shared stack */
    _Atomic uint64_t shared_bytes; /* the bytes those copies held */
    _Atomic uint64_t forwarded;  /* shared-stack tasks found here and sent to their home worker */
};

#define WEFT_CNT_ADD(field, n)                                                                     \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n),    \
                          memory_order_relaxed)
#define WEFT_CNT(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Something to do on the next context, right after a switch: the previous
 * context is then saved and may be handed to another worker. */
typedef void (*weft__commit_fn)(struct weft__worker *w, struct weft__task *t, void *arg);

/* What the commit of a wait needs (waitq.c), kept in the worker that the
 * waiting task switches away on rather than in the task's frame: the
 * commit runs on that worker right after the switch, before anything
 * else there can wait, and a frame that holds less leaves less for a
 * shared-stack task's copy out (W6's sleepers: 288 bytes each, 336 with
 * them on the stack). Worker's own thread only. */
struct weft__wait_commit {
    void (*publish)(struct weft__worker *w, struct weft__task *self, uint64_t seq, void *arg);
    void *parg;
    struct weft__lock *held; /* released last (after publish), or NULL */
    uint64_t deadline, seq;
    bool nocancel;
};

struct weft__worker {
    struct weft__ring ring;        /* first: cache-line aligned */
    struct weft__fiber sched;      /* the thread's own context: the idle loop */
    struct weft__task *current;    /* the running task, NULL in the idle loop */
    weft__commit_fn commit;        /* to run after the next switch, or NULL */
    struct weft__task *commit_task;
    void *commit_arg;
    struct weft__wait_commit wait_commit; /* the arg of a wait's commit (waitq.c) */
    struct weft__fifo yields;
    struct weft__timers timers;
    _Atomic uint32_t ntimers;      /* timers.len, readable by other workers */
    struct weft__stack_cache stacks;
    struct weft__altstack altstack;
    struct weft__task *free_tasks; /* free task slots, LIFO */
    uint64_t nfree_tasks;
    uint64_t next_id, last_id;     /* the block of task ids this worker hands out */
    struct weft__runtime *rt;
    pthread_t thread;
    uint32_t tick;                 /* decisions left before the maintenance pass */
    uint32_t yield_passes;         /* maintenance passes since a yielder went first */
    uint32_t rng;                  /* xorshift state for victim choice */
    unsigned id;
    unsigned rr;                   /* next round-robin victim */
    bool searching;                /* counted in rt->nsearching */
    bool thread_started;
    bool poll_due;                 /* a non-blocking poll is due after the next switch */
    _Atomic uint32_t park_word;    /* futex: 1 while parked, set to 0 to wake */
    _Atomic uint32_t polling;      /* parked in epoll_wait, not on the futex (poller.c) */
    struct weft__worker *idle_next; /* link in rt's idle stack, under rt->idle_lock */
    bool idle_listed;
    struct weft__worker_counters n;
    bool gil_held;                 /* GIL mode: this thread holds the token; owner only */
    uint64_t gil_wait_ns;          /* GIL mode: time spent waiting for the token; owner */
    uint64_t acct_sum[WEFT_ACCT_N]; /* accounted time of the tasks that finished here */
    struct weft__trace_buf trace;  /* WEFT_TRACE events; owner only */
    /* Shared stacks (WEFT_TASK_SHARED_STACK; worker.c). Owner only, but
     * the inbox, which any thread pushes to. */
    struct weft__stack *shared_stack; /* made at the first shared-stack task; or NULL */
    struct weft__task *occupant;   /* the shared-stack task whose bytes are on it, or NULL */
    /* The size of the next side block, and what sets it (worker.c, "Side
     * blocks"). Owner only. */
    uint32_t side_block, side_max, side_saves;
    struct weft__task *pending;    /* the one to switch to from the idle loop, or NULL */
    uint8_t maint_flip;            /* which of inbox and injection queue maintenance reads first */
    struct weft__inject inbox;     /* shared-stack tasks of this worker readied elsewhere */
    /* The task the running task woke last (worker.c, "the next slot"):
     * the owner runs it at its next decision; thieves take it only once
     * the owner has gone a while without one. */
    _Atomic(struct weft__task *) next_task;
    bool in_sched;                 /* in a timer pass: wakes go to the ring */
    bool use_next;                 /* several workers and LIFO order: the next slot is used */
    /* While the worker polls: the tasks it wakes, in the order their
     * descriptors came, for the injection queue (weft__worker_poll_end). */
    struct weft__fifo polled;
    bool polling_wakes;
} __attribute__((aligned(64)));

/* The worker running on this thread, or NULL. The overflow handler reads it,
 * hence initial-exec. Task code must not cache it across a suspension:
 * after one, the task may be running on another thread. */
extern __thread struct weft__worker *weft__tls_worker
    __attribute__((tls_model("initial-exec")));

/* Whether p points into w's shared stack (WEFT_TASK_SHARED_STACK). Worker
 * w's thread. */
static inline bool weft__on_shared_stack(const struct weft__worker *w, const void *p)
{
    const struct weft__stack *s = w->shared_stack;
    return s && (const char *)p >= s->lo && (const char *)p < s->lo + s->size;
}

/* The worker of the calling thread, or NULL. Any thread.
 *
 * The thread's variable is read afresh at every call, even with the whole
 * program in view (link-time optimization): a compiler may keep the thread
 * pointer, or the variable's address, in a register across calls, and a
 * caller that suspends may resume on another thread. On x86-64 the read
 * is inline, in a volatile asm with a memory clobber that no compiler
 * moves or merges (two instructions, where the call took seven, four
 * times a W5 round trip); elsewhere it is a call that is never inlined
 * (worker.c). */
#if defined(__x86_64__) && defined(__LP64__) && defined(__ELF__)
static inline struct weft__worker *weft__worker_self(void)
{
    struct weft__worker *w;
    __asm__ volatile("movq weft__tls_worker@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0"
                     : "=r"(w)
                     :
                     : "memory");
    return w;
}
#else
struct weft__worker *weft__worker_self(void);
#endif

/* The calling task, or NULL outside a task. Read it afresh after every
 * suspension: a task may resume on another worker. Any thread. */
static inline struct weft__task *weft__current_task(void)
{
    struct weft__worker *w = weft__worker_self();
    return w ? w->current : NULL;
}

int weft__worker_init(struct weft__worker *w, struct weft__runtime *rt, unsigned id);
/* Sets up the calling thread as w's (TLS, signal stack, pinning). */
int weft__worker_attach(struct weft__worker *w);
void weft__worker_detach(struct weft__worker *w);
void weft__worker_term(struct weft__worker *w);

/* Makes t runnable on w, as the newest task of its ring (or the injection
 * queue when the ring is full), and wakes an idle worker if one should
 * come and steal. t must not be running. Owner worker only. */
void weft__worker_ready(struct weft__worker *w, struct weft__task *t);

/* Makes t, woken by the running code of worker w (a task's wake of
 * another: weft__wake), runnable: into w's next slot when a task of w is
 * running its own code, else as weft__worker_ready. Owner worker only. */
void weft__worker_woken_next(struct weft__worker *w, struct weft__task *t);
void weft__worker_polled(struct weft__worker *w, struct weft__task *t);

/* Around the wakes of one poll: they are served in the order their
 * descriptors became ready, through the injection queue (worker.c). */
static inline void weft__worker_poll_begin(struct weft__worker *w)
{
    w->polling_wakes = true;
}
void weft__worker_poll_end(struct weft__worker *w);
static inline void weft__worker_woken(struct weft__worker *w, struct weft__task *t)
{
    /* One worker: no thief, no wake-up to save; the ring's newest is the
     * same. Polls (polling_wakes), commits (w->commit set while one runs)
     * and timer passes (in_sched): not the running task's wakes. */
    if (__builtin_expect(w->polling_wakes, 0))
        weft__worker_polled(w, t);
    else if (!w->use_next || !w->current || w->in_sched || w->commit)
        weft__worker_ready(w, t);
    else
        weft__worker_woken_next(w, t);
}

/* What the next slot holds now. */
static inline struct weft__task *weft__worker_next(struct weft__worker *w)
{
    return atomic_load_explicit(&w->next_task, memory_order_relaxed);
}

/* The running task goes on without suspending: a task it woke (still in
 * the next slot) moves to the ring, where idle workers are woken to take
 * it. Owner worker only. */
void weft__worker_flush_next_slow(struct weft__worker *w);
static inline void weft__worker_flush_next(struct weft__worker *w)
{
    if (__builtin_expect(weft__worker_next(w) != NULL, 0))
        weft__worker_flush_next_slow(w);
}

/* Puts t on the injection queue and wakes a worker. Any thread. */
void weft__worker_inject(struct weft__runtime *rt, struct weft__task *t);

/* Runs something else until `self` (running on w, already blocked by the
 * caller) is resumed; commit(w', self, arg) runs on the next context once
 * self is saved (that is where self may be made runnable again). Returns
 * the worker self resumed on. Task context. */
struct weft__worker *weft__worker_suspend(struct weft__worker *w, struct weft__task *self,
                                          weft__commit_fn commit, void *arg);

/* Ends the running task `self` with result r. Task context; never returns
 * (unless self runs inline: then it returns to its host's join). */
_Noreturn void weft__worker_exit(struct weft__worker *w, struct weft__task *self, void *r);

/* Runs t, which w has just taken out of its own ring before t ever ran,
 * on the stack of the running task `self`, as a function call. Returns the
 * worker the caller is on when t has finished. Task context. */
struct weft__worker *weft__worker_run_inline(struct weft__worker *w, struct weft__task *self,
                                             struct weft__task *t);

/* The scheduler loop of w, on its thread, until the runtime stops. Returns
 * 0, or -EDEADLK after reporting the blocked tasks. Owner thread. */
int weft__worker_loop(struct weft__worker *w);
/* GIL mode: if a waiter asked for the token, hands it over and waits to
 * get it back (weft_checkpoint). Task context on worker w; blocks the
 * thread meanwhile. */
void weft__worker_gil_checkpoint(struct weft__worker *w);

/* GIL mode, around an I/O system call: CPython releases the GIL around
 * every blocking call, whether or not it would block, so a thread that
 * does I/O beside a CPU-bound one gives the GIL away at each call and
 * waits a switch interval to get it back (the convoy). _begin releases
 * the token if another worker waits for it and says whether it did; then
 * the call is made; then _end takes the token back, waiting as any taker
 * does. Task context on worker w (the task does not move in between);
 * _end blocks the thread meanwhile. */
bool weft__worker_gil_io_begin(struct weft__worker *w);
void weft__worker_gil_io_end(struct weft__worker *w);

/* A fresh task id. Owner worker only. */
uint64_t weft__worker_new_id(struct weft__worker *w);

/* Tasks spawned and not finished. Reads every worker's finished count
 * before any spawned count, so a task finishing during the read is never
 * missed as alive. Any thread; exact once every worker is idle. */
uint64_t weft__live_tasks(const struct weft__runtime *rt);

/* A deadline was just armed in some worker's heap: if the parked poller
 * sleeps past it, interrupts it; if no worker polls and one is parked,
 * wakes it (it parks again as the poller). The seq_cst read of the
 * poller's `until` after the heap's lock pairs with the poller's seq_cst
 * store before it reads the heaps. Any worker's thread. */
void weft__worker_timer_armed(struct weft__runtime *rt, uint64_t deadline);

/* A task is about to wait on a descriptor: if no worker polls and one is
 * parked, wakes it to take the poller role. Task context. */
void weft__worker_io_waiting(struct weft__runtime *rt);

/* Wakes every parked worker (to stop). Any thread. */
void weft__worker_wake_all(struct weft__runtime *rt);

#endif
