/* dbpipe databases: one connection API over PostgreSQL (libpq) and
 * MySQL/MariaDB (libmariadb).
 *
 * Every call that talks to the server waits (see rt.h): it must run inside a
 * coroutine, the loop stays free while the server works, and a timeout or a
 * cancellation cancels the statement on the server (PostgreSQL: PQcancel on
 * the thread pool; MariaDB: KILL QUERY from a side connection). Afterwards
 * the connection is either idle and reusable or marked broken
 * (dbp_conn_is_broken) — never in an unknown state.
 *
 * One statement at a time per connection. Rows are streamed, never buffered
 * as a whole result.
 */
#ifndef DBPIPE_DB_H
#define DBPIPE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dbp_db_kind { DBP_DB_PG = 1, DBP_DB_MYSQL = 2 } dbp_db_kind;

/* Normalized column types. */
typedef enum dbp_type {
  DBP_T_INTEGER = 1,
  DBP_T_NUMERIC, /* exact decimal */
  DBP_T_FLOAT,
  DBP_T_BOOL,
  DBP_T_TEXT,
  DBP_T_BYTES,
  DBP_T_JSON,
  DBP_T_DATE,
  DBP_T_TIME,
  DBP_T_TIMESTAMP,
  DBP_T_OTHER
} dbp_type;

DBP_EXTERN const char *dbp_type_name(dbp_type t); /* "integer", "numeric", ... */

typedef struct dbp_column {
  const char *name;    /* column label as the server reports it */
  dbp_type type;       /* normalized */
  const char *db_type; /* the database's own type name: "int4", "VARCHAR", ... */
  uint32_t db_type_id; /* PostgreSQL type OID or MySQL field type */
} dbp_column;

/* One row: ncols values. A value is len bytes at vals[i]; vals[i] == NULL
 * means SQL NULL (an empty string has a non-NULL pointer and len 0).
 * Values are the server's text form, except DBP_T_BYTES which are the raw
 * bytes and DBP_T_BOOL which are "t"/"f" on both databases (MySQL BIT(1)
 * and BOOLEAN(tinyint(1)) stay integers "0"/"1"). The row and its memory
 * stay valid until the next call on the connection. */
typedef struct dbp_row {
  size_t ncols;
  const char *const *vals;
  const size_t *lens;
} dbp_row;

/* What went wrong, in detail. Filled on every failure where one is passed. */
typedef struct dbp_dberr {
  int code;          /* the dbpipe error code returned */
  char sqlstate[6];  /* PostgreSQL SQLSTATE or MySQL SQLSTATE, "" if none */
  int db_errno;      /* MySQL errno, 0 for PostgreSQL */
  bool retryable;    /* connection lost, deadlock, serialization failure,
                        too many connections, admin shutdown */
  char message[512]; /* the server's or driver's message; DSNs redacted */
} dbp_dberr;

/* Formats "ECONNLOST: server closed the connection (SQLSTATE 57P01)" style
 * text into buf. Returns buf. */
DBP_EXTERN const char *dbp_dberr_format(const dbp_dberr *e, char *buf, size_t len);

/* ---- DSNs ---- */

/* A parsed DSN URL: postgresql:// postgres:// mysql:// mariadb://
 *   scheme://user:password@host:port/dbname?key=value&...
 * user, password and values are percent-decoded; a '/', '?' or '@' in the
 * user name or password must be percent-encoded (%2F, %3F, %40), or the
 * URL is refused. The query parameters host, hostaddr (and for MySQL
 * socket / unix_socket), port, user, password and dbname may supply a part
 * the URL leaves out (postgresql:///db?host=/run/postgresql), never replace
 * one it gives, and each only once: anything else is DBP_EDSN. */
typedef struct dbp_dsn {
  dbp_db_kind kind;
  char *user, *password, *host, *dbname; /* NULL when absent */
  int port;                              /* 0 when absent */
  size_t nparams;
  char **keys, **values; /* query parameters */
} dbp_dsn;

DBP_EXTERN int dbp_dsn_parse(const char *url, dbp_dsn *out, char *errbuf, size_t errlen);
DBP_EXTERN void dbp_dsn_free(dbp_dsn *d);
/* Checks a DSN offline, touching no server and no network: it parses, its
 * scheme is known, and every query parameter is one the driver accepts
 * with a valid value (PostgreSQL: what libpq's PQconninfoParse accepts;
 * MySQL: dbpipe's documented list). A parameter that would override the
 * URL's host is refused. Returns 0 or DBP_EDSN with a message that names
 * the problem and shows the DSN redacted. */
