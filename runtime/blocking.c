/*
 * The blocking-call pool (weft_blocking, asyncio.to_thread): a few plain
 * threads that run calls which block their thread (a disk read,
 * getaddrinfo, a library with no non-blocking interface) while the
 * calling task waits, so that the task's worker goes on running other
 * tasks, and in GIL mode the token is free for them.
 *
 * The pool. One FIFO queue of jobs, without a bound, under a mutex, and a
 * condition variable that idle threads wait on. Threads are started as
 * jobs arrive, by the submitting task: one more whenever the queue holds
 * more jobs than there are idle threads, up to `limit`
 * (WEFT_BLOCKING_THREADS; 0 means min(32, cores + 4), Python's default
 * for its to_thread executor). A thread that has waited 10 s without a job
 * leaves. Invariant: a thread leaves only with the queue empty, under the
 * mutex, so a queued job always has a thread alive to run it; a job that
 * finds no thread alive and cannot start one is taken back and the call
 * fails with -ENOMEM. A thread that has left is joined by the next pool
 * thread to look (its record stays in `threads` until then); the rest are
 * joined by weft__blocking_stop, which first lets every queued job run.
 *
 * The job and who owns it. A job is a heap record holding fn, arg, drop,
 * the waiting task, the seq of its wait, the result and an atomic state:
 *   PENDING    fn has not returned and the caller still waits;
 *   DONE       fn returned and its result is in the record: the caller
 *              owns the record and frees it;
 *   ABANDONED  the caller stopped waiting (its deadline, a cancellation):
 *              the pool owns the record, calls drop(arg, result) when fn
 *              returns, and frees it.
 * The pool thread, once fn returns, and the caller, once its wait ended
 * other than by the pool, each try a CAS from PENDING; exactly one
 * succeeds, and the loser knows the other side owns the record. A caller
 * that loses (fn returned just as its deadline passed) takes the result
 * and returns 0; a cancellation then stays pending. A caller that gives up
 * before it waits at all (a cancellation already pending, a deadline
 * already past) queues the job ABANDONED, so that for every -ECANCELED and
 * -ETIMEDOUT fn runs exactly once and drop follows.
 *
 * The wake-up. The caller queues the job before it suspends, so the pool
 * may finish it before the caller's wait is committed (waitq.c): the pool
 * thread's weft__wake then finds the previous wait's word and fails. The
 * commit therefore looks at the state after writing the wake word, and
 * ends the wait itself if it is DONE. The pool thread's CAS to DONE and
 * its look at the wake word, and the commit's store of the word and its
 * look at the state, are sequentially consistent: one of the two sees the
 * other, and the wake word's own CAS lets only one of them ready the task.
 * After its CAS to DONE the pool thread touches only the task (its slot
 * lives as long as the runtime, and its seq grows by one per wait, so a
 * late weft__wake of a wait that already ended fails).
 *
 * A waiting task counts in ext_waits: a thread that is not a worker will
 * end its wait, so a run where every task is blocked is not a deadlock
 * while one waits here. weft_blocking's wait ignores cancellation (fn
 * cannot be interrupted, and the caller's arg stays in use until fn
 * returns); weft_blocking_until's may end early, handing the record over.
 *
 * Threads: weft_blocking and weft_blocking_until in task context; pool
 * threads run fn and drop and never enter the scheduler (a weft_blocking
 * from inside fn is -EPERM); init, stop and term on the thread that starts
 * and stops the runtime. Everything in struct weft__blocking is under
 * `mu` but `calls` (atomic).
 *
 * Rejected: a thread per call (nothing bounds the threads, and each costs
 * a clone and a stack); running the call on the worker itself, marked as
 * blocked, with a spare worker started meanwhile (Go's handoff of a P in
 * a system call): it needs the scheduler to hand off its queues and
 * timers, where a pool needs none of that; a lock-free queue: a job
 * already costs a thread wake-up, so the mutex is not what a call waits
 * for.
 */
