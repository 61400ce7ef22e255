/*
 * Suite "http": the HTTP server (weft/http.h), over loopback with weft
 * client tasks, and its connection's bytes-in, bytes-out core
 * (runtime/http_conn.h) fed directly. Socket tests run on 1 and 2
 * workers; every wait is bounded by a deadline so that a bug fails, not
 * hangs. Responses are read back with http-parser in response mode.
 *
 *  - get_answers_200_and_the_body: GET / gets 200 and "Hello, World!".
 *  - keep_alive_serves_100_requests_on_one_connection.
 *  - pipelined_requests_answered_in_order: 10 requests in one write get
 *    10 responses, in order.
 *  - pipelined_responses_leave_in_one_write: (core) 10 requests fed at
 *    once produce all 10 responses before the core asks for input.
 *  - post_bodies_reach_the_handler_intact: a 100 KiB Content-Length body
 *    and a chunked one (chunks of 1 byte to 8 KiB) come back byte-exact.
 *  - split_input_parses_the_same: (core) a chunked POST fed one byte at a
 *    time reaches the handler intact.
 *  - corpus_requests_are_rejected: (core) every file of tests/http_corpus,
 *    fed whole and one byte at a time, gets the status its name starts
 *    with, closes the connection, and never reaches the handler.
 *  - bad_requests_close_only_their_connection: every corpus file sent on
 *    its own connection gets its status and the connection's end, while a
 *    good keep-alive connection goes on being served throughout.
 *  - limits_431_and_413: oversized headers and an oversized body over
 *    sockets (the body is never sent: the 413 comes after the headers).
 *  - http10_closes_unless_keep_alive, head_has_no_body, expect_100_continue.
 *  - timeouts_close_idle_and_slow_connections: an idle connection is
 *    closed after the idle timeout; a request that stalls gets 408.
 *  - cancel_leaves_no_fd_and_no_task: cancelling the serving task while
 *    connections are idle, mid-request and inside a sleeping handler
 *    returns -ECANCELED; no descriptor (/proc/self/fd) and no task
 *    (weft_stats) of the server is left.
 *  - listen_and_errors: addresses weft_http_listen accepts and refuses;
 *    -EPERM outside a task; -EINVAL for bad options; the response
 *    builder's errors.
 *  - serve_on_an_address_answers_and_stops: weft_http_serve on
 *    "127.0.0.1:PORT" (a port free a moment before) answers a GET; when
 *    cancelled it returns -ECANCELED and the port refuses connections.
 *  - a_client_gone_before_its_response_ends_only_its_connection: clients
 *    that ask for 4 MiB and close at once make the server's writes fail
 *    with EPIPE; with SIGPIPE at its default action the process lives,
 *    and the next connection is answered.
 *
 * Every socket test also checks that the process has as many descriptors
 * open after weft_run as before (run_io_on_workers).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_conn.h"
#include "util.h"
#include "weft/http.h"

static unsigned workers_of[] = {1, 2};

#define SOON(ms) (weft_now() + (uint64_t)(ms)*WEFT_MSEC)
#define HOST "Host: t\r\n"

/* ---- the handler ------------------------------------------------------------ */

static _Atomic int handled;
static _Atomic int sleeping; /* a handler is inside /sleep */
static _Atomic int big_served; /* /big requests answered */

#define BIG_BODY (4u << 20)
static char big_body[BIG_BODY];

static int respond_text(struct weft_http_response *res, int status, const char *text)
{
    return weft_http_respond(res, status, "text/plain", text, strlen(text));
}

/* /: hello; /echo: the body back, the method in X-Method; /seq?N: N;
 * /sleep: 10 s, then ok; /header: the X-Test header's value; /big: 4 MiB
 * (more than one write of a socket takes). */
static int handler(const struct weft_http_request *req, struct weft_http_response *res,
                   void *arg)
{
    (void)arg;
    atomic_fetch_add(&handled, 1);
    if (strcmp(req->path, "/") == 0)
        return weft_http_respond(res, 200, "text/plain", "Hello, World!", 13);
    if (strcmp(req->path, "/echo") == 0) {
        CHECK(weft_http_response_header(res, "X-Method", req->method) == 0);
        return weft_http_respond(res, 200, "application/octet-stream", req->body, req->body_len);
    }
    if (strcmp(req->path, "/seq") == 0)
        return respond_text(res, 200, req->query);
    if (strcmp(req->path, "/sleep") == 0) {
        atomic_store(&sleeping, 1);
        int err = weft_sleep(10 * WEFT_SEC);
        if (err < 0)
            return err;
        return respond_text(res, 200, "slept");
    }
    if (strcmp(req->path, "/big") == 0) {
        int err = weft_http_respond(res, 200, "application/octet-stream", big_body, BIG_BODY);
        atomic_fetch_add(&big_served, err == 0);
        return err;
    }
    if (strcmp(req->path, "/header") == 0) {
        const char *v = weft_http_request_header(req, "x-test");
        return respond_text(res, 200, v ? v : "(none)");
    }
    return respond_text(res, 404, "no such page");
}

