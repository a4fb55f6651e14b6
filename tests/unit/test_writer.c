/* The atomic file writer: a temporary file beside the target then rename,
 * all or nothing, gzip and zstd round trips, split names, SHA-256, failed
 * writes (file size limit, a full file system) that end in a clear error and
 * no file, a cancelled producer, and streaming to standard output. What
 * planted, stale and concurrent files and odd targets do is in
 * test_writer_safety.c; the shared helpers are in tests/support/writertest.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "dbpipe/rt.h"
#include "export/export_int.h"
#include "export/writer.h"
#include "rttest.h"
#include "writertest.h"

/* ---- helpers ---- */

TestSuite(writer, .init = tmpdir_make, .fini = tmpdir_remove, .timeout = 120);

static char *sha256_hex(const void *p, size_t n) {
  static char hex[65];
  dbp__sha256 s;
  dbp__sha256_init(&s);
  dbp__sha256_update(&s, p, n);
  dbp__sha256_final_hex(&s, hex);
  return hex;
}

/* ---- SHA-256 ---- */

Test(writer, sha256_known_vectors) {
  cr_expect_str_eq(sha256_hex("", 0),
                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  cr_expect_str_eq(sha256_hex("abc", 3),
                   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  cr_expect_str_eq(sha256_hex(m, strlen(m)),
                   "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  char *a = malloc(1000000);
  memset(a, 'a', 1000000);
  cr_expect_str_eq(sha256_hex(a, 1000000),
                   "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  /* The same digest whatever the pieces: 1, 63, 64, 65 ... bytes at a time. */
  dbp__sha256 s;
  dbp__sha256_init(&s);
  size_t sizes[] = {1, 63, 64, 65, 127, 1000, 4096}, off = 0;
  for (int i = 0; off < 1000000; i = (i + 1) % 7) {
    size_t k = sizes[i] < 1000000 - off ? sizes[i] : 1000000 - off;
    dbp__sha256_update(&s, a + off, k);
    off += k;
  }
  char hex[65];
  dbp__sha256_final_hex(&s, hex);
  cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(a);
}

/* The SHA extensions path (when this CPU has it) and the portable one agree
 * block by block on pseudo-random data. */
Test(writer, sha256_implementations_agree) {
  uint8_t *data = malloc(64 * 1000);
  uint32_t s = 7;
  for (size_t i = 0; i < 64 * 1000; i++) {
    s = s * 1664525 + 1013904223;
    data[i] = (uint8_t)(s >> 24);
  }
  uint32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
  memcpy(b, a, sizeof a);
  for (size_t n = 1, off = 0; off + 64 * n <= 64 * 1000; off += 64 * n, n = n % 7 + 1) {
    dbp__sha256_compress(a, data + off, n, DBP__SHA256_PORTABLE);
    dbp__sha256_compress(b, data + off, n, DBP__SHA256_SHA_NI);
    cr_assert(memcmp(a, b, sizeof a) == 0, "diverged at block %zu", off / 64);
  }
  cr_log_info("SHA-256 in use: %s",
              dbp__sha256_impl() == DBP__SHA256_SHA_NI ? "SHA-NI" : "portable");
  free(data);
}

/* ---- plain files ---- */

Test(writer, part_file_then_rename_with_sha256) {
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE, .chunk_size = 1000},
             .data = "id,name\n1,\"x\"\n",
             .len = 14,
             .piece = 3};
  mode_t old_mask = umask(027);
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  umask(old_mask);
  cr_expect(c.part_seen, "one temporary out.csv.<token>.part exists while writing");
  cr_expect(S_ISREG(c.tmp_mode) && (c.tmp_mode & 07777) == (0666 & ~027), "mode %o",
            (unsigned)c.tmp_mode);
  cr_expect(!c.final_seen_early, "out.csv does not exist before the commit");
  cr_expect(!path_exists(c.tmp_name), "the temporary file is gone");
  size_t n;
  char *got = read_raw(in_tmp("out.csv"), &n);
  cr_expect_eq(n, 14);
  cr_expect(memcmp(got, c.data, 14) == 0);
  cr_assert_eq(c.nfiles, 1);
  cr_expect_str_eq(c.files[0].path, in_tmp("out.csv"));
  cr_expect_eq(c.files[0].rows, 10);
  cr_expect_eq(c.files[0].bytes, 14);
  char want[65];
  sha256sum(in_tmp("out.csv"), want);
  cr_expect_str_eq(c.files[0].sha256, want);
  cr_expect_eq(count_entries(tmpdir), 1);
  free(got);
  free_files(&c);
}

Test(writer, large_file_in_many_chunks_matches_sha256sum) {
  size_t len = 3 * 1024 * 1024 + 17;
  char *data = make_data(len);
  dbp_export_progress prog = {0};
  wcase c = {.path = in_tmp("big.csv"),
             .o = {.compression = DBP_COMP_NONE, .progress = &prog},
             .data = data,
             .len = len,
             .piece = 10007};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  size_t n;
  char *got = read_raw(in_tmp("big.csv"), &n);
  cr_assert_eq(n, len);
  cr_expect(memcmp(got, data, len) == 0);
  char want[65];
  sha256sum(in_tmp("big.csv"), want);
  cr_expect_str_eq(c.files[0].sha256, want);
  cr_expect_eq(c.files[0].bytes, len);
  cr_expect_eq(prog.bytes_out, len);
  free(got);
  free(data);
  free_files(&c);
}

Test(writer, existing_file_replaced_only_by_a_complete_one) {
  write_text(in_tmp("out.csv"), "old contents\n");
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE},
             .data = "new\n",
             .len = 4,
             .piece = 4,
             .abort = true};
  dbt_run_in_coro(body_write, &c);
  size_t n;
  char *got = read_raw(in_tmp("out.csv"), &n);
  cr_expect_str_eq(got, "old contents\n", "an aborted write leaves the old file alone");
  cr_expect_eq(count_entries(tmpdir), 1, "no temporary file is left");
  free(got);
  wcase ok = {.path = in_tmp("out.csv"),
              .o = {.compression = DBP_COMP_NONE},
              .data = "new\n",
              .len = 4,
              .piece = 4};
  cr_assert_eq(dbt_run_in_coro(body_write, &ok), 0);
  got = read_raw(in_tmp("out.csv"), &n);
  cr_expect_str_eq(got, "new\n");
  cr_expect_eq(count_entries(tmpdir), 1);
  free(got);
  free_files(&ok);
}

