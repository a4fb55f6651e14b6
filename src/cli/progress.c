/* The live display on a terminal: one line per active task (parts, rows of
 * the estimate, percent, ETA, rows/s, bytes), a line for the pools and a
 * summary of the whole run, redrawn in place at every progress event of
 * the run. Finished tasks scroll away as log lines above it. Also the
 * arithmetic behind percents and ETAs, which the JSON log shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"

#define NAME_MAX_WIDTH 24
/* At most this many task lines, however tall the terminal: with many
 * tables running at once the rest is a count. */
#define MAX_TASK_LINES 12

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

/* ---- arithmetic ---- */

int cli_percent(uint64_t rows, int64_t estimate) {
  if (estimate < 0) return -1;
  uint64_t est = (uint64_t)estimate;
  if (rows >= est) return 99; /* estimate 0 included: reached, not done */
  uint64_t pct =
      rows <= UINT64_MAX / 100 ? rows * 100 / est : (uint64_t)((double)rows / (double)est * 100.0);
  return pct > 99 ? 99 : (int)pct;
}

int64_t cli_eta_s(uint64_t rows, int64_t estimate, double rows_per_sec) {
  /* `!(rate > 0)` also refuses a NaN. */
  if (estimate < 0 || rows >= (uint64_t)estimate || !(rows_per_sec > 0)) return -1;
  double s = (double)((uint64_t)estimate - rows) / rows_per_sec;
  if (s >= (double)CLI_ETA_MAX_S) return CLI_ETA_MAX_S;
  int64_t whole = (int64_t)s;
  return (double)whole < s ? whole + 1 : whole;
}

const char *cli_fmt_eta(int64_t s, char *buf, size_t len) {
  long long v = (long long)s;
  if (s < 0)
    snprintf(buf, len, "%s", "");
  else if (s < 60)
    snprintf(buf, len, "%llds", v);
  else if (s < 3600)
    snprintf(buf, len, "%lldm%02llds", v / 60, v % 60);
  else if (s < 86400)
    snprintf(buf, len, "%lldh%02lldm", v / 3600, v % 3600 / 60);
  else if (s < 100 * 86400)
    snprintf(buf, len, "%lldd%02lldh", v / 86400, v % 86400 / 3600);
  else
    snprintf(buf, len, "%s", ">99d");
  return buf;
}

