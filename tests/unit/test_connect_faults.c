/* Connecting, on both databases, where no database server answers: a port
 * nobody listens on, a name that does not resolve, connection strings
 * refused before connecting, and a peer of the tests' own that takes the
 * connection but never says a word (timeouts, cancellation).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "faulttest.h"
#include "rttest.h"

/* Connection strings of the shape the fixture's have, for servers that
 * are not there: these tests never reach one. */
static const char *dsn_of(int kind) {
  return kind == DBT_PG ? "postgresql://dbpipe:dbpipe@127.0.0.1:5432/shop"
                        : "mysql://dbpipe:dbpipe@127.0.0.1:3306/shop";
}

/* The fixture-shaped DSN of `kind` with another host, port or password. */
static void dsn_variant(char *buf, size_t len, int kind, const char *password, const char *host,
                        int port) {
  fault_dsn_variant(dsn_of(kind), buf, len, kind, password, host, port);
}

Test(faults, pg_port_nobody_listens_on, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_PG,
                        .timeout_ms = 5000,
                        .want = DBP_ECONNECT,
                        .must_say = "could not connect to postgresql://",
                        .never_say = "pw-never-shown"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_PG, "pw-never-shown", "127.0.0.1", fault_free_port());
  fault_open_fails(&oc);
}

Test(faults, mysql_port_nobody_listens_on, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_MY,
                        .timeout_ms = 5000,
                        .want = DBP_ECONNECT,
                        .must_say = "could not connect to mysql://",
                        .never_say = "pw-never-shown"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_MY, "pw-never-shown", "127.0.0.1", fault_free_port());
  fault_open_fails(&oc);
}

Test(faults, pg_name_that_does_not_resolve, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_PG,
                        .timeout_ms = 5000,
                        .want = DBP_ERESOLVE,
                        .must_say = "'nonexistent.invalid'",
                        .never_say = "pw-never-shown"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_PG, "pw-never-shown", "nonexistent.invalid", 0);
  fault_open_fails(&oc);
}

Test(faults, mysql_name_that_does_not_resolve, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_MY,
                        .timeout_ms = 5000,
                        .want = DBP_ERESOLVE,
                        .must_say = "'nonexistent.invalid'",
                        .never_say = "pw-never-shown"};
  dsn_variant(oc.dsn, sizeof oc.dsn, DBT_MY, "pw-never-shown", "nonexistent.invalid", 0);
  fault_open_fails(&oc);
}

Test(faults, bad_dsns_fail_before_connecting, .timeout = 30) {
  fault_open_case oc = {.kind = DBT_PG, .timeout_ms = 5000, .want = DBP_EDSN, .must_say = "scheme"};
  snprintf(oc.dsn, sizeof oc.dsn, "mongodb://u:p@h/db");
  fault_open_fails(&oc);
  fault_open_case pq = {.kind = DBT_PG,
                        .timeout_ms = 5000,
                        .want = DBP_EDSN,
                        .must_say = "invalid connection option",
                        .never_say = "pw-never-shown"};
  dsn_variant(pq.dsn, sizeof pq.dsn, DBT_PG, "pw-never-shown", NULL, 0);
  strcat(pq.dsn, "?no_such_option=1");
  fault_open_fails(&pq);
  fault_open_case my = {.kind = DBT_MY,
                        .timeout_ms = 5000,
                        .want = DBP_EDSN,
                        .must_say = "'no_such_option' is not supported",
                        .never_say = "pw-never-shown"};
  dsn_variant(my.dsn, sizeof my.dsn, DBT_MY, "pw-never-shown", NULL, 0);
  strcat(my.dsn, "?no_such_option=1");
  fault_open_fails(&my);
}

static void stalled(int kind) {
  int port;
  int fd = fault_stalled_peer(&port);
  fault_open_case oc = {.kind = kind,
                        .timeout_ms = 300,
                        .want = DBP_ETIMEDOUT,
                        .must_say = "timed out connecting to",
                        .never_say = "pw-never-shown"};
  dsn_variant(oc.dsn, sizeof oc.dsn, kind, "pw-never-shown", "127.0.0.1", port);
  fault_open_fails(&oc);
  close(fd);
}

