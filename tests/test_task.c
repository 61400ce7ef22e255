/*
 * Suite "task": weft_run, weft_spawn(_opts), weft_join, weft_detach,
 * weft_yield, weft_self, weft_task_id: each success path and each
 * documented error. Black-box: only weft.h.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "task.h"
#include "util.h"
#include "worker.h"

static void *return_arg_plus_one(void *arg)
{
    return IPTR(PINT(arg) + 1);
}

static void *spawn_join_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, return_arg_plus_one, IPTR(41)), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(t, &r), 0);
    return r;
}

START_TEST(join_returns_the_task_result)
{
    ck_assert_int_eq(PINT(run_main(spawn_join_main, NULL)), 42);
}
END_TEST

static void *main_returns_7(void *arg)
{
    (void)arg;
    return IPTR(7);
}

START_TEST(run_returns_main_result)
{
    ck_assert_int_eq(PINT(run_main(main_returns_7, NULL)), 7);
}
END_TEST

START_TEST(run_rejects_null_main)
{
    ck_assert_int_eq(weft_run(NULL, NULL, NULL, NULL), -EINVAL);
}
END_TEST

static void *nested_run_main(void *arg)
{
    (void)arg;
    return IPTR(weft_run(NULL, main_returns_7, NULL, NULL));
}

START_TEST(run_inside_a_run_is_ebusy)
{
    ck_assert_int_eq(PINT(run_main(nested_run_main, NULL)), -EBUSY);
}
END_TEST

START_TEST(runs_follow_one_another)
{
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(PINT(run_main(spawn_join_main, NULL)), 42);
        struct weft_stats s;
        ck_assert_int_eq(weft_stats_get(&s), 0);
        ck_assert_uint_eq(s.tasks_spawned, 2);
    }
}
END_TEST

START_TEST(calls_outside_a_task_are_eperm)
{
    weft_task *t = NULL;
    ck_assert_int_eq(weft_spawn(&t, return_arg_plus_one, NULL), -EPERM);
    ck_assert_int_eq(weft_join(t, NULL), -EPERM);
    ck_assert_int_eq(weft_detach(t), -EPERM);
    ck_assert_int_eq(weft_yield(), -EPERM);
    ck_assert_int_eq(weft_sleep(1), -EPERM);
    ck_assert_ptr_null(weft_self());
}
END_TEST

START_TEST(stats_before_any_run_is_esrch)
{
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), -ESRCH);
    ck_assert_int_eq(weft_stats_get(NULL), -EINVAL);
}
END_TEST

static void *join_self_main(void *arg)
{
    (void)arg;
    return IPTR(weft_join(weft_self(), NULL));
}

START_TEST(join_self_is_edeadlk)
{
    ck_assert_int_eq(PINT(run_main(join_self_main, NULL)), -EDEADLK);
}
END_TEST

static void *double_join_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, return_arg_plus_one, NULL), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    /* The slot may even be reused by a new task: the handle stays stale. */
    weft_task *u;
    ck_assert_int_eq(weft_spawn(&u, return_arg_plus_one, NULL), 0);
    ck_assert_ptr_ne(t, u);
    ck_assert_int_eq(weft_join(t, NULL), -ESRCH);
    ck_assert_int_eq(weft_detach(t), -ESRCH);
    ck_assert_uint_eq(weft_task_id(t), 0);
    ck_assert_int_eq(weft_join(u, NULL), 0);
    return NULL;
}

START_TEST(second_join_is_esrch)
{
    run_main(double_join_main, NULL);
}
END_TEST

static _Atomic int detached_ran;

static void *sleep_then_mark(void *arg)
{
    ck_assert_int_eq(weft_sleep(PINT(arg) * WEFT_MSEC), 0);
    atomic_store(&detached_ran, 1);
    return NULL;
}

static void *detach_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, sleep_then_mark, IPTR(2)), 0);
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), -EINVAL);   /* still running */
    ck_assert_int_eq(weft_detach(t), -EINVAL);       /* detached already */
    /* Let it finish and be freed: polled, not a fixed sleep, since a
     * loaded machine may run it late. */
    int err = -EINVAL;
    for (int i = 0; i < 10000 && err == -EINVAL; i++) {
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
        err = weft_join(t, NULL);
    }
    ck_assert_int_eq(atomic_load(&detached_ran), 1);
    ck_assert_int_eq(err, -ESRCH);                   /* finished and freed */
    return NULL;
}

