/* dbpipe pool: a bounded set of connections to one DSN.
 *
 * Connections are opened lazily up to max_size; waiters are served first
 * come, first served; a released connection is reset (dbp_conn_reset: an
 * open transaction rolled back and, unless keep_session, the session
 * returned to its state after connect) or, if broken, discarded and
 * replaced on demand. Connections idle longer than idle_timeout_ms (above
 * min_size) or older than max_lifetime_ms are closed. Before an idle
 * connection is handed out, a peek at its socket (dbp_conn_alive, which
 * costs no round trip) finds one the server has closed; one idle longer
 * than check_after_ms is also pinged. A dead one is replaced without the
 * caller noticing. When the server refuses a connection for having too
 * many (DBP_ETOOMANY) while the pool holds others, the acquire waits for
 * one of those instead of failing, and the pool opens no more than the
 * server allowed for a while.
 */
#ifndef DBPIPE_POOL_H
#define DBPIPE_POOL_H

#include <stdint.h>

#include "common.h"
#include "db.h"
#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dbp_pool_s dbp_pool;

/* Options: a field left 0 takes its default, so `{.max_size = 8}` is a
 * sensible pool (the rule at the top of rt.h). The durations also accept
 * DBP_FOREVER (never, no limit) and, where a zero makes sense,
 * DBP_POOL_NOW, an explicit zero: check before every hand-out, close idle
 * connections above min_size at once, use each connection only once. */
#define DBP_POOL_NOW ((int64_t)-2)

typedef struct dbp_pool_options {
  size_t min_size;            /* kept open once opened; default 0 */
  size_t max_size;            /* default 4 */
  int64_t connect_timeout_ms; /* per connection attempt; default 10000 */
  int64_t idle_timeout_ms;    /* default 300000; DBP_FOREVER = never */
  int64_t max_lifetime_ms;    /* default 3600000; DBP_FOREVER = never */
  int64_t check_after_ms;     /* ping when idle longer; default 1000 */
  int64_t io_timeout_ms;      /* every connection's no-progress limit (see
                                 dbp_conn_set_io_timeout); default
                                 DBP_DEFAULT_IO_TIMEOUT_MS, DBP_FOREVER none */
  bool keep_session;          /* release only rolls back (see dbp_conn_reset);
                                 default false: a full session reset */
  /* PostgreSQL: the one-call helpers' stateless statements share
   * connections in pipeline mode (below). true turns that off: each
   * statement then takes a connection of its own for its turn. */
  bool no_pipeline;
  size_t pipeline_depth;   /* statements in flight per shared connection;
                              default 16 */
  size_t max_result_bytes; /* what a helper's result may hold; default 64 MiB */
} dbp_pool_options;

/* The histogram of acquire waits in dbp_pool_stats: the upper bounds, in
 * seconds, of its first DBP_POOL_WAIT_BUCKETS - 1 buckets (0.001, 0.005,
 * 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60); the last bucket has none
 * (+Inf). A wait of w seconds lands in the first bucket i with
 * w <= dbp_pool_wait_bounds[i], or in the last. */
#define DBP_POOL_WAIT_BUCKETS 12
DBP_EXTERN extern const double dbp_pool_wait_bounds[DBP_POOL_WAIT_BUCKETS - 1];

