/*
 * weft: a work-stealing coroutine runtime for C11.
 *
 * Conventions, for every function below:
 *  - A call that can fail returns int: 0 (or a count) on success, a negative
 *    errno value on failure. errno itself is never the channel: a task may
 *    resume on another thread, where errno is another variable.
 *  - A call that "may suspend" is legal only inside a task; outside one it
 *    returns -EPERM.
 *  - Time is in nanoseconds of the monotonic clock (weft_now()).
 */
#ifndef WEFT_H
#define WEFT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* ======================================================================
 * Version
 * ====================================================================== */

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH". Never suspends. Any
 * thread. */
WEFT_API const char *weft_version(void);

/* ======================================================================
 * Errors
 * ====================================================================== */

/* A short English description of a weft return code (negative errno), e.g.
 * "the handle no longer names a task". Unknown codes get strerror's text.
 * Any thread.
 * Never suspends. */
WEFT_API const char *weft_strerror(int err);

/* The symbolic name of a return code: "ECANCELED", "ESRCH", ... ("0" for
 * success, "E?" for a code weft does not use). Any thread.
 * Never suspends. */
WEFT_API const char *weft_err_name(int err);

/* ======================================================================
 * Time
 * ====================================================================== */

#define WEFT_USEC ((uint64_t)1000)
#define WEFT_MSEC ((uint64_t)1000000)
#define WEFT_SEC ((uint64_t)1000000000)

/* Nanoseconds of CLOCK_MONOTONIC. Any thread; never suspends. */
WEFT_API uint64_t weft_now(void);

/* Deadlines are absolute times of weft_now(); this one never comes. */
#define WEFT_NEVER UINT64_MAX

/* ======================================================================
 * Configuration and run
 * ====================================================================== */

enum weft_mode {
    WEFT_PARALLEL = 0, /* every worker runs tasks at once */
    WEFT_GIL = 1,      /* one task at a time, CPython's GIL: see docs/config.md */
};

/* How a task's stack is protected against overflow. */
enum weft_guard {
    WEFT_GUARD_AUTO = 0,     /* guard markers where the kernel has them, else mprotect */
    WEFT_GUARD_MARKER = 1,   /* madvise(MADV_GUARD_INSTALL), Linux >= 6.13: no extra mapping */
    WEFT_GUARD_MPROTECT = 2, /* a PROT_NONE page below each stack: two mappings per stack */
};

/* Plain data: fill it with weft_config_default(), then change fields.
 * weft_run() applies the WEFT_* environment variables on top of it, so
 * every program can be re-tuned without recompiling (see docs/config.md). */
/* Scheduler research knobs (docs/config.md). */
enum weft_steal { WEFT_STEAL_HALF = 0, WEFT_STEAL_ONE = 1 };
enum weft_victim { WEFT_VICTIM_RANDOM = 0, WEFT_VICTIM_ROUND_ROBIN = 1, WEFT_VICTIM_TOPOLOGY = 2 };

struct weft_config {
    unsigned workers;            /* WEFT_WORKERS: 0 = one per core */
    enum weft_mode mode;         /* WEFT_MODE: parallel | gil */
    unsigned switch_interval_us; /* WEFT_SWITCH_INTERVAL_US (GIL mode) */
    size_t stack_size;           /* WEFT_STACK_SIZE: bytes of a task's stack */
    enum weft_guard guard;       /* WEFT_GUARD: auto | marker | mprotect */
    int pin;                     /* WEFT_PIN: 1 = bind workers to cores */
    int stats;                   /* WEFT_STATS: 1 = print counters at exit */
    const char *trace_path;      /* WEFT_TRACE: trace-event file written at the end of the run */
    enum weft_steal steal;       /* WEFT_STEAL: half | one */
    enum weft_victim victim;     /* WEFT_VICTIM: random | roundrobin | topology */
    int lifo;                    /* WEFT_LIFO: 1 = a worker runs its newest task first */
    size_t inline_min;           /* WEFT_INLINE: stack bytes a joiner must have left to run
                                    an unstarted child inline; 0 = never */
    unsigned blocking_threads;   /* WEFT_BLOCKING_THREADS: most threads of the blocking-call
                                    pool (weft_blocking); 0 = min(32, cores + 4) */
    int next_slot;               /* WEFT_NEXT_SLOT: 1 = a task woken by the running task waits
                                    in its worker's next slot, no idle worker woken for it */
    int huge_pages;              /* WEFT_HUGE_PAGES: 1 = task slots in transparent huge pages
                                    where the kernel gives them */
    uint64_t reserved[3];        /* zero; room to grow */
};

/* Fills *cfg with the defaults: workers 0, parallel, 5000 us, 64 KiB
 * stacks, automatic guard, no pinning, no stats, no trace, steal half from
 * a random victim, LIFO on, the next slot on, inline with 32 KiB of
 * headroom, huge pages for task slots. Any thread.
 * Never suspends. */
WEFT_API void weft_config_default(struct weft_config *cfg);

/* A task's body: takes the spawner's argument, returns the task's result. */
typedef void *(*weft_fn)(void *arg);

/* asyncio.run(): starts the runtime on the calling thread, runs
 * main_fn(arg) as the first task, and returns once main_fn and every task
 * still running have finished (and every blocking-pool call a task gave up
 * on, with its drop); *result (if non-NULL) gets main_fn's return value. cfg may be NULL for the defaults; WEFT_* variables override it.
 * Blocks the calling thread.
 *   -EINVAL   a configuration value is bad: one line on stderr names the
 *             variable (or field) and the value.
 *   -ENOTSUP  a configuration value asks for something this build lacks.
 *   -EBUSY    a runtime is already running in this process.
 *   -EDEADLK  every task is blocked and nothing can wake one; each blocked
 *             task and what it waits for is printed on stderr. Waits that a
 *             thread outside the runtime may end (futures, conditions,
 *             semaphores, events, blocking-pool calls) never count as
 *             deadlocked: such a run sleeps until that thread acts. Waits
 *             on joins, channels, mutexes and groups do. Those tasks
 *             never return: the objects they waited on (channels, futures,
 *             groups, locks) still list them and must not be used or freed
 *             afterwards; drop them.
 *   -ENOMEM   the runtime could not allocate its own structures. */
WEFT_API int weft_run(const struct weft_config *cfg, weft_fn main_fn, void *arg, void **result);

