/* One task of a run: a slot from the run's semaphore, then attempts (a
 * connection from the pool, the export, the connection back) with
 * exponential backoff between retryable failures. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "export/export_int.h"
#include "export/writer.h"

#define MAX_BACKOFF_MS (5 * 60 * 1000)
#define PART_STACK_SIZE (256 * 1024)

/* Worth another attempt: what the driver calls retryable (a refused or
 * lost connection, a deadlock, ...; never a bad password or an unknown
 * database), and a server with too many connections. */
static bool retryable(const dbp_dberr *e, int rc) {
  return e->retryable || rc == DBP_ETOOMANY || e->code == DBP_ETOOMANY;
}

/* Records why an attempt failed in t->info: the code, SQLSTATE and errno as
 * fields, the message as a user reads it, passwords scrubbed. `e` may be
 * NULL; `context` prefixes the message. `deadline_passed` tells that the
 * attempt's own time limit ran out (so a DBP_ETIMEDOUT is the task's
 * timeout, not the connection's idle timeout or a connect timeout). */
static void describe_error(dbp__task *t, int rc, const dbp_dberr *e, const char *context,
                           bool deadline_passed) {
  dbp_task_info *in = &t->info;
  dbp_buf s = {0};
  char buf[700];
  in->error = rc;
  in->sqlstate[0] = '\0';
  in->db_errno = 0;
  in->detail[0] = '\0';
  if (e != NULL) {
    snprintf(in->sqlstate, sizeof in->sqlstate, "%s", e->sqlstate);
    in->db_errno = e->db_errno;
    snprintf(in->detail, sizeof in->detail, "%s", e->message);
  }
  if (context != NULL) dbp_buf_puts(&s, context);
  if (rc == DBP_ETIMEDOUT && deadline_passed) {
    char d[32];
    dbp_buf_printf(&s, "timed out after %s",
                   dbp_fmt_duration((uint64_t)in->task->timeout_ms, d, sizeof d));
    if (e != NULL && e->message[0] != '\0') dbp_buf_printf(&s, " (%s)", e->message);
  } else if (e != NULL && e->message[0] != '\0') {
    dbp_dberr copy = *e;
    if (copy.code == 0) copy.code = rc;
    dbp_buf_puts(&s, dbp_dberr_format(&copy, buf, sizeof buf));
  } else {
    dbp_buf_printf(&s, "%s: %s", dbp_err_name(rc) + 4, dbp_strerror(rc));
  }
  /* Drivers redact DSNs themselves; this catches a password quoted anywhere
   * else in a server's or library's message. */
  dbp_secrets_scrub(&t->run->secrets, &s);
  dbp_secrets_scrub_str(&t->run->secrets, in->detail);
  snprintf(in->message, sizeof in->message, "%s", s.data != NULL ? s.data : dbp_strerror(rc));
  dbp_buf_free(&s);
}

/* Waits: creates the directory that will hold `path`. */
static int make_parent(dbp_rt *rt, const char *path, char *why, size_t len) {
  if (strcmp(path, "-") == 0) return 0; /* standard output */
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path) return 0;
  char *dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL) return DBP_ENOMEM;
  int rc = dbp_fs_mkdir_p(rt, dir, 0777);
  if (rc != 0) snprintf(why, len, "cannot create directory %s: ", dir);
  free(dir);
  return rc;
}

/* The export options of one attempt: everything the job task says about
 * the output (kept in this one place), the run's fsync choice, the time
 * left of the attempt and the live counters. */
static dbp_export_options attempt_export_options(dbp__task *t, int64_t time_left_ms,
                                                 dbp_export_progress *progress) {
  const dbp_job_task *jt = t->info.task;
  dbp_export_options o = jt->export;
  o.timeout_ms = time_left_ms;
  o.no_fsync = t->run->opts.no_fsync;
  o.progress = progress;
  return o;
}

/* Waits: one attempt of a task, or of part p of a split one. On failure
 * t->info says why and *err holds the driver's details. */