Test(writer, abort_of_a_split_export_leaves_nothing) {
  char *data = make_data(600000);
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_GZIP, .split = true, .chunk_size = 65536},
             .data = data,
             .len = 600000,
             .piece = 4096,
             .parts = 3,
             .abort = true};
  dbt_run_in_coro(body_write, &c);
  cr_expect(c.part_seen);
  cr_expect_eq(count_entries(tmpdir), 0, "no part and no final file is left");
  free(data);
}

Test(writer, split_parts_are_numbered_and_complete) {
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE, .split = true},
             .data = "a,b\n1,2\n",
             .len = 8,
             .piece = 8,
             .parts = 3};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  cr_assert_eq(c.nfiles, 3);
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "out-%05d.csv", i + 1);
    cr_expect_str_eq(c.files[i].path, in_tmp(name));
    cr_expect_eq(c.files[i].rows, (uint64_t)i + 10);
    size_t n;
    char *got = read_raw(in_tmp(name), &n);
    cr_expect_str_eq(got, "a,b\n1,2\n");
    free(got);
  }
  cr_expect_eq(count_entries(tmpdir), 3);
  free_files(&c);
}

Test(writer, parent_directories_are_created) {
  wcase c = {.path = in_tmp("a/b/c/out.tsv"),
             .o = {.compression = DBP_COMP_NONE},
             .data = "x\n",
             .len = 2,
             .piece = 2};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  cr_expect(path_exists(in_tmp("a/b/c/out.tsv")));
  free_files(&c);
}

Test(writer, unwritable_location_is_a_clear_error) {
  wcase c = {.path = "/proc/dbpipe-nope/out.csv",
             .o = {.compression = DBP_COMP_NONE},
             .data = "x\n",
             .len = 2,
             .piece = 2};
  int rc = dbt_run_in_coro(body_write, &c);
  cr_expect_neq(rc, 0);
  cr_expect_eq(c.err, rc);
  cr_expect(strstr(c.msg, "create /proc/dbpipe-nope/out.csv.") && strstr(c.msg, ".part: "),
            "message: %s", c.msg);
}

/* ---- compression ---- */

