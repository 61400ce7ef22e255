/*
 * Suite "sched": what the scheduler promises, whatever its knobs say.
 * Counts, never times.
 *  - work_conservation, at 2 and 4 workers: W tasks that never suspend each
 *    spin until all W have arrived. They can only all arrive if all W run
 *    at the same moment on the W workers: an idle worker that is never
 *    woken, a task stuck in a busy worker's ring that nobody steals, or a
 *    joiner that keeps its worker, all hang the run (the watchdog fails
 *    it). The stats then say W workers ran.
 *  - knobs_all_run_every_task: every combination of steal (half, one) x
 *    victim (random, round robin, topology) x lifo (on, off), on 4 workers:
 *    a fork-join binary tree sums its leaves right, and 10,000 independent
 *    tasks that yield once each run exactly once; the runtime counted
 *    exactly the tasks spawned.
 *  - inline_off_and_on_agree: fib(20) by spawn/join gives 6765 with
 *    inline_min = 0 and with the default, with the same number of tasks
 *    spawned; with inline_min = 0 no child ran inline (white-box: the
 *    workers' counters), and on one worker with the default some did, so
 *    both paths were taken.
 *  - joins_in_spawn_order_run_inline: 3,000 children joined in the order
 *    they were spawned on 1 worker all run inline (the ring overflows, so
 *    most are taken from the head of the injection queue), results in order.
 *  - embedding: weft_runtime_start / weft_runtime_stop, from threads that
 *    are not workers: -EBUSY for a second start and for weft_run while it
 *    runs; spawn and join (blocking on a futex) from the calling thread and
 *    concurrently from a second pthread; a join from the thread on a task
 *    that is still asleep blocks until it finishes (white-box: the opener
 *    waits until the thread is registered on the task's join word); stop
 *    is -ESRCH when nothing runs and -EPERM from a task; spawn with no
 *    runtime is -EPERM; start/stop again three times, then weft_run; each
 *    end is a clean shutdown.
 *  - stop_waits_for_detached_tasks: 100 tasks spawned and detached from
 *    the thread, that cannot finish before weft_runtime_stop was called
 *    (white-box: they are held until the runtime is stopping), have all
 *    run when stop returns.
 *  - join_across_workers_many: 100,000 tasks on 4 workers, each yielding a
 *    few times (so they migrate), joined in a random order: every result
 *    comes back right.
 *  - deadlock_reported_on_n_workers: on 2 workers, rings of 2, 3 and 4
 *    tasks that each join the next at the same moment: whatever the race,
 *    at least one join in every ring returns -EDEADLK, the others return
 *    the joined task's result, and the run ends cleanly (no deadlock left
 *    for the runtime to report).
 *  - deadlock_report_names_each_join_target, _the_group_waited_for: on 1
 *    and 2 workers, a chain of joins with no cycle (main joins a task that
 *    joins a task blocked on a channel), and a task group wait on a member
 *    blocked on a channel, end the run with -EDEADLK; the report's lines
 *    name each join's target by id, the channel and the group, and the
 *    blocked tasks are the ones left.
 *  - a_yielder_is_not_starved: on 1 worker, 2,000 chains of detached
 *    tasks (each step spawns the next and exits) keep more tasks ready
 *    than the ring holds, so the injection queue never empties; a task that
 *    yields must still run again within a bounded number of steps (the
 *    maintenance pass gives the oldest yielder its turn every 61 passes,
 *    whatever else is ready), not only once the chains run out.
 *  - next_slot_*: on 2 workers, a task woken by the running task waits in
 *    its worker's next slot (white-box: the slot holds it right after the
 *    wake, and no idle worker was woken for it); when the waker goes on
 *    instead of suspending, past a checkpoint, a spawn or a channel
 *    operation that did not wait, the woken task moves to the ring and the
 *    other worker runs it while the waker spins with no call at all (a
 *    woken task left in the slot would hang the run: the watchdog fails
 *    it). With WEFT_NEXT_SLOT=0 the slot stays empty and the woken task
 *    goes straight to the other worker.
 *  - next_slot_left_when_maintenance_picks_another: the waker suspends,
 *    but the decision is a maintenance pass that gives a yielder its turn
 *    (forced white-box), and the yielder spins until the woken task has
 *    run: the woken task must move to the ring, and the parked worker be
 *    woken for it (it hung before the fix).
 * A watchdog (alarm) kills a hung run, which fails the test.
 * Sanitizer builds divide the sizes by WEFT_TEST_SCALE.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "task.h"
#include "util.h"
#include "waitq.h"
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

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static struct weft_config config_with_workers(unsigned workers)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers;
    return cfg;
}

/* ---- work conservation ------------------------------------------------ */

static _Atomic unsigned arrived;
static unsigned conserve_w;

/* Never suspends: it holds its worker until every sibling has arrived. */
static void *spin_until_all_arrived(void *arg)
{
    atomic_fetch_add(&arrived, 1);
    while (atomic_load_explicit(&arrived, memory_order_relaxed) < conserve_w)
        cpu_relax();
    return arg;
}

static void *conserve_main(void *arg)
{
    (void)arg;
    weft_task *h[8];
    for (unsigned i = 0; i < conserve_w; i++)
        ck_assert_int_eq(weft_spawn(&h[i], spin_until_all_arrived, IPTR(i + 100)), 0);
    for (unsigned i = 0; i < conserve_w; i++) {
        void *r;
        ck_assert_int_eq(weft_join(h[i], &r), 0);
        ck_assert_int_eq(PINT(r), i + 100);
    }
    return NULL;
}

static const unsigned conserve_workers[] = {2, 4};

