/* The pool's one-call helpers, dbp_pool_query and dbp_pool_exec, against
 * real PostgreSQL and MariaDB servers, checked against their contract in
 * pool.h: many coroutines on a few connections each get their own results
 * and errors; timeouts and cancellations touch nobody else and leave no
 * statement running on the server; a statement that keeps session state
 * runs alone and the next user sees a clean session; results outlive the
 * pool; the statement cache stays bounded; killed sessions fail only the
 * statements on them; closing the pool with statements in flight. The
 * harness (run_test, the monitor connection) is tests/support/pooltest.h. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "pooltest.h"

/* Suites of their own, so that a filter on them picks these tests only. */
#define QTEST(name, secs)                       \
  static void name##_body(tctx *t);             \
  Test(pool_query_pg, name, .timeout = secs) {  \
    run_test(DBP_DB_PG, #name, name##_body);    \
  }                                             \
  Test(pool_query_my, name, .timeout = secs) {  \
    run_test(DBP_DB_MYSQL, #name, name##_body); \
  }                                             \
  static void name##_body(tctx *t)

#define PG_TEST(name, secs)                    \
  static void name##_body(tctx *t);            \
  Test(pool_query_pg, name, .timeout = secs) { \
    run_test(DBP_DB_PG, #name, name##_body);   \
  }                                            \
  static void name##_body(tctx *t)

#define MY_TEST(name, secs)                     \
  static void name##_body(tctx *t);             \
  Test(pool_query_my, name, .timeout = secs) {  \
    run_test(DBP_DB_MYSQL, #name, name##_body); \
  }                                             \
  static void name##_body(tctx *t)

#define PARAM(s) ((dbp_param){(s), strlen(s)})

/* ---- helpers ---- */

/* Failures seen in worker coroutines, asserted by the body afterwards (so
 * that a message names the worker and the statement). */
typedef struct fails {
  int n;
  char first[800];
} fails;

__attribute__((format(printf, 2, 3))) static void note(fails *f, const char *fmt, ...) {
  if (f->n++ > 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->first, sizeof f->first, fmt, ap);
  va_end(ap);
}

static void expect_no_fails(const fails *f) {
  cr_assert_eq(f->n, 0, "%d failures, the first: %s", f->n, f->first);
}

static const char *fmt_err(const dbp_dberr *e, char *buf, size_t len) {
  return dbp_dberr_format(e, buf, len);
}

/* Does value (row, col) equal `want`, with the NUL after it? */
static bool val_eq(const dbp_result *r, size_t row, size_t col, const char *want) {
  size_t len = 12345;
  const char *v = dbp_result_value(r, row, col, &len);
  return v != NULL && len == strlen(want) && memcmp(v, want, len) == 0 && v[len] == '\0';
}

/* The value as a number: MariaDB gives arithmetic on a text parameter as a
 * DOUBLE, so numbers are compared by value, not by spelling. */
static bool val_num(const dbp_result *r, size_t row, size_t col, double *out) {
  size_t len = 0;
  const char *v = dbp_result_value(r, row, col, &len);
  if (v == NULL || len == 0) return false;
  char *end;
  *out = strtod(v, &end);
  return end == v + len;
}

static dbp_pool *pool(tctx *t, dbp_pool_options o) {
  return mkpool(t, &o);
}

/* A query that must succeed with one row and an integer first value. */
static int64_t pool_int(dbp_pool *p, const char *sql, size_t np, const dbp_param *ps) {
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(p, sql, np, ps, 30000, &r, &e);
  cr_assert_eq(rc, 0, "%s: %s", sql, fmt_err(&e, m, sizeof m));
  cr_assert_not_null(r);
  cr_assert_eq(dbp_result_nrows(r), 1, "%s: %zu rows", sql, dbp_result_nrows(r));
  const char *v = dbp_result_value(r, 0, 0, NULL);
  cr_assert_not_null(v, "%s gave NULL", sql);
  char *end;
  int64_t n = strtoll(v, &end, 10);
  cr_assert(*v != '\0' && *end == '\0', "%s gave '%s', not an integer", sql, v);
  dbp_result_free(r);
  return n;
}

/* A query that must succeed with one row and a non-NULL first value,
 * copied into buf. */
static void pool_text(dbp_pool *p, const char *sql, char *buf, size_t len) {
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(p, sql, 0, NULL, 30000, &r, &e);
  cr_assert_eq(rc, 0, "%s: %s", sql, fmt_err(&e, m, sizeof m));
  cr_assert_eq(dbp_result_nrows(r), 1, "%s: %zu rows", sql, dbp_result_nrows(r));
  const char *v = dbp_result_value(r, 0, 0, NULL);
  cr_assert_not_null(v, "%s gave NULL", sql);
  snprintf(buf, len, "%s", v);
  dbp_result_free(r);
}

static int64_t pool_exec_ok(dbp_pool *p, const char *sql, size_t np, const dbp_param *ps) {
  dbp_dberr e = {0};
  char m[700];
  int64_t n = -12345;
  int rc = dbp_pool_exec(p, sql, np, ps, 30000, &n, &e);
  cr_assert_eq(rc, 0, "%s: %s", sql, fmt_err(&e, m, sizeof m));
  return n;
}

/* A query that must fail with the server's error `sqlstate`. */
static void pool_query_fails(dbp_pool *p, const char *sql, const char *sqlstate) {
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(p, sql, 0, NULL, 30000, &r, &e);
  cr_assert_eq(rc, DBP_EQUERY, "%s gave %s: %s", sql, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
  cr_assert_null(r, "*out must be NULL on failure");
  cr_assert_str_eq(e.sqlstate, sqlstate, "%s: %s", sql, fmt_err(&e, m, sizeof m));
}

static int64_t mon_int(tctx *t, const char *sql, size_t np, const dbp_param *ps) {
  int64_t n = -1;
  int rc = q_int(t->mon, sql, np, ps, &n);
  char m[700];
  cr_assert_eq(rc, 0, "monitor: %s: %s", sql,
               dbp_dberr_format(dbp_conn_error(t->mon), m, sizeof m));
  return n;
}

static void mon_exec(tctx *t, const char *sql) {
  int rc = dbp_exec(t->mon, sql, 0, NULL, 30000, NULL);
  char m[700];
  cr_assert_eq(rc, 0, "monitor: %s: %s", sql,
               dbp_dberr_format(dbp_conn_error(t->mon), m, sizeof m));
}

/* A name unique to this test process: tables, markers in SQL text. */
static const char *uniq(const char *what) {
  static char buf[8][64];
  static int next;
  char *b = buf[next++ % 8];
  snprintf(b, 64, "dbp_pq_%s_%ld", what, (long)getpid());
  return b;
}

/* A table of this process: k the primary key, v a number. */
static const char *mktable(tctx *t, const char *what) {
  const char *name = uniq(what);
  char sql[256];
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", name);
  mon_exec(t, sql);
  snprintf(sql, sizeof sql, "CREATE TABLE %s (k int PRIMARY KEY, v int)%s", name,
           is_pg(t) ? "" : " ENGINE=InnoDB");
  mon_exec(t, sql);
  return name;
}

static void droptable(tctx *t, const char *name) {
  char sql[256];
  snprintf(sql, sizeof sql, "DROP TABLE %s", name);
  mon_exec(t, sql);
}

/* Statements whose text holds `marker` that the server is running now
 * (the monitor's own excluded). */
static int64_t running(tctx *t, const char *marker) {
  char like[96];
  snprintf(like, sizeof like, "%%%s%%", marker);
  dbp_param p = PARAM(like);
  return mon_int(t,
                 is_pg(t) ? "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                            "AND pid <> pg_backend_pid() AND query LIKE $1"
                          : "SELECT COUNT(*) FROM information_schema.processlist "
                            "WHERE info LIKE ? AND id <> CONNECTION_ID()",
                 1, &p);
}

/* Waits (up to ten seconds) until running(marker) is `want`. */
static void expect_running(tctx *t, const char *marker, int64_t want, const char *why) {
  int64_t n = -1;
  for (int i = 0; i < 1000; i++) {
    n = running(t, marker);
    if (n == want) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("%s: the server runs %" PRId64 " statements marked %s, expected %" PRId64, why, n,
                 marker, want);
}

/* Waits (up to ten seconds) until the server runs at least `want`. */
static void await_running(tctx *t, const char *marker, int64_t want) {
  int64_t n = -1;
  for (int i = 0; i < 1000; i++) {
    n = running(t, marker);
    if (n >= want) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("the server runs %" PRId64 " statements marked %s, waited for %" PRId64, n, marker,
                 want);
}

/* Ends the sessions running a statement marked `marker` (PostgreSQL:
 * every session of the pool, by its application_name). Returns how many. */
static int64_t kill_sessions(tctx *t, const char *marker) {
  if (is_pg(t)) {
    dbp_param p = PARAM(t->app);
    return mon_int(t,
                   "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                   1, &p);
  }
  char like[96];
  snprintf(like, sizeof like, "%%%s%%", marker);
  dbp_param p = PARAM(like);
  cr_assert_eq(dbp_query(t->mon,
                         "SELECT id FROM information_schema.processlist "
                         "WHERE info LIKE ? AND id <> CONNECTION_ID()",
                         1, &p, 10000),
               0);
  int64_t ids[64];
  size_t n = 0;
  dbp_row row;
  int rc;
  while ((rc = dbp_fetch(t->mon, &row)) > 0)
    if (n < 64 && row.vals[0]) ids[n++] = strtoll(row.vals[0], NULL, 10);
  cr_assert_eq(rc, 0);
  for (size_t i = 0; i < n; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "KILL CONNECTION %" PRId64, ids[i]);
    dbp_exec(t->mon, sql, 0, NULL, 10000, NULL); /* it may have ended meanwhile */
  }
  return (int64_t)n;
}

/* Everything the helpers keep is back to rest: at once when the last
 * call returned, or at least a moment later (within two seconds; the
 * connection that answered may go back after its caller resumes). */
static void expect_quiet(tctx *t, const dbp_pool *p) {
  dbp_pool_stats s = stats(p);
  for (int i = 0; i < 200 && (s.in_flight || s.shared || s.in_use || s.waiting); i++) {
    dbp_sleep(t->rt, 10);
    s = stats(p);
  }
  cr_assert_eq(s.in_flight, 0, "in_flight %zu", s.in_flight);
  cr_assert_eq(s.shared, 0, "shared %zu", s.shared);
  cr_assert_eq(s.in_use, 0, "in_use %zu", s.in_use);
  cr_assert_eq(s.waiting, 0, "waiting %zu", s.waiting);
}

/* ---- many coroutines, few connections ---- */

typedef struct load {
  tctx *t;
  dbp_pool *p;
  size_t max_size, depth;
  int per, workers, done;
  fails f;
  /* sampled while the workers run */
  size_t max_shared, max_in_flight, max_in_use, max_total;
  bool deep; /* seen: more statements in flight than shared connections */
} load;

typedef struct load_worker {
  load *l;
  int id;
} load_worker;

static int load_run(void *arg, void **result) {
  (void)result;
  load_worker *w = arg;
  load *l = w->l;
  bool pg = is_pg(l->t);
  const char *sql =
      pg ? "SELECT $1::int * 2, repeat('x', $1::int % 50)" : "SELECT ? * 2, REPEAT('x', ? % 50)";
  for (int i = 0; i < l->per; i++) {
    int v = w->id * 1000 + i;
    char vb[16];
    snprintf(vb, sizeof vb, "%d", v);
    dbp_param ps[2] = {PARAM(vb), PARAM(vb)};
    dbp_result *r = NULL;
    dbp_dberr e = {0};
    char m[700];
    int rc = dbp_pool_query(l->p, sql, pg ? 1 : 2, ps, 60000, &r, &e);
    if (rc != 0) {
      note(&l->f, "worker %d, value %d: %s: %s", w->id, v, dbp_err_name(rc),
           fmt_err(&e, m, sizeof m));
      continue;
    }
    double twice = -1;
    size_t len = 9999;
    const char *xs = dbp_result_value(r, 0, 1, &len);
    bool xs_ok = xs != NULL && len == (size_t)(v % 50) && xs[len] == '\0';
    for (size_t k = 0; xs_ok && k < len; k++) xs_ok = xs[k] == 'x';
    if (dbp_result_nrows(r) != 1 || dbp_result_ncols(r) != 2 || !val_num(r, 0, 0, &twice) ||
        twice != 2.0 * v || !xs_ok)
      note(&l->f, "worker %d, value %d: got %zu rows, '%s' and %zu x's", w->id, v,
           dbp_result_nrows(r),
           dbp_result_value(r, 0, 0, NULL) ? dbp_result_value(r, 0, 0, NULL) : "NULL",
           xs ? len : 0);
    dbp_result_free(r);
  }
  l->done++;
  return 0;
}

static int load_sampler(void *arg, void **result) {
  (void)result;
  load *l = arg;
  while (l->done < l->workers) {
    dbp_pool_stats s = stats(l->p);
    if (s.shared > l->max_shared) l->max_shared = s.shared;
    if (s.in_flight > l->max_in_flight) l->max_in_flight = s.in_flight;
    if (s.in_flight > s.shared) l->deep = true;
    if (s.in_use > l->max_in_use) l->max_in_use = s.in_use;
    if (s.total > l->max_total) l->max_total = s.total;
    if (s.shared > s.in_use)
      note(&l->f, "shared %zu above in_use %zu (shared ones count in in_use)", s.shared, s.in_use);
    if (s.in_flight > s.shared * l->depth)
      note(&l->f, "in_flight %zu on %zu shared connections of depth %zu", s.in_flight, s.shared,
           l->depth);
    dbp_sleep(l->t->rt, 1);
  }
  return 0;
}

/* workers x per queries on a pool of 4; every result must be its own. */
static void run_load(tctx *t, bool no_pipeline, size_t depth, int workers, int per) {
  load l = {.t = t, .max_size = 4, .depth = depth ? depth : 16, .per = per, .workers = workers};
  l.p = pool(
      t, (dbp_pool_options){.max_size = 4, .no_pipeline = no_pipeline, .pipeline_depth = depth});
  load_worker ws[64];
  dbp_co *cos[65];
  cr_assert_leq(workers, 64);
  for (int i = 0; i < workers; i++) {
    ws[i] = (load_worker){&l, i};
    spawn(t, &cos[i], load_run, &ws[i]);
  }
  spawn(t, &cos[workers], load_sampler, &l);
  join_all(cos, (size_t)workers + 1);
  expect_no_fails(&l.f);

  dbp_pool_stats s = stats(l.p);
  bool pipelined = is_pg(t) && !no_pipeline;
  cr_assert_eq(s.statements, (uint64_t)workers * (uint64_t)per, "statements %" PRIu64,
               s.statements);
  if (pipelined) {
    cr_assert_gt(s.pipelined, 0, "PostgreSQL shares connections for stateless statements");
    cr_assert_leq(s.pipelined, s.statements);
    cr_assert_geq(l.max_shared, 1, "no connection was ever seen in pipeline mode");
    cr_assert_geq(l.max_in_flight, 2, "never two statements in flight at once");
    /* With a depth of 2 a pipe's two answers often come in one read, so
     * a sample may always fall between the answers and the next sends:
     * only the deeper pipes are sure to be seen holding more than one. */
    if (l.depth > 2)
      cr_assert(l.deep, "never two statements in flight on one connection (at most %zu on %zu)",
                l.max_in_flight, l.max_shared);
  } else {
    cr_assert_eq(s.pipelined, 0, "pipelined %" PRIu64 " without pipelining", s.pipelined);
    cr_assert_eq(l.max_shared, 0, "a shared connection without pipelining");
    cr_assert_eq(l.max_in_flight, 0);
  }
  cr_assert_leq(l.max_shared, 4);
  cr_assert_leq(l.max_in_flight, 4 * l.depth, "in_flight %zu above max_size x pipeline_depth",
                l.max_in_flight);
  cr_assert_leq(l.max_in_use, 4);
  cr_assert_leq(l.max_total, 4);
  cr_assert_leq(s.opened, 4, "opened %" PRIu64 " connections on a pool of 4", s.opened);
  cr_assert_leq(s.total_peak, 4);
  cr_assert_leq(s.in_use_peak, 4);
  cr_assert_eq(s.broken, 0);
  cr_assert_eq(s.abandoned, 0);
  expect_quiet(t, l.p);
  if (is_pg(t)) cr_assert_leq(sessions(t), 4);
  cr_assert_eq(dbp_pool_close(l.p, 10000), 0);
  if (is_pg(t)) expect_sessions(t, 0);
}

QTEST(concurrent_results_are_never_crossed, 300) {
  run_load(t, false, 0, 64, 200);
}

PG_TEST(no_pipeline_never_pipelines, 300) {
  run_load(t, true, 0, 64, 200);
}

PG_TEST(pipeline_depth_bounds_in_flight, 300) {
  run_load(t, false, 2, 64, 50);
}

/* ---- a failing statement fails alone ---- */

typedef struct mix {
  tctx *t;
  dbp_pool *p;
  const char *table;
  int per;
  int good_inserts, errors, ran;
  fails f;
} mix;

typedef struct mix_worker {
  mix *x;
  int id;
} mix_worker;

enum { M_GOOD, M_DIV0, M_CAST, M_INSERT, M_DUP, M_NPARAMS, M_KINDS };

/* One statement of kind `kind` for value v; notes what went wrong. */
static void mix_one(mix *x, int id, int kind, int v) {
  bool pg = is_pg(x->t);
  char sql[256], vb[32], want[64];
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  memset(&e, 0, sizeof e);
  char m[700];
  int rc;
  int64_t affected = -1;
  const char *state = NULL; /* the error expected, or NULL for success */
  const char *msg_has = NULL;
  snprintf(vb, sizeof vb, "%d", v);
  dbp_param pv = PARAM(vb);
  switch (kind) {
    case M_GOOD:
      rc = dbp_pool_query(x->p, pg ? "SELECT $1::int + 1" : "SELECT CAST(? AS SIGNED) + 1", 1, &pv,
                          30000, &r, &e);
      snprintf(want, sizeof want, "%d", v + 1);
      if (rc == 0 && (dbp_result_nrows(r) != 1 || !val_eq(r, 0, 0, want)))
        note(&x->f, "worker %d: SELECT %d + 1 gave '%s'", id, v,
             dbp_result_value(r, 0, 0, NULL) ? dbp_result_value(r, 0, 0, NULL) : "NULL");
      break;
    case M_DIV0: /* MariaDB gives NULL for 1/0: a subquery of two rows instead */
      rc = dbp_pool_query(
          x->p, pg ? "SELECT 10 / ($1::int - $1::int)" : "SELECT (SELECT 1 UNION ALL SELECT ?)", 1,
          &pv, 30000, &r, &e);
      state = pg ? "22012" : "21000";
      break;
    case M_CAST: /* the message quotes the bad value: it must be this one's */
      snprintf(vb, sizeof vb, "bad%d", v);
      pv = PARAM(vb);
      if (pg) {
        rc = dbp_pool_query(x->p, "SELECT $1::int", 1, &pv, 30000, &r, &e);
        state = "22P02";
        msg_has = vb;
      } else {
        rc = dbp_pool_query(x->p, "SELECT ? FROM dbp_pq_no_such_table", 1, &pv, 30000, &r, &e);
        state = "42S02";
        msg_has = "dbp_pq_no_such_table";
      }
      break;
    case M_INSERT:
      snprintf(vb, sizeof vb, "%d", 100000 + v);
      pv = PARAM(vb);
      snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (%s, 1)", x->table, pg ? "$1" : "?");
      r = NULL;
      rc = dbp_pool_exec(x->p, sql, 1, &pv, 30000, &affected, &e);
      if (rc == 0) {
        x->good_inserts++;
        if (affected != 1) note(&x->f, "worker %d: INSERT affected %" PRId64, id, affected);
      }
      break;
    case M_DUP: /* keys 0..9 are there already */
      snprintf(vb, sizeof vb, "%d", v % 10);
      pv = PARAM(vb);
      snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (%s, 2)", x->table, pg ? "$1" : "?");
      r = NULL;
      rc = dbp_pool_exec(x->p, sql, 1, &pv, 30000, &affected, &e);
      state = pg ? "23505" : "23000";
      snprintf(want, sizeof want, pg ? "(k)=(%d)" : "'%d'", v % 10);
      msg_has = want;
      break;
    default: /* PostgreSQL: a Bind with too few parameters, on a pipeline */
      if (!pg) return;
      rc = dbp_pool_query(x->p, "SELECT $1::int + $2::int", 1, &pv, 30000, &r, &e);
      if (rc == 0)
        note(&x->f, "worker %d: two placeholders and one parameter succeeded", id);
      else if (r != NULL)
        note(&x->f, "worker %d: *out not NULL after %s", id, dbp_err_name(rc));
      else if (rc != DBP_EQUERY && rc != DBP_EINVAL)
        note(&x->f, "worker %d: a missing parameter gave %s: %s", id, dbp_err_name(rc),
             fmt_err(&e, m, sizeof m));
      x->ran++;
      x->errors++;
      return;
  }
  x->ran++;
  if (state == NULL) {
    if (rc != 0)
      note(&x->f, "worker %d, kind %d, value %d: %s: %s", id, kind, v, dbp_err_name(rc),
           fmt_err(&e, m, sizeof m));
    else if (r != NULL)
      dbp_result_free(r);
    return;
  }
  x->errors++;
  if (rc != DBP_EQUERY || e.code != DBP_EQUERY)
    note(&x->f, "worker %d, kind %d, value %d: %s (err.code %s), wanted DBP_EQUERY: %s", id, kind,
         v, dbp_err_name(rc), dbp_err_name(e.code), fmt_err(&e, m, sizeof m));
  else if (r != NULL)
    note(&x->f, "worker %d, kind %d: *out not NULL on failure", id, kind);
  else if (strcmp(e.sqlstate, state) != 0)
    note(&x->f, "worker %d, kind %d, value %d: SQLSTATE %s, wanted %s: %s", id, kind, v, e.sqlstate,
         state, e.message);
  else if (msg_has && !strstr(e.message, msg_has))
    note(&x->f, "worker %d, kind %d: the message lacks '%s', its own: %s", id, kind, msg_has,
         e.message);
  else if (e.retryable)
    note(&x->f, "worker %d, kind %d: a plain statement error marked retryable", id, kind);
}

static int mix_run(void *arg, void **result) {
  (void)result;
  mix_worker *w = arg;
  for (int i = 0; i < w->x->per; i++) {
    int kind = (w->id + i) % M_KINDS;
    if (kind == M_NPARAMS && !is_pg(w->x->t)) kind = M_GOOD;
    mix_one(w->x, w->id, kind, w->id * 1000 + i);
  }
  return 0;
}

QTEST(failing_statements_fail_alone, 300) {
  const char *table = mktable(t, "mix");
  char sql[256];
  for (int k = 0; k < 10; k++) {
    snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (%d, 0)", table, k);
    mon_exec(t, sql);
  }
  mix x = {.t = t, .table = table, .per = 60};
  x.p = pool(t, (dbp_pool_options){.max_size = 2});
  mix_worker ws[24];
  dbp_co *cos[24];
  for (int i = 0; i < 24; i++) {
    ws[i] = (mix_worker){&x, i};
    spawn(t, &cos[i], mix_run, &ws[i]);
  }
  join_all(cos, 24);
  expect_no_fails(&x.f);
  cr_assert_eq(x.ran, 24 * 60);
  cr_assert_gt(x.errors, 24 * 60 / 3);
  cr_assert_gt(x.good_inserts, 0);

  /* The good INSERTs committed, the duplicates changed nothing. */
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), 10 + x.good_inserts);
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE v = 2", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), 0);

  dbp_pool_stats s = stats(x.p);
  cr_assert_eq(s.statements, (uint64_t)x.ran);
  if (is_pg(t)) cr_assert_gt(s.pipelined, 0);
  cr_assert_eq(s.abandoned, 0);
  cr_assert_eq(s.broken, 0, "a statement error broke a connection");
  cr_assert_leq(s.opened, 2);
  expect_quiet(t, x.p);
  cr_assert_eq(pool_int(x.p, is_pg(t) ? "SELECT 6 * 7" : "SELECT 6 * 7", 0, NULL), 42);

  /* err may be NULL. */
  dbp_result *r = (dbp_result *)&r;
  cr_assert_eq(dbp_pool_query(x.p, "SELECT * FROM dbp_pq_no_such_table", 0, NULL, 30000, &r, NULL),
               DBP_EQUERY);
  cr_assert_null(r);
  cr_assert_eq(dbp_pool_close(x.p, 10000), 0);
  droptable(t, table);
}

/* ---- timeouts and cancellation ---- */

/* A statement of the server's sleep function, marked so that the monitor
 * finds it. */
static void sleep_sql(tctx *t, char *buf, size_t len, const char *secs, const char *marker) {
  snprintf(buf, len, is_pg(t) ? "SELECT pg_sleep(%s), '%s'" : "SELECT SLEEP(%s), '%s'", secs,
           marker);
}

/* A 30 s sleep with a 200 ms timeout returns at its deadline, is cancelled
 * on the server, and the pool goes on answering, with the same statement
 * cache. */
QTEST(timeout_cancels_the_statement_on_the_server, 120) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 2});
  const char *add = is_pg(t) ? "SELECT $1::int + 5" : "SELECT CAST(? AS SIGNED) + 5";
  dbp_param pv = PARAM("37");
  cr_assert_eq(pool_int(p, add, 1, &pv), 42);

  const char *marker = uniq("timeout");
  char sql[160];
  sleep_sql(t, sql, sizeof sql, "30", marker);
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  uint64_t t0 = dbp_now(t->rt);
  int rc = dbp_pool_query(p, sql, 0, NULL, 200, &r, &e);
  uint64_t took = dbp_now(t->rt) - t0;
  cr_assert_eq(rc, DBP_ETIMEDOUT, "got %s", dbp_err_name(rc));
  cr_assert_eq(e.code, DBP_ETIMEDOUT);
  cr_assert_null(r);
  cr_assert_geq(took, 150, "returned after %" PRIu64 " ms, before its deadline", took);
  cr_assert_lt(took, 15000, "returned after %" PRIu64 " ms: waited for the sleep", took);

  /* The server stops sleeping long before the 30 s are over. */
  expect_running(t, marker, 0, "after the timeout");
  cr_assert_eq(pool_int(p, add, 1, &pv), 42);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.statements, 3);
  if (is_pg(t))
    cr_assert_eq(s.abandoned, 1, "a timeout on a shared connection is abandoned (%" PRIu64 ")",
                 s.abandoned);
  else
    cr_assert_eq(s.abandoned, 0, "MariaDB has no shared connections (%" PRIu64 ")", s.abandoned);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

typedef struct nb {
  tctx *t;
  dbp_pool *p;
  int fast_done;
  int slow_timed_out;
  fails f;
} nb;

typedef struct nb_worker {
  nb *n;
  int id;
} nb_worker;

static int nb_fast(void *arg, void **result) {
  (void)result;
  nb_worker *w = arg;
  for (int i = 0; i < 100; i++) {
    int v = w->id * 1000 + i;
    char vb[16], want[16];
    snprintf(vb, sizeof vb, "%d", v);
    snprintf(want, sizeof want, "%d", v + 7);
    dbp_param pv = PARAM(vb);
    dbp_result *r = NULL;
    dbp_dberr e = {0};
    char m[700];
    int rc = dbp_pool_query(w->n->p, "SELECT $1::int + 7", 1, &pv, 60000, &r, &e);
    if (rc != 0)
      note(&w->n->f, "fast %d: %s: %s", w->id, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
    else if (!val_eq(r, 0, 0, want))
      note(&w->n->f, "fast %d: %d + 7 gave %s", w->id, v, dbp_result_value(r, 0, 0, NULL));
    dbp_result_free(r);
  }
  w->n->fast_done++;
  return 0;
}

static int nb_slow(void *arg, void **result) {
  (void)result;
  nb_worker *w = arg;
  /* Once the fast ones run on open connections, spread over their run. */
  dbp_sleep(w->n->t->rt, 200 + 20 * w->id);
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  uint64_t t0 = dbp_now(w->n->t->rt);
  int rc = dbp_pool_query(w->n->p, "SELECT pg_sleep(2), 'dbp_pq_neighbour'", 0, NULL, 200, &r, &e);
  uint64_t took = dbp_now(w->n->t->rt) - t0;
  if (rc != DBP_ETIMEDOUT || e.code != DBP_ETIMEDOUT || r != NULL)
    note(&w->n->f, "slow %d: %s, wanted DBP_ETIMEDOUT", w->id, dbp_err_name(rc));
  else if (took < 150 || took >= 1800)
    note(&w->n->f, "slow %d: a 200 ms timeout returned after %" PRIu64 " ms (the sleep is 2 s)",
         w->id, took);
  else
    w->n->slow_timed_out++;
  return 0;
}

/* While 30 coroutines run fast statements, others time out on 2 s sleeps
 * beside them: the timeouts come at their deadlines, the fast ones all get
 * their own results. */
PG_TEST(timeouts_leave_neighbours_alone, 180) {
  nb n = {.t = t};
  n.p = pool(t, (dbp_pool_options){.max_size = 4});
  nb_worker fw[30], sw[4];
  dbp_co *cos[34];
  for (int i = 0; i < 30; i++) {
    fw[i] = (nb_worker){&n, i};
    spawn(t, &cos[i], nb_fast, &fw[i]);
  }
  for (int i = 0; i < 4; i++) {
    sw[i] = (nb_worker){&n, i};
    spawn(t, &cos[30 + i], nb_slow, &sw[i]);
  }
  join_all(cos, 34);
  expect_no_fails(&n.f);
  cr_assert_eq(n.fast_done, 30);
  cr_assert_eq(n.slow_timed_out, 4);
  dbp_pool_stats s = stats(n.p);
  cr_assert_geq(s.abandoned, 1, "abandoned %" PRIu64 " after 4 timeouts (pipelined %" PRIu64 ")",
                s.abandoned, s.pipelined);
  cr_assert_leq(s.abandoned, 4);
  cr_assert_eq(s.statements, 30 * 100 + 4);
  cr_assert_eq(pool_int(n.p, "SELECT 40 + 2", 0, NULL), 42);
  expect_running(t, "dbp_pq_neighbour", 0, "after the sleeps' timeouts");
  cr_assert_leq(s.opened, 4);
  expect_quiet(t, n.p);
  cr_assert_eq(dbp_pool_close(n.p, 10000), 0);
  expect_sessions(t, 0);
}

typedef struct one_call {
  dbp_pool *p;
  const char *sql;
  int64_t timeout_ms;
  int rc;
  dbp_result *r;
  dbp_dberr e;
  uint64_t took;
  dbp_rt *rt;
} one_call;

static int one_query(void *arg, void **result) {
  (void)result;
  one_call *c = arg;
  uint64_t t0 = dbp_now(c->rt);
  c->r = (dbp_result *)c;
  c->rc = dbp_pool_query(c->p, c->sql, 0, NULL, c->timeout_ms, &c->r, &c->e);
  c->took = dbp_now(c->rt) - t0;
  return 0;
}

/* A coroutine cancelled while its statement runs gets DBP_ECANCELED at
 * once; the server stops the statement; the pool goes on. */
QTEST(cancel_during_a_statement, 120) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 2});
  const char *marker = uniq("cancel");
  char sql[160];
  sleep_sql(t, sql, sizeof sql, "30", marker);
  one_call c = {.p = p, .sql = sql, .timeout_ms = DBP_FOREVER, .rt = t->rt};
  dbp_co *co;
  spawn(t, &co, one_query, &c);
  await_running(t, marker, 1);
  if (is_pg(t)) cr_assert_eq(stats(p).in_flight, 1);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(c.rc, DBP_ECANCELED, "got %s", dbp_err_name(c.rc));
  cr_assert_null(c.r);
  cr_assert_lt(c.took, 15000, "the cancelled call took %" PRIu64 " ms", c.took);
  expect_running(t, marker, 0, "after the cancel");
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.abandoned, is_pg(t) ? 1 : 0, "abandoned %" PRIu64, s.abandoned);
  cr_assert_eq(pool_int(p, "SELECT 40 + 2", 0, NULL), 42);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* Cancelled or timed out while queued for a connection (the only one is
 * held): nothing was sent, nothing is abandoned, nobody is left queued. */
