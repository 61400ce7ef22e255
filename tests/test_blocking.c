/*
 * Suite "blocking": the blocking-call pool (weft_blocking,
 * weft_blocking_until), each test on 1 and 2 workers (loop tests),
 * counted, never timed. White-box only where it reads the pool's thread
 * count and shortens its idle timeout.
 *
 *  - blocking_returns_the_result: both calls hand fn's result back; the
 *    counters and the WEFT_STATS line count the calls, and the waits are
 *    accounted as I/O time.
 *  - blocking_pool_never_exceeds_its_limit: 200 tasks call at once with
 *    a limit of 4 threads; every call returns its own result, at most 4
 *    fns ever run at once, and the pool's peak is at most 4.
 *  - blocking_call_leaves_the_worker_free: fn waits for a semaphore that
 *    only a task posts; it is posted, so the worker ran that task while
 *    the call blocked.
 *  - blocking_until_times_out_and_drops_once: -ETIMEDOUT while fn blocks;
 *    once fn returns, drop runs once with the call's arg and fn's result;
 *    a deadline already past also gives -ETIMEDOUT, and fn still runs
 *    and drop follows.
 *  - blocking_until_cancelled_drops: a cancellation during the wait, and
 *    one pending before the call, give -ECANCELED; fn runs once and drop
 *    follows, each time.
 *  - blocking_ignores_cancellation_until_it_returns: a task cancelled
 *    during weft_blocking gets fn's result, and its next weft_yield
 *    returns -ECANCELED.
 *  - blocking_errors: -EPERM outside a task and from inside fn (a pool
 *    thread), -EINVAL for a NULL fn.
 *  - blocking_leaves_the_token_free: GIL mode: a task computing with
 *    checkpoints makes progress while another task's call blocks (fn
 *    waits for that progress).
 *  - idle_pool_threads_leave_and_come_back: with a short idle timeout the
 *    threads leave, later calls start new ones (which join the old), and
 *    none is left after weft_run.
 *  - teardown_waits_for_abandoned_calls: the main task returns while an
 *    abandoned call still runs; weft_run returns after fn and drop did,
 *    with no pool thread left.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <time.h>

#include "blocking.h"
#include "runtime.h"
#include "util.h"

static unsigned workers_of[] = {1, 2};

/* Runs fn as the main task with `workers` workers, the mode and the pool
 * limit given, and asserts what run_on_workers does. */
static void run_cfg(unsigned workers, enum weft_mode mode, unsigned limit, weft_fn fn)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers;
    cfg.mode = mode;
    cfg.blocking_threads = limit;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, fn, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}

/* Waits on s for at most 30 s (a failing test ends instead of hanging);
 * returns 0 or -ETIMEDOUT. Any thread. */
static int sem_wait_30s(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    while (sem_timedwait(s, &ts) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Sleeps the calling task until *flag is set (30 s at most). */
static void await_flag(_Atomic int *flag)
{
    for (int i = 0; i < 30000 && !atomic_load(flag); i++)
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    ck_assert_int_ne(atomic_load(flag), 0);
}

/* ---- results ---------------------------------------------------------- */

static void *plus_one(void *arg)
{
    return IPTR(PINT(arg) + 1);
}

static _Atomic int drops;

static void count_drop(void *arg, void *result)
{
    (void)arg, (void)result;
    atomic_fetch_add(&drops, 1);
}

static void *results_main(void *arg)
{
    (void)arg;
    void *r = NULL;
    ck_assert_int_eq(weft_blocking(plus_one, IPTR(41), &r), 0);
    ck_assert_int_eq(PINT(r), 42);
    r = NULL;
    ck_assert_int_eq(weft_blocking_until(plus_one, IPTR(6), count_drop, WEFT_NEVER, &r), 0);
    ck_assert_int_eq(PINT(r), 7);
    ck_assert_int_eq(weft_blocking_until(plus_one, IPTR(1), count_drop,
                                         weft_now() + 30 * WEFT_SEC, NULL), 0);
    ck_assert_int_eq(weft_blocking(plus_one, NULL, NULL), 0);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, 4); /* counted before the caller resumes */
    ck_assert_uint_ge(s.blocking_threads_peak, 1);
    return NULL;
}

START_TEST(blocking_returns_the_result)
{
    atomic_store(&drops, 0);
    run_on_workers(workers_of[_i], results_main);
    ck_assert_int_eq(atomic_load(&drops), 0); /* on 0, drop is not called */
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, 4);

    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    cfg.stats = 1;
    cfg.blocking_threads = 3;
    start_capture();
    int err = weft_run(&cfg, results_main, NULL, NULL);
    const char *out = stop_capture();
    ck_assert_int_eq(err, 0);
    ck_assert_ptr_nonnull(strstr(out, "weft: blocking pool: 4 calls, at most "));
    ck_assert_ptr_nonnull(strstr(out, " of 3 threads alive\n"));
    /* The waits went into the I/O bucket of the time accounting. */
    struct weft_times tm;
    ck_assert_int_eq(weft_times_get(&tm), 0);
    ck_assert_int_eq(tm.enabled, 1);
    ck_assert_uint_gt(tm.io_ns, 0);
}
END_TEST

