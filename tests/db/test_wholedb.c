/* Whole-database exports through the dbpipe executable, against real
 * servers: the same bodies on PostgreSQL (suite wholedb_pg) and MariaDB
 * (suite wholedb_my).
 *
 *   - A table split into parts (--partitions, --chunk-rows, --partition-by,
 *     with and without {part} in --to, with --max-rows) holds exactly the
 *     rows of the unsplit export of the same table: none missing, none
 *     twice, whatever the key (even, skewed, sparse, NULL, composite, text,
 *     none).
 *   - A --tables export of a schema writes, per table, the bytes a --table
 *     export of that table writes, every column type included, and keeps
 *     its files inside the output directory whatever the tables are called.
 *   - A table dropped after the tables were found fails its own task only.
 *   - The manifest records the snapshot, the parts and the files.
 *
 * Each test makes schemas (MariaDB: databases) named dbpwd_<pid>_* and
 * drops them at the end. Multi-table and split exports on MariaDB take the
 * commit lock (BACKUP STAGE BLOCK_COMMIT) for a moment, so these tests run
 * alone (RUN_SERIAL).
 */
#include <libgen.h>
#include <limits.h>

#include "exporttest.h"
#include "test_cli.h"
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

TestSuite(wholedb_pg, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(wholedb_my, .init = setup, .fini = teardown, .timeout = 240);

#define WD_TEST(name, secs)                 \
  static void name##_body(int kind);        \
  Test(wholedb_pg, name, .timeout = secs) { \
    name##_body(DBT_PG);                    \
  }                                         \
  Test(wholedb_my, name, .timeout = secs) { \
    name##_body(DBT_MY);                    \
  }                                         \
  static void name##_body(int kind)

/* ---- helpers ---- */

/* Runs each statement of `stmts` (NULL-terminated) with every "{S}"
 * replaced by the quoted schema. */
static void exec_all(int kind, const char *schema, const char *const *stmts) {
  char qs[200];
  wd_quote(kind, schema, qs, sizeof qs);
  for (size_t i = 0; stmts[i] != NULL; i++) {
    tstr sql = {0};
    for (const char *p = stmts[i]; *p;) {
      if (strncmp(p, "{S}", 3) == 0) {
        ts_adds(&sql, qs);
        p += 3;
      } else {
        ts_addc(&sql, *p++);
      }
    }
    ts_addc(&sql, '\0');
    wd_exec(kind, "%s", sql.p);
    free(sql.p);
  }
}

static const char *kind_name(int kind) {
  return kind == DBT_PG ? "postgresql" : "mysql";
}

/* "dir/sub" in buf. */
static const char *under(char *buf, size_t len, const char *sub) {
  snprintf(buf, len, "%s/%s", dir, sub);
  return buf;
}

static bool has_part_file(const wd_list *files) {
  for (size_t i = 0; i < files->n; i++)
    if (ends_with(files->v[i], ".part")) return true;
  return false;
}

/* True when the name (after the last '/') has a run of exactly 5 digits. */
static bool numbered(const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  for (const char *p = b; *p; p++) {
    size_t n = strspn(p, "0123456789");
    if (n == 5) return true;
    if (n > 0) p += n - 1;
  }
  return false;
}

/* Reads every file of `files` as CSV: each must start with `header`; their
 * data lines go into *lines. */
static void gather(const wd_list *files, const char *header, wd_list *lines, const char *what) {
  for (size_t i = 0; i < files->n; i++) {
    char *h = NULL;
    cr_assert(wd_csv_lines(files->v[i], &h, lines), "%s: cannot read %s", what, files->v[i]);
    cr_expect(h != NULL && strcmp(h, header) == 0, "%s: %s starts with %s, not the header %s", what,
              files->v[i], h ? h : "(nothing)", header);
    free(h);
  }
}

/* ---- 1. split exports hold exactly the rows of an unsplit one ---- */

static const char *const pg_split_tables[] = {
    "CREATE TABLE {S}.even (id int PRIMARY KEY, v text)",
    "INSERT INTO {S}.even SELECT g, 'v' || g FROM generate_series(1, 6000) g",
    /* Most ids small, a few far away: boundaries by value would put nearly
     * every row in one part. */
    "CREATE TABLE {S}.skewed (id bigint PRIMARY KEY, v text)",
    "INSERT INTO {S}.skewed SELECT g, 'a,\"b\"' || g FROM generate_series(1, 5900) g",
    "INSERT INTO {S}.skewed SELECT 1000000000000 + g * 7919, 's' || g "
    "FROM generate_series(1, 100) g",
    "CREATE TABLE {S}.sparse (id bigint PRIMARY KEY, v text)",
    "INSERT INTO {S}.sparse SELECT g::bigint * g * g * 1013, 'p' || g "
    "FROM generate_series(1, 3000) g",
    "INSERT INTO {S}.sparse SELECT -(g::bigint * g * 77), 'n' || g FROM generate_series(1, 50) g",
    /* Split by a column that is NULL in a third of the rows and repeats. */
    "CREATE TABLE {S}.nullkey (id int PRIMARY KEY, grp int, v text)",
    "INSERT INTO {S}.nullkey SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 17 END, 'k' || g "
    "FROM generate_series(1, 6000) g",
    "CREATE TABLE {S}.composite (a int, b text, v int, PRIMARY KEY (a, b))",
    "INSERT INTO {S}.composite SELECT g % 50, 'k' || (g / 50), g FROM generate_series(1, 6000) g",
    "CREATE TABLE {S}.textkey (code text PRIMARY KEY, v int)",
    "INSERT INTO {S}.textkey SELECT md5(g::text) || (ARRAY['', ' z', 'Ä', 'A', '''q'])[1 + g % 5],"
    " g FROM generate_series(1, 6000) g",
    /* No key, and rows that are there twice. */
    "CREATE TABLE {S}.keyless (x int, v text)",
    "INSERT INTO {S}.keyless SELECT g % 100, 'v' || (g % 1000) FROM generate_series(1, 6000) g",
    "ANALYZE {S}.even, {S}.skewed, {S}.sparse, {S}.nullkey, {S}.composite, {S}.textkey, "
    "{S}.keyless",
    NULL};

static const char *const my_split_tables[] = {
    "CREATE TABLE {S}.even (id int PRIMARY KEY, v varchar(40)) ENGINE=InnoDB",
    "INSERT INTO {S}.even SELECT seq, CONCAT('v', seq) FROM seq_1_to_6000",
    "CREATE TABLE {S}.skewed (id bigint PRIMARY KEY, v varchar(40)) ENGINE=InnoDB",
    "INSERT INTO {S}.skewed SELECT seq, CONCAT('a,\"b\"', seq) FROM seq_1_to_5900",
    "INSERT INTO {S}.skewed SELECT 1000000000000 + seq * 7919, CONCAT('s', seq) "
    "FROM seq_1_to_100",
    "CREATE TABLE {S}.sparse (id bigint PRIMARY KEY, v varchar(40)) ENGINE=InnoDB",
    "INSERT INTO {S}.sparse SELECT seq * seq * seq * 1013, CONCAT('p', seq) FROM seq_1_to_3000",
    "INSERT INTO {S}.sparse SELECT -(seq * seq * 77), CONCAT('n', seq) FROM seq_1_to_50",
    "CREATE TABLE {S}.nullkey (id int PRIMARY KEY, grp int, v varchar(40)) ENGINE=InnoDB",
    "INSERT INTO {S}.nullkey SELECT seq, IF(seq % 3 = 0, NULL, seq % 17), CONCAT('k', seq) "
    "FROM seq_1_to_6000",
    "CREATE TABLE {S}.composite (a int, b varchar(20), v int, PRIMARY KEY (a, b)) ENGINE=InnoDB",
    "INSERT INTO {S}.composite SELECT seq % 50, CONCAT('k', seq DIV 50), seq FROM seq_1_to_6000",
    "CREATE TABLE {S}.textkey (code varchar(64) PRIMARY KEY, v int) ENGINE=InnoDB",
    "INSERT INTO {S}.textkey SELECT CONCAT(MD5(seq), ELT(1 + seq % 5, '', ' z', 'Ä', 'A', '''q')),"
    " seq FROM seq_1_to_6000",
    "CREATE TABLE {S}.keyless (x int, v varchar(40)) ENGINE=InnoDB",
    "INSERT INTO {S}.keyless SELECT seq % 100, CONCAT('v', seq % 1000) FROM seq_1_to_6000",
    "ANALYZE TABLE {S}.even, {S}.skewed, {S}.sparse, {S}.nullkey, {S}.composite, {S}.textkey, "
    "{S}.keyless",
    NULL};

typedef struct split_table {
  const char *name;
  const char *partition_by; /* NULL: auto */
} split_table;

static const split_table split_tables[] = {
    {"even", NULL},      {"skewed", NULL},  {"sparse", NULL},  {"nullkey", "grp"},
    {"composite", NULL}, {"textkey", NULL}, {"keyless", NULL},
};

/* The unsplit export of S.T into ref/T.csv: its header and data lines. */
static void reference(int kind, const char *schema, const char *t, char **header, wd_list *lines) {
  char qual[300], to[400], path[400];
  snprintf(qual, sizeof qual, "%s.%s", schema, t);
  snprintf(to, sizeof to, "%s/ref/%s.csv", dir, t);
  proc p;
  int code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--table", qual, "--to", to, NULL);
  cr_assert_eq(code, 0, "unsplit export of %s failed:\n%s", qual, p.err);
  proc_free(&p);
  snprintf(path, sizeof path, "%s", to);
  memset(lines, 0, sizeof *lines);
  cr_assert(wd_csv_lines(path, header, lines));
  cr_assert_not_null(*header);
  cr_assert_gt(lines->n, 0, "%s is empty", qual);
}

typedef struct shape {
  const char *tag;
  const char *to; /* relative to the shape's directory; %s = the table */
  const char *opts[8];
  bool part_files; /* {part}: one file per part, numbered from 00001 */
  bool max_rows;   /* --max-rows: every file numbered */
} shape;

static const shape shapes[] = {
    {"one", "%s.csv", {"--partitions", "4", "--pool", "4"}, false, false},
    {"parts", "%s.{part}.csv", {"--partitions", "4", "--pool", "4"}, true, false},
    {"rows", "%s.csv", {"--chunk-rows", "1000", "--pool", "3", "--max-rows", "700"}, false, true},
    {"prows",
     "%s.{part}.csv",
     {"--chunk-rows", "2500", "--pool", "2", "--max-rows", "700"},
     true,
     true},
};

/* The ids (first field) of a {part} file's data lines: min and max. */
static void id_range(const char *path, long long *lo, long long *hi) {
  char *h = NULL;
  wd_list l = {0};
  cr_assert(wd_csv_lines(path, &h, &l));
  *lo = LLONG_MAX;
  *hi = LLONG_MIN;
  for (size_t i = 0; i < l.n; i++) {
    long long v = strtoll(l.v[i], NULL, 10);
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
  }
  free(h);
  wd_list_free(&l);
}

/* Runs one split export of S.T and compares its rows with the reference. */
static void check_shape(int kind, const char *schema, const split_table *t, const shape *s,
                        const char *header, const wd_list *ref) {
  char qual[300], sub[300], to[1000], base[600], what[400];
  snprintf(qual, sizeof qual, "%s.%s", schema, t->name);
  snprintf(sub, sizeof sub, "%s/%s", s->tag, t->name);
  under(base, sizeof base, sub);
  char leaf[300];
  snprintf(leaf, sizeof leaf, s->to, t->name);
  snprintf(to, sizeof to, "%s/%s", base, leaf);
  snprintf(what, sizeof what, "%s %s (%s)", kind_name(kind), t->name, s->tag);

  const char *argv[32] = {"export", "--from", dbt_dsn(kind), "--table", qual, "--to", to};
  size_t n = 7;
  for (size_t i = 0; s->opts[i] != NULL; i++) argv[n++] = s->opts[i];
  if (t->partition_by != NULL) {
    argv[n++] = "--partition-by";
    argv[n++] = t->partition_by;
  }
  argv[n] = NULL;
  proc p;
  int code = wd_cli_v(&p, NULL, argv);
  cr_assert_eq(code, 0, "%s: exit %d:\n%s", what, code, p.err);
  proc_free(&p);

  wd_list files;
  wd_files(base, &files);
  cr_assert_gt(files.n, 0, "%s: no files in %s", what, base);
  cr_expect_not(has_part_file(&files), "%s: a .part file was left behind", what);
  if (!s->part_files && !s->max_rows) {
    cr_expect_eq(files.n, 1, "%s: one file wanted, %zu written", what, files.n);
    cr_expect_str_eq(files.v[0], to, "%s", what);
  }
  if (s->max_rows) {
    cr_expect_gt(files.n, 1, "%s: --max-rows 700 of %zu rows gave one file", what, ref->n);
    for (size_t i = 0; i < files.n; i++)
      cr_expect(numbered(files.v[i]), "%s: %s is not numbered", what, files.v[i]);
  }
  if (s->part_files && !s->max_rows) {
    /* T.00001.csv, T.00002.csv, ... with no gap. */
    for (size_t i = 0; i < files.n; i++) {
      char want[700];
      snprintf(want, sizeof want, "%s/%s.%05zu.csv", base, t->name, i + 1);
      cr_expect_str_eq(files.v[i], want, "%s: part file %zu", what, i + 1);
    }
    /* Only MariaDB tables without a key are read whole. */
    bool one_part = kind == DBT_MY && strcmp(t->name, "keyless") == 0;
    if (!one_part) cr_expect_gt(files.n, 1, "%s: not split", what);
    /* The parts are numbered in key order. */
    if (strcmp(t->name, "even") == 0 || strcmp(t->name, "skewed") == 0 ||
        strcmp(t->name, "sparse") == 0) {
      long long prev_hi = LLONG_MIN;
      for (size_t i = 0; i < files.n; i++) {
        long long lo, hi;
        id_range(files.v[i], &lo, &hi);
        cr_expect_gt(lo, prev_hi, "%s: part %zu starts at %lld, below the %lld before it", what,
                     i + 1, lo, prev_hi);
        prev_hi = hi;
      }
    }
  }
  wd_list got = {0}, want = {0};
  gather(&files, header, &got, what);
  for (size_t i = 0; i < ref->n; i++) wd_list_add(&want, ref->v[i], strlen(ref->v[i]));
  cr_expect(wd_same_lines(&got, &want, what), "%s: the rows differ from the unsplit export", what);
  wd_list_free(&got);
  wd_list_free(&want);
  wd_list_free(&files);
}

WD_TEST(split_exports_hold_every_row_once, 300) {
  const char *schema = wd_schema(kind, "split");
  exec_all(kind, schema, kind == DBT_PG ? pg_split_tables : my_split_tables);
  uint64_t t0 = now_ms();
  size_t nt = sizeof split_tables / sizeof *split_tables;
  for (size_t i = 0; i < nt; i++) {
    const split_table *t = &split_tables[i];
    char *header = NULL;
    wd_list ref;
    reference(kind, schema, t->name, &header, &ref);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
      check_shape(kind, schema, t, &shapes[s], header, &ref);
    /* Compressed parts concatenated into one file are one valid stream. */
    if (strcmp(t->name, "even") == 0) {
      static const shape zipped[] = {
          {"gz", "%s.csv.gz", {"--partitions", "4", "--pool", "4"}, false, false},
          {"zst", "%s.csv.zst", {"--partitions", "4", "--pool", "4"}, false, false},
      };
      for (size_t s = 0; s < 2; s++) check_shape(kind, schema, t, &zipped[s], header, &ref);
    }
    free(header);
    wd_list_free(&ref);
  }

  /* --where filters every part the same way as the unsplit query. */
  for (size_t i = 0; i < 2; i++) {
    const char *t = i == 0 ? "even" : "nullkey";
    char qs[200], sql[400], qual[300], ref[600], to[1400], sub[64], base[600], what[200];
    wd_quote(kind, schema, qs, sizeof qs);
    snprintf(sql, sizeof sql, "SELECT * FROM %s.%s WHERE id %% 7 <> 3", qs, t);
    snprintf(qual, sizeof qual, "%s.%s", schema, t);
    snprintf(ref, sizeof ref, "%s/where-ref/%s.csv", dir, t);
    snprintf(sub, sizeof sub, "where/%s", t);
    under(base, sizeof base, sub);
    snprintf(to, sizeof to, "%s/%s.{part}.csv", base, t);
    snprintf(what, sizeof what, "%s %s --where", kind_name(kind), t);
    proc p;
    int code =
        wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--query", sql, "--to", ref, NULL);
    cr_assert_eq(code, 0, "%s: reference: %s", what, p.err);
    proc_free(&p);
    code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--table", qual, "--where",
                  "id % 7 <> 3", "--partitions", "4", "--pool", "2", "--partition-by",
                  i == 0 ? "auto" : "grp", "--to", to, NULL);
    cr_assert_eq(code, 0, "%s: exit %d:\n%s", what, code, p.err);
    proc_free(&p);
    char *header = NULL;
    wd_list want = {0}, got = {0}, files;
    cr_assert(wd_csv_lines(ref, &header, &want));
    wd_files(base, &files);
    cr_expect_gt(files.n, 1, "%s: not split", what);
    gather(&files, header, &got, what);
    cr_expect(wd_same_lines(&got, &want, what), "%s: the rows differ", what);
    free(header);
    wd_list_free(&want);
    wd_list_free(&got);
    wd_list_free(&files);
  }

  /* The same through --tables: every table of the schema but one, each
   * split, one directory per table. */
  char pat[300], excl[300], to[600];
  snprintf(pat, sizeof pat, "%s.*", schema);
  snprintf(excl, sizeof excl, "%s.nullkey", schema);
  snprintf(to, sizeof to, "%s/multi/{table}/{table}.{part}.csv", dir);
  proc p;
  int code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--tables", pat, "--exclude", excl,
                    "--partitions", "3", "--pool", "3", "--to", to, NULL);
  cr_assert_eq(code, 0, "--tables export: exit %d:\n%s", code, p.err);
  proc_free(&p);
  cr_expect_not(exists("%s/multi/nullkey", dir), "--exclude left nullkey in");
  for (size_t i = 0; i < nt; i++) {
    const split_table *t = &split_tables[i];
    if (t->partition_by != NULL) continue;
    char sub[300], base[600], what[300], refp[600];
    snprintf(sub, sizeof sub, "multi/%s", t->name);
    under(base, sizeof base, sub);
    snprintf(what, sizeof what, "%s --tables %s", kind_name(kind), t->name);
    snprintf(refp, sizeof refp, "%s/ref/%s.csv", dir, t->name);
    char *header = NULL;
    wd_list ref = {0}, got = {0}, files;
    cr_assert(wd_csv_lines(refp, &header, &ref));
    wd_files(base, &files);
    cr_expect_gt(files.n, 0, "%s: no files", what);
    gather(&files, header, &got, what);
    cr_expect(wd_same_lines(&got, &ref, what), "%s: the rows differ", what);
    free(header);
    wd_list_free(&ref);
    wd_list_free(&got);
    wd_list_free(&files);
  }
  cr_log_info("%s: split exports checked in %llu ms", kind_name(kind),
              (unsigned long long)(now_ms() - t0));
}

