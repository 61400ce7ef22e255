/*
 * Suite "https": HTTPS through weft_curl_perform and weft_http_get, on
 * loopback, against `openssl s_server -www` (a TLS server that answers any
 * GET with a page about the session) with a certificate the test makes
 * for 127.0.0.1. Each test on 1 and 2 workers, every wait bounded.
 *
 *  - https_transfers_verify_the_server: 12 tasks at once, each on a
 *    256 KiB stack (weft/curl.h, "Stacks"), fetch the page with the test's
 *    certificate as the only trusted one: every handshake verifies the
 *    server, every reply is a 200 with s_server's page.
 *  - https_refuses_an_unknown_certificate: the same server through
 *    weft_http_get, which trusts only the system's authorities, and
 *    through weft_curl_perform with no CA set: -EIO with
 *    CURLE_PEER_FAILED_VERIFICATION, no reply, nothing left.
 * Every test ends with the runtime's clean shutdown, no transfer left in
 * the multi handle, and the same descriptors open as before it started.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <weft/curl.h>

#include "curl_util.h"
#include "util.h"

extern char **environ;

static const unsigned workers_of[] = {1, 2};

/* The server: its directory (certificate, key, log), port and process. */
static struct {
    char dir[64], cert[96], key[96], log[96];
    int port;
    pid_t pid;
} tls;

/* Starts argv with stdin from /dev/null and stdout and stderr into
 * tls.log: 0 with *pid, or -errno. */
static int spawn_logged(char *const argv[], pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, tls.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int err = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return -err;
}

