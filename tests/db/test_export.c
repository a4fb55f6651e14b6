/* Exports from real PostgreSQL and MariaDB servers: every format and
 * compression, read back and compared cell by cell with what dbp_query /
 * dbp_fetch return; PostgreSQL's CSV and TSV byte for byte against COPY;
 * MariaDB's output equal to PostgreSQL's for the same sample data. */
#include "test_export.h"

#include <sys/wait.h>

TestSuite(export, .init = make_tmp, .fini = remove_tmp, .timeout = 120);

static const char *const pg_queries[] = {
    "SELECT * FROM customers ORDER BY id",
    "SELECT * FROM products ORDER BY id",
    "SELECT * FROM orders ORDER BY id",
    "SELECT * FROM order_items ORDER BY order_id, line_no",
    "SELECT * FROM events ORDER BY id",
    /* The awkward values in one row: NaN and infinities, json with line
     * breaks, a lone \. , CR, empty string and NULL, empty bytea, long
     * numeric, and a column name that needs quoting. */
    "SELECT 1 AS id, 'NaN'::numeric AS n, 'Infinity'::float8 AS f8, '-Infinity'::float4 AS f4,"
    " E'{\"a\":\\n 1,\\r\\n \"b\": [true, null]}'::json AS j, '\\.'::text AS dot,"
    " E'cr\\rlf\\n' AS crlf, ''::text AS empty, NULL::text AS nul, '\\x'::bytea AS b,"
    " true AS flag, 12345678901234567890.123456789::numeric AS big, 1.5e-7::float8 AS small,"
    " E'tab\\there\\\\' AS \"a,\"\"b\"\"\", interval '1 day' AS iv, ARRAY[1,2] AS arr",
};

static const char *const my_queries[] = {
    "SELECT * FROM customers ORDER BY id",
    "SELECT * FROM products ORDER BY id",
    "SELECT * FROM orders ORDER BY id",
    "SELECT * FROM order_items ORDER BY order_id, line_no",
    "SELECT * FROM events ORDER BY id",
    "SELECT 1 AS id, CAST('12345678901234567890.123456789' AS DECIMAL(40,9)) AS big,"
    " '\\\\.' AS dot, 'cr\\rlf\\n' AS crlf, '' AS empty, NULL AS nul, X'' AS b,"
    " CAST(X'00ff' AS BINARY(2)) AS b2, b'101' AS bits, 'tab\\there\\\\' AS `a,\"b\"`",
};

static const char *const exts[3][3] = {{".csv", ".csv.gz", ".csv.zst"},
                                       {".tsv", ".tsv.gz", ".tsv.zst"},
                                       {".jsonl", ".jsonl.gz", ".jsonl.zst"}};

/* Exports `sql` to every format and compression and compares each file,
 * read back, with the rows dbp_fetch returns. */
static void check_all_formats(int kind, const char *sql, int qi) {
  for (int f = 0; f < 3; f++) {
    for (int z = 0; z < 3; z++) {
      char name[64];
      snprintf(name, sizeof name, "q%d%s", qi, exts[f][z]);
      xjob j = {.kind = kind,
                .sql = sql,
                .path = tmp_path(name),
                .want_ref = true,
                .o = {.timeout_ms = DBP_FOREVER}};
      dbt_run_in_coro(body_export, &j);
      cr_assert_eq(j.rc, 0, "%s: %s: %s", name, dbp_err_name(j.rc), j.res.err.message);
      cr_expect(j.conn_idle_after, "%s: connection reusable", name);
      cr_assert_eq(j.res.nfiles, 1);
      cr_expect_str_eq(j.res.files[0].path, j.path);
      cr_expect_eq(j.res.rows, j.ref.nrows, "%s: rows", name);
      cr_expect_eq(j.res.files[0].rows, j.ref.nrows);
      size_t rawlen, n;
      free(read_raw(j.path, &rawlen));
      cr_expect_eq(j.res.files[0].bytes, rawlen, "%s: bytes on disk", name);
      cr_expect_eq(j.res.bytes, rawlen);
      char sum[65];
      sha256sum(j.path, sum);
      cr_expect_str_eq(j.res.files[0].sha256, sum, "%s: sha256", name);
      char *data = read_output(j.path, &n);
      table got;
      parse_output(data, n, &j.o, (dbp_format)(f + 1), &got);
      compare_tables(&got, &j.ref, (dbp_format)(f + 1), true, name);
      table_free(&got);
      free(data);
      xjob_free(&j);
    }
  }
  cr_expect_eq(count_entries(g_tmp), 9 * (qi + 1), "only the final files are left");
}

