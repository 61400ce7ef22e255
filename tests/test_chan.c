/*
 * Suite "chan": channels through weft.h, each test on 1 and 2 workers.
 *
 *  - rendezvous_passes_values_in_order: capacity 0, a producer sends
 *    10,000 values, a consumer receives them in order.
 *  - buffered_fills_then_blocks: capacity 4 takes 4 try_sends, the 5th is
 *    -EAGAIN; a blocked sender resumes when a receive makes room, and the
 *    order is kept (buffered values first, then the blocked sender's).
 *  - close_wakes_every_blocked_end: receivers blocked on an empty channel
 *    and senders blocked on a full one all get -EPIPE; buffered values are
 *    received before -EPIPE; send after close -EPIPE; close twice -EPIPE.
 *  - deadlines_and_cancel_lose_nothing: recv_until and send_until time
 *    out; a cancelled blocked sender's value is not delivered; a cancelled
 *    receiver receives nothing, and the next value goes to the next
 *    receiver.
 *  - select_picks_the_ready_one: a select over two receives and a send
 *    completes exactly the ready one; a select that waits is completed by
 *    exactly one peer; select with a deadline times out; a closed channel
 *    is ready with -EPIPE.
 *  - many_producers_many_consumers: 4 producers x 5,000 values through a
 *    capacity-8 channel to 4 consumers: every value received exactly once.
 *  - deadlock_on_channels_is_reported: two tasks wait on a channel nobody
 *    else uses; weft_run returns -EDEADLK and the report names both and
 *    the channel.
 *  - errors: -EINVAL / -EPERM / -EBUSY cases.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static unsigned workers_of[] = {1, 2};

/* ---- order ----------------------------------------------------------- */

#define NVALS 10000

static void *producer(void *arg)
{
    weft_chan *c = arg;
    for (intptr_t i = 1; i <= NVALS; i++)
        CHECK(weft_chan_send(c, IPTR(i)) == 0);
    return NULL;
}

static void *rendezvous_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    ck_assert_int_eq(weft_chan_new(&c, 0), 0);
    weft_task *p;
    ck_assert_int_eq(weft_spawn(&p, producer, c), 0);
    intptr_t bad = 0;
    for (intptr_t i = 1; i <= NVALS; i++) {
        void *v = NULL;
        ck_assert_int_eq(weft_chan_recv(c, &v), 0);
        bad += PINT(v) != i;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(weft_join(p, NULL), 0);
    ck_assert_int_eq(weft_chan_try_recv(c, NULL), -EAGAIN);
    ck_assert_int_eq(weft_chan_free(c), 0);
    return NULL;
}

START_TEST(rendezvous_passes_values_in_order)
{
    run_on_workers(workers_of[_i], rendezvous_main);
}
END_TEST

/* ---- buffering -------------------------------------------------------- */

static _Atomic int sent_fifth;

static void *send_fifth(void *arg)
{
    CHECK(weft_chan_send(arg, IPTR(5)) == 0);
    atomic_store(&sent_fifth, 1);
    return NULL;
}

static void *buffered_main(void *arg)
{
    (void)arg;
    atomic_store(&sent_fifth, 0);
    weft_chan *c;
    ck_assert_int_eq(weft_chan_new(&c, 4), 0);
    for (intptr_t i = 1; i <= 4; i++)
        ck_assert_int_eq(weft_chan_try_send(c, IPTR(i)), 0);
    ck_assert_int_eq(weft_chan_try_send(c, IPTR(99)), -EAGAIN);
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, send_fifth, c), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0);
    ck_assert_int_eq(atomic_load(&sent_fifth), 0); /* still blocked: full */
    for (intptr_t i = 1; i <= 5; i++) {
        void *v = NULL;
        ck_assert_int_eq(weft_chan_recv(c, &v), 0);
        ck_assert_int_eq(PINT(v), i);
    }
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(atomic_load(&sent_fifth), 1);
    ck_assert_int_eq(weft_chan_free(c), 0);
    return NULL;
}

START_TEST(buffered_fills_then_blocks)
{
    run_on_workers(workers_of[_i], buffered_main);
}
END_TEST

/* ---- close -------------------------------------------------------------- */

static _Atomic int blocked;

static void *recv_expect_epipe(void *arg)
{
    atomic_fetch_add(&blocked, 1);
    return IPTR(weft_chan_recv(arg, NULL));
}

