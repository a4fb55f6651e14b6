/* dbp_plan_split against real servers: one body per table shape, run on
 * PostgreSQL (suite plan_pg) and MariaDB (suite plan_my).
 *
 * Each test makes a schema of its own (MariaDB: a database; the fixture
 * user may make those named dbpplan_*), named after the process, and drops
 * it at the end whatever the body did. The central check, split_check,
 * plans a table with several options (partitions 1, 3, 7 and chunk_rows),
 * runs every part's SQL and compares the rows read, as sorted row texts,
 * with the table's own: none missing, none read twice. For a unique key
 * it also checks that every part but the last holds exactly `step` rows.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

typedef struct dialect {
  dbp_db_kind kind;
  const char *(*dsn)(void);
  char q;
  const char *create, *drop;
} dialect;

static const char *pg_dsn(void) {
  return dbt_pg_dsn();
}

static const char *my_dsn(void) {
  return dbt_my_dsn();
}

static const dialect PG = {DBP_DB_PG, pg_dsn, '"', "CREATE SCHEMA {S}",
                           "DROP SCHEMA IF EXISTS {S} CASCADE"};
static const dialect MY = {DBP_DB_MYSQL, my_dsn, '`',
                           "CREATE DATABASE {S} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                           "DROP DATABASE IF EXISTS {S}"};

typedef struct ctx {
  const dialect *d;
  dbp_conn *c;
  bool pg;
  char s[64];  /* the schema */
  char qs[80]; /* quoted */
} ctx;

/* ---- helpers ---- */

static void quote(char *out, size_t len, char q, const char *name) {
  size_t o = 0;
  out[o++] = q;
  for (const char *s = name; *s && o + 3 < len; s++) {
    if (*s == q) out[o++] = q;
    out[o++] = *s;
  }
  out[o++] = q;
  out[o] = '\0';
}

/* Runs tmpl with {S} replaced by the quoted schema. */
static int run(ctx *x, const char *tmpl) {
  dbp_buf b = {0};
  for (const char *s = tmpl; *s;) {
    if (strncmp(s, "{S}", 3) == 0) {
      dbp_buf_puts(&b, x->qs);
      s += 3;
    } else {
      dbp_buf_append(&b, s++, 1);
    }
  }
  int rc = dbp_exec(x->c, b.data, 0, NULL, 60000, NULL);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "%s: %s", b.data, dbp_dberr_format(dbp_conn_error(x->c), m, sizeof m));
  }
  dbp_buf_free(&b);
  return rc;
}

/* Runs the statements of pg or my (NULL-terminated) by dialect. */
static int setup(ctx *x, const char *const *pg, const char *const *my) {
  for (const char *const *s = x->pg ? pg : my; *s; s++)
    if (run(x, *s) != 0) return -1;
  return 0;
}

/* The catalog's account of table `name` of the test's schema (one table). */
static int info(ctx *x, const char *name, dbp_table_list *l) {
  char qn[160], pat[256];
  quote(qn, sizeof qn, '"', name);
  char qsch[80];
  quote(qsch, sizeof qsch, '"', x->s);
  snprintf(pat, sizeof pat, "%s.%s", qsch, qn);
  const char *p = pat;
  dbp_table_filter f = {.include = &p, .ninclude = 1, .views = true};
  CHECK_RC(x->c, dbp_list_tables(x->c, &f, 30000, l), 0);
  CHECK(l->n == 1);
  return 0;
}

typedef struct rows {
  char **v;
  size_t n, cap;
} rows;

static void rows_free(rows *r) {
  for (size_t i = 0; i < r->n; i++) free(r->v[i]);
  free(r->v);
  *r = (rows){0};
}

