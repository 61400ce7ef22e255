/*
 * Execution contexts: the register swap (one assembly file per
 * architecture and ABI, chosen by CMake) and the sanitizer bookkeeping that
 * must surround every swap so that sanitizer builds see the truth.
 *
 * A fiber is one execution context: a task's, or a worker thread's own
 * (its scheduler context, on the thread's native stack). weft__fiber_switch
 * is the only place that calls weft__ctx_swap with a scheduler around it:
 *
 *   - AddressSanitizer is told the bounds of the stack being entered before
 *     the swap (__sanitizer_start_switch_fiber) and that the swap finished
 *     after it (__sanitizer_finish_switch_fiber); a context that will never
 *     resume passes NULL so that ASan frees its fake stack.
 *   - ThreadSanitizer keeps one fiber object per context and is told which
 *     one is current before the swap (__tsan_switch_to_fiber).
 *   - valgrind learns each stack when it is mapped (VALGRIND_STACK_REGISTER
 *     in stack.c), so that it recognises the stack-pointer jumps.
 */
#ifndef WEFT_ARCH_CONTEXT_H
#define WEFT_ARCH_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Saves the callee-saved state of the running context on its stack, stores
 * its stack pointer in *save_sp, and resumes the context whose stack pointer
 * is load_sp. Returns, in the context that is later resumed, the arg given
 * to the weft__ctx_swap that resumed it. Any thread. */
void *weft__ctx_swap(void **save_sp, void *load_sp, void *arg);

/* Prepares a fresh context on the stack whose highest address is stack_top
 * and returns its stack pointer; the first swap to it calls entry(arg),
 * which must never return. Any thread. */
void *weft__ctx_make(void *stack_top, void (*entry)(void *));

struct weft__fiber {
    void *sp;         /* saved stack pointer while suspended; owner only */
    void *stack_lo;   /* lowest usable address of its stack */
    size_t stack_len; /* usable bytes of its stack */
#ifdef WEFT_ASAN
    void *asan_fake; /* ASan's fake-stack handle while suspended */
#endif
#ifdef WEFT_TSAN
    void *tsan; /* TSan's fiber object */
#endif
};

/* Makes f the current thread's own context (its native stack). Worker
 * thread, before its first switch. */
static inline void weft__fiber_init_thread(struct weft__fiber *f, void *lo, size_t len)
{
    f->sp = NULL;
    f->stack_lo = lo;
    f->stack_len = len;
#ifdef WEFT_ASAN
    f->asan_fake = NULL;
#endif
#ifdef WEFT_TSAN
    f->tsan = __tsan_get_current_fiber();
#endif
}

/* Prepares f to enter entry(arg) on the stack [lo, lo + len). Any thread. */
static inline void weft__fiber_make(struct weft__fiber *f, void *lo, size_t len,
                                    void (*entry)(void *))
{
    f->stack_lo = lo;
    f->stack_len = len;
    f->sp = weft__ctx_make((char *)lo + len, entry);
#ifdef WEFT_ASAN
    f->asan_fake = NULL;
#endif
#ifdef WEFT_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
}

/* Releases what the sanitizers keep for a fiber that will never run again.
 * Called from another context, after the fiber's last switch. */
static inline void weft__fiber_release(struct weft__fiber *f)
{
#ifdef WEFT_TSAN
    if (f->tsan)
        __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
#else
    (void)f;
#endif
}

/* Switches from the running fiber `from` to `to`, handing over arg.
 * `exiting` says that `from` will never be resumed. Returns, once `from` is
 * resumed, the arg of the switch that resumed it. */
static inline void *weft__fiber_switch(struct weft__fiber *from, struct weft__fiber *to, void *arg,
                                       bool exiting)
{
#ifdef WEFT_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake, to->stack_lo, to->stack_len);
#else
    (void)exiting;
#endif
#ifdef WEFT_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    void *ret = weft__ctx_swap(&from->sp, to->sp, arg);
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
    return ret;
}

/* The first thing a fresh fiber does: completes the switch that entered
 * it. */
static inline void weft__fiber_entered(struct weft__fiber *f)
{
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    (void)f;
}

#endif
