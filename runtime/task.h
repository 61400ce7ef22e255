/*
 * struct weft__task, its states, the task table that turns handles into
 * tasks, and spawn / join / detach.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/context.h"
#include "waitq_types.h"
#include "weft.h"

struct weft__worker;
struct weft__stack;
struct weft__waiter;

/* The states of a task, and who owns the task and its stack in each
 * (as Go's G states). */
enum weft__task_state {
    WEFT_T_FREE = 0, /* a free slot: on a worker's free list; no stack */
    WEFT_T_NEW,      /* spawned, never run: in a run queue; no stack yet */
    WEFT_T_READY,    /* runnable: in a run queue; its stack holds its context */
    WEFT_T_RUNNING,  /* running on worker `worker`; it owns itself */
    WEFT_T_BLOCKED,  /* suspended, waiting for `wait`; whoever wakes it owns it */
    WEFT_T_EXITED,   /* returned; still on its stack until the next switch */
    WEFT_T_DONE,     /* finished, stack recycled; the slot waits for join */
};

/* What a blocked task waits for (shown by the deadlock report). */
enum weft__wait {
    WEFT_W_NONE = 0,
    WEFT_W_JOIN,   /* the task `waits_on` to finish */
    WEFT_W_SLEEP,  /* its deadline */
    WEFT_W_FUTURE, /* the future `wait_obj` to settle */
    WEFT_W_GROUP,  /* the members of the task group `wait_obj` */
    WEFT_W_CHAN,   /* the channel `wait_obj` */
    WEFT_W_SYNC,   /* the mutex, condition, semaphore or event `wait_obj` */
    WEFT_W_IO,     /* a descriptor to become ready (poll.c) */
    WEFT_W_BLOCKING, /* a call on the blocking-call pool (blocking.c) */
};

/* Time accounting (GIL mode, or WEFT_STATS=1): where a task's time went. */
enum weft__acct {
    WEFT_ACCT_RUNNING = 0, /* executing on a worker */
    WEFT_ACCT_READY,       /* runnable, in a queue, no worker has it yet */
    WEFT_ACCT_TOKEN,       /* GIL mode: a worker has it and waits for the token */
    WEFT_ACCT_SLEEP,       /* in weft_sleep */
    WEFT_ACCT_WAIT,        /* blocked on a join, future, channel, lock, group... */
    WEFT_ACCT_IO,          /* waiting for a descriptor or the blocking-call pool */
    WEFT_ACCT_N
};

/* The join word of a task (t->join): who, if anyone, waits for it, or how
 * it ended. A task pointer (aligned to 64) carries its tag in the low bits. */
#define WEFT_J_DETACHED ((uintptr_t)1) /* handle released; the reaper frees the slot */
#define WEFT_J_DONE ((uintptr_t)2)     /* finished and reaped: result readable */
#define WEFT_J_PENDING ((uintptr_t)4)  /* | joiner task: registered, still switching out */
#define WEFT_J_EXT ((uintptr_t)8)      /* | struct weft__ext_wait: a thread that is not a worker */
#define WEFT_J_WAKING ((uintptr_t)3)   /* the finisher is reading join_seq: wait for DONE */
#define WEFT_J_TAGS ((uintptr_t)15)

/* What a shared-stack task keeps off its stack, in one allocation made
 * just before its first run (worker.c, shared_enter): the waiters of its
 * waits (waitq.h: wakers write to them while its stack bytes are copied
 * out) and room for those bytes. One block, where two allocations (the
 * waiters at the spawn, the bytes at the first switch out) cost W6 a
 * malloc and a free more a task, and tasks that had not run yet held
 * memory. Its size is what the worker's tasks have lately needed
 * (worker.c, "Side blocks"). A task whose bytes or waits need more gets
 * them elsewhere (the room stays). */
struct weft__task_side {
    uint32_t size; /* of the whole block */
    struct weft__waiter waiters[WEFT__TASK_WAITERS];
    char room[];   /* the rest of the block */
};

/* A task's slot: 256 bytes, four cache lines, in release builds (the
 * sanitizers' fiber fields make it five). Every live task holds one, and
 * a program of 100,000 parked tasks touches all of them fresh: W6 spent
 * 40% of its samples clearing the pages of 384-byte slots, and 128 bytes
 * more a slot cost it 1.10x its time. What only some tasks use lives
 * elsewhere: a name and the time accounting in the slot's cold record
 * (struct weft__task_cold), a shared-stack task's waiters and bytes in its
 * side block. */
