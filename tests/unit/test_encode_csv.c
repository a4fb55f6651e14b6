/* CSV encoder: exact bytes, following PostgreSQL's COPY (FORMAT csv). The
 * expected strings were checked against COPY ... TO STDOUT on PostgreSQL 15. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe/export.h"
#include "enctest.h"

#define V(s) s, sizeof(s) - 1
#define NUL NULL, 0

static const dbp_column text2[] = {{"a", DBP_T_TEXT, "text", 25}, {"b", DBP_T_TEXT, "text", 25}};

/* One row of two values per call. */
static void check2(const dbp_encode_options *o, const char *a, size_t alen, const char *b,
                   size_t blen, const char *want, size_t wantlen) {
  const char *vals[] = {a, b};
  size_t lens[] = {alen, blen}, n;
  char *got = dbt_encode(o, text2, 2, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, want, wantlen);
  free(got);
}

static const dbp_encode_options csv = {.format = DBP_FMT_CSV};

Test(encode_csv, plain_values_unquoted) {
  check2(&csv, V("hello"), V("world 42"), V("a,b\nhello,world 42\n"));
}

Test(encode_csv, null_is_empty_and_empty_string_is_quoted) {
  check2(&csv, NUL, V(""), V("a,b\n,\"\"\n"));
}

Test(encode_csv, delimiter_quote_cr_lf_force_quotes) {
  check2(&csv, V("x,y"), V("say \"hi\""), V("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n"));
  check2(&csv, V("line1\nline2"), V("cr\r"), V("a,b\n\"line1\nline2\",\"cr\r\"\n"));
  check2(&csv, V("\r\n"), V("\""), V("a,b\n\"\r\n\",\"\"\"\"\n"));
}

Test(encode_csv, long_values_found_by_the_word_scan) {
  /* The special byte sits past the first eight-byte words. */
  check2(&csv, V("0123456789abcdefghij,"), V("0123456789abcdefghij"),
         V("a,b\n\"0123456789abcdefghij,\",0123456789abcdefghij\n"));
  check2(&csv, V("0123456789abcdef\"0123"), V("0123456789abcdefgh\n"),
         V("a,b\n\"0123456789abcdef\"\"0123\",\"0123456789abcdefgh\n\"\n"));
}

Test(encode_csv, backslashes_tabs_and_unicode_pass_through) {
  check2(&csv, V("C:\\Users\\bea\\"), V("col1\tcol2"), V("a,b\nC:\\Users\\bea\\,col1\tcol2\n"));
  check2(&csv, V("Zoë 😀 山田"), V("\\N"), V("a,b\nZoë 😀 山田,\\N\n"));
}

