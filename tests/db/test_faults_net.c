/* The dbpipe executable over a faulty network, against the fixture's real
 * servers: the job's connection goes through the fault proxy of
 * tests/support/faultproxy.h.
 *
 *   cut + retry       the first connection is reset in the middle of the
 *                     result; with `retries: 2` the job still exits 0 and
 *                     the file is byte for byte the one a direct export
 *                     writes.
 *   restart mid-job   connections are refused (as while a server restarts)
 *                     until the job has logged a retry, then let through:
 *                     exit 0, files correct.
 *   stall             the server's data stops after some bytes; the idle
 *                     timeout (`idle_timeout: 2s` / `--idle-timeout 2s`)
 *                     ends the task: exit 1, a message naming the idle
 *                     timeout, no .part file, no query left on the server.
 *
 * Nothing here waits for a time to pass: a switch happens when the job's
 * own log says it is due, and the test's .timeout guards a hang. */
#include <inttypes.h>

#include "faultproxy.h"
#include "test_cli.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(faults_net, .init = setup, .fini = teardown, .timeout = 180);

/* A result of 100,000 ordered rows, several MB: far more than the bytes a
 * cut or a stall lets through. `mark` is a literal in the query so the
 * server's activity list can find it. */
static void big_query(int kind, const char *mark, char *buf, size_t len) {
  if (kind == DBT_PG) {
    snprintf(buf, len,
             "SELECT g AS id, md5(g::text) AS h, '%s' AS mark "
             "FROM generate_series(1, 100000) AS g ORDER BY g",
             mark);
  } else {
    snprintf(buf, len,
             "SELECT seq AS id, MD5(seq) AS h, '%s' AS mark FROM seq_1_to_100000 ORDER BY seq",
             mark);
  }
}

/* Writes a one-task job: `dsn` as connection "db", the query, the target
 * `out`, and `extra` lines of task settings (each "    key: value\n"). */
static void write_job(const char *job, const char *dsn, const char *sql, const char *out,
                      const char *extra) {
  write_file(job,
             "connections:\n"
             "  db: \"%s\"\n"
             "tasks:\n"
             "  - name: t\n"
             "    from: db\n"
             "    query: \"%s\"\n"
             "    to: %s\n"
             "%s",
             dsn, sql, out, extra);
}

/* Asserts that two files have the same size and SHA-256. */
static void expect_same_file(const char *got, const char *want) {
  struct stat a, b;
  cr_assert_eq(stat(got, &a), 0, "missing %s", got);
  cr_assert_eq(stat(want, &b), 0, "missing %s", want);
  cr_expect_eq(a.st_size, b.st_size, "%s has %lld bytes, %s %lld", got, (long long)a.st_size, want,
               (long long)b.st_size);
  char ha[65], hb[65];
  sha256_file(got, ha);
  sha256_file(want, hb);
  cr_expect_str_eq(ha, hb, "%s differs from %s", got, want);
}

/* Exports the big query straight from the server into `out`: the file a
 * faulty path must reproduce exactly. */
static void direct_export(int kind, const char *sql, const char *out) {
  char job[600];
  snprintf(job, sizeof job, "%s/direct.yaml", dir);
  write_job(job, dbt_dsn(kind), sql, out, "");
  proc p;
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"run", job, NULL}), 0);
  proc_free(&p);
}

/* ---- cut + retry -> identical file ---- */

#define CUT_AFTER 50000

