/* Job files written inline by the engine tests. */
#include "jobtest.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

dbp_job *dbt_parse_job(const char *dir, const char *name, const char *fmt, ...) {
  char text[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  dbp_job_options jo = {.dir = dir};
  dbp_job *job = NULL;
  dbp_job_diag diag;
  int rc = dbp_job_parse(text, strlen(text), name, &jo, &job, &diag);
  if (rc != 0) {
    char buf[1024];
    for (size_t i = 0; i < diag.count; i++)
      cr_log_error("%s", dbp_job_diag_format(&diag, i, buf, sizeof buf));
    dbp_job_diag_free(&diag);
  }
  cr_assert_eq(rc, 0, "the job does not parse:\n%s", text);
  return job;
}
