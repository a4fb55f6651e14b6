/* Stacks and the context switch: 100,000 coroutines alive at once, stack
 * overflow reports (guard page and canary), per-coroutine floating-point
 * control state, and ABI stack alignment. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbpipe/rt.h"
#include "rt/rt_internal.h"
#include "rttest.h"

/* ---- 100,000 coroutines ---- */

#define MANY 100000

typedef struct {
  dbp_rt *rt;
  dbp_event *go;
  int started, finished;
  size_t peak_alive;
} many_ctx;

static int body_wait_go(void *arg, void **result) {
  (void)result;
  many_ctx *m = arg;
  volatile char scratch[512]; /* touch a realistic bit of stack */
  memset((char *)scratch, 1, sizeof scratch);
  m->started++;
  int rc = dbp_event_wait(m->go, DBP_FOREVER);
  if (rc == 0 && scratch[100] == 1) m->finished++;
  return rc;
}

static int body_release(void *arg, void **result) {
  (void)result;
  many_ctx *m = arg;
  while (m->started < MANY) cr_assert_eq(dbp_sleep(m->rt, 1), 0);
  m->peak_alive = dbp_rt_alive(m->rt);
  dbp_event_set(m->go);
  return 0;
}

Test(rt_stack, hundred_thousand_coroutines_alive_at_once, .timeout = 300) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  many_ctx m = {.rt = rt};
  cr_assert_eq(dbp_event_new(rt, &m.go), 0);
  dbp_spawn_options d = {.detached = true, .name = "idle"};
  for (int i = 0; i < MANY; i++)
    cr_assert_eq(dbp_spawn(rt, NULL, body_wait_go, &m, &d), 0, "spawn %d", i);
  cr_assert_eq(dbp_spawn(rt, NULL, body_release, &m, &d), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(m.peak_alive, MANY + 1, "all suspended on the event at once");
  cr_assert_eq(m.finished, MANY);
  cr_assert_eq(dbp_rt_alive(rt), 0);
  dbp_event_free(m.go);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- stack overflow ---- */

static int recurse(volatile int depth) {
  volatile char frame[1024];
  frame[0] = (char)depth;
  frame[sizeof frame - 1] = (char)depth;
  if (depth > 100000000) return frame[0]; /* never: it overflows first */
  return recurse(depth + 1) + frame[sizeof frame - 1];
}

static int body_overflow(void *arg, void **result) {
  (void)arg;
  (void)result;
  return recurse(0);
}

static void overflow_in_named_coroutine(void) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) _exit(3);
  dbp_co *co;
  if (dbp_spawn(rt, &co, body_overflow, NULL, &(dbp_spawn_options){.name = "deep-recursion"}) != 0)
    _exit(4);
  dbp_rt_run(rt);
  _exit(5); /* not reached: the overflow kills the process */
}

Test(rt_stack, guard_page_catches_overflow, .signal = SIGSEGV) {
  overflow_in_named_coroutine();
}

Test(rt_stack, overflow_message_names_the_coroutine) {
  char err[4096];
  int status = dbt_run_child(overflow_in_named_coroutine, err, sizeof err);
  cr_assert(WIFSIGNALED(status), "the process died of a signal (status %d)", status);
  cr_assert_eq(WTERMSIG(status), SIGSEGV, "with the original signal");
  cr_assert_not_null(strstr(err, "dbpipe: stack overflow in coroutine 'deep-recursion'"),
                     "stderr was: %s", err);
}

/* A stack without guard page (beyond the mapping budget) relies on its
 * canary, checked at each switch. Trample it as an overflow would. */
static int body_trample_canary(void *arg, void **result) {
  (void)result;
  dbp_rt *rt = arg;
  dbp_co *self = dbp_current(rt);
  self->stack->lo[8] = 0x5a;
  dbp_yield(rt);
  return 0;
}

static void canary_in_named_coroutine(void) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) _exit(3);
  dbp_co *co;
  if (dbp_spawn(rt, &co, body_trample_canary, rt, &(dbp_spawn_options){.name = "canary"}) != 0)
    _exit(4);
  dbp_rt_run(rt);
  _exit(5);
}

