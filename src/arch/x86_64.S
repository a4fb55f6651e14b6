/* Context switch for x86-64, System V ABI (Linux, BSD, macOS-style ELF).
 *
 * A suspended context is a frame on its own stack, pointed to by ctx->sp:
 *
 *   sp+0   MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes padding
 *   sp+8   r15, r14, r13, r12, rbx, rbp
 *   sp+56  return address
 *
 * Only callee-saved state is kept: the C caller of dbp__ctx_switch has
 * already saved everything else. The MXCSR and the x87 control word are
 * per-coroutine too, so a coroutine that changes the rounding mode does not
 * change it for the others. Both stacks have the same frame layout, so the
 * CFI below stays valid across the stack exchange.
 */
        .text

/* void dbp__ctx_switch(dbp__ctx *from, dbp__ctx *to) */
        .globl  dbp__ctx_switch
        .hidden dbp__ctx_switch
        .type   dbp__ctx_switch, @function
        .p2align 4
dbp__ctx_switch:
        .cfi_startproc
        pushq   %rbp
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
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r15
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
        .size   dbp__ctx_switch, .-dbp__ctx_switch

/* The first code a new context runs: the frame built by dbp__ctx_make
 * "returns" here with the argument in r12 and the entry function in r13.
 * rsp is 16-byte aligned at the call, as the ABI wants. The entry function
 * never returns; ud2 traps if it does. There is no caller to unwind to. */
        .type   dbp__ctx_start, @function
        .p2align 4
dbp__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r12, %rdi
        callq   *%r13
        ud2
        .cfi_endproc
        .size   dbp__ctx_start, .-dbp__ctx_start

/* void dbp__ctx_make(dbp__ctx *ctx, void *lo, size_t size,
 *                    dbp__ctx_entry entry, void *arg)
 * Builds the frame described above at the top of [lo, lo + size):
 *   top-8, top-16  zero (an end marker for debuggers)
 *   top-24         return address: dbp__ctx_start
 *   top-32..-72    rbp, rbx, r12 = arg, r13 = entry, r14, r15
 *   top-80         the caller's MXCSR and x87 control word
 * After the switch's ret, rsp = top-16, a multiple of 16. */
        .globl  dbp__ctx_make
        .hidden dbp__ctx_make
        .type   dbp__ctx_make, @function
        .p2align 4
dbp__ctx_make:
        .cfi_startproc
        leaq    (%rsi,%rdx), %rax
        andq    $-16, %rax
        subq    $80, %rax
        xorl    %r9d, %r9d
        movq    %r9, 72(%rax)
        movq    %r9, 64(%rax)
        leaq    dbp__ctx_start(%rip), %r10
        movq    %r10, 56(%rax)
        movq    %r9, 48(%rax)
        movq    %r9, 40(%rax)
        movq    %r8, 32(%rax)
        movq    %rcx, 24(%rax)
        movq    %r9, 16(%rax)
        movq    %r9, 8(%rax)
        movq    %r9, (%rax)
        stmxcsr (%rax)
        fnstcw  4(%rax)
        movq    %rax, (%rdi)
        ret
        .cfi_endproc
        .size   dbp__ctx_make, .-dbp__ctx_make

/* const char *dbp__ctx_kind(void) */
        .globl  dbp__ctx_kind
        .hidden dbp__ctx_kind
        .type   dbp__ctx_kind, @function
        .p2align 4
dbp__ctx_kind:
        .cfi_startproc
        leaq    .Lkind(%rip), %rax
        ret
        .cfi_endproc
        .size   dbp__ctx_kind, .-dbp__ctx_kind

        .section .rodata.str1.1,"aMS",@progbits,1
.Lkind:
        .asciz  "asm"

        .section .note.GNU-stack,"",@progbits