static int attempt(dbp__task *t, dbp__part *p, dbp_dberr *err) {
  dbp_run *run = t->run;
  dbp_rt *rt = run->rt;
  const dbp_job_task *jt = t->info.task;
  const dbp_job_conn *jc = &run->job->conns[jt->conn];
  dbp_conn *c = NULL;
  char context[512];
  int64_t timeout = jt->timeout_ms > 0 ? jt->timeout_ms : DBP_FOREVER;
  dbp_export_result *res = p != NULL ? &p->result : &t->info.result;
  dbp_export_progress *prog = p != NULL ? &p->progress : &t->info.progress;
  const char *path = p != NULL ? p->path : t->info.path;

  memset(err, 0, sizeof *err);
  dbp_export_result_free(res);
  memset(res, 0, sizeof *res);
  memset(prog, 0, sizeof *prog);
  if (p == NULL) {
    t->info.rows_per_sec = 0;
    t->rate_ms = 0;
    t->info.state = DBP_TASK_CONNECTING;
  }
  if (p != NULL) p->state = DBP_TASK_CONNECTING;

  uint64_t t0 = dbp_now(rt);
#define DEADLINE_PASSED() (timeout != DBP_FOREVER && dbp_now(rt) - t0 >= (uint64_t)timeout)
  int rc = dbp__source_acquire(run, jt->conn, timeout, &c, err);
  if (rc != 0) {
    snprintf(context, sizeof context, "connection '%s': ", jc->name);
    describe_error(t, rc, err, rc == DBP_ECANCELED ? NULL : context, DEADLINE_PASSED());
    return rc;
  }
  /* The no-progress limit is the task's, whoever used the connection before. */
  dbp_conn_set_io_timeout(c, jt->idle_timeout_ms);
  rc = make_parent(rt, path, context, sizeof context);
  if (rc != 0) {
    dbp__source_release(run, jt->conn, c, false);
    describe_error(t, rc, NULL, context, false);
    return rc;
  }

  if (p == NULL) t->info.state = DBP_TASK_RUNNING;
  if (p != NULL) p->state = DBP_TASK_RUNNING;
  int64_t left = DBP_FOREVER;
  if (timeout != DBP_FOREVER) {
    int64_t spent = (int64_t)(dbp_now(rt) - t0);
    left = timeout > spent ? timeout - spent : 1;
  }
  dbp_export_options o = attempt_export_options(t, left, prog);
  /* Parts after the first go into one file behind the first one's header. */
  if (p != NULL && p->index > 0 && !t->per_part_files && jt->export.max_rows == 0 &&
      jt->export.max_bytes == 0)
    o.encode.no_header = true;
  if (t->has_plan) {
    char *sql = dbp_plan_part_sql(&t->plan, p != NULL ? p->index : 0, jt->where);
    rc = sql != NULL ? dbp_export_query(c, sql, 0, NULL, path, &o, res) : DBP_ENOMEM;
    free(sql);
  } else if (jt->query != NULL) {
    rc = dbp_export_query(c, jt->query, 0, NULL, path, &o, res);
  } else {
    /* A table the catalog did not list: the pipeline quotes its name. */
    rc = dbp_export_table(c, jt->table, path, &o, res);
  }
  if (rc != 0) {
    *err = res->err;
    if (p != NULL && t->nparts > 1) {
      char *range = dbp_plan_part_describe(&t->plan, p->index);
      snprintf(context, sizeof context, "part %zu/%zu (%s): ", p->index + 1, t->nparts,
               range != NULL ? range : "?");
      free(range);
      describe_error(t, rc, err, context, DEADLINE_PASSED());
    } else {
      describe_error(t, rc, err, NULL, DEADLINE_PASSED());
    }
  }
#undef DEADLINE_PASSED
  if (rc == 0) run->dbs[jt->conn].exports_done++;
  dbp__source_release(run, jt->conn, c, rc != 0);
  return rc;
}

/* Records how a task ended (rc 0, an error, or DBP_ECANCELED) and tells the
 * subscribers. */
