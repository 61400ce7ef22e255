/*
 * Suite "api_errors": documented error returns of weft.h that no other
 * suite reaches, black-box through weft.h, each on 1 and 2 workers where
 * the number of workers can change the path taken (loop tests).
 *
 *  - wait_for_in_a_cancelled_task_cancels_and_reaps_the_awaited_task: a
 *    task cancelled while it is inside weft_wait_for gets -ECANCELED; by
 *    then the awaited task has seen -ECANCELED in its own wait and ended,
 *    its handle is released (join and cancel: -ESRCH), and the request is
 *    used up (a yield afterwards returns 0).
 *  - wait_for_with_a_cancellation_pending_cancels_and_reaps_the_task: the
 *    same with the caller cancelled before the call (the awaited task has
 *    not started yet).
 *  - select_in_a_cancelled_task_is_ecanceled_and_does_nothing: no value
 *    received, none sent, no waiter left behind (free succeeds).
 *  - select_woken_by_a_close_reports_epipe_on_that_operation: a close of
 *    the channel of a receive, then of a send, ends the select with that
 *    operation's index and status -EPIPE; the other operations are not
 *    done.
 *  - select_send_taken_by_a_receiver_in_another_task: the value arrives,
 *    the index returned is the send's, status 0, nothing else is done.
 *  - select_bounds_and_malformed_operations_are_einval: 64 operations
 *    are accepted, 65 are not; a NULL channel or a direction that is
 *    neither send nor receive is -EINVAL, and a ready operation beside it
 *    is not done.
 *  - group_second_waiter_is_ebusy: of two tasks waiting on one group at
 *    once, the later gets -EBUSY at once (while the member still runs),
 *    the other 0 once the member ends; the group is then free.
 *  - group_and_future_null_arguments_are_einval: group_new, group_free,
 *    group_wait(_until), future_free, future_done, future_reject.
 *  - waits_outside_a_task_are_eperm: future_await, gather, wait_for,
 *    select, group_spawn and group_wait(_until), with no runtime and from
 *    a thread that is not a worker while one runs; nothing is done (the
 *    task passed on runs on uncancelled, the value stays in the channel,
 *    the outcome arrays are not written).
 *  - yield_from_an_inner_generator_that_ignores_close_is_eproto: closing
 *    a generator inside yield from closes the inner one; the inner one
 *    yields again while closed, and yield from returns -EPROTO; both
 *    generators have finished.
 *  - yield_from_an_inner_generator_another_task_resumes_is_ebusy: the
 *    inner generator is suspended inside its body in another task; yield
 *    from is refused with -EBUSY and the inner one is untouched (it
 *    finishes normally for its own resumer).
 * Every run ends with a clean shutdown (run_on_workers).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

static unsigned workers_of[] = {1, 2};
#define NWORKERS_OF ((int)(sizeof workers_of / sizeof workers_of[0]))

/* Bound for every wait on another task's progress: far beyond any normal
 * delay, so that it only ends a run that would otherwise hang. */
#define BOUND (30 * WEFT_SEC)

/* Sleeps in small steps until *flag reaches want; false if the bound
 * passed first. */
static bool await_flag(_Atomic int *flag, int want)
{
    uint64_t until = weft_now() + BOUND;
    while (atomic_load(flag) < want) {
        if (weft_now() > until)
            return false;
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    }
    return true;
}

/* Lets a task that announced it is about to wait get into the wait. Not
 * needed for the outcome (a request or a close that lands before the wait
 * gives the same result), only so that the wait is usually the path
 * taken; on one worker it always is: the sleeper runs nothing else. */
static void let_it_wait(void)
{
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
}

/* ---- wait_for in a cancelled task ---------------------------------------------- */

static weft_event *never_set;
static _Atomic int awaited_ends; /* times the awaited task ended */
static _Atomic int awaited_saw;  /* what its wait returned */
static _Atomic int entering;     /* the task under test is about to wait */

/* Waits on an event nobody sets (bounded, so that a lost cancellation
 * fails the test instead of hanging it) and records how the wait ended. */
static void *awaited(void *arg)
{
    (void)arg;
    int err = weft_event_wait_until(never_set, weft_now() + BOUND);
    atomic_store(&awaited_saw, err);
    atomic_fetch_add(&awaited_ends, 1);
    return IPTR(7);
}

