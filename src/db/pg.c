/* The PostgreSQL driver, on libpq's asynchronous API.
 *
 * Every libpq call here is one that does not block: PQconnectPoll for the
 * connect, PQsend* plus the PQflush discipline for sending, PQconsumeInput
 * and PQisBusy before each PQgetResult, PQgetCopyData(async) for COPY. The
 * waits in between go through the coroutine runtime (dbp__wait), so the loop
 * stays free while the server works.
 *
 * Rows stream in single-row mode: one PGresult per row, kept until the next
 * call, values handed out in place; bytea values are decoded into the
 * connection's own buffer (a PGresult is libpq's, never written to). After
 * a timeout or a cancellation conn.c runs pg_abort, which sends PQcancel
 * from the thread pool (libpq 15 has no nonblocking cancel) and drains the
 * connection back to idle, or gives the session up.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/pg_conn.h"

/* ---- errors ---- */

/* Records that the connection is gone. Returns DBP_ECONNLOST. */
static int pg_lost(dbp_conn *c, const char *sqlstate) {
  char msg[400];
  dbp__one_line(msg, sizeof msg, PQerrorMessage(PG(c)->pg));
  return dbp__err_lost(c, sqlstate, 0, msg);
}

static bool retryable_state(const char *s) {
  return strncmp(s, "08", 2) == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
         strcmp(s, "53300") == 0 || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
         strcmp(s, "57P03") == 0;
}

int dbp__pg_error_of(PGconn *pg, const PGresult *res, const char *secret, dbp_dberr *e) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  char msg[480];
  if (primary != NULL && detail != NULL) {
    char d[240];
    dbp__one_line(d, sizeof d, detail);
    snprintf(msg, sizeof msg, "%s (%s)", primary, d);
  } else {
    dbp__one_line(msg, sizeof msg, primary != NULL ? primary : PQresultErrorMessage(res));
  }
  if (msg[0] == '\0') dbp__one_line(msg, sizeof msg, PQerrorMessage(pg));
  if (state == NULL) state = "";
  bool fatal = sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
  memset(e, 0, sizeof *e);
  snprintf(e->sqlstate, sizeof e->sqlstate, "%s", state);
  if (fatal || PQstatus(pg) == CONNECTION_BAD) {
    e->code = DBP_ECONNLOST;
    e->retryable = true;
    snprintf(e->message, sizeof e->message, "connection to the server lost: %s", msg);
  } else if (strcmp(state, "53300") == 0) {
    e->code = DBP_ETOOMANY;
    e->retryable = true;
    snprintf(e->message, sizeof e->message, "%s", msg);
  } else {
    /* 08P01 at ERROR level is the server refusing a malformed request
     * (say, the wrong number of parameters) on a session that lives on: a
     * retry would only repeat it. */
    e->code = DBP_EQUERY;
    e->retryable = retryable_state(state) && strcmp(state, "08P01") != 0;
    snprintf(e->message, sizeof e->message, "%s", msg);
  }
  if (secret != NULL) dbp__scrub(e->message, secret);
  return e->code;
}

/* Records the error carried by `res` (a FATAL_ERROR or unexpected result)
 * and returns its dbpipe code: DBP_ECONNLOST when the session is over,
 * DBP_ETOOMANY, or DBP_EQUERY (conn.c tells a cancel it asked for). */
static int pg_result_error(dbp_conn *c, const PGresult *res) {
  dbp_dberr e;
  int code = dbp__pg_error_of(PG(c)->pg, res, NULL, &e);
  if (code == DBP_ECONNLOST) {
    const char *m = e.message + strlen("connection to the server lost: ");
    return dbp__err_lost(c, e.sqlstate, 0, m);
  }
  return dbp__seterr(c, code, e.sqlstate, 0, e.retryable, "%s", e.message);
}

/* ---- waiting ---- */

/* Sends what libpq has buffered: waits for writable while PQflush says
 * there is more, reading whatever arrives meanwhile so the server never
 * blocks on us. Returns 0, DBP_ECONNLOST, or a wait's interruption. */
static int pg_flush(dbp_conn *c) {
  PGconn *pg = PG(c)->pg;
  for (;;) {
    int r = PQflush(pg);
    if (r == 0) return 0;
    if (r < 0) return pg_lost(c, NULL);
    int ev = 0;
    int rc = dbp__wait(c, PQsocket(pg), DBP_READABLE | DBP_WRITABLE, DBP_FOREVER, false, &ev);
    if (rc != 0) return rc;
    if ((ev & DBP_READABLE) && !PQconsumeInput(pg)) return pg_lost(c, NULL);
  }
}

/* Waits until PQgetResult can answer without blocking. Returns 0 or a
 * wait's interruption; a connection lost while reading also returns 0
 * (PQgetResult then reports it). */
static int pg_wait_result(dbp_conn *c) {
  PGconn *pg = PG(c)->pg;
  /* Anything still queued (a CopyFail, say) must reach the server first;
   * with nothing queued this returns at once. */
  int frc = pg_flush(c);
  if (frc != 0) return frc;
  while (PQisBusy(pg) && PQstatus(pg) != CONNECTION_BAD) {
    int ev = 0;
    int rc = dbp__wait(c, PQsocket(pg), DBP_READABLE, DBP_FOREVER, false, &ev);
    if (rc != 0) return rc;
    if (!PQconsumeInput(pg)) break; /* PQgetResult returns the error */
  }
  return 0;
}