START_TEST(work_conservation)
{
    alarm(WATCHDOG_S);
    conserve_w = conserve_workers[_i];
    atomic_store(&arrived, 0);
    struct weft_config cfg = config_with_workers(conserve_w);
    ck_assert_int_eq(weft_run(&cfg, conserve_main, NULL, NULL), 0);
    assert_clean_shutdown();
    ck_assert_uint_eq(atomic_load(&arrived), conserve_w);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.workers, conserve_w);
    ck_assert_uint_eq(s.tasks_spawned, conserve_w + 1);
}
END_TEST

/* ---- every knob runs every task ---------------------------------------- */

/* The sum of the 2^depth leaves (each 1) below this node. */
static void *tree(void *arg)
{
    intptr_t depth = PINT(arg);
    if (depth == 0)
        return IPTR(1);
    weft_task *l, *r;
    ck_assert_int_eq(weft_spawn(&l, tree, IPTR(depth - 1)), 0);
    ck_assert_int_eq(weft_spawn(&r, tree, IPTR(depth - 1)), 0);
    void *a = NULL, *b = NULL;
    ck_assert_int_eq(weft_join(l, &a), 0);
    ck_assert_int_eq(weft_join(r, &b), 0);
    return IPTR(PINT(a) + PINT(b));
}

static unsigned long nflags;
static unsigned char *flags;
static weft_task **handles;
static intptr_t tree_depth;

static void *yield_once_and_flag(void *arg)
{
    ck_assert_int_eq(weft_yield(), 0);
    flags[PINT(arg)]++;
    return arg;
}

static void *knobs_main(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < nflags; i++)
        ck_assert_int_eq(weft_spawn(&handles[i], yield_once_and_flag, IPTR(i)), 0);
    /* The tree runs while the independent tasks are queued and stolen. */
    ck_assert_int_eq(PINT(tree(IPTR(tree_depth))), (intptr_t)1 << tree_depth);
    for (unsigned long i = 0; i < nflags; i++) {
        void *r;
        ck_assert_int_eq(weft_join(handles[i], &r), 0);
        ck_assert_int_eq(PINT(r), (intptr_t)i);
    }
    return NULL;
}

START_TEST(knobs_all_run_every_task)
{
    static const enum weft_steal steals[] = {WEFT_STEAL_HALF, WEFT_STEAL_ONE};
    static const enum weft_victim victims[] = {WEFT_VICTIM_RANDOM, WEFT_VICTIM_ROUND_ROBIN,
                                               WEFT_VICTIM_TOPOLOGY};
    alarm(WATCHDOG_S);
    nflags = scaled(10000);
    /* 2^14 leaves, fewer in sanitizer builds (TSan keeps few fibers). */
    unsigned long leaves = scaled(1ul << 14);
    tree_depth = 4;
    while (((unsigned long)2 << tree_depth) <= leaves)
        tree_depth++;
    flags = calloc(nflags, 1);
    handles = calloc(nflags, sizeof handles[0]);
    ck_assert(flags && handles);
    for (unsigned s = 0; s < 2; s++) {
        for (unsigned v = 0; v < 3; v++) {
            for (int lifo = 0; lifo < 2; lifo++) {
                memset(flags, 0, nflags);
                struct weft_config cfg = config_with_workers(4);
                cfg.steal = steals[s];
                cfg.victim = victims[v];
                cfg.lifo = lifo;
                ck_assert_msg(weft_run(&cfg, knobs_main, NULL, NULL) == 0,
                              "steal %u victim %u lifo %d: weft_run failed", s, v, lifo);
                assert_clean_shutdown();
                unsigned long missing = 0, twice = 0;
                for (unsigned long i = 0; i < nflags; i++) {
                    missing += flags[i] == 0;
                    twice += flags[i] > 1;
                }
                ck_assert_msg(missing == 0 && twice == 0,
                              "steal %u victim %u lifo %d: %lu tasks never ran, %lu ran twice", s,
                              v, lifo, missing, twice);
                struct weft_stats st;
                ck_assert_int_eq(weft_stats_get(&st), 0);
                ck_assert_uint_eq(st.workers, 4);
                /* main + the independent tasks + every node but the root */
                uint64_t want = 1 + nflags + (((uint64_t)2 << tree_depth) - 2);
                ck_assert_uint_eq(st.tasks_spawned, want);
                ck_assert_uint_eq(st.tasks_finished, want);
                ck_assert_uint_eq(st.tasks_unreleased, 0);
            }
        }
    }
    free(flags);
    free(handles);
}
END_TEST

/* ---- inline on and off ------------------------------------------------ */

static void *fib(void *arg)
{
    intptr_t n = PINT(arg);
    if (n < 2)
        return arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, fib, IPTR(n - 1)), 0);
    intptr_t b = PINT(fib(IPTR(n - 2)));
    void *a = NULL;
    ck_assert_int_eq(weft_join(t, &a), 0);
    return IPTR(PINT(a) + b);
}

static uint64_t fib_spawns(unsigned n)
{
    return n < 2 ? 0 : 1 + fib_spawns(n - 1) + fib_spawns(n - 2);
}

static uint64_t inlined; /* children run inline in the last fib run */

static void *fib_main(void *arg)
{
    void *r = fib(arg);
    /* Every task has been joined: the counters are final. */
    inlined = 0;
    for (unsigned i = 0; i < weft__rt->nworkers; i++)
        inlined += WEFT_CNT(weft__rt->workers[i].n.inlined);
    return r;
}

