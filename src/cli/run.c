/* Running a job from the command line: a front over the engine. The run's
 * events become log lines (text or JSON) and, on a terminal, redraws of the
 * live display; SIGINT, SIGTERM, SIGHUP and SIGQUIT cancel the run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* The display redraws this often; log-only runs get the engine's default
 * (JSON logs carry a task_progress event per interval). */
#define DISPLAY_MS 200

typedef struct cli_front {
  dbp_run *run;
  const dbp_job *job;
  cli_log *log;
  const char *command;
  bool use_progress;
  cli_progress progress;
  uv_signal_t sigs[4]; /* SIGINT, SIGTERM, SIGHUP, SIGQUIT */
  unsigned handles;    /* initialised: bit i for sigs[i] */
  int signals;
  int code; /* the exit code, once the run finished */
} cli_front;

static const int run_signals[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static const char *signal_name(int signum) {
  return signum == SIGINT    ? "SIGINT"
         : signum == SIGTERM ? "SIGTERM"
         : signum == SIGHUP  ? "SIGHUP"
                             : "SIGQUIT";
}

/* The command line's word for a run's end. */
static const char *status_word(dbp_run_state s) {
  return s == DBP_RUN_CANCELLED ? "interrupted" : dbp_run_state_name(s);
}

/* Appends ",\"NAME\":V" with V the number, or null when negative
 * (unknown). */
static void json_opt(dbp_buf *b, const char *name, int64_t v) {
  if (v < 0)
    dbp_buf_printf(b, ",\"%s\":null", name);
  else
    dbp_buf_printf(b, ",\"%s\":%lld", name, (long long)v);
}

/* What every task event says of the task beyond its name: the table (when
 * it exports one), its parts and its estimate. Starts with a comma. */
static void task_fields(dbp_buf *b, const dbp_task_info *in) {
  if (in->table != NULL) {
    dbp_buf_puts(b, ",\"table\":");
    dbp_buf_json(b, in->table);
  }
  dbp_buf_printf(b, ",\"parts\":%zu,\"parts_done\":%zu", in->nparts, in->parts_done);
  json_opt(b, "rows_estimate", in->rows_estimate);
}

/* The run's estimate in JSON: null when no task has one. */
static void run_estimate_fields(dbp_buf *b, const dbp_run_summary *sum) {
  json_opt(b, "rows_estimate",
           sum->tasks_unestimated >= sum->ntasks
               ? -1
               : (int64_t)(sum->rows_estimate > INT64_MAX ? INT64_MAX : sum->rows_estimate));
  dbp_buf_printf(b, ",\"tasks_unestimated\":%zu", sum->tasks_unestimated);
}

static void log_run_started(cli_front *f, const dbp_run_summary *sum) {
  dbp_buf fields = {0}, text = {0};
  const char *file = f->job->file;
  dbp_buf_printf(&fields, "\"tasks\":%zu,\"concurrency\":%zu,\"job\":", sum->ntasks,
                 sum->concurrency);
  dbp_buf_json(&fields, file);
  run_estimate_fields(&fields, sum);
  dbp_buf_printf(&text, "running %zu task%s%s%s, %zu at a time", sum->ntasks,
                 sum->ntasks == 1 ? "" : "s", file ? " from " : "", file ? file : "",
                 sum->concurrency);
  if (sum->tasks_unestimated < sum->ntasks) {
    char n[32];
    dbp_buf_printf(&text, " (about %s rows%s)", cli_fmt_count(sum->rows_estimate, n, sizeof n),
                   sum->tasks_unestimated ? " in the tasks with an estimate" : "");
  }
  cli_log_event(f->log, CLI_INFO, "run_started", NULL, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

static void log_task_started(cli_front *f, const dbp_task_info *in) {
  const char *path = in->path != NULL ? in->path : in->task->path;
  dbp_buf fields = {0}, text = {0};
  dbp_buf_puts(&fields, "\"connection\":");
  dbp_buf_json(&fields, in->connection);
  dbp_buf_puts(&fields, ",\"path\":");
  dbp_buf_json(&fields, path);
  task_fields(&fields, in);
  dbp_buf_printf(&text, "started (from %s to %s)", in->connection,
                 strcmp(path, "-") == 0 ? "standard output" : cli_display_path(path));
  cli_log_event(f->log, CLI_INFO, "task_started", in->name, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

static void log_task_progress(cli_front *f, const dbp_run_event *ev) {
  char rows[32], bytes[32], rate[32];
  dbp_buf fields = {0}, text = {0};
  dbp_buf_printf(&fields, "\"rows\":%llu,\"bytes\":%llu,\"rows_per_sec\":%.1f,\"elapsed_ms\":%llu",
                 (unsigned long long)ev->rows, (unsigned long long)ev->bytes, ev->rows_per_sec,
                 (unsigned long long)ev->elapsed_ms);
  const dbp_task_info *in = ev->info;
  task_fields(&fields, in);
  int pct = cli_percent(ev->rows, in->rows_estimate);
  int64_t eta = cli_eta_s(ev->rows, in->rows_estimate, ev->rows_per_sec);
  json_opt(&fields, "percent", pct);
  json_opt(&fields, "eta_s", eta);
  dbp_buf_printf(&text, "%s rows", cli_fmt_count(ev->rows, rows, sizeof rows));
  if (pct >= 0) {
    char est[32];
    dbp_buf_printf(&text, " of about %s (%d%%)",
                   cli_fmt_count((uint64_t)in->rows_estimate, est, sizeof est), pct);
  }
  dbp_buf_printf(&text, ", %s, %s rows/s", cli_fmt_bytes(ev->bytes, bytes, sizeof bytes),
                 cli_fmt_count((uint64_t)(ev->rows_per_sec + 0.5), rate, sizeof rate));
  if (eta >= 0) {
    char e[32];
    dbp_buf_printf(&text, ", ETA %s", cli_fmt_eta(eta, e, sizeof e));
  }
  if (in->nparts > 1) dbp_buf_printf(&text, ", %zu of %zu parts done", in->parts_done, in->nparts);
  cli_log_event(f->log, CLI_INFO, "task_progress", in->name, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

/* The whole run every interval (JSON logs only): rows of every task so
 * far, the summed rate of the running ones, percent and ETA over the
 * estimates (see cli_outlook). */
static void log_run_progress(cli_front *f, const dbp_run_event *ev) {
  const dbp_run_summary *sum = ev->summary;
  cli_outlook o = {0};
  size_t n = dbp_run_ntasks(f->run);
  for (size_t i = 0; i < n; i++) cli_outlook_add(&o, dbp_run_task(f->run, i));
  int pct = cli_outlook_percent(&o);
  int64_t eta = cli_outlook_eta_s(&o);
  char rows[32], rate[32], e[32];
  dbp_buf fields = {0}, text = {0};
  dbp_buf_printf(&fields,
                 "\"rows\":%llu,\"bytes\":%llu,\"rows_per_sec\":%.1f,\"elapsed_ms\":%llu,"
                 "\"tasks\":%zu,\"done\":%zu,\"active\":%zu,\"queued\":%zu,\"failed\":%zu,"
                 "\"interrupted\":%zu",
                 (unsigned long long)ev->rows, (unsigned long long)ev->bytes, o.rows_per_sec,
                 (unsigned long long)ev->elapsed_ms, sum->ntasks, sum->done, sum->active,
                 sum->queued, sum->failed, sum->cancelled);
  run_estimate_fields(&fields, sum);
  json_opt(&fields, "percent", pct);
  json_opt(&fields, "eta_s", eta);
  dbp_buf_printf(&text, "%zu/%zu %s done, %s rows, %s rows/s", sum->done, sum->ntasks,
                 o.tasks > 0 && o.tables == o.tasks ? "tables" : "tasks",
                 cli_fmt_count(ev->rows, rows, sizeof rows),
                 cli_fmt_count((uint64_t)(o.rows_per_sec + 0.5), rate, sizeof rate));
  if (pct >= 0) dbp_buf_printf(&text, ", %d%%", pct);
  if (eta >= 0) dbp_buf_printf(&text, ", ETA %s", cli_fmt_eta(eta, e, sizeof e));
  cli_log_event(f->log, CLI_INFO, "run_progress", NULL, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

/* A database's snapshot, taken once for every worker of the connection:
 * where it stands (WAL LSN or GTID position), and on MariaDB/MySQL how long
 * commits were held to take it. */
static void log_snapshot(cli_front *f, const dbp_run_event *ev) {
  bool mysql = false;
  for (size_t i = 0; i < f->job->nconns; i++)
    if (strcmp(f->job->conns[i].name, ev->connection) == 0)
      mysql = f->job->conns[i].kind == DBP_DB_MYSQL;
  double lock_ms = (double)ev->lock_us / 1000.0;
  dbp_buf fields = {0}, text = {0};
  dbp_buf_puts(&fields, "\"connection\":");
  dbp_buf_json(&fields, ev->connection);
  dbp_buf_puts(&fields, ",\"snapshot_id\":");
  dbp_buf_json(&fields, ev->snapshot_id[0] ? ev->snapshot_id : NULL);
  dbp_buf_puts(&fields, ",\"position\":");
  dbp_buf_json(&fields, ev->position[0] ? ev->position : NULL);
  dbp_buf_printf(&fields, ",\"lock_ms\":%.3f,\"workers\":%d", lock_ms, ev->attempts);
  dbp_buf_printf(&text, "snapshot of '%s' taken", ev->connection);
  const char *sep = ": ";
  if (ev->position[0]) {
    dbp_buf_printf(&text, "%s%s %s", sep, mysql ? "GTID" : "WAL", ev->position);
    sep = ", ";
  } else if (ev->snapshot_id[0]) {
    dbp_buf_printf(&text, "%ssnapshot %s", sep, ev->snapshot_id);
    sep = ", ";
  }
  if (mysql && ev->lock_us > 0) { /* 0: taken without the commit lock */
    char d[32];
    if (ev->lock_us < 100000)
      dbp_buf_printf(&text, "%scommits held %.1f ms", sep, lock_ms);
    else
      dbp_buf_printf(&text, "%scommits held %s", sep,
                     cli_fmt_duration(ev->lock_us / 1000, d, sizeof d));
    sep = ", ";
  }
  dbp_buf_printf(&text, "%s%d worker%s", sep, ev->attempts, ev->attempts == 1 ? "" : "s");
  /* A caveat of the way it was taken (a lock-free MariaDB snapshot). */
  if (ev->message != NULL && ev->message[0] != '\0') {
    dbp_buf_printf(&text, "; %s", ev->message);
    dbp_buf_puts(&fields, ",\"note\":");
    dbp_buf_json(&fields, ev->message);
  }
  /* A caveat is worth a warning: the tables may not agree. */
  bool caveat = ev->message != NULL && ev->message[0] != '\0';
  cli_log_event(f->log, caveat ? CLI_WARN : CLI_INFO, "snapshot", NULL, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

static void log_task_retry(cli_front *f, const dbp_run_event *ev) {
  char d[32];
  dbp_buf fields = {0}, text = {0};
  dbp_buf_printf(&text, "attempt %d of %d failed (%s); retrying in %s", ev->attempt,
                 ev->info->max_attempts, ev->message,
                 cli_fmt_duration((uint64_t)ev->delay_ms, d, sizeof d));
  dbp_buf_printf(&fields, "\"attempt\":%d,\"delay_ms\":%lld,\"error\":", ev->attempt,
                 (long long)ev->delay_ms);
  dbp_buf_json(&fields, ev->message);
  task_fields(&fields, ev->info);
  cli_log_event(f->log, CLI_WARN, "task_retry", ev->info->name, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

/* A finished task: rows, bytes, duration and files. */
static void log_task_done(cli_front *f, const dbp_run_event *ev) {
  char rows[32], bytes[32], dur[32];
  dbp_buf fields = {0}, text = {0};
  dbp_buf_printf(&fields,
                 "\"rows\":%llu,\"bytes\":%llu,\"duration_ms\":%llu,\"attempts\":%d,\"files\":[",
                 (unsigned long long)ev->rows, (unsigned long long)ev->bytes,
                 (unsigned long long)ev->elapsed_ms, ev->attempts);
  for (size_t i = 0; i < ev->nfiles; i++) {
    const dbp_export_file *ef = &ev->files[i];
    dbp_buf_puts(&fields, i ? ",{\"path\":" : "{\"path\":");
    dbp_buf_json(&fields, ef->path);
    dbp_buf_printf(&fields,
                   ",\"rows\":%llu,\"bytes\":%llu,\"sha256\":", (unsigned long long)ef->rows,
                   (unsigned long long)ef->bytes);
    dbp_buf_json(&fields, ef->sha256);
    dbp_buf_puts(&fields, "}");
  }
  dbp_buf_puts(&fields, "]");
  task_fields(&fields, ev->info);
  dbp_buf_printf(&text, "done: %s row%s, %s in %s -> ", cli_fmt_count(ev->rows, rows, 32),
                 ev->rows == 1 ? "" : "s", cli_fmt_bytes(ev->bytes, bytes, 32),
                 cli_fmt_duration(ev->elapsed_ms, dur, 32));
  if (ev->nfiles == 1) {
    dbp_buf_puts(&text, cli_display_path(ev->files[0].path));
  } else if (ev->nfiles > 1) {
    dbp_buf_printf(&text, "%zu files: %s ... %s", ev->nfiles, cli_display_path(ev->files[0].path),
                   cli_display_path(ev->files[ev->nfiles - 1].path));
  } else {
    dbp_buf_puts(&text, "no files");
  }
  cli_log_event(f->log, CLI_INFO, "task_finished", ev->info->name, text.data, fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

/* A task that failed or was cancelled. */
static void log_task_ended(cli_front *f, const dbp_run_event *ev) {
  bool interrupted = ev->kind == DBP_RUN_EV_TASK_CANCELLED;
  dbp_buf fields = {0}, text = {0};
  dbp_buf_puts(&fields, "\"error\":");
  dbp_buf_json(&fields, ev->message);
  dbp_buf_printf(&fields, ",\"attempts\":%d,\"duration_ms\":%llu", ev->attempts,
                 (unsigned long long)ev->elapsed_ms);
  task_fields(&fields, ev->info);
  if (interrupted) {
    dbp_buf_puts(&text, "interrupted");
  } else {
    dbp_buf_printf(&text, "failed: %s", ev->message);
    if (ev->attempts > 1) dbp_buf_printf(&text, " (after %d attempts)", ev->attempts);
  }
  cli_log_event(f->log, interrupted ? CLI_WARN : CLI_ERROR,
                interrupted ? "task_interrupted" : "task_failed", ev->info->name, text.data,
                fields.data);
  dbp_buf_free(&fields);
  dbp_buf_free(&text);
}

static void log_run_finished(cli_front *f, const dbp_run_summary *sum) {
  const char *status = status_word(sum->status);
  char r[32], b[32], d[32];
  dbp_buf text = {0}, fields = {0};
  dbp_buf_printf(&text, "%s %s: %zu of %zu task%s done", f->command, status, sum->done, sum->ntasks,
                 sum->ntasks == 1 ? "" : "s");
  if (sum->failed) dbp_buf_printf(&text, ", %zu failed", sum->failed);
  if (sum->cancelled) dbp_buf_printf(&text, ", %zu interrupted", sum->cancelled);
  dbp_buf_printf(&text, "; %s rows, %s in %s", cli_fmt_count(sum->rows, r, 32),
                 cli_fmt_bytes(sum->bytes, b, 32), cli_fmt_duration(sum->duration_ms, d, 32));
  dbp_buf_puts(&fields, "\"status\":");
  dbp_buf_json(&fields, status);
  dbp_buf_printf(&fields,
                 ",\"tasks\":%zu,\"done\":%zu,\"failed\":%zu,\"interrupted\":%zu,"
                 "\"rows\":%llu,\"bytes\":%llu,\"duration_ms\":%llu,\"exit_code\":%d",
                 sum->ntasks, sum->done, sum->failed, sum->cancelled, (unsigned long long)sum->rows,
                 (unsigned long long)sum->bytes, (unsigned long long)sum->duration_ms, f->code);
  if (sum->manifest != NULL && sum->manifest_written) {
    dbp_buf_puts(&fields, ",\"manifest\":");
    dbp_buf_json(&fields, sum->manifest);
  }
  cli_log_event(f->log,
                f->code == CLI_OK       ? CLI_INFO
                : f->code == CLI_FAILED ? CLI_ERROR
                                        : CLI_WARN,
                "run_finished", NULL, text.data, fields.data);
  dbp_buf_free(&text);
  dbp_buf_free(&fields);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Closes the signal handles; their memory is free once the loop has run
 * the close callbacks. */
static void stop_handles(cli_front *f) {
  for (unsigned i = 0; i < 4; i++) {
    if (!(f->handles & (1u << i))) continue;
    uv_signal_stop(&f->sigs[i]);
    close_handle((uv_handle_t *)&f->sigs[i]);
  }
  f->handles = 0;
}

/* The front's subscriber: every event becomes what the user sees. */
static void on_event(const dbp_run_event *ev, void *ud) {
  cli_front *f = ud;
  switch (ev->kind) {
    case DBP_RUN_EV_RUN_STARTED:
      log_run_started(f, ev->summary);
      if (f->use_progress) f->log->progress = &f->progress;
      break;
    case DBP_RUN_EV_SNAPSHOT:
      log_snapshot(f, ev);
      break;
    case DBP_RUN_EV_TASK_STARTED:
      /* On a terminal the live display shows what runs. */
      if (!f->use_progress) log_task_started(f, ev->info);
      break;
    case DBP_RUN_EV_TASK_PROGRESS:
      if (f->log->format == CLI_LOG_JSON) log_task_progress(f, ev);
      break;
    case DBP_RUN_EV_RUN_PROGRESS:
      /* The display subscribes to it itself. */
      if (f->log->format == CLI_LOG_JSON) log_run_progress(f, ev);
      break;
    case DBP_RUN_EV_TASK_RETRY:
      log_task_retry(f, ev);
      break;
    case DBP_RUN_EV_TASK_FINISHED:
      log_task_done(f, ev);
      break;
    case DBP_RUN_EV_TASK_FAILED:
    case DBP_RUN_EV_TASK_CANCELLED:
      log_task_ended(f, ev);
      break;
    case DBP_RUN_EV_MANIFEST_WRITTEN:
      break;
    case DBP_RUN_EV_MANIFEST_FAILED:
      cli_log_msg(f->log, CLI_ERROR, "error", "cannot write the manifest %s: %s", ev->path,
                  ev->message);
      break;
    case DBP_RUN_EV_RUN_FINISHED:
      stop_handles(f);
      f->log->progress = NULL;
      if (f->use_progress) cli_progress_finish(&f->progress);
      f->code = ev->summary->status == DBP_RUN_OK       ? CLI_OK
                : ev->summary->status == DBP_RUN_FAILED ? CLI_FAILED
                                                        : CLI_INTERRUPTED;
      log_run_finished(f, ev->summary);
      break;
  }
}

/* SIGINT, SIGTERM, SIGHUP and SIGQUIT, on the loop: the first cancels the
 * run (each export cancels its statement on the server and removes its
 * temporary files, and the run then ends normally, interrupted); the
 * second exits at once, without waiting for the servers, but after
 * removing the temporary files. */
static void on_signal(uv_signal_t *h, int signum) {
  cli_front *f = h->data;
  const char *name = signal_name(signum);
  if (++f->signals > 1) {
    /* Again: the user does not want to wait for a clean stop. */
    if (f->use_progress) cli_progress_finish(&f->progress);
    f->log->progress = NULL;
    dbp_run_remove_temp_files(f->run);
    cli_log_msg(f->log, CLI_WARN, "exit",
                "%s again: exiting at once (temporary files removed; queries may still run "
                "on the servers until they notice)",
                name);
    _exit(CLI_INTERRUPTED);
  }
  dbp_run_summary sum;
  dbp_run_get_summary(f->run, &sum);
  dbp_run_cancel(f->run);
  cli_log_msg(f->log, CLI_WARN, "interrupted",
              "%s: cancelling %zu running task%s and their queries (again to exit at once)", name,
              sum.active, sum.active == 1 ? "" : "s");
}

static int start_signals(cli_front *f, uv_loop_t *loop) {
  int rc = 0;
  for (unsigned i = 0; rc == 0 && i < 4; i++) {
    rc = uv_signal_init(loop, &f->sigs[i]);
    if (rc != 0) break;
    f->handles |= 1u << i;
    f->sigs[i].data = f;
    rc = uv_signal_start(&f->sigs[i], on_signal, run_signals[i]);
  }
  return rc == 0 ? 0 : dbp_err_from_errno(rc);
}

int cli_run_job(dbp_job *job, const bool *selected, const cli_run_options *opts) {
  cli_front f = {.job = job,
                 .log = opts->log,
                 .command = opts->command,
                 .use_progress = opts->progress,
                 .code = CLI_FAILED};
  for (size_t i = 0; i < job->nconns; i++) cli_log_secret(f.log, job->conns[i].dsn);
  dbp_rt *rt = NULL;
  int rc = dbp_rt_new(&rt, NULL, NULL);
  if (rc != 0) {
    cli_log_msg(f.log, CLI_ERROR, "error", "cannot start the runtime: %s", dbp_strerror(rc));
    return CLI_FAILED;
  }
  dbp_run_options ro = {.concurrency = opts->concurrency,
                        .selected = selected,
                        .progress_interval_ms = f.use_progress                  ? DISPLAY_MS
                                                : f.log->format == CLI_LOG_JSON ? 0
                                                                                : DBP_FOREVER};
  rc = dbp_run_new(rt, job, &ro, &f.run);
  f.progress = (cli_progress){.fd = 2, .run = f.run, .rt = rt, .job = job};
  if (rc == 0) rc = dbp_run_subscribe(f.run, on_event, &f);
  if (rc == 0 && f.use_progress) rc = dbp_run_subscribe(f.run, cli_progress_on_event, &f.progress);
  if (rc == 0) rc = start_signals(&f, dbp_rt_loop(rt));
  if (rc == 0) rc = dbp_run_start(f.run);
  if (rc != 0) {
    cli_log_msg(f.log, CLI_ERROR, "error", "cannot start: %s", dbp_strerror(rc));
    stop_handles(&f);
  }
  dbp_rt_run(rt);
  f.log->progress = NULL;
  if (f.use_progress) cli_progress_finish(&f.progress);
  dbp_run_free(f.run);
  dbp_rt_free(rt);
  return f.code;
}
