/* The PostgreSQL driver against a real server.
 *
 * Each test makes a runtime, runs its body in a coroutine (the database
 * calls wait), and checks what the body recorded. Bodies check with
 * cr_expect and return nonzero on the first failure, so nothing jumps off a
 * coroutine stack.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db/driver.h"
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
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

static dbp_param P(const char *s) {
  return (dbp_param){s, s ? strlen(s) : 0};
}

/* True when the value is exactly the C string s. */
static bool val_is(const dbp_row *r, size_t i, const char *s) {
  return r->vals[i] != NULL && r->lens[i] == strlen(s) && memcmp(r->vals[i], s, r->lens[i]) == 0;
}

/* Runs a one-row, one-column query and copies the value as a string. */
static int one_value(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, char *out,
                     size_t len) {
  int rc = dbp_query(c, sql, np, ps, 10000);
  if (rc != 0) return rc;
  dbp_row row;
  rc = dbp_fetch(c, &row);
  if (rc != 1) return rc < 0 ? rc : DBP_EPROTO;
  size_t n = row.vals[0] ? row.lens[0] : 0;
  if (n >= len) n = len - 1;
  memcpy(out, row.vals[0] ? row.vals[0] : "", n);
  out[n] = '\0';
  rc = dbp_fetch(c, &row);
  return rc == 0 ? 0 : (rc < 0 ? rc : DBP_EPROTO);
}

/* ---- types ---- */

typedef struct type_case {
  const char *sqltype;
  const char *in;  /* parameter text */
  const char *out; /* expected text (NULL = same as in) */
  size_t outlen;   /* for binary expectations; 0 = strlen(out) */
  dbp_type type;
  const char *db_type;
} type_case;

static const type_case pg_cases[] = {
    {"int2", "-32768", NULL, 0, DBP_T_INTEGER, "int2"},
    {"int4", "2147483647", NULL, 0, DBP_T_INTEGER, "int4"},
    {"int8", "-9223372036854775808", NULL, 0, DBP_T_INTEGER, "int8"},
    {"oid", "4294967295", NULL, 0, DBP_T_INTEGER, "oid"},
    {"numeric(30,10)", "12345678901234567890.0123456789", NULL, 0, DBP_T_NUMERIC, "numeric"},
    {"numeric", "NaN", NULL, 0, DBP_T_NUMERIC, "numeric"},
    {"float4", "1.5", NULL, 0, DBP_T_FLOAT, "float4"},
    {"float8", "0.1", NULL, 0, DBP_T_FLOAT, "float8"},
    {"float8", "-Infinity", NULL, 0, DBP_T_FLOAT, "float8"},
    {"bool", "true", "t", 0, DBP_T_BOOL, "bool"},
    {"bool", "false", "f", 0, DBP_T_BOOL, "bool"},
    {"text", "h\xc3\xa9llo, \"world\"\n\ttab\\", NULL, 0, DBP_T_TEXT, "text"},
    {"varchar(10)", "abc", NULL, 0, DBP_T_TEXT, "varchar"},
    {"char(4)", "ab", "ab  ", 0, DBP_T_TEXT, "bpchar"},
    {"name", "pg_class", NULL, 0, DBP_T_TEXT, "name"},
    {"uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0,
     DBP_T_TEXT, "uuid"},
    {"bytea", "\\x00ff0a5c27", "\x00\xff\x0a\x5c\x27", 5, DBP_T_BYTES, "bytea"},
    {"bytea", "\\x", "", 0, DBP_T_BYTES, "bytea"},
    {"json", "{\"a\": [1, 2.50]}", NULL, 0, DBP_T_JSON, "json"},
    {"jsonb", "{\"b\":1,  \"a\":\"x\"}", "{\"a\": \"x\", \"b\": 1}", 0, DBP_T_JSON, "jsonb"},
    {"date", "2024-02-29", NULL, 0, DBP_T_DATE, "date"},
    {"time", "23:59:59.999999", NULL, 0, DBP_T_TIME, "time"},
    {"timetz", "12:34:56+02", NULL, 0, DBP_T_TIME, "timetz"},
    {"timestamp", "2024-02-29 12:34:56.5", NULL, 0, DBP_T_TIMESTAMP, "timestamp"},
    {"timestamptz", "2024-02-29 12:34:56+02", "2024-02-29 10:34:56+00", 0, DBP_T_TIMESTAMP,
     "timestamptz"},
    {"interval", "1 day 02:00:00", NULL, 0, DBP_T_OTHER, "interval"},
    {"int4[]", "{1,2,3}", NULL, 0, DBP_T_OTHER, "_int4"},
    {"inet", "10.1.2.3", NULL, 0, DBP_T_OTHER, "inet"},
};

