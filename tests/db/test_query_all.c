/* dbp_query_all against real servers: one body per behaviour, run on
 * PostgreSQL (suite query_all_pg) and on MariaDB (suite query_all_my).
 * A whole result must hold exactly what dbp_query and dbp_fetch stream,
 * and every way out leaves the connection idle (or broken, as
 * dbp_conn_is_broken says) with nothing leaked.
 *
 * Bodies run in a coroutine and check with the CHECK macros (dbcheck.h),
 * returning nonzero on the first failure. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "rttest.h"

typedef struct dialect {
  const char *(*dsn)(void);
  const char *utc; /* the session's time zone to UTC */
  /* A temporary table with a column of every type, and a row of values
   * and a row of NULLs for it. */
  const char *types_create, *types_insert;
  const char *types_select;   /* its rows, in order, without parameters */
  const char *types_select_p; /* the same with one parameter, "1" */
  /* NULL text, '' text, the bytes 00 ff 00 5c 27, empty bytes, NULL bytes */
  const char *nulls;
  const char *zero_rows;                  /* columns a and b, no row */
  const char *rows_10k;                   /* n and 'row-' || n for n in 1..10000 */
  const char *huge;                       /* ten million rows */
  const char *ten_abcd;                   /* ten rows of 'abcd': 40 bytes */
  const char *sleep10;                    /* ten seconds of silence */
  const char *rows_then;                  /* rows, then a long wait before the last */
  const char *no_rows_sql;                /* a statement without a result set */
  const char *ins_create, *ins_returning; /* three rows in, their ids out */
  const char *select_p1;                  /* one parameter back */
} dialect;

static const char *pg_dsn(void) {
  return dbt_pg_dsn();
}

static const char *my_dsn(void) {
  return dbt_my_dsn();
}

static const dialect PG = {
    .dsn = pg_dsn,
    .utc = "SET TimeZone = 'UTC'",
    .types_create =
        "CREATE TEMP TABLE qa_types (k int, c_int2 int2, c_int4 int4, c_int8 int8, c_oid oid, "
        "c_num numeric(30,10), c_nan numeric, c_f4 float4, c_f8 float8, c_inf float8, c_bool bool, "
        "c_text text, c_vc varchar(10), c_char char(4), c_name name, c_uuid uuid, c_bytea bytea, "
        "c_json json, c_jsonb jsonb, c_date date, c_time time, c_timetz timetz, c_ts timestamp, "
        "c_tstz timestamptz, c_iv interval, c_arr int4[], c_inet inet)",
    .types_insert =
        "INSERT INTO qa_types VALUES (1, -32768, 2147483647, -9223372036854775808, 4294967295, "
        "12345678901234567890.0123456789, 'NaN', 1.5, 0.1, '-Infinity', true, "
        "E'h\\u00e9llo, \"world\"\\n\\ttab\\\\', 'abc', 'ab', 'pg_class', "
        "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '\\x00ff0a5c2700', '{\"a\": [1, 2.50]}', "
        "'{\"b\":1,  \"a\":\"x\"}', '2024-02-29', '23:59:59.999999', '12:34:56+02', "
        "'2024-02-29 12:34:56.5', '2024-02-29 12:34:56+02', '1 day 02:00:00', '{1,2,3}', "
        "'10.1.2.3'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, '', '', "
        "'', '', NULL, '\\x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}', NULL), (3, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    .types_select = "SELECT * FROM qa_types ORDER BY k",
    .types_select_p = "SELECT * FROM qa_types WHERE 1 = $1::int ORDER BY k",
    .nulls =
        "SELECT NULL::text AS a, ''::text AS b, '\\x00ff005c27'::bytea AS c, ''::bytea AS d, "
        "NULL::bytea AS e",
    .zero_rows = "SELECT 1 AS a, 'x'::text AS b WHERE false",
    .rows_10k = "SELECT g AS n, 'row-' || g AS s FROM generate_series(1, 10000) AS g",
    .huge = "SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) AS g",
    .ten_abcd = "SELECT 'abcd'::text FROM generate_series(1, 10)",
    .sleep10 = "SELECT pg_sleep(10)",
    .rows_then =
        "SELECT g, pg_sleep(CASE WHEN g = 20000 THEN 10 ELSE 0 END) "
        "FROM generate_series(1, 20000) AS g",
    .no_rows_sql = "SET TimeZone = 'UTC'",
    .ins_create = "CREATE TEMP TABLE qa_ins (id int)",
    .ins_returning = "INSERT INTO qa_ins VALUES (7), (8), (9) RETURNING id",
    .select_p1 = "SELECT $1::text AS v",
};

