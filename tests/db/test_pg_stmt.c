/* The PostgreSQL statement cache on a connection of one's own: a statement
 * seen twice is prepared and executed by name from then on, the cache
 * stays within its bound, a reset empties it, and a DEALLOCATE behind its
 * back costs nothing but a new prepare. pg_prepared_statements, read on
 * the same session, is the witness. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

/* The number of dbpipe's statements the session holds (this query's own
 * left out: it is cached too), or -1. */
static long ours(dbp_conn *c) {
  dbp_result *r = NULL;
  if (dbp_query_all(c,
                    "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'dbpipe\\_s%' "
                    "AND statement NOT LIKE '%pg_prepared_statements%'",
                    0, NULL, 10000, 0, &r) != 0)
    return -1;
  const char *v = dbp_result_value(r, 0, 0, NULL);
  long n = v ? atol(v) : -1;
  dbp_result_free(r);
  return n;
}

/* Runs `sql` with one parameter and checks the single value it returns. */
static int one(dbp_conn *c, const char *sql, const char *arg, const char *want) {
  dbp_param p = {arg, strlen(arg)};
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, sql, 1, &p, 10000, 0, &r), 0);
  const char *v = dbp_result_value(r, 0, 0, NULL);
  int ok = v != NULL && strcmp(v, want) == 0;
  if (!ok) cr_expect(0, "%s(%s) gave %s, wanted %s", sql, arg, v ? v : "NULL", want);
  dbp_result_free(r);
  return ok ? 0 : -1;
}

