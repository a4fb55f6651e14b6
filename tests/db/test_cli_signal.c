/* The dbpipe executable interrupted (SIGINT, SIGTERM, twice) and drawing
 * its live display on a pseudo-terminal. */
#include <fcntl.h>
#include <glob.h>
#include <sys/file.h>

#include "test_cli.h"

static char dir[256];
static char marker[64];
static pid_t child; /* killed by the teardown if a failed test left it running */

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
  /* A word only this test's queries contain, to find them on the servers. */
  snprintf(marker, sizeof marker, "dbpipe_sigtest_%d_%llu", (int)getpid(),
           (unsigned long long)now_ms());
}

static void teardown(void) {
  if (child > 0 && waitpid(child, NULL, WNOHANG) == 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  rm_rf(dir);
}

TestSuite(cli_signal, .init = setup, .fini = teardown, .timeout = 120);

/* A job whose tasks run long: a sleeping query on each database, a big
 * streaming export, and one task that waits for a free slot. */
static void write_long_job(const char *job) {
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  my: ${DBPIPE_MY_DSN}\n"
             "concurrency: 3\n"
             "tasks:\n"
             "  - name: pg-sleep\n"
             "    from: pg\n"
             "    query: SELECT pg_sleep(30) AS slept /* %s */\n"
             "    to: out/pg-sleep.csv\n"
             "  - name: my-sleep\n"
             "    from: my\n"
             "    query: SELECT SLEEP(30) AS slept /* %s */\n"
             "    to: out/my-sleep.csv\n"
             "  - name: big\n"
             "    from: pg\n"
             "    query: SELECT g, md5(g::text) FROM (SELECT generate_series(1, 500000000) AS g) s"
             " /* %s */\n"
             "    to: out/big.csv.gz\n"
             "  - name: waiting\n"
             "    from: pg\n"
             "    table: customers\n"
             "    to: out/waiting.csv\n",
             marker, marker, marker);
}

/* Waits (at most 20 s) until the three long statements run on the servers
 * and the big export has started writing. */
static void wait_until_running(proc *p) {
  uint64_t deadline = now_ms() + 20000;
  char part[512];
  snprintf(part, sizeof part, "%s/out/big.csv.gz.*.part", dir);
  while (now_ms() < deadline) {
    proc_pump(p, 100);
    /* The writer's temporary file beside the target: big.csv.gz.TOKEN.part. */
    glob_t g;
    bool writing = glob(part, 0, NULL, &g) == 0;
    globfree(&g);
    if (pg_running(marker) == 2 && my_running(marker) == 1 && writing) return;
  }
  cr_assert_fail("the tasks did not start; stderr so far:\n%s", p->err);
}

/* After an interrupted run: nothing at the final paths, no .part files, no
 * statement left on either server, and a manifest that says so. */
static void expect_clean_interruption(void) {
  const char *names[] = {"pg-sleep.csv", "my-sleep.csv", "big.csv.gz", "waiting.csv"};
  for (size_t i = 0; i < 4; i++) {
    cr_expect_not(exists("%s/out/%s", dir, names[i]), "%s exists", names[i]);
  }
  char out[300];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
  cr_expect_eq(pg_running(marker), 0, "a query still runs on PostgreSQL");
  cr_expect_eq(my_running(marker), 0, "a query still runs on MariaDB");
}

static void interrupt_test(int sig) {
  char job[512];
  snprintf(job, sizeof job, "%s/long.yaml", dir);
  write_long_job(job);
  proc p;
  proc_start(&p, NULL, false, (const char *[]){"run", job, NULL});
  child = p.pid;
  wait_until_running(&p);

  uint64_t t0 = now_ms();
  kill(p.pid, sig);
  int code = proc_wait(&p, 30000);
  uint64_t took = now_ms() - t0;
  cr_log_info("exited %d %llu ms after the signal; stderr:\n%s", code, (unsigned long long)took,
              p.err);
  cr_assert_eq(code, 130, "exit code %d; stderr:\n%s", code, p.err);
  /* The generous bound the interface promises: a few seconds. */
  cr_expect_lt(took, 10000, "took %llu ms to stop", (unsigned long long)took);
  char said[64];
  snprintf(said, sizeof said, "%s: cancelling 3 running tasks",
           sig == SIGINT    ? "SIGINT"
           : sig == SIGTERM ? "SIGTERM"
           : sig == SIGHUP  ? "SIGHUP"
                            : "SIGQUIT");
  cr_expect_not_null(strstr(p.err, said), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "run interrupted"));
  proc_free(&p);
  expect_clean_interruption();

  char path[600];
  snprintf(path, sizeof path, "%s/long.manifest.json", dir);
  char *text = read_file(path);
  cr_assert_not_null(text, "no manifest after an interruption");
  jv m;
  cr_assert(j_parse(text, &m), "%s", text);
  cr_expect_str_eq(j_str(&m, "status"), "interrupted");
  const char *names[] = {"pg-sleep", "my-sleep", "big", "waiting"};
  for (size_t i = 0; i < 4; i++) {
    jv *t = manifest_task(&m, names[i]);
    cr_expect_str_eq(j_str(t, "status"), "interrupted", "%s", names[i]);
    cr_expect_eq(j_get(t, "files")->n, 0);
  }
  j_free(&m);
  free(text);
}

