/* dbpipe task settings: the one parser of what a task may be told, shared
 * by job files (a task's keys and `defaults:`) and the command line
 * (`dbpipe export --max-rows 1000` is the setting max_rows with the value
 * "1000").
 *
 * A front applies settings by key and text value with dbp_task_set (and
 * dbp_task_set_default for values a task inherits), then calls
 * dbp_task_finish once, which decides what depends on several settings
 * (format and compression against the output path, the compression level
 * against the compression) and reports the settings that do not go
 * together. Every failure comes with a reason that names neither the front
 * nor the setting ("a number from 0 to 100"), so that each front can frame it
 * the way its users read it:
 *
 *   job file:      job.yaml:7:14: task 't': 'retries' must be a number from 0 to 100, not '-1'
 *   command line:  dbpipe export: --retries: expected a number from 0 to 100, got '-1'
 *
 * Included by dbpipe/job.h, which defines dbp_job_task.
 */
#ifndef DBPIPE_SETTINGS_H
#define DBPIPE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dbp_job_task dbp_job_task;
typedef struct dbp_job_conn dbp_job_conn;
typedef struct dbp_job dbp_job;

/* Every setting, in the order of dbp_settings(). The task settings come
 * first (DBP_SET_TASK_COUNT of them); then those of a connection (pool,
 * snapshot) and of the whole job (snapshot, concurrency). */
typedef enum dbp_setting_id {
  DBP_SET_NAME,          /* name: the task's name */
  DBP_SET_QUERY,         /* query: the SQL to run */
  DBP_SET_TABLE,         /* table: a table to export whole */
  DBP_SET_TABLES,        /* tables: patterns of tables (a list; commas on the command line) */
  DBP_SET_EXCLUDE,       /* exclude: patterns of tables to leave out */
  DBP_SET_VIEWS,         /* views: true/false: patterns match views too */
  DBP_SET_WHERE,         /* where: an SQL filter for every table */
  DBP_SET_PARTITION_BY,  /* partition_by: the split column, or auto */
  DBP_SET_PARTITIONS,    /* partitions: split each table into this many parts */
  DBP_SET_CHUNK_ROWS,    /* chunk_rows: split each table into parts of this many rows */
  DBP_SET_TO,            /* to: the output path ("-" = standard output) */
  DBP_SET_FORMAT,        /* format: csv, tsv, jsonl */
  DBP_SET_COMPRESSION,   /* compression: none, gzip, zstd */
  DBP_SET_LEVEL,         /* level: the compression level */
  DBP_SET_HEADER,        /* header: true/false */
  DBP_SET_DELIMITER,     /* delimiter: one character, or "tab" */
  DBP_SET_NULL,          /* null: how SQL NULL is written */
  DBP_SET_CRLF,          /* crlf: true/false */
  DBP_SET_MAX_ROWS,      /* max_rows: split after this many rows; 0 = never */
  DBP_SET_MAX_BYTES,     /* max_bytes: split at this size; 0 = never */
  DBP_SET_TIMEOUT,       /* timeout: per attempt; 0 or none = no limit */
  DBP_SET_IDLE_TIMEOUT,  /* idle_timeout: longest silence of the server */
  DBP_SET_RETRIES,       /* retries: extra attempts for retryable errors */
  DBP_SET_RETRY_BACKOFF, /* retry_backoff: the first delay; doubles each retry */
  DBP_SET_TASK_COUNT,
  DBP_SET_POOL = DBP_SET_TASK_COUNT, /* pool: a connection's pool size */
  DBP_SET_SNAPSHOT,                  /* snapshot: on, none, lock-free (a connection's or
                                      * the job's) */
  DBP_SET_CONCURRENCY,               /* concurrency: tasks running at once */
  DBP_SET_COUNT
} dbp_setting_id;

typedef enum dbp_setting_kind {
  DBP_SETTING_NAME,       /* a task name: letters, digits, '_', '-', '.' */
  DBP_SETTING_TEXT,       /* a string that is not empty (nor only spaces) */
  DBP_SETTING_STRING,     /* any string, "" included */
  DBP_SETTING_CHOICE,     /* one word of a list */
  DBP_SETTING_NUMBER,     /* a whole number in a range */
  DBP_SETTING_BOOL,       /* true/false, yes/no, on/off */
  DBP_SETTING_CHAR,       /* one character */
  DBP_SETTING_SIZE,       /* as dbp_parse_size reads it */
  DBP_SETTING_DURATION,   /* as dbp_parse_duration reads it */
  DBP_SETTING_TIME_LIMIT, /* a duration where 0 and "none" mean no limit */
} dbp_setting_kind;

typedef struct dbp_setting {
  dbp_setting_id id;
  const char *key; /* "max_rows": the job file's key; the command line writes '-' for '_' */
  dbp_setting_kind kind;
  bool in_defaults;   /* may be given under a job's `defaults:` */
  const char *expect; /* what a value must be, for messages: "a whole number" */
} dbp_setting;

/* The table of every setting, indexed by dbp_setting_id; *count gets
 * DBP_SET_COUNT when count is not NULL. */
DBP_EXTERN const dbp_setting *dbp_settings(size_t *count);
/* The setting called `key` ("max_rows"), or NULL. */
DBP_EXTERN const dbp_setting *dbp_setting_find(const char *key);

