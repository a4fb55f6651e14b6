/* What a connection promises on both databases, against real servers: one
 * body per behaviour, run once on PostgreSQL (suite conn_pg) and once on
 * MariaDB (suite conn_my), with the SQL that differs between them taken
 * from the dialect's table below. Where MariaDB runs a statement two ways
 * (the text protocol without parameters, a prepared statement with them),
 * its table names both forms. What only one database does stays in
 * test_pg.c or test_mysql.c.
 *
 * Each test makes a runtime, runs its body in a coroutine (the database
 * calls wait), and checks what the body recorded. Bodies check with
 * cr_expect and return nonzero on the first failure, so nothing jumps off a
 * coroutine stack.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "db/driver.h" /* the driver's socket, for the keepalive tests */
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "rttest.h"

/* ---- the dialects ---- */

typedef struct type_case {
  const char *sqltype;
  const char *expr; /* how the parameter goes in (the placeholder when NULL) */
  const char *in;   /* parameter text */
  size_t inlen;     /* for binary parameters; 0 = strlen(in) */
  const char *out;  /* expected text (NULL = same as in) */
  size_t outlen;    /* for binary expectations; 0 = strlen(out) */
  dbp_type type;
  const char *db_type;
} type_case;

typedef struct sql_np {
  const char *sql; /* NULL: none */
  size_t np;       /* parameters it takes */
} sql_np;

typedef struct sql_rc {
  const char *sql; /* NULL: none */
  int rc;          /* what it gives */
} sql_rc;

typedef struct dialect {
  dbp_db_kind kind;
  const char *(*dsn)(void);
  const char *ph1, *ph2;   /* the first and second placeholder */
  const char *select_p1;   /* one parameter back as text */
  const char *create_temp; /* CREATE TEMP TABLE */
  const char *drop_temp;   /* DROP TABLE IF EXISTS, for a temporary one */
  const char *utc;         /* the session's time zone to UTC */
  const char *noop;        /* a statement without rows that does nothing */
  const char *sleep10;     /* ten seconds of silence */
  const char *sleep_p1;    /* as many seconds as the parameter says */
  /* Is session $1 running a statement? (a count, from another session) */
  const char *active_sql;

  /* every_type_round_trips */
  const type_case *types;
  size_t ntypes;
  const char *types_prepared; /* the same read back with one parameter */

  /* null_and_empty_string_differ */
  sql_np nulls[2];

  /* sixteen_mib_value_round_trips */
  const char *big_create;
  bool big_bytes_as_hex; /* the binary parameter is sent as \x + hex */
  const char *big_prepared;

  /* streams_100k_rows: columns n, 'row-' || n, NULL when n % 3 = 0 else
   * 2n; the prepared form takes the 3 as its parameter */
  const char *stream, *stream_prepared;

  /* bad_sql_reports_server_message_and_codes */
  const char *syntax_state, *syntax_msg, *syntax_format;
  int syntax_errno; /* 0: the database has no error numbers */
  const char *notable_state;
  int notable_errno;
  const char *notable_prepared;
  sql_rc too_few_params;
  const char *mid_sql; /* five rows, something going wrong on the third */
  int mid_rows, mid_rc;
  const char *mid_state, *mid_format;

  /* describe_gives_columns_without_rows */
  const char *d_create, *d_sql;
  size_t d_ncols;
  const char *d_id_type, *d_at_type;
  uint32_t d_id_type_id;
  sql_rc d_nonquery[2];

  /* timeout_argument_cancels_on_server */
  const char *rows_then_wait; /* 20000 rows, a long wait before the last */

  /* query_close_abandons_a_big_result */
  const char *huge, *huge_prepared; /* the prepared one takes "x" */
  const char *three_rows;
} dialect;

static const char *pg_dsn(void) {
  return dbt_pg_dsn();
}

static const char *my_dsn(void) {
  return dbt_my_dsn();
}

