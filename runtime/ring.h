/*
 * A worker's run queue: a fixed ring of task pointers that its owner pushes
 * and pops at one end and that other workers steal from at the other.
 *
 * Shape. Positions are 32-bit counters that wrap; a slot is position & MASK.
 * The owner's end is the tail, the thieves' end the head:
 *
 *     pushes            total pushes (owner stores; thieves read)
 *     pops_booked       (total owner pops << 32) | booked head
 *     head              head as far as thieves have finished copying
 *
 *     tail = pushes - pops; ready tasks are [booked, tail)
 *
 * Keeping the owner's pop count in the same word as the head a thief books
 * is what makes every operation a single compare-and-swap on that word: a
 * thief's CAS fails if the owner popped since the thief read the tail, and
 * the owner's pop fails if a thief booked since the owner read the head. So
 * a thief can book half the ring in one CAS even though the owner takes
 * from the other end (a Chase-Lev deque cannot let a thief take more than
 * one item at a time without such a check).
 *
 * Costs. Push: no read-modify-write (a release store of `pushes`). Pop: one
 * uncontended CAS (a plain store in a runtime of one worker, where no thief
 * exists). Steal: one CAS to book a batch, the copy, and a release
 * store of `head` that lets the owner reuse the slots. A steal in progress
 * (booked != head) makes other thieves back off (-EBUSY) rather than wait.
 *
 * Order. The owner normally takes the newest task (LIFO: what was just made
 * runnable runs next, so fork-join work runs depth-first and cache-warm) and
 * thieves the oldest (the biggest pieces of a fork-join tree). With the
 * LIFO knob off the owner takes the oldest, as Go's and Tokio's queues do.
 *
 * Every slot is an atomic pointer read and written relaxed: the release
 * store of `pushes` (owner) and of `head` (thief) order them.
 */
#ifndef WEFT_RING_H
#define WEFT_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef WEFT_RING_SLOTS
#define WEFT_RING_SLOTS 256
#endif
#if WEFT_RING_SLOTS < 2 || (WEFT_RING_SLOTS & (WEFT_RING_SLOTS - 1)) != 0
#error "WEFT_RING_SLOTS must be a power of two, 2 or more"
#endif
#define WEFT_RING_MASK ((uint32_t)WEFT_RING_SLOTS - 1)

struct weft__task;

struct weft__ring {
    _Alignas(64) _Atomic uint32_t pushes;
    _Atomic uint64_t pops_booked;
    /* No thief can exist (a runtime of one worker): the owner's pop is a
     * plain store instead of the CAS (12 ns on a 2-vCPU EPYC guest, more
     * than the rest of the pop). */
    bool solo;
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) _Atomic(struct weft__task *) slot[WEFT_RING_SLOTS];
};

#define WEFT__RO memory_order_relaxed
#define WEFT__ACQ memory_order_acquire
#define WEFT__REL memory_order_release

static inline uint64_t weft__ring_pack(uint32_t pops, uint32_t booked)
{
    return (uint64_t)pops << 32 | booked;
}

static inline void weft__ring_init(struct weft__ring *r, bool solo)
{
    r->solo = solo;
    atomic_init(&r->pushes, 0);
    atomic_init(&r->pops_booked, 0);
    atomic_init(&r->head, 0);
    for (uint32_t i = 0; i < WEFT_RING_SLOTS; i++)
        atomic_init(&r->slot[i], NULL);
}

/* Ready tasks in the ring (not counting any a thief has booked); exact for
 * the owner, a snapshot for anyone else. Any thread. */
static inline uint32_t weft__ring_len(struct weft__ring *r)
{
    uint64_t pb = atomic_load_explicit(&r->pops_booked, WEFT__ACQ);
    uint32_t tail = atomic_load_explicit(&r->pushes, WEFT__ACQ) - (uint32_t)(pb >> 32);
    return tail - (uint32_t)pb;
}

/* Appends t at the tail. Returns false, changing nothing, when the ring is
 * full (counting slots a thief is still copying out). Owner only. */
static inline bool weft__ring_push(struct weft__ring *r, struct weft__task *t)
{
    uint32_t pushes = atomic_load_explicit(&r->pushes, WEFT__RO);
    uint32_t pops = (uint32_t)(atomic_load_explicit(&r->pops_booked, WEFT__RO) >> 32);
    uint32_t tail = pushes - pops;
    /* Acquire: a thief's copy out of the slot we are about to reuse is done. */
    uint32_t head = atomic_load_explicit(&r->head, WEFT__ACQ);
    if (tail - head >= WEFT_RING_SLOTS)
        return false;
    atomic_store_explicit(&r->slot[tail & WEFT_RING_MASK], t, WEFT__RO);
    atomic_store_explicit(&r->pushes, pushes + 1, WEFT__REL);
    return true;
}

/* Removes and returns the newest task, or NULL when none is ready. When
 * `only` is non-NULL, removes the newest task only if it is `only`. Owner
 * only. */