Test(cli_signal, sigint_cancels_queries_on_the_servers_and_exits_130) {
  interrupt_test(SIGINT);
}

Test(cli_signal, sigterm_does_the_same) {
  interrupt_test(SIGTERM);
}

Test(cli_signal, sighup_does_the_same) {
  interrupt_test(SIGHUP);
}

Test(cli_signal, sigquit_does_the_same) {
  interrupt_test(SIGQUIT);
}

Test(cli_signal, a_second_sigint_exits_at_once) {
  char job[512];
  snprintf(job, sizeof job, "%s/long.yaml", dir);
  write_long_job(job);
  /* Beside the targets: a file of the user's whose name merely looks like
   * a temporary one, and a live temporary file of another dbpipe (its lock
   * held, as a running writer holds it). The hurried exit removes only the
   * run's own. */
  char out[300], users[400], other[400];
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(users, sizeof users, "%s/big.csv.gz.keep.part", out);
  snprintf(other, sizeof other, "%s/big.csv.gz.0123456789abcdef.part", out);
  cr_assert_eq(mkdir(out, 0755), 0);
  write_file(users, "mine\n");
  write_file(other, "in progress\n");
  int other_fd = open(other, O_RDONLY | O_CLOEXEC);
  cr_assert_geq(other_fd, 0);
  cr_assert_eq(flock(other_fd, LOCK_EX), 0);
  proc p;
  proc_start(&p, NULL, false, (const char *[]){"run", job, NULL});
  child = p.pid;
  wait_until_running(&p);
  kill(p.pid, SIGINT);
  /* The second one while the first is still being handled. */
  usleep(20000);
  kill(p.pid, SIGINT);
  int code = proc_wait(&p, 30000);
  cr_assert_eq(code, 130, "exit code %d; stderr:\n%s", code, p.err);
  cr_expect(strstr(p.err, "SIGINT again: exiting at once") != NULL ||
                strstr(p.err, "run interrupted") != NULL,
            "%s", p.err);
  proc_free(&p);
  /* Whatever the first one cleaned up, nothing may appear at a final path,
   * and no temporary file may stay behind. */
  cr_expect_not(exists("%s/out/big.csv.gz", dir));
  cr_expect_not(exists("%s/out/pg-sleep.csv", dir));
  cr_expect(exists("%s", users), "the user's own file was removed");
  cr_expect(exists("%s", other), "another process's live temporary file was removed");
  close(other_fd);
  unlink(users);
  unlink(other);
  cr_expect_eq(count_suffix(out, ".part"), 0, "a .part file was left behind");
  /* Cancel what the hurried exit left running, so the servers stay tidy. */
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  const char *params[1] = {marker};
  PQclear(PQexecParams(c,
                       "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE "
                       "pid <> pg_backend_pid() AND strpos(query, $1) > 0",
                       1, NULL, params, NULL, NULL, 0));
  PQfinish(c);
}

Test(cli_signal, the_live_display_on_a_terminal) {
  char job[512];
  snprintf(job, sizeof job, "%s/slow.yaml", dir);
  /* Rows trickle in for about two seconds, so several frames are drawn. */
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  my: ${DBPIPE_MY_DSN}\n"
             "tasks:\n"
             "  - name: trickle\n"
             "    from: pg\n"
             "    query: SELECT g, pg_sleep(0.002) FROM generate_series(1, 1000) g\n"
             "    to: out/trickle.csv\n"
             "  - name: nap\n"
             "    from: my\n"
             "    query: SELECT SLEEP(1) AS napped\n"
             "    to: out/nap.jsonl\n");
  proc p;
  proc_start(&p, NULL, true, (const char *[]){"run", job, NULL});
  int code = proc_wait(&p, 60000);
  cr_log_info("terminal output:\n%s", p.out);
  cr_assert_eq(code, 0, "exit code %d:\n%s", code, p.out);
  const char *o = p.out;
  cr_expect_not_null(strstr(o, "\x1b[?25l"), "the cursor is hidden while drawing");
  cr_expect_not_null(strstr(o, "\x1b[?25h"), "the cursor is shown again at the end");
  /* Redraws move the cursor back up over the previous frame: ESC [ N A. */
  int redraws = 0;
  for (const char *s = o; (s = strstr(s, "\x1b[")) != NULL; s += 2) {
    size_t digits = strspn(s + 2, "0123456789");
    if (digits > 0 && s[2 + digits] == 'A') redraws++;
  }
  cr_expect_geq(redraws, 3, "only %d redraws", redraws);
  cr_expect_not_null(strstr(o, " trickle "), "the task name is shown");
  cr_expect_not_null(strstr(o, "running"));
  cr_expect_not_null(strstr(o, " rows "));
  cr_expect_not_null(strstr(o, "rows/s"));
  cr_expect_not_null(strstr(o, "pool pg "));
  cr_expect_not_null(strstr(o, "in use"));
  cr_expect_not_null(strstr(o, "trickle: done: 1,000 rows"));
  cr_expect_not_null(strstr(o, "nap: done: 1 row,"));
  cr_expect_not_null(strstr(o, "run ok: 2 of 2 tasks done"));
  /* The display is erased at the end: the last line is the summary. */
  const char *last = strstr(o, "run ok");
  cr_expect_null(strstr(last, "running"), "the display was left on screen");
  proc_free(&p);
  cr_expect(exists("%s/out/trickle.csv", dir));
}
