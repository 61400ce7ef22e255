/*
 * Suite "stress": counts, never times.
 *  - stress_spawn_every_task_runs_once: 1,000,000 tasks, each yields a
 *    random number of times and sleeps a random while; every task's slot is
 *    incremented exactly once, none is lost.
 *  - stress_million_sleepers_alive_at_once: 1,000,000 tasks asleep at the
 *    same moment (counted by the runtime's pending timers), then all woken.
 * A watchdog (alarm) kills a hung run, which fails the test.
 * Sanitizer builds divide the sizes by WEFT_TEST_SCALE.
 */
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

static void *yield_sleep_count(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    uint64_t r = mix(i + 1);
    for (unsigned y = 0; y < (r & 7); y++)
        ck_assert_int_eq(weft_yield(), 0);
    ck_assert_int_eq(weft_sleep((1 + (r >> 8) % 2000) * WEFT_USEC), 0);
    ran[i]++;
    return arg;
}

static void *every_task_main(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < ntasks; i++)
        ck_assert_int_eq(weft_spawn(&handles[i], yield_sleep_count, (void *)(uintptr_t)i), 0);
    for (unsigned long i = 0; i < ntasks; i++) {
        void *r;
        ck_assert_int_eq(weft_join(handles[i], &r), 0);
        ck_assert_uint_eq((uintptr_t)r, i);
    }
    return NULL;
}

/* Runs main_fn over `n` tasks under the watchdog and asserts that every
 * task ran exactly once. */
static void run_counted(weft_fn main_fn, unsigned long n)
{
    alarm(WATCHDOG_S);
    ntasks = n;
    ran = calloc(ntasks, 1);
    handles = calloc(ntasks, sizeof handles[0]);
    ck_assert(ran && handles);
    run_main(main_fn, NULL);
    unsigned long missing = 0, twice = 0;
    for (unsigned long i = 0; i < ntasks; i++) {
        missing += ran[i] == 0;
        twice += ran[i] > 1;
    }
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(twice, 0);
    free(ran);
    free(handles);
}

START_TEST(stress_spawn_every_task_runs_once)
{
    run_counted(every_task_main, scaled(1000000));
    struct weft_stats s;
    weft_stats_get(&s);
    ck_assert_uint_eq(s.tasks_spawned, ntasks + 1);
    ck_assert_uint_eq(s.timers_fired, ntasks);
}
END_TEST

static volatile unsigned long asleep;
static uint64_t wake_at;

/* Sleeps until the shared deadline, however many sleeps that takes. */
static void *sleep_until_released(void *arg)
{
    asleep++;
    for (uint64_t now; (now = weft_now()) < wake_at;)
        ck_assert_int_eq(weft_sleep(wake_at - now), 0);
    ran[(uintptr_t)arg]++;
    return NULL;
}

static void *sleepers_main(void *arg)
{
    (void)arg;
    /* Far enough ahead that every task is asleep before the first wakes. */
    wake_at = weft_now() + 120 * WEFT_SEC;
    for (unsigned long i = 0; i < ntasks; i++)
        ck_assert_int_eq(weft_spawn(&handles[i], sleep_until_released, (void *)(uintptr_t)i), 0);
    while (asleep < ntasks)
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    /* Only main runs: every other task is asleep on its own stack. */
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.timers_pending, ntasks);
    ck_assert_uint_eq(s.stacks_in_use, ntasks + 1);
    ck_assert_uint_eq(s.tasks_live, ntasks + 1);
    ck_assert_uint_lt(weft_now(), wake_at);
    /* Release them: bring every deadline forward to now (white-box; a
     * cancellation API will do this from outside, TODO(#5)). */
    wake_at = weft_now();
    struct weft__timers *tm = &weft__worker_self()->timers;
    for (uint32_t i = 0; i < tm->len; i++)
        tm->heap[i]->deadline = wake_at;
    for (unsigned long i = 0; i < ntasks; i++)
        ck_assert_int_eq(weft_join(handles[i], NULL), 0);
    return NULL;
}

START_TEST(stress_million_sleepers_alive_at_once)
{
    run_counted(sleepers_main, scaled(1000000));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("counts");
    tcase_set_timeout(tc, WATCHDOG_S + 10);
    tcase_add_test(tc, stress_spawn_every_task_runs_once);
    tcase_add_test(tc, stress_million_sleepers_alive_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