Test(encode_csv, lone_backslash_dot_quoted_only_in_single_column_rows) {
  /* COPY quotes \. when it is the only field of a line (the end marker). */
  check2(&csv, V("\\."), V("x"), V("a,b\n\\.,x\n"));
  static const dbp_column one[] = {{"a", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"\\.", NULL, ""};
  size_t lens[] = {2, 0, 0}, n;
  char *got = dbt_encode(&csv, one, 1, 3, vals, lens, &n);
  dbt_expect_bytes(got, n, V("a\n\"\\.\"\n\n\"\"\n"));
  free(got);
}

Test(encode_csv, header_names_follow_the_same_rules) {
  static const dbp_column cols[] = {{"id", DBP_T_INTEGER, "int4", 23},
                                    {"a,b", DBP_T_TEXT, "text", 25},
                                    {"say \"x\"", DBP_T_TEXT, "text", 25},
                                    {"Größe", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"1", "2", "3", "4"};
  size_t lens[] = {1, 1, 1, 1}, n;
  char *got = dbt_encode(&csv, cols, 4, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("id,\"a,b\",\"say \"\"x\"\"\",Größe\n1,2,3,4\n"));
  free(got);
}

Test(encode_csv, numbers_booleans_and_special_floats_as_the_server_wrote_them) {
  static const dbp_column cols[] = {
      {"i", DBP_T_INTEGER, "int8", 20},  {"n", DBP_T_NUMERIC, "numeric", 1700},
      {"f", DBP_T_FLOAT, "float8", 701}, {"g", DBP_T_FLOAT, "float8", 701},
      {"b", DBP_T_BOOL, "bool", 16},     {"c", DBP_T_BOOL, "bool", 16}};
  const char *vals[] = {"-9223372036854775808", "9999999999.99", "NaN", "-Infinity", "t", "f"};
  size_t lens[6], n;
  for (int i = 0; i < 6; i++) lens[i] = strlen(vals[i]);
  char *got = dbt_encode(&csv, cols, 6, 1, vals, lens, &n);
  dbt_expect_bytes(got, n,
                   V("i,n,f,g,b,c\n-9223372036854775808,9999999999.99,NaN,-Infinity,t,f\n"));
  free(got);
}

Test(encode_csv, binary_values_are_backslash_x_lowercase_hex) {
  static const dbp_column cols[] = {{"raw", DBP_T_BYTES, "bytea", 17},
                                    {"empty", DBP_T_BYTES, "bytea", 17},
                                    {"n", DBP_T_BYTES, "bytea", 17}};
  const char *vals[] = {"\x00\xff\x0a\x0d\x2c\x22\x5c\x09", "", NULL};
  size_t lens[] = {8, 0, 0}, n;
  char *got = dbt_encode(&csv, cols, 3, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("raw,empty,n\n\\x00ff0a0d2c225c09,\\x,\n"));
  free(got);
}

Test(encode_csv, no_header) {
  dbp_encode_options o = {.format = DBP_FMT_CSV, .no_header = true};
  check2(&o, V("1"), V("2"), V("1,2\n"));
}

Test(encode_csv, other_delimiter) {
  dbp_encode_options o = {.format = DBP_FMT_CSV, .delimiter = ';'};
  check2(&o, V("a,b"), V("c;d"), V("a;b\na,b;\"c;d\"\n"));
  dbp_encode_options tab = {.format = DBP_FMT_CSV, .delimiter = '\t'};
  check2(&tab, V("a\tb"), V("c,d"), V("a\tb\n\"a\tb\"\tc,d\n"));
}

Test(encode_csv, null_string_written_bare_and_equal_values_quoted) {
  dbp_encode_options o = {.format = DBP_FMT_CSV, .null_string = "NULL"};
  check2(&o, NUL, V("NULL"), V("a,b\nNULL,\"NULL\"\n"));
  /* With a non-empty NULL string the empty string needs no quotes. */
  check2(&o, V(""), V("NULLS"), V("a,b\n,NULLS\n"));
}

Test(encode_csv, crlf_line_ends) {
  dbp_encode_options o = {.format = DBP_FMT_CSV, .crlf = true};
  check2(&o, V("x"), V("two\nlines"), V("a,b\r\nx,\"two\nlines\"\r\n"));
}

Test(encode_csv, zero_rows_is_just_the_header) {
  size_t n;
  char *got = dbt_encode(&csv, text2, 2, 0, NULL, NULL, &n);
  dbt_expect_bytes(got, n, V("a,b\n"));
  free(got);
}

Test(encode_csv, options_copy_would_reject_are_refused) {
  dbp_encoder *e = NULL;
  dbp_encode_options o = {.format = DBP_FMT_CSV, .delimiter = '"'};
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  o.delimiter = '\n';
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  o.delimiter = (char)0xC3;
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  o.delimiter = 0;
  o.null_string = "a,b";
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  o.null_string = "\"";
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  o.null_string = "x\ny";
  cr_expect_eq(dbp_encoder_new(&o, text2, 2, &e), DBP_EINVAL);
  cr_expect_null(e);
}

Test(encode_csv, row_with_the_wrong_column_count_is_refused) {
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(&csv, text2, 2, &e), 0);
  const char *vals[] = {"x"};
  size_t lens[] = {1};
  dbp_row row = {1, vals, lens};
  cr_expect_eq(dbp_encoder_row(e, &row, &b), DBP_EINVAL);
  cr_expect_eq(b.len, 0);
  dbp_encoder_free(e);
  dbp_buf_free(&b);
}

Test(encode_csv, encoder_keeps_its_own_copy_of_the_columns) {
  char name[8] = "first";
  dbp_column cols[] = {{name, DBP_T_TEXT, "text", 25}};
  dbp_encoder *e = NULL;
  cr_assert_eq(dbp_encoder_new(&csv, cols, 1, &e), 0);
  strcpy(name, "XXXXX");
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_header(e, &b), 0);
  dbt_expect_bytes(b.data, b.len, V("first\n"));
  dbp_encoder_free(e);
  dbp_buf_free(&b);
}

Test(encode_csv, many_rows_append_to_one_buffer) {
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(&(dbp_encode_options){.format = DBP_FMT_CSV, .no_header = true},
                               text2, 2, &e),
               0);
  for (int i = 0; i < 10000; i++) {
    char num[16];
    int k = snprintf(num, sizeof num, "%d", i);
    const char *vals[] = {num, "x,y"};
    size_t lens[] = {(size_t)k, 3};
    dbp_row row = {2, vals, lens};
    cr_assert_eq(dbp_encoder_row(e, &row, &b), 0);
  }
  dbp_encoder_free(e);
  /* Row i is "i,\"x,y\"\n": 7 bytes plus the digits. */
  size_t want = 0;
  for (int i = 0; i < 10000; i++) want += 7 + (size_t)snprintf(NULL, 0, "%d", i);
  cr_expect_eq(b.len, want);
  cr_expect(memcmp(b.data + b.len - 11, "9999,\"x,y\"\n", 11) == 0);
  cr_expect(memcmp(b.data, "0,\"x,y\"\n1,\"x,y\"\n", 16) == 0);
  dbp_buf_free(&b);
}
