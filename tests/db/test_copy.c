/* COPY through the db layer: dbp_copy_start builds the statement from a
 * query and options, dbp_copy_read hands out one row per call, and what
 * COPY cannot serve is DBP_ENOCOPY on a connection that stays usable.
 *
 * The reference bytes come from COPY statements written out here by hand
 * (dbp__copy_start_sql), so the statement the db layer builds is checked
 * against PostgreSQL's own output, not against itself.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

static int open_kind(dbp_rt *rt, int kind, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_dsn(kind), 10000, c, &err);
  if (rc != 0) cr_expect(0, "connect failed: %s", err.message);
  return rc;
}

/* The rows of an open COPY: all bytes into *all (malloc'd), the row count,
 * and whether every read was one row: it ends with LF and, for CSV, holds
 * an even number of quotes (a line break inside quotes stays inside). */
typedef struct rows {
  char *all;
  size_t len, cap, n;
  bool whole;
} rows;

static int read_rows(dbp_conn *c, bool csv, rows *r) {
  memset(r, 0, sizeof *r);
  r->whole = true;
  const char *p;
  size_t n;
  int rc;
  while ((rc = dbp_copy_read(c, &p, &n)) == 1) {
    size_t quotes = 0;
    for (size_t i = 0; i < n; i++) quotes += p[i] == '"';
    if (n == 0 || p[n - 1] != '\n' || (csv && quotes % 2 != 0)) r->whole = false;
    if (r->len + n + 1 > r->cap) {
      r->cap = (r->len + n + 1) * 2;
      r->all = realloc(r->all, r->cap);
      if (r->all == NULL) return DBP_ENOMEM;
    }
    memcpy(r->all + r->len, p, n);
    r->len += n;
    r->all[r->len] = '\0';
    r->n++;
  }
  return rc;
}

/* Runs `query` through dbp_copy_start with `o` and the hand-written COPY
 * `ref`, and checks that both give the same bytes, one row per read,
 * `want_rows` reads in all. */
static int same_as(dbp_conn *c, const char *query, const dbp_copy_options *o, const char *ref,
                   size_t want_rows) {
  bool csv = o != NULL && o->format == DBP_COPY_CSV;
  rows got, want;
  CHECK_RC(c, dbp_copy_start(c, query, o, 30000), 0);
  CHECK_RC(c, read_rows(c, csv, &got), 0);
  CHECK_RC(c, dbp__copy_start_sql(c, ref, 30000), 0);
  CHECK_RC(c, read_rows(c, csv, &want), 0);
  cr_expect(got.len == want.len && memcmp(got.all, want.all, got.len) == 0,
            "%s\n--- got\n%s\n--- want\n%s", ref, got.all, want.all);
  cr_expect(got.whole, "%s: a read that was not exactly one row", ref);
  cr_expect_eq(got.n, want_rows, "%s: %zu reads", ref, got.n);
  bool ok = got.len == want.len && got.whole && got.n == want_rows;
  free(got.all);
  free(want.all);
  return ok ? 0 : -1;
}

#define Q                                                                         \
  "SELECT g, 'a,b\"c' || g AS t, CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS n, " \
  "E'two\\nlines' AS l, E'back\\\\slash\\ttab' AS b FROM generate_series(1, 3000) g"

static int pg_formats_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_kind(rt, DBT_PG, &c), 0);
  CHECK(dbp_conn_can_copy(c));
  CHECK(same_as(c, Q, &(dbp_copy_options){.format = DBP_COPY_CSV, .header = true},
                "COPY (" Q ") TO STDOUT (FORMAT csv, HEADER)", 3001) == 0);
  CHECK(same_as(c, Q, NULL, "COPY (" Q ") TO STDOUT", 3000) == 0);
  CHECK(same_as(c, Q, &(dbp_copy_options){.header = true},
                "COPY (" Q ") TO STDOUT (FORMAT text, HEADER)", 3001) == 0);
  CHECK(
      same_as(c, Q,
              &(dbp_copy_options){.format = DBP_COPY_CSV, .delimiter = ';', .null_string = "NULL"},
              "COPY (" Q ") TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'NULL')", 3000) == 0);
  CHECK(same_as(c, Q, &(dbp_copy_options){.delimiter = '|', .null_string = ""},
                "COPY (" Q ") TO STDOUT (FORMAT text, DELIMITER '|', NULL '')", 3000) == 0);
  /* A NULL string with a quote, a backslash and a control byte is passed as
   * a literal that none of them can end. */
  CHECK(same_as(c, Q, &(dbp_copy_options){.format = DBP_COPY_CSV, .null_string = "it's \\ \x01!"},
                "COPY (" Q ") TO STDOUT (FORMAT csv, NULL E'it''s \\\\ \\x01!')", 3000) == 0);
  /* Trailing semicolons and a trailing line comment are the query's own. */
  CHECK(same_as(c, "SELECT 1 AS a -- the end", NULL, "COPY (SELECT 1) TO STDOUT", 1) == 0);
  CHECK(same_as(c, "SELECT 2 AS a;; \n", NULL, "COPY (SELECT 2) TO STDOUT", 1) == 0);
  dbp_conn_close(c);
  return 0;
}

