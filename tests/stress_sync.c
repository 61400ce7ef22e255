/*
 * Stress "sync": 100,000 semaphore acquisitions and 100,000 mutex
 * lock/unlock cycles, with random cancellations and short deadlines
 * racing the releases and unlocks, at WEFT_WORKERS = 1, 2 and 4, counted.
 *
 * Tasks come in batches of 500; each makes 20 attempts to take a unit
 * from the batch's semaphore (acquire, acquire_until a few microseconds
 * ahead, acquire_until a passed deadline, try_acquire, chosen at random)
 * and 20 attempts to lock the batch's mutex (lock, lock_until, trylock),
 * incrementing a plain counter inside, sometimes yielding there, and
 * sometimes first waiting on a condition (with a short deadline) that
 * releases the mutex meanwhile. Releaser tasks release exactly one unit
 * per attempt at random moments, so every blocking acquire is eventually
 * served, and signal or broadcast the condition now and then; a canceller
 * cancels random tasks of the batch until all have finished. Checked per
 * batch:
 *  - no unit lost or duplicated: units released == units acquired + units
 *    left in the semaphore, and the units left == the attempts that failed
 *    (cancelled, timed out, none available);
 *  - the mutex-protected counter == the successful locks, and no two
 *    tasks were ever inside at once, condition waits included (each
 *    returned owning the mutex: its unlock succeeds);
 *  - every call returned one of its documented outcomes, and every
 *    weft_cancel() 0 or -EALREADY;
 *  - every task ended exactly once;
 *  - every object can be freed afterwards: no waiter left, mutex free;
 *  - the runtime shuts down clean.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#define BATCH 500
#define OPS 20
#define NRELEASERS 4
#define UNITS (BATCH * OPS)

struct item {
    weft_task *task;
    _Atomic int ends;
    /* Written by the task, read by main after the join. */
    long acquired, sem_failed, locked, cancelled, timedout, cond_waits;
};

struct batch {
    struct item items[BATCH];
    weft_task *releasers[NRELEASERS];
    weft_sem *sem;
    weft_mutex *mx;
    weft_cond *cv;     /* waited on under mx, signalled by the releasers */
    long counter;       /* under mx */
    _Atomic int inside; /* tasks inside the critical section: 0 or 1 */
    _Atomic int finished;
    _Atomic long released;
    uint32_t seed;
};

static struct batch *cur;

static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static uint64_t short_deadline(uint32_t *s)
{
    return weft_now() + rnd(s) % 20 * WEFT_USEC;
}

static void count_failure(struct item *it, int err)
{
    CHECK(err == -ECANCELED || err == -ETIMEDOUT || err == -EAGAIN || err == -EBUSY);
    it->cancelled += err == -ECANCELED;
    it->timedout += err == -ETIMEDOUT;
}

static void sem_attempt(struct item *it, uint32_t *s)
{
    int err;
    switch (rnd(s) % 4) {
    case 0:
        err = weft_sem_acquire(cur->sem);
        break;
    case 1:
        err = weft_sem_acquire_until(cur->sem, short_deadline(s));
        break;
    case 2:
        err = weft_sem_acquire_until(cur->sem, weft_now());
        break;
    default:
        err = weft_sem_try_acquire(cur->sem);
        break;
    }
    if (err == 0) {
        it->acquired++;
    } else {
        it->sem_failed++;
        count_failure(it, err);
    }
}

static void mutex_attempt(struct item *it, uint32_t *s)
{
    int err;
    switch (rnd(s) % 3) {
    case 0:
        err = weft_mutex_lock(cur->mx);
        break;
    case 1:
        err = weft_mutex_lock_until(cur->mx, short_deadline(s));
        break;
    default:
        err = weft_mutex_trylock(cur->mx);
        break;
    }
    if (err < 0) {
        count_failure(it, err);
        return;
    }
    it->locked++;
    CHECK(atomic_exchange(&cur->inside, 1) == 0);
    if (rnd(s) % 4 == 0) {
        /* Releases mx while it waits, and returns owning it again,
         * however the wait ended. */
        atomic_store(&cur->inside, 0);
        err = weft_cond_wait_until(cur->cv, cur->mx, short_deadline(s));
        CHECK(err == 0 || err == -ETIMEDOUT || err == -ECANCELED);
        CHECK(atomic_exchange(&cur->inside, 1) == 0);
        it->cancelled += err == -ECANCELED;
        it->timedout += err == -ETIMEDOUT;
        it->cond_waits++;
    }
    long v = cur->counter;
    if (rnd(s) % 4 == 0) {
        /* A cancellation may be delivered here; the lock is still held. */
        int y = weft_yield();
        CHECK(y == 0 || y == -ECANCELED);
        it->cancelled += y == -ECANCELED;
    }
    cur->counter = v + 1;
    atomic_store(&cur->inside, 0);
    CHECK(weft_mutex_unlock(cur->mx) == 0);
}

static void *contender(void *arg)
{
    intptr_t i = PINT(arg);
    struct item *it = &cur->items[i];
    uint32_t s = cur->seed ^ (uint32_t)(i * 2654435761u) ^ 1;
    for (int k = 0; k < OPS; k++) {
        sem_attempt(it, &s);
        mutex_attempt(it, &s);
    }
    atomic_fetch_add(&it->ends, 1);
    atomic_fetch_add(&cur->finished, 1);
    return NULL;
}

