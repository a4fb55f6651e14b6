/* ${VAR} expansion and {name}/{date} templates in job-file strings
 * ({schema}, {table} and {part} are the runner's). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

/* Hands the text over in *out (an empty string for no text), or frees it
 * when there were problems or an allocation failed. */
static int finish(dbp_buf *b, int problems, char **out) {
  if (b->data == NULL) dbp_buf_append(b, "", 0);
  if (b->oom || problems) {
    int rc = b->oom ? DBP_ENOMEM : DBP_EJOB;
    dbp_buf_free(b);
    return rc;
  }
  *out = b->data;
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
  dbp_buf s = {0};
  int problems = 0;
  char msg[512];
  const char *p = in;
  while (*p != '\0') {
    const char *dollar = strchr(p, '$');
    if (dollar == NULL) {
      dbp_buf_append(&s, p, strlen(p));
      break;
    }
    dbp_buf_append(&s, p, (size_t)(dollar - p));
    p = dollar;
    if (p[1] == '$') { /* $$ -> $ */
      dbp_buf_append(&s, "$", 1);
      p += 2;
      continue;
    }
    if (p[1] != '{') { /* a lone $ (a $1 placeholder, say) stays */
      dbp_buf_append(&s, "$", 1);
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
      dbp_buf_append(&s, deflt, (size_t)(close - deflt));
    } else if (val == NULL) {
      snprintf(msg, sizeof msg,
               "environment variable '%s' is not set (use ${%s:-default} for a fallback)", name,
               name);
      report(report_ud, off, msg);
      problems++;
    } else {
      dbp_buf_append(&s, val, strlen(val));
    }
    p = close + 1;
  }
  return finish(&s, problems, out);
}

int dbp__job_templates(const char *in, const char *name, const char *date, bool keep_runner,
                       char **out, dbp__job_report_fn report, void *report_ud) {
  dbp_buf s = {0};
  int problems = 0;
  char msg[256];
  const char *p = in;
  while (*p != '\0') {
    const char *open = strchr(p, '{');
    if (open == NULL) {
      dbp_buf_append(&s, p, strlen(p));
      break;
    }
    dbp_buf_append(&s, p, (size_t)(open - p));
    const char *e = open + 1;
    while (name_char(*e)) e++;
    if (*e != '}' || e == open + 1) { /* not a template: keep the brace */
      dbp_buf_append(&s, "{", 1);
      p = open + 1;
      continue;
    }
    size_t n = (size_t)(e - open - 1);
    if (n == 4 && strncmp(open + 1, "name", 4) == 0 && name != NULL) {
      dbp_buf_append(&s, name, strlen(name));
    } else if (n == 4 && strncmp(open + 1, "date", 4) == 0) {
      dbp_buf_append(&s, date, strlen(date));
    } else if (keep_runner && ((n == 6 && strncmp(open + 1, "schema", 6) == 0) ||
                               (n == 5 && strncmp(open + 1, "table", 5) == 0) ||
                               (n == 4 && strncmp(open + 1, "part", 4) == 0))) {
      dbp_buf_append(&s, open, n + 2);
    } else {
      snprintf(msg, sizeof msg, "unknown template '{%.*s}' (known: %s{date}%s)", (int)n, open + 1,
               name != NULL ? "{name}, " : "", keep_runner ? ", {schema}, {table}, {part}" : "");
      report(report_ud, (size_t)(open - in), msg);
      problems++;
    }
    p = e + 1;
  }
  return finish(&s, problems, out);
}
