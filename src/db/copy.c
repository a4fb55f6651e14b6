/* COPY: the statement behind dbp_copy_start, and whether a connection has
 * COPY at all.
 *
 * Only PostgreSQL has COPY ... TO STDOUT, so the statement built here is
 * PostgreSQL's: COPY (\n<query>\n) TO STDOUT (FORMAT ..., HEADER,
 * DELIMITER E'..', NULL E'..'). The line breaks keep a trailing "--"
 * comment in the query from swallowing the closing parenthesis. The
 * options are checked here against the rules COPY itself applies, so that
 * bad options fail with DBP_EINVAL before anything is sent and never look
 * like the server refusing the statement (which is DBP_ENOCOPY).
 */
#include <stdio.h>
#include <string.h>

#include "db/driver.h"
#include "db/drvkit.h"

bool dbp_conn_can_copy(const dbp_conn *c) {
  return c != NULL && c->drv->copy_start != NULL;
}

/* Appends `s` as an E'' string literal: quote and backslash escaped, control
 * bytes as \xhh, so that no byte of it can end the literal or the line. */
static void append_literal(dbp_buf *q, const char *s) {
  dbp_buf_append(q, "E'", 2);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\'' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      dbp_buf_append(q, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      dbp_buf_printf(q, "\\x%02x", c);
    } else {
      dbp_buf_append(q, s, 1);
    }
  }
  dbp_buf_append(q, "'", 1);
}

/* Why COPY would refuse the options, or NULL when it takes them. */
static const char *bad_options(const dbp_copy_options *o) {
  bool csv = o->format == DBP_COPY_CSV;
  if (o->format != DBP_COPY_TEXT && !csv) return "unknown COPY format";
  unsigned char d = (unsigned char)(o->delimiter ? o->delimiter : csv ? ',' : '\t');
  if (d == '\r' || d == '\n') return "the delimiter cannot be CR or LF";
  if (d >= 0x80) return "the delimiter must be one ASCII character";
  if (csv && d == '"') return "the CSV delimiter cannot be the quote '\"'";
  if (!csv && (d == '\\' || d == '.' || (d >= 'a' && d <= 'z') || (d >= '0' && d <= '9')))
    return "the text delimiter cannot be a backslash, '.', a lowercase letter or a digit";
  const char *n = o->null_string;
  if (n == NULL) return NULL;
  if (strpbrk(n, "\r\n") != NULL) return "the NULL string cannot hold CR or LF";
  if (strchr(n, (char)d) != NULL) return "the NULL string cannot hold the delimiter";
  if (csv && strchr(n, '"') != NULL) return "the CSV NULL string cannot hold the quote '\"'";
  return NULL;
}

int dbp__copy_sql(dbp_conn *c, const char *query, const dbp_copy_options *opts, dbp_buf *out) {
  dbp_copy_options o = {0};
  if (opts != NULL) o = *opts;
  const char *why = bad_options(&o);
  if (why != NULL) return dbp__seterr(c, DBP_EINVAL, NULL, 0, false, "COPY options: %s", why);
  size_t n = strlen(query);
  while (n > 0 && strchr(" \t\r\n\f\v;", query[n - 1]) != NULL) n--;
  dbp_buf_puts(out, "COPY (\n");
  dbp_buf_append(out, query, n);
  dbp_buf_puts(
      out, o.format == DBP_COPY_CSV ? "\n) TO STDOUT (FORMAT csv" : "\n) TO STDOUT (FORMAT text");
  if (o.header) dbp_buf_puts(out, ", HEADER");
  if (o.delimiter) {
    char d[2] = {o.delimiter, '\0'};
    dbp_buf_puts(out, ", DELIMITER ");
    append_literal(out, d);
  }
  if (o.null_string != NULL) {
    dbp_buf_puts(out, ", NULL ");
    append_literal(out, o.null_string);
  }
  if (dbp_buf_puts(out, ")") != 0)
    return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  return 0;
}