/* ---- reading responses back -------------------------------------------------- */

#define MAX_RESP 128

struct resp {
    int status;
    char *body;
    size_t body_len;
    bool close; /* Connection: close */
};

struct reader {
    http_parser p;
    struct resp r[MAX_RESP];
    int n;       /* final responses complete */
    int interim; /* 1xx responses */
    bool head;   /* the requests were HEAD: no bodies */
    char last_field[32];
};

static int rd_field(http_parser *p, const char *at, size_t len)
{
    struct reader *rd = p->data;
    size_t k = len < sizeof rd->last_field - 1 ? len : sizeof rd->last_field - 1;
    memcpy(rd->last_field, at, k);
    rd->last_field[k] = '\0';
    return 0;
}

static int rd_value(http_parser *p, const char *at, size_t len)
{
    struct reader *rd = p->data;
    if (rd->n < MAX_RESP && strcasecmp(rd->last_field, "connection") == 0 && len == 5 &&
        strncasecmp(at, "close", 5) == 0)
        rd->r[rd->n].close = true;
    return 0;
}

static int rd_headers(http_parser *p)
{
    struct reader *rd = p->data;
    return p->status_code >= 200 && rd->head ? 1 : 0;
}

static int rd_body(http_parser *p, const char *at, size_t len)
{
    struct reader *rd = p->data;
    if (rd->n >= MAX_RESP)
        return 0;
    struct resp *r = &rd->r[rd->n];
    r->body = realloc(r->body, r->body_len + len + 1);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int rd_done(http_parser *p)
{
    struct reader *rd = p->data;
    if (p->status_code < 200) {
        rd->interim++;
        return 0;
    }
    if (rd->n < MAX_RESP) {
        rd->r[rd->n].status = (int)p->status_code;
        if (!rd->r[rd->n].body)
            rd->r[rd->n].body = calloc(1, 1);
    }
    rd->n++;
    return 0;
}

static const http_parser_settings rd_settings = {
    .on_header_field = rd_field,
    .on_header_value = rd_value,
    .on_headers_complete = rd_headers,
    .on_body = rd_body,
    .on_message_complete = rd_done,
};

static void reader_init(struct reader *rd)
{
    memset(rd, 0, sizeof *rd);
    http_parser_init(&rd->p, HTTP_RESPONSE);
    rd->p.data = rd;
}

static void reader_free(struct reader *rd)
{
    for (int i = 0; i < MAX_RESP; i++)
        free(rd->r[i].body);
}

static bool reader_feed(struct reader *rd, const char *buf, size_t n)
{
    size_t used = http_parser_execute(&rd->p, &rd_settings, buf, n);
    CHECK(HTTP_PARSER_ERRNO(&rd->p) == HPE_OK && used == n);
    return HTTP_PARSER_ERRNO(&rd->p) == HPE_OK;
}

/* Reads from fd until `want` final responses (and `interim` 1xx ones) are
 * in, the peer closes, or 10 s pass in all (one deadline for every read:
 * a server trickling bytes cannot keep it reading). Returns the final
 * responses read. Task context. */
static int read_responses(int fd, struct reader *rd, int want, int interim)
{
    char buf[16384];
    uint64_t deadline = SOON(10000);
    while (rd->n < want || rd->interim < interim) {
        ssize_t n = weft_read_until(fd, buf, sizeof buf, deadline);
        if (n <= 0 || !reader_feed(rd, buf, (size_t)n))
            break;
    }
    return rd->n;
}

/* Whether the server ends the connection (EOF) within 5 s, reading and
 * checking nothing more arrives first. Task context. */
static bool ends(int fd)
{
    char buf[256];
    ssize_t n = weft_read_until(fd, buf, sizeof buf, SOON(5000));
    return n == 0;
}

/* ---- a server and its clients ---------------------------------------------- */

struct server {
    int lfd;
    uint16_t port;
    weft_task *task;
    struct weft_http_options opts;
};

static void *serve_task(void *arg)
{
    struct server *s = arg;
    return IPTR(weft_http_serve_fd(s->lfd, handler, NULL, &s->opts));
}

/* Task context. */
static void server_start(struct server *s)
{
    s->lfd = weft_http_listen("127.0.0.1:0", &s->port);
    CHECK(s->lfd >= 0 && s->port != 0);
    CHECK(weft_spawn(&s->task, serve_task, s) == 0);
}

/* Cancels the serving task and checks that it ends with -ECANCELED. */
static void server_stop(struct server *s)
{
    CHECK(weft_cancel(s->task) == 0);
    void *r = NULL;
    CHECK(weft_join(s->task, &r) == 0);
    CHECK(PINT(r) == -ECANCELED);
}

static int dial(uint16_t port)
{
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(weft_connect_until(fd, (struct sockaddr *)&a, sizeof a, SOON(5000)) == 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t n)
{
    CHECK(weft_write_all(fd, buf, n, NULL, SOON(10000)) == (ssize_t)n);
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* ---- GET, keep-alive, pipelining -------------------------------------------- */

static void *get_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1);
    CHECK(rd.r[0].status == 200 && !rd.r[0].close);
    CHECK(rd.r[0].body_len == 13 && memcmp(rd.r[0].body, "Hello, World!", 13) == 0);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(get_answers_200_and_the_body)
{
    run_io_on_workers(workers_of[_i], get_main);
}
END_TEST

static void *keepalive_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    int ok = 0;
    for (int i = 0; i < 100; i++) {
        char req[64];
        snprintf(req, sizeof req, "GET /seq?%d HTTP/1.1\r\n" HOST "\r\n", i);
        send_str(fd, req);
        struct reader rd;
        reader_init(&rd);
        if (read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200 &&
            atoi(rd.r[0].body) == i)
            ok++;
        reader_free(&rd);
    }
    CHECK(ok == 100);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(keep_alive_serves_100_requests_on_one_connection)
{
    run_io_on_workers(workers_of[_i], keepalive_main);
}
END_TEST

static void *pipeline_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    char reqs[2048];
    size_t len = 0;
    for (int i = 0; i < 10; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /seq?%d HTTP/1.1\r\n" HOST "\r\n", i);
    send_all(fd, reqs, len);
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 10, 0) == 10);
    for (int i = 0; i < 10; i++)
        CHECK(rd.r[i].status == 200 && atoi(rd.r[i].body) == i);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(pipelined_requests_answered_in_order)
{
    run_io_on_workers(workers_of[_i], pipeline_main);
}
END_TEST

/* ---- the core, without sockets --------------------------------------------------- */

static struct weft__http_conn *core_new(void)
{
    struct weft_http_options o;
    ck_assert_int_eq(weft__http_options_resolve(&o, NULL), 0);
    struct weft__http_conn *c;
    ck_assert_int_eq(weft__http_conn_new(&c, &o, handler, NULL), 0);
    return c;
}

/* Feeds data in pieces of at most `piece` bytes, processing after each,
 * and returns the last step; the output collects in *out (malloc'd). */
static enum weft__http_step core_feed(struct weft__http_conn *c, const char *data, size_t n,
                                      size_t piece, char **out, size_t *out_len)
{
    enum weft__http_step step = WEFT__HTTP_MORE;
    size_t off = 0;
    *out = NULL;
    *out_len = 0;
    for (;;) {
        size_t room = 0, k = 0;
        if (step == WEFT__HTTP_MORE) {
            char *in = weft__http_conn_inbuf(c, &room);
            k = n - off < piece ? n - off : piece;
            k = k < room ? k : room;
            memcpy(in, data + off, k);
            off += k;
        }
        step = weft__http_conn_process(c, k);
        size_t len;
        const char *o = weft__http_conn_output(c, &len);
        *out = realloc(*out, *out_len + len + 1);
        if (len)
            memcpy(*out + *out_len, o, len);
        *out_len += len;
        (*out)[*out_len] = '\0';
        weft__http_conn_output_done(c);
        if (step == WEFT__HTTP_CLOSE || (step == WEFT__HTTP_MORE && off == n))
            return step;
    }
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

START_TEST(pipelined_responses_leave_in_one_write)
{
    struct weft__http_conn *c = core_new();
    char reqs[2048];
    size_t len = 0;
    for (int i = 0; i < 10; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /seq?%d HTTP/1.1\r\n" HOST "\r\n", i);
    size_t room;
    char *in = weft__http_conn_inbuf(c, &room);
    ck_assert_uint_ge(room, len);
    memcpy(in, reqs, len);
    /* One call handles all ten and only then wants input: the driver
     * writes their responses at once. */
    ck_assert_int_eq(weft__http_conn_process(c, len), WEFT__HTTP_MORE);
    size_t out_len;
    const char *out = weft__http_conn_output(c, &out_len);
    char *copy = strndup(out, out_len);
    ck_assert_int_eq(count_of(copy, "HTTP/1.1 200 OK\r\n"), 10);
    ck_assert(strstr(copy, "\r\n\r\n0") < strstr(copy, "\r\n\r\n9"));
    free(copy);
    weft__http_conn_free(c);
}
END_TEST

START_TEST(split_input_parses_the_same)
{
    static const char req[] = "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n"
                              "\r\n3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nX-Trailer: t\r\n\r\n";
    for (size_t piece = 1; piece <= 7; piece += 3) {
        struct weft__http_conn *c = core_new();
        char *out;
        size_t out_len;
        enum weft__http_step st = core_feed(c, req, sizeof req - 1, piece, &out, &out_len);
        ck_assert_int_eq(st, WEFT__HTTP_MORE);
        ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 200 OK\r\n"));
        ck_assert_ptr_nonnull(strstr(out, "X-Method: POST\r\n"));
        ck_assert_ptr_nonnull(strstr(out, "Content-Length: 4\r\n"));
        ck_assert_str_eq(strstr(out, "\r\n\r\n") + 4, "abcd");
        free(out);
        weft__http_conn_free(c);
    }
}
END_TEST

/* ---- the corpus ------------------------------------------------------------------ */

struct corpus_case {
    char name[128];
    int status;
    char *data;
    size_t len;
};

static struct corpus_case *corpus;
static int corpus_n;

static void corpus_load(void)
{
    if (corpus)
        return;
    DIR *d = opendir(HTTP_CORPUS_DIR);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".http") != 0 || nl >= 128)
            continue;
        corpus = realloc(corpus, (size_t)(corpus_n + 1) * sizeof *corpus);
        struct corpus_case *k = &corpus[corpus_n++];
        snprintf(k->name, sizeof k->name, "%s", e->d_name);
        k->status = atoi(e->d_name);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", HTTP_CORPUS_DIR, e->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        fseek(f, 0, SEEK_END);
        k->len = (size_t)ftell(f);
        rewind(f);
        k->data = malloc(k->len);
        ck_assert_uint_eq(fread(k->data, 1, k->len, f), k->len);
        fclose(f);
    }
    closedir(d);
    ck_assert_int_ge(corpus_n, 40);
}

