/* The connection pool against real PostgreSQL and MariaDB servers: its
 * bounds, the order and fairness of waiters, acquires that time out or are
 * cancelled, closing, connect failures, load, and a server that allows fewer
 * sessions than the pool wants. The harness (POOL_TEST, the session counts
 * on the server) is in tests/support/pooltest.h; what a released connection
 * hands on and the replacing of dead ones is in test_pool_recycle.c. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "pooltest.h"

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