/* ---- the limit -------------------------------------------------------- */

#define NCALLERS 200
#define LIMIT 4

static _Atomic int running_fns, most_fns;

static void *counted_fn(void *arg)
{
    int now = atomic_fetch_add(&running_fns, 1) + 1;
    int seen = atomic_load(&most_fns);
    while (now > seen && !atomic_compare_exchange_weak(&most_fns, &seen, now)) {
    }
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&running_fns, 1);
    return IPTR(PINT(arg) * 3);
}

static void *caller(void *arg)
{
    void *r = NULL;
    CHECK(weft_blocking(counted_fn, arg, &r) == 0);
    CHECK(PINT(r) == PINT(arg) * 3);
    return NULL;
}

static void *limit_main(void *arg)
{
    (void)arg;
    weft_task *t[NCALLERS];
    for (intptr_t i = 0; i < NCALLERS; i++)
        ck_assert_int_eq(weft_spawn(&t[i], caller, IPTR(i)), 0);
    for (int i = 0; i < NCALLERS; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    ck_assert_uint_le(weft__blocking_threads(&weft__rt->blocking), LIMIT);
    return NULL;
}

START_TEST(blocking_pool_never_exceeds_its_limit)
{
    atomic_store(&running_fns, 0);
    atomic_store(&most_fns, 0);
    run_cfg(workers_of[_i], WEFT_PARALLEL, LIMIT, limit_main);
    ck_assert_int_ge(atomic_load(&most_fns), 1);
    ck_assert_int_le(atomic_load(&most_fns), LIMIT);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, NCALLERS);
    ck_assert_uint_ge(s.blocking_threads_peak, 1);
    ck_assert_uint_le(s.blocking_threads_peak, LIMIT);
}
END_TEST

/* ---- the worker goes on ------------------------------------------------ */

static sem_t sem;
static _Atomic int fn_started, fn_returned;

/* Blocks its thread until `sem` is posted; returns arg. */
static void *wait_sem(void *arg)
{
    atomic_store(&fn_started, 1);
    int err = sem_wait_30s(&sem);
    CHECK(err == 0);
    atomic_store(&fn_returned, 1);
    return arg;
}

static void *blocked_caller(void *arg)
{
    void *r = NULL;
    CHECK(weft_blocking(wait_sem, arg, &r) == 0);
    CHECK(r == arg);
    return r;
}

/* Yields until fn has started (on 1 worker it runs only because the
 * caller's wait left the worker free), then posts. Bounded: 30 s or 100
 * million yields; fn not started by then fails the test, and the post
 * still lets it return. */
static void *poster(void *arg)
{
    (void)arg;
    uint64_t end = weft_now() + 30 * WEFT_SEC;
    for (long i = 0; i < 100000000 && !atomic_load(&fn_started) && weft_now() < end; i++)
        CHECK(weft_yield() == 0);
    CHECK(atomic_load(&fn_started));
    CHECK(sem_post(&sem) == 0);
    return NULL;
}

