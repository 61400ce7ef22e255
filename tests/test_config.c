/*
 * Suite "config": weft_config_default, the WEFT_* environment, and the one
 * line a bad value prints. Each test runs in its own forked process, so
 * setenv does not leak between tests.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "util.h"

static void *noop_main(void *arg)
{
    (void)arg;
    return NULL;
}

/* Runs a no-op program with configuration cfg (NULL: the defaults) and
 * returns weft_run's result; *out gets what it printed on stderr. */
static int run_captured(const struct weft_config *cfg, const char **out)
{
    start_capture();
    int err = weft_run(cfg, noop_main, NULL, NULL);
    *out = stop_capture();
    return err;
}

/* run_captured with the defaults under the environment variable
 * name=value. */
static int run_with_env(const char *name, const char *value, const char **out)
{
    setenv(name, value, 1);
    int err = run_captured(NULL, out);
    unsetenv(name);
    return err;
}

START_TEST(defaults_are_documented_values)
{
    struct weft_config c;
    weft_config_default(&c);
    ck_assert_uint_eq(c.workers, 0);
    ck_assert_int_eq(c.mode, WEFT_PARALLEL);
    ck_assert_uint_eq(c.switch_interval_us, 5000);
    ck_assert_uint_eq(c.stack_size, 64 * 1024);
    ck_assert_int_eq(c.guard, WEFT_GUARD_AUTO);
    ck_assert_int_eq(c.pin, 0);
    ck_assert_int_eq(c.stats, 0);
    ck_assert_ptr_null(c.trace_path);
}
END_TEST

