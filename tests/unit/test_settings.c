/* One settings parser: a task built by the job loader from YAML and one
 * built by dbp_task_set from the same (key, value) pairs are the same task,
 * a bad value gets the same reason from both, and every option of dbpipe
 * export that is a setting maps to one that exists and reads the same. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/options.h"
#include "dbpipe/job.h"

#define MAX_PAIRS 4

typedef struct pair {
  const char *key, *value;
} pair;

typedef struct scase {
  pair p[MAX_PAIRS]; /* name and from are added; the rest is the case */
} scase;

/* Appends `value` as a single-quoted YAML scalar. */
static void yaml_quote(char *out, size_t len, const char *value) {
  size_t n = strlen(out);
  if (n + 1 < len) out[n++] = '\'';
  for (const char *c = value; *c && n + 2 < len; c++) {
    if (*c == '\'') out[n++] = '\'';
    out[n++] = *c;
  }
  if (n + 1 < len) out[n++] = '\'';
  out[n] = '\0';
}

/* "connections: ...\ntasks:\n  - {name: 'NAME', from: db, KEY: 'VALUE', ...}\n" */
static void job_text_named(const char *name, const pair *p, char *out, size_t len) {
  snprintf(out, len, "connections: {db: postgresql://h/d}\ntasks:\n  - {name: ");
  yaml_quote(out, len, name);
  size_t n0 = strlen(out);
  snprintf(out + n0, len - n0, ", from: db");
  for (size_t i = 0; i < MAX_PAIRS && p[i].key != NULL; i++) {
    size_t n = strlen(out);
    snprintf(out + n, len - n, ", %s: ", p[i].key);
    yaml_quote(out, len, p[i].value);
  }
  size_t n = strlen(out);
  snprintf(out + n, len - n, "}\n");
}

static void job_text(const pair *p, char *out, size_t len) {
  job_text_named("t", p, out, len);
}

/* Loads the pairs as a job file's task. Returns the job or NULL (then *diag
 * holds the problems). */
static dbp_job *load(const pair *p, dbp_job_diag *diag) {
  char text[2048];
  job_text(p, text, sizeof text);
  dbp_job *job = NULL;
  int rc = dbp_job_parse(text, strlen(text), "job.yaml", NULL, &job, diag);
  if (rc != 0) return NULL;
  cr_assert_eq(job->ntasks, 1);
  return job;
}

typedef struct reasons {
  size_t n;
  char text[8][700];
} reasons;

static void collect(void *ud, const dbp_task_problem *pb) {
  reasons *r = ud;
  if (r->n < 8) snprintf(r->text[r->n++], sizeof r->text[0], "%s", pb->reason);
}

/* Applies the pairs with the public setter, as the command line does. On
 * a refused value, returns its rc with the reason in `why`; problems of
 * dbp_task_finish go to *r. */
static int build(const pair *p, dbp_job_task *t, char *why, size_t whylen, reasons *r) {
  dbp_task_init(t);
  int rc = dbp_task_set(t, "name", "t", why, whylen);
  cr_assert_eq(rc, 0);
  for (size_t i = 0; i < MAX_PAIRS && p[i].key != NULL; i++) {
    rc = dbp_task_set(t, p[i].key, p[i].value, why, whylen);
    if (rc != 0) return rc;
  }
  return dbp_task_finish(t, collect, r);
}

static void expect_same_str(const char *a, const char *b, const char *what, const char *key) {
  if (a == NULL || b == NULL) {
    cr_expect(a == b, "%s differs for %s", what, key);
  } else {
    cr_expect_str_eq(a, b, "%s differs for %s", what, key);
  }
}

static void expect_same_list(char *const *a, size_t na, char *const *b, size_t nb, const char *what,
                             const char *key) {
  cr_expect_eq(na, nb, "%s differ in length for %s", what, key);
  for (size_t i = 0; i < na && i < nb; i++) expect_same_str(a[i], b[i], what, key);
}

