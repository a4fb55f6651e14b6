/* The atomic file writer (see writer.h for the contract).
 *
 * Work is cut into jobs, one per chunk of bytes. A background coroutine takes
 * jobs in order and runs each as ONE thread-pool task: open the .part file
 * (first chunk of a file), compress, hash and write, and for the last chunk
 * finish the stream, fsync and close. A task that has started always runs to
 * the end (dbp_work), so after every wait the file's state is known exactly,
 * even when the wait was cancelled. Job buffers cycle between a "free" and a
 * "jobs" channel: at most NSLOTS chunks exist, which bounds memory and makes a
 * slow disk slow the producer down.
 *
 * Failure and cancellation: the background coroutine records the first error
 * and closes both channels, which wakes the producer. Removal of .part files
 * (and of final files renamed by a commit that did not finish) happens only
 * once the background coroutine has stopped, so no task can recreate a file
 * behind our back; plain unlink()/close() are used there, on purpose: cleanup
 * must not be cut short by the very cancellation that caused it.
 */
#include "export/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/export_int.h"

#define NSLOTS 4

typedef struct wfile {
  dbp_export_file f; /* final path, rows, bytes, sha256 */
  char *part;        /* f.path + ".part" */
  bool renamed;      /* the commit put it in place */
} wfile;

typedef struct wjob {
  dbp__writer *w;
  dbp_buf data;
  bool open, close; /* first / last chunk of its file */
  size_t file;      /* index into w->files */
  const char *part; /* that file's .part path (stable string) */
  /* Results, written by the thread-pool task. */
  uint64_t file_out; /* bytes of the file on disk after this job */
  uint64_t written;  /* bytes this job wrote */
  char sha256[65];
  int sys_errno;  /* the failed call's errno, or 0 */
  int code;       /* a dbpipe code when not a system error */
  const char *op; /* "create", "write", ... */
} wjob;

struct dbp__writer {
  dbp_rt *rt;
  char *path;
  char *dir; /* directory of path, for mkdir and fsync */
  dbp__writer_options o;
  dbp__zstream *z;

  wfile *files;
  size_t nfiles, cap;

  /* Background coroutine and the two channels of job buffers. */
  dbp_co *bg;
  bool bg_running;
  bool remove_on_exit; /* abort could not wait: the coroutine cleans up */
  bool orphan;         /* freed while running: the coroutine frees us */
  dbp_waiter bg_exit;  /* woken by the background coroutine as it returns */
  dbp_chan *jobs, *free_jobs;
  wjob *slots[NSLOTS];
  size_t nslots;

  /* Producer side. */
  wjob *cur;
  bool in_file;
  uint64_t cur_sent; /* bytes of the current file handed over so far */

  /* Owned by the thread-pool tasks (one at a time). */
  int fd;
  dbp__sha256 sha;
  uint64_t file_out;
  bool dir_made;

  /* Background side: progress of the file being written. */
  size_t done_file;
  uint64_t done_out;

  int err;
  char errmsg[256];
  bool committed, removed;
};

/* Records the first error with a message; later ones are ignored. */
static void set_error(dbp__writer *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(dbp__writer *w, int code, const char *fmt, ...) {
  if (w->err != 0) return;
  w->err = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
  va_end(ap);
}

static char *str_cat(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *s = malloc(na + nb + 1);
  if (s == NULL) return NULL;
  memcpy(s, a, na);
  memcpy(s + na, b, nb + 1);
  return s;
}

/* Creates the writer; see writer.h. One goto path frees a half-built one. */
int dbp__writer_new(dbp_rt *rt, const char *path, const dbp__writer_options *o, dbp__writer **out) {
  if (rt == NULL || path == NULL || *path == '\0' || o == NULL || out == NULL) return DBP_EINVAL;
  if (o->compression != DBP_COMP_NONE && o->compression != DBP_COMP_GZIP &&
      o->compression != DBP_COMP_ZSTD)
    return DBP_EINVAL;
  int rc = dbp__zstream_check_level(o->compression, o->level);
  if (rc != 0) return rc;
  dbp__writer *w = calloc(1, sizeof *w);
  if (w == NULL) return DBP_ENOMEM;
  w->rt = rt;
  w->o = *o;
  if (w->o.chunk_size == 0) w->o.chunk_size = DBP__WRITER_CHUNK;
  w->fd = -1;
  rc = DBP_ENOMEM;
  w->path = str_cat(path, "");
  if (w->path == NULL) goto err;
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    w->dir = str_cat(".", "");
  } else {
    w->dir = str_cat(path, "");
    if (w->dir) w->dir[slash == path ? 1 : slash - path] = '\0';
  }
  if (w->dir == NULL) goto err;
  if (o->compression != DBP_COMP_NONE) {
    rc = dbp__zstream_new(o->compression, o->level, &w->z);
    if (rc != 0) goto err;
  }
  if ((rc = dbp_chan_new(rt, NSLOTS, &w->jobs)) != 0) goto err;
  if ((rc = dbp_chan_new(rt, NSLOTS, &w->free_jobs)) != 0) goto err;
  *out = w;
  return 0;

err:
  dbp__writer_free(w);
  return rc;
}

