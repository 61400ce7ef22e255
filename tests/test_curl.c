/*
 * Suite "curl": weft_curl_perform and weft_http_get against a small HTTP
 * server of the test's own (plain threads and blocking sockets on
 * 127.0.0.1, outside the runtime under test), each test on 1 and 2
 * workers, every wait bounded. White-box only for the multi handle's
 * counts (runtime/curl.h).
 *
 *  - many_tasks_fetch_at_once: 200 tasks each fetch one /posts/{id}, all at
 *    once; every reply is 200 with its own id in the body.
 *  - cancels_race_starts: 200 transfers at once, every other one
 *    cancelled as soon as it is spawned or a little later (not started,
 *    starting, or running): each ends once, with its reply or -ECANCELED;
 *    no transfer or descriptor is left, and the next request works.
 *  - transfers_started_while_curl_is_busy: while the test holds the multi
 *    handle's lock, 50 tasks start transfers: each leaves its start to the
 *    holder and waits (none blocks its thread, none reaches the server);
 *    the release starts every one, and every reply is right.
 *  - transfers_cancelled_while_curl_is_busy: the same, with every third
 *    task cancelled while its transfer waits to be started: each ends
 *    once, with -ECANCELED or its reply, and nothing is left.
 *  - watchers_wake_while_curl_is_busy: while the test holds the lock, 4
 *    replies arrive: their watchers hand their wake-ups to the holder
 *    instead of blocking their threads on the lock (on one worker that
 *    would stop the test), and the release delivers every reply.
 *  - keep_alive_connections_are_reused: 10 tasks make 10 requests each, one
 *    after another: the server accepts fewer connections than requests.
 *  - connection_limit_queues_transfers: with CURLMOPT_MAX_TOTAL_CONNECTIONS
 *    2, 20 tasks at once: the transfers beyond the limit wait for a
 *    connection and are started as others finish; at most 2 accepted.
 *  - closed_connections_are_replaced: the server closes every connection
 *    after its reply; 20 tasks make 10 requests each, so curl keeps
 *    closing sockets and opening new ones that reuse their numbers, with
 *    watchers coming and going; every reply is right.
 *  - resolved_names_are_watched_through_a_duplicate: where the machine's
 *    own name resolves to 127.0.0.1, 20 tasks fetch through it: curl's
 *    threaded resolver makes a socketpair of its own for each lookup,
 *    which is watched through a duplicate (and nothing is left open).
 *  - closed_port_is_refused: -ECONNREFUSED and CURLE_COULDNT_CONNECT, from
 *    weft_http_get and weft_curl_perform.
 *  - cancelled_transfer_leaves_nothing: a task whose request the server
 *    holds is cancelled once the server has it: -ECANCELED, and the multi
 *    handle holds no transfer; the connection is closed (the server sees
 *    it go).
 *  - deadline_times_out: weft_http_get_until on a held request is
 *    -ETIMEDOUT with CURLE_OPERATION_TIMEDOUT, and nothing is left.
 *  - cancelled_while_connecting: a transfer to a listener whose queue is
 *    full (its connect stays in progress) ends by deadline, then another
 *    by cancellation: libcurl closes such a socket with close(2) rather
 *    than the close callback, and its record goes too; the next requests,
 *    whose sockets get the freed number, work.
 *  - sockets_watched_without_duplicates: the same and 20 transfers at
 *    once with every socket watched on curl's own number, as when the
 *    descriptor limit is near: nothing is left.
 *  - idle_connection_closed_by_the_server: while a held request runs, the
 *    server closes another connection that idles in curl's cache: that
 *    socket's watcher ends (it would otherwise wake at once for ever),
 *    and the next request gets a working connection.
 *  - busy_handle_and_own_callbacks: weft_curl_perform with the caller's
 *    easy handle and write callback; the same handle in a second transfer
 *    meanwhile is -EBUSY.
 *  - reply_headers: weft_http_reply_find_header finds a header by any case,
 *    trims it, takes the last of two; destroy leaves a zeroed reply.
 *  - errors: -EPERM outside a task and outside a runtime, -EINVAL for NULL
 *    arguments and options weft_curl_multi_setopt does not take.
 * Every test ends with the runtime's clean shutdown (no task left) and the
 * same descriptors open as before it started (/proc/self/fd): the multi
 * handle's connections are closed when the runtime ends.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <weft/curl.h>

#include "curl_util.h"
#include "task.h"
#include "util.h"

static unsigned workers_of[] = {1, 2};

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer's built-in suppressions for this program. A transfer
 * taken out while its socket connects has libcurl 7.88-8.1 close that
 * socket with close(2), not through the close callback (curl.c, "Socket
 * lifetime"); when the socket is watched on curl's own number (direct,
 * near the descriptor limit: sockets_watched_without_duplicates), the
 * watcher's epoll_ctl on another thread races with that close. The race
 * is libcurl's and is what sock_lost cleans up after; it is reported
 * only for the two functions of this file that make it. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:connecting_main\nrace:connecting_one\n";
}
#endif

#define SOON(ms) (weft_now() + (uint64_t)(ms)*WEFT_MSEC)

/* ---- the server ------------------------------------------------------------ */

