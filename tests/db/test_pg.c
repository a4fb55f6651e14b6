/* The PostgreSQL driver against a real server: what only PostgreSQL does
 * (COPY, the idle limit against a stopped backend, DISCARD ALL, ...). What
 * both databases do is tested once for both in test_conn.c.
 *
 * Each test makes a runtime, runs its body in a coroutine (the database
 * calls wait), and checks what the body recorded. Bodies check with
 * cr_expect and return nonzero on the first failure, so nothing jumps off a
 * coroutine stack.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/driver.h"
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "rttest.h"

static int open_pg(dbp_rt *rt, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_pg_dsn(), 10000, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

/* ---- COPY ---- */

static int copy_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(c,
           dbp__copy_start_sql(c,
                               "COPY (SELECT g, 'v,' || g, NULL::int FROM generate_series(1, 5000) "
                               "g) TO STDOUT (FORMAT csv, HEADER)",
                               30000),
           0);
  size_t cap = 1 << 20, len = 0;
  char *all = malloc(cap);
  CHECK(all != NULL);
  const char *buf;
  size_t n;
  int rc;
  int chunks = 0;
  while ((rc = dbp_copy_read(c, &buf, &n)) == 1) {
    CHECK(len + n <= cap);
    memcpy(all + len, buf, n);
    len += n;
    chunks++;
  }
  CHECK_RC(c, rc, 0);
  CHECK(chunks > 1);
  /* The same text, built here. */
  char *want = malloc(cap);
  CHECK(want != NULL);
  size_t w = (size_t)snprintf(want, cap, "g,?column?,int4\n");
  for (int g = 1; g <= 5000; g++) w += (size_t)snprintf(want + w, cap - w, "%d,\"v,%d\",\n", g, g);
  CHECK(len == w);
  CHECK(memcmp(all, want, w) == 0);
  /* Not a COPY: refused, and the connection stays usable. */
  CHECK_RC(c, dbp__copy_start_sql(c, "SELECT 1", 10000), DBP_EINVAL);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 3", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "3") == 0);
  /* Abandoning a long COPY early leaves the connection idle. */
  CHECK_RC(
      c,
      dbp__copy_start_sql(c, "COPY (SELECT g FROM generate_series(1, 5000000) g) TO STDOUT", 30000),
      0);
  CHECK_RC(c, dbp_copy_read(c, &buf, &n), 1);
  CHECK(n == 2 && memcmp(buf, "1\n", 2) == 0);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbt_one_value(c, "SELECT 4", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "4") == 0);
  free(all);
  free(want);
  dbp_conn_close(c);
  return 0;
}

Test(pg, copy_to_stdout_streams_and_matches, .timeout = 60) {
  dbt_run(copy_body, NULL);
}

