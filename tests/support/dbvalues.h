/* Small helpers of the connection tests: text parameters and single
 * values. */
#ifndef DBPIPE_TESTS_DBVALUES_H
#define DBPIPE_TESTS_DBVALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "dbpipe.h"

/* A text parameter; NULL is SQL NULL. */
dbp_param dbt_param(const char *s);
/* True when value i of the row is exactly the C string s. */
bool dbt_val_is(const dbp_row *r, size_t i, const char *s);
/* Runs a query of one row and one column and copies the value (truncated
 * to len - 1 bytes, "" for NULL) into out. Returns 0, the call's error, or
 * DBP_EPROTO when the result has no row or more than one. */
int dbt_one_value(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, char *out,
                  size_t len);

#endif /* DBPIPE_TESTS_DBVALUES_H */
