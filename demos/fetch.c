/*
 * fetch: the job weft was made for. N GETs of BASE/posts/{id}, each its own
 * task, at most C of them in flight (a semaphore), every reply checked
 * (status 200, `"id":{id},` in the body); then the same N one at a time,
 * and the ratio of the two times. The post weft comes from did this with
 * aiohttp (1.61 s) against requests (10.41 s).
 *
 *     async def fetch(session, url):
 *         async with sem, session.get(url) as res:
 *             assert res.status == 200
 *             return await res.text()
 *
 *     async def main():
 *         await asyncio.gather(*[fetch(session, url) for url in urls])
 *
 *   fetch [-n N] [-c C] [-d DELAY_MS] [--url BASE] [--no-baseline]
 *         [--max-seconds S]
 *   fetch --serve HOST:PORT [-d DELAY_MS] [--lifetime S]
 *
 * Without --url it starts its own server on 127.0.0.1 (a free port) in the
 * same runtime, answering GET /posts/{id} with a 300-byte JSON body after
 * DELAY_MS (default 50), so that it runs offline; --serve runs that server
 * alone, for a client in another process (bench/w8_fetch.sh). The last
 * line is for scripts: `fetch n=N c=C bad=K fetch_s=T [seq_s=T]`. Exit
 * status 1 if any reply was wrong.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/curl.h>

#include "weft.h"

struct opts {
    unsigned n, c, delay_ms, max_seconds, lifetime;
    const char *url;   /* BASE; NULL: the local server */
    const char *serve; /* HOST:PORT: run the server alone */
    int baseline;
};

/* ---- the local server ------------------------------------------------------ */

/* A minimal HTTP/1.1 responder for the one route, written with weft's
 * socket calls until weft's own HTTP server is there to replace it: GET
 * /posts/{id} answers after the delay with the body below (the W8 peer
 * server's), keep-alive, requests taken in order (pipelining). Anything
 * else gets 404, a malformed request or one with a body 400, a head over
 * 4 KiB 431, and the connection closes after those. */

#define BODY_LEN 300
#define HEAD_MAX 4096

struct server {
    int lfd;
    unsigned delay_ms;
    weft_task *acceptor;
    weft_mutex *mu;    /* guards conns */
    struct conn *conns;
};

struct conn {
    struct server *srv;
    int fd;
    struct conn *next, *prev;
};

static const char filler[] = "quia et suscipit suscipit recusandae consequuntur expedita et cum "
                             "reprehenderit molestiae ut ut quas totam nostrum rerum est autem "
                             "sunt rem eveniet architecto quia et suscipit suscipit recusandae "
                             "consequuntur expedita et cum reprehenderit molestiae ut ut quas "
                             "totam nostrum rerum est autem sunt rem eveniet architecto";

/* The JSON body for id, exactly BODY_LEN bytes. */
static void post_body(char out[BODY_LEN + 1], unsigned long id)
{
    int n = snprintf(out, BODY_LEN + 1,
                     "{\"userId\":%lu,\"id\":%lu,\"title\":\"sunt aut facere repellat provident "
                     "occaecati excepturi optio reprehenderit\",\"body\":\"",
                     (id - 1) / 10 + 1, id);
    size_t fill = BODY_LEN - (size_t)n - 2;
    memcpy(out + n, filler, fill);
    memcpy(out + n + fill, "\"}", 3);
}

/* The value of header `name` in the head [p, end), or NULL. */
static const char *head_value(const char *p, const char *end, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = p; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break;
        line = nl + 1;
        if ((size_t)(end - line) > len && line[len] == ':' && strncasecmp(line, name, len) == 0) {
            const char *v = line + len + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
    }
    return NULL;
}

/* Head and body in one write: a second small write would wait for the
 * client's delayed ACK of the first (Nagle). */
static int reply(int fd, const char *status, const char *body, size_t len, int keep)
{
    char msg[256 + BODY_LEN];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, len, keep ? "" : "Connection: close\r\n");
    memcpy(msg + n, body, len);
    ssize_t w = weft_write_all(fd, msg, (size_t)n + len, NULL, WEFT_NEVER);
    return w < 0 ? (int)w : keep;
}

