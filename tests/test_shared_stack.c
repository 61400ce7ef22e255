/*
 * Suite "shared_stack": tasks spawned with WEFT_TASK_SHARED_STACK, which
 * run on their worker's shared stack and keep only the bytes they used
 * while suspended (worker.c, "shared stacks"). Each test on 1, 2 and 4
 * workers; white-box only for the worker a task runs on.
 *
 *  - locals_survive_suspensions: 64 shared-stack tasks each fill a local
 *    array with their own pattern, then sleep, yield and wait on a channel
 *    many times while the others run on the same stack; after each
 *    suspension the array and a chain of locals through their frames are
 *    intact, and each result is its own.
 *  - deep_frames_are_copied_whole: tasks that suspend 40 KiB down a
 *    recursion (most of the 64 KiB stack) and check every frame's bytes
 *    after each resume, beside shallow ones.
 *  - stays_on_its_worker: a shared-stack task that suspends 200 times, on
 *    sleeps and on channel values sent from tasks on every worker, is
 *    always resumed on the worker of its first run; ordinary tasks beside
 *    it are free to move.
 *  - many_sleepers_each_run_once: 20,000 shared-stack sleepers (fewer
 *    under sanitizers): every one runs exactly once and returns its own
 *    id, joined in spawn order.
 *  - pingpong_between_shared_tasks: two tasks, either or both of them
 *    shared-stack tasks, pass a counter through two rendezvous channels
 *    10,000 times, four runs of each pairing; the count is exact.
 *  - generator_in_a_shared_task: a generator's body (on its own stack)
 *    yields values to a shared-stack task that sleeps between resumes;
 *    the body itself sleeps now and then, with the task's frames copied
 *    out meanwhile.
 *  - cancel_a_sleeping_shared_task: weft_cancel ends its sleep with
 *    -ECANCELED; the task cleans up and returns.
 *  - never_inline: a join of an unstarted shared-stack child does not run
 *    it on the joiner's stack, nor does a shared-stack task run its
 *    children inline; results are right.
 *  - select_in_shared_tasks: shared-stack tasks select over three
 *    channels that ordinary and shared-stack senders feed; the winner's
 *    index, written by the waker while the selector waits, is right, and
 *    every value arrives once.
 *  - io_between_shared_tasks: pairs of shared-stack tasks echo over
 *    socketpairs with weft_read and weft_write, waiting on the poller
 *    (two waiters a wait) while the others use the stack; every byte
 *    comes back; no descriptor is left open.
 *  - http_in_shared_tasks: weft's HTTP server run by a shared-stack task
 *    (its state read by the connection tasks while it waits), and
 *    shared-stack tasks fetching from it with weft_http_get (whose
 *    buffers libcurl's callbacks fill from other tasks while the caller
 *    waits); every reply is right.
 *  - yielders_stay_home: two shared-stack tasks that only yield, on two
 *    workers: none is ever sent home (they never leave their worker's
 *    queues for the injection queue, where the other worker would only
 *    bounce them back).
 *  - blocking_arg_on_the_shared_stack: weft_blocking with an argument on
 *    a shared-stack task's stack is -EINVAL (the pool thread would write
 *    it while another task's bytes are there); with heap memory it works.
 *  - mprotect_budget_is_for_own_stacks: under the mprotect guard, more
 *    shared-stack tasks than the mapping budget allows stacks are alive at
 *    once, and an ordinary task can still be spawned beside them.
 *  - deadlock_with_shared_tasks: a run whose shared-stack tasks are all
 *    blocked ends with -EDEADLK; their copied-out bytes and waiters are
 *    freed with the run (the ASan build's leak check says so).
 *  - bad_options: an unknown flag, a reserved field that is not zero, and
 *    WEFT_TASK_SHARED_STACK with a stack size are -EINVAL.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/curl.h>
#include <weft/http.h>

#include "runtime.h"
#include "util.h"
#include "worker.h"

static unsigned workers_of[] = {1, 2, 4};

static const struct weft_task_opts shared_opts = {.flags = WEFT_TASK_SHARED_STACK};

static weft_task *spawn_shared(weft_fn fn, void *arg)
{
    weft_task *t = NULL;
    CHECK(weft_spawn_opts(&t, fn, arg, &shared_opts) == 0);
    return t;
}

static unsigned worker_id(void)
{
    return weft__worker_self()->id;
}

/* Children run inline so far, on every worker. */
static uint64_t inlined(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < weft__rt->nworkers; i++)
        n += WEFT_CNT(weft__rt->workers[i].n.inlined);
    return n;
}

