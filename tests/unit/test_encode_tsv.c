/* TSV encoder: PostgreSQL's text COPY format, exact bytes (checked against
 * COPY ... TO STDOUT (FORMAT text, HEADER) on PostgreSQL 15). */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe/export.h"
#include "enctest.h"

#define V(s) s, sizeof(s) - 1

static const dbp_encode_options tsv = {.format = DBP_FMT_TSV};

Test(encode_tsv, control_characters_backslash_null_and_empty) {
  static const dbp_column cols[] = {{"a", DBP_T_TEXT, "text", 25},
                                    {"b", DBP_T_TEXT, "text", 25},
                                    {"c", DBP_T_TEXT, "text", 25},
                                    {"d", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"\b\f\n\r\t\v", "x\x01y\\z\x7f", NULL, ""};
  size_t lens[] = {6, 6, 0, 0}, n;
  char *got = dbt_encode(&tsv, cols, 4, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("a\tb\tc\td\n\\b\\f\\n\\r\\t\\v\tx\x01y\\\\z\x7f\t\\N\t\n"));
  free(got);
}

Test(encode_tsv, long_values_escape_past_the_word_scan) {
  static const dbp_column cols[] = {{"a", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"0123456789abcdefgh\tij\\0123456789abcdefgh\n"};
  size_t lens[] = {strlen(vals[0])}, n;
  char *got = dbt_encode(&tsv, cols, 1, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("a\n0123456789abcdefgh\\tij\\\\0123456789abcdefgh\\n\n"));
  free(got);
}

Test(encode_tsv, unicode_and_punctuation_pass_through) {
  static const dbp_column cols[] = {{"Größe", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"Zoë \"Zee\" O'Brien, 😀 山田 | \\N"};
  size_t lens[] = {strlen(vals[0])}, n;
  char *got = dbt_encode(&tsv, cols, 1, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("Größe\nZoë \"Zee\" O'Brien, 😀 山田 | \\\\N\n"));
  free(got);
}

Test(encode_tsv, binary_text_form_is_escaped_like_text) {
  static const dbp_column cols[] = {{"e", DBP_T_BYTES, "bytea", 17},
                                    {"f", DBP_T_BYTES, "bytea", 17},
                                    {"g", DBP_T_BYTES, "bytea", 17}};
  const char *vals[] = {"AB", "", NULL};
  size_t lens[] = {2, 0, 0}, n;
  char *got = dbt_encode(&tsv, cols, 3, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("e\tf\tg\n\\\\x4142\t\\\\x\t\\N\n"));
  free(got);
}

Test(encode_tsv, numbers_and_booleans_as_the_server_wrote_them) {
  static const dbp_column cols[] = {{"n", DBP_T_NUMERIC, "numeric", 1700},
                                    {"f", DBP_T_FLOAT, "float4", 700},
                                    {"b", DBP_T_BOOL, "bool", 16}};
  const char *vals[] = {"-0.50", "Infinity", "t"};
  size_t lens[] = {5, 8, 1}, n;
  char *got = dbt_encode(&tsv, cols, 3, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("n\tf\tb\n-0.50\tInfinity\tt\n"));
  free(got);
}

Test(encode_tsv, header_names_are_escaped) {
  static const dbp_column cols[] = {{"c\\d", DBP_T_TEXT, "text", 25},
                                    {"t\tu", DBP_T_TEXT, "text", 25}};
  const char *vals[] = {"a\\b", "x"};
  size_t lens[] = {3, 1}, n;
  char *got = dbt_encode(&tsv, cols, 2, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("c\\\\d\tt\\tu\na\\\\b\tx\n"));
  free(got);
}

Test(encode_tsv, other_delimiter_and_null_string) {
  static const dbp_column cols[] = {{"x,y", DBP_T_TEXT, "text", 25}, {"n", DBP_T_TEXT, "text", 25}};
  dbp_encode_options o = {.format = DBP_FMT_TSV, .delimiter = ',', .null_string = ""};
  const char *vals[] = {"a,b\tc", NULL};
  size_t lens[] = {5, 0}, n;
  char *got = dbt_encode(&o, cols, 2, 1, vals, lens, &n);
  dbt_expect_bytes(got, n, V("x\\,y,n\na\\,b\\tc,\n"));
  free(got);
}

Test(encode_tsv, control_character_delimiter_is_backslashed) {
  static const dbp_column cols[] = {{"a", DBP_T_TEXT, "text", 25}};
  dbp_encode_options o = {.format = DBP_FMT_TSV, .delimiter = '\x01'};
  const char *vals[] = {
      "a\x01"
      "b\x02"};
  size_t lens[] = {4}, n;
  char *got = dbt_encode(&o, cols, 1, 1, vals, lens, &n);
  dbt_expect_bytes(got, n,
                   V("a\na\\\x01"
                     "b\x02\n"));
  free(got);
}

Test(encode_tsv, no_header_and_crlf) {
  static const dbp_column cols[] = {{"a", DBP_T_TEXT, "text", 25}, {"b", DBP_T_TEXT, "text", 25}};
  dbp_encode_options o = {.format = DBP_FMT_TSV, .no_header = true, .crlf = true};
  const char *vals[] = {"1", "two\nlines", "3", NULL};
  size_t lens[] = {1, 9, 1, 0}, n;
  char *got = dbt_encode(&o, cols, 2, 2, vals, lens, &n);
  dbt_expect_bytes(got, n, V("1\ttwo\\nlines\r\n3\t\\N\r\n"));
  free(got);
}

Test(encode_tsv, delimiters_the_escapes_need_are_refused) {
  static const dbp_column cols[] = {{"a", DBP_T_TEXT, "text", 25}};
  dbp_encoder *e = NULL;
  const char bad[] = {'\\', '.', 'a', 'n', 'x', '0', '9', '\r', '\n'};
  for (size_t i = 0; i < sizeof bad; i++) {
    dbp_encode_options o = {.format = DBP_FMT_TSV, .delimiter = bad[i]};
    cr_expect_eq(dbp_encoder_new(&o, cols, 1, &e), DBP_EINVAL, "delimiter 0x%02x", bad[i]);
  }
  dbp_encode_options o = {.format = DBP_FMT_TSV, .null_string = "a\tb"};
  cr_expect_eq(dbp_encoder_new(&o, cols, 1, &e), DBP_EINVAL);
  cr_expect_null(e);
}
