/*
 * Suite "io": the poller and the socket calls, black-box through weft.h,
 * on loopback and socketpairs only; each test on 1 and 2 workers (loop
 * tests), every wait bounded by a deadline so that a bug fails, not hangs.
 *
 *  - pipe_read_waits_for_the_writer: a reader finds an empty pipe and
 *    waits (counted in io_waits); a writer task sleeps, then writes; the
 *    reader gets the bytes. Then end of file reads 0.
 *  - socketpair_ping_pong: two tasks bounce a counter 2,000 times over a
 *    socketpair, every message checked, each side waiting on every read.
 *  - read_deadline_and_cancel: a read with a deadline on a silent pipe is
 *    -ETIMEDOUT; a reader with no deadline is cancelled: -ECANCELED; the
 *    pipe still works afterwards (no stale waiter).
 *  - close_wakes_the_waiter_and_the_number_is_fresh: weft_close from
 *    another task wakes a waiting reader with -EBADF; the next socketpair
 *    reuses the number, and its reader waits for its own data only.
 *  - a_reused_number_gets_no_stale_event: an old pipe end gets an edge
 *    nobody waits for (kept as ready), is closed with weft_close while a
 *    dup keeps its file open, and its number goes to a new, empty pipe;
 *    weft_fd_wait on the new end times out (-ETIMEDOUT) although the old
 *    file gets more data meanwhile: a stale wake would say "readable".
 *  - close_wakes_a_waiting_writer: a writer waiting on a full socket is
 *    woken by weft_close with -EBADF (not its deadline's -ETIMEDOUT).
 *  - write_all_under_backpressure: 4 MiB through a socketpair whose reader
 *    reads slowly, in small pieces; every byte arrives in order.
 *  - tcp_accept_connect_echo: an accept loop, one task per connection,
 *    50 clients each making 20 echo round trips; every byte checked.
 *  - connect_refused: a port nobody listens on gives -ECONNREFUSED.
 *  - recv_and_send_move_bytes_and_pass_their_flags: a waiting recv gets
 *    what send sends; MSG_PEEK leaves the bytes for the next recv; over
 *    TCP, MSG_OOB on send and recv moves the urgent byte out of band.
 *  - send_to_a_closed_peer_is_epipe_not_sigpipe: with SIGPIPE at its
 *    default action, send to a closed peer (socketpair, then TCP) is
 *    -EPIPE and the process lives.
 *  - write_and_send_time_out_and_cancel_on_a_full_buffer: on a full
 *    socket, weft_write_until and weft_send_until are -ETIMEDOUT, and
 *    weft_write and weft_send without a deadline end -ECANCELED when the
 *    task is cancelled; they wrote nothing, and the socket works after.
 *  - connect_times_out_and_cancels_on_a_full_backlog: a listener with a
 *    backlog of 0 and one queued connection drops SYNs, so a connect is
 *    -ETIMEDOUT at its deadline, or -ECANCELED when cancelled.
 *  - io_noticed_while_every_worker_is_busy: every worker runs a task that
 *    only yields until a reader has its data: only the busy workers'
 *    periodic polls can notice it (no idle worker to poll).
 *  - io_in_gil_mode: the ping-pong under WEFT_MODE=gil.
 *  - io_wait_is_accounted: a reader that waits for a writer's 20 ms sleep
 *    (begun once the reader started) has at least half of that as I/O wait
 *    in its time split; WEFT_STATS prints the I/O line.
 *  - readiness_order_is_kept (1 worker): 64 readers, each waiting on its
 *    own pipe; the pipes are written in a shuffled order while they wait,
 *    and the readers run in that order, but for the few the maintenance
 *    pass takes out of turn (the poller's wakes are served first come,
 *    first served; newest first, before, they ran in reverse).
 *  - errors: -EPERM outside a task, -EINVAL for bad events and fds, -EBADF
 *    for a closed descriptor, weft_close of a bad fd.
 *  - no_descriptor_left: the runtime's own descriptors (epoll, eventfd)
 *    are closed when weft_run returns: /proc/self/fd counts the same.
 *    Every other test checks the same through run_io_on_workers.
 *
 * Waits for another task to be waiting are bounded loops on the io_waits
 * counter (await_io_waits), not sleeps that assume it.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

static unsigned workers_of[] = {1, 2};

#define SOON(ms) (weft_now() + (uint64_t)(ms)*WEFT_MSEC)

/* The runtime's count of I/O waits so far (weft_stats io_waits). */
static uint64_t io_waits_now(void)
{
    struct weft_stats s;
    CHECK(weft_stats_get(&s) == 0);
    return s.io_waits;
}

/* Sleeps until the runtime has counted more than `above` I/O waits, 5 s
 * at most: a task spawned to wait on a descriptor is then queued on it (a
 * wait is counted under the descriptor's lock, after the waiter is
 * queued), so that what the caller does next finds it waiting. */
