/* Builds against an installed dbpipe and runs one coroutine. */
#include <dbpipe.h>
#include <stdint.h>
#include <stdio.h>

static int answer(void *arg, void **result) {
  (void)arg;
  *result = (void *)(intptr_t)42;
  return 0;
}

static int main_co(void *arg, void **result) {
  dbp_rt *rt = arg;
  dbp_co *co;
  void *r = NULL;
  (void)result;
  if (dbp_spawn(rt, &co, answer, NULL, NULL) != 0) return DBP_ENOMEM;
  int rc = dbp_join(co, &r);
  printf("dbpipe %s coroutine=%d\n", dbp_version(), (int)(intptr_t)r);
  return rc;
}

int main(void) {
  dbp_rt *rt;
  dbp_co *co;
  if (dbp_rt_new(&rt, NULL, NULL) != 0) return 1;
  if (dbp_spawn(rt, &co, main_co, rt, NULL) != 0) return 1;
  dbp_rt_run(rt);
  int rc = dbp_join(co, NULL);
  dbp_rt_free(rt);
  return rc == 0 ? 0 : 1;
}
