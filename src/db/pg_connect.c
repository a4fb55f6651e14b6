/* Connecting to PostgreSQL: PQconnectStartParams with the DSN's parts, a
 * resolved numeric address and dbpipe's TCP defaults, polled to the end on
 * the connection's socket, and a failure sorted into a dbpipe code with the
 * server's SQLSTATE.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg_conn.h"

/* True when s[0..5) looks like a SQLSTATE: five digits or capitals. */
static bool is_sqlstate(const char *s) {
  for (int i = 0; i < 5; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z'))) return false;
  return true;
}

/* Takes the server's SQLSTATE out of a connect failure's message. The
 * connect runs with verbose errors (see dbp__pg_connect), so a server's
 * ErrorResponse reads "... failed: FATAL:  28P01: password authentication
 * failed ..." followed by a LOCATION line. The code goes to `state` ("" when
 * the server sent none: refused, unreachable, a client-side check), and
 * `msg` keeps the plain message without the code and the LOCATION lines. */
static void pg_split_state(char *msg, char state[6]) {
  state[0] = '\0';
  static const char *const sevs[] = {"FATAL:  ", "ERROR:  ", "PANIC:  "};
  for (size_t i = 0; i < sizeof sevs / sizeof sevs[0] && state[0] == '\0'; i++) {
    for (char *h = strstr(msg, sevs[i]); h != NULL; h = strstr(h + 1, sevs[i])) {
      char *code = h + strlen(sevs[i]);
      if (strlen(code) >= 7 && is_sqlstate(code) && code[5] == ':' && code[6] == ' ') {
        memcpy(state, code, 5);
        state[5] = '\0';
        memmove(code, code + 7, strlen(code + 7) + 1);
        break;
      }
    }
  }
  for (char *l = strstr(msg, "\nLOCATION:"); l != NULL; l = strstr(msg, "\nLOCATION:")) {
    char *e = strchr(l + 1, '\n');
    if (e == NULL)
      *l = '\0';
    else
      memmove(l, e, strlen(e) + 1);
  }
}

/* Sorts a libpq connect failure into a dbpipe code, SQLSTATE and
 * retryability, and records it. The SQLSTATE is the server's own, or
 * empty: none is made up for failures the server never reported. A retry
 * can help when the server could not be reached or went away, is starting
 * up or shutting down, or has no connection to spare; it cannot when the
 * credentials, the database name or a parameter are wrong. */
static int pg_connect_error(dbp_conn *c) {
  char raw[1024], msg[400], state[6];
  snprintf(raw, sizeof raw, "%s", PQerrorMessage(PG(c)->pg));
  pg_split_state(raw, state);
  dbp__one_line(msg, sizeof msg, raw);
  int code = DBP_ECONNECT;
  bool retry = true;
  if (state[0] != '\0') {
    if (strcmp(state, "28P01") == 0 || strcmp(state, "28000") == 0) {
      code = DBP_EAUTH;
      retry = false;
    } else if (strcmp(state, "53300") == 0) {
      code = DBP_ETOOMANY;
    } else if (strcmp(state, "57P03") == 0 || strncmp(state, "08", 2) == 0 ||
               strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
               strcmp(state, "53000") == 0 || strcmp(state, "53200") == 0) {
      retry = true;
    } else {
      /* 3D000 (no such database), 42704 (a bad option in `options`),
       * and the like: the same request fails the same way again. */
      retry = false;
    }
  } else if (strstr(msg, "no password supplied") || strstr(msg, "password is required")) {
    code = DBP_EAUTH; /* libpq's own check: the server asked, we had none */
    retry = false;
  } else if (strstr(msg, "SSL") != NULL || strstr(msg, "certificate") != NULL) {
    /* A server without TLS under sslmode=require, a certificate that does
     * not verify or names another host: a retry meets the same server. */
    retry = false;
  } else if (strstr(msg, "invalid connection option") || strstr(msg, "invalid sslmode") ||
             strstr(msg, "invalid value for parameter") || strstr(msg, "invalid integer value") ||
             strstr(msg, "invalid port number") || strstr(msg, "invalid ") == msg) {
    code = DBP_EDSN;
    retry = false;
  }
  return dbp__err_connect(c, code, state, 0, retry, msg);
}

const char *const dbp__pg_tcp_defaults[DBP__PG_TCP_DEFAULTS][2] = {
    {"keepalives", "1"},       {"keepalives_idle", "60"},     {"keepalives_interval", "10"},
    {"keepalives_count", "6"}, {"tcp_user_timeout", "60000"},
};

static void pg_ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* The driver's connect: re-reads the socket after every step of
 * PQconnectPoll (libpq may open a new one per attempt). */
int dbp__pg_connect(dbp_conn *c, const char *addr) {
  pg_conn *p = PG(c);
  const dbp_dsn *d = &c->dsn;
  size_t max = 8 + d->nparams + DBP__PG_TCP_DEFAULTS;
  const char **keys = calloc(max + 1, sizeof *keys);
  const char **vals = calloc(max + 1, sizeof *vals);
  char port[12];
  int rc = 0;
  if (keys == NULL || vals == NULL) {
    rc = dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
    goto done;
  }
  size_t n = 0;
#define KV(k, v)   \
  do {             \
    keys[n] = (k); \
    vals[n] = (v); \
    n++;           \
  } while (0)
  KV("client_encoding", "UTF8");
  if (d->host != NULL) KV("host", d->host);
  if (addr[0] != '\0') KV("hostaddr", addr);
  if (d->port > 0) {
    snprintf(port, sizeof port, "%d", d->port);
    KV("port", port);
  }
  if (d->dbname != NULL) KV("dbname", d->dbname);
  if (d->user != NULL) KV("user", d->user);
  if (d->password != NULL) KV("password", d->password);
  for (size_t i = 0; i < d->nparams; i++) KV(d->keys[i], d->values[i]);
  /* TCP keepalives and a user timeout unless the DSN chose otherwise: a
   * peer that vanishes without a word (a dead host, a dropped route) is
   * noticed within minutes, not hours. libpq 15 applies the same settings
   * to PQcancel's own socket, which bounds a cancel request on the thread
   * pool as well. */
  for (size_t i = 0; i < DBP__PG_TCP_DEFAULTS; i++)
    if (dbp__dsn_param(d, dbp__pg_tcp_defaults[i][0]) == NULL)
      KV(dbp__pg_tcp_defaults[i][0], dbp__pg_tcp_defaults[i][1]);
#undef KV
  p->pg = PQconnectStartParams(keys, vals, 0);
  if (p->pg == NULL) {
    rc = dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
    goto done;
  }
  /* Verbose errors carry the server's SQLSTATE in the message, the only
   * place libpq keeps it for a failed connect (see pg_split_state). */
  PQsetErrorVerbosity(p->pg, PQERRORS_VERBOSE);
  if (PQstatus(p->pg) == CONNECTION_BAD) {
    rc = pg_connect_error(c);
    goto done;
  }
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) {
      rc = pg_connect_error(c);
      goto done;
    }
    int ev = 0;
    int want = st == PGRES_POLLING_READING ? DBP_READABLE : DBP_WRITABLE;
    rc = dbp__wait(c, PQsocket(p->pg), want, DBP_FOREVER, true, &ev);
    if (dbp__interrupted(rc)) rc = dbp__err_connect_stopped(c, rc, NULL);
    if (rc != 0) goto done;
    st = PQconnectPoll(p->pg);
  }
  /* Notices (NOTICE, WARNING) are no errors; libpq would print them. */
  PQsetNoticeProcessor(p->pg, pg_ignore_notice, NULL);
  PQsetErrorVerbosity(p->pg, PQERRORS_DEFAULT);
  if (PQsetnonblocking(p->pg, 1) != 0) {
    rc = pg_connect_error(c);
    goto done;
  }
done:
  free(keys);
  free(vals);
  return rc;
}