/* GET /posts/{id}: {"id":ID,...} after `delay_ms`; GET /held/{id}: the same
 * after 10 s, or never if the client goes first; GET /drop/{id}: the same
 * at once, keep-alive, but the connection is closed (with nothing said)
 * once the test sets drop_now. Keep-alive unless close_each. */
static struct server {
    int lfd;
    int port;
    int delay_ms;
    bool close_each;
    pthread_t thread;
    _Atomic unsigned accepts, requests, live, hangups, drops;
    _Atomic bool drop_now;
} srv;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Waits ms, or until the client hangs up (then false). */
static bool hold(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r == 0)
        return true;
    char c;
    return !(r > 0 && recv(fd, &c, 1, MSG_PEEK) <= 0);
}

static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

static bool answer(int fd, const char *req)
{
    int id = 0;
    bool held = sscanf(req, "GET /held/%d ", &id) == 1;
    bool drop = !held && sscanf(req, "GET /drop/%d ", &id) == 1;
    if (!held && !drop && sscanf(req, "GET /posts/%d ", &id) != 1)
        return send_all(fd, not_found, sizeof not_found - 1);
    atomic_fetch_add(&srv.requests, 1);
    if (!hold(fd, held ? 10000 : srv.delay_ms)) {
        atomic_fetch_add(&srv.hangups, 1);
        return false;
    }
    char body[128], head[256];
    int blen = snprintf(body, sizeof body, "{\"userId\":%d,\"id\":%d,\"title\":\"weft\"}",
                        (id - 1) / 10 + 1, id);
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "X-Weft: a\r\nx-weft:  b \r\nContent-Length: %d\r\n%s\r\n",
                        blen, srv.close_each ? "Connection: close\r\n" : "");
    if (!send_all(fd, head, (size_t)hlen) || !send_all(fd, body, (size_t)blen))
        return false;
    if (drop) {
        for (int i = 0; i < 10000 && !atomic_load(&srv.drop_now); i++)
            sleep_ms(1);
        atomic_fetch_add(&srv.drops, 1);
        return false;
    }
    return !srv.close_each;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end) {
            *end = '\0';
            if (!answer(fd, buf))
                break;
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, end + 4, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof buf)
            break;
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    atomic_fetch_sub(&srv.live, 1);
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256 * 1024);
    for (;;) {
        int fd = accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* shut down */
        }
        atomic_fetch_add(&srv.accepts, 1);
        atomic_fetch_add(&srv.live, 1);
        pthread_t t;
        if (pthread_create(&t, &a, conn_main, (void *)(intptr_t)fd) != 0) {
            close(fd);
            atomic_fetch_sub(&srv.live, 1);
        }
    }
    pthread_attr_destroy(&a);
    return NULL;
}

static void server_start(int delay_ms, bool close_each)
{
    srv.delay_ms = delay_ms;
    srv.close_each = close_each;
    atomic_store(&srv.drops, 0);
    atomic_store(&srv.drop_now, false);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(srv.lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(srv.lfd, 512), 0);
    ck_assert_int_eq(getsockname(srv.lfd, (struct sockaddr *)&a, &len), 0);
    srv.port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&srv.thread, NULL, accept_main, NULL), 0);
}

/* Stops accepting and waits (10 s at most) for every connection to end:
 * curl's close when the runtime ended. */
static void server_stop(void)
{
    shutdown(srv.lfd, SHUT_RDWR);
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    for (int i = 0; i < 10000 && atomic_load(&srv.live); i++)
        sleep_ms(1);
    ck_assert_uint_eq(atomic_load(&srv.live), 0);
}

