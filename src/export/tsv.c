/* TSV as PostgreSQL's text COPY format writes it: NULL as \N (or the NULL
 * string), a backslash before a backslash or the delimiter, and \b \f \n \r
 * \t \v for those control characters; other bytes as they are. */
#include <stdint.h>
#include <string.h>

#include "export/export_int.h"

/* Index of the first byte of p[0..n) that needs an escape, or n. */
static size_t tsv_scan(const dbp_encoder *e, const char *p, size_t n) {
  const uint64_t d = DBP__ONES * (unsigned char)e->delim;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = dbp__load64(p + i);
    if (dbp__has_less(x, 0x20) | dbp__has_byte(x, DBP__ONES * '\\') | dbp__has_byte(x, d)) break;
  }
  for (; i < n; i++) {
    if (e->special[(unsigned char)p[i]]) return i;
  }
  return n;
}

/* Writes one non-NULL field at w (room for 2n bytes); returns the end. */
static char *tsv_field(const dbp_encoder *e, char *w, const char *p, size_t n) {
  const char *end = p + n;
  for (;;) {
    size_t k = tsv_scan(e, p, (size_t)(end - p));
    memcpy(w, p, k);
    w += k;
    p += k;
    if (p == end) return w;
    unsigned char c = (unsigned char)*p++;
    char esc = 0;
    switch (c) {
      case '\b':
        esc = 'b';
        break;
      case '\f':
        esc = 'f';
        break;
      case '\n':
        esc = 'n';
        break;
      case '\r':
        esc = 'r';
        break;
      case '\t':
        esc = 't';
        break;
      case '\v':
        esc = 'v';
        break;
      default:
        /* A backslash, the delimiter: escaped as themselves. Any other
         * control character is written raw, as COPY does. */
        if (c == '\\' || c == (unsigned char)e->delim) esc = (char)c;
        break;
    }
    if (esc) {
      *w++ = '\\';
      *w++ = esc;
    } else {
      *w++ = (char)c;
    }
  }
}

int dbp__tsv_header(dbp_encoder *e, dbp_buf *out) {
  size_t need = 2;
  for (size_t i = 0; i < e->ncols; i++) need += 2 * strlen(e->cols[i].name) + 1;
  int rc = dbp_buf_reserve(out, need);
  if (rc != 0) return rc;
  char *w = out->data + out->len;
  for (size_t i = 0; i < e->ncols; i++) {
    if (i > 0) *w++ = e->delim;
    w = tsv_field(e, w, e->cols[i].name, strlen(e->cols[i].name));
  }
  w = dbp__line_end(e, w);
  out->len = (size_t)(w - out->data);
  return 0;
}

/* Encodes one row (worst case reserved once). A binary value's text form
 * "\x4142" is escaped like any text, so it is written as \\x4142, exactly
 * what COPY writes for bytea. */
int dbp__tsv_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out) {
  size_t need = 2;
  for (size_t i = 0; i < e->ncols; i++) {
    size_t n = row->vals[i] == NULL ? e->null_len : row->lens[i];
    if (n > SIZE_MAX / 8 || need > SIZE_MAX / 2) return DBP_ENOMEM;
    need += 2 * n + 4;
  }
  int rc = dbp_buf_reserve(out, need);
  if (rc != 0) return rc;
  char *w = out->data + out->len;
  for (size_t i = 0; i < e->ncols; i++) {
    if (i > 0) *w++ = e->delim;
    const char *v = row->vals[i];
    if (v == NULL) {
      memcpy(w, e->null_str, e->null_len);
      w += e->null_len;
    } else if (e->cols[i].type == DBP_T_BYTES) {
      /* The delimiter is never a hex digit, 'x' or a backslash (checked at
       * creation), so only the leading backslash needs its escape. */
      *w++ = '\\';
      w = dbp__hex_text(w, v, row->lens[i]);
    } else {
      w = tsv_field(e, w, v, row->lens[i]);
    }
  }
  w = dbp__line_end(e, w);
  out->len = (size_t)(w - out->data);
  return 0;
}