START_TEST(corpus_requests_are_rejected)
{
    corpus_load();
    for (int i = 0; i < corpus_n; i++) {
        struct corpus_case *k = &corpus[i];
        ck_assert_msg(k->status >= 400 && k->status <= 599, "%s: no status in its name", k->name);
        size_t pieces[2] = {k->len, 1};
        for (int p = 0; p < 2; p++) {
            atomic_store(&handled, 0);
            struct weft__http_conn *c = core_new();
            char *out;
            size_t out_len;
            enum weft__http_step st = core_feed(c, k->data, k->len, pieces[p], &out, &out_len);
            char want[32];
            snprintf(want, sizeof want, "HTTP/1.1 %d ", k->status);
            ck_assert_msg(st == WEFT__HTTP_CLOSE, "%s (pieces of %zu): not closed", k->name,
                          pieces[p]);
            ck_assert_msg(strncmp(out, want, strlen(want)) == 0,
                          "%s (pieces of %zu): got \"%.20s\"", k->name, pieces[p], out);
            ck_assert_msg(count_of(out, "HTTP/1.1 ") == 1, "%s: more than one response",
                          k->name);
            ck_assert_msg(strstr(out, "Connection: close\r\n"), "%s: no Connection: close",
                          k->name);
            ck_assert_msg(atomic_load(&handled) == 0, "%s reached the handler", k->name);
            free(out);
            weft__http_conn_free(c);
        }
    }
}
END_TEST