/* Reads the next result; *out may be NULL at the end. Returns 0 or an
 * interruption / DBP_ECONNLOST. */
static int pg_next(dbp_conn *c, PGresult **out) {
  *out = NULL;
  int rc = pg_wait_result(c);
  if (rc != 0) return rc;
  *out = PQgetResult(PG(c)->pg);
  if (*out == NULL && PQstatus(PG(c)->pg) == CONNECTION_BAD) return pg_lost(c, NULL);
  return 0;
}

/* Reads results to the end of the current statement, discarding rows and
 * COPY data. The first error is recorded and returned (0 when none).
 * Interruptions and a lost connection return at once. */
static int pg_finish(dbp_conn *c) {
  pg_conn *p = PG(c);
  int first = 0;
  for (;;) {
    if (p->in_copy) {
      char *buf = NULL;
      int n = PQgetCopyData(p->pg, &buf, 1);
      if (n > 0) {
        PQfreemem(buf);
        continue;
      }
      if (n == 0) {
        int ev = 0;
        int rc = dbp__wait(c, PQsocket(p->pg), DBP_READABLE, DBP_FOREVER, false, &ev);
        if (rc != 0) return rc;
        if (!PQconsumeInput(p->pg)) return pg_lost(c, NULL);
        continue;
      }
      p->in_copy = false; /* -1: done; -2: the result below says why */
    }
    PGresult *res;
    int rc = pg_next(c, &res);
    if (rc != 0) return rc;
    if (res == NULL) return first;
    switch (PQresultStatus(res)) {
      case PGRES_FATAL_ERROR:
      case PGRES_BAD_RESPONSE:
      case PGRES_NONFATAL_ERROR:
        if (first == 0) first = pg_result_error(c, res);
        break;
      case PGRES_COPY_OUT:
        p->in_copy = true;
        break;
      case PGRES_COPY_IN:
        PQputCopyEnd(p->pg, "COPY FROM STDIN is not supported here");
        break;
      default:
        break;
    }
    PQclear(res);
    if (first == DBP_ECONNLOST) return first;
  }
}

/* ---- clean-up after an interruption ---- */

/* A cancel request on its way through the thread pool. It owns its
 * PGcancel, so it may outlive both the wait for it and the connection. */
typedef struct pg_cancel_job {
  uv_work_t req;
  dbp_waiter done;
  PGcancel *cancel;
  int ok;
  bool abandoned; /* nobody waits any more: the job frees itself */
  char err[256];
} pg_cancel_job;

static void pg_cancel_work(uv_work_t *req) {
  pg_cancel_job *j = req->data;
  j->ok = PQcancel(j->cancel, j->err, sizeof j->err);
}

static void pg_cancel_free(pg_cancel_job *j) {
  PQfreeCancel(j->cancel);
  free(j);
}

static void pg_cancel_after(uv_work_t *req, int status) {
  pg_cancel_job *j = req->data;
  if (j->abandoned)
    pg_cancel_free(j);
  else
    dbp_wake(&j->done, status);
}

/* Asks the server to cancel the running statement. PQcancel opens a
 * connection and blocks, so it runs on the thread pool; the wait for it
 * ends at `deadline` (loop ms, -1 none) or on the caller's cancellation,
 * and a request still out then finishes (or is dropped) on its own: a
 * server that cannot be reached never holds the caller longer than its
 * deadline. Returns 0 when the server took the request, else an error. */
int dbp__pg_send_cancel(dbp_conn *c, int64_t deadline) {
  pg_conn *p = PG(c);
  if (p->pg == NULL) return DBP_ESTATE;
  /* A PQcancel that blocks cannot be stopped: the thread pool keeps its
   * thread (and the loop stays alive) until libpq gives up, which with the
   * keepalive and tcp_user_timeout settings dbp__pg_connect passes takes at
   * most a few minutes. One such request per connection is the limit: a
   * server that did not answer the last one will not answer the next, and
   * the caller (pg_abort) then closes the socket instead, which ends the
   * statement just as surely for the client. */
  if (p->cancel_stuck) return DBP_ETIMEDOUT;
  pg_cancel_job *j = calloc(1, sizeof *j);
  if (j == NULL) return DBP_ENOMEM;
  j->cancel = PQgetCancel(p->pg);
  if (j->cancel == NULL) {
    free(j);
    return DBP_ENOMEM;
  }
  j->req.data = j;
  dbp_waiter_init(&j->done);
  int rc = uv_queue_work(dbp_rt_loop(c->rt), &j->req, pg_cancel_work, pg_cancel_after);
  if (rc != 0) {
    pg_cancel_free(j);
    return dbp_err_from_errno(rc);
  }
  int64_t t = DBP_FOREVER;
  if (deadline >= 0) {
    t = deadline - (int64_t)dbp_now(c->rt);
    if (t < 0) t = 0;
  }
  rc = dbp_await(c->rt, &j->done, t);
  if (rc != 0) {
    /* Let it go: if still queued it is dropped, else it finishes alone;
     * either way pg_cancel_after frees it. */
    j->abandoned = true;
    if (uv_cancel((uv_req_t *)&j->req) != 0) p->cancel_stuck = true;
    return rc;
  }
  rc = j->ok && j->done.result == 0 ? 0 : DBP_ECONNECT;
  pg_cancel_free(j);
  return rc;
}