DBP_EXTERN int dbp_dsn_check(const char *url, char *errbuf, size_t errlen);
/* Copies `url` into buf with the password replaced by "***". Always safe to
 * print, even for a malformed URL: nothing between "://user:" and the '@'
 * that ends the user information is shown. Returns buf. */
DBP_EXTERN const char *dbp_dsn_redact(const char *url, char *buf, size_t len);
/* Overwrites every password in the NUL-terminated `url` with '*', in place
 * and keeping its length (the user information's and password= query
 * parameters'), by the same reading as dbp_dsn_redact, so that a URL the
 * parser would refuse is wiped too. For a program's own argv, as the
 * mariadb client does, so that ps and /proc/PID/cmdline never show it. */
DBP_EXTERN void dbp_dsn_wipe_password(char *url);
/* Passwords that must never reach a message or a log line: a front
 * registers the DSNs it was given and scrubs every text it shows, so that a
 * password quoted by a server's or a library's message is caught too. */
typedef struct dbp_secrets {
  char **list;
  size_t n;
} dbp_secrets; /* zeroed = empty */
/* Registers the password of `dsn` (if any), as parsed and as written in the
 * URL (it may be percent-encoded). Passwords shorter than 4 bytes, or equal
 * to the user name, are not scrubbed: that would garble messages and hide
 * nothing. Does nothing when out of memory. */
DBP_EXTERN void dbp_secrets_add_dsn(dbp_secrets *s, const char *dsn);
/* Replaces every registered password in b with "***". */
DBP_EXTERN void dbp_secrets_scrub(const dbp_secrets *s, dbp_buf *b);
/* The same for a NUL-terminated string in place (it never grows). */
DBP_EXTERN void dbp_secrets_scrub_str(const dbp_secrets *s, char *text);
/* Wipes and frees the copies; the struct is empty and reusable. */
DBP_EXTERN void dbp_secrets_free(dbp_secrets *s);

/* A new copy of `url` that tells the server `name` as the session's
 * application name (PostgreSQL's application_name, shown in
 * pg_stat_activity; MySQL's program_name connection attribute) unless the
 * URL names one already, so that DBAs see who is connected. A URL that does
 * not parse, or ends in a fragment, is copied unchanged. NULL when out of
 * memory. The copy holds the password: wipe and free it. */
DBP_EXTERN char *dbp_dsn_with_app_name(const char *url, const char *name);

/* ---- connections ---- */

typedef struct dbp_conn_s dbp_conn;

/* Waits: resolves the host with uv_getaddrinfo, then connects. timeout_ms
 * bounds the whole connect (DBP_FOREVER: the DSN's connect_timeout, else no
 * limit; 0: does not wait, so in practice DBP_ETIMEDOUT at once). Every
 * address the name resolves to is tried in turn. Errors: DBP_EDSN (bad
 * DSN or parameter), DBP_ERESOLVE, DBP_ECONNECT, DBP_EAUTH, DBP_ETIMEDOUT,
 * DBP_ECANCELED; `err` (may be NULL) tells the details, with the DSN
 * redacted. */
DBP_EXTERN int dbp_conn_open(dbp_rt *rt, const char *dsn, int64_t timeout_ms, dbp_conn **out,
                             dbp_dberr *err);
/* Closes and frees. Does not wait; safe outside coroutines. Not while
 * another coroutine is inside a call on c (dbp_conn_cancel excepted: the
 * memory then goes when that cancel returns). */
DBP_EXTERN void dbp_conn_close(dbp_conn *c);
DBP_EXTERN dbp_db_kind dbp_conn_kind(const dbp_conn *c);
/* The runtime the connection was opened on. */
DBP_EXTERN dbp_rt *dbp_conn_rt(const dbp_conn *c);
/* True once the connection is known unusable (lost, protocol error). */
DBP_EXTERN bool dbp_conn_is_broken(const dbp_conn *c);
/* True inside an open (or failed) transaction block. */
DBP_EXTERN bool dbp_conn_in_transaction(const dbp_conn *c);
/* The server's backend PID / connection id (for tests and KILL). */
DBP_EXTERN int64_t dbp_conn_backend_id(const dbp_conn *c);
/* The redacted DSN, for messages. */
DBP_EXTERN const char *dbp_conn_dsn(const dbp_conn *c);
/* The last error on this connection. */
DBP_EXTERN const dbp_dberr *dbp_conn_error(const dbp_conn *c);
/* Monotonic ms (loop clock) when the connection was opened / last used. */
DBP_EXTERN uint64_t dbp_conn_opened_at(const dbp_conn *c);
DBP_EXTERN uint64_t dbp_conn_used_at(const dbp_conn *c);

