/* The driver kit (drvkit.h): error recording, waiting on the driver's
 * socket with deadlines and the no-progress limit, and the column/row
 * storage every driver fills. Below conn.c; calls only the runtime. */
#include "db/drvkit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- errors ---- */

int dbp__seterr(dbp_conn *c, int code, const char *sqlstate, int db_errno, bool retryable,
                const char *fmt, ...) {
  dbp_dberr *e = &c->err;
  e->code = code;
  e->db_errno = db_errno;
  e->retryable = retryable;
  /* sqlstate may be e->sqlstate itself (a broken connection keeps its
   * cause): copy through a temporary. */
  char state[sizeof e->sqlstate] = "";
  if (sqlstate != NULL) snprintf(state, sizeof state, "%s", sqlstate);
  memcpy(e->sqlstate, state, sizeof state);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  /* Trailing newlines from the client libraries only get in the way. */
  size_t n = strlen(e->message);
  while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' ')) e->message[--n] = '\0';
  dbp__scrub(e->message, c->dsn.password);
  return code;
}

int dbp__err_lost(dbp_conn *c, const char *sqlstate, int db_errno, const char *detail) {
  return dbp__seterr(c, DBP_ECONNLOST, sqlstate, db_errno, true,
                     "connection to the server lost: %s",
                     detail != NULL && detail[0] != '\0' ? detail : "server closed the connection");
}

int dbp__err_socket_gone(dbp_conn *c) {
  return dbp__seterr(c, DBP_ECONNLOST, NULL, 0, true, "the connection's socket is gone");
}

int dbp__err_connect_stopped(dbp_conn *c, int why, const char *detail) {
  if (why == DBP_ECANCELED)
    return dbp__seterr(c, why, NULL, 0, false, "canceled while connecting to %s", c->redacted);
  if (detail != NULL)
    return dbp__seterr(c, why, NULL, 0, true, "timed out connecting to %s: %s", c->redacted,
                       detail);
  return dbp__seterr(c, why, NULL, 0, true, "timed out connecting to %s", c->redacted);
}

int dbp__err_connect(dbp_conn *c, int code, const char *sqlstate, int db_errno, bool retryable,
                     const char *detail) {
  return dbp__seterr(c, code, sqlstate, db_errno, retryable, "could not connect to %s: %s",
                     c->redacted, detail);
}

void dbp__one_line(char *buf, size_t len, const char *msg) {
  size_t j = 0;
  bool space = false;
  for (size_t i = 0; msg != NULL && msg[i] && j + 1 < len; i++) {
    char ch = msg[i];
    if (ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ') {
      space = true;
      continue;
    }
    if (space && j > 0 && j + 2 < len) buf[j++] = ' ';
    space = false;
    buf[j++] = ch;
  }
  buf[j] = '\0';
}

/* ---- waiting on the driver's socket ---- */

void dbp__watch_close(dbp__watch *ws) {
  if (ws->w != NULL) dbp_fdwatch_close(ws->w);
  ws->w = NULL;
  ws->fd = -1;
  ws->ino = 0;
}

void dbp__unwatch(dbp_conn *c) {
  dbp__watch_close(&c->watch);
}

