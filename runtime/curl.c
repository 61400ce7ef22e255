/*
 * libcurl: weft_curl_perform and weft_http_get, driven by the runtime's
 * own poller.
 *
 * One multi handle per runtime, made by the first transfer and cleaned up
 * by the runtime's end (weft__curl_term, which closes the connections left
 * in its cache). Every transfer of every task goes through it, so its
 * connection cache is shared: a keep-alive connection that one task's
 * transfer leaves idle is the next task's. libcurl is told about readiness
 * and time only through curl_multi_socket_action: its socket callback says
 * which descriptors to watch for what, its timer callback when to call
 * back with CURL_SOCKET_TIMEOUT. Nothing polls on the side.
 *
 * The lock. A multi handle must never be used by two threads at once, and
 * a task may move between workers at any suspension, so every curl_multi_*
 * call is made under `mu`, a pthread mutex, and nothing suspends while it
 * is held: libcurl never waits (its sockets are non-blocking, its resolver
 * is threaded), and the easy handles' callbacks must not suspend (weft/
 * curl.h says so). So a holder is never switched out, and the mutex is
 * held for one socket_action's worth of work (microseconds). The callbacks
 * below (socket, timer, open, close) run inside those calls, under `mu`;
 * every field of struct weft__curl and struct sock is read and written
 * under it, except `holder` and what the done and spare locks guard.
 * `holder` lets the open and close callbacks tell a call of ours from a
 * transfer run elsewhere with an easy handle that still has them set.
 *
 * Whoever releases `mu` first finishes the work curl asked for meanwhile
 * (unlock): it starts the transfers posted meanwhile and takes the turns
 * of the watchers that handed their wake-ups over (below), runs the
 * timeouts that are due (curl asks for a timeout of 0 each time a
 * transfer is added, so a new transfer starts in its caller's own task,
 * without a switch), reads curl's messages and wakes the tasks whose
 * transfers ended, and spawns the tasks below when they are missing.
 *
 * Posting. A caller of weft_curl_perform that finds `mu` held does not
 * wait for it: it pushes its record onto `posted` (a lock-free stack) and
 * goes on to wait for its transfer's end, and the holder starts it in its
 * unlock, in one curl call with the others posted meanwhile. With several
 * workers, a caller blocked on the lock blocked its worker's thread (a
 * futex wait and wake for most requests of W8's no-delay case on 2
 * workers); posted, the thread runs other tasks. After its release the
 * holder looks at the list once more, and takes `mu` again if a post came
 * too late for its last look (unlock). A watcher that wakes to find `mu`
 * held hands its wake-up over the same way (hand_over): it pushes a
 * record of what it woke to onto `events` and waits, as a task, until the
 * holder has taken its turn with curl for it (watch_turn) and said what
 * to wait for next; it must not wait on its socket again before curl has
 * read what is there, or the poller's look at the level would wake it at
 * once. So no worker's thread blocks on `mu` in the steady state; the
 * timer task, a watcher's first turn and a cancelled caller's removal
 * still take it the blocking way.
 *
 * Watchers. Each socket curl wants watched has one task, its watcher, that
 * loops: weft_fd_wait for what curl wants, then curl_multi_socket_action
 * with what was ready. Readiness is edge-triggered in the poller, and
 * libcurl reads and writes until it would block, so every edge is handed
 * to curl once. A watcher waits only for the directions curl asked for,
 * which leaves the poller's ready flag of the other direction for later;
 * when curl widens what it wants while the watcher waits on something else,
 * the change is delivered by cancelling the watcher (weft_cancel: a
 * request that finds it running stays pending, so no change is lost
 * between its look at `want` and its wait), and it waits again. When curl
 * stops wanting a socket whose connection goes back to the cache, the
 * watcher stays, idle, waiting to read, and is simply reused when a later
 * transfer takes the connection: no task per request. Watchers (and the
 * timer task) end when no transfer is left, so that a run whose tasks are
 * all done ends while connections idle in the cache; a socket curl still
 * wants then is watched again at the next transfer.
 *
 * Socket lifetime. Until a socket is connected, its watcher waits not on
 * curl's number but on a duplicate of its own (F_DUPFD_CLOEXEC), which
 * only weft closes, with weft_close, so the poller never knows a number
 * that curl closes behind our back. curl does that to the sockets it
 * makes itself (the threaded resolver's socketpair), with close(2) after
 * CURL_POLL_REMOVE, and libcurl 7.88.0 to 8.1.2 (Debian 12 has 7.88.1)
 * also to those from on_open that never connected (a transfer taken out
 * while it connects, a failed attempt among several addresses), with
 * close(2), without on_close and before their CURL_POLL_REMOVE (libcurl
 * 8.2.0 mended it: curl pull request 11439). A number so closed may be
 * handed to another thread's socket at once; waited on directly, it left
 * a stale record and epoll registration behind, and a later socket with
 * the number was taken for the old one. So:
 *   - A socket from on_open that curl has asked to read is live: it is
 *     connected, and curl closes connected sockets through on_close. Its
 *     duplicate then goes (sock_settle, when nobody waits on it) and its
 *     watcher waits on curl's number, `direct`: one descriptor per
 *     connection. At CURL_POLL_REMOVE a live socket is kept, idle, for
 *     its connection's next transfer; any other record goes, with its
 *     duplicate, and curl's number is curl's to close.
 *   - on_close retires the record and closes curl's number (a direct
 *     socket's through the watcher, below); on_open drops any record still
 *     held for the number it is given.
 *   - Retiring closes what the watcher waits on at once when no other task
 *     watches it (no watcher, or the watcher itself is inside curl), and
 *     otherwise marks the socket dead, cancels the watcher and leaves the
 *     close to it: a watcher just past its look at the socket, about to
 *     wait, would otherwise wait on a new descriptor that got the number,
 *     and could take that descriptor's edge (its ready flag) before its
 *     own waiter.
 *   - Near the descriptor limit (sockets numbered in the upper half of
 *     RLIMIT_NOFILE, or no descriptor left for a duplicate) a connecting
 *     socket is direct from the start, so a burst of connections does not
 *     spend the descriptors the later sockets need; if curl takes it out
 *     before it is live, its record goes at CURL_POLL_REMOVE without
 *     closing anything, and the poller forgets the number if it is free
 *     (sock_lost).
 * The callbacks know a call of ours by `holder`, which is why it is read
 * through thread_id(): the thread a task runs on is never cached across a
 * suspension (docs/design/rules.md).
 *
 * Completion. A caller waits for its transfer with the wait primitive of
 * waitq.c: its record (struct xfer, on its stack) is found by easy handle
 * in a hash; the task that reads curl's DONE message for it takes the
 * handle out of the multi handle, then settles the record and wakes the
 * caller under `done_lock`, which the caller holds through its switch; so
 * a woken caller returns without taking `mu` again, and the record is not
 * touched after the wake. The wake queues the caller behind the tasks
 * that are ready (weft__wake_later) rather than next: a poll readies many
 * watchers at once, and each would otherwise hand over to its caller,
 * whose next request runs curl's sending code between two watchers' runs
 * of its receiving code. In turn, each runs back to back, and W8's
 * no-delay client took 0.89x the time on 1 worker (docs/bench.md). A caller cancelled (or past its deadline) takes
 * the handle out itself, under `mu`, unless a completer did meanwhile:
 * curl then closes the connection, its watcher ends, and the multi handle
 * holds nothing of the transfer.
 *
 * Threads: weft_curl_perform and weft_http_get are task context; the
 * callbacks run in whichever task (or, at teardown, thread) holds `mu`;
 * weft__curl_term runs once the workers have stopped.
 *
 * Rejected: a weft_mutex for `mu`, which suspends a waiting task instead
 * of its worker: a contended lock is then handed from task to task, and
 * each hand-off readies a task that an idle worker is woken for; on W8's
 * no-delay case with 2 workers that cost 78 us of CPU a request against
 * 55 with the pthread mutex. A thread running curl_multi_poll beside the
 * workers (what the C peer does), since every event would cross threads
 * twice. One driver task for all sockets, since a task can wait on one
 * descriptor only, so per-socket tasks would still be needed to wait and
 * would hand every event over through a channel. A task per transfer
 * waiting on its own socket, since sockets change hands between transfers
 * and the changes arrive in other tasks' calls.
 */