/* ---- bad requests over sockets, a good connection beside them ---------------- */

static _Atomic int bad_done;
static _Atomic int good_served;

static void *good_client(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    int fd = dial(port);
    uint64_t end = SOON(30000);
    for (int i = 0; i < 100000 && weft_now() < end; i++) {
        send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
        struct reader rd;
        reader_init(&rd);
        bool ok = read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200;
        reader_free(&rd);
        CHECK(ok);
        if (!ok)
            break;
        atomic_fetch_add(&good_served, 1);
        if (atomic_load(&bad_done) && i > 10)
            break;
        CHECK(weft_yield() == 0);
    }
    CHECK(weft_close(fd) == 0);
    return NULL;
}

static void *bad_main(void *arg)
{
    (void)arg;
    atomic_store(&bad_done, 0);
    atomic_store(&good_served, 0);
    struct server s = {0};
    server_start(&s);
    weft_task *good;
    CHECK(weft_spawn(&good, good_client, (void *)(uintptr_t)s.port) == 0);
    for (int i = 0; i < corpus_n; i++) {
        struct corpus_case *k = &corpus[i];
        int fd = dial(s.port);
        send_all(fd, k->data, k->len);
        struct reader rd;
        reader_init(&rd);
        int got = read_responses(fd, &rd, 1, 0);
        CHECK(got == 1 && rd.r[0].status == k->status && rd.r[0].close);
        if (got != 1 || rd.r[0].status != k->status)
            fprintf(stderr, "%s: got %d responses, status %d\n", k->name, got, rd.r[0].status);
        CHECK(ends(fd));
        reader_free(&rd);
        CHECK(weft_close(fd) == 0);
    }
    atomic_store(&bad_done, 1);
    CHECK(weft_join(good, NULL) == 0);
    CHECK(atomic_load(&good_served) > 10);
    server_stop(&s);
    return NULL;
}

START_TEST(bad_requests_close_only_their_connection)
{
    corpus_load();
    run_io_on_workers(workers_of[_i], bad_main);
}
END_TEST

/* ---- bodies ---------------------------------------------------------------------- */

