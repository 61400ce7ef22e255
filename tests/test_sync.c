/*
 * Suite "sync": mutexes, conditions, semaphores and events, each test on 1
 * and 2 workers (loop tests), each ending with a clean shutdown. White-box
 * only in one respect: sync.h's waiter counts, so that a test waits until
 * a task is queued instead of sleeping and hoping (no timing assertions).
 *
 *  - mutex_excludes_counted: 8 tasks x 200 increments of a plain counter
 *    under the mutex, yielding inside the critical section; the total is
 *    exact and no two tasks were ever inside at once.
 *  - mutex_hands_off_in_fifo_order: 5 tasks queue one after another on a
 *    held mutex; they get it in the order they queued.
 *  - mutex_trylock_unlock_and_relock_errors: trylock on a free mutex, on a
 *    held one (-EBUSY, the owner included); lock by the owner -EDEADLK;
 *    unlock by another task or of a free mutex -EPERM; NULL -EINVAL.
 *  - mutex_lock_until_times_out: a deadline passes while another task
 *    holds it: -ETIMEDOUT and no ownership; a passed deadline still locks a
 *    free mutex.
 *  - mutex_cancelled_waiter_passes_it_on: of three queued waiters, one is
 *    cancelled while queued and one (the head) just before the unlock; the
 *    mutex goes to the third, the two others return -ECANCELED.
 *  - cond_producer_consumer_counted: 3 producers and 3 consumers over a
 *    4-slot buffer with two conditions; every item consumed once; the end
 *    is announced with a broadcast.
 *  - cond_signal_wakes_one_broadcast_wakes_all: one signal ends exactly one
 *    of 5 waits; a broadcast ends the rest; signals with nobody waiting
 *    are not remembered.
 *  - cond_timeout_and_cancel_retake_the_mutex: a timed-out wait returns
 *    owning the mutex; a cancelled wait returns only once the mutex's
 *    holder unlocked it, owning it, with a cancellation that arrived during
 *    the re-acquire still pending; a pending cancellation fails the wait
 *    without releasing the mutex; waiting without owning it is -EPERM.
 *  - sem_counts_and_try_acquire: counts, -EAGAIN, passed deadlines,
 *    -EOVERFLOW at INT_MAX, -EINVAL for bad arguments.
 *  - sem_wakes_waiters_in_fifo_order: 5 queued acquirers get one release
 *    each in the order they queued.
 *  - sem_acquire_until_times_out: -ETIMEDOUT, no unit taken, no waiter left.
 *  - sem_cancelled_waiter_takes_no_unit: a cancelled waiter is skipped and
 *    the unit goes to the next, or stays in the semaphore; a waiter that
 *    was handed a unit before the cancellation keeps it, and the
 *    cancellation is delivered at a later suspension.
 *  - event_set_clear_wait: set wakes every waiter and stays set; clear;
 *    wait_until times out; a cancelled waiter gets -ECANCELED.
 *  - sync_free_refuses_while_waited_on: every _free is -EBUSY while a task
 *    waits (and a mutex while locked), 0 once it is gone; NULL -EINVAL.
 *  - sync_woken_from_a_plain_thread: a pthread releases a semaphore, sets
 *    an event and signals a condition; the waiting task wakes each time.
 *  - mutex_deadlock_is_reported: main holds a mutex and joins a task
 *    waiting for it: weft_run returns -EDEADLK and the report names the
 *    lock wait (a mutex wait, unlike a semaphore's, cannot be ended by a
 *    thread outside the runtime). The two tasks stay blocked: the check
 *    is of what can be clean (no timer, no stack slab left).
 *  - sync_waits_outside_a_task_are_eperm: no runtime: every waiting call
 *    is -EPERM; the any-thread calls work.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "sync.h"
#include "util.h"

static unsigned workers_of[] = {1, 2};

/* Waits (in a task) until cond holds, polling. */
#define AWAIT(cond)                                                                                \
    do {                                                                                           \
        while (!(cond))                                                                            \
            ck_assert_int_eq(weft_sleep(20 * WEFT_USEC), 0);                                       \
    } while (0)

static uint64_t soon(void)
{
    return weft_now() + 2 * WEFT_MSEC;
}

static int result_of(weft_task *t)
{
    void *r = IPTR(1);
    ck_assert_int_eq(weft_join(t, &r), 0);
    return (int)PINT(r);
}

/* ---- mutex ------------------------------------------------------------ */

#define NLOCKERS 8
#define NINCR 200

static weft_mutex *mx;
static long plain_counter;
static _Atomic int inside;