static int tx_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK(dbp_conn_in_transaction(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1/0", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_in_transaction(c)); /* failed, still in the block */
  CHECK_RC(c, dbp_exec(c, "ROLLBACK", 0, NULL, 10000, NULL), 0);
  CHECK(!dbp_conn_in_transaction(c));
  /* Several statements in one exec, and affected rows. */
  int64_t n = 0;
  CHECK_RC(c,
           dbp_exec(c,
                    "CREATE TEMP TABLE tx_t (a int); INSERT INTO tx_t SELECT generate_series(1, "
                    "7)",
                    0, NULL, 10000, &n),
           0);
  CHECK(n == 7);
  dbp_param p = dbt_param("3");
  CHECK_RC(c, dbp_exec(c, "DELETE FROM tx_t WHERE a <= $1", 1, &p, 10000, &n), 0);
  CHECK(n == 3);
  CHECK(dbp_conn_backend_id(c) > 0);
  CHECK(strstr(dbp_conn_dsn(c), "postgres") == dbp_conn_dsn(c));
  CHECK(dbp_conn_used_at(c) >= dbp_conn_opened_at(c));
  /* A second statement while a result is open is refused. */
  CHECK_RC(c, dbp_query(c, "SELECT generate_series(1, 3)", 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), DBP_ESTATE);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  /* A query without rows, and a COPY where it does not belong. */
  dbp_row r;
  CHECK_RC(c, dbp_query(c, "UPDATE tx_t SET a = a + 1", 0, NULL, 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "the statement returned no result set") != NULL);
  CHECK(!dbp_conn_error(c)->retryable);
  CHECK(dbp_ncols(c) == 0);
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  CHECK_RC(c, dbp_query(c, "SET search_path TO public", 0, NULL, 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "the statement returned no result set") != NULL);
  /* A query that finds no rows is still a result set. */
  CHECK_RC(c, dbp_query(c, "SELECT a FROM tx_t WHERE false", 0, NULL, 10000), 0);
  CHECK(dbp_ncols(c) == 1);
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  CHECK_RC(c, dbp_exec(c, "COPY tx_t TO STDOUT", 0, NULL, 10000, NULL), DBP_EINVAL);
  CHECK_RC(c, dbp_query(c, "COPY tx_t TO STDOUT", 0, NULL, 10000), DBP_EINVAL);
  CHECK_RC(c, dbp_exec(c, "COPY tx_t FROM STDIN", 0, NULL, 10000, NULL), DBP_EINVAL);
  CHECK_RC(c, dbp__copy_start_sql(c, "COPY tx_t FROM STDIN", 10000), DBP_EINVAL);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT count(*) FROM tx_t", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "4") == 0);
  /* Misuse is refused without harm. */
  CHECK_RC(c,
           dbp_query(c, "SELECT $1::int", 2, (dbp_param[]){dbt_param("1"), dbt_param("2")}, 10000),
           DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, "08P01") == 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbt_one_value(c, "SELECT 6", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "6") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, transactions_and_state, .timeout = 30) {
  dbt_run(tx_body, NULL);
}

/* ---- the no-progress limit against a backend that stops ---- */

/* A long series that streams from its first row: generate_series in a
 * select list runs row by row, where in FROM it is gathered whole first
 * (which alone would outlast a short idle limit). */
#define STREAM_SERIES "(SELECT generate_series(1, 100000000) AS g) s"

/* Stops a backend (SIGSTOP; the tests run as root or as the server's own
 * user) or lets it go on (SIGCONT). A stopped backend would hold up the
 * server's shutdown if this test died before letting it go, so a stop
 * also leaves a child process behind that sends SIGCONT a while later
 * whatever happens here (a backend that runs already ignores it). */
static int signal_backend(pid_t pid, int sig) {
  if (pid <= 0 || kill(pid, sig) != 0) {
    cr_expect(0, "cannot signal backend %ld: %s", (long)pid, strerror(errno));
    return -1;
  }
  if (sig == SIGSTOP) {
    pid_t guard = fork();
    if (guard == 0) {
      /* Hold no pipe of the test runner open meanwhile. */
      for (int fd = 0; fd < 1024; fd++) close(fd);
      sleep(30);
      kill(pid, SIGCONT);
      _exit(0);
    }
  }
  return 0;
}

/* The call that met the stopped backend failed as promised: a timeout
 * whose message names the idle limit, the connection left idle or broken.
 * Runs after SIGCONT. */
static int check_idle_failure(dbp_conn *c, int rc) {
  char m[700];
  cr_expect_eq(rc, DBP_ETIMEDOUT, "got %s: %s", dbp_err_name(rc),
               dbp_dberr_format(dbp_conn_error(c), m, sizeof m));
  CHECK(rc == DBP_ETIMEDOUT);
  const char *msg = dbp_conn_error(c)->message;
  cr_expect(strstr(msg, "no data from the server for 1 s (idle timeout)") != NULL, "%s", msg);
  CHECK(strstr(msg, "(idle timeout)") != NULL);
  /* Idle again (then it works) or given up (then it says so). */
  if (dbp_conn_is_broken(c))
    CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), DBP_ECONNLOST);
  else
    CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  return 0;
}

static int stop_mid_copy_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  dbp_conn_set_io_timeout(c, 1000);
  CHECK_RC(
      c,
      dbp__copy_start_sql(c, "COPY (SELECT g, repeat('x', 100) FROM " STREAM_SERIES ") TO STDOUT",
                          DBP_FOREVER),
      0);
  const char *buf;
  size_t len;
  for (int i = 0; i < 100; i++) CHECK_RC(c, dbp_copy_read(c, &buf, &len), 1);
  pid_t pid = (pid_t)dbp_conn_backend_id(c);
  CHECK(signal_backend(pid, SIGSTOP) == 0);
  /* What is already in the socket buffers still arrives; then nothing. */
  int rc;
  while ((rc = dbp_copy_read(c, &buf, &len)) == 1) {
  }
  CHECK(signal_backend(pid, SIGCONT) == 0);
  CHECK(check_idle_failure(c, rc) == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, idle_limit_ends_a_copy_from_a_stopped_backend, .timeout = 60) {
  dbt_run(stop_mid_copy_body, NULL);
}

