/* The harness of the connection pool's tests against real PostgreSQL and
 * MariaDB servers (tests/db/test_pool*.c).
 *
 * Every behaviour runs on both databases: a test body is a coroutine that
 * gets a context with the pool's DSN and an independent monitor connection,
 * used to count the pool's sessions on the server side. PostgreSQL sessions
 * are told apart by an application_name unique to the test process; on
 * MariaDB, which has no such tag, the count is taken over processlist rows
 * of our user and database whose ids the pool handed out (every connection
 * the pool opens reaches the test, which the tests check against
 * stats.opened), so tests running side by side never see each other.
 *
 * POOL_TEST(name, secs) { body } defines the Criterion tests pool_pg::name
 * and pool_my::name, each with a timeout of secs seconds, running the body
 * with `tctx *t` on PostgreSQL and on MariaDB. */
#ifndef DBPIPE_TESTS_POOLTEST_H
#define DBPIPE_TESTS_POOLTEST_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbpipe.h"

#define MAX_IDS 64

typedef struct tctx {
  dbp_db_kind kind;
  dbp_rt *rt;
  char dsn[512]; /* for the pool: PostgreSQL's carries the application_name */
  char app[64];
  dbp_conn *mon; /* the independent monitor connection */
  int64_t ids[MAX_IDS];
  size_t nids;
} tctx;

typedef void (*body_fn)(tctx *t);

/* ---- helpers ---- */

bool is_pg(const tctx *t);

/* Runs a one-value query and parses the value as an integer. */
int q_int(dbp_conn *c, const char *sql, size_t np, const dbp_param *ps, int64_t *out);

/* The pool's sessions as the server sees them, from the monitor. */
int64_t sessions(tctx *t);

/* The server drops a session a moment after the client closes it: waits
 * (up to ten seconds) for the count to reach `want`. */
void expect_sessions(tctx *t, int64_t want);

/* Waits (up to ten seconds) until the pool has closed `n` connections. */
void expect_closed(tctx *t, const dbp_pool *p, uint64_t n);

/* Kills a session from the monitor and waits until the server lists it no
 * more. */
void kill_backend(tctx *t, int64_t id);

/* Asserts that SELECT 1 works on c. */
void ping(dbp_conn *c);

dbp_pool *mkpool(tctx *t, const dbp_pool_options *o);

/* Acquires (waiting up to 30 s) and remembers the session's id. */
dbp_conn *must_acquire(tctx *t, dbp_pool *p);

dbp_pool_stats stats(const dbp_pool *p);

/* Yields until n acquires wait in the pool, failing after many rounds. */
void yield_until_waiting(tctx *t, dbp_pool *p, size_t n);

void spawn(tctx *t, dbp_co **co, dbp_co_fn fn, void *arg);

/* Joins coroutines that each return 0. */
void join_all(dbp_co **cos, size_t n);

/* A coroutine that acquires without a time limit and gives the connection
 * back at once; rc is the acquire's result. */
typedef struct cancel_arg {
  tctx *t;
  dbp_pool *p;
  int rc;
} cancel_arg;

int cancel_waiter(void *arg, void **result);

/* ---- the harness ---- */

/* Runs body on a fresh runtime against the server of `kind`, with the
 * monitor connected; name makes PostgreSQL's application_name. */
void run_test(dbp_db_kind kind, const char *name, body_fn body);

#define POOL_TEST(name, secs)                   \
  static void name##_body(tctx *t);             \
  Test(pool_pg, name, .timeout = secs) {        \
    run_test(DBP_DB_PG, #name, name##_body);    \
  }                                             \
  Test(pool_my, name, .timeout = secs) {        \
    run_test(DBP_DB_MYSQL, #name, name##_body); \
  }                                             \
  static void name##_body(tctx *t)

#endif /* DBPIPE_TESTS_POOLTEST_H */
