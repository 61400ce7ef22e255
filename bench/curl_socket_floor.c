/*
 * The floor of W8 for any runtime that drives libcurl the way weft must:
 * through curl_multi_socket_action, with CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION feeding an epoll loop of its own, rather than
 * through curl_multi_perform and curl_multi_poll. No runtime, no tasks,
 * no locks, one thread: the least work that API asks for a request.
 *
 * It is the C peer of W8 (libcurl's multi interface, C easy handles,
 * each reused for the next id so that its keep-alive connection is reused
 * too, every reply checked: status 200 and a body containing "id":{id},)
 * with only the driving loop changed. Comparing the two shows what the
 * socket API itself costs; comparing weft's fetch with this one shows
 * what weft costs on top of it (docs/bench.md, W8).
 *
 * Descriptors are watched level-triggered, as libcurl's documentation of
 * the socket API asks: libcurl does not always read a socket dry.
 *
 *   curl_socket_floor -n N -c C -url BASE
 * prints "curl_socket_floor n=N c=C bad=K fetch_s=SECONDS", as the fetch
 * demo and the peer clients do (bench/w8_fetch.sh).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BODY_MAX 1024

struct req {
    CURL *easy;
    unsigned id;
    size_t len;
    char body[BODY_MAX];
    char url[256];
};

struct loop {
    CURLM *multi;
    int epfd;
    long timeout_ms; /* what curl asked for last; -1: no timeout */
    const char *base;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t k = size * n;
    if (r->len + k < sizeof r->body)
        memcpy(r->body + r->len, data, k);
    r->len += k;
    return k;
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to wait for on s. The socket's
 * pointer (curl_multi_assign) says whether it is in the epoll set. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    (void)easy;
    struct loop *l = arg;
    if (what == CURL_POLL_REMOVE) {
        if (sockp) {
            epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
            curl_multi_assign(l->multi, s, NULL);
        }
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                       (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.fd = s};
    if (sockp)
        return epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) == 0 ? 0 : -1;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) < 0)
        return -1;
    curl_multi_assign(l->multi, s, l);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: the loop's next epoll_wait waits this long. */
static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    (void)multi;
    ((struct loop *)arg)->timeout_ms = timeout_ms;
    return 0;
}

static void start(struct loop *l, struct req *r, unsigned id)
{
    r->id = id;
    r->len = 0;
    snprintf(r->url, sizeof r->url, "%s/posts/%u", l->base, id);
    curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
    curl_multi_add_handle(l->multi, r->easy);
}

/* Whether a finished transfer got the reply it should have. */
static int checked(CURL *easy, CURLcode result, struct req *r)
{
    long status = 0;
    char want[32];
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    snprintf(want, sizeof want, "\"id\":%u,", r->id);
    if (result != CURLE_OK || status != 200 || r->len >= sizeof r->body)
        return 0;
    r->body[r->len] = '\0';
    return strstr(r->body, want) != NULL;
}

/* Takes the finished transfers out, checks them and starts the next ids
 * on their handles; returns how many finished. */
static unsigned reap(struct loop *l, unsigned n, unsigned *next, unsigned *bad)
{
    unsigned done = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        struct req *r;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        if (!checked(easy, result, r))
            ++*bad;
        done++;
        curl_multi_remove_handle(l->multi, easy);
        if (*next <= n)
            start(l, r, (*next)++);
    }
    return done;
}

/* One round of the loop: waits for what curl asked, hands it over. */
static int turn(struct loop *l)
{
    struct epoll_event ev[MAX_EVENTS];
    int running;
    int k = epoll_wait(l->epfd, ev, MAX_EVENTS, l->timeout_ms < 0 ? 1000 : (int)l->timeout_ms);
    if (k < 0)
        return errno == EINTR ? 0 : -errno;
    if (k == 0) {
        curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        return 0;
    }
    for (int i = 0; i < k; i++) {
        uint32_t e = ev[i].events;
        int bits = (e & EPOLLIN ? CURL_CSELECT_IN : 0) | (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                   (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(l->multi, ev[i].data.fd, bits, &running);
    }
    return 0;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s -n N -c C -url BASE\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    unsigned n = 100, c = 100;
    struct loop l = {.timeout_ms = -1, .base = NULL};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage(argv[0]);
        if (strcmp(argv[i], "-n") == 0)
            n = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-c") == 0)
            c = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-url") == 0)
            l.base = argv[i + 1];
        else
            return usage(argv[0]);
    }
    if (!l.base || n == 0 || c == 0)
        return usage(argv[0]);
    if (c > n)
        c = n;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_socket_floor: curl_global_init failed\n");
        return 1;
    }
    double t0 = now_s();
    l.epfd = epoll_create1(EPOLL_CLOEXEC);
    l.multi = curl_multi_init();
    struct req *reqs = calloc(c, sizeof *reqs);
    if (l.epfd < 0 || !l.multi || !reqs) {
        fprintf(stderr, "curl_socket_floor: out of memory or descriptors\n");
        return 1;
    }
    curl_multi_setopt(l.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c);
    curl_multi_setopt(l.multi, CURLMOPT_MAXCONNECTS, (long)c);
    curl_multi_setopt(l.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(l.multi, CURLMOPT_SOCKETDATA, &l);
    curl_multi_setopt(l.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(l.multi, CURLMOPT_TIMERDATA, &l);
    unsigned next = 1, done = 0, bad = 0;
    for (unsigned k = 0; k < c; k++) {
        CURL *e = reqs[k].easy = curl_easy_init();
        if (!e) {
            fprintf(stderr, "curl_socket_floor: curl_easy_init failed\n");
            return 1;
        }
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &reqs[k]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &reqs[k]);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        start(&l, &reqs[k], next++);
    }
    while (done < n) {
        int err = turn(&l);
        if (err < 0) {
            fprintf(stderr, "curl_socket_floor: epoll_wait: %s\n", strerror(-err));
            return 1;
        }
        done += reap(&l, n, &next, &bad);
    }
    double secs = now_s() - t0;
    for (unsigned k = 0; k < c; k++)
        curl_easy_cleanup(reqs[k].easy);
    curl_multi_cleanup(l.multi);
    close(l.epfd);
    free(reqs);
    curl_global_cleanup();
    printf("curl_socket_floor n=%u c=%u bad=%u fetch_s=%.4f\n", n, c, bad, secs);
    return bad == 0 ? 0 : 1;
}
