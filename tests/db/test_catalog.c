/* dbp_list_tables against real servers: one body per behaviour, run on
 * PostgreSQL (suite catalog_pg) and MariaDB (suite catalog_my).
 *
 * Each test makes two schemas of its own (MariaDB: databases; the fixture
 * user may make those named dbpcat_*), named after the process so that
 * tests running side by side never meet:
 *   A = dbpcat_PID        tables with and without primary keys, a
 *                         composite key, an upper-case name, odd names
 *                         (% _ ' " \ * ? space, UTF-8), a view and a
 *                         partitioned table;
 *   B = dbpcat_PID_Odd.S  a dot and capitals in the schema, a dot in the
 *                         table's name.
 * Both are dropped at the end, whatever the body did. Bodies check with
 * CHECK (dbcheck.h) and return nonzero on the first failure.
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

/* ---- the dialects ---- */

#define MAX_SQL 16

typedef struct dialect {
  dbp_db_kind kind;
  const char *(*dsn)(void);
  char q;       /* the identifier quote */
  bool folds;   /* unquoted pattern letters fold to lower case */
  bool leaves;  /* partitions are tables of their own */
  bool matview; /* the setup made the materialized view A.mv_orders */
  const char *setup[MAX_SQL];
  const char *drop[2];
  const char *analyze;
  const char *use_a;  /* makes A the current schema */
  const char *home;   /* the current schema right after connect */
  const char *int_db; /* db_type of int, bigint, text key, date */
  const char *bigint_db, *text_db, *date_db;
  dbp_type text_type;
  const char *sys_exact, *sys_wild, *sys_schema;
  dbp_table_kind sys_kind;
} dialect;

static const char *pg_dsn(void) {
  return dbt_pg_dsn();
}

static const char *my_dsn(void) {
  return dbt_my_dsn();
}

static const dialect PG = {
    .kind = DBP_DB_PG,
    .dsn = pg_dsn,
    .q = '"',
    .folds = true,
    .leaves = true,
    .matview = true,
    .setup =
        {
            "CREATE SCHEMA {A}",
            "CREATE SCHEMA {B}",
            "CREATE TABLE {A}.orders (id int PRIMARY KEY, note text)",
            "INSERT INTO {A}.orders SELECT g, 'n' FROM generate_series(1, 100) g",
            "CREATE TABLE {A}.order_items (order_id int, sku text, qty int,"
            " PRIMARY KEY (order_id, sku))",
            "CREATE TABLE {A}.nopk (x int)",
            "CREATE TABLE {A}.\"Upper\" (id bigint PRIMARY KEY)",
            "CREATE VIEW {A}.v_orders AS SELECT id FROM {A}.orders",
            "CREATE MATERIALIZED VIEW {A}.mv_orders AS SELECT id FROM {A}.orders",
            "CREATE TABLE {A}.p_events (id int, at date, PRIMARY KEY (id, at))"
            " PARTITION BY RANGE (at)",
            "CREATE TABLE {A}.p_events_2024 PARTITION OF {A}.p_events"
            " FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
            "CREATE TABLE {A}.p_events_2025 PARTITION OF {A}.p_events"
            " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
            "INSERT INTO {A}.p_events SELECT g, DATE '2024-06-01' + g * 10"
            " FROM generate_series(1, 30) g",
            "CREATE TABLE {B}.\"t.1\" (id int PRIMARY KEY)",
        },
    .drop = {"DROP SCHEMA IF EXISTS {A} CASCADE", "DROP SCHEMA IF EXISTS {B} CASCADE"},
    .analyze = "ANALYZE {A}.orders, {A}.p_events",
    .use_a = "SET search_path TO {A}",
    .home = "public",
    .int_db = "int4",
    .bigint_db = "int8",
    .text_db = "text",
    .date_db = "date",
    .text_type = DBP_T_TEXT,
    .sys_exact = "pg_catalog.pg_class",
    .sys_wild = "*.pg_class",
    .sys_schema = "pg_catalog",
    .sys_kind = DBP_TABLE_BASE,
};

