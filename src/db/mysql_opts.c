/* What a MySQL/MariaDB DSN asks of the driver: its query parameters checked
 * and collected, the TCP keepalive they describe, and the password sources
 * the mariadb client uses when the DSN gives none.
 *
 * Parameter names follow libpq where libpq has one (sslmode, sslrootcert,
 * keepalives...), with MySQL's own spellings accepted beside them.
 */
#include "db/mysql_opts.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Keepalive defaults: the first probe after a minute of silence, then one
 * every 10 s, the peer declared dead after 6 unanswered ones (two minutes
 * in all); data the peer does not acknowledge for 60 s ends the connection
 * too. A server that vanished without a word (a pulled cable, a dead VM)
 * is noticed in minutes rather than the kernel's two hours. */
#define MY_KA_IDLE 60
#define MY_KA_INTERVAL 10
#define MY_KA_COUNT 6
#define MY_USER_TIMEOUT_MS 60000

/* Every parameter a MySQL DSN may carry, with its spellings (the first of
 * each is its name in messages). This list is the only one: the driver's
 * connect and the offline check (dbp_dsn_check) both read a DSN through
 * dbp__my_opts_parse.
 *
 *   connect_timeout           whole seconds (dbpipe's own connect deadline)
 *   charset, character_set    a character set name (default utf8mb4)
 *   sslmode, ssl-mode, ssl_mode
 *                             disable(d), allow, prefer(red), require(d),
 *                             verify-ca, verify_ca, verify-full,
 *                             verify_identity
 *   sslrootcert, ssl-ca, sslca, sslcert, ssl-cert, sslkey, ssl-key
 *                             file paths
 *   application_name, program_name
 *                             sent as the program_name connection attribute
 *   socket, unix_socket       a Unix socket path, only without a URL host
 *   keepalives (0/1), keepalives_idle, keepalives_interval,
 *   keepalives_count (seconds / probes), tcp_user_timeout (ms)
 *                             TCP settings, as for PostgreSQL
 */
typedef enum my_param {
  P_CONNECT_TIMEOUT,
  P_CHARSET,
  P_SSLMODE,
  P_SSL_CA,
  P_SSL_CERT,
  P_SSL_KEY,
  P_APP_NAME,
  P_SOCKET,
  P_KEEPALIVES,
  P_KEEPALIVES_IDLE,
  P_KEEPALIVES_INTERVAL,
  P_KEEPALIVES_COUNT,
  P_TCP_USER_TIMEOUT,
} my_param;

static const struct {
  const char *key;
  my_param param;
} my_params[] = {
    {"connect_timeout", P_CONNECT_TIMEOUT},
    {"charset", P_CHARSET},
    {"character_set", P_CHARSET},
    {"sslmode", P_SSLMODE},
    {"ssl-mode", P_SSLMODE},
    {"ssl_mode", P_SSLMODE},
    {"sslrootcert", P_SSL_CA},
    {"ssl-ca", P_SSL_CA},
    {"sslca", P_SSL_CA},
    {"sslcert", P_SSL_CERT},
    {"ssl-cert", P_SSL_CERT},
    {"sslkey", P_SSL_KEY},
    {"ssl-key", P_SSL_KEY},
    {"application_name", P_APP_NAME},
    {"program_name", P_APP_NAME},
    {"socket", P_SOCKET},
    {"unix_socket", P_SOCKET},
    {"keepalives", P_KEEPALIVES},
    {"keepalives_idle", P_KEEPALIVES_IDLE},
    {"keepalives_interval", P_KEEPALIVES_INTERVAL},
    {"keepalives_count", P_KEEPALIVES_COUNT},
    {"tcp_user_timeout", P_TCP_USER_TIMEOUT},
};
#define MY_NPARAMS (sizeof my_params / sizeof my_params[0])

/* The parameter spelled k, or -1. */
static int param_of(const char *k) {
  for (size_t i = 0; i < MY_NPARAMS; i++)
    if (strcmp(my_params[i].key, k) == 0) return (int)my_params[i].param;
  return -1;
}

bool dbp__my_param_known(const char *key) {
  return param_of(key) >= 0;
}

bool dbp__my_param_is_socket(const char *key) {
  return param_of(key) == P_SOCKET;
}