static void pg_drop_results(pg_conn *p) {
  if (p->pending != NULL) PQclear(p->pending);
  if (p->row != NULL) PQclear(p->row);
  if (p->copy_buf != NULL) PQfreemem(p->copy_buf);
  p->pending = p->row = NULL;
  p->copy_buf = NULL;
}

/* Gives the session up: closes it (no socket may stay behind in an
 * unknown state), so that conn.c marks the connection broken. */
static void pg_give_up(dbp_conn *c) {
  pg_conn *p = PG(c);
  pg_drop_results(p);
  dbp__unwatch(c);
  if (p->pg != NULL) PQfinish(p->pg);
  p->pg = NULL;
  p->in_copy = false;
}

/* The driver's abort (see driver.h): cancels the statement on the server
 * (when `cancel`) and reads the connection back to idle within the
 * clean-up budget, or closes the session. Nothing here can hang: the wait
 * for the cancel request ends at the budget even when PQcancel itself
 * blocks on the thread pool (see dbp__pg_send_cancel), and the drain waits on
 * the socket under the same budget and the connection's no-progress limit.
 * Closing the socket is the answer whenever the statement could not be
 * seen to end: the server then ends the statement when it next writes to
 * the closed connection, and where the path to it is stalled so that it
 * never learns of the close, conn.c ends the session from a side
 * connection (*stray). */
static int pg_abort(dbp_conn *c, bool cancel, int64_t *stray) {
  pg_conn *p = PG(c);
  *stray = 0;
  pg_drop_results(p);
  if (p->pg == NULL || PQstatus(p->pg) == CONNECTION_BAD) return DBP_ECONNLOST;
  int rc = cancel ? dbp__pg_send_cancel(c, c->deadline) : 0;
  if (rc == 0) rc = pg_flush(c);
  if (rc == 0) {
    rc = pg_finish(c);
    if (rc == DBP_EQUERY || rc == DBP_ECANCELED) rc = 0; /* the expected 57014 */
  }
  if (rc == 0 && PQtransactionStatus(p->pg) == PQTRANS_ACTIVE) rc = DBP_EPROTO;
  if (rc != 0) {
    if (p->pg != NULL && PQstatus(p->pg) != CONNECTION_BAD) *stray = PQbackendPID(p->pg);
    pg_give_up(c);
  }
  return rc;
}

/* Handles a wait that stopped with `why` in the middle of a statement. An
 * interruption (timeout, cancellation) goes up to conn.c, which runs
 * pg_abort; any other error (lost, or the socket could not be waited on)
 * leaves the session in no state anyone can vouch for, so it is closed.
 * Returns why. */
static int pg_stop(dbp_conn *c, int why) {
  if (!dbp__interrupted(why)) pg_give_up(c);
  return why;
}

/* The tail of a statement whose last result was handled with outcome rc:
 * reads what follows to the end of the statement. Returns rc, else the
 * first error that followed; a lost connection or an interruption on the
 * way wins. */
static int pg_end(dbp_conn *c, int rc) {
  if (rc == DBP_ECONNLOST) return rc;
  int fr = pg_finish(c);
  if (dbp__interrupted(fr)) return pg_stop(c, fr);
  if (fr == DBP_ECONNLOST) return fr;
  return rc != 0 ? rc : fr;
}

/* ---- closing ---- */

static void pg_close(dbp_conn *c) {
  pg_conn *p = PG(c);
  pg_drop_results(p);
  /* PQfinish sends a Terminate message; on a nonblocking socket that never
   * waits. */
  if (p->pg != NULL) PQfinish(p->pg);
  p->pg = NULL;
  dbp__pg_stmt_free_all(p);
  free(p->bytes_cols);
  free(p->scratch);
  dbp_buf_free(&p->bytea);
  p->bytes_cols = NULL;
  p->scratch = NULL;
  p->bytes_cap = p->scratch_cap = 0;
}

/* ---- sending ---- */

size_t dbp__pg_text_params_size(const dbp_param *params, size_t n, size_t *nul_at) {
  size_t total = 0;
  *nul_at = 0;
  for (size_t i = 0; i < n; i++) {
    if (params[i].val == NULL) continue;
    if (memchr(params[i].val, '\0', params[i].len) != NULL) {
      *nul_at = i + 1;
      return 0;
    }
    total += params[i].len + 1;
  }
  return total;
}

void dbp__pg_text_params(const dbp_param *params, size_t n, char *scratch, const char **vals) {
  char *o = scratch;
  for (size_t i = 0; i < n; i++) {
    if (params[i].val == NULL) {
      vals[i] = NULL;
      continue;
    }
    memcpy(o, params[i].val, params[i].len);
    o[params[i].len] = '\0';
    vals[i] = o;
    o += params[i].len + 1;
  }
}

/* Prepares cached statement st on the server, waiting for the answer.
 * Returns 0 (prepared), 1 (the server refused: the caller runs the SQL
 * unnamed, which reports the error the usual way), or an interruption or
 * DBP_ECONNLOST (then the entry is dropped: whether the server has it is
 * unknown, and its name is never used again). */