static void *releaser(void *arg)
{
    uint32_t s = cur->seed * 7 + (uint32_t)PINT(arg) + 1;
    for (int k = 0; k < UNITS / NRELEASERS; k++) {
        uint32_t r = rnd(&s) % 16;
        if (r == 0)
            CHECK(weft_sleep(rnd(&s) % 10 * WEFT_USEC) == 0);
        else if (r < 4)
            CHECK(weft_yield() == 0);
        CHECK(weft_sem_release(cur->sem) == 0);
        atomic_fetch_add(&cur->released, 1);
        if (r < 6)
            CHECK(weft_cond_signal(cur->cv) == 0);
        else if (r == 6)
            CHECK(weft_cond_broadcast(cur->cv) == 0);
    }
    return NULL;
}

static void *canceller(void *arg)
{
    (void)arg;
    uint32_t s = cur->seed * 13 + 5;
    while (atomic_load(&cur->finished) < BATCH) {
        int rc = weft_cancel(cur->items[rnd(&s) % BATCH].task);
        CHECK(rc == 0 || rc == -EALREADY);
        if (rnd(&s) % 2 == 0)
            CHECK(weft_yield() == 0);
    }
    return NULL;
}

static unsigned long batches;
static long total_acquired, total_locked, total_cancelled, total_timedout, total_cond_waits;

static void check_batch(struct batch *b)
{
    long acquired = 0, failed = 0, locked = 0;
    for (int i = 0; i < BATCH; i++) {
        struct item *it = &b->items[i];
        ck_assert_int_eq(weft_join(it->task, NULL), 0);
        ck_assert_int_eq(atomic_load(&it->ends), 1);
        acquired += it->acquired;
        failed += it->sem_failed;
        locked += it->locked;
        total_cond_waits += it->cond_waits;
        total_cancelled += it->cancelled;
        total_timedout += it->timedout;
    }
    for (int r = 0; r < NRELEASERS; r++)
        ck_assert_int_eq(weft_join(b->releasers[r], NULL), 0);
    long left = weft_sem_value(b->sem);
    ck_assert_int_eq(atomic_load(&b->released), UNITS);
    ck_assert_int_eq(acquired + failed, UNITS);
    ck_assert_int_eq(atomic_load(&b->released), acquired + left);
    ck_assert_int_eq(left, failed);
    ck_assert_int_eq(b->counter, locked);
    ck_assert_int_eq(weft_sem_free(b->sem), 0);
    ck_assert_int_eq(weft_cond_free(b->cv), 0);
    ck_assert_int_eq(weft_mutex_free(b->mx), 0);
    total_acquired += acquired;
    total_locked += locked;
}

static void *stress_main(void *arg)
{
    (void)arg;
    struct batch *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    cur = b;
    for (unsigned long n = 0; n < batches; n++) {
        memset(b, 0, sizeof *b);
        b->seed = (uint32_t)(n * 2654435761u + 1);
        ck_assert_int_eq(weft_sem_new(&b->sem, 0), 0);
        ck_assert_int_eq(weft_mutex_new(&b->mx), 0);
        ck_assert_int_eq(weft_cond_new(&b->cv), 0);
        for (intptr_t i = 0; i < BATCH; i++)
            ck_assert_int_eq(weft_spawn(&b->items[i].task, contender, IPTR(i)), 0);
        for (intptr_t r = 0; r < NRELEASERS; r++)
            ck_assert_int_eq(weft_spawn(&b->releasers[r], releaser, IPTR(r)), 0);
        weft_task *c;
        ck_assert_int_eq(weft_spawn(&c, canceller, NULL), 0);
        ck_assert_int_eq(weft_join(c, NULL), 0);
        check_batch(b);
    }
    free(b);
    return NULL;
}

static unsigned stress_workers[] = {1, 2, 4};

START_TEST(stress_sync_no_unit_lost_counter_exact)
{
    alarm(300);
    batches = scaled(100000) / UNITS;
    if (batches < 2)
        batches = 2;
    total_acquired = total_locked = total_cancelled = total_timedout = total_cond_waits = 0;
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = stress_workers[_i];
    ck_assert_int_eq(weft_run(&cfg, stress_main, NULL, NULL), 0);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    /* Units were taken, and cancellations were delivered, or the race
     * was not exercised. */
    ck_assert_int_gt(total_acquired, 0);
    ck_assert_int_gt(total_locked, 0);
    ck_assert_int_gt(total_cancelled, 0);
    fprintf(stderr,
            "stress_sync: %u workers: %lu sem attempts, %ld acquired; %lu lock attempts, %ld "
            "locked, %ld condition waits; %ld cancellations delivered, %ld timeouts\n",
            stress_workers[_i], batches * UNITS, total_acquired, batches * UNITS, total_locked,
            total_cond_waits, total_cancelled, total_timedout);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress_sync");
    TCase *tc = tcase_create("stress_sync");
    tcase_set_timeout(tc, 330);
    tcase_add_loop_test(tc, stress_sync_no_unit_lost_counter_exact, 0,
                        (int)(sizeof stress_workers / sizeof stress_workers[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
