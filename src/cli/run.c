/* Running a job: every task a coroutine on one runtime, at most
 * `concurrency` at once, one pool per database, retries with backoff, and
 * SIGINT/SIGTERM cancelling everything cleanly. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define STACK_SIZE (256 * 1024)
#define MAX_BACKOFF_MS (5 * 60 * 1000)
#define POOL_CLOSE_MS 10000
#define PROGRESS_MS 200
#define DEFAULT_POOL_MAX 4

const char *cli_task_state_name(cli_task_state s) {
  switch (s) {
    case CLI_T_QUEUED:
      return "queued";
    case CLI_T_CONNECTING:
      return "connecting";
    case CLI_T_RUNNING:
      return "running";
    case CLI_T_RETRYING:
      return "retrying";
    case CLI_T_DONE:
      return "done";
    case CLI_T_FAILED:
      return "failed";
    case CLI_T_INTERRUPTED:
      return "interrupted";
  }
  return "?";
}

/* Worth another attempt: what the driver calls retryable (a refused or
 * lost connection, a deadlock, ...; never a bad password or an unknown
 * database), and a server with too many connections. */
static bool retryable(const dbp_dberr *e, int rc) {
  return e->retryable || rc == DBP_ETOOMANY || e->code == DBP_ETOOMANY;
}

/* The statement a task runs; malloc'd, NULL when out of memory. */
static char *task_sql(const cli_task *t) {
  const dbp_job_task *jt = t->jt;
  if (jt->query != NULL) return strdup(jt->query);
  char *q = dbp_quote_ident(t->run->job->conns[jt->conn].kind, jt->table);
  if (q == NULL) return NULL;
  char *sql = NULL;
  if (asprintf(&sql, "SELECT * FROM %s", q) < 0) sql = NULL;
  free(q);
  return sql;
}