static int pg_prepare_now(dbp_conn *c, pg_stmt *st) {
  pg_conn *p = PG(c);
  if (!PQsendPrepare(p->pg, st->name, st->sql, st->nparams, NULL)) {
    dbp__pg_stmt_drop(p, st);
    return PQstatus(p->pg) == CONNECTION_BAD ? pg_lost(c, NULL) : 1;
  }
  int rc = pg_flush(c);
  bool ok = false, any = false;
  while (rc == 0) {
    PGresult *res;
    rc = pg_next(c, &res);
    if (rc != 0 || res == NULL) break;
    any = true;
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
  }
  if (rc != 0) {
    dbp__pg_stmt_drop(p, st);
    return pg_stop(c, rc);
  }
  if (!ok || !any) {
    dbp__pg_stmt_drop(p, st);
    return 1;
  }
  st->prepared = true;
  return 0;
}

/* Sends DEALLOCATE for a statement the cache let go of and reads the
 * answer. Returns 0 (also when the server did not know it), or an
 * interruption or DBP_ECONNLOST. */
static int pg_deallocate_now(dbp_conn *c, pg_stmt *old) {
  pg_conn *p = PG(c);
  bool had = old->prepared;
  char sql[64];
  snprintf(sql, sizeof sql, "DEALLOCATE %s", old->name);
  dbp__pg_stmt_unref(old);
  if (!had) return 0;
  if (!PQsendQuery(p->pg, sql)) return PQstatus(p->pg) == CONNECTION_BAD ? pg_lost(c, NULL) : 0;
  int rc = pg_flush(c);
  if (rc == 0) {
    rc = pg_finish(c);
    if (rc == DBP_EQUERY) rc = 0; /* not there: nothing to free */
  }
  if (dbp__interrupted(rc)) return pg_stop(c, rc);
  return rc;
}

/* True when `sql` begins with a keyword of the statements that may change
 * what a cached statement's parameters and result are (the types of a
 * table's columns, say): CREATE, ALTER, DROP, DO, CALL, IMPORT. Blanks,
 * comments and parentheses before it are skipped. */
static bool pg_changes_schema(const char *sql) {
  const char *s = sql;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '(') s++;
    if (s[0] == '-' && s[1] == '-') {
      while (*s && *s != '\n') s++;
    } else if (s[0] == '/' && s[1] == '*') {
      int depth = 0;
      do {
        if (s[0] == '/' && s[1] == '*') {
          depth++;
          s += 2;
        } else if (s[0] == '*' && s[1] == '/') {
          depth--;
          s += 2;
        } else {
          s++;
        }
      } while (*s && depth > 0);
    } else {
      break;
    }
  }
  static const char *const words[] = {"create", "alter", "drop", "do", "call", "import"};
  size_t n = 0;
  while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_') n++;
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0) return true;
  return false;
}

/* Before a statement that may change types (pg_changes_schema): lets go of
 * every kept statement, deallocating them on the server in one round trip,
 * so that none runs with parameter or result types fixed before the
 * change. Returns 0, or an interruption or DBP_ECONNLOST. */
static int pg_drop_all_stmts(dbp_conn *c) {
  pg_conn *p = PG(c);
  dbp_buf sql = {0};
  for (size_t b = 0; b < DBP__PG_STMT_BUCKETS; b++)
    for (pg_stmt *s = p->stmts.tab[b]; s != NULL; s = s->hnext)
      if (s->prepared) dbp_buf_printf(&sql, "DEALLOCATE %s;", s->name);
  if (sql.len == 0 || sql.oom) {
    dbp_buf_free(&sql);
    dbp__pg_stmt_forget_all(p); /* nothing on the server (or no memory to say it) */
    return 0;
  }
  int ok = PQsendQuery(p->pg, sql.data);
  dbp_buf_free(&sql);
  if (!ok) return PQstatus(p->pg) == CONNECTION_BAD ? pg_lost(c, NULL) : 0;
  int rc = pg_flush(c);
  if (rc == 0) rc = pg_finish(c);
  if (dbp__interrupted(rc)) return pg_stop(c, rc);
  if (rc == 0) {
    dbp__pg_stmt_forget_all(p);
  } else if (rc == DBP_EQUERY) {
    /* A failed transaction refuses everything, the change included: the
     * statements stay, still right. */
    rc = 0;
  }
  return rc;
}

/* Which cached statement a statement of the extended protocol executes:
 * a statement seen before on this session is prepared the second time
 * (one extra round trip, once) and executed by name from then on, skipping
 * parse and plan; the first time it runs unnamed, as without a cache, so a
 * statement used once per session costs nothing more. Sets *st (NULL:
 * run unnamed). Returns 0, or an interruption or DBP_ECONNLOST. */
static int pg_pick_stmt(dbp_conn *c, const char *sql, size_t n, pg_stmt **st) {
  pg_conn *p = PG(c);
  *st = NULL;
  size_t len = strlen(sql);
  pg_stmt *s = dbp__pg_stmt_find(p, sql, len, (int)n);
  if (s == NULL) {
    pg_stmt *old = NULL;
    s = dbp__pg_stmt_add(p, sql, len, (int)n, &old);
    if (old != NULL) return pg_deallocate_now(c, old);
    return 0;
  }
  if (!s->prepared) {
    int rc = pg_prepare_now(c, s);
    if (rc < 0) return rc;
    if (rc == 1) return 0;
  }
  *st = s;
  return 0;
}

/* Sends a statement: the simple protocol (several statements allowed) when
 * `simple`, else the extended one with n text parameters, copied NUL-
 * terminated since libpq reads text parameters as C strings. Then flushes.
 * Returns 0 or an error. */