static const type_case pg_types[] = {
    {"int2", NULL, "-32768", 0, NULL, 0, DBP_T_INTEGER, "int2"},
    {"int4", NULL, "2147483647", 0, NULL, 0, DBP_T_INTEGER, "int4"},
    {"int8", NULL, "-9223372036854775808", 0, NULL, 0, DBP_T_INTEGER, "int8"},
    {"oid", NULL, "4294967295", 0, NULL, 0, DBP_T_INTEGER, "oid"},
    {"numeric(30,10)", NULL, "12345678901234567890.0123456789", 0, NULL, 0, DBP_T_NUMERIC,
     "numeric"},
    {"numeric", NULL, "NaN", 0, NULL, 0, DBP_T_NUMERIC, "numeric"},
    {"float4", NULL, "1.5", 0, NULL, 0, DBP_T_FLOAT, "float4"},
    {"float8", NULL, "0.1", 0, NULL, 0, DBP_T_FLOAT, "float8"},
    {"float8", NULL, "-Infinity", 0, NULL, 0, DBP_T_FLOAT, "float8"},
    {"bool", NULL, "true", 0, "t", 0, DBP_T_BOOL, "bool"},
    {"bool", NULL, "false", 0, "f", 0, DBP_T_BOOL, "bool"},
    {"text", NULL, "h\xc3\xa9llo, \"world\"\n\ttab\\", 0, NULL, 0, DBP_T_TEXT, "text"},
    {"varchar(10)", NULL, "abc", 0, NULL, 0, DBP_T_TEXT, "varchar"},
    {"char(4)", NULL, "ab", 0, "ab  ", 0, DBP_T_TEXT, "bpchar"},
    {"name", NULL, "pg_class", 0, NULL, 0, DBP_T_TEXT, "name"},
    {"uuid", NULL, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", 0,
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0, DBP_T_TEXT, "uuid"},
    {"bytea", NULL, "\\x00ff0a5c27", 0, "\x00\xff\x0a\x5c\x27", 5, DBP_T_BYTES, "bytea"},
    {"bytea", NULL, "\\x", 0, "", 0, DBP_T_BYTES, "bytea"},
    {"json", NULL, "{\"a\": [1, 2.50]}", 0, NULL, 0, DBP_T_JSON, "json"},
    {"jsonb", NULL, "{\"b\":1,  \"a\":\"x\"}", 0, "{\"a\": \"x\", \"b\": 1}", 0, DBP_T_JSON,
     "jsonb"},
    {"date", NULL, "2024-02-29", 0, NULL, 0, DBP_T_DATE, "date"},
    {"time", NULL, "23:59:59.999999", 0, NULL, 0, DBP_T_TIME, "time"},
    {"timetz", NULL, "12:34:56+02", 0, NULL, 0, DBP_T_TIME, "timetz"},
    {"timestamp", NULL, "2024-02-29 12:34:56.5", 0, NULL, 0, DBP_T_TIMESTAMP, "timestamp"},
    {"timestamptz", NULL, "2024-02-29 12:34:56+02", 0, "2024-02-29 10:34:56+00", 0, DBP_T_TIMESTAMP,
     "timestamptz"},
    {"interval", NULL, "1 day 02:00:00", 0, NULL, 0, DBP_T_OTHER, "interval"},
    {"int4[]", NULL, "{1,2,3}", 0, NULL, 0, DBP_T_OTHER, "_int4"},
    {"inet", NULL, "10.1.2.3", 0, NULL, 0, DBP_T_OTHER, "inet"},
};

static const type_case my_types[] = {
    {"TINYINT", NULL, "-128", 0, NULL, 0, DBP_T_INTEGER, "TINYINT"},
    {"BOOLEAN", NULL, "1", 0, NULL, 0, DBP_T_INTEGER, "TINYINT"},
    {"SMALLINT", NULL, "32767", 0, NULL, 0, DBP_T_INTEGER, "SMALLINT"},
    {"MEDIUMINT", NULL, "-8388608", 0, NULL, 0, DBP_T_INTEGER, "MEDIUMINT"},
    {"INT", NULL, "2147483647", 0, NULL, 0, DBP_T_INTEGER, "INT"},
    {"BIGINT", NULL, "-9223372036854775808", 0, NULL, 0, DBP_T_INTEGER, "BIGINT"},
    {"BIGINT UNSIGNED", NULL, "18446744073709551615", 0, NULL, 0, DBP_T_INTEGER, "BIGINT"},
    {"YEAR", NULL, "2024", 0, NULL, 0, DBP_T_INTEGER, "YEAR"},
    {"DECIMAL(30,10)", NULL, "12345678901234567890.0123456789", 0, NULL, 0, DBP_T_NUMERIC,
     "DECIMAL"},
    {"FLOAT", NULL, "1.5", 0, NULL, 0, DBP_T_FLOAT, "FLOAT"},
    {"DOUBLE", NULL, "0.1", 0, NULL, 0, DBP_T_FLOAT, "DOUBLE"},
    {"BIT(1)", "CAST(? AS UNSIGNED)", "1", 0, NULL, 0, DBP_T_INTEGER, "BIT"},
    {"BIT(12)", "CAST(? AS UNSIGNED)", "2748", 0, "\x0a\xbc", 2, DBP_T_BYTES, "BIT"},
    {"CHAR(4)", NULL, "ab", 0, NULL, 0, DBP_T_TEXT, "CHAR"},
    {"VARCHAR(20)", NULL, "h\xc3\xa9llo, \"w\"", 0, NULL, 0, DBP_T_TEXT, "VARCHAR"},
    {"TEXT", NULL, "multi\nline 'q' \\ \t", 0, NULL, 0, DBP_T_TEXT, "TEXT"},
    {"BINARY(3)", NULL, "a\0b", 3, NULL, 3, DBP_T_BYTES, "BINARY"},
    {"VARBINARY(10)", NULL, "\x00\xff\x27\x5c", 4, NULL, 4, DBP_T_BYTES, "VARBINARY"},
    {"BLOB", NULL, "\x00\x01\xfe\xff", 4, NULL, 4, DBP_T_BYTES, "BLOB"},
    {"JSON", NULL, "{\"a\": [1, 2.50]}", 0, NULL, 0, DBP_T_JSON, "JSON"},
    {"DATE", NULL, "2024-02-29", 0, NULL, 0, DBP_T_DATE, "DATE"},
    {"TIME(6)", NULL, "23:59:59.999999", 0, NULL, 0, DBP_T_TIME, "TIME"},
    {"TIME", NULL, "-838:59:59", 0, NULL, 0, DBP_T_TIME, "TIME"},
    {"DATETIME(6)", NULL, "2024-02-29 12:34:56.5", 0, "2024-02-29 12:34:56.500000", 0,
     DBP_T_TIMESTAMP, "DATETIME"},
    {"TIMESTAMP", NULL, "2024-02-29 12:34:56", 0, NULL, 0, DBP_T_TIMESTAMP, "TIMESTAMP"},
    {"ENUM('a','b')", NULL, "b", 0, NULL, 0, DBP_T_TEXT, "ENUM"},
    {"SET('x','y')", NULL, "y,x", 0, "x,y", 0, DBP_T_TEXT, "SET"},
    {"UUID", NULL, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0, NULL, 0, DBP_T_TEXT, "UUID"},
    {"INET6", NULL, "::1", 0, NULL, 0, DBP_T_TEXT, "INET6"},
};