/* ---- thread-pool side ---- */

/* Creates the directories leading to `dir` (like mkdir -p); errors are left
 * for the open that follows to report. */
static void make_dirs(const char *dir) {
  char *p = str_cat(dir, "");
  if (p == NULL) return;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    mkdir(p, 0777);
    *s = '/';
  }
  mkdir(p, 0777);
  free(p);
}

static int emit_write(void *ctx, const void *data, size_t n) {
  wjob *j = ctx;
  dbp__writer *w = j->w;
  const char *p = data;
  dbp__sha256_update(&w->sha, p, n);
  while (n > 0) {
    ssize_t k = write(w->fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      j->sys_errno = errno;
      j->op = "write";
      return DBP_EIO;
    }
    p += k;
    n -= (size_t)k;
    w->file_out += (uint64_t)k;
    j->written += (uint64_t)k;
  }
  return 0;
}

/* One job, on a thread-pool thread: see the file comment. */
static void job_work(void *arg) {
  wjob *j = arg;
  dbp__writer *w = j->w;
  if (j->open) {
    if (!w->dir_made) {
      make_dirs(w->dir);
      w->dir_made = true;
    }
    int fd = open(j->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
      j->sys_errno = errno;
      j->op = "create";
      return;
    }
    w->fd = fd;
    w->file_out = 0;
    dbp__sha256_init(&w->sha);
    if (w->z != NULL && dbp__zstream_reset(w->z) != 0) {
      j->code = DBP_ECOMPRESS;
      j->op = "compress";
      return;
    }
  }
  int rc = 0;
  if (w->z == NULL) {
    if (j->data.len > 0) rc = emit_write(j, j->data.data, j->data.len);
  } else {
    int mode = j->close ? DBP__Z_FINISH : w->o.flush_chunks ? DBP__Z_FLUSH : DBP__Z_CONTINUE;
    rc = dbp__zstream_run(w->z, j->data.data, j->data.len, mode, emit_write, j);
    if (rc != 0 && j->sys_errno == 0) {
      j->code = rc;
      j->op = "compress";
    }
  }
  if (rc != 0) return;
  j->file_out = w->file_out;
  if (j->close) {
    dbp__sha256_final_hex(&w->sha, j->sha256);
    if (!w->o.no_fsync && fsync(w->fd) != 0) {
      j->sys_errno = errno;
      j->op = "fsync";
      return;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0 && errno != EINTR) {
      j->sys_errno = errno;
      j->op = "close";
    }
  }
}

/* ---- background coroutine ---- */

static void remove_files(dbp__writer *w);
static void destroy(dbp__writer *w);

/* Takes jobs in order until the channel is closed (normal end) or a job
 * fails or the coroutine is cancelled. Returns 0 or the error. */
