/*
 * Register helpers for the context-switch self-test, AArch64, AAPCS64, ELF,
 * GNU as. See regs.h for what they do and for the patterns.
 *
 * Both helpers keep this frame (offsets from sp after the prologue; 0xc0
 * bytes, so sp stays 16-byte aligned):
 *
 *   weft_test_swap_regs                weft_test_clobber_swap
 *   +0x00  x29, x30                    x29, x30
 *   +0x10  x19, x20                    x19, x20
 *   +0x20  x21, x22                    x21, x22
 *   +0x30  x23, x24                    x23, x24
 *   +0x40  x25, x26                    x25, x26
 *   +0x50  x27, x28                    x27, x28
 *   +0x60  d8, d9                      d8, d9
 *   +0x70  d10, d11                    d10, d11
 *   +0x80  d12, d13                    d12, d13
 *   +0x90  d14, d15                    d14, d15
 *   +0xa0  out (the third argument)    (unused)
 *   +0xa8  the caller's FPCR           the caller's FPCR
 *   +0xb0  FPCR as set                 FPCR as set
 *   +0xb8  (unused)                    (unused)
 *
 * out[] of weft_test_swap_regs (enum weft_test_out in regs.h), 8 bytes
 * each:
 *
 *   [0..10]  x19-x29
 *   [11..18] d8-d15, raw bits
 *   [19] FPCR after the swap     [20] FPCR as set before it
 */
#include "regs.h"

    .file   "regs_arm64.S"
    .text

    .globl  weft_test_swap_regs
    .hidden weft_test_swap_regs
    .type   weft_test_swap_regs, %function
    .p2align 4