static const dialect MY = {
    .dsn = my_dsn,
    .utc = "SET time_zone = '+00:00'",
    .types_create =
        "CREATE TEMPORARY TABLE qa_types (k INT, c_ti TINYINT, c_bool BOOLEAN, c_si SMALLINT, "
        "c_mi MEDIUMINT, c_int INT, c_bi BIGINT, c_ubi BIGINT UNSIGNED, c_year YEAR, "
        "c_dec DECIMAL(30,10), c_f FLOAT, c_d DOUBLE, c_bit1 BIT(1), c_bit12 BIT(12), "
        "c_char CHAR(4), c_vc VARCHAR(20), c_text TEXT, c_bin BINARY(3), c_vb VARBINARY(10), "
        "c_blob BLOB, c_json JSON, c_date DATE, c_time TIME(6), c_ntime TIME, c_dt DATETIME(6), "
        "c_ts TIMESTAMP NULL, c_enum ENUM('a','b'), c_set SET('x','y'), c_uuid UUID, "
        "c_inet INET6)",
    .types_insert =
        "INSERT INTO qa_types VALUES (1, -128, 1, 32767, -8388608, 2147483647, "
        "-9223372036854775808, 18446744073709551615, 2024, 12345678901234567890.0123456789, 1.5, "
        "0.1, b'1', b'101010111100', 'ab', 'h\xc3\xa9llo, \"w\"', 'multi\\nline ''q'' \\\\ \\t', "
        "X'610062', X'00FF275C', X'0001FEFF', '{\"a\": [1, 2.50]}', '2024-02-29', "
        "'23:59:59.999999', '-838:59:59', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56', 'b', "
        "'y,x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '::1'), (2, 0, 0, 0, 0, 0, 0, 0, NULL, "
        "0, 0, 0, b'0', b'0', '', '', '', X'000000', X'', X'', NULL, NULL, NULL, NULL, NULL, NULL, "
        "'a', '', NULL, NULL), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL)",
    .types_select = "SELECT * FROM qa_types ORDER BY k",
    .types_select_p = "SELECT * FROM qa_types WHERE 1 = ? ORDER BY k",
    .nulls =
        "SELECT NULL AS a, '' AS b, X'00FF005C27' AS c, CAST('' AS BINARY) AS d, "
        "CAST(NULL AS BINARY) AS e",
    .zero_rows = "SELECT 1 AS a, 'x' AS b FROM DUAL WHERE 1 = 0",
    .rows_10k = "SELECT seq AS n, CONCAT('row-', seq) AS s FROM seq_1_to_10000",
    .huge = "SELECT seq, REPEAT('x', 100) FROM seq_1_to_10000000",
    .ten_abcd = "SELECT 'abcd' FROM seq_1_to_10",
    .sleep10 = "SELECT SLEEP(10)",
    .rows_then = "SELECT seq, IF(seq = 20000, SLEEP(10), 0) FROM seq_1_to_20000",
    .no_rows_sql = "DO 1",
    .ins_create = "CREATE TEMPORARY TABLE qa_ins (id INT)",
    .ins_returning = "INSERT INTO qa_ins VALUES (7), (8), (9) RETURNING id",
    .select_p1 = "SELECT ? AS v",
};