Test(export, pg_every_format_and_compression) {
  for (size_t q = 0; q < sizeof pg_queries / sizeof *pg_queries; q++)
    check_all_formats(DBT_PG, pg_queries[q], (int)q);
}

Test(export, mysql_every_format_and_compression) {
  for (size_t q = 0; q < sizeof my_queries / sizeof *my_queries; q++)
    check_all_formats(DBT_MY, my_queries[q], (int)q);
}

/* PostgreSQL: the file is exactly what COPY writes. */
static void check_same_as_copy(const char *sql, const char *copy_opts, const char *name,
                               dbp_export_options o) {
  char copy[2048];
  snprintf(copy, sizeof copy, "COPY (%s) TO STDOUT (%s)", sql, copy_opts);
  xjob j = {.kind = DBT_PG, .sql = sql, .path = tmp_path(name), .copy_sql = copy, .o = o};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0, "%s: %s", name, j.res.err.message);
  size_t n;
  char *data = read_output(j.path, &n);
  cr_expect(n == j.copy.n && memcmp(data, j.copy.p, n) == 0,
            "%s differs from %s\n--- got (%zu bytes)\n%.*s\n--- COPY (%zu bytes)\n%.*s", name, copy,
            n, (int)(n < 2000 ? n : 2000), data, j.copy.n, (int)(j.copy.n < 2000 ? j.copy.n : 2000),
            j.copy.p);
  free(data);
  xjob_free(&j);
}

Test(export, pg_csv_and_tsv_are_byte_for_byte_copy) {
  for (size_t q = 0; q < sizeof pg_queries / sizeof *pg_queries; q++) {
    check_same_as_copy(pg_queries[q], "FORMAT csv, HEADER", "c.csv", (dbp_export_options){0});
    check_same_as_copy(pg_queries[q], "FORMAT csv, HEADER", "c.csv.zst", (dbp_export_options){0});
    check_same_as_copy(pg_queries[q], "FORMAT text, HEADER", "c.tsv.gz", (dbp_export_options){0});
    check_same_as_copy(pg_queries[q], "FORMAT csv", "n.csv",
                       (dbp_export_options){.encode = {.no_header = true}});
    check_same_as_copy(pg_queries[q], "FORMAT csv, HEADER, DELIMITER ';', NULL 'NULL'", "d.csv",
                       (dbp_export_options){.encode = {.delimiter = ';', .null_string = "NULL"}});
    check_same_as_copy(
        pg_queries[q], "FORMAT text, DELIMITER '|', NULL ''", "d.tsv",
        (dbp_export_options){.encode = {.no_header = true, .delimiter = '|', .null_string = ""}});
  }
}

Test(export, pg_single_column_backslash_dot_matches_copy) {
  check_same_as_copy("SELECT x FROM (VALUES ('\\.'), (NULL), (''), ('\\.x')) AS t(x)",
                     "FORMAT csv, HEADER", "dot.csv", (dbp_export_options){0});
}

/* The same encoder path (text COPY parsed) must give COPY's bytes too: a
 * semicolon-delimited CSV with CRLF, compared after turning COPY's row ends
 * into CRLF (row ends only: line breaks inside quoted values stay). */