/* ---- locals across suspensions --------------------------------------------- */

static weft_chan *ticks;

/* Fills buf with a pattern of seed, and checks it. */
static void fill(uint64_t *buf, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = seed * 0x9e3779b97f4a7c15u + i;
}

static bool intact(const uint64_t *buf, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != seed * 0x9e3779b97f4a7c15u + i)
            return false;
    return true;
}

/* Suspends in one of three ways. */
static void suspend(unsigned k)
{
    switch (k % 3) {
    case 0:
        CHECK(weft_sleep(WEFT_USEC * (k % 5)) == 0);
        break;
    case 1:
        CHECK(weft_yield() == 0);
        break;
    default: {
        void *v;
        CHECK(weft_chan_recv(ticks, &v) == 0);
        break;
    }
    }
}

/* A chain of frames, each with a local that points at the one above it. */
static uint64_t nested(unsigned depth, const uint64_t *up, uint64_t seed, unsigned k)
{
    uint64_t here = seed ^ depth;
    if (depth == 0) {
        suspend(k);
        return here;
    }
    uint64_t below = nested(depth - 1, &here, seed, k);
    CHECK(here == (seed ^ depth));
    CHECK(up == NULL || *up == (seed ^ (depth + 1)));
    return below + here;
}

static void *patterned(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    uint64_t buf[96];
    fill(buf, 96, seed);
    for (unsigned k = 0; k < 60; k++) {
        uint64_t expect = 0;
        for (unsigned d = 0; d <= 5; d++)
            expect += seed ^ d;
        CHECK(nested(5, NULL, seed, k + (unsigned)seed) == expect);
        CHECK(intact(buf, 96, seed));
    }
    return (void *)(uintptr_t)(seed * 3);
}

/* Sends a tick now and then, so that channel waits end. */
static _Atomic int ticking;
static void *ticker(void *arg)
{
    (void)arg;
    while (atomic_load(&ticking)) {
        void *v = NULL;
        if (weft_chan_try_send(ticks, v) != 0)
            CHECK(weft_yield() == 0);
    }
    return NULL;
}

static void *locals_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&ticks, 0) == 0);
    atomic_store(&ticking, 1);
    weft_task *tk;
    CHECK(weft_spawn(&tk, ticker, NULL) == 0);
    weft_task *t[64];
    for (uintptr_t i = 0; i < 64; i++)
        t[i] = spawn_shared(patterned, (void *)(i + 1));
    for (uintptr_t i = 0; i < 64; i++) {
        void *r = NULL;
        CHECK(weft_join(t[i], &r) == 0);
        CHECK((uintptr_t)r == (i + 1) * 3);
    }
    atomic_store(&ticking, 0);
    CHECK(weft_join(tk, NULL) == 0);
    CHECK(weft_chan_free(ticks) == 0);
    return NULL;
}

START_TEST(locals_survive_suspensions)
{
    run_on_workers(workers_of[_i], locals_main);
}
END_TEST

/* ---- deep frames ---------------------------------------------------------------- */

