/* A zero timeout on the connection calls does not wait: a call fails with
 * DBP_ETIMEDOUT at the first point where it would wait for the server, and
 * succeeds only when it never has to (a reply already there). Either way
 * it returns at once and the connection stays usable. On PostgreSQL and
 * MariaDB. */
#include <criterion/criterion.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"

#define NOW_OR_TIMEDOUT(rc) ((rc) == 0 || (rc) == DBP_ETIMEDOUT)

typedef struct {
  dbp_rt *rt;
  const char *dsn;
} dz;

static int body_zero(void *arg, void **result) {
  (void)result;
  dz *z = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  uint64_t t0 = dbp_now(z->rt);
  int rc = dbp_conn_open(z->rt, z->dsn, 0, &c, &err);
  CHECK(rc == DBP_ETIMEDOUT || (rc == 0 && c != NULL));
  CHECK(dbp_now(z->rt) - t0 < 50);
  if (c) dbp_conn_close(c);
  c = NULL;
  CHECK_RC(NULL, dbp_conn_open(z->rt, z->dsn, 10000, &c, &err), 0);
  for (int i = 0; i < 3; i++) {
    t0 = dbp_now(z->rt);
    rc = dbp_exec(c, "SELECT 1", 0, NULL, 0, NULL);
    CHECK(NOW_OR_TIMEDOUT(rc));
    rc = dbp_query(c, "SELECT 1", 0, NULL, 0);
    CHECK(NOW_OR_TIMEDOUT(rc));
    if (rc == 0) CHECK_RC(c, dbp_query_close(c), 0);
    rc = dbp_conn_ping(c, 0);
    CHECK(NOW_OR_TIMEDOUT(rc));
    /* A timed-out statement may be cancelled on the server first. */
    CHECK(dbp_now(z->rt) - t0 < 1000);
    CHECK(!dbp_conn_is_broken(c));
    CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  }
  dbp_conn_close(c);
  return 0;
}

static void run_zero(const char *dsn) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dz z = {rt, dsn};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_zero, &z, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

Test(db_zero, postgresql) {
  run_zero(dbt_pg_dsn());
}

Test(db_zero, mariadb) {
  run_zero(dbt_my_dsn());
}