struct weft__task {
    struct weft__fiber fiber;     /* its own context, once it has a stack */
    struct weft__fiber *fib;      /* the context it runs in: &fiber, or its inline host's */
    struct weft__task *next;      /* yield-queue, injection-queue or free-list link */
    struct weft__worker *worker;  /* set by whoever resumes it: the worker it runs on */
    struct weft__task *host;      /* running inline on this (joining) task's stack, or NULL */
    struct weft__stack *stack;    /* from its first run on a stack of its own to its exit */
    weft_fn fn;
    void *arg;
    void *result;                 /* written at exit, read by the joiner after WEFT_J_DONE */
    uint32_t stack_size;          /* rounded, at most WEFT_STACK_MAX; 0 = the runtime's default */
    uint32_t index;               /* slot index in the task table; fixed */
    /* WEFT_TASK_SHARED_STACK (worker.c, "Shared stacks"): it runs on its
     * home worker's shared stack, and while another task is on that stack
     * its used bytes are in `saved`. Written by its home worker only. */
    struct weft__worker *home;    /* the worker of its first run, or NULL */
    struct weft__task_side *side; /* from its spawn: the room below, or NULL */
    void *saved;                  /* its stack's used bytes (side->room at first), or NULL */
    uint32_t saved_len, saved_cap;
    struct weft__waiter *waiters; /* its waits' waiters (waitq.h, weft__waiters; side's at
                                   * first), or NULL */
    uint32_t waiters_cap;
    bool shared;                  /* spawned with WEFT_TASK_SHARED_STACK */
    uint8_t cancel_inherited;     /* running inline: a joiner's cancellation was delivered
                                     to it once already (waitq.h); the task only */
    _Atomic uint8_t state;        /* enum weft__task_state */
    uint8_t wait;                 /* enum weft__wait */
    uint64_t id;                  /* unique within the run; the main task is 1 */
    _Atomic uint64_t gen;         /* handle generation: bumped at each free */
    _Atomic uintptr_t join;       /* the join word, above */
    _Atomic(struct weft__task *) waits_on; /* the task it is joining (cycle check, report) */
    /* Waiting (waitq.c). The wake word is (seq << 3) | flags | outcome: the
     * task writes it when a wait starts (after its switch), and whoever
     * moves the outcome off WAITING with a CAS on the exact word readies
     * the task. seq grows by one per wait, so a late waker of an old wait
     * cannot end a new one. */
    _Atomic uint64_t wake;
    uint64_t wait_seq;            /* the last seq handed out; the task only */
    _Atomic uint32_t cancel;      /* 1: a weft_cancel() not yet delivered */
    _Atomic uint32_t committing;  /* 1 while the commit of its wait runs (waitq.c) */
    _Atomic uint64_t join_seq;    /* the seq of the join wait of the task joining this one:
                                     written by the joiner before it claims the join word,
                                     read by the finisher while the word is WAKING */
    const void *wait_obj;         /* what it waits on, for the deadlock report */
    /* Whose timer heap holds its deadline, or NULL: set at the arm, cleared
     * by the firing worker (under the heap's lock) or by the task. */
    _Atomic(struct weft__worker *) timer_w;
    uint64_t timer_seq;           /* the wait that deadline belongs to; under timer_w's lock */
    /* Its live timer entry: the entry's id (0 when none) and heap. Written
     * under that heap's lock; read under another heap's lock by a look at
     * a stale entry of this task there (timer.c), hence atomic. Last: only
     * waits with a deadline touch them. */
    _Atomic uint64_t timer_id;
    _Atomic(struct weft__timers *) timer_heap;
    bool named;                   /* its cold record holds its name (weft__task_name) */
} __attribute__((aligned(64)));

#if defined(__x86_64__) && !defined(WEFT_ASAN) && !defined(WEFT_TSAN)
_Static_assert(sizeof(struct weft__task) == 256, "a task slot is four cache lines");
#endif

/* What a slot keeps for the few tasks that use it, in a parallel array of
 * the task table (weft__task_cold): made for a chunk of slots when one of
 * them is given a name, and for every chunk while time accounting is on. */
struct weft__task_cold {
    char name[32];                /* set when the task's `named` is */
    /* Time accounting: written by whoever owns the task in its state (the
     * worker running it, or the party that readies it). */
    uint64_t acct_ns[WEFT_ACCT_N];
    uint64_t acct_since;
    uint8_t acct_state;
};

