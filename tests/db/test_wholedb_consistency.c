/* Whole-database exports read one snapshot, through the dbpipe executable
 * against real servers while other connections write:
 *   - movers keep moving amounts between rows of `accounts` and between
 *     rows of `a` and `b`, one transaction per move; a partitioned export
 *     of accounts and a two-table export of a and b, repeated, must always
 *     show the sums the moves keep (and every account exactly once);
 *   - with --snapshot none nothing is promised: how often the sums broke
 *     is only logged;
 *   - MariaDB: a user without RELOAD is told to use --snapshot lock-free,
 *     and nothing is written; with it the export runs, with a warning.
 * The movers are threads with blocking connections of their own
 * (tests/support/txload.c). MariaDB's commit lock stalls every writer of
 * the server for a moment, so these tests run alone (RUN_SERIAL).
 */
#include "exporttest.h"
#include "test_cli.h"
#include "txload.h"
#include "wdtest.h"

static char dir[256];

static void setup(void) {
  export_dsns();
  make_tmpdir(dir, sizeof dir);
}

static void teardown(void) {
  wd_drop_schemas();
  wd_disconnect();
  rm_rf(dir);
}

TestSuite(wholedb_consistency, .init = setup, .fini = teardown, .timeout = 240);

#define NACC 2000
#define NAB 300
#define ROUNDS 20
#define BAL 1000

static const char *kind_name(int kind) {
  return kind == DBT_PG ? "PostgreSQL" : "MariaDB";
}

static void make_table(int kind, const char *qs, const char *name, int rows) {
  const char *eng = kind == DBT_PG ? "" : " ENGINE=InnoDB";
  wd_exec(kind, "CREATE TABLE %s.%s (id int PRIMARY KEY, bal bigint NOT NULL)%s", qs, name, eng);
  if (kind == DBT_PG) {
    wd_exec(kind, "INSERT INTO %s.%s SELECT g, %d FROM generate_series(1, %d) g", qs, name, BAL,
            rows);
    wd_exec(kind, "ANALYZE %s.%s", qs, name);
  } else {
    wd_exec(kind, "INSERT INTO %s.%s SELECT seq, %d FROM seq_1_to_%d", qs, name, BAL, rows);
    wd_exec(kind, "ANALYZE TABLE %s.%s", qs, name);
  }
}

/* The data lines of every file under `sub` (each file's header dropped). */
static void read_dir(const char *sub, wd_list *lines) {
  char base[600];
  snprintf(base, sizeof base, "%s/%s", dir, sub);
  wd_list files;
  wd_files(base, &files);
  cr_assert_gt(files.n, 0, "no files in %s", base);
  for (size_t i = 0; i < files.n; i++) {
    char *h = NULL;
    cr_assert(wd_csv_lines(files.v[i], &h, lines), "cannot read %s", files.v[i]);
    cr_expect(h != NULL && strcmp(h, "id,bal") == 0, "%s: header %s", files.v[i], h ? h : "");
    free(h);
  }
  wd_list_free(&files);
}

/* True when the lines' ids are exactly 1..n, each once. */
static bool ids_once(const wd_list *lines, int n) {
  if (lines->n != (size_t)n) return false;
  char *seen = calloc((size_t)n + 1, 1);
  bool ok = true;
  for (size_t i = 0; i < lines->n && ok; i++) {
    long id = strtol(lines->v[i], NULL, 10);
    if (id < 1 || id > n || seen[id]) ok = false;
    if (ok) seen[id] = 1;
  }
  free(seen);
  return ok;
}

typedef struct round_result {
  bool acc_ok, ab_ok; /* the sums held */
  bool rows_ok;       /* every account exactly once */
  long long acc, ab;
} round_result;

/* One round: the partitioned export of accounts and the export of a and b,
 * each with `snapshot` (NULL: the default). */