const char *cli_fmt_rate(double v, char *buf, size_t len) {
  static const char units[] = "kMGT";
  if (!(v >= 0)) v = 0;
  if (v < 999.5) {
    snprintf(buf, len, "%.0f", v);
    return buf;
  }
  v /= 1000.0;
  size_t u = 0;
  while (v >= 999.5 && u + 1 < sizeof units - 1) {
    v /= 1000.0;
    u++;
  }
  snprintf(buf, len, v < 9.995 ? "%.2f%c" : v < 99.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
  return buf;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void cli_outlook_add(cli_outlook *o, const dbp_task_info *t) {
  o->tasks++;
  if (t->table != NULL) o->tables++;
  if (t->state == DBP_TASK_FAILED || t->state == DBP_TASK_CANCELLED) return;
  o->counted++;
  if (t->state == DBP_TASK_RUNNING && t->rows_per_sec > 0) o->rows_per_sec += t->rows_per_sec;
  if (t->rows_estimate < 0) {
    /* A finished task needs no estimate: nothing of it is left. */
    if (t->state == DBP_TASK_DONE)
      o->done++;
    else
      o->unestimated++;
    return;
  }
  if (t->state == DBP_TASK_DONE) o->done++;
  uint64_t est = (uint64_t)t->rows_estimate;
  uint64_t rows = t->state == DBP_TASK_DONE ? est : t->progress.rows < est ? t->progress.rows : est;
  o->estimate = sat_add(o->estimate, est);
  o->progress = sat_add(o->progress, rows);
}

int cli_outlook_percent(const cli_outlook *o) {
  if (o->counted == 0 || o->unestimated > 0) return -1;
  if (o->done == o->counted) return 100;
  return cli_percent(o->progress, o->estimate > INT64_MAX ? INT64_MAX : (int64_t)o->estimate);
}

int64_t cli_outlook_eta_s(const cli_outlook *o) {
  if (cli_outlook_percent(o) < 0 || o->done == o->counted) return -1;
  uint64_t est = o->estimate > INT64_MAX ? INT64_MAX : o->estimate;
  uint64_t progress = o->progress < est ? o->progress : est;
  return cli_eta_s(progress, (int64_t)est, o->rows_per_sec);
}

/* ---- the display ---- */

static bool active(dbp_task_state s) {
  return s == DBP_TASK_CONNECTING || s == DBP_TASK_RUNNING || s == DBP_TASK_RETRYING;
}

/* What a task line shows as its name: the table alone for a task found by
 * a `tables` pattern ("NAME:SCHEMA.TABLE"), whose prefix would only eat
 * the width (the log lines keep the whole name). */
static const char *label_of(const dbp_task_info *t) {
  if (t->table == NULL) return t->name;
  size_t n = strlen(t->name), tn = strlen(t->table);
  if (n > tn + 1 && t->name[n - tn - 1] == ':' && strcmp(t->name + n - tn, t->table) == 0)
    return t->table;
  return t->name;
}

/* One task line's columns, filled before the widths are known. */
typedef struct task_cols {
  const char *label;
  bool running;
  char parts[64], rows[72], pct[16], eta[24], rate[48], bytes[32], el[32];
  const char *state;
} task_cols;

static void task_columns(const dbp_task_info *t, uint64_t now, task_cols *c) {
  char a[32], b[32];
  memset(c, 0, sizeof *c);
  c->label = label_of(t);
  c->running = t->state == DBP_TASK_RUNNING;
  c->state = t->state == DBP_TASK_RETRYING ? "retrying (after a failed attempt)"
                                           : dbp_task_state_name(t->state);
  if (t->nparts > 1)
    snprintf(c->parts, sizeof c->parts, "[%zu/%zu parts]", t->parts_done, t->nparts);
  uint64_t el = now > t->started_ms ? now - t->started_ms : 0;
  cli_fmt_duration(el, c->el, sizeof c->el);
  if (!c->running) return;
  uint64_t rows = t->progress.rows;
  int pct = cli_percent(rows, t->rows_estimate);
  if (pct >= 0) {
    snprintf(c->rows, sizeof c->rows, "%s/%s rows", cli_fmt_count(rows, a, sizeof a),
             cli_fmt_count((uint64_t)t->rows_estimate, b, sizeof b));
    snprintf(c->pct, sizeof c->pct, "%d%%", pct);
    int64_t eta = cli_eta_s(rows, t->rows_estimate, t->rows_per_sec);
    if (eta >= 0) snprintf(c->eta, sizeof c->eta, "ETA %s", cli_fmt_eta(eta, a, sizeof a));
  } else {
    snprintf(c->rows, sizeof c->rows, "%s rows", cli_fmt_count(rows, a, sizeof a));
  }
  snprintf(c->rate, sizeof c->rate, "%s rows/s", cli_fmt_rate(t->rows_per_sec, a, sizeof a));
  cli_fmt_bytes(t->progress.bytes_out, c->bytes, sizeof c->bytes);
}

static void buf_reset(dbp_buf *b) {
  b->len = 0;
  if (b->data != NULL) b->data[0] = '\0';
}

static int max_int(int a, int b) {
  return a > b ? a : b;
}

void cli_progress_draw(cli_progress *p) {
  if (p->run == NULL || p->rt == NULL || !p->started) return;
  int cols, rows;
  term_size(p->fd, &cols, &rows);
  uint64_t now = dbp_now(p->rt);
  dbp_run_summary sum;
  dbp_run_get_summary(p->run, &sum);
  size_t ntasks = dbp_run_ntasks(p->run);

  int budget = rows - 3 > 1 ? rows - 3 : 1; /* task lines that fit */
  if (budget > MAX_TASK_LINES) budget = MAX_TASK_LINES;
  size_t cap = sum.active <= (size_t)budget ? sum.active : (size_t)budget - 1;
  task_cols *shown = cap ? calloc(cap, sizeof *shown) : NULL;
  if (shown == NULL) cap = 0;
  size_t nshown = 0;
  cli_outlook o = {0};
  size_t running = 0, connecting = 0, retrying = 0;
  for (size_t i = 0; i < ntasks; i++) {
    const dbp_task_info *t = dbp_run_task(p->run, i);
    cli_outlook_add(&o, t);
    running += t->state == DBP_TASK_RUNNING;
    connecting += t->state == DBP_TASK_CONNECTING;
    retrying += t->state == DBP_TASK_RETRYING;
    if (nshown < cap && t->state == DBP_TASK_RUNNING) task_columns(t, now, &shown[nshown++]);
  }
  /* Those exporting first; then those waiting for a connection or a retry,
   * as far as lines are left. */
  for (size_t i = 0; i < ntasks && nshown < cap; i++) {
    const dbp_task_info *t = dbp_run_task(p->run, i);
    if (active(t->state) && t->state != DBP_TASK_RUNNING) task_columns(t, now, &shown[nshown++]);
  }

  /* Column widths over the lines shown, so that they line up. */
  int w_label = 4, w_parts = 0, w_rows = 0, w_pct = 0, w_eta = 0, w_rate = 0, w_bytes = 0;
  for (size_t i = 0; i < nshown; i++) {
    const task_cols *c = &shown[i];
    int len = (int)strlen(c->label);
    w_label = max_int(w_label, len < NAME_MAX_WIDTH ? len : NAME_MAX_WIDTH);
    w_parts = max_int(w_parts, (int)strlen(c->parts));
    w_rows = max_int(w_rows, (int)strlen(c->rows));
    w_pct = max_int(w_pct, (int)strlen(c->pct));
    w_eta = max_int(w_eta, (int)strlen(c->eta));
    w_rate = max_int(w_rate, (int)strlen(c->rate));
    w_bytes = max_int(w_bytes, (int)strlen(c->bytes));
  }

  dbp_buf frame = {0};
  if (!p->hidden_cursor) {
    dbp_buf_puts(&frame, "\x1b[?25l");
    p->hidden_cursor = true;
  }
  if (p->lines > 0) dbp_buf_printf(&frame, "\r\x1b[%dA", p->lines);
  int lines = 0;
  dbp_buf line = {0};
  for (size_t i = 0; i < nshown; i++) {
    const task_cols *c = &shown[i];
    buf_reset(&line);
    dbp_buf_printf(&line, " %-*.*s", w_label, w_label, c->label);
    if (w_parts) dbp_buf_printf(&line, "  %-*s", w_parts, c->parts);
    if (!c->running) {
      dbp_buf_printf(&line, "  %s  %s", c->state, c->el);
    } else {
      dbp_buf_printf(&line, "  %*s", w_rows, c->rows);
      if (w_pct) dbp_buf_printf(&line, "  %*s", w_pct, c->pct);
      if (w_eta) dbp_buf_printf(&line, "  %-*s", w_eta, c->eta);
      dbp_buf_printf(&line, "  %*s  %*s  %s", w_rate, c->rate, w_bytes, c->bytes, c->el);
    }
    add_line(&frame, dbp_buf_str(&line), cols);
    lines++;
  }
  free(shown);
  char text[512], a[32], d[32];
  if (nshown < sum.active) {
    snprintf(text, sizeof text, " ... and %zu more", sum.active - nshown);
    add_line(&frame, text, cols);
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

  /* The whole run: "3/20 tables  41%  ETA 1m05s  ...". */
  size_t failed = sum.failed + sum.cancelled;
  buf_reset(&line);
  dbp_buf_printf(&line, " %zu/%zu %s", sum.done, sum.ntasks,
                 o.tasks > 0 && o.tables == o.tasks ? "tables" : "tasks");
  int pct = cli_outlook_percent(&o);
  if (pct >= 0) dbp_buf_printf(&line, "  %d%%", pct);
  int64_t eta = cli_outlook_eta_s(&o);
  if (eta >= 0) dbp_buf_printf(&line, "  ETA %s", cli_fmt_eta(eta, a, sizeof a));
  if (o.rows_per_sec > 0)
    dbp_buf_printf(&line, "  %s rows/s", cli_fmt_rate(o.rows_per_sec, a, sizeof a));
  dbp_buf_printf(&line, "  %zu running", running);
  if (connecting) dbp_buf_printf(&line, ", %zu connecting", connecting);
  if (retrying) dbp_buf_printf(&line, ", %zu retrying", retrying);
  dbp_buf_printf(&line, ", %zu queued", sum.queued);
  if (failed) dbp_buf_printf(&line, ", failed: %zu", failed);
  dbp_buf_printf(&line, ", %s elapsed%s",
                 cli_fmt_duration(sum.started_ms ? now - sum.started_ms : 0, d, sizeof d),
                 sum.cancel_requested ? " - interrupted, cancelling" : "");
  add_line(&frame, dbp_buf_str(&line), cols);
  dbp_buf_free(&line);
  lines++;
  if (p->lines > lines) dbp_buf_puts(&frame, "\x1b[J"); /* the old frame was taller */
  if (frame.data != NULL) write_all(p->fd, frame.data, frame.len);
  dbp_buf_free(&frame);
  p->lines = lines;
}

void cli_progress_on_event(const dbp_run_event *ev, void *ud) {
  cli_progress *p = ud;
  if (ev->kind == DBP_RUN_EV_RUN_STARTED) p->started = true;
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
