/* The dbpipe executable and passwords: wiped from its arguments while it
 * runs, read from the environment or a password file instead, never shown
 * in a message; and user or server text that cannot forge log lines. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "test_cli.h"

static char dir[256];
static pid_t child; /* killed by the teardown if a failed test left it running */

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  if (child > 0 && waitpid(child, NULL, WNOHANG) == 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
  }
  rm_rf(dir);
}

TestSuite(cli_secrets, .init = setup, .fini = teardown, .timeout = 120);

/* The fixture's PostgreSQL DSN split up; free with dbp_dsn_free. */
static void pg_parts(dbp_dsn *d) {
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_pg_dsn(), d, err, sizeof err), 0, "%s", err);
  cr_assert_not_null(d->password, "the fixture's DSN has no password");
}

/* The NUL-separated command line of `pid`, with the NULs made spaces. */
static char *cmdline_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == '\0') buf[i] = ' ';
  }
  buf[n] = '\0';
  return buf;
}

/* Runs an export of a sleeping query given `from_args`, waits until the
 * query runs on the server, and checks /proc/PID/cmdline. */
static void cmdline_test(const char *const *from_args, const char *password) {
  char marker[64];
  snprintf(marker, sizeof marker, "dbpipe_cmdline_%d_%llu", (int)getpid(),
           (unsigned long long)now_ms());
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT pg_sleep(2) AS slept /* %s */", marker);
  const char *argv[16];
  size_t n = 0;
  argv[n++] = "export";
  for (size_t i = 0; from_args[i] != NULL; i++) argv[n++] = from_args[i];
  argv[n++] = "--query";
  argv[n++] = sql;
  argv[n++] = "--to";
  argv[n++] = "out/slept.csv";
  argv[n] = NULL;
  proc p;
  proc_start(&p, dir, false, argv);
  child = p.pid;
  uint64_t deadline = now_ms() + 20000;
  while (pg_running(marker) == 0 && now_ms() < deadline) proc_pump(&p, 50);
  cr_assert_eq(pg_running(marker), 1, "the query did not start; stderr:\n%s", p.err);
  char *cmd = cmdline_of(p.pid);
  char needle[256];
  snprintf(needle, sizeof needle, ":%s@", password);
  cr_expect_null(strstr(cmd, needle), "the password is in /proc/PID/cmdline: %s", cmd);
  cr_expect_not_null(strstr(cmd, "@127.0.0.1"), "the rest of the DSN stays: %s", cmd);
  cr_expect_eq(proc_wait(&p, 30000), 0, "%s", p.err);
  proc_free(&p);
  cr_expect(exists("%s/out/slept.csv", dir));
}

Test(cli_secrets, the_password_leaves_proc_cmdline_for_from_url) {
  dbp_dsn d;
  pg_parts(&d);
  cmdline_test((const char *[]){"--from", dbt_pg_dsn(), NULL}, d.password);
  dbp_dsn_free(&d);
}

Test(cli_secrets, the_password_leaves_proc_cmdline_for_from_equals_url) {
  dbp_dsn d;
  pg_parts(&d);
  char arg[1024];
  snprintf(arg, sizeof arg, "--from=%s", dbt_pg_dsn());
  cmdline_test((const char *[]){arg, NULL}, d.password);
  dbp_dsn_free(&d);
}

/* Passwords with characters a URL reader might stop at ('#', a second
 * ':'): argv is wiped by the same reading that redacts messages. The "server" accepts the
 * connection and says nothing, so dbpipe is surely past its option parsing while it waits. */