/* ---- 2. --tables equals --table, every type, odd names ---- */

static const char *const pg_type_tables[] = {
    "CREATE TABLE {S}.types (id int PRIMARY KEY, i2 smallint, i8 bigint, num numeric(30,10),"
    " r real, d double precision, b boolean, t text, vc varchar(20), c char(5), by bytea,"
    " j json, jb jsonb, dt date, tm time, tz timetz, ts timestamp, tstz timestamptz,"
    " iv interval, u uuid, arr int[], ip inet)",
    "INSERT INTO {S}.types VALUES (1, -32768, 9223372036854775807,"
    " 12345678901234567890.0123456789, 'NaN', 'Infinity', true, E'a,b \"q\"\\nline2\\r\\\\.',"
    " 'Ünïcödé', 'ab', '\\x00ff10', '{\"k\": [1, \"x\"]}', '{\"b\": 2, \"a\": null}',"
    " '2024-02-29', '23:59:59.999999', '12:00:00+02', '2000-01-01 00:00:00',"
    " '1999-12-31 23:59:59+00', '1 year 2 days 03:04:05', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
    " '{1,NULL,3}', '192.168.0.1/24')",
    "INSERT INTO {S}.types (id) VALUES (2)",
    "INSERT INTO {S}.types VALUES (3, 0, 0, -0.5, '-Infinity', 1.5e-300, false, '', '', '',"
    " '\\x', '[]', '{}', '0001-01-01', '00:00', '00:00+00', '-infinity', 'infinity', '-1 day',"
    " '00000000-0000-0000-0000-000000000000', '{}', '::1')",
    "CREATE TABLE {S}.\"Upper\" (id int PRIMARY KEY, \"Name\" text)",
    "CREATE TABLE {S}.\"sp ace\" (id int PRIMARY KEY, v text)",
    "CREATE TABLE {S}.\"do.t\" (id int PRIMARY KEY, v text)",
    "CREATE TABLE {S}.\"q\"\"uote'\" (id int PRIMARY KEY, v text)",
    "CREATE TABLE {S}.\"../x\" (id int PRIMARY KEY, v text)",
    "CREATE TABLE {S}.\"a/b\" (id int PRIMARY KEY, v text)",
    "CREATE TABLE {S}.\"Ünï\" (id int PRIMARY KEY, v text)",
    NULL};

