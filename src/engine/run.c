/* A run of a job: its life (new, start, cancel, free), the coroutine that
 * owns the pools and the tasks, the progress ticker, events and the
 * clean-up helper for a front that must exit at once. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_int.h"

#define STACK_SIZE (256 * 1024)
#define POOL_CLOSE_MS 10000
#define DEFAULT_POOL_MAX 4
#define DEFAULT_PROGRESS_MS 1000

const char *dbp_run_state_name(dbp_run_state s) {
  switch (s) {
    case DBP_RUN_RUNNING:
      return "running";
    case DBP_RUN_OK:
      return "ok";
    case DBP_RUN_FAILED:
      return "failed";
    case DBP_RUN_CANCELLED:
      return "cancelled";
  }
  return "?";
}

const char *dbp_task_state_name(dbp_task_state s) {
  switch (s) {
    case DBP_TASK_QUEUED:
      return "queued";
    case DBP_TASK_CONNECTING:
      return "connecting";
    case DBP_TASK_RUNNING:
      return "running";
    case DBP_TASK_RETRYING:
      return "retrying";
    case DBP_TASK_DONE:
      return "done";
    case DBP_TASK_FAILED:
      return "failed";
    case DBP_TASK_CANCELLED:
      return "cancelled";
  }
  return "?";
}

const char *dbp_run_event_name(dbp_run_event_kind k) {
  switch (k) {
    case DBP_RUN_EV_RUN_STARTED:
      return "run_started";
    case DBP_RUN_EV_SNAPSHOT:
      return "snapshot";
    case DBP_RUN_EV_TASK_STARTED:
      return "task_started";
    case DBP_RUN_EV_TASK_PROGRESS:
      return "task_progress";
    case DBP_RUN_EV_RUN_PROGRESS:
      return "run_progress";
    case DBP_RUN_EV_TASK_RETRY:
      return "task_retry";
    case DBP_RUN_EV_TASK_FINISHED:
      return "task_finished";
    case DBP_RUN_EV_TASK_FAILED:
      return "task_failed";
    case DBP_RUN_EV_TASK_CANCELLED:
      return "task_cancelled";
    case DBP_RUN_EV_MANIFEST_WRITTEN:
      return "manifest_written";
    case DBP_RUN_EV_MANIFEST_FAILED:
      return "manifest_failed";
    case DBP_RUN_EV_RUN_FINISHED:
      return "run_finished";
  }
  return "?";
}

int dbp_run_new(dbp_rt *rt, dbp_job *job, const dbp_run_options *opts, dbp_run **out) {
  if (out != NULL) *out = NULL;
  if (rt == NULL || job == NULL || out == NULL) return DBP_EINVAL;
  dbp_run_options o = opts != NULL ? *opts : (dbp_run_options){0};
  if (o.progress_interval_ms < 0 && o.progress_interval_ms != DBP_FOREVER) return DBP_EINVAL;
  if (o.progress_interval_ms == 0) o.progress_interval_ms = DEFAULT_PROGRESS_MS;
  if (o.concurrency == 0) o.concurrency = job->concurrency;
  if (o.concurrency == 0) o.concurrency = 1;
  dbp_run *run = calloc(1, sizeof *run);
  if (run == NULL) return DBP_ENOMEM;
  run->rt = rt;
  run->job = job;
  run->opts = o;
  run->opts.selected = NULL; /* not kept: the caller's array may go */
  size_t n = 0;
  for (size_t i = 0; i < job->ntasks; i++) n += o.selected == NULL || o.selected[i];
  run->tasks = calloc(n ? n : 1, sizeof *run->tasks);
  run->pool_size = calloc(job->nconns ? job->nconns : 1, sizeof *run->pool_size);
  run->pools = calloc(job->nconns ? job->nconns : 1, sizeof *run->pools);
  run->dbs = calloc(job->nconns ? job->nconns : 1, sizeof *run->dbs);
  int rc = run->tasks && run->pool_size && run->pools && run->dbs ? 0 : DBP_ENOMEM;
  if (rc == 0) rc = dbp_event_new(rt, &run->done);
  if (rc != 0) goto err;
  size_t dflt = o.pool_size                        ? o.pool_size
                : o.concurrency < DEFAULT_POOL_MAX ? o.concurrency
                                                   : DEFAULT_POOL_MAX;
  for (size_t i = 0; i < job->ntasks; i++) {
    if (o.selected != NULL && !o.selected[i]) continue;
    dbp__task *t = &run->tasks[run->ntasks++];
    const dbp_job_task *jt = &job->tasks[i];
    t->run = run;
    t->info.name = jt->name;
    t->info.task = jt;
    t->info.job_index = i;
    t->info.connection = job->conns[jt->conn].name;
    t->info.max_attempts = jt->retries + 1;
    t->info.rows_estimate = -1;
    t->info.path = jt->path;
    t->info.nparts = 1;
    t->is_table = jt->table != NULL || jt->ntables > 0;
    t->pattern = jt->ntables > 0;
    size_t want = job->conns[jt->conn].pool;
    run->pool_size[jt->conn] = want ? want : dflt;
  }
  for (size_t i = 0; i < job->nconns; i++) dbp_secrets_add_dsn(&run->secrets, job->conns[i].dsn);
  *out = run;
  return 0;
