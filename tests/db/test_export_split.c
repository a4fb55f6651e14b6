/* Split exports: numbered parts by row count or size, each with its own
 * header, together holding exactly the rows of one unsplit export; every
 * part's checksum matches sha256sum. */
#include "test_export.h"

TestSuite(export_split, .init = make_tmp, .fini = remove_tmp, .timeout = 180);

/* Checks the parts of a split export against the unsplit one (`whole`,
 * exported by the same job with no split): same header in every part, the
 * parts' rows concatenated are the whole's rows, names numbered, sums and
 * sizes right. Returns the number of parts. */
static size_t check_parts(xjob *j, dbp_format fmt, const char *whole_path) {
  cr_assert_eq(j->rc, 0, "%s", j->res.err.message);
  size_t wn;
  char *wdata = read_output(whole_path, &wn);
  table whole;
  parse_output(wdata, wn, &j->o, fmt, &whole);
  uint64_t rows = 0, bytes = 0;
  size_t at = 0; /* next row of `whole` */
  for (size_t p = 0; p < j->res.nfiles; p++) {
    const dbp_export_file *f = &j->res.files[p];
    /* out.csv.gz -> out-0000N.csv.gz */
    char want[300];
    const char *dot = strchr(strrchr(j->path, '/'), '.');
    snprintf(want, sizeof want, "%.*s-%05zu%s", (int)(dot - j->path), j->path, p + 1, dot);
    cr_expect_str_eq(f->path, want);
    size_t rawlen, n;
    free(read_raw(f->path, &rawlen));
    cr_expect_eq(f->bytes, rawlen, "%s: bytes", f->path);
    char sum[65];
    sha256sum(f->path, sum);
    cr_expect_str_eq(f->sha256, sum, "%s: sha256", f->path);
    char *data = read_output(f->path, &n);
    table part;
    parse_output(data, n, &j->o, fmt, &part);
    cr_expect_eq(part.nrows, f->rows, "%s: rows", f->path);
    cr_assert_eq(part.ncols, whole.ncols);
    for (size_t i = 0; i < whole.ncols && fmt != DBP_FMT_JSONL; i++)
      cr_expect_str_eq(part.names[i], whole.names[i], "%s: its own header", f->path);
    for (size_t r = 0; r < part.nrows; r++, at++) {
      cr_assert_lt(at, whole.nrows);
      for (size_t i = 0; i < whole.ncols; i++) {
        const cell *a = &part.cells[r * whole.ncols + i], *b = &whole.cells[at * whole.ncols + i];
        cr_expect((a->v == NULL) == (b->v == NULL) && a->n == b->n &&
                      (a->v == NULL || memcmp(a->v, b->v, a->n) == 0),
                  "%s row %zu col %zu differs from the unsplit export", f->path, r, i);
      }
    }
    rows += f->rows;
    bytes += f->bytes;
    table_free(&part);
    free(data);
  }
  cr_expect_eq(at, whole.nrows, "the parts hold every row");
  cr_expect_eq(rows, j->res.rows);
  cr_expect_eq(bytes, j->res.bytes);
  table_free(&whole);
  free(wdata);
  return j->res.nfiles;
}

/* Exports `sql` twice, whole and split with `o`, and compares. */
static void split_case(int kind, const char *sql, const char *name, dbp_export_options o,
                       size_t *nparts, xjob *out) {
  char whole_name[64];
  snprintf(whole_name, sizeof whole_name, "whole-%s", name);
  dbp_export_options wo = o;
  wo.max_rows = wo.max_bytes = 0;
  xjob w = {.kind = kind, .sql = sql, .path = tmp_path(whole_name), .o = wo};
  dbt_run_in_coro(body_export, &w);
  cr_assert_eq(w.rc, 0, "%s", w.res.err.message);
  xjob j = {.kind = kind, .sql = sql, .path = tmp_path(name), .o = o};
  dbt_run_in_coro(body_export, &j);
  dbp_format fmt;
  dbp_format_from_path(name, &fmt, NULL);
  *nparts = check_parts(&j, fmt, w.path);
  cr_expect_eq(j.res.rows, w.res.rows);
  xjob_free(&w);
  *out = j;
}

Test(export_split, by_rows_every_mode) {
  struct {
    int kind;
    const char *name;
    dbp_export_options o;
  } cases[] = {
      {DBT_PG, "o.csv", {.max_rows = 7}},                           /* COPY bytes through */
      {DBT_PG, "o.tsv.gz", {.max_rows = 7}},                        /* COPY text through */
      {DBT_PG, "o.jsonl.zst", {.max_rows = 7}},                     /* text COPY parsed */
      {DBT_PG, "r.csv", {.max_rows = 7, .encode = {.crlf = true}}}, /* parsed, CRLF */
      {DBT_MY, "m.csv", {.max_rows = 7}},                           /* fetched rows */
      {DBT_MY, "m.jsonl.gz", {.max_rows = 7}},
  };
  int files = 0;
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    size_t nparts;
    xjob j;
    split_case(cases[k].kind, "SELECT * FROM orders ORDER BY id", cases[k].name, cases[k].o,
               &nparts, &j);
    files += 1 + (int)nparts;
    cr_expect_gt(nparts, 2, "%s: several parts", cases[k].name);
    for (size_t p = 0; p < nparts; p++) {
      uint64_t want = p + 1 < nparts ? 7 : j.res.rows - 7 * (nparts - 1);
      cr_expect_eq(j.res.files[p].rows, want, "%s part %zu", cases[k].name, p + 1);
    }
    cr_expect_leq(j.res.files[nparts - 1].rows, 7);
    cr_expect_eq(count_entries(g_tmp), files, "no stray files");
    xjob_free(&j);
  }
}

