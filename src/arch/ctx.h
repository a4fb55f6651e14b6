/* The context switch: the only architecture-specific piece of the runtime.
 *
 * A dbp__ctx is the stack pointer of a suspended execution. What is needed
 * to continue it (callee-saved registers, floating-point control state, a
 * return address; or, for the ucontext fallback, a whole ucontext_t) lives
 * on that execution's own stack, in the frame of the dbp__ctx_switch call
 * that suspended it, or at the top of a fresh stack made by dbp__ctx_make.
 * So the struct is the same for every implementation and code built
 * without DBP_UCONTEXT (tests, the benchmark) still agrees on its layout.
 *
 * Three functions, in the manner of minicoro's per-architecture blocks:
 *   dbp__ctx_make     prepares a fresh stack so that the first switch into it
 *                     calls entry(arg) on that stack;
 *   dbp__ctx_switch   saves the running context into `from` and resumes `to`;
 *   dbp__ctx_kind     names the implementation ("asm" or "ucontext").
 * entry must never return: it ends with a switch away from its own stack.
 */
#ifndef DBP_ARCH_CTX_H
#define DBP_ARCH_CTX_H

#include <stddef.h>

typedef struct dbp__ctx {
  void *sp;
} dbp__ctx;

typedef void (*dbp__ctx_entry)(void *arg);

/* Prepares `ctx` to start entry(arg) on the stack [lo, lo + size). The top
 * of the stack is aligned down to 16 bytes. The new context starts with the
 * caller's floating-point control state (MXCSR and x87 control word on
 * x86-64, FPCR on aarch64). Nothing is allocated. */
void dbp__ctx_make(dbp__ctx *ctx, void *lo, size_t size, dbp__ctx_entry entry, void *arg);

/* Saves the running context into `from` and continues `to`. Returns when
 * something switches back to `from`. */
void dbp__ctx_switch(dbp__ctx *from, dbp__ctx *to);

/* "asm" or "ucontext". */
const char *dbp__ctx_kind(void);

#endif /* DBP_ARCH_CTX_H */
