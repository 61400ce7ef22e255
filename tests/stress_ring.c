/*
 * Suite "ring": the run-queue ring of runtime/ring.h, hammered directly
 * (white box). Task pointers are fake, never dereferenced: task id i is the
 * pointer (i + 1) * 8, so a NULL or torn slot read can never pass for a
 * task. Counts, never times.
 *
 * Semantics, one thread. Each case runs from five starting positions (a
 * loop test, iteration = start): zero, and four where the 32-bit counters
 * are set with atomic_store just short of UINT32_MAX (the tail, the pop
 * count, or both), so that every case runs across the wrap; and then from
 * the same five again with a solo ring (a runtime of one worker, whose
 * owner pops without a CAS).
 *  - empty_ring_has_nothing_to_take: len 0, room SLOTS, pop_newest NULL,
 *    take_oldest WEFT_RING_EMPTY, also after a push and a pop.
 *  - push_fails_exactly_when_full: push succeeds SLOTS times and fails the
 *    next, changing nothing; overflow as the runtime does it (take the
 *    oldest half) gives exactly that much room back.
 *  - pop_newest_is_lifo, pop_newest_only_takes_the_named_newest.
 *  - take_oldest_takes_half_rounded_up: for every fill n, half takes
 *    n - n/2, the oldest, in order; one-at-a-time takes the rest FIFO.
 *  - take_oldest_is_capped_by_max: for every max, half and one-at-a-time.
 *  - push_many_appends_in_order: chunks fill the ring exactly.
 *  - steal_in_progress_holds_its_slots: a booked but uncopied batch makes
 *    every take WEFT_RING_BUSY, is out of the owner's reach, and its slots
 *    count as used (room, push) until the thief releases `head`.
 *  - random_ops_match_a_model_deque: 200,000 random operations of every
 *    kind, each result compared with a plain deque; len + room == SLOTS.
 *
 * Concurrency: one owner (the test thread) and K thieves, K = 1, 3, 7 (one
 * Check test each). The owner pushes fresh ids and pops the newest, in
 * phases that keep its ring full (1-3 pushes a pop) or near empty (0-1
 * push, 2 pops: owner and thieves race for the last tasks), with now and
 * then a burst of 1.5 rings' worth; it sometimes pops only a named task
 * (the one just pushed may be popped, the one before it never), and
 * sometimes takes the oldest itself (FIFO mode). When a push finds the
 * ring full it overflows as the runtime does: takes the oldest half of its
 * own ring (those ids count as consumed by the owner, as if moved to the
 * global queue) and pushes again. Each thief owns a ring too: it scans the
 * owner's ring and the other thieves' rings from a random one with
 * take_oldest (max = its room; half on even thieves, one on odd ones),
 * push_many's the batch into its own ring and pops from there, and half
 * the time steals again before its ring is empty, so that thieves' rings
 * hold work for other thieves. WEFT_RING_BUSY is retried later. Every pop
 * and take_oldest that ends a task's journey logs its id in the consumer's
 * own log; at the end every id pushed must be in the logs together exactly
 * once (none lost, none duplicated, no pointer that was never pushed).
 *
 * A run's operations are every push (push_many counts one per task), every
 * pop that returns a task and every take_oldest that returns a batch, by
 * all threads together: 100,000,000 per K in a release build (35 to 55
 * million ids; 5 to 20 s for the three K on 2 cores), 10,000,000 per K
 * when WEFT_TEST_SCALE is set (sanitizer builds: TSan sets 200, ASan 10;
 * the ring is cheap enough that scaled() would shrink it below the issue's
 * 10,000,000). The owner alone could spend the budget while the thieves
 * wait for a core, so it yields while they have done less than a quarter
 * of it. How many steals, overflows and busy answers a run sees depends on
 * the scheduler: they are printed, not asserted (beyond "some steals").
 *
 * A broken ring fails with its counters in the message rather than hang:
 * a full ring that stays busy for a minute, a push that keeps failing on a
 * ring take_oldest calls empty, a ring claiming more than SLOTS tasks, a
 * thief not done a minute after the owner. Each failure mode was checked
 * against a mutated ring.h (a steal or a pop that stores instead of
 * compare-and-swapping, head released before the copy, no busy check, an
 * overfilling push): every K at both sizes fails.
 *
 * tests/CMakeLists.txt also builds this file as stress_ring_small with
 * WEFT_RING_SLOTS=4, where the full-ring, overflow and busy paths run all
 * the time.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ring.h"
#include "util.h"

#if WEFT_RING_SLOTS < 4
#error "stress_ring needs WEFT_RING_SLOTS of 4 or more"
#endif

#define SLOTS ((uint32_t)WEFT_RING_SLOTS)
#define WATCHDOG_S 300
#define MAX_THIEVES 7

/* Task id i as a fake task pointer; never dereferenced. */
static struct weft__task *fake(uint32_t id)
{
    return (struct weft__task *)(uintptr_t)(((uint64_t)id + 1) * 8);
}

