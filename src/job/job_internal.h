/* Internal helpers of the job-file loader. */
#ifndef DBPIPE_JOB_INTERNAL_H
#define DBPIPE_JOB_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbpipe/job.h"

/* Plain integers and booleans (true/false, yes/no, on/off). 0 or DBP_EINVAL. */
int dbp__parse_uint(const char *s, uint64_t max, uint64_t *out);
int dbp__parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
int dbp__parse_bool(const char *s, bool *out);

/* The one parser of time limits (timeout, idle timeout) for job files and
 * the command line: a duration as dbp_parse_duration reads it, where 0 and
 * "none" mean no limit (*ms = DBP_JOB_NO_TIMEOUT). 0 or DBP_EINVAL. */
int dbp__parse_time_limit(const char *s, int64_t *ms);

/* Grows an array that holds `count` elements of `size` bytes so that one
 * more fits, doubling its room (8, 16, 32, ...) instead of growing it by
 * one: appending n elements costs O(n) copying even where realloc always
 * moves. The room is implied by count, so every array grown this way must
 * only ever grow through it. Returns the (maybe moved) array, or NULL when
 * out of memory (the old one is then still valid). */
void *dbp__grow(void *array, size_t count, size_t size);

/* Receives one problem found in a string: `offset` is the byte offset in the
 * input string where the offending text starts. */
typedef void (*dbp__job_report_fn)(void *ud, size_t offset, const char *message);

/* Expands ${VAR}, ${VAR:-default} (default when unset or empty) and $$ (a
 * literal $) in `in`; any other $ stays as it is. Every problem (a missing
 * variable, a bad name, an unterminated ${) goes to `report`. Returns 0 with
 * a new string in *out, DBP_EJOB after reporting problems, or DBP_ENOMEM. */
int dbp__job_expand(const char *in, dbp_job_getenv_fn getenv_fn, void *getenv_ud, char **out,
                    dbp__job_report_fn report, void *report_ud);

/* Replaces {name} with `name` and {date} with `date` in `in`. With
 * `keep_runner`, {schema}, {table} and {part} stay as they are, for the
 * runner to fill in (dbp_task_finish checks where they may be). Any other
 * `{word}` is reported (as is {name} when `name` is NULL); other braces
 * stay. Returns 0 with a new string in *out, DBP_EJOB or DBP_ENOMEM. */
int dbp__job_templates(const char *in, const char *name, const char *date, bool keep_runner,
                       char **out, dbp__job_report_fn report, void *report_ud);

/* Whether a task's output path still holds {schema}, {table} or {part},
 * which the runner fills in. */
bool dbp__path_has_runner_templates(const char *path);

/* Checks offline that `where` is one SQL condition that the runner can put
 * into a table's query (SELECT ... WHERE (where) AND ...) in the dialect of
 * `kind`: no statement of its own after a ';', no quote or comment that
 * never ends. Returns 0, DBP_EINVAL with the reason in err (a clause:
 * "more than one statement ..."), or DBP_ENOMEM. */
int dbp__where_check(dbp_db_kind kind, const char *where, char *err, size_t errlen);

/* Appends a formatted message to the diagnostics. Returns 0 or DBP_ENOMEM. */
int dbp__job_diag_add(dbp_job_diag *d, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int dbp__job_diag_vadd(dbp_job_diag *d, int line, int column, const char *fmt, va_list ap);
/* Orders the diagnostics by position (stable). */
void dbp__job_diag_sort(dbp_job_diag *d);

/* A hash set of strings owned elsewhere, each with a number: keeps finding
 * duplicate task names and output paths linear in the number of tasks. */
typedef struct dbp__strset {
  const char **keys;
  size_t *vals;
  size_t cap, count; /* cap is 0 or a power of two */
} dbp__strset;

/* The number stored for `key`, or -1. */
long dbp__strset_find(const dbp__strset *set, const char *key);
/* Adds `key` (kept by pointer) with number `val`; a key already there keeps
 * its first number. Returns false when out of memory. */
bool dbp__strset_add(dbp__strset *set, const char *key, size_t val);
void dbp__strset_free(dbp__strset *set);

#endif /* DBPIPE_JOB_INTERNAL_H */
