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
} dbp_pool_options;

typedef struct dbp_pool_stats {
  size_t in_use, idle, waiting, total; /* total = in_use + idle (+ opening) */
  uint64_t acquired;                   /* successful acquires */
  uint64_t timeouts;                   /* acquires that timed out */
  uint64_t opened, closed, broken;     /* connections; closed counts broken */
  uint64_t wait_ms_total;              /* time spent in acquire, any outcome */
  size_t opening;                      /* connections being opened */
  size_t in_use_peak, total_peak;      /* highest in_use / total so far */
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
DBP_EXTERN const char *dbp_pool_dsn(const dbp_pool *p); /* redacted */

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_POOL_H */
