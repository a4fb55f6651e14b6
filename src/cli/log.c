/* Log lines on stderr: text for people, JSON objects for machines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* Passwords shorter than this are not scrubbed: replacing every "ab" in a
 * message would garble it and hide nothing. */
#define MIN_SECRET 4

static void add_secret(cli_log *log, const char *s, size_t n) {
  if (n < MIN_SECRET) return;
  for (size_t i = 0; i < log->nsecrets; i++) {
    if (strlen(log->secrets[i]) == n && memcmp(log->secrets[i], s, n) == 0) return;
  }
  char **ns = realloc(log->secrets, (log->nsecrets + 1) * sizeof *ns);
  if (ns == NULL) return;
  log->secrets = ns;
  char *copy = strndup(s, n);
  if (copy != NULL) log->secrets[log->nsecrets++] = copy;
}

void cli_log_secret(cli_log *log, const char *dsn) {
  dbp_dsn d;
  char err[256];
  if (dsn == NULL || dbp_dsn_parse(dsn, &d, err, sizeof err) != 0) return;
  /* A password equal to the user name hides nothing the user name shows. */
  bool same = d.password != NULL && d.user != NULL && strcmp(d.password, d.user) == 0;
  if (d.password != NULL && !same) add_secret(log, d.password, strlen(d.password));
  dbp_dsn_free(&d);
  if (same) return;
  /* The password as written in the URL too (it may be percent-encoded). */
  const char *auth = strstr(dsn, "://");
  if (auth == NULL) return;
  auth += 3;
  size_t alen = strcspn(auth, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < alen; i++) {
    if (auth[i] == '@') at = auth + i;
  }
  if (at == NULL) return;
  const char *colon = memchr(auth, ':', (size_t)(at - auth));
  if (colon != NULL) add_secret(log, colon + 1, (size_t)(at - colon - 1));
}

void cli_log_free(cli_log *log) {
  for (size_t i = 0; i < log->nsecrets; i++) {
    memset(log->secrets[i], 0, strlen(log->secrets[i]));
    free(log->secrets[i]);
  }
  free(log->secrets);
  log->secrets = NULL;
  log->nsecrets = 0;
}

void cli_log_scrub(const cli_log *log, cli_str *s) {
  if (s->p == NULL) return;
  for (size_t i = 0; i < log->nsecrets; i++) {
    const char *secret = log->secrets[i];
    size_t n = strlen(secret);
    char *hit;
    while ((hit = strstr(s->p, secret)) != NULL) {
      /* "***" is never longer than a secret (n >= MIN_SECRET). */
      memcpy(hit, "***", 3);
      memmove(hit + 3, hit + n, strlen(hit + n) + 1);
      s->len -= n - 3;
    }
  }
}

static const char *level_name(cli_level l) {
  return l == CLI_ERROR ? "error" : l == CLI_WARN ? "warning" : "info";
}

void cli_log_event(cli_log *log, cli_level level, const char *event, const char *task,
                   const char *text, const char *json_fields) {
  if (log->quiet && level < CLI_ERROR) return;
  cli_str line = {0};
  if (log->format == CLI_LOG_JSON) {
    struct timespec now;
    char ts[40];
    clock_gettime(CLOCK_REALTIME, &now);
    cli_str_puts(&line, "{\"ts\":");
    cli_str_json(&line, cli_fmt_iso(&now, ts, sizeof ts));
    cli_str_puts(&line, ",\"level\":");
    cli_str_json(&line, level_name(level));
    cli_str_puts(&line, ",\"event\":");
    cli_str_json(&line, event);
    if (task != NULL) {
      cli_str_puts(&line, ",\"task\":");
      cli_str_json(&line, task);
    }
    cli_str_puts(&line, ",\"message\":");
    cli_str_json(&line, text);
    if (json_fields != NULL && *json_fields != '\0') {
      cli_str_puts(&line, ",");
      cli_str_puts(&line, json_fields);
    }
    cli_str_puts(&line, "}\n");
  } else {
    /* User input (task names, paths, SQL) and server messages reach these
     * lines: their control characters are shown, never obeyed. */
    cli_str_puts(&line, "dbpipe: ");
    if (task == NULL && strcmp(event, "error") == 0) cli_str_puts(&line, "error: ");
    if (task != NULL) {
      cli_str_escaped(&line, task);
      cli_str_puts(&line, ": ");
    }
    cli_str_escaped(&line, text);
    cli_str_puts(&line, "\n");
  }
  cli_log_scrub(log, &line);
  if (line.p != NULL) {
    if (log->progress != NULL) cli_progress_clear(log->progress);
    fputs(line.p, log->out);
    fflush(log->out);
    if (log->progress != NULL) cli_progress_draw(log->progress);
  }
  cli_str_free(&line);
}

void cli_log_msg(cli_log *log, cli_level level, const char *event, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  cli_log_event(log, level, event, NULL, buf, NULL);
}