/* The id of a fake pointer, or UINT32_MAX for anything fake() never made. */
static uint32_t unfake(const struct weft__task *t)
{
    uintptr_t p = (uintptr_t)t;
    if (p == 0 || p % 8 != 0 || p / 8 - 1 >= UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)(p / 8 - 1);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- Semantics, one thread ------------------------------------------ */

/* ck_assert_* reports every success to the runner (a write per check):
 * too slow for a loop of millions. EXPECT reports only a failure. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* Starting positions: the ring's pop count and tail (= booked = head). */
static const struct {
    uint32_t pops, tail;
} starts[] = {
    {0, 0},
    {0, UINT32_MAX - 2},              /* head, booked and tail wrap */
    {UINT32_MAX - 2, 0},              /* the pop count and pushes wrap */
    {UINT32_MAX - 1, UINT32_MAX - 2}, /* all of them wrap */
    {0x80000001u, 0x7fffffffu},       /* the sign bits flip */
};
#define NSTARTS ((int)(sizeof starts / sizeof starts[0]))

static struct weft__ring ring;

/* Initialises `ring` empty at starting position `start`: the counters are
 * stored directly, consistently (pushes - pops = tail = booked = head).
 * Loop indexes from NSTARTS on give the same positions to a solo ring (a
 * runtime of one worker: the owner pops without a CAS), which must behave
 * the same on one thread. */
static struct weft__ring *ring_at(int i)
{
    int start = i % NSTARTS;
    uint32_t pops = starts[start].pops, tail = starts[start].tail;
    weft__ring_init(&ring, i >= NSTARTS);
    atomic_store(&ring.pushes, tail + pops);
    atomic_store(&ring.pops_booked, weft__ring_pack(pops, tail));
    atomic_store(&ring.head, tail);
    ck_assert_uint_eq(weft__ring_len(&ring), 0);
    ck_assert_uint_eq(weft__ring_room(&ring), SLOTS);
    return &ring;
}

/* Pushes ids first..first+n-1; each adds one to len and takes one from
 * room. */
static void fill(struct weft__ring *r, uint32_t first, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = weft__ring_len(r), room = weft__ring_room(r);
        EXPECT(weft__ring_push(r, fake(first + i)), "push %u of %u failed", i, n);
        EXPECT(weft__ring_len(r) == len + 1 && weft__ring_room(r) == room - 1,
               "push %u of %u: len %u -> %u, room %u -> %u", i, n, len, weft__ring_len(r), room,
               weft__ring_room(r));
    }
}

/* out[0..n) are ids first, first+1, ... */
static void expect_ids(struct weft__task *const *out, uint32_t n, uint32_t first)
{
    for (uint32_t j = 0; j < n; j++)
        EXPECT(out[j] == fake(first + j), "out[%u] is %p, not id %u", j, (void *)out[j],
               first + j);
}

/* len and room agree when no steal is in progress. */
static void assert_len(struct weft__ring *r, uint32_t len)
{
    EXPECT(weft__ring_len(r) == len && weft__ring_room(r) == SLOTS - len,
           "len %u (want %u), room %u (want %u)", weft__ring_len(r), len, weft__ring_room(r),
           SLOTS - len);
}

START_TEST(empty_ring_has_nothing_to_take)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *out[WEFT_RING_SLOTS];
    for (int round = 0; round < 3; round++) {
        assert_len(r, 0);
        ck_assert_ptr_null(weft__ring_pop_newest(r, NULL));
        ck_assert_ptr_null(weft__ring_pop_newest(r, fake(0)));
        ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, true), WEFT_RING_EMPTY);
        ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, false), WEFT_RING_EMPTY);
        ck_assert_int_eq(weft__ring_take_oldest(r, out, 1, true), WEFT_RING_EMPTY);
        /* Empty again after a push and a pop, and after a push and a take. */
        fill(r, 0, 1);
        if (round == 0) {
            ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(0));
        } else {
            ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, round == 1), 1);
            ck_assert_ptr_eq(out[0], fake(0));
        }
    }
    assert_len(r, 0);
}
END_TEST

START_TEST(push_fails_exactly_when_full)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *out[WEFT_RING_SLOTS];
    fill(r, 0, SLOTS);
    for (int again = 0; again < 3; again++) {
        ck_assert(!weft__ring_push(r, fake(1000000)));
        assert_len(r, SLOTS);
    }
    /* Overflow as the runtime does it: move the oldest half elsewhere. */
    ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS / 2, true), (int)(SLOTS / 2));
    expect_ids(out, SLOTS / 2, 0);
    assert_len(r, SLOTS - SLOTS / 2);
    fill(r, SLOTS, SLOTS / 2);
    ck_assert(!weft__ring_push(r, fake(1000000)));
    assert_len(r, SLOTS);
    /* Nothing was overwritten: newest first, SLOTS + SLOTS/2 - 1 down to
     * SLOTS/2. */
    for (uint32_t j = SLOTS + SLOTS / 2; j-- > SLOTS / 2;)
        ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(j));
    assert_len(r, 0);
}
END_TEST

