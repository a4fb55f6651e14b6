/* The connection front: one API over the drivers (pg.c, mysql.c).
 *
 * This file owns what every driver shares above the driver kit (drvkit.h):
 * opening (DSN parsing, name resolution off the loop, trying each address),
 * the state machine (idle / rows / COPY, busy, broken) with the checks
 * before a call, deadlines, and the clean-up after an interrupted or
 * abandoned statement, which runs the driver's abort in a coroutine of its
 * own and words its outcome. The drivers never call back into this file:
 * an entry reports what happened and this file moves the state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "db/driver.h"
#include "db/drvkit.h"

/* ---- the clean-up after an interrupted or abandoned statement ---- */

typedef struct cleanup_job {
  dbp_conn *c;
  bool cancel;
  int rc;
  dbp_waiter done;
} cleanup_job;

/* A session the driver gave up on may still be running its statement: a
 * server blocked writing to a peer that stopped reading (a stalled proxy or
 * network) does not act on a cancel request, and closing our socket does
 * not reach it while the path is stalled. Ends session `id` from a side
 * connection of its own, within a budget of its own; best effort (a server
 * that cannot be reached at all cannot be told), and never waits on c. */
static void end_stray_session(dbp_conn *c, int64_t id) {
  if (id <= 0 || c->drv->terminate_sql == NULL || c->url == NULL) return;
  dbp_conn *side = NULL;
  uint64_t until = dbp_now(c->rt) + DBP__TERMINATE_MS;
  if (dbp_conn_open(c->rt, c->url, DBP__TERMINATE_MS, &side, NULL) != 0) return;
  char buf[24];
  dbp_param p = {buf, (size_t)snprintf(buf, sizeof buf, "%lld", (long long)id)};
  uint64_t now = dbp_now(c->rt);
  if (now < until) dbp_exec(side, c->drv->terminate_sql, 1, &p, (int64_t)(until - now), NULL);
  dbp_conn_close(side);
}

/* The body of the clean-up coroutine: runs the driver's abort, ends a
 * stray session, and wakes its caller. */
static int cleanup_main(void *arg, void **result) {
  (void)result;
  cleanup_job *job = arg;
  int64_t stray = 0;
  job->rc = job->c->drv->abort(job->c, job->cancel, &stray);
  if (job->rc != 0 && stray != 0) end_stray_session(job->c, stray);
  dbp_wake(&job->done, 0);
  return 0;
}

/* Runs the driver's abort in a fresh coroutine and waits for it to finish,
 * ignoring the caller's timeouts, deadline and cancellation (a cancellation
 * arriving meanwhile stays pending for the caller's next wait): the
 * caller's deadline has passed or its cancellation was delivered, yet the
 * connection must be left idle or broken before the call returns. While
 * the abort runs, c->deadline is a budget of DBP__CLEANUP_MS. Returns 0
 * (idle again) or an error, and then c is broken. */
static int cleanup(dbp_conn *c, bool cancel) {
  cleanup_job job = {.c = c, .cancel = cancel, .rc = 0};
  dbp_waiter_init(&job.done);
  int64_t saved = c->deadline;
  c->deadline = (int64_t)dbp_now(c->rt) + DBP__CLEANUP_MS;
  dbp_spawn_options opts = {
      .name = "dbpipe-db-cleanup", .stack_size = 256 * 1024, .detached = true};
  int rc = dbp_spawn(c->rt, NULL, cleanup_main, &job, &opts);
  if (rc == 0) {
    /* The job lives on this stack: wait for it whatever happens. */
    dbp_await_done(c->rt, &job.done);
    rc = job.rc;
  }
  c->deadline = saved;
  c->state = DBP__IDLE;
  if (rc != 0) c->broken = true;
  return rc;
}

/* A statement whose wait ended with `why` (DBP_ETIMEDOUT or DBP_ECANCELED)
 * in the middle: cancels it on the server and drains the connection back
 * to idle, or gives the connection up. Records which, and returns why. */
static int stmt_interrupted(dbp_conn *c, int why) {
  const char *what = why == DBP_ETIMEDOUT ? "timed out" : "canceled";
  if (cleanup(c, true) != 0) {
    char prev[200];
    snprintf(prev, sizeof prev, "%.199s", c->err.message);
    return dbp__seterr(c, why, NULL, 0, true,
                       "statement %s; the connection could not be recovered and is closed (%s)",
                       what, prev);
  }
  return dbp__seterr(c, why, c->drv->canceled_sqlstate, c->drv->canceled_errno, false,
                     "statement %s and %s", what, c->drv->canceled_how);
}

