/* dbpipe job files: a YAML description of many exports, checked as a whole
 * before anything runs.
 *
 *   connections:
 *     pg: postgresql://app:${PG_PASSWORD}@127.0.0.1:5432/shop
 *     my: { dsn: "mysql://app:${MY_PASSWORD:-secret}@127.0.0.1/shop", pool: 2 }
 *   concurrency: 4
 *   manifest: out/manifest.json
 *   defaults: { compression: gzip, timeout: 10m, retries: 2 }
 *   tasks:
 *     - name: orders
 *       from: pg
 *       query: SELECT * FROM orders
 *       to: out/{name}-{date}.csv.gz
 *     - name: shop
 *       from: my
 *       tables: [shop.*, "odd,name".t]     (or one string: shop.*, other.*)
 *       exclude: shop.tmp_*
 *       partitions: 4
 *       to: out/{schema}.{table}.csv.zst
 *
 * `timeout:` and `idle_timeout:` take a duration; 0 or `none` means no
 * limit. `to: -` (standard output) is refused: tasks run side by side.
 * Every task key but `from` (and every key of `defaults:`) is a setting of
 * dbpipe/settings.h, read by the same parser as dbpipe export's options.
 *
 * Loading a job expands ${VAR} / ${VAR:-default} ($$ is a literal $) in
 * connection strings, queries, table names, output paths and the manifest
 * path; replaces the {name} and {date} templates in output and manifest
 * paths (keeping {schema}, {table} and {part} of a task's path for the
 * runner); resolves relative paths against the job file's directory; applies
 * `defaults:` to every task; and validates everything it can without touching
 * a database. Every problem found is collected with its 1-based line and
 * column, so a user sees all of them at once.
 *
 * `snapshot:` (on, none, lock-free; also true/yes as on and false/no/off
 * as none) may be given for the whole job and in a connection's mapping
 * form ({dsn:, pool:, snapshot:}); what is not given stays
 * DBP_JOB_SNAPSHOT_AUTO.
 *
 * A dbp_job holds connection strings with their passwords: never print
 * dbp_job_conn.dsn, print dbp_job_conn.dsn_redacted.
 */
#ifndef DBPIPE_JOB_H
#define DBPIPE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "db.h"
#include "export.h"
#include "pipeline.h"
#include "rt.h"
#include "settings.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- diagnostics ---- */

typedef struct dbp_job_error {
  int line, column; /* 1-based; 0 when the problem has no position */
  char *message;    /* "unknown key 'fromm' in task 'orders'" */
} dbp_job_error;

/* The problems found while loading a job file, in file order. */
typedef struct dbp_job_diag {
  char *file; /* the name given to the loader, for messages */
  size_t count;
  dbp_job_error *errors;
} dbp_job_diag;

/* Formats error i as "FILE:LINE:COLUMN: message" into buf. Returns buf. */
DBP_EXTERN const char *dbp_job_diag_format(const dbp_job_diag *d, size_t i, char *buf, size_t len);
/* Frees the messages; the struct itself may be reused. */
DBP_EXTERN void dbp_job_diag_free(dbp_job_diag *d);

/* ---- the loaded job ---- */

/* Whether the tasks of a run that read one database share one snapshot
 * (dbp_snapshot_begin): `snapshot:` of a job or a connection, --snapshot
 * of dbpipe export. */
typedef enum dbp_job_snapshot {
  DBP_JOB_SNAPSHOT_AUTO = 0, /* a connection: as the job says; a job: shared */
  DBP_JOB_SNAPSHOT_ON,       /* "on": one snapshot per database (the default) */
  DBP_JOB_SNAPSHOT_NONE,     /* "none": every task reads on its own */
  DBP_JOB_SNAPSHOT_LOCK_FREE /* "lock-free": MariaDB/MySQL without the commit lock
                              * (DBP_SNAPSHOT_LOCK_FREE: tasks may disagree) */
} dbp_job_snapshot;