/* 40 frames of about 1 KiB each. */
static uint64_t deep(unsigned depth, uint64_t seed)
{
    uint64_t buf[120];
    fill(buf, 120, seed + depth);
    uint64_t r;
    if (depth == 0) {
        CHECK(weft_sleep(WEFT_USEC * 50) == 0);
        CHECK(weft_yield() == 0);
        r = 1;
    } else {
        r = deep(depth - 1, seed) + 1;
    }
    CHECK(intact(buf, 120, seed + depth));
    __asm__ volatile("" ::"r"(buf) : "memory"); /* keep the frame */
    return r;
}

static void *deep_task(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    for (int k = 0; k < 5; k++)
        CHECK(deep(seed % 2 ? 40 : 2, seed) == (seed % 2 ? 41u : 3u));
    return NULL;
}

static void *deep_main(void *arg)
{
    (void)arg;
    weft_task *t[16];
    for (uintptr_t i = 0; i < 16; i++)
        t[i] = spawn_shared(deep_task, (void *)(i + 100));
    for (int i = 0; i < 16; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    return NULL;
}

START_TEST(deep_frames_are_copied_whole)
{
    run_on_workers(workers_of[_i], deep_main);
}
END_TEST

/* ---- pinning ---------------------------------------------------------------------- */

static weft_chan *to_pinned;

static void *pinned(void *arg)
{
    (void)arg;
    unsigned home = worker_id();
    for (int k = 0; k < 200; k++) {
        if (k % 2) {
            void *v;
            CHECK(weft_chan_recv(to_pinned, &v) == 0);
        } else {
            CHECK(weft_sleep(WEFT_USEC * 20) == 0);
        }
        CHECK(worker_id() == home);
    }
    return NULL;
}

static void *feeder(void *arg)
{
    (void)arg;
    for (int k = 0; k < 25; k++) {
        CHECK(weft_chan_send(to_pinned, NULL) == 0);
        CHECK(weft_yield() == 0);
    }
    return NULL;
}

static void *spinner_task(void *arg)
{
    (void)arg;
    for (int k = 0; k < 300; k++)
        CHECK(weft_yield() == 0);
    return NULL;
}

static void *pin_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&to_pinned, 0) == 0);
    weft_task *p[4], *f[16], *s[8];
    for (int i = 0; i < 4; i++)
        p[i] = spawn_shared(pinned, NULL);
    for (int i = 0; i < 8; i++)
        CHECK(weft_spawn(&s[i], spinner_task, NULL) == 0);
    /* 4 tasks x 100 receives = 16 feeders x 25 sends. */
    for (int i = 0; i < 16; i++)
        CHECK(weft_spawn(&f[i], feeder, NULL) == 0);
    for (int i = 0; i < 16; i++)
        CHECK(weft_join(f[i], NULL) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(weft_join(p[i], NULL) == 0);
    for (int i = 0; i < 8; i++)
        CHECK(weft_join(s[i], NULL) == 0);
    CHECK(weft_chan_free(to_pinned) == 0);
    return NULL;
}

START_TEST(stays_on_its_worker)
{
    run_on_workers(workers_of[_i], pin_main);
}
END_TEST

/* ---- many sleepers ------------------------------------------------------------------ */

static _Atomic unsigned long *runs;

static void *sleeper(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    CHECK(weft_sleep(WEFT_MSEC) == 0);
    atomic_fetch_add(&runs[id], 1);
    return (void *)(id ^ 0x5a5a);
}

static void *sleepers_main(void *arg)
{
    (void)arg;
    unsigned long n = scaled(20000);
    runs = calloc(n, sizeof *runs);
    weft_task **t = malloc(n * sizeof *t);
    CHECK(runs && t);
    for (uintptr_t i = 0; i < n; i++)
        t[i] = spawn_shared(sleeper, (void *)i);
    for (uintptr_t i = 0; i < n; i++) {
        void *r = NULL;
        CHECK(weft_join(t[i], &r) == 0);
        CHECK((uintptr_t)r == (i ^ 0x5a5a));
    }
    for (unsigned long i = 0; i < n; i++)
        CHECK(atomic_load(&runs[i]) == 1);
    free(t);
    free((void *)runs);
    return NULL;
}