static uint64_t run_fib(unsigned workers, size_t inline_min, bool set_inline)
{
    struct weft_config cfg = config_with_workers(workers);
    if (set_inline)
        cfg.inline_min = inline_min;
    void *r = NULL;
    ck_assert_int_eq(weft_run(&cfg, fib_main, IPTR(20), &r), 0);
    assert_clean_shutdown();
    ck_assert_int_eq(PINT(r), 6765);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_spawned, 1 + fib_spawns(20));
    return s.tasks_spawned;
}

START_TEST(inline_off_and_on_agree)
{
    alarm(WATCHDOG_S);
    uint64_t off = run_fib(0, 0, true);
    ck_assert_uint_eq(inlined, 0);
    uint64_t on = run_fib(0, 0, false);
    ck_assert_uint_eq(off, on);
    /* One worker: nothing is stolen, so the default inlines for sure. */
    uint64_t on1 = run_fib(1, 0, false);
    ck_assert_uint_gt(inlined, 0);
    ck_assert_uint_eq(on1, on);
    uint64_t off1 = run_fib(1, 0, true);
    ck_assert_uint_eq(inlined, 0);
    ck_assert_uint_eq(off1, on);
}
END_TEST

/* Joins in spawn order find each child at the oldest end of the ring, or
 * at the head of the injection queue once the ring has overflowed; on one
 * worker every one of them runs inline, in order (white-box count). */
#define ORDERED_N 3000

static void *ret_arg(void *arg)
{
    return arg;
}

static void *ordered_main(void *arg)
{
    (void)arg;
    static weft_task *t[ORDERED_N];
    for (intptr_t i = 0; i < ORDERED_N; i++)
        ck_assert_int_eq(weft_spawn(&t[i], ret_arg, IPTR(i)), 0);
    intptr_t bad = 0;
    for (intptr_t i = 0; i < ORDERED_N; i++) {
        void *r = NULL;
        ck_assert_int_eq(weft_join(t[i], &r), 0);
        bad += PINT(r) != i;
    }
    ck_assert_int_eq(bad, 0);
    inlined = WEFT_CNT(weft__rt->workers[0].n.inlined);
    return NULL;
}

START_TEST(joins_in_spawn_order_run_inline)
{
    alarm(WATCHDOG_S);
    struct weft_config cfg = config_with_workers(1);
    ck_assert_int_eq(weft_run(&cfg, ordered_main, NULL, NULL), 0);
    assert_clean_shutdown();
    ck_assert_uint_eq(inlined, ORDERED_N);
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_spawned, ORDERED_N + 1);
}
END_TEST

/* ---- embedding ---------------------------------------------------------- */

/* Returns arg + 1; one in seven sleeps 1 ms first, one in five yields. */
static void *plus_one_maybe_sleep(void *arg)
{
    intptr_t i = PINT(arg);
    if (i % 7 == 0)
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    if (i % 5 == 0)
        ck_assert_int_eq(weft_yield(), 0);
    return IPTR(i + 1);
}

static void spawn_join_from_thread(unsigned long n, intptr_t base)
{
    weft_task **h = calloc(n, sizeof h[0]);
    ck_assert_ptr_nonnull(h);
    for (unsigned long i = 0; i < n; i++)
        ck_assert_int_eq(weft_spawn(&h[i], plus_one_maybe_sleep, IPTR(base + (intptr_t)i)), 0);
    for (unsigned long i = 0; i < n; i++) {
        void *r = NULL;
        ck_assert_int_eq(weft_join(h[i], &r), 0);
        ck_assert_int_eq(PINT(r), base + (intptr_t)i + 1);
        ck_assert_int_eq(weft_join(h[i], NULL), -ESRCH);
    }
    free(h);
}

static void *second_thread(void *arg)
{
    (void)arg;
    spawn_join_from_thread(500, 1000000);
    return NULL;
}

static _Atomic int gate_open, gate_entered, gate_left;

/* Sleeps, 1 ms at a time, until the gate opens. */
static void *sleep_until_gate(void *arg)
{
    atomic_store(&gate_entered, 1);
    while (!atomic_load(&gate_open))
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    atomic_store(&gate_left, 1);
    return IPTR(PINT(arg) + 1);
}

static weft_task *gate_task;

/* Opens the gate once the task is asleep and a thread is registered on its
 * join word (blocked in weft_join, or about to block on the futex). */
static void *gate_opener(void *arg)
{
    (void)arg;
    int err = 0;
    struct weft__task *t = weft__task_lookup(gate_task, &err);
    ck_assert_ptr_nonnull(t);
    while (!atomic_load(&gate_entered) || !(atomic_load(&t->join) & WEFT_J_EXT))
        sched_yield();
    ck_assert_int_eq(atomic_load(&gate_left), 0);
    atomic_store(&gate_open, 1);
    return NULL;
}

static void *stop_from_task(void *arg)
{
    (void)arg;
    return IPTR(weft_runtime_stop());
}

static void *main_returns_arg(void *arg)
{
    return arg;
}

static void *run_main_spawns(void *arg)
{
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, plus_one_maybe_sleep, arg), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(t, &r), 0);
    return r;
}

