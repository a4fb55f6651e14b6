/* Passwords that must never reach a message: registered from DSNs and
 * replaced by "***" wherever they appear. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/db.h"

/* Passwords shorter than this are not scrubbed: replacing every "ab" in a
 * message would garble it and hide nothing. */
#define MIN_SECRET 4

static void add_secret(dbp_secrets *s, const char *p, size_t n) {
  if (n < MIN_SECRET) return;
  for (size_t i = 0; i < s->n; i++) {
    if (strlen(s->list[i]) == n && memcmp(s->list[i], p, n) == 0) return;
  }
  char **nl = realloc(s->list, (s->n + 1) * sizeof *nl);
  if (nl == NULL) return;
  s->list = nl;
  char *copy = strndup(p, n);
  if (copy != NULL) s->list[s->n++] = copy;
}

void dbp_secrets_add_dsn(dbp_secrets *s, const char *dsn) {
  dbp_dsn d;
  char err[256];
  if (dsn == NULL || dbp_dsn_parse(dsn, &d, err, sizeof err) != 0) return;
  /* A password equal to the user name hides nothing the user name shows. */
  bool same = d.password != NULL && d.user != NULL && strcmp(d.password, d.user) == 0;
  if (d.password != NULL && !same) add_secret(s, d.password, strlen(d.password));
  dbp_dsn_free(&d);
  if (same) return;
  /* The password as written in the URL too (it may be percent-encoded). */
  const char *auth = strstr(dsn, "://");
  if (auth == NULL) return;
  auth += 3;
  size_t alen = strcspn(auth, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < alen; i++) {
    if (auth[i] == '@') at = auth + i;
  }
  if (at == NULL) return;
  const char *colon = memchr(auth, ':', (size_t)(at - auth));
  if (colon != NULL) add_secret(s, colon + 1, (size_t)(at - colon - 1));
}

void dbp_secrets_scrub_str(const dbp_secrets *s, char *text) {
  if (text == NULL) return;
  for (size_t i = 0; i < s->n; i++) {
    const char *secret = s->list[i];
    size_t n = strlen(secret);
    char *hit;
    while ((hit = strstr(text, secret)) != NULL) {
      /* "***" is never longer than a secret (n >= MIN_SECRET). */
      memcpy(hit, "***", 3);
      memmove(hit + 3, hit + n, strlen(hit + n) + 1);
    }
  }
}

void dbp_secrets_scrub(const dbp_secrets *s, dbp_buf *b) {
  if (b->data == NULL) return;
  dbp_secrets_scrub_str(s, b->data);
  b->len = strlen(b->data);
}

void dbp_secrets_free(dbp_secrets *s) {
  for (size_t i = 0; i < s->n; i++) {
    memset(s->list[i], 0, strlen(s->list[i]));
    free(s->list[i]);
  }
  free(s->list);
  s->list = NULL;
  s->n = 0;
}
