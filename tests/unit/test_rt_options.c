/* Runtime options: leaving SIGSEGV / SIGBUS to the program, and the bounds
 * of a coroutine's stack size. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbpipe/rt.h"
#include "rttest.h"

/* ---- the fault handler ---- */

static void program_handler(int sig, siginfo_t *si, void *uctx) {
  (void)si;
  (void)uctx;
  static const char msg[] = "the program's own handler\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(sig == SIGSEGV ? 42 : 43);
}

/* What a program with its own crash handler does: an alternate signal
 * stack and SA_ONSTACK, so the handler also runs after a stack overflow. */
static void install_program_handler(void) {
  stack_t ss = {
      .ss_sp = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      .ss_size = 65536,
      .ss_flags = 0};
  if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL) != 0) _exit(90);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = program_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0 || sigaction(SIGBUS, &sa, NULL) != 0) _exit(91);
}

static bool handler_is_programs(int sig) {
  struct sigaction cur;
  if (sigaction(sig, NULL, &cur) != 0) return false;
  return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == program_handler;
}

static void handlers_untouched(void) {
  install_program_handler();
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, &(dbp_rt_options){.no_fault_handler = true}) != 0) _exit(3);
  if (!handler_is_programs(SIGSEGV)) _exit(4);
  if (!handler_is_programs(SIGBUS)) _exit(5);
  if (dbp_rt_free(rt) != 0) _exit(6);
}

Test(rt_options, no_fault_handler_leaves_the_programs_handlers) {
  char err[1024];
  int status = dbt_run_child(handlers_untouched, err, sizeof err);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d, stderr: %s", status, err);
}

static void handlers_replaced(void) {
  install_program_handler();
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) _exit(3);
  if (handler_is_programs(SIGSEGV)) _exit(4); /* the overflow handler is first now */
  if (dbp_rt_free(rt) != 0) _exit(5);
  /* Installed once, it stays, whatever a later runtime asks. */
  if (dbp_rt_new(&rt, NULL, &(dbp_rt_options){.no_fault_handler = true}) != 0) _exit(6);
  if (handler_is_programs(SIGSEGV)) _exit(7);
  if (dbp_rt_free(rt) != 0) _exit(8);
}

Test(rt_options, by_default_the_overflow_handler_is_installed) {
  char err[1024];
  int status = dbt_run_child(handlers_replaced, err, sizeof err);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d, stderr: %s", status, err);
}

static int recurse(int n) {
  volatile char pad[1024];
  pad[0] = (char)n;
  return n > 0 ? recurse(n - 1) + pad[0] : pad[0];
}

static int body_overflow(void *arg, void **result) {
  (void)arg;
  (void)result;
  return recurse(1 << 20);
}

static void overflow_with_own_handler(void) {
  install_program_handler();
  dbp_rt *rt;
  if (dbp_rt_new(&rt, NULL, &(dbp_rt_options){.no_fault_handler = true}) != 0) _exit(3);
  dbp_co *co;
  if (dbp_spawn(rt, &co, body_overflow, NULL, &(dbp_spawn_options){.name = "deep"}) != 0) _exit(4);
  dbp_rt_run(rt);
  _exit(5); /* not reached */
}

/* The guard page still stops the overflow; the program's handler gets it. */
Test(rt_options, overflow_goes_to_the_programs_handler) {
  char err[1024];
  int status = dbt_run_child(overflow_with_own_handler, err, sizeof err);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 42, "status %d, stderr: %s", status, err);
  cr_assert_not_null(strstr(err, "the program's own handler"), "stderr: %s", err);
  cr_assert_null(strstr(err, "dbpipe: stack overflow"), "stderr: %s", err);
}

/* ---- stack size bounds ---- */

Test(rt_options, runtime_stack_size_out_of_range_is_einval) {
  size_t bad[] = {1, DBP_STACK_MIN - 1, DBP_STACK_MAX + 1, (size_t)-1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dbp_rt *rt = (dbp_rt *)&rt;
    cr_assert_eq(dbp_rt_new(&rt, NULL, &(dbp_rt_options){.stack_size = bad[i]}), DBP_EINVAL,
                 "stack_size %zu", bad[i]);
    cr_assert_null(rt);
  }
  size_t good[] = {0, DBP_STACK_MIN, DBP_STACK_MAX};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    dbp_rt *rt = NULL;
    cr_assert_eq(dbp_rt_new(&rt, NULL, &(dbp_rt_options){.stack_size = good[i]}), 0,
                 "stack_size %zu", good[i]);
    cr_assert_eq(dbp_rt_free(rt), 0);
  }
}

static int body_format(void *arg, void **result) {
  (void)result;
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%s %d %.3f %g", (const char *)arg, 42, 3.14159, 1e300);
  return n > 0 ? 0 : -1;
}

Test(rt_options, spawn_stack_size_bounds) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  size_t bad[] = {1, 4096, DBP_STACK_MIN - 1, DBP_STACK_MAX + 1, (size_t)-1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dbp_co *co = (dbp_co *)&co;
    cr_assert_eq(dbp_spawn(rt, &co, body_format, "x", &(dbp_spawn_options){.stack_size = bad[i]}),
                 DBP_EINVAL, "stack_size %zu", bad[i]);
    cr_assert_null(co);
  }
  cr_assert_eq(dbp_rt_alive(rt), 0);
  /* Both bounds are usable, and the smallest stack runs libc's formatting. */
  dbp_co *lo, *hi;
  cr_assert_eq(
      dbp_spawn(rt, &lo, body_format, "lo", &(dbp_spawn_options){.stack_size = DBP_STACK_MIN}), 0);
  cr_assert_eq(
      dbp_spawn(rt, &hi, body_format, "hi", &(dbp_spawn_options){.stack_size = DBP_STACK_MAX}), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(lo, NULL), 0);
  cr_assert_eq(dbp_join(hi, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
