/* dbpipe engine: runs a job (include/dbpipe/job.h) on a runtime the caller
 * owns, and tells subscribers what happens.
 *
 *   dbp_run *run;
 *   dbp_run_new(rt, job, NULL, &run);        (nothing runs yet)
 *   dbp_run_subscribe(run, on_event, ctx);   (any number of subscribers)
 *   dbp_run_start(run);                      (spawns the run's coroutine)
 *   ... run the loop (dbp_rt_run, or the service's own uv_run) ...
 *   dbp_run_free(run);                       (once the run has finished)
 *
 * A run executes the selected tasks of the job, at most `concurrency` at
 * once (a semaphore of the runtime), each on a connection from one
 * dbp_pool per job connection that a selected task uses. The pool of a
 * connection holds its `pool:` size or, without one, the run's default
 * (concurrency, at most 4); sessions report the application name dbpipe
 * unless the DSN names one (dbp_dsn_with_app_name). A task's attempt takes
 * a connection and exports its query or table (dbp_export_query,
 * dbp_export_table) within the task's
 * `timeout:`, with the task's `idle_timeout:` as the connection's
 * no-progress limit. A retryable failure (the driver says a retry can help:
 * a refused or lost connection, a deadlock, a serialization failure, too
 * many connections; never a bad password or an unknown database) is tried
 * again up to `retries:` times, after retry_backoff, twice that, four
 * times that, ... (at most five minutes). Parent directories of the
 * outputs are created. A failed task does not stop the others.
 *
 * When every task has ended, the pools are closed and, if the job names
 * one, the manifest is written (atomically, like an export's files):
 *
 *   {"dbpipe": VERSION, "job": FILE, "started": ISO, "finished": ISO,
 *    "status": "ok" | "failed" | "interrupted",
 *    "tasks": [{"name", "connection", "status": "ok" | "failed" |
 *               "interrupted", "error": null | TEXT, "attempts", "rows",
 *               "bytes", "duration_ms", "files": [{"path", "rows", "bytes",
 *               "sha256"}]}]}
 *
 * (the manifest's word for a cancelled run or task is "interrupted"). A
 * run whose manifest cannot be written has failed.
 *
 * Events reach the subscribers on the loop's thread, from the run's
 * coroutines, in the order things happen: DBP_RUN_EV_RUN_STARTED first,
 * DBP_RUN_EV_RUN_FINISHED last; per task STARTED before its end (FINISHED,
 * FAILED or CANCELLED; a task cancelled while queued ends without having
 * started). A subscriber must not wait (it is a plain function, called
 * inside a coroutine of the run); it may read the run (dbp_run_task,
 * dbp_run_get_summary, dbp_run_pool_stats) and call dbp_run_cancel. The
 * event and everything it points to live for the call only.
 *
 * Messages never hold a password: the passwords of the job's DSNs are
 * scrubbed ("***") from every driver's and server's message, beside the
 * redaction the drivers do.
 *
 * The job must stay unchanged and alive until dbp_run_free.
 */
#ifndef DBPIPE_ENGINE_H
#define DBPIPE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "export.h"
#include "job.h"
#include "pipeline.h"
#include "plan.h"
#include "pool.h"
#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dbp_run_s dbp_run;

/* A run's outcome. RUNNING until the last task and the manifest are done. */
typedef enum dbp_run_state {
  DBP_RUN_RUNNING = 0,
  DBP_RUN_OK,        /* every task done and the manifest (if any) written */
  DBP_RUN_FAILED,    /* a task failed, or the manifest could not be written */
  DBP_RUN_CANCELLED, /* dbp_run_cancel was called */
} dbp_run_state;

/* "running", "ok", "failed", "cancelled". */
DBP_EXTERN const char *dbp_run_state_name(dbp_run_state s);

typedef enum dbp_task_state {
  DBP_TASK_QUEUED = 0, /* waiting for a free slot */
  DBP_TASK_CONNECTING, /* waiting for a connection (an attempt has begun) */
  DBP_TASK_RUNNING,    /* the export runs */
  DBP_TASK_RETRYING,   /* sleeping before the next attempt */
  DBP_TASK_DONE,
  DBP_TASK_FAILED,
  DBP_TASK_CANCELLED,
} dbp_task_state;

