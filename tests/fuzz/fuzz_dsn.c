/* Fuzz target for the DSN parser and its redaction (dbp_dsn_parse,
 * dbp_dsn_redact).
 *
 * Two URLs per input:
 *   - the input itself (NUL bytes cut it short): parsing and redacting
 *     must not crash, redacting a URL twice gives what once gave, and
 *     the redaction of a URL that parses still parses, to the same user,
 *     host, port and database;
 *   - a URL built around two passwords the target chooses: the input is
 *     split at its first two 0x01 bytes into a user + host part, a
 *     password, and a query password; both passwords are percent-encoded
 *     byte by byte, so the target knows exactly what the parser must find.
 *     When the parse finds them, the redacted text must contain neither
 *     the password nor its encoded form (unless the URL redacted by hand
 *     holds that text anyway).
 */
#include "dbpipe/db.h"
#include "fuzz.h"

#define REDACT_MAX 8192

static const char *const schemes[] = {"postgresql://", "postgres://", "mysql://", "mariadb://"};

/* Appends every byte of p[0..n) as %XX. */
static char *pct_all(char *w, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    *w++ = '%';
    *w++ = hex[p[i] >> 4];
    *w++ = hex[p[i] & 15];
  }
  return w;
}

static bool same(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Returns the value of the last query parameter called `key`, or NULL. */
static const char *param(const dbp_dsn *d, const char *key) {
  for (size_t i = d->nparams; i-- > 0;)
    if (strcmp(d->keys[i], key) == 0) return d->values[i];
  return NULL;
}

/* The properties of any URL. */
static void check_any(const char *url) {
  static char r1[REDACT_MAX], r2[REDACT_MAX];
  dbp_dsn_redact(url, r1, sizeof r1);
  FZ_CHECK(strlen(r1) < sizeof r1, "redact overran its buffer");
  dbp_dsn_redact(r1, r2, sizeof r2);
  /* Only URLs: in keyword text "***" after a quoted value runs into the
   * next word, which a second pass then takes for the value. */
  if (strstr(url, "://") != NULL && strlen(url) * 2 + 16 < sizeof r1 && strcmp(r1, r2) != 0) {
    fz_dump("url", url, strlen(url));
    fz_dump("once", r1, strlen(r1));
    fz_dump("twice", r2, strlen(r2));
    FZ_FAIL("redacting twice changed the text");
  }
  /* A tiny buffer truncates but stays a C string. */
  char small[5];
  dbp_dsn_redact(url, small, sizeof small);
  FZ_CHECK(strlen(small) < sizeof small, "redact overran a small buffer");

  dbp_dsn d, e;
  char err[256];
  if (dbp_dsn_parse(url, &d, err, sizeof err) != 0) {
    FZ_CHECK(strlen(err) > 0, "a parse failure without a message");
    return;
  }
  if (strlen(url) * 2 + 16 < sizeof r1) {
    int rc = dbp_dsn_parse(r1, &e, err, sizeof err);
    if (rc != 0) {
      fz_dump("url", url, strlen(url));
      fz_dump("redacted", r1, strlen(r1));
      FZ_FAIL("the redacted DSN does not parse: %s", err);
    }
    FZ_CHECK(e.kind == d.kind && same(e.user, d.user) && same(e.host, d.host) && e.port == d.port &&
                 same(e.dbname, d.dbname) && e.nparams == d.nparams,
             "the redacted DSN parses to other parts");
    FZ_CHECK((d.password == NULL) == (e.password == NULL), "redaction added or lost a password");
    dbp_dsn_free(&e);
  }
  dbp_dsn_free(&d);
}

/* How often `needle` occurs in `hay`. */
static size_t count(const char *hay, const char *needle) {
  size_t n = 0, len = strlen(needle);
  if (len == 0) return 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* Fails when `secret` (or its encoded form) occurs in the redacted text
 * more often than in `ideal`, the URL as a correct redaction writes it.
 * Both have their "***" markers turned into 0x01 bytes first (a byte no
 * secret holds: the input is split at it), so a secret made of asterisks
 * is not found in the marker. */
static void check_hidden(const char *redacted, const char *ideal, const char *secret,
                         const char *what) {
  if (secret == NULL || *secret == '\0') return;
  char *r = strdup(redacted), *m;
  while ((m = strstr(r, "***")) != NULL) {
    *m = '\x01';
    memmove(m + 1, m + 3, strlen(m + 3) + 1);
  }
  if (count(r, secret) > count(ideal, secret)) {
    fz_dump("redacted", redacted, strlen(redacted));
    fz_dump("ideal", ideal, strlen(ideal));
    fz_dump(what, secret, strlen(secret));
    FZ_FAIL("the redacted DSN shows the %s", what);
  }
  free(r);
}

/* Writes the URL scheme + user ":" PW "@host..." [sep "password=" QPW]
 * into a new string, with PW and QPW each either percent-encoded from the
 * input (enc) or the 0x01 marker of a redacted secret. */
static char *compose(const char *scheme, const uint8_t *uh, size_t ul, size_t uhl,
                     const uint8_t *pw, size_t pl, bool pw_enc, const uint8_t *qpw, size_t ql,
                     bool qpw_enc) {
  char *url = malloc(strlen(scheme) + uhl + 3 * (pl + ql) + 32), *w = url;
  w += sprintf(w, "%s", scheme);
  memcpy(w, uh, ul);
  w += ul;
  *w++ = ':';
  if (pw_enc) {
    w = pct_all(w, pw, pl);
  } else {
    *w++ = '\x01';
  }
  memcpy(w, uh + ul, uhl - ul);
  w += uhl - ul;
  if (qpw != NULL) {
    w += sprintf(w, "%spassword=", memchr(uh, '?', uhl) ? "&" : "?");
    if (qpw_enc) {
      w = pct_all(w, qpw, ql);
    } else {
      *w++ = '\x01';
    }
  }
  *w = '\0';
  return url;
}

static char *cstr(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* The URL with known passwords: input = scheme byte, "user@host..." up to
 * the first 0x01, the password up to the next 0x01, the query password. */
static void check_built(const uint8_t *data, size_t size) {
  const uint8_t *end = data + size;
  const uint8_t *s1 = memchr(data, 1, size);
  if (s1 == NULL) return;
  const uint8_t *s2 = memchr(s1 + 1, 1, (size_t)(end - s1 - 1));
  const uint8_t *pw = s1 + 1, *pwend = s2 ? s2 : end;
  const uint8_t *qpw = s2 ? s2 + 1 : NULL;
  size_t hl = (size_t)(s1 - data), pl = (size_t)(pwend - pw), ql = qpw ? (size_t)(end - qpw) : 0;
  if (hl < 2 || memchr(data, 0, hl) != NULL) return;
  const char *scheme = schemes[data[0] & 3];
  const uint8_t *uh = data + 1;
  size_t uhl = hl - 1;
  const uint8_t *at = memchr(uh, '@', uhl);
  if (at == NULL) return;
  size_t ul = (size_t)(at - uh);

  char *url = compose(scheme, uh, ul, uhl, pw, pl, true, qpw, ql, true);
  dbp_dsn d;
  char err[256];
  if (dbp_dsn_parse(url, &d, err, sizeof err) == 0) {
    static char red[REDACT_MAX];
    dbp_dsn_redact(url, red, sizeof red);
    char *pws = cstr(pw, pl), *qps = cstr(qpw ? qpw : pw, qpw ? ql : 0);
    /* A secret counts only when the parser saw it where it was put (no NUL
     * in it, no '/' or '?' in the user moving the split). */
    bool pw_seen = strlen(pws) == pl && same(d.password, pws);
    bool q_seen = qpw != NULL && strlen(qps) == ql && same(param(&d, "password"), qps);
    char *ideal = compose(scheme, uh, ul, uhl, pw, pl, !pw_seen, qpw, ql, !q_seen);
    if (pw_seen) {
      char *enc = malloc(3 * pl + 1);
      *pct_all(enc, pw, pl) = '\0';
      check_hidden(red, ideal, enc, "encoded password");
      check_hidden(red, ideal, pws, "password");
      free(enc);
    }
    if (q_seen) {
      char *enc = malloc(3 * ql + 1);
      *pct_all(enc, qpw, ql) = '\0';
      check_hidden(red, ideal, enc, "encoded query password");
      check_hidden(red, ideal, qps, "query password");
      free(enc);
    }
    free(ideal);
    free(pws);
    free(qps);
    dbp_dsn_free(&d);
  }
  check_any(url);
  free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *url = malloc(size + 1);
  memcpy(url, data, size);
  url[size] = '\0';
  check_any(url);
  free(url);
  check_built(data, size);
  return 0;
}