err:
  if (run->done != NULL) dbp_event_free(run->done);
  free(run->tasks);
  free(run->pool_size);
  free(run->pools);
  free(run->dbs);
  free(run);
  return rc;
}

int dbp_run_subscribe(dbp_run *run, dbp_run_event_fn fn, void *ud) {
  if (run == NULL || fn == NULL) return DBP_EINVAL;
  if (run->finished) return DBP_EBUSY;
  dbp__sub *ns = realloc(run->subs, (run->nsubs + 1) * sizeof *ns);
  if (ns == NULL) return DBP_ENOMEM;
  run->subs = ns;
  run->subs[run->nsubs++] = (dbp__sub){fn, ud};
  return 0;
}

void dbp_run_get_summary(const dbp_run *run, dbp_run_summary *out) {
  memset(out, 0, sizeof *out);
  out->status = run->status;
  out->cancel_requested = run->cancelled;
  out->ntasks = run->ntasks;
  out->concurrency = run->opts.concurrency;
  for (size_t i = 0; i < run->ntasks; i++) {
    const dbp_task_info *in = &run->tasks[i].info;
    if (in->rows_estimate >= 0) {
      out->rows_estimate += (uint64_t)in->rows_estimate;
    } else {
      out->tasks_unestimated++;
    }
    switch (in->state) {
      case DBP_TASK_QUEUED:
        out->queued++;
        break;
      case DBP_TASK_CONNECTING:
      case DBP_TASK_RUNNING:
      case DBP_TASK_RETRYING:
        out->active++;
        break;
      case DBP_TASK_DONE:
        out->done++;
        out->rows += in->result.rows;
        out->bytes += in->result.bytes;
        break;
      case DBP_TASK_FAILED:
        out->failed++;
        break;
      case DBP_TASK_CANCELLED:
        out->cancelled++;
        break;
    }
  }
  out->started_ms = run->started_ms;
  out->started = run->wall_started;
  if (run->status != DBP_RUN_RUNNING) {
    out->finished = run->wall_finished;
    out->duration_ms =
        (uint64_t)((run->wall_finished.tv_sec - run->wall_started.tv_sec) * 1000 +
                   (run->wall_finished.tv_nsec - run->wall_started.tv_nsec) / 1000000);
  } else if (run->started_ms != 0) {
    out->duration_ms = dbp_now(run->rt) - run->started_ms;
  }
  out->manifest = run->job->manifest;
  out->manifest_written = run->manifest_written;
}

void dbp__run_emit(dbp_run *run, dbp_run_event *ev, const dbp__task *t) {
  dbp_run_summary sum;
  dbp_run_get_summary(run, &sum);
  ev->run = run;
  ev->summary = &sum;
  ev->task = t != NULL ? (size_t)(t - run->tasks) : SIZE_MAX;
  ev->info = t != NULL ? &t->info : NULL;
  if (ev->sqlstate == NULL) ev->sqlstate = "";
  if (ev->message == NULL) ev->message = "";
  if (ev->detail == NULL) ev->detail = "";
  for (size_t i = 0; i < run->nsubs; i++) run->subs[i].fn(ev, run->subs[i].ud);
  ev->summary = NULL; /* it lived for the calls only */
}