static dialect PG = {
    .kind = DBP_DB_PG,
    .dsn = pg_dsn,
    .ph1 = "$1",
    .ph2 = "$2",
    .select_p1 = "SELECT $1::text",
    .create_temp = "CREATE TEMP TABLE",
    .drop_temp = "DROP TABLE IF EXISTS",
    .utc = "SET TimeZone = 'UTC'",
    .noop = "SELECT 1",
    .sleep10 = "SELECT pg_sleep(10)",
    .sleep_p1 = "SELECT pg_sleep($1::float8)",
    .active_sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND state <> 'idle'",

    .types = pg_types,
    .ntypes = sizeof pg_types / sizeof pg_types[0],

    .nulls = {{"SELECT $1::text, $2::text, $3::text, NULL::bytea, ''::bytea", 3}},

    .big_create = "CREATE TEMP TABLE big_t (v text, b bytea)",
    .big_bytes_as_hex = true,

    .stream =
        "SELECT g, 'row-' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE g * 2 END "
        "FROM generate_series(1, 100000) AS g",

    .syntax_state = "42601",
    .syntax_msg = "syntax error",
    .syntax_format = "(SQLSTATE 42601)",
    .notable_state = "42P01",
    .notable_prepared = "SELECT * FROM no_such_table_here WHERE a = $1",
    .mid_sql = "SELECT 10 / (3 - g) FROM generate_series(1, 5) g",
    .mid_rows = 2,
    .mid_rc = DBP_EQUERY,
    .mid_state = "22012",
    .mid_format = "EQUERY: division by zero (SQLSTATE 22012)",

    .d_create = "CREATE TEMP TABLE d_t (id int8, name varchar(20), at timestamptz)",
    .d_sql = "SELECT id, name, at, id::numeric AS n, $1::text AS p FROM d_t",
    .d_ncols = 5,
    .d_id_type = "int8",
    .d_id_type_id = 20,
    .d_at_type = "timestamptz",
    /* A statement without a result set is no query: the export's describe
     * step must not take it for an empty one. */
    .d_nonquery = {{"CREATE TEMP TABLE x_t (a int)", DBP_EQUERY},
                   {"SET TIME ZONE 'UTC'", DBP_EQUERY}},

    .rows_then_wait =
        "SELECT g, pg_sleep(CASE WHEN g = 20000 THEN 10 ELSE 0 END) "
        "FROM generate_series(1, 20000) g",

    .huge = "SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) g",
    .huge_prepared = "SELECT g, repeat($1::text, 100) FROM generate_series(1, 10000000) g",
    .three_rows = "SELECT generate_series(1, 3)",
};

