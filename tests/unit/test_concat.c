/* dbp_concat_files_atomic: plain files, gzip members and zstd frames become
 * one file with exactly their bytes (checked with sha256sum, gzip -dc and
 * zstd -dc), empty and multi-chunk inputs, the sum of the rows; missing,
 * unreadable and refused inputs and targets, which fail with a message
 * naming the file and leave the target as it was and no temporary file;
 * and a concatenation cancelled halfway. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbpipe/export.h"
#include "dbpipe/rt.h"
#include "rttest.h"
#include "writertest.h"

TestSuite(concat, .init = tmpdir_make, .fini = tmpdir_remove, .timeout = 120);

/* ---- helpers ---- */

/* tmpdir/name, in a buffer of its own that lives as long as the test (the
 * inputs are kept in arrays). */
static const char *P(const char *name) {
  static char paths[64][256];
  static size_t n;
  cr_assert_lt(n, 64);
  snprintf(paths[n], sizeof paths[n], "%s/%s", tmpdir, name);
  return paths[n++];
}

typedef struct ccase {
  const char *inputs[8];
  size_t n;
  const uint64_t *rows;
  const char *path;
  bool no_fsync;
  int rc;
  dbp_export_file out;
  char msg[512];
} ccase;

static int body_concat(dbp_rt *rt, void *arg) {
  ccase *c = arg;
  c->rc = dbp_concat_files_atomic(rt, c->inputs, c->n, c->rows, c->path, c->no_fsync, &c->out,
                                  c->msg, sizeof c->msg);
  return 0;
}

