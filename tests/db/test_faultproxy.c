/* The fault proxy of tests/support/faultproxy.h against the fixture's real
 * servers, through the library's connection API: pass mode carries a large
 * result intact, cut gives a lost connection that is worth a retry, refuse
 * gives a failed connect that is worth a retry, delay holds every chunk
 * back, stall stops a stream dead.
 *
 * Bodies run in a coroutine and check with the CHECK macros (never
 * cr_assert on a coroutine stack). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "faultproxy.h"
#include "rttest.h"

TestSuite(faultproxy, .timeout = 120);

#define NROWS 100000

/* 100,000 rows of an integer and a 40-character text, in order. */
static const char *big_query(int kind) {
  return kind == DBT_PG
             ? "SELECT g, repeat('x', 40) FROM generate_series(1, 100000) AS g ORDER BY g"
             : "SELECT seq, REPEAT('x', 40) FROM seq_1_to_100000 ORDER BY seq";
}

typedef struct case_arg {
  int kind;
  dbt_proxy *px;
  int64_t elapsed_ms; /* delay test: measured in the body */
} case_arg;

/* Opens a connection through the proxy, failing the body when it cannot. */
#define OPEN(rt, a, c)                                                                     \
  do {                                                                                     \
    dbp_dberr e_;                                                                          \
    int orc_ = dbp_conn_open((rt), dbt_proxy_dsn((a)->px), 20000, &(c), &e_);              \
    if (orc_ != 0) {                                                                       \
      char m_[700];                                                                        \
      cr_expect(0, "connect through the proxy: %s", dbp_dberr_format(&e_, m_, sizeof m_)); \
      return -1;                                                                           \
    }                                                                                      \
  } while (0)

/* Runs the big query on c and checks every row: values 1..NROWS in order,
 * each with its 40 x's. */
static int read_all_rows(dbp_conn *c, int kind) {
  CHECK_RC(c, dbp_query(c, big_query(kind), 0, NULL, 60000), 0);
  CHECK(dbp_ncols(c) == 2);
  dbp_row row;
  long n = 0;
  int rc;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    n++;
    char want[24];
    int wl = snprintf(want, sizeof want, "%ld", n);
    CHECK(row.lens[0] == (size_t)wl && memcmp(row.vals[0], want, (size_t)wl) == 0);
    CHECK(row.lens[1] == 40 && row.vals[1][0] == 'x' && row.vals[1][39] == 'x');
  }
  CHECK_RC(c, rc, 0);
  CHECK(n == NROWS);
  return 0;
}

/* ---- pass ---- */

static int pass_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  OPEN(rt, a, c);
  int rc = read_all_rows(c, a->kind);
  dbp_conn_close(c);
  return rc;
}

static void pass_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_run(pass_body, &a);
  cr_expect_eq(dbt_proxy_accepted(a.px), 1, "one connection, not %u", dbt_proxy_accepted(a.px));
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 0, &st));
  cr_expect_eq(st.mode, DBT_PROXY_PASS);
  /* At least the 100,000 values of 40 bytes came through the proxy. */
  cr_expect_gt(st.bytes[DBT_S2C], (uint64_t)NROWS * 40, "%" PRIu64 " bytes", st.bytes[DBT_S2C]);
  cr_expect_gt(st.bytes[DBT_C2S], 0);
  cr_expect(!st.stalled && !st.cut);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, pass_carries_100k_rows_pg) {
  pass_case(DBT_PG);
}

Test(faultproxy, pass_carries_100k_rows_my) {
  pass_case(DBT_MY);
}

/* ---- cut ---- */

#define CUT_AFTER 20000

static int cut_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  OPEN(rt, a, c);
  int rc = dbp_query(c, big_query(a->kind), 0, NULL, 60000);
  long n = 0;
  if (rc == 0) {
    dbp_row row;
    while ((rc = dbp_fetch(c, &row)) == 1) n++;
  }
  char m[700];
  cr_log_info("cut after %ld rows: %s", n, dbp_dberr_format(dbp_conn_error(c), m, sizeof m));
  cr_expect_eq(rc, DBP_ECONNLOST, "wanted ECONNLOST, got %s: %s", dbp_err_name(rc), m);
  cr_expect(dbp_conn_error(c)->retryable, "a lost connection must be worth a retry: %s", m);
  cr_expect(dbp_conn_is_broken(c));
  cr_expect_lt(n, NROWS);
  dbp_conn_close(c);
  return rc == DBP_ECONNLOST ? 0 : -1;
}

