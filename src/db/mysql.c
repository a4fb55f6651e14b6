/* The MySQL/MariaDB driver, on libmariadb's nonblocking API.
 *
 * MYSQL_OPT_NONBLOCK is set before anything else; every call that talks to
 * the server is a _start/_cont pair driven by my_run (my_drive for the
 * connection's own session), which waits on mysql_get_socket() for what the
 * status asks (read, write, and the library's own timeout from
 * mysql_get_timeout_value_ms). The _start call and its _cont calls store
 * the result in the same place, so a call that finishes inside _start is
 * no different from one that waited.
 *
 * Connections never ask for CLIENT_MULTI_STATEMENTS: a string holding
 * several statements is a syntax error, not a batch. TLS follows the DSN's
 * sslmode (see my_options and my_connect_step: libmariadb 3.3 needs help for
 * require to mean "TLS or nothing" and for verify-full to check the name
 * the user wrote), TCP sessions get keepalive (mysql_opts.c), and the
 * session reset is COM_RESET_CONNECTION (my_reset).
 *
 * Statements without parameters use the text protocol with
 * mysql_use_result: rows stream one at a time with the server's own text
 * for every value. Statements with parameters are server-side prepared
 * statements (real binding, nothing is spliced into the SQL); their results
 * come in the binary protocol and are converted back to text by binding
 * every result column as a string.
 *
 * Prepared statements are kept per connection for reuse (the statement
 * cache below): a statement run again with the same SQL text is only
 * executed, with no prepare and no close, so a bound point query costs one
 * round trip like a text query. A statement goes back to the cache only
 * when it finished cleanly (its result read to the end, nothing pending);
 * on any error, interruption or abandoned result it is closed instead.
 *
 * A call interrupted by a timeout or a cancellation leaves libmariadb in
 * the middle of an operation. The clean-up (my_abort) sends KILL QUERY from
 * a side connection, finishes that operation and drains what follows, so
 * the connection is idle again; if that fails it is closed and broken.
 */
#include <errmsg.h>
#include <fcntl.h>
#include <mysql.h>
/* After mysql.h: the library's I/O layer, for my_nonblocking. */
#include <ma_pvio.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "db/driver.h"
#include "db/mysql_opts.h"

/* How a column's values are turned into dbpipe's form. */
enum { CONV_NONE = 0, CONV_BIT1 = 1 };

/* How many prepared statements a connection keeps for reuse, and the
 * longest SQL text worth keeping (longer statements are prepared and
 * closed every time, as they are rarely repeated verbatim). */
#define MY_STMT_CACHE 16
#define MY_STMT_CACHE_SQL_MAX 8192

/* One kept statement: its SQL text (the key) and handle. */
typedef struct my_cached {
  char *sql; /* malloc'd; NULL = free slot */
  size_t len;
  uint64_t hash;
  MYSQL_STMT *stmt;
  uint64_t used; /* the cache clock at the last use, for LRU */
} my_cached;

typedef struct my_conn my_conn;
/* Continues an interrupted nonblocking call with the events that happened;
 * returns the call's next status (0 = finished). */
typedef int (*my_cont_fn)(my_conn *p, int ev);

struct my_conn {
  dbp_conn base;
  MYSQL *m;
  unsigned long thread_id;

  /* The nonblocking call in progress (op_cont != NULL) and its status. */
  my_cont_fn op_cont;
  int op_status;
  /* Where the calls put their results. */
  int ret_int;
  my_bool ret_bool;
  MYSQL *ret_mysql;
  MYSQL_ROW ret_row;

  bool query_ok;    /* the last mysql_real_query succeeded */
  MYSQL_RES *res;   /* the text-protocol result being streamed */
  MYSQL_STMT *stmt; /* the prepared statement in use */
  my_cached *cur;   /* the cache slot that stmt belongs to, or NULL */
  MYSQL_RES *meta;  /* its result metadata */

  /* Prepared statements kept for reuse; in use while p->cur points at
   * one. Every handle here is owned by the cache. */
  my_cached cache[MY_STMT_CACHE];
  uint64_t clock;

  unsigned char *conv; /* per column: CONV_* */
  MYSQL_BIND *pbind;   /* the parameters of the statement in use */
  /* Result buffers of a prepared statement, one per column. */
  MYSQL_BIND *rbind;
  char **rbuf;
  size_t *rsize; /* bytes allocated at rbuf[i] */
  unsigned long *rlen;
  my_bool *rnull, *rerr;
  size_t rcap; /* columns the arrays above can hold */

  /* What the DSN asks for, and the password to log in with: the DSN's,
   * else the one ~/.my.cnf or MYSQL_PWD gives (malloc'd, wiped on close;
   * side sessions borrow their connection's). */
  dbp__my_opts opts;
  char *password;

  /* The connect in progress on this handle (see my_connect_step). */
  bool greeted;      /* the server's greeting was looked at */
  bool tls_named;    /* the DSN's host name replaced the address in target */
  bool limited;      /* the socket has its limits for the TLS handshake */
  int64_t limit_end; /* ... which end then (mono_ms) */
  const char *why;   /* why a TLS check refused the server */
  char target[256];  /* the host handed to the library */
};

#define MY(c) ((my_conn *)(c))

/* ---- waiting ---- */

/* Waits for what a libmariadb status asks for on socket of m, through ws,
 * until `deadline`. Stores the events for the _cont call in *ev. Returns 0
 * or the wait's error. */
static int my_wait(dbp_conn *c, dbp__watch *ws, int64_t deadline, MYSQL *m, int status, bool check,
                   int *ev) {
  int events = 0;
  if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT)) events |= DBP_READABLE;
  if (status & MYSQL_WAIT_WRITE) events |= DBP_WRITABLE;
  int64_t t = DBP_FOREVER;
  if (status & MYSQL_WAIT_TIMEOUT) t = (int64_t)mysql_get_timeout_value_ms(m);
  *ev = 0;
  if (events == 0) {
    /* Only the library's own timer: sleep it out. */
    int rc = dbp_sleep(c->rt, t >= 0 ? t : 0);
    *ev = MYSQL_WAIT_TIMEOUT;
    return rc;
  }
  int rev = 0;
  int rc = dbp__wait_on(c, ws, deadline, (int)mysql_get_socket(m), events, t, check, &rev);
  if (rc != 0) return rc;
  if (rev == 0) {
    *ev = MYSQL_WAIT_TIMEOUT;
    return 0;
  }
  if (rev & DBP_READABLE) *ev |= status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT);
  if (rev & DBP_WRITABLE) *ev |= status & MYSQL_WAIT_WRITE;
  if (*ev == 0) *ev = status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT);
  return 0;
}

static int my_connect_step(dbp_conn *c, my_conn *q, int ev, int64_t deadline);

/* The one loop under every nonblocking call, on c's own session or on a
 * side session q: given the status its _start returned (which stored any
 * result where `cont` stores it, in q), waits through ws until `deadline`
 * and continues until the call is done. `connecting` marks a connect: the
 * socket is then checked by inode, and the TLS checks of my_connect_step
 * run between the steps. On an interruption the call stays pending in
 * q->op_cont / q->op_status (to be finished by the clean-up) and the wait's
 * code is returned; a failed TLS check returns DBP_ECONNECT. */
static int my_run(dbp_conn *c, my_conn *q, dbp__watch *ws, int64_t deadline, int status,
                  my_cont_fn cont, bool connecting) {
  q->op_status = status;
  q->op_cont = cont;
  while (q->op_status != 0) {
    int ev = 0;
    int rc = my_wait(c, ws, deadline, q->m, q->op_status, connecting, &ev);
    if (rc == 0 && connecting) rc = my_connect_step(c, q, ev, deadline);
    if (rc != 0) return rc;
    q->op_status = cont(q, ev);
  }
  q->op_cont = NULL;
  return 0;
}

/* my_run for c's own session and statement deadline. A socket that
 * vanished marks c broken. */
static int my_drive(dbp_conn *c, int status, my_cont_fn cont, bool connecting) {
  int rc = my_run(c, MY(c), &c->watch, c->deadline, status, cont, connecting);
  if (rc == DBP_ECONNLOST) {
    dbp__seterr(c, rc, NULL, 0, true, "the connection's socket is gone");
    dbp__set_broken(c);
  }
  return rc;
}