static void url_of(char *buf, size_t n, const char *kind, int id)
{
    snprintf(buf, n, "http://127.0.0.1:%d/%s/%d", srv.port, kind, id);
}

/* Runs fn on `workers` workers against a server started as asked; then
 * checks that the multi handle's connections were closed with the run. */
static void run_against_server(unsigned workers, weft_fn fn, int delay_ms, bool close_each)
{
    /* libcurl's process-wide set-up keeps what it opens: done first. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int before = count_fds();
    server_start(delay_ms, close_each);
    run_on_workers(workers, fn);
    server_stop();
    ck_assert_int_eq(count_fds(), before);
}

/* The body has `"id":ID,` and the reply is a 200. */
static bool reply_ok(const struct weft_http_reply *r, int id)
{
    char want[32];
    snprintf(want, sizeof want, "\"id\":%d,", id);
    return r->status == 200 && r->body && strstr(r->body, want) != NULL &&
           r->body_len == strlen(r->body);
}

static void *fetch_one(void *arg)
{
    int id = (int)(intptr_t)arg;
    char url[96];
    url_of(url, sizeof url, "posts", id);
    struct weft_http_reply r;
    int err = weft_http_get_until(url, SOON(20000), &r);
    CHECK(err == 0);
    CHECK(err != 0 || reply_ok(&r, id));
    weft_http_reply_destroy(&r);
    return NULL;
}

#define MANY 200 /* the most tasks() runs */

/* Runs fn(i) for i in [0, n) as n tasks at once, joins them all, and
 * checks that the multi handle is left without a transfer. */
static void *tasks(weft_fn fn, int n)
{
    weft_task *t[MANY];
    CHECK(n <= MANY);
    for (int i = 0; i < n; i++)
        CHECK(weft_spawn(&t[i], fn, IPTR(i)) == 0);
    for (int i = 0; i < n; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    counts_empty();
    return NULL;
}

/* Task i fetches id i + 1. */
static void *fetch_nth(void *arg)
{
    return fetch_one(IPTR(PINT(arg) + 1));
}

/* ---- many at once ------------------------------------------------------------ */

static void *many_main(void *arg)
{
    (void)arg;
    return tasks(fetch_nth, MANY);
}

START_TEST(many_tasks_fetch_at_once)
{
    run_against_server(workers_of[_i], many_main, 20, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), MANY);
}
END_TEST

/* 200 transfers at once, every other one cancelled by main as soon as it
 * is spawned or a little later: a cancel finds its transfer not started,
 * starting, or running. Each task ends once, with its reply or
 * -ECANCELED, and nothing is left: no transfer, no descriptor
 * (run_against_server counts them). */
#define STORM 200

/* Task i fetches id i + 1, or is cancelled: returns 0 or -ECANCELED. */
static void *storm_one(void *arg)
{
    int id = (int)PINT(arg) + 1;
    char url[96];
    url_of(url, sizeof url, "posts", id);
    struct weft_http_reply r;
    int err = weft_http_get_until(url, SOON(20000), &r);
    CHECK(err == 0 || err == -ECANCELED);
    CHECK(err != 0 || reply_ok(&r, id));
    weft_http_reply_destroy(&r);
    return IPTR(err);
}

static void *storm_main(void *arg)
{
    (void)arg;
    weft_task *t[STORM];
    for (int i = 0; i < STORM; i++) {
        CHECK(weft_spawn(&t[i], storm_one, IPTR(i)) == 0);
        if (i % 2 == 1)
            CHECK(weft_cancel(t[i]) == 0);
        if (i % 7 == 0)
            CHECK(weft_yield() == 0);
    }
    int ok = 0, cancelled = 0;
    for (int i = 0; i < STORM; i++) {
        void *r;
        CHECK(weft_join(t[i], &r) == 0);
        ok += PINT(r) == 0;
        cancelled += PINT(r) == -ECANCELED;
        CHECK(i % 2 == 1 || PINT(r) == 0);
    }
    CHECK(ok + cancelled == STORM && ok >= STORM / 2);
    counts_empty();
    fetch_one(IPTR(STORM + 1));
    return NULL;
}

START_TEST(cancels_race_starts)
{
    run_against_server(workers_of[_i], storm_main, 2, false);
}
END_TEST

/* ---- transfers started while another thread is inside curl ------------------- */

#define POSTED 50

/* Main holds the multi handle's lock, as a thread running curl does, while
 * 50 tasks start transfers: none may block its worker's thread on the
 * lock (on one worker that would be a deadlock) or reach the server; each
 * leaves its transfer to the holder and waits. With `cancel`, every third
 * is cancelled while it waits so. The holder's release starts them all;
 * the cancelled ones end with -ECANCELED (or their reply, if the cancel
 * came too late), the others with their reply. */
static void posted(bool cancel)
{
    weft_task *t[POSTED];
    CHECK(weft__curl_hold(true) == 0);
    for (int i = 0; i < POSTED; i++)
        CHECK(weft_spawn(&t[i], storm_one, IPTR(i)) == 0);
    for (int i = 0; i < POSTED; i++) {
        int err;
        struct weft__task *x = weft__task_lookup(t[i], &err);
        CHECK(x != NULL);
        /* Bounded in time, not only in yields: under load the other
         * worker's thread may not run for a while. */
        for (int k = 0; k < 11000 && x && atomic_load(&x->state) != WEFT_T_BLOCKED; k++)
            CHECK((k < 1000 ? weft_yield() : weft_sleep(WEFT_MSEC)) == 0);
        CHECK(x && atomic_load(&x->state) == WEFT_T_BLOCKED);
    }
    CHECK(atomic_load(&srv.requests) == 0);
    if (cancel)
        for (int i = 0; i < POSTED; i += 3)
            CHECK(weft_cancel(t[i]) == 0);
    CHECK(weft__curl_hold(false) == 0);
    unsigned ok = 0;
    for (int i = 0; i < POSTED; i++) {
        void *r;
        CHECK(weft_join(t[i], &r) == 0);
        CHECK(PINT(r) == 0 || (cancel && i % 3 == 0));
        ok += PINT(r) == 0;
    }
    CHECK(atomic_load(&srv.requests) >= ok);
    counts_empty();
    fetch_one(IPTR(POSTED + 1));
}

static void *posted_main(void *arg)
{
    (void)arg;
    posted(false);
    return NULL;
}

static void *posted_cancel_main(void *arg)
{
    (void)arg;
    posted(true);
    return NULL;
}

START_TEST(transfers_started_while_curl_is_busy)
{
    run_against_server(workers_of[_i], posted_main, 0, false);
}
END_TEST

START_TEST(transfers_cancelled_while_curl_is_busy)
{
    run_against_server(workers_of[_i], posted_cancel_main, 0, false);
}
END_TEST

/* Main holds the lock while 4 transfers' replies arrive (the server
 * answers 50 ms after it has each request): their watchers wake to find
 * it held, and hand their wake-ups over rather than block their worker's
 * thread (on one worker, blocking would stop main from ever releasing).
 * The release hands them to curl, and every reply is right. */
#define HANDED 4

static void wait_requests(unsigned n);

static void *handed_main(void *arg)
{
    (void)arg;
    weft_task *t[HANDED];
    for (int i = 0; i < HANDED; i++)
        CHECK(weft_spawn(&t[i], fetch_nth, IPTR(i)) == 0);
    wait_requests(HANDED);
    CHECK(weft__curl_hold(true) == 0);
    for (int i = 0; i < 5000 && !weft__curl_handed_over(); i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(weft__curl_handed_over());
    CHECK(weft__curl_hold(false) == 0);
    for (int i = 0; i < HANDED; i++)
        CHECK(weft_join(t[i], NULL) == 0);
    CHECK(!weft__curl_handed_over());
    counts_empty();
    return NULL;
}

START_TEST(watchers_wake_while_curl_is_busy)
{
    run_against_server(workers_of[_i], handed_main, 50, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), HANDED);
}
END_TEST

/* ---- connection reuse ---------------------------------------------------------- */

#define CLIENTS 10
#define EACH 10

static void *fetch_several(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int k = 0; k < EACH; k++)
        fetch_one(IPTR(base * EACH + k + 1));
    return NULL;
}

