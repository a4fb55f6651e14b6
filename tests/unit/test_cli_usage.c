/* The dbpipe executable refusing what it cannot do before it connects:
 * bad arguments and job files, targets it will not write, and its help.
 * The connection strings name servers that are not there (nothing listens
 * on port 1), so a case that tried to connect would fail differently. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clitest.h"
#include "dbpipe.h"
#include "dbtest.h"

static char dir[256];

static void setup(void) {
  setenv("DBPIPE_PG_DSN", "postgresql://dbpipe:dbpipe@127.0.0.1:1/shop", 1);
  setenv("DBPIPE_MY_DSN", "mysql://dbpipe:dbpipe@127.0.0.1:1/shop", 1);
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

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

Test(cli, bad_usage_exits_2_and_touches_nothing) {
  char job[512], badjob[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks: [{name: t, from: pg, table: customers, to: out/t.csv}]\n");
  snprintf(badjob, sizeof badjob, "%s/bad.yaml", dir);
  write_file(badjob,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks:\n"
             "  - name: t\n"
             "    from: pg\n"
             "    table: customers\n"
             "    to: out/t.csv\n"
             "    retries: many\n");
  const char *pg = dbt_pg_dsn();
  const char *const *cases[] = {
      (const char *[]){NULL},
      (const char *[]){"frobnicate", NULL},
      (const char *[]){"run", NULL},
      (const char *[]){"run", job, "--bogus", NULL},
      (const char *[]){"run", job, "--concurrency", "0", NULL},
      (const char *[]){"run", job, "--only", "t", "--only", "nope", NULL},
      (const char *[]){"run", job, "--log-format", "xml", NULL},
      (const char *[]){"run", badjob, NULL},
      (const char *[]){"run", "/nonexistent/job.yaml", NULL},
      (const char *[]){"check", badjob, NULL},
      (const char *[]){"export", "--from", pg, "--to", "out/x.csv", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", NULL},
      (const char *[]){"export", "--from", pg, "--table", "t", "--query", "SELECT 1", "--to",
                       "out/x.csv", NULL},
      (const char *[]){"export", "--from", "oracle://h/d", "--query", "SELECT 1", "--to",
                       "out/x.csv", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "out/x.csv",
                       "--format", "jsonl", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "out/x.csv",
                       "--timeout", "soon", NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "out/x.csv",
                       "--max-rows", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    proc p;
    int code = run_cli(&p, dir, cases[i]);
    cr_expect_eq(code, 2, "case %zu exited %d; stderr: %s", i, code, p.err);
    cr_expect_gt(p.err_len, 0, "case %zu printed no reason", i);
    proc_free(&p);
    cr_expect_not(exists("%s/out", dir), "case %zu created the output directory", i);
    cr_expect_not(exists("%s/ok.manifest.json", dir), "case %zu wrote a manifest", i);
    cr_expect_not(exists("%s/bad.manifest.json", dir), "case %zu wrote a manifest", i);
  }

  /* The job file's problem is named with its position. */
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", badjob, NULL}), 2);
  char want[600];
  snprintf(want, sizeof want, "%s:7:14: task 't': 'retries' must be a number", badjob);
  cr_expect_not_null(strstr(p.err, want), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "nothing was run"));
  proc_free(&p);
}