/* Where a task setting's value came from, in dbp_job_task.origin. */
typedef enum dbp_setting_origin {
  DBP_ORIGIN_UNSET = 0, /* not given: the default applies */
  DBP_ORIGIN_TASK,      /* given for the task itself (dbp_task_set) */
  DBP_ORIGIN_DEFAULT,   /* inherited (dbp_task_set_default) */
  DBP_ORIGIN_BAD        /* given, but its value was refused */
} dbp_setting_origin;

/* Makes *t an empty task with every default: no timeout, the default idle
 * timeout (DBP_DEFAULT_IO_TIMEOUT_MS) and retry backoff, format and
 * compression AUTO (to be decided by dbp_task_finish). */
DBP_EXTERN void dbp_task_init(dbp_job_task *t);
/* Frees the strings a task owns (name, query, table, the tables and
 * exclude patterns, where, partition_by, path, the null string) and leaves
 * it as dbp_task_init does. */
DBP_EXTERN void dbp_task_clear(dbp_job_task *t);

/* Applies the task setting `key` (a key of dbp_settings: "max_rows") with
 * the text `value` to *t, replacing what an earlier call set. Returns 0;
 * DBP_ENOENT when `key` is no task setting; DBP_EINVAL with the reason in
 * err when the value is refused (the reason says what the value must be or
 * what is wrong with it: "a whole number", "may only use letters, ..."; a
 * NULL value is refused with the setting's `expect`, so a front that could
 * not read a value at all can still mark the setting as given and bad);
 * DBP_ENOMEM. A refused value leaves the setting's origin DBP_ORIGIN_BAD,
 * which dbp_task_finish takes into account (no second, misleading error);
 * otherwise it becomes DBP_ORIGIN_TASK. err may be NULL. */
DBP_EXTERN int dbp_task_set(dbp_job_task *t, const char *key, const char *value, char *err,
                            size_t errlen);
/* The same for an inherited value (a job's `defaults:`): does nothing when
 * the task set the setting itself (or tried to), else applies it as
 * dbp_task_set does with origin DBP_ORIGIN_DEFAULT. */
DBP_EXTERN int dbp_task_set_default(dbp_job_task *t, const char *key, const char *value, char *err,
                                    size_t errlen);

/* A connection's settings ("pool": 1 to 1000; "snapshot": on, none,
 * lock-free, where true/yes stand for on and false/no/off for none) and a
 * job's ("concurrency": 1 to 10000; "snapshot"), parsed and reported as
 * dbp_task_set does. */
DBP_EXTERN int dbp_job_conn_set(dbp_job_conn *c, const char *key, const char *value, char *err,
                                size_t errlen);
DBP_EXTERN int dbp_job_set(dbp_job *job, const char *key, const char *value, char *err,
                           size_t errlen);

/* What dbp_task_finish found wrong. The reason is a whole clause except for
 * DBP_TASK_CONFLICT, whose reason follows the setting's name ("'level'
 * needs compression (gzip or zstd)", "--level needs compression ..."). */
typedef enum dbp_task_problem_code {
  DBP_TASK_FORMAT_MISMATCH,      /* format against the file name */
  DBP_TASK_COMPRESSION_MISMATCH, /* compression against the file name */
  DBP_TASK_UNKNOWN_ENDING,       /* a file name dbpipe does not write: the front says how
                                  * to give a format ("... with 'format:'") */
  DBP_TASK_LEVEL_RANGE,          /* level beyond what the compression allows */
  DBP_TASK_CONFLICT,             /* a setting that does not go with the others */
  DBP_TASK_BAD_TARGET,           /* what is at the path cannot be replaced by a file */
  DBP_TASK_SOURCE                /* none, or more than one, of query, table and tables
                                  * (setting: the query when none, else table or tables) */
} dbp_task_problem_code;

typedef struct dbp_task_problem {
  dbp_task_problem_code code;
  dbp_setting_id setting; /* the setting the problem is about */
  bool from_default;      /* that setting's value was inherited */
  const char *reason;     /* valid during the callback */
} dbp_task_problem;

typedef void (*dbp_task_report_fn)(void *ud, const dbp_task_problem *problem);

/* Finishes a task after every setting was applied: picks format and
 * compression from the output path (a given format or compression must
 * agree with the file name, a name whose ending dbpipe does not write
 * needs a format; standard output defaults to CSV, uncompressed), checks
 * the level against the compression (an inherited level is dropped without
 * compression), refuses what does not go together (delimiter, null or no
 * header with jsonl; splitting standard output; exclude and views without
 * tables; where, partition_by, partitions or chunk_rows with a query;
 * partitions with chunk_rows; partition_by without either; tables or a
 * split to standard output; tables without {table} in the path; {schema}
 * or {table} without tables; {part} without a split. An inherited setting
 * that does not apply is dropped instead, except `where`) and checks, without
 * changing anything, that the output path can become a file
 * (dbp_export_check_target; not for a path holding {schema}, {table} or
 * {part}, which names no file yet). Exactly one of query, table and tables
 * must be given (DBP_TASK_SOURCE otherwise). What depends on a setting whose value was
 * refused, or on a missing path, is not checked. Reports every problem in
 * order and returns 0, or DBP_EINVAL when it reported any. */
DBP_EXTERN int dbp_task_finish(dbp_job_task *t, dbp_task_report_fn report, void *ud);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_SETTINGS_H */