static void *waits_for(void *arg)
{
    weft_task *t = arg;
    atomic_store(&entering, 1);
    void *r = NULL;
    int err = weft_wait_for(t, BOUND, &r);
    /* Reaped before the return: it has ended, in its own wait, cancelled. */
    CHECK(atomic_load(&awaited_ends) == 1);
    CHECK(atomic_load(&awaited_saw) == -ECANCELED);
    CHECK(weft_join(t, NULL) == -ESRCH);
    CHECK(weft_cancel(t) == -ESRCH);
    /* One cancellation, delivered once: it was used up by wait_for. */
    CHECK(weft_yield() == 0);
    return IPTR(err);
}

static void reset_awaited(void)
{
    atomic_store(&awaited_ends, 0);
    atomic_store(&awaited_saw, 1);
    atomic_store(&entering, 0);
    ck_assert_int_eq(weft_event_new(&never_set), 0);
}

static void *wait_for_cancelled_main(void *arg)
{
    (void)arg;
    reset_awaited();
    weft_task *t, *w;
    ck_assert_int_eq(weft_spawn(&t, awaited, NULL), 0);
    ck_assert_int_eq(weft_spawn(&w, waits_for, t), 0);
    ck_assert(await_flag(&entering, 1));
    let_it_wait();
    ck_assert_int_eq(weft_cancel(w), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(w, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    ck_assert_int_eq(atomic_load(&awaited_ends), 1);
    ck_assert_int_eq(weft_event_free(never_set), 0); /* nobody waits on it */
    return NULL;
}

START_TEST(wait_for_in_a_cancelled_task_cancels_and_reaps_the_awaited_task)
{
    run_on_workers(workers_of[_i], wait_for_cancelled_main);
}
END_TEST

static void *wait_for_pending_main(void *arg)
{
    (void)arg;
    reset_awaited();
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, awaited, NULL), 0);
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_wait_for(t, BOUND, &r), -ECANCELED);
    ck_assert_int_eq(atomic_load(&awaited_ends), 1);
    ck_assert_int_eq(atomic_load(&awaited_saw), -ECANCELED);
    ck_assert_int_eq(weft_join(t, NULL), -ESRCH);
    ck_assert_int_eq(weft_yield(), 0); /* the request was used up */
    ck_assert_int_eq(weft_event_free(never_set), 0);
    return NULL;
}

START_TEST(wait_for_with_a_cancellation_pending_cancels_and_reaps_the_task)
{
    run_on_workers(workers_of[_i], wait_for_pending_main);
}
END_TEST

/* ---- select ------------------------------------------------------------------- */

/* The operations a selecting task runs, and what came back. */
static struct weft_chan_op sel_ops[4];
static size_t sel_n;

static void *selects(void *arg)
{
    (void)arg;
    atomic_store(&entering, 1);
    return IPTR(weft_chan_select(sel_ops, sel_n, weft_now() + BOUND));
}

#define SENTINEL IPTR(0x5e1)

static void set_op(size_t i, weft_chan *c, enum weft_chan_dir dir, void *value)
{
    sel_ops[i] = (struct weft_chan_op){.chan = c, .dir = dir, .value = value, .status = 1};
}

