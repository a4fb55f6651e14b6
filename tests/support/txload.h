/* A write load for the consistency tests: threads, each on a blocking
 * connection of its own, that keep moving amounts between rows, one
 * transaction per move, so that a sum stays constant:
 *   - between two rows of `one` (sum(one) constant), and
 *   - between a row of `a` and a row of `b` (sum(a) + sum(b) constant).
 * Every table is (id int PRIMARY KEY, bal bigint) with ids 1..rows. Rows
 * are updated in a fixed order (table name, then id) so that movers never
 * deadlock; a move the server refuses as retryable (deadlock, lock wait) is
 * rolled back and counted as such. */
#ifndef DBPIPE_TESTS_TXLOAD_H
#define DBPIPE_TESTS_TXLOAD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct txload txload;

typedef struct txload_spec {
  const char *dsn;   /* a fixture DSN (postgresql:// or mysql://) */
  const char *one;   /* qualified names, quoted for the dialect */
  const char *a, *b; /* NULL: no moves between tables */
  int rows_one, rows_ab;
  int threads;
} txload_spec;

/* Starts the movers; fails the test if a connection cannot be made. */
txload *txload_start(const txload_spec *s);

/* Moves committed so far, by all movers. */
long txload_commits(txload *l);

/* Stops and joins the movers, frees l. Returns the moves committed; when
 * a mover stopped on an error it could not retry, that error is in why
 * (else why is ""). */
long txload_stop(txload *l, char *why, size_t len);

#endif /* DBPIPE_TESTS_TXLOAD_H */