static void await_io_waits(uint64_t above)
{
    for (int i = 0; i < 5000 && io_waits_now() <= above; i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(io_waits_now() > above);
}

/* Fills the send buffer of fd (a socket whose peer does not read) until
 * the kernel refuses even one byte: 64 KiB writes, then ever smaller ones
 * down to 1 byte, each size until EAGAIN (bounded). After this, a write
 * to fd waits until the peer reads. Returns the bytes written. */
static size_t fill_send_buffer(int fd)
{
    static char junk[65536];
    size_t total = 0;
    int small = 4096; /* the kernel's floor applies: a smaller buffer fills sooner */
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    for (size_t chunk = sizeof junk; chunk >= 1; chunk /= 16) {
        int i = 0;
        for (; i < 100000; i++) {
            ssize_t n = send(fd, junk, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
                break;
            }
            total += (size_t)n;
        }
        CHECK(i < 100000);
    }
    return total;
}

/* ---- a reader waits for a writer ----------------------------------------- */

static int pfd[2];

static void *late_writer(void *arg)
{
    (void)arg;
    CHECK(weft_sleep(20 * WEFT_MSEC) == 0);
    CHECK(weft_write(pfd[1], "hello", 5) == 5);
    CHECK(weft_close(pfd[1]) == 0);
    return NULL;
}

static void *pipe_main(void *arg)
{
    (void)arg;
    CHECK(pipe(pfd) == 0);
    struct weft_stats s0, s1;
    weft_stats_get(&s0);
    weft_task *t;
    CHECK(weft_spawn(&t, late_writer, NULL) == 0);
    char buf[16];
    ssize_t n = weft_read_until(pfd[0], buf, sizeof buf, SOON(5000));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    weft_stats_get(&s1);
    CHECK(s1.io_waits > s0.io_waits);
    CHECK(weft_read_until(pfd[0], buf, sizeof buf, SOON(5000)) == 0); /* end of file */
    CHECK(weft_join(t, NULL) == 0);
    CHECK(weft_close(pfd[0]) == 0);
    return NULL;
}

START_TEST(pipe_read_waits_for_the_writer)
{
    run_io_on_workers(workers_of[_i], pipe_main);
}
END_TEST

/* ---- ping-pong ---------------------------------------------------------------- */

#define ROUNDS 2000

struct side {
    int fd;
    int first; /* sends 0 first, then reads the odd numbers */
};

static bool read_u32(int fd, uint32_t *v)
{
    size_t have = 0;
    while (have < sizeof *v) {
        ssize_t n = weft_read_until(fd, (char *)v + have, sizeof *v - have, SOON(10000));
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    return true;
}

/* A sends 0, 2, 4, ... and reads 1, 3, 5, ...; B the other way round;
 * each number is the one before plus one. */
static void *bounce(void *arg)
{
    struct side *sd = arg;
    uint32_t k = sd->first ? 1 : 0;
    if (sd->first) {
        uint32_t zero = 0;
        CHECK(weft_write_all(sd->fd, &zero, sizeof zero, NULL, SOON(10000)) == sizeof zero);
    }
    for (;; k += 2) {
        uint32_t got;
        if (!read_u32(sd->fd, &got)) {
            CHECK(!"read failed");
            return NULL;
        }
        CHECK(got == k);
        if (k >= ROUNDS - 1)
            return NULL;
        uint32_t next = k + 1;
        CHECK(weft_write_all(sd->fd, &next, sizeof next, NULL, SOON(10000)) == sizeof next);
        if (next >= ROUNDS - 1)
            return NULL;
    }
}

static _Atomic unsigned long ping_reads;

static void *ping_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct side a = {sv[0], 1}, b = {sv[1], 0};
    weft_task *ta, *tb;
    CHECK(weft_spawn(&ta, bounce, &a) == 0);
    CHECK(weft_spawn(&tb, bounce, &b) == 0);
    CHECK(weft_join(ta, NULL) == 0);
    CHECK(weft_join(tb, NULL) == 0);
    struct weft_stats s;
    weft_stats_get(&s);
    atomic_store(&ping_reads, s.io_waits);
    CHECK(weft_close(sv[0]) == 0);
    CHECK(weft_close(sv[1]) == 0);
    return NULL;
}

START_TEST(socketpair_ping_pong)
{
    run_io_on_workers(workers_of[_i], ping_main);
    /* One side waits for each message the other has not sent yet. */
    ck_assert_uint_ge(atomic_load(&ping_reads), ROUNDS / 2);
}
END_TEST

/* ---- deadlines and cancellation ---------------------------------------------- */

static void *blocked_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    return IPTR(weft_read(fd, &c, 1));
}

