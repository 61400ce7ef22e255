/*
 * gil_convoy: the GIL's convoy effect (David Beazley, 2010), on weft.
 *
 * An I/O task makes N round trips of a 64-byte message to an echo server,
 * first alone, then while a CPU-bound task spins (with a weft_checkpoint()
 * every 1,000 steps, the safe point where it gives the token up when
 * asked). The echo server is a plain thread with blocking sockets, outside
 * the runtime, as a separate process would be.
 *
 * Under the GIL (WEFT_MODE=gil) every I/O call releases the token, as
 * CPython releases the GIL around each blocking call, and getting it back
 * means waiting until the spinner is asked to drop it: a whole switch
 * interval (WEFT_SWITCH_INTERVAL_US, 5 ms by default). So each trip costs
 * about one or two intervals instead of tens of microseconds. In parallel
 * mode the two tasks run on different workers and the trips take what they
 * take alone.
 *
 *   WEFT_WORKERS=2 WEFT_MODE=gil ./gil_convoy            the convoy
 *   WEFT_WORKERS=2 WEFT_MODE=gil WEFT_SWITCH_INTERVAL_US=500 ./gil_convoy
 *   WEFT_WORKERS=2 ./gil_convoy                          no convoy
 *
 * It prints one line for the trips alone and one beside the spinner:
 * per-trip mean, median and p99, and how many trips waited less than half
 * an interval (wait0), about one (wait1) or one and a half or more
 * (wait2plus); then the slowdown.
 *   usage: gil_convoy [-n TRIPS] [--no-alone]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft.h"

#define MSG 64
#define WARMUP 20

static unsigned trips = 1000;
static uint16_t port;
static int listen_fd;

/* ---- the echo server: a plain thread, blocking sockets ---------------- */

static void *echo_server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            return NULL; /* shut down */
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char buf[MSG];
        ssize_t n;
        while ((n = recv(c, buf, sizeof buf, 0)) > 0)
            if (send(c, buf, (size_t)n, MSG_NOSIGNAL) != n)
                break;
        close(c);
    }
}

static int start_echo_server(pthread_t *th)
{
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(listen_fd, 8) < 0 || getsockname(listen_fd, (struct sockaddr *)&a, &len) < 0) {
        perror("gil_convoy: echo server");
        return -1;
    }
    port = ntohs(a.sin_port);
    return pthread_create(th, NULL, echo_server, NULL) == 0 ? 0 : -1;
}

/* ---- the spinner ---------------------------------------------------------------- */

static _Atomic int stop_spinning;
static uint64_t spin_steps;

static void *spinner(void *arg)
{
    (void)arg;
    uint64_t x = 1, n = 0;
    while (!atomic_load_explicit(&stop_spinning, memory_order_relaxed)) {
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        n += 1000;
        if (weft_checkpoint() < 0)
            break;
    }
    spin_steps = n;
    return (void *)(uintptr_t)(x | 1);
}

/* ---- the I/O task ------------------------------------------------------------------ */

struct result {
    double io_s;
    uint64_t *lat; /* ns per trip */
    unsigned n;
    int err;
};

static int trip(int fd)
{
    char msg[MSG], back[MSG];
    memset(msg, 'x', sizeof msg);
    ssize_t r = weft_send(fd, msg, sizeof msg, 0);
    if (r != MSG)
        return r < 0 ? (int)r : -EIO;
    size_t got = 0;
    while (got < MSG) {
        r = weft_recv(fd, back + got, MSG - got, 0);
        if (r <= 0)
            return r < 0 ? (int)r : -ECONNRESET;
        got += (size_t)r;
    }
    return 0;
}