QTEST(cancel_and_timeout_while_queued, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  dbp_conn *held = must_acquire(t, p);
  one_call c = {.p = p, .sql = "SELECT 1", .timeout_ms = DBP_FOREVER, .rt = t->rt};
  dbp_co *co;
  spawn(t, &co, one_query, &c);
  dbp_sleep(t->rt, 100);
  cr_assert_not(dbp_co_done(co), "a statement ran while the only connection was held");
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(c.rc, DBP_ECANCELED, "got %s", dbp_err_name(c.rc));
  cr_assert_null(c.r);

  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  cr_assert_eq(dbp_pool_query(p, "SELECT 1", 0, NULL, 100, &r, &e), DBP_ETIMEDOUT);
  cr_assert_null(r);
  cr_assert_eq(e.code, DBP_ETIMEDOUT);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.waiting, 0);
  cr_assert_eq(s.abandoned, 0, "nothing was sent, so nothing is abandoned");
  cr_assert_eq(s.in_flight, 0);
  dbp_pool_release(p, held);
  cr_assert_eq(pool_int(p, "SELECT 40 + 2", 0, NULL), 42);
  expect_quiet(t, p);
  cr_assert_eq(stats(p).opened, 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* rt.h's rule for a timeout of 0: fails at once, sends nothing. A negative
 * timeout other than DBP_FOREVER is refused. */
QTEST(zero_and_negative_timeouts, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  cr_assert_eq(pool_int(p, "SELECT 1", 0, NULL), 1);
  expect_quiet(t, p); /* one connection idle */
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  /* A reply that is there without a wait (a fast local server) may
   * count as done; anything else fails at once and leaves nothing. */
  int rc = dbp_pool_query(p, "SELECT 2", 0, NULL, 0, &r, &e);
  if (rc == 0) {
    cr_assert(val_eq(r, 0, 0, "2"));
    dbp_result_free(r);
  } else {
    cr_assert_eq(rc, DBP_ETIMEDOUT, "a zero timeout gave %s", dbp_err_name(rc));
    cr_assert_null(r);
  }
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.in_flight, 0, "a zero timeout left a statement in flight");
  cr_assert_eq(s.in_use, 0, "a zero timeout left a connection in use");
  cr_assert_eq(s.abandoned, 0);
  int64_t n = 99;
  rc = dbp_pool_exec(p, "SELECT 2", 0, NULL, 0, &n, &e);
  cr_assert(rc == 0 || rc == DBP_ETIMEDOUT, "a zero timeout gave %s", dbp_err_name(rc));
  r = (dbp_result *)&r;
  cr_assert_eq(dbp_pool_query(p, "SELECT 2", 0, NULL, -5, &r, &e), DBP_EINVAL);
  cr_assert_null(r);
  cr_assert_eq(e.code, DBP_EINVAL);
  cr_assert_eq(dbp_pool_exec(p, "SELECT 2", 0, NULL, -7, NULL, &e), DBP_EINVAL);
  cr_assert_eq(pool_int(p, "SELECT 3", 0, NULL), 3);
  expect_quiet(t, p);
  cr_assert_eq(stats(p).opened, 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- session state never leaks ---- */

/* A statement that keeps session state: it must run alone (never on a
 * shared connection) and count as a helper statement. */
static void stateful_exec(dbp_pool *p, const char *sql) {
  dbp_pool_stats a = stats(p);
  pool_exec_ok(p, sql, 0, NULL);
  dbp_pool_stats b = stats(p);
  cr_assert_eq(b.pipelined, a.pipelined, "%s was pipelined", sql);
  cr_assert_eq(b.statements, a.statements + 1);
}

static void stateful_query(dbp_pool *p, const char *sql, const char *want) {
  dbp_pool_stats a = stats(p);
  char got[128];
  pool_text(p, sql, got, sizeof got);
  cr_assert_str_eq(got, want, "%s", sql);
  dbp_pool_stats b = stats(p);
  cr_assert_eq(b.pipelined, a.pipelined, "%s was pipelined", sql);
}

static void expect_text(dbp_pool *p, const char *sql, const char *want, const char *after) {
  char got[256];
  pool_text(p, sql, got, sizeof got);
  cr_assert_str_eq(got, want, "after %s, %s gave '%s'", after, sql, got);
}

/* No session of the pool is inside a transaction (a leaked BEGIN). */
static void expect_no_open_transaction(tctx *t, const char *after) {
  dbp_param p = PARAM(t->app);
  int64_t n = -1;
  for (int i = 0; i < 500; i++) {
    n = mon_int(t,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND (state LIKE 'idle in transaction%' OR backend_xid IS NOT NULL)",
                1, &p);
    if (n == 0) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("after %s, %" PRId64 " sessions of the pool stay inside a transaction", after, n);
}

/* On one connection (max_size 1), each stateful statement through the
 * helpers is undone before the next user: settings, set_config (also
 * inside a WITH), temporary tables, transactions, advisory locks. */
PG_TEST(pg_session_state_does_not_leak, 120) {
  const char *table = mktable(t, "pgstate");
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  char sp[256], tz[128], sql[256];
  pool_text(p, "SELECT current_setting('search_path')", sp, sizeof sp);
  pool_text(p, "SELECT current_setting('TimeZone')", tz, sizeof tz);
  int64_t pid = pool_int(p, "SELECT pg_backend_pid()", 0, NULL);
  const char *get_sp = "SELECT current_setting('search_path')";

  stateful_exec(p, "SET search_path TO pg_catalog");
  expect_text(p, get_sp, sp, "SET search_path");
  stateful_exec(p, "SET application_name = 'dbp_pq_leaked'");
  expect_text(p, "SELECT current_setting('application_name')", t->app, "SET application_name");
  stateful_query(p, "SELECT set_config('TimeZone', 'Pacific/Kiritimati', false)",
                 "Pacific/Kiritimati");
  expect_text(p, "SELECT current_setting('TimeZone')", tz, "set_config");
  stateful_query(p,
                 "WITH s AS (SELECT set_config('search_path', 'pg_catalog', false) AS v) "
                 "SELECT v FROM s",
                 "pg_catalog");
  expect_text(p, get_sp, sp, "set_config inside a WITH");
  stateful_query(p, "  (SELECT set_config('search_path', 'information_schema', false))",
                 "information_schema");
  expect_text(p, get_sp, sp, "set_config in parentheses");

  stateful_exec(p, "CREATE TEMP TABLE dbp_pq_tmp (x int)");
  pool_query_fails(p, "SELECT count(*) FROM dbp_pq_tmp", "42P01");

  /* BEGIN: the next statements run outside any transaction. */
  stateful_exec(p, "BEGIN");
  expect_no_open_transaction(t, "BEGIN");
  int64_t x1 = pool_int(p, "SELECT txid_current()", 0, NULL);
  int64_t x2 = pool_int(p, "SELECT txid_current()", 0, NULL);
  cr_assert_neq(x1, x2, "two statements after BEGIN shared transaction %" PRId64, x1);
  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (1, 1)", table);
  stateful_exec(p, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE");
  cr_assert_eq(pool_exec_ok(p, sql, 0, NULL), 1);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), 1, "the INSERT after a BEGIN is not committed");
  stateful_exec(p, "ROLLBACK");
  cr_assert_eq(mon_int(t, sql, 0, NULL), 1, "a ROLLBACK undid an earlier helper's INSERT");
  expect_no_open_transaction(t, "ROLLBACK");

  /* A session-level advisory lock is let go. */
  char key[32];
  snprintf(key, sizeof key, "%ld", 424200000L + (long)getpid());
  dbp_param pk = PARAM(key);
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(p, "SELECT pg_advisory_lock($1::bigint)", 1, &pk, 30000, &r, &e);
  cr_assert_eq(rc, 0, "%s", fmt_err(&e, m, sizeof m));
  dbp_result_free(r);
  cr_assert_eq(mon_int(t, "SELECT pg_try_advisory_lock($1::bigint)::int", 1, &pk), 1,
               "the pool's session still holds the advisory lock");
  cr_assert_eq(mon_int(t, "SELECT pg_advisory_unlock($1::bigint)::int", 1, &pk), 1);

  /* All on the one connection, reset, never replaced. */
  cr_assert_eq(pool_int(p, "SELECT pg_backend_pid()", 0, NULL), pid);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.broken, 0);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  droptable(t, table);
}

MY_TEST(my_session_state_does_not_leak, 120) {
  const char *table = mktable(t, "mystate");
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  int64_t wt = pool_int(p, "SELECT @@session.wait_timeout", 0, NULL);
  int64_t id = pool_int(p, "SELECT CONNECTION_ID()", 0, NULL);
  char sql[256], want[32];
  snprintf(want, sizeof want, "%" PRId64, wt);

  stateful_exec(p, "SET SESSION wait_timeout = 12345");
  expect_text(p, "SELECT @@session.wait_timeout", want, "SET wait_timeout");
  stateful_exec(p, "SET @y = 7");
  expect_text(p, "SELECT @y IS NULL", "1", "SET @y");
  stateful_query(p, "SELECT @x := 5", "5");
  expect_text(p, "SELECT @x IS NULL", "1", "SELECT @x := 5");
  stateful_exec(p, "CREATE TEMPORARY TABLE dbp_pq_tmp (x int)");
  pool_query_fails(p, "SELECT COUNT(*) FROM dbp_pq_tmp", "42S02");

  stateful_exec(p, "START TRANSACTION");
  expect_text(p, "SELECT @@in_transaction", "0", "START TRANSACTION");
  stateful_exec(p, "BEGIN");
  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (1, 1)", table);
  cr_assert_eq(pool_exec_ok(p, sql, 0, NULL), 1);
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), 1, "the INSERT after a BEGIN is not committed");
  expect_text(p, "SELECT @@in_transaction", "0", "BEGIN");

  const char *lock = uniq("lock");
  snprintf(sql, sizeof sql, "SELECT GET_LOCK('%s', 0)", lock);
  stateful_query(p, sql, "1");
  dbp_param pl = PARAM(lock);
  cr_assert_eq(mon_int(t, "SELECT IS_FREE_LOCK(?)", 1, &pl), 1,
               "the pool's session still holds the named lock");

  cr_assert_eq(pool_int(p, "SELECT CONNECTION_ID()", 0, NULL), id);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.broken, 0);
  cr_assert_eq(s.pipelined, 0);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  droptable(t, table);
}