#include "curl.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <limits.h>

#include "alloc.h"
#ifdef WEFT_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include "error.h"
#include "lock.h"
#include "poller.h"
#include "runtime.h"
#include "waitq.h"
#include "weft/curl.h"
#include "worker.h"

#define TASK_STACK (256u * 1024) /* curl's code, TLS handshakes included, runs on it */
#define DRAIN_ROUNDS 64          /* due timeouts one unlock runs before the timer task takes over */
#define SPARE_MAX 64             /* idle easy handles kept for weft_http_get */

/* libcurl's functions, found at the first transfer (global_init), so that
 * libweft does not load libcurl and the libraries it needs (TLS, LDAP,
 * Kerberos, ...) into every program, only into those that make a
 * transfer: loading them costs a few milliseconds at each start. Written
 * once under global_once; read after it. */
static struct curl_api {
    CURLcode (*global_init)(long flags);
    CURLcode (*global_init_mem)(long flags, curl_malloc_callback m, curl_free_callback f,
                                curl_realloc_callback r, curl_strdup_callback s,
                                curl_calloc_callback c);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *easy);
    CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
    CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t fd, int bits, int *running);
} cu;

/* A socket curl asked the runtime to watch, or opened through on_open.
 * Every field under c->mu. */
struct sock {
    int fd;              /* curl's number for it */
    int wfd;             /* what the watcher waits on: a duplicate of fd, ours; -1: closed */
    unsigned want;       /* WEFT_READABLE | WEFT_WRITABLE that curl wants; 0: none */
    unsigned waiting;    /* what the watcher waits for, from its look at `want` to its relock; 0 */
    bool owned;          /* opened by on_open: curl closes it through on_close, once live */
    bool live;           /* curl asked to read it: connected, so closed through on_close */
    bool dead;           /* curl is done with it: out of the table; the watcher closes and frees */
    bool broken;         /* the poller refused it: unwatched until curl asks again */
    bool queued;         /* on c->unwatched */
    weft_task *watcher;  /* its watcher, or NULL */
    struct sock *next;   /* c->unwatched link */
};

/* One weft_curl_perform, on the caller's stack. Every field but `easy`
 * under c->done_lock; the record is in c->xfers (under c->mu) from the
 * handle's add to its removal. */
/* A record left for the thread inside curl: a posted transfer (xfer), a
 * handed-over wake-up (handoff). Pushed onto one of c's lists without mu,
 * taken under it (post, take_posts). */
struct post {
    struct post *next;
};

#define POSTED(p, type) ((type *)(void *)((char *)(p) - offsetof(type, link)))

struct xfer {
    CURL *easy;
    struct weft__task *task; /* waiting for the end, or NULL */
    uint64_t seq;            /* its wait */
    bool done;
    bool removed;            /* the handle was taken out with it: the caller need not */
    CURLcode code;           /* the transfer's result, once done */
    int err;                 /* weft's own reason it failed (-EMFILE), or 0 */
    struct post link;        /* on c->posted, while the record waits there */
};

/* A watcher's wake-up handed to the thread inside curl (hand_over), on
 * the watcher's stack: what it woke to, and, once the holder has taken
 * its turn for it, what to wait for next. */
struct handoff {
    struct sock *s;
    int r;                 /* weft_fd_wait's return */
    int wfd;               /* what it waited on */
    unsigned ev;           /* then: what to wait for next, */
    int next_wfd;          /* on this, */
    bool on;               /* or false: the watcher ends (s is let go) */
    bool done;             /* under c->ev_lock */
    struct weft__task *task;
    uint64_t seq;          /* its wait for `done` */
    struct post link;      /* on c->events */
};

struct weft__curl {
    pthread_mutex_t mu;
    _Atomic(struct post *) events; /* watchers' wake-ups for the holder (handoff) */
    struct weft__lock ev_lock;  /* the handoff records' `done` and their watchers' waits */
    _Atomic(struct post *) posted; /* transfers to start (xfer) */
    _Atomic uintptr_t holder;  /* the thread holding mu, or 0: written by it, relaxed; a
                                  thread compares it with its own id only */
    CURLM *multi;
    long dup_below;            /* sockets numbered below this get a duplicate (sock_add) */
    struct sock **socks;       /* by fd; nsocks in use */
    size_t socks_cap, nsocks;
    struct xfer **xfers;       /* open addressing by easy pointer, linear probing */
    size_t xcap, nxfers;       /* nxfers: transfers in the multi handle */
    struct sock *unwatched;    /* sockets curl wants and no watcher waits on */
    uint64_t timer_at;         /* when curl wants CURL_SOCKET_TIMEOUT (weft_now); WEFT_NEVER */
    uint64_t timer_sleep;      /* the timer task sleeps until then; 0: it is not asleep */
    weft_task *timer;          /* the timer task, or NULL */
    size_t ntasks;             /* watchers and timer task alive */
    size_t peak;               /* the most transfers in the multi handle at once */
    bool maxconnects_set;      /* weft_curl_multi_setopt set CURLMOPT_MAXCONNECTS */
    int running;               /* transfers running, as curl said last */
    struct weft__lock done_lock; /* the xfer records' wait fields */
    struct weft__lock spare_lock; /* spare, nspare */
    size_t nspare;
    CURL *spare[SPARE_MAX];    /* idle easy handles of weft_http_get */
};

/* ---- the lock -------------------------------------------------------------- */

/* The calling thread. Out of line and with a volatile asm, so that the
 * compiler cannot reuse a value from before a suspension, after which the
 * task may be on another thread: glibc declares pthread_self() const, and
 * a function that calls lock() twice around a wait would otherwise record
 * the first thread as the holder. Any thread. */
static __attribute__((noinline)) uintptr_t thread_id(void)
{
    __asm__ volatile("");
    return (uintptr_t)pthread_self();
}

static void lock(struct weft__curl *c)
{
    pthread_mutex_lock(&c->mu);
    atomic_store_explicit(&c->holder, thread_id(), memory_order_relaxed);
}

/* lock() if mu is free; false if another thread holds it. */
static bool try_lock(struct weft__curl *c)
{
    if (pthread_mutex_trylock(&c->mu) != 0)
        return false;
    atomic_store_explicit(&c->holder, thread_id(), memory_order_relaxed);
    return true;
}

/* The full fence of the post-then-try and release-then-look pairs (a
 * posted transfer, a handed-over wake-up). Out of line: GCC refuses an
 * inlined fence under -fsanitize=thread, which does not model fences
 * (the lists themselves are handed over with release and acquire). */
static __attribute__((noinline)) void full_fence(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}

/* Whether the calling thread holds c->mu, that is, runs inside a curl
 * call of ours. Any thread. */
static bool held(struct weft__curl *c)
{
    return atomic_load_explicit(&c->holder, memory_order_relaxed) == thread_id();
}

/* The running runtime's multi handle state if the calling thread is inside
 * one of its curl calls (a callback of ours), else NULL. Any thread. */
static struct weft__curl *inside(void)
{
    struct weft__runtime *rt = weft__rt;
    struct weft__curl *c = rt ? atomic_load_explicit(&rt->curl, memory_order_acquire) : NULL;
    return c && held(c) ? c : NULL;
}

static void act(struct weft__curl *c, curl_socket_t fd, int bits)
{
    int running = c->running;
    cu.multi_socket_action(c->multi, fd, bits, &running);
    c->running = running;
}

/* ---- transfers by easy handle ------------------------------------------- */

static size_t home(const struct weft__curl *c, const CURL *easy)
{
    uint64_t h = (uint64_t)(uintptr_t)easy * 0x9E3779B97F4A7C15u;
    return (size_t)(h >> 32) & (c->xcap - 1);
}

static size_t xfer_slot(const struct weft__curl *c, const CURL *easy)
{
    size_t i = home(c, easy);
    while (c->xfers[i] && c->xfers[i]->easy != easy)
        i = (i + 1) & (c->xcap - 1);
    return i;
}

static struct xfer *xfer_find(const struct weft__curl *c, const CURL *easy)
{
    return c->xcap ? c->xfers[xfer_slot(c, easy)] : NULL;
}

static int xfer_grow(struct weft__curl *c)
{
    size_t cap = c->xcap ? c->xcap * 2 : 64;
    struct xfer **old = c->xfers, **fresh = weft__zalloc(cap * sizeof *fresh);
    if (!fresh)
        return -ENOMEM;
    size_t old_cap = c->xcap;
    c->xfers = fresh;
    c->xcap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            c->xfers[xfer_slot(c, old[i]->easy)] = old[i];
    if (old)
        weft__free(old, old_cap * sizeof *old);
    return 0;
}

/* Adds x: -EBUSY if its easy handle is in a transfer already. */
static int xfer_add(struct weft__curl *c, struct xfer *x)
{
    if ((c->nxfers + 1) * 2 > c->xcap && xfer_grow(c) < 0)
        return -ENOMEM;
    size_t i = xfer_slot(c, x->easy);
    if (c->xfers[i])
        return -EBUSY;
    c->xfers[i] = x;
    c->nxfers++;
    return 0;
}

/* Removes x, shifting back the records that probed past its slot. */
static void xfer_del(struct weft__curl *c, struct xfer *x)
{
    size_t mask = c->xcap - 1, i = xfer_slot(c, x->easy);
    c->xfers[i] = NULL;
    c->nxfers--;
    for (size_t j = (i + 1) & mask; c->xfers[j]; j = (j + 1) & mask) {
        size_t k = home(c, c->xfers[j]->easy);
        /* The record at j may move to i if its home is not in (i, j]. */
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
            c->xfers[i] = c->xfers[j];
            c->xfers[j] = NULL;
            i = j;
        }
    }
}

/* x's transfer ended with `code` (and weft's `err`, or 0), its handle
 * taken out already if `removed`: wakes its caller. The first end counts.
 * A woken caller may return at once, so x is not touched after the wake
 * (waitq.c). */
static void xfer_settle(struct weft__curl *c, struct xfer *x, CURLcode code, int err,
                        bool removed)
{
    weft__lock_acquire(&c->done_lock);
    if (!x->done) {
        struct weft__task *t = x->task;
        x->task = NULL;
        x->code = code;
        x->err = err;
        x->removed = removed;
        x->done = true;
        if (t)
            weft__wake_later(t, x->seq, WEFT_WAKE_WOKEN);
    }
    weft__lock_release(&c->done_lock);
}

/* ---- sockets ---------------------------------------------------------------- */

static struct sock *sock_at(const struct weft__curl *c, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < c->socks_cap ? c->socks[fd] : NULL;
}

/* Whether s is watched on curl's number itself rather than a duplicate
 * (`direct`: sock_add, sock_settle). */
static bool sock_direct(const struct sock *s)
{
    return s->wfd == s->fd;
}

static struct sock *sock_new(struct weft__curl *c, int fd, int wfd, bool owned)
{
    if ((size_t)fd >= c->socks_cap) {
        size_t cap = c->socks_cap ? c->socks_cap : 256;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct sock **t = weft__realloc(c->socks, c->socks_cap * sizeof *t, cap * sizeof *t);
        if (!t)
            return NULL;
        memset(t + c->socks_cap, 0, (cap - c->socks_cap) * sizeof *t);
        c->socks = t;
        c->socks_cap = cap;
    }
    struct sock *s = weft__zalloc(sizeof *s);
    if (!s)
        return NULL;
    *s = (struct sock){.fd = fd, .wfd = wfd, .owned = owned};
    c->socks[fd] = s;
    c->nsocks++;
    return s;
}

static void sock_close(struct sock *s)
{
    if (s->wfd >= 0)
        (void)weft_close(s->wfd);
    s->wfd = -1;
}

static void unwatched_push(struct weft__curl *c, struct sock *s)
{
    if (s->queued || s->broken)
        return;
    s->queued = true;
    s->next = c->unwatched;
    c->unwatched = s;
}

/* curl is done with s: it leaves the table, and its descriptor is closed
 * now, or by its watcher if that may be about to wait on it: when it is
 * another task, or the caller itself between its look at s and its wait
 * (in its unlock). See the essay. */
static void sock_retire(struct weft__curl *c, struct sock *s)
{
    c->socks[s->fd] = NULL;
    c->nsocks--;
    s->dead = true;
    s->want = 0;
    if (s->watcher && (s->waiting || s->watcher != weft_self())) {
        (void)weft_cancel(s->watcher);
        return;
    }
    sock_close(s);
    /* Queued: freed when popped. Watched by the caller: freed as it ends. */
    if (!s->watcher && !s->queued)
        weft__free(s, sizeof *s);
}

/* Records fd, opened by on_open (`owned`) or by curl itself, with the
 * duplicate its watcher will wait on. An owned socket for which no
 * descriptor is left, or that is numbered in the upper half of the
 * process's limit (RLIMIT_NOFILE), is watched on curl's number itself
 * instead, `direct`: curl closes it through on_close once it is
 * connected, and sock_lost covers the case in which it does not. Returns
 * 0, or -EMFILE, -ENFILE, -ENOMEM. */