static char *gunzip(const char *p, size_t n, size_t *outlen) {
  z_stream z = {0};
  cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
  dbp_buf b = {0};
  z.next_in = (Bytef *)p;
  z.avail_in = (uInt)n;
  int r;
  do {
    dbp_buf_reserve(&b, 65536);
    z.next_out = (Bytef *)b.data + b.len;
    z.avail_out = 65536;
    r = inflate(&z, Z_NO_FLUSH);
    cr_assert(r == Z_OK || r == Z_STREAM_END, "inflate: %d", r);
    b.len = (size_t)((char *)z.next_out - b.data);
  } while (r != Z_STREAM_END);
  cr_expect_eq(z.avail_in, 0, "nothing after the gzip trailer");
  inflateEnd(&z);
  *outlen = b.len;
  return b.data;
}

static char *unzstd(const char *p, size_t n, size_t *outlen) {
  ZSTD_DCtx *d = ZSTD_createDCtx();
  dbp_buf b = {0};
  ZSTD_inBuffer in = {p, n, 0};
  size_t r = 1;
  while (in.pos < in.size) {
    dbp_buf_reserve(&b, 65536);
    ZSTD_outBuffer out = {b.data + b.len, 65536, 0};
    r = ZSTD_decompressStream(d, &out, &in);
    cr_assert(!ZSTD_isError(r), "zstd: %s", ZSTD_getErrorName(r));
    b.len += out.pos;
  }
  cr_expect_eq(r, 0, "a complete zstd frame");
  ZSTD_freeDCtx(d);
  *outlen = b.len;
  return b.data;
}

static void round_trip(dbp_compression comp, int level, bool flush) {
  size_t len = 2 * 1024 * 1024 + 333;
  char *data = make_data(len);
  dbp_export_progress prog = {0};
  wcase c = {.path = in_tmp(comp == DBP_COMP_GZIP ? "out.csv.gz" : "out.csv.zst"),
             .o = {.compression = comp, .level = level, .flush_chunks = flush, .progress = &prog},
             .data = data,
             .len = len,
             .piece = 65536};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  size_t n, m;
  char *file = read_raw(c.path, &n);
  cr_expect_lt(n, len / 2, "compressed");
  cr_expect_eq(c.files[0].bytes, n);
  cr_expect_eq(prog.bytes_out, n);
  cr_expect_str_eq(c.files[0].sha256, sha256_hex(file, n));
  char *plain = comp == DBP_COMP_GZIP ? gunzip(file, n, &m) : unzstd(file, n, &m);
  cr_assert_eq(m, len);
  cr_expect(memcmp(plain, data, len) == 0);
  /* The command-line tools read it too. */
  char cmd[320];
  snprintf(cmd, sizeof cmd, "%s '%s' > /dev/null 2>&1",
           comp == DBP_COMP_GZIP ? "gzip -t" : "zstd -t -q", c.path);
  if (comp == DBP_COMP_GZIP || system("command -v zstd > /dev/null") == 0)
    cr_expect_eq(system(cmd), 0, "%s", cmd);
  free(plain);
  free(file);
  free(data);
  free_files(&c);
}

Test(writer, gzip_round_trip) {
  round_trip(DBP_COMP_GZIP, 0, false);
}
Test(writer, gzip_round_trip_level_1_flushed_chunks) {
  round_trip(DBP_COMP_GZIP, 1, true);
}
Test(writer, zstd_round_trip) {
  round_trip(DBP_COMP_ZSTD, 0, false);
}
Test(writer, zstd_round_trip_level_19_flushed_chunks) {
  round_trip(DBP_COMP_ZSTD, 19, true);
}

Test(writer, empty_compressed_file_is_a_valid_stream) {
  wcase c = {.path = in_tmp("empty.jsonl.gz"),
             .o = {.compression = DBP_COMP_GZIP},
             .data = "",
             .len = 0,
             .piece = 1};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  size_t n, m;
  char *file = read_raw(c.path, &n);
  cr_expect_gt(n, 0);
  char *plain = gunzip(file, n, &m);
  cr_expect_eq(m, 0);
  free(plain);
  free(file);
  free_files(&c);
}

static int body_levels(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp__writer *w = NULL;
  cr_expect_eq(
      dbp__writer_new(rt, "x.gz", &(dbp__writer_options){.compression = DBP_COMP_GZIP, .level = 10},
                      &w),
      DBP_EINVAL);
  cr_expect_eq(
      dbp__writer_new(rt, "x.zst",
                      &(dbp__writer_options){.compression = DBP_COMP_ZSTD, .level = 23}, &w),
      DBP_EINVAL);
  cr_expect_eq(dbp__writer_new(rt, "x", &(dbp__writer_options){.compression = DBP_COMP_AUTO}, &w),
               DBP_EINVAL);
  cr_expect_null(w);
  return 0;
}

