/* Helpers of the connect-fault tests (tests/db/test_db_faults.c,
 * tests/unit/test_connect_faults.c). */
#ifndef DBPIPE_TESTS_FAULTTEST_H
#define DBPIPE_TESTS_FAULTTEST_H

#include <stddef.h>
#include <stdint.h>

#include "dbpipe.h"

/* Rebuilds `base`, a DSN of `kind` (DBT_PG / DBT_MY), with another host,
 * port or password: scheme://user:PASSWORD@HOST:PORT/db. NULL or 0 keeps
 * the part. */
void fault_dsn_variant(const char *base, char *buf, size_t len, int kind, const char *password,
                       const char *host, int port);
/* A loopback port nobody listens on: bound, then closed again. */
int fault_free_port(void);
/* A peer that takes connections (the kernel completes the handshake) but
 * never says a word. Returns the listening fd; *port gets its port. */
int fault_stalled_peer(int *port);

/* A connect that must fail with `want`, within a second, with a message
 * that says `must_say` and never `never_say`. */
typedef struct fault_open_case {
  int kind;
  char dsn[600];
  int64_t timeout_ms;
  int want;
  const char *must_say;  /* the message must contain this */
  const char *never_say; /* ... and never this (a password) */
} fault_open_case;

/* Runs the connect of `oc` in a coroutine of a new runtime and checks it. */
void fault_open_fails(fault_open_case *oc);

#endif /* DBPIPE_TESTS_FAULTTEST_H */