/* keep_session: settings stay for the next user, transactions do not. */
QTEST(keep_session_keeps_settings_not_transactions, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1, .keep_session = true});
  if (is_pg(t)) {
    stateful_exec(p, "SET application_name = 'dbp_pq_kept'");
    expect_text(p, "SELECT current_setting('application_name')", "dbp_pq_kept", "keep_session");
    stateful_exec(p, "BEGIN");
    int64_t x1 = pool_int(p, "SELECT txid_current()", 0, NULL);
    int64_t x2 = pool_int(p, "SELECT txid_current()", 0, NULL);
    cr_assert_neq(x1, x2, "BEGIN stayed open with keep_session");
  } else {
    stateful_exec(p, "SET SESSION wait_timeout = 12345");
    expect_text(p, "SELECT @@session.wait_timeout", "12345", "keep_session");
    stateful_exec(p, "START TRANSACTION");
    expect_text(p, "SELECT @@in_transaction", "0", "START TRANSACTION with keep_session");
  }
  cr_assert_eq(stats(p).opened, 1);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

typedef struct st_load {
  tctx *t;
  dbp_pool *p;
  char want[256];
  int writers_done;
  int reads, writes, reads_at_done;
  fails f;
} st_load;

static int st_reader(void *arg, void **result) {
  (void)result;
  st_load *l = arg;
  const char *sql =
      is_pg(l->t) ? "SELECT current_setting('search_path')" : "SELECT @@session.wait_timeout";
  /* Until the writer is done, but not forever: a writer starved by the
   * readers' traffic fails the test instead of hanging it. */
  while ((l->writers_done == 0 && l->reads < 20000) || l->reads < 200) {
    dbp_result *r = NULL;
    dbp_dberr e = {0};
    char m[700];
    int rc = dbp_pool_query(l->p, sql, 0, NULL, 30000, &r, &e);
    l->reads++;
    if (rc != 0)
      note(&l->f, "reader: %s: %s", dbp_err_name(rc), fmt_err(&e, m, sizeof m));
    else if (!val_eq(r, 0, 0, l->want))
      note(&l->f, "a reader saw '%s', the default is '%s'", dbp_result_value(r, 0, 0, NULL),
           l->want);
    dbp_result_free(r);
  }
  return 0;
}