/* Field by field: everything a task holds. */
static void expect_same_task(const dbp_job_task *a, const dbp_job_task *b, const char *key) {
  expect_same_str(a->name, b->name, "name", key);
  expect_same_str(a->query, b->query, "query", key);
  expect_same_str(a->table, b->table, "table", key);
  expect_same_list(a->tables, a->ntables, b->tables, b->ntables, "tables", key);
  expect_same_list(a->exclude, a->nexclude, b->exclude, b->nexclude, "exclude", key);
  cr_expect_eq(a->views, b->views, "views differs for %s", key);
  expect_same_str(a->where, b->where, "where", key);
  expect_same_str(a->partition_by, b->partition_by, "partition_by", key);
  cr_expect_eq(a->partitions, b->partitions, "partitions differs for %s", key);
  cr_expect_eq(a->chunk_rows, b->chunk_rows, "chunk_rows differs for %s", key);
  expect_same_str(a->path, b->path, "path", key);
  const dbp_export_options *x = &a->export, *y = &b->export;
  cr_expect_eq(x->format, y->format, "format differs for %s", key);
  cr_expect_eq(x->compression, y->compression, "compression differs for %s", key);
  cr_expect_eq(x->level, y->level, "level differs for %s", key);
  cr_expect_eq(x->encode.format, y->encode.format, "encode.format differs for %s", key);
  cr_expect_eq(x->encode.no_header, y->encode.no_header, "no_header differs for %s", key);
  cr_expect_eq(x->encode.delimiter, y->encode.delimiter, "delimiter differs for %s", key);
  expect_same_str(x->encode.null_string, y->encode.null_string, "null_string", key);
  cr_expect_eq(x->encode.crlf, y->encode.crlf, "crlf differs for %s", key);
  cr_expect_eq(x->max_rows, y->max_rows, "max_rows differs for %s", key);
  cr_expect_eq(x->max_bytes, y->max_bytes, "max_bytes differs for %s", key);
  cr_expect_eq(x->batch_rows, y->batch_rows, "batch_rows differs for %s", key);
  cr_expect_eq(x->queue_batches, y->queue_batches, "queue_batches differs for %s", key);
  cr_expect_eq(x->timeout_ms, y->timeout_ms, "export.timeout_ms differs for %s", key);
  cr_expect_eq(x->no_fsync, y->no_fsync, "no_fsync differs for %s", key);
  cr_expect_null(x->progress, "a loaded task has no progress counters (%s)", key);
  cr_expect_null(y->progress);
  cr_expect_eq(a->timeout_ms, b->timeout_ms, "timeout_ms differs for %s", key);
  cr_expect_eq(a->idle_timeout_ms, b->idle_timeout_ms, "idle_timeout_ms differs for %s", key);
  cr_expect_eq(a->retries, b->retries, "retries differs for %s", key);
  cr_expect_eq(a->retry_backoff_ms, b->retry_backoff_ms, "retry_backoff_ms differs for %s", key);
}

static const scase good[] = {
    {{{"table", "t"}, {"to", "o.csv"}}},
    {{{"query", "SELECT 1"}, {"to", "o.csv"}}},
    {{{"table", "s.t"}, {"to", "o.tsv"}, {"format", "tsv"}}},
    {{{"table", "t"}, {"to", "o.txt"}, {"format", "jsonl"}}},
    {{{"table", "t"}, {"to", "o.csv.gz"}, {"compression", "gzip"}, {"level", "9"}}},
    {{{"table", "t"}, {"to", "o.jsonl.zst"}, {"level", "19"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"compression", "none"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"header", "false"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"header", "yes"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"delimiter", ";"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"delimiter", "tab"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"null", "NULL"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"null", ""}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"crlf", "on"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"max_rows", "1000"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"max_rows", "0"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"max_bytes", "64MiB"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"timeout", "10m"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"timeout", "none"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"idle_timeout", "0"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"idle_timeout", "1h30m"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"retries", "3"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"retry_backoff", "500ms"}}},
    {{{"tables", "public.*"}, {"to", "out/{table}.csv"}}},
    {{{"tables", " a.* , \"b,c\".d,`e,f`.*"},
      {"to", "o/{schema}.{table}.csv"},
      {"exclude", "a.tmp_*, a.\"x,y\""}}},
    {{{"tables", "*"}, {"to", "{table}.csv"}, {"views", "true"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"where", "x > 1 AND y = 'a;b'"}}},
    {{{"tables", "s.*"}, {"to", "{table}.csv"}, {"where", "deleted_at IS NULL"}}},
    {{{"table", "t"}, {"to", "o-{part}.csv"}, {"partitions", "4"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"partitions", "10000"}, {"partition_by", "auto"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"chunk_rows", "1000"}, {"partition_by", "id"}}},
    {{{"tables", "s.*"}, {"to", "{schema}/{table}-{part}.csv"}, {"chunk_rows", "1"}}},
};