static void *select_cancelled_main(void *arg)
{
    (void)arg;
    atomic_store(&entering, 0);
    weft_chan *in, *out;
    ck_assert_int_eq(weft_chan_new(&in, 0), 0);
    ck_assert_int_eq(weft_chan_new(&out, 0), 0);
    set_op(0, in, WEFT_CHAN_RECV, SENTINEL);
    set_op(1, out, WEFT_CHAN_SEND, IPTR(5));
    sel_n = 2;
    weft_task *s;
    ck_assert_int_eq(weft_spawn(&s, selects, NULL), 0);
    ck_assert(await_flag(&entering, 1));
    let_it_wait();
    ck_assert_int_eq(weft_cancel(s), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(s, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    /* Nothing was done, and neither operation still waits: no receiver
     * takes a value, no sender offers one, and both channels are free. */
    ck_assert_ptr_eq(sel_ops[0].value, SENTINEL);
    ck_assert_int_eq(sel_ops[0].status, 1);
    ck_assert_int_eq(sel_ops[1].status, 1);
    ck_assert_int_eq(weft_chan_try_send(in, IPTR(1)), -EAGAIN);
    void *v = SENTINEL;
    ck_assert_int_eq(weft_chan_try_recv(out, &v), -EAGAIN);
    ck_assert_ptr_eq(v, SENTINEL);
    ck_assert_int_eq(weft_chan_free(in), 0);
    ck_assert_int_eq(weft_chan_free(out), 0);
    return NULL;
}

START_TEST(select_in_a_cancelled_task_is_ecanceled_and_does_nothing)
{
    run_on_workers(workers_of[_i], select_cancelled_main);
}
END_TEST

/* Round `closed` closes the channel of operation `closed` (1: a receive,
 * 2: a send) of a select over {receive a, receive b, send c}. */
static void select_closed_round(size_t closed)
{
    atomic_store(&entering, 0);
    weft_chan *c[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_chan_new(&c[i], 0), 0);
    set_op(0, c[0], WEFT_CHAN_RECV, SENTINEL);
    set_op(1, c[1], WEFT_CHAN_RECV, SENTINEL);
    set_op(2, c[2], WEFT_CHAN_SEND, IPTR(9));
    sel_n = 3;
    weft_task *s;
    ck_assert_int_eq(weft_spawn(&s, selects, NULL), 0);
    ck_assert(await_flag(&entering, 1));
    let_it_wait();
    ck_assert_int_eq(weft_chan_close(c[closed]), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(s, &r), 0);
    ck_assert_int_eq(PINT(r), (intptr_t)closed);
    ck_assert_int_eq(sel_ops[closed].status, -EPIPE);
    for (size_t i = 0; i < 3; i++)
        if (i != closed)
            ck_assert_int_eq(sel_ops[i].status, 1); /* not done */
    ck_assert_ptr_eq(sel_ops[0].value, SENTINEL);
    ck_assert_int_eq(weft_chan_try_send(c[0], IPTR(1)), -EAGAIN);
    if (closed != 2) {
        void *v = SENTINEL;
        ck_assert_int_eq(weft_chan_try_recv(c[2], &v), -EAGAIN); /* 9 was not sent */
        ck_assert_ptr_eq(v, SENTINEL);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_chan_free(c[i]), 0);
}

static void *select_closed_main(void *arg)
{
    (void)arg;
    select_closed_round(1);
    select_closed_round(2);
    return NULL;
}

START_TEST(select_woken_by_a_close_reports_epipe_on_that_operation)
{
    run_on_workers(workers_of[_i], select_closed_main);
}
END_TEST

static void *select_send_main(void *arg)
{
    (void)arg;
    atomic_store(&entering, 0);
    weft_chan *c[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_chan_new(&c[i], 0), 0);
    set_op(0, c[0], WEFT_CHAN_RECV, SENTINEL);
    set_op(1, c[1], WEFT_CHAN_SEND, IPTR(77));
    set_op(2, c[2], WEFT_CHAN_RECV, SENTINEL);
    sel_n = 3;
    weft_task *s;
    ck_assert_int_eq(weft_spawn(&s, selects, NULL), 0);
    ck_assert(await_flag(&entering, 1));
    let_it_wait();
    void *v = NULL;
    ck_assert_int_eq(weft_chan_recv_until(c[1], &v, weft_now() + BOUND), 0);
    ck_assert_int_eq(PINT(v), 77);
    void *r = NULL;
    ck_assert_int_eq(weft_join(s, &r), 0);
    ck_assert_int_eq(PINT(r), 1);
    ck_assert_int_eq(sel_ops[1].status, 0);
    ck_assert_int_eq(sel_ops[0].status, 1);
    ck_assert_int_eq(sel_ops[2].status, 1);
    ck_assert_ptr_eq(sel_ops[0].value, SENTINEL);
    ck_assert_ptr_eq(sel_ops[2].value, SENTINEL);
    /* The receives left no waiter behind. */
    ck_assert_int_eq(weft_chan_try_send(c[0], IPTR(1)), -EAGAIN);
    ck_assert_int_eq(weft_chan_try_send(c[2], IPTR(1)), -EAGAIN);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_chan_free(c[i]), 0);
    return NULL;
}

START_TEST(select_send_taken_by_a_receiver_in_another_task)
{
    run_on_workers(workers_of[_i], select_send_main);
}
END_TEST

#define SELECT_MAX 64

static void *select_einval_main(void *arg)
{
    (void)arg;
    weft_chan *empty, *full;
    ck_assert_int_eq(weft_chan_new(&empty, 0), 0);
    ck_assert_int_eq(weft_chan_new(&full, 1), 0);
    ck_assert_int_eq(weft_chan_try_send(full, IPTR(42)), 0);
    struct weft_chan_op ops[SELECT_MAX + 1];
    for (size_t i = 0; i < SELECT_MAX + 1; i++)
        ops[i] = (struct weft_chan_op){.chan = empty, .dir = WEFT_CHAN_RECV};
    ops[SELECT_MAX - 1].chan = full;
    /* One too many: refused before anything is done (the last operation
     * counted would be ready). */
    ck_assert_int_eq(weft_chan_select(ops, SELECT_MAX + 1, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_chan_select(ops, (size_t)-1, WEFT_NEVER), -EINVAL);
    /* Exactly the most: accepted, and the ready last one is done. */
    ck_assert_int_eq(weft_chan_select(ops, SELECT_MAX, WEFT_NEVER), SELECT_MAX - 1);
    ck_assert_int_eq(ops[SELECT_MAX - 1].status, 0);
    ck_assert_int_eq(PINT(ops[SELECT_MAX - 1].value), 42);

    /* A ready operation first, a malformed one after it: nothing done. */
    ck_assert_int_eq(weft_chan_try_send(full, IPTR(43)), 0);
    struct weft_chan_op bad[2] = {
        {.chan = full, .dir = WEFT_CHAN_RECV, .value = SENTINEL, .status = 1},
        {.chan = NULL, .dir = WEFT_CHAN_RECV},
    };
    ck_assert_int_eq(weft_chan_select(bad, 2, WEFT_NEVER), -EINVAL);
    bad[1] = (struct weft_chan_op){.chan = empty, .dir = (enum weft_chan_dir)0};
    ck_assert_int_eq(weft_chan_select(bad, 2, WEFT_NEVER), -EINVAL);
    bad[1].dir = (enum weft_chan_dir)(WEFT_CHAN_SEND | WEFT_CHAN_RECV);
    ck_assert_int_eq(weft_chan_select(bad, 2, WEFT_NEVER), -EINVAL);
    ck_assert_ptr_eq(bad[0].value, SENTINEL);
    ck_assert_int_eq(bad[0].status, 1);
    void *v = NULL;
    ck_assert_int_eq(weft_chan_try_recv(full, &v), 0); /* still there */
    ck_assert_int_eq(PINT(v), 43);
    ck_assert_int_eq(weft_chan_free(empty), 0);
    ck_assert_int_eq(weft_chan_free(full), 0);
    return NULL;
}

START_TEST(select_bounds_and_malformed_operations_are_einval)
{
    run_on_workers(workers_of[_i], select_einval_main);
}
END_TEST

/* ---- task groups ------------------------------------------------------------- */

static weft_group *grp;
static weft_event *release_member;
static _Atomic int member_ended;
static _Atomic int waits_returned; /* group_waiter calls that returned */

static void *held_member(void *arg)
{
    (void)arg;
    CHECK(weft_event_wait_until(release_member, weft_now() + BOUND) == 0);
    atomic_store(&member_ended, 1);
    return NULL;
}

static void *group_waiter(void *arg)
{
    (void)arg;
    int err = weft_group_wait_until(grp, weft_now() + BOUND);
    /* -EBUSY comes at once, before the member could end; a real wait only
     * after it. */
    CHECK((err == -EBUSY) == !atomic_load(&member_ended));
    atomic_fetch_add(&waits_returned, 1);
    return IPTR(err);
}

static void *group_busy_main(void *arg)
{
    (void)arg;
    atomic_store(&member_ended, 0);
    atomic_store(&waits_returned, 0);
    ck_assert_int_eq(weft_group_new(&grp), 0);
    ck_assert_int_eq(weft_event_new(&release_member), 0);
    ck_assert_int_eq(weft_group_spawn(grp, held_member, NULL), 0);
    weft_task *w[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(weft_spawn(&w[i], group_waiter, NULL), 0);
    /* Whichever waiter comes second returns -EBUSY while the member is
     * still held; only then is the member let go. */
    ck_assert(await_flag(&waits_returned, 1));
    ck_assert_int_eq(atomic_load(&member_ended), 0);
    ck_assert_int_eq(weft_event_set(release_member), 0);
    int got[2];
    for (int i = 0; i < 2; i++) {
        void *r = NULL;
        ck_assert_int_eq(weft_join(w[i], &r), 0);
        got[i] = (int)PINT(r);
    }
    ck_assert_msg((got[0] == 0 && got[1] == -EBUSY) || (got[0] == -EBUSY && got[1] == 0),
                  "the waiters got %s and %s", weft_err_name(got[0]), weft_err_name(got[1]));
    ck_assert_int_eq(atomic_load(&member_ended), 1);
    ck_assert_int_eq(weft_group_free(grp), 0);
    ck_assert_int_eq(weft_event_free(release_member), 0);
    return NULL;
}

START_TEST(group_second_waiter_is_ebusy)
{
    run_on_workers(workers_of[_i], group_busy_main);
}
END_TEST

static void *group_null_main(void *arg)
{
    (void)arg;
    /* In a task, so that -EPERM cannot come first. */
    ck_assert_int_eq(weft_group_wait(NULL), -EINVAL);
    ck_assert_int_eq(weft_group_wait_until(NULL, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_group_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_group_free(NULL), -EINVAL);
    return NULL;
}

START_TEST(group_and_future_null_arguments_are_einval)
{
    /* Any-thread calls: outside a runtime as well as in a task. */
    ck_assert_int_eq(weft_group_new(NULL), -EINVAL);
    ck_assert_int_eq(weft_group_free(NULL), -EINVAL);
    ck_assert_int_eq(weft_future_free(NULL), -EINVAL);
    ck_assert_int_eq(weft_future_done(NULL), -EINVAL);
    ck_assert_int_eq(weft_future_reject(NULL, -EIO), -EINVAL);
    ck_assert_int_eq(weft_future_reject(NULL, 5), -EINVAL);
    /* A NULL argument is not mistaken for a settled future: a real one
     * still settles once. */
    weft_future *f;
    ck_assert_int_eq(weft_future_new(&f), 0);
    ck_assert_int_eq(weft_future_reject(f, -EIO), 0);
    ck_assert_int_eq(weft_future_done(f), 1);
    ck_assert_int_eq(weft_future_reject(f, -EIO), -EALREADY);
    ck_assert_int_eq(weft_future_free(f), 0);
    run_on_workers(1, group_null_main);
}
END_TEST

/* ---- outside a task ------------------------------------------------------------ */

/* What the calls outside a task work on. */
static struct {
    weft_future *fut;
    weft_task *task;
    weft_chan *chan;
    weft_group *group;
} outside;

/* Makes every call that must be made in a task, from wherever it runs,
 * and checks each is refused with -EPERM and does nothing. Returns the
 * number of calls that were not refused so. */
static void *calls_outside(void *arg)
{
    (void)arg;
    int wrong = 0;
    void *v = SENTINEL;
    wrong += weft_future_await(outside.fut, WEFT_NEVER, &v) != -EPERM;
    wrong += weft_future_await(outside.fut, 0, NULL) != -EPERM;
    wrong += v != SENTINEL;
    weft_task *tasks[1] = {outside.task};
    void *results[1] = {SENTINEL};
    int errors[1] = {12345};
    wrong += weft_gather(tasks, 1, results, errors) != -EPERM;
    wrong += weft_gather_until(tasks, 1, 0, results, errors) != -EPERM;
    wrong += results[0] != SENTINEL || errors[0] != 12345;
    void *r = SENTINEL;
    wrong += weft_wait_for(outside.task, 0, &r) != -EPERM;
    wrong += r != SENTINEL;
    struct weft_chan_op op = {.chan = outside.chan, .dir = WEFT_CHAN_RECV, .status = 1};
    wrong += weft_chan_select(&op, 1, WEFT_NEVER) != -EPERM;
    wrong += op.status != 1;
    wrong += weft_group_spawn(outside.group, util_nothing, NULL) != -EPERM;
    wrong += weft_group_wait(outside.group) != -EPERM;
    wrong += weft_group_wait_until(outside.group, 0) != -EPERM;
    return IPTR(wrong);
}

/* The task the calls name: sleeps, and says whether that was cancelled
 * (a wait_for made outside a task must not cancel it). */
static void *sleeps_briefly(void *arg)
{
    (void)arg;
    return IPTR(weft_sleep(2 * WEFT_MSEC));
}

static void *outside_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_future_new(&outside.fut), 0);
    ck_assert_int_eq(weft_chan_new(&outside.chan, 1), 0);
    ck_assert_int_eq(weft_chan_try_send(outside.chan, IPTR(3)), 0);
    ck_assert_int_eq(weft_group_new(&outside.group), 0);
    ck_assert_int_eq(weft_spawn(&outside.task, sleeps_briefly, NULL), 0);
    /* A thread that is not a worker, while the runtime runs. It blocks
     * this worker while it runs, which is fine: it needs no task. */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, calls_outside, NULL), 0);
    void *wrong = IPTR(-1);
    ck_assert_int_eq(pthread_join(th, &wrong), 0);
    ck_assert_int_eq(PINT(wrong), 0);
    /* Nothing was done: the task ran on uncancelled and its handle is
     * still good, the value is still in the channel, the future pending
     * with no waiter, the group empty. */
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_join(outside.task, &r), 0);
    ck_assert_int_eq(PINT(r), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_chan_try_recv(outside.chan, &v), 0);
    ck_assert_int_eq(PINT(v), 3);
    ck_assert_int_eq(weft_future_done(outside.fut), 0);
    ck_assert_int_eq(weft_future_free(outside.fut), 0);
    ck_assert_int_eq(weft_chan_free(outside.chan), 0);
    ck_assert_int_eq(weft_group_wait(outside.group), 0);
    ck_assert_int_eq(weft_group_free(outside.group), 0);
    return NULL;
}

