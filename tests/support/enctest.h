/* Helpers for the encoders' golden tests. */
#ifndef DBPIPE_TESTS_ENCTEST_H
#define DBPIPE_TESTS_ENCTEST_H

#include <stddef.h>

#include "dbpipe/export.h"

/* Encodes the header (unless opts says none) and `nrows` rows of `ncols`
 * values given as (pointer, length) pairs; returns the bytes, NUL-ended,
 * for the caller to free, and their length in *outlen. */
char *dbt_encode(const dbp_encode_options *opts, const dbp_column *cols, size_t ncols, size_t nrows,
                 const char *const *vals, const size_t *lens, size_t *outlen);

/* Asserts that got[0..gotlen) is exactly want[0..wantlen), showing both. */
void dbt_expect_bytes(const char *got, size_t gotlen, const char *want, size_t wantlen);

#endif /* DBPIPE_TESTS_ENCTEST_H */
