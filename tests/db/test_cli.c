/* The dbpipe executable against real servers: exit codes, files, the
 * manifest, log formats, check, and passwords never shown. */
#include "test_cli.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* Asserts that `text` has no line that does not contain `needle`. */
static void every_line_has(const char *text, const char *needle) {
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)len, p);
    cr_expect_not_null(strstr(line, needle), "line without '%s': %s", needle, line);
    p += len + (nl != NULL);
  }
}

Test(cli, the_shop_example_runs_into_a_temp_dir) {
  char src[4096], job[512], path[600];
  const char *sd = getenv("DBPIPE_SOURCE_DIR");
  cr_assert_not_null(sd, "DBPIPE_SOURCE_DIR is not set");
  snprintf(src, sizeof src, "%s/examples/shop.yaml", sd);
  char *yaml = read_file(src);
  cr_assert_not_null(yaml);
  snprintf(job, sizeof job, "%s/shop.yaml", dir);
  write_file(job, "%s", yaml);
  free(yaml);

  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 0);
  cr_expect_null(strchr(p.err, '\x1b'), "escape sequences without a terminal");
  cr_expect_not_null(strstr(p.err, "pg-customers: done: 20 rows"));
  cr_expect_not_null(strstr(p.err, "run ok: 16 of 16 tasks done"), "%s", p.err);
  proc_free(&p);

  snprintf(path, sizeof path, "%s/out", dir);
  cr_expect_eq(count_suffix(path, ".part"), 0, "a .part file was left behind");
  snprintf(path, sizeof path, "%s/out/manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text, "no manifest at %s", path);
  jv m;
  cr_assert(j_parse(text, &m), "the manifest is not JSON:\n%s", text);
  cr_expect_str_eq(j_str(&m, "dbpipe"), dbp_version());
  cr_expect_str_eq(j_str(&m, "status"), "ok");
  cr_expect_not_null(j_str(&m, "started"));
  cr_expect_eq(strlen(j_str(&m, "finished")), strlen("2024-01-01T00:00:00.000Z"));
  jv *tasks = j_get(&m, "tasks");
  cr_assert_eq(tasks->n, 16);

  /* The last five: my-all's tables, in name order. */
  uint64_t want_rows[][2] = {{0, 20},  {1, 20},  {2, 30},  {3, 51}, {4, 16},  {5, 51},
                             {6, 20},  {7, 20},  {8, 30},  {9, 51}, {10, 16}, {11, 20},
                             {12, 16}, {13, 51}, {14, 30}, {15, 20}};
  for (size_t i = 0; i < tasks->n; i++) {
    jv *t = &tasks->items[i];
    cr_expect_str_eq(j_str(t, "status"), "ok", "task %s", j_str(t, "name"));
    cr_expect_eq(j_get(t, "error")->t, J_NULL);
    cr_expect_eq((uint64_t)j_num(t, "rows"), want_rows[i][1], "rows of %s", j_str(t, "name"));
    jv *files = j_get(t, "files");
    cr_assert(files != NULL && files->t == J_ARR && files->n >= 1);
    uint64_t rows = 0, bytes = 0;
    for (size_t f = 0; f < files->n; f++) {
      jv *file = &files->items[f];
      const char *fp = j_str(file, "path");
      struct stat st;
      cr_assert_eq(stat(fp, &st), 0, "missing %s", fp);
      cr_expect_eq((uint64_t)st.st_size, (uint64_t)j_num(file, "bytes"), "size of %s", fp);
      char sha[65];
      sha256_file(fp, sha);
      cr_expect_str_eq(j_str(file, "sha256"), sha, "checksum of %s", fp);
      rows += (uint64_t)j_num(file, "rows");
      bytes += (uint64_t)j_num(file, "bytes");
    }
    cr_expect_eq(rows, (uint64_t)j_num(t, "rows"));
    cr_expect_eq(bytes, (uint64_t)j_num(t, "bytes"));
  }

  /* The split export: 51 rows in parts of at most 20. */
  jv *items = manifest_task(&m, "pg-order_items");
  jv *parts = j_get(items, "files");
  cr_assert_eq(parts->n, 3);
  snprintf(path, sizeof path, "%s/out/pg/order_items-00003.csv.gz", dir);
  cr_expect_str_eq(j_str(&parts->items[2], "path"), path);
  cr_expect_eq((uint64_t)j_num(&parts->items[2], "rows"), 11);
  /* A table of the pattern task, split in two parts and joined. */
  jv *all = manifest_task(&m, "my-all:shop.order_items");
  cr_assert_not_null(all);
  cr_expect_str_eq(j_str(all, "table"), "shop.order_items");
  cr_expect_eq(j_get(all, "parts")->n, 2);
  cr_expect_eq(j_get(all, "files")->n, 1);
  /* The {name}-{date} template. */
  const char *lines = j_str(&j_get(manifest_task(&m, "pg-order-lines"), "files")->items[0], "path");
  int y, mo, d;
  char tail[64];
  const char *base = strrchr(lines, '/') + 1;
  cr_expect_eq(sscanf(base, "pg-order-lines-%4d-%2d-%2d%s", &y, &mo, &d, tail), 4, "%s", base);
  cr_expect_str_eq(tail, ".csv.gz");

  /* A CSV from PostgreSQL starts with its header. */
  snprintf(path, sizeof path, "%s/out/pg/customers.csv", dir);
  char *csv = read_file(path);
  cr_assert_not_null(csv);
  cr_expect_eq(strncmp(csv, "id,email,full_name,", 19), 0, "%.60s", csv);
  free(csv);
  j_free(&m);
  free(text);
}

