/* dbp_buf: the one growable buffer, for encoded rows, messages and JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe/common.h"

/* Grows geometrically so that appending row by row costs amortized O(1);
 * one byte more than asked stays free for the NUL. */
int dbp_buf_reserve(dbp_buf *b, size_t extra) {
  if (b == NULL) return DBP_EINVAL;
  if (b->oom) return DBP_ENOMEM;
  if (b->cap > b->len && extra < b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 2 - b->len - 1) {
    b->oom = true;
    return DBP_ENOMEM;
  }
  size_t need = b->len + extra + 1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) {
    b->oom = true;
    return DBP_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int dbp_buf_append(dbp_buf *b, const void *p, size_t n) {
  int rc = dbp_buf_reserve(b, n);
  if (rc != 0) return rc;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int dbp_buf_puts(dbp_buf *b, const char *s) {
  return dbp_buf_append(b, s, strlen(s));
}

int dbp_buf_vprintf(dbp_buf *b, const char *fmt, va_list ap) {
  if (b == NULL) return DBP_EINVAL;
  if (b->oom) return DBP_ENOMEM;
  va_list again;
  va_copy(again, ap);
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
  int rc = 0;
  if (n < 0) {
    rc = DBP_EINVAL;
  } else if ((size_t)n >= room) {
    rc = dbp_buf_reserve(b, (size_t)n);
    if (rc == 0) vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
  }
  va_end(again);
  if (rc == 0) {
    b->len += (size_t)n;
  } else if (b->data != NULL) {
    b->data[b->len] = '\0'; /* undo a truncated partial write */
  }
  return rc;
}

int dbp_buf_printf(dbp_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = dbp_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

size_t dbp_utf8_len(const unsigned char *p, size_t left) {
  size_t n;
  uint32_t cp;
  if (left == 0) return 0;
  if (p[0] < 0x80) return 1;
  if ((p[0] & 0xE0) == 0xC0) {
    n = 2;
    cp = p[0] & 0x1Fu;
  } else if ((p[0] & 0xF0) == 0xE0) {
    n = 3;
    cp = p[0] & 0x0Fu;
  } else if ((p[0] & 0xF8) == 0xF0) {
    n = 4;
    cp = p[0] & 0x07u;
  } else {
    return 0;
  }
  if (n > left) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3Fu);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

int dbp_buf_json(dbp_buf *b, const char *s) {
  if (s == NULL) return dbp_buf_append(b, "null", 4);
  const unsigned char *u = (const unsigned char *)s;
  size_t left = strlen(s);
  int rc = dbp_buf_append(b, "\"", 1);
  while (rc == 0 && left > 0) {
    unsigned char c = *u;
    size_t n = 1;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      rc = dbp_buf_append(b, esc, 2);
    } else if (c == '\n') {
      rc = dbp_buf_append(b, "\\n", 2);
    } else if (c == '\r') {
      rc = dbp_buf_append(b, "\\r", 2);
    } else if (c == '\t') {
      rc = dbp_buf_append(b, "\\t", 2);
    } else if (c < 0x20 || c == 0x7F) {
      rc = dbp_buf_printf(b, "\\u%04x", c);
    } else {
      n = dbp_utf8_len(u, left);
      if (n == 0) {
        rc = dbp_buf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD for a bad byte */
        n = 1;
      } else {
        rc = dbp_buf_append(b, u, n);
      }
    }
    u += n, left -= n;
  }
  return rc == 0 ? dbp_buf_append(b, "\"", 1) : rc;
}

const char *dbp_buf_str(const dbp_buf *b) {
  return b != NULL && b->data != NULL ? b->data : "";
}

void dbp_buf_free(dbp_buf *b) {
  if (b == NULL) return;
  free(b->data);
  *b = (dbp_buf){0};
}
