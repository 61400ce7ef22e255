/*
 * Suite "gen": generators, one test per call's semantics and per
 * documented error:
 *  - next and send: values in order, WEFT_GEN_DONE with the return value,
 *    next after the end, a value sent to a generator that has not started,
 *    the body running as the task that resumes it;
 *  - yield from: next, send and close forwarded to the inner generator,
 *    the inner one's return value;
 *  - close: of an unstarted, a suspended and a finished generator; the
 *    cleanup runs; a yield while closing; free closes a suspended one;
 *  - refusals: a generator resuming itself (directly, through another
 *    generator, from a child run inline on its stack) is -EDEADLK; a yield
 *    outside the generator's own body is -EPERM; two tasks resuming one
 *    generator at once on two workers get -EBUSY; every call outside a
 *    task is -EPERM;
 *  - workers: a generator resumed by a task on another worker continues
 *    where it stopped; many generators handed around a ring of tasks on 1,
 *    2 and 4 workers yield every value exactly once, every resume counted
 *    on a valid worker and every worker making some; a body that sleeps,
 *    yields and joins, and one whose task moves to another worker inside
 *    the body;
 *  - cancellation: a task cancelled while suspended inside a body (in a
 *    receive, in a sleep) gets -ECANCELED from that wait, once, on 1 and 2
 *    workers; the generator is then resumed by another task, or closed by
 *    the cancelled one, and ends clean;
 *  - stacks: taken at the first resume, given back at the end, by close
 *    and by free, and reused; an overflow in a body is reported naming
 *    the generator.
 * White-box where a test must know the worker it runs on (worker.h), a
 * stack's size (gen.h) or a join word (task.h). A watchdog (alarm) kills a
 * hung run. Every test ends by checking a clean shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "gen.h"
#include "task.h"
#include "util.h"
#include "worker.h"

#define WATCHDOG_S 60

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

static struct weft_config config_with(unsigned workers, size_t inline_min)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers;
    cfg.inline_min = inline_min;
    return cfg;
}

/* Runs fn(arg) as the main task on `workers` workers, asserts success and
 * a clean shutdown, and returns the main task's result. */
static void *run_on(unsigned workers, weft_fn fn, void *arg)
{
    alarm(WATCHDOG_S);
    struct weft_config cfg = config_with(workers, 32 * 1024);
    void *result = (void *)-1;
    ck_assert_int_eq(weft_run(&cfg, fn, arg, &result), 0);
    assert_clean_shutdown();
    return result;
}

static unsigned worker_id(void)
{
    return weft__worker_self()->id;
}

/* Stacks in use now. Exact on one worker (the others' caches are read
 * without their owners' help). */
static uint64_t stacks_in_use(void)
{
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    return s.stacks_in_use;
}

/* ---- next and send --------------------------------------------------- */

/* Yields arg, arg + 1, arg + 2 (each yield must come back from a next),
 * and returns 100 + arg. */
static void *count3(weft_gen *self, void *arg)
{
    for (intptr_t i = 0; i < 3; i++) {
        void *sent = IPTR(-1);
        ck_assert_int_eq(weft_gen_yield(self, IPTR(PINT(arg) + i), &sent), 0);
        ck_assert_ptr_null(sent);
    }
    return IPTR(100 + PINT(arg));
}

static void *next_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, count3, IPTR(10)), 0);
    void *v;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_gen_next(g, &v), 0);
        ck_assert_int_eq(PINT(v), 10 + i);
    }
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 110);
    weft_gen_free(g);
    return NULL;
}

START_TEST(next_yields_values_in_order_then_done_with_the_return_value)
{
    run_on(1, next_main, NULL);
}
END_TEST

static void *after_done_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, count3, IPTR(0)), 0);
    void *v;
    while (weft_gen_next(g, &v) == 0)
        ;
    v = IPTR(1);
    ck_assert_int_eq(weft_gen_next(g, &v), -EPIPE);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(weft_gen_send(g, IPTR(5), &v), -EPIPE);
    ck_assert_int_eq(weft_gen_send(g, NULL, NULL), -EPIPE);
    ck_assert_int_eq(weft_gen_next(g, NULL), -EPIPE);
    weft_gen_free(g);
    return NULL;
}

START_TEST(next_after_done_is_epipe)
{
    run_on(1, after_done_main, NULL);
}
END_TEST

/* Yields what it was sent (NULL first); returns how many values it got
 * once it is sent STOP, or -1 when closed. */
#define STOP IPTR(0x5709)
static void *echo(weft_gen *self, void *arg)
{
    (void)arg;
    void *got = NULL;
    intptr_t n = 0;
    for (;;) {
        int e = weft_gen_yield(self, got, &got);
        if (e < 0) {
            ck_assert(e == -EPIPE && weft_gen_closing(self));
            return IPTR(-1);
        }
        if (got == STOP)
            return IPTR(n);
        n++;
    }
}

static void *send_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, echo, NULL), 0);
    void *v = IPTR(1);
    ck_assert_int_eq(weft_gen_send(g, NULL, &v), 0); /* starts it, as next */
    ck_assert_ptr_null(v);
    ck_assert_int_eq(weft_gen_send(g, IPTR(5), &v), 0);
    ck_assert_int_eq(PINT(v), 5);
    ck_assert_int_eq(weft_gen_send(g, IPTR(7), &v), 0);
    ck_assert_int_eq(PINT(v), 7);
    ck_assert_int_eq(weft_gen_next(g, &v), 0); /* next sends NULL */
    ck_assert_ptr_null(v);
    ck_assert_int_eq(weft_gen_send(g, STOP, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 3);
    weft_gen_free(g);
    return NULL;
}

START_TEST(send_delivers_the_value_to_the_suspended_yield)
{
    run_on(1, send_main, NULL);
}
END_TEST

static int body_ran;

static void *mark_and_echo(weft_gen *self, void *arg)
{
    body_ran = 1;
    return echo(self, arg);
}