static void *incrementer(void *arg)
{
    (void)arg;
    for (int i = 0; i < NINCR; i++) {
        CHECK(weft_mutex_lock(mx) == 0);
        CHECK(atomic_exchange(&inside, 1) == 0);
        long v = plain_counter;
        if (i % 3 == 0)
            CHECK(weft_yield() == 0);
        plain_counter = v + 1;
        atomic_store(&inside, 0);
        CHECK(weft_mutex_unlock(mx) == 0);
    }
    return NULL;
}

static void *exclusion_main(void *arg)
{
    (void)arg;
    plain_counter = 0;
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    weft_task *t[NLOCKERS];
    for (int i = 0; i < NLOCKERS; i++)
        ck_assert_int_eq(weft_spawn(&t[i], incrementer, NULL), 0);
    for (int i = 0; i < NLOCKERS; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    ck_assert_int_eq(plain_counter, NLOCKERS * NINCR);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(mutex_excludes_counted)
{
    run_on_workers(workers_of[_i], exclusion_main);
}
END_TEST

#define NQUEUED 5

static int order[NQUEUED];
static _Atomic int nslots, norder;

/* Appends x to order[]; norder counts the entries written (release). */
static void record(int x)
{
    order[atomic_fetch_add(&nslots, 1)] = x;
    atomic_fetch_add(&norder, 1);
}

static void reset_order(void)
{
    atomic_store(&nslots, 0);
    atomic_store(&norder, 0);
}

/* Locks mx, records arg, unlocks; returns the lock's result. */
static void *lock_and_record(void *arg)
{
    int err = weft_mutex_lock(mx);
    if (err == 0) {
        record((int)PINT(arg));
        CHECK(weft_mutex_unlock(mx) == 0);
    }
    return IPTR(err);
}

static void *fifo_main(void *arg)
{
    (void)arg;
    reset_order();
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    weft_task *t[NQUEUED];
    for (int i = 0; i < NQUEUED; i++) {
        ck_assert_int_eq(weft_spawn(&t[i], lock_and_record, IPTR(i)), 0);
        AWAIT(weft__mutex_waiting(mx) == (uint64_t)i + 1);
    }
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    for (int i = 0; i < NQUEUED; i++)
        ck_assert_int_eq(result_of(t[i]), 0);
    ck_assert_int_eq(atomic_load(&norder), NQUEUED);
    for (int i = 0; i < NQUEUED; i++)
        ck_assert_int_eq(order[i], i);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(mutex_hands_off_in_fifo_order)
{
    run_on_workers(workers_of[_i], fifo_main);
}
END_TEST

static void *trylock_and_unlock_other(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_trylock(mx) == -EBUSY);
    CHECK(weft_mutex_unlock(mx) == -EPERM);
    return NULL;
}

static void *errors_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_mutex_trylock(mx), 0);
    ck_assert_int_eq(weft_mutex_trylock(mx), -EBUSY);
    ck_assert_int_eq(weft_mutex_lock(mx), -EDEADLK);
    ck_assert_int_eq(weft_mutex_lock_until(mx, soon()), -EDEADLK);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, trylock_and_unlock_other, NULL), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_mutex_free(mx), -EBUSY);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), -EPERM);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);

    ck_assert_int_eq(weft_mutex_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_mutex_lock(NULL), -EINVAL);
    ck_assert_int_eq(weft_mutex_lock_until(NULL, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_mutex_trylock(NULL), -EINVAL);
    ck_assert_int_eq(weft_mutex_unlock(NULL), -EINVAL);
    ck_assert_int_eq(weft_mutex_free(NULL), -EINVAL);
    return NULL;
}

START_TEST(mutex_trylock_unlock_and_relock_errors)
{
    run_on_workers(workers_of[_i], errors_main);
}
END_TEST

static void *lock_until_soon(void *arg)
{
    uint64_t deadline = arg ? weft_now() : soon();
    int err = weft_mutex_lock_until(mx, deadline);
    if (err == 0)
        CHECK(weft_mutex_unlock(mx) == 0);
    else
        CHECK(weft_mutex_unlock(mx) == -EPERM);
    return IPTR(err);
}