/* Settles the outcome of a driver entry that returned rc (see the driver
 * table): runs the clean-up after an interruption, marks c broken when the
 * session is gone, tells a statement the server canceled at our request
 * (DBP_ECANCELED) from any other statement error, and moves c to `open`
 * when a result stays open (rc > 0), else to idle. Returns the code for
 * the caller. */
static int settle(dbp_conn *c, int rc, dbp__state open) {
  if (dbp__interrupted(rc)) return stmt_interrupted(c, rc);
  c->state = rc > 0 ? open : DBP__IDLE;
  if (rc >= 0) return rc;
  if (rc == DBP_ECONNLOST || c->drv->socket(c) < 0) {
    c->broken = true;
    c->state = DBP__IDLE;
  } else if (rc == DBP_EQUERY && c->cancel_req && c->err.code == DBP_EQUERY) {
    const dbp__driver *d = c->drv;
    bool ours = d->canceled_errno != 0 ? c->err.db_errno == d->canceled_errno
                                       : strcmp(c->err.sqlstate, d->canceled_sqlstate) == 0;
    if (ours) rc = c->err.code = DBP_ECANCELED;
  }
  return rc;
}

/* ---- opening ---- */

/* Resolves c's host into a list of numeric addresses (without blocking the
 * loop) and tries each until one connects. Returns 0 or an error recorded in
 * c->err. */
static int conn_connect(dbp_conn *c) {
  const char *host = c->dsn.host;
  if (host == NULL || host[0] == '/' || host[0] == '@') {
    /* The library's default or a Unix socket: nothing to resolve. */
    c->addr[0] = '\0';
    return c->drv->connect(c, "");
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  uint64_t token = 0;
  bool pushed = false;
  if (c->deadline >= 0) {
    int64_t rem = c->deadline - (int64_t)dbp_now(c->rt);
    if (rem <= 0) rem = 0;
    pushed = dbp_deadline_push(c->rt, rem, &token) == 0;
  }
  int rc = dbp_getaddrinfo(c->rt, host, NULL, &hints, &res);
  if (pushed) dbp_deadline_pop(c->rt, token);
  if (rc == DBP_ETIMEDOUT)
    return dbp__seterr(c, rc, NULL, 0, true, "timed out resolving host '%s' (%s)", host,
                       c->redacted);
  if (rc == DBP_ECANCELED)
    return dbp__seterr(c, rc, NULL, 0, false, "canceled while resolving host '%s'", host);
  if (rc != 0 || res == NULL) {
    if (res != NULL) dbp_freeaddrinfo(res);
    return dbp__seterr(c, DBP_ERESOLVE, NULL, 0, false, "could not resolve host '%s' (%s): %s",
                       host, c->redacted, dbp_strerror(rc));
  }
  rc = DBP_ECONNECT;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    const void *a;
    if (ai->ai_family == AF_INET)
      a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
    else if (ai->ai_family == AF_INET6)
      a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    else
      continue;
    if (inet_ntop(ai->ai_family, a, buf, sizeof buf) == NULL) continue;
    /* getaddrinfo repeats an address once per protocol; try each once. */
    bool seen = false;
    for (struct addrinfo *p = res; p != ai && !seen; p = p->ai_next)
      seen = p->ai_family == ai->ai_family && p->ai_addrlen == ai->ai_addrlen &&
             memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
    if (seen) continue;
    snprintf(c->addr, sizeof c->addr, "%s", buf);
    rc = c->drv->connect(c, c->addr);
    if (rc == 0 || rc != DBP_ECONNECT) break;
    /* Refused or unreachable: the next address may work. */
    dbp__unwatch(c);
    c->drv->close(c);
  }
  dbp_freeaddrinfo(res);
  return rc;
}

/* The connect limit: the caller's, else the DSN's connect_timeout seconds,
 * else none. Returns ms or -1. */
static int64_t connect_limit(const dbp_conn *c, int64_t timeout_ms) {
  if (timeout_ms >= 0) return timeout_ms;
  const char *ct = dbp__dsn_param(&c->dsn, "connect_timeout");
  if (ct != NULL) {
    char *end;
    long v = strtol(ct, &end, 10);
    if (*end == '\0' && v > 0) return (int64_t)v * 1000;
  }
  return -1;
}

