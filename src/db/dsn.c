/* DSN URLs: parsing, redaction, the offline check and the helpers that
 * keep passwords out of every message.
 *
 *   scheme://[user[:password]@][host][:port][/dbname][?key=value&...]
 *
 * The host may be a bracketed IPv6 literal ("[::1]") or, percent-encoded, a
 * Unix socket directory ("%2Fvar%2Frun%2Fpostgresql"), as libpq accepts.
 *
 * Where the user information ends is decided once (userinfo_end) and
 * shared by the parser and the redaction, so that a password with an
 * unencoded '/', '?' or '@' (a common slip) is hidden in every message even
 * though the URL is refused.
 *
 * Query parameters may supply a part the URL leaves out (host, hostaddr,
 * port, user, password, dbname; for MySQL also socket / unix_socket, which
 * stand for the host), never replace one it gives: "postgresql://h/db?
 * host=other" is refused, since a connection to somewhere the URL does not
 * show is a trap, and "postgresql:///db?host=/run/postgresql" is the way
 * to name a socket directory. Each of those parts may be given once. One
 * exception: MySQL's "localhost" means the local Unix socket, so
 * "mysql://u@localhost/db?socket=/run/mysqld/mysqld.sock" names that socket.
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"
#include "db/mysql_opts.h"

static const struct {
  const char *scheme;
  dbp_db_kind kind;
} dsn_schemes[] = {
    {"postgresql", DBP_DB_PG},
    {"postgres", DBP_DB_PG},
    {"mysql", DBP_DB_MYSQL},
    {"mariadb", DBP_DB_MYSQL},
};

static void dsn_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dsn_errf(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf == NULL || errlen == 0) return;
  int n = snprintf(errbuf, errlen, "invalid DSN: ");
  if (n < 0 || (size_t)n >= errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new NUL-terminated string in *out.
 * Returns 0, DBP_ENOMEM, or DBP_EDSN for a malformed escape or an encoded
 * NUL byte (which a C string cannot carry). */
static int pct_decode(const char *s, size_t n, char **out) {
  char *d = malloc(n + 1);
  if (d == NULL) return DBP_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      d[j++] = s[i];
      continue;
    }
    if (i + 2 >= n) {
      free(d);
      return DBP_EDSN;
    }
    int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
    if (h < 0 || l < 0 || (h == 0 && l == 0)) {
      free(d);
      return DBP_EDSN;
    }
    d[j++] = (char)(h * 16 + l);
    i += 2;
  }
  d[j] = '\0';
  *out = d;
  return 0;
}

void dbp_dsn_free(dbp_dsn *d) {
  if (d == NULL) return;
  free(d->user);
  if (d->password != NULL) {
    /* Do not leave the secret lying around in freed memory. */
    volatile char *p = d->password;
    while (*p) *p++ = '\0';
    free(d->password);
  }
  free(d->host);
  free(d->dbname);
  for (size_t i = 0; i < d->nparams; i++) {
    free(d->keys[i]);
    free(d->values[i]);
  }
  free(d->keys);
  free(d->values);
  memset(d, 0, sizeof *d);
}

/* True when q (a query string, up to its end) is a list of key=value
 * pairs with plain keys: what a real query string looks like, as opposed
 * to the tail of a password that happened to contain a '?'. */
static bool query_looks_real(const char *q) {
  while (*q) {
    size_t n = strcspn(q, "&");
    if (n > 0) {
      size_t k = 0;
      while (k < n && (isalnum((unsigned char)q[k]) || q[k] == '_' || q[k] == '-' || q[k] == '.' ||
                       q[k] == '%'))
        k++;
      if (k == 0 || k >= n || q[k] != '=') return false;
    }
    q += n;
    if (*q == '&') q++;
  }
  return true;
}

/* Finds the '@' that ends the user information of the URL text p (just
 * after "scheme://"), or NULL when there is none. It is the last '@'
 * before the query string; when the '?' may itself belong to the password
 * (no '@' before it, or what follows is no list of key=value pairs) it is
 * the last '@' of all. A wrong guess can only hide too much, never show a
 * part of the password. */
static const char *userinfo_end(const char *p) {
  const char *q = strchr(p, '?');
  const char *before = NULL, *last = NULL;
  for (const char *s = p; *s; s++) {
    if (*s != '@') continue;
    last = s;
    if (q == NULL || s < q) before = s;
  }
  if (q != NULL && before != NULL && query_looks_real(q + 1)) return before;
  return last;
}

