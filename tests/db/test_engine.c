/* The engine against real servers: a job run on a runtime (and loop) the
 * test owns, its events, cancellation, the manifest, retries, the blocking
 * helpers and passwords kept out of every message. */
#include "jobtest.h"
#include "rttest.h"
#include "test_cli.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 120);

/* ---- recording events (a subscriber must not assert: it runs on a
 * coroutine's stack) ---- */

typedef struct rec_ev {
  dbp_run_event_kind kind;
  size_t task;
  uint64_t rows, bytes, elapsed_ms;
  double rate;
  int attempt, attempts, error, db_errno;
  int64_t delay_ms;
  char sqlstate[6];
  char message[800], detail[600];
  size_t nfiles;
  dbp_run_state status;
  bool has_info, has_summary;
} rec_ev;

typedef struct rec {
  rec_ev *ev;
  size_t n, cap;
  /* Cancel the run at the first progress event of this task once it has
   * rows (SIZE_MAX: never). */
  size_t cancel_task;
  bool cancelled;
} rec;

static void rec_init(rec *r) {
  memset(r, 0, sizeof *r);
  r->cap = 4096;
  r->ev = calloc(r->cap, sizeof *r->ev);
  r->cancel_task = SIZE_MAX;
}

static void on_event(const dbp_run_event *ev, void *ud) {
  rec *r = ud;
  if (r->n == r->cap) return;
  rec_ev *e = &r->ev[r->n++];
  e->kind = ev->kind;
  e->task = ev->task;
  e->rows = ev->rows;
  e->bytes = ev->bytes;
  e->elapsed_ms = ev->elapsed_ms;
  e->rate = ev->rows_per_sec;
  e->attempt = ev->attempt;
  e->attempts = ev->attempts;
  e->error = ev->error;
  e->db_errno = ev->db_errno;
  e->delay_ms = ev->delay_ms;
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", ev->sqlstate);
  snprintf(e->message, sizeof e->message, "%s", ev->message);
  snprintf(e->detail, sizeof e->detail, "%s", ev->detail);
  e->nfiles = ev->nfiles;
  e->has_info = ev->info != NULL;
  e->has_summary = ev->summary != NULL;
  if (ev->summary != NULL) e->status = ev->summary->status;
  if (ev->kind == DBP_RUN_EV_TASK_PROGRESS && ev->task == r->cancel_task && ev->rows > 0 &&
      !r->cancelled) {
    r->cancelled = true;
    dbp_run_cancel(ev->run);
  }
}

/* Index of the first event of `kind` for task `task` (SIZE_MAX: any task)
 * at or after `from`, or -1. */
static long find_ev(const rec *r, dbp_run_event_kind kind, size_t task, size_t from) {
  for (size_t i = from; i < r->n; i++) {
    if (r->ev[i].kind == kind && (task == SIZE_MAX || r->ev[i].task == task)) return (long)i;
  }
  return -1;
}

static size_t count_ev(const rec *r, dbp_run_event_kind kind, size_t task) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) n += r->ev[i].kind == kind && r->ev[i].task == task;
  return n;
}

/* ---- jobs ---- */

#define parse_job(...) dbt_parse_job(dir, "engine.yaml", __VA_ARGS__)

/* A runtime on a loop the test owns, as a service would run it. */
typedef struct host {
  uv_loop_t loop;
  dbp_rt *rt;
} host;

static void host_open(host *h) {
  cr_assert_eq(uv_loop_init(&h->loop), 0);
  cr_assert_eq(dbp_rt_new(&h->rt, &h->loop, NULL), 0);
}

static void host_close(host *h) {
  cr_assert_eq(dbp_rt_free(h->rt), 0);
  uv_run(&h->loop, UV_RUN_DEFAULT); /* the runtime's close callbacks */
  cr_assert_eq(uv_loop_close(&h->loop), 0);
}