/* Answers the request whose head is [p, end) (without the blank line).
 * Returns 1 to keep the connection, 0 to close it, or an error. */
static int answer(struct server *srv, int fd, const char *p, const char *end)
{
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(end - sp - 1)) : NULL;
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (!sp || !sp2 || !cr || sp2 > cr || cr - sp2 != 9 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return reply(fd, "400 Bad Request", "", 0, 0);
    if (head_value(p, end, "content-length") || head_value(p, end, "transfer-encoding"))
        return reply(fd, "400 Bad Request", "", 0, 0);
    const char *conn = head_value(p, end, "connection");
    int keep = sp2[8] == '1' ? !(conn && strncasecmp(conn, "close", 5) == 0)
                             : (conn && strncasecmp(conn, "keep-alive", 10) == 0);
    char *idend = NULL;
    unsigned long id = 0;
    if (sp - p == 3 && strncmp(p, "GET", 3) == 0 && sp2 - sp > 7 &&
        strncmp(sp + 1, "/posts/", 7) == 0 && sp[8] >= '1' && sp[8] <= '9')
        id = strtoul(sp + 8, &idend, 10);
    if (id == 0 || idend != sp2 || id > 1000000000)
        return reply(fd, "404 Not Found", "", 0, keep);
    if (srv->delay_ms) {
        int err = weft_sleep((uint64_t)srv->delay_ms * WEFT_MSEC);
        if (err < 0)
            return err;
    }
    char body[BODY_LEN + 1];
    post_body(body, id);
    return reply(fd, "200 OK", body, BODY_LEN, keep);
}

/* One connection: requests in order until the client closes it. */
static void *serve_conn(void *arg)
{
    struct conn *cn = arg;
    char buf[HEAD_MAX];
    size_t have = 0;
    for (;;) {
        char *end = have >= 4 ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
        if (end) {
            if (answer(cn->srv, cn->fd, buf, end + 2) <= 0)
                break;
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, end + 4, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof buf) {
            reply(cn->fd, "431 Request Header Fields Too Large", "", 0, 0);
            break;
        }
        ssize_t r = weft_read(cn->fd, buf + have, sizeof buf - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    struct server *srv = cn->srv;
    weft_mutex_lock(srv->mu);
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        srv->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    weft_mutex_unlock(srv->mu);
    weft_close(cn->fd);
    free(cn);
    return NULL;
}

/* Accepts until the listening socket is closed. */
static void *serve_accept(void *arg)
{
    struct server *srv = arg;
    for (;;) {
        int fd = weft_accept(srv->lfd, NULL, NULL);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS) {
            weft_sleep(10 * WEFT_MSEC); /* out of something: let connections end */
            continue;
        }
        if (fd < 0)
            return NULL; /* closed: the server stops */
        struct conn *cn = calloc(1, sizeof *cn);
        weft_task *t;
        if (!cn || weft_mutex_lock(srv->mu) < 0) {
            free(cn);
            weft_close(fd);
            continue;
        }
        *cn = (struct conn){.srv = srv, .fd = fd, .next = srv->conns};
        if (weft_spawn(&t, serve_conn, cn) < 0) {
            weft_mutex_unlock(srv->mu);
            weft_close(fd);
            free(cn);
            continue;
        }
        if (srv->conns)
            srv->conns->prev = cn;
        srv->conns = cn;
        weft_mutex_unlock(srv->mu);
        weft_detach(t);
    }
}

/* Listens on host:port (port 0: a free one, written back). */
static int server_start(struct server *srv, const char *host, unsigned *port, unsigned delay_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -EINVAL;
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    socklen_t len = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int err = -errno;
        weft_close(fd);
        return err;
    }
    *port = ntohs(a.sin_port);
    *srv = (struct server){.lfd = fd, .delay_ms = delay_ms};
    int err = weft_mutex_new(&srv->mu);
    if (err == 0 && (err = weft_spawn(&srv->acceptor, serve_accept, srv)) < 0)
        weft_mutex_free(srv->mu);
    if (err < 0)
        weft_close(fd);
    return err;
}