#define BODY (100u * 1024)

static void *post_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    unsigned char *body = malloc(BODY);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (unsigned char)(i * 131 + 7);
    int fd = dial(s.port);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /echo HTTP/1.1\r\n" HOST "Content-Length: %u\r\n\r\n", BODY);
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, BODY);
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1);
    CHECK(rd.r[0].status == 200 && rd.r[0].body_len == BODY &&
          memcmp(rd.r[0].body, body, BODY) == 0);
    reader_free(&rd);
    /* The same bytes chunked, in chunks of 1, 2, 4, ... 8192 bytes, on the
     * same connection. */
    send_str(fd, "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n");
    size_t off = 0;
    for (size_t size = 1; off < BODY; size = size < 8192 ? size * 2 : 1) {
        size_t k = BODY - off < size ? BODY - off : size;
        char line[32];
        int ll = snprintf(line, sizeof line, "%zx\r\n", k);
        send_all(fd, line, (size_t)ll);
        send_all(fd, body + off, k);
        send_str(fd, "\r\n");
        off += k;
    }
    send_str(fd, "0\r\n\r\n");
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1);
    CHECK(rd.r[0].status == 200 && rd.r[0].body_len == BODY &&
          memcmp(rd.r[0].body, body, BODY) == 0);
    reader_free(&rd);
    free(body);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(post_bodies_reach_the_handler_intact)
{
    run_io_on_workers(workers_of[_i], post_main);
}
END_TEST

/* ---- limits ---------------------------------------------------------------------- */

/* Sends req on a new connection and checks the one response's status and
 * the connection's end. */
static void expect_status(uint16_t port, const char *req, size_t len, int status)
{
    int fd = dial(port);
    send_all(fd, req, len);
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1);
    CHECK(rd.r[0].status == status);
    CHECK(ends(fd));
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
}

static void *limits_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    s.opts.max_header_bytes = 4096;
    s.opts.max_body_bytes = 65536;
    server_start(&s);
    size_t cap = 70000;
    char *big = malloc(cap);
    int n = snprintf(big, cap, "GET / HTTP/1.1\r\n" HOST "X-Big: %05000d\r\n\r\n", 0);
    expect_status(s.port, big, (size_t)n, 431);
    n = snprintf(big, cap, "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 65537\r\n\r\n");
    expect_status(s.port, big, (size_t)n, 413); /* before any of the body is sent */
    n = snprintf(big, cap,
                 "POST /echo HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
                 "8000\r\n%032768d\r\n8001\r\n",
                 0);
    expect_status(s.port, big, (size_t)n, 413); /* the second chunk passes the limit */
    /* Right at the limits is fine. */
    n = snprintf(big, cap, "GET /header HTTP/1.1\r\n" HOST "X-Test: %0*d\r\n\r\n",
                 4096 - 4 - 7 - 4 - 4 - 1 - 6, 0);
    int fd = dial(s.port);
    send_all(fd, big, (size_t)n);
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    free(big);
    server_stop(&s);
    return NULL;
}

START_TEST(limits_431_and_413)
{
    run_io_on_workers(workers_of[_i], limits_main);
}
END_TEST

/* ---- HTTP/1.0, HEAD, 100-continue ----------------------------------------------------- */

static void *http10_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    send_str(fd, "GET / HTTP/1.0\r\n\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200 && rd.r[0].close);
    CHECK(ends(fd));
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    /* With keep-alive asked for, two requests on one connection. */
    fd = dial(s.port);
    for (int i = 0; i < 2; i++) {
        send_str(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        reader_init(&rd);
        CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200 && !rd.r[0].close);
        reader_free(&rd);
    }
    CHECK(weft_close(fd) == 0);
    /* HTTP/1.1 with Connection: close. */
    fd = dial(s.port);
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n");
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200 && rd.r[0].close);
    CHECK(ends(fd));
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(http10_closes_unless_keep_alive)
{
    run_io_on_workers(workers_of[_i], http10_main);
}
END_TEST

static void *head_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    send_str(fd, "HEAD / HTTP/1.1\r\n" HOST "\r\nHEAD /nowhere HTTP/1.1\r\n" HOST "\r\n");
    struct reader rd;
    reader_init(&rd);
    rd.head = true;
    CHECK(read_responses(fd, &rd, 2, 0) == 2);
    CHECK(rd.r[0].status == 200 && rd.r[0].body_len == 0);
    CHECK(rd.r[1].status == 404 && rd.r[1].body_len == 0);
    reader_free(&rd);
    /* Nothing followed the two heads: a GET's answer comes next. */
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].body_len == 13);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(head_has_no_body)
{
    run_io_on_workers(workers_of[_i], head_main);
}
END_TEST

