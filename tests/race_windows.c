/*
 * Suite "race_windows": interleavings that only a preemption at one exact
 * instruction produces, made to happen. Built only with WEFT_RACE_HOOKS
 * (runtime/race.h): each test widens one marked window to a few hundred
 * milliseconds and arranges, with threads and sleeps far shorter than that,
 * for the other party to act inside it. Each once broke the runtime:
 *
 *  - inline_join_never_reruns_a_started_task (INLINE_TAKE): a join about to
 *    run its child inline finds it at the head of the injection queue; but
 *    meanwhile the child started on the other worker, blocked on a future,
 *    and was woken from a plain thread, which queued it there again. The
 *    join must not run it a second time.
 *  - late_finisher_wakes_only_its_own_join (FINISH): the finisher of t
 *    stalls while the joiner's wait is cancelled; the joiner reaps t and
 *    joins a new task in the same slot. The stalled finisher must not end
 *    that new join.
 *  - late_publish_counts_nothing_twice (PUBLISH): a joiner is cancelled
 *    while the commit of its join stalls before publishing its claim; it
 *    resumes and gives the claim up, and t finishes. The result is counted
 *    unreleased once, and released by the next join.
 *  - deadline_armed_while_the_poller_reads_the_heaps (POLL_UNTIL): the
 *    idle worker, about to poll, has read every timer heap and not yet
 *    said until when it will sleep; meanwhile a task on the busy worker
 *    arms a deadline. The poller must wake for it: the busy worker stays
 *    busy with one task and fires nothing itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sched.h>

#include "task.h"
#include "util.h"

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- INLINE_TAKE ------------------------------------------------------- */

static _Atomic int entries, busy_started;
static _Atomic(weft_task *) target_handle;
static weft_future *fut;

static void spin_ms(int ms)
{
    uint64_t end = weft_now() + (uint64_t)ms * WEFT_MSEC;
    while (weft_now() < end) {
    }
}

static void *spinner(void *arg)
{
    atomic_store(&busy_started, 1);
    spin_ms((int)PINT(arg));
    return NULL;
}

static void *target(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&entries, 1) == 0) {
        /* Keep this worker busy once blocked, so that the wake-up from the
         * plain thread stays at the head of the injection queue. */
        weft_task *c;
        CHECK(weft_spawn(&c, spinner, IPTR(400)) == 0);
        CHECK(weft_detach(c) == 0);
        CHECK(weft_future_await(fut, WEFT_NEVER, NULL) == 0);
    }
    return IPTR(7);
}

static void *spawn_from_outside(void *arg)
{
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(&t, target, NULL) == 0); /* not a worker: injected */
    atomic_store(&target_handle, t);
    while (atomic_load(&entries) == 0)
        nap_us(100);
    nap_us(20000);
    CHECK(weft_future_resolve(fut, NULL) == 0); /* injected again, READY */
    return NULL;
}

static void *inline_take_main(void *arg)
{
    (void)arg;
    atomic_store(&entries, 0);
    atomic_store(&busy_started, 0);
    atomic_store(&target_handle, NULL);
    ck_assert_int_eq(weft_future_new(&fut), 0);
    weft_task *b;
    ck_assert_int_eq(weft_spawn(&b, spinner, IPTR(50)), 0);
    ck_assert_int_eq(weft_detach(b), 0);
    while (!atomic_load(&busy_started)) { /* the other worker took b */
    }
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, spawn_from_outside, NULL), 0);
    weft_task *t;
    while (!(t = atomic_load(&target_handle))) {
    }
    void *r = NULL;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), 7);
    ck_assert_int_eq(atomic_load(&entries), 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(weft_future_free(fut), 0);
    return NULL;
}

START_TEST(inline_join_never_reruns_a_started_task)
{
    setenv("WEFT_RACE_INLINE_TAKE_US", "150000", 1);
    run_on_workers(2, inline_take_main);
}
END_TEST

/* ---- FINISH -------------------------------------------------------------- */

static _Atomic int t_finishing, n_done;
static weft_task *main_handle;

static void *finishing(void *arg)
{
    (void)arg;
    /* White-box: finish only once the main task's join has claimed this
     * task, or the join could find it done and never wait. */
    int err;
    struct weft__task *self = weft__task_lookup(weft_self(), &err);
    CHECK(self != NULL);
    while (self && atomic_load(&self->join) == 0)
        sched_yield();
    atomic_store(&t_finishing, 1);
    return IPTR(1);
}

static void *long_sleeper(void *arg)
{
    (void)arg;
    int err = weft_sleep(1 * WEFT_SEC);
    atomic_store(&n_done, 1);
    return IPTR(err == 0 ? 2 : 3);
}

static void *cancel_main_later(void *arg)
{
    (void)arg;
    while (!atomic_load(&t_finishing))
        nap_us(100);
    nap_us(50000); /* the finisher stalls between its exchange and its wake */
    CHECK(weft_cancel(main_handle) == 0);
    return NULL;
}