Test(export, pg_crlf_goes_through_the_encoder_with_the_same_bytes) {
  for (size_t q = 0; q < sizeof pg_queries / sizeof *pg_queries; q++) {
    dbp_export_options o = {.encode = {.crlf = true}};
    xjob j = {.kind = DBT_PG,
              .sql = pg_queries[q],
              .path = tmp_path("crlf.csv"),
              .o = o,
              .want_ref = true};
    char copy[2048];
    snprintf(copy, sizeof copy, "COPY (%s) TO STDOUT (FORMAT csv, HEADER)", pg_queries[q]);
    j.copy_sql = copy;
    dbt_run_in_coro(body_export, &j);
    cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
    size_t n;
    char *data = read_output(j.path, &n);
    tstr want = {0};
    ts_add(&want, "", 0);
    bool inq = false;
    for (size_t i = 0; i < j.copy.n; i++) {
      char c = j.copy.p[i];
      if (c == '"') inq = !inq;
      if (c == '\n' && !inq) ts_addc(&want, '\r');
      ts_addc(&want, c);
    }
    cr_expect(n == want.n && memcmp(data, want.p, n) == 0, "query %zu: CRLF output differs", q);
    table got;
    parse_output(data, n, &j.o, DBP_FMT_CSV, &got);
    compare_tables(&got, &j.ref, DBP_FMT_CSV, true, "crlf");
    table_free(&got);
    free(want.p);
    free(data);
    xjob_free(&j);
  }
}

/* MariaDB follows the same rules: for columns whose text is the same on
 * both servers, the two exports are identical files. */
static const char *const shared[] = {
    "SELECT id, email, full_name, country, note, loyalty_level, birth_date, preferred_time"
    " FROM customers ORDER BY id",
    "SELECT id, sku, name, description, price, stock, barcode, thumbnail, released_on"
    " FROM products ORDER BY id",
    "SELECT order_id, line_no, product_id, quantity, unit_price FROM order_items"
    " ORDER BY order_id, line_no",
};

Test(export, mysql_output_equals_postgresql_output) {
  const char *names[] = {"x.csv", "x.tsv", "x.jsonl"};
  for (size_t q = 0; q < sizeof shared / sizeof *shared; q++) {
    for (int f = 0; f < 3; f++) {
      char pg_name[32], my_name[32];
      snprintf(pg_name, sizeof pg_name, "pg-%s", names[f]);
      snprintf(my_name, sizeof my_name, "my-%s", names[f]);
      xjob pg = {.kind = DBT_PG, .sql = shared[q], .path = tmp_path(pg_name)};
      xjob my = {.kind = DBT_MY, .sql = shared[q], .path = tmp_path(my_name)};
      dbt_run_in_coro(body_export, &pg);
      dbt_run_in_coro(body_export, &my);
      cr_assert_eq(pg.rc, 0, "%s", pg.res.err.message);
      cr_assert_eq(my.rc, 0, "%s", my.res.err.message);
      size_t a, b;
      char *pa = read_output(pg.path, &a), *pb = read_output(my.path, &b);
      cr_expect(a == b && memcmp(pa, pb, a) == 0,
                "query %zu %s: PostgreSQL and MariaDB differ\n--- pg\n%s\n--- mariadb\n%s", q,
                names[f], pa, pb);
      cr_expect_str_eq(pg.res.files[0].sha256, my.res.files[0].sha256);
      free(pa);
      free(pb);
      xjob_free(&pg);
      xjob_free(&my);
    }
  }
}

/* Bound parameters: PostgreSQL cannot COPY them, so rows are fetched and
 * encoded; the bytes must still be COPY's. */
Test(export, pg_parameters_match_copy_of_the_literal_query) {
  dbp_param p[] = {{"5", 1}, {"Zoë%", sizeof "Zoë%" - 1}};
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT * FROM customers WHERE id > $1 OR full_name LIKE $2 ORDER BY id",
            .nparams = 2,
            .params = p,
            .path = tmp_path("p.csv"),
            .copy_sql =
                "COPY (SELECT * FROM customers WHERE id > 5 OR full_name LIKE 'Zoë%'"
                " ORDER BY id) TO STDOUT (FORMAT csv, HEADER)"};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
  size_t n;
  char *data = read_output(j.path, &n);
  cr_expect(n == j.copy.n && memcmp(data, j.copy.p, n) == 0, "got\n%s\nwant\n%s", data, j.copy.p);
  cr_expect_eq(j.res.rows, 16);
  free(data);
  xjob_free(&j);
}