static int pg_send(dbp_conn *c, const char *sql, size_t n, const dbp_param *params, bool simple,
                   bool single_row, bool cache) {
  pg_conn *p = PG(c);
  int ok;
  p->sent = NULL;
  if (p->stmts.n > 0 && pg_changes_schema(sql)) {
    int rc = pg_drop_all_stmts(c);
    if (rc != 0) return rc;
  }
  if (simple) {
    ok = PQsendQuery(p->pg, sql);
  } else {
    pg_stmt *st = NULL;
    if (cache && n <= 65535) {
      int rc = pg_pick_stmt(c, sql, n, &st);
      if (rc != 0) return rc;
    }
    size_t nul_at;
    size_t total = dbp__pg_text_params_size(params, n, &nul_at);
    if (nul_at != 0)
      return dbp__seterr(c, DBP_EINVAL, "22021", 0, false, DBP__PG_NUL_PARAM, nul_at);
    if (total > p->scratch_cap) {
      char *s = realloc(p->scratch, total);
      if (s == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
      p->scratch = s;
      p->scratch_cap = total;
    }
    const char *small[16] = {NULL};
    const char **vals = n <= 16 ? small : malloc(n * sizeof *vals);
    if (vals == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
    dbp__pg_text_params(params, n, p->scratch, vals);
    if (n > 65535)
      ok = 0;
    else if (st != NULL)
      ok = PQsendQueryPrepared(p->pg, st->name, (int)n, vals, NULL, NULL, 0);
    else
      ok = PQsendQueryParams(p->pg, sql, (int)n, NULL, vals, NULL, NULL, 0);
    if (ok) p->sent = st;
    if (vals != small) free(vals);
  }
  if (!ok) {
    if (PQstatus(p->pg) == CONNECTION_BAD) return pg_lost(c, NULL);
    char msg[400];
    dbp__one_line(msg, sizeof msg, PQerrorMessage(p->pg));
    return dbp__seterr(c, DBP_EQUERY, NULL, 0, false, "could not send the statement: %s", msg);
  }
  if (single_row) PQsetSingleRowMode(p->pg);
  int rc = pg_flush(c);
  if (rc != 0) return pg_stop(c, rc);
  return 0;
}

/* ---- results ---- */

const char *dbp__pg_type_name(uint32_t oid, dbp_type *type, char buf[24]) {
  const char *tname = dbp__pg_type(oid, type);
  if (tname != NULL) return tname;
  snprintf(buf, 24, "oid:%u", (unsigned)oid);
  return buf;
}

int64_t dbp__pg_affected(const PGresult *res, int64_t otherwise) {
  const char *t = PQcmdTuples((PGresult *)res);
  return t[0] ? strtoll(t, NULL, 10) : otherwise;
}

int dbp__pg_row(const PGresult *res, int t, size_t n, const size_t *bytes_cols, size_t nbytes,
                dbp_buf *b, const char **vals, size_t *lens) {
  size_t room = 0;
  for (size_t i = 0; i < n; i++) {
    if (PQgetisnull(res, t, (int)i)) {
      vals[i] = NULL;
      lens[i] = 0;
    } else {
      vals[i] = PQgetvalue(res, t, (int)i);
      lens[i] = (size_t)PQgetlength(res, t, (int)i);
    }
  }
  if (nbytes == 0) return 0;
  for (size_t k = 0; k < nbytes; k++) room += lens[bytes_cols[k]];
  b->len = 0;
  b->oom = false; /* a new row: a failure of the last one no longer counts */
  if (dbp_buf_reserve(b, room) != 0) return DBP_ENOMEM;
  for (size_t k = 0; k < nbytes; k++) {
    size_t i = bytes_cols[k];
    if (vals[i] == NULL) continue;
    char *out = b->data + b->len;
    lens[i] = dbp__pg_bytea_decode(out, vals[i], lens[i]);
    vals[i] = out;
    b->len += lens[i];
  }
  return 0;
}

/* Fills c's column metadata from `res`. */
static int pg_columns(dbp_conn *c, const PGresult *res) {
  pg_conn *p = PG(c);
  int nf = PQnfields(res);
  size_t n = nf > 0 ? (size_t)nf : 0, bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += strlen(PQfname(res, (int)i)) + 1 + 24;
  int rc = dbp__cols_begin(c, n, bytes);
  if (rc == 0 && n > p->bytes_cap) {
    size_t *b = realloc(p->bytes_cols, n * sizeof *b);
    if (b == NULL)
      rc = DBP_ENOMEM;
    else {
      p->bytes_cols = b;
      p->bytes_cap = n;
    }
  }
  if (rc != 0) return dbp__seterr(c, rc, NULL, 0, false, "out of memory");
  p->nbytes = 0;
  for (size_t i = 0; i < n; i++) {
    dbp_column *col = &c->cols[i];
    const char *name = PQfname(res, (int)i);
    Oid oid = PQftype(res, (int)i);
    col->name = dbp__cols_str(c, name, strlen(name));
    col->db_type_id = oid;
    char buf[24];
    const char *tname = dbp__pg_type_name(oid, &col->type, buf);
    col->db_type = dbp__cols_str(c, tname, strlen(tname));
    if (col->type == DBP_T_BYTES) p->bytes_cols[p->nbytes++] = i;
  }
  return 0;
}

/* Decodes the text form of a bytea value, v[0..len): hex ("\\x0aff") or
 * the old escape format, into out (room for len bytes: the result is never
 * longer). Returns the decoded length. */
size_t dbp__pg_bytea_decode(char *out, const char *v, size_t len) {
  static const signed char hex[256] = {
      ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
      ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
      ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
      ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};
  size_t o = 0;
  if (len >= 2 && v[0] == '\\' && v[1] == 'x') {
    for (size_t i = 2; i + 1 < len; i += 2) {
      int h = hex[(unsigned char)v[i]] - 1, l = hex[(unsigned char)v[i + 1]] - 1;
      if (h < 0 || l < 0) break; /* the server never sends this */
      out[o++] = (char)(h << 4 | l);
    }
    return o;
  }
  for (size_t i = 0; i < len;) {
    if (v[i] == '\\' && i + 1 < len && v[i + 1] == '\\') {
      out[o++] = '\\';
      i += 2;
    } else if (v[i] == '\\' && i + 3 < len) {
      out[o++] = (char)((v[i + 1] - '0') << 6 | (v[i + 2] - '0') << 3 | (v[i + 3] - '0'));
      i += 4;
    } else {
      out[o++] = v[i++];
    }
  }
  return o;
}

/* Points the row arrays at the values of single-row result `res`, with
 * its bytea values decoded into p->bytea. Returns 0 or DBP_ENOMEM. */
static int pg_fill_row(dbp_conn *c, PGresult *res, dbp_row *row) {
  pg_conn *p = PG(c);
  if (dbp__pg_row(res, 0, c->ncols, p->bytes_cols, p->nbytes, &p->bytea, c->vals, c->lens) != 0)
    return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  dbp__row_out(c, row);
  return 0;
}

/* ---- the driver's statements ---- */

/* True when `res` says the cached statement just executed is unknown to
 * the server (someone ran DEALLOCATE): it leaves the cache, and the
 * caller runs the statement again unnamed. */
static bool pg_stale(dbp_conn *c, const PGresult *res) {
  pg_conn *p = PG(c);
  if (p->sent == NULL) return false;
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  dbp_dberr e;
  memset(&e, 0, sizeof e);
  snprintf(e.sqlstate, sizeof e.sqlstate, "%s", state ? state : "");
  snprintf(e.message, sizeof e.message, "%s", msg ? msg : "");
  if (!dbp__pg_stmt_stale(&e)) return false;
  dbp__pg_stmt_drop(p, p->sent);
  p->sent = NULL;
  return true;
}

/* After pg_stale: reads the rest of the failed statement. Returns 0 when
 * the caller may send it again unnamed, else an interruption (handled) or
 * DBP_ECONNLOST. */
static int pg_stale_drain(dbp_conn *c) {
  int rc = pg_finish(c);
  if (dbp__interrupted(rc)) return pg_stop(c, rc);
  return rc == DBP_ECONNLOST ? rc : 0;
}

static int pg_exec(dbp_conn *c, const char *sql, size_t n, const dbp_param *params,
                   int64_t *affected) {
  pg_conn *p = PG(c);
  bool cache = true;
again:;
  int rc = pg_send(c, sql, n, params, n == 0, false, cache);
  if (rc != 0) return rc;
  int first = 0;
  for (;;) {
    PGresult *res;
    rc = pg_next(c, &res);
    if (rc != 0) return pg_stop(c, rc);
    if (res == NULL) break;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      *affected = dbp__pg_affected(res, 0);
    } else if (st == PGRES_COPY_OUT || st == PGRES_COPY_IN) {
      PQclear(res);
      if (st == PGRES_COPY_OUT)
        p->in_copy = true;
      else
        PQputCopyEnd(p->pg, "COPY FROM STDIN is not supported here");
      rc = pg_finish(c);
      if (rc != 0 && dbp__interrupted(rc)) return pg_stop(c, rc);
      if (first == 0)
        first = rc == DBP_ECONNLOST ? rc
                                    : dbp__seterr(c, DBP_EINVAL, NULL, 0, false,
                                                  "COPY TO STDOUT needs dbp_copy_start, and COPY "
                                                  "FROM STDIN is not supported");
      break;
    } else if (first == 0 && cache && pg_stale(c, res)) {
      PQclear(res);
      if ((rc = pg_stale_drain(c)) != 0) return rc;
      cache = false;
      goto again;
    } else if (first == 0) {
      first = pg_result_error(c, res);
    }
    PQclear(res);
    if (first == DBP_ECONNLOST) break;
  }
  return first;
}

/* Reads the first result of a query in single-row mode: the first row
 * (kept for fetch; returns 1), the end of an empty result (0), or an
 * error. */
static int pg_query(dbp_conn *c, const char *sql, size_t n, const dbp_param *params) {
  pg_conn *p = PG(c);
  bool cache = true;
again:;
  int rc = pg_send(c, sql, n, params, false, true, cache);
  if (rc != 0) return rc;
  PGresult *res;
  rc = pg_next(c, &res);
  if (rc != 0) return pg_stop(c, rc);
  if (res == NULL) return dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "the server sent no result");
  if (cache && PQresultStatus(res) == PGRES_FATAL_ERROR && pg_stale(c, res)) {
    PQclear(res);
    if ((rc = pg_stale_drain(c)) != 0) return rc;
    cache = false;
    goto again;
  }
  switch (PQresultStatus(res)) {
    case PGRES_SINGLE_TUPLE:
      rc = pg_columns(c, res);
      if (rc != 0) {
        PQclear(res);
        break;
      }
      p->pending = res;
      return 1;
    case PGRES_TUPLES_OK:
      rc = pg_columns(c, res); /* an empty result still has columns */
      PQclear(res);
      break;
    case PGRES_COMMAND_OK:
      if (c->any_result) {
        /* dbp_query_all: a statement without rows is a result without
         * columns. */
        c->no_rows_affected = dbp__pg_affected(res, 0);
        dbp__cols_clear(c);
        PQclear(res);
        rc = 0;
        break;
      }
      /* UPDATE without RETURNING, SET, CREATE ...: the statement ran, but
       * a query promises rows and this has none to give. */
      PQclear(res);
      rc = dbp__seterr(c, DBP_EQUERY, NULL, 0, false,
                       "the statement returned no result set (use dbp_exec for statements "
                       "without rows)");
      break;
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
      if (PQresultStatus(res) == PGRES_COPY_OUT)
        p->in_copy = true;
      else
        PQputCopyEnd(p->pg, "COPY FROM STDIN is not supported here");
      PQclear(res);
      rc = dbp__seterr(c, DBP_EINVAL, NULL, 0, false, "COPY needs dbp_copy_start, not dbp_query");
      break;
    default:
      rc = pg_result_error(c, res);
      PQclear(res);
      break;
  }
  return pg_end(c, rc);
}