static int sock_add(struct weft__curl *c, curl_socket_t fd, bool owned)
{
    /* The upper half of the descriptor space is left to sockets: a burst
     * of connections would otherwise spend it on duplicates, and the
     * sockets after them would find none. */
    int dup = owned && fd >= c->dup_below ? -EMFILE : weft__fd_dup(fd);
    bool direct = false;
    if (dup < 0 && owned && (dup == -EMFILE || dup == -ENFILE)) {
        dup = fd;
        direct = true;
    } else if (dup < 0) {
        return dup;
    }
    if (!sock_new(c, fd, dup, owned)) {
        if (!direct)
            (void)weft_close(dup);
        return -ENOMEM;
    }
    return 0;
}

/* Lets go of direct socket s, which curl may have closed with close(2)
 * already (one that never connected; see the essay) or will close
 * through on_close: the number is curl's, so only the record goes, and
 * the poller forgets the number if it is free. */
static void sock_lost(struct weft__curl *c, struct sock *s)
{
    int fd = s->fd;
    s->wfd = -1;
    sock_retire(c, s);
    weft__fd_closed_elsewhere(fd);
}

/* Owned socket s is live (connected): curl closes it through on_close
 * from now on, so its watcher may wait on curl's number, and the
 * duplicate goes, leaving one descriptor per connection. Only while
 * nobody waits on the duplicate: no watcher yet, or the watcher in its
 * turn. Under mu. */
static void sock_settle(struct sock *s)
{
    if (s->owned && s->live && !s->dead && s->wfd >= 0 && !sock_direct(s)) {
        (void)weft_close(s->wfd);
        s->wfd = s->fd;
    }
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)clientp, (void)purpose;
    int fd = weft_socket(a->family, a->socktype, a->protocol);
    if (fd < 0) {
        errno = -fd;
        return CURL_SOCKET_BAD;
    }
    struct weft__curl *c = inside();
    if (!c)
        return fd;
    /* The number was free, so a record of it is stale: curl closed that
     * socket with close(2) and has not said CURL_POLL_REMOVE (yet). The
     * record goes, with its duplicate. */
    struct sock *stale = sock_at(c, fd);
    if (stale && sock_direct(stale))
        stale->wfd = -1; /* the number is the new socket's */
    if (stale)
        sock_retire(c, stale);
    int err = sock_add(c, fd, true);
    if (err < 0) {
        (void)close(fd); /* never known to the poller */
        errno = -err;
        return CURL_SOCKET_BAD;
    }
    return fd;
}

static int on_close(void *clientp, curl_socket_t fd)
{
    (void)clientp;
    struct weft__curl *c = inside();
    struct sock *s = c ? sock_at(c, fd) : NULL;
    if (s && sock_direct(s)) {
        /* Its watcher waits on the number: closed by it, or now. */
        sock_retire(c, s);
        return 0;
    }
    if (s)
        sock_retire(c, s);
    /* weft_close: the number of a direct socket let go earlier (sock_lost)
     * may still be known to the poller. */
    return weft_close(fd) == 0 ? 0 : 1;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)socketp;
    struct weft__curl *c = userp;
    struct sock *s = sock_at(c, fd);
    if (what == CURL_POLL_REMOVE) {
        /* An owned socket's connection may go back to the cache: its
         * watcher idles until a transfer takes it again, or it closes. */
        if (s && s->owned && s->live)
            s->want = 0;
        else if (s && sock_direct(s))
            sock_lost(c, s);
        else if (s)
            sock_retire(c, s);
        return 0;
    }
    if (!s) {
        /* No descriptor or memory to watch it: the transfer fails (-1
         * would make the whole multi handle unusable). */
        int err = sock_add(c, fd, false);
        struct xfer *x = err < 0 ? xfer_find(c, easy) : NULL;
        if (x)
            xfer_settle(c, x, CURLE_OUT_OF_MEMORY, err, false);
        if (err < 0)
            return 0;
        s = sock_at(c, fd);
    }
    s->want = (what & CURL_POLL_IN ? WEFT_READABLE : 0) |
              (what & CURL_POLL_OUT ? WEFT_WRITABLE : 0);
    if (what & CURL_POLL_IN) {
        s->live = true;
        if (!s->watcher)
            sock_settle(s);
    }
    /* A watcher past its look at `want` (s->waiting set: it may be the
     * caller, in its unlock) waits again if it would miss a direction. */
    if (!s->watcher) {
        s->broken = false;
        unwatched_push(c, s);
    } else if (s->waiting && (s->want & ~s->waiting)) {
        (void)weft_cancel(s->watcher);
    }
    return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    struct weft__curl *c = userp;
    c->timer_at = ms < 0 ? WEFT_NEVER : weft_now() + (uint64_t)ms * WEFT_MSEC;
    /* 0 ("now") is run by whoever unlocks; a later time earlier than what
     * the timer task sleeps (or is about to sleep: it may be the caller,
     * in its unlock) until ends the sleep. */
    if (ms > 0 && c->timer && c->timer_sleep > c->timer_at)
        (void)weft_cancel(c->timer);
    return 0;
}

/* ---- the tasks ---------------------------------------------------------- */

static void *watcher_main(void *arg);
static void *timer_main(void *arg);

static int spawn(weft_task **out, weft_fn fn, void *arg, const char *name)
{
    struct weft_task_opts o = {.name = name, .stack_size = TASK_STACK};
    return weft_spawn_opts(out, fn, arg, &o);
}

/* Starts the tasks that are missing: a watcher for each socket curl wants
 * and nobody watches, the timer task if curl has a timeout. A socket whose
 * task cannot be had (no memory) stays queued and is tried again at the
 * next unlock. Task context, under mu. */
static void supervise(struct weft__curl *c)
{
    if (!c->nxfers || !weft__current_task())
        return;
    while (c->unwatched) {
        struct sock *s = c->unwatched;
        if (s->dead || s->watcher || !s->want || s->broken) {
            c->unwatched = s->next;
            s->queued = false;
            if (s->dead && !s->watcher)
                weft__free(s, sizeof *s);
            continue;
        }
        if (spawn(&s->watcher, watcher_main, s, "curl socket") < 0) {
            s->watcher = NULL;
            break;
        }
        c->ntasks++;
        c->unwatched = s->next;
        s->queued = false;
    }
    if (!c->timer && c->timer_at != WEFT_NEVER) {
        if (spawn(&c->timer, timer_main, c, "curl timer") == 0)
            c->ntasks++;
        else
            c->timer = NULL;
    }
}

/* Ends every idle watcher and the timer task: no transfer is left. (One
 * of them may be the caller, finishing the last transfer in its unlock:
 * its next wait returns -ECANCELED, and it ends.) */
static void dismiss(struct weft__curl *c)
{
    for (size_t fd = 0; fd < c->socks_cap; fd++) {
        struct sock *s = c->socks[fd];
        if (s && s->watcher)
            (void)weft_cancel(s->watcher);
    }
    if (c->timer)
        (void)weft_cancel(c->timer);
}