static void *worker_free_main(void *arg)
{
    (void)arg;
    weft_task *c, *p;
    ck_assert_int_eq(weft_spawn(&c, blocked_caller, IPTR(5)), 0);
    ck_assert_int_eq(weft_spawn(&p, poster, NULL), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(c, &r), 0);
    ck_assert_int_eq(PINT(r), 5);
    ck_assert_int_eq(weft_join(p, NULL), 0);
    return NULL;
}

START_TEST(blocking_call_leaves_the_worker_free)
{
    ck_assert_int_eq(sem_init(&sem, 0, 0), 0);
    atomic_store(&fn_started, 0);
    run_on_workers(workers_of[_i], worker_free_main);
    ck_assert_int_eq(atomic_load(&fn_returned), 1);
    sem_destroy(&sem);
}
END_TEST

/* ---- abandoned calls -------------------------------------------------- */

/* What a drop saw: the arg and result of every call, and whether fn had
 * returned by then. drop resolves `dropped` so that a task can await it. */
static struct {
    _Atomic int n;
    void *arg, *result;
    int after_fn;
} seen_drop;
static weft_future *dropped;

static void record_drop(void *arg, void *result)
{
    seen_drop.arg = arg;
    seen_drop.result = result;
    seen_drop.after_fn = atomic_load(&fn_returned);
    if (atomic_fetch_add(&seen_drop.n, 1) == 0)
        CHECK(weft_future_resolve(dropped, NULL) == 0);
}

static void reset_drop(void)
{
    atomic_store(&seen_drop.n, 0);
    seen_drop.arg = seen_drop.result = NULL;
    seen_drop.after_fn = 0;
    atomic_store(&fn_started, 0);
    atomic_store(&fn_returned, 0);
}

/* Posts sem (fn returns), then awaits drop and checks what it saw. */
static void release_and_await_drop(void *arg)
{
    ck_assert_int_eq(sem_post(&sem), 0);
    ck_assert_int_eq(weft_future_await(dropped, weft_now() + 30 * WEFT_SEC, NULL), 0);
    ck_assert_int_eq(atomic_load(&seen_drop.n), 1);
    ck_assert_ptr_eq(seen_drop.arg, arg);
    ck_assert_ptr_eq(seen_drop.result, arg); /* wait_sem returns its arg */
    ck_assert_int_eq(seen_drop.after_fn, 1);
    ck_assert_int_eq(weft_future_free(dropped), 0);
}

static void *timeout_main(void *arg)
{
    (void)arg;
    static int token;
    ck_assert_int_eq(weft_future_new(&dropped), 0);
    reset_drop();
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_blocking_until(wait_sem, &token, record_drop, weft_now() + WEFT_MSEC, &r),
                     -ETIMEDOUT);
    ck_assert_ptr_eq(r, IPTR(-1)); /* untouched */
    release_and_await_drop(&token);

    /* A deadline already past: -ETIMEDOUT at once, fn runs all the same. */
    ck_assert_int_eq(weft_future_new(&dropped), 0);
    reset_drop();
    ck_assert_int_eq(weft_blocking_until(wait_sem, &token, record_drop, 1, &r), -ETIMEDOUT);
    release_and_await_drop(&token);
    return NULL;
}

START_TEST(blocking_until_times_out_and_drops_once)
{
    ck_assert_int_eq(sem_init(&sem, 0, 0), 0);
    run_on_workers(workers_of[_i], timeout_main);
    ck_assert_int_eq(atomic_load(&seen_drop.n), 1); /* and not again at teardown */
    sem_destroy(&sem);
}
END_TEST

static void *until_caller(void *arg)
{
    return IPTR(weft_blocking_until(wait_sem, arg, record_drop, WEFT_NEVER, NULL));
}

static void *cancel_until_main(void *arg)
{
    (void)arg;
    static int token;
    ck_assert_int_eq(weft_future_new(&dropped), 0);
    reset_drop();
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, until_caller, &token), 0);
    await_flag(&fn_started);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    release_and_await_drop(&token);

    /* Cancelled before the call (it may not have started yet, or be
     * waiting already): -ECANCELED either way, fn runs, drop follows. */
    ck_assert_int_eq(weft_future_new(&dropped), 0);
    reset_drop();
    ck_assert_int_eq(weft_spawn(&t, until_caller, &token), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    release_and_await_drop(&token);
    return NULL;
}

