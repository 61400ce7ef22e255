/*
 * The poller: one epoll set per runtime, waited on by an idle worker, and
 * the record of each descriptor that tasks wait on. The protocol is in
 * poller.c.
 */
#ifndef WEFT_POLLER_H
#define WEFT_POLLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lock.h"
#include "waitq_types.h"

struct weft__worker;

/* One descriptor number's record. `seq` is the number's generation: it
 * goes into every epoll registration and is bumped whenever the number is
 * forgotten (weft_close) or handed out afresh (weft_socket, weft_accept),
 * so an event of an older descriptor is recognised and dropped. */
struct weft__pfd {
    struct weft__lock lock;    /* guards everything below except `nonblock`'s fast read */
    uint32_t seq;
    _Atomic uint8_t nonblock;  /* O_NONBLOCK is set on this generation */
    uint8_t registered;        /* in the epoll set, with `seq` */
    uint8_t ready[2];          /* an edge arrived with no waiter: retry before waiting */
    struct weft__waitq q[2];   /* tasks waiting to read [0] and to write [1] */
};

#define WEFT__POLL_COMPUTING 1 /* poller.until while the poller reads the heaps */
#define WEFT__PFD_CHUNK_BITS 10
#define WEFT__PFD_DIR 4096 /* chunk pointers: descriptors up to 4 Mi */

struct weft__poller {
    int epfd;                      /* the epoll set */
    int evfd;                      /* eventfd that interrupts a blocking poll */
    _Atomic uint32_t busy;         /* the poller role: a worker is polling */
    _Atomic uint64_t nwaiting;     /* tasks inside weft_fd_wait's wait */
    _Atomic uint64_t polls;        /* epoll_wait calls */
    _Atomic uint64_t until;        /* the deadline a parked poller sleeps until; 0: no
                                      parked poller; WEFT__POLL_COMPUTING: being set */
    bool pwait2;                   /* epoll_pwait2 works (nanosecond timeouts) */
    struct weft__pfd *_Atomic dir[WEFT__PFD_DIR];
};

/* Opens the epoll set and the eventfd. Returns 0 or -errno. */
int weft__poller_init(struct weft__poller *p);
/* Closes them and frees the descriptor records. No task may be waiting. */
void weft__poller_term(struct weft__poller *p);

/* Takes the poller role (only one worker polls at a time); returns whether
 * it did. Any worker. */
static inline bool weft__poller_acquire(struct weft__poller *p)
{
    return atomic_load_explicit(&p->busy, memory_order_relaxed) == 0 &&
           atomic_exchange(&p->busy, 1) == 0;
}
static inline void weft__poller_release(struct weft__poller *p)
{
    atomic_store(&p->busy, 0);
}

/* Whether tasks wait on descriptors, so that some worker must poll. */
static inline bool weft__poller_wanted(struct weft__poller *p)
{
    return atomic_load(&p->nwaiting) != 0;
}

/* With the role held: waits in epoll until `deadline` (monotonic ns; 0:
 * do not block; UINT64_MAX: no limit), an event, or an interruption, and
 * wakes the tasks whose descriptors are ready (onto w's run queue).
 * Returns how many tasks it woke; *timed_out says whether the deadline
 * passed with nothing to report. Worker w's thread, outside any task. */
unsigned weft__poller_poll(struct weft__worker *w, uint64_t deadline, bool *timed_out);

/* weft_write_all on a socket, each call a send with MSG_NOSIGNAL: a peer
 * that is gone is -EPIPE (or -ECONNRESET) for the caller, never a SIGPIPE
 * for the process. count, or the error. Task context; suspends. */
ssize_t weft__send_all(int fd, const void *buf, size_t count, uint64_t deadline);

/* Whether fd is ready now for `events` (WEFT_READABLE, WEFT_WRITABLE),
 * level-triggered, by one poll(2) that does not block: the directions
 * ready (a hang-up or an error counts as both), 0, or -EBADF if fd is not
 * open. Any thread. */
int weft__fd_level(int fd, unsigned events);

/* A duplicate of fd (F_DUPFD_CLOEXEC) that the poller knows as new, as it
 * knows weft_socket's: the new number, or -errno. fd must be non-blocking
 * (the duplicate shares that flag, and the poller records it as set).
 * Any thread. */
int weft__fd_dup(int fd);

/* fd was closed with close(2), not weft_close, by code that cannot be
 * changed (libcurl, see curl.c): if the number is still free, the poller
 * forgets it as weft_close would have, waking its waiters with -EBADF, so
 * that a later descriptor with the number is added to the epoll set when
 * a task waits on it. A number taken again meanwhile is left alone: its
 * new descriptor may be waited on already. Any thread. */
void weft__fd_closed_elsewhere(int fd);

/* Makes a blocking weft__poller_poll return. Any thread. */
void weft__poller_interrupt(struct weft__poller *p);

#endif
