/* The atomic file writer: bytes in, finished files out.
 *
 * A writer produces one file, or numbered parts of one file name
 * ("out-00001.csv.gz" ...), each written as NAME.part beside its target and
 * compressed (gzip or zstd), hashed (SHA-256), written, fsynced and closed on
 * libuv's thread pool by a background coroutine, so the loop never blocks and
 * encoding the next chunk overlaps compressing the last. Nothing appears at a
 * final path before dbp__writer_commit, which renames every part into place
 * (all or nothing) and fsyncs the directory; dbp__writer_abort removes every
 * .part and every final file this writer put in place.
 *
 * The producer side (begin / buf / flush / end / commit / abort) is used from
 * one coroutine. Calls marked "waits" must run inside a coroutine of the
 * writer's runtime.
 */
#ifndef DBPIPE_EXPORT_WRITER_H
#define DBPIPE_EXPORT_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbpipe/export.h"

/* ---- compressors ---- */

enum { DBP__Z_CONTINUE = 0, DBP__Z_FLUSH = 1, DBP__Z_FINISH = 2 };

typedef struct dbp__zstream dbp__zstream;
int dbp__zstream_check_level(dbp_compression kind, int level);
int dbp__zstream_new(dbp_compression kind, int level, dbp__zstream **out);
int dbp__zstream_reset(dbp__zstream *s);
int dbp__zstream_run(dbp__zstream *s, const void *in, size_t n, int mode,
                     int (*emit)(void *ctx, const void *p, size_t len), void *ctx);
void dbp__zstream_free(dbp__zstream *s);

/* ---- the writer ---- */

#define DBP__WRITER_CHUNK (256 * 1024)

typedef struct dbp__writer_options {
  dbp_compression compression;   /* NONE, GZIP or ZSTD */
  int level;                     /* 0 = the library's default */
  bool split;                    /* numbered part names, even for one part */
  bool no_fsync;                 /* skip fsync of files and directory */
  bool flush_chunks;             /* compressed: flush each chunk so sizes are current */
  size_t chunk_size;             /* bytes per thread-pool job; 0 = DBP__WRITER_CHUNK */
  dbp_export_progress *progress; /* bytes_out kept current; may be NULL */
} dbp__writer_options;

typedef struct dbp__writer dbp__writer;

/* Creates a writer for `path` (copied). Touches no file yet. Returns 0,
 * DBP_EINVAL (bad compression or level) or DBP_ENOMEM. */
int dbp__writer_new(dbp_rt *rt, const char *path, const dbp__writer_options *o, dbp__writer **out);
/* Waits. Starts the next file (the first, or the next part). The previous
 * one must have been ended. Returns 0 or the writer's error. */
int dbp__writer_begin(dbp__writer *w);
/* The buffer holding the current file's next bytes: append to it, then call
 * dbp__writer_flush_if_full. Valid until the next writer call. */
dbp_buf *dbp__writer_buf(dbp__writer *w);
/* Waits (only when every chunk buffer is in flight). Hands the buffer to
 * the background writer once it holds a chunk's worth. Returns 0 or the
 * writer's error. */
int dbp__writer_flush_if_full(dbp__writer *w);
/* Waits. Appends n bytes (dbp__writer_buf + dbp__writer_flush_if_full). */
int dbp__writer_write(dbp__writer *w, const void *p, size_t n);
/* Waits. Ends the current file, recording its row count; it is finished,
 * fsynced and closed in the background. */
int dbp__writer_end(dbp__writer *w, uint64_t rows);
/* Bytes of the current file so far: exact for an uncompressed file
 * (buffered bytes included); for a compressed one what the compressor has
 * produced so far (it lags by the data in flight). */
uint64_t dbp__writer_size(const dbp__writer *w);
/* Waits. Finishes every file, renames each NAME.part to NAME and fsyncs the
 * directory. On failure everything is removed (as by dbp__writer_abort) and
 * the error returned. */
int dbp__writer_commit(dbp__writer *w);
/* Waits. Stops the background writer and removes every .part and every
 * final file this writer renamed into place. Idempotent. */
void dbp__writer_abort(dbp__writer *w);
/* The error that stopped the writer: code and a message naming the file
 * and the operation ("write out.csv.part: No space left on device"). */
int dbp__writer_error(const dbp__writer *w, char *msg, size_t len);
/* After a successful commit: hands over the list of files (paths, rows,
 * bytes, sha256); the caller frees paths and array. */
dbp_export_file *dbp__writer_take_files(dbp__writer *w, size_t *n);
/* Frees the writer; aborts first unless committed (then it waits, see
 * abort). */
void dbp__writer_free(dbp__writer *w);

#endif /* DBPIPE_EXPORT_WRITER_H */
