/* The portable context switch: POSIX ucontext (makecontext/swapcontext).
 *
 * Slower than the assembly switches (glibc's swapcontext also saves and
 * restores the signal mask with a system call), but available wherever
 * ucontext is, and understood by every debugger and sanitizer. glibc keeps
 * the floating-point control state (MXCSR, x87 control word) in the context
 * too, so it is per coroutine as with the assembly switches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "arch/ctx.h"

/* makecontext passes only int arguments: the context pointer travels in two
 * halves and the entry point and its argument are read back from there. */
typedef struct {
  dbp__ctx_entry entry;
  void *arg;
} start_args;

static void ctx_start(unsigned int hi, unsigned int lo) {
  start_args *sa = (start_args *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
  dbp__ctx_entry entry = sa->entry;
  void *arg = sa->arg;
  entry(arg);
  abort(); /* entry functions switch away and never return */
}

/* Prepares ctx so that the first switch into it runs entry(arg) on the
 * stack [lo, lo + size). The entry and argument are stored at the top of
 * that stack, below which the new context's frames begin. */
void dbp__ctx_make(dbp__ctx *ctx, void *lo, size_t size, dbp__ctx_entry entry, void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  start_args *sa = (start_args *)(top - 16);
  sa->entry = entry;
  sa->arg = arg;
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = (size_t)((uintptr_t)sa - (uintptr_t)lo);
  ctx->uc.uc_link = NULL;
  uintptr_t p = (uintptr_t)sa;
  makecontext(&ctx->uc, (void (*)(void))ctx_start, 2, (unsigned int)(p >> 32),
              (unsigned int)(p & 0xffffffffu));
}

void dbp__ctx_switch(dbp__ctx *from, dbp__ctx *to) { swapcontext(&from->uc, &to->uc); }

const char *dbp__ctx_kind(void) { return "ucontext"; }
