/*
 * The runtime: resolving the configuration, choosing the workers (topo.c),
 * bringing them up, running the main task (weft_run) or serving spawns from
 * outside (weft_runtime_start / weft_runtime_stop), and taking it all down
 * again; and the counters (weft_stats_get, WEFT_STATS).
 *
 * One runtime at a time per process (`running` is taken with an atomic
 * exchange); nothing global survives a run but the last run's counters, so
 * runs can follow one another, in either style.
 *
 * weft_run: the calling thread is worker 0; workers 1..N-1 are threads of
 * their own. It returns when the main task and every task it left running
 * have finished (the last worker to go idle decides, worker.c): nothing is
 * abandoned mid-flight. weft_runtime_start: every worker is a thread of its
 * own; weft_runtime_stop waits for every task to finish, then stops them.
 * Either way, once the workers have stopped, the blocking-call pool runs
 * what its callers gave up on and its threads are joined (blocking.c).
 *
 * Each worker thread sets up its alternate signal stack (for the overflow
 * report) and, with WEFT_PIN=1, binds itself to its core. The process's
 * SIGSEGV/SIGBUS handlers are replaced while the runtime runs and restored
 * afterwards.
 */
#include "runtime.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "worker.h"

static atomic_bool running;
static struct weft_stats last;
static struct weft_times last_times;
static bool have_last;

/* The accounted time of the tasks that finished in rt. Once the run is
 * over (or from a worker, for a consistent enough view). */
static void times_collect(const struct weft__runtime *rt, struct weft_times *t)
{
    memset(t, 0, sizeof *t);
    t->enabled = rt->account;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const uint64_t *a = rt->workers[i].acct_sum;
        t->running_ns += a[WEFT_ACCT_RUNNING];
        t->ready_ns += a[WEFT_ACCT_READY];
        t->token_ns += a[WEFT_ACCT_TOKEN];
        t->sleeping_ns += a[WEFT_ACCT_SLEEP];
        t->waiting_ns += a[WEFT_ACCT_WAIT];
        t->io_ns += a[WEFT_ACCT_IO];
    }
}

static void times_print(const struct weft_times *t)
{
    fprintf(stderr,
            "weft: time of the finished tasks: running %.1f ms, ready without a worker %.1f ms, "
            "ready waiting for the token %.1f ms, sleeping %.1f ms, waiting %.1f ms, I/O %.1f ms\n",
            (double)t->running_ns / 1e6, (double)t->ready_ns / 1e6, (double)t->token_ns / 1e6,
            (double)t->sleeping_ns / 1e6, (double)t->waiting_ns / 1e6, (double)t->io_ns / 1e6);
}

void weft__stats_collect(const struct weft__runtime *rt, struct weft_stats *s)
{
    memset(s, 0, sizeof *s);
    s->workers = rt->nworkers;
    int64_t in_use = 0;
    uint64_t unreleased = 0;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const struct weft__worker *w = &rt->workers[i];
        s->tasks_spawned += WEFT_CNT(w->n.spawned);
        s->tasks_finished += WEFT_CNT(w->n.finished);
        unreleased += WEFT_CNT(w->n.unreleased);
        s->switches += WEFT_CNT(w->n.switches);
        in_use += __atomic_load_n(&w->stacks.in_use, __ATOMIC_RELAXED);
        s->stacks_cached += weft__stack_cached(&w->stacks);
        s->stacks_peak += (uint64_t)__atomic_load_n(&w->stacks.peak, __ATOMIC_RELAXED);
        s->timers_pending += atomic_load_explicit(&w->ntimers, memory_order_relaxed);
        s->timers_fired += __atomic_load_n(&w->timers.fired, __ATOMIC_RELAXED);
        s->io_waits += WEFT_CNT(w->n.io_waits);
    }
    s->io_polls = atomic_load_explicit(&rt->poller.polls, memory_order_relaxed);
    s->tasks_spawned += atomic_load(&rt->ext_spawned);
    s->tasks_unreleased = unreleased - atomic_load(&rt->ext_released);
    s->stacks_in_use = in_use > 0 ? (uint64_t)in_use : 0;
    s->tasks_live = s->tasks_spawned - s->tasks_finished;
    /* Under the pool's lock: a worker that maps a slab writes them under it. */
    pthread_mutex_lock((pthread_mutex_t *)&rt->stacks.lock);
    s->stack_slabs = rt->stacks.nslabs;
    s->stack_mappings = rt->stacks.mappings;
    s->stack_bytes_mapped = rt->stacks.bytes;
    pthread_mutex_unlock((pthread_mutex_t *)&rt->stacks.lock);
    weft__blocking_collect((struct weft__blocking *)&rt->blocking, s);
    if (rt->gil_on) {
        pthread_mutex_lock((pthread_mutex_t *)&rt->gil.mu);
        s->gil_handoffs = rt->gil.handoffs;
        s->gil_forced_drops = rt->gil.forced;
        pthread_mutex_unlock((pthread_mutex_t *)&rt->gil.mu);
        for (unsigned i = 0; i < rt->nworkers; i++)
            s->gil_wait_ns += rt->workers[i].gil_wait_ns;
    }
}