static void *deadline_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe(p) == 0);
    char c;
    CHECK(weft_read_until(p[0], &c, 1, SOON(20)) == -ETIMEDOUT);
    weft_task *t;
    CHECK(weft_spawn(&t, blocked_reader, IPTR(p[0])) == 0);
    CHECK(weft_sleep(20 * WEFT_MSEC) == 0);
    CHECK(weft_cancel(t) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == -ECANCELED);
    /* The pipe still works: the cancelled waiter left nothing behind. */
    CHECK(weft_spawn(&t, blocked_reader, IPTR(p[0])) == 0);
    CHECK(weft_sleep(5 * WEFT_MSEC) == 0);
    CHECK(weft_write(p[1], "x", 1) == 1);
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == 1);
    CHECK(weft_close(p[0]) == 0 && weft_close(p[1]) == 0);
    return NULL;
}

START_TEST(read_deadline_and_cancel)
{
    run_io_on_workers(workers_of[_i], deadline_main);
}
END_TEST

/* ---- close while waiting, and the number's reuse ------------------------------- */

static void *timed_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 0;
    ssize_t n = weft_read_until(fd, &c, 1, SOON(5000));
    return IPTR(n == 1 ? c : n);
}

static void *close_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    weft_task *t;
    CHECK(weft_spawn(&t, timed_reader, IPTR(sv[0])) == 0);
    CHECK(weft_sleep(10 * WEFT_MSEC) == 0); /* the reader is waiting */
    int old = sv[0];
    int keep = dup(old); /* the old descriptor's file stays open */
    CHECK(weft_close(sv[0]) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == -EBADF);
    /* The peer end wakes too, but nobody waits on it. A new pair takes
     * the freed number. */
    int nv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, nv) == 0);
    CHECK(nv[0] == old);
    CHECK(weft_spawn(&t, timed_reader, IPTR(nv[0])) == 0);
    /* Data for the old file (still open through `keep`) is not the new
     * reader's: it goes on waiting for its own. */
    CHECK(send(sv[1], "z", 1, MSG_NOSIGNAL) == 1);
    CHECK(weft_sleep(10 * WEFT_MSEC) == 0);
    CHECK(write(nv[1], "k", 1) == 1);
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == 'k');
    CHECK(weft_close(sv[1]) == 0 && close(keep) == 0);
    CHECK(weft_close(nv[0]) == 0 && weft_close(nv[1]) == 0);
    return NULL;
}

START_TEST(close_wakes_the_waiter_and_the_number_is_fresh)
{
    run_io_on_workers(workers_of[_i], close_main);
}
END_TEST

/* The new descriptor on a reused number hears nothing of the old one: not
 * an edge the poller fetched for the old descriptor before it was closed
 * (nobody waited, so it was kept as the number's ready flag), nor an event
 * of the old file after the close (the file outlives the number through a
 * dup). weft_fd_wait, unlike a read, does not retry: a stale wake would
 * return "readable" for a pipe nobody wrote to, where the only right
 * answer is -ETIMEDOUT at the deadline. */

static void *quiet_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return IPTR(weft_fd_wait(fd, WEFT_READABLE, SOON(200)));
}

static void *stale_main(void *arg)
{
    (void)arg;
    /* A task waiting on a pipe of its own keeps the idle workers polling
     * (a worker polls only while some task waits on a descriptor). */
    int keeper[2];
    CHECK(pipe(keeper) == 0);
    weft_task *k;
    CHECK(weft_spawn(&k, blocked_reader, IPTR(keeper[0])) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    int old = p[0];
    int keep = dup(p[0]); /* the old read end's file stays open */
    CHECK(keep >= 0);
    /* Registered (edge-triggered) by a wait, then an edge with no waiter:
     * the poller, polling while this task sleeps, records it as ready. */
    CHECK(weft_fd_wait(p[0], WEFT_READABLE, SOON(1)) == -ETIMEDOUT);
    CHECK(write(p[1], "a", 1) == 1);
    CHECK(weft_sleep(20 * WEFT_MSEC) == 0);
    CHECK(weft_close(p[0]) == 0);
    int q[2];
    CHECK(pipe(q) == 0);
    CHECK(q[0] == old);
    /* The new read end, empty, waited on; then the old file gets data. */
    uint64_t waits = io_waits_now();
    weft_task *t;
    CHECK(weft_spawn(&t, quiet_waiter, IPTR(q[0])) == 0);
    await_io_waits(waits);
    CHECK(write(p[1], "b", 1) == 1);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == -ETIMEDOUT);
    /* Its own data does wake it. */
    CHECK(write(q[1], "c", 1) == 1);
    CHECK(weft_fd_wait(q[0], WEFT_READABLE, SOON(5000)) & WEFT_READABLE);
    CHECK(write(keeper[1], "k", 1) == 1);
    CHECK(weft_join(k, &r) == 0);
    CHECK(PINT(r) == 1);
    CHECK(close(keep) == 0 && weft_close(p[1]) == 0);
    CHECK(weft_close(q[0]) == 0 && weft_close(q[1]) == 0);
    CHECK(weft_close(keeper[0]) == 0 && weft_close(keeper[1]) == 0);
    return NULL;
}