/* Samples every running task's counters and tells the subscribers. The
 * rate is smoothed as a terminal display wants it: steady, yet following
 * a change within a few intervals. */
static void progress_tick(dbp_run *run) {
  uint64_t now = dbp_now(run->rt);
  uint64_t rows = 0, bytes = 0;
  for (size_t i = 0; i < run->ntasks; i++) {
    dbp__task *t = &run->tasks[i];
    dbp_task_info *in = &t->info;
    if (in->state == DBP_TASK_DONE) {
      rows += in->result.rows;
      bytes += in->result.bytes;
    }
    if (in->state != DBP_TASK_RUNNING) continue;
    if (t->nparts > 0) {
      /* A split task counts what its parts have done so far. */
      dbp_export_progress sum = {0};
      for (size_t k = 0; k < t->nparts; k++) {
        sum.rows += t->parts[k].progress.rows;
        sum.bytes_in += t->parts[k].progress.bytes_in;
        sum.bytes_out += t->parts[k].progress.bytes_out;
      }
      in->progress.rows = sum.rows;
      in->progress.bytes_in = sum.bytes_in;
      in->progress.bytes_out = sum.bytes_out;
    }
    rows += in->progress.rows;
    bytes += in->progress.bytes_out;
    if (t->rate_ms == 0) {
      t->rate_ms = now;
      t->rate_rows = in->progress.rows;
    } else if (now - t->rate_ms >= 50) {
      double inst =
          (double)(in->progress.rows - t->rate_rows) * 1000.0 / (double)(now - t->rate_ms);
      in->rows_per_sec = in->rows_per_sec == 0 ? inst : 0.6 * in->rows_per_sec + 0.4 * inst;
      t->rate_ms = now;
      t->rate_rows = in->progress.rows;
    }
    dbp_run_event ev = {.kind = DBP_RUN_EV_TASK_PROGRESS,
                        .rows = in->progress.rows,
                        .bytes = in->progress.bytes_out,
                        .rows_per_sec = in->rows_per_sec,
                        .elapsed_ms = now - in->started_ms,
                        .attempts = in->attempts};
    dbp__run_emit(run, &ev, t);
  }
  dbp_run_event ev = {.kind = DBP_RUN_EV_RUN_PROGRESS,
                      .rows = rows,
                      .bytes = bytes,
                      .elapsed_ms = now - run->started_ms};
  dbp__run_emit(run, &ev, NULL);
}

/* The progress coroutine: a tick every interval until cancelled. */
static int ticker_main(void *arg, void **result) {
  dbp_run *run = arg;
  (void)result;
  while (dbp_sleep(run->rt, run->opts.progress_interval_ms) == 0) progress_tick(run);
  return 0;
}

/* Opens the pool of every connection a selected task uses. */
static int open_pools(dbp_run *run) {
  dbp_job *job = run->job;
  for (size_t i = 0; i < job->nconns; i++) {
    if (run->pool_size[i] == 0) continue; /* no selected task reads from it */
    /* Let DBAs see who is connected (pg_stat_activity, connection
     * attributes) unless the DSN names itself. */
    char *named = dbp_dsn_with_app_name(job->conns[i].dsn, "dbpipe");
    if (named == NULL) return DBP_ENOMEM;
    dbp_pool_options po = {.max_size = run->pool_size[i]};
    int rc = dbp_pool_new(run->rt, named, &po, &run->pools[i]);
    memset(named, 0, strlen(named));
    free(named);
    if (rc != 0) return rc;
  }
  return 0;
}

/* The run's status once every task has ended, the manifest aside. */
static dbp_run_state tasks_state(const dbp_run *run, int rc) {
  if (run->cancelled) return DBP_RUN_CANCELLED;
  bool failed = rc != 0;
  for (size_t i = 0; i < run->ntasks; i++) failed |= run->tasks[i].info.state != DBP_TASK_DONE;
  return failed ? DBP_RUN_FAILED : DBP_RUN_OK;
}

