/*
 * Mutexes, conditions, semaphores and events: asyncio's Lock, Condition,
 * Semaphore and Event, for tasks that may run on any worker, with
 * deadlines and cancellation. All four are built on the wait primitive of
 * waitq.c and follow its protocol to the letter.
 *
 * Shape. Each object is a `struct waitable` (a spin lock, a wait queue and
 * a count of the tasks inside a waiting call) plus its own state: the
 * owner of a mutex, the count of a semaphore, the flag of an event. All of
 * it is read and written only under the object's spin lock. A waiter lives
 * on its task's stack, is pushed at the tail and woken from the head: every
 * object is FIFO.
 *
 * Hand-off, never barging. Whoever frees a unit (a semaphore release, a
 * mutex unlock) first tries to give it to the head waiter by ending its
 * wait with WEFT_WAKE_WOKEN, and counts it as handed over only if that
 * CAS succeeded. A waiter whose wait already ended by its deadline or by a
 * cancellation fails the CAS: it is unlinked and the unit goes to the next
 * one, and only when no waiter is still waiting does the count grow (or
 * the mutex become free). So a woken waiter returns 0 owning its unit
 * without touching the object again, a cancelled or timed-out one returns
 * its error owning nothing, and no unit is lost or duplicated whatever
 * the interleaving (asyncio's gh-90155 lost a unit to a cancelled waiter
 * that had been handed one). The invariants that follow: a free mutex has
 * no queued waiter; a semaphore with a positive count has no queued waiter.
 *
 * Mutex ownership is by task: the owner field holds the owning task's id
 * (unique within a run; 0: free), set by the locker itself or, on a
 * hand-off, by the unlocker before it releases the lock. Only the owner may
 * unlock. A task that finishes while it owns a mutex leaves it locked.
 *
 * Condition waits. The waiter queues itself on the condition, and releases
 * the mutex while it still holds the condition's lock, which it keeps until
 * it is switched out: a task that takes the mutex after it and signals
 * needs the condition's lock, so it finds the waiter queued. No signal is
 * lost. Then, however the wait ended, the waiter takes the mutex back
 * through the ordinary lock path with a wait that ignores cancellation
 * (any cancellation stays pending for the next suspension). Lock order:
 * a condition's lock before a mutex's lock, never the reverse; nothing here
 * takes two locks otherwise.
 *
 * Lifetime. nwaiting counts the tasks that will still touch the object:
 * incremented when a waiter is pushed; decremented by the waker for the
 * waiter it woke (which never touches the object again), and by the waiter
 * itself, under the lock, when its wait ended any other way (it retakes
 * the lock to unlink itself). _free takes the lock and refuses while
 * nwaiting is not 0 (or a mutex is owned), so no task can touch freed
 * memory; the waker's last access is its lock release, which _free's
 * acquire orders before the free.
 *
 * Memory ordering: the objects' own fields are read and written only under
 * their spin lock (acquire / release, lock.h). A woken waiter reads nothing
 * of the object: what it needs is that everything its waker did before
 * the hand-off (a mutex owner's writes in its critical section, a
 * producer's writes before a release) happens before what it does next,
 * which the wake CAS (acq_rel) and the acquire load of the wake word at the
 * end of weft__wait_publish give (waitq.c). A mutex's new owner field is
 * written by the unlocker after that CAS, still under the lock, so the
 * next reader of the field (the new owner's unlock, under the lock) sees it.
 *
 * Threads. Waiting calls (mutex lock and trylock, condition waits,
 * semaphore and event waits) are task context; a mutex belongs to a task,
 * so unlock is task context too. Semaphore release and try_acquire,
 * condition signal and broadcast, event set, clear and is_set may be
 * called from any thread, a thread that is not a worker included (its
 * wake-ups go through the injection queue). A task waiting on a condition,
 * a semaphore or an event is therefore counted in ext_waits: while one
 * waits, a run where every task is blocked is not reported as a deadlock,
 * since some other thread may yet wake it. A mutex wait is not counted:
 * only a task can unlock, so a run blocked on mutexes is a deadlock.
 *
 * Rejected: a futex-style word per object with a fast path that skips the
 * spin lock (a CAS on the mutex word to lock and unlock when uncontended).
 * It saves one uncontended lock acquisition, but hand-off then needs a
 * second protocol between the word and the queue, and the interplay with
 * deadlines and cancellation (which must never take a unit that was handed
 * over) is exactly where the lost-unit bugs live. One lock, one queue, one
 * CAS per hand-off is what waitq.c proves correct; we keep to it.
 */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