/* Takes x's handle out of the multi handle; the last transfer out
 * dismisses the tasks. Under mu. */
static void xfer_stop(struct weft__curl *c, struct xfer *x)
{
    cu.multi_remove_handle(c->multi, x->easy);
    xfer_del(c, x);
    if (!c->nxfers)
        dismiss(c);
}

/* Runs the timeouts that are due, *budget at most; returns how many. */
static unsigned run_due(struct weft__curl *c, unsigned *budget)
{
    unsigned n = 0;
    while (c->timer_at != WEFT_NEVER && c->timer_at <= weft_now()) {
        if (*budget == 0) {
            /* Still due: the timer task takes over (supervise starts it),
             * between yields. */
            if (c->timer && c->timer_sleep && c->timer != weft_self())
                (void)weft_cancel(c->timer);
            break;
        }
        --*budget;
        n++;
        c->timer_at = WEFT_NEVER;
        act(c, CURL_SOCKET_TIMEOUT, 0);
    }
    return n;
}

/* Takes the transfers curl says are done out of the multi handle and wakes
 * their callers, who so need not take the lock again; returns how many. */
static unsigned collect(struct weft__curl *c)
{
    unsigned n = 0;
    CURLMsg *m;
    int left;
    while ((m = cu.multi_info_read(c->multi, &left)) != NULL) {
        struct xfer *x = m->msg == CURLMSG_DONE ? xfer_find(c, m->easy_handle) : NULL;
        if (!x)
            continue;
        CURLcode code = m->data.result; /* m does not outlive the removal */
        xfer_stop(c, x);
        xfer_settle(c, x, code, 0, true);
        n++;
    }
    return n;
}

static int xfer_start(struct weft__curl *c, struct xfer *x);
static unsigned take_events(struct weft__curl *c);
static void unlock(struct weft__curl *c);

/* Pushes p onto `list` (newest first), then, if mu has come free
 * meanwhile, takes it and does the holder's work, p's among it. This try
 * after the push (behind a full fence) and the holder's look at the lists
 * after its release (behind another, unlock) cannot both miss: if the try
 * fails, whoever holds mu now looks after p. Any thread. */
static void post(struct weft__curl *c, _Atomic(struct post *) *list, struct post *p)
{
    struct post *head = atomic_load_explicit(list, memory_order_relaxed);
    do {
        p->next = head;
    } while (!atomic_compare_exchange_weak_explicit(list, &head, p, memory_order_release,
                                                    memory_order_relaxed));
    full_fence();
    if (try_lock(c))
        unlock(c);
}

/* Empties `list`; returns what it held, oldest first. Under mu. */
static struct post *take_posts(_Atomic(struct post *) *list)
{
    struct post *p = atomic_exchange_explicit(list, NULL, memory_order_acquire);
    struct post *fifo = NULL, *next;
    for (; p; p = next) {
        next = p->next;
        p->next = fifo;
        fifo = p;
    }
    return fifo;
}

/* Starts the transfers posted meanwhile, oldest first; one that cannot
 * start is settled with the reason (its caller returns it). Returns how
 * many it took. Under mu. */
static unsigned start_posted(struct weft__curl *c)
{
    unsigned n = 0;
    for (struct post *p = take_posts(&c->posted), *next; p; p = next, n++) {
        struct xfer *x = POSTED(p, struct xfer);
        next = p->next; /* a settled record's caller may return at once */
        int err = xfer_start(c, x);
        if (err < 0)
            xfer_settle(c, x, err == -ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT, err, true);
    }
    return n;
}

/* Starts the transfers posted meanwhile, runs the timeouts that are due
 * (the start's, among them), hands finished transfers over (taking one
 * out may start a transfer that waited for its connection: a timeout of
 * 0, so round again), starts missing tasks, and releases mu. Then looks
 * for a transfer posted by a caller that found mu held after this
 * thread's last look (the caller's look at mu and this one at the list,
 * each after a full fence, cannot both miss), and if there is one and mu
 * is free, takes mu and goes round again. */
static void unlock(struct weft__curl *c)
{
    for (;;) {
        unsigned budget = DRAIN_ROUNDS;
        while (start_posted(c) + take_events(c) + run_due(c, &budget) + collect(c) > 0) {
        }
        supervise(c);
        atomic_store_explicit(&c->holder, 0, memory_order_relaxed);
        pthread_mutex_unlock(&c->mu);
        full_fence();
        if ((!atomic_load_explicit(&c->posted, memory_order_relaxed) &&
             !atomic_load_explicit(&c->events, memory_order_relaxed)) ||
            !try_lock(c))
            return;
    }
}

/* The watcher of s has its turn with curl, under mu: what it woke to, r
 * from weft_fd_wait on wfd (0 at its start), goes to curl. Returns whether
 * it watches on, with what to wait for in *ev and on what in *next_wfd
 * (and s->waiting set: it is past its look); otherwise s is let go, and
 * freed if curl is done with it. Whoever holds mu: the watcher, or the
 * holder it handed its wake-up to. */
static bool watch_turn(struct weft__curl *c, struct sock *s, int r, int wfd, unsigned *ev,
                       int *next_wfd)
{
    s->waiting = 0;
    if (s->dead) {
        /* Retired meanwhile. */
    } else if (r > 0 && s->want) {
        act(c, s->fd, (r & WEFT_READABLE ? CURL_CSELECT_IN : 0) |
                          (r & WEFT_WRITABLE ? CURL_CSELECT_OUT : 0));
    } else if (r > 0 && weft__fd_level(wfd, WEFT_READABLE) > 0) {
        /* Idle, and something to read that nobody asked for (read afresh:
         * the wake-up may be an edge whose bytes a timeout's curl call read
         * meanwhile): the server closed the connection, or sent bytes out of
         * turn. Waiting again would return at once, for ever (and on one
         * worker nothing else would run). The watcher ends: curl's look at
         * the connection before it reuses one finds it dead and closes it,
         * and if curl wants the socket again first, its wish starts a new
         * watcher (on_socket). */
        goto end;
    } else if (r < 0 && r != -ECANCELED) {
        /* The poller cannot wait on it (-ENOMEM, epoll refused it): curl
         * fails the transfer, if there is one, and closes the connection;
         * the watcher stops, so as not to spin on the error, and curl's
         * next wish for the socket tries again. */
        if (s->want)
            act(c, s->fd, CURL_CSELECT_ERR);
        s->broken = !s->dead;
    }
    if (!s->dead && !s->broken && c->nxfers) {
        /* Idle (its connection in the cache): wait to read, which is what
         * curl wants first when a transfer takes the connection again. */
        *ev = s->want ? s->want : WEFT_READABLE;
        sock_settle(s);
        *next_wfd = s->wfd;
        s->waiting = *ev;
        return true;
    }
end:
    s->watcher = NULL;
    c->ntasks--;
    if (s->dead) {
        sock_close(s);
        if (!s->queued)
            weft__free(s, sizeof *s);
    } else if (s->want) {
        unwatched_push(c, s);
    }
    return false;
}

/* Takes the turns of the watchers that handed their wake-ups over,
 * oldest first, and wakes each; returns how many. Under mu. */