static void write_manifest(dbp_run *run, dbp_run_state st) {
  if (run->job->manifest == NULL) return;
  /* The manifest's "finished": when the last task ended. */
  clock_gettime(CLOCK_REALTIME, &run->wall_finished);
  char why[512] = "";
  const char *word = st == DBP_RUN_CANCELLED ? "interrupted" : dbp_run_state_name(st);
  int m = dbp__manifest_write(run, word, why, sizeof why);
  dbp_secrets_scrub_str(&run->secrets, why);
  run->manifest_written = m == 0;
  dbp_run_event ev = {.kind = m == 0 ? DBP_RUN_EV_MANIFEST_WRITTEN : DBP_RUN_EV_MANIFEST_FAILED,
                      .path = run->job->manifest,
                      .error = m,
                      .message = m == 0   ? ""
                                 : why[0] ? why
                                          : dbp_strerror(m)};
  dbp__run_emit(run, &ev, NULL);
}

/* The coroutine that owns the run: pools, the slot semaphore, the tasks,
 * the manifest. */
static int run_main(void *arg, void **result) {
  dbp_run *run = arg;
  (void)result;
  clock_gettime(CLOCK_REALTIME, &run->wall_started);
  run->started_ms = dbp_now(run->rt);

  /* Set up: pools, snapshots, tables found and planned. dbp_run_cancel
   * cancels this coroutine meanwhile. */
  run->setup_co = dbp_current(run->rt);
  int rc = dbp_sem_new(run->rt, run->opts.concurrency, &run->slots);
  if (rc == 0) rc = open_pools(run);
  if (rc == 0 && !run->cancelled) {
    size_t *want = calloc(run->job->nconns ? run->job->nconns : 1, sizeof *want);
    if (want == NULL) rc = DBP_ENOMEM;
    for (size_t i = 0; rc == 0 && i < run->ntasks; i++) {
      const dbp_job_task *jt = run->tasks[i].info.task;
      bool many = jt->ntables > 0 || jt->partitions > 0 || jt->chunk_rows > 0;
      want[jt->conn] += many ? run->pool_size[jt->conn] : 1;
    }
    if (rc == 0) rc = dbp__sources_open(run, want);
    free(want);
  }
  if (rc == 0 && !run->cancelled) rc = dbp__tables_plan(run);
  run->setup_co = NULL;

  dbp_run_event ev = {.kind = DBP_RUN_EV_RUN_STARTED};
  dbp__run_emit(run, &ev, NULL);
  run->announced = true;
  for (size_t i = 0; i < run->job->nconns; i++) dbp__source_announce(run, i);

  size_t n = run->ntasks ? run->ntasks : 1;
  dbp_co **cos = calloc(n, sizeof *cos);
  int *errs = calloc(n, sizeof *errs);
  size_t ncos = 0;
  if (rc == 0 && (cos == NULL || errs == NULL)) rc = DBP_ENOMEM;
  if (rc == 0 && run->opts.progress_interval_ms != DBP_FOREVER) {
    dbp_spawn_options so = {.name = "dbpipe-progress"};
    if (dbp_spawn(run->rt, &run->ticker, ticker_main, run, &so) != 0) run->ticker = NULL;
  }
  run->tasks_running = true;
  for (size_t i = 0; rc == 0 && i < run->ntasks; i++) {
    dbp__task *t = &run->tasks[i];
    if (t->info.state == DBP_TASK_FAILED) {
      /* Its table could not be found or planned: it never starts. */
      t->info.finished_ms = t->info.started_ms = dbp_now(run->rt);
      dbp_run_event fe = {.kind = DBP_RUN_EV_TASK_FAILED,
                          .error = t->info.error,
                          .sqlstate = t->info.sqlstate,
                          .db_errno = t->info.db_errno,
                          .message = t->info.message,
                          .detail = t->info.detail};
      dbp__run_emit(run, &fe, t);
      continue;
    }
    dbp_spawn_options so = {.name = t->info.name, .stack_size = STACK_SIZE};
    int s = dbp_spawn(run->rt, &t->co, dbp__task_main, t, &so);
    if (s != 0) {
      t->co = NULL;
      t->info.state = DBP_TASK_FAILED;
      t->info.error = s;
      snprintf(t->info.message, sizeof t->info.message, "cannot start: %s", dbp_strerror(s));
      t->info.finished_ms = t->info.started_ms = dbp_now(run->rt);
      dbp_run_event fe = {.kind = DBP_RUN_EV_TASK_FAILED, .error = s, .message = t->info.message};
      dbp__run_emit(run, &fe, t);
      continue;
    }
    cos[ncos++] = t->co;
  }
  if (ncos > 0) dbp_gather(run->rt, cos, ncos, NULL, errs, DBP_GATHER_ALL);
  run->tasks_running = false;
  for (size_t i = 0; i < run->ntasks; i++) run->tasks[i].co = NULL;
  if (rc != 0) {
    /* Setting up failed: nothing ran. */
    for (size_t i = 0; i < run->ntasks; i++) {
      dbp__task *t = &run->tasks[i];
      if (t->info.state != DBP_TASK_QUEUED) continue;
      t->info.state = DBP_TASK_FAILED;
      t->info.error = rc;
      snprintf(t->info.message, sizeof t->info.message, "not started: %s: %s", dbp_err_name(rc) + 4,
               dbp_strerror(rc));
      t->info.finished_ms = t->info.started_ms = dbp_now(run->rt);
      dbp_run_event fe = {.kind = DBP_RUN_EV_TASK_FAILED, .error = rc, .message = t->info.message};
      dbp__run_emit(run, &fe, t);
    }
  }
  if (run->ticker != NULL) {
    dbp_cancel(run->ticker);
    dbp_join(run->ticker, NULL);
    run->ticker = NULL;
  }
  dbp__sources_close(run);
  for (size_t i = 0; i < run->job->nconns; i++) {
    if (run->pools[i] != NULL) dbp_pool_close(run->pools[i], POOL_CLOSE_MS);
    run->pools[i] = NULL;
  }
  if (run->slots != NULL) dbp_sem_free(run->slots);
  run->slots = NULL;
  free(cos);
  free(errs);

  dbp_run_state st = tasks_state(run, rc);
  write_manifest(run, st);
  /* A run whose manifest is missing has not done what it was asked. */
  if (run->job->manifest != NULL && !run->manifest_written && st == DBP_RUN_OK) st = DBP_RUN_FAILED;
  clock_gettime(CLOCK_REALTIME, &run->wall_finished);
  run->status = st;
  dbp_event_set(run->done);
  dbp_run_summary sum;
  dbp_run_get_summary(run, &sum);
  dbp_run_event fin = {.kind = DBP_RUN_EV_RUN_FINISHED, .elapsed_ms = sum.duration_ms};
  dbp__run_emit(run, &fin, NULL);
  run->finished = true;
  return 0;
}

