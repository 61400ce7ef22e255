/*
 * Suite "stress_io": an echo over loopback TCP that counts. An accept
 * loop, one task per connection; 64 client tasks send 100,000 requests in
 * all (a tenth in sanitizer builds), each of a random length from 1 to
 * 3,000 bytes with a pattern of its own, and read back every byte; on 1, 2
 * and 4 workers (oversubscribed on 2 cores, on purpose).
 *
 * Counted: every request answered, byte-exact; every connection accepted
 * once and closed; every descriptor returned (/proc/self/fd counts the
 * same after the run); no task left. Every call has a deadline, so a lost
 * wake-up fails the test instead of hanging it.
 *
 * The same binary runs as stress_io_faults with tests/fault_shim.c
 * preloaded: EINTR, EAGAIN and 1-byte reads and writes injected into the
 * socket calls at a few percent each; the counts must not change. There,
 * WEFT_FAULT_PERCENT is set, and the test also asserts that the shim is
 * loaded and injected at least one fault of each of the four kinds
 * (its fault_shim_counts()): a run with no fault of a kind would pass
 * without testing that kind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

#define CLIENTS 64
#define MAXLEN 3000
#define DEADLINE() (weft_now() + 60 * WEFT_SEC)

static unsigned long requests;
static _Atomic unsigned long answered, accepted, closed_conns, bytes_back;
static uint16_t port;

static unsigned char pattern(unsigned client, unsigned long seq, size_t i)
{
    return (unsigned char)(client * 131u + seq * 31u + i * 7u);
}

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = weft_read_until(fd, buf, sizeof buf, DEADLINE());
        if (n <= 0) {
            CHECK(n == 0); /* the client closed */
            break;
        }
        CHECK(weft_write_all(fd, buf, (size_t)n, NULL, DEADLINE()) == n);
    }
    CHECK(weft_close(fd) == 0);
    atomic_fetch_add(&closed_conns, 1);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    weft_task *conns[CLIENTS];
    int n = 0;
    for (; n < CLIENTS; n++) {
        int c = weft_accept_until(lfd, NULL, NULL, DEADLINE());
        if (c < 0) {
            CHECK(c >= 0);
            break;
        }
        atomic_fetch_add(&accepted, 1);
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        CHECK(weft_spawn(&conns[n], echo_conn, IPTR(c)) == 0);
    }
    for (int i = 0; i < n; i++)
        CHECK(weft_join(conns[i], NULL) == 0);
    return NULL;
}

static void *client(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(weft_connect_until(fd, (struct sockaddr *)&a, sizeof a, DEADLINE()) == 0);
    unsigned long mine = requests / CLIENTS + (id < requests % CLIENTS);
    uint32_t rng = id * 2654435761u + 1;
    unsigned char out[MAXLEN], in[MAXLEN];
    for (unsigned long seq = 0; seq < mine; seq++) {
        rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
        size_t len = 1 + rng % MAXLEN;
        for (size_t i = 0; i < len; i++)
            out[i] = pattern(id, seq, i);
        if (weft_write_all(fd, out, len, NULL, DEADLINE()) != (ssize_t)len) {
            CHECK(!"write failed");
            break;
        }
        size_t have = 0;
        while (have < len) {
            ssize_t n = weft_read_until(fd, in + have, len - have, DEADLINE());
            if (n <= 0) {
                CHECK(n > 0);
                goto out;
            }
            have += (size_t)n;
        }
        int same = memcmp(in, out, len) == 0;
        CHECK(same);
        if (same) {
            atomic_fetch_add(&answered, 1);
            atomic_fetch_add(&bytes_back, len);
        }
    }
out:
    CHECK(weft_close(fd) == 0);
    return NULL;
}

static void *echo_main(void *arg)
{
    (void)arg;
    int lfd = weft_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 256) == 0 &&
          getsockname(lfd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    weft_task *acc, *cl[CLIENTS];
    CHECK(weft_spawn(&acc, acceptor, IPTR(lfd)) == 0);
    for (unsigned i = 0; i < CLIENTS; i++)
        CHECK(weft_spawn(&cl[i], client, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < CLIENTS; i++)
        CHECK(weft_join(cl[i], NULL) == 0);
    CHECK(weft_join(acc, NULL) == 0);
    CHECK(weft_close(lfd) == 0);
    return NULL;
}

/* Under the fault shim (WEFT_FAULT_PERCENT set and not 0): the shim is
 * loaded, and this process injected at least one fault of each kind it
 * claims (the counts are this forked child's: the runner makes no socket
 * call before it forks). The kinds, in the order fault_shim_counts()
 * gives them. */
static void assert_faults_injected(void)
{
    const char *pct = getenv("WEFT_FAULT_PERCENT");
    if (!pct || strtoul(pct, NULL, 10) == 0)
        return;
    static const char *const kinds[] = {"EINTR", "EAGAIN", "short read", "short write"};
    enum { KINDS = sizeof kinds / sizeof kinds[0] };
    void (*counts)(unsigned long[KINDS]);
    *(void **)&counts = dlsym(RTLD_DEFAULT, "fault_shim_counts");
    ck_assert_msg(counts != NULL, "WEFT_FAULT_PERCENT=%s but the fault shim is not loaded", pct);
    unsigned long c[KINDS];
    counts(c);
    for (int k = 0; k < KINDS; k++)
        ck_assert_msg(c[k] > 0, "the fault shim injected no %s fault", kinds[k]);
}

static unsigned workers_of[] = {1, 2, 4};

START_TEST(echo_counts_every_byte)
{
    requests = scaled(100000);
    atomic_store(&answered, 0);
    atomic_store(&accepted, 0);
    atomic_store(&closed_conns, 0);
    atomic_store(&bytes_back, 0);
    int before = count_fds();
    run_on_workers(workers_of[_i], echo_main);
    fprintf(stderr, "stress_io: %u workers: %lu of %lu requests answered byte-exact (%lu bytes), "
                    "%lu connections accepted and closed\n",
            workers_of[_i], atomic_load(&answered), requests, atomic_load(&bytes_back),
            atomic_load(&closed_conns));
    ck_assert_uint_eq(atomic_load(&answered), requests);
    ck_assert_uint_eq(atomic_load(&accepted), CLIENTS);
    ck_assert_uint_eq(atomic_load(&closed_conns), CLIENTS);
    ck_assert_int_eq(count_fds(), before);
    assert_faults_injected();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress_io");
    TCase *tc = tcase_create("stress_io");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, echo_counts_every_byte, 0,
                        (int)(sizeof workers_of / sizeof workers_of[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