/* Bound parameters: text form, NULL pointer = SQL NULL. Placeholders are
 * $1, $2... on PostgreSQL and ? on MySQL. Never spliced into the SQL: on
 * MySQL a statement with parameters is a server-side prepared statement
 * (its result values come back as the same text the text protocol gives).
 *
 * The statement calls below fail with DBP_EQUERY (the server's error, see
 * dbp_conn_error), DBP_ECONNLOST (the connection is broken), DBP_ETIMEDOUT
 * or DBP_ECANCELED (the statement was cancelled on the server and the
 * connection is idle again, or broken when that could not be done),
 * DBP_ESTATE (a result is still open), DBP_EBUSY (another coroutine is
 * using the connection) or DBP_EINVAL. Their timeout_ms follows the rule
 * at the top of rt.h: DBP_FOREVER is no limit, and 0 does not wait: the
 * call fails with DBP_ETIMEDOUT where it would first wait for the server
 * (leaving the connection idle), and succeeds only when the reply is
 * already there. */
typedef struct dbp_param {
  const char *val;
  size_t len;
} dbp_param;

/* Waits: runs a statement and discards any rows. *affected (may be NULL)
 * gets the affected row count. */
DBP_EXTERN int dbp_exec(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
                        int64_t timeout_ms, int64_t *affected);

/* Waits: starts a query that returns rows. The timeout covers the whole
 * query including fetching every row. After success the column metadata is
 * available; fetch with dbp_fetch until it returns 0. */
DBP_EXTERN int dbp_query(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
                         int64_t timeout_ms);
DBP_EXTERN size_t dbp_ncols(const dbp_conn *c);
DBP_EXTERN const dbp_column *dbp_columns(const dbp_conn *c);
/* Waits: the next row. Returns 1 with *row filled, 0 at the end of the
 * result, or a negative error (the query is then over). */
DBP_EXTERN int dbp_fetch(dbp_conn *c, dbp_row *row);
/* Waits: abandons the rest of the current result (cancels it on the server
 * if much is left), leaving the connection idle. A no-op when idle. */
DBP_EXTERN int dbp_query_close(dbp_conn *c);

/* Waits: describes a query's result columns without running it to the end
 * (PostgreSQL: prepare + describe; MySQL: the query with LIMIT 0 wrapper). */
DBP_EXTERN int dbp_describe(dbp_conn *c, const char *sql, int64_t timeout_ms);

/* ---- COPY: a query's rows as the server's own text or CSV ----
 *
 * The fast way to read a whole result where the database has it
 * (PostgreSQL's COPY ... TO STDOUT): the server writes every row in a
 * format, and the rows come through as bytes, without a result object per
 * row. The db layer builds the statement; a caller only gives the query
 * and the format. Where COPY cannot serve (a MySQL connection, or a
 * statement that COPY does not take, such as SHOW, EXPLAIN or an INSERT
 * without RETURNING), dbp_copy_start fails with DBP_ENOCOPY and the
 * connection is idle and usable: run the query with dbp_query instead. */

typedef enum dbp_copy_format {
  DBP_COPY_TEXT = 0, /* tab-separated, \N for NULL, backslash escapes */
  DBP_COPY_CSV = 1   /* RFC 4180 quoting, NULL as an empty unquoted field */
} dbp_copy_format;

/* A zeroed struct (or NULL) is text format without a header. */
typedef struct dbp_copy_options {
  dbp_copy_format format;
  bool header;             /* a first row with the column names */
  char delimiter;          /* 0 = the format's own: '\t' for text, ',' for CSV */
  const char *null_string; /* NULL = the format's own: "\\N" for text, "" for CSV */
} dbp_copy_options;

/* Does not wait: true when c can stream results with dbp_copy_start at
 * all (it still refuses statements COPY does not take). Lets a caller pick
 * its way before running anything, e.g. a describe step before a text
 * COPY. COPY takes no bound parameters: a query with parameters is read
 * with dbp_query. */
DBP_EXTERN bool dbp_conn_can_copy(const dbp_conn *c);

