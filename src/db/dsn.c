/* DSN URLs: parsing, redaction and the helpers that keep passwords out of
 * every message.
 *
 *   scheme://[user[:password]@][host][:port][/dbname][?key=value&...]
 *
 * The host may be a bracketed IPv6 literal ("[::1]") or, percent-encoded, a
 * Unix socket directory ("%2Fvar%2Frun%2Fpostgresql"), as libpq accepts.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"

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

/* Stores a decoded field, replacing an earlier value (query parameters such
 * as ?host= override the URL's parts, as with libpq). */
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

/* Parses the query string q[0..n) into d. Keys host, port, user, password
 * and dbname override the URL's own parts; the rest are kept in order. */
static int parse_query(const char *q, size_t n, dbp_dsn *d, char *errbuf, size_t errlen) {
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
    if (strcmp(key, "host") == 0) {
      set_field(&d->host, val);
      free(key);
    } else if (strcmp(key, "user") == 0) {
      set_field(&d->user, val);
      free(key);
    } else if (strcmp(key, "password") == 0) {
      set_field(&d->password, val);
      free(key);
    } else if (strcmp(key, "dbname") == 0) {
      set_field(&d->dbname, val);
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
    if (colon != NULL && colon - url <= 32)
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
  /* The authority runs to the first '/' or '?'; userinfo to its last '@'. */
  size_t alen = strcspn(p, "/?");
  const char *at = NULL;
  for (size_t i = 0; i < alen; i++)
    if (p[i] == '@') at = p + i;
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
static void redact_query(const char *q, char *buf, size_t len, size_t *pos) {
  while (*q) {
    size_t n = strcspn(q, "&");
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
    if (*q == '&') put(buf, len, pos, q++, 1);
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
  size_t alen = strcspn(p, "/?");
  const char *at = NULL;
  for (size_t i = 0; i < alen; i++)
    if (p[i] == '@') at = p + i;
  if (at != NULL) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL) {
      put(buf, len, &pos, p, (size_t)(colon + 1 - p));
      put(buf, len, &pos, "***", 3);
      p = at;
    }
  }
  const char *q = strchr(p, '?');
  if (q == NULL) {
    put(buf, len, &pos, p, strlen(p));
    return buf;
  }
  put(buf, len, &pos, p, (size_t)(q + 1 - p));
  redact_query(q + 1, buf, len, &pos);
  return buf;
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

/* Placeholder until the offline parameter check is built: parses only. */
int dbp_dsn_check(const char *url, char *errbuf, size_t errlen) {
  dbp_dsn d;
  int rc = dbp_dsn_parse(url, &d, errbuf, errlen);
  if (rc == 0) dbp_dsn_free(&d);
  return rc;
}