Test(export, mysql_parameters) {
  dbp_param p[] = {{"5", 1}};
  xjob j = {.kind = DBT_MY,
            .sql = "SELECT id, email FROM customers WHERE id > ? ORDER BY id",
            .nparams = 1,
            .params = p,
            .path = tmp_path("p.jsonl"),
            .want_ref = true};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
  cr_expect_eq(j.res.rows, 15);
  size_t n;
  char *data = read_output(j.path, &n);
  table got;
  parse_output(data, n, &j.o, DBP_FMT_JSONL, &got);
  compare_tables(&got, &j.ref, DBP_FMT_JSONL, true, "mysql params");
  table_free(&got);
  free(data);
  xjob_free(&j);
}

/* Statements COPY does not take, a trailing semicolon and a trailing
 * comment all work. */
Test(export, pg_statements_copy_refuses_still_export) {
  const char *sqls[] = {"SHOW server_version", "EXPLAIN SELECT 1", "SELECT 1 AS a;  ",
                        "SELECT 2 AS a -- the answer"};
  for (int i = 0; i < 4; i++) {
    xjob j = {.kind = DBT_PG, .sql = sqls[i], .path = tmp_path("s.csv"), .want_ref = true};
    dbt_run_in_coro(body_export, &j);
    cr_assert_eq(j.rc, 0, "%s: %s", sqls[i], j.res.err.message);
    cr_expect_eq(j.res.rows, j.ref.nrows, "%s", sqls[i]);
    cr_expect(j.conn_idle_after);
    xjob_free(&j);
  }
}

Test(export, format_and_compression_from_options_override_the_name) {
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT id, email FROM customers ORDER BY id",
            .path = tmp_path("data.out"),
            .want_ref = true,
            .o = {.format = DBP_FMT_JSONL, .compression = DBP_COMP_ZSTD, .level = 19}};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
  size_t n;
  char *raw = read_raw(j.path, &n);
  cr_expect(n >= 4 && memcmp(raw, "\x28\xb5\x2f\xfd", 4) == 0, "a zstd frame");
  free(raw);
  xjob_free(&j);
}

Test(export, empty_result_is_a_header_only_file) {
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT id, email FROM customers WHERE false",
            .path = tmp_path("e.csv")};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0);
  size_t n;
  char *data = read_output(j.path, &n);
  cr_expect_str_eq(data, "id,email\n");
  cr_expect_eq(j.res.rows, 0);
  free(data);
  xjob_free(&j);
  xjob m = {.kind = DBT_MY,
            .sql = "SELECT id, email FROM customers WHERE 1 = 0",
            .path = tmp_path("e.tsv.gz")};
  dbt_run_in_coro(body_export, &m);
  cr_assert_eq(m.rc, 0);
  data = read_output(m.path, &n);
  cr_expect_str_eq(data, "id\temail\n");
  free(data);
  xjob_free(&m);
}

Test(export, progress_counters_match_the_result) {
  dbp_export_progress prog = {0};
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT * FROM orders ORDER BY id",
            .path = tmp_path("o.jsonl.gz"),
            .o = {.progress = &prog}};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0);
  size_t n;
  free(read_output(j.path, &n));
  cr_expect_eq(prog.rows, j.res.rows);
  cr_expect_eq(prog.bytes_in, n);
  cr_expect_eq(prog.bytes_out, j.res.bytes);
  xjob_free(&j);
}