START_TEST(a_reused_number_gets_no_stale_event)
{
    run_io_on_workers(workers_of[_i], stale_main);
}
END_TEST

/* A writer waiting for room (the peer does not read) is woken by
 * weft_close from another task with -EBADF, well before its deadline. */

static void *full_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return IPTR(weft_write_until(fd, "x", 1, SOON(10000)));
}

static void *close_writer_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fill_send_buffer(sv[0]);
    uint64_t waits = io_waits_now();
    weft_task *t;
    CHECK(weft_spawn(&t, full_writer, IPTR(sv[0])) == 0);
    await_io_waits(waits);
    CHECK(weft_close(sv[0]) == 0);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == -EBADF); /* not -ETIMEDOUT: the close woke it */
    CHECK(weft_close(sv[1]) == 0);
    return NULL;
}

START_TEST(close_wakes_a_waiting_writer)
{
    run_io_on_workers(workers_of[_i], close_writer_main);
}
END_TEST

/* ---- backpressure ---------------------------------------------------------------- */

#define BIG (4u << 20)

static void *slow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t got = 0;
    unsigned char buf[1000];
    while (got < BIG) {
        ssize_t n = weft_read_until(fd, buf, sizeof buf, SOON(20000));
        if (n <= 0) {
            CHECK(n > 0);
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++)
            CHECK(buf[i] == (unsigned char)((got + (size_t)i) * 7));
        got += (size_t)n;
        if ((got / sizeof buf) % 64 == 0)
            CHECK(weft_yield() == 0);
    }
    return NULL;
}

static void *backpressure_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    unsigned char *data = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (unsigned char)(i * 7);
    weft_task *t;
    CHECK(weft_spawn(&t, slow_reader, IPTR(sv[1])) == 0);
    size_t written = 0;
    CHECK(weft_write_all(sv[0], data, BIG, &written, SOON(20000)) == (ssize_t)BIG);
    CHECK(written == BIG);
    CHECK(weft_join(t, NULL) == 0);
    free(data);
    CHECK(weft_close(sv[0]) == 0 && weft_close(sv[1]) == 0);
    return NULL;
}

START_TEST(write_all_under_backpressure)
{
    run_io_on_workers(workers_of[_i], backpressure_main);
}
END_TEST

/* ---- TCP: accept, connect, echo ---------------------------------------------------- */

#define CLIENTS 50
#define TRIPS 20

static int listen_loopback(uint16_t *port)
{
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        weft_close(fd);
        return -errno;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    for (;;) {
        ssize_t n = weft_read_until(fd, buf, sizeof buf, SOON(20000));
        if (n <= 0) {
            CHECK(n == 0);
            break;
        }
        CHECK(weft_write_all(fd, buf, (size_t)n, NULL, SOON(20000)) == n);
    }
    CHECK(weft_close(fd) == 0);
    return NULL;
}

static _Atomic int trips_done;

