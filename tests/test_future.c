/*
 * Suite "future": futures, weft_gather, weft_wait_for and task groups,
 * black-box through weft.h; each test on 1 and 2 workers (loop tests).
 *
 *  - future_wakes_every_waiter: 50 tasks await one future; one resolve
 *    wakes them all with the value; a second resolve or a reject is
 *    -EALREADY and changes nothing.
 *  - future_reject_reaches_awaiters: the rejection's code is what await
 *    returns; reject with a non-negative code is -EINVAL.
 *  - future_await_deadline_and_cancel: await with a deadline times out
 *    (and the waiter is gone: free succeeds); an awaiting task that is
 *    cancelled gets -ECANCELED; free with a waiter queued is -EBUSY.
 *  - future_resolved_from_a_thread: a plain pthread resolves; the awaiting
 *    task wakes.
 *  - gather_keeps_order_and_every_error: results in order, a task's
 *    WEFT_ERR code in errors[i], the count of failures returned, every
 *    handle released.
 *  - gather_cancelled_reaps_everything: the gathering task is cancelled;
 *    every task it gathers is cancelled and reaped; -ECANCELED.
 *  - gather_until_cancels_and_reaps_the_late: past the deadline, the tasks
 *    not yet joined are cancelled and reaped; -ETIMEDOUT, outcomes filled.
 *  - group_wait_until_times_out_and_can_wait_again: -ETIMEDOUT leaves the
 *    members running and the group open; a second wait gets them all.
 *  - wait_for_on_time_and_too_late: a fast task's result; a slow task is
 *    cancelled (it saw -ECANCELED: counted) and reaped, -ETIMEDOUT.
 *  - group_waits_for_all: 100 members, each counted once; wait returns 0.
 *  - group_first_failure_cancels_the_rest: one member fails; every other
 *    member's sleep returns -ECANCELED; wait returns the failure's code;
 *    a member spawned afterwards starts cancelled.
 *  - group_waiter_cancelled: the waiter is cancelled, the members are
 *    cancelled, wait still waits for all of them and returns -ECANCELED.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "util.h"

static unsigned workers_of[] = {1, 2};

/* ---- futures ---------------------------------------------------------- */

#define NWAITERS 50

static _Atomic int awaiting;

static void *await_future(void *arg)
{
    weft_future *f = arg;
    void *v = NULL;
    atomic_fetch_add(&awaiting, 1);
    int err = weft_future_await(f, WEFT_NEVER, &v);
    return err < 0 ? WEFT_ERR(err) : v;
}

static void *many_waiters_main(void *arg)
{
    (void)arg;
    atomic_store(&awaiting, 0);
    weft_future *f;
    ck_assert_int_eq(weft_future_new(&f), 0);
    ck_assert_int_eq(weft_future_done(f), 0);
    weft_task *t[NWAITERS];
    for (int i = 0; i < NWAITERS; i++)
        ck_assert_int_eq(weft_spawn(&t[i], await_future, f), 0);
    while (atomic_load(&awaiting) < NWAITERS)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_future_resolve(f, IPTR(42)), 0);
    ck_assert_int_eq(weft_future_resolve(f, IPTR(43)), -EALREADY);
    ck_assert_int_eq(weft_future_reject(f, -EIO), -EALREADY);
    ck_assert_int_eq(weft_future_done(f), 1);
    for (int i = 0; i < NWAITERS; i++) {
        void *r;
        ck_assert_int_eq(weft_join(t[i], &r), 0);
        ck_assert_int_eq(PINT(r), 42);
    }
    void *v = NULL;
    ck_assert_int_eq(weft_future_await(f, WEFT_NEVER, &v), 0); /* settled: at once */
    ck_assert_int_eq(PINT(v), 42);
    ck_assert_int_eq(weft_future_free(f), 0);
    return NULL;
}

START_TEST(future_wakes_every_waiter)
{
    run_on_workers(workers_of[_i], many_waiters_main);
}
END_TEST