static void *continue_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fd = dial(s.port);
    send_str(fd, "POST /echo HTTP/1.1\r\n" HOST "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 0, 1) == 0 && rd.interim == 1);
    send_str(fd, "hello");
    CHECK(read_responses(fd, &rd, 1, 1) == 1);
    CHECK(rd.r[0].status == 200 && strcmp(rd.r[0].body, "hello") == 0);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(expect_100_continue)
{
    run_io_on_workers(workers_of[_i], continue_main);
}
END_TEST

/* ---- timeouts -------------------------------------------------------------------- */

static void *timeouts_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    s.opts.idle_timeout_ns = 200 * WEFT_MSEC;
    s.opts.request_timeout_ns = 300 * WEFT_MSEC;
    server_start(&s);
    /* Connected, silent: closed after the idle timeout. */
    int fd = dial(s.port);
    uint64_t t0 = weft_now();
    CHECK(ends(fd));
    uint64_t took = weft_now() - t0;
    CHECK(took >= 150 * WEFT_MSEC && took < 3 * WEFT_SEC);
    CHECK(weft_close(fd) == 0);
    /* A request, then silence: the same, counted from the response. */
    fd = dial(s.port);
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1);
    reader_free(&rd);
    CHECK(ends(fd));
    CHECK(weft_close(fd) == 0);
    /* Half a request, trickled: 408, then the end. */
    fd = dial(s.port);
    t0 = weft_now();
    send_str(fd, "GET / HTTP/1.1\r\nHo");
    for (int i = 0; i < 3; i++) {
        CHECK(weft_sleep(50 * WEFT_MSEC) == 0);
        send_str(fd, "o");
    }
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 408);
    took = weft_now() - t0;
    CHECK(took >= 250 * WEFT_MSEC && took < 3 * WEFT_SEC);
    CHECK(ends(fd));
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(timeouts_close_idle_and_slow_connections)
{
    run_io_on_workers(workers_of[_i], timeouts_main);
}
END_TEST

/* ---- stopping ---------------------------------------------------------------------- */

static void *cancel_main(void *arg)
{
    (void)arg;
    atomic_store(&sleeping, 0);
    int fds_before = count_fds();
    struct weft_stats st;
    CHECK(weft_stats_get(&st) == 0);
    uint64_t live_before = st.tasks_live;
    struct server s = {0};
    server_start(&s);
    int fd[5];
    for (int i = 0; i < 5; i++)
        fd[i] = dial(s.port);
    /* 0, 1: idle after a request; 2: connected, nothing sent; 3: half a
     * request; 4: inside a handler that sleeps. */
    for (int i = 0; i < 2; i++) {
        send_str(fd[i], "GET / HTTP/1.1\r\n" HOST "\r\n");
        struct reader rd;
        reader_init(&rd);
        CHECK(read_responses(fd[i], &rd, 1, 0) == 1);
        reader_free(&rd);
    }
    send_str(fd[3], "GET / HTTP/1.1\r\nHost:");
    send_str(fd[4], "GET /sleep HTTP/1.1\r\n" HOST "\r\n");
    for (int i = 0; i < 5000 && !atomic_load(&sleeping); i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&sleeping));
    uint64_t t0 = weft_now();
    server_stop(&s);
    CHECK(weft_now() - t0 < 2 * WEFT_SEC); /* nobody waited for a timeout */
    for (int i = 0; i < 5; i++) {
        char buf[256];
        ssize_t n = weft_read_until(fd[i], buf, sizeof buf, SOON(5000));
        CHECK(n == 0 || n == -ECONNRESET);
        CHECK(weft_close(fd[i]) == 0);
    }
    CHECK(count_fds() == fds_before);
    /* Every connection task has finished, or is finishing: a group's
     * member wakes the group's waiter as the last thing its entry does,
     * and its exit may still be under way on the other worker. Bounded. */
    for (int i = 0; i < 5000; i++) {
        CHECK(weft_stats_get(&st) == 0);
        if (st.tasks_live == live_before)
            break;
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    }
    CHECK(st.tasks_live == live_before);
    /* The cancellation was used up: this task's waits work as before. */
    CHECK(weft_sleep(WEFT_MSEC) == 0);
    return NULL;
}

START_TEST(cancel_leaves_no_fd_and_no_task)
{
    run_io_on_workers(workers_of[_i], cancel_main);
}
END_TEST

/* ---- weft_http_serve on an address ------------------------------------------------ */

struct addr_server {
    char addr[32];
    weft_task *task;
    _Atomic int done;
    int result;
};

static void *serve_addr_task(void *arg)
{
    struct addr_server *s = arg;
    s->result = weft_http_serve(s->addr, handler, NULL);
    atomic_store(&s->done, 1);
    return NULL;
}

/* A loopback port that was free a moment ago (bound to port 0, read,
 * closed: never connected, so nothing lingers on it). */
static uint16_t free_port(void)
{
    uint16_t port = 0;
    int fd = weft_http_listen("127.0.0.1:0", &port);
    CHECK(fd >= 0 && port != 0);
    CHECK(weft_close(fd) == 0);
    return port;
}