static int types_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK(dbp_conn_kind(c) == DBP_DB_PG);
  CHECK(dbp_conn_rt(c) == rt);
  CHECK_RC(c, dbp_exec(c, "SET TimeZone = 'UTC'", 0, NULL, 10000, NULL), 0);
  size_t n = sizeof pg_cases / sizeof pg_cases[0];
  for (size_t i = 0; i < n; i++) {
    const type_case *tc = &pg_cases[i];
    char sql[200];
    CHECK_RC(c, dbp_exec(c, "DROP TABLE IF EXISTS pg_types_t", 0, NULL, 10000, NULL), 0);
    snprintf(sql, sizeof sql, "CREATE TEMP TABLE pg_types_t (v %s, w %s)", tc->sqltype,
             tc->sqltype);
    CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
    dbp_param ps[2] = {P(tc->in), P(NULL)};
    int64_t affected = -1;
    CHECK_RC(c, dbp_exec(c, "INSERT INTO pg_types_t VALUES ($1, $2)", 2, ps, 10000, &affected), 0);
    CHECK(affected == 1);
    CHECK_RC(c, dbp_query(c, "SELECT v, w FROM pg_types_t", 0, NULL, 10000), 0);
    CHECK(dbp_ncols(c) == 2);
    const dbp_column *cols = dbp_columns(c);
    cr_expect_eq(cols[0].type, tc->type, "%s: type %s", tc->sqltype, dbp_type_name(cols[0].type));
    cr_expect_str_eq(cols[0].db_type, tc->db_type, "%s", tc->sqltype);
    cr_expect_str_eq(cols[0].name, "v");
    dbp_row row;
    CHECK_RC(c, dbp_fetch(c, &row), 1);
    CHECK(row.ncols == 2);
    const char *want = tc->out ? tc->out : tc->in;
    size_t wlen = tc->outlen ? tc->outlen : strlen(want);
    cr_expect(row.vals[0] != NULL && row.lens[0] == wlen && memcmp(row.vals[0], want, wlen) == 0,
              "%s: got '%.*s' (%zu bytes)", tc->sqltype, (int)row.lens[0],
              row.vals[0] ? row.vals[0] : "(null)", row.lens[0]);
    cr_expect_null(row.vals[1], "%s: NULL parameter came back as a value", tc->sqltype);
    CHECK_RC(c, dbp_fetch(c, &row), 0);
  }
  dbp_conn_close(c);
  return 0;
}

Test(pg, every_type_round_trips, .timeout = 60) {
  dbt_run(types_body, NULL);
}

static int null_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  dbp_param ps[3] = {P(NULL), P(""), P("x")};
  CHECK_RC(
      c, dbp_query(c, "SELECT $1::text, $2::text, $3::text, NULL::bytea, ''::bytea", 3, ps, 10000),
      0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK(r.ncols == 5);
  CHECK(r.vals[0] == NULL);
  CHECK(r.vals[1] != NULL && r.lens[1] == 0);
  CHECK(val_is(&r, 2, "x"));
  CHECK(r.vals[3] == NULL);
  CHECK(r.vals[4] != NULL && r.lens[4] == 0);
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  /* After the end, fetch keeps saying so. */
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, null_and_empty_string_differ, .timeout = 30) {
  dbt_run(null_body, NULL);
}

static int big_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  size_t n = 16u << 20;
  char *big = malloc(n);
  CHECK(big != NULL);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + (i * 7 + i / 997) % 26);
  CHECK_RC(c, dbp_exec(c, "CREATE TEMP TABLE big_t (v text, b bytea)", 0, NULL, 10000, NULL), 0);
  /* The text value, and a 4 MiB bytea with every byte value, in hex. */
  size_t bn = 4u << 20;
  char *hex = malloc(2 + 2 * bn);
  CHECK(hex != NULL);
  hex[0] = '\\';
  hex[1] = 'x';
  for (size_t i = 0; i < bn; i++) {
    static const char d[] = "0123456789abcdef";
    unsigned char b = (unsigned char)(i * 31 + i / 256);
    hex[2 + 2 * i] = d[b >> 4];
    hex[3 + 2 * i] = d[b & 15];
  }
  dbp_param ps[2] = {{big, n}, {hex, 2 + 2 * bn}};
  CHECK_RC(c, dbp_exec(c, "INSERT INTO big_t VALUES ($1, $2)", 2, ps, 60000, NULL), 0);
  CHECK_RC(c, dbp_query(c, "SELECT v, b FROM big_t", 0, NULL, 60000), 0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK(r.lens[0] == n && memcmp(r.vals[0], big, n) == 0);
  CHECK(r.lens[1] == bn);
  for (size_t i = 0; i < bn; i++)
    if ((unsigned char)r.vals[1][i] != (unsigned char)(i * 31 + i / 256)) CHECK(!"bytea differs");
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  free(big);
  free(hex);
  dbp_conn_close(c);
  return 0;
}

