/* The pool's shared PostgreSQL connections, where their segments matter:
 * read-only statements sent together share one Sync, and a failure among
 * them must neither reach a neighbour nor lose what a neighbour did. The
 * pool's one-call contract at large is test_pool_query.c's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

#define CLIENTS 48
#define CALLS 60

typedef struct side_ctx {
  dbp_pool *pool;
  int id;
  long ok, failed, wrong;
} side_ctx;

/* Each call either runs a function that writes (a SELECT, so it travels
 * with its read-only neighbours) or a statement that fails (division by
 * zero); every third is the failing kind. */
static int side_client(void *arg, void **result) {
  (void)result;
  side_ctx *x = arg;
  for (int i = 0; i < CALLS; i++) {
    char key[32];
    int k = x->id * 1000 + i;
    snprintf(key, sizeof key, "%d", k);
    dbp_param p = {key, strlen(key)};
    dbp_result *r = NULL;
    dbp_dberr e;
    if (i % 3 == 2) {
      int rc = dbp_pool_query(x->pool, "SELECT 1 / ($1::int - $1::int)", 1, &p, 30000, &r, &e);
      if (rc == DBP_EQUERY && strcmp(e.sqlstate, "22012") == 0)
        x->failed++;
      else
        x->wrong++;
      dbp_result_free(r);
      continue;
    }
    int rc = dbp_pool_query(x->pool, "SELECT ppl_add($1::int)", 1, &p, 30000, &r, &e);
    const char *v = rc == 0 ? dbp_result_value(r, 0, 0, NULL) : NULL;
    if (v != NULL && atoi(v) == k)
      x->ok++;
    else
      x->wrong++;
    dbp_result_free(r);
  }
  return 0;
}

static long count_of(dbp_conn *c, const char *sql) {
  dbp_result *r = NULL;
  if (dbp_query_all(c, sql, 0, NULL, 10000, 0, &r) != 0) return -1;
  const char *v = dbp_result_value(r, 0, 0, NULL);
  long n = v ? atol(v) : -1;
  dbp_result_free(r);
  return n;
}

static int writes_survive_failing_neighbours(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  dbp_dberr err;
  CHECK_RC(NULL, dbp_conn_open(rt, dbt_pg_dsn(), 10000, &c, &err), 0);
  CHECK_RC(c, dbp_exec(c, "DROP TABLE IF EXISTS ppl_log", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TABLE ppl_log (k int)", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c,
           dbp_exec(c,
                    "CREATE OR REPLACE FUNCTION ppl_add(int) RETURNS int LANGUAGE sql AS "
                    "'INSERT INTO ppl_log VALUES ($1) RETURNING k'",
                    0, NULL, 10000, NULL),
           0);
  dbp_pool *pool;
  CHECK(dbp_pool_new(rt, dbt_pg_dsn(), &(dbp_pool_options){.max_size = 3}, &pool) == 0);
  side_ctx xs[CLIENTS];
  dbp_co *cos[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    xs[i] = (side_ctx){.pool = pool, .id = i};
    CHECK(dbp_spawn(rt, &cos[i], side_client, &xs[i], NULL) == 0);
  }
  long ok = 0, failed = 0, wrong = 0;
  for (int i = 0; i < CLIENTS; i++) {
    dbp_join(cos[i], NULL);
    ok += xs[i].ok;
    failed += xs[i].failed;
    wrong += xs[i].wrong;
  }
  dbp_pool_stats st;
  dbp_pool_get_stats(pool, &st);
  CHECK(dbp_pool_close(pool, 10000) == 0);
  cr_expect_eq(wrong, 0, "%ld calls got another's outcome or none", wrong);
  CHECK(ok == CLIENTS * (CALLS - CALLS / 3));
  CHECK(failed == CLIENTS * (CALLS / 3));
  CHECK(st.pipelined == (uint64_t)(CLIENTS * CALLS));
  /* Every successful call wrote its row once: none lost with a segment
   * that rolled back, none written twice by a resend. */
  CHECK(count_of(c, "SELECT count(*) FROM ppl_log") == ok);
  CHECK(count_of(c, "SELECT count(DISTINCT k) FROM ppl_log") == ok);
  CHECK_RC(c, dbp_exec(c, "DROP FUNCTION ppl_add(int)", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "DROP TABLE ppl_log", 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

/* A parameter PostgreSQL text cannot hold is refused before anything is
 * sent, the same way on a shared connection as on one's own. */
static int nul_parameter_refused(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_pool *pool;
  CHECK(dbp_pool_new(rt, dbt_pg_dsn(), &(dbp_pool_options){.max_size = 1}, &pool) == 0);
  dbp_param p = {"a\0b", 3};
  dbp_result *r = NULL;
  dbp_dberr e;
  /* Warm a shared connection first, so the second call is pipelined. */
  dbp_param one = {"1", 1};
  CHECK(dbp_pool_query(pool, "SELECT $1::text", 1, &one, 10000, &r, &e) == 0);
  dbp_result_free(r);
  r = NULL;
  CHECK(dbp_pool_query(pool, "SELECT $1::text", 1, &p, 10000, &r, &e) == DBP_EINVAL);
  CHECK(r == NULL);
  CHECK(strcmp(e.sqlstate, "22021") == 0);
  CHECK(strstr(e.message, "parameter $1 contains a NUL byte") != NULL);
  dbp_pool_options own = {.max_size = 1, .no_pipeline = true};
  dbp_pool *alone;
  CHECK(dbp_pool_new(rt, dbt_pg_dsn(), &own, &alone) == 0);
  CHECK(dbp_pool_query(alone, "SELECT $1::text", 1, &p, 10000, &r, &e) == DBP_EINVAL);
  CHECK(strcmp(e.sqlstate, "22021") == 0);
  CHECK(strstr(e.message, "parameter $1 contains a NUL byte") != NULL);
  CHECK(dbp_pool_query(pool, "SELECT $1::text", 1, &one, 10000, &r, &e) == 0);
  CHECK(strcmp(dbp_result_value(r, 0, 0, NULL), "1") == 0);
  dbp_result_free(r);
  CHECK(dbp_pool_close(alone, 10000) == 0);
  CHECK(dbp_pool_close(pool, 10000) == 0);
  return 0;
}

Test(pool_pipeline, nul_parameter_refused, .timeout = 60) {
  dbt_run(nul_parameter_refused, NULL);
}

Test(pool_pipeline, writes_survive_failing_neighbours, .timeout = 120) {
  dbt_run(writes_survive_failing_neighbours, NULL);
}
