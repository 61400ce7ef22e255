/*
 * Stress "cancel": 100,000 cancellations racing completions, at
 * WEFT_WORKERS = 1, 2 and 4, counted.
 *
 * Tasks come in batches of 1,000. Each sleeps a few microseconds, awaits
 * one of the batch's futures, receives from the batch's channel (fed by a
 * feeder task), or joins a child that sleeps, and records
 * how its wait ended. While they run, a canceller task cancels every one
 * of them at a random moment, and a resolver task settles the futures at
 * random moments, so cancellations land before, during and after the
 * waits, and race the wake-ups. Checked per task and per batch:
 *  - every task ends exactly once, as completed or as cancelled;
 *  - a task whose weft_cancel() returned -EALREADY was not cancelled;
 *  - an awaiter that completed got its future's value (nothing else);
 *  - every future can be freed afterwards: no waiter was left queued;
 *  - every channel value is received exactly once, by a receiver that was
 *    not cancelled or by the final drain;
 *  - a child joined by a cancelled joiner is still joinable and joined;
 *  - the runtime shuts down clean (no task, stack or timer left).
 *
 * Then cancels from a thread that is not a worker, at 1 and 2 workers:
 * the thread cancels a task each time it has seen the task's last
 * cancellation arrive, so that the next one lands while the task enters
 * its next wait (a receive nobody sends to), often inside that wait's
 * commit, the window that a runtime of one worker closes with
 * membarrier() rather than a fence (waitq.c, "One worker"). Every cancel
 * must arrive: a lost one leaves the task waiting, which the thread sees
 * after 10 s, and closes the channel to end the test with a failure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#define BATCH 1000
#define NFUT 50

enum { DONE = 1, CANCELLED = 2 };

struct item {
    weft_task *task;
    _Atomic int ends;   /* times the task ended: must be 1 */
    int how;            /* DONE or CANCELLED */
    int cancel_rc;      /* what weft_cancel returned */
    weft_task *child;   /* kind 2: the child, if its join was cancelled */
    void *value;        /* kind 1: what the await returned */
};

struct batch {
    struct item items[BATCH];
    weft_future *fut[NFUT];
    weft_chan *chan;          /* kind 3 receives from it; the feeder sends */
    _Atomic long received;    /* values kind 3 tasks got */
    uint32_t seed;
};

#define NKINDS 4
#define NRECV ((BATCH + NKINDS - 1 - 3) / NKINDS) /* tasks of kind 3 */

static struct batch *cur;

static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void *short_sleep(void *arg)
{
    int err = weft_sleep((uint64_t)PINT(arg) * WEFT_USEC);
    return err < 0 ? WEFT_ERR(err) : IPTR(5);
}

static void *worker_task(void *arg)
{
    intptr_t i = PINT(arg);
    struct item *it = &cur->items[i];
    int err = 0;
    switch (i % NKINDS) {
    case 0:
        err = weft_sleep((uint64_t)(i % 50) * WEFT_USEC);
        break;
    case 1:
        err = weft_future_await(cur->fut[i % NFUT], WEFT_NEVER, &it->value);
        break;
    case 3: {
        void *v = NULL;
        err = weft_chan_recv(cur->chan, &v);
        if (err == 0) {
            CHECK(PINT(v) >= 1 && PINT(v) <= NRECV);
            atomic_fetch_add(&cur->received, 1);
        }
        break;
    }
    default: {
        weft_task *c;
        CHECK(weft_spawn(&c, short_sleep, IPTR(i % 40)) == 0);
        void *r = NULL;
        err = weft_join(c, &r);
        if (err == -ECANCELED)
            it->child = c; /* still ours: main joins it */
        else
            CHECK(err == 0 && (PINT(r) == 5 || weft_err_of(r) == -ECANCELED));
        break;
    }
    }
    CHECK(err == 0 || err == -ECANCELED);
    it->how = err == -ECANCELED ? CANCELLED : DONE;
    atomic_fetch_add(&it->ends, 1);
    return NULL;
}

static void *canceller(void *arg)
{
    (void)arg;
    uint32_t s = cur->seed;
    for (int i = 0; i < BATCH; i++) {
        if (rnd(&s) % 8 == 0)
            CHECK(weft_yield() == 0);
        cur->items[i].cancel_rc = weft_cancel(cur->items[i].task);
        CHECK(cur->items[i].cancel_rc == 0 || cur->items[i].cancel_rc == -EALREADY);
    }
    return NULL;
}

/* Sends one value per kind 3 task, then closes the channel. */
static void *feeder(void *arg)
{
    (void)arg;
    for (intptr_t v = 1; v <= NRECV; v++)
        CHECK(weft_chan_send(cur->chan, IPTR(v)) == 0);
    CHECK(weft_chan_close(cur->chan) == 0);
    return NULL;
}

static void *resolver(void *arg)
{
    (void)arg;
    uint32_t s = cur->seed * 7 + 1;
    for (int f = 0; f < NFUT; f++) {
        if (rnd(&s) % 4 == 0)
            CHECK(weft_sleep(rnd(&s) % 30 * WEFT_USEC) == 0);
        CHECK(weft_future_resolve(cur->fut[f], IPTR(1000 + f)) == 0);
    }
    return NULL;
}

static unsigned long batches;
static unsigned long total_cancelled, total_done;