/* Starts a runtime on worker threads of its own and returns; tasks are
 * then spawned into it with weft_spawn() from any thread (for instance the
 * caller) and joined with weft_join(), which blocks a thread that is not a
 * worker. cfg and errors as weft_run() (-EBUSY if one is running). */
WEFT_API int weft_runtime_start(const struct weft_config *cfg);

/* Waits until every task of the runtime started by weft_runtime_start()
 * has finished, stops its workers and frees it; another runtime may then
 * start. Blocks the calling thread, which must not be a worker.
 *   -ESRCH    no runtime was started with weft_runtime_start().
 *   -EPERM    called from a task.
 *   -EDEADLK  tasks were left that can never finish (they are listed on
 *             stderr); the runtime is stopped all the same. */
WEFT_API int weft_runtime_stop(void);

/* ======================================================================
 * Tasks
 * ====================================================================== */

/* A handle naming one task. Opaque: it is not a pointer to memory. A handle
 * stays valid until weft_join() returns the task's result or weft_detach()
 * releases it; after that every call taking it returns -ESRCH. */
typedef struct weft_task weft_task;

/* Per-spawn options for weft_spawn_opts(); zero fields take the defaults. */
struct weft_task_opts {
    const char *name;    /* up to 31 bytes are kept; shown in reports */
    size_t stack_size;   /* 0 = the runtime's stack_size */
    uint32_t flags;      /* WEFT_TASK_* below, or 0 */
    uint32_t reserved32; /* zero */
    uint64_t reserved[3]; /* zero */
};

/* flags: the task runs on its worker's shared stack, and while it is
 * suspended its stack holds only the bytes it used, copied out to the
 * heap (a few hundred bytes for a task waiting in weft_sleep, against at
 * least one 4 KiB page of a stack of its own). For many tasks that mostly
 * wait. The costs and the rules:
 *   - A switch that changes which task is on the shared stack copies the
 *     leaving task's used bytes out and the arriving task's in
 *     (docs/design/stacks.md has the measured cost); a switch to another
 *     kind of task, or back to the task already on it, copies nothing.
 *   - Memory on the task's stack is not there while it is suspended: no
 *     other task (nor a generator it resumes from another task) may use a
 *     pointer into the stack of a suspended WEFT_TASK_SHARED_STACK task.
 *     Pass heap memory, or the task's own memory after it resumes. That
 *     includes what libcurl's callbacks write to (CURLOPT_WRITEDATA, ...)
 *     during a weft_curl_perform, which run in other tasks, and what a
 *     weft_blocking function reads or writes (its arg itself, if on the
 *     task's stack, is refused with -EINVAL).
 *   - After its first run the task stays on that worker: it is not
 *     stolen, and is woken there. It runs no child inline, and is never
 *     run inline by a joiner.
 *   - Its stack is the runtime's stack_size: opts->stack_size must be 0. */
#define WEFT_TASK_SHARED_STACK 1u

/* asyncio.create_task(): creates a task that will run fn(arg) concurrently
 * and stores its handle in *out. The task is not started before the caller
 * next suspends. Does not suspend. Task context (any task of the runtime).
 *   -EPERM   called outside a task.
 *   -EINVAL  out or fn is NULL.
 *   -ENOMEM  no memory for the task, or the stack budget of the mprotect
 *            guard mode is spent (see docs/design/stacks.md). */
WEFT_API int weft_spawn(weft_task **out, weft_fn fn, void *arg);

/* weft_spawn() with a name, a stack size and flags. Does not suspend. Task
 * context, or a thread that is not a worker. Errors as weft_spawn(), and
 *   -EINVAL  opts->stack_size is non-zero and outside [16 KiB, 1 GiB]; a
 *            flag that is not WEFT_TASK_*, or a reserved field that is not
 *            zero; WEFT_TASK_SHARED_STACK with a stack_size. */
WEFT_API int weft_spawn_opts(weft_task **out, weft_fn fn, void *arg,
                             const struct weft_task_opts *opts);

/* await task: waits until the task has finished, stores its result in
 * *result (if non-NULL) and releases the handle. May suspend. Task context,
 * or a thread that is not a worker (it blocks; see weft_runtime_start).
 *   -EPERM      called outside a task and outside a running runtime.
 *   -EINVAL     t is NULL or not a task handle, or the task was detached.
 *   -ESRCH      t no longer names a task: it was joined already, or it was
 *               detached and has finished.
 *   -EDEADLK    t is the calling task, or t is (through its own joins)
 *               waiting for the calling task.
 *   -EBUSY      another task is already joining t.
 *   -ECANCELED  the calling task was cancelled while it waited (or before).
 *               The handle stays valid: t runs on, and may be joined again.
 *   -ENOMEM     (weft_join_until) the worker's timer heap could not grow. */
WEFT_API int weft_join(weft_task *t, void **result);

/* weft_join() bounded by an absolute deadline (weft_now() + timeout, or
 * WEFT_NEVER). Errors as weft_join(), and
 * May suspend.
 *   -ETIMEDOUT  the deadline passed first; the handle stays valid and t runs
 *               on (weft_wait_for() cancels it instead).
 *   -EPERM      a deadline other than WEFT_NEVER, from a thread that is not
 *               a worker. */
WEFT_API int weft_join_until(weft_task *t, uint64_t deadline, void **result);

/* task.cancel(): asks t to stop. The wait t is suspended in, or else the
 * next call of t that would suspend (or weft_checkpoint()), returns
 * -ECANCELED, once: the request is then used up, as asyncio delivers one
 * CancelledError. Calls that complete without suspending are unaffected,
 * and so is code that never suspends. A task that is cancelled before it
 * starts still runs, and its first suspension returns -ECANCELED. t must
 * not be joined or detached concurrently with this call. Does not suspend.
 * Any thread of a running runtime.
 *   -EPERM     no runtime is running.
 *   -EINVAL    t is NULL or not a task handle.
 *   -ESRCH     t no longer names a task.
 *   -EALREADY  t has finished already (nothing to cancel). */
WEFT_API int weft_cancel(weft_task *t);

/* A safe point for long computations that do not suspend: returns
 * -ECANCELED (using the request up) if the calling task has been
 * cancelled, else 0. (In GIL mode it will also hand the token over when
 * another task asked for it.) Task context.
 *   -EPERM  called outside a task. */
WEFT_API int weft_checkpoint(void);

