/*
 * gil_cpu (W7): two tasks each run 50,000,000 steps of a 64-bit LCG, with a
 * weft_checkpoint() every 4,096 steps (the safe point where a task gives
 * the GIL up when asked, as CPython's eval loop does). Run it three ways:
 *
 *   WEFT_WORKERS=1 ./gil_cpu                 serial: one worker
 *   WEFT_WORKERS=2 WEFT_MODE=gil ./gil_cpu   concurrent, one task at a time
 *   WEFT_WORKERS=2 ./gil_cpu                 parallel
 *
 * Under the GIL it takes what serial takes, and the token changes hands
 * about once per switch interval (WEFT_SWITCH_INTERVAL_US, 5 ms); in
 * parallel it takes about half. Each task's result is checked.
 * --join joins the tasks with weft_join instead of weft_wait_for (with a
 * 600 s bound): a join without a deadline may run a task that has not
 * started yet on the joiner's own stack, which traces must still show as
 * that task's run.
 *   usage: gil_cpu [--join] [STEPS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define LCG_A 6364136223846793005ULL
#define LCG_C 1442695040888963407ULL
#define CHUNK 4096
#define EXPECT_50M 6301162584745976961ULL

static uint64_t steps = 50000000ULL;
static int plain_join;

static void *lcg_task(void *arg)
{
    (void)arg;
    uint64_t x = 1;
    for (uint64_t done = 0; done < steps;) {
        uint64_t n = steps - done < CHUNK ? steps - done : CHUNK;
        for (uint64_t i = 0; i < n; i++)
            x = x * LCG_A + LCG_C;
        done += n;
        if (weft_checkpoint() < 0)
            return NULL;
    }
    return (void *)(uintptr_t)x;
}

static void *main_task(void *arg)
{
    (void)arg;
    uint64_t t0 = weft_now();
    weft_task *a, *b;
    if (weft_spawn(&a, lcg_task, NULL) < 0 || weft_spawn(&b, lcg_task, NULL) < 0)
        return (void *)1;
    void *ra, *rb;
    if (plain_join ? weft_join(a, &ra) < 0 || weft_join(b, &rb) < 0
                   : weft_wait_for(a, 600 * WEFT_SEC, &ra) < 0 ||
                         weft_wait_for(b, 600 * WEFT_SEC, &rb) < 0)
        return (void *)1;
    double s = (double)(weft_now() - t0) / 1e9;
    int ok = steps != 50000000ULL ||
             ((uint64_t)(uintptr_t)ra == EXPECT_50M && (uint64_t)(uintptr_t)rb == EXPECT_50M);
    struct weft_stats st;
    weft_stats_get(&st);
    const char *mode = getenv("WEFT_MODE");
    printf("gil_cpu mode=%s workers=%u steps=%llu ok=%d wall_s=%.3f figure=%.1f unit=ms "
           "handoffs=%llu forced=%llu token_wait_ms=%.1f\n",
           mode ? mode : "parallel", st.workers, (unsigned long long)steps, ok, s, s * 1e3,
           (unsigned long long)st.gil_handoffs, (unsigned long long)st.gil_forced_drops,
           (double)st.gil_wait_ns / 1e6);
    return ok ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && strcmp(argv[i], "--join") == 0) {
        plain_join = 1;
        i++;
    }
    if (i < argc) {
        char *end;
        errno = 0;
        steps = strtoull(argv[i], &end, 10);
        if (errno || end == argv[i] || *end || argv[i][0] == '-' || steps == 0) {
            fprintf(stderr, "gil_cpu: STEPS=\"%s\" is not a positive number\n"
                            "usage: gil_cpu [--join] [STEPS]\n", argv[i]);
            return 2;
        }
    }
    void *r = (void *)1;
    int err = weft_run(NULL, main_task, NULL, &r);
    if (err < 0)
        fprintf(stderr, "gil_cpu: %s\n", weft_strerror(err));
    return err == 0 && r == NULL ? 0 : 1;
}
