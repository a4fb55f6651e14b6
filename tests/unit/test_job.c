/* Job files: parsing into tasks, and every kind of mistake reported at its
 * line and column. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

/* 2024-03-05 12:00:00 UTC */
#define NOW ((time_t)1709640000)

static const char *fake_env(const char *name, void *ud) {
  (void)ud;
  if (strcmp(name, "PG_PASSWORD") == 0) return "s3cret";
  if (strcmp(name, "OUT") == 0) return "exports";
  if (strcmp(name, "EMPTY") == 0) return "";
  if (strcmp(name, "PGDSN") == 0) return "postgresql://u:pw@127.0.0.1:5432/db";
  return NULL;
}

static const dbp_job_options opts = {.getenv = fake_env, .now = NOW, .dir = "/base"};

/* Parses text that must be valid. */
static dbp_job *parse_ok(const char *text) {
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), "job.yaml", &opts, &job, &diag);
  if (rc != 0) {
    char buf[512];
    for (size_t i = 0; i < diag.count; i++) {
      cr_log_error("%s", dbp_job_diag_format(&diag, i, buf, sizeof buf));
    }
  }
  cr_assert_eq(rc, 0, "parse failed: %s", dbp_strerror(rc));
  cr_assert_eq(diag.count, 0);
  dbp_job_diag_free(&diag);
  return job;
}

/* Parses text that must be rejected; returns the diagnostics. */
static dbp_job_diag parse_bad(const char *text) {
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), "job.yaml", &opts, &job, &diag);
  cr_assert_eq(rc, DBP_EJOB, "expected DBP_EJOB, got %s", dbp_err_name(rc));
  cr_assert_null(job);
  cr_assert_gt(diag.count, 0);
  return diag;
}

/* Asserts that diagnostic i reads exactly "job.yaml:LINE:COL: ..." and that
 * its message contains `needle`. */
static void expect_error(const dbp_job_diag *d, size_t i, int line, int col, const char *needle) {
  char buf[1024], prefix[64];
  cr_assert_lt(i, d->count, "only %zu diagnostics", d->count);
  dbp_job_diag_format(d, i, buf, sizeof buf);
  if (line > 0) {
    snprintf(prefix, sizeof prefix, "job.yaml:%d:%d: ", line, col);
  } else {
    snprintf(prefix, sizeof prefix, "job.yaml: ");
  }
  cr_expect_eq(strncmp(buf, prefix, strlen(prefix)), 0, "expected %s..., got: %s", prefix, buf);
  cr_expect_not_null(strstr(buf, needle), "expected '%s' in: %s", needle, buf);
}

/* Asserts exactly one diagnostic. */
static void expect_only(const char *text, int line, int col, const char *needle) {
  dbp_job_diag d = parse_bad(text);
  if (d.count != 1) {
    char buf[1024];
    for (size_t i = 0; i < d.count; i++) cr_log_error("%s", dbp_job_diag_format(&d, i, buf, 1024));
  }
  cr_assert_eq(d.count, 1, "expected one diagnostic, got %zu", d.count);
  expect_error(&d, 0, line, col, needle);
  dbp_job_diag_free(&d);
}

static const char *const full_job =
    "# a job with everything\n"
    "connections:\n"
    "  pg: postgresql://app:${PG_PASSWORD}@127.0.0.1:5432/shop\n"
    "  my:\n"
    "    dsn: mysql://app:${MY_PASSWORD:-secret}@127.0.0.1:3306/shop\n"
    "    pool: 2\n"
    "concurrency: 3\n"
    "manifest: ${OUT}/manifest-{date}.json\n"
    "defaults:\n"
    "  compression: gzip\n"
    "  timeout: 10m\n"
    "  retries: 2\n"
    "tasks:\n"
    "  - name: orders\n"
    "    from: pg\n"
    "    query: SELECT * FROM orders WHERE note <> '$$'\n"
    "    to: out/{name}-{date}.csv.gz\n"
    "  - name: customers\n"
    "    from: my\n"
    "    table: shop.customers\n"
    "    to: /abs/customers.jsonl.zst\n"
    "    format: jsonl\n"
    "    compression: zstd\n"
    "    level: 19\n"
    "    max_rows: 100000\n"
    "    max_bytes: 64MiB\n"
    "    timeout: 30s\n"
    "    retries: 3\n"
    "    retry_backoff: 500ms\n"
    "  - name: plain\n"
    "    from: pg\n"
    "    query: |\n"
    "      SELECT $1::int\n"
    "    to: plain.tsv\n"
    "    compression: none\n"
    "    header: false\n"
    "    delimiter: ';'\n"
    "    null: NULL\n"
    "    crlf: true\n";

