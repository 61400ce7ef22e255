/*
 * whoami_gather: three tasks sleep 1, 2 and 3 seconds at the same time.
 * Each says who it is before and after its sleep, and returns a result;
 * gather waits for all three and hands back their results in the order
 * the tasks were given, whatever order they finished in. The whole takes
 * about 3 seconds (the longest sleep), not 6 (their sum).
 *
 * The asyncio original:
 *
 *     async def whoami_after_sleep(name, t):
 *         print(f"I am {name} and gonna sleep for {t} seconds.")
 *         await asyncio.sleep(t)
 *         print(f"I am {name}. I slept for {t} seconds.")
 *         return ("result", name, t)
 *
 *     async def main():
 *         results = await asyncio.gather(
 *             whoami_after_sleep("A", 1),
 *             whoami_after_sleep("B", 2),
 *             whoami_after_sleep("C", 3),
 *         )
 *         print(results)
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static uint64_t start;

static double elapsed(void)
{
    return (double)(weft_now() - start) / 1e9;
}

/* One task's argument, and (the same pointer) its result. */
struct whoami {
    const char *name;
    unsigned seconds;
};

static void *whoami_after_sleep(void *arg)
{
    struct whoami *w = arg;
    printf("%5.3f s  I am %s and gonna sleep for %u seconds.\n", elapsed(), w->name, w->seconds);
    int err = weft_sleep(w->seconds * WEFT_SEC);
    if (err < 0)
        return WEFT_ERR(err);
    printf("%5.3f s  I am %s. I slept for %u seconds.\n", elapsed(), w->name, w->seconds);
    return w;
}

static void *main_task(void *arg)
{
    (void)arg;
    static struct whoami who[3] = {{"A", 1}, {"B", 2}, {"C", 3}};
    weft_task *tasks[3];
    for (size_t i = 0; i < 3; i++) {
        int err = weft_spawn(&tasks[i], whoami_after_sleep, &who[i]);
        if (err < 0) {
            fprintf(stderr, "whoami_gather: spawn: %s\n", weft_strerror(err));
            while (i-- > 0)
                weft_detach(tasks[i]); /* they run on; weft_run waits for them */
            return (void *)1;
        }
    }

    void *results[3] = {NULL};
    int errors[3] = {0};
    int failed = weft_gather(tasks, 3, results, errors);
    double total = elapsed();

    printf("[");
    for (size_t i = 0; i < 3; i++) {
        const struct whoami *r = results[i];
        if (errors[i] == 0)
            printf("%s('result', '%s', %u)", i ? ", " : "", r->name, r->seconds);
        else
            printf("%s%s", i ? ", " : "", weft_err_name(errors[i]));
    }
    printf("]\n");
    printf("took %.3f s (the sleeps add up to 6 s)\n", total);

    if (failed != 0)
        return (void *)1;
    for (size_t i = 0; i < 3; i++)
        if (results[i] != &who[i]) {
            fprintf(stderr, "whoami_gather: result %zu is out of order\n", i);
            return (void *)1;
        }
    if (total < 3.0 || total > 4.5) {
        fprintf(stderr, "whoami_gather: expected about 3 s\n");
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
        fprintf(stderr, "whoami_gather: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