static dialect MY = {
    .kind = DBP_DB_MYSQL,
    .dsn = my_dsn,
    .ph1 = "?",
    .ph2 = "?",
    .select_p1 = "SELECT ?",
    .create_temp = "CREATE TEMPORARY TABLE",
    .drop_temp = "DROP TEMPORARY TABLE IF EXISTS",
    .utc = "SET time_zone = '+00:00'",
    .noop = "DO 1",
    .sleep10 = "SELECT SLEEP(10)",
    .sleep_p1 = "SELECT SLEEP(?)",
    /* (A session that just answered a command shows it for a moment while
     * the server finishes writing; after a killed statement dbpipe pings,
     * so that moment belongs to the ping, not to the statement.) */
    .active_sql =
        "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND "
        "command NOT IN ('Sleep', 'Ping')",

    .types = my_types,
    .ntypes = sizeof my_types / sizeof my_types[0],
    .types_prepared = "SELECT v, w FROM types_t WHERE 1 = ?",

    .nulls = {{"SELECT NULL, '', 'x', NULL, ''", 0}, {"SELECT ?, ?, ?, NULL, ''", 3}},

    .big_create = "CREATE TEMPORARY TABLE big_t (v LONGTEXT, b LONGBLOB)",
    .big_prepared = "SELECT v, b FROM big_t WHERE 1 = ?",

    .stream =
        "SELECT seq, CONCAT('row-', seq), IF(seq % 3 = 0, NULL, seq * 2) "
        "FROM seq_1_to_100000",
    .stream_prepared =
        "SELECT seq, CONCAT('row-', seq), IF(seq % ? = 0, NULL, seq * 2) "
        "FROM seq_1_to_100000",

    .syntax_state = "42000",
    .syntax_msg = "SQL syntax",
    .syntax_format = "(SQLSTATE 42000, error 1064)",
    .syntax_errno = 1064,
    .notable_state = "42S02",
    .notable_errno = 1146,
    .notable_prepared = "SELECT * FROM no_such_table_here WHERE a = ?",
    .too_few_params = {"SELECT ?, ?", DBP_EINVAL},
    /* MariaDB answers bad JSON with a warning and NULL; a real mid-stream
     * error comes from a statement that fails while sending rows. */
    .mid_sql = "SELECT IF(seq = 3, JSON_EXTRACT('{', '$'), seq) FROM seq_1_to_5",
    .mid_rows = 5,
    .mid_rc = 0,

    .d_create = "CREATE TEMPORARY TABLE d_t (id BIGINT, name VARCHAR(20), at DATETIME)",
    .d_sql = "SELECT id, name, at, CAST(id AS DECIMAL(10,2)) AS n FROM d_t",
    .d_ncols = 4,
    .d_id_type = "BIGINT",
    .d_id_type_id = 8,
    .d_at_type = "DATETIME",
    /* MariaDB describes a statement without rows as no columns. */
    .d_nonquery = {{"DO 1", 0}},

    .rows_then_wait = "SELECT seq, IF(seq = 20000, SLEEP(10), 0) FROM seq_1_to_20000",

    .huge = "SELECT seq, REPEAT('x', 100) FROM seq_1_to_10000000",
    .huge_prepared = "SELECT seq, REPEAT(?, 100) FROM seq_1_to_10000000",
    .three_rows = "SELECT seq FROM seq_1_to_3",
};