/* Waits: starts streaming the rows of `query` (one statement, without
 * parameters; trailing semicolons are ignored) in the format `opts` asks
 * for (NULL: text, no header). The timeout covers the whole COPY including
 * reading every row. Fails with DBP_EINVAL, before anything is sent, for
 * options the format cannot take: a delimiter that is CR, LF or not ASCII,
 * for text a backslash, '.', a lowercase letter or a digit, for CSV the
 * quote '"'; a NULL string holding CR, LF, the delimiter or (CSV) the
 * quote. Fails with DBP_ENOCOPY when this connection or this statement
 * cannot be COPYed (see above); the connection is then idle, and outside a
 * transaction block nothing has changed (inside one, the server's refusal
 * aborted the transaction, and the error is DBP_EQUERY instead, as for any
 * failed statement). Other errors as for dbp_query. */
DBP_EXTERN int dbp_copy_start(dbp_conn *c, const char *query, const dbp_copy_options *opts,
                              int64_t timeout_ms);
/* Waits: hands out exactly one row per call: its bytes in the COPY format,
 * the final LF included (a CSV value may hold line breaks of its own; they
 * stay inside the row), the header being the first row when asked for.
 * The row is valid until the next call on c. Returns 1 with a row, 0 at
 * the end (the connection is then idle), or a negative error (the COPY is
 * then over). dbp_query_close abandons the rest. */
DBP_EXTERN int dbp_copy_read(dbp_conn *c, const char **row, size_t *len);

/* ---- whole results ----
 *
 * A result read into memory as a whole: it outlives the connection (and
 * the pool) it came from, and is freed with dbp_result_free. Values follow
 * the dbp_row conventions (text form; DBP_T_BYTES raw; "t"/"f" booleans),
 * and each is followed by a NUL byte that len does not count, so text can
 * be used as a C string. For results too big for memory, stream them with
 * dbp_query and dbp_fetch instead. */
typedef struct dbp_result_s dbp_result;

/* Rows and columns (0 and 0 for a statement without rows). */
DBP_EXTERN size_t dbp_result_nrows(const dbp_result *r);
DBP_EXTERN size_t dbp_result_ncols(const dbp_result *r);
/* Column `col`'s metadata, or NULL past the last one. */
DBP_EXTERN const dbp_column *dbp_result_column(const dbp_result *r, size_t col);
/* The value at (row, col): NULL for SQL NULL and for a position outside
 * the result; *len (may be NULL) gets its length (0 for those). */
DBP_EXTERN const char *dbp_result_value(const dbp_result *r, size_t row, size_t col, size_t *len);
/* Row `row` as a dbp_row, valid as long as r. DBP_EINVAL past the end. */
DBP_EXTERN int dbp_result_row(const dbp_result *r, size_t row, dbp_row *out);
/* The rows the statement affected (or returned), as dbp_exec reports. */
DBP_EXTERN int64_t dbp_result_affected(const dbp_result *r);
/* Frees r; NULL is a no-op. */
DBP_EXTERN void dbp_result_free(dbp_result *r);

/* Waits: runs a query (as dbp_query) and reads every row into *out. A
 * statement without a result set (INSERT, UPDATE without RETURNING) is no
 * error here: its result has no columns and no rows, and
 * dbp_result_affected gives its count.
 * max_bytes bounds the values held (0: 64 MiB); a bigger result stops
 * with DBP_ETOOBIG, the rest abandoned as dbp_query_close does and the
 * connection left idle. On any failure *out is NULL. timeout_ms covers
 * the whole call. */
DBP_EXTERN int dbp_query_all(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
                             int64_t timeout_ms, size_t max_bytes, dbp_result **out);

/* True when `sql` is a statement that leaves nothing behind on its
 * session: one that begins (after blanks, comments and parentheses) with
 * SELECT, WITH, VALUES, TABLE, SHOW, INSERT, UPDATE, DELETE or MERGE
 * (MySQL also REPLACE), and names none of what keeps state in a session:
 * TEMP/TEMPORARY tables; on PostgreSQL set_config and the session-level
 * advisory locks (pg_advisory_lock, pg_advisory_lock_shared,
 * pg_try_advisory_lock, pg_try_advisory_lock_shared); on MySQL user
 * variables (@name, not @@name) and GET_LOCK. Words inside literals and
 * comments do not count, nor do quoted names, except a quoted name that
 * is called ("set_config"(...) still calls the function). The pool's one-call helpers run
 * such statements without a session reset afterwards and, on PostgreSQL,
 * on shared pipelined connections. Does not check that the SQL is valid. */