START_TEST(many_sleepers_each_run_once)
{
    run_on_workers(workers_of[_i], sleepers_main);
}
END_TEST

/* ---- pingpong ------------------------------------------------------------------------- */

static weft_chan *ping, *pong;
#define TRIPS 10000

static void *pinger(void *arg)
{
    (void)arg;
    uintptr_t n = 0;
    for (int i = 0; i < TRIPS; i++) {
        void *v;
        CHECK(weft_chan_send(ping, (void *)n) == 0);
        CHECK(weft_chan_recv(pong, &v) == 0);
        n = (uintptr_t)v;
    }
    return (void *)n;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (int i = 0; i < TRIPS; i++) {
        void *v;
        CHECK(weft_chan_recv(ping, &v) == 0);
        CHECK(weft_chan_send(pong, (void *)((uintptr_t)v + 1)) == 0);
    }
    return NULL;
}

/* Which sides are shared-stack tasks: 3 both, 2 the ponger, 1 the pinger. */
static unsigned pingpong_sides;

static void *pingpong_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&ping, 0) == 0 && weft_chan_new(&pong, 0) == 0);
    weft_task *a = NULL, *b = NULL;
    if (pingpong_sides & 1)
        a = spawn_shared(pinger, NULL);
    else
        CHECK(weft_spawn(&a, pinger, NULL) == 0);
    if (pingpong_sides & 2)
        b = spawn_shared(ponger, NULL);
    else
        CHECK(weft_spawn(&b, ponger, NULL) == 0);
    void *r = NULL;
    CHECK(weft_join(a, &r) == 0);
    CHECK((uintptr_t)r == TRIPS);
    CHECK(weft_join(b, NULL) == 0);
    CHECK(weft_chan_free(ping) == 0 && weft_chan_free(pong) == 0);
    return NULL;
}

/* Several runs each: the wake-ups cross workers in a different order
 * every time (this found a run declared deadlocked while a worker that
 * had just been sent a task was running it). */
START_TEST(pingpong_between_shared_tasks)
{
    for (int round = 0; round < 4; round++)
        for (pingpong_sides = 1; pingpong_sides <= 3; pingpong_sides++)
            run_on_workers(workers_of[_i], pingpong_main);
}
END_TEST

/* ---- a generator ---------------------------------------------------------------------- */

static void *counting(weft_gen *self, void *arg)
{
    (void)arg;
    for (uintptr_t i = 1; i <= 50; i++) {
        /* The body's task is switched out here, in the body's frames, and
         * the shared stack goes to other tasks meanwhile. */
        if (i % 10 == 0)
            CHECK(weft_sleep(WEFT_USEC * 20) == 0);
        CHECK(weft_gen_yield(self, (void *)i, NULL) == 0);
    }
    return (void *)(uintptr_t)1000;
}

static void *gen_user(void *arg)
{
    (void)arg;
    uint64_t buf[32];
    fill(buf, 32, 7);
    weft_gen *g;
    CHECK(weft_gen_new(&g, counting, NULL) == 0);
    uintptr_t sum = 0;
    void *v;
    int err;
    while ((err = weft_gen_next(g, &v)) == 0) {
        sum += (uintptr_t)v;
        CHECK(weft_sleep(WEFT_USEC * 10) == 0);
        CHECK(intact(buf, 32, 7));
    }
    CHECK(err == WEFT_GEN_DONE && (uintptr_t)v == 1000);
    weft_gen_free(g);
    return (void *)sum;
}

static void *gen_main(void *arg)
{
    (void)arg;
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        t[i] = spawn_shared(gen_user, NULL);
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        CHECK(weft_join(t[i], &r) == 0);
        CHECK((uintptr_t)r == 50 * 51 / 2);
    }
    return NULL;
}