static int bg_main(void *arg, void **result) {
  dbp__writer *w = arg;
  (void)result;
  int rc = 0;
  for (;;) {
    void *item;
    rc = dbp_chan_recv(w->jobs, &item, DBP_FOREVER);
    if (rc == DBP_ECLOSED) {
      rc = w->err;
      break;
    }
    if (rc != 0) break;
    wjob *j = item;
    j->file_out = j->written = 0;
    j->sys_errno = j->code = 0;
    j->op = NULL;
    rc = dbp_work(w->rt, job_work, j);
    if (rc == 0 && (j->sys_errno != 0 || j->code != 0)) {
      rc = j->sys_errno ? dbp_err_from_errno(-j->sys_errno) : j->code;
      set_error(w, rc, "%s %s: %s", j->op, j->part,
                j->sys_errno ? strerror(j->sys_errno) : dbp_strerror(j->code));
    }
    if (w->o.progress) w->o.progress->bytes_out += j->written;
    if (rc == 0) {
      w->done_file = j->file;
      w->done_out = j->file_out;
      if (j->close) {
        w->files[j->file].f.bytes = j->file_out;
        memcpy(w->files[j->file].f.sha256, j->sha256, sizeof j->sha256);
      }
    }
    j->data.len = 0;
    dbp_chan_try_send(w->free_jobs, j);
    if (rc != 0) break;
  }
  if (rc != 0) {
    set_error(w, rc, "writing %s: %s", w->path, dbp_strerror(rc));
    dbp_chan_close(w->jobs);
    dbp_chan_close(w->free_jobs);
  }
  w->bg = NULL;
  w->bg_running = false;
  if (w->remove_on_exit) remove_files(w);
  if (w->orphan) {
    destroy(w);
    return rc;
  }
  dbp_wake(&w->bg_exit, rc);
  return rc;
}

/* Waits until the background coroutine has returned; a cancellation or
 * the caller's deadline ends the wait early. */
static int wait_bg(dbp__writer *w) {
  if (!w->bg_running) return 0;
  int rc = dbp_await(w->rt, &w->bg_exit, DBP_FOREVER);
  return w->bg_running ? rc : 0;
}

/* ---- producer side ---- */

/* Takes a free job buffer: a recycled one, a new one while fewer than
 * NSLOTS exist, else waits for the background writer to release one. */
static int get_slot(dbp__writer *w, wjob **out) {
  void *item = NULL;
  int rc = dbp_chan_try_recv(w->free_jobs, &item);
  if (rc == DBP_EAGAIN && w->nslots < NSLOTS) {
    wjob *j = calloc(1, sizeof *j);
    if (j == NULL) return DBP_ENOMEM;
    j->w = w;
    w->slots[w->nslots++] = j;
    item = j;
    rc = 0;
  } else if (rc == DBP_EAGAIN) {
    rc = dbp_chan_recv(w->free_jobs, &item, DBP_FOREVER);
  }
  if (rc == DBP_ECLOSED) return w->err ? w->err : DBP_ECLOSED;
  if (rc != 0) return rc;
  if (w->err) return w->err;
  wjob *j = item;
  j->data.len = 0;
  j->open = j->close = false;
  *out = j;
  return 0;
}

/* Hands the current buffer to the background writer (never waits: the
 * jobs channel holds every slot). */
static int send_cur(dbp__writer *w) {
  wjob *j = w->cur;
  w->cur = NULL;
  w->cur_sent += j->data.len;
  int rc = dbp_chan_send(w->jobs, j, DBP_FOREVER);
  if (rc != 0) return w->err ? w->err : rc;
  return 0;
}

int dbp__writer_begin(dbp__writer *w) {
  if (w->err) return w->err;
  if (w->in_file || w->committed || w->removed || (!w->o.split && w->nfiles > 0)) return DBP_ESTATE;
  if (w->nfiles == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 4;
    wfile *f = realloc(w->files, cap * sizeof *f);
    if (f == NULL) return DBP_ENOMEM;
    w->files = f;
    w->cap = cap;
  }
  wfile *f = &w->files[w->nfiles];
  memset(f, 0, sizeof *f);
  f->f.path = w->o.split ? dbp__part_path(w->path, (unsigned)w->nfiles + 1) : str_cat(w->path, "");
  if (f->f.path == NULL) return DBP_ENOMEM;
  f->part = str_cat(f->f.path, ".part");
  if (f->part == NULL) {
    free(f->f.path);
    return DBP_ENOMEM;
  }
  w->nfiles++;
  if (!w->bg_running) {
    dbp_spawn_options so = {.name = "export-writer", .detached = true};
    dbp_waiter_init(&w->bg_exit);
    int rc = dbp_spawn(w->rt, &w->bg, bg_main, w, &so);
    if (rc != 0) return rc;
    w->bg_running = true;
  }
  wjob *j;
  int rc = get_slot(w, &j);
  if (rc != 0) return rc;
  j->open = true;
  j->file = w->nfiles - 1;
  j->part = f->part;
  w->cur = j;
  w->cur_sent = 0;
  w->in_file = true;
  return 0;
}

