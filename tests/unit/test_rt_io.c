/* Waiting on file descriptors, thread-pool work, name resolution and files,
 * including what happens when such a wait is cancelled. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe/rt.h"
#include "rttest.h"

/* ---- fd watchers ---- */

typedef struct {
  int fds[2];
  dbp_rt *rt;
} pipe_wrap;

static int body_pipe_writer(void *arg, void **result) {
  (void)result;
  pipe_wrap *pw = arg;
  cr_assert_eq(dbp_sleep(pw->rt, 10), 0);
  cr_assert_eq(write(pw->fds[1], "x", 1), 1);
  return 0;
}

static int body_pipe(dbp_rt *rt, void *arg) {
  pipe_wrap *pw = arg;
  pw->rt = rt;
  dbp_fdwatch *w;
  cr_assert_eq(dbp_fdwatch_new(rt, pw->fds[0], &w), 0);
  cr_assert_eq(dbp_fdwatch_fd(w), pw->fds[0]);
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_READABLE, 0, NULL), DBP_ETIMEDOUT, "nothing to read yet");
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_READABLE, 5, NULL), DBP_ETIMEDOUT);
  dbp_co *writer;
  cr_assert_eq(dbp_spawn(rt, &writer, body_pipe_writer, pw, NULL), 0);
  int rev = 0;
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_READABLE, 5000, &rev), 0);
  cr_assert_eq(rev, DBP_READABLE);
  char c;
  cr_assert_eq(read(pw->fds[0], &c, 1), 1);
  cr_assert_eq(c, 'x');
  cr_assert_eq(dbp_join(writer, NULL), 0);
  /* Readable again right away once more data is there, on the same poll. */
  cr_assert_eq(write(pw->fds[1], "y", 1), 1);
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_READABLE, 5000, &rev), 0);
  cr_assert_eq(read(pw->fds[0], &c, 1), 1);
  /* Close the watcher, then the fd, then watch a new fd of the same number. */
  dbp_fdwatch_close(w);
  cr_assert_eq(close(pw->fds[0]), 0);
  int again[2];
  cr_assert_eq(pipe(again), 0);
  int reuse = again[0];
  if (reuse != pw->fds[0]) {
    cr_assert_eq(dup2(again[0], pw->fds[0]), pw->fds[0]);
    close(again[0]);
    reuse = pw->fds[0];
  }
  dbp_fdwatch *w2;
  cr_assert_eq(dbp_fdwatch_new(rt, reuse, &w2), 0, "the same fd number can be watched again");
  cr_assert_eq(write(again[1], "z", 1), 1);
  cr_assert_eq(dbp_fdwatch_wait(w2, DBP_READABLE, 5000, &rev), 0);
  cr_assert_eq(rev, DBP_READABLE);
  cr_assert_eq(dbp_fdwatch_wait(w2, DBP_WRITABLE | DBP_READABLE, 5000, &rev), 0);
  dbp_fdwatch_close(w2);
  close(reuse);
  close(again[1]);
  close(pw->fds[1]);
  return 0;
}

Test(rt_io, fdwatch_waits_for_readable_and_fd_can_be_reused) {
  pipe_wrap pw;
  cr_assert_eq(pipe(pw.fds), 0);
  cr_assert_eq(dbt_run_in_coro(body_pipe, &pw), 0);
}

static int body_writable(dbp_rt *rt, void *arg) {
  (void)arg;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  dbp_fdwatch *w;
  cr_assert_eq(dbp_fdwatch_new(rt, fds[1], &w), 0);
  int rev = 0;
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_WRITABLE, 5000, &rev), 0);
  cr_assert_eq(rev, DBP_WRITABLE);
  /* Hang-up counts as ready: close the read end. */
  close(fds[0]);
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_WRITABLE, 5000, &rev), 0);
  dbp_fdwatch_close(w);
  close(fds[1]);
  return 0;
}

