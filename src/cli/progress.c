/* The live display on a terminal: one line per active task (rows, rows/s,
 * bytes, state), a line for the pools and a summary, redrawn in place from
 * a timer on the run's loop. Finished tasks scroll away as log lines above
 * it. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"

#define NAME_MAX_WIDTH 24

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return; /* nothing sensible to do about a broken terminal */
    p += w;
    n -= (size_t)w;
  }
}

static void term_size(int fd, int *cols, int *rows) {
  struct winsize ws;
  *cols = 80;
  *rows = 24;
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0) {
    if (ws.ws_col > 0) *cols = ws.ws_col;
    if (ws.ws_row > 0) *rows = ws.ws_row;
  }
}

/* Appends `line` cut to the terminal's width (so it never wraps, which
 * would break the line count), erasing what was there. */
static void add_line(cli_str *frame, const char *raw, int cols) {
  /* Task and connection names come from users: shown, never obeyed. */
  cli_str esc = {0};
  cli_str_escaped(&esc, raw);
  const char *line = esc.p != NULL ? esc.p : "";
  size_t width = 0, n = 0;
  while (line[n] != '\0' && width + 1 < (size_t)cols) {
    if (((unsigned char)line[n] & 0xC0) != 0x80) width++;
    n++;
  }
  while (((unsigned char)line[n] & 0xC0) == 0x80) n++; /* finish a UTF-8 sequence */
  cli_str_add(frame, line, n);
  cli_str_puts(frame, "\x1b[K\n");
  cli_str_free(&esc);
}

void cli_progress_sample(cli_run *run) {
  uint64_t now = dbp_now(run->rt);
  for (size_t i = 0; i < run->ntasks; i++) {
    cli_task *t = &run->tasks[i];
    if (t->state != CLI_T_RUNNING) continue;
    uint64_t rows = t->progress.rows;
    if (t->rate_ms == 0) {
      t->rate_ms = now;
      t->rate_rows = rows;
      continue;
    }
    uint64_t dt = now - t->rate_ms;
    if (dt < 100) continue;
    double inst = (double)(rows - t->rate_rows) * 1000.0 / (double)dt;
    t->rate = t->rate == 0 ? inst : 0.6 * t->rate + 0.4 * inst;
    t->rate_ms = now;
    t->rate_rows = rows;
  }
}

void cli_progress_draw(cli_progress *p) {
  cli_run *run = p->run;
  if (run == NULL || run->rt == NULL) return;
  int cols, rows;
  term_size(p->fd, &cols, &rows);
  uint64_t now = dbp_now(run->rt);

  int width = 4;
  size_t queued = 0, done = 0, failed = 0, active = 0;
  for (size_t i = 0; i < run->ntasks; i++) {
    const cli_task *t = &run->tasks[i];
    int len = (int)strlen(t->jt->name);
    if (len > width) width = len < NAME_MAX_WIDTH ? len : NAME_MAX_WIDTH;
    queued += t->state == CLI_T_QUEUED;
    done += t->state == CLI_T_DONE;
    failed += t->state == CLI_T_FAILED || t->state == CLI_T_INTERRUPTED;
    active +=
        t->state == CLI_T_CONNECTING || t->state == CLI_T_RUNNING || t->state == CLI_T_RETRYING;
  }

  cli_str frame = {0};
  if (!p->hidden_cursor) {
    cli_str_puts(&frame, "\x1b[?25l");
    p->hidden_cursor = true;
  }
  if (p->lines > 0) cli_str_printf(&frame, "\r\x1b[%dA", p->lines);
  int budget = rows - 3 > 1 ? rows - 3 : 1; /* task lines that fit */
  int lines = 0;
  size_t shown = 0;
  char line[512], a[32], b[32], c[32], d[32];
  size_t cap = active <= (size_t)budget ? active : (size_t)budget - 1;
  for (size_t i = 0; i < run->ntasks && shown < cap; i++) {
    const cli_task *t = &run->tasks[i];
    if (t->state != CLI_T_CONNECTING && t->state != CLI_T_RUNNING && t->state != CLI_T_RETRYING)
      continue;
    uint64_t el = now > t->started_ms ? now - t->started_ms : 0;
    if (t->state == CLI_T_RUNNING) {
      snprintf(line, sizeof line, " %-*.*s  %-10s %11s rows %9s rows/s %10s %8s", width, width,
               t->jt->name, "running", cli_fmt_count(t->progress.rows, a, sizeof a),
               cli_fmt_count((uint64_t)(t->rate + 0.5), b, sizeof b),
               cli_fmt_bytes(t->progress.bytes_out, c, sizeof c),
               cli_fmt_duration(el, d, sizeof d));
    } else {
      snprintf(line, sizeof line, " %-*.*s  %-10s%s  %s", width, width, t->jt->name,
               cli_task_state_name(t->state),
               t->state == CLI_T_RETRYING ? " (after a failed attempt)" : "",
               cli_fmt_duration(el, d, sizeof d));
    }
    add_line(&frame, line, cols);
    lines++;
    shown++;
  }
  if (shown < active) {
    snprintf(line, sizeof line, " ... and %zu more running", active - shown);
    add_line(&frame, line, cols);
    lines++;
  }

  /* Pools: in use / max, waiting. */
  cli_str pools = {0};
  for (size_t i = 0; i < run->job->nconns; i++) {
    if (run->pools == NULL || run->pools[i] == NULL) continue;
    dbp_pool_stats st;
    dbp_pool_get_stats(run->pools[i], &st);
    cli_str_printf(&pools, "%s %s %zu/%zu in use, %zu waiting", pools.len ? " |" : " pool",
                   run->job->conns[i].name, st.in_use, run->pool_size[i], st.waiting);
  }
  if (pools.p != NULL) {
    add_line(&frame, pools.p, cols);
    lines++;
  }
  cli_str_free(&pools);

  snprintf(line, sizeof line, " %zu/%zu done, %zu running, %zu queued%s%s, %s elapsed%s", done,
           run->ntasks, active, queued, failed ? ", failed: " : "",
           failed ? cli_fmt_count(failed, a, sizeof a) : "",
           cli_fmt_duration(now - run->started_ms, d, sizeof d),
           run->interrupted ? " - interrupted, cancelling" : "");
  add_line(&frame, line, cols);
  lines++;
  if (p->lines > lines) cli_str_puts(&frame, "\x1b[J"); /* the old frame was taller */
  if (frame.p != NULL) write_all(p->fd, frame.p, frame.len);
  cli_str_free(&frame);
  p->lines = lines;
}

void cli_progress_clear(cli_progress *p) {
  if (p->lines <= 0) return;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "\r\x1b[%dA\x1b[J", p->lines);
  write_all(p->fd, buf, (size_t)n);
  p->lines = 0;
}

void cli_progress_finish(cli_progress *p) {
  cli_progress_clear(p);
  if (p->hidden_cursor) {
    write_all(p->fd, "\x1b[?25h", 6);
    p->hidden_cursor = false;
  }
}
