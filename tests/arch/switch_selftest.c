/*
 * Self-test of the register swap (runtime/arch/switch_*.S) for the
 * architecture it is compiled for. It links nothing of weft but the swap
 * itself and the register helpers of tests/arch/regs_<arch>.S, so that it
 * also runs as a cross-compiled static binary under qemu-user.
 *
 * Each group of checks runs in a child process, so that a switch that
 * crashes is reported as a failed check rather than ending the run. The
 * output is one "ok - name" or "not ok - name" line per check (details of a
 * failure follow on "# " lines) and a last line "N passed, M failed"; the
 * exit status is 0 iff nothing failed.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS under -std=c11 */
#endif

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../runtime/arch/context.h"
#include "regs.h"

/* ---- reporting ---------------------------------------------------------- */

/* Shared with the child processes that run the groups. */
struct tally {
    int passed;
    int failed;
};
static struct tally *tally;

__attribute__((format(printf, 2, 3))) static int check(int ok, const char *fmt, ...)
{
    va_list ap;
    fputs(ok ? "ok - " : "not ok - ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (ok)
        tally->passed++;
    else
        tally->failed++;
    return ok;
}

/* Runs one group of checks in a child process; a child that dies or exits
 * with an error counts as one more failed check. */
static void run_group(const char *name, void (*group)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        check(0, "%s (fork failed)", name);
        return;
    }
    if (pid == 0) {
        group();
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        check(0, "%s (waitpid failed)", name);
    else if (WIFSIGNALED(status))
        check(0, "%s (died of signal %d)", name, WTERMSIG(status));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        check(0, "%s (exited with status %d)", name, WEXITSTATUS(status));
}

/* ---- stacks and contexts ------------------------------------------------ */

#define STACK_SIZE (64 * 1024)

struct stack {
    void *map;   /* the mapping, a guard page first */
    size_t len;  /* its length */
    char *lo;    /* lowest usable address */
    char *top;   /* one past the highest usable address, page aligned */
};

static struct stack stack_new(void)
{
    struct stack s;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    s.len = STACK_SIZE + page;
    s.map = mmap(NULL, s.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s.map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(s.map, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    s.lo = (char *)s.map + page;
    s.top = s.lo + STACK_SIZE;
    return s;
}

static void stack_free(struct stack *s)
{
    munmap(s->map, s->len);
}

/* The two contexts of every group: main's (the child's native stack) and
 * the one made on a fresh stack. */
static void *main_sp;
static void *ctx_sp;

/* Switches from the context to main for the last time. */
_Noreturn static void ctx_finish(void *arg)
{
    weft__ctx_swap(&ctx_sp, main_sp, arg);
    abort(); /* never resumed */
}

/* ---- ping-pong: arg passing both ways and the resume address ------------ */

#define PING_N 1000
#define PING_ARG ((uintptr_t)0x5eed5eedu)
#define PING_FROM_CTX ((uintptr_t)0xc0de0000u) /* + i */
#define PING_FROM_MAIN ((uintptr_t)0x3a1e0000u) /* + i */
#define PING_DONE ((uintptr_t)0xd0d0d0d0u)

static void *ping_entry_arg;
static int ping_entries;
static int ping_ctx_bad;

static void ping_entry(void *arg)
{
    ping_entry_arg = arg;
    ping_entries++;
    for (uintptr_t i = 0; i < PING_N; i++) {
        void *r = weft__ctx_swap(&ctx_sp, main_sp, (void *)(PING_FROM_CTX + i));
        if (r != (void *)(PING_FROM_MAIN + i))
            ping_ctx_bad++;
    }
    ctx_finish((void *)PING_DONE);
}

static void group_pingpong(void)
{
    struct stack s = stack_new();
    int main_bad = 0;

    ctx_sp = weft__ctx_make(s.top, ping_entry);
    void *r = weft__ctx_swap(&main_sp, ctx_sp, (void *)PING_ARG);
    check(ping_entry_arg == (void *)PING_ARG, "ping-pong: a fresh context's entry gets the arg");
    for (uintptr_t i = 0; i < PING_N; i++) {
        if (r != (void *)(PING_FROM_CTX + i))
            main_bad++;
        r = weft__ctx_swap(&main_sp, ctx_sp, (void *)(PING_FROM_MAIN + i));
    }
    check(r == (void *)PING_DONE, "ping-pong: the last swap returns the context's final arg");
    check(main_bad == 0, "ping-pong: main got back all %d args in order", PING_N);
    if (main_bad)
        printf("# %d wrong\n", main_bad);
    check(ping_ctx_bad == 0, "ping-pong: the context got all %d args in order", PING_N);
    if (ping_ctx_bad)
        printf("# %d wrong\n", ping_ctx_bad);
    check(ping_entries == 1, "ping-pong: entry ran once");
    stack_free(&s);
}

/* ---- callee-saved registers and control words --------------------------- */

struct expect {
    const char *name;
    int idx;       /* in out[] */
    uint64_t mask; /* the bits compared */
    uint64_t want;
};

/* A control word must come back exactly as the helper set it. */
struct exact {
    const char *name;
    int got;
    int set;
};

#if defined(__x86_64__)
static const struct expect expected[] = {
    {"rbx", WEFT_OUT_RBX, UINT64_MAX, WEFT_TEST_PAT_RBX},
    {"rbp", WEFT_OUT_RBP, UINT64_MAX, WEFT_TEST_PAT_RBP},
    {"r12", WEFT_OUT_R12, UINT64_MAX, WEFT_TEST_PAT_R12},
    {"r13", WEFT_OUT_R13, UINT64_MAX, WEFT_TEST_PAT_R13},
    {"r14", WEFT_OUT_R14, UINT64_MAX, WEFT_TEST_PAT_R14},
    {"r15", WEFT_OUT_R15, UINT64_MAX, WEFT_TEST_PAT_R15},
    {"MXCSR rounding control (toward zero)", WEFT_OUT_MXCSR, WEFT_TEST_MXCSR_RC_MASK,
     WEFT_TEST_MXCSR_RC_PAT},
    {"x87 precision control (single)", WEFT_OUT_X87CW, WEFT_TEST_X87_PC_MASK,
     WEFT_TEST_X87_PC_PAT},
};
static const struct exact exacts[] = {
    {"MXCSR", WEFT_OUT_MXCSR, WEFT_OUT_MXCSR_SET},
    {"x87 control word", WEFT_OUT_X87CW, WEFT_OUT_X87CW_SET},
};
#elif defined(__aarch64__)
static const struct expect expected[] = {
    {"x19", WEFT_OUT_X19, UINT64_MAX, WEFT_TEST_PAT_X19},
    {"x20", WEFT_OUT_X20, UINT64_MAX, WEFT_TEST_PAT_X20},
    {"x21", WEFT_OUT_X21, UINT64_MAX, WEFT_TEST_PAT_X21},
    {"x22", WEFT_OUT_X22, UINT64_MAX, WEFT_TEST_PAT_X22},
    {"x23", WEFT_OUT_X23, UINT64_MAX, WEFT_TEST_PAT_X23},
    {"x24", WEFT_OUT_X24, UINT64_MAX, WEFT_TEST_PAT_X24},
    {"x25", WEFT_OUT_X25, UINT64_MAX, WEFT_TEST_PAT_X25},
    {"x26", WEFT_OUT_X26, UINT64_MAX, WEFT_TEST_PAT_X26},
    {"x27", WEFT_OUT_X27, UINT64_MAX, WEFT_TEST_PAT_X27},
    {"x28", WEFT_OUT_X28, UINT64_MAX, WEFT_TEST_PAT_X28},
    {"x29 (fp)", WEFT_OUT_X29, UINT64_MAX, WEFT_TEST_PAT_X29},
    {"d8", WEFT_OUT_D8, UINT64_MAX, WEFT_TEST_PAT_D8},
    {"d9", WEFT_OUT_D9, UINT64_MAX, WEFT_TEST_PAT_D9},
    {"d10", WEFT_OUT_D10, UINT64_MAX, WEFT_TEST_PAT_D10},
    {"d11", WEFT_OUT_D11, UINT64_MAX, WEFT_TEST_PAT_D11},
    {"d12", WEFT_OUT_D12, UINT64_MAX, WEFT_TEST_PAT_D12},
    {"d13", WEFT_OUT_D13, UINT64_MAX, WEFT_TEST_PAT_D13},
    {"d14", WEFT_OUT_D14, UINT64_MAX, WEFT_TEST_PAT_D14},
    {"d15", WEFT_OUT_D15, UINT64_MAX, WEFT_TEST_PAT_D15},
    {"FPCR rounding mode (toward zero)", WEFT_OUT_FPCR, WEFT_TEST_FPCR_RMODE_MASK,
     WEFT_TEST_FPCR_RMODE_PAT},
};
static const struct exact exacts[] = {
    {"FPCR", WEFT_OUT_FPCR, WEFT_OUT_FPCR_SET},
};
#else
#error "switch_selftest: no expected register values for this architecture"
#endif

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Checks an out[] of weft_test_swap_regs; who says which side was resumed. */
static void check_regs(const char *who, const uint64_t out[WEFT_OUT_COUNT])
{
    for (size_t i = 0; i < COUNT_OF(expected); i++) {
        const struct expect *e = &expected[i];
        uint64_t got = out[e->idx] & e->mask;
        if (!check(got == e->want, "%s keeps %s", who, e->name))
            printf("# got 0x%016" PRIx64 ", want 0x%016" PRIx64 "\n", got, e->want);
    }
    for (size_t i = 0; i < COUNT_OF(exacts); i++) {
        const struct exact *x = &exacts[i];
        if (!check(out[x->got] == out[x->set], "%s keeps its whole %s", who, x->name))
            printf("# got 0x%" PRIx64 ", set 0x%" PRIx64 "\n", out[x->got], out[x->set]);
    }
}

/* Filled in by the context side when main's clobber_swap resumes it. */
static uint64_t out_ctx[WEFT_OUT_COUNT];

static void regs_entry(void *arg)
{
    (void)arg;
    /* 2: trash every register and resume main inside weft_test_swap_regs. */
    weft_test_clobber_swap(&ctx_sp, main_sp);
    /* 3: main's first clobber_swap resumed us; our clobber_swap put our
     * own registers back. 4: load the patterns and resume main. */
    weft_test_swap_regs(&ctx_sp, main_sp, out_ctx);
    /* 5: main trashed everything before it resumed us. */
    check_regs("context resumed after main clobbered", out_ctx);
    ctx_finish(NULL); /* 6 */
}

static void group_regs(void)
{
    struct stack s = stack_new();
    uint64_t out_main[WEFT_OUT_COUNT];

    memset(out_main, 0, sizeof out_main);
    memset(out_ctx, 0, sizeof out_ctx);
    ctx_sp = weft__ctx_make(s.top, regs_entry);
    /* 1: load the patterns and enter the context. */
    weft_test_swap_regs(&main_sp, ctx_sp, out_main);
    check_regs("main resumed after the context clobbered", out_main);
    /* 3: trash everything and resume the context (inside its clobber_swap). */
    weft_test_clobber_swap(&main_sp, ctx_sp);
    /* 5: trash everything and resume the context inside its swap_regs. */
    weft_test_clobber_swap(&main_sp, ctx_sp);
    stack_free(&s);
}

/* ---- stack alignment in a fresh context --------------------------------- */

struct align_seen {
    uintptr_t frame; /* __builtin_frame_address(0) in the entry */
    uintptr_t local; /* the address of an _Alignas(16) local */
    uintptr_t sp;    /* sp read in the entry */
};
static struct align_seen align_seen;

/* Keeps the local in memory at its own address. */
__attribute__((noinline)) static void take_address(volatile unsigned char *p)
{
    align_seen.local = (uintptr_t)p;
    p[0] = 1;
}

static void align_entry(void *arg)
{
    _Alignas(16) volatile unsigned char local[16];
    uintptr_t sp;

    (void)arg;
    align_seen.frame = (uintptr_t)__builtin_frame_address(0);
    take_address(local);
#if defined(__x86_64__)
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#endif
    align_seen.sp = sp;
    ctx_finish(NULL);
}

static void group_align(void)
{
    /* A top that is 16-aligned, and ones that are not: make aligns down. */
    static const unsigned offsets[] = {0, 8, 4, 1};
    for (size_t i = 0; i < COUNT_OF(offsets); i++) {
        struct stack s = stack_new();
        char *top = s.top - offsets[i];
        memset(&align_seen, 0, sizeof align_seen);
        ctx_sp = weft__ctx_make(top, align_entry);
        weft__ctx_swap(&main_sp, ctx_sp, NULL);
        /* On x86-64 the frame address is the rsp at the call minus 16 (the
         * return address and the saved rbp); on AArch64 it is sp after the
         * prologue. Either way it is 16-aligned iff sp was at the call. */
        check(align_seen.frame % 16 == 0, "alignment (top %% 16 = %u): frame address", offsets[i]);
        check(align_seen.local % 16 == 0, "alignment (top %% 16 = %u): _Alignas(16) local",
              offsets[i]);
        check(align_seen.sp % 16 == 0, "alignment (top %% 16 = %u): sp", offsets[i]);
        check(align_seen.sp > (uintptr_t)s.lo && align_seen.sp < (uintptr_t)top,
              "alignment (top %% 16 = %u): the context runs on its own stack", offsets[i]);
        stack_free(&s);
    }
}

/* ---- floating point in a context ---------------------------------------- */

#define FP_N 100000
#define FP_CHUNK 1000

/* sum + 1/k^2 for k in [from, to), strictly in order. */
__attribute__((noinline)) static double basel(unsigned from, unsigned to, double sum)
{
    for (unsigned k = from; k < to; k++)
        sum += 1.0 / ((double)k * (double)k);
    return sum;
}

static double fp_ctx_sum;
static int fp_ctx_third;

static void fp_entry(void *arg)
{
    volatile double one = 1.0, three = 3.0;
    double sum = 0.0;

    (void)arg;
    fp_ctx_third = (one / three) * three == 1.0; /* true when rounding to nearest */
    for (unsigned k = 1; k < FP_N; k += FP_CHUNK) {
        unsigned end = k + FP_CHUNK < FP_N ? k + FP_CHUNK : FP_N;
        sum = basel(k, end, sum);
        weft__ctx_swap(&ctx_sp, main_sp, NULL); /* sum lives across the swap */
    }
    fp_ctx_sum = sum;
    ctx_finish(NULL);
}

static void group_fp(void)
{
    struct stack s = stack_new();
    double want = basel(1, FP_N, 0.0); /* the same additions on main's stack */
    double noise = 0.0;
    volatile double pi = 3.14159265358979323846;

    ctx_sp = weft__ctx_make(s.top, fp_entry);
    fp_ctx_sum = -1.0;
    for (unsigned k = 1; k < FP_N; k += FP_CHUNK) {
        weft__ctx_swap(&main_sp, ctx_sp, NULL);
        noise = basel(k + 7, k + 17, noise); /* other FP work between the swaps */
    }
    weft__ctx_swap(&main_sp, ctx_sp, NULL); /* the context stores its sum and finishes */
    check(fp_ctx_third, "floating point in a context: (1/3)*3 == 1 (round to nearest)");
    if (!check(fp_ctx_sum == want, "floating point in a context: a sum across %d swaps is exact",
               FP_N / FP_CHUNK))
        printf("# got %.17g, want %.17g\n", fp_ctx_sum, want);
    check(fabs(fp_ctx_sum - pi * pi / 6.0) < 1e-4, "floating point in a context: the sum is pi^2/6");
    check(noise > 0.0, "floating point in main between swaps");
    stack_free(&s);
}

/* ---- main --------------------------------------------------------------- */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tally = mmap(NULL, sizeof *tally, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tally == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    tally->passed = 0;
    tally->failed = 0;

    run_group("ping-pong", group_pingpong);
    run_group("callee-saved registers", group_regs);
    run_group("stack alignment", group_align);
    run_group("floating point", group_fp);

    printf("%d passed, %d failed\n", tally->passed, tally->failed);
    return tally->failed == 0 ? 0 : 1;
}
