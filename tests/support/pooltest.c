/* The connection pool tests' harness: see pooltest.h. */
#include "pooltest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbtest.h"

typedef struct run_arg {
  tctx *t;
  body_fn body;
  const char *base_dsn;
} run_arg;

/* ---- helpers ---- */

bool is_pg(const tctx *t) {
  return t->kind == DBP_DB_PG;
}

/* Appends a query parameter to a DSN URL. */
static void dsn_with(char *buf, size_t len, const char *dsn, const char *kv) {
  int n = snprintf(buf, len, "%s%c%s", dsn, strchr(dsn, '?') ? '&' : '?', kv);
  cr_assert(n > 0 && (size_t)n < len, "DSN too long");
}

/* Runs a one-value query and parses the value as an integer. */
int q_int(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, int64_t *out) {
  int rc = dbp_query(c, sql, np, ps, 10000);
  if (rc < 0) return rc;
  dbp_row row;
  rc = dbp_fetch(c, &row);
  if (rc < 0) return rc;
  if (rc == 0 || row.ncols < 1 || !row.vals[0]) {
    dbp_query_close(c);
    return DBP_EPROTO;
  }
  char tmp[32];
  size_t n = row.lens[0] < sizeof tmp - 1 ? row.lens[0] : sizeof tmp - 1;
  memcpy(tmp, row.vals[0], n);
  tmp[n] = '\0';
  *out = strtoll(tmp, NULL, 10);
  while ((rc = dbp_fetch(c, &row)) > 0) {
  }
  return rc;
}

static void remember(tctx *t, dbp_conn *c) {
  int64_t id = dbp_conn_backend_id(c);
  for (size_t i = 0; i < t->nids; i++)
    if (t->ids[i] == id) return;
  cr_assert_lt(t->nids, MAX_IDS);
  t->ids[t->nids++] = id;
}

/* The pool's sessions as the server sees them, from the monitor. */
int64_t sessions(tctx *t) {
  int64_t n = -1;
  int rc;
  if (is_pg(t)) {
    dbp_param p = {t->app, strlen(t->app)};
    rc = q_int(t->mon, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", 1, &p,
               &n);
  } else {
    if (t->nids == 0) return 0;
    char sql[2048];
    size_t len = (size_t)snprintf(sql, sizeof sql,
                                  "SELECT COUNT(*) FROM information_schema.processlist "
                                  "WHERE user = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) "
                                  "AND db = DATABASE() AND id IN (");
    for (size_t i = 0; i < t->nids; i++)
      len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%" PRId64, i ? "," : "", t->ids[i]);
    snprintf(sql + len, sizeof sql - len, ")");
    rc = q_int(t->mon, sql, 0, NULL, &n);
  }
  cr_assert_eq(rc, 0, "counting sessions: %s", dbp_err_name(rc));
  return n;
}

/* The server drops a session a moment after the client closes it: waits
 * (up to ten seconds) for the count to reach `want`. */
