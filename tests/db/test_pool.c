/* The connection pool against real PostgreSQL and MariaDB servers.
 *
 * Every behaviour runs on both databases: a test body is a coroutine that
 * gets a context with the pool's DSN and an independent monitor connection,
 * used to count the pool's sessions on the server side. PostgreSQL sessions
 * are told apart by an application_name unique to the test process; on
 * MariaDB, which has no such tag, the count is taken over processlist rows
 * of our user and database whose ids the pool handed out (every connection
 * the pool opens reaches the test, which the tests check against
 * stats.opened), so tests running side by side never see each other.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpipe.h"
#include "dbtest.h"

#define MAX_IDS 64

typedef struct tctx {
  dbp_db_kind kind;
  dbp_rt *rt;
  char dsn[512]; /* for the pool: PostgreSQL's carries the application_name */
  char app[64];
  dbp_conn *mon; /* the independent monitor connection */
  int64_t ids[MAX_IDS];
  size_t nids;
} tctx;

typedef void (*body_fn)(tctx *t);

typedef struct run_arg {
  tctx *t;
  body_fn body;
  const char *base_dsn;
} run_arg;

/* ---- helpers ---- */

static bool is_pg(const tctx *t) {
  return t->kind == DBP_DB_PG;
}

/* Appends a query parameter to a DSN URL. */
static void dsn_with(char *buf, size_t len, const char *dsn, const char *kv) {
  int n = snprintf(buf, len, "%s%c%s", dsn, strchr(dsn, '?') ? '&' : '?', kv);
  cr_assert(n > 0 && (size_t)n < len, "DSN too long");
}