#include "blocking.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "runtime.h"
#include "task.h"
#include "timer.h"
#include "waitq.h"
#include "weft.h"
#include "worker.h"

enum { PENDING, DONE, ABANDONED };

struct weft__blocking_job {
    struct weft__blocking_job *next; /* queue link, under the pool's mu */
    void *(*fn)(void *);
    void *arg;
    void (*drop)(void *, void *);
    void *result;                    /* written by the pool thread before its CAS to DONE */
    struct weft__task *task;         /* the waiting task; fixed */
    uint64_t seq;                    /* its wait; fixed */
    _Atomic int state;               /* PENDING, DONE or ABANDONED (the essay) */
};

/* A pool thread, from its start until it is joined. */
struct weft__blocking_thread {
    struct weft__blocking_thread *next; /* in pool->threads, under mu */
    struct weft__blocking *pool;
    pthread_t id;
    bool exited;                     /* has left its loop: only a join remains; under mu */
};

uint64_t weft__blocking_idle_ns = 10 * WEFT_SEC;

int weft__blocking_init(struct weft__blocking *p, unsigned configured, unsigned ncores)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return -err;
    pthread_mutex_init(&p->mu, NULL);
    p->head = p->tail = NULL;
    p->queued = 0;
    p->threads = NULL;
    p->nthreads = p->nidle = p->nexited = 0;
    p->stopping = false;
    p->limit = configured ? configured : ncores + 4 < 32 ? ncores + 4 : 32;
    atomic_init(&p->calls, 0);
    p->peak = 0;
    return 0;
}

/* ---- the pool threads ---------------------------------------------- */

/* fn has returned r: hand the result to the waiter, or, if it gave up,
 * drop it. Pool thread. */
static void finish_job(struct weft__blocking_job *j, void *r)
{
    struct weft__task *t = j->task;
    uint64_t seq = j->seq;
    j->result = r;
    int expect = PENDING;
    if (atomic_compare_exchange_strong(&j->state, &expect, DONE)) {
        /* j is the waiter's from here on: it may have resumed already and
         * freed it. seq_cst, after the CAS: pairs with the commit's store
         * of the word and its load of the state (publish_wait). A word of
         * another wait means the commit has not written ours yet (it will
         * see DONE) or the wait is over. */
        uint64_t word = atomic_load(&t->wake);
        if (word >> WEFT_WAKE_SEQ_SHIFT == seq)
            weft__wake(t, seq, WEFT_WAKE_WOKEN);
        return;
    }
    if (j->drop)
        j->drop(j->arg, r);
    weft__free(j, sizeof *j);
}

/* Joins the threads that have left, taking their records out of the list.
 * Called and returns with p->mu held; drops it while it joins. */
static void reap(struct weft__blocking *p)
{
    struct weft__blocking_thread *gone = NULL;
    for (struct weft__blocking_thread **pp = &p->threads; *pp;) {
        struct weft__blocking_thread *t = *pp;
        if (t->exited) {
            *pp = t->next;
            t->next = gone;
            gone = t;
            p->nexited--;
        } else {
            pp = &t->next;
        }
    }
    if (!gone)
        return;
    pthread_mutex_unlock(&p->mu);
    while (gone) {
        struct weft__blocking_thread *next = gone->next;
        pthread_join(gone->id, NULL);
        weft__free(gone, sizeof *gone);
        gone = next;
    }
    pthread_mutex_lock(&p->mu);
}

/* Waits for a job, the stop, or the idle timeout. Returns false when the
 * thread should leave: a whole idle period passed with nothing queued.
 * With p->mu held. */
static bool wait_for_work(struct weft__blocking *p)
{
    uint64_t until = weft_now() + weft__blocking_idle_ns;
    struct timespec ts = {.tv_sec = (time_t)(until / WEFT_SEC), .tv_nsec = (long)(until % WEFT_SEC)};
    int rc = 0;
    p->nidle++;
    while (!p->head && !p->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->work, &p->mu, &ts);
    p->nidle--;
    return p->head || p->stopping;
}