static void *client(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = weft_connect_until(fd, (struct sockaddr *)&a, sizeof a, SOON(20000));
    CHECK(err == 0);
    for (int i = 0; i < TRIPS && err == 0; i++) {
        char msg[64], back[64];
        int len = snprintf(msg, sizeof msg, "trip %d of fd %d", i, fd);
        CHECK(weft_write_all(fd, msg, (size_t)len, NULL, SOON(20000)) == len);
        int have = 0;
        while (have < len) {
            ssize_t n = weft_read_until(fd, back + have, (size_t)(len - have), SOON(20000));
            if (n <= 0) {
                CHECK(n > 0);
                err = -1;
                break;
            }
            have += (int)n;
        }
        if (err == 0) {
            CHECK(memcmp(msg, back, (size_t)len) == 0);
            atomic_fetch_add(&trips_done, 1);
        }
    }
    CHECK(weft_close(fd) == 0);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    weft_task *conns[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        int c = weft_accept_until(lfd, NULL, NULL, SOON(20000));
        CHECK(c >= 0);
        if (c < 0)
            return NULL;
        CHECK((fcntl(c, F_GETFL) & O_NONBLOCK) != 0);
        CHECK(weft_spawn(&conns[i], echo_conn, IPTR(c)) == 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        CHECK(weft_join(conns[i], NULL) == 0);
    return NULL;
}

static void *tcp_main(void *arg)
{
    (void)arg;
    atomic_store(&trips_done, 0);
    uint16_t port;
    int lfd = listen_loopback(&port);
    CHECK(lfd >= 0);
    weft_task *acc, *cl[CLIENTS];
    CHECK(weft_spawn(&acc, acceptor, IPTR(lfd)) == 0);
    for (int i = 0; i < CLIENTS; i++)
        CHECK(weft_spawn(&cl[i], client, (void *)(uintptr_t)port) == 0);
    for (int i = 0; i < CLIENTS; i++)
        CHECK(weft_join(cl[i], NULL) == 0);
    CHECK(weft_join(acc, NULL) == 0);
    CHECK(atomic_load(&trips_done) == CLIENTS * TRIPS);
    CHECK(weft_close(lfd) == 0);
    return NULL;
}

START_TEST(tcp_accept_connect_echo)
{
    run_io_on_workers(workers_of[_i], tcp_main);
}
END_TEST

static void *refused_main(void *arg)
{
    (void)arg;
    uint16_t port;
    int lfd = listen_loopback(&port); /* a free port: bound, then closed */
    CHECK(lfd >= 0);
    CHECK(weft_close(lfd) == 0);
    int fd = weft_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(weft_connect_until(fd, (struct sockaddr *)&a, sizeof a, SOON(5000)) == -ECONNREFUSED);
    CHECK(weft_close(fd) == 0);
    return NULL;
}

START_TEST(connect_refused)
{
    run_io_on_workers(workers_of[_i], refused_main);
}
END_TEST

/* ---- recv and send ------------------------------------------------------------------- */

/* A connected loopback TCP pair: *c the client's end, *s the server's. */
static void tcp_pair(int *c, int *s)
{
    uint16_t port;
    int lfd = listen_loopback(&port);
    CHECK(lfd >= 0);
    *c = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(*c >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(weft_connect_until(*c, (struct sockaddr *)&a, sizeof a, SOON(5000)) == 0);
    *s = weft_accept_until(lfd, NULL, NULL, SOON(5000));
    CHECK(*s >= 0);
    CHECK(weft_close(lfd) == 0);
}

static char recv_buf[16];

static void *waiting_receiver(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return IPTR(weft_recv_until(fd, recv_buf, sizeof recv_buf, 0, SOON(5000)));
}

static void *recv_send_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    /* A receiver that waits for the sender. */
    uint64_t waits = io_waits_now();
    weft_task *t;
    CHECK(weft_spawn(&t, waiting_receiver, IPTR(sv[1])) == 0);
    await_io_waits(waits);
    CHECK(weft_send_until(sv[0], "ping", 4, 0, SOON(5000)) == 4);
    void *r;
    CHECK(weft_join(t, &r) == 0);
    CHECK(PINT(r) == 4 && memcmp(recv_buf, "ping", 4) == 0);
    /* MSG_PEEK reaches recv: the bytes are still there for the next
     * call, and only then gone (a later recv times out). */
    char buf[16] = {0};
    CHECK(weft_send(sv[0], "pong", 4, 0) == 4);
    CHECK(weft_recv(sv[1], buf, sizeof buf, MSG_PEEK) == 4 && memcmp(buf, "pong", 4) == 0);
    memset(buf, 0, sizeof buf);
    CHECK(weft_recv_until(sv[1], buf, sizeof buf, 0, SOON(5000)) == 4 &&
          memcmp(buf, "pong", 4) == 0);
    CHECK(weft_recv_until(sv[1], buf, sizeof buf, 0, SOON(20)) == -ETIMEDOUT);
    CHECK(weft_close(sv[0]) == 0 && weft_close(sv[1]) == 0);
    /* MSG_OOB reaches send and recv, over TCP: of "ab!" sent urgent, the
     * last byte is out of band, so the stream reads "ab" and recv with
     * MSG_OOB the '!' (one segment on loopback: all of it is there once
     * "ab" is). With the flag lost on either side, the stream would read
     * "ab!", or the out-of-band recv would wait and time out. */
    int c, s;
    tcp_pair(&c, &s);
    CHECK(weft_send_until(c, "ab!", 3, MSG_OOB, SOON(5000)) == 3);
    memset(buf, 0, sizeof buf);
    CHECK(weft_recv_until(s, buf, sizeof buf, 0, SOON(5000)) == 2 && memcmp(buf, "ab", 2) == 0);
    char oob = 0;
    CHECK(weft_recv_until(s, &oob, 1, MSG_OOB, SOON(5000)) == 1 && oob == '!');
    CHECK(weft_close(c) == 0 && weft_close(s) == 0);
    return NULL;
}

START_TEST(recv_and_send_move_bytes_and_pass_their_flags)
{
    run_io_on_workers(workers_of[_i], recv_send_main);
}
END_TEST

/* weft_send to a peer that has gone is -EPIPE, and the process lives on:
 * send adds MSG_NOSIGNAL. SIGPIPE is set to its default action first (a
 * process may inherit it ignored), so that a SIGPIPE would kill the test. */
static void *epipe_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(weft_close(sv[1]) == 0);
    CHECK(weft_send(sv[0], "x", 1, 0) == -EPIPE);
    CHECK(weft_send_until(sv[0], "x", 1, 0, SOON(5000)) == -EPIPE);
    CHECK(weft_close(sv[0]) == 0);
    /* TCP: the first sends after the peer's close may still go out (the
     * reset comes back after them) or report -ECONNRESET; then -EPIPE. */
    int c, s;
    tcp_pair(&c, &s);
    CHECK(weft_close(s) == 0);
    ssize_t n = 0;
    for (int i = 0; i < 1000 && n >= 0; i++) {
        n = weft_send_until(c, "y", 1, 0, SOON(5000));
        if (n >= 0)
            CHECK(weft_sleep(WEFT_MSEC) == 0);
    }
    CHECK(n == -EPIPE || n == -ECONNRESET);
    CHECK(weft_send_until(c, "y", 1, 0, SOON(5000)) == -EPIPE);
    CHECK(weft_close(c) == 0);
    return NULL;
}

START_TEST(send_to_a_closed_peer_is_epipe_not_sigpipe)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    run_io_on_workers(workers_of[_i], epipe_main);
}
END_TEST