static inline struct weft__task *weft__ring_pop_newest(struct weft__ring *r,
                                                       const struct weft__task *only)
{
    uint32_t pushes = atomic_load_explicit(&r->pushes, WEFT__RO);
    uint64_t pb = atomic_load_explicit(&r->pops_booked, WEFT__RO);
    for (;;) {
        uint32_t pops = (uint32_t)(pb >> 32), booked = (uint32_t)pb;
        uint32_t tail = pushes - pops;
        if (tail == booked)
            return NULL;
        struct weft__task *t = atomic_load_explicit(&r->slot[(tail - 1) & WEFT_RING_MASK], WEFT__RO);
        if (only && t != only)
            return NULL;
        if (r->solo) {
            atomic_store_explicit(&r->pops_booked, weft__ring_pack(pops + 1, booked), WEFT__RO);
            return t;
        }
        /* Fails if a thief booked since pb was read: then look again. */
        if (atomic_compare_exchange_weak_explicit(&r->pops_booked, &pb,
                                                  weft__ring_pack(pops + 1, booked), WEFT__RO,
                                                  WEFT__RO))
            return t;
    }
}

/* Outcome of weft__ring_book. */
enum { WEFT_RING_EMPTY = 0, WEFT_RING_BUSY = -1 };

/* Books up to `max` (at least 1) of the oldest tasks of r (half of them
 * when `half`, else one), copies them to out[] and releases the slots.
 * Returns how many (at least 1), WEFT_RING_EMPTY, or WEFT_RING_BUSY when
 * another steal is in progress. The owner may use it on its own ring to take the oldest. Any
 * worker. */
static inline int weft__ring_take_oldest(struct weft__ring *r, struct weft__task **out, uint32_t max,
                                         bool half)
{
    uint64_t pb = atomic_load_explicit(&r->pops_booked, WEFT__ACQ);
    uint32_t head = atomic_load_explicit(&r->head, WEFT__ACQ);
    uint32_t booked, n;
    for (;;) {
        uint32_t pops = (uint32_t)(pb >> 32);
        booked = (uint32_t)pb;
        if (booked != head)
            return WEFT_RING_BUSY;
        /* Acquire: the tasks pushed before `pushes` are visible. */
        uint32_t tail = atomic_load_explicit(&r->pushes, WEFT__ACQ) - pops;
        uint32_t avail = tail - booked;
        if (avail > WEFT_RING_SLOTS) {
            /* The owner popped and pushed between our two loads: the count
             * is meaningless, not empty. Look again. */
            pb = atomic_load_explicit(&r->pops_booked, WEFT__ACQ);
            head = atomic_load_explicit(&r->head, WEFT__ACQ);
            continue;
        }
        if (avail == 0)
            return WEFT_RING_EMPTY;
        n = half ? avail - avail / 2 : 1;
        if (n > max)
            n = max;
        if (atomic_compare_exchange_weak_explicit(&r->pops_booked, &pb,
                                                  weft__ring_pack(pops, booked + n), WEFT__ACQ,
                                                  WEFT__ACQ))
            break;
        head = atomic_load_explicit(&r->head, WEFT__ACQ);
    }
    for (uint32_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&r->slot[(booked + i) & WEFT_RING_MASK], WEFT__RO);
    /* Release: the copy is done; the owner may reuse these slots. */
    atomic_store_explicit(&r->head, booked + n, WEFT__REL);
    return (int)n;
}

/* Removes the oldest task if it is `t` and no steal is in progress;
 * returns whether it did. Owner only (a join that runs its child inline). */
static inline bool weft__ring_take_oldest_if(struct weft__ring *r, const struct weft__task *t)
{
    uint64_t pb = atomic_load_explicit(&r->pops_booked, WEFT__ACQ);
    uint32_t head = atomic_load_explicit(&r->head, WEFT__ACQ);
    uint32_t pops = (uint32_t)(pb >> 32), booked = (uint32_t)pb;
    /* The owner's own pushes and pops cannot move under it: tail is exact. */
    uint32_t tail = atomic_load_explicit(&r->pushes, WEFT__RO) - pops;
    if (booked != head || tail == booked ||
        atomic_load_explicit(&r->slot[booked & WEFT_RING_MASK], WEFT__RO) != t)
        return false;
    /* Fails if a thief booked meanwhile (then t may be the thief's). */
    if (!atomic_compare_exchange_strong_explicit(&r->pops_booked, &pb,
                                                 weft__ring_pack(pops, booked + 1), WEFT__ACQ,
                                                 WEFT__RO))
        return false;
    atomic_store_explicit(&r->head, booked + 1, WEFT__REL);
    return true;
}

/* Appends n tasks at the tail in one publication; the caller has checked
 * that they fit (the ring is its own and holds at most SLOTS - n). Owner
 * only. */
static inline void weft__ring_push_many(struct weft__ring *r, struct weft__task *const *t, uint32_t n)
{
    uint32_t pushes = atomic_load_explicit(&r->pushes, WEFT__RO);
    uint32_t pops = (uint32_t)(atomic_load_explicit(&r->pops_booked, WEFT__RO) >> 32);
    uint32_t tail = pushes - pops;
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(&r->slot[(tail + i) & WEFT_RING_MASK], t[i], WEFT__RO);
    atomic_store_explicit(&r->pushes, pushes + n, WEFT__REL);
}

/* Free slots, counting any a thief is still copying out as used. Owner
 * only. */
static inline uint32_t weft__ring_room(struct weft__ring *r)
{
    uint32_t pushes = atomic_load_explicit(&r->pushes, WEFT__RO);
    uint32_t pops = (uint32_t)(atomic_load_explicit(&r->pops_booked, WEFT__RO) >> 32);
    uint32_t head = atomic_load_explicit(&r->head, WEFT__ACQ);
    return WEFT_RING_SLOTS - ((pushes - pops) - head);
}

#endif
