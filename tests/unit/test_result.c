/* Whole results: the builder (src/db/result.h) and the accessors of
 * db.h. No database needed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/result.h"
#include "dbpipe.h"

/* A row of n values: vals[i] NULL is SQL NULL; lens[i] as given. */
static dbp_row mkrow(size_t n, const char *const *vals, const size_t *lens) {
  return (dbp_row){.ncols = n, .vals = vals, .lens = lens};
}

static dbp_result *two_columns(void) {
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_column cols[2] = {{"id", DBP_T_INTEGER, "int4", 23}, {"name", DBP_T_TEXT, "text", 25}};
  cr_assert_eq(dbp__result_set_columns(r, 2, cols), 0);
  return r;
}

Test(result, empty_result_has_nothing) {
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  cr_expect_eq(dbp_result_nrows(r), 0);
  cr_expect_eq(dbp_result_ncols(r), 0);
  cr_expect_eq(dbp_result_affected(r), 0);
  cr_expect_null(dbp_result_column(r, 0));
  size_t len = 99;
  cr_expect_null(dbp_result_value(r, 0, 0, &len));
  cr_expect_eq(len, 0);
  dbp_row row = {.ncols = 7};
  cr_expect_eq(dbp_result_row(r, 0, &row), DBP_EINVAL);
  cr_expect_eq(row.ncols, 0);
  cr_expect_null(row.vals);
  dbp__result_set_affected(r, 42);
  cr_expect_eq(dbp_result_affected(r), 42);
  dbp_result_free(r);
}

Test(result, free_null_and_accessors_on_null) {
  dbp_result_free(NULL);
  cr_expect_eq(dbp_result_nrows(NULL), 0);
  cr_expect_eq(dbp_result_ncols(NULL), 0);
  cr_expect_null(dbp_result_column(NULL, 0));
  cr_expect_null(dbp_result_value(NULL, 0, 0, NULL));
  dbp_row row;
  cr_expect_eq(dbp_result_row(NULL, 0, &row), DBP_EINVAL);
  cr_expect_eq(dbp_result_affected(NULL), 0);
}

Test(result, columns_are_copied) {
  char name[] = "customer_id", type[] = "int8";
  dbp_column cols[3] = {{name, DBP_T_INTEGER, type, 20},
                        {"note", DBP_T_TEXT, "varchar", 1043},
                        {"", DBP_T_OTHER, "", 0}};
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  cr_assert_eq(dbp__result_set_columns(r, 3, cols), 0);
  /* The caller's strings and array change afterwards: the result keeps
   * its own. */
  memset(name, 'X', sizeof name - 1);
  memset(type, 'Y', sizeof type - 1);
  cols[0].type = DBP_T_BOOL;
  cols[0].db_type_id = 1;
  cr_expect_eq(dbp_result_ncols(r), 3);
  const dbp_column *c0 = dbp_result_column(r, 0);
  cr_assert_not_null(c0);
  cr_expect_str_eq(c0->name, "customer_id");
  cr_expect_str_eq(c0->db_type, "int8");
  cr_expect_eq(c0->type, DBP_T_INTEGER);
  cr_expect_eq(c0->db_type_id, 20);
  cr_expect(c0->name != name && c0->db_type != type);
  cr_expect_str_eq(dbp_result_column(r, 1)->name, "note");
  cr_expect_str_eq(dbp_result_column(r, 1)->db_type, "varchar");
  cr_expect_eq(dbp_result_column(r, 1)->db_type_id, 1043);
  cr_expect_str_eq(dbp_result_column(r, 2)->name, "");
  cr_expect_null(dbp_result_column(r, 3));
  cr_expect_null(dbp_result_column(r, (size_t)-1));
  dbp_result_free(r);
}

Test(result, columns_only_before_the_first_row) {
  dbp_result *r = two_columns();
  const char *v[2] = {"1", "a"};
  size_t l[2] = {1, 1};
  dbp_row row = mkrow(2, v, l);
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  dbp_column one = {"x", DBP_T_TEXT, "text", 25};
  cr_expect_eq(dbp__result_set_columns(r, 1, &one), DBP_EINVAL);
  cr_expect_eq(dbp_result_ncols(r), 2);
  cr_expect_str_eq(dbp_result_column(r, 0)->name, "id");
  dbp_result_free(r);
}