Test(settings, the_loader_and_the_setter_build_the_same_task) {
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    const pair *p = good[i].p;
    const char *key = p[2].key != NULL ? p[2].key : p[0].key;
    dbp_job_diag diag;
    dbp_job *job = load(p, &diag);
    char buf[1024];
    for (size_t j = 0; job == NULL && j < diag.count; j++)
      cr_log_error("%s", dbp_job_diag_format(&diag, j, buf, sizeof buf));
    cr_assert_not_null(job, "case %zu (%s) did not load", i, key);
    dbp_job_task t;
    char why[400] = "";
    reasons r = {0};
    cr_assert_eq(build(p, &t, why, sizeof why, &r), 0, "case %zu (%s): %s %s", i, key, why,
                 r.text[0]);
    expect_same_task(&job->tasks[0], &t, key);
    dbp_task_clear(&t);
    dbp_job_free(job);
  }
}

Test(settings, defaults_apply_like_the_task_own_settings_but_yield_to_them) {
  const char *text =
      "connections: {db: postgresql://h/d}\n"
      "defaults: {retries: 2, null: 'N', max_bytes: 1MB}\n"
      "tasks:\n"
      "  - {name: t, from: db, table: t, to: o.csv, retries: 5}\n";
  dbp_job *job = NULL;
  dbp_job_diag diag;
  cr_assert_eq(dbp_job_parse(text, strlen(text), "job.yaml", NULL, &job, &diag), 0);
  dbp_job_task t;
  dbp_task_init(&t);
  cr_assert_eq(dbp_task_set(&t, "name", "t", NULL, 0), 0);
  cr_assert_eq(dbp_task_set(&t, "table", "t", NULL, 0), 0);
  cr_assert_eq(dbp_task_set(&t, "to", "o.csv", NULL, 0), 0);
  cr_assert_eq(dbp_task_set(&t, "retries", "5", NULL, 0), 0);
  cr_assert_eq(dbp_task_set_default(&t, "retries", "2", NULL, 0), 0);
  cr_assert_eq(dbp_task_set_default(&t, "null", "N", NULL, 0), 0);
  cr_assert_eq(dbp_task_set_default(&t, "max_bytes", "1MB", NULL, 0), 0);
  cr_assert_eq(dbp_task_finish(&t, NULL, NULL), 0);
  expect_same_task(&job->tasks[0], &t, "defaults");
  cr_expect_eq(t.retries, 5);
  cr_expect_eq(t.origin[DBP_SET_RETRIES], DBP_ORIGIN_TASK);
  cr_expect_eq(t.origin[DBP_SET_NULL], DBP_ORIGIN_DEFAULT);
  dbp_task_clear(&t);
  dbp_job_free(job);
}

/* A bad value: the setter's reason, and the loader's message holding it. */
static const pair bad[] = {
    {"format", "parquet"},  {"compression", "lz4"},  {"level", "30"},         {"level", "x"},
    {"header", "maybe"},    {"crlf", "2"},           {"delimiter", ";;"},     {"delimiter", "\""},
    {"max_rows", "lots"},   {"max_rows", "-1"},      {"max_bytes", "5XB"},    {"timeout", "soon"},
    {"idle_timeout", "-1"}, {"retries", "101"},      {"retry_backoff", "5x"}, {"query", "  "},
    {"name", "b/c"},        {"name", ".x"},          {"tables", "a,,b"},      {"tables", "a,"},
    {"tables", "\"a.b"},    {"tables", " "},         {"tables", "`x"},        {"exclude", ","},
    {"exclude", "a, ,b"},   {"views", "maybe"},      {"where", " "},          {"partition_by", " "},
    {"partitions", "0"},    {"partitions", "10001"}, {"partitions", "x"},     {"chunk_rows", "0"},
    {"chunk_rows", "-5"},   {"chunk_rows", "1e6"},
};

