/*
 * The HTTP server's sockets and tasks: the listening socket, the accept
 * loop, one task per connection, and stopping. What a connection does
 * with its bytes is http_conn.c's.
 *
 * The accept loop runs in the task that called weft_http_serve_fd, so
 * that cancelling that task is how serving stops. Each accepted socket
 * gets TCP_NODELAY (a response is written whole, once; Nagle could only
 * delay a second small write behind an unacknowledged first) and a task
 * in a task group that belongs to the call. A connection that cannot get
 * its memory or its task is closed at once; running out of descriptors
 * (EMFILE and its kin) pauses accepting for 100 ms rather than spinning
 * on a listener that stays readable.
 *
 * A connection task loops: process what it has (which calls the
 * handler), send the output (weft__send_all), then read. Its reads
 * are bounded: while no request is under way, by the idle timeout counted
 * from the last response (so a client trickling blank lines cannot keep
 * it); once a request has begun, by the request timeout counted from
 * then; a request that misses it gets 408. Each write is bounded by the
 * idle timeout. After a response that closes the connection the task
 * shuts its side down and reads (and drops) what the client still sends,
 * for at most 2 s and max_body_bytes + 64 KiB: closing a socket with
 * unread input makes the kernel send a reset, which can destroy the
 * error response before the client has read it.
 *
 * Stopping. The accept loop ends when its task is cancelled (accept
 * returns -ECANCELED, using the request up). The server then sets
 * `stopping`, closes the listener, cancels its own task again and waits
 * on the group: a group waiter that is cancelled cancels every member and
 * waits for all of them (group.c), which is exactly the shutdown wanted,
 * with the members' list and its locking left to group.c. If no member
 * was left, the wait returns without taking the request, and
 * weft_checkpoint() takes it. A handler may swallow its -ECANCELED and
 * return normally; `stopping`, read by each connection before it waits
 * for another request, ends it then. (seq_cst: the store happens before
 * the cancels, and a connection that saw a cancel, or missed one because
 * its handler took it, reads it afterwards.)
 *
 * Rejected: a list of connections with its own lock, and closing every
 * descriptor from the serving task. Closing a descriptor that another
 * task is about to read races with the number being reused; cancelling
 * lets each task close its own.
 *
 * Threads: weft_http_serve_fd and every connection are task context;
 * weft_http_listen may be called from any thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "http_conn.h"
#include "poller.h"

#define LINGER_NS (2 * WEFT_SEC)
#define EMFILE_PAUSE_NS (100 * WEFT_MSEC)

struct server {
    weft_http_handler handler;
    void *arg;
    struct weft_http_options opt; /* resolved */
    atomic_bool stopping;         /* written by the serving task; read by connections */
};

/* What a connection task is started with. */
struct conn {
    struct server *srv;
    int fd;
};

/* ---- the listening socket ------------------------------------------------------ */

/* Parses "HOST:PORT" into *ss (see weft_http_listen). 0 or -EINVAL. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || !colon[1] || strlen(colon + 1) > 5)
        return -EINVAL;
    unsigned long port = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return -EINVAL;
        port = port * 10 + (unsigned long)(*d - '0');
    }
    char host[64];
    size_t hl = (size_t)(colon - addr);
    if (port > 65535 || hl >= sizeof host)
        return -EINVAL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof *ss);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    if (hl == 0)
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

int weft_http_listen(const char *addr, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = parse_addr(addr, &ss, &len);
    if (err < 0)
        return err;
    int fd = weft_socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        err = -errno;
        weft_close(fd);
        return err;
    }
    if (port)
        *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* ---- a connection ------------------------------------------------------------- */

/* After a response that ends the connection: lets the client see the end
 * and read the response before the close, dropping what it still sends.
 * May suspend. */
static void linger(int fd, const struct weft_http_options *o)
{
    (void)shutdown(fd, SHUT_WR);
    uint64_t until = weft_now() + (o->idle_timeout_ns < LINGER_NS ? o->idle_timeout_ns : LINGER_NS);
    size_t left = o->max_body_bytes + 64 * 1024;
    char sink[4096];
    for (;;) {
        ssize_t n = weft_read_until(fd, sink, sizeof sink, until);
        if (n <= 0 || (size_t)n >= left)
            return;
        left -= (size_t)n;
    }
}

/* Serves one connection until it closes, fails, times out or the server
 * stops. May suspend. */