static void *send_expect_epipe(void *arg)
{
    atomic_fetch_add(&blocked, 1);
    return IPTR(weft_chan_send(arg, IPTR(1)));
}

static void *close_main(void *arg)
{
    (void)arg;
    atomic_store(&blocked, 0);
    weft_chan *empty, *full;
    ck_assert_int_eq(weft_chan_new(&empty, 0), 0);
    ck_assert_int_eq(weft_chan_new(&full, 2), 0);
    ck_assert_int_eq(weft_chan_try_send(full, IPTR(10)), 0);
    ck_assert_int_eq(weft_chan_try_send(full, IPTR(11)), 0);
    weft_task *t[6];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_spawn(&t[i], recv_expect_epipe, empty), 0);
    for (int i = 3; i < 6; i++)
        ck_assert_int_eq(weft_spawn(&t[i], send_expect_epipe, full), 0);
    while (atomic_load(&blocked) < 6)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(2 * WEFT_MSEC), 0);
    /* On one worker the receivers have surely queued (each ran until it
     * blocked before this task resumed); on two, one may still be on its
     * way, and a free that found nobody would succeed. */
    struct weft_stats st;
    ck_assert_int_eq(weft_stats_get(&st), 0);
    if (st.workers == 1)
        ck_assert_int_eq(weft_chan_free(empty), -EBUSY);
    ck_assert_int_eq(weft_chan_close(empty), 0);
    ck_assert_int_eq(weft_chan_close(full), 0);
    ck_assert_int_eq(weft_chan_close(full), -EPIPE);
    for (int i = 0; i < 6; i++) {
        void *r;
        ck_assert_int_eq(weft_join(t[i], &r), 0);
        ck_assert_int_eq(PINT(r), -EPIPE);
    }
    void *v = NULL;
    ck_assert_int_eq(weft_chan_recv(full, &v), 0);
    ck_assert_int_eq(PINT(v), 10);
    ck_assert_int_eq(weft_chan_recv(full, &v), 0);
    ck_assert_int_eq(PINT(v), 11);
    ck_assert_int_eq(weft_chan_recv(full, &v), -EPIPE);
    ck_assert_int_eq(weft_chan_send(full, NULL), -EPIPE);
    ck_assert_int_eq(weft_chan_try_send(empty, NULL), -EPIPE);
    ck_assert_int_eq(weft_chan_free(empty), 0);
    ck_assert_int_eq(weft_chan_free(full), 0);
    return NULL;
}

START_TEST(close_wakes_every_blocked_end)
{
    run_on_workers(workers_of[_i], close_main);
}
END_TEST

/* ---- deadlines and cancellation ------------------------------------------ */

static void *recv_one(void *arg)
{
    void *v = NULL;
    atomic_fetch_add(&blocked, 1);
    int err = weft_chan_recv(arg, &v);
    return err < 0 ? WEFT_ERR(err) : v;
}

static void *send_seven(void *arg)
{
    atomic_fetch_add(&blocked, 1);
    int err = weft_chan_send(arg, IPTR(7));
    return IPTR(err);
}

static void *deadline_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    ck_assert_int_eq(weft_chan_new(&c, 0), 0);
    ck_assert_int_eq(weft_chan_recv_until(c, NULL, weft_now() + WEFT_MSEC), -ETIMEDOUT);
    ck_assert_int_eq(weft_chan_send_until(c, IPTR(1), weft_now() + WEFT_MSEC), -ETIMEDOUT);

    /* A cancelled sender's value is not delivered. */
    atomic_store(&blocked, 0);
    weft_task *s;
    ck_assert_int_eq(weft_spawn(&s, send_seven, c), 0);
    while (atomic_load(&blocked) < 1)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    ck_assert_int_eq(weft_cancel(s), 0);
    void *r;
    ck_assert_int_eq(weft_join(s, &r), 0);
    ck_assert_int_eq(PINT(r), -ECANCELED);
    ck_assert_int_eq(weft_chan_try_recv(c, NULL), -EAGAIN);

    /* A cancelled receiver gets nothing; the value goes to the next one. */
    atomic_store(&blocked, 0);
    weft_task *r1, *r2;
    ck_assert_int_eq(weft_spawn(&r1, recv_one, c), 0);
    while (atomic_load(&blocked) < 1)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_spawn(&r2, recv_one, c), 0);
    while (atomic_load(&blocked) < 2)
        ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    ck_assert_int_eq(weft_cancel(r1), 0);
    ck_assert_int_eq(weft_chan_send(c, IPTR(42)), 0);
    ck_assert_int_eq(weft_join(r1, &r), 0);
    ck_assert_int_eq(weft_err_of(r), -ECANCELED);
    ck_assert_int_eq(weft_join(r2, &r), 0);
    ck_assert_int_eq(PINT(r), 42);
    ck_assert_int_eq(weft_chan_free(c), 0);
    return NULL;
}

