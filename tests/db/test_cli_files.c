/* The dbpipe executable and the files around its targets: links planted at
 * the names an attacker could predict redirect neither an export nor its
 * manifest, the temporary file of a SIGKILLed dbpipe is removed by the next
 * export to that target, and "--to -" streams what a file export writes. */
#include <glob.h>

#include "test_cli.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  rm_rf(dir);
}

TestSuite(cli_files, .init = setup, .fini = teardown, .timeout = 120);

/* Temporary files beside dir/out/NAME (NAME.TOKEN.part). */
static int temps(const char *name) {
  char pat[600];
  snprintf(pat, sizeof pat, "%s/out/%s.????????????????.part", dir, name);
  glob_t g;
  int n = glob(pat, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
  globfree(&g);
  return n;
}

static bool is_regular(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

Test(cli_files, planted_links_redirect_neither_the_export_nor_the_manifest) {
  char out[300], victim[400], path[400];
  snprintf(out, sizeof out, "%s/out", dir);
  cr_assert_eq(mkdir(out, 0755), 0);
  snprintf(victim, sizeof victim, "%s/victim", dir);
  write_file(victim, "precious\n");
  const char *links[] = {"x.csv.part", "x-00001.csv.part", "m.json.part"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", out, links[i]);
    cr_assert_eq(symlink(victim, path), 0);
  }
  proc p;
  int code =
      run_cli(&p, dir,
              (const char *[]){"export", "--from", dbt_pg_dsn(), "--table", "public.customers",
                               "--to", "out/x.csv", "--manifest", "out/m.json", NULL});
  cr_expect_eq(code, 0, "%s", p.err);
  proc_free(&p);
  char *text = read_file(victim);
  cr_expect_str_eq(text, "precious\n", "the planted links' target is untouched");
  free(text);
  snprintf(path, sizeof path, "%s/x.csv", out);
  cr_expect(is_regular(path), "out/x.csv is a regular file");
  snprintf(path, sizeof path, "%s/m.json", out);
  cr_expect(is_regular(path), "out/m.json is a regular file");
  text = read_file(path);
  jv m;
  cr_expect(text != NULL && j_parse(text, &m), "the manifest is JSON");
  if (text != NULL) j_free(&m);
  free(text);
  cr_expect_eq(temps("x.csv") + temps("m.json"), 0, "no temporary file is left");
}

Test(cli_files, temporary_file_of_a_killed_dbpipe_is_removed_by_the_next_export) {
  proc p;
  proc_start(
      &p, dir, false,
      (const char *[]){"export", "--from", dbt_pg_dsn(), "--query",
                       "SELECT g, md5(g::text) FROM (SELECT generate_series(1, 200000000) AS g) s",
                       "--to", "out/big.csv.gz", NULL});
  uint64_t deadline = now_ms() + 20000;
  while (temps("big.csv.gz") == 0 && now_ms() < deadline) proc_pump(&p, 50);
  cr_assert_eq(temps("big.csv.gz"), 1, "the export is writing; stderr:\n%s", p.err);
  kill(p.pid, SIGKILL);
  cr_expect_eq(proc_wait(&p, 20000), 128 + SIGKILL);
  proc_free(&p);
  cr_assert_eq(temps("big.csv.gz"), 1, "the killed export left its temporary file");
  int code = run_cli(&p, dir,
                     (const char *[]){"export", "--from", dbt_pg_dsn(), "--query",
                                      "SELECT 1 AS one", "--to", "out/big.csv.gz", NULL});
  cr_expect_eq(code, 0, "%s", p.err);
  proc_free(&p);
  cr_expect_eq(temps("big.csv.gz"), 0, "the next export removed it");
  cr_expect(exists("%s/out/big.csv.gz", dir));
}

Test(cli_files, export_to_standard_output_streams_what_a_file_export_writes) {
  const char *sql = "SELECT * FROM orders ORDER BY id";
  proc p;
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_my_dsn(), "--query", sql, "--to",
                                        "-", "--format", "jsonl", NULL}),
               0);
  char *streamed = malloc(p.out_len + 1);
  memcpy(streamed, p.out, p.out_len + 1);
  size_t n = p.out_len;
  proc_free(&p);
  cr_assert_eq(run_cli(&p, dir,
                       (const char *[]){"export", "--from", dbt_my_dsn(), "--query", sql, "--to",
                                        "o.jsonl", NULL}),
               0);
  proc_free(&p);
  char path[400];
  snprintf(path, sizeof path, "%s/o.jsonl", dir);
  char *file = read_file(path);
  cr_assert_not_null(file);
  cr_expect(n > 0 && n == strlen(file) && memcmp(streamed, file, n) == 0,
            "stdout (%zu bytes) is the file (%zu bytes)", n, strlen(file));
  free(file);
  free(streamed);
  cr_expect_eq(count_suffix(dir, ".part"), 0);
}
