/*
 * wait_for: wait for a task, but not longer than a timeout. A job that
 * needs 3 seconds, given 1, is cancelled when the second is up: its sleep
 * returns -ECANCELED (asyncio's CancelledError inside the task), and
 * wait_for returns -ETIMEDOUT (asyncio.TimeoutError) once the task has
 * finished. A job that needs 1 second, given 2, is on time and its result
 * comes back.
 *
 * The asyncio original:
 *
 *     async def job(t):
 *         print(f"job: sleeping {t} s")
 *         try:
 *             await asyncio.sleep(t)
 *         except asyncio.CancelledError:
 *             print("job: cancelled")
 *             raise
 *         return "job done"
 *
 *     async def main():
 *         try:
 *             await asyncio.wait_for(job(3), timeout=1)
 *         except asyncio.TimeoutError:
 *             print("timed out")
 *         print(await asyncio.wait_for(job(1), timeout=2))
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static uint64_t start;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

/* Sleeps as many seconds as its argument says and returns a message; a
 * cancelled sleep makes the task fail with -ECANCELED. */
static void *job(void *arg)
{
    unsigned seconds = (unsigned)(uintptr_t)arg;
    printf("%5.3f s  job: sleeping %u s\n", elapsed(), seconds);
    int err = weft_sleep(seconds * WEFT_SEC);
    if (err < 0) {
        printf("%5.3f s  job: sleep returned -%s\n", elapsed(), weft_err_name(err));
        return WEFT_ERR(err);
    }
    return "job done";
}

/* Runs job(seconds) under wait_for(timeout); returns wait_for's code. */
static int run_job(unsigned seconds, unsigned timeout, void **result)
{
    weft_task *t;
    int err = weft_spawn(&t, job, (void *)(uintptr_t)seconds);
    if (err < 0)
        return err;
    return weft_wait_for(t, timeout * WEFT_SEC, result);
}

static void *main_task(void *arg)
{
    (void)arg;
    printf("wait_for(job(3), timeout=1):\n");
    int err = run_job(3, 1, NULL);
    double late = elapsed();
    if (err == -ETIMEDOUT)
        printf("%5.3f s  timed out: -%s (%s)\n", late, weft_err_name(err), weft_strerror(err));
    else
        printf("%5.3f s  unexpected: %s\n", late, weft_err_name(err));

    printf("\nwait_for(job(1), timeout=2):\n");
    uint64_t t0 = weft_now();
    void *result = NULL;
    int err2 = run_job(1, 2, &result);
    double on_time = (double)(weft_now() - t0) / 1e9;
    if (err2 == 0 && (err2 = weft_err_of(result)) == 0)
        printf("%5.3f s  %s\n", elapsed(), (const char *)result);
    else
        printf("%5.3f s  unexpected: %s\n", elapsed(), weft_err_name(err2));

    if (err != -ETIMEDOUT || late < 1.0 || late > 1.5 || err2 != 0 || on_time < 1.0 ||
        on_time > 1.5) {
        fprintf(stderr, "wait_for: expected a timeout after about 1 s, then a result after 1 s\n");
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
        fprintf(stderr, "wait_for: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