typedef struct dbp_job_conn {
  char *name;         /* the key under connections: */
  char *dsn;          /* expanded; holds the password: never print it */
  char *dsn_redacted; /* safe to print */
  dbp_db_kind kind;
  size_t pool;               /* pool size; 0 = the runner's default */
  dbp_job_snapshot snapshot; /* AUTO (not given): the job's */
  int line, column;
} dbp_job_conn;

typedef struct dbp_job_task {
  char *name;
  size_t conn; /* index into dbp_job.conns */
  char *query; /* exactly one of query, table and tables is set */
  char *table; /* schema.table allowed, quoted by the runner */
  /* Whole tables found in the catalog (dbp_list_tables patterns): the run
   * makes one task of every table that matches an include pattern and no
   * exclude pattern; `views` lets views match too. Each pattern is as the
   * user wrote it between commas (quotes kept, spaces around it trimmed,
   * never empty); its syntax is the catalog's to check. exclude and views
   * are only set with tables (an inherited one is dropped otherwise). */
  char **tables;
  size_t ntables;
  char **exclude;
  size_t nexclude;
  bool views;
  /* An SQL filter added to the query of every table (table, tables); NULL
   * for none. Checked to be one condition with no ';' ending the statement
   * (put it inside "WHERE (\n" ... "\n)": it may end in a -- comment). */
  char *where;
  /* Splitting a table into parts read side by side (table, tables):
   * partitions (about that many parts of equal rows) or chunk_rows (parts
   * of about that many rows), at most one of them; 0 = not split.
   * partition_by names the split column; NULL = "auto" (the primary key).
   * All three only with table or tables, partition_by only with a split
   * (inherited ones that do not apply are dropped). */
  char *partition_by;
  size_t partitions;
  uint64_t chunk_rows;
  /* Output path: templates applied, resolved. Tasks with `tables` keep
   * {schema} and {table} ({table} is required), and split ones {part}
   * (optional: without it the parts are joined into one file), for the
   * runner to fill in (their values made safe for a file name). Such a path
   * was not checked with dbp_export_check_target, nor against the other
   * tasks' paths: the runner checks the files it fills in. "-" never has
   * tables or a split. */
  char *path;
  /* What the export writes: format (never AUTO once finished: taken from the
   * path if not given), compression (never AUTO), level (0 = the library
   * default), encode.no_header / delimiter (0 = the format's default) /
   * null_string (owned; NULL = the format's default) / crlf, and max_rows,
   * max_bytes (split limits; 0 = never split). The other fields stay zero
   * (progress is NULL): the runner fills them in. */
  dbp_export_options export;
  int64_t timeout_ms;       /* per attempt; 0 (the default) or DBP_FOREVER = none */
  int64_t idle_timeout_ms;  /* longest wait for the server to send or take a byte
                             * while the statement runs (dbp_conn_set_io_timeout):
                             * 0 = DBP_DEFAULT_IO_TIMEOUT_MS, DBP_FOREVER = none */
  int retries;              /* extra attempts for retryable errors */
  int64_t retry_backoff_ms; /* first delay, doubled each retry; 0 = retry at once
                             * (dbp_task_init: DBP_JOB_DEFAULT_BACKOFF_MS) */
  int line, column;         /* where the task starts */
  /* Where each task setting came from (dbp_setting_origin, indexed by
   * dbp_setting_id): kept by dbp_task_set for dbp_task_finish. */
  unsigned char origin[DBP_SET_TASK_COUNT];
} dbp_job_task;

/* "No limit" in a task's time limits: the runtime's DBP_FOREVER (a job
 * file's `0` or `none`). */
#define DBP_JOB_NO_TIMEOUT DBP_FOREVER
#define DBP_JOB_DEFAULT_CONCURRENCY 4
#define DBP_JOB_DEFAULT_BACKOFF_MS 1000

typedef struct dbp_job {
  char *file; /* as given to the loader */
  char *dir;  /* directory relative paths are resolved against */
  size_t nconns;
  dbp_job_conn *conns;
  size_t ntasks;
  dbp_job_task *tasks;
  size_t concurrency;        /* default DBP_JOB_DEFAULT_CONCURRENCY */
  dbp_job_snapshot snapshot; /* AUTO (not given) = ON; dbpipe export sets ON or NONE */
  char *manifest;            /* resolved path; NULL when `manifest: false` */
  time_t started;            /* the time {date} was taken from */
} dbp_job;