/* weft_http_serve("127.0.0.1:PORT") listens there and answers; cancelled,
 * it returns -ECANCELED and the port is closed. The port, free when
 * chosen, may be taken by another process before the server binds it:
 * then the server returns -EADDRINUSE and another port is tried (5 at
 * most). The client connects only once the server is waiting in accept
 * (the io_waits count moved), so it cannot reach someone else's server. */
static void *serve_addr_main(void *arg)
{
    (void)arg;
    atomic_store(&handled, 0);
    bool served = false;
    for (int attempt = 0; attempt < 5 && !served; attempt++) {
        struct addr_server s = {0};
        uint16_t port = free_port();
        snprintf(s.addr, sizeof s.addr, "127.0.0.1:%u", (unsigned)port);
        struct weft_stats st;
        CHECK(weft_stats_get(&st) == 0);
        uint64_t waits = st.io_waits;
        CHECK(weft_spawn(&s.task, serve_addr_task, &s) == 0);
        for (int i = 0; i < 5000 && !atomic_load(&s.done); i++) {
            CHECK(weft_stats_get(&st) == 0);
            if (st.io_waits > waits)
                break;
            CHECK(weft_sleep(WEFT_MSEC) == 0);
        }
        if (atomic_load(&s.done)) {
            CHECK(weft_join(s.task, NULL) == 0);
            CHECK(s.result == -EADDRINUSE);
            continue;
        }
        CHECK(st.io_waits > waits);
        int fd = dial(port);
        send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
        struct reader rd;
        reader_init(&rd);
        CHECK(read_responses(fd, &rd, 1, 0) == 1);
        CHECK(rd.r[0].status == 200 && rd.r[0].body_len == 13 &&
              memcmp(rd.r[0].body, "Hello, World!", 13) == 0);
        reader_free(&rd);
        CHECK(weft_close(fd) == 0);
        CHECK(atomic_load(&handled) == 1);
        CHECK(weft_cancel(s.task) == 0);
        CHECK(weft_join(s.task, NULL) == 0);
        CHECK(atomic_load(&s.done) && s.result == -ECANCELED);
        /* Its listener is closed: the port refuses. */
        int c = weft_socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK(weft_connect_until(c, (struct sockaddr *)&a, sizeof a, SOON(5000)) == -ECONNREFUSED);
        CHECK(weft_close(c) == 0);
        served = true;
    }
    CHECK(served);
    return NULL;
}

START_TEST(serve_on_an_address_answers_and_stops)
{
    run_io_on_workers(workers_of[_i], serve_addr_main);
}
END_TEST

/* ---- a client gone before its response --------------------------------------------- */

/* A client asks for /big (4 MiB) and closes at once, reading nothing. The
 * server's first write goes out to a closed socket, whose reset makes the
 * next write fail with EPIPE (the server had seen the client's FIN, so
 * the reset is reported as EPIPE, not ECONNRESET): with write(2), that is
 * a SIGPIPE, and SIGPIPE's default action ends the whole process. Here
 * SIGPIPE is at its default action, so a SIGPIPE fails the test; the
 * server must end that connection only, and serve the next one. */
static void *gone_main(void *arg)
{
    (void)arg;
    struct server s = {0};
    server_start(&s);
    int fds = count_fds();
    for (int i = 0; i < 3; i++) {
        int fd = dial(s.port);
        send_str(fd, "GET /big HTTP/1.1\r\n" HOST "\r\n");
        CHECK(weft_close(fd) == 0);
    }
    /* Each of the three is answered, and its connection closed once the
     * writes fail (its descriptor with it), before the server is stopped:
     * a stop would end a write still waiting. Bounded: 10 s. */
    for (int i = 0; i < 10000 && (atomic_load(&big_served) < 3 || count_fds() != fds); i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&big_served) == 3);
    CHECK(count_fds() == fds);
    /* The server goes on: a new connection is answered. */
    int fd = dial(s.port);
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 200);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    server_stop(&s);
    return NULL;
}

START_TEST(a_client_gone_before_its_response_ends_only_its_connection)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    atomic_store(&big_served, 0);
    run_io_on_workers(workers_of[_i], gone_main);
}
END_TEST

/* ---- listen, and errors ------------------------------------------------------------ */