START_TEST(pop_newest_is_lifo)
{
    struct weft__ring *r = ring_at(_i);
    fill(r, 0, SLOTS);
    for (uint32_t i = SLOTS; i-- > 0;) {
        ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(i));
        assert_len(r, i);
    }
    ck_assert_ptr_null(weft__ring_pop_newest(r, NULL));
    /* Interleaved. */
    fill(r, 0, 2);
    ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(1));
    fill(r, 2, 1);
    ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(2));
    ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(0));
    ck_assert_ptr_null(weft__ring_pop_newest(r, NULL));
    assert_len(r, 0);
}
END_TEST

START_TEST(pop_newest_only_takes_the_named_newest)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *out[WEFT_RING_SLOTS];
    fill(r, 1, 2); /* a = fake(1), b = fake(2) */
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(1))); /* a is not the newest */
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(7))); /* never pushed */
    assert_len(r, 2);
    ck_assert_ptr_eq(weft__ring_pop_newest(r, fake(2)), fake(2));
    assert_len(r, 1);
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(2))); /* gone */
    assert_len(r, 1);
    ck_assert_ptr_eq(weft__ring_pop_newest(r, fake(1)), fake(1));
    assert_len(r, 0);
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(1)));
    /* A task already taken from the other end is not there to pop. */
    fill(r, 3, 1);
    ck_assert_int_eq(weft__ring_take_oldest(r, out, 1, false), 1);
    ck_assert_ptr_eq(out[0], fake(3));
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(3)));
    /* A full ring: only its newest qualifies. */
    fill(r, 10, SLOTS);
    for (uint32_t i = 10; i < 10 + SLOTS - 1; i++)
        ck_assert_ptr_null(weft__ring_pop_newest(r, fake(i)));
    ck_assert_ptr_eq(weft__ring_pop_newest(r, fake(10 + SLOTS - 1)), fake(10 + SLOTS - 1));
    assert_len(r, SLOTS - 1);
}
END_TEST

START_TEST(take_oldest_takes_half_rounded_up)
{
    struct weft__task *out[WEFT_RING_SLOTS];
    for (uint32_t n = 1; n <= SLOTS; n++) {
        struct weft__ring *r = ring_at(_i);
        fill(r, 0, n);
        uint32_t want = n - n / 2;
        int got = weft__ring_take_oldest(r, out, SLOTS, true);
        EXPECT(got == (int)want, "half of %u took %d, not %u", n, got, want);
        expect_ids(out, want, 0);
        assert_len(r, n / 2);
        for (uint32_t j = want; j < n; j++) {
            got = weft__ring_take_oldest(r, out, SLOTS, false);
            EXPECT(got == 1, "one of %u took %d", n - j, got);
            expect_ids(out, 1, j);
            assert_len(r, n - j - 1);
        }
        ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, true), WEFT_RING_EMPTY);
        ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, false), WEFT_RING_EMPTY);
    }
}
END_TEST

START_TEST(take_oldest_is_capped_by_max)
{
    struct weft__task *out[WEFT_RING_SLOTS + 1];
    for (uint32_t max = 1; max <= SLOTS + 1; max++) {
        struct weft__ring *r = ring_at(_i);
        fill(r, 0, SLOTS);
        uint32_t want = max < SLOTS / 2 ? max : SLOTS / 2;
        ck_assert_int_eq(weft__ring_take_oldest(r, out, max, true), (int)want);
        expect_ids(out, want, 0);
        assert_len(r, SLOTS - want);
        ck_assert_int_eq(weft__ring_take_oldest(r, out, max, false), 1);
        ck_assert_ptr_eq(out[0], fake(want));
        assert_len(r, SLOTS - want - 1);
        /* The newest end is untouched. */
        ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(SLOTS - 1));
    }
}
END_TEST

START_TEST(push_many_appends_in_order)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *in[WEFT_RING_SLOTS], *out[WEFT_RING_SLOTS];
    weft__ring_push_many(r, in, 0);
    assert_len(r, 0);
    uint32_t id = 0;
    for (uint32_t chunk = 1; weft__ring_room(r) > 0; chunk = chunk % 3 + 1) {
        uint32_t room = weft__ring_room(r), n = chunk < room ? chunk : room;
        for (uint32_t j = 0; j < n; j++)
            in[j] = fake(id + j);
        weft__ring_push_many(r, in, n);
        id += n;
        assert_len(r, id);
    }
    ck_assert_uint_eq(id, SLOTS);
    ck_assert(!weft__ring_push(r, fake(1000000)));
    for (uint32_t j = 0; j < SLOTS / 2; j++) {
        ck_assert_int_eq(weft__ring_take_oldest(r, out, 1, true), 1);
        ck_assert_ptr_eq(out[0], fake(j));
    }
    /* A batch as a thief pushes it, after the ring's existing tasks. */
    for (uint32_t j = 0; j < SLOTS / 2; j++)
        in[j] = fake(SLOTS + j);
    weft__ring_push_many(r, in, SLOTS / 2);
    assert_len(r, SLOTS);
    for (uint32_t j = 2 * SLOTS - SLOTS / 2; j-- > SLOTS / 2;)
        ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(j));
    assert_len(r, 0);
}
END_TEST