static int cont_connect(my_conn *p, int ev) {
  return mysql_real_connect_cont(&p->ret_mysql, p->m, ev);
}
static int cont_query(my_conn *p, int ev) {
  return mysql_real_query_cont(&p->ret_int, p->m, ev);
}
static int cont_fetch(my_conn *p, int ev) {
  return mysql_fetch_row_cont(&p->ret_row, p->res, ev);
}
static int cont_free(my_conn *p, int ev) {
  return mysql_free_result_cont(p->res, ev);
}
static int cont_next(my_conn *p, int ev) {
  return mysql_next_result_cont(&p->ret_int, p->m, ev);
}
static int cont_prepare(my_conn *p, int ev) {
  return mysql_stmt_prepare_cont(&p->ret_int, p->stmt, ev);
}
static int cont_execute(my_conn *p, int ev) {
  return mysql_stmt_execute_cont(&p->ret_int, p->stmt, ev);
}
static int cont_sfetch(my_conn *p, int ev) {
  return mysql_stmt_fetch_cont(&p->ret_int, p->stmt, ev);
}
static int cont_sclose(my_conn *p, int ev) {
  return mysql_stmt_close_cont(&p->ret_bool, p->stmt, ev);
}
static int cont_ping(my_conn *p, int ev) {
  return mysql_ping_cont(&p->ret_int, p->m, ev);
}
static int cont_reset(my_conn *p, int ev) {
  return mysql_reset_connection_cont(&p->ret_int, p->m, ev);
}

/* ---- errors ---- */

static bool lost_errno(unsigned e) {
  return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == ER_CONNECTION_KILLED ||
         e == ER_SERVER_SHUTDOWN || e == CR_SERVER_LOST_EXTENDED || e == ER_NET_READ_ERROR ||
         e == ER_NET_READ_INTERRUPTED || e == ER_NET_ERROR_ON_WRITE || e == 4031;
}

/* The server's "too many connections" errors: for the whole server, for
 * one account (max_user_connections), and an account's hourly limits. */
static bool toomany_errno(unsigned e) {
  return e == ER_CON_COUNT_ERROR || e == ER_TOO_MANY_USER_CONNECTIONS || e == ER_USER_LIMIT_REACHED;
}

static bool retryable_errno(unsigned e) {
  return lost_errno(e) || toomany_errno(e) || e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT;
}

/* The SQLSTATE to report with error e: the server's, or none (NULL) for
 * the library's own errors, whose "HY000" the server never sent. */
static const char *my_state(unsigned e, const char *state) {
  if ((e >= CR_MIN_ERROR && e <= CR_MAX_ERROR) || (e >= CER_MIN_ERROR && e <= CER_MAX_ERROR))
    return NULL;
  return state;
}

/* Records a MySQL error (errno, SQLSTATE, message) and returns its code:
 * DBP_ECONNLOST (connection broken) when the session is gone,
 * DBP_ECANCELED for the interruption of a cancel we asked for,
 * DBP_EQUERY otherwise. */
static int my_err(dbp_conn *c, unsigned e, const char *state, const char *msg) {
  if (e == 0) {
    e = CR_UNKNOWN_ERROR;
    if (msg == NULL || !*msg) msg = "unknown error";
  }
  state = my_state(e, state);
  if (lost_errno(e)) {
    dbp__seterr(c, DBP_ECONNLOST, state, (int)e, true, "connection to the server lost: %s", msg);
    dbp__set_broken(c);
    return DBP_ECONNLOST;
  }
  if (e == ER_QUERY_INTERRUPTED && c->cancel_req)
    return dbp__seterr(c, DBP_ECANCELED, state, (int)e, false, "%s", msg);
  int code = e == CR_COMMANDS_OUT_OF_SYNC ? DBP_EPROTO : DBP_EQUERY;
  return dbp__seterr(c, code, state, (int)e, retryable_errno(e), "%s", msg);
}

static int my_conn_err(dbp_conn *c) {
  MYSQL *m = MY(c)->m;
  return my_err(c, mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
}

static int my_stmt_err(dbp_conn *c) {
  MYSQL_STMT *s = MY(c)->stmt;
  return my_err(c, mysql_stmt_errno(s), mysql_stmt_sqlstate(s), mysql_stmt_error(s));
}

/* ---- options and connect ---- */

/* Applies the connection's options (MY(c)->opts) to a fresh MYSQL handle:
 * nonblocking first, the character set, TLS as sslmode asks, the program
 * name. `tcp` forces TCP (the target is a numeric address). Returns 0, or
 * DBP_EDSN with the reason in msg. */
static int my_options(const dbp_conn *c, MYSQL *m, bool tcp, char *msg, size_t mlen) {
  const dbp__my_opts *o = &((const my_conn *)c)->opts;
  mysql_options(m, MYSQL_OPT_NONBLOCK, 0);
  /* Truncated string results are found by length (see my_stmt_row);
   * reporting them would leave a first row's columns unreadable by
   * mysql_stmt_fetch_column. */
  my_bool no_report = 0;
  mysql_options(m, MYSQL_REPORT_DATA_TRUNCATION, &no_report);
  /* A server must not be able to ask for the client's files. */
  unsigned no_local = 0;
  mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no_local);
  if (tcp) {
    unsigned proto = MYSQL_PROTOCOL_TCP;
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
  }
  if (o->ssl != DBP__MY_SSL_DISABLE) {
    /* "Use TLS": libmariadb 3.3 falls back to plaintext when the server
     * offers none and no certificate check was asked for; that is prefer,
     * and my_connect_step plus my_tls_check refuse it for the stricter
     * modes. A CA file makes the library check the chain during the
     * handshake; VERIFY_SERVER_CERT adds the host name check (verify-full
     * only: it compares the certificate with the host name that
     * my_connect_step hands it). */
    my_bool on = 1, verify = o->ssl == DBP__MY_SSL_VERIFY_FULL;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on);
    mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    if (o->ssl_ca != NULL) mysql_options(m, MYSQL_OPT_SSL_CA, o->ssl_ca);
    if (o->ssl_cert != NULL) mysql_options(m, MYSQL_OPT_SSL_CERT, o->ssl_cert);
    if (o->ssl_key != NULL) mysql_options(m, MYSQL_OPT_SSL_KEY, o->ssl_key);
  }
  if (o->app_name != NULL)
    mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", o->app_name);
  if (mysql_options(m, MYSQL_SET_CHARSET_NAME, o->charset) != 0) {
    snprintf(msg, mlen, "invalid DSN: unknown charset '%.40s'", o->charset);
    return DBP_EDSN;
  }
  return 0;
}

/* Where to connect: a numeric address over TCP, or a Unix socket: the
 * DSN's host when it is a path, or its socket parameter when the host is
 * absent or "localhost" (as the mariadb client does; dbpipe will have
 * resolved "localhost" to an address by then). Returns true for TCP. */
static bool my_target(const dbp_conn *c, const char *addr, const char **host, const char **sock) {
  const dbp_dsn *d = &c->dsn;
  *host = NULL;
  *sock = ((const my_conn *)c)->opts.socket;
  if (*sock != NULL && (d->host == NULL || strcmp(d->host, "localhost") == 0)) {
    *host = "localhost"; /* libmariadb's word for "use the socket" */
    return false;
  }
  if (addr != NULL && addr[0] != '\0') {
    *host = addr;
  } else if (d->host != NULL && d->host[0] == '/') {
    *host = "localhost"; /* libmariadb's word for "use the socket" */
    *sock = d->host;
  } else {
    *host = d->host;
  }
  return addr != NULL && addr[0] != '\0';
}

/* Whether the server's greeting waiting on socket fd offers TLS: 1 yes,
 * 0 no, -1 cannot tell (not all there, or an error packet, which the
 * library reports itself). Reads nothing: the bytes stay for the library.
 * The greeting is: 3 bytes length, sequence 0, protocol 10, the server
 * version up to a NUL, a 4-byte thread id, 8 bytes of scramble, a filler
 * byte, then the low 16 bits of the capability flags. */
static int greeting_offers_tls(int fd) {
  unsigned char b[160];
  ssize_t n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
  if (n < 6 || b[3] != 0 || b[4] != 10) return -1;
  const unsigned char *nul = memchr(b + 5, 0, (size_t)n - 5);
  if (nul == NULL) return -1;
  size_t at = (size_t)(nul - b) + 1 + 4 + 8 + 1;
  if (at + 2 > (size_t)n) return -1;
  unsigned caps = (unsigned)b[at] | (unsigned)b[at + 1] << 8;
  return (caps & CLIENT_SSL) != 0;
}

/* How long the blocking TLS handshake may take when the connect has no
 * deadline of its own. */
#define MY_TLS_HANDSHAKE_MS 30000

/* The monotonic clock in ms. The loop's clock cannot serve here: it stands
 * still while the library holds the loop in a blocking handshake. */
