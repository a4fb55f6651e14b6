/* The engine's whole-table work against real servers, one body per
 * behaviour on both databases: a tables pattern expanded before the run
 * starts (the task list final at run_started, the snapshot announced before
 * any task), split tables written in key order with one header, the parts
 * in the manifest, the manifest's plans read back by dbp_plan_from_json;
 * and a split export cancelled midway leaving nothing behind.
 *
 * Each test makes a schema (MariaDB: a database) dbpcat_eng_PID of its own
 * and drops it at the end. */
#include <unistd.h>

#include "jobtest.h"
#include "rttest.h"
#include "test_cli.h"

static char dir[256];
static char schema[64];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
  snprintf(schema, sizeof schema, "dbpcat_eng_%ld", (long)getpid());
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(engine_tables, .init = setup, .fini = teardown, .timeout = 120);

/* ---- SQL on a connection of a runtime of its own ---- */

typedef struct sql_job {
  const char *dsn;
  const char *stmts[16];
  int rc;
  char err[600];
} sql_job;

static int sql_body(dbp_rt *rt, void *arg) {
  sql_job *j = arg;
  dbp_conn *c = NULL;
  dbp_dberr e = {0};
  j->rc = dbp_conn_open(rt, j->dsn, DBP_FOREVER, &c, &e);
  for (size_t i = 0; j->rc == 0 && i < 16 && j->stmts[i] != NULL; i++) {
    j->rc = dbp_exec(c, j->stmts[i], 0, NULL, 60000, NULL);
    if (j->rc != 0) e = *dbp_conn_error(c);
  }
  if (j->rc != 0) snprintf(j->err, sizeof j->err, "%s", e.message);
  if (c != NULL) dbp_conn_close(c);
  return 0;
}

static void run_sql(sql_job *j) {
  dbt_run(sql_body, j);
  cr_assert_eq(j->rc, 0, "%s", j->err);
}

/* Three tables: keyed (5000 rows, integer key), heap (3000 rows, no key)
 * and "Odd Name" (a text key). */