dbp_buf *dbp__writer_buf(dbp__writer *w) {
  return w->cur ? &w->cur->data : NULL;
}

int dbp__writer_flush_if_full(dbp__writer *w) {
  if (w->err) return w->err;
  if (w->cur == NULL) return DBP_ESTATE;
  if (w->cur->data.len < w->o.chunk_size) return 0;
  size_t file = w->cur->file;
  const char *part = w->cur->part;
  int rc = send_cur(w);
  if (rc == 0) rc = get_slot(w, &w->cur);
  if (rc != 0) return rc;
  w->cur->file = file;
  w->cur->part = part;
  return 0;
}

int dbp__writer_write(dbp__writer *w, const void *p, size_t n) {
  if (w->cur == NULL) return w->err ? w->err : DBP_ESTATE;
  int rc = dbp_buf_append(&w->cur->data, p, n);
  return rc != 0 ? rc : dbp__writer_flush_if_full(w);
}

int dbp__writer_end(dbp__writer *w, uint64_t rows) {
  if (w->err) return w->err;
  if (!w->in_file || w->cur == NULL) return DBP_ESTATE;
  w->files[w->cur->file].f.rows = rows;
  w->cur->close = true;
  w->in_file = false;
  return send_cur(w);
}

uint64_t dbp__writer_size(const dbp__writer *w) {
  if (!w->in_file) return 0;
  if (w->z == NULL) return w->cur_sent + (w->cur ? w->cur->data.len : 0);
  return w->done_file == w->nfiles - 1 ? w->done_out : 0;
}

typedef struct commit_job {
  dbp__writer *w;
  int sys_errno;
  const char *op;
  const char *path;
} commit_job;

/* On the thread pool: every NAME.part becomes NAME, then the directory is
 * fsynced so the renames survive a crash. */
static void commit_work(void *arg) {
  commit_job *c = arg;
  dbp__writer *w = c->w;
  for (size_t i = 0; i < w->nfiles; i++) {
    if (rename(w->files[i].part, w->files[i].f.path) != 0) {
      c->sys_errno = errno;
      c->op = "rename";
      c->path = w->files[i].part;
      return;
    }
    w->files[i].renamed = true;
  }
  /* A split export replaces the whole set: parts numbered past this run's
   * last one are left over from an earlier, longer run and would read as
   * part of this one. */
  for (unsigned k = (unsigned)w->nfiles + 1; w->o.split; k++) {
    char *stale = dbp__part_path(w->path, k);
    bool gone = stale == NULL || unlink(stale) != 0;
    free(stale);
    if (gone) break;
  }
  if (w->o.no_fsync) return;
  int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    c->sys_errno = errno;
    c->op = "open directory";
    c->path = w->dir;
    return;
  }
  /* Some file systems cannot fsync a directory (EINVAL): nothing to do. */
  if (fsync(dfd) != 0 && errno != EINVAL) {
    c->sys_errno = errno;
    c->op = "fsync directory";
    c->path = w->dir;
  }
  close(dfd);
}