Test(cli, help_and_version) {
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"--version", NULL}), 0);
  cr_expect_eq(strncmp(p.out, "dbpipe ", 7), 0);
  cr_expect_not_null(strstr(p.out, dbp_version()));
  proc_free(&p);
  const char *const *cases[] = {
      (const char *[]){"--help", NULL}, (const char *[]){"help", "run", NULL},
      (const char *[]){"run", "--help", NULL}, (const char *[]){"export", "--help", NULL},
      (const char *[]){"help", "check", NULL}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cr_assert_eq(run_cli(&p, NULL, cases[i]), 0);
    cr_expect_not_null(strstr(p.out, "Usage"), "case %zu", i);
    if (i > 0) cr_expect_not_null(strstr(p.out, "Example"), "case %zu has no example", i);
    proc_free(&p);
  }
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "run", NULL}), 0);
  const char *keys[] = {
      "connections:", "concurrency:", "manifest:",  "defaults:",     "tasks:",  "name:",
      "from:",        "query:",       "table:",     "to:",           "format:", "compression:",
      "level:",       "header:",      "delimiter:", "null:",         "crlf:",   "max_rows:",
      "max_bytes:",   "timeout:",     "retries:",   "retry_backoff:"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    cr_expect_not_null(strstr(p.out, keys[i]), "help run does not explain %s", keys[i]);
  }
  proc_free(&p);
}

Test(cli, check_validates_without_touching_anything) {
  char job[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  my: ${DBPIPE_MY_DSN}\n"
             "tasks:\n"
             "  - {name: a, from: pg, table: customers, to: out/a.csv}\n"
             "  - {name: b, from: my, query: SELECT 1, to: out/b.jsonl.zst}\n");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"check", job, NULL}), 0);
  cr_expect_not_null(strstr(p.out, ": ok: 2 tasks, 2 connections"));
  cr_expect_not_null(strstr(p.out, "task b: my query -> "));
  cr_expect_not_null(strstr(p.out, "(jsonl, zstd)"));
  proc_free(&p);
  cr_expect_not(exists("%s/out", dir));
  cr_expect_not(exists("%s/ok.manifest.json", dir));

  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "tasks:\n"
             "  - {name: a, from: pg, table: customers, to: out/a.csv, colour: red}\n"
             "  - {name: a, from: oracle, query: SELECT 1, to: out/b.csv}\n"
             "  - {name: c, from: pg, to: out/c.parquet, format: parquet}\n");
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"check", job, NULL}), 2);
  cr_expect_eq(p.out_len, 0);
  char want[600];
  const char *expect[] = {":4:58: unknown key 'colour'", ":5:12: duplicate task name 'a'",
                          ":5:21: task 'a': unknown connection 'oracle'",
                          ":6:5: task 'c' needs 'query', 'table' or 'tables'",
                          ":6:52: task 'c': unknown format"};
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    snprintf(want, sizeof want, "%s%s", job, expect[i]);
    cr_expect_not_null(strstr(p.err, want), "missing '%s' in:\n%s", want, p.err);
  }
  cr_expect_not_null(strstr(p.err, "5 problems"));
  proc_free(&p);
  cr_expect_not(exists("%s/out", dir));
}

