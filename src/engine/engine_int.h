/* The engine's internals: the run and task structs shared by run.c,
 * task.c and manifest.c. */
#ifndef DBPIPE_ENGINE_INT_H
#define DBPIPE_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dbpipe.h"
#include "export/writer.h"

/* ---- the run ---- */

struct dbp_run_s;

/* One part of a split table: its own export, counters and result. */
typedef struct dbp__part {
  size_t index; /* in the table's plan */
  dbp_task_state state;
  int attempts;
  dbp_export_progress progress;
  dbp_export_result result;
  char *path; /* where its export writes: the final {part} file, or a
               * hidden intermediate ".dbpipe-TOKEN-pNNNNN-NAME" beside the
               * final file, concatenated into it at the end */
} dbp__part;

typedef struct dbp__task {
  dbp_task_info info; /* what dbp_run_task hands out */
  struct dbp_run_s *run;
  dbp_co *co;       /* while its coroutine lives */
  uint64_t rate_ms; /* progress: the last sample */
  uint64_t rate_rows;
  /* A table task: what the catalog said, and the plan (one part when not
   * split). Owned. */
  bool is_table;
  bool pattern;         /* a `tables` task not expanded yet (or whose discovery failed) */
  char *own_name;       /* info.name when made here */
  char *own_table;      /* info.table */
  char *path;           /* the output path with {schema} and {table} filled in */
  dbp_table_info tinfo; /* schema, name, qualified, pkey: in run->lists */
  bool has_plan;
  dbp_plan_table plan;
  dbp__part *parts; /* plan.nparts of them when split */
  size_t nparts;
  bool per_part_files;            /* {part} in the path: one file per part */
  char token[DBP__TOKEN_LEN + 1]; /* names the task's intermediate files */
  size_t next_part;               /* the next part a part runner takes */
  bool parts_failed;              /* a part failed: the others stop taking parts */
} dbp__task;

/* What a run keeps for one job connection: its pool and, when the run
 * reads it in one snapshot, the coordinator and the workers that joined. */
typedef struct dbp__db {
  bool used;
  bool snapshot;          /* the run shares a snapshot on this connection */
  dbp_snapshot_mode mode; /* locked or lock-free */
  dbp_conn *coord;
  dbp_snapshot *snap;
  int snap_rc; /* why the snapshot cannot be taken (for good); 0 = fine */
  dbp_dberr snap_err;
  dbp_conn **workers; /* idle workers, in the snapshot (a stack) */
  size_t nidle, cap;
  size_t live;           /* workers that exist (idle or busy) */
  dbp_sem *avail;        /* counts idle workers */
  dbp_mutex *setup;      /* held by the export that takes the snapshot */
  bool ready, announced; /* taken; DBP_RUN_EV_SNAPSHOT emitted */
  size_t exports_done;   /* exports that succeeded in the current snapshot */
  char snap_id[64], position[256], binlog_file[256];
  uint64_t binlog_pos, lock_us;
  size_t nworkers_joined;
  bool on_standby;
} dbp__db;

typedef struct dbp__sub {
  dbp_run_event_fn fn;
  void *ud;
} dbp__sub;

struct dbp_run_s {
  dbp_rt *rt;
  dbp_job *job;
  dbp_run_options opts; /* concurrency resolved */
  dbp__task *tasks;
  size_t ntasks;
  size_t *pool_size;     /* per job connection; 0 = no selected task uses it */
  dbp_pool **pools;      /* per job connection, while the tasks run */
  dbp__db *dbs;          /* per job connection */
  dbp_table_list *lists; /* catalog answers the table tasks point into */
  size_t nlists;
  dbp_co *setup_co; /* the run's coroutine while it takes snapshots and plans */
  dbp_sem *slots;
  dbp_event *done; /* set when the run has finished */
  dbp__sub *subs;
  size_t nsubs;
  dbp_secrets secrets;
  dbp_run_state status;
  bool started;  /* dbp_run_start was called */
  bool finished; /* the run's coroutine is over: dbp_run_free may go ahead */
  bool cancelled, tasks_running, manifest_written;
  bool announced; /* DBP_RUN_EV_RUN_STARTED was emitted */
  dbp_co *ticker; /* the progress coroutine */
  uint64_t started_ms;
  struct timespec wall_started, wall_finished;
};

/* Delivers ev (kind and the kind's fields set) to every subscriber; fills
 * in run, summary and, for task events, task and info. */
void dbp__run_emit(struct dbp_run_s *run, dbp_run_event *ev, const dbp__task *t);

/* The coroutine of one task (arg: the dbp__task). */
int dbp__task_main(void *arg, void **result);

/* ---- connections of a run (source.c) ---- */

/* Prepares the connections of a run: which share a snapshot, with up to
 * want[i] workers (at most the pool's size). Does not wait: the first
 * dbp__source_acquire of a connection takes its snapshot. 0 or DBP_ENOMEM. */
int dbp__sources_open(struct dbp_run_s *run, const size_t *want);
/* Waits: a connection for one export of connection `conn`: a worker of the
 * snapshot (taken by the first call: a failure to take it is that call's,
 * retried by its task like any connect error; a missing privilege fails
 * every later call at once), else one from the pool. 0, or an error with
 * err filled in. */
int dbp__source_acquire(struct dbp_run_s *run, size_t conn, int64_t timeout_ms, dbp_conn **out,
                        dbp_dberr *err);
/* Waits: gives it back. `failed`: its export failed, so a worker's
 * transaction may be unusable: PostgreSQL workers start over in the
 * snapshot, broken ones are replaced (PostgreSQL) or dropped. */
void dbp__source_release(struct dbp_run_s *run, size_t conn, dbp_conn *c, bool failed);
/* Emits DBP_RUN_EV_SNAPSHOT for connection i once its snapshot is taken
 * (from the run's start on; one taken while planning is announced then). */
void dbp__source_announce(struct dbp_run_s *run, size_t i);
/* Waits: ends every snapshot, returns the workers and closes coordinators. */
void dbp__sources_close(struct dbp_run_s *run);

/* ---- tables (tables.c) ---- */

/* Waits: finds the tables of every `tables` task and plans every table
 * task (catalog, split boundaries), turning run->tasks into the final
 * list. Tasks whose discovery or planning fails are marked failed. */
int dbp__tables_plan(struct dbp_run_s *run);
/* The path with {schema}, {table} and {part} (0: left as it is) filled in,
 * their values made safe for one file name component; malloc'd. */
char *dbp__fill_path(const char *tmpl, const char *schema, const char *table, size_t part);
/* Frees what a task owns beyond its info. */
void dbp__task_clear(dbp__task *t);

/* Waits: writes the manifest of a run whose tasks have ended, with
 * `status` ("ok", "failed" or "interrupted"). 0 or an error with why in
 * err. */
int dbp__manifest_write(struct dbp_run_s *run, const char *status, char *err, size_t errlen);

/* The manifest's word for a task's end: "ok", "failed", "interrupted". */
const char *dbp__manifest_task_status(dbp_task_state s);

#endif /* DBPIPE_ENGINE_INT_H */