/* Parses "1".."65535" from s[0..n). Returns the port or -1. */
static int parse_port(const char *s, size_t n) {
  if (n == 0 || n > 5) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/* Stores a decoded field, replacing an earlier value. */
static void set_field(char **field, char *val) {
  free(*field);
  *field = val;
}

/* Appends key=value (both owned, taken over) to d's parameters. */
static int add_param(dbp_dsn *d, char *key, char *val) {
  char **k = realloc(d->keys, (d->nparams + 1) * sizeof *k);
  if (k == NULL) goto nomem;
  d->keys = k;
  char **v = realloc(d->values, (d->nparams + 1) * sizeof *v);
  if (v == NULL) goto nomem;
  d->values = v;
  d->keys[d->nparams] = key;
  d->values[d->nparams] = val;
  d->nparams++;
  return 0;
nomem:
  free(key);
  free(val);
  return DBP_ENOMEM;
}

/* Refuses query parameter `key` when the part it stands for was given
 * already (`given`): by the URL (`in_url`) or by an earlier parameter. */
static int refuse_twice(const char *key, bool given, bool in_url, const char *part, char *errbuf,
                        size_t errlen) {
  if (!given) return 0;
  if (in_url &&
      (strcmp(key, "host") == 0 || strcmp(key, "hostaddr") == 0 || dbp__my_param_is_socket(key)))
    dsn_errf(errbuf, errlen,
             "query parameter '%s' would override the host the URL names; give the host in one "
             "place (leave the URL's host empty to use the parameter, as in scheme:///db?%s=...)",
             key, key);
  else if (in_url)
    dsn_errf(errbuf, errlen,
             "query parameter '%s' repeats the %s the URL gives; give it in one place", key, part);
  else
    dsn_errf(errbuf, errlen, "query parameter '%s' is given twice", key);
  return DBP_EDSN;
}

/* Parses the query string q[0..n) into d. Keys host, port, user, password
 * and dbname fill in the URL's own parts when the URL leaves them out (see
 * the top of the file); hostaddr (and, for MySQL, socket) may stand in for
 * a host the URL does not give; the rest are kept in order. */
static int parse_query(const char *q, size_t n, dbp_dsn *d, char *errbuf, size_t errlen) {
  /* What the URL itself gave, before any parameter. */
  const bool url_host = d->host != NULL, url_port = d->port > 0, url_user = d->user != NULL,
             url_pw = d->password != NULL, url_db = d->dbname != NULL;
  bool hostish = url_host;    /* host, hostaddr or socket given so far */
  bool hostish_param = false; /* a socket given beside "localhost" */
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && q[j] != '&') j++;
    if (j == i) { /* "a=1&&b=2" or a trailing '&': nothing to do */
      i = j + 1;
      continue;
    }
    const char *eq = memchr(q + i, '=', j - i);
    if (eq == NULL || eq == q + i) {
      if (eq == NULL)
        dsn_errf(errbuf, errlen, "query parameter '%.*s' has no value (expected key=value)",
                 (int)(j - i > 64 ? 64 : j - i), q + i);
      else
        dsn_errf(errbuf, errlen, "query parameter with an empty name");
      return DBP_EDSN;
    }
    char *key = NULL, *val = NULL;
    int rc = pct_decode(q + i, (size_t)(eq - (q + i)), &key);
    if (rc == 0) {
      rc = pct_decode(eq + 1, (size_t)(q + j - (eq + 1)), &val);
      if (rc == DBP_EDSN)
        dsn_errf(errbuf, errlen, "bad percent-encoding in the value of query parameter '%s'", key);
    } else if (rc == DBP_EDSN) {
      dsn_errf(errbuf, errlen, "bad percent-encoding in a query parameter name");
    }
    if (rc != 0) {
      free(key);
      free(val);
      if (rc == DBP_ENOMEM) dsn_errf(errbuf, errlen, "out of memory");
      return rc;
    }
    bool is_host = strcmp(key, "host") == 0;
    bool is_hostish =
        strcmp(key, "hostaddr") == 0 || (d->kind == DBP_DB_MYSQL && dbp__my_param_is_socket(key));
    char **field = NULL;
    bool given = false, in_url = false;
    const char *part = "";
    bool is_socket = is_hostish && strcmp(key, "hostaddr") != 0;
    if (is_socket && url_host && !hostish_param && strcmp(d->host, "localhost") == 0) {
      /* MySQL's own reading of "localhost" is "the server's Unix socket on
       * this machine", as the mariadb client has it: naming that socket
       * says where, it does not move the connection anywhere else. */
      hostish_param = true;
    } else if (is_host || is_hostish) {
      /* A host and a socket (or a host and a hostaddr) name the server
       * twice, so they count as one part. */
      given = hostish;
      in_url = url_host;
      part = "host";
      if (is_host) field = &d->host;
    } else if (strcmp(key, "user") == 0) {
      field = &d->user;
      given = d->user != NULL;
      in_url = url_user;
      part = "user name";
    } else if (strcmp(key, "password") == 0) {
      field = &d->password;
      given = d->password != NULL;
      in_url = url_pw;
      part = "password";
    } else if (strcmp(key, "dbname") == 0) {
      field = &d->dbname;
      given = d->dbname != NULL;
      in_url = url_db;
      part = "database name";
    } else if (strcmp(key, "port") == 0) {
      given = d->port > 0;
      in_url = url_port;
      part = "port";
    }
    if (refuse_twice(key, given, in_url, part, errbuf, errlen) != 0) {
      free(key);
      free(val);
      return DBP_EDSN;
    }
    if (is_host || is_hostish) hostish = true;
    if (field != NULL) {
      set_field(field, val);
      free(key);
    } else if (strcmp(key, "port") == 0) {
      int port = parse_port(val, strlen(val));
      free(key);
      free(val);
      if (port < 0) {
        dsn_errf(errbuf, errlen, "invalid port in query parameter 'port' (expected 1-65535)");
        return DBP_EDSN;
      }
      d->port = port;
    } else {
      rc = add_param(d, key, val);
      if (rc != 0) {
        dsn_errf(errbuf, errlen, "out of memory");
        return rc;
      }
    }
    i = j + 1;
  }
  return 0;
}

