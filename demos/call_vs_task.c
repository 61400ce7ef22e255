/*
 * call_vs_task: awaiting a coroutine runs it to its end before the next
 * line; create_task() lets it run beside the caller. Two jobs that each
 * sleep one second take two seconds called one after the other, and one
 * second as two tasks.
 *
 * In C, calling the function is `await coro()`: it runs at once, in the
 * calling task, and its sleep suspends the caller too. weft_spawn() is
 * create_task(): the new task starts once the caller next suspends (here,
 * in the first weft_join), and weft_join() is `await task`.
 *
 * The asyncio original:
 *
 *     async def coro(name):
 *         await asyncio.sleep(1)
 *         return f"hello from {name}"
 *
 *     async def main():
 *         print(await coro("first"))       # one after the other: 2 s
 *         print(await coro("second"))
 *         t1 = asyncio.create_task(coro("first"))
 *         t2 = asyncio.create_task(coro("second"))
 *         print(await t1)                  # side by side: 1 s
 *         print(await t2)
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static uint64_t start;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

/* Sleeps a second and returns a greeting; fails with the sleep's error. */
static void *coro(void *arg)
{
    int err = weft_sleep(1 * WEFT_SEC);
    if (err < 0)
        return WEFT_ERR(err);
    return arg;
}

/* Prints one job's result, or why it failed; returns 0 if it succeeded. */
static int report(void *result, int err)
{
    if (err == 0)
        err = weft_err_of(result);
    if (err < 0) {
        fprintf(stderr, "call_vs_task: %s\n", weft_strerror(err));
        return -1;
    }
    printf("%5.3f s  %s\n", elapsed(), (const char *)result);
    return 0;
}

/* Calls coro() twice, one call after the other; returns the seconds taken. */
static double called(void)
{
    double t0 = elapsed();
    if (report(coro("hello from first"), 0) < 0 || report(coro("hello from second"), 0) < 0)
        return -1;
    return elapsed() - t0;
}

/* Runs coro() as two tasks and joins both; returns the seconds taken. */
static double as_tasks(void)
{
    double t0 = elapsed();
    weft_task *t1, *t2;
    int err = weft_spawn(&t1, coro, "hello from first");
    if (err == 0 && (err = weft_spawn(&t2, coro, "hello from second")) < 0)
        weft_detach(t1);
    if (err < 0) {
        fprintf(stderr, "call_vs_task: spawn: %s\n", weft_strerror(err));
        return -1;
    }
    void *r1 = NULL, *r2 = NULL;
    int e1 = weft_join(t1, &r1);
    int e2 = weft_join(t2, &r2);
    if (report(r1, e1) < 0 || report(r2, e2) < 0)
        return -1;
    return elapsed() - t0;
}

static void *main_task(void *arg)
{
    (void)arg;
    printf("called one after the other (await coro()):\n");
    double seq = called();
    if (seq < 0)
        return (void *)1;
    printf("took %.3f s\n\n", seq);

    printf("as two tasks (create_task, then await each):\n");
    double conc = as_tasks();
    if (conc < 0)
        return (void *)1;
    printf("took %.3f s\n", conc);

    /* A loaded machine may be late, never early: generous upper bounds. */
    if (seq < 2.0 || seq > 3.0 || conc < 1.0 || conc > 1.5) {
        fprintf(stderr, "call_vs_task: expected about 2 s and 1 s\n");
        return (void *)1;
    }
    return NULL;
}

int main(void)
{
    start = weft_now();
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "call_vs_task: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