static void one_round(int kind, const char *schema, int r, const char *snapshot,
                      round_result *out) {
  char acc[300], pats[600], to1[600], to2[600], sub1[64], sub2[64];
  snprintf(acc, sizeof acc, "%s.accounts", schema);
  snprintf(pats, sizeof pats, "%s.a,%s.b", schema, schema);
  snprintf(sub1, sizeof sub1, "%s-acc-%d", snapshot ? snapshot : "on", r);
  snprintf(sub2, sizeof sub2, "%s-ab-%d", snapshot ? snapshot : "on", r);
  snprintf(to1, sizeof to1, "%s/%s/accounts.csv", dir, sub1);
  snprintf(to2, sizeof to2, "%s/%s/{table}.csv", dir, sub2);
  const char *a1[24] = {"export", "--from", dbt_dsn(kind), "--table", acc, "--partitions",
                        "4",      "--pool", "4",           "--to",    to1};
  const char *a2[24] = {"export", "--from", dbt_dsn(kind), "--tables", pats,
                        "--pool", "2",      "--to",        to2};
  size_t n1 = 11, n2 = 9;
  if (snapshot != NULL) {
    a1[n1++] = "--snapshot";
    a1[n1++] = snapshot;
    a2[n2++] = "--snapshot";
    a2[n2++] = snapshot;
  }
  proc p;
  int code = wd_cli_v(&p, NULL, a1);
  cr_assert_eq(code, 0, "round %d: accounts export: exit %d:\n%s", r, code, p.err);
  proc_free(&p);
  code = wd_cli_v(&p, NULL, a2);
  cr_assert_eq(code, 0, "round %d: a,b export: exit %d:\n%s", r, code, p.err);
  proc_free(&p);

  wd_list l = {0};
  read_dir(sub1, &l);
  out->rows_ok = ids_once(&l, NACC);
  out->acc = wd_sum_field(&l, 1);
  out->acc_ok = out->acc == (long long)NACC * BAL;
  wd_list_free(&l);
  read_dir(sub2, &l);
  out->ab = wd_sum_field(&l, 1);
  out->ab_ok = out->ab == (long long)2 * NAB * BAL && l.n == 2 * NAB;
  wd_list_free(&l);
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, sub1);
  rm_rf(path);
  snprintf(path, sizeof path, "%s/%s", dir, sub2);
  rm_rf(path);
}

static void consistency(int kind) {
  const char *schema = wd_schema(kind, "cons");
  char qs[200], one[300], a[300], b[300];
  wd_quote(kind, schema, qs, sizeof qs);
  make_table(kind, qs, "accounts", NACC);
  make_table(kind, qs, "a", NAB);
  make_table(kind, qs, "b", NAB);
  snprintf(one, sizeof one, "%s.accounts", qs);
  snprintf(a, sizeof a, "%s.a", qs);
  snprintf(b, sizeof b, "%s.b", qs);
  txload_spec spec = {.dsn = dbt_dsn(kind),
                      .one = one,
                      .a = a,
                      .b = b,
                      .rows_one = NACC,
                      .rows_ab = NAB,
                      .threads = 3};
  uint64_t t0 = now_ms();
  txload *load = txload_start(&spec);

  long moved_during = 0;
  for (int r = 0; r < ROUNDS; r++) {
    long before = txload_commits(load);
    round_result res;
    one_round(kind, schema, r, NULL, &res);
    moved_during += txload_commits(load) - before;
    cr_expect(res.rows_ok, "%s round %d: the partitioned export does not hold every account once",
              kind_name(kind), r);
    cr_expect(res.acc_ok, "%s round %d: sum(accounts) = %lld, want %lld", kind_name(kind), r,
              res.acc, (long long)NACC * BAL);
    cr_expect(res.ab_ok, "%s round %d: sum(a) + sum(b) = %lld, want %lld", kind_name(kind), r,
              res.ab, (long long)2 * NAB * BAL);
    if (!res.rows_ok || !res.acc_ok || !res.ab_ok) break;
  }
  uint64_t t_on = now_ms() - t0;

  /* Without a snapshot each part and each table reads on its own. */
  int broke_acc = 0, broke_ab = 0, broke_rows = 0;
  uint64_t t1 = now_ms();
  for (int r = 0; r < ROUNDS; r++) {
    round_result res;
    one_round(kind, schema, r, "none", &res);
    broke_acc += !res.acc_ok;
    broke_ab += !res.ab_ok;
    broke_rows += !res.rows_ok;
  }
  uint64_t t_none = now_ms() - t1;

  char why[512];
  long commits = txload_stop(load, why, sizeof why);
  cr_expect_str_eq(why, "", "a mover stopped: %s", why);
  /* The test means something only if the movers moved while the exports
   * ran. */
  cr_expect_gt(moved_during, ROUNDS, "%s: only %ld moves committed during the exports",
               kind_name(kind), moved_during);
  char *s1 = wd_value(kind, "SELECT SUM(bal) FROM %s", one);
  char *s2 = wd_value(kind, "SELECT (SELECT SUM(bal) FROM %s) + (SELECT SUM(bal) FROM %s)", a, b);
  cr_expect_eq(strtoll(s1, NULL, 10), (long long)NACC * BAL, "the movers kept sum(accounts)");
  cr_expect_eq(strtoll(s2, NULL, 10), (long long)2 * NAB * BAL, "the movers kept sum(a)+sum(b)");
  free(s1);
  free(s2);
  cr_log_info(
      "%s: %d rounds with a snapshot in %llu ms, %ld moves committed during them; "
      "with --snapshot none (%llu ms) the accounts sum broke %d of %d times, a+b %d, "
      "rows %d; %ld moves in all",
      kind_name(kind), ROUNDS, (unsigned long long)t_on, moved_during, (unsigned long long)t_none,
      broke_acc, ROUNDS, broke_ab, broke_rows, commits);
  fprintf(stderr,
          "wholedb_consistency %s: --snapshot none broke the accounts sum %d/%d, a+b %d/%d\n",
          kind_name(kind), broke_acc, ROUNDS, broke_ab, ROUNDS);
}