START_TEST(generator_in_a_shared_task)
{
    run_on_workers(workers_of[_i], gen_main);
}
END_TEST

/* ---- cancellation ----------------------------------------------------------------------- */

static void *long_sleeper(void *arg)
{
    (void)arg;
    uint64_t buf[16];
    fill(buf, 16, 3);
    int err = weft_sleep(60 * WEFT_SEC);
    CHECK(intact(buf, 16, 3));
    return (void *)(intptr_t)err;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_task *t[10];
    for (int i = 0; i < 10; i++)
        t[i] = spawn_shared(long_sleeper, NULL);
    CHECK(weft_sleep(5 * WEFT_MSEC) == 0);
    for (int i = 0; i < 10; i++)
        CHECK(weft_cancel(t[i]) == 0);
    for (int i = 0; i < 10; i++) {
        void *r = NULL;
        CHECK(weft_join(t[i], &r) == 0);
        CHECK((intptr_t)r == -ECANCELED);
    }
    return NULL;
}

START_TEST(cancel_a_sleeping_shared_task)
{
    run_on_workers(workers_of[_i], cancel_main);
}
END_TEST

/* ---- no inline runs ---------------------------------------------------------------------- */

static void *child(void *arg)
{
    return (void *)((uintptr_t)arg * 2);
}