int dbp_conn_open(dbp_rt *rt, const char *dsn, int64_t timeout_ms, dbp_conn **out, dbp_dberr *err) {
  if (err != NULL) memset(err, 0, sizeof *err);
  if (out != NULL) *out = NULL;
  if (rt == NULL || dsn == NULL || out == NULL) {
    if (err != NULL) {
      err->code = DBP_EINVAL;
      snprintf(err->message, sizeof err->message, "dbp_conn_open: missing argument");
    }
    return DBP_EINVAL;
  }
  if (dbp_current(rt) == NULL) {
    if (err != NULL) {
      err->code = DBP_ENOTCORO;
      snprintf(err->message, sizeof err->message, "dbp_conn_open must run in a coroutine");
    }
    return DBP_ENOTCORO;
  }
  dbp_dsn parsed;
  char msg[256];
  int rc = dbp_dsn_parse(dsn, &parsed, msg, sizeof msg);
  if (rc != 0) {
    if (err != NULL) {
      err->code = rc;
      snprintf(err->message, sizeof err->message, "%s", msg);
    }
    return rc;
  }
  const dbp__driver *drv = parsed.kind == DBP_DB_PG ? &dbp__pg_driver : &dbp__mysql_driver;
  dbp_conn *c = calloc(1, drv->conn_size);
  if (c == NULL) {
    dbp_dsn_free(&parsed);
    rc = DBP_ENOMEM;
    if (err != NULL) {
      err->code = rc;
      snprintf(err->message, sizeof err->message, "out of memory");
    }
    return rc;
  }
  c->drv = drv;
  c->rt = rt;
  c->kind = parsed.kind;
  c->dsn = parsed;
  c->watch.fd = -1;
  c->deadline = -1;
  c->io_timeout_ms = DBP_DEFAULT_IO_TIMEOUT_MS;
  size_t rlen = strlen(dsn) + 16;
  c->redacted = malloc(rlen);
  if (c->redacted == NULL) {
    rc = dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
    goto err;
  }
  dbp_dsn_redact(dsn, c->redacted, rlen);
  c->url = strdup(dsn);
  if (c->url == NULL) {
    rc = dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
    goto err;
  }
  c->opened_at = c->used_at = dbp_now(rt);
  int64_t limit = connect_limit(c, timeout_ms);
  c->deadline = limit >= 0 ? (int64_t)dbp_now(rt) + limit : -1;
  c->busy = true;
  rc = conn_connect(c);
  c->busy = false;
  c->deadline = -1;
  if (rc != 0) goto err;
  c->opened_at = c->used_at = dbp_now(rt);
  *out = c;
  return 0;
err:
  if (err != NULL) *err = c->err;
  dbp_conn_close(c);
  return rc;
}

/* Frees c now: the driver's state, the watcher, the arrays. */
static void conn_free(dbp_conn *c) {
  dbp__unwatch(c);
  c->drv->close(c);
  dbp_dsn_free(&c->dsn);
  free(c->redacted);
  if (c->url != NULL) {
    explicit_bzero(c->url, strlen(c->url)); /* it holds the password */
    free(c->url);
  }
  dbp__cols_free(c);
  free(c);
}

void dbp_conn_close(dbp_conn *c) {
  if (c == NULL) return;
  if (c->refs > 0) {
    /* A dbp_conn_cancel still uses the driver's cancel state; it frees c
     * when it finishes. */
    c->closing = true;
    return;
  }
  conn_free(c);
}

/* ---- accessors ---- */

dbp_db_kind dbp_conn_kind(const dbp_conn *c) {
  return c->kind;
}

dbp_rt *dbp_conn_rt(const dbp_conn *c) {
  return c->rt;
}
bool dbp_conn_is_broken(const dbp_conn *c) {
  return c == NULL || c->broken;
}
bool dbp_conn_in_transaction(const dbp_conn *c) {
  return c != NULL && !c->broken && c->drv->in_transaction(c);
}
int64_t dbp_conn_backend_id(const dbp_conn *c) {
  return c->drv->backend_id(c);
}
const char *dbp_conn_dsn(const dbp_conn *c) {
  return c->redacted;
}
const dbp_dberr *dbp_conn_error(const dbp_conn *c) {
  return &c->err;
}
uint64_t dbp_conn_opened_at(const dbp_conn *c) {
  return c->opened_at;
}
uint64_t dbp_conn_used_at(const dbp_conn *c) {
  return c->used_at;
}

/* ---- session upkeep: the idle limit, liveness, ping, reset ---- */