const char *dbp__my_param_names(char *buf, size_t len) {
  size_t n = 0;
  if (len > 0) buf[0] = '\0';
  for (size_t i = 0; i < MY_NPARAMS; i++) {
    if (i > 0 && my_params[i].param == my_params[i - 1].param) continue; /* a spelling */
    int w = snprintf(buf + n, len - n, "%s%s", n > 0 ? ", " : "", my_params[i].key);
    if (w < 0 || (size_t)w >= len - n) break;
    n += (size_t)w;
  }
  return buf;
}

/* Parses a whole decimal number in [lo, hi] from v. Returns true when v is
 * one. */
static bool whole(const char *v, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi) return false;
  for (const char *s = v; *s; s++)
    if (*s < '0' || *s > '9') return false; /* no sign, no blanks */
  *out = (int)n;
  return true;
}

/* True when v is a character set name: letters, digits and '_'. */
static bool charset_name(const char *v) {
  if (*v == '\0') return false;
  for (const char *s = v; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return false;
  return true;
}

/* Maps an sslmode value to its mode. Returns false for an unknown one. */
static bool sslmode_of(const char *v, dbp__my_sslmode *m) {
  static const struct {
    const char *name;
    dbp__my_sslmode mode;
  } modes[] = {
      {"disable", DBP__MY_SSL_DISABLE},
      {"disabled", DBP__MY_SSL_DISABLE},
      {"allow", DBP__MY_SSL_PREFER},
      {"prefer", DBP__MY_SSL_PREFER},
      {"preferred", DBP__MY_SSL_PREFER},
      {"require", DBP__MY_SSL_REQUIRE},
      {"required", DBP__MY_SSL_REQUIRE},
      {"verify-ca", DBP__MY_SSL_VERIFY_CA},
      {"verify_ca", DBP__MY_SSL_VERIFY_CA},
      {"verify-full", DBP__MY_SSL_VERIFY_FULL},
      {"verify_identity", DBP__MY_SSL_VERIFY_FULL},
  };
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    if (strcasecmp(v, modes[i].name) == 0) {
      *m = modes[i].mode;
      return true;
    }
  }
  return false;
}

/* Stores the value v of parameter `param` in o. Returns NULL, or what the
 * value should have been. */
static const char *take(dbp__my_opts *o, my_param param, const char *v) {
  int n = 0;
  switch (param) {
    case P_CONNECT_TIMEOUT:
      /* Enforced by dbpipe's own connect deadline (conn.c), as for
       * PostgreSQL; the library's timer would only race it. */
      return whole(v, 0, 86400 * 365, &n) ? NULL : "whole seconds";
    case P_CHARSET:
      o->charset = v;
      return charset_name(v) ? NULL : "a character set name";
    case P_SSLMODE:
      return sslmode_of(v, &o->ssl) ? NULL : "disable, prefer, require, verify-ca or verify-full";
    case P_SSL_CA:
    case P_SSL_CERT:
    case P_SSL_KEY:
    case P_SOCKET:
      if (*v == '\0') return "a path";
      if (param == P_SSL_CA) o->ssl_ca = v;
      if (param == P_SSL_CERT) o->ssl_cert = v;
      if (param == P_SSL_KEY) o->ssl_key = v;
      if (param == P_SOCKET) o->socket = v;
      return NULL;
    case P_APP_NAME:
      o->app_name = v;
      return NULL;
    case P_KEEPALIVES:
      if (!whole(v, 0, 1, &n)) return "0 or 1";
      o->keepalives = n == 1;
      return NULL;
    case P_KEEPALIVES_IDLE:
    case P_KEEPALIVES_INTERVAL:
    case P_KEEPALIVES_COUNT:
      if (!whole(v, 1, 32767, &n)) return "a whole number from 1 to 32767";
      if (param == P_KEEPALIVES_IDLE) o->keepalives_idle = n;
      if (param == P_KEEPALIVES_INTERVAL) o->keepalives_interval = n;
      if (param == P_KEEPALIVES_COUNT) o->keepalives_count = n;
      return NULL;
    case P_TCP_USER_TIMEOUT:
      if (!whole(v, 0, 0x7fffffff, &n)) return "whole milliseconds (0 = the system's)";
      o->tcp_user_timeout = n;
      return NULL;
  }
  return NULL;
}