START_TEST(blocking_until_cancelled_drops)
{
    ck_assert_int_eq(sem_init(&sem, 0, 0), 0);
    run_on_workers(workers_of[_i], cancel_until_main);
    ck_assert_int_eq(atomic_load(&seen_drop.n), 1);
    sem_destroy(&sem);
}
END_TEST

struct nocancel_out {
    int err, next;
    void *r;
};

static void *nocancel_caller(void *arg)
{
    struct nocancel_out *o = arg;
    o->err = weft_blocking(wait_sem, IPTR(9), &o->r);
    o->next = weft_yield();
    return NULL;
}

static void *nocancel_main(void *arg)
{
    (void)arg;
    struct nocancel_out o = {1, 1, NULL};
    atomic_store(&fn_started, 0);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, nocancel_caller, &o), 0);
    await_flag(&fn_started);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(sem_post(&sem), 0); /* fn returns only after the cancel */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(o.err, 0);
    ck_assert_int_eq(PINT(o.r), 9);
    ck_assert_int_eq(o.next, -ECANCELED);
    return NULL;
}

START_TEST(blocking_ignores_cancellation_until_it_returns)
{
    ck_assert_int_eq(sem_init(&sem, 0, 0), 0);
    run_on_workers(workers_of[_i], nocancel_main);
    sem_destroy(&sem);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

/* Run on a pool thread: not a task. */
static void *nested_call(void *arg)
{
    (void)arg;
    int a = weft_blocking(plus_one, NULL, NULL);
    int b = weft_blocking_until(plus_one, NULL, NULL, WEFT_NEVER, NULL);
    return IPTR(a == -EPERM && b == -EPERM);
}

static void *errors_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_blocking(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_blocking_until(NULL, NULL, count_drop, WEFT_NEVER, NULL), -EINVAL);
    void *r = NULL;
    ck_assert_int_eq(weft_blocking(nested_call, NULL, &r), 0);
    ck_assert_int_eq(PINT(r), 1);
    return NULL;
}

START_TEST(blocking_errors)
{
    ck_assert_int_eq(weft_blocking(plus_one, NULL, NULL), -EPERM);
    ck_assert_int_eq(weft_blocking_until(plus_one, NULL, NULL, WEFT_NEVER, NULL), -EPERM);
    atomic_store(&drops, 0);
    run_on_workers(workers_of[_i], errors_main);
    ck_assert_int_eq(atomic_load(&drops), 0);
}
END_TEST

/* ---- GIL mode --------------------------------------------------------- */

#define STEPS_WHILE_BLOCKED 1000

static _Atomic uint64_t progress;

/* Blocks its thread until the computing task has made progress. */
static void *wait_progress(void *arg)
{
    (void)arg;
    uint64_t from = atomic_load(&progress);
    atomic_store(&fn_started, 1);
    struct timespec ts = {0, 100 * 1000};
    for (int i = 0; i < 300000 && atomic_load(&progress) < from + STEPS_WHILE_BLOCKED; i++)
        nanosleep(&ts, NULL);
    int ok = atomic_load(&progress) >= from + STEPS_WHILE_BLOCKED;
    atomic_store(&fn_returned, 1);
    return IPTR(ok);
}

/* Computes, with a checkpoint per step, until wait_progress has returned.
 * Bounded: 60 s or 100 million steps (wait_progress itself gives up after
 * about 30 s); stopping for the bound fails the test. */
static void *computer(void *arg)
{
    (void)arg;
    uint64_t x = 1, end = weft_now() + 60 * WEFT_SEC;
    for (long k = 0; k < 100000000 && !atomic_load(&fn_returned) && weft_now() < end; k++) {
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        atomic_fetch_add(&progress, 1);
        CHECK(weft_checkpoint() == 0);
    }
    CHECK(atomic_load(&fn_returned));
    return IPTR(x & 1);
}