static void *reuse_main(void *arg)
{
    (void)arg;
    return tasks(fetch_several, CLIENTS);
}

START_TEST(keep_alive_connections_are_reused)
{
    run_against_server(workers_of[_i], reuse_main, 1, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), CLIENTS * EACH);
    /* At most one connection per client task (a connection goes back to
     * the cache before its task asks again). */
    ck_assert_uint_le(atomic_load(&srv.accepts), CLIENTS);
    ck_assert_uint_lt(atomic_load(&srv.accepts), CLIENTS * EACH);
}
END_TEST

/* ---- a connection limit ---------------------------------------------------------------- */

#define LIMITED 20

static void *limit_main(void *arg)
{
    (void)arg;
    CHECK(weft_curl_multi_setopt(CURLMOPT_MAX_TOTAL_CONNECTIONS, 2) == 0);
    return tasks(fetch_nth, LIMITED);
}

START_TEST(connection_limit_queues_transfers)
{
    run_against_server(workers_of[_i], limit_main, 5, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), LIMITED);
    ck_assert_uint_le(atomic_load(&srv.accepts), 2);
}
END_TEST

/* ---- connections closed by the server --------------------------------------------- */

#define CLOSERS 20

static void *closed_main(void *arg)
{
    (void)arg;
    return tasks(fetch_several, CLOSERS);
}

