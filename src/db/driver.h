/* Internal: the connection object shared by the drivers and the driver
 * table conn.c drives them through. Not installed. What a driver may call
 * is in drvkit.h; it never calls into conn.c. */
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
 * that (connect and one statement; see the driver table's abort). */
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
  dbp_dberr err;  /* the last error (written through the kit, drvkit.h) */

  /* The state machine: written by conn.c alone. */
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
  /* The no-progress limit ended a wait of this call: set by the kit's
   * wait, cleared by conn.c. */
  bool io_idle;

  /* Drivers read the above, use the kit on what follows. */
  dbp__watch watch; /* on the driver's socket */

  /* Column metadata of the current result; its strings live in `strs`. */
  size_t ncols, cols_cap;
  dbp_column *cols;
  char *strs;
  size_t strs_used, strs_cap;

  /* Set by dbp_query_all around its dbp_query: a statement without a
   * result set is then no error for the driver's query, which reports it
   * as an empty result with no columns and its count in no_rows_affected. */
  bool any_result;
  int64_t no_rows_affected;

  /* Row arrays, reused from row to row. */
  size_t row_cap;
  const char **vals;
  size_t *lens;
};

/* What discard asks conn.c to do with the rest of an abandoned result. */
enum {
  DBP__DRAIN = 1,  /* read the rest: abort without cancel */
  DBP__CANCEL = 2, /* much is left: abort with cancel */
};

/* The driver table: one per database kind. Every function runs inside a
 * coroutine unless noted; errors go to c->err through the kit (drvkit.h).
 *
 * The statement entries (exec, query, fetch, describe, copy_start,
 * copy_read, reset) return what happened, and conn.c moves the state
 * machine from it:
 *   1             a result stays open (query: rows follow; fetch: *row is
 *                 a row; copy_read: a chunk);
 *   0             done, the connection is idle (copy_start: the COPY is
 *                 open);
 *   DBP_ETIMEDOUT or DBP_ECANCELED
 *                 a wait was interrupted in the middle of the statement,
 *                 nothing recorded: conn.c runs `abort` in its clean-up
 *                 coroutine and records the outcome;
 *   DBP_ECONNLOST the session is gone (recorded): conn.c marks the
 *                 connection broken, as it does after any error once the
 *                 driver closed its session (`socket` returns -1);
 *   other < 0     the statement failed (recorded); the connection is idle.
 * A driver never writes the state fields of dbp_conn_s (state, broken,
 * busy, deadline ...). */
struct dbp__driver {
  size_t conn_size; /* sizeof the driver's connection struct */
  /* Connects to the numeric address `addr` ("" = the DSN's own host, e.g. a
   * Unix socket). Returns 0 or an error; on error the caller calls close. */
  int (*connect)(dbp_conn *c, const char *addr);
  /* Frees the driver's state without waiting. Safe on a half-open conn. */
  void (*close)(dbp_conn *c);
  int (*exec)(dbp_conn *c, const char *sql, size_t n, const dbp_param *p, int64_t *affected);
  /* Starts a query and reads up to its column metadata. */
  int (*query)(dbp_conn *c, const char *sql, size_t n, const dbp_param *p);
  int (*fetch)(dbp_conn *c, dbp_row *row);
  /* Drops what of the current result (rows or COPY) can be dropped without
   * waiting. Returns 0 when the connection is idle, else DBP__DRAIN or
   * DBP__CANCEL for conn.c's clean-up to finish with abort. */
  int (*discard)(dbp_conn *c);
  /* Brings c back to idle after an interrupted statement or an abandoned
   * result: with `cancel`, first asks the server to stop the statement,
   * then reads and drops whatever of it still comes. Runs in conn.c's
   * clean-up coroutine, with c->deadline its budget (DBP__CLEANUP_MS).
   * Returns 0 when the connection is idle again. Otherwise it gave up: the
   * session is closed, and *stray is the server's id of that session when
   * its statement may still run there (a server blocked writing to a
   * stalled peer acts on no cancel and never learns of the close), for
   * conn.c to end it from a side connection (terminate_sql); else 0. */
  int (*abort)(dbp_conn *c, bool cancel, int64_t *stray);
  int (*describe)(dbp_conn *c, const char *sql);
  /* Runs a complete COPY ... TO STDOUT statement. A refusal of
   * the statement itself that leaves the session usable is DBP_ENOCOPY.
   * NULL for a database without COPY. */
  int (*copy_start)(dbp_conn *c, const char *sql);
  /* The next row, exactly one per call, its LF included (1), or the end
   * of the COPY (0). */
  int (*copy_read)(dbp_conn *c, const char **row, size_t *len);
  /* Asks the server to cancel whatever runs on c (dbp_conn_cancel), from
   * another coroutine: records nothing in c->err. */
  int (*cancel)(dbp_conn *c);
  bool (*in_transaction)(const dbp_conn *c);
  int64_t (*backend_id)(const dbp_conn *c);
  /* Returns an idle connection's session to the state it had right after
   * connect (dbp_conn_reset with keep_session false): the driver's own
   * cached statements are forgotten or kept valid, never left dangling. */
  int (*reset)(dbp_conn *c);
  /* The socket the client library uses, or -1 (no session). Does not wait. */
  int (*socket)(const dbp_conn *c);
  /* A statement with one parameter, the id of a session (abort's *stray),
   * that ends that session on the server from another connection; NULL
   * when the driver has no need of it. */
  const char *terminate_sql;
  /* How the server reports a statement it canceled at our request: its
   * SQLSTATE, its errno (0 = none; when set, it identifies the error), and
   * the words for "the server stopped it" ("canceled on the server"). A
   * statement error of this kind after dbp_conn_cancel is DBP_ECANCELED. */
  const char *canceled_sqlstate;
  int canceled_errno;
  const char *canceled_how;
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

/* ---- sql.c ---- */

/* An SQL text with its length and hash (dbp__sql_hash), worked out once
 * per call by whoever first needs them. */
typedef struct dbp__sql_text {
  const char *s;
  size_t len;
  uint64_t hash;
} dbp__sql_text;

/* FNV-1a (64 bits) of s[0..n): the key of dbpipe's caches by SQL text. */
uint64_t dbp__sql_hash(const char *s, size_t n);

/* True when `sql` is stateless (dbp_sql_is_stateless) and writes and locks
 * nothing: it begins with SELECT, WITH, VALUES, TABLE or SHOW and names no
 * INSERT, UPDATE, DELETE, MERGE, REPLACE, INTO or SHARE in its code (so no
 * SELECT ... INTO and no FOR UPDATE / FOR SHARE), nor nextval, setval or
 * the transaction-id functions (txid_current, pg_current_xact_id and their
 * _if_assigned forms). Other functions it calls are taken on trust. */
bool dbp__sql_is_read_only(dbp_db_kind kind, const char *sql);
/* Both at once, lexing the text once less: returns dbp_sql_is_stateless
 * and sets *read_only to dbp__sql_is_read_only. */
bool dbp__sql_classify(dbp_db_kind kind, const char *sql, bool *read_only);

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
/* The socket of c's client library, or -1 (the driver's `socket`). */
int dbp__conn_socket(const dbp_conn *c);

#endif /* DBPIPE_DB_DRIVER_H */
