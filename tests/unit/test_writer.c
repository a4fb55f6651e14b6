/* The atomic file writer: a temporary file beside the target then rename,
 * all or nothing, gzip and zstd round trips, split names, SHA-256, failed
 * writes (file size limit, a full file system) that end in a clear error and
 * no file; temporary names nothing planted can redirect, stale files of dead
 * writers removed and live ones kept, targets that are no regular file
 * refused, streaming to standard output, and small atomic files. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
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

TestSuite(writer, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 120);

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

/* Is name[0..) FINALBASE "." 16 lowercase hex digits ".part"? With base
 * NULL, any final name. */
static bool is_temp_name(const char *name, const char *base) {
  size_t n = strlen(name);
  if (n <= 22 || strcmp(name + n - 5, ".part") != 0 || name[n - 22] != '.') return false;
  for (size_t i = n - 21; i < n - 5; i++) {
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return false;
  }
  return base == NULL || (strlen(base) == n - 22 && strncmp(name, base, n - 22) == 0);
}

/* Counts the temporary files beside `final` (its directory, its name);
 * copies the first one's path to out when out is not NULL. */
static int temps_of(const char *final, char *out, size_t outlen) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s", final);
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  const char *base = strrchr(final, '/') + 1;
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_temp_name(e->d_name, base)) continue;
    if (n++ == 0 && out != NULL) snprintf(out, outlen, "%.200s/%.80s", dir, e->d_name);
  }
  closedir(d);
  return n;
}

/* Temporary files of any target in the test directory. */
static int count_temps(void) {
  DIR *d = opendir(tmpdir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += is_temp_name(e->d_name, NULL);
  closedir(d);
  return n;
}

/* The type bits of what is at path (not following a link), or 0. */
static mode_t type_of(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0;
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
  char tmp_name[300]; /* the first file's temporary name while it was open */
  mode_t tmp_mode;
  dbp_export_file *files;
  size_t nfiles;
  int err;
  char msg[256];
} wcase;

/* Writes c->data (c->parts times, as parts) and commits or aborts. While
 * the first file is open, notes whether one temporary file exists beside
 * NAME (its name and mode) and NAME not. */
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
      const char *first = c->o.split ? in_tmp("out-00001.csv") : c->path;
      c->part_seen = temps_of(first, c->tmp_name, sizeof c->tmp_name) == 1;
      struct stat st;
      if (c->part_seen && lstat(c->tmp_name, &st) == 0) c->tmp_mode = st.st_mode;
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
  mode_t old_mask = umask(027);
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
  umask(old_mask);
  cr_expect(c.part_seen, "one temporary out.csv.<token>.part exists while writing");
  cr_expect(S_ISREG(c.tmp_mode) && (c.tmp_mode & 07777) == (0666 & ~027), "mode %o",
            (unsigned)c.tmp_mode);
  cr_expect(!c.final_seen_early, "out.csv does not exist before the commit");
  cr_expect(!exists(c.tmp_name), "the temporary file is gone");
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
  cr_expect_eq(count_entries(tmpdir), 1, "no temporary file is left");
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

/* ---- hostile and concurrent surroundings ---- */

static const char victim_text[] = "precious: not to be touched\n";

static void expect_victim_untouched(void) {
  size_t n;
  char *got = read_all(in_tmp("victim"), &n);
  cr_expect_str_eq(got, victim_text, "the file a planted link points to is unchanged");
  free(got);
}

/* Plants a symbolic link at tmpdir/name pointing to tmpdir/victim. */
static void plant_link(const char *name) {
  cr_assert_eq(symlink(in_tmp("victim"), in_tmp(name)), 0, "symlink %s: %s", name, strerror(errno));
}

/* Symbolic links at every name an attacker could predict (the old NAME.part
 * of the file, of each split part and of a manifest) redirect nothing: the
 * exports succeed, the link's target is untouched and the links stay links. */
Test(writer, planted_links_at_predictable_names_redirect_nothing) {
  write_file(in_tmp("victim"), victim_text);
  const char *links[] = {"out.csv.part", "out-00001.csv.part", "out-00002.csv.part",
                         "out-00003.csv.part"};
  for (int i = 0; i < 4; i++) plant_link(links[i]);
  wcase plain = {.path = in_tmp("out.csv"),
                 .o = {.compression = DBP_COMP_NONE},
                 .data = "id\n1\n",
                 .len = 5,
                 .piece = 5};
  cr_assert_eq(dbt_run_in_coro(body_write, &plain), 0, "%s", plain.msg);
  cr_expect_eq(type_of(in_tmp("out.csv")), S_IFREG, "out.csv is a regular file");
  free_files(&plain);
  wcase split = {.path = in_tmp("out.csv"),
                 .o = {.compression = DBP_COMP_GZIP, .split = true},
                 .data = "id\n1\n",
                 .len = 5,
                 .piece = 5,
                 .parts = 3};
  cr_assert_eq(dbt_run_in_coro(body_write, &split), 0, "%s", split.msg);
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "out-%05d.csv", i + 1);
    cr_expect_eq(type_of(in_tmp(name)), S_IFREG, "%s is a regular file", name);
  }
  free_files(&split);
  expect_victim_untouched();
  for (int i = 0; i < 4; i++) cr_expect_eq(type_of(in_tmp(links[i])), S_IFLNK, "%s", links[i]);
  size_t n;
  char *got = read_all(in_tmp("out.csv"), &n);
  cr_expect_str_eq(got, "id\n1\n");
  free(got);
  cr_expect_eq(count_temps(), 0, "no temporary file is left");
}

