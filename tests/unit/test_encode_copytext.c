/* Reading COPY output: the fields of the text format with every escape
 * COPY's reader accepts. */
#include <criterion/criterion.h>
#include <string.h>

#include "export/export_int.h"

static void split(const char *line, size_t ncols, const char **vals, size_t *lens, dbp_buf *scratch,
                  int want_rc) {
  cr_assert_eq(dbp__copytext_split(line, strlen(line), ncols, vals, lens, scratch), want_rc, "%s",
               line);
}

Test(copytext, text_fields_nulls_and_escapes) {
  const char *vals[6];
  size_t lens[6];
  dbp_buf scratch = {0};
  split("1\t\\N\t\tplain\ta\\tb\\\\c\\nd\t\\\\N", 6, vals, lens, &scratch, 0);
  cr_expect(lens[0] == 1 && memcmp(vals[0], "1", 1) == 0);
  cr_expect_null(vals[1], "\\N alone is NULL");
  cr_expect(vals[2] != NULL && lens[2] == 0, "empty is not NULL");
  cr_expect(lens[3] == 5 && memcmp(vals[3], "plain", 5) == 0);
  cr_expect(lens[4] == 7 && memcmp(vals[4], "a\tb\\c\nd", 7) == 0);
  cr_expect(lens[5] == 2 && memcmp(vals[5], "\\N", 2) == 0, "an escaped \\N is text");
  dbp_buf_free(&scratch);
}

Test(copytext, every_escape_copy_reads) {
  const char *vals[1];
  size_t lens[1];
  dbp_buf scratch = {0};
  split("\\b\\f\\n\\r\\t\\v\\101\\x42\\x4\\z\\\\x41\\", 1, vals, lens, &scratch, 0);
  const char want[] = "\b\f\n\r\t\vAB\x04z\\x41\\";
  cr_expect_eq(lens[0], sizeof want - 1);
  cr_expect(memcmp(vals[0], want, sizeof want - 1) == 0);
  dbp_buf_free(&scratch);
}

Test(copytext, wrong_field_counts_are_protocol_errors) {
  const char *vals[3];
  size_t lens[3];
  dbp_buf scratch = {0};
  split("a\tb", 3, vals, lens, &scratch, DBP_EPROTO);
  split("a\tb\tc\td", 3, vals, lens, &scratch, DBP_EPROTO);
  split("", 0, vals, lens, &scratch, 0);
  split("x", 0, vals, lens, &scratch, DBP_EPROTO);
  split("", 1, vals, lens, &scratch, 0);
  cr_expect(vals[0] != NULL && lens[0] == 0);
  dbp_buf_free(&scratch);
}

Test(copytext, long_fields_past_the_word_scan) {
  const char *vals[2];
  size_t lens[2];
  dbp_buf scratch = {0};
  split("0123456789abcdef0123456789\t0123456789abcdef\\\\0123456789", 2, vals, lens, &scratch, 0);
  cr_expect(lens[0] == 26);
  cr_expect(lens[1] == 27 && memcmp(vals[1], "0123456789abcdef\\0123456789", 27) == 0);
  dbp_buf_free(&scratch);
}