/* Uncompressed: no part is larger than max_bytes unless it holds one row. */
Test(export_split, by_bytes_uncompressed_parts_fit) {
  struct {
    int kind;
    const char *name;
  } cases[] = {{DBT_PG, "b.csv"}, {DBT_PG, "b.jsonl"}, {DBT_MY, "b.tsv"}, {DBT_MY, "b.csv"}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    dbp_export_options o = {.max_bytes = 700};
    size_t nparts;
    xjob j;
    split_case(cases[k].kind, "SELECT * FROM customers ORDER BY id", cases[k].name, o, &nparts, &j);
    cr_expect_gt(nparts, 2, "%s: several parts", cases[k].name);
    for (size_t p = 0; p < nparts; p++) {
      const dbp_export_file *f = &j.res.files[p];
      cr_expect(f->bytes <= 700 || f->rows == 1, "%s: %llu bytes with %llu rows", f->path,
                (unsigned long long)f->bytes, (unsigned long long)f->rows);
    }
    xjob_free(&j);
  }
}

/* Compressed: a part is closed once its compressed size reaches max_bytes. */
Test(export_split, by_bytes_compressed) {
  const char *pg = "SELECT i, md5(i::text) AS h FROM generate_series(1, 100000) AS i";
  const char *my = "SELECT seq AS i, MD5(seq) AS h FROM seq_1_to_100000";
  struct {
    int kind;
    const char *sql, *name;
  } cases[] = {{DBT_PG, pg, "z.csv.gz"}, {DBT_PG, pg, "z.jsonl.zst"}, {DBT_MY, my, "z.tsv.zst"}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    dbp_export_options o = {.max_bytes = 200000};
    size_t nparts;
    xjob j;
    split_case(cases[k].kind, cases[k].sql, cases[k].name, o, &nparts, &j);
    cr_expect_geq(nparts, 3, "%s: %zu parts", cases[k].name, nparts);
    for (size_t p = 0; p + 1 < nparts; p++) {
      uint64_t b = j.res.files[p].bytes;
      cr_expect(b >= 200000 && b < 3 * 200000, "%s part %zu: %llu bytes", cases[k].name, p + 1,
                (unsigned long long)b);
    }
    xjob_free(&j);
  }
}

Test(export_split, empty_result_is_one_part_with_the_header) {
  xjob j = {.kind = DBT_PG,
            .sql = "SELECT id, email FROM customers WHERE false",
            .path = tmp_path("e.csv"),
            .o = {.max_rows = 10}};
  dbt_run_in_coro(body_export, &j);
  cr_assert_eq(j.rc, 0);
  cr_assert_eq(j.res.nfiles, 1);
  cr_expect_str_eq(j.res.files[0].path, tmp_path("e-00001.csv"));
  size_t n;
  char *data = read_output(j.res.files[0].path, &n);
  cr_expect_str_eq(data, "id,email\n");
  free(data);
  xjob_free(&j);
}

Test(export_split, rows_and_bytes_together) {
  size_t nparts;
  xjob j;
  split_case(DBT_MY, "SELECT * FROM order_items ORDER BY order_id, line_no", "ib.jsonl",
             (dbp_export_options){.max_rows = 10, .max_bytes = 900}, &nparts, &j);
  for (size_t p = 0; p < nparts; p++) {
    cr_expect_leq(j.res.files[p].rows, 10);
    cr_expect(j.res.files[p].bytes <= 900 || j.res.files[p].rows == 1);
  }
  xjob_free(&j);
}

/* A re-run that needs fewer parts replaces the whole set: the earlier run's
 * higher-numbered parts go, files that are not parts of it stay. */
Test(export_split, rerun_with_fewer_parts_removes_the_old_extra_parts) {
  xjob first = {.kind = DBT_PG,
                .sql = "SELECT id, email FROM customers ORDER BY id",
                .path = tmp_path("r.csv"),
                .o = {.max_rows = 5}};
  dbt_run_in_coro(body_export, &first);
  cr_assert_eq(first.rc, 0, "%s", first.res.err.message);
  cr_assert_gt(first.res.nfiles, 2);
  size_t nfirst = first.res.nfiles;
  xjob_free(&first);
  FILE *other = fopen(tmp_path("r-notes.csv"), "w");
  cr_assert_not_null(other);
  fputs("kept\n", other);
  fclose(other);

  xjob second = {.kind = DBT_PG,
                 .sql = "SELECT id, email FROM customers ORDER BY id LIMIT 7",
                 .path = tmp_path("r.csv"),
                 .o = {.max_rows = 5}};
  dbt_run_in_coro(body_export, &second);
  cr_assert_eq(second.rc, 0, "%s", second.res.err.message);
  cr_assert_eq(second.res.nfiles, 2);
  for (size_t k = 1; k <= nfirst; k++) {
    char name[32];
    snprintf(name, sizeof name, "r-%05zu.csv", k);
    cr_expect_eq(access(tmp_path(name), F_OK) == 0, k <= 2, "%s", name);
  }
  cr_expect_eq(access(tmp_path("r-notes.csv"), F_OK), 0);
  xjob_free(&second);
}
