/* The job file's YAML tree: anchors and aliases, one document only, and
 * syntax errors at their position. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe/job.h"

static dbp_job_diag parse(const char *text, dbp_job **job) {
  dbp_job_diag diag;
  dbp_job_parse(text, strlen(text), "job.yaml", NULL, job, &diag);
  return diag;
}

static void expect_one(const char *text, const char *want) {
  dbp_job *job = NULL;
  dbp_job_diag d = parse(text, &job);
  cr_assert_null(job);
  cr_assert_eq(d.count, 1, "%zu problems", d.count);
  char buf[512];
  cr_expect_str_eq(dbp_job_diag_format(&d, 0, buf, sizeof buf), want);
  dbp_job_diag_free(&d);
}

Test(job_yaml, an_alias_is_the_node_its_anchor_names) {
  dbp_job *job = NULL;
  dbp_job_diag d = parse(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv, retries: &n 3}\n"
      "  - {name: b, from: db, table: b, to: b.csv, retries: *n}\n",
      &job);
  cr_assert_not_null(job, "%zu problems", d.count);
  cr_expect_eq(job->tasks[0].retries, 3);
  cr_expect_eq(job->tasks[1].retries, 3);
  dbp_job_free(job);
}

Test(job_yaml, undefined_aliases_and_duplicate_anchors_are_syntax_errors) {
  expect_one(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv, retries: *r}\n",
      "job.yaml:3:55: YAML syntax error: found undefined alias");
  expect_one(
      "connections: &c {db: postgresql://h/d}\n"
      "x: &c 1\n",
      "job.yaml:2:4: YAML syntax error: second occurrence (found duplicate anchor; first "
      "occurrence at line 1, column 14)");
}

Test(job_yaml, one_document_only) {
  const char *one =
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: a, to: a.csv}\n";
  char text[512];
  snprintf(text, sizeof text, "%s---\nfoo: 1\n", one);
  expect_one(text, "job.yaml:5:1: a job file holds one YAML document; remove the second one");
  snprintf(text, sizeof text, "%s---\nfoo: [1\n", one);
  expect_one(text,
             "job.yaml:6:1: YAML syntax error: did not find expected ',' or ']' (while parsing a "
             "flow sequence at line 5, column 6)");
  expect_one("# nothing\n", "job.yaml: the job file is empty");
  expect_one("---\n",
             "job.yaml:2:1: a job file is a mapping with 'connections' and 'tasks', not "
             "nothing");
}