int dbp_run_start(dbp_run *run) {
  if (run == NULL) return DBP_EINVAL;
  if (run->started) return DBP_EBUSY;
  dbp_spawn_options so = {.name = "dbpipe-run", .stack_size = STACK_SIZE, .detached = true};
  int rc = dbp_spawn(run->rt, NULL, run_main, run, &so);
  if (rc == 0) run->started = true;
  return rc;
}

int dbp_run_wait(dbp_run *run, int64_t timeout_ms) {
  if (run == NULL) return DBP_EINVAL;
  if (!run->started) return DBP_ESTATE;
  return dbp_event_wait(run->done, timeout_ms);
}

void dbp_run_cancel(dbp_run *run) {
  if (run == NULL || run->finished || run->cancelled) return;
  run->cancelled = true;
  if (run->setup_co != NULL) dbp_cancel(run->setup_co); /* taking snapshots, planning */
  if (!run->tasks_running) return;                      /* tasks not spawned yet see the flag */
  for (size_t i = 0; i < run->ntasks; i++) {
    dbp__task *t = &run->tasks[i];
    dbp_task_state s = t->info.state;
    if (t->co != NULL && s != DBP_TASK_DONE && s != DBP_TASK_FAILED && s != DBP_TASK_CANCELLED)
      dbp_cancel(t->co);
  }
}

