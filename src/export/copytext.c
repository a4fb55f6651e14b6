/* Reading what COPY TO STDOUT writes: the fields of the text format (parsed,
 * then re-encoded as JSON Lines or with options COPY itself cannot do). */
#include <string.h>

#include "export/export_int.h"

/* First tab or backslash in [p, end), or end. */
static const char *next_tab_or_backslash(const char *p, const char *end) {
  while (end - p >= 8) {
    uint64_t x = dbp__load64(p);
    if (dbp__has_byte(x, DBP__ONES * '\t') | dbp__has_byte(x, DBP__ONES * '\\')) break;
    p += 8;
  }
  while (p < end && *p != '\t' && *p != '\\') p++;
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Splits one line of text COPY output (without its LF) into exactly ncols
 * fields, with the tab delimiter and \N for NULL. Fields without a
 * backslash point into the line itself; the others are unescaped into
 * `scratch` (emptied first; never longer than the line), undoing every escape
 * COPY's reader accepts: \b \f \n \r \t \v, octal \ooo, hex \xhh and a
 * backslash before any other byte. vals[i] == NULL means SQL NULL. Returns 0,
 * DBP_EPROTO when the field count is wrong, or DBP_ENOMEM. */
int dbp__copytext_split(const char *line, size_t n, size_t ncols, const char **vals, size_t *lens,
                        dbp_buf *scratch) {
  scratch->len = 0;
  int rc = dbp_buf_reserve(scratch, n + 1);
  if (rc != 0) return rc;
  if (ncols == 0) return n == 0 ? 0 : DBP_EPROTO;
  const char *p = line, *end = line + n;
  char *o = scratch->data;
  size_t i = 0;
  for (;;) {
    if (i == ncols) return DBP_EPROTO;
    const char *s = p;
    const char *t = next_tab_or_backslash(p, end);
    if (t == end || *t == '\t') {
      vals[i] = s;
      lens[i] = (size_t)(t - s);
    } else if (t == s && end - s >= 2 && s[1] == 'N' && (end - s == 2 || s[2] == '\t')) {
      vals[i] = NULL;
      lens[i] = 0;
      t = s + 2;
    } else {
      char *start = o;
      for (;;) {
        memcpy(o, p, (size_t)(t - p));
        o += t - p;
        if (t == end || *t == '\t') break;
        /* A backslash. */
        if (t + 1 == end) {
          *o++ = '\\';
          t = end;
          break;
        }
        char c = t[1];
        p = t + 2;
        switch (c) {
          case 'b':
            *o++ = '\b';
            break;
          case 'f':
            *o++ = '\f';
            break;
          case 'n':
            *o++ = '\n';
            break;
          case 'r':
            *o++ = '\r';
            break;
          case 't':
            *o++ = '\t';
            break;
          case 'v':
            *o++ = '\v';
            break;
          case 'x':
            if (p < end && hexval(*p) >= 0) {
              int v = hexval(*p++);
              if (p < end && hexval(*p) >= 0) v = v * 16 + hexval(*p++);
              *o++ = (char)v;
            } else {
              *o++ = 'x';
            }
            break;
          default:
            if (c >= '0' && c <= '7') {
              int v = c - '0';
              for (int k = 0; k < 2 && p < end && *p >= '0' && *p <= '7'; k++)
                v = v * 8 + (*p++ - '0');
              *o++ = (char)v;
            } else {
              *o++ = c;
            }
            break;
        }
        t = next_tab_or_backslash(p, end);
      }
      vals[i] = start;
      lens[i] = (size_t)(o - start);
    }
    i++;
    if (t == end) break;
    p = t + 1;
  }
  return i == ncols ? 0 : DBP_EPROTO;
}