int dbp__wait_on(dbp_conn *c, dbp__watch *ws, int64_t deadline, int fd, int events,
                 int64_t timeout_ms, bool check, int *revents) {
  *revents = 0;
  if (fd < 0) return DBP_ECONNLOST;
  ino_t ino = ws->ino;
  if (check || ws->w == NULL || fd != ws->fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return DBP_ECONNLOST;
    ino = st.st_ino;
  }
  if (ws->w == NULL || fd != ws->fd || ino != ws->ino) {
    dbp__watch_close(ws);
    int rc = dbp_fdwatch_new(c->rt, fd, &ws->w);
    if (rc != 0) {
      ws->w = NULL;
      return rc;
    }
    ws->fd = fd;
    ws->ino = ino;
  }
  int64_t t = timeout_ms;
  bool own = timeout_ms >= 0; /* is the caller's own limit the nearer one? */
  if (deadline >= 0) {
    int64_t rem = deadline - (int64_t)dbp_now(c->rt);
    if (rem <= 0) return DBP_ETIMEDOUT;
    if (t < 0 || rem < t) {
      t = rem;
      own = false;
    }
  }
  /* The no-progress limit counts from the start of each wait: any
   * readiness is progress. It guards only the statement's own socket; side
   * connections (MariaDB's KILL) and the connect phase have their own
   * limits. */
  bool idle = false;
  int64_t idle_ms = c->io_timeout_ms;
  if (c->in_stmt && ws == &c->watch && !check && idle_ms >= 0 && (t < 0 || idle_ms < t)) {
    t = idle_ms;
    own = false;
    idle = true;
  }
  uint64_t start = dbp_now(c->rt);
  int rc = dbp_fdwatch_wait(ws->w, events, t, revents);
  if (rc == DBP_ETIMEDOUT && own && dbp_now(c->rt) >= start + (uint64_t)timeout_ms) {
    *revents = 0; /* the caller's own limit passed: not an error */
    return 0;
  }
  /* A timeout that came from the idle limit (not the statement's deadline
   * nor the coroutine's, which may be nearer still) is remembered, so the
   * call's message can name it. */
  if (rc == DBP_ETIMEDOUT && idle && dbp_now(c->rt) >= start + (uint64_t)idle_ms &&
      (deadline < 0 || (int64_t)dbp_now(c->rt) < deadline))
    c->io_idle = true;
  return rc;
}

int dbp__wait(dbp_conn *c, int fd, int events, int64_t timeout_ms, bool check, int *revents) {
  int rc = dbp__wait_on(c, &c->watch, c->deadline, fd, events, timeout_ms, check, revents);
  if (rc == DBP_ECONNLOST) {
    dbp__err_socket_gone(c);
  } else if (rc != 0 && !dbp__interrupted(rc)) {
    dbp__seterr(c, rc, NULL, 0, false, "cannot watch the connection's socket: %s",
                dbp_strerror(rc));
  }
  return rc;
}

/* ---- column metadata and row arrays ---- */

int dbp__cols_begin(dbp_conn *c, size_t n, size_t strbytes) {
  c->ncols = 0;
  c->strs_used = 0;
  if (n > c->cols_cap) {
    dbp_column *cols = realloc(c->cols, n * sizeof *cols);
    if (cols == NULL) return DBP_ENOMEM;
    c->cols = cols;
    c->cols_cap = n;
  }
  if (strbytes > c->strs_cap) {
    char *s = realloc(c->strs, strbytes);
    if (s == NULL) return DBP_ENOMEM;
    c->strs = s;
    c->strs_cap = strbytes;
  }
  if (n > c->row_cap) {
    const char **v = realloc((void *)c->vals, n * sizeof *v);
    if (v == NULL) return DBP_ENOMEM;
    c->vals = v;
    size_t *l = realloc(c->lens, n * sizeof *l);
    if (l == NULL) return DBP_ENOMEM;
    c->lens = l;
    c->row_cap = n;
  }
  if (n > 0) memset(c->cols, 0, n * sizeof *c->cols);
  c->ncols = n;
  return 0;
}

const char *dbp__cols_str(dbp_conn *c, const char *s, size_t n) {
  /* dbp__cols_begin reserved enough; a short reservation is a driver bug,
   * answered with an empty string rather than an overflow. */
  if (c->strs_used + n + 1 > c->strs_cap) return "";
  char *d = c->strs + c->strs_used;
  memcpy(d, s, n);
  d[n] = '\0';
  c->strs_used += n + 1;
  return d;
}

void dbp__cols_clear(dbp_conn *c) {
  c->ncols = 0;
  c->strs_used = 0;
}

void dbp__cols_free(dbp_conn *c) {
  free(c->cols);
  free(c->strs);
  free((void *)c->vals);
  free(c->lens);
  c->cols = NULL;
  c->strs = NULL;
  c->vals = NULL;
  c->lens = NULL;
  c->ncols = c->cols_cap = c->strs_used = c->strs_cap = c->row_cap = 0;
}

void dbp__row_out(dbp_conn *c, dbp_row *row) {
  row->ncols = c->ncols;
  row->vals = c->vals;
  row->lens = c->lens;
}