static void *send_unstarted_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, mark_and_echo, NULL), 0);
    void *v = IPTR(1);
    ck_assert_int_eq(weft_gen_send(g, IPTR(9), &v), -EINVAL);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(body_ran, 0);
    /* Still unstarted and usable. */
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(body_ran, 1);
    ck_assert_int_eq(weft_gen_send(g, IPTR(9), &v), 0);
    ck_assert_int_eq(PINT(v), 9);
    weft_gen_free(g);
    return NULL;
}

START_TEST(send_of_a_value_to_an_unstarted_generator_is_einval)
{
    body_ran = 0;
    run_on(1, send_unstarted_main, NULL);
}
END_TEST

/* Yields the handle of the task running it, twice, with a task switch in
 * between. */
static void *yield_self(weft_gen *self, void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_gen_yield(self, weft_self(), NULL), 0);
    ck_assert_int_eq(weft_yield(), 0);
    ck_assert_int_eq(weft_gen_yield(self, weft_self(), NULL), 0);
    return weft_self();
}

static void *resume_once(void *arg)
{
    void *v = NULL;
    ck_assert_int_eq(weft_gen_next(arg, &v), 0);
    ck_assert_ptr_eq(v, weft_self());
    return NULL;
}

static void *runs_as_resumer_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, yield_self, NULL), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_ptr_eq(v, weft_self());
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, resume_once, g), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_ptr_eq(v, weft_self());
    weft_gen_free(g);
    return NULL;
}

START_TEST(body_runs_as_the_task_that_resumes_it)
{
    run_on(2, runs_as_resumer_main, NULL);
}
END_TEST

/* ---- yield from ------------------------------------------------------ */

struct delegation {
    void *inner_got[2];  /* what inner's yields received */
    int inner_cleanups;  /* inner saw the close */
    int outer_cleanups;  /* outer saw the close */
    int outer_err;       /* what yield_from returned to outer */
};
static struct delegation dl;

/* Yields 1 and 2, recording what each yield got; returns 1000. */
static void *inner_body(weft_gen *self, void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int e = weft_gen_yield(self, IPTR(i + 1), &dl.inner_got[i]);
        if (e < 0) {
            ck_assert_int_eq(e, -EPIPE);
            ck_assert(weft_gen_closing(self));
            dl.inner_cleanups++;
            return IPTR(-1);
        }
    }
    return IPTR(1000);
}

/* yield from inner, then yields 3 and returns inner's result + 1. */
static void *outer_body(weft_gen *self, void *arg)
{
    (void)arg;
    weft_gen *inner;
    ck_assert_int_eq(weft_gen_new(&inner, inner_body, NULL), 0);
    void *r = IPTR(-7);
    int e = weft_gen_yield_from(self, inner, &r);
    weft_gen_free(inner);
    if (e < 0) {
        dl.outer_err = e;
        ck_assert(weft_gen_closing(self));
        ck_assert_ptr_null(r);
        dl.outer_cleanups++;
        return IPTR(-2);
    }
    ck_assert_int_eq(PINT(r), 1000);
    ck_assert_int_eq(weft_gen_yield(self, IPTR(3), NULL), 0);
    return IPTR(PINT(r) + 1);
}

static void *yield_from_next_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, outer_body, NULL), 0);
    void *v;
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(weft_gen_next(g, &v), 0);
        ck_assert_int_eq(PINT(v), i);
    }
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 1001);
    ck_assert_ptr_null(dl.inner_got[0]);
    ck_assert_ptr_null(dl.inner_got[1]);
    weft_gen_free(g);
    return NULL;
}

START_TEST(yield_from_forwards_next_and_returns_the_inner_result)
{
    memset(&dl, 0, sizeof dl);
    run_on(1, yield_from_next_main, NULL);
}
END_TEST

static void *yield_from_send_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, outer_body, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    ck_assert_int_eq(weft_gen_send(g, IPTR('a'), &v), 0);
    ck_assert_int_eq(PINT(v), 2);
    ck_assert_int_eq(PINT(dl.inner_got[0]), 'a');
    ck_assert_int_eq(weft_gen_send(g, IPTR('b'), &v), 0);
    ck_assert_int_eq(PINT(v), 3); /* outer's own yield: inner has returned */
    ck_assert_int_eq(PINT(dl.inner_got[1]), 'b');
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 1001);
    weft_gen_free(g);
    return NULL;
}

START_TEST(yield_from_forwards_send)
{
    memset(&dl, 0, sizeof dl);
    run_on(1, yield_from_send_main, NULL);
}
END_TEST

static void *yield_from_close_main(void *arg)
{
    (void)arg;
    uint64_t base = stacks_in_use();
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, outer_body, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    ck_assert_uint_eq(stacks_in_use(), base + 2); /* outer's and inner's */
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(dl.inner_cleanups, 1);
    ck_assert_int_eq(dl.outer_cleanups, 1);
    ck_assert_int_eq(dl.outer_err, -EPIPE);
    ck_assert_uint_eq(stacks_in_use(), base);
    ck_assert_int_eq(weft_gen_next(g, &v), -EPIPE);
    weft_gen_free(g);
    return NULL;
}

START_TEST(yield_from_forwards_close_to_the_inner_generator)
{
    memset(&dl, 0, sizeof dl);
    run_on(1, yield_from_close_main, NULL);
}
END_TEST

static void *yield_from_finished_body(weft_gen *self, void *arg)
{
    void *r = IPTR(1);
    int e = weft_gen_yield_from(self, arg, &r);
    ck_assert_ptr_null(r);
    return IPTR(e);
}

static void *yield_from_finished_main(void *arg)
{
    (void)arg;
    weft_gen *inner, *g;
    ck_assert_int_eq(weft_gen_new(&inner, count3, NULL), 0);
    ck_assert_int_eq(weft_gen_close(inner), 0);
    ck_assert_int_eq(weft_gen_new(&g, yield_from_finished_body, inner), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), -EPIPE);
    weft_gen_free(g);
    weft_gen_free(inner);
    return NULL;
}