static unsigned take_events(struct weft__curl *c)
{
    unsigned n = 0;
    for (struct post *p = take_posts(&c->events), *next; p; p = next, n++) {
        struct handoff *h = POSTED(p, struct handoff);
        next = p->next; /* a woken watcher may return at once */
        h->on = watch_turn(c, h->s, h->r, h->wfd, &h->ev, &h->next_wfd);
        weft__lock_acquire(&c->ev_lock);
        h->done = true;
        /* Not waiting yet (it will see `done`), or waiting: readied. */
        (void)weft__wake(h->task, h->seq, WEFT_WAKE_WOKEN);
        weft__lock_release(&c->ev_lock);
    }
    return n;
}

/* A watcher whose wake-up finds mu held hands it to the holder instead of
 * blocking its worker's thread on the lock (on 2 workers, most futex
 * waits of W8's no-delay client were watchers'), and waits, without
 * taking mu, until the holder has had its turn for it (take_events, in
 * the holder's unlock; the same look after the release as for posted
 * transfers). Then it knows what to wait for next. The wait ignores
 * cancellation: a cancel stays pending and ends the watcher's next wait
 * on its socket, as one that comes while it is inside curl does. Returns
 * what watch_turn returned. */
static bool hand_over(struct weft__curl *c, struct sock *s, int r, int wfd, unsigned *ev,
                      int *next_wfd)
{
    struct weft__task *self = weft__current_task();
    struct handoff h = {.s = s, .r = r, .wfd = wfd, .task = self, .seq = weft__wait_seq(self)};
    post(c, &c->events, &h.link); /* may take h's turn itself */
    weft__lock_acquire(&c->ev_lock);
    if (h.done)
        weft__lock_release(&c->ev_lock);
    else
        (void)weft__wait(self, h.seq, &c->ev_lock, WEFT_NEVER, WEFT_W_IO, s, true);
    *ev = h.ev;
    *next_wfd = h.next_wfd;
    return h.on;
}

/* Waits on s's descriptor and hands what is ready to curl, until curl is
 * done with s, no transfer is left, or s is idle and readable. */
static void *watcher_main(void *arg)
{
    struct sock *s = arg;
    struct weft__curl *c = atomic_load_explicit(&weft__rt->curl, memory_order_acquire);
    unsigned ev = 0;
    int wfd = -1;
    lock(c);
    bool on = watch_turn(c, s, 0, -1, &ev, &wfd);
    unlock(c);
    while (on) {
        int r = weft_fd_wait(wfd, ev, WEFT_NEVER);
        if (try_lock(c)) {
            on = watch_turn(c, s, r, wfd, &ev, &wfd);
            unlock(c);
        } else {
            on = hand_over(c, s, r, wfd, &ev, &wfd);
        }
    }
    weft_detach(weft_self());
    return NULL;
}

/* Calls curl back when its timeout comes, until no transfer is left. */
static void *timer_main(void *arg)
{
    struct weft__curl *c = arg;
    lock(c);
    while (c->nxfers) {
        uint64_t at = c->timer_at;
        c->timer_sleep = at;
        /* Runs what is due, if anything. */
        unlock(c);
        /* WEFT_NEVER: until a timeout is set (on_timer cancels the sleep).
         * A time that has come was run above: let the others run. */
        if (at > weft_now())
            (void)weft_sleep_until(at);
        else
            (void)weft_yield();
        lock(c);
        c->timer_sleep = 0;
    }
    c->timer = NULL;
    c->ntasks--;
    unlock(c);
    weft_detach(weft_self());
    return NULL;
}

/* ---- the multi handle ----------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_err;

/* Finds libcurl's functions (see `cu`), then runs libcurl's process-wide
 * set-up; once, and never undone, since the program may use libcurl
 * itself after the runtime ends. A libcurl the process has loaded already
 * is the one to use: the program's easy handles come from it. Otherwise
 * libcurl.so.4, or the library WEFT_LIBCURL names. */
#ifdef WEFT_USE_JEMALLOC
/* libcurl's memory from jemalloc (curl_global_init_mem), as the runtime's
 * own: a transfer's buffers are made on one worker's thread and often
 * freed on another's, which the C library's allocator pays for in arena
 * locks and consolidation (11% of W8's no-delay client on 2 workers, in
 * malloc and free), and jemalloc's thread caches do not. */
static void *cm_malloc(size_t n)
{
    return mallocx(n ? n : 1, 0);
}

static void cm_free(void *p)
{
    if (p)
        dallocx(p, 0);
}

static void *cm_realloc(void *p, size_t n)
{
    return p ? rallocx(p, n ? n : 1, 0) : cm_malloc(n);
}

static char *cm_strdup(const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = mallocx(n, 0);
    return p ? memcpy(p, str, n) : NULL;
}

static void *cm_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t total = n * size;
    return mallocx(total ? total : 1, MALLOCX_ZERO);
}
#endif

/* libcurl's process-wide set-up. The memory functions take effect only
 * where this is libcurl's first set-up: a program that called
 * curl_global_init (or curl_easy_init, which calls it) before its first
 * transfer keeps the C library's allocator in libcurl, so that memory
 * libcurl gave it before is freed by the allocator that made it. */
static CURLcode curl_setup(void)
{
#ifdef WEFT_USE_JEMALLOC
    return cu.global_init_mem(CURL_GLOBAL_DEFAULT, cm_malloc, cm_free, cm_realloc, cm_strdup,
                              cm_calloc);
#else
    return cu.global_init(CURL_GLOBAL_DEFAULT);
#endif
}

static void global_init(void)
{
    void *lib = RTLD_DEFAULT;
    const char *name = "the program's libcurl";
    if (!dlsym(RTLD_DEFAULT, "curl_multi_socket_action")) {
        const char *env = getenv("WEFT_LIBCURL");
        name = env && *env ? env : "libcurl.so.4";
        lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char *why = dlerror();
            if (env && *env)
                weft__say("WEFT_LIBCURL=%s: cannot load it: %s", env, why ? why : "?");
            else
                weft__say("libcurl: cannot load %s: %s (install libcurl4, or name another "
                          "build of libcurl in WEFT_LIBCURL)", name, why ? why : "?");
            global_err = -ELIBACC;
            return;
        }
    }
    static const struct {
        const char *sym;
        size_t at;
    } fns[] = {
#define FN(f) {"curl_" #f, offsetof(struct curl_api, f)}
        FN(global_init),         FN(easy_init),       FN(easy_cleanup),
        FN(easy_setopt),         FN(easy_getinfo),    FN(multi_init),
        FN(multi_cleanup),       FN(multi_setopt),    FN(multi_add_handle),
        FN(multi_remove_handle), FN(multi_info_read), FN(multi_socket_action),
        FN(global_init_mem),
#undef FN
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        void *f = dlsym(lib, fns[i].sym);
        if (!f) {
            weft__say("libcurl: %s has no %s: not a libcurl weft can use", name, fns[i].sym);
            global_err = -ELIBACC;
            return;
        }
        memcpy((char *)&cu + fns[i].at, &f, sizeof f);
    }
    global_err = curl_setup() == CURLE_OK ? 0 : -ENOMEM;
}