Test(pg, sixteen_mib_value_round_trips, .timeout = 120) {
  dbt_run(big_body, NULL);
}

static int stream_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(c,
           dbp_query(c,
                     "SELECT g, 'row-' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g * 2 END "
                     "FROM generate_series(1, 100000) AS g",
                     0, NULL, 60000),
           0);
  CHECK(dbp_ncols(c) == 3);
  dbp_row r;
  int64_t want = 1;
  int rc;
  while ((rc = dbp_fetch(c, &r)) == 1) {
    char a[32], b[32], d[32];
    snprintf(a, sizeof a, "%" PRId64, want);
    snprintf(b, sizeof b, "row-%" PRId64, want);
    snprintf(d, sizeof d, "%" PRId64, want * 2);
    if (!val_is(&r, 0, a) || !val_is(&r, 1, b)) CHECK(!"row value differs");
    if (want % 3 == 0 ? r.vals[2] != NULL : !val_is(&r, 2, d)) CHECK(!"third column differs");
    want++;
  }
  CHECK_RC(c, rc, 0);
  CHECK(want == 100001);
  /* The connection is idle again. */
  char v[16];
  CHECK_RC(c, one_value(c, "SELECT 1", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "1") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, streams_100k_rows, .timeout = 120) {
  dbt_run(stream_body, NULL);
}

static int bad_sql_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(c, dbp_query(c, "SELEC 1", 0, NULL, 10000), DBP_EQUERY);
  const dbp_dberr *e = dbp_conn_error(c);
  CHECK(e->code == DBP_EQUERY);
  CHECK(strcmp(e->sqlstate, "42601") == 0);
  CHECK(strstr(e->message, "syntax error") != NULL);
  CHECK(!e->retryable);
  CHECK_RC(c, dbp_exec(c, "SELECT * FROM no_such_table_here", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, "42P01") == 0);
  CHECK(strstr(dbp_conn_error(c)->message, "no_such_table_here") != NULL);
  /* An error in the middle of a stream. */
  CHECK_RC(c, dbp_query(c, "SELECT 10 / (3 - g) FROM generate_series(1, 5) g", 0, NULL, 10000), 0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK_RC(c, dbp_fetch(c, &r), DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, "22012") == 0);
  char buf[600];
  dbp_dberr_format(dbp_conn_error(c), buf, sizeof buf);
  CHECK(strstr(buf, "EQUERY: division by zero (SQLSTATE 22012)") != NULL);
  CHECK(!dbp_conn_is_broken(c));
  char v[16];
  CHECK_RC(c, one_value(c, "SELECT 2", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "2") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, bad_sql_reports_server_message_and_sqlstate, .timeout = 30) {
  dbt_run(bad_sql_body, NULL);
}

static int splice_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TEMP TABLE victims (name text)", 0, NULL, 10000, NULL), 0);
  const char *evil[] = {"'; DROP TABLE victims; --", "Robert'); DROP TABLE victims;--",
                        "a\\'b\"c$1$$x$$", "$1"};
  for (size_t i = 0; i < 4; i++) {
    dbp_param p = P(evil[i]);
    CHECK_RC(c, dbp_exec(c, "INSERT INTO victims VALUES ($1)", 1, &p, 10000, NULL), 0);
    char v[64];
    CHECK_RC(c, one_value(c, "SELECT $1::text", 1, &p, v, sizeof v), 0);
    CHECK(strcmp(v, evil[i]) == 0);
  }
  char v[16];
  CHECK_RC(c, one_value(c, "SELECT count(*) FROM victims", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "4") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, parameters_are_never_spliced, .timeout = 30) {
  dbt_run(splice_body, NULL);
}

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
  CHECK_RC(c, one_value(c, "SELECT 3", 0, NULL, v, sizeof v), 0);
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
  CHECK_RC(c, one_value(c, "SELECT 4", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "4") == 0);
  free(all);
  free(want);
  dbp_conn_close(c);
  return 0;
}

Test(pg, copy_to_stdout_streams_and_matches, .timeout = 60) {
  dbt_run(copy_body, NULL);
}