Test(settings, a_bad_value_gets_the_same_reason_from_both) {
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dbp_job_task t;
    dbp_task_init(&t);
    char why[400] = "";
    cr_expect_eq(dbp_task_set(&t, bad[i].key, bad[i].value, why, sizeof why), DBP_EINVAL,
                 "%s: '%s' was accepted", bad[i].key, bad[i].value);
    cr_expect_gt(strlen(why), 0);
    cr_expect_eq(t.origin[dbp_setting_find(bad[i].key)->id], DBP_ORIGIN_BAD);
    dbp_task_clear(&t);

    pair p[MAX_PAIRS] = {{"table", "t"}, {"to", "o.csv"}, bad[i]};
    if (strcmp(bad[i].key, "name") == 0) p[2] = (pair){"retries", "1"};
    if (strcmp(bad[i].key, "query") == 0 || strcmp(bad[i].key, "tables") == 0)
      p[0] = (pair){"retries", "1"};
    char text[2048];
    job_text_named(strcmp(bad[i].key, "name") == 0 ? bad[i].value : "t", p, text, sizeof text);
    dbp_job *job = NULL;
    dbp_job_diag diag;
    cr_assert_eq(dbp_job_parse(text, strlen(text), "job.yaml", NULL, &job, &diag), DBP_EJOB, "%s",
                 text);
    cr_assert_eq(diag.count, 1, "%s: %zu problems", bad[i].key, diag.count);
    char buf[1024];
    dbp_job_diag_format(&diag, 0, buf, sizeof buf);
    cr_expect_not_null(strstr(buf, why), "'%s' not in: %s", why, buf);
    dbp_job_diag_free(&diag);
  }
}

/* Problems of settings together: the same reasons from both. */
static const scase conflicts[] = {
    {{{"table", "t"}, {"to", "o.csv.gz"}, {"level", "12"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"level", "3"}}},
    {{{"table", "t"}, {"to", "o.csv.gz"}, {"format", "tsv"}, {"compression", "zstd"}}},
    {{{"table", "t"}, {"to", "o.parquet"}}},
    {{{"table", "t"}, {"to", "o.jsonl"}, {"delimiter", ";"}, {"null", "x"}}},
    {{{"table", "t"}, {"to", "o.jsonl"}, {"header", "false"}}},
    {{{"query", "SELECT 1"}, {"to", "o.csv"}, {"where", "x = 1"}}},
    {{{"query", "SELECT 1"}, {"to", "o.csv"}, {"partitions", "4"}}},
    {{{"query", "SELECT 1"}, {"to", "o.csv"}, {"chunk_rows", "10"}, {"partition_by", "id"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"exclude", "x"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"views", "false"}}},
    {{{"query", "SELECT 1"}, {"to", "o.csv"}, {"views", "true"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"partitions", "2"}, {"chunk_rows", "10"}}},
    {{{"table", "t"}, {"to", "o.csv"}, {"partition_by", "id"}}},
    {{{"table", "t"}, {"to", "o-{part}.csv"}}},
    {{{"tables", "a.*"}, {"to", "o/{part}.csv"}}},
    {{{"tables", "a.*"}, {"to", "o/{schema}.csv"}}},
    {{{"table", "t"}, {"to", "{schema}.csv"}}},
    {{{"query", "SELECT 1"}, {"to", "{table}.csv"}}},
};

Test(settings, settings_that_do_not_go_together_give_the_same_reasons) {
  for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++) {
    const pair *p = conflicts[i].p;
    dbp_job_task t;
    char why[400] = "";
    reasons r = {0};
    cr_assert_eq(build(p, &t, why, sizeof why, &r), DBP_EINVAL, "case %zu passed", i);
    dbp_task_clear(&t);
    dbp_job_diag diag;
    cr_assert_null(load(p, &diag), "case %zu loaded", i);
    cr_assert_eq(diag.count, r.n, "case %zu: %zu problems, the setter found %zu", i, diag.count,
                 r.n);
    for (size_t j = 0; j < r.n; j++) {
      bool found = false;
      char buf[1024];
      for (size_t d = 0; d < diag.count; d++)
        found |= strstr(dbp_job_diag_format(&diag, d, buf, sizeof buf), r.text[j]) != NULL;
      cr_expect(found, "case %zu: no problem of the loader says '%s'", i, r.text[j]);
    }
    dbp_job_diag_free(&diag);
  }
}

