/* One file from several finished ones (dbp_concat_files_atomic, see
 * export.h): the parts of a table exported over several connections become
 * the table's file.
 *
 * The bytes go through the atomic writer, uncompressed (DBP_COMP_NONE: the
 * parts are compressed already, and gzip members and zstd frames
 * concatenate into one valid stream), so the temporary name, its lock,
 * fsync, rename, directory fsync, SHA-256 and size, and the removal of
 * everything on failure are the writer's, exactly as for an export.
 *
 * Inputs are read on libuv's thread pool, one task per chunk of
 * DBP__WRITER_CHUNK bytes (256 KiB), straight into the writer's current
 * chunk buffer; the writer then writes that chunk in the background while
 * the next one is read. Memory stays at the writer's few chunk buffers
 * whatever the sizes of the inputs.
 *
 * Why read + write and not copy_file_range from an input into the
 * temporary file: the file's SHA-256 needs every byte in memory anyway, and
 * reading into the buffer the writer hashes and writes keeps one path to
 * disk, the export's own.
 *
 * Every input is opened, checked and closed once before anything is
 * created, so a missing or refused input fails before the target's
 * directory is touched; then each is opened and checked again as it is
 * read (what is read is what the second check saw).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/writer.h"

#define CONCAT_CHUNK DBP__WRITER_CHUNK

/* One input on the thread pool. */
typedef struct cin {
  const char *path;
  int fd;       /* open input; -1 before it is opened and after its end */
  dbp_buf *buf; /* read task: filled up to `want` bytes or the input's end */
  size_t want;
  bool eof;
  /* Results. */
  int sys_errno;    /* the failed call's errno, or 0 */
  const char *op;   /* that call: "open", "stat", "read" */
  const char *kind; /* what the input is when it is no regular file */
} cin;

/* Opens c->path for reading: never through a symbolic link (O_NOFOLLOW),
 * never waiting for a FIFO's writer (O_NONBLOCK, dropped again for the
 * regular file), never as a controlling terminal; then refuses what fstat
 * says is no regular file. Sets c->fd, or the failure. Blocks. */
static void open_input(cin *c) {
  struct stat st;
  int fd = open(c->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    /* ELOOP also means a loop further up the path: only a link at the
     * end is "a symbolic link". */
    if (e == ELOOP && lstat(c->path, &st) == 0 && S_ISLNK(st.st_mode)) {
      c->kind = dbp__file_kind(st.st_mode);
    } else {
      c->sys_errno = e;
      c->op = "open";
    }
    return;
  }
  const char *op = NULL;
  if (fstat(fd, &st) != 0) {
    op = "stat";
  } else if (!S_ISREG(st.st_mode)) {
    c->kind = dbp__file_kind(st.st_mode);
  } else if (fcntl(fd, F_SETFL, 0) != 0) {
    op = "open";
  } else {
    c->fd = fd;
    return;
  }
  if (op != NULL) {
    c->sys_errno = errno;
    c->op = op;
  }
  close(fd);
}

/* The check before anything is created: every input opens as a regular
 * file. Stops at the first that does not (its index in `bad`). */
typedef struct precheck {
  const char *const *inputs;
  size_t n;
  size_t bad;
  cin c;
} precheck;

static void precheck_work(void *arg) {
  precheck *p = arg;
  for (p->bad = 0; p->bad < p->n; p->bad++) {
    p->c = (cin){.path = p->inputs[p->bad], .fd = -1};
    open_input(&p->c);
    if (p->c.fd < 0) return;
    close(p->c.fd);
    p->c.fd = -1;
  }
}

/* One chunk: opens the input on its first call, then reads until the
 * buffer holds c->want bytes or the input ends (closing it there). The
 * buffer has room for c->want bytes and its NUL (reserved on the loop). */
static void read_work(void *arg) {
  cin *c = arg;
  if (c->fd < 0) {
    open_input(c);
    if (c->fd < 0) return;
  }
  dbp_buf *b = c->buf;
  while (b->len < c->want) {
    ssize_t k = read(c->fd, b->data + b->len, c->want - b->len);
    if (k < 0) {
      if (errno == EINTR) continue;
      c->sys_errno = errno;
      c->op = "read";
      break;
    }
    if (k == 0) {
      c->eof = true;
      break;
    }
    b->len += (size_t)k;
  }
  b->data[b->len] = '\0';
  if (c->eof) {
    /* Read-only: a failing close loses nothing. */
    close(c->fd);
    c->fd = -1;
  }
}

/* The message and code for an input that failed in open_input or
 * read_work. */
static int input_error(const cin *c, char *errbuf, size_t errlen) {
  if (c->kind != NULL) {
    snprintf(errbuf, errlen, "refusing to read %s: it is %s, not a regular file", c->path, c->kind);
    return DBP_EINVAL;
  }
  snprintf(errbuf, errlen, "%s %s: %s", c->op, c->path, strerror(c->sys_errno));
  return dbp_err_from_errno(-c->sys_errno);
}

