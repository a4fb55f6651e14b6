/* Internal: the driver kit, everything a driver (pg*.c, mysql*.c) may call
 * besides the runtime and its client library. Not installed.
 *
 * The kit sits below conn.c: recording an error, waiting on the driver's
 * socket under the statement's deadline and the no-progress limit, and the
 * storage of column metadata and row arrays. Nothing here moves the
 * connection's state machine (state, broken, busy...); a driver reports
 * what happened through its return value and the error recorded here, and
 * conn.c decides (see the driver table in driver.h). scripts/check-driver-
 * leaves keeps it so.
 *
 * The messages every driver shares live here too, since drivers need them
 * deep inside a call ("connection to the server lost", "timed out
 * connecting"); the messages about a statement's clean-up are conn.c's, as
 * conn.c runs it. */
#ifndef DBPIPE_DB_DRVKIT_H
#define DBPIPE_DB_DRVKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/driver.h"

/* ---- errors ---- */

/* Records an error on c: code, SQLSTATE (may be NULL), errno, retryable,
 * and a printf message. The message has the password scrubbed. Returns
 * `code`. */
int dbp__seterr(dbp_conn *c, int code, const char *sqlstate, int db_errno, bool retryable,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Records that the session is gone: DBP_ECONNLOST, retryable, "connection
 * to the server lost: <detail>" (a default when detail is NULL or empty).
 * conn.c marks the connection broken when the call returns it. Returns
 * DBP_ECONNLOST. */
int dbp__err_lost(dbp_conn *c, const char *sqlstate, int db_errno, const char *detail);
/* Records that the client library's socket vanished under a wait
 * (DBP_ECONNLOST, as dbp__wait_on reports it). Returns DBP_ECONNLOST. */
int dbp__err_socket_gone(dbp_conn *c);
/* Records a connect that a wait's interruption `why` (DBP_ETIMEDOUT or
 * DBP_ECANCELED) ended: "timed out connecting to <dsn>[: detail]" or
 * "canceled while connecting to <dsn>". Returns why. */
int dbp__err_connect_stopped(dbp_conn *c, int why, const char *detail);
/* Records a failed connect: "could not connect to <dsn>: <detail>". */
int dbp__err_connect(dbp_conn *c, int code, const char *sqlstate, int db_errno, bool retryable,
                     const char *detail);
/* Copies a client library's multi-line message into one line of buf, runs
 * of blanks and line breaks becoming one space. */
void dbp__one_line(char *buf, size_t len, const char *msg);

/* True when err is a wait's "stop now" outcome (timeout or cancel). */
static inline bool dbp__interrupted(int err) {
  return err == DBP_ETIMEDOUT || err == DBP_ECANCELED;
}

/* ---- waiting on the driver's socket ---- */

/* Waits until `fd` is ready for `events` (DBP_READABLE | DBP_WRITABLE)
 * through the watcher slot ws, at most until the absolute loop time
 * `deadline` (-1 none) and timeout_ms (DBP_FOREVER none). The socket is
 * checked by inode when `check` is set (the connect phase, where libraries
 * reopen sockets). Returns 0 with *revents set (0 when timeout_ms, the
 * caller's own limit, passed), DBP_ETIMEDOUT (deadline or the coroutine's
 * deadline), DBP_ECANCELED, or DBP_ECONNLOST / DBP_ENOMEM when the socket
 * cannot be watched. Records nothing in c->err.
 *
 * While a statement call runs (c->in_stmt) and ws is c's own watcher, the
 * wait is also bounded by c's no-progress limit: a socket that shows no
 * readiness for io_timeout_ms ends the wait with DBP_ETIMEDOUT and sets
 * c->io_idle, so that the call's message can say it was the idle timeout.
 * Both drivers wait through here, so both get the limit. */
int dbp__wait_on(dbp_conn *c, dbp__watch *ws, int64_t deadline, int fd, int events,
                 int64_t timeout_ms, bool check, int *revents);
/* dbp__wait_on for c's own socket and statement deadline; records a
 * socket failure in c->err (DBP_ECONNLOST when the socket is gone). */
int dbp__wait(dbp_conn *c, int fd, int events, int64_t timeout_ms, bool check, int *revents);
/* Drops a watcher (before its socket is closed). */
void dbp__watch_close(dbp__watch *ws);
/* Drops c's own watcher. */
void dbp__unwatch(dbp_conn *c);

/* ---- column metadata and row arrays ---- */

/* Starts new column metadata: room for n columns (c->ncols = n, entries
 * zeroed) and `strbytes` bytes of strings for dbp__cols_str, plus n values
 * in the row arrays. Returns 0 or DBP_ENOMEM (then c->ncols = 0). */
int dbp__cols_begin(dbp_conn *c, size_t n, size_t strbytes);
/* Copies s[0..n) into the string storage reserved by dbp__cols_begin and
 * returns the NUL-terminated copy. */
const char *dbp__cols_str(dbp_conn *c, const char *s, size_t n);
/* Forgets the column metadata (keeps the memory). */
void dbp__cols_clear(dbp_conn *c);
/* Frees the column and row storage. */
void dbp__cols_free(dbp_conn *c);
/* Hands out the row held in c's arrays (c->vals, c->lens) as *row. */
void dbp__row_out(dbp_conn *c, dbp_row *row);

#endif /* DBPIPE_DB_DRVKIT_H */