START_TEST(deadlines_and_cancel_lose_nothing)
{
    run_on_workers(workers_of[_i], deadline_main);
}
END_TEST

/* ---- select ------------------------------------------------------------------ */

static void *send_later(void *arg)
{
    CHECK(weft_sleep(2 * WEFT_MSEC) == 0);
    CHECK(weft_chan_send(arg, IPTR(55)) == 0);
    return NULL;
}

static void *select_main(void *arg)
{
    (void)arg;
    weft_chan *a, *b, *out;
    ck_assert_int_eq(weft_chan_new(&a, 1), 0);
    ck_assert_int_eq(weft_chan_new(&b, 1), 0);
    ck_assert_int_eq(weft_chan_new(&out, 0), 0);
    ck_assert_int_eq(weft_chan_try_send(b, IPTR(2)), 0);
    struct weft_chan_op ops[3] = {
        {.chan = a, .dir = WEFT_CHAN_RECV},
        {.chan = b, .dir = WEFT_CHAN_RECV},
        {.chan = out, .dir = WEFT_CHAN_SEND, .value = IPTR(9)},
    };
    ck_assert_int_eq(weft_chan_select(ops, 3, WEFT_NEVER), 1);
    ck_assert_int_eq(ops[1].status, 0);
    ck_assert_int_eq(PINT(ops[1].value), 2);
    ck_assert_int_eq(weft_chan_try_recv(b, NULL), -EAGAIN); /* taken once */

    /* Nothing ready: it waits; a late sender on a completes exactly it. */
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, send_later, a), 0);
    ops[0].value = ops[1].value = NULL;
    ck_assert_int_eq(weft_chan_select(ops, 2, WEFT_NEVER), 0);
    ck_assert_int_eq(PINT(ops[0].value), 55);
    ck_assert_ptr_null(ops[1].value);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_chan_try_recv(a, NULL), -EAGAIN);

    /* A deadline. */
    ck_assert_int_eq(weft_chan_select(ops, 3, weft_now() + WEFT_MSEC), -ETIMEDOUT);
    /* A closed channel is ready, with -EPIPE. */
    ck_assert_int_eq(weft_chan_close(b), 0);
    ck_assert_int_eq(weft_chan_select(ops, 2, WEFT_NEVER), 1);
    ck_assert_int_eq(ops[1].status, -EPIPE);
    ck_assert_int_eq(weft_chan_select(NULL, 1, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_chan_select(ops, 0, WEFT_NEVER), -EINVAL);
    ck_assert_int_eq(weft_chan_free(a), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
    ck_assert_int_eq(weft_chan_free(out), 0);
    return NULL;
}

START_TEST(select_picks_the_ready_one)
{
    run_on_workers(workers_of[_i], select_main);
}
END_TEST

/* ---- many to many --------------------------------------------------------------- */

#define NPROD 4
#define PER_PROD 5000

static _Atomic unsigned char seen[NPROD * PER_PROD];

static void *mm_producer(void *arg)
{
    struct {
        weft_chan *c;
        intptr_t base;
    } *p = arg;
    for (intptr_t i = 0; i < PER_PROD; i++)
        CHECK(weft_chan_send(p->c, IPTR(p->base + i + 1)) == 0);
    return NULL;
}

static void *mm_consumer(void *arg)
{
    weft_chan *c = arg;
    void *v;
    intptr_t n = 0;
    while (weft_chan_recv(c, &v) == 0) {
        atomic_fetch_add(&seen[PINT(v) - 1], 1);
        n++;
    }
    return IPTR(n);
}

static void *many_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < NPROD * PER_PROD; i++)
        atomic_store(&seen[i], 0);
    weft_chan *c;
    ck_assert_int_eq(weft_chan_new(&c, 8), 0);
    struct {
        weft_chan *c;
        intptr_t base;
    } pa[NPROD];
    weft_task *prod[NPROD], *cons[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(weft_spawn(&cons[i], mm_consumer, c), 0);
    for (int i = 0; i < NPROD; i++) {
        pa[i].c = c;
        pa[i].base = (intptr_t)i * PER_PROD;
        ck_assert_int_eq(weft_spawn(&prod[i], mm_producer, &pa[i]), 0);
    }
    for (int i = 0; i < NPROD; i++)
        ck_assert_int_eq(weft_join(prod[i], NULL), 0);
    ck_assert_int_eq(weft_chan_close(c), 0);
    intptr_t total = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        ck_assert_int_eq(weft_join(cons[i], &r), 0);
        total += PINT(r);
    }
    ck_assert_int_eq(total, NPROD * PER_PROD);
    int bad = 0;
    for (int i = 0; i < NPROD * PER_PROD; i++)
        bad += atomic_load(&seen[i]) != 1;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(weft_chan_free(c), 0);
    return NULL;
}

