/* JSON Lines encoder: exact bytes for every kind of column. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe/export.h"
#include "enctest.h"

#define V(s) s, sizeof(s) - 1

/* Encodes one row of one column of type `t` holding v[0..n) (NULL: SQL NULL)
 * and compares the whole line with `want`. */
static void check1(dbp_type t, const char *v, size_t n, const char *want, size_t wantlen) {
  dbp_column col = {"v", t, "x", 0};
  dbp_encode_options o = {.format = DBP_FMT_JSONL};
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(&o, &col, 1, &e), 0);
  cr_assert_eq(dbp_encoder_header(e, &b), 0);
  cr_assert_eq(b.len, 0, "JSON Lines has no header");
  const char *vals[] = {v};
  size_t lens[] = {n};
  dbp_row row = {1, vals, lens};
  cr_assert_eq(dbp_encoder_row(e, &row, &b), 0);
  dbt_expect_bytes(b.data, b.len, want, wantlen);
  dbp_encoder_free(e);
  dbp_buf_free(&b);
}

Test(encode_jsonl, null_is_null_for_every_type) {
  for (int t = DBP_T_INTEGER; t <= DBP_T_OTHER; t++)
    check1((dbp_type)t, NULL, 0, V("{\"v\":null}\n"));
}

Test(encode_jsonl, integers_and_numerics_keep_the_servers_digits) {
  check1(DBP_T_INTEGER, V("42"), V("{\"v\":42}\n"));
  check1(DBP_T_INTEGER, V("-9223372036854775808"), V("{\"v\":-9223372036854775808}\n"));
  check1(DBP_T_NUMERIC, V("9999999999.99"), V("{\"v\":9999999999.99}\n"));
  check1(DBP_T_NUMERIC, V("123456789012345678901234567890.000000000000000000001"),
         V("{\"v\":123456789012345678901234567890.000000000000000000001}\n"));
  check1(DBP_T_NUMERIC, V("-0.50"), V("{\"v\":-0.50}\n"));
  check1(DBP_T_NUMERIC, V("0"), V("{\"v\":0}\n"));
}

Test(encode_jsonl, nan_and_infinities_become_strings) {
  check1(DBP_T_NUMERIC, V("NaN"), V("{\"v\":\"NaN\"}\n"));
  check1(DBP_T_NUMERIC, V("Infinity"), V("{\"v\":\"Infinity\"}\n"));
  check1(DBP_T_FLOAT, V("-Infinity"), V("{\"v\":\"-Infinity\"}\n"));
  check1(DBP_T_FLOAT, V("NaN"), V("{\"v\":\"NaN\"}\n"));
  check1(DBP_T_FLOAT, V("inf"), V("{\"v\":\"inf\"}\n"));
}

Test(encode_jsonl, floats_are_numbers_when_the_digits_are_valid_json) {
  check1(DBP_T_FLOAT, V("4.875"), V("{\"v\":4.875}\n"));
  check1(DBP_T_FLOAT, V("1e+300"), V("{\"v\":1e+300}\n"));
  check1(DBP_T_FLOAT, V("1.5e-05"), V("{\"v\":1.5e-05}\n"));
  check1(DBP_T_FLOAT, V("-0"), V("{\"v\":-0}\n"));
  check1(DBP_T_FLOAT, V(".5"), V("{\"v\":\".5\"}\n"));
  check1(DBP_T_FLOAT, V("1."), V("{\"v\":\"1.\"}\n"));
  check1(DBP_T_FLOAT, V("01"), V("{\"v\":\"01\"}\n"));
  check1(DBP_T_FLOAT, V("1e"), V("{\"v\":\"1e\"}\n"));
  check1(DBP_T_FLOAT, V(""), V("{\"v\":\"\"}\n"));
  check1(DBP_T_NUMERIC, V("$1.00"), V("{\"v\":\"$1.00\"}\n"));
}

Test(encode_jsonl, booleans) {
  check1(DBP_T_BOOL, V("t"), V("{\"v\":true}\n"));
  check1(DBP_T_BOOL, V("f"), V("{\"v\":false}\n"));
  check1(DBP_T_BOOL, V("maybe"), V("{\"v\":\"maybe\"}\n"));
}

