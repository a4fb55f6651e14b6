/* dbp_buf: the one growable buffer. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbpipe.h"

Test(buf, appends_keep_a_terminating_nul) {
  dbp_buf b = {0};
  cr_assert_str_eq(dbp_buf_str(&b), "");
  cr_assert_eq(dbp_buf_puts(&b, "ab"), 0);
  cr_assert_eq(dbp_buf_append(&b, "cd", 2), 0);
  cr_assert_eq(b.len, 4);
  cr_assert_str_eq(b.data, "abcd");
  dbp_buf_free(&b);
  cr_assert_null(b.data);
  cr_assert_eq(b.len, 0);
}

Test(buf, printf_grows_past_the_free_room) {
  dbp_buf b = {0};
  cr_assert_eq(dbp_buf_printf(&b, "%d-%s", 7, "x"), 0);
  char big[3000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  cr_assert_eq(dbp_buf_printf(&b, "[%s]", big), 0);
  cr_assert_eq(b.len, 3 + 1 + sizeof big - 1 + 1);
  cr_assert_eq(strncmp(b.data, "7-x[zz", 6), 0);
  cr_assert_eq(b.data[b.len - 1], ']');
  cr_assert_eq(b.data[b.len], '\0');
  dbp_buf_free(&b);
}

Test(buf, json_escapes_controls_and_replaces_bad_utf8) {
  dbp_buf b = {0};
  cr_assert_eq(dbp_buf_json(&b, "a\"b\\c\n\t\x01\xff\xc3\xa9"), 0);
  cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\xEF\xBF\xBD\xc3\xa9\"");
  b.len = 0;
  cr_assert_eq(dbp_buf_json(&b, NULL), 0);
  cr_assert_str_eq(b.data, "null");
  dbp_buf_free(&b);
}

Test(buf, a_failed_allocation_sticks) {
  dbp_buf b = {0};
  cr_assert_eq(dbp_buf_puts(&b, "keep"), 0);
  cr_assert_eq(dbp_buf_reserve(&b, SIZE_MAX - 8), DBP_ENOMEM);
  cr_assert(b.oom);
  cr_assert_eq(dbp_buf_puts(&b, "more"), DBP_ENOMEM);
  cr_assert_eq(dbp_buf_printf(&b, "%d", 1), DBP_ENOMEM);
  cr_assert_str_eq(b.data, "keep");
  dbp_buf_free(&b);
  cr_assert_not(b.oom);
}

Test(buf, utf8_lengths) {
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"a", 1), 1);
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"\xc3\xa9", 1), 0);
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"\xc0\x80", 2), 0);       /* overlong */
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0);   /* surrogate */
  cr_assert_eq(dbp_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
}