/* "queued", "connecting", "running", "retrying", "done", "failed",
 * "cancelled". */
DBP_EXTERN const char *dbp_task_state_name(dbp_task_state s);

/* What a run knows about one of its tasks; read-only, kept up to date by
 * the engine, valid until dbp_run_free. */
typedef struct dbp_task_info {
  const char *name;         /* the job task's name; "NAME:SCHEMA.TABLE" for a
                             * table found by a `tables` pattern */
  const dbp_job_task *task; /* the job's task */
  size_t job_index;         /* its index in dbp_job.tasks */
  const char *connection;   /* the job connection's name */
  /* A table task: "schema.table" as the catalog names it (unquoted), else
   * NULL; its plan once made (parts, key ranges), else NULL. */
  const char *table;
  const dbp_plan_table *plan;
  /* The output path: the task's, with {schema} and {table} filled in for
   * a table found by a pattern ({part} stays for a split one's files). */
  const char *path;
  int64_t rows_estimate; /* rows expected (the catalog's estimate, or the
                          * planner's count); -1 unknown */
  size_t nparts;         /* parts the task is split into (1 unsplit) */
  size_t parts_done;
  dbp_task_state state;
  int attempts;                 /* attempts begun so far */
  int max_attempts;             /* 1 + the task's retries */
  dbp_export_progress progress; /* live counters of the current attempt */
  double rows_per_sec;          /* smoothed over the last progress intervals */
  uint64_t started_ms;          /* loop clock (dbp_now) when it got its slot; 0 before */
  uint64_t finished_ms;         /* loop clock when it ended; 0 before */
  dbp_export_result result;     /* files, rows and bytes once DONE */
  /* Why the last attempt failed (also while RETRYING); 0 / "" otherwise. */
  int error;         /* the dbpipe error code */
  char sqlstate[6];  /* the server's SQLSTATE, "" if none */
  int db_errno;      /* MySQL's errno, 0 if none */
  char message[768]; /* the failure described, e.g. "EQUERY: relation ... does
                      * not exist (SQLSTATE 42P01)", "timed out after 30.0 s",
                      * "connection 'pg': ECONNECT: ..."; "interrupted" for a
                      * cancelled task; passwords scrubbed */
  char detail[512];  /* the driver's or server's own message alone
                      * (scrubbed), "" if none */
} dbp_task_info;

/* A run as a whole; see dbp_run_get_summary. */
typedef struct dbp_run_summary {
  dbp_run_state status;
  bool cancel_requested; /* dbp_run_cancel was called (the run may still be stopping) */
  size_t ntasks;         /* selected tasks */
  size_t concurrency;
  size_t queued, active, done, failed, cancelled; /* tasks by state; active = connecting,
                                                   * running or retrying */
  uint64_t rows, bytes;                           /* totals of the tasks done */
  /* Rows expected of every task whose estimate is known, and how many
   * tasks have none (a query's). */
  uint64_t rows_estimate;
  size_t tasks_unestimated;
  uint64_t started_ms;               /* loop clock when the run's coroutine began; 0 before */
  uint64_t duration_ms;              /* so far, or of the whole run once it ended */
  struct timespec started, finished; /* wall clock (CLOCK_REALTIME); finished is 0
                                      * while running */
  const char *manifest;              /* the job's manifest path, NULL if none */
  bool manifest_written;
} dbp_run_summary;

typedef enum dbp_run_event_kind {
  DBP_RUN_EV_RUN_STARTED = 1, /* tables found and planned: the task list is final */
  DBP_RUN_EV_SNAPSHOT,        /* a database's snapshot was taken and every worker joined */
  DBP_RUN_EV_TASK_STARTED,    /* the task got its slot; attempts follow */
  DBP_RUN_EV_TASK_PROGRESS,   /* every interval, for each running task */
  DBP_RUN_EV_RUN_PROGRESS,    /* every interval, after the TASK_PROGRESS events */
  DBP_RUN_EV_TASK_RETRY,      /* an attempt failed; the next one comes after delay_ms */
  DBP_RUN_EV_TASK_FINISHED,   /* done: files written */
  DBP_RUN_EV_TASK_FAILED,
  DBP_RUN_EV_TASK_CANCELLED,
  DBP_RUN_EV_MANIFEST_WRITTEN,
  DBP_RUN_EV_MANIFEST_FAILED,
  DBP_RUN_EV_RUN_FINISHED, /* the last event; summary->status is final */
} dbp_run_event_kind;