static const dialect MY = {
    .kind = DBP_DB_MYSQL,
    .dsn = my_dsn,
    .q = '`',
    .folds = false,
    .leaves = false,
    .setup =
        {
            "CREATE DATABASE {A}",
            "CREATE DATABASE {B}",
            "CREATE TABLE {A}.orders (id int PRIMARY KEY, note text)",
            "INSERT INTO {A}.orders SELECT seq, 'n' FROM seq_1_to_100",
            "CREATE TABLE {A}.order_items (order_id int, sku varchar(20), qty int,"
            " PRIMARY KEY (order_id, sku))",
            "CREATE TABLE {A}.nopk (x int)",
            "CREATE TABLE {A}.`Upper` (id bigint PRIMARY KEY)",
            "CREATE VIEW {A}.v_orders AS SELECT id FROM {A}.orders",
            "CREATE TABLE {A}.p_events (id int, at date, PRIMARY KEY (id, at))"
            " PARTITION BY RANGE (YEAR(at)) (PARTITION p2024 VALUES LESS THAN (2025),"
            " PARTITION p2025 VALUES LESS THAN (2026))",
            "INSERT INTO {A}.p_events SELECT seq, DATE '2024-06-01' + INTERVAL (seq * 10) DAY"
            " FROM seq_1_to_30",
            "CREATE TABLE {B}.`t.1` (id int PRIMARY KEY)",
        },
    .drop = {"DROP DATABASE IF EXISTS {A}", "DROP DATABASE IF EXISTS {B}"},
    .analyze = "ANALYZE TABLE {A}.orders, {A}.p_events",
    .use_a = "USE {A}",
    .home = "shop",
    .int_db = "INT",
    .bigint_db = "BIGINT",
    .text_db = "VARCHAR",
    .date_db = "DATE",
    .text_type = DBP_T_TEXT,
    .sys_exact = "information_schema.TABLES",
    .sys_wild = "*.TABLES",
    .sys_schema = "information_schema",
    .sys_kind = DBP_TABLE_VIEW,
};

/* Tables without a primary key whose names hold what patterns and SQL
 * treat specially. */
static const char *const odd_names[] = {
    "50% off_", "it's \"q\"", "back\\slash", "star*q?", "sp ace", "\xc3\xbcn\xc3\xaf",
};
#define NODD (sizeof odd_names / sizeof odd_names[0])

/* What every body gets. */
typedef struct ctx {
  const dialect *d;
  dbp_conn *c;
  char a[64], b[64];   /* the schema names */
  char qa[80], qb[80]; /* quoted for SQL */
} ctx;

/* ---- helpers ---- */

static void quote(char *out, size_t len, char q, const char *name) {
  size_t o = 0;
  if (o + 1 < len) out[o++] = q;
  for (const char *s = name; *s && o + 3 < len; s++) {
    if (*s == q) out[o++] = q;
    out[o++] = *s;
  }
  if (o + 1 < len) out[o++] = q;
  out[o] = '\0';
}

/* tmpl with {A} and {B} replaced by a and b (malloc'd). */
static char *expand(const char *tmpl, const char *a, const char *b) {
  dbp_buf out = {0};
  for (const char *s = tmpl; *s;) {
    if (strncmp(s, "{A}", 3) == 0 || strncmp(s, "{B}", 3) == 0) {
      dbp_buf_puts(&out, s[1] == 'A' ? a : b);
      s += 3;
    } else {
      dbp_buf_append(&out, s++, 1);
    }
  }
  if (out.data == NULL) dbp_buf_puts(&out, "");
  return out.data;
}

static int run(ctx *x, const char *tmpl) {
  char *sql = expand(tmpl, x->qa, x->qb);
  int rc = dbp_exec(x->c, sql, 0, NULL, 30000, NULL);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "%s: %s", sql, dbp_dberr_format(dbp_conn_error(x->c), m, sizeof m));
  }
  free(sql);
  return rc;
}

/* Lists with patterns given as templates ({A} = A unquoted, {B} = B in
 * double quotes). */
static int list_p(ctx *x, const char *const *inc, size_t ninc, const char *const *exc, size_t nexc,
                  bool views, dbp_table_list *out) {
  char qb[80];
  quote(qb, sizeof qb, '"', x->b);
  char *i[8] = {0}, *e[8] = {0};
  for (size_t k = 0; k < ninc; k++) i[k] = inc[k] ? expand(inc[k], x->a, qb) : NULL;
  for (size_t k = 0; k < nexc; k++) e[k] = exc[k] ? expand(exc[k], x->a, qb) : NULL;
  dbp_table_filter f = {.include = (const char *const *)i,
                        .ninclude = ninc,
                        .exclude = (const char *const *)e,
                        .nexclude = nexc,
                        .views = views};
  int rc = dbp_list_tables(x->c, &f, 30000, out);
  for (size_t k = 0; k < 8; k++) {
    free(i[k]);
    free(e[k]);
  }
  return rc;
}

/* One include pattern, no views. */
static int list1(ctx *x, const char *inc, dbp_table_list *out) {
  return list_p(x, &inc, 1, NULL, 0, false, out);
}

/* The list as "A.name|B.name|schema.name" (A and B for the test's own
 * schemas). */