START_TEST(closed_connections_are_replaced)
{
    run_against_server(workers_of[_i], closed_main, 0, true);
    ck_assert_uint_eq(atomic_load(&srv.requests), CLOSERS * EACH);
    ck_assert_uint_eq(atomic_load(&srv.accepts), CLOSERS * EACH);
}
END_TEST

/* ---- a name for the resolver ------------------------------------------------------------- */

/* The machine's own name, if it resolves to 127.0.0.1 only (as /etc/hosts
 * often says), else empty: curl resolves it on its threaded resolver,
 * whose socketpair it makes and closes itself. ("localhost" would not do:
 * curl answers that one without resolving.) */
static char loopback_name[256];

static void find_loopback_name(void)
{
    loopback_name[0] = '\0';
    char name[sizeof loopback_name];
    if (gethostname(name, sizeof name) != 0)
        return;
    name[sizeof name - 1] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(name, NULL, &hints, &res) != 0)
        return;
    bool loopback = true;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        loopback = loopback && a->ai_family == AF_INET &&
                   ((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    freeaddrinfo(res);
    if (loopback)
        memcpy(loopback_name, name, sizeof name);
}

static void *fetch_by_name(void *arg)
{
    int id = (int)PINT(arg) + 1;
    char url[512], want[32];
    snprintf(url, sizeof url, "http://%s:%d/posts/%d", loopback_name, srv.port, id);
    snprintf(want, sizeof want, "\"id\":%d,", id);
    struct weft_http_reply r;
    CHECK(weft_http_get_until(url, SOON(20000), &r) == 0);
    CHECK(r.status == 200 && r.body && strstr(r.body, want));
    weft_http_reply_destroy(&r);
    return NULL;
}

static void *resolve_main(void *arg)
{
    (void)arg;
    return tasks(fetch_by_name, 20);
}

START_TEST(resolved_names_are_watched_through_a_duplicate)
{
    find_loopback_name();
    if (!loopback_name[0])
        return; /* nothing here resolves to 127.0.0.1 through the resolver */
    run_against_server(workers_of[_i], resolve_main, 1, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), 20);
}
END_TEST

/* ---- refused ----------------------------------------------------------------------- */

/* A port nobody listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void *refused_main(void *arg)
{
    (void)arg;
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/posts/1", closed_port());
    struct weft_http_reply r;
    CHECK(weft_http_get_until(url, SOON(10000), &r) == -ECONNREFUSED);
    CHECK(r.code == CURLE_COULDNT_CONNECT && r.body == NULL && r.status == 0);
    weft_http_reply_destroy(&r);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    CURLcode code = CURLE_OK;
    CHECK(weft_curl_perform(e, &code) == -ECONNREFUSED);
    CHECK(code == CURLE_COULDNT_CONNECT);
    curl_easy_cleanup(e);
    counts_empty();
    return NULL;
}

START_TEST(closed_port_is_refused)
{
    run_against_server(workers_of[_i], refused_main, 0, false);
}
END_TEST

/* ---- cancellation and deadlines -------------------------------------------------- */

static void *fetch_held(void *arg)
{
    char url[96];
    url_of(url, sizeof url, "held", (int)(intptr_t)arg);
    struct weft_http_reply r;
    int err = weft_http_get(url, &r);
    CHECK(r.body == NULL);
    return IPTR(err);
}

