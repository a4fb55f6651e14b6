/* Exports that fail: an error in the middle of the stream, a cancelled or
 * timed-out export, bad SQL, bad options, an unwritable target, a target
 * that is no regular file (refused before the query runs), a full disk.
 * Each ends in a clear error, leaves no file and no temporary file (an existing file
 * stays as it was), and leaves the connection usable with nothing running on
 * the server. */
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "test_export.h"

TestSuite(export_faults, .init = make_tmp, .fini = remove_tmp, .timeout = 120);

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* Runs a failing export to `name` (over an existing file holding "old\n")
 * and checks the aftermath. */
static void expect_failure(xjob *j, const char *name, int code) {
  j->path = tmp_path(name);
  write_file(j->path, "old\n");
  dbt_run_in_coro(body_export, j);
  cr_expect_eq(j->rc, code, "%s: %s (%s)", name, dbp_err_name(j->rc), j->res.err.message);
  cr_expect_eq(j->res.err.code, j->rc);
  cr_expect_eq(j->res.nfiles, 0);
  cr_expect_null(j->res.files);
  size_t n;
  char *data = read_raw(j->path, &n);
  cr_expect_str_eq(data, "old\n", "%s: the existing file is untouched", name);
  free(data);
  cr_expect_eq(count_entries(g_tmp), 1, "%s: no .part or other file is left", name);
  cr_expect(j->conn_idle_after, "%s: the connection is usable afterwards", name);
  unlink(j->path);
}

Test(export_faults, pg_error_in_the_middle_of_the_stream) {
  const char *names[] = {"mid.csv", "mid.tsv.gz", "mid.jsonl.zst"};
  for (int i = 0; i < 3; i++) {
    xjob j = {.kind = DBT_PG,
              .sql =
                  "SELECT i, repeat('x', 50) AS pad, 1 / (i - 150000) AS boom"
                  " FROM generate_series(1, 200000) AS i"};
    expect_failure(&j, names[i], DBP_EQUERY);
    cr_expect_str_eq(j.res.err.sqlstate, "22012");
    cr_expect(strstr(j.res.err.message, "division by zero"), "%s", j.res.err.message);
    xjob_free(&j);
  }
}

Test(export_faults, mysql_error_in_the_middle_of_the_stream) {
  const char *names[] = {"mid.csv", "mid.tsv.gz", "mid.jsonl.zst"};
  for (int i = 0; i < 3; i++) {
    xjob j = {.kind = DBT_MY,
              .sql =
                  "SELECT s1.seq, REPEAT('x', 50) AS pad,"
                  " (SELECT s2.seq FROM seq_1_to_2 AS s2 WHERE s1.seq >= 150000) AS boom"
                  " FROM seq_1_to_200000 AS s1"};
    expect_failure(&j, names[i], DBP_EQUERY);
    cr_expect_eq(j.res.err.db_errno, 1242);
    cr_expect(strstr(j.res.err.message, "more than 1 row"), "%s", j.res.err.message);
    xjob_free(&j);
  }
}

/* All or nothing: parts already finished when the query fails go too. */
Test(export_faults, failed_split_export_leaves_no_part) {
  dbp_export_progress prog = {0};
  xjob j = {.kind = DBT_PG,
            .sql =
                "SELECT i, repeat('x', 50) AS pad, 1 / (i - 150000) AS boom"
                " FROM generate_series(1, 200000) AS i",
            .o = {.max_rows = 20000, .progress = &prog}};
  expect_failure(&j, "split.csv", DBP_EQUERY);
  cr_expect_gt(prog.bytes_out, 0, "parts were written before the failure");
  xjob_free(&j);
  xjob m = {.kind = DBT_MY,
            .sql =
                "SELECT s1.seq, (SELECT s2.seq FROM seq_1_to_2 AS s2 WHERE s1.seq >= 150000)"
                " AS boom FROM seq_1_to_200000 AS s1",
            .o = {.max_bytes = 100000}};
  expect_failure(&m, "split.jsonl.gz", DBP_EQUERY);
  xjob_free(&m);
}

