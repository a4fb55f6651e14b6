/* The drivers are leaves: scripts/check-driver-leaves finds no call from a
 * driver file into conn.c and no write of the connection's state machine,
 * and it does find both when they are there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs the checker on source tree `root`; returns its exit status with its
 * output (both streams) in out. */
static int run_check(const char *root, char *out, size_t len) {
  const char *src = getenv("DBPIPE_SOURCE_DIR");
  cr_assert_not_null(src, "DBPIPE_SOURCE_DIR is not set (run through ctest)");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "sh '%s/scripts/check-driver-leaves' '%s' 2>&1", src, root);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  cr_assert(WIFEXITED(st), "the checker did not exit: %s", out);
  return WEXITSTATUS(st);
}

Test(driver_leaves, the_drivers_call_nothing_in_conn_c) {
  char out[16384];
  int st = run_check(getenv("DBPIPE_SOURCE_DIR"), out, sizeof out);
  cr_expect_eq(st, 0, "the drivers are not leaves:\n%s", out);
  cr_expect(strstr(out, "0 calls into conn.c, 0 writes of its state") != NULL, "%s", out);
}

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

Test(driver_leaves, the_check_finds_calls_and_state_writes) {
  char root[] = "/tmp/dbpipe-leaves-XXXXXX", path[256];
  cr_assert_not_null(mkdtemp(root));
  snprintf(path, sizeof path, "%s/src", root);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/src/db", root);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/src/db/conn.c", root);
  put(path,
      "static int settle(dbp_conn *c, int rc) {\n  return rc;\n}\n"
      "int dbp_exec(dbp_conn *c, const char *sql) {\n  return 0;\n}\n");
  snprintf(path, sizeof path, "%s/src/db/pg.c", root);
  put(path,
      "static int pg_exec(dbp_conn *c) {\n  c->state = DBP__IDLE;\n"
      "  if (c->broken == true) return 0;\n  return settle(c, 0);\n}\n");
  snprintf(path, sizeof path, "%s/src/db/mysql_x.c", root);
  put(path, "static int my_q(dbp_conn *c) {\n  c->busy = false;\n  return dbp_exec(c, \"\");\n}\n");
  char out[4096];
  int st = run_check(root, out, sizeof out);
  cr_expect_neq(st, 0, "the checker passed a driver that calls conn.c:\n%s", out);
  cr_expect(strstr(out, "2 calls into conn.c, 2 writes of its state") != NULL, "%s", out);
  cr_expect(strstr(out, "pg.c:4") != NULL && strstr(out, "mysql_x.c:3") != NULL, "%s", out);
  cr_expect(strstr(out, "pg.c:3") == NULL, "a comparison is no write:\n%s", out);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_expect_eq(system(cmd), 0);
}
