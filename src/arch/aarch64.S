/* Context switch for aarch64 (AAPCS64, Linux ELF).
 *
 * A suspended context is a 176-byte frame on its own stack, pointed to by
 * ctx->sp (16-byte aligned, as sp must always be):
 *
 *   sp+0    x19, x20   sp+16  x21, x22   sp+32  x23, x24   sp+48  x25, x26
 *   sp+64   x27, x28   sp+80  x29 (fp), x30 (lr)
 *   sp+96   d8, d9     sp+112 d10, d11   sp+128 d12, d13   sp+144 d14, d15
 *   sp+160  FPCR (rounding mode, flush-to-zero), 8 bytes padding
 *
 * Only callee-saved state is kept (x19-x29, lr, sp and the low halves of
 * v8-v15); the caller of dbp__ctx_switch saved the rest. FPCR is kept per
 * coroutine like MXCSR on x86-64.
 */
        .text

/* void dbp__ctx_switch(dbp__ctx *from, dbp__ctx *to) */
        .globl  dbp__ctx_switch
        .hidden dbp__ctx_switch
        .type   dbp__ctx_switch, %function
        .p2align 4
dbp__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #176
        .cfi_adjust_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]

        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9

        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        .cfi_adjust_cfa_offset -176
        ret
        .cfi_endproc
        .size   dbp__ctx_switch, .-dbp__ctx_switch

/* The first code a new context runs: the frame built by dbp__ctx_make
 * "returns" here (through x30) with the argument in x19 and the entry
 * function in x20. The entry function never returns; brk traps if it does. */
        .type   dbp__ctx_start, %function
        .p2align 4
dbp__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x19
        blr     x20
        brk     #0
        .cfi_endproc
        .size   dbp__ctx_start, .-dbp__ctx_start

/* void dbp__ctx_make(dbp__ctx *ctx, void *lo, size_t size,
 *                    dbp__ctx_entry entry, void *arg)
 * Builds a zeroed frame at the top of [lo, lo + size) with x19 = arg,
 * x20 = entry, x29 = 0 (end of the frame chain), x30 = dbp__ctx_start and
 * the caller's FPCR. */
        .globl  dbp__ctx_make
        .hidden dbp__ctx_make
        .type   dbp__ctx_make, %function
        .p2align 4
dbp__ctx_make:
        .cfi_startproc
        add     x9, x1, x2
        and     x9, x9, #-16
        sub     x9, x9, #176
        stp     xzr, xzr, [x9, #0]
        stp     xzr, xzr, [x9, #16]
        stp     xzr, xzr, [x9, #32]
        stp     xzr, xzr, [x9, #48]
        stp     xzr, xzr, [x9, #64]
        stp     xzr, xzr, [x9, #80]
        stp     xzr, xzr, [x9, #96]
        stp     xzr, xzr, [x9, #112]
        stp     xzr, xzr, [x9, #128]
        stp     xzr, xzr, [x9, #144]
        stp     xzr, xzr, [x9, #160]
        stp     x4, x3, [x9, #0]
        adr     x10, dbp__ctx_start
        str     x10, [x9, #88]
        mrs     x10, fpcr
        str     x10, [x9, #160]
        str     x9, [x0]
        ret
        .cfi_endproc
        .size   dbp__ctx_make, .-dbp__ctx_make

/* const char *dbp__ctx_kind(void) */
        .globl  dbp__ctx_kind
        .hidden dbp__ctx_kind
        .type   dbp__ctx_kind, %function
        .p2align 4
dbp__ctx_kind:
        .cfi_startproc
        adrp    x0, .Lkind
        add     x0, x0, :lo12:.Lkind
        ret
        .cfi_endproc
        .size   dbp__ctx_kind, .-dbp__ctx_kind

        .section .rodata.str1.1,"aMS",%progbits,1
.Lkind:
        .asciz  "asm"

        .section .note.GNU-stack,"",%progbits
