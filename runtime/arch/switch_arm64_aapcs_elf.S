/*
 * The register swap for AArch64, AAPCS64, ELF, GNU as.
 *
 * A suspended context is nothing but a stack pointer: everything the
 * procedure call standard says a callee must preserve is stored on the
 * context's own stack, in this frame (offsets from the saved stack pointer,
 * lowest address first; 0xb0 bytes, so sp stays 16-byte aligned):
 *
 *   +0x00  d8            low 64 bits of v8-v15: only these are callee-saved
 *   +0x08  d9
 *   +0x10  d10
 *   +0x18  d11
 *   +0x20  d12
 *   +0x28  d13
 *   +0x30  d14
 *   +0x38  d15
 *   +0x40  x19
 *   +0x48  x20
 *   +0x50  x21
 *   +0x58  x22
 *   +0x60  x23
 *   +0x68  x24
 *   +0x70  x25
 *   +0x78  x26
 *   +0x80  x27
 *   +0x88  x28
 *   +0x90  x29 (fp)
 *   +0x98  x30 (lr)      the resume address: where the caller's bl returns
 *   +0xa0  FPCR          floating-point control: rounding mode, FZ, DN, AHP
 *   +0xa8  (unused)
 *   +0xb0  (the suspended caller's stack continues here)
 *
 * sp is the saved pointer itself; pc is the resume address. Everything else
 * (x0-x18, the upper halves of v8-v15, v0-v7, v16-v31, NZCV, FPSR) is
 * caller-saved or not preserved across calls, so the C caller of
 * weft__ctx_swap has already spilled what it needs. x18 is the platform
 * register; the context switch leaves it alone.
 *
 * The resume is a ret to the restored x30, not a br, for the reason the
 * x86-64 file gives (docs/design/switch.md): in a scheduler every
 * suspended task waits at the same return address, so the return-stack
 * predictor, which bl pushes and ret pops, predicts it and stays in step
 * for the rets that follow on the resumed side. A br would leave the
 * entry pushed by the bl to weft__ctx_swap unconsumed.
 *
 * Branch protection: the global functions start with a bti c landing pad
 * (hint #34, a no-op on cores without BTI). ret is not checked by BTI, so
 * the resume addresses and the trampoline need no landing pad. The file
 * emits no .note.gnu.property, so it does not mark a binary as BTI or PAC
 * compatible.
 *
 * void *weft__ctx_swap(void **save_sp, void *load_sp, void *arg)
 *   x0 = where to store the current context's stack pointer
 *   x1 = the stack pointer of the context to resume
 *   x2 = a word handed to the resumed context: weft__ctx_swap returns it
 *        there, and a fresh context's entry function gets it as its
 *        argument.
 *
 * void *weft__ctx_make(void *stack_top, void (*entry)(void *))
 *   Builds the frame above at the top of a fresh stack so that the first
 *   weft__ctx_swap to it enters weft__ctx_trampoline, which calls
 *   entry(arg). Returns the stack pointer to hand to weft__ctx_swap. The
 *   new context starts with the creating thread's FPCR. entry must never
 *   return: the trampoline traps if it does.
 */

    .file   "switch_arm64_aapcs_elf.S"
    .text

    .globl  weft__ctx_swap
    .hidden weft__ctx_swap
    .type   weft__ctx_swap, %function
    .p2align 4
weft__ctx_swap:
    .cfi_startproc
    hint    #34                 /* bti c: a landing pad where BTI is enforced */
    sub     sp, sp, #0xb0       /* room for the frame */
    .cfi_def_cfa_offset 0xb0
    stp     d8, d9, [sp, #0x00] /* save the callee-saved FP registers */
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40] /* save the callee-saved registers */
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, x30, [sp, #0x90] /* the frame pointer and the resume address */
    mrs     x9, fpcr            /* read the floating-point control register */
    str     x9, [sp, #0xa0]     /* and save it */
    mov     x9, sp              /* sp cannot be stored directly */
    str     x9, [x0]            /* *save_sp = this context */

    mov     sp, x1              /* switch stacks: now on the resumed context */
    ldr     x9, [sp, #0xa0]     /* its floating-point control register */
    msr     fpcr, x9            /* restore it */
    ldp     d8, d9, [sp, #0x00] /* restore its callee-saved FP registers */
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40] /* restore its callee-saved registers */
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    ldp     x29, x30, [sp, #0x90] /* its frame pointer and resume address */
    add     sp, sp, #0xb0       /* pop the frame */
    .cfi_def_cfa_offset 0
    mov     x0, x2              /* return arg from its weft__ctx_swap, or
                                   pass it to a fresh entry function */
    ret                         /* resume it at x30 */
    .cfi_endproc
    .size   weft__ctx_swap, .-weft__ctx_swap

    .globl  weft__ctx_make
    .hidden weft__ctx_make
    .type   weft__ctx_make, %function
    .p2align 4
weft__ctx_make:
    .cfi_startproc
    hint    #34                 /* bti c */
    and     x0, x0, #~15        /* align the stack top to 16 bytes; the
                                   trampoline runs with sp = that top */
    sub     x0, x0, #0xb0       /* the frame below it */
    mrs     x9, fpcr            /* start with the creator's FPCR */
    str     x9, [x0, #0xa0]
    str     x1, [x0, #0x40]     /* x19 = entry, called by the trampoline */
    adr     x9, weft__ctx_trampoline /* the resume address is the trampoline */
    stp     xzr, x9, [x0, #0x90] /* x29 = 0 ends a debugger's frame walk;
                                   x30 = the trampoline */
    ret                         /* return the new stack pointer in x0 */
    .cfi_endproc
    .size   weft__ctx_make, .-weft__ctx_make

    .type   weft__ctx_trampoline, %function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30          /* the outermost frame of a context */
    blr     x19                 /* entry(arg); arg is already in x0; entered
                                   by the ret of weft__ctx_swap */
    brk     #0                  /* entry returned: a runtime bug */
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
