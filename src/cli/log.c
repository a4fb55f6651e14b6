/* Log lines on stderr: text for people, JSON objects for machines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

void cli_log_secret(cli_log *log, const char *dsn) {
  dbp_secrets_add_dsn(&log->secrets, dsn);
}

void cli_log_free(cli_log *log) {
  dbp_secrets_free(&log->secrets);
}

void cli_log_scrub(const cli_log *log, dbp_buf *s) {
  dbp_secrets_scrub(&log->secrets, s);
}

static const char *level_name(cli_level l) {
  return l == CLI_ERROR ? "error" : l == CLI_WARN ? "warning" : "info";
}

void cli_log_event(cli_log *log, cli_level level, const char *event, const char *task,
                   const char *text, const char *json_fields) {
  if (log->quiet && level < CLI_ERROR) return;
  dbp_buf line = {0};
  if (log->format == CLI_LOG_JSON) {
    struct timespec now;
    char ts[40];
    clock_gettime(CLOCK_REALTIME, &now);
    dbp_buf_puts(&line, "{\"ts\":");
    dbp_buf_json(&line, cli_fmt_iso(&now, ts, sizeof ts));
    dbp_buf_puts(&line, ",\"level\":");
    dbp_buf_json(&line, level_name(level));
    dbp_buf_puts(&line, ",\"event\":");
    dbp_buf_json(&line, event);
    if (task != NULL) {
      dbp_buf_puts(&line, ",\"task\":");
      dbp_buf_json(&line, task);
    }
    dbp_buf_puts(&line, ",\"message\":");
    dbp_buf_json(&line, text);
    if (json_fields != NULL && *json_fields != '\0') {
      dbp_buf_puts(&line, ",");
      dbp_buf_puts(&line, json_fields);
    }
    dbp_buf_puts(&line, "}\n");
  } else {
    /* User input (task names, paths, SQL) and server messages reach these
     * lines: their control characters are shown, never obeyed. */
    dbp_buf_puts(&line, "dbpipe: ");
    if (task == NULL && strcmp(event, "error") == 0) dbp_buf_puts(&line, "error: ");
    if (task != NULL) {
      cli_escaped(&line, task);
      dbp_buf_puts(&line, ": ");
    }
    cli_escaped(&line, text);
    dbp_buf_puts(&line, "\n");
  }
  cli_log_scrub(log, &line);
  if (line.data != NULL) {
    if (log->progress != NULL) cli_progress_clear(log->progress);
    fputs(line.data, log->out);
    fflush(log->out);
    if (log->progress != NULL) cli_progress_draw(log->progress);
  }
  dbp_buf_free(&line);
}

void cli_log_msg(cli_log *log, cli_level level, const char *event, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cli_log_event(log, level, event, NULL, buf, NULL);
}