static int pg_fetch(dbp_conn *c, dbp_row *row) {
  pg_conn *p = PG(c);
  PGresult *res = p->pending;
  p->pending = NULL;
  if (p->row != NULL) {
    PQclear(p->row);
    p->row = NULL;
  }
  if (res == NULL) {
    int rc = pg_next(c, &res);
    if (rc != 0) return pg_stop(c, rc);
  }
  if (res == NULL) return 0;
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_SINGLE_TUPLE) {
    p->row = res;
    int rc = pg_fill_row(c, res, row);
    return rc == 0 ? 1 : pg_end(c, rc);
  }
  int rc = 0;
  if (st != PGRES_TUPLES_OK) rc = pg_result_error(c, res);
  PQclear(res);
  return pg_end(c, rc);
}

/* Abandons the current result: what libpq already holds is read without
 * waiting; if the statement is still sending, conn.c's clean-up cancels it
 * on the server and drains the rest (pg_abort). */
static int pg_discard(dbp_conn *c) {
  pg_conn *p = PG(c);
  pg_drop_results(p);
  if (PQconsumeInput(p->pg)) {
    for (;;) {
      if (p->in_copy) {
        char *buf = NULL;
        int n = PQgetCopyData(p->pg, &buf, 1);
        if (n > 0) {
          PQfreemem(buf);
          continue;
        }
        if (n == 0) break; /* more is on its way: cancel */
        p->in_copy = false;
      }
      if (PQisBusy(p->pg)) break;
      PGresult *res = PQgetResult(p->pg);
      if (res == NULL) return 0;
      if (PQresultStatus(res) == PGRES_COPY_OUT) p->in_copy = true;
      PQclear(res);
    }
  }
  return DBP__CANCEL;
}