static int by_text(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends every row of sql to r as one text (values joined by 0x1f, NULL
 * as \N, bytes in hex); *count gets the number read. */
static int read_rows(ctx *x, const char *sql, rows *r, size_t *count) {
  CHECK_RC(x->c, dbp_query(x->c, sql, 0, NULL, 60000), 0);
  const dbp_column *cols = dbp_columns(x->c);
  dbp_row row;
  int rc;
  size_t n = 0;
  while ((rc = dbp_fetch(x->c, &row)) > 0) {
    dbp_buf b = {0};
    for (size_t i = 0; i < row.ncols; i++) {
      if (i > 0) dbp_buf_append(&b, "\x1f", 1);
      if (row.vals[i] == NULL) {
        dbp_buf_puts(&b, "\\N");
      } else if (cols[i].type == DBP_T_BYTES) {
        for (size_t k = 0; k < row.lens[i]; k++)
          dbp_buf_printf(&b, "%02x", (unsigned char)row.vals[i][k]);
      } else {
        dbp_buf_append(&b, row.vals[i], row.lens[i]);
      }
    }
    if (b.data == NULL) dbp_buf_puts(&b, "");
    if (r->n == r->cap) {
      r->cap = r->cap ? 2 * r->cap : 1024;
      r->v = realloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = b.data;
    n++;
  }
  CHECK_RC(x->c, rc, 0);
  if (count != NULL) *count = n;
  return 0;
}

/* How to check a plan's parts. */
typedef struct want {
  dbp_split_method method;
  bool exact;         /* unique key: every part but the last holds `step` rows */
  bool even;          /* no range part above 2 * step */
  bool null_part;     /* a part of NULL keys when split in more than one */
  const char *where;  /* the filter */
  const char *before; /* a statement run before planning */
  const char *grow;   /* a statement run after planning, before reading */
} want;

/* Plans `name` with o, reads every part and compares with the table. */
static int split_once(ctx *x, const dbp_table_info *t, const dbp_split_options *o, const want *w) {
  if (w->before != NULL && run(x, w->before) != 0) return -1;
  dbp_plan_table pt;
  dbp_dberr err;
  int rc = dbp_plan_split(x->c, t, o, 60000, &pt, &err);
  cr_expect_eq(rc, 0, "plan %s (partitions %zu, chunk %llu): %s: %s", t->name, o->partitions,
               (unsigned long long)o->chunk_rows, dbp_err_name(rc), err.message);
  if (rc != 0) return -1;
  char label[200];
  snprintf(label, sizeof label, "%s (partitions %zu, chunk_rows %llu, where %s)", t->name,
           o->partitions, (unsigned long long)o->chunk_rows, w->where ? w->where : "-");
  int res = 0;
  rows got = {0}, all = {0};
  size_t *sizes = calloc(pt.nparts, sizeof *sizes);
  bool split = o->partitions > 1 || o->chunk_rows > 0;
  dbp_split_method m = split ? w->method : DBP_SPLIT_NONE;
  cr_expect_eq(pt.method, m, "%s: method %s", label, dbp_split_method_name(pt.method));
  if (pt.method != m) res = -1;
  if (res == 0 && w->grow != NULL) res = run(x, w->grow);
  for (size_t i = 0; res == 0 && i < pt.nparts; i++) {
    char *sql = dbp_plan_part_sql(&pt, i, w->where);
    res = read_rows(x, sql, &got, &sizes[i]);
    if (res != 0) cr_expect(0, "%s: part %zu: %s", label, i, sql);
    free(sql);
  }
  if (res == 0) {
    dbp_buf sql = {0};
    dbp_buf_printf(&sql, "SELECT * FROM %s", t->qualified);
    if (w->where) dbp_buf_printf(&sql, " WHERE %s", w->where);
    res = read_rows(x, sql.data, &all, NULL);
    dbp_buf_free(&sql);
  }
  if (res == 0) {
    if (got.n > 1) qsort(got.v, got.n, sizeof *got.v, by_text);
    if (all.n > 1) qsort(all.v, all.n, sizeof *all.v, by_text);
    size_t i = 0;
    while (i < got.n && i < all.n && strcmp(got.v[i], all.v[i]) == 0) i++;
    cr_expect(got.n == all.n && i == got.n,
              "%s: the parts read %zu rows, the table holds %zu; first difference at %zu: "
              "part row \"%s\", table row \"%s\"",
              label, got.n, all.n, i, i < got.n ? got.v[i] : "(none)",
              i < all.n ? all.v[i] : "(none)");
    if (got.n != all.n || i != got.n) res = -1;
  }
  /* Sizes: about equal parts. */
  uint64_t step = o->chunk_rows;
  /* Without a count (a nearly dense key sized from the catalog's estimate)
   * the parts are as even as the table's own rows make them. */
  uint64_t counted = pt.rows_counted > 0 ? (uint64_t)pt.rows_counted : (uint64_t)all.n;
  if (o->partitions > 1 && counted > 0)
    step = counted / o->partitions + (counted % o->partitions != 0);
  size_t nrange = pt.nparts;
  bool has_null = pt.nparts > 1 && pt.parts[pt.nparts - 1].null_key;
  if (has_null) nrange--;
  if (res == 0 && pt.method == DBP_SPLIT_KEY && split && w->null_part && pt.nparts > 1) {
    cr_expect(has_null, "%s: no part of NULL keys", label);
    if (!has_null) res = -1;
  }
  for (size_t i = 0; res == 0 && pt.method == DBP_SPLIT_KEY && step > 0 && i < nrange; i++) {
    if (w->exact && i + 1 < nrange && sizes[i] != step) {
      cr_expect(0, "%s: part %zu holds %zu rows, not %llu", label, i, sizes[i],
                (unsigned long long)step);
      res = -1;
    }
    if (w->even && sizes[i] > 2 * step) {
      cr_expect(0, "%s: part %zu holds %zu rows, over twice %llu", label, i, sizes[i],
                (unsigned long long)step);
      res = -1;
    }
  }
  if (res == 0 && w->exact && pt.method == DBP_SPLIT_KEY && step > 0 && all.n > 0) {
    size_t want_parts = (all.n + step - 1) / step;
    cr_expect_eq(nrange, want_parts, "%s: %zu parts, wanted %zu", label, nrange, want_parts);
    if (nrange != want_parts) res = -1;
  }
  if (res == 0 && o->partitions > 1 && pt.method != DBP_SPLIT_NONE) {
    cr_expect(nrange <= o->partitions, "%s: %zu parts for %zu partitions", label, nrange,
              o->partitions);
    if (nrange > o->partitions) res = -1;
  }
  /* The plan read back from JSON makes the same statements. */
  if (res == 0) {
    dbp_plan plan = {.kind = pt.kind, .ntables = 1, .tables = &pt};
    dbp_buf json = {0};
    dbp_plan back;
    char jerr[512];
    CHECK(dbp_plan_to_json(&plan, &json) == 0);
    rc = dbp_plan_from_json(json.data, json.len, &back, jerr, sizeof jerr);
    cr_expect_eq(rc, 0, "%s: %s", label, jerr);
    for (size_t i = 0; rc == 0 && i < pt.nparts; i++) {
      char *a = dbp_plan_part_sql(&pt, i, w->where),
           *b = dbp_plan_part_sql(&back.tables[0], i, w->where);
      cr_expect_str_eq(a, b, "%s part %zu", label, i);
      if (strcmp(a, b) != 0) res = -1;
      free(a);
      free(b);
    }
    if (rc != 0) res = -1;
    if (rc == 0) dbp_plan_free(&back);
    dbp_buf_free(&json);
  }
  for (size_t i = 0; i < pt.nparts; i++) {
    char *d = dbp_plan_part_describe(&pt, i);
    cr_log_info("%s: part %zu: %s: %zu rows (estimate %lld)", label, i, d, sizes[i],
                (long long)pt.parts[i].rows_estimate);
    free(d);
  }
  free(sizes);
  rows_free(&got);
  rows_free(&all);
  dbp_plan_table_free(&pt);
  return res;
}

/* split_once with partitions 1, 3, 7 and chunk_rows `chunk`, on `column`
 * (NULL: the primary key). */
static int split_check(ctx *x, const char *name, const char *column, uint64_t chunk,
                       const want *w) {
  dbp_table_list l;
  if (info(x, name, &l) != 0) return -1;
  static const size_t parts[] = {1, 3, 7};
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < 3; i++) {
    dbp_split_options o = {.column = column, .partitions = parts[i], .where = w->where};
    rc = split_once(x, &l.tables[0], &o, w);
  }
  if (rc == 0) {
    dbp_split_options o = {.column = column, .chunk_rows = chunk, .where = w->where};
    rc = split_once(x, &l.tables[0], &o, w);
  }
  dbp_table_list_free(&l);
  return rc;
}

/* ---- the frame ---- */

typedef int (*body_fn)(ctx *x);

typedef struct frame {
  const dialect *d;
  body_fn body;
} frame;

static int frame_run(dbp_rt *rt, void *arg) {
  frame *fr = arg;
  ctx x = {.d = fr->d, .pg = fr->d->kind == DBP_DB_PG};
  snprintf(x.s, sizeof x.s, "dbpplan_%ld", (long)getpid());
  quote(x.qs, sizeof x.qs, x.d->q, x.s);
  dbp_dberr err;
  int rc = dbp_conn_open(rt, x.d->dsn(), 10000, &x.c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
    return rc;
  }
  rc = run(&x, x.d->drop);
  if (rc == 0) rc = run(&x, x.d->create);
  if (rc == 0) rc = fr->body(&x);
  if (dbp_conn_is_broken(x.c)) {
    dbp_conn_close(x.c);
    x.c = NULL;
    if (dbp_conn_open(rt, x.d->dsn(), 10000, &x.c, &err) != 0) return -1;
  }
  dbp_query_close(x.c);
  run(&x, x.d->drop);
  dbp_conn_close(x.c);
  return rc;
}

#define PLAN_TEST(name, secs)            \
  static int name##_body(ctx *x);        \
  Test(plan_pg, name, .timeout = secs) { \
    frame fr = {&PG, name##_body};       \
    dbt_run(frame_run, &fr);             \
  }                                      \
  Test(plan_my, name, .timeout = secs) { \
    frame fr = {&MY, name##_body};       \
    dbt_run(frame_run, &fr);             \
  }                                      \
  static int name##_body(ctx *x)

#define END NULL

static const want UNIQUE = {.method = DBP_SPLIT_KEY, .exact = true, .even = true};

/* ---- the tests ---- */

PLAN_TEST(even_integers, 120) {
  const char *pg[] = {"CREATE TABLE {S}.even (id int PRIMARY KEY, v text)",
                      "INSERT INTO {S}.even SELECT g, 'v' || g FROM generate_series(1, 10000) g",
                      END};
  const char *my[] = {"CREATE TABLE {S}.even (id int PRIMARY KEY, v text)",
                      "INSERT INTO {S}.even SELECT seq, CONCAT('v', seq) FROM seq_1_to_10000", END};
  if (setup(x, pg, my) != 0) return -1;
  if (split_check(x, "even", NULL, 1500, &UNIQUE) != 0) return -1;
  /* "auto" is the primary key too; a filter is applied to the count, the
   * walk and the parts alike. */
  want w = UNIQUE;
  w.where = "id % 3 <> 0 AND v <> 'v77'";
  if (split_check(x, "even", "auto", 999, &w) != 0) return -1;
  /* Rows added after planning are read too: the first and last parts are
   * open. */
  w = UNIQUE;
  w.exact = w.even = false;
  w.grow =
      "INSERT INTO {S}.even SELECT min(id) - 1, 'low' FROM {S}.even"
      " UNION ALL SELECT max(id) + 1000, 'high' FROM {S}.even";
  return split_check(x, "even", NULL, 2000, &w);
}

/* An analysed table whose integer key fills its span: the catalog's
 * estimate says so, and the parts are equal ranges with no count taken
 * (rows_counted stays -1) yet hold exactly the rows; one whose key is
 * sparse is counted and walked as ever. */
PLAN_TEST(a_nearly_dense_key_needs_no_count, 120) {
  const char *pg[] = {"CREATE TABLE {S}.dense (id int PRIMARY KEY, v text)",
                      "INSERT INTO {S}.dense SELECT g, 'v' || g FROM generate_series(1, 20000) g",
                      "CREATE TABLE {S}.gappy (id int PRIMARY KEY)",
                      "INSERT INTO {S}.gappy SELECT g * 3 FROM generate_series(1, 20000) g",
                      "ANALYZE {S}.dense",
                      "ANALYZE {S}.gappy",
                      END};
  const char *my[] = {"CREATE TABLE {S}.dense (id int PRIMARY KEY, v text)",
                      "INSERT INTO {S}.dense SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000",
                      "CREATE TABLE {S}.gappy (id int PRIMARY KEY)",
                      "INSERT INTO {S}.gappy SELECT seq * 3 FROM seq_1_to_20000",
                      "ANALYZE TABLE {S}.dense",
                      "ANALYZE TABLE {S}.gappy",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  dbp_table_list l;
  if (info(x, "dense", &l) != 0) return -1;
  int64_t est = l.tables[0].rows_estimate;
  dbp_split_options o = {.partitions = 4};
  dbp_plan_table pt;
  dbp_dberr err;
  int rc = dbp_plan_split(x->c, &l.tables[0], &o, 30000, &pt, &err);
  CHECK(rc == 0);
  /* MariaDB's InnoDB estimate is a sample: within 5% it takes the ranges. */
  bool close = est >= 19000 && est <= 21000;
  if (close) {
    CHECK(pt.rows_counted == -1);
    CHECK(pt.nparts == 4);
    CHECK(pt.parts[1].lo != NULL && strcmp(pt.parts[1].lo[0], "5001") == 0);
  }
  dbp_plan_table_free(&pt);
  if (split_once(x, &l.tables[0], &o, &UNIQUE) != 0) rc = -1;
  dbp_table_list_free(&l);
  /* PostgreSQL's ANALYZE reads every row of so small a table; InnoDB's
   * estimate comes from a few sampled pages, and may miss by more. */
  if (x->pg) CHECK(close);
  if (info(x, "gappy", &l) != 0) return -1;
  rc = dbp_plan_split(x->c, &l.tables[0], &o, 30000, &pt, &err);
  CHECK(rc == 0);
  CHECK(pt.rows_counted == 20000);
  dbp_plan_table_free(&pt);
  rc = split_once(x, &l.tables[0], &o, &UNIQUE);
  dbp_table_list_free(&l);
  return rc;
}

PLAN_TEST(skewed_integers, 120) {
  const char *pg[] = {"CREATE TABLE {S}.skew (id bigint PRIMARY KEY)",
                      "INSERT INTO {S}.skew SELECT 5000000000 + g FROM generate_series(1, 9000) g",
                      "INSERT INTO {S}.skew SELECT g * 1000000 FROM generate_series(1, 1000) g",
                      END};
  const char *my[] = {"CREATE TABLE {S}.skew (id bigint PRIMARY KEY)",
                      "INSERT INTO {S}.skew SELECT 5000000000 + seq FROM seq_1_to_9000",
                      "INSERT INTO {S}.skew SELECT seq * 1000000 FROM seq_1_to_1000", END};
  if (setup(x, pg, my) != 0) return -1;
  return split_check(x, "skew", NULL, 1234, &UNIQUE);
}

PLAN_TEST(sparse_integers, 120) {
  const char *pg[] = {"CREATE TABLE {S}.sparse (id bigint PRIMARY KEY, g int)",
                      "INSERT INTO {S}.sparse SELECT g::int8 * g * g * g * g * g, g"
                      " FROM generate_series(1, 600) g",
                      END};
  const char *my[] = {"CREATE TABLE {S}.sparse (id bigint PRIMARY KEY, g int)",
                      "INSERT INTO {S}.sparse SELECT seq * seq * seq * seq * seq * seq, seq"
                      " FROM seq_1_to_600",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  if (split_check(x, "sparse", NULL, 50, &UNIQUE) != 0) return -1;
  /* As many parts as can be: one row each. */
  dbp_table_list l;
  if (info(x, "sparse", &l) != 0) return -1;
  dbp_split_options o = {.partitions = SIZE_MAX};
  int rc = split_once(x, &l.tables[0], &o, &UNIQUE);
  dbp_table_list_free(&l);
  return rc;
}

PLAN_TEST(bigint_near_the_ends, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.big (id bigint PRIMARY KEY)",
      "INSERT INTO {S}.big SELECT 9223372036854775807 - g FROM generate_series(0, 999) g",
      "INSERT INTO {S}.big SELECT -9223372036854775807 - 1 + g"
      " FROM generate_series(0, 999) g",
      END};
  const char *my[] = {"CREATE TABLE {S}.big (id bigint PRIMARY KEY)",
                      "INSERT INTO {S}.big SELECT 9223372036854775807 - seq FROM seq_0_to_999",
                      "INSERT INTO {S}.big SELECT CAST(seq AS SIGNED) - 9223372036854775807 - 1"
                      " FROM seq_0_to_999",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  return split_check(x, "big", NULL, 333, &UNIQUE);
}

/* A chosen column that holds NULLs and repeats values: the NULL rows get a
 * part of their own, the ranges leave them out. */
PLAN_TEST(nullable_column, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.nul (id int PRIMARY KEY, v int)",
      "INSERT INTO {S}.nul SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 1000 END"
      " FROM generate_series(1, 5000) g",
      END};
  const char *my[] = {"CREATE TABLE {S}.nul (id int PRIMARY KEY, v int)",
                      "INSERT INTO {S}.nul SELECT seq, CASE WHEN seq % 7 = 0 THEN NULL"
                      " ELSE seq % 1000 END FROM seq_1_to_5000",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  want w = {.method = DBP_SPLIT_KEY, .null_part = true};
  if (split_check(x, "nul", "v", 700, &w) != 0) return -1;
  /* Every value NULL: one part reads them all. */
  if (run(x, "UPDATE {S}.nul SET v = NULL") != 0) return -1;
  return split_check(x, "nul", "v", 700, &w);
}

PLAN_TEST(composite_key, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.comp (a int, b text, PRIMARY KEY (a, b))",
      "INSERT INTO {S}.comp SELECT g % 50, 'k' || g FROM generate_series(1, 3000) g", END};
  const char *my[] = {"CREATE TABLE {S}.comp (a int, b varchar(40), PRIMARY KEY (a, b))",
                      "INSERT INTO {S}.comp SELECT seq % 50, CONCAT('k', seq) FROM seq_1_to_3000",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  return split_check(x, "comp", NULL, 170, &UNIQUE);
}

/* Text that sorts by the column's collation (MariaDB: case-insensitive,
 * ß = ss), with quotes, backslashes, spaces and UTF-8. */
PLAN_TEST(text_key, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.txt (k text PRIMARY KEY, n int)",
      "INSERT INTO {S}.txt SELECT (ARRAY['Apple', 'apple', 'It''s \"q\"', 'back\\slash', 'sp ace ',"
      " '\xc3\x9cn\xc3\xaf"
      "code', 'stra\xc3\x9f' || 'e', 'strasse', '\xf0\x9f\x98\x80', 'Z'])"
      "[1 + g % 10] || g, g FROM generate_series(1, 4000) g",
      END};
  const char *my[] = {
      "CREATE TABLE {S}.txt (k varchar(100) PRIMARY KEY, n int)",
      "INSERT INTO {S}.txt SELECT CONCAT(ELT(1 + seq % 10, 'Apple', 'apple', 'It''s \"q\"',"
      " 'back\\\\slash', 'sp ace ', '\xc3\x9cn\xc3\xaf"
      "code', 'stra\xc3\x9f' 'e', 'strasse',"
      " '\xf0\x9f\x98\x80', 'Z'), seq), seq FROM seq_1_to_4000",
      END};
  if (setup(x, pg, my) != 0) return -1;
  return split_check(x, "txt", NULL, 450, &UNIQUE);
}

/* Dates, each on day 1 to 12 of its month: the boundaries are read back
 * by a session whose DateStyle reads day and month the other way round. */
PLAN_TEST(date_key, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.days (d date PRIMARY KEY)",
      "INSERT INTO {S}.days SELECT (DATE '2000-01-01' + (g / 12) * INTERVAL '1 month'"
      " + (g % 12) * INTERVAL '1 day')::date FROM generate_series(0, 1999) g",
      END};
  const char *my[] = {"CREATE TABLE {S}.days (d date PRIMARY KEY)",
                      "INSERT INTO {S}.days SELECT DATE '2000-01-01' + INTERVAL (seq DIV 12) MONTH"
                      " + INTERVAL (seq % 12) DAY FROM seq_0_to_1999",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  want w = UNIQUE;
  if (x->pg) {
    w.before = "SET DateStyle = 'SQL, DMY'";
    w.grow = "SET DateStyle = 'SQL, MDY'";
  }
  return split_check(x, "days", NULL, 300, &w);
}

/* PostgreSQL without a key: heap pages; a table with holes (deleted rows)
 * and one that grows after planning are read whole. MariaDB: one part. */
PLAN_TEST(keyless_table, 180) {
  const char *pg[] = {
      "CREATE TABLE {S}.heap (id int, pad text)",
      "INSERT INTO {S}.heap SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g",
      "DELETE FROM {S}.heap WHERE id % 3 = 0 OR id BETWEEN 5000 AND 7000", END};
  const char *my[] = {"CREATE TABLE {S}.heap (id int, pad text)",
                      "INSERT INTO {S}.heap SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000",
                      "DELETE FROM {S}.heap WHERE id % 3 = 0", END};
  if (setup(x, pg, my) != 0) return -1;
  want w = {.method = x->pg ? DBP_SPLIT_CTID : DBP_SPLIT_NONE};
  if (split_check(x, "heap", NULL, 2000, &w) != 0) return -1;
  w.grow = "INSERT INTO {S}.heap SELECT id + 100000, pad FROM {S}.heap WHERE id < 3000";
  if (split_check(x, "heap", NULL, 1000, &w) != 0) return -1;
  if (!x->pg) return 0;
  /* Many parts: more asked than there are pages gives one per page. */
  dbp_table_list l;
  if (info(x, "heap", &l) != 0) return -1;
  dbp_plan_table pt;
  dbp_dberr err;
  dbp_split_options o = {.partitions = 100000};
  int rc = dbp_plan_split(x->c, &l.tables[0], &o, 30000, &pt, &err);
  dbp_table_list_free(&l);
  CHECK(rc == 0);
  bool ok = pt.method == DBP_SPLIT_CTID && pt.nparts > 100 && pt.nparts < 100000 &&
            pt.parts[0].page_lo == 0 && pt.parts[pt.nparts - 1].page_hi == 0;
  for (size_t i = 1; ok && i < pt.nparts; i++)
    ok = pt.parts[i].page_lo == pt.parts[i - 1].page_hi && pt.parts[i].page_lo == i;
  cr_expect(ok, "%zu parts of pages", pt.nparts);
  dbp_plan_table_free(&pt);
  return ok ? 0 : -1;
}

/* An empty table: one part, which reads nothing. */
PLAN_TEST(empty_tables, 60) {
  const char *pg[] = {"CREATE TABLE {S}.empty (id int PRIMARY KEY)",
                      "CREATE TABLE {S}.empty_heap (id int)", END};
  const char *my[] = {"CREATE TABLE {S}.empty (id int PRIMARY KEY)",
                      "CREATE TABLE {S}.empty_heap (id int)", END};
  if (setup(x, pg, my) != 0) return -1;
  static const char *const names[] = {"empty", "empty_heap"};
  for (size_t k = 0; k < 2; k++) {
    dbp_table_list l;
    if (info(x, names[k], &l) != 0) return -1;
    dbp_split_options opts[] = {{.partitions = 3}, {.chunk_rows = 10}};
    int res = 0;
    for (size_t i = 0; res == 0 && i < 2; i++) {
      dbp_plan_table pt;
      dbp_dberr err;
      int rc = dbp_plan_split(x->c, &l.tables[0], &opts[i], 30000, &pt, &err);
      cr_expect_eq(rc, 0, "%s: %s", names[k], err.message);
      if (rc != 0) {
        res = -1;
        break;
      }
      cr_expect_eq(pt.nparts, 1, "%s: %zu parts", names[k], pt.nparts);
      rows r = {0};
      size_t n = 99;
      char *sql = dbp_plan_part_sql(&pt, 0, NULL);
      res = pt.nparts == 1 ? read_rows(x, sql, &r, &n) : -1;
      free(sql);
      cr_expect(res == 0 && n == 0);
      if (n != 0) res = -1;
      rows_free(&r);
      dbp_plan_table_free(&pt);
    }
    dbp_table_list_free(&l);
    if (res != 0) return res;
  }
  return 0;
}

/* Views are read whole; so are PostgreSQL partitioned tables without a key
 * (their parent has no ctid) and MariaDB tables without one. */
PLAN_TEST(one_part_tables, 60) {
  const char *pg[] = {"CREATE TABLE {S}.base (id int PRIMARY KEY)",
                      "INSERT INTO {S}.base SELECT generate_series(1, 100)",
                      "CREATE VIEW {S}.v AS SELECT id FROM {S}.base",
                      "CREATE TABLE {S}.parted (id int, at date) PARTITION BY RANGE (at)",
                      "CREATE TABLE {S}.parted_1 PARTITION OF {S}.parted"
                      " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
                      "INSERT INTO {S}.parted SELECT g, DATE '2024-01-01' + g"
                      " FROM generate_series(1, 100) g",
                      END};
  const char *my[] = {"CREATE TABLE {S}.base (id int PRIMARY KEY)",
                      "INSERT INTO {S}.base SELECT seq FROM seq_1_to_100",
                      "CREATE VIEW {S}.v AS SELECT id FROM {S}.base",
                      "CREATE TABLE {S}.parted (id int, at date)", END};
  if (setup(x, pg, my) != 0) return -1;
  want w = {.method = DBP_SPLIT_NONE};
  if (split_check(x, "v", NULL, 10, &w) != 0) return -1;
  if (split_check(x, "v", "id", 10, &w) != 0) return -1;
  return split_check(x, "parted", NULL, 10, &w);
}

/* Wrong options: DBP_EINVAL naming what is wrong, and nothing to free. */
PLAN_TEST(bad_options, 60) {
  const char *pg[] = {"CREATE TABLE {S}.\"Odd.T\" (id int PRIMARY KEY, v int)", END};
  const char *my[] = {"CREATE TABLE {S}.`Odd.T` (id int PRIMARY KEY, v int)", END};
  if (setup(x, pg, my) != 0) return -1;
  dbp_table_list l;
  if (info(x, "Odd.T", &l) != 0) return -1;
  dbp_plan_table pt;
  dbp_dberr err;
  dbp_split_options o = {.column = "nosuch", .partitions = 4};
  int rc = dbp_plan_split(x->c, &l.tables[0], &o, 30000, &pt, &err);
  cr_expect_eq(rc, DBP_EINVAL, "%s", dbp_err_name(rc));
  cr_expect(strstr(err.message, "Odd.T") != NULL && strstr(err.message, "nosuch") != NULL &&
                strstr(err.message, x->s) != NULL,
            "message: %s", err.message);
  cr_expect(pt.nparts == 0 && pt.parts == NULL && pt.schema == NULL);
  dbp_split_options both = {.partitions = 4, .chunk_rows = 10};
  int rc2 = dbp_plan_split(x->c, &l.tables[0], &both, 30000, &pt, &err);
  cr_expect_eq(rc2, DBP_EINVAL);
  cr_expect(strstr(err.message, "partitions and chunk_rows") != NULL, "message: %s", err.message);
  /* A bad filter: the server's error. */
  dbp_split_options bad = {.partitions = 4, .where = "no_such_column = 1"};
  int rc3 = dbp_plan_split(x->c, &l.tables[0], &bad, 30000, &pt, &err);
  cr_expect_eq(rc3, DBP_EQUERY, "%s", dbp_err_name(rc3));
  cr_expect(err.message[0] != '\0');
  dbp_table_list_free(&l);
  CHECK(!dbp_conn_is_broken(x->c));
  return rc == DBP_EINVAL && rc2 == DBP_EINVAL && rc3 == DBP_EQUERY ? 0 : -1;
}

/* Byte strings, zero bytes and high bytes included, in byte order. */
PLAN_TEST(bytes_key, 120) {
  const char *pg[] = {
      "CREATE TABLE {S}.bin (k bytea PRIMARY KEY)",
      "INSERT INTO {S}.bin SELECT decode(lpad(to_hex(g * 7919), 8, '0'), 'hex')"
      " FROM generate_series(1, 2000) g",
      "INSERT INTO {S}.bin VALUES ('\\x'), ('\\x00'), ('\\xff00'), ('\\xffffffffff')", END};
  const char *my[] = {"CREATE TABLE {S}.bin (k varbinary(16) PRIMARY KEY)",
                      "INSERT INTO {S}.bin SELECT UNHEX(LPAD(HEX(seq * 7919), 8, '0'))"
                      " FROM seq_1_to_2000",
                      "INSERT INTO {S}.bin VALUES (X''), (X'00'), (X'ff00'), (X'ffffffffff')", END};
  if (setup(x, pg, my) != 0) return -1;
  return split_check(x, "bin", NULL, 300, &UNIQUE);
}

/* Timestamps with microseconds: planned in one time zone and DateStyle,
 * read in others. */
PLAN_TEST(timestamp_key, 120) {
  const char *pg[] = {"CREATE TABLE {S}.ts (t timestamptz PRIMARY KEY, u timestamp)",
                      "INSERT INTO {S}.ts SELECT TIMESTAMPTZ '2001-02-03 04:05:06.789012+00'"
                      " + g * INTERVAL '37 min 13.123457 s', TIMESTAMP '2001-02-03 04:05:06'"
                      " + g * INTERVAL '1 day 1 s' FROM generate_series(0, 2999) g",
                      END};
  const char *my[] = {"CREATE TABLE {S}.ts (t datetime(6) PRIMARY KEY, u datetime)",
                      "INSERT INTO {S}.ts SELECT TIMESTAMP '2001-02-03 04:05:06.789012'"
                      " + INTERVAL (seq * 2233123457) MICROSECOND, TIMESTAMP '2001-02-03 04:05:06'"
                      " + INTERVAL (seq * 86401) SECOND FROM seq_0_to_2999",
                      END};
  if (setup(x, pg, my) != 0) return -1;
  want w = UNIQUE;
  if (x->pg) {
    w.before = "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY'";
    w.grow = "SET TimeZone = 'America/New_York'; SET DateStyle = 'Postgres, MDY'";
  }
  if (split_check(x, "ts", NULL, 400, &w) != 0) return -1;
  /* A timestamp without zone, chosen as the split column. */
  w.null_part = true;
  return split_check(x, "ts", "u", 400, &w);
}
