/*
 * Suite "cancel": weft_cancel and the deadline forms on the task calls
 * (sleep, join, yield, checkpoint), black-box through weft.h, on 1 and 2
 * workers (each test runs under both, as a loop test).
 *
 *  - cancel_wakes_a_sleeper: a task sleeping 60 s is cancelled and its
 *    sleep returns -ECANCELED; its next sleep works (the request is used up).
 *  - cancel_before_suspension_is_delivered_at_the_next: a cancel of a task
 *    that is running (not suspended) makes its next suspending call fail,
 *    once; calls that do not suspend are unaffected.
 *  - cancel_before_start: a task cancelled before it first runs still runs,
 *    and its first suspension (a minute's sleep) returns -ECANCELED (on 2
 *    workers a thief may have started it just before the cancel).
 *  - cancel_finished_task_is_ealready, cancel_bad_handles.
 *  - checkpoint_delivers_cancel, yield_delivers_cancel.
 *  - join_until_times_out_and_keeps_the_handle: the task runs on and a
 *    later join gets its result.
 *  - cancelled_joiner_keeps_the_handle (WEFT_INLINE=0): a task blocked in
 *    weft_join is cancelled; the child runs on; a second join gets it.
 *  - cancelled_inline_joiner_is_cancelled_after_the_join: with inlining,
 *    the joiner runs its unstarted child on its own stack; cancelling the
 *    joiner cancels that child (its sleep fails), the join completes with
 *    the child's result, and the joiner's next suspension fails too.
 *  - deadline_in_the_past: join_until with a passed deadline on a running
 *    task is -ETIMEDOUT without suspending.
 *  - sleep_until_returns_at_its_deadline.
 */
#include <errno.h>
#include <stdint.h>

#include "util.h"

static unsigned workers_of[] = {1, 2};

static size_t inline_min = 32 * 1024;
static unsigned workers_now;

static void run_on(int i, weft_fn fn)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[i];
    cfg.inline_min = inline_min;
    workers_now = cfg.workers;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, fn, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
}

/* ---- a sleeper ------------------------------------------------------- */

static _Atomic int sleeping;

static void *sleeper(void *arg)
{
    (void)arg;
    atomic_store(&sleeping, 1);
    int first = weft_sleep(60 * WEFT_SEC);
    int second = weft_sleep(1 * WEFT_MSEC);
    return IPTR(first * 1000 + second);
}

static void *cancel_sleeper_main(void *arg)
{
    (void)arg;
    atomic_store(&sleeping, 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, sleeper, NULL), 0);
    while (!atomic_load(&sleeping))
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0); /* well into its sleep */
    uint64_t t0 = weft_now();
    ck_assert_int_eq(weft_cancel(t), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED * 1000);
    ck_assert_uint_lt(weft_now() - t0, 30 * WEFT_SEC); /* not the 60 s */
    return NULL;
}

START_TEST(cancel_wakes_a_sleeper)
{
    run_on(_i, cancel_sleeper_main);
}
END_TEST

/* ---- cancel while running ------------------------------------------- */

static _Atomic int go;

static void *busy_then_suspend(void *arg)
{
    (void)arg;
    while (!atomic_load(&go)) {
        /* no suspension: the cancel must wait for the next one */
    }
    int a = weft_sleep(1 * WEFT_MSEC);
    int b = weft_sleep(1 * WEFT_MSEC);
    return IPTR(a * 1000 + b);
}

static void *cancel_running_main(void *arg)
{
    (void)arg;
    atomic_store(&go, 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, busy_then_suspend, NULL), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_cancel(t), 0); /* twice: still one delivery */
    atomic_store(&go, 1);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED * 1000);
    return NULL;
}

START_TEST(cancel_before_suspension_is_delivered_at_the_next)
{
    run_on(_i, cancel_running_main);
}
END_TEST

/* ---- cancel before start --------------------------------------------- */

static _Atomic int started;

/* Sleeps for a minute: only the cancellation ends it in time. On 1 worker
 * the cancel always comes before the start; on 2 a thief may start the
 * task first while the spawner is preempted (ThreadSanitizer, a loaded
 * machine), and with a short sleep it could even have finished, making
 * the cancel -EALREADY. Either way the sleep must return -ECANCELED. */
static void *note_start_then_sleep(void *arg)
{
    (void)arg;
    atomic_store(&started, 1);
    return IPTR(weft_sleep(60 * WEFT_SEC));
}

static void *cancel_unstarted_main(void *arg)
{
    (void)arg;
    atomic_store(&started, 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, note_start_then_sleep, NULL), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(atomic_load(&started), 1);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    return NULL;
}

START_TEST(cancel_before_start)
{
    run_on(_i, cancel_unstarted_main);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

static void *ret_arg(void *arg)
{
    return arg;
}

static void *cancel_errors_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, ret_arg, IPTR(7)), 0);
    /* Until it has finished, a cancel is accepted (0); once it has, it is
     * -EALREADY. Bounded by count, not by time. */
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
        rc = weft_cancel(t);
    }
    ck_assert_int_eq(rc, -EALREADY);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), 7);
    ck_assert_int_eq(weft_cancel(t), -ESRCH);
    ck_assert_int_eq(weft_cancel(NULL), -EINVAL);
    return NULL;
}

