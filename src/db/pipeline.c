/* Statements from many coroutines on one PostgreSQL connection in libpq's
 * pipeline mode (see pipeline.h for the contract).
 *
 * The queue. Every statement sent is a request at the tail of the pipe's
 * queue; the server answers in the order it received them, so the reply
 * at hand always belongs to the head. A request's reply is a fixed
 * sequence of libpq results:
 *
 *   [Parse]  the prepare's result, then NULL       (stage PREPARE, optional)
 *   Execute  the statement's result, then NULL     (stage QUERY)
 *   Sync     PGRES_PIPELINE_SYNC                   (stage SYNC: done)
 *
 * When a command of the segment fails, the commands after it up to the
 * Sync come back as PGRES_PIPELINE_ABORTED; the Sync still ends the
 * request, so an error never spills into the next one.
 *
 * Sending. Callers only write into libpq's output buffer and wake the
 * reader, which flushes: callers woken in one loop turn send in that turn,
 * and the reader, queued behind them, sends all of it with one write. Only
 * the reader touches the socket, so the connection's one watcher is never
 * waited on twice.
 *
 * Leaving early. The caller's request lives on the heap, not on its stack:
 * a caller that stops waiting clears its waiter and returns, and the
 * reader frees the request when its reply is complete. The pipe then
 * stops taking statements; when every request left is abandoned, the
 * reader asks the server to cancel (nothing a live caller waits for can
 * be running then) and, from then on, drains under the clean-up budget.
 *
 * The connection's driver state (conn.c's) stays idle throughout: the
 * pipe talks to libpq directly and conn.c is not entered until the pipe
 * is closed.
 */
#include "db/pipeline.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg_conn.h"
#include "db/result.h"
#include "util/assert.h"

typedef enum { RQ_PREPARE = 0, RQ_QUERY, RQ_ANSWERED, RQ_SYNC } rq_stage;

typedef struct pipe_req {
  struct pipe_req *next;
  dbp_waiter *w;  /* the caller's, NULL when nobody waits (left, internal) */
  pg_stmt *stmt;  /* the statement it executes (a reference held) */
  rq_stage stage; /* what the next result belongs to */
  bool prepares;  /* it carries the statement's Parse */
  bool rows;      /* read the rows into res */
  bool done;      /* the Sync came: the outcome below is complete */
  bool last;      /* a Sync follows it: it ends its segment */
  bool failed;    /* the server refused it (its own error, in rc) */
  bool aborted;   /* skipped because another statement of its segment failed */
  bool resend;    /* outcome: not run (or rolled back) for another's error */
  size_t max_bytes;
  int rc;
  int64_t affected;
  dbp_result *res;
  dbp_dberr err;
} pipe_req;

struct dbp__pipe {
  dbp_conn *c;
  PGconn *pg;
  pipe_req *head, *tail;
  pipe_req *cur;    /* the request the next result belongs to */
  bool open_seg;    /* statements went out after the last Sync */
  bool seg_failed;  /* a statement of the segment being read failed */
  size_t in_flight; /* requests in the queue */
  size_t live;      /* of those, the ones whose caller still waits */
  bool accepting;
  bool reader_on;   /* the reader coroutine runs */
  bool kicked;      /* the reader's wait was ended on purpose */
  bool want_write;  /* libpq holds bytes the socket did not take */
  bool cancel_sent; /* a cancel request went to the server */
  bool dirty;       /* the session needs a reset before its next use */
  bool dead;        /* the session is lost or given up */
  int dead_rc;      /* why (DBP_ECONNLOST, DBP_ETIMEDOUT, ...) */
  char dead_msg[200];
  int64_t drain_deadline; /* loop ms the left-behind requests have, -1 none */
  dbp__pipe_drained_fn drained;
  void *drained_arg;
  dbp_buf bytea; /* decoded bytea values of the row being copied */
};

bool dbp__pipe_kind_supported(dbp_db_kind kind) {
  return kind == DBP_DB_PG;
}