/* Releases the handle without waiting: the task runs on and its memory is
 * reclaimed when it finishes; its result is dropped. Does not suspend. Task
 * context.
 *   -EPERM    called outside a task.
 *   -EINVAL   t is NULL or not a task handle, or t is detached already.
 *   -ESRCH    t no longer names a task.
 *   -EBUSY    a task is joining t. */
WEFT_API int weft_detach(weft_task *t);

/* asyncio.sleep(0): lets every other ready task run once, then continues.
 * Returns 0 at once when no other task is ready. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -ECANCELED  the calling task has been cancelled (it does not yield). */
WEFT_API int weft_yield(void);

/* asyncio.sleep(): suspends the calling task for at least ns nanoseconds
 * (0 behaves as weft_yield()). May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -ECANCELED  the calling task was cancelled before or while it slept.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_sleep(uint64_t ns);

/* weft_sleep() until an absolute deadline of weft_now(); a deadline that has
 * passed behaves as weft_yield(). Errors as weft_sleep().
 * May suspend. Task context. */
WEFT_API int weft_sleep_until(uint64_t deadline);

/* The calling task's handle, or NULL outside a task. Any thread.
 * Never suspends. */
WEFT_API weft_task *weft_self(void);

/* The task's id: a number unique within one weft_run (the main task is 1),
 * as printed in reports; 0 if t does not name a live or unjoined task.
 * Task context.
 * Never suspends. */
WEFT_API uint64_t weft_task_id(weft_task *t);

/* ======================================================================
 * Task results that carry an error
 * ====================================================================== */

/* A task fails by returning WEFT_ERR(code) from its function, code being a
 * negative errno value (as Linux's ERR_PTR): weft_gather() reports it per
 * task, and a failing member cancels its task group. weft_err_of(result)
 * gives the code back, or 0 for any other result. */
#define WEFT_ERR(code) ((void *)(intptr_t)(code))

static inline int weft_err_of(const void *result)
{
    intptr_t v = (intptr_t)result;
    return v < 0 && v >= -4095 ? (int)v : 0;
}

/* ======================================================================
 * Futures, gather, wait_for
 * ====================================================================== */

/* asyncio.Future: a value that is settled once, by anyone, and awaited by
 * any number of tasks. */
typedef struct weft_future weft_future;

/* Creates a pending future. Does not suspend. Any thread.
 *   -EINVAL  out is NULL.
 *   -ENOMEM  no memory. */
WEFT_API int weft_future_new(weft_future **out);

/* Frees f, settled or not. Any thread.
 * Does not suspend.
 *   -EINVAL  f is NULL.
 *   -EBUSY   tasks are waiting on f (nothing is freed). */
WEFT_API int weft_future_free(weft_future *f);

/* fut.set_result(): settles f with value and wakes every waiter. Does not
 * suspend. Any thread (from a thread that is not a worker, the waiters are
 * woken through the runtime's injection queue).
 *   -EINVAL    f is NULL.
 *   -EALREADY  f was settled already; its value is unchanged. */
WEFT_API int weft_future_resolve(weft_future *f, void *value);

/* fut.set_exception(): settles f with the error err (a negative errno
 * value), which every awaiter gets as its return value. Errors as
 * weft_future_resolve(), and -EINVAL when err is not negative.
 * Does not suspend. Any thread. */
WEFT_API int weft_future_reject(weft_future *f, int err);

/* fut.done(): 1 if f is settled, 0 if pending. Any thread.
 * Does not suspend.
 *   -EINVAL  f is NULL. */
WEFT_API int weft_future_done(weft_future *f);

/* await fut: waits until f is settled or the absolute deadline passes
 * (WEFT_NEVER: no deadline). Returns 0 with the value in *value (if value
 * is not NULL), or the rejection's error. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     f is NULL.
 *   -ETIMEDOUT  the deadline passed first.
 *   -ECANCELED  the calling task was cancelled.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_future_await(weft_future *f, uint64_t deadline, void **value);

/* asyncio.gather(*tasks, return_exceptions=True): joins the n tasks in
 * order, storing each one's outcome: errors[i] is 0 and results[i] (if
 * results is not NULL) its result, or errors[i] is the join's error or the
 * task's own WEFT_ERR code and results[i] NULL. Every handle is released.
 * Returns how many tasks failed (0: all succeeded). If the calling task is
 * cancelled while it gathers, every task not yet joined is cancelled and
 * still joined (so none is left behind), and -ECANCELED is returned with
 * every outcome filled in. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     n > 0 and tasks or errors is NULL (nothing joined).
 *   -ECANCELED  the calling task was cancelled (see above). */
WEFT_API int weft_gather(weft_task **tasks, size_t n, void **results, int *errors);

/* weft_gather() bounded by an absolute deadline: once it passes, every
 * task not yet joined is cancelled and still joined (so none is left
 * behind), every outcome is filled in, and -ETIMEDOUT is returned.
 * Otherwise as weft_gather(). May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed (see above).
 *   -ENOMEM     the worker's timer heap could not grow.
 *   other       as weft_gather(). */
WEFT_API int weft_gather_until(weft_task **tasks, size_t n, uint64_t deadline, void **results,
                               int *errors);

/* asyncio.wait_for(task, timeout): joins t, waiting at most timeout_ns.
 * On time: as weft_join(). Too late: t is cancelled, then joined (waiting
 * for it to finish, its result dropped), and -ETIMEDOUT is returned; the
 * handle is released either way. If the calling task is cancelled while it
 * waits, t is cancelled and joined likewise and -ECANCELED is returned. May
 * suspend. Task context.
 *   -ETIMEDOUT  timeout_ns passed; t was cancelled and reaped.
 *   -ECANCELED  the caller was cancelled; t was cancelled and reaped.
 *   other       as weft_join(). */
WEFT_API int weft_wait_for(weft_task *t, uint64_t timeout_ns, void **result);

/* ======================================================================
 * Task groups
 * ====================================================================== */

/* asyncio.TaskGroup: structured concurrency. */
typedef struct weft_group weft_group;

/* Creates an empty group. Created inside a generator's body, the group
 * keeps that body from yielding (weft_gen_yield returns -EPERM) until it
 * has been waited for or freed: after a yield the group would cancel and
 * wait on behalf of whichever task resumes the generator next (PEP 789);
 * a body that returns with such a group still open is a bug, and weft
 * aborts with a message naming the generator.
 * Any thread.
 * Does not suspend.
 *   -EINVAL  out is NULL.
 *   -ENOMEM  no memory. */
WEFT_API int weft_group_new(weft_group **out);