/* Prepares `sql` as the unnamed statement and describes its result. */
static int pg_describe(dbp_conn *c, const char *sql) {
  pg_conn *p = PG(c);
  if (!PQsendPrepare(p->pg, "", sql, 0, NULL)) {
    if (PQstatus(p->pg) == CONNECTION_BAD) return pg_lost(c, NULL);
    return dbp__seterr(c, DBP_EQUERY, NULL, 0, false, "could not send the prepare request");
  }
  int rc = pg_flush(c);
  if (rc != 0) return pg_stop(c, rc);
  rc = pg_finish(c);
  if (rc != 0) return rc;
  if (!PQsendDescribePrepared(p->pg, "")) {
    if (PQstatus(p->pg) == CONNECTION_BAD) return pg_lost(c, NULL);
    return dbp__seterr(c, DBP_EQUERY, NULL, 0, false, "could not send the describe request");
  }
  rc = pg_flush(c);
  if (rc != 0) return pg_stop(c, rc);
  PGresult *res;
  rc = pg_next(c, &res);
  if (rc != 0) return pg_stop(c, rc);
  if (res == NULL) return dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "the server sent no result");
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = pg_result_error(c, res);
  else if (PQnfields(res) == 0)
    /* The server answered NoData: the statement returns no rows (a zero-
     * column SELECT looks the same and has nothing to export either). */
    rc = dbp__seterr(c, DBP_EQUERY, NULL, 0, false,
                     "the statement returned no result set (use dbp_exec for statements "
                     "without rows)");
  else
    rc = pg_columns(c, res);
  PQclear(res);
  return pg_end(c, rc);
}

/* After a COPY that failed with DBP_EQUERY: when the server refused the
 * statement itself (a syntax error, for what cannot stand inside COPY ( ),
 * such as SHOW or EXPLAIN; "feature not supported", for DML without
 * RETURNING) and the session is untouched (no transaction block that the
 * failure aborted), the answer is DBP_ENOCOPY: the caller may run the
 * statement another way. Otherwise the error stays. */