/* Stops accepting and ends every connection (their tasks see the end of
 * the stream and close them), so that the run can end. */
static void server_stop(struct server *srv)
{
    weft_close(srv->lfd);
    weft_join(srv->acceptor, NULL);
    weft_mutex_lock(srv->mu);
    for (struct conn *cn = srv->conns; cn; cn = cn->next)
        shutdown(cn->fd, SHUT_RDWR);
    weft_mutex_unlock(srv->mu);
    /* The connection tasks unlink themselves; wait until all have. */
    for (;;) {
        weft_mutex_lock(srv->mu);
        int left = srv->conns != NULL;
        weft_mutex_unlock(srv->mu);
        if (!left)
            break;
        weft_sleep(WEFT_MSEC);
    }
    weft_mutex_free(srv->mu);
}

/* ---- the client --------------------------------------------------------------- */

struct run {
    const char *base;
    weft_sem *sem;
    uint64_t deadline;
    _Atomic unsigned bad;
};

struct req {
    struct run *run;
    unsigned id;
};

/* One GET, checked. Returns whether the reply was right. */
static bool get_post(struct run *run, unsigned id)
{
    char url[512], want[32];
    snprintf(url, sizeof url, "%s/posts/%u", run->base, id);
    snprintf(want, sizeof want, "\"id\":%u,", id);
    struct weft_http_reply r;
    int err = weft_http_get_until(url, run->deadline, &r);
    bool ok = err == 0 && r.status == 200 && strstr(r.body, want) != NULL;
    if (!ok && atomic_fetch_add(&run->bad, 1) == 0) {
        if (err < 0)
            fprintf(stderr, "fetch: %s: %s (%s)\n", url, weft_strerror(err),
                    curl_easy_strerror(r.code));
        else
            fprintf(stderr, "fetch: %s: status %ld, body %.60s\n", url, r.status, r.body);
    }
    weft_http_reply_destroy(&r);
    return ok;
}

static void *fetch_task(void *arg)
{
    struct req *q = arg;
    get_post(q->run, q->id);
    weft_sem_release(q->run->sem);
    return NULL;
}

/* All n at once, at most c in flight; the seconds it took. */
static double fetch_all(struct run *run, unsigned n, unsigned c)
{
    struct req *reqs = calloc(n, sizeof *reqs);
    weft_group *g;
    if (!reqs || weft_sem_new(&run->sem, c) < 0 || weft_group_new(&g) < 0) {
        fprintf(stderr, "fetch: out of memory\n");
        exit(2);
    }
    uint64_t t0 = weft_now();
    for (unsigned i = 0; i < n; i++) {
        reqs[i] = (struct req){.run = run, .id = i + 1};
        if (weft_sem_acquire(run->sem) < 0 || weft_group_spawn(g, fetch_task, &reqs[i]) < 0) {
            atomic_fetch_add(&run->bad, n - i);
            break;
        }
    }
    weft_group_wait(g);
    double s = (double)(weft_now() - t0) / 1e9;
    weft_group_free(g);
    weft_sem_free(run->sem);
    free(reqs);
    return s;
}

/* The baseline: one at a time, in this task. */
static double fetch_each(struct run *run, unsigned n)
{
    uint64_t t0 = weft_now();
    for (unsigned i = 0; i < n; i++)
        get_post(run, i + 1);
    return (double)(weft_now() - t0) / 1e9;
}