/* "run_started", "task_started", "task_progress", "run_progress",
 * "snapshot", "task_retry", "task_finished", "task_failed", "task_cancelled",
 * "manifest_written", "manifest_failed", "run_finished". */
DBP_EXTERN const char *dbp_run_event_name(dbp_run_event_kind k);

/* One event. Which fields mean something depends on the kind:
 *
 *   every kind       kind, run, summary
 *   TASK_*           task (index for dbp_run_task), info
 *   TASK_PROGRESS    rows, bytes (written to disk), rows_per_sec, elapsed_ms
 *                    (since the task started)
 *   TASK_RETRY       attempt (the one that failed), delay_ms, error,
 *                    sqlstate, db_errno, message, detail
 *   TASK_FINISHED    rows, bytes, elapsed_ms (the task's duration), attempts,
 *                    files / nfiles
 *   TASK_FAILED      error, sqlstate, db_errno, message, detail, attempts,
 *                    elapsed_ms (0 when it never started)
 *   TASK_CANCELLED   message ("interrupted"), attempts, elapsed_ms
 *   SNAPSHOT         connection, snapshot_id (PostgreSQL), position (WAL LSN /
 *                    GTID position, "" if none), lock_us (MariaDB/MySQL: how
 *                    long commits were held), attempts (workers that joined)
 *   MANIFEST_*       path; for FAILED error and message (why)
 *   RUN_PROGRESS     rows, bytes (of every task so far, running ones
 *                    included), elapsed_ms (since the run started)
 *   RUN_FINISHED     summary (final), elapsed_ms (the run's duration)
 *
 * Strings are never NULL ("" when empty) except path outside MANIFEST_*. */
typedef struct dbp_run_event {
  dbp_run_event_kind kind;
  dbp_run *run;
  const dbp_run_summary *summary;
  size_t task;               /* SIZE_MAX for run and manifest events */
  const dbp_task_info *info; /* NULL for run and manifest events */
  uint64_t rows, bytes;
  double rows_per_sec;
  uint64_t elapsed_ms;
  int attempt, attempts;
  int64_t delay_ms;
  int error;
  const char *sqlstate;
  int db_errno;
  const char *message;
  const char *detail;
  const char *path;
  const dbp_export_file *files;
  size_t nfiles;
  const char *connection; /* SNAPSHOT: the job connection's name */
  const char *snapshot_id;
  const char *position;
  uint64_t lock_us;
} dbp_run_event;

typedef void (*dbp_run_event_fn)(const dbp_run_event *ev, void *ud);

typedef struct dbp_run_options {
  size_t concurrency;           /* tasks at once; 0 = the job's */
  const bool *selected;         /* one flag per job task; NULL = every task */
  int64_t progress_interval_ms; /* TASK_PROGRESS / RUN_PROGRESS period; 0 = 1000,
                                 * DBP_FOREVER = no progress events */
  size_t pool_size;             /* pool of a connection without `pool:`;
                                 * 0 = concurrency, at most 4 */
  bool no_fsync;                /* exports and manifest skip fsync (tests, benchmarks) */
} dbp_run_options;

/* Prepares a run of `job` on `rt` (does not wait; nothing runs until
 * dbp_run_start). `opts` may be NULL. DBP_EINVAL for a NULL argument or a
 * negative progress interval other than DBP_FOREVER; DBP_ENOMEM. */
DBP_EXTERN int dbp_run_new(dbp_rt *rt, dbp_job *job, const dbp_run_options *opts, dbp_run **out);
/* Adds a subscriber; subscribers are called in the order they came. Does
 * not wait. DBP_EBUSY once the run has finished, DBP_ENOMEM. */