static const char *const my_type_tables[] = {
    "CREATE TABLE {S}.types (id int PRIMARY KEY, ti tinyint, si smallint, mi mediumint,"
    " bi bigint unsigned, num decimal(30,10), f float, d double, b boolean, bt bit(8), c char(5),"
    " vc varchar(20), t text, bl blob, vb varbinary(16), j json, dt date, tm time(6),"
    " dtm datetime(6), ts timestamp(6) NULL, y year, e enum('x','y z'), st set('a','b'))"
    " ENGINE=InnoDB",
    "INSERT INTO {S}.types VALUES (1, -128, -32768, 8388607, 18446744073709551615,"
    " 12345678901234567890.0123456789, 1.5, -2.25e300, true, b'10100101', 'ab', 'Ünïcödé',"
    " 'a,b \"q\"\\nline2\\r\\\\.', X'00ff10', X'', '{\"k\": [1, \"x\"]}', '2024-02-29',"
    " '-838:59:59.000000', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.000000', 2155,"
    " 'y z', 'a,b')",
    "INSERT INTO {S}.types (id) VALUES (2)",
    "INSERT INTO {S}.types VALUES (3, 0, 0, 0, 0, -0.5, 0, 1.5e-300, false, b'0', '', '', '',"
    " X'', X'00', '[]', '1000-01-01', '00:00:00', '1000-01-01 00:00:00',"
    " '1970-01-01 00:00:01', 1901, 'x', '')",
    "CREATE TABLE {S}.`Upper` (id int PRIMARY KEY, `Name` text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`sp ace` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`do.t` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`q\"uote'` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`../x` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`a/b` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    "CREATE TABLE {S}.`Ünï` (id int PRIMARY KEY, v text) ENGINE=InnoDB",
    NULL};