static void *io_task(void *arg)
{
    struct result *res = arg;
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        res->err = fd;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = weft_connect(fd, (struct sockaddr *)&a, sizeof a);
    for (int i = 0; i < WARMUP && err == 0; i++)
        err = trip(fd);
    uint64_t start = weft_now();
    for (unsigned i = 0; i < trips && err == 0; i++) {
        uint64_t t0 = weft_now();
        err = trip(fd);
        res->lat[res->n++] = weft_now() - t0;
    }
    res->io_s = (double)(weft_now() - start) / 1e9;
    res->err = err;
    weft_close(fd);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t interval_ns(void)
{
    const char *s = getenv("WEFT_SWITCH_INTERVAL_US");
    return (s ? strtoull(s, NULL, 10) : 5000) * WEFT_USEC;
}

static double report(const char *what, int spin, struct result *r)
{
    qsort(r->lat, r->n, sizeof r->lat[0], cmp_u64);
    uint64_t sw = interval_ns();
    unsigned w0 = 0, w2 = 0;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->lat[i] * 2 < sw)
            w0++;
        else if (r->lat[i] * 2 >= 3 * sw)
            w2++;
    }
    struct weft_stats st;
    weft_stats_get(&st);
    const char *mode = getenv("WEFT_MODE");
    double per = r->n ? 1e6 * r->io_s / r->n : 0;
    printf("gil_convoy %s mode=%s workers=%u switch_us=%llu spin=%d trips=%u io_s=%.6f "
           "per_trip_us=%.1f median_us=%.1f p99_us=%.1f wait0=%u wait1=%u wait2plus=%u "
           "handoffs=%llu spin_steps=%llu\n",
           what, mode ? mode : "parallel", st.workers, (unsigned long long)(sw / WEFT_USEC), spin,
           r->n, r->io_s, per, r->n ? r->lat[r->n / 2] / 1e3 : 0,
           r->n ? r->lat[(r->n * 99) / 100 < r->n ? (r->n * 99) / 100 : r->n - 1] / 1e3 : 0, w0,
           r->n - w0 - w2, w2, (unsigned long long)st.gil_handoffs,
           (unsigned long long)(spin ? spin_steps : 0));
    if (spin)
        printf("gil_convoy figure=%.1f unit=us_per_trip\n", per);
    return per;
}

static int alone = 1;

static void *main_task(void *arg)
{
    (void)arg;
    struct result r = {.lat = calloc(trips, sizeof(uint64_t))};
    if (!r.lat)
        return (void *)1;
    weft_task *t, *s;
    double base = 0;
    if (alone) {
        if (weft_spawn(&t, io_task, &r) < 0 || weft_join(t, NULL) < 0 || r.err < 0) {
            fprintf(stderr, "gil_convoy: the I/O task failed: %s\n", weft_strerror(r.err));
            return (void *)1;
        }
        base = report("alone", 0, &r);
    }
    r.n = 0;
    atomic_store(&stop_spinning, 0);
    if (weft_spawn(&s, spinner, NULL) < 0)
        return (void *)1;
    weft_sleep(50 * WEFT_MSEC); /* the spinner owns the token first */
    if (weft_spawn(&t, io_task, &r) < 0 || weft_join(t, NULL) < 0)
        return (void *)1;
    atomic_store(&stop_spinning, 1);
    weft_join(s, NULL);
    if (r.err < 0) {
        fprintf(stderr, "gil_convoy: the I/O task failed: %s\n", weft_strerror(r.err));
        return (void *)1;
    }
    double beside = report("spinning", 1, &r);
    if (alone && base > 0)
        printf("gil_convoy slowdown=x%.1f (per trip, beside a spinning task / alone)\n",
               beside / base);
    free(r.lat);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 10000000) {
                fprintf(stderr, "gil_convoy: -n \"%s\" is not a count of trips\n", argv[i]);
                return 2;
            }
            trips = (unsigned)v;
        } else if (strcmp(argv[i], "--no-alone") == 0) {
            alone = 0;
        } else {
            fprintf(stderr, "usage: gil_convoy [-n TRIPS] [--no-alone]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th;
    if (start_echo_server(&th) < 0)
        return 1;
    void *r = (void *)1;
    int err = weft_run(NULL, main_task, NULL, &r);
    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(th, NULL);
    if (err < 0)
        fprintf(stderr, "gil_convoy: %s\n", weft_strerror(err));
    return err == 0 && r == NULL ? 0 : 1;
}