/* Decodes s[0..n) into *field when n > 0 (an empty part stays NULL).
 * `what` names the part in the error message; the text itself is never
 * echoed, since a misplaced password could end up in any part. */
static int decode_part(const char *s, size_t n, char **field, const char *what, char *errbuf,
                       size_t errlen) {
  if (n == 0) return 0;
  char *v = NULL;
  int rc = pct_decode(s, n, &v);
  if (rc == DBP_EDSN)
    dsn_errf(errbuf, errlen, "bad percent-encoding in the %s (use %%XX, not %%00)", what);
  else if (rc == DBP_ENOMEM)
    dsn_errf(errbuf, errlen, "out of memory");
  if (rc != 0) return rc;
  set_field(field, v);
  return 0;
}

/* Finds the scheme of `url`. Returns the length of "scheme://" and sets
 * *kind, or 0 when the URL has no known scheme. */
static size_t match_scheme(const char *url, dbp_db_kind *kind) {
  for (size_t i = 0; i < sizeof dsn_schemes / sizeof dsn_schemes[0]; i++) {
    size_t n = strlen(dsn_schemes[i].scheme);
    if (strncasecmp(url, dsn_schemes[i].scheme, n) == 0 && strncmp(url + n, "://", 3) == 0) {
      *kind = dsn_schemes[i].kind;
      return n + 3;
    }
  }
  return 0;
}