dbp_run_state dbp_run_status(const dbp_run *run) {
  return run->status;
}

size_t dbp_run_ntasks(const dbp_run *run) {
  return run->ntasks;
}

const dbp_task_info *dbp_run_task(const dbp_run *run, size_t i) {
  return run != NULL && i < run->ntasks ? &run->tasks[i].info : NULL;
}

size_t dbp_run_pool_stats(const dbp_run *run, size_t conn, dbp_pool_stats *out) {
  if (run == NULL || conn >= run->job->nconns || run->pools[conn] == NULL) return 0;
  if (out != NULL) dbp_pool_get_stats(run->pools[conn], out);
  return run->pool_size[conn];
}

/* True when the directory entry `name` is a temporary file of the export
 * whose temporary names carry `token`: "NAME.<token>.part", NAME being the
 * target's name or one of its part names. The token is the export's own
 * random one, so nothing of another process, and no file of the user's,
 * can match. */
static bool is_temp_of(const char *name, const char *token) {
  size_t n = strlen(name), tl = strlen(token);
  if (tl == 0 || n < tl + 7) return false;
  const char *tail = name + n - tl - 6; /* ".<token>.part" */
  return tail[0] == '.' && strncmp(tail + 1, token, tl) == 0 && strcmp(tail + 1 + tl, ".part") == 0;
}

/* Removes, in the directory of `path`, the temporary files of `token`
 * (when not empty) and the files whose names begin with `prefix` (when
 * not NULL: a split task's intermediate files). */
static void remove_in_dir(const char *path, const char *token, const char *prefix) {
  char *dir = strdup(path);
  if (dir == NULL) return;
  char *slash = strrchr(dir, '/');
  const char *dname = ".";
  if (slash == dir) {
    dname = "/";
  } else if (slash != NULL) {
    *slash = '\0';
    dname = dir;
  }
  DIR *d = opendir(dname);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      bool mine = (token[0] != '\0' && is_temp_of(e->d_name, token)) ||
                  (prefix != NULL && strncmp(e->d_name, prefix, strlen(prefix)) == 0);
      if (!mine) continue;
      char full[4096];
      snprintf(full, sizeof full, "%s/%s", dname, e->d_name);
      unlink(full);
    }
    closedir(d);
  }
  free(dir);
}

void dbp_run_remove_temp_files(const dbp_run *run) {
  if (run == NULL) return;
  for (size_t i = 0; i < run->ntasks; i++) {
    const dbp__task *t = &run->tasks[i];
    const dbp_task_info *in = &t->info;
    const char *path = in->path;
    if (in->state == DBP_TASK_DONE || strcmp(path, "-") == 0) continue;
    if (t->nparts == 0) {
      if (in->progress.temp_token[0] != '\0') remove_in_dir(path, in->progress.temp_token, NULL);
      continue;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, ".dbpipe-%s-p", t->token);
    remove_in_dir(path, "", t->per_part_files ? NULL : prefix);
    for (size_t k = 0; k < t->nparts; k++) {
      const dbp__part *p = &t->parts[k];
      if (p->progress.temp_token[0] != '\0') remove_in_dir(p->path, p->progress.temp_token, NULL);
    }
  }
}

int dbp_run_free(dbp_run *run) {
  if (run == NULL) return 0;
  if (run->started && !run->finished) return DBP_EBUSY;
  for (size_t i = 0; i < run->ntasks; i++) dbp__task_clear(&run->tasks[i]);
  for (size_t i = 0; i < run->nlists; i++) dbp_table_list_free(&run->lists[i]);
  free(run->lists);
  free(run->dbs);
  dbp_event_free(run->done);
  dbp_secrets_free(&run->secrets);
  free(run->subs);
  free(run->tasks);
  free(run->pool_size);
  free(run->pools);
  free(run);
  return 0;
}
