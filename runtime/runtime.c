/*
 * weft_run: resolving the configuration, bringing the runtime up on the
 * calling thread, running the main task and everything it leaves running,
 * and taking it all down again; and the counters (weft_stats_get,
 * WEFT_STATS).
 *
 * One runtime at a time per process (`running` is taken with an atomic
 * exchange); nothing global survives a run but the last run's counters, so
 * runs can follow one another. weft_run returns when the main task and every
 * task it left running have finished: nothing is abandoned mid-flight (with
 * cancellation, TODO(#5), leftovers will be cancelled first, as
 * asyncio.run does).
 *
 * The calling thread is worker 0 for the duration. Its alternate signal
 * stack and the process's SIGSEGV/SIGBUS handlers are replaced while the
 * runtime runs and restored afterwards.
 */
#include "runtime.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "worker.h"

static atomic_bool running;
static struct weft_stats last;
static bool have_last;

void weft__stats_collect(const struct weft__runtime *rt, struct weft_stats *s)
{
    memset(s, 0, sizeof *s);
    s->workers = rt->nworkers;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const struct weft__worker *w = &rt->workers[i];
        s->tasks_spawned += w->n.spawned;
        s->tasks_finished += w->n.finished;
        s->tasks_unreleased += w->n.unreleased;
        s->tasks_peak += w->n.live_peak;
        s->switches += w->n.switches;
        s->stacks_in_use += w->stacks.in_use;
        s->stacks_cached += weft__stack_cached(&w->stacks);
        s->stacks_peak += w->stacks.peak;
        s->timers_pending += w->timers.len;
        s->timers_fired += w->timers.fired;
    }
    s->tasks_live = s->tasks_spawned - s->tasks_finished;
    s->stack_slabs = rt->stacks.nslabs;
    s->stack_mappings = rt->stacks.mappings;
    s->stack_bytes_mapped = rt->stacks.bytes;
}

void weft__stats_print(const struct weft__runtime *rt, const struct weft_stats *s)
{
    fprintf(stderr, "weft: stats: %u worker%s (one per runtime in this build), allocator %s, "
                    "stack guard %s\n",
            s->workers, s->workers == 1 ? "" : "s", weft__alloc_name(),
            rt->stacks.mode == WEFT_GUARD_MARKER ? "marker" : "mprotect");
    weft__config_print(&rt->cfg, stderr);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const struct weft__worker *w = &rt->workers[i];
        fprintf(stderr, "weft: worker %u: tasks %llu, switches %llu, timers fired %llu\n", i,
                (unsigned long long)w->n.spawned, (unsigned long long)w->n.switches,
                (unsigned long long)w->timers.fired);
    }
    fprintf(stderr, "weft: tasks: %llu spawned, %llu at most alive at once, %llu left unjoined\n",
            (unsigned long long)s->tasks_spawned, (unsigned long long)s->tasks_peak,
            (unsigned long long)s->tasks_unreleased);
    fprintf(stderr, "weft: stacks: %llu at most in use, %llu slabs, %llu mappings, %llu MiB of "
                    "address space\n",
            (unsigned long long)s->stacks_peak, (unsigned long long)s->stack_slabs,
            (unsigned long long)s->stack_mappings,
            (unsigned long long)(s->stack_bytes_mapped >> 20));
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

static int start(struct weft__runtime *rt, const struct weft_config *cfg)
{
    int err = weft__config_resolve(cfg, &rt->cfg);
    if (err < 0)
        return err;
    rt->cfg.stack_size = weft__stack_round(rt->cfg.stack_size);
    err = weft__stack_pool_init(&rt->stacks, rt->cfg.guard);
    if (err < 0)
        return err;
    err = weft__task_table_init(&rt->tasks);
    if (err < 0)
        goto fail_table;
    rt->nworkers = 1;
    rt->workers = weft__zalloc(rt->nworkers * sizeof rt->workers[0]);
    if (!rt->workers) {
        err = -ENOMEM;
        goto fail_workers;
    }
    err = weft__worker_init(&rt->workers[0], rt, 0);
    if (err < 0)
        goto fail_worker;
    weft__stack_signals_install();
    return 0;
fail_worker:
    weft__free(rt->workers, rt->nworkers * sizeof rt->workers[0]);
fail_workers:
    weft__task_table_term(&rt->tasks);
fail_table:
    weft__stack_pool_term(&rt->stacks);
    return err;
}

static void stop(struct weft__runtime *rt)
{
    weft__stack_signals_restore();
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__worker_term(&rt->workers[i]);
    weft__free(rt->workers, rt->nworkers * sizeof rt->workers[0]);
    weft__task_table_term(&rt->tasks);
    weft__stack_pool_term(&rt->stacks);
}

static int run_main(struct weft__runtime *rt, weft_fn fn, void *arg)
{
    struct weft__worker *w = &rt->workers[0];
    struct weft_task_opts opts = {.name = "main"};
    int err = weft__task_new(w, &rt->main_task, fn, arg, &opts);
    if (err < 0)
        return err;
    rt->main_task->detached = 1;
    weft__worker_ready(w, rt->main_task);
    return weft__worker_loop(w);
}

int weft_run(const struct weft_config *cfg, weft_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return -EINVAL;
    if (atomic_exchange(&running, true))
        return -EBUSY;
    struct weft__runtime *rt = weft__zalloc(sizeof *rt);
    int err = rt ? start(rt, cfg) : -ENOMEM;
    if (err < 0)
        goto out;
    weft__rt = rt;
    err = run_main(rt, main_fn, arg);
    weft__stats_collect(rt, &last);
    if (rt->cfg.stats)
        weft__stats_print(rt, &last);
    stop(rt);
    /* What teardown left behind: a clean stop unmapped every slab. */
    last.stack_slabs = rt->stacks.nslabs;
    last.stack_mappings = rt->stacks.mappings;
    last.stack_bytes_mapped = rt->stacks.bytes;
    have_last = true;
    weft__rt = NULL;
    if (err == 0 && result)
        *result = rt->main_result;
out:
    weft__free(rt, sizeof *rt);
    atomic_store(&running, false);
    return err;
}