#define QA_TEST(name, secs)                             \
  static int name##_body(dbp_rt *rt, const dialect *d); \
  static int name##_entry(dbp_rt *rt, void *arg) {      \
    return name##_body(rt, arg);                        \
  }                                                     \
  Test(query_all_pg, name, .timeout = secs) {           \
    dbt_run(name##_entry, (void *)&PG);                 \
  }                                                     \
  Test(query_all_my, name, .timeout = secs) {           \
    dbt_run(name##_entry, (void *)&MY);                 \
  }                                                     \
  static int name##_body(dbp_rt *rt, const dialect *d)

/* ---- helpers ---- */

static int open_db(dbp_rt *rt, const dialect *d, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, d->dsn(), 10000, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

/* A result read the streaming way, every value copied. */
typedef struct streamed {
  size_t ncols, nrows, cap;
  dbp_column *cols; /* names and types copied */
  char **vals;      /* nrows * ncols, NULL = SQL NULL */
  size_t *lens;
} streamed;

static void streamed_free(streamed *s) {
  for (size_t i = 0; i < s->ncols; i++) {
    free((char *)s->cols[i].name);
    free((char *)s->cols[i].db_type);
  }
  for (size_t i = 0; i < s->nrows * s->ncols; i++) free(s->vals[i]);
  free(s->cols);
  free(s->vals);
  free(s->lens);
  memset(s, 0, sizeof *s);
}

/* Runs the query with dbp_query and dbp_fetch into s. */
static int stream_all(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, streamed *s) {
  memset(s, 0, sizeof *s);
  CHECK_RC(c, dbp_query(c, sql, np, ps, 30000), 0);
  s->ncols = dbp_ncols(c);
  s->cols = calloc(s->ncols ? s->ncols : 1, sizeof *s->cols);
  CHECK(s->cols != NULL);
  for (size_t i = 0; i < s->ncols; i++) {
    s->cols[i] = dbp_columns(c)[i];
    s->cols[i].name = strdup(s->cols[i].name);
    s->cols[i].db_type = strdup(s->cols[i].db_type);
  }
  dbp_row row;
  int rc;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    CHECK(row.ncols == s->ncols);
    if (s->nrows == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 16;
      s->vals = realloc(s->vals, s->cap * s->ncols * sizeof *s->vals);
      s->lens = realloc(s->lens, s->cap * s->ncols * sizeof *s->lens);
      CHECK(s->vals != NULL && s->lens != NULL);
    }
    for (size_t i = 0; i < s->ncols; i++) {
      size_t k = s->nrows * s->ncols + i;
      s->lens[k] = row.lens[i];
      s->vals[k] = NULL;
      if (row.vals[i] == NULL) continue;
      s->vals[k] = malloc(row.lens[i] + 1);
      CHECK(s->vals[k] != NULL);
      memcpy(s->vals[k], row.vals[i], row.lens[i]);
    }
    s->nrows++;
  }
  CHECK_RC(c, rc, 0);
  return 0;
}

/* Compares a whole result with the streamed one, column by column and
 * cell by cell. */
static int same_as_streamed(const dbp_result *r, const streamed *s, const char *sql) {
  cr_expect_eq(dbp_result_ncols(r), s->ncols, "%s: columns", sql);
  cr_expect_eq(dbp_result_nrows(r), s->nrows, "%s: rows", sql);
  CHECK(dbp_result_ncols(r) == s->ncols && dbp_result_nrows(r) == s->nrows);
  CHECK(dbp_result_affected(r) == (int64_t)s->nrows);
  for (size_t j = 0; j < s->ncols; j++) {
    const dbp_column *a = dbp_result_column(r, j), *b = &s->cols[j];
    CHECK(a != NULL);
    cr_expect_str_eq(a->name, b->name);
    cr_expect_str_eq(a->db_type, b->db_type, "column %s", b->name);
    cr_expect_eq(a->type, b->type, "column %s", b->name);
    cr_expect_eq(a->db_type_id, b->db_type_id, "column %s", b->name);
    CHECK(strcmp(a->name, b->name) == 0 && strcmp(a->db_type, b->db_type) == 0);
    CHECK(a->type == b->type && a->db_type_id == b->db_type_id);
  }
  for (size_t i = 0; i < s->nrows; i++) {
    dbp_row row;
    CHECK(dbp_result_row(r, i, &row) == 0);
    CHECK(row.ncols == s->ncols);
    for (size_t j = 0; j < s->ncols; j++) {
      const char *want = s->vals[i * s->ncols + j];
      size_t wlen = s->lens[i * s->ncols + j];
      size_t len = 12345;
      const char *got = dbp_result_value(r, i, j, &len);
      CHECK(got == row.vals[j] && len == row.lens[j]);
      if (want == NULL) {
        cr_expect_null(got, "%s: row %zu column %s: NULL expected", sql, i, s->cols[j].name);
        CHECK(got == NULL && len == 0);
        continue;
      }
      cr_expect(got != NULL && len == wlen && memcmp(got, want, wlen) == 0 && got[len] == '\0',
                "%s: row %zu column %s: '%.*s' (%zu bytes) streamed, '%.*s' (%zu) whole", sql, i,
                s->cols[j].name, (int)wlen, want, wlen, (int)len, got ? got : "(null)", len);
      CHECK(got != NULL && len == wlen && memcmp(got, want, wlen) == 0 && got[len] == '\0');
    }
  }
  return 0;
}

/* True when the connection is idle and works: a query runs on it. */
static int still_usable(dbp_conn *c) {
  CHECK(!dbp_conn_is_broken(c));
  dbp_result *r = NULL;
  dbp_param p = dbt_param("after");
  CHECK_RC(c,
           dbp_query_all(c, dbp_conn_kind(c) == DBP_DB_PG ? "SELECT $1::text" : "SELECT ?", 1, &p,
                         10000, 0, &r),
           0);
  CHECK(dbp_result_nrows(r) == 1 && dbp_result_ncols(r) == 1);
  CHECK(strcmp(dbp_result_value(r, 0, 0, NULL), "after") == 0);
  dbp_result_free(r);
  return 0;
}

/* ---- values ---- */

QA_TEST(every_type_matches_streamed_rows, 120) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(c, dbp_exec(c, d->utc, 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, d->types_create, 0, NULL, 10000, NULL), 0);
  int64_t n = 0;
  CHECK_RC(c, dbp_exec(c, d->types_insert, 0, NULL, 10000, &n), 0);
  CHECK(n == 3);
  dbp_param one = dbt_param("1");
  for (int prepared = 0; prepared < 2; prepared++) {
    const char *sql = prepared ? d->types_select_p : d->types_select;
    size_t np = prepared ? 1 : 0;
    streamed s;
    CHECK(stream_all(c, sql, np, &one, &s) == 0);
    CHECK(s.nrows == 3 && s.ncols > 20);
    dbp_result *r = NULL;
    CHECK_RC(c, dbp_query_all(c, sql, np, &one, 30000, 0, &r), 0);
    CHECK(r != NULL);
    int rc = same_as_streamed(r, &s, sql);
    /* The result outlives the connection's next statement. */
    CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
    if (rc == 0) rc = same_as_streamed(r, &s, sql);
    dbp_result_free(r);
    streamed_free(&s);
    CHECK(rc == 0);
  }
  /* A known value or two, so that equal-but-wrong cannot pass. */
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->types_select, 0, NULL, 30000, 0, &r), 0);
  CHECK(strcmp(dbp_result_column(r, 0)->name, "k") == 0);
  CHECK(strcmp(dbp_result_value(r, 0, 0, NULL), "1") == 0);
  CHECK(strcmp(dbp_result_value(r, 2, 0, NULL), "3") == 0);
  CHECK(dbp_result_value(r, 2, 1, NULL) == NULL);
  dbp_result_free(r);
  dbp_conn_close(c);
  return 0;
}