#include "alloc.h"
#include "error.h"
#include "runtime.h"
#include "task.h"
#include "waitq.h"
#include "weft.h"
#include "worker.h"

/* What every object here starts with. */
struct waitable {
    struct weft__lock lock; /* guards everything in the object */
    uint64_t nwaiting;      /* tasks inside a waiting call (see the essay) */
    struct weft__waitq q;   /* FIFO */
};

struct weft_mutex {
    struct waitable w;
    uint64_t owner; /* the owning task's id, 0 when free; under w.lock */
};

struct weft_cond {
    struct waitable w;
};

struct weft_sem {
    struct waitable w;
    uint64_t value; /* units available, at most INT_MAX; under w.lock */
};

struct weft_event {
    struct waitable w;
    bool set; /* under w.lock */
};

static int mutex_lock(weft_mutex *m, struct weft__task *self, uint64_t deadline, unsigned flags);
static void mutex_release(weft_mutex *m);

static void waitable_init(struct waitable *o)
{
    weft__lock_init(&o->lock);
    o->nwaiting = 0;
    weft__waitq_init(&o->q);
}

/* The wait of every object here (waitq.c's enter and park). Called with
 * o->lock held; returns with it released. Checks for a pending
 * cancellation (unless WEFT__WAIT_NOCANCEL) and a passed deadline first
 * and returns their error without waiting. Else queues self, releases
 * `unlock` if it is not NULL (a condition's mutex, handed on to its next
 * waiter; o->lock is still held, so no waker can miss self), and suspends. 0 when woken: the waker has counted self out
 * and handed it whatever it waits for. Otherwise self unlinks itself and
 * returns -ETIMEDOUT, -ECANCELED or -ENOMEM. When `unlock` was released it
 * is taken back before returning, whatever the outcome, ignoring
 * cancellation. Task context; suspends. */
static int wait_on(struct waitable *o, struct weft__task *self, uint64_t deadline, unsigned flags,
                   const void *obj, weft_mutex *unlock)
{
    struct weft__waiter local, *me = weft__waiters(self, &local, 1);
    int err = weft__waitq_enter(&o->lock, &o->q, &o->nwaiting, self, me, deadline, flags);
    if (err < 0)
        return err;
    if (unlock) {
        weft__lock_acquire(&unlock->w.lock);
        mutex_release(unlock);
        weft__lock_release(&unlock->w.lock);
    }
    err = weft__waitq_park(&o->lock, &o->q, &o->nwaiting, self, me, deadline, WEFT_W_SYNC, obj,
                           flags);
    if (unlock && mutex_lock(unlock, self, WEFT__NEVER, WEFT__WAIT_NOCANCEL) != 0)
        weft__panic("sync: could not take back the mutex of a condition wait");
    return err;
}

/* Wakes the head waiter still waiting; whether there was one. Under
 * o->lock. Any thread. */
static bool wake_first(struct waitable *o)
{
    if (!weft__waitq_wake_one(&o->q, NULL))
        return false;
    o->nwaiting--;
    return true;
}

/* Wakes every waiter still waiting; how many. Under o->lock. Any thread. */
static uint64_t wake_all(struct waitable *o)
{
    uint64_t n = weft__waitq_wake_all(&o->q);
    o->nwaiting -= n;
    return n;
}

/* Whether o can be freed: nobody inside a waiting call. */
static bool waitable_idle(struct waitable *o)
{
    weft__lock_acquire(&o->lock);
    bool idle = o->nwaiting == 0;
    weft__lock_release(&o->lock);
    return idle;
}

static uint64_t waitable_waiting(struct waitable *o)
{
    weft__lock_acquire(&o->lock);
    uint64_t n = o->nwaiting;
    weft__lock_release(&o->lock);
    return n;
}

