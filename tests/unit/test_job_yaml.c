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

/* ---- whole-database tasks ---- */

static dbp_job *parse_ok(const char *text) {
  dbp_job *job = NULL;
  dbp_job_diag d = parse(text, &job);
  char buf[512];
  for (size_t i = 0; job == NULL && i < d.count; i++)
    cr_log_error("%s", dbp_job_diag_format(&d, i, buf, sizeof buf));
  cr_assert_not_null(job, "%zu problems", d.count);
  return job;
}

static void expect_patterns(char *const *got, size_t n, const char *const *want, size_t nwant) {
  cr_assert_eq(n, nwant, "%zu patterns, expected %zu", n, nwant);
  for (size_t i = 0; i < n; i++) cr_expect_str_eq(got[i], want[i]);
}

Test(job_yaml, tables_and_exclude_as_a_string_or_a_list) {
  dbp_job *job = parse_ok(
      "connections: {db: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: db, tables: 'public.*, shop.order_*', exclude: public.tmp_*,\n"
      "     to: 'out/{schema}.{table}.csv'}\n"
      "  - name: b\n"
      "    from: db\n"
      "    tables:\n"
      "      - public.*\n"
      "      - '\"odd,name\".t'\n"
      "      - '`x,y`.*'\n"
      "    exclude: [public.tmp_*, 'public.\"Old, Stuff\"']\n"
      "    views: yes\n"
      "    to: 'out/b/{table}.csv'\n");
  cr_assert_eq(job->ntasks, 2);
  const dbp_job_task *a = &job->tasks[0], *b = &job->tasks[1];
  expect_patterns(a->tables, a->ntables, (const char *[]){"public.*", "shop.order_*"}, 2);
  expect_patterns(a->exclude, a->nexclude, (const char *[]){"public.tmp_*"}, 1);
  cr_expect_not(a->views);
  cr_expect_null(a->query);
  cr_expect_null(a->table);
  /* The runner's templates stay for it to fill in. */
  cr_expect_str_eq(a->path, "out/{schema}.{table}.csv");
  expect_patterns(b->tables, b->ntables, (const char *[]){"public.*", "\"odd,name\".t", "`x,y`.*"},
                  3);
  expect_patterns(b->exclude, b->nexclude,
                  (const char *[]){"public.tmp_*", "public.\"Old, Stuff\""}, 2);
  cr_expect(b->views);
  dbp_job_free(job);
}

Test(job_yaml, split_settings_and_the_part_template) {
  dbp_job *job = parse_ok(
      "connections: {db: postgresql://h/d}\n"
      "defaults: {partitions: 4}\n"
      "tasks:\n"
      "  - {name: a, from: db, table: orders, where: \"region = 'eu'\", to: "
      "'out/{name}-{part}.csv'}\n"
      "  - {name: b, from: db, table: orders, chunk_rows: 100000, partition_by: id, to: b.csv}\n"
      "  - {name: c, from: db, table: orders, partition_by: auto, to: c.csv}\n");
  const dbp_job_task *a = &job->tasks[0], *b = &job->tasks[1], *c = &job->tasks[2];
  cr_expect_str_eq(a->path, "out/a-{part}.csv");
  cr_expect_str_eq(a->where, "region = 'eu'");
  cr_expect_eq(a->partitions, 4);
  cr_expect_null(a->partition_by);
  cr_expect_eq(b->partitions, 0);
  cr_expect_eq(b->chunk_rows, 100000);
  cr_expect_str_eq(b->partition_by, "id");
  cr_expect_eq(c->partitions, 4);
  cr_expect_null(c->partition_by);
  dbp_job_free(job);
}