static const char *const odd_names[] = {"Upper", "sp ace", "do.t", "q\"uote'",
                                        "../x",  "a/b",    "Ünï"};
#define NODD (sizeof odd_names / sizeof *odd_names)

/* Fills the odd-named tables with a few rows each. */
static void fill_odd(int kind, const char *schema) {
  char qs[200], qt[200];
  wd_quote(kind, schema, qs, sizeof qs);
  for (size_t i = 0; i < NODD; i++) {
    wd_quote(kind, odd_names[i], qt, sizeof qt);
    wd_exec(kind, "INSERT INTO %s.%s VALUES (1, 'one'), (2, NULL), (3, 'x,\"y\"')", qs, qt);
  }
}

/* The reference export of one table: --table when the name has no dot
 * (a dot always separates schema and table there), else --query of the
 * same rows. */
static void export_one(int kind, const char *schema, const char *tname, const char *to) {
  char qual[400], sql[600], qs[200], qt[200];
  proc p;
  int code;
  if (strchr(tname, '.') == NULL) {
    snprintf(qual, sizeof qual, "%s.%s", schema, tname);
    code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--table", qual, "--to", to, NULL);
  } else {
    wd_quote(kind, schema, qs, sizeof qs);
    wd_quote(kind, tname, qt, sizeof qt);
    snprintf(sql, sizeof sql, "SELECT * FROM %s.%s", qs, qt);
    code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--query", sql, "--to", to, NULL);
  }
  cr_assert_eq(code, 0, "export of %s failed:\n%s", tname, p.err);
  proc_free(&p);
}

static void same_bytes(const char *got, const char *want, const char *what) {
  size_t ng, nw;
  char *g = read_output(got, &ng), *w = read_output(want, &nw);
  cr_expect(ng == nw && memcmp(g, w, ng) == 0,
            "%s: %s differs from %s\n--- got\n%.*s\n--- want\n%.*s", what, got, want,
            (int)(ng < 1500 ? ng : 1500), g, (int)(nw < 1500 ? nw : 1500), w);
  free(g);
  free(w);
}