START_TEST(embedding)
{
    alarm(WATCHDOG_S);
    weft_task *t = NULL;
    ck_assert_int_eq(weft_spawn(&t, main_returns_arg, NULL), -EPERM);
    ck_assert_int_eq(weft_runtime_stop(), -ESRCH);

    struct weft_config cfg = config_with_workers(2);
    ck_assert_int_eq(weft_runtime_start(&cfg), 0);
    ck_assert_int_eq(weft_runtime_start(&cfg), -EBUSY);
    ck_assert_int_eq(weft_run(NULL, main_returns_arg, NULL, NULL), -EBUSY);
    /* A thread that is not a worker cannot suspend. */
    ck_assert_int_eq(weft_yield(), -EPERM);
    ck_assert_int_eq(weft_sleep(WEFT_MSEC), -EPERM);

    pthread_t other;
    ck_assert_int_eq(pthread_create(&other, NULL, second_thread, NULL), 0);
    spawn_join_from_thread(1000, 0);

    /* A join from the thread that has to wait. */
    ck_assert_int_eq(weft_spawn(&gate_task, sleep_until_gate, IPTR(77)), 0);
    pthread_t opener;
    ck_assert_int_eq(pthread_create(&opener, NULL, gate_opener, NULL), 0);
    void *r = NULL;
    ck_assert_int_eq(weft_join(gate_task, &r), 0);
    ck_assert_int_eq(PINT(r), 78);
    ck_assert_int_eq(atomic_load(&gate_left), 1);
    ck_assert_int_eq(pthread_join(opener, NULL), 0);
    ck_assert_int_eq(pthread_join(other, NULL), 0);

    /* Stopping is for threads, not tasks. */
    ck_assert_int_eq(weft_spawn(&t, stop_from_task, NULL), 0);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(PINT(r), -EPERM);

    ck_assert_int_eq(weft_runtime_stop(), 0);
    ck_assert_int_eq(weft_runtime_stop(), -ESRCH);
    assert_clean_shutdown();
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.workers, 2);
    ck_assert_uint_eq(s.tasks_spawned, 1000 + 500 + 1 + 1);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
    ck_assert_int_eq(weft_spawn(&t, main_returns_arg, NULL), -EPERM);
    ck_assert_int_eq(weft_join(t, NULL), -EPERM);

    for (unsigned round = 0; round < 3; round++) {
        cfg = config_with_workers(1 + round);
        ck_assert_int_eq(weft_runtime_start(&cfg), 0);
        spawn_join_from_thread(50, 100 * round);
        ck_assert_int_eq(weft_runtime_stop(), 0);
        assert_clean_shutdown();
        ck_assert_int_eq(weft_stats_get(&s), 0);
        ck_assert_uint_eq(s.workers, 1 + round);
        ck_assert_uint_eq(s.tasks_spawned, 50);
        ck_assert_int_eq(weft_runtime_stop(), -ESRCH);
    }

    r = NULL;
    ck_assert_int_eq(weft_run(NULL, run_main_spawns, IPTR(41), &r), 0);
    ck_assert_int_eq(PINT(r), 42);
    assert_clean_shutdown();
    ck_assert_int_eq(weft_runtime_stop(), -ESRCH);
    ck_assert_int_eq(weft_spawn(&t, main_returns_arg, NULL), -EPERM);
}
END_TEST

/* ---- stop waits for detached tasks ----------------------------------- */

static _Atomic unsigned long detached_done;
static _Atomic int release_detached;

/* Cannot finish before the runtime is stopping: the releaser sees to it. */
static void *sleep_then_count(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_sleep(5 * WEFT_MSEC), 0);
    while (!atomic_load(&release_detached))
        ck_assert_int_eq(weft_sleep(WEFT_MSEC), 0);
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

/* Releases the tasks once weft_runtime_stop has begun. */
static void *releaser(void *arg)
{
    struct weft__runtime *rt = arg;
    while (!atomic_load(&rt->stopping))
        sched_yield();
    atomic_store(&release_detached, 1);
    return NULL;
}

START_TEST(stop_waits_for_detached_tasks)
{
    alarm(WATCHDOG_S);
    struct weft_config cfg = config_with_workers(2);
    ck_assert_int_eq(weft_runtime_start(&cfg), 0);
    for (int i = 0; i < 100; i++) {
        weft_task *t;
        ck_assert_int_eq(weft_spawn(&t, sleep_then_count, IPTR(i)), 0);
        ck_assert_int_eq(weft_detach(t), 0);
        ck_assert_int_eq(weft_detach(t), -EINVAL);
    }
    pthread_t rel;
    ck_assert_int_eq(pthread_create(&rel, NULL, releaser, weft__rt), 0);
    ck_assert_uint_eq(atomic_load(&detached_done), 0);
    ck_assert_int_eq(weft_runtime_stop(), 0);
    ck_assert_uint_eq(atomic_load(&detached_done), 100);
    ck_assert_int_eq(pthread_join(rel, NULL), 0);
    assert_clean_shutdown();
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_spawned, 100);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
}
END_TEST

/* ---- joins across workers ------------------------------------------- */

static unsigned long nmany;

static void *yield_some_times3(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    unsigned n = 1 + (unsigned)(mix(i) % 4);
    for (unsigned y = 0; y < n; y++)
        ck_assert_int_eq(weft_yield(), 0);
    return IPTR(i * 3);
}

static void *many_main(void *arg)
{
    (void)arg;
    unsigned long *order = malloc(nmany * sizeof order[0]);
    ck_assert_ptr_nonnull(order);
    for (unsigned long i = 0; i < nmany; i++) {
        ck_assert_int_eq(weft_spawn(&handles[i], yield_some_times3, IPTR(i)), 0);
        order[i] = i;
    }
    for (unsigned long i = nmany; i > 1; i--) {
        unsigned long j = mix(i * 0x9e3779b97f4a7c15ULL) % i;
        unsigned long x = order[i - 1];
        order[i - 1] = order[j];
        order[j] = x;
    }
    for (unsigned long k = 0; k < nmany; k++) {
        unsigned long i = order[k];
        void *r = NULL;
        ck_assert_int_eq(weft_join(handles[i], &r), 0);
        ck_assert_uint_eq((uintptr_t)r, i * 3);
    }
    free(order);
    return NULL;
}

