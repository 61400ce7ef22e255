/*
 * I/O: descriptors that tasks wait on, and the poller that notices when
 * they are ready.
 *
 * The epoll set. One per runtime. A descriptor is added the first time a
 * task has to wait on it, for reading and writing at once, edge-triggered
 * (EPOLLET), and stays in the set until weft_close: no epoll_ctl per wait.
 * Its epoll data is (generation << 32 | number); see `seq` in poller.h.
 *
 * Who polls. Not a thread of its own: an idle worker, as in Go's
 * findrunnable. A worker about to park while tasks wait on descriptors
 * takes the poller role (one worker at a time) and sleeps in epoll_wait
 * instead of on its futex, bounded by its nearest timer. Work made
 * runnable elsewhere wakes it through the eventfd (worker.c's wake()
 * knows which sleep a worker is in). Busy workers also poll without
 * blocking every 61 scheduling decisions, so ready descriptors are noticed
 * while every worker is busy. A task that starts waiting while no worker
 * polls and one is parked wakes that one to take the role (worker.c).
 *
 * Edges and the ready flag. With edge triggering an event comes once per
 * change. The poller, holding the record's lock, wakes every task waiting
 * in that direction; if none was waiting, it sets the direction's ready
 * flag instead, and the next task about to wait takes the flag and retries
 * its call rather than sleeping. A task tests the flag and queues itself
 * under the same lock, so an edge is either seen by it or delivered to it;
 * readiness is a hint, and every caller retries its call and waits again
 * on EAGAIN.
 *
 * One look at the level before sleeping. An edge is only news of a
 * change: a caller that got EAGAIN while data was in fact there (the
 * fault-injection tests make such calls on purpose) would wait for an
 * edge that never comes. So a
 * task about to sleep asks poll(2) for the descriptor's state, under the
 * record's lock, and retries instead if it is ready: one system call per
 * sleep, which also makes weft_fd_wait return at once for a descriptor
 * that is already ready.
 *
 * Waiting. A task queues one waiter per direction it waits for (both on
 * its stack) under the record's lock, and keeps the lock through its
 * switch (waitq.c's protocol), so the poller cannot find it before its
 * context is saved. Whichever of the poller, its deadline, a canceller or
 * weft_close ends the wait first wins the wake word's CAS.
 *
 * Closing. weft_close takes the record's lock, removes the descriptor
 * from the set, bumps the generation, wakes its waiters with -EBADF, and
 * only then closes it. An event for the old descriptor that a poller
 * already fetched carries the old generation and is dropped, so it cannot
 * reach a new descriptor that gets the same number.
 *
 * Threads: the waiting side is task context; weft__poller_poll runs on the
 * polling worker's thread, outside any task; weft_close and weft_socket
 * may be called from any thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "poller.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "runtime.h"
#include "waitq.h"
#include "worker.h"

#define RD 0
#define WR 1
#define MAX_EVENTS 128
#define CHUNK (1u << WEFT__PFD_CHUNK_BITS)

/* ---- the set and the descriptor records --------------------------------- */

int weft__poller_init(struct weft__poller *p)
{
    memset(p, 0, sizeof *p);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->evfd < 0) {
        int err = -errno;
        close(p->epfd);
        return err;
    }
    /* Level-triggered: it stays readable until drained. Its data is a
     * number no descriptor record can have. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0) {
        int err = -errno;
        close(p->evfd);
        close(p->epfd);
        return err;
    }
    struct epoll_event none[1];
    p->pwait2 = epoll_pwait2(p->epfd, none, 1, &(struct timespec){0, 0}, NULL) >= 0;
    return 0;
}

void weft__poller_term(struct weft__poller *p)
{
    close(p->evfd);
    close(p->epfd);
    for (unsigned i = 0; i < WEFT__PFD_DIR; i++) {
        struct weft__pfd *c = atomic_load_explicit(&p->dir[i], memory_order_relaxed);
        if (c)
            weft__free(c, CHUNK * sizeof *c);
    }
}

/* fd's record, made if `make` and it has none yet; NULL if it has none
 * (or no memory: *err says which). Any thread. */