static int pg_copy_refused(dbp_conn *c) {
  const char *st = c->err.sqlstate;
  if (strcmp(st, "42601") != 0 && strcmp(st, "0A000") != 0) return DBP_EQUERY;
  if (c->broken || PQtransactionStatus(PG(c)->pg) != PQTRANS_IDLE) return DBP_EQUERY;
  char msg[sizeof c->err.message];
  snprintf(msg, sizeof msg, "%s", c->err.message);
  char state[sizeof c->err.sqlstate];
  snprintf(state, sizeof state, "%s", st);
  return dbp__seterr(c, DBP_ENOCOPY, state, 0, false, "COPY cannot run this statement: %s", msg);
}

static int pg_copy_start(dbp_conn *c, const char *sql) {
  pg_conn *p = PG(c);
  int rc = pg_send(c, sql, 0, NULL, true, false, false);
  if (rc != 0) return rc;
  PGresult *res;
  rc = pg_next(c, &res);
  if (rc != 0) return pg_stop(c, rc);
  if (res == NULL) return dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "the server sent no result");
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COPY_OUT) {
    PQclear(res);
    p->in_copy = true;
    return 0;
  }
  if (st == PGRES_COPY_IN) {
    PQputCopyEnd(p->pg, "COPY FROM STDIN is not supported here");
    rc = dbp__seterr(c, DBP_EINVAL, NULL, 0, false, "dbp_copy_start needs COPY ... TO STDOUT");
  } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    rc = dbp__seterr(c, DBP_EINVAL, NULL, 0, false,
                     "dbp_copy_start needs COPY ... TO STDOUT, not another statement");
  } else {
    rc = pg_result_error(c, res);
  }
  PQclear(res);
  rc = pg_end(c, rc);
  return rc == DBP_EQUERY ? pg_copy_refused(c) : rc;
}

/* Hands out one row per call: the protocol sends each row of COPY TO as
 * one CopyData message, and PQgetCopyData returns exactly one message. */
static int pg_copy_read(dbp_conn *c, const char **buf, size_t *len) {
  pg_conn *p = PG(c);
  if (p->copy_buf != NULL) {
    PQfreemem(p->copy_buf);
    p->copy_buf = NULL;
  }
  for (;;) {
    char *b = NULL;
    int n = PQgetCopyData(p->pg, &b, 1);
    if (n > 0) {
      p->copy_buf = b;
      *buf = b;
      *len = (size_t)n;
      return 1;
    }
    if (n == 0) {
      int ev = 0;
      int rc = dbp__wait(c, PQsocket(p->pg), DBP_READABLE, DBP_FOREVER, false, &ev);
      if (rc != 0) return pg_stop(c, rc);
      if (!PQconsumeInput(p->pg)) return pg_lost(c, NULL);
      continue;
    }
    /* -1: the COPY is over (the final result tells how); -2: failed. */
    p->in_copy = false;
    int rc = pg_finish(c);
    if (rc != 0 && dbp__interrupted(rc)) return pg_stop(c, rc);
    if (rc == 0 && n == -2) {
      if (PQstatus(p->pg) == CONNECTION_BAD) return pg_lost(c, NULL);
      rc = dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "COPY failed: %s", PQerrorMessage(p->pg));
    }
    return rc;
  }
}

static int pg_cancel(dbp_conn *c) {
  return dbp__pg_send_cancel(c, (int64_t)dbp_now(c->rt) + DBP__CLEANUP_MS);
}

static bool pg_in_transaction(const dbp_conn *c) {
  const pg_conn *p = (const pg_conn *)c;
  if (p->pg == NULL) return false;
  PGTransactionStatusType t = PQtransactionStatus(p->pg);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

static int64_t pg_backend_id(const dbp_conn *c) {
  const pg_conn *p = (const pg_conn *)c;
  return p->pg != NULL ? PQbackendPID(p->pg) : 0;
}

/* DISCARD ALL drops what a session collected: settings (SET, set_config),
 * temporary tables, prepared statements, cursors, advisory locks, LISTENs
 * and cached plans. The driver keeps no named prepared statements of its
 * own (describe uses the unnamed one, which every new prepare replaces),
 * so nothing of ours dangles afterwards. DISCARD ALL cannot run inside a
 * transaction block; dbp_conn_reset rolls back first. */
static int pg_reset(dbp_conn *c) {
  int64_t n = 0;
  /* Whatever the outcome, the statements kept are gone or unknown. */
  dbp__pg_stmt_forget_all(PG(c));
  return pg_exec(c, "DISCARD ALL", 0, NULL, &n);
}

static int pg_socket(const dbp_conn *c) {
  const pg_conn *p = (const pg_conn *)c;
  return p->pg != NULL ? PQsocket(p->pg) : -1;
}

const dbp__driver dbp__pg_driver = {
    .conn_size = sizeof(pg_conn),
    .connect = dbp__pg_connect,
    .close = pg_close,
    .exec = pg_exec,
    .query = pg_query,
    .fetch = pg_fetch,
    .discard = pg_discard,
    .abort = pg_abort,
    .describe = pg_describe,
    .copy_start = pg_copy_start,
    .copy_read = pg_copy_read,
    .cancel = pg_cancel,
    .in_transaction = pg_in_transaction,
    .backend_id = pg_backend_id,
    .reset = pg_reset,
    .socket = pg_socket,
    /* Only while it still runs something: an idle backend has nothing to
     * end, and a pid no longer ours is left alone. */
    .terminate_sql =
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE pid = $1::int AND state <> 'idle'",
    .canceled_sqlstate = "57014",
    .canceled_errno = 0,
    .canceled_how = "canceled on the server",
};
