/* The atomic file writer: .part then rename, all or nothing, gzip and zstd
 * round trips, split names, SHA-256, and failed writes (file size limit, a
 * full file system) that end in a clear error and no file. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "dbpipe/rt.h"
#include "export/export_int.h"
#include "export/writer.h"
#include "rttest.h"

/* ---- helpers ---- */

static char tmpdir[64];

static void make_tmpdir(void) {
  strcpy(tmpdir, "/tmp/dbp-writer-XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(writer, .init = make_tmpdir, .fini = remove_tmpdir);

static char *in_tmp(const char *name) {
  static char buf[4][256];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  return p;
}

/* Number of entries in a directory, "." and ".." excluded. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  }
  closedir(d);
  return n;
}

static bool exists(const char *path) {
  return access(path, F_OK) == 0;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "open %s", path);
  dbp_buf b = {0};
  char tmp[65536];
  size_t k;
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) dbp_buf_append(&b, tmp, k);
  fclose(f);
  dbp_buf_append(&b, "", 1);
  *len = b.len - 1;
  return b.data;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* Deterministic test data: lines of pseudo-random words, compressible but
 * not trivially so. */
static char *make_data(size_t n) {
  static const char *words[] = {"alpha", "beta", "gamma", "delta", "épsilon", "ζ",
                                "山田",  "42",   "-0.50", "\"q\"", "x,y"};
  char *p = malloc(n);
  uint32_t s = 12345;
  size_t i = 0;
  while (i < n) {
    s = s * 1103515245 + 12345;
    const char *w = words[(s >> 16) % 11];
    size_t k = strlen(w);
    for (size_t j = 0; j < k && i < n; j++) p[i++] = w[j];
    if (i < n) p[i++] = (s >> 8) % 7 == 0 ? '\n' : ',';
  }
  return p;
}

static char *sha256_hex(const void *p, size_t n) {
  static char hex[65];
  dbp__sha256 s;
  dbp__sha256_init(&s);
  dbp__sha256_update(&s, p, n);
  dbp__sha256_final_hex(&s, hex);
  return hex;
}

/* sha256sum's opinion of a file. */
static void sha256sum(const char *path, char out[65]) {
  char cmd[320];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%64s", out), 1);
  pclose(f);
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

typedef struct {
  const char *path;
  dbp__writer_options o;
  const char *data;
  size_t len;
  size_t piece; /* bytes per write call */
  int parts;    /* files to write (split) */
  bool abort;   /* abort instead of commit */
  bool part_seen, final_seen_early;
  dbp_export_file *files;
  size_t nfiles;
  int err;
  char msg[256];
} wcase;

/* Writes c->data (c->parts times, as parts) and commits or aborts. While
 * the first file is open, notes whether NAME.part exists and NAME not. */
static int body_write(dbp_rt *rt, void *arg) {
  wcase *c = arg;
  dbp__writer *w;
  int rc = dbp__writer_new(rt, c->path, &c->o, &w);
  if (rc != 0) return rc;
  int parts = c->parts ? c->parts : 1;
  for (int p = 0; p < parts && rc == 0; p++) {
    rc = dbp__writer_begin(w);
    for (size_t off = 0; rc == 0 && off < c->len; off += c->piece) {
      size_t k = c->len - off < c->piece ? c->len - off : c->piece;
      rc = dbp__writer_write(w, c->data + off, k);
    }
    if (rc == 0) rc = dbp__writer_end(w, (uint64_t)p + 10);
    if (rc == 0 && p == 0) {
      /* Let the background writer create the file. */
      for (int i = 0; i < 50; i++) dbp_sleep(rt, 1);
      char part[300];
      snprintf(part, sizeof part, "%s.part", c->o.split ? in_tmp("out-00001.csv") : c->path);
      c->part_seen = exists(part);
      c->final_seen_early = exists(c->o.split ? in_tmp("out-00001.csv") : c->path);
    }
  }
  if (rc == 0 && !c->abort) rc = dbp__writer_commit(w);
  if (rc != 0 || c->abort) {
    dbp__writer_abort(w);
    c->err = dbp__writer_error(w, c->msg, sizeof c->msg);
  } else {
    c->files = dbp__writer_take_files(w, &c->nfiles);
  }
  dbp__writer_free(w);
  return rc;
}

static void free_files(wcase *c) {
  for (size_t i = 0; i < c->nfiles; i++) free(c->files[i].path);
  free(c->files);
}

Test(writer, part_file_then_rename_with_sha256) {
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE, .chunk_size = 1000},
             .data = "id,name\n1,\"x\"\n",
             .len = 14,
             .piece = 3};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  cr_expect(c.part_seen, "out.csv.part exists while writing");
  cr_expect(!c.final_seen_early, "out.csv does not exist before the commit");
  cr_expect(!exists(in_tmp("out.csv.part")));
  size_t n;
  char *got = read_all(in_tmp("out.csv"), &n);
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
  char *got = read_all(in_tmp("big.csv"), &n);
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
  write_file(in_tmp("out.csv"), "old contents\n");
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE},
             .data = "new\n",
             .len = 4,
             .piece = 4,
             .abort = true};
  dbt_run_in_coro(body_write, &c);
  size_t n;
  char *got = read_all(in_tmp("out.csv"), &n);
  cr_expect_str_eq(got, "old contents\n", "an aborted write leaves the old file alone");
  cr_expect(!exists(in_tmp("out.csv.part")));
  free(got);
  wcase ok = {.path = in_tmp("out.csv"),
              .o = {.compression = DBP_COMP_NONE},
              .data = "new\n",
              .len = 4,
              .piece = 4};
  cr_assert_eq(dbt_run_in_coro(body_write, &ok), 0);
  got = read_all(in_tmp("out.csv"), &n);
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
    char *got = read_all(in_tmp(name), &n);
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
  cr_expect(exists(in_tmp("a/b/c/out.tsv")));
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
  cr_expect(strstr(c.msg, "create /proc/dbpipe-nope/out.csv.part") != NULL, "message: %s", c.msg);
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
  char *file = read_all(c.path, &n);
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
  char *file = read_all(c.path, &n);
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
  cr_expect(strstr(c.msg, "write ") && strstr(c.msg, "big.csv.part: File too large"), "message: %s",
            c.msg);
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
  cr_expect(strstr(c.msg, "out.csv.zst.part: No space left on device"), "message: %s", c.msg);
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