static void *gil_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, computer, NULL), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_blocking(wait_progress, NULL, &r), 0);
    ck_assert_int_eq(PINT(r), 1);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(blocking_leaves_the_token_free)
{
    atomic_store(&progress, 0);
    atomic_store(&fn_started, 0);
    atomic_store(&fn_returned, 0);
    run_cfg(workers_of[_i], WEFT_GIL, 0, gil_main);
}
END_TEST

/* ---- the pool's threads ----------------------------------------------- */

static void *idle_main(void *arg)
{
    (void)arg;
    struct weft__blocking *p = &weft__rt->blocking;
    for (int round = 0; round < 3; round++) {
        weft_task *t[8];
        for (intptr_t i = 0; i < 8; i++)
            ck_assert_int_eq(weft_spawn(&t[i], caller, IPTR(i)), 0);
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(weft_join(t[i], NULL), 0);
        /* Idle for longer than the timeout: every thread leaves (the
         * next round's calls need new ones). */
        for (int i = 0; i < 30000 && weft__blocking_threads(p) > 0; i++)
            ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
        ck_assert_uint_eq(weft__blocking_threads(p), 0);
    }
    return NULL;
}

START_TEST(idle_pool_threads_leave_and_come_back)
{
    weft__blocking_idle_ns = 5 * WEFT_MSEC;
    unsigned before = count_threads();
    run_cfg(workers_of[_i], WEFT_PARALLEL, LIMIT, idle_main);
    ck_assert_uint_eq(count_threads(), before);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, 24);
}
END_TEST

static _Atomic int main_returning;

/* Returns only once the main task is about to return (so its caller has
 * given up for sure), and then some 20 ms later, so that it is usually
 * still running when the run ends. */
static void *slow_plus_one(void *arg)
{
    struct timespec ms = {0, 1000 * 1000};
    for (int i = 0; i < 30000 && !atomic_load(&main_returning); i++)
        nanosleep(&ms, NULL);
    for (int i = 0; i < 20; i++)
        nanosleep(&ms, NULL);
    atomic_store(&fn_returned, 1);
    return IPTR(PINT(arg) + 1);
}

static void check_drop(void *arg, void *result)
{
    CHECK(atomic_load(&fn_returned) == 1);
    CHECK(PINT(result) == PINT(arg) + 1);
    atomic_fetch_add(&drops, 1);
}

static void *abandon_main(void *arg)
{
    (void)arg;
    for (intptr_t i = 0; i < 3; i++)
        ck_assert_int_eq(weft_blocking_until(slow_plus_one, IPTR(i), check_drop,
                                             weft_now() + WEFT_USEC, NULL),
                         -ETIMEDOUT);
    atomic_store(&main_returning, 1);
    return NULL;
}

START_TEST(teardown_waits_for_abandoned_calls)
{
    atomic_store(&drops, 0);
    atomic_store(&fn_returned, 0);
    atomic_store(&main_returning, 0);
    unsigned before = count_threads();
    run_cfg(workers_of[_i], WEFT_PARALLEL, 2, abandon_main);
    ck_assert_int_eq(atomic_load(&drops), 3);
    ck_assert_uint_eq(count_threads(), before);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.blocking_calls, 3);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("blocking");
    TCase *tc = tcase_create("blocking");
    tcase_set_timeout(tc, 120);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, blocking_returns_the_result, 0, n);
    tcase_add_loop_test(tc, blocking_pool_never_exceeds_its_limit, 0, n);
    tcase_add_loop_test(tc, blocking_call_leaves_the_worker_free, 0, n);
    tcase_add_loop_test(tc, blocking_until_times_out_and_drops_once, 0, n);
    tcase_add_loop_test(tc, blocking_until_cancelled_drops, 0, n);
    tcase_add_loop_test(tc, blocking_ignores_cancellation_until_it_returns, 0, n);
    tcase_add_loop_test(tc, blocking_errors, 0, n);
    tcase_add_loop_test(tc, blocking_leaves_the_token_free, 0, n);
    tcase_add_loop_test(tc, idle_pool_threads_leave_and_come_back, 0, n);
    tcase_add_loop_test(tc, teardown_waits_for_abandoned_calls, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
