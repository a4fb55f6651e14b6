/* Helpers for the encoders' golden tests: see enctest.h. */
#include "enctest.h"

#include <criterion/criterion.h>
#include <string.h>

char *dbt_encode(const dbp_encode_options *opts, const dbp_column *cols, size_t ncols, size_t nrows,
                 const char *const *vals, const size_t *lens, size_t *outlen) {
  dbp_encoder *e = NULL;
  dbp_buf b = {0};
  cr_assert_eq(dbp_encoder_new(opts, cols, ncols, &e), 0);
  cr_assert_eq(dbp_encoder_header(e, &b), 0);
  for (size_t r = 0; r < nrows; r++) {
    dbp_row row = {ncols, vals + r * ncols, lens + r * ncols};
    cr_assert_eq(dbp_encoder_row(e, &row, &b), 0);
  }
  dbp_encoder_free(e);
  dbp_buf_append(&b, "", 1);
  *outlen = b.len - 1;
  return b.data;
}

void dbt_expect_bytes(const char *got, size_t gotlen, const char *want, size_t wantlen) {
  cr_assert(gotlen == wantlen && memcmp(got, want, wantlen) == 0,
            "got  [%.*s] (%zu bytes)\nwant [%.*s] (%zu bytes)", (int)gotlen, got, gotlen,
            (int)wantlen, want, wantlen);
}