static void write_mixed_job(const char *job) {
  write_file(
      job,
      "connections:\n"
      "  pg: ${DBPIPE_PG_DSN}\n"
      "  my: ${DBPIPE_MY_DSN}\n"
      "tasks:\n"
      "  - {name: good-pg, from: pg, table: customers, to: out/good-pg.csv}\n"
      "  - {name: bad-pg, from: pg, query: SELECT * FROM no_such_table, to: out/bad-pg.csv}\n"
      "  - {name: good-my, from: my, table: products, to: out/good-my.jsonl}\n"
      "  - {name: bad-my, from: my, query: SELECT nope FROM customers, to: out/bad-my.csv}\n");
}

Test(cli, a_failing_task_does_not_stop_the_others_and_exits_1) {
  char job[512];
  snprintf(job, sizeof job, "%s/mixed.yaml", dir);
  write_mixed_job(job);
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 1);
  cr_expect_not_null(strstr(p.err, "bad-pg: failed: "));
  cr_expect_not_null(strstr(p.err, "42P01"), "the SQLSTATE is shown");
  cr_expect_not_null(strstr(p.err, "bad-my: failed: "));
  cr_expect_not_null(strstr(p.err, "good-pg: done: 20 rows"));
  proc_free(&p);

  cr_expect(exists("%s/out/good-pg.csv", dir));
  cr_expect(exists("%s/out/good-my.jsonl", dir));
  cr_expect_not(exists("%s/out/bad-pg.csv", dir));
  cr_expect_not(exists("%s/out/bad-my.csv", dir));
  char out[300];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0);

  /* The manifest is written even though a task failed. */
  char path[600];
  snprintf(path, sizeof path, "%s/mixed.manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text, "no default manifest beside the job");
  jv m;
  cr_assert(j_parse(text, &m), "%s", text);
  cr_expect_str_eq(j_str(&m, "status"), "failed");
  jv *bad = manifest_task(&m, "bad-pg");
  cr_expect_str_eq(j_str(bad, "status"), "failed");
  cr_expect_not_null(strstr(j_str(bad, "error"), "no_such_table"));
  cr_expect_eq(j_get(bad, "files")->n, 0);
  cr_expect_str_eq(j_str(manifest_task(&m, "good-my"), "status"), "ok");
  cr_expect_eq((uint64_t)j_num(manifest_task(&m, "good-my"), "rows"), 20);
  j_free(&m);
  free(text);
}