int dbp_dsn_parse(const char *url, dbp_dsn *out, char *errbuf, size_t errlen) {
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  if (out == NULL) return DBP_EINVAL;
  memset(out, 0, sizeof *out);
  if (url == NULL || *url == '\0') {
    dsn_errf(errbuf, errlen, "empty connection string");
    return DBP_EDSN;
  }
  dbp_dsn d = {0};
  int rc = DBP_EDSN;
  size_t skip = match_scheme(url, &d.kind);
  if (skip == 0) {
    const char *colon = strstr(url, "://");
    /* Only a scheme-like word is echoed: text before "://" might be
     * anything, a password included. */
    bool word = colon != NULL && colon > url && colon - url <= 32;
    for (const char *s = url; word && s < colon; s++)
      word = isalnum((unsigned char)*s) || *s == '+' || *s == '-' || *s == '.';
    if (word)
      dsn_errf(errbuf, errlen,
               "unknown scheme '%.*s' (expected postgresql://, postgres://, mysql:// or "
               "mariadb://)",
               (int)(colon - url), url);
    else
      dsn_errf(errbuf, errlen,
               "not a URL (expected postgresql://, postgres://, mysql:// or mariadb://)");
    goto err;
  }
  const char *p = url + skip;
  /* The authority runs to the first '/' or '?' after the user information
   * (see userinfo_end); a '/' or '?' inside the user information is a
   * character that should have been percent-encoded. */
  const char *at = userinfo_end(p);
  size_t alen = strcspn(p, "/?");
  if (at != NULL && at >= p + alen) {
    dsn_errf(errbuf, errlen,
             "a '/' or '?' comes before the '@' that ends the user name and password; "
             "percent-encode '/', '?' and '@' in them (%%2F, %%3F, %%40)");
    rc = DBP_EDSN;
    goto err;
  }
  if (at != NULL) alen = (size_t)(at - p) + 1 + strcspn(at + 1, "/?");
  const char *host = p;
  if (at != NULL) {
    size_t ulen = (size_t)(at - p);
    const char *colon = memchr(p, ':', ulen);
    size_t namelen = colon != NULL ? (size_t)(colon - p) : ulen;
    if ((rc = decode_part(p, namelen, &d.user, "user name", errbuf, errlen)) != 0) goto err;
    if (colon != NULL) {
      /* "user:@host" means an empty password, which is still a password. */
      size_t pwlen = ulen - namelen - 1;
      if (pwlen == 0) {
        d.password = strdup("");
        if (d.password == NULL) goto nomem;
      } else if ((rc = decode_part(colon + 1, pwlen, &d.password, "password", errbuf, errlen)) !=
                 0) {
        goto err;
      }
    }
    host = at + 1;
  }
  const char *aend = p + alen;
  const char *portp = NULL;
  if (*host == '[') {
    const char *close = memchr(host, ']', (size_t)(aend - host));
    if (close == NULL) {
      dsn_errf(errbuf, errlen, "unterminated IPv6 address (missing ']')");
      rc = DBP_EDSN;
      goto err;
    }
    if (close == host + 1) {
      dsn_errf(errbuf, errlen, "empty IPv6 address '[]'");
      rc = DBP_EDSN;
      goto err;
    }
    if ((rc = decode_part(host + 1, (size_t)(close - host - 1), &d.host, "host", errbuf, errlen)) !=
        0)
      goto err;
    if (close + 1 < aend) {
      if (close[1] != ':') {
        dsn_errf(errbuf, errlen, "unexpected text after the IPv6 address (expected ':port')");
        rc = DBP_EDSN;
        goto err;
      }
      portp = close + 2;
    }
  } else {
    const char *colon = memchr(host, ':', (size_t)(aend - host));
    const char *hend = colon != NULL ? colon : aend;
    if (memchr(host, ',', (size_t)(hend - host)) != NULL) {
      dsn_errf(errbuf, errlen, "several hosts are not supported (give one host)");
      rc = DBP_EDSN;
      goto err;
    }
    if ((rc = decode_part(host, (size_t)(hend - host), &d.host, "host", errbuf, errlen)) != 0)
      goto err;
    if (colon != NULL) portp = colon + 1;
  }
  if (portp != NULL) {
    d.port = parse_port(portp, (size_t)(aend - portp));
    if (d.port < 0) {
      d.port = 0;
      dsn_errf(errbuf, errlen, "invalid port (expected a number from 1 to 65535)");
      rc = DBP_EDSN;
      goto err;
    }
  }
  p = aend;
  if (*p == '/') {
    p++;
    size_t dlen = strcspn(p, "?");
    if ((rc = decode_part(p, dlen, &d.dbname, "database name", errbuf, errlen)) != 0) goto err;
    p += dlen;
  }
  if (*p == '?') {
    p++;
    if ((rc = parse_query(p, strlen(p), &d, errbuf, errlen)) != 0) goto err;
  }
  *out = d;
  return 0;
nomem:
  rc = DBP_ENOMEM;
  dsn_errf(errbuf, errlen, "out of memory");
err:
  dbp_dsn_free(&d);
  return rc;
}

const char *dbp__dsn_param(const dbp_dsn *d, const char *key) {
  for (size_t i = d->nparams; i-- > 0;)
    if (strcmp(d->keys[i], key) == 0) return d->values[i];
  return NULL;
}