Test(export_faults, bad_sql_names_the_problem) {
  xjob j = {.kind = DBT_PG, .sql = "SELEC 1"};
  expect_failure(&j, "bad.csv", DBP_EQUERY);
  cr_expect_str_eq(j.res.err.sqlstate, "42601");
  cr_expect(strstr(j.res.err.message, "SELEC"), "%s", j.res.err.message);
  xjob_free(&j);
  xjob t = {.kind = DBT_PG, .sql = "SELECT * FROM no_such_table"};
  expect_failure(&t, "bad.jsonl", DBP_EQUERY);
  cr_expect_str_eq(t.res.err.sqlstate, "42P01");
  cr_expect(strstr(t.res.err.message, "no_such_table"), "%s", t.res.err.message);
  xjob_free(&t);
  xjob m = {.kind = DBT_MY, .sql = "SELECT * FROM no_such_table"};
  expect_failure(&m, "bad.tsv", DBP_EQUERY);
  cr_expect_eq(m.res.err.db_errno, 1146);
  xjob_free(&m);
}

Test(export_faults, options_are_checked_before_anything_runs) {
  xjob j = {.kind = DBT_PG, .sql = "SELECT 1", .o = {.encode = {.delimiter = '"'}}};
  expect_failure(&j, "opt.csv", DBP_EINVAL);
  xjob_free(&j);
  xjob t = {.kind = DBT_PG, .sql = "SELECT 1", .o = {.encode = {.delimiter = 'a'}}};
  expect_failure(&t, "opt.tsv", DBP_EINVAL);
  xjob_free(&t);
  xjob z = {.kind = DBT_MY, .sql = "SELECT 1", .o = {.level = 42}};
  expect_failure(&z, "opt.csv.gz", DBP_EINVAL);
  xjob_free(&z);
  xjob d = {.kind = DBT_PG, .sql = "SELECT 1", .path = tmp_path("sub/")};
  dbt_run_in_coro(body_export, &d);
  cr_expect_eq(d.rc, DBP_EINVAL);
  cr_expect(strstr(d.res.err.message, "directory"), "%s", d.res.err.message);
  cr_expect_eq(count_entries(g_tmp), 0);
  xjob_free(&d);
}

Test(export_faults, unwritable_target_is_a_clear_error) {
  xjob j = {.kind = DBT_PG, .sql = "SELECT * FROM customers", .path = "/proc/dbpipe/x/out.csv"};
  dbt_run_in_coro(body_export, &j);
  cr_expect_neq(j.rc, 0);
  cr_expect(
      strstr(j.res.err.message, "/proc/dbpipe/x/out.csv.") && strstr(j.res.err.message, ".part: "),
      "%s", j.res.err.message);
  cr_expect(j.conn_idle_after);
  xjob_free(&j);
}

/* ---- cancellation and timeouts ---- */

/* Lots of rows at once, then a long sleep: the export is busy writing when
 * it is stopped. */
static const char *slow_sql(int kind) {
  return kind == DBT_PG ? "SELECT i, repeat('x', 100) AS pad FROM generate_series(1, 100000) AS i"
                          " UNION ALL SELECT 0, pg_sleep(30)::text"
                        : "SELECT seq, REPEAT('x', 100) AS pad FROM seq_1_to_100000"
                          " UNION ALL SELECT 0, SLEEP(30)";
}

typedef struct cjob {
  int kind;
  const char *path;
  dbp_export_options o;
  bool cancel; /* dbp_cancel the export's coroutine once data is on disk */
  dbp_conn *c;
  int rc;
  dbp_export_result res;
  uint64_t elapsed_ms; /* from the cancel to the export's return */
  bool running_after;  /* the server still runs the statement afterwards */
  bool idle_after;
  int left_at_return; /* directory entries right after the call */
} cjob;

static int export_co(void *arg, void **result) {
  (void)result;
  cjob *j = arg;
  j->rc = dbp_export_query(j->c, slow_sql(j->kind), 0, NULL, j->path, &j->o, &j->res);
  return j->rc;
}