Test(settings, every_export_option_is_a_setting_or_the_command_line_own) {
  static const char *const own[] = {"from", "from-env", "manifest", "quiet", "log-format", "help"};
  size_t nsettings = 0;
  for (int k = 0; k < E_COUNT; k++) {
    const cli_opt *o = &cli_export_opts[k];
    cr_assert_not_null(o->name);
    if (o->setting == NULL) {
      bool found = false;
      for (size_t j = 0; j < sizeof own / sizeof own[0]; j++) found |= strcmp(own[j], o->name) == 0;
      cr_expect(found, "--%s is neither a setting nor one of the command's own", o->name);
      continue;
    }
    nsettings++;
    const dbp_setting *st = dbp_setting_find(o->setting);
    cr_assert_not_null(st, "--%s maps to '%s', which is no setting", o->name, o->setting);
    cr_expect_eq(o->arg, o->flag == NULL, "--%s: a flag must say its value", o->name);
    if (o->flag == NULL) {
      char spelled[64];
      snprintf(spelled, sizeof spelled, "%s", st->key);
      for (char *c = spelled; *c; c++) *c = *c == '_' ? '-' : *c;
      cr_expect_str_eq(o->name, spelled, "--%s is not spelled like '%s'", o->name, st->key);
    } else {
      dbp_job_task t;
      dbp_task_init(&t);
      cr_expect_eq(dbp_task_set(&t, st->key, o->flag, NULL, 0), 0, "--%s", o->name);
      dbp_task_clear(&t);
    }
  }
  cr_expect_eq(nsettings, E_COUNT - sizeof own / sizeof own[0]);
  cr_expect_null(cli_export_opts[E_COUNT].name);
  for (int k = 0; k < R_COUNT; k++) {
    if (cli_run_opts[k].setting != NULL)
      cr_expect_not_null(dbp_setting_find(cli_run_opts[k].setting), "run --%s",
                         cli_run_opts[k].name);
  }
}