QA_TEST(null_empty_and_raw_bytes, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->nulls, 0, NULL, 10000, 0, &r), 0);
  CHECK(dbp_result_nrows(r) == 1 && dbp_result_ncols(r) == 5);
  CHECK(dbp_result_affected(r) == 1);
  size_t len = 9;
  CHECK(dbp_result_value(r, 0, 0, &len) == NULL && len == 0);
  const char *v = dbp_result_value(r, 0, 1, &len);
  CHECK(v != NULL && len == 0 && v[0] == '\0');
  v = dbp_result_value(r, 0, 2, &len);
  CHECK(dbp_result_column(r, 2)->type == DBP_T_BYTES);
  CHECK(v != NULL && len == 5 && memcmp(v, "\x00\xff\x00\x5c\x27", 5) == 0 && v[5] == '\0');
  v = dbp_result_value(r, 0, 3, &len);
  CHECK(v != NULL && len == 0);
  CHECK(dbp_result_value(r, 0, 4, &len) == NULL && len == 0);
  /* Past the end: NULL, not a crash. */
  CHECK(dbp_result_value(r, 1, 0, &len) == NULL);
  CHECK(dbp_result_value(r, 0, 5, &len) == NULL);
  dbp_row row;
  CHECK(dbp_result_row(r, 1, &row) == DBP_EINVAL);
  dbp_result_free(r);
  dbp_conn_close(c);
  return 0;
}

QA_TEST(zero_rows_keep_their_columns, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->zero_rows, 0, NULL, 10000, 0, &r), 0);
  CHECK(r != NULL);
  CHECK(dbp_result_nrows(r) == 0);
  CHECK(dbp_result_ncols(r) == 2);
  CHECK(strcmp(dbp_result_column(r, 0)->name, "a") == 0);
  CHECK(dbp_result_column(r, 0)->type == DBP_T_INTEGER);
  CHECK(strcmp(dbp_result_column(r, 1)->name, "b") == 0);
  CHECK(dbp_result_column(r, 1)->type == DBP_T_TEXT);
  CHECK(dbp_result_affected(r) == 0);
  CHECK(dbp_result_value(r, 0, 0, NULL) == NULL);
  dbp_result_free(r);
  CHECK(still_usable(c) == 0);
  dbp_conn_close(c);
  return 0;
}

