/* A job posted to the server writes only under its root: paths that leave
 * it by "..", by an absolute path, through a symbolic link or onto a
 * special file are refused before anything runs, and ${VAR} reads none of
 * the server's environment. No database needed (nothing connects). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe.h"
#include "serve/confine.h"

static char tmpl[] = "/tmp/dbpipe-confine-XXXXXX";
static char *root;

static void setup(void) {
  char *d = mkdtemp(tmpl);
  cr_assert_not_null(d);
  char p[512];
  snprintf(p, sizeof p, "%s/out", d);
  cr_assert_eq(mkdir(p, 0700), 0);
  snprintf(p, sizeof p, "%s/escape", d);
  cr_assert_eq(symlink("/tmp", p), 0);
  snprintf(p, sizeof p, "%s/out/fifo.csv", d);
  cr_assert_eq(mkfifo(p, 0600), 0);
  snprintf(p, sizeof p, "%s/out/old.csv", d);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fclose(f);
  snprintf(p, sizeof p, "%s/out/link.csv", d);
  cr_assert_eq(symlink("/etc/passwd", p), 0);
  snprintf(p, sizeof p, "%s/plainfile", d);
  f = fopen(p, "w");
  cr_assert_not_null(f);
  fclose(f);
  root = dbp_serve_root(d);
  cr_assert_not_null(root);
}

static void teardown(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
  cr_expect_eq(system(cmd), 0);
  free(root);
}

/* Parses a one-task job writing `to` (and the manifest at `manifest`, or
 * none) and returns what dbp_serve_confine says; err gets its message. */
static int check(const char *to, const char *manifest, char *err, size_t errlen) {
  char text[1024];
  snprintf(text, sizeof text,
           "connections:\n  pg: postgresql://u@127.0.0.1:1/db\nmanifest: %s\n"
           "tasks:\n  - name: t1\n    from: pg\n    query: SELECT 1\n    to: '%s'\n",
           manifest ? manifest : "false", to);
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_serve_parse_job(text, strlen(text), "posted.yaml", root, &job, &diag);
  if (rc != 0) {
    char m[512];
    cr_log_info("parse: %s", diag.count ? dbp_job_diag_format(&diag, 0, m, sizeof m) : "?");
    dbp_job_diag_free(&diag);
    return rc;
  }
  err[0] = '\0';
  rc = dbp_serve_confine(job, root, err, errlen);
  dbp_job_free(job);
  return rc;
}

TestSuite(serve_confine, .init = setup, .fini = teardown);

Test(serve_confine, paths_under_the_root_pass) {
  char err[512];
  cr_expect_eq(check("out/a.csv", NULL, err, sizeof err), 0, "%s", err);
  cr_expect_eq(check("new/dir/b.csv.zst", "runs/1/manifest.json", err, sizeof err), 0, "%s", err);
  cr_expect_eq(check("out/old.csv", NULL, err, sizeof err), 0, "%s", err);
  cr_expect_eq(check("top.jsonl", NULL, err, sizeof err), 0, "%s", err);
}

Test(serve_confine, leaving_the_root_is_refused) {
  struct {
    const char *to, *want;
  } cases[] = {
      {"../x.csv", ""},
      {"out/../../x.csv", ""},
      {"/tmp/x.csv", "outside the server's root"},
      {"/etc/cron.d/x.csv", "outside the server's root"},
      {"escape/x.csv", "symbolic link"},
      {"out/link.csv", "symbolic link"},
      {"out/fifo.csv", "not a regular file"},
      {"plainfile/x.csv", "not a directory"},
      {"-", "standard output"},
      {"out/./x.csv", "\".\" or \"..\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char err[512];
    int rc = check(cases[i].to, NULL, err, sizeof err);
    cr_expect(rc == DBP_EACCES || rc == DBP_EJOB, "%s: rc %d (%s)", cases[i].to, rc, err);
    if (rc == DBP_EACCES) {
      cr_expect(strstr(err, "task t1") != NULL, "%s: %s", cases[i].to, err);
      cr_expect(strstr(err, cases[i].want) != NULL, "%s: %s", cases[i].to, err);
    }
  }
  /* ".." that the job's own path resolution folds away must still be
   * caught, whichever layer catches it: never a zero. */
  char err[512];
  cr_expect_neq(check("out/../../etc/x.csv", NULL, err, sizeof err), 0);
}

Test(serve_confine, the_manifest_is_confined_too) {
  char err[512];
  cr_expect_eq(check("out/a.csv", "../manifest.json", err, sizeof err) != 0, 1);
  cr_expect_eq(check("out/a.csv", "escape/manifest.json", err, sizeof err), DBP_EACCES);
  cr_expect(strstr(err, "the manifest") != NULL, "%s", err);
}

Test(serve_confine, a_posted_job_reads_no_environment) {
  setenv("DBPIPE_CONFINE_SECRET", "s3cret-value", 1);
  const char *text =
      "connections:\n  pg: postgresql://u:${DBPIPE_CONFINE_SECRET}@127.0.0.1:1/db\n"
      "tasks:\n  - name: t1\n    from: pg\n    query: SELECT 1\n    to: out/a.csv\n";
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_serve_parse_job(text, strlen(text), "posted.yaml", root, &job, &diag);
  cr_assert_eq(rc, DBP_EJOB, "a job that reads the server's environment must be refused");
  cr_assert_gt(diag.count, 0);
  char m[512];
  const char *msg = dbp_job_diag_format(&diag, 0, m, sizeof m);
  cr_expect(strstr(msg, "DBPIPE_CONFINE_SECRET") != NULL, "%s", msg);
  cr_expect(strstr(msg, "s3cret-value") == NULL, "the value must never show: %s", msg);
  dbp_job_diag_free(&diag);
}