Test(result, null_and_empty_string_differ) {
  dbp_result *r = two_columns();
  const char *v[2] = {NULL, ""};
  size_t l[2] = {0, 0};
  dbp_row row = mkrow(2, v, l);
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  const char *v2[2] = {"", NULL};
  row = mkrow(2, v2, l);
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  cr_expect_eq(dbp_result_nrows(r), 2);
  size_t len = 5;
  cr_expect_null(dbp_result_value(r, 0, 0, &len));
  cr_expect_eq(len, 0);
  len = 5;
  const char *e = dbp_result_value(r, 0, 1, &len);
  cr_assert_not_null(e);
  cr_expect_eq(len, 0);
  cr_expect_eq(e[0], '\0');
  cr_expect(e != v[1], "the empty string is a copy too");
  cr_expect_not_null(dbp_result_value(r, 1, 0, NULL));
  cr_expect_null(dbp_result_value(r, 1, 1, NULL));
  dbp_row out;
  cr_assert_eq(dbp_result_row(r, 0, &out), 0);
  cr_expect_eq(out.ncols, 2);
  cr_expect_null(out.vals[0]);
  cr_expect_eq(out.lens[0], 0);
  cr_expect_not_null(out.vals[1]);
  cr_expect_eq(out.lens[1], 0);
  dbp_result_free(r);
}

Test(result, values_are_copied_with_a_nul_after) {
  dbp_result *r = two_columns();
  char a[] = "12345", b[] = "hello world";
  const char *v[2] = {a, b};
  size_t l[2] = {5, 5}; /* only "hello" of b */
  dbp_row row = mkrow(2, v, l);
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  memset(a, '0', 5);
  memset(b, '-', 11);
  size_t len;
  const char *x = dbp_result_value(r, 0, 0, &len);
  cr_expect_eq(len, 5);
  cr_expect_str_eq(x, "12345");
  x = dbp_result_value(r, 0, 1, &len);
  cr_expect_eq(len, 5);
  cr_expect_str_eq(x, "hello", "the value ends with a NUL after its length");
  dbp_result_free(r);
}

Test(result, binary_values_keep_embedded_nuls) {
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_column col = {"b", DBP_T_BYTES, "bytea", 17};
  cr_assert_eq(dbp__result_set_columns(r, 1, &col), 0);
  char bin[256];
  for (int i = 0; i < 256; i++) bin[i] = (char)(255 - i);
  bin[10] = '\0';
  bin[0] = '\0';
  const char *v[1] = {bin};
  size_t l[1] = {sizeof bin};
  dbp_row row = mkrow(1, v, l);
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  static const char three[3] = {'\0', '\0', '\0'};
  v[0] = three;
  l[0] = 3;
  cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  size_t len;
  const char *x = dbp_result_value(r, 0, 0, &len);
  cr_assert_eq(len, 256);
  cr_expect_eq(memcmp(x, bin, 256), 0);
  cr_expect_eq(x[256], '\0');
  x = dbp_result_value(r, 1, 0, &len);
  cr_assert_eq(len, 3);
  cr_expect_eq(memcmp(x, "\0\0\0\0", 4), 0);
  dbp_result_free(r);
}

/* The value of row i, column j in the many-rows test. */
static size_t cell(size_t i, size_t j, char *buf, size_t len) {
  /* Lengths vary from 0 to well past a small chunk now and then. */
  size_t n = (size_t)snprintf(buf, len, "r%zu-c%zu-", i, j);
  size_t pad = i % 97 == 0 ? 3000 + j : (i * 7 + j) % 40;
  for (size_t k = 0; k < pad && n + 1 < len; k++) buf[n++] = (char)('a' + (i + k) % 26);
  buf[n] = '\0';
  return n;
}