Test(job, full_job_parses_with_defaults_templates_env_and_paths) {
  dbp_job *job = parse_ok(full_job);
  cr_assert_str_eq(job->file, "job.yaml");
  cr_assert_eq(job->concurrency, 3);
  cr_assert_str_eq(job->manifest, "/base/exports/manifest-2024-03-05.json");
  cr_assert_eq(job->started, NOW);

  cr_assert_eq(job->nconns, 2);
  cr_assert_str_eq(job->conns[0].name, "pg");
  cr_assert_str_eq(job->conns[0].dsn, "postgresql://app:s3cret@127.0.0.1:5432/shop");
  cr_assert_null(strstr(job->conns[0].dsn_redacted, "s3cret"));
  cr_assert_eq(job->conns[0].kind, DBP_DB_PG);
  cr_assert_eq(job->conns[0].pool, 0);
  cr_assert_eq(job->conns[0].line, 3);
  cr_assert_eq(job->conns[0].column, 3);
  cr_assert_str_eq(job->conns[1].name, "my");
  cr_assert_str_eq(job->conns[1].dsn, "mysql://app:secret@127.0.0.1:3306/shop");
  cr_assert_eq(job->conns[1].kind, DBP_DB_MYSQL);
  cr_assert_eq(job->conns[1].pool, 2);

  cr_assert_eq(job->ntasks, 3);
  const dbp_job_task *t = &job->tasks[0];
  cr_assert_str_eq(t->name, "orders");
  cr_assert_eq(t->conn, 0);
  cr_assert_str_eq(t->query, "SELECT * FROM orders WHERE note <> '$'");
  cr_assert_null(t->table);
  cr_assert_str_eq(t->path, "/base/out/orders-2024-03-05.csv.gz");
  cr_assert_eq(t->export.format, DBP_FMT_CSV);
  cr_assert_eq(t->export.compression, DBP_COMP_GZIP); /* the default, matching .gz */
  cr_assert_eq(t->export.level, 0);
  cr_assert_eq(t->timeout_ms, 10 * 60 * 1000);
  cr_assert_eq(t->retries, 2);
  cr_assert_eq(t->retry_backoff_ms, DBP_JOB_DEFAULT_BACKOFF_MS);
  cr_assert_eq(t->export.max_rows, 0);
  cr_assert_not(t->export.encode.no_header);
  cr_assert_eq(t->line, 14);
  cr_assert_eq(t->column, 5);

  t = &job->tasks[1];
  cr_assert_str_eq(t->name, "customers");
  cr_assert_eq(t->conn, 1);
  cr_assert_null(t->query);
  cr_assert_str_eq(t->table, "shop.customers");
  cr_assert_str_eq(t->path, "/abs/customers.jsonl.zst");
  cr_assert_eq(t->export.format, DBP_FMT_JSONL);
  cr_assert_eq(t->export.compression, DBP_COMP_ZSTD);
  cr_assert_eq(t->export.level, 19);
  cr_assert_eq(t->export.max_rows, 100000);
  cr_assert_eq(t->export.max_bytes, 64u << 20);
  cr_assert_eq(t->timeout_ms, 30000);
  cr_assert_eq(t->retries, 3);
  cr_assert_eq(t->retry_backoff_ms, 500);

  t = &job->tasks[2];
  cr_assert_str_eq(t->query, "SELECT $1::int\n"); /* a lone $ stays */
  cr_assert_str_eq(t->path, "/base/plain.tsv");
  cr_assert_eq(t->export.format, DBP_FMT_TSV);
  cr_assert_eq(t->export.compression, DBP_COMP_NONE);
  cr_assert(t->export.encode.no_header);
  cr_assert_eq(t->export.encode.delimiter, ';');
  cr_assert_str_eq(t->export.encode.null_string, "NULL");
  cr_assert(t->export.encode.crlf);

  cr_assert_eq(dbp_job_find_task(job, "plain"), 2);
  cr_assert_eq(dbp_job_find_task(job, "nope"), -1);
  dbp_job_free(job);
}

Test(job, minimal_job_gets_the_documented_defaults) {
  dbp_job *job = parse_ok(
      "connections: {db: \"${PGDSN}\"}\n"
      "tasks:\n"
      "  - {name: t1, from: db, table: t, to: t1.csv}\n");
  cr_assert_eq(job->concurrency, DBP_JOB_DEFAULT_CONCURRENCY);
  cr_assert_str_eq(job->manifest, "/base/job.manifest.json");
  cr_assert_str_eq(job->conns[0].dsn, "postgresql://u:pw@127.0.0.1:5432/db");
  const dbp_job_task *t = &job->tasks[0];
  cr_assert_eq(t->export.format, DBP_FMT_CSV);
  cr_assert_eq(t->export.compression, DBP_COMP_NONE);
  cr_assert_eq(t->timeout_ms, DBP_JOB_NO_TIMEOUT);
  cr_assert_eq(t->retries, 0);
  cr_assert_eq(t->export.encode.delimiter, 0);
  cr_assert_null(t->export.encode.null_string);
  dbp_job_free(job);
}