static void *client_main(void *arg)
{
    struct opts *o = arg;
    struct server srv;
    char base[64];
    const char *where = "";
    if (!o->url) {
        unsigned port = 0;
        int err = server_start(&srv, "127.0.0.1", &port, o->delay_ms);
        if (err < 0) {
            fprintf(stderr, "fetch: local server: %s\n", weft_strerror(err));
            return WEFT_ERR(err);
        }
        snprintf(base, sizeof base, "http://127.0.0.1:%u", port);
        o->url = base;
        where = " (local server)";
    }
    printf("fetch: %u GETs of %s/posts/{id}%s, at most %u at a time\n", o->n, o->url, where, o->c);
    struct run conc = {.base = o->url, .deadline = weft_now() + o->max_seconds * WEFT_SEC};
    double t = fetch_all(&conc, o->n, o->c);
    printf("  at once:        %8.4f s  %u ok, %u bad\n", t, o->n - conc.bad, conc.bad);
    struct run seq = {.base = o->url, .deadline = weft_now() + o->max_seconds * WEFT_SEC};
    double ts = 0;
    if (o->baseline) {
        ts = fetch_each(&seq, o->n);
        printf("  one at a time:  %8.4f s  %u ok, %u bad\n", ts, o->n - seq.bad, seq.bad);
        printf("  at once is %.1fx faster\n", ts / t);
    }
    if (where[0])
        server_stop(&srv);
    printf("fetch n=%u c=%u bad=%u fetch_s=%.4f", o->n, o->c, conc.bad + seq.bad, t);
    if (o->baseline)
        printf(" seq_s=%.4f", ts);
    printf("\n");
    return conc.bad + seq.bad ? WEFT_ERR(-EPROTO) : NULL;
}

static void *server_main(void *arg)
{
    struct opts *o = arg;
    char host[64];
    const char *colon = strrchr(o->serve, ':');
    if (!colon || (size_t)(colon - o->serve) >= sizeof host) {
        fprintf(stderr, "fetch: --serve %s: not HOST:PORT\n", o->serve);
        return WEFT_ERR(-EINVAL);
    }
    memcpy(host, o->serve, (size_t)(colon - o->serve));
    host[colon - o->serve] = '\0';
    unsigned port = (unsigned)strtoul(colon + 1, NULL, 10);
    struct server srv;
    int err = server_start(&srv, host, &port, o->delay_ms);
    if (err < 0) {
        fprintf(stderr, "fetch: --serve %s: %s\n", o->serve, weft_strerror(err));
        return WEFT_ERR(err);
    }
    fprintf(stderr, "fetch: serving http://%s:%u/posts/{id}, delay %u ms, for %u s\n", host, port,
            o->delay_ms, o->lifetime);
    weft_sleep((uint64_t)o->lifetime * WEFT_SEC);
    server_stop(&srv);
    return NULL;
}

static unsigned number(const char *opt, const char *v, unsigned min)
{
    char *end;
    unsigned long x = v ? strtoul(v, &end, 10) : 0;
    if (!v || *end || x < min || x > 100000000) {
        fprintf(stderr, "fetch: %s %s: not a number >= %u\n", opt, v ? v : "", min);
        exit(2);
    }
    return (unsigned)x;
}

static void usage(void)
{
    fprintf(stderr, "usage: fetch [-n N] [-c C] [-d DELAY_MS] [--url BASE] [--no-baseline] "
                    "[--max-seconds S]\n"
                    "       fetch --serve HOST:PORT [-d DELAY_MS] [--lifetime S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.n = 100, .c = 100, .delay_ms = 50, .max_seconds = 300, .lifetime = 3600,
                     .baseline = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-n"))
            o.n = number(a, v, 1), i++;
        else if (!strcmp(a, "-c"))
            o.c = number(a, v, 1), i++;
        else if (!strcmp(a, "-d"))
            o.delay_ms = number(a, v, 0), i++;
        else if (!strcmp(a, "--max-seconds"))
            o.max_seconds = number(a, v, 1), i++;
        else if (!strcmp(a, "--lifetime"))
            o.lifetime = number(a, v, 1), i++;
        else if (!strcmp(a, "--url") && v)
            o.url = v, i++;
        else if (!strcmp(a, "--serve") && v)
            o.serve = v, i++;
        else if (!strcmp(a, "--no-baseline"))
            o.baseline = 0;
        else
            usage();
    }
    if (o.url) {
        size_t len = strlen(o.url);
        while (len && o.url[len - 1] == '/')
            len--;
        ((char *)o.url)[len] = '\0';
    }
    void *result;
    int err = weft_run(NULL, o.serve ? server_main : client_main, &o, &result);
    if (err < 0) {
        fprintf(stderr, "fetch: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return weft_err_of(result) ? 1 : 0;
}