Test(result, many_rows_across_chunks_keep_their_pointers) {
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_column cols[3] = {
      {"a", DBP_T_TEXT, "text", 25}, {"b", DBP_T_TEXT, "text", 25}, {"c", DBP_T_TEXT, "text", 25}};
  cr_assert_eq(dbp__result_set_columns(r, 3, cols), 0);
  const dbp_column *col0 = dbp_result_column(r, 0);
  enum { ROWS = 20000, EARLY = 50 };
  const char *early[EARLY][3];
  char early_copy[EARLY][3][64];
  const char *const *early_vals = NULL;
  const size_t *early_lens = NULL;
  static char buf[3][4096];
  for (size_t i = 0; i < ROWS; i++) {
    const char *v[3];
    size_t l[3];
    for (size_t j = 0; j < 3; j++) {
      l[j] = cell(i, j, buf[j], sizeof buf[j]);
      v[j] = j == 2 && i % 5 == 0 ? NULL : buf[j];
      if (v[j] == NULL) l[j] = 0;
    }
    dbp_row row = mkrow(3, v, l);
    cr_assert_eq(dbp__result_add_row(r, &row, 0), 0, "row %zu", i);
    if (i < EARLY) {
      for (size_t j = 0; j < 3; j++) {
        early[i][j] = dbp_result_value(r, i, j, NULL);
        snprintf(early_copy[i][j], sizeof early_copy[i][j], "%.63s",
                 early[i][j] ? early[i][j] : "(null)");
      }
    }
    if (i == 1) {
      dbp_row out;
      cr_assert_eq(dbp_result_row(r, 1, &out), 0);
      early_vals = out.vals;
      early_lens = out.lens;
    }
  }
  cr_assert_eq(dbp_result_nrows(r), ROWS);
  /* The pointers taken early still point at the same, unchanged bytes. */
  for (size_t i = 0; i < EARLY; i++) {
    for (size_t j = 0; j < 3; j++) {
      cr_expect_eq(dbp_result_value(r, i, j, NULL), early[i][j], "row %zu col %zu moved", i, j);
      if (early[i][j] != NULL)
        cr_expect_eq(strncmp(early[i][j], early_copy[i][j], strlen(early_copy[i][j])), 0);
    }
  }
  dbp_row out;
  cr_assert_eq(dbp_result_row(r, 1, &out), 0);
  cr_expect_eq(out.vals, early_vals, "a row's arrays stay where they were");
  cr_expect_eq(out.lens, early_lens);
  cr_expect_eq(dbp_result_column(r, 0), col0);
  /* Every value reads back. */
  for (size_t i = 0; i < ROWS; i++) {
    for (size_t j = 0; j < 3; j++) {
      size_t want = cell(i, j, buf[0], sizeof buf[0]);
      size_t len = 1;
      const char *x = dbp_result_value(r, i, j, &len);
      if (j == 2 && i % 5 == 0) {
        if (x != NULL) cr_expect_null(x, "row %zu: NULL expected", i);
        continue;
      }
      if (x == NULL || len != want || memcmp(x, buf[0], want) != 0 || x[len] != '\0') {
        cr_expect(0, "row %zu col %zu differs", i, j);
        break;
      }
    }
  }
  cr_expect_null(dbp_result_value(r, ROWS, 0, NULL));
  cr_expect_null(dbp_result_value(r, 0, 3, NULL));
  dbp_result_free(r);
}

Test(result, a_huge_value_among_small_ones) {
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_column col = {"v", DBP_T_TEXT, "text", 25};
  cr_assert_eq(dbp__result_set_columns(r, 1, &col), 0);
  size_t big = 3u << 20;
  char *huge = malloc(big);
  cr_assert_not_null(huge);
  for (size_t i = 0; i < big; i++) huge[i] = (char)('A' + i % 23);
  const char *v[1];
  size_t l[1];
  dbp_row row = mkrow(1, v, l);
  for (int i = 0; i < 30; i++) {
    char small[16];
    v[0] = i == 10 ? huge : small;
    l[0] = i == 10 ? big : (size_t)snprintf(small, sizeof small, "s%d", i);
    cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  }
  size_t len;
  const char *x = dbp_result_value(r, 10, 0, &len);
  cr_assert_eq(len, big);
  cr_expect_eq(memcmp(x, huge, big), 0);
  cr_expect_str_eq(dbp_result_value(r, 9, 0, NULL), "s9");
  cr_expect_str_eq(dbp_result_value(r, 11, 0, NULL), "s11");
  cr_expect_str_eq(dbp_result_value(r, 29, 0, NULL), "s29");
  free(huge);
  dbp_result_free(r);
}

Test(result, the_bound_counts_value_bytes_exactly) {
  dbp_result *r = two_columns();
  const char *v[2] = {"abcd", "efghij"}; /* 10 bytes a row */
  size_t l[2] = {4, 6};
  dbp_row row = mkrow(2, v, l);
  /* Three rows in 30 bytes fit exactly; a NULL adds nothing. */
  cr_assert_eq(dbp__result_add_row(r, &row, 30), 0);
  cr_assert_eq(dbp__result_add_row(r, &row, 30), 0);
  const char *vn[2] = {NULL, "0123456789"};
  size_t ln[2] = {0, 10};
  dbp_row nrow = mkrow(2, vn, ln);
  cr_assert_eq(dbp__result_add_row(r, &nrow, 30), 0);
  cr_expect_eq(dbp_result_nrows(r), 3);
  /* One byte more fails, and appends nothing. */
  const char *v1[2] = {"", "x"};
  size_t l1[2] = {0, 1};
  dbp_row one = mkrow(2, v1, l1);
  cr_expect_eq(dbp__result_add_row(r, &one, 30), DBP_ETOOBIG);
  cr_expect_eq(dbp_result_nrows(r), 3);
  cr_expect_null(dbp_result_value(r, 3, 1, NULL));
  /* Empty strings and NULLs still fit at the bound. */
  const char *v0[2] = {"", NULL};
  size_t l0[2] = {0, 0};
  dbp_row zero = mkrow(2, v0, l0);
  cr_expect_eq(dbp__result_add_row(r, &zero, 30), 0);
  cr_expect_eq(dbp_result_nrows(r), 4);
  /* A bigger bound takes the row that was refused. */
  cr_expect_eq(dbp__result_add_row(r, &one, 31), 0);
  cr_expect_eq(dbp_result_nrows(r), 5);
  cr_expect_str_eq(dbp_result_value(r, 4, 1, NULL), "x");
  cr_expect_str_eq(dbp_result_value(r, 2, 1, NULL), "0123456789");
  dbp_result_free(r);
}