static int describe_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(c,
           dbp_exec(c, "CREATE TEMP TABLE d_t (id int8, name varchar(20), at timestamptz)", 0, NULL,
                    10000, NULL),
           0);
  CHECK_RC(c,
           dbp_describe(c, "SELECT id, name, at, id::numeric AS n, $1::text AS p FROM d_t", 10000),
           0);
  CHECK(dbp_ncols(c) == 5);
  const dbp_column *cols = dbp_columns(c);
  CHECK(strcmp(cols[0].name, "id") == 0 && cols[0].type == DBP_T_INTEGER);
  CHECK(strcmp(cols[0].db_type, "int8") == 0 && cols[0].db_type_id == 20);
  CHECK(strcmp(cols[1].name, "name") == 0 && cols[1].type == DBP_T_TEXT);
  CHECK(cols[2].type == DBP_T_TIMESTAMP && strcmp(cols[2].db_type, "timestamptz") == 0);
  CHECK(cols[3].type == DBP_T_NUMERIC);
  CHECK(cols[4].type == DBP_T_TEXT);
  /* Nothing ran: the connection is idle and a fetch has nothing. */
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  CHECK_RC(c, dbp_describe(c, "SELECT FROM nowhere_at_all", 10000), DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, "42P01") == 0);
  /* A statement without a result set is no query: the export's describe
   * step must not take it for an empty one. */
  CHECK_RC(c, dbp_describe(c, "CREATE TEMP TABLE x_t (a int)", 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "the statement returned no result set") != NULL);
  CHECK_RC(c, dbp_describe(c, "SET TIME ZONE 'UTC'", 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "the statement returned no result set") != NULL);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_describe(c, "SELECT 1 AS one", 10000), 0);
  CHECK(dbp_ncols(c) == 1);
  dbp_conn_close(c);
  return 0;
}

