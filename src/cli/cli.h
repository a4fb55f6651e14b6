/* The dbpipe command line: shared declarations of src/cli. */
#ifndef DBPIPE_CLI_H
#define DBPIPE_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <uv.h>

#include "dbpipe.h"

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_INTERRUPTED = 130 };

/* ---- strings (dbp_buf) ---- */

/* Appends `p` with every control character made visible (\n, \r, \t, \e,
 * \xNN, and the C1 controls U+0080..U+009F as \xc2\xNN), so that text from
 * users and servers can neither start a new log line nor drive a
 * terminal. */
void cli_escaped(dbp_buf *b, const char *p);
/* Prints one line to stderr: the formatted text with control characters
 * escaped (see cli_escaped), then a newline. */
void cli_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same on stdout. */
void cli_outf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* `arg` as it may be shown: redacted when it looks like a URL (a DSN given
 * in the wrong place must not print its password). buf holds the copy. */
const char *cli_safe_arg(const char *arg, char *buf, size_t len);

/* "1,234,567" */
const char *cli_fmt_count(uint64_t n, char *buf, size_t len);
/* "512 B", "1.5 KiB", "12.3 MiB" */
const char *cli_fmt_bytes(uint64_t n, char *buf, size_t len);
/* "420 ms", "3.2 s", "2m05s", "1h02m" */
const char *cli_fmt_duration(uint64_t ms, char *buf, size_t len);
/* `path` relative to the working directory when it lies below it (for
 * text messages); a pointer into path. */
const char *cli_display_path(const char *path);
/* UTC "2024-03-05T12:00:00.123Z" for a CLOCK_REALTIME timespec. */
const char *cli_fmt_iso(const struct timespec *ts, char *buf, size_t len);

/* ---- logging ---- */

typedef enum cli_log_format { CLI_LOG_TEXT, CLI_LOG_JSON } cli_log_format;
typedef enum cli_level { CLI_INFO, CLI_WARN, CLI_ERROR } cli_level;

struct cli_progress;

/* Where messages go: stderr, as text lines or JSON objects. Every line is
 * scrubbed of the passwords registered with cli_log_secret. */
typedef struct cli_log {
  cli_log_format format;
  bool quiet; /* only errors */
  FILE *out;
  struct cli_progress *progress; /* erased before a line, redrawn after */
  dbp_secrets secrets;
} cli_log;

/* Registers the password of `dsn` (if any) so that it never reaches the
 * output, even inside a driver's message. */
void cli_log_secret(cli_log *log, const char *dsn);
void cli_log_free(cli_log *log);
/* Replaces every registered secret in s with "***". */
void cli_log_scrub(const cli_log *log, dbp_buf *s);

/* A structured event. In text mode `text` is the line (after "dbpipe: ");
 * in JSON mode the object is {"ts", "level", "event", "task"?, "message",
 * plus `json_fields` (a fragment like "\"rows\":5" or NULL)}. */
void cli_log_event(cli_log *log, cli_level level, const char *event, const char *task,
                   const char *text, const char *json_fields);