/* Appends s[0..n) to buf (capacity len, *pos used so far), truncating and
 * always leaving buf NUL-terminated. */
static void put(char *buf, size_t len, size_t *pos, const char *s, size_t n) {
  if (*pos + 1 >= len) return;
  size_t room = len - 1 - *pos;
  if (n > room) n = room;
  memcpy(buf + *pos, s, n);
  *pos += n;
  buf[*pos] = '\0';
}

/* True when the n-byte key k names a password parameter. */
static bool is_password_key(const char *k, size_t n) {
  return (n == 8 && strncasecmp(k, "password", 8) == 0) ||
         (n == 6 && strncasecmp(k, "passwd", 6) == 0);
}

/* Copies a libpq keyword string ("host=x password='y z'") with the values
 * of password keys replaced. */
static void redact_keywords(const char *s, char *buf, size_t len, size_t *pos) {
  const char *p = s;
  while (*p) {
    const char *eq = strchr(p, '=');
    if (eq == NULL) {
      put(buf, len, pos, p, strlen(p));
      return;
    }
    const char *ke = eq;
    while (ke > p && ke[-1] == ' ') ke--;
    const char *k = ke;
    while (k > p && (isalnum((unsigned char)k[-1]) || k[-1] == '_')) k--;
    put(buf, len, pos, p, (size_t)(eq + 1 - p));
    const char *v = eq + 1;
    while (*v == ' ') v++;
    const char *ve = v;
    if (*v == '\'') {
      ve++;
      while (*ve && *ve != '\'') ve += (*ve == '\\' && ve[1]) ? 2 : 1;
      if (*ve) ve++;
    } else {
      while (*ve && *ve != ' ') ve++;
    }
    if (is_password_key(k, (size_t)(ke - k)))
      put(buf, len, pos, "***", 3);
    else
      put(buf, len, pos, eq + 1, (size_t)(ve - (eq + 1)));
    p = ve;
  }
}

/* Copies a URL query string with the values of password keys replaced.
 * Keys are compared percent-decoded ("%70assword" is still a password). */
/* Copies the query text q[0..end) with the value of every password
 * parameter replaced by "***". */
static void redact_query(const char *q, const char *end, char *buf, size_t len, size_t *pos) {
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    size_t n = amp != NULL ? (size_t)(amp - q) : (size_t)(end - q);
    const char *eq = memchr(q, '=', n);
    bool secret = false;
    if (eq != NULL) {
      char *key = NULL;
      if (pct_decode(q, (size_t)(eq - q), &key) == 0) {
        secret = is_password_key(key, strlen(key));
        free(key);
      }
    }
    if (secret) {
      put(buf, len, pos, q, (size_t)(eq + 1 - q));
      put(buf, len, pos, "***", 3);
    } else {
      put(buf, len, pos, q, n);
    }
    q += n;
    if (q < end && *q == '&') put(buf, len, pos, q++, 1);
  }
}

/* Overwrites with '*' the value of every password parameter in the query
 * text q[0..end), keeping the length. */
static void wipe_query(char *q, const char *end) {
  while (q < end) {
    char *amp = memchr(q, '&', (size_t)(end - q));
    size_t n = amp != NULL ? (size_t)(amp - q) : (size_t)(end - q);
    char *eq = memchr(q, '=', n);
    if (eq != NULL) {
      char *key = NULL;
      if (pct_decode(q, (size_t)(eq - q), &key) == 0 && is_password_key(key, strlen(key)))
        memset(eq + 1, '*', n - (size_t)(eq + 1 - q));
      free(key);
    }
    q += n;
    if (q < end && *q == '&') q++;
  }
}

