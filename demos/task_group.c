/*
 * task_group: structured concurrency. Three members start together; one
 * finishes, one fails after a second, and the failure cancels the one
 * still running (its 3-second sleep returns -ECANCELED). Waiting on the
 * group returns the first failure once every member has ended, so no task
 * outlives the group: the whole takes about 1 second, not 3.
 *
 * The asyncio original (Python 3.11):
 *
 *     async def member(name, t, fail=False):
 *         try:
 *             await asyncio.sleep(t)
 *         except asyncio.CancelledError:
 *             print(f"{name}: cancelled")
 *             raise
 *         if fail:
 *             print(f"{name}: failing")
 *             raise OSError(errno.EIO, "I/O error")
 *         print(f"{name}: done")
 *
 *     async def main():
 *         try:
 *             async with asyncio.TaskGroup() as tg:
 *                 tg.create_task(member("quick", 0.5))
 *                 tg.create_task(member("broken", 1, fail=True))
 *                 tg.create_task(member("slow", 3))
 *         except* OSError as group:
 *             print("group failed:", group.exceptions)
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static uint64_t start;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

/* The name of a return code; EIO is this demo's own failure, which is not
 * among the codes weft itself returns. */
static const char *err_name(int err)
{
    return err == -EIO ? "EIO" : weft_err_name(err);
}

struct member {
    const char *name;
    uint64_t sleep_ns;
    int fail; /* the error to fail with after the sleep, or 0 */
};

static void *member(void *arg)
{
    const struct member *m = arg;
    int err = weft_sleep(m->sleep_ns);
    if (err < 0) {
        printf("%5.3f s  %s: cancelled (sleep returned -%s)\n", elapsed(), m->name,
               err_name(err));
        return WEFT_ERR(err);
    }
    if (m->fail) {
        printf("%5.3f s  %s: failing with -%s\n", elapsed(), m->name, err_name(m->fail));
        return WEFT_ERR(m->fail);
    }
    printf("%5.3f s  %s: done\n", elapsed(), m->name);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    static const struct member members[3] = {
        {"quick", 500 * WEFT_MSEC, 0},
        {"broken", 1 * WEFT_SEC, -EIO},
        {"slow", 3 * WEFT_SEC, 0},
    };
    weft_group *g = NULL;
    int err = weft_group_new(&g);
    for (size_t i = 0; i < 3 && err == 0; i++)
        err = weft_group_spawn(g, member, (void *)&members[i]);
    if (err < 0) {
        fprintf(stderr, "task_group: %s\n", weft_strerror(err));
        if (g)
            weft_group_wait(g); /* the members spawned so far end first */
        weft_group_free(g);
        return (void *)1;
    }

    int failed = weft_group_wait(g);
    double total = elapsed();
    printf("%5.3f s  group failed: -%s (%s)\n", total, err_name(failed),
           weft_strerror(failed));
    if ((err = weft_group_free(g)) < 0) {
        fprintf(stderr, "task_group: free: %s\n", weft_strerror(err));
        return (void *)1;
    }
    if (failed != -EIO || total < 1.0 || total > 1.5) {
        fprintf(stderr, "task_group: expected -EIO after about 1 s\n");
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
        fprintf(stderr, "task_group: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
