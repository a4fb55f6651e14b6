/* The dbpipe executable's JSON log as an event stream: periodic
 * task_progress and run_progress events while a task runs, with the
 * estimate, percent and ETA when the task has an estimate, and the
 * snapshot each database's tasks share. */
#include "test_cli.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(cli_events, .init = setup, .fini = teardown, .timeout = 120);

/* rows_estimate, percent and eta_s are all there, null or numbers that fit
 * together: a percent only with an estimate, below 100 while running (the
 * estimate is a guess), and an ETA only with a percent. */
static void expect_estimate_fields(jv *o, const char *line) {
  jv *est = j_get(o, "rows_estimate"), *pct = j_get(o, "percent"), *eta = j_get(o, "eta_s");
  cr_assert_not_null(est, "no rows_estimate: %s", line);
  cr_assert_not_null(pct, "no percent: %s", line);
  cr_assert_not_null(eta, "no eta_s: %s", line);
  cr_expect(est->t == J_NULL || est->t == J_NUM, "%s", line);
  cr_expect(pct->t == J_NULL || pct->t == J_NUM, "%s", line);
  cr_expect(eta->t == J_NULL || eta->t == J_NUM, "%s", line);
  if (pct->t == J_NUM) {
    cr_expect(pct->num >= 0 && pct->num <= 99 && pct->num == (double)(long long)pct->num,
              "percent %g: %s", pct->num, line);
  }
  if (eta->t == J_NUM) {
    cr_expect_eq(pct->t, J_NUM, "an ETA without a percent: %s", line);
    cr_expect_geq(eta->num, 0, "%s", line);
  }
}

/* parts and parts_done: counts, the second at most the first. */
static void expect_part_fields(jv *o, const char *line) {
  jv *parts = j_get(o, "parts"), *done = j_get(o, "parts_done");
  cr_assert(parts != NULL && parts->t == J_NUM, "no parts: %s", line);
  cr_assert(done != NULL && done->t == J_NUM, "no parts_done: %s", line);
  cr_expect_leq(done->num, parts->num, "%s", line);
}

/* The lines of p's JSON log whose event is `event`, parsed into out (at
 * most max; the caller frees them with j_free); returns how many. */
static size_t events_of(const proc *p, const char *event, jv *out, size_t max) {
  size_t n = 0;
  char *copy = strdup(p->err), *save = NULL;
  cr_assert_not_null(copy);
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    jv o;
    cr_assert(j_parse(line, &o), "not JSON: %s", line);
    const char *e = j_str(&o, "event");
    if (e != NULL && strcmp(e, event) == 0 && n < max)
      out[n++] = o;
    else
      j_free(&o);
  }
  free(copy);
  return n;
}