typedef struct dbp_pool_stats {
  size_t in_use, idle, waiting, total; /* total = in_use + idle (+ opening) */
  uint64_t acquired;                   /* successful acquires */
  uint64_t timeouts;                   /* acquires that timed out */
  uint64_t opened, closed, broken;     /* connections; closed counts broken */
  uint64_t wait_ms_total;              /* time spent in acquire, any outcome */
  size_t opening;                      /* connections being opened */
  size_t in_use_peak, total_peak;      /* highest in_use / total so far */
  /* The one-call helpers (dbp_pool_query, dbp_pool_exec): */
  size_t shared;       /* connections in pipeline mode now (counted in in_use) */
  size_t in_flight;    /* statements sent on them and not yet answered */
  uint64_t statements; /* helper statements run, any outcome */
  uint64_t pipelined;  /* of those, the ones sent on a shared connection */
  uint64_t abandoned;  /* timed out or cancelled while on a shared connection */
  /* How long acquires waited, per acquire: the same ones wait_ms_total
   * sums (every dbp_pool_acquire, any outcome, and the acquire a one-call
   * helper makes when it needs a connection of its own; not a helper's
   * wait for room on a shared connection, nor a call refused before it
   * could wait: bad arguments, outside a coroutine, a closed pool).
   * Measured on the monotonic high-resolution clock (uv_hrtime), not the
   * loop's millisecond clock that wait_ms_total uses, so short waits are
   * not lost to rounding. wait_buckets[i] counts the waits in bucket i of
   * dbp_pool_wait_bounds (not cumulative: add them up for Prometheus);
   * their sum is the number of acquires counted. */
  uint64_t wait_buckets[DBP_POOL_WAIT_BUCKETS];
  uint64_t wait_us_total; /* their sum, in microseconds */
} dbp_pool_stats;

/* Does not connect (that happens on first acquire). `opts` may be NULL.
 * DBP_EDSN for a malformed DSN, DBP_EINVAL for bad options (min_size above
 * max_size, a negative duration other than DBP_FOREVER / DBP_POOL_NOW). */
DBP_EXTERN int dbp_pool_new(dbp_rt *rt, const char *dsn, const dbp_pool_options *opts,
                            dbp_pool **out);
/* Waits: hands out an idle connection, opens one, or queues behind earlier
 * waiters. DBP_ETIMEDOUT after timeout_ms (the connect counts against it);
 * never leaks a connection. An idle connection is peeked at first, and
 * pinged when unused for check_after_ms; a dead one is replaced. A timeout
 * of 0 does not wait: it hands out an idle connection if nobody queues
 * (after the peek only: the ping would wait), else fails at once with
 * DBP_ETIMEDOUT (opening a connection or queueing would wait).
 * DBP_FOREVER waits without limit; other negative timeouts are
 * DBP_EINVAL. `err` (may be NULL) gets the connect error, or just the
 * code. DBP_EPOOLCLOSED once dbp_pool_close began. */
DBP_EXTERN int dbp_pool_acquire(dbp_pool *p, int64_t timeout_ms, dbp_conn **out, dbp_dberr *err);
/* Waits (for the reset): gives a connection back. Any coroutine may release
 * what another acquired. Releasing a connection twice is a bug (caught by
 * the invariant checks of a development build; otherwise ignored). A broken connection, or one
 * whose reset failed or that outlived max_lifetime_ms, is closed and the oldest waiter may open a
 * replacement. With a cancellation pending the reset runs in a coroutine of
 * its own (the caller's cancellation is not swallowed); outside a coroutine
 * a connection that would need a reset (a ROLLBACK, a session reset, an
 * abandoned result drained) is closed instead. */
DBP_EXTERN void dbp_pool_release(dbp_pool *p, dbp_conn *c);
/* Waits: fails pending acquires with DBP_EPOOLCLOSED, waits up to
 * timeout_ms for connections in use to come back (0: not at all), closes
 * everything and frees the pool. On DBP_ETIMEDOUT (or DBP_ECANCELED) connections are still
 * out: the pool stays closed and frees itself when the last one is
 * released, so `p` may then only be passed to dbp_pool_release. Outside a
 * coroutine it does not wait. */
DBP_EXTERN int dbp_pool_close(dbp_pool *p, int64_t timeout_ms);
DBP_EXTERN void dbp_pool_get_stats(const dbp_pool *p, dbp_pool_stats *out);