START_TEST(join_across_workers_many)
{
    alarm(WATCHDOG_S);
    nmany = scaled(100000);
    handles = calloc(nmany, sizeof handles[0]);
    ck_assert_ptr_nonnull(handles);
    struct weft_config cfg = config_with_workers(4);
    ck_assert_int_eq(weft_run(&cfg, many_main, NULL, NULL), 0);
    assert_clean_shutdown();
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_spawned, nmany + 1);
    ck_assert_uint_eq(s.tasks_unreleased, 0);
    free(handles);
}
END_TEST

/* ---- cycles of joins -------------------------------------------------- */

#define RING_MAX 4

struct join_ring {
    unsigned n;
    weft_task *h[RING_MAX];
    int rc[RING_MAX];
    intptr_t got[RING_MAX];
    _Atomic int ready;
    _Atomic unsigned joined; /* members whose join returned */
};

struct ring_member {
    struct join_ring *ring;
    unsigned k;
};

/* Waits until every handle is published, then joins the next member. */
static void *join_next(void *arg)
{
    struct ring_member *m = arg;
    struct join_ring *ring = m->ring;
    while (!atomic_load(&ring->ready))
        ck_assert_int_eq(weft_yield(), 0);
    void *r = NULL;
    ring->rc[m->k] = weft_join(ring->h[(m->k + 1) % ring->n], &r);
    ring->got[m->k] = PINT(r);
    void *mine = IPTR(100 + m->k);
    atomic_fetch_add(&ring->joined, 1);
    return mine;
}

static unsigned long cycle_rounds;

static void *cycles_main(void *arg)
{
    (void)arg;
    for (unsigned long round = 0; round < cycle_rounds; round++) {
        struct join_ring ring = {.n = 2 + (unsigned)(round % (RING_MAX - 1))};
        struct ring_member m[RING_MAX];
        for (unsigned k = 0; k < ring.n; k++) {
            m[k] = (struct ring_member){&ring, k};
            ck_assert_int_eq(weft_spawn(&ring.h[k], join_next, &m[k]), 0);
        }
        atomic_store(&ring.ready, 1);
        /* Wait for every join to return (bounded: an undetected cycle
         * fails here rather than at the watchdog). */
        unsigned long waits = 0;
        while (atomic_load(&ring.joined) < ring.n) {
            ck_assert_msg(++waits < 2000000,
                          "round %lu: a ring of %u joins never came back: a cycle of joins "
                          "was not detected",
                          round, ring.n);
            ck_assert_int_eq(weft_sleep(10 * WEFT_USEC), 0);
        }
        unsigned deadlk = 0;
        for (unsigned k = 0; k < ring.n; k++) {
            unsigned next = (k + 1) % ring.n;
            if (ring.rc[k] == -EDEADLK) {
                deadlk++;
            } else {
                ck_assert_msg(ring.rc[k] == 0, "round %lu: member %u's join returned %s", round,
                              k, weft_err_name(ring.rc[k]));
                ck_assert_int_eq(ring.got[k], 100 + next);
            }
        }
        ck_assert_msg(deadlk >= 1, "round %lu: no join of a ring of %u returned -EDEADLK", round,
                      ring.n);
        /* Join every member nobody joined (its predecessor's join failed). */
        for (unsigned k = 0; k < ring.n; k++) {
            unsigned prev = (k + ring.n - 1) % ring.n;
            if (ring.rc[prev] == 0) {
                ck_assert_int_eq(weft_join(ring.h[k], NULL), -ESRCH);
                continue;
            }
            void *r = NULL;
            ck_assert_int_eq(weft_join(ring.h[k], &r), 0);
            ck_assert_int_eq(PINT(r), 100 + k);
        }
    }
    return NULL;
}

START_TEST(deadlock_reported_on_n_workers)
{
    alarm(WATCHDOG_S);
    cycle_rounds = scaled(3000);
    if (cycle_rounds < 30)
        cycle_rounds = 30;
    struct weft_config cfg = config_with_workers(2);
    start_capture();
    int err = weft_run(&cfg, cycles_main, NULL, NULL);
    const char *said = stop_capture();
    ck_assert_msg(err == 0, "weft_run: %s; stderr: %s", weft_err_name(err), said);
    ck_assert_str_eq(said, "");
    assert_clean_shutdown();
}
END_TEST

/* ---- what a deadlock report says of joins and groups ------------------ */

/* Blocked joins with no cycle among them: main joins "joiner", which joins
 * "receiver", which waits on a channel nobody sends to. No join closes a
 * cycle, so each one waits, and the run can only end as a deadlock. Then
 * main waits on a task group whose one member waits on that channel. The
 * objects are kept here, not freed: a deadlocked run leaves its tasks
 * listed on them (weft_run), and a leak checker sees them from here. */
static weft_chan *stuck_chan;
static weft_group *stuck_group;
static weft_task *stuck_joiner, *stuck_receiver;
static uint64_t joiner_id, receiver_id;
static _Atomic int stuck_started;

static void *receives_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stuck_started, 1);
    return IPTR(weft_chan_recv(stuck_chan, NULL));
}

static void *joins_the_receiver(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stuck_started, 1);
    return IPTR(weft_join(stuck_receiver, NULL));
}

/* Until n tasks have started (bounded): each join below then finds its
 * target running, not waiting to start, so that it waits instead of
 * running the target inline on its own stack. */
