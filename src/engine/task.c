/* One task of a run: a slot from the run's semaphore, then attempts (a
 * connection from the pool, the export, the connection back) with
 * exponential backoff between retryable failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

#define MAX_BACKOFF_MS (5 * 60 * 1000)

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
 * left of the attempt and the task's live counters. */
static dbp_export_options attempt_export_options(dbp__task *t, int64_t time_left_ms) {
  const dbp_job_task *jt = t->info.task;
  dbp_export_options o = jt->export;
  o.timeout_ms = time_left_ms;
  o.no_fsync = t->run->opts.no_fsync;
  o.progress = &t->info.progress;
  return o;
}

/* Waits: one attempt of a task. On failure t->info says why and *err holds
 * the driver's details. */
static int attempt(dbp__task *t, dbp_dberr *err) {
  dbp_run *run = t->run;
  dbp_rt *rt = run->rt;
  const dbp_job_task *jt = t->info.task;
  const dbp_job_conn *jc = &run->job->conns[jt->conn];
  dbp_pool *pool = run->pools[jt->conn];
  dbp_conn *c = NULL;
  char context[512];
  int64_t timeout = jt->timeout_ms > 0 ? jt->timeout_ms : DBP_FOREVER;

  memset(err, 0, sizeof *err);
  dbp_export_result_free(&t->info.result);
  memset(&t->info.result, 0, sizeof t->info.result);
  memset(&t->info.progress, 0, sizeof t->info.progress);
  t->info.rows_per_sec = 0;
  t->rate_ms = 0;
  t->info.state = DBP_TASK_CONNECTING;

  uint64_t t0 = dbp_now(rt);
#define DEADLINE_PASSED() (timeout != DBP_FOREVER && dbp_now(rt) - t0 >= (uint64_t)timeout)
  int rc = dbp_pool_acquire(pool, timeout, &c, err);
  if (rc != 0) {
    snprintf(context, sizeof context, "connection '%s': ", jc->name);
    describe_error(t, rc, err, rc == DBP_ECANCELED ? NULL : context, DEADLINE_PASSED());
    return rc;
  }
  /* The no-progress limit is the task's, whoever used the connection before. */
  dbp_conn_set_io_timeout(c, jt->idle_timeout_ms);
  rc = make_parent(rt, jt->path, context, sizeof context);
  if (rc != 0) {
    dbp_pool_release(pool, c);
    describe_error(t, rc, NULL, context, false);
    return rc;
  }

  t->info.state = DBP_TASK_RUNNING;
  int64_t left = DBP_FOREVER;
  if (timeout != DBP_FOREVER) {
    int64_t spent = (int64_t)(dbp_now(rt) - t0);
    left = timeout > spent ? timeout - spent : 1;
  }
  dbp_export_options o = attempt_export_options(t, left);
  /* A table is the pipeline's to name: it quotes it for the connection. */
  rc = jt->query != NULL ? dbp_export_query(c, jt->query, 0, NULL, jt->path, &o, &t->info.result)
                         : dbp_export_table(c, jt->table, jt->path, &o, &t->info.result);
  if (rc != 0) {
    *err = t->info.result.err;
    describe_error(t, rc, err, NULL, DEADLINE_PASSED());
  }
#undef DEADLINE_PASSED
  dbp_pool_release(pool, c);
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
  for (;;) {
    dbp_dberr err;
    in->attempts++;
    rc = attempt(t, &err);
    if (rc == 0 || rc == DBP_ECANCELED || run->cancelled) break;
    if (!retryable(&err, rc) || in->attempts >= in->max_attempts) break;
    int64_t delay = backoff(in->task->retry_backoff_ms, in->attempts);
    in->state = DBP_TASK_RETRYING;
    dbp_run_event rev = {.kind = DBP_RUN_EV_TASK_RETRY,
                         .attempt = in->attempts,
                         .attempts = in->attempts,
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
  finish(t, rc);
  dbp_sem_release(run->slots);
  return rc;
}