static const char *names(const ctx *x, const dbp_table_list *l, char *buf, size_t len) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < l->n && o < len; i++) {
    const char *s = l->tables[i].schema;
    const char *sn = strcmp(s, x->a) == 0 ? "A" : strcmp(s, x->b) == 0 ? "B" : s;
    int n = snprintf(buf + o, len - o, "%s%s.%s", i ? "|" : "", sn, l->tables[i].name);
    if (n < 0) break;
    o += (size_t)n;
  }
  return buf;
}

/* Checks that pattern `inc` lists exactly `want` ("" for nothing). */
static int expect1(ctx *x, const char *inc, const char *want) {
  dbp_table_list l;
  int rc = list1(x, inc, &l);
  char m[700], got[2048];
  cr_expect_eq(rc, 0, "%s: %s", inc, dbp_dberr_format(dbp_conn_error(x->c), m, sizeof m));
  names(x, &l, got, sizeof got);
  cr_expect_str_eq(got, want, "pattern %s: got \"%s\", wanted \"%s\"", inc, got, want);
  dbp_table_list_free(&l);
  return rc == 0 && strcmp(got, want) == 0 ? 0 : -1;
}

static const dbp_table_info *find(const ctx *x, const dbp_table_list *l, const char *schema,
                                  const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->tables[i].schema, schema) == 0 && strcmp(l->tables[i].name, name) == 0)
      return &l->tables[i];
  (void)x;
  return NULL;
}

static int check_key(const dbp_table_info *t, size_t k, const char *name, dbp_type type,
                     const char *db_type) {
  CHECK(t != NULL && k < t->npkey);
  cr_expect_str_eq(t->pkey[k].name, name, "%s key %zu", t->name, k);
  cr_expect_eq(t->pkey[k].type, type, "%s key %zu: %s", t->name, k, dbp_type_name(t->pkey[k].type));
  cr_expect_str_eq(t->pkey[k].db_type, db_type, "%s key %zu", t->name, k);
  CHECK(strcmp(t->pkey[k].name, name) == 0 && t->pkey[k].type == type &&
        strcmp(t->pkey[k].db_type, db_type) == 0);
  return 0;
}

/* ---- the frame ---- */

typedef int (*body_fn)(ctx *x);

typedef struct frame {
  const dialect *d;
  body_fn body;
} frame;

static int frame_run(dbp_rt *rt, void *arg) {
  frame *fr = arg;
  ctx x = {.d = fr->d};
  snprintf(x.a, sizeof x.a, "dbpcat_%ld", (long)getpid());
  snprintf(x.b, sizeof x.b, "dbpcat_%ld_Odd.S", (long)getpid());
  quote(x.qa, sizeof x.qa, x.d->q, x.a);
  quote(x.qb, sizeof x.qb, x.d->q, x.b);
  dbp_dberr err;
  int rc = dbp_conn_open(rt, x.d->dsn(), 10000, &x.c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
    return rc;
  }
  for (size_t i = 0; rc == 0 && i < 2; i++) rc = run(&x, x.d->drop[i]);
  for (size_t i = 0; rc == 0 && i < MAX_SQL && x.d->setup[i]; i++) rc = run(&x, x.d->setup[i]);
  for (size_t i = 0; rc == 0 && i < NODD; i++) {
    char qn[64], sql[128];
    quote(qn, sizeof qn, x.d->q, odd_names[i]);
    snprintf(sql, sizeof sql, "CREATE TABLE {A}.%s (k int)", qn);
    rc = run(&x, sql);
  }
  if (rc == 0) rc = fr->body(&x);
  /* Whatever happened, the schemas go (on a fresh connection if the
   * body left this one unusable). */
  if (dbp_conn_is_broken(x.c)) {
    dbp_conn_close(x.c);
    x.c = NULL;
    if (dbp_conn_open(rt, x.d->dsn(), 10000, &x.c, &err) != 0) return -1;
  }
  dbp_query_close(x.c);
  for (size_t i = 0; i < 2; i++) run(&x, x.d->drop[i]);
  dbp_conn_close(x.c);
  return rc;
}

