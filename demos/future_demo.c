/*
 * future_demo: a future is a value that will be set later, once. Two tasks
 * await the same future; a third sets it after one second, and both
 * awaiters wake with the value. Setting it a second time is refused
 * (asyncio raises InvalidStateError; weft returns -EALREADY).
 *
 * The asyncio original:
 *
 *     async def waiter(name, fut):
 *         print(f"{name}: waiting")
 *         print(f"{name}: got {await fut}")
 *
 *     async def setter(fut):
 *         await asyncio.sleep(1)
 *         print("setter: set_result(42)")
 *         fut.set_result(42)
 *         try:
 *             fut.set_result(7)
 *         except asyncio.InvalidStateError:
 *             print("setter: set_result(7) again: InvalidStateError")
 *
 *     async def main():
 *         fut = asyncio.get_running_loop().create_future()
 *         await asyncio.gather(waiter("A", fut), waiter("B", fut), setter(fut))
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static uint64_t start;
static weft_future *fut;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

/* Awaits the future and returns its value; fails with the await's error. */
static void *waiter(void *arg)
{
    const char *name = arg;
    printf("%5.3f s  %s: waiting\n", elapsed(), name);
    void *value;
    int err = weft_future_await(fut, WEFT_NEVER, &value);
    if (err < 0)
        return WEFT_ERR(err);
    printf("%5.3f s  %s: got %d\n", elapsed(), name, (int)(intptr_t)value);
    return value;
}

/* Sets the future after a second, then tries to set it again. */
static void *setter(void *arg)
{
    (void)arg;
    int err = weft_sleep(1 * WEFT_SEC);
    if (err < 0)
        return WEFT_ERR(err);
    printf("%5.3f s  setter: resolve(42)\n", elapsed());
    if ((err = weft_future_resolve(fut, (void *)(intptr_t)42)) < 0)
        return WEFT_ERR(err);
    err = weft_future_resolve(fut, (void *)(intptr_t)7);
    if (err != -EALREADY) {
        printf("%5.3f s  setter: resolve(7) again: unexpected %d\n", elapsed(), err);
        return WEFT_ERR(-EPROTO);
    }
    printf("%5.3f s  setter: resolve(7) again: -EALREADY (settled already)\n", elapsed());
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    int err = weft_future_new(&fut);
    if (err < 0) {
        fprintf(stderr, "future_demo: %s\n", weft_strerror(err));
        return (void *)1;
    }
    weft_fn fns[3] = {waiter, waiter, setter};
    char *args[3] = {"A", "B", NULL};
    weft_task *tasks[3];
    size_t n = 0;
    for (; n < 3 && err == 0; n++)
        err = weft_spawn(&tasks[n], fns[n], args[n]);
    if (err < 0) {
        fprintf(stderr, "future_demo: spawn: %s\n", weft_strerror(err));
        weft_future_resolve(fut, NULL); /* lets the waiters spawned so far end */
        n--;
    }

    void *results[3] = {NULL};
    int errors[3] = {0};
    int failed = weft_gather(tasks, n, results, errors);
    int freed = weft_future_free(fut);
    if (err < 0 || failed != 0 || freed < 0 || results[0] != (void *)(intptr_t)42 ||
        results[1] != (void *)(intptr_t)42) {
        fprintf(stderr, "future_demo: expected both waiters to get 42\n");
        return (void *)1;
    }
    double total = elapsed();
    printf("took %.3f s\n", total);
    return total > 1.5 ? (void *)1 : NULL;
}

int main(void)
{
    start = weft_now();
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "future_demo: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