Test(job, defaults_may_name_the_connection_and_manifest_may_be_off) {
  dbp_job *job = parse_ok(
      "connections:\n"
      "  db: mysql://u@localhost/x\n"
      "manifest: false\n"
      "defaults: {from: db, format: jsonl}\n"
      "tasks:\n"
      "  - {name: a, table: a, to: a}\n"
      "  - {name: b, table: b, to: b.jsonl.gz, compression: gzip, level: 9}\n");
  cr_assert_null(job->manifest);
  cr_assert_eq(job->tasks[0].conn, 0);
  cr_assert_eq(job->tasks[0].export.format, DBP_FMT_JSONL);
  cr_assert_eq(job->tasks[1].export.compression, DBP_COMP_GZIP);
  cr_assert_eq(job->tasks[1].export.level, 9);
  dbp_job_free(job);
}

Test(job, unknown_key_at_the_top) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "concurency: 2\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n",
      2, 1, "unknown key 'concurency' in the job (did you mean 'concurrency'?)");
}

Test(job, unknown_key_in_a_connection) {
  expect_only(
      "connections:\n"
      "  db:\n"
      "    dsn: postgresql://h/d\n"
      "    pools: 3\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n",
      4, 5, "unknown key 'pools' in connection 'db' (did you mean 'pool'?)");
}

Test(job, unknown_key_in_a_task) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: orders\n"
      "    fromm: db\n"
      "    from: db\n"
      "    table: orders\n"
      "    to: o.csv\n",
      4, 5, "unknown key 'fromm' in task 'orders' (did you mean 'from'?)");
}

Test(job, unknown_key_in_defaults_and_task_only_keys_there) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "defaults:\n"
      "  bogus: 1\n"
      "  to: x.csv\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n");
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, 3, 3, "unknown key 'bogus' in defaults");
  expect_error(&d, 1, 4, 3, "'to' cannot be a default");
  dbp_job_diag_free(&d);
}

Test(job, wrong_value_types) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "concurrency: [1, 2]\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    query: {sql: x}\n"
      "    to: a.csv\n"
      "    header: maybe\n"
      "    max_rows: lots\n");
  cr_assert_eq(d.count, 4);
  expect_error(&d, 0, 2, 14, "'concurrency' must be a positive number, not a list");
  expect_error(&d, 1, 6, 12, "'query' must be an SQL query, not a mapping");
  expect_error(&d, 2, 8, 13, "'header' must be true or false, not 'maybe'");
  expect_error(&d, 3, 9, 15, "'max_rows' must be a whole number, not 'lots'");
  dbp_job_diag_free(&d);
}

Test(job, tasks_must_be_a_list_of_mappings) {
  expect_only("connections: {db: postgresql://h/d}\ntasks: everything\n", 2, 8,
              "'tasks' must be a list of tasks, not a scalar");
  expect_only("connections: {db: postgresql://h/d}\ntasks:\n  - just a string\n", 3, 5,
              "task #1 must be a mapping");
}

Test(job, missing_required_keys) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    table: a\n"
      "  - from: db\n"
      "    table: b\n"
      "    to: b.csv\n"
      "  - name: c\n"
      "    to: c.csv\n");
  cr_assert_eq(d.count, 4);
  expect_error(&d, 0, 3, 5, "task 'a' has no 'to' (the output file)");
  expect_error(&d, 1, 6, 5, "task #2 has no 'name'");
  expect_error(&d, 2, 9, 5, "task 'c' has no 'from'");
  expect_error(&d, 3, 9, 5, "task 'c' needs 'query', 'table' or 'tables'");
  dbp_job_diag_free(&d);
}

Test(job, missing_top_level_sections) {
  dbp_job_diag d = parse_bad("concurrency: 2\n");
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, 1, 1, "the job has no 'connections'");
  expect_error(&d, 1, 1, 1, "the job has no 'tasks'");
  dbp_job_diag_free(&d);
}

Test(job, both_query_and_table) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    query: SELECT 1\n"
      "    table: a\n"
      "    to: a.csv\n",
      6, 5, "task 'a' has both 'query' and 'table'");
}

Test(job, unknown_connection) {
  expect_only(
      "connections:\n"
      "  pg: postgresql://h/d\n"
      "  my: mysql://h/d\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: oracle\n"
      "    table: a\n"
      "    to: a.csv\n",
      6, 11, "task 'a': unknown connection 'oracle' (defined: pg, my)");
}

Test(job, duplicate_task_name) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a1.csv}\n"
      "  - {name: b, from: db, table: b, to: b.csv}\n"
      "  - {name: a, from: db, table: a, to: a2.csv}\n",
      5, 12, "duplicate task name 'a' (first defined at line 3)");
}