/* A test on both databases: the body gets the runtime and the dialect. */
#define CONN_TEST(name, secs)                           \
  static int name##_body(dbp_rt *rt, const dialect *d); \
  static int name##_entry(dbp_rt *rt, void *arg) {      \
    return name##_body(rt, arg);                        \
  }                                                     \
  Test(conn_pg, name, .timeout = secs) {                \
    dbt_run(name##_entry, &PG);                         \
  }                                                     \
  Test(conn_my, name, .timeout = secs) {                \
    dbt_run(name##_entry, &MY);                         \
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

/* ---- values ---- */

/* Checks one row of the types table against the case. */
static void check_type_row(const type_case *tc, const dbp_column *cols, const dbp_row *row,
                           const char *how) {
  cr_expect_eq(cols[0].type, tc->type, "%s (%s): type %s", tc->sqltype, how,
               dbp_type_name(cols[0].type));
  cr_expect_str_eq(cols[0].db_type, tc->db_type, "%s (%s)", tc->sqltype, how);
  cr_expect_str_eq(cols[0].name, "v");
  const char *want = tc->out ? tc->out : tc->in;
  size_t wlen = tc->outlen ? tc->outlen : strlen(want);
  cr_expect(row->vals[0] != NULL && row->lens[0] == wlen && memcmp(row->vals[0], want, wlen) == 0,
            "%s (%s): got '%.*s' (%zu bytes)", tc->sqltype, how, (int)row->lens[0],
            row->vals[0] ? row->vals[0] : "(null)", row->lens[0]);
  cr_expect_null(row->vals[1], "%s (%s): NULL came back as a value", tc->sqltype, how);
}

CONN_TEST(every_type_round_trips, 60) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK(dbp_conn_kind(c) == d->kind);
  CHECK(dbp_conn_rt(c) == rt);
  CHECK_RC(c, dbp_exec(c, d->utc, 0, NULL, 10000, NULL), 0);
  for (size_t i = 0; i < d->ntypes; i++) {
    const type_case *tc = &d->types[i];
    char sql[200];
    snprintf(sql, sizeof sql, "%s types_t", d->drop_temp);
    CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
    snprintf(sql, sizeof sql, "%s types_t (v %s, w %s)", d->create_temp, tc->sqltype, tc->sqltype);
    CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
    snprintf(sql, sizeof sql, "INSERT INTO types_t VALUES (%s, %s)", tc->expr ? tc->expr : d->ph1,
             d->ph2);
    dbp_param ps[2] = {{tc->in, tc->inlen ? tc->inlen : strlen(tc->in)}, dbt_param(NULL)};
    int64_t affected = -1;
    CHECK_RC(c, dbp_exec(c, sql, 2, ps, 10000, &affected), 0);
    CHECK(affected == 1);
    /* Read back without parameters ... */
    CHECK_RC(c, dbp_query(c, "SELECT v, w FROM types_t", 0, NULL, 10000), 0);
    CHECK(dbp_ncols(c) == 2);
    dbp_row row;
    CHECK_RC(c, dbp_fetch(c, &row), 1);
    CHECK(row.ncols == 2);
    check_type_row(tc, dbp_columns(c), &row, "text protocol");
    CHECK_RC(c, dbp_fetch(c, &row), 0);
    /* ... and through a prepared statement: the same text. */
    if (d->types_prepared == NULL) continue;
    dbp_param one = dbt_param("1");
    CHECK_RC(c, dbp_query(c, d->types_prepared, 1, &one, 10000), 0);
    CHECK(dbp_ncols(c) == 2);
    CHECK_RC(c, dbp_fetch(c, &row), 1);
    check_type_row(tc, dbp_columns(c), &row, "prepared");
    CHECK_RC(c, dbp_fetch(c, &row), 0);
  }
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(null_and_empty_string_differ, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  for (size_t k = 0; k < 2 && d->nulls[k].sql != NULL; k++) {
    dbp_param ps[3] = {dbt_param(NULL), dbt_param(""), dbt_param("x")};
    const sql_np *q = &d->nulls[k];
    CHECK_RC(c, dbp_query(c, q->sql, q->np, q->np ? ps : NULL, 10000), 0);
    dbp_row r;
    CHECK_RC(c, dbp_fetch(c, &r), 1);
    CHECK(r.ncols == 5);
    CHECK(r.vals[0] == NULL);
    CHECK(r.vals[1] != NULL && r.lens[1] == 0);
    CHECK(dbt_val_is(&r, 2, "x"));
    CHECK(r.vals[3] == NULL);
    CHECK(r.vals[4] != NULL && r.lens[4] == 0);
    CHECK_RC(c, dbp_fetch(c, &r), 0);
    /* After the end, fetch keeps saying so. */
    CHECK_RC(c, dbp_fetch(c, &r), 0);
  }
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(sixteen_mib_value_round_trips, 120) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  size_t n = 16u << 20;
  char *big = malloc(n);
  CHECK(big != NULL);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + (i * 7 + i / 997) % 26);
  /* The text value, and a 4 MiB binary value with every byte value. */
  size_t bn = 4u << 20;
  char *bin = malloc(bn);
  CHECK(bin != NULL);
  for (size_t i = 0; i < bn; i++) bin[i] = (char)(i * 31 + i / 256);
  CHECK_RC(c, dbp_exec(c, d->big_create, 0, NULL, 10000, NULL), 0);
  char *hex = NULL;
  dbp_param ps[2] = {{big, n}, {bin, bn}};
  if (d->big_bytes_as_hex) {
    hex = malloc(2 + 2 * bn);
    CHECK(hex != NULL);
    hex[0] = '\\';
    hex[1] = 'x';
    for (size_t i = 0; i < bn; i++) {
      static const char digits[] = "0123456789abcdef";
      unsigned char b = (unsigned char)bin[i];
      hex[2 + 2 * i] = digits[b >> 4];
      hex[3 + 2 * i] = digits[b & 15];
    }
    ps[1] = (dbp_param){hex, 2 + 2 * bn};
  }
  char sql[128];
  snprintf(sql, sizeof sql, "INSERT INTO big_t VALUES (%s, %s)", d->ph1, d->ph2);
  CHECK_RC(c, dbp_exec(c, sql, 2, ps, 60000, NULL), 0);
  for (int prepared = 0; prepared < 2; prepared++) {
    dbp_param one = dbt_param("1");
    if (prepared && d->big_prepared == NULL) break;
    if (prepared)
      CHECK_RC(c, dbp_query(c, d->big_prepared, 1, &one, 60000), 0);
    else
      CHECK_RC(c, dbp_query(c, "SELECT v, b FROM big_t", 0, NULL, 60000), 0);
    dbp_row r;
    CHECK_RC(c, dbp_fetch(c, &r), 1);
    CHECK(r.lens[0] == n && memcmp(r.vals[0], big, n) == 0);
    CHECK(r.lens[1] == bn);
    CHECK(memcmp(r.vals[1], bin, bn) == 0);
    CHECK_RC(c, dbp_fetch(c, &r), 0);
  }
  free(big);
  free(bin);
  free(hex);
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(streams_100k_rows, 120) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  for (int prepared = 0; prepared < 2; prepared++) {
    dbp_param three = dbt_param("3");
    if (prepared && d->stream_prepared == NULL) break;
    if (prepared)
      CHECK_RC(c, dbp_query(c, d->stream_prepared, 1, &three, 60000), 0);
    else
      CHECK_RC(c, dbp_query(c, d->stream, 0, NULL, 60000), 0);
    CHECK(dbp_ncols(c) == 3);
    dbp_row r;
    int64_t want = 1;
    int rc;
    while ((rc = dbp_fetch(c, &r)) == 1) {
      char a[32], b[32], e[32];
      snprintf(a, sizeof a, "%" PRId64, want);
      snprintf(b, sizeof b, "row-%" PRId64, want);
      snprintf(e, sizeof e, "%" PRId64, want * 2);
      if (!dbt_val_is(&r, 0, a) || !dbt_val_is(&r, 1, b)) CHECK(!"row value differs");
      if (want % 3 == 0 ? r.vals[2] != NULL : !dbt_val_is(&r, 2, e)) CHECK(!"third column differs");
      want++;
    }
    CHECK_RC(c, rc, 0);
    CHECK(want == 100001);
  }
  /* The connection is idle again. */
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 1", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "1") == 0);
  dbp_conn_close(c);
  return 0;
}

/* ---- errors ---- */

CONN_TEST(bad_sql_reports_server_message_and_codes, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(c, dbp_query(c, "SELEC 1", 0, NULL, 10000), DBP_EQUERY);
  const dbp_dberr *e = dbp_conn_error(c);
  CHECK(e->code == DBP_EQUERY);
  if (d->syntax_errno) CHECK(e->db_errno == d->syntax_errno);
  CHECK(strcmp(e->sqlstate, d->syntax_state) == 0);
  CHECK(strstr(e->message, d->syntax_msg) != NULL);
  CHECK(!e->retryable);
  CHECK_RC(c, dbp_exec(c, "SELECT * FROM no_such_table_here", 0, NULL, 10000, NULL), DBP_EQUERY);
  if (d->notable_errno) CHECK(dbp_conn_error(c)->db_errno == d->notable_errno);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, d->notable_state) == 0);
  CHECK(strstr(dbp_conn_error(c)->message, "no_such_table_here") != NULL);
  /* The same through a prepared statement. */
  dbp_param p = dbt_param("1");
  CHECK_RC(c, dbp_query(c, d->notable_prepared, 1, &p, 10000), DBP_EQUERY);
  if (d->notable_errno) CHECK(dbp_conn_error(c)->db_errno == d->notable_errno);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, d->notable_state) == 0);
  if (d->too_few_params.sql != NULL)
    CHECK_RC(c, dbp_query(c, d->too_few_params.sql, 1, &p, 10000), d->too_few_params.rc);
  /* Something going wrong in the middle of a stream. */
  CHECK_RC(c, dbp_query(c, d->mid_sql, 0, NULL, 10000), 0);
  dbp_row r;
  int rc, rows = 0;
  while ((rc = dbp_fetch(c, &r)) == 1) rows++;
  CHECK(rows == d->mid_rows);
  CHECK_RC(c, rc, d->mid_rc);
  char buf[600];
  if (d->mid_state != NULL) {
    CHECK(strcmp(dbp_conn_error(c)->sqlstate, d->mid_state) == 0);
    dbp_dberr_format(dbp_conn_error(c), buf, sizeof buf);
    CHECK(strstr(buf, d->mid_format) != NULL);
  }
  CHECK(!dbp_conn_is_broken(c));
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 2", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "2") == 0);
  CHECK_RC(c, dbp_exec(c, "SELEC 1", 0, NULL, 10000, NULL), DBP_EQUERY);
  dbp_dberr_format(dbp_conn_error(c), buf, sizeof buf);
  cr_expect(strstr(buf, d->syntax_format) != NULL, "%s", buf);
  CHECK(strstr(buf, d->syntax_format) != NULL);
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(parameters_are_never_spliced, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  char sql[128];
  snprintf(sql, sizeof sql, "%s victims (name TEXT)", d->create_temp);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  /* Quotes, comments, backslashes and both databases' placeholder and
   * quoting syntax. */
  const char *evil[] = {"'; DROP TABLE victims; --",
                        "Robert'); DROP TABLE victims;--",
                        "a\\'b\"c$1$$x$$",
                        "$1",
                        "a\\'b\"c`d?e",
                        "?",
                        "\\"};
  size_t nevil = sizeof evil / sizeof evil[0];
  snprintf(sql, sizeof sql, "INSERT INTO victims VALUES (%s)", d->ph1);
  for (size_t i = 0; i < nevil; i++) {
    dbp_param p = dbt_param(evil[i]);
    CHECK_RC(c, dbp_exec(c, sql, 1, &p, 10000, NULL), 0);
    char v[64];
    CHECK_RC(c, dbt_one_value(c, d->select_p1, 1, &p, v, sizeof v), 0);
    CHECK(strcmp(v, evil[i]) == 0);
  }
  char v[16], want[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT COUNT(*) FROM victims", 0, NULL, v, sizeof v), 0);
  snprintf(want, sizeof want, "%zu", nevil);
  CHECK(strcmp(v, want) == 0);
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(describe_gives_columns_without_rows, 30) {
  dbp_conn *c;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(c, dbp_exec(c, d->d_create, 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_describe(c, d->d_sql, 10000), 0);
  CHECK(dbp_ncols(c) == d->d_ncols);
  const dbp_column *cols = dbp_columns(c);
  CHECK(strcmp(cols[0].name, "id") == 0 && cols[0].type == DBP_T_INTEGER);
  CHECK(strcmp(cols[0].db_type, d->d_id_type) == 0 && cols[0].db_type_id == d->d_id_type_id);
  CHECK(strcmp(cols[1].name, "name") == 0 && cols[1].type == DBP_T_TEXT);
  CHECK(cols[2].type == DBP_T_TIMESTAMP && strcmp(cols[2].db_type, d->d_at_type) == 0);
  CHECK(cols[3].type == DBP_T_NUMERIC);
  if (d->d_ncols > 4) CHECK(cols[4].type == DBP_T_TEXT);
  /* Nothing ran: the connection is idle and a fetch has nothing. */
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  CHECK_RC(c, dbp_describe(c, "SELECT * FROM nowhere_at_all", 10000), DBP_EQUERY);
  CHECK(strcmp(dbp_conn_error(c)->sqlstate, d->notable_state) == 0);
  if (d->notable_errno) CHECK(dbp_conn_error(c)->db_errno == d->notable_errno);
  for (size_t k = 0; k < 2 && d->d_nonquery[k].sql != NULL; k++) {
    const sql_rc *q = &d->d_nonquery[k];
    CHECK_RC(c, dbp_describe(c, q->sql, 10000), q->rc);
    if (q->rc != 0)
      CHECK(strstr(dbp_conn_error(c)->message, "the statement returned no result set") != NULL);
    else
      CHECK(dbp_ncols(c) == 0);
  }
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, dbp_describe(c, "SELECT 1 AS one", 10000), 0);
  CHECK(dbp_ncols(c) == 1);
  dbp_conn_close(c);
  return 0;
}

/* ---- cancellation ---- */

/* Asks a second connection whether session `id` is running a statement. */
static int is_active(const dialect *d, dbp_conn *mon, int64_t id, bool *active) {
  char sid[32], v[16];
  snprintf(sid, sizeof sid, "%" PRId64, id);
  dbp_param p = dbt_param(sid);
  int rc = dbt_one_value(mon, d->active_sql, 1, &p, v, sizeof v);
  *active = strcmp(v, "0") != 0;
  return rc;
}

/* After an interrupted statement: returned long before the 10 s statement
 * would have ended (how long the cancel takes is the machine's business: on
 * two busy cores MariaDB's side session for KILL needs a TLS handshake that
 * took 2 s), nothing runs on the server, and the connection works (or is
 * marked broken). */
static int after_cancel(const dialect *d, dbp_rt *rt, dbp_conn *c, dbp_conn *mon, uint64_t t0) {
  uint64_t took = dbp_now(rt) - t0;
  cr_expect_lt(took, 6000, "the interrupted statement took %" PRIu64 " ms", took);
  CHECK(took < 6000);
  if (dbp_conn_is_broken(c)) return 0;
  bool active = true;
  CHECK_RC(mon, is_active(d, mon, dbp_conn_backend_id(c), &active), 0);
  CHECK(!active);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 1", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "1") == 0);
  return 0;
}

CONN_TEST(timeout_argument_cancels_on_server, 60) {
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(NULL, open_db(rt, d, &mon), 0);
  uint64_t t0 = dbp_now(rt);
  CHECK_RC(c, dbp_exec(c, d->sleep10, 0, NULL, 100, NULL), DBP_ETIMEDOUT);
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  /* The same through a query and its rows. */
  t0 = dbp_now(rt);
  CHECK_RC(c, dbp_query(c, d->sleep10, 0, NULL, 100), DBP_ETIMEDOUT);
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  /* Through a prepared statement. */
  dbp_param p = dbt_param("10");
  t0 = dbp_now(rt);
  CHECK_RC(c, dbp_query(c, d->sleep_p1, 1, &p, 100), DBP_ETIMEDOUT);
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  /* Rows first (enough that the server sends them), then a long wait: the
   * timeout covers the fetching. */
  t0 = dbp_now(rt);
  CHECK_RC(c, dbp_query(c, d->rows_then_wait, 0, NULL, 500), 0);
  dbp_row r;
  int rc, rows = 0;
  while ((rc = dbp_fetch(c, &r)) == 1) rows++;
  CHECK(rows > 0 && rows < 20000);
  CHECK_RC(c, rc, DBP_ETIMEDOUT);
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

CONN_TEST(coroutine_deadline_cancels_on_server, 60) {
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(NULL, open_db(rt, d, &mon), 0);
  uint64_t tok;
  uint64_t t0 = dbp_now(rt);
  CHECK(dbp_deadline_push(rt, 100, &tok) == 0);
  int rc = dbp_exec(c, d->sleep10, 0, NULL, DBP_FOREVER, NULL);
  dbp_deadline_pop(rt, tok);
  CHECK_RC(c, rc, DBP_ETIMEDOUT);
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

typedef struct victim {
  dbp_conn *c;
  const char *sql;
  int rc;
  bool started;
} victim;

static int victim_main(void *arg, void **result) {
  (void)result;
  victim *v = arg;
  v->started = true;
  v->rc = dbp_exec(v->c, v->sql, 0, NULL, DBP_FOREVER, NULL);
  return v->rc;
}

/* Runs ten seconds of sleep in another coroutine; after 100 ms stops it
 * with dbp_cancel (how == 0) or dbp_conn_cancel (how == 1). */
static int cancel_run(dbp_rt *rt, const dialect *d, int how) {
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(NULL, open_db(rt, d, &mon), 0);
  victim v = {c, d->sleep10, 0, false};
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
  CHECK(after_cancel(d, rt, c, mon, t0) == 0);
  CHECK(!dbp_conn_is_broken(c));
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

CONN_TEST(coroutine_cancel_cancels_on_server, 60) {
  return cancel_run(rt, d, 0);
}

CONN_TEST(conn_cancel_from_another_coroutine, 60) {
  return cancel_run(rt, d, 1);
}

CONN_TEST(query_close_abandons_a_big_result, 60) {
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_db(rt, d, &c), 0);
  CHECK_RC(NULL, open_db(rt, d, &mon), 0);
  for (int prepared = 0; prepared < 2; prepared++) {
    dbp_param p = dbt_param("x");
    if (prepared)
      CHECK_RC(c, dbp_query(c, d->huge_prepared, 1, &p, DBP_FOREVER), 0);
    else
      CHECK_RC(c, dbp_query(c, d->huge, 0, NULL, DBP_FOREVER), 0);
    dbp_row r;
    for (int i = 0; i < 10; i++) CHECK_RC(c, dbp_fetch(c, &r), 1);
    uint64_t t0 = dbp_now(rt);
    CHECK_RC(c, dbp_query_close(c), 0);
    CHECK(after_cancel(d, rt, c, mon, t0) == 0);
    CHECK(!dbp_conn_is_broken(c));
  }
  /* A small result closed early needs no cancel. */
  dbp_row r;
  CHECK_RC(c, dbp_query(c, d->three_rows, 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK_RC(c, dbp_query_close(c), 0); /* idle: a no-op */
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 5", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "5") == 0);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

/* ---- TCP keepalive ---- */

static int sockopt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0) return -1;
  return v;
}

typedef struct ka_case {
  const char *params; /* NULL: the defaults */
  int keepalive, idle, interval, count, user_timeout;
} ka_case;

/* Connects with the DSN's parameters `k->params` added and checks the
 * socket's options. */
static int keepalive_run(dbp_rt *rt, const dialect *d, const ka_case *k) {
  char dsn[1024];
  const char *base = d->dsn();
  if (k->params != NULL)
    snprintf(dsn, sizeof dsn, "%s%c%s", base, strchr(base, '?') ? '&' : '?', k->params);
  else
    snprintf(dsn, sizeof dsn, "%s", base);
  dbp_conn *c = NULL;
  dbp_dberr err;
  char m[700];
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &err);
  cr_expect_eq(rc, 0, "%s", dbp_dberr_format(&err, m, sizeof m));
  CHECK(rc == 0);
  int fd = dbp__conn_socket(c);
  CHECK(fd >= 0);
  CHECK(fd == c->drv->socket(c));
  int ka = sockopt(fd, SOL_SOCKET, SO_KEEPALIVE);
  cr_expect_eq(ka, k->keepalive, "SO_KEEPALIVE %d", ka);
  CHECK(ka == k->keepalive);
  if (k->keepalive) {
    cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE), k->idle);
    cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL), k->interval);
    cr_expect_eq(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT), k->count);
    CHECK(sockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE) == k->idle);
    CHECK(sockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL) == k->interval);
    CHECK(sockopt(fd, IPPROTO_TCP, TCP_KEEPCNT) == k->count);
  }
  int ut = sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
  cr_expect_eq(ut, k->user_timeout, "TCP_USER_TIMEOUT %d", ut);
  CHECK(ut == k->user_timeout);
  CHECK_RC(c, dbp_exec(c, d->noop, 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

CONN_TEST(tcp_keepalive_by_default, 30) {
  ka_case k = {NULL, 1, 60, 10, 6, 60000};
  return keepalive_run(rt, d, &k);
}

/* The DSN's own settings win. */
CONN_TEST(tcp_keepalive_from_the_dsn, 30) {
  ka_case k = {"keepalives_idle=30&keepalives_interval=5&keepalives_count=3&tcp_user_timeout=9000",
               1,
               30,
               5,
               3,
               9000};
  return keepalive_run(rt, d, &k);
}

/* ... and those the DSN does not name keep their defaults. */
CONN_TEST(tcp_keepalive_partly_from_the_dsn, 30) {
  ka_case k = {"keepalives_idle=33&tcp_user_timeout=4000", 1, 33, 10, 6, 4000};
  return keepalive_run(rt, d, &k);
}

CONN_TEST(tcp_keepalive_off_from_the_dsn, 30) {
  ka_case k = {"keepalives=0&tcp_user_timeout=0", 0, 0, 0, 0, 0};
  return keepalive_run(rt, d, &k);
}