static void *lock_until_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, lock_until_soon, NULL), 0);
    ck_assert_int_eq(result_of(t), -ETIMEDOUT);
    ck_assert_int_eq(weft_spawn(&t, lock_until_soon, IPTR(1)), 0); /* deadline passed */
    ck_assert_int_eq(result_of(t), -ETIMEDOUT);
    ck_assert_uint_eq(weft__mutex_waiting(mx), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    /* A free mutex is taken whatever the deadline. */
    ck_assert_int_eq(weft_mutex_lock_until(mx, weft_now() - 1), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(weft_spawn(&t, lock_until_soon, NULL), 0);
    ck_assert_int_eq(result_of(t), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(mutex_lock_until_times_out)
{
    run_on_workers(workers_of[_i], lock_until_main);
}
END_TEST

static void *cancel_waiter_main(void *arg)
{
    (void)arg;
    reset_order();
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_spawn(&t[i], lock_and_record, IPTR(i)), 0);
        AWAIT(weft__mutex_waiting(mx) == (uint64_t)i + 1);
    }
    /* The middle one leaves the queue. */
    ck_assert_int_eq(weft_cancel(t[1]), 0);
    AWAIT(weft__mutex_waiting(mx) == 2);
    /* The head one's wait ends just before the unlock: it is skipped. */
    ck_assert_int_eq(weft_cancel(t[0]), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(result_of(t[0]), -ECANCELED);
    ck_assert_int_eq(result_of(t[1]), -ECANCELED);
    ck_assert_int_eq(result_of(t[2]), 0);
    ck_assert_int_eq(atomic_load(&norder), 1);
    ck_assert_int_eq(order[0], 2);
    ck_assert_int_eq(weft_mutex_trylock(mx), 0); /* free again */
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(mutex_cancelled_waiter_passes_it_on)
{
    run_on_workers(workers_of[_i], cancel_waiter_main);
}
END_TEST

/* ---- condition -------------------------------------------------------- */

#define NPROD 3
#define NCONS 3
#define NITEMS 300
#define SLOTS 4

static struct {
    weft_mutex *m;
    weft_cond *not_empty, *not_full;
    long buf[SLOTS];
    int head, count;
    bool done;
} pc;

static void *producer(void *arg)
{
    long base = PINT(arg) * NITEMS;
    for (long i = 1; i <= NITEMS; i++) {
        CHECK(weft_mutex_lock(pc.m) == 0);
        while (pc.count == SLOTS)
            CHECK(weft_cond_wait(pc.not_full, pc.m) == 0);
        pc.buf[(pc.head + pc.count++) % SLOTS] = base + i;
        CHECK(weft_cond_signal(pc.not_empty) == 0);
        CHECK(weft_mutex_unlock(pc.m) == 0);
    }
    return NULL;
}

/* Returns the number of items it took; adds their sum to *arg. */
static void *consumer(void *arg)
{
    long *sum = arg, n = 0;
    for (;;) {
        CHECK(weft_mutex_lock(pc.m) == 0);
        while (pc.count == 0 && !pc.done)
            CHECK(weft_cond_wait(pc.not_empty, pc.m) == 0);
        if (pc.count == 0) {
            CHECK(weft_mutex_unlock(pc.m) == 0);
            return IPTR(n);
        }
        *sum += pc.buf[pc.head];
        pc.head = (pc.head + 1) % SLOTS;
        pc.count--;
        n++;
        CHECK(weft_cond_signal(pc.not_full) == 0);
        CHECK(weft_mutex_unlock(pc.m) == 0);
    }
}

static void *prodcons_main(void *arg)
{
    (void)arg;
    memset(&pc, 0, sizeof pc);
    ck_assert_int_eq(weft_mutex_new(&pc.m), 0);
    ck_assert_int_eq(weft_cond_new(&pc.not_empty), 0);
    ck_assert_int_eq(weft_cond_new(&pc.not_full), 0);
    weft_task *p[NPROD], *c[NCONS];
    long sums[NCONS] = {0};
    for (int i = 0; i < NCONS; i++)
        ck_assert_int_eq(weft_spawn(&c[i], consumer, &sums[i]), 0);
    for (int i = 0; i < NPROD; i++)
        ck_assert_int_eq(weft_spawn(&p[i], producer, IPTR(i)), 0);
    for (int i = 0; i < NPROD; i++)
        ck_assert_int_eq(weft_join(p[i], NULL), 0);
    ck_assert_int_eq(weft_mutex_lock(pc.m), 0);
    pc.done = true;
    ck_assert_int_eq(weft_cond_broadcast(pc.not_empty), 0);
    ck_assert_int_eq(weft_mutex_unlock(pc.m), 0);
    long n = 0, sum = 0;
    for (int i = 0; i < NCONS; i++) {
        n += result_of(c[i]);
        sum += sums[i];
    }
    ck_assert_int_eq(n, NPROD * NITEMS);
    long want = 0;
    for (long k = 0; k < NPROD; k++)
        want += k * NITEMS * NITEMS + (long)NITEMS * (NITEMS + 1) / 2;
    ck_assert_int_eq(sum, want);
    ck_assert_int_eq(pc.count, 0);
    ck_assert_int_eq(weft_cond_free(pc.not_empty), 0);
    ck_assert_int_eq(weft_cond_free(pc.not_full), 0);
    ck_assert_int_eq(weft_mutex_free(pc.m), 0);
    return NULL;
}

START_TEST(cond_producer_consumer_counted)
{
    run_on_workers(workers_of[_i], prodcons_main);
}
END_TEST

#define NCW 5

static weft_cond *cv;
static _Atomic int cond_woken;

static void *cond_waiter(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(mx) == 0);
    int err = weft_cond_wait(cv, mx);
    atomic_fetch_add(&cond_woken, 1);
    CHECK(weft_mutex_unlock(mx) == 0);
    return IPTR(err);
}

static void *signal_main(void *arg)
{
    (void)arg;
    atomic_store(&cond_woken, 0);
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_cond_new(&cv), 0);
    ck_assert_int_eq(weft_cond_signal(cv), 0); /* nobody waits: forgotten */
    ck_assert_int_eq(weft_cond_broadcast(cv), 0);
    weft_task *t[NCW];
    for (int i = 0; i < NCW; i++)
        ck_assert_int_eq(weft_spawn(&t[i], cond_waiter, NULL), 0);
    AWAIT(weft__cond_waiting(cv) == NCW);
    ck_assert_int_eq(weft_cond_signal(cv), 0);
    ck_assert_uint_eq(weft__cond_waiting(cv), NCW - 1);
    AWAIT(atomic_load(&cond_woken) == 1);
    ck_assert_uint_eq(weft__cond_waiting(cv), NCW - 1);
    ck_assert_int_eq(weft_cond_broadcast(cv), 0);
    ck_assert_uint_eq(weft__cond_waiting(cv), 0);
    for (int i = 0; i < NCW; i++)
        ck_assert_int_eq(result_of(t[i]), 0);
    ck_assert_int_eq(atomic_load(&cond_woken), NCW);
    ck_assert_int_eq(weft_cond_free(cv), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    ck_assert_int_eq(weft_cond_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_cond_signal(NULL), -EINVAL);
    ck_assert_int_eq(weft_cond_broadcast(NULL), -EINVAL);
    ck_assert_int_eq(weft_cond_free(NULL), -EINVAL);
    return NULL;
}

START_TEST(cond_signal_wakes_one_broadcast_wakes_all)
{
    run_on_workers(workers_of[_i], signal_main);
}
END_TEST

static _Atomic int main_flag;

/* Results of the cancelled condition waiter. */
static struct {
    int wait, flag, unlock, next;
} cw;

static void *timed_cond_waiter(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(mx) == 0);
    int err = weft_cond_wait_until(cv, mx, soon());
    CHECK(weft_mutex_unlock(mx) == 0); /* owned again */
    return IPTR(err);
}

static void *cancelled_cond_waiter(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(mx) == 0);
    cw.wait = weft_cond_wait(cv, mx);
    cw.flag = atomic_load(&main_flag);
    cw.unlock = weft_mutex_unlock(mx);
    cw.next = weft_yield();
    return NULL;
}