bool dbp__pipe_supported(const dbp_conn *c) {
  return c != NULL && dbp__pipe_kind_supported(c->kind);
}

bool dbp__pipe_accepting(const dbp__pipe *pp) {
  return pp->accepting && !pp->dead;
}

size_t dbp__pipe_in_flight(const dbp__pipe *pp) {
  return pp->in_flight;
}

dbp_conn *dbp__pipe_conn(const dbp__pipe *pp) {
  return pp->c;
}

int dbp__pipe_open(dbp_conn *c, dbp__pipe_drained_fn drained, void *arg, dbp__pipe **out) {
  *out = NULL;
  if (!dbp__pipe_supported(c)) return DBP_EINVAL;
  PGconn *pg = PG(c)->pg;
  if (pg == NULL || c->broken) return DBP_ECONNLOST;
  if (c->busy || c->state != DBP__IDLE || PQtransactionStatus(pg) != PQTRANS_IDLE)
    return DBP_ESTATE;
  dbp__pipe *pp = calloc(1, sizeof *pp);
  if (pp == NULL) return DBP_ENOMEM;
  if (!PQenterPipelineMode(pg)) {
    free(pp);
    return DBP_ESTATE;
  }
  pp->c = c;
  pp->pg = pg;
  pp->accepting = true;
  pp->drain_deadline = -1;
  pp->drained = drained;
  pp->drained_arg = arg;
  *out = pp;
  return 0;
}

bool dbp__pipe_close(dbp__pipe *pp) {
  DBP_ASSERT(pp->head == NULL && !pp->reader_on);
  bool reset = pp->dirty || pp->dead;
  if (!pp->dead) {
    if (!PQexitPipelineMode(pp->pg) || PQtransactionStatus(pp->pg) != PQTRANS_IDLE) {
      /* Something is still pending in libpq's queue: nobody can vouch for
       * this session any more. */
      pp->c->broken = true;
      reset = true;
    }
  } else {
    pp->c->broken = true;
  }
  dbp_buf_free(&pp->bytea);
  free(pp);
  return reset;
}

/* ---- requests ---- */

/* A request nobody waits for (a DEALLOCATE of ours, or one whose caller
 * left) lives on the heap; a caller's own lives on its stack until it
 * leaves (see dbp__pipe_run). */
static pipe_req *req_new_heap(void) {
  pipe_req *r = calloc(1, sizeof *r);
  return r;
}

static void req_free_heap(pipe_req *r) {
  dbp_result_free(r->res);
  free(r);
}

/* Records an outcome of dbpipe's own making on r (the first one wins). */
static void req_fail(pipe_req *r, int code, bool retryable, const char *msg) {
  if (r->rc != 0) return;
  r->rc = code;
  memset(&r->err, 0, sizeof r->err);
  r->err.code = code;
  r->err.retryable = retryable;
  snprintf(r->err.message, sizeof r->err.message, "%s", msg);
}

/* The head's reply is complete: it leaves the queue, and its caller (if
 * one still waits) is woken to collect it. */
static void req_done(dbp__pipe *pp, pipe_req *r) {
  DBP_ASSERT(pp->head == r);
  pp->head = r->next;
  if (pp->head == NULL) pp->tail = NULL;
  if (pp->cur == r) pp->cur = r->next;
  pp->in_flight--;
  if (r->stmt != NULL) {
    dbp__pg_stmt_unref(r->stmt);
    r->stmt = NULL;
  }
  r->done = true;
  if (r->w != NULL) {
    pp->live--;
    dbp_waiter *w = r->w;
    r->w = NULL;
    dbp_wake(w, 0);
  } else {
    req_free_heap(r);
  }
}

/* The pipe takes nothing more; the first reason it died stands. */
static void pipe_mark_dead(dbp__pipe *pp, int rc, const char *msg) {
  if (!pp->dead) {
    pp->dead = true;
    pp->dead_rc = rc;
    snprintf(pp->dead_msg, sizeof pp->dead_msg, "%s", msg);
  }
  pp->accepting = false;
}

