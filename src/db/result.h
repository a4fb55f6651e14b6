/* Internal: building a dbp_result (db.h) row by row. Not installed.
 *
 * A result owns everything it hands out: its columns (names and type names
 * copied) and every value, each followed by a NUL byte. Values live in
 * chunks that never move once written, so pointers handed out by
 * dbp_result_value stay valid until dbp_result_free. */
#ifndef DBPIPE_DB_RESULT_H
#define DBPIPE_DB_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "dbpipe/db.h"

/* The default bound on the bytes of values a result may hold. */
#define DBP__RESULT_MAX_BYTES ((size_t)64 << 20)

/* A new empty result (no columns, no rows, affected 0), or NULL when out
 * of memory. */
dbp_result *dbp__result_new(void);
/* Sets the columns (copied). Only before the first row. 0 or DBP_ENOMEM. */
int dbp__result_set_columns(dbp_result *r, size_t n, const dbp_column *cols);
/* Appends a copy of `row` (row->ncols must equal the columns set). The
 * bytes of values held so far plus this row's may not exceed max_bytes
 * (0: DBP__RESULT_MAX_BYTES): DBP_ETOOBIG then, and nothing is appended.
 * 0, DBP_ETOOBIG, DBP_EINVAL (wrong column count) or DBP_ENOMEM. */
int dbp__result_add_row(dbp_result *r, const dbp_row *row, size_t max_bytes);
void dbp__result_set_affected(dbp_result *r, int64_t n);

#endif /* DBPIPE_DB_RESULT_H */
