/*
 * Suite "gil": WEFT_MODE=gil (cfg.mode = WEFT_GIL), counted, never timed.
 *
 *  - one_task_executes_at_a_time: on 4 workers, 8 CPU-bound tasks with
 *    checkpoints between chunks of work; each chunk counts the tasks inside
 *    a chunk at that moment: never more than 1 under the GIL. (In parallel
 *    mode on 2 workers the same program sees 2 at once, which shows the
 *    count can fail.)
 *  - the_token_changes_hands_when_asked: two CPU-bound tasks, each working
 *    for many switch intervals (1 ms here), both finish with the right
 *    result, and the statistics show hand-offs and forced drops.
 *  - a_sleeper_does_not_hold_the_token: while one task sleeps, another
 *    computes (its progress counter moves during the sleep).
 *  - time_accounting_sorts_the_time: sleeping, running and token-wait time
 *    land in their buckets, per task and per run.
 *  - parallel_mode_counts_no_handoffs: in parallel mode the hand-off
 *    counters stay 0, and accounting is off.
 */
#include <errno.h>
#include <stdint.h>

#include "util.h"
#include "worker.h"

static _Atomic int inside, most_inside;
static _Atomic uint64_t progress;
static _Atomic unsigned ran_on; /* bit per worker id that ran a cpu_task chunk */
static uint64_t chunk_steps = 20000;
static int chunks = 400;

static uint64_t lcg(uint64_t x, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

static void *cpu_task(void *arg)
{
    uint64_t x = (uint64_t)PINT(arg);
    for (int c = 0; c < chunks; c++) {
        int now = atomic_fetch_add(&inside, 1) + 1;
        int seen = atomic_load(&most_inside);
        while (now > seen && !atomic_compare_exchange_weak(&most_inside, &seen, now)) {
        }
        x = lcg(x, chunk_steps);
        atomic_fetch_or(&ran_on, 1u << (weft__worker_self()->id & 31));
        atomic_fetch_add(&progress, 1);
        atomic_fetch_sub(&inside, 1);
        CHECK(weft_checkpoint() == 0);
    }
    return IPTR(x & 0xffff);
}

static unsigned ntasks;

static void *many_main(void *arg)
{
    (void)arg;
    weft_task *t[8];
    for (unsigned i = 0; i < ntasks; i++)
        ck_assert_int_eq(weft_spawn(&t[i], cpu_task, IPTR(i + 1)), 0);
    for (unsigned i = 0; i < ntasks; i++) {
        void *r;
        /* A deadline keeps the join from running the task inline. */
        ck_assert_int_eq(weft_join_until(t[i], WEFT_NEVER - 1, &r), 0);
        ck_assert_int_eq(PINT(r), (intptr_t)(lcg(i + 1, chunk_steps * (uint64_t)chunks) & 0xffff));
    }
    return NULL;
}

static void run_cfg(enum weft_mode mode, unsigned workers, unsigned interval_us, weft_fn fn)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.mode = mode;
    cfg.workers = workers;
    cfg.switch_interval_us = interval_us;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, fn, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}

START_TEST(one_task_executes_at_a_time)
{
    atomic_store(&inside, 0);
    atomic_store(&most_inside, 0);
    ntasks = 8;
    chunks = (int)scaled(400) + 20;
    run_cfg(WEFT_GIL, 4, 1000, many_main);
    ck_assert_int_eq(atomic_load(&most_inside), 1);
}
END_TEST

/* Two tasks that never suspend, on two workers, in parallel mode: both are
 * inside a chunk at once at some point (they wait for each other). */
static _Atomic int arrived;

static void *meet(void *arg)
{
    (void)arg;
    int now = atomic_fetch_add(&inside, 1) + 1;
    int seen = atomic_load(&most_inside);
    while (now > seen && !atomic_compare_exchange_weak(&most_inside, &seen, now)) {
    }
    atomic_fetch_add(&arrived, 1);
    while (atomic_load(&arrived) < 2) {
    }
    atomic_fetch_sub(&inside, 1);
    return NULL;
}

static void *meet_main(void *arg)
{
    (void)arg;
    weft_task *a, *b;
    ck_assert_int_eq(weft_spawn(&a, meet, NULL), 0);
    ck_assert_int_eq(weft_spawn(&b, meet, NULL), 0);
    ck_assert_int_eq(weft_join_until(a, WEFT_NEVER - 1, NULL), 0);
    ck_assert_int_eq(weft_join_until(b, WEFT_NEVER - 1, NULL), 0);
    return NULL;
}

START_TEST(parallel_mode_runs_two_at_once)
{
    alarm(60);
    atomic_store(&inside, 0);
    atomic_store(&most_inside, 0);
    atomic_store(&arrived, 0);
    run_cfg(WEFT_PARALLEL, 2, 5000, meet_main);
    ck_assert_int_eq(atomic_load(&most_inside), 2);
}
END_TEST