/* Spawns fn(arg) as a member of g. If a member has failed already, the new
 * one starts cancelled. Does not suspend. Task context.
 *   -EPERM   called outside a task.
 *   -EINVAL  g or fn is NULL.
 *   -ENOMEM  as weft_spawn(). */
WEFT_API int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);

/* async with TaskGroup: waits until every member has finished (members may
 * spawn more members meanwhile). The first member to fail (returning
 * WEFT_ERR(code)) cancels all the others, and wait returns its code; 0
 * when none failed. If the calling task is cancelled, every member is
 * cancelled, wait still waits for them all, and returns -ECANCELED. May
 * suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     g is NULL.
 *   -EBUSY      another task is waiting on g.
 *   -ECANCELED  the calling task was cancelled (after all members ended). */
WEFT_API int weft_group_wait(weft_group *g);

/* weft_group_wait() bounded by an absolute deadline. When it passes first,
 * -ETIMEDOUT is returned and the members run on: the group stays open, to
 * be waited for again (or its members cancelled by cancelling the waiter).
 * Once the waiter has been cancelled, it waits for the cancelled members
 * to the end regardless of the deadline. May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed; the members run on.
 *   -ENOMEM     the worker's timer heap could not grow.
 *   other       as weft_group_wait(). */
WEFT_API int weft_group_wait_until(weft_group *g, uint64_t deadline);

/* Frees an empty group. Any thread.
 * Does not suspend.
 *   -EINVAL  g is NULL.
 *   -EBUSY   members are still running, or a task waits on g (nothing is
 *            freed: wait first). */
WEFT_API int weft_group_free(weft_group *g);

/* ======================================================================
 * Generators
 * ====================================================================== */

/* Python's generators, stackful: the body is an ordinary C function that
 * runs on a stack of its own and may call weft_gen_yield() at any depth.
 * It runs in the task that resumes it (weft_self() in the body is that
 * task), so it may sleep, join and yield the task like any task code; the
 * task may then move to another worker inside the body. One task at a time
 * may be resuming a generator; any task may resume it, one after another.
 *
 * Codes shared by the calls below:
 *   WEFT_GEN_DONE  (positive) the body returned: *out is its return value
 *                  (Python's StopIteration(value)).
 *   -EPIPE         the generator has finished (returned or was closed);
 *                  or, from weft_gen_yield(), it is being closed.
 *   -EDEADLK       the calling task is already inside this generator's
 *                  body (the body, or a generator it resumes, resumes it:
 *                  Python's "generator already executing").
 *   -EBUSY         another task is resuming it right now.
 *   -EPERM         called outside a task.
 * The body may suspend the calling task (a sleep or a join in it), so
 * every call that runs the body may suspend. */

/* A generator: opaque; created by weft_gen_new(), freed by weft_gen_free(). */
typedef struct weft_gen weft_gen;

/* A generator's body: `self` is the generator (for weft_gen_yield() and
 * friends), `arg` what weft_gen_new() was given. Its return value is
 * handed to the resumer with WEFT_GEN_DONE. */
typedef void *(*weft_gen_fn)(weft_gen *self, void *arg);

/* Returned (positive) by weft_gen_next() and weft_gen_send() when the body
 * has returned. */
#define WEFT_GEN_DONE 1

/* Per-generator options for weft_gen_new_opts(); zero fields take the
 * defaults. */
struct weft_gen_opts {
    const char *name;     /* up to 31 bytes are kept; shown in reports */
    size_t stack_size;    /* 0 = the runtime's stack_size */
    uint64_t reserved[4]; /* zero */
};

/* Creates a generator that will run fn(self, arg) at its first resume and
 * stores it in *out. Nothing runs and no stack is taken before that first
 * resume. Does not suspend. Task context.
 *   -EPERM   called outside a task.
 *   -EINVAL  out or fn is NULL.
 *   -ENOMEM  no memory for the generator. */
WEFT_API int weft_gen_new(weft_gen **out, weft_gen_fn fn, void *arg);

/* weft_gen_new() with a name and a stack size. Errors as weft_gen_new(),
 * and
 * Does not suspend. Task context.
 *   -EINVAL  opts->stack_size is non-zero and outside [16 KiB, 1 GiB]. */
WEFT_API int weft_gen_new_opts(weft_gen **out, weft_gen_fn fn, void *arg,
                               const struct weft_gen_opts *opts);

/* next(g): runs the body until its next weft_gen_yield() (returns 0, *out
 * the yielded value) or its end (returns WEFT_GEN_DONE, *out the return
 * value). The first resume takes the generator's stack (from the calling
 * worker's cache); the end of the body gives it back. out may be NULL; on
 * an error *out is NULL. May suspend (the body may). Task context.
 *   -EPERM    called outside a task.
 *   -EINVAL   g is NULL.
 *   -EPIPE    g has finished: it returned or was closed.
 *   -EDEADLK  the calling task is inside g's body.
 *   -EBUSY    another task is resuming g.
 *   -ENOMEM   first resume: no stack could be had. */
WEFT_API int weft_gen_next(weft_gen *g, void **out);

/* g.send(value): as weft_gen_next(), but the suspended weft_gen_yield()
 * returns `value` in its *sent. weft_gen_send(g, NULL, out) is
 * weft_gen_next(g, out). Task context. Errors as weft_gen_next(), and:
 *   -EINVAL   value is not NULL and g has not started (it has no yield to
 *             receive it: Python's TypeError). */
WEFT_API int weft_gen_send(weft_gen *g, void *value, void **out);

/* yield value, in g's body: hands value to the resumer and suspends the
 * body until the next resume (the task goes on, in the resumer's call).
 * Returns 0 with *sent (if non-NULL) the value of weft_gen_send(), or NULL
 * after weft_gen_next(). Body of g only.
 *   -EPERM   not called from g's own body by the task resuming it
 *            (outside a task, in another generator's body, or in a task
 *            that the body started or runs inline); or a task group
 *            opened in the body is still open (PEP 789: see
 *            weft_group_new).
 *   -EINVAL  g is NULL.
 *   -EPIPE   g is being closed (weft_gen_close(); weft_gen_closing(g) is
 *            true): the body should clean up and return. A yield made
 *            while closing does not suspend: it returns -EPIPE again, and
 *            weft_gen_close() will report -EPROTO. */
WEFT_API int weft_gen_yield(weft_gen *g, void *value, void **sent);