/* Runs `job` on a caller-owned loop with the recorder subscribed; returns
 * the run (the caller frees it) after the loop ran dry. */
static dbp_run *run_on_host(host *h, dbp_job *job, const dbp_run_options *o, rec *r) {
  dbp_run *run = NULL;
  cr_assert_eq(dbp_run_new(h->rt, job, o, &run), 0);
  cr_assert_eq(dbp_run_subscribe(run, on_event, r), 0);
  cr_assert_eq(dbp_run_start(run), 0);
  cr_assert_eq(dbp_run_start(run), DBP_EBUSY);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  cr_assert_neq(dbp_run_status(run), DBP_RUN_RUNNING);
  return run;
}

/* ---- the tests ---- */

Test(engine, a_two_database_job_reports_its_events_in_order) {
  dbp_job *job = parse_job(
      "connections:\n"
      "  pg: ${DBPIPE_PG_DSN}\n"
      "  my: ${DBPIPE_MY_DSN}\n"
      "manifest: out/manifest.json\n"
      "tasks:\n"
      "  - {name: slow, from: pg, query: 'SELECT g, repeat(''x'', 1000), pg_sleep(0.001) FROM"
      " generate_series(1, 3000) g', to: out/slow.csv}\n"
      "  - {name: custs, from: pg, table: customers, to: out/pg/custs.csv.gz}\n"
      "  - {name: prods, from: my, table: products, to: out/my/prods.jsonl}\n");
  host h;
  host_open(&h);
  rec r;
  rec_init(&r);
  dbp_run_options o = {.progress_interval_ms = 100, .no_fsync = true};
  dbp_run *run = run_on_host(&h, job, &o, &r);

  cr_expect_eq(dbp_run_status(run), DBP_RUN_OK);
  cr_assert_gt(r.n, 2);
  cr_expect_eq(r.ev[0].kind, DBP_RUN_EV_RUN_STARTED);
  cr_expect_eq(r.ev[r.n - 1].kind, DBP_RUN_EV_RUN_FINISHED);
  cr_expect_eq(r.ev[r.n - 1].status, DBP_RUN_OK);
  cr_expect_eq(find_ev(&r, DBP_RUN_EV_RUN_STARTED, SIZE_MAX, 1), -1);
  for (size_t i = 0; i < r.n; i++) {
    cr_expect(r.ev[i].has_summary);
    bool task_event = r.ev[i].kind >= DBP_RUN_EV_TASK_STARTED &&
                      r.ev[i].kind <= DBP_RUN_EV_TASK_CANCELLED &&
                      r.ev[i].kind != DBP_RUN_EV_RUN_PROGRESS;
    cr_expect_eq(r.ev[i].has_info, task_event, "event %zu", i);
    if (!task_event) cr_expect_eq(r.ev[i].task, SIZE_MAX, "event %zu", i);
  }
  cr_assert_eq(dbp_run_ntasks(run), 3);
  for (size_t t = 0; t < 3; t++) {
    long s = find_ev(&r, DBP_RUN_EV_TASK_STARTED, t, 0);
    long f = find_ev(&r, DBP_RUN_EV_TASK_FINISHED, t, 0);
    cr_expect_geq(s, 0, "task %zu never started", t);
    cr_expect_gt(f, s, "task %zu finished before it started", t);
    cr_expect_eq(count_ev(&r, DBP_RUN_EV_TASK_FINISHED, t), 1);
    cr_expect(r.ev[f].has_info);
    cr_expect_eq(r.ev[f].nfiles, 1);
    cr_expect_gt(r.ev[f].bytes, 0);
    const dbp_task_info *in = dbp_run_task(run, t);
    cr_expect_eq(in->state, DBP_TASK_DONE);
    cr_expect_eq(in->attempts, 1);
    cr_expect_eq(in->result.nfiles, 1);
    cr_expect(exists("%s", in->result.files[0].path), "%s", in->result.files[0].path);
    cr_expect_geq(in->finished_ms, in->started_ms);
  }
  cr_expect_null(dbp_run_task(run, 3));
  cr_expect_str_eq(dbp_run_task(run, 2)->connection, "my");
  cr_expect_eq(r.ev[find_ev(&r, DBP_RUN_EV_TASK_FINISHED, 0, 0)].rows, 3000);

  /* The slow query's progress: several events, rows growing, a rate. (The
   * export counts rows as batches of 256 KiB reach the file: wide rows make
   * the count move several times a second.) */
  uint64_t last = 0;
  size_t growing = 0, progress = 0;
  for (size_t i = 0; i < r.n; i++) {
    if (r.ev[i].kind != DBP_RUN_EV_TASK_PROGRESS || r.ev[i].task != 0) continue;
    progress++;
    cr_expect_geq(r.ev[i].rows, last, "rows went back from %llu to %llu", (unsigned long long)last,
                  (unsigned long long)r.ev[i].rows);
    growing += r.ev[i].rows > last;
    last = r.ev[i].rows;
    cr_expect_lt(find_ev(&r, DBP_RUN_EV_TASK_STARTED, 0, 0), (long)i);
  }
  cr_expect_geq(progress, 5, "only %zu progress events", progress);
  cr_expect_geq(growing, 3, "rows grew only %zu times", growing);
  cr_expect_gt(find_ev(&r, DBP_RUN_EV_RUN_PROGRESS, SIZE_MAX, 0), 0);
  bool rate = false;
  for (size_t i = 0; i < r.n; i++)
    rate |= r.ev[i].kind == DBP_RUN_EV_TASK_PROGRESS && r.ev[i].rate > 0;
  cr_expect(rate, "no progress event had a rate");

  /* The manifest, written before the run finished. */
  long m = find_ev(&r, DBP_RUN_EV_MANIFEST_WRITTEN, SIZE_MAX, 0);
  cr_expect_gt(m, 0);
  cr_expect_eq(m, (long)r.n - 2);
  char path[600];
  snprintf(path, sizeof path, "%s/out/manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  jv mf;
  cr_assert(j_parse(text, &mf), "%s", text);
  cr_expect_str_eq(j_str(&mf, "status"), "ok");
  cr_expect_str_eq(j_str(&mf, "job"), "engine.yaml");
  cr_expect_eq(j_num(manifest_task(&mf, "slow"), "rows"), 3000);
  cr_expect_str_eq(j_str(manifest_task(&mf, "prods"), "connection"), "my");
  j_free(&mf);
  free(text);

  dbp_run_summary sum;
  dbp_run_get_summary(run, &sum);
  cr_expect_eq(sum.done, 3);
  cr_expect_eq(sum.ntasks, 3);
  cr_expect(sum.manifest_written);
  cr_expect_gt(sum.rows, 3000);
  cr_expect_neq(sum.finished.tv_sec, 0);
  cr_expect_eq(dbp_run_subscribe(run, on_event, &r), DBP_EBUSY);
  cr_expect_eq(dbp_run_pool_stats(run, 0, NULL), 0, "the pools are closed at the end");
  cr_expect_eq(dbp_run_free(run), 0);
  host_close(&h);
  dbp_job_free(job);
  free(r.ev);
}

Test(engine, a_failing_task_carries_code_sqlstate_and_message_and_the_others_finish) {
  dbp_job *job = parse_job(
      "connections:\n"
      "  pg: ${DBPIPE_PG_DSN}\n"
      "  my: ${DBPIPE_MY_DSN}\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: good-pg, from: pg, table: customers, to: out/good-pg.csv}\n"
      "  - {name: bad-pg, from: pg, query: SELECT * FROM no_such_table, to: out/bad-pg.csv}\n"
      "  - {name: good-my, from: my, table: products, to: out/good-my.csv}\n");
  host h;
  host_open(&h);
  rec r;
  rec_init(&r);
  dbp_run *run = run_on_host(&h, job, NULL, &r);
  cr_expect_eq(dbp_run_status(run), DBP_RUN_FAILED);
  long f = find_ev(&r, DBP_RUN_EV_TASK_FAILED, 1, 0);
  cr_assert_geq(f, 0);
  const rec_ev *e = &r.ev[f];
  cr_expect_eq(e->error, DBP_EQUERY);
  cr_expect_str_eq(e->sqlstate, "42P01");
  cr_expect_not_null(strstr(e->message, "no_such_table"), "%s", e->message);
  cr_expect_not_null(strstr(e->detail, "no_such_table"), "%s", e->detail);
  cr_expect_null(strstr(e->detail, "SQLSTATE"), "the detail is the server's message alone");
  cr_expect_eq(e->attempts, 1);
  const dbp_task_info *in = dbp_run_task(run, 1);
  cr_expect_eq(in->state, DBP_TASK_FAILED);
  cr_expect_str_eq(in->sqlstate, "42P01");
  cr_expect_eq(in->error, DBP_EQUERY);
  cr_expect_not(exists("%s/out/bad-pg.csv", dir));
  cr_expect_geq(find_ev(&r, DBP_RUN_EV_TASK_FINISHED, 0, 0), 0);
  cr_expect_geq(find_ev(&r, DBP_RUN_EV_TASK_FINISHED, 2, 0), 0);
  cr_expect_eq(find_ev(&r, DBP_RUN_EV_MANIFEST_WRITTEN, SIZE_MAX, 0), -1, "no manifest asked for");
  dbp_run_summary sum;
  dbp_run_get_summary(run, &sum);
  cr_expect_eq(sum.done, 2);
  cr_expect_eq(sum.failed, 1);
  cr_expect_eq(dbp_run_free(run), 0);
  host_close(&h);
  dbp_job_free(job);
  free(r.ev);
}

Test(engine, cancelling_a_run_mid_query_leaves_no_file_and_no_part) {
  dbp_job *job = parse_job(
      "connections:\n"
      "  pg: ${DBPIPE_PG_DSN}\n"
      "  my: ${DBPIPE_MY_DSN}\n"
      "manifest: out/m.json\n"
      "concurrency: 3\n"
      "tasks:\n"
      "  - {name: big, from: pg, query: 'SELECT g, md5(g::text) FROM (SELECT"
      " generate_series(1, 500000000) AS g) s', to: out/big.csv.gz}\n"
      "  - {name: pg-nap, from: pg, query: SELECT pg_sleep(30), to: out/pg-nap.csv}\n"
      "  - {name: my-nap, from: my, query: SELECT SLEEP(30), to: out/my-nap.csv}\n"
      "  - {name: queued, from: pg, table: customers, to: out/queued.csv}\n");
  host h;
  host_open(&h);
  rec r;
  rec_init(&r);
  r.cancel_task = 0;
  uint64_t t0 = now_ms();
  dbp_run_options o = {.progress_interval_ms = 100};
  dbp_run *run = run_on_host(&h, job, &o, &r);
  uint64_t took = now_ms() - t0;
  cr_expect(r.cancelled, "the big export never made progress");
  cr_expect_lt(took, 15000, "took %llu ms", (unsigned long long)took);
  cr_expect_eq(dbp_run_status(run), DBP_RUN_CANCELLED);
  for (size_t t = 0; t < 4; t++) {
    cr_expect_eq(dbp_run_task(run, t)->state, DBP_TASK_CANCELLED, "task %zu", t);
    cr_expect_geq(find_ev(&r, DBP_RUN_EV_TASK_CANCELLED, t, 0), 0, "task %zu", t);
  }
  cr_expect_eq(find_ev(&r, DBP_RUN_EV_TASK_STARTED, 3, 0), -1, "the queued task started");
  const char *names[] = {"big.csv.gz", "pg-nap.csv", "my-nap.csv", "queued.csv"};
  for (size_t i = 0; i < 4; i++) cr_expect_not(exists("%s/out/%s", dir, names[i]), "%s", names[i]);
  char out[300];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
  char path[600];
  snprintf(path, sizeof path, "%s/out/m.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text);
  jv mf;
  cr_assert(j_parse(text, &mf));
  cr_expect_str_eq(j_str(&mf, "status"), "interrupted");
  cr_expect_str_eq(j_str(manifest_task(&mf, "big"), "status"), "interrupted");
  j_free(&mf);
  free(text);
  cr_expect_eq(dbp_run_free(run), 0);
  host_close(&h);
  dbp_job_free(job);
  free(r.ev);
}

Test(engine, a_manifest_that_cannot_be_written_fails_the_run) {
  char mdir[512];
  snprintf(mdir, sizeof mdir, "%s/manifest-is-a-dir", dir);
  cr_assert_eq(mkdir(mdir, 0700), 0);
  dbp_job *job = parse_job(
      "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
      "manifest: manifest-is-a-dir\n"
      "tasks: [{name: t, from: pg, table: customers, to: out/t.csv}]\n");
  rec r;
  rec_init(&r);
  dbp_run_summary sum;
  cr_expect_eq(dbp_run_job(job, NULL, on_event, &r, &sum), DBP_ETASK);
  cr_expect_eq(sum.status, DBP_RUN_FAILED);
  cr_expect_eq(sum.done, 1);
  cr_expect_not(sum.manifest_written);
  long m = find_ev(&r, DBP_RUN_EV_MANIFEST_FAILED, SIZE_MAX, 0);
  cr_assert_geq(m, 0);
  cr_expect_neq(r.ev[m].error, 0);
  cr_expect_not_null(strstr(r.ev[m].message, "manifest-is-a-dir"), "%s", r.ev[m].message);
  cr_expect_eq(r.ev[r.n - 1].kind, DBP_RUN_EV_RUN_FINISHED);
  cr_expect_eq(r.ev[r.n - 1].status, DBP_RUN_FAILED);
  dbp_job_free(job);
  free(r.ev);
}

Test(engine, retryable_errors_are_retried_with_backoff) {
  dbp_job *job = parse_job(
      "connections: {nobody: \"postgresql://u@127.0.0.1:1/d\"}\n"
      "manifest: false\n"
      "tasks: [{name: refused, from: nobody, query: SELECT 1, to: out/r.csv, retries: 2,"
      " retry_backoff: 50ms}]\n");
  rec r;
  rec_init(&r);
  uint64_t t0 = now_ms();
  cr_expect_eq(dbp_run_job(job, NULL, on_event, &r, NULL), DBP_ETASK);
  uint64_t took = now_ms() - t0;
  cr_expect_geq(took, 150, "50 + 100 ms of backoff took %llu ms", (unsigned long long)took);
  cr_expect_eq(count_ev(&r, DBP_RUN_EV_TASK_RETRY, 0), 2);
  long a = find_ev(&r, DBP_RUN_EV_TASK_RETRY, 0, 0);
  cr_assert_geq(a, 0);
  long b = find_ev(&r, DBP_RUN_EV_TASK_RETRY, 0, (size_t)a + 1);
  cr_assert_gt(b, a);
  cr_expect_eq(r.ev[a].attempt, 1);
  cr_expect_eq(r.ev[a].delay_ms, 50);
  cr_expect_eq(r.ev[b].attempt, 2);
  cr_expect_eq(r.ev[b].delay_ms, 100);
  cr_expect_eq(r.ev[a].error, DBP_ECONNECT);
  cr_expect_not_null(strstr(r.ev[a].message, "connection 'nobody'"), "%s", r.ev[a].message);
  long f = find_ev(&r, DBP_RUN_EV_TASK_FAILED, 0, 0);
  cr_assert_gt(f, b);
  cr_expect_eq(r.ev[f].attempts, 3);
  cr_expect_eq(r.ev[f].error, DBP_ECONNECT);
  dbp_job_free(job);
  free(r.ev);
}

Test(engine, the_blocking_helpers_run_a_job_and_export_a_url) {
  dbp_job *job = parse_job(
      "connections: {my: \"${DBPIPE_MY_DSN}\"}\n"
      "manifest: out/m.json\n"
      "tasks: [{name: c, from: my, table: customers, to: out/c.csv}]\n");
  dbp_run_summary sum;
  cr_expect_eq(dbp_run_job(job, NULL, NULL, NULL, &sum), 0);
  cr_expect_eq(sum.status, DBP_RUN_OK);
  cr_expect_eq(sum.done, 1);
  cr_expect_eq(sum.rows, 20);
  cr_expect(sum.manifest_written);
  cr_expect(exists("%s/out/c.csv", dir));
  cr_expect(exists("%s/out/m.json", dir));
  dbp_job_free(job);

  char path[600];
  snprintf(path, sizeof path, "%s/url/orders.csv.gz", dir);
  dbp_export_result res;
  cr_assert_eq(dbp_export_url(dbt_pg_dsn(), "SELECT * FROM customers", path, NULL, &res), 0, "%s",
               res.err.message);
  cr_expect_eq(res.rows, 20);
  cr_assert_eq(res.nfiles, 1);
  cr_expect_str_eq(res.files[0].path, path);
  cr_expect(exists("%s", path));
  dbp_export_result_free(&res);

  snprintf(path, sizeof path, "%s/url/none.csv", dir);
  cr_expect_eq(dbp_export_url(dbt_pg_dsn(), "SELECT * FROM no_such_table", path, NULL, &res),
               DBP_EQUERY);
  cr_expect_str_eq(res.err.sqlstate, "42P01");
  cr_expect_not(exists("%s", path));
  cr_expect_eq(dbp_export_url("postgresql://u@127.0.0.1:1/d", "SELECT 1", path, NULL, &res),
               DBP_ECONNECT);
  cr_expect_eq(res.err.code, DBP_ECONNECT);
  cr_expect_eq(dbp_export_url(NULL, "SELECT 1", path, NULL, &res), DBP_EINVAL);
}

/* A coroutine that starts a run and waits for it. */
typedef struct wait_arg {
  dbp_job *job;
  dbp_run_state status;
  int wait_rc, early_rc;
} wait_arg;

static int wait_body(dbp_rt *rt, void *arg) {
  wait_arg *w = arg;
  dbp_run *run = NULL;
  if (dbp_run_new(rt, w->job, NULL, &run) != 0) return -1;
  w->early_rc = dbp_run_wait(run, 0);
  if (dbp_run_start(run) != 0) return -1;
  w->wait_rc = dbp_run_wait(run, 60000);
  w->status = dbp_run_status(run);
  return dbp_run_free(run);
}

Test(engine, a_coroutine_waits_for_a_run) {
  wait_arg w = {.job = parse_job("connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
                                 "manifest: false\n"
                                 "tasks: [{name: c, from: pg, table: products, to: out/p.csv}]\n")};
  dbt_run(wait_body, &w);
  cr_expect_eq(w.early_rc, DBP_ESTATE);
  cr_expect_eq(w.wait_rc, 0);
  cr_expect_eq(w.status, DBP_RUN_OK);
  cr_expect(exists("%s/out/p.csv", dir));
  dbp_job_free(w.job);
}

Test(engine, a_run_cancelled_before_it_starts_runs_nothing) {
  dbp_job *job = parse_job(
      "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
      "manifest: false\n"
      "tasks: [{name: c, from: pg, table: products, to: out/p.csv}]\n");
  host h;
  host_open(&h);
  dbp_run *run = NULL;
  cr_assert_eq(dbp_run_new(h.rt, job, NULL, &run), 0);
  cr_expect_eq(dbp_run_free(run), 0, "a run never started can be freed");
  cr_assert_eq(dbp_run_new(h.rt, job, NULL, &run), 0);
  rec r;
  rec_init(&r);
  cr_assert_eq(dbp_run_subscribe(run, on_event, &r), 0);
  dbp_run_cancel(run);
  cr_assert_eq(dbp_run_start(run), 0);
  cr_expect_eq(dbp_run_free(run), DBP_EBUSY, "a running run cannot be freed");
  uv_run(&h.loop, UV_RUN_DEFAULT);
  cr_expect_eq(dbp_run_status(run), DBP_RUN_CANCELLED);
  cr_expect_eq(find_ev(&r, DBP_RUN_EV_TASK_STARTED, 0, 0), -1);
  cr_expect_geq(find_ev(&r, DBP_RUN_EV_TASK_CANCELLED, 0, 0), 0);
  cr_expect_not(exists("%s/out/p.csv", dir));
  cr_expect_eq(dbp_run_free(run), 0);
  host_close(&h);
  dbp_job_free(job);
  free(r.ev);
}

/* A password of the job's (lowercase: PostgreSQL folds unquoted names). */
#define SECRET "zq8secretengine"

/* The job's DSNs hold SECRET: one for the real server (wrong, so the login
 * fails), one for a port nobody listens on. A task on the working
 * connection names a table after it, so the server's message repeats the
 * password, which the engine must scrub. */
static void expect_no_password(const char *dsn, const char *from) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dsn, &d, err, sizeof err), 0);
  const char *scheme = strcmp(from, "PG") == 0 ? "postgresql" : "mysql";
  char wrong[512];
  snprintf(wrong, sizeof wrong, "%s://%s:" SECRET "@%s:%d/%s", scheme, d.user, d.host, d.port,
           d.dbname);
  dbp_job *job = parse_job(
      "connections:\n"
      "  db: ${DBPIPE_%s_DSN}\n"
      "  wrong: %s\n"
      "  dead: %s://u:" SECRET
      "@127.0.0.1:1/d\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: echo, from: db, query: SELECT * FROM " SECRET
      ", to: out/e.csv}\n"
      "  - {name: wrong, from: wrong, query: SELECT 1, to: out/w.csv}\n"
      "  - {name: dead, from: dead, query: SELECT 1, to: out/d.csv, retries: 1,"
      " retry_backoff: 10ms}\n",
      from, wrong, scheme);
  dbp_dsn_free(&d);
  rec r;
  rec_init(&r);
  cr_expect_eq(dbp_run_job(job, NULL, on_event, &r, NULL), DBP_ETASK);
  size_t with_text = 0;
  for (size_t i = 0; i < r.n; i++) {
    cr_expect_null(strstr(r.ev[i].message, SECRET), "password in: %s", r.ev[i].message);
    cr_expect_null(strstr(r.ev[i].detail, SECRET), "password in: %s", r.ev[i].detail);
    with_text += r.ev[i].message[0] != '\0';
  }
  cr_expect_geq(with_text, 4, "the failures say why");
  long f = find_ev(&r, DBP_RUN_EV_TASK_FAILED, 0, 0);
  cr_assert_geq(f, 0);
  cr_expect_not_null(strstr(r.ev[f].message, "***"), "not scrubbed: %s", r.ev[f].message);
  cr_expect_not_null(strstr(r.ev[f].detail, "***"), "not scrubbed: %s", r.ev[f].detail);
  dbp_job_free(job);
  free(r.ev);

  dbp_export_result res;
  char path[600];
  snprintf(path, sizeof path, "%s/out/x.csv", dir);
  cr_expect_neq(dbp_export_url(wrong, "SELECT 1", path, NULL, &res), 0);
  cr_expect_neq(res.err.message[0], '\0');
  cr_expect_null(strstr(res.err.message, SECRET), "password in: %s", res.err.message);
}