START_TEST(yield_from_a_finished_generator_is_epipe)
{
    run_on(1, yield_from_finished_main, NULL);
}
END_TEST

/* ---- close ------------------------------------------------------------ */

static int cleanups;

/* Yields 0, 1, 2, ... until it is closed; then counts its cleanup. */
static void *until_closed(weft_gen *self, void *arg)
{
    (void)arg;
    for (intptr_t i = 0;; i++) {
        int e = weft_gen_yield(self, IPTR(i), NULL);
        if (e < 0) {
            ck_assert_int_eq(e, -EPIPE);
            ck_assert(weft_gen_closing(self));
            cleanups++;
            return IPTR(-1);
        }
        ck_assert(!weft_gen_closing(self));
    }
}

static void *close_unstarted_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, mark_and_echo, NULL), 0);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(weft_gen_next(g, NULL), -EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(body_ran, 0);
    weft_gen_free(g);
    return NULL;
}

START_TEST(close_of_an_unstarted_generator_never_runs_it)
{
    body_ran = 0;
    run_on(1, close_unstarted_main, NULL);
}
END_TEST

static void *close_suspended_main(void *arg)
{
    (void)arg;
    uint64_t base = stacks_in_use();
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, until_closed, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    ck_assert_uint_eq(stacks_in_use(), base + 1);
    ck_assert_int_eq(cleanups, 0);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(cleanups, 1);
    ck_assert_uint_eq(stacks_in_use(), base);
    ck_assert_int_eq(weft_gen_next(g, &v), -EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(cleanups, 1);
    weft_gen_free(g);
    return NULL;
}

START_TEST(close_of_a_suspended_generator_runs_its_cleanup)
{
    cleanups = 0;
    run_on(1, close_suspended_main, NULL);
}
END_TEST

static void *close_finished_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, count3, NULL), 0);
    void *v;
    while (weft_gen_next(g, &v) == 0)
        ;
    ck_assert_int_eq(PINT(v), 100);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(weft_gen_next(g, &v), -EPIPE);
    weft_gen_free(g);
    return NULL;
}

START_TEST(close_of_a_finished_generator_does_nothing)
{
    run_on(1, close_finished_main, NULL);
}
END_TEST

static int second_yield_err, returned_after_close;

/* Ignores the close: yields again, then returns. */
static void *ignores_close(weft_gen *self, void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_gen_yield(self, IPTR(1), NULL), -EPIPE);
    void *sent = IPTR(1);
    second_yield_err = weft_gen_yield(self, IPTR(2), &sent);
    ck_assert_ptr_null(sent);
    ck_assert(weft_gen_closing(self));
    returned_after_close = 1;
    return NULL;
}

static void *yield_after_close_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, ignores_close, NULL), 0);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    ck_assert_int_eq(weft_gen_close(g), -EPROTO);
    /* The second yield did not suspend: the body ran to its end. */
    ck_assert_int_eq(second_yield_err, -EPIPE);
    ck_assert_int_eq(returned_after_close, 1);
    ck_assert_int_eq(weft_gen_next(g, NULL), -EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
    weft_gen_free(g);
    return NULL;
}

START_TEST(yield_after_close_does_not_suspend_and_close_is_eproto)
{
    second_yield_err = 0;
    returned_after_close = 0;
    run_on(1, yield_after_close_main, NULL);
    ck_assert_str_eq(weft_err_name(-EPROTO), "EPROTO");
}
END_TEST

static void *free_suspended_main(void *arg)
{
    (void)arg;
    uint64_t base = stacks_in_use();
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, until_closed, NULL), 0);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    ck_assert_uint_eq(stacks_in_use(), base + 1);
    weft_gen_free(g);
    ck_assert_int_eq(cleanups, 1);
    ck_assert_uint_eq(stacks_in_use(), base);
    return NULL;
}

START_TEST(free_closes_a_suspended_generator)
{
    cleanups = 0;
    run_on(1, free_suspended_main, NULL);
}
END_TEST

/* ---- refusals ------------------------------------------------------- */

/* Resumes the generator it is given (whose body is running this one),
 * and tries to yield on its behalf; yields both codes. */
static void *resumes_its_caller(weft_gen *self, void *arg)
{
    weft_gen *outer = arg;
    int next_err = weft_gen_next(outer, NULL);
    int yield_err = weft_gen_yield(outer, NULL, NULL);
    weft_gen_yield(self, IPTR(next_err), NULL);
    return IPTR(yield_err);
}

static void *self_child(void *arg)
{
    /* Run inline by the body's task, on the generator's stack. */
    ck_assert_ptr_nonnull(weft__worker_self()->current->host);
    ck_assert_int_eq(weft_gen_next(arg, NULL), -EDEADLK);
    ck_assert_int_eq(weft_gen_yield(arg, NULL, NULL), -EPERM);
    return NULL;
}

static void *resumes_itself(weft_gen *self, void *arg)
{
    (void)arg;
    void *v = IPTR(1);
    ck_assert_int_eq(weft_gen_next(self, &v), -EDEADLK);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(weft_gen_send(self, IPTR(5), NULL), -EDEADLK);
    ck_assert_int_eq(weft_gen_close(self), -EDEADLK);
    ck_assert_int_eq(weft_gen_yield_from(self, self, NULL), -EDEADLK);
    /* Through another generator's body. */
    weft_gen *h;
    ck_assert_int_eq(weft_gen_new(&h, resumes_its_caller, self), 0);
    ck_assert_int_eq(weft_gen_next(h, &v), 0);
    ck_assert_int_eq(PINT(v), -EDEADLK);
    ck_assert_int_eq(weft_gen_next(h, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), -EPERM);
    weft_gen_free(h);
    /* From a child task run inline on this stack. */
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, self_child, self), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    /* None of that broke it. */
    ck_assert_int_eq(weft_gen_yield(self, IPTR(7), NULL), 0);
    return IPTR(8);
}

static void *self_resume_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, resumes_itself, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 7);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 8);
    weft_gen_free(g);
    return NULL;
}