/* ---- deadlines and cancellation of writes and connects ------------------------------- */

struct stuck_call {
    int fd;
    int op; /* 0: weft_write, 1: weft_send, 2: weft_connect to `to` */
    struct sockaddr_in to;
};

/* One call with no deadline that cannot complete: only a cancel ends it. */
static void *stuck(void *arg)
{
    struct stuck_call *sc = arg;
    switch (sc->op) {
    case 0:
        return IPTR(weft_write(sc->fd, "x", 1));
    case 1:
        return IPTR(weft_send(sc->fd, "x", 1, 0));
    default:
        return IPTR(weft_connect(sc->fd, (struct sockaddr *)&sc->to, sizeof sc->to));
    }
}

/* Starts sc's call in a task, waits until the call waits, cancels it and
 * returns what it returned. */
static intptr_t cancel_stuck(struct stuck_call *sc)
{
    uint64_t waits = io_waits_now();
    weft_task *t;
    CHECK(weft_spawn(&t, stuck, sc) == 0);
    await_io_waits(waits);
    CHECK(weft_cancel(t) == 0);
    void *r = NULL;
    CHECK(weft_join(t, &r) == 0);
    return PINT(r);
}

static void *full_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    size_t filled = fill_send_buffer(sv[0]);
    CHECK(weft_write_until(sv[0], "x", 1, SOON(20)) == -ETIMEDOUT);
    CHECK(weft_send_until(sv[0], "x", 1, 0, SOON(20)) == -ETIMEDOUT);
    struct stuck_call w = {.fd = sv[0], .op = 0}, s = {.fd = sv[0], .op = 1};
    CHECK(cancel_stuck(&w) == -ECANCELED);
    CHECK(cancel_stuck(&s) == -ECANCELED);
    /* Nothing was written by the calls that gave up, and nothing stale
     * is left: once the peer has read everything, a write goes through. */
    static char buf[65536]; /* not on the task's 64 KiB stack */
    size_t drained = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    CHECK(drained == filled);
    CHECK(weft_send_until(sv[0], "z", 1, 0, SOON(5000)) == 1);
    CHECK(weft_recv_until(sv[1], buf, sizeof buf, 0, SOON(5000)) == 1 && buf[0] == 'z');
    CHECK(weft_close(sv[0]) == 0 && weft_close(sv[1]) == 0);
    return NULL;
}

START_TEST(write_and_send_time_out_and_cancel_on_a_full_buffer)
{
    run_io_on_workers(workers_of[_i], full_main);
}
END_TEST

/* A connect that stays in SYN_SENT, deterministically, on loopback: a
 * listener with a backlog of 0 holds one connection in its accept queue,
 * and while that queue is full the kernel drops every SYN for it (the
 * client retries after 1 s, 3 s, ...). So a connect with a deadline of
 * 20 ms is -ETIMEDOUT, and one without is ended only by a cancel. */
static void *connect_stuck_main(void *arg)
{
    (void)arg;
    int lfd = weft_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 0) == 0 &&
          getsockname(lfd, (struct sockaddr *)&a, &len) == 0);
    int first = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(weft_connect_until(first, (struct sockaddr *)&a, sizeof a, SOON(5000)) == 0);
    /* Readable once the connection is in the accept queue: full from then. */
    CHECK(weft_fd_wait(lfd, WEFT_READABLE, SOON(5000)) & WEFT_READABLE);
    int second = weft_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(weft_connect_until(second, (struct sockaddr *)&a, sizeof a, SOON(20)) == -ETIMEDOUT);
    struct stuck_call sc = {.fd = weft_socket(AF_INET, SOCK_STREAM, 0), .op = 2, .to = a};
    CHECK(cancel_stuck(&sc) == -ECANCELED);
    CHECK(weft_close(sc.fd) == 0 && weft_close(second) == 0);
    CHECK(weft_close(first) == 0 && weft_close(lfd) == 0);
    return NULL;
}

START_TEST(connect_times_out_and_cancels_on_a_full_backlog)
{
    run_io_on_workers(workers_of[_i], connect_stuck_main);
}
END_TEST

