/* Internal: the connection object shared by the drivers, the driver table
 * and the helpers conn.c gives pg.c and mysql.c. Not installed. */
#ifndef DBPIPE_DB_DRIVER_H
#define DBPIPE_DB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbpipe/db.h"

/* How long the cleanup after a timeout or cancellation (cancel on the
 * server, drain the result) may take before the connection is given up and
 * marked broken. */
#define DBP__CLEANUP_MS 5000
/* How long ending a stray session from a side connection may take after
 * that (connect and one statement; see dbp_conn_s.stray_backend). */
#define DBP__TERMINATE_MS 2000

/* Where a connection is between calls. */
typedef enum dbp__state {
  DBP__IDLE = 0, /* ready for a statement */
  DBP__ROWS,     /* dbp_query succeeded; rows remain to fetch */
  DBP__COPY,     /* dbp_copy_start succeeded; data remains to read */
} dbp__state;

typedef struct dbp__driver dbp__driver;

/* A socket watcher that follows the socket a client library uses: it is
 * recreated whenever the socket changes (by number or, where libraries
 * close and reopen sockets, by inode). */
typedef struct dbp__watch {
  dbp_fdwatch *w;
  int fd;
  ino_t ino;
} dbp__watch;

/* The part of a connection every driver shares. A driver's own connection
 * struct embeds this as its first member. */
struct dbp_conn_s {
  const dbp__driver *drv;
  dbp_rt *rt;
  dbp_db_kind kind;
  dbp_dsn dsn;    /* parsed; keeps the password for side connections */
  char *redacted; /* the DSN with the password replaced */
  char *url;      /* the DSN as given (password included), for side connections */
  char addr[64];  /* the numeric address connected to ("" for a socket) */
  dbp_dberr err;  /* the last error */
  dbp__state state;
  bool broken;     /* unusable: lost, protocol error, cleanup failed */
  bool busy;       /* a call is waiting inside the driver */
  bool closing;    /* dbp_conn_close ran while a cancel still used it */
  int refs;        /* dbp_conn_cancel calls in flight */
  bool cancel_req; /* dbp_conn_cancel asked the server to cancel */
  uint64_t opened_at, used_at;
  int64_t deadline; /* loop ms when the running statement times out; -1 none */
  /* The no-progress limit (dbp_conn_set_io_timeout): ms, or DBP_FOREVER. */
  int64_t io_timeout_ms;
  bool in_stmt; /* a statement call runs: the no-progress limit applies */
  bool io_idle; /* the no-progress limit ended a wait of this call */
  /* Set by a driver that gave up on a session whose statement may still
   * run on the server (its cancel was not confirmed, the socket is closed):
   * the server's id of that session, for the clean-up to end it from a
   * side connection (see terminate_sql). 0 = nothing to do. */
  int64_t stray_backend;

  dbp__watch watch; /* on the driver's socket */

  /* Column metadata of the current result; its strings live in `strs`. */
  size_t ncols, cols_cap;
  dbp_column *cols;
  char *strs;
  size_t strs_used, strs_cap;

  /* Row arrays, reused from row to row. */
  size_t row_cap;
  const char **vals;
  size_t *lens;
};

/* The driver table: one per database kind. Every function runs inside a
 * coroutine unless noted; errors go to c->err through dbp__seterr. */
struct dbp__driver {
  size_t conn_size; /* sizeof the driver's connection struct */
  /* Connects to the numeric address `addr` ("" = the DSN's own host, e.g. a
   * Unix socket). Returns 0 or an error; on error the caller calls close. */
  int (*connect)(dbp_conn *c, const char *addr);
  /* Frees the driver's state without waiting. Safe on a half-open conn. */
  void (*close)(dbp_conn *c);
  int (*exec)(dbp_conn *c, const char *sql, size_t n, const dbp_param *p, int64_t *affected);
  /* Starts a query and reads up to its column metadata (state ROWS). */
  int (*query)(dbp_conn *c, const char *sql, size_t n, const dbp_param *p);
  int (*fetch)(dbp_conn *c, dbp_row *row);
  /* Abandons the current result (ROWS or COPY), leaving the conn idle. */
  int (*discard)(dbp_conn *c);
  int (*describe)(dbp_conn *c, const char *sql);
  /* Runs a complete COPY ... TO STDOUT statement (state COPY). A refusal of
   * the statement itself that leaves the session usable is DBP_ENOCOPY.
   * NULL for a database without COPY. */
  int (*copy_start)(dbp_conn *c, const char *sql);
  /* The next row, exactly one per call, its LF included (1), or the end
   * (0, state IDLE). */
  int (*copy_read)(dbp_conn *c, const char **row, size_t *len);
  /* Asks the server to cancel whatever runs on c (dbp_conn_cancel). */
  int (*cancel)(dbp_conn *c);
  bool (*in_transaction)(const dbp_conn *c);
  int64_t (*backend_id)(const dbp_conn *c);
  /* Returns an idle connection's session to the state it had right after
   * connect (dbp_conn_reset with keep_session false): the driver's own
   * cached statements are forgotten or kept valid, never left dangling. */
  int (*reset)(dbp_conn *c);
  /* The socket the client library uses, or -1. Does not wait. */
  int (*socket)(const dbp_conn *c);
  /* A statement with one parameter, the id of a session (stray_backend),
   * that ends that session on the server from another connection; NULL
   * when the driver has no need of it. */
  const char *terminate_sql;
};