/* ---- mutex ------------------------------------------------------------ */

int weft_mutex_new(weft_mutex **out)
{
    if (!out)
        return -EINVAL;
    weft_mutex *m = weft__zalloc(sizeof *m);
    if (!m)
        return -ENOMEM;
    waitable_init(&m->w);
    *out = m;
    return 0;
}

int weft_mutex_free(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    weft__lock_acquire(&m->w.lock);
    bool busy = m->owner != 0 || m->w.nwaiting != 0;
    weft__lock_release(&m->w.lock);
    if (busy)
        return -EBUSY;
    weft__free(m, sizeof *m);
    return 0;
}

/* Locks m for self, waiting until deadline. Task context; may suspend. */
static int mutex_lock(weft_mutex *m, struct weft__task *self, uint64_t deadline, unsigned flags)
{
    weft__lock_acquire(&m->w.lock);
    if (m->owner == 0) {
        /* Free means no waiter is queued (the essay): no barging. */
        m->owner = self->id;
        weft__lock_release(&m->w.lock);
        return 0;
    }
    if (m->owner == self->id) {
        weft__lock_release(&m->w.lock);
        return -EDEADLK;
    }
    /* Woken means owning: the unlocker made self the owner. */
    return wait_on(&m->w, self, deadline, flags, m, NULL);
}

/* Hands m to its first waiter still waiting, or frees it. Under m->w.lock.
 * Any thread. */
static void mutex_release(weft_mutex *m)
{
    struct weft__waiter *w;
    while ((w = m->w.q.head) != NULL) {
        weft__waitq_unlink(&m->w.q, w);
        /* Read before the CAS: once it succeeds, w's frame may be gone. The
         * task is inside mutex_lock until then, so its id is its own. */
        struct weft__task *t = w->task;
        uint64_t id = t->id, seq = w->seq;
        if (weft__wake(t, seq, WEFT_WAKE_WOKEN)) {
            m->owner = id;
            m->w.nwaiting--;
            return;
        }
    }
    m->owner = 0;
}

int weft_mutex_lock_until(weft_mutex *m, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    return mutex_lock(m, self, deadline, 0);
}

int weft_mutex_lock(weft_mutex *m)
{
    return weft_mutex_lock_until(m, WEFT__NEVER);
}

int weft_mutex_trylock(weft_mutex *m)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    weft__lock_acquire(&m->w.lock);
    int err = -EBUSY;
    if (m->owner == 0) {
        m->owner = self->id;
        err = 0;
    }
    weft__lock_release(&m->w.lock);
    return err;
}

int weft_mutex_unlock(weft_mutex *m)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    weft__lock_acquire(&m->w.lock);
    int err = -EPERM;
    if (m->owner == self->id) {
        mutex_release(m);
        err = 0;
    }
    weft__lock_release(&m->w.lock);
    return err;
}

uint64_t weft__mutex_waiting(weft_mutex *m)
{
    return waitable_waiting(&m->w);
}

/* ---- condition -------------------------------------------------------- */

int weft_cond_new(weft_cond **out)
{
    if (!out)
        return -EINVAL;
    weft_cond *c = weft__zalloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    waitable_init(&c->w);
    *out = c;
    return 0;
}

int weft_cond_free(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    if (!waitable_idle(&c->w))
        return -EBUSY;
    weft__free(c, sizeof *c);
    return 0;
}

int weft_cond_wait_until(weft_cond *c, weft_mutex *m, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!c || !m)
        return -EINVAL;
    weft__lock_acquire(&m->w.lock);
    bool owns = m->owner == self->id;
    weft__lock_release(&m->w.lock);
    if (!owns)
        return -EPERM;
    /* Only self can unlock m, so it stays self's until wait_on releases it. */
    weft__lock_acquire(&c->w.lock);
    return wait_on(&c->w, self, deadline, WEFT__WAIT_EXT, c, m);
}

int weft_cond_wait(weft_cond *c, weft_mutex *m)
{
    return weft_cond_wait_until(c, m, WEFT__NEVER);
}

