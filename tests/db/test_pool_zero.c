/* dbp_pool_acquire and dbp_pool_close with a zero timeout do not wait: an
 * idle connection is handed out at once (after the peek at its socket,
 * without the ping that would wait), anything that needs a wait (a
 * connect, a turn in the queue, connections still out) fails at once with
 * DBP_ETIMEDOUT. Also: a connection released twice is a caught bug in a
 * build with invariant checks. On PostgreSQL and MariaDB. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"

typedef struct {
  dbp_rt *rt;
  const char *dsn;
  int ran;
} pz;

static int mark_main(void *arg, void **result) {
  (void)result;
  *(int *)arg = 1;
  return 0;
}

static int body_zero(void *arg, void **result) {
  (void)result;
  pz *z = arg;
  dbp_pool *p;
  dbp_pool_options o = {.max_size = 1, .check_after_ms = DBP_POOL_NOW};
  CHECK(dbp_pool_new(z->rt, z->dsn, &o, &p) == 0);
  dbp_pool_stats st;
  dbp_conn *c = NULL, *d = NULL;
  dbp_dberr err;

  /* Nothing idle: opening one would wait. */
  uint64_t t0 = dbp_now(z->rt);
  CHECK_RC(NULL, dbp_pool_acquire(p, 0, &c, &err), DBP_ETIMEDOUT);
  CHECK(c == NULL && err.code == DBP_ETIMEDOUT && dbp_now(z->rt) - t0 < 50);
  dbp_pool_get_stats(p, &st);
  CHECK(st.opened == 0 && st.timeouts == 1 && st.opening == 0 && st.total == 0);

  CHECK_RC(NULL, dbp_pool_acquire(p, 10000, &c, &err), 0);
  dbp_conn *first = c;
  /* Full and held: a turn in the queue would wait. No other coroutine may
   * run meanwhile, and no waiter is left behind. */
  dbp_co *by;
  z->ran = 0;
  CHECK(dbp_spawn(z->rt, &by, mark_main, &z->ran, NULL) == 0);
  t0 = dbp_now(z->rt);
  CHECK_RC(NULL, dbp_pool_acquire(p, 0, &d, &err), DBP_ETIMEDOUT);
  CHECK(d == NULL && z->ran == 0 && dbp_now(z->rt) - t0 < 50);
  dbp_pool_get_stats(p, &st);
  CHECK(st.waiting == 0 && st.in_use == 1 && st.timeouts == 2);
  CHECK(dbp_join(by, NULL) == 0);

  /* Idle and due a ping before every hand-out (check_after_ms is
   * DBP_POOL_NOW): a zero timeout takes it without the ping. */
  dbp_pool_release(p, c);
  c = NULL;
  dbp_pool_get_stats(p, &st);
  CHECK(st.idle == 1);
  CHECK_RC(NULL, dbp_pool_acquire(p, 0, &c, &err), 0);
  CHECK(c == first);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);

  /* Closing with a connection out and a zero timeout does not wait. */
  CHECK(dbp_pool_close(p, 0) == DBP_ETIMEDOUT);
  dbp_pool_release(p, c); /* the last one out frees the pool */
  return 0;
}

static void run_zero(const char *dsn) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  pz z = {rt, dsn, 0};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_zero, &z, &(dbp_spawn_options){.name = "test"}), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

Test(pool_zero, postgresql) {
  run_zero(dbt_pg_dsn());
}

Test(pool_zero, mariadb) {
  run_zero(dbt_my_dsn());
}

/* ---- a connection released twice ---- */

static int body_twice(void *arg, void **result) {
  (void)result;
  pz *z = arg;
  dbp_pool *p;
  CHECK(dbp_pool_new(z->rt, z->dsn, &(dbp_pool_options){.keep_session = true}, &p) == 0);
  dbp_conn *c;
  CHECK(dbp_pool_acquire(p, 10000, &c, NULL) == 0);
  dbp_pool_release(p, c);
  dbp_pool_release(p, c); /* the bug: aborts in a checked build */
  dbp_pool_stats st;
  dbp_pool_get_stats(p, &st);
  CHECK(st.idle == 1 && st.in_use == 0 && st.closed == 0);
  CHECK(dbp_pool_close(p, 10000) == 0);
  return 0;
}

static void run_twice(void) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  pz z = {rt, dbt_pg_dsn(), 0};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_twice, &z, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

#if defined(DBP_CHECKS) && DBP_CHECKS
Test(pool_zero, release_twice_is_caught, .signal = SIGABRT) {
  run_twice();
}
#else
Test(pool_zero, release_twice_is_ignored) {
  run_twice();
}
#endif