START_TEST(waits_outside_a_task_are_eperm)
{
    /* With no runtime at all: the objects are any-thread; the handle names
     * no task (never looked at: the task check comes first). */
    ck_assert_int_eq(weft_future_new(&outside.fut), 0);
    ck_assert_int_eq(weft_chan_new(&outside.chan, 1), 0);
    ck_assert_int_eq(weft_chan_try_send(outside.chan, IPTR(3)), 0);
    ck_assert_int_eq(weft_group_new(&outside.group), 0);
    outside.task = (weft_task *)(uintptr_t)0x1001;
    ck_assert_int_eq(PINT(calls_outside(NULL)), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_chan_try_recv(outside.chan, &v), 0);
    ck_assert_int_eq(PINT(v), 3);
    ck_assert_int_eq(weft_future_free(outside.fut), 0);
    ck_assert_int_eq(weft_chan_free(outside.chan), 0);
    ck_assert_int_eq(weft_group_free(outside.group), 0);
    /* From a thread beside a running runtime. */
    run_on_workers(workers_of[_i], outside_main);
}
END_TEST

/* ---- yield from ---------------------------------------------------------------- */

static _Atomic int inner_yields_in_close; /* yields the inner body made while closing */

/* Yields 1; when closed, yields again (Python's "ignored GeneratorExit"),
 * which returns -EPIPE at once, then returns. */