Test(rt_stack, canary_reports_overflow_at_the_next_switch) {
  char err[4096];
  int status = dbt_run_child(canary_in_named_coroutine, err, sizeof err);
  cr_assert(WIFSIGNALED(status), "status %d", status);
  cr_assert_eq(WTERMSIG(status), SIGSEGV);
  cr_assert_not_null(strstr(err, "dbpipe: stack overflow in coroutine 'canary'"), "stderr was: %s",
                     err);
}

/* A segfault that is not a stack overflow goes to the previous handler: the
 * default action (death by SIGSEGV), or under AddressSanitizer the
 * sanitizer's own report. Never the overflow message. */
static void plain_segv(void) {
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) _exit(3);
  volatile int *volatile p = (int *)16;
  *p = 1;
  _exit(5);
}

Test(rt_stack, other_faults_are_not_reported_as_overflow) {
  char err[4096];
  int status = dbt_run_child(plain_segv, err, sizeof err);
#ifdef DBP__ASAN
  cr_assert_not_null(strstr(err, "AddressSanitizer: SEGV"), "stderr was: %s", err);
  cr_assert_neq(status, 0);
#else
  cr_assert(WIFSIGNALED(status), "status %d", status);
  cr_assert_eq(WTERMSIG(status), SIGSEGV);
#endif
  cr_assert_null(strstr(err, "stack overflow in coroutine"), "stderr was: %s", err);
}

/* ---- floating-point control state per coroutine ---- */

#if defined(__x86_64__)
typedef struct {
  uint32_t mxcsr;
  uint16_t fpucw;
} fpstate;
static fpstate fp_get(void) {
  fpstate s;
  __asm__ volatile("stmxcsr %0" : "=m"(s.mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(s.fpucw));
  s.mxcsr &= ~0x3fu; /* the sticky exception flags are not control bits */
  return s;
}
static void fp_set_round(unsigned mode) { /* 0 nearest, 1 down, 2 up, 3 toward zero */
  uint32_t m;
  uint16_t cw;
  __asm__ volatile("stmxcsr %0" : "=m"(m));
  m = (m & ~0x6000u) | (mode << 13);
  __asm__ volatile("ldmxcsr %0" : : "m"(m));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  cw = (uint16_t)((cw & ~0x0c00u) | (mode << 10));
  __asm__ volatile("fldcw %0" : : "m"(cw));
}
static bool fp_eq(fpstate a, fpstate b) {
  return a.mxcsr == b.mxcsr && a.fpucw == b.fpucw;
}
#elif defined(__aarch64__)
typedef struct {
  uint64_t fpcr;
} fpstate;
static fpstate fp_get(void) {
  fpstate s;
  __asm__ volatile("mrs %0, fpcr" : "=r"(s.fpcr));
  return s;
}
static void fp_set_round(unsigned mode) { /* 0 nearest, 1 down(-inf), 2 up(+inf), 3 zero */
  static const unsigned rmode[4] = {0, 2, 1, 3};
  uint64_t v;
  __asm__ volatile("mrs %0, fpcr" : "=r"(v));
  v = (v & ~(3ull << 22)) | ((uint64_t)rmode[mode] << 22);
  __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
static bool fp_eq(fpstate a, fpstate b) {
  return a.fpcr == b.fpcr;
}
#else
#error "no floating-point control test for this architecture"
#endif

typedef struct {
  dbp_rt *rt;
  unsigned mode;
  fpstate initial, mine, after;
  bool ok;
} fp_ctx;

static int body_fp(void *arg, void **result) {
  (void)result;
  fp_ctx *f = arg;
  f->initial = fp_get();
  fp_set_round(f->mode);
  f->mine = fp_get();
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(dbp_yield(f->rt), 0);
    cr_assert_eq(dbp_sleep(f->rt, 1), 0);
    if (!fp_eq(fp_get(), f->mine)) return DBP_EIO;
  }
  f->after = fp_get();
  f->ok = true;
  return 0;
}

Test(rt_stack, fp_control_state_is_per_coroutine) {
  fpstate main_before = fp_get();
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  fp_ctx f[4];
  dbp_co *cos[4];
  for (unsigned i = 0; i < 4; i++) {
    f[i] = (fp_ctx){.rt = rt, .mode = i};
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_fp, &f[i], NULL), 0);
  }
  cr_assert_eq(dbp_rt_run(rt), 0);
  for (unsigned i = 0; i < 4; i++) {
    cr_assert_eq(dbp_join(cos[i], NULL), 0, "coroutine %u saw its own rounding mode throughout", i);
    cr_assert(f[i].ok);
    cr_assert(fp_eq(f[i].initial, main_before), "a new coroutine starts with its creator's state");
  }
  cr_assert(!fp_eq(f[1].mine, f[2].mine), "the modes really differ");
  cr_assert(fp_eq(fp_get(), main_before), "the scheduler's own state is untouched");
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- stack alignment ---- */

