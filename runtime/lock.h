/*
 * A small spin lock for the short critical sections of wait queues and
 * timer heaps: a handful of pointer moves, never a system call or a switch
 * inside. Test-and-test-and-set; a waiter that has spun for a while yields
 * its CPU, since the holder may have been preempted (2 cores, more threads).
 *
 * Rejected: pthread mutexes. They are 40 bytes each (a channel or future
 * would carry one), and their uncontended path is no cheaper.
 */
#ifndef WEFT_LOCK_H
#define WEFT_LOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

struct weft__lock {
    _Atomic uint32_t held; /* 1 while held; acquire/release pair the sections */
};

static inline void weft__lock_init(struct weft__lock *l)
{
    atomic_init(&l->held, 0);
}

static inline void weft__lock_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One round of a wait for something another thread finishes within a
 * few instructions, unless it was preempted: a pause at first, then the
 * CPU given up. `spins` counts the rounds of one wait. Any thread. */
static inline void weft__spin_pause(unsigned *spins)
{
    if (++*spins < 128)
        weft__lock_relax();
    else
        sched_yield();
}

/* Any thread; never suspends the task. */
static inline void weft__lock_acquire(struct weft__lock *l)
{
    unsigned spins = 0;
    /* Acquire: pairs with the release in weft__lock_release(). */
    while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&l->held, memory_order_relaxed))
            weft__spin_pause(&spins);
    }
}

static inline void weft__lock_release(struct weft__lock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif
