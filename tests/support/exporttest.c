/* Helpers shared by the export tests: see exporttest.h. */
#include "exporttest.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "db/driver.h"
#include "dbtest.h"
#include "rttest.h"

/* ---- a growable string ---- */

void ts_add(tstr *s, const void *p, size_t n) {
  if (s->n + n + 1 > s->cap) {
    s->cap = (s->n + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
    cr_assert_not_null(s->p);
  }
  if (n) memcpy(s->p + s->n, p, n);
  s->n += n;
  s->p[s->n] = '\0';
}
void ts_addc(tstr *s, char c) {
  ts_add(s, &c, 1);
}
void ts_adds(tstr *s, const char *z) {
  ts_add(s, z, strlen(z));
}

/* ---- a table of text cells ---- */

/* Grows an array geometrically so that appending n items costs O(n) (a
 * realloc per item is quadratic under AddressSanitizer, which copies on
 * every realloc). */
void *grow_array(void *p, size_t need, size_t *cap, size_t size) {
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  p = realloc(p, c * size);
  cr_assert_not_null(p);
  *cap = c;
  return p;
}

void table_free(table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++) {
    free(t->cells[i].v);
    free(t->cells[i].raw);
  }
  for (size_t i = 0; i < t->ncols; i++) free(t->names[i]);
  free(t->cells);
  free(t->names);
  free(t->types);
  memset(t, 0, sizeof *t);
}

char *memdup0(const char *p, size_t n) {
  char *d = malloc(n + 1);
  if (n) memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

/* The rows of `sql` as dbp_query/dbp_fetch return them: the reference. */
int ref_query(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params, table *t) {
  memset(t, 0, sizeof *t);
  int rc = dbp_query(c, sql, nparams, params, 30000);
  if (rc != 0) return rc;
  t->ncols = dbp_ncols(c);
  t->names = calloc(t->ncols + 1, sizeof *t->names);
  t->types = calloc(t->ncols + 1, sizeof *t->types);
  for (size_t i = 0; i < t->ncols; i++) {
    t->names[i] = strdup(dbp_columns(c)[i].name);
    t->types[i] = dbp_columns(c)[i].type;
  }
  dbp_row row;
  size_t cells_cap = 0;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    t->cells = grow_array(t->cells, (t->nrows + 1) * (t->ncols + 1), &cells_cap, sizeof *t->cells);
    for (size_t i = 0; i < t->ncols; i++) {
      cell *x = &t->cells[t->nrows * t->ncols + i];
      x->kind = 0;
      x->raw = NULL;
      x->v = row.vals[i] ? memdup0(row.vals[i], row.lens[i]) : NULL;
      x->n = row.vals[i] ? row.lens[i] : 0;
    }
    t->nrows++;
  }
  return rc;
}

/* The text a value should have in the output: binary as \x + hex. */
char *expected_text(const table *t, size_t r, size_t i, size_t *n) {
  const cell *x = &t->cells[r * t->ncols + i];
  if (t->types[i] != DBP_T_BYTES) {
    *n = x->n;
    return memdup0(x->v, x->n);
  }
  static const char hex[] = "0123456789abcdef";
  char *s = malloc(2 * x->n + 3);
  s[0] = '\\';
  s[1] = 'x';
  for (size_t k = 0; k < x->n; k++) {
    s[2 + 2 * k] = hex[(unsigned char)x->v[k] >> 4];
    s[3 + 2 * k] = hex[(unsigned char)x->v[k] & 15];
  }
  *n = 2 * x->n + 2;
  s[*n] = '\0';
  return s;
}

/* ---- files ---- */

bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

char *read_raw(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  tstr s = {0};
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) ts_add(&s, buf, k);
  fclose(f);
  ts_add(&s, "", 0);
  *len = s.n;
  return s.p;
}

/* Reads a file, decompressing it by its name (.gz with zlib, .zst with
 * libzstd); checks the stream is complete. */
char *read_output(const char *path, size_t *len) {
  size_t n;
  char *raw = read_raw(path, &n);
  if (!ends_with(path, ".gz") && !ends_with(path, ".zst")) {
    *len = n;
    return raw;
  }
  tstr out = {0};
  ts_add(&out, "", 0);
  char buf[65536];
  if (ends_with(path, ".gz")) {
    z_stream z = {0};
    cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)raw;
    z.avail_in = (uInt)n;
    int r;
    do {
      z.next_out = (Bytef *)buf;
      z.avail_out = sizeof buf;
      r = inflate(&z, Z_NO_FLUSH);
      cr_assert(r == Z_OK || r == Z_STREAM_END, "%s: inflate %d", path, r);
      ts_add(&out, buf, sizeof buf - z.avail_out);
    } while (r != Z_STREAM_END);
    cr_assert_eq(z.avail_in, 0, "%s: bytes after the gzip stream", path);
    inflateEnd(&z);
  } else {
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer in = {raw, n, 0};
    size_t r = 1;
    while (in.pos < in.size) {
      ZSTD_outBuffer o = {buf, sizeof buf, 0};
      r = ZSTD_decompressStream(d, &o, &in);
      cr_assert(!ZSTD_isError(r), "%s: %s", path, ZSTD_getErrorName(r));
      ts_add(&out, buf, o.pos);
    }
    cr_assert_eq(r, 0, "%s: truncated zstd frame", path);
    ZSTD_freeDCtx(d);
  }
  free(raw);
  *len = out.n;
  return out.p;
}

/* Entries of a directory ("." and ".." excluded). */
int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* Temporary files beside `final` (FINAL.<16 hex digits>.part in its
 * directory), as the writer names them. */
int temps_beside(const char *final) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s", final);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return 0;
  *slash = '\0';
  const char *base = strrchr(final, '/') + 1;
  size_t nb = strlen(base);
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t k = strlen(e->d_name);
    if (k != nb + 22 || strncmp(e->d_name, base, nb) != 0 || e->d_name[nb] != '.' ||
        strcmp(e->d_name + k - 5, ".part") != 0)
      continue;
    bool hex = true;
    for (size_t i = nb + 1; i < nb + 17; i++)
      hex &= (e->d_name[i] >= '0' && e->d_name[i] <= '9') ||
             (e->d_name[i] >= 'a' && e->d_name[i] <= 'f');
    n += hex;
  }
  closedir(d);
  return n;
}

char g_tmp[64];
void make_tmp(void) {
  strcpy(g_tmp, "/tmp/dbp-export-XXXXXX");
  cr_assert_not_null(mkdtemp(g_tmp));
}
void remove_tmp(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd) != 0) cr_log_warn("cannot remove %s", g_tmp);
}
const char *tmp_path(const char *name) {
  static char bufs[8][256];
  static int k;
  char *p = bufs[k++ % 8];
  snprintf(p, 256, "%s/%s", g_tmp, name);
  return p;
}

/* ---- parsers ---- */

/* CSV as COPY writes it: "..." with doubled quotes; an empty unquoted field
 * is NULL (with the default NULL string). */
void parse_csv(const char *s, size_t n, char delim, bool crlf, table *t, bool header) {
  memset(t, 0, sizeof *t);
  size_t i = 0, col = 0, row = 0;
  cell *cells = NULL;
  size_t ncells = 0, cells_cap = 0;
  while (i < n) {
    tstr f = {0};
    ts_add(&f, "", 0);
    bool quoted = false;
    if (s[i] == '"') {
      quoted = true;
      i++;
      for (;;) {
        cr_assert_lt(i, n, "unterminated quoted field");
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') {
            ts_addc(&f, '"');
            i += 2;
            continue;
          }
          i++;
          break;
        }
        ts_addc(&f, s[i++]);
      }
    } else {
      while (i < n && s[i] != delim && s[i] != '\n' && !(crlf && s[i] == '\r')) ts_addc(&f, s[i++]);
    }
    cells = grow_array(cells, ncells + 1, &cells_cap, sizeof *cells);
    cells[ncells++] = (cell){(!quoted && f.n == 0) ? NULL : f.p, f.n, 0, NULL};
    if (!quoted && f.n == 0) free(f.p);
    col++;
    cr_assert_lt(i, n, "row without a line end");
    if (s[i] == delim) {
      i++;
      continue;
    }
    if (crlf) {
      cr_assert_eq(s[i], '\r', "CRLF expected at byte %zu", i);
      i++;
    }
    cr_assert_eq(s[i], '\n');
    i++;
    if (row == 0) t->ncols = col;
    cr_assert_eq(col, t->ncols, "row %zu has %zu fields, not %zu", row, col, t->ncols);
    col = 0;
    row++;
  }
  if (header) {
    cr_assert_geq(row, 1, "no header");
    t->names = calloc(t->ncols + 1, sizeof *t->names);
    for (size_t k = 0; k < t->ncols; k++) t->names[k] = cells[k].v ? cells[k].v : strdup("");
    memmove(cells, cells + t->ncols, (ncells - t->ncols) * sizeof *cells);
    row--;
  } else {
    t->names = calloc(t->ncols + 1, sizeof *t->names);
    for (size_t k = 0; k < t->ncols; k++) t->names[k] = strdup("");
  }
  t->nrows = row;
  t->cells = cells;
}

void text_unescape(const char *p, size_t n, tstr *out) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '\\' || i + 1 == n) {
      ts_addc(out, p[i]);
      continue;
    }
    char c = p[++i];
    switch (c) {
      case 'b':
        ts_addc(out, '\b');
        break;
      case 'f':
        ts_addc(out, '\f');
        break;
      case 'n':
        ts_addc(out, '\n');
        break;
      case 'r':
        ts_addc(out, '\r');
        break;
      case 't':
        ts_addc(out, '\t');
        break;
      case 'v':
        ts_addc(out, '\v');
        break;
      default:
        ts_addc(out, c);
        break;
    }
  }
}

/* PostgreSQL's text format: tab-separated, \N for NULL, backslash escapes. */
void parse_tsv(const char *s, size_t n, bool crlf, table *t, bool header) {
  memset(t, 0, sizeof *t);
  size_t i = 0, row = 0, ncells = 0, cells_cap = 0;
  cell *cells = NULL;
  while (i < n) {
    const char *nl = memchr(s + i, '\n', n - i);
    cr_assert_not_null(nl, "row without a line end");
    size_t end = (size_t)(nl - s);
    if (crlf) {
      cr_assert(end > i && s[end - 1] == '\r', "CRLF expected");
      end--;
    }
    size_t col = 0, start = i;
    for (size_t k = i;; k++) {
      if (k == end || s[k] == '\t') {
        tstr f = {0};
        ts_add(&f, "", 0);
        bool null = k - start == 2 && s[start] == '\\' && s[start + 1] == 'N';
        if (!null) text_unescape(s + start, k - start, &f);
        cells = grow_array(cells, ncells + 1, &cells_cap, sizeof *cells);
        cells[ncells++] = (cell){null ? NULL : f.p, f.n, 0, NULL};
        if (null) free(f.p);
        col++;
        start = k + 1;
        if (k == end) break;
      }
    }
    if (row == 0) t->ncols = col;
    cr_assert_eq(col, t->ncols, "row %zu has %zu fields", row, col);
    row++;
    i = (size_t)(nl - s) + 1;
  }
  t->names = calloc(t->ncols + 1, sizeof *t->names);
  if (header) {
    cr_assert_geq(row, 1);
    for (size_t k = 0; k < t->ncols; k++) t->names[k] = cells[k].v ? cells[k].v : strdup("");
    memmove(cells, cells + t->ncols, (ncells - t->ncols) * sizeof *cells);
    row--;
  } else {
    for (size_t k = 0; k < t->ncols; k++) t->names[k] = strdup("");
  }
  t->nrows = row;
  t->cells = cells;
}

void put_utf8(tstr *o, unsigned cp) {
  if (cp < 0x80) {
    ts_addc(o, (char)cp);
  } else if (cp < 0x800) {
    ts_addc(o, (char)(0xC0 | cp >> 6));
    ts_addc(o, (char)(0x80 | (cp & 63)));
  } else if (cp < 0x10000) {
    ts_addc(o, (char)(0xE0 | cp >> 12));
    ts_addc(o, (char)(0x80 | ((cp >> 6) & 63)));
    ts_addc(o, (char)(0x80 | (cp & 63)));
  } else {
    ts_addc(o, (char)(0xF0 | cp >> 18));
    ts_addc(o, (char)(0x80 | ((cp >> 12) & 63)));
    ts_addc(o, (char)(0x80 | ((cp >> 6) & 63)));
    ts_addc(o, (char)(0x80 | (cp & 63)));
  }
}

unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p[k];
    v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
  }
  return v;
}

/* A JSON string at s[*i] (the quote): decoded into out. */
void json_string(const char *s, size_t n, size_t *i, tstr *out) {
  cr_assert_eq(s[*i], '"');
  (*i)++;
  for (;;) {
    cr_assert_lt(*i, n, "unterminated JSON string");
    char c = s[(*i)++];
    cr_assert_geq((unsigned char)c, 0x20, "raw control byte in a JSON string");
    if (c == '"') return;
    if (c != '\\') {
      ts_addc(out, c);
      continue;
    }
    char e = s[(*i)++];
    switch (e) {
      case 'b':
        ts_addc(out, '\b');
        break;
      case 'f':
        ts_addc(out, '\f');
        break;
      case 'n':
        ts_addc(out, '\n');
        break;
      case 'r':
        ts_addc(out, '\r');
        break;
      case 't':
        ts_addc(out, '\t');
        break;
      case 'u': {
        unsigned cp = hex4(s + *i);
        *i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && s[*i] == '\\' && s[*i + 1] == 'u') {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(s + *i + 2) - 0xDC00);
          *i += 6;
        }
        put_utf8(out, cp);
        break;
      }
      default:
        cr_assert(e == '"' || e == '\\' || e == '/', "bad escape \\%c", e);
        ts_addc(out, e);
        break;
    }
  }
}

/* Skips one JSON value (object, array, string, literal, number). */
void json_skip(const char *s, size_t n, size_t *i) {
  int depth = 0;
  do {
    cr_assert_lt(*i, n);
    char c = s[*i];
    if (c == '"') {
      tstr tmp = {0};
      json_string(s, n, i, &tmp);
      free(tmp.p);
      continue;
    }
    if (c == '{' || c == '[') depth++;
    if (c == '}' || c == ']') depth--;
    (*i)++;
    if (depth == 0 && c != '{' && c != '[' && c != '}' && c != ']') {
      while (*i < n && !strchr(",}] \n", s[*i])) (*i)++;
    }
  } while (depth > 0);
}

/* JSON Lines: one flat object per line; values keep their kind. */
void parse_jsonl(const char *s, size_t n, bool crlf, table *t) {
  memset(t, 0, sizeof *t);
  size_t i = 0, row = 0, ncells = 0, cells_cap = 0;
  cell *cells = NULL;
  char **names = NULL;
  while (i < n) {
    cr_assert_eq(s[i], '{', "row %zu starts with %c", row, s[i]);
    i++;
    size_t col = 0;
    while (s[i] != '}') {
      if (col > 0) {
        cr_assert_eq(s[i], ',');
        i++;
      }
      tstr key = {0};
      ts_add(&key, "", 0);
      json_string(s, n, &i, &key);
      cr_assert_eq(s[i], ':');
      i++;
      if (row == 0) {
        names = realloc(names, (col + 2) * sizeof *names);
        names[col] = key.p;
      } else {
        cr_assert_str_eq(key.p, names[col], "row %zu: key order", row);
        free(key.p);
      }
      cell x = {0};
      size_t start = i;
      if (s[i] == '"') {
        tstr v = {0};
        ts_add(&v, "", 0);
        json_string(s, n, &i, &v);
        x = (cell){v.p, v.n, 's', NULL};
      } else if (strncmp(s + i, "null", 4) == 0) {
        i += 4;
        x = (cell){NULL, 0, 'n', NULL};
      } else if (strncmp(s + i, "true", 4) == 0 || strncmp(s + i, "false", 5) == 0) {
        i += s[i] == 't' ? 4 : 5;
        x = (cell){memdup0(s + start, i - start), i - start, 'b', NULL};
      } else if (s[i] == '{' || s[i] == '[') {
        json_skip(s, n, &i);
        x = (cell){memdup0(s + start, i - start), i - start, 'j', NULL};
      } else {
        while (i < n && !strchr(",}", s[i])) i++;
        x = (cell){memdup0(s + start, i - start), i - start, 'd', NULL};
      }
      x.raw = memdup0(s + start, i - start);
      cells = grow_array(cells, ncells + 1, &cells_cap, sizeof *cells);
      cells[ncells++] = x;
      col++;
    }
    i++;
    if (crlf) {
      cr_assert_eq(s[i], '\r');
      i++;
    }
    cr_assert_eq(s[i], '\n', "one object per line");
    i++;
    if (row == 0) t->ncols = col;
    cr_assert_eq(col, t->ncols);
    row++;
  }
  t->names = names ? names : calloc(1, sizeof *names);
  t->nrows = row;
  t->cells = cells;
}

