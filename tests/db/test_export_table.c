/* dbp_export_table (a table by name, quoted for the connection's dialect),
 * the export's fallback when COPY refuses a statement, and options out of
 * range refused before anything runs. */
#include "dbcheck.h"
#include "test_export.h"

TestSuite(export_table, .init = make_tmp, .fini = remove_tmp, .timeout = 120);

typedef struct tjob {
  int kind;
  const char *setup; /* run first on the export's own connection (may be NULL) */
  const char *table;
  const char *sql; /* the same rows as a query */
  const char *path, *ref_path;
  dbp_export_options o;
  int rc, ref_rc;
  dbp_export_result res, ref;
} tjob;

static int body_table(dbp_rt *rt, void *arg) {
  tjob *j = arg;
  dbp_conn *c = open_conn(rt, j->kind);
  if (j->setup) CHECK_RC(c, dbp_exec(c, j->setup, 0, NULL, 10000, NULL), 0);
  j->rc = dbp_export_table(c, j->table, j->path, &j->o, &j->res);
  if (j->sql) j->ref_rc = dbp_export_query(c, j->sql, 0, NULL, j->ref_path, &j->o, &j->ref);
  dbp_conn_close(c);
  return 0;
}

static void same_files(const char *a, const char *b) {
  size_t na, nb;
  char *pa = read_output(a, &na), *pb = read_output(b, &nb);
  cr_expect(na == nb && memcmp(pa, pb, na) == 0, "%s and %s differ\n%s\n---\n%s", a, b, pa, pb);
  free(pa);
  free(pb);
}

static void run_table(tjob *j) {
  dbt_run_in_coro(body_table, j);
  cr_assert_eq(j->rc, 0, "%s: %s", j->table, j->res.err.message);
  cr_assert_eq(j->ref_rc, 0, "%s: %s", j->sql, j->ref.err.message);
  cr_expect_eq(j->res.rows, j->ref.rows);
  cr_expect_gt(j->res.rows, 0);
  same_files(j->path, j->ref_path);
  dbp_export_result_free(&j->res);
  dbp_export_result_free(&j->ref);
}

Test(export_table, pg_schema_and_table) {
  const char *names[] = {"t.csv", "t.jsonl", "t.tsv.gz"};
  for (int f = 0; f < 3; f++) {
    char ref[32];
    snprintf(ref, sizeof ref, "ref-%s", names[f]);
    tjob j = {.kind = DBT_PG,
              .table = "public.customers",
              .sql = "SELECT * FROM customers",
              .path = tmp_path(names[f])};
    j.ref_path = tmp_path(ref);
    run_table(&j);
  }
}

Test(export_table, mysql_table) {
  tjob j = {.kind = DBT_MY,
            .table = "products",
            .sql = "SELECT * FROM products",
            .path = tmp_path("p.jsonl")};
  j.ref_path = tmp_path("ref-p.jsonl");
  run_table(&j);
}

/* Quotes and spaces in the name are the name's own: quoting doubles them. */
Test(export_table, names_with_quotes_are_quoted_for_each_dialect) {
  tjob pg = {.kind = DBT_PG,
             .setup =
                 "CREATE TEMPORARY TABLE \"odd \"\"name\"\"\" AS SELECT 1 AS \"a\"\"b\", "
                 "'x,y' AS c",
             .table = "odd \"name\"",
             .sql = "SELECT * FROM \"odd \"\"name\"\"\"",
             .path = tmp_path("pg.csv")};
  pg.ref_path = tmp_path("ref-pg.csv");
  run_table(&pg);
  tjob my = {.kind = DBT_MY,
             .setup = "CREATE TEMPORARY TABLE `odd ``name``` AS SELECT 1 AS `a``b`, 'x,y' AS c",
             .table = "odd `name`",
             .sql = "SELECT * FROM `odd ``name```",
             .path = tmp_path("my.csv")};
  my.ref_path = tmp_path("ref-my.csv");
  run_table(&my);
}