static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets the receive and send timeouts of socket fd to ms (0 = none). They
 * only matter while the library uses the socket blocking. */
static void io_limit(int fd, int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The TLS checks between two steps of a connect on q (c's session or a
 * side one), for sslmode require and stricter. libmariadb 3.3 runs the TLS
 * handshake and the login that follows it without returning to the loop
 * (it switches the socket to blocking for them), so everything must be
 * settled before the greeting is read, while the library still waits for
 * the TCP connect or for the greeting:
 * - a server whose greeting offers no TLS is refused, so no login is sent
 *   in plaintext (the greeting is looked at in place);
 * - for verify-full, the host name the DSN names replaces, in q->target,
 *   the numeric address dbpipe resolved it to. The library has connected
 *   to that address by then and only reads the string again after the
 *   greeting, to keep it as the session's host, which is the name its
 *   certificate check (VERIFY_SERVER_CERT) compares the certificate with.
 *   So the certificate is checked against the name the user wrote while
 *   name resolution stays dbpipe's own, off the loop.
 * For every mode that may use TLS, the socket gets a receive and send
 * limit (the time left until `deadline`, else MY_TLS_HANDSHAKE_MS), so
 * that a server stalling in that blocking handshake cannot hold the loop
 * for ever: the library's blocking read then gives up and the connect
 * fails (the loop was held at most that long).
 * A connect that never paused before the greeting was read is judged
 * after it by my_tls_check. Returns 0 or DBP_ECONNECT with q->why. */
static int my_connect_step(dbp_conn *c, my_conn *q, int ev, int64_t deadline) {
  const dbp__my_opts *o = &MY(c)->opts;
  MYSQL *m = q->m;
  if (o->ssl == DBP__MY_SSL_DISABLE || m->host != NULL) return 0;
  if (!q->limited) {
    q->limited = true;
    int64_t ms = MY_TLS_HANDSHAKE_MS;
    if (deadline >= 0) {
      ms = deadline - (int64_t)dbp_now(c->rt);
      if (ms < 1) ms = 1;
    }
    io_limit((int)mysql_get_socket(m), ms);
    q->limit_end = mono_ms() + ms;
  }
  if (o->ssl < DBP__MY_SSL_REQUIRE) return 0;
  if (o->ssl == DBP__MY_SSL_VERIFY_FULL && !q->tls_named && c->dsn.host != NULL) {
    q->tls_named = true;
    snprintf(q->target, sizeof q->target, "%s", c->dsn.host);
  }
  if (!q->greeted && (ev & MYSQL_WAIT_READ)) {
    q->greeted = true;
    if (greeting_offers_tls((int)mysql_get_socket(m)) == 0) {
      q->why = "the server does not offer TLS";
      return DBP_ECONNECT;
    }
  }
  return 0;
}

/* Why a verify-full connect that never paused is refused; a new try
 * normally pauses, so this one is retryable. */
static const char tls_late[] = "the certificate could not be checked against the host name in time";

/* After a connect on q succeeded: for sslmode require and stricter, the
 * session must be encrypted, and for verify-full the library must have
 * checked the certificate against the DSN's host name (a connect that
 * never paused gave it only the numeric address). Returns 0 or
 * DBP_ECONNECT with q->why. */
static int my_tls_check(const dbp_conn *c, my_conn *q) {
  const dbp__my_opts *o = &((const my_conn *)c)->opts;
  if (o->ssl < DBP__MY_SSL_REQUIRE) return 0;
  if (mysql_get_ssl_cipher(q->m) == NULL) {
    q->why = "the server does not offer TLS";
    return DBP_ECONNECT;
  }
  if (o->ssl == DBP__MY_SSL_VERIFY_FULL &&
      (q->m->host == NULL || c->dsn.host == NULL || strcmp(q->m->host, c->dsn.host) != 0)) {
    q->why = tls_late;
    return DBP_ECONNECT;
  }
  return 0;
}

/* Puts the session's socket back in nonblocking mode. libmariadb 3.3
 * switches it to blocking for the TLS handshake and leaves it so; its
 * nonblocking calls would then read an encrypted session without ever
 * returning to the loop (a long statement would hold the whole loop, and
 * no timeout or cancel could reach it). The library's own I/O layer is
 * asked, so that its idea of the socket's mode stays right. Returns 0 or
 * DBP_ECONNECT. */
static int my_nonblocking(MYSQL *m) {
  MARIADB_PVIO *pvio = m->net.pvio;
  if (pvio != NULL && pvio->methods != NULL && pvio->methods->blocking != NULL)
    pvio->methods->blocking(pvio, 0, NULL);
  int fd = (int)mysql_get_socket(m);
  io_limit(fd, 0);
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fl = fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  return fl >= 0 ? 0 : DBP_ECONNECT;
}

/* Opens a nonblocking session on q->m (options already set) to host or
 * sock, waiting through ws until `deadline`. Returns 0, a wait's error,
 * DBP_ECONNECT from the TLS checks (reason in q->why), or -1 when the
 * server or the library refused (details in mysql_errno(q->m)). */
static int my_open(dbp_conn *c, my_conn *q, dbp__watch *ws, int64_t deadline, const char *host,
                   const char *sock, const char *db) {
  const dbp_dsn *d = &c->dsn;
  q->ret_mysql = NULL;
  q->greeted = q->tls_named = q->limited = false;
  q->why = NULL;
  if (MY(c)->opts.ssl != DBP__MY_SSL_DISABLE) {
    /* The library's own limit, in whole seconds, a little past dbpipe's
     * deadline so that the deadline comes first: it only bounds the wait
     * after a blocking TLS read gave up (see my_connect_step). */
    int64_t ms = MY_TLS_HANDSHAKE_MS;
    if (deadline >= 0) ms = deadline - (int64_t)dbp_now(c->rt);
    unsigned secs = ms > 0 ? (unsigned)(ms / 1000) + 2 : 2;
    mysql_options(q->m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
  }
  /* The library reads the host string again after connecting (see
   * my_connect_step), so it gets a copy in q that outlives the call. */
  if (host != NULL) snprintf(q->target, sizeof q->target, "%s", host);
  /* No CLIENT_MULTI_STATEMENTS: a string of several statements is a syntax
   * error on the server, never a batch that runs more than was asked. */
  int st = mysql_real_connect_start(&q->ret_mysql, q->m, host != NULL ? q->target : NULL, d->user,
                                    MY(c)->password, db, (unsigned)d->port, sock, 0);
  int rc = my_run(c, q, ws, deadline, st, cont_connect, true);
  if (rc != 0) return rc;
  if (q->ret_mysql == NULL) return -1;
  if ((rc = my_tls_check(c, q)) != 0) return rc;
  return my_nonblocking(q->m);
}

/* The libpq name of an sslmode, for messages. */
static const char *sslmode_name(dbp__my_sslmode m) {
  switch (m) {
    case DBP__MY_SSL_PREFER:
      return "prefer";
    case DBP__MY_SSL_REQUIRE:
      return "require";
    case DBP__MY_SSL_VERIFY_CA:
      return "verify-ca";
    case DBP__MY_SSL_VERIFY_FULL:
      return "verify-full";
    default:
      return "disable";
  }
}

/* Sorts a connect failure the library or server reported into a dbpipe
 * code and records it. */
static int my_connect_error(dbp_conn *c, MYSQL *m) {
  unsigned e = mysql_errno(m);
  int code = DBP_ECONNECT;
  bool retry = true;
  if (e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR ||
      e == ER_ACCESS_DENIED_NO_PASSWORD_ERROR) {
    code = DBP_EAUTH;
    retry = false;
  } else if (e == CR_UNKNOWN_HOST) {
    code = DBP_ERESOLVE;
    retry = false;
  } else if (toomany_errno(e)) {
    code = DBP_ETOOMANY;
  } else if (e == ER_BAD_DB_ERROR || e == CR_SSL_CONNECTION_ERROR) {
    /* A missing database or a certificate that does not check out stays
     * so on the next try. */
    retry = false;
  } else if (e == 0) {
    e = CR_UNKNOWN_ERROR;
  }
  const char *msg = mysql_error(m);
  return dbp__seterr(c, code, my_state(e, mysql_sqlstate(m)), (int)e, retry,
                     "could not connect to %s: %s", c->redacted,
                     msg != NULL && msg[0] != '\0' ? msg : "unknown error");
}

static int my_connect(dbp_conn *c, const char *addr) {
  my_conn *p = MY(c);
  char msg[512];
  int rc = dbp__my_opts_parse(&c->dsn, &p->opts, msg, sizeof msg);
  if (rc != 0) return dbp__seterr(c, rc, NULL, 0, false, "%s", msg);
  if (p->password == NULL) {
    p->password = c->dsn.password != NULL ? strdup(c->dsn.password) : dbp__my_password_fallback();
    if (c->dsn.password != NULL && p->password == NULL)
      return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  }
  p->m = mysql_init(NULL);
  if (p->m == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  const char *host, *sock;
  bool tcp = my_target(c, addr, &host, &sock);
  rc = my_options(c, p->m, tcp, msg, sizeof msg);
  if (rc != 0) return dbp__seterr(c, rc, NULL, 0, false, "%s", msg);
  rc = my_open(c, p, &c->watch, c->deadline, host, sock, c->dsn.dbname);
  p->op_cont = NULL;
  if (rc == DBP_ETIMEDOUT)
    return dbp__seterr(c, rc, NULL, 0, true, "timed out connecting to %s", c->redacted);
  if (rc == DBP_ECANCELED)
    return dbp__seterr(c, rc, NULL, 0, false, "canceled while connecting to %s", c->redacted);
  if (rc == DBP_ECONNECT && p->why != NULL)
    return dbp__seterr(c, rc, NULL, 0, p->why == tls_late,
                       "could not connect to %s with sslmode=%s: %s", c->redacted,
                       sslmode_name(p->opts.ssl), p->why);
  if (rc == -1 && p->limited && mono_ms() >= p->limit_end)
    return dbp__seterr(c, DBP_ETIMEDOUT, NULL, 0, true, "timed out connecting to %s: %s",
                       c->redacted, mysql_error(p->m));
  if (rc == -1) return my_connect_error(c, p->m);
  if (rc != 0)
    return dbp__seterr(c, rc == DBP_ECONNLOST ? DBP_ECONNECT : rc, NULL, 0, true,
                       "could not connect to %s: %s", c->redacted, dbp_strerror(rc));
  p->thread_id = mysql_thread_id(p->m);
  if (tcp) {
    int fd = (int)mysql_get_socket(p->m);
    int ka = dbp__my_set_keepalive(fd, &p->opts);
    if (ka != 0)
      return dbp__seterr(c, DBP_ECONNECT, NULL, 0, true,
                         "could not set TCP keepalive on the connection to %s: %s", c->redacted,
                         strerror(-ka));
  }
  return 0;
}

static void my_close(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->res != NULL) {
    /* Freeing an unfinished streamed result would read the rest of it;
     * detach it so only memory is freed. */
    p->res->handle = NULL;
    mysql_free_result(p->res);
    p->res = NULL;
  }
  if (p->meta != NULL) {
    p->meta->handle = NULL;
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  if (p->m != NULL) {
    /* mysql_close sends COM_QUIT (a few bytes that fit any socket buffer)
     * and never waits for an answer. It also detaches every statement of
     * the connection, so closing the statement afterwards only frees it. */
    mysql_close(p->m);
    p->m = NULL;
  }
  if (p->password != NULL) {
    volatile char *s = p->password;
    while (*s) *s++ = '\0';
    free(p->password);
    p->password = NULL;
  }
  /* The session is gone, so every statement handle is detached: closing
   * them only frees memory, with nothing sent. */
  if (p->stmt != NULL && p->cur == NULL) mysql_stmt_close(p->stmt);
  p->stmt = NULL;
  p->cur = NULL;
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql == NULL) continue;
    mysql_stmt_close(e->stmt);
    free(e->sql);
    memset(e, 0, sizeof *e);
  }
  p->op_cont = NULL;
  for (size_t i = 0; i < p->rcap; i++) free(p->rbuf[i]);
  free(p->rbind);
  free(p->rbuf);
  free(p->rlen);
  free(p->rnull);
  free(p->rerr);
  free(p->rsize);
  free(p->conv);
  free(p->pbind);
  p->pbind = NULL;
  p->rsize = NULL;
  p->rbind = NULL;
  p->rbuf = NULL;
  p->rlen = NULL;
  p->rnull = p->rerr = NULL;
  p->conv = NULL;
  p->rcap = 0;
}

/* ---- column metadata ---- */

/* The extended metadata attribute `which` of f ("json", "uuid"...), or an
 * empty string when the server sent none. */
static MARIADB_CONST_STRING field_attr(const MYSQL_FIELD *f, enum mariadb_field_attr_t which) {
  MARIADB_CONST_STRING s = {NULL, 0};
  if (mariadb_field_attr(&s, f, which) != 0 || s.str == NULL) {
    s.str = "";
    s.length = 0;
  }
  return s;
}

/* Maps one field's metadata to a normalized type and a type name; sets
 * *conv for values that need converting. */
static dbp_type my_field_type(const MYSQL_FIELD *f, const char **name, unsigned char *conv) {
  bool binary = f->charsetnr == 63;
  *conv = CONV_NONE;
  MARIADB_CONST_STRING fmt = field_attr(f, MARIADB_FIELD_ATTR_FORMAT_NAME);
  MARIADB_CONST_STRING dtn = field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME);
  if (fmt.length == 4 && strncasecmp(fmt.str, "json", 4) == 0) {
    *name = "JSON";
    return DBP_T_JSON;
  }
  if (dtn.length == 4 && strncasecmp(dtn.str, "uuid", 4) == 0) {
    *name = "UUID";
    return DBP_T_TEXT;
  }
  if (dtn.length == 5 && strncasecmp(dtn.str, "inet6", 5) == 0) {
    *name = "INET6";
    return DBP_T_TEXT;
  }
  if (dtn.length == 5 && strncasecmp(dtn.str, "inet4", 5) == 0) {
    *name = "INET4";
    return DBP_T_TEXT;
  }
  switch (f->type) {
    case MYSQL_TYPE_TINY:
      *name = "TINYINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_SHORT:
      *name = "SMALLINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_INT24:
      *name = "MEDIUMINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_LONG:
      *name = "INT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_LONGLONG:
      *name = "BIGINT";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_YEAR:
      *name = "YEAR";
      return DBP_T_INTEGER;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
      *name = "DECIMAL";
      return DBP_T_NUMERIC;
    case MYSQL_TYPE_FLOAT:
      *name = "FLOAT";
      return DBP_T_FLOAT;
    case MYSQL_TYPE_DOUBLE:
      *name = "DOUBLE";
      return DBP_T_FLOAT;
    case MYSQL_TYPE_BIT:
      *name = "BIT";
      if (f->length == 1) {
        *conv = CONV_BIT1;
        return DBP_T_INTEGER;
      }
      return DBP_T_BYTES;
    case MYSQL_TYPE_JSON:
      *name = "JSON";
      return DBP_T_JSON;
    case MYSQL_TYPE_ENUM:
      *name = "ENUM";
      return DBP_T_TEXT;
    case MYSQL_TYPE_SET:
      *name = "SET";
      return DBP_T_TEXT;
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
      if (f->flags & ENUM_FLAG) {
        *name = "ENUM";
        return DBP_T_TEXT;
      }
      if (f->flags & SET_FLAG) {
        *name = "SET";
        return DBP_T_TEXT;
      }
      if (f->type == MYSQL_TYPE_STRING)
        *name = binary ? "BINARY" : "CHAR";
      else
        *name = binary ? "VARBINARY" : "VARCHAR";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_TINY_BLOB:
      *name = binary ? "TINYBLOB" : "TINYTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_MEDIUM_BLOB:
      *name = binary ? "MEDIUMBLOB" : "MEDIUMTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_LONG_BLOB:
      *name = binary ? "LONGBLOB" : "LONGTEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_BLOB:
      *name = binary ? "BLOB" : "TEXT";
      return binary ? DBP_T_BYTES : DBP_T_TEXT;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
      *name = "DATE";
      return DBP_T_DATE;
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
      *name = "TIME";
      return DBP_T_TIME;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
      *name = "DATETIME";
      return DBP_T_TIMESTAMP;
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
      *name = "TIMESTAMP";
      return DBP_T_TIMESTAMP;
    case MYSQL_TYPE_GEOMETRY:
      *name = "GEOMETRY";
      return DBP_T_OTHER;
    case MYSQL_TYPE_NULL:
      *name = "NULL";
      return DBP_T_OTHER;
    default:
      *name = "UNKNOWN";
      return DBP_T_OTHER;
  }
}