Test(job, duplicate_keys_and_same_output_file) {
  dbp_job_diag d = parse_bad(
      "connections:\n"
      "  db: postgresql://h/d\n"
      "  db: postgresql://h/e\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: same.csv}\n"
      "  - {name: b, from: db, table: b, to: same.csv, to: other.csv}\n");
  cr_assert_eq(d.count, 3);
  expect_error(&d, 0, 3, 3, "duplicate key 'db' in connections (first at line 2)");
  expect_error(&d, 1, 6, 39, "task 'b' writes the same file as task 'a'");
  expect_error(&d, 2, 6, 49, "duplicate key 'to' in task 'b'");
  dbp_job_diag_free(&d);
}

Test(job, yaml_syntax_error) {
  dbp_job_diag d = parse_bad(
      "connections:\n"
      "  db: postgresql://h/d\n"
      "tasks:\n"
      "  - name: a\n"
      "    query: \"SELECT 1\n"
      "    to: a.csv\n");
  cr_assert_eq(d.count, 1);
  expect_error(&d, 0, 7, 1, "YAML syntax error: found unexpected end of stream");
  expect_error(&d, 0, 7, 1, "line 5, column 12");
  dbp_job_diag_free(&d);

  expect_only("connections: {db: x\ntasks: [\n", 2, 6, "YAML syntax error");
  expect_only("a: b: c\n", 1, 5, "YAML syntax error: mapping values are not allowed");
}

Test(job, empty_file) {
  expect_only("", 0, 0, "the job file is empty");
  dbp_job_diag d = parse_bad("# nothing\n");
  char buf[256];
  cr_assert_str_eq(dbp_job_diag_format(&d, 0, buf, sizeof buf), "job.yaml: the job file is empty");
  dbp_job_diag_free(&d);
}

Test(job, missing_environment_variable_points_at_it) {
  dbp_job_diag d = parse_bad(
      "connections:\n"
      "  pg: postgresql://app:${PG_PASSWORD}@h:${PG_PORT}/shop\n"
      "  my:\n"
      "    dsn: \"mysql://u:${MY_SECRET}@h/d\"\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: pg\n"
      "    table: ${SCHEMA}.t\n"
      "    to: ${OUT}/{name}-${NOPE:-x}-${MISSING}.csv\n");
  cr_assert_eq(d.count, 4);
  expect_error(&d, 0, 2, 41, "connection 'pg': environment variable 'PG_PORT' is not set");
  expect_error(&d, 1, 4, 21, "connection 'my': environment variable 'MY_SECRET' is not set");
  expect_error(&d, 2, 8, 12, "task 'a': environment variable 'SCHEMA' is not set");
  expect_error(&d, 3, 9, 34, "task 'a': environment variable 'MISSING' is not set");
  dbp_job_diag_free(&d);
}

Test(job, environment_expansion_rules) {
  dbp_job *job = parse_ok(
      "connections: {db: \"postgresql://u:p$$w@h/${EMPTY:-fallback}\"}\n"
      "tasks:\n"
      "  - {name: a, from: db, query: \"SELECT '${EMPTY}', '$x', '$${OUT}'\", to: "
      "\"${OUT}/a.csv\"}\n");
  cr_assert_str_eq(job->conns[0].dsn, "postgresql://u:p$w@h/fallback");
  cr_assert_str_eq(job->tasks[0].query, "SELECT '', '$x', '${OUT}'");
  cr_assert_str_eq(job->tasks[0].path, "/base/exports/a.csv");
  dbp_job_free(job);

  expect_only(
      "connections: {db: \"postgresql://h/${1BAD}\"}\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n",
      1, 35, "bad variable reference '${1BAD}'");
  expect_only(
      "connections: {db: \"postgresql://h/${OPEN\"}\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n",
      1, 35, "unterminated ${");
}

Test(job, unknown_template) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    table: a\n"
      "    to: out/${OUT}/{tabel}-{date}.csv\n",
      6, 20, "unknown template '{tabel}' (known: {name}, {date}, {schema}, {table}, {part})");
}

Test(job, bad_duration) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "defaults:\n"
      "  timeout: 10 minutes\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    table: a\n"
      "    to: a.csv\n"
      "    retry_backoff: 5x\n");
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, 3, 12, "defaults: bad duration '10 minutes' for 'timeout'");
  expect_error(&d, 1, 9, 20, "task 'a': bad duration '5x' for 'retry_backoff'");
  dbp_job_diag_free(&d);
}

Test(job, bad_format_and_compression) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    table: a\n"
      "    to: a.out\n"
      "    format: parquet\n"
      "  - name: b\n"
      "    from: db\n"
      "    table: b\n"
      "    to: b.csv\n"
      "    compression: lz4\n"
      "  - name: c\n"
      "    from: db\n"
      "    table: c\n"
      "    to: c.csv.gz\n"
      "    format: tsv\n"
      "    compression: zstd\n");
  cr_assert_eq(d.count, 4);
  expect_error(&d, 0, 7, 13, "task 'a': unknown format 'parquet' (use csv, tsv or jsonl)");
  expect_error(&d, 1, 12, 18, "task 'b': unknown compression 'lz4' (use none, gzip or zstd)");
  expect_error(&d, 2, 17, 13, "format 'tsv' does not match the file name 'c.csv.gz'");
  expect_error(&d, 3, 18, 18, "compression 'zstd' does not match the file name 'c.csv.gz'");
  dbp_job_diag_free(&d);
}