Test(rt_io, fdwatch_writable_and_hangup) {
  cr_assert_eq(dbt_run_in_coro(body_writable, NULL), 0);
}

typedef struct {
  dbp_fdwatch *w;
  int rc;
  bool cleanup;
} fd_cancel;

static int body_fd_wait_forever(void *arg, void **result) {
  (void)result;
  fd_cancel *f = arg;
  f->rc = dbp_fdwatch_wait(f->w, DBP_READABLE, DBP_FOREVER, NULL);
  f->cleanup = true;
  return f->rc;
}

static int body_fd_cancel(dbp_rt *rt, void *arg) {
  (void)arg;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  fd_cancel f = {0};
  cr_assert_eq(dbp_fdwatch_new(rt, fds[0], &f.w), 0);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_fd_wait_forever, &f, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 5), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(f.cleanup);
  /* The watcher stays usable after the cancelled wait. */
  cr_assert_eq(write(fds[1], "a", 1), 1);
  cr_assert_eq(dbp_fdwatch_wait(f.w, DBP_READABLE, 5000, NULL), 0);
  /* Closing the watcher wakes a waiter with DBP_ECLOSED. */
  char c;
  cr_assert_eq(read(fds[0], &c, 1), 1);
  f.cleanup = false;
  cr_assert_eq(dbp_spawn(rt, &co, body_fd_wait_forever, &f, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 5), 0);
  dbp_fdwatch_close(f.w);
  close(fds[0]);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECLOSED);
  close(fds[1]);
  return 0;
}

Test(rt_io, fdwatch_wait_cancel_and_close) {
  cr_assert_eq(dbt_run_in_coro(body_fd_cancel, NULL), 0);
}

/* The watcher is closed from a libuv callback that runs after the runtime's
 * drain in the same loop turn, so libuv's close callback runs before the
 * waiting coroutine resumes: the coroutine must still see DBP_ECLOSED and
 * the watcher's memory must outlive its wait (ASan checks that). */
typedef struct {
  dbp_fdwatch *w;
  bool waiting;
  int rc;
  uv_check_t check;
  uv_idle_t spin; /* keeps the loop turning so that the check runs */
} late_close;

static int body_wait_for_close(void *arg, void **result) {
  (void)result;
  late_close *l = arg;
  l->waiting = true;
  l->rc = dbp_fdwatch_wait(l->w, DBP_READABLE, DBP_FOREVER, NULL);
  return 0;
}

static void close_from_check(uv_check_t *c) {
  late_close *l = c->data;
  if (!l->waiting) return;
  dbp_fdwatch_close(l->w);
  uv_close((uv_handle_t *)c, NULL);
  uv_close((uv_handle_t *)&l->spin, NULL);
}

static void spin_idle(uv_idle_t *i) {
  (void)i;
}

