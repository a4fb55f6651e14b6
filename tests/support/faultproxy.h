/* A TCP fault proxy for the integration tests.
 *
 * The proxy listens on 127.0.0.1 on a free port and forwards every
 * connection to one target (a loopback address and port, normally one of the
 * fixture's servers). A test points a DSN at the proxy (dbt_proxy_dsn) and
 * then makes the path misbehave: delay every chunk, stall after some bytes,
 * cut the connection with a reset after some bytes, or refuse connections.
 *
 * Why a thread: the proxy runs its own uv loop in a thread of the test
 * process. Tests of the library run their bodies in a dbp_rt coroutine whose
 * loop is blocked whenever the body waits, and tests of the command line
 * block in waitpid/poll while a child process talks to the server. A proxy
 * on the test's own loop would freeze in both cases; a thread keeps
 * forwarding whatever the test is doing, and the same proxy serves both
 * kinds of test. Every function below is safe to call from any thread (and
 * from inside a coroutine: none of them waits for the network).
 *
 * Modes. A mode applies to the connections accepted after it is set; a
 * connection keeps the mode it was accepted with for its whole life. With
 * `count` > 0 the mode applies to the next `count` accepted connections
 * only, after which the proxy goes back to pass mode by itself (so "cut the
 * first connection, let the retry through" needs no timing in the test);
 * `count` == 0 keeps the mode until the next call.
 *
 *   pass     bytes go through unchanged, both ways.
 *   delay    every chunk read (either way) is written on after `ms`
 *            milliseconds; order is kept, end of stream is delayed too.
 *   stall    after `after` bytes have gone through in direction `dir`, the
 *            proxy stops forwarding and stops reading on both sides of that
 *            connection, and keeps both sockets open (so the peers see
 *            silence, not a close) until the proxy stops.
 *   cut      after `after` bytes have gone from the server to the client,
 *            both sockets are closed abruptly with a reset (SO_LINGER 0):
 *            the client sees ECONNRESET, the server a broken connection.
 *   refuse   DBT_REFUSE_CLOSE accepts each connection and closes it at once
 *            without a byte; DBT_REFUSE_UNLISTEN closes the listening socket
 *            so connects are refused by the kernel (ECONNREFUSED), and
 *            listens again on the same port when another mode is set. With
 *            DBT_REFUSE_UNLISTEN `count` is ignored (nobody is accepted, so
 *            nothing could be counted): switch back explicitly.
 *
 * Bounds. The proxy listens on loopback only and forwards to loopback only
 * (an IPv4 127.0.0.0/8 or IPv6 ::1 literal; no name lookups). It stops by
 * itself after DBT_PROXY_LIFETIME_MS, and dies with the test process:
 * Criterion runs each test in its own process, so a test that fails before
 * dbt_proxy_stop cannot leave a proxy running.
 *
 * Failures to set up (no free port, a target that is not loopback) fail the
 * running test with cr_assert: call dbt_proxy_start from the test itself or
 * its .init, never from a coroutine. */
#ifndef DBPIPE_TESTS_FAULTPROXY_H
#define DBPIPE_TESTS_FAULTPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest a proxy lives before it closes everything by itself. */
#define DBT_PROXY_LIFETIME_MS 600000

typedef struct dbt_proxy dbt_proxy;

/* Directions of a stream through the proxy. */
enum dbt_proxy_dir {
  DBT_C2S = 0, /* client -> server */
  DBT_S2C = 1  /* server -> client */
};

enum dbt_proxy_mode {
  DBT_PROXY_PASS = 0,
  DBT_PROXY_DELAY,
  DBT_PROXY_STALL,
  DBT_PROXY_CUT,
  DBT_PROXY_REFUSE
};

enum dbt_refuse_how {
  DBT_REFUSE_CLOSE = 0,   /* accept, then close at once */
  DBT_REFUSE_UNLISTEN = 1 /* stop listening: the kernel refuses */
};

/* What one accepted connection did (the counters of dbt_proxy_conn). */
typedef struct dbt_proxy_conn_stats {
  uint64_t bytes[2]; /* bytes forwarded, indexed by enum dbt_proxy_dir */
  int mode;          /* enum dbt_proxy_mode it was accepted with */
  bool stalled;      /* a stall mode has stopped it */
  bool cut;          /* a cut mode has reset it */
  bool closed;       /* both sockets are closed */
} dbt_proxy_conn_stats;

/* Starts a proxy in pass mode that forwards to host:port (host must be a
 * loopback IP literal). Asserts on failure. */
dbt_proxy *dbt_proxy_start(const char *host, int port);

/* Starts a proxy to the host and port of `dsn` (a fixture DSN) and returns
 * it; dbt_proxy_dsn then gives the same DSN pointed at the proxy. */
dbt_proxy *dbt_proxy_for_dsn(const char *dsn);

/* The proxy's listening port on 127.0.0.1. */
int dbt_proxy_port(const dbt_proxy *p);

/* For a proxy made by dbt_proxy_for_dsn: the original DSN with host and
 * port replaced by the proxy's (user, password, database and parameters
 * kept). The string lives as long as the proxy. */
const char *dbt_proxy_dsn(const dbt_proxy *p);

/* Mode switches; see the top of this file. */
void dbt_proxy_pass(dbt_proxy *p);
void dbt_proxy_delay(dbt_proxy *p, unsigned ms, unsigned count);
void dbt_proxy_stall(dbt_proxy *p, enum dbt_proxy_dir dir, uint64_t after, unsigned count);
void dbt_proxy_cut(dbt_proxy *p, uint64_t after, unsigned count);
void dbt_proxy_refuse(dbt_proxy *p, enum dbt_refuse_how how, unsigned count);

/* Connections accepted so far (refused-by-close ones included; kernel
 * refusals are not seen by the proxy). */
unsigned dbt_proxy_accepted(const dbt_proxy *p);

/* The counters of the i-th accepted connection (from 0). Returns false
 * when there is no such connection. */
bool dbt_proxy_conn(const dbt_proxy *p, unsigned i, dbt_proxy_conn_stats *out);

/* Bytes forwarded in direction `dir` over every connection so far. */
uint64_t dbt_proxy_total(const dbt_proxy *p, enum dbt_proxy_dir dir);

/* Closes every connection and the listener, stops the thread and frees the
 * proxy. Safe on NULL and after the proxy's lifetime ran out. */
void dbt_proxy_stop(dbt_proxy *p);

#endif /* DBPIPE_TESTS_FAULTPROXY_H */