Test(pg, describe_gives_columns_without_rows, .timeout = 30) {
  dbt_run(describe_body, NULL);
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
  dbp_param p = P("3");
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
  CHECK_RC(c, one_value(c, "SELECT count(*) FROM tx_t", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "4") == 0);
  /* Misuse is refused without harm. */
  CHECK_RC(c, dbp_query(c, "SELECT $1::int", 2, (dbp_param[]){P("1"), P("2")}, 10000), DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, "08P01") == 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, one_value(c, "SELECT 6", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "6") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(pg, transactions_and_state, .timeout = 30) {
  dbt_run(tx_body, NULL);
}

/* ---- cancellation ---- */

/* Asks a second connection whether backend `pid` is running a statement. */
static int pg_active(dbp_conn *mon, int64_t pid, bool *active) {
  char id[32], v[16];
  snprintf(id, sizeof id, "%" PRId64, pid);
  dbp_param p = P(id);
  int rc = one_value(mon,
                     "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND state <> "
                     "'idle'",
                     1, &p, v, sizeof v);
  *active = strcmp(v, "0") != 0;
  return rc;
}

/* After an interrupted statement: returned within a second, nothing runs
 * on the server, and the connection works (or is marked broken). */
static int after_cancel(dbp_rt *rt, dbp_conn *c, dbp_conn *mon, uint64_t t0) {
  uint64_t took = dbp_now(rt) - t0;
  cr_expect_lt(took, 1000, "the interrupted statement took %" PRIu64 " ms", took);
  CHECK(took < 1000);
  if (dbp_conn_is_broken(c)) return 0;
  bool active = true;
  CHECK_RC(mon, pg_active(mon, dbp_conn_backend_id(c), &active), 0);
  CHECK(!active);
  char v[16];
  CHECK_RC(c, one_value(c, "SELECT 1", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "1") == 0);
  return 0;
}

static int timeout_arg_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(NULL, open_pg(rt, &mon), 0);
  uint64_t t0 = dbp_now(rt);
  CHECK_RC(c, dbp_exec(c, "SELECT pg_sleep(10)", 0, NULL, 100, NULL), DBP_ETIMEDOUT);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  /* The same through a query and its rows. */
  t0 = dbp_now(rt);
  CHECK_RC(c, dbp_query(c, "SELECT pg_sleep(10)", 0, NULL, 100), DBP_ETIMEDOUT);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  t0 = dbp_now(rt);
  /* Rows first (enough that the server sends them), then a long wait. */
  CHECK_RC(c,
           dbp_query(c,
                     "SELECT g, pg_sleep(CASE WHEN g = 20000 THEN 10 ELSE 0 END) "
                     "FROM generate_series(1, 20000) g",
                     0, NULL, 500),
           0);
  dbp_row r;
  int rc, rows = 0;
  while ((rc = dbp_fetch(c, &r)) == 1) rows++;
  CHECK(rows > 0 && rows < 20000);
  CHECK_RC(c, rc, DBP_ETIMEDOUT);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(pg, timeout_argument_cancels_on_server, .timeout = 60) {
  dbt_run(timeout_arg_body, NULL);
}

static int deadline_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(NULL, open_pg(rt, &mon), 0);
  uint64_t tok;
  uint64_t t0 = dbp_now(rt);
  CHECK(dbp_deadline_push(rt, 100, &tok) == 0);
  int rc = dbp_exec(c, "SELECT pg_sleep(10)", 0, NULL, DBP_FOREVER, NULL);
  dbp_deadline_pop(rt, tok);
  CHECK_RC(c, rc, DBP_ETIMEDOUT);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(pg, coroutine_deadline_cancels_on_server, .timeout = 60) {
  dbt_run(deadline_body, NULL);
}

typedef struct victim {
  dbp_conn *c;
  int rc;
  bool started;
} victim;

static int victim_main(void *arg, void **result) {
  (void)result;
  victim *v = arg;
  v->started = true;
  v->rc = dbp_exec(v->c, "SELECT pg_sleep(10)", 0, NULL, DBP_FOREVER, NULL);
  return v->rc;
}

/* Runs pg_sleep(10) in another coroutine; after 100 ms stops it with
 * dbp_cancel (how == 0) or dbp_conn_cancel (how == 1). */
static int cancel_body(dbp_rt *rt, void *arg) {
  int how = *(int *)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(NULL, open_pg(rt, &mon), 0);
  victim v = {c, 0, false};
  dbp_co *co;
  CHECK(dbp_spawn(rt, &co, victim_main, &v, NULL) == 0);
  uint64_t t0 = dbp_now(rt);
  CHECK(dbp_sleep(rt, 100) == 0);
  CHECK(v.started);
  if (how == 0)
    dbp_cancel(co);
  else
    CHECK_RC(c, dbp_conn_cancel(c), 0);
  int rc = dbp_join(co, NULL);
  CHECK_RC(c, rc, DBP_ECANCELED);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(pg, coroutine_cancel_cancels_on_server, .timeout = 60) {
  int how = 0;
  dbt_run(cancel_body, &how);
}

Test(pg, conn_cancel_from_another_coroutine, .timeout = 60) {
  int how = 1;
  dbt_run(cancel_body, &how);
}

static int close_early_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  CHECK_RC(NULL, open_pg(rt, &mon), 0);
  CHECK_RC(c,
           dbp_query(c, "SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) g", 0, NULL,
                     DBP_FOREVER),
           0);
  dbp_row r;
  for (int i = 0; i < 10; i++) CHECK_RC(c, dbp_fetch(c, &r), 1);
  uint64_t t0 = dbp_now(rt);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK(after_cancel(rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  /* A small result closed early needs no cancel. */
  CHECK_RC(c, dbp_query(c, "SELECT generate_series(1, 3)", 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK_RC(c, dbp_query_close(c), 0); /* idle: a no-op */
  char v[16];
  CHECK_RC(c, one_value(c, "SELECT 5", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "5") == 0);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(pg, query_close_abandons_a_big_result, .timeout = 60) {
  dbt_run(close_early_body, NULL);
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

/* ---- keepalives ---- */

static int sockopt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

static int keepalive_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_pg(rt, &c), 0);
  int fd = dbp__conn_socket(c);
  CHECK(fd >= 0);
  CHECK(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 60);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 10);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), 6);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 60000);
  dbp_conn_close(c);
  /* The DSN's own settings win. */
  char dsn[600];
  snprintf(dsn, sizeof dsn, "%s%ckeepalives_idle=33&tcp_user_timeout=4000", dbt_pg_dsn(),
           strchr(dbt_pg_dsn(), '?') ? '&' : '?');
  dbp_dberr e;
  CHECK(dbp_conn_open(rt, dsn, 10000, &c, &e) == 0);
  fd = dbp__conn_socket(c);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 33);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 10);
  cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 4000);
  dbp_conn_close(c);
  return 0;
}

Test(pg, keepalives_are_on_by_default, .timeout = 30) {
  dbt_run(keepalive_body, NULL);
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
  dbp_param p = P(id);
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
  CHECK_RC(c, one_value(c, "SELECT current_setting('application_name')", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "changed") == 0);
  /* The full reset: DISCARD ALL, even after a transaction. */
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK_RC(c, one_value(c, "SELECT current_setting('application_name')", 0, NULL, v, sizeof v), 0);
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