static int conn_ready(dbp_conn *c, dbp__state want);
static void call_begin(dbp_conn *c, int64_t timeout_ms);
static int call_end(dbp_conn *c, int rc);

void dbp_conn_set_io_timeout(dbp_conn *c, int64_t ms) {
  if (c == NULL) return;
  if (ms == 0) ms = DBP_DEFAULT_IO_TIMEOUT_MS;
  c->io_timeout_ms = ms < 0 ? DBP_FOREVER : ms;
}

int dbp__conn_socket(const dbp_conn *c) {
  return c->drv->socket(c);
}

/* The peek: an idle session has nothing to say, so a socket with nothing
 * to read is alive (EAGAIN). End of file, an error (a reset, say) or bytes
 * nobody asked for (PostgreSQL's FATAL "terminating connection due to
 * administrator command" and MariaDB's error packet on a KILL both arrive
 * unasked) mean the server is gone or going: the connection is marked
 * broken. recv with MSG_PEEK consumes nothing, so a live connection is
 * untouched for the client library. A PostgreSQL session that LISTENs and
 * was notified while idle has unasked bytes too and is judged the same way:
 * the peek cannot tell them apart, and a pooled session that outlives its
 * LISTEN (keep_session) is the rare case that pays with a reconnect. */
bool dbp_conn_alive(dbp_conn *c) {
  if (c == NULL || c->broken) return false;
  if (c->busy || c->state != DBP__IDLE) return true; /* in use: not ours to judge */
  int fd = dbp__conn_socket(c);
  const char *why = NULL;
  if (fd < 0) {
    why = "the connection has no socket";
  } else {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n == 0)
      why = "the server closed the connection";
    else if (n > 0)
      why =
          "the server sent a message while the connection was idle (it is likely shutting "
          "down or terminated the session)";
    else
      why = strerror(errno);
  }
  dbp__seterr(c, DBP_ECONNLOST, NULL, 0, true, "connection to the server lost while idle: %s", why);
  c->broken = true;
  return false;
}

/* A ping is the cheapest statement both dialects run the same way; it
 * goes through the driver's exec, so it has the statement path's
 * timeout, cancel and broken-connection handling. */
int dbp_conn_ping(dbp_conn *c, int64_t timeout_ms) {
  if (c == NULL) return DBP_EINVAL;
  if (!dbp_conn_alive(c)) return conn_ready(c, DBP__IDLE); /* says why */
  return dbp_exec(c, "SELECT 1", 0, NULL, timeout_ms, NULL);
}

/* Marks c broken after a failed reset, keeping the failure's message. */
static int reset_failed(dbp_conn *c, int rc, const char *step) {
  if (!c->broken) {
    char prev[sizeof c->err.message];
    snprintf(prev, sizeof prev, "%s", c->err.message);
    dbp__seterr(c, rc, c->err.sqlstate, c->err.db_errno, c->err.retryable, "%s failed: %s", step,
                prev);
  }
  c->broken = true;
  return rc;
}

int dbp_conn_reset(dbp_conn *c, bool keep_session, int64_t timeout_ms) {
  if (c == NULL) return DBP_EINVAL;
  int rc = conn_ready(c, DBP__IDLE);
  if (rc != 0) {
    /* Not idle or in use elsewhere: nobody can vouch for its session. */
    if (rc != DBP_ENOTCORO && rc != DBP_EBUSY) c->broken = true;
    return rc;
  }
  if (c->drv->in_transaction(c)) {
    rc = dbp_exec(c, "ROLLBACK", 0, NULL, timeout_ms, NULL);
    if (rc == 0 && c->drv->in_transaction(c))
      rc = dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "still in a transaction after ROLLBACK");
    if (rc != 0) return reset_failed(c, rc, "rolling back the open transaction");
  }
  if (keep_session) return 0;
  call_begin(c, timeout_ms);
  rc = c->drv->reset(c);
  if (dbp__interrupted(rc)) {
    /* A session whose reset stopped half way is nobody's to vouch for: it
     * is given up rather than recovered. */
    c->broken = true;
    c->state = DBP__IDLE;
    rc = dbp__seterr(c, rc, NULL, 0, true, "session reset %s; the connection is closed",
                     rc == DBP_ETIMEDOUT ? "timed out" : "canceled");
  } else {
    rc = settle(c, rc, DBP__IDLE);
  }
  rc = call_end(c, rc);
  if (rc != 0) return reset_failed(c, rc, "resetting the session");
  return 0;
}