typedef float v4f __attribute__((vector_size(16)));

__attribute__((noinline)) static int aligned_sse(float seed, uintptr_t *addr) {
  _Alignas(16) volatile float in[4] = {seed, seed + 1, seed + 2, seed + 3};
  *addr = (uintptr_t)in;
  v4f v = *(volatile v4f *)in; /* an aligned vector load from the stack */
  v = v * v;
  return (int)(v[0] + v[1] + v[2] + v[3]);
}

static int body_alignment(void *arg, void **result) {
  (void)result;
  (void)arg;
  uintptr_t addr = 1;
  int sum = aligned_sse(1.0f, &addr);
  cr_assert_eq(sum, 1 + 4 + 9 + 16);
  cr_assert_eq(addr % 16, 0, "a 16-byte aligned local is aligned on the coroutine stack");
  char buf[64];
  snprintf(buf, sizeof buf, "%.3f %Lf", 3.25, (long double)2.5); /* varargs with SSE spills */
  cr_assert_str_eq(buf, "3.250 2.500000");
  return 0;
}

Test(rt_stack, coroutine_stack_is_abi_aligned) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_co *cos[3];
  size_t sizes[3] = {0, 40000, 100 * 1024 + 3};
  for (int i = 0; i < 3; i++)
    cr_assert_eq(
        dbp_spawn(rt, &cos[i], body_alignment, NULL, &(dbp_spawn_options){.stack_size = sizes[i]}),
        0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- stack sizes ---- */

static int body_use_stack(void *arg, void **result) {
  (void)result;
  size_t n = (size_t)(uintptr_t)arg;
  volatile char *p = __builtin_alloca(n);
  p[0] = 1;
  p[n - 1] = 2;
  return p[0] + p[n - 1];
}

Test(rt_stack, per_runtime_and_per_spawn_stack_sizes) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, &(dbp_rt_options){.stack_size = 256 * 1024}), 0);
  dbp_co *a, *b;
  /* 200 KiB of locals fit the runtime's 256 KiB default, and a 1 MiB spawn. */
  cr_assert_eq(dbp_spawn(rt, &a, body_use_stack, (void *)(uintptr_t)(200 * 1024), NULL), 0);
  cr_assert_eq(dbp_spawn(rt, &b, body_use_stack, (void *)(uintptr_t)(900 * 1024),
                         &(dbp_spawn_options){.stack_size = 1024 * 1024}),
               0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(a, NULL), 3);
  cr_assert_eq(dbp_join(b, NULL), 3);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

static int body_nop(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static int body_spawn_join_loop(void *arg, void **result) {
  (void)result;
  dbp_rt *rt = arg;
  for (int i = 0; i < 20000; i++) {
    dbp_co *c;
    cr_assert_eq(dbp_spawn(rt, &c, body_nop, NULL, NULL), 0);
    cr_assert_eq(dbp_join(c, NULL), 0);
  }
  cr_assert_leq(rt->cache_len, 64, "the stack cache stays bounded");
  cr_assert_geq(rt->cache_len, 1, "finished stacks are kept for reuse");
  return 0;
}

Test(rt_stack, spawn_join_reuses_cached_stacks) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_spawn_join_loop, rt, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