START_TEST(a_generator_resuming_itself_is_edeadlk)
{
    run_on(1, self_resume_main, NULL);
}
END_TEST

static void *yield_outside_main(void *arg)
{
    (void)arg;
    weft_gen *g, *h;
    ck_assert_int_eq(weft_gen_new(&g, until_closed, NULL), 0);
    ck_assert_int_eq(weft_gen_new(&h, count3, NULL), 0);
    void *sent = IPTR(1);
    ck_assert_int_eq(weft_gen_yield(g, NULL, &sent), -EPERM); /* unstarted */
    ck_assert_ptr_null(sent);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    ck_assert_int_eq(weft_gen_yield(g, NULL, NULL), -EPERM); /* suspended */
    ck_assert_int_eq(weft_gen_yield_from(g, h, NULL), -EPERM);
    weft_gen_free(g);
    weft_gen_free(h);
    return NULL;
}

START_TEST(yield_outside_the_generators_own_body_is_eperm)
{
    cleanups = 0;
    run_on(1, yield_outside_main, NULL);
    ck_assert_int_eq(cleanups, 1);
}
END_TEST

static void *bad_arguments_main(void *arg)
{
    (void)arg;
    weft_gen *g = NULL;
    ck_assert_int_eq(weft_gen_new(NULL, count3, NULL), -EINVAL);
    ck_assert_int_eq(weft_gen_new(&g, NULL, NULL), -EINVAL);
    struct weft_gen_opts small = {.stack_size = 1024};
    struct weft_gen_opts huge = {.stack_size = (size_t)2 << 30};
    ck_assert_int_eq(weft_gen_new_opts(&g, count3, NULL, &small), -EINVAL);
    ck_assert_int_eq(weft_gen_new_opts(&g, count3, NULL, &huge), -EINVAL);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(weft_gen_next(NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_gen_send(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_gen_yield(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_gen_yield_from(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(weft_gen_close(NULL), -EINVAL);
    ck_assert(!weft_gen_closing(NULL));
    weft_gen_free(NULL);
    return NULL;
}

START_TEST(null_arguments_and_bad_stack_sizes_are_einval)
{
    run_on(1, bad_arguments_main, NULL);
}
END_TEST

START_TEST(calls_outside_a_task_are_eperm)
{
    weft_gen *g = NULL;
    ck_assert_int_eq(weft_gen_new(&g, count3, NULL), -EPERM);
    ck_assert_ptr_null(g);
    g = (weft_gen *)&g; /* never dereferenced: the task check comes first */
    ck_assert_int_eq(weft_gen_next(g, NULL), -EPERM);
    ck_assert_int_eq(weft_gen_send(g, NULL, NULL), -EPERM);
    ck_assert_int_eq(weft_gen_yield(g, NULL, NULL), -EPERM);
    ck_assert_int_eq(weft_gen_yield_from(g, g, NULL), -EPERM);
    ck_assert_int_eq(weft_gen_close(g), -EPERM);
}
END_TEST

/* Holds the generator (and its worker: it never suspends) until another
 * task has tried to resume it. */
static _Atomic int inside, tried;

static void *holds_until_tried(weft_gen *self, void *arg)
{
    (void)arg;
    atomic_store(&inside, 1);
    while (!atomic_load(&tried))
        cpu_relax();
    ck_assert_int_eq(weft_gen_yield(self, IPTR(1), NULL), 0);
    return IPTR(2);
}

static void *tries_to_resume(void *arg)
{
    weft_gen *g = arg;
    while (!atomic_load(&inside))
        cpu_relax();
    void *v = IPTR(1);
    ck_assert_int_eq(weft_gen_next(g, &v), -EBUSY);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(weft_gen_send(g, IPTR(3), NULL), -EBUSY);
    ck_assert_int_eq(weft_gen_close(g), -EBUSY);
    ck_assert_int_eq(weft_gen_yield(g, NULL, NULL), -EPERM);
    atomic_store(&tried, 1);
    return NULL;
}

static void *concurrent_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, holds_until_tried, NULL), 0);
    /* The other task cannot start here before the body lets go of this
     * worker: the second worker steals it. */
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, tries_to_resume, g), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 2);
    weft_gen_free(g);
    return NULL;
}

START_TEST(two_tasks_resuming_one_generator_at_once_is_ebusy)
{
    atomic_store(&inside, 0);
    atomic_store(&tried, 0);
    run_on(2, concurrent_main, NULL);
}
END_TEST

/* ---- across workers --------------------------------------------------- */

/* Yields the worker each resume found it on, and the task. */
static unsigned seen_worker[3];
static weft_task *seen_task[3];

static void *records_workers(weft_gen *self, void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        seen_worker[i] = worker_id();
        seen_task[i] = weft_self();
        ck_assert_int_eq(weft_gen_yield(self, IPTR(i), NULL), 0);
    }
    return NULL;
}

static _Atomic int other_done;

static void *resume_elsewhere(void *arg)
{
    void *v;
    ck_assert_int_eq(weft_gen_next(arg, &v), 0);
    ck_assert_int_eq(PINT(v), 1);
    atomic_store(&other_done, 1);
    return NULL;
}

static void *other_worker_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, records_workers, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 0);
    /* Hold this worker until the other task, which can only run on the
     * other worker, has resumed g. */
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, resume_elsewhere, g), 0);
    while (!atomic_load(&other_done))
        cpu_relax();
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 2);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    weft_gen_free(g);
    ck_assert_uint_ne(seen_worker[0], seen_worker[1]);
    ck_assert_uint_eq(seen_worker[0], seen_worker[2]);
    ck_assert_ptr_eq(seen_task[0], weft_self());
    ck_assert_ptr_eq(seen_task[1], t);
    ck_assert_ptr_eq(seen_task[2], weft_self());
    return NULL;
}

START_TEST(a_generator_resumed_on_another_worker_continues_where_it_stopped)
{
    atomic_store(&other_done, 0);
    run_on(2, other_worker_main, NULL);
}
END_TEST