/* ---- every worker busy ----------------------------------------------------------------- */

static _Atomic int got_it;

static void *spinner(void *arg)
{
    (void)arg;
    uint64_t end = SOON(20000);
    while (!atomic_load(&got_it) && weft_now() < end)
        CHECK(weft_yield() == 0);
    CHECK(atomic_load(&got_it));
    return NULL;
}

static void *flag_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    CHECK(weft_read_until(fd, &c, 1, SOON(20000)) == 1);
    atomic_store(&got_it, 1);
    return NULL;
}

static void *feeder(void *arg)
{
    int fd = *(int *)arg;
    usleep(20000); /* a plain thread: the reader is waiting by now */
    ssize_t n = write(fd, "!", 1);
    (void)n;
    return NULL;
}

static unsigned busy_workers;

static void *busy_main(void *arg)
{
    (void)arg;
    atomic_store(&got_it, 0);
    int p[2];
    CHECK(pipe(p) == 0);
    weft_task *r, *sp[8];
    CHECK(weft_spawn(&r, flag_reader, IPTR(p[0])) == 0);
    CHECK(weft_sleep(5 * WEFT_MSEC) == 0);
    for (unsigned i = 0; i < busy_workers; i++)
        CHECK(weft_spawn(&sp[i], spinner, NULL) == 0);
    pthread_t th;
    pthread_create(&th, NULL, feeder, &p[1]);
    for (unsigned i = 0; i < busy_workers; i++)
        CHECK(weft_join(sp[i], NULL) == 0);
    CHECK(weft_join(r, NULL) == 0);
    pthread_join(th, NULL);
    CHECK(weft_close(p[0]) == 0 && close(p[1]) == 0);
    return NULL;
}

START_TEST(io_noticed_while_every_worker_is_busy)
{
    busy_workers = workers_of[_i];
    run_io_on_workers(workers_of[_i], busy_main);
}
END_TEST

START_TEST(io_in_gil_mode)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i] + 1;
    cfg.mode = WEFT_GIL;
    int fds = count_fds();
    void *r = IPTR(-1);
    ck_assert_int_eq(weft_run(&cfg, ping_main, NULL, &r), 0);
    ck_assert_ptr_null(r);
    assert_clean_shutdown();
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- time accounting -------------------------------------------------------------------- */

static uint64_t reader_io_ns;
static _Atomic int reader_started;

static void *accounted_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    atomic_store(&reader_started, 1);
    CHECK(weft_read_until(fd, &c, 1, SOON(5000)) == 1);
    struct weft_times tt;
    CHECK(weft_task_times(weft_self(), &tt) == 0);
    reader_io_ns = tt.io_ns;
    return NULL;
}

static void *accounting_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe(p) == 0);
    weft_task *t;
    atomic_store(&reader_started, 0);
    CHECK(weft_spawn(&t, accounted_reader, IPTR(p[0])) == 0);
    for (int i = 0; i < 5000 && !atomic_load(&reader_started); i++)
        CHECK(weft_sleep(WEFT_MSEC) == 0);
    CHECK(atomic_load(&reader_started)); /* 5 s at most */
    /* The reader is about to wait, and waits at least this long, less
     * whatever delay a loaded machine puts between its start and its wait
     * (the assertion allows half). */
    CHECK(weft_sleep(20 * WEFT_MSEC) == 0);
    CHECK(weft_write(p[1], "!", 1) == 1);
    CHECK(weft_join(t, NULL) == 0);
    CHECK(weft_close(p[0]) == 0 && weft_close(p[1]) == 0);
    return NULL;
}

START_TEST(io_wait_is_accounted)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = workers_of[_i];
    cfg.stats = 1; /* accounting on (it prints; captured) */
    int fds = count_fds();
    start_capture();
    int err = weft_run(&cfg, accounting_main, NULL, NULL);
    const char *out = stop_capture();
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(CHECK_FAILURES(), 0);
    ck_assert_uint_ge(reader_io_ns, 10 * WEFT_MSEC);
    ck_assert_ptr_nonnull(strstr(out, "weft: I/O: "));
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

static void *errors_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(weft_fd_wait(p[0], 0, WEFT_NEVER) == -EINVAL);
    CHECK(weft_fd_wait(p[0], 4, WEFT_NEVER) == -EINVAL);
    CHECK(weft_fd_wait(-1, WEFT_READABLE, WEFT_NEVER) == -EINVAL);
    CHECK(weft_fd_wait(p[1], WEFT_WRITABLE, SOON(5000)) & WEFT_WRITABLE);
    CHECK(weft_fd_wait(p[0], WEFT_READABLE, SOON(10)) == -ETIMEDOUT);
    char c;
    CHECK(weft_read(-3, &c, 1) == -EBADF);
    int dead = p[0];
    CHECK(weft_close(p[0]) == 0);
    CHECK(weft_close(p[1]) == 0);
    CHECK(weft_read(dead, &c, 1) == -EBADF);
    CHECK(weft_close(dead) == -EBADF);
    return NULL;
}