/* Two runs to one target use different temporary names. */
Test(writer, temporary_names_differ_from_run_to_run) {
  char first[300];
  for (int run = 0; run < 2; run++) {
    wcase c = {.path = in_tmp("out.csv"),
               .o = {.compression = DBP_COMP_NONE},
               .data = "x\n",
               .len = 2,
               .piece = 2};
    cr_assert_eq(dbt_run_in_coro(body_write, &c), 0);
    cr_assert(c.part_seen);
    if (run == 0) snprintf(first, sizeof first, "%s", c.tmp_name);
    if (run == 1) cr_expect_str_neq(c.tmp_name, first);
    free_files(&c);
  }
}

typedef struct two_writers {
  char *a, *b;
  size_t na, nb;
  int rc_a, rc_b;
  int temps_while_open;
} two_writers;

static int body_two_writers(dbp_rt *rt, void *arg) {
  two_writers *t = arg;
  dbp__writer_options o = {.compression = DBP_COMP_NONE, .chunk_size = 65536};
  dbp__writer *wa, *wb;
  if (dbp__writer_new(rt, in_tmp("out.csv"), &o, &wa) != 0) return 1;
  if (dbp__writer_new(rt, in_tmp("out.csv"), &o, &wb) != 0) return 1;
  int rc = dbp__writer_begin(wa);
  if (rc == 0) rc = dbp__writer_begin(wb);
  /* Interleaved chunks: both files are open at once. */
  for (size_t off = 0; rc == 0 && (off < t->na || off < t->nb); off += 10000) {
    if (off < t->na)
      rc = dbp__writer_write(wa, t->a + off, t->na - off < 10000 ? t->na - off : 10000);
    if (rc == 0 && off < t->nb)
      rc = dbp__writer_write(wb, t->b + off, t->nb - off < 10000 ? t->nb - off : 10000);
  }
  if (rc == 0) rc = dbp__writer_end(wa, 1);
  if (rc == 0) rc = dbp__writer_end(wb, 2);
  for (int i = 0; rc == 0 && i < 5000 && count_temps() < 2; i++) dbp_sleep(rt, 2);
  t->temps_while_open = count_temps();
  t->rc_a = rc ? rc : dbp__writer_commit(wa);
  t->rc_b = rc ? rc : dbp__writer_commit(wb);
  dbp__writer_free(wa);
  dbp__writer_free(wb);
  return rc;
}

/* Two writers to one path never share a temporary file: both succeed and
 * the final file is one of them, whole. */
Test(writer, concurrent_writers_to_one_target_both_succeed) {
  two_writers t = {.na = 700000, .nb = 450000};
  t.a = make_data(t.na);
  t.b = malloc(t.nb);
  for (size_t i = 0; i < t.nb; i++) t.b[i] = (char)('a' + i % 26);
  cr_assert_eq(dbt_run_in_coro(body_two_writers, &t), 0);
  cr_expect_eq(t.temps_while_open, 2, "each writer has its own temporary file");
  cr_expect_eq(t.rc_a, 0, "%s", dbp_err_name(t.rc_a));
  cr_expect_eq(t.rc_b, 0, "%s", dbp_err_name(t.rc_b));
  size_t n;
  char *got = read_all(in_tmp("out.csv"), &n);
  bool is_a = n == t.na && memcmp(got, t.a, n) == 0, is_b = n == t.nb && memcmp(got, t.b, n) == 0;
  cr_expect(is_a || is_b, "the final file is one writer's output, whole (%zu bytes)", n);
  cr_expect_eq(count_entries(tmpdir), 1, "no temporary file is left");
  free(got);
  free(t.a);
  free(t.b);
}