static int st_writer(void *arg, void **result) {
  (void)result;
  st_load *l = arg;
  bool pg = is_pg(l->t);
  for (int i = 0; i < 40; i++) {
    dbp_dberr e = {0};
    char m[700];
    dbp_result *r = NULL;
    int rc;
    if (i % 2 == 0)
      rc = dbp_pool_exec(l->p,
                         pg ? "SET search_path TO pg_catalog" : "SET SESSION wait_timeout = 12345",
                         0, NULL, 30000, NULL, &e);
    else
      rc = dbp_pool_query(l->p,
                          pg ? "SELECT set_config('search_path', 'pg_catalog', false)"
                             : "SELECT @t := 1, @@session.wait_timeout",
                          0, NULL, 30000, &r, &e);
    if (rc != 0) note(&l->f, "writer: %s: %s", dbp_err_name(rc), fmt_err(&e, m, sizeof m));
    dbp_result_free(r);
    l->writes++;
  }
  l->writers_done = 1;
  l->reads_at_done = l->reads;
  return 0;
}

/* Readers of a setting on shared connections never see what a concurrent
 * stateful statement set on its own connection. */
QTEST(stateful_statements_never_share_a_connection, 120) {
  st_load l = {.t = t};
  l.p = pool(t, (dbp_pool_options){.max_size = 2});
  pool_text(l.p,
            is_pg(t) ? "SELECT current_setting('search_path')" : "SELECT @@session.wait_timeout",
            l.want, sizeof l.want);
  dbp_co *cos[17];
  for (int i = 0; i < 16; i++) spawn(t, &cos[i], st_reader, &l);
  spawn(t, &cos[16], st_writer, &l);
  join_all(cos, 17);
  expect_no_fails(&l.f);
  cr_assert_geq(l.reads, 200);
  /* Acquires are served first come, first served: a statement that needs
   * a connection of its own is not starved by stateless traffic. */
  cr_assert(l.reads_at_done > 0 && l.reads_at_done < 20000,
            "the stateful writer did %d of 40 statements while readers ran %d", l.writes, l.reads);
  expect_quiet(t, l.p);
  cr_assert_eq(dbp_pool_close(l.p, 10000), 0);
}

