/* Job files read by a service: a file holding only named databases, those
 * databases lent to the jobs it takes, and the manifest path it picks for a
 * job that names none. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/job.h"

/* 2024-03-05 12:00:00 UTC */
#define NOW ((time_t)1709640000)

static const char *fake_env(const char *name, void *ud) {
  (void)ud;
  if (strcmp(name, "PG_PASSWORD") == 0) return "s3cret";
  if (strcmp(name, "MY_HOST") == 0) return "10.0.0.7";
  return NULL;
}

static void log_diag(const dbp_job_diag *d) {
  char buf[1024];
  for (size_t i = 0; i < d->count; i++) cr_log_error("%s", dbp_job_diag_format(d, i, buf, 1024));
}

static dbp_job *parse_ok_with(const char *file, const char *text, const dbp_job_options *o) {
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), file, o, &job, &diag);
  if (rc != 0) log_diag(&diag);
  cr_assert_eq(rc, 0, "parse failed: %s", dbp_err_name(rc));
  cr_assert_not_null(job);
  cr_assert_eq(diag.count, 0);
  dbp_job_diag_free(&diag);
  return job;
}

static dbp_job_diag parse_bad_with(const char *file, const char *text, const dbp_job_options *o) {
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), file, o, &job, &diag);
  cr_assert_eq(rc, DBP_EJOB, "expected DBP_EJOB, got %s", dbp_err_name(rc));
  cr_assert_null(job);
  cr_assert_gt(diag.count, 0);
  return diag;
}

/* Asserts that diagnostic i reads exactly "FILE:LINE:COL: ..." (or "FILE: ..."
 * for line 0) and that it contains `needle`. */
static void expect_error(const dbp_job_diag *d, size_t i, const char *file, int line, int col,
                         const char *needle) {
  char buf[1024], prefix[128];
  cr_assert_lt(i, d->count, "only %zu diagnostics", d->count);
  dbp_job_diag_format(d, i, buf, sizeof buf);
  if (line > 0) {
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", file, line, col);
  } else {
    snprintf(prefix, sizeof prefix, "%s: ", file);
  }
  cr_expect_eq(strncmp(buf, prefix, strlen(prefix)), 0, "expected %s..., got: %s", prefix, buf);
  cr_expect_not_null(strstr(buf, needle), "expected '%s' in: %s", needle, buf);
}

/* ---- connections_only ---- */

static const dbp_job_options conns_opts = {
    .getenv = fake_env, .now = NOW, .dir = "/srv", .connections_only = true};

static dbp_job *load_conns(const char *text) {
  return parse_ok_with("conns.yaml", text, &conns_opts);
}

static void conns_only_error(const char *text, int line, int col, const char *needle) {
  dbp_job_diag d = parse_bad_with("conns.yaml", text, &conns_opts);
  if (d.count != 1) log_diag(&d);
  cr_assert_eq(d.count, 1, "expected one diagnostic, got %zu", d.count);
  expect_error(&d, 0, "conns.yaml", line, col, needle);
  dbp_job_diag_free(&d);
}

static const char *const service_conns =
    "connections:\n"
    "  pg: postgresql://app:${PG_PASSWORD}@127.0.0.1:5432/shop\n"
    "  my:\n"
    "    dsn: mysql://app:pw@${MY_HOST}:3306/shop\n"
    "    pool: 3\n"
    "    snapshot: lock-free\n"
    "  solo: {dsn: postgresql://u@h/d, snapshot: none}\n";

Test(job_presets, connections_file_loads_every_form) {
  dbp_job *c = load_conns(service_conns);
  cr_assert_eq(c->ntasks, 0);
  cr_assert_null(c->tasks);
  cr_assert_null(c->manifest, "a connections file has no manifest");
  cr_assert_eq(c->nconns, 3);

  cr_assert_str_eq(c->conns[0].name, "pg");
  cr_assert_str_eq(c->conns[0].dsn, "postgresql://app:s3cret@127.0.0.1:5432/shop");
  cr_assert_null(strstr(c->conns[0].dsn_redacted, "s3cret"));
  cr_assert_not_null(strstr(c->conns[0].dsn_redacted, "127.0.0.1:5432/shop"));
  cr_assert_eq(c->conns[0].kind, DBP_DB_PG);
  cr_assert_eq(c->conns[0].pool, 0);
  cr_assert_eq(c->conns[0].snapshot, DBP_JOB_SNAPSHOT_AUTO);
  cr_assert_eq(c->conns[0].line, 2);
  cr_assert_eq(c->conns[0].column, 3);

  cr_assert_str_eq(c->conns[1].name, "my");
  cr_assert_str_eq(c->conns[1].dsn, "mysql://app:pw@10.0.0.7:3306/shop");
  cr_assert_eq(c->conns[1].kind, DBP_DB_MYSQL);
  cr_assert_eq(c->conns[1].pool, 3);
  cr_assert_eq(c->conns[1].snapshot, DBP_JOB_SNAPSHOT_LOCK_FREE);
  cr_assert_eq(c->conns[1].line, 3);

  cr_assert_str_eq(c->conns[2].name, "solo");
  cr_assert_eq(c->conns[2].kind, DBP_DB_PG);
  cr_assert_eq(c->conns[2].snapshot, DBP_JOB_SNAPSHOT_NONE);
  cr_assert_eq(c->conns[2].line, 7);
  dbp_job_free(c);
}