extern const dbp__driver dbp__pg_driver;
extern const dbp__driver dbp__mysql_driver;

/* ---- pg.c ---- */

/* The libpq keywords and values every PostgreSQL connection gets unless
 * its DSN sets them (TCP keepalives and a user timeout). */
#define DBP__PG_TCP_DEFAULTS 5
extern const char *const dbp__pg_tcp_defaults[DBP__PG_TCP_DEFAULTS][2];

/* ---- dsn.c ---- */

/* The value of query parameter `key` (the last one wins), or NULL. */
const char *dbp__dsn_param(const dbp_dsn *d, const char *key);
/* Replaces every occurrence of `secret` (4 bytes or longer) in the
 * NUL-terminated msg with "***". */
void dbp__scrub(char *msg, const char *secret);

/* ---- types.c ---- */

/* The typname of a built-in PostgreSQL type OID and its normalized type;
 * NULL (and DBP_T_OTHER) for types outside the built-in table. */
const char *dbp__pg_type(uint32_t oid, dbp_type *type);

/* ---- copy.c ---- */

/* Checks `opts` (NULL: the defaults) and appends to `out` the COPY ...
 * TO STDOUT statement that streams `query`'s rows that way. Returns 0, or
 * DBP_EINVAL / DBP_ENOMEM recorded in c->err. */
int dbp__copy_sql(dbp_conn *c, const char *query, const dbp_copy_options *opts, dbp_buf *out);

/* ---- conn.c ---- */

/* dbp_copy_start with a complete COPY ... TO STDOUT statement of the
 * caller's own (tests compare the export with COPY's bytes through it). */
int dbp__copy_start_sql(dbp_conn *c, const char *copy_sql, int64_t timeout_ms);

/* Records an error on c: code, SQLSTATE (may be NULL), errno, retryable,
 * and a printf message. The message has the password scrubbed. Returns
 * `code`. */
int dbp__seterr(dbp_conn *c, int code, const char *sqlstate, int db_errno, bool retryable,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Marks c broken after an error already recorded with dbp__seterr. */
void dbp__set_broken(dbp_conn *c);

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
 * socket failure in c->err. */
int dbp__wait(dbp_conn *c, int fd, int events, int64_t timeout_ms, bool check, int *revents);
/* The socket of c's client library, or -1 (the driver's `socket`). */
int dbp__conn_socket(const dbp_conn *c);
/* Drops a watcher (before its socket is closed). */
void dbp__watch_close(dbp__watch *ws);
/* Drops c's own watcher. */
void dbp__unwatch(dbp_conn *c);

/* Runs fn(c) in a fresh coroutine and waits for it to finish, ignoring
 * the caller's timeouts, deadline and cancellation (a cancellation arriving
 * meanwhile stays pending for the caller's next wait). While fn runs,
 * c->deadline is a budget of DBP__CLEANUP_MS. This is how a driver cleans
 * up after an interrupted statement (cancel on the server, drain): the
 * caller's deadline has passed or its cancellation was delivered, yet the
 * connection must be left idle or broken before the call returns. Returns
 * fn's result, or DBP_ENOMEM when no coroutine could be made. */
int dbp__cleanup(dbp_conn *c, int (*fn)(dbp_conn *c));

/* Ends a result that dbp_query_close abandons: runs fn (cancel or drain)
 * through dbp__cleanup and leaves c idle. Returns 0, or the error recorded
 * in c->err when the result could not be abandoned (fn closed the
 * connection then). */
int dbp__abandon(dbp_conn *c, int (*fn)(dbp_conn *c));

/* Starts new column metadata: room for n columns (c->ncols = n, entries
 * zeroed) and `strbytes` bytes of strings for dbp__cols_str, plus n values
 * in the row arrays. Returns 0 or DBP_ENOMEM (then c->ncols = 0). */
int dbp__cols_begin(dbp_conn *c, size_t n, size_t strbytes);
/* Copies s[0..n) into the string storage reserved by dbp__cols_begin and
 * returns the NUL-terminated copy. */
const char *dbp__cols_str(dbp_conn *c, const char *s, size_t n);
/* Forgets the column metadata (keeps the memory). */
void dbp__cols_clear(dbp_conn *c);

/* True when err is a wait's "stop now" outcome (timeout or cancel). */
static inline bool dbp__interrupted(int err) {
  return err == DBP_ETIMEDOUT || err == DBP_ECANCELED;
}

#endif /* DBPIPE_DB_DRIVER_H */