/* ---- stale and live temporary files ---- */

/* Runs body in a coroutine of a fresh runtime without Criterion's asserts
 * (for forked children). Returns the body's code. */
typedef struct plain_call {
  dbt_body_fn body;
  void *arg;
  dbp_rt *rt;
  int rc;
} plain_call;

static int plain_entry(void *arg, void **result) {
  (void)result;
  plain_call *c = arg;
  c->rc = c->body(c->rt, c->arg);
  return 0;
}

static int run_plain(dbt_body_fn body, void *arg) {
  plain_call c = {body, arg, NULL, 100};
  if (dbp_rt_new(&c.rt, NULL, NULL) != 0) return 101;
  if (dbp_spawn(c.rt, NULL, plain_entry, &c, &(dbp_spawn_options){.detached = true}) != 0)
    return 102;
  dbp_rt_run(c.rt);
  dbp_rt_free(c.rt);
  return c.rc;
}

/* Writers in another process: with `plain`, a plain writer to path with
 * one file, then a writer of `parts` files (split when asked) to path; then
 * it waits until the test directory holds `expect` temporary files. Then it
 * either dies by SIGKILL (go_fd < 0) or reports on ready_fd, waits for a
 * byte on go_fd and commits. */
typedef struct holder {
  const char *path;
  bool plain;
  bool split;
  int parts;
  const char *data;
  int expect;
  int ready_fd, go_fd;
} holder;

static int write_parts(dbp__writer *w, int parts, const char *data) {
  int rc = 0;
  for (int p = 0; rc == 0 && p < parts; p++) {
    rc = dbp__writer_begin(w);
    if (rc == 0) rc = dbp__writer_write(w, data, strlen(data));
    if (rc == 0) rc = dbp__writer_end(w, 1);
  }
  return rc;
}

static int body_holder(dbp_rt *rt, void *arg) {
  holder *h = arg;
  dbp__writer *plain = NULL, *w;
  dbp__writer_options po = {.compression = DBP_COMP_NONE};
  dbp__writer_options o = {.compression = DBP_COMP_NONE, .split = h->split};
  if (h->plain && (dbp__writer_new(rt, h->path, &po, &plain) != 0 ||
                   write_parts(plain, 1, "dead plain\n") != 0))
    return 1;
  if (dbp__writer_new(rt, h->path, &o, &w) != 0) return 1;
  int rc = write_parts(w, h->parts, h->data);
  for (int i = 0; rc == 0 && i < 10000 && count_temps() < h->expect; i++) dbp_sleep(rt, 2);
  if (rc != 0 || count_temps() < h->expect) return 2;
  if (h->go_fd < 0) raise(SIGKILL);
  char b = 'r';
  if (write(h->ready_fd, &b, 1) != 1) return 3;
  /* Blocks the loop: nothing needs it until the test says go. */
  if (read(h->go_fd, &b, 1) != 1) return 4;
  rc = dbp__writer_commit(w);
  dbp__writer_free(w);
  return rc != 0 ? 5 : 0;
}

static pid_t start_holder(holder *h) {
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) _exit(run_plain(body_holder, h));
  return pid;
}

/* A process with two writers (a plain file and three split parts) is
 * killed: its temporary files stay behind. */
static void leave_stale_files(void) {
  int before = count_temps();
  holder h = {.path = in_tmp("out.csv"),
              .plain = true,
              .split = true,
              .parts = 3,
              .data = "dead part\n",
              .expect = before + 4,
              .go_fd = -1};
  int status;
  pid_t pid = start_holder(&h);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer died (status %d)",
            status);
  cr_assert_eq(count_temps(), before + 4, "the dead writers left their temporary files");
}

/* The next export to the target removes the temporary files of dead
 * writers (plain and split names), and nothing else: a link, a FIFO or
 * another user's file with such a name stays, and so does the link's
 * target. */