Test(cli, json_log_lines_are_objects_with_the_documented_keys) {
  char job[512];
  snprintf(job, sizeof job, "%s/mixed.yaml", dir);
  write_mixed_job(job);
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--log-format", "json", NULL}), 1);
  cr_expect_eq(p.out_len, 0);
  int started = 0, finished = 0, failed = 0, run_done = 0, lines = 0;
  char *save = NULL;
  for (char *line = strtok_r(p.err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lines++;
    jv o;
    cr_assert(j_parse(line, &o), "not JSON: %s", line);
    cr_assert_eq(o.t, J_OBJ, "not an object: %s", line);
    const char *ts = j_str(&o, "ts"), *level = j_str(&o, "level"), *event = j_str(&o, "event");
    cr_assert(ts && level && event && j_str(&o, "message"), "missing keys: %s", line);
    cr_expect_eq(ts[strlen(ts) - 1], 'Z', "%s", ts);
    cr_expect(
        strcmp(level, "info") == 0 || strcmp(level, "warning") == 0 || strcmp(level, "error") == 0,
        "%s", level);
    if (strncmp(event, "task_", 5) == 0) cr_expect_not_null(j_str(&o, "task"), "%s", line);
    if (strcmp(event, "task_started") == 0) {
      started++;
      cr_expect_not_null(j_str(&o, "connection"));
      cr_expect_not_null(j_str(&o, "path"));
    } else if (strcmp(event, "task_finished") == 0) {
      finished++;
      cr_expect_gt(j_num(&o, "rows"), 0);
      cr_expect_gt(j_num(&o, "bytes"), 0);
      cr_expect_geq(j_num(&o, "duration_ms"), 0);
      jv *files = j_get(&o, "files");
      cr_assert(files && files->t == J_ARR && files->n == 1);
      cr_expect_not_null(j_str(&files->items[0], "path"));
      cr_expect_eq(strlen(j_str(&files->items[0], "sha256")), 64);
    } else if (strcmp(event, "task_failed") == 0) {
      failed++;
      cr_expect_str_eq(level, "error");
      cr_expect_not_null(j_str(&o, "error"));
    } else if (strcmp(event, "run_finished") == 0) {
      run_done++;
      cr_expect_str_eq(j_str(&o, "status"), "failed");
      cr_expect_eq(j_num(&o, "exit_code"), 1);
      cr_expect_eq(j_num(&o, "failed"), 2);
      cr_expect_eq(j_num(&o, "done"), 2);
    }
    j_free(&o);
  }
  cr_expect_eq(started, 4);
  cr_expect_eq(finished, 2);
  cr_expect_eq(failed, 2);
  cr_expect_eq(run_done, 1);
  cr_expect_geq(lines, 9);
  proc_free(&p);

  /* A bad job file's problems come as JSON too, with their positions. */
  write_file(job, "connections: {pg: \"${DBPIPE_PG_DSN}\"}\ntasks: [{name: a, form: pg}]\n");
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--log-format=json", NULL}), 2);
  int problems = 0, found = 0;
  save = NULL;
  for (char *line = strtok_r(p.err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    jv o;
    cr_assert(j_parse(line, &o), "not JSON: %s", line);
    cr_expect_str_eq(j_str(&o, "event"), "job_invalid");
    cr_expect_str_eq(j_str(&o, "level"), "error");
    cr_expect_not_null(j_str(&o, "ts"));
    problems++;
    if (strstr(j_str(&o, "message"), "unknown key 'form'") != NULL) {
      found++;
      cr_expect_eq(j_num(&o, "line"), 2);
      cr_expect_eq(j_num(&o, "column"), 19);
    }
    j_free(&o);
  }
  cr_expect_eq(problems, 4); /* no from, no to, no query/table, the unknown key */
  cr_expect_eq(found, 1);
  proc_free(&p);
}

Test(cli, quiet_prints_only_errors) {
  char job[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks: [{name: t, from: pg, table: customers, to: out/t.csv}]\n");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", "--quiet", job, NULL}), 0);
  cr_expect_eq(p.out_len, 0, "%s", p.out);
  cr_expect_eq(p.err_len, 0, "%s", p.err);
  proc_free(&p);
  cr_expect(exists("%s/out/t.csv", dir));

  snprintf(job, sizeof job, "%s/mixed.yaml", dir);
  write_mixed_job(job);
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--quiet", NULL}), 1);
  cr_expect_eq(p.out_len, 0);
  cr_expect_not_null(strstr(p.err, "bad-pg: failed"));
  cr_expect_not_null(strstr(p.err, "bad-my: failed"));
  cr_expect_null(strstr(p.err, "good-pg"));
  cr_expect_null(strstr(p.err, "started"));
  every_line_has(p.err, "failed");
  proc_free(&p);
}

Test(cli, plain_log_lines_without_a_terminal) {
  char job[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections: {my: \"${DBPIPE_MY_DSN}\"}\n"
             "tasks: [{name: custs, from: my, table: customers, to: out/c.tsv.gz}]\n");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 0);
  every_line_has(p.err, "dbpipe: ");
  cr_expect_null(strchr(p.err, '\x1b'));
  cr_expect_not_null(strstr(p.err, "custs: started (from my to "));
  cr_expect_not_null(strstr(p.err, "custs: done: 20 rows, "));
  cr_expect_not_null(strstr(p.err, "out/c.tsv.gz"));
  proc_free(&p);
}