/* Fills c's column metadata from n fields. */
static int my_columns(dbp_conn *c, const MYSQL_FIELD *fields, size_t n) {
  my_conn *p = MY(c);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += fields[i].name_length + 1 + 24;
  int rc = dbp__cols_begin(c, n, bytes);
  if (rc == 0 && n > p->rcap) {
    /* Grow every per-column array together; rcap counts what all hold. */
    unsigned char *cv = realloc(p->conv, n);
    if (cv != NULL) p->conv = cv;
    MYSQL_BIND *b = realloc(p->rbind, n * sizeof *b);
    if (b != NULL) p->rbind = b;
    char **rb = realloc(p->rbuf, n * sizeof *rb);
    if (rb != NULL) {
      p->rbuf = rb;
      for (size_t i = p->rcap; i < n; i++) rb[i] = NULL;
    }
    unsigned long *rl = realloc(p->rlen, n * sizeof *rl);
    if (rl != NULL) p->rlen = rl;
    my_bool *rn = realloc(p->rnull, n * sizeof *rn);
    if (rn != NULL) p->rnull = rn;
    my_bool *re = realloc(p->rerr, n * sizeof *re);
    if (re != NULL) p->rerr = re;
    size_t *rs = realloc(p->rsize, n * sizeof *rs);
    if (rs != NULL) {
      p->rsize = rs;
      for (size_t i = p->rcap; i < n; i++) rs[i] = 0;
    }
    if (cv == NULL || b == NULL || rb == NULL || rl == NULL || rn == NULL || re == NULL ||
        rs == NULL)
      rc = DBP_ENOMEM;
    else
      p->rcap = n;
  }
  if (rc != 0) {
    c->ncols = 0;
    return dbp__seterr(c, rc, NULL, 0, false, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const MYSQL_FIELD *f = &fields[i];
    dbp_column *col = &c->cols[i];
    const char *tname;
    col->name = dbp__cols_str(c, f->name, f->name_length);
    col->type = my_field_type(f, &tname, &p->conv[i]);
    col->db_type = dbp__cols_str(c, tname, strlen(tname));
    col->db_type_id = (uint32_t)f->type;
  }
  return 0;
}

/* Applies the per-column conversions to the row in c's arrays. */
static void my_convert(dbp_conn *c) {
  const unsigned char *conv = MY(c)->conv;
  for (size_t i = 0; i < c->ncols; i++) {
    if (conv[i] == CONV_BIT1 && c->vals[i] != NULL) {
      /* BIT(1) arrives as one raw byte; dbpipe shows it as 0 or 1. */
      bool one = c->lens[i] > 0 && c->vals[i][c->lens[i] - 1] != 0;
      c->vals[i] = one ? "1" : "0";
      c->lens[i] = 1;
    }
  }
}

/* ---- the side connection: KILL ---- */

/* Opens a second session (nonblocking too) to the same server and runs
 * KILL QUERY <id> (or KILL <id> when `whole`) against c's session, within
 * `deadline`. Returns 0 (also when the session is already gone) or an
 * error. Records nothing in c->err: a cancel from another coroutine must
 * not overwrite the owner's error. */
static int my_kill(dbp_conn *c, int64_t deadline, bool whole) {
  my_conn *p = MY(c);
  /* The side session runs its calls through the same loop as c's own,
   * with its own handle, results and pending-call slot. */
  my_conn *k = calloc(1, sizeof *k);
  if (k == NULL) return DBP_ENOMEM;
  k->m = mysql_init(NULL);
  if (k->m == NULL) {
    free(k);
    return DBP_ENOMEM;
  }
  dbp__watch ws = {NULL, -1, 0};
  char msg[256];
  const char *host, *sock;
  bool tcp = my_target(c, c->addr, &host, &sock);
  int rc = my_options(c, k->m, tcp, msg, sizeof msg);
  if (rc == 0) {
    rc = my_open(c, k, &ws, deadline, host, sock, NULL);
    if (rc == -1) rc = DBP_ECONNECT;
  }
  if (rc == 0) {
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %s%lu", whole ? "" : "QUERY ", p->thread_id);
    int st = mysql_real_query_start(&k->ret_int, k->m, sql, strlen(sql));
    rc = my_run(c, k, &ws, deadline, st, cont_query, false);
    /* ER_NO_SUCH_THREAD: the session ended on its own; nothing to stop. */
    if (rc == 0 && k->ret_int != 0 && mysql_errno(k->m) != ER_NO_SUCH_THREAD) rc = DBP_EQUERY;
  }
  dbp__watch_close(&ws);
  mysql_close(k->m);
  free(k);
  return rc;
}

/* ---- the statement cache ---- */

static uint64_t sql_hash(const char *sql, size_t len) {
  uint64_t h = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)sql[i]) * 1099511628211u;
  return h;
}