START_TEST(sizes_parse_with_suffixes)
{
    size_t z;
    ck_assert_int_eq(weft__parse_size("65536", &z), 0);
    ck_assert_uint_eq(z, 65536);
    ck_assert_int_eq(weft__parse_size("64k", &z), 0);
    ck_assert_uint_eq(z, 65536);
    ck_assert_int_eq(weft__parse_size("64KiB", &z), 0);
    ck_assert_uint_eq(z, 65536);
    ck_assert_int_eq(weft__parse_size("1M", &z), 0);
    ck_assert_uint_eq(z, 1 << 20);
    ck_assert_int_eq(weft__parse_size("2g", &z), 0);
    ck_assert_uint_eq(z, (size_t)2 << 30);
    const char *bad[] = {"12q", "", "k", "-1", " 5", "5 ", "1KK", "99999999999999999999",
                         "17179869184G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(weft__parse_size(bad[i], &z) == -EINVAL, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(bad_stack_size_names_variable_and_value)
{
    const char *out;
    ck_assert_int_eq(run_with_env("WEFT_STACK_SIZE", "12q", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_STACK_SIZE=\"12q\": not a size\n");
}
END_TEST

START_TEST(stack_size_out_of_range_is_not_clamped)
{
    const char *out;
    ck_assert_int_eq(run_with_env("WEFT_STACK_SIZE", "1k", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_STACK_SIZE=\"1k\": out of range [16384, 1073741824]\n");
    ck_assert_int_eq(run_with_env("WEFT_STACK_SIZE", "2G", &out), -EINVAL);
    ck_assert_ptr_nonnull(strstr(out, "WEFT_STACK_SIZE=\"2G\": out of range"));
}
END_TEST

START_TEST(bad_workers_is_not_a_number)
{
    const char *out;
    ck_assert_int_eq(run_with_env("WEFT_WORKERS", "abc", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_WORKERS=\"abc\": not a number\n");
    ck_assert_int_eq(run_with_env("WEFT_WORKERS", "-1", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_WORKERS=\"-1\": not a number\n");
    ck_assert_int_eq(run_with_env("WEFT_WORKERS", "5000", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_WORKERS=\"5000\": out of range [0, 1024]\n");
}
END_TEST

START_TEST(bad_bool_and_enum_values)
{
    const char *out;
    ck_assert_int_eq(run_with_env("WEFT_STATS", "yes", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_STATS=\"yes\": not 0 or 1\n");
    ck_assert_int_eq(run_with_env("WEFT_MODE", "fast", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_MODE=\"fast\": not one of parallel, gil\n");
    ck_assert_int_eq(run_with_env("WEFT_GUARD", "none", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_GUARD=\"none\": not one of auto, marker, mprotect\n");
    ck_assert_int_eq(run_with_env("WEFT_TRACE", "", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_TRACE=\"\": an empty path\n");
    ck_assert_int_eq(run_with_env("WEFT_STEAL", "all", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_STEAL=\"all\": not one of half, one\n");
    ck_assert_int_eq(run_with_env("WEFT_VICTIM", "near", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_VICTIM=\"near\": not one of random, roundrobin, topology\n");
    ck_assert_int_eq(run_with_env("WEFT_LIFO", "yes", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_LIFO=\"yes\": not 0 or 1\n");
    ck_assert_int_eq(run_with_env("WEFT_NEXT_SLOT", "2", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_NEXT_SLOT=\"2\": not 0 or 1\n");
    ck_assert_int_eq(run_with_env("WEFT_HUGE_PAGES", "yes", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_HUGE_PAGES=\"yes\": not 0 or 1\n");
    ck_assert_int_eq(run_with_env("WEFT_INLINE", "lots", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_INLINE=\"lots\": not a size\n");
    ck_assert_int_eq(run_with_env("WEFT_WORKERS", "1025", &out), -EINVAL);
    ck_assert_str_eq(out, "weft: WEFT_WORKERS=\"1025\": out of range [0, 1024]\n");
}
END_TEST

START_TEST(unbuilt_features_are_enotsup_not_ignored)
{
    const char *out;
    /* GIL mode and tracing are built: accepted; a trace path that cannot
     * be written is an error naming the variable. */
    ck_assert_int_eq(run_with_env("WEFT_MODE", "gil", &out), 0);
    ck_assert_int_eq(run_with_env("WEFT_TRACE", "/nonexistent-dir/t.json", &out), -EINVAL);
    ck_assert_ptr_nonnull(strstr(out, "WEFT_TRACE=\"/nonexistent-dir/t.json\": cannot write it"));
}
END_TEST

START_TEST(bad_field_set_by_the_program_is_named)
{
    struct weft_config c;
    weft_config_default(&c);
    c.stack_size = 100;
    const char *out;
    ck_assert_int_eq(run_captured(&c, &out), -EINVAL);
    ck_assert_str_eq(out, "weft: cfg.stack_size=100: out of range for WEFT_STACK_SIZE\n");
    weft_config_default(&c);
    c.guard = (enum weft_guard)7;
    ck_assert_int_eq(run_captured(&c, &out), -EINVAL);
    ck_assert_str_eq(out, "weft: cfg.guard=7: out of range for WEFT_GUARD\n");
}
END_TEST

START_TEST(environment_overrides_the_program_and_stats_print_it)
{
    struct weft_config c;
    weft_config_default(&c);
    c.stack_size = 128 * 1024;
    setenv("WEFT_STACK_SIZE", "256k", 1);
    setenv("WEFT_STATS", "1", 1);
    setenv("WEFT_WORKERS", "3", 1);
    setenv("WEFT_VICTIM", "topology", 1);
    const char *out;
    ck_assert_int_eq(run_captured(&c, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "WEFT_STACK_SIZE          262144\n"));
    ck_assert_ptr_nonnull(strstr(out, "WEFT_STATS               1\n"));
    ck_assert_ptr_nonnull(strstr(out, "WEFT_VICTIM              topology\n"));
    ck_assert_ptr_nonnull(strstr(out, "weft: stats: 3 workers (chosen by WEFT_WORKERS"));
    ck_assert_ptr_nonnull(strstr(out, "weft: worker 2: ran "));
}
END_TEST

START_TEST(stack_size_is_rounded_up_to_pages)
{
    setenv("WEFT_STACK_SIZE", "70000", 1);
    setenv("WEFT_STATS", "1", 1);
    const char *out;
    ck_assert_int_eq(run_captured(NULL, &out), 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char want[64];
    snprintf(want, sizeof want, "WEFT_STACK_SIZE          %zu\n", (70000 + page - 1) / page * page);
    ck_assert_ptr_nonnull(strstr(out, want));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults_are_documented_values);
    tcase_add_test(tc, sizes_parse_with_suffixes);
    tcase_add_test(tc, bad_stack_size_names_variable_and_value);
    tcase_add_test(tc, stack_size_out_of_range_is_not_clamped);
    tcase_add_test(tc, bad_workers_is_not_a_number);
    tcase_add_test(tc, bad_bool_and_enum_values);
    tcase_add_test(tc, unbuilt_features_are_enotsup_not_ignored);
    tcase_add_test(tc, bad_field_set_by_the_program_is_named);
    tcase_add_test(tc, environment_overrides_the_program_and_stats_print_it);
    tcase_add_test(tc, stack_size_is_rounded_up_to_pages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
