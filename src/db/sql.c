/* Statement-level checks on SQL text, in each database's dialect. */
#include <stdio.h>

#include "dbpipe/db.h"

/* Placeholder until the statement splitter is built: accepts everything. */
int dbp_sql_check_single(dbp_db_kind kind, const char *sql, char *errbuf, size_t errlen) {
  (void)kind;
  (void)sql;
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  return 0;
}
