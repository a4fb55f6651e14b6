/* Connecting to MySQL/MariaDB: the session's options, where to connect,
 * the TLS checks libmariadb 3.3 needs help with, sorting a failed connect,
 * and the side session that sends KILL.
 *
 * Connections never ask for CLIENT_MULTI_STATEMENTS: a string holding
 * several statements is a syntax error, not a batch. TLS follows the DSN's
 * sslmode (see my_options and dbp__my_connect_step: libmariadb 3.3 needs
 * help for require to mean "TLS or nothing" and for verify-full to check
 * the name the user wrote), and TCP sessions get keepalive (mysql_opts.c).
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
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "db/mysql_conn.h"

/* ---- errors ---- */

bool dbp__my_toomany_errno(unsigned e) {
  return e == ER_CON_COUNT_ERROR || e == ER_TOO_MANY_USER_CONNECTIONS || e == ER_USER_LIMIT_REACHED;
}

const char *dbp__my_state(unsigned e, const char *state) {
  if ((e >= CR_MIN_ERROR && e <= CR_MAX_ERROR) || (e >= CER_MIN_ERROR && e <= CER_MAX_ERROR))
    return NULL;
  return state;
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
     * and dbp__my_connect_step plus my_tls_check refuse it for the stricter
     * modes. A CA file makes the library check the chain during the
     * handshake; VERIFY_SERVER_CERT adds the host name check (verify-full
     * only: it compares the certificate with the host name that
     * dbp__my_connect_step hands it). */
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
int dbp__my_connect_step(dbp_conn *c, my_conn *q, int ev, int64_t deadline) {
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
     * after a blocking TLS read gave up (see dbp__my_connect_step). */
    int64_t ms = MY_TLS_HANDSHAKE_MS;
    if (deadline >= 0) ms = deadline - (int64_t)dbp_now(c->rt);
    unsigned secs = ms > 0 ? (unsigned)(ms / 1000) + 2 : 2;
    mysql_options(q->m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
  }
  /* The library reads the host string again after connecting (see
   * dbp__my_connect_step), so it gets a copy in q that outlives the call. */
  if (host != NULL) snprintf(q->target, sizeof q->target, "%s", host);
  /* No CLIENT_MULTI_STATEMENTS: a string of several statements is a syntax
   * error on the server, never a batch that runs more than was asked. */
  q->arg.host = host != NULL ? q->target : NULL;
  q->arg.user = d->user;
  q->arg.db = db;
  q->arg.port = (unsigned)d->port;
  q->arg.sock = sock;
  int rc = dbp__my_run(c, q, ws, deadline, &dbp__my_connect_op, true);
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
  } else if (dbp__my_toomany_errno(e)) {
    code = DBP_ETOOMANY;
  } else if (e == ER_BAD_DB_ERROR || e == CR_SSL_CONNECTION_ERROR) {
    /* A missing database or a certificate that does not check out stays
     * so on the next try. */
    retry = false;
  } else if (e == 0) {
    e = CR_UNKNOWN_ERROR;
  }
  const char *msg = mysql_error(m);
  return dbp__err_connect(c, code, dbp__my_state(e, mysql_sqlstate(m)), (int)e, retry,
                          msg != NULL && msg[0] != '\0' ? msg : "unknown error");
}

int dbp__my_connect(dbp_conn *c, const char *addr) {
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
  p->op = NULL;
  if (dbp__interrupted(rc)) return dbp__err_connect_stopped(c, rc, NULL);
  if (rc == DBP_ECONNECT && p->why != NULL)
    return dbp__seterr(c, rc, NULL, 0, p->why == tls_late,
                       "could not connect to %s with sslmode=%s: %s", c->redacted,
                       sslmode_name(p->opts.ssl), p->why);
  if (rc == -1 && p->limited && mono_ms() >= p->limit_end)
    return dbp__err_connect_stopped(c, DBP_ETIMEDOUT, mysql_error(p->m));
  if (rc == -1) return my_connect_error(c, p->m);
  if (rc != 0)
    return dbp__err_connect(c, rc == DBP_ECONNLOST ? DBP_ECONNECT : rc, NULL, 0, true,
                            dbp_strerror(rc));
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

/* ---- the side connection: KILL ---- */

/* Opens a second session (nonblocking too) to the same server and runs
 * KILL QUERY <id> (or KILL <id> when `whole`) against c's session, within
 * `deadline`. Returns 0 (also when the session is already gone) or an
 * error. Records nothing in c->err: a cancel from another coroutine must
 * not overwrite the owner's error. */
int dbp__my_kill(dbp_conn *c, int64_t deadline, bool whole) {
  my_conn *p = MY(c);
  /* The side session runs its calls through the same loop as c's own,
   * with its own handle, results and pending-call slot. */
  my_conn *k = calloc(1, sizeof *k);
  if (k == NULL) return DBP_ENOMEM;
  k->password = p->password; /* borrowed: k is freed without my_close */
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
    k->arg.sql = sql;
    k->arg.len = strlen(sql);
    rc = dbp__my_run(c, k, &ws, deadline, &dbp__my_query_op, false);
    /* ER_NO_SUCH_THREAD: the session ended on its own; nothing to stop. */
    if (rc == 0 && k->ret_int != 0 && mysql_errno(k->m) != ER_NO_SUCH_THREAD) rc = DBP_EQUERY;
  }
  dbp__watch_close(&ws);
  mysql_close(k->m);
  free(k);
  return rc;
}