Test(job, defaults_compression_must_match_each_file) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "defaults: {compression: gzip}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv.gz}\n"
      "  - {name: b, from: db, table: b, to: b.csv}\n",
      5, 39, "compression 'gzip' (from defaults) does not match the file name 'b.csv'");
}

Test(job, bad_dsn_and_bad_numbers) {
  dbp_job_diag d = parse_bad(
      "connections:\n"
      "  db: oracle://h/d\n"
      "  ok:\n"
      "    dsn: postgresql://h/d\n"
      "    pool: 0\n"
      "concurrency: 0\n"
      "tasks:\n"
      "  - {name: a, from: ok, table: a, to: a.csv.gz, level: 30, retries: -1}\n"
      "  - {name: b/c, from: db, table: b, to: b.csv}\n");
  cr_assert_eq(d.count, 6);
  expect_error(&d, 0, 2, 7, "connection 'db': bad connection string");
  expect_error(&d, 1, 5, 11, "'pool' must be a number from 1 to");
  expect_error(&d, 2, 6, 14, "'concurrency' must be a number from 1 to");
  expect_error(&d, 3, 8, 56, "'level' must be a number");
  expect_error(&d, 4, 8, 69, "'retries' must be a number from 0 to 100");
  expect_error(&d, 5, 9, 12, "task name 'b/c' may only use letters");
  dbp_job_diag_free(&d);
}

Test(job, several_errors_are_reported_together_in_file_order) {
  dbp_job_diag d = parse_bad(
      "tasks:\n"
      "  - name: a\n"
      "    from: nowhere\n"
      "    table: a\n"
      "    to: a.csv\n"
      "    timeout: soon\n"
      "connections:\n"
      "  db: postgresql://h/d\n"
      "extra: 1\n");
  cr_assert_eq(d.count, 3);
  expect_error(&d, 0, 3, 11, "unknown connection 'nowhere' (defined: db)");
  expect_error(&d, 1, 6, 14, "bad duration 'soon'");
  expect_error(&d, 2, 9, 1, "unknown key 'extra' in the job");
  dbp_job_diag_free(&d);
}

Test(job, load_resolves_paths_against_the_job_file) {
  char dir[] = "/tmp/dbpipe-job-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char sub[300], file[320];
  snprintf(sub, sizeof sub, "%s/jobs", dir);
  cr_assert_eq(mkdir(sub, 0700), 0);
  snprintf(file, sizeof file, "%s/nightly.yml", sub);
  FILE *f = fopen(file, "w");
  cr_assert_not_null(f);
  fputs(
      "connections: {db: postgresql://h/d}\n"
      "tasks: [{name: a, from: db, table: a, to: out/a.csv}]\n",
      f);
  fclose(f);

  dbp_job *job = NULL;
  dbp_job_diag diag;
  cr_assert_eq(dbp_job_load(file, NULL, &job, &diag), 0);
  char want[400];
  snprintf(want, sizeof want, "%s/out/a.csv", sub);
  cr_assert_str_eq(job->tasks[0].path, want);
  snprintf(want, sizeof want, "%s/nightly.manifest.json", sub);
  cr_assert_str_eq(job->manifest, want);
  cr_assert_str_eq(job->dir, sub);
  dbp_job_free(job);

  /* A missing file is one diagnostic without a position. */
  snprintf(file, sizeof file, "%s/missing.yaml", sub);
  cr_assert_eq(dbp_job_load(file, NULL, &job, &diag), DBP_ENOENT);
  cr_assert_eq(diag.count, 1);
  char buf[512];
  dbp_job_diag_format(&diag, 0, buf, sizeof buf);
  cr_assert_not_null(strstr(buf, "missing.yaml: cannot read the job file: No such file"), "%s",
                     buf);
  dbp_job_diag_free(&diag);

  snprintf(file, sizeof file, "%s/nightly.yml", sub);
  unlink(file);
  rmdir(sub);
  rmdir(dir);
}