static void make_tables(int kind) {
  char s[8][300];
  sql_job j = {.dsn = dbt_dsn(kind)};
  if (kind == DBT_PG) {
    snprintf(s[0], sizeof s[0], "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    snprintf(s[1], sizeof s[1], "CREATE SCHEMA %s", schema);
    snprintf(s[2], sizeof s[2],
             "CREATE TABLE %s.keyed AS SELECT g AS id, md5(g::text) AS h"
             " FROM generate_series(1, 5000) AS g",
             schema);
    snprintf(s[3], sizeof s[3], "ALTER TABLE %s.keyed ADD PRIMARY KEY (id)", schema);
    snprintf(s[4], sizeof s[4],
             "CREATE TABLE %s.heap AS SELECT g AS v FROM generate_series(1, 3000) AS g", schema);
    snprintf(s[5], sizeof s[5], "CREATE TABLE %s.\"Odd Name\" (k text PRIMARY KEY, n int)", schema);
    snprintf(s[6], sizeof s[6],
             "INSERT INTO %s.\"Odd Name\" VALUES ('a', 1), ('B', 2), ('c''q', 3)", schema);
  } else {
    snprintf(s[0], sizeof s[0], "DROP DATABASE IF EXISTS %s", schema);
    snprintf(s[1], sizeof s[1], "CREATE DATABASE %s", schema);
    snprintf(s[2], sizeof s[2], "CREATE TABLE %s.keyed (id INT PRIMARY KEY, h CHAR(32))", schema);
    snprintf(s[3], sizeof s[3], "INSERT INTO %s.keyed SELECT seq, MD5(seq) FROM seq_1_to_5000",
             schema);
    snprintf(s[4], sizeof s[4], "CREATE TABLE %s.heap (v INT)", schema);
    snprintf(s[5], sizeof s[5], "INSERT INTO %s.heap SELECT seq FROM seq_1_to_3000", schema);
    snprintf(s[6], sizeof s[6],
             "CREATE TABLE %s.`Odd Name` (k VARCHAR(10) PRIMARY KEY, n INT);"
             "INSERT INTO %s.`Odd Name` VALUES ('a', 1), ('B', 2), ('c''q', 3)",
             schema, schema);
  }
  for (int i = 0; i < 7; i++) j.stmts[i] = s[i];
  if (kind != DBT_PG) {
    /* One statement per call on MariaDB. */
    static char a[300], b[300];
    char *semi = strchr(s[6], ';');
    snprintf(a, sizeof a, "%.*s", (int)(semi - s[6]), s[6]);
    snprintf(b, sizeof b, "%s", semi + 1);
    j.stmts[6] = a;
    j.stmts[7] = b;
  }
  run_sql(&j);
}

static void drop_tables(int kind) {
  char s[200];
  snprintf(s, sizeof s,
           kind == DBT_PG ? "DROP SCHEMA IF EXISTS %s CASCADE" : "DROP DATABASE IF EXISTS %s",
           schema);
  sql_job j = {.dsn = dbt_dsn(kind), .stmts = {s}};
  run_sql(&j);
}

/* ---- the run ---- */

typedef struct seen {
  size_t ntasks_at_start;
  bool started;
  bool task_before_start;
  size_t snapshots;
  bool snapshot_after_task;
  bool task_started;
  bool cancel_at_rows; /* cancel once a task has rows */
  bool cancelled;
} seen;

static void on_event(const dbp_run_event *ev, void *ud) {
  seen *s = ud;
  switch (ev->kind) {
    case DBP_RUN_EV_RUN_STARTED:
      s->started = true;
      s->ntasks_at_start = dbp_run_ntasks(ev->run);
      break;
    case DBP_RUN_EV_SNAPSHOT:
      s->snapshots++;
      s->snapshot_after_task |= s->task_started;
      break;
    case DBP_RUN_EV_TASK_STARTED:
      s->task_started = true;
      s->task_before_start |= !s->started;
      break;
    case DBP_RUN_EV_TASK_PROGRESS:
      if (s->cancel_at_rows && ev->rows > 0 && !s->cancelled) {
        s->cancelled = true;
        dbp_run_cancel(ev->run);
      }
      break;
    default:
      break;
  }
}

typedef struct run_case {
  dbp_job *job;
  seen seen;
  dbp_run *run;
  int64_t progress_ms;
} run_case;

static int run_body(dbp_rt *rt, void *arg) {
  run_case *c = arg;
  dbp_run_options o = {.no_fsync = true, .progress_interval_ms = c->progress_ms};
  if (dbp_run_new(rt, c->job, &o, &c->run) != 0) return 1;
  if (dbp_run_subscribe(c->run, on_event, &c->seen) != 0) return 2;
  if (dbp_run_start(c->run) != 0) return 3;
  return dbp_run_wait(c->run, DBP_FOREVER) == 0 ? 0 : 4;
}

#define parse_job(...) dbt_parse_job(dir, "tables.yaml", __VA_ARGS__)

/* Lines of a file, and how many of them start with `prefix`. */
static size_t count_lines(const char *path, const char *prefix, size_t *with_prefix) {
  char *text = read_file(path);
  cr_assert_not_null(text, "missing %s", path);
  size_t n = 0, p = 0;
  for (char *line = text; *line;) {
    char *end = strchr(line, '\n');
    n++;
    p += strncmp(line, prefix, strlen(prefix)) == 0;
    if (end == NULL) break;
    line = end + 1;
  }
  free(text);
  *with_prefix = p;
  return n;
}

/* The JSON value that starts at p (an object or array), copied. */
static char *json_slice(const char *p) {
  int depth = 0;
  bool in_str = false;
  const char *q = p;
  for (; *q; q++) {
    if (in_str) {
      if (*q == '\\' && q[1] != '\0') {
        q++;
      } else if (*q == '"') {
        in_str = false;
      }
      continue;
    }
    if (*q == '"') in_str = true;
    if (*q == '{' || *q == '[') depth++;
    if ((*q == '}' || *q == ']') && --depth == 0) break;
  }
  return strndup(p, (size_t)(q - p + 1));
}

static void whole_schema_split(int kind) {
  make_tables(kind);
  dbp_job *job = parse_job(
      "connections: {db: {dsn: \"%s\", pool: 3}}\n"
      "manifest: out/m.json\n"
      "tasks:\n"
      "  - {name: all, from: db, tables: \"%s.*\", partitions: 3,"
      " to: \"out/{schema}.{table}.csv\"}\n",
      dbt_dsn(kind), schema);
  run_case c = {.job = job, .progress_ms = DBP_FOREVER};
  dbt_run(run_body, &c);
  cr_expect_eq(dbp_run_status(c.run), DBP_RUN_OK);
  cr_expect_eq(c.seen.ntasks_at_start, 3, "the task list is final at run_started");
  cr_expect_not(c.seen.task_before_start);
  cr_expect_eq(c.seen.snapshots, 1, "one snapshot announced");
  cr_expect_not(c.seen.snapshot_after_task, "the snapshot is announced before any task");

  const char *tables[] = {"Odd Name", "heap", "keyed"};
  const size_t rows[] = {3, 3000, 5000};
  const char *header[] = {"k,n", "v", "id,h"};
  for (size_t i = 0; i < 3; i++) {
    const dbp_task_info *in = dbp_run_task(c.run, i);
    cr_assert_not_null(in);
    char want[200], path[600];
    snprintf(want, sizeof want, "%s.%s", schema, tables[i]);
    cr_expect_str_eq(in->table, want);
    cr_expect_eq(in->state, DBP_TASK_DONE, "%s: %s", in->name, in->message);
    cr_expect_eq(in->result.rows, rows[i], "%s", in->name);
    cr_expect_eq(in->result.nfiles, 1, "%s: the parts are one file", in->name);
    snprintf(path, sizeof path, "%s/out/%s.%s.csv", dir, schema, tables[i]);
    size_t headers = 0;
    size_t lines = count_lines(path, header[i], &headers);
    cr_expect_eq(headers, 1, "%s: one header", path);
    cr_expect_eq(lines, rows[i] + 1, "%s: %zu lines", path, lines);
    /* MariaDB reads a table without a key whole. */
    if (i == 2 || (i == 1 && kind == DBT_PG)) {
      cr_expect_geq(in->nparts, 2, "%s is split (%zu parts)", in->name, in->nparts);
      cr_expect_neq(in->plan->method, DBP_SPLIT_NONE);
    }
  }
  char out[300];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");

  /* The manifest: the snapshot, the parts, and plans that read back. */
  char mpath[600];
  snprintf(mpath, sizeof mpath, "%s/out/m.json", dir);
  char *text = read_file(mpath);
  cr_assert_not_null(text);
  jv m;
  cr_assert(j_parse(text, &m));
  jv *dbs = j_get(&m, "databases");
  cr_assert(dbs != NULL && dbs->t == J_ARR && dbs->n == 1);
  jv *snap = j_get(&dbs->items[0], "snapshot");
  cr_assert(snap != NULL && snap->t == J_OBJ, "no snapshot in the manifest");
  if (kind == DBT_PG) cr_expect_not_null(j_str(snap, "id"));
  cr_expect_geq(j_num(snap, "workers"), 1);
  jv *keyed = NULL;
  char kname[200];
  snprintf(kname, sizeof kname, "all:%s.keyed", schema);
  keyed = manifest_task(&m, kname);
  cr_assert_not_null(keyed);
  jv *parts = j_get(keyed, "parts");
  cr_assert(parts != NULL && parts->t == J_ARR && parts->n >= 2);
  double sum = 0;
  for (size_t k = 0; k < parts->n; k++) sum += j_num(&parts->items[k], "rows");
  cr_expect_eq(sum, 5000, "the parts' rows add up");
  j_free(&m);

  const char *plans = strstr(text, "\"plans\": [");
  cr_assert_not_null(plans);
  const char *obj = strchr(plans, '{');
  cr_assert_not_null(obj);
  char *one = json_slice(obj);
  dbp_plan back = {0};
  char err[300] = "";
  cr_assert_eq(dbp_plan_from_json(one, strlen(one), &back, err, sizeof err), 0, "%s", err);
  cr_expect_eq(back.ntables, 3);
  for (size_t i = 0; i < back.ntables && i < 3; i++) {
    const dbp_plan_table *run_plan = dbp_run_task(c.run, i)->plan;
    cr_assert_not_null(run_plan);
    cr_expect_eq(back.tables[i].nparts, run_plan->nparts);
    for (size_t k = 0; k < run_plan->nparts && k < back.tables[i].nparts; k++) {
      char *a = dbp_plan_part_sql(run_plan, k, NULL);
      char *b = dbp_plan_part_sql(&back.tables[i], k, NULL);
      cr_expect_str_eq(b, a, "part %zu of %s", k, run_plan->name);
      free(a);
      free(b);
    }
  }
  dbp_plan_free(&back);
  free(one);
  free(text);
  cr_expect_eq(dbp_run_free(c.run), 0);
  dbp_job_free(job);
  drop_tables(kind);
}

Test(engine_tables, a_whole_schema_split_in_parts_pg) {
  whole_schema_split(DBT_PG);
}

Test(engine_tables, a_whole_schema_split_in_parts_my) {
  whole_schema_split(DBT_MY);
}

/* A split export cancelled while its parts run: no file at the target, no
 * part's hidden file, no temporary file. The table is big enough, and gzip
 * at level 9 slow enough, that its parts run for seconds, while the cancel
 * comes at the first progress event with rows. */
Test(engine_tables, a_split_export_cancelled_midway_leaves_nothing) {
  char s[4][300];
  snprintf(s[0], sizeof s[0], "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  snprintf(s[1], sizeof s[1], "CREATE SCHEMA %s", schema);
  snprintf(s[2], sizeof s[2],
           "CREATE TABLE %s.big AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b"
           " FROM generate_series(1, 800000) AS g",
           schema);
  snprintf(s[3], sizeof s[3], "ALTER TABLE %s.big ADD PRIMARY KEY (id)", schema);
  sql_job j = {.dsn = dbt_dsn(DBT_PG), .stmts = {s[0], s[1], s[2], s[3]}};
  run_sql(&j);
  dbp_job *job = parse_job(
      "connections: {db: {dsn: \"%s\", pool: 4}}\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: big, from: db, table: %s.big, partitions: 4, level: 9, to: out/big.csv.gz}\n",
      dbt_dsn(DBT_PG), schema);
  run_case c = {.job = job, .progress_ms = 50, .seen = {.cancel_at_rows = true}};
  dbt_run(run_body, &c);
  cr_expect(c.seen.cancelled, "the export never made progress");
  cr_expect_eq(dbp_run_status(c.run), DBP_RUN_CANCELLED);
  cr_expect_not(exists("%s/out/big.csv.gz", dir));
  char out[300];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
  cr_expect_eq(count_suffix(out, ".csv.gz"), 0, "a part's file was left behind");
  cr_expect_eq(dbp_run_free(c.run), 0);
  dbp_job_free(job);
  drop_tables(DBT_PG);
}

/* A filter or a split needs the table's catalog entry: a table that is not
 * there fails its task with a message naming it, before any query, and
 * the other tasks finish. */
Test(engine_tables, a_filtered_or_split_table_that_does_not_exist_fails_alone) {
  dbp_job *job = parse_job(
      "connections: {db: \"%s\"}\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: filtered, from: db, table: no_such_table, where: 'id > 1', to: out/f.csv}\n"
      "  - {name: split, from: db, table: no_such_table, partitions: 2, to: out/s.csv}\n"
      "  - {name: fine, from: db, table: customers, to: out/c.csv}\n",
      dbt_dsn(DBT_PG));
  run_case c = {.job = job, .progress_ms = DBP_FOREVER};
  dbt_run(run_body, &c);
  cr_expect_eq(dbp_run_status(c.run), DBP_RUN_FAILED);
  for (size_t i = 0; i < 2; i++) {
    const dbp_task_info *in = dbp_run_task(c.run, i);
    cr_expect_eq(in->state, DBP_TASK_FAILED, "%s", in->name);
    cr_expect_not_null(strstr(in->message, "table 'no_such_table' not found"), "%s: %s", in->name,
                       in->message);
  }
  cr_expect_eq(dbp_run_task(c.run, 2)->state, DBP_TASK_DONE);
  cr_expect_not(exists("%s/out/f.csv", dir));
  cr_expect_not(exists("%s/out/s.csv", dir));
  cr_expect(exists("%s/out/c.csv", dir));
  cr_expect_eq(dbp_run_free(c.run), 0);
  dbp_job_free(job);
}

/* Two tables of the same name in two schemas, and a path without
 * {schema}: the second would overwrite the first's file, so it fails with
 * a message saying how to fix the path, and the first is written. A
 * filter ending in a comment filters (it is written on lines of its own). */
Test(engine_tables, tables_writing_one_file_are_refused_and_a_filter_may_end_in_a_comment) {
  char s[6][300];
  snprintf(s[0], sizeof s[0], "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  snprintf(s[1], sizeof s[1], "DROP SCHEMA IF EXISTS %s_b CASCADE", schema);
  snprintf(s[2], sizeof s[2], "CREATE SCHEMA %s", schema);
  snprintf(s[3], sizeof s[3], "CREATE SCHEMA %s_b", schema);
  snprintf(s[4], sizeof s[4],
           "CREATE TABLE %s.t AS SELECT g AS id FROM generate_series(1, 100) AS g", schema);
  snprintf(s[5], sizeof s[5],
           "CREATE TABLE %s_b.t AS SELECT g AS id FROM generate_series(1, 50) AS g", schema);
  sql_job j = {.dsn = dbt_dsn(DBT_PG), .stmts = {s[0], s[1], s[2], s[3], s[4], s[5]}};
  run_sql(&j);
  dbp_job *job = parse_job(
      "connections: {db: \"%s\"}\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: same, from: db, tables: \"%s.t, %s_b.t\", to: \"out/{table}.csv\"}\n"
      "  - {name: cut, from: db, table: %s.t, where: \"id > 90 -- the last ten\", partitions: 2,"
      " to: out/cut.csv}\n",
      dbt_dsn(DBT_PG), schema, schema, schema);
  run_case c = {.job = job, .progress_ms = DBP_FOREVER};
  dbt_run(run_body, &c);
  cr_assert_eq(dbp_run_ntasks(c.run), 3);
  const dbp_task_info *a = dbp_run_task(c.run, 0), *b = dbp_run_task(c.run, 1);
  cr_expect_eq(a->state, DBP_TASK_DONE, "%s: %s", a->name, a->message);
  cr_expect_eq(a->result.rows, 100);
  cr_expect_eq(b->state, DBP_TASK_FAILED);
  cr_expect_not_null(strstr(b->message, "writes the same file as task"), "%s", b->message);
  cr_expect_not_null(strstr(b->message, "{schema}"), "%s", b->message);
  const dbp_task_info *cut = dbp_run_task(c.run, 2);
  cr_expect_eq(cut->state, DBP_TASK_DONE, "%s", cut->message);
  cr_expect_eq(cut->result.rows, 10);
  cr_expect_eq(dbp_run_free(c.run), 0);
  dbp_job_free(job);
  char d[300];
  snprintf(d, sizeof d, "DROP SCHEMA IF EXISTS %s_b CASCADE", schema);
  sql_job k = {.dsn = dbt_dsn(DBT_PG), .stmts = {d}};
  run_sql(&k);
  drop_tables(DBT_PG);
}
