/* The drivers behind the driver table, against real servers: what the
 * connection front asks of them and what they must leave alone.
 *
 * Bodies run in a coroutine and check with CHECK (dbcheck.h), returning
 * nonzero on the first failure.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg_conn.h"
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

static int open_kind(dbp_rt *rt, int kind, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_dsn(kind), 10000, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

/* ---- PostgreSQL bytea: decoded into the driver's memory, not libpq's ---- */

#define BIG (1024 * 1024 + 7) /* bytes of the large value */

/* The bytes the large value holds: every byte value, NUL included. */
static unsigned char big_byte(size_t i) {
  return (unsigned char)((i * 7 + i / 256) & 0xff);
}

/* The bytea hex text of the large value ("\x..."), malloc'd. */
static char *big_hex(void) {
  static const char digits[] = "0123456789abcdef";
  char *s = malloc(2 + 2 * (size_t)BIG + 1);
  if (s == NULL) return NULL;
  s[0] = '\\';
  s[1] = 'x';
  for (size_t i = 0; i < BIG; i++) {
    s[2 + 2 * i] = digits[big_byte(i) >> 4];
    s[3 + 2 * i] = digits[big_byte(i) & 15];
  }
  s[2 + 2 * (size_t)BIG] = '\0';
  return s;
}

static bool is_big(const dbp_row *r, size_t i) {
  if (r->vals[i] == NULL || r->lens[i] != BIG) return false;
  for (size_t k = 0; k < BIG; k++)
    if ((unsigned char)r->vals[i][k] != big_byte(k)) return false;
  return true;
}

/* True when libpq's own copy of column i of the row handed out last still
 * holds the server's text, "\x" and two hex digits per byte: the driver
 * decoded into its own buffer and left the PGresult as libpq made it. */
static bool libpq_text_intact(dbp_conn *c, int i, size_t nbytes) {
  PGresult *res = PG(c)->row;
  if (res == NULL || PQgetisnull(res, 0, i)) return false;
  const char *v = PQgetvalue(res, 0, i);
  size_t len = (size_t)PQgetlength(res, 0, i);
  return len == 2 + 2 * nbytes && strlen(v) == len && v[0] == '\\' && v[1] == 'x';
}

/* One pass: the row of empty, small, NULL and large bytea values, then a
 * second row (different sizes, so the buffer is reused), read with or
 * without bound parameters. */
static int bytea_pass(dbp_conn *c, bool params) {
  char *hex = big_hex();
  CHECK(hex != NULL);
  int rc;
  if (params) {
    dbp_param p[4] = {{"\\x", 2}, {"\\x00ff41", 8}, {NULL, 0}, {hex, strlen(hex)}};
    rc = dbp_query(c,
                   "SELECT v.* FROM (VALUES ($1::bytea, $2::bytea, $3::bytea, $4::bytea, 1), "
                   "('\\x'::bytea, '\\x7f'::bytea, NULL, '\\x0001'::bytea, 2)) "
                   "AS v(a, b, n, big, k) ORDER BY k",
                   4, p, 30000);
  } else {
    char *sql = malloc(strlen(hex) + 512);
    CHECK(sql != NULL);
    sprintf(sql,
            "SELECT v.* FROM (VALUES (''::bytea, '\\x00ff41'::bytea, NULL::bytea, '%s'::bytea, "
            "1), ('\\x'::bytea, '\\x7f'::bytea, NULL, '\\x0001'::bytea, 2)) AS v(a, b, n, big, k) "
            "ORDER BY k",
            hex);
    rc = dbp_query(c, sql, 0, NULL, 30000);
    free(sql);
  }
  free(hex);
  CHECK_RC(c, rc, 0);
  CHECK(dbp_ncols(c) == 5 && dbp_columns(c)[0].type == DBP_T_BYTES);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK(r.vals[0] != NULL && r.lens[0] == 0);
  CHECK(r.vals[1] != NULL && r.lens[1] == 3 && memcmp(r.vals[1], "\0\xff\x41", 3) == 0);
  CHECK(r.vals[2] == NULL);
  CHECK(is_big(&r, 3));
  CHECK(libpq_text_intact(c, 0, 0));
  CHECK(libpq_text_intact(c, 1, 3));
  CHECK(libpq_text_intact(c, 3, BIG));
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK(r.vals[0] != NULL && r.lens[0] == 0);
  CHECK(r.lens[1] == 1 && (unsigned char)r.vals[1][0] == 0x7f);
  CHECK(r.vals[2] == NULL);
  CHECK(r.lens[3] == 2 && memcmp(r.vals[3], "\0\1", 2) == 0);
  CHECK(libpq_text_intact(c, 1, 1) && libpq_text_intact(c, 3, 2));
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  return 0;
}