/* A plain message: cli_log_event with the formatted text and no fields. */
void cli_log_msg(cli_log *log, cli_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- running a job ---- */

typedef struct cli_run_options {
  cli_log *log;
  bool progress;       /* draw the live display (stderr is a terminal) */
  size_t concurrency;  /* 0 = the job's */
  const char *command; /* "run" or "export", for messages */
} cli_run_options;

/* Runs the tasks of `job` whose `selected` flag is set (NULL = all) through
 * the engine on a runtime of its own, with the log lines (and on a terminal
 * the live display) as the run's subscribers and SIGINT, SIGTERM, SIGHUP
 * and SIGQUIT cancelling it. Returns an exit code: CLI_OK, CLI_FAILED or
 * CLI_INTERRUPTED. */
int cli_run_job(dbp_job *job, const bool *selected, const cli_run_options *opts);

/* ---- the live display ---- */

typedef struct cli_progress {
  int fd;
  int lines; /* lines currently drawn */
  bool hidden_cursor;
  /* Set at DBP_RUN_EV_RUN_STARTED: before it the task list is not final
   * (a `tables` task is still one entry), so nothing is drawn. */
  bool started;
  dbp_run *run;
  dbp_rt *rt;
  const dbp_job *job;
} cli_progress;

/* Draws (or redraws) the display of the run. */
void cli_progress_draw(cli_progress *p);
/* Erases the display (before a log line or at the end). */
void cli_progress_clear(cli_progress *p);
/* Erases the display and shows the cursor again; safe in a signal path. */
void cli_progress_finish(cli_progress *p);
/* A run subscriber (ud: the cli_progress): redraws at every progress
 * interval. */
void cli_progress_on_event(const dbp_run_event *ev, void *ud);

/* ---- progress arithmetic (pure: no run, no terminal) ---- */

/* ETAs longer than this (about 100 years) are shown as this. */
#define CLI_ETA_MAX_S INT64_C(3155760000)

/* How far `rows` has come toward `estimate`, in whole percent rounded
 * down: 0..99 while rows < estimate. Estimates are guesses: rows at or
 * above the estimate (an estimate of 0 included) give 99, never more, as
 * a task is only complete once it has finished. -1 when the estimate is
 * unknown (negative). */
int cli_percent(uint64_t rows, int64_t estimate);
/* Seconds until `rows` reaches `estimate` at `rows_per_sec`, rounded up
 * and at most CLI_ETA_MAX_S; -1 (no ETA) when the estimate is unknown,
 * already reached or exceeded, or the rate is not positive. */
int64_t cli_eta_s(uint64_t rows, int64_t estimate, double rows_per_sec);
/* An ETA in seconds for people: "0s", "12s", "1m05s", "2h03m", "3d04h",
 * ">99d"; "" for a negative one. */
const char *cli_fmt_eta(int64_t s, char *buf, size_t len);
/* A rate in short form: "0", "850", "4.21k", "35.1k", "412k", "1.20M",
 * "3.40G", "1.00T". */
const char *cli_fmt_rate(double per_sec, char *buf, size_t len);

/* A whole run's progress added up from its tasks (cli_outlook_add on each,
 * starting from {0}). A finished task counts as its whole estimate (what
 * it really had does not matter any more); a queued or running one as its
 * rows so far, at most its estimate; a failed or cancelled one not at all,
 * as it will not progress. A task without an estimate leaves the run
 * without a percent until it has finished. */
typedef struct cli_outlook {
  size_t tasks;        /* every task added */
  size_t tables;       /* tasks that export a table */
  size_t done;         /* finished */
  size_t counted;      /* neither failed nor cancelled */
  size_t unestimated;  /* counted tasks without an estimate, not yet done */
  uint64_t estimate;   /* sum of the counted tasks' estimates */
  uint64_t progress;   /* rows toward it */
  double rows_per_sec; /* sum over the running tasks */
} cli_outlook;

void cli_outlook_add(cli_outlook *o, const dbp_task_info *t);
/* The run's percent (as cli_percent; 100 once every counted task is
 * done), or -1 when a counted task not yet done has no estimate, or none
 * is counted. */
int cli_outlook_percent(const cli_outlook *o);
/* Seconds left at the running tasks' summed rate (as cli_eta_s), or -1
 * when the percent is unknown. */
int64_t cli_outlook_eta_s(const cli_outlook *o);

/* ---- commands ---- */

int cli_cmd_export(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_check(int argc, char **argv);
/* Prints help for `cmd` (NULL = the overview) to `f`. Returns 0, or -1 for
 * an unknown command. */
int cli_help(FILE *f, const char *cmd);

/* Common option values. */
int cli_parse_log_format(const char *s, cli_log_format *out);

#endif /* DBPIPE_CLI_H */