static void cut_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_proxy_cut(a.px, CUT_AFTER, 0);
  dbt_run(cut_body, &a);
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 0, &st));
  cr_expect_eq(st.mode, DBT_PROXY_CUT);
  cr_expect(st.cut, "the proxy did not cut the connection");
  cr_expect_eq(st.bytes[DBT_S2C], CUT_AFTER, "%" PRIu64 " bytes before the cut", st.bytes[DBT_S2C]);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, cut_gives_econnlost_retryable_pg) {
  cut_case(DBT_PG);
}

Test(faultproxy, cut_gives_econnlost_retryable_my) {
  cut_case(DBT_MY);
}

/* A cut limited to one connection lets the next one through whole. */
static int cut_once_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  OPEN(rt, a, c);
  int rc = dbp_query(c, big_query(a->kind), 0, NULL, 60000);
  if (rc == 0) {
    dbp_row row;
    while ((rc = dbp_fetch(c, &row)) == 1) {
    }
  }
  dbp_conn_close(c);
  CHECK(rc == DBP_ECONNLOST);
  OPEN(rt, a, c);
  rc = read_all_rows(c, a->kind);
  dbp_conn_close(c);
  return rc;
}

static void cut_once_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_proxy_cut(a.px, CUT_AFTER, 1);
  dbt_run(cut_once_body, &a);
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 1, &st), "no second connection");
  cr_expect_eq(st.mode, DBT_PROXY_PASS);
  cr_expect(!st.cut);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, cut_for_one_connection_then_pass_pg) {
  cut_once_case(DBT_PG);
}

Test(faultproxy, cut_for_one_connection_then_pass_my) {
  cut_once_case(DBT_MY);
}

/* ---- refuse ---- */

static int refuse_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  dbp_dberr e;
  memset(&e, 0, sizeof e);
  int rc = dbp_conn_open(rt, dbt_proxy_dsn(a->px), 20000, &c, &e);
  char m[700];
  dbp_dberr_format(&e, m, sizeof m);
  cr_log_info("refused: %s", m);
  if (rc == 0) dbp_conn_close(c);
  cr_expect_eq(rc, DBP_ECONNECT, "wanted ECONNECT, got %s: %s", dbp_err_name(rc), m);
  cr_expect(e.retryable, "a refused connect must be worth a retry: %s", m);
  /* The message names where it tried, and never the password. */
  cr_expect_null(strstr(m, ":dbpipe@"), "password in the message: %s", m);
  return rc == DBP_ECONNECT && e.retryable ? 0 : -1;
}

static void refuse_case(int kind, enum dbt_refuse_how how) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_proxy_refuse(a.px, how, 0);
  dbt_run(refuse_body, &a);
  if (how == DBT_REFUSE_CLOSE) {
    cr_expect_geq(dbt_proxy_accepted(a.px), 1);
  } else {
    cr_expect_eq(dbt_proxy_accepted(a.px), 0);
  }
  /* Back to pass: the same port serves again. */
  dbt_proxy_pass(a.px);
  dbt_run(pass_body, &a);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, refuse_by_close_gives_econnect_retryable_pg) {
  refuse_case(DBT_PG, DBT_REFUSE_CLOSE);
}

Test(faultproxy, refuse_by_close_gives_econnect_retryable_my) {
  refuse_case(DBT_MY, DBT_REFUSE_CLOSE);
}

Test(faultproxy, refuse_by_unlisten_gives_econnect_retryable_pg) {
  refuse_case(DBT_PG, DBT_REFUSE_UNLISTEN);
}

Test(faultproxy, refuse_by_unlisten_gives_econnect_retryable_my) {
  refuse_case(DBT_MY, DBT_REFUSE_UNLISTEN);
}

/* ---- delay ---- */

#define DELAY_MS 150

/* One statement through a delaying proxy: the query crosses it once each
 * way, so the round trip takes at least twice the delay. That lower bound
 * holds on any machine however loaded (a held chunk cannot arrive early),
 * so it is no timing threshold in the flaky sense. */
