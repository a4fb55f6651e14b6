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

static bool key_is(const char *k, const char *a, const char *b, const char *d) {
  return strcmp(k, a) == 0 || (b && strcmp(k, b) == 0) || (d && strcmp(k, d) == 0);
}

/* Parses a whole decimal number in [lo, hi] from v. Returns true when v is
 * one. */
static bool whole(const char *v, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi) return false;
  *out = (int)n;
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
    int n = 0;
    if (strcmp(k, "connect_timeout") == 0) {
      /* Enforced by dbpipe's own connect deadline (conn.c), as for
       * PostgreSQL; the library's timer would only race it. */
      if (!whole(v, 0, 86400 * 365, &n)) {
        snprintf(msg, mlen, "invalid DSN: connect_timeout must be whole seconds");
        return DBP_EDSN;
      }
    } else if (key_is(k, "charset", "character_set", NULL)) {
      o->charset = v;
    } else if (key_is(k, "sslmode", "ssl-mode", "ssl_mode")) {
      if (!sslmode_of(v, &o->ssl)) {
        snprintf(msg, mlen,
                 "invalid DSN: sslmode '%.40s' (expected disable, prefer, require, verify-ca or "
                 "verify-full)",
                 v);
        return DBP_EDSN;
      }
    } else if (key_is(k, "sslrootcert", "ssl-ca", "sslca")) {
      o->ssl_ca = v;
    } else if (key_is(k, "sslcert", "ssl-cert", NULL)) {
      o->ssl_cert = v;
    } else if (key_is(k, "sslkey", "ssl-key", NULL)) {
      o->ssl_key = v;
    } else if (key_is(k, "application_name", "program_name", NULL)) {
      o->app_name = v;
    } else if (key_is(k, "socket", "unix_socket", NULL)) {
      o->socket = v;
    } else if (strcmp(k, "keepalives") == 0) {
      if (!whole(v, 0, 1, &n)) {
        snprintf(msg, mlen, "invalid DSN: keepalives must be 0 or 1");
        return DBP_EDSN;
      }
      o->keepalives = n == 1;
    } else if (strcmp(k, "keepalives_idle") == 0 || strcmp(k, "keepalives_interval") == 0 ||
               strcmp(k, "keepalives_count") == 0) {
      if (!whole(v, 1, 32767, &n)) {
        snprintf(msg, mlen, "invalid DSN: %s must be a whole number from 1 to 32767", k);
        return DBP_EDSN;
      }
      if (strcmp(k, "keepalives_idle") == 0)
        o->keepalives_idle = n;
      else if (strcmp(k, "keepalives_interval") == 0)
        o->keepalives_interval = n;
      else
        o->keepalives_count = n;
    } else if (strcmp(k, "tcp_user_timeout") == 0) {
      if (!whole(v, 0, 0x7fffffff, &n)) {
        snprintf(msg, mlen,
                 "invalid DSN: tcp_user_timeout must be whole milliseconds (0 = the system's)");
        return DBP_EDSN;
      }
      o->tcp_user_timeout = n;
    } else {
      snprintf(msg, mlen,
               "invalid DSN: parameter '%.40s' is not supported for MySQL (supported: "
               "connect_timeout, charset, sslmode, sslrootcert, sslcert, sslkey, "
               "application_name, socket, keepalives, keepalives_idle, keepalives_interval, "
               "keepalives_count, tcp_user_timeout)",
               k);
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
