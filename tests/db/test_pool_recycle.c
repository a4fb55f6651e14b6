/* The connection pool against real PostgreSQL and MariaDB servers: what a
 * released connection hands on and which connections the pool replaces or
 * closes: ones broken idle or in use, the reset on release (transactions,
 * session state, keep_session), lifetime and idle timeout, sessions the
 * server ended while idle, and the no-progress limit on every pooled
 * connection. The harness is in tests/support/pooltest.h. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "pooltest.h"

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