DBP_EXTERN bool dbp_sql_is_stateless(dbp_db_kind kind, const char *sql);

/* Waits: cancels the statement running on `c` on the server, from the
 * calling coroutine (any coroutine of the runtime). The coroutine running
 * the statement gets DBP_ECANCELED (or its normal result if the statement
 * finished first). */
DBP_EXTERN int dbp_conn_cancel(dbp_conn *c);

/* Checks offline that `sql` is exactly one statement in the dialect of
 * `kind` (quotes, identifiers, comments and, on PostgreSQL, dollar quoting
 * understood; one trailing ';' allowed). Returns 0, or DBP_EINVAL with a
 * message: empty, more than one statement (the line and column where the
 * second begins), or a literal, quoted name or comment that never ends. */
DBP_EXTERN int dbp_sql_check_single(dbp_db_kind kind, const char *sql, char *errbuf, size_t errlen);

/* The default longest wait for a server to send or accept a byte while a
 * statement runs (see dbp_conn_set_io_timeout). */
#define DBP_DEFAULT_IO_TIMEOUT_MS ((int64_t)600000)

/* Sets the no-progress limit of c: when a statement is running and the
 * server sends nothing (and accepts nothing) for ms milliseconds, the
 * statement fails with DBP_ETIMEDOUT (its message names the idle timeout),
 * is cancelled on the server and the connection is left idle or broken.
 * 0 = DBP_DEFAULT_IO_TIMEOUT_MS, DBP_FOREVER = no limit. Does not wait. */
DBP_EXTERN void dbp_conn_set_io_timeout(dbp_conn *c, int64_t ms);

/* Does not wait: true when an idle connection still looks usable. Peeks at
 * the socket without blocking; a socket that is closed, in error or has
 * unasked-for bytes (a server's goodbye) marks c broken and gives false. */
DBP_EXTERN bool dbp_conn_alive(dbp_conn *c);

/* Waits: a round trip to the server that proves the connection works. */
DBP_EXTERN int dbp_conn_ping(dbp_conn *c, int64_t timeout_ms);

/* Waits: makes an idle connection fit for its next user. Rolls back an
 * open or failed transaction; then, unless keep_session, returns the
 * session to its state right after connect (PostgreSQL: DISCARD ALL;
 * MariaDB/MySQL: mysql_reset_connection): settings, user variables,
 * temporary tables, prepared statements, advisory locks and LISTENs made by
 * earlier users are gone. dbpipe's own cached statements stay correct.
 * Returns 0, or an error with the connection marked broken. */
DBP_EXTERN int dbp_conn_reset(dbp_conn *c, bool keep_session, int64_t timeout_ms);

/* Quotes an identifier for this connection's dialect ("a""b" / `a``b`),
 * splitting on dots for schema.table. Returns a malloc'd string. */
DBP_EXTERN char *dbp_quote_ident(dbp_db_kind kind, const char *name);