START_TEST(many_producers_many_consumers)
{
    run_on_workers(workers_of[_i], many_main);
}
END_TEST

/* Every task blocked on channels nobody will use: the run ends with
 * -EDEADLK and a report naming each task and what it waits on. */
static void *stuck_recv(void *arg)
{
    return IPTR(weft_chan_recv(arg, NULL));
}

static void *deadlock_main(void *arg)
{
    (void)arg;
    weft_chan *c;
    CHECK(weft_chan_new(&c, 0) == 0);
#ifdef __SANITIZE_ADDRESS__
    /* It still lists the deadlocked tasks when the run ends, so it cannot
     * be freed (weft_run's documentation): dropped on purpose. */
    __lsan_ignore_object(c);
#endif
    weft_task *t;
    CHECK(weft_spawn_opts(&t, stuck_recv, c, &(struct weft_task_opts){.name = "stuck"}) == 0);
    CHECK(weft_chan_send(c, NULL) == 0); /* the one value: stuck takes it */
    CHECK(weft_join(t, NULL) == 0);
    /* Unnamed: the report shows it as "(unnamed)", as the overflow
     * reports do. */
    CHECK(weft_spawn(&t, stuck_recv, c) == 0);
    weft_chan_recv(c, NULL); /* never returns: both wait for a sender */
    return NULL;
}

START_TEST(deadlock_on_channels_is_reported)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    start_capture();
    int err = weft_run(&cfg, deadlock_main, NULL, NULL);
    const char *said = stop_capture();
    ck_assert_int_eq(err, -EDEADLK);
    ck_assert_msg(strstr(said, "deadlock: 2 tasks are blocked") != NULL, "stderr: %s", said);
    ck_assert_msg(strstr(said, "task \"main\" (id 1): blocked on channel 0x") != NULL,
                  "stderr: %s", said);
    ck_assert_msg(strstr(said, "task \"(unnamed)\" (id ") != NULL, "stderr: %s", said);
    ck_assert_msg(strstr(said, "task \"stuck\"") == NULL, "stderr: %s", said);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

START_TEST(errors)
{
    weft_chan *c;
    ck_assert_int_eq(weft_chan_new(NULL, 0), -EINVAL);
    ck_assert_int_eq(weft_chan_new(&c, (size_t)1 << 31), -EINVAL);
    ck_assert_int_eq(weft_chan_new(&c, 1), 0);
    ck_assert_int_eq(weft_chan_send(c, NULL), -EPERM); /* outside a task */
    ck_assert_int_eq(weft_chan_recv(c, NULL), -EPERM);
    ck_assert_int_eq(weft_chan_try_send(c, IPTR(3)), 0);
    void *v = NULL;
    ck_assert_int_eq(weft_chan_try_recv(c, &v), 0);
    ck_assert_int_eq(PINT(v), 3);
    ck_assert_int_eq(weft_chan_close(NULL), -EINVAL);
    ck_assert_int_eq(weft_chan_free(NULL), -EINVAL);
    ck_assert_int_eq(weft_chan_free(c), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("chan");
    TCase *tc = tcase_create("chan");
    tcase_set_timeout(tc, 60);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, rendezvous_passes_values_in_order, 0, n);
    tcase_add_loop_test(tc, buffered_fills_then_blocks, 0, n);
    tcase_add_loop_test(tc, close_wakes_every_blocked_end, 0, n);
    tcase_add_loop_test(tc, deadlines_and_cancel_lose_nothing, 0, n);
    tcase_add_loop_test(tc, select_picks_the_ready_one, 0, n);
    tcase_add_loop_test(tc, many_producers_many_consumers, 0, n);
    tcase_add_loop_test(tc, deadlock_on_channels_is_reported, 0, n);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