Test(writer, bad_compression_levels_are_refused) {
  dbt_run_in_coro(body_levels, NULL);
}

/* ---- failures ---- */

Test(writer, file_size_limit_fails_cleanly) {
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {100 * 1024, 100 * 1024};
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  char *data = make_data(1024 * 1024);
  wcase c = {.path = in_tmp("big.csv"),
             .o = {.compression = DBP_COMP_NONE},
             .data = data,
             .len = 1024 * 1024,
             .piece = 65536};
  int rc = dbt_run_in_coro(body_write, &c);
  cr_expect_neq(rc, 0);
  cr_expect_eq(c.err, rc);
  cr_expect(strstr(c.msg, "write ") && strstr(c.msg, "/big.csv.") &&
                strstr(c.msg, ".part: File too large"),
            "message: %s", c.msg);
  cr_expect_eq(count_entries(tmpdir), 0, "no file and no .part left");
  free(data);
}

/* A 64 KiB tmpfs in a private mount namespace (this test's process only). */
Test(writer, full_file_system_fails_cleanly) {
  if (unshare(CLONE_NEWNS) != 0) cr_skip_test("unshare(CLONE_NEWNS): %s", strerror(errno));
  /* Our mounts must not reach the machine's namespace. Under chroot "/" is
   * no mount point (EINVAL) and cannot be made private: a limit of the
   * place the test runs in, not a failure of dbpipe. */
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    cr_skip_test("cannot make / a private mount here: %s", strerror(errno));
  cr_assert_eq(mount("tmpfs", tmpdir, "tmpfs", 0, "size=64k"), 0, "%s", strerror(errno));
  char *data = make_data(1024 * 1024);
  wcase c = {.path = in_tmp("out.csv.zst"),
             .o = {.compression = DBP_COMP_ZSTD, .level = 1},
             .data = data,
             .len = 1024 * 1024,
             .piece = 65536,
             .parts = 1};
  int rc = dbt_run_in_coro(body_write, &c);
  cr_expect_eq(rc, DBP_ENOSPC, "%s", dbp_err_name(rc));
  cr_expect(strstr(c.msg, "/out.csv.zst.") && strstr(c.msg, ".part: No space left on device"),
            "message: %s", c.msg);
  cr_expect_eq(count_entries(tmpdir), 0, "no file and no .part left");
  umount(tmpdir);
  free(data);
}

/* ---- cancellation ---- */

typedef struct {
  const char *path;
  int rc;
  bool started;
} cancel_case;

static int producer(void *arg, void **result) {
  (void)result;
  cancel_case *c = arg;
  dbp_rt *rt = *(dbp_rt **)((char *)arg + sizeof(cancel_case));
  dbp__writer *w;
  dbp__writer_options o = {.compression = DBP_COMP_GZIP, .level = 9, .split = true};
  int rc = dbp__writer_new(rt, c->path, &o, &w);
  char *data = make_data(1 << 20);
  for (int part = 0; rc == 0; part++) {
    rc = dbp__writer_begin(w);
    for (int i = 0; rc == 0 && i < 8; i++) rc = dbp__writer_write(w, data, 1 << 20);
    if (rc == 0) rc = dbp__writer_end(w, 1);
    c->started = true;
  }
  c->rc = rc;
  dbp__writer_abort(w);
  dbp__writer_free(w);
  free(data);
  return rc;
}

static int body_cancel(dbp_rt *rt, void *arg) {
  struct {
    cancel_case c;
    dbp_rt *rt;
  } *a = arg;
  a->rt = rt;
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, producer, a, NULL), 0);
  while (!a->c.started) dbp_sleep(rt, 5);
  dbp_cancel(co);
  return dbp_join(co, NULL);
}

Test(writer, cancelled_producer_leaves_nothing) {
  struct {
    cancel_case c;
    dbp_rt *rt;
  } a = {{.path = in_tmp("out.csv.gz")}, NULL};
  int rc = dbt_run_in_coro(body_cancel, &a);
  cr_expect_eq(rc, DBP_ECANCELED, "%s", dbp_err_name(rc));
  cr_expect_eq(a.c.rc, DBP_ECANCELED);
  cr_expect_eq(count_entries(tmpdir), 0, "no part and no final file is left");
}

/* ---- standard output ---- */