/* Generators handed around a ring of tasks: passer p resumes what is in
 * its inbox once and hands it to passer p + 1, so no generator is resumed
 * by the same task twice in a row. */
#define MAX_PASSERS 8
#define VALUES_PER_GEN 20

struct inbox {
    pthread_mutex_t lock; /* held only between suspensions */
    weft_gen **items;
    unsigned long n;
};

#define MAX_WORKERS 4

static struct {
    unsigned workers;
    unsigned passers;
    unsigned long ngen;
    struct inbox box[MAX_PASSERS];
    _Atomic unsigned arrived;                 /* passers that have started */
    _Atomic unsigned long by_worker[MAX_WORKERS]; /* resumes made on each worker */
    _Atomic unsigned char *counts; /* per value: times it came out */
    _Atomic unsigned char *returned; /* per generator: times DONE came out */
    _Atomic unsigned long finished;
} ring;

static void inbox_push(unsigned p, weft_gen *g)
{
    struct inbox *b = &ring.box[p];
    pthread_mutex_lock(&b->lock);
    b->items[b->n++] = g;
    pthread_mutex_unlock(&b->lock);
}

static weft_gen *inbox_pop(unsigned p)
{
    struct inbox *b = &ring.box[p];
    pthread_mutex_lock(&b->lock);
    weft_gen *g = b->n ? b->items[--b->n] : NULL;
    pthread_mutex_unlock(&b->lock);
    return g;
}

static void *handed_around(weft_gen *self, void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    weft_task *last = NULL;
    for (uintptr_t j = 0; j < VALUES_PER_GEN; j++) {
        weft_task *me = weft_self();
        CHECK(me != last);
        last = me;
        CHECK(weft_gen_yield(self, IPTR(i * VALUES_PER_GEN + j), NULL) == 0);
    }
    return IPTR(i + 1);
}

/* The first `workers` passers to start wait for one another here without
 * suspending. They can only all arrive at once on as many distinct workers
 * (the scheduler keeps every worker busy while tasks wait to run: suite
 * sched's work_conservation), and each then resumes a generator from its
 * own inbox, which nobody else pops and which starts non-empty, before it
 * first suspends, so on that worker. Without this, whether a second worker
 * resumes anything at all depends on how soon it is woken and steals (a
 * small run, under a sanitizer, can end first), and a count of distinct
 * workers could only be asserted to be at least 1. The spin is bounded: a
 * worker that never comes fails the CHECK instead of hanging the run. */
static void meet_the_other_workers(void)
{
    if (atomic_fetch_add(&ring.arrived, 1) >= ring.workers)
        return;
    uint64_t until = weft_now() + 30 * WEFT_SEC;
    while (atomic_load(&ring.arrived) < ring.workers && weft_now() < until)
        cpu_relax();
    CHECK(atomic_load(&ring.arrived) >= ring.workers);
}

static void *passer(void *arg)
{
    unsigned p = (unsigned)(uintptr_t)arg;
    meet_the_other_workers();
    while (atomic_load(&ring.finished) < ring.ngen) {
        weft_gen *g = inbox_pop(p);
        if (!g) {
            CHECK(weft_yield() == 0);
            continue;
        }
        /* The body runs on this thread until it yields (it never suspends
         * the task): this is the worker that resumes it. */
        unsigned wid = worker_id();
        CHECK(wid < ring.workers);
        if (wid < ring.workers)
            atomic_fetch_add(&ring.by_worker[wid], 1);
        void *v;
        int r = weft_gen_next(g, &v);
        if (r == 0) {
            CHECK(PINT(v) >= 0 && (unsigned long)PINT(v) < ring.ngen * VALUES_PER_GEN);
            atomic_fetch_add(&ring.counts[PINT(v)], 1);
            inbox_push((p + 1) % ring.passers, g);
        } else {
            CHECK(r == WEFT_GEN_DONE);
            CHECK(PINT(v) >= 1 && (unsigned long)PINT(v) <= ring.ngen);
            atomic_fetch_add(&ring.returned[PINT(v) - 1], 1);
            weft_gen_free(g);
            atomic_fetch_add(&ring.finished, 1);
        }
        CHECK(weft_yield() == 0);
    }
    return NULL;
}

static void *handoff_main(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < ring.ngen; i++) {
        weft_gen *g;
        ck_assert_int_eq(weft_gen_new(&g, handed_around, IPTR(i)), 0);
        inbox_push((unsigned)(i % ring.passers), g);
    }
    weft_task *t[MAX_PASSERS];
    for (unsigned p = 0; p < ring.passers; p++)
        ck_assert_int_eq(weft_spawn(&t[p], passer, IPTR(p)), 0);
    for (unsigned p = 0; p < ring.passers; p++)
        ck_assert_int_eq(weft_join(t[p], NULL), 0);
    return NULL;
}

static const unsigned handoff_workers[] = {1, 2, 4};