START_TEST(cancel_finished_and_bad_handles)
{
    run_on(_i, cancel_errors_main);
    ck_assert_int_eq(weft_cancel(NULL), -EPERM); /* no runtime */
    ck_assert_int_eq(weft_checkpoint(), -EPERM);
}
END_TEST

/* ---- checkpoint and yield -------------------------------------------- */

static void *checkpoint_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_checkpoint(), 0);
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    ck_assert_int_eq(weft_checkpoint(), -ECANCELED);
    ck_assert_int_eq(weft_checkpoint(), 0);
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    ck_assert_int_eq(weft_yield(), -ECANCELED);
    ck_assert_int_eq(weft_yield(), 0);
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    ck_assert_int_eq(weft_sleep_until(weft_now() + WEFT_MSEC), -ECANCELED);
    return NULL;
}

START_TEST(checkpoint_and_yield_deliver_cancel)
{
    run_on(_i, checkpoint_main);
}
END_TEST

/* ---- joins with deadlines, cancelled joiners --------------------------- */

static void *sleep_ms_then_ret(void *arg)
{
    int err = weft_sleep((uint64_t)PINT(arg) * WEFT_MSEC);
    return err < 0 ? WEFT_ERR(err) : IPTR(PINT(arg) + 1);
}

static void *join_until_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, sleep_ms_then_ret, IPTR(50)), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join_until(t, weft_now() + 2 * WEFT_MSEC, &r), -ETIMEDOUT);
    ck_assert_ptr_null(r);
    /* A passed deadline: -ETIMEDOUT at once. */
    ck_assert_int_eq(weft_join_until(t, weft_now() - 1, &r), -ETIMEDOUT);
    ck_assert_int_eq(weft_join_until(t, WEFT_NEVER, &r), 0);
    ck_assert_int_eq(PINT(r), 51);
    return NULL;
}

START_TEST(join_until_times_out_and_keeps_the_handle)
{
    run_on(_i, join_until_main);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

struct joiner_arg {
    weft_task *child;
    _Atomic int joining;
};

static void *join_child(void *arg)
{
    struct joiner_arg *a = arg;
    atomic_store(&a->joining, 1);
    void *r = NULL;
    int err = weft_join(a->child, &r);
    /* A join that ran its child inline: the cancellation went to the child
     * (its sleep failed), and comes to the joiner at its next suspension. */
    if (err == 0)
        return IPTR(weft_err_of(r) == -ECANCELED && weft_sleep(WEFT_MSEC) == -ECANCELED ? 1 : 2);
    return IPTR(err);
}

static void *cancelled_joiner_main(void *arg)
{
    (void)arg;
    struct joiner_arg a = {0};
    ck_assert_int_eq(weft_spawn(&a.child, sleep_ms_then_ret, IPTR(30)), 0);
    weft_task *j;
    ck_assert_int_eq(weft_spawn(&j, join_child, &a), 0);
    while (!atomic_load(&a.joining))
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0);
    ck_assert_int_eq(weft_cancel(j), 0);
    void *r;
    ck_assert_int_eq(weft_join(j, &r), 0);
    /* Inlining off: the join blocks. On: with one worker j runs the child
     * inline for sure; with two the other worker may have taken it. */
    if (inline_min == 0 || (workers_now > 1 && PINT(r) == -ECANCELED)) {
        ck_assert_int_eq(PINT(r), -ECANCELED);
        /* The child ran on; its handle is still good. */
        ck_assert_int_eq(weft_join(a.child, &r), 0);
        ck_assert_int_eq(PINT(r), 31);
    } else {
        /* j found the child unstarted and ran it on its own stack. */
        ck_assert_int_eq(PINT(r), 1);
        ck_assert_int_eq(weft_join(a.child, &r), -ESRCH);
    }
    return NULL;
}

/* With inlining off, the join blocks and the cancellation interrupts it. */
START_TEST(cancelled_joiner_keeps_the_handle)
{
    inline_min = 0;
    run_on(_i, cancelled_joiner_main);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

/* With inlining on, the joiner runs the child itself: both are cancelled. */
START_TEST(cancelled_inline_joiner_is_cancelled_after_the_join)
{
    run_on(_i, cancelled_joiner_main);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

static void *sleep_until_main(void *arg)
{
    (void)arg;
    uint64_t deadline = weft_now() + 3 * WEFT_MSEC;
    ck_assert_int_eq(weft_sleep_until(deadline), 0);
    ck_assert_uint_ge(weft_now(), deadline);
    ck_assert_int_eq(weft_sleep_until(0), 0); /* passed: a yield */
    return NULL;
}

START_TEST(sleep_until_returns_at_its_deadline)
{
    run_on(_i, sleep_until_main);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc = tcase_create("cancel");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, cancel_wakes_a_sleeper, 0, n);
    tcase_add_loop_test(tc, cancel_before_suspension_is_delivered_at_the_next, 0, n);
    tcase_add_loop_test(tc, cancel_before_start, 0, n);
    tcase_add_loop_test(tc, cancel_finished_and_bad_handles, 0, n);
    tcase_add_loop_test(tc, checkpoint_and_yield_deliver_cancel, 0, n);
    tcase_add_loop_test(tc, join_until_times_out_and_keeps_the_handle, 0, n);
    tcase_add_loop_test(tc, cancelled_joiner_keeps_the_handle, 0, n);
    tcase_add_loop_test(tc, cancelled_inline_joiner_is_cancelled_after_the_join, 0, n);
    tcase_add_loop_test(tc, sleep_until_returns_at_its_deadline, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