static void *reject_main(void *arg)
{
    (void)arg;
    weft_future *f;
    ck_assert_int_eq(weft_future_new(&f), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, await_future, f), 0);
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    ck_assert_int_eq(weft_future_reject(f, 5), -EINVAL);
    ck_assert_int_eq(weft_future_reject(f, -EIO), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(weft_err_of(r), -EIO);
    ck_assert_int_eq(weft_future_await(f, WEFT_NEVER, NULL), -EIO);
    ck_assert_int_eq(weft_future_free(f), 0);
    ck_assert_int_eq(weft_future_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_future_resolve(NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_future_await(NULL, WEFT_NEVER, NULL), -EINVAL);
    return NULL;
}

START_TEST(future_reject_reaches_awaiters)
{
    run_on_workers(workers_of[_i], reject_main);
}
END_TEST

static void *await_with_deadline(void *arg)
{
    weft_future *f = arg;
    atomic_fetch_add(&awaiting, 1);
    return IPTR(weft_future_await(f, weft_now() + 3 * WEFT_MSEC, NULL));
}

static void *deadline_cancel_main(void *arg)
{
    (void)arg;
    atomic_store(&awaiting, 0);
    weft_future *f;
    ck_assert_int_eq(weft_future_new(&f), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, await_with_deadline, f), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ETIMEDOUT);
    ck_assert_int_eq(weft_future_free(f), 0); /* the timed-out waiter left */

    ck_assert_int_eq(weft_future_new(&f), 0);
    atomic_store(&awaiting, 0);
    ck_assert_int_eq(weft_spawn(&t, await_future, f), 0);
    while (atomic_load(&awaiting) < 1)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    /* On one worker the awaiter has surely queued; on two it may still be
     * on its way, and a free that found nobody would succeed. */
    struct weft_stats st;
    ck_assert_int_eq(weft_stats_get(&st), 0);
    if (st.workers == 1)
        ck_assert_int_eq(weft_future_free(f), -EBUSY);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(weft_err_of(r), -ECANCELED);
    ck_assert_int_eq(weft_future_free(f), 0);
    return NULL;
}

START_TEST(future_await_deadline_and_cancel)
{
    run_on_workers(workers_of[_i], deadline_cancel_main);
}
END_TEST

static void *resolve_later(void *arg)
{
    while (atomic_load(&awaiting) < 1) {
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    CHECK(weft_future_resolve(arg, IPTR(9)) == 0);
    return NULL;
}

static void *thread_resolve_main(void *arg)
{
    (void)arg;
    atomic_store(&awaiting, 0);
    weft_future *f;
    ck_assert_int_eq(weft_future_new(&f), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, resolve_later, f), 0);
    void *v = NULL;
    atomic_store(&awaiting, 1);
    ck_assert_int_eq(weft_future_await(f, WEFT_NEVER, &v), 0);
    ck_assert_int_eq(PINT(v), 9);
    pthread_join(th, NULL);
    ck_assert_int_eq(weft_future_free(f), 0);
    return NULL;
}

START_TEST(future_resolved_from_a_thread)
{
    run_on_workers(workers_of[_i], thread_resolve_main);
}
END_TEST

/* ---- gather ------------------------------------------------------------ */

/* Sleeps arg ms; odd args fail with -EIO. */
static void *sleep_and_maybe_fail(void *arg)
{
    intptr_t ms = PINT(arg);
    int err = weft_sleep((uint64_t)ms * WEFT_MSEC);
    if (err < 0)
        return WEFT_ERR(err);
    return ms % 2 ? WEFT_ERR(-EIO) : IPTR(ms * 10);
}

static void *gather_main(void *arg)
{
    (void)arg;
    intptr_t ms[] = {6, 1, 4, 3, 2};
    weft_task *t[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(weft_spawn(&t[i], sleep_and_maybe_fail, IPTR(ms[i])), 0);
    void *res[5];
    int err[5];
    ck_assert_int_eq(weft_gather(t, 5, res, err), 2);
    for (int i = 0; i < 5; i++) {
        if (ms[i] % 2) {
            ck_assert_int_eq(err[i], -EIO);
            ck_assert_ptr_null(res[i]);
        } else {
            ck_assert_int_eq(err[i], 0);
            ck_assert_int_eq(PINT(res[i]), ms[i] * 10);
        }
        ck_assert_int_eq(weft_join(t[i], NULL), -ESRCH); /* released */
    }
    ck_assert_int_eq(weft_gather(NULL, 0, NULL, NULL), 0);
    ck_assert_int_eq(weft_gather(NULL, 1, NULL, err), -EINVAL);
    return NULL;
}

START_TEST(gather_keeps_order_and_every_error)
{
    run_on_workers(workers_of[_i], gather_main);
}
END_TEST

static weft_task *gathered[4];
static int gathered_err[4];

static void *gatherer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        CHECK(weft_spawn(&gathered[i], sleep_and_maybe_fail, IPTR(10000)) == 0);
    atomic_store(&awaiting, 1);
    return IPTR(weft_gather(gathered, 4, NULL, gathered_err));
}

static void *gather_cancel_main(void *arg)
{
    (void)arg;
    atomic_store(&awaiting, 0);
    weft_task *g;
    ck_assert_int_eq(weft_spawn(&g, gatherer, NULL), 0);
    while (!atomic_load(&awaiting))
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0);
    uint64_t t0 = weft_now();
    ck_assert_int_eq(weft_cancel(g), 0);
    void *r;
    ck_assert_int_eq(weft_join(g, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    ck_assert_uint_lt(weft_now() - t0, 5 * WEFT_SEC); /* not the 10 s sleeps */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(gathered_err[i], -ECANCELED);
        ck_assert_int_eq(weft_join(gathered[i], NULL), -ESRCH);
    }
    return NULL;
}