static void finish(dbp__task *t, int rc) {
  dbp_run *run = t->run;
  dbp_task_info *in = &t->info;
  in->finished_ms = dbp_now(run->rt);
  bool started = in->started_ms != 0;
  if (!started) in->started_ms = in->finished_ms;
  dbp_run_event ev = {.attempts = in->attempts,
                      .elapsed_ms = started ? in->finished_ms - in->started_ms : 0};
  if (rc == 0) {
    in->state = DBP_TASK_DONE;
    in->error = 0;
    in->message[0] = in->detail[0] = in->sqlstate[0] = '\0';
    ev.kind = DBP_RUN_EV_TASK_FINISHED;
    ev.rows = in->result.rows;
    ev.bytes = in->result.bytes;
    ev.files = in->result.files;
    ev.nfiles = in->result.nfiles;
  } else if (rc == DBP_ECANCELED || run->cancelled) {
    in->state = DBP_TASK_CANCELLED;
    if (in->message[0] == '\0' || rc == DBP_ECANCELED) {
      snprintf(in->message, sizeof in->message, "interrupted");
      in->error = DBP_ECANCELED;
    }
    ev.kind = DBP_RUN_EV_TASK_CANCELLED;
  } else {
    in->state = DBP_TASK_FAILED;
    ev.kind = DBP_RUN_EV_TASK_FAILED;
  }
  if (ev.kind != DBP_RUN_EV_TASK_FINISHED) {
    ev.error = in->error;
    ev.sqlstate = in->sqlstate;
    ev.db_errno = in->db_errno;
    ev.message = in->message;
    ev.detail = in->detail;
  }
  dbp__run_emit(run, &ev, t);
}

/* The delay before attempt n+1 after n failed: the backoff, doubled for
 * every retry so far, at most MAX_BACKOFF_MS. */
static int64_t backoff(int64_t first, int failed) {
  int64_t delay = first;
  for (int i = 1; i < failed && delay < MAX_BACKOFF_MS; i++) delay *= 2;
  return delay > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : delay;
}

/* Waits: the attempts of a task, or of part p: again after a retryable
 * failure, with backoff, up to the task's retries. */
static int run_unit(dbp__task *t, dbp__part *p) {
  dbp_run *run = t->run;
  dbp_task_info *in = &t->info;
  int rc;
  int *attempts = p != NULL ? &p->attempts : &in->attempts;
  for (;;) {
    dbp_dberr err;
    ++*attempts;
    if (*attempts > in->attempts) in->attempts = *attempts;
    rc = attempt(t, p, &err);
    if (rc == 0 || rc == DBP_ECANCELED || run->cancelled) break;
    if (p != NULL && t->parts_failed) break; /* another part failed: the task has */
    if (!retryable(&err, rc) || *attempts >= in->max_attempts) break;
    int64_t delay = backoff(in->task->retry_backoff_ms, *attempts);
    if (p == NULL) in->state = DBP_TASK_RETRYING;
    if (p != NULL) p->state = DBP_TASK_RETRYING;
    dbp_run_event rev = {.kind = DBP_RUN_EV_TASK_RETRY,
                         .attempt = *attempts,
                         .attempts = *attempts,
                         .delay_ms = delay,
                         .error = in->error,
                         .sqlstate = in->sqlstate,
                         .db_errno = in->db_errno,
                         .message = in->message,
                         .detail = in->detail};
    dbp__run_emit(run, &rev, t);
    int s = dbp_sleep(run->rt, delay);
    if (s != 0) {
      rc = s;
      break;
    }
  }
  if (p != NULL) p->state = rc == 0 ? DBP_TASK_DONE : DBP_TASK_FAILED;
  return rc;
}

/* A part runner of a split task: takes the next part until none is left
 * or one has failed. */
static int part_runner(void *arg, void **result) {
  dbp__task *t = arg;
  (void)result;
  int rc = 0;
  while (!t->parts_failed && !t->run->cancelled && t->next_part < t->nparts) {
    dbp__part *p = &t->parts[t->next_part++];
    rc = run_unit(t, p);
    if (rc != 0) {
      t->parts_failed = true;
      break;
    }
    t->info.parts_done++;
  }
  return rc;
}