/* ---- one call per statement ----
 *
 * For service code: a statement run on any of the pool's connections in
 * one call, its rows read into a dbp_result that outlives the connection:
 *
 *   dbp_result *r;
 *   dbp_param id = {argv_id, strlen(argv_id)};
 *   int rc = dbp_pool_query(pool, "SELECT name FROM users WHERE id = $1", 1, &id, 2000, &r, &err);
 *   if (rc == 0) reply(dbp_result_value(r, 0, 0, NULL)), dbp_result_free(r);
 *
 * timeout_ms bounds everything (waiting for a connection, the statement,
 * reading its rows; the rule at the top of rt.h). One statement per call:
 * a text with several is refused with DBP_EINVAL before anything is sent
 * (acquire a connection for them).
 *
 * How it runs. A statement that dbp_sql_is_stateless accepts leaves
 * nothing on its session, so the connection needs no reset after it.
 *   - On PostgreSQL (unless no_pipeline) such statements share
 *     connections: each is sent at once, without waiting for earlier ones,
 *     on a connection in libpq's pipeline mode, and its result or error is
 *     its own (a failing statement fails alone). A statement that may
 *     write gets a sync point of its own, so it runs in its own implicit
 *     transaction exactly as alone. Read-only ones (SELECT, WITH, VALUES,
 *     TABLE, SHOW without INSERT, UPDATE, DELETE, MERGE, INTO, FOR
 *     UPDATE/SHARE, nextval, setval or the transaction-id functions) sent
 *     in the same loop turn share one sync point, which saves the server a
 *     flush and a wake-up each; none of them completes before it, and when
 *     one fails the others are sent again, so nothing a neighbour did is
 *     lost with the rolled-back segment (a function called by such a
 *     SELECT that writes to tables still writes exactly once; effects no
 *     rollback undoes, such as a sequence advanced inside a function, may
 *     repeat). They share one implicit transaction: now() and
 *     transaction_timestamp() are equal across them, and under REPEATABLE
 *     READ or SERIALIZABLE defaults so is the snapshot (statement_timestamp()
 *     and clock_timestamp() are each their own; under the default READ
 *     COMMITTED each statement takes its own snapshot).
 *     The pool spreads statements over up to max_size connections
 *     and up to pipeline_depth in flight on each; beyond that they queue
 *     like acquires. A shared connection goes back to idle when its last
 *     statement is answered. A statement that times out or is cancelled
 *     returns at once; its result is dropped when it comes, and the
 *     connection takes no new statements until it has drained. Only when
 *     nothing but abandoned statements is left is the server asked to
 *     cancel (so a cancel never reaches a neighbour), and such a
 *     connection is then reset (or closed) before its next use.
 *   - Otherwise (MariaDB/MySQL, or no_pipeline) it runs on a connection of
 *     its own, which goes back to idle afterwards without a reset.
 * Any other statement (SET, BEGIN, DDL, CALL, ...) runs alone and the
 * connection is released as dbp_pool_release does (reset unless
 * keep_session).
 *
 * Statements are prepared on the server once per connection and kept, by
 * SQL text, in a bounded cache (PostgreSQL: 256 per connection, least
 * recently used dropped first; MySQL as dbp_query does), so a repeated
 * statement skips parse and plan. Transactions, COPY and streaming reads
 * need a connection to themselves: use dbp_pool_acquire.
 *
 * Errors: those of dbp_pool_acquire and of dbp_query; DBP_ETOOBIG when
 * the rows exceed max_result_bytes. `err` (may be NULL) gets the details.
 * *out is NULL on any failure. */
DBP_EXTERN int dbp_pool_query(dbp_pool *p, const char *sql, size_t nparams, const dbp_param *params,
                              int64_t timeout_ms, dbp_result **out, dbp_dberr *err);
/* The same for a statement whose rows are not wanted: *affected (may be
 * NULL) gets the affected row count. */
DBP_EXTERN int dbp_pool_exec(dbp_pool *p, const char *sql, size_t nparams, const dbp_param *params,
                             int64_t timeout_ms, int64_t *affected, dbp_dberr *err);
DBP_EXTERN const char *dbp_pool_dsn(const dbp_pool *p); /* redacted */

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_POOL_H */
