/* Files through uv_fs_* on libuv's thread pool. Each request lives on the
 * calling coroutine's stack; if the wait is interrupted (cancel, deadline)
 * the request is uv_cancel'ed or, once running, awaited to its end before
 * the function returns, so no callback touches a dead stack. */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt/rt_internal.h"

typedef struct fs_op {
  uv_fs_t req; /* first: the callback casts back */
  dbp_waiter w;
} fs_op;

static void fs_done(uv_fs_t *r) {
  fs_op *op = (fs_op *)r;
  dbp_wake(&op->w, 0);
}

static int fs_begin(dbp_rt *rt, fs_op *op) {
  if (!rt) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  memset(op, 0, sizeof *op);
  dbp_waiter_init(&op->w);
  return 0;
}

/* Waits for a submitted request (`submit` is what uv_fs_* returned) and
 * cleans it up. Stores the request's result in *res (may be NULL). Returns
 * 0, the mapped error of the request, or DBP_ECANCELED / DBP_ETIMEDOUT when
 * the wait was interrupted (the request has ended either way). */
static int fs_end(dbp_rt *rt, fs_op *op, int submit, ssize_t *res, int flags) {
  if (res) *res = 0;
  if (submit < 0) {
    uv_fs_req_cleanup(&op->req);
    return dbp_err_from_errno(submit);
  }
  int rc = dbp__await(rt, &op->w, DBP_FOREVER, flags);
  if (rc != 0) {
    uv_cancel((uv_req_t *)&op->req);
    dbp_await_done(rt, &op->w);
  }
  ssize_t r = op->req.result;
  uv_fs_req_cleanup(&op->req);
  if (res) *res = r;
  if (rc != 0) return rc;
  return r < 0 ? dbp_err_from_errno((int)r) : 0;
}

int dbp_fs_open(dbp_rt *rt, const char *path, int flags, int mode, int *fd) {
  if (fd) *fd = -1;
  if (!path || !fd) return DBP_EINVAL;
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  ssize_t r;
  rc =
      fs_end(rt, &op, uv_fs_open(rt->loop, &op.req, path, flags | O_CLOEXEC, mode, fs_done), &r, 0);
  if (rc != 0) {
    /* Interrupted after the open happened: do not leak the descriptor. */
    if ((rc == DBP_ECANCELED || rc == DBP_ETIMEDOUT) && r >= 0) close((int)r);
    return rc;
  }
  *fd = (int)r;
  return 0;
}

int dbp_fs_write(dbp_rt *rt, int fd, const void *buf, size_t len, int64_t offset) {
  if (!buf && len) return DBP_EINVAL;
  const char *p = buf;
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  while (len > 0) {
    unsigned int chunk = len > (1u << 30) ? (1u << 30) : (unsigned int)len;
    uv_buf_t b = uv_buf_init((char *)p, chunk);
    ssize_t n;
    fs_begin(rt, &op);
    rc = fs_end(rt, &op, uv_fs_write(rt->loop, &op.req, fd, &b, 1, offset, fs_done), &n, 0);
    if (rc != 0) return rc;
    if (n <= 0) return DBP_EIO; /* no progress: do not spin */
    p += n;
    len -= (size_t)n;
    if (offset >= 0) offset += n;
  }
  return 0;
}

int dbp_fs_read(dbp_rt *rt, int fd, void *buf, size_t len, int64_t offset, size_t *nread) {
  if (nread) *nread = 0;
  if (!buf && len) return DBP_EINVAL;
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  uv_buf_t b = uv_buf_init(buf, len > (1u << 30) ? (1u << 30) : (unsigned int)len);
  ssize_t n;
  rc = fs_end(rt, &op, uv_fs_read(rt->loop, &op.req, fd, &b, 1, offset, fs_done), &n, 0);
  if (rc == 0 && nread) *nread = (size_t)n;
  return rc;
}

int dbp_fs_fsync(dbp_rt *rt, int fd) {
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  return fs_end(rt, &op, uv_fs_fsync(rt->loop, &op.req, fd, fs_done), NULL, 0);
}

/* Closing is never interrupted: a half-known descriptor state helps nobody.
 * A cancellation arriving meanwhile stays pending for the next wait. */
int dbp_fs_close(dbp_rt *rt, int fd) {
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  return fs_end(rt, &op, uv_fs_close(rt->loop, &op.req, fd, fs_done), NULL,
                DBP__AWAIT_UNINTERRUPTIBLE);
}

int dbp_fs_rename(dbp_rt *rt, const char *from, const char *to) {
  if (!from || !to) return DBP_EINVAL;
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  return fs_end(rt, &op, uv_fs_rename(rt->loop, &op.req, from, to, fs_done), NULL, 0);
}

int dbp_fs_unlink(dbp_rt *rt, const char *path) {
  if (!path) return DBP_EINVAL;
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  return fs_end(rt, &op, uv_fs_unlink(rt->loop, &op.req, path, fs_done), NULL, 0);
}

static int mkdir_one(dbp_rt *rt, const char *path, int mode) {
  fs_op op;
  int rc = fs_begin(rt, &op);
  if (rc) return rc;
  return fs_end(rt, &op, uv_fs_mkdir(rt->loop, &op.req, path, mode, fs_done), NULL, 0);
}

/* Creates path and its missing parents. 0 when path is (now) a directory;
 * DBP_EEXIST when it exists and is not one. */
int dbp_fs_mkdir_p(dbp_rt *rt, const char *path, int mode) {
  if (!path || !*path) return DBP_EINVAL;
  if (!rt) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  char *p = strdup(path);
  if (!p) return DBP_ENOMEM;
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    rc = mkdir_one(rt, p, mode);
    *s = c;
    if (rc == DBP_EEXIST) rc = 0;
    if (rc != 0 || c == '\0') break;
    while (s[1] == '/') s++;
    if (s[1] == '\0') break;
  }
  if (rc == 0) {
    fs_op op;
    fs_begin(rt, &op);
    int submit = uv_fs_stat(rt->loop, &op.req, p, fs_done);
    if (submit < 0) {
      rc = dbp_err_from_errno(submit);
    } else {
      rc = dbp__await(rt, &op.w, DBP_FOREVER, 0);
      if (rc != 0) {
        uv_cancel((uv_req_t *)&op.req);
        dbp_await_done(rt, &op.w);
      } else if (op.req.result < 0) {
        rc = dbp_err_from_errno((int)op.req.result);
      } else if (!S_ISDIR(op.req.statbuf.st_mode)) {
        rc = DBP_EEXIST;
      }
    }
    uv_fs_req_cleanup(&op.req);
  }
  free(p);
  return rc;
}