/* result = yield from inner (PEP 380), in g's body: runs inner to its end,
 * yielding each value it yields to g's resumer and forwarding each
 * weft_gen_next() / weft_gen_send() of g to inner, and a weft_gen_close()
 * of g to inner as a close. Returns 0 and inner's return value in *result
 * (if non-NULL). inner is not freed. May suspend. Body of g only.
 *   -EPERM    not called from g's own body, or a task group opened in
 *             the body is still open (as weft_gen_yield(); inner is not
 *             resumed).
 *   -EINVAL   g or inner is NULL.
 *   -EPIPE    g is being closed: inner was closed (and returned), and g's
 *             body should clean up and return; or inner had finished
 *             before the call.
 *   -EPROTO   g is being closed and inner yielded while it was closed.
 *   -EDEADLK  inner is g, or a generator whose body is running this one.
 *   -EBUSY    another task is resuming inner.
 *   -ENOMEM   inner could not get its stack. */
WEFT_API int weft_gen_yield_from(weft_gen *g, weft_gen *inner, void **result);

/* g.close(): a generator that has not started, or has finished, is marked
 * finished and 0 returned. A suspended one is resumed with its
 * weft_gen_yield() returning -EPIPE (and weft_gen_closing() true) so that
 * its cleanup runs; returns once the body has returned (its return value
 * is dropped) and its stack is given back. May suspend (the body may). Task
 * context.
 *   -EPERM    called outside a task.
 *   -EINVAL   g is NULL.
 *   -EPROTO   the body yielded again while being closed (Python's
 *             "generator ignored GeneratorExit"); that yield did not
 *             suspend, the body ran on to its end, and g has finished.
 *   -EDEADLK  the calling task is inside g's body.
 *   -EBUSY    another task is resuming g. */
WEFT_API int weft_gen_close(weft_gen *g);

/* Whether g is being (or has been) closed by weft_gen_close(): what the
 * body asks after a weft_gen_yield() returned -EPIPE. False for NULL. Any
 * thread; meaningful in g's body.
 * Never suspends. */
WEFT_API bool weft_gen_closing(const weft_gen *g);

/* Frees g. A generator suspended at a yield is closed first
 * (weft_gen_close(): its cleanup runs, and that may suspend), which needs
 * a task; one that has not started or has finished may be freed by any
 * thread. A stack it holds goes back to the pool. NULL is ignored. Freeing
 * a generator that some task is resuming, or freeing a suspended one from
 * outside a task, is a bug: weft prints it and aborts. */
WEFT_API void weft_gen_free(weft_gen *g);

/* ======================================================================
 * Channels
 * ====================================================================== */

/* A Go channel / asyncio.Queue of pointers. Capacity 0 is a rendezvous: a
 * send waits until a receiver takes the value. */
typedef struct weft_chan weft_chan;

/* Creates a channel that buffers up to capacity values. Any thread.
 * Does not suspend.
 *   -EINVAL  out is NULL, or capacity is over 2^30.
 *   -ENOMEM  no memory. */
WEFT_API int weft_chan_new(weft_chan **out, size_t capacity);

/* Frees c and any values still buffered (the values themselves are the
 * caller's). Any thread.
 * Does not suspend.
 *   -EINVAL  c is NULL.
 *   -EBUSY   tasks are blocked on c (nothing is freed). */
WEFT_API int weft_chan_free(weft_chan *c);

/* Sends value: hands it to a waiting receiver, or buffers it, or waits
 * until one of those is possible. Values arrive in the order they were
 * sent. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     c is NULL.
 *   -EPIPE      c is closed (or was closed while this send waited); the
 *               value was not sent.
 *   -ECANCELED  the calling task was cancelled; the value was not sent.
 *   -ETIMEDOUT  (weft_chan_send_until) the deadline passed; not sent.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_chan_send(weft_chan *c, void *value);
WEFT_API int weft_chan_send_until(weft_chan *c, void *value, uint64_t deadline);

/* Receives the oldest value into *value (if value is not NULL), waiting for
 * one if there is none. Values buffered before a close are still received.
 * May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     c is NULL.
 *   -EPIPE      c is closed and empty.
 *   -ECANCELED  the calling task was cancelled; nothing was received.
 *   -ETIMEDOUT  (weft_chan_recv_until) the deadline passed; nothing received.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_chan_recv(weft_chan *c, void **value);
WEFT_API int weft_chan_recv_until(weft_chan *c, void **value, uint64_t deadline);

/* Send and receive that never wait: -EAGAIN where they would. Any thread.
 * Neither suspends.
 *   -EINVAL  c is NULL.
 *   -EPIPE   closed (and, for a receive, empty). */
WEFT_API int weft_chan_try_send(weft_chan *c, void *value);
WEFT_API int weft_chan_try_recv(weft_chan *c, void **value);

/* Closes c: later sends fail with -EPIPE, every blocked sender and receiver
 * is woken with -EPIPE, buffered values stay receivable. Any thread.
 * Does not suspend.
 *   -EINVAL  c is NULL.
 *   -EPIPE   c was closed already. */
WEFT_API int weft_chan_close(weft_chan *c);

enum weft_chan_dir { WEFT_CHAN_SEND = 1, WEFT_CHAN_RECV = 2 };

/* One operation of weft_chan_select(). */
struct weft_chan_op {
    weft_chan *chan;
    enum weft_chan_dir dir;
    void *value; /* SEND: the value to send; RECV: the value received */
    int status;  /* the operation's outcome: 0, or -EPIPE (closed) */
};

/* Go's select: waits until one of the n operations (at most 64) can be
 * done, does exactly that one, and returns its index, with ops[i].status
 * and, for a receive, ops[i].value set. When several are ready at once the
 * first in ops[] is chosen. A closed channel makes its operation ready
 * (status -EPIPE). May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     ops is NULL, n is 0 or over 64, or an op is malformed.
 *   -ETIMEDOUT  the deadline passed (WEFT_NEVER: none); nothing was done.
 *   -ECANCELED  the calling task was cancelled; nothing was done.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_chan_select(struct weft_chan_op *ops, size_t n, uint64_t deadline);

/* ======================================================================
 * Synchronisation: mutexes, conditions, semaphores, events
 * ====================================================================== */

