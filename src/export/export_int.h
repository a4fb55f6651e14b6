/* Internal interfaces of the export layer: SHA-256, the encoders' shared
 * state and byte-scanning helpers, path naming. Not installed. */
#ifndef DBPIPE_EXPORT_INT_H
#define DBPIPE_EXPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dbpipe/export.h"

/* ---- SHA-256 ---- */

typedef struct dbp__sha256 {
  uint32_t h[8];
  uint64_t total; /* bytes fed so far */
  uint8_t buf[64];
  size_t nbuf;
} dbp__sha256;

void dbp__sha256_init(dbp__sha256 *s);
void dbp__sha256_update(dbp__sha256 *s, const void *data, size_t n);
void dbp__sha256_final(dbp__sha256 *s, uint8_t out[32]);
void dbp__sha256_final_hex(dbp__sha256 *s, char out[65]);
/* The block function: portable C, or the x86 SHA extensions when the CPU
 * has them (chosen once). Exposed so tests can check one against the other. */
enum { DBP__SHA256_PORTABLE = 0, DBP__SHA256_SHA_NI = 1 };
int dbp__sha256_impl(void);
void dbp__sha256_compress(uint32_t h[8], const uint8_t *p, size_t nblocks, int impl);

/* ---- names ---- */

size_t dbp__path_split_ext(const char *path, dbp_format *fmt, dbp_compression *comp);
/* "dir/out.csv.gz", 3 -> "dir/out-00003.csv.gz" (malloc'd; NULL on ENOMEM). */
char *dbp__part_path(const char *path, unsigned index);

/* ---- encoders ---- */

/* How a column's values are written in JSON Lines. */
enum {
  DBP__J_STRING = 0, /* a JSON string */
  DBP__J_NUMBER,     /* the server's digits when they form a JSON number */
  DBP__J_BOOL,       /* t/f -> true/false */
  DBP__J_JSON,       /* embedded as JSON */
  DBP__J_BYTES       /* raw bytes -> "\\x" + hex */
};

struct dbp_encoder_s {
  dbp_format format;
  char delim;
  bool no_header;
  bool crlf;
  char *null_str; /* NUL-terminated copy */
  size_t null_len;
  size_t ncols;
  dbp_column *cols;     /* copies (names and db_type strings owned) */
  uint8_t *jkind;       /* JSONL: DBP__J_* per column */
  char *keys;           /* JSONL: `{"a":` `,"b":` ... concatenated */
  size_t *key_off;      /* ncols + 1 offsets into keys */
  uint8_t special[256]; /* CSV/TSV: bytes that need work in a field */
  dbp_buf scratch;      /* CSV: hex text of a binary value */
};

/* Writes the encoder's line end at w (room reserved by the caller). */
static inline char *dbp__line_end(const dbp_encoder *e, char *w) {
  if (e->crlf) *w++ = '\r';
  *w++ = '\n';
  return w;
}

int dbp__csv_header(dbp_encoder *e, dbp_buf *out);
int dbp__csv_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out);
int dbp__tsv_header(dbp_encoder *e, dbp_buf *out);
int dbp__tsv_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out);
int dbp__jsonl_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out);
/* Appends `s` as a JSON string (quotes included, invalid UTF-8 replaced by
 * U+FFFD). Used for the JSONL keys. */
int dbp__json_string(const char *s, size_t n, dbp_buf *out);
/* True when s[0..n) is a JSON number (RFC 8259 grammar). */
bool dbp__json_is_number(const char *s, size_t n);
/* True when s[0..n) is exactly one JSON value (with optional whitespace). */
bool dbp__json_is_valid(const char *s, size_t n);

/* Writes "\x" + lowercase hex of p[0..n) at w; returns the end. w must have
 * room for 2 + 2n bytes. */
char *dbp__hex_text(char *w, const void *p, size_t n);

/* ---- word-at-a-time byte scanning ----
 * The classic "has a zero byte" trick: nonzero iff some byte of x equals
 * the byte repeated in `pat` (resp. is below n, for n <= 128). Exact as an
 * existence test; the caller finds the position with a byte loop. */
#define DBP__ONES UINT64_C(0x0101010101010101)
#define DBP__HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t dbp__load64(const void *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  return x;
}
static inline uint64_t dbp__has_byte(uint64_t x, uint64_t pat) {
  uint64_t y = x ^ pat;
  return (y - DBP__ONES) & ~y & DBP__HIGHS;
}
static inline uint64_t dbp__has_less(uint64_t x, unsigned n) {
  return (x - DBP__ONES * n) & ~x & DBP__HIGHS;
}

/* ---- reading COPY output (copytext.c) ---- */

int dbp__copytext_split(const char *line, size_t n, size_t ncols, const char **vals, size_t *lens,
                        dbp_buf *scratch);

#endif /* DBPIPE_EXPORT_INT_H */