typedef struct stdout_report {
  int rc;
  size_t nfiles;
  char path[8];
  uint64_t rows, bytes;
  char sha256[65];
} stdout_report;

typedef struct stdout_case {
  dbp_compression comp;
  const char *data;
  size_t len;
  stdout_report r;
} stdout_case;

static int body_stdout(dbp_rt *rt, void *arg) {
  stdout_case *s = arg;
  dbp__writer *w;
  dbp__writer_options o = {.compression = s->comp, .chunk_size = 32768};
  int rc = dbp__writer_new(rt, "-", &o, &w);
  if (rc != 0) return rc;
  rc = dbp__writer_begin(w);
  for (size_t off = 0; rc == 0 && off < s->len; off += 5000)
    rc = dbp__writer_write(w, s->data + off, s->len - off < 5000 ? s->len - off : 5000);
  if (rc == 0) rc = dbp__writer_end(w, 77);
  if (rc == 0) rc = dbp__writer_commit(w);
  s->r.rc = rc;
  if (rc == 0) {
    size_t n;
    dbp_export_file *f = dbp__writer_take_files(w, &n);
    s->r.nfiles = n;
    if (n > 0) {
      snprintf(s->r.path, sizeof s->r.path, "%s", f[0].path);
      s->r.rows = f[0].rows;
      s->r.bytes = f[0].bytes;
      memcpy(s->r.sha256, f[0].sha256, sizeof s->r.sha256);
    }
    for (size_t i = 0; i < n; i++) free(f[i].path);
    free(f);
  }
  dbp__writer_free(w);
  return rc;
}

/* Runs the writer to "-" in a child whose fd 1 is a pipe; returns what came
 * through the pipe, and the child's result in s->r. */
static char *stdout_run(stdout_case *s, size_t *len) {
  int out[2], rep[2];
  cr_assert_eq(pipe(out), 0);
  cr_assert_eq(pipe(rep), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(out[0]);
    close(rep[0]);
    if (chdir(tmpdir) != 0 || dup2(out[1], STDOUT_FILENO) < 0) _exit(1);
    close(out[1]);
    run_plain(body_stdout, s);
    _exit(write(rep[1], &s->r, sizeof s->r) == sizeof s->r ? 0 : 2);
  }
  close(out[1]);
  close(rep[1]);
  dbp_buf b = {0};
  char tmp[65536];
  ssize_t k;
  while ((k = read(out[0], tmp, sizeof tmp)) > 0) dbp_buf_append(&b, tmp, (size_t)k);
  close(out[0]);
  cr_assert_eq(read(rep[0], &s->r, sizeof s->r), (ssize_t)sizeof s->r);
  close(rep[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  *len = b.len;
  return b.data;
}

/* "-" streams the bytes (plain and gzip) to fd 1: no file anywhere (the
 * child ran in the test directory), the result names "-" with rows, bytes
 * and the SHA-256 of what went through. */
Test(writer, standard_output_streams_without_files) {
  size_t len = 400000;
  char *data = make_data(len);
  dbp_compression comps[] = {DBP_COMP_NONE, DBP_COMP_GZIP};
  for (int i = 0; i < 2; i++) {
    stdout_case s = {.comp = comps[i], .data = data, .len = len};
    size_t n;
    char *got = stdout_run(&s, &n);
    cr_assert_eq(s.r.rc, 0, "%s", dbp_err_name(s.r.rc));
    cr_assert_eq(s.r.nfiles, 1);
    cr_expect_str_eq(s.r.path, "-");
    cr_expect_eq(s.r.rows, 77);
    cr_expect_eq(s.r.bytes, n);
    cr_expect_str_eq(s.r.sha256, sha256_hex(got, n));
    size_t m = n;
    char *plain = got;
    if (comps[i] == DBP_COMP_GZIP) plain = gunzip(got, n, &m);
    cr_expect(m == len && memcmp(plain, data, len) == 0, "the bytes went through (%zu)", m);
    if (plain != got) free(plain);
    free(got);
    cr_expect_eq(count_entries(tmpdir), 0, "no file was written");
  }
  free(data);
}

static int body_stdout_split(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp__writer *w = NULL;
  dbp__writer_options o = {.compression = DBP_COMP_NONE, .split = true};
  cr_expect_eq(dbp__writer_new(rt, "-", &o, &w), DBP_EINVAL);
  cr_expect_null(w);
  return 0;
}

Test(writer, standard_output_cannot_be_split) {
  dbt_run(body_stdout_split, NULL);
}
