/* dbpipe export: encoders (CSV, TSV, JSON Lines), the atomic file writer
 * (gzip, zstd, split into parts) and the query -> file pipeline.
 */
#ifndef DBPIPE_EXPORT_H
#define DBPIPE_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "db.h"
#include "pool.h"
#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dbp_format { DBP_FMT_AUTO = 0, DBP_FMT_CSV, DBP_FMT_TSV, DBP_FMT_JSONL } dbp_format;
typedef enum dbp_compression {
  DBP_COMP_AUTO = 0,
  DBP_COMP_NONE,
  DBP_COMP_GZIP,
  DBP_COMP_ZSTD
} dbp_compression;

DBP_EXTERN const char *dbp_format_name(dbp_format f);
DBP_EXTERN const char *dbp_compression_name(dbp_compression c);
/* Picks format and compression from a file name: x.csv, x.tsv, x.jsonl,
 * each optionally followed by .gz or .zst. Unknown endings give CSV / none.
 * Either pointer may be NULL. */
DBP_EXTERN void dbp_format_from_path(const char *path, dbp_format *fmt, dbp_compression *comp);
/* Parses "csv"/"tsv"/"jsonl" and "none"/"gzip"/"gz"/"zstd"/"zst". */
DBP_EXTERN int dbp_format_parse(const char *s, dbp_format *out);
DBP_EXTERN int dbp_compression_parse(const char *s, dbp_compression *out);

/* Growable byte buffer used by the encoders. */
typedef struct dbp_buf {
  char *data;
  size_t len, cap;
} dbp_buf;
DBP_EXTERN int dbp_buf_reserve(dbp_buf *b, size_t extra);
DBP_EXTERN int dbp_buf_append(dbp_buf *b, const void *p, size_t n);
DBP_EXTERN void dbp_buf_free(dbp_buf *b);

typedef struct dbp_encode_options {
  dbp_format format;      /* CSV, TSV or JSONL */
  bool no_header;         /* CSV/TSV: omit the header row */
  char delimiter;         /* 0 = ',' for CSV, '\t' for TSV */
  const char *null_string; /* NULL = "" for CSV, "\\N" for TSV */
  bool crlf;              /* "\r\n" line ends */
} dbp_encode_options;

typedef struct dbp_encoder_s dbp_encoder;
/* The encoder keeps its own copy of the column metadata. */
DBP_EXTERN int dbp_encoder_new(const dbp_encode_options *opts, const dbp_column *cols,
                               size_t ncols, dbp_encoder **out);
DBP_EXTERN int dbp_encoder_header(dbp_encoder *e, dbp_buf *out); /* appends; no-op for JSONL */
DBP_EXTERN int dbp_encoder_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out);
DBP_EXTERN void dbp_encoder_free(dbp_encoder *e);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_EXPORT_H */
