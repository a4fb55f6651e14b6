/* The live display on a terminal: one line per active task (rows, rows/s,
 * bytes, state), a line for the pools and a summary, redrawn in place at
 * every progress event of the run. Finished tasks scroll away as log lines above
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
static void add_line(dbp_buf *frame, const char *raw, int cols) {
  /* Task and connection names come from users: shown, never obeyed. */
  dbp_buf esc = {0};
  cli_escaped(&esc, raw);
  const char *line = dbp_buf_str(&esc);
  size_t width = 0, n = 0;
  while (line[n] != '\0' && width + 1 < (size_t)cols) {
    if (((unsigned char)line[n] & 0xC0) != 0x80) width++;
    n++;
  }
  while (((unsigned char)line[n] & 0xC0) == 0x80) n++; /* finish a UTF-8 sequence */
  dbp_buf_append(frame, line, n);
  dbp_buf_puts(frame, "\x1b[K\n");
  dbp_buf_free(&esc);
}

static bool active(dbp_task_state s) {
  return s == DBP_TASK_CONNECTING || s == DBP_TASK_RUNNING || s == DBP_TASK_RETRYING;
}

void cli_progress_draw(cli_progress *p) {
  if (p->run == NULL || p->rt == NULL) return;
  int cols, rows;
  term_size(p->fd, &cols, &rows);
  uint64_t now = dbp_now(p->rt);
  dbp_run_summary sum;
  dbp_run_get_summary(p->run, &sum);
  size_t ntasks = dbp_run_ntasks(p->run);

  int width = 4;
  for (size_t i = 0; i < ntasks; i++) {
    int len = (int)strlen(dbp_run_task(p->run, i)->name);
    if (len > width) width = len < NAME_MAX_WIDTH ? len : NAME_MAX_WIDTH;
  }
  size_t failed = sum.failed + sum.cancelled;

  dbp_buf frame = {0};
  if (!p->hidden_cursor) {
    dbp_buf_puts(&frame, "\x1b[?25l");
    p->hidden_cursor = true;
  }
  if (p->lines > 0) dbp_buf_printf(&frame, "\r\x1b[%dA", p->lines);
  int budget = rows - 3 > 1 ? rows - 3 : 1; /* task lines that fit */
  int lines = 0;
  size_t shown = 0;
  char line[512], a[32], b[32], c[32], d[32];
  size_t cap = sum.active <= (size_t)budget ? sum.active : (size_t)budget - 1;
  for (size_t i = 0; i < ntasks && shown < cap; i++) {
    const dbp_task_info *t = dbp_run_task(p->run, i);
    if (!active(t->state)) continue;
    uint64_t el = now > t->started_ms ? now - t->started_ms : 0;
    if (t->state == DBP_TASK_RUNNING) {
      snprintf(line, sizeof line, " %-*.*s  %-10s %11s rows %9s rows/s %10s %8s", width, width,
               t->name, "running", cli_fmt_count(t->progress.rows, a, sizeof a),
               cli_fmt_count((uint64_t)(t->rows_per_sec + 0.5), b, sizeof b),
               cli_fmt_bytes(t->progress.bytes_out, c, sizeof c),
               cli_fmt_duration(el, d, sizeof d));
    } else {
      snprintf(line, sizeof line, " %-*.*s  %-10s%s  %s", width, width, t->name,
               dbp_task_state_name(t->state),
               t->state == DBP_TASK_RETRYING ? " (after a failed attempt)" : "",
               cli_fmt_duration(el, d, sizeof d));
    }
    add_line(&frame, line, cols);
    lines++;
    shown++;
  }
  if (shown < sum.active) {
    snprintf(line, sizeof line, " ... and %zu more running", sum.active - shown);
    add_line(&frame, line, cols);
    lines++;
  }

  /* Pools: in use / max, waiting. */
  dbp_buf pools = {0};
  for (size_t i = 0; i < p->job->nconns; i++) {
    dbp_pool_stats st;
    size_t max = dbp_run_pool_stats(p->run, i, &st);
    if (max == 0) continue;
    dbp_buf_printf(&pools, "%s %s %zu/%zu in use, %zu waiting", pools.len ? " |" : " pool",
                   p->job->conns[i].name, st.in_use, max, st.waiting);
  }
  if (pools.data != NULL) {
    add_line(&frame, pools.data, cols);
    lines++;
  }
  dbp_buf_free(&pools);

  snprintf(line, sizeof line, " %zu/%zu done, %zu running, %zu queued%s%s, %s elapsed%s", sum.done,
           sum.ntasks, sum.active, sum.queued, failed ? ", failed: " : "",
           failed ? cli_fmt_count(failed, a, sizeof a) : "",
           cli_fmt_duration(sum.started_ms ? now - sum.started_ms : 0, d, sizeof d),
           sum.cancel_requested ? " - interrupted, cancelling" : "");
  add_line(&frame, line, cols);
  lines++;
  if (p->lines > lines) dbp_buf_puts(&frame, "\x1b[J"); /* the old frame was taller */
  if (frame.data != NULL) write_all(p->fd, frame.data, frame.len);
  dbp_buf_free(&frame);
  p->lines = lines;
}

void cli_progress_on_event(const dbp_run_event *ev, void *ud) {
  cli_progress *p = ud;
  if (ev->kind == DBP_RUN_EV_RUN_PROGRESS) cli_progress_draw(p);
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