/* ---- whole results ---- */

static const char *rows_sql(tctx *t, int n, const char *value) {
  static char buf[320];
  if (is_pg(t))
    snprintf(buf, sizeof buf, "SELECT %s FROM generate_series(1, %d) AS s(g) ORDER BY g", value, n);
  else
    snprintf(buf, sizeof buf,
             "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %d) "
             "SELECT %s FROM s ORDER BY g",
             n, value);
  return buf;
}

static dbp_result *must_query(dbp_pool *p, const char *sql, size_t np, const dbp_param *ps) {
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(p, sql, np, ps, 30000, &r, &e);
  cr_assert_eq(rc, 0, "%s: %s", sql, fmt_err(&e, m, sizeof m));
  cr_assert_not_null(r);
  return r;
}

/* Results read after the pool is closed: NULL and '' told apart, raw
 * bytes, integers, many rows, the metadata and the bounds. */
QTEST(results_outlive_the_pool, 60) {
  bool pg = is_pg(t);
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  dbp_result *one =
      must_query(p,
                 pg ? "SELECT NULL::text AS n, ''::text AS e, 'abc'::text AS s, 42 AS i, "
                      "'\\x00ff0a0d27'::bytea AS b"
                    : "SELECT NULL AS n, '' AS e, 'abc' AS s, 42 AS i, UNHEX('00FF0A0D27') AS b",
                 0, NULL);
  dbp_result *many =
      must_query(p, rows_sql(t, 100, pg ? "g, repeat('y', g)" : "g, REPEAT('y', g)"), 0, NULL);
  dbp_param bin = pg ? PARAM("\\x00ff00") : (dbp_param){"a\0b", 3};
  dbp_result *bytes = must_query(p, pg ? "SELECT $1::bytea" : "SELECT CAST(? AS BINARY)", 1, &bin);
  dbp_param null = {NULL, 0};
  dbp_result *nulls =
      must_query(p, pg ? "SELECT $1::text IS NULL, $1::text" : "SELECT ? IS NULL, CAST(? AS CHAR)",
                 pg ? 1 : 2, (dbp_param[]){null, null});
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  if (pg) expect_sessions(t, 0);

  cr_assert_eq(dbp_result_nrows(one), 1);
  cr_assert_eq(dbp_result_ncols(one), 5);
  const char *names[] = {"n", "e", "s", "i", "b"};
  for (size_t i = 0; i < 5; i++) {
    const dbp_column *c = dbp_result_column(one, i);
    cr_assert_not_null(c);
    cr_assert_str_eq(c->name, names[i]);
  }
  cr_assert_null(dbp_result_column(one, 5));
  cr_assert_eq(dbp_result_column(one, 2)->type, DBP_T_TEXT);
  cr_assert_eq(dbp_result_column(one, 3)->type, DBP_T_INTEGER);
  cr_assert_eq(dbp_result_column(one, 4)->type, DBP_T_BYTES);
  size_t len = 99;
  cr_assert_null(dbp_result_value(one, 0, 0, &len), "SQL NULL must be a NULL pointer");
  cr_assert_eq(len, 0);
  len = 99;
  const char *v = dbp_result_value(one, 0, 1, &len);
  cr_assert_not_null(v, "'' must not read as NULL");
  cr_assert_eq(len, 0);
  cr_assert_eq(v[0], '\0');
  cr_assert(val_eq(one, 0, 2, "abc"));
  cr_assert(val_eq(one, 0, 3, "42"));
  v = dbp_result_value(one, 0, 4, &len);
  cr_assert_not_null(v);
  cr_assert_eq(len, 5, "bytea as %zu bytes", len);
  cr_assert_eq(memcmp(v, "\x00\xff\x0a\x0d\x27", 5), 0, "bytes are the raw bytes");
  cr_assert_eq(v[5], '\0');
  dbp_row row;
  cr_assert_eq(dbp_result_row(one, 0, &row), 0);
  cr_assert_eq(row.ncols, 5);
  cr_assert_null(row.vals[0]);
  cr_assert_not_null(row.vals[1]);
  cr_assert_eq(row.lens[1], 0);
  cr_assert_eq(row.lens[4], 5);
  cr_assert_eq(memcmp(row.vals[4], "\x00\xff", 2), 0);
  /* Outside the result. */
  len = 99;
  cr_assert_null(dbp_result_value(one, 1, 0, &len));
  cr_assert_eq(len, 0);
  cr_assert_null(dbp_result_value(one, 0, 5, NULL));
  cr_assert_eq(dbp_result_row(one, 1, &row), DBP_EINVAL);

  cr_assert_eq(dbp_result_nrows(many), 100);
  cr_assert_eq(dbp_result_ncols(many), 2);
  cr_assert_eq(dbp_result_affected(many), 100, "affected of a SELECT is its rows");
  for (size_t i = 0; i < 100; i++) {
    char g[8];
    snprintf(g, sizeof g, "%zu", i + 1);
    cr_assert(val_eq(many, i, 0, g), "row %zu", i);
    v = dbp_result_value(many, i, 1, &len);
    cr_assert(v != NULL && len == i + 1 && v[len] == '\0', "row %zu", i);
    for (size_t k = 0; k < len; k++) cr_assert_eq(v[k], 'y');
  }

  v = dbp_result_value(bytes, 0, 0, &len);
  cr_assert_eq(dbp_result_column(bytes, 0)->type, DBP_T_BYTES);
  cr_assert_eq(len, 3);
  cr_assert_eq(memcmp(v, pg ? "\x00\xff\x00" : "a\0b", 3), 0);

  cr_assert(val_eq(nulls, 0, 0, pg ? "t" : "1"), "a NULL parameter is SQL NULL");
  cr_assert_null(dbp_result_value(nulls, 0, 1, NULL));
  dbp_result_free(one);
  dbp_result_free(many);
  dbp_result_free(bytes);
  dbp_result_free(nulls);
  dbp_result_free(NULL);
}

QTEST(rows_affected_and_empty_results, 60) {
  bool pg = is_pg(t);
  const char *table = mktable(t, "affected");
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 2});
  char sql[256];

  dbp_result *r = must_query(p,
                             pg ? "SELECT 1 AS a, 'x'::text AS b WHERE false"
                                : "SELECT 1 AS a, 'x' AS b FROM DUAL WHERE 1 = 0",
                             0, NULL);
  cr_assert_eq(dbp_result_nrows(r), 0);
  cr_assert_eq(dbp_result_ncols(r), 2, "no rows, but the columns");
  cr_assert_str_eq(dbp_result_column(r, 0)->name, "a");
  cr_assert_str_eq(dbp_result_column(r, 1)->name, "b");
  cr_assert_eq(dbp_result_column(r, 0)->type, DBP_T_INTEGER);
  cr_assert_eq(dbp_result_column(r, 1)->type, DBP_T_TEXT);
  cr_assert_null(dbp_result_value(r, 0, 0, NULL));
  cr_assert_eq(dbp_result_affected(r), 0);
  dbp_result_free(r);

  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (1, 10), (2, 20), (3, 30)", table);
  cr_assert_eq(pool_exec_ok(p, sql, 0, NULL), 3);
  snprintf(sql, sizeof sql, "UPDATE %s SET v = v + 1 WHERE k <= 2", table);
  cr_assert_eq(pool_exec_ok(p, sql, 0, NULL), 2);
  snprintf(sql, sizeof sql, "UPDATE %s SET v = v + 1 WHERE k > %s", table, pg ? "$1::int" : "?");
  dbp_param big = PARAM("100");
  cr_assert_eq(pool_exec_ok(p, sql, 1, &big), 0);
  snprintf(sql, sizeof sql, "DELETE FROM %s WHERE k = %s", table, pg ? "$1::int" : "?");
  dbp_param three = PARAM("3");
  cr_assert_eq(pool_exec_ok(p, sql, 1, &three), 1);
  dbp_dberr e = {0};
  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (4, 40)", table);
  cr_assert_eq(dbp_pool_exec(p, sql, 0, NULL, 30000, NULL, &e), 0, "affected may be NULL");

  /* A statement without rows through dbp_pool_query: a result of no rows
   * and no columns (db.h). Checked without stopping the test, so that
   * the counts below are checked either way; when refused (and nothing
   * written), the rows go in through dbp_pool_exec. */
  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES (5, 50), (6, 60)", table);
  r = NULL;
  char m[700];
  int rc = dbp_pool_query(p, sql, 0, NULL, 30000, &r, &e);
  cr_expect_eq(rc, 0, "%s through dbp_pool_query: %s", sql, fmt_err(&e, m, sizeof m));
  if (rc == 0) {
    cr_expect_eq(dbp_result_nrows(r), 0);
    cr_expect_eq(dbp_result_ncols(r), 0);
    cr_expect_eq(dbp_result_affected(r), 2);
    dbp_result_free(r);
  } else {
    /* A refusal must not have written anything. */
    char count[256];
    snprintf(count, sizeof count, "SELECT COUNT(*) FROM %s WHERE k IN (5, 6)", table);
    int64_t written = mon_int(t, count, 0, NULL);
    cr_expect_eq(written, 0, "dbp_pool_query failed with %s, yet the INSERT wrote %" PRId64 " rows",
                 dbp_err_name(rc), written);
    if (written == 0) cr_assert_eq(pool_exec_ok(p, sql, 0, NULL), 2);
  }
  if (pg) {
    snprintf(sql, sizeof sql, "UPDATE %s SET v = 0 WHERE k >= 5 RETURNING k", table);
    r = must_query(p, sql, 0, NULL);
    cr_assert_eq(dbp_result_nrows(r), 2);
    cr_assert_eq(dbp_result_affected(r), 2);
    dbp_result_free(r);
  }
  snprintf(sql, sizeof sql, "SELECT COUNT(*) * 1000 + SUM(v) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), 5 * 1000 + 11 + 21 + 40 + (pg ? 0 : 110));
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  droptable(t, table);
}