START_TEST(generators_handed_between_tasks_on_n_workers_yield_every_value_once)
{
    unsigned workers = handoff_workers[_i];
    ring.workers = workers;
    ring.passers = 2 * workers;
    ring.ngen = scaled(2000);
    if (ring.ngen < 16)
        ring.ngen = 16;
    atomic_store(&ring.finished, 0);
    atomic_store(&ring.arrived, 0);
    for (unsigned w = 0; w < MAX_WORKERS; w++)
        atomic_store(&ring.by_worker[w], 0);
    ring.counts = calloc(ring.ngen * VALUES_PER_GEN, 1);
    ring.returned = calloc(ring.ngen, 1);
    ck_assert(ring.counts && ring.returned);
    for (unsigned p = 0; p < ring.passers; p++) {
        pthread_mutex_init(&ring.box[p].lock, NULL);
        ring.box[p].items = calloc(ring.ngen, sizeof(weft_gen *));
        ring.box[p].n = 0;
    }
    run_on(workers, handoff_main, NULL);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_uint_eq(atomic_load(&ring.finished), ring.ngen);
    for (unsigned long v = 0; v < ring.ngen * VALUES_PER_GEN; v++)
        ck_assert_msg(ring.counts[v] == 1, "value %lu came out %u times", v,
                      (unsigned)ring.counts[v]);
    for (unsigned long i = 0; i < ring.ngen; i++)
        ck_assert_msg(ring.returned[i] == 1, "generator %lu returned %u times", i,
                      (unsigned)ring.returned[i]);
    /* Every resume was made on a valid worker and counted once (each value
     * and each return came out of one), and every worker made some. */
    unsigned long resumes = 0;
    unsigned distinct = 0;
    for (unsigned w = 0; w < workers; w++) {
        resumes += atomic_load(&ring.by_worker[w]);
        distinct += atomic_load(&ring.by_worker[w]) != 0;
    }
    ck_assert_uint_eq(resumes, ring.ngen * (VALUES_PER_GEN + 1));
    ck_assert_uint_eq(distinct, workers);
    for (unsigned p = 0; p < ring.passers; p++) {
        ck_assert_uint_eq(ring.box[p].n, 0);
        free(ring.box[p].items);
        pthread_mutex_destroy(&ring.box[p].lock);
    }
    free((void *)ring.counts);
    free((void *)ring.returned);
}
END_TEST

/* ---- bodies that suspend their task ------------------------------------ */

static void *add_one(void *arg)
{
    return IPTR(PINT(arg) + 1);
}

/* Sleeps, yields the task and joins a child between its yields; yields
 * i, then the task's handle, for each i. */
static void *suspends_its_task(weft_gen *self, void *arg)
{
    (void)arg;
    for (intptr_t i = 0; i < 10; i++) {
        weft_task *me = weft_self();
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
        ck_assert_ptr_eq(weft_self(), me);
        ck_assert_int_eq(weft_yield(), 0);
        weft_task *t;
        ck_assert_int_eq(weft_spawn(&t, add_one, IPTR(i)), 0);
        void *r;
        ck_assert_int_eq(weft_join(t, &r), 0);
        ck_assert_int_eq(PINT(r), i + 1);
        ck_assert_ptr_eq(weft_self(), me);
        ck_assert_int_eq(weft_gen_yield(self, IPTR(i), NULL), 0);
        ck_assert_int_eq(weft_gen_yield(self, weft_self(), NULL), 0);
    }
    return NULL;
}

/* Keeps the other workers busy with tasks that come and go. */
static _Atomic int stop_noise;

static void *noise(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_noise))
        CHECK(weft_yield() == 0);
    return NULL;
}

static void *suspending_body_main(void *arg)
{
    (void)arg;
    weft_task *n[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_spawn(&n[i], noise, NULL), 0);
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, suspends_its_task, NULL), 0);
    void *v;
    for (intptr_t i = 0; i < 10; i++) {
        ck_assert_int_eq(weft_gen_next(g, &v), 0);
        ck_assert_int_eq(PINT(v), i);
        ck_assert_int_eq(weft_gen_next(g, &v), 0);
        ck_assert_ptr_eq(v, weft_self());
    }
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    weft_gen_free(g);
    atomic_store(&stop_noise, 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_join(n[i], NULL), 0);
    return NULL;
}

START_TEST(a_body_may_sleep_yield_and_join)
{
    atomic_store(&stop_noise, 0);
    run_on(2, suspending_body_main, NULL);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

/* A task cancelled while it is suspended inside a body: the body's wait
 * returns -ECANCELED (the body runs as that task, so the request is its
 * own), once, and the generator is no worse for it: another task resumes
 * it afterwards, or the cancelled task closes it. Round 0: the body waits
 * in a receive and yields the outcome; main then resumes it and it takes
 * a value sent meanwhile. Round 1: the body sleeps and yields the outcome;
 * the cancelled task closes it and its cleanup runs. */
static weft_chan *body_chan;
static _Atomic int body_entered, body_cleanups;
static weft_task *body_runner; /* weft_self() in the body, at its wait */

#define BODY_BOUND (30 * WEFT_SEC) /* only ends a wait whose cancel is lost */

static void *waits_in_body(weft_gen *self, void *arg)
{
    body_runner = weft_self();
    atomic_store(&body_entered, 1);
    int err;
    if (arg == NULL)
        err = weft_chan_recv_until(body_chan, NULL, weft_now() + BODY_BOUND);
    else
        err = weft_sleep(BODY_BOUND);
    CHECK(weft_self() == body_runner);
    int y = weft_gen_yield(self, IPTR(err), NULL);
    if (y == -EPIPE) {
        atomic_fetch_add(&body_cleanups, 1);
        return NULL;
    }
    CHECK(y == 0);
    void *v = NULL;
    err = weft_chan_recv_until(body_chan, &v, weft_now() + BODY_BOUND);
    return err < 0 ? IPTR(err) : v;
}

struct body_round {
    weft_gen *g;
    int round;
};

/* Resumes the body once; returns what its wait returned. Round 1 then
 * closes it. */
static void *resumes_into_a_wait(void *arg)
{
    const struct body_round *br = arg;
    void *v = IPTR(1);
    CHECK(weft_gen_next(br->g, &v) == 0);
    /* One request, delivered once, inside the body: this task's next
     * suspension is not cancelled. */
    CHECK(weft_sleep(10 * WEFT_USEC) == 0);
    if (br->round == 1)
        CHECK(weft_gen_close(br->g) == 0);
    return v;
}

static void *cancel_in_body_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {
        atomic_store(&body_entered, 0);
        atomic_store(&body_cleanups, 0);
        body_runner = NULL;
        body_chan = NULL;
        if (round == 0)
            ck_assert_int_eq(weft_chan_new(&body_chan, 1), 0);
        weft_gen *g;
        ck_assert_int_eq(weft_gen_new(&g, waits_in_body, round ? IPTR(1) : NULL), 0);
        struct body_round br = {g, round};
        weft_task *t;
        ck_assert_int_eq(weft_spawn(&t, resumes_into_a_wait, &br), 0);
        uint64_t until = weft_now() + BODY_BOUND;
        while (!atomic_load(&body_entered) && weft_now() < until)
            ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
        ck_assert_int_eq(atomic_load(&body_entered), 1);
        ck_assert_ptr_eq(body_runner, t);
        /* Usually inside the wait by now (always on one worker); a request
         * that came just before it would end it the same way. */
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
        ck_assert_int_eq(weft_cancel(t), 0);
        void *r = NULL;
        ck_assert_int_eq(weft_join(t, &r), 0);
        ck_assert_int_eq(PINT(r), -ECANCELED);
        void *v = NULL;
        if (round == 0) {
            /* Suspended at its yield: resumable by this task. */
            ck_assert_int_eq(weft_chan_try_send(body_chan, IPTR(11)), 0);
            ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
            ck_assert_int_eq(PINT(v), 11);
            ck_assert_int_eq(weft_chan_free(body_chan), 0);
            body_chan = NULL;
        } else {
            ck_assert_int_eq(atomic_load(&body_cleanups), 1);
        }
        ck_assert_int_eq(weft_gen_next(g, &v), -EPIPE);
        weft_gen_free(g);
    }
    return NULL;
}