WD_TEST(tables_export_equals_table_exports_and_stays_in_its_directory, 240) {
  const char *schema = wd_schema(kind, "types");
  exec_all(kind, schema, kind == DBT_PG ? pg_type_tables : my_type_tables);
  fill_odd(kind, schema);
  const char *exts[] = {"csv", "tsv", "jsonl"};
  char pat[300];
  snprintf(pat, sizeof pat, "%s.*", schema);
  for (size_t e = 0; e < 3; e++) {
    char sub[64], out[400], to[600], man[600], realout[PATH_MAX];
    snprintf(sub, sizeof sub, "out-%s", exts[e]);
    under(out, sizeof out, sub);
    /* {table} alone first in the name too: "../x" must not climb out. */
    snprintf(to, sizeof to, e == 0 ? "%s/{table}.%s" : "%s/{schema}.{table}.%s", out, exts[e]);
    snprintf(man, sizeof man, "%s/m-%s.json", dir, exts[e]);
    proc p;
    int code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--tables", pat, "--to", to,
                      "--manifest", man, NULL);
    cr_assert_eq(code, 0, "%s: exit %d:\n%s", exts[e], code, p.err);
    proc_free(&p);
    cr_assert_not_null(realpath(out, realout), "no output directory %s", out);

    /* Every file is right in the output directory: nothing above it or
     * beside it, no subdirectory made of a '/' in a name. */
    wd_list all;
    wd_files(dir, &all);
    size_t in_out = 0;
    for (size_t i = 0; i < all.n; i++) {
      if (strncmp(all.v[i], out, strlen(out)) == 0 && all.v[i][strlen(out)] == '/') {
        in_out++;
        cr_expect_null(strchr(all.v[i] + strlen(out) + 1, '/'), "%s: in a subdirectory", all.v[i]);
      } else {
        /* The reference exports and the manifests are the test's. */
        const char *rest = all.v[i] + strlen(dir);
        cr_expect(strncmp(rest, "/out-", 5) == 0 || strncmp(rest, "/m-", 3) == 0 ||
                      strncmp(rest, "/refs/", 6) == 0,
                  "a file outside the output directory: %s", all.v[i]);
      }
    }
    wd_list_free(&all);
    cr_expect_eq(in_out, NODD + 1, "%s: %zu files for %zu tables", exts[e], in_out, NODD + 1);

    jv m;
    char *text;
    wd_manifest(man, &m, &text);
    cr_expect_eq(j_get(&m, "tasks")->n, NODD + 1, "%s: tasks in the manifest", exts[e]);
    for (size_t i = 0; i <= NODD; i++) {
      const char *tname = i < NODD ? odd_names[i] : "types";
      jv *task = wd_task_of_table(&m, schema, tname);
      cr_assert_not_null(task, "%s: no task for table %s in the manifest:\n%s", exts[e], tname,
                         text);
      cr_expect_str_eq(j_str(task, "status"), "ok", "%s", tname);
      jv *files = j_get(task, "files");
      cr_assert(files != NULL && files->t == J_ARR && files->n == 1, "%s: one file", tname);
      const char *fp = j_str(&files->items[0], "path");
      char realfile[PATH_MAX], dirbuf[PATH_MAX];
      cr_assert_not_null(realpath(fp, realfile), "%s: %s is not there", tname, fp);
      snprintf(dirbuf, sizeof dirbuf, "%s", realfile);
      cr_expect_str_eq(dirname(dirbuf), realout, "%s was written to %s", tname, realfile);
      wd_check_task_files(task);
      char ref[700];
      snprintf(ref, sizeof ref, "%s/refs/%s-%zu.%s", dir, exts[e], i, exts[e]);
      export_one(kind, schema, tname, ref);
      char what[300];
      snprintf(what, sizeof what, "%s table %s (%s)", kind_name(kind), tname, exts[e]);
      same_bytes(fp, ref, what);
    }
    j_free(&m);
    free(text);
  }
}

/* Two tables whose names could be made into one file name ('/' and '_')
 * must not overwrite each other: either both files are there, or the
 * export fails saying so. */
WD_TEST(names_made_safe_never_collide_silently, 120) {
  const char *schema = wd_schema(kind, "coll");
  char qs[200];
  wd_quote(kind, schema, qs, sizeof qs);
  /* '/' made into "%2F" must not meet a name that has "%2F" itself. */
  const char *names[] = {"a/b", "a_b", "a\\b", "a:b", "a%2Fb"};
  for (size_t i = 0; i < 5; i++) {
    char qt[64];
    wd_quote(kind, names[i], qt, sizeof qt);
    wd_exec(kind, "CREATE TABLE %s.%s (id int PRIMARY KEY)", qs, qt);
    wd_exec(kind, "INSERT INTO %s.%s VALUES (%zu)", qs, qt, i + 1);
  }
  char pat[300], to[600], out[400];
  snprintf(pat, sizeof pat, "%s.*", schema);
  under(out, sizeof out, "out");
  snprintf(to, sizeof to, "%s/{table}.csv", out);
  proc p;
  int code = wd_cli(&p, NULL, "export", "--from", dbt_dsn(kind), "--tables", pat, "--to", to, NULL);
  wd_list files;
  wd_files(dir, &files);
  if (code == 0) {
    cr_expect_eq(files.n, 5, "5 tables, %zu files:\n%s", files.n, p.err);
    wd_list ids = {0}, want = {0};
    for (size_t i = 0; i < files.n; i++) {
      char *h = NULL;
      cr_assert(wd_csv_lines(files.v[i], &h, &ids));
      free(h);
    }
    for (int i = 1; i <= 5; i++) {
      char v[16];
      snprintf(v, sizeof v, "%d", i);
      wd_list_add(&want, v, strlen(v));
    }
    cr_expect(wd_same_lines(&ids, &want, "the five tables' rows"));
    wd_list_free(&ids);
    wd_list_free(&want);
  } else {
    cr_log_info("the names collide: exit %d:\n%s", code, p.err);
    cr_expect_eq(code, 2, "a collision is a usage error found before anything runs");
    cr_expect(strstr(p.err, "a/b") != NULL && strstr(p.err, "a_b") != NULL,
              "the message names the tables:\n%s", p.err);
    cr_expect_eq(files.n, 0, "nothing is written");
  }
  wd_list_free(&files);
  proc_free(&p);
}

/* The first complete line of `text` that contains `needle`, into line. */
static bool event_line(const char *text, const char *needle, char *line, size_t len) {
  for (const char *l = text; *l;) {
    const char *nl = strchr(l, '\n');
    if (nl == NULL) return false;
    if (memmem(l, (size_t)(nl - l), needle, strlen(needle)) != NULL) {
      snprintf(line, len, "%.*s", (int)(nl - l), l);
      return true;
    }
    l = nl + 1;
  }
  return false;
}