static void pg_exec(const char *sql) {
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
  PGresult *r = PQexec(c, sql);
  cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
            PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

Test(cli_events, json_logs_carry_task_progress_every_second) {
  char job[512];
  snprintf(job, sizeof job, "%s/slow.yaml", dir);
  /* About four seconds of wide rows, so the count moves while it runs. */
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks:\n"
             "  - name: slow\n"
             "    from: pg\n"
             "    query: SELECT g, repeat('x', 1000), pg_sleep(0.001) FROM generate_series(1, "
             "3500) g\n"
             "    to: out/slow.csv\n");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, "--log-format", "json", NULL}), 0);
  size_t progress = 0, run_progress = 0, after_finish = 0;
  bool started = false, finished = false;
  double last_rows = 0, last_elapsed = -1;
  char *save = NULL;
  for (char *line = strtok_r(p.err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    jv o;
    cr_assert(j_parse(line, &o), "not JSON: %s", line);
    const char *event = j_str(&o, "event");
    cr_assert_not_null(event, "%s", line);
    if (strcmp(event, "task_started") == 0) started = true;
    if (strcmp(event, "task_finished") == 0) finished = true;
    if (strcmp(event, "task_progress") == 0) {
      progress++;
      after_finish += finished;
      cr_expect(started, "progress before the task started: %s", line);
      cr_expect_str_eq(j_str(&o, "task"), "slow");
      cr_expect_str_eq(j_str(&o, "level"), "info");
      cr_expect_not_null(j_str(&o, "message"));
      cr_expect_geq(j_num(&o, "rows"), last_rows, "%s", line);
      cr_expect_geq(j_num(&o, "bytes"), 0);
      cr_expect_geq(j_num(&o, "rows_per_sec"), 0);
      cr_expect_gt(j_num(&o, "elapsed_ms"), last_elapsed, "%s", line);
      last_rows = j_num(&o, "rows");
      last_elapsed = j_num(&o, "elapsed_ms");
      expect_estimate_fields(&o, line);
      expect_part_fields(&o, line);
    }
    if (strcmp(event, "run_progress") == 0) {
      run_progress++;
      cr_expect_null(j_str(&o, "task"), "%s", line);
      cr_expect_eq(j_num(&o, "tasks"), 1, "%s", line);
      cr_expect_geq(j_num(&o, "rows"), 0, "%s", line);
      cr_expect_geq(j_num(&o, "rows_per_sec"), 0, "%s", line);
      cr_expect_not_null(j_get(&o, "active"), "%s", line);
      cr_expect_not_null(j_get(&o, "queued"), "%s", line);
      cr_expect_not_null(j_get(&o, "tasks_unestimated"), "%s", line);
      expect_estimate_fields(&o, line);
    }
    j_free(&o);
  }
  cr_expect_geq(progress, 2, "only %zu task_progress events:\n%s", progress, p.err);
  cr_expect_eq(run_progress, progress, "one run_progress per interval:\n%s", p.err);
  cr_expect_lt(progress, 10, "more than one a second:\n%s", p.err);
  cr_expect_eq(after_finish, 0, "progress after the task finished");
  cr_expect_gt(last_rows, 0, "the row count never moved");
  proc_free(&p);

  /* Text logs stay as they were: no progress lines. */
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 0);
  cr_expect_null(strstr(p.err, "rows/s"), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "slow: done: 3,500 rows"), "%s", p.err);
  proc_free(&p);
}

