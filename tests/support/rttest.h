/* Running a test body inside a coroutine.
 *
 * Bodies that wait must run in a coroutine. Criterion's cr_assert jumps out
 * of the function that fails, which must never happen on a coroutine stack:
 * bodies check with cr_expect (or the CHECK macros of dbcheck.h) and return
 * nonzero on the first failure instead. */
#ifndef DBPIPE_TESTS_RTTEST_H
#define DBPIPE_TESTS_RTTEST_H

#include "dbpipe/rt.h"

typedef int (*dbt_body_fn)(dbp_rt *rt, void *arg);

/* Runs body(rt, arg) in one coroutine (named "test") of a fresh runtime,
 * runs the loop until everything finished and frees the runtime, asserting
 * each step. Returns the body's code. Call it from the test itself. */
int dbt_run_in_coro(dbt_body_fn body, void *arg);

/* dbt_run_in_coro, asserting that the body returned 0. */
void dbt_run(dbt_body_fn body, void *arg);

#endif /* DBPIPE_TESTS_RTTEST_H */