static const unsigned cancel_workers[] = {1, 2};

START_TEST(a_task_cancelled_inside_a_body_gets_ecanceled_there_and_the_generator_goes_on)
{
    run_on(cancel_workers[_i], cancel_in_body_main, NULL);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

/* The body's task is moved to the other worker inside the body, for
 * certain: a child that the body's worker cannot run (the body holds it)
 * runs on the other worker and finishes there once its joiner is
 * registered, which makes the joiner runnable there; meanwhile a hog holds
 * the body's old worker, so that it cannot steal the joiner back. */
static _Atomic int child_started, moved;

static void *finish_after_joined(void *arg)
{
    (void)arg;
    atomic_store(&child_started, 1);
    struct weft__task *me = weft__worker_self()->current;
    uintptr_t j;
    while ((j = atomic_load(&me->join)) == 0 || (j & WEFT_J_PENDING))
        cpu_relax();
    return NULL;
}

static void *hog_until_moved(void *arg)
{
    (void)arg;
    while (!atomic_load(&moved))
        cpu_relax();
    return NULL;
}

static unsigned body_last_worker;

static void *moves_inside(weft_gen *self, void *arg)
{
    (void)arg;
    weft_task *me = weft_self();
    unsigned before = worker_id();
    weft_task *t, *h;
    ck_assert_int_eq(weft_spawn(&t, finish_after_joined, NULL), 0);
    while (!atomic_load(&child_started))
        cpu_relax();
    ck_assert_int_eq(weft_spawn(&h, hog_until_moved, NULL), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    unsigned after = worker_id();
    ck_assert_ptr_eq(weft_self(), me);
    atomic_store(&moved, 1);
    ck_assert_int_eq(weft_join(h, NULL), 0);
    ck_assert_uint_ne(after, before);
    body_last_worker = worker_id();
    ck_assert_int_eq(weft_gen_yield(self, IPTR(after), NULL), 0);
    return IPTR(1);
}

static void *moves_inside_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, moves_inside, NULL), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    /* The task left the body on the worker it moved to, and the resume
     * returned there. */
    ck_assert_uint_eq(worker_id(), body_last_worker);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), 1);
    weft_gen_free(g);
    return NULL;
}

START_TEST(a_task_moved_to_another_worker_inside_a_body_continues_there)
{
    alarm(WATCHDOG_S);
    atomic_store(&child_started, 0);
    atomic_store(&moved, 0);
    /* No inline joins: the child must be a task of its own. */
    struct weft_config cfg = config_with(2, 0);
    ck_assert_int_eq(weft_run(&cfg, moves_inside_main, NULL, NULL), 0);
    assert_clean_shutdown();
}
END_TEST

/* ---- stacks ----------------------------------------------------------- */

static void *stacks_main(void *arg)
{
    (void)arg;
    unsigned long n = scaled(1000);
    if (n < 4)
        n = 4;
    weft_gen **g = calloc(n, sizeof g[0]);
    ck_assert_ptr_nonnull(g);
    uint64_t base = stacks_in_use();
    uint64_t slabs = 0;
    for (int round = 0; round < 3; round++) {
        for (unsigned long i = 0; i < n; i++)
            ck_assert_int_eq(weft_gen_new(&g[i], until_closed, NULL), 0);
        ck_assert_uint_eq(stacks_in_use(), base); /* none before a first resume */
        for (unsigned long i = 0; i < n; i++)
            ck_assert_int_eq(weft_gen_next(g[i], NULL), 0);
        ck_assert_uint_eq(stacks_in_use(), base + n);
        /* A third closed, a third freed while suspended, a third left
         * unstarted-then-freed after a close. */
        for (unsigned long i = 0; i < n; i++) {
            if (i % 3 == 0)
                ck_assert_int_eq(weft_gen_close(g[i]), 0);
            weft_gen_free(g[i]);
        }
        ck_assert_uint_eq(stacks_in_use(), base);
        ck_assert_int_eq(cleanups, (int)(n * (unsigned long)(round + 1)));
        struct weft_stats s;
        ck_assert_int_eq(weft_stats_get(&s), 0);
        if (round == 0)
            slabs = s.stack_slabs;
        ck_assert_uint_eq(s.stack_slabs, slabs); /* reused, not mapped again */
    }
    free(g);
    return NULL;
}

START_TEST(many_generators_give_their_stacks_back)
{
    cleanups = 0;
    run_on(1, stacks_main, NULL);
}
END_TEST

static void *big_frame(weft_gen *self, void *arg)
{
    (void)arg;
    const struct weft__fiber *f = weft__worker_self()->current->fib;
    ck_assert_ptr_eq(weft__gen_of_fiber(f), self);
    ck_assert_uint_eq(f->stack_len, 256 * 1024);
    ck_assert_str_eq(self->name, "big");
    volatile char buf[160 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 1024)
        buf[i] = (char)i;
    return IPTR(buf[1024]);
}