static void *shared_parent(void *arg)
{
    (void)arg;
    uintptr_t sum = 0;
    for (uintptr_t i = 1; i <= 20; i++) {
        weft_task *c;
        CHECK(weft_spawn(&c, child, (void *)i) == 0);
        void *r = NULL;
        CHECK(weft_join(c, &r) == 0);
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

static void *inline_main(void *arg)
{
    (void)arg;
    uint64_t before = inlined();
    /* An ordinary joiner and an unstarted shared child. */
    for (uintptr_t i = 1; i <= 20; i++) {
        weft_task *c = spawn_shared(child, (void *)i);
        void *r = NULL;
        CHECK(weft_join(c, &r) == 0);
        CHECK((uintptr_t)r == 2 * i);
    }
    /* A shared joiner and ordinary children. */
    weft_task *p = spawn_shared(shared_parent, NULL);
    void *r = NULL;
    CHECK(weft_join(p, &r) == 0);
    CHECK((uintptr_t)r == 2 * 210);
    CHECK(inlined() == before);
    return NULL;
}

START_TEST(never_inline)
{
    run_on_workers(workers_of[_i], inline_main);
}
END_TEST

/* ---- select ---------------------------------------------------------------------------- */

#define SEL_SENDERS 6
#define SEL_EACH 300
static weft_chan *sel[3];
static _Atomic unsigned long sel_sum, sel_count;

static void *sel_sender(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uintptr_t k = 1; k <= SEL_EACH; k++)
        CHECK(weft_chan_send(sel[(id + k) % 3], (void *)(id * 1000 + k)) == 0);
    return NULL;
}

static void *sel_receiver(void *arg)
{
    (void)arg;
    for (;;) {
        struct weft_chan_op ops[3];
        for (int i = 0; i < 3; i++)
            ops[i] = (struct weft_chan_op){.chan = sel[i], .dir = WEFT_CHAN_RECV};
        int r = weft_chan_select(ops, 3, WEFT_NEVER);
        if (r == -EPIPE || (r >= 0 && ops[r].status == -EPIPE))
            return NULL;
        CHECK(r >= 0 && r < 3);
        if (r < 0)
            return NULL;
        CHECK(ops[r].status == 0);
        atomic_fetch_add(&sel_sum, (uintptr_t)ops[r].value);
        atomic_fetch_add(&sel_count, 1);
    }
}

static void *select_main(void *arg)
{
    (void)arg;
    atomic_store(&sel_sum, 0);
    atomic_store(&sel_count, 0);
    for (int i = 0; i < 3; i++)
        CHECK(weft_chan_new(&sel[i], 0) == 0);
    weft_task *r[4], *snd[SEL_SENDERS];
    for (int i = 0; i < 4; i++)
        r[i] = spawn_shared(sel_receiver, NULL);
    unsigned long want = 0;
    for (uintptr_t i = 0; i < SEL_SENDERS; i++) {
        if (i % 2)
            snd[i] = spawn_shared(sel_sender, (void *)i);
        else
            CHECK(weft_spawn(&snd[i], sel_sender, (void *)i) == 0);
        for (uintptr_t k = 1; k <= SEL_EACH; k++)
            want += i * 1000 + k;
    }
    for (int i = 0; i < SEL_SENDERS; i++)
        CHECK(weft_join(snd[i], NULL) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(weft_chan_close(sel[i]) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(weft_join(r[i], NULL) == 0);
    CHECK(atomic_load(&sel_count) == SEL_SENDERS * SEL_EACH);
    CHECK(atomic_load(&sel_sum) == want);
    for (int i = 0; i < 3; i++)
        CHECK(weft_chan_free(sel[i]) == 0);
    return NULL;
}

START_TEST(select_in_shared_tasks)
{
    run_on_workers(workers_of[_i], select_main);
}
END_TEST

/* ---- I/O ------------------------------------------------------------------------------ */

#define ECHO_ROUNDS 200

static void *echo_side(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    for (int k = 0; k < ECHO_ROUNDS; k++) {
        ssize_t n = weft_read(fd, buf, sizeof buf);
        CHECK(n > 0);
        if (n <= 0)
            break;
        CHECK(weft_write_all(fd, buf, (size_t)n, NULL, WEFT_NEVER) == n);
    }
    return NULL;
}

static void *talk_side(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char out[48], in[48];
    for (int k = 0; k < ECHO_ROUNDS; k++) {
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(k * 31 + (int)i + fd);
        CHECK(weft_write_all(fd, out, sizeof out, NULL, WEFT_NEVER) == (ssize_t)sizeof out);
        size_t got = 0;
        while (got < sizeof in) {
            ssize_t n = weft_read(fd, in + got, sizeof in - got);
            CHECK(n > 0);
            if (n <= 0)
                return NULL;
            got += (size_t)n;
        }
        CHECK(memcmp(in, out, sizeof in) == 0);
    }
    return NULL;
}

static void *io_main(void *arg)
{
    (void)arg;
    enum { PAIRS = 8 };
    int sv[PAIRS][2];
    weft_task *t[PAIRS][2];
    for (int i = 0; i < PAIRS; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) == 0);
        t[i][0] = spawn_shared(echo_side, (void *)(intptr_t)sv[i][0]);
        t[i][1] = spawn_shared(talk_side, (void *)(intptr_t)sv[i][1]);
    }
    for (int i = 0; i < PAIRS; i++)
        for (int j = 0; j < 2; j++) {
            CHECK(weft_join(t[i][j], NULL) == 0);
            CHECK(weft_close(sv[i][j]) == 0);
        }
    return NULL;
}

START_TEST(io_between_shared_tasks)
{
    int before = count_fds();
    run_on_workers(workers_of[_i], io_main);
    ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- HTTP ----------------------------------------------------------------------------- */

static int answer(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    (void)arg;
    char body[96];
    int n = snprintf(body, sizeof body, "{\"path\":\"%s\"}", req->path);
    return weft_http_respond(res, 200, "application/json", body, (size_t)n);
}

static int http_lfd;
static uint16_t http_port;

static void *serving(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_http_serve_fd(http_lfd, answer, NULL, NULL);
}

static void *fetching(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int k = 0; k < 5; k++) {
        char url[80], want[96];
        snprintf(url, sizeof url, "http://127.0.0.1:%u/item/%lu/%d", (unsigned)http_port,
                 (unsigned long)id, k);
        snprintf(want, sizeof want, "{\"path\":\"/item/%lu/%d\"}", (unsigned long)id, k);
        struct weft_http_reply r;
        int err = weft_http_get_until(url, weft_now() + 20 * WEFT_SEC, &r);
        CHECK(err == 0);
        CHECK(err != 0 || (r.status == 200 && strcmp(r.body, want) == 0));
        weft_http_reply_destroy(&r);
    }
    return NULL;
}

static void *http_main(void *arg)
{
    (void)arg;
    http_lfd = weft_http_listen("127.0.0.1:0", &http_port);
    CHECK(http_lfd >= 0);
    weft_task *srv = spawn_shared(serving, NULL);
    weft_task *c[20];
    for (uintptr_t i = 0; i < 20; i++)
        c[i] = spawn_shared(fetching, (void *)i);
    for (int i = 0; i < 20; i++)
        CHECK(weft_join(c[i], NULL) == 0);
    CHECK(weft_cancel(srv) == 0);
    void *r = NULL;
    CHECK(weft_join(srv, &r) == 0);
    CHECK((intptr_t)r == -ECANCELED);
    return NULL;
}

START_TEST(http_in_shared_tasks)
{
    int before = count_fds();
    run_on_workers(workers_of[_i], http_main);
    ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- yielders ---------------------------------------------------------------------------- */

static void *yielder(void *arg)
{
    (void)arg;
    for (int k = 0; k < 20000; k++)
        CHECK(weft_yield() == 0);
    return NULL;
}

static uint64_t forwarded(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < weft__rt->nworkers; i++)
        n += WEFT_CNT(weft__rt->workers[i].n.forwarded);
    return n;
}

static void *yielders_main(void *arg)
{
    (void)arg;
    weft_task *a = spawn_shared(yielder, NULL), *b = spawn_shared(yielder, NULL);
    CHECK(weft_join(a, NULL) == 0 && weft_join(b, NULL) == 0);
    CHECK(forwarded() == 0);
    return NULL;
}

START_TEST(yielders_stay_home)
{
    run_on_workers(2, yielders_main);
}
END_TEST

/* ---- the blocking pool ------------------------------------------------------------------ */

static void *fill_block(void *arg)
{
    memset(arg, 'A', 64);
    return arg;
}

static void *blocking_user(void *arg)
{
    (void)arg;
    char local[64] = {0};
    void *r = NULL;
    CHECK(weft_blocking(fill_block, local, &r) == -EINVAL);
    char *heap = calloc(1, 64);
    CHECK(weft_blocking(fill_block, heap, &r) == 0 && r == heap);
    CHECK(heap[0] == 'A' && heap[63] == 'A');
    free(heap);
    return NULL;
}

static void *blocking_main(void *arg)
{
    (void)arg;
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn_shared(blocking_user, NULL);
    for (int i = 0; i < 4; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    return NULL;
}

START_TEST(blocking_arg_on_the_shared_stack)
{
    run_on_workers(workers_of[_i], blocking_main);
}
END_TEST

/* ---- the mprotect budget ---------------------------------------------------------------- */

static weft_chan *gate;

/* Waits until the gate closes: alive until then. */
static void *gated(void *arg)
{
    (void)arg;
    void *v;
    CHECK(weft_chan_recv(gate, &v) == -EPIPE);
    return NULL;
}

static void *budget_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&gate, 0) == 0);
    uint64_t n = weft__rt->stacks.budget + 100;
    weft_task **t = malloc(n * sizeof *t);
    CHECK(t != NULL);
    for (uint64_t i = 0; i < n; i++)
        t[i] = spawn_shared(gated, NULL);
    /* All of them at once, past the budget of stacks of their own. */
    struct weft_stats st;
    CHECK(weft_stats_get(&st) == 0 && st.tasks_live >= n);
    weft_task *plain;
    CHECK(weft_spawn(&plain, child, (void *)1) == 0);
    void *r = NULL;
    CHECK(weft_join(plain, &r) == 0 && (uintptr_t)r == 2);
    CHECK(weft_chan_close(gate) == 0);
    for (uint64_t i = 0; i < n; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    free(t);
    CHECK(weft_chan_free(gate) == 0);
    return NULL;
}