Test(rt_io, fdwatch_closed_before_the_waiter_resumes) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  late_close l = {0};
  /* Started before the runtime's own check handle, so it runs after it. */
  uv_check_init(&loop, &l.check);
  l.check.data = &l;
  uv_check_start(&l.check, close_from_check);
  uv_idle_init(&loop, &l.spin);
  uv_idle_start(&l.spin, spin_idle);
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, &loop, NULL), 0);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(dbp_fdwatch_new(rt, fds[0], &l.w), 0);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_wait_for_close, &l, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(l.rc, DBP_ECLOSED);
  close(fds[0]);
  close(fds[1]);
  cr_assert_eq(dbp_rt_free(rt), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- thread-pool work ---- */

static void work_add(void *arg) {
  *(int *)arg += 41;
}

static int body_work(dbp_rt *rt, void *arg) {
  (void)arg;
  int v = 1;
  cr_assert_eq(dbp_work(rt, work_add, &v), 0);
  cr_assert_eq(v, 42);
  return 0;
}

Test(rt_io, work_runs_on_the_pool) {
  cr_assert_eq(dbt_run_in_coro(body_work, NULL), 0);
}

typedef struct {
  dbp_rt *rt;
  int rc;
  bool cleanup;
  _Atomic int started, ran;
} work_cancel;

static void work_slow(void *arg) {
  work_cancel *w = arg;
  w->started = 1;
  usleep(100 * 1000);
  w->ran = 1;
}

static int body_work_then_cleanup(void *arg, void **result) {
  (void)result;
  work_cancel *w = arg;
  w->rc = dbp_work(w->rt, work_slow, w);
  w->cleanup = true;
  return w->rc;
}

static void work_block(void *arg) {
  _Atomic int *gate = arg;
  while (!*gate) usleep(1000);
}

static int body_work_cancel(dbp_rt *rt, void *arg) {
  (void)arg;
  /* Once running, the work completes and the wait then reports the cancel. */
  work_cancel w = {.rt = rt};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_work_then_cleanup, &w, NULL), 0);
  while (!w.started) cr_assert_eq(dbp_sleep(rt, 1), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(w.cleanup);
  cr_assert_eq(w.ran, 1, "running work finishes before the cancelled wait returns");
  return 0;
}

Test(rt_io, work_cancel_while_running_completes_first) {
  cr_assert_eq(dbt_run_in_coro(body_work_cancel, NULL), 0);
}

typedef struct {
  dbp_rt *rt;
  _Atomic int gate;
} blocker;

static int body_blocker(void *arg, void **result) {
  (void)result;
  blocker *b = arg;
  return dbp_work(b->rt, work_block, &b->gate);
}