static void *precancelled_cond_waiter(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(mx) == 0);
    CHECK(weft_cancel(weft_self()) == 0);
    int err = weft_cond_wait(cv, mx);
    CHECK(weft_mutex_unlock(mx) == 0); /* never released */
    return IPTR(err);
}

static void *cond_retake_main(void *arg)
{
    (void)arg;
    atomic_store(&main_flag, 0);
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_cond_new(&cv), 0);
    ck_assert_int_eq(weft_cond_wait(cv, mx), -EPERM); /* not owned */

    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, timed_cond_waiter, NULL), 0);
    ck_assert_int_eq(result_of(t), -ETIMEDOUT);

    ck_assert_int_eq(weft_spawn(&t, cancelled_cond_waiter, NULL), 0);
    AWAIT(weft__cond_waiting(cv) == 1);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    /* Its condition wait has ended; now it waits for the mutex, and a
     * second cancellation does not interrupt that. */
    AWAIT(weft__mutex_waiting(mx) == 1);
    ck_assert_uint_eq(weft__cond_waiting(cv), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    atomic_store(&main_flag, 1);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(cw.wait, -ECANCELED);
    ck_assert_int_eq(cw.flag, 1);
    ck_assert_int_eq(cw.unlock, 0);
    ck_assert_int_eq(cw.next, -ECANCELED);

    ck_assert_int_eq(weft_spawn(&t, precancelled_cond_waiter, NULL), 0);
    ck_assert_int_eq(result_of(t), -ECANCELED);

    ck_assert_int_eq(weft_cond_free(cv), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(cond_timeout_and_cancel_retake_the_mutex)
{
    run_on_workers(workers_of[_i], cond_retake_main);
}
END_TEST

/* ---- semaphore -------------------------------------------------------- */

static weft_sem *sem;

static void *sem_counts_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_sem_new(&sem, 3), 0);
    ck_assert_int_eq(weft_sem_value(sem), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_sem_try_acquire(sem), 0);
    ck_assert_int_eq(weft_sem_try_acquire(sem), -EAGAIN);
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_acquire_until(sem, weft_now()), -ETIMEDOUT);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(weft_sem_value(sem), 1);
    ck_assert_int_eq(weft_sem_acquire(sem), 0);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(weft_sem_acquire_until(sem, weft_now()), 0); /* available: taken */
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);

    ck_assert_int_eq(weft_sem_new(&sem, INT_MAX), 0);
    ck_assert_int_eq(weft_sem_release(sem), -EOVERFLOW);
    ck_assert_int_eq(weft_sem_value(sem), INT_MAX);
    ck_assert_int_eq(weft_sem_free(sem), 0); /* units left are fine */

    ck_assert_int_eq(weft_sem_new(&sem, (unsigned)INT_MAX + 1), -EINVAL);
    ck_assert_int_eq(weft_sem_new(NULL, 0), -EINVAL);
    ck_assert_int_eq(weft_sem_acquire(NULL), -EINVAL);
    ck_assert_int_eq(weft_sem_acquire_until(NULL, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_sem_try_acquire(NULL), -EINVAL);
    ck_assert_int_eq(weft_sem_release(NULL), -EINVAL);
    ck_assert_int_eq(weft_sem_value(NULL), -EINVAL);
    ck_assert_int_eq(weft_sem_free(NULL), -EINVAL);
    return NULL;
}

