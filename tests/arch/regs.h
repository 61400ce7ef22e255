/*
 * Assembly helpers for the context-switch self-test (regs_<arch>.S): they
 * put known values in every callee-saved register and floating-point
 * control word around a weft__ctx_swap and report what came back.
 *
 * This header is also included by the assembly files, so everything
 * outside the __ASSEMBLER__ guard is a plain preprocessor constant.
 *
 * weft_test_swap_regs(save_sp, load_sp, out)
 *   Saves the caller's callee-saved registers and control words, loads the
 *   WEFT_TEST_PAT_* patterns into every callee-saved register and the
 *   "pattern" control words below, calls weft__ctx_swap(save_sp, load_sp,
 *   0), and once resumed stores the registers and control words as they
 *   came back into out[] (layout: enum weft_test_out), then restores the
 *   caller's registers and control words and returns.
 *
 * weft_test_clobber_swap(save_sp, load_sp)
 *   The same, with different values (WEFT_TEST_CLOB_* and the "clobber"
 *   control words) and no report: it stands for a context that trashes
 *   every register before it switches away. Once resumed it restores the
 *   caller's registers and control words and returns.
 *
 * Control words are set by changing only the named field of the value the
 * caller had, so out[] also holds the exact word the helper set
 * (..._SET): after the swap the register must read back exactly that.
 */
#ifndef WEFT_TESTS_ARCH_REGS_H
#define WEFT_TESTS_ARCH_REGS_H

/* A 64-bit constant in C and in GNU as, which has no ULL suffix. */
#ifdef __ASSEMBLER__
#define WEFT_TEST_U64(x) x
#else
#define WEFT_TEST_U64(x) x##ULL
#endif

#if defined(__x86_64__)

/* Patterns loaded by weft_test_swap_regs. */
#define WEFT_TEST_PAT_RBX WEFT_TEST_U64(0x1b1b2b3b4b5b6b7b)
#define WEFT_TEST_PAT_RBP WEFT_TEST_U64(0x2b2b3b4b5b6b7b8b)
#define WEFT_TEST_PAT_R12 WEFT_TEST_U64(0x3c3c4c5c6c7c8c9c)
#define WEFT_TEST_PAT_R13 WEFT_TEST_U64(0x4d4d5d6d7d8d9dad)
#define WEFT_TEST_PAT_R14 WEFT_TEST_U64(0x5e5e6e7e8e9eaebe)
#define WEFT_TEST_PAT_R15 WEFT_TEST_U64(0x6f6f7f8f9fafbfcf)

/* Garbage loaded by weft_test_clobber_swap. */
#define WEFT_TEST_CLOB_RBX WEFT_TEST_U64(0xdead00000000b0b0)
#define WEFT_TEST_CLOB_RBP WEFT_TEST_U64(0xdead00000000b1b1)
#define WEFT_TEST_CLOB_R12 WEFT_TEST_U64(0xdead00000000c2c2)
#define WEFT_TEST_CLOB_R13 WEFT_TEST_U64(0xdead00000000c3c3)
#define WEFT_TEST_CLOB_R14 WEFT_TEST_U64(0xdead00000000c4c4)
#define WEFT_TEST_CLOB_R15 WEFT_TEST_U64(0xdead00000000c5c5)

/* MXCSR rounding control, bits 13-14. */
#define WEFT_TEST_MXCSR_RC_MASK 0x6000
#define WEFT_TEST_MXCSR_RC_PAT 0x6000  /* pattern: 11, round toward zero */
#define WEFT_TEST_MXCSR_RC_CLOB 0x4000 /* clobber: 10, round up */

/* x87 control word precision control, bits 8-9. */
#define WEFT_TEST_X87_PC_MASK 0x0300
#define WEFT_TEST_X87_PC_PAT 0x0000  /* pattern: 00, single precision */
#define WEFT_TEST_X87_PC_CLOB 0x0200 /* clobber: 10, double precision */

#ifndef __ASSEMBLER__
/* out[] of weft_test_swap_regs; each entry is one uint64_t. */
enum weft_test_out {
    WEFT_OUT_RBX = 0,
    WEFT_OUT_RBP = 1,
    WEFT_OUT_R12 = 2,
    WEFT_OUT_R13 = 3,
    WEFT_OUT_R14 = 4,
    WEFT_OUT_R15 = 5,
    WEFT_OUT_MXCSR = 6,     /* MXCSR after the swap returned */
    WEFT_OUT_X87CW = 7,     /* x87 control word after the swap returned */
    WEFT_OUT_MXCSR_SET = 8, /* MXCSR as set before the swap */
    WEFT_OUT_X87CW_SET = 9, /* x87 control word as set before the swap */
    WEFT_OUT_COUNT = 10
};
#endif

#elif defined(__aarch64__)