Test(writer, stale_files_of_dead_writers_are_removed) {
  leave_stale_files();
  write_file(in_tmp("victim"), victim_text);
  plant_link("out.csv.0123456789abcdef.part");
  cr_assert_eq(mkfifo(in_tmp("out-00002.csv.0123456789abcdef.part"), 0600), 0);
  write_file(in_tmp("out-00001.csv.fedcba9876543210.part"), "someone else's\n");
  bool foreign = chown(in_tmp("out-00001.csv.fedcba9876543210.part"), 4242, 4242) == 0;
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE, .split = true},
             .data = "new\n",
             .len = 4,
             .piece = 4,
             .parts = 1};
  cr_assert_eq(dbt_run_in_coro(body_write, &c), 0, "%s", c.msg);
  free_files(&c);
  int left = count_temps();
  cr_expect_eq(left, 2 + foreign, "only the planted names are left (%d temporary names)", left);
  cr_expect_eq(type_of(in_tmp("out.csv.0123456789abcdef.part")), S_IFLNK);
  cr_expect_eq(type_of(in_tmp("out-00002.csv.0123456789abcdef.part")), S_IFIFO);
  if (foreign) cr_expect(exists(in_tmp("out-00001.csv.fedcba9876543210.part")));
  expect_victim_untouched();
  /* A plain export to the same target cleans up split leftovers too. */
  leave_stale_files();
  wcase p = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE},
             .data = "new\n",
             .len = 4,
             .piece = 4};
  cr_assert_eq(dbt_run_in_coro(body_write, &p), 0, "%s", p.msg);
  free_files(&p);
  cr_expect_eq(count_temps(), left, "the dead writers' files are gone again");
}

/* A live writer's temporary files (a split export: part 1 holds the lock,
 * part 2 relies on it) survive other exports to the same target, which
 * succeed; afterwards the live one commits its parts whole. */
Test(writer, live_writers_files_are_kept) {
  int ready[2], go[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(go), 0);
  holder h = {.path = in_tmp("out.csv"),
              .split = true,
              .parts = 2,
              .data = "live part\n",
              .expect = 2,
              .ready_fd = ready[1],
              .go_fd = go[0]};
  pid_t pid = start_holder(&h);
  /* Only the child keeps these ends: its exit shows as end of file. */
  close(ready[1]);
  close(go[0]);
  char b;
  cr_assert_eq(read(ready[0], &b, 1), 1, "the live writer is ready");
  cr_assert_eq(count_temps(), 2);
  char part1[300], part2[300];
  cr_assert_eq(temps_of(in_tmp("out-00001.csv"), part1, sizeof part1), 1);
  cr_assert_eq(temps_of(in_tmp("out-00002.csv"), part2, sizeof part2), 1);
  wcase split = {.path = in_tmp("out.csv"),
                 .o = {.compression = DBP_COMP_NONE, .split = true},
                 .data = "other\n",
                 .len = 6,
                 .piece = 6,
                 .parts = 1};
  cr_expect_eq(dbt_run_in_coro(body_write, &split), 0, "%s", split.msg);
  free_files(&split);
  wcase plain = {.path = in_tmp("out.csv"),
                 .o = {.compression = DBP_COMP_NONE},
                 .data = "other\n",
                 .len = 6,
                 .piece = 6};
  cr_expect_eq(dbt_run_in_coro(body_write, &plain), 0, "%s", plain.msg);
  free_files(&plain);
  cr_expect(exists(part1), "the live writer's part 1 is kept");
  cr_expect(exists(part2), "the live writer's part 2 is kept");
  cr_assert_eq(write(go[1], "g", 1), 1);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the live writer committed (%d)",
            status);
  for (int i = 1; i <= 2; i++) {
    char name[32];
    snprintf(name, sizeof name, "out-%05d.csv", i);
    size_t n;
    char *got = read_all(in_tmp(name), &n);
    cr_expect_str_eq(got, "live part\n", "%s", name);
    free(got);
  }
  cr_expect_eq(count_temps(), 0);
}

/* ---- targets that are no regular file ---- */

typedef struct bad_target {
  const char *name; /* in tmpdir; NULL: path is absolute */
  const char *path;
  const char *kind;
} bad_target;