Test(cli_secrets, odd_passwords_leave_proc_cmdline_too) {
  static const char *const pws[] = {"se#cret-pw", "pa:ss#wo#rd"};
  for (size_t i = 0; i < sizeof pws / sizeof pws[0]; i++) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(l, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    char dsn[256];
    snprintf(dsn, sizeof dsn, "postgresql://app:%s@127.0.0.1:%d/shop?connect_timeout=20", pws[i],
             ntohs(a.sin_port));
    proc p;
    proc_start(&p, dir, false,
               (const char *[]){"export", "--from", dsn, "--query", "SELECT 1", "--to", "out/x.csv",
                                NULL});
    child = p.pid;
    struct pollfd pf = {.fd = l, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 20000), 1, "dbpipe never connected; stderr:\n%s", p.err);
    int conn = accept(l, NULL, NULL);
    cr_assert_geq(conn, 0);
    char *cmd = cmdline_of(p.pid);
    cr_expect_null(strstr(cmd, pws[i]), "the password is in /proc/PID/cmdline: %s", cmd);
    cr_expect_not_null(strstr(cmd, "@127.0.0.1:"), "the rest of the DSN stays: %s", cmd);
    kill(p.pid, SIGKILL);
    proc_wait(&p, 10000);
    proc_free(&p);
    child = 0;
    close(conn);
    close(l);
  }
}

Test(cli_secrets, from_env_reads_the_dsn_from_a_variable) {
  setenv("DBPIPE_TEST_SOURCE", dbt_pg_dsn(), 1);
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from-env", "DBPIPE_TEST_SOURCE", "--table",
                                        "customers", "--to", "out/c.csv", NULL}),
               0);
  cr_expect_not_null(strstr(p.err, "done: 20 rows"), "%s", p.err);
  proc_free(&p);
  cr_expect(exists("%s/out/c.csv", dir));

  /* Unset: exit 2, and the message names the variable. */
  unsetenv("DBPIPE_TEST_NOT_SET");
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from-env", "DBPIPE_TEST_NOT_SET", "--table",
                                        "customers", "--to", "out/d.csv", NULL}),
               2);
  cr_expect_not_null(strstr(p.err, "DBPIPE_TEST_NOT_SET"), "%s", p.err);
  cr_expect_not_null(strstr(p.err, "not set"), "%s", p.err);
  proc_free(&p);
  cr_expect_not(exists("%s/out/d.csv", dir));

  /* Both --from and --from-env: which one? */
  cr_assert_eq(
      run_cli(&p, dir,
              (const char *[]){"export", "--from-env", "DBPIPE_TEST_SOURCE", "--from", dbt_pg_dsn(),
                               "--table", "customers", "--to", "out/e.csv", NULL}),
      2);
  proc_free(&p);

  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "export", NULL}), 0);
  cr_expect_not_null(strstr(p.out, "--from-env VAR"));
  proc_free(&p);
}

Test(cli_secrets, a_pgpass_file_supplies_the_password_with_a_numeric_address) {
  dbp_dsn d;
  pg_parts(&d);
  char nopw[512], pass[512], home[512];
  snprintf(nopw, sizeof nopw, "postgresql://%s@%s:%d/%s", d.user, d.host, d.port, d.dbname);
  snprintf(pass, sizeof pass, "%s/pgpass", dir);
  snprintf(home, sizeof home, "%s/home", dir);
  mkdir(home, 0700);
  /* Neither the environment nor a ~/.pgpass may help the first try. */
  unsetenv("PGPASSWORD");
  unsetenv("PGPASSFILE");
  setenv("HOME", home, 1);
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", nopw, "--query", "SELECT 1 AS one",
                                        "--to", "out/none.csv", NULL}),
               1, "the fixture must ask for a password");
  proc_free(&p);

  write_file(pass, "%s:%d:%s:%s:%s\n", d.host, d.port, d.dbname, d.user, d.password);
  chmod(pass, 0600);
  setenv("PGPASSFILE", pass, 1);
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", nopw, "--query", "SELECT 1 AS one",
                                        "--to", "out/one.csv", NULL}),
               0);
  proc_free(&p);
  char path[600];
  snprintf(path, sizeof path, "%s/out/one.csv", dir);
  char *csv = read_file(path);
  cr_assert_not_null(csv);
  cr_expect_str_eq(csv, "one\n1\n");
  free(csv);
  unsetenv("PGPASSFILE");

  /* PGPASSWORD works the same way. */
  setenv("PGPASSWORD", d.password, 1);
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", nopw, "--query", "SELECT 1 AS one",
                                        "--to", "out/env.csv", NULL}),
               0);
  proc_free(&p);
  unsetenv("PGPASSWORD");
  dbp_dsn_free(&d);

  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"help", "export", NULL}), 0);
  const char *words[] = {"PGPASSWORD", "PGPASSFILE", ".pgpass", "MYSQL_PWD", ".my.cnf"};
  for (size_t i = 0; i < 5; i++) cr_expect_not_null(strstr(p.out, words[i]), "%s", words[i]);
  proc_free(&p);
}