START_TEST(mprotect_budget_is_for_own_stacks)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = 2;
    cfg.guard = WEFT_GUARD_MPROTECT;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, budget_main, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

/* ---- a deadlock -------------------------------------------------------------------------- */

static weft_chan *never;

static void *stuck(void *arg)
{
    (void)arg;
    uint64_t buf[32];
    fill(buf, 32, 9);
    void *v;
    (void)weft_chan_recv(never, &v);
    return NULL;
}

static void *deadlock_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&never, 0) == 0);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn_shared(stuck, NULL);
    for (int i = 0; i < 3; i++)
        (void)weft_join(t[i], NULL);
    return NULL;
}

START_TEST(deadlock_with_shared_tasks)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    start_capture();
    void *r = NULL;
    int err = weft_run(&cfg, deadlock_main, NULL, &r);
    const char *said = stop_capture();
    ck_assert_int_eq(err, -EDEADLK);
    ck_assert_msg(strstr(said, "deadlock") != NULL, "%s", said);
}
END_TEST

/* ---- options ----------------------------------------------------------------------------- */

static void *options_main(void *arg)
{
    (void)arg;
    weft_task *t = NULL;
    struct weft_task_opts o = {.flags = 2};
    CHECK(weft_spawn_opts(&t, child, NULL, &o) == -EINVAL);
    o = (struct weft_task_opts){.flags = WEFT_TASK_SHARED_STACK, .stack_size = 128 * 1024};
    CHECK(weft_spawn_opts(&t, child, NULL, &o) == -EINVAL);
    o = (struct weft_task_opts){.reserved32 = 1};
    CHECK(weft_spawn_opts(&t, child, NULL, &o) == -EINVAL);
    o = (struct weft_task_opts){.reserved = {0, 0, 9}};
    CHECK(weft_spawn_opts(&t, child, NULL, &o) == -EINVAL);
    CHECK(t == NULL);
    o = (struct weft_task_opts){.name = "ok", .flags = WEFT_TASK_SHARED_STACK};
    CHECK(weft_spawn_opts(&t, child, (void *)4, &o) == 0);
    void *r = NULL;
    CHECK(weft_join(t, &r) == 0 && (uintptr_t)r == 8);
    return NULL;
}