int dbp__my_opts_parse(const dbp_dsn *d, dbp__my_opts *o, char *msg, size_t mlen) {
  memset(o, 0, sizeof *o);
  o->charset = "utf8mb4";
  o->keepalives = true;
  o->keepalives_idle = MY_KA_IDLE;
  o->keepalives_interval = MY_KA_INTERVAL;
  o->keepalives_count = MY_KA_COUNT;
  o->tcp_user_timeout = MY_USER_TIMEOUT_MS;
  for (size_t i = 0; i < d->nparams; i++) {
    const char *k = d->keys[i], *v = d->values[i];
    int param = param_of(k);
    if (param < 0) {
      char names[300];
      snprintf(msg, mlen,
               "invalid DSN: parameter '%.40s' is not supported for MySQL (supported: %s)", k,
               dbp__my_param_names(names, sizeof names));
      return DBP_EDSN;
    }
    const char *want = take(o, (my_param)param, v);
    if (want != NULL) {
      /* None of these parameters holds a secret, so the value is shown. */
      snprintf(msg, mlen, "invalid DSN: parameter '%s' has the invalid value '%.40s' (expected %s)",
               k, v, want);
      return DBP_EDSN;
    }
  }
  if (o->ssl == DBP__MY_SSL_VERIFY_CA && o->ssl_ca == NULL) {
    snprintf(msg, mlen,
             "invalid DSN: sslmode=verify-ca needs sslrootcert (the CA file to check the "
             "server's certificate against)");
    return DBP_EDSN;
  }
  return 0;
}

int dbp__my_set_keepalive(int fd, const dbp__my_opts *o) {
  int on = o->keepalives ? 1 : 0;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return -errno;
  if (on) {
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &o->keepalives_idle, sizeof(int)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &o->keepalives_interval, sizeof(int)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &o->keepalives_count, sizeof(int)) != 0)
      return -errno;
  }
  if (o->tcp_user_timeout > 0) {
    unsigned ms = (unsigned)o->tcp_user_timeout;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) return -errno;
  }
  return 0;
}

/* Trims blanks at both ends of s in place; returns the new start. */
static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

/* The value part of an option line as the client reads it: a quoted value
 * loses its quotes (backslash escapes the next character inside double
 * quotes), an unquoted one ends at a '#' comment. Works in place. */
static char *option_value(char *v) {
  v = trim(v);
  if (*v == '"' || *v == '\'') {
    char q = *v++, *w = v;
    for (char *r = v; *r && *r != q; r++) {
      if (*r == '\\' && q == '"' && r[1] != '\0') r++;
      *w++ = *r;
    }
    *w = '\0';
    return v;
  }
  char *hash = strchr(v, '#');
  if (hash != NULL) *hash = '\0';
  return trim(v);
}

/* The last password= of the client groups in the option file at path, or
 * NULL. */
static char *my_cnf_password(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IWOTH)) return NULL;
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  char line[1024];
  bool in_client = false;
  char *found = NULL;
  while (fgets(line, sizeof line, f) != NULL) {
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';' || *s == '!') continue;
    if (*s == '[') {
      char *end = strchr(s, ']');
      if (end != NULL) *end = '\0';
      char *g = trim(s + 1);
      in_client = strcasecmp(g, "client") == 0 || strcasecmp(g, "client-mariadb") == 0;
      continue;
    }
    if (!in_client) continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) continue; /* a bare "password" asks for a prompt */
    *eq = '\0';
    if (strcmp(trim(s), "password") != 0) continue;
    char *v = strdup(option_value(eq + 1));
    if (v == NULL) continue;
    if (found != NULL) {
      memset(found, 0, strlen(found));
      free(found);
    }
    found = v;
  }
  memset(line, 0, sizeof line);
  fclose(f);
  return found;
}

char *dbp__my_password_fallback(void) {
  const char *home = getenv("HOME");
  if (home != NULL && home[0] != '\0') {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.my.cnf", home);
    if (n > 0 && (size_t)n < sizeof path) {
      char *pw = my_cnf_password(path);
      if (pw != NULL) return pw;
    }
  }
  const char *env = getenv("MYSQL_PWD");
  return env != NULL ? strdup(env) : NULL;
}
