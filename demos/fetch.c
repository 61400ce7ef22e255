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
#include <weft/http.h>

#include "weft.h"

struct opts {
    unsigned n, c, delay_ms, max_seconds, lifetime;
    const char *url;   /* BASE; NULL: the local server */
    const char *serve; /* HOST:PORT: run the server alone */
    int baseline;
};

/* ---- the local server ------------------------------------------------------ */

/* weft's own HTTP server (weft/http.h), one route: GET /posts/{id} answers
 * after the delay with the body below (the W8 peer server's); anything else
 * gets 404. Keep-alive, pipelining and malformed requests are the
 * server's business. */

#define BODY_LEN 300

struct server {
    int lfd;
    unsigned delay_ms;
    weft_task *task;
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

static int posts(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    struct server *srv = arg;
    char *end;
    unsigned long id = 0;
    if (strcmp(req->method, "GET") == 0 && strncmp(req->path, "/posts/", 7) == 0)
        id = strtoul(req->path + 7, &end, 10);
    if (id == 0 || *end)
        return weft_http_respond(res, 404, "text/plain", "no such post\n", 13);
    if (srv->delay_ms) {
        int err = weft_sleep((uint64_t)srv->delay_ms * WEFT_MSEC);
        if (err < 0)
            return err; /* the server is stopping */
    }
    char body[BODY_LEN + 1];
    post_body(body, id);
    return weft_http_respond(res, 200, "application/json", body, BODY_LEN);
}

static void *serve(void *arg)
{
    struct server *srv = arg;
    return WEFT_ERR(weft_http_serve_fd(srv->lfd, posts, srv, NULL));
}

/* Listens on host:port (port 0: a free one, written back) and serves in a
 * task of its own. */
static int server_start(struct server *srv, const char *host, unsigned *port, unsigned delay_ms)
{
    char addr[96];
    snprintf(addr, sizeof addr, "%s:%u", host, *port);
    uint16_t p;
    int fd = weft_http_listen(addr, &p);
    if (fd < 0)
        return fd;
    *port = p;
    *srv = (struct server){.lfd = fd, .delay_ms = delay_ms};
    int err = weft_spawn(&srv->task, serve, srv);
    if (err < 0)
        weft_close(fd);
    return err;
}

/* Stops serving: the listener, every connection and its task end. */
static void server_stop(struct server *srv)
{
    weft_cancel(srv->task);
    weft_join(srv->task, NULL);
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
    /* TLS handshakes run deep on the requesting task's stack (weft/curl.h,
     * "Stacks"): 256 KiB for HTTPS, unless WEFT_STACK_SIZE says otherwise. */
    struct weft_config cfg;
    weft_config_default(&cfg);
    if (o.url && !strncasecmp(o.url, "https:", 6) && cfg.stack_size < 256 * 1024)
        cfg.stack_size = 256 * 1024;
    void *result;
    int err = weft_run(&cfg, o.serve ? server_main : client_main, &o, &result);
    if (err < 0) {
        fprintf(stderr, "fetch: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return weft_err_of(result) ? 1 : 0;
}