START_TEST(the_token_changes_hands_when_asked)
{
    ntasks = 2;
    chunks = 400;
    chunk_steps = 200000; /* each task works for many 1 ms intervals */
    atomic_store(&ran_on, 0);
    run_cfg(WEFT_GIL, 2, 1000, many_main);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    /* Which workers took the two tasks is the machine's doing: when both
     * worked (almost always), the token went back and forth on request. */
    if (atomic_load(&ran_on) == 3) {
        ck_assert_uint_gt(s.gil_handoffs, 0);
        ck_assert_uint_gt(s.gil_forced_drops, 0);
        ck_assert_uint_gt(s.gil_wait_ns, 0);
    }
    chunk_steps = 20000;
}
END_TEST

static void *sleeper(void *arg)
{
    (void)arg;
    uint64_t before = atomic_load(&progress);
    CHECK(weft_sleep(30 * WEFT_MSEC) == 0);
    return IPTR(atomic_load(&progress) > before);
}

static void *sleep_main(void *arg)
{
    (void)arg;
    atomic_store(&progress, 0);
    weft_task *s, *c;
    ck_assert_int_eq(weft_spawn(&s, sleeper, NULL), 0);
    ck_assert_int_eq(weft_spawn(&c, cpu_task, IPTR(3)), 0);
    void *moved;
    ck_assert_int_eq(weft_join_until(s, WEFT_NEVER - 1, &moved), 0);
    ck_assert_int_eq(PINT(moved), 1);
    ck_assert_int_eq(weft_join_until(c, WEFT_NEVER - 1, NULL), 0);
    return NULL;
}

START_TEST(a_sleeper_does_not_hold_the_token)
{
    chunks = 2000; /* longer than the sleep, on any machine */
    run_cfg(WEFT_GIL, 2, 5000, sleep_main);
}
END_TEST

/* Time accounting: a task that slept 30 ms has at least 30 ms of sleep;
 * under the GIL, two CPU-bound tasks spend time waiting for the token; the
 * run's sums cover the tasks' own figures. */
static void *accounted_sleeper(void *arg)
{
    (void)arg;
    CHECK(weft_sleep(30 * WEFT_MSEC) == 0);
    return NULL;
}

static void *times_main(void *arg)
{
    (void)arg;
    weft_task *s, *a, *b;
    ck_assert_int_eq(weft_spawn(&s, accounted_sleeper, NULL), 0);
    ck_assert_int_eq(weft_spawn(&a, cpu_task, IPTR(1)), 0);
    ck_assert_int_eq(weft_spawn(&b, cpu_task, IPTR(2)), 0);
    ck_assert_int_eq(weft_sleep(60 * WEFT_MSEC), 0);
    struct weft_times ts, ta, tb;
    /* Finished (or not) but not joined: the handles are good. */
    ck_assert_int_eq(weft_join_until(s, WEFT_NEVER - 1, NULL), 0);
    ck_assert_int_eq(weft_task_times(a, &ta), 0);
    ck_assert_int_eq(weft_task_times(b, &tb), 0);
    ck_assert_int_eq(weft_join_until(a, WEFT_NEVER - 1, NULL), 0);
    ck_assert_int_eq(weft_join_until(b, WEFT_NEVER - 1, NULL), 0);
    ck_assert_int_eq(weft_times_get(&ts), 0);
    ck_assert_int_eq(ts.enabled, 1);
    ck_assert_uint_ge(ts.sleeping_ns, 30 * WEFT_MSEC); /* the sleeper; main is not done */
    ck_assert_uint_gt(ta.running_ns + tb.running_ns, 0);
    if (atomic_load(&ran_on) == 3) /* both workers computed: one waited */
        ck_assert_uint_gt(ts.token_ns, 0);
    ck_assert_int_eq(weft_task_times(a, &ta), -ESRCH); /* joined */
    ck_assert_int_eq(weft_task_times(NULL, &ta), -EINVAL);
    return NULL;
}

START_TEST(time_accounting_sorts_the_time)
{
    chunks = 400;
    chunk_steps = 200000;
    atomic_store(&ran_on, 0);
    run_cfg(WEFT_GIL, 2, 1000, times_main);
    struct weft_times t;
    ck_assert_int_eq(weft_times_get(&t), 0); /* the last run's, after it */
    ck_assert_uint_gt(t.running_ns, 0);
    if (atomic_load(&ran_on) == 3)
        ck_assert_uint_gt(t.token_ns, 0);
    chunk_steps = 20000;
}
END_TEST

START_TEST(parallel_mode_counts_no_handoffs)
{
    ntasks = 2;
    chunks = 50;
    run_cfg(WEFT_PARALLEL, 2, 5000, many_main);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.gil_handoffs, 0);
    ck_assert_uint_eq(s.gil_forced_drops, 0);
    struct weft_times t;
    ck_assert_int_eq(weft_times_get(&t), 0);
    ck_assert_int_eq(t.enabled, 0); /* no clock reads at switches by default */
    ck_assert_uint_eq(t.running_ns, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gil");
    TCase *tc = tcase_create("gil");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_task_executes_at_a_time);
    tcase_add_test(tc, parallel_mode_runs_two_at_once);
    tcase_add_test(tc, the_token_changes_hands_when_asked);
    tcase_add_test(tc, a_sleeper_does_not_hold_the_token);
    tcase_add_test(tc, time_accounting_sorts_the_time);
    tcase_add_test(tc, parallel_mode_counts_no_handoffs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