QA_TEST(ten_thousand_rows, 60) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->rows_10k, 0, NULL, 30000, 0, &r), 0);
  CHECK(dbp_result_nrows(r) == 10000 && dbp_result_ncols(r) == 2);
  CHECK(dbp_result_affected(r) == 10000);
  CHECK(strcmp(dbp_result_column(r, 0)->name, "n") == 0);
  CHECK(strcmp(dbp_result_column(r, 1)->name, "s") == 0);
  const char *first = dbp_result_value(r, 0, 1, NULL);
  for (size_t i = 0; i < 10000; i++) {
    char n[32], s[32];
    snprintf(n, sizeof n, "%zu", i + 1);
    snprintf(s, sizeof s, "row-%zu", i + 1);
    size_t len;
    const char *a = dbp_result_value(r, i, 0, &len);
    if (a == NULL || len != strlen(n) || strcmp(a, n) != 0) CHECK(!"column n differs");
    const char *b = dbp_result_value(r, i, 1, &len);
    if (b == NULL || len != strlen(s) || strcmp(b, s) != 0) CHECK(!"column s differs");
  }
  CHECK(first == dbp_result_value(r, 0, 1, NULL));
  dbp_result_free(r);
  /* The same as streamed, too. */
  streamed s;
  CHECK(stream_all(c, d->rows_10k, 0, NULL, &s) == 0);
  CHECK_RC(c, dbp_query_all(c, d->rows_10k, 0, NULL, 30000, 0, &r), 0);
  int rc = same_as_streamed(r, &s, d->rows_10k);
  dbp_result_free(r);
  streamed_free(&s);
  CHECK(rc == 0);
  dbp_conn_close(c);
  return 0;
}

QA_TEST(rows_a_statement_returns_count_as_affected, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(c, dbp_exec(c, d->ins_create, 0, NULL, 10000, NULL), 0);
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->ins_returning, 0, NULL, 10000, 0, &r), 0);
  CHECK(dbp_result_nrows(r) == 3 && dbp_result_affected(r) == 3);
  CHECK(strcmp(dbp_result_value(r, 0, 0, NULL), "7") == 0);
  CHECK(strcmp(dbp_result_value(r, 2, 0, NULL), "9") == 0);
  dbp_result_free(r);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT COUNT(*) FROM qa_ins", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "3") == 0);
  /* Without RETURNING: no columns, no rows, the count. */
  r = NULL;
  CHECK_RC(c, dbp_query_all(c, "INSERT INTO qa_ins VALUES (1), (2)", 0, NULL, 10000, 0, &r), 0);
  CHECK(dbp_result_ncols(r) == 0 && dbp_result_nrows(r) == 0 && dbp_result_affected(r) == 2);
  dbp_result_free(r);
  CHECK_RC(c, dbt_one_value(c, "SELECT COUNT(*) FROM qa_ins", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "5") == 0);
  dbp_conn_close(c);
  return 0;
}

/* ---- the bound ---- */

QA_TEST(too_big_leaves_the_connection_idle, 120) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = (dbp_result *)&r; /* anything but NULL */
  CHECK_RC(c, dbp_query_all(c, d->huge, 0, NULL, 60000, 100000, &r), DBP_ETOOBIG);
  CHECK(r == NULL);
  CHECK(dbp_conn_error(c)->code == DBP_ETOOBIG);
  CHECK(strstr(dbp_conn_error(c)->message, "100000 bytes") != NULL);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK(still_usable(c) == 0);
  /* Exactly the bound fits; a byte less does not. */
  CHECK_RC(c, dbp_query_all(c, d->ten_abcd, 0, NULL, 10000, 40, &r), 0);
  CHECK(dbp_result_nrows(r) == 10);
  CHECK(strcmp(dbp_result_value(r, 9, 0, NULL), "abcd") == 0);
  dbp_result_free(r);
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, d->ten_abcd, 0, NULL, 10000, 39, &r), DBP_ETOOBIG);
  CHECK(r == NULL);
  CHECK(still_usable(c) == 0);
  /* The default bound takes what the small one refused. */
  CHECK_RC(c, dbp_query_all(c, d->ten_abcd, 0, NULL, 10000, 0, &r), 0);
  CHECK(dbp_result_nrows(r) == 10);
  dbp_result_free(r);
  /* Within a transaction the rest is abandoned the same way: the session
   * stays in its transaction (which a statement cancelled on PostgreSQL
   * fails), and a ROLLBACK ends it. */
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_query_all(c, d->huge, 0, NULL, 60000, 4096, &r), DBP_ETOOBIG);
  CHECK(r == NULL);
  if (!dbp_conn_is_broken(c)) {
    CHECK(dbp_conn_in_transaction(c));
    CHECK_RC(c, dbp_exec(c, "ROLLBACK", 0, NULL, 10000, NULL), 0);
    CHECK(still_usable(c) == 0);
  }
  dbp_conn_close(c);
  return 0;
}