Test(result, a_single_row_over_the_bound_is_refused) {
  dbp_result *r = two_columns();
  const char *v[2] = {"abc", "de"};
  size_t l[2] = {3, 2};
  dbp_row row = mkrow(2, v, l);
  cr_expect_eq(dbp__result_add_row(r, &row, 4), DBP_ETOOBIG);
  cr_expect_eq(dbp_result_nrows(r), 0);
  cr_expect_eq(dbp__result_add_row(r, &row, 5), 0);
  /* Lengths whose sum wraps around are too big, not small. */
  size_t wrap[2] = {(size_t)-1, 2};
  dbp_row bad = mkrow(2, v, wrap);
  cr_expect_eq(dbp__result_add_row(r, &bad, (size_t)-1), DBP_ETOOBIG);
  cr_expect_eq(dbp_result_nrows(r), 1);
  dbp_result_free(r);
}

Test(result, the_default_bound_is_64_mib) {
  cr_expect_eq(DBP__RESULT_MAX_BYTES, (size_t)64 << 20);
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_column col = {"v", DBP_T_BYTES, "bytea", 17};
  cr_assert_eq(dbp__result_set_columns(r, 1, &col), 0);
  /* A length past the default is refused before anything is read from
   * the value (the pointer is not dereferenced). */
  const char *v[1] = {"x"};
  size_t l[1] = {DBP__RESULT_MAX_BYTES + 1};
  dbp_row row = mkrow(1, v, l);
  cr_expect_eq(dbp__result_add_row(r, &row, 0), DBP_ETOOBIG);
  cr_expect_eq(dbp_result_nrows(r), 0);
  dbp_result_free(r);
}

Test(result, wrong_column_count_is_einval) {
  dbp_result *r = two_columns();
  const char *v[3] = {"1", "2", "3"};
  size_t l[3] = {1, 1, 1};
  dbp_row row = mkrow(3, v, l);
  cr_expect_eq(dbp__result_add_row(r, &row, 0), DBP_EINVAL);
  row.ncols = 1;
  cr_expect_eq(dbp__result_add_row(r, &row, 0), DBP_EINVAL);
  cr_expect_eq(dbp__result_add_row(r, NULL, 0), DBP_EINVAL);
  cr_expect_eq(dbp_result_nrows(r), 0);
  row.ncols = 2;
  cr_expect_eq(dbp__result_add_row(r, &row, 0), 0);
  cr_expect_eq(dbp_result_nrows(r), 1);
  dbp_result_free(r);
}

Test(result, rows_without_columns) {
  /* A result with no columns takes rows of no values. */
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  dbp_row row = mkrow(0, NULL, NULL);
  cr_expect_eq(dbp__result_add_row(r, &row, 0), 0);
  cr_expect_eq(dbp__result_add_row(r, &row, 0), 0);
  cr_expect_eq(dbp_result_nrows(r), 2);
  cr_expect_eq(dbp_result_ncols(r), 0);
  dbp_row out;
  cr_expect_eq(dbp_result_row(r, 1, &out), 0);
  cr_expect_eq(out.ncols, 0);
  cr_expect_null(dbp_result_value(r, 0, 0, NULL));
  dbp_result_free(r);
}

Test(result, many_columns) {
  enum { N = 300 };
  dbp_column cols[N];
  char names[N][16];
  const char *v[N];
  size_t l[N];
  for (size_t i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "col_%zu", i);
    cols[i] = (dbp_column){names[i], DBP_T_TEXT, "text", 25};
    v[i] = names[i];
    l[i] = strlen(names[i]);
  }
  dbp_result *r = dbp__result_new();
  cr_assert_not_null(r);
  cr_assert_eq(dbp__result_set_columns(r, N, cols), 0);
  dbp_row row = mkrow(N, v, l);
  for (int k = 0; k < 5; k++) cr_assert_eq(dbp__result_add_row(r, &row, 0), 0);
  cr_expect_str_eq(dbp_result_column(r, N - 1)->name, "col_299");
  cr_expect_str_eq(dbp_result_value(r, 4, N - 1, NULL), "col_299");
  cr_expect_str_eq(dbp_result_value(r, 0, 0, NULL), "col_0");
  dbp_result_free(r);
}