/* asyncio.Lock, Condition, Semaphore and Event for tasks that run on any
 * worker. Each is FIFO: a unit that is freed (an unlock, a release) goes
 * straight to the longest waiting task that is still waiting, never to a
 * latecomer. A waiter that times out or is cancelled gets nothing: its
 * call returns -ETIMEDOUT or -ECANCELED and the unit goes to the next
 * waiter, so no unit, ownership or wake-up is ever lost, even when a
 * cancellation and a release race (the bug of asyncio's gh-90155).
 * Waiting calls take an absolute deadline of weft_now() (WEFT_NEVER: none)
 * in their _until form; a deadline that has passed fails only a call that
 * would have to wait. Waiting calls are task context (-EPERM elsewhere);
 * the calls marked "any thread" below may also be made by a thread that
 * is not a worker, its wake-ups going through the injection queue. */
typedef struct weft_mutex weft_mutex;
typedef struct weft_cond weft_cond;
typedef struct weft_sem weft_sem;
typedef struct weft_event weft_event;

/* Creates an unlocked mutex. Does not suspend. Any thread.
 *   -EINVAL  out is NULL.
 *   -ENOMEM  no memory. */
WEFT_API int weft_mutex_new(weft_mutex **out);

/* Frees an unlocked mutex nobody waits on. Any thread.
 * Does not suspend.
 *   -EINVAL  m is NULL.
 *   -EBUSY   m is locked, or a task is inside a lock call on m (nothing
 *            is freed). A mutex whose owner finished without unlocking it
 *            stays locked, and cannot be freed. */
WEFT_API int weft_mutex_free(weft_mutex *m);

/* async with lock: locks m for the calling task, waiting in FIFO order
 * while another task owns it. A mutex is owned by a task (not a thread):
 * only that task may unlock it, and it must do so before it finishes. Not
 * recursive. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     m is NULL.
 *   -EDEADLK    the calling task owns m already.
 *   -ECANCELED  the calling task was cancelled before or while it waited;
 *               it does not own m. */
WEFT_API int weft_mutex_lock(weft_mutex *m);

/* weft_mutex_lock() bounded by an absolute deadline. A free mutex is
 * locked even if the deadline has passed. Errors as weft_mutex_lock(), and
 * May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed first; the task does not own m.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_mutex_lock_until(weft_mutex *m, uint64_t deadline);

/* Locks m if it is free, without waiting. Does not suspend. Task context.
 *   -EPERM   called outside a task.
 *   -EINVAL  m is NULL.
 *   -EBUSY   m is locked (by any task, the caller included). */
WEFT_API int weft_mutex_trylock(weft_mutex *m);

/* Unlocks m: hands it to the first task still waiting for it, or leaves it
 * free. Does not suspend. Task context (the owning task).
 *   -EPERM   called outside a task, or the calling task does not own m.
 *   -EINVAL  m is NULL. */
WEFT_API int weft_mutex_unlock(weft_mutex *m);

/* Creates a condition variable. Any thread.
 * Does not suspend.
 *   -EINVAL  out is NULL.
 *   -ENOMEM  no memory. */
WEFT_API int weft_cond_new(weft_cond **out);

/* Frees c. Any thread.
 * Does not suspend.
 *   -EINVAL  c is NULL.
 *   -EBUSY   a task is inside a wait on c (nothing is freed). */
WEFT_API int weft_cond_free(weft_cond *c);

/* await cond.wait(): atomically unlocks m (which the calling task must
 * own) and waits until c is signalled; then locks m again before
 * returning, whatever the outcome: on 0, -ETIMEDOUT and -ECANCELED alike
 * the caller owns m (as with pthread_cond_timedwait). Taking m back waits
 * for its current owner and ignores cancellation: a cancellation that
 * arrives then stays pending for the task's next suspension. There are no
 * spurious wake-ups (0 means signalled), but another task may take m and
 * change the state first: test the predicate in a loop. May suspend. Task
 * context.
 *   -EPERM      called outside a task, or the caller does not own m.
 *   -EINVAL     c or m is NULL.
 *   -ECANCELED  the calling task was cancelled before or while it waited
 *               (before: m was never released). */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m);

/* weft_cond_wait() bounded by an absolute deadline (for the wait on c; m
 * is taken back however long that takes). Errors as weft_cond_wait(), and
 * May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed before a signal (m is owned again).
 *   -ENOMEM     the worker's timer heap could not grow (m is owned). */
WEFT_API int weft_cond_wait_until(weft_cond *c, weft_mutex *m, uint64_t deadline);

/* cond.notify(): wakes the task that has waited longest on c, if any (a
 * signal with nobody waiting is not remembered). Callers usually hold the
 * mutex, but need not. Does not suspend. Any thread.
 *   -EINVAL  c is NULL. */
WEFT_API int weft_cond_signal(weft_cond *c);

/* cond.notify_all(): wakes every task waiting on c. Does not suspend. Any
 * thread.
 *   -EINVAL  c is NULL. */
WEFT_API int weft_cond_broadcast(weft_cond *c);

/* Creates a counting semaphore holding `initial` units. Any thread.
 * Does not suspend.
 *   -EINVAL  out is NULL, or initial > INT_MAX.
 *   -ENOMEM  no memory. */
WEFT_API int weft_sem_new(weft_sem **out, unsigned initial);

/* Frees s, whatever units it holds. Any thread.
 * Does not suspend.
 *   -EINVAL  s is NULL.
 *   -EBUSY   a task is inside an acquire on s (nothing is freed). */
WEFT_API int weft_sem_free(weft_sem *s);

/* await sem.acquire(): takes one unit, waiting in FIFO order while there
 * is none. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     s is NULL.
 *   -ECANCELED  the calling task was cancelled before or while it waited;
 *               it took no unit (one released meanwhile went to the next
 *               waiter, or stayed in s). */
WEFT_API int weft_sem_acquire(weft_sem *s);

/* weft_sem_acquire() bounded by an absolute deadline. A unit that is
 * available is taken even if the deadline has passed. Errors as
 * weft_sem_acquire(), and
 * May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed first; no unit was taken.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_sem_acquire_until(weft_sem *s, uint64_t deadline);

/* Takes one unit if one is available, without waiting. Does not suspend.
 * Any thread.
 *   -EINVAL  s is NULL.
 *   -EAGAIN  no unit available. */
WEFT_API int weft_sem_try_acquire(weft_sem *s);

/* sem.release(): gives one unit to the first task still waiting, or adds
 * it to s. Does not suspend. Any thread.
 *   -EINVAL     s is NULL.
 *   -EOVERFLOW  s holds INT_MAX units already (nothing changes). */
WEFT_API int weft_sem_release(weft_sem *s);

