/* Running a test body inside a coroutine.
 *
 * Bodies that wait must run in a coroutine. Criterion's cr_assert jumps out
 * of the function that fails, which must never happen on a coroutine stack:
 * bodies check with cr_expect (or the CHECK macros of dbcheck.h) and return
 * nonzero on the first failure instead. */
#ifndef DBPIPE_TESTS_RTTEST_H
#define DBPIPE_TESTS_RTTEST_H

#include <stddef.h>

#include "dbpipe/rt.h"

typedef int (*dbt_body_fn)(dbp_rt *rt, void *arg);

/* Runs body(rt, arg) in one coroutine (named "test") of a fresh runtime,
 * runs the loop until everything finished and frees the runtime, asserting
 * each step. Returns the body's code. Call it from the test itself. */
int dbt_run_in_coro(dbt_body_fn body, void *arg);

/* dbt_run_in_coro, asserting that the body returned 0. */
void dbt_run(dbt_body_fn body, void *arg);

/* Runs fn in a child process with its stderr captured into err (NUL
 * terminated, truncated to errlen - 1 bytes); the child exits 0 when fn
 * returns. Returns the child's wait status. For tests of what is
 * process-wide or kills the process (signal handlers, stack overflows). */
int dbt_run_child(void (*fn)(void), char *err, size_t errlen);

#endif /* DBPIPE_TESTS_RTTEST_H */