/* Checks the arguments; writes the message on refusal. */
static int check_args(dbp_rt *rt, const char *const *inputs, size_t n, const char *path,
                      char *errbuf, size_t errlen) {
  if (rt == NULL || path == NULL || *path == '\0' || inputs == NULL) {
    snprintf(errbuf, errlen, "dbp_concat_files_atomic: missing runtime, inputs or path");
    return DBP_EINVAL;
  }
  if (n == 0) {
    snprintf(errbuf, errlen, "dbp_concat_files_atomic: no input files for %s", path);
    return DBP_EINVAL;
  }
  if (strcmp(path, "-") == 0) {
    snprintf(errbuf, errlen, "dbp_concat_files_atomic writes a file, not standard output (-)");
    return DBP_EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (inputs[i] == NULL || *inputs[i] == '\0') {
      snprintf(errbuf, errlen, "dbp_concat_files_atomic: input %zu of %zu for %s has no name",
               i + 1, n, path);
      return DBP_EINVAL;
    }
    if (strcmp(inputs[i], "-") == 0) {
      snprintf(errbuf, errlen, "dbp_concat_files_atomic reads files, not standard input (-)");
      return DBP_EINVAL;
    }
  }
  if (dbp_current(rt) == NULL) {
    snprintf(errbuf, errlen, "dbp_concat_files_atomic must run inside a coroutine");
    return DBP_ENOTCORO;
  }
  return 0;
}

/* Copies one input to the end of the writer's current file, chunk by
 * chunk. Returns 0 or an error; *own_msg is set when errbuf holds the
 * message (an input's failure), else the writer has it. */
static int copy_input(dbp_rt *rt, dbp__writer *w, const char *input, char *errbuf, size_t errlen,
                      bool *own_msg) {
  cin c = {.path = input, .fd = -1};
  int rc = 0;
  while (rc == 0 && !c.eof) {
    dbp_buf *b = dbp__writer_buf(w);
    /* After dbp__writer_flush_if_full the buffer holds less than a chunk. */
    rc = dbp_buf_reserve(b, CONCAT_CHUNK - b->len);
    if (rc != 0) break;
    c.buf = b;
    c.want = CONCAT_CHUNK;
    rc = dbp_work(rt, read_work, &c);
    if (rc == 0 && (c.sys_errno != 0 || c.kind != NULL)) {
      rc = input_error(&c, errbuf, errlen);
      *own_msg = true;
    }
    if (rc == 0) rc = dbp__writer_flush_if_full(w);
  }
  /* A failure, or a cancellation that came while a task ran. */
  if (c.fd >= 0) close(c.fd);
  return rc;
}

int dbp_concat_files_atomic(dbp_rt *rt, const char *const *inputs, size_t n, const uint64_t *rows,
                            const char *path, bool no_fsync, dbp_export_file *out, char *errbuf,
                            size_t errlen) {
  char dummy[1];
  if (errbuf == NULL || errlen == 0) {
    errbuf = dummy;
    errlen = sizeof dummy;
  }
  errbuf[0] = '\0';
  if (out != NULL) memset(out, 0, sizeof *out);
  int rc = check_args(rt, inputs, n, path, errbuf, errlen);
  if (rc != 0) return rc;

  precheck p = {.inputs = inputs, .n = n};
  rc = dbp_work(rt, precheck_work, &p);
  if (rc == 0 && p.bad < n) return input_error(&p.c, errbuf, errlen);

  uint64_t total = 0;
  for (size_t i = 0; rows != NULL && i < n; i++) total += rows[i];
  bool own_msg = false;
  dbp__writer *w = NULL;
  dbp__writer_options o = {
      .compression = DBP_COMP_NONE, .no_fsync = no_fsync, .chunk_size = CONCAT_CHUNK};
  if (rc == 0) rc = dbp__writer_new(rt, path, &o, &w);
  if (rc == 0) rc = dbp__writer_begin(w);
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = copy_input(rt, w, inputs[i], errbuf, errlen, &own_msg);
  if (rc == 0) rc = dbp__writer_end(w, total);
  if (rc == 0) rc = dbp__writer_commit(w);

  dbp_export_file *files = NULL;
  size_t nfiles = 0;
  if (rc == 0) {
    files = dbp__writer_take_files(w, &nfiles);
    if (files == NULL) {
      /* Committed, but the file cannot be reported: take it back, so that
       * a failure leaves nothing at the path (a plain unlink, as in the
       * writer's cleanup, which no cancellation can cut short). */
      unlink(path);
      rc = DBP_ENOMEM;
    }
  }
  if (rc != 0) {
    if (!own_msg && w != NULL) dbp__writer_error(w, errbuf, errlen);
    if (errbuf[0] == '\0')
      snprintf(errbuf, errlen, "concatenating into %s: %s", path, dbp_strerror(rc));
  }
  dbp__writer_free(w);
  if (rc != 0) return rc;
  if (out != NULL) {
    *out = files[0];
  } else {
    free(files[0].path);
  }
  free(files);
  return 0;
}