static int open_pg(dbp_rt *rt, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_pg_dsn(), 10000, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

static int second_use_prepares(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  if (open_pg(rt, &c) != 0) return -1;
  int rc = -1;
  const char *q = "SELECT $1::int + 1";
  if (one(c, q, "1", "2") != 0) goto out;
  CHECK(ours(c) == 0); /* once: run unnamed, nothing kept on the server */
  if (one(c, q, "2", "3") != 0) goto out;
  CHECK(ours(c) == 1); /* twice: prepared */
  for (int i = 0; i < 50; i++) {
    char a[16], w[16];
    snprintf(a, sizeof a, "%d", i);
    snprintf(w, sizeof w, "%d", i + 1);
    if (one(c, q, a, w) != 0) goto out;
  }
  CHECK(ours(c) == 1);
  /* dbp_exec with parameters shares the cache. */
  int64_t n = -1;
  dbp_param p = {"5", 1};
  CHECK_RC(c, dbp_exec(c, "SELECT generate_series(1, $1::int)", 1, &p, 10000, &n), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT generate_series(1, $1::int)", 1, &p, 10000, &n), 0);
  CHECK(n == 5);
  CHECK(ours(c) == 2);
  rc = 0;
out:
  dbp_conn_close(c);
  return rc;
}

static int bounded_and_reset(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  if (open_pg(rt, &c) != 0) return -1;
  int rc = -1;
  char q[64], w[16];
  for (int i = 0; i < 300; i++) {
    snprintf(q, sizeof q, "SELECT $1::int + %d", i);
    snprintf(w, sizeof w, "%d", 1 + i);
    if (one(c, q, "1", w) != 0 || one(c, q, "1", w) != 0) goto out;
  }
  long n = ours(c);
  CHECK(n > 200 && n <= 256);
  /* The oldest were let go of; they still run (and come back). */
  if (one(c, "SELECT $1::int + 0", "1", "1") != 0) goto out;
  if (one(c, "SELECT $1::int + 0", "1", "1") != 0) goto out;
  CHECK(ours(c) <= 256);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK(ours(c) == 0);
  if (one(c, "SELECT $1::int + 299", "1", "300") != 0) goto out;
  if (one(c, "SELECT $1::int + 299", "1", "300") != 0) goto out;
  CHECK(ours(c) == 1);
  rc = 0;
out:
  dbp_conn_close(c);
  return rc;
}

static int deallocated_behind_its_back(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  if (open_pg(rt, &c) != 0) return -1;
  int rc = -1;
  const char *q = "SELECT $1::text || 'x'";
  if (one(c, q, "a", "ax") != 0 || one(c, q, "b", "bx") != 0) goto out;
  CHECK(ours(c) == 1);
  CHECK_RC(c, dbp_exec(c, "DEALLOCATE ALL", 0, NULL, 10000, NULL), 0);
  CHECK(ours(c) == 0);
  if (one(c, q, "c", "cx") != 0) goto out; /* runs again, unnamed */
  int64_t n = 0;
  dbp_param p = {"d", 1};
  CHECK_RC(c, dbp_exec(c, q, 1, &p, 10000, &n), 0);
  CHECK(n == 1);
  if (one(c, q, "e", "ex") != 0 || one(c, q, "f", "fx") != 0) goto out;
  CHECK(ours(c) == 1);
  /* A statement the server refuses to prepare fails the usual way. */
  dbp_result *r = NULL;
  dbp_param bad = {"1", 1};
  for (int i = 0; i < 3; i++) {
    CHECK_RC(c, dbp_query_all(c, "SELECT $1::int FROM no_such_table", 1, &bad, 10000, 0, &r),
             DBP_EQUERY);
    CHECK(strcmp(dbp_conn_error(c)->sqlstate, "42P01") == 0);
    CHECK(r == NULL);
  }
  CHECK(!dbp_conn_is_broken(c));
  if (one(c, q, "g", "gx") != 0) goto out;
  rc = 0;
out:
  dbp_conn_close(c);
  return rc;
}

/* Types change under kept statements: by DDL on the same session (the
 * cache is let go of first) and by DDL on another session (the server's
 * "cached plan must not change result type", answered by preparing again). */
static int types_change(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *other;
  if (open_pg(rt, &c) != 0) return -1;
  if (open_pg(rt, &other) != 0) {
    dbp_conn_close(c);
    return -1;
  }
  int rc = -1;
  CHECK_RC(c, dbp_exec(c, "DROP TABLE IF EXISTS pgst_t", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TABLE pgst_t (v int)", 0, NULL, 10000, NULL), 0);
  const char *ins = "INSERT INTO pgst_t VALUES ($1)";
  dbp_param p = {"7", 1};
  for (int i = 0; i < 3; i++) CHECK_RC(c, dbp_exec(c, ins, 1, &p, 10000, NULL), 0);
  CHECK(ours(c) == 1);
  /* Same session: int becomes bigint, and a value only bigint holds. */
  CHECK_RC(c, dbp_exec(c, "DROP TABLE pgst_t", 0, NULL, 10000, NULL), 0);
  CHECK(ours(c) == 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TABLE pgst_t (v bigint)", 0, NULL, 10000, NULL), 0);
  dbp_param big = {"-9223372036854775808", 20};
  for (int i = 0; i < 3; i++) CHECK_RC(c, dbp_exec(c, ins, 1, &big, 10000, NULL), 0);
  /* Another session adds a column: SELECT * changes its result type. */
  const char *sel = "SELECT * FROM pgst_t WHERE v = $1::bigint";
  for (int i = 0; i < 2; i++) {
    dbp_result *r = NULL;
    CHECK_RC(c, dbp_query_all(c, sel, 1, &big, 10000, 0, &r), 0);
    CHECK(dbp_result_ncols(r) == 1 && dbp_result_nrows(r) == 3);
    dbp_result_free(r);
  }
  CHECK_RC(
      other,
      dbp_exec(other, "ALTER TABLE pgst_t ADD COLUMN w text DEFAULT 'x'", 0, NULL, 10000, NULL), 0);
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, sel, 1, &big, 10000, 0, &r), 0);
  CHECK(dbp_result_ncols(r) == 2 && dbp_result_nrows(r) == 3);
  CHECK(strcmp(dbp_result_value(r, 0, 1, NULL), "x") == 0);
  dbp_result_free(r);
  CHECK_RC(c, dbp_exec(c, "DROP TABLE pgst_t", 0, NULL, 10000, NULL), 0);
  rc = 0;
  dbp_conn_close(other);
  dbp_conn_close(c);
  return rc;
}

Test(pg_stmt, types_change, .timeout = 60) {
  dbt_run(types_change, NULL);
}
Test(pg_stmt, second_use_prepares, .timeout = 60) {
  dbt_run(second_use_prepares, NULL);
}
Test(pg_stmt, bounded_and_reset, .timeout = 120) {
  dbt_run(bounded_and_reset, NULL);
}
Test(pg_stmt, deallocated_behind_its_back, .timeout = 60) {
  dbt_run(deallocated_behind_its_back, NULL);
}