Test(job_presets, connections_file_refuses_tasks_at_their_key) {
  conns_only_error(
      "connections:\n"
      "  pg: postgresql://u@h/d\n"
      "tasks:\n"
      "  - {name: a, from: pg, table: a, to: a.csv}\n",
      3, 1, "'tasks' has no place in a connections file");
}

Test(job_presets, connections_file_refuses_every_other_key) {
  dbp_job_diag d = parse_bad_with("conns.yaml",
                                  "manifest: out.json\n"
                                  "connections: {pg: postgresql://u@h/d}\n"
                                  "  # a comment\n"
                                  "  \n"
                                  "defaults: {timeout: 1m}\n"
                                  "concurrency: 2\n",
                                  &conns_opts);
  if (d.count != 3) log_diag(&d);
  cr_assert_eq(d.count, 3);
  expect_error(&d, 0, "conns.yaml", 1, 1, "'manifest' has no place in a connections file");
  expect_error(&d, 1, "conns.yaml", 5, 1, "'defaults' has no place in a connections file");
  expect_error(&d, 2, "conns.yaml", 6, 1, "'concurrency' has no place in a connections file");
  dbp_job_diag_free(&d);
}

Test(job_presets, connections_file_checks_entries_like_a_job) {
  conns_only_error(
      "connections:\n"
      "  pg: postgresql://u@h/d\n"
      "  bad: {dsn: postgresql://u@h/d, pool: zero}\n",
      3, 40, "connection 'bad': 'pool' must be");
  conns_only_error(
      "connections:\n"
      "  x: postgresql://u:${NO_SUCH}@h/d\n",
      2, 21, "environment variable 'NO_SUCH' is not set");
}

Test(job_presets, connections_file_must_name_a_database) {
  conns_only_error("connections: {}\n", 1, 14, "'connections' is empty");
  dbp_job_diag d = parse_bad_with("conns.yaml", "# nothing\n", &conns_opts);
  cr_assert_eq(d.count, 1);
  expect_error(&d, 0, "conns.yaml", 0, 0, "the connections file is empty");
  dbp_job_diag_free(&d);
  conns_only_error("connections:\n", 1, 13, "'connections' must map names");
  conns_only_error("- pg\n", 1, 1, "a connections file is a mapping with 'connections'");
}

Test(job_presets, connections_file_without_connections_key) {
  dbp_job_diag d = parse_bad_with("conns.yaml", "concurrency: 2\n", &conns_opts);
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, "conns.yaml", 1, 1, "'concurrency' has no place in a connections file");
  expect_error(&d, 1, "conns.yaml", 1, 1, "the connections file has no 'connections'");
  dbp_job_diag_free(&d);
}

/* ---- extra_conns ---- */

/* The service's connections, loaded as dbpipe serve loads them. */
static dbp_job *service(void) {
  return load_conns(service_conns);
}

static dbp_job_options job_opts(const dbp_job *svc) {
  return (dbp_job_options){.getenv = fake_env,
                           .now = NOW,
                           .dir = "/srv",
                           .extra_conns = svc->conns,
                           .nextra_conns = svc->nconns};
}