static void *ignores_close(weft_gen *self, void *arg)
{
    (void)arg;
    int err = weft_gen_yield(self, IPTR(1), NULL);
    if (err == -EPIPE && weft_gen_closing(self)) {
        atomic_fetch_add(&inner_yields_in_close, 1);
        CHECK(weft_gen_yield(self, IPTR(2), NULL) == -EPIPE);
    }
    return NULL;
}

static _Atomic int outer_saw;

static void *delegates(weft_gen *self, void *arg)
{
    atomic_store(&outer_saw, weft_gen_yield_from(self, arg, NULL));
    return NULL;
}

static void *eproto_main(void *arg)
{
    (void)arg;
    atomic_store(&inner_yields_in_close, 0);
    atomic_store(&outer_saw, 1);
    weft_gen *inner, *outer;
    ck_assert_int_eq(weft_gen_new(&inner, ignores_close, NULL), 0);
    ck_assert_int_eq(weft_gen_new(&outer, delegates, inner), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_gen_next(outer, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    /* The outer body did not yield while closing: its own close is 0. */
    ck_assert_int_eq(weft_gen_close(outer), 0);
    ck_assert_int_eq(atomic_load(&inner_yields_in_close), 1);
    ck_assert_int_eq(atomic_load(&outer_saw), -EPROTO);
    ck_assert(weft_gen_closing(inner));
    ck_assert_int_eq(weft_gen_next(inner, &v), -EPIPE);
    ck_assert_int_eq(weft_gen_next(outer, &v), -EPIPE);
    weft_gen_free(inner);
    weft_gen_free(outer);
    return NULL;
}

START_TEST(yield_from_an_inner_generator_that_ignores_close_is_eproto)
{
    run_on_workers(workers_of[_i], eproto_main);
}
END_TEST

static weft_event *inner_go;

/* Suspends its resuming task inside the body until inner_go is set, then
 * yields 1 and returns 2. */
static void *waits_in_body(weft_gen *self, void *arg)
{
    (void)arg;
    atomic_store(&entering, 1);
    CHECK(weft_event_wait_until(inner_go, weft_now() + BOUND) == 0);
    CHECK(weft_gen_yield(self, IPTR(1), NULL) == 0);
    return IPTR(2);
}

static void *resumes_inner(void *arg)
{
    void *v = NULL;
    int first = weft_gen_next(arg, &v);
    CHECK(first == 0 && PINT(v) == 1);
    int second = weft_gen_next(arg, &v);
    CHECK(second == WEFT_GEN_DONE && PINT(v) == 2);
    return NULL;
}

static void *ebusy_main(void *arg)
{
    (void)arg;
    atomic_store(&entering, 0);
    atomic_store(&outer_saw, 1);
    weft_gen *inner, *outer;
    ck_assert_int_eq(weft_event_new(&inner_go), 0);
    ck_assert_int_eq(weft_gen_new(&inner, waits_in_body, NULL), 0);
    ck_assert_int_eq(weft_gen_new(&outer, delegates, inner), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, resumes_inner, inner), 0);
    /* t is inside inner's body, suspended there until inner_go is set. */
    ck_assert(await_flag(&entering, 1));
    void *v = NULL;
    ck_assert_int_eq(weft_gen_next(outer, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(atomic_load(&outer_saw), -EBUSY);
    /* The refusal left inner alone: its resumer finishes it. */
    ck_assert_int_eq(weft_event_set(inner_go), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_gen_next(inner, &v), -EPIPE);
    weft_gen_free(inner);
    weft_gen_free(outer);
    ck_assert_int_eq(weft_event_free(inner_go), 0);
    return NULL;
}

START_TEST(yield_from_an_inner_generator_another_task_resumes_is_ebusy)
{
    run_on_workers(workers_of[_i], ebusy_main);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api_errors");
    TCase *tc = tcase_create("api_errors");
    tcase_set_timeout(tc, 120);
    int n = NWORKERS_OF;
    tcase_add_loop_test(tc, wait_for_in_a_cancelled_task_cancels_and_reaps_the_awaited_task, 0,
                        n);
    tcase_add_loop_test(tc, wait_for_with_a_cancellation_pending_cancels_and_reaps_the_task, 0,
                        n);
    tcase_add_loop_test(tc, select_in_a_cancelled_task_is_ecanceled_and_does_nothing, 0, n);
    tcase_add_loop_test(tc, select_woken_by_a_close_reports_epipe_on_that_operation, 0, n);
    tcase_add_loop_test(tc, select_send_taken_by_a_receiver_in_another_task, 0, n);
    tcase_add_loop_test(tc, select_bounds_and_malformed_operations_are_einval, 0, n);
    tcase_add_loop_test(tc, group_second_waiter_is_ebusy, 0, n);
    tcase_add_test(tc, group_and_future_null_arguments_are_einval);
    tcase_add_loop_test(tc, waits_outside_a_task_are_eperm, 0, n);
    tcase_add_loop_test(tc, yield_from_an_inner_generator_that_ignores_close_is_eproto, 0, n);
    tcase_add_loop_test(tc, yield_from_an_inner_generator_another_task_resumes_is_ebusy, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
