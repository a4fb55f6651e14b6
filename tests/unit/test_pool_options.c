/* The connection pool's checks that need no server: bad options and
 * connection strings are refused, the password never shows in the pool's
 * DSN, and acquiring outside a coroutine is refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe.h"

Test(pool, rejects_bad_options_and_dsn) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_pool *p = NULL;
  const char *dsn = "postgresql://u:secret@127.0.0.1:1/db";
  dbp_pool_options o = {.min_size = 5, .max_size = 2};
  cr_assert_eq(dbp_pool_new(rt, dsn, &o, &p), DBP_EINVAL);
  o = (dbp_pool_options){.idle_timeout_ms = -7};
  cr_assert_eq(dbp_pool_new(rt, dsn, &o, &p), DBP_EINVAL);
  o = (dbp_pool_options){.connect_timeout_ms = DBP_POOL_NOW};
  cr_assert_eq(dbp_pool_new(rt, dsn, &o, &p), DBP_EINVAL);
  cr_assert_eq(dbp_pool_new(rt, "nonsense://x", NULL, &p), DBP_EDSN);
  cr_assert_null(p);

  cr_assert_eq(dbp_pool_new(rt, dsn, NULL, &p), 0);
  cr_assert_null(strstr(dbp_pool_dsn(p), "secret"));
  dbp_pool_stats s;
  dbp_pool_get_stats(p, &s);
  cr_assert_eq(s.total, 0);
  dbp_conn *c = NULL;
  cr_assert_eq(dbp_pool_acquire(p, 0, &c, NULL), DBP_ENOTCORO);
  cr_assert_eq(dbp_pool_close(p, 0), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