Test(job_presets, extras_are_copied_after_the_jobs_own) {
  dbp_job *svc = service();
  dbp_job_options o = job_opts(svc);
  dbp_job *job = parse_ok_with("job.yaml",
                               "connections:\n"
                               "  mine: mysql://me@h/x\n"
                               "tasks:\n"
                               "  - {name: a, from: pg, query: SELECT 1, to: a.csv}\n"
                               "  - {name: b, from: mine, table: b, to: b.csv}\n"
                               "  - {name: c, from: my, table: shop.c, to: c.csv}\n",
                               &o);
  /* The job owns its copies: the service's may go first. */
  dbp_job_free(svc);

  cr_assert_eq(job->nconns, 4);
  cr_assert_str_eq(job->conns[0].name, "mine");
  cr_assert_eq(job->conns[0].line, 2);
  cr_assert_str_eq(job->conns[1].name, "pg");
  cr_assert_str_eq(job->conns[1].dsn, "postgresql://app:s3cret@127.0.0.1:5432/shop");
  cr_assert_null(strstr(job->conns[1].dsn_redacted, "s3cret"));
  cr_assert_eq(job->conns[1].kind, DBP_DB_PG);
  cr_assert_eq(job->conns[1].line, 0);
  cr_assert_eq(job->conns[1].column, 0);
  cr_assert_str_eq(job->conns[2].name, "my");
  cr_assert_str_eq(job->conns[2].dsn, "mysql://app:pw@10.0.0.7:3306/shop");
  cr_assert_eq(job->conns[2].kind, DBP_DB_MYSQL);
  cr_assert_eq(job->conns[2].pool, 3);
  cr_assert_eq(job->conns[2].snapshot, DBP_JOB_SNAPSHOT_LOCK_FREE);
  cr_assert_eq(job->conns[2].line, 0);
  cr_assert_str_eq(job->conns[3].name, "solo");
  cr_assert_eq(job->conns[3].snapshot, DBP_JOB_SNAPSHOT_NONE);

  cr_assert_eq(job->ntasks, 3);
  cr_assert_eq(job->tasks[0].conn, 1);
  cr_assert_eq(job->tasks[1].conn, 0);
  cr_assert_eq(job->tasks[2].conn, 2);
  cr_assert_str_eq(job->conns[job->tasks[2].conn].name, "my");
  cr_assert_str_eq(job->tasks[0].path, "/srv/a.csv");
  dbp_job_free(job);
}

Test(job_presets, extras_kinds_drive_the_query_checks) {
  /* The single-statement check reads the dialect of the connection: a
   * MariaDB '#' comment hides the ';' there, not in PostgreSQL. */
  dbp_job *svc = service();
  dbp_job_options o = job_opts(svc);
  dbp_job *job = parse_ok_with("job.yaml",
                               "tasks:\n"
                               "  - {name: a, from: my, query: \"SELECT 1 # ; DROP\", to: a.csv}\n",
                               &o);
  cr_assert_eq(job->conns[job->tasks[0].conn].kind, DBP_DB_MYSQL);
  dbp_job_free(job);

  dbp_job_diag d =
      parse_bad_with("job.yaml",
                     "tasks:\n"
                     "  - {name: a, from: pg, query: \"SELECT 1 # ; DROP\", to: a.csv}\n",
                     &o);
  cr_assert_eq(d.count, 1);
  expect_error(&d, 0, "job.yaml", 2, 32, "task 'a'");
  dbp_job_diag_free(&d);
  dbp_job_free(svc);
}

Test(job_presets, job_without_connections_uses_the_extras) {
  dbp_job *svc = service();
  dbp_job_options o = job_opts(svc);
  dbp_job *job = parse_ok_with("job.yaml",
                               "defaults: {from: solo}\n"
                               "tasks:\n"
                               "  - {name: a, table: a, to: a.csv}\n",
                               &o);
  dbp_job_free(svc);
  cr_assert_eq(job->nconns, 3);
  cr_assert_eq(job->tasks[0].conn, 2);
  cr_assert_str_eq(job->conns[2].name, "solo");
  cr_assert_str_eq(job->conns[2].dsn, "postgresql://u@h/d");
  dbp_job_free(job);
}

Test(job_presets, without_extras_a_job_still_needs_connections) {
  dbp_job_options o = {.getenv = fake_env, .now = NOW, .dir = "/srv"};
  dbp_job_diag d =
      parse_bad_with("job.yaml", "tasks: [{name: a, from: pg, table: a, to: a}]\n", &o);
  cr_assert_eq(d.count, 2);
  expect_error(&d, 0, "job.yaml", 1, 1, "the job has no 'connections'");
  expect_error(&d, 1, "job.yaml", 1, 25, "unknown connection 'pg' (no connections are defined)");
  dbp_job_diag_free(&d);
}

Test(job_presets, unknown_connection_lists_the_extras) {
  dbp_job *svc = service();
  dbp_job_options o = job_opts(svc);
  dbp_job_diag d = parse_bad_with("job.yaml",
                                  "connections: {mine: mysql://me@h/x}\n"
                                  "tasks:\n"
                                  "  - name: a\n"
                                  "    from: pgg\n"
                                  "    table: a\n"
                                  "    to: a.csv\n",
                                  &o);
  cr_assert_eq(d.count, 1);
  expect_error(&d, 0, "job.yaml", 4, 11,
               "task 'a': unknown connection 'pgg' (defined: mine, pg, my, solo)");
  dbp_job_diag_free(&d);
  dbp_job_free(svc);
}