static struct weft__pfd *pfd_get(struct weft__poller *p, int fd, bool make, int *err)
{
    unsigned i = (unsigned)fd >> WEFT__PFD_CHUNK_BITS;
    if (i >= WEFT__PFD_DIR) {
        *err = -EINVAL;
        return NULL;
    }
    /* Acquire: the chunk's initialisation happened before its pointer. */
    struct weft__pfd *c = atomic_load_explicit(&p->dir[i], memory_order_acquire);
    if (!c) {
        if (!make) {
            *err = 0;
            return NULL;
        }
        struct weft__pfd *fresh = weft__zalloc(CHUNK * sizeof *fresh);
        if (!fresh) {
            *err = -ENOMEM;
            return NULL;
        }
        for (unsigned k = 0; k < CHUNK; k++) {
            weft__lock_init(&fresh[k].lock);
            weft__waitq_init(&fresh[k].q[RD]);
            weft__waitq_init(&fresh[k].q[WR]);
        }
        struct weft__pfd *none = NULL;
        if (atomic_compare_exchange_strong_explicit(&p->dir[i], &none, fresh,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            c = fresh;
        } else {
            weft__free(fresh, CHUNK * sizeof *fresh);
            c = none;
        }
    }
    return &c[(unsigned)fd & (CHUNK - 1)];
}

/* Ends every wait in direction d of f with `status` (0 or -EBADF) and the
 * ready events `ev`; returns how many it ended. Under f->lock. */
static unsigned wake_dir(struct weft__pfd *f, int d, unsigned ev, int status)
{
    unsigned n = 0;
    struct weft__waiter *w;
    while ((w = f->q[d].head) != NULL) {
        weft__waitq_unlink(&f->q[d], w);
        /* Written before the CAS: the waiter reads them once resumed. A
         * waker that loses the CAS may write them too; the waiter ORs the
         * events of both its records, which stays a correct hint. */
        w->value = (void *)((uintptr_t)w->value | ev);
        if (status)
            w->status = status;
        if (weft__wake(w->task, w->seq, WEFT_WAKE_WOKEN))
            n++;
    }
    return n;
}

/* Forgets f's descriptor: out of the set, a new generation, waiters woken
 * with -EBADF. Under f->lock. */
static void pfd_forget(struct weft__poller *p, struct weft__pfd *f, int fd)
{
    if (f->registered)
        (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
    f->registered = 0;
    f->seq++;
    f->ready[RD] = f->ready[WR] = 0;
    wake_dir(f, RD, WEFT_READABLE, -EBADF);
    wake_dir(f, WR, WEFT_WRITABLE, -EBADF);
}

/* fd is a descriptor just made (socket, accept4), non-blocking: whatever
 * the runtime knew of an older descriptor with its number is dropped. */
static void fd_fresh(int fd)
{
    struct weft__runtime *rt = weft__rt;
    if (!rt)
        return;
    int err;
    struct weft__pfd *f = pfd_get(&rt->poller, fd, false, &err);
    if (!f)
        return; /* no record: nothing known, nothing stale */
    weft__lock_acquire(&f->lock);
    pfd_forget(&rt->poller, f, fd);
    atomic_store_explicit(&f->nonblock, 1, memory_order_relaxed);
    weft__lock_release(&f->lock);
}

int weft__fd_dup(int fd)
{
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return -errno;
    fd_fresh(d);
    return d;
}

void weft__fd_closed_elsewhere(int fd)
{
    struct weft__runtime *rt = weft__rt;
    if (!rt || fd < 0)
        return;
    int err;
    struct weft__pfd *f = pfd_get(&rt->poller, fd, false, &err);
    if (!f)
        return;
    weft__lock_acquire(&f->lock);
    /* Under the record's lock, so that no task can start waiting on the
     * number between the look and the forgetting: a descriptor that takes
     * the number meanwhile is new (not in the set, no waiter yet), and
     * forgetting costs it nothing. */
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
        pfd_forget(&rt->poller, f, fd);
        atomic_store_explicit(&f->nonblock, 0, memory_order_relaxed);
    }
    weft__lock_release(&f->lock);
}

/* ---- polling -------------------------------------------------------------- */

void weft__poller_interrupt(struct weft__poller *p)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so the poll will return anyway. */
    ssize_t r = write(p->evfd, &one, sizeof one);
    (void)r;
}