Test(wholedb_consistency, pg_sums_hold_under_writes, .timeout = 180) {
  consistency(DBT_PG);
}

Test(wholedb_consistency, my_sums_hold_under_writes, .timeout = 180) {
  consistency(DBT_MY);
}

/* ---- 4. MariaDB: a user without RELOAD ---- */

#define NR_PASS "wd-nr-Secret7"

Test(wholedb_consistency, my_without_reload_says_lock_free_and_writes_nothing, .timeout = 60) {
  const char *schema = wd_schema(DBT_MY, "nr");
  char qs[200], user[64], esc[128];
  wd_quote(DBT_MY, schema, qs, sizeof qs);
  make_table(DBT_MY, qs, "t1", 100);
  make_table(DBT_MY, qs, "t2", 100);
  snprintf(user, sizeof user, "wdnr_%ld", (long)getpid());
  /* In GRANT an unescaped '_' is a wildcard. */
  size_t k = 0;
  for (const char *p = schema; *p && k + 3 < sizeof esc; p++) {
    if (*p == '_') esc[k++] = '\\';
    esc[k++] = *p;
  }
  esc[k] = '\0';
  char err[512];
  (void)wd_try_exec(DBT_MY, err, sizeof err, "DROP USER IF EXISTS '%s'@'%%'", user);
  wd_exec(DBT_MY, "CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, NR_PASS);
  wd_exec(DBT_MY, "GRANT SELECT, SHOW VIEW ON `%s`.* TO '%s'@'%%'", esc, user);

  dbp_dsn d;
  char ebuf[256], dsn[600];
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &d, ebuf, sizeof ebuf), 0, "%s", ebuf);
  snprintf(dsn, sizeof dsn, "mysql://%s:%s@%s:%d/%s", user, NR_PASS, d.host, d.port, schema);
  dbp_dsn_free(&d);

  char pat[300], to[600], to_split[600], out[400], single[300];
  snprintf(pat, sizeof pat, "%s.*", schema);
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(to, sizeof to, "%s/{table}.csv", out);
  snprintf(single, sizeof single, "%s.t1", schema);
  snprintf(to_split, sizeof to_split, "%s/t1.csv", out);

  /* The multi-table export, and a split one, refuse with the way out. */
  const char *const cases[][10] = {
      {"export", "--from", dsn, "--tables", pat, "--to", to, NULL},
      {"export", "--from", dsn, "--table", single, "--partitions", "2", "--to", to_split, NULL},
  };
  for (size_t c = 0; c < 2; c++) {
    proc p;
    int code = wd_cli_v(&p, NULL, cases[c]);
    cr_expect_neq(code, 0, "case %zu: exit 0 without RELOAD", c);
    cr_expect_not_null(strstr(p.err, "RELOAD"), "case %zu: the error names RELOAD:\n%s", c, p.err);
    cr_expect_not_null(strstr(p.err, "--snapshot lock-free"),
                       "case %zu: the error names --snapshot lock-free:\n%s", c, p.err);
    cr_expect_null(strstr(p.err, NR_PASS), "case %zu: the password is shown", c);
    proc_free(&p);
    wd_list files;
    wd_files(dir, &files);
    for (size_t i = 0; i < files.n; i++) cr_expect(0, "case %zu: %s was written", c, files.v[i]);
    wd_list_free(&files);
  }

  /* Lock-free: it runs, and says what it gave up. */
  proc p;
  int code = wd_cli(&p, NULL, "export", "--from", dsn, "--tables", pat, "--snapshot", "lock-free",
                    "--to", to, "--log-format", "json", NULL);
  cr_expect_eq(code, 0, "lock-free: exit %d:\n%s", code, p.err);
  bool warned = false;
  for (char *l = p.err; *l;) {
    char *nl = strchr(l, '\n');
    size_t len = nl ? (size_t)(nl - l) : strlen(l);
    char line[2048];
    snprintf(line, sizeof line, "%.*s", (int)len, l);
    if (strstr(line, "\"level\":\"warning\"") != NULL) warned = true;
    l += len + (nl != NULL);
  }
  cr_expect(warned, "lock-free: a warning:\n%s", p.err);
  proc_free(&p);
  cr_expect(exists("%s/t1.csv", out));
  cr_expect(exists("%s/t2.csv", out));

  /* One unsplit table needs no shared snapshot, so no RELOAD either. */
  snprintf(to, sizeof to, "%s/single/t1.csv", dir);
  code = wd_cli(&p, NULL, "export", "--from", dsn, "--table", single, "--to", to, NULL);
  cr_expect_eq(code, 0, "one unsplit table without RELOAD: exit %d:\n%s", code, p.err);
  proc_free(&p);

  wd_exec(DBT_MY, "DROP USER '%s'@'%%'", user);
}