START_TEST(gather_cancelled_reaps_everything)
{
    run_on_workers(workers_of[_i], gather_cancel_main);
}
END_TEST

static void *gather_until_main(void *arg)
{
    (void)arg;
    intptr_t ms[] = {2, 10000, 4};
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_spawn(&t[i], sleep_and_maybe_fail, IPTR(ms[i])), 0);
    void *res[3];
    int err[3];
    uint64_t t0 = weft_now();
    ck_assert_int_eq(weft_gather_until(t, 3, t0 + 50 * WEFT_MSEC, res, err), -ETIMEDOUT);
    ck_assert_uint_lt(weft_now() - t0, 5 * WEFT_SEC); /* not the 10 s sleep */
    ck_assert_int_eq(err[0], 0);
    ck_assert_int_eq(PINT(res[0]), 20);
    ck_assert_int_eq(err[1], -ECANCELED); /* cancelled and reaped */
    ck_assert_ptr_null(res[1]);
    /* The third was cancelled too, unless it had finished already. */
    ck_assert(err[2] == -ECANCELED || (err[2] == 0 && PINT(res[2]) == 40));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), -ESRCH);
    return NULL;
}

START_TEST(gather_until_cancels_and_reaps_the_late)
{
    run_on_workers(workers_of[_i], gather_until_main);
}
END_TEST

/* ---- wait_for ------------------------------------------------------------ */

static _Atomic int saw_cancel;

static void *slow_task(void *arg)
{
    int err = weft_sleep((uint64_t)PINT(arg) * WEFT_MSEC);
    if (err == -ECANCELED)
        atomic_fetch_add(&saw_cancel, 1);
    return IPTR(err == 0 ? 77 : err);
}

static void *wait_for_main(void *arg)
{
    (void)arg;
    atomic_store(&saw_cancel, 0);
    weft_task *t;
    void *r = NULL;
    ck_assert_int_eq(weft_spawn(&t, slow_task, IPTR(1)), 0);
    ck_assert_int_eq(weft_wait_for(t, 10 * WEFT_SEC, &r), 0);
    ck_assert_int_eq(PINT(r), 77);
    ck_assert_int_eq(weft_spawn(&t, slow_task, IPTR(10000)), 0);
    uint64_t t0 = weft_now();
    ck_assert_int_eq(weft_wait_for(t, 3 * WEFT_MSEC, &r), -ETIMEDOUT);
    ck_assert_uint_lt(weft_now() - t0, 5 * WEFT_SEC);
    ck_assert_int_eq(atomic_load(&saw_cancel), 1);
    ck_assert_int_eq(weft_join(t, NULL), -ESRCH); /* reaped */
    return NULL;
}

START_TEST(wait_for_on_time_and_too_late)
{
    run_on_workers(workers_of[_i], wait_for_main);
}
END_TEST

/* ---- task groups ------------------------------------------------------------ */

#define NMEMBERS 100

static _Atomic int member_runs[NMEMBERS];
static _Atomic int members_cancelled;

static void *member(void *arg)
{
    intptr_t i = PINT(arg);
    atomic_fetch_add(&member_runs[i], 1);
    int err = weft_sleep((uint64_t)(i % 7) * 100 * WEFT_USEC + 1);
    return err < 0 ? WEFT_ERR(err) : NULL;
}

static void *group_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < NMEMBERS; i++)
        atomic_store(&member_runs[i], 0);
    weft_group *g;
    ck_assert_int_eq(weft_group_new(&g), 0);
    for (intptr_t i = 0; i < NMEMBERS; i++)
        ck_assert_int_eq(weft_group_spawn(g, member, IPTR(i)), 0);
    ck_assert_int_eq(weft_group_wait(g), 0);
    for (int i = 0; i < NMEMBERS; i++)
        ck_assert_int_eq(atomic_load(&member_runs[i]), 1);
    ck_assert_int_eq(weft_group_wait(g), 0); /* empty: at once */
    ck_assert_int_eq(weft_group_free(g), 0);
    ck_assert_int_eq(weft_group_spawn(NULL, member, NULL), -EINVAL);
    return NULL;
}

START_TEST(group_waits_for_all)
{
    run_on_workers(workers_of[_i], group_main);
}
END_TEST

static void *long_member(void *arg)
{
    (void)arg;
    int err = weft_sleep(10 * WEFT_SEC);
    if (err == -ECANCELED)
        atomic_fetch_add(&members_cancelled, 1);
    return err < 0 ? WEFT_ERR(err) : NULL;
}

static void *failing_member(void *arg)
{
    (void)arg;
    CHECK(weft_sleep(2 * WEFT_MSEC) == 0);
    return WEFT_ERR(-EIO);
}