/* Until the server has received n requests in all (bounded). */
static void wait_requests(unsigned n)
{
    for (int i = 0; i < 10000 && atomic_load(&srv.requests) < n; i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&srv.requests) >= n);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    weft_task *t;
    CHECK(weft_spawn(&t, fetch_held, IPTR(7)) == 0);
    wait_requests(1);
    struct weft__curl_counts n;
    weft__curl_counts(&n);
    CHECK(n.transfers == 1 && n.running == 1 && n.sockets == 1);
    CHECK(weft_cancel(t) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == -ECANCELED);
    counts_empty();
    /* The aborted transfer's connection was closed: the server sees it. */
    for (int i = 0; i < 10000 && atomic_load(&srv.hangups) < 1; i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&srv.hangups) == 1);
    /* And the multi handle goes on working. */
    fetch_one(IPTR(8));
    return NULL;
}

START_TEST(cancelled_transfer_leaves_nothing)
{
    run_against_server(workers_of[_i], cancel_main, 0, false);
}
END_TEST

static void *deadline_main(void *arg)
{
    (void)arg;
    char url[96];
    url_of(url, sizeof url, "held", 3);
    struct weft_http_reply r;
    CHECK(weft_http_get_until(url, SOON(50), &r) == -ETIMEDOUT);
    CHECK(r.code == CURLE_OPERATION_TIMEDOUT && r.body == NULL);
    /* A deadline that has passed already: the transfer does not start. */
    CHECK(weft_http_get_until(url, weft_now() - 1, &r) == -ETIMEDOUT);
    counts_empty();
    fetch_one(IPTR(4));
    return NULL;
}

START_TEST(deadline_times_out)
{
    run_against_server(workers_of[_i], deadline_main, 0, false);
}
END_TEST

/* A listener on loopback that never accepts, its queue filled by `fill`
 * connections of our own: a further connect stays in progress, since the
 * kernel drops its SYN. Returns the listener; its port in *port. */
#define FILL 3
static int stuck_listener(int *port, int fill[FILL])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 0) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < FILL; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fill[i] >= 0);
        CHECK(connect(fill[i], (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS);
    }
    return l;
}

/* A transfer taken out while its socket connects: libcurl 7.88.0 to 8.1.2
 * close such a socket with close(2), not through the close callback (the
 * driver recognises it, curl.c's sock_gone). Its record must go with it:
 * nothing stays watched, and the next socket curl opens, which gets the
 * freed number, is not taken for the old one. Twice, once by deadline
 * and once by cancellation. */
static void *connecting_one(void *arg)
{
    struct weft_http_reply r;
    int err = weft_http_get_until(arg, SOON(20000), &r);
    weft_http_reply_destroy(&r);
    return IPTR(err);
}

static void *connecting_main(void *arg)
{
    (void)arg;
    int port, fill[FILL];
    int l = stuck_listener(&port, fill);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/posts/1", port);
    struct weft_http_reply r;
    CHECK(weft_http_get_until(url, SOON(100), &r) == -ETIMEDOUT);
    CHECK(r.code == CURLE_OPERATION_TIMEDOUT);
    struct weft__curl_counts n;
    weft__curl_counts(&n);
    CHECK(n.transfers == 0 && n.sockets == 0);
    fetch_one(IPTR(1));

    weft_task *t;
    CHECK(weft_spawn(&t, connecting_one, url) == 0);
    for (int i = 0; i < 1000; i++) {
        weft__curl_counts(&n);
        if (n.sockets == 2)
            break;
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    }
    /* fetch_one's connection, idle in the cache, and the one connecting. */
    CHECK(n.sockets == 2);
    CHECK(weft_cancel(t) == 0);
    void *res;
    CHECK(weft_join(t, &res) == 0);
    CHECK(PINT(res) == -ECANCELED);
    weft__curl_counts(&n);
    CHECK(n.transfers == 0 && n.sockets == 1);
    fetch_one(IPTR(2));
    for (int i = 0; i < FILL; i++)
        close(fill[i]);
    close(l);
    return NULL;
}

START_TEST(cancelled_while_connecting)
{
    run_against_server(workers_of[_i], connecting_main, 0, false);
}
END_TEST