Test(cli, export_writes_a_table_a_query_and_a_manifest) {
  proc p;
  const char *pg = dbt_pg_dsn(), *my = dbt_my_dsn();
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", pg, "--table", "public.customers",
                                        "--to", "out/c.csv.gz", "--manifest", "out/m.json", NULL}),
               0);
  proc_free(&p);
  cr_expect(exists("%s/out/c.csv.gz", dir));
  char path[600];
  snprintf(path, sizeof path, "%s/out/m.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  jv m;
  cr_assert(j_parse(text, &m), "%s", text);
  cr_expect_str_eq(j_str(&m, "status"), "ok");
  cr_expect_eq(j_get(&m, "job")->t, J_NULL);
  cr_expect_eq(j_get(&m, "tasks")->n, 1);
  cr_expect_eq((uint64_t)j_num(&j_get(&m, "tasks")->items[0], "rows"), 20);
  j_free(&m);
  free(text);

  /* A MariaDB query split into parts of 8 rows, no manifest without --manifest. */
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", my, "--query",
                                        "SELECT id, email FROM customers ORDER BY id", "--to",
                                        "out/q.jsonl", "--max-rows", "8", "--quiet", NULL}),
               0);
  cr_expect_eq(p.err_len, 0, "%s", p.err);
  proc_free(&p);
  cr_expect(exists("%s/out/q-00001.jsonl", dir));
  cr_expect(exists("%s/out/q-00003.jsonl", dir));
  cr_expect_not(exists("%s/out/q-00004.jsonl", dir));
  snprintf(path, sizeof path, "%s/out/q-00003.jsonl", dir);
  text = read_file(path);
  cr_assert_not_null(text);
  cr_expect_eq(strncmp(text, "{\"id\":17,", 9), 0, "%s", text);
  free(text);

  /* Bad SQL through export: exit 1 and no file. */
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", pg, "--query", "SELECT nope", "--to",
                                        "out/bad.csv", NULL}),
               1);
  cr_expect_not_null(strstr(p.err, "failed"));
  proc_free(&p);
  cr_expect_not(exists("%s/out/bad.csv", dir));
}

#define SECRET "Pw-9f3Kq7ZtX"

Test(cli, a_password_never_appears_in_any_output) {
  dbp_dsn pgd, myd;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_pg_dsn(), &pgd, err, sizeof err), 0);
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &myd, err, sizeof err), 0);
  char job[512];
  snprintf(job, sizeof job, "%s/secret.yaml", dir);
  write_file(job,
             "connections:\n"
             "  refused-pg: postgresql://dbpipe:" SECRET
             "@127.0.0.1:1/shop\n"
             "  refused-my: mysql://dbpipe:" SECRET
             "@127.0.0.1:1/shop\n"
             "  wrong-pg: postgresql://dbpipe:" SECRET
             "@%s:%d/%s\n"
             "  wrong-my: mysql://dbpipe:" SECRET
             "@%s:%d/%s\n"
             "tasks:\n"
             "  - {name: a, from: refused-pg, query: SELECT 1, to: out/a.csv}\n"
             "  - {name: b, from: refused-my, query: SELECT 1, to: out/b.csv}\n"
             "  - {name: c, from: wrong-pg, query: SELECT 1, to: out/c.csv}\n"
             "  - {name: d, from: wrong-my, query: SELECT 1, to: out/d.csv}\n",
             pgd.host, pgd.port, pgd.dbname, myd.host, myd.port, myd.dbname);
  char wrong[512];
  snprintf(wrong, sizeof wrong, "postgresql://dbpipe:" SECRET "@%s:%d/%s", pgd.host, pgd.port,
           pgd.dbname);
  dbp_dsn_free(&pgd);
  dbp_dsn_free(&myd);

  struct {
    const char *const *argv;
    int code;
  } cases[] = {
      {(const char *[]){"run", job, NULL}, 1},
      {(const char *[]){"run", job, "--log-format", "json", NULL}, 1},
      {(const char *[]){"check", job, NULL}, 0},
      {(const char *[]){"export", "--from", wrong, "--query", "SELECT 1", "--to", "out/x.csv",
                        NULL},
       1},
      {(const char *[]){"export", "--from", "postgresql://u:" SECRET "@h:port/d", "--query",
                        "SELECT 1", "--to", "out/x.csv", NULL},
       2},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    proc p;
    cr_expect_eq(run_cli(&p, dir, cases[i].argv), cases[i].code, "case %zu", i);
    cr_expect_null(strstr(p.out, SECRET), "case %zu: the password is on stdout:\n%s", i, p.out);
    cr_expect_null(strstr(p.err, SECRET), "case %zu: the password is on stderr:\n%s", i, p.err);
    if (cases[i].code == 1) {
      /* ... and the reason is still there. */
      cr_expect(strstr(p.err, "auth") || strstr(p.err, "password") || strstr(p.err, "Access"),
                "case %zu: %s", i, p.err);
    }
    proc_free(&p);
  }
  char path[600];
  snprintf(path, sizeof path, "%s/secret.manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  cr_expect_null(strstr(text, SECRET));
  jv m;
  cr_assert(j_parse(text, &m));
  for (size_t i = 0; i < 4; i++) {
    cr_expect_str_eq(j_str(&j_get(&m, "tasks")->items[i], "status"), "failed");
  }
  j_free(&m);
  free(text);
}

