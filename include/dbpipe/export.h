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

/* ---- the export pipeline: one query into one or more files ----
 *
 * A source coroutine streams the query (PostgreSQL: COPY TO STDOUT, the fast
 * path; MySQL: mysql_use_result) into a bounded channel of row batches; a sink
 * coroutine encodes, compresses (on the thread pool) and writes through
 * uv_fs. Memory stays flat whatever the row count: a slow disk slows the
 * query down.
 *
 * Files appear atomically: each is written as a temporary file beside the
 * target (NAME.TOKEN.part, TOKEN random: created exclusively, never through
 * a planted link), fsynced and renamed. An existing file is replaced only by
 * a complete new one; a failed or cancelled export leaves no file at a final
 * path and no temporary file behind, and temporary files that a killed run
 * left for the same target are removed by the next export to it (never
 * those of an export still running). A final path must be absent or a
 * regular file: a symbolic link, directory, FIFO, socket or device there is
 * refused before the query runs. With max_rows / max_bytes the output is
 * split into numbered parts: "out.csv.gz" becomes "out-00001.csv.gz",
 * "out-00002.csv.gz", ... each with its own header.
 *
 * Standard output: the path "-" writes the encoded (and, when asked,
 * compressed) rows to fd 1 as they come: no temporary file, no rename, no
 * fsync (a pipe has none), so a failed export may have written part of its
 * output. Format and compression come from the options (AUTO: CSV,
 * uncompressed); max_rows / max_bytes are refused (DBP_EINVAL). The result
 * lists one file, path "-", with its rows, bytes and SHA-256. A reader that
 * goes away raises SIGPIPE as for any program writing to a pipe; where the
 * process ignores SIGPIPE the export fails with the write's EPIPE. */

/* Splitting: parts are numbered from 1 and each has its own header. A part
 * holds at most max_rows rows. With max_bytes, an uncompressed part never
 * grows past max_bytes unless a single row does; a compressed part is closed
 * at the first row boundary after its compressed size reaches max_bytes
 * (the size is known only after compression, so it may exceed max_bytes by
 * a few chunks of compressed data).
 *
 * All or nothing: the files (every part) stay temporary until the whole
 * export has succeeded; then all are renamed into place, parts numbered
 * past the last one (left by an earlier, longer run; regular files only)
 * are removed, and the directory is fsynced. On failure or cancellation
 * every temporary file is removed, and so is any final file the commit had
 * already renamed. */

typedef struct dbp_export_file {
  char *path;      /* final path */
  uint64_t rows;   /* data rows (header excluded) */
  uint64_t bytes;  /* bytes on disk (after compression) */
  char sha256[65]; /* hex digest of the bytes on disk */
} dbp_export_file;

/* Live counters, updated as the export runs (read them from a progress
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

typedef struct dbp_export_options {
  dbp_format format;             /* AUTO: from the path */
  dbp_compression compression;   /* AUTO: from the path */
  int level;                     /* compression level, 0 = the library default */
  dbp_encode_options encode;     /* format field ignored (set from format) */
  uint64_t max_rows;             /* split after this many rows per file; 0 = never */
  uint64_t max_bytes;            /* split once a file reaches this size; 0 = never */
  size_t batch_rows;             /* rows per batch; 0 = default */
  size_t queue_batches;          /* channel capacity; 0 = default */
  int64_t timeout_ms;            /* whole export; DBP_FOREVER or 0 = none */
  bool no_fsync;                 /* skip fsync before rename (tests, benchmarks) */
  dbp_export_progress *progress; /* may be NULL */
} dbp_export_options;

typedef struct dbp_export_result {
  uint64_t rows, bytes; /* totals over all files */
  size_t nfiles;
  dbp_export_file *files; /* owned; free with dbp_export_result_free */
  dbp_dberr err;          /* details when the export failed */
} dbp_export_result;

/* Waits: runs `sql` on `c` and writes its rows to `path` (parent
 * directories are created; "-" is standard output). `opts` may be NULL. A
 * path that dbp_export_check_target refuses fails with DBP_EINVAL and its
 * message in res->err.message before anything runs. Returns 0 with res->files
 * listing the files, or an error with details in res->err (the server's
 * SQLSTATE / errno and message for a query error, the file and system error
 * for a write error); on error no final file exists and res->files is NULL.
 * The first failure on either side cancels the other; cancelling the calling
 * coroutine cancels the statement on the server. Afterwards the connection
 * is idle (or broken). Must run in a coroutine of the connection's runtime. */
DBP_EXTERN int dbp_export_query(dbp_conn *c, const char *sql, size_t nparams,
                                const dbp_param *params, const char *path,
                                const dbp_export_options *opts, dbp_export_result *res);
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

/* Frees res->files; safe on a zeroed or already freed result. */
DBP_EXTERN void dbp_export_result_free(dbp_export_result *res);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_EXPORT_H */