#define CAT_TEST(name, secs)                \
  static int name##_body(ctx *x);           \
  Test(catalog_pg, name, .timeout = secs) { \
    frame fr = {&PG, name##_body};          \
    dbt_run(frame_run, &fr);                \
  }                                         \
  Test(catalog_my, name, .timeout = secs) { \
    frame fr = {&MY, name##_body};          \
    dbt_run(frame_run, &fr);                \
  }                                         \
  static int name##_body(ctx *x)

/* ---- the tests ---- */

#define ALL_A                                                                               \
  "A.50% off_|A.Upper|A.back\\slash|A.it's \"q\"|A.nopk|A.order_items|A.orders|A.p_events|" \
  "A.sp ace|A.star*q?|A.\xc3\xbcn\xc3\xaf"

CAT_TEST(lists_base_tables_sorted_with_kinds_and_keys, 60) {
  dbp_table_list l;
  CHECK_RC(x->c, list1(x, "{A}.*", &l), 0);
  char got[2048];
  cr_expect_str_eq(names(x, &l, got, sizeof got), ALL_A);
  int rc = strcmp(got, ALL_A) == 0 ? 0 : -1;
  const dbp_table_info *orders = find(x, &l, x->a, "orders");
  const dbp_table_info *items = find(x, &l, x->a, "order_items");
  const dbp_table_info *nopk = find(x, &l, x->a, "nopk");
  const dbp_table_info *upper = find(x, &l, x->a, "Upper");
  const dbp_table_info *ev = find(x, &l, x->a, "p_events");
  if (rc == 0 && orders && items && nopk && upper && ev) {
    cr_expect_eq(orders->kind, DBP_TABLE_BASE);
    cr_expect_eq(ev->kind, DBP_TABLE_PARTITIONED, "%s", dbp_table_kind_name(ev->kind));
    cr_expect(!orders->partition && !ev->partition);
    cr_expect_eq(orders->npkey, 1);
    rc |= check_key(orders, 0, "id", DBP_T_INTEGER, x->d->int_db);
    cr_expect_eq(items->npkey, 2);
    rc |= check_key(items, 0, "order_id", DBP_T_INTEGER, x->d->int_db);
    rc |= check_key(items, 1, "sku", x->d->text_type, x->d->text_db);
    cr_expect_eq(nopk->npkey, 0);
    cr_expect_null(nopk->pkey);
    rc |= check_key(upper, 0, "id", DBP_T_INTEGER, x->d->bigint_db);
    cr_expect_eq(ev->npkey, 2);
    rc |= check_key(ev, 0, "id", DBP_T_INTEGER, x->d->int_db);
    rc |= check_key(ev, 1, "at", DBP_T_DATE, x->d->date_db);
    /* The qualified name is what dbp_quote_ident makes of schema.name. */
    char sn[128];
    snprintf(sn, sizeof sn, "%s.orders", x->a);
    char *want = dbp_quote_ident(x->d->kind, sn);
    cr_expect_str_eq(orders->qualified, want);
    free(want);
    const dbp_table_info *q = find(x, &l, x->a, "it's \"q\"");
    char wq[160];
    snprintf(wq, sizeof wq, x->d->q == '"' ? "\"%s\".\"it's \"\"q\"\"\"" : "`%s`.`it's \"q\"`",
             x->a);
    cr_expect(q != NULL && strcmp(q->qualified, wq) == 0, "%s", q ? q->qualified : "missing");
  } else {
    rc = -1;
  }
  dbp_table_list_free(&l);
  CHECK(rc == 0);
  CHECK(l.n == 0 && l.tables == NULL);

  /* A dot inside names stays inside their quotes. */
  CHECK_RC(x->c, list1(x, "{B}.*", &l), 0);
  CHECK(l.n == 1);
  char wb[160];
  snprintf(wb, sizeof wb, "%c%s%c.%ct.1%c", x->d->q, x->b, x->d->q, x->d->q, x->d->q);
  cr_expect_str_eq(l.tables[0].qualified, wb);
  rc = strcmp(l.tables[0].qualified, wb) == 0 ? 0 : -1;
  rc |= check_key(&l.tables[0], 0, "id", DBP_T_INTEGER, x->d->int_db);
  dbp_table_list_free(&l);
  CHECK(rc == 0);

  /* No filter: every schema's tables, ours among them, no system schema,
   * no view, no partition. */
  CHECK_RC(x->c, dbp_list_tables(x->c, NULL, 30000, &l), 0);
  dbp_buf mine = {0};
  for (size_t i = 0; i < l.n; i++) {
    const dbp_table_info *t = &l.tables[i];
    cr_expect(strcmp(t->schema, x->d->sys_schema) != 0 && strcmp(t->schema, "mysql") != 0 &&
                  strcmp(t->schema, "information_schema") != 0,
              "%s.%s", t->schema, t->name);
    cr_expect(t->kind != DBP_TABLE_VIEW && !t->partition, "%s.%s", t->schema, t->name);
    if (i > 0) {
      const dbp_table_info *p = &l.tables[i - 1];
      int d = strcmp(p->schema, t->schema);
      cr_expect(d < 0 || (d == 0 && strcmp(p->name, t->name) < 0), "order: %s.%s, %s.%s", p->schema,
                p->name, t->schema, t->name);
    }
    if (strcmp(t->schema, x->a) == 0) dbp_buf_printf(&mine, "%sA.%s", mine.len ? "|" : "", t->name);
  }
  cr_expect_str_eq(dbp_buf_str(&mine), ALL_A);
  rc = strcmp(dbp_buf_str(&mine), ALL_A) == 0 ? 0 : -1;
  dbp_buf_free(&mine);
  CHECK(find(x, &l, x->d->home, "orders") != NULL);
  CHECK(find(x, &l, x->b, "t.1") != NULL);
  dbp_table_list_free(&l);
  return rc;
}

CAT_TEST(views_need_asking_or_an_exact_name, 60) {
  dbp_table_list l;
  const char *vs = "{A}.v*";
  CHECK_RC(x->c, list_p(x, &vs, 1, NULL, 0, true, &l), 0);
  CHECK(l.n == 1 && strcmp(l.tables[0].name, "v_orders") == 0);
  CHECK(l.tables[0].kind == DBP_TABLE_VIEW && l.tables[0].rows_estimate == -1);
  CHECK(l.tables[0].npkey == 0);
  dbp_table_list_free(&l);
  /* views also lists the tables. */
  const char *all = "{A}.*";
  CHECK_RC(x->c, list_p(x, &all, 1, NULL, 0, true, &l), 0);
  CHECK(find(x, &l, x->a, "v_orders") != NULL && find(x, &l, x->a, "orders") != NULL);
  dbp_table_list_free(&l);
  if (expect1(x, "{A}.v_orders", "A.v_orders") != 0) return -1;
  if (expect1(x, "{A}.v_order?", "") != 0) return -1;
  if (expect1(x, "{A}.v*", "") != 0) return -1;
  if (expect1(x, "*.v_orders", "") != 0) return -1;
  if (!x->d->matview) return 0;
  /* A materialized view is a view here. */
  if (expect1(x, "{A}.m*", "") != 0) return -1;
  CHECK_RC(x->c, list1(x, "{A}.mv_orders", &l), 0);
  CHECK(l.n == 1 && l.tables[0].kind == DBP_TABLE_MATVIEW);
  dbp_table_list_free(&l);
  const char *ms = "{A}.m*";
  CHECK_RC(x->c, list_p(x, &ms, 1, NULL, 0, true, &l), 0);
  CHECK(l.n == 1 && strcmp(l.tables[0].name, "mv_orders") == 0);
  dbp_table_list_free(&l);
  return 0;
}

CAT_TEST(exclude_wins_over_include, 60) {
  dbp_table_list l;
  const char *inc[] = {"{A}.*", "{A}.orders"};
  const char *exc[] = {"{A}.order*", "*.nopk", "{A}.[a-z]*"};
  CHECK_RC(x->c, list_p(x, inc, 2, exc, 3, false, &l), 0);
  char got[2048];
  const char *want =
      "A.50% off_|A.Upper|A.back\\slash|A.it's \"q\"|A.p_events|A.sp ace|"
      "A.star*q?|A.\xc3\xbcn\xc3\xaf";
  cr_expect_str_eq(names(x, &l, got, sizeof got), want);
  dbp_table_list_free(&l);
  CHECK(strcmp(got, want) == 0);
  /* An exclude also drops what an exact include names, views too. */
  const char *inc2[] = {"{A}.v_orders", "{A}.orders"};
  const char *exc2[] = {"{A}.v_*"};
  CHECK_RC(x->c, list_p(x, inc2, 2, exc2, 1, true, &l), 0);
  CHECK(strcmp(names(x, &l, got, sizeof got), "A.orders") == 0);
  dbp_table_list_free(&l);
  /* A table that several includes name is listed once. */
  const char *inc3[] = {"{A}.orders", "{A}.ord*", "{A}.*s"};
  const char *exc3[] = {"{A}.p_*"};
  CHECK_RC(x->c, list_p(x, inc3, 3, exc3, 1, false, &l), 0);
  CHECK(strcmp(names(x, &l, got, sizeof got), "A.order_items|A.orders") == 0);
  dbp_table_list_free(&l);
  return 0;
}

CAT_TEST(quoted_parts_and_odd_names, 60) {
  static const char *const cases[][2] = {
      {"{A}.\"star*q?\"", "A.star*q?"},
      {"{A}.star*", "A.star*q?"},
      {"{A}.\"star\"*", "A.star*q?"},
      {"{A}.\"star*\"", ""},
      {"{A}.\"50%\"*", "A.50% off_"},
      {"{A}.50%*", "A.50% off_"},
      {"{A}.%", ""},
      {"{A}._*", ""},
      {"{A}.*_", "A.50% off_"},
      {"{A}.\"it's \"\"q\"\"\"", "A.it's \"q\""},
      {"{A}.it's*", "A.it's \"q\""},
      {"{A}.back\\slash", "A.back\\slash"},
      {"{A}.back?slash", "A.back\\slash"},
      {"{A}.\"sp ace\"", "A.sp ace"},
      {"{A}.sp\" \"ace", "A.sp ace"},
      {"{A}.???", "A.\xc3\xbcn\xc3\xaf"},
      {"{A}.\xc3\xbcn\xc3\xaf", "A.\xc3\xbcn\xc3\xaf"},
      {"{A}.?n?", "A.\xc3\xbcn\xc3\xaf"},
      {"{B}.\"t.1\"", "B.t.1"},
      {"{B}.t?1", "B.t.1"},
      {"{B}.*", "B.t.1"},
      {"{A}.`star*q?`", "A.star*q?"},
      {"{A}.\"orders\"", "A.orders"},
      {"{A}.or*rs", "A.orders"},
      {"{A}.order?", "A.orders"},
      {"{A}.*s", "A.order_items|A.orders|A.p_events"},
      {"{A}.o*r*s", "A.order_items|A.orders"},
      {"{A}.*v*n*", "A.p_events"},
      {"{A}.*\xc3\xaf", "A.\xc3\xbcn\xc3\xaf"},
      {"{A}.*?", ALL_A},
      {"{A}.?*????????", "A.back\\slash|A.order_items"},
      {"{A}.no_such_table", ""},
      {"no_such_schema_here.*", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (expect1(x, cases[i][0], cases[i][1]) != 0) return -1;
  /* Backticks quote on PostgreSQL too, doubled for one. */
  char pat[160];
  snprintf(pat, sizeof pat, "`%s`.`t.1`", x->b);
  if (expect1(x, pat, "B.t.1") != 0) return -1;
  return 0;
}

CAT_TEST(unquoted_names_fold_on_postgresql_only, 60) {
  char upper_a[64];
  snprintf(upper_a, sizeof upper_a, "DBPCAT_%ld.orders", (long)getpid());
  if (expect1(x, "{A}.\"Upper\"", "A.Upper") != 0) return -1;
  if (x->d->folds) {
    if (expect1(x, "{A}.Upper", "") != 0) return -1;
    if (expect1(x, "{A}.upper", "") != 0) return -1;
    if (expect1(x, "{A}.ORDERS", "A.orders") != 0) return -1;
    if (expect1(x, "{A}.U*", "") != 0) return -1;
    if (expect1(x, upper_a, "A.orders") != 0) return -1;
  } else {
    if (expect1(x, "{A}.Upper", "A.Upper") != 0) return -1;
    if (expect1(x, "{A}.upper", "") != 0) return -1;
    if (expect1(x, "{A}.ORDERS", "") != 0) return -1;
    if (expect1(x, "{A}.U*", "A.Upper") != 0) return -1;
    if (expect1(x, upper_a, "") != 0) return -1;
  }
  return 0;
}

CAT_TEST(unqualified_patterns_name_the_current_schema, 60) {
  char want[128];
  snprintf(want, sizeof want, "%s.orders", x->d->home);
  if (expect1(x, "orders", want) != 0) return -1;
  if (expect1(x, "nopk", "") != 0) return -1;
  if (run(x, x->d->use_a) != 0) return -1;
  if (expect1(x, "orders", "A.orders") != 0) return -1;
  if (expect1(x, "order*", "A.order_items|A.orders") != 0) return -1;
  if (expect1(x, "v_orders", "A.v_orders") != 0) return -1;
  return 0;
}

CAT_TEST(no_match_is_an_empty_list, 30) {
  dbp_table_list l = {.n = 99, .tables = (dbp_table_info *)&l};
  CHECK_RC(x->c, list1(x, "{A}.zz*", &l), 0);
  CHECK(l.n == 0 && l.tables == NULL);
  dbp_table_list_free(&l);
  const char *inc = "{A}.*";
  const char *exc = "*.*";
  CHECK_RC(x->c, list_p(x, &inc, 1, &exc, 1, true, &l), 0);
  CHECK(l.n == 0);
  dbp_table_list_free(&l);
  return 0;
}

CAT_TEST(bad_patterns_are_refused_before_anything_runs, 30) {
  static const char *const bad[][2] = {
      {"", "an empty name"},          {".", "an empty name"},
      {"{A}.", "an empty name"},      {".orders", "an empty name"},
      {"a.b.c", "more than one dot"}, {"{B}.t.1", "more than one dot"},
      {"\"open", "never ends"},       {"{A}.\"or", "never ends"},
      {"{A}.`x", "never ends"},       {"a b", "whitespace"},
      {"{A}.\tx", "whitespace"},      {"\"\".x", "an empty quoted name"},
  };
  dbp_table_list l;
  char qb[80];
  quote(qb, sizeof qb, '"', x->b);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int as_exclude = 0; as_exclude < 2; as_exclude++) {
      const char *inc = "{A}.*";
      int rc = as_exclude ? list_p(x, &inc, 1, &bad[i][0], 1, false, &l) : list1(x, bad[i][0], &l);
      const char *msg = dbp_conn_error(x->c)->message;
      char *p = expand(bad[i][0], x->a, qb);
      char quoted[200];
      snprintf(quoted, sizeof quoted, "'%s'", p);
      cr_expect_eq(rc, DBP_EINVAL, "%s: %s", bad[i][0], dbp_err_name(rc));
      cr_expect(strstr(msg, quoted) != NULL && strstr(msg, bad[i][1]) != NULL &&
                    strstr(msg, as_exclude ? "exclude" : "include") != NULL,
                "%s: %s", bad[i][0], msg);
      cr_expect(l.n == 0 && l.tables == NULL);
      free(p);
      CHECK(rc == DBP_EINVAL);
    }
  }
  /* A NULL pattern, and patterns without an array. */
  const char *nul[] = {"{A}.*", NULL};
  CHECK_RC(x->c, list_p(x, nul, 2, NULL, 0, false, &l), DBP_EINVAL);
  CHECK(strstr(dbp_conn_error(x->c)->message, "NULL") != NULL);
  dbp_table_filter f = {.ninclude = 1};
  CHECK_RC(x->c, dbp_list_tables(x->c, &f, 30000, &l), DBP_EINVAL);
  CHECK(dbp_list_tables(x->c, NULL, 30000, NULL) == DBP_EINVAL);
  /* The connection was never touched: it works. */
  CHECK(!dbp_conn_is_broken(x->c));
  return expect1(x, "{A}.orders", "A.orders");
}

CAT_TEST(system_schemas_only_when_named_exactly, 60) {
  dbp_table_list l;
  CHECK_RC(x->c, list1(x, x->d->sys_exact, &l), 0);
  CHECK(l.n == 1 && strcmp(l.tables[0].schema, x->d->sys_schema) == 0);
  CHECK(l.tables[0].kind == x->d->sys_kind);
  dbp_table_list_free(&l);
  if (expect1(x, x->d->sys_wild, "") != 0) return -1;
  /* The schema named exactly, the table by wildcard: its tables. */
  char pat[80];
  snprintf(pat, sizeof pat, "%s.*", x->d->sys_schema);
  const char *p = pat;
  CHECK_RC(x->c, list_p(x, &p, 1, NULL, 0, true, &l), 0);
  CHECK(l.n > 1);
  for (size_t i = 0; i < l.n; i++) CHECK(strcmp(l.tables[i].schema, x->d->sys_schema) == 0);
  dbp_table_list_free(&l);
  /* A wildcard schema never reaches it. */
  const char *wild[] = {"*.*", "information_sch*.*", "pg_*.*", "?ysql.*", "my*.*"};
  CHECK_RC(x->c, list_p(x, wild, 5, NULL, 0, true, &l), 0);
  for (size_t i = 0; i < l.n; i++) {
    const char *s = l.tables[i].schema;
    cr_expect(strcmp(s, "pg_catalog") != 0 && strcmp(s, "information_schema") != 0 &&
                  strcmp(s, "mysql") != 0 && strncmp(s, "pg_toast", 8) != 0,
              "%s.%s", s, l.tables[i].name);
  }
  CHECK(find(x, &l, x->a, "v_orders") != NULL);
  dbp_table_list_free(&l);
  return 0;
}

CAT_TEST(row_estimates_follow_analyze, 60) {
  dbp_table_list l;
  const char *inc[] = {"{A}.orders", "{A}.nopk", "{A}.p_events", "{A}.v_orders"};
  CHECK_RC(x->c, list_p(x, inc, 4, NULL, 0, false, &l), 0);
  CHECK(l.n == 4);
  if (x->d->kind == DBP_DB_PG) {
    /* Never analysed (and empty, so autovacuum leaves it alone): the
     * server does not know. */
    CHECK(find(x, &l, x->a, "nopk")->rows_estimate == -1);
  }
  CHECK(find(x, &l, x->a, "v_orders")->rows_estimate == -1);
  dbp_table_list_free(&l);
  if (run(x, x->d->analyze) != 0) return -1;
  CHECK_RC(x->c, list_p(x, inc, 4, NULL, 0, false, &l), 0);
  CHECK(l.n == 4);
  int64_t orders = find(x, &l, x->a, "orders")->rows_estimate;
  int64_t ev = find(x, &l, x->a, "p_events")->rows_estimate;
  int64_t v = find(x, &l, x->a, "v_orders")->rows_estimate;
  dbp_table_list_free(&l);
  cr_expect(orders >= 90 && orders <= 110, "orders: %lld", (long long)orders);
  cr_expect(ev >= 25 && ev <= 35, "p_events: %lld", (long long)ev);
  CHECK(orders >= 90 && orders <= 110 && ev >= 25 && ev <= 35 && v == -1);
  if (x->d->kind == DBP_DB_PG) CHECK(orders == 100 && ev == 30);
  return 0;
}

CAT_TEST(partitions_are_listed_through_their_parent, 60) {
  if (expect1(x, "{A}.p_*", "A.p_events") != 0) return -1;
  if (!x->d->leaves) return 0;
  dbp_table_list l;
  CHECK_RC(x->c, list1(x, "{A}.p_events_2024", &l), 0);
  CHECK(l.n == 1 && l.tables[0].partition && l.tables[0].kind == DBP_TABLE_BASE);
  int rc = check_key(&l.tables[0], 0, "id", DBP_T_INTEGER, x->d->int_db);
  dbp_table_list_free(&l);
  if (rc != 0) return rc;
  return expect1(x, "{A}.p_events_202?", "");
}

/* Two schemas whose names differ only in case each keep their own keys,
 * although MySQL compares information_schema names without case. */
CAT_TEST(schemas_differing_in_case_keep_their_own_keys, 60) {
  char lo[64], up[64], qlo[80], qup[80];
  snprintf(lo, sizeof lo, "dbpcat_%ld_k", (long)getpid());
  snprintf(up, sizeof up, "dbpcat_%ld_K", (long)getpid());
  quote(qlo, sizeof qlo, x->d->q, lo);
  quote(qup, sizeof qup, x->d->q, up);
  bool pg = x->d->kind == DBP_DB_PG;
  const char *mk = pg ? "CREATE SCHEMA {A}" : "CREATE DATABASE {A}";
  const char *rm = pg ? "DROP SCHEMA IF EXISTS {A} CASCADE" : "DROP DATABASE IF EXISTS {A}";
  const char *steps[] = {mk, "{A}", "CREATE TABLE {A}.t (b int PRIMARY KEY)",
                         "CREATE TABLE {B}.t (b varchar(5) PRIMARY KEY, c int)"};
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < 4; i++) {
    const char *tmpl = i == 1 ? mk : steps[i];
    char *sql = expand(tmpl, i == 1 ? qup : qlo, qup);
    rc = dbp_exec(x->c, sql, 0, NULL, 30000, NULL);
    if (rc != 0) cr_expect(0, "%s: %s", sql, dbp_conn_error(x->c)->message);
    free(sql);
  }
  dbp_table_list l = {0};
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\".t", up);
  const char *p = pat;
  if (rc == 0) rc = list_p(x, &p, 1, NULL, 0, false, &l);
  if (rc == 0) {
    cr_expect(l.n == 1 && l.tables[0].npkey == 1, "%zu tables, %zu key columns", l.n,
              l.n ? l.tables[0].npkey : 0);
    if (l.n == 1 && l.tables[0].npkey == 1)
      rc = check_key(&l.tables[0], 0, "b", DBP_T_TEXT, pg ? "varchar" : "VARCHAR");
    else
      rc = -1;
  }
  dbp_table_list_free(&l);
  for (int i = 0; i < 2; i++) {
    char *sql = expand(rm, i ? qup : qlo, "");
    dbp_exec(x->c, sql, 0, NULL, 30000, NULL);
    free(sql);
  }
  return rc;
}

/* A zero timeout fails at the first wait for the server, or, where every
 * reply happens to be there already, succeeds; a failure leaves no part of
 * the list (under load the first query's reply may come in time and a
 * later one's not). */
CAT_TEST(zero_timeout_does_not_wait, 30) {
  dbp_table_list l;
  int rc = dbp_list_tables(x->c, NULL, 0, &l);
  CHECK(rc == DBP_ETIMEDOUT || rc == 0);
  if (rc != 0) CHECK(l.n == 0 && l.tables == NULL);
  dbp_table_list_free(&l);
  CHECK(!dbp_conn_is_broken(x->c));
  return expect1(x, "{A}.orders", "A.orders");
}

Test(catalog, kind_names) {
  cr_expect_str_eq(dbp_table_kind_name(DBP_TABLE_BASE), "table");
  cr_expect_str_eq(dbp_table_kind_name(DBP_TABLE_PARTITIONED), "partitioned table");
  cr_expect_str_eq(dbp_table_kind_name(DBP_TABLE_VIEW), "view");
  cr_expect_str_eq(dbp_table_kind_name(DBP_TABLE_MATVIEW), "materialized view");
  cr_expect_str_eq(dbp_table_kind_name((dbp_table_kind)0), "?");
}