Test(encode_jsonl, json_columns_are_embedded) {
  check1(DBP_T_JSON, V("{\"color\": \"red\", \"sizes\": [\"S\", \"M\"]}"),
         V("{\"v\":{\"color\": \"red\", \"sizes\": [\"S\", \"M\"]}}\n"));
  check1(DBP_T_JSON, V("[]"), V("{\"v\":[]}\n"));
  check1(DBP_T_JSON, V("{}"), V("{\"v\":{}}\n"));
  check1(DBP_T_JSON, V("\"just a string\""), V("{\"v\":\"just a string\"}\n"));
  check1(DBP_T_JSON, V("-1.5e3"), V("{\"v\":-1.5e3}\n"));
  check1(DBP_T_JSON, V("null"), V("{\"v\":null}\n"));
  check1(DBP_T_JSON, V("{\"a\":{\"b\":[1,true,false,null,\"\\u00e9\\n\"]}}"),
         V("{\"v\":{\"a\":{\"b\":[1,true,false,null,\"\\u00e9\\n\"]}}}\n"));
}

Test(encode_jsonl, json_line_breaks_between_tokens_become_spaces) {
  /* PostgreSQL's json type keeps the text as entered, newlines included. */
  check1(DBP_T_JSON, V("{\"a\":\r\n  1,\n\"b\": \"x\"}\n"),
         V("{\"v\":{\"a\":    1, \"b\": \"x\"} }\n"));
}

Test(encode_jsonl, invalid_json_is_written_as_a_string) {
  check1(DBP_T_JSON, V("{\"a\":}"), V("{\"v\":\"{\\\"a\\\":}\"}\n"));
  check1(DBP_T_JSON, V("[1,2"), V("{\"v\":\"[1,2\"}\n"));
  check1(DBP_T_JSON, V("[1]x"), V("{\"v\":\"[1]x\"}\n"));
  check1(DBP_T_JSON, V("{\"a\" 1}"), V("{\"v\":\"{\\\"a\\\" 1}\"}\n"));
  check1(DBP_T_JSON, V("\"raw\ttab\""), V("{\"v\":\"\\\"raw\\ttab\\\"\"}\n"));
  check1(DBP_T_JSON, V(""), V("{\"v\":\"\"}\n"));
}

Test(encode_jsonl, deeply_nested_json_within_the_limit_is_embedded) {
  char in[2 * 1000 + 1];
  memset(in, '[', 1000);
  memset(in + 1000, ']', 1000);
  in[2000] = '\0';
  char want[2000 + 16];
  snprintf(want, sizeof want, "{\"v\":%s}\n", in);
  check1(DBP_T_JSON, in, 2000, want, strlen(want));
}

Test(encode_jsonl, strings_escape_quotes_backslashes_and_controls) {
  check1(DBP_T_TEXT, V("say \"hi\" C:\\dir"), V("{\"v\":\"say \\\"hi\\\" C:\\\\dir\"}\n"));
  check1(DBP_T_TEXT, V("\b\f\n\r\t"), V("{\"v\":\"\\b\\f\\n\\r\\t\"}\n"));
  check1(DBP_T_TEXT,
         V("a\x01"
           "b\x1f"
           "c\x7f"),
         V("{\"v\":\"a\\u0001b\\u001fc\x7f\"}\n"));
  check1(DBP_T_TEXT, V("nul\0byte"), V("{\"v\":\"nul\\u0000byte\"}\n"));
  check1(DBP_T_TEXT, V(""), V("{\"v\":\"\"}\n"));
  check1(DBP_T_TEXT, V("0123456789abcdef\"0123456789abcdef\n"),
         V("{\"v\":\"0123456789abcdef\\\"0123456789abcdef\\n\"}\n"));
}

Test(encode_jsonl, valid_utf8_passes_through) {
  check1(DBP_T_TEXT, V("Zoë 山田 😀 Ωμέγα أحمد"), V("{\"v\":\"Zoë 山田 😀 Ωμέγα أحمد\"}\n"));
  check1(DBP_T_TEXT, V("\xef\xbf\xbf\xf4\x8f\xbf\xbf"),
         V("{\"v\":\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}\n"));
}