START_TEST(join_after_detach_is_einval_then_esrch)
{
    run_main(detach_main, NULL);
}
END_TEST

static void *detach_finished_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, return_arg_plus_one, NULL), 0);
    ck_assert_int_eq(weft_yield(), 0); /* t runs and finishes */
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), -ESRCH);
    return NULL;
}

START_TEST(detach_of_a_finished_task_frees_it)
{
    run_main(detach_finished_main, NULL);
}
END_TEST

static void *leave_running_main(void *arg)
{
    (void)arg;
    weft_task *t, *u;
    ck_assert_int_eq(weft_spawn(&t, sleep_then_mark, IPTR(2)), 0);
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_int_eq(weft_spawn(&u, return_arg_plus_one, NULL), 0); /* never joined */
    return NULL;
}

START_TEST(run_waits_for_tasks_left_running)
{
    detached_ran = 0;
    run_main(leave_running_main, NULL);
    ck_assert_int_eq(detached_ran, 1);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_unreleased, 1);
}
END_TEST

static weft_task *target;

static void *join_target(void *arg)
{
    (void)arg;
    void *r = NULL;
    ck_assert_int_eq(weft_join(target, &r), 0);
    return r;
}

static void *two_joiners_main(void *arg)
{
    (void)arg;
    weft_task *b;
    ck_assert_int_eq(weft_spawn(&target, sleep_then_mark, IPTR(2)), 0);
    ck_assert_int_eq(weft_spawn(&b, join_target, NULL), 0);
    ck_assert_int_eq(weft_yield(), 0); /* b blocks in its join */
    ck_assert_int_eq(weft_join(target, NULL), -EBUSY);
    ck_assert_int_eq(weft_detach(target), -EBUSY);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    return NULL;
}

START_TEST(second_joiner_is_ebusy)
{
    run_main(two_joiners_main, NULL);
}
END_TEST

static weft_task *cyc_a, *cyc_b;
static int cycle_err = 1;

/* a waits until b is blocked joining a, then joins b: the join that would
 * close the cycle a -> b -> a. */
static void *cycle_a(void *arg)
{
    (void)arg;
    while (!cyc_b)
        weft_yield();
    weft_yield(); /* b runs and blocks joining a */
    cycle_err = weft_join(cyc_b, NULL);
    return NULL;
}

static void *cycle_b(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_join(cyc_a, NULL), 0);
    return NULL;
}

static void *cycle_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_spawn(&cyc_a, cycle_a, NULL), 0);
    ck_assert_int_eq(weft_spawn(&cyc_b, cycle_b, NULL), 0);
    while (cycle_err == 1)
        weft_yield();
    ck_assert_int_eq(weft_join(cyc_b, NULL), 0); /* b joined (and released) a */
    ck_assert_int_eq(weft_join(cyc_a, NULL), -ESRCH);
    return NULL;
}

START_TEST(join_closing_a_cycle_is_edeadlk)
{
    run_main(cycle_main, NULL);
    ck_assert_int_eq(cycle_err, -EDEADLK);
}
END_TEST

static void *bad_handles_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_join(NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_detach(NULL), -EINVAL);
    /* A generation no slot has reached, and an index past every chunk. */
    ck_assert_int_eq(weft_join((weft_task *)(uintptr_t)((uint64_t)999 << 24), NULL), -EINVAL);
    ck_assert_int_eq(weft_join((weft_task *)(uintptr_t)(((uint64_t)1 << 24) | 0xfffff0), NULL),
                     -EINVAL);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(NULL, return_arg_plus_one, NULL), -EINVAL);
    ck_assert_int_eq(weft_spawn(&t, NULL, NULL), -EINVAL);
    struct weft_task_opts small = {.stack_size = 1024};
    struct weft_task_opts huge = {.stack_size = (size_t)2 << 30};
    ck_assert_int_eq(weft_spawn_opts(&t, return_arg_plus_one, NULL, &small), -EINVAL);
    ck_assert_int_eq(weft_spawn_opts(&t, return_arg_plus_one, NULL, &huge), -EINVAL);
    return NULL;
}

START_TEST(bad_handles_and_arguments_are_einval)
{
    run_main(bad_handles_main, NULL);
}
END_TEST

static char order[64];
static size_t norder;

static void *log_and_yield(void *arg)
{
    for (int round = 0; round < 3; round++) {
        order[norder++] = (char)PINT(arg);
        ck_assert_int_eq(weft_yield(), 0);
    }
    return NULL;
}