/* ---- errors ---- */

QA_TEST(errors_leave_out_null, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, "SELEC 1", 0, NULL, 10000, 0, &r), DBP_EQUERY);
  CHECK(r == NULL);
  CHECK(dbp_conn_error(c)->code == DBP_EQUERY);
  CHECK(dbp_conn_error(c)->sqlstate[0] != '\0');
  CHECK(still_usable(c) == 0);
  /* A statement without a result set is an empty result without columns. */
  r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->no_rows_sql, 0, NULL, 10000, 0, &r), 0);
  CHECK(r != NULL && dbp_result_ncols(r) == 0 && dbp_result_nrows(r) == 0);
  dbp_result_free(r);
  CHECK(still_usable(c) == 0);
  /* Misuse. */
  CHECK_RC(c, dbp_query_all(c, "SELECT 1", 0, NULL, 10000, 0, NULL), DBP_EINVAL);
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, NULL, 0, NULL, 10000, 0, &r), DBP_EINVAL);
  CHECK(r == NULL);
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(NULL, "SELECT 1", 0, NULL, 10000, 0, &r), DBP_EINVAL);
  CHECK(r == NULL);
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, d->select_p1, 1, NULL, 10000, 0, &r), DBP_EINVAL);
  CHECK(r == NULL);
  /* A result still open on the connection. */
  CHECK_RC(c, dbp_query(c, d->rows_10k, 0, NULL, 10000), 0);
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, "SELECT 1", 0, NULL, 10000, 0, &r), DBP_ESTATE);
  CHECK(r == NULL);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK(still_usable(c) == 0);
  dbp_conn_close(c);
  return 0;
}

QA_TEST(timeout_cancels_and_leaves_out_null, 120) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_result *r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, d->sleep10, 0, NULL, 200, 0, &r), DBP_ETIMEDOUT);
  CHECK(r == NULL);
  if (!dbp_conn_is_broken(c)) CHECK(still_usable(c) == 0);
  if (dbp_conn_is_broken(c)) {
    dbp_conn_close(c);
    CHECK_RC(NULL, open_db(rt, d, &c), 0);
  }
  /* Rows first, then the wait: the timeout covers the rows too, and what
   * was read is dropped. */
  r = (dbp_result *)&r;
  CHECK_RC(c, dbp_query_all(c, d->rows_then, 0, NULL, 1000, 0, &r), DBP_ETIMEDOUT);
  CHECK(r == NULL);
  if (!dbp_conn_is_broken(c)) CHECK(still_usable(c) == 0);
  /* A zero timeout does not wait: it fails before the server is asked. */
  if (!dbp_conn_is_broken(c)) {
    r = (dbp_result *)&r;
    CHECK_RC(c, dbp_query_all(c, d->sleep10, 0, NULL, 0, 0, &r), DBP_ETIMEDOUT);
    CHECK(r == NULL);
    CHECK(still_usable(c) == 0);
  }
  dbp_conn_close(c);
  return 0;
}

QA_TEST(the_result_outlives_its_connection, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  dbp_param p = dbt_param("kept");
  dbp_result *r = NULL;
  CHECK_RC(c, dbp_query_all(c, d->select_p1, 1, &p, 10000, 0, &r), 0);
  dbp_conn_close(c);
  CHECK(dbp_result_nrows(r) == 1);
  CHECK(strcmp(dbp_result_column(r, 0)->name, "v") == 0);
  CHECK(strcmp(dbp_result_value(r, 0, 0, NULL), "kept") == 0);
  dbp_result_free(r);
  return 0;
}
