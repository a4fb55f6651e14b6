/* The server's bearer token and its loopback rule: the token file is read
 * like a private key, the comparison accepts exactly the token, and only
 * loopback hosts count as loopback. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe.h"
#include "serve/auth.h"

static char dir[] = "/tmp/dbpipe-auth-XXXXXX";

static void setup(void) {
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

/* Writes `text` to DIR/name with `mode` and returns the path (static). */
static const char *file(const char *name, const char *text, mode_t mode) {
  static char p[300];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  cr_assert_eq(chmod(p, mode), 0);
  return p;
}

TestSuite(serve_auth, .init = setup, .fini = teardown);

Test(serve_auth, a_private_token_file_loads) {
  char *tok = NULL, err[300];
  cr_assert_eq(
      dbp_serve_token_load(file("t", "0123456789abcdefXYZ\n", 0600), &tok, err, sizeof err), 0,
      "%s", err);
  cr_expect_str_eq(tok, "0123456789abcdefXYZ");
  free(tok);
  cr_assert_eq(
      dbp_serve_token_load(file("t2", "0123456789abcdef\r\n \n", 0400), &tok, err, sizeof err), 0,
      "%s", err);
  cr_expect_str_eq(tok, "0123456789abcdef");
  free(tok);
}

Test(serve_auth, unsafe_or_bad_token_files_are_refused) {
  struct {
    const char *name, *text;
    mode_t mode;
    int want;
    const char *says;
  } cases[] = {
      {"g", "0123456789abcdef", 0640, DBP_EACCES, "chmod 600"},
      {"o", "0123456789abcdef", 0604, DBP_EACCES, "chmod 600"},
      {"e", "\n", 0600, DBP_EINVAL, "empty"},
      {"s", "short", 0600, DBP_EINVAL, "shorter"},
      {"l", "0123456789abcdef\n0123456789abcdef", 0600, DBP_EINVAL, "more than one line"},
      {"b", "0123456789 abcdef", 0600, DBP_EINVAL, "blanks"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *tok = (char *)1, err[300] = "";
    int rc = dbp_serve_token_load(file(cases[i].name, cases[i].text, cases[i].mode), &tok, err,
                                  sizeof err);
    cr_expect_eq(rc, cases[i].want, "%s: %d (%s)", cases[i].name, rc, err);
    cr_expect_null(tok, "%s", cases[i].name);
    cr_expect(strstr(err, cases[i].says) != NULL, "%s: %s", cases[i].name, err);
    cr_expect(strstr(err, "0123456789") == NULL, "the token must not show: %s", err);
  }
  /* A symbolic link to a private file, a directory, a missing file. */
  char link[300], *tok = NULL, err[300];
  const char *target = file("real", "0123456789abcdef", 0600);
  snprintf(link, sizeof link, "%s/link", dir);
  cr_assert_eq(symlink(target, link), 0);
  cr_expect_eq(dbp_serve_token_load(link, &tok, err, sizeof err), DBP_EACCES, "%s", err);
  cr_expect_eq(dbp_serve_token_load(dir, &tok, err, sizeof err), DBP_EACCES, "%s", err);
  snprintf(link, sizeof link, "%s/missing", dir);
  cr_expect_eq(dbp_serve_token_load(link, &tok, err, sizeof err), DBP_ENOENT, "%s", err);
}

Test(serve_auth, only_the_exact_token_passes) {
  const char *t = "0123456789abcdefXYZ";
  cr_expect(dbp_serve_token_ok(t, "Bearer 0123456789abcdefXYZ"));
  cr_expect(dbp_serve_token_ok(t, "bearer 0123456789abcdefXYZ"));
  cr_expect(!dbp_serve_token_ok(t, NULL));
  cr_expect(!dbp_serve_token_ok(t, ""));
  cr_expect(!dbp_serve_token_ok(t, "Bearer "));
  cr_expect(!dbp_serve_token_ok(t, "Bearer 0123456789abcdefXY"));
  cr_expect(!dbp_serve_token_ok(t, "Bearer 0123456789abcdefXYZ0"));
  cr_expect(!dbp_serve_token_ok(t, "Bearer 0123456789abcdefXYz"));
  cr_expect(!dbp_serve_token_ok(t, "Basic 0123456789abcdefXYZ"));
  cr_expect(!dbp_serve_token_ok(t, "0123456789abcdefXYZ"));
  cr_expect(!dbp_serve_token_ok(NULL, "Bearer x"));
}

Test(serve_auth, loopback_hosts) {
  const char *yes[] = {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"};
  const char *no[] = {"0.0.0.0",
                      "::",
                      "[::]",
                      "10.0.0.1",
                      "192.168.1.5",
                      "example.com",
                      "128.0.0.1",
                      "::ffff:127.0.0.1",
                      "",
                      "127.0.0.1.nip.io"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    cr_expect(dbp_serve_is_loopback(yes[i]), "%s", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    cr_expect(!dbp_serve_is_loopback(no[i]), "%s", no[i]);
  cr_expect(!dbp_serve_is_loopback(NULL));
}