static int epoll_until(struct weft__poller *p, struct epoll_event *ev, uint64_t deadline)
{
    if (deadline == 0)
        return epoll_wait(p->epfd, ev, MAX_EVENTS, 0);
    if (deadline == UINT64_MAX)
        return epoll_wait(p->epfd, ev, MAX_EVENTS, -1);
    uint64_t now = weft_now();
    uint64_t left = deadline > now ? deadline - now : 0;
    if (p->pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        return epoll_pwait2(p->epfd, ev, MAX_EVENTS, &ts, NULL);
    }
    /* Milliseconds, rounded up: waking early would only poll again. */
    uint64_t ms = (left + 999999) / 1000000;
    return epoll_wait(p->epfd, ev, MAX_EVENTS, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

unsigned weft__poller_poll(struct weft__worker *w, uint64_t deadline, bool *timed_out)
{
    struct weft__poller *p = &w->rt->poller;
    struct epoll_event ev[MAX_EVENTS];
    *timed_out = false;
    atomic_fetch_add_explicit(&p->polls, 1, memory_order_relaxed);
    int n = epoll_until(p, ev, deadline);
    if (n < 0)
        return 0; /* EINTR: the caller looks around and polls again */
    if (n == 0) {
        *timed_out = deadline != 0;
        return 0;
    }
    unsigned woken = 0;
    weft__worker_poll_begin(w);
    for (int i = 0; i < n; i++) {
        uint64_t data = ev[i].data.u64;
        if (data == UINT64_MAX) {
            uint64_t v;
            ssize_t r = read(p->evfd, &v, sizeof v);
            (void)r;
            continue;
        }
        int fd = (int)(uint32_t)data, err;
        struct weft__pfd *f = pfd_get(p, fd, false, &err);
        if (!f)
            continue;
        uint32_t e = ev[i].events;
        unsigned ready = 0;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR))
            ready |= WEFT_READABLE;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ready |= WEFT_WRITABLE;
        weft__lock_acquire(&f->lock);
        if (f->registered && f->seq == (uint32_t)(data >> 32)) {
            for (int d = RD; d <= WR; d++) {
                if (!(ready & (1u << d)))
                    continue;
                unsigned k = wake_dir(f, d, ready, 0);
                if (k == 0)
                    f->ready[d] = 1;
                woken += k;
            }
        }
        weft__lock_release(&f->lock);
    }
    weft__worker_poll_end(w);
    return woken;
}

/* ---- waiting on a descriptor ------------------------------------------ */

/* Makes fd non-blocking, once per generation of its record. */
static int prepare(struct weft__poller *p, int fd, struct weft__pfd **out)
{
    int err;
    struct weft__pfd *f = pfd_get(p, fd, true, &err);
    if (!f)
        return err;
    *out = f;
    if (atomic_load_explicit(&f->nonblock, memory_order_relaxed))
        return 0;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    atomic_store_explicit(&f->nonblock, 1, memory_order_relaxed);
    return 0;
}

/* Adds fd to the set with f's generation. Under f->lock. */
static int enroll(struct weft__poller *p, struct weft__pfd *f, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)f->seq << 32 | (uint32_t)fd};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* EEXIST: the number's earlier descriptor was closed with close(2)
         * while a duplicate keeps it in the set; this takes it over. */
        if (errno != EEXIST || epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
            return -errno;
    }
    f->registered = 1;
    return 0;
}