#define FFFD "\xef\xbf\xbd"

Test(encode_jsonl, invalid_utf8_is_replaced_by_u_fffd) {
  check1(DBP_T_TEXT, V("a\x80z"), V("{\"v\":\"a" FFFD "z\"}\n"));      /* lone continuation */
  check1(DBP_T_TEXT, V("a\xc3"), V("{\"v\":\"a" FFFD "\"}\n"));        /* truncated at end */
  check1(DBP_T_TEXT, V("\xe6\x97z"), V("{\"v\":\"" FFFD "z\"}\n"));    /* truncated 3-byte */
  check1(DBP_T_TEXT, V("\xc0\xaf"), V("{\"v\":\"" FFFD FFFD "\"}\n")); /* overlong */
  check1(DBP_T_TEXT, V("\xed\xa0\x80"), V("{\"v\":\"" FFFD FFFD FFFD "\"}\n")); /* surrogate */
  check1(DBP_T_TEXT, V("\xf4\x90\x80\x80"), V("{\"v\":\"" FFFD FFFD FFFD FFFD "\"}\n"));
  check1(DBP_T_TEXT, V("\xf0\x9f\x98"), V("{\"v\":\"" FFFD "\"}\n")); /* cut emoji */
  check1(DBP_T_TEXT, V("\xff\xfe"), V("{\"v\":\"" FFFD FFFD "\"}\n"));
}

Test(encode_jsonl, binary_is_an_escaped_hex_string) {
  check1(DBP_T_BYTES, V("\x00\xff\x0a"), V("{\"v\":\"\\\\x00ff0a\"}\n"));
  check1(DBP_T_BYTES, V(""), V("{\"v\":\"\\\\x\"}\n"));
}

Test(encode_jsonl, dates_times_and_other_types_are_strings) {
  check1(DBP_T_DATE, V("2024-02-29"), V("{\"v\":\"2024-02-29\"}\n"));
  check1(DBP_T_TIME, V("23:59:59"), V("{\"v\":\"23:59:59\"}\n"));
  check1(DBP_T_TIMESTAMP, V("2023-01-05 09:12:00+00"), V("{\"v\":\"2023-01-05 09:12:00+00\"}\n"));
  check1(DBP_T_OTHER, V("{1,2}"), V("{\"v\":\"{1,2}\"}\n"));
}

Test(encode_jsonl, keys_in_column_order_escaped_and_crlf) {
  static const dbp_column cols[] = {{"id", DBP_T_INTEGER, "int4", 23},
                                    {"say \"x\"", DBP_T_TEXT, "text", 25},
                                    {"Größe\n", DBP_T_BOOL, "bool", 16}};
  dbp_encode_options o = {.format = DBP_FMT_JSONL, .crlf = true};
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(&o, cols, 3, &e), 0);
  const char *vals[] = {"7", "", "f", "8", NULL, "t"};
  size_t lens[] = {1, 0, 1, 1, 0, 1};
  for (int r = 0; r < 2; r++) {
    dbp_row row = {3, vals + 3 * r, lens + 3 * r};
    cr_assert_eq(dbp_encoder_row(e, &row, &b), 0);
  }
  dbt_expect_bytes(b.data, b.len,
                   V("{\"id\":7,\"say \\\"x\\\"\":\"\",\"Größe\\n\":false}\r\n"
                     "{\"id\":8,\"say \\\"x\\\"\":null,\"Größe\\n\":true}\r\n"));
  dbp_encoder_free(e);
  dbp_buf_free(&b);
}

Test(encode_jsonl, zero_columns_is_an_empty_object) {
  dbp_encode_options o = {.format = DBP_FMT_JSONL};
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(&o, NULL, 0, &e), 0);
  dbp_row row = {0, NULL, NULL};
  cr_assert_eq(dbp_encoder_row(e, &row, &b), 0);
  dbt_expect_bytes(b.data, b.len, V("{}\n"));
  dbp_encoder_free(e);
  dbp_buf_free(&b);
}