START_TEST(steal_in_progress_holds_its_slots)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *out[WEFT_RING_SLOTS];
    fill(r, 0, SLOTS);
    /* A thief books the two oldest and has not finished copying them. */
    uint64_t pb = atomic_load(&r->pops_booked);
    uint32_t head = atomic_load(&r->head);
    ck_assert_uint_eq((uint32_t)pb, head);
    atomic_store(&r->pops_booked, weft__ring_pack((uint32_t)(pb >> 32), head + 2));
    ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, true), WEFT_RING_BUSY);
    ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, false), WEFT_RING_BUSY);
    ck_assert_uint_eq(weft__ring_room(r), 0);
    ck_assert(!weft__ring_push(r, fake(1000000)));
    /* The owner reaches the unbooked ones only. (weft__ring_len is not
     * checked while the steal is in progress: its comment says it counts
     * tasks being stolen, its code counts ready tasks only.) */
    for (uint32_t j = SLOTS; j-- > 2;)
        ck_assert_ptr_eq(weft__ring_pop_newest(r, NULL), fake(j));
    ck_assert_ptr_null(weft__ring_pop_newest(r, NULL));
    ck_assert_ptr_null(weft__ring_pop_newest(r, fake(1)));
    /* The two slots being copied are still in use. */
    ck_assert_uint_eq(weft__ring_room(r), SLOTS - 2);
    fill(r, SLOTS, SLOTS - 2);
    ck_assert_uint_eq(weft__ring_room(r), 0);
    ck_assert(!weft__ring_push(r, fake(1000000)));
    ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, true), WEFT_RING_BUSY);
    /* The thief finishes: its slots are free, and stealing resumes with the
     * oldest task pushed after the booking. */
    atomic_store(&r->head, head + 2);
    assert_len(r, SLOTS - 2);
    ck_assert_int_eq(weft__ring_take_oldest(r, out, SLOTS, false), 1);
    ck_assert_ptr_eq(out[0], fake(SLOTS));
    assert_len(r, SLOTS - 3);
    fill(r, 2 * SLOTS, 3);
    ck_assert(!weft__ring_push(r, fake(1000000)));
}
END_TEST

START_TEST(random_ops_match_a_model_deque)
{
    struct weft__ring *r = ring_at(_i);
    struct weft__task *in[WEFT_RING_SLOTS], *out[WEFT_RING_SLOTS + 1];
    uint32_t model[WEFT_RING_SLOTS], mhead = 0, mtail = 0, next = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
    for (long op = 0; op < 200000; op++) {
        uint64_t x = xorshift(&rng);
        uint32_t size = mtail - mhead, kind = (uint32_t)(x & 15);
        /* Phases of 512 operations lean towards filling or emptying. */
        bool filling = (op >> 9) & 1;
        if (kind < 6 || (filling && kind < 10)) {
            bool ok = weft__ring_push(r, fake(next));
            EXPECT(ok == (size < SLOTS), "op %ld: push with %u tasks returned %d", op, size, ok);
            if (ok)
                model[mtail++ & WEFT_RING_MASK] = next;
            next++;
        } else if (kind < 11) {
            uint32_t n = (uint32_t)((x >> 8) % (SLOTS - size + 1));
            for (uint32_t j = 0; j < n; j++) {
                in[j] = fake(next);
                model[mtail++ & WEFT_RING_MASK] = next++;
            }
            weft__ring_push_many(r, in, n);
        } else if (kind < 13) {
            struct weft__task *t = weft__ring_pop_newest(r, NULL);
            struct weft__task *want = size ? fake(model[--mtail & WEFT_RING_MASK]) : NULL;
            EXPECT(t == want, "op %ld: pop_newest with %u tasks returned %p, not %p", op, size,
                   (void *)t, (void *)want);
        } else if (kind < 14) {
            /* Name the newest, an older task, or one never pushed. */
            uint32_t pick = (uint32_t)((x >> 8) % 3), only;
            if (pick == 0 && size > 0)
                only = model[(mtail - 1) & WEFT_RING_MASK];
            else if (pick == 1 && size > 1)
                only = model[(mtail - 2) & WEFT_RING_MASK];
            else
                only = next + 5;
            struct weft__task *t = weft__ring_pop_newest(r, fake(only)), *want = NULL;
            if (size > 0 && only == model[(mtail - 1) & WEFT_RING_MASK]) {
                want = fake(only);
                mtail--;
            }
            EXPECT(t == want, "op %ld: pop_newest(only %u) with %u tasks returned %p, not %p", op,
                   only, size, (void *)t, (void *)want);
        } else {
            uint32_t max = 1 + (uint32_t)((x >> 8) % (SLOTS + 1));
            bool half = (x >> 40) & 1;
            int n = weft__ring_take_oldest(r, out, max, half);
            uint32_t want = half ? size - size / 2 : (size ? 1 : 0);
            if (want > max)
                want = max;
            EXPECT(n == (int)want, "op %ld: take_oldest(max %u, half %d) with %u tasks returned %d",
                   op, max, half, size, n);
            for (int j = 0; j < n; j++) {
                struct weft__task *w = fake(model[mhead++ & WEFT_RING_MASK]);
                EXPECT(out[j] == w, "op %ld: take_oldest out[%d] is %p, not %p", op, j,
                       (void *)out[j], (void *)w);
            }
        }
        uint32_t len = weft__ring_len(r), room = weft__ring_room(r);
        EXPECT(len == mtail - mhead && room == SLOTS - len,
               "op %ld: len %u, room %u with %u tasks", op, len, room, mtail - mhead);
    }
}
END_TEST

