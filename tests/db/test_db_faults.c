/* Faults, on both databases: a port nobody listens on, a name that does
 * not resolve, a wrong password, a peer that never answers, a session the
 * server terminates in the middle of a stream, a server that stops
 * answering in the middle of a statement.
 *
 * Each test makes a runtime, runs its body in a coroutine (the database
 * calls wait), and checks what the body recorded. Bodies check with
 * cr_expect and return nonzero on the first failure, so nothing jumps off a
 * coroutine stack.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "faulttest.h"
#include "rttest.h"

static const char *dsn_of(int kind) {
  return kind == DBT_PG ? dbt_pg_dsn() : dbt_my_dsn();
}

/* The fixture-shaped DSN of `kind` with another host, port or password. */
static void dsn_variant(char *buf, size_t len, int kind, const char *password, const char *host,
                        int port) {
  fault_dsn_variant(dsn_of(kind), buf, len, kind, password, host, port);
}

Test(faults, pg_wrong_password_is_never_shown, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_PG,
                        .timeout_ms = 5000,
                        .want = DBP_EAUTH,
                        .must_say = ":***@",
                        .never_say = "Wr0ng-S3cret"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_PG, "Wr0ng-S3cret", NULL, 0);
  fault_open_fails(&oc);
}

Test(faults, mysql_wrong_password_is_never_shown, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_MY,
                        .timeout_ms = 5000,
                        .want = DBP_EAUTH,
                        .must_say = ":***@",
                        .never_say = "Wr0ng-S3cret"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_MY, "Wr0ng-S3cret", NULL, 0);
  fault_open_fails(&oc);
}

/* "localhost" resolves to ::1 and 127.0.0.1; the servers listen on the
 * latter only, so this also proves that every address is tried. */
static int localhost_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  char dsn[600];
  dsn_variant(dsn, sizeof dsn, kind, NULL, "localhost", 0);
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &err);
  cr_expect_eq(rc, 0, "%s", err.message);
  CHECK(rc == 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

Test(faults, pg_localhost_tries_every_address, .timeout = 30) {
  int kind = DBT_PG;
  dbt_run(localhost_body, &kind);
}

Test(faults, mysql_localhost_tries_every_address, .timeout = 30) {
  int kind = DBT_MY;
  dbt_run(localhost_body, &kind);
}

/* ---- a session terminated by the server mid-stream ---- */

static int terminated_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  dbp_conn *c = NULL, *mon = NULL;
  dbp_dberr err;
  CHECK(dbp_conn_open(rt, dsn_of(kind), 10000, &c, &err) == 0);
  CHECK(dbp_conn_open(rt, dsn_of(kind), 10000, &mon, &err) == 0);
  const char *big = kind == DBT_PG ? "SELECT g, repeat('x', 50) FROM generate_series(1, 10000000) g"
                                   : "SELECT seq, REPEAT('x', 50) FROM seq_1_to_10000000";
  CHECK_RC(c, dbp_query(c, big, 0, NULL, DBP_FOREVER), 0);
  dbp_row r;
  for (int i = 0; i < 100; i++) CHECK_RC(c, dbp_fetch(c, &r), 1);
  char id[32];
  snprintf(id, sizeof id, "%" PRId64, dbp_conn_backend_id(c));
  if (kind == DBT_PG) {
    dbp_param p = dbt_param(id);
    CHECK_RC(mon, dbp_exec(mon, "SELECT pg_terminate_backend($1::int)", 1, &p, 10000, NULL), 0);
  } else {
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %s", id);
    CHECK_RC(mon, dbp_exec(mon, sql, 0, NULL, 10000, NULL), 0);
  }
  int rc;
  long rows = 0;
  while ((rc = dbp_fetch(c, &r)) == 1) rows++;
  CHECK_RC(c, rc, DBP_ECONNLOST);
  const dbp_dberr *e = dbp_conn_error(c);
  char m[700];
  cr_expect(e->retryable, "not retryable: %s", dbp_dberr_format(e, m, sizeof m));
  CHECK(e->retryable);
  CHECK(dbp_conn_is_broken(c));
  CHECK(rows < 10000000);
  /* The server says goodbye with FATAL 57P01, but with rows still unread
   * that message may never be read: the server may reset the connection
   * (its unsent output is dropped) before libpq gets to it. What is
   * promised is a lost, retryable connection; the SQLSTATE only when the
   * server's message arrived, and then the right one. */
  if (kind == DBT_PG && e->sqlstate[0] != '\0') {
    cr_expect_str_eq(e->sqlstate, "57P01", "%s", dbp_dberr_format(e, m, sizeof m));
    CHECK(strcmp(e->sqlstate, "57P01") == 0);
  }
  /* Every later call says so at once. */
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), DBP_ECONNLOST);
  CHECK(dbp_conn_error(c)->retryable);
  CHECK(!dbp_conn_in_transaction(c));
  dbp_conn_close(c);
  /* The monitor is unharmed. */
  CHECK_RC(mon, dbp_exec(mon, "SELECT 1", 0, NULL, 10000, NULL), 0);
  dbp_conn_close(mon);
  return 0;
}