Test(engine, a_password_never_appears_in_an_event) {
  expect_no_password(dbt_pg_dsn(), "PG");
  expect_no_password(dbt_my_dsn(), "MY");
}

Test(engine, the_task_timeout_and_the_idle_timeout_are_told_apart) {
  dbp_job *job = parse_job(
      "connections: {pg: \"${DBPIPE_PG_DSN}\", my: \"${DBPIPE_MY_DSN}\"}\n"
      "manifest: false\n"
      "tasks:\n"
      "  - {name: whole, from: pg, query: SELECT pg_sleep(5), to: out/a.csv, timeout: 1s}\n"
      "  - {name: idle, from: pg, query: SELECT pg_sleep(5), to: out/b.csv, timeout: 20s,"
      " idle_timeout: 1s}\n"
      "  - {name: my-idle, from: my, query: SELECT SLEEP(5), to: out/c.csv, timeout: 20s,"
      " idle_timeout: 1s}\n");
  rec r;
  rec_init(&r);
  cr_expect_eq(dbp_run_job(job, NULL, on_event, &r, NULL), DBP_ETASK);
  for (size_t t = 0; t < 3; t++) {
    long f = find_ev(&r, DBP_RUN_EV_TASK_FAILED, t, 0);
    cr_assert_geq(f, 0, "task %zu did not fail", t);
    cr_expect_eq(r.ev[f].error, DBP_ETIMEDOUT, "task %zu: %s", t, r.ev[f].message);
    bool whole = strncmp(r.ev[f].message, "timed out after ", 16) == 0;
    cr_expect_eq(whole, t == 0, "task %zu: %s", t, r.ev[f].message);
  }
  long f = find_ev(&r, DBP_RUN_EV_TASK_FAILED, 0, 0);
  cr_expect_not_null(strstr(r.ev[f].message, "timed out after 1.0 s"), "%s", r.ev[f].message);
  dbp_job_free(job);
  free(r.ev);
}