/* A pool thread's life: take jobs in order until it has been idle too long
 * or the pool stops with nothing queued. */
static void *pool_thread(void *arg)
{
    struct weft__blocking_thread *me = arg;
    struct weft__blocking *p = me->pool;
    pthread_setname_np(pthread_self(), "weft-blocking");
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->nexited && !p->stopping)
            reap(p);
        struct weft__blocking_job *j = p->head;
        if (j) {
            p->head = j->next;
            if (!p->head)
                p->tail = NULL;
            p->queued--;
            pthread_mutex_unlock(&p->mu);
            void *r = j->fn(j->arg);
            /* Relaxed: read by stats only; the wake-up below orders it
             * before the caller's return. */
            atomic_fetch_add_explicit(&p->calls, 1, memory_order_relaxed);
            finish_job(j, r);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->stopping || !wait_for_work(p))
            break;
    }
    /* The queue is empty (the invariant in the essay). */
    p->nthreads--;
    me->exited = true;
    p->nexited++;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts one more pool thread. With p->mu held. */
static int start_thread(struct weft__blocking *p)
{
    struct weft__blocking_thread *t = weft__zalloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    t->pool = p;
    int err = pthread_create(&t->id, NULL, pool_thread, t);
    if (err) {
        weft__free(t, sizeof *t);
        return -ENOMEM;
    }
    t->next = p->threads;
    p->threads = t;
    p->nthreads++;
    if (p->nthreads > p->peak)
        p->peak = p->nthreads;
    return 0;
}

/* Queues j, waking an idle thread or starting one. -ENOMEM (j not queued)
 * when no thread is alive and none could be started. Task context; blocks
 * the worker only for the mutex and a thread start. */
static int submit(struct weft__blocking *p, struct weft__blocking_job *j)
{
    pthread_mutex_lock(&p->mu);
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    if (p->nidle)
        pthread_cond_signal(&p->work);
    int err = 0;
    if (p->queued > p->nidle && p->nthreads < p->limit && start_thread(p) < 0 &&
        p->nthreads == 0) {
        /* No thread alive means the queue was empty: j is all of it. */
        if (p->head != j || p->tail != j)
            weft__panic("blocking: %llu jobs queued and no thread alive",
                        (unsigned long long)p->queued);
        p->head = p->tail = NULL;
        p->queued = 0;
        err = -ENOMEM;
    }
    pthread_mutex_unlock(&p->mu);
    return err;
}

void weft__blocking_stop(struct weft__blocking *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    struct weft__blocking_thread *all = p->threads;
    p->threads = NULL;
    p->nexited = 0;
    pthread_mutex_unlock(&p->mu);
    /* A thread that a pool thread took out of the list to join is joined
     * by that pool thread, which is in `all`. */
    while (all) {
        struct weft__blocking_thread *next = all->next;
        pthread_join(all->id, NULL);
        weft__free(all, sizeof *all);
        all = next;
    }
    pthread_mutex_lock(&p->mu);
    if (p->nthreads || p->head)
        weft__panic("blocking: stopped with %u threads alive and %llu jobs queued", p->nthreads,
                    (unsigned long long)p->queued);
    pthread_mutex_unlock(&p->mu);
}

void weft__blocking_term(struct weft__blocking *p)
{
    weft__blocking_stop(p);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
}