static int body_work_cancel_queued(dbp_rt *rt, void *arg) {
  (void)arg;
  /* Fill the pool (UV_THREADPOOL_SIZE=1 in this test) so the next work waits
   * in the queue, then cancel it there: it must never run. */
  blocker b = {.rt = rt};
  dbp_co *bco, *co;
  cr_assert_eq(dbp_spawn(rt, &bco, body_blocker, &b, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 20), 0);
  work_cancel w = {.rt = rt};
  cr_assert_eq(dbp_spawn(rt, &co, body_work_then_cleanup, &w, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 20), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(w.cleanup);
  b.gate = 1;
  cr_assert_eq(dbp_join(bco, NULL), 0);
  cr_assert_eq(w.ran, 0, "queued work is dropped");
  return 0;
}

static int body_work_deadline(dbp_rt *rt, void *arg) {
  (void)arg;
  work_cancel w = {.rt = rt};
  uint64_t tok;
  cr_assert_eq(dbp_deadline_push(rt, 20, &tok), 0);
  cr_assert_eq(dbp_work(rt, work_slow, &w), DBP_ETIMEDOUT);
  /* Dropped if the deadline came while it was queued; never still running. */
  cr_assert_eq(w.ran, w.started, "work that started finished before the wait returned");
  dbp_deadline_pop(rt, tok);
  return 0;
}

Test(rt_io, work_deadline_waits_for_running_work) {
  cr_assert_eq(dbt_run_in_coro(body_work_deadline, NULL), 0);
}

Test(rt_io, work_cancel_while_queued_drops_it) {
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  cr_assert_eq(dbt_run_in_coro(body_work_cancel_queued, NULL), 0);
}

/* ---- name resolution ---- */

static int body_resolve(dbp_rt *rt, void *arg) {
  (void)arg;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  cr_assert_eq(dbp_getaddrinfo(rt, "127.0.0.1", "5432", &hints, &res), 0);
  cr_assert_not_null(res);
  cr_assert_eq(res->ai_family, AF_INET);
  dbp_freeaddrinfo(res);
  cr_assert_eq(dbp_getaddrinfo(rt, "localhost", NULL, NULL, &res), 0);
  cr_assert_not_null(res);
  dbp_freeaddrinfo(res);
  cr_assert_eq(dbp_getaddrinfo(rt, "nonexistent.invalid", NULL, NULL, &res), DBP_ERESOLVE);
  cr_assert_null(res);
  cr_assert_eq(dbp_getaddrinfo(rt, NULL, NULL, NULL, &res), DBP_EINVAL);
  /* A pending cancel: the request is cancelled or awaited, nothing leaks. */
  dbp_cancel(dbp_current(rt));
  cr_assert_eq(dbp_getaddrinfo(rt, "localhost", NULL, NULL, &res), DBP_ECANCELED);
  cr_assert_null(res);
  return 0;
}

Test(rt_io, getaddrinfo_resolves_and_reports) {
  cr_assert_eq(dbt_run_in_coro(body_resolve, NULL), 0);
}

/* ---- files ---- */

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dbp_rt_io_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

static int body_files(dbp_rt *rt, void *arg) {
  (void)arg;
  char dir[320], path[400], path2[400];
  snprintf(dir, sizeof dir, "%s/a/b//c/", tmpdir);
  cr_assert_eq(dbp_fs_mkdir_p(rt, dir, 0755), 0);
  cr_assert_eq(dbp_fs_mkdir_p(rt, dir, 0755), 0, "mkdir -p of an existing directory");
  snprintf(path, sizeof path, "%s/a/b/c/f.part", tmpdir);
  snprintf(path2, sizeof path2, "%s/a/b/c/f.txt", tmpdir);
  int fd;
  cr_assert_eq(dbp_fs_open(rt, path, O_CREAT | O_WRONLY | O_TRUNC, 0644, &fd), 0);
  size_t len = 3 * 1024 * 1024 + 17;
  char *big = malloc(len);
  for (size_t i = 0; i < len; i++) big[i] = (char)('a' + i % 26);
  cr_assert_eq(dbp_fs_write(rt, fd, big, len, -1), 0);
  cr_assert_eq(dbp_fs_write(rt, fd, "END", 3, -1), 0);
  cr_assert_eq(dbp_fs_fsync(rt, fd), 0);
  cr_assert_eq(dbp_fs_close(rt, fd), 0);
  cr_assert_eq(dbp_fs_rename(rt, path, path2), 0);
  cr_assert_eq(access(path, F_OK), -1);
  cr_assert_eq(dbp_fs_open(rt, path2, O_RDONLY, 0, &fd), 0);
  char *back = malloc(len + 3);
  size_t got = 0, n;
  do {
    cr_assert_eq(dbp_fs_read(rt, fd, back + got, len + 3 - got, -1, &n), 0);
    got += n;
  } while (n > 0 && got < len + 3);
  cr_assert_eq(got, len + 3);
  cr_assert(memcmp(back, big, len) == 0);
  cr_assert(memcmp(back + len, "END", 3) == 0);
  cr_assert_eq(dbp_fs_read(rt, fd, back, 10, 0, &n), 0);
  cr_assert_eq(n, 10);
  cr_assert_eq(dbp_fs_close(rt, fd), 0);
  cr_assert_eq(dbp_fs_unlink(rt, path2), 0);
  cr_assert_eq(dbp_fs_unlink(rt, path2), DBP_ENOENT);
  cr_assert_eq(dbp_fs_open(rt, path2, O_RDONLY, 0, &fd), DBP_ENOENT);
  cr_assert_eq(fd, -1);
  /* mkdir -p over a file */
  snprintf(path, sizeof path, "%s/file", tmpdir);
  cr_assert_eq(dbp_fs_open(rt, path, O_CREAT | O_WRONLY, 0644, &fd), 0);
  cr_assert_eq(dbp_fs_close(rt, fd), 0);
  cr_assert_eq(dbp_fs_mkdir_p(rt, path, 0755), DBP_EEXIST);
  free(big);
  free(back);
  return 0;
}

Test(rt_io, files_roundtrip, .init = make_tmpdir, .fini = rm_tmpdir) {
  cr_assert_eq(dbt_run_in_coro(body_files, NULL), 0);
}

typedef struct {
  dbp_rt *rt;
  int fd;
  int rc;
  bool cleanup;
} fs_cancel;

static int body_fs_write_loop(void *arg, void **result) {
  (void)result;
  fs_cancel *f = arg;
  static char chunk[1 << 16];
  for (;;) {
    f->rc = dbp_fs_write(f->rt, f->fd, chunk, sizeof chunk, -1);
    if (f->rc != 0) break;
  }
  f->cleanup = true;
  cr_assert_eq(dbp_fs_close(f->rt, f->fd), 0, "cleanup can still use the fs after a cancel");
  return f->rc;
}

static int body_fs_cancel(dbp_rt *rt, void *arg) {
  (void)arg;
  char path[400];
  snprintf(path, sizeof path, "%s/c.bin", tmpdir);
  fs_cancel f = {.rt = rt};
  cr_assert_eq(dbp_fs_open(rt, path, O_CREAT | O_WRONLY | O_TRUNC, 0644, &f.fd), 0);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_fs_write_loop, &f, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 20), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert_eq(f.rc, DBP_ECANCELED);
  cr_assert(f.cleanup);
  return 0;
}

