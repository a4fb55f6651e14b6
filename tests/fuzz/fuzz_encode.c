/* Fuzz target for the encoders: builds a set of columns and rows from the
 * input, encodes them (header and rows) and reads the output back with a
 * small parser of its own, written from the format's rules and not from
 * the encoder, then compares cell by cell.
 *
 * Built three times, once per format: FZ_FORMAT is DBP_FMT_CSV, DBP_FMT_TSV
 * or DBP_FMT_JSONL (fuzz_csv, fuzz_tsv, fuzz_jsonl).
 *
 * Input layout:
 *   byte 0      options: bit 0 CRLF line ends, bit 1 no header, bits 2-3
 *               the delimiter, bits 4-5 the NULL string (CSV only)
 *   byte 1      number of columns, 1 + b % 6
 *   per column  a type byte, a name length byte (% 17) and the name
 *   the rest    cells, row by row: a length byte (0xFF = SQL NULL) and
 *               that many bytes; at most 64 rows, a last partial row is
 *               padded with empty strings.
 *
 * Properties: the encoder accepts every value; the output parses; it has
 * exactly the header and rows given; every cell reads back as its value
 * (NULL as NULL; binary as \x + lowercase hex; JSON Lines: numbers with
 * their own digits when they are JSON numbers, t/f/1/0 as booleans, valid
 * JSON embedded, the rest strings); JSON Lines output is valid UTF-8 and
 * one object per line. */
#include "dbpipe/export.h"
#include "fuzz.h"

#ifndef FZ_FORMAT
#define FZ_FORMAT DBP_FMT_CSV
#endif

#define MAX_COLS 6
#define MAX_ROWS 64

typedef struct cell {
  char *v; /* NULL = SQL NULL; else malloc'd, exactly n bytes */
  size_t n;
} cell;

typedef struct table {
  dbp_encode_options opts;
  size_t ncols, nrows;
  dbp_column cols[MAX_COLS];
  char names[MAX_COLS][18];
  cell cells[MAX_ROWS][MAX_COLS];
} table;

static const struct {
  dbp_type t;
  const char *name;
  uint32_t id;
} types[] = {
    {DBP_T_INTEGER, "int8", 20},  {DBP_T_NUMERIC, "numeric", 1700},
    {DBP_T_FLOAT, "float8", 701}, {DBP_T_BOOL, "bool", 16},
    {DBP_T_TEXT, "text", 25},     {DBP_T_BYTES, "bytea", 17},
    {DBP_T_JSON, "jsonb", 3802},  {DBP_T_DATE, "date", 1082},
    {DBP_T_TIME, "time", 1083},   {DBP_T_TIMESTAMP, "timestamptz", 1184},
    {DBP_T_OTHER, "uuid", 2950},
};

/* ---- building the input table ---- */

static void table_build(table *t, fz_in *in) {
  memset(t, 0, sizeof *t);
  uint8_t o = fz_byte(in);
  t->opts.format = FZ_FORMAT;
  t->opts.crlf = o & 1;
  if (FZ_FORMAT == DBP_FMT_CSV) {
    static const char delims[] = {',', ';', '|', '\t'};
    static const char *const nulls[] = {NULL, "NULL", "\\N", ""};
    t->opts.no_header = (o >> 1) & 1;
    t->opts.delimiter = delims[(o >> 2) & 3];
    t->opts.null_string = nulls[(o >> 4) & 3];
  } else if (FZ_FORMAT == DBP_FMT_TSV) {
    /* Only the default NULL string: text COPY cannot tell a value equal to
     * a custom NULL string from NULL, by design. */
    static const char delims[] = {'\t', ',', '|', ';'};
    t->opts.no_header = (o >> 1) & 1;
    t->opts.delimiter = delims[(o >> 2) & 3];
  }
  t->ncols = 1 + fz_byte(in) % MAX_COLS;
  for (size_t i = 0; i < t->ncols; i++) {
    size_t k = fz_byte(in) % (sizeof types / sizeof types[0]);
    size_t got;
    const uint8_t *name = fz_bytes(in, fz_byte(in) % 17, &got);
    memcpy(t->names[i], name, got);
    /* Names are C strings: a NUL byte would end them early. */
    for (size_t j = 0; j < got; j++)
      if (t->names[i][j] == '\0') t->names[i][j] = '0';
    t->names[i][got] = '\0';
    t->cols[i] = (dbp_column){t->names[i], types[k].t, types[k].name, types[k].id};
  }
  while (in->n > 0 && t->nrows < MAX_ROWS) {
    for (size_t i = 0; i < t->ncols; i++) {
      cell *c = &t->cells[t->nrows][i];
      uint8_t len = fz_byte(in);
      if (len == 0xFF) continue;
      size_t got;
      const uint8_t *p = fz_bytes(in, len, &got);
      c->v = malloc(got ? got : 1);
      memcpy(c->v, p, got);
      c->n = got;
    }
    t->nrows++;
  }
}