/* Runs the concatenation in a coroutine; returns its code. */
static int run_concat(ccase *c) {
  dbt_run(body_concat, c);
  return c->rc;
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(p, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
}

/* Runs a shell command; asserts it exits 0. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d", cmd, st);
}

/* Expects the file at path to hold exactly want[0..n). */
static void expect_bytes(const char *path, const void *want, size_t n) {
  size_t len;
  char *got = read_raw(path, &len);
  cr_expect_eq(len, n, "%s: %zu bytes, not %zu", path, len, n);
  cr_expect(len == n && memcmp(got, want, n) == 0, "%s: other bytes", path);
  free(got);
}

/* The reported file: the path, the size on disk and sha256sum's digest. */
static void expect_reported(const ccase *c, uint64_t bytes, uint64_t rows) {
  cr_expect_str_eq(c->out.path, c->path);
  cr_expect_eq(c->out.bytes, bytes, "bytes %llu, not %llu", (unsigned long long)c->out.bytes,
               (unsigned long long)bytes);
  cr_expect_eq(c->out.rows, rows, "rows %llu, not %llu", (unsigned long long)c->out.rows,
               (unsigned long long)rows);
  struct stat st;
  cr_expect_eq(stat(c->path, &st), 0);
  cr_expect_eq((uint64_t)st.st_size, bytes);
  char sum[65];
  sha256sum(c->path, sum);
  cr_expect_str_eq(c->out.sha256, sum);
}

/* A failed concatenation: the code, a message naming `who` (and holding
 * `what` when not NULL), no temporary file anywhere in the test
 * directory. */
static void expect_failure(const ccase *c, int code, const char *who, const char *what) {
  cr_expect_eq(c->rc, code, "%s, not %s (%s)", dbp_err_name(c->rc), dbp_err_name(code), c->msg);
  cr_expect(strstr(c->msg, who) != NULL, "message names %s: %s", who, c->msg);
  if (what != NULL) cr_expect(strstr(c->msg, what) != NULL, "message says %s: %s", what, c->msg);
  cr_expect_eq(count_temps(), 0, "no temporary file is left");
  cr_expect_null(c->out.path);
}

static const char old_text[] = "the file that was there\n";

/* ---- the bytes ---- */

Test(concat, three_plain_files_give_their_bytes) {
  const char *parts[] = {"id,name\n1,alpha\n2,beta\n", "3,gamma\n4,delta\n5,\"x,y\"\n",
                         "6,épsilon\n"};
  write_text(P("a.csv"), parts[0]);
  write_text(P("b.csv"), parts[1]);
  write_text(P("c.csv"), parts[2]);
  char want[256];
  snprintf(want, sizeof want, "%s%s%s", parts[0], parts[1], parts[2]);
  const uint64_t rows[] = {2, 3, 1};
  ccase c = {
      .inputs = {P("a.csv"), P("b.csv"), P("c.csv")}, .n = 3, .rows = rows, .path = P("out.csv")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  cr_expect_str_eq(c.msg, "");
  expect_bytes(c.path, want, strlen(want));
  expect_reported(&c, strlen(want), 6);
  /* The inputs are read, never changed. */
  for (int i = 0; i < 3; i++) expect_bytes(c.inputs[i], parts[i], strlen(parts[i]));
  cr_expect_eq(count_temps(), 0);
  free(c.out.path);
}

/* An existing file is replaced by the whole new one; without rows the
 * count is 0; parent directories are made. */
Test(concat, replaces_a_file_and_makes_directories) {
  write_text(P("a.csv"), "1\n");
  write_text(P("b.csv"), "2\n");
  write_text(P("out.csv"), old_text);
  ccase c = {.inputs = {P("a.csv"), P("b.csv")}, .n = 2, .path = P("out.csv")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  expect_bytes(c.path, "1\n2\n", 4);
  expect_reported(&c, 4, 0);
  free(c.out.path);

  ccase d = {.inputs = {P("a.csv"), P("b.csv")},
             .n = 2,
             .path = P("sub/deeper/out.csv"),
             .no_fsync = true};
  cr_assert_eq(run_concat(&d), 0, "%s", d.msg);
  expect_bytes(d.path, "1\n2\n", 4);
  expect_reported(&d, 4, 0);
  free(d.out.path);
}

/* The target may be one of its own inputs: the inputs are read whole
 * before the new file takes the name. */
Test(concat, target_may_be_an_input) {
  write_text(P("a.csv"), "first\n");
  write_text(P("b.csv"), "second\n");
  ccase c = {.inputs = {P("a.csv"), P("b.csv")}, .n = 2, .path = P("a.csv")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  expect_bytes(c.path, "first\nsecond\n", 13);
  expect_reported(&c, 13, 0);
  free(c.out.path);
}

Test(concat, gzip_members_make_one_stream) {
  size_t n1 = 300 * 1000, n2 = 70 * 1000;
  char *d1 = make_data(n1), *d2 = make_data(n2);
  /* Different text in the second part, so the order shows. */
  for (size_t i = 0; i < n2; i += 97) d2[i] = 'Z';
  write_bytes(P("p1"), d1, n1);
  write_bytes(P("p2"), d2, n2);
  sh("gzip -c '%s' > '%s'", P("p1"), P("p1.csv.gz"));
  sh("gzip -9 -c '%s' > '%s'", P("p2"), P("p2.csv.gz"));
  const uint64_t rows[] = {1000, 234};
  ccase c = {
      .inputs = {P("p1.csv.gz"), P("p2.csv.gz")}, .n = 2, .rows = rows, .path = P("out.csv.gz")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  struct stat s1, s2;
  cr_assert_eq(stat(c.inputs[0], &s1), 0);
  cr_assert_eq(stat(c.inputs[1], &s2), 0);
  expect_reported(&c, (uint64_t)(s1.st_size + s2.st_size), 1234);
  sh("gzip -t '%s'", c.path);
  sh("gzip -dc '%s' > '%s'", c.path, P("plain"));
  char *want = malloc(n1 + n2);
  memcpy(want, d1, n1);
  memcpy(want + n1, d2, n2);
  expect_bytes(P("plain"), want, n1 + n2);
  free(want);
  free(d1);
  free(d2);
  free(c.out.path);
}

Test(concat, zstd_frames_make_one_stream) {
  size_t n1 = 50 * 1000, n2 = 400 * 1000;
  char *d1 = make_data(n1), *d2 = make_data(n2);
  for (size_t i = 0; i < n1; i += 89) d1[i] = 'Q';
  write_bytes(P("p1"), d1, n1);
  write_bytes(P("p2"), d2, n2);
  sh("zstd -q -c '%s' > '%s'", P("p1"), P("p1.csv.zst"));
  sh("zstd -q -19 -c '%s' > '%s'", P("p2"), P("p2.csv.zst"));
  ccase c = {.inputs = {P("p1.csv.zst"), P("p2.csv.zst")}, .n = 2, .path = P("out.csv.zst")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  struct stat s1, s2;
  cr_assert_eq(stat(c.inputs[0], &s1), 0);
  cr_assert_eq(stat(c.inputs[1], &s2), 0);
  expect_reported(&c, (uint64_t)(s1.st_size + s2.st_size), 0);
  sh("zstd -q -t '%s'", c.path);
  sh("zstd -q -dc '%s' > '%s'", c.path, P("plain"));
  char *want = malloc(n1 + n2);
  memcpy(want, d1, n1);
  memcpy(want + n1, d2, n2);
  expect_bytes(P("plain"), want, n1 + n2);
  free(want);
  free(d1);
  free(d2);
  free(c.out.path);
}

Test(concat, empty_inputs) {
  write_text(P("a.csv"), "a\n");
  write_text(P("empty.csv"), "");
  write_text(P("b.csv"), "b\n");
  ccase c = {.inputs = {P("empty.csv"), P("a.csv"), P("empty.csv"), P("b.csv"), P("empty.csv")},
             .n = 5,
             .path = P("out.csv")};
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  expect_bytes(c.path, "a\nb\n", 4);
  expect_reported(&c, 4, 0);
  free(c.out.path);

  /* Only an empty input: an empty file, with the digest of nothing. */
  ccase e = {.inputs = {P("empty.csv")}, .n = 1, .path = P("none.csv")};
  cr_assert_eq(run_concat(&e), 0, "%s", e.msg);
  expect_reported(&e, 0, 0);
  cr_expect_str_eq(e.out.sha256,
                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  free(e.out.path);
}

/* Inputs of many chunks, and of sizes that are no multiple of a chunk, so
 * chunk boundaries fall inside inputs and between them. */
Test(concat, big_inputs_cross_chunk_boundaries) {
  size_t sizes[] = {3, 5 * 1024 * 1024 + 12345, DBP__WRITER_CHUNK - 1, 2 * DBP__WRITER_CHUNK, 7};
  size_t total = 0;
  for (int i = 0; i < 5; i++) total += sizes[i];
  char *want = malloc(total);
  char *data = make_data(total);
  ccase c = {.n = 5, .path = P("big.csv")};
  const char *names[] = {"p1", "p2", "p3", "p4", "p5"};
  size_t off = 0;
  for (int i = 0; i < 5; i++) {
    /* Mark each part's first byte, so a part out of place shows. */
    data[off] = (char)('0' + i);
    write_bytes(P(names[i]), data + off, sizes[i]);
    c.inputs[i] = P(names[i]);
    off += sizes[i];
  }
  memcpy(want, data, total);
  cr_assert_eq(run_concat(&c), 0, "%s", c.msg);
  expect_bytes(c.path, want, total);
  expect_reported(&c, total, 0);
  cr_expect_eq(count_temps(), 0);
  free(want);
  free(data);
  free(c.out.path);
}

/* ---- failures ---- */

/* A missing input fails before anything is created: the existing target
 * stays as it was, a new one does not appear, nor its directory. */
Test(concat, missing_input_changes_nothing) {
  write_text(P("a.csv"), "a\n");
  write_text(P("out.csv"), old_text);
  ccase c = {.inputs = {P("a.csv"), P("gone.csv")}, .n = 2, .path = P("out.csv")};
  run_concat(&c);
  expect_failure(&c, DBP_ENOENT, P("gone.csv"), "No such file or directory");
  cr_expect(strncmp(c.msg, "open ", 5) == 0, "the failed operation: %s", c.msg);
  expect_bytes(P("out.csv"), old_text, strlen(old_text));

  ccase d = {.inputs = {P("gone.csv"), P("a.csv")}, .n = 2, .path = P("sub/new.csv")};
  run_concat(&d);
  expect_failure(&d, DBP_ENOENT, P("gone.csv"), NULL);
  cr_expect_not(path_exists(P("sub")), "no directory is made for a failed concatenation");
}

/* An input that opens as a regular file but fails to read (/proc/self/mem
 * at offset 0 is no mapped memory: EIO), after a first input of several
 * chunks has gone to the temporary file: the message names the input,
 * the target keeps its old bytes, the temporary file is gone. */
Test(concat, unreadable_input_leaves_the_target_as_it_was) {
  struct stat st;
  /* Linux always has it; CI counts a skipped test as a failed one. */
  cr_assert(stat("/proc/self/mem", &st) == 0 && S_ISREG(st.st_mode), "no /proc/self/mem here");
  size_t n = 3 * DBP__WRITER_CHUNK + 5;
  char *data = make_data(n);
  write_bytes(P("a.csv"), data, n);
  write_text(P("out.csv"), old_text);
  ccase c = {.inputs = {P("a.csv"), "/proc/self/mem"}, .n = 2, .path = P("out.csv")};
  run_concat(&c);
  expect_failure(&c, DBP_EIO, "read /proc/self/mem: ", "Input/output error");
  expect_bytes(P("out.csv"), old_text, strlen(old_text));
  free(data);
}

/* The writer's own failure (the file size limit) after some chunks: its
 * message, nothing at the path, no temporary file. */
Test(concat, write_failure_leaves_nothing) {
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {DBP__WRITER_CHUNK + 1000, DBP__WRITER_CHUNK + 1000};
  size_t n = 3 * DBP__WRITER_CHUNK;
  char *data = make_data(n);
  write_bytes(P("a.csv"), data, n);
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  ccase c = {.inputs = {P("a.csv"), P("a.csv")}, .n = 2, .path = P("out.csv")};
  run_concat(&c);
  expect_failure(&c, DBP_ESYS, "/out.csv.", ".part: File too large");
  cr_expect_not(path_exists(P("out.csv")));
  free(data);
}

/* Inputs that are no regular file are refused, before anything is
 * written: links (even to a regular file), FIFOs (without waiting for a
 * writer), directories, devices. */
Test(concat, inputs_that_are_not_regular_files_are_refused) {
  const char *a = P("a.csv"), *out = P("out.csv");
  write_text(a, "a\n");
  write_text(out, old_text);
  cr_assert_eq(symlink(a, P("link.csv")), 0);
  cr_assert_eq(mkfifo(P("fifo.csv"), 0600), 0);
  cr_assert_eq(mkdir(P("dir.csv"), 0700), 0);
  struct {
    const char *input, *kind;
  } bad[] = {{P("link.csv"), "a symbolic link"},
             {P("fifo.csv"), "a FIFO"},
             {P("dir.csv"), "a directory"},
             {"/dev/null", "a character device"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *input = bad[i].input;
    ccase c = {.inputs = {a, input}, .n = 2, .path = out};
    run_concat(&c);
    char want[400];
    snprintf(want, sizeof want, "refusing to read %s: it is %s, not a regular file", input,
             bad[i].kind);
    expect_failure(&c, DBP_EINVAL, want, NULL);
    expect_bytes(out, old_text, strlen(old_text));
  }
  /* The link's target is untouched too. */
  expect_bytes(a, "a\n", 2);
}

/* A target that is a symbolic link is refused; the link and what it points
 * to stay as they were. */
Test(concat, symlink_target_is_refused) {
  write_text(P("a.csv"), "a\n");
  write_text(P("victim"), old_text);
  cr_assert_eq(symlink(P("victim"), P("out.csv")), 0);
  ccase c = {.inputs = {P("a.csv")}, .n = 1, .path = P("out.csv")};
  run_concat(&c);
  expect_failure(&c, DBP_EINVAL, P("out.csv"), "a symbolic link");
  struct stat st;
  cr_expect_eq(lstat(P("out.csv"), &st), 0);
  cr_expect(S_ISLNK(st.st_mode), "the link is still there");
  expect_bytes(P("victim"), old_text, strlen(old_text));
}

Test(concat, bad_arguments) {
  write_text(P("a.csv"), "a\n");
  ccase none = {.n = 0, .path = P("out.csv")};
  run_concat(&none);
  cr_expect_eq(none.rc, DBP_EINVAL, "%s", dbp_err_name(none.rc));
  cr_expect(strstr(none.msg, "no input files") != NULL, "%s", none.msg);

  ccase dash = {.inputs = {P("a.csv")}, .n = 1, .path = "-"};
  run_concat(&dash);
  cr_expect_eq(dash.rc, DBP_EINVAL);
  cr_expect(strstr(dash.msg, "standard output") != NULL, "%s", dash.msg);

  ccase stdin_in = {.inputs = {"-"}, .n = 1, .path = P("out.csv")};
  run_concat(&stdin_in);
  cr_expect_eq(stdin_in.rc, DBP_EINVAL);

  ccase unnamed = {.inputs = {P("a.csv"), ""}, .n = 2, .path = P("out.csv")};
  run_concat(&unnamed);
  cr_expect_eq(unnamed.rc, DBP_EINVAL);
  cr_expect(strstr(unnamed.msg, "input 2 of 2") != NULL, "%s", unnamed.msg);
  cr_expect_not(path_exists(P("out.csv")));
  cr_expect_eq(count_temps(), 0);

  /* Outside a coroutine nothing can wait. */
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  char msg[256];
  dbp_export_file out;
  const char *in[] = {P("a.csv")};
  cr_expect_eq(
      dbp_concat_files_atomic(rt, NULL, 1, NULL, P("out.csv"), false, &out, msg, sizeof msg),
      DBP_EINVAL);
  cr_expect_eq(dbp_concat_files_atomic(rt, in, 1, NULL, P("out.csv"), false, &out, msg, sizeof msg),
               DBP_ENOTCORO);
  dbp_rt_free(rt);
  cr_expect_not(path_exists(P("out.csv")));
}

/* ---- cancellation ---- */

typedef struct cancel_case {
  ccase c;
  dbp_rt *rt;
  bool started;
} cancel_case;

static int concat_co(void *arg, void **result) {
  (void)result;
  cancel_case *k = arg;
  k->started = true;
  body_concat(k->rt, &k->c);
  return k->c.rc;
}

/* Cancels the concatenation once it runs. */
static int body_cancel(dbp_rt *rt, void *arg) {
  cancel_case *k = arg;
  k->rt = rt;
  dbp_co *co;
  if (dbp_spawn(rt, &co, concat_co, k, NULL) != 0) return 1;
  while (!k->started) dbp_sleep(rt, 1);
  /* A few chunks' time, so the temporary file most likely exists. */
  dbp_sleep(rt, 20);
  dbp_cancel(co);
  int rc = dbp_join(co, NULL);
  return rc == DBP_ECANCELED || rc == 0 ? 0 : rc;
}

/* Whatever it had done when cancelled, the concatenation ends with no file
 * at the path and no temporary file. */
Test(concat, cancelled_concatenation_leaves_nothing) {
  size_t n = 16 * 1024 * 1024;
  char *data = make_data(n);
  write_bytes(P("a.csv"), data, n);
  free(data);
  cancel_case k = {
      .c = {.inputs = {P("a.csv"), P("a.csv"), P("a.csv")}, .n = 3, .path = P("out.csv")}};
  dbt_run(body_cancel, &k);
  if (k.c.rc == 0) {
    /* It finished before the cancellation came (a fast machine): then
     * the whole file, and nothing else. */
    expect_reported(&k.c, 3 * (uint64_t)n, 0);
    free(k.c.out.path);
    cr_expect_eq(count_temps(), 0, "no temporary file is left");
    return;
  }
  cr_expect_eq(k.c.rc, DBP_ECANCELED, "%s: %s", dbp_err_name(k.c.rc), k.c.msg);
  cr_expect_not(path_exists(P("out.csv")));
  cr_expect_eq(count_temps(), 0, "no temporary file is left");
}