Test(job_yaml, snapshot_of_the_job_and_of_a_connection) {
  dbp_job *job = parse_ok(
      "connections:\n"
      "  pg: postgresql://h/d\n"
      "  my: {dsn: mysql://h/d, pool: 3, snapshot: lock-free}\n"
      "  solo: {dsn: mysql://h/e, snapshot: none}\n"
      "snapshot: on\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: '*', to: '{table}.csv'}\n");
  cr_expect_eq(job->snapshot, DBP_JOB_SNAPSHOT_ON);
  cr_expect_eq(job->conns[0].snapshot, DBP_JOB_SNAPSHOT_AUTO);
  cr_expect_eq(job->conns[1].snapshot, DBP_JOB_SNAPSHOT_LOCK_FREE);
  cr_expect_eq(job->conns[1].pool, 3);
  cr_expect_eq(job->conns[2].snapshot, DBP_JOB_SNAPSHOT_NONE);
  dbp_job_free(job);
  job = parse_ok(
      "connections: {pg: postgresql://h/d}\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n");
  cr_expect_eq(job->snapshot, DBP_JOB_SNAPSHOT_AUTO, "not given: AUTO");
  dbp_job_free(job);
  job = parse_ok(
      "connections: {pg: postgresql://h/d}\n"
      "snapshot: none\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n");
  cr_expect_eq(job->snapshot, DBP_JOB_SNAPSHOT_NONE);
  dbp_job_free(job);
}

Test(job_yaml, bad_snapshots_patterns_and_templates_are_reported_where_they_are) {
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "snapshot: shared\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n",
      "job.yaml:2:11: 'snapshot' must be on, none or lock-free, not 'shared'");
  expect_one(
      "connections: {pg: {dsn: postgresql://h/d, snapshot: [on]}}\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n",
      "job.yaml:1:53: 'snapshot' must be on, none or lock-free, not a list");
  expect_one(
      "connections: {pg: {dsn: postgresql://h/d, snapshot: maybe}}\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n",
      "job.yaml:1:53: connection 'pg': 'snapshot' must be on, none or lock-free, not 'maybe'");
  expect_one(
      "connections: {pg: {dsn: postgresql://h/d, snapshots: on}}\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n",
      "job.yaml:1:43: unknown key 'snapshots' in connection 'pg' (did you mean 'snapshot'?)");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: [a.*, {x: 1}], to: '{table}.csv'}\n",
      "job.yaml:3:39: task 'a': every item of 'tables' must be a table pattern, not a mapping");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: [], to: '{table}.csv'}\n",
      "job.yaml:3:33: task 'a': 'tables' is an empty list (expected table patterns like "
      "public.* or shop.order_*)");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: 'a.*,,b.*', to: '{table}.csv'}\n",
      "job.yaml:3:33: task 'a': 'tables' must be table patterns separated by commas, none of "
      "them empty, not 'a.*,,b.*'");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: [a.*, ''], to: '{table}.csv'}\n",
      "job.yaml:3:33: task 'a': 'tables' must be table patterns separated by commas, none of "
      "them empty, not 'a.*,'");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: a.*, to: out.csv}\n",
      "job.yaml:3:42: task 'a': 'to' needs {table} with table patterns: every table is "
      "written to a file of its own (out/{schema}.{table}.csv, say)");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, table: t, to: '{table}.csv'}\n",
      "job.yaml:3:39: task 'a': 'to' uses {table}, which only table patterns (tables) fill in");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: a.*, table: t, to: '{table}.csv'}\n",
      "job.yaml:3:38: task 'a' has both 'tables' and 'table': give one of them");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, table: t, where: 'x = 1; DELETE FROM t', to: t.csv}\n",
      "job.yaml:3:42: task 'a': 'where': more than one statement: a second one begins at line "
      "1, column 8 (\"DELETE FROM t\") after the ';' at line 1, column 6");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: [s.\"a, b.c], to: '{table}.csv'}\n",
      "job.yaml:3:34: task 'a': the item 's.\"a' of 'tables' has a quote that never ends (a "
      "comma inside [...] ends an item: quote the whole pattern, '\"a, b\".t')");
  expect_one(
      "connections: {pg: postgresql://h/d}\n"
      "manifest: 'out/{table}.json'\n"
      "tasks: [{name: a, from: pg, table: t, to: t.csv}]\n",
      "job.yaml:2:16: manifest: unknown template '{table}' (known: {date})");
}

Test(job_yaml, templated_paths_are_left_to_the_runner) {
  /* The same templated path in two tasks may name different files (their
   * tables differ): the runner checks the files it fills in. */
  dbp_job *job = parse_ok(
      "connections: {pg: postgresql://h/d}\n"
      "tasks:\n"
      "  - {name: a, from: pg, tables: a.*, to: 'out/{schema}.{table}.csv'}\n"
      "  - {name: b, from: pg, tables: b.*, to: 'out/{schema}.{table}.csv'}\n");
  cr_expect_eq(job->ntasks, 2);
  dbp_job_free(job);
}