static int bytea_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL;
  CHECK(open_kind(rt, DBT_PG, &c) == 0);
  int rc = bytea_pass(c, false);
  if (rc == 0) rc = bytea_pass(c, true);
  dbp_conn_close(c);
  return rc;
}

Test(driver, pg_bytea_is_decoded_outside_libpq_results, .timeout = 120) {
  dbt_run(bytea_body, NULL);
}

/* ---- the state machine belongs to the front ---- */

/* A statement the server cancels at dbp_conn_cancel's request ends in
 * DBP_ECANCELED with the server's code, and the connection is idle and
 * usable; the same error without a request is a plain statement error. */
typedef struct cancel_job {
  dbp_conn *c;
  int rc;
} cancel_job;

static int cancel_main(void *arg, void **result) {
  (void)result;
  cancel_job *j = arg;
  dbp_sleep(dbp_conn_rt(j->c), 300);
  j->rc = dbp_conn_cancel(j->c);
  return 0;
}

static int server_cancel_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  dbp_conn *c = NULL;
  CHECK(open_kind(rt, kind, &c) == 0);
  cancel_job j = {c, -1};
  dbp_co *co = NULL;
  CHECK(dbp_spawn(rt, &co, cancel_main, &j, NULL) == 0);
  const char *slow = kind == DBT_PG ? "SELECT pg_sleep(20)" : "SELECT SLEEP(20)";
  int rc = dbp_exec(c, slow, 0, NULL, 30000, NULL);
  CHECK(dbp_join(co, NULL) == 0);
  CHECK(j.rc == 0);
  const dbp_dberr *e = dbp_conn_error(c);
  if (kind == DBT_PG) {
    CHECK_RC(c, rc, DBP_ECANCELED);
    CHECK(strcmp(e->sqlstate, "57014") == 0);
  } else {
    /* MariaDB's SLEEP() returns 1 when killed instead of failing. */
    CHECK(rc == 0 || rc == DBP_ECANCELED);
    if (rc != 0) CHECK(e->db_errno == 1317);
  }
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  if (kind == DBT_PG) {
    /* Without a request, the server's 57014 is a statement error. */
    CHECK_RC(c, dbp_exec(c, "SET statement_timeout = 200", 0, NULL, 10000, NULL), 0);
    CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(5)", 0, NULL, 10000, NULL), DBP_EQUERY);
    CHECK(strcmp(dbp_conn_error(c)->sqlstate, "57014") == 0);
    CHECK(!dbp_conn_is_broken(c));
  }
  dbp_conn_close(c);
  return 0;
}

Test(driver, pg_server_cancel_at_our_request_is_canceled, .timeout = 60) {
  int kind = DBT_PG;
  dbt_run(server_cancel_body, &kind);
}

Test(driver, mysql_server_cancel_at_our_request_is_canceled, .timeout = 60) {
  int kind = DBT_MY;
  dbt_run(server_cancel_body, &kind);
}

/* A timeout in the middle of a statement runs the driver's abort: the
 * statement is canceled on the server and the connection is idle, with
 * the driver's own words and code for it. */
static int timeout_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  dbp_conn *c = NULL;
  CHECK(open_kind(rt, kind, &c) == 0);
  const char *slow = kind == DBT_PG ? "SELECT pg_sleep(20)" : "SELECT SLEEP(20)";
  CHECK_RC(c, dbp_exec(c, slow, 0, NULL, 300, NULL), DBP_ETIMEDOUT);
  const dbp_dberr *e = dbp_conn_error(c);
  CHECK(!dbp_conn_is_broken(c));
  if (kind == DBT_PG) {
    CHECK(strstr(e->message, "statement timed out and canceled on the server") != NULL);
    CHECK(strcmp(e->sqlstate, "57014") == 0);
  } else {
    CHECK(strstr(e->message, "statement timed out and killed on the server") != NULL);
    CHECK(e->db_errno == 1317 && strcmp(e->sqlstate, "70100") == 0);
  }
  /* A result abandoned half way is drained or canceled by the same entry. */
  const char *many = kind == DBT_PG ? "SELECT g FROM generate_series(1, 2000000) g"
                                    : "SELECT seq FROM seq_1_to_2000000";
  CHECK_RC(c, dbp_query(c, many, 0, NULL, 30000), 0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

Test(driver, pg_timeout_is_aborted_by_the_driver, .timeout = 60) {
  int kind = DBT_PG;
  dbt_run(timeout_body, &kind);
}

Test(driver, mysql_timeout_is_aborted_by_the_driver, .timeout = 60) {
  int kind = DBT_MY;
  dbt_run(timeout_body, &kind);
}
