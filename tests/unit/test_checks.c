/* DBP_ASSERT: in a build with DBP_CHECKS a false condition names itself and
 * where it is on stderr and aborts; without, the condition is not even
 * evaluated. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/assert.h"

static int evaluated;

static int count_and_fail(void) {
  evaluated++;
  return 0;
}

#if defined(DBP_CHECKS) && DBP_CHECKS

/* Runs a failing check in a child whose stderr is a pipe; returns what it
 * wrote and how it ended. */
static int failing_child(char *out, size_t cap) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    int x = 1;
    DBP_ASSERT(x == 2);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(fds[0]);
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return status;
}

Test(checks, failed_check_reports_and_aborts) {
  char msg[512];
  int status = failing_child(msg, sizeof msg);
  cr_assert(WIFSIGNALED(status), "the child exited instead of aborting");
  cr_assert_eq(WTERMSIG(status), SIGABRT);
  cr_assert(strstr(msg, "test_checks.c:"), "no file:line in: %s", msg);
  cr_assert(strstr(msg, "check failed: x == 2"), "no condition in: %s", msg);
}

Test(checks, passing_check_evaluates_once) {
  evaluated = 0;
  DBP_ASSERT(count_and_fail() == 0);
  cr_assert_eq(evaluated, 1);
}

#else

Test(checks, off_does_not_evaluate) {
  evaluated = 0;
  DBP_ASSERT(count_and_fail() == 1);
  cr_assert_eq(evaluated, 0);
}

#endif