Test(cli, check_refuses_a_fifo_job_file_without_blocking) {
  char fifo[512];
  snprintf(fifo, sizeof fifo, "%s/job.yaml", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  const char *const *cases[] = {(const char *[]){"check", fifo, NULL},
                                (const char *[]){"run", fifo, NULL}};
  const char *needles[] = {"not a regular file", "not a regular file"};
  expect_refused(cases, 2, needles);
  cr_expect_not(exists("%s/job.manifest.json", dir));
}

Test(cli, several_statements_bad_targets_and_dsn_parameters_are_refused_first) {
  const char *pg = dbt_pg_dsn(), *my = dbt_my_dsn();
  char sub[512], fifo[512], out_link[512], job[512], dsn_host[1024], dsn_param[1024];
  snprintf(sub, sizeof sub, "%s/taken.csv", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo.csv", dir);
  /* A link to standard output, as /dev/stdout is. Never the machine's own
   * /dev/stdout: should the refusal ever break, a test running as root
   * would rename a file over it. */
  snprintf(out_link, sizeof out_link, "%s/stdout.csv", dir);
  cr_assert_eq(mkdir(sub, 0700), 0);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(symlink("/dev/stdout", out_link), 0);
  snprintf(dsn_host, sizeof dsn_host, "%s?host=10.11.12.13", pg);
  snprintf(dsn_param, sizeof dsn_param, "%s?no_such_parameter=1", pg);
  const char *const *cases[] = {
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1; DROP TABLE customers", "--to",
                       "out/a.csv", NULL},
      (const char *[]){"export", "--from", my, "--query", "SELECT 1; SELECT 2", "--to", "out/a.csv",
                       NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", sub, NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", fifo, NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", out_link, NULL},
      (const char *[]){"export", "--from", pg, "--query", "SELECT 1", "--to", "out/", NULL},
      (const char *[]){"export", "--from", dsn_host, "--query", "SELECT 1", "--to", "out/a.csv",
                       NULL},
      (const char *[]){"export", "--from", dsn_param, "--query", "SELECT 1", "--to", "out/a.csv",
                       NULL},
  };
  const char *needles[] = {"--query",    "--query", "taken.csv", "fifo.csv",
                           "stdout.csv", "out/",    "host",      "no_such_parameter"};
  expect_refused(cases, sizeof cases / sizeof cases[0], needles);

  /* The same in a job file, with positions, from check and run alike. */
  snprintf(job, sizeof job, "%s/bad.yaml", dir);
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  far: \"${DBPIPE_PG_DSN}?host=10.11.12.13\"\n"
             "tasks:\n"
             "  - {name: a, from: pg, query: 'SELECT 1; SELECT 2', to: out/a.csv}\n"
             "  - {name: b, from: pg, query: SELECT 1, to: %s}\n"
             "  - {name: c, from: pg, query: SELECT 1, to: %s}\n",
             sub, fifo);
  char want[4][700];
  snprintf(want[0], sizeof want[0], "%s:3:8: connection 'far': bad connection string", job);
  snprintf(want[1], sizeof want[1], "%s:5:32: task 'a': ", job);
  snprintf(want[2], sizeof want[2], "%s:6:46: task 'b': ", job);
  snprintf(want[3], sizeof want[3], "%s:7:46: task 'c': ", job);
  const char *const *jcases[] = {(const char *[]){"check", job, NULL},
                                 (const char *[]){"run", job, NULL}};
  for (size_t i = 0; i < 2; i++) {
    proc p;
    cr_expect_eq(run_cli(&p, NULL, jcases[i]), 2);
    for (size_t k = 0; k < 4; k++)
      cr_expect_not_null(strstr(p.err, want[k]), "no '%s' in:\n%s", want[k], p.err);
    proc_free(&p);
  }
  cr_expect_not(exists("%s/out", dir));
  cr_expect_not(exists("%s/bad.manifest.json", dir));
}

Test(cli, help_lists_every_new_option_and_key) {
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "export", NULL}), 0);
  const char *eopts[] = {"--from-env VAR", "--idle-timeout", "'-' writes the rows to standard",
                         "SIGHUP",         "PGPASSFILE",     "MYSQL_PWD"};
  for (size_t i = 0; i < sizeof eopts / sizeof eopts[0]; i++)
    cr_expect_not_null(strstr(p.out, eopts[i]), "help export lacks %s", eopts[i]);
  proc_free(&p);
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "run", NULL}), 0);
  const char *ropts[] = {"--idle-timeout",  "--snapshot", "idle_timeout:", "SIGQUIT",
                         "standard output", "PGPASSWORD", ".my.cnf"};
  for (size_t i = 0; i < sizeof ropts / sizeof ropts[0]; i++)
    cr_expect_not_null(strstr(p.out, ropts[i]), "help run lacks %s", ropts[i]);
  proc_free(&p);
}

/* ---- passwords in refused arguments ---- */

TestSuite(cli_secrets, .init = setup, .fini = teardown, .timeout = 120);

#define SECRET "Zq8-secret-Wx41"