Test(cli_events, a_table_with_an_estimate_reports_percent_and_eta) {
  /* A table the catalog knows (ANALYZE), read slowly: a row-level security
   * policy, forced on its owner too, sleeps for every row, so that the
   * export lasts several progress intervals. */
  pg_exec(
      "DROP TABLE IF EXISTS cli_events_slow;"
      "CREATE TABLE cli_events_slow AS SELECT g AS id, repeat('x', 100) AS pad"
      "  FROM generate_series(1, 2000) g;"
      "ANALYZE cli_events_slow;"
      "ALTER TABLE cli_events_slow ENABLE ROW LEVEL SECURITY;"
      "ALTER TABLE cli_events_slow FORCE ROW LEVEL SECURITY;"
      "CREATE POLICY slow_reads ON cli_events_slow USING (pg_sleep(0.001) IS NOT NULL)");
  char job[512];
  snprintf(job, sizeof job, "%s/table.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks:\n"
             "  - name: slow\n"
             "    from: pg\n"
             "    table: cli_events_slow\n"
             "    to: out/slow.csv\n");
  proc p;
  int code = run_cli(&p, NULL, (const char *[]){"run", job, "--log-format", "json", NULL});
  pg_exec("DROP TABLE cli_events_slow");
  cr_assert_eq(code, 0, "exit %d:\n%s", code, p.err);

  jv ev[64];
  size_t n = events_of(&p, "run_started", ev, 1);
  cr_assert_eq(n, 1, "%s", p.err);
  cr_expect_eq(j_num(&ev[0], "rows_estimate"), 2000, "%s", p.err);
  cr_expect_eq(j_num(&ev[0], "tasks_unestimated"), 0, "%s", p.err);
  j_free(&ev[0]);

  n = events_of(&p, "task_started", ev, 1);
  cr_assert_eq(n, 1, "%s", p.err);
  cr_expect_str_eq(j_str(&ev[0], "table"), "public.cli_events_slow", "%s", p.err);
  cr_expect_eq(j_num(&ev[0], "rows_estimate"), 2000);
  cr_expect_eq(j_num(&ev[0], "parts"), 1);
  j_free(&ev[0]);

  n = events_of(&p, "task_progress", ev, 64);
  cr_expect_geq(n, 2, "only %zu task_progress events:\n%s", n, p.err);
  size_t with_eta = 0;
  for (size_t i = 0; i < n; i++) {
    double rows = j_num(&ev[i], "rows"), rate = j_num(&ev[i], "rows_per_sec");
    jv *eta = j_get(&ev[i], "eta_s");
    cr_expect_eq(j_num(&ev[i], "rows_estimate"), 2000);
    cr_expect_str_eq(j_str(&ev[i], "table"), "public.cli_events_slow");
    /* The percent is the rows' share of the estimate, rounded down. */
    double want = rows >= 2000 ? 99 : (double)((long long)rows * 100 / 2000);
    cr_expect_eq(j_num(&ev[i], "percent"), want, "rows %g", rows);
    cr_assert_not_null(eta);
    if (rate > 0 && rows < 2000) {
      cr_expect_eq(eta->t, J_NUM, "a rate and rows left but no ETA");
      with_eta++;
      /* Rounded up from what is left at the rate (printed to 0.1). */
      double s = (2000 - rows) / rate;
      cr_expect(eta->num >= s - 1 && eta->num <= s + 1, "eta %g for %g s", eta->num, s);
    } else {
      cr_expect_eq(eta->t, J_NULL, "an ETA without a rate or rows left");
    }
    j_free(&ev[i]);
  }
  cr_expect_gt(with_eta, 0, "never an ETA:\n%s", p.err);

  n = events_of(&p, "run_progress", ev, 64);
  cr_expect_geq(n, 2, "%s", p.err);
  for (size_t i = 0; i < n; i++) {
    cr_expect_eq(j_num(&ev[i], "rows_estimate"), 2000);
    cr_expect_eq(j_get(&ev[i], "percent")->t, J_NUM, "a single estimated task: a run percent");
    j_free(&ev[i]);
  }

  /* The tasks of a database share one snapshot. */
  n = events_of(&p, "snapshot", ev, 4);
  cr_assert_eq(n, 1, "%s", p.err);
  cr_expect_str_eq(j_str(&ev[0], "level"), "info");
  cr_expect_str_eq(j_str(&ev[0], "connection"), "pg");
  const char *id = j_str(&ev[0], "snapshot_id"), *pos = j_str(&ev[0], "position");
  cr_expect(id != NULL && *id != '\0', "%s", p.err);
  cr_expect(pos != NULL && strchr(pos, '/') != NULL, "a WAL LSN: %s", p.err);
  cr_expect_geq(j_num(&ev[0], "lock_ms"), 0);
  cr_expect_eq(j_num(&ev[0], "workers"), 1);
  j_free(&ev[0]);
  cr_expect_null(strstr(p.err, "dbpipe@"), "a DSN reached the log:\n%s", p.err);
  proc_free(&p);
}

Test(cli_events, text_logs_say_where_each_snapshot_stands) {
  char job[512];
  snprintf(job, sizeof job, "%s/snap.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\", my: \"${DBPIPE_MY_DSN}\"}\n"
             "tasks:\n"
             "  - {name: pgorders, from: pg, table: orders, to: out/pg.csv}\n"
             "  - {name: pgcust, from: pg, table: customers, to: out/pgc.csv}\n"
             "  - {name: myorders, from: my, table: orders, to: out/my.csv}\n");
  proc p;
  int code = run_cli(&p, NULL, (const char *[]){"run", job, NULL});
  cr_assert_eq(code, 0, "exit %d:\n%s", code, p.err);
  const char *pg = strstr(p.err, "dbpipe: snapshot of 'pg' taken: WAL ");
  cr_assert_not_null(pg, "%s", p.err);
  cr_expect(strncmp(strchr(pg, '\n') - 11, ", 2 workers", 11) == 0, "%s", p.err);
  const char *my = strstr(p.err, "dbpipe: snapshot of 'my' taken: ");
  cr_assert_not_null(my, "%s", p.err);
  const char *held = strstr(my, "commits held ");
  cr_expect(held != NULL && held < strchr(my, '\n'), "%s", p.err);
  cr_expect_not_null(strstr(my, " ms, 1 worker\n"), "%s", p.err);
  cr_expect_null(strstr(p.err, "dbpipe@"), "a DSN reached the log:\n%s", p.err);
  proc_free(&p);
}