/* Is the session `id` running a statement, seen from another connection? */
static bool server_runs(dbp_rt *rt, int kind, int64_t id) {
  dbp_conn *side = open_conn(rt, kind);
  char sql[256], idtxt[32];
  snprintf(idtxt, sizeof idtxt, "%lld", (long long)id);
  snprintf(sql, sizeof sql, "%s",
           kind == DBT_PG ? "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
                          : "SELECT 1 FROM information_schema.processlist WHERE id = ?"
                            " AND command = 'Query'");
  dbp_param p = {idtxt, strlen(idtxt)};
  cr_assert_eq(dbp_query(side, sql, 1, &p, 10000), 0);
  dbp_row row;
  int n = 0, rc;
  while ((rc = dbp_fetch(side, &row)) == 1) n++;
  cr_assert_eq(rc, 0);
  dbp_conn_close(side);
  return n > 0;
}

static int body_cancel(dbp_rt *rt, void *arg) {
  cjob *j = arg;
  j->c = open_conn(rt, j->kind);
  int64_t id = dbp_conn_backend_id(j->c);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, export_co, j, NULL), 0);
  uint64_t t0 = dbp_now(rt);
  if (j->cancel) {
    /* Wait until data is on disk, as a temporary file beside the target. */
    for (int i = 0; i < 2000 && temps_beside(j->path) == 0; i++) dbp_sleep(rt, 5);
    cr_expect_eq(temps_beside(j->path), 1, "the export is writing beside %s", j->path);
    t0 = dbp_now(rt);
    dbp_cancel(co);
  }
  dbp_join(co, NULL);
  j->elapsed_ms = dbp_now(rt) - t0;
  j->running_after = server_runs(rt, j->kind, id);
  dbp_row row;
  j->idle_after = dbp_query(j->c, "SELECT 1", 0, NULL, 10000) == 0 && dbp_fetch(j->c, &row) == 1 &&
                  dbp_fetch(j->c, &row) == 0;
  dbp_conn_close(j->c);
  return 0;
}

static void check_stopped(cjob *j, int code) {
  cr_expect_eq(j->rc, code, "%s (%s)", dbp_err_name(j->rc), j->res.err.message);
  cr_expect_eq(j->res.err.code, code);
  cr_expect_eq(j->res.nfiles, 0);
  cr_expect_eq(count_entries(g_tmp), 0, "no .part and no file left");
  cr_expect(!j->running_after, "%s %s: the statement no longer runs on the server",
            j->kind == DBT_PG ? "pg" : "mariadb", j->path);
  cr_expect(j->idle_after, "the connection is usable afterwards");
  dbp_export_result_free(&j->res);
}

Test(export_faults, cancelled_export_stops_the_query_and_leaves_nothing) {
  const int kinds[] = {DBT_PG, DBT_MY};
  const char *names[] = {"c.csv", "c.jsonl.gz", "c.tsv.zst"};
  for (int k = 0; k < 2; k++) {
    for (int f = 0; f < 3; f++) {
      cjob j = {.kind = kinds[k], .path = tmp_path(names[f]), .cancel = true};
      dbt_run_in_coro(body_cancel, &j);
      check_stopped(&j, DBP_ECANCELED);
      /* Generous: the sleep would last 30 s. */
      cr_expect_lt(j.elapsed_ms, 5000, "stopped promptly (%llu ms)",
                   (unsigned long long)j.elapsed_ms);
    }
  }
}

Test(export_faults, timed_out_export_stops_the_query_and_leaves_nothing) {
  const int kinds[] = {DBT_PG, DBT_MY};
  for (int k = 0; k < 2; k++) {
    cjob j = {.kind = kinds[k], .path = tmp_path("t.csv.gz"), .o = {.timeout_ms = 1500}};
    dbt_run_in_coro(body_cancel, &j);
    check_stopped(&j, DBP_ETIMEDOUT);
    cr_expect(strstr(j.res.err.message, "timed out") || strstr(j.res.err.message, "timeout"), "%s",
              j.res.err.message);
  }
}

/* The caller's own deadline (not the export's timeout option) passes while
 * the export runs: the same clean stop, and nothing left when it returns. */