START_TEST(sem_counts_and_try_acquire)
{
    run_on_workers(workers_of[_i], sem_counts_main);
}
END_TEST

static void *sem_acquire_and_record(void *arg)
{
    int err = weft_sem_acquire(sem);
    if (err == 0)
        record((int)PINT(arg));
    return IPTR(err);
}

static void *sem_fifo_main(void *arg)
{
    (void)arg;
    reset_order();
    ck_assert_int_eq(weft_sem_new(&sem, 0), 0);
    weft_task *t[NQUEUED];
    for (int i = 0; i < NQUEUED; i++) {
        ck_assert_int_eq(weft_spawn(&t[i], sem_acquire_and_record, IPTR(i)), 0);
        AWAIT(weft__sem_waiting(sem) == (uint64_t)i + 1);
    }
    for (int i = 0; i < NQUEUED; i++) {
        ck_assert_int_eq(weft_sem_release(sem), 0);
        AWAIT(atomic_load(&norder) == i + 1);
        ck_assert_int_eq(order[i], i);
    }
    for (int i = 0; i < NQUEUED; i++)
        ck_assert_int_eq(result_of(t[i]), 0);
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);
    return NULL;
}

START_TEST(sem_wakes_waiters_in_fifo_order)
{
    run_on_workers(workers_of[_i], sem_fifo_main);
}
END_TEST

static void *sem_acquire_soon(void *arg)
{
    (void)arg;
    return IPTR(weft_sem_acquire_until(sem, soon()));
}

static void *sem_timeout_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_sem_new(&sem, 0), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, sem_acquire_soon, NULL), 0);
    ck_assert_int_eq(result_of(t), -ETIMEDOUT);
    ck_assert_uint_eq(weft__sem_waiting(sem), 0);
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(weft_spawn(&t, sem_acquire_soon, NULL), 0);
    ck_assert_int_eq(result_of(t), 0);
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);
    return NULL;
}

START_TEST(sem_acquire_until_times_out)
{
    run_on_workers(workers_of[_i], sem_timeout_main);
}
END_TEST

static weft_event *ev;

/* Acquires, then waits for an event nobody sets: it finishes only by a
 * cancellation, which its acquire must not have taken. */
static void *sem_acquire_then_wait(void *arg)
{
    int *next = arg;
    int err = weft_sem_acquire(sem);
    *next = weft_event_wait(ev);
    return IPTR(err);
}