/* A task a program fills in itself: zero time limits are the defaults (no
 * limit for the attempt, the library's idle timeout), as in every options
 * struct, not "fail at once". */
Test(engine, zero_time_limits_in_a_task_are_the_defaults) {
  dbp_job *job = parse_job(
      "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
      "manifest: false\n"
      "tasks: [{name: c, from: pg, table: customers, to: out/zero.csv}]\n");
  job->tasks[0].timeout_ms = 0;
  job->tasks[0].idle_timeout_ms = 0;
  dbp_run_summary sum;
  cr_expect_eq(dbp_run_job(job, NULL, NULL, NULL, &sum), 0);
  cr_expect_eq(sum.status, DBP_RUN_OK);
  cr_expect_eq(sum.rows, 20);
  cr_expect(exists("%s/out/zero.csv", dir));
  dbp_job_free(job);
}

/* A slow query of narrow rows fills no batch for seconds: its rows must
 * still show up in the progress events while it runs, not all at the end. */
Test(engine, progress_moves_for_a_slow_query_of_narrow_rows) {
  dbp_job *job = parse_job(
      "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
      "manifest: false\n"
      "tasks: [{name: slow, from: pg, to: out/slow.csv,\n"
      "         query: \"SELECT g, pg_sleep(0.001) FROM generate_series(1, 3000) g\"}]\n");
  host h;
  host_open(&h);
  rec r;
  rec_init(&r);
  dbp_run_options o = {.progress_interval_ms = 100};
  dbp_run *run = run_on_host(&h, job, &o, &r);
  cr_expect_eq(dbp_run_status(run), DBP_RUN_OK);
  bool midway = false;
  for (size_t i = 0; i < r.n; i++) {
    const rec_ev *e = &r.ev[i];
    midway |= e->kind == DBP_RUN_EV_TASK_PROGRESS && e->rows > 0 && e->rows < 3000;
  }
  cr_expect(midway, "no progress event saw part of the 3000 rows");
  dbp_run_free(run);
  host_close(&h);
  free(r.ev);
  dbp_job_free(job);
}