Test(copy, pg_rows_are_what_copy_writes_one_per_read, .timeout = 60) {
  dbt_run(pg_formats_body, NULL);
}

/* One value: the connection still answers and the count is n. */
static int count_is(dbp_conn *c, const char *sql, const char *want) {
  CHECK_RC(c, dbp_query(c, sql, 0, NULL, 10000), 0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK(r.vals[0] != NULL && r.lens[0] == strlen(want) && memcmp(r.vals[0], want, r.lens[0]) == 0);
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  return 0;
}

static int pg_refusals_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_kind(rt, DBT_PG, &c), 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TEMPORARY TABLE cp_t (a int)", 0, NULL, 10000, NULL), 0);
  static const char *const refused[] = {
      "SHOW server_version", "EXPLAIN SELECT 1",
      "INSERT INTO cp_t VALUES (1)", /* DML without RETURNING */
      "SELEC 1",                     /* the query's own syntax error looks the same */
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    CHECK_RC(c, dbp_copy_start(c, refused[i], NULL, 10000), DBP_ENOCOPY);
    CHECK(strstr(dbp_conn_error(c)->message, "COPY cannot run this statement") != NULL);
    CHECK(dbp_conn_error(c)->sqlstate[0] != '\0');
    CHECK(!dbp_conn_is_broken(c));
    CHECK(!dbp_conn_in_transaction(c));
  }
  CHECK(count_is(c, "SELECT count(*) FROM cp_t", "0") == 0);
  /* DML with RETURNING can be COPYed. */
  CHECK_RC(c, dbp_copy_start(c, "INSERT INTO cp_t VALUES (7) RETURNING a", NULL, 10000), 0);
  rows r;
  CHECK_RC(c, read_rows(c, false, &r), 0);
  CHECK(r.n == 1 && strcmp(r.all, "7\n") == 0);
  free(r.all);
  /* Inside a transaction block the refusal aborted the transaction: that
   * is an ordinary failed statement, not "use another way". */
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_copy_start(c, "SHOW server_version", NULL, 10000), DBP_EQUERY);
  CHECK(dbp_conn_in_transaction(c));
  CHECK_RC(c, dbp_exec(c, "ROLLBACK", 0, NULL, 10000, NULL), 0);
  /* Options COPY would refuse fail before anything is sent. */
  static const dbp_copy_options bad[] = {
      {.delimiter = '\n'},
      {.format = DBP_COPY_CSV, .delimiter = '\r'},
      {.delimiter = (char)0xe9},
      {.delimiter = 'a'},
      {.delimiter = '7'},
      {.delimiter = '\\'},
      {.delimiter = '.'},
      {.format = DBP_COPY_CSV, .delimiter = '"'},
      {.null_string = "a\nb"},
      {.null_string = "a\tb"},
      {.format = DBP_COPY_CSV, .null_string = "x,y"},
      {.format = DBP_COPY_CSV, .null_string = "\"q\""},
      {.format = (dbp_copy_format)7},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_RC(c, dbp_copy_start(c, "SELECT 1", &bad[i], 10000), DBP_EINVAL);
    CHECK(strstr(dbp_conn_error(c)->message, "COPY options") != NULL);
  }
  /* ... and CSV takes what text does not. */
  CHECK(same_as(c, "SELECT 'x' AS v", &(dbp_copy_options){.format = DBP_COPY_CSV, .delimiter = 'a'},
                "COPY (SELECT 'x') TO STDOUT (FORMAT csv, DELIMITER 'a')", 1) == 0);
  CHECK(count_is(c, "SELECT count(*) FROM cp_t", "1") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(copy, pg_what_copy_refuses_is_enocopy_and_the_connection_lives, .timeout = 60) {
  dbt_run(pg_refusals_body, NULL);
}

static int mysql_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_kind(rt, DBT_MY, &c), 0);
  CHECK(!dbp_conn_can_copy(c));
  CHECK_RC(c, dbp_copy_start(c, "SELECT 1", NULL, 10000), DBP_ENOCOPY);
  CHECK_RC(c,
           dbp_copy_start(c, "SELECT 1",
                          &(dbp_copy_options){.format = DBP_COPY_CSV, .header = true}, 10000),
           DBP_ENOCOPY);
  const char *p;
  size_t n;
  CHECK_RC(c, dbp_copy_read(c, &p, &n), 0);
  CHECK(count_is(c, "SELECT 5", "5") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(copy, mysql_has_no_copy, .timeout = 60) {
  dbt_run(mysql_body, NULL);
}

Test(copy, enocopy_has_a_name_and_a_message) {
  cr_expect_str_eq(dbp_err_name(DBP_ENOCOPY), "DBP_ENOCOPY");
  cr_expect(strstr(dbp_strerror(DBP_ENOCOPY), "COPY") != NULL);
  cr_expect_not(dbp_conn_can_copy(NULL));
}