const char *dbp_dsn_redact(const char *url, char *buf, size_t len) {
  if (buf == NULL || len == 0) return buf;
  buf[0] = '\0';
  if (url == NULL) return buf;
  size_t pos = 0;
  const char *sep = strstr(url, "://");
  if (sep == NULL) {
    /* Not a URL: treat it as libpq keyword=value text. */
    redact_keywords(url, buf, len, &pos);
    return buf;
  }
  const char *p = sep + 3;
  put(buf, len, &pos, url, (size_t)(p - url));
  /* Everything between "user:" and the '@' that ends the user information
   * goes, however malformed the rest is. */
  const char *at = userinfo_end(p);
  if (at != NULL) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL) {
      /* Where the user information was taken to run past a '?' (the
       * colon lies beyond it), what follows the '?' may be a query string
       * with a password in it, or the password itself: all of it goes, up
       * to the '@'. */
      const char *q = memchr(p, '?', (size_t)(colon - p));
      put(buf, len, &pos, p, (size_t)((q != NULL ? q : colon) + 1 - p));
      put(buf, len, &pos, "***", 3);
      p = at;
      /* The query string began inside what was taken for the user
       * information: all that follows the '@' is still part of it. */
      if (q != NULL) {
        redact_query(p, p + strlen(p), buf, len, &pos);
        return buf;
      }
    }
  }
  const char *q = strchr(p, '?');
  if (q == NULL) {
    put(buf, len, &pos, p, strlen(p));
    return buf;
  }
  put(buf, len, &pos, p, (size_t)(q + 1 - p));
  redact_query(q + 1, q + strlen(q), buf, len, &pos);
  return buf;
}

void dbp_dsn_wipe_password(char *url) {
  char *sep = url != NULL ? strstr(url, "://") : NULL;
  if (sep == NULL) return;
  char *p = sep + 3;
  /* The same reading as dbp_dsn_redact: userinfo_end finds the '@' even in
   * a URL the parser refuses. */
  const char *at = userinfo_end(p);
  if (at != NULL) {
    char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL) {
      char *q = memchr(p, '?', (size_t)(colon - p));
      char *from = q != NULL ? q : colon;
      memset(from + 1, '*', (size_t)(at - from - 1));
      p += at - p;
      if (q != NULL) {
        wipe_query(p, p + strlen(p));
        return;
      }
    }
  }
  char *q = strchr(p, '?');
  if (q != NULL) wipe_query(q + 1, q + strlen(q));
}

void dbp__scrub(char *msg, const char *secret) {
  if (msg == NULL || secret == NULL) return;
  /* Neither library nor server ever puts a password into a message; this
   * is the belt to those braces. A password of a character or three would
   * turn every message into asterisks, and hides nothing worth hiding. */
  size_t n = strlen(secret);
  if (n < 4) return;
  char *hit;
  while ((hit = strstr(msg, secret)) != NULL) {
    memcpy(hit, "***", 3);
    memmove(hit + 3, hit + n, strlen(hit + n) + 1);
    msg = hit + 3;
  }
}

/* ---- the offline check ---- */

/* What a parameter's value may be. */
typedef enum val_kind {
  V_BOOL, /* 0 or 1 */
  V_UINT, /* a whole number, 0 or more */
  V_ENUM, /* one of `words` */
} val_kind;

typedef struct param_rule {
  const char *key;
  val_kind kind;
  const char *words; /* V_ENUM: the accepted values, '|'-separated */
} param_rule;

/* Value rules for the PostgreSQL parameters dbpipe users set most; libpq
 * (PQconninfoParse) vouches for the names of all others but checks no
 * values before connecting. */
static const param_rule pg_rules[] = {
    {"sslmode", V_ENUM, "disable|allow|prefer|require|verify-ca|verify-full"},
    {"gssencmode", V_ENUM, "disable|prefer|require"},
    {"channel_binding", V_ENUM, "disable|prefer|require"},
    {"target_session_attrs", V_ENUM, "any|read-write|read-only|primary|standby|prefer-standby"},
    {"connect_timeout", V_UINT, NULL},
    {"keepalives", V_BOOL, NULL},
    {"keepalives_idle", V_UINT, NULL},
    {"keepalives_interval", V_UINT, NULL},
    {"keepalives_count", V_UINT, NULL},
    {"tcp_user_timeout", V_UINT, NULL},
    {"sslcompression", V_BOOL, NULL},
};

/* True when v is one of the '|'-separated words. */
static bool in_words(const char *v, const char *words) {
  size_t n = strlen(v);
  for (const char *w = words; *w;) {
    size_t k = strcspn(w, "|");
    if (k == n && strncmp(w, v, n) == 0) return true;
    w += k;
    if (*w == '|') w++;
  }
  return false;
}