/* The units s holds now (>= 0). Any thread.
 * Does not suspend.
 *   -EINVAL  s is NULL. */
WEFT_API int weft_sem_value(weft_sem *s);

/* Creates an event, not set. Any thread.
 * Does not suspend.
 *   -EINVAL  out is NULL.
 *   -ENOMEM  no memory. */
WEFT_API int weft_event_new(weft_event **out);

/* Frees e. Any thread.
 * Does not suspend.
 *   -EINVAL  e is NULL.
 *   -EBUSY   a task is inside a wait on e (nothing is freed). */
WEFT_API int weft_event_free(weft_event *e);

/* event.set(): sets e and wakes every task waiting on it; later waits
 * return at once until weft_event_clear(). Does not suspend. Any thread.
 *   -EINVAL  e is NULL. */
WEFT_API int weft_event_set(weft_event *e);

/* event.clear(): unsets e. Tasks woken by an earlier set still return 0.
 * Does not suspend. Any thread.
 *   -EINVAL  e is NULL. */
WEFT_API int weft_event_clear(weft_event *e);

/* event.is_set(): 1 if e is set, 0 if not. Any thread.
 * Does not suspend.
 *   -EINVAL  e is NULL. */
WEFT_API int weft_event_is_set(weft_event *e);

/* await event.wait(): returns 0 at once if e is set, else waits until it
 * is set. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     e is NULL.
 *   -ECANCELED  the calling task was cancelled before or while it waited. */
WEFT_API int weft_event_wait(weft_event *e);

/* weft_event_wait() bounded by an absolute deadline. Errors as
 * weft_event_wait(), and
 * May suspend. Task context.
 *   -ETIMEDOUT  the deadline passed first.
 *   -ENOMEM     the worker's timer heap could not grow. */
WEFT_API int weft_event_wait_until(weft_event *e, uint64_t deadline);

/* ======================================================================
 * I/O: descriptors waited on by the runtime's poller
 *
 * Only the calling task waits: its worker runs other tasks meanwhile, and
 * a worker with nothing to run waits in epoll for all of them (poller.c).
 * The calls keep their POSIX names and arguments; they return a count or
 * 0 on success and -errno on failure (never through errno), retry EINTR,
 * and turn EAGAIN into a wait. Each has a form bounded by an absolute
 * deadline (_until) and every wait ends with -ECANCELED when the task is
 * cancelled.
 *
 * A descriptor passed to these calls is made non-blocking (O_NONBLOCK) the
 * first time, and is registered with the poller the first time a call has
 * to wait on it. Close it with weft_close(), which forgets it, wakes any
 * task waiting on it with -EBADF, and then closes it: close(2) on its own
 * would leave the runtime's record of the number behind, and the next
 * descriptor to get that number would inherit it (Linux's epoll says
 * nothing when a registered descriptor is closed). weft_socket() and
 * weft_accept() start a number's record afresh.
 * ====================================================================== */

/* What weft_fd_wait waits for, and returns: an OR of these. */
#define WEFT_READABLE 1u /* data to read, a connection to accept, or the peer hung up */
#define WEFT_WRITABLE 2u /* room to write, or a connect finished */

/* Waits until fd is ready for one of `events` (WEFT_READABLE,
 * WEFT_WRITABLE), or the deadline (WEFT_NEVER: none) passes. Returns the
 * events that are ready, which may include ones not asked for; readiness
 * is a hint (edge-triggered), so the caller retries its call and waits
 * again on EAGAIN. May suspend. Task context.
 *   -EPERM      called outside a task.
 *   -EINVAL     events has no valid bit, or fd is negative.
 *   -EBADF      fd is not open, or weft_close() closed it while this task
 *               waited.
 *   -ECANCELED  the calling task was cancelled.
 *   -ETIMEDOUT  the deadline passed first.
 *   -ENOMEM     no memory for the descriptor's record or the timer heap.
 *   (other)     epoll_ctl refused the descriptor (-EPERM for a regular
 *               file, which is always ready: use it directly). */
WEFT_API int weft_fd_wait(int fd, unsigned events, uint64_t deadline);

/* read(2), write(2), recv(2) and send(2) for a task: one call that moves
 * at least one byte (or, for read and recv, returns 0 at end of file),
 * waiting while the descriptor would block. A count, as POSIX returns
 * it; a short count is normal. May suspend. Task context.
 *   -EPERM, -EBADF, -ECANCELED, -ETIMEDOUT (_until), -ENOMEM: as
 *               weft_fd_wait().
 *   (other)     the call's own -errno (-ECONNRESET, -EPIPE, ...). send
 *               adds MSG_NOSIGNAL, so a closed peer is -EPIPE and never a
 *               SIGPIPE. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t count);
WEFT_API ssize_t weft_read_until(int fd, void *buf, size_t count, uint64_t deadline);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t count);
WEFT_API ssize_t weft_write_until(int fd, const void *buf, size_t count, uint64_t deadline);
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
WEFT_API ssize_t weft_recv_until(int fd, void *buf, size_t len, int flags, uint64_t deadline);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
WEFT_API ssize_t weft_send_until(int fd, const void *buf, size_t len, int flags,
                                 uint64_t deadline);

/* Writes all count bytes of buf, over as many writes (and waits) as it
 * takes. Returns count. May suspend. Task context.
 *   Errors as weft_write(); on an error, *written (if not NULL) says how
 *   many bytes went out before it. */
WEFT_API ssize_t weft_write_all(int fd, const void *buf, size_t count, size_t *written,
                                uint64_t deadline);

/* accept4(2) for a task: waits for a connection on the listening socket
 * fd and returns the new descriptor, non-blocking and close-on-exec
 * (flags may add nothing else). May suspend. Task context.
 *   -EPERM, -EBADF, -ECANCELED, -ETIMEDOUT (_until), -ENOMEM: as
 *               weft_fd_wait().
 *   (other)     accept4's own -errno (-EMFILE, -EINVAL: not listening). */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
WEFT_API int weft_accept_until(int fd, struct sockaddr *addr, socklen_t *addrlen,
                               uint64_t deadline);

/* connect(2) for a task: starts the connection and waits until it is
 * established or refused. May suspend. Task context.
 *   -EPERM, -EBADF, -ECANCELED, -ETIMEDOUT (_until), -ENOMEM: as
 *               weft_fd_wait(); on these the connection attempt is left
 *               half-done: close the socket.
 *   (other)     the connection's own -errno (-ECONNREFUSED, ...). */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