Test(faults, pg_session_terminated_mid_stream, .timeout = 60) {
  int kind = DBT_PG;
  dbt_run(terminated_body, &kind);
}

Test(faults, mysql_session_killed_mid_stream, .timeout = 60) {
  int kind = DBT_MY;
  dbt_run(terminated_body, &kind);
}

/* ---- a server that stops answering mid-statement ---- */

/* A TCP relay to the real server that can be told to stall: from then on
 * it forwards nothing and takes no new connections (they wait in the
 * backlog, handshake done, unanswered). */
typedef struct relay {
  int lfd, port;
  struct sockaddr_in target;
  pthread_t th;
  atomic_bool stalled, quit;
  int a[16], b[16];
  int n;
} relay;

static void relay_drop(relay *r, int i) {
  close(r->a[i]);
  close(r->b[i]);
  r->a[i] = r->a[r->n - 1];
  r->b[i] = r->b[r->n - 1];
  r->n--;
}

/* Copies what is readable on `from` to `to`; false at EOF or error. */
static bool relay_pump(int from, int to) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, (size_t)(n - off));
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

static void *relay_main(void *arg) {
  relay *r = arg;
  while (!atomic_load(&r->quit)) {
    struct pollfd p[33];
    nfds_t np = 0;
    bool stalled = atomic_load(&r->stalled);
    if (!stalled) {
      p[np++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
      for (int i = 0; i < r->n; i++) {
        p[np++] = (struct pollfd){.fd = r->a[i], .events = POLLIN};
        p[np++] = (struct pollfd){.fd = r->b[i], .events = POLLIN};
      }
    }
    if (poll(p, np, 20) <= 0 || stalled) continue;
    if (p[0].revents & POLLIN) {
      int a = accept(r->lfd, NULL, NULL);
      int b = socket(AF_INET, SOCK_STREAM, 0);
      if (a >= 0 && b >= 0 && r->n < 16 &&
          connect(b, (struct sockaddr *)&r->target, sizeof r->target) == 0) {
        r->a[r->n] = a;
        r->b[r->n] = b;
        r->n++;
      } else {
        if (a >= 0) close(a);
        if (b >= 0) close(b);
      }
      continue; /* the pairs' slots in p are stale now */
    }
    for (int i = r->n - 1; i >= 0; i--) {
      short ra = p[1 + 2 * i].revents, rb = p[2 + 2 * i].revents;
      bool ok = true;
      if (ra & (POLLIN | POLLHUP | POLLERR)) ok = relay_pump(r->a[i], r->b[i]);
      if (ok && (rb & (POLLIN | POLLHUP | POLLERR))) ok = relay_pump(r->b[i], r->a[i]);
      if (!ok) relay_drop(r, i);
    }
  }
  return NULL;
}

static void relay_start(relay *r, int server_port) {
  memset(r, 0, sizeof *r);
  r->lfd = fault_stalled_peer(&r->port);
  r->target.sin_family = AF_INET;
  r->target.sin_port = htons((uint16_t)server_port);
  r->target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

/* Stops the relay and closes every socket: whatever still waits on it
 * (a cancel request in the thread pool, say) gets a reset. */
static void relay_stop(relay *r) {
  atomic_store(&r->quit, true);
  pthread_join(r->th, NULL);
  while (r->n > 0) relay_drop(r, 0);
  close(r->lfd);
}

static int stall_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  dbp_dsn d;
  char err[200];
  CHECK(dbp_dsn_parse(dsn_of(kind), &d, err, sizeof err) == 0);
  relay r;
  relay_start(&r, d.port);
  dbp_dsn_free(&d);
  char dsn[600];
  dsn_variant(dsn, sizeof dsn, kind, NULL, "127.0.0.1", r.port);
  dbp_conn *c = NULL;
  dbp_dberr e;
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &e);
  cr_expect_eq(rc, 0, "%s", e.message);
  if (rc == 0) rc = dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL);
  if (rc == 0) {
    atomic_store(&r.stalled, true);
    uint64_t t0 = dbp_now(rt);
    rc = dbp_exec(c, kind == DBT_PG ? "SELECT pg_sleep(10)" : "SELECT SLEEP(10)", 0, NULL, 200,
                  NULL);
    uint64_t took = dbp_now(rt) - t0;
    char m[700];
    cr_expect_eq(rc, DBP_ETIMEDOUT, "%s", dbp_dberr_format(dbp_conn_error(c), m, sizeof m));
    /* The cancel cannot get through either: the connection is given up
     * once the clean-up budget is spent, never left half-way. */
    cr_expect(dbp_conn_is_broken(c));
    cr_expect_lt(took, 10000, "took %" PRIu64 " ms", took);
    rc = rc == DBP_ETIMEDOUT && dbp_conn_is_broken(c) ? 0 : -1;
    if (rc == 0) {
      int again = dbp_exec(c, "SELECT 1", 0, NULL, 1000, NULL);
      cr_expect_eq(again, DBP_ECONNLOST);
    }
  }
  if (c != NULL) dbp_conn_close(c);
  relay_stop(&r);
  return rc;
}

