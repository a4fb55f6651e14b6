/* dbpipe export: output formats and their encoders (CSV, TSV, JSON Lines),
 * and files written the atomic way (temporary name, fsync, rename). The
 * query -> file pipeline built on them is in pipeline.h.
 */
#ifndef DBPIPE_EXPORT_H
#define DBPIPE_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "db.h"
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
/* The same reading without defaults: AUTO for what the name does not say
 * (so a caller can tell "data.csv" from "data.txt"). */
DBP_EXTERN void dbp_format_detect(const char *path, dbp_format *fmt, dbp_compression *comp);
/* Parses "csv"/"tsv"/"jsonl" and "none"/"gzip"/"gz"/"zstd"/"zst". */
DBP_EXTERN int dbp_format_parse(const char *s, dbp_format *out);
DBP_EXTERN int dbp_compression_parse(const char *s, dbp_compression *out);

typedef struct dbp_encode_options {
  dbp_format format;       /* CSV, TSV or JSONL */
  bool no_header;          /* CSV/TSV: omit the header row */
  char delimiter;          /* 0 = ',' for CSV, '\t' for TSV */
  const char *null_string; /* NULL = "" for CSV, "\\N" for TSV */
  bool crlf;               /* "\r\n" line ends */
} dbp_encode_options;

typedef struct dbp_encoder_s dbp_encoder;
/* Encoders write rows the way PostgreSQL's COPY does (CSV: quoting, NULL
 * as the NULL string, a lone \. quoted; TSV: the text format's escapes), so
 * any source gives the same bytes. Binary values (DBP_T_BYTES, raw bytes)
 * are written as \x + lowercase hex in every format. JSON Lines: numbers with
 * the server's digits when they form a JSON number (else a string), t/f as
 * true/false, json columns embedded, invalid UTF-8 replaced by U+FFFD.
 *
 * dbp_encoder_new refuses (DBP_EINVAL) options COPY would refuse: a
 * delimiter that is CR, LF, non-ASCII, the CSV quote, or for TSV a
 * backslash, '.', a lowercase letter or a digit; a NULL string holding CR,
 * LF, the delimiter or (CSV) the quote. The encoder keeps its own copy of
 * the column metadata. */
DBP_EXTERN int dbp_encoder_new(const dbp_encode_options *opts, const dbp_column *cols, size_t ncols,
                               dbp_encoder **out);
DBP_EXTERN int dbp_encoder_header(dbp_encoder *e, dbp_buf *out); /* appends; no-op for JSONL */
DBP_EXTERN int dbp_encoder_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out);
DBP_EXTERN void dbp_encoder_free(dbp_encoder *e);

/* ---- files as an export writes them ----
 *
 * Files appear atomically: each is written as a temporary file beside the
 * target (NAME.TOKEN.part, TOKEN random: created exclusively, never through
 * a planted link), fsynced and renamed. An existing file is replaced only by
 * a complete new one; a failed write leaves no file at a final path and no
 * temporary file behind, and temporary files that a killed run left for the
 * same target are removed by the next write to it (never those of a write
 * still running). A final path must be absent or a regular file: a
 * symbolic link, directory, FIFO, socket or device there is refused before
 * anything is written. The export pipeline (pipeline.h) writes its files,
 * and its numbered parts, this way. */

/* One finished file. */
typedef struct dbp_export_file {
  char *path;      /* final path */
  uint64_t rows;   /* data rows (header excluded) */
  uint64_t bytes;  /* bytes on disk (after compression) */
  char sha256[65]; /* hex digest of the bytes on disk */
} dbp_export_file;

/* Live counters, updated as an export runs (read them from a progress
 * timer on the same loop). */
typedef struct dbp_export_progress {
  uint64_t rows;
  uint64_t bytes_in;  /* encoded bytes before compression */
  uint64_t bytes_out; /* bytes written to disk */
  /* The random part of the export's temporary file names
   * ("NAME.<temp_token>.part", shared by every part of a split export);
   * "" until the first one exists. Lets a process that must exit at once
   * remove exactly its own temporary files. */
  char temp_token[17];
} dbp_export_progress;

/* Checks, without creating or changing anything, that `path` can be an
 * export's target: not empty, not naming a directory (a trailing '/', an
 * existing directory), and nothing but a regular file where a final file
 * would go (a symbolic link, FIFO, device or socket there is refused; with
 * `split`, the numbered part names are checked). "-" (standard output) is
 * fine. Returns 0 or DBP_EINVAL with a message naming the path and why. */
DBP_EXTERN int dbp_export_check_target(const char *path, bool split, char *errbuf, size_t errlen);

/* Waits: writes `len` bytes to `path` the way an export writes its files
 * (a temporary name nobody can predict or plant, fsync unless no_fsync,
 * rename, directory fsync; parent directories are created; a target that is
 * no regular file is refused, and so is "-"). Returns 0, or an error with a
 * message naming the file and the failed operation; nothing is left at
 * `path` or beside it on failure. Must run in a coroutine of rt. */
DBP_EXTERN int dbp_write_file_atomic(dbp_rt *rt, const char *path, const void *data, size_t len,
                                     bool no_fsync, char *errbuf, size_t errlen);

/* Waits: makes `path` the concatenation of the files `inputs` (n >= 1, in
 * order, read whole, never changed), written the way an export writes its
 * files (temporary name, fsync unless no_fsync, rename, directory fsync;
 * parent directories created; a target that is no regular file refused,
 * and so is "-"). Bytes are copied as they are: gzip members and zstd
 * frames concatenate into one valid stream, so parts compressed on their
 * own become one file. On success fills *out (path copied, bytes, sha256;
 * rows = the sum of rows[i] when rows is not NULL, else 0; free out->path).
 * On failure nothing is at `path` (what was there stays) and errbuf names
 * the file and the failed operation. An input that is no regular file
 * (a symbolic link, FIFO, ...) is refused. Must run in a coroutine of rt. */
DBP_EXTERN int dbp_concat_files_atomic(dbp_rt *rt, const char *const *inputs, size_t n,
                                       const uint64_t *rows, const char *path, bool no_fsync,
                                       dbp_export_file *out, char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_EXPORT_H */