static struct weft__curl *make(void)
{
    struct weft__curl *c = weft__zalloc(sizeof *c);
    if (!c)
        return NULL;
    c->multi = cu.multi_init();
    struct rlimit rl;
    c->dup_below = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (long)(rl.rlim_cur / 2)
                       : LONG_MAX;
    if (!c->multi) {
        weft__free(c, sizeof *c);
        return NULL;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    /* Spins a little before sleeping: holders never wait, and are quick. */
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&c->mu, &a);
    pthread_mutexattr_destroy(&a);
    weft__lock_init(&c->done_lock);
    weft__lock_init(&c->ev_lock);
    weft__lock_init(&c->spare_lock);
    c->timer_at = WEFT_NEVER;
    cu.multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    cu.multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    cu.multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    cu.multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

/* The running runtime's multi handle state, made at the first call. */
static int get(struct weft__curl **out)
{
    struct weft__runtime *rt = weft__rt;
    if (!rt)
        return -EPERM;
    struct weft__curl *c = atomic_load_explicit(&rt->curl, memory_order_acquire);
    if (!c) {
        pthread_once(&global_once, global_init);
        if (global_err < 0)
            return global_err;
        if (!(c = make()))
            return -ENOMEM;
        struct weft__curl *none = NULL;
        /* acq_rel: the winner's set-up happens before any use of it. */
        if (atomic_compare_exchange_strong_explicit(&rt->curl, &none, c, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            /* Read by the thread that ends the run, after joining this one's. */
            rt->curl_term = weft__curl_term;
        } else {
            cu.multi_cleanup(c->multi);
            pthread_mutex_destroy(&c->mu);
            weft__free(c, sizeof *c);
            c = none;
        }
    }
    *out = c;
    return 0;
}

void weft__curl_term(struct weft__runtime *rt)
{
    struct weft__curl *c = atomic_load(&rt->curl);
    if (!c)
        return;
    lock(c);
    /* Closes the cached connections, through on_close. */
    cu.multi_cleanup(c->multi);
    /* Retired sockets still queued (the rest are in the table). */
    for (struct sock *s = c->unwatched, *next; s; s = next) {
        next = s->next;
        if (s->dead)
            weft__free(s, sizeof *s);
    }
    for (size_t fd = 0; fd < c->socks_cap; fd++) {
        struct sock *s = c->socks[fd];
        if (s) {
            /* Its duplicate only: curl has closed the number (cached
             * connections through on_close, above; the others itself). */
            if (sock_direct(s))
                s->wfd = -1;
            sock_close(s);
            weft__free(s, sizeof *s);
        }
    }
    for (size_t i = 0; i < c->nspare; i++)
        cu.easy_cleanup(c->spare[i]);
    weft__free(c->socks, c->socks_cap * sizeof *c->socks);
    if (c->xfers)
        weft__free(c->xfers, c->xcap * sizeof *c->xfers);
    atomic_store_explicit(&c->holder, 0, memory_order_relaxed);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    weft__free(c, sizeof *c);
    atomic_store(&rt->curl, NULL);
}

void weft__curl_counts(struct weft__curl_counts *out)
{
    memset(out, 0, sizeof *out);
    struct weft__curl *c = weft__rt ? atomic_load(&weft__rt->curl) : NULL;
    if (!c)
        return;
    lock(c);
    act(c, CURL_SOCKET_TIMEOUT, 0);
    out->transfers = c->nxfers;
    out->running = (size_t)c->running;
    out->sockets = c->nsocks;
    out->watchers = c->ntasks;
    unlock(c);
}

int weft__curl_hold(bool on)
{
    struct weft__curl *c;
    int err = get(&c);
    if (err < 0)
        return err;
    if (on)
        lock(c);
    else
        unlock(c);
    return 0;
}

int weft__curl_set_dup_below(long n)
{
    struct weft__curl *c;
    int err = get(&c);
    if (err < 0)
        return err;
    lock(c);
    c->dup_below = n;
    unlock(c);
    return 0;
}

bool weft__curl_handed_over(void)
{
    struct weft__curl *c = weft__rt ? atomic_load(&weft__rt->curl) : NULL;
    return c && atomic_load_explicit(&c->events, memory_order_acquire) != NULL;
}

int weft_curl_multi_setopt(CURLMoption option, long value)
{
    switch (option) {
    case CURLMOPT_MAXCONNECTS:
    case CURLMOPT_MAX_HOST_CONNECTIONS:
    case CURLMOPT_MAX_TOTAL_CONNECTIONS:
    case CURLMOPT_MAX_CONCURRENT_STREAMS:
    case CURLMOPT_PIPELINING:
        break;
    default:
        return weft__rt ? -EINVAL : -EPERM;
    }
    struct weft__curl *c;
    int err = get(&c);
    if (err < 0)
        return err;
    lock(c);
    CURLMcode mc = cu.multi_setopt(c->multi, option, value);
    if (mc == CURLM_OK && option == CURLMOPT_MAXCONNECTS)
        c->maxconnects_set = true;
    unlock(c);
    return mc == CURLM_OK ? 0 : mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

/* ---- weft_curl_perform -------------------------------------------------- */

/* Puts x's handle into the multi handle. Under mu. */
static int xfer_start(struct weft__curl *c, struct xfer *x)
{
    int err = xfer_add(c, x);
    if (err < 0)
        return err;
    /* Only now: a handle in another task's transfer is not touched. */
    cu.easy_setopt(x->easy, CURLOPT_OPENSOCKETFUNCTION, on_open);
    cu.easy_setopt(x->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    cu.easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    CURLMcode mc = cu.multi_add_handle(c->multi, x->easy);
    if (mc == CURLM_OK) {
        /* libcurl keeps 4 idle connections per transfer in the multi
         * handle at the moment a connection comes back, so a burst of
         * endings would close the connections the next burst wants: keep
         * 4 per transfer at the busiest moment instead. */
        if (c->nxfers > c->peak && !c->maxconnects_set) {
            c->peak = c->nxfers;
            cu.multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(4 * c->peak));
        }
        return 0;
    }
    xfer_del(c, x);
    if (!c->nxfers)
        dismiss(c);
    return mc == CURLM_ADDED_ALREADY ? -EBUSY : mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

/* Waits until x is settled, the deadline passes or self is cancelled. */
static int xfer_wait(struct weft__curl *c, struct xfer *x, struct weft__task *self,
                     uint64_t deadline)
{
    weft__lock_acquire(&c->done_lock);
    if (x->done) {
        weft__lock_release(&c->done_lock);
        return 0;
    }
    int err = weft__wait_check(self, deadline);
    if (err < 0) {
        weft__lock_release(&c->done_lock);
        return err;
    }
    x->seq = weft__wait_seq(self);
    x->task = self;
    int how = weft__wait(self, x->seq, &c->done_lock, deadline, WEFT_W_IO, x->easy, false);
    if (how == WEFT_WAKE_WOKEN)
        return 0;
    weft__lock_acquire(&c->done_lock);
    x->task = NULL;
    weft__lock_release(&c->done_lock);
    return weft__wait_error(self, how);
}

/* The return value for a transfer that libcurl ended with `code`. */
static int curl_err(CURL *easy, CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: {
        long os = 0;
        cu.easy_getinfo(easy, CURLINFO_OS_ERRNO, &os);
        return os > 0 && os < 4096 ? -(int)os : -EIO;
    }
    default:
        return -EIO;
    }
}

int weft_curl_perform_until(CURL *easy, uint64_t deadline, CURLcode *code)
{
    CURLcode ignored;
    if (!code)
        code = &ignored;
    *code = CURLE_FAILED_INIT;
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!easy)
        return -EINVAL;
    /* A cancellation or a deadline that is there already: not started. */
    int err = weft__wait_check(self, deadline);
    if (err < 0) {
        *code = err == -ECANCELED ? CURLE_ABORTED_BY_CALLBACK : CURLE_OPERATION_TIMEDOUT;
        return err;
    }
    struct weft__curl *c;
    if ((err = get(&c)) < 0) {
        *code = err == -ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
        return err;
    }
    /* The record is written by whichever task completes the transfer while
     * this one waits: on this task's stack, except for a shared-stack task,
     * whose frames are elsewhere while it waits (docs/design/stacks.md). */
    struct xfer local = {.easy = easy}, *x = &local;
    if (self->shared) {
        if (!(x = weft__zalloc(sizeof *x))) {
            *code = CURLE_OUT_OF_MEMORY;
            return -ENOMEM;
        }
        x->easy = easy;
    }
    if (try_lock(c)) {
        err = xfer_start(c, x);
        /* Runs the timeout of 0 the add asked for: the transfer starts here. */
        unlock(c);
    } else {
        /* Another thread is inside curl: it starts x when it unlocks. */
        post(c, &c->posted, &x->link);
    }
    if (err < 0) {
        *code = err == -ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    } else {
        err = xfer_wait(c, x, self, deadline);
        if (err < 0 || !x->removed) {
            /* Cancelled, past the deadline, or failed by weft: the handle
             * comes out here, unless a completer took it out meanwhile. */
            lock(c);
            start_posted(c); /* x, if it is still on the list, is left nowhere */
            if (xfer_find(c, easy) == x)
                xfer_stop(c, x);
            unlock(c);
        }
        if (err == 0) {
            *code = x->code;
            err = x->err ? x->err : curl_err(easy, x->code);
        } else {
            *code = err == -ECANCELED   ? CURLE_ABORTED_BY_CALLBACK
                    : err == -ETIMEDOUT ? CURLE_OPERATION_TIMEDOUT
                                        : CURLE_OUT_OF_MEMORY;
        }
    }
    if (x != &local)
        weft__free(x, sizeof *x);
    return err;
}

int weft_curl_perform(CURL *easy, CURLcode *code)
{
    return weft_curl_perform_until(easy, WEFT_NEVER, code);
}

/* ---- weft_http_get ---------------------------------------------------------- */

/* A buffer that grows; `oom` once a write did not fit in memory. */
struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool buf_put(struct buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    return buf_put(arg, data, size * n) ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    /* A status line starts a response: after a redirect or a 100
     * Continue, only the last response's headers are kept. */
    if (size * n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        b->len = 0;
    return buf_put(b, data, size * n) ? size * n : 0;
}

/* An easy handle for weft_http_get: an idle one, or a new one with the
 * options that every use shares. They are set once: each setting costs
 * libcurl work (CURLOPT_ACCEPT_ENCODING "" builds the list of its
 * decoders, a string, every time). */
static CURL *easy_take(struct weft__curl *c)
{
    weft__lock_acquire(&c->spare_lock);
    CURL *e = c->nspare ? c->spare[--c->nspare] : NULL;
    weft__lock_release(&c->spare_lock);
    if (e || !(e = cu.easy_init()))
        return e;
    cu.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    cu.easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    cu.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    cu.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    cu.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    return e;
}

/* Not reset: the next weft_http_get sets what differs (the URL and where
 * the callbacks write). */
static void easy_give(struct weft__curl *c, CURL *e)
{
    weft__lock_acquire(&c->spare_lock);
    if (c->nspare < SPARE_MAX) {
        c->spare[c->nspare++] = e;
        e = NULL;
    }
    weft__lock_release(&c->spare_lock);
    if (e)
        cu.easy_cleanup(e);
}

int weft_http_get_until(const char *url, uint64_t deadline, struct weft_http_reply *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->code = CURLE_FAILED_INIT;
    if (!url)
        return -EINVAL;
    if (!weft__current_task())
        return -EPERM;
    struct weft__curl *c;
    int err = get(&c);
    CURL *e = err == 0 ? easy_take(c) : NULL;
    if (!e) {
        out->code = err == 0 || err == -ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
        return err < 0 ? err : -ENOMEM;
    }
    /* The callbacks fill the buffers from whichever task moves the
     * transfer on, while this one waits: their records are on this task's
     * stack, except for a shared-stack task's (docs/design/stacks.md). */
    struct buf local[2] = {{0}}, *bufs = local;
    if (weft__current_task()->shared && !(bufs = weft__zalloc(sizeof local))) {
        easy_give(c, e);
        out->code = CURLE_OUT_OF_MEMORY;
        return -ENOMEM;
    }
    struct buf *head = &bufs[0], *body = &bufs[1];
    cu.easy_setopt(e, CURLOPT_URL, url);
    cu.easy_setopt(e, CURLOPT_WRITEDATA, body);
    cu.easy_setopt(e, CURLOPT_HEADERDATA, head);
    err = weft_curl_perform_until(e, deadline, &out->code);
    if (head->oom || body->oom) {
        err = -ENOMEM;
        out->code = CURLE_OUT_OF_MEMORY;
    }
    /* A reply without a body (or headers) still gets an empty string. */
    if (err == 0 && ((!body->p && !buf_put(body, "", 0)) || (!head->p && !buf_put(head, "", 0)))) {
        err = -ENOMEM;
        out->code = CURLE_OUT_OF_MEMORY;
    }
    if (err == 0) {
        cu.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
        out->headers = head->p;
        out->headers_len = head->len;
        out->body = body->p;
        out->body_len = body->len;
    } else {
        free(head->p);
        free(body->p);
    }
    if (bufs != local)
        weft__free(bufs, sizeof local);
    easy_give(c, e);
    return err;
}

int weft_http_get(const char *url, struct weft_http_reply *out)
{
    return weft_http_get_until(url, WEFT_NEVER, out);
}

const char *weft_http_reply_find_header(const struct weft_http_reply *r, const char *name,
                                        size_t *len)
{
    if (!r || !name || !r->headers)
        return NULL;
    size_t nlen = strlen(name);
    const char *found = NULL, *found_end = NULL;
    for (const char *line = r->headers; *line;) {
        const char *nl = strchr(line, '\n');
        const char *end = nl ? nl : line + strlen(line);
        if ((size_t)(end - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1, *e = end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            found = v;
            found_end = e;
        }
        line = nl ? nl + 1 : end;
    }
    if (found && len)
        *len = (size_t)(found_end - found);
    return found;
}

void weft_http_reply_destroy(struct weft_http_reply *r)
{
    if (!r)
        return;
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}