/* Removes the files of a split task's parts: the intermediate files, and
 * the {part} files that were put in place when the task as a whole did
 * not succeed. */
static void remove_part_files(dbp__task *t) {
  for (size_t k = 0; k < t->nparts; k++) {
    dbp_export_result *r = &t->parts[k].result;
    for (size_t f = 0; f < r->nfiles; f++) dbp_fs_unlink(t->run->rt, r->files[f].path);
  }
}

/* Waits: fsyncs the directory holding path (renames are durable then). */
static void sync_dir(dbp_rt *rt, const char *path) {
  char *dir = dbp__dir_of(path);
  int fd = -1;
  if (dir != NULL && dbp_fs_open(rt, dir, O_RDONLY | O_DIRECTORY, 0, &fd) == 0) {
    dbp_fs_fsync(rt, fd);
    dbp_fs_close(rt, fd);
  }
  free(dir);
}

/* Off the loop: the writer's clean-up of a longer series' leftovers. */
typedef struct past_job {
  const char *path;
  unsigned last;
} past_job;

static void remove_past_work(void *arg) {
  past_job *j = arg;
  dbp__remove_parts_past(j->path, j->last);
}

static int add_file(dbp_export_result *r, const dbp_export_file *f) {
  dbp_export_file *n = realloc(r->files, (r->nfiles + 1) * sizeof *n);
  if (n == NULL) return DBP_ENOMEM;
  r->files = n;
  r->files[r->nfiles] = *f;
  r->files[r->nfiles].path = strdup(f->path);
  if (r->files[r->nfiles].path == NULL) return DBP_ENOMEM;
  r->nfiles++;
  r->rows += f->rows;
  r->bytes += f->bytes;
  return 0;
}

/* Waits: makes the task's files out of its parts' files, in part (key)
 * order: the {part} files as they are; else one file, the parts
 * concatenated; else, when the export splits files (max_rows, max_bytes),
 * the parts' files renamed into one numbered series. */
static int assemble(dbp__task *t) {
  dbp_run *run = t->run;
  dbp_export_result *res = &t->info.result;
  const dbp_job_task *jt = t->info.task;
  char why[512] = "";
  int rc = 0;
  dbp_export_result_free(res);
  memset(res, 0, sizeof *res);
  if (t->per_part_files) {
    for (size_t k = 0; rc == 0 && k < t->nparts; k++) {
      const dbp_export_result *r = &t->parts[k].result;
      for (size_t f = 0; rc == 0 && f < r->nfiles; f++) rc = add_file(res, &r->files[f]);
    }
    if (rc != 0) describe_error(t, rc, NULL, NULL, false);
    return rc;
  }
  if (jt->export.max_rows == 0 && jt->export.max_bytes == 0) {
    const char **inputs = calloc(t->nparts, sizeof *inputs);
    uint64_t *rows = calloc(t->nparts, sizeof *rows);
    dbp_export_file out = {0};
    rc = inputs != NULL && rows != NULL ? 0 : DBP_ENOMEM;
    for (size_t k = 0; rc == 0 && k < t->nparts; k++) {
      inputs[k] = t->parts[k].result.files[0].path;
      rows[k] = t->parts[k].result.files[0].rows;
    }
    if (rc == 0)
      rc = dbp_concat_files_atomic(run->rt, inputs, t->nparts, rows, t->path, run->opts.no_fsync,
                                   &out, why, sizeof why);
    if (rc == 0) rc = add_file(res, &out);
    free(out.path);
    free(inputs);
    free(rows);
    remove_part_files(t);
    if (rc != 0) {
      dbp_dberr e = {.code = rc};
      snprintf(e.message, sizeof e.message, "%s", why[0] ? why : dbp_strerror(rc));
      describe_error(t, rc, &e, NULL, false);
    }
    return rc;
  }
  /* A numbered series: out-00001.csv, out-00002.csv, ... across the parts. */
  unsigned n = 0;
  for (size_t k = 0; rc == 0 && k < t->nparts; k++) {
    const dbp_export_result *r = &t->parts[k].result;
    for (size_t f = 0; rc == 0 && f < r->nfiles; f++) {
      char *final = dbp__part_path(t->path, ++n);
      if (final == NULL) {
        rc = DBP_ENOMEM;
        break;
      }
      dbp_export_file ef = r->files[f];
      rc = dbp_fs_rename(run->rt, r->files[f].path, final);
      if (rc != 0)
        snprintf(why, sizeof why, "rename %s to %s: %s", r->files[f].path, final, dbp_strerror(rc));
      ef.path = final;
      if (rc == 0) rc = add_file(res, &ef);
      free(final);
    }
  }
  if (rc != 0) {
    for (size_t f = 0; f < res->nfiles; f++) dbp_fs_unlink(run->rt, res->files[f].path);
    remove_part_files(t);
    dbp_export_result_free(res);
    memset(res, 0, sizeof *res);
    dbp_dberr e = {.code = rc};
    snprintf(e.message, sizeof e.message, "%s", why[0] ? why : dbp_strerror(rc));
    describe_error(t, rc, &e, NULL, false);
    return rc;
  }
  /* Files of an earlier, longer series would read as part of this one. */
  past_job pj = {t->path, n};
  dbp_work(run->rt, remove_past_work, &pj);
  if (!run->opts.no_fsync) sync_dir(run->rt, t->path);
  return 0;
}

