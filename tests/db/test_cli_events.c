/* The dbpipe executable's JSON log as an event stream: periodic
 * task_progress events while a task runs. */
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
  size_t progress = 0, after_finish = 0;
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
    }
    j_free(&o);
  }
  cr_expect_geq(progress, 2, "only %zu task_progress events:\n%s", progress, p.err);
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
