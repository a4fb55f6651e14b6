/* dbp_encoder: option checks, column metadata copies and dispatch to the
 * CSV, TSV and JSON Lines writers. */
#include <stdlib.h>
#include <string.h>

#include "export/export_int.h"

static char *dup_str(const char *s) {
  if (s == NULL) s = "";
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Checks the options the way PostgreSQL's COPY checks its own, so that an
 * encoder never produces output COPY could not read back:
 *  - the delimiter is one ASCII byte, not CR or LF; CSV: not the quote;
 *    text (TSV): not a backslash, '.', a lowercase letter or a digit, which
 *    the escapes use;
 *  - the NULL string has no CR or LF and holds neither the delimiter nor,
 *    for CSV, the quote. */
static int check_options(dbp_format f, char delim, const char *null_str) {
  unsigned char d = (unsigned char)delim;
  if (d >= 0x80 || d == '\r' || d == '\n') return DBP_EINVAL;
  if (f == DBP_FMT_CSV && d == '"') return DBP_EINVAL;
  if (f == DBP_FMT_TSV && strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789", d) != NULL)
    return DBP_EINVAL;
  if (strpbrk(null_str, "\r\n") != NULL) return DBP_EINVAL;
  if (f != DBP_FMT_JSONL && strchr(null_str, d) != NULL) return DBP_EINVAL;
  if (f == DBP_FMT_CSV && strchr(null_str, '"') != NULL) return DBP_EINVAL;
  return 0;
}

static uint8_t json_kind(dbp_type t) {
  switch (t) {
    case DBP_T_INTEGER:
    case DBP_T_NUMERIC:
    case DBP_T_FLOAT:
      return DBP__J_NUMBER;
    case DBP_T_BOOL:
      return DBP__J_BOOL;
    case DBP_T_JSON:
      return DBP__J_JSON;
    case DBP_T_BYTES:
      return DBP__J_BYTES;
    default:
      return DBP__J_STRING;
  }
}

/* Builds the JSONL key prefixes: `{"name":` for the first column and
 * `,"name":` for the others, so a row is prefix, value, prefix, value... */
static int build_keys(dbp_encoder *e) {
  dbp_buf b = {0};
  int rc = 0;
  e->key_off = malloc((e->ncols + 1) * sizeof *e->key_off);
  if (e->key_off == NULL) return DBP_ENOMEM;
  for (size_t i = 0; i < e->ncols && rc == 0; i++) {
    e->key_off[i] = b.len;
    rc = dbp_buf_append(&b, i == 0 ? "{" : ",", 1);
    if (rc == 0) rc = dbp__json_string(e->cols[i].name, strlen(e->cols[i].name), &b);
    if (rc == 0) rc = dbp_buf_append(&b, ":", 1);
  }
  e->key_off[e->ncols] = b.len;
  if (rc == 0 && b.data == NULL) rc = dbp_buf_reserve(&b, 1);
  if (rc != 0) {
    dbp_buf_free(&b);
    return rc;
  }
  e->keys = b.data;
  return 0;
}

/* Creates an encoder for `ncols` columns described by `cols` (copied: the
 * caller's array and strings may go away). opts->format AUTO means CSV.
 * Returns 0 with *out set, DBP_EINVAL for options COPY would reject (see
 * check_options) or DBP_ENOMEM. */
int dbp_encoder_new(const dbp_encode_options *opts, const dbp_column *cols, size_t ncols,
                    dbp_encoder **out) {
  if (opts == NULL || out == NULL || (ncols > 0 && cols == NULL)) return DBP_EINVAL;
  dbp_format f = opts->format == DBP_FMT_AUTO ? DBP_FMT_CSV : opts->format;
  if (f != DBP_FMT_CSV && f != DBP_FMT_TSV && f != DBP_FMT_JSONL) return DBP_EINVAL;
  char delim = opts->delimiter ? opts->delimiter : (f == DBP_FMT_TSV ? '\t' : ',');
  const char *null_str = opts->null_string ? opts->null_string : (f == DBP_FMT_TSV ? "\\N" : "");
  int rc = check_options(f, delim, null_str);
  if (rc != 0) return rc;

  rc = DBP_ENOMEM;
  dbp_encoder *e = calloc(1, sizeof *e);
  if (e == NULL) return DBP_ENOMEM;
  e->format = f;
  e->delim = delim;
  e->no_header = opts->no_header;
  e->crlf = opts->crlf;
  e->ncols = ncols;
  e->null_str = dup_str(null_str);
  if (e->null_str == NULL) goto err;
  e->null_len = strlen(e->null_str);
  e->cols = calloc(ncols ? ncols : 1, sizeof *e->cols);
  e->jkind = calloc(ncols ? ncols : 1, 1);
  if (e->cols == NULL || e->jkind == NULL) goto err;
  for (size_t i = 0; i < ncols; i++) {
    e->cols[i] = cols[i];
    e->cols[i].name = dup_str(cols[i].name);
    e->cols[i].db_type = dup_str(cols[i].db_type);
    if (e->cols[i].name == NULL || e->cols[i].db_type == NULL) goto err;
    e->jkind[i] = json_kind(cols[i].type);
  }
  if (f == DBP_FMT_JSONL) {
    rc = build_keys(e);
    if (rc != 0) goto err;
  } else if (f == DBP_FMT_CSV) {
    e->special[(unsigned char)delim] = 1;
    e->special['"'] = 1;
    e->special['\n'] = 1;
    e->special['\r'] = 1;
  } else {
    for (int c = 0; c < 0x20; c++) e->special[c] = 1;
    e->special['\\'] = 1;
    e->special[(unsigned char)delim] = 1;
  }
  *out = e;
  return 0;

err:
  dbp_encoder_free(e);
  return rc;
}

/* Appends the header row (column names) unless the options ask for none.
 * JSON Lines has no header. Returns 0 or DBP_ENOMEM. */
int dbp_encoder_header(dbp_encoder *e, dbp_buf *out) {
  if (e == NULL || out == NULL) return DBP_EINVAL;
  if (e->no_header) return 0;
  switch (e->format) {
    case DBP_FMT_CSV:
      return dbp__csv_header(e, out);
    case DBP_FMT_TSV:
      return dbp__tsv_header(e, out);
    default:
      return 0;
  }
}

/* Appends one row. row->ncols must equal the encoder's column count
 * (DBP_EINVAL otherwise). Returns 0 or DBP_ENOMEM. */
int dbp_encoder_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out) {
  if (e == NULL || row == NULL || out == NULL || row->ncols != e->ncols) return DBP_EINVAL;
  switch (e->format) {
    case DBP_FMT_CSV:
      return dbp__csv_row(e, row, out);
    case DBP_FMT_TSV:
      return dbp__tsv_row(e, row, out);
    default:
      return dbp__jsonl_row(e, row, out);
  }
}

void dbp_encoder_free(dbp_encoder *e) {
  if (e == NULL) return;
  if (e->cols) {
    for (size_t i = 0; i < e->ncols; i++) {
      free((char *)e->cols[i].name);
      free((char *)e->cols[i].db_type);
    }
  }
  free(e->cols);
  free(e->jkind);
  free(e->keys);
  free(e->key_off);
  free(e->null_str);
  dbp_buf_free(&e->scratch);
  free(e);
}