/* ---- consistent snapshots shared by several connections ----
 *
 * Several connections that read one database as of the same instant, as
 * pg_dump -j and mydumper do: a coordinating connection takes the snapshot,
 * any number of worker connections join it, and every worker's transaction
 * then sees exactly the rows the others see, whatever commits meanwhile.
 *
 *   dbp_snapshot *s;
 *   dbp_snapshot_begin(coord, NULL, 10000, &s, &err);
 *   for (i = 0; i < n; i++) dbp_snapshot_join(s, worker[i], 10000, &err);
 *   dbp_snapshot_ready(s, 10000, &err);   (MySQL: the write lock ends here)
 *   ... the workers read, then end their transactions (COMMIT or ROLLBACK) ...
 *   dbp_snapshot_end(s, 10000);
 *
 * PostgreSQL: the coordinator opens a REPEATABLE READ READ ONLY transaction
 * and exports its snapshot (pg_export_snapshot); each worker opens the same
 * kind of transaction and imports it (SET TRANSACTION SNAPSHOT). The
 * snapshot exists while the coordinator's transaction is open, so workers
 * may join at any time until dbp_snapshot_end, and dbp_snapshot_ready does
 * nothing. No privilege beyond reading the tables is needed.
 *
 * MariaDB/MySQL: the coordinator stops every commit on the server (MariaDB
 * 10.4 and later: BACKUP STAGE START + BACKUP STAGE BLOCK_COMMIT, which,
 * unlike FLUSH TABLES WITH READ LOCK, does not wait for long-running
 * SELECTs and so does not queue every writer behind them; MySQL and older
 * MariaDB: FLUSH TABLES WITH READ LOCK), records the binary log position,
 * and each worker starts a REPEATABLE READ transaction WITH CONSISTENT
 * SNAPSHOT, READ ONLY. As no commit can happen in between, all of them see
 * the same state. Workers must join while the lock is held: join them all,
 * then call dbp_snapshot_ready, which releases it; a join after that fails
 * with DBP_ESTATE. Writers wait while the lock is held: keep it short
 * (dbp_snapshot_lock_us tells how long it was). MariaDB runs one BACKUP
 * STAGE at a time per server: a second snapshot's begin waits (within its
 * timeout) until the first one's dbp_snapshot_ready. The lock needs the RELOAD
 * privilege (and reading the binary log position BINLOG MONITOR on MariaDB,
 * REPLICATION CLIENT on MySQL); without it dbp_snapshot_begin fails with
 * DBP_EACCES and a message naming the privilege. InnoDB tables only: other
 * engines have no snapshots.
 *
 * DBP_SNAPSHOT_LOCK_FREE (MariaDB/MySQL) takes no lock and needs no
 * privilege: each worker starts its consistent-snapshot transaction when
 * it joins, so workers that join at different times may see different
 * states (a transfer committed between two joins is seen by one and not
 * the other), and no position is recorded. On PostgreSQL the option
 * changes nothing: the snapshot is always shared.
 *
 * Workers' transactions are their callers' to end (a pooled connection's
 * release rolls it back, dbp_conn_reset). A worker that could not join is
 * left idle, outside a transaction. When the coordinator's connection
 * breaks, the snapshot is gone: joins fail with DBP_ECONNLOST, and on MySQL
 * dbp_snapshot_ready fails too, since the lock may have ended before every
 * worker joined. The coordinator and the workers belong to the snapshot
 * until it ends: no other statements on the coordinator meanwhile. */

typedef struct dbp_snapshot_s dbp_snapshot;

typedef enum dbp_snapshot_mode {
  DBP_SNAPSHOT_LOCKED = 0,   /* every worker sees the same state (default) */
  DBP_SNAPSHOT_LOCK_FREE = 1 /* MariaDB/MySQL: no lock, workers may disagree */
} dbp_snapshot_mode;

/* A zeroed struct (or NULL) is the defaults. */
typedef struct dbp_snapshot_options {
  dbp_snapshot_mode mode;
} dbp_snapshot_options;

/* Waits: takes a snapshot on the idle connection `coord` (not inside a
 * transaction: DBP_ESTATE). timeout_ms bounds the whole step, waiting for
 * the lock included. On success *out is the snapshot, which owns nothing
 * but its own memory. On failure the coordinator holds no lock and no
 * transaction: they are released by statements (with a budget of their
 * own), else by dbp_conn_reset, else the connection is marked broken (the
 * caller closes it, and the server lets go with the session), so that no
 * connection that looks usable holds a server-wide lock. Errors: DBP_EACCES (a
 * privilege is missing; the message names it), DBP_ESTATE, DBP_EINVAL, and
 * those of dbp_exec; `err` (may be NULL) tells the details. */
DBP_EXTERN int dbp_snapshot_begin(dbp_conn *coord, const dbp_snapshot_options *o,
                                  int64_t timeout_ms, dbp_snapshot **out, dbp_dberr *err);
/* Waits: starts a transaction on the idle connection `worker` (same
 * database kind, not inside a transaction, not the coordinator) that sees
 * the snapshot. Errors: DBP_ESTATE (MySQL: after dbp_snapshot_ready; or the
 * worker is in a transaction), DBP_ECONNLOST (the coordinator's connection
 * is lost), DBP_EINVAL, and those of dbp_exec; the worker is then left
 * outside a transaction, or broken when not even a rollback could run. */
DBP_EXTERN int dbp_snapshot_join(dbp_snapshot *s, dbp_conn *worker, int64_t timeout_ms,
                                 dbp_dberr *err);
/* Waits: PostgreSQL only: starts a REPEATABLE READ READ ONLY transaction
 * on `worker` that imports the snapshot `id` exported by any session (for
 * a worker in another process). An id that is not of the server's shape
 * is DBP_EINVAL without a round trip; one the server does not know (never
 * exported, or its transaction ended) is DBP_EQUERY with the server's
 * message. The worker is left outside a transaction on failure. */