Test(cli, retries_back_off_and_only_for_retryable_errors) {
  char job[512], fn[64];
  /* A function that fails with a serialization failure (retryable) on its
   * first call and returns rows after that. */
  snprintf(fn, sizeof fn, "flaky_%d", (int)getpid());
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  cr_assert_eq(PQstatus(c), CONNECTION_OK);
  char sql[1024];
  snprintf(sql, sizeof sql,
           "DROP SEQUENCE IF EXISTS %s_calls; CREATE SEQUENCE %s_calls;"
           "CREATE OR REPLACE FUNCTION %s() RETURNS SETOF int LANGUAGE plpgsql AS $f$ BEGIN "
           "IF nextval('%s_calls') = 1 THEN RAISE EXCEPTION 'try again' USING ERRCODE = '40001';"
           "END IF; RETURN QUERY SELECT generate_series(1, 5); END $f$",
           fn, fn, fn, fn);
  PGresult *r = PQexec(c, sql);
  cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
  PQclear(r);

  snprintf(job, sizeof job, "%s/retry.yaml", dir);
  write_file(
      job,
      "connections:\n"
      "  pg: ${DBPIPE_PG_DSN}\n"
      "  refused: postgresql://u@127.0.0.1:1/d\n"
      /* The flaky function counts its calls with a sequence: not in a
       * read-only snapshot. */
      "snapshot: none\n"
      "defaults: {retries: 2, retry_backoff: 100ms}\n"
      "tasks:\n"
      "  - {name: flaky, from: pg, query: 'SELECT * FROM %s() AS n', to: out/flaky.csv}\n"
      "  - {name: refused, from: refused, query: SELECT 1, to: out/refused.csv}\n"
      "  - {name: badsql, from: pg, query: SELECT nope, to: out/badsql.csv, retries: 5}\n"
      "  - {name: slow, from: pg, query: SELECT pg_sleep(5), to: out/slow.csv, timeout: 1s}\n",
      fn);
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 1);
  cr_expect_not_null(strstr(p.err, "flaky: attempt 1 of 3 failed ("), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "40001"));
  cr_expect_not_null(strstr(p.err, "flaky: done: 5 rows"));
  cr_expect_not_null(strstr(p.err, "refused: attempt 1 of 3 failed"));
  cr_expect_not_null(strstr(p.err, "retrying in 100 ms"));
  cr_expect_not_null(strstr(p.err, "refused: attempt 2 of 3 failed"));
  cr_expect_not_null(strstr(p.err, "retrying in 200 ms"));
  cr_expect_not_null(strstr(p.err, "(after 3 attempts)"));
  cr_expect_null(strstr(p.err, "badsql: attempt"), "bad SQL is not worth a retry");
  cr_expect_not_null(strstr(p.err, "slow: failed: timed out after 1.0 s"));
  proc_free(&p);

  char path[600];
  snprintf(path, sizeof path, "%s/retry.manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  jv m;
  cr_assert(j_parse(text, &m));
  cr_expect_eq(j_num(manifest_task(&m, "flaky"), "attempts"), 2);
  cr_expect_str_eq(j_str(manifest_task(&m, "flaky"), "status"), "ok");
  cr_expect_eq(j_num(manifest_task(&m, "refused"), "attempts"), 3);
  cr_expect_eq(j_num(manifest_task(&m, "badsql"), "attempts"), 1);
  cr_expect_str_eq(j_str(manifest_task(&m, "slow"), "status"), "failed");
  j_free(&m);
  free(text);
  cr_expect(exists("%s/out/flaky.csv", dir));
  cr_expect_not(exists("%s/out/slow.csv", dir));

  snprintf(sql, sizeof sql, "DROP FUNCTION %s(); DROP SEQUENCE %s_calls", fn, fn);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

/* Every job reads in a read-only snapshot by default, so a query that
 * writes (nextval) fails there; `dbpipe run --snapshot none` overrides the
 * job's and the connection's setting, and a bad value is refused before
 * the job is read. */
Test(cli, run_snapshot_overrides_the_job_file) {
  char job[512], seq[64], sql[256];
  snprintf(seq, sizeof seq, "runsnap_%d", (int)getpid());
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  cr_assert_eq(PQstatus(c), CONNECTION_OK);
  snprintf(sql, sizeof sql, "DROP SEQUENCE IF EXISTS %s; CREATE SEQUENCE %s", seq, seq);
  PGresult *r = PQexec(c, sql);
  cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
  PQclear(r);
  snprintf(job, sizeof job, "%s/snap.yaml", dir);
  write_file(job,
             "connections:\n"
             "  pg: {dsn: \"${DBPIPE_PG_DSN}\", snapshot: on}\n"
             "tasks:\n"
             "  - {name: next, from: pg, query: \"SELECT nextval('%s')\", to: out/next.csv}\n",
             seq);
  proc p;
  cr_expect_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 1);
  cr_expect_not_null(strstr(p.err, "read-only"), "%s", p.err);
  proc_free(&p);
  cr_expect_not(exists("%s/out/next.csv", dir));
  cr_expect_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--snapshot", "none", NULL}), 0, "%s",
               p.err);
  proc_free(&p);
  cr_expect(exists("%s/out/next.csv", dir));
  cr_expect_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--snapshot", "maybe", NULL}), 2);
  cr_expect_not_null(strstr(p.err, "--snapshot"), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "lock-free"), "%s", p.err);
  proc_free(&p);
  snprintf(sql, sizeof sql, "DROP SEQUENCE %s", seq);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