DBP_EXTERN int dbp_run_subscribe(dbp_run *run, dbp_run_event_fn fn, void *ud);
/* Spawns the run's coroutine and returns at once (does not wait); the run
 * goes on while the runtime's loop runs. DBP_EBUSY when already started. */
DBP_EXTERN int dbp_run_start(dbp_run *run);
/* Waits (in a coroutine of the run's runtime) until the run has finished,
 * at most timeout_ms. Returns 0 (the outcome is dbp_run_status),
 * DBP_ETIMEDOUT, DBP_ECANCELED (the caller was cancelled; the run goes on),
 * DBP_ESTATE when the run was never started. Outside a coroutine,
 * DBP_RUN_EV_RUN_FINISHED is the completion callback: the last event of
 * every started run. */
DBP_EXTERN int dbp_run_wait(dbp_run *run, int64_t timeout_ms);
/* Cancels the whole run (does not wait): every task's export cancels its
 * statement on the server and removes its temporary files; queued tasks
 * never start; the manifest is still written, and the run ends
 * DBP_RUN_CANCELLED. Callable before the start, from any subscriber or other
 * callback on the loop's thread; a no-op once the run finished. */
DBP_EXTERN void dbp_run_cancel(dbp_run *run);
/* The run's outcome so far (does not wait). */
DBP_EXTERN dbp_run_state dbp_run_status(const dbp_run *run);
/* Fills *out with the run's counts, totals and times (does not wait). */
DBP_EXTERN void dbp_run_get_summary(const dbp_run *run, dbp_run_summary *out);
/* Selected tasks, in job order. */
DBP_EXTERN size_t dbp_run_ntasks(const dbp_run *run);
/* Task i (0 <= i < dbp_run_ntasks), or NULL. */
DBP_EXTERN const dbp_task_info *dbp_run_task(const dbp_run *run, size_t i);
/* The pool of job connection `conn` (index into dbp_job.conns): fills *out
 * and returns its max size, or returns 0 when the run has no open pool for
 * it (no selected task uses it, or the run has ended). */
DBP_EXTERN size_t dbp_run_pool_stats(const dbp_run *run, size_t conn, dbp_pool_stats *out);
/* Removes, at once and without waiting for the loop, the temporary files
 * ("NAME.<token>.part") of every task that has not finished, found by the
 * export's own random token (dbp_export_progress.temp_token): never a file
 * of another process or of the user. For a front that must exit now (a
 * second Ctrl-C) without letting the exports clean up after themselves. */
DBP_EXTERN void dbp_run_remove_temp_files(const dbp_run *run);
/* Frees the run. DBP_EBUSY (changing nothing) while it is started and has
 * not finished; never call it from a subscriber. */
DBP_EXTERN int dbp_run_free(dbp_run *run);

/* ---- one call, blocking ---- */

/* Runs `job` to completion on a runtime (and loop) of its own, calling
 * `fn` (may be NULL) with every event, and stores the final summary in
 * *summary (may be NULL). Returns 0 when the run is DBP_RUN_OK, DBP_ETASK
 * when it failed, DBP_ECANCELED when cancelled (by `fn` calling
 * dbp_run_cancel), or the error that kept it from starting. Must not be
 * called from a coroutine. */
DBP_EXTERN int dbp_run_job(dbp_job *job, const dbp_run_options *opts, dbp_run_event_fn fn, void *ud,
                           dbp_run_summary *summary);

/* Exports one query from `dsn` into `path` on a runtime of its own:
 * connects (timeout: the DSN's connect_timeout), runs dbp_export_query with
 * `opts` (may be NULL) and closes. Returns 0 with the files in *res (free
 * with dbp_export_result_free), or an error with res->err telling why (a
 * connect error included; the DSN's password scrubbed). Must not be called
 * from a coroutine. */
DBP_EXTERN int dbp_export_url(const char *dsn, const char *sql, const char *path,
                              const dbp_export_options *opts, dbp_export_result *res);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_ENGINE_H */
