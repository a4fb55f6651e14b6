/* A zero timeout on the connection calls: a connect and a statement always
 * wait for the server, so each fails at once with DBP_ETIMEDOUT, and the
 * connection stays usable. On PostgreSQL and MariaDB. */
#include <criterion/criterion.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"

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
  CHECK_RC(NULL, dbp_conn_open(z->rt, z->dsn, 0, &c, &err), DBP_ETIMEDOUT);
  CHECK(c == NULL && dbp_now(z->rt) - t0 < 50);
  CHECK_RC(NULL, dbp_conn_open(z->rt, z->dsn, 10000, &c, &err), 0);
  t0 = dbp_now(z->rt);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 0, NULL), DBP_ETIMEDOUT);
  CHECK_RC(c, dbp_query(c, "SELECT 1", 0, NULL, 0), DBP_ETIMEDOUT);
  CHECK_RC(c, dbp_conn_ping(c, 0), DBP_ETIMEDOUT);
  CHECK(dbp_now(z->rt) - t0 < 1000);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
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
