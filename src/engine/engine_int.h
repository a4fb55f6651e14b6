/* The engine's internals: the run and task structs shared by run.c,
 * task.c and manifest.c. */
#ifndef DBPIPE_ENGINE_INT_H
#define DBPIPE_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dbpipe.h"

/* ---- the run ---- */

struct dbp_run_s;

typedef struct dbp__task {
  dbp_task_info info; /* what dbp_run_task hands out */
  struct dbp_run_s *run;
  dbp_co *co;       /* while its coroutine lives */
  uint64_t rate_ms; /* progress: the last sample */
  uint64_t rate_rows;
} dbp__task;

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
  size_t *pool_size; /* per job connection; 0 = no selected task uses it */
  dbp_pool **pools;  /* per job connection, while the tasks run */
  dbp_sem *slots;
  dbp_event *done; /* set when the run has finished */
  dbp__sub *subs;
  size_t nsubs;
  dbp_secrets secrets;
  dbp_run_state status;
  bool started;  /* dbp_run_start was called */
  bool finished; /* the run's coroutine is over: dbp_run_free may go ahead */
  bool cancelled, tasks_running, manifest_written;
  dbp_co *ticker; /* the progress coroutine */
  uint64_t started_ms;
  struct timespec wall_started, wall_finished;
};

/* Delivers ev (kind and the kind's fields set) to every subscriber; fills
 * in run, summary and, for task events, task and info. */
void dbp__run_emit(struct dbp_run_s *run, dbp_run_event *ev, const dbp__task *t);

/* The coroutine of one task (arg: the dbp__task). */
int dbp__task_main(void *arg, void **result);

/* Waits: writes the manifest of a run whose tasks have ended, with
 * `status` ("ok", "failed" or "interrupted"). 0 or an error with why in
 * err. */
int dbp__manifest_write(struct dbp_run_s *run, const char *status, char *err, size_t errlen);

/* The manifest's word for a task's end: "ok", "failed", "interrupted". */
const char *dbp__manifest_task_status(dbp_task_state s);

#endif /* DBPIPE_ENGINE_INT_H */
