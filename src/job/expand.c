/* ${VAR} expansion and {name}/{date} templates in job-file strings. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

/* A small growable string; `oom` sticks once an allocation failed. */
typedef struct str {
  char *p;
  size_t len, cap;
  bool oom;
} str;

static void str_add(str *s, const char *p, size_t n) {
  if (s->oom) return;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + n + 1) cap *= 2;
    char *np = realloc(s->p, cap);
    if (np == NULL) {
      s->oom = true;
      return;
    }
    s->p = np;
    s->cap = cap;
  }
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = '\0';
}

/* Hands the string over in *out (an empty string for no text). */
static int str_finish(str *s, int problems, char **out) {
  if (!s->oom && s->p == NULL) str_add(s, "", 0);
  if (s->oom || problems) {
    free(s->p);
    return s->oom ? DBP_ENOMEM : DBP_EJOB;
  }
  *out = s->p;
  return 0;
}

static bool name_start(char c) {
  return isalpha((unsigned char)c) || c == '_';
}
static bool name_char(char c) {
  return isalnum((unsigned char)c) || c == '_';
}

int dbp__job_expand(const char *in, dbp_job_getenv_fn getenv_fn, void *getenv_ud, char **out,
                    dbp__job_report_fn report, void *report_ud) {
  str s = {0};
  int problems = 0;
  char msg[512];
  const char *p = in;
  while (*p != '\0') {
    const char *dollar = strchr(p, '$');
    if (dollar == NULL) {
      str_add(&s, p, strlen(p));
      break;
    }
    str_add(&s, p, (size_t)(dollar - p));
    p = dollar;
    if (p[1] == '$') { /* $$ -> $ */
      str_add(&s, "$", 1);
      p += 2;
      continue;
    }
    if (p[1] != '{') { /* a lone $ (a $1 placeholder, say) stays */
      str_add(&s, "$", 1);
      p += 1;
      continue;
    }
    size_t off = (size_t)(p - in);
    const char *close = strchr(p + 2, '}');
    if (close == NULL) {
      report(report_ud, off, "unterminated ${ (write $$ for a literal $)");
      problems++;
      break;
    }
    const char *nm = p + 2, *e = nm;
    if (name_start(*e)) {
      while (name_char(*e)) e++;
    }
    size_t nlen = (size_t)(e - nm);
    const char *deflt = NULL;
    if (e[0] == ':' && e[1] == '-') {
      deflt = e + 2;
    } else if (e != close) {
      nlen = 0; /* forces the "bad name" report below */
    }
    if (nlen == 0) {
      snprintf(msg, sizeof msg,
               "bad variable reference '%.*s' (expected ${NAME} or ${NAME:-default})",
               (int)(close - p + 1), p);
      report(report_ud, off, msg);
      problems++;
      p = close + 1;
      continue;
    }
    char name[128];
    if (nlen >= sizeof name) nlen = sizeof name - 1;
    memcpy(name, nm, nlen);
    name[nlen] = '\0';
    const char *val = getenv_fn ? getenv_fn(name, getenv_ud) : getenv(name);
    if (deflt != NULL && (val == NULL || *val == '\0')) {
      str_add(&s, deflt, (size_t)(close - deflt));
    } else if (val == NULL) {
      snprintf(msg, sizeof msg,
               "environment variable '%s' is not set (use ${%s:-default} for a fallback)", name,
               name);
      report(report_ud, off, msg);
      problems++;
    } else {
      str_add(&s, val, strlen(val));
    }
    p = close + 1;
  }
  return str_finish(&s, problems, out);
}

int dbp__job_templates(const char *in, const char *name, const char *date, char **out,
                       dbp__job_report_fn report, void *report_ud) {
  str s = {0};
  int problems = 0;
  char msg[256];
  const char *p = in;
  while (*p != '\0') {
    const char *open = strchr(p, '{');
    if (open == NULL) {
      str_add(&s, p, strlen(p));
      break;
    }
    str_add(&s, p, (size_t)(open - p));
    const char *e = open + 1;
    while (name_char(*e)) e++;
    if (*e != '}' || e == open + 1) { /* not a template: keep the brace */
      str_add(&s, "{", 1);
      p = open + 1;
      continue;
    }
    size_t n = (size_t)(e - open - 1);
    if (n == 4 && strncmp(open + 1, "name", 4) == 0 && name != NULL) {
      str_add(&s, name, strlen(name));
    } else if (n == 4 && strncmp(open + 1, "date", 4) == 0) {
      str_add(&s, date, strlen(date));
    } else {
      snprintf(msg, sizeof msg, "unknown template '{%.*s}' (known: %s{date})", (int)n, open + 1,
               name != NULL ? "{name}, " : "");
      report(report_ud, (size_t)(open - in), msg);
      problems++;
    }
    p = e + 1;
  }
  return str_finish(&s, problems, out);
}