/* The kept statement for sql[0..len) with hash h, or NULL. */
static my_cached *cache_find(my_conn *p, const char *sql, size_t len, uint64_t h) {
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql != NULL && e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) return e;
  }
  return NULL;
}

/* Empties slot e. Its handle now belongs to whoever took it. */
static void cache_forget(my_cached *e) {
  free(e->sql);
  memset(e, 0, sizeof *e);
}

/* A free slot, or NULL when all are taken (*lru then names the least
 * recently used one). */
static my_cached *cache_slot(my_conn *p, my_cached **lru) {
  my_cached *old = NULL;
  *lru = NULL;
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql == NULL) return e;
    if (old == NULL || e->used < old->used) old = e;
  }
  *lru = old;
  return NULL;
}

/* Makes the freshly prepared statement in use (p->stmt, not yet kept) a
 * kept one under sql[0..len), in slot e. When the text cannot be copied
 * the statement simply stays unkept and is closed after use. */
static void cache_keep(my_conn *p, my_cached *e, const char *sql, size_t len, uint64_t h) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return;
  memcpy(copy, sql, len);
  copy[len] = '\0';
  e->sql = copy;
  e->len = len;
  e->hash = h;
  e->stmt = p->stmt;
  e->used = ++p->clock;
  p->cur = e;
}

/* ---- getting back to idle ---- */

/* Closes the prepared statement in use (which reads any rows still
 * pending) and forgets its metadata; a kept statement leaves the cache.
 * Closing sends COM_STMT_CLOSE, which the server never answers, so this
 * waits only when the socket cannot take a few bytes. Returns 0 or a
 * wait's code (the close then stays pending for the clean-up). */
static int my_stmt_close(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->meta != NULL) {
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  if (p->cur != NULL) {
    cache_forget(p->cur);
    p->cur = NULL;
  }
  if (p->stmt == NULL) return 0;
  int st = mysql_stmt_close_start(&p->ret_bool, p->stmt);
  int rc = my_drive(c, st, cont_sclose, false);
  if (rc != 0) return rc;
  p->stmt = NULL;
  free(p->pbind);
  p->pbind = NULL;
  return 0;
}

/* Ends the use of the statement in use after it finished cleanly: a kept
 * statement whose result was read to the end, with nothing else pending
 * on the session, stays prepared for the next execution; any other is
 * closed (my_stmt_close). Returns 0 or a wait's code. */
static int my_stmt_done(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->cur == NULL || p->m->status != MYSQL_STATUS_READY || mysql_stmt_more_results(p->stmt))
    return my_stmt_close(c);
  if (p->meta != NULL) {
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  p->cur->used = ++p->clock;
  p->cur = NULL;
  p->stmt = NULL;
  free(p->pbind);
  p->pbind = NULL;
  return 0;
}

/* Frees the streamed text result, reading whatever of it is left. */
static int my_res_free(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->res == NULL) return 0;
  int st = mysql_free_result_start(p->res);
  int rc = my_drive(c, st, cont_free, false);
  if (rc != 0) return rc;
  p->res = NULL;
  return 0;
}

/* Reads every remaining result of a multi-statement batch, discarding
 * rows. *affected (may be NULL) gets the affected rows (or rows read) of
 * the last statement. Returns 0, the first statement error, DBP_ECONNLOST,
 * or a wait's code (the call then stays pending). */
static int my_rest(dbp_conn *c, int64_t *affected) {
  my_conn *p = MY(c);
  int rc;
  while (mysql_more_results(p->m)) {
    int st = mysql_next_result_start(&p->ret_int, p->m);
    if ((rc = my_drive(c, st, cont_next, false)) != 0) return rc;
    if (p->ret_int > 0) return my_conn_err(c); /* an error ends the batch */
    if (mysql_field_count(p->m) == 0) {
      if (affected != NULL) *affected = (int64_t)mysql_affected_rows(p->m);
      continue;
    }
    p->res = mysql_use_result(p->m);
    if (p->res == NULL) return my_conn_err(c);
    int64_t rows = 0;
    for (;;) {
      st = mysql_fetch_row_start(&p->ret_row, p->res);
      if ((rc = my_drive(c, st, cont_fetch, false)) != 0) return rc;
      if (p->ret_row == NULL) break;
      rows++;
    }
    unsigned e = mysql_errno(p->m);
    if ((rc = my_res_free(c)) != 0) return rc;
    if (e != 0) return my_conn_err(c);
    if (affected != NULL) *affected = rows;
  }
  return 0;
}