DBP_EXTERN int dbp_snapshot_import(dbp_conn *worker, const char *id, int64_t timeout_ms,
                                   dbp_dberr *err);
/* Waits: every worker has joined. MySQL (locked mode): releases the lock
 * and stops the lock clock; DBP_ECONNLOST when the coordinator's
 * connection broke (the workers cannot be vouched for). Otherwise nothing
 * but the bookkeeping. Calling it again does nothing. */
DBP_EXTERN int dbp_snapshot_ready(dbp_snapshot *s, int64_t timeout_ms, dbp_dberr *err);
/* Waits: releases the lock if still held, ends the coordinator's
 * transaction and frees s, always. When a step fails its error is
 * returned and the coordinator is released as on a failed begin (reset, or
 * marked broken). Workers' transactions are untouched. NULL is a no-op. */
DBP_EXTERN int dbp_snapshot_end(dbp_snapshot *s, int64_t timeout_ms);

/* PostgreSQL: the exported snapshot id ("00000003-0000001B-1"), for
 * dbp_snapshot_import. "" on MySQL. */
DBP_EXTERN const char *dbp_snapshot_id(const dbp_snapshot *s);
/* Where the snapshot stands in the server's change log. PostgreSQL: the WAL
 * position "X/X" read just after the snapshot was taken
 * (pg_current_wal_lsn, or pg_last_wal_replay_lsn on a standby), so every
 * commit the snapshot sees is at or before it. MariaDB: @@gtid_binlog_pos;
 * MySQL: @@gtid_executed; both read under the lock, "" when the server has
 * none (no binary log) or in lock-free mode. Never NULL. */
DBP_EXTERN const char *dbp_snapshot_position(const dbp_snapshot *s);
/* MySQL: the binary log file and position (SHOW MASTER STATUS) under the
 * lock; "" and 0 when binary logging is off, in lock-free mode and on
 * PostgreSQL. */
DBP_EXTERN const char *dbp_snapshot_binlog_file(const dbp_snapshot *s);
DBP_EXTERN uint64_t dbp_snapshot_binlog_pos(const dbp_snapshot *s);
/* PostgreSQL: true when the snapshot was taken on a standby. */
DBP_EXTERN bool dbp_snapshot_on_standby(const dbp_snapshot *s);
/* Microseconds the lock was held (MySQL locked mode: from the lock being
 * granted to its release; while held, so far). 0 without a lock. */
DBP_EXTERN uint64_t dbp_snapshot_lock_us(const dbp_snapshot *s);
/* Number of workers that joined. */
DBP_EXTERN size_t dbp_snapshot_workers(const dbp_snapshot *s);

/* ---- the catalog: which tables a database holds ----
 *
 * dbp_list_tables finds the tables that patterns name, for exporting whole
 * databases. A schema is a PostgreSQL schema or a MySQL/MariaDB database.
 *
 * Patterns (the same on both databases): SCHEMA.TABLE, where an unquoted
 * part may use '*' (any run of characters, none included) and '?' (exactly
 * one character; a multibyte UTF-8 character counts as one).
 *   - Without a dot, a pattern names tables of the current schema only, as
 *     pg_dump -t does: on PostgreSQL the tables visible through the
 *     search_path (pg_table_is_visible), on MySQL those of the connection's
 *     database (DATABASE(); none when the DSN names no database). Write
 *     '*.orders' for a table of that name in every schema.
 *   - Double quotes (or backticks) quote a run of a part: inside them '.',
 *     '*', '?', spaces and capitals stand for themselves, and a doubled
 *     quote is one quote ("My Schema"."Odd.Table", "a""b", ord"*"x*).
 *   - Unquoted, names compare byte for byte (case-sensitive, as the
 *     catalogs store them), except that on PostgreSQL ASCII letters fold to
 *     lower case first, as in SQL and pg_dump: Orders matches orders, and
 *     "Orders" matches the table created as "Orders". MySQL stores names as
 *     written (on Linux), so nothing is folded there.
 *   - Refused with DBP_EINVAL, the message naming the pattern: an empty
 *     pattern or part, more than one unquoted dot, a quote that never
 *     ends, whitespace or control characters outside quotes, a NULL.
 *
 * What is listed: the base tables (and partitioned tables) matching an
 * include pattern (no include patterns: every table) and no exclude
 * pattern; an exclude always wins. Some relations need more than a match:
 *   - views (and PostgreSQL materialized views) need `views`, or an include
 *     pattern without wildcards that names the view;
 *   - a PostgreSQL partition needs an include pattern without wildcards that
 *     names it: by default the partitioned parent stands for all of its
 *     partitions (reading the parent reads their rows), so every row is
 *     listed once;
 *   - tables of the system schemas (PostgreSQL: pg_catalog,
 *     information_schema, pg_toast*, pg_temp_*; MySQL: mysql,
 *     information_schema, performance_schema, sys) need an include pattern
 *     whose schema part has no wildcards and names that schema.
 * Sequences, foreign tables and temporary tables are never listed. The
 * list is sorted by schema, then name, in byte order. */