static void serve_conn(struct server *srv, struct weft__http_conn *c, int fd)
{
    const struct weft_http_options *o = &srv->opt;
    uint64_t deadline = weft_now() + o->idle_timeout_ns;
    bool was_busy = false;
    size_t n = 0;
    for (;;) {
        enum weft__http_step step = weft__http_conn_process(c, n);
        size_t len;
        const char *out = weft__http_conn_output(c, &len);
        if (len) {
            /* A send, not a write (weft__send_all): a client that has gone
             * (a reset, or a close before its response was read) is -EPIPE
             * for this connection, never a SIGPIPE that ends the server. */
            ssize_t w = weft__send_all(fd, out, len, weft_now() + o->idle_timeout_ns);
            weft__http_conn_output_done(c);
            if (w < 0)
                return;
        }
        bool stopping = atomic_load(&srv->stopping);
        if (step == WEFT__HTTP_CLOSE) {
            if (len && !stopping)
                linger(fd, o);
            return;
        }
        if (stopping)
            return;
        n = 0;
        if (step == WEFT__HTTP_FLUSH)
            continue;
        /* A response went out, or a request began or ended: restart the
         * clock that bounds the next read. */
        bool busy = weft__http_conn_busy(c);
        if (len || busy != was_busy)
            deadline = weft_now() + (busy ? o->request_timeout_ns : o->idle_timeout_ns);
        was_busy = busy;
        size_t room;
        char *in = weft__http_conn_inbuf(c, &room);
        ssize_t r = weft_read_until(fd, in, room, deadline);
        if (r == -ETIMEDOUT && busy) {
            weft__http_conn_timed_out(c);
            continue;
        }
        if (r <= 0)
            return;
        n = (size_t)r;
    }
}

static void *conn_main(void *arg)
{
    struct conn k = *(struct conn *)arg;
    weft__free(arg, sizeof k);
    struct weft__http_conn *c;
    if (weft__http_conn_new(&c, &k.srv->opt, k.srv->handler, k.srv->arg) == 0) {
        serve_conn(k.srv, c, k.fd);
        weft__http_conn_free(c);
    }
    (void)weft_close(k.fd);
    return NULL;
}

/* Starts a task for the accepted socket fd, or closes it. Does not
 * suspend. */
static void start_conn(struct server *srv, weft_group *g, int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* not TCP: no matter */
    struct conn *k = weft__alloc(sizeof *k);
    if (k) {
        *k = (struct conn){srv, fd};
        if (weft_group_spawn(g, conn_main, k) == 0)
            return;
        weft__free(k, sizeof *k);
    }
    (void)weft_close(fd);
}

/* ---- serving ------------------------------------------------------------------- */

/* Accepts until the task is cancelled or the listener fails: -ECANCELED
 * or accept's error. May suspend. */
static int accept_loop(struct server *srv, weft_group *g, int lfd)
{
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL);
        if (fd >= 0) {
            start_conn(srv, g, fd);
            continue;
        }
        switch (fd) {
        case -ECONNABORTED: /* the client gave up before the accept */
        case -EPROTO:
        case -EPERM: /* a firewall refused the connection */
            continue;
        case -EMFILE:
        case -ENFILE:
        case -ENOBUFS:
        case -ENOMEM: {
            int err = weft_sleep(EMFILE_PAUSE_NS);
            if (err == -ECANCELED)
                return err;
            continue;
        }
        default:
            return fd;
        }
    }
}

/* Cancels every connection and waits for all of them (see the essay).
 * May suspend. */
static void stop(struct server *srv, weft_group *g)
{
    atomic_store(&srv->stopping, true);
    (void)weft_cancel(weft_self());
    if (weft_group_wait(g) != -ECANCELED)
        (void)weft_checkpoint(); /* no member was left: take the request back */
    (void)weft_group_free(g);
}

int weft_http_serve_fd(int lfd, weft_http_handler handler, void *arg,
                       const struct weft_http_options *opts)
{
    /* On the heap, not in this frame: the connection tasks read it while
     * this task waits, and a shared-stack task's frames are elsewhere then
     * (docs/design/stacks.md). */
    struct server *srv = weft__zalloc(sizeof *srv);
    int err = 0;
    if (!srv)
        err = -ENOMEM;
    else if (!weft_self())
        err = -EPERM;
    else if (lfd < 0 || !handler)
        err = -EINVAL;
    else
        err = weft__http_options_resolve(&srv->opt, opts);
    weft_group *g = NULL;
    if (err == 0)
        err = weft_group_new(&g);
    if (err < 0) {
        if (lfd >= 0)
            (void)weft_close(lfd);
        if (srv)
            weft__free(srv, sizeof *srv);
        return err;
    }
    srv->handler = handler;
    srv->arg = arg;
    atomic_init(&srv->stopping, false);
    err = accept_loop(srv, g, lfd);
    (void)weft_close(lfd);
    stop(srv, g);
    weft__free(srv, sizeof *srv);
    return err;
}

int weft_http_serve(const char *addr, weft_http_handler handler, void *arg)
{
    if (!weft_self())
        return -EPERM;
    int lfd = weft_http_listen(addr, NULL);
    if (lfd < 0)
        return lfd;
    return weft_http_serve_fd(lfd, handler, arg, NULL);
}