/* Waits: a split task: part runners on as many connections as the
 * database gives, then the files put together. */
static int run_split(dbp__task *t) {
  dbp_run *run = t->run;
  size_t conn = t->info.task->conn;
  size_t nrun = run->pool_size[conn];
  if (run->dbs[conn].snapshot && run->dbs[conn].live > 0 && run->dbs[conn].live < nrun)
    nrun = run->dbs[conn].live;
  if (nrun > t->nparts) nrun = t->nparts;
  if (nrun == 0) nrun = 1;
  t->info.state = DBP_TASK_RUNNING;
  dbp_co **cos = calloc(nrun, sizeof *cos);
  int *errs = calloc(nrun, sizeof *errs);
  size_t ncos = 0;
  int rc = cos != NULL && errs != NULL ? 0 : DBP_ENOMEM;
  for (size_t k = 0; rc == 0 && k < nrun; k++) {
    dbp_spawn_options so = {.name = t->info.name, .stack_size = PART_STACK_SIZE};
    if (dbp_spawn(run->rt, &cos[ncos], part_runner, t, &so) == 0) ncos++;
  }
  if (ncos == 0 && rc == 0) rc = DBP_ENOMEM;
  int g = ncos > 0 ? dbp_gather(run->rt, cos, ncos, NULL, errs, DBP_GATHER_ALL) : 0;
  for (size_t k = 0; rc == 0 && k < ncos; k++)
    if (errs[k] != 0) rc = errs[k];
  if (rc == 0 && g != 0) rc = g;
  if (rc == 0 && run->cancelled) rc = DBP_ECANCELED;
  free(cos);
  free(errs);
  if (rc == 0)
    rc = assemble(t);
  else
    remove_part_files(t);
  if (rc != 0 && rc != DBP_ECANCELED && t->info.message[0] == '\0')
    describe_error(t, rc, NULL, NULL, false);
  return rc;
}

int dbp__task_main(void *arg, void **result) {
  dbp__task *t = arg;
  dbp_run *run = t->run;
  dbp_task_info *in = &t->info;
  (void)result;
  int rc = run->cancelled ? DBP_ECANCELED : dbp_sem_acquire(run->slots, DBP_FOREVER);
  if (rc != 0) {
    finish(t, rc);
    return rc;
  }
  in->started_ms = dbp_now(run->rt);
  dbp_run_event ev = {.kind = DBP_RUN_EV_TASK_STARTED};
  dbp__run_emit(run, &ev, t);
  rc = t->nparts > 0 ? run_split(t) : run_unit(t, NULL);
  if (rc == 0 && t->nparts == 0) in->parts_done = in->nparts;
  finish(t, rc);
  dbp_sem_release(run->slots);
  return rc;
}