typedef struct big_arg {
  dbp_pool *p;
  tctx *t;
  int id;
  fails *f;
} big_arg;

static int big_neighbour(void *arg, void **result) {
  (void)result;
  big_arg *b = arg;
  char vb[16], want[16];
  snprintf(vb, sizeof vb, "%d", b->id);
  snprintf(want, sizeof want, "%d", b->id * 3);
  dbp_param pv = PARAM(vb);
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(b->p, is_pg(b->t) ? "SELECT $1::int * 3" : "SELECT CAST(? AS SIGNED) * 3",
                          1, &pv, 30000, &r, &e);
  if (rc != 0)
    note(b->f, "neighbour %d: %s: %s", b->id, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
  else if (!val_eq(r, 0, 0, want))
    note(b->f, "neighbour %d got %s", b->id, dbp_result_value(r, 0, 0, NULL));
  dbp_result_free(r);
  return 0;
}

static int big_one(void *arg, void **result) {
  (void)result;
  big_arg *b = arg;
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  int rc = dbp_pool_query(
      b->p, rows_sql(b->t, 20000, is_pg(b->t) ? "repeat('z', 100)" : "REPEAT('z', 100)"), 0, NULL,
      30000, &r, &e);
  if (rc != DBP_ETOOBIG || e.code != DBP_ETOOBIG || r != NULL)
    note(b->f, "a 2 MB result with a 1000 byte limit gave %s", dbp_err_name(rc));
  return 0;
}

/* max_result_bytes: exactly the limit is fine, a byte more is DBP_ETOOBIG;
 * a far bigger result, among neighbours, fails alone and the connection
 * stays usable. */
QTEST(result_over_max_bytes_is_too_big, 120) {
  bool pg = is_pg(t);
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1, .max_result_bytes = 1000});
  const char *x100 = pg ? "repeat('x', 100)" : "REPEAT('x', 100)";
  dbp_result *r = must_query(p, rows_sql(t, 10, x100), 0, NULL);
  cr_assert_eq(dbp_result_nrows(r), 10, "1000 bytes of values with max_result_bytes 1000");
  dbp_result_free(r);
  char sql[400];
  snprintf(sql, sizeof sql, "%s", rows_sql(t, 10, x100));
  char *order = strstr(sql, " ORDER BY");
  cr_assert_not_null(order);
  snprintf(order, sizeof sql - (size_t)(order - sql), " UNION ALL SELECT 'y'");
  dbp_dberr e = {0};
  r = (dbp_result *)&r;
  cr_assert_eq(dbp_pool_query(p, sql, 0, NULL, 30000, &r, &e), DBP_ETOOBIG, "1001 bytes: %s", sql);
  cr_assert_null(r);
  cr_assert_eq(e.code, DBP_ETOOBIG);

  fails f = {0};
  big_arg bs[21];
  dbp_co *cos[21];
  for (int i = 0; i < 21; i++) {
    bs[i] = (big_arg){p, t, i, &f};
    spawn(t, &cos[i], i == 10 ? big_one : big_neighbour, &bs[i]);
  }
  join_all(cos, 21);
  expect_no_fails(&f);
  cr_assert_eq(pool_int(p, "SELECT 40 + 2", 0, NULL), 42);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1, "the connection was replaced after a too big result");
  cr_assert_eq(s.broken, 0);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- one statement per call ---- */

static int multi_neighbour(void *arg, void **result) {
  (void)result;
  big_arg *b = arg;
  for (int i = 0; i < 20; i++) big_neighbour(b, NULL);
  return 0;
}

/* Several statements in one text are refused with DBP_EINVAL (pool.h),
 * neither run nor a crash nor a hang, also when the first one looks
 * stateless and a later one would set something; none leaves state. */
PG_TEST(several_statements_in_one_text_are_refused, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  char sp[256];
  pool_text(p, "SELECT current_setting('search_path')", sp, sizeof sp);
  fails f = {0};
  big_arg bs[8];
  dbp_co *cos[8];
  for (int i = 0; i < 8; i++) {
    bs[i] = (big_arg){p, t, i, &f};
    spawn(t, &cos[i], multi_neighbour, &bs[i]);
  }
  const char *texts[] = {"SELECT 1; SELECT 2", "SELECT 1; SET search_path TO pg_catalog",
                         "SET search_path TO pg_catalog; SELECT 1",
                         "SELECT set_config('search_path', 'pg_catalog', false); SELECT 2"};
  fails bad = {0};
  for (size_t i = 0; i < 4; i++) {
    dbp_dberr e = {0};
    char m[700], now[256];
    int rc = dbp_pool_exec(p, texts[i], 0, NULL, 20000, NULL, &e);
    if (rc != DBP_EINVAL)
      note(&bad, "dbp_pool_exec(%s) gave %s: %s", texts[i], dbp_err_name(rc),
           fmt_err(&e, m, sizeof m));
    pool_text(p, "SELECT current_setting('search_path')", now, sizeof now);
    if (strcmp(now, sp) != 0)
      note(&bad, "after dbp_pool_exec(%s), search_path is '%s'", texts[i], now);
    dbp_result *r = (dbp_result *)&r;
    rc = dbp_pool_query(p, texts[i], 0, NULL, 20000, &r, &e);
    if (rc != DBP_EINVAL)
      note(&bad, "dbp_pool_query(%s) gave %s: %s", texts[i], dbp_err_name(rc),
           fmt_err(&e, m, sizeof m));
    if (rc == 0)
      dbp_result_free(r);
    else if (r != NULL)
      note(&bad, "*out set on failure");
    pool_text(p, "SELECT current_setting('search_path')", now, sizeof now);
    if (strcmp(now, sp) != 0)
      note(&bad, "after dbp_pool_query(%s), search_path is '%s'", texts[i], now);
  }
  cr_expect_eq(bad.n, 0, "%d wrong, the first: %s", bad.n, bad.first);
  join_all(cos, 8);
  expect_no_fails(&f);
  /* One statement with a trailing semicolon is one statement. */
  cr_assert_eq(pool_int(p, "SELECT 41 + 1;", 0, NULL), 42);
  pool_exec_ok(p, "SELECT 1;", 0, NULL);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.broken, 0);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* MariaDB: whatever the driver does with two statements, the call returns
 * and the session is clean afterwards. */
MY_TEST(my_several_statements_are_refused, 60) {
  const char *table = mktable(t, "multi");
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  int64_t wt = pool_int(p, "SELECT @@session.wait_timeout", 0, NULL);
  char want[32], ins[256], count[256];
  snprintf(want, sizeof want, "%" PRId64, wt);
  snprintf(ins, sizeof ins, "INSERT INTO %s (k, v) VALUES (77, 0); SELECT 1", table);
  snprintf(count, sizeof count, "SELECT COUNT(*) FROM %s", table);
  const char *texts[] = {"SELECT 1; SET SESSION wait_timeout = 12345",
                         "SET SESSION wait_timeout = 12345; SELECT 1", ins};
  for (size_t i = 0; i < 3; i++) {
    dbp_dberr e = {0};
    int rc = dbp_pool_exec(p, texts[i], 0, NULL, 20000, NULL, &e);
    cr_assert_eq(rc, DBP_EINVAL, "dbp_pool_exec(%s) gave %s", texts[i], dbp_err_name(rc));
    dbp_result *r = (dbp_result *)&r;
    rc = dbp_pool_query(p, texts[i], 0, NULL, 20000, &r, &e);
    cr_assert_eq(rc, DBP_EINVAL, "dbp_pool_query(%s) gave %s", texts[i], dbp_err_name(rc));
    cr_assert_null(r);
    expect_text(p, "SELECT @@session.wait_timeout", want, texts[i]);
  }
  cr_assert_eq(mon_int(t, count, 0, NULL), 0, "a refused text wrote a row");
  cr_assert_eq(pool_int(p, "SELECT 41 + 1;", 0, NULL), 42);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  droptable(t, table);
}

/* ---- the statement cache ---- */

/* `SELECT $1 + k` with $1 = v, through the pool, must give v + k. */
static void add_ok(tctx *t, dbp_pool *p, int k, int v) {
  char sql[96], vb[16];
  snprintf(sql, sizeof sql, is_pg(t) ? "SELECT $1::int + %d" : "SELECT CAST(? AS SIGNED) + %d", k);
  snprintf(vb, sizeof vb, "%d", v);
  dbp_param pv = PARAM(vb);
  cr_assert_eq(pool_int(p, sql, 1, &pv), (int64_t)v + k, "%s with %d", sql, v);
}

/* The server's prepared statements on the pool's only connection. */
static int64_t prepared_count(dbp_pool *p) {
  return pool_int(p, "SELECT count(*) FROM pg_prepared_statements", 0, NULL);
}

/* One SQL text 1000 times, 300 distinct texts (more than the cache
 * holds), the first again: all right, and on PostgreSQL the connection
 * (max_size 1, so every statement is on it) holds at most 256 prepared
 * statements, and does keep them. */
QTEST(statement_cache_stays_bounded, 240) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  for (int i = 0; i < 1000; i++) add_ok(t, p, 1, i);
  for (int k = 0; k < 300; k++) add_ok(t, p, 1000 + k, k);
  for (int i = 0; i < 10; i++) add_ok(t, p, 1, i);
  if (is_pg(t)) {
    int64_t n = prepared_count(p);
    cr_assert_leq(n, 256, "%" PRId64 " prepared statements on one connection", n);
    cr_assert_geq(n, 200, "%" PRId64 " prepared statements left of 256 after 301 distinct texts",
                  n);
  }
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.broken, 0);
  cr_assert_eq(s.statements, 1310 + (is_pg(t) ? 1 : 0));
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* A session reset (after a stateful statement) drops the server's
 * prepared statements: the cache must not use them afterwards. Also after
 * a timeout, which may reset or replace the connection. */