void weft__stats_print(const struct weft__runtime *rt, const struct weft_stats *s)
{
    fprintf(stderr, "weft: stats: %u worker%s (chosen by %s: %u cores, %u in the affinity mask",
            s->workers, s->workers == 1 ? "" : "s", weft__topo_limit_name(rt->topo.limit),
            rt->topo.ncores, rt->topo.ncores_allowed);
    if (rt->topo.cgroup_cpus > 0)
        fprintf(stderr, ", cgroup cpu.max %.2f CPUs", rt->topo.cgroup_cpus);
    fprintf(stderr, "), allocator %s, stack guard %s, ring %u slots\n", weft__alloc_name(),
            rt->stacks.mode == WEFT_GUARD_MARKER ? "marker" : "mprotect", WEFT_RING_SLOTS);
    weft__config_print(&rt->cfg, stderr);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const struct weft__worker *w = &rt->workers[i];
        fprintf(stderr,
                "weft: worker %u: ran %llu (inline %llu), switches %llu, steals %llu/%llu tries "
                "(%llu tasks), parks %llu, unparks %llu, injection pops %llu, overflows %llu, "
                "timers fired %llu\n",
                i, (unsigned long long)WEFT_CNT(w->n.started),
                (unsigned long long)WEFT_CNT(w->n.inlined),
                (unsigned long long)WEFT_CNT(w->n.switches),
                (unsigned long long)WEFT_CNT(w->n.steals),
                (unsigned long long)WEFT_CNT(w->n.steal_tries),
                (unsigned long long)WEFT_CNT(w->n.stolen), (unsigned long long)WEFT_CNT(w->n.parks),
                (unsigned long long)WEFT_CNT(w->n.unparks),
                (unsigned long long)WEFT_CNT(w->n.inject_pops),
                (unsigned long long)WEFT_CNT(w->n.overflows), (unsigned long long)w->timers.fired);
        uint64_t saves = WEFT_CNT(w->n.shared_saves);
        if (saves || WEFT_CNT(w->n.forwarded))
            fprintf(stderr,
                    "weft: worker %u: shared stack: %llu copies out, %.0f bytes each on average; "
                    "%llu shared-stack tasks sent to their home worker\n",
                    i, (unsigned long long)saves,
                    saves ? (double)WEFT_CNT(w->n.shared_bytes) / (double)saves : 0.0,
                    (unsigned long long)WEFT_CNT(w->n.forwarded));
    }
    if (rt->gil_on) {
        fprintf(stderr,
                "weft: gil: switch interval %u us, %llu hand-offs (%llu forced), token waits",
                rt->cfg.switch_interval_us, (unsigned long long)s->gil_handoffs,
                (unsigned long long)s->gil_forced_drops);
        for (unsigned i = 0; i < rt->nworkers; i++)
            fprintf(stderr, "%s worker %u %.1f ms", i ? "," : "", i,
                    (double)rt->workers[i].gil_wait_ns / 1e6);
        fprintf(stderr, "\n");
    }
    if (s->io_waits || s->io_polls)
        fprintf(stderr, "weft: I/O: %llu waits for a descriptor, %llu polls\n",
                (unsigned long long)s->io_waits, (unsigned long long)s->io_polls);
    if (s->blocking_calls || s->blocking_threads_peak)
        fprintf(stderr, "weft: blocking pool: %llu calls, at most %llu of %u threads alive\n",
                (unsigned long long)s->blocking_calls,
                (unsigned long long)s->blocking_threads_peak, rt->blocking.limit);
    fprintf(stderr, "weft: tasks: %llu spawned, %llu left unjoined\n",
            (unsigned long long)s->tasks_spawned, (unsigned long long)s->tasks_unreleased);
    fprintf(stderr, "weft: stacks: %llu slabs, %llu mappings, %llu MiB of address space\n",
            (unsigned long long)s->stack_slabs, (unsigned long long)s->stack_mappings,
            (unsigned long long)(s->stack_bytes_mapped >> 20));
}

int weft_times_get(struct weft_times *out)
{
    if (!out)
        return -EINVAL;
    if (weft__rt) {
        times_collect(weft__rt, out);
        return 0;
    }
    if (!have_last)
        return -ESRCH;
    *out = last_times;
    return 0;
}