/* Brings the connection back to idle after the pending call finished:
 * closes the statement, frees the result (both read what is left), opens
 * and drops a result the server is about to send, reads the remaining
 * results. Statement errors along the way are expected (a killed query)
 * and ignored; a lost connection or an interruption is returned. */
static int my_drain(dbp_conn *c) {
  my_conn *p = MY(c);
  int rc;
  if ((rc = my_stmt_close(c)) != 0) return rc;
  if ((rc = my_res_free(c)) != 0) return rc;
  if (p->m->status == MYSQL_STATUS_GET_RESULT) {
    p->res = mysql_use_result(p->m);
    if (p->res != NULL && (rc = my_res_free(c)) != 0) return rc;
  }
  rc = my_rest(c, NULL);
  if (c->broken) return DBP_ECONNLOST;
  return dbp__interrupted(rc) ? rc : 0;
}

/* Waits until the server thread of c is idle. The server answers a
 * killed statement a moment before its thread is done with it (the
 * processlist still says "Query"); a ping is only read once that thread is
 * idle, so after it nothing runs. Returns 0, a wait's code, or the ping's
 * error. */
static int my_quiesce(dbp_conn *c) {
  my_conn *p = MY(c);
  int st = mysql_ping_start(&p->ret_int, p->m);
  int rc = my_drive(c, st, cont_ping, false);
  if (rc == 0 && p->ret_int != 0) rc = my_conn_err(c);
  return rc;
}

/* Finishes the pending call, if any. Returns 0 or a wait's code. */
static int my_finish_pending(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->op_cont == NULL) return 0;
  my_cont_fn f = p->op_cont;
  int rc = my_drive(c, p->op_status, f, false);
  if (rc != 0) return rc;
  if (f == cont_sclose) {
    p->stmt = NULL;
    free(p->pbind);
    p->pbind = NULL;
  }
  if (f == cont_free) p->res = NULL;
  return 0;
}

/* Gives up the session: closes it and marks the connection broken. */
static void my_give_up(dbp_conn *c) {
  dbp__set_broken(c);
  dbp__unwatch(c);
  my_close(c);
}

/* The clean-up coroutine's body after an interruption: KILL QUERY from a
 * side connection, finish the interrupted call, drain. On failure the
 * session is closed and the connection marked broken. */
static int my_abort(dbp_conn *c) {
  int rc = MY(c)->m == NULL || c->broken ? DBP_ECONNLOST : my_kill(c, c->deadline, false);
  if (rc == 0) rc = my_finish_pending(c);
  if (rc == 0) rc = my_drain(c);
  if (rc == 0) rc = my_quiesce(c);
  if (rc != 0 || c->broken) {
    my_give_up(c);
    if (rc == 0) rc = DBP_ECONNLOST;
  }
  c->state = DBP__IDLE;
  return rc;
}

/* The clean-up body when nothing needs killing: finish and drain. */
static int my_settle(dbp_conn *c) {
  int rc = my_finish_pending(c);
  if (rc == 0) rc = my_drain(c);
  if (rc != 0 || c->broken) {
    my_give_up(c);
    if (rc == 0) rc = DBP_ECONNLOST;
  }
  c->state = DBP__IDLE;
  return rc;
}

/* Handles a call that stopped with `why`. A timeout or cancellation runs
 * the clean-up (KILL QUERY, drain) before returning; any other error
 * leaves the connection idle (or broken, when lost). */
static int my_stop(dbp_conn *c, int why) {
  if (!dbp__interrupted(why)) {
    /* Lost, or stuck in the middle of a call that cannot be finished: the
     * session is given up. */
    if ((c->broken || MY(c)->op_cont != NULL) && MY(c)->m != NULL) my_give_up(c);
    c->state = DBP__IDLE;
    return why;
  }
  dbp__cleanup(c, my_abort);
  const char *what = why == DBP_ETIMEDOUT ? "timed out" : "canceled";
  if (c->broken) {
    char prev[200];
    snprintf(prev, sizeof prev, "%.199s", c->err.message);
    return dbp__seterr(c, why, NULL, 0, true,
                       "statement %s; the connection could not be recovered and is closed (%s)",
                       what, prev);
  }
  return dbp__seterr(c, why, "70100", ER_QUERY_INTERRUPTED, false,
                     "statement %s and killed on the server", what);
}

/* Ends a statement that failed with `err` (already recorded): drains what
 * is left so the connection is idle. Returns err. */
static int my_fail(dbp_conn *c, int err) {
  if (c->broken) return my_stop(c, err);
  dbp_dberr keep = c->err;
  int rc = my_drain(c);
  if (rc == 0 && keep.db_errno == ER_QUERY_INTERRUPTED) rc = my_quiesce(c);
  if (rc != 0) return my_stop(c, rc);
  c->err = keep;
  c->state = DBP__IDLE;
  return err;
}

/* ---- statements ---- */

/* Runs `sql` in the text protocol up to its first result. Returns 0 (the
 * result, if any, is ready for mysql_use_result) or an error. */
static int my_text_start(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  int st = mysql_real_query_start(&p->ret_int, p->m, sql, strlen(sql));
  int rc = my_drive(c, st, cont_query, false);
  if (rc != 0) return my_stop(c, rc);
  if (p->ret_int != 0) return my_fail(c, my_conn_err(c));
  return 0;
}