/* Checks value v against rule r. Returns NULL or what it should be. */
static const char *rule_problem(const param_rule *r, const char *v) {
  switch (r->kind) {
    case V_BOOL:
      return strcmp(v, "0") == 0 || strcmp(v, "1") == 0 ? NULL : "0 or 1";
    case V_UINT: {
      if (*v == '\0' || strlen(v) > 9) return "a whole number";
      for (const char *s = v; *s; s++)
        if (!isdigit((unsigned char)*s)) return "a whole number";
      return NULL;
    }
    case V_ENUM:
      return in_words(v, r->words) ? NULL : r->words;
  }
  return NULL;
}

/* Appends "key='value'" to a libpq conninfo string in *buf (grown as
 * needed), quoting as libpq's parser expects. Returns 0 or DBP_ENOMEM. */
static int conninfo_add(char **buf, size_t *len, size_t *cap, const char *k, const char *v) {
  size_t need = *len + strlen(k) + 2 * strlen(v) + 5;
  if (need > *cap) {
    size_t nc = *cap * 2 > need ? *cap * 2 : need;
    char *nb = realloc(*buf, nc);
    if (nb == NULL) return DBP_ENOMEM;
    *buf = nb;
    *cap = nc;
  }
  char *o = *buf + *len;
  if (*len > 0) *o++ = ' ';
  o += sprintf(o, "%s='", k);
  for (const char *s = v; *s; s++) {
    if (*s == '\'' || *s == '\\') *o++ = '\\';
    *o++ = *s;
  }
  *o++ = '\'';
  *o = '\0';
  *len = (size_t)(o - *buf);
  return 0;
}

/* Builds the conninfo the PostgreSQL driver would connect with (pg_connect.c's
 * dbp__pg_connect: its fixed keywords, the URL's parts, the parameters, the
 * keepalive defaults) and lets libpq parse it, which refuses a keyword it
 * does not know. Returns 0, DBP_EDSN with msg set, or DBP_ENOMEM. */