weft_test_swap_regs:
    .cfi_startproc
    hint    #34                 /* bti c: a landing pad where BTI is enforced */
    stp     x29, x30, [sp, #-0xc0]! /* the frame; the caller's fp and lr */
    .cfi_def_cfa_offset 0xc0
    .cfi_offset x29, -0xc0
    .cfi_offset x30, -0xb8
    stp     x19, x20, [sp, #0x10] /* save the caller's callee-saved registers */
    .cfi_offset x19, -0xb0
    .cfi_offset x20, -0xa8
    stp     x21, x22, [sp, #0x20]
    .cfi_offset x21, -0xa0
    .cfi_offset x22, -0x98
    stp     x23, x24, [sp, #0x30]
    .cfi_offset x23, -0x90
    .cfi_offset x24, -0x88
    stp     x25, x26, [sp, #0x40]
    .cfi_offset x25, -0x80
    .cfi_offset x26, -0x78
    stp     x27, x28, [sp, #0x50]
    .cfi_offset x27, -0x70
    .cfi_offset x28, -0x68
    stp     d8, d9, [sp, #0x60] /* and callee-saved FP registers */
    .cfi_offset d8, -0x60
    .cfi_offset d9, -0x58
    stp     d10, d11, [sp, #0x70]
    .cfi_offset d10, -0x50
    .cfi_offset d11, -0x48
    stp     d12, d13, [sp, #0x80]
    .cfi_offset d12, -0x40
    .cfi_offset d13, -0x38
    stp     d14, d15, [sp, #0x90]
    .cfi_offset d14, -0x30
    .cfi_offset d15, -0x28
    mrs     x9, fpcr            /* the caller's FPCR */
    stp     x2, x9, [sp, #0xa0] /* keep out in memory, and save the FPCR */

    and     x10, x9, #~WEFT_TEST_FPCR_RMODE_MASK /* FPCR with its rounding mode ... */
    orr     x10, x10, #WEFT_TEST_FPCR_RMODE_PAT  /* ... set to round toward zero */
    str     x10, [sp, #0xb0]    /* remember the value set */
    msr     fpcr, x10           /* and set it */

    ldr     x19, =WEFT_TEST_PAT_X19 /* a pattern in every callee-saved register */
    ldr     x20, =WEFT_TEST_PAT_X20
    ldr     x21, =WEFT_TEST_PAT_X21
    ldr     x22, =WEFT_TEST_PAT_X22
    ldr     x23, =WEFT_TEST_PAT_X23
    ldr     x24, =WEFT_TEST_PAT_X24
    ldr     x25, =WEFT_TEST_PAT_X25
    ldr     x26, =WEFT_TEST_PAT_X26
    ldr     x27, =WEFT_TEST_PAT_X27
    ldr     x28, =WEFT_TEST_PAT_X28
    ldr     x29, =WEFT_TEST_PAT_X29
    ldr     x9, =WEFT_TEST_PAT_D8 /* FP registers go through x9 */
    fmov    d8, x9
    ldr     x9, =WEFT_TEST_PAT_D9
    fmov    d9, x9
    ldr     x9, =WEFT_TEST_PAT_D10
    fmov    d10, x9
    ldr     x9, =WEFT_TEST_PAT_D11
    fmov    d11, x9
    ldr     x9, =WEFT_TEST_PAT_D12
    fmov    d12, x9
    ldr     x9, =WEFT_TEST_PAT_D13
    fmov    d13, x9
    ldr     x9, =WEFT_TEST_PAT_D14
    fmov    d14, x9
    ldr     x9, =WEFT_TEST_PAT_D15
    fmov    d15, x9
    mov     x2, #0              /* arg = 0; x0 and x1 are still save_sp and
                                   load_sp */
    bl      weft__ctx_swap      /* switch away; returns when resumed */

    ldr     x9, [sp, #0xa0]     /* out */
    stp     x19, x20, [x9, #0x00] /* out[0..10] = x19-x29 as they came back */
    stp     x21, x22, [x9, #0x10]
    stp     x23, x24, [x9, #0x20]
    stp     x25, x26, [x9, #0x30]
    stp     x27, x28, [x9, #0x40]
    str     x29, [x9, #0x50]
    stp     d8, d9, [x9, #0x58] /* out[11..18] = d8-d15 as they came back */
    stp     d10, d11, [x9, #0x68]
    stp     d12, d13, [x9, #0x78]
    stp     d14, d15, [x9, #0x88]
    mrs     x10, fpcr           /* the FPCR as it came back */
    str     x10, [x9, #0x98]    /* out[19] */
    ldr     x10, [sp, #0xb0]    /* the FPCR set before the swap */
    str     x10, [x9, #0xa0]    /* out[20] */

    ldr     x10, [sp, #0xa8]    /* the caller's FPCR */
    msr     fpcr, x10           /* restore it */
    ldp     d8, d9, [sp, #0x60] /* restore the caller's FP registers */
    ldp     d10, d11, [sp, #0x70]
    ldp     d12, d13, [sp, #0x80]
    ldp     d14, d15, [sp, #0x90]
    ldp     x19, x20, [sp, #0x10] /* and callee-saved registers */
    ldp     x21, x22, [sp, #0x20]
    ldp     x23, x24, [sp, #0x30]
    ldp     x25, x26, [sp, #0x40]
    ldp     x27, x28, [sp, #0x50]
    ldp     x29, x30, [sp], #0xc0 /* and fp and lr, and drop the frame */
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .ltorg                      /* the patterns loaded above */
    .cfi_endproc
    .size   weft_test_swap_regs, .-weft_test_swap_regs

    .globl  weft_test_clobber_swap
    .hidden weft_test_clobber_swap
    .type   weft_test_clobber_swap, %function
    .p2align 4
weft_test_clobber_swap:
    .cfi_startproc
    hint    #34                 /* bti c: a landing pad where BTI is enforced */
    stp     x29, x30, [sp, #-0xc0]! /* the frame; the caller's fp and lr */
    .cfi_def_cfa_offset 0xc0
    .cfi_offset x29, -0xc0
    .cfi_offset x30, -0xb8
    stp     x19, x20, [sp, #0x10] /* save the caller's callee-saved registers */
    .cfi_offset x19, -0xb0
    .cfi_offset x20, -0xa8
    stp     x21, x22, [sp, #0x20]
    .cfi_offset x21, -0xa0
    .cfi_offset x22, -0x98
    stp     x23, x24, [sp, #0x30]
    .cfi_offset x23, -0x90
    .cfi_offset x24, -0x88
    stp     x25, x26, [sp, #0x40]
    .cfi_offset x25, -0x80
    .cfi_offset x26, -0x78
    stp     x27, x28, [sp, #0x50]
    .cfi_offset x27, -0x70
    .cfi_offset x28, -0x68
    stp     d8, d9, [sp, #0x60] /* and callee-saved FP registers */
    .cfi_offset d8, -0x60
    .cfi_offset d9, -0x58
    stp     d10, d11, [sp, #0x70]
    .cfi_offset d10, -0x50
    .cfi_offset d11, -0x48
    stp     d12, d13, [sp, #0x80]
    .cfi_offset d12, -0x40
    .cfi_offset d13, -0x38
    stp     d14, d15, [sp, #0x90]
    .cfi_offset d14, -0x30
    .cfi_offset d15, -0x28
    mrs     x9, fpcr            /* the caller's FPCR */
    str     x9, [sp, #0xa8]     /* save it */

    and     x10, x9, #~WEFT_TEST_FPCR_RMODE_MASK /* FPCR with its rounding mode ... */
    orr     x10, x10, #WEFT_TEST_FPCR_RMODE_CLOB /* ... set to round toward -inf */
    str     x10, [sp, #0xb0]
    msr     fpcr, x10           /* set it */

    ldr     x19, =WEFT_TEST_CLOB_X19 /* garbage in every callee-saved register */
    ldr     x20, =WEFT_TEST_CLOB_X20
    ldr     x21, =WEFT_TEST_CLOB_X21
    ldr     x22, =WEFT_TEST_CLOB_X22
    ldr     x23, =WEFT_TEST_CLOB_X23
    ldr     x24, =WEFT_TEST_CLOB_X24
    ldr     x25, =WEFT_TEST_CLOB_X25
    ldr     x26, =WEFT_TEST_CLOB_X26
    ldr     x27, =WEFT_TEST_CLOB_X27
    ldr     x28, =WEFT_TEST_CLOB_X28
    ldr     x29, =WEFT_TEST_CLOB_X29
    ldr     x9, =WEFT_TEST_CLOB_D8 /* FP registers go through x9 */
    fmov    d8, x9
    ldr     x9, =WEFT_TEST_CLOB_D9
    fmov    d9, x9
    ldr     x9, =WEFT_TEST_CLOB_D10
    fmov    d10, x9
    ldr     x9, =WEFT_TEST_CLOB_D11
    fmov    d11, x9
    ldr     x9, =WEFT_TEST_CLOB_D12
    fmov    d12, x9
    ldr     x9, =WEFT_TEST_CLOB_D13
    fmov    d13, x9
    ldr     x9, =WEFT_TEST_CLOB_D14
    fmov    d14, x9
    ldr     x9, =WEFT_TEST_CLOB_D15
    fmov    d15, x9
    mov     x2, #0              /* arg = 0; x0 and x1 are still save_sp and
                                   load_sp */
    bl      weft__ctx_swap      /* switch away; returns when resumed */

    ldr     x10, [sp, #0xa8]    /* the caller's FPCR */
    msr     fpcr, x10           /* restore it */
    ldp     d8, d9, [sp, #0x60] /* restore the caller's FP registers */
    ldp     d10, d11, [sp, #0x70]
    ldp     d12, d13, [sp, #0x80]
    ldp     d14, d15, [sp, #0x90]
    ldp     x19, x20, [sp, #0x10] /* and callee-saved registers */
    ldp     x21, x22, [sp, #0x20]
    ldp     x23, x24, [sp, #0x30]
    ldp     x25, x26, [sp, #0x40]
    ldp     x27, x28, [sp, #0x50]
    ldp     x29, x30, [sp], #0xc0 /* and fp and lr, and drop the frame */
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ret
    .ltorg                      /* the garbage loaded above */
    .cfi_endproc
    .size   weft_test_clobber_swap, .-weft_test_clobber_swap

    .section .note.GNU-stack,"",%progbits