/* The session is gone (or given up): every request still queued fails
 * with rc and msg, and the pipe takes nothing more. */
static void pipe_die(dbp__pipe *pp, int rc, const char *msg) {
  pipe_mark_dead(pp, rc, msg);
  while (pp->head != NULL) {
    pipe_req *r = pp->head;
    req_fail(r, pp->dead_rc, pp->dead_rc == DBP_ECONNLOST, pp->dead_msg);
    req_done(pp, r);
  }
}

/* A lost connection: libpq's own words, prefixed. */
static void pipe_lost(dbp__pipe *pp) {
  char detail[200], msg[240];
  dbp__one_line(detail, sizeof detail, PQerrorMessage(pp->pg));
  snprintf(msg, sizeof msg, "connection to the server lost: %s",
           detail[0] ? detail : "server closed the connection");
  dbp__scrub(msg, pp->c->dsn.password);
  pipe_die(pp, DBP_ECONNLOST, msg);
}

/* ---- replies ---- */

/* Copies a TUPLES_OK result into a dbp_result for r. */
static int pipe_copy_rows(dbp__pipe *pp, pipe_req *r, const PGresult *res) {
  int nf = PQnfields(res), nt = PQntuples(res);
  size_t n = nf > 0 ? (size_t)nf : 0;
  dbp_result *out = dbp__result_new();
  dbp_column small_cols[8];
  const char *small_vals[8];
  size_t small_lens[8], small_bytes[8];
  char small_names[8][24];
  dbp_column *cols = n <= 8 ? small_cols : calloc(n, sizeof *cols);
  const char **vals = n <= 8 ? small_vals : calloc(n, sizeof *vals);
  size_t *lens = n <= 8 ? small_lens : calloc(n, sizeof *lens);
  size_t *bytes_cols = n <= 8 ? small_bytes : calloc(n, sizeof *bytes_cols);
  char(*names)[24] = n <= 8 ? small_names : calloc(n, sizeof *names);
  size_t nbytes = 0;
  int rc = 0;
  if (out == NULL || cols == NULL || vals == NULL || lens == NULL || bytes_cols == NULL ||
      names == NULL) {
    rc = DBP_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    Oid oid = PQftype(res, (int)i);
    cols[i].name = PQfname(res, (int)i);
    cols[i].db_type_id = oid;
    cols[i].db_type = dbp__pg_type_name(oid, &cols[i].type, names[i]);
    if (cols[i].type == DBP_T_BYTES) bytes_cols[nbytes++] = i;
  }
  rc = dbp__result_set_columns(out, n, cols);
  for (int t = 0; rc == 0 && t < nt; t++) {
    rc = dbp__pg_row(res, t, n, bytes_cols, nbytes, &pp->bytea, vals, lens);
    dbp_row row = {.ncols = n, .vals = vals, .lens = lens};
    if (rc == 0) rc = dbp__result_add_row(out, &row, r->max_bytes);
  }
  if (rc == 0) dbp__result_set_affected(out, dbp__pg_affected(res, nt));
done:
  if (n > 8) {
    free(cols);
    free(vals);
    free(lens);
    free(bytes_cols);
    free(names);
  }
  if (rc == 0) {
    r->res = out;
    r->affected = dbp_result_affected(out);
    return 0;
  }
  dbp_result_free(out);
  if (rc == DBP_ETOOBIG) {
    char msg[160];
    snprintf(msg, sizeof msg, "the result holds more than %zu bytes (max_result_bytes)",
             r->max_bytes ? r->max_bytes : DBP__RESULT_MAX_BYTES);
    req_fail(r, DBP_ETOOBIG, false, msg);
  } else {
    req_fail(r, DBP_ENOMEM, false, "out of memory");
  }
  return 0;
}