QTEST(cached_statements_survive_a_reset, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  add_ok(t, p, 5, 37);
  stateful_exec(p, is_pg(t) ? "SET search_path TO public" : "SET SESSION wait_timeout = 999");
  add_ok(t, p, 5, 38);
  stateful_exec(p, is_pg(t) ? "DISCARD ALL" : "SET @z = 1");
  add_ok(t, p, 5, 39);
  char sql[128];
  sleep_sql(t, sql, sizeof sql, "30", uniq("cache_timeout"));
  dbp_result *r = (dbp_result *)&r;
  cr_assert_eq(dbp_pool_query(p, sql, 0, NULL, 200, &r, NULL), DBP_ETIMEDOUT);
  add_ok(t, p, 5, 40);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

typedef struct churn {
  tctx *t;
  dbp_pool *p;
  int id;
  fails *f;
} churn;

static void churn_one(churn *c, const char *sql, int v, int64_t want) {
  char vb[16];
  snprintf(vb, sizeof vb, "%d", v);
  dbp_param pv = PARAM(vb);
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(c->p, sql, 1, &pv, 60000, &r, &e);
  char ws[24];
  snprintf(ws, sizeof ws, "%" PRId64, want);
  if (rc != 0)
    note(c->f, "worker %d: %s: %s: %s", c->id, sql, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
  else if (!val_eq(r, 0, 0, ws))
    note(c->f, "worker %d: %s with %d gave %s", c->id, sql, v, dbp_result_value(r, 0, 0, NULL));
  dbp_result_free(r);
}

static int churn_first_use(void *arg, void **result) {
  (void)result;
  churn *c = arg;
  churn_one(c, is_pg(c->t) ? "SELECT $1::int * 3" : "SELECT CAST(? AS SIGNED) * 3", c->id,
            (int64_t)c->id * 3);
  return 0;
}

static int churn_run(void *arg, void **result) {
  (void)result;
  churn *c = arg;
  for (int i = 0; i < 40; i++) {
    int k = 5000 + c->id * 40 + i;
    char sql[96];
    snprintf(sql, sizeof sql, is_pg(c->t) ? "SELECT $1::int + %d" : "SELECT CAST(? AS SIGNED) + %d",
             k);
    churn_one(c, sql, i, (int64_t)i + k);
    churn_one(c, is_pg(c->t) ? "SELECT $1::int * 3" : "SELECT CAST(? AS SIGNED) * 3", i,
              (int64_t)i * 3);
  }
  return 0;
}

/* Many coroutines use a new statement at the same moment (each must not
 * prepare it under a name another just took), then churn through 640
 * distinct texts on one connection while a hot one keeps coming back. */
QTEST(statement_cache_under_concurrency, 240) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  fails f = {0};
  churn cs[32];
  dbp_co *cos[32];
  for (int i = 0; i < 32; i++) {
    cs[i] = (churn){t, p, i, &f};
    spawn(t, &cos[i], churn_first_use, &cs[i]);
  }
  join_all(cos, 32);
  expect_no_fails(&f);
  for (int i = 0; i < 16; i++) spawn(t, &cos[i], churn_run, &cs[i]);
  join_all(cos, 16);
  expect_no_fails(&f);
  if (is_pg(t)) {
    int64_t n = prepared_count(p);
    cr_assert_leq(n, 256, "%" PRId64 " prepared statements on one connection", n);
  }
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.broken, 0);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

typedef struct burst {
  tctx *t;
  dbp_pool *p;
  int id, done;
  fails *f;
} burst;

static int burst_run(void *arg, void **result) {
  (void)result;
  burst *b = arg;
  churn c = {b->t, b->p, b->id, b->f};
  for (int i = 0; i < 10; i++) churn_one(&c, "SELECT $1::int + 0", b->id * 10 + i, b->id * 10 + i);
  b->done = 1;
  return 0;
}

/* Statements pipelined several deep on one connection are stateless: the
 * session needs no reset afterwards, so the statements prepared on it
 * stay (a reset would drop every one of them). */
PG_TEST(pipelining_keeps_the_session_and_its_cache, 120) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 1});
  for (int k = 0; k < 20; k++) add_ok(t, p, k, 1);
  int64_t before = prepared_count(p);
  cr_assert_geq(before, 21, "%" PRId64 " prepared after 21 distinct texts", before);
  fails f = {0};
  size_t max_in_flight = 0;
  burst bs[16];
  dbp_co *cos[16];
  for (int i = 0; i < 16; i++) {
    bs[i] = (burst){t, p, i, 0, &f};
    spawn(t, &cos[i], burst_run, &bs[i]);
  }
  for (int done = 0; done < 16;) {
    dbp_pool_stats s = stats(p);
    if (s.in_flight > max_in_flight) max_in_flight = s.in_flight;
    done = 0;
    for (int i = 0; i < 16; i++) done += bs[i].done;
    dbp_yield(t->rt);
  }
  join_all(cos, 16);
  expect_no_fails(&f);
  int64_t after = prepared_count(p);
  cr_assert_eq(stats(p).opened, 1);
  cr_assert_geq(after, before,
                "%" PRId64 " prepared statements before 16 callers pipelined, %" PRId64
                " after: the session was reset",
                before, after);
  cr_assert_geq(max_in_flight, 4, "16 callers on one connection of depth 16: at most %zu in flight",
                max_in_flight);
  expect_quiet(t, p);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- each statement exactly as alone ---- */

typedef struct once {
  tctx *t;
  dbp_pool *p;
  const char *seq, *fn;
  int64_t vals[16 * 30];
  int nvals, calls, fn_calls;
  fails f;
} once;

typedef struct once_worker {
  once *o;
  int id;
} once_worker;

static int once_run(void *arg, void **result) {
  (void)result;
  once_worker *w = arg;
  once *o = w->o;
  char nextval[128], callfn[128];
  snprintf(nextval, sizeof nextval, "SELECT nextval('%s')", o->seq);
  snprintf(callfn, sizeof callfn, "SELECT %s($1::int)", o->fn);
  for (int i = 0; i < 30; i++) {
    dbp_result *r = NULL;
    dbp_dberr e = {0};
    char m[700], vb[16];
    int v = w->id * 100 + i;
    snprintf(vb, sizeof vb, "%d", v);
    dbp_param pv = PARAM(vb);
    int rc;
    switch (i % 3) {
      case 0:
        rc = dbp_pool_query(o->p, nextval, 0, NULL, 30000, &r, &e);
        o->calls++;
        if (rc == 0 && o->nvals < 16 * 30)
          o->vals[o->nvals++] = strtoll(dbp_result_value(r, 0, 0, NULL), NULL, 10);
        break;
      case 1:
        rc = dbp_pool_query(o->p, callfn, 1, &pv, 30000, &r, &e);
        o->fn_calls++;
        break;
      default:
        rc = dbp_pool_query(o->p, "SELECT 10 / ($1::int - $1::int)", 1, &pv, 30000, &r, &e);
        if (rc != DBP_EQUERY || strcmp(e.sqlstate, "22012") != 0)
          note(&o->f, "worker %d: division by zero gave %s: %s", w->id, dbp_err_name(rc),
               fmt_err(&e, m, sizeof m));
        dbp_result_free(r);
        continue;
    }
    if (rc != 0)
      note(&o->f, "worker %d, step %d: %s: %s", w->id, i, dbp_err_name(rc),
           fmt_err(&e, m, sizeof m));
    dbp_result_free(r);
  }
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Statements that only read, by their text, may still have effects: a
 * sequence's nextval (which no rollback takes back) and a function that
 * writes. Beside failing neighbours, each runs once: the sequence moves
 * once per call, and every write is there once. */
PG_TEST(statements_run_exactly_once, 120) {
  once o = {.t = t, .seq = uniq("seq"), .fn = uniq("fn")};
  const char *table = mktable(t, "once");
  char sql[400];
  snprintf(sql, sizeof sql, "DROP SEQUENCE IF EXISTS %s", o.seq);
  mon_exec(t, sql);
  snprintf(sql, sizeof sql, "CREATE SEQUENCE %s", o.seq);
  mon_exec(t, sql);
  snprintf(sql, sizeof sql,
           "CREATE OR REPLACE FUNCTION %s(x int) RETURNS int LANGUAGE sql AS "
           "'INSERT INTO %s (k, v) VALUES (x, 0) RETURNING k'",
           o.fn, table);
  mon_exec(t, sql);
  o.p = pool(t, (dbp_pool_options){.max_size = 2});
  once_worker ws[16];
  dbp_co *cos[16];
  for (int i = 0; i < 16; i++) {
    ws[i] = (once_worker){&o, i};
    spawn(t, &cos[i], once_run, &ws[i]);
  }
  join_all(cos, 16);
  expect_no_fails(&o.f);
  cr_assert_eq(o.nvals, o.calls);
  qsort(o.vals, (size_t)o.nvals, sizeof o.vals[0], cmp_i64);
  for (int i = 1; i < o.nvals; i++)
    cr_assert_neq(o.vals[i], o.vals[i - 1], "nextval gave %" PRId64 " twice", o.vals[i]);
  snprintf(sql, sizeof sql, "SELECT last_value FROM %s", o.seq);
  int64_t last = mon_int(t, sql, 0, NULL);
  cr_expect_eq(last, o.calls,
               "the sequence moved %" PRId64 " times for %d calls: statements ran again", last,
               o.calls);
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), o.fn_calls, "the function's rows");
  snprintf(sql, sizeof sql, "SELECT COUNT(DISTINCT k) FROM %s", table);
  cr_assert_eq(mon_int(t, sql, 0, NULL), o.fn_calls, "the function's rows, each once");
  expect_quiet(t, o.p);
  cr_assert_eq(dbp_pool_close(o.p, 10000), 0);
  snprintf(sql, sizeof sql, "DROP FUNCTION %s(int)", o.fn);
  mon_exec(t, sql);
  snprintf(sql, sizeof sql, "DROP SEQUENCE %s", o.seq);
  mon_exec(t, sql);
  droptable(t, table);
}

typedef struct xact {
  tctx *t;
  dbp_pool *p;
  int64_t ids[16 * 20];
  int nids;
  fails f;
} xact;

