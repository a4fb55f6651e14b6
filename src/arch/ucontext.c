/* The portable context switch: POSIX ucontext (makecontext/swapcontext).
 *
 * Slower than the assembly switches (glibc's swapcontext also saves and
 * restores the signal mask with a system call), but available wherever
 * ucontext is, and understood by every debugger and sanitizer. glibc keeps
 * the floating-point control state (MXCSR, x87 control word) in the context
 * too, so it is per coroutine as with the assembly switches.
 *
 * As with the assembly switches, a suspended context lives on its own
 * stack: the ucontext_t is a local of the dbp__ctx_switch call that
 * suspended it, and ctx->sp points to it. A fresh context keeps its
 * ucontext_t at the top of its stack.
 */
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "arch/ctx.h"

typedef struct fresh {
  ucontext_t uc;
  dbp__ctx_entry entry;
  void *arg;
} fresh;

/* makecontext passes only int arguments: the pointer to the fresh frame
 * travels in two halves. */
static void ctx_start(unsigned int hi, unsigned int lo) {
  fresh *f = (fresh *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
  f->entry(f->arg);
  abort(); /* entry functions switch away and never return */
}

/* Prepares ctx so that the first switch into it runs entry(arg) on the
 * stack [lo, lo + size); the context itself takes the top of that stack. */
void dbp__ctx_make(dbp__ctx *ctx, void *lo, size_t size, dbp__ctx_entry entry, void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  fresh *f = (fresh *)((top - sizeof(fresh)) & ~(uintptr_t)63);
  f->entry = entry;
  f->arg = arg;
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = lo;
  f->uc.uc_stack.ss_size = (size_t)((uintptr_t)f - (uintptr_t)lo);
  f->uc.uc_link = NULL;
  uintptr_t p = (uintptr_t)f;
  makecontext(&f->uc, (void (*)(void))ctx_start, 2, (unsigned int)(p >> 32),
              (unsigned int)(p & 0xffffffffu));
  ctx->sp = &f->uc;
}

void dbp__ctx_switch(dbp__ctx *from, dbp__ctx *to) {
  ucontext_t here;
  /* The saved context lives on this stack while it is suspended. */
  /* cppcheck-suppress autoVariables */
  from->sp = &here;
  swapcontext(&here, (ucontext_t *)to->sp);
}

const char *dbp__ctx_kind(void) {
  return "ucontext";
}
