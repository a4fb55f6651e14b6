/* The atomic file writer among hostile and concurrent surroundings:
 * temporary names nothing planted can redirect, concurrent writers to one
 * target, stale files of dead writers removed and live ones kept, targets
 * that are no regular file refused, and small atomic files. The shared
 * helpers are in tests/support/writertest.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbpipe/rt.h"
#include "export/writer.h"
#include "rttest.h"
#include "writertest.h"

/* ---- helpers ---- */

TestSuite(writer, .init = tmpdir_make, .fini = tmpdir_remove, .timeout = 120);

/* The type bits of what is at path (not following a link), or 0. */
static mode_t type_of(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0;
}

/* ---- hostile and concurrent surroundings ---- */

static const char victim_text[] = "precious: not to be touched\n";

static void expect_victim_untouched(void) {
  size_t n;
  char *got = read_raw(in_tmp("victim"), &n);
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
  write_text(in_tmp("victim"), victim_text);
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
  char *got = read_raw(in_tmp("out.csv"), &n);
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
  char *got = read_raw(in_tmp("out.csv"), &n);
  bool is_a = n == t.na && memcmp(got, t.a, n) == 0, is_b = n == t.nb && memcmp(got, t.b, n) == 0;
  cr_expect(is_a || is_b, "the final file is one writer's output, whole (%zu bytes)", n);
  cr_expect_eq(count_entries(tmpdir), 1, "no temporary file is left");
  free(got);
  free(t.a);
  free(t.b);
}

/* ---- stale and live temporary files ---- */

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
  write_text(in_tmp("victim"), victim_text);
  plant_link("out.csv.0123456789abcdef.part");
  cr_assert_eq(mkfifo(in_tmp("out-00002.csv.0123456789abcdef.part"), 0600), 0);
  write_text(in_tmp("out-00001.csv.fedcba9876543210.part"), "someone else's\n");
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
  if (foreign) cr_expect(path_exists(in_tmp("out-00001.csv.fedcba9876543210.part")));
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
  cr_expect(path_exists(part1), "the live writer's part 1 is kept");
  cr_expect(path_exists(part2), "the live writer's part 2 is kept");
  cr_assert_eq(write(go[1], "g", 1), 1);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the live writer committed (%d)",
            status);
  for (int i = 1; i <= 2; i++) {
    char name[32];
    snprintf(name, sizeof name, "out-%05d.csv", i);
    size_t n;
    char *got = read_raw(in_tmp(name), &n);
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
  write_text(in_tmp("victim"), victim_text);
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
  write_text(in_tmp("victim"), victim_text);
  write_text(in_tmp("out-00001.csv"), "old part 1\n");
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
  write_text(in_tmp("out-00002.csv"), "old part 2\n");
  plant_link("out-00003.csv");
  write_text(in_tmp("out-00004.csv"), "old part 4\n");
  if (rc == 0) rc = dbp__writer_write(w, "new\n", 4);
  if (rc == 0) rc = dbp__writer_end(w, 1);
  if (rc == 0) rc = dbp__writer_commit(w);
  dbp__writer_free(w);
  return rc;
}

/* The commit removes parts numbered past the last as regular files only:
 * a link there stays a link and its target is untouched. */
Test(writer, stale_numbered_parts_removal_spares_what_is_no_regular_file) {
  write_text(in_tmp("victim"), victim_text);
  cr_assert_eq(dbt_run_in_coro(body_stale_parts, NULL), 0);
  cr_expect(path_exists(in_tmp("out-00001.csv")));
  cr_expect(!path_exists(in_tmp("out-00002.csv")), "the stale part 2 is removed");
  cr_expect_eq(type_of(in_tmp("out-00003.csv")), S_IFLNK, "the link at part 3 stays");
  cr_expect(!path_exists(in_tmp("out-00004.csv")), "the stale part 4 is removed");
  expect_victim_untouched();
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
  write_text(in_tmp("victim"), victim_text);
  plant_link("manifest.json.part");
  small_case ok = {.path = in_tmp("sub/manifest.json"), .text = "{}\n"};
  cr_assert_eq(mkdir(in_tmp("sub"), 0700), 0);
  cr_assert_eq(symlink(in_tmp("victim"), in_tmp("sub/manifest.json.part")), 0);
  dbt_run(body_small, &ok);
  cr_expect_eq(ok.rc, 0, "%s", ok.msg);
  size_t n;
  char *got = read_raw(in_tmp("sub/manifest.json"), &n);
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