int dbp__writer_commit(dbp__writer *w) {
  if (w->committed) return 0;
  if (w->removed) return w->err ? w->err : DBP_ESTATE;
  int rc = w->err;
  if (rc == 0 && w->in_file) {
    set_error(w, DBP_ESTATE, "commit of %s with a file still open", w->path);
    rc = DBP_ESTATE;
  }
  if (rc == 0) {
    dbp_chan_close(w->jobs);
    rc = wait_bg(w);
    if (rc == 0) rc = w->err;
  }
  if (rc == 0 && w->nfiles > 0) {
    commit_job c = {w, 0, NULL, NULL};
    rc = dbp_work(w->rt, commit_work, &c);
    if (rc == 0 && c.sys_errno != 0) {
      rc = dbp_err_from_errno(-c.sys_errno);
      set_error(w, rc, "%s %s: %s", c.op, c.path, strerror(c.sys_errno));
    }
  }
  if (rc != 0) {
    set_error(w, rc, "writing %s: %s", w->path, dbp_strerror(rc));
    dbp__writer_abort(w);
    return rc;
  }
  w->committed = true;
  return 0;
}

/* Closes the open file and unlinks every .part and every final file this
 * writer renamed into place. Plain system calls: see the file comment. */
static void remove_files(dbp__writer *w) {
  if (w->removed) return;
  w->removed = true;
  if (w->fd >= 0) {
    close(w->fd);
    w->fd = -1;
  }
  for (size_t i = 0; i < w->nfiles; i++) {
    unlink(w->files[i].part);
    if (w->files[i].renamed) unlink(w->files[i].f.path);
  }
}

void dbp__writer_abort(dbp__writer *w) {
  if (w == NULL || w->committed || w->removed) return;
  if (w->bg_running) {
    dbp_cancel(w->bg);
    /* Neither the caller's cancellation nor its deadline may cut this wait
     * short: files can only be removed once no task can touch them. Outside
     * a coroutine nothing can wait; the background coroutine then cleans
     * up itself when it stops. */
    dbp_await_done(w->rt, &w->bg_exit);
    if (w->bg_running) {
      w->remove_on_exit = true;
      return;
    }
  }
  remove_files(w);
}

int dbp__writer_error(const dbp__writer *w, char *msg, size_t len) {
  if (msg != NULL && len > 0) snprintf(msg, len, "%s", w->err ? w->errmsg : "");
  return w->err;
}

dbp_export_file *dbp__writer_take_files(dbp__writer *w, size_t *n) {
  *n = 0;
  if (!w->committed) return NULL;
  dbp_export_file *out = calloc(w->nfiles ? w->nfiles : 1, sizeof *out);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < w->nfiles; i++) {
    out[i] = w->files[i].f;
    w->files[i].f.path = NULL;
  }
  *n = w->nfiles;
  return out;
}

static void destroy(dbp__writer *w) {
  for (size_t i = 0; i < w->nslots; i++) {
    dbp_buf_free(&w->slots[i]->data);
    free(w->slots[i]);
  }
  for (size_t i = 0; i < w->nfiles; i++) {
    free(w->files[i].f.path);
    free(w->files[i].part);
  }
  free(w->files);
  if (w->jobs) dbp_chan_free(w->jobs);
  if (w->free_jobs) dbp_chan_free(w->free_jobs);
  dbp__zstream_free(w->z);
  free(w->path);
  free(w->dir);
  free(w);
}

void dbp__writer_free(dbp__writer *w) {
  if (w == NULL) return;
  if (!w->committed) dbp__writer_abort(w);
  if (w->bg_running) {
    w->orphan = true;
    return;
  }
  destroy(w);
}

/* Placeholders until target checks and atomic small files are built. */
int dbp_export_check_target(const char *path, bool split, char *errbuf, size_t errlen) {
  (void)split;
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  return path == NULL || *path == '\0' ? DBP_EINVAL : 0;
}

int dbp_write_file_atomic(dbp_rt *rt, const char *path, const void *data, size_t len,
                          bool no_fsync, char *errbuf, size_t errlen) {
  dbp__writer_options o = {.compression = DBP_COMP_NONE, .no_fsync = no_fsync};
  dbp__writer *w = NULL;
  int rc = dbp__writer_new(rt, path, &o, &w);
  if (rc == 0) rc = dbp__writer_begin(w);
  if (rc == 0) rc = dbp__writer_write(w, data, len);
  if (rc == 0) rc = dbp__writer_end(w, 0);
  if (rc == 0) rc = dbp__writer_commit(w);
  if (rc != 0 && w != NULL) dbp__writer_error(w, errbuf, errlen);
  dbp__writer_free(w);
  return rc;
}