/* Runs the dbpipe binary; returns its exit code with stderr in err. */
static int run_dbpipe(const char *const *args, char *err, size_t errlen) {
  const char *bin = getenv("DBPIPE_BIN");
  cr_assert_not_null(bin, "DBPIPE_BIN is not set");
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    const char *argv[32] = {bin};
    for (size_t i = 0; args[i] != NULL && i < 30; i++) argv[i + 1] = args[i];
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < errlen && (r = read(fds[0], err + n, errlen - 1 - n)) > 0) n += (size_t)r;
  err[n] = '\0';
  close(fds[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(settings, dbpipe_export_frames_the_same_reasons) {
  char dir[] = "/tmp/dbpipe-settings-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char to[600];
  snprintf(to, sizeof to, "%s/o.csv", dir);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (strcmp(bad[i].key, "name") == 0 || strcmp(bad[i].key, "retry_backoff") == 0) continue;
    const char *opt = NULL;
    bool flag = false;
    for (int k = 0; k < E_COUNT; k++) {
      if (cli_export_opts[k].setting != NULL &&
          strcmp(cli_export_opts[k].setting, bad[i].key) == 0) {
        opt = cli_export_opts[k].name;
        flag = !cli_export_opts[k].arg;
      }
    }
    cr_assert_not_null(opt, "no option for %s", bad[i].key);
    if (flag) continue; /* --no-header, --crlf: no value to get wrong */
    char why[400] = "", arg[64], want[600], err[4096];
    dbp_job_task t;
    dbp_task_init(&t);
    dbp_task_set(&t, bad[i].key, bad[i].value, why, sizeof why);
    dbp_task_clear(&t);
    snprintf(arg, sizeof arg, "--%s", opt);
    const char *args[] = {
        "export",     "--from", "postgresql://u@127.0.0.1:1/d", "--table", "t", "--to", to, arg,
        bad[i].value, NULL};
    if (strcmp(opt, "query") == 0 || strcmp(opt, "tables") == 0)
      args[3] = arg, args[4] = bad[i].value, args[7] = NULL;
    int code = run_dbpipe(args, err, sizeof err);
    cr_expect_eq(code, 2, "--%s %s exited %d: %s", opt, bad[i].value, code, err);
    snprintf(want, sizeof want, "dbpipe export: --%s: expected %s, got '", opt, why);
    cr_expect_not_null(strstr(err, want), "'%s' not in: %s", want, err);
  }
  rmdir(dir);
}

/* What each conflict says, by the setter alone. */
static void expect_reason(const pair *p, dbp_setting_id id, const char *needle) {
  dbp_job_task t;
  char why[400] = "";
  reasons r = {0};
  cr_assert_eq(build(p, &t, why, sizeof why, &r), DBP_EINVAL, "'%s' passed", needle);
  bool found = false;
  for (size_t i = 0; i < r.n; i++) found |= strstr(r.text[i], needle) != NULL;
  cr_expect(found, "no reason says '%s' (first: %s)", needle, r.text[0]);
  dbp_task_clear(&t);
  (void)id;
}

Test(settings, whole_table_settings_only_go_where_they_apply) {
  expect_reason((pair[MAX_PAIRS]){{"query", "SELECT 1"}, {"to", "o.csv"}, {"where", "x"}},
                DBP_SET_WHERE, "cannot filter a query");
  expect_reason((pair[MAX_PAIRS]){{"query", "SELECT 1"}, {"to", "o.csv"}, {"partitions", "2"}},
                DBP_SET_PARTITIONS, "a query cannot be split");
  expect_reason((pair[MAX_PAIRS]){{"table", "t"}, {"to", "o.csv"}, {"exclude", "x"}},
                DBP_SET_EXCLUDE, "only applies to table patterns");
  expect_reason(
      (pair[MAX_PAIRS]){{"table", "t"}, {"to", "o.csv"}, {"partitions", "2"}, {"chunk_rows", "9"}},
      DBP_SET_CHUNK_ROWS, "give one of them");
  expect_reason((pair[MAX_PAIRS]){{"table", "t"}, {"to", "o.csv"}, {"partition_by", "id"}},
                DBP_SET_PARTITION_BY, "needs partitions or chunk_rows");
  expect_reason((pair[MAX_PAIRS]){{"table", "t"}, {"to", "o{part}.csv"}}, DBP_SET_TO, "not split");
  expect_reason((pair[MAX_PAIRS]){{"tables", "a.*"}, {"to", "o.csv"}}, DBP_SET_TO, "needs {table}");
  expect_reason((pair[MAX_PAIRS]){{"table", "a"}, {"to", "{table}.csv"}}, DBP_SET_TO,
                "uses {table}");
  expect_reason((pair[MAX_PAIRS]){{"tables", "a.*"}, {"to", "-"}}, DBP_SET_TABLES,
                "standard output is one stream");
  expect_reason((pair[MAX_PAIRS]){{"table", "a"}, {"to", "-"}, {"partitions", "2"}},
                DBP_SET_PARTITIONS, "standard output is one stream");
  expect_reason((pair[MAX_PAIRS]){{"table", "a"}, {"to", "-"}, {"chunk_rows", "2"}},
                DBP_SET_CHUNK_ROWS, "standard output is one stream");
  expect_reason((pair[MAX_PAIRS]){{"query", "SELECT 1"}, {"table", "t"}, {"to", "o.csv"}},
                DBP_SET_TABLE, "give only one of");
  expect_reason((pair[MAX_PAIRS]){{"tables", "a.*"}, {"table", "t"}, {"to", "{table}.csv"}},
                DBP_SET_TABLES, "give only one of");
  expect_reason((pair[MAX_PAIRS]){{"to", "o.csv"}}, DBP_SET_QUERY, "needs a query");
  /* A split of standard output by rows stays what it was. */
  expect_reason((pair[MAX_PAIRS]){{"table", "a"}, {"to", "-"}, {"max_rows", "2"}}, DBP_SET_MAX_ROWS,
                "standard output is one stream");
}

Test(settings, the_source_problem_names_the_setting_and_is_reported_once) {
  dbp_job_task t;
  dbp_task_init(&t);
  cr_assert_eq(dbp_task_set(&t, "tables", "a.*", NULL, 0), 0);
  cr_assert_eq(dbp_task_set(&t, "query", "SELECT 1", NULL, 0), 0);
  cr_assert_eq(dbp_task_set(&t, "to", "{table}.csv", NULL, 0), 0);
  reasons r = {0};
  cr_assert_eq(dbp_task_finish(&t, collect, &r), DBP_EINVAL);
  cr_expect_eq(r.n, 1, "%zu problems: %s", r.n, r.text[0]);
  dbp_task_clear(&t);
  /* A refused value counts as given: no "needs a query" on top. */
  dbp_task_init(&t);
  cr_assert_eq(dbp_task_set(&t, "tables", "a,,b", NULL, 0), DBP_EINVAL);
  cr_assert_eq(dbp_task_set(&t, "to", "o.csv", NULL, 0), 0);
  r.n = 0;
  cr_expect_eq(dbp_task_finish(&t, collect, &r), 0, "%s", r.text[0]);
  dbp_task_clear(&t);
}

Test(settings, patterns_split_at_commas_outside_quotes) {
  dbp_job_task t;
  dbp_task_init(&t);
  cr_assert_eq(
      dbp_task_set(&t, "tables", " public.* ,\"My,Schema\".\"a\"\"b,c\", `x,y`.z,s.t ", NULL, 0),
      0);
  cr_assert_eq(t.ntables, 4);
  cr_expect_str_eq(t.tables[0], "public.*");
  cr_expect_str_eq(t.tables[1], "\"My,Schema\".\"a\"\"b,c\"");
  cr_expect_str_eq(t.tables[2], "`x,y`.z");
  cr_expect_str_eq(t.tables[3], "s.t");
  /* A second value replaces the first; a refused one leaves the setting
   * marked bad. */
  cr_assert_eq(dbp_task_set(&t, "tables", "only.one", NULL, 0), 0);
  cr_assert_eq(t.ntables, 1);
  cr_expect_str_eq(t.tables[0], "only.one");
  char why[200];
  cr_expect_eq(dbp_task_set(&t, "exclude", "a,\"b", why, sizeof why), DBP_EINVAL);
  cr_expect_not_null(strstr(why, "quotes"), "%s", why);
  cr_expect_eq(t.origin[DBP_SET_EXCLUDE], DBP_ORIGIN_BAD);
  cr_expect_eq(dbp_task_set(&t, "exclude", "x.*", NULL, 0), 0);
  cr_expect_eq(t.nexclude, 1);
  cr_expect_eq(dbp_task_set(&t, "partition_by", "id", NULL, 0), 0);
  cr_expect_str_eq(t.partition_by, "id");
  cr_expect_eq(dbp_task_set(&t, "partition_by", "auto", NULL, 0), 0);
  cr_expect_null(t.partition_by);
  cr_expect_eq(dbp_task_set(&t, "chunk_rows", "18446744073709551615", NULL, 0), 0);
  cr_expect_eq(t.chunk_rows, UINT64_MAX);
  dbp_task_clear(&t);
  cr_expect_null(t.tables);
  cr_expect_eq(t.ntables, 0);
  cr_expect_null(t.exclude);
}

Test(settings, inherited_settings_that_do_not_apply_are_dropped_but_a_filter_is_not) {
  const char *text =
      "connections: {db: postgresql://h/d}\n"
      "defaults: {exclude: x.*, views: true, partitions: 4, partition_by: id}\n"
      "tasks:\n"
      "  - {name: q, from: db, query: SELECT 1, to: q.csv}\n"
      "  - {name: one, from: db, table: t, to: t.csv}\n"
      "  - {name: all, from: db, tables: 's.*', to: '{table}.csv', chunk_rows: 50}\n";
  dbp_job *job = NULL;
  dbp_job_diag diag;
  cr_assert_eq(dbp_job_parse(text, strlen(text), "job.yaml", NULL, &job, &diag), 0);
  const dbp_job_task *q = &job->tasks[0], *one = &job->tasks[1], *all = &job->tasks[2];
  cr_expect_eq(q->partitions, 0);
  cr_expect_null(q->partition_by);
  cr_expect_eq(q->nexclude, 0);
  cr_expect_not(q->views);
  cr_expect_eq(one->partitions, 4);
  cr_expect_str_eq(one->partition_by, "id");
  cr_expect_eq(one->nexclude, 0);
  /* The task's own chunk_rows wins over the inherited partitions. */
  cr_expect_eq(all->partitions, 0);
  cr_expect_eq(all->chunk_rows, 50);
  cr_expect_eq(all->nexclude, 1);
  cr_expect(all->views);
  dbp_job_free(job);

  const char *filtered =
      "connections: {db: postgresql://h/d}\n"
      "defaults: {where: tenant = 7}\n"
      "tasks:\n"
      "  - {name: t, from: db, table: t, to: t.csv}\n"
      "  - {name: q, from: db, query: SELECT 1, to: q.csv}\n";
  cr_assert_eq(dbp_job_parse(filtered, strlen(filtered), "job.yaml", NULL, &job, &diag), DBP_EJOB);
  cr_assert_eq(diag.count, 1);
  char buf[1024];
  dbp_job_diag_format(&diag, 0, buf, sizeof buf);
  cr_expect_not_null(strstr(buf, "job.yaml:5:"), "%s", buf);
  cr_expect_not_null(strstr(buf, "'where' (from defaults) cannot filter a query"), "%s", buf);
  dbp_job_diag_free(&diag);
}

Test(settings, snapshot_of_a_job_and_of_a_connection) {
  static const struct {
    const char *value;
    dbp_job_snapshot want;
  } ok[] = {{"on", DBP_JOB_SNAPSHOT_ON},
            {"none", DBP_JOB_SNAPSHOT_NONE},
            {"lock-free", DBP_JOB_SNAPSHOT_LOCK_FREE},
            {"off", DBP_JOB_SNAPSHOT_NONE},
            {"false", DBP_JOB_SNAPSHOT_NONE},
            {"true", DBP_JOB_SNAPSHOT_ON}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    dbp_job job = {0};
    dbp_job_conn c = {0};
    cr_expect_eq(dbp_job_set(&job, "snapshot", ok[i].value, NULL, 0), 0, "%s", ok[i].value);
    cr_expect_eq(job.snapshot, ok[i].want, "%s", ok[i].value);
    cr_expect_eq(dbp_job_conn_set(&c, "snapshot", ok[i].value, NULL, 0), 0, "%s", ok[i].value);
    cr_expect_eq(c.snapshot, ok[i].want, "%s", ok[i].value);
  }
  static const char *const bad_values[] = {"", "lockfree", "shared", "1x"};
  for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
    dbp_job job = {0};
    dbp_job_conn c = {0};
    char why[200] = "";
    cr_expect_eq(dbp_job_set(&job, "snapshot", bad_values[i], why, sizeof why), DBP_EINVAL);
    cr_expect_str_eq(why, "on, none or lock-free");
    cr_expect_eq(job.snapshot, DBP_JOB_SNAPSHOT_AUTO);
    cr_expect_eq(dbp_job_conn_set(&c, "snapshot", bad_values[i], why, sizeof why), DBP_EINVAL);
    cr_expect_eq(c.snapshot, DBP_JOB_SNAPSHOT_AUTO);
  }
  dbp_job job = {0};
  dbp_job_conn c = {0};
  cr_expect_eq(dbp_job_set(&job, "snapshot", NULL, NULL, 0), DBP_EINVAL);
  cr_expect_eq(dbp_job_set(&job, "pool", "2", NULL, 0), DBP_ENOENT);
  cr_expect_eq(dbp_job_conn_set(&c, "concurrency", "2", NULL, 0), DBP_ENOENT);
  cr_expect_eq(dbp_job_conn_set(&c, "pool", "2", NULL, 0), 0);
  cr_expect_eq(c.pool, 2);
}