/* Describes a failure in t->error, passwords scrubbed. */
static void describe_error(cli_task *t, int rc, const dbp_dberr *e, const char *context) {
  char buf[700];
  cli_str s = {0};
  bool idle = e != NULL && strstr(e->message, "idle") != NULL;
  if (rc == DBP_ETIMEDOUT && t->jt->timeout_ms != DBP_JOB_NO_TIMEOUT && !idle) {
    char d[32];
    cli_str_printf(&s, "timed out after %s",
                   cli_fmt_duration((uint64_t)t->jt->timeout_ms, d, sizeof d));
    if (e != NULL && e->message[0] != '\0') cli_str_printf(&s, " (%s)", e->message);
  } else if (e != NULL && e->message[0] != '\0') {
    dbp_dberr copy = *e;
    if (copy.code == 0) copy.code = rc;
    cli_str_puts(&s, dbp_dberr_format(&copy, buf, sizeof buf));
  } else {
    cli_str_printf(&s, "%s: %s", dbp_err_name(rc) + 4, dbp_strerror(rc));
  }
  /* Drivers redact DSNs themselves; this catches a password quoted anywhere
   * else in a server's or library's message. */
  cli_log_scrub(t->run->log, &s);
  snprintf(t->error, sizeof t->error, "%s%s", context != NULL ? context : "",
           s.p != NULL ? s.p : dbp_strerror(rc));
  cli_str_free(&s);
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

/* Waits: one attempt of a task: a connection from the pool, the export, the
 * connection back. On failure t->error says why. */
static int attempt(cli_task *t, const char *sql, dbp_dberr *err) {
  cli_run *run = t->run;
  const dbp_job_task *jt = t->jt;
  const dbp_job_conn *jc = &run->job->conns[jt->conn];
  dbp_pool *pool = run->pools[jt->conn];
  dbp_conn *c = NULL;
  char context[512];
  int64_t timeout = jt->timeout_ms == DBP_JOB_NO_TIMEOUT ? DBP_FOREVER : jt->timeout_ms;

  memset(err, 0, sizeof *err);
  dbp_export_result_free(&t->res);
  memset(&t->res, 0, sizeof t->res);
  memset(&t->progress, 0, sizeof t->progress);
  t->rate = 0;
  t->rate_ms = 0;
  t->state = CLI_T_CONNECTING;

  uint64_t t0 = dbp_now(run->rt);
  int rc = dbp_pool_acquire(pool, timeout, &c, err);
  if (rc != 0) {
    snprintf(context, sizeof context, "connection '%s': ", jc->name);
    describe_error(t, rc, err, rc == DBP_ECANCELED ? NULL : context);
    return rc;
  }
  /* The no-progress limit is the task's, whoever used the connection before. */
  dbp_conn_set_io_timeout(
      c, jt->idle_timeout_ms == DBP_JOB_NO_TIMEOUT ? DBP_FOREVER : jt->idle_timeout_ms);
  rc = make_parent(run->rt, jt->path, context, sizeof context);
  if (rc != 0) {
    dbp_pool_release(pool, c);
    describe_error(t, rc, NULL, context);
    return rc;
  }

  t->state = CLI_T_RUNNING;
  dbp_export_options o = {
      .format = jt->export.format,
      .compression = jt->export.compression,
      .level = jt->export.level,
      .encode = {.no_header = jt->export.encode.no_header,
                 .delimiter = jt->export.encode.delimiter,
                 .null_string = jt->export.encode.null_string,
                 .crlf = jt->export.encode.crlf},
      .max_rows = jt->export.max_rows,
      .max_bytes = jt->export.max_bytes,
      .timeout_ms = DBP_FOREVER,
      .progress = &t->progress,
  };
  if (timeout != DBP_FOREVER) {
    int64_t spent = (int64_t)(dbp_now(run->rt) - t0);
    o.timeout_ms = timeout > spent ? timeout - spent : 1;
  }
  rc = dbp_export_query(c, sql, 0, NULL, jt->path, &o, &t->res);
  if (rc != 0) {
    *err = t->res.err;
    describe_error(t, rc, err, NULL);
  }
  dbp_pool_release(pool, c);
  return rc;
}

static void log_started(cli_task *t) {
  const dbp_job_conn *jc = &t->run->job->conns[t->jt->conn];
  /* On a terminal the live display shows what runs. */
  if (t->run->use_progress) return;
  cli_str f = {0}, text = {0};
  cli_str_puts(&f, "\"connection\":");
  cli_str_json(&f, jc->name);
  cli_str_puts(&f, ",\"path\":");
  cli_str_json(&f, t->jt->path);
  cli_str_printf(&text, "started (from %s to %s)", jc->name,
                 strcmp(t->jt->path, "-") == 0 ? "standard output" : cli_display_path(t->jt->path));
  cli_log_event(t->run->log, CLI_INFO, "task_started", t->jt->name, text.p, f.p);
  cli_str_free(&f);
  cli_str_free(&text);
}

/* Logs a finished task: rows, bytes, duration and files, or the error. */
static void log_finished(cli_task *t) {
  cli_run *run = t->run;
  uint64_t ms = t->finished_ms - t->started_ms;
  cli_str f = {0}, text = {0};
  if (t->state == CLI_T_DONE) {
    char rows[32], bytes[32], dur[32];
    cli_str_printf(&f,
                   "\"rows\":%llu,\"bytes\":%llu,\"duration_ms\":%llu,\"attempts\":%d,"
                   "\"files\":[",
                   (unsigned long long)t->res.rows, (unsigned long long)t->res.bytes,
                   (unsigned long long)ms, t->attempts);
    for (size_t i = 0; i < t->res.nfiles; i++) {
      const dbp_export_file *ef = &t->res.files[i];
      cli_str_puts(&f, i ? ",{\"path\":" : "{\"path\":");
      cli_str_json(&f, ef->path);
      cli_str_printf(&f, ",\"rows\":%llu,\"bytes\":%llu,\"sha256\":", (unsigned long long)ef->rows,
                     (unsigned long long)ef->bytes);
      cli_str_json(&f, ef->sha256);
      cli_str_puts(&f, "}");
    }
    cli_str_puts(&f, "]");
    cli_str_printf(&text, "done: %s row%s, %s in %s -> ", cli_fmt_count(t->res.rows, rows, 32),
                   t->res.rows == 1 ? "" : "s", cli_fmt_bytes(t->res.bytes, bytes, 32),
                   cli_fmt_duration(ms, dur, 32));
    if (t->res.nfiles == 1) {
      cli_str_puts(&text, cli_display_path(t->res.files[0].path));
    } else if (t->res.nfiles > 1) {
      cli_str_printf(&text, "%zu files: %s ... %s", t->res.nfiles,
                     cli_display_path(t->res.files[0].path),
                     cli_display_path(t->res.files[t->res.nfiles - 1].path));
    } else {
      cli_str_puts(&text, "no files");
    }
    cli_log_event(run->log, CLI_INFO, "task_finished", t->jt->name, text.p, f.p);
  } else {
    bool interrupted = t->state == CLI_T_INTERRUPTED;
    cli_str_puts(&f, "\"error\":");
    cli_str_json(&f, t->error);
    cli_str_printf(&f, ",\"attempts\":%d,\"duration_ms\":%llu", t->attempts,
                   (unsigned long long)(t->started_ms ? ms : 0));
    if (interrupted) {
      cli_str_puts(&text, "interrupted");
    } else {
      cli_str_printf(&text, "failed: %s", t->error);
      if (t->attempts > 1) cli_str_printf(&text, " (after %d attempts)", t->attempts);
    }
    cli_log_event(run->log, interrupted ? CLI_WARN : CLI_ERROR,
                  interrupted ? "task_interrupted" : "task_failed", t->jt->name, text.p, f.p);
  }
  cli_str_free(&f);
  cli_str_free(&text);
}

/* Records how a task ended (rc 0, an error, or DBP_ECANCELED) and logs it. */
static void finish(cli_task *t, int rc) {
  t->rc = rc;
  t->finished_ms = dbp_now(t->run->rt);
  if (t->started_ms == 0) t->started_ms = t->finished_ms;
  if (rc == 0) {
    t->state = CLI_T_DONE;
  } else if (rc == DBP_ECANCELED || t->run->interrupted) {
    t->state = CLI_T_INTERRUPTED;
    if (t->error[0] == '\0' || rc == DBP_ECANCELED)
      snprintf(t->error, sizeof t->error, "interrupted");
  } else {
    t->state = CLI_T_FAILED;
  }
  log_finished(t);
}

/* The coroutine of one task. */
static int task_main(void *arg, void **result) {
  cli_task *t = arg;
  cli_run *run = t->run;
  (void)result;
  int rc = run->interrupted ? DBP_ECANCELED : dbp_sem_acquire(run->slots, DBP_FOREVER);
  if (rc != 0) {
    finish(t, rc);
    return rc;
  }
  t->started_ms = dbp_now(run->rt);
  log_started(t);
  char *sql = task_sql(t);
  if (sql == NULL) {
    rc = DBP_ENOMEM;
    describe_error(t, rc, NULL, NULL);
  }
  while (sql != NULL) {
    dbp_dberr err;
    t->attempts++;
    rc = attempt(t, sql, &err);
    if (rc == 0 || rc == DBP_ECANCELED || run->interrupted) break;
    if (!retryable(&err, rc) || t->attempts > t->jt->retries) break;
    int64_t delay = t->jt->retry_backoff_ms;
    for (int i = 1; i < t->attempts && delay < MAX_BACKOFF_MS; i++) delay *= 2;
    if (delay > MAX_BACKOFF_MS) delay = MAX_BACKOFF_MS;
    t->state = CLI_T_RETRYING;
    char d[32];
    cli_str f = {0}, text = {0};
    cli_str_printf(&text, "attempt %d of %d failed (%s); retrying in %s", t->attempts,
                   t->jt->retries + 1, t->error, cli_fmt_duration((uint64_t)delay, d, sizeof d));
    cli_str_printf(&f, "\"attempt\":%d,\"delay_ms\":%lld,\"error\":", t->attempts,
                   (long long)delay);
    cli_str_json(&f, t->error);
    cli_log_event(run->log, CLI_WARN, "task_retry", t->jt->name, text.p, f.p);
    cli_str_free(&f);
    cli_str_free(&text);
    int s = dbp_sleep(run->rt, delay);
    if (s != 0) {
      rc = s;
      break;
    }
  }
  free(sql);
  finish(t, rc);
  dbp_sem_release(run->slots);
  return rc;
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void stop_handles(cli_run *run);
static void write_manifest(cli_run *run, int rc);

/* The coroutine that owns the run: pools, the slot semaphore, the tasks. */
static int run_main(void *arg, void **result) {
  cli_run *run = arg;
  dbp_job *job = run->job;
  (void)result;
  int rc = 0;
  dbp_co **cos = calloc(run->ntasks ? run->ntasks : 1, sizeof *cos);
  int *errs = calloc(run->ntasks ? run->ntasks : 1, sizeof *errs);
  size_t ncos = 0;
  if (cos == NULL || errs == NULL) rc = DBP_ENOMEM;
  if (rc == 0) rc = dbp_sem_new(run->rt, run->concurrency, &run->slots);

  for (size_t i = 0; rc == 0 && i < job->nconns; i++) {
    if (run->pool_size[i] == 0) continue; /* no selected task reads from it */
    const char *dsn = job->conns[i].dsn;
    char *named = NULL;
    /* Let DBAs see who is connected (pg_stat_activity). */
    if (job->conns[i].kind == DBP_DB_PG && strstr(dsn, "application_name=") == NULL &&
        strchr(dsn, '#') == NULL) {
      if (asprintf(&named, "%s%sapplication_name=dbpipe", dsn, strchr(dsn, '?') ? "&" : "?") < 0)
        named = NULL;
    }
    dbp_pool_options po = {.max_size = run->pool_size[i]};
    rc = dbp_pool_new(run->rt, named != NULL ? named : dsn, &po, &run->pools[i]);
    if (named != NULL) {
      memset(named, 0, strlen(named));
      free(named);
    }
    if (rc != 0) {
      cli_log_msg(run->log, CLI_ERROR, "error", "cannot set up connection '%s': %s",
                  job->conns[i].name, dbp_strerror(rc));
    }
  }

  for (size_t i = 0; rc == 0 && i < run->ntasks; i++) {
    cli_task *t = &run->tasks[i];
    dbp_spawn_options so = {.name = t->jt->name, .stack_size = STACK_SIZE};
    int s = dbp_spawn(run->rt, &t->co, task_main, t, &so);
    if (s != 0) {
      t->co = NULL;
      describe_error(t, s, NULL, "cannot start: ");
      finish(t, s);
      continue;
    }
    cos[ncos++] = t->co;
  }
  run->tasks_spawned = true;
  if (ncos > 0) dbp_gather(run->rt, cos, ncos, NULL, errs, DBP_GATHER_ALL);
  run->tasks_joined = true;
  for (size_t i = 0; i < run->ntasks; i++) run->tasks[i].co = NULL;
  if (rc != 0) {
    /* Setting up failed: nothing ran. */
    for (size_t i = 0; i < run->ntasks; i++) {
      cli_task *t = &run->tasks[i];
      if (t->state == CLI_T_QUEUED) {
        describe_error(t, rc, NULL, "not started: ");
        finish(t, rc);
      }
    }
  }

  for (size_t i = 0; i < job->nconns; i++) {
    if (run->pools[i] != NULL) dbp_pool_close(run->pools[i], POOL_CLOSE_MS);
    run->pools[i] = NULL;
  }
  if (run->slots != NULL) dbp_sem_free(run->slots);
  run->slots = NULL;
  free(cos);
  free(errs);

  write_manifest(run, rc);
  stop_handles(run);
  return rc;
}

static const int run_signals[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static const char *signal_name(int signum) {
  return signum == SIGINT    ? "SIGINT"
         : signum == SIGTERM ? "SIGTERM"
         : signum == SIGHUP  ? "SIGHUP"
                             : "SIGQUIT";
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

/* Removes the temporary files of every task that has not finished (used
 * when the process must exit before the exports clean up themselves). */
static void remove_temp_files(cli_run *run) {
  for (size_t i = 0; i < run->ntasks; i++) {
    const cli_task *t = &run->tasks[i];
    const char *path = t->jt->path;
    if (t->state == CLI_T_DONE || strcmp(path, "-") == 0) continue;
    char *dir = strdup(path);
    if (dir == NULL) continue;
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
        if (!is_temp_of(e->d_name, t->progress.temp_token)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dname, e->d_name);
        unlink(full);
      }
      closedir(d);
    }
    free(dir);
  }
}

/* SIGINT, SIGTERM, SIGHUP and SIGQUIT, on the loop: the first cancels
 * every task (each export cancels its statement on the server and removes
 * its temporary files, and the run then ends normally with status
 * interrupted); the second exits at once, without waiting for the servers,
 * but after removing the temporary files itself. */
static void on_signal(uv_signal_t *h, int signum) {
  cli_run *run = h->data;
  const char *name = signal_name(signum);
  if (++run->signals > 1) {
    /* Again: the user does not want to wait for a clean stop. */
    if (run->use_progress) cli_progress_finish(&run->progress);
    run->log->progress = NULL;
    remove_temp_files(run);
    cli_log_msg(run->log, CLI_WARN, "exit",
                "%s again: exiting at once (temporary files removed; queries may still run "
                "on the servers until they notice)",
                name);
    _exit(CLI_INTERRUPTED);
  }
  run->interrupted = true;
  size_t active = 0;
  if (run->tasks_spawned && !run->tasks_joined) {
    for (size_t i = 0; i < run->ntasks; i++) {
      cli_task *t = &run->tasks[i];
      if (t->co != NULL && t->state != CLI_T_DONE && t->state != CLI_T_FAILED &&
          t->state != CLI_T_INTERRUPTED) {
        if (t->state != CLI_T_QUEUED) active++;
        dbp_cancel(t->co);
      }
    }
  }
  cli_log_msg(run->log, CLI_WARN, "interrupted",
              "%s: cancelling %zu running task%s and their queries (again to exit at once)", name,
              active, active == 1 ? "" : "s");
}

static void on_timer(uv_timer_t *h) {
  cli_run *run = h->data;
  cli_progress_sample(run);
  cli_progress_draw(&run->progress);
}

#define TIMER_HANDLE (1u << 4)

/* Sets up signals and the display timer on the runtime's loop. Handles
 * that were initialised are flagged in run->handles for the clean-up. */
static int start_handles(cli_run *run) {
  uv_loop_t *loop = dbp_rt_loop(run->rt);
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < 4; i++) {
    rc = uv_signal_init(loop, &run->sigs[i]);
    if (rc != 0) break;
    run->handles |= 1u << i;
    run->sigs[i].data = run;
    rc = uv_signal_start(&run->sigs[i], on_signal, run_signals[i]);
  }
  if (rc == 0 && run->use_progress) {
    rc = uv_timer_init(loop, &run->timer);
    if (rc == 0) run->handles |= TIMER_HANDLE;
    run->timer.data = run;
    if (rc == 0) rc = uv_timer_start(&run->timer, on_timer, PROGRESS_MS, PROGRESS_MS);
  }
  return rc == 0 ? 0 : dbp_err_from_errno(rc);
}

/* Closes the handles start_handles set up; their memory is free once the
 * loop has run the close callbacks. */
static void stop_handles(cli_run *run) {
  for (unsigned i = 0; i < 4; i++) {
    if (!(run->handles & (1u << i))) continue;
    uv_signal_stop(&run->sigs[i]);
    close_handle((uv_handle_t *)&run->sigs[i]);
  }
  if (run->handles & TIMER_HANDLE) {
    uv_timer_stop(&run->timer);
    close_handle((uv_handle_t *)&run->timer);
  }
  run->handles = 0;
}

/* The run's status from its tasks: "interrupted", "failed" or "ok". */
static const char *run_status(const cli_run *run, int rc) {
  if (run->interrupted) return "interrupted";
  bool failed = rc != 0;
  for (size_t i = 0; i < run->ntasks; i++) failed |= run->tasks[i].state != CLI_T_DONE;
  return failed ? "failed" : "ok";
}

/* Waits: writes the manifest (if the job names one) from the run's
 * coroutine, once every task has ended. A failure is logged and makes the
 * run fail. */
static void write_manifest(cli_run *run, int rc) {
  if (run->job->manifest == NULL) return;
  clock_gettime(CLOCK_REALTIME, &run->finished);
  char why[512] = "";
  int m = cli_manifest_write(run->job->manifest, run, run_status(run, rc), why, sizeof why);
  if (m != 0) {
    run->manifest_failed = true;
    cli_log_msg(run->log, CLI_ERROR, "error", "cannot write the manifest %s: %s",
                run->job->manifest, why[0] ? why : dbp_strerror(m));
  }
}

static void log_run_finished(cli_run *run, const char *status, int code) {
  size_t ok = 0, failed = 0, interrupted = 0;
  uint64_t rows = 0, bytes = 0;
  for (size_t i = 0; i < run->ntasks; i++) {
    const cli_task *t = &run->tasks[i];
    ok += t->state == CLI_T_DONE;
    failed += t->state == CLI_T_FAILED;
    interrupted += t->state == CLI_T_INTERRUPTED;
    rows += t->res.rows;
    bytes += t->state == CLI_T_DONE ? t->res.bytes : 0;
  }
  uint64_t ms = (uint64_t)((run->finished.tv_sec - run->started.tv_sec) * 1000 +
                           (run->finished.tv_nsec - run->started.tv_nsec) / 1000000);
  char r[32], b[32], d[32];
  cli_str text = {0}, f = {0};
  cli_str_printf(&text, "%s %s: %zu of %zu task%s done", run->command, status, ok, run->ntasks,
                 run->ntasks == 1 ? "" : "s");
  if (failed) cli_str_printf(&text, ", %zu failed", failed);
  if (interrupted) cli_str_printf(&text, ", %zu interrupted", interrupted);
  cli_str_printf(&text, "; %s rows, %s in %s", cli_fmt_count(rows, r, 32),
                 cli_fmt_bytes(bytes, b, 32), cli_fmt_duration(ms, d, 32));
  cli_str_puts(&f, "\"status\":");
  cli_str_json(&f, status);
  cli_str_printf(&f,
                 ",\"tasks\":%zu,\"done\":%zu,\"failed\":%zu,\"interrupted\":%zu,"
                 "\"rows\":%llu,\"bytes\":%llu,\"duration_ms\":%llu,\"exit_code\":%d",
                 run->ntasks, ok, failed, interrupted, (unsigned long long)rows,
                 (unsigned long long)bytes, (unsigned long long)ms, code);
  if (run->job->manifest != NULL && !run->manifest_failed) {
    cli_str_puts(&f, ",\"manifest\":");
    cli_str_json(&f, run->job->manifest);
  }
  cli_log_event(run->log,
                code == CLI_OK       ? CLI_INFO
                : code == CLI_FAILED ? CLI_ERROR
                                     : CLI_WARN,
                "run_finished", NULL, text.p, f.p);
  cli_str_free(&text);
  cli_str_free(&f);
}

int cli_run_job(dbp_job *job, const bool *selected, const cli_run_options *opts) {
  cli_run run = {
      .job = job, .log = opts->log, .command = opts->command, .use_progress = opts->progress};
  int code = CLI_FAILED;
  size_t n = 0;
  for (size_t i = 0; i < job->ntasks; i++) n += selected == NULL || selected[i];
  run.concurrency = opts->concurrency ? opts->concurrency : job->concurrency;
  if (run.concurrency == 0) run.concurrency = 1;
  run.tasks = calloc(n ? n : 1, sizeof *run.tasks);
  run.pools = calloc(job->nconns ? job->nconns : 1, sizeof *run.pools);
  run.pool_size = calloc(job->nconns ? job->nconns : 1, sizeof *run.pool_size);
  if (run.tasks == NULL || run.pools == NULL || run.pool_size == NULL) {
    cli_log_msg(run.log, CLI_ERROR, "error", "out of memory");
    goto done;
  }
  for (size_t i = 0; i < job->ntasks; i++) {
    if (selected != NULL && !selected[i]) continue;
    cli_task *t = &run.tasks[run.ntasks++];
    t->jt = &job->tasks[i];
    t->run = &run;
    size_t c = job->tasks[i].conn;
    size_t want = job->conns[c].pool;
    if (want == 0) want = run.concurrency < DEFAULT_POOL_MAX ? run.concurrency : DEFAULT_POOL_MAX;
    run.pool_size[c] = want;
  }
  for (size_t i = 0; i < job->nconns; i++) cli_log_secret(run.log, job->conns[i].dsn);

  int rc = dbp_rt_new(&run.rt, NULL, NULL);
  if (rc != 0) {
    cli_log_msg(run.log, CLI_ERROR, "error", "cannot start the runtime: %s", dbp_strerror(rc));
    goto done;
  }
  clock_gettime(CLOCK_REALTIME, &run.started);
  run.started_ms = dbp_now(run.rt);
  run.progress = (cli_progress){.fd = 2, .run = &run};
  rc = start_handles(&run);
  if (rc == 0) {
    cli_str f = {0}, text = {0};
    cli_str_printf(&f, "\"tasks\":%zu,\"concurrency\":%zu,\"job\":", run.ntasks, run.concurrency);
    cli_str_json(&f, job->file);
    cli_str_printf(&text, "running %zu task%s%s%s, %zu at a time", run.ntasks,
                   run.ntasks == 1 ? "" : "s", job->file ? " from " : "",
                   job->file ? job->file : "", run.concurrency);
    cli_log_event(run.log, CLI_INFO, "run_started", NULL, text.p, f.p);
    cli_str_free(&f);
    cli_str_free(&text);
    if (run.use_progress) run.log->progress = &run.progress;
    dbp_spawn_options so = {.name = "dbpipe-run", .stack_size = STACK_SIZE, .detached = true};
    rc = dbp_spawn(run.rt, NULL, run_main, &run, &so);
  }
  if (rc != 0) {
    cli_log_msg(run.log, CLI_ERROR, "error", "cannot start: %s", dbp_strerror(rc));
    stop_handles(&run);
  }
  dbp_rt_run(run.rt);
  run.log->progress = NULL;
  if (run.use_progress) cli_progress_finish(&run.progress);
  clock_gettime(CLOCK_REALTIME, &run.finished);
  dbp_rt_free(run.rt);

  /* A run whose manifest is missing has not done what it was asked. */
  const char *status = run.manifest_failed && !run.interrupted ? "failed" : run_status(&run, rc);
  code = strcmp(status, "interrupted") == 0 ? CLI_INTERRUPTED
         : strcmp(status, "failed") == 0    ? CLI_FAILED
                                            : CLI_OK;
  log_run_finished(&run, status, code);

done:
  for (size_t i = 0; i < run.ntasks; i++) dbp_export_result_free(&run.tasks[i].res);
  free(run.tasks);
  free(run.pools);
  free(run.pool_size);
  return code;
}