static int delay_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  OPEN(rt, a, c);
  uint64_t t0 = uv_hrtime();
  CHECK_RC(c, dbp_query(c, "SELECT 41 + 1", 0, NULL, 60000), 0);
  dbp_row row;
  CHECK_RC(c, dbp_fetch(c, &row), 1);
  CHECK(row.lens[0] == 2 && memcmp(row.vals[0], "42", 2) == 0);
  CHECK_RC(c, dbp_fetch(c, &row), 0);
  a->elapsed_ms = (int64_t)((uv_hrtime() - t0) / 1000000);
  /* Order and content survive the delay over a whole stream too. */
  int rc = read_all_rows(c, a->kind);
  dbp_conn_close(c);
  return rc;
}

static void delay_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_proxy_delay(a.px, DELAY_MS, 0);
  dbt_run(delay_body, &a);
  cr_expect_geq(a.elapsed_ms, 2 * DELAY_MS, "a round trip took %" PRId64 " ms", a.elapsed_ms);
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 0, &st));
  cr_expect_eq(st.mode, DBT_PROXY_DELAY);
  cr_expect_gt(st.bytes[DBT_S2C], (uint64_t)NROWS * 40);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, delay_holds_every_chunk_pg) {
  delay_case(DBT_PG);
}

Test(faultproxy, delay_holds_every_chunk_my) {
  delay_case(DBT_MY);
}

/* ---- stall ---- */

#define STALL_AFTER 30000

/* A stalled stream never ends by itself: the statement's own timeout ends
 * it (the timeout is far longer than the data needs when it flows). */
static int stall_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  OPEN(rt, a, c);
  int rc = dbp_query(c, big_query(a->kind), 0, NULL, 3000);
  long n = 0;
  if (rc == 0) {
    dbp_row row;
    while ((rc = dbp_fetch(c, &row)) == 1) n++;
  }
  char m[700];
  cr_log_info("stalled after %ld rows: %s", n, dbp_dberr_format(dbp_conn_error(c), m, sizeof m));
  cr_expect_eq(rc, DBP_ETIMEDOUT, "wanted ETIMEDOUT, got %s: %s", dbp_err_name(rc), m);
  cr_expect_lt(n, NROWS);
  dbp_conn_close(c);
  return rc == DBP_ETIMEDOUT ? 0 : -1;
}

static void stall_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  /* Only the first connection stalls: a cancel request on a side
   * connection goes through. */
  dbt_proxy_stall(a.px, DBT_S2C, STALL_AFTER, 1);
  dbt_run(stall_body, &a);
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 0, &st));
  cr_expect_eq(st.mode, DBT_PROXY_STALL);
  cr_expect(st.stalled, "the proxy did not stall");
  cr_expect_eq(st.bytes[DBT_S2C], STALL_AFTER, "%" PRIu64 " bytes before the stall",
               st.bytes[DBT_S2C]);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, stall_stops_the_stream_pg) {
  stall_case(DBT_PG);
}

Test(faultproxy, stall_stops_the_stream_my) {
  stall_case(DBT_MY);
}

/* Stalling the other way: nothing the client sends gets through, so the
 * connect never completes and its own limit ends it. */
static int stall_c2s_body(dbp_rt *rt, void *arg) {
  case_arg *a = arg;
  dbp_conn *c = NULL;
  dbp_dberr e;
  memset(&e, 0, sizeof e);
  int rc = dbp_conn_open(rt, dbt_proxy_dsn(a->px), 2000, &c, &e);
  char m[700];
  cr_log_info("stalled connect: %s", dbp_dberr_format(&e, m, sizeof m));
  if (rc == 0) dbp_conn_close(c);
  cr_expect_eq(rc, DBP_ETIMEDOUT, "wanted ETIMEDOUT, got %s: %s", dbp_err_name(rc), m);
  return rc == DBP_ETIMEDOUT ? 0 : -1;
}

static void stall_c2s_case(int kind) {
  case_arg a = {.kind = kind, .px = dbt_proxy_for_dsn(dbt_dsn(kind))};
  dbt_proxy_stall(a.px, DBT_C2S, 0, 0);
  dbt_run(stall_c2s_body, &a);
  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(a.px, 0, &st));
  cr_expect(st.stalled, "the proxy did not stall");
  cr_expect_eq(st.bytes[DBT_C2S], 0);
  dbt_proxy_stop(a.px);
}

Test(faultproxy, stall_client_to_server_times_out_the_connect_pg) {
  stall_c2s_case(DBT_PG);
}

Test(faultproxy, stall_client_to_server_times_out_the_connect_my) {
  stall_c2s_case(DBT_MY);
}