WEFT_API int weft_connect_until(int fd, const struct sockaddr *addr, socklen_t addrlen,
                                uint64_t deadline);

/* socket(2), non-blocking and close-on-exec, with the number's record in
 * the runtime started afresh. Returns the descriptor. Does not suspend.
 * Any thread.
 *   (other)     socket's own -errno. */
WEFT_API int weft_socket(int domain, int type, int protocol);

/* Forgets fd (deregisters it from the poller; a task waiting on it wakes
 * with -EBADF) and closes it. Returns close's result: 0, or its -errno
 * (the descriptor is closed all the same, except on -EBADF). Does not
 * suspend. Any thread. */
WEFT_API int weft_close(int fd);

/* ======================================================================
 * The blocking-call pool: asyncio.to_thread
 * ====================================================================== */

/* Runs fn(arg) on a thread of the blocking-call pool (at most
 * WEFT_BLOCKING_THREADS of them, started as needed) while the calling task
 * waits, and stores fn's return value in *result (if not NULL). For calls
 * that block the thread (a disk read, getaddrinfo, a C library without a
 * non-blocking interface): the task's worker goes on running other tasks,
 * and in GIL mode the token is free for them. fn cannot be interrupted,
 * so neither can this wait: a cancellation arriving meanwhile stays
 * pending for the task's next suspension, and arg stays in use until fn
 * returns. May suspend. Task context.
 *   -EPERM   called outside a task.
 *   -EINVAL  fn is NULL, or the caller is a WEFT_TASK_SHARED_STACK task
 *            and arg points into its stack (fn would use it while the
 *            task's bytes are copied out: pass heap memory).
 *   -ENOMEM  no memory for the call, or no pool thread could be started
 *            and none is alive. */
WEFT_API int weft_blocking(void *(*fn)(void *arg), void *arg, void **result);

/* weft_blocking() that the caller may stop waiting for: at the deadline
 * (WEFT_NEVER: none) or on a cancellation it returns -ETIMEDOUT or
 * -ECANCELED while fn goes on running; when fn returns, the pool calls
 * drop(arg, fn's result) on its thread (drop may be NULL), so that what
 * the abandoned call owns is released. On 0, drop is not called. May
 * suspend. Task context.
 *   Errors as weft_blocking(), and
 *   -ECANCELED  the calling task was cancelled; fn goes on, drop follows.
 *   -ETIMEDOUT  the deadline passed first; fn goes on, drop follows.
 * Both also when the call gives up before it waits (a cancellation
 * already pending, a deadline already past): fn still runs once. */
WEFT_API int weft_blocking_until(void *(*fn)(void *arg), void *arg,
                                 void (*drop)(void *arg, void *result), uint64_t deadline,
                                 void **result);

/* ======================================================================
 * Statistics
 * ====================================================================== */

struct weft_stats {
    unsigned workers;           /* workers that ran */
    uint64_t tasks_spawned;     /* tasks created, the main task included */
    uint64_t tasks_finished;    /* tasks whose function returned */
    uint64_t tasks_live;        /* spawned and not finished */
    uint64_t tasks_unreleased;  /* finished, never joined nor detached */
    uint64_t tasks_peak;        /* most tasks live at once */
    uint64_t switches;          /* context switches */
    uint64_t stacks_in_use;     /* stacks held by tasks */
    uint64_t stacks_cached;     /* stacks free in the workers' caches */
    uint64_t stacks_peak;       /* most stacks in use at once */
    uint64_t stack_slabs;       /* mmap'd regions of stacks */
    uint64_t stack_mappings;    /* kernel mappings (VMAs) those cost */
    uint64_t stack_bytes_mapped; /* address space reserved for stacks */
    uint64_t timers_pending;    /* sleeping tasks not yet woken */
    uint64_t timers_fired;      /* sleeps that ended */
    uint64_t gil_handoffs;      /* GIL mode: the token went to another worker */
    uint64_t gil_forced_drops;  /* GIL mode: the holder dropped it because a waiter asked */
    uint64_t gil_wait_ns;       /* GIL mode: time workers spent waiting for it, summed */
    uint64_t io_waits;          /* times a task suspended until a descriptor was ready */
    uint64_t io_polls;          /* epoll_wait calls of the poller (blocking or not) */
    uint64_t blocking_calls;    /* weft_blocking calls run by the pool */
    uint64_t blocking_threads_peak; /* most pool threads alive at once */
    uint64_t reserved[1];
};

/* Copies the runtime's counters into *out: the running runtime's, or once
 * weft_run() has returned, those it ended with (after teardown: a clean run
 * ends with tasks_live, stacks_in_use, stack_slabs and timers_pending all
 * 0). Any thread; from outside a worker while a runtime runs the figures
 * may be momentarily stale.
 * Never suspends.
 *   -EINVAL  out is NULL.
 *   -ESRCH   no runtime has run in this process. */
WEFT_API int weft_stats_get(struct weft_stats *out);

/* Where tasks' time went: GIL mode's time accounting, also kept when
 * WEFT_STATS=1 (it reads the clock at every switch, so it is off
 * otherwise, and every field is then 0). */
struct weft_times {
    uint64_t running_ns;  /* executing on a worker */
    uint64_t ready_ns;    /* runnable, waiting in a queue for a worker */
    uint64_t token_ns;    /* GIL mode: a worker had it and waited for the token */
    uint64_t sleeping_ns; /* in weft_sleep */
    uint64_t waiting_ns;  /* blocked: joins, futures, channels, locks, groups */
    int enabled;          /* whether accounting was on */
    uint64_t io_ns;       /* waiting for a descriptor, or for the blocking-call pool */
    uint64_t reserved[3];
};

/* The summed time of every task that has finished in the running runtime,
 * or, after weft_run() returns, in the last run. Never suspends. Any
 * thread (figures from outside a worker may be momentarily stale).
 *   -EINVAL  out is NULL.
 *   -ESRCH   no runtime has run in this process. */
WEFT_API int weft_times_get(struct weft_times *out);

/* The time of one task so far (final once it has finished), while its
 * handle is valid. Never suspends. Task context, or any thread of a
 * running runtime (a running task's figures are a snapshot).
 *   -EPERM   no runtime is running.
 *   -EINVAL  out is NULL, or t is not a task handle.
 *   -ESRCH   t no longer names a task. */
WEFT_API int weft_task_times(weft_task *t, struct weft_times *out);

#ifdef __cplusplus
}
#endif

#endif
