/*
 * Channels: Go's channels and asyncio.Queue in one object. A channel of
 * capacity 0 is a rendezvous (a send waits for its receiver); capacity N
 * buffers N values. Values are pointers.
 *
 * Shape: a spin lock, a ring buffer of `cap` slots, and two wait queues,
 * of blocked senders (each waiter carries its value) and of blocked
 * receivers. At most one of the queues is non-empty at any time, and a
 * receiver only waits when the buffer is empty, a sender only when it is
 * full.
 *
 * Hand-off. A send that finds a receiver waiting gives the value straight
 * to it (into its waiter record, then the wake CAS of waitq.c); a receive
 * that finds a sender waiting takes the sender's value (into the buffer's
 * tail when there is a buffer, so that order is kept) and wakes it. A
 * value moves only together with a successful CAS on the waiter's wake
 * word: a waiter whose wait timed out or was cancelled at that moment is
 * skipped, keeps its value (a sender) or gets none (a receiver), and the
 * value goes to the next waiter. So a cancelled task never loses a value,
 * and never receives one it did not return.
 *
 * Close. Further sends fail with -EPIPE; every blocked sender and receiver
 * is woken with -EPIPE; values already buffered are still received, and
 * receives fail with -EPIPE only once the buffer is empty.
 *
 * Select waits on several channel operations at once, as Go's select: it
 * locks every channel involved (in address order, so that two selects
 * cannot deadlock), does the first ready operation, or else queues one
 * waiter per operation, all in the same wait (the same seq): the first
 * waker to win the CAS does its operation, the others find the wait ended
 * and skip their waiter. The locks are released after the switch, as every
 * wait does; afterwards the task locks them again to unlink its other
 * waiters.
 *
 * Threads: send and recv (and their deadline forms) and select in task
 * context; close from any thread.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "task.h"
#include "waitq.h"
#include "weft.h"
#include "worker.h"

struct weft_chan {
    struct weft__lock lock;     /* guards everything below */
    size_t cap, head, len;      /* ring buffer: len values from head */
    bool closed;
    /* Tasks inside a call on c that will still take c->lock: queued, or
     * woken by a timeout or cancel (or, for a select, woken at all: it
     * retakes every lock). A waker that ends a plain waiter's wait counts
     * it out, since that waiter returns without the lock. */
    uint64_t nwaiting;
    struct weft__waitq senders; /* waiter.value: the value to send */
    struct weft__waitq receivers;
    void **buf;                 /* cap slots */
};

int weft_chan_new(weft_chan **out, size_t capacity)
{
    if (!out || capacity > ((size_t)1 << 30))
        return -EINVAL;
    weft_chan *c = weft__zalloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    if (capacity) {
        c->buf = weft__zalloc(capacity * sizeof c->buf[0]);
        if (!c->buf) {
            weft__free(c, sizeof *c);
            return -ENOMEM;
        }
    }
    weft__lock_init(&c->lock);
    c->cap = capacity;
    weft__waitq_init(&c->senders);
    weft__waitq_init(&c->receivers);
    *out = c;
    return 0;
}

int weft_chan_free(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    weft__lock_acquire(&c->lock);
    bool busy = c->nwaiting != 0;
    weft__lock_release(&c->lock);
    if (busy)
        return -EBUSY;
    if (c->cap)
        weft__free(c->buf, c->cap * sizeof c->buf[0]);
    weft__free(c, sizeof *c);
    return 0;
}

/* ---- the ready cases, under c->lock ---------------------------------- */

/* Ends w's wait (WOKEN) if it still waits; returns whether this did. For a
 * select's waiter it also tells the selecting task which operation won:
 * written after the CAS (only the winner may), but under the channel's
 * lock, which the selecting task retakes before it reads it. The waiter
 * record itself is read only before the CAS: a plain waiter may return
 * (and its frame go) as soon as it is woken. */
static bool wake_waiter(weft_chan *c, struct weft__waiter *w)
{
    size_t *op = w->op, index = w->index;
    if (!weft__wake(w->task, w->seq, WEFT_WAKE_WOKEN))
        return false;
    if (op)
        *op = index;
    else
        c->nwaiting--;
    return true;
}

/* Gives v to a waiting receiver; returns whether one took it. */
static bool hand_to_receiver(weft_chan *c, void *v)
{
    struct weft__waiter *w;
    while ((w = c->receivers.head) != NULL) {
        weft__waitq_unlink(&c->receivers, w);
        w->value = v;
        w->status = 0;
        if (wake_waiter(c, w))
            return true;
    }
    return false;
}

/* Takes the value of a waiting sender into *v; returns whether there was
 * one. */