/* Patterns loaded by weft_test_swap_regs: x19-x29, then d8-d15. */
#define WEFT_TEST_PAT_X19 WEFT_TEST_U64(0x1919191919191919)
#define WEFT_TEST_PAT_X20 WEFT_TEST_U64(0x2020202020202020)
#define WEFT_TEST_PAT_X21 WEFT_TEST_U64(0x2121212121212121)
#define WEFT_TEST_PAT_X22 WEFT_TEST_U64(0x2222222222222222)
#define WEFT_TEST_PAT_X23 WEFT_TEST_U64(0x2323232323232323)
#define WEFT_TEST_PAT_X24 WEFT_TEST_U64(0x2424242424242424)
#define WEFT_TEST_PAT_X25 WEFT_TEST_U64(0x2525252525252525)
#define WEFT_TEST_PAT_X26 WEFT_TEST_U64(0x2626262626262626)
#define WEFT_TEST_PAT_X27 WEFT_TEST_U64(0x2727272727272727)
#define WEFT_TEST_PAT_X28 WEFT_TEST_U64(0x2828282828282828)
#define WEFT_TEST_PAT_X29 WEFT_TEST_U64(0x2929292929292929)
#define WEFT_TEST_PAT_D8 WEFT_TEST_U64(0xd8d8000000000008)
#define WEFT_TEST_PAT_D9 WEFT_TEST_U64(0xd9d9000000000009)
#define WEFT_TEST_PAT_D10 WEFT_TEST_U64(0xdada00000000000a)
#define WEFT_TEST_PAT_D11 WEFT_TEST_U64(0xdbdb00000000000b)
#define WEFT_TEST_PAT_D12 WEFT_TEST_U64(0xdcdc00000000000c)
#define WEFT_TEST_PAT_D13 WEFT_TEST_U64(0xdddd00000000000d)
#define WEFT_TEST_PAT_D14 WEFT_TEST_U64(0xdede00000000000e)
#define WEFT_TEST_PAT_D15 WEFT_TEST_U64(0xdfdf00000000000f)

/* Garbage loaded by weft_test_clobber_swap. */
#define WEFT_TEST_CLOB_X19 WEFT_TEST_U64(0xbad0000000000019)
#define WEFT_TEST_CLOB_X20 WEFT_TEST_U64(0xbad0000000000020)
#define WEFT_TEST_CLOB_X21 WEFT_TEST_U64(0xbad0000000000021)
#define WEFT_TEST_CLOB_X22 WEFT_TEST_U64(0xbad0000000000022)
#define WEFT_TEST_CLOB_X23 WEFT_TEST_U64(0xbad0000000000023)
#define WEFT_TEST_CLOB_X24 WEFT_TEST_U64(0xbad0000000000024)
#define WEFT_TEST_CLOB_X25 WEFT_TEST_U64(0xbad0000000000025)
#define WEFT_TEST_CLOB_X26 WEFT_TEST_U64(0xbad0000000000026)
#define WEFT_TEST_CLOB_X27 WEFT_TEST_U64(0xbad0000000000027)
#define WEFT_TEST_CLOB_X28 WEFT_TEST_U64(0xbad0000000000028)
#define WEFT_TEST_CLOB_X29 WEFT_TEST_U64(0xbad0000000000029)
#define WEFT_TEST_CLOB_D8 WEFT_TEST_U64(0x7ff0bad000000d08)
#define WEFT_TEST_CLOB_D9 WEFT_TEST_U64(0x7ff0bad000000d09)
#define WEFT_TEST_CLOB_D10 WEFT_TEST_U64(0x7ff0bad000000d10)
#define WEFT_TEST_CLOB_D11 WEFT_TEST_U64(0x7ff0bad000000d11)
#define WEFT_TEST_CLOB_D12 WEFT_TEST_U64(0x7ff0bad000000d12)
#define WEFT_TEST_CLOB_D13 WEFT_TEST_U64(0x7ff0bad000000d13)
#define WEFT_TEST_CLOB_D14 WEFT_TEST_U64(0x7ff0bad000000d14)
#define WEFT_TEST_CLOB_D15 WEFT_TEST_U64(0x7ff0bad000000d15)

/* FPCR rounding mode (RMode), bits 22-23. */
#define WEFT_TEST_FPCR_RMODE_MASK 0xc00000
#define WEFT_TEST_FPCR_RMODE_PAT 0xc00000  /* pattern: 11, round toward zero */
#define WEFT_TEST_FPCR_RMODE_CLOB 0x800000 /* clobber: 10, round toward -inf */

#ifndef __ASSEMBLER__
/* out[] of weft_test_swap_regs; each entry is one uint64_t. */
enum weft_test_out {
    WEFT_OUT_X19 = 0, /* x19-x29 at 0-10 */
    WEFT_OUT_X20 = 1,
    WEFT_OUT_X21 = 2,
    WEFT_OUT_X22 = 3,
    WEFT_OUT_X23 = 4,
    WEFT_OUT_X24 = 5,
    WEFT_OUT_X25 = 6,
    WEFT_OUT_X26 = 7,
    WEFT_OUT_X27 = 8,
    WEFT_OUT_X28 = 9,
    WEFT_OUT_X29 = 10,
    WEFT_OUT_D8 = 11, /* d8-d15 (raw bits) at 11-18 */
    WEFT_OUT_D9 = 12,
    WEFT_OUT_D10 = 13,
    WEFT_OUT_D11 = 14,
    WEFT_OUT_D12 = 15,
    WEFT_OUT_D13 = 16,
    WEFT_OUT_D14 = 17,
    WEFT_OUT_D15 = 18,
    WEFT_OUT_FPCR = 19,     /* FPCR after the swap returned */
    WEFT_OUT_FPCR_SET = 20, /* FPCR as set before the swap */
    WEFT_OUT_COUNT = 21
};
#endif

#else
#error "tests/arch/regs.h: no register helpers for this architecture"
#endif

#ifndef __ASSEMBLER__
#include <stdint.h>

void weft_test_swap_regs(void **save_sp, void *load_sp, uint64_t out[WEFT_OUT_COUNT]);
void weft_test_clobber_swap(void **save_sp, void *load_sp);
#endif

#endif