void expect_sessions(tctx *t, int64_t want) {
  int64_t n = -1;
  for (int i = 0; i < 1000; i++) {
    n = sessions(t);
    if (n == want) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("the server lists %" PRId64 " sessions, expected %" PRId64, n, want);
}

/* Waits (up to ten seconds) until the pool has closed `n` connections. */
void expect_closed(tctx *t, const dbp_pool *p, uint64_t n) {
  dbp_pool_stats s;
  for (int i = 0; i < 1000; i++) {
    dbp_pool_get_stats(p, &s);
    if (s.closed >= n) break;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_eq(s.closed, n, "closed %" PRIu64 ", expected %" PRIu64, s.closed, n);
}

/* Kills a session from the monitor and waits until the server lists it no
 * more. */
void kill_backend(tctx *t, int64_t id) {
  char idbuf[32];
  snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
  dbp_param p = {idbuf, strlen(idbuf)};
  int rc;
  if (is_pg(t)) {
    rc = dbp_exec(t->mon, "SELECT pg_terminate_backend($1::int)", 1, &p, 10000, NULL);
  } else {
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %s", idbuf);
    rc = dbp_exec(t->mon, sql, 0, NULL, 10000, NULL);
  }
  cr_assert_eq(rc, 0, "kill: %s", dbp_err_name(rc));
  const char *q = is_pg(t) ? "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int"
                           : "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ?";
  for (int i = 0; i < 1000; i++) {
    int64_t n = -1;
    cr_assert_eq(q_int(t->mon, q, 1, &p, &n), 0);
    if (n == 0) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("session %s still listed after being killed", idbuf);
}

void ping(dbp_conn *c) {
  int64_t v = 0;
  cr_assert_eq(q_int(c, "SELECT 1", 0, NULL, &v), 0);
  cr_assert_eq(v, 1);
}

dbp_pool *mkpool(tctx *t, const dbp_pool_options *o) {
  dbp_pool *p = NULL;
  int rc = dbp_pool_new(t->rt, t->dsn, o, &p);
  cr_assert_eq(rc, 0, "dbp_pool_new: %s", dbp_err_name(rc));
  return p;
}

dbp_conn *must_acquire(tctx *t, dbp_pool *p) {
  dbp_conn *c = NULL;
  dbp_dberr e;
  int rc = dbp_pool_acquire(p, 30000, &c, &e);
  cr_assert_eq(rc, 0, "acquire: %s (%s)", dbp_err_name(rc), e.message);
  cr_assert_not_null(c);
  remember(t, c);
  return c;
}

dbp_pool_stats stats(const dbp_pool *p) {
  dbp_pool_stats s;
  dbp_pool_get_stats(p, &s);
  return s;
}

/* Yields until n acquires wait in the pool, failing after many rounds. */
void yield_until_waiting(tctx *t, dbp_pool *p, size_t n) {
  for (int i = 0; i < 10000 && stats(p).waiting < n; i++) dbp_yield(t->rt);
  cr_assert_eq(stats(p).waiting, n);
}

void spawn(tctx *t, dbp_co **co, dbp_co_fn fn, void *arg) {
  int rc = dbp_spawn(t->rt, co, fn, arg, NULL);
  cr_assert_eq(rc, 0, "spawn: %s", dbp_err_name(rc));
}

/* Joins coroutines that each return 0. */
void join_all(dbp_co **cos, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = dbp_join(cos[i], NULL);
    cr_assert_eq(rc, 0, "coroutine %zu: %s", i, dbp_err_name(rc));
  }
}

int cancel_waiter(void *arg, void **result) {
  (void)result;
  cancel_arg *a = arg;
  dbp_conn *c = NULL;
  a->rc = dbp_pool_acquire(a->p, DBP_FOREVER, &c, NULL);
  if (a->rc == 0) {
    cr_assert_not_null(c);
    dbp_pool_release(a->p, c);
  } else {
    cr_assert_null(c);
  }
  return 0;
}

/* ---- the harness ---- */

static int run_main(void *arg, void **result) {
  (void)result;
  run_arg *ra = arg;
  tctx *t = ra->t;
  dbp_dberr e;
  char mon_dsn[512];
  if (is_pg(t))
    dsn_with(mon_dsn, sizeof mon_dsn, ra->base_dsn, "application_name=dbp_pool_monitor");
  else
    snprintf(mon_dsn, sizeof mon_dsn, "%s", ra->base_dsn);
  int rc = dbp_conn_open(t->rt, mon_dsn, 30000, &t->mon, &e);
  cr_assert_eq(rc, 0, "monitor connect: %s (%s)", dbp_err_name(rc), e.message);
  ra->body(t);
  dbp_conn_close(t->mon);
  return 0;
}

void run_test(dbp_db_kind kind, const char *name, body_fn body) {
  const char *base = kind == DBP_DB_PG ? dbt_pg_dsn() : dbt_my_dsn();
  tctx t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  if (kind == DBP_DB_PG) {
    char kv[128];
    snprintf(t.app, sizeof t.app, "dbp_pool_%s_%ld", name, (long)getpid());
    snprintf(kv, sizeof kv, "application_name=%s", t.app);
    dsn_with(t.dsn, sizeof t.dsn, base, kv);
  } else {
    snprintf(t.dsn, sizeof t.dsn, "%s", base);
  }
  cr_assert_eq(dbp_rt_new(&t.rt, NULL, NULL), 0);
  run_arg ra = {&t, body, base};
  dbp_co *co = NULL;
  cr_assert_eq(dbp_spawn(t.rt, &co, run_main, &ra, NULL), 0);
  cr_assert_eq(dbp_rt_run(t.rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(t.rt), 0);
}