/* An error result for r: the server's error, or, for a statement whose
 * prepare by an earlier request failed, that prepare's error (the server
 * only says the name is unknown). */
static void pipe_error(dbp__pipe *pp, pipe_req *r, const PGresult *res) {
  if (r->rc != 0) return;
  dbp_dberr e;
  int code = dbp__pg_error_of(pp->pg, res, pp->c->dsn.password, &e);
  if (r->stmt != NULL && r->stmt->failed && !r->prepares && strcmp(e.sqlstate, "26000") == 0) {
    e = r->stmt->err;
    code = e.code;
  }
  r->rc = code;
  r->err = e;
}

/* The Sync of a segment came (its last request is pp->cur): every
 * request of the segment is complete. When one of them failed, its error
 * is its own, and each of the others is sent again (resend), since the
 * segment's implicit transaction rolled back whatever it did. */
static void pipe_end_segment(dbp__pipe *pp) {
  pipe_req *last = pp->cur;
  bool failed = pp->seg_failed;
  pp->seg_failed = false;
  for (;;) {
    pipe_req *r = pp->head;
    bool end = r == last;
    if (failed && !r->failed) {
      r->resend = true;
      r->rc = 0;
      dbp_result_free(r->res);
      r->res = NULL;
      if (r->aborted && r->prepares && r->stmt != NULL) r->stmt->prepared = false;
    }
    req_done(pp, r);
    if (end) break;
  }
}

/* Handles one result of the current request (res may be NULL: the end of
 * a command's results). Returns 0, or DBP_EPROTO when the reply does not
 * fit the request. */
static int pipe_take(dbp__pipe *pp, PGresult *res) {
  pipe_req *r = pp->cur;
  if (r == NULL) {
    if (res != NULL) PQclear(res);
    return DBP_EPROTO;
  }
  if (res == NULL) {
    if (r->stage == RQ_SYNC || r->stage == RQ_ANSWERED) return DBP_EPROTO;
    if (r->stage == RQ_PREPARE) {
      r->stage = RQ_QUERY;
    } else if (r->last) {
      r->stage = RQ_SYNC;
    } else {
      /* Answered; complete when its segment's Sync comes. */
      r->stage = RQ_ANSWERED;
      pp->cur = r->next;
    }
    return 0;
  }
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_PIPELINE_SYNC) {
    PQclear(res);
    PGTransactionStatusType ts = PQtransactionStatus(pp->pg);
    /* libpq says ACTIVE while more replies are queued: only a transaction
     * block (open or failed) counts. */
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_UNKNOWN) {
      /* A statement left a transaction open (none that is let in should):
       * whatever follows runs inside it, so the session must be reset and
       * takes nothing more meanwhile. */
      pp->dirty = true;
      pp->accepting = false;
    }
    if (r->stage != RQ_SYNC) {
      req_fail(r, DBP_EPROTO, false, "the server's reply ended before the statement's result");
      r->failed = true;
    }
    pipe_end_segment(pp);
    return 0;
  }
  if (st == PGRES_PIPELINE_ABORTED) {
    /* Another statement of the segment failed before this one ran. */
    if (!r->failed) r->aborted = true;
    PQclear(res);
    return 0;
  }
  if (r->stage == RQ_PREPARE) {
    if (st != PGRES_COMMAND_OK) {
      pipe_error(pp, r, res);
      r->failed = true;
      pp->seg_failed = true;
      if (r->stmt != NULL) {
        r->stmt->failed = true;
        r->stmt->err = r->err;
        dbp__pg_stmt_drop(PG(pp->c), r->stmt);
      }
    }
    PQclear(res);
    return 0;
  }
  if (r->stage != RQ_QUERY) {
    PQclear(res);
    return DBP_EPROTO;
  }
  switch (st) {
    case PGRES_TUPLES_OK:
      if (r->rc == 0) {
        if (r->rows) {
          pipe_copy_rows(pp, r, res);
        } else {
          r->affected = dbp__pg_affected(res, PQntuples(res));
        }
      }
      break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      if (r->rc == 0) {
        r->affected = dbp__pg_affected(res, 0);
        if (r->rows) {
          r->res = dbp__result_new();
          if (r->res == NULL)
            req_fail(r, DBP_ENOMEM, false, "out of memory");
          else
            dbp__result_set_affected(r->res, r->affected);
        }
      }
      break;
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
    case PGRES_COPY_BOTH:
      /* libpq refuses COPY in pipeline mode before it gets here; should a
       * server start one anyway, the session cannot be trusted. */
      PQclear(res);
      return DBP_EPROTO;
    default:
      pipe_error(pp, r, res);
      r->failed = true;
      pp->seg_failed = true;
      break;
  }
  PQclear(res);
  return 0;
}

