/* DBP_STACK_MIN is enough for the drivers: a coroutine on the smallest
 * stack connects over TLS, runs a query, fetches its rows, hits a server
 * error (the message formatting path) and goes through the pool, on
 * PostgreSQL and MariaDB. An overflow would kill the test process. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"

typedef struct {
  dbp_rt *rt;
  const char *dsn;
} small_arg;

static int body_small(void *arg, void **result) {
  (void)result;
  small_arg *a = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  CHECK_RC(NULL, dbp_conn_open(a->rt, a->dsn, 10000, &c, &err), 0);
  CHECK_RC(c, dbp_query(c, "SELECT 1, 'two', 3.5", 0, NULL, 10000), 0);
  dbp_row row;
  CHECK_RC(c, dbp_fetch(c, &row), 1);
  CHECK(row.ncols == 3 && strcmp(row.vals[1], "two") == 0);
  CHECK_RC(c, dbp_fetch(c, &row), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT no_such_column_here", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->message[0] != '\0');
  dbp_conn_close(c);

  dbp_pool *p = NULL;
  CHECK(dbp_pool_new(a->rt, a->dsn, NULL, &p) == 0);
  CHECK_RC(NULL, dbp_pool_acquire(p, 10000, &c, &err), 0);
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  dbp_pool_release(p, c); /* the reset rolls back */
  CHECK(dbp_pool_close(p, 10000) == 0);
  return 0;
}

static void run_small(const char *dsn) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, &(dbp_rt_options){.stack_size = DBP_STACK_MIN}), 0);
  small_arg a = {rt, dsn};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_small, &a, &(dbp_spawn_options){.name = "small"}), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

Test(rt_stack_min, postgresql_over_tls_on_the_smallest_stack) {
  run_small(dbt_pg_dsn());
}

Test(rt_stack_min, mariadb_over_tls_on_the_smallest_stack) {
  run_small(dbt_my_dsn());
}
