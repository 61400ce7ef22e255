/*
 * echo_twice: two tasks each say something, sleep one second, and say it
 * again. They sleep at the same time, so the program takes about one
 * second, not two: concurrency without a second core.
 *
 * The asyncio original (the post's, with asyncio.run in place of the
 * loop that runs forever):
 *
 *     async def echo_twice(msg):
 *         print(msg)
 *         await asyncio.sleep(1)
 *         print(msg)
 *
 *     async def main():
 *         t1 = asyncio.ensure_future(echo_twice('Hello'))
 *         t2 = asyncio.ensure_future(echo_twice('There'))
 *         await t1
 *         await t2
 *
 *     asyncio.run(main())
 *
 * It prints both greetings, pauses once, prints both again. Exits 1 if a
 * call fails or the run takes 1.5 s or more (a loaded machine may be late,
 * but the two sleeps overlap: one after the other would take 2 s).
 */
#include <stdio.h>
#include <string.h>

#include "weft.h"

static uint64_t start;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

static void *echo_twice(void *arg)
{
    const char *msg = arg;
    printf("%5.3f s  %s\n", elapsed(), msg);
    int err = weft_sleep(1 * WEFT_SEC);
    if (err < 0)
        return (void *)(intptr_t)err;
    printf("%5.3f s  %s\n", elapsed(), msg);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *a, *b;
    int err = weft_spawn(&a, echo_twice, "Hello");
    if (err == 0)
        err = weft_spawn(&b, echo_twice, "There");
    if (err < 0) {
        fprintf(stderr, "echo_twice: spawn: %s\n", weft_strerror(err));
        return (void *)1;
    }
    void *ra, *rb;
    if (weft_join(a, &ra) < 0 || weft_join(b, &rb) < 0 || ra || rb)
        return (void *)1;
    return NULL;
}

int main(void)
{
    start = weft_now();
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "echo_twice: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    double total = elapsed();
    printf("two tasks slept 1 s each; the program took %.3f s (sequential would take 2 s)\n", total);
    if (!result && total >= 1.5) {
        fprintf(stderr, "echo_twice: the sleeps did not overlap (%.3f s)\n", total);
        return 1;
    }
    return result ? 1 : 0;
}
