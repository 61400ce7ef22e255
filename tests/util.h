/*
 * Helpers shared by the test suites: run a main task under weft_run and
 * check that the runtime shut down clean; capture what a call prints on
 * stderr; scale stress sizes down in sanitizer builds.
 */
#ifndef WEFT_TEST_UTIL_H
#define WEFT_TEST_UTIL_H

#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

/* Asserts what every clean run ends with: no live task, no stack in use,
 * no timer pending, every slab unmapped. */
static inline void assert_clean_shutdown(void)
{
    struct weft_stats s;
    ck_assert_int_eq(weft_stats_get(&s), 0);
    ck_assert_uint_eq(s.tasks_live, 0);
    ck_assert_uint_eq(s.tasks_spawned, s.tasks_finished);
    ck_assert_uint_eq(s.stacks_in_use, 0);
    ck_assert_uint_eq(s.timers_pending, 0);
    ck_assert_uint_eq(s.stack_slabs, 0);
    ck_assert_uint_eq(s.stack_mappings, 0);
    ck_assert_uint_eq(s.stack_bytes_mapped, 0);
}

/* Runs fn(arg) as the main task with the default configuration, asserts
 * success and a clean shutdown, and returns the main task's result. */
static inline void *run_main(weft_fn fn, void *arg)
{
    void *result = (void *)-1;
    ck_assert_int_eq(weft_run(NULL, fn, arg, &result), 0);
    assert_clean_shutdown();
    return result;
}

/* Redirects stderr to a temporary file; stop_capture restores it and
 * returns what was written (static buffer). */
static int saved_stderr = -1;
static FILE *capture_file;

static inline void start_capture(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    ck_assert_ptr_nonnull(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture_file), STDERR_FILENO);
}

static inline const char *stop_capture(void)
{
    static char buf[8192];
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    rewind(capture_file);
    size_t n = fread(buf, 1, sizeof buf - 1, capture_file);
    buf[n] = '\0';
    fclose(capture_file);
    return buf;
}

/* Stress sizes are divided by WEFT_TEST_SCALE (sanitizer builds set 10). */
static inline unsigned long scaled(unsigned long n)
{
    const char *s = getenv("WEFT_TEST_SCALE");
    unsigned long d = s ? strtoul(s, NULL, 10) : 1;
    return d > 1 ? n / d : n;
}

/* Runs the suite and returns the exit status; in forked children (each
 * test gets a fresh process, and a crash fails one test, not the runner)
 * unless `fork` or, with CK_FORK_GETENV, the environment's CK_FORK says
 * otherwise. */
static inline int run_suite_as(Suite *s, enum fork_status fork)
{
    SRunner *sr = srunner_create(s);
    if (fork != CK_FORK_GETENV)
        srunner_set_fork_status(sr, fork);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static inline int run_suite(Suite *s)
{
    return run_suite_as(s, CK_FORK_GETENV);
}

/* For checks inside hot task bodies: Check's ck_assert writes to a pipe
 * on every call (it records the location), which would make a stress test
 * measure system calls. CHECK counts failures instead; the test asserts
 * CHECK_FAILURES() == 0 at the end, and the first failure is printed. */
static _Atomic unsigned long check_failures __attribute__((unused));
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond) && atomic_fetch_add(&check_failures, 1) == 0)                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
    } while (0)
#define CHECK_FAILURES() atomic_load(&check_failures)

/* Entries of a directory such as /proc/self/fd, "." and ".." left out
 * (the directory's own descriptor, open while it is read, is counted the
 * same way every time, so counts before and after a run compare). */
static inline int count_entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Descriptors open in this process. */
static inline int count_fds(void)
{
    return count_entries("/proc/self/fd");
}

static inline void *util_nothing(void *arg)
{
    return arg;
}

/* Threads of this process, from /proc/self/task. A thread is started and
 * joined first: ThreadSanitizer starts a helper thread of its own at the
 * process's first pthread_create, which must not count as one left over. */
static inline unsigned count_threads(void)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, util_nothing, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    return (unsigned)count_entries("/proc/self/task");
}

#define IPTR(x) ((void *)(intptr_t)(x))
#define PINT(p) ((intptr_t)(p))

/* Runs fn as the main task on `workers` workers (default configuration
 * otherwise) and asserts success, a NULL result, a clean shutdown and no
 * CHECK failure. */
static inline void run_on_workers(unsigned workers, weft_fn fn)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers;
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, fn, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
}

/* run_on_workers, and no descriptor left: the process has as many open
 * descriptors after weft_run as before (the runtime's epoll and eventfd,
 * and every socket and pipe the test made). For the I/O suites; counted
 * in the test's own process (Check forks one per test), where nothing
 * else opens or closes descriptors meanwhile. */
static inline void run_io_on_workers(unsigned workers, weft_fn fn)
{
    int before = count_fds();
    run_on_workers(workers, fn);
    int after = count_fds();
    ck_assert_msg(after == before, "%d descriptors open before the run, %d after", before, after);
}

#endif