/* Makes a Unix socket file at path (the socket is closed again). */
static void make_socket(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  cr_assert_geq(s, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
  close(s);
}

/* A FIFO, a directory, a socket, links (to a regular file and to a device)
 * and a device node are refused by dbp_export_check_target, which changes
 * nothing, and by the writer before it creates anything: each message names
 * the path and what it is. */
Test(writer, targets_that_are_not_regular_files_are_refused) {
  write_file(in_tmp("victim"), victim_text);
  cr_assert_eq(mkfifo(in_tmp("fifo.csv"), 0600), 0);
  cr_assert_eq(mkdir(in_tmp("dir.csv"), 0700), 0);
  make_socket(in_tmp("sock.csv"));
  plant_link("link.csv");
  cr_assert_eq(symlink("/dev/null", in_tmp("null.csv")), 0);
  bool dev = mknod(in_tmp("dev.csv"), S_IFCHR | 0600, makedev(1, 3)) == 0;
  bad_target bad[] = {
      {"fifo.csv", NULL, "a FIFO"},          {"dir.csv", NULL, "a directory"},
      {"sock.csv", NULL, "a socket"},        {"link.csv", NULL, "a symbolic link"},
      {"null.csv", NULL, "a symbolic link"}, {"dev.csv", NULL, "a character device"},
  };
  int entries = count_entries(tmpdir);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (strcmp(bad[i].name, "dev.csv") == 0 && !dev) continue;
    const char *path = in_tmp(bad[i].name);
    mode_t before = type_of(path);
    char msg[512];
    cr_expect_eq(dbp_export_check_target(path, false, msg, sizeof msg), DBP_EINVAL, "%s", path);
    cr_expect(strstr(msg, path) && strstr(msg, bad[i].kind), "%s: message: %s", path, msg);
    wcase c = {
        .path = path, .o = {.compression = DBP_COMP_NONE}, .data = "x\n", .len = 2, .piece = 2};
    cr_expect_eq(dbt_run_in_coro(body_write, &c), DBP_EINVAL, "the writer refuses %s", path);
    cr_expect(strstr(c.msg, path) && strstr(c.msg, bad[i].kind), "%s: message: %s", path, c.msg);
    cr_expect_eq(type_of(path), before, "%s is left as it was", path);
    cr_expect_eq(count_entries(tmpdir), entries, "%s: nothing was created", path);
  }
  expect_victim_untouched();
  /* Devices and links outside: checked only (the check has no side effects). */
  char msg[512];
  cr_expect_eq(dbp_export_check_target("/dev/null", false, msg, sizeof msg), DBP_EINVAL);
  cr_expect(strstr(msg, "/dev/null") && strstr(msg, "a character device"), "%s", msg);
  /* A link to standard output (as /dev/stdout is): the message points to "-". */
  cr_assert_eq(symlink("/dev/stdout", in_tmp("out.csv")), 0);
  cr_expect_eq(dbp_export_check_target(in_tmp("out.csv"), false, msg, sizeof msg), DBP_EINVAL);
  cr_expect(strstr(msg, "a symbolic link") && strstr(msg, "use - for standard output"), "%s", msg);
  entries++;
  /* What is fine, and what is refused on its face. */
  cr_expect_eq(dbp_export_check_target("-", false, msg, sizeof msg), 0);
  cr_expect_eq(dbp_export_check_target("-", true, msg, sizeof msg), DBP_EINVAL);
  cr_expect_eq(dbp_export_check_target(in_tmp("victim"), false, msg, sizeof msg), 0);
  cr_expect_eq(dbp_export_check_target(in_tmp("new/out.csv"), false, msg, sizeof msg), 0);
  cr_expect_eq(dbp_export_check_target("", false, msg, sizeof msg), DBP_EINVAL);
  cr_expect_eq(dbp_export_check_target(in_tmp("sub/"), false, msg, sizeof msg), DBP_EINVAL);
  cr_expect(strstr(msg, "directory"), "%s", msg);
  cr_expect_eq(count_entries(tmpdir), entries, "the checks created nothing");
}

/* With split, the numbered part names are checked too. */
Test(writer, split_part_names_that_are_not_regular_files_are_refused) {
  write_file(in_tmp("victim"), victim_text);
  write_file(in_tmp("out-00001.csv"), "old part 1\n");
  plant_link("out-00002.csv");
  char msg[512];
  cr_expect_eq(dbp_export_check_target(in_tmp("out.csv"), false, msg, sizeof msg), 0);
  cr_expect_eq(dbp_export_check_target(in_tmp("out.csv"), true, msg, sizeof msg), DBP_EINVAL);
  cr_expect(strstr(msg, in_tmp("out-00002.csv")) && strstr(msg, "a symbolic link"), "%s", msg);
  wcase c = {.path = in_tmp("out.csv"),
             .o = {.compression = DBP_COMP_NONE, .split = true},
             .data = "x\n",
             .len = 2,
             .piece = 2,
             .parts = 3};
  cr_expect_eq(dbt_run_in_coro(body_write, &c), DBP_EINVAL);
  cr_expect(strstr(c.msg, "out-00002.csv") && strstr(c.msg, "a symbolic link"), "%s", c.msg);
  cr_expect_eq(count_entries(tmpdir), 3, "nothing was created");
  cr_expect_eq(type_of(in_tmp("out-00002.csv")), S_IFLNK);
  expect_victim_untouched();
}