Test(values, durations) {
  int64_t ms;
  cr_assert_eq(dbp_parse_duration("500ms", &ms), 0);
  cr_assert_eq(ms, 500);
  cr_assert_eq(dbp_parse_duration("30s", &ms), 0);
  cr_assert_eq(ms, 30000);
  cr_assert_eq(dbp_parse_duration("10m", &ms), 0);
  cr_assert_eq(ms, 600000);
  cr_assert_eq(dbp_parse_duration("1h", &ms), 0);
  cr_assert_eq(ms, 3600000);
  cr_assert_eq(dbp_parse_duration("1h30m5s", &ms), 0);
  cr_assert_eq(ms, 5405000);
  cr_assert_eq(dbp_parse_duration("7", &ms), 0);
  cr_assert_eq(ms, 7000);
  const char *bad[] = {"", "s", "10 s", "10x", "-1s", "1.5s", "99999999999999999999h", "10sm"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_expect_eq(dbp_parse_duration(bad[i], &ms), DBP_EINVAL, "'%s' accepted", bad[i]);
  }
}

Test(values, sizes) {
  uint64_t b;
  cr_assert_eq(dbp_parse_size("0", &b), 0);
  cr_assert_eq(b, 0);
  cr_assert_eq(dbp_parse_size("1048576", &b), 0);
  cr_assert_eq(b, 1048576);
  cr_assert_eq(dbp_parse_size("500MB", &b), 0);
  cr_assert_eq(b, 500000000);
  cr_assert_eq(dbp_parse_size("2GiB", &b), 0);
  cr_assert_eq(b, 2ull << 30);
  cr_assert_eq(dbp_parse_size("10kB", &b), 0);
  cr_assert_eq(b, 10000);
  cr_assert_eq(dbp_parse_size("1mb", &b), DBP_EINVAL);
  cr_assert_eq(dbp_parse_size("MiB", &b), DBP_EINVAL);
  cr_assert_eq(dbp_parse_size("99999999999GiB", &b), DBP_EINVAL);
}

/* ---- idle timeouts, output checks, offline DSN and SQL checks, scale ---- */

Test(job, idle_timeout_in_tasks_and_defaults_and_zero_means_no_limit) {
  dbp_job *job = parse_ok(
      "connections: {db: postgresql://h/d}\n"
      "defaults: {idle_timeout: 30s}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv}\n"
      "  - {name: b, from: db, table: b, to: b.csv, idle_timeout: 0}\n"
      "  - {name: c, from: db, table: c, to: c.csv, idle_timeout: none, timeout: 0}\n"
      "  - {name: d, from: db, table: d, to: d.csv, idle_timeout: 1h30m, timeout: none}\n");
  cr_expect_eq(job->tasks[0].idle_timeout_ms, 30000);
  cr_expect_eq(job->tasks[1].idle_timeout_ms, DBP_JOB_NO_TIMEOUT);
  cr_expect_eq(job->tasks[2].idle_timeout_ms, DBP_JOB_NO_TIMEOUT);
  /* timeout: 0 means what idle_timeout: 0 means: no limit. */
  cr_expect_eq(job->tasks[2].timeout_ms, DBP_JOB_NO_TIMEOUT);
  cr_expect_eq(job->tasks[3].idle_timeout_ms, 5400000);
  cr_expect_eq(job->tasks[3].timeout_ms, DBP_JOB_NO_TIMEOUT);
  dbp_job_free(job);

  job = parse_ok(
      "connections: {db: postgresql://h/d}\n"
      "tasks: [{name: a, from: db, table: a, to: a.csv}]\n");
  cr_expect_eq(job->tasks[0].idle_timeout_ms, DBP_DEFAULT_IO_TIMEOUT_MS);
  cr_expect_eq(job->tasks[0].timeout_ms, DBP_JOB_NO_TIMEOUT);
  dbp_job_free(job);
}

Test(job, bad_idle_timeout) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv, idle_timeout: soon}\n",
      3, 60, "task 'a': bad duration 'soon' for 'idle_timeout'");
}

Test(job, endings_dbpipe_does_not_write_need_a_format) {
  dbp_job_diag d = parse_bad(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.xlsx}\n"
      "  - {name: b, from: db, table: b, to: b.json}\n"
      "  - {name: c, from: db, table: c, to: c.csv.bz2}\n"
      "  - {name: d, from: db, table: d, to: d.txt}\n"
      "  - {name: e, from: db, table: e, to: e.parquet}\n"
      "  - {name: f, from: db, table: f, to: f.txt, format: tsv}\n"
      "  - {name: g, from: db, table: g, to: g}\n"
      "  - {name: h, from: db, table: h, to: h.gz}\n");
  cr_assert_eq(d.count, 5);
  const char *names[] = {"a.xlsx", "b.json", "c.csv.bz2", "d.txt", "e.parquet"};
  for (size_t i = 0; i < 5; i++) {
    char want[128];
    snprintf(want, sizeof want, "dbpipe does not write the format of '%s'", names[i]);
    expect_error(&d, i, 3 + (int)i, 39, want);
    expect_error(&d, i, 3 + (int)i, 39, "with 'format:'");
  }
  dbp_job_diag_free(&d);

  dbp_job *job = parse_ok(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: f, from: db, table: f, to: f.txt, format: tsv}\n"
      "  - {name: g, from: db, table: g, to: g}\n"
      "  - {name: h, from: db, table: h, to: h.gz}\n");
  cr_expect_eq(job->tasks[0].export.format, DBP_FMT_TSV);
  cr_expect_eq(job->tasks[1].export.format, DBP_FMT_CSV);
  cr_expect_eq(job->tasks[2].export.format, DBP_FMT_CSV);
  cr_expect_eq(job->tasks[2].export.compression, DBP_COMP_GZIP);
  dbp_job_free(job);
}