Test(cli, only_and_concurrency_select_what_runs) {
  char job[512];
  snprintf(job, sizeof job, "%s/sel.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "manifest: out/m.json\n"
             "tasks:\n"
             "  - {name: a, from: pg, table: customers, to: out/a.csv}\n"
             "  - {name: b, from: pg, table: products, to: out/b.csv}\n"
             "  - {name: c, from: pg, table: orders, to: out/c.csv}\n");
  proc p;
  cr_assert_eq(
      run_cli(&p, NULL,
              (const char *[]){"run", job, "--only", "c", "--only=a", "--concurrency", "1", NULL}),
      0);
  cr_expect_not_null(strstr(p.err, "running 2 tasks from"));
  cr_expect_not_null(strstr(p.err, "1 at a time"));
  proc_free(&p);
  cr_expect(exists("%s/out/a.csv", dir));
  cr_expect_not(exists("%s/out/b.csv", dir));
  cr_expect(exists("%s/out/c.csv", dir));
  char path[600];
  snprintf(path, sizeof path, "%s/out/m.json", dir);
  char *text = read_file(path);
  jv m;
  cr_assert(j_parse(text, &m));
  cr_expect_eq(j_get(&m, "tasks")->n, 2);
  j_free(&m);
  free(text);
}

/* ---- checks before anything runs, run outcomes, standard output ---- */

/* Runs each case in `dir` and expects exit code 2, a reason on stderr
 * containing `needle` (when not NULL), and nothing created. */
static void expect_refused(const char *const *const *cases, size_t n, const char *const *needles) {
  for (size_t i = 0; i < n; i++) {
    proc p;
    int code = run_cli(&p, dir, cases[i]);
    cr_expect_eq(code, 2, "case %zu exited %d; stderr: %s", i, code, p.err);
    cr_expect_gt(p.err_len, 0, "case %zu printed no reason", i);
    if (needles != NULL && needles[i] != NULL)
      cr_expect_not_null(strstr(p.err, needles[i]), "case %zu: no '%s' in: %s", i, needles[i],
                         p.err);
    proc_free(&p);
    cr_expect_not(exists("%s/out", dir), "case %zu created the output directory", i);
  }
}

Test(cli, endings_dbpipe_does_not_write_are_refused_unless_a_format_is_given) {
  const char *pg = dbt_pg_dsn();
  const char *endings[] = {"x.xlsx", "x.json", "x.csv.bz2", "x.txt", "x.parquet"};
  for (size_t i = 0; i < 5; i++) {
    char to[64], job[512];
    snprintf(to, sizeof to, "out/%s", endings[i]);
    snprintf(job, sizeof job, "%s/j%zu.yaml", dir, i);
    write_file(job,
               "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
               "tasks:\n"
               "  - {name: t, from: pg, table: customers, to: %s}\n",
               to);
    const char *const *cases[] = {
        (const char *[]){"export", "--from", pg, "--table", "customers", "--to", to, NULL},
        (const char *[]){"check", job, NULL},
        (const char *[]){"run", job, NULL},
    };
    char pos[600];
    snprintf(pos, sizeof pos, "%s:3:47: task 't': dbpipe does not write the format of", job);
    const char *needles[] = {"--format", pos, pos};
    expect_refused(cases, 3, needles);
  }
  /* With the format said, the name is the user's business. */
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", pg, "--table", "customers", "--to",
                                        "out/x.txt", "--format", "tsv", NULL}),
               0);
  proc_free(&p);
  char path[600];
  snprintf(path, sizeof path, "%s/out/x.txt", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  cr_expect_eq(strncmp(text, "id\temail\t", 9), 0, "%.40s", text);
  free(text);
}