static void *finish_main(void *arg)
{
    (void)arg;
    atomic_store(&t_finishing, 0);
    atomic_store(&n_done, 0);
    main_handle = weft_self();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_main_later, NULL), 0);
    weft_task *t, *n;
    ck_assert_int_eq(weft_spawn(&t, finishing, NULL), 0);
    /* A deadline keeps the join off the inline path. */
    void *r = NULL;
    int err = weft_join_until(t, weft_now() + 10 * WEFT_SEC, &r);
    ck_assert_int_eq(err, -ECANCELED);
    ck_assert_int_eq(weft_join(t, &r), 0); /* t is done: reaped, slot freed */
    ck_assert_int_eq(PINT(r), 1);
    ck_assert_int_eq(weft_spawn(&n, long_sleeper, NULL), 0); /* the same slot */
    ck_assert_int_eq(weft_join_until(n, weft_now() + 10 * WEFT_SEC, &r), 0);
    ck_assert_int_eq(atomic_load(&n_done), 1); /* not woken early */
    ck_assert_int_eq(PINT(r), 2);
    pthread_join(th, NULL);
    return NULL;
}

START_TEST(late_finisher_wakes_only_its_own_join)
{
    setenv("WEFT_RACE_FINISH_US", "300000", 1);
    run_on_workers(2, finish_main);
}
END_TEST

/* ---- PUBLISH ----------------------------------------------------------- */

static _Atomic int joining;

static void *await_fut(void *arg)
{
    (void)arg;
    CHECK(weft_future_await(fut, WEFT_NEVER, NULL) == 0);
    return NULL;
}

static void *cancel_then_resolve(void *arg)
{
    (void)arg;
    while (!atomic_load(&joining))
        nap_us(100);
    nap_us(50000); /* the joiner's commit stalls before it publishes */
    CHECK(weft_cancel(main_handle) == 0);
    nap_us(50000);
    CHECK(weft_future_resolve(fut, NULL) == 0); /* t finishes */
    return NULL;
}

static void *publish_main(void *arg)
{
    (void)arg;
    atomic_store(&joining, 0);
    main_handle = weft_self();
    ck_assert_int_eq(weft_future_new(&fut), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, cancel_then_resolve, NULL), 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, await_fut, NULL), 0);
    ck_assert_int_eq(weft_sleep(10 * WEFT_MSEC), 0); /* t starts and blocks */
    atomic_store(&joining, 1);
    ck_assert_int_eq(weft_join_until(t, weft_now() + 10 * WEFT_SEC, NULL), -ECANCELED);
    ck_assert_int_eq(weft_sleep(600 * WEFT_MSEC), 0); /* everything late has run */
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_unreleased, 1); /* t's result, once */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(weft_future_free(fut), 0);
    return NULL;
}

START_TEST(late_publish_counts_nothing_twice)
{
    setenv("WEFT_RACE_PUBLISH_US", "300000", 1);
    run_on_workers(2, publish_main);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
}
END_TEST

/* ---- POLL_UNTIL ---------------------------------------------------------- */

static _Atomic int hog_waiting, main_back_up;
static weft_future *go;

/* Waits for main's word, then keeps its worker busy without a single
 * scheduling decision until main is back from its sleep (2 s at most). */
static void *hog(void *arg)
{
    (void)arg;
    atomic_store(&hog_waiting, 1);
    CHECK(weft_future_await(go, WEFT_NEVER, NULL) == 0);
    uint64_t give_up = weft_now() + 2 * WEFT_SEC;
    while (!atomic_load(&main_back_up) && weft_now() < give_up)
        CHECK(weft_checkpoint() == 0);
    return IPTR(atomic_load(&main_back_up));
}

static void *poll_until_main(void *arg)
{
    (void)arg;
    atomic_store(&hog_waiting, 0);
    atomic_store(&main_back_up, 0);
    ck_assert_int_eq(weft_future_new(&go), 0);
    weft_task *h;
    ck_assert_int_eq(weft_spawn(&h, hog, NULL), 0);
    while (!atomic_load(&hog_waiting)) { /* the other worker took it */
    }
    /* The other worker parks as the poller: it reads the heaps (none has
     * a deadline) and stalls before it publishes its sleep. */
    spin_ms(50);
    /* The hog is woken into this worker's next slot (no worker is woken
     * for it) and runs here once main sleeps, whose deadline goes into
     * this worker's heap in that switch's commit. */
    ck_assert_int_eq(weft_future_resolve(go, NULL), 0);
    ck_assert_int_eq(weft_sleep(5 * WEFT_MSEC), 0);
    atomic_store(&main_back_up, 1);
    void *r = NULL;
    ck_assert_int_eq(weft_join(h, &r), 0);
    ck_assert_int_eq(PINT(r), 1); /* main came back while the hog ran */
    ck_assert_int_eq(weft_future_free(go), 0);
    return NULL;
}

START_TEST(deadline_armed_while_the_poller_reads_the_heaps)
{
    setenv("WEFT_RACE_POLL_UNTIL_US", "300000", 1);
    run_on_workers(2, poll_until_main);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("race_windows");
    TCase *tc = tcase_create("race_windows");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, inline_join_never_reruns_a_started_task);
    tcase_add_test(tc, late_finisher_wakes_only_its_own_join);
    tcase_add_test(tc, late_publish_counts_nothing_twice);
    tcase_add_test(tc, deadline_armed_while_the_poller_reads_the_heaps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