static bool take_from_sender(weft_chan *c, void **v)
{
    struct weft__waiter *w;
    while ((w = c->senders.head) != NULL) {
        weft__waitq_unlink(&c->senders, w);
        void *sent = w->value;
        w->status = 0;
        if (wake_waiter(c, w)) {
            *v = sent;
            return true;
        }
    }
    return false;
}

/* A send that need not wait: 0, -EPIPE, or -EAGAIN (it would wait). */
static int send_ready(weft_chan *c, void *v)
{
    if (c->closed)
        return -EPIPE;
    if (hand_to_receiver(c, v))
        return 0;
    if (c->len < c->cap) {
        c->buf[(c->head + c->len++) % c->cap] = v;
        return 0;
    }
    return -EAGAIN;
}

/* A receive that need not wait: 0 with *v, -EPIPE, or -EAGAIN. */
static int recv_ready(weft_chan *c, void **v)
{
    if (c->len) {
        *v = c->buf[c->head];
        c->head = (c->head + 1) % c->cap;
        c->len--;
        /* A sender waiting for room gets it now, in order. */
        void *sent;
        if (take_from_sender(c, &sent))
            c->buf[(c->head + c->len++) % c->cap] = sent;
        return 0;
    }
    if (take_from_sender(c, v))
        return 0;
    return c->closed ? -EPIPE : -EAGAIN;
}

/* ---- send, recv, close ------------------------------------------------ */

/* A buffered channel: a producer or a consumer that does not wait goes
 * on after the call, so a task it woke before (in the next slot) moves to
 * the ring, where another worker can take it, instead of waiting for this
 * one's next suspension (worker.c, the next slot). A rendezvous needs no
 * look: its sender waits for a receiver, so a pipeline over it suspends. */
static __attribute__((noinline)) void flush_before(struct weft__task *self)
{
    weft__worker_flush_next(self->worker);
}

/* Waits in q (c->lock held) for the wait that me describes; returns 0 when
 * a waker completed the operation (its outcome in me->status), else the
 * error. */
static int chan_wait(weft_chan *c, struct weft__waitq *q, struct weft__task *self,
                     struct weft__waiter *me, uint64_t deadline)
{
    int err = weft__waitq_enter(&c->lock, q, &c->nwaiting, self, me, deadline, 0);
    if (err == 0)
        err = weft__waitq_park(&c->lock, q, &c->nwaiting, self, me, deadline, WEFT_W_CHAN, c, 0);
    return err < 0 ? err : me->status;
}

int weft_chan_send_until(weft_chan *c, void *value, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!c)
        return -EINVAL;
    if (__builtin_expect(c->cap != 0, 0))
        flush_before(self);
    weft__lock_acquire(&c->lock);
    int err = send_ready(c, value);
    if (err != -EAGAIN) {
        weft__lock_release(&c->lock);
        return err;
    }
    struct weft__waiter local, *me = weft__waiters(self, &local, 1);
    *me = (struct weft__waiter){.value = value};
    return chan_wait(c, &c->senders, self, me, deadline);
}

int weft_chan_send(weft_chan *c, void *value)
{
    return weft_chan_send_until(c, value, WEFT_NEVER);
}

int weft_chan_recv_until(weft_chan *c, void **value, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!c)
        return -EINVAL;
    void *v = NULL;
    if (__builtin_expect(c->cap != 0, 0))
        flush_before(self);
    weft__lock_acquire(&c->lock);
    int err = recv_ready(c, &v);
    if (err != -EAGAIN) {
        weft__lock_release(&c->lock);
        if (err == 0 && value)
            *value = v;
        return err;
    }
    struct weft__waiter local, *me = weft__waiters(self, &local, 1);
    *me = (struct weft__waiter){0};
    err = chan_wait(c, &c->receivers, self, me, deadline);
    if (err == 0 && value)
        *value = me->value;
    return err;
}

int weft_chan_recv(weft_chan *c, void **value)
{
    return weft_chan_recv_until(c, value, WEFT_NEVER);
}

int weft_chan_try_send(weft_chan *c, void *value)
{
    if (!c)
        return -EINVAL;
    weft__lock_acquire(&c->lock);
    int err = send_ready(c, value);
    weft__lock_release(&c->lock);
    return err;
}

int weft_chan_try_recv(weft_chan *c, void **value)
{
    if (!c)
        return -EINVAL;
    void *v = NULL;
    weft__lock_acquire(&c->lock);
    int err = recv_ready(c, &v);
    weft__lock_release(&c->lock);
    if (err == 0 && value)
        *value = v;
    return err;
}

/* Wakes every waiter of q with -EPIPE. Under c->lock. */
static void fail_all(weft_chan *c, struct weft__waitq *q)
{
    struct weft__waiter *w;
    while ((w = q->head) != NULL) {
        weft__waitq_unlink(q, w);
        w->status = -EPIPE;
        (void)wake_waiter(c, w);
    }
}