/* Whether p (a shared-stack task's saved bytes or waiters) is an
 * allocation of its own, to be freed on its own, rather than room in the
 * task's side block. */
static inline bool weft__task_owns(const struct weft__task *t, const void *p)
{
    return p && (!t->side || (p != t->side->room && p != t->side->waiters));
}

/* Every task slot, allocated in chunks that live as long as the runtime,
 * so that a handle can be checked (index and generation) after its task is
 * gone. Chunks are added under `lock`; dir entries are written once. They
 * are carved from 2 MiB slabs mapped in transparent huge pages where the
 * kernel gives them (task.c, slab_map). */
#define WEFT_TASK_CHUNK_BITS 10
#define WEFT_TASK_INDEX_BITS 24
#define WEFT_TASK_DIR_LEN (1u << (WEFT_TASK_INDEX_BITS - WEFT_TASK_CHUNK_BITS))

struct weft__task_table {
    struct weft__task **dir;     /* WEFT_TASK_DIR_LEN chunk pointers, each written once */
    /* The chunks' cold records (struct weft__task_cold), parallel to dir;
     * each written once (release), under `lock`, and NULL until a chunk
     * needs them. */
    _Atomic(struct weft__task_cold *) *cold;
    bool cold_all;               /* every chunk gets them at once: accounting is on */
    _Atomic uint32_t nchunks;    /* chunks published (release) */
    pthread_mutex_t lock;        /* guards growth and the spare list */
    struct weft__task *spare;    /* free slots handed back by workers (and used by threads
                                    that are not workers) */
    uint64_t nspare;
    bool huge;                   /* slabs in transparent huge pages (cfg.huge_pages) */
};

/* A thread that is not a worker, blocked in weft_join. */
struct weft__ext_wait {
    _Atomic uint32_t done; /* futex word: 1 once the task is reaped */
} __attribute__((aligned(16)));

int weft__task_table_init(struct weft__task_table *tt, bool huge);
/* Frees what a shared-stack task keeps of its own (its copied-out bytes,
 * its waiters) and clears its home, as every free slot has them: at its
 * exit, or for a slot still holding them when the run ends blocked. Any
 * slot; nothing for one that holds none. */
void weft__task_drop_shared(struct weft__task *t);
void weft__task_table_term(struct weft__task_table *tt);

/* The cold record of slot t, or NULL where its chunk has none. Any
 * thread, a signal handler too. */
static inline struct weft__task_cold *weft__task_cold(const struct weft__task_table *tt,
                                                      const struct weft__task *t)
{
    struct weft__task_cold *c = atomic_load_explicit(
        &tt->cold[t->index >> WEFT_TASK_CHUNK_BITS], memory_order_acquire);
    return c ? c + (t->index & ((1u << WEFT_TASK_CHUNK_BITS) - 1)) : NULL;
}

/* The name t was spawned with, or "" (weft_task_opts.name). Any thread,
 * a signal handler too. */
const char *weft__task_name(const struct weft__task *t);

/* The name as the runtime's reports show it: "(unnamed)" for none. Any
 * thread, a signal handler too. */
static inline const char *weft__task_shown_name(const struct weft__task *t)
{
    const char *name = weft__task_name(t);
    return name[0] ? name : "(unnamed)";
}

/* The task a handle names, or NULL (*err says -EINVAL or -ESRCH). Any
 * thread of the running runtime. */
struct weft__task *weft__task_lookup(weft_task *h, int *err);
/* The handle of a task. Any thread. */
weft_task *weft__task_handle(const struct weft__task *t);

/* Creates a task in state NEW (not queued), from w's free slots, or (w
 * NULL: a thread that is not a worker) from the table's spare list. */
int weft__task_new(struct weft__worker *w, struct weft__task **out, weft_fn fn, void *arg,
                   const struct weft_task_opts *opts);
/* Returns a finished, released task's slot (to w's free list, or to the
 * spare list when w is NULL). */
void weft__task_free(struct weft__worker *w, struct weft__task *t);

/* weft_join() that ignores cancellation of the caller (which stays
 * pending): to reap a task that was cancelled on the caller's behalf.
 * Task context; may suspend. */
int weft__join_reap(weft_task *h, void **result);

/* t has finished and its stack is free (or it ran inline): marks it done
 * and wakes its joiner, or frees it if detached. Worker thread w. */
void weft__task_finished(struct weft__worker *w, struct weft__task *t);

#endif
