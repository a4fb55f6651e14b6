/* dbpipe pipeline: one query (or one table) into one or more files.
 *
 * A source coroutine streams the query into a bounded channel of row
 * batches; a sink coroutine encodes, compresses (on the thread pool) and
 * writes through uv_fs. Where the connection can COPY (dbp_conn_can_copy)
 * and the query has no parameters, the rows come as COPY's own CSV or text
 * (the fast path); otherwise, or when COPY refuses the statement
 * (DBP_ENOCOPY), they are fetched one by one with dbp_query / dbp_fetch.
 * Either way the output is the same bytes. Memory stays flat whatever the
 * row count: a slow disk slows the query down.
 *
 * Files are written the way export.h describes (temporary name, fsync,
 * rename; nothing at a final path on failure; targets that are no regular
 * file refused before the query runs). With max_rows / max_bytes the output
 * is split into numbered parts: "out.csv.gz" becomes "out-00001.csv.gz",
 * "out-00002.csv.gz", ... each with its own header.
 *
 * Standard output: the path "-" writes the encoded (and, when asked,
 * compressed) rows to fd 1 as they come: no temporary file, no rename, no
 * fsync (a pipe has none), so a failed export may have written part of its
 * output. Format and compression come from the options (AUTO: CSV,
 * uncompressed); max_rows / max_bytes are refused (DBP_EINVAL). The result
 * lists one file, path "-", with its rows, bytes and SHA-256. A reader that
 * goes away raises SIGPIPE as for any program writing to a pipe; where the
 * process ignores SIGPIPE the export fails with the write's EPIPE.
 *
 * Splitting: parts are numbered from 1 and each has its own header. A part
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
 * already renamed.
 */
#ifndef DBPIPE_PIPELINE_H
#define DBPIPE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "db.h"
#include "export.h"
#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest batch_rows and queue_batches an export accepts. */
#define DBP_EXPORT_MAX_BATCH_ROWS ((size_t)65536)
#define DBP_EXPORT_MAX_QUEUE ((size_t)1024)

typedef struct dbp_export_options {
  dbp_format format;           /* AUTO: from the path */
  dbp_compression compression; /* AUTO: from the path */
  int level;                   /* compression level, 0 = the library default */
  dbp_encode_options encode;   /* format field ignored (set from format) */
  uint64_t max_rows;           /* split after this many rows per file; 0 = never */
  uint64_t max_bytes;          /* split once a file reaches this size; 0 = never */
  /* Rows per batch between source and sink; 0 = 4096, at most
   * DBP_EXPORT_MAX_BATCH_ROWS (fewer for wide rows: a batch holds at most
   * 65536 values). */
  size_t batch_rows;
  /* Batches queued between source and sink; 0 = 4, at most
   * DBP_EXPORT_MAX_QUEUE. */
  size_t queue_batches;
  int64_t timeout_ms;            /* whole export; 0 (the default) or DBP_FOREVER = none */
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
 * directories are created; "-" is standard output). `opts` may be NULL;
 * options out of range (batch_rows, queue_batches) fail with DBP_EINVAL. A
 * path that dbp_export_check_target refuses fails with DBP_EINVAL and its
 * message in res->err.message before anything runs. Returns 0 with
 * res->files listing the files, or an error with details in res->err (the
 * server's SQLSTATE / errno and message for a query error, the file and
 * system error for a write error); on error no final file exists and
 * res->files is NULL. The first failure on either side cancels the other;
 * cancelling the calling coroutine cancels the statement on the server.
 * Afterwards the connection is idle (or broken). Must run in a coroutine of
 * the connection's runtime. */
DBP_EXTERN int dbp_export_query(dbp_conn *c, const char *sql, size_t nparams,
                                const dbp_param *params, const char *path,
                                const dbp_export_options *opts, dbp_export_result *res);

/* Waits: dbp_export_query of every row and column of `table` ("name" or
 * "schema.name", quoted for the connection's dialect with dbp_quote_ident,
 * so any characters are allowed in the names; a dot always separates
 * schema and name). */
DBP_EXTERN int dbp_export_table(dbp_conn *c, const char *table, const char *path,
                                const dbp_export_options *opts, dbp_export_result *res);

/* Frees res->files; safe on a zeroed or already freed result. */
DBP_EXTERN void dbp_export_result_free(dbp_export_result *res);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_PIPELINE_H */