static void wait_started(int n)
{
    uint64_t until = weft_now() + 10 * WEFT_SEC;
    while (atomic_load(&stuck_started) < n && weft_now() < until)
        CHECK(weft_sleep(100 * WEFT_USEC) == 0);
    CHECK(atomic_load(&stuck_started) == n);
}

static void *join_deadlock_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&stuck_chan, 0) == 0);
    CHECK(weft_spawn_opts(&stuck_receiver, receives_forever, NULL,
                          &(struct weft_task_opts){.name = "receiver"}) == 0);
    wait_started(1);
    CHECK(weft_spawn_opts(&stuck_joiner, joins_the_receiver, NULL,
                          &(struct weft_task_opts){.name = "joiner"}) == 0);
    wait_started(2);
    joiner_id = weft_task_id(stuck_joiner);
    receiver_id = weft_task_id(stuck_receiver);
    (void)weft_join(stuck_joiner, NULL); /* never returns */
    CHECK(!"the join of a deadlocked task returned");
    return NULL;
}

static void *group_deadlock_main(void *arg)
{
    (void)arg;
    CHECK(weft_chan_new(&stuck_chan, 0) == 0);
    CHECK(weft_group_new(&stuck_group) == 0);
    CHECK(weft_group_spawn(stuck_group, receives_forever, NULL) == 0);
    (void)weft_group_wait(stuck_group); /* never returns */
    CHECK(!"the wait on a deadlocked group returned");
    return NULL;
}

/* Runs main_fn to its deadlock and returns what it printed. */
static const char *run_to_deadlock(unsigned workers, weft_fn main_fn, uint64_t blocked)
{
    alarm(WATCHDOG_S);
    atomic_store(&stuck_started, 0);
    stuck_chan = NULL;
    stuck_group = NULL;
    joiner_id = receiver_id = 0;
    struct weft_config cfg = config_with_workers(workers);
    start_capture();
    int err = weft_run(&cfg, main_fn, NULL, NULL);
    const char *said = stop_capture();
    ck_assert_msg(err == -EDEADLK, "weft_run: %s; stderr: %s", weft_err_name(err), said);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    /* The blocked tasks are left; what can be clean is. */
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_live, blocked);
    ck_assert_uint_eq(s.timers_pending, 0);
    ck_assert_uint_eq(s.stack_slabs, 0);
    char line[128];
    snprintf(line, sizeof line, "deadlock: %llu tasks are blocked and nothing can wake one:",
             (unsigned long long)blocked);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
    snprintf(line, sizeof line, "): blocked on channel %p\n", (void *)stuck_chan);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
    return said;
}

static const unsigned report_workers[] = {1, 2};

START_TEST(deadlock_report_names_each_join_target)
{
    const char *said = run_to_deadlock(report_workers[_i], join_deadlock_main, 3);
    ck_assert_uint_ne(joiner_id, 0);
    ck_assert_uint_ne(receiver_id, 0);
    char line[128];
    snprintf(line, sizeof line, "task \"main\" (id 1): joining task %llu\n",
             (unsigned long long)joiner_id);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
    snprintf(line, sizeof line, "task \"joiner\" (id %llu): joining task %llu\n",
             (unsigned long long)joiner_id, (unsigned long long)receiver_id);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
    snprintf(line, sizeof line, "task \"receiver\" (id %llu): blocked on channel %p\n",
             (unsigned long long)receiver_id, (void *)stuck_chan);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
}
END_TEST

START_TEST(deadlock_report_names_the_group_waited_for)
{
    const char *said = run_to_deadlock(report_workers[_i], group_deadlock_main, 2);
    char line[128];
    snprintf(line, sizeof line, "task \"main\" (id 1): waiting for task group %p\n",
             (void *)stuck_group);
    ck_assert_msg(strstr(said, line) != NULL, "no \"%s\" in: %s", line, said);
}
END_TEST

/* ---- a yielder is not starved by a stream of ready tasks -------------- */

enum { CHAINS = 2000, CHAIN_STEPS_MAX = 400000, YIELD_BOUND = 20000 };
static _Atomic unsigned long chain_steps;
static _Atomic int chains_stop;

/* One step of a chain: counts, spawns the next step (detached), exits. */
static void *chain_step(void *arg)
{
    (void)arg;
    if (atomic_load(&chains_stop) ||
        atomic_fetch_add(&chain_steps, 1) >= CHAIN_STEPS_MAX)
        return NULL;
    weft_task *t;
    CHECK(weft_spawn(&t, chain_step, NULL) == 0);
    CHECK(weft_detach(t) == 0);
    return NULL;
}

static unsigned long steps_at_resume;

static void *starve_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < CHAINS; i++) {
        weft_task *t;
        ck_assert_int_eq(weft_spawn(&t, chain_step, NULL), 0);
        ck_assert_int_eq(weft_detach(t), 0);
    }
    unsigned long before = atomic_load(&chain_steps);
    ck_assert_int_eq(weft_yield(), 0);
    steps_at_resume = atomic_load(&chain_steps) - before;
    atomic_store(&chains_stop, 1); /* the chains end; the run waits for them */
    return NULL;
}

START_TEST(a_yielder_is_not_starved)
{
    alarm(WATCHDOG_S);
    atomic_store(&chain_steps, 0);
    atomic_store(&chains_stop, 0);
    run_on_workers(1, starve_main);
    /* The yielder came back while the chains still ran, within its bound
     * (61 passes of 61 decisions, with room to spare), not at their end. */
    ck_assert_uint_lt(steps_at_resume, YIELD_BOUND);
    ck_assert_uint_lt(atomic_load(&chain_steps), CHAIN_STEPS_MAX);
}
END_TEST

/* ---- the next slot ----------------------------------------------------- */