static int pg_conninfo_check(const dbp_dsn *d, char *msg, size_t mlen) {
  char *buf = NULL, port[12];
  size_t len = 0, cap = 0;
  int rc = conninfo_add(&buf, &len, &cap, "client_encoding", "UTF8");
  if (rc == 0 && d->host) rc = conninfo_add(&buf, &len, &cap, "host", d->host);
  if (rc == 0 && d->port > 0) {
    snprintf(port, sizeof port, "%d", d->port);
    rc = conninfo_add(&buf, &len, &cap, "port", port);
  }
  if (rc == 0 && d->dbname) rc = conninfo_add(&buf, &len, &cap, "dbname", d->dbname);
  if (rc == 0 && d->user) rc = conninfo_add(&buf, &len, &cap, "user", d->user);
  if (rc == 0 && d->password) rc = conninfo_add(&buf, &len, &cap, "password", d->password);
  for (size_t i = 0; rc == 0 && i < d->nparams; i++)
    rc = conninfo_add(&buf, &len, &cap, d->keys[i], d->values[i]);
  for (size_t i = 0; rc == 0 && i < DBP__PG_TCP_DEFAULTS; i++)
    if (dbp__dsn_param(d, dbp__pg_tcp_defaults[i][0]) == NULL)
      rc = conninfo_add(&buf, &len, &cap, dbp__pg_tcp_defaults[i][0], dbp__pg_tcp_defaults[i][1]);
  if (rc != 0) {
    free(buf);
    snprintf(msg, mlen, "out of memory");
    return rc;
  }
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(buf, &err);
  /* The conninfo holds the password: wipe it before it is freed. */
  memset(buf, 0, len);
  free(buf);
  if (opts != NULL) {
    PQconninfoFree(opts);
    return 0;
  }
  if (err == NULL) {
    snprintf(msg, mlen, "out of memory");
    return DBP_ENOMEM;
  }
  /* "invalid connection option "x"": name the parameter our way. */
  const char *q1 = strchr(err, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
  if (strstr(err, "invalid connection option") != NULL && q2 != NULL)
    snprintf(msg, mlen, "unknown parameter '%.*s' for PostgreSQL (libpq has no such option)",
             (int)(q2 - q1 - 1), q1 + 1);
  else {
    char one[256];
    size_t j = 0;
    for (const char *s = err; *s && j + 1 < sizeof one; s++) one[j++] = *s == '\n' ? ' ' : *s;
    while (j > 0 && one[j - 1] == ' ') j--;
    one[j] = '\0';
    snprintf(msg, mlen, "libpq refuses the parameters: %s", one);
    dbp__scrub(msg, d->password);
  }
  PQfreemem(err);
  return DBP_EDSN;
}

/* Checks every parameter of d against the rules of its database. Returns
 * 0 or DBP_EDSN with msg set. */
static int params_check(const dbp_dsn *d, char *msg, size_t mlen) {
  if (d->kind == DBP_DB_MYSQL) {
    /* The MySQL driver's own reading (mysql_opts.c) is the one list of its
     * parameters; dbp_dsn_check runs it next. */
    for (size_t i = 0; i < d->nparams; i++) {
      if (dbp__my_param_known(d->keys[i])) continue;
      char names[300];
      snprintf(msg, mlen, "unknown parameter '%.40s' for MySQL (accepted: %s)", d->keys[i],
               dbp__my_param_names(names, sizeof names));
      return DBP_EDSN;
    }
    return 0;
  }
  const size_t nrules = sizeof pg_rules / sizeof pg_rules[0];
  for (size_t i = 0; i < d->nparams; i++) {
    const char *k = d->keys[i], *v = d->values[i];
    const param_rule *r = NULL;
    for (size_t j = 0; j < nrules && r == NULL; j++)
      if (strcmp(pg_rules[j].key, k) == 0) r = &pg_rules[j];
    if (r == NULL) continue; /* libpq judges the name */
    const char *want = rule_problem(r, v);
    if (want != NULL) {
      char list[200];
      snprintf(list, sizeof list, "%s", want);
      for (char *s = list; *s; s++)
        if (*s == '|') *s = ',';
      /* None of these parameters holds a secret, so the value is shown. */
      snprintf(msg, mlen, "parameter '%s' has the invalid value '%.40s' (expected %s)", k, v, list);
      return DBP_EDSN;
    }
  }
  return pg_conninfo_check(d, msg, mlen);
}

int dbp_dsn_check(const char *url, char *errbuf, size_t errlen) {
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  dbp_dsn d;
  char msg[400];
  int rc = dbp_dsn_parse(url, &d, msg, sizeof msg);
  if (rc == 0) {
    char why[360];
    rc = params_check(&d, why, sizeof why);
    /* The MySQL driver's own reading of its parameters has the last word
     * (combinations such as verify-ca without sslrootcert), so that check
     * refuses exactly what a connect would. */
    dbp__my_opts mo;
    if (rc == 0 && d.kind == DBP_DB_MYSQL) rc = dbp__my_opts_parse(&d, &mo, why, sizeof why);
    if (rc != 0) {
      const char *w = strncmp(why, "invalid DSN: ", 13) == 0 ? why + 13 : why;
      snprintf(msg, sizeof msg, "invalid DSN: %s", w);
    }
    dbp_dsn_free(&d);
  }
  if (rc != 0 && errbuf != NULL && errlen > 0) {
    size_t rlen = (url ? strlen(url) : 0) + 16;
    char *red = malloc(rlen);
    if (red != NULL && url != NULL && *url)
      snprintf(errbuf, errlen, "%s (in %s)", msg, dbp_dsn_redact(url, red, rlen));
    else
      snprintf(errbuf, errlen, "%s", msg);
    free(red);
  }
  return rc;
}

char *dbp_dsn_with_app_name(const char *url, const char *name) {
  if (url == NULL || name == NULL) return NULL;
  dbp_dsn d;
  char why[256];
  bool named = true;
  if (strchr(url, '#') == NULL && dbp_dsn_parse(url, &d, why, sizeof why) == 0) {
    named = false;
    for (size_t i = 0; i < d.nparams; i++) {
      named |= strcmp(d.keys[i], "application_name") == 0 ||
               (d.kind == DBP_DB_MYSQL && strcmp(d.keys[i], "program_name") == 0);
    }
    dbp_dsn_free(&d);
  }
  if (named) return strdup(url);
  dbp_buf out = {0};
  dbp_buf_printf(&out, "%s%capplication_name=", url, strchr(url, '?') != NULL ? '&' : '?');
  for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
    if (isalnum(*p) || strchr("-._~", *p) != NULL)
      dbp_buf_append(&out, p, 1);
    else
      dbp_buf_printf(&out, "%%%02X", *p);
  }
  if (out.oom) {
    if (out.data != NULL) memset(out.data, 0, out.len);
    dbp_buf_free(&out);
    return NULL;
  }
  return out.data;
}