Test(faults, pg_server_stalls_mid_statement, .timeout = 60) {
  int kind = DBT_PG;
  dbt_run(stall_body, &kind);
}

Test(faults, mysql_server_stalls_mid_statement, .timeout = 60) {
  int kind = DBT_MY;
  dbt_run(stall_body, &kind);
}

/* ---- connect errors: which ones a retry can help ---- */

typedef struct class_case {
  const char *what;
  char dsn[700];
  int want;
  const char *sqlstate; /* "" = none, NULL = not checked (MariaDB) */
  bool retryable;
} class_case;

static int classify_body(dbp_rt *rt, void *arg) {
  class_case *cc = arg;
  for (; cc->what != NULL; cc++) {
    dbp_conn *c = NULL;
    dbp_dberr e;
    int rc = dbp_conn_open(rt, cc->dsn, 10000, &c, &e);
    char m[700];
    dbp_dberr_format(&e, m, sizeof m);
    cr_expect_eq(rc, cc->want, "%s: got %s: %s", cc->what, dbp_err_name(rc), m);
    cr_expect_eq(e.retryable, cc->retryable, "%s: retryable %d: %s", cc->what, e.retryable, m);
    if (cc->sqlstate != NULL) cr_expect_str_eq(e.sqlstate, cc->sqlstate, "%s: %s", cc->what, m);
    if (c != NULL) dbp_conn_close(c);
  }
  return 0;
}

