/* Job-file diagnostics: "FILE:LINE:COLUMN: message", collected in order. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

void *dbp__grow(void *array, size_t count, size_t size) {
  /* The room is 8 while count <= 8, then the next power of two. */
  bool full = count == 0 || (count >= 8 && (count & (count - 1)) == 0);
  if (array != NULL && !full) return array;
  size_t room = count < 8 ? 8 : count * 2;
  if (room > SIZE_MAX / size) return NULL;
  return realloc(array, room * size);
}

int dbp__job_diag_vadd(dbp_job_diag *d, int line, int column, const char *fmt, va_list ap) {
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) return DBP_ENOMEM;
  dbp_job_error *e = dbp__grow(d->errors, d->count, sizeof *e);
  if (e == NULL) {
    free(msg);
    return DBP_ENOMEM;
  }
  d->errors = e;
  d->errors[d->count++] = (dbp_job_error){.line = line, .column = column, .message = msg};
  return 0;
}

int dbp__job_diag_add(dbp_job_diag *d, int line, int column, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = dbp__job_diag_vadd(d, line, column, fmt, ap);
  va_end(ap);
  return rc;
}

static bool before(const dbp_job_error *a, const dbp_job_error *b) {
  return a->line < b->line || (a->line == b->line && a->column < b->column);
}

void dbp__job_diag_sort(dbp_job_diag *d) {
  /* A merge sort: stable, and n log n even when a generated job file has a
   * problem in each of its many thousand tasks. */
  if (d->count < 2) return;
  dbp_job_error *tmp = malloc(d->count * sizeof *tmp);
  if (tmp == NULL) {
    /* Out of memory: insertion sort in place, slower but still right. */
    for (size_t i = 1; i < d->count; i++) {
      dbp_job_error e = d->errors[i];
      size_t j = i;
      while (j > 0 && before(&e, &d->errors[j - 1])) {
        d->errors[j] = d->errors[j - 1];
        j--;
      }
      d->errors[j] = e;
    }
    return;
  }
  for (size_t width = 1; width < d->count; width *= 2) {
    for (size_t lo = 0; lo < d->count; lo += 2 * width) {
      size_t mid = lo + width < d->count ? lo + width : d->count;
      size_t hi = lo + 2 * width < d->count ? lo + 2 * width : d->count;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi)
        tmp[k++] = before(&d->errors[j], &d->errors[i]) ? d->errors[j++] : d->errors[i++];
      while (i < mid) tmp[k++] = d->errors[i++];
      while (j < hi) tmp[k++] = d->errors[j++];
    }
    memcpy(d->errors, tmp, d->count * sizeof *tmp);
  }
  free(tmp);
}

const char *dbp_job_diag_format(const dbp_job_diag *d, size_t i, char *buf, size_t len) {
  if (len == 0) return buf;
  buf[0] = '\0';
  if (i >= d->count) return buf;
  const dbp_job_error *e = &d->errors[i];
  const char *file = d->file != NULL ? d->file : "<job>";
  if (e->line > 0) {
    snprintf(buf, len, "%s:%d:%d: %s", file, e->line, e->column, e->message);
  } else {
    snprintf(buf, len, "%s: %s", file, e->message);
  }
  return buf;
}

void dbp_job_diag_free(dbp_job_diag *d) {
  if (d == NULL) return;
  for (size_t i = 0; i < d->count; i++) free(d->errors[i].message);
  free(d->errors);
  free(d->file);
  d->errors = NULL;
  d->file = NULL;
  d->count = 0;
}