/* ---- 5. a table dropped after the tables were found ---- */

/* The first task reads a view that waits for a lock the test holds, so
 * that the test can drop the second table for sure after the run found it
 * and before its task starts. */
WD_TEST(a_table_dropped_after_discovery_fails_alone, 120) {
  const char *schema = wd_schema(kind, "drop");
  char qs[200], lock[64];
  wd_quote(kind, schema, qs, sizeof qs);
  snprintf(lock, sizeof lock, "%s_gate", schema);
  long key = 424200000L + (long)getpid();
  if (kind == DBT_PG) {
    wd_exec(
        kind,
        "CREATE VIEW %s.a_gate AS SELECT 1 AS id FROM (SELECT pg_advisory_xact_lock_shared(%ld))"
        " l",
        qs, key);
    wd_exec(kind, "SELECT pg_advisory_lock(%ld)", key);
  } else {
    wd_exec(kind, "CREATE VIEW %s.a_gate AS SELECT GET_LOCK('%s', 110) AS id", qs, lock);
    char *got = wd_value(kind, "SELECT GET_LOCK('%s', 0)", lock);
    cr_assert_str_eq(got, "1");
    free(got);
  }
  const char *fill = kind == DBT_PG ? "INSERT INTO %s.%s SELECT g FROM generate_series(1, 500) g"
                                    : "INSERT INTO %s.%s SELECT seq FROM seq_1_to_500";
  wd_exec(kind, "CREATE TABLE %s.b_gone (id int PRIMARY KEY)", qs);
  wd_exec(kind, "CREATE TABLE %s.c_kept (id int PRIMARY KEY)", qs);
  wd_exec(kind, fill, qs, "b_gone");
  wd_exec(kind, fill, qs, "c_kept");

  char pat[300], to[600], out[400], man[400];
  snprintf(pat, sizeof pat, "%s.*", schema);
  under(out, sizeof out, "out");
  snprintf(to, sizeof to, "%s/{table}.csv", out);
  snprintf(man, sizeof man, "%s/manifest.json", dir);
  const char *argv[] = {"export",     "--from", dbt_dsn(kind),  "--tables", pat,    "--views",
                        "--pool",     "1",      "--retries",    "0",        "--to", to,
                        "--manifest", man,      "--log-format", "json",     NULL};
  proc p;
  proc_start(&p, NULL, false, argv);
  /* Wait for the first task to start: it must be the gate's. */
  uint64_t deadline = now_ms() + 60000;
  bool started = false;
  char line[2048];
  while (!started && now_ms() < deadline && proc_pump(&p, 100)) {
    if (!event_line(p.err, "\"task_started\"", line, sizeof line)) continue;
    cr_assert_not_null(strstr(line, "a_gate"),
                       "the first task to start is not the gate's (tables in another order?): %s",
                       line);
    started = true;
  }
  char err[1024] = "";
  int drop_rc = -1;
  if (started) {
    while (now_ms() < deadline &&
           (kind == DBT_PG ? pg_running("a_gate") : my_running("a_gate")) == 0)
      proc_pump(&p, 50);
    /* A lock the export holds on the table would make the drop wait for
     * the gate, and the gate for the drop: give up rather than hang. */
    if (kind == DBT_PG) {
      wd_exec(kind, "SET lock_timeout = '20s'");
    } else {
      wd_exec(kind, "SET SESSION lock_wait_timeout = 20");
    }
    drop_rc = wd_try_exec(kind, err, sizeof err, "DROP TABLE %s.b_gone", qs);
  }
  if (kind == DBT_PG) {
    wd_exec(kind, "SELECT pg_advisory_unlock(%ld)", key);
  } else {
    free(wd_value(kind, "SELECT RELEASE_LOCK('%s')", lock));
  }
  int code = proc_wait(&p, 60000);
  cr_log_info("dbpipe exited %d\n--- stderr:\n%s", code, p.err);
  cr_assert(started, "the gate's task never started:\n%s", p.err);
  cr_assert_eq(drop_rc, 0, "DROP TABLE b_gone during the export: %s", err);

  cr_expect_eq(code, 1, "a failed task exits 1");
  cr_expect(exists("%s/a_gate.csv", out), "the view's file");
  cr_expect(exists("%s/c_kept.csv", out), "the table after the dropped one is written");
  cr_expect_not(exists("%s/b_gone.csv", out), "no file for the dropped table");
  wd_list files;
  wd_files(dir, &files);
  cr_expect_not(has_part_file(&files), "a .part file was left behind");
  wd_list_free(&files);
  bool named =
      event_line(p.err, "\"task_failed\"", line, sizeof line) && strstr(line, "b_gone") != NULL;
  cr_expect(named, "a task_failed event names b_gone:\n%s", p.err);
  proc_free(&p);

  jv m;
  char *text;
  wd_manifest(man, &m, &text);
  cr_expect_str_eq(j_str(&m, "status"), "failed");
  jv *gone = wd_task_of_table(&m, schema, "b_gone");
  jv *kept = wd_task_of_table(&m, schema, "c_kept");
  cr_assert_not_null(gone, "the dropped table's task is in the manifest:\n%s", text);
  cr_assert_not_null(kept, "the other table's task is in the manifest:\n%s", text);
  cr_expect_str_eq(j_str(gone, "status"), "failed");
  const char *why = j_str(gone, "error");
  cr_expect(why != NULL && strstr(why, "b_gone") != NULL, "the error names the table: %s",
            why ? why : "(none)");
  cr_expect_str_eq(j_str(kept, "status"), "ok");
  cr_expect_eq((uint64_t)j_num(kept, "rows"), 500);
  wd_check_task_files(kept);
  j_free(&m);
  free(text);
}

/* ---- 6. the manifest: snapshot, parts, files ---- */

/* PostgreSQL WAL positions "X/Y" as numbers. */
static uint64_t lsn(const char *s) {
  unsigned long hi = 0, lo = 0;
  cr_assert_eq(sscanf(s, "%lx/%lx", &hi, &lo), 2, "not a WAL position: %s", s);
  return ((uint64_t)hi << 32) | lo;
}

