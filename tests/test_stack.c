/*
 * Suite "stack": stacks are reused, guards cost what docs/design/stacks.md
 * says, and an overflow is reported as one line naming the task, then
 * abort.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "util.h"

static void *noop(void *arg)
{
    return arg;
}

static void *reuse_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        weft_task *t;
        ck_assert_int_eq(weft_spawn(&t, noop, NULL), 0);
        ck_assert_int_eq(weft_join(t, NULL), 0);
    }
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.stack_slabs, 1); /* nothing mapped after the first */
    ck_assert_uint_le(s.stacks_peak, 2); /* main's and one task's */
    return NULL;
}

START_TEST(stacks_are_reused_not_remapped)
{
    run_main(reuse_main, NULL);
}
END_TEST

static long count_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

enum { SLEEPERS = 2000 };
static long maps_grew;
static struct weft_stats last_stats; /* taken while every task sleeps */

static _Atomic int released;
static _Atomic int sleepers_started;

/* Sleeps until main has counted: none exits (and hands its stack on) before. */
static void *sleep_1ms(void *arg)
{
    (void)arg;
    atomic_fetch_add(&sleepers_started, 1);
    do
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    while (!atomic_load(&released));
    return NULL;
}

static void *mapping_main(void *arg)
{
    (void)arg;
    static weft_task *t[SLEEPERS];
    atomic_store(&sleepers_started, 0);
    atomic_store(&released, 0);
    long before = count_mappings();
    for (int i = 0; i < SLEEPERS; i++)
        ck_assert_int_eq(weft_spawn(&t[i], sleep_1ms, NULL), 0);
    /* Until every task has started (and sleeps on its own stack): one
     * yield is not enough where another worker takes this task first. */
    while (atomic_load(&sleepers_started) < SLEEPERS)
        ck_assert_int_eq(weft_yield(), 0);
    maps_grew = count_mappings() - before;
    ck_assert_int_eq(weft_stats_get(&last_stats), 0);
    atomic_store(&released, 1);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    for (int i = 0; i < SLEEPERS; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    return NULL;
}

/* ThreadSanitizer maps memory of its own for every fiber, and
 * AddressSanitizer's allocator maps regions of its own as allocations of
 * new sizes arrive (the runtime's other allocations during the count, such
 * as the timer heap's growth, then add mappings), so there the mappings
 * are counted by the runtime instead of read from the kernel. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define KERNEL_MAPS_ARE_OURS 0
#else
#define KERNEL_MAPS_ARE_OURS 1
#endif

START_TEST(marker_guards_cost_one_mapping_per_slab)
{
    setenv("WEFT_GUARD", "marker", 1);
    start_capture();
    int err = weft_run(NULL, mapping_main, NULL, NULL);
    stop_capture();
    if (err == -ENOTSUP)
        return; /* a kernel older than 6.13: the mprotect test below covers it */
    ck_assert_int_eq(err, 0);
    assert_clean_shutdown();
    /* 2000 stacks of 80 KiB slots come in 16 MiB slabs: about ten. */
    if (KERNEL_MAPS_ARE_OURS)
        ck_assert_int_lt(maps_grew, 20);
    ck_assert_uint_eq(last_stats.stack_mappings, last_stats.stack_slabs);
    ck_assert_uint_le(last_stats.stack_slabs, 12);
}
END_TEST

START_TEST(mprotect_guards_cost_two_mappings_per_stack)
{
    setenv("WEFT_GUARD", "mprotect", 1);
    ck_assert_int_eq(weft_run(NULL, mapping_main, NULL, NULL), 0);
    assert_clean_shutdown();
    /* Main's slab (at most 256 stacks) was mapped before the count began. */
    if (KERNEL_MAPS_ARE_OURS)
        ck_assert_int_ge(maps_grew, 2 * (SLEEPERS - 256));
    ck_assert_uint_ge(last_stats.stack_mappings, 2 * SLEEPERS);
}
END_TEST

static volatile int limit = 1 << 30; /* never reached: the stack ends first */

__attribute__((noinline)) static int recurse(char *prev, int depth)
{
    char frame[512];
    frame[0] = (char)depth;
    frame[1] = prev ? prev[0] : 0;
    __asm__ volatile("" : : "r"(frame) : "memory"); /* keep the frame real */
    if (depth >= limit)
        return frame[1];
    return recurse(frame, depth + 1) + frame[1];
}