/* Reads what arrived, hands out every complete reply and sends what libpq
 * still holds. Never waits. Returns 0, or an error after which the pipe is
 * dead. */
/* Ends the open segment: a Sync after the last request sent. Returns 0,
 * or -1 when libpq could not queue it. */
static int pipe_sync(dbp__pipe *pp) {
  if (!pp->open_seg) return 0;
  if (!PQpipelineSync(pp->pg)) return -1;
  pp->open_seg = false;
  pp->tail->last = true;
  return 0;
}

static int pipe_pump(dbp__pipe *pp, bool consume) {
  if (pipe_sync(pp) != 0) {
    pipe_lost(pp);
    return DBP_ECONNLOST;
  }
  if (consume && !PQconsumeInput(pp->pg)) {
    pipe_lost(pp);
    return DBP_ECONNLOST;
  }
  int f = PQflush(pp->pg);
  if (f < 0) {
    pipe_lost(pp);
    return DBP_ECONNLOST;
  }
  pp->want_write = f == 1;
  while (pp->head != NULL && !PQisBusy(pp->pg)) {
    PGresult *res = PQgetResult(pp->pg);
    if (res == NULL && PQstatus(pp->pg) == CONNECTION_BAD) {
      pipe_lost(pp);
      return DBP_ECONNLOST;
    }
    if (pipe_take(pp, res) != 0) {
      pipe_die(pp, DBP_EPROTO, "unexpected reply from the server in pipeline mode");
      return DBP_EPROTO;
    }
  }
  if (PQstatus(pp->pg) == CONNECTION_BAD) {
    pipe_lost(pp);
    return DBP_ECONNLOST;
  }
  return 0;
}

/* ---- the reader ---- */

static int pipe_reader(void *arg, void **result) {
  (void)result;
  dbp__pipe *pp = arg;
  dbp_conn *c = pp->c;
  bool consume = true; /* read the socket: it may have something */
  for (;;) {
    if (pp->dead) break;
    if (pipe_pump(pp, consume) != 0) break;
    consume = true;
    if (pp->head == NULL) {
      /* Empty. The callers just woken usually send their next statement
       * at once: let them run first, so that a busy pipe is not closed and
       * reopened between two rounds. */
      if (!pp->accepting || dbp_yield(c->rt) != 0 || pp->head == NULL) break;
      continue;
    }
    if (pp->live == 0 && !pp->cancel_sent) {
      /* Only left-behind statements remain: stop the one running. */
      pp->cancel_sent = true;
      pp->dirty = true;
      pp->drain_deadline = (int64_t)dbp_now(c->rt) + DBP__CLEANUP_MS;
      if (dbp__pg_send_cancel(c, pp->drain_deadline) != 0) {
        pipe_die(pp, DBP_ETIMEDOUT, "the server did not take a cancel request in time");
        break;
      }
      continue;
    }
    int events = DBP_READABLE | (pp->want_write ? DBP_WRITABLE : 0);
    int rev = 0;
    pp->kicked = false;
    int rc = dbp__wait_on(c, &c->watch, pp->drain_deadline, PQsocket(pp->pg), events,
                          c->io_timeout_ms, false, &rev);
    /* Woken only to send: nothing to read yet. */
    if (rc == 0 && !(rev & DBP_READABLE)) consume = false;
    if (rc == 0 && rev == 0 && !pp->kicked) {
      char msg[160];
      snprintf(msg, sizeof msg, "no reply from the server for %lld ms (the idle timeout)",
               (long long)c->io_timeout_ms);
      pipe_die(pp, DBP_ETIMEDOUT, msg);
      break;
    }
    if (rc != 0) {
      if (rc == DBP_ETIMEDOUT && pp->drain_deadline >= 0)
        pipe_die(pp, DBP_ETIMEDOUT, "the statements left behind did not end in time");
      else if (rc == DBP_ECANCELED)
        pipe_die(pp, DBP_ECANCELED, "the connection's reader was canceled");
      else
        pipe_die(pp, DBP_ECONNLOST, "connection to the server lost: its socket is gone");
      break;
    }
  }
  if (pp->dead) {
    /* Give the session up: the socket goes, so the server ends whatever it
     * still runs for us when it next writes. */
    dbp__unwatch(c);
    pipe_die(pp, pp->dead_rc, pp->dead_msg);
  }
  pp->reader_on = false;
  pp->drained(pp, pp->drained_arg);
  return 0;
}