static bool snapshot_id_shape(const char *s) {
  /* 00000003-0000001B-1 */
  size_t a = strspn(s, "0123456789ABCDEF");
  if (a == 0 || s[a] != '-') return false;
  s += a + 1;
  size_t b = strspn(s, "0123456789ABCDEF");
  if (b == 0 || s[b] != '-') return false;
  s += b + 1;
  return *s && strspn(s, "0123456789") == strlen(s);
}

/* Checks the parts of a split task: numbered 1..n, rows adding up to the
 * task's; with {part} files, one file per part with the same rows and
 * checksum. */
static void check_parts(jv *task, bool part_files) {
  jv *parts = j_get(task, "parts");
  cr_assert(parts != NULL && parts->t == J_ARR, "task %s has no parts", j_str(task, "name"));
  cr_expect_gt(parts->n, 1, "the task is split");
  uint64_t rows = 0;
  jv *files = j_get(task, "files");
  for (size_t i = 0; i < parts->n; i++) {
    jv *pt = &parts->items[i];
    cr_expect_eq((size_t)j_num(pt, "part"), i + 1);
    const char *range = j_str(pt, "range");
    cr_expect(range != NULL && *range, "part %zu has a range", i + 1);
    rows += (uint64_t)j_num(pt, "rows");
    if (part_files && files != NULL && i < files->n) {
      cr_expect_eq((uint64_t)j_num(pt, "rows"), (uint64_t)j_num(&files->items[i], "rows"));
      const char *a = j_str(pt, "sha256"), *b = j_str(&files->items[i], "sha256");
      cr_expect(a != NULL && b != NULL && strcmp(a, b) == 0, "part %zu: checksum of its file",
                i + 1);
    }
  }
  cr_expect_eq(rows, (uint64_t)j_num(task, "rows"), "the parts' rows add up to the task's");
  if (part_files) cr_expect_eq(files->n, parts->n, "one file per part");
}

WD_TEST(manifest_records_the_snapshot_parts_and_files, 120) {
  /* MariaDB: the fixture's server without TLS writes a binary log, so its
   * snapshot has a position to record. */
  const char *dsn = kind == DBT_PG ? dbt_pg_dsn() : dbt_my_notls_dsn();
  char schema[64], sql[1200], err[1024];
  snprintf(schema, sizeof schema, "dbpwd_%ld_man", (long)getpid());
  if (kind == DBT_PG) {
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
             " CREATE TABLE %s.big (id int PRIMARY KEY, v text);"
             " INSERT INTO %s.big SELECT g, 'v' || g FROM generate_series(1, 5000) g;"
             " CREATE TABLE %s.small (id int PRIMARY KEY); INSERT INTO %s.small VALUES (1), (2);"
             " ANALYZE %s.big",
             schema, schema, schema, schema, schema, schema, schema);
    cr_assert_eq(wd_exec_dsn(dsn, err, sizeof err, sql), 0, "%s", err);
  } else {
    const char *steps[] = {"DROP DATABASE IF EXISTS %s",
                           "CREATE DATABASE %s",
                           "CREATE TABLE %s.big (id int PRIMARY KEY, v varchar(20)) ENGINE=InnoDB",
                           "INSERT INTO %s.big SELECT seq, CONCAT('v', seq) FROM seq_1_to_5000",
                           "CREATE TABLE %s.small (id int PRIMARY KEY) ENGINE=InnoDB",
                           "INSERT INTO %s.small VALUES (1), (2)"};
    for (size_t i = 0; i < 6; i++) {
      snprintf(sql, sizeof sql, steps[i], schema);
      cr_assert_eq(wd_exec_dsn(dsn, err, sizeof err, sql), 0, "%s: %s", sql, err);
    }
  }
  const char *pos_sql =
      kind == DBT_PG ? "SELECT pg_current_wal_lsn()::text" : "SELECT @@GLOBAL.gtid_binlog_pos";
  char *before = wd_value_dsn(dsn, pos_sql);

  char pat[300], to[600], man[400];
  snprintf(pat, sizeof pat, "%s.*", schema);
  snprintf(to, sizeof to, "%s/out/{table}.{part}.csv", dir);
  snprintf(man, sizeof man, "%s/manifest.json", dir);
  proc p;
  int code = wd_cli(&p, NULL, "export", "--from", dsn, "--tables", pat, "--partitions", "4",
                    "--pool", "4", "--to", to, "--manifest", man, NULL);
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  proc_free(&p);
  char *after = wd_value_dsn(dsn, pos_sql);

  jv m;
  char *text;
  wd_manifest(man, &m, &text);
  cr_log_info("%s", text);
  cr_expect_str_eq(j_str(&m, "status"), "ok");
  jv *dbs = j_get(&m, "databases");
  cr_assert(dbs != NULL && dbs->t == J_ARR && dbs->n == 1, "one database:\n%s", text);
  jv *db = &dbs->items[0];
  cr_expect_not_null(j_str(db, "connection"));
  cr_expect_str_eq(j_str(db, "kind"), kind_name(kind));
  jv *snap = j_get(db, "snapshot");
  cr_assert(snap != NULL && snap->t == J_OBJ, "a snapshot object:\n%s", text);
  cr_expect_not_null(j_str(snap, "mode"));
  cr_expect_geq(j_num(snap, "workers"), 1);
  cr_expect_geq(j_num(snap, "lock_ms"), 0);
  const char *id = j_str(snap, "id"), *pos = j_str(snap, "position");
  cr_assert(pos != NULL, "the position is a string:\n%s", text);
  if (kind == DBT_PG) {
    cr_assert_not_null(id, "PostgreSQL: a snapshot id:\n%s", text);
    cr_expect(snapshot_id_shape(id), "a snapshot id: %s", id);
    uint64_t lo = lsn(before), hi = lsn(after), at = lsn(pos);
    cr_expect(lo <= at && at <= hi, "position %s between %s and %s", pos, before, after);
  } else {
    cr_expect(id == NULL || *id == '\0', "MariaDB has no snapshot id: %s", id);
    cr_expect_str_eq(before, after, "nothing else wrote to the server meanwhile");
    cr_expect_str_eq(pos, before, "the GTID position");
    const char *file = j_str(snap, "binlog_file");
    cr_expect(file != NULL && strncmp(file, "binlog.", 7) == 0, "binlog file %s",
              file ? file : "(none)");
    cr_expect_gt(j_num(snap, "binlog_pos"), 0);
  }

  jv *big = wd_task_of_table(&m, schema, "big");
  jv *small = wd_task_of_table(&m, schema, "small");
  cr_assert(big != NULL && small != NULL, "tasks for both tables:\n%s", text);
  cr_expect_eq((uint64_t)j_num(big, "rows"), 5000);
  cr_expect_eq((uint64_t)j_num(small, "rows"), 2);
  check_parts(big, true);
  wd_check_task_files(big);
  wd_check_task_files(small);
  jv *plans = j_get(&m, "plans");
  cr_expect(plans != NULL && (plans->t == J_ARR || plans->t == J_OBJ), "a plans entry:\n%s", text);
  j_free(&m);
  free(text);

  /* One file: the parts concatenated, their rows still recorded. */
  snprintf(to, sizeof to, "%s/one/{table}.csv", dir);
  snprintf(man, sizeof man, "%s/manifest-one.json", dir);
  code = wd_cli(&p, NULL, "export", "--from", dsn, "--tables", pat, "--partitions", "4", "--pool",
                "4", "--to", to, "--manifest", man, NULL);
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  proc_free(&p);
  wd_manifest(man, &m, &text);
  big = wd_task_of_table(&m, schema, "big");
  cr_assert_not_null(big, "%s", text);
  check_parts(big, false);
  wd_check_task_files(big);
  cr_expect_eq(j_get(big, "files")->n, 1);
  j_free(&m);
  free(text);

  /* Without a snapshot the manifest says so. */
  snprintf(man, sizeof man, "%s/manifest-none.json", dir);
  snprintf(to, sizeof to, "%s/none/{table}.csv", dir);
  code = wd_cli(&p, NULL, "export", "--from", dsn, "--tables", pat, "--snapshot", "none", "--to",
                to, "--manifest", man, NULL);
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  proc_free(&p);
  wd_manifest(man, &m, &text);
  dbs = j_get(&m, "databases");
  cr_assert(dbs != NULL && dbs->t == J_ARR && dbs->n == 1, "%s", text);
  snap = j_get(&dbs->items[0], "snapshot");
  cr_expect(snap != NULL && snap->t == J_NULL, "--snapshot none: snapshot null:\n%s", text);
  j_free(&m);
  free(text);

  free(before);
  free(after);
  snprintf(sql, sizeof sql,
           kind == DBT_PG ? "DROP SCHEMA %s CASCADE" : "DROP DATABASE IF EXISTS %s", schema);
  (void)wd_exec_dsn(dsn, err, sizeof err, sql);
}