Test(cli_secrets, mysql_pwd_supplies_the_mysql_password) {
  char err[256];
  dbp_dsn d;
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &d, err, sizeof err), 0, "%s", err);
  char nopw[512];
  snprintf(nopw, sizeof nopw, "mysql://%s@%s:%d/%s", d.user, d.host, d.port, d.dbname);
  char home[512];
  snprintf(home, sizeof home, "%s/home", dir);
  mkdir(home, 0700);
  setenv("HOME", home, 1);
  setenv("MYSQL_PWD", d.password, 1);
  proc p;
  cr_expect_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", nopw, "--query", "SELECT 1 AS one",
                                        "--to", "out/one.csv", NULL}),
               0);
  proc_free(&p);
  unsetenv("MYSQL_PWD");
  dbp_dsn_free(&d);
}

/* Asserts that every line of `text` starts with `prefix` and that no
 * escape character reached it. */
static void clean_lines(const char *text, const char *prefix, const char *alt) {
  cr_expect_null(strchr(text, '\x1b'), "an escape character reached the output:\n%s", text);
  const char *p = text;
  while (*p) {
    cr_expect(strncmp(p, prefix, strlen(prefix)) == 0 ||
                  (alt != NULL && strncmp(p, alt, strlen(alt)) == 0),
              "a forged line: %.80s", p);
    const char *nl = strchr(p, '\n');
    if (nl == NULL) break;
    p = nl + 1;
  }
}

Test(cli_secrets, control_characters_are_escaped_in_log_lines) {
  /* A path, an SQL identifier the server echoes in its error, and a job
   * file's task path, all with a newline and a terminal escape. */
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){
                           "export", "--from", dbt_pg_dsn(), "--query", "SELECT 1 AS one", "--to",
                           "out/a\ndbpipe: forged\x1b[2J.csv", "--format", "csv", NULL}),
               0);
  clean_lines(p.err, "dbpipe: ", NULL);
  cr_expect_not_null(strstr(p.err, "out/a\\ndbpipe: forged\\e[2J.csv"), "%s", p.err);
  proc_free(&p);

  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_pg_dsn(), "--query",
                                        "SELECT * FROM \"no\nsuch\x1b[31mtable\"", "--to",
                                        "out/b.csv", NULL}),
               1);
  clean_lines(p.err, "dbpipe: ", NULL);
  cr_expect_not_null(strstr(p.err, "\\e[31m"), "%s", p.err);
  proc_free(&p);

  /* JSON lines escape them as JSON does. */
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_pg_dsn(), "--query",
                                        "SELECT * FROM \"no\nsuch\x1b[31mtable\"", "--to",
                                        "out/b.csv", "--log-format", "json", NULL}),
               1);
  clean_lines(p.err, "{\"ts\":", NULL);
  char *save = NULL;
  for (char *line = strtok_r(p.err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    jv o;
    cr_expect(j_parse(line, &o), "not JSON: %s", line);
    j_free(&o);
  }
  proc_free(&p);

  /* Problems in a job file quote its text: escaped too. */
  char job[512];
  snprintf(job, sizeof job, "%s/evil.yaml", dir);
  write_file(job,
             "connections: {pg: \"${DBPIPE_PG_DSN}\"}\n"
             "tasks:\n"
             "  - {name: \"a\\e[2Jb\\nforged\", from: pg, table: t, to: out/t.csv}\n");
  cr_assert_eq(run_cli(&p, NULL, (const char *[]){"check", job, NULL}), 2);
  clean_lines(p.err, job, "dbpipe check: ");
  cr_expect_not_null(strstr(p.err, "a\\e[2Jb\\nforged"), "%s", p.err);
  proc_free(&p);
}