/* Looks up a variable for ${VAR} expansion: returns its value or NULL when
 * unset. The string must stay valid until the loader returns. */
typedef const char *(*dbp_job_getenv_fn)(const char *name, void *ud);

typedef struct dbp_job_options {
  dbp_job_getenv_fn getenv; /* NULL = the process environment */
  void *getenv_ud;
  time_t now;      /* run start for {date}; 0 = time(NULL) */
  const char *dir; /* base for relative paths; NULL = the file's directory */

  /* Read a file of named databases rather than a job (dbpipe serve
   * --connections): its one top-level key is `connections:`, written and
   * checked exactly like a job's (${VAR} expanded through getenv); any
   * other key (tasks, manifest, defaults, ...) is an error at that key, and
   * a missing or empty `connections:` is an error too. The job returned has
   * its conns and no tasks (ntasks 0), no manifest (NULL) and the default
   * concurrency. extra_conns, if given, apply as to a job. */
  bool connections_only;
  /* Connections a job may name in `from:` without defining them: the
   * server's own, loaded with connections_only. Each is copied into the
   * job's conns after the job's own connections (name, dsn, dsn_redacted,
   * kind, pool and snapshot; line and column 0), so that tasks refer to
   * them by index like any other and whoever scrubs the job's passwords
   * from messages scrubs theirs too. The job owns its copies: the array
   * need only live until the loader returns. Their DSNs are used as they
   * are (neither expanded nor checked again: they were when loaded); a
   * connection's name and dsn must not be NULL. A job that defines a
   * connection of one of these names is refused at that name; with extra
   * connections a job need not have `connections:` at all. */
  const dbp_job_conn *extra_conns;
  size_t nextra_conns;
  /* The manifest path of a job without `manifest:`, in place of
   * "<stem>.manifest.json"; used as given (neither expanded, templated nor
   * resolved against dir: pass an absolute path). `manifest: false` still
   * means none and a `manifest:` path still wins. NULL = the usual default. */
  const char *default_manifest;
} dbp_job_options;

/* Reads and checks the job file at `path`. On success stores a new job in
 * *out (free with dbp_job_free) and returns 0. On failure returns DBP_EJOB
 * with every problem in *diag (which the caller frees with
 * dbp_job_diag_free; it is filled only on failure and always initialised),
 * DBP_ENOENT / DBP_EACCES / DBP_EIO when the file cannot be read (one
 * diagnostic says why), or DBP_ENOMEM. `opts` may be NULL.
 *
 * Without opts->dir the default manifest is "<stem>.manifest.json" beside
 * the job file ("shop.yaml" -> "shop.manifest.json"), unless
 * opts->default_manifest names another. */
DBP_EXTERN int dbp_job_load(const char *path, const dbp_job_options *opts, dbp_job **out,
                            dbp_job_diag *diag);
/* The same from text in memory; `file` names it in messages and gives the
 * default manifest's stem; relative paths resolve against opts->dir, else
 * the current directory. */
DBP_EXTERN int dbp_job_parse(const char *text, size_t len, const char *file,
                             const dbp_job_options *opts, dbp_job **out, dbp_job_diag *diag);
DBP_EXTERN void dbp_job_free(dbp_job *job);

/* Index of the task called `name`, or -1. */
DBP_EXTERN long dbp_job_find_task(const dbp_job *job, const char *name);

/* ---- value syntax shared with the command line ---- */

/* Parses a duration: a non-negative integer followed by ms, s, m or h
 * ("500ms", "30s", "10m", "1h"); a bare number means seconds. Returns 0 or
 * DBP_EINVAL. */
DBP_EXTERN int dbp_parse_duration(const char *s, int64_t *ms);
/* Parses a size in bytes: a non-negative integer, optionally followed by B,
 * kB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024): "64MiB".
 * Returns 0 or DBP_EINVAL. */
DBP_EXTERN int dbp_parse_size(const char *s, uint64_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_JOB_H */