/* 200,000 rows through every path, compared with generate_series. */
Test(export, many_rows_stream_through) {
  struct {
    int kind;
    const char *sql, *name;
  } cases[] = {
      {DBT_PG, "SELECT i, 'row ' || i AS t FROM generate_series(1, 200000) AS i", "pg.csv"},
      {DBT_PG, "SELECT i, 'row ' || i AS t FROM generate_series(1, 200000) AS i", "pg.jsonl.gz"},
      {DBT_MY, "SELECT seq AS i, CONCAT('row ', seq) AS t FROM seq_1_to_200000", "my.tsv.zst"},
  };
  for (int k = 0; k < 3; k++) {
    xjob j = {.kind = cases[k].kind, .sql = cases[k].sql, .path = tmp_path(cases[k].name)};
    dbt_run_in_coro(body_export, &j);
    cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
    cr_expect_eq(j.res.rows, 200000);
    size_t n;
    char *data = read_output(j.path, &n);
    dbp_format f;
    dbp_format_from_path(j.path, &f, NULL);
    table got;
    parse_output(data, n, &j.o, f, &got);
    cr_assert_eq(got.nrows, 200000);
    for (size_t r = 0; r < got.nrows; r++) {
      char want[32];
      snprintf(want, sizeof want, "%zu", r + 1);
      cr_assert_str_eq(got.cells[2 * r].v, want, "%s row %zu", cases[k].name, r);
      snprintf(want, sizeof want, "row %zu", r + 1);
      cr_assert_str_eq(got.cells[2 * r + 1].v, want);
    }
    table_free(&got);
    free(data);
    xjob_free(&j);
  }
}

/* 1,500 columns: batches stay bounded and every cell still arrives. */
Test(export, wide_rows) {
  const int kinds[] = {DBT_PG, DBT_MY};
  for (int k = 0; k < 2; k++) {
    tstr sql = {0};
    ts_add(&sql, "SELECT ", 7);
    for (int i = 1; i <= 1500; i++) {
      char col[64];
      snprintf(col, sizeof col, "%s%s * %d AS c%d", i > 1 ? ", " : "",
               kinds[k] == DBT_PG ? "i" : "seq", i, i);
      ts_add(&sql, col, strlen(col));
    }
    const char *from =
        kinds[k] == DBT_PG ? " FROM generate_series(1, 300) AS i" : " FROM seq_1_to_300";
    ts_add(&sql, from, strlen(from));
    const char *names[] = {"wide.csv", "wide.jsonl.gz"};
    for (int f = 0; f < 2; f++) {
      xjob j = {.kind = kinds[k], .sql = sql.p, .path = tmp_path(names[f]), .want_ref = true};
      dbt_run_in_coro(body_export, &j);
      cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
      size_t n;
      char *data = read_output(j.path, &n);
      table got;
      parse_output(data, n, &j.o, f == 0 ? DBP_FMT_CSV : DBP_FMT_JSONL, &got);
      compare_tables(&got, &j.ref, f == 0 ? DBP_FMT_CSV : DBP_FMT_JSONL, true, names[f]);
      table_free(&got);
      free(data);
      xjob_free(&j);
    }
    free(sql.p);
  }
}

/* ---- standard output ---- */

typedef struct stdout_report {
  int rc;
  size_t nfiles;
  char path[8];
  uint64_t rows, bytes, total_rows, total_bytes;
  char sha256[65];
  char message[512];
} stdout_report;

typedef struct stdout_job {
  dbp_rt *rt;
  const char *dsn;
  const char *sql;
  dbp_export_options o;
  stdout_report r;
} stdout_job;

static int stdout_main(void *arg, void **result) {
  (void)result;
  stdout_job *s = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  s->r.rc = dbp_conn_open(s->rt, s->dsn, 20000, &c, &err);
  if (s->r.rc != 0) {
    snprintf(s->r.message, sizeof s->r.message, "%s", err.message);
    return 0;
  }
  dbp_export_result res;
  s->r.rc = dbp_export_query(c, s->sql, 0, NULL, "-", &s->o, &res);
  snprintf(s->r.message, sizeof s->r.message, "%s", res.err.message);
  s->r.nfiles = res.nfiles;
  s->r.total_rows = res.rows;
  s->r.total_bytes = res.bytes;
  if (res.nfiles > 0) {
    snprintf(s->r.path, sizeof s->r.path, "%s", res.files[0].path);
    s->r.rows = res.files[0].rows;
    s->r.bytes = res.files[0].bytes;
    memcpy(s->r.sha256, res.files[0].sha256, sizeof s->r.sha256);
  }
  dbp_export_result_free(&res);
  dbp_conn_close(c);
  return 0;
}