int weft_task_times(weft_task *h, struct weft_times *out)
{
    if (!weft__rt)
        return -EPERM;
    if (!out)
        return -EINVAL;
    int err = -EINVAL;
    struct weft__task *t = weft__task_lookup(h, &err);
    if (!t)
        return err;
    memset(out, 0, sizeof *out);
    out->enabled = weft__rt->account;
    if (!out->enabled)
        return 0;
    /* Settled once the task has finished; a snapshot before. */
    const struct weft__task_cold *c = weft__task_cold(&weft__rt->tasks, t);
    out->running_ns = c->acct_ns[WEFT_ACCT_RUNNING];
    out->ready_ns = c->acct_ns[WEFT_ACCT_READY];
    out->token_ns = c->acct_ns[WEFT_ACCT_TOKEN];
    out->sleeping_ns = c->acct_ns[WEFT_ACCT_SLEEP];
    out->waiting_ns = c->acct_ns[WEFT_ACCT_WAIT];
    out->io_ns = c->acct_ns[WEFT_ACCT_IO];
    return 0;
}

int weft_stats_get(struct weft_stats *out)
{
    if (!out)
        return -EINVAL;
    if (weft__rt) {
        weft__stats_collect(weft__rt, out);
        return 0;
    }
    if (!have_last)
        return -ESRCH;
    *out = last;
    return 0;
}

static void *worker_thread(void *arg)
{
    struct weft__worker *w = arg;
    int err = weft__worker_attach(w);
    if (err < 0) {
        /* Cannot run here (the reason was printed): stop the runtime. */
        pthread_mutex_lock(&w->rt->idle_lock);
        w->rt->exit_err = err;
        pthread_mutex_unlock(&w->rt->idle_lock);
        atomic_store(&w->rt->done, true);
        weft__worker_wake_all(w->rt);
        return NULL;
    }
    weft__worker_loop(w);
    weft__worker_detach(w);
    return NULL;
}

static void stop_threads(struct weft__runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = &rt->workers[i];
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
            w->thread_started = false;
        }
    }
}

static void teardown(struct weft__runtime *rt)
{
    weft__stack_signals_restore();
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__worker_term(&rt->workers[i]);
    weft__aligned_free(rt->workers, rt->nworkers * sizeof rt->workers[0]);
    weft__inject_term(&rt->inject);
    weft__blocking_term(&rt->blocking);
    if (rt->gil_on)
        weft__gil_term(&rt->gil);
    weft__poller_term(&rt->poller);
    pthread_mutex_destroy(&rt->idle_lock);
    weft__task_table_term(&rt->tasks);
    weft__stack_pool_term(&rt->stacks);
    weft__topo_term(&rt->topo);
}

/* Brings a runtime up, its workers from `first` on running on threads of
 * their own. */
static int start(struct weft__runtime *rt, const struct weft_config *cfg, unsigned first)
{
    int err = weft__config_resolve(cfg, &rt->cfg);
    if (err < 0)
        return err;
    rt->cfg.stack_size = weft__stack_round(rt->cfg.stack_size);
    err = weft__topo_init(&rt->topo, rt->cfg.workers);
    if (err < 0)
        return err;
    err = weft__stack_pool_init(&rt->stacks, rt->cfg.guard);
    if (err < 0)
        goto fail_pool;
    err = weft__task_table_init(&rt->tasks, rt->cfg.huge_pages);
    if (err < 0)
        goto fail_table;
    weft__inject_init(&rt->inject);
    pthread_mutex_init(&rt->idle_lock, NULL);
    atomic_init(&rt->next_id, 1);
    rt->gil_on = rt->cfg.mode == WEFT_GIL;
    rt->account = rt->gil_on || rt->cfg.stats;
    rt->tasks.cold_all = rt->account; /* before the first task */
    rt->trace_on = rt->cfg.trace_path != NULL;
    rt->trace_file = NULL;
    if (rt->trace_on && (err = weft__trace_open(rt)) < 0)
        goto fail_trace;
    if (rt->gil_on && (err = weft__gil_init(&rt->gil, rt->cfg.switch_interval_us)) < 0)
        goto fail_gil;
    if ((err = weft__poller_init(&rt->poller)) < 0) {
        weft__say("could not open the poller's epoll set: %s", weft_strerror(err));
        goto fail_poller;
    }
    err = weft__blocking_init(&rt->blocking, rt->cfg.blocking_threads, rt->topo.ncores_allowed);
    if (err < 0)
        goto fail_blocking;
    rt->nworkers = rt->topo.nworkers;
    /* Registered once per process; a kernel or a sandbox without it keeps
     * the commit's fence. */
    rt->solo_commit = rt->nworkers == 1 &&
                      syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    rt->workers = weft__aligned_zalloc(rt->nworkers * sizeof rt->workers[0]);
    if (!rt->workers) {
        err = -ENOMEM;
        goto fail_workers;
    }
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__worker_init(&rt->workers[i], rt, i);
    weft__stack_signals_install();
    weft__rt = rt;
    for (unsigned i = first; i < rt->nworkers; i++) {
        struct weft__worker *w = &rt->workers[i];
        err = -pthread_create(&w->thread, NULL, worker_thread, w);
        if (err < 0) {
            weft__say("could not start worker thread %u of %u: %s", i, rt->nworkers,
                      weft_strerror(err));
            atomic_store(&rt->done, true);
            weft__worker_wake_all(rt);
            stop_threads(rt);
            weft__rt = NULL;
            teardown(rt);
            return err;
        }
        w->thread_started = true;
    }
    return 0;
fail_workers:
    weft__blocking_term(&rt->blocking);
fail_blocking:
    weft__poller_term(&rt->poller);
fail_poller:
    if (rt->gil_on)
        weft__gil_term(&rt->gil);
fail_gil:
    if (rt->trace_file)
        fclose(rt->trace_file);
fail_trace:
    pthread_mutex_destroy(&rt->idle_lock);
    weft__inject_term(&rt->inject);
    weft__task_table_term(&rt->tasks);
fail_table:
    weft__stack_pool_term(&rt->stacks);
fail_pool:
    weft__topo_term(&rt->topo);
    return err;
}

