/* Internal: statements from many coroutines sharing one PostgreSQL
 * connection in libpq's pipeline mode, for the pool's one-call helpers.
 * Not installed.
 *
 * A pipe owns its connection while it is open: nothing else may call into
 * that connection until dbp__pipe_close. Each statement goes out at once
 * as [Parse] Bind/Execute (the Parse only when the connection's statement
 * cache does not hold it yet). A statement that may write is followed by
 * a Sync of its own, so it runs in an implicit transaction of its own.
 * Read-only statements sent in the same loop turn share one Sync (one
 * segment), which saves the server a flush and a wake-up per statement;
 * none of them is complete before the Sync, and when one fails, its error
 * is its own and every other statement of the segment is sent again, so
 * none sees another's failure (they only share the transaction's start
 * time, now()). One
 * reader coroutine per pipe reads the replies in order and hands each to
 * its caller. A caller whose wait ends early (timeout, cancellation)
 * leaves its statement behind: the reader drops the reply when it comes,
 * the pipe takes no new statements until it is empty, and once nothing but
 * left-behind statements remains it asks the server to cancel (which can
 * then only stop one of those) and the connection needs a reset before its
 * next use. When the pipe is empty, the reader calls `drained`. */
#ifndef DBPIPE_DB_PIPELINE_H
#define DBPIPE_DB_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/driver.h"
#include "dbpipe/db.h"

typedef struct dbp__pipe dbp__pipe;

/* Called by the pipe's reader, in its coroutine, when nothing is in
 * flight any more (the reader then ends): the owner calls dbp__pipe_close
 * and passes the connection on. */
typedef void (*dbp__pipe_drained_fn)(dbp__pipe *pp, void *arg);

/* True for connections that can be shared (PostgreSQL). */
bool dbp__pipe_supported(const dbp_conn *c);
/* The same for a database kind, before any connection exists. */
bool dbp__pipe_kind_supported(dbp_db_kind kind);
/* Puts the idle connection c into pipeline mode. 0, DBP_ESTATE (not idle,
 * or in a transaction), DBP_ENOMEM, DBP_EINVAL (not PostgreSQL). */
int dbp__pipe_open(dbp_conn *c, dbp__pipe_drained_fn drained, void *arg, dbp__pipe **out);
/* Whether the pipe takes new statements now. */
bool dbp__pipe_accepting(const dbp__pipe *pp);
/* Statements sent and not yet answered (left-behind ones included). */
size_t dbp__pipe_in_flight(const dbp__pipe *pp);
dbp_conn *dbp__pipe_conn(const dbp__pipe *pp);

/* Waits: sends one statement and waits for its reply, at most timeout_ms
 * (the rule at the top of rt.h; 0 sends nothing and fails with
 * DBP_ETIMEDOUT). With `rows`, *out gets the whole result (max_bytes as in
 * dbp_query_all), else *affected (may be NULL) the affected row count.
 * `read_only` (a statement that writes nothing: see the pool) lets it
 * share a Sync with its neighbours (below). DBP_EAGAIN when the pipe takes
 * no new statements (nothing of it done: try another). *left_behind is set when the statement was
 * sent but its caller stopped waiting. `err` (may be NULL) gets the details of any failure. */
int dbp__pipe_run(dbp__pipe *pp, const dbp__sql_text *text, size_t n, const dbp_param *params,
                  int64_t timeout_ms, bool read_only, bool rows, size_t max_bytes, dbp_result **out,
                  int64_t *affected, dbp_dberr *err, bool *left_behind);

/* Ends pipeline mode on an empty pipe and frees it. Returns true when the
 * connection needs a session reset before its next use (a cancel was sent,
 * its state is unknown) or is broken. */
bool dbp__pipe_close(dbp__pipe *pp);

#endif /* DBPIPE_DB_PIPELINE_H */