/* ---- Concurrency: one owner, K thieves ------------------------------- */

/* What one consumer obtained: ids in order (UINT32_MAX: not a fake pointer). */
struct idlog {
    uint32_t *ids;
    size_t len, cap;
    unsigned long bad;      /* pointers fake() never made */
    uintptr_t first_bad;
};

static void log_task(struct idlog *l, const struct weft__task *t)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1 << 16;
        l->ids = realloc(l->ids, l->cap * sizeof l->ids[0]);
        if (!l->ids)
            abort();
    }
    uint32_t id = unfake(t);
    if (id == UINT32_MAX && l->bad++ == 0)
        l->first_bad = (uintptr_t)t;
    l->ids[l->len++] = id;
}

struct counts {
    unsigned long steals, stolen, from_thieves, busy, overflows, overflowed, fifo, only_pops;
};

/* The ring's counters, for failure messages. */
static const char *ring_state(struct weft__ring *r)
{
    static _Thread_local char buf[128];
    uint64_t pb = atomic_load(&r->pops_booked);
    snprintf(buf, sizeof buf, "pushes %u, pops %u, booked %u, head %u", atomic_load(&r->pushes),
             (uint32_t)(pb >> 32), (uint32_t)pb, atomic_load(&r->head));
    return buf;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A thief owns a ring, which other thieves steal from in turn. */
struct thief {
    struct weft__ring ring; /* first: keeps its 64-byte alignment */
    _Atomic uint64_t ops;   /* read by the owner to end the run */
    pthread_t thread;
    int idx;
    bool half;
    uint64_t rng;
    struct idlog log;
    struct counts n;
    char failure[320];
};

static struct {
    struct weft__ring *owner_ring;
    struct thief *thieves;
    int k;
    _Atomic bool owner_done;
} run;

/* Victim number v of the k others: 0 is the owner's ring, 1..k-1 the
 * other thieves' rings. */
static struct weft__ring *victim(struct thief *me, int v)
{
    if (v == 0)
        return run.owner_ring;
    return &run.thieves[v - 1 >= me->idx ? v : v - 1].ring;
}

static bool all_rings_empty(void)
{
    if (weft__ring_len(run.owner_ring) != 0)
        return false;
    for (int i = 0; i < run.k; i++)
        if (weft__ring_len(&run.thieves[i].ring) != 0)
            return false;
    return true;
}

static void *thief_main(void *arg)
{
    struct thief *me = arg;
    struct weft__ring *own = &me->ring;
    struct weft__task *buf[WEFT_RING_SLOTS];
    uint64_t ops = 0;
    unsigned idle = 0;
    for (uint64_t iter = 0;; iter++) {
        /* A broken ring can claim billions of tasks: stop before the log
         * eats the memory. */
        uint32_t len = weft__ring_len(own), room = weft__ring_room(own);
        if ((iter % 1024 == 0 && len > SLOTS) || room > SLOTS) {
            snprintf(me->failure, sizeof me->failure,
                     "thief %d: its own ring holds %u, room %u (%s)", me->idx, len, room,
                     ring_state(own));
            return NULL;
        }
        uint64_t x = xorshift(&me->rng);
        bool progress = false;
        /* Steal when out of work, and now and then before, so that this
         * ring holds stolen work for other thieves to steal. */
        if (room > 0 && (len == 0 || (x & 0x100) == 0)) {
            /* Scan the others from a random one, as a runtime's thief does,
             * until one has work. */
            int first = (int)((x >> 16) % (uint64_t)run.k);
            for (int v = 0; v < run.k && !progress; v++) {
                int victim_no = (first + v) % run.k;
                int n = weft__ring_take_oldest(victim(me, victim_no), buf, room, me->half);
                if (n > 0) {
                    if ((uint32_t)n > room || (!me->half && n != 1) ||
                        weft__ring_room(own) < (uint32_t)n) {
                        snprintf(me->failure, sizeof me->failure,
                                 "thief %d: took %d with room %u (half %d), room now %u",
                                 me->idx, n, room, me->half, weft__ring_room(own));
                        return NULL;
                    }
                    weft__ring_push_many(own, buf, (uint32_t)n);
                    ops += 1 + (uint64_t)n;
                    me->n.steals++;
                    me->n.stolen += (unsigned long)n;
                    me->n.from_thieves += victim_no != 0;
                    progress = true;
                } else if (n == WEFT_RING_BUSY) {
                    me->n.busy++;
                }
            }
        }
        struct weft__task *t = weft__ring_pop_newest(own, NULL);
        if (t) {
            log_task(&me->log, t);
            ops++;
            progress = true;
        }
        atomic_store_explicit(&me->ops, ops, memory_order_relaxed);
        if (progress) {
            idle = 0;
            continue;
        }
        if (atomic_load_explicit(&run.owner_done, memory_order_acquire) && all_rings_empty() &&
            weft__ring_len(own) == 0)
            break;
        /* Fewer cores than threads: let the owner (or a thief that is
         * copying a batch out) run. */
        if (++idle >= 8) {
            idle = 0;
            sched_yield();
        }
    }
    return NULL;
}

struct owner {
    struct weft__ring *r;
    struct idlog log;
    struct counts n;
    uint64_t ops;
    uint32_t next;
    char failure[320];
};

/* Pushes the next id; on a full ring overflows as the runtime does (the
 * oldest half leaves, here into the owner's log) and pushes again. False
 * when the ring is broken (o->failure says how). */
static bool owner_push(struct owner *o)
{
    struct weft__task *buf[WEFT_RING_SLOTS / 2];
    struct weft__task *t = fake(o->next++);
    unsigned spins = 0, empties = 0;
    double since = 0;
    for (unsigned long tries = 1; !weft__ring_push(o->r, t); tries++) {
        int n = weft__ring_take_oldest(o->r, buf, SLOTS / 2, true);
        if (n > 0) {
            for (int j = 0; j < n; j++)
                log_task(&o->log, buf[j]);
            o->ops++;
            o->n.overflows++;
            o->n.overflowed += (unsigned long)n;
            continue;
        }
        /* EMPTY once is a race (a thief emptied the ring between the two
         * calls, and the next push succeeds); a thousand times is a broken
         * ring. */
        if (n == WEFT_RING_EMPTY && ++empties == 1000) {
            snprintf(o->failure, sizeof o->failure,
                     "owner: push fails on a ring that take_oldest calls empty (%s)",
                     ring_state(o->r));
            return false;
        }
        /* BUSY: a thief is copying out of the full ring; wait for it. For a
         * minute it is a booking that is never released. */
        o->n.busy += n == WEFT_RING_BUSY;
        if (++spins >= 8) {
            spins = 0;
            sched_yield();
        }
        if (tries % 1024 == 0) {
            double now = seconds();
            if (since == 0) {
                since = now;
            } else if (now - since > 60) {
                snprintf(o->failure, sizeof o->failure,
                         "owner: full ring busy for a minute (%s)", ring_state(o->r));
                return false;
            }
        }
    }
    o->ops++;
    return true;
}

static void owner_main(struct owner *o, uint64_t budget)
{
    struct weft__task *buf[2];
    uint64_t rng = 0x2545f4914f6cdd1dULL;
    for (uint64_t round = 0;; round++) {
        if ((round & 255) == 0) {
            uint64_t thieves = 0;
            for (int i = 0; i < run.k; i++)
                thieves += atomic_load_explicit(&run.thieves[i].ops, memory_order_relaxed);
            if (o->ops + thieves >= budget)
                break;
            if (weft__ring_len(o->r) > SLOTS) {
                snprintf(o->failure, sizeof o->failure, "owner: its ring holds %u (%s)",
                         weft__ring_len(o->r), ring_state(o->r));
                return;
            }
            /* Alone on a core the owner would spend the budget by itself:
             * while the thieves have done less than a quarter of the
             * operations, give them the CPU now and then. */
            if (thieves * 3 < o->ops)
                sched_yield();
        }
        /* Phases of 4096 rounds: pushing more than popping keeps the ring
         * full (overflow, busy), popping more keeps it near empty (the
         * owner and thieves race for the last tasks). Now and then a burst
         * of 1.5 rings. */
        bool draining = (round >> 12) & 1;
        uint64_t x = xorshift(&rng);
        uint32_t k = (x & 1023) == 0 ? SLOTS + SLOTS / 2
                     : draining      ? (uint32_t)((x >> 10) & 1)
                                     : 1 + (uint32_t)((x >> 10) % 3);
        for (uint32_t j = 0; j < k; j++)
            if (!owner_push(o))
                return;
        struct weft__task *t;
        switch ((x >> 16) & 15) {
        case 0: /* FIFO mode: the owner takes its oldest. */
        {
            int n = weft__ring_take_oldest(o->r, buf, 1 + (uint32_t)((x >> 20) & 1), false);
            if (n == 1) {
                log_task(&o->log, buf[0]);
                o->ops++;
                o->n.fifo++;
            } else if (n == WEFT_RING_BUSY) {
                o->n.busy++;
            } else if (n != WEFT_RING_EMPTY) {
                snprintf(o->failure, sizeof o->failure, "owner: one-at-a-time take returned %d", n);
                return;
            }
            break;
        }
        case 1: /* Only the task just pushed: it is the newest, or stolen. */
            t = weft__ring_pop_newest(o->r, fake(o->next - 1));
            if (t) {
                if (t != fake(o->next - 1)) {
                    snprintf(o->failure, sizeof o->failure,
                             "owner: pop_newest(only %u) returned %#lx", o->next - 1,
                             (unsigned long)(uintptr_t)t);
                    return;
                }
                log_task(&o->log, t);
                o->ops++;
                o->n.only_pops++;
            }
            break;
        case 2: /* The one before it is never the newest. */
            if (k >= 2 && (t = weft__ring_pop_newest(o->r, fake(o->next - 2)))) {
                snprintf(o->failure, sizeof o->failure,
                         "owner: pop_newest(only %u) returned %#lx, newest pushed is %u",
                         o->next - 2, (unsigned long)(uintptr_t)t, o->next - 1);
                log_task(&o->log, t);
                return;
            }
            break;
        default:
            if ((t = weft__ring_pop_newest(o->r, NULL))) {
                log_task(&o->log, t);
                o->ops++;
            }
        }
        if (draining && (t = weft__ring_pop_newest(o->r, NULL))) {
            log_task(&o->log, t);
            o->ops++;
        }
    }
}

/* Every id in [0, npushed) in the logs exactly once, nothing else. */
static void assert_each_id_once(struct owner *o)
{
    unsigned char *seen = calloc(o->next ? o->next : 1, 1);
    ck_assert_ptr_nonnull(seen);
    unsigned long bad = o->log.bad, out_of_range = 0;
    uintptr_t first_bad = o->log.first_bad;
    for (int i = -1; i < run.k; i++) {
        struct idlog *l = i < 0 ? &o->log : &run.thieves[i].log;
        if (i >= 0 && l->bad && !bad)
            first_bad = l->first_bad;
        if (i >= 0)
            bad += l->bad;
        for (size_t j = 0; j < l->len; j++) {
            uint32_t id = l->ids[j];
            if (id == UINT32_MAX)
                continue;
            if (id >= o->next) {
                if (out_of_range++ == 0 && !bad)
                    first_bad = (uintptr_t)fake(id);
                continue;
            }
            if (seen[id] < 255)
                seen[id]++;
        }
    }
    unsigned long lost = 0, twice = 0;
    long first_lost = -1, first_twice = -1;
    unsigned first_twice_seen = 0;
    for (uint32_t id = 0; id < o->next; id++) {
        if (seen[id] == 0 && lost++ == 0)
            first_lost = id;
        if (seen[id] > 1 && twice++ == 0) {
            first_twice = id;
            first_twice_seen = seen[id];
        }
    }
    free(seen);
    ck_assert_msg(lost == 0 && twice == 0 && bad == 0 && out_of_range == 0,
                  "%d thieves, %u ids pushed: %lu lost (first id %ld), %lu duplicated (first "
                  "id %ld, consumed %u times), %lu pointers never pushed (first %#lx)",
                  run.k, o->next, lost, first_lost, twice, first_twice, first_twice_seen,
                  bad + out_of_range, (unsigned long)first_bad);
}

static uint64_t stress_ops(void)
{
    const char *s = getenv("WEFT_TEST_SCALE");
    return s && strtoul(s, NULL, 10) > 1 ? 10000000 : 100000000;
}

static void stress(int k)
{
    alarm(WATCHDOG_S);
    static struct owner o; /* static: fresh per forked test, zeroed below */
    o = (struct owner){0};
    run.k = k;
    run.owner_ring = aligned_alloc(64, sizeof *run.owner_ring);
    run.thieves = aligned_alloc(64, (size_t)k * sizeof *run.thieves);
    ck_assert(run.owner_ring && run.thieves);
    atomic_init(&run.owner_done, false);
    weft__ring_init(run.owner_ring, false);
    o.r = run.owner_ring;
    for (int i = 0; i < k; i++) {
        struct thief *th = &run.thieves[i];
        weft__ring_init(&th->ring, false);
        atomic_init(&th->ops, 0);
        th->idx = i;
        th->half = i % 2 == 0;
        th->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        th->log = (struct idlog){0};
        th->n = (struct counts){0};
        th->failure[0] = '\0';
    }
    for (int i = 0; i < k; i++)
        ck_assert_int_eq(pthread_create(&run.thieves[i].thread, NULL, thief_main, &run.thieves[i]),
                         0);

    owner_main(&o, stress_ops());
    /* Drain: what no thief took is the owner's. */
    struct weft__task *t;
    uint32_t drained = 0;
    while (drained <= SLOTS && (t = weft__ring_pop_newest(o.r, NULL))) {
        log_task(&o.log, t);
        o.ops++;
        drained++;
    }
    ck_assert_msg(o.failure[0] == '\0', "%s", o.failure);
    ck_assert_msg(drained <= SLOTS, "owner popped more than %u tasks at the end (%s)", SLOTS,
                  ring_state(o.r));
    atomic_store_explicit(&run.owner_done, true, memory_order_release);

    struct counts sum = o.n;
    uint64_t ops = o.ops;
    /* At most (k + 1) * SLOTS tasks were left when the owner finished: a
     * thief still running a minute later is stuck on a broken ring (it
     * fails here, with the rings' state, not at the watchdog). */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    for (int i = 0; i < k; i++) {
        struct thief *th = &run.thieves[i];
        int rc = pthread_timedjoin_np(th->thread, NULL, &deadline);
        if (rc != 0) {
            char lens[300];
            int at = snprintf(lens, sizeof lens, "owner's (%s)", ring_state(o.r));
            for (int j = 0; j < k && at < (int)sizeof lens; j++)
                at += snprintf(lens + at, sizeof lens - (size_t)at, ", thief %d's len %u", j,
                               weft__ring_len(&run.thieves[j].ring));
            ck_abort_msg("thief %d not done 60 s after the owner (%s); rings: %s", i,
                         th->failure[0] ? th->failure : "no failure recorded", lens);
        }
        ck_assert_msg(th->failure[0] == '\0', "%s", th->failure);
        ck_assert_uint_eq(weft__ring_len(&th->ring), 0);
        ops += atomic_load(&th->ops);
        sum.steals += th->n.steals;
        sum.stolen += th->n.stolen;
        sum.from_thieves += th->n.from_thieves;
        sum.busy += th->n.busy;
    }
    ck_assert_uint_eq(weft__ring_len(o.r), 0);
    printf("stress_ring: slots %u, %d thieves: %llu ops, %u ids; %lu steals (%lu tasks, %lu "
           "from thieves' rings), %lu overflows (%lu tasks), %lu fifo takes, %lu only-pops, "
           "%lu busy\n",
           SLOTS, k, (unsigned long long)ops, o.next, sum.steals, sum.stolen, sum.from_thieves,
           sum.overflows, sum.overflowed, sum.fifo, sum.only_pops, sum.busy);
    fflush(stdout);
    assert_each_id_once(&o);
    /* The run was concurrent: thieves took work. (How much, and how much
     * from each other's rings, depends on the scheduler: printed above,
     * not asserted.) */
    ck_assert_uint_gt(sum.steals, 0);

    for (int i = 0; i < k; i++)
        free(run.thieves[i].log.ids);
    free(o.log.ids);
    free(run.thieves);
    free(run.owner_ring);
    alarm(0);
}

START_TEST(one_thief_loses_and_duplicates_nothing)
{
    stress(1);
}
END_TEST

START_TEST(three_thieves_lose_and_duplicate_nothing)
{
    stress(3);
}
END_TEST

START_TEST(seven_thieves_lose_and_duplicate_nothing)
{
    stress(MAX_THIEVES);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("semantics");
    tcase_add_loop_test(tc, empty_ring_has_nothing_to_take, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, push_fails_exactly_when_full, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, pop_newest_is_lifo, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, pop_newest_only_takes_the_named_newest, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, take_oldest_takes_half_rounded_up, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, take_oldest_is_capped_by_max, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, push_many_appends_in_order, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, steal_in_progress_holds_its_slots, 0, 2 * NSTARTS);
    tcase_add_loop_test(tc, random_ops_match_a_model_deque, 0, 2 * NSTARTS);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("stress");
    tcase_set_timeout(st, WATCHDOG_S + 10);
    tcase_add_test(st, one_thief_loses_and_duplicates_nothing);
    tcase_add_test(st, three_thieves_lose_and_duplicate_nothing);
    tcase_add_test(st, seven_thieves_lose_and_duplicate_nothing);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