/* Prepares `sql` as a server-side statement. */
static int my_prepare(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  p->stmt = mysql_stmt_init(p->m);
  if (p->stmt == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  int st = mysql_stmt_prepare_start(&p->ret_int, p->stmt, sql, strlen(sql));
  int rc = my_drive(c, st, cont_prepare, false);
  if (rc != 0) return my_stop(c, rc);
  if (p->ret_int != 0) return my_fail(c, my_stmt_err(c));
  return 0;
}

/* Makes a prepared statement for sql[0..len) the one in use: the kept
 * one when there is one (*reused set), else a fresh prepare that is kept
 * for next time, making room by closing the least recently used one.
 * Returns 0 or an error (the connection is then idle or broken). */
static int my_stmt_get(dbp_conn *c, const char *sql, size_t len, bool *reused) {
  my_conn *p = MY(c);
  uint64_t h = sql_hash(sql, len);
  my_cached *e = cache_find(p, sql, len, h);
  *reused = e != NULL;
  if (e != NULL) {
    p->stmt = e->stmt;
    p->cur = e;
    e->used = ++p->clock;
    return 0;
  }
  my_cached *lru = NULL;
  e = len <= MY_STMT_CACHE_SQL_MAX ? cache_slot(p, &lru) : NULL;
  if (lru != NULL) {
    /* Evict now rather than later: closing is one unanswered packet, so
     * deferring it would save no round trip, only add state. */
    p->stmt = lru->stmt;
    p->cur = lru;
    int rc = my_stmt_close(c);
    if (rc != 0) return my_stop(c, rc);
    e = lru;
  }
  int rc = my_prepare(c, sql);
  if (rc != 0) return rc;
  if (e != NULL) cache_keep(p, e, sql, len, h);
  return 0;
}

/* True when two extended metadata attributes differ. */
static bool attr_differs(const MYSQL_FIELD *a, const MYSQL_FIELD *b,
                         enum mariadb_field_attr_t which) {
  MARIADB_CONST_STRING x = field_attr(a, which), y = field_attr(b, which);
  return x.length != y.length || memcmp(x.str, y.str, x.length) != 0;
}

/* True when the result metadata of the execution that just ran (in
 * mysql->fields: what the server sent, or a copy of the statement's own)
 * differs from the statement's own metadata. The server sends metadata
 * with an execution when the statement was re-prepared after DDL, and the
 * library then updates the statement's copy only in part (types, not
 * names or extended types), so a difference means the kept statement is
 * outdated. */
static bool meta_changed(const my_conn *p) {
  const MYSQL_STMT *s = p->stmt;
  const MYSQL *m = p->m;
  if (s->field_count == 0 || m->fields == NULL || m->field_count != s->field_count) return false;
  for (unsigned i = 0; i < s->field_count; i++) {
    const MYSQL_FIELD *a = &m->fields[i], *b = &s->fields[i];
    if (a->type != b->type || a->charsetnr != b->charsetnr || a->name_length != b->name_length ||
        memcmp(a->name, b->name, a->name_length) != 0 ||
        attr_differs(a, b, MARIADB_FIELD_ATTR_FORMAT_NAME) ||
        attr_differs(a, b, MARIADB_FIELD_ATTR_DATA_TYPE_NAME))
      return true;
  }
  return false;
}

/* Binds the n text parameters (NULL pointer = SQL NULL) to the statement
 * in use and executes it. Returns 0 (its result is pending); 1 when
 * `reused` and the kept statement turned out outdated by a schema change
 * (ER_NEED_REPREPARE; a column count that changed: CR_NEW_STMT_METADATA;
 * or new result metadata from the server), the statement still in use
 * with any result pending; or an error, the statement then ended and the
 * connection idle or broken. */
static int my_stmt_exec(dbp_conn *c, size_t n, const dbp_param *params, bool reused) {
  my_conn *p = MY(c);
  unsigned long want = mysql_stmt_param_count(p->stmt);
  if (want != n)
    return my_fail(c, dbp__seterr(c, DBP_EINVAL, "07001", 0, false,
                                  "the statement has %lu placeholders but %zu parameters were "
                                  "given",
                                  want, n));
  free(p->pbind);
  p->pbind = calloc(n, sizeof *p->pbind);
  if (p->pbind == NULL)
    return my_fail(c, dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory"));
  for (size_t i = 0; i < n; i++) {
    MYSQL_BIND *b = &p->pbind[i];
    if (params[i].val == NULL) {
      b->buffer_type = MYSQL_TYPE_NULL;
    } else {
      /* A string parameter in the connection's character set; the server
       * converts it to the column's type. The library only reads it. */
      b->buffer_type = MYSQL_TYPE_STRING;
      b->buffer = (void *)params[i].val;
      b->buffer_length = (unsigned long)params[i].len;
    }
  }
  if (mysql_stmt_bind_param(p->stmt, p->pbind)) return my_fail(c, my_stmt_err(c));
  int st = mysql_stmt_execute_start(&p->ret_int, p->stmt);
  int rc = my_drive(c, st, cont_execute, false);
  if (rc != 0) return my_stop(c, rc);
  if (p->ret_int != 0) {
    unsigned e = mysql_stmt_errno(p->stmt);
    if (reused && (e == ER_NEED_REPREPARE || e == CR_NEW_STMT_METADATA)) return 1;
    return my_fail(c, my_stmt_err(c));
  }
  if (reused && meta_changed(p)) return 1;
  return 0;
}

/* Prepares (or reuses), binds and executes. The statement stays in
 * p->stmt with its result pending. A kept statement found outdated is
 * closed and the text prepared afresh, once: the second pass never reuses,
 * as the outdated statement has left the cache. */
static int my_stmt_start(dbp_conn *c, const char *sql, size_t n, const dbp_param *params) {
  size_t len = strlen(sql);
  for (;;) {
    bool reused = false;
    int rc = my_stmt_get(c, sql, len, &reused);
    if (rc != 0) return rc;
    rc = my_stmt_exec(c, n, params, reused);
    if (rc != 1) return rc;
    /* Closing reads whatever result is pending. */
    if ((rc = my_stmt_close(c)) != 0) return my_stop(c, rc);
  }
}

/* Binds every result column of the statement as a string buffer. */
static int my_stmt_bind(dbp_conn *c) {
  my_conn *p = MY(c);
  for (size_t i = 0; i < c->ncols; i++) {
    if (p->rsize[i] == 0) {
      size_t want = 256;
      char *b = malloc(want);
      if (b == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
      free(p->rbuf[i]);
      p->rbuf[i] = b;
      p->rsize[i] = want;
    }
    MYSQL_BIND *b = &p->rbind[i];
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = p->rbuf[i];
    b->buffer_length = (unsigned long)p->rsize[i];
    b->length = &p->rlen[i];
    b->is_null = &p->rnull[i];
    b->error = &p->rerr[i];
  }
  if (mysql_stmt_bind_result(p->stmt, p->rbind)) return my_stmt_err(c);
  return 0;
}

/* Reads the next row of the statement into c's arrays. Returns 1, 0 at
 * the end (statement closed), or an error. */
static int my_stmt_row(dbp_conn *c, dbp_row *row) {
  my_conn *p = MY(c);
  int st = mysql_stmt_fetch_start(&p->ret_int, p->stmt);
  int rc = my_drive(c, st, cont_sfetch, false);
  if (rc != 0) return my_stop(c, rc);
  if (p->ret_int == MYSQL_NO_DATA) {
    rc = my_stmt_done(c);
    if (rc != 0) return my_stop(c, rc);
    c->state = DBP__IDLE;
    return 0;
  }
  if (p->ret_int != 0 && p->ret_int != MYSQL_DATA_TRUNCATED) return my_fail(c, my_stmt_err(c));
  bool rebind = false;
  for (size_t i = 0; i < c->ncols; i++) {
    if (p->rnull[i]) {
      c->vals[i] = NULL;
      c->lens[i] = 0;
      continue;
    }
    size_t len = p->rlen[i];
    if (len > p->rsize[i]) {
      /* The value did not fit: grow the buffer, fetch the column again. */
      char *b = realloc(p->rbuf[i], len + 1);
      if (b == NULL) return my_fail(c, dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory"));
      p->rbuf[i] = b;
      p->rsize[i] = len + 1;
      MYSQL_BIND one;
      unsigned long got = 0;
      my_bool isnull = 0, err = 0;
      memset(&one, 0, sizeof one);
      one.buffer_type = MYSQL_TYPE_STRING;
      one.buffer = b;
      one.buffer_length = (unsigned long)(len + 1);
      one.length = &got;
      one.is_null = &isnull;
      one.error = &err;
      if (mysql_stmt_fetch_column(p->stmt, &one, (unsigned)i, 0)) return my_fail(c, my_stmt_err(c));
      len = got;
      rebind = true;
    }
    c->vals[i] = p->rbuf[i];
    c->lens[i] = len;
  }
  if (rebind && (rc = my_stmt_bind(c)) != 0) return my_fail(c, rc);
  my_convert(c);
  row->ncols = c->ncols;
  row->vals = c->vals;
  row->lens = c->lens;
  return 1;
}

/* Reads the next row of the streamed text result. Returns 1, 0 at the end
 * of the whole statement (remaining results drained), or an error. */
static int my_text_row(dbp_conn *c, dbp_row *row) {
  my_conn *p = MY(c);
  int st = mysql_fetch_row_start(&p->ret_row, p->res);
  int rc = my_drive(c, st, cont_fetch, false);
  if (rc != 0) return my_stop(c, rc);
  MYSQL_ROW r = p->ret_row;
  if (r == NULL) {
    unsigned e = mysql_errno(p->m);
    int err = e != 0 ? my_conn_err(c) : 0;
    if (c->broken) return my_stop(c, err);
    if ((rc = my_res_free(c)) != 0) return my_stop(c, rc);
    if (err == 0 && (rc = my_rest(c, NULL)) != 0)
      return dbp__interrupted(rc) || c->broken ? my_stop(c, rc) : my_fail(c, rc);
    c->state = DBP__IDLE;
    return err;
  }
  unsigned long *lens = mysql_fetch_lengths(p->res);
  for (size_t i = 0; i < c->ncols; i++) {
    c->vals[i] = r[i];
    c->lens[i] = r[i] != NULL ? (size_t)lens[i] : 0;
  }
  my_convert(c);
  row->ncols = c->ncols;
  row->vals = c->vals;
  row->lens = c->lens;
  return 1;
}

static int my_exec(dbp_conn *c, const char *sql, size_t n, const dbp_param *params,
                   int64_t *affected) {
  my_conn *p = MY(c);
  int rc;
  if (n > 0) {
    if ((rc = my_stmt_start(c, sql, n, params)) != 0) return rc;
    *affected = (int64_t)mysql_stmt_affected_rows(p->stmt);
    if (mysql_stmt_field_count(p->stmt) > 0) {
      /* Rows nobody asked for: they are pending, so my_stmt_done closes
       * the statement, which reads them. */
      *affected = 0;
    }
    if ((rc = my_stmt_done(c)) != 0) return my_stop(c, rc);
    c->state = DBP__IDLE;
    return 0;
  }
  if ((rc = my_text_start(c, sql)) != 0) return rc;
  if (mysql_field_count(p->m) == 0) {
    *affected = (int64_t)mysql_affected_rows(p->m);
  } else {
    p->res = mysql_use_result(p->m);
    if (p->res == NULL) return my_fail(c, my_conn_err(c));
    int64_t rows = 0;
    for (;;) {
      int st = mysql_fetch_row_start(&p->ret_row, p->res);
      if ((rc = my_drive(c, st, cont_fetch, false)) != 0) return my_stop(c, rc);
      if (p->ret_row == NULL) break;
      rows++;
    }
    unsigned e = mysql_errno(p->m);
    if ((rc = my_res_free(c)) != 0) return my_stop(c, rc);
    if (e != 0) return my_fail(c, my_conn_err(c));
    *affected = rows;
  }
  rc = my_rest(c, affected);
  if (rc != 0) return dbp__interrupted(rc) || c->broken ? my_stop(c, rc) : my_fail(c, rc);
  c->state = DBP__IDLE;
  return 0;
}

/* The error of a query that was expected to return rows (dbp_query, the
 * export path) but ran as a statement without a result set (UPDATE, SET,
 * DELETE...). The connection is idle. */
static int no_result_set(dbp_conn *c) {
  return dbp__seterr(c, DBP_EQUERY, NULL, 0, false,
                     "the statement returned no result set (dbp_query wants a query that "
                     "returns rows, such as SELECT)");
}

static int my_query(dbp_conn *c, const char *sql, size_t n, const dbp_param *params) {
  my_conn *p = MY(c);
  int rc;
  if (n > 0) {
    if ((rc = my_stmt_start(c, sql, n, params)) != 0) return rc;
    p->meta = mysql_stmt_result_metadata(p->stmt);
    if (p->meta == NULL) {
      if ((rc = my_stmt_done(c)) != 0) return my_stop(c, rc);
      c->state = DBP__IDLE;
      return no_result_set(c);
    }
    rc = my_columns(c, mysql_fetch_fields(p->meta), mysql_num_fields(p->meta));
    if (rc == 0) rc = my_stmt_bind(c);
    if (rc != 0) return my_fail(c, rc);
    c->state = DBP__ROWS;
    return 0;
  }
  if ((rc = my_text_start(c, sql)) != 0) return rc;
  if (mysql_field_count(p->m) == 0) {
    rc = my_rest(c, NULL);
    if (rc != 0) return dbp__interrupted(rc) || c->broken ? my_stop(c, rc) : my_fail(c, rc);
    c->state = DBP__IDLE;
    return no_result_set(c);
  }
  p->res = mysql_use_result(p->m);
  if (p->res == NULL) return my_fail(c, my_conn_err(c));
  rc = my_columns(c, mysql_fetch_fields(p->res), mysql_num_fields(p->res));
  if (rc != 0) return my_fail(c, rc);
  c->state = DBP__ROWS;
  return 0;
}

static int my_fetch(dbp_conn *c, dbp_row *row) {
  return MY(c)->stmt != NULL ? my_stmt_row(c, row) : my_text_row(c, row);
}

/* Abandons the current result. Rows the library already holds are
 * skipped without waiting; if the next one has to come from the server,
 * the statement is killed instead of read to the end. */
static int my_discard(dbp_conn *c) {
  my_conn *p = MY(c);
  bool kill = false;
  /* A fast server refills the socket as quickly as it is read: skip a
   * bounded number of rows, then kill what is left. */
  int budget = 1024;
  if (p->stmt != NULL) {
    for (;;) {
      int st = mysql_stmt_fetch_start(&p->ret_int, p->stmt);
      if (st != 0) {
        p->op_status = st;
        p->op_cont = cont_sfetch;
        kill = true;
        break;
      }
      if (p->ret_int != 0 && p->ret_int != MYSQL_DATA_TRUNCATED) break;
      if (--budget == 0) {
        kill = true;
        break;
      }
    }
  } else if (p->res != NULL) {
    for (;;) {
      int st = mysql_fetch_row_start(&p->ret_row, p->res);
      if (st != 0) {
        p->op_status = st;
        p->op_cont = cont_fetch;
        kill = true;
        break;
      }
      if (p->ret_row == NULL) break;
      if (--budget == 0) {
        kill = true;
        break;
      }
    }
    if (!kill && mysql_more_results(p->m)) kill = true;
  }
  return dbp__abandon(c, kill ? my_abort : my_settle);
}

static int my_describe(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  int rc = my_prepare(c, sql);
  if (rc != 0) return rc;
  p->meta = mysql_stmt_result_metadata(p->stmt);
  if (p->meta != NULL) {
    rc = my_columns(c, mysql_fetch_fields(p->meta), mysql_num_fields(p->meta));
    if (rc != 0) return my_fail(c, rc);
  }
  if ((rc = my_stmt_close(c)) != 0) return my_stop(c, rc);
  c->state = DBP__IDLE;
  return 0;
}

static int my_cancel(dbp_conn *c) {
  if (MY(c)->m == NULL) return 0;
  return my_kill(c, (int64_t)dbp_now(c->rt) + DBP__CLEANUP_MS, false);
}

static bool my_in_transaction(const dbp_conn *c) {
  const my_conn *p = (const my_conn *)c;
  if (p->m == NULL) return false;
  unsigned int status = 0;
  if (mariadb_get_infov(p->m, MARIADB_CONNECTION_SERVER_STATUS, &status)) return false;
  return (status & SERVER_STATUS_IN_TRANS) != 0;
}

static int64_t my_backend_id(const dbp_conn *c) {
  return (int64_t)((const my_conn *)c)->thread_id;
}

/* Returns the idle session to its state right after connect (the
 * driver's reset entry). COM_RESET_CONNECTION drops what earlier users
 * left: user variables, session settings (time_zone, sql_mode...),
 * temporary tables, PREPAREd statements, locks. The server drops the
 * driver's kept statements with them, so those are closed first (one
 * unanswered packet each) and prepared again when next used. The session's
 * character set, the only setting the driver makes at connect, is set
 * again. On failure the session is given up and c is broken. */
static int my_reset(dbp_conn *c) {
  my_conn *p = MY(c);
  int rc = 0;
  for (size_t i = 0; i < MY_STMT_CACHE && rc == 0; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql == NULL) continue;
    p->stmt = e->stmt;
    p->cur = e;
    rc = my_stmt_close(c);
  }
  if (rc == 0) {
    int st = mysql_reset_connection_start(&p->ret_int, p->m);
    rc = my_drive(c, st, cont_reset, false);
    if (rc == 0 && p->ret_int != 0) rc = my_conn_err(c);
  }
  if (rc == 0) {
    /* The DSN's character set, not the library's idea of the current
     * one, which follows a user's SET NAMES. The connect accepted the
     * name, so it is one of the server's (letters, digits, '_'). */
    char sql[96];
    const char *cs = p->opts.charset;
    if (strspn(cs, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(cs))
      cs = "utf8mb4";
    snprintf(sql, sizeof sql, "SET NAMES %.64s", cs);
    int st = mysql_real_query_start(&p->ret_int, p->m, sql, strlen(sql));
    rc = my_drive(c, st, cont_query, false);
    if (rc == 0 && p->ret_int != 0) rc = my_conn_err(c);
  }
  if (rc == 0) return 0;
  if (dbp__interrupted(rc)) {
    const char *what = rc == DBP_ETIMEDOUT ? "timed out" : "canceled";
    dbp__seterr(c, rc, NULL, 0, true, "session reset %s; the connection is closed", what);
  } else {
    char prev[300];
    snprintf(prev, sizeof prev, "%.299s", c->err.message);
    int e = c->err.db_errno;
    char state[6];
    memcpy(state, c->err.sqlstate, sizeof state);
    dbp__seterr(c, rc, state[0] ? state : NULL, e, true,
                "session reset failed; the connection is closed: %s", prev);
  }
  if (p->m != NULL) my_give_up(c);
  c->state = DBP__IDLE;
  return rc;
}

static int my_sockfd(const dbp_conn *c) {
  const my_conn *p = (const my_conn *)c;
  return p->m != NULL ? (int)mysql_get_socket(p->m) : -1;
}

const dbp__driver dbp__mysql_driver = {
    .conn_size = sizeof(my_conn),
    .connect = my_connect,
    .close = my_close,
    .exec = my_exec,
    .query = my_query,
    .fetch = my_fetch,
    .discard = my_discard,
    .describe = my_describe,
    .copy_start = NULL,
    .copy_read = NULL,
    .cancel = my_cancel,
    .in_transaction = my_in_transaction,
    .backend_id = my_backend_id,
    .reset = my_reset,
    .socket = my_sockfd,
};