static void *overflow(void *arg)
{
    (void)arg;
    return IPTR(recurse(NULL, 0));
}

static void *overflow_main(void *arg)
{
    weft_task *t;
    struct weft_task_opts o = {.name = arg};
    ck_assert_int_eq(weft_spawn_opts(&t, overflow, NULL, &o), 0);
    weft_join(t, NULL);
    return NULL;
}

static void *null_write(void *arg)
{
    (void)arg;
    static volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
    return NULL;
}

static void *segv_main(void *arg)
{
    (void)arg;
    weft_task *t;
    ck_assert_int_eq(weft_spawn(&t, null_write, NULL), 0);
    weft_join(t, NULL);
    return NULL;
}

/* Runs main_fn(arg) under weft_run in a child process with guard mode
 * `guard`; returns its wait status and what it wrote on stderr. */
static int run_child(const char *guard, weft_fn main_fn, void *arg, char *out, size_t cap)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        setenv("WEFT_GUARD", guard, 1);
        weft_run(NULL, main_fn, arg, NULL);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void check_overflow_report(const char *guard, const char *name, const char *shown)
{
    char out[4096];
    int status = run_child(guard, overflow_main, (void *)name, out, sizeof out);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child did not abort (status %#x): %s", status, out);
    char want[256];
    snprintf(want, sizeof want,
             "weft: stack overflow in task \"%s\" (id 2): its stack is 65536 bytes; "
             "raise WEFT_STACK_SIZE or weft_task_opts.stack_size\n",
             shown);
    ck_assert_str_eq(out, want);
}

START_TEST(overflow_is_reported_and_aborts_marker)
{
    char out[256];
    if (run_child("marker", noop, NULL, out, sizeof out) != 0)
        return; /* no guard markers on this kernel */
    check_overflow_report("marker", "deep", "deep");
}
END_TEST

START_TEST(overflow_is_reported_and_aborts_mprotect)
{
    check_overflow_report("mprotect", "deep", "deep");
}
END_TEST

/* A child run inline by its joiner overflows the joiner's stack: the report
 * names both. */
START_TEST(overflow_inline_names_the_task_and_its_host)
{
    setenv("WEFT_INLINE", "32k", 1);
    char out[4096];
    int status = run_child("auto", overflow_main, (void *)"deep", out, sizeof out);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child did not abort (status %#x): %s", status, out);
    ck_assert_str_eq(out, "weft: stack overflow in task \"deep\" (id 2), running inline on the "
                          "stack of task \"main\" (id 1): that stack is 65536 bytes; raise "
                          "WEFT_STACK_SIZE or weft_task_opts.stack_size, or set WEFT_INLINE=0\n");
}
END_TEST

START_TEST(overflow_of_unnamed_task_says_unnamed)
{
    check_overflow_report("auto", NULL, "(unnamed)");
}
END_TEST

START_TEST(other_faults_are_passed_on)
{
    char out[4096];
    int status = run_child("auto", segv_main, NULL, out, sizeof out);
    ck_assert_msg(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "child survived a fault");
    ck_assert_ptr_null(strstr(out, "stack overflow"));
    /* Either the default action (SIGSEGV) or the sanitizer's own report. */
    ck_assert(WIFSIGNALED(status) ? WTERMSIG(status) == SIGSEGV
                                  : strstr(out, "Sanitizer") != NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stacks_are_reused_not_remapped);
    tcase_add_test(tc, marker_guards_cost_one_mapping_per_slab);
    tcase_add_test(tc, mprotect_guards_cost_two_mappings_per_stack);
    tcase_add_test(tc, overflow_is_reported_and_aborts_marker);
    tcase_add_test(tc, overflow_is_reported_and_aborts_mprotect);
    tcase_add_test(tc, overflow_of_unnamed_task_says_unnamed);
    tcase_add_test(tc, overflow_inline_names_the_task_and_its_host);
    tcase_add_test(tc, other_faults_are_passed_on);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Stack counts and mappings are exact on one worker, and these tasks
     * must run on stacks of their own (not inline in their joiner). */
    setenv("WEFT_WORKERS", "1", 1);
    setenv("WEFT_INLINE", "0", 1);
    return run_suite(suite());
}