static void *spawn_after_failure(void *arg)
{
    weft_group *g = arg;
    int err = weft_sleep(20 * WEFT_MSEC);
    if (err < 0)
        return WEFT_ERR(err); /* cancelled by the failure: fine */
    CHECK(weft_group_spawn(g, long_member, NULL) == 0);
    return NULL;
}

static void *group_failure_main(void *arg)
{
    (void)arg;
    atomic_store(&members_cancelled, 0);
    weft_group *g;
    ck_assert_int_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(weft_group_spawn(g, long_member, NULL), 0);
    ck_assert_int_eq(weft_group_spawn(g, failing_member, NULL), 0);
    ck_assert_int_eq(weft_group_spawn(g, spawn_after_failure, g), 0);
    uint64_t t0 = weft_now();
    ck_assert_int_eq(weft_group_wait(g), -EIO);
    ck_assert_uint_lt(weft_now() - t0, 5 * WEFT_SEC);
    /* spawn_after_failure itself was cancelled during its 20 ms sleep, or
     * it spawned one more member, which started cancelled. */
    ck_assert_int_ge(atomic_load(&members_cancelled), 10);
    ck_assert_int_le(atomic_load(&members_cancelled), 11);
    ck_assert_int_eq(weft_group_free(g), 0);
    return NULL;
}

START_TEST(group_first_failure_cancels_the_rest)
{
    run_on_workers(workers_of[_i], group_failure_main);
}
END_TEST

static _Atomic int short_done;

static void *short_sleep_member(void *arg)
{
    int err = weft_sleep((uint64_t)PINT(arg) * WEFT_MSEC);
    if (err == 0)
        atomic_fetch_add(&short_done, 1);
    return err < 0 ? WEFT_ERR(err) : NULL;
}

static void *group_until_main(void *arg)
{
    (void)arg;
    weft_group *g;
    ck_assert_int_eq(weft_group_new(&g), 0);
    for (intptr_t i = 0; i < 5; i++)
        ck_assert_int_eq(weft_group_spawn(g, short_sleep_member, IPTR(30)), 0);
    ck_assert_int_eq(weft_group_wait_until(g, weft_now() + WEFT_MSEC), -ETIMEDOUT);
    ck_assert_int_eq(weft_group_free(g), -EBUSY); /* the members run on */
    ck_assert_int_eq(weft_group_wait_until(g, weft_now() + 10 * WEFT_SEC), 0);
    ck_assert_int_eq(atomic_load(&short_done), 5);
    ck_assert_int_eq(weft_group_free(g), 0);
    return NULL;
}

START_TEST(group_wait_until_times_out_and_can_wait_again)
{
    atomic_store(&short_done, 0);
    run_on_workers(workers_of[_i], group_until_main);
}
END_TEST

static void *group_waiter(void *arg)
{
    weft_group *g = arg;
    for (int i = 0; i < 5; i++)
        CHECK(weft_group_spawn(g, long_member, NULL) == 0);
    atomic_store(&awaiting, 1);
    return IPTR(weft_group_wait(g));
}

static void *group_cancel_main(void *arg)
{
    (void)arg;
    atomic_store(&awaiting, 0);
    atomic_store(&members_cancelled, 0);
    weft_group *g;
    ck_assert_int_eq(weft_group_new(&g), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, group_waiter, g), 0);
    while (!atomic_load(&awaiting))
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0);
    ck_assert_int_eq(weft_group_free(g), -EBUSY);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    ck_assert_int_eq(atomic_load(&members_cancelled), 5);
    ck_assert_int_eq(weft_group_free(g), 0);
    return NULL;
}

START_TEST(group_waiter_cancelled)
{
    run_on_workers(workers_of[_i], group_cancel_main);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("future");
    TCase *tc = tcase_create("future");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, future_wakes_every_waiter, 0, n);
    tcase_add_loop_test(tc, future_reject_reaches_awaiters, 0, n);
    tcase_add_loop_test(tc, future_await_deadline_and_cancel, 0, n);
    tcase_add_loop_test(tc, future_resolved_from_a_thread, 0, n);
    tcase_add_loop_test(tc, gather_keeps_order_and_every_error, 0, n);
    tcase_add_loop_test(tc, gather_cancelled_reaps_everything, 0, n);
    tcase_add_loop_test(tc, wait_for_on_time_and_too_late, 0, n);
    tcase_add_loop_test(tc, gather_until_cancels_and_reaps_the_late, 0, n);
    tcase_add_loop_test(tc, group_wait_until_times_out_and_can_wait_again, 0, n);
    tcase_add_loop_test(tc, group_waits_for_all, 0, n);
    tcase_add_loop_test(tc, group_first_failure_cancels_the_rest, 0, n);
    tcase_add_loop_test(tc, group_waiter_cancelled, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
