/*
 * The register swap for x86-64, System V ABI, ELF, GNU as.
 *
 * A suspended context is nothing but a stack pointer: everything the ABI
 * says a callee must preserve is pushed on the context's own stack, in this
 * frame (offsets from the saved stack pointer, lowest address first):
 *
 *   +0x00  MXCSR (4 bytes)   SSE control and status: rounding, exceptions
 *   +0x04  x87 CW (2 bytes)  x87 control word: precision, rounding
 *   +0x06  (2 bytes unused)
 *   +0x08  r12
 *   +0x10  r13
 *   +0x18  r14
 *   +0x20  r15
 *   +0x28  rbx
 *   +0x30  rbp
 *   +0x38  resume address    (the caller's return address, pushed by call)
 *   +0x40  (the suspended caller's stack continues here)
 *
 * rsp is the saved pointer itself; rip is the resume address. Everything
 * else (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, the flags) is
 * caller-saved, so the C caller of weft__ctx_swap has already spilled what
 * it needs.
 *
 * The resume is a ret, not an indirect jmp to the saved address. Both were
 * measured (docs/bench.md): in a scheduler every suspended task sits in the
 * same call chain (yield -> switch_to -> weft__ctx_swap), so the return
 * address the ret pops is the one the CPU's return-stack buffer predicts,
 * and the rets that follow on the resumed side stay in step with it. A jmp
 * leaves the entry pushed by the call to weft__ctx_swap unconsumed, and
 * every later ret on the resumed side mispredicts: W1 took 30 ns a switch
 * with jmp and 12 ns with ret. (A bare bounce loop with no scheduler, the
 * shape of Boost.Context's benchmark, favours jmp: 7 against 15 ns.)
 *
 * void *weft__ctx_swap(void **save_sp, void *load_sp, void *arg)
 *   rdi = where to store the current context's stack pointer
 *   rsi = the stack pointer of the context to resume
 *   rdx = a word handed to the resumed context: weft__ctx_swap returns it
 *         there, and a fresh context's entry function gets it as its
 *         argument.
 *
 * void *weft__ctx_make(void *stack_top, void (*entry)(void *))
 *   Builds the frame above at the top of a fresh stack so that the first
 *   weft__ctx_swap to it enters weft__ctx_trampoline, which calls
 *   entry(arg). Returns the stack pointer to hand to weft__ctx_swap. The
 *   new context starts with the creating thread's MXCSR and x87 control
 *   word. entry must never return: the trampoline traps if it does.
 */

    .file   "switch_x86_64_sysv_elf.S"
    .text

    .globl  weft__ctx_swap
    .hidden weft__ctx_swap
    .type   weft__ctx_swap, @function
    .align  16
weft__ctx_swap:
    .cfi_startproc
    endbr64                     /* a landing pad where IBT is enforced */
    leaq    -0x38(%rsp), %rsp   /* room for the frame below the return address */
    .cfi_adjust_cfa_offset 0x38
    stmxcsr (%rsp)              /* save the SSE control/status word */
    fnstcw  0x4(%rsp)           /* save the x87 control word */
    movq    %r12, 0x08(%rsp)    /* save the callee-saved registers */
    movq    %r13, 0x10(%rsp)
    movq    %r14, 0x18(%rsp)
    movq    %r15, 0x20(%rsp)
    movq    %rbx, 0x28(%rsp)
    movq    %rbp, 0x30(%rsp)
    movq    %rsp, (%rdi)        /* *save_sp = this context */

    movq    %rsi, %rsp          /* switch stacks: now on the resumed context */
    ldmxcsr (%rsp)              /* restore its SSE control/status word */
    fldcw   0x4(%rsp)           /* restore its x87 control word */
    movq    0x08(%rsp), %r12    /* restore its callee-saved registers */
    movq    0x10(%rsp), %r13
    movq    0x18(%rsp), %r14
    movq    0x20(%rsp), %r15
    movq    0x28(%rsp), %rbx
    movq    0x30(%rsp), %rbp
    leaq    0x38(%rsp), %rsp    /* pop the frame, leaving the resume address */
    .cfi_adjust_cfa_offset -0x38
    movq    %rdx, %rax          /* return arg from its weft__ctx_swap ... */
    movq    %rdx, %rdi          /* ... or pass it to a fresh entry function */
    ret                         /* resume it */
    .cfi_endproc
    .size   weft__ctx_swap, .-weft__ctx_swap

    .globl  weft__ctx_make
    .hidden weft__ctx_make
    .type   weft__ctx_make, @function
    .align  16
weft__ctx_make:
    .cfi_startproc
    endbr64
    movq    %rdi, %rax          /* rax = stack top */
    andq    $-16, %rax          /* align it to 16 bytes */
    leaq    -0x50(%rax), %rax   /* the frame, plus 16 bytes so that the
                                   trampoline runs with rsp = top - 16,
                                   16-byte aligned before its call */
    stmxcsr (%rax)              /* start with the creator's SSE control word */
    fnstcw  0x4(%rax)           /* and its x87 control word */
    movq    %rsi, 0x08(%rax)    /* r12 = entry, called by the trampoline */
    movq    $0, 0x30(%rax)      /* rbp = 0 ends a debugger's frame walk */
    leaq    weft__ctx_trampoline(%rip), %rcx
    movq    %rcx, 0x38(%rax)    /* the resume address is the trampoline */
    movq    $0, 0x40(%rax)      /* no return address above the trampoline */
    movq    $0, 0x48(%rax)
    ret
    .cfi_endproc
    .size   weft__ctx_make, .-weft__ctx_make

    .type   weft__ctx_trampoline, @function
    .align  16
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* the outermost frame of a context */
    endbr64
    call    *%r12               /* entry(arg); arg is already in rdi */
    ud2                         /* entry returned: a runtime bug */
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