static void *fifo_main(void *arg)
{
    (void)arg;
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_spawn(&t[i], log_and_yield, IPTR('a' + i)), 0);
    /* Yield first: a join would run its unstarted child inline, out of the
     * queue's order. */
    ck_assert_int_eq(weft_yield(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    return NULL;
}

START_TEST(yield_runs_ready_tasks_in_fifo_order)
{
    setenv("WEFT_LIFO", "0", 1);
    run_main(fifo_main, NULL);
    order[norder] = '\0';
    ck_assert_str_eq(order, "abcabcabc");
}
END_TEST

/* LIFO (the default): the newest spawn runs first; yielders then take turns
 * in the order they yielded. */
START_TEST(lifo_runs_the_newest_first_then_yielders_in_turn)
{
    setenv("WEFT_LIFO", "1", 1);
    run_main(fifo_main, NULL);
    order[norder] = '\0';
    ck_assert_str_eq(order, "cbacbacba");
}
END_TEST

static void *yield_alone_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(weft_yield(), 0);
    return NULL;
}

START_TEST(yield_with_nothing_else_ready_returns_at_once)
{
    run_main(yield_alone_main, NULL);
    struct weft_stats s;
    weft_stats_get(&s);
    /* Into main and out of it at exit: the 1000 yields switched nothing. */
    ck_assert_uint_eq(s.switches, 2);
}
END_TEST

static weft_task *seen_self;

static void *record_self(void *arg)
{
    (void)arg;
    seen_self = weft_self();
    return IPTR(weft_task_id(seen_self));
}

static void *self_main(void *arg)
{
    (void)arg;
    ck_assert_uint_eq(weft_task_id(weft_self()), 1); /* main is task 1 */
    ck_assert_int_eq(weft_join(weft_self(), NULL), -EDEADLK);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, record_self, NULL), 0);
    uint64_t id = weft_task_id(t);
    ck_assert_uint_eq(id, 2);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_ptr_eq(seen_self, t);
    ck_assert_uint_eq((uint64_t)PINT(r), id);
    return NULL;
}

START_TEST(self_names_the_running_task)
{
    run_main(self_main, NULL);
}
END_TEST

static void *main_joins_main(void *arg)
{
    (void)arg;
    /* The main task's handle is held by weft_run itself. */
    return IPTR(weft_detach(weft_self()));
}

START_TEST(main_task_handle_belongs_to_run)
{
    ck_assert_int_eq(PINT(run_main(main_joins_main, NULL)), -EINVAL);
}
END_TEST

static void *use_stack(void *arg)
{
    size_t n = (size_t)PINT(arg);
    volatile char buf[n];
    for (size_t i = 0; i < n; i += 512)
        buf[i] = (char)i;
    return IPTR(buf[n / 2 - (n / 2) % 512]);
}