Test(faults, pg_stalled_peer_times_out, .timeout = 30) {
  stalled(DBT_PG);
}
Test(faults, mysql_stalled_peer_times_out, .timeout = 30) {
  stalled(DBT_MY);
}

/* connect_timeout from the DSN bounds the connect when the caller gives
 * no limit. */
static int stalled_param_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  int port;
  int fd = fault_stalled_peer(&port);
  char dsn[600];
  dsn_variant(dsn, sizeof dsn, kind, NULL, "127.0.0.1", port);
  strcat(dsn, "?connect_timeout=1");
  dbp_conn *c = NULL;
  dbp_dberr err;
  uint64_t t0 = dbp_now(rt);
  int rc = dbp_conn_open(rt, dsn, DBP_FOREVER, &c, &err);
  uint64_t took = dbp_now(rt) - t0;
  close(fd);
  CHECK(rc == DBP_ETIMEDOUT);
  CHECK(took >= 900);
  return 0;
}

Test(faults, pg_connect_timeout_parameter, .timeout = 30) {
  int kind = DBT_PG;
  dbt_run(stalled_param_body, &kind);
}

Test(faults, mysql_connect_timeout_parameter, .timeout = 30) {
  int kind = DBT_MY;
  dbt_run(stalled_param_body, &kind);
}

/* A coroutine cancelled while connecting to a silent peer stops at once;
 * so does one whose deadline passes. */
typedef struct connector {
  dbp_rt *rt;
  char dsn[600];
  int rc;
} connector;

static int connector_main(void *arg, void **result) {
  (void)result;
  connector *k = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  k->rc = dbp_conn_open(k->rt, k->dsn, DBP_FOREVER, &c, &err);
  return k->rc;
}

static int cancel_connect_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  int port;
  int fd = fault_stalled_peer(&port);
  connector k = {.rt = rt};
  dsn_variant(k.dsn, sizeof k.dsn, kind, NULL, "127.0.0.1", port);
  dbp_co *co;
  CHECK(dbp_spawn(rt, &co, connector_main, &k, NULL) == 0);
  CHECK(dbp_sleep(rt, 100) == 0);
  uint64_t t0 = dbp_now(rt);
  dbp_cancel(co);
  CHECK(dbp_join(co, NULL) == DBP_ECANCELED);
  CHECK(dbp_now(rt) - t0 < 1000);
  /* The deadline of the connecting coroutine. */
  uint64_t tok;
  CHECK(dbp_deadline_push(rt, 100, &tok) == 0);
  t0 = dbp_now(rt);
  int rc = connector_main(&k, NULL);
  dbp_deadline_pop(rt, tok);
  CHECK(rc == DBP_ETIMEDOUT);
  CHECK(dbp_now(rt) - t0 < 1000);
  close(fd);
  return 0;
}

Test(faults, pg_connect_is_cancellable, .timeout = 30) {
  int kind = DBT_PG;
  dbt_run(cancel_connect_body, &kind);
}

Test(faults, mysql_connect_is_cancellable, .timeout = 30) {
  int kind = DBT_MY;
  dbt_run(cancel_connect_body, &kind);
}

/* Keepalive parameters out of range are refused before connecting (on
 * PostgreSQL they go to libpq as they are). */
static int ka_bad_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  const char *bad[] = {"keepalives=2", "keepalives_idle=0", "keepalives_count=x",
                       "tcp_user_timeout=-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char dsn[1024];
    snprintf(dsn, sizeof dsn, "%s?%s", dsn_of(kind), bad[i]);
    dbp_conn *c = NULL;
    dbp_dberr err;
    int rc = dbp_conn_open(rt, dsn, 10000, &c, &err);
    if (c != NULL) dbp_conn_close(c);
    cr_expect_eq(rc, DBP_EDSN, "%s: %s", bad[i], err.message);
    CHECK(rc == DBP_EDSN);
  }
  return 0;
}

Test(faults, mysql_bad_keepalive_parameters_are_refused, .timeout = 30) {
  int kind = DBT_MY;
  dbt_run(ka_bad_body, &kind);
}