/* The same, and 20 transfers at once, with every socket watched on
 * curl's own number (as when the descriptor limit is near, curl.c's
 * sock_add): a transfer taken out while it connects leaves no record,
 * and nothing is left open. */
static void *direct_main(void *arg)
{
    CHECK(weft__curl_set_dup_below(0) == 0);
    connecting_main(arg);
    return tasks(fetch_nth, 20);
}

START_TEST(sockets_watched_without_duplicates)
{
    run_against_server(workers_of[_i], direct_main, 0, false);
    ck_assert_uint_eq(atomic_load(&srv.requests), 22);
}
END_TEST

/* An idle connection in curl's cache that the server closes while another
 * transfer runs: its watcher wakes to an end of stream that nobody will
 * read before the connection is reused. It must end rather than wait
 * again, which would return at once for ever (on one worker nothing else
 * would run: the held transfer's deadline, main, everything would stop). */
static void *dropped_main(void *arg)
{
    (void)arg;
    weft_task *h;
    CHECK(weft_spawn(&h, fetch_held, IPTR(1)) == 0);
    wait_requests(1);
    char url[96];
    url_of(url, sizeof url, "drop", 2);
    struct weft_http_reply r;
    CHECK(weft_http_get_until(url, SOON(20000), &r) == 0 && reply_ok(&r, 2));
    weft_http_reply_destroy(&r);
    /* Two sockets, each with its watcher: the held one, and the dropped
     * one idle in the cache. */
    struct weft__curl_counts n;
    weft__curl_counts(&n);
    CHECK(n.transfers == 1 && n.sockets == 2);
    size_t before = n.watchers;
    atomic_store(&srv.drop_now, true);
    for (int i = 0; i < 10000 && atomic_load(&srv.drops) < 1; i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&srv.drops) == 1);
    bool ended = false;
    for (int i = 0; i < 5000 && !ended; i++) {
        weft__curl_counts(&n);
        ended = n.watchers == before - 1;
        if (!ended)
            CHECK(weft_sleep(WEFT_MSEC) == 0);
    }
    CHECK(ended);
    CHECK(n.transfers == 1);
    /* The held transfer goes on; once it is cancelled, the next transfer
     * gets a connection that works (curl finds the dropped one dead). */
    CHECK(weft_cancel(h) == 0);
    void *res;
    CHECK(weft_join(h, &res) == 0 && PINT(res) == -ECANCELED);
    fetch_one(IPTR(3));
    counts_empty();
    return NULL;
}

START_TEST(idle_connection_closed_by_the_server)
{
    run_against_server(workers_of[_i], dropped_main, 0, false);
}
END_TEST

/* ---- the caller's own easy handle ---------------------------------------------------- */

struct sink {
    char buf[256];
    size_t len;
};

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t k = size * n;
    if (s->len + k < sizeof s->buf) {
        memcpy(s->buf + s->len, data, k);
        s->len += k;
        s->buf[s->len] = '\0';
    }
    return k;
}

static void *perform_held(void *arg)
{
    CURLcode code;
    return IPTR(weft_curl_perform(arg, &code));
}

static void *busy_main(void *arg)
{
    (void)arg;
    char url[96];
    url_of(url, sizeof url, "posts", 5);
    CURL *e = curl_easy_init();
    struct sink s = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    CURLcode code = CURLE_FAILED_INIT;
    CHECK(weft_curl_perform(e, &code) == 0 && code == CURLE_OK);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    CHECK(status == 200 && strstr(s.buf, "\"id\":5,") != NULL);
    /* The same handle in a transfer that is still going: -EBUSY. */
    url_of(url, sizeof url, "held", 6);
    curl_easy_setopt(e, CURLOPT_URL, url);
    weft_task *t;
    CHECK(weft_spawn(&t, perform_held, e) == 0);
    wait_requests(2);
    CHECK(weft_curl_perform(e, &code) == -EBUSY && code == CURLE_FAILED_INIT);
    CHECK(weft_cancel(t) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0 && PINT(r) == -ECANCELED);
    curl_easy_cleanup(e);
    counts_empty();
    return NULL;
}

START_TEST(busy_handle_and_own_callbacks)
{
    run_against_server(workers_of[_i], busy_main, 0, false);
}
END_TEST

/* ---- headers ---------------------------------------------------------------------------- */