static int xact_run(void *arg, void **result) {
  (void)result;
  xact *x = arg;
  for (int i = 0; i < 20; i++) {
    dbp_result *r = NULL;
    dbp_dberr e = {0};
    char m[700];
    /* A statement of its own transaction has no id until it asks for one. */
    const char *sql = i % 2 ? "SELECT pg_current_xact_id_if_assigned() IS NULL, 0"
                            : "SELECT true, txid_current()";
    int rc = dbp_pool_query(x->p, sql, 0, NULL, 30000, &r, &e);
    if (rc != 0) {
      note(&x->f, "%s: %s: %s", sql, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
      continue;
    }
    if (!val_eq(r, 0, 0, "t"))
      note(&x->f, "a statement found a transaction id assigned before it began");
    if (i % 2 == 0 && x->nids < 16 * 20)
      x->ids[x->nids++] = strtoll(dbp_result_value(r, 0, 1, NULL), NULL, 10);
    dbp_result_free(r);
  }
  return 0;
}

/* Statements in flight together on one connection: read-only ones may
 * share a sync point, but what they share is only the transaction's start
 * (pool.h): no two get the same transaction id, and none finds one
 * assigned before it began. */
PG_TEST(each_statement_has_its_own_transaction, 120) {
  xact x = {.t = t};
  x.p = pool(t, (dbp_pool_options){.max_size = 1});
  /* With the connection open and idle, the 16 start in one loop turn and
   * are in flight on it together. */
  cr_assert_eq(pool_int(x.p, "SELECT 1", 0, NULL), 1);
  expect_quiet(t, x.p);
  dbp_co *cos[16];
  for (int i = 0; i < 16; i++) spawn(t, &cos[i], xact_run, &x);
  join_all(cos, 16);
  expect_no_fails(&x.f);
  cr_assert_eq(x.nids, 16 * 10);
  qsort(x.ids, (size_t)x.nids, sizeof x.ids[0], cmp_i64);
  int shared = 0;
  for (int i = 1; i < x.nids; i++) shared += x.ids[i] == x.ids[i - 1];
  cr_assert_eq(shared, 0, "%d statements shared a transaction with another", shared);
  expect_quiet(t, x.p);
  cr_assert_eq(dbp_pool_close(x.p, 10000), 0);
}

/* ---- sessions the server ends ---- */

typedef struct kill_load {
  tctx *t;
  dbp_pool *p;
  const char *marker;
  int ok, lost;
  fails f;
} kill_load;

typedef struct kill_worker {
  kill_load *k;
  int id;
} kill_worker;

static int kill_run(void *arg, void **result) {
  (void)result;
  kill_worker *w = arg;
  kill_load *k = w->k;
  char sql[160];
  snprintf(sql, sizeof sql,
           is_pg(k->t) ? "SELECT $1::int, pg_sleep(0.05), '%s'"
                       : "SELECT CAST(? AS SIGNED), SLEEP(0.05), '%s'",
           k->marker);
  for (int i = 0; i < 12; i++) {
    int v = w->id * 100 + i;
    char vb[16];
    snprintf(vb, sizeof vb, "%d", v);
    dbp_param pv = PARAM(vb);
    dbp_result *r = (dbp_result *)&r;
    dbp_dberr e = {0};
    char m[700];
    int rc = dbp_pool_query(k->p, sql, 1, &pv, 60000, &r, &e);
    if (rc == 0) {
      k->ok++;
      if (!val_eq(r, 0, 0, vb))
        note(&k->f, "worker %d: %d came back as %s", w->id, v, dbp_result_value(r, 0, 0, NULL));
      dbp_result_free(r);
    } else if (rc == DBP_ECONNLOST && e.code == DBP_ECONNLOST && e.retryable && r == NULL) {
      k->lost++;
    } else {
      note(&k->f, "worker %d: %s (retryable %d): %s", w->id, dbp_err_name(rc), e.retryable,
           fmt_err(&e, m, sizeof m));
    }
  }
  return 0;
}

static int kill_after(void *arg, void **result) {
  (void)result;
  kill_worker *w = arg;
  dbp_result *r = NULL;
  dbp_dberr e = {0};
  char m[700], vb[16];
  snprintf(vb, sizeof vb, "%d", w->id);
  dbp_param pv = PARAM(vb);
  int rc = dbp_pool_query(w->k->p, is_pg(w->k->t) ? "SELECT $1::int" : "SELECT CAST(? AS SIGNED)",
                          1, &pv, 30000, &r, &e);
  if (rc != 0)
    note(&w->k->f, "after the kills, worker %d: %s: %s", w->id, dbp_err_name(rc),
         fmt_err(&e, m, sizeof m));
  else if (!val_eq(r, 0, 0, vb))
    note(&w->k->f, "after the kills, worker %d got %s", w->id, dbp_result_value(r, 0, 0, NULL));
  else
    w->k->ok++;
  dbp_result_free(r);
  return 0;
}

/* The server ends the pool's sessions while statements are in flight on
 * them (twice): those fail with DBP_ECONNLOST, retryable; the rest and
 * everything later succeeds on new connections; nothing hangs. */
QTEST(killed_sessions_fail_only_their_statements, 180) {
  kill_load k = {.t = t, .marker = uniq("kill")};
  k.p = pool(t, (dbp_pool_options){.max_size = 2});
  kill_worker ws[24];
  dbp_co *cos[24];
  for (int i = 0; i < 24; i++) {
    ws[i] = (kill_worker){&k, i};
    spawn(t, &cos[i], kill_run, &ws[i]);
  }
  int64_t killed = 0;
  size_t max_in_flight = 0;
  for (int round = 0; round < 2; round++) {
    await_running(t, k.marker, 2);
    if (is_pg(t)) {
      for (int i = 0; i < 500 && stats(k.p).in_flight < 4; i++) dbp_sleep(t->rt, 1);
      if (stats(k.p).in_flight > max_in_flight) max_in_flight = stats(k.p).in_flight;
    }
    killed += kill_sessions(t, k.marker);
    dbp_sleep(t->rt, 300);
  }
  join_all(cos, 24);
  expect_no_fails(&k.f);
  cr_assert_geq(killed, 2);
  cr_assert_geq(k.lost, 2, "killed %" PRId64 " sessions, no call lost its connection", killed);
  cr_assert_eq(k.ok + k.lost, 24 * 12);
  /* Later calls, all at once, succeed on new connections. */
  k.ok = k.lost = 0;
  for (int i = 0; i < 24; i++) spawn(t, &cos[i], kill_after, &ws[i]);
  join_all(cos, 24);
  expect_no_fails(&k.f);
  cr_assert_eq(k.ok, 24, "%d of 24 calls after the kills failed", 24 - k.ok);
  dbp_pool_stats s = stats(k.p);
  cr_assert_geq(s.broken, 2, "broken %" PRIu64, s.broken);
  cr_assert_geq(s.opened, 3);
  cr_assert_eq(s.statements, 24 * 13);
  cr_assert_eq(pool_int(k.p, "SELECT 40 + 2", 0, NULL), 42);
  expect_quiet(t, k.p);
  cr_assert_eq(dbp_pool_close(k.p, 10000), 0);
  if (is_pg(t)) expect_sessions(t, 0);
  /* 24 callers on 2 connections of depth 16: all of them in flight. */
  if (is_pg(t))
    cr_assert_geq(max_in_flight, 4, "at most %zu statements in flight when the sessions ended",
                  max_in_flight);
}

/* ---- closing the pool with statements in flight ---- */

typedef struct close_load {
  tctx *t;
  dbp_pool *p;
  const char *marker;
  bool closing;
  int ok, closed, late_rc;
  fails f;
} close_load;

typedef struct close_worker {
  close_load *c;
  int id;
} close_worker;

static int close_run(void *arg, void **result) {
  (void)result;
  close_worker *w = arg;
  close_load *c = w->c;
  char sql[160], vb[16];
  snprintf(sql, sizeof sql,
           is_pg(c->t) ? "SELECT $1::int, pg_sleep(0.3), '%s'"
                       : "SELECT CAST(? AS SIGNED), SLEEP(0.3), '%s'",
           c->marker);
  snprintf(vb, sizeof vb, "%d", w->id);
  dbp_param pv = PARAM(vb);
  dbp_result *r = (dbp_result *)&r;
  dbp_dberr e = {0};
  char m[700];
  int rc = dbp_pool_query(c->p, sql, 1, &pv, 60000, &r, &e);
  if (rc == 0) {
    c->ok++;
    if (!val_eq(r, 0, 0, vb))
      note(&c->f, "worker %d got %s", w->id, dbp_result_value(r, 0, 0, NULL));
    dbp_result_free(r);
  } else if (rc == DBP_EPOOLCLOSED && r == NULL) {
    c->closed++;
  } else {
    note(&c->f, "worker %d: %s: %s", w->id, dbp_err_name(rc), fmt_err(&e, m, sizeof m));
  }
  return 0;
}

/* Waits until close has begun, then asks: the pool refuses. */
static int close_late(void *arg, void **result) {
  (void)result;
  close_load *c = arg;
  while (!c->closing) dbp_sleep(c->t->rt, 1);
  dbp_result *r = (dbp_result *)&r;
  c->late_rc = dbp_pool_query(c->p, "SELECT 1", 0, NULL, 10000, &r, NULL);
  if (r != NULL) note(&c->f, "a refused call left *out set");
  c->late_rc = c->late_rc == 0 ? 1 : c->late_rc;
  return 0;
}

static void close_with_load(tctx *t, int64_t close_timeout) {
  close_load c = {.t = t, .marker = uniq("close"), .late_rc = 1};
  c.p = pool(t, (dbp_pool_options){.max_size = 2});
  close_worker ws[20];
  dbp_co *cos[21];
  for (int i = 0; i < 20; i++) {
    ws[i] = (close_worker){&c, i};
    spawn(t, &cos[i], close_run, &ws[i]);
  }
  /* After a close that timed out the pool may only see releases: the late
   * caller asks only while a close waits. */
  size_t n = close_timeout > 0 ? 21 : 20;
  if (close_timeout > 0) spawn(t, &cos[20], close_late, &c);
  await_running(t, c.marker, 2);
  c.closing = true;
  int rc = dbp_pool_close(c.p, close_timeout);
  if (close_timeout > 0)
    cr_assert_eq(rc, 0, "close with statements in flight: %s", dbp_err_name(rc));
  else
    cr_assert_eq(rc, DBP_ETIMEDOUT, "close(0) with statements in flight: %s", dbp_err_name(rc));
  join_all(cos, n);
  expect_no_fails(&c.f);
  cr_assert_eq(c.ok + c.closed, 20);
  cr_assert_geq(c.ok, 2, "the statements in flight were answered");
  if (close_timeout > 0)
    cr_assert_eq(c.late_rc, DBP_EPOOLCLOSED, "a call after close began: %s",
                 dbp_err_name(c.late_rc));
  if (is_pg(t)) expect_sessions(t, 0);
  expect_running(t, c.marker, 0, "after the close");
}

QTEST(close_waits_for_statements_in_flight, 120) {
  close_with_load(t, 30000);
}

/* close(0) returns at once; the pool frees itself once the statements in
 * flight are done (the sanitizer build sees any leak or use after free). */
QTEST(close_without_waiting_frees_the_pool_later, 120) {
  close_with_load(t, 0);
}

/* A statement abandoned on its timeout does not hold up the close. */
QTEST(close_after_an_abandoned_statement, 60) {
  dbp_pool *p = pool(t, (dbp_pool_options){.max_size = 2});
  const char *marker = uniq("abandon");
  char sql[160];
  sleep_sql(t, sql, sizeof sql, "30", marker);
  dbp_result *r = (dbp_result *)&r;
  cr_assert_eq(dbp_pool_query(p, sql, 0, NULL, 200, &r, NULL), DBP_ETIMEDOUT);
  uint64_t t0 = dbp_now(t->rt);
  int rc = dbp_pool_close(p, 20000);
  uint64_t took = dbp_now(t->rt) - t0;
  cr_assert_eq(rc, 0, "close after an abandoned 30 s sleep: %s", dbp_err_name(rc));
  cr_assert_lt(took, 20000);
  expect_running(t, marker, 0, "after the close");
  if (is_pg(t)) expect_sessions(t, 0);
}