enum { NEXT_CHECKPOINT, NEXT_SPAWN, NEXT_CHAN_SEND, NEXT_CHAN_RECV, NEXT_OFF, NEXT_WAYS };
static weft_chan *next_wake, *next_buf;
static _Atomic int woken_ran;
static struct weft__task *woken_task;

static void *woken_body(void *arg)
{
    (void)arg;
    void *v;
    CHECK(weft_chan_recv(next_wake, &v) == 0);
    atomic_store(&woken_ran, 1);
    return NULL;
}

static void *next_main(void *arg)
{
    int way = (int)PINT(arg);
    ck_assert_int_eq(weft_chan_new(&next_wake, 0), 0);
    ck_assert_int_eq(weft_chan_new(&next_buf, 4), 0);
    ck_assert_int_eq(weft_chan_send(next_buf, NULL), 0); /* one to receive */
    weft_task *h;
    struct weft__worker *w;
    for (int attempt = 0;; attempt++) {
        atomic_store(&woken_ran, 0);
        ck_assert_int_eq(weft_spawn(&h, woken_body, NULL), 0);
        int err;
        woken_task = weft__task_lookup(h, &err);
        ck_assert_ptr_nonnull(woken_task);
        /* Until it waits in its receive (it may run on either worker). */
        while (atomic_load(&woken_task->state) != WEFT_T_BLOCKED)
            ck_assert_int_eq(weft_sleep(100 * WEFT_USEC), 0);
        w = weft__worker_self();
        ck_assert_int_eq(weft_chan_send(next_wake, NULL), 0);
        if (way == NEXT_OFF)
            break;
        /* Woken by this task, it waits for this task's next decision:
         * still in the slot, so not run yet (read in that order). */
        int ran = atomic_load(&woken_ran);
        if (weft__worker_next(w) == woken_task) {
            ck_assert_int_eq(ran, 0);
            break;
        }
        /* A thief took it: this thread was held up past the thieves'
         * grace period (a loaded machine). Again, a bounded number of
         * times: a wake that never used the slot fails every time. */
        ck_assert_int_lt(attempt, 100);
        ck_assert_int_eq(weft_join(h, NULL), 0);
        ck_assert_int_eq(atomic_load(&woken_ran), 1);
    }
    weft_task *extra = NULL;
    if (way == NEXT_OFF) {
        /* WEFT_NEXT_SLOT=0: onto the ring, and the idle worker is woken. */
        ck_assert_ptr_null(weft__worker_next(w));
        goto spin;
    }
    switch (way) {
    case NEXT_CHECKPOINT:
        ck_assert_int_eq(weft_checkpoint(), 0);
        break;
    case NEXT_SPAWN:
        ck_assert_int_eq(weft_spawn(&extra, util_nothing, NULL), 0);
        break;
    case NEXT_CHAN_SEND:
        ck_assert_int_eq(weft_chan_send(next_buf, NULL), 0); /* room: no wait */
        break;
    case NEXT_CHAN_RECV: {
        void *v;
        ck_assert_int_eq(weft_chan_recv(next_buf, &v), 0); /* a value: no wait */
        break;
    }
    }
    ck_assert_ptr_null(weft__worker_next(w));
spin:
    /* No call from here on: only the other worker can run it. */
    while (!atomic_load(&woken_ran))
        cpu_relax();
    ck_assert_int_eq(weft_join(h, NULL), 0);
    if (extra)
        ck_assert_int_eq(weft_join(extra, NULL), 0);
    ck_assert_int_eq(weft_chan_free(next_wake), 0);
    ck_assert_int_eq(weft_chan_free(next_buf), 0);
    return NULL;
}

START_TEST(next_slot_moves_on)
{
    alarm(WATCHDOG_S);
    atomic_store(&woken_ran, 0);
    struct weft_config cfg = config_with_workers(2);
    cfg.next_slot = _i != NEXT_OFF;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, next_main, IPTR(_i), &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

/* Spawns fn(NULL) as *h and yields until it waits (it must block on
 * something before it ends); returns its task. Task context. */
static struct weft__task *spawn_until_blocked(weft_task **h, weft_fn fn)
{
    ck_assert_int_eq(weft_spawn(h, fn, NULL), 0);
    int err;
    struct weft__task *t = weft__task_lookup(*h, &err);
    ck_assert_ptr_nonnull(t);
    while (atomic_load(&t->state) != WEFT_T_BLOCKED)
        ck_assert_int_eq(weft_yield(), 0);
    return t;
}

/* The waker suspends, but its worker's decision is a maintenance pass that
 * picks another task first (here a yielder's turn, forced white-box on the
 * 61st decision), and that task computes until the woken one has run: the
 * woken task must leave the next slot for the ring, where the parked
 * worker is woken to take it. */
static weft_chan *strand_c, *strand_done;
static _Atomic int strand_b_started, strand_release_b, strand_x_ran;

static void *strand_spinner(void *arg)
{
    (void)arg;
    atomic_store(&strand_b_started, 1);
    while (!atomic_load(&strand_release_b))
        cpu_relax();
    return NULL;
}

static void *strand_woken(void *arg)
{
    (void)arg;
    void *v;
    CHECK(weft_chan_recv(strand_c, &v) == 0);
    atomic_store(&strand_x_ran, 1);
    CHECK(weft_chan_send(strand_done, NULL) == 0);
    return NULL;
}

static void *strand_yielder(void *arg)
{
    (void)arg;
    CHECK(weft_yield() == 0);
    while (!atomic_load(&strand_x_ran)) /* no call: only another worker can run X */
        cpu_relax();
    return NULL;
}

static void *strand_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_chan_new(&strand_c, 0), 0);
    ck_assert_int_eq(weft_chan_new(&strand_done, 0), 0);
    weft_task *hb, *hx, *hs;
    /* The other worker, busy until released, then parked. */
    ck_assert_int_eq(weft_spawn(&hb, strand_spinner, NULL), 0);
    while (!atomic_load(&strand_b_started))
        cpu_relax();
    struct weft__task *xt = spawn_until_blocked(&hx, strand_woken);
    ck_assert_int_eq(weft_spawn(&hs, strand_yielder, NULL), 0);
    ck_assert_int_eq(weft_yield(), 0); /* the yielder runs and queues behind this task */
    struct weft__worker *w = weft__worker_self();
    ck_assert_ptr_nonnull(w->yields.head);
    atomic_store(&strand_release_b, 1);
    while (atomic_load(&w->rt->nidle) != 1) /* the other worker parks */
        cpu_relax();
    ck_assert_int_eq(weft_chan_send(strand_c, NULL), 0);
    ck_assert_ptr_eq(weft__worker_next(w), xt); /* in the slot, nobody woken */
    w->tick = 1;               /* this decision is a maintenance pass, */
    w->yield_passes = 61 - 1;  /* and the yielder's turn (every 61 passes) */
    void *v;
    ck_assert_int_eq(weft_chan_recv(strand_done, &v), 0);
    ck_assert_int_eq(weft_join(hb, NULL), 0);
    ck_assert_int_eq(weft_join(hx, NULL), 0);
    ck_assert_int_eq(weft_join(hs, NULL), 0);
    ck_assert_int_eq(weft_chan_free(strand_c), 0);
    ck_assert_int_eq(weft_chan_free(strand_done), 0);
    return NULL;
}