static void *stress_main(void *arg)
{
    (void)arg;
    struct batch *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    cur = b;
    for (unsigned long n = 0; n < batches; n++) {
        memset(b->items, 0, sizeof b->items);
        b->seed = (uint32_t)(n * 2654435761u + 1);
        for (int f = 0; f < NFUT; f++)
            ck_assert_int_eq(weft_future_new(&b->fut[f]), 0);
        ck_assert_int_eq(weft_chan_new(&b->chan, 16), 0);
        atomic_store(&b->received, 0);
        for (intptr_t i = 0; i < BATCH; i++)
            ck_assert_int_eq(weft_spawn(&b->items[i].task, worker_task, IPTR(i)), 0);
        weft_task *c, *r, *fd;
        ck_assert_int_eq(weft_spawn(&fd, feeder, NULL), 0);
        ck_assert_int_eq(weft_spawn(&r, resolver, NULL), 0);
        ck_assert_int_eq(weft_spawn(&c, canceller, NULL), 0);
        ck_assert_int_eq(weft_join(c, NULL), 0);
        ck_assert_int_eq(weft_join(r, NULL), 0);
        for (int i = 0; i < BATCH; i++) {
            struct item *it = &b->items[i];
            ck_assert_int_eq(weft_join(it->task, NULL), 0);
            ck_assert_int_eq(atomic_load(&it->ends), 1);
            if (it->cancel_rc == -EALREADY)
                ck_assert_int_eq(it->how, DONE);
            if (i % NKINDS == 1 && it->how == DONE)
                ck_assert_int_eq(PINT(it->value), 1000 + i % NFUT);
            if (it->child)
                ck_assert_int_eq(weft_join(it->child, NULL), 0);
            total_cancelled += it->how == CANCELLED;
            total_done += it->how == DONE;
        }
        /* The cancelled receivers left their values in the channel: drain
         * them; every value sent is accounted for exactly once. */
        long left = 0;
        void *v;
        while (weft_chan_recv(b->chan, &v) == 0)
            left++;
        ck_assert_int_eq(weft_join(fd, NULL), 0);
        ck_assert_int_eq(atomic_load(&b->received) + left, NRECV);
        ck_assert_int_eq(weft_chan_free(b->chan), 0);
        for (int f = 0; f < NFUT; f++)
            ck_assert_int_eq(weft_future_free(b->fut[f]), 0);
    }
    free(b);
    return NULL;
}

static unsigned stress_workers[] = {1, 2, 4};

START_TEST(stress_cancel_every_task_ends_once)
{
    alarm(300);
    batches = scaled(100000) / BATCH;
    if (batches < 2)
        batches = 2;
    total_cancelled = total_done = 0;
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = stress_workers[_i];
    ck_assert_int_eq(weft_run(&cfg, stress_main, NULL, NULL), 0);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_uint_eq(total_cancelled + total_done, batches * BATCH);
    /* Both outcomes happened, or the race was not exercised. */
    ck_assert_uint_gt(total_cancelled, 0);
    ck_assert_uint_gt(total_done, 0);
    fprintf(stderr, "stress_cancel: %u workers: %lu tasks, %lu cancelled, %lu completed\n",
            stress_workers[_i], batches * BATCH, total_cancelled, total_done);
}
END_TEST

static struct {
    weft_task *victim;
    weft_chan *chan;
    unsigned long rounds;
    _Atomic unsigned long delivered; /* cancellations the victim received */
    _Atomic int lost;                /* the thread gave up waiting for one */
} far;

/* Waits in a receive that only a cancellation (or the close after a lost
 * one) ends, rounds times. */
static void *far_victim(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < far.rounds; i++) {
        void *v;
        int err = weft_chan_recv(far.chan, &v);
        if (err != -ECANCELED) {
            CHECK(err == -EPIPE && atomic_load(&far.lost));
            return NULL;
        }
        atomic_fetch_add(&far.delivered, 1);
    }
    return NULL;
}

static void *far_canceller(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < far.rounds; i++) {
        uint64_t until = weft_now() + 10 * WEFT_SEC;
        while (atomic_load(&far.delivered) < i) {
            if (weft_now() > until) {
                atomic_store(&far.lost, 1);
                weft_chan_close(far.chan);
                return NULL;
            }
            sched_yield();
        }
        CHECK(weft_cancel(far.victim) == 0);
    }
    return NULL;
}

static void *far_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&far.chan, 0) == 0);
    CHECK(weft_spawn(&far.victim, far_victim, NULL) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, far_canceller, NULL) == 0);
    /* Sleeping, not joining: with every task waiting on something only
     * the thread can end, the runtime would report a deadlock (it counts
     * timers and I/O as what may still wake a task, not other threads). */
    while (atomic_load(&far.delivered) < far.rounds && !atomic_load(&far.lost))
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(weft_join(far.victim, NULL) == 0);
    /* The thread's last cancel came before the victim's last delivery. */
    pthread_join(th, NULL);
    CHECK(weft_chan_free(far.chan) == 0);
    return NULL;
}

static unsigned far_workers[] = {1, 2};

START_TEST(cancels_from_another_thread_all_arrive)
{
    alarm(120);
    far.rounds = scaled(20000);
    atomic_store(&far.delivered, 0);
    atomic_store(&far.lost, 0);
    run_on_workers(far_workers[_i], far_main);
    unsigned long delivered = atomic_load(&far.delivered);
    ck_assert_msg(!atomic_load(&far.lost), "%u workers: cancellation %lu of %lu never arrived",
                  far_workers[_i], delivered + 1, far.rounds);
    ck_assert_uint_eq(delivered, far.rounds);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress_cancel");
    TCase *tc = tcase_create("stress_cancel");
    tcase_set_timeout(tc, 330);
    tcase_add_loop_test(tc, stress_cancel_every_task_ends_once, 0,
                        (int)(sizeof stress_workers / sizeof stress_workers[0]));
    tcase_add_loop_test(tc, cancels_from_another_thread_all_arrive, 0,
                        (int)(sizeof far_workers / sizeof far_workers[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