int weft__fd_level(int fd, unsigned events)
{
    struct pollfd pf = {.fd = fd,
                        .events = (short)((events & WEFT_READABLE ? POLLIN | POLLRDHUP : 0) |
                                          (events & WEFT_WRITABLE ? POLLOUT : 0))};
    unsigned got = 0;
    if (poll(&pf, 1, 0) > 0) {
        if (pf.revents & POLLNVAL)
            return -EBADF;
        if (pf.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))
            got |= WEFT_READABLE;
        if (pf.revents & (POLLOUT | POLLHUP | POLLERR))
            got |= WEFT_WRITABLE;
    }
    return (int)got;
}

/* The wait of weft_fd_wait, for an fd that prepare() has seen. */
static int fd_wait(struct weft__runtime *rt, struct weft__task *self, struct weft__pfd *f, int fd,
                   unsigned events, uint64_t deadline)
{
    struct weft__poller *p = &rt->poller;
    weft__lock_acquire(&f->lock);
    if (!f->registered) {
        int err = enroll(p, f, fd);
        if (err < 0) {
            weft__lock_release(&f->lock);
            return err;
        }
    }
    unsigned got = 0;
    for (int d = RD; d <= WR; d++) {
        if ((events & (1u << d)) && f->ready[d]) {
            f->ready[d] = 0;
            got |= 1u << d;
        }
    }
    /* The descriptor's state now, level-triggered: an edge can be lost
     * to a caller whose EAGAIN was spurious (the fault-injection tests
     * make them), and weft_fd_wait's own callers expect a ready
     * descriptor to return at once. Under the lock: an edge after this
     * look finds the waiter queued. */
    if (!got) {
        int level = weft__fd_level(fd, events);
        if (level < 0) {
            weft__lock_release(&f->lock);
            return level;
        }
        got = (unsigned)level;
    }
    if (got) {
        weft__lock_release(&f->lock);
        return (int)got;
    }
    int err = weft__wait_check(self, deadline);
    if (err < 0) {
        weft__lock_release(&f->lock);
        return err;
    }
    struct weft__waiter local[2], *me = weft__waiters(self, local, 2);
    uint64_t seq = weft__wait_seq(self);
    for (int d = RD; d <= WR; d++) {
        me[d] = (struct weft__waiter){.task = self, .seq = seq};
        if (events & (1u << d))
            weft__waitq_push(&f->q[d], &me[d]);
    }
    WEFT_CNT_ADD(self->worker->n.io_waits, 1);
    /* Before the look at idle workers (a full fence): a worker parking
     * meanwhile sees this count, or this task sees it idle. */
    atomic_fetch_add(&p->nwaiting, 1);
    weft__worker_io_waiting(rt);
    int how = weft__wait(self, seq, &f->lock, deadline, WEFT_W_IO, f, false);
    atomic_fetch_sub(&p->nwaiting, 1);
    /* Whoever ended the wait unlinked at most the record it woke. */
    weft__lock_acquire(&f->lock);
    weft__waitq_unlink(&f->q[RD], &me[RD]);
    weft__waitq_unlink(&f->q[WR], &me[WR]);
    weft__lock_release(&f->lock);
    if (how != WEFT_WAKE_WOKEN)
        return weft__wait_error(self, how);
    if (me[RD].status < 0 || me[WR].status < 0)
        return -EBADF;
    unsigned ready = (unsigned)((uintptr_t)me[RD].value | (uintptr_t)me[WR].value);
    return (int)(ready ? ready : events);
}

/* The calling task and its runtime, or -EPERM. */
static int io_task(struct weft__runtime **rt, struct weft__task **self)
{
    *rt = weft__rt;
    *self = weft__current_task();
    return *rt && *self ? 0 : -EPERM;
}

