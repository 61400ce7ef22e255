/*
 * Stress "cancel": 100,000 cancellations racing completions, at
 * WEFT_WORKERS = 1, 2 and 4, counted.
 *
 * Tasks come in batches of 1,000. Each sleeps a few microseconds, awaits
 * one of the batch's futures, receives from the batch's channel (fed by a
 * feeder task), joins a child that sleeps, receives from or sends its own
 * value to the batch's rendezvous channel (capacity 0; the senders and
 * receivers are all batch tasks, one end outnumbering the other by turns,
 * so that both ends wait and get cancelled), or waits on one of the
 * batch's events, and records how its wait ended. While they run, a
 * canceller task cancels every one of them at a random moment, and a
 * resolver task settles the futures and sets the events at random moments,
 * so cancellations land before, during and after the waits, and race the
 * wake-ups. Checked per task and per batch:
 *  - every task ends exactly once, as completed or as cancelled;
 *  - a task whose weft_cancel() returned -EALREADY was not cancelled;
 *  - an awaiter that completed got its future's value (nothing else);
 *  - an event waiter that completed found its event set;
 *  - every future, event and channel can be freed afterwards: no waiter
 *    was left queued;
 *  - every channel value is received exactly once, by a receiver that was
 *    not cancelled or by the final drain;
 *  - every rendezvous value is received exactly once, by a receiver that
 *    was not cancelled, if its send completed, and not at all if the send
 *    was cancelled (it went back to its sender); as many receives as sends
 *    completed;
 *  - a child joined by a cancelled joiner is still joinable and joined;
 *  - the runtime shuts down clean (no task, stack or timer left);
 *  - over the run, both outcomes happened, and senders as well as
 *    receivers of the rendezvous were cancelled.
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
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#define BATCH 1000
#define NFUT 50
#define NEV 25 /* the resolver sets one every NFUT / NEV futures */
_Static_assert(NFUT % NEV == 0, "NEV divides NFUT");

enum { DONE = 1, CANCELLED = 2 };

struct item {
    weft_task *task;
    _Atomic int ends;   /* times the task ended: must be 1 */
    int how;            /* DONE or CANCELLED */
    int cancel_rc;      /* what weft_cancel returned */
    weft_task *child;   /* K_JOIN: the child, if its join was cancelled */
    void *value;        /* K_FUTURE: what the await returned */
    _Atomic int got;    /* a rendezvous sender: times a receiver got its value */
    bool in_op;         /* a rendezvous task: cancelled in the send or receive itself */
};

struct batch {
    struct item items[BATCH];
    weft_future *fut[NFUT];
    weft_chan *chan;          /* K_CHAN receives from it; the feeder sends */
    _Atomic long received;    /* values K_CHAN tasks got */
    weft_chan *rv;            /* capacity 0: from the senders to the receivers, rv_sends() */
    weft_event *ev[NEV];      /* K_EVENT waits on them; the resolver sets them */
    _Atomic int ev_set[NEV];  /* set before the event is */
    uint32_t seed;
    unsigned long n;          /* which batch */
};

/* What task i waits on: kind i % NKINDS. */
enum { K_SLEEP, K_FUTURE, K_JOIN, K_CHAN, K_RV_RECV, K_RV_SEND, K_EVENT, NKINDS };
#define NRECV ((BATCH + NKINDS - 1 - K_CHAN) / NKINDS) /* tasks of kind K_CHAN */

/* Which end of the rendezvous task i (of kind K_RV_SEND or K_RV_RECV)
 * takes: K_RV_SEND tasks send and K_RV_RECV tasks receive, except one in
 * four of one kind, which takes the other end: senders in even batches,
 * receivers in odd ones. So each batch has a surplus of one end that no
 * partner can ever match, and that waits until it is cancelled: a run
 * of two batches or more cancels waiting senders, whose values must all
 * go back to them, and waiting receivers, which must receive nothing. */