/* Runs a one-value query and parses the value as an integer. */
static int q_int(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, int64_t *out) {
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
static int64_t sessions(tctx *t) {
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
static void expect_sessions(tctx *t, int64_t want) {
  int64_t n = -1;
  for (int i = 0; i < 1000; i++) {
    n = sessions(t);
    if (n == want) return;
    dbp_sleep(t->rt, 10);
  }
  cr_assert_fail("the server lists %" PRId64 " sessions, expected %" PRId64, n, want);
}

/* Waits (up to ten seconds) until the pool has closed `n` connections. */
static void expect_closed(tctx *t, const dbp_pool *p, uint64_t n) {
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
static void kill_backend(tctx *t, int64_t id) {
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

static void ping(dbp_conn *c) {
  int64_t v = 0;
  cr_assert_eq(q_int(c, "SELECT 1", 0, NULL, &v), 0);
  cr_assert_eq(v, 1);
}

static dbp_pool *mkpool(tctx *t, const dbp_pool_options *o) {
  dbp_pool *p = NULL;
  int rc = dbp_pool_new(t->rt, t->dsn, o, &p);
  cr_assert_eq(rc, 0, "dbp_pool_new: %s", dbp_err_name(rc));
  return p;
}

static dbp_conn *must_acquire(tctx *t, dbp_pool *p) {
  dbp_conn *c = NULL;
  dbp_dberr e;
  int rc = dbp_pool_acquire(p, 30000, &c, &e);
  cr_assert_eq(rc, 0, "acquire: %s (%s)", dbp_err_name(rc), e.message);
  cr_assert_not_null(c);
  remember(t, c);
  return c;
}

static dbp_pool_stats stats(const dbp_pool *p) {
  dbp_pool_stats s;
  dbp_pool_get_stats(p, &s);
  return s;
}

/* Yields until `cond(p)` holds, failing after many rounds. */
static void yield_until_waiting(tctx *t, dbp_pool *p, size_t n) {
  for (int i = 0; i < 10000 && stats(p).waiting < n; i++) dbp_yield(t->rt);
  cr_assert_eq(stats(p).waiting, n);
}

static void spawn(tctx *t, dbp_co **co, dbp_co_fn fn, void *arg) {
  int rc = dbp_spawn(t->rt, co, fn, arg, NULL);
  cr_assert_eq(rc, 0, "spawn: %s", dbp_err_name(rc));
}

/* Joins coroutines that each return 0. */
static void join_all(dbp_co **cos, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = dbp_join(cos[i], NULL);
    cr_assert_eq(rc, 0, "coroutine %zu: %s", i, dbp_err_name(rc));
  }
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

static void run_test(dbp_db_kind kind, const char *name, body_fn body) {
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

#define POOL_TEST(name, secs)                   \
  static void name##_body(tctx *t);             \
  Test(pool_pg, name, .timeout = secs) {        \
    run_test(DBP_DB_PG, #name, name##_body);    \
  }                                             \
  Test(pool_my, name, .timeout = secs) {        \
    run_test(DBP_DB_MYSQL, #name, name##_body); \
  }                                             \
  static void name##_body(tctx *t)

/* ---- bounds ---- */

typedef struct burst_arg {
  tctx *t;
  dbp_pool *p;
  int failures;
  int done;
} burst_arg;

static int burst_worker(void *arg, void **result) {
  (void)result;
  burst_arg *b = arg;
  dbp_conn *c = must_acquire(b->t, b->p);
  const char *sql = is_pg(b->t) ? "SELECT pg_sleep(0.05)" : "SELECT SLEEP(0.05)";
  if (dbp_exec(c, sql, 0, NULL, 10000, NULL) < 0) b->failures++;
  dbp_pool_release(b->p, c);
  b->done++;
  return 0;
}

POOL_TEST(never_exceeds_max_size, 120) {
  dbp_pool_options o = {.max_size = 3};
  dbp_pool *p = mkpool(t, &o);
  burst_arg b = {t, p, 0, 0};
  dbp_co *cos[20];
  for (size_t i = 0; i < 20; i++) spawn(t, &cos[i], burst_worker, &b);

  int samples = 0;
  int64_t seen = 0;
  while (b.done < 20) {
    int64_t n = sessions(t);
    dbp_pool_stats s = stats(p);
    cr_assert_leq(n, 3, "the server saw %" PRId64 " sessions", n);
    cr_assert_leq(s.in_use, 3);
    cr_assert_leq(s.total, 3);
    if (n > seen) seen = n;
    samples++;
    dbp_sleep(t->rt, 5);
  }
  join_all(cos, 20);
  cr_assert_eq(b.failures, 0);
  cr_assert_gt(samples, 0);
  cr_assert_gt(seen, 0);

  dbp_pool_stats s = stats(p);
  cr_assert_leq(s.in_use_peak, 3);
  cr_assert_leq(s.total_peak, 3);
  cr_assert_eq(s.acquired, 20);
  cr_assert_eq(s.opened, 3, "20 at once against max 3 open exactly 3");
  cr_assert_eq(s.opened, t->nids, "every opened connection was handed out");
  cr_assert_eq(s.in_use, 0);
  cr_assert_eq(s.idle, 3);
  cr_assert_eq(sessions(t), 3);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  expect_sessions(t, 0);
}

/* ---- fairness ---- */

typedef struct fifo_arg {
  tctx *t;
  dbp_pool *p;
  int order[8];
  int n;
} fifo_arg;

typedef struct fifo_worker {
  fifo_arg *f;
  int id;
} fifo_worker;

static int fifo_take(void *arg, void **result) {
  (void)result;
  fifo_worker *w = arg;
  dbp_conn *c = must_acquire(w->f->t, w->f->p);
  w->f->order[w->f->n++] = w->id;
  dbp_yield(w->f->t->rt); /* give later arrivals every chance to barge */
  dbp_pool_release(w->f->p, c);
  return 0;
}

POOL_TEST(waiters_are_served_in_arrival_order, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  fifo_arg f = {.t = t, .p = p};
  fifo_worker ws[6];
  dbp_co *cos[6];

  dbp_conn *held = must_acquire(t, p);
  for (int i = 0; i < 5; i++) {
    ws[i] = (fifo_worker){&f, i};
    spawn(t, &cos[i], fifo_take, &ws[i]);
    yield_until_waiting(t, p, (size_t)i + 1);
  }
  dbp_pool_release(p, held);
  /* A newcomer after the release queues behind everyone. */
  ws[5] = (fifo_worker){&f, 5};
  spawn(t, &cos[5], fifo_take, &ws[5]);
  dbp_conn *c = NULL;
  cr_assert_eq(dbp_pool_acquire(p, 0, &c, NULL), DBP_ETIMEDOUT, "no barging past the queue");

  join_all(cos, 6);
  cr_assert_eq(f.n, 6);
  for (int i = 0; i < 6; i++)
    cr_assert_eq(f.order[i], i, "position %d went to waiter %d", i, f.order[i]);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.acquired, 7);
  cr_assert_eq(s.timeouts, 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- timeouts and cancellation ---- */

POOL_TEST(acquire_times_out_without_leaking, 60) {
  dbp_pool_options o = {.max_size = 2};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *a = must_acquire(t, p);
  dbp_conn *b = must_acquire(t, p);

  dbp_conn *c = (dbp_conn *)1;
  dbp_dberr e;
  cr_assert_eq(dbp_pool_acquire(p, 100, &c, &e), DBP_ETIMEDOUT);
  cr_assert_null(c);
  cr_assert_eq(e.code, DBP_ETIMEDOUT);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.timeouts, 1);
  cr_assert_eq(s.waiting, 0);
  cr_assert_eq(s.total, 2);
  cr_assert_geq(s.wait_ms_total, 100);

  dbp_pool_release(p, a);
  dbp_pool_release(p, b);
  s = stats(p);
  cr_assert_eq(s.in_use, 0);
  cr_assert_eq(s.idle, 2);
  cr_assert_leq(s.total, 2);
  cr_assert_eq(s.opened, t->nids);
  cr_assert_eq(sessions(t), (int64_t)s.total);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  expect_sessions(t, 0);
}

typedef struct race_arg {
  tctx *t;
  dbp_pool *p;
  int64_t ms;
  int got;
  int timed_out;
} race_arg;

static int race_waiter(void *arg, void **result) {
  (void)result;
  race_arg *r = arg;
  dbp_conn *c = NULL;
  int rc = dbp_pool_acquire(r->p, r->ms, &c, NULL);
  if (rc == 0) {
    r->got++;
    dbp_pool_release(r->p, c);
  } else if (rc == DBP_ETIMEDOUT) {
    r->timed_out++;
  }
  return rc == DBP_ETIMEDOUT ? 0 : rc;
}

/* A release due at the very moment a waiter's timeout expires: whichever
 * wins, the connection ends up back in the pool. The holder spins on yields
 * until the loop clock reaches (about) the waiter's deadline, so that the
 * release often lands in the loop turn whose timers just expired the wait. */
POOL_TEST(release_racing_a_timeout_loses_nothing, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  race_arg r = {.t = t, .p = p};
  for (int i = 0; i < 20; i++) {
    r.ms = 10;
    dbp_conn *held = must_acquire(t, p);
    dbp_co *co;
    uint64_t due = dbp_now(t->rt) + (uint64_t)r.ms + (uint64_t)(i % 4);
    spawn(t, &co, race_waiter, &r);
    yield_until_waiting(t, p, 1);
    while (dbp_now(t->rt) < due) dbp_yield(t->rt);
    dbp_pool_release(p, held);
    cr_assert_eq(dbp_join(co, NULL), 0);
    dbp_pool_stats s = stats(p);
    cr_assert_eq(s.in_use, 0);
    cr_assert_eq(s.idle, 1);
    cr_assert_eq(s.waiting, 0);
  }
  cr_assert_eq(r.got + r.timed_out, 20);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.timeouts, (uint64_t)r.timed_out);
  cr_assert_eq(sessions(t), 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

typedef struct cancel_arg {
  tctx *t;
  dbp_pool *p;
  int rc;
} cancel_arg;

static int cancel_waiter(void *arg, void **result) {
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

POOL_TEST(cancelled_acquire_does_not_leak, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *held = must_acquire(t, p);

  /* Cancelled while queued. */
  cancel_arg a = {t, p, 1};
  dbp_co *co;
  spawn(t, &co, cancel_waiter, &a);
  yield_until_waiting(t, p, 1);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(a.rc, DBP_ECANCELED);
  cr_assert_eq(stats(p).waiting, 0);

  /* Cancelled in the same turn as the connection is handed to it. */
  a.rc = 1;
  spawn(t, &co, cancel_waiter, &a);
  yield_until_waiting(t, p, 1);
  dbp_pool_release(p, held);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert(a.rc == 0 || a.rc == DBP_ECANCELED, "rc %s", dbp_err_name(a.rc));

  /* Cancelled first, handed the connection before it ran: it must give the
   * connection back. */
  held = must_acquire(t, p);
  a.rc = 1;
  spawn(t, &co, cancel_waiter, &a);
  yield_until_waiting(t, p, 1);
  dbp_cancel(co);
  dbp_pool_release(p, held);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(a.rc, DBP_ECANCELED);

  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.in_use, 0);
  cr_assert_eq(s.idle, 1);
  cr_assert_eq(s.total, 1);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(sessions(t), 1);
  dbp_conn *c = must_acquire(t, p);
  ping(c);
  dbp_pool_release(p, c);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  expect_sessions(t, 0);
}

/* ---- broken connections ---- */

POOL_TEST(dead_idle_connection_is_replaced, 60) {
  dbp_pool_options o = {.max_size = 2, .check_after_ms = DBP_POOL_NOW};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t first = dbp_conn_backend_id(c);
  dbp_pool_release(p, c);
  kill_backend(t, first);

  c = must_acquire(t, p);
  cr_assert_neq(dbp_conn_backend_id(c), first, "the dead session was handed out");
  ping(c);
  dbp_pool_release(p, c);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.broken, 1);
  cr_assert_eq(s.closed, 1);
  cr_assert_eq(s.opened, 2);
  cr_assert_eq(s.total, 1);
  cr_assert_eq(sessions(t), 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

POOL_TEST(connection_broken_in_use_is_discarded, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t first = dbp_conn_backend_id(c);

  /* Two queue behind it. The first is cancelled just before the release
   * hands it the right to open a replacement, so it must pass that on to
   * the second. */
  cancel_arg a1 = {t, p, 1}, a2 = {t, p, 1};
  dbp_co *co1, *co2;
  spawn(t, &co1, cancel_waiter, &a1);
  yield_until_waiting(t, p, 1);
  spawn(t, &co2, cancel_waiter, &a2);
  yield_until_waiting(t, p, 2);

  kill_backend(t, first);
  int rc = dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL);
  cr_assert_lt(rc, 0, "a query on a killed session succeeded");
  cr_assert(dbp_conn_is_broken(c));
  dbp_cancel(co1);
  dbp_pool_release(p, c);
  cr_assert_eq(dbp_join(co1, NULL), 0);
  cr_assert_eq(dbp_join(co2, NULL), 0);
  cr_assert_eq(a1.rc, DBP_ECANCELED);
  cr_assert_eq(a2.rc, 0, "the second waiter got %s", dbp_err_name(a2.rc));

  c = must_acquire(t, p);
  cr_assert_neq(dbp_conn_backend_id(c), first);
  ping(c);
  dbp_pool_release(p, c);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.broken, 1);
  cr_assert_eq(s.closed, 1);
  cr_assert_eq(s.opened, 2);
  cr_assert_eq(s.total, 1);
  cr_assert_eq(sessions(t), 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- reset on release ---- */

POOL_TEST(release_rolls_back_an_open_transaction, 60) {
  char table[64], sql[256];
  snprintf(table, sizeof table, "dbp_pool_reset_%ld", (long)getpid());
  snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (x int)%s", table,
           is_pg(t) ? "" : " ENGINE=InnoDB");
  cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "DELETE FROM %s", table);
  cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 10000, NULL), 0);

  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t id = dbp_conn_backend_id(c);
  cr_assert_eq(dbp_exec(c, is_pg(t) ? "BEGIN" : "START TRANSACTION", 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (42)", table);
  cr_assert_eq(dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  cr_assert(dbp_conn_in_transaction(c));
  dbp_pool_release(p, c);

  c = must_acquire(t, p);
  cr_assert_eq(dbp_conn_backend_id(c), id, "the connection was reset and kept");
  cr_assert_not(dbp_conn_in_transaction(c));
  int64_t n = -1;
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
  cr_assert_eq(q_int(c, sql, 0, NULL, &n), 0);
  cr_assert_eq(n, 0, "the uncommitted row survived the release");
  cr_assert_eq(q_int(t->mon, sql, 0, NULL, &n), 0);
  cr_assert_eq(n, 0);
  dbp_pool_release(p, c);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.closed, 0);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);

  snprintf(sql, sizeof sql, "DROP TABLE %s", table);
  cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 10000, NULL), 0);
}

typedef struct handoff_arg {
  dbp_pool *p;
  dbp_conn *c;
} handoff_arg;

static int release_elsewhere(void *arg, void **result) {
  (void)result;
  handoff_arg *h = arg;
  dbp_pool_release(h->p, h->c);
  return 0;
}

POOL_TEST(release_from_another_coroutine, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  cr_assert_eq(dbp_exec(c, is_pg(t) ? "BEGIN" : "START TRANSACTION", 0, NULL, 10000, NULL), 0);
  handoff_arg h = {p, c};
  dbp_co *co;
  spawn(t, &co, release_elsewhere, &h);
  cr_assert_eq(dbp_join(co, NULL), 0);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.in_use, 0);
  cr_assert_eq(s.idle, 1);
  dbp_conn *again = must_acquire(t, p);
  cr_assert_eq(again, c);
  cr_assert_not(dbp_conn_in_transaction(again));
  dbp_pool_release(p, again);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* A coroutine cancelled after its last wait still releases cleanly: the
 * reset's ROLLBACK must not eat the cancellation it has yet to see. */
POOL_TEST(release_keeps_a_pending_cancellation, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t id = dbp_conn_backend_id(c);
  cr_assert_eq(dbp_exec(c, is_pg(t) ? "BEGIN" : "START TRANSACTION", 0, NULL, 10000, NULL), 0);
  cr_assert(dbp_conn_in_transaction(c));
  dbp_cancel(dbp_current(t->rt));
  cr_assert(dbp_cancel_pending(t->rt));
  dbp_pool_release(p, c);
  cr_assert(dbp_cancel_pending(t->rt), "the release consumed the cancellation");
  cr_assert_eq(dbp_sleep(t->rt, 10000), DBP_ECANCELED);

  c = must_acquire(t, p);
  cr_assert_eq(dbp_conn_backend_id(c), id, "the connection was reset and kept");
  cr_assert_not(dbp_conn_in_transaction(c));
  ping(c);
  dbp_pool_release(p, c);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.closed, 0);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- lifetime and idle timeout ---- */

POOL_TEST(max_lifetime_closes_connections, 60) {
  dbp_pool_options o = {.max_size = 2, .max_lifetime_ms = 200};
  dbp_pool *p = mkpool(t, &o);

  /* Idle past its lifetime: the reaper closes it. */
  dbp_conn *c = must_acquire(t, p);
  dbp_pool_release(p, c);
  cr_assert_eq(sessions(t), 1);
  dbp_sleep(t->rt, 300);
  expect_closed(t, p, 1);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.total, 0);
  expect_sessions(t, 0);

  /* In use past its lifetime: closed on release. */
  c = must_acquire(t, p);
  dbp_sleep(t->rt, 300);
  ping(c);
  dbp_pool_release(p, c);
  s = stats(p);
  cr_assert_eq(s.closed, 2);
  cr_assert_eq(s.broken, 0);
  cr_assert_eq(s.total, 0);
  cr_assert_eq(s.opened, 2);
  expect_sessions(t, 0);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

POOL_TEST(idle_timeout_closes_surplus_connections, 60) {
  dbp_pool_options o = {.min_size = 1, .max_size = 3, .idle_timeout_ms = 150};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *cs[3];
  for (int i = 0; i < 3; i++) cs[i] = must_acquire(t, p);
  for (int i = 0; i < 3; i++) dbp_pool_release(p, cs[i]);
  cr_assert_eq(sessions(t), 3);
  dbp_sleep(t->rt, 300);
  expect_closed(t, p, 2);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.total, 1, "min_size stays open");
  cr_assert_eq(s.idle, 1);
  expect_sessions(t, 1);
  dbp_conn *c = must_acquire(t, p);
  ping(c);
  dbp_pool_release(p, c);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  expect_sessions(t, 0);
}

/* ---- close ---- */

typedef struct closer_arg {
  dbp_pool *p;
  int rc;
} closer_arg;

static int closer(void *arg, void **result) {
  (void)result;
  closer_arg *c = arg;
  c->rc = dbp_pool_close(c->p, DBP_FOREVER);
  return 0;
}

POOL_TEST(close_fails_pending_acquires, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *held = must_acquire(t, p);
  cancel_arg ws[3];
  dbp_co *cos[3];
  for (int i = 0; i < 3; i++) {
    ws[i] = (cancel_arg){t, p, 1};
    spawn(t, &cos[i], cancel_waiter, &ws[i]);
    yield_until_waiting(t, p, (size_t)i + 1);
  }
  closer_arg ca = {p, 1};
  dbp_co *cl;
  spawn(t, &cl, closer, &ca);
  join_all(cos, 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(ws[i].rc, DBP_EPOOLCLOSED, "waiter %d: %s", i, dbp_err_name(ws[i].rc));
  /* The close waits for the connection still in use. */
  cr_assert_not(dbp_co_done(cl));
  ping(held);
  dbp_pool_release(p, held);
  cr_assert_eq(dbp_join(cl, NULL), 0);
  cr_assert_eq(ca.rc, 0);
  expect_sessions(t, 0);
}

POOL_TEST(close_timing_out_frees_on_last_release, 60) {
  dbp_pool_options o = {.max_size = 2};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *a = must_acquire(t, p);
  dbp_conn *b = must_acquire(t, p);
  dbp_pool_release(p, b);
  cr_assert_eq(dbp_pool_close(p, 50), DBP_ETIMEDOUT);
  expect_sessions(t, 1); /* the idle connection is closed, the busy one kept */
  ping(a);
  dbp_pool_release(p, a); /* frees the pool */
  expect_sessions(t, 0);
}

/* ---- connect failures ---- */

typedef struct fail_arg {
  dbp_pool *p;
  int rc;
  dbp_dberr e;
} fail_arg;

static int fail_worker(void *arg, void **result) {
  (void)result;
  fail_arg *f = arg;
  dbp_conn *c = NULL;
  f->rc = dbp_pool_acquire(f->p, 30000, &c, &f->e);
  if (c) dbp_pool_release(f->p, c);
  return 0;
}

POOL_TEST(connect_failure_reaches_each_waiter, 60) {
  /* Port 1 on loopback: nobody listens there. */
  snprintf(t->dsn, sizeof t->dsn, "%s://dbpipe:dbpipe@127.0.0.1:1/shop",
           is_pg(t) ? "postgresql" : "mysql");
  dbp_pool_options o = {.max_size = 1, .connect_timeout_ms = 5000};
  dbp_pool *p = mkpool(t, &o);
  fail_arg fs[3];
  dbp_co *cos[3];
  for (int i = 0; i < 3; i++) {
    memset(&fs[i], 0, sizeof fs[i]);
    fs[i].p = p;
    spawn(t, &cos[i], fail_worker, &fs[i]);
  }
  join_all(cos, 3);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(fs[i].rc, DBP_ECONNECT, "worker %d: %s", i, dbp_err_name(fs[i].rc));
    cr_assert_eq(fs[i].e.code, DBP_ECONNECT);
    cr_assert_neq(fs[i].e.message[0], '\0');
  }
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.total, 0);
  cr_assert_eq(s.opening, 0);
  cr_assert_eq(s.opened, 0);
  cr_assert_eq(s.acquired, 0);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- load ---- */

typedef struct load_arg {
  tctx *t;
  dbp_pool *p;
  int base;
  int ok;
  int bad;
} load_arg;

static int load_worker(void *arg, void **result) {
  (void)result;
  load_arg *l = arg;
  const char *sql = is_pg(l->t) ? "SELECT $1::int * 2 + 1" : "SELECT CAST(? AS SIGNED) * 2 + 1";
  for (int i = 0; i < 100; i++) {
    dbp_conn *c = NULL;
    dbp_dberr e;
    int rc = dbp_pool_acquire(l->p, 60000, &c, &e);
    if (rc < 0) {
      l->bad++;
      continue;
    }
    char num[32];
    int v = l->base * 1000 + i;
    snprintf(num, sizeof num, "%d", v);
    dbp_param prm = {num, strlen(num)};
    int64_t got = 0;
    rc = q_int(c, sql, 1, &prm, &got);
    if (rc == 0 && got == (int64_t)v * 2 + 1)
      l->ok++;
    else
      l->bad++;
    dbp_pool_release(l->p, c);
  }
  return 0;
}

POOL_TEST(ten_thousand_queries_from_a_hundred_coroutines, 300) {
  dbp_pool_options o = {.max_size = 4};
  dbp_pool *p = mkpool(t, &o);
  static load_arg ls[100];
  static dbp_co *cos[100];
  for (int i = 0; i < 100; i++) {
    ls[i] = (load_arg){t, p, i, 0, 0};
    spawn(t, &cos[i], load_worker, &ls[i]);
  }
  join_all(cos, 100);
  int ok = 0, bad = 0;
  for (int i = 0; i < 100; i++) {
    ok += ls[i].ok;
    bad += ls[i].bad;
  }
  cr_assert_eq(bad, 0);
  cr_assert_eq(ok, 10000);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.acquired, 10000);
  cr_assert_leq(s.total_peak, 4);
  cr_assert_eq(s.in_use, 0);
  cr_assert_eq(s.closed, 0);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- the session a released connection hands on ---- */

/* One piece of session state: `set` changes it, `get` reads it as one
 * value ("ERROR" when the statement fails, as EXECUTE of a statement that
 * is no longer prepared does). */
typedef struct probe {
  char set[160];
  char get[200];
} probe;

/* The session state a user can leave behind on each database. */
static size_t session_probes(tctx *t, probe *pr) {
  long pid = (long)getpid();
  size_t n = 0;
  if (is_pg(t)) {
    const char *const pg[][2] = {
        {"SELECT set_config('search_path', 'pg_catalog, public', false)",
         "SELECT current_setting('search_path')"},
        {"SET TIME ZONE 'Pacific/Chatham'", "SELECT current_setting('TimeZone')"},
        {"CREATE TEMP TABLE dbp_reset_t (a int)", "SELECT count(*) FROM dbp_reset_t"},
        {"PREPARE dbp_reset_s AS SELECT 7", "EXECUTE dbp_reset_s"},
        {"SELECT pg_advisory_lock(%ld)",
         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"},
        {"LISTEN dbp_reset_c", "SELECT count(*) FROM pg_listening_channels()"},
    };
    for (size_t i = 0; i < sizeof pg / sizeof pg[0]; i++, n++) {
      snprintf(pr[n].set, sizeof pr[n].set, pg[i][0], pid);
      snprintf(pr[n].get, sizeof pr[n].get, "%s", pg[i][1]);
    }
  } else {
    const char *const my[][2] = {
        {"SET time_zone = '+05:30'", "SELECT @@session.time_zone"},
        {"SET @dbp_reset_v = 42", "SELECT COALESCE(@dbp_reset_v, 'unset')"},
        {"SET SESSION sql_mode = 'ANSI_QUOTES'", "SELECT @@session.sql_mode"},
        {"CREATE TEMPORARY TABLE dbp_reset_t_%ld (a int)", "SELECT COUNT(*) FROM dbp_reset_t_%ld"},
        {"PREPARE dbp_reset_s FROM 'SELECT 7'", "EXECUTE dbp_reset_s"},
    };
    for (size_t i = 0; i < sizeof my / sizeof my[0]; i++, n++) {
      snprintf(pr[n].set, sizeof pr[n].set, my[i][0], pid);
      snprintf(pr[n].get, sizeof pr[n].get, my[i][1], pid);
    }
  }
  return n;
}

/* Reads a probe's value into buf: the first column of the first row, or
 * "ERROR" when the server refused the statement. */
static void probe_get(dbp_conn *c, const char *sql, char *buf, size_t len) {
  int rc = dbp_query(c, sql, 0, NULL, 10000);
  if (rc == DBP_EQUERY) {
    snprintf(buf, len, "ERROR");
    return;
  }
  cr_assert_eq(rc, 0, "%s: %s", sql, dbp_conn_error(c)->message);
  dbp_row row;
  rc = dbp_fetch(c, &row);
  cr_assert_eq(rc, 1, "%s: %s", sql, dbp_err_name(rc));
  snprintf(buf, len, "%.*s", (int)row.lens[0], row.vals[0] ? row.vals[0] : "NULL");
  while ((rc = dbp_fetch(c, &row)) > 0) {
  }
  cr_assert_eq(rc, 0);
}

/* Changes every piece of session state, gives the connection back and
 * takes it again (the same session: max_size 1), then checks each piece
 * is back to what a fresh session has, or, with keep_session, still
 * changed. */
static void session_cycle(tctx *t, bool keep) {
  probe pr[8];
  size_t n = session_probes(t, pr);
  char before[8][128], changed[8][128], after[128];
  dbp_pool_options o = {.max_size = 1, .keep_session = keep};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t id = dbp_conn_backend_id(c);
  for (size_t i = 0; i < n; i++) {
    probe_get(c, pr[i].get, before[i], sizeof before[i]);
    int rc = dbp_exec(c, pr[i].set, 0, NULL, 10000, NULL);
    cr_assert_eq(rc, 0, "%s: %s", pr[i].set, dbp_conn_error(c)->message);
    probe_get(c, pr[i].get, changed[i], sizeof changed[i]);
    cr_assert_str_neq(before[i], changed[i], "'%s' changed nothing", pr[i].set);
  }
  dbp_pool_release(p, c);
  c = must_acquire(t, p);
  cr_assert_eq(dbp_conn_backend_id(c), id, "not the same session");
  for (size_t i = 0; i < n; i++) {
    probe_get(c, pr[i].get, after, sizeof after);
    if (keep)
      cr_expect_str_eq(after, changed[i], "keep_session lost '%s'", pr[i].set);
    else
      cr_expect_str_eq(after, before[i], "'%s' survived the release", pr[i].set);
  }
  dbp_pool_release(p, c);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.opened, 1);
  cr_assert_eq(s.closed, 0);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

POOL_TEST(release_resets_the_session, 60) {
  session_cycle(t, false);
}

POOL_TEST(keep_session_keeps_the_session, 60) {
  session_cycle(t, true);
}

POOL_TEST(release_rolls_back_a_failed_transaction, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);
  int64_t id = dbp_conn_backend_id(c);
  cr_assert_eq(dbp_exec(c, is_pg(t) ? "BEGIN" : "START TRANSACTION", 0, NULL, 10000, NULL), 0);
  cr_assert_eq(dbp_exec(c, "SELECT * FROM dbp_no_such_table", 0, NULL, 10000, NULL), DBP_EQUERY);
  dbp_pool_release(p, c);
  c = must_acquire(t, p);
  cr_assert_eq(dbp_conn_backend_id(c), id);
  cr_assert_not(dbp_conn_in_transaction(c));
  ping(c);
  dbp_pool_release(p, c);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- connections the server ended while they sat idle ---- */

/* The server restarts, or an administrator ends idle sessions: the pool
 * must notice at the hand-out, without a ping (these were idle for less
 * than check_after_ms), and hand out working connections instead. */
POOL_TEST(idle_connections_the_server_ended_are_replaced, 60) {
  dbp_pool_options o = {.max_size = 3, .check_after_ms = DBP_FOREVER};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *cs[3];
  int64_t ids[3];
  for (int i = 0; i < 3; i++) {
    cs[i] = must_acquire(t, p);
    ids[i] = dbp_conn_backend_id(cs[i]);
  }
  for (int i = 0; i < 3; i++) dbp_pool_release(p, cs[i]);
  for (int i = 0; i < 3; i++) kill_backend(t, ids[i]);
  for (int i = 0; i < 3; i++) {
    cs[i] = must_acquire(t, p);
    for (int j = 0; j < 3; j++)
      cr_assert_neq(dbp_conn_backend_id(cs[i]), ids[j], "a dead session was handed out");
    ping(cs[i]);
  }
  for (int i = 0; i < 3; i++) dbp_pool_release(p, cs[i]);
  dbp_pool_stats s = stats(p);
  cr_assert_eq(s.broken, 3);
  cr_assert_eq(s.opened, 6);
  cr_assert_eq(s.total, 3);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- the no-progress limit on pooled connections ---- */

POOL_TEST(io_timeout_applies_to_every_connection, 60) {
  dbp_pool_options o = {.max_size = 2, .io_timeout_ms = 300};
  dbp_pool *p = mkpool(t, &o);
  for (int i = 0; i < 2; i++) {
    dbp_conn *c = must_acquire(t, p);
    /* The statement's own timeout is far away: only the idle limit can
     * end a statement that keeps the server silent. */
    int rc =
        dbp_exec(c, is_pg(t) ? "SELECT pg_sleep(30)" : "SELECT SLEEP(30)", 0, NULL, 60000, NULL);
    cr_assert_eq(rc, DBP_ETIMEDOUT, "%s", dbp_err_name(rc));
    const char *m = dbp_conn_error(c)->message;
    cr_assert(strstr(m, "no data from the server for 0.3 s (idle timeout)") != NULL, "%s", m);
    if (i == 0) {
      /* Keep the first busy so that the second is a new connection. */
      cr_assert_not(dbp_conn_is_broken(c), "%s", m);
      dbp_conn *c2 = must_acquire(t, p);
      rc =
          dbp_exec(c2, is_pg(t) ? "SELECT pg_sleep(30)" : "SELECT SLEEP(30)", 0, NULL, 60000, NULL);
      cr_assert_eq(rc, DBP_ETIMEDOUT);
      cr_assert(strstr(dbp_conn_error(c2)->message, "(idle timeout)") != NULL);
      dbp_pool_release(p, c2);
    }
    dbp_pool_release(p, c);
  }
  cr_assert_eq(stats(p).opened, 2);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- a server with fewer connections to give than the pool wants ---- */

typedef struct limit_arg {
  tctx *t;
  dbp_pool *p;
  int ok, failed;
  char why[600];
} limit_arg;

static int limit_worker(void *arg, void **result) {
  (void)result;
  limit_arg *l = arg;
  for (int round = 0; round < 5; round++) {
    dbp_conn *c = NULL;
    dbp_dberr e;
    int rc = dbp_pool_acquire(l->p, 30000, &c, &e);
    if (rc != 0) {
      l->failed++;
      snprintf(l->why, sizeof l->why, "%s: %s", dbp_err_name(rc), e.message);
      continue;
    }
    rc = dbp_exec(c, is_pg(l->t) ? "SELECT pg_sleep(0.02)" : "SELECT SLEEP(0.02)", 0, NULL, 10000,
                  NULL);
    if (rc == 0)
      l->ok++;
    else
      l->failed++;
    dbp_pool_release(l->p, c);
  }
  return 0;
}

/* A DSN for the same server with another user, password and database. */
static void dsn_rebuild(tctx *t, char *buf, size_t len, const char *user, const char *pw,
                        const char *db) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(t->dsn, &d, err, sizeof err), 0, "%s", err);
  int n = snprintf(buf, len, "%s://%s:%s@%s:%d/%s", is_pg(t) ? "postgresql" : "mysql",
                   user ? user : d.user, pw ? pw : d.password, d.host, d.port,
                   db ? db : (d.dbname ? d.dbname : ""));
  cr_assert(n > 0 && (size_t)n < len);
  dbp_dsn_free(&d);
}

/* The server allows two sessions; the pool would open four. Every acquire
 * must still succeed: those the server turns away wait for a connection
 * the pool already has. On PostgreSQL the limit is a database's
 * CONNECTION LIMIT (the test's role may create databases, not roles), on
 * MariaDB a test user's MAX_USER_CONNECTIONS. */
POOL_TEST(server_connection_limit_is_waited_out, 120) {
  char name[64], sql[256], dsn[512];
  snprintf(name, sizeof name, "dbp_lim_%ld", (long)getpid());
  if (is_pg(t)) {
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 30000, NULL), 0, "%s",
                 dbp_conn_error(t->mon)->message);
    snprintf(sql, sizeof sql, "ALTER DATABASE %s CONNECTION LIMIT 2", name);
    cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 10000, NULL), 0);
    dsn_rebuild(t, dsn, sizeof dsn, NULL, NULL, name);
  } else {
    snprintf(sql, sizeof sql,
             "CREATE USER '%s'@'%%' IDENTIFIED BY 'lim-pw' WITH MAX_USER_CONNECTIONS 2", name);
    cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 10000, NULL), 0, "%s",
                 dbp_conn_error(t->mon)->message);
    dsn_rebuild(t, dsn, sizeof dsn, name, "lim-pw", "");
  }
  dbp_pool *p = NULL;
  dbp_pool_options o = {.max_size = 4};
  cr_assert_eq(dbp_pool_new(t->rt, dsn, &o, &p), 0);
  static limit_arg ls[8];
  static dbp_co *cos[8];
  for (int i = 0; i < 8; i++) {
    ls[i] = (limit_arg){.t = t, .p = p};
    spawn(t, &cos[i], limit_worker, &ls[i]);
  }
  join_all(cos, 8);
  int ok = 0;
  for (int i = 0; i < 8; i++) {
    cr_expect_eq(ls[i].failed, 0, "worker %d: %s", i, ls[i].why);
    ok += ls[i].ok;
  }
  cr_expect_eq(ok, 40);
  cr_expect_leq(stats(p).opened, 2, "opened %" PRIu64, stats(p).opened);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
  if (is_pg(t))
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
  else
    snprintf(sql, sizeof sql, "DROP USER '%s'@'%%'", name);
  cr_assert_eq(dbp_exec(t->mon, sql, 0, NULL, 30000, NULL), 0, "%s",
               dbp_conn_error(t->mon)->message);
}