Test(cli, a_manifest_that_cannot_be_written_fails_the_run) {
  char mdir[512], job[512];
  snprintf(mdir, sizeof mdir, "%s/manifest-is-a-dir", dir);
  cr_assert_eq(mkdir(mdir, 0700), 0);
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_pg_dsn(), "--table", "customers",
                                        "--to", "out/c.csv", "--manifest", mdir, NULL}),
               1, "%s", p.err);
  cr_expect_not_null(strstr(p.err, "cannot write the manifest"), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "export failed"), "%s", p.err);
  cr_expect_null(strstr(p.err, "export ok"), "%s", p.err);
  proc_free(&p);

  /* A job whose manifest would go below a regular file. */
  snprintf(job, sizeof job, "%s/m.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "manifest: m.yaml/manifest.json\n"
             "tasks: [{name: t, from: pg, table: customers, to: out/t.csv}]\n");
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--log-format", "json", NULL}), 1);
  cr_expect_not_null(strstr(p.err, "cannot write the manifest"), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "\"status\":\"failed\""), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "\"exit_code\":1"), "%s", p.err);
  proc_free(&p);
}

Test(cli, connect_errors_a_retry_cannot_fix_are_not_retried) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_pg_dsn(), &d, err, sizeof err), 0);
  dbp_dsn m;
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &m, err, sizeof err), 0);
  char job[512];
  snprintf(job, sizeof job, "%s/noretry.yaml", dir);
  write_file(job,
             "connections:\n"
             "  nodb-pg: postgresql://%s:%s@%s:%d/missing_db_here\n"
             "  badpw-pg: postgresql://%s:wrong-password@%s:%d/%s\n"
             "  nodb-my: mysql://%s:%s@%s:%d/missing_db_here\n"
             "  badpw-my: mysql://%s:wrong-password@%s:%d/%s\n"
             "defaults: {retries: 2, retry_backoff: 100ms}\n"
             "tasks:\n"
             "  - {name: nodb-pg, from: nodb-pg, query: SELECT 1, to: out/a.csv}\n"
             "  - {name: badpw-pg, from: badpw-pg, query: SELECT 1, to: out/b.csv}\n"
             "  - {name: nodb-my, from: nodb-my, query: SELECT 1, to: out/c.csv}\n"
             "  - {name: badpw-my, from: badpw-my, query: SELECT 1, to: out/d.csv}\n",
             d.user, d.password, d.host, d.port, d.user, d.host, d.port, d.dbname, m.user,
             m.password, m.host, m.port, m.user, m.host, m.port, m.dbname);
  dbp_dsn_free(&d);
  dbp_dsn_free(&m);
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 1);
  cr_expect_null(strstr(p.err, "retrying"), "retried:\n%s", p.err);
  proc_free(&p);
  char path[600];
  snprintf(path, sizeof path, "%s/noretry.manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  jv mf;
  cr_assert(j_parse(text, &mf));
  const char *names[] = {"nodb-pg", "badpw-pg", "nodb-my", "badpw-my"};
  for (size_t i = 0; i < 4; i++) {
    cr_expect_eq(j_num(manifest_task(&mf, names[i]), "attempts"), 1, "%s", names[i]);
    cr_expect_str_eq(j_str(manifest_task(&mf, names[i]), "status"), "failed");
  }
  j_free(&mf);
  free(text);
}

Test(cli, too_many_connections_is_retried) {
  /* A database nobody may connect to: "too many connections" (53300). */
  char db[64], sql[256];
  snprintf(db, sizeof db, "dbpipe_full_%d", (int)getpid());
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  cr_assert_eq(PQstatus(c), CONNECTION_OK);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s CONNECTION LIMIT 0", db);
  PGresult *r = PQexec(c, sql);
  cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
  PQclear(r);
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_pg_dsn(), &d, err, sizeof err), 0);
  char dsn[512];
  snprintf(dsn, sizeof dsn, "postgresql://%s:%s@%s:%d/%s", d.user, d.password, d.host, d.port, db);
  dbp_dsn_free(&d);
  proc p;
  cr_expect_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dsn, "--query", "SELECT 1", "--to",
                                        "out/x.csv", "--retries", "1", NULL}),
               1);
  cr_expect_not_null(strstr(p.err, "attempt 1 of 2 failed"), "not retried:\n%s", p.err);
  cr_expect_not_null(strstr(p.err, "too many"), "%s", p.err);
  proc_free(&p);
  snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