Test(job_presets, a_job_may_not_redefine_an_extra) {
  dbp_job *svc = service();
  dbp_job_options o = job_opts(svc);
  dbp_job_diag d = parse_bad_with("job.yaml",
                                  "connections:\n"
                                  "  mine: mysql://me@h/x\n"
                                  "  my: {dsn: mysql://other@h/x, pool: 1}\n"
                                  "tasks:\n"
                                  "  - {name: a, from: my, table: a, to: a.csv}\n",
                                  &o);
  if (d.count != 1) log_diag(&d);
  cr_assert_eq(d.count, 1);
  expect_error(&d, 0, "job.yaml", 3, 3,
               "connection 'my' is already defined by the service (drop it or choose another "
               "name)");
  dbp_job_diag_free(&d);
  dbp_job_free(svc);
}

Test(job_presets, extras_are_not_expanded_again) {
  /* A DSN that reached the service holding "${" (from $${ in its file)
   * keeps it: a job's loader must not read variables of its own into it. */
  dbp_job *svc = load_conns("connections:\n  odd: postgresql://u:a$${X}b@h/d\n");
  cr_assert_str_eq(svc->conns[0].dsn, "postgresql://u:a${X}b@h/d");
  dbp_job_options o = job_opts(svc);
  dbp_job *job =
      parse_ok_with("job.yaml", "tasks: [{name: a, from: odd, table: a, to: a.csv}]\n", &o);
  cr_assert_str_eq(job->conns[0].dsn, "postgresql://u:a${X}b@h/d");
  cr_assert_str_eq(job->conns[0].dsn_redacted, svc->conns[0].dsn_redacted);
  dbp_job_free(svc);
  dbp_job_free(job);
}

/* ---- default_manifest ---- */

static const dbp_job_options manifest_opts = {
    .getenv = fake_env,
    .now = NOW,
    .dir = "/srv",
    .default_manifest = "/srv/.dbpipe-serve/runs/42.manifest.json"};

Test(job_presets, default_manifest_without_manifest_key) {
  dbp_job *job = parse_ok_with("shop.yaml",
                               "connections: {pg: postgresql://u@h/d}\n"
                               "tasks: [{name: a, from: pg, table: a, to: a.csv}]\n",
                               &manifest_opts);
  cr_assert_str_eq(job->manifest, "/srv/.dbpipe-serve/runs/42.manifest.json");
  dbp_job_free(job);

  /* Without the option: <stem>.manifest.json under dir, as before. */
  dbp_job_options plain = manifest_opts;
  plain.default_manifest = NULL;
  job = parse_ok_with("shop.yaml",
                      "connections: {pg: postgresql://u@h/d}\n"
                      "tasks: [{name: a, from: pg, table: a, to: a.csv}]\n",
                      &plain);
  cr_assert_str_eq(job->manifest, "/srv/shop.manifest.json");
  dbp_job_free(job);
}

Test(job_presets, default_manifest_is_used_as_given) {
  dbp_job_options o = manifest_opts;
  o.default_manifest = "/runs/{date}-${PG_PASSWORD}.json";
  dbp_job *job = parse_ok_with("shop.yaml",
                               "connections: {pg: postgresql://u@h/d}\n"
                               "tasks: [{name: a, from: pg, table: a, to: a.csv}]\n",
                               &o);
  cr_assert_str_eq(job->manifest, "/runs/{date}-${PG_PASSWORD}.json");
  dbp_job_free(job);
}

Test(job_presets, explicit_manifest_wins_over_the_default) {
  dbp_job *job = parse_ok_with("shop.yaml",
                               "connections: {pg: postgresql://u@h/d}\n"
                               "manifest: out/m-{date}.json\n"
                               "tasks: [{name: a, from: pg, table: a, to: a.csv}]\n",
                               &manifest_opts);
  cr_assert_str_eq(job->manifest, "/srv/out/m-2024-03-05.json");
  dbp_job_free(job);
}

Test(job_presets, manifest_false_wins_over_the_default) {
  dbp_job *job = parse_ok_with("shop.yaml",
                               "connections: {pg: postgresql://u@h/d}\n"
                               "manifest: false\n"
                               "tasks: [{name: a, from: pg, table: a, to: a.csv}]\n",
                               &manifest_opts);
  cr_assert_null(job->manifest);
  dbp_job_free(job);
}

Test(job_presets, connections_file_ignores_default_manifest) {
  dbp_job_options o = conns_opts;
  o.default_manifest = "/srv/m.json";
  dbp_job *c = parse_ok_with("conns.yaml", "connections: {pg: postgresql://u@h/d}\n", &o);
  cr_assert_null(c->manifest);
  cr_assert_eq(c->nconns, 1);
  dbp_job_free(c);
}