/* Stops the workers and frees rt, keeping its final counters. */
static void finish(struct weft__runtime *rt)
{
    stop_threads(rt);
    /* libcurl's idle connections are closed while the poller still knows
     * their descriptors. */
    if (rt->curl_term)
        rt->curl_term(rt);
    /* Calls whose callers gave up may still run: wait for them (and their
     * drops), so that the counters are final and no pool thread is left. */
    weft__blocking_stop(&rt->blocking);
    weft__trace_close(rt);
    weft__stats_collect(rt, &last);
    times_collect(rt, &last_times);
    if (rt->cfg.stats) {
        weft__stats_print(rt, &last);
        if (rt->account)
            times_print(&last_times);
    }
    weft__rt = NULL;
    teardown(rt);
    /* What teardown left behind: a clean stop unmapped every slab. */
    last.stack_slabs = rt->stacks.nslabs;
    last.stack_mappings = rt->stacks.mappings;
    last.stack_bytes_mapped = rt->stacks.bytes;
    have_last = true;
}

int weft_run(const struct weft_config *cfg, weft_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return -EINVAL;
    if (atomic_exchange(&running, true))
        return -EBUSY;
    struct weft__runtime *rt = weft__aligned_zalloc(sizeof *rt);
    int err = rt ? start(rt, cfg, 1) : -ENOMEM;
    if (err < 0)
        goto out;
    struct weft__worker *w0 = &rt->workers[0];
    err = weft__worker_attach(w0);
    if (err == 0) {
        struct weft_task_opts opts = {.name = "main"};
        err = weft__task_new(w0, &rt->main_task, main_fn, arg, &opts);
        if (err == 0) {
            atomic_store(&rt->main_task->join, WEFT_J_DETACHED);
            weft__worker_ready(w0, rt->main_task);
            err = weft__worker_loop(w0);
        }
        weft__worker_detach(w0);
    }
    if (err < 0 && !atomic_load(&rt->done)) {
        atomic_store(&rt->done, true);
        weft__worker_wake_all(rt);
    }
    void *main_result = rt->main_result;
    finish(rt);
    if (err == 0 && result)
        *result = main_result;
out:
    weft__aligned_free(rt, sizeof *rt);
    atomic_store(&running, false);
    return err;
}

static struct weft__runtime *started;

int weft_runtime_start(const struct weft_config *cfg)
{
    if (atomic_exchange(&running, true))
        return -EBUSY;
    struct weft__runtime *rt = weft__aligned_zalloc(sizeof *rt);
    if (!rt) {
        atomic_store(&running, false);
        return -ENOMEM;
    }
    rt->embedded = true;
    int err = start(rt, cfg, 0);
    if (err < 0) {
        weft__aligned_free(rt, sizeof *rt);
        atomic_store(&running, false);
        return err;
    }
    started = rt;
    return 0;
}

int weft_runtime_stop(void)
{
    struct weft__runtime *rt = started;
    if (!rt)
        return -ESRCH;
    if (weft__worker_self())
        return -EPERM;
    atomic_store(&rt->stopping, true);
    weft__worker_wake_all(rt);
    stop_threads(rt);
    int err = rt->exit_err;
    started = NULL;
    finish(rt);
    weft__aligned_free(rt, sizeof *rt);
    atomic_store(&running, false);
    return err;
}