START_TEST(bad_options)
{
    run_on_workers(workers_of[_i], options_main);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shared_stack");
    TCase *tc = tcase_create("shared_stack");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, locals_survive_suspensions, 0, 3);
    tcase_add_loop_test(tc, deep_frames_are_copied_whole, 0, 3);
    tcase_add_loop_test(tc, stays_on_its_worker, 0, 3);
    tcase_add_loop_test(tc, many_sleepers_each_run_once, 0, 3);
    tcase_add_loop_test(tc, pingpong_between_shared_tasks, 0, 3);
    tcase_add_loop_test(tc, generator_in_a_shared_task, 0, 3);
    tcase_add_loop_test(tc, cancel_a_sleeping_shared_task, 0, 3);
    tcase_add_loop_test(tc, never_inline, 0, 3);
    tcase_add_loop_test(tc, select_in_shared_tasks, 0, 3);
    tcase_add_loop_test(tc, io_between_shared_tasks, 0, 3);
    tcase_add_loop_test(tc, http_in_shared_tasks, 0, 3);
    tcase_add_test(tc, yielders_stay_home);
    tcase_add_loop_test(tc, blocking_arg_on_the_shared_stack, 0, 3);
    tcase_add_test(tc, mprotect_budget_is_for_own_stacks);
    tcase_add_loop_test(tc, deadlock_with_shared_tasks, 0, 3);
    tcase_add_loop_test(tc, bad_options, 0, 3);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
