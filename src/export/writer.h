/* The atomic file writer: bytes in, finished files out.
 *
 * A writer produces one file, or numbered parts of one file name
 * ("out-00001.csv.gz" ...), each written as a temporary file beside its
 * target and compressed (gzip or zstd), hashed (SHA-256), written, fsynced
 * and closed on libuv's thread pool by a background coroutine, so the loop
 * never blocks and encoding the next chunk overlaps compressing the last.
 * Nothing appears at a final path before dbp__writer_commit, which renames
 * every part into place (all or nothing) and fsyncs the directory;
 * dbp__writer_abort removes every temporary file and every final file this
 * writer put in place.
 *
 * Targets. A final path must be absent or a regular file: a symbolic link,
 * directory, FIFO, socket or device there is refused (DBP_EINVAL, the
 * message naming the path and what it is) by the first dbp__writer_begin,
 * before anything is created, and again (lstat) before each file is
 * created. The path "-" is standard output (fd 1): bytes go straight there,
 * no temporary file, rename or fsync, never split; the file listed is "-".
 *
 * Temporary names. A file's temporary name is FINAL.TOKEN.part beside it,
 * TOKEN being 16 lowercase hex digits from getrandom, drawn once per writer
 * (every part of a split export shares it). It is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, mode 0666 & ~umask, so nothing planted at a
 * predictable name can redirect a write, and two writers to one target never
 * share a file (the last commit wins, each file whole).
 *
 * The lock. The writer's first file (the plain file, or part 1) holds the
 * lock: right after creating it the writer takes flock(LOCK_EX) on it and
 * keeps a descriptor of it, locked, until commit or abort. At commit the
 * first file is renamed LAST; at abort its temporary name is removed last.
 * So while any temporary file of a token exists, either that token's first
 * file is locked (its writer lives) or the writer is dead.
 *
 * Stale files. The first begin (on the thread pool) looks in the target's
 * directory for temporary names of this target, plain ("out.csv.TOKEN.part")
 * and split ("out-NNNNN.csv.TOKEN.part"); it opens each with O_NOFOLLOW |
 * O_NONBLOCK and skips anything that is not a regular file owned by our
 * uid. A later part goes when it is unlocked itself and its token's part-1
 * file is gone or unlocked (a non-blocking flock succeeds); then a first
 * file goes when its own non-blocking flock succeeds, removed while that
 * lock is held. A writer that created its first file just before such a
 * removal finds it unlinked once its own flock returns (st_nlink 0) and
 * starts over with a fresh token. A live writer's files are never removed.
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
#include <sys/types.h>

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

/* ---- names and targets (target.c) ---- */

/* A temporary name is FINAL "." TOKEN ".part", TOKEN being DBP__TOKEN_LEN
 * lowercase hex digits from getrandom. */
#define DBP__TOKEN_LEN 16

/* a followed by b, malloc'd (NULL on ENOMEM). */
char *dbp__str_cat(const char *a, const char *b);
/* The directory part of `path` ("." when it has none); malloc'd. */
char *dbp__dir_of(const char *path);
/* Removes what an earlier, longer split export of `path` left past part
 * `last`: those parts would read as part of the new series. Only regular
 * files go; the scan ends at the first number with nothing there. Blocks:
 * for the thread pool. */
void dbp__remove_parts_past(const char *path, unsigned last);
/* A fresh token: DBP__TOKEN_LEN hex digits of getrandom. Returns 0 or
 * errno. */
int dbp__new_token(char out[DBP__TOKEN_LEN + 1]);
/* What a file of mode m is, for messages: "a symbolic link", "a FIFO",
 * "a directory", ... (never "a regular file"). */
const char *dbp__file_kind(mode_t m);
/* NULL when `path` may become a final file (nothing there, or a regular
 * file); else what is there ("a symbolic link", ...). Never follows a
 * symbolic link. */
const char *dbp__not_regular(const char *path);
/* Writes the message refusing `path`, which is `kind` ("a FIFO"). */
void dbp__refusal(char *buf, size_t len, const char *path, const char *kind);
/* dbp_export_check_target's work (see export.h); writes a message to buf
 * only on refusal. No side effects. */
int dbp__check_target(const char *path, bool split, char *buf, size_t len);
/* Removes what dead writers left in `dir` beside the target `path`:
 * temporary names of the target and of its split parts (see above). A
 * later part's file goes only when it is unlocked itself and its token's
 * part-1 file is gone or unlocked; lock-holding files go last, each while
 * we hold its lock, so a writer that created one just now notices
 * (st_nlink 0) and starts over. Best effort: whatever cannot be read or
 * removed stays. Blocks: for the thread pool. */
void dbp__remove_stale(const char *dir, const char *path);

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

/* Creates a writer for `path` (copied; "-" is standard output). Touches no
 * file yet. Returns 0, DBP_EINVAL (bad compression or level, or split with
 * "-") or DBP_ENOMEM. */
int dbp__writer_new(dbp_rt *rt, const char *path, const dbp__writer_options *o, dbp__writer **out);
/* Waits. Starts the next file (the first, or the next part). The previous
 * one must have been ended. The first call checks the target and removes
 * stale temporary files (see above). Returns 0 or the writer's error
 * (DBP_EINVAL for a target that is no regular file). */
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
/* Waits. Finishes every file, renames each temporary file to its final
 * name (the first one last), releases the lock, removes stale parts
 * numbered past the last (regular files only) and fsyncs the directory. On
 * failure everything is removed (as by dbp__writer_abort) and the error
 * returned. */
int dbp__writer_commit(dbp__writer *w);
/* Waits. Stops the background writer and removes every temporary file it
 * created and every final file it renamed into place. Idempotent. Bytes
 * already sent to standard output stay sent. */
void dbp__writer_abort(dbp__writer *w);
/* The error that stopped the writer: code and a message naming the file
 * and the operation ("write out.csv.4f0c9a1b2d3e5f60.part: No space left on device"). */
int dbp__writer_error(const dbp__writer *w, char *msg, size_t len);
/* After a successful commit: hands over the list of files (paths, rows,
 * bytes, sha256); the caller frees paths and array. */
dbp_export_file *dbp__writer_take_files(dbp__writer *w, size_t *n);
/* Frees the writer; aborts first unless committed (then it waits, see
 * abort). */
void dbp__writer_free(dbp__writer *w);

#endif /* DBPIPE_EXPORT_WRITER_H */
