/*
 * Suite "curl_load": libweft finds libcurl at the first transfer instead
 * of linking it. This program does not link libcurl (it calls no curl_*
 * function itself), so each test starts with no libcurl in the process.
 * Every test runs in a process of its own (Check's fork mode, set below):
 * libcurl is looked for once a process.
 *
 *  - loaded_at_the_first_transfer: libcurl is not mapped before the first
 *    weft_http_get, which then fetches from weft's own server on loopback
 *    (libcurl.so.4 loaded); the body is right and libcurl is mapped after.
 *  - missing_library_is_named: WEFT_LIBCURL names a file that does not
 *    exist: weft_http_get, weft_curl_multi_setopt and weft_curl_perform
 *    return -ELIBACC, and stderr names the variable and its value, once.
 *  - wrong_library_is_refused: WEFT_LIBCURL names a library that is not
 *    libcurl (the C math library): -ELIBACC, and stderr names the missing
 *    function.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft/curl.h>
#include <weft/http.h>

#include "util.h"

/* Whether a file whose name contains "libcurl" is mapped in this process. */
static bool libcurl_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "/libcurl") != NULL;
    fclose(f);
    return found;
}

static int hello(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    return weft_http_respond(res, 200, "text/plain", "loaded", 6);
}

struct server {
    int lfd;
    uint16_t port;
};

static void *serve_task(void *arg)
{
    struct server *s = arg;
    return (void *)(intptr_t)weft_http_serve_fd(s->lfd, hello, NULL, NULL);
}

static void *fetch_main(void *arg)
{
    (void)arg;
    struct server s;
    s.lfd = weft_http_listen("127.0.0.1:0", &s.port);
    ck_assert_int_ge(s.lfd, 0);
    weft_task *srv;
    ck_assert_int_eq(weft_spawn(&srv, serve_task, &s), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)s.port);
    struct weft_http_reply r;
    ck_assert_int_eq(weft_http_get_until(url, weft_now() + 10 * WEFT_SEC, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 6);
    ck_assert_str_eq(r.body, "loaded");
    weft_http_reply_destroy(&r);
    ck_assert_int_eq(weft_cancel(srv), 0);
    void *res;
    ck_assert_int_eq(weft_join(srv, &res), 0);
    ck_assert_int_eq((int)(intptr_t)res, -ECANCELED);
    return NULL;
}

START_TEST(loaded_at_the_first_transfer)
{
    unsetenv("WEFT_LIBCURL");
    ck_assert(!libcurl_mapped());
    run_main(fetch_main, NULL);
    ck_assert(libcurl_mapped());
}
END_TEST

static void *refused_main(void *arg)
{
    (void)arg;
    struct weft_http_reply r;
    ck_assert_int_eq(weft_http_get("http://127.0.0.1:1/", &r), -ELIBACC);
    ck_assert_ptr_null(r.body);
    ck_assert_int_eq(r.code, CURLE_FAILED_INIT);
    ck_assert_int_eq(weft_curl_multi_setopt(CURLMOPT_MAXCONNECTS, 4), -ELIBACC);
    CURLcode code = CURLE_OK;
    /* Never looked at: the library is refused before the handle is. */
    ck_assert_int_eq(weft_curl_perform((CURL *)&r, &code), -ELIBACC);
    ck_assert_int_eq(code, CURLE_FAILED_INIT);
    return NULL;
}

/* Runs refused_main with WEFT_LIBCURL=value and returns what was printed. */
static const char *refused_with(const char *value)
{
    ck_assert_int_eq(setenv("WEFT_LIBCURL", value, 1), 0);
    start_capture();
    void *result = (void *)-1;
    int err = weft_run(NULL, refused_main, NULL, &result);
    const char *said = stop_capture();
    ck_assert_int_eq(err, 0);
    ck_assert_ptr_null(result);
    assert_clean_shutdown();
    ck_assert(!libcurl_mapped());
    return said;
}

START_TEST(missing_library_is_named)
{
    const char *said = refused_with("/nonexistent/libcurl.so.4");
    ck_assert_msg(strstr(said, "WEFT_LIBCURL=/nonexistent/libcurl.so.4") != NULL, "%s", said);
    /* Said once, though three calls were refused. */
    const char *first = strstr(said, "WEFT_LIBCURL");
    ck_assert_ptr_null(strstr(first + 1, "WEFT_LIBCURL"));
}
END_TEST

START_TEST(wrong_library_is_refused)
{
    const char *said = refused_with("libm.so.6");
    ck_assert_msg(strstr(said, "libm.so.6") != NULL && strstr(said, "curl_") != NULL, "%s", said);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("curl_load");
    TCase *tc = tcase_create("curl_load");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, loaded_at_the_first_transfer);
    tcase_add_test(tc, missing_library_is_named);
    tcase_add_test(tc, wrong_library_is_refused);
    suite_add_tcase(s, tc);
    /* Forked even under CK_FORK=no: libcurl is looked for once a process. */
    return run_suite_as(s, CK_FORK);
}