/* Runs the export to "-" in a child (working in the test directory) whose
 * fd 1 is a pipe; returns the bytes that came through and the child's
 * result in s->r. */
static char *export_to_pipe(stdout_job *s, size_t *len) {
  int out[2], rep[2];
  cr_assert_eq(pipe(out), 0);
  cr_assert_eq(pipe(rep), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(out[0]);
    close(rep[0]);
    if (chdir(g_tmp) != 0 || dup2(out[1], STDOUT_FILENO) < 0) _exit(1);
    close(out[1]);
    s->r.rc = DBP_ESYS;
    if (dbp_rt_new(&s->rt, NULL, NULL) != 0) _exit(2);
    dbp_spawn(s->rt, NULL, stdout_main, s, &(dbp_spawn_options){.detached = true});
    dbp_rt_run(s->rt);
    dbp_rt_free(s->rt);
    stdout_report r = s->r;
    _exit(write(rep[1], &r, sizeof r) == sizeof r ? 0 : 3);
  }
  close(out[1]);
  close(rep[1]);
  tstr got = {0};
  ts_add(&got, "", 0);
  char buf[65536];
  ssize_t k;
  while ((k = read(out[0], buf, sizeof buf)) > 0) ts_add(&got, buf, (size_t)k);
  close(out[0]);
  cr_assert_eq(read(rep[0], &s->r, sizeof s->r), (ssize_t)sizeof s->r);
  close(rep[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  *len = got.n;
  return got.p;
}

/* "-" streams exactly the bytes a file export of the same query and options
 * writes (COPY's fast path and the row path, plain and compressed), leaves
 * no file anywhere, and reports one file "-" with the same rows, bytes and
 * SHA-256. */
Test(export, standard_output_streams_what_a_file_export_writes) {
  struct {
    int kind;
    const char *sql;
    const char *file;
    dbp_export_options o;
  } cases[] = {
      {DBT_PG, "SELECT * FROM orders ORDER BY id", "a.csv", {0}},
      {DBT_PG,
       "SELECT * FROM customers ORDER BY id",
       "b.tsv.gz",
       {.format = DBP_FMT_TSV, .compression = DBP_COMP_GZIP}},
      {DBT_MY,
       "SELECT * FROM orders ORDER BY id",
       "c.jsonl.zst",
       {.format = DBP_FMT_JSONL, .compression = DBP_COMP_ZSTD}},
      {DBT_MY, "SELECT * FROM customers ORDER BY id", "d.csv", {0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    stdout_job s = {.dsn = dbt_dsn(cases[i].kind), .sql = cases[i].sql, .o = cases[i].o};
    size_t n;
    char *streamed = export_to_pipe(&s, &n);
    const char *name = cases[i].file;
    cr_assert_eq(s.r.rc, 0, "%s: %s (%s)", name, dbp_err_name(s.r.rc), s.r.message);
    cr_expect_eq(count_entries(g_tmp), (int)i, "%s: the stream wrote no file", name);
    xjob j = {.kind = cases[i].kind, .sql = cases[i].sql, .path = tmp_path(name), .o = cases[i].o};
    dbt_run_in_coro(body_export, &j);
    cr_assert_eq(j.rc, 0, "%s: %s", name, j.res.err.message);
    size_t m;
    char *file = read_raw(j.path, &m);
    cr_expect(n == m && memcmp(streamed, file, n) == 0, "%s: %zu bytes streamed, %zu in the file",
              name, n, m);
    cr_expect_eq(s.r.nfiles, 1);
    cr_expect_str_eq(s.r.path, "-");
    cr_expect_eq(s.r.rows, j.res.files[0].rows, "%s: rows", name);
    cr_expect_eq(s.r.total_rows, j.res.rows);
    cr_expect_eq(s.r.bytes, n, "%s: bytes", name);
    cr_expect_eq(s.r.total_bytes, n);
    cr_expect_str_eq(s.r.sha256, j.res.files[0].sha256, "%s: sha256", name);
    cr_expect_gt(s.r.rows, 0);
    free(streamed);
    free(file);
    xjob_free(&j);
  }
}