/* The start of every call on fd: the calling task's runtime (-EPERM
 * outside a task), fd's record, fd made non-blocking. */
static int io_open(int fd, struct weft__runtime **rt, struct weft__pfd **f)
{
    struct weft__task *self;
    int err = io_task(rt, &self);
    if (err < 0)
        return err;
    if (fd < 0)
        return -EBADF;
    return prepare(&(*rt)->poller, fd, f);
}

/* GIL mode: the token is released around each I/O system call, as
 * CPython releases the GIL (weft__worker_gil_io_begin). gil_io_end keeps
 * the call's errno. */
static inline bool gil_io_begin(struct weft__runtime *rt)
{
    return __builtin_expect(rt->gil_on, 0) && weft__worker_gil_io_begin(weft__worker_self());
}

static void gil_io_end(bool released)
{
    if (released) {
        int e = errno;
        weft__worker_gil_io_end(weft__worker_self());
        errno = e;
    }
}

int weft_fd_wait(int fd, unsigned events, uint64_t deadline)
{
    struct weft__runtime *rt;
    struct weft__task *self;
    int err = io_task(&rt, &self);
    if (err < 0)
        return err;
    if (fd < 0 || !(events & (WEFT_READABLE | WEFT_WRITABLE)) ||
        (events & ~(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    struct weft__pfd *f = NULL;
    if ((err = prepare(&rt->poller, fd, &f)) < 0)
        return err;
    return fd_wait(rt, self, f, fd, events, deadline);
}

/* ---- the calls ---------------------------------------------------------- */

enum op { OP_READ, OP_WRITE, OP_RECV, OP_SEND };

static ssize_t do_op(enum op op, int fd, void *buf, size_t n, int flags)
{
    switch (op) {
    case OP_READ:
        return read(fd, buf, n);
    case OP_WRITE:
        return write(fd, buf, n);
    case OP_RECV:
        return recv(fd, buf, n, flags);
    default:
        return send(fd, buf, n, flags | MSG_NOSIGNAL);
    }
}

/* One call of `op`, waiting while it would block. */
static ssize_t io(enum op op, int fd, void *buf, size_t n, int flags, uint64_t deadline)
{
    struct weft__runtime *rt;
    struct weft__pfd *f = NULL;
    int err = io_open(fd, &rt, &f);
    if (err < 0)
        return err;
    unsigned dir = op == OP_READ || op == OP_RECV ? WEFT_READABLE : WEFT_WRITABLE;
    for (;;) {
        bool released = gil_io_begin(rt);
        ssize_t r = do_op(op, fd, buf, n, flags);
        gil_io_end(released);
        if (r >= 0)
            return r;
        err = weft__errno(); /* a loop around a wait */
        if (err == EINTR)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
            return -err;
        /* The task may have moved: the caller is read afresh each time. */
        int w = fd_wait(rt, weft__current_task(), f, fd, dir, deadline);
        if (w < 0)
            return w;
    }
}

ssize_t weft_read(int fd, void *buf, size_t count)
{
    return io(OP_READ, fd, buf, count, 0, WEFT__NEVER);
}

ssize_t weft_read_until(int fd, void *buf, size_t count, uint64_t deadline)
{
    return io(OP_READ, fd, buf, count, 0, deadline);
}

ssize_t weft_write(int fd, const void *buf, size_t count)
{
    return io(OP_WRITE, fd, (void *)buf, count, 0, WEFT__NEVER);
}

ssize_t weft_write_until(int fd, const void *buf, size_t count, uint64_t deadline)
{
    return io(OP_WRITE, fd, (void *)buf, count, 0, deadline);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
    return io(OP_RECV, fd, buf, len, flags, WEFT__NEVER);
}

ssize_t weft_recv_until(int fd, void *buf, size_t len, int flags, uint64_t deadline)
{
    return io(OP_RECV, fd, buf, len, flags, deadline);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
    return io(OP_SEND, fd, (void *)buf, len, flags, WEFT__NEVER);
}

ssize_t weft_send_until(int fd, const void *buf, size_t len, int flags, uint64_t deadline)
{
    return io(OP_SEND, fd, (void *)buf, len, flags, deadline);
}

/* Every byte of buf, with as many calls of `op` (a write or a send) as
 * it takes: count, or the error with *written (if not NULL) the bytes that
 * went out before it. */
static ssize_t put_all(enum op op, int fd, const void *buf, size_t count, size_t *written,
                       uint64_t deadline)
{
    size_t done = 0;
    while (done < count) {
        ssize_t r = io(op, fd, (char *)buf + done, count - done, 0, deadline);
        if (r < 0) {
            if (written)
                *written = done;
            return r;
        }
        done += (size_t)r;
    }
    if (written)
        *written = done;
    return (ssize_t)done;
}

ssize_t weft_write_all(int fd, const void *buf, size_t count, size_t *written, uint64_t deadline)
{
    return put_all(OP_WRITE, fd, buf, count, written, deadline);
}

ssize_t weft__send_all(int fd, const void *buf, size_t count, uint64_t deadline)
{
    return put_all(OP_SEND, fd, buf, count, NULL, deadline);
}

int weft_accept_until(int fd, struct sockaddr *addr, socklen_t *addrlen, uint64_t deadline)
{
    struct weft__runtime *rt;
    struct weft__pfd *f = NULL;
    int err = io_open(fd, &rt, &f);
    if (err < 0)
        return err;
    for (;;) {
        bool released = gil_io_begin(rt);
        int c = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        gil_io_end(released);
        if (c >= 0) {
            fd_fresh(c);
            return c;
        }
        err = weft__errno(); /* a loop around a wait */
        /* A connection reset before it was accepted: take the next one. */
        if (err == EINTR || err == ECONNABORTED)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
            return -err;
        int w = fd_wait(rt, weft__current_task(), f, fd, WEFT_READABLE, deadline);
        if (w < 0)
            return w;
    }
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return weft_accept_until(fd, addr, addrlen, WEFT__NEVER);
}

int weft_connect_until(int fd, const struct sockaddr *addr, socklen_t addrlen, uint64_t deadline)
{
    struct weft__runtime *rt;
    struct weft__pfd *f = NULL;
    int err = io_open(fd, &rt, &f);
    if (err < 0)
        return err;
    bool released = gil_io_begin(rt);
    int c = connect(fd, addr, addrlen);
    gil_io_end(released);
    if (c == 0)
        return 0;
    err = errno;
    /* EINTR: the connection goes on in the background, as EINPROGRESS. */
    if (err != EINPROGRESS && err != EINTR && err != EALREADY)
        return -err;
    for (;;) {
        int w = fd_wait(rt, weft__current_task(), f, fd, WEFT_WRITABLE, deadline);
        if (w < 0)
            return w;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            return -weft__errno(); /* after a wait: see weft__errno */
        if (soerr != 0)
            return -soerr;
        /* Writable and no error: connected, unless the edge was stale. */
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
            return 0;
        err = weft__errno();
        if (err != ENOTCONN)
            return -err;
    }
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    return weft_connect_until(fd, addr, addrlen, WEFT__NEVER);
}

int weft_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return -errno;
    fd_fresh(fd);
    return fd;
}

int weft_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    struct weft__runtime *rt = weft__rt;
    if (rt) {
        int err;
        struct weft__pfd *f = pfd_get(&rt->poller, fd, false, &err);
        if (f) {
            weft__lock_acquire(&f->lock);
            pfd_forget(&rt->poller, f, fd);
            atomic_store_explicit(&f->nonblock, 0, memory_order_relaxed);
            weft__lock_release(&f->lock);
        }
    }
    /* Linux closes the descriptor even when close reports an error
     * (EINTR included): never retry. */
    return close(fd) == 0 ? 0 : -errno;
}