int weft_cond_signal(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    weft__lock_acquire(&c->w.lock);
    (void)wake_first(&c->w);
    weft__lock_release(&c->w.lock);
    return 0;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    weft__lock_acquire(&c->w.lock);
    (void)wake_all(&c->w);
    weft__lock_release(&c->w.lock);
    return 0;
}

uint64_t weft__cond_waiting(weft_cond *c)
{
    return waitable_waiting(&c->w);
}

/* ---- semaphore -------------------------------------------------------- */

int weft_sem_new(weft_sem **out, unsigned initial)
{
    if (!out || initial > INT_MAX)
        return -EINVAL;
    weft_sem *s = weft__zalloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    waitable_init(&s->w);
    s->value = initial;
    *out = s;
    return 0;
}

int weft_sem_free(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    if (!waitable_idle(&s->w))
        return -EBUSY;
    weft__free(s, sizeof *s);
    return 0;
}

int weft_sem_acquire_until(weft_sem *s, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!s)
        return -EINVAL;
    weft__lock_acquire(&s->w.lock);
    if (s->value > 0) {
        s->value--;
        weft__lock_release(&s->w.lock);
        return 0;
    }
    /* Woken means owning a unit: the releaser handed it over. */
    return wait_on(&s->w, self, deadline, WEFT__WAIT_EXT, s, NULL);
}

int weft_sem_acquire(weft_sem *s)
{
    return weft_sem_acquire_until(s, WEFT__NEVER);
}

int weft_sem_try_acquire(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    weft__lock_acquire(&s->w.lock);
    int err = -EAGAIN;
    if (s->value > 0) {
        s->value--;
        err = 0;
    }
    weft__lock_release(&s->w.lock);
    return err;
}

int weft_sem_release(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    weft__lock_acquire(&s->w.lock);
    int err = 0;
    if (!wake_first(&s->w)) {
        if (s->value < INT_MAX)
            s->value++;
        else
            err = -EOVERFLOW;
    }
    weft__lock_release(&s->w.lock);
    return err;
}

int weft_sem_value(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    weft__lock_acquire(&s->w.lock);
    int v = (int)s->value;
    weft__lock_release(&s->w.lock);
    return v;
}

uint64_t weft__sem_waiting(weft_sem *s)
{
    return waitable_waiting(&s->w);
}

/* ---- event ------------------------------------------------------------ */

int weft_event_new(weft_event **out)
{
    if (!out)
        return -EINVAL;
    weft_event *e = weft__zalloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    waitable_init(&e->w);
    *out = e;
    return 0;
}

int weft_event_free(weft_event *e)
{
    if (!e)
        return -EINVAL;
    if (!waitable_idle(&e->w))
        return -EBUSY;
    weft__free(e, sizeof *e);
    return 0;
}

int weft_event_set(weft_event *e)
{
    if (!e)
        return -EINVAL;
    weft__lock_acquire(&e->w.lock);
    e->set = true;
    (void)wake_all(&e->w);
    weft__lock_release(&e->w.lock);
    return 0;
}

int weft_event_clear(weft_event *e)
{
    if (!e)
        return -EINVAL;
    weft__lock_acquire(&e->w.lock);
    e->set = false;
    weft__lock_release(&e->w.lock);
    return 0;
}

int weft_event_is_set(weft_event *e)
{
    if (!e)
        return -EINVAL;
    weft__lock_acquire(&e->w.lock);
    int set = e->set;
    weft__lock_release(&e->w.lock);
    return set;
}

int weft_event_wait_until(weft_event *e, uint64_t deadline)
{
    struct weft__task *self = weft__current_task();
    if (!self)
        return -EPERM;
    if (!e)
        return -EINVAL;
    weft__lock_acquire(&e->w.lock);
    if (e->set) {
        weft__lock_release(&e->w.lock);
        return 0;
    }
    return wait_on(&e->w, self, deadline, WEFT__WAIT_EXT, e, NULL);
}

int weft_event_wait(weft_event *e)
{
    return weft_event_wait_until(e, WEFT__NEVER);
}

uint64_t weft__event_waiting(weft_event *e)
{
    return waitable_waiting(&e->w);
}