static void *big_stack_main(void *arg)
{
    (void)arg;
    struct weft_task_opts o = {.name = "big", .stack_size = 1 << 20};
    weft_task *t;
    ck_assert_int_eq(weft_spawn_opts(&t, use_stack, IPTR(900 * 1024), &o), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(spawn_opts_stack_size_is_usable)
{
    run_main(big_stack_main, NULL);
}
END_TEST

/* Names and time accounting live in the slots' cold records, made per
 * chunk of 1,024 slots (task.h): for every chunk at once while accounting
 * is on, else for a chunk when one of its tasks is first named. Tasks
 * over three chunks, every third one named, each find their own name (and
 * their times, with accounting on); then unnamed tasks, many in the first
 * round's slots, have no name. */
enum { NAMED_TASKS = 3000 };
static weft_task *named_handles[NAMED_TASKS];
static unsigned char named_slot_used[1u << 16];
static int names_account;

static void *own_name_and_time(void *arg)
{
    int i = PINT(arg);
    struct weft__task *t = weft__current_task();
    char want[32] = "";
    if (i % 3 == 0)
        snprintf(want, sizeof want, "named-%d", i);
    CHECK(strcmp(weft__task_name(t), want) == 0);
    /* Some running time, then a sleep. */
    for (volatile int k = 0; k < 1000; k++)
        ;
    CHECK(weft_sleep(WEFT_MSEC) == 0);
    struct weft_times tm;
    CHECK(weft_task_times(weft_self(), &tm) == 0);
    CHECK(tm.enabled == names_account);
    if (names_account) {
        /* Kept, not timed: how much of the sleep a loaded machine counts
         * varies. */
        CHECK(tm.sleeping_ns > 0);
        CHECK(tm.running_ns > 0);
    }
    return NULL;
}

/* The slot index of a handle (task.h: generation above, index below). */
static unsigned slot_of(weft_task *h)
{
    return (unsigned)((uintptr_t)h & ((1u << WEFT_TASK_INDEX_BITS) - 1));
}

static void *names_main(void *arg)
{
    (void)arg;
    memset(named_slot_used, 0, sizeof named_slot_used);
    int reused = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NAMED_TASKS; i++) {
            char name[32];
            snprintf(name, sizeof name, "named-%d", i);
            /* The second round names none. */
            struct weft_task_opts o = {.name = round == 0 && i % 3 == 0 ? name : NULL};
            int arg_i = round == 0 ? i : i * 3 + 1; /* round 1: never a multiple of 3 */
            CHECK(weft_spawn_opts(&named_handles[i], own_name_and_time, IPTR(arg_i), &o) == 0);
            unsigned slot = slot_of(named_handles[i]);
            CHECK(slot < sizeof named_slot_used);
            if (round == 0)
                named_slot_used[slot % sizeof named_slot_used] = 1;
            else
                reused += named_slot_used[slot % sizeof named_slot_used];
        }
        for (int i = 0; i < NAMED_TASKS; i++)
            CHECK(weft_join(named_handles[i], NULL) == 0);
    }
    /* Slots freed by the joins went back to this worker's free list. */
    CHECK(reused > NAMED_TASKS / 3);
    struct weft_times all;
    CHECK(weft_times_get(&all) == 0);
    CHECK(all.enabled == names_account);
    if (names_account)
        CHECK(all.sleeping_ns > 0);
    return NULL;
}

START_TEST(names_and_times_kept_beside_the_slots)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = 2;
    names_account = _i;
    cfg.stats = _i; /* accounting on or off; the summary it prints is captured */
    start_capture();
    int err = weft_run(&cfg, names_main, NULL, NULL);
    (void)stop_capture();
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

START_TEST(error_names_and_texts)
{
    ck_assert_str_eq(weft_err_name(-ESRCH), "ESRCH");
    ck_assert_str_eq(weft_err_name(-EDEADLK), "EDEADLK");
    ck_assert_str_eq(weft_err_name(0), "0");
    ck_assert_str_eq(weft_err_name(-EHOSTDOWN), "E?");
    ck_assert_str_eq(weft_strerror(-ESRCH), "the handle no longer names a task");
    ck_assert_ptr_nonnull(weft_strerror(-EHOSTDOWN));
    ck_assert_str_eq(weft_version(), "0.1.0");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, join_returns_the_task_result);
    tcase_add_loop_test(tc, names_and_times_kept_beside_the_slots, 0, 2);
    tcase_add_test(tc, run_returns_main_result);
    tcase_add_test(tc, run_rejects_null_main);
    tcase_add_test(tc, run_inside_a_run_is_ebusy);
    tcase_add_test(tc, runs_follow_one_another);
    tcase_add_test(tc, calls_outside_a_task_are_eperm);
    tcase_add_test(tc, stats_before_any_run_is_esrch);
    tcase_add_test(tc, join_self_is_edeadlk);
    tcase_add_test(tc, second_join_is_esrch);
    tcase_add_test(tc, join_after_detach_is_einval_then_esrch);
    tcase_add_test(tc, detach_of_a_finished_task_frees_it);
    tcase_add_test(tc, run_waits_for_tasks_left_running);
    tcase_add_test(tc, second_joiner_is_ebusy);
    tcase_add_test(tc, join_closing_a_cycle_is_edeadlk);
    tcase_add_test(tc, bad_handles_and_arguments_are_einval);
    tcase_add_test(tc, yield_runs_ready_tasks_in_fifo_order);
    tcase_add_test(tc, lifo_runs_the_newest_first_then_yielders_in_turn);
    tcase_add_test(tc, yield_with_nothing_else_ready_returns_at_once);
    tcase_add_test(tc, self_names_the_running_task);
    tcase_add_test(tc, main_task_handle_belongs_to_run);
    tcase_add_test(tc, spawn_opts_stack_size_is_usable);
    tcase_add_test(tc, error_names_and_texts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* These cases check semantics and orders that one worker makes
     * deterministic; stress_tasks runs the same calls on N workers. */
    setenv("WEFT_WORKERS", "1", 1);
    return run_suite(suite());
}