Test(cli, a_statement_without_rows_fails_an_export) {
  const char *pg = dbt_pg_dsn(), *my = dbt_my_dsn();
  const char *const *cases[] = {
      (const char *[]){"export", "--from", pg, "--query",
                       "UPDATE customers SET id = id WHERE false", "--to", "out/a.csv", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SET search_path = public", "--to",
                       "out/b.csv", NULL},
      (const char *[]){"export", "--from", my, "--query", "SET @x = 1", "--to", "out/c.csv", NULL},
  };
  for (size_t i = 0; i < 3; i++) {
    proc p;
    cr_expect_eq(run_cli(&p, dir, cases[i]), 1, "case %zu", i);
    cr_expect_not_null(strstr(p.err, "failed: "), "case %zu: %s", i, p.err);
    proc_free(&p);
  }
  cr_expect_not(exists("%s/out/a.csv", dir));
  cr_expect_not(exists("%s/out/b.csv", dir));
  cr_expect_not(exists("%s/out/c.csv", dir));
}

Test(cli, export_to_standard_output) {
  const char *pg = dbt_pg_dsn(), *my = dbt_my_dsn();
  proc p;
  cr_assert_eq(
      run_cli(&p, dir,
              (const char *[]){"export", "--from", pg, "--query",
                               "SELECT g AS n FROM generate_series(1, 3) g", "--to", "-", NULL}),
      0);
  cr_expect_str_eq(p.out, "n\n1\n2\n3\n");
  cr_expect_not_null(strstr(p.err, "done: 3 rows"), "logs stay on stderr: %s", p.err);
  proc_free(&p);
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", my, "--query", "SELECT 1 AS one",
                                        "--to", "-", "--format", "jsonl", "--quiet", NULL}),
               0);
  cr_expect_str_eq(p.out, "{\"one\":1}\n");
  cr_expect_eq(p.err_len, 0, "%s", p.err);
  proc_free(&p);
  /* Compressed: gzip's magic number first. */
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", pg, "--table", "customers", "--to", "-",
                                        "--compression", "gzip", NULL}),
               0);
  cr_expect(p.out_len > 2 && (unsigned char)p.out[0] == 0x1f && (unsigned char)p.out[1] == 0x8b);
  proc_free(&p);
  /* No file called "-", no manifest unless asked for. */
  cr_expect_not(exists("%s/-", dir));
  cr_expect_eq(count_suffix(dir, ".json"), 0);
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", pg, "--query", "SELECT 1 AS one",
                                        "--to", "-", "--manifest", "m.json", NULL}),
               0);
  cr_expect_str_eq(p.out, "one\n1\n");
  proc_free(&p);
  cr_expect(exists("%s/m.json", dir));

  const char *const *cases[] = {
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "-", "--max-rows",
                       "10", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "-", "--max-bytes",
                       "1MB", NULL},
  };
  const char *needles[] = {"--max-rows", "--max-bytes"};
  expect_refused(cases, 2, needles);
}

Test(cli, idle_timeout_fails_a_query_that_sends_nothing) {
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_pg_dsn(), "--query",
                                        "SELECT pg_sleep(5) AS slept", "--to", "out/s.csv",
                                        "--idle-timeout", "1s", NULL}),
               1);
  cr_expect_not_null(strstr(p.err, "idle"), "%s", p.err);
  proc_free(&p);
  cr_expect_not(exists("%s/out/s.csv", dir));

  char job[512];
  snprintf(job, sizeof job, "%s/idle.yaml", dir);
  write_file(job,
             "connections: {my: \"${DBPIPE_MY_DSN}\"}\n"
             "defaults: {idle_timeout: 1s}\n"
             "tasks:\n"
             "  - {name: nap, from: my, query: SELECT SLEEP(5) AS napped, to: out/n.csv}\n"
             "  - {name: ok, from: my, query: SELECT SLEEP(5) AS napped, to: out/o.csv,"
             " idle_timeout: 0}\n");
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 1);
  cr_expect_not_null(strstr(p.err, "nap: failed: "), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "ok: done: 1 row"), "%s", p.err);
  proc_free(&p);

  /* The command line's value wins over the file's. */
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--idle-timeout", "none", NULL}), 0);
  proc_free(&p);

  /* The runs above made out/; a refused run must not make it again. */
  char out[600];
  snprintf(out, sizeof out, "%s/out", dir);
  rm_rf(out);
  const char *const *bad[] = {
      (const char *[]){"export", "--from", dbt_pg_dsn(), "--query", "SELECT 1", "--to", "out/x.csv",
                       "--idle-timeout", "soon", NULL},
      (const char *[]){"run", job, "--idle-timeout", "-1", NULL},
  };
  const char *needles[] = {"--idle-timeout", "--idle-timeout"};
  expect_refused(bad, 2, needles);
}
