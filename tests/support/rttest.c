/* Running a test body inside a coroutine: see rttest.h. */
#include "rttest.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  dbp_rt *rt;
  dbt_body_fn body;
  void *arg;
} body_call;

static int body_entry(void *arg, void **result) {
  (void)result;
  body_call *call = arg;
  return call->body(call->rt, call->arg);
}

int dbt_run_in_coro(dbt_body_fn body, void *arg) {
  dbp_rt *rt = NULL;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  body_call call = {rt, body, arg};
  dbp_co *co = NULL;
  cr_assert_eq(dbp_spawn(rt, &co, body_entry, &call, &(dbp_spawn_options){.name = "test"}), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  int rc = dbp_join(co, NULL);
  cr_assert_eq(dbp_rt_free(rt), 0);
  return rc;
}

void dbt_run(dbt_body_fn body, void *arg) {
  int rc = dbt_run_in_coro(body, arg);
  cr_assert_eq(rc, 0, "the test body failed (%d)", rc);
}

int dbt_run_child(void (*fn)(void), char *err, size_t errlen) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], STDERR_FILENO);
    fn();
    _exit(0);
  }
  close(p[1]);
  size_t got = 0;
  ssize_t r;
  while (got + 1 < errlen && (r = read(p[0], err + got, errlen - 1 - got)) > 0) got += (size_t)r;
  err[got] = '\0';
  close(p[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return status;
}