size_t dbp_ncols(const dbp_conn *c) {
  return c->ncols;
}
const dbp_column *dbp_columns(const dbp_conn *c) {
  return c->ncols > 0 ? c->cols : NULL;
}

/* ---- statements ---- */

/* Checks that c can start a call now: in a coroutine of its runtime, not
 * broken, not used by another coroutine, and in `want` state. Returns 0 or
 * the error (recorded in c->err). */
static int conn_ready(dbp_conn *c, dbp__state want) {
  if (dbp_current(c->rt) == NULL)
    return dbp__seterr(c, DBP_ENOTCORO, NULL, 0, false, "must be called from a coroutine");
  if (c->broken) {
    /* Keep the original cause in the message; it says why. */
    char prev[sizeof c->err.message];
    snprintf(prev, sizeof prev, "%s", c->err.message);
    return dbp__seterr(c, DBP_ECONNLOST, c->err.sqlstate, c->err.db_errno, true,
                       "the connection is broken (%s)", prev);
  }
  if (c->busy)
    return dbp__seterr(c, DBP_EBUSY, NULL, 0, false,
                       "the connection is in use by another coroutine");
  if (c->state != want) {
    if (c->state == DBP__ROWS)
      return dbp__seterr(c, DBP_ESTATE, NULL, 0, false,
                         "a result is still open: fetch it to the end or call dbp_query_close");
    if (c->state == DBP__COPY)
      return dbp__seterr(c, DBP_ESTATE, NULL, 0, false,
                         "a COPY is still open: read it to the end or call dbp_query_close");
    return dbp__seterr(c, DBP_ESTATE, NULL, 0, false, "no result is open");
  }
  return 0;
}

/* Marks the start of a call that continues a statement (fetch, copy
 * read, abandoning a result): busy, the no-progress limit armed. */
static void call_resume(dbp_conn *c) {
  c->busy = true;
  c->in_stmt = true;
  c->io_idle = false;
}

/* Marks the start of a statement: busy, the statement's deadline. */
static void call_begin(dbp_conn *c, int64_t timeout_ms) {
  call_resume(c);
  c->cancel_req = false;
  c->deadline = timeout_ms >= 0 ? (int64_t)dbp_now(c->rt) + timeout_ms : -1;
}

/* Marks the end of a call with outcome rc (settled). A timeout that the
 * no-progress limit caused says so in its message: the caller's own
 * timeout was not what ran out, the server fell silent. */
static int call_end(dbp_conn *c, int rc) {
  c->busy = false;
  c->in_stmt = false;
  c->used_at = dbp_now(c->rt);
  if (c->state == DBP__IDLE) c->deadline = -1;
  if (rc == DBP_ETIMEDOUT && c->io_idle && c->err.code == DBP_ETIMEDOUT) {
    char prev[sizeof c->err.message];
    snprintf(prev, sizeof prev, "%s", c->err.message);
    dbp__seterr(c, rc, c->err.sqlstate, c->err.db_errno, c->err.retryable,
                "no data from the server for %g s (idle timeout); %s",
                (double)c->io_timeout_ms / 1000.0, prev);
  }
  c->io_idle = false;
  return rc;
}

/* Marks the end of a call that handed out a row or a chunk: the statement
 * goes on, with its deadline. */
static int call_pause(dbp_conn *c, dbp__state open) {
  c->state = open;
  c->busy = false;
  c->in_stmt = false;
  return 1;
}

int dbp_exec(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
             int64_t timeout_ms, int64_t *affected) {
  if (affected != NULL) *affected = 0;
  if (c == NULL || sql == NULL || (nparams > 0 && params == NULL)) return DBP_EINVAL;
  int rc = conn_ready(c, DBP__IDLE);
  if (rc != 0) return rc;
  call_begin(c, timeout_ms);
  dbp__cols_clear(c);
  int64_t n = 0;
  rc = call_end(c, settle(c, c->drv->exec(c, sql, nparams, params, &n), DBP__IDLE));
  if (rc == 0 && affected != NULL) *affected = n;
  return rc;
}

int dbp_query(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
              int64_t timeout_ms) {
  if (c == NULL || sql == NULL || (nparams > 0 && params == NULL)) return DBP_EINVAL;
  int rc = conn_ready(c, DBP__IDLE);
  if (rc != 0) return rc;
  call_begin(c, timeout_ms);
  dbp__cols_clear(c);
  rc = call_end(c, settle(c, c->drv->query(c, sql, nparams, params), DBP__ROWS));
  return rc > 0 ? 0 : rc;
}

