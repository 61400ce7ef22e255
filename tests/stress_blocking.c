/*
 * Stress "blocking": 20,000 calls on the blocking-call pool from 2,000
 * tasks, at WEFT_WORKERS = 1, 2 and 4 with a pool of 8 threads, counted.
 *
 * Each task makes 10 calls, each one of: weft_blocking; weft_blocking_until
 * with a deadline 0-200 us away; weft_blocking_until with no deadline. A
 * quarter of the fns sleep up to 200 us, the rest return at once, so
 * deadlines land before, during and after the calls. While the tasks run,
 * a canceller task cancels random tasks at random moments (a cancellation
 * ends a weft_blocking_until, stays pending through a weft_blocking, and
 * makes the task's next weft_blocking_until give up before it waits).
 * Checked per call, after weft_run (whose teardown waits for the abandoned
 * calls):
 *  - every call's fn ran exactly once;
 *  - a call that returned 0 got its own fn's result, and its drop never
 *    ran;
 *  - a call that returned -ETIMEDOUT or -ECANCELED (abandoned) had its
 *    drop run exactly once, with its arg and its fn's result;
 *  - weft_blocking never returned anything but 0;
 *  - the counters say 20,000 calls, at most 8 threads, and no pool thread
 *    is left (the process has as many threads as before weft_run).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

#define CALLS_PER_TASK 10
#define POOL 8

enum { NOT_RETURNED = 0, RETURNED, ABANDONED };

struct call {
    _Atomic int fn_runs;
    _Atomic int drops;
    int outcome;       /* NOT_RETURNED, RETURNED or ABANDONED; the calling task's */
    uint32_t sleep_us; /* how long fn sleeps; fixed before the call */
};

static struct call *calls;
static unsigned long ncalls, ntasks;
static weft_task **tasks;

static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void *expected(struct call *c)
{
    return IPTR((c - calls) * 2 + 1);
}

static void *fn(void *arg)
{
    struct call *c = arg;
    atomic_fetch_add(&c->fn_runs, 1);
    if (c->sleep_us) {
        struct timespec ts = {0, (long)c->sleep_us * 1000};
        nanosleep(&ts, NULL);
    }
    return expected(c);
}

static void drop(void *arg, void *result)
{
    struct call *c = arg;
    CHECK(result == expected(c));
    atomic_fetch_add(&c->drops, 1);
}

static void *caller(void *arg)
{
    unsigned long t = (unsigned long)PINT(arg);
    uint32_t s = (uint32_t)(t * 2654435761u + 17);
    for (unsigned long k = 0; k < CALLS_PER_TASK; k++) {
        struct call *c = &calls[t * CALLS_PER_TASK + k];
        c->sleep_us = rnd(&s) % 4 == 0 ? rnd(&s) % 200 : 0;
        void *r = NULL;
        int err;
        switch (rnd(&s) % 3) {
        case 0:
            err = weft_blocking(fn, c, &r);
            CHECK(err == 0);
            break;
        case 1:
            err = weft_blocking_until(fn, c, drop, weft_now() + rnd(&s) % 200 * WEFT_USEC, &r);
            break;
        default:
            err = weft_blocking_until(fn, c, drop, WEFT_NEVER, &r);
            break;
        }
        CHECK(err == 0 || err == -ETIMEDOUT || err == -ECANCELED);
        if (err == 0)
            CHECK(r == expected(c));
        c->outcome = err == 0 ? RETURNED : ABANDONED;
    }
    return NULL;
}

static void *canceller(void *arg)
{
    (void)arg;
    uint32_t s = 12345;
    for (unsigned long i = 0; i < ntasks; i++) {
        if (rnd(&s) % 4 == 0)
            CHECK(weft_sleep(rnd(&s) % 50 * WEFT_USEC) == 0);
        else
            CHECK(weft_yield() == 0);
        /* The task may have finished, or been joined: both are fine. */
        int err = weft_cancel(tasks[rnd(&s) % ntasks]);
        CHECK(err == 0 || err == -EALREADY || err == -ESRCH);
    }
    return NULL;
}

static void *stress_main(void *arg)
{
    (void)arg;
    for (unsigned long t = 0; t < ntasks; t++)
        ck_assert_int_eq(weft_spawn(&tasks[t], caller, IPTR(t)), 0);
    weft_task *c;
    ck_assert_int_eq(weft_spawn(&c, canceller, NULL), 0);
    for (unsigned long t = 0; t < ntasks; t++)
        ck_assert_int_eq(weft_join(tasks[t], NULL), 0);
    ck_assert_int_eq(weft_join(c, NULL), 0);
    return NULL;
}

static const unsigned workers_of[] = {1, 2, 4};

START_TEST(stress_blocking_every_call_runs_once_and_every_abandoned_one_drops_once)
{
    ntasks = scaled(2000);
    if (ntasks < 10)
        ntasks = 10;
    ncalls = ntasks * CALLS_PER_TASK;
    calls = calloc(ncalls, sizeof *calls);
    tasks = calloc(ntasks, sizeof *tasks);
    ck_assert_ptr_nonnull(calls);
    ck_assert_ptr_nonnull(tasks);
    unsigned before = count_threads();

    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    cfg.blocking_threads = POOL;
    ck_assert_int_eq(weft_run(&cfg, stress_main, NULL, NULL), 0);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_uint_eq(count_threads(), before);

    unsigned long returned = 0, abandoned = 0;
    for (unsigned long i = 0; i < ncalls; i++) {
        struct call *c = &calls[i];
        ck_assert_int_eq(atomic_load(&c->fn_runs), 1);
        ck_assert_int_ne(c->outcome, NOT_RETURNED);
        ck_assert_int_eq(atomic_load(&c->drops), c->outcome == ABANDONED ? 1 : 0);
        returned += c->outcome == RETURNED;
        abandoned += c->outcome == ABANDONED;
    }
    ck_assert_uint_eq(returned + abandoned, ncalls);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, ncalls);
    ck_assert_uint_ge(s.blocking_threads_peak, 1);
    ck_assert_uint_le(s.blocking_threads_peak, POOL);
    fprintf(stderr, "stress_blocking: %u workers: %lu calls returned, %lu abandoned\n",
            workers_of[_i], returned, abandoned);
    free(calls);
    free(tasks);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress_blocking");
    TCase *tc = tcase_create("stress_blocking");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, stress_blocking_every_call_runs_once_and_every_abandoned_one_drops_once,
                        0, (int)(sizeof workers_of / sizeof workers_of[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