static void cut_retry_case(int kind, const char *ext) {
  char sql[400], want[600], got[600], job[600];
  big_query(kind, "cut-retry", sql, sizeof sql);
  snprintf(want, sizeof want, "%s/direct/t.%s", dir, ext);
  snprintf(got, sizeof got, "%s/proxied/t.%s", dir, ext);
  direct_export(kind, sql, want);

  dbt_proxy *px = dbt_proxy_for_dsn(dbt_dsn(kind));
  dbt_proxy_cut(px, CUT_AFTER, 1);
  snprintf(job, sizeof job, "%s/cut.yaml", dir);
  write_job(job, dbt_proxy_dsn(px), sql, got, "    retries: 2\n    retry_backoff: 100ms\n");
  proc p;
  int code = run_cli(&p, NULL, (const char *[]){"run", job, NULL});
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  cr_expect_not_null(strstr(p.err, "retrying"), "no retry was logged:\n%s", p.err);
  /* The password of the proxied DSN is never shown. */
  cr_expect_null(strstr(p.err, ":dbpipe@"), "password in the log:\n%s", p.err);
  proc_free(&p);

  dbt_proxy_conn_stats st;
  cr_assert(dbt_proxy_conn(px, 0, &st), "nobody connected through the proxy");
  cr_expect(st.cut, "the first connection was not cut (%" PRIu64 " bytes)", st.bytes[DBT_S2C]);
  cr_expect_geq(dbt_proxy_accepted(px), 2, "no second connection for the retry");
  dbt_proxy_stop(px);

  expect_same_file(got, want);
  char out[300];
  snprintf(out, sizeof out, "%s/proxied", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
}

Test(faults_net, cut_then_retry_gives_identical_csv_pg) {
  cut_retry_case(DBT_PG, "csv");
}

Test(faults_net, cut_then_retry_gives_identical_csv_my) {
  cut_retry_case(DBT_MY, "csv");
}

Test(faults_net, cut_then_retry_gives_identical_csv_gz_pg) {
  cut_retry_case(DBT_PG, "csv.gz");
}

Test(faults_net, cut_then_retry_gives_identical_csv_gz_my) {
  cut_retry_case(DBT_MY, "csv.gz");
}

/* ---- a server restart in the middle of a job ---- */

/* Waits (bounded) until the running job's log contains `needle`. */
static bool wait_log(proc *p, const char *needle) {
  uint64_t deadline = now_ms() + 90000;
  while (strstr(p->err, needle) == NULL && now_ms() < deadline) {
    if (!proc_pump(p, 100)) break;
  }
  return strstr(p->err, needle) != NULL;
}

static void restart_case(int kind, enum dbt_refuse_how how) {
  char sql[400], want[600], got[600], job[600];
  big_query(kind, "restart", sql, sizeof sql);
  snprintf(want, sizeof want, "%s/direct/t.csv.gz", dir);
  snprintf(got, sizeof got, "%s/proxied/t.csv.gz", dir);
  direct_export(kind, sql, want);

  dbt_proxy *px = dbt_proxy_for_dsn(dbt_dsn(kind));
  dbt_proxy_refuse(px, how, 0);
  snprintf(job, sizeof job, "%s/restart.yaml", dir);
  write_job(job, dbt_proxy_dsn(px), sql, got, "    retries: 6\n    retry_backoff: 200ms\n");
  proc p;
  proc_start(&p, NULL, false, (const char *[]){"run", job, NULL});
  /* The "server" comes back once the job has seen it gone. */
  bool retried = wait_log(&p, "retrying");
  dbt_proxy_pass(px);
  int code = proc_wait(&p, 120000);
  cr_log_info("dbpipe exited %d\n--- stderr:\n%s", code, p.err);
  cr_expect(retried, "the job never logged a retry while connections were refused");
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  proc_free(&p);
  if (how == DBT_REFUSE_CLOSE) {
    dbt_proxy_conn_stats st;
    cr_assert(dbt_proxy_conn(px, 0, &st));
    cr_expect_eq(st.mode, DBT_PROXY_REFUSE, "the first connection was not refused");
  }
  dbt_proxy_stop(px);

  expect_same_file(got, want);
  char out[300];
  snprintf(out, sizeof out, "%s/proxied", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
}

Test(faults_net, restart_refused_then_back_pg) {
  restart_case(DBT_PG, DBT_REFUSE_UNLISTEN);
}

Test(faults_net, restart_refused_then_back_my) {
  restart_case(DBT_MY, DBT_REFUSE_UNLISTEN);
}

Test(faults_net, restart_closed_then_back_pg) {
  restart_case(DBT_PG, DBT_REFUSE_CLOSE);
}

Test(faults_net, restart_closed_then_back_my) {
  restart_case(DBT_MY, DBT_REFUSE_CLOSE);
}

/* ---- a stalled stream and the idle timeout ---- */

#define STALL_AFTER 60000

/* Running statements with `mark` in their text, on the server of `kind`. */
static int running(int kind, const char *mark) {
  return kind == DBT_PG ? pg_running(mark) : my_running(mark);
}

/* Waits (bounded) for the server to drop the statement; returns how many
 * are still running. */
static int wait_not_running(int kind, const char *mark) {
  int n = running(kind, mark);
  for (int i = 0; i < 300 && n > 0; i++) {
    usleep(100000);
    n = running(kind, mark);
  }
  return n;
}

/* `use_option`: the command line's --idle-timeout on `dbpipe export`
 * instead of the job key. */
/* `huge`: a result far larger than the socket buffers, so that the server
 * is still blocked writing it when dbpipe gives up (a server blocked that
 * way does not act on a cancel request). Its rows stream from the first
 * moment (a cross join of two small series; one big series would be
 * materialized first and keep the stream silent past the idle timeout). */
static void stall_case_sized(int kind, bool use_option, bool huge) {
  char sql[400], got[600], job[600], mark[64];
  snprintf(mark, sizeof mark, "stall-%s-%d", use_option ? "opt" : "key", (int)getpid());
  if (huge && kind == DBT_PG)
    snprintf(sql, sizeof sql,
             "SELECT a * 100000 + b AS id, repeat(md5(b::text), 8) AS h, '%s' AS mark "
             "FROM generate_series(1, 50) AS a, generate_series(1, 100000) AS b",
             mark);
  else if (huge)
    snprintf(sql, sizeof sql,
             "SELECT a.seq * 100000 + b.seq AS id, REPEAT(MD5(b.seq), 8) AS h, '%s' AS mark "
             "FROM seq_1_to_50 AS a, seq_1_to_100000 AS b",
             mark);
  else
    big_query(kind, mark, sql, sizeof sql);
  snprintf(got, sizeof got, "%s/stalled/t.csv", dir);

  dbt_proxy *px = dbt_proxy_for_dsn(dbt_dsn(kind));
  /* Every connection stalls once the server has sent STALL_AFTER bytes on
   * it: the result's does, a cancel request or KILL on a side connection
   * (a few bytes) goes through. */
  dbt_proxy_stall(px, DBT_S2C, STALL_AFTER, 0);
  proc p;
  int code;
  if (use_option) {
    code = run_cli(&p, NULL,
                   (const char *[]){"export", "--from", dbt_proxy_dsn(px), "--query", sql, "--to",
                                    got, "--idle-timeout", "2s", NULL});
  } else {
    snprintf(job, sizeof job, "%s/stall.yaml", dir);
    write_job(job, dbt_proxy_dsn(px), sql, got, "    idle_timeout: 2s\n");
    code = run_cli(&p, NULL, (const char *[]){"run", job, NULL});
  }
  cr_expect_eq(code, 1, "exit %d:\n%s", code, p.err);
  cr_expect(strcasestr(p.err, "idle timeout") != NULL || strstr(p.err, "idle_timeout") != NULL,
            "the message does not name the idle timeout:\n%s", p.err);
  cr_expect_null(strstr(p.err, ":dbpipe@"), "password in the log:\n%s", p.err);
  proc_free(&p);

  bool stalled = false;
  dbt_proxy_conn_stats st;
  for (unsigned i = 0; dbt_proxy_conn(px, i, &st); i++) stalled = stalled || st.stalled;
  cr_expect(stalled, "no stream reached the stall (%u connections, %" PRIu64 " bytes)",
            dbt_proxy_accepted(px), dbt_proxy_total(px, DBT_S2C));
  /* The proxy still holds the server's side of the stalled connection
   * open: dbpipe itself must have ended the statement on the server. */
  cr_expect_eq(wait_not_running(kind, mark), 0, "the query is still running on the server");
  dbt_proxy_stop(px);

  cr_expect_not(exists("%s", got), "a file at the final path");
  char out[300];
  snprintf(out, sizeof out, "%s/stalled", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
}

static void stall_case(int kind, bool use_option) {
  stall_case_sized(kind, use_option, false);
}

/* The server is blocked writing to the stalled path: a cancel request does
 * not reach the statement and closing dbpipe's socket does not reach the
 * server, so dbpipe ends the session from a side connection. */
Test(faults_net, stall_with_the_server_blocked_writing_pg) {
  stall_case_sized(DBT_PG, false, true);
}

Test(faults_net, stall_with_the_server_blocked_writing_my) {
  stall_case_sized(DBT_MY, false, true);
}

Test(faults_net, stall_hits_idle_timeout_pg) {
  stall_case(DBT_PG, false);
}

Test(faults_net, stall_hits_idle_timeout_my) {
  stall_case(DBT_MY, false);
}

Test(faults_net, stall_hits_idle_timeout_option_pg) {
  stall_case(DBT_PG, true);
}

Test(faults_net, stall_hits_idle_timeout_option_my) {
  stall_case(DBT_MY, true);
}