static bool rv_sends(intptr_t i, unsigned long batch)
{
    bool flip = (i / NKINDS) % 4 == 0;
    if (i % NKINDS == K_RV_SEND)
        return !(flip && batch % 2);
    return flip && batch % 2 == 0;
}

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
    case K_SLEEP:
        err = weft_sleep((uint64_t)(i % 50) * WEFT_USEC);
        break;
    case K_FUTURE:
        err = weft_future_await(cur->fut[i % NFUT], WEFT_NEVER, &it->value);
        break;
    case K_CHAN: {
        void *v = NULL;
        err = weft_chan_recv(cur->chan, &v);
        if (err == 0) {
            CHECK(PINT(v) >= 1 && PINT(v) <= NRECV);
            atomic_fetch_add(&cur->received, 1);
        }
        break;
    }
    case K_RV_RECV:
    case K_RV_SEND: {
        /* Every other one comes a little late, so that both ends are
         * found waiting by a partner, and cancelled racing it. */
        if ((i / NKINDS) % 2 && (err = weft_sleep((uint64_t)(i % 30) * WEFT_USEC)) < 0)
            break; /* cancelled before the rendezvous (a sender keeps its value) */
        if (rv_sends(i, cur->n)) {
            err = weft_chan_send(cur->rv, IPTR(i)); /* its own index: one value per sender */
        } else {
            void *v = IPTR(-1);
            err = weft_chan_recv(cur->rv, &v);
            intptr_t from = PINT(v);
            if (err == 0) {
                CHECK(from >= 0 && from < BATCH && rv_sends(from, cur->n));
                if (from >= 0 && from < BATCH)
                    atomic_fetch_add(&cur->items[from].got, 1);
            }
        }
        it->in_op = err == -ECANCELED;
        break;
    }
    case K_EVENT: {
        weft_event *e = cur->ev[i % NEV];
        err = weft_event_wait(e);
        if (err == 0) /* never cleared: set for good once set */
            CHECK(atomic_load(&cur->ev_set[i % NEV]) == 1 && weft_event_is_set(e) == 1);
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

/* Settles the futures and sets the events, interleaved, at random
 * moments. */
static void *resolver(void *arg)
{
    (void)arg;
    uint32_t s = cur->seed * 7 + 1;
    for (int f = 0; f < NFUT; f++) {
        if (rnd(&s) % 4 == 0)
            CHECK(weft_sleep(rnd(&s) % 30 * WEFT_USEC) == 0);
        CHECK(weft_future_resolve(cur->fut[f], IPTR(1000 + f)) == 0);
        if (f % (NFUT / NEV) == 0) {
            int e = f / (NFUT / NEV);
            atomic_store(&cur->ev_set[e], 1);
            CHECK(weft_event_set(cur->ev[e]) == 0);
        }
    }
    return NULL;
}

static unsigned long batches;
static unsigned long total_cancelled, total_done;
static unsigned long kind_cancelled[NKINDS], kind_done[NKINDS];
/* Rendezvous tasks by end (0: senders, 1: receivers): cancelled (in the
 * operation itself, or in the delay before it) and completed. */
static unsigned long rv_cancelled[2], rv_in_op[2], rv_done[2];

static void *stress_main(void *arg)
{
    (void)arg;
    struct batch *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    cur = b;
    for (unsigned long n = 0; n < batches; n++) {
        memset(b->items, 0, sizeof b->items);
        b->seed = (uint32_t)(n * 2654435761u + 1);
        b->n = n;
        for (int f = 0; f < NFUT; f++)
            ck_assert_int_eq(weft_future_new(&b->fut[f]), 0);
        ck_assert_int_eq(weft_chan_new(&b->chan, 16), 0);
        atomic_store(&b->received, 0);
        ck_assert_int_eq(weft_chan_new(&b->rv, 0), 0);
        for (int e = 0; e < NEV; e++) {
            ck_assert_int_eq(weft_event_new(&b->ev[e]), 0);
            atomic_store(&b->ev_set[e], 0);
        }
        for (intptr_t i = 0; i < BATCH; i++)
            ck_assert_int_eq(weft_spawn(&b->items[i].task, worker_task, IPTR(i)), 0);
        weft_task *c, *r, *fd;
        ck_assert_int_eq(weft_spawn(&fd, feeder, NULL), 0);
        ck_assert_int_eq(weft_spawn(&r, resolver, NULL), 0);
        ck_assert_int_eq(weft_spawn(&c, canceller, NULL), 0);
        ck_assert_int_eq(weft_join(c, NULL), 0);
        ck_assert_int_eq(weft_join(r, NULL), 0);
        long rv_sent = 0, rv_received = 0;
        for (int i = 0; i < BATCH; i++) {
            struct item *it = &b->items[i];
            ck_assert_int_eq(weft_join(it->task, NULL), 0);
            ck_assert_int_eq(atomic_load(&it->ends), 1);
            if (it->cancel_rc == -EALREADY)
                ck_assert_int_eq(it->how, DONE);
            if (i % NKINDS == K_FUTURE && it->how == DONE)
                ck_assert_int_eq(PINT(it->value), 1000 + i % NFUT);
            if (it->child)
                ck_assert_int_eq(weft_join(it->child, NULL), 0);
            bool rv = i % NKINDS == K_RV_SEND || i % NKINDS == K_RV_RECV;
            if (rv && rv_sends(i, n)) {
                /* Received once if sent; never if the send was cancelled. */
                ck_assert_msg(atomic_load(&it->got) == (it->how == DONE),
                              "rendezvous value %d: send %s, received %d times", i,
                              it->how == DONE ? "completed" : "cancelled",
                              atomic_load(&it->got));
                rv_sent += it->how == DONE;
            } else {
                ck_assert_int_eq(atomic_load(&it->got), 0);
                rv_received += rv && it->how == DONE;
            }
            if (rv) {
                int end = rv_sends(i, n) ? 0 : 1;
                rv_cancelled[end] += it->how == CANCELLED;
                rv_done[end] += it->how == DONE;
                rv_in_op[end] += it->in_op;
            }
            total_cancelled += it->how == CANCELLED;
            total_done += it->how == DONE;
            kind_cancelled[i % NKINDS] += it->how == CANCELLED;
            kind_done[i % NKINDS] += it->how == DONE;
        }
        ck_assert_int_eq(rv_received, rv_sent);
        /* Every task has ended: no sender is left offering a value. */
        ck_assert_int_eq(weft_chan_try_recv(b->rv, NULL), -EAGAIN);
        ck_assert_int_eq(weft_chan_free(b->rv), 0);
        for (int e = 0; e < NEV; e++)
            ck_assert_int_eq(weft_event_free(b->ev[e]), 0);
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
    memset(kind_cancelled, 0, sizeof kind_cancelled);
    memset(kind_done, 0, sizeof kind_done);
    memset(rv_cancelled, 0, sizeof rv_cancelled);
    memset(rv_in_op, 0, sizeof rv_in_op);
    memset(rv_done, 0, sizeof rv_done);
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
    /* Each end of the rendezvous had a surplus in some batch (rv_sends),
     * which only a cancellation could end. */
    ck_assert_uint_gt(rv_cancelled[0], 0);
    ck_assert_uint_gt(rv_cancelled[1], 0);
    fprintf(stderr, "stress_cancel: %u workers: %lu tasks, %lu cancelled, %lu completed\n",
            stress_workers[_i], batches * BATCH, total_cancelled, total_done);
    static const char *const kind_name[NKINDS] = {
        [K_SLEEP] = "sleep", [K_FUTURE] = "future", [K_JOIN] = "join",
        [K_CHAN] = "chan",   [K_EVENT] = "event", /* the rendezvous by end, below */
    };
    for (int k = 0; k < NKINDS; k++)
        if (kind_name[k])
            fprintf(stderr, "  %-8s %lu cancelled, %lu completed\n", kind_name[k],
                    kind_cancelled[k], kind_done[k]);
    for (int end = 0; end < 2; end++)
        fprintf(stderr, "  rv %-5s %lu cancelled (%lu in the operation), %lu completed\n",
                end ? "recv" : "send", rv_cancelled[end], rv_in_op[end], rv_done[end]);
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