START_TEST(next_slot_left_when_maintenance_picks_another)
{
    alarm(WATCHDOG_S);
    run_on_workers(2, strand_main);
}
END_TEST

/* weft__wake readies the woken task next (the next slot, here on one
 * worker); weft__wake_later queues it behind the tasks ready then (the
 * injection queue). Main wakes a waiting task while two others are ready,
 * then yields: the order they run in shows where the woken one went. */
static struct weft__task *later_task;
static uint64_t later_seq;
static char later_order[4];
static _Atomic int later_n;

static void *later_waiter(void *arg)
{
    (void)arg;
    struct weft__task *self = weft__current_task();
    later_seq = weft__wait_seq(self);
    later_task = self;
    CHECK(weft__wait(self, later_seq, NULL, WEFT__NEVER, WEFT_W_FUTURE, NULL, true) ==
          WEFT_WAKE_WOKEN);
    later_order[atomic_fetch_add(&later_n, 1)] = 'W';
    return NULL;
}

static void *later_ready(void *arg)
{
    (void)arg;
    later_order[atomic_fetch_add(&later_n, 1)] = 'R';
    return NULL;
}

static void *later_main(void *arg)
{
    bool later = arg != NULL;
    weft_task *hw, *h1, *h2;
    spawn_until_blocked(&hw, later_waiter);
    ck_assert_int_eq(weft_spawn(&h1, later_ready, NULL), 0);
    ck_assert_int_eq(weft_spawn(&h2, later_ready, NULL), 0);
    ck_assert(later ? weft__wake_later(later_task, later_seq, WEFT_WAKE_WOKEN)
                    : weft__wake(later_task, later_seq, WEFT_WAKE_WOKEN));
    /* A second wake of the same wait finds it ended. */
    ck_assert(!weft__wake_later(later_task, later_seq, WEFT_WAKE_WOKEN));
    ck_assert_int_eq(weft_yield(), 0); /* behind every ready task */
    ck_assert_int_eq(atomic_load(&later_n), 3);
    ck_assert_str_eq(later_order, later ? "RRW" : "WRR");
    ck_assert_int_eq(weft_join(hw, NULL), 0);
    ck_assert_int_eq(weft_join(h1, NULL), 0);
    ck_assert_int_eq(weft_join(h2, NULL), 0);
    return NULL;
}

START_TEST(wake_later_queues_behind_the_ready)
{
    alarm(WATCHDOG_S);
    atomic_store(&later_n, 0);
    memset(later_order, 0, sizeof later_order);
    struct weft_config cfg = config_with_workers(1);
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, later_main, _i ? IPTR(1) : NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, WATCHDOG_S + 30);
    tcase_add_loop_test(tc, work_conservation, 0,
                        (int)(sizeof conserve_workers / sizeof conserve_workers[0]));
    tcase_add_test(tc, knobs_all_run_every_task);
    tcase_add_test(tc, inline_off_and_on_agree);
    tcase_add_test(tc, joins_in_spawn_order_run_inline);
    tcase_add_test(tc, embedding);
    tcase_add_test(tc, stop_waits_for_detached_tasks);
    tcase_add_test(tc, join_across_workers_many);
    tcase_add_test(tc, deadlock_reported_on_n_workers);
    tcase_add_loop_test(tc, deadlock_report_names_each_join_target, 0,
                        (int)(sizeof report_workers / sizeof report_workers[0]));
    tcase_add_loop_test(tc, deadlock_report_names_the_group_waited_for, 0,
                        (int)(sizeof report_workers / sizeof report_workers[0]));
    tcase_add_test(tc, a_yielder_is_not_starved);
    tcase_add_loop_test(tc, next_slot_moves_on, 0, NEXT_WAYS);
    tcase_add_test(tc, next_slot_left_when_maintenance_picks_another);
    tcase_add_loop_test(tc, wake_later_queues_behind_the_ready, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