/* ---- the order of a poll's wakes ----------------------------------------- */

enum { ORDER_N = 64 };
static int order_fds[ORDER_N][2];
static int order_ran[ORDER_N], order_next;

static void *order_reader(void *arg)
{
    int i = (int)PINT(arg);
    char c;
    CHECK(weft_read_until(order_fds[i][0], &c, 1, weft_now() + 10 * WEFT_SEC) == 1);
    order_ran[order_next++] = i; /* one worker: no race */
    return NULL;
}

static void *order_main(void *arg)
{
    (void)arg;
    weft_task *h[ORDER_N];
    int perm[ORDER_N];
    for (int i = 0; i < ORDER_N; i++) {
        ck_assert_int_eq(pipe(order_fds[i]), 0);
        perm[i] = i;
    }
    srand(7);
    for (int i = ORDER_N - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    order_next = 0;
    for (int i = 0; i < ORDER_N; i++)
        ck_assert_int_eq(weft_spawn(&h[i], order_reader, IPTR(i)), 0);
    ck_assert_int_eq(weft_yield(), 0); /* every reader runs and waits (one worker) */
    for (int i = 0; i < ORDER_N; i++)
        ck_assert_int_eq(write(order_fds[perm[i]][1], "x", 1), 1);
    for (int i = 0; i < ORDER_N; i++)
        ck_assert_int_eq(weft_join(h[i], NULL), 0);
    ck_assert_int_eq(order_next, ORDER_N);
    /* In order, but for the maintenance pass's look at the ring's oldest
     * task every 61 decisions, which may take one from the far end. */
    int rank[ORDER_N], ascending = 0;
    for (int i = 0; i < ORDER_N; i++)
        rank[perm[i]] = i;
    for (int i = 0; i + 1 < ORDER_N; i++)
        ascending += rank[order_ran[i]] < rank[order_ran[i + 1]];
    ck_assert_int_ge(ascending, ORDER_N - 1 - 8);
    for (int i = 0; i < ORDER_N; i++) {
        weft_close(order_fds[i][0]);
        close(order_fds[i][1]);
    }
    return NULL;
}

START_TEST(readiness_order_is_kept)
{
    run_io_on_workers(1, order_main);
}
END_TEST

START_TEST(errors)
{
    char c;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(weft_read(p[0], &c, 1), -EPERM);
    ck_assert_int_eq(weft_fd_wait(p[0], WEFT_READABLE, WEFT_NEVER), -EPERM);
    ck_assert_int_eq(weft_accept(p[0], NULL, NULL), -EPERM);
    close(p[0]);
    close(p[1]);
    run_io_on_workers(workers_of[_i], errors_main);
}
END_TEST

/* ---- descriptors ------------------------------------------------------------------------ */

START_TEST(no_descriptor_left)
{
    int before = count_fds();
    run_io_on_workers(workers_of[_i], ping_main);
    run_io_on_workers(workers_of[_i], tcp_main);
    ck_assert_int_eq(count_fds(), before);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    int n = (int)(sizeof workers_of / sizeof workers_of[0]);
    tcase_add_loop_test(tc, pipe_read_waits_for_the_writer, 0, n);
    tcase_add_loop_test(tc, socketpair_ping_pong, 0, n);
    tcase_add_loop_test(tc, read_deadline_and_cancel, 0, n);
    tcase_add_loop_test(tc, close_wakes_the_waiter_and_the_number_is_fresh, 0, n);
    tcase_add_loop_test(tc, a_reused_number_gets_no_stale_event, 0, n);
    tcase_add_loop_test(tc, close_wakes_a_waiting_writer, 0, n);
    tcase_add_loop_test(tc, write_all_under_backpressure, 0, n);
    tcase_add_loop_test(tc, tcp_accept_connect_echo, 0, n);
    tcase_add_loop_test(tc, connect_refused, 0, n);
    tcase_add_loop_test(tc, recv_and_send_move_bytes_and_pass_their_flags, 0, n);
    tcase_add_loop_test(tc, send_to_a_closed_peer_is_epipe_not_sigpipe, 0, n);
    tcase_add_loop_test(tc, write_and_send_time_out_and_cancel_on_a_full_buffer, 0, n);
    tcase_add_loop_test(tc, connect_times_out_and_cancels_on_a_full_backlog, 0, n);
    tcase_add_loop_test(tc, io_noticed_while_every_worker_is_busy, 0, n);
    tcase_add_loop_test(tc, io_in_gil_mode, 0, n);
    tcase_add_loop_test(tc, io_wait_is_accounted, 0, n);
    tcase_add_loop_test(tc, errors, 0, n);
    tcase_add_test(tc, readiness_order_is_kept);
    tcase_add_loop_test(tc, no_descriptor_left, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