static void *headers_main(void *arg)
{
    (void)arg;
    char url[96];
    url_of(url, sizeof url, "posts", 9);
    struct weft_http_reply r;
    CHECK(weft_http_get(url, &r) == 0 && reply_ok(&r, 9));
    CHECK(r.headers && strncmp(r.headers, "HTTP/1.1 200", 12) == 0);
    CHECK(r.headers_len == strlen(r.headers));
    size_t len = 0;
    const char *v = weft_http_reply_find_header(&r, "content-type", &len);
    CHECK(v && len == 16 && strncmp(v, "application/json", len) == 0);
    v = weft_http_reply_find_header(&r, "X-WEFT", &len);
    CHECK(v && len == 1 && *v == 'b');
    CHECK(weft_http_reply_find_header(&r, "X-We", &len) == NULL);
    CHECK(weft_http_reply_find_header(&r, "Nope", NULL) == NULL);
    weft_http_reply_destroy(&r);
    CHECK(r.body == NULL && r.headers == NULL && r.status == 0);
    weft_http_reply_destroy(&r);
    weft_http_reply_destroy(NULL);
    /* Another route: a 404 is a reply, not an error. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/other", srv.port);
    CHECK(weft_http_get(url, &r) == 0 && r.status == 404 && r.body_len == 0 && r.body);
    weft_http_reply_destroy(&r);
    return NULL;
}

START_TEST(reply_headers)
{
    run_against_server(workers_of[_i], headers_main, 0, false);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

static void *errors_main(void *arg)
{
    (void)arg;
    CURLcode code = CURLE_OK;
    CHECK(weft_curl_perform(NULL, &code) == -EINVAL && code == CURLE_FAILED_INIT);
    struct weft_http_reply r;
    CHECK(weft_http_get(NULL, &r) == -EINVAL && r.body == NULL);
    CHECK(weft_http_get("http://127.0.0.1:1/", NULL) == -EINVAL);
    CHECK(weft_curl_multi_setopt(CURLMOPT_SOCKETFUNCTION, 0) == -EINVAL);
    CHECK(weft_curl_multi_setopt(CURLMOPT_MAX_HOST_CONNECTIONS, 8) == 0);
    return NULL;
}

START_TEST(errors)
{
    CURL *e = curl_easy_init();
    CURLcode code = CURLE_OK;
    ck_assert_int_eq(weft_curl_perform(e, &code), -EPERM);
    ck_assert_int_eq(code, CURLE_FAILED_INIT);
    struct weft_http_reply r;
    ck_assert_int_eq(weft_http_get("http://127.0.0.1:1/", &r), -EPERM);
    ck_assert_int_eq(weft_curl_multi_setopt(CURLMOPT_MAXCONNECTS, 4), -EPERM);
    curl_easy_cleanup(e);
    run_on_workers(workers_of[_i], errors_main);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("curl");
    TCase *tc = tcase_create("curl");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, many_tasks_fetch_at_once, 0, 2);
    tcase_add_loop_test(tc, cancels_race_starts, 0, 2);
    tcase_add_loop_test(tc, transfers_started_while_curl_is_busy, 0, 2);
    tcase_add_loop_test(tc, transfers_cancelled_while_curl_is_busy, 0, 2);
    tcase_add_loop_test(tc, watchers_wake_while_curl_is_busy, 0, 2);
    tcase_add_loop_test(tc, keep_alive_connections_are_reused, 0, 2);
    tcase_add_loop_test(tc, connection_limit_queues_transfers, 0, 2);
    tcase_add_loop_test(tc, closed_connections_are_replaced, 0, 2);
    tcase_add_loop_test(tc, resolved_names_are_watched_through_a_duplicate, 0, 2);
    tcase_add_loop_test(tc, closed_port_is_refused, 0, 2);
    tcase_add_loop_test(tc, cancelled_transfer_leaves_nothing, 0, 2);
    tcase_add_loop_test(tc, deadline_times_out, 0, 2);
    tcase_add_loop_test(tc, cancelled_while_connecting, 0, 2);
    tcase_add_loop_test(tc, sockets_watched_without_duplicates, 0, 2);
    tcase_add_loop_test(tc, idle_connection_closed_by_the_server, 0, 2);
    tcase_add_loop_test(tc, busy_handle_and_own_callbacks, 0, 2);
    tcase_add_loop_test(tc, reply_headers, 0, 2);
    tcase_add_loop_test(tc, errors, 0, 2);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