static int noop(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    CHECK(weft_http_respond(NULL, 200, NULL, NULL, 0) == -EINVAL);
    CHECK(weft_http_respond(res, 199, NULL, NULL, 0) == -EINVAL);
    CHECK(weft_http_respond(res, 600, NULL, NULL, 0) == -EINVAL);
    CHECK(weft_http_respond(res, 200, NULL, NULL, 1) == -EINVAL);
    CHECK(weft_http_respond(res, 204, NULL, "x", 1) == -EINVAL);
    CHECK(weft_http_respond(res, 200, "text/plain\r\nX: y", "x", 1) == -EINVAL);
    CHECK(weft_http_response_header(res, "Bad Name", "v") == -EINVAL);
    CHECK(weft_http_response_header(res, "", "v") == -EINVAL);
    CHECK(weft_http_response_header(res, "X-A", "a\r\nb") == -EINVAL);
    CHECK(weft_http_response_header(res, "content-length", "5") == -EINVAL);
    CHECK(weft_http_response_header(res, "Connection", "close") == -EINVAL);
    CHECK(weft_http_response_header(res, "X-A", "fine") == 0);
    CHECK(weft_http_respond(res, 204, NULL, NULL, 0) == 0);
    CHECK(weft_http_respond(res, 200, NULL, NULL, 0) == -EALREADY);
    CHECK(weft_http_response_header(res, "X-B", "late") == -EALREADY);
    return 0;
}

static void *errors_main(void *arg)
{
    (void)arg;
    uint16_t port;
    const char *bad[] = {NULL, "", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                         "127.0.0.1:80a", "300.0.0.1:80", "[::1:80", "example.com:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(weft_http_listen(bad[i], &port) == -EINVAL);
    const char *good[] = {"127.0.0.1:0", "localhost:0", ":0", "[::1]:0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        port = 0;
        int fd = weft_http_listen(good[i], &port);
        if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
            continue; /* no IPv6 here */
        CHECK(fd >= 0 && port != 0);
        CHECK(weft_close(fd) == 0);
    }
    /* Bad options: -EINVAL, and the listener is closed all the same. */
    int fds = count_fds();
    struct weft_http_options o = {.max_header_bytes = 100};
    CHECK(weft_http_serve_fd(weft_http_listen("127.0.0.1:0", NULL), handler, NULL, &o) ==
          -EINVAL);
    CHECK(weft_http_serve_fd(weft_http_listen("127.0.0.1:0", NULL), NULL, NULL, NULL) ==
          -EINVAL);
    CHECK(weft_http_serve_fd(-1, handler, NULL, NULL) == -EINVAL);
    CHECK(count_fds() == fds);
    /* A socket that is not listening: accept's error, after cleaning up. */
    int notl = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(weft_http_serve_fd(notl, handler, NULL, NULL) == -EINVAL);
    CHECK(count_fds() == fds);
    return NULL;
}

static void *builder_serve(void *arg)
{
    return IPTR(weft_http_serve_fd((int)PINT(arg), noop, NULL, NULL));
}

static void *builder_main(void *arg)
{
    (void)arg;
    uint16_t port;
    int lfd = weft_http_listen("127.0.0.1:0", &port);
    weft_task *t;
    CHECK(weft_spawn(&t, builder_serve, IPTR(lfd)) == 0);
    int fd = dial(port);
    send_str(fd, "GET / HTTP/1.1\r\n" HOST "\r\n");
    struct reader rd;
    reader_init(&rd);
    CHECK(read_responses(fd, &rd, 1, 0) == 1 && rd.r[0].status == 204);
    reader_free(&rd);
    CHECK(weft_close(fd) == 0);
    CHECK(weft_cancel(t) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0 && PINT(r) == -ECANCELED);
    return NULL;
}

START_TEST(listen_and_errors)
{
    struct weft_http_options o = {0};
    ck_assert_int_eq(weft_http_serve_fd(-1, handler, NULL, &o), -EPERM);
    ck_assert_int_eq(weft_http_serve("127.0.0.1:0", handler, NULL), -EPERM);
    run_io_on_workers(workers_of[_i], errors_main);
    run_io_on_workers(workers_of[_i], builder_main);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 120);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, get_answers_200_and_the_body, 0, n);
    tcase_add_loop_test(tc, keep_alive_serves_100_requests_on_one_connection, 0, n);
    tcase_add_loop_test(tc, pipelined_requests_answered_in_order, 0, n);
    tcase_add_test(tc, pipelined_responses_leave_in_one_write);
    tcase_add_test(tc, split_input_parses_the_same);
    tcase_add_test(tc, corpus_requests_are_rejected);
    tcase_add_loop_test(tc, bad_requests_close_only_their_connection, 0, n);
    tcase_add_loop_test(tc, post_bodies_reach_the_handler_intact, 0, n);
    tcase_add_loop_test(tc, limits_431_and_413, 0, n);
    tcase_add_loop_test(tc, http10_closes_unless_keep_alive, 0, n);
    tcase_add_loop_test(tc, head_has_no_body, 0, n);
    tcase_add_loop_test(tc, expect_100_continue, 0, n);
    tcase_add_loop_test(tc, timeouts_close_idle_and_slow_connections, 0, n);
    tcase_add_loop_test(tc, cancel_leaves_no_fd_and_no_task, 0, n);
    tcase_add_loop_test(tc, listen_and_errors, 0, n);
    tcase_add_loop_test(tc, serve_on_an_address_answers_and_stops, 0, n);
    tcase_add_loop_test(tc, a_client_gone_before_its_response_ends_only_its_connection, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