static void table_free(table *t) {
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t i = 0; i < t->ncols; i++) free(t->cells[r][i].v);
}

/* The text a CSV or TSV reader must get back for a non-NULL cell (binary
 * values as \x + hex). *own is what the caller frees. */
static const char *want_text(const table *t, const cell *c, size_t col, size_t *n, char **own) {
  *own = NULL;
  if (t->cols[col].type == DBP_T_BYTES) {
    *own = fz_hex((const uint8_t *)c->v, c->n, n);
    return *own;
  }
  *n = c->n;
  return c->v;
}

/* ---- a growable byte string for the readers ---- */

typedef struct str {
  char *p;
  size_t n, cap;
} str;

static void str_put(str *s, const void *p, size_t n) {
  if (s->n + n + 1 > s->cap) {
    s->cap = (s->n + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
  }
  memcpy(s->p + s->n, p, n);
  s->n += n;
  s->p[s->n] = '\0';
}

static void str_ch(str *s, char c) {
  str_put(s, &c, 1);
}

/* ---- CSV ---- */

typedef struct field {
  str text;
  bool quoted;
} field;

/* Reads one CSV record at out[*pos] into f (room for maxf fields), by RFC
 * 4180 with COPY's choices: a quoted field doubles its quotes; an unquoted
 * field holds no quote, CR or LF; every record ends with the line end.
 * Returns the field count; fails the run on a syntax error. */
static size_t csv_record(const table *t, const char *out, size_t len, size_t *pos, field *f,
                         size_t maxf) {
  char delim = t->opts.delimiter ? t->opts.delimiter : ',';
  size_t i = *pos, nf = 0;
  for (;;) {
    FZ_CHECK(nf < maxf, "CSV: more fields than columns in the record at byte %zu", *pos);
    field *fd = &f[nf++];
    fd->text.n = 0;
    str_put(&fd->text, "", 0);
    fd->quoted = false;
    if (i < len && out[i] == '"') {
      fd->quoted = true;
      i++;
      for (;;) {
        FZ_CHECK(i < len, "CSV: unterminated quoted field");
        if (out[i] == '"') {
          if (i + 1 < len && out[i + 1] == '"') {
            str_ch(&fd->text, '"');
            i += 2;
            continue;
          }
          i++;
          break;
        }
        str_ch(&fd->text, out[i++]);
      }
    } else {
      while (i < len && out[i] != delim && out[i] != '\n' && out[i] != '\r') {
        FZ_CHECK(out[i] != '"', "CSV: a quote in an unquoted field at byte %zu", i);
        str_ch(&fd->text, out[i++]);
      }
    }
    FZ_CHECK(i < len, "CSV: the last record has no line end");
    if (out[i] == delim) {
      i++;
      continue;
    }
    if (t->opts.crlf) {
      FZ_CHECK(out[i] == '\r' && i + 1 < len && out[i + 1] == '\n',
               "CSV: expected CRLF at byte %zu", i);
      i += 2;
    } else {
      FZ_CHECK(out[i] == '\n', "CSV: an unquoted CR at byte %zu", i);
      i++;
    }
    *pos = i;
    return nf;
  }
}

static void csv_verify(const table *t, const char *out, size_t len) {
  const char *null = t->opts.null_string ? t->opts.null_string : "";
  field f[MAX_COLS] = {0};
  size_t pos = 0;
  if (!t->opts.no_header) {
    size_t nf = csv_record(t, out, len, &pos, f, MAX_COLS);
    FZ_CHECK(nf == t->ncols, "CSV header: %zu fields for %zu columns", nf, t->ncols);
    for (size_t i = 0; i < nf; i++)
      FZ_CHECK(strcmp(f[i].text.p, t->names[i]) == 0, "CSV header: column %zu reads '%s', not '%s'",
               i, f[i].text.p, t->names[i]);
  }
  for (size_t r = 0; r < t->nrows; r++) {
    FZ_CHECK(pos < len, "CSV: %zu rows written, %zu given", r, t->nrows);
    size_t nf = csv_record(t, out, len, &pos, f, MAX_COLS);
    FZ_CHECK(nf == t->ncols, "CSV row %zu: %zu fields for %zu columns", r, nf, t->ncols);
    for (size_t i = 0; i < nf; i++) {
      const cell *c = &t->cells[r][i];
      bool is_null = !f[i].quoted && strcmp(f[i].text.p, null) == 0 && f[i].text.n == strlen(null);
      /* COPY quotes a lone \. in a one-column row: unquoted it would end
       * the data for a COPY FROM reading the file back. */
      FZ_CHECK(
          t->ncols > 1 || f[i].quoted || f[i].text.n != 2 || memcmp(f[i].text.p, "\\.", 2) != 0,
          "CSV row %zu: an unquoted \\. in a one-column row", r);
      if (c->v == NULL) {
        FZ_CHECK(is_null, "CSV row %zu col %zu: NULL reads back as a value", r, i);
        continue;
      }
      FZ_CHECK(!is_null, "CSV row %zu col %zu: a value reads back as NULL", r, i);
      size_t wn;
      char *own;
      const char *w = want_text(t, c, i, &wn, &own);
      if (f[i].text.n != wn || memcmp(f[i].text.p, w, wn) != 0) {
        fz_dump("want", w, wn);
        fz_dump("got", f[i].text.p, f[i].text.n);
        FZ_FAIL("CSV row %zu col %zu: the value does not read back", r, i);
      }
      free(own);
    }
  }
  FZ_CHECK(pos == len, "CSV: %zu bytes after the last row", len - pos);
  for (size_t i = 0; i < MAX_COLS; i++) free(f[i].text.p);
}

/* ---- TSV (PostgreSQL's text COPY format with a header) ---- */

static int hexdig(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Undoes the text format's escapes in raw[0..n) into s. */
static void tsv_unescape(const char *raw, size_t n, str *s) {
  s->n = 0;
  str_put(s, "", 0);
  for (size_t i = 0; i < n; i++) {
    if (raw[i] != '\\') {
      str_ch(s, raw[i]);
      continue;
    }
    FZ_CHECK(i + 1 < n, "TSV: a field ends in a lone backslash");
    char c = raw[++i];
    switch (c) {
      case 'b':
        str_ch(s, '\b');
        break;
      case 'f':
        str_ch(s, '\f');
        break;
      case 'n':
        str_ch(s, '\n');
        break;
      case 'r':
        str_ch(s, '\r');
        break;
      case 't':
        str_ch(s, '\t');
        break;
      case 'v':
        str_ch(s, '\v');
        break;
      case 'x': {
        int v = 0, k = 0;
        while (k < 2 && i + 1 < n && hexdig(raw[i + 1]) >= 0) v = v * 16 + hexdig(raw[++i]), k++;
        str_ch(s, k ? (char)v : 'x');
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          int v = c - '0', k = 1;
          while (k < 3 && i + 1 < n && raw[i + 1] >= '0' && raw[i + 1] <= '7')
            v = v * 8 + (raw[++i] - '0'), k++;
          str_ch(s, (char)v);
        } else {
          str_ch(s, c);
        }
    }
  }
}

/* Splits the line out[*pos..] into raw fields (a backslash escapes the
 * byte after it, so an escaped delimiter does not split). Returns the
 * count; starts and lengths go to st/ln. */
static size_t tsv_line(const table *t, const char *out, size_t len, size_t *pos, size_t *st,
                       size_t *ln, size_t maxf) {
  char delim = t->opts.delimiter ? t->opts.delimiter : '\t';
  const char *nl = memchr(out + *pos, '\n', len - *pos);
  FZ_CHECK(nl != NULL, "TSV: the last line has no line end");
  size_t end = (size_t)(nl - out);
  size_t next = end + 1;
  if (t->opts.crlf) {
    FZ_CHECK(end > *pos && out[end - 1] == '\r', "TSV: expected CRLF at byte %zu", end);
    end--;
  }
  size_t nf = 0, s = *pos;
  for (size_t i = *pos; i <= end; i++) {
    if (i < end && out[i] == '\\') {
      i++;
      continue;
    }
    if (i == end || out[i] == delim) {
      FZ_CHECK(nf < maxf, "TSV: more fields than columns");
      st[nf] = s;
      ln[nf] = (i > end ? end : i) - s;
      nf++;
      s = i + 1;
    }
  }
  *pos = next;
  return nf;
}

static void tsv_verify(const table *t, const char *out, size_t len) {
  size_t st[MAX_COLS], ln[MAX_COLS], pos = 0;
  str s = {0};
  if (!t->opts.no_header) {
    size_t nf = tsv_line(t, out, len, &pos, st, ln, MAX_COLS);
    FZ_CHECK(nf == t->ncols, "TSV header: %zu fields for %zu columns", nf, t->ncols);
    for (size_t i = 0; i < nf; i++) {
      tsv_unescape(out + st[i], ln[i], &s);
      FZ_CHECK(strcmp(s.p, t->names[i]) == 0 && s.n == strlen(t->names[i]),
               "TSV header: column %zu reads '%s', not '%s'", i, s.p, t->names[i]);
    }
  }
  for (size_t r = 0; r < t->nrows; r++) {
    FZ_CHECK(pos < len, "TSV: %zu rows written, %zu given", r, t->nrows);
    size_t nf = tsv_line(t, out, len, &pos, st, ln, MAX_COLS);
    FZ_CHECK(nf == t->ncols, "TSV row %zu: %zu fields for %zu columns", r, nf, t->ncols);
    for (size_t i = 0; i < nf; i++) {
      const cell *c = &t->cells[r][i];
      bool is_null = ln[i] == 2 && memcmp(out + st[i], "\\N", 2) == 0;
      if (c->v == NULL) {
        FZ_CHECK(is_null, "TSV row %zu col %zu: NULL reads back as a value", r, i);
        continue;
      }
      FZ_CHECK(!is_null, "TSV row %zu col %zu: a value reads back as NULL", r, i);
      tsv_unescape(out + st[i], ln[i], &s);
      size_t wn;
      char *own;
      const char *w = want_text(t, c, i, &wn, &own);
      if (s.n != wn || memcmp(s.p, w, wn) != 0) {
        fz_dump("want", w, wn);
        fz_dump("raw", out + st[i], ln[i]);
        fz_dump("got", s.p, s.n);
        FZ_FAIL("TSV row %zu col %zu: the value does not read back", r, i);
      }
      free(own);
    }
  }
  FZ_CHECK(pos == len, "TSV: %zu bytes after the last row", len - pos);
  free(s.p);
}

/* ---- JSON Lines ---- */

/* A canonical form of a JSON value, so two texts of the same value compare
 * equal: N T F, n<len>:<digits>, s<len>:<bytes>, [a,b], {k:v,...}. */
static void canon_str(str *c, const char *p, size_t n) {
  char head[24];
  snprintf(head, sizeof head, "s%zu:", n);
  str_put(c, head, strlen(head));
  str_put(c, p, n);
}

static const char *j_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static void utf8_put(str *s, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | cp >> 6);
    b[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | cp >> 12);
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (char)(0xF0 | cp >> 18);
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  str_put(s, b, n);
}

static bool j_hex4(const char *p, const char *end, unsigned *v) {
  if (end - p < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int d = hexdig(p[i]);
    if (d < 0) return false;
    *v = *v * 16 + (unsigned)d;
  }
  return true;
}

/* Decodes the JSON string at p (at its opening quote) into s. Returns the
 * end, or NULL when it is not a JSON string. */
static const char *j_string(const char *p, const char *end, str *s) {
  if (p >= end || *p != '"') return NULL;
  p++;
  s->n = 0;
  str_put(s, "", 0);
  while (p < end && *p != '"') {
    unsigned char ch = (unsigned char)*p;
    if (ch < 0x20) return NULL;
    if (ch != '\\') {
      str_ch(s, *p++);
      continue;
    }
    if (++p >= end) return NULL;
    char e = *p++;
    switch (e) {
      case '"':
        str_ch(s, '"');
        break;
      case '\\':
        str_ch(s, '\\');
        break;
      case '/':
        str_ch(s, '/');
        break;
      case 'b':
        str_ch(s, '\b');
        break;
      case 'f':
        str_ch(s, '\f');
        break;
      case 'n':
        str_ch(s, '\n');
        break;
      case 'r':
        str_ch(s, '\r');
        break;
      case 't':
        str_ch(s, '\t');
        break;
      case 'u': {
        unsigned v, lo;
        if (!j_hex4(p, end, &v)) return NULL;
        p += 4;
        if (v >= 0xD800 && v <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            j_hex4(p + 2, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
          v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        utf8_put(s, v); /* a lone surrogate gives ill-formed UTF-8, caught later */
        break;
      }
      default:
        return NULL;
    }
  }
  return p < end ? p + 1 : NULL;
}

/* Parses one JSON value at p into its canonical form c. Returns the end or
 * NULL. */
static const char *j_value(const char *p, const char *end, str *c, int depth) {
  p = j_ws(p, end);
  if (p >= end || depth > 2000) return NULL;
  if (*p == '{' || *p == '[') {
    bool obj = *p == '{';
    char close = obj ? '}' : ']';
    str_ch(c, *p);
    p = j_ws(p + 1, end);
    if (p < end && *p == close) {
      str_ch(c, close);
      return p + 1;
    }
    str key = {0};
    for (;;) {
      if (obj) {
        p = j_string(j_ws(p, end), end, &key);
        if (p == NULL) break;
        canon_str(c, key.p, key.n);
        p = j_ws(p, end);
        if (p >= end || *p++ != ':') break;
        str_ch(c, ':');
      }
      p = j_value(p, end, c, depth + 1);
      if (p == NULL) break;
      p = j_ws(p, end);
      if (p < end && *p == ',') {
        str_ch(c, ',');
        p++;
        continue;
      }
      if (p < end && *p == close) {
        str_ch(c, close);
        free(key.p);
        return p + 1;
      }
      break;
    }
    free(key.p);
    return NULL;
  }
  if (*p == '"') {
    str s = {0};
    const char *q = j_string(p, end, &s);
    if (q != NULL) canon_str(c, s.p, s.n);
    free(s.p);
    return q;
  }
  if (end - p >= 4 && memcmp(p, "true", 4) == 0) return str_ch(c, 'T'), p + 4;
  if (end - p >= 5 && memcmp(p, "false", 5) == 0) return str_ch(c, 'F'), p + 5;
  if (end - p >= 4 && memcmp(p, "null", 4) == 0) return str_ch(c, 'N'), p + 4;
  const char *q = p;
  while (q < end && ((*q >= '0' && *q <= '9') || *q == '-' || *q == '+' || *q == '.' || *q == 'e' ||
                     *q == 'E'))
    q++;
  if (q == p || !fz_json_number(p, (size_t)(q - p))) return NULL;
  char head[24];
  snprintf(head, sizeof head, "n%zu:", (size_t)(q - p));
  str_put(c, head, strlen(head));
  str_put(c, p, (size_t)(q - p));
  return q;
}

/* The canonical form a cell must read back as; *strict is false when only
 * "some string" can be asked (a text value with ill-formed UTF-8, whose
 * replacement characters are the encoder's choice). */
static void jsonl_want(const table *t, const cell *c, size_t col, str *w, bool *strict) {
  *strict = true;
  w->n = 0;
  str_put(w, "", 0);
  if (c->v == NULL) {
    str_ch(w, 'N');
    return;
  }
  bool utf8 = fz_utf8_ok((const unsigned char *)c->v, c->n);
  switch (t->cols[col].type) {
    case DBP_T_INTEGER:
    case DBP_T_NUMERIC:
    case DBP_T_FLOAT:
      if (fz_json_number(c->v, c->n)) {
        char head[24];
        snprintf(head, sizeof head, "n%zu:", c->n);
        str_put(w, head, strlen(head));
        str_put(w, c->v, c->n);
        return;
      }
      break;
    case DBP_T_BOOL:
      if (c->n == 1 && (c->v[0] == 't' || c->v[0] == '1')) return str_ch(w, 'T');
      if (c->n == 1 && (c->v[0] == 'f' || c->v[0] == '0')) return str_ch(w, 'F');
      break;
    case DBP_T_JSON:
      if (utf8) {
        const char *end = c->v + c->n;
        const char *q = j_value(c->v, end, w, 0);
        if (q != NULL && j_ws(q, end) == end) return;
        w->n = 0;
      }
      break;
    case DBP_T_BYTES: {
      size_t n;
      char *hex = fz_hex((const uint8_t *)c->v, c->n, &n);
      canon_str(w, hex, n);
      free(hex);
      return;
    }
    default:
      break;
  }
  *strict = utf8;
  canon_str(w, c->v, c->n);
}

static void jsonl_verify(const table *t, const char *out, size_t len) {
  FZ_CHECK(fz_utf8_ok((const unsigned char *)out, len), "JSONL: the output is not valid UTF-8");
  size_t pos = 0;
  str got = {0}, want = {0}, key = {0};
  for (size_t r = 0; r < t->nrows; r++) {
    FZ_CHECK(pos < len, "JSONL: %zu rows written, %zu given", r, t->nrows);
    const char *line = out + pos, *nl = memchr(line, '\n', len - pos);
    FZ_CHECK(nl != NULL, "JSONL: the last line has no line end");
    const char *end = nl;
    if (t->opts.crlf) {
      FZ_CHECK(end > line && end[-1] == '\r', "JSONL row %zu: expected CRLF", r);
      end--;
    }
    const char *p = line;
    FZ_CHECK(p < end && *p == '{', "JSONL row %zu: not an object", r);
    p++;
    for (size_t i = 0; i < t->ncols; i++) {
      /* Embedded json values may keep their own whitespace. */
      p = j_ws(p, end);
      if (i > 0) {
        FZ_CHECK(p < end && *p == ',', "JSONL row %zu: expected ',' before column %zu", r, i);
        p++;
      }
      p = j_string(p, end, &key);
      FZ_CHECK(p != NULL, "JSONL row %zu: column %zu has no key", r, i);
      if (fz_utf8_ok((const unsigned char *)t->names[i], strlen(t->names[i])))
        FZ_CHECK(key.n == strlen(t->names[i]) && memcmp(key.p, t->names[i], key.n) == 0,
                 "JSONL row %zu: key %zu is '%s', not '%s'", r, i, key.p, t->names[i]);
      FZ_CHECK(p < end && *p == ':', "JSONL row %zu: no ':' after key %zu", r, i);
      p++;
      got.n = 0;
      str_put(&got, "", 0);
      p = j_value(p, end, &got, 0);
      FZ_CHECK(p != NULL, "JSONL row %zu col %zu: not a JSON value", r, i);
      bool strict;
      jsonl_want(t, &t->cells[r][i], i, &want, &strict);
      if (strict ? (got.n != want.n || memcmp(got.p, want.p, got.n) != 0) : got.p[0] != 's') {
        const cell *c = &t->cells[r][i];
        if (c->v) fz_dump("cell", c->v, c->n);
        fz_dump("want", want.p, want.n);
        fz_dump("got", got.p, got.n);
        FZ_FAIL("JSONL row %zu col %zu (%s): the value does not read back", r, i,
                t->cols[i].db_type);
      }
    }
    p = j_ws(p, end);
    if (!(p < end && *p == '}' && p + 1 == end)) {
      fz_dump("line", line, (size_t)(nl - line));
      FZ_FAIL("JSONL row %zu: the object does not end the line", r);
    }
    pos = (size_t)(nl - out) + 1;
  }
  FZ_CHECK(pos == len, "JSONL: %zu bytes after the last row", len - pos);
  free(got.p);
  free(want.p);
  free(key.p);
}

/* ---- the target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size};
  table *t = malloc(sizeof *t);
  table_build(t, &in);
  dbp_encoder *e = NULL;
  int rc = dbp_encoder_new(&t->opts, t->cols, t->ncols, &e);
  FZ_CHECK(rc == 0, "the encoder refused valid options (%d)", rc);
  dbp_buf out = {0};
  FZ_CHECK(dbp_encoder_header(e, &out) == 0, "header failed");
  for (size_t r = 0; r < t->nrows; r++) {
    const char *vals[MAX_COLS];
    size_t lens[MAX_COLS];
    for (size_t i = 0; i < t->ncols; i++) {
      vals[i] = t->cells[r][i].v;
      lens[i] = t->cells[r][i].n;
    }
    dbp_row row = {t->ncols, vals, lens};
    FZ_CHECK(dbp_encoder_row(e, &row, &out) == 0, "row %zu failed", r);
  }
  /* An exact-size copy, so a reader overrun is caught by ASan. */
  char *copy = malloc(out.len ? out.len : 1);
  if (out.len) memcpy(copy, out.data, out.len);
  if (FZ_FORMAT == DBP_FMT_CSV) {
    csv_verify(t, copy, out.len);
  } else if (FZ_FORMAT == DBP_FMT_TSV) {
    tsv_verify(t, copy, out.len);
  } else {
    jsonl_verify(t, copy, out.len);
  }
  free(copy);
  dbp_buf_free(&out);
  dbp_encoder_free(e);
  table_free(t);
  free(t);
  return 0;
}