/* Runs argv to its end (spawn_logged); its status, or -errno. */
static int run_quiet(char *const argv[])
{
    pid_t pid;
    int err = spawn_logged(argv, &pid);
    if (err < 0)
        return err;
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The port s_server's log names ("ACCEPT 127.0.0.1:PORT"), or 0 while it
 * names none yet. */
static int logged_port(void)
{
    FILE *f = fopen(tls.log, "r");
    if (!f)
        return 0;
    char line[256];
    int port = 0;
    while (!port && fgets(line, sizeof line, f))
        if (sscanf(line, "ACCEPT 127.0.0.1:%d", &port) != 1)
            port = 0;
    fclose(f);
    return port;
}

static bool accepts_connections(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* Makes a self-signed certificate for 127.0.0.1 and starts s_server with
 * it; returns once the server accepts connections (at most 20 s). */
static void tls_start(void)
{
    snprintf(tls.dir, sizeof tls.dir, "/tmp/weft-https-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tls.dir));
    snprintf(tls.cert, sizeof tls.cert, "%s/cert.pem", tls.dir);
    snprintf(tls.key, sizeof tls.key, "%s/key.pem", tls.dir);
    snprintf(tls.log, sizeof tls.log, "%s/log", tls.dir);
    char *req[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tls.key,
                   "-out", tls.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                   "-addext", "subjectAltName=IP:127.0.0.1", NULL};
    int st = run_quiet(req);
    ck_assert_msg(st == 0, "openssl req: %s (scripts/setup.sh installs openssl)",
                  st < 0 ? strerror(-st) : "failed");
    /* Port 0: s_server binds a free port of its own and names it in its
     * log ("ACCEPT 127.0.0.1:PORT"), so no other process can take it in
     * between. */
    char *server[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", tls.cert,
                      "-key", tls.key, "-www", NULL};
    ck_assert_int_eq(spawn_logged(server, &tls.pid), 0);
    tls.port = 0;
    for (int i = 0; i < 2000 && !tls.port; i++) {
        int ws;
        ck_assert_msg(waitpid(tls.pid, &ws, WNOHANG) == 0, "openssl s_server exited (see %s)",
                      tls.log);
        tls.port = logged_port();
        if (!tls.port)
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    ck_assert_msg(tls.port > 0, "openssl s_server named no port in 20 s (see %s)", tls.log);
    ck_assert_msg(accepts_connections(tls.port), "nothing accepts on port %d", tls.port);
}

static void tls_stop(void)
{
    kill(tls.pid, SIGTERM);
    int st;
    ck_assert_int_eq(waitpid(tls.pid, &st, 0), tls.pid);
    unlink(tls.cert);
    unlink(tls.key);
    unlink(tls.log);
    ck_assert_int_eq(rmdir(tls.dir), 0);
}

static void run_against_tls(unsigned workers, weft_fn fn)
{
    /* libcurl's process-wide set-up keeps what it opens: done first. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int before = count_fds();
    tls_start();
    run_on_workers(workers, fn);
    tls_stop();
    ck_assert_int_eq(count_fds(), before);
}

struct page {
    char buf[4096];
    size_t len;
};

static size_t keep(char *data, size_t size, size_t n, void *arg)
{
    struct page *p = arg;
    size_t k = size * n, room = sizeof p->buf - 1 - p->len;
    memcpy(p->buf + p->len, data, k < room ? k : room);
    p->len += k < room ? k : room;
    p->buf[p->len] = '\0';
    return k;
}

/* One GET of https://127.0.0.1:PORT/ with `ca` as the trusted authority
 * (NULL: libcurl's default, the system's); its return, *code and the page. */
static int get_page(const char *ca, CURLcode *code, long *status, struct page *p)
{
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", tls.port);
    CURL *e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    int err = weft_curl_perform_until(e, weft_now() + 30 * WEFT_SEC, code);
    *status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    return err;
}

/* ---- verified transfers ---------------------------------------------------------- */

static void *fetch_verified(void *arg)
{
    (void)arg;
    struct page p = {0};
    CURLcode code = CURLE_FAILED_INIT;
    long status = 0;
    int err = get_page(tls.cert, &code, &status, &p);
    CHECK(err == 0 && code == CURLE_OK);
    CHECK(status == 200);
    /* s_server -www's page: its command line and the session's cipher. */
    CHECK(strstr(p.buf, "s_server") != NULL);
    CHECK(strstr(p.buf, "Cipher") != NULL);
    return IPTR(err);
}

#define TLS_TASKS 12

static void *verified_main(void *arg)
{
    (void)arg;
    struct weft_task_opts opts = {.name = "https", .stack_size = 256 * 1024};
    weft_task *t[TLS_TASKS];
    for (int i = 0; i < TLS_TASKS; i++)
        CHECK(weft_spawn_opts(&t[i], fetch_verified, NULL, &opts) == 0);
    int ok = 0;
    for (int i = 0; i < TLS_TASKS; i++) {
        void *r = IPTR(-1);
        CHECK(weft_join(t[i], &r) == 0);
        ok += r == NULL;
    }
    CHECK(ok == TLS_TASKS);
    counts_empty();
    return NULL;
}

START_TEST(https_transfers_verify_the_server)
{
    run_against_tls(workers_of[_i], verified_main);
}
END_TEST

/* ---- an unknown certificate -------------------------------------------------------- */

static void *unknown_main(void *arg)
{
    (void)arg;
    struct page p = {0};
    CURLcode code = CURLE_OK;
    long status = -1;
    int err = get_page(NULL, &code, &status, &p);
    CHECK(err == -EIO && code == CURLE_PEER_FAILED_VERIFICATION);
    CHECK(status == 0 && p.len == 0);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", tls.port);
    struct weft_http_reply r;
    err = weft_http_get_until(url, weft_now() + 30 * WEFT_SEC, &r);
    CHECK(err == -EIO && r.code == CURLE_PEER_FAILED_VERIFICATION);
    CHECK(r.status == 0 && r.body == NULL);
    weft_http_reply_destroy(&r);
    counts_empty();
    return NULL;
}

static void *unknown_on_a_big_stack(void *arg)
{
    struct weft_task_opts opts = {.name = "https", .stack_size = 256 * 1024};
    weft_task *t;
    CHECK(weft_spawn_opts(&t, unknown_main, arg, &opts) == 0);
    void *r = IPTR(-1);
    CHECK(weft_join(t, &r) == 0 && r == NULL);
    return NULL;
}

START_TEST(https_refuses_an_unknown_certificate)
{
    run_against_tls(workers_of[_i], unknown_on_a_big_stack);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("https");
    TCase *tc = tcase_create("https");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, https_transfers_verify_the_server, 0, 2);
    tcase_add_loop_test(tc, https_refuses_an_unknown_certificate, 0, 2);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