static int body_caller_deadline(dbp_rt *rt, void *arg) {
  cjob *j = arg;
  j->c = open_conn(rt, j->kind);
  int64_t id = dbp_conn_backend_id(j->c);
  uint64_t token;
  cr_assert_eq(dbp_deadline_push(rt, 1500, &token), 0);
  j->rc = dbp_export_query(j->c, slow_sql(j->kind), 0, NULL, j->path, &j->o, &j->res);
  j->left_at_return = count_entries(g_tmp);
  dbp_deadline_pop(rt, token);
  j->running_after = server_runs(rt, j->kind, id);
  dbp_row row;
  j->idle_after = dbp_query(j->c, "SELECT 1", 0, NULL, 10000) == 0 && dbp_fetch(j->c, &row) == 1 &&
                  dbp_fetch(j->c, &row) == 0;
  dbp_conn_close(j->c);
  return 0;
}

Test(export_faults, caller_deadline_stops_the_export_and_leaves_nothing) {
  const int kinds[] = {DBT_PG, DBT_MY};
  for (int k = 0; k < 2; k++) {
    cjob j = {.kind = kinds[k], .path = tmp_path("d.jsonl.zst")};
    dbt_run_in_coro(body_caller_deadline, &j);
    cr_expect_eq(j.left_at_return, 0, "nothing left when the call returns");
    check_stopped(&j, DBP_ETIMEDOUT);
  }
}

/* ---- a full disk ---- */

/* A 256 KiB tmpfs in a private mount namespace (this test's process only). */
Test(export_faults, full_disk_fails_cleanly) {
  if (unshare(CLONE_NEWNS) != 0) cr_skip_test("unshare(CLONE_NEWNS): %s", strerror(errno));
  /* Our mounts must not reach the machine's namespace. Under chroot "/" is
   * no mount point (EINVAL) and cannot be made private: a limit of the
   * place the test runs in, not a failure of dbpipe. */
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    cr_skip_test("cannot make / a private mount here: %s", strerror(errno));
  cr_assert_eq(mount("tmpfs", g_tmp, "tmpfs", 0, "size=256k"), 0, "%s", strerror(errno));
  const int kinds[] = {DBT_PG, DBT_MY};
  for (int k = 0; k < 2; k++) {
    xjob j = {.kind = kinds[k],
              .sql = kinds[k] == DBT_PG ? "SELECT i, md5(i::text) FROM generate_series(1, 100000) i"
                                        : "SELECT seq, MD5(seq) FROM seq_1_to_100000",
              .path = tmp_path("full.csv")};
    dbt_run_in_coro(body_export, &j);
    cr_expect_eq(j.rc, DBP_ENOSPC, "%s (%s)", dbp_err_name(j.rc), j.res.err.message);
    cr_expect(strstr(j.res.err.message, "/full.csv.") &&
                  strstr(j.res.err.message, ".part: No space left on device"),
              "%s", j.res.err.message);
    cr_expect_eq(count_entries(g_tmp), 0, "no .part left");
    cr_expect(j.conn_idle_after);
    xjob_free(&j);
  }
  umount(g_tmp);
}

/* ---- targets that are no regular file ---- */

/* The first column of the first row of `sql` (a static buffer; "" when
 * there is no row). */
static const char *scalar(dbp_conn *c, const char *sql) {
  static char out[64];
  out[0] = '\0';
  cr_assert_eq(dbp_query(c, sql, 0, NULL, 10000), 0, "%s: %s", sql, dbp_conn_error(c)->message);
  dbp_row row;
  int rc;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    if (out[0] == '\0' && row.vals[0] != NULL)
      snprintf(out, sizeof out, "%.*s", (int)row.lens[0], row.vals[0]);
  }
  cr_assert_eq(rc, 0);
  return out;
}

typedef struct tjob {
  int kind;
  const char *path;
  dbp_export_options o;
  int rc;
  dbp_export_result res;
  char probe_after[64]; /* PG: the sequence's is_called; MariaDB: the variable */
  bool idle_after;
} tjob;

/* Exports a query whose every row leaves a trace (a sequence advanced, a
 * session variable counted up) and reads the trace afterwards. */