int weft_chan_close(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    weft__lock_acquire(&c->lock);
    if (c->closed) {
        weft__lock_release(&c->lock);
        return -EPIPE;
    }
    c->closed = true;
    fail_all(c, &c->receivers);
    fail_all(c, &c->senders);
    weft__lock_release(&c->lock);
    return 0;
}

/* ---- select ------------------------------------------------------------- */

#define SELECT_MAX 64

static int cmp_chan(const void *a, const void *b)
{
    const weft_chan *x = *(weft_chan *const *)a, *y = *(weft_chan *const *)b;
    return x < y ? -1 : x > y;
}

/* The distinct channels of ops, sorted by address, into locks[]; returns
 * how many. */
static size_t distinct(const struct weft_chan_op *ops, size_t n, weft_chan **chans)
{
    for (size_t i = 0; i < n; i++)
        chans[i] = ops[i].chan;
    qsort(chans, n, sizeof chans[0], cmp_chan);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || chans[m - 1] != chans[i])
            chans[m++] = chans[i];
    return m;
}

static void lock_all(weft_chan **chans, size_t m)
{
    for (size_t i = 0; i < m; i++)
        weft__lock_acquire(&chans[i]->lock);
}

static void unlock_all(weft_chan **chans, size_t m)
{
    for (size_t i = m; i-- > 0;)
        weft__lock_release(&chans[i]->lock);
}

struct held {
    weft_chan **chans;
    size_t m;
};

/* Last in the commit: the channels' locks go (see the essay: the array is
 * not written again before the task has retaken every lock). */
static void unlock_held(struct weft__worker *w, struct weft__task *self, uint64_t seq, void *arg)
{
    (void)w, (void)self, (void)seq;
    const struct held *h = arg;
    unlock_all(h->chans, h->m);
}

/* Does op i if it is ready: its return, or -EAGAIN. */
static int try_op(struct weft_chan_op *op)
{
    if (op->dir == WEFT_CHAN_SEND)
        return send_ready(op->chan, op->value);
    void *v = NULL;
    int err = recv_ready(op->chan, &v);
    if (err == 0)
        op->value = v;
    return err;
}

int weft_chan_select(struct weft_chan_op *ops, size_t n, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!ops || n == 0 || n > SELECT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!ops[i].chan || (ops[i].dir != WEFT_CHAN_SEND && ops[i].dir != WEFT_CHAN_RECV))
            return -EINVAL;
    /* Before any lock: a shared-stack task's waiters may need memory. One
     * more than the operations: the winner writes its index into the last
     * one's `index` (with the waiters, off a shared-stack task's stack). */
    struct weft__waiter local[SELECT_MAX + 1], *me = weft__waiters(self, local, n + 1);
    if (!me)
        return -ENOMEM;
    size_t *won = &me[n].index;
    weft_chan *chans[SELECT_MAX];
    size_t m = distinct(ops, n, chans);
    lock_all(chans, m);
    for (size_t i = 0; i < n; i++) {
        int err = try_op(&ops[i]);
        if (err != -EAGAIN) {
            unlock_all(chans, m);
            ops[i].status = err;
            return (int)i;
        }
    }
    int err = weft__wait_check(self, deadline);
    if (err < 0) {
        unlock_all(chans, m);
        return err;
    }
    uint64_t seq = weft__wait_seq(self);
    *won = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        me[i] = (struct weft__waiter){.task = self, .seq = seq, .op = won, .index = i};
        if (ops[i].dir == WEFT_CHAN_SEND) {
            me[i].value = ops[i].value;
            weft__waitq_push(&ops[i].chan->senders, &me[i]);
        } else {
            weft__waitq_push(&ops[i].chan->receivers, &me[i]);
        }
        ops[i].chan->nwaiting++;
    }
    struct held h = {chans, m};
    int how = weft__wait_publish(self, seq, deadline, WEFT_W_CHAN, ops[0].chan, false,
                                 unlock_held, &h);
    if (how >= 0) /* (-ENOMEM: it did not wait, and holds the locks still) */
        lock_all(chans, m);
    for (size_t i = 0; i < n; i++) {
        weft__waitq_unlink(ops[i].dir == WEFT_CHAN_SEND ? &ops[i].chan->senders
                                                        : &ops[i].chan->receivers,
                           &me[i]);
        ops[i].chan->nwaiting--;
    }
    unlock_all(chans, m);
    if (how != WEFT_WAKE_WOKEN)
        return how < 0 ? how : weft__wait_error(self, how);
    size_t i = *won;
    ops[i].status = me[i].status;
    if (ops[i].dir == WEFT_CHAN_RECV && me[i].status == 0)
        ops[i].value = me[i].value;
    return (int)i;
}
