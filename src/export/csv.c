/* CSV with the rules of PostgreSQL's COPY ... (FORMAT csv): a field is
 * quoted when it holds the delimiter, the quote, CR or LF, when it equals
 * the NULL string (so the empty string is "" while NULL stays empty), or when
 * it is the lone field of a row and reads \. (the end-of-data marker).
 * Quotes inside are doubled. */
#include <stdint.h>
#include <string.h>

#include "export/export_int.h"

/* True when p[0..n) holds a byte CSV must quote for. Eight bytes at a time
 * until a candidate word, then byte by byte through the table. */
static bool csv_needs_quotes(const dbp_encoder *e, const char *p, size_t n) {
  const uint64_t d = DBP__ONES * (unsigned char)e->delim;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = dbp__load64(p + i);
    if (dbp__has_byte(x, d) | dbp__has_byte(x, DBP__ONES * '"') |
        dbp__has_byte(x, DBP__ONES * '\n') | dbp__has_byte(x, DBP__ONES * '\r'))
      break;
  }
  for (; i < n; i++) {
    if (e->special[(unsigned char)p[i]]) return true;
  }
  return false;
}

/* Writes one non-NULL field at w (room for 2n + 2 bytes) and returns the
 * end. `single` says the row has exactly one column. */
static char *csv_field(const dbp_encoder *e, char *w, const char *p, size_t n, bool single) {
  bool quote = (n == e->null_len && memcmp(p, e->null_str, n) == 0) ||
               (single && n == 2 && p[0] == '\\' && p[1] == '.') || csv_needs_quotes(e, p, n);
  if (!quote) {
    memcpy(w, p, n);
    return w + n;
  }
  const char *end = p + n;
  *w++ = '"';
  while (p < end) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL) {
      memcpy(w, p, (size_t)(end - p));
      w += end - p;
      break;
    }
    memcpy(w, p, (size_t)(q - p + 1));
    w += q - p + 1;
    *w++ = '"';
    p = q + 1;
  }
  *w++ = '"';
  return w;
}

int dbp__csv_header(dbp_encoder *e, dbp_buf *out) {
  size_t need = 2;
  for (size_t i = 0; i < e->ncols; i++) need += 2 * strlen(e->cols[i].name) + 3;
  int rc = dbp_buf_reserve(out, need);
  if (rc != 0) return rc;
  char *w = out->data + out->len;
  for (size_t i = 0; i < e->ncols; i++) {
    if (i > 0) *w++ = e->delim;
    const char *name = e->cols[i].name;
    w = csv_field(e, w, name, strlen(name), e->ncols == 1);
  }
  w = dbp__line_end(e, w);
  out->len = (size_t)(w - out->data);
  return 0;
}

/* Encodes one row: reserves the worst case once (every byte a quote), then
 * writes without further checks. Binary values become "\x" + hex text first
 * (in the encoder's scratch buffer), then follow the same rules. */
int dbp__csv_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out) {
  size_t need = 2;
  for (size_t i = 0; i < e->ncols; i++) {
    size_t n = row->vals[i] == NULL ? e->null_len : row->lens[i];
    if (n > SIZE_MAX / 8 || need > SIZE_MAX / 2) return DBP_ENOMEM;
    if (row->vals[i] != NULL && e->cols[i].type == DBP_T_BYTES) n = 2 + 2 * n;
    need += 2 * n + 3;
  }
  int rc = dbp_buf_reserve(out, need);
  if (rc != 0) return rc;
  char *w = out->data + out->len;
  const bool single = e->ncols == 1;
  for (size_t i = 0; i < e->ncols; i++) {
    if (i > 0) *w++ = e->delim;
    const char *v = row->vals[i];
    if (v == NULL) {
      memcpy(w, e->null_str, e->null_len);
      w += e->null_len;
    } else if (e->cols[i].type == DBP_T_BYTES) {
      e->scratch.len = 0;
      rc = dbp_buf_reserve(&e->scratch, 2 + 2 * row->lens[i]);
      if (rc != 0) return rc;
      char *end = dbp__hex_text(e->scratch.data, v, row->lens[i]);
      w = csv_field(e, w, e->scratch.data, (size_t)(end - e->scratch.data), single);
    } else {
      w = csv_field(e, w, v, row->lens[i], single);
    }
  }
  w = dbp__line_end(e, w);
  out->len = (size_t)(w - out->data);
  return 0;
}