/* A name is never SQL: what would end the statement is part of the name,
 * and no such table exists. */
Test(export_table, a_name_cannot_smuggle_sql) {
  for (int kind = DBT_PG; kind <= DBT_MY; kind++) {
    tjob j = {.kind = kind, .table = "customers; SELECT 1", .path = tmp_path("x.csv")};
    dbt_run_in_coro(body_table, &j);
    cr_expect_eq(j.rc, DBP_EQUERY, "%s", dbp_err_name(j.rc));
    cr_expect_null(j.res.files);
    cr_expect_eq(count_entries(g_tmp), 0);
  }
}

Test(export_table, missing_arguments) {
  dbp_export_result res;
  cr_expect_eq(dbp_export_table(NULL, "t", "x.csv", NULL, &res), DBP_EINVAL);
  cr_expect_eq(res.err.code, DBP_EINVAL);
  cr_expect_eq(dbp_export_table(NULL, NULL, "x.csv", NULL, &res), DBP_EINVAL);
  cr_expect_eq(dbp_export_table(NULL, "t", "x.csv", NULL, NULL), DBP_EINVAL);
}

/* Statements COPY does not take are exported through dbp_query, with the
 * same bytes a query of the same rows gives. */
Test(export_table, pg_statements_copy_refuses_fall_back_to_rows) {
  xjob j = {.kind = DBT_PG, .sql = "SHOW client_encoding", .path = tmp_path("show.csv")};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0, "%s", j.res.err.message);
  size_t n;
  char *data = read_output(j.path, &n);
  cr_expect(strncmp(data, "client_encoding\n", 16) == 0 && data[n - 1] == '\n', "%s", data);
  cr_expect_eq(j.res.rows, 1);
  cr_expect(j.conn_idle_after);
  free(data);
  xjob_free(&j);
}

/* Batch sizes and queue lengths past the documented limits are refused
 * before anything runs, on both databases and with either read path. */
Test(export_table, absurd_batch_and_queue_sizes_are_einval) {
  const dbp_export_options bad[] = {
      {.batch_rows = SIZE_MAX},
      {.batch_rows = SIZE_MAX / sizeof(size_t) + 2},
      {.batch_rows = DBP_EXPORT_MAX_BATCH_ROWS + 1},
      {.queue_batches = SIZE_MAX},
      {.queue_batches = SIZE_MAX - 1},
      {.queue_batches = DBP_EXPORT_MAX_QUEUE + 1},
  };
  const char *paths[] = {"a.csv", "a.jsonl"};
  for (int kind = DBT_PG; kind <= DBT_MY; kind++) {
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
      for (int p = 0; p < 2; p++) {
        xjob j = {.kind = kind,
                  .sql = "SELECT * FROM customers",
                  .path = tmp_path(paths[p]),
                  .o = bad[i]};
        dbt_run_in_coro(body_export, &j);
        cr_expect_eq(j.rc, DBP_EINVAL, "case %zu: %s", i, dbp_err_name(j.rc));
        cr_expect(strstr(j.res.err.message, "allowed") != NULL, "%s", j.res.err.message);
        cr_expect(j.conn_idle_after);
        xjob_free(&j);
      }
    }
  }
  cr_expect_eq(count_entries(g_tmp), 0, "nothing was written");
  /* The limits themselves are fine. */
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT g FROM generate_series(1, 100000) g",
            .path = tmp_path("max.csv"),
            .o = {.batch_rows = DBP_EXPORT_MAX_BATCH_ROWS, .queue_batches = DBP_EXPORT_MAX_QUEUE}};
  dbt_run_in_coro(body_export, &j);
  cr_expect_eq(j.rc, 0, "%s", j.res.err.message);
  cr_expect_eq(j.res.rows, 100000);
  xjob_free(&j);
}