/* A job file with the same keys: tables from both databases in one run,
 * one snapshot each, recorded per connection in the manifest. */
Test(wholedb_pg, job_file_tables_of_both_databases, .timeout = 120) {
  const char *ps = wd_schema(DBT_PG, "job");
  const char *ms = wd_schema(DBT_MY, "job");
  static const char *const pg_sql[] = {
      "CREATE TABLE {S}.t1 (id int PRIMARY KEY, v text)",
      "INSERT INTO {S}.t1 SELECT g, 'v' || g FROM generate_series(1, 3000) g",
      "CREATE TABLE {S}.t2 (id int PRIMARY KEY)",
      "INSERT INTO {S}.t2 VALUES (1), (2), (3)",
      "CREATE TABLE {S}.skip (id int PRIMARY KEY)",
      NULL};
  static const char *const my_sql[] = {
      "CREATE TABLE {S}.t1 (id int PRIMARY KEY, v varchar(20)) ENGINE=InnoDB",
      "INSERT INTO {S}.t1 SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000",
      "CREATE TABLE {S}.t2 (id int PRIMARY KEY) ENGINE=InnoDB",
      "INSERT INTO {S}.t2 VALUES (1), (2), (3)",
      "CREATE TABLE {S}.skip (id int PRIMARY KEY) ENGINE=InnoDB",
      NULL};
  exec_all(DBT_PG, ps, pg_sql);
  exec_all(DBT_MY, ms, my_sql);
  char job[400], man[400];
  snprintf(job, sizeof job, "%s/job.yaml", dir);
  snprintf(man, sizeof man, "%s/job.manifest.json", dir);
  write_file(job,
             "connections:\n"
             "  pg: ${DBPIPE_PG_DSN}\n"
             "  my:\n"
             "    dsn: ${DBPIPE_MY_DSN}\n"
             "    pool: 3\n"
             "snapshot: on\n"
             "manifest: %s\n"
             "tasks:\n"
             "  - name: pgt\n"
             "    from: pg\n"
             "    tables: [%s.t1, %s.t2, %s.skip]\n"
             "    exclude: %s.skip\n"
             "    partitions: 3\n"
             "    to: %s/out/pg/{table}.{part}.csv\n"
             "  - name: myt\n"
             "    from: my\n"
             "    tables: '%s.*'\n"
             "    exclude: [%s.skip]\n"
             "    chunk_rows: 1000\n"
             "    partition_by: id\n"
             "    to: %s/out/my/{table}.csv\n",
             man, ps, ps, ps, ps, dir, ms, ms, dir);
  proc p;
  int code = wd_cli(&p, NULL, "run", job, NULL);
  cr_expect_eq(code, 0, "exit %d:\n%s", code, p.err);
  proc_free(&p);
  jv m;
  char *text;
  wd_manifest(man, &m, &text);
  cr_log_info("%s", text);
  jv *dbs = j_get(&m, "databases");
  cr_assert(dbs != NULL && dbs->t == J_ARR && dbs->n == 2, "two databases:\n%s", text);
  for (size_t i = 0; i < 2; i++) {
    jv *snap = j_get(&dbs->items[i], "snapshot");
    cr_expect(snap != NULL && snap->t == J_OBJ, "database %zu has a snapshot", i);
  }
  const char *schemas[2] = {ps, ms};
  for (int k = 0; k < 2; k++) {
    jv *t1 = wd_task_of_table(&m, schemas[k], "t1");
    jv *t2 = wd_task_of_table(&m, schemas[k], "t2");
    cr_assert(t1 != NULL && t2 != NULL, "tasks of %s:\n%s", schemas[k], text);
    cr_expect_null(wd_task_of_table(&m, schemas[k], "skip"), "exclude: left skip in");
    cr_expect_eq((uint64_t)j_num(t1, "rows"), 3000);
    cr_expect_eq((uint64_t)j_num(t2, "rows"), 3);
    check_parts(t1, k == 0);
    wd_check_task_files(t1);
    wd_check_task_files(t2);
  }
  cr_expect(exists("%s/out/my/t1.csv", dir));
  cr_expect(exists("%s/out/pg/t1.00001.csv", dir));
  j_free(&m);
  free(text);
}