typedef enum dbp_table_kind {
  DBP_TABLE_BASE = 1,    /* an ordinary table */
  DBP_TABLE_PARTITIONED, /* a partitioned table (PostgreSQL PARTITION BY, MySQL
                            PARTITION BY): its rows are its partitions' */
  DBP_TABLE_VIEW,        /* a view (MySQL: also a SYSTEM VIEW) */
  DBP_TABLE_MATVIEW      /* a PostgreSQL materialized view */
} dbp_table_kind;

/* "table", "partitioned table", "view", "materialized view" ("?" else). */
DBP_EXTERN const char *dbp_table_kind_name(dbp_table_kind k);

/* What to list. A zeroed struct (or NULL) lists every base table outside
 * the system schemas. The strings are read during the call only. */
typedef struct dbp_table_filter {
  const char *const *include; /* ninclude patterns; none: every table */
  size_t ninclude;
  const char *const *exclude; /* nexclude patterns */
  size_t nexclude;
  bool views; /* list views and materialized views that match too */
} dbp_table_filter;

/* One column of a primary key. */
typedef struct dbp_key_column {
  const char *name;
  dbp_type type;       /* normalized, as dbp_columns would report it */
  const char *db_type; /* PostgreSQL: the (base) type's name, "int4";
                          MySQL: the data type, "INT", "VARCHAR" */
} dbp_key_column;

typedef struct dbp_table_info {
  const char *schema; /* as the catalog stores it */
  const char *name;
  /* schema.name quoted for the connection's dialect, ready for SQL:
   * "sales"."Order.Items" / `sales`.`Order.Items` (quotes doubled inside,
   * a dot inside a name kept inside its quotes). */
  const char *qualified;
  dbp_table_kind kind;
  bool partition; /* a PostgreSQL partition of another table */
  /* The server's estimate of the row count, or -1 when it has none
   * (PostgreSQL: reltuples, -1 until the table is first vacuumed or
   * analysed (0 before PostgreSQL 14); a partitioned table sums its leaf
   * partitions. MySQL:
   * information_schema.TABLES.TABLE_ROWS, InnoDB's sampled guess). Views
   * are always -1. */
  int64_t rows_estimate;
  size_t npkey;               /* 0: no primary key */
  const dbp_key_column *pkey; /* its columns in key order */
} dbp_table_info;

/* The result: n tables; every string lives until dbp_table_list_free. */
typedef struct dbp_table_list {
  size_t n;
  dbp_table_info *tables;
} dbp_table_list;

/* Waits: lists the tables that `f` selects (rules above) into *out, which
 * is emptied first and must be freed with dbp_table_list_free whatever the
 * outcome. timeout_ms covers the whole call (a few catalog queries, one
 * per schema that has matches for the primary keys); the rule at the top
 * of rt.h applies. The patterns never enter the SQL: they are matched
 * here; the queries take only schema names, as bound parameters.
 *
 * Returns 0 (no match is an empty list, not an error), DBP_EINVAL for a
 * bad filter or pattern (recorded in c's error, see dbp_conn_error, before
 * anything is sent), DBP_ENOMEM, or the errors of dbp_query; on any error
 * *out is empty (never part of the list). Needs PostgreSQL 12 or later. */
DBP_EXTERN int dbp_list_tables(dbp_conn *c, const dbp_table_filter *f, int64_t timeout_ms,
                               dbp_table_list *out);
/* Frees what dbp_list_tables put into *l and empties it. Safe on an empty
 * or zeroed list. */
DBP_EXTERN void dbp_table_list_free(dbp_table_list *l);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_DB_H */