Test(job, standard_output_is_refused_in_a_job_file) {
  expect_only(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - name: a\n"
      "    from: db\n"
      "    table: a\n"
      "    to: '-'\n",
      6, 9, "task 'a': 'to: -' (standard output) is not possible in a job file");
}

Test(job, a_directory_or_special_file_cannot_be_the_output) {
  char dir[] = "/tmp/dbpipe-job-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char fifo[64], sub[64];
  snprintf(fifo, sizeof fifo, "%s/pipe.csv", dir);
  snprintf(sub, sizeof sub, "%s/sub.csv", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(mkdir(sub, 0700), 0);
  char text[1024];
  snprintf(text, sizeof text,
           "connections: {db: postgresql://h/d}\n"
           "tasks:\n"
           "  - {name: a, from: db, table: a, to: %s}\n"
           "  - {name: b, from: db, table: b, to: %s}\n"
           "  - {name: c, from: db, table: c, to: %s/}\n"
           "  - {name: d, from: db, table: d, to: /dev/stdout, format: csv}\n",
           fifo, sub, dir);
  dbp_job_diag d = parse_bad(text);
  cr_expect_eq(d.count, 4);
  expect_error(&d, 0, 3, 39, "pipe.csv");
  expect_error(&d, 1, 4, 39, "sub.csv");
  expect_error(&d, 2, 5, 39, "task 'c'");
  expect_error(&d, 3, 6, 39, "/dev/stdout");
  dbp_job_diag_free(&d);
  unlink(fifo);
  rmdir(sub);
  rmdir(dir);
}

Test(job, a_query_is_one_statement) {
  dbp_job_diag d = parse_bad(
      "connections: {pg: postgresql://h/d, my: mysql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, query: 'SELECT 1; DROP TABLE t', to: a.csv}\n"
      "  - {name: b, from: my, query: 'SELECT 1; SELECT 2', to: b.csv}\n"
      "  - {name: c, from: pg, query: 'SELECT '';'' AS semi;', to: c.csv}\n");
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, 3, 32, "task 'a': ");
  expect_error(&d, 1, 4, 32, "task 'b': ");
  dbp_job_diag_free(&d);
}

Test(job, dsn_parameters_run_would_refuse_are_refused_here) {
  dbp_job_diag d = parse_bad(
      "connections:\n"
      "  a: postgresql://u:pw@127.0.0.1/d?host=10.9.8.7\n"
      "  b: postgresql://u@127.0.0.1/d?no_such_option=1\n"
      "  c: mysql://u@127.0.0.1/d?host=evil\n"
      "tasks:\n"
      "  - {name: a, from: a, table: a, to: a.csv}\n");
  cr_assert_eq(d.count, 3);
  expect_error(&d, 0, 2, 6, "connection 'a': bad connection string");
  expect_error(&d, 1, 3, 6, "connection 'b': bad connection string");
  expect_error(&d, 2, 4, 6, "connection 'c': bad connection string");
  char buf[1024];
  for (size_t i = 0; i < d.count; i++) {
    cr_expect_null(strstr(dbp_job_diag_format(&d, i, buf, sizeof buf), ":pw@"), "%s", buf);
  }
  dbp_job_diag_free(&d);
}

/* A generated job of `n` tasks, each without 'to' (MANY_NO_TO), all
 * writing one file (MANY_SAME_TO) or each its own (MANY_OWN_TO). */
enum { MANY_NO_TO, MANY_SAME_TO, MANY_OWN_TO };
static char *many_tasks(size_t n, int mode) {
  size_t cap = 64 + n * 80, len = 0;
  char *text = malloc(cap);
  cr_assert_not_null(text);
  len += (size_t)snprintf(text, cap, "connections: {db: postgresql://h/d}\ntasks:\n");
  for (size_t i = 0; i < n; i++) {
    if (mode == MANY_NO_TO) {
      len += (size_t)snprintf(text + len, cap - len,
                              "  - {name: t%zu, from: db, query: SELECT %zu}\n", i, i);
    } else if (mode == MANY_SAME_TO) {
      len += (size_t)snprintf(text + len, cap - len,
                              "  - {name: t%zu, from: db, query: SELECT %zu, to: u.csv}\n", i, i);
    } else {
      len += (size_t)snprintf(text + len, cap - len,
                              "  - {name: t%zu, from: db, query: SELECT %zu, to: out/t%zu.csv}\n",
                              i, i, i);
    }
  }
  return text;
}

