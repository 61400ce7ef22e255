/*
 * Register helpers for the context-switch self-test, x86-64, System V ABI,
 * ELF, GNU as. See regs.h for what they do and for the patterns.
 *
 * Both helpers keep this frame (offsets from rsp after the prologue; the
 * return address sits at +0x48 and rsp is 16-byte aligned at the call to
 * weft__ctx_swap):
 *
 *   weft_test_swap_regs                weft_test_clobber_swap
 *   +0x00  out (the third argument)    (unused)
 *   +0x08  the caller's MXCSR          the caller's MXCSR
 *   +0x0c  the caller's x87 CW         the caller's x87 CW
 *   +0x10  MXCSR as set                MXCSR as set
 *   +0x14  x87 CW as set               x87 CW as set
 *   +0x18  r15                         r15
 *   +0x20  r14                         r14
 *   +0x28  r13                         r13
 *   +0x30  r12                         r12
 *   +0x38  rbx                         rbx
 *   +0x40  rbp                         rbp
 *   +0x48  return address              return address
 *
 * out[] of weft_test_swap_regs (enum weft_test_out in regs.h), 8 bytes
 * each:
 *
 *   [0] rbx  [1] rbp  [2] r12  [3] r13  [4] r14  [5] r15
 *   [6] MXCSR after the swap     [7] x87 CW after the swap
 *   [8] MXCSR as set before it   [9] x87 CW as set before it
 */
#include "regs.h"

    .file   "regs_x86_64.S"
    .text

    .globl  weft_test_swap_regs
    .hidden weft_test_swap_regs
    .type   weft_test_swap_regs, @function
    .align  16
weft_test_swap_regs:
    .cfi_startproc
    endbr64                     /* a landing pad where IBT is enforced */
    pushq   %rbp                /* save the caller's callee-saved registers */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $0x18, %rsp         /* the rest of the frame; rsp is 16-aligned */
    .cfi_adjust_cfa_offset 0x18
    movq    %rdx, 0x00(%rsp)    /* keep out in memory: no register survives */
    stmxcsr 0x08(%rsp)          /* save the caller's MXCSR */
    fnstcw  0x0c(%rsp)          /* save the caller's x87 control word */

    movl    0x08(%rsp), %eax    /* MXCSR ... */
    andl    $~WEFT_TEST_MXCSR_RC_MASK, %eax /* ... with its rounding control ... */
    orl     $WEFT_TEST_MXCSR_RC_PAT, %eax   /* ... set to round toward zero */
    movl    %eax, 0x10(%rsp)    /* remember the value set */
    ldmxcsr 0x10(%rsp)          /* and set it */
    movzwl  0x0c(%rsp), %eax    /* x87 control word ... */
    andl    $~WEFT_TEST_X87_PC_MASK, %eax /* ... with its precision control ... */
    orl     $WEFT_TEST_X87_PC_PAT, %eax   /* ... set to single precision */
    movw    %ax, 0x14(%rsp)     /* remember the value set */
    fldcw   0x14(%rsp)          /* and set it */

    movabsq $WEFT_TEST_PAT_RBX, %rbx /* a pattern in every callee-saved register */
    movabsq $WEFT_TEST_PAT_RBP, %rbp
    movabsq $WEFT_TEST_PAT_R12, %r12
    movabsq $WEFT_TEST_PAT_R13, %r13
    movabsq $WEFT_TEST_PAT_R14, %r14
    movabsq $WEFT_TEST_PAT_R15, %r15
    xorl    %edx, %edx          /* arg = 0; rdi and rsi are still save_sp
                                   and load_sp */
    call    weft__ctx_swap      /* switch away; returns when resumed */

    movq    0x00(%rsp), %rax    /* out */
    movq    %rbx, 0x00(%rax)    /* out[0..5] = the registers as they came back */
    movq    %rbp, 0x08(%rax)
    movq    %r12, 0x10(%rax)
    movq    %r13, 0x18(%rax)
    movq    %r14, 0x20(%rax)
    movq    %r15, 0x28(%rax)
    movl    0x10(%rsp), %ecx    /* the MXCSR set before the swap */
    movq    %rcx, 0x40(%rax)    /* out[8] */
    movzwl  0x14(%rsp), %ecx    /* the x87 control word set before the swap */
    movq    %rcx, 0x48(%rax)    /* out[9] */
    stmxcsr 0x10(%rsp)          /* the MXCSR as it came back */
    movl    0x10(%rsp), %ecx
    movq    %rcx, 0x30(%rax)    /* out[6] */
    fnstcw  0x14(%rsp)          /* the x87 control word as it came back */
    movzwl  0x14(%rsp), %ecx
    movq    %rcx, 0x38(%rax)    /* out[7] */

    ldmxcsr 0x08(%rsp)          /* restore the caller's MXCSR */
    fldcw   0x0c(%rsp)          /* and x87 control word */
    addq    $0x18, %rsp         /* drop the frame */
    .cfi_adjust_cfa_offset -0x18
    popq    %r15                /* restore the caller's callee-saved registers */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   weft_test_swap_regs, .-weft_test_swap_regs

    .globl  weft_test_clobber_swap
    .hidden weft_test_clobber_swap
    .type   weft_test_clobber_swap, @function
    .align  16
weft_test_clobber_swap:
    .cfi_startproc
    endbr64                     /* a landing pad where IBT is enforced */
    pushq   %rbp                /* save the caller's callee-saved registers */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $0x18, %rsp         /* the rest of the frame; rsp is 16-aligned */
    .cfi_adjust_cfa_offset 0x18
    stmxcsr 0x08(%rsp)          /* save the caller's MXCSR */
    fnstcw  0x0c(%rsp)          /* save the caller's x87 control word */

    movl    0x08(%rsp), %eax    /* MXCSR ... */
    andl    $~WEFT_TEST_MXCSR_RC_MASK, %eax /* ... with its rounding control ... */
    orl     $WEFT_TEST_MXCSR_RC_CLOB, %eax  /* ... set to round up */
    movl    %eax, 0x10(%rsp)
    ldmxcsr 0x10(%rsp)          /* set it */
    movzwl  0x0c(%rsp), %eax    /* x87 control word ... */
    andl    $~WEFT_TEST_X87_PC_MASK, %eax /* ... with its precision control ... */
    orl     $WEFT_TEST_X87_PC_CLOB, %eax  /* ... set to double precision */
    movw    %ax, 0x14(%rsp)
    fldcw   0x14(%rsp)          /* set it */

    movabsq $WEFT_TEST_CLOB_RBX, %rbx /* garbage in every callee-saved register */
    movabsq $WEFT_TEST_CLOB_RBP, %rbp
    movabsq $WEFT_TEST_CLOB_R12, %r12
    movabsq $WEFT_TEST_CLOB_R13, %r13
    movabsq $WEFT_TEST_CLOB_R14, %r14
    movabsq $WEFT_TEST_CLOB_R15, %r15
    xorl    %edx, %edx          /* arg = 0; rdi and rsi are still save_sp
                                   and load_sp */
    call    weft__ctx_swap      /* switch away; returns when resumed */

    ldmxcsr 0x08(%rsp)          /* restore the caller's MXCSR */
    fldcw   0x0c(%rsp)          /* and x87 control word */
    addq    $0x18, %rsp         /* drop the frame */
    .cfi_adjust_cfa_offset -0x18
    popq    %r15                /* restore the caller's callee-saved registers */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   weft_test_clobber_swap, .-weft_test_clobber_swap

    .section .note.GNU-stack,"",%progbits