static int body_target(dbp_rt *rt, void *arg) {
  tjob *j = arg;
  dbp_conn *c = open_conn(rt, j->kind);
  const char *sql;
  if (j->kind == DBT_PG) {
    cr_assert_eq(dbp_exec(c, "CREATE TEMP SEQUENCE dbp_probe", 0, NULL, 10000, NULL), 0);
    sql = "SELECT nextval('dbp_probe') AS n FROM generate_series(1, 10)";
  } else {
    cr_assert_eq(dbp_exec(c, "SET @dbp_probe = 0", 0, NULL, 10000, NULL), 0);
    sql = "SELECT @dbp_probe := @dbp_probe + 1 AS n FROM seq_1_to_10";
  }
  j->rc = dbp_export_query(c, sql, 0, NULL, j->path, &j->o, &j->res);
  snprintf(
      j->probe_after, sizeof j->probe_after, "%s",
      scalar(c, j->kind == DBT_PG ? "SELECT is_called::text FROM dbp_probe" : "SELECT @dbp_probe"));
  j->idle_after = strcmp(scalar(c, "SELECT 1"), "1") == 0;
  dbp_conn_close(c);
  return 0;
}

/* A FIFO, a directory, links (to a file, to standard output's device),
 * a split part that is a link, and "-" with splitting: dbp_export_query
 * refuses each with DBP_EINVAL and a message naming the path and what it
 * is, before the query runs (the query's trace is absent), creating
 * nothing and leaving the connection usable. */
Test(export_faults, target_that_is_no_regular_file_is_refused_before_the_query_runs) {
  write_file(tmp_path("victim"), "precious\n");
  cr_assert_eq(mkfifo(tmp_path("fifo.csv"), 0600), 0);
  cr_assert_eq(mkdir(tmp_path("dir.csv"), 0700), 0);
  cr_assert_eq(symlink(tmp_path("victim"), tmp_path("link.csv")), 0);
  cr_assert_eq(symlink("/dev/stdout", tmp_path("stdout.csv")), 0);
  cr_assert_eq(symlink(tmp_path("victim"), tmp_path("split-00002.csv")), 0);
  struct {
    const char *name;
    uint64_t max_rows;
    const char *says; /* in the message */
  } bad[] = {
      {"fifo.csv", 0, "a FIFO"},           {"dir.csv", 0, "a directory"},
      {"link.csv", 0, "a symbolic link"},  {"stdout.csv", 0, "a symbolic link"},
      {"split.csv", 3, "a symbolic link"}, {"-", 3, "cannot be split"},
  };
  int entries = count_entries(g_tmp);
  const int kinds[] = {DBT_PG, DBT_MY};
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
      tjob j = {.kind = kinds[k],
                .path = strcmp(bad[i].name, "-") == 0 ? "-" : tmp_path(bad[i].name),
                .o = {.max_rows = bad[i].max_rows}};
      dbt_run_in_coro(body_target, &j);
      const char *what = bad[i].name;
      cr_expect_eq(j.rc, DBP_EINVAL, "%s: %s (%s)", what, dbp_err_name(j.rc), j.res.err.message);
      cr_expect_eq(j.res.err.code, DBP_EINVAL);
      cr_expect(strstr(j.res.err.message, bad[i].says), "%s: %s", what, j.res.err.message);
      const char *named = bad[i].max_rows && j.path[0] != '-' ? "split-00002.csv" : what;
      cr_expect(strstr(j.res.err.message, named), "%s: %s", what, j.res.err.message);
      cr_expect_str_eq(j.probe_after, kinds[k] == DBT_PG ? "false" : "0",
                       "%s: the query did not run", what);
      cr_expect(j.idle_after, "%s: the connection is usable afterwards", what);
      cr_expect_eq(j.res.nfiles, 0);
      cr_expect_eq(count_entries(g_tmp), entries, "%s: nothing was created", what);
      dbp_export_result_free(&j.res);
    }
  }
  size_t n;
  char *data = read_raw(tmp_path("victim"), &n);
  cr_expect_str_eq(data, "precious\n");
  free(data);
  /* The probe itself works: a good target runs the query. */
  tjob ok = {.kind = DBT_PG, .path = tmp_path("ok.csv")};
  dbt_run_in_coro(body_target, &ok);
  cr_expect_eq(ok.rc, 0, "%s", ok.res.err.message);
  cr_expect_str_eq(ok.probe_after, "true");
  dbp_export_result_free(&ok.res);
}