static int body_stale_parts(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp__writer *w;
  dbp__writer_options o = {.compression = DBP_COMP_NONE, .split = true};
  if (dbp__writer_new(rt, in_tmp("out.csv"), &o, &w) != 0) return 1;
  int rc = dbp__writer_begin(w);
  /* Planted after the begin's check, before the commit. */
  write_file(in_tmp("out-00002.csv"), "old part 2\n");
  plant_link("out-00003.csv");
  write_file(in_tmp("out-00004.csv"), "old part 4\n");
  if (rc == 0) rc = dbp__writer_write(w, "new\n", 4);
  if (rc == 0) rc = dbp__writer_end(w, 1);
  if (rc == 0) rc = dbp__writer_commit(w);
  dbp__writer_free(w);
  return rc;
}

/* The commit removes parts numbered past the last as regular files only:
 * a link there stays a link and its target is untouched. */
Test(writer, stale_numbered_parts_removal_spares_what_is_no_regular_file) {
  write_file(in_tmp("victim"), victim_text);
  cr_assert_eq(dbt_run_in_coro(body_stale_parts, NULL), 0);
  cr_expect(exists(in_tmp("out-00001.csv")));
  cr_expect(!exists(in_tmp("out-00002.csv")), "the stale part 2 is removed");
  cr_expect_eq(type_of(in_tmp("out-00003.csv")), S_IFLNK, "the link at part 3 stays");
  cr_expect(!exists(in_tmp("out-00004.csv")), "the stale part 4 is removed");
  expect_victim_untouched();
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

/* ---- small atomic files ---- */

typedef struct small_case {
  const char *path;
  const char *text;
  int rc;
  char msg[512];
} small_case;

static int body_small(dbp_rt *rt, void *arg) {
  small_case *s = arg;
  s->rc =
      dbp_write_file_atomic(rt, s->path, s->text, strlen(s->text), false, s->msg, sizeof s->msg);
  return 0;
}

/* dbp_write_file_atomic (the manifest's way to disk): a link planted at the
 * old manifest.json.part redirects nothing; a target that is a link is
 * refused with a message naming it; "-" is no file. */
Test(writer, small_atomic_files_refuse_and_ignore_planted_links) {
  write_file(in_tmp("victim"), victim_text);
  plant_link("manifest.json.part");
  small_case ok = {.path = in_tmp("sub/manifest.json"), .text = "{}\n"};
  cr_assert_eq(mkdir(in_tmp("sub"), 0700), 0);
  cr_assert_eq(symlink(in_tmp("victim"), in_tmp("sub/manifest.json.part")), 0);
  dbt_run(body_small, &ok);
  cr_expect_eq(ok.rc, 0, "%s", ok.msg);
  size_t n;
  char *got = read_all(in_tmp("sub/manifest.json"), &n);
  cr_expect_str_eq(got, "{}\n");
  free(got);
  cr_expect_eq(count_entries(in_tmp("sub")), 2, "the file and the planted link, nothing else");
  small_case link = {.path = in_tmp("manifest.json"), .text = "{}\n"};
  cr_assert_eq(symlink(in_tmp("victim"), in_tmp("manifest.json")), 0);
  dbt_run(body_small, &link);
  cr_expect_eq(link.rc, DBP_EINVAL);
  cr_expect(strstr(link.msg, in_tmp("manifest.json")) && strstr(link.msg, "a symbolic link"), "%s",
            link.msg);
  cr_expect_eq(type_of(in_tmp("manifest.json")), S_IFLNK);
  small_case dash = {.path = "-", .text = "{}\n"};
  dbt_run(body_small, &dash);
  cr_expect_eq(dash.rc, DBP_EINVAL);
  expect_victim_untouched();
  cr_expect_eq(count_temps(), 0);
}