Test(job, a_hundred_thousand_tasks_load, .timeout = 300) {
  /* Every task after the first writes the same file: 99,999 problems. */
  char *text = many_tasks(100000, MANY_SAME_TO);
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), "job.yaml", &opts, &job, &diag);
  cr_assert_eq(rc, DBP_EJOB);
  cr_expect_eq(diag.count, 99999);
  char buf[256];
  cr_expect_not_null(strstr(dbp_job_diag_format(&diag, 99998, buf, sizeof buf),
                            "task 't99999' writes the same file as task 't0'"),
                     "%s", buf);
  dbp_job_diag_free(&diag);
  free(text);

  /* Distinct names and paths: all 100,000 load. */
  text = many_tasks(100000, MANY_OWN_TO);
  job = parse_ok(text);
  cr_expect_eq(job->ntasks, 100000);
  cr_expect_str_eq(job->tasks[99999].name, "t99999");
  cr_expect_str_eq(job->tasks[99999].path, "/base/out/t99999.csv");
  dbp_job_free(job);
  free(text);
}

Test(job, many_problems_come_sorted, .timeout = 300) {
  char *text = many_tasks(50000, MANY_NO_TO);
  dbp_job *job = NULL;
  dbp_job_diag diag;
  cr_assert_eq(dbp_job_parse(text, strlen(text), "job.yaml", &opts, &job, &diag), DBP_EJOB);
  cr_assert_eq(diag.count, 50000);
  for (size_t i = 1; i < diag.count; i++) {
    const dbp_job_error *a = &diag.errors[i - 1], *b = &diag.errors[i];
    cr_assert(a->line < b->line || (a->line == b->line && a->column <= b->column),
              "diagnostics %zu and %zu out of order", i - 1, i);
  }
  dbp_job_diag_free(&diag);
  free(text);
}

Test(job, a_fifo_or_directory_job_file_is_refused_without_blocking, .timeout = 30) {
  char dir[] = "/tmp/dbpipe-job-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char fifo[64];
  snprintf(fifo, sizeof fifo, "%s/job.yaml", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  dbp_job *job = NULL;
  dbp_job_diag diag;
  /* Nobody writes to the FIFO: a blocking open would never return. */
  int rc = dbp_job_load(fifo, NULL, &job, &diag);
  cr_expect_neq(rc, 0);
  cr_expect_null(job);
  cr_assert_eq(diag.count, 1);
  char buf[512];
  cr_expect_not_null(strstr(dbp_job_diag_format(&diag, 0, buf, sizeof buf), "not a regular file"),
                     "%s", buf);
  dbp_job_diag_free(&diag);
  rc = dbp_job_load(dir, NULL, &job, &diag);
  cr_expect_neq(rc, 0);
  cr_expect_not_null(strstr(dbp_job_diag_format(&diag, 0, buf, sizeof buf), "directory"), "%s",
                     buf);
  dbp_job_diag_free(&diag);
  unlink(fifo);
  rmdir(dir);
}

Test(values, time_limits_share_one_parser) {
  int64_t ms;
  cr_expect_eq(dbp__parse_time_limit("0", &ms), 0);
  cr_expect_eq(ms, DBP_JOB_NO_TIMEOUT);
  cr_expect_eq(dbp__parse_time_limit("none", &ms), 0);
  cr_expect_eq(ms, DBP_JOB_NO_TIMEOUT);
  cr_expect_eq(dbp__parse_time_limit("0s", &ms), 0);
  cr_expect_eq(ms, DBP_JOB_NO_TIMEOUT);
  cr_expect_eq(dbp__parse_time_limit("250ms", &ms), 0);
  cr_expect_eq(ms, 250);
  cr_expect_eq(dbp__parse_time_limit("10m", &ms), 0);
  cr_expect_eq(ms, 600000);
  cr_expect_neq(dbp__parse_time_limit("soon", &ms), 0);
  cr_expect_neq(dbp__parse_time_limit("", &ms), 0);
  cr_expect_neq(dbp__parse_time_limit("-1s", &ms), 0);
}

/* An empty mapping as a task (and as the whole job's connections) is a
 * clear error, not a walk over a mapping that holds nothing. fuzz_job
 * found the walk (pointer arithmetic on an empty mapping's NULL pairs,
 * which UBSan reports); its input is kept in tests/fuzz/crashes/job. */
Test(job, an_empty_mapping_as_a_task_is_reported) {
  dbp_job_diag d = parse_bad(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {}\n");
  cr_assert_geq(d.count, 1);
  bool named = false;
  for (size_t i = 0; i < d.count; i++) named |= strstr(d.errors[i].message, "task #1") != NULL;
  cr_expect(named, "no diagnostic names task #1");
  dbp_job_diag_free(&d);
}