int dbp_fetch(dbp_conn *c, dbp_row *row) {
  if (c == NULL || row == NULL) return DBP_EINVAL;
  row->ncols = 0;
  row->vals = NULL;
  row->lens = NULL;
  if (c->state == DBP__IDLE && !c->busy && !c->broken && dbp_current(c->rt) != NULL)
    return 0; /* the result already ended (or there was none) */
  int rc = conn_ready(c, DBP__ROWS);
  if (rc != 0) return rc;
  call_resume(c);
  rc = c->drv->fetch(c, row);
  if (rc > 0) return call_pause(c, DBP__ROWS);
  return call_end(c, settle(c, rc, DBP__ROWS));
}

int dbp_query_close(dbp_conn *c) {
  if (c == NULL) return DBP_EINVAL;
  if (c->state == DBP__IDLE || c->broken) return 0;
  if (dbp_current(c->rt) == NULL)
    return dbp__seterr(c, DBP_ENOTCORO, NULL, 0, false, "must be called from a coroutine");
  if (c->busy)
    return dbp__seterr(c, DBP_EBUSY, NULL, 0, false,
                       "the connection is in use by another coroutine");
  call_resume(c);
  int rc = c->drv->discard(c);
  if (rc == DBP__DRAIN || rc == DBP__CANCEL) {
    rc = cleanup(c, rc == DBP__CANCEL);
    if (rc != 0)
      rc = dbp__seterr(c, rc, NULL, 0, true,
                       "could not abandon the result; the connection is closed");
  } else {
    rc = settle(c, rc, DBP__IDLE);
  }
  return call_end(c, rc);
}

int dbp_describe(dbp_conn *c, const char *sql, int64_t timeout_ms) {
  if (c == NULL || sql == NULL) return DBP_EINVAL;
  int rc = conn_ready(c, DBP__IDLE);
  if (rc != 0) return rc;
  call_begin(c, timeout_ms);
  dbp__cols_clear(c);
  rc = c->drv->describe(c, sql);
  return call_end(c, settle(c, rc, DBP__IDLE));
}

int dbp__copy_start_sql(dbp_conn *c, const char *copy_sql, int64_t timeout_ms) {
  if (c == NULL || copy_sql == NULL) return DBP_EINVAL;
  int rc = conn_ready(c, DBP__IDLE);
  if (rc != 0) return rc;
  if (c->drv->copy_start == NULL)
    return dbp__seterr(c, DBP_ENOCOPY, NULL, 0, false,
                       "this database has no COPY: read the rows with dbp_query");
  call_begin(c, timeout_ms);
  dbp__cols_clear(c);
  rc = c->drv->copy_start(c, copy_sql);
  rc = call_end(c, settle(c, rc == 0 ? 1 : rc, DBP__COPY));
  return rc > 0 ? 0 : rc;
}

int dbp_copy_start(dbp_conn *c, const char *query, const dbp_copy_options *opts,
                   int64_t timeout_ms) {
  if (c == NULL || query == NULL) return DBP_EINVAL;
  if (!dbp_conn_can_copy(c))
    return dbp__seterr(c, DBP_ENOCOPY, NULL, 0, false,
                       "this database has no COPY: read the rows with dbp_query");
  dbp_buf sql = {0};
  int rc = dbp__copy_sql(c, query, opts, &sql);
  if (rc == 0) rc = dbp__copy_start_sql(c, sql.data, timeout_ms);
  dbp_buf_free(&sql);
  return rc;
}

int dbp_copy_read(dbp_conn *c, const char **row, size_t *len) {
  if (c == NULL || row == NULL || len == NULL) return DBP_EINVAL;
  *row = NULL;
  *len = 0;
  if (c->state == DBP__IDLE && !c->busy && !c->broken && dbp_current(c->rt) != NULL) return 0;
  int rc = conn_ready(c, DBP__COPY);
  if (rc != 0) return rc;
  call_resume(c);
  rc = c->drv->copy_read(c, row, len);
  if (rc > 0) return call_pause(c, DBP__COPY);
  return call_end(c, settle(c, rc, DBP__COPY));
}

int dbp_conn_cancel(dbp_conn *c) {
  if (c == NULL) return DBP_EINVAL;
  if (dbp_current(c->rt) == NULL) return DBP_ENOTCORO;
  if (c->broken || c->closing) return 0;
  c->refs++;
  c->cancel_req = true;
  int rc = c->drv->cancel(c);
  c->refs--;
  if (c->closing && c->refs == 0) conn_free(c);
  return rc;
}