/* ---- sending ---- */

/* Hands a failure to the caller's err. */
static int run_fail(dbp_dberr *err, int code, bool retryable, const char *fmt, const char *a) {
  if (err != NULL) {
    memset(err, 0, sizeof *err);
    err->code = code;
    err->retryable = retryable;
    snprintf(err->message, sizeof err->message, fmt, a);
  }
  return code;
}

/* Makes sure the reader runs (and looks at the pipe's state again). */
static int pipe_wake_reader(dbp__pipe *pp) {
  if (pp->reader_on) {
    pp->kicked = true;
    if (pp->c->watch.w != NULL) dbp_fdwatch_kick(pp->c->watch.w);
    return 0;
  }
  dbp_spawn_options so = {.name = "dbpipe-pipeline", .detached = true};
  int rc = dbp_spawn(pp->c->rt, NULL, pipe_reader, pp, &so);
  if (rc == 0) pp->reader_on = true;
  return rc;
}

/* The send of a command failed after others may have gone out: libpq's
 * queue and ours no longer agree, so the session is given up (the reader
 * fails what is queued and hands the pipe back). */
static int run_send_failed(dbp__pipe *pp, dbp_dberr *err) {
  char msg[160];
  dbp__one_line(msg, sizeof msg, PQerrorMessage(pp->pg));
  dbp__scrub(msg, pp->c->dsn.password);
  char why[200];
  snprintf(why, sizeof why, "could not send a statement: %s", msg);
  pipe_mark_dead(pp, DBP_ECONNLOST, why);
  pipe_wake_reader(pp);
  return run_fail(err, DBP_ECONNLOST, true, "could not send the statement: %s", msg);
}

/* Queues a request that was just sent. */
static void pipe_append(dbp__pipe *pp, pipe_req *r) {
  if (pp->tail != NULL)
    pp->tail->next = r;
  else
    pp->head = r;
  pp->tail = r;
  if (pp->cur == NULL) pp->cur = r;
  pp->in_flight++;
}

/* Sends "DEALLOCATE name" for a statement the cache let go of, as a
 * request nobody waits for. Returns 0, or -1 when the send failed. */
