/*
 * Suite "stress": counts, never times.
 *  - stress_spawn_every_task_runs_once, at WEFT_WORKERS = 1, 2, 4 and 8
 *    (more workers than cores on purpose: preemption in the middle of a
 *    steal or a park is what finds the races): 1,000,000 tasks, each yields
 *    a random number of times, sleeps a random while, and one in four
 *    spawns a child (joined by its parent, often run inline) that yields
 *    and sleeps too; every task and every child is counted exactly once,
 *    none is lost, none runs twice, every result comes back to its joiner.
 *  - stress_million_sleepers_alive_at_once: 1,000,000 tasks asleep at the
 *    same moment (counted by the runtime's pending timers), then all woken.
 * A watchdog (alarm) kills a hung run, which fails the test.
 * Sanitizer builds divide the sizes by WEFT_TEST_SCALE.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "task.h"
#include "util.h"
#include "worker.h"

#define WATCHDOG_S 300

static unsigned long ntasks;
static unsigned char *ran;      /* ran[i]: times task i ran to completion */
static weft_task **handles;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static unsigned char *child_ran; /* child_ran[i]: times task i's child ran */

static void *child_count(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    uint64_t r = mix(~i);
    if (r & 1)
        CHECK(weft_yield() == 0);
    if (r & 2)
        CHECK(weft_sleep((r >> 8) % 500 * WEFT_USEC) == 0);
    child_ran[i]++;
    return (void *)(i ^ 0x5a5a);
}

static void *yield_sleep_count(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    uint64_t r = mix(i + 1);
    weft_task *child = NULL;
    bool nested = ((r >> 20) & 3) == 0;
    if (nested)
        CHECK(weft_spawn(&child, child_count, arg) == 0);
    for (unsigned y = 0; y < (r & 7); y++)
        CHECK(weft_yield() == 0);
    CHECK(weft_sleep((1 + (r >> 8) % 2000) * WEFT_USEC) == 0);
    if (nested) {
        void *cr;
        CHECK(weft_join(child, &cr) == 0);
        CHECK((uintptr_t)cr == (i ^ 0x5a5a));
        CHECK(child_ran[i] == 1);
    }
    ran[i]++;
    return arg;
}

static void *every_task_main(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < ntasks; i++)
        CHECK(weft_spawn(&handles[i], yield_sleep_count, (void *)(uintptr_t)i) == 0);
    for (unsigned long i = 0; i < ntasks; i++) {
        void *r;
        CHECK(weft_join(handles[i], &r) == 0);
        CHECK((uintptr_t)r == i);
    }
    return NULL;
}

/* Runs main_fn over `n` tasks under the watchdog and asserts that every
 * task ran exactly once. */
static void run_counted(weft_fn main_fn, unsigned long n, unsigned workers)
{
    alarm(WATCHDOG_S);
    ntasks = n;
    ran = calloc(ntasks, 1);
    child_ran = calloc(ntasks, 1);
    handles = calloc(ntasks, sizeof handles[0]);
    ck_assert(ran && child_ran && handles);
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers;
    void *result;
    ck_assert_int_eq(weft_run(&cfg, main_fn, NULL, &result), 0);
    assert_clean_shutdown();
    unsigned long missing = 0, twice = 0;
    for (unsigned long i = 0; i < ntasks; i++) {
        missing += ran[i] == 0;
        twice += ran[i] > 1;
        twice += child_ran[i] > 1;
    }
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(twice, 0);
    free(ran);
    free(child_ran);
    free(handles);
}

static const unsigned worker_counts[] = {1, 2, 4, 8};

START_TEST(stress_spawn_every_task_runs_once)
{
    unsigned workers = worker_counts[_i];
    run_counted(every_task_main, scaled(1000000), workers);
    unsigned long children = 0;
    for (unsigned long i = 0; i < ntasks; i++)
        children += ((mix(i + 1) >> 20) & 3) == 0;
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.workers, workers);
    ck_assert_uint_eq(s.tasks_spawned, ntasks + children + 1);
    ck_assert_uint_eq(s.tasks_finished, ntasks + children + 1);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
}
END_TEST

static volatile unsigned long asleep;
static uint64_t wake_at;

/* Sleeps until the shared deadline, however many sleeps that takes. */
static void *sleep_until_released(void *arg)
{
    asleep++;
    for (uint64_t now; (now = weft_now()) < wake_at;)
        CHECK(weft_sleep(wake_at - now) == 0);
    ran[(uintptr_t)arg]++;
    return NULL;
}

static void *sleepers_main(void *arg)
{
    (void)arg;
    /* Far enough ahead that every task is asleep before the first wakes. */
    wake_at = weft_now() + 120 * WEFT_SEC;
    for (unsigned long i = 0; i < ntasks; i++)
        CHECK(weft_spawn(&handles[i], sleep_until_released, (void *)(uintptr_t)i) == 0);
    while (asleep < ntasks)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    /* Only main runs: every other task is asleep on its own stack. */
    struct weft_stats s;
    CHECK(weft_stats_get(&s) == 0);
    CHECK(s.timers_pending == ntasks);
    CHECK(s.stacks_in_use == ntasks + 1);
    CHECK(s.tasks_live == ntasks + 1);
    CHECK(weft_now() < wake_at);
    /* Release them: bring every deadline forward to now (white-box; a
     * cancellation API will do this from outside, TODO(#5)). */
    wake_at = weft_now();
    struct weft__timers *tm = &weft__worker_self()->timers;
    for (uint32_t i = 0; i < tm->len; i++)
        tm->heap[i].deadline = wake_at;
    for (uint32_t i = 0; i < tm->run_len; i++)
        tm->run[(tm->run_head + i) & (tm->run_cap - 1)].deadline = wake_at;
    for (unsigned long i = 0; i < ntasks; i++)
        CHECK(weft_join(handles[i], NULL) == 0);
    return NULL;
}

START_TEST(stress_million_sleepers_alive_at_once)
{
    /* One worker: the release below rewrites that worker's timer heap. */
    run_counted(sleepers_main, scaled(1000000), 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("counts");
    tcase_set_timeout(tc, WATCHDOG_S + 10);
    tcase_add_loop_test(tc, stress_spawn_every_task_runs_once, 0,
                        (int)(sizeof worker_counts / sizeof worker_counts[0]));
    tcase_add_test(tc, stress_million_sleepers_alive_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