Test(rt_io, fs_op_cancelled_in_flight, .init = make_tmpdir, .fini = rm_tmpdir) {
  cr_assert_eq(dbt_run_in_coro(body_fs_cancel, NULL), 0);
}

static int body_fs_deadline(dbp_rt *rt, void *arg) {
  (void)arg;
  char path[400];
  snprintf(path, sizeof path, "%s/d.bin", tmpdir);
  int fd;
  cr_assert_eq(dbp_fs_open(rt, path, O_CREAT | O_WRONLY | O_TRUNC, 0644, &fd), 0);
  static char chunk[1 << 16];
  uint64_t tok;
  cr_assert_eq(dbp_deadline_push(rt, 20, &tok), 0);
  int rc;
  while ((rc = dbp_fs_write(rt, fd, chunk, sizeof chunk, -1)) == 0) {
  }
  cr_assert_eq(rc, DBP_ETIMEDOUT);
  cr_assert_eq(dbp_fs_close(rt, fd), 0, "closing is never interrupted, even past a deadline");
  dbp_deadline_pop(rt, tok);
  return 0;
}

Test(rt_io, fs_op_ends_at_deadline, .init = make_tmpdir, .fini = rm_tmpdir) {
  cr_assert_eq(dbt_run_in_coro(body_fs_deadline, NULL), 0);
}

static int body_outside(dbp_rt *rt, void *arg) {
  (void)rt;
  (void)arg;
  return 0;
}

Test(rt_io, io_waits_outside_a_coroutine_return_enotcoro) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  int fd;
  cr_assert_eq(dbp_fs_open(rt, "/dev/null", O_RDONLY, 0, &fd), DBP_ENOTCORO);
  cr_assert_eq(dbp_work(rt, work_add, &fd), DBP_ENOTCORO);
  struct addrinfo *res;
  cr_assert_eq(dbp_getaddrinfo(rt, "localhost", NULL, NULL, &res), DBP_ENOTCORO);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  dbp_fdwatch *w, *dup;
  cr_assert_eq(dbp_fdwatch_new(rt, fds[0], &w), 0);
  cr_assert_eq(dbp_fdwatch_new(rt, fds[0], &dup), DBP_EEXIST, "one watcher per fd");
  cr_assert_eq(dbp_fdwatch_wait(w, DBP_READABLE, 0, NULL), DBP_ENOTCORO);
  cr_assert_eq(dbp_rt_free(rt), DBP_EBUSY, "a watcher is still open");
  dbp_fdwatch_close(w);
  close(fds[0]);
  close(fds[1]);
  (void)body_outside;
  cr_assert_eq(dbp_rt_free(rt), 0);
}