Test(cli_secrets, a_dsn_is_never_echoed_raw_even_where_it_does_not_belong) {
  char job[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks: [{name: t, from: pg, table: customers, to: out/t.csv}]\n");
  const char *bad_url = "postgresql://u:" SECRET "@127.0.0.1:5432/d";
  const char *const *cases[] = {
      (const char *[]){"export", bad_url, NULL},
      (const char *[]){"run", job, bad_url, NULL},
      (const char *[]){"check", job, bad_url, NULL},
      (const char *[]){"export", "--from", "postgresql://u:" SECRET "@h:port/d", "--query",
                       "SELECT 1", "--to", "out/x.csv", NULL},
      (const char *[]){"export", "--from", "postgresql://u:" SECRET "@[::1/d", "--query",
                       "SELECT 1", "--to", "out/x.csv", NULL},
      (const char *[]){"export", "--from", "postgresql://u:" SECRET "@127.0.0.1/d?host=10.1.2.3",
                       "--query", "SELECT 1", "--to", "out/x.csv", NULL},
      (const char *[]){"export", "--from", "mysql://u:" SECRET "@127.0.0.1/d?host=elsewhere",
                       "--query", "SELECT 1", "--to", "out/x.csv", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    proc p;
    cr_expect_eq(run_cli(&p, dir, cases[i]), 2, "case %zu", i);
    cr_expect_gt(p.err_len, 0, "case %zu gave no reason", i);
    cr_expect_null(strstr(p.err, SECRET), "case %zu shows the password:\n%s", i, p.err);
    cr_expect_null(strstr(p.out, SECRET), "case %zu shows the password:\n%s", i, p.out);
    if (i >= 5) cr_expect_not_null(strstr(p.err, "host"), "case %zu: %s", i, p.err);
    proc_free(&p);
  }
  cr_expect_not(exists("%s/out", dir));
}

/* ---- whole-database exports ---- */

Test(cli, whole_database_options_are_checked_before_connecting) {
  const char *pg = dbt_pg_dsn();
#define EXP(...) ((const char *[]){"export", "--from", pg, __VA_ARGS__, NULL})
  const char *const *cases[] = {
      EXP("--tables", "a.*", "--table", "t", "--to", "out/{table}.csv"),
      EXP("--tables", "a.*", "--query", "SELECT 1", "--to", "out/{table}.csv"),
      EXP("--tables", "a,,b", "--to", "out/{table}.csv"),
      EXP("--tables", "a.*", "--tables", "", "--to", "out/{table}.csv"),
      EXP("--tables", "\"a.b", "--to", "out/{table}.csv"),
      EXP("--tables", "a.*", "--to", "out/x.csv"),
      EXP("--tables", "a.*", "--to", "-"),
      EXP("--table", "t", "--exclude", "x", "--to", "out/x.csv"),
      EXP("--table", "t", "--views", "--to", "out/x.csv"),
      EXP("--query", "SELECT 1", "--where", "x = 1", "--to", "out/x.csv"),
      EXP("--table", "t", "--where", "x = 1; DROP TABLE t", "--to", "out/x.csv"),
      EXP("--table", "t", "--where", " ", "--to", "out/x.csv"),
      EXP("--query", "SELECT 1", "--partitions", "4", "--to", "out/x.csv"),
      EXP("--table", "t", "--partitions", "0", "--to", "out/x.csv"),
      EXP("--table", "t", "--partitions", "10001", "--to", "out/x.csv"),
      EXP("--table", "t", "--partitions", "2", "--chunk-rows", "10", "--to", "out/x.csv"),
      EXP("--table", "t", "--chunk-rows", "lots", "--to", "out/x.csv"),
      EXP("--table", "t", "--partition-by", "id", "--to", "out/x.csv"),
      EXP("--table", "t", "--partitions", "2", "--to", "-"),
      EXP("--table", "t", "--to", "out/x-{part}.csv"),
      EXP("--table", "t", "--to", "out/{table}.csv"),
      EXP("--table", "t", "--snapshot", "maybe", "--to", "out/x.csv"),
      EXP("--table", "t", "--views=yes", "--to", "out/x.csv"),
      EXP("--tables", "a.*", "--to", "out/{table}.csv", "--pool", "0"),
  };
#undef EXP
  const char *needles[] = {
      "give one of --query, --table and --tables",
      "give one of --query, --table and --tables",
      "--tables: expected table patterns separated by commas, none of them empty, got 'a,,b'",
      "got 'a.*,'",
      "--tables: expected table patterns whose quotes all end",
      "--to needs {table}",
      "--tables writes a file for every table; standard output is one stream",
      "--exclude only applies to table patterns",
      "--views only applies to table patterns",
      "--where cannot filter a query",
      "--where: more than one statement",
      "--where: expected an SQL condition",
      "--partitions splits a table; a query cannot be split",
      "--partitions: expected a number from 1 to 10000, got '0'",
      "--partitions: expected a number from 1 to 10000, got '10001'",
      "--chunk-rows and partitions both say how to split",
      "--chunk-rows: expected a whole number of rows, at least 1, got 'lots'",
      "--partition-by needs partitions or chunk_rows",
      "--partitions reads parts side by side into files; standard output is one stream",
      "--to uses {part}, but the task is not split",
      "--to uses {table}, which only table patterns (tables) fill in",
      "--snapshot: expected on, none or lock-free, got 'maybe'",
      "--views takes no value",
      "--pool: expected a number from 1 to 1000",
  };
  cr_assert_eq(sizeof cases / sizeof cases[0], sizeof needles / sizeof needles[0]);
  expect_refused(cases, sizeof cases / sizeof cases[0], needles);
}

Test(cli, check_shows_table_patterns_and_splits) {
  char job[512];
  snprintf(job, sizeof job, "%s/ok.yaml", dir);
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  my: {dsn: \"${DBPIPE_MY_DSN}\", snapshot: lock-free}\n"
             "snapshot: none\n"
             "tasks:\n"
             "  - name: all\n"
             "    from: pg\n"
             "    tables: [public.*, shop.*]\n"
             "    exclude: public.tmp_*\n"
             "    partitions: 4\n"
             "    to: 'out/{schema}/{table}-{part}.csv.gz'\n"
             "  - {name: big, from: my, table: orders, chunk_rows: 1000, partition_by: id,\n"
             "     where: 'id > 5', to: out/orders.csv}\n");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"check", job, NULL}), 0, "%s", p.err);
  const char *want[] = {
      ": ok: 2 tasks, 2 connections, concurrency 4, snapshot none",
      "(snapshot lock-free)",
      "task all: pg tables public.*, shop.* (exclude public.tmp_*) split 4 parts by auto -> ",
      "/out/{schema}/{table}-{part}.csv.gz (csv, gzip)",
      "task big: my orders where id > 5 split in chunks of 1000 rows by id -> ",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_expect_not_null(strstr(p.out, want[i]), "no '%s' in:\n%s", want[i], p.out);
  proc_free(&p);
  cr_expect_not(exists("%s/out", dir));
}

Test(cli, help_explains_whole_database_exports) {
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "export", NULL}), 0);
  const char *eopts[] = {"--tables P",     "--exclude P",    "--views",        "--where SQL",
                         "--partition-by", "--partitions N", "--chunk-rows N", "--snapshot S",
                         "{table}",        "{part}",         "lock-free"};
  for (size_t i = 0; i < sizeof eopts / sizeof eopts[0]; i++)
    cr_expect_not_null(strstr(p.out, eopts[i]), "help export lacks %s", eopts[i]);
  proc_free(&p);
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "run", NULL}), 0);
  const char *keys[] = {"tables:",     "exclude:",      "views:",    "where:",   "partitions:",
                        "chunk_rows:", "partition_by:", "snapshot:", "{schema}", "{part}"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    cr_expect_not_null(strstr(p.out, keys[i]), "help run lacks %s", keys[i]);
  proc_free(&p);
}