static void *sem_cancel_main(void *arg)
{
    (void)arg;
    reset_order();
    ck_assert_int_eq(weft_sem_new(&sem, 0), 0);
    weft_task *t[3];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(weft_spawn(&t[i], sem_acquire_and_record, IPTR(i)), 0);
        AWAIT(weft__sem_waiting(sem) == (uint64_t)i + 1);
    }
    /* The head's wait ends just before the release: the unit goes on. */
    ck_assert_int_eq(weft_cancel(t[0]), 0);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(result_of(t[0]), -ECANCELED);
    ck_assert_int_eq(result_of(t[1]), 0);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(weft_sem_value(sem), 0);

    /* The only waiter is cancelled: the unit stays in the semaphore. */
    ck_assert_int_eq(weft_spawn(&t[2], sem_acquire_and_record, IPTR(2)), 0);
    AWAIT(weft__sem_waiting(sem) == 1);
    ck_assert_int_eq(weft_cancel(t[2]), 0);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(result_of(t[2]), -ECANCELED);
    ck_assert_int_eq(weft_sem_value(sem), 1);
    ck_assert_int_eq(atomic_load(&norder), 1);
    ck_assert_int_eq(weft_sem_try_acquire(sem), 0);

    /* Released first, cancelled after: the unit is kept, and the
     * cancellation is delivered at the next suspension. */
    int next = 1;
    ck_assert_int_eq(weft_event_new(&ev), 0);
    ck_assert_int_eq(weft_spawn(&t[0], sem_acquire_then_wait, &next), 0);
    AWAIT(weft__sem_waiting(sem) == 1);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(weft_cancel(t[0]), 0);
    ck_assert_int_eq(result_of(t[0]), 0);
    ck_assert_int_eq(next, -ECANCELED);
    ck_assert_int_eq(weft_sem_value(sem), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);
    ck_assert_int_eq(weft_event_free(ev), 0);
    return NULL;
}

START_TEST(sem_cancelled_waiter_takes_no_unit)
{
    run_on_workers(workers_of[_i], sem_cancel_main);
}
END_TEST

/* ---- event ------------------------------------------------------------ */

#define NEW 5

static void *event_waiter(void *arg)
{
    (void)arg;
    return IPTR(weft_event_wait(ev));
}

static void *event_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_event_new(&ev), 0);
    ck_assert_int_eq(weft_event_is_set(ev), 0);
    weft_task *t[NEW];
    for (int i = 0; i < NEW; i++)
        ck_assert_int_eq(weft_spawn(&t[i], event_waiter, NULL), 0);
    AWAIT(weft__event_waiting(ev) == NEW);
    ck_assert_int_eq(weft_event_set(ev), 0);
    ck_assert_int_eq(weft_event_clear(ev), 0); /* the woken still return 0 */
    for (int i = 0; i < NEW; i++)
        ck_assert_int_eq(result_of(t[i]), 0);
    ck_assert_int_eq(weft_event_set(ev), 0);
    ck_assert_int_eq(weft_event_set(ev), 0);
    ck_assert_int_eq(weft_event_is_set(ev), 1);
    ck_assert_int_eq(weft_event_wait(ev), 0);
    ck_assert_int_eq(weft_event_wait_until(ev, weft_now()), 0);
    ck_assert_int_eq(weft_event_clear(ev), 0);
    ck_assert_int_eq(weft_event_is_set(ev), 0);
    ck_assert_int_eq(weft_event_wait_until(ev, soon()), -ETIMEDOUT);
    ck_assert_int_eq(weft_event_wait_until(ev, weft_now()), -ETIMEDOUT);
    ck_assert_int_eq(weft_spawn(&t[0], event_waiter, NULL), 0);
    AWAIT(weft__event_waiting(ev) == 1);
    ck_assert_int_eq(weft_cancel(t[0]), 0);
    ck_assert_int_eq(result_of(t[0]), -ECANCELED);
    ck_assert_uint_eq(weft__event_waiting(ev), 0);
    ck_assert_int_eq(weft_event_free(ev), 0);

    ck_assert_int_eq(weft_event_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_event_set(NULL), -EINVAL);
    ck_assert_int_eq(weft_event_clear(NULL), -EINVAL);
    ck_assert_int_eq(weft_event_is_set(NULL), -EINVAL);
    ck_assert_int_eq(weft_event_wait(NULL), -EINVAL);
    ck_assert_int_eq(weft_event_wait_until(NULL, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_event_free(NULL), -EINVAL);
    return NULL;
}

START_TEST(event_set_clear_wait)
{
    run_on_workers(workers_of[_i], event_main);
}
END_TEST

