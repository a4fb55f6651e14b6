/* dbpipe: common definitions shared by every layer.
 *
 * Errors are negative ints. Zero is success. Every function that can fail
 * returns one of the codes below (or a positive count where documented).
 */
#ifndef DBPIPE_COMMON_H
#define DBPIPE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(DBP_STATIC_DEFINE)
#define DBP_EXTERN
#elif defined(DBP_BUILDING_LIBRARY)
#define DBP_EXTERN __attribute__((visibility("default")))
#else
#define DBP_EXTERN
#endif

#define DBP_VERSION_MAJOR 0
#define DBP_VERSION_MINOR 1
#define DBP_VERSION_PATCH 0
#define DBP_VERSION_STRING "0.1.0"

/* The error table: name, value, message. Values never change once released,
 * and a removed code's value is never given to another: -51 (EUSAGE, which
 * nothing returned) is retired. */
#define DBP_ERRNO_MAP(X)                                               \
  X(EINVAL, -1, "invalid argument")                                    \
  X(ENOMEM, -2, "out of memory")                                       \
  X(ECANCELED, -3, "operation canceled")                               \
  X(ETIMEDOUT, -4, "timed out")                                        \
  X(ECLOSED, -5, "closed")                                             \
  X(EBUSY, -6, "resource busy")                                        \
  X(EAGAIN, -7, "resource temporarily unavailable")                    \
  X(ENOTCORO, -8, "not called from a coroutine")                       \
  X(EIO, -9, "input/output error")                                     \
  X(ENOENT, -10, "no such file or directory")                          \
  X(EEXIST, -11, "already exists")                                     \
  X(ENOSPC, -12, "no space left on device")                            \
  X(EACCES, -13, "permission denied")                                  \
  X(ESYS, -14, "system error")                                         \
  X(ETOOBIG, -15, "result too large")                                  \
  X(EDSN, -20, "invalid connection string")                            \
  X(ERESOLVE, -21, "host name could not be resolved")                  \
  X(ECONNECT, -22, "could not connect to the database server")         \
  X(EAUTH, -23, "authentication failed")                               \
  X(EQUERY, -24, "the database server reported an error")              \
  X(ECONNLOST, -25, "connection to the database server lost")          \
  X(EPROTO, -26, "unexpected reply from the database server")          \
  X(ESTATE, -27, "operation not valid in the current state")           \
  X(ETOOMANY, -28, "the database server has too many connections")     \
  X(ENOCOPY, -29, "COPY cannot run this statement on this connection") \
  X(EPOOLCLOSED, -30, "the pool is closed")                            \
  X(EFORMAT, -40, "invalid or unsupported output format")              \
  X(ECOMPRESS, -41, "compression failed")                              \
  X(EJOB, -50, "invalid job file")                                     \
  X(ETASK, -52, "a task failed")

enum {
#define DBP_ERR_ENUM_(name, val, msg) DBP_##name = (val),
  DBP_ERRNO_MAP(DBP_ERR_ENUM_)
#undef DBP_ERR_ENUM_
      DBP_ERRNO_MIN_ = -52
};

#ifdef __cplusplus
extern "C" {
#endif

/* A human-readable message for an error code; never NULL. */
DBP_EXTERN const char *dbp_strerror(int err);
/* The symbolic name of an error code ("DBP_ETIMEDOUT"); never NULL. */
DBP_EXTERN const char *dbp_err_name(int err);
/* Maps a negative errno (as libuv reports them) to a dbpipe code. */
DBP_EXTERN int dbp_err_from_errno(int neg_errno);
/* "0.1.0" */
DBP_EXTERN const char *dbp_version(void);

/* ---- text for people ---- */

struct timespec;
/* A duration: "420 ms", "3.2 s", "2m05s", "1h02m". Returns buf. */
DBP_EXTERN const char *dbp_fmt_duration(uint64_t ms, char *buf, size_t len);
/* UTC "2024-03-05T12:00:00.123Z" for a CLOCK_REALTIME timespec. Returns buf. */
DBP_EXTERN const char *dbp_fmt_iso(const struct timespec *ts, char *buf, size_t len);

/* ---- the one growable buffer ----
 *
 * Bytes or text, appended to at the end. After a successful call the bytes
 * are followed by a NUL (not counted in len), so text can be used as a C
 * string. A failed allocation sticks (`oom`): every later append fails with
 * DBP_ENOMEM without changing anything, so a sequence of appends can be
 * checked once at the end, and the text is then truncated, never invalid.
 * A zeroed dbp_buf is empty and ready. */
typedef struct dbp_buf {
  char *data; /* NULL until something is appended */
  size_t len, cap;
  bool oom;
} dbp_buf;

/* Makes room for `extra` more bytes (and the NUL). 0 or DBP_ENOMEM. */
DBP_EXTERN int dbp_buf_reserve(dbp_buf *b, size_t extra);
DBP_EXTERN int dbp_buf_append(dbp_buf *b, const void *p, size_t n);
DBP_EXTERN int dbp_buf_puts(dbp_buf *b, const char *s);
DBP_EXTERN int dbp_buf_printf(dbp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
DBP_EXTERN int dbp_buf_vprintf(dbp_buf *b, const char *fmt, va_list ap);
/* Appends `s` as a JSON string literal: quoted, escaped, invalid UTF-8
 * replaced by U+FFFD. NULL appends null. */
DBP_EXTERN int dbp_buf_json(dbp_buf *b, const char *s);
/* The text held (or "" while nothing is); never NULL. */
DBP_EXTERN const char *dbp_buf_str(const dbp_buf *b);
/* Releases the memory and leaves an empty, reusable buffer. */
DBP_EXTERN void dbp_buf_free(dbp_buf *b);
/* Length of the valid UTF-8 sequence at p (at most `left` bytes), or 0 for
 * an invalid one (overlong forms, surrogates, past U+10FFFF). */
DBP_EXTERN size_t dbp_utf8_len(const unsigned char *p, size_t left);

#ifdef __cplusplus
}
#endif

#endif /* DBPIPE_COMMON_H */