bool is_json_number(const char *s) {
  /* Compiled once per test process: compiling per cell dominated the run
   * time of wide exports under AddressSanitizer. */
  static regex_t re;
  static bool compiled;
  if (!compiled) {
    cr_assert_eq(regcomp(&re, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$", REG_EXTENDED),
                 0);
    compiled = true;
  }
  return regexec(&re, s, 0, NULL, 0) == 0;
}

/* Compares an exported table with the reference, cell by cell, by the rules
 * of the format. */
void compare_tables(const table *got, const table *ref, dbp_format fmt, bool names,
                    const char *what) {
  cr_assert_eq(got->ncols, ref->ncols, "%s: %zu columns, want %zu", what, got->ncols, ref->ncols);
  cr_assert_eq(got->nrows, ref->nrows, "%s: %zu rows, want %zu", what, got->nrows, ref->nrows);
  if (names) {
    for (size_t i = 0; i < ref->ncols; i++)
      cr_expect_str_eq(got->names[i], ref->names[i], "%s: column %zu name", what, i);
  }
  for (size_t r = 0; r < ref->nrows; r++) {
    for (size_t i = 0; i < ref->ncols; i++) {
      const cell *g = &got->cells[r * ref->ncols + i];
      const cell *w = &ref->cells[r * ref->ncols + i];
      if (w->v == NULL) {
        cr_expect(g->v == NULL && (fmt != DBP_FMT_JSONL || g->kind == 'n'),
                  "%s: row %zu col %s: want NULL, got [%s]", what, r, ref->names[i],
                  g->v ? g->v : "");
        continue;
      }
      size_t n;
      char *want = expected_text(ref, r, i, &n);
      if (fmt == DBP_FMT_JSONL) {
        dbp_type t = ref->types[i];
        if (t == DBP_T_BOOL) {
          cr_expect_eq(g->kind, 'b', "%s: row %zu col %s: bool", what, r, ref->names[i]);
          cr_expect_str_eq(g->v, strcmp(want, "t") == 0 ? "true" : "false");
        } else if (t == DBP_T_JSON) {
          for (size_t k = 0; k < n; k++)
            if (want[k] == '\n' || want[k] == '\r') want[k] = ' ';
          cr_expect_str_eq(g->raw, want, "%s: row %zu col %s: json embedded", what, r,
                           ref->names[i]);
        } else if ((t == DBP_T_INTEGER || t == DBP_T_NUMERIC || t == DBP_T_FLOAT) &&
                   is_json_number(want)) {
          cr_expect_eq(g->kind, 'd', "%s: row %zu col %s: number [%s]", what, r, ref->names[i],
                       want);
          cr_expect_str_eq(g->v, want, "%s: row %zu col %s", what, r, ref->names[i]);
        } else {
          cr_expect_eq(g->kind, 's', "%s: row %zu col %s: string", what, r, ref->names[i]);
          cr_expect(g->v && g->n == n && memcmp(g->v, want, n) == 0,
                    "%s: row %zu col %s: got [%s] want [%s]", what, r, ref->names[i],
                    g->v ? g->v : "(null)", want);
        }
      } else {
        cr_expect(g->v && g->n == n && memcmp(g->v, want, n) == 0,
                  "%s: row %zu col %s: got [%s] want [%s]", what, r, ref->names[i],
                  g->v ? g->v : "(null)", want);
      }
      free(want);
    }
  }
}

/* Parses an export's bytes in its format. */
void parse_output(const char *s, size_t n, const dbp_export_options *o, dbp_format fmt, table *t) {
  bool crlf = o->encode.crlf, header = !o->encode.no_header;
  if (fmt == DBP_FMT_CSV)
    parse_csv(s, n, o->encode.delimiter ? o->encode.delimiter : ',', crlf, t, header);
  else if (fmt == DBP_FMT_TSV)
    parse_tsv(s, n, crlf, t, header);
  else
    parse_jsonl(s, n, crlf, t);
}

/* ---- running exports ---- */

dbp_conn *open_conn(dbp_rt *rt, int kind) {
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_dsn(kind), 20000, &c, &err);
  cr_assert_eq(rc, 0, "connect: %s", err.message);
  return c;
}

int fetch_copy(dbp_conn *c, const char *copy_sql, tstr *out) {
  int rc = dbp__copy_start_sql(c, copy_sql, 30000);
  if (rc != 0) return rc;
  ts_add(out, "", 0);
  const char *p;
  size_t n;
  while ((rc = dbp_copy_read(c, &p, &n)) == 1) ts_add(out, p, n);
  return rc;
}

int body_export(dbp_rt *rt, void *arg) {
  xjob *j = arg;
  dbp_conn *c = open_conn(rt, j->kind);
  j->rc = dbp_export_query(c, j->sql, j->nparams, j->params, j->path, &j->o, &j->res);
  dbp_row row;
  j->conn_idle_after = dbp_query(c, "SELECT 1", 0, NULL, 10000) == 0 && dbp_fetch(c, &row) == 1 &&
                       dbp_fetch(c, &row) == 0;
  if (j->want_ref) cr_assert_eq(ref_query(c, j->sql, j->nparams, j->params, &j->ref), 0);
  if (j->copy_sql) cr_assert_eq(fetch_copy(c, j->copy_sql, &j->copy), 0, "%s", j->copy_sql);
  dbp_conn_close(c);
  return 0;
}

void xjob_free(xjob *j) {
  dbp_export_result_free(&j->res);
  table_free(&j->ref);
  free(j->copy.p);
}

/* sha256sum's digest of a file. */
void sha256sum(const char *path, char out[65]) {
  char cmd[320];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%64s", out), 1);
  pclose(f);
}