/* ---- lifetimes and threads -------------------------------------------- */

static void *cond_wait_once(void *arg)
{
    (void)arg;
    CHECK(weft_mutex_lock(mx) == 0);
    int err = weft_cond_wait(cv, mx);
    CHECK(weft_mutex_unlock(mx) == 0);
    return IPTR(err);
}

static void *lock_once(void *arg)
{
    (void)arg;
    int err = weft_mutex_lock(mx);
    if (err == 0)
        CHECK(weft_mutex_unlock(mx) == 0);
    return IPTR(err);
}

static void *sem_acquire_plain(void *arg)
{
    (void)arg;
    return IPTR(weft_sem_acquire(sem));
}

static void *free_busy_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    ck_assert_int_eq(weft_spawn(&t, lock_once, NULL), 0);
    AWAIT(weft__mutex_waiting(mx) == 1);
    ck_assert_int_eq(weft_mutex_free(mx), -EBUSY);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(result_of(t), 0);

    ck_assert_int_eq(weft_cond_new(&cv), 0);
    ck_assert_int_eq(weft_spawn(&t, cond_wait_once, NULL), 0);
    AWAIT(weft__cond_waiting(cv) == 1);
    ck_assert_int_eq(weft_cond_free(cv), -EBUSY);
    ck_assert_int_eq(weft_cond_signal(cv), 0);
    ck_assert_int_eq(result_of(t), 0);
    ck_assert_int_eq(weft_cond_free(cv), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);

    ck_assert_int_eq(weft_sem_new(&sem, 0), 0);
    ck_assert_int_eq(weft_spawn(&t, sem_acquire_plain, NULL), 0);
    AWAIT(weft__sem_waiting(sem) == 1);
    ck_assert_int_eq(weft_sem_free(sem), -EBUSY);
    ck_assert_int_eq(weft_sem_release(sem), 0);
    ck_assert_int_eq(result_of(t), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);

    ck_assert_int_eq(weft_event_new(&ev), 0);
    ck_assert_int_eq(weft_spawn(&t, event_waiter, NULL), 0);
    AWAIT(weft__event_waiting(ev) == 1);
    ck_assert_int_eq(weft_event_free(ev), -EBUSY);
    ck_assert_int_eq(weft_event_set(ev), 0);
    ck_assert_int_eq(result_of(t), 0);
    ck_assert_int_eq(weft_event_free(ev), 0);
    return NULL;
}

START_TEST(sync_free_refuses_while_waited_on)
{
    run_on_workers(workers_of[_i], free_busy_main);
}
END_TEST

static void thread_await(uint64_t (*count)(void *), void *obj)
{
    struct timespec ts = {0, 20000};
    while (count(obj) == 0)
        nanosleep(&ts, NULL);
}

static uint64_t sem_count(void *o)
{
    return weft__sem_waiting(o);
}

static uint64_t event_count(void *o)
{
    return weft__event_waiting(o);
}

static uint64_t cond_count(void *o)
{
    return weft__cond_waiting(o);
}

static void *waker_thread(void *arg)
{
    (void)arg;
    thread_await(sem_count, sem);
    CHECK(weft_sem_release(sem) == 0);
    thread_await(event_count, ev);
    CHECK(weft_event_set(ev) == 0);
    thread_await(cond_count, cv);
    CHECK(weft_cond_signal(cv) == 0);
    return NULL;
}

static void *plain_thread_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_sem_new(&sem, 0), 0);
    ck_assert_int_eq(weft_event_new(&ev), 0);
    ck_assert_int_eq(weft_cond_new(&cv), 0);
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, waker_thread, NULL), 0);
    ck_assert_int_eq(weft_sem_acquire(sem), 0);
    ck_assert_int_eq(weft_event_wait(ev), 0);
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    ck_assert_int_eq(weft_cond_wait(cv, mx), 0);
    ck_assert_int_eq(weft_mutex_unlock(mx), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(weft_sem_free(sem), 0);
    ck_assert_int_eq(weft_event_free(ev), 0);
    ck_assert_int_eq(weft_cond_free(cv), 0);
    ck_assert_int_eq(weft_mutex_free(mx), 0);
    return NULL;
}

START_TEST(sync_woken_from_a_plain_thread)
{
    run_on_workers(workers_of[_i], plain_thread_main);
}
END_TEST

/* Main holds mx and joins a task that waits for mx: nothing can end
 * either wait (only a task can unlock), so the run is a deadlock. */
static void *deadlock_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_mutex_lock(mx), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, lock_once, NULL), 0);
    (void)weft_join(t, NULL);
    return NULL;
}