void weft__blocking_collect(struct weft__blocking *p, struct weft_stats *s)
{
    s->blocking_calls = atomic_load_explicit(&p->calls, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    s->blocking_threads_peak = p->peak;
    pthread_mutex_unlock(&p->mu);
}

unsigned weft__blocking_threads(struct weft__blocking *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* ---- the calling task ---------------------------------------------- */

/* The last step of the caller's commit (waitq.c): fn may have returned
 * before the wake word was written, and the pool's wake-up then failed.
 * The record is alive: the waiter has not resumed, and the pool frees only
 * abandoned jobs. Worker w's thread. */
static void publish_wait(struct weft__worker *w, struct weft__task *self, uint64_t seq, void *arg)
{
    (void)w;
    struct weft__blocking_job *j = arg;
    /* seq_cst, after the commit's store of the wake word: pairs with the
     * CAS and the load of the word in finish_job. The fence is for a
     * runtime of one worker, whose commit stores the word without one
     * (waitq.c, "One worker"). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&j->state) == DONE)
        weft__wake(self, seq, WEFT_WAKE_WOKEN);
}

/* Whether the caller gives up before it waits: -ECANCELED (a cancellation
 * pending, not yet taken), -ETIMEDOUT, or 0. Task context. */
static int gives_up(struct weft__task *self, uint64_t deadline)
{
    if (weft__cancel_pending(self))
        return -ECANCELED;
    if (deadline != WEFT__NEVER && deadline <= weft_now())
        return -ETIMEDOUT;
    return 0;
}

/* The wait of self for job j ended with `how`: take the result, or hand
 * the record over to the pool. Task context. */
static int collect(struct weft__task *self, struct weft__blocking_job *j, int how, void **result)
{
    if (how < 0) /* the deadline's heap slot was reserved before j was queued */
        weft__panic("blocking: a wait failed to start: %s", weft_strerror(how));
    if (how != WEFT_WAKE_WOKEN) {
        int expect = PENDING;
        if (atomic_compare_exchange_strong(&j->state, &expect, ABANDONED))
            return weft__wait_error(self, how); /* j is the pool's now */
        /* fn returned meanwhile: the result is here, and a cancellation
         * stays pending for the next suspension. */
    }
    /* Acquire: pairs with the pool thread's CAS to DONE (j->result). */
    if (atomic_load_explicit(&j->state, memory_order_acquire) != DONE)
        weft__panic("blocking: woken before the call returned");
    if (result)
        *result = j->result;
    weft__free(j, sizeof *j);
    return 0;
}

static int call(void *(*fn)(void *), void *arg, void (*drop)(void *, void *), uint64_t deadline,
                void **result, bool nocancel)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    /* fn runs while the caller waits, and a shared-stack task's frames are
     * elsewhere then (docs/design/stacks.md): an arg that points into them
     * would be written or read where another task's frames are. */
    if (self->shared && weft__on_shared_stack(self->worker, arg))
        return -EINVAL;
    /* Room for the deadline first: once j is queued, the wait cannot fail. */
    if (deadline != WEFT__NEVER && weft__timers_reserve(self->worker) < 0)
        return -ENOMEM;
    struct weft__blocking_job *j = weft__alloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->drop = drop;
    j->result = NULL;
    j->task = self;
    j->seq = weft__wait_seq(self);
    int early = nocancel ? 0 : gives_up(self, deadline);
    /* Relaxed: the pool's mutex orders it before the pool thread's CAS. */
    atomic_init(&j->state, early ? ABANDONED : PENDING);
    int err = submit(&weft__rt->blocking, j);
    if (err < 0) {
        weft__free(j, sizeof *j);
        return err;
    }
    if (early) { /* j is the pool's: fn runs, drop follows */
        if (early == -ECANCELED)
            (void)weft__cancel_take(self);
        return early;
    }
    atomic_fetch_add(&weft__rt->ext_waits, 1);
    uint64_t seq = j->seq;
    int how = weft__wait_publish(self, seq, deadline, WEFT_W_BLOCKING, j, nocancel, publish_wait,
                                 j);
    atomic_fetch_sub(&weft__rt->ext_waits, 1);
    return collect(self, j, how, result);
}

int weft_blocking(void *(*fn)(void *arg), void *arg, void **result)
{
    return call(fn, arg, NULL, WEFT__NEVER, result, true);
}

int weft_blocking_until(void *(*fn)(void *arg), void *arg, void (*drop)(void *arg, void *result),
                        uint64_t deadline, void **result)
{
    return call(fn, arg, drop, deadline, result, false);
}
