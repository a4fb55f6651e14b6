/* Small helpers of the connection tests. */
#include "dbvalues.h"

#include <string.h>

dbp_param dbt_param(const char *s) {
  return (dbp_param){s, s ? strlen(s) : 0};
}

bool dbt_val_is(const dbp_row *r, size_t i, const char *s) {
  return r->vals[i] != NULL && r->lens[i] == strlen(s) && memcmp(r->vals[i], s, r->lens[i]) == 0;
}

int dbt_one_value(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, char *out,
                  size_t len) {
  int rc = dbp_query(c, sql, np, ps, 10000);
  if (rc != 0) return rc;
  dbp_row row;
  rc = dbp_fetch(c, &row);
  if (rc != 1) return rc < 0 ? rc : DBP_EPROTO;
  size_t n = row.vals[0] ? row.lens[0] : 0;
  if (n >= len) n = len - 1;
  memcpy(out, row.vals[0] ? row.vals[0] : "", n);
  out[n] = '\0';
  rc = dbp_fetch(c, &row);
  return rc == 0 ? 0 : (rc < 0 ? rc : DBP_EPROTO);
}