START_TEST(mutex_deadlock_is_reported)
{
    ck_assert_int_eq(weft_mutex_new(&mx), 0);
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    start_capture();
    int err = weft_run(&cfg, deadlock_main, NULL, NULL);
    const char *out = stop_capture();
    ck_assert_int_eq(err, -EDEADLK);
    ck_assert_ptr_nonnull(strstr(out, "blocked on lock, condition, semaphore or event 0x"));
    /* The two tasks are still blocked: what can be clean is. */
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_live, 2);
    ck_assert_uint_eq(s.timers_pending, 0);
    ck_assert_uint_eq(s.stack_slabs, 0);
    ck_assert_int_eq(weft_mutex_free(mx), -EBUSY); /* still locked */
}
END_TEST

START_TEST(sync_waits_outside_a_task_are_eperm)
{
    weft_mutex *m;
    weft_cond *c;
    weft_sem *s;
    weft_event *e;
    ck_assert_int_eq(weft_mutex_new(&m), 0);
    ck_assert_int_eq(weft_cond_new(&c), 0);
    ck_assert_int_eq(weft_sem_new(&s, 1), 0);
    ck_assert_int_eq(weft_event_new(&e), 0);
    ck_assert_int_eq(weft_mutex_lock(m), -EPERM);
    ck_assert_int_eq(weft_mutex_lock_until(m, WEFT_NEVER), -EPERM);
    ck_assert_int_eq(weft_mutex_trylock(m), -EPERM);
    ck_assert_int_eq(weft_mutex_unlock(m), -EPERM);
    ck_assert_int_eq(weft_cond_wait(c, m), -EPERM);
    ck_assert_int_eq(weft_cond_wait_until(c, m, WEFT_NEVER), -EPERM);
    ck_assert_int_eq(weft_sem_acquire(s), -EPERM);
    ck_assert_int_eq(weft_sem_acquire_until(s, WEFT_NEVER), -EPERM);
    ck_assert_int_eq(weft_event_wait(e), -EPERM);
    ck_assert_int_eq(weft_event_wait_until(e, WEFT_NEVER), -EPERM);
    /* The calls for any thread work with no runtime at all. */
    ck_assert_int_eq(weft_cond_signal(c), 0);
    ck_assert_int_eq(weft_cond_broadcast(c), 0);
    ck_assert_int_eq(weft_sem_try_acquire(s), 0);
    ck_assert_int_eq(weft_sem_release(s), 0);
    ck_assert_int_eq(weft_sem_value(s), 1);
    ck_assert_int_eq(weft_event_set(e), 0);
    ck_assert_int_eq(weft_event_is_set(e), 1);
    ck_assert_int_eq(weft_event_clear(e), 0);
    ck_assert_int_eq(weft_mutex_free(m), 0);
    ck_assert_int_eq(weft_cond_free(c), 0);
    ck_assert_int_eq(weft_sem_free(s), 0);
    ck_assert_int_eq(weft_event_free(e), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("sync");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, mutex_excludes_counted, 0, n);
    tcase_add_loop_test(tc, mutex_hands_off_in_fifo_order, 0, n);
    tcase_add_loop_test(tc, mutex_trylock_unlock_and_relock_errors, 0, n);
    tcase_add_loop_test(tc, mutex_lock_until_times_out, 0, n);
    tcase_add_loop_test(tc, mutex_cancelled_waiter_passes_it_on, 0, n);
    tcase_add_loop_test(tc, cond_producer_consumer_counted, 0, n);
    tcase_add_loop_test(tc, cond_signal_wakes_one_broadcast_wakes_all, 0, n);
    tcase_add_loop_test(tc, cond_timeout_and_cancel_retake_the_mutex, 0, n);
    tcase_add_loop_test(tc, sem_counts_and_try_acquire, 0, n);
    tcase_add_loop_test(tc, sem_wakes_waiters_in_fifo_order, 0, n);
    tcase_add_loop_test(tc, sem_acquire_until_times_out, 0, n);
    tcase_add_loop_test(tc, sem_cancelled_waiter_takes_no_unit, 0, n);
    tcase_add_loop_test(tc, event_set_clear_wait, 0, n);
    tcase_add_loop_test(tc, sync_free_refuses_while_waited_on, 0, n);
    tcase_add_loop_test(tc, sync_woken_from_a_plain_thread, 0, n);
    tcase_add_loop_test(tc, mutex_deadlock_is_reported, 0, n);
    tcase_add_test(tc, sync_waits_outside_a_task_are_eperm);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