static void classify(int kind) {
  static class_case cs[8];
  memset(cs, 0, sizeof cs);
  size_t n = 0;
  bool pg = kind == DBT_PG;
  cs[n] = (class_case){"a wrong password", "", DBP_EAUTH, pg ? "28P01" : "28000", false};
  dsn_variant(cs[n++].dsn, sizeof cs[0].dsn, kind, "Wr0ng-S3cret", NULL, 0);
  /* MariaDB answers "access denied" (1044) for a database the user may not
   * see, which a missing one is. */
  cs[n] = (class_case){"an unknown database", "", pg ? DBP_ECONNECT : DBP_EAUTH,
                       pg ? "3D000" : "42000", false};
  dsn_variant(cs[n].dsn, sizeof cs[0].dsn, kind, NULL, NULL, 0);
  {
    /* Replace the database name: everything after the last '/'. */
    char *slash = strrchr(cs[n].dsn, '/');
    snprintf(slash + 1, sizeof cs[0].dsn - (size_t)(slash + 1 - cs[n].dsn), "dbp_no_such_db");
  }
  n++;
  cs[n] = (class_case){"a bad parameter", "", DBP_EDSN, "", false};
  dsn_variant(cs[n].dsn, sizeof cs[0].dsn, kind, NULL, NULL, 0);
  strcat(cs[n++].dsn, "?sslmode=sometimes");
  /* No server answered, so no SQLSTATE (libmariadb reports its own client
   * errors as HY000, which says as much). */
  cs[n] = (class_case){"a refused connection", "", DBP_ECONNECT, pg ? "" : NULL, true};
  dsn_variant(cs[n++].dsn, sizeof cs[0].dsn, kind, NULL, "127.0.0.1", fault_free_port());
  if (pg) {
    /* A setting the server rejects at startup (42704): no retry helps. */
    cs[n] = (class_case){"an unknown server setting", "", DBP_ECONNECT, "42704", false};
    dsn_variant(cs[n].dsn, sizeof cs[0].dsn, kind, NULL, NULL, 0);
    strcat(cs[n++].dsn, "?options=-cdbp.no_such%3Don%20-cno_such_setting%3D1");
  }
  dbt_run(classify_body, cs);
}

Test(faults, pg_connect_errors_are_classified, .timeout = 60) {
  classify(DBT_PG);
}

Test(faults, mysql_connect_errors_are_classified, .timeout = 60) {
  classify(DBT_MY);
}

/* A session the server ends while the connection sits idle: the peek
 * finds it without a round trip and without waiting. */
static int idle_end_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  dbp_conn *c = NULL, *mon = NULL;
  dbp_dberr err;
  CHECK(dbp_conn_open(rt, dsn_of(kind), 10000, &c, &err) == 0);
  CHECK(dbp_conn_open(rt, dsn_of(kind), 10000, &mon, &err) == 0);
  CHECK(dbp_conn_alive(c));
  char id[32];
  snprintf(id, sizeof id, "%" PRId64, dbp_conn_backend_id(c));
  if (kind == DBT_PG) {
    dbp_param p = dbt_param(id);
    CHECK_RC(mon, dbp_exec(mon, "SELECT pg_terminate_backend($1::int, 10000)", 1, &p, 10000, NULL),
             0);
  } else {
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %s", id);
    CHECK_RC(mon, dbp_exec(mon, sql, 0, NULL, 10000, NULL), 0);
    /* KILL returns before the session is gone: wait until it is. */
    dbp_param p = dbt_param(id);
    for (int i = 0; i < 1000; i++) {
      CHECK_RC(mon,
               dbp_query(mon, "SELECT id FROM information_schema.processlist WHERE id = ?", 1, &p,
                         10000),
               0);
      dbp_row r;
      int rc = dbp_fetch(mon, &r);
      CHECK(rc >= 0);
      CHECK_RC(mon, dbp_query_close(mon), 0);
      if (rc == 0) break;
      dbp_sleep(rt, 10);
    }
  }
  CHECK(!dbp_conn_alive(c));
  CHECK(dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), DBP_ECONNLOST);
  CHECK(dbp_conn_error(c)->retryable);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(faults, pg_alive_sees_a_session_ended_while_idle, .timeout = 30) {
  int kind = DBT_PG;
  dbt_run(idle_end_body, &kind);
}

Test(faults, mysql_alive_sees_a_session_ended_while_idle, .timeout = 30) {
  int kind = DBT_MY;
  dbt_run(idle_end_body, &kind);
}