static int pipe_deallocate(dbp__pipe *pp, pg_stmt *old) {
  if (!old->prepared) {
    dbp__pg_stmt_unref(old); /* the server never had it */
    return 0;
  }
  pipe_req *r = req_new_heap();
  char sql[64];
  snprintf(sql, sizeof sql, "DEALLOCATE %s", old->name);
  if (r == NULL) {
    /* Without memory the statement stays on the server until the session
     * ends: a leak of one statement, not an error. */
    dbp__pg_stmt_unref(old);
    return 0;
  }
  if (pipe_sync(pp) != 0) {
    free(r);
    dbp__pg_stmt_unref(old);
    return -1;
  }
  if (!PQsendQueryParams(pp->pg, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(pp->pg)) {
    req_free_heap(r);
    dbp__pg_stmt_unref(old);
    return -1;
  }
  r->stmt = old; /* the reference taken for us by dbp__pg_stmt_add */
  r->stage = RQ_QUERY;
  r->last = true;
  pipe_append(pp, r);
  return 0;
}

int dbp__pipe_run(dbp__pipe *pp, const dbp__sql_text *text, size_t n, const dbp_param *params,
                  int64_t timeout_ms, bool read_only, bool rows, size_t max_bytes, dbp_result **out,
                  int64_t *affected, dbp_dberr *err, bool *left_behind) {
  *left_behind = false;
  if (out != NULL) *out = NULL;
  if (!dbp__pipe_accepting(pp)) return DBP_EAGAIN;
  if (timeout_ms == 0)
    return run_fail(err, DBP_ETIMEDOUT, false, "%s",
                    "timed out: a zero timeout does not wait for the server");
  if (n > 65535) return run_fail(err, DBP_EINVAL, false, "%s", "more than 65535 parameters");

  /* libpq reads text parameters as C strings: NUL-terminated copies. */
  char small[512];
  const char *small_vals[16];
  size_t nul_at;
  size_t total = dbp__pg_text_params_size(params, n, &nul_at);
  if (nul_at != 0) {
    if (err != NULL) {
      memset(err, 0, sizeof *err);
      err->code = DBP_EINVAL;
      snprintf(err->sqlstate, sizeof err->sqlstate, "22021");
      snprintf(err->message, sizeof err->message, DBP__PG_NUL_PARAM, nul_at);
    }
    return DBP_EINVAL;
  }
  char *scratch = total <= sizeof small ? small : malloc(total);
  const char **vals = n <= 16 ? small_vals : malloc(n * sizeof *vals);
  int rc = 0;
  if (scratch == NULL || vals == NULL) {
    rc = run_fail(err, DBP_ENOMEM, false, "%s", "out of memory");
    goto out;
  }
  dbp__pg_text_params(params, n, scratch, vals);

  pg_conn *p = PG(pp->c);
  const char *sql = text->s;
  size_t len = text->len;
  int resends = 0; /* times it was sent back */
resend:;
  pg_stmt *st = dbp__pg_stmt_find_hashed(p, sql, len, (int)n, text->hash);
  bool prepares = false;
  if (st != NULL && !st->prepared) {
    /* Seen once on this session but never prepared: prepare it now. */
    prepares = true;
  } else if (st == NULL) {
    pg_stmt *old = NULL;
    st = dbp__pg_stmt_add(p, sql, len, (int)n, &old);
    if (old != NULL && pipe_deallocate(pp, old) != 0) {
      if (st != NULL) dbp__pg_stmt_drop(p, st);
      rc = run_send_failed(pp, err);
      goto out;
    }
    if (st == NULL) {
      rc = run_fail(err, DBP_ENOMEM, false, "%s", "out of memory");
      goto out;
    }
    prepares = true;
  }
  pipe_req rq;
  memset(&rq, 0, sizeof rq);
  pipe_req *r = &rq;
  /* A read-only statement joins the open segment (the reader ends it with
   * a Sync before it flushes); anything else gets a segment of its own.
   * One sent back three times goes alone, where no neighbour can fail it. */
  bool alone = !read_only || resends >= 3;
  if ((alone && pipe_sync(pp) != 0) ||
      (prepares && !PQsendPrepare(pp->pg, st->name, sql, (int)n, NULL)) ||
      !PQsendQueryPrepared(pp->pg, st->name, (int)n, vals, NULL, NULL, 0) ||
      (alone && !PQpipelineSync(pp->pg))) {
    if (prepares) dbp__pg_stmt_drop(p, st);
    rc = run_send_failed(pp, err);
    goto out;
  }
  st->users++;
  st->prepared = true;
  r->stmt = st;
  r->prepares = prepares;
  r->stage = prepares ? RQ_PREPARE : RQ_QUERY;
  r->rows = rows;
  r->max_bytes = max_bytes;
  r->last = alone;
  pp->open_seg = !alone;
  pipe_append(pp, r);
  pp->live++;

  /* The reader sends it: callers woken in one loop turn usually send in
   * that turn too, and the reader, woken behind them, flushes them all
   * with one write. */
  bool first_to_send = !pp->want_write;
  pp->want_write = true;
  dbp_waiter w;
  dbp_waiter_init(&w);
  /* cppcheck-suppress autoVariables */
  r->w = &w;
  rc = first_to_send || !pp->reader_on ? pipe_wake_reader(pp) : 0;
  if (rc == 0) {
    rc = dbp_await(pp->c->rt, &w, timeout_ms);
  } else {
    /* No reader: nothing will answer us. The session is given up (the
     * statement went out), and we wait for nobody. */
    pipe_mark_dead(pp, DBP_ENOMEM, "could not start the connection's reader");
  }
  if (!r->done) {
    /* We stop waiting: the request moves to the heap, where the reader
     * drops its reply when it comes. */
    pipe_req *h = req_new_heap();
    if (h == NULL) {
      /* Nowhere to move it: stay for the reply, whatever it takes (the
       * reader's own limits end it). */
      if (!pp->dead || pp->reader_on) dbp_await_done(pp->c->rt, &w);
    } else {
      *h = rq;
      h->w = NULL;
      pipe_req **link = &pp->head;
      while (*link != NULL && *link != r) link = &(*link)->next;
      if (*link == r) *link = h;
      if (pp->tail == r) pp->tail = h;
      if (pp->cur == r) pp->cur = h;
      pp->live--;
      pp->accepting = false;
      *left_behind = true;
      if (rc == 0) rc = DBP_ECONNLOST;
      if (pp->live == 0 || pp->dead) pipe_wake_reader(pp);
      run_fail(err, rc, rc == DBP_ECONNLOST, "%s",
               rc == DBP_ETIMEDOUT   ? "timed out waiting for the statement's result"
               : rc == DBP_ECANCELED ? "canceled while waiting for the statement's result"
                                     : "the connection's reader could not run");
      goto out;
    }
  }
  /* Done (even when our wait was interrupted in the same turn: the reply
   * is complete, so it is handed out). */
  bool stale = r->rc == DBP_EQUERY && dbp__pg_stmt_stale(&r->err);
  if (r->resend || (stale && resends < 6)) {
    /* A neighbour's error undid it, or the statement it executed by name
     * is not on the server (its Parse was skipped with a failed segment,
     * or someone deallocated it) or no longer fits the tables: it runs
     * again, in a new segment, the stale entry prepared afresh. From the
     * third time it goes alone, where nothing can fail it but itself. */
    if (stale) {
      pg_stmt *old = dbp__pg_stmt_find_hashed(p, sql, len, (int)n, text->hash);
      if (old != NULL) dbp__pg_stmt_drop(p, old);
    }
    dbp_result_free(r->res);
    resends++;
    if (!dbp__pipe_accepting(pp)) {
      rc = DBP_EAGAIN; /* the pool sends it elsewhere */
      goto out;
    }
    goto resend;
  }
  rc = r->rc;
  if (rc == 0) {
    if (out != NULL) {
      *out = r->res;
      r->res = NULL;
    }
    if (affected != NULL) *affected = r->affected;
  } else if (err != NULL) {
    *err = r->err;
    err->code = rc;
  }
  dbp_result_free(r->res);
out:
  if (scratch != small) free(scratch);
  if (vals != small_vals) free(vals);
  return rc;
}