static void *opts_main(void *arg)
{
    (void)arg;
    struct weft_gen_opts o = {.name = "big", .stack_size = 256 * 1024};
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new_opts(&g, big_frame, NULL, &o), 0);
    void *v;
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), (char)1024);
    weft_gen_free(g);
    return NULL;
}

START_TEST(opts_set_the_stack_size_and_name)
{
    run_on(1, opts_main, NULL);
}
END_TEST

/* PEP 789: a body that opened a task group may not yield until the group
 * is done; after waiting for it, it may. */
static void *short_member(void *arg)
{
    (void)arg;
    return IPTR(weft_sleep(100 * WEFT_USEC));
}

static void *scoped_body(weft_gen *self, void *arg)
{
    (void)arg;
    weft_group *grp;
    CHECK(weft_group_new(&grp) == 0);
    CHECK(weft_group_spawn(grp, short_member, NULL) == 0);
    int refused = weft_gen_yield(self, IPTR(1), NULL); /* group open */
    CHECK(weft_group_wait(grp) == 0);
    int after = weft_gen_yield(self, IPTR(2), NULL); /* allowed again */
    CHECK(weft_group_free(grp) == 0);
    return IPTR(refused * 10 + after);
}

static void *scope_main(void *arg)
{
    (void)arg;
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new(&g, scoped_body, NULL), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_gen_next(g, &v), 0);
    ck_assert_int_eq(PINT(v), 2);
    ck_assert_int_eq(weft_gen_next(g, &v), WEFT_GEN_DONE);
    ck_assert_int_eq(PINT(v), -EPERM * 10);
    weft_gen_free(g);
    return NULL;
}

START_TEST(no_yield_inside_a_task_group_opened_in_the_body)
{
    run_on(1, scope_main, NULL);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

static volatile int limit = 1 << 30; /* never reached: the stack ends first */

__attribute__((noinline)) static int recurse(char *prev, int depth)
{
    char frame[512];
    frame[0] = (char)depth;
    frame[1] = prev ? prev[0] : 0;
    __asm__ volatile("" : : "r"(frame) : "memory"); /* keep the frame real */
    if (depth >= limit)
        return frame[1];
    return recurse(frame, depth + 1) + frame[1];
}

static void *overflows(weft_gen *self, void *arg)
{
    (void)self;
    (void)arg;
    return IPTR(recurse(NULL, 0));
}

static void *overflow_main(void *arg)
{
    (void)arg;
    struct weft_gen_opts o = {.name = "deep", .stack_size = 64 * 1024};
    weft_gen *g;
    ck_assert_int_eq(weft_gen_new_opts(&g, overflows, NULL, &o), 0);
    weft_gen_next(g, NULL);
    return NULL;
}

START_TEST(overflow_in_a_body_names_the_generator_and_its_stack)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        struct weft_config cfg = config_with(1, 32 * 1024);
        weft_run(&cfg, overflow_main, NULL, NULL);
        _exit(0);
    }
    close(fds[1]);
    char out[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child did not abort (status %#x): %s", status, out);
    ck_assert_str_eq(out, "weft: stack overflow in generator \"deep\", resumed by task \"main\" "
                          "(id 1): its stack is 65536 bytes; raise WEFT_STACK_SIZE or "
                          "weft_gen_opts.stack_size\n");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("gen");
    tcase_set_timeout(tc, WATCHDOG_S + 30);
    tcase_add_test(tc, next_yields_values_in_order_then_done_with_the_return_value);
    tcase_add_test(tc, next_after_done_is_epipe);
    tcase_add_test(tc, send_delivers_the_value_to_the_suspended_yield);
    tcase_add_test(tc, send_of_a_value_to_an_unstarted_generator_is_einval);
    tcase_add_test(tc, body_runs_as_the_task_that_resumes_it);
    tcase_add_test(tc, yield_from_forwards_next_and_returns_the_inner_result);
    tcase_add_test(tc, yield_from_forwards_send);
    tcase_add_test(tc, yield_from_forwards_close_to_the_inner_generator);
    tcase_add_test(tc, yield_from_a_finished_generator_is_epipe);
    tcase_add_test(tc, close_of_an_unstarted_generator_never_runs_it);
    tcase_add_test(tc, close_of_a_suspended_generator_runs_its_cleanup);
    tcase_add_test(tc, close_of_a_finished_generator_does_nothing);
    tcase_add_test(tc, yield_after_close_does_not_suspend_and_close_is_eproto);
    tcase_add_test(tc, free_closes_a_suspended_generator);
    tcase_add_test(tc, a_generator_resuming_itself_is_edeadlk);
    tcase_add_test(tc, yield_outside_the_generators_own_body_is_eperm);
    tcase_add_test(tc, null_arguments_and_bad_stack_sizes_are_einval);
    tcase_add_test(tc, calls_outside_a_task_are_eperm);
    tcase_add_test(tc, two_tasks_resuming_one_generator_at_once_is_ebusy);
    tcase_add_test(tc, a_generator_resumed_on_another_worker_continues_where_it_stopped);
    tcase_add_loop_test(tc, generators_handed_between_tasks_on_n_workers_yield_every_value_once,
                        0, (int)(sizeof handoff_workers / sizeof handoff_workers[0]));
    tcase_add_test(tc, a_body_may_sleep_yield_and_join);
    tcase_add_loop_test(
        tc, a_task_cancelled_inside_a_body_gets_ecanceled_there_and_the_generator_goes_on, 0,
        (int)(sizeof cancel_workers / sizeof cancel_workers[0]));
    tcase_add_test(tc, a_task_moved_to_another_worker_inside_a_body_continues_there);
    tcase_add_test(tc, many_generators_give_their_stacks_back);
    tcase_add_test(tc, opts_set_the_stack_size_and_name);
    tcase_add_test(tc, no_yield_inside_a_task_group_opened_in_the_body);
    tcase_add_test(tc, overflow_in_a_body_names_the_generator_and_its_stack);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