static int stop_mid_fetch_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  dbp_conn_set_io_timeout(c, 1000);
  CHECK_RC(c, dbp_query(c, "SELECT g, repeat('x', 100) FROM " STREAM_SERIES, 0, NULL, DBP_FOREVER),
           0);
  dbp_row r;
  for (int i = 0; i < 100; i++) CHECK_RC(c, dbp_fetch(c, &r), 1);
  pid_t pid = (pid_t)dbp_conn_backend_id(c);
  CHECK(signal_backend(pid, SIGSTOP) == 0);
  int rc;
  while ((rc = dbp_fetch(c, &r)) == 1) {
  }
  CHECK(signal_backend(pid, SIGCONT) == 0);
  CHECK(check_idle_failure(c, rc) == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, idle_limit_ends_a_fetch_from_a_stopped_backend, .timeout = 60) {
  dbt_run(stop_mid_fetch_body, NULL);
}

/* A statement that keeps the server silent longer than the idle limit
 * fails with the limit's message and is cancelled on the server; the
 * connection stays usable. DBP_FOREVER lifts the limit. */
static int idle_limit_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  dbp_conn_set_io_timeout(c, 200);
  CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(30)", 0, NULL, 60000, NULL), DBP_ETIMEDOUT);
  const char *msg = dbp_conn_error(c)->message;
  cr_expect(strstr(msg, "no data from the server for 0.2 s (idle timeout)") != NULL, "%s", msg);
  CHECK(strstr(msg, "canceled on the server") != NULL);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  /* The statement's own timeout, when nearer, is reported as itself. */
  CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(30)", 0, NULL, 100, NULL), DBP_ETIMEDOUT);
  CHECK(strstr(dbp_conn_error(c)->message, "idle timeout") == NULL);
  dbp_conn_set_io_timeout(c, DBP_FOREVER);
  CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(0.5)", 0, NULL, 10000, NULL), 0);
  dbp_conn_set_io_timeout(c, 0); /* back to the default */
  CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(0.5)", 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, idle_limit_cancels_a_silent_statement, .timeout = 60) {
  dbt_run(idle_limit_body, NULL);
}

/* ---- liveness and reset ---- */

static int alive_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(NULL, open_pg(rt, &mon), 0);
  CHECK(dbp_conn_alive(c));
  CHECK_RC(c, dbp_conn_ping(c, 10000), 0);
  CHECK(dbp_conn_alive(c)); /* the ping left nothing unread */
  char id[32];
  snprintf(id, sizeof id, "%" PRId64, dbp_conn_backend_id(c));
  dbp_param p = dbt_param(id);
  CHECK_RC(mon, dbp_exec(mon, "SELECT pg_terminate_backend($1::int, 10000)", 1, &p, 10000, NULL),
           0);
  CHECK(!dbp_conn_alive(c));
  CHECK(dbp_conn_is_broken(c));
  CHECK(dbp_conn_error(c)->retryable);
  CHECK_RC(c, dbp_conn_ping(c, 10000), DBP_ECONNLOST);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(pg, alive_sees_a_terminated_session, .timeout = 30) {
  dbt_run(alive_body, NULL);
}

static int reset_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  char v[64];
  CHECK_RC(c, dbp_exec(c, "SET application_name = 'changed'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1/0", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_in_transaction(c));
  /* keep_session: only the failed transaction goes. */
  CHECK_RC(c, dbp_conn_reset(c, true, 10000), 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK_RC(c, dbt_one_value(c, "SELECT current_setting('application_name')", 0, NULL, v, sizeof v),
           0);
  CHECK(strcmp(v, "changed") == 0);
  /* The full reset: DISCARD ALL, even after a transaction. */
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK_RC(c, dbt_one_value(c, "SELECT current_setting('application_name')", 0, NULL, v, sizeof v),
           0);
  CHECK(strcmp(v, "changed") != 0);
  /* Not with a result open. */
  CHECK_RC(c, dbp_query(c, "SELECT generate_series(1, 10)", 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), DBP_ESTATE);
  CHECK(dbp_conn_is_broken(c));
  dbp_conn_close(c);
  return 0;
}

Test(pg, reset_rolls_back_and_discards, .timeout = 30) {
  dbt_run(reset_body, NULL);
}
