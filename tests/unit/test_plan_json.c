/* Plans written as JSON and read back: dbp_plan_to_json, dbp_plan_from_json,
 * and the SQL and descriptions of parts made by hand. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe.h"

/* Values that JSON and YAML treat specially: quotes, backslashes, dots,
 * controls, line breaks of YAML's own (U+0085, U+2028, U+2029), C1
 * controls, U+FEFF, a non-character, emoji, spaces at the ends. */
static const char *const weird[] = {
    "it's \"q\"",
    "back\\slash\\",
    "a.b.c",
    "\xc3\xbcn\xc3\xaf \xf0\x9f\x98\x80",
    " sp ace ",
    "tab\there\nnew\rline",
    "\x01\x1f\x7f",
    "nel\xc2\x85ls\xe2\x80\xa8ps\xe2\x80\xa9",
    "c1\xc2\x80\xc2\x9f bom\xef\xbb\xbf nonchar\xef\xbf\xbf\xef\xbf\xbe",
    "",
    "null",
    "true",
    "-1",
    "# not a comment: {x}, [y] & *z !tag %",
};
#define NWEIRD (sizeof weird / sizeof weird[0])

static char **vals2(const char *a, const char *b) {
  char **v = calloc(2, sizeof *v);
  v[0] = strdup(a);
  v[1] = strdup(b);
  return v;
}

/* A plan of three tables: composite key ranges over the weird values, a
 * single-column key with a NULL part, ctid pages. */
static void make_plan(dbp_plan *p) {
  *p = (dbp_plan){0};
  p->connection = strdup("pg \"main\"");
  p->kind = DBP_DB_PG;
  p->where = strdup("note <> E'\\\\' AND id > 0");
  p->ntables = 3;
  p->tables = calloc(3, sizeof *p->tables);

  dbp_plan_table *t = &p->tables[0];
  t->kind = DBP_DB_PG;
  t->schema = strdup("My \"Schema\".x");
  t->name = strdup("Order.Items \xe2\x80\xa8");
  t->qualified = strdup("\"My \"\"Schema\"\".x\".\"Order.Items \xe2\x80\xa8\"");
  t->table_kind = DBP_TABLE_PARTITIONED;
  t->rows_estimate = 123456789012345;
  t->rows_counted = -1;
  t->method = DBP_SPLIT_KEY;
  t->nkey = 2;
  t->key = calloc(2, sizeof *t->key);
  t->key_type = calloc(2, sizeof *t->key_type);
  t->key[0] = strdup("a\"b");
  t->key[1] = strdup("c.d\\");
  t->key_type[0] = DBP_T_INTEGER;
  t->key_type[1] = DBP_T_TEXT;
  t->nparts = NWEIRD + 1;
  t->parts = calloc(t->nparts, sizeof *t->parts);
  for (size_t i = 0; i < t->nparts; i++) {
    char num[32];
    if (i > 0) {
      snprintf(num, sizeof num, "%zu", i - 1);
      t->parts[i].lo = vals2(num, weird[i - 1]);
    }
    if (i < NWEIRD) {
      snprintf(num, sizeof num, "%zu", i);
      t->parts[i].hi = vals2(num, weird[i]);
    }
    t->parts[i].rows_estimate = (int64_t)i * 1000 - 1;
  }

  t = &p->tables[1];
  t->kind = DBP_DB_PG;
  t->schema = strdup("s");
  t->name = strdup("t");
  t->qualified = strdup("\"s\".\"t\"");
  t->table_kind = DBP_TABLE_BASE;
  t->rows_estimate = -1;
  t->rows_counted = 9223372036854775807;
  t->method = DBP_SPLIT_KEY;
  t->nkey = 1;
  t->key = calloc(1, sizeof *t->key);
  t->key_type = calloc(1, sizeof *t->key_type);
  t->key[0] = strdup("v");
  t->key_type[0] = DBP_T_NUMERIC;
  t->nparts = 3;
  t->parts = calloc(3, sizeof *t->parts);
  t->parts[0].hi = calloc(1, sizeof(char *));
  t->parts[0].hi[0] = strdup("-9223372036854775808.5");
  t->parts[1].lo = calloc(1, sizeof(char *));
  t->parts[1].lo[0] = strdup("-9223372036854775808.5");
  t->parts[2].null_key = true;
  t->parts[2].rows_estimate = 0;

  t = &p->tables[2];
  t->kind = DBP_DB_PG;
  t->schema = strdup("s");
  t->name = strdup("heap");
  t->qualified = strdup("\"s\".\"heap\"");
  t->table_kind = DBP_TABLE_MATVIEW;
  t->rows_estimate = 0;
  t->rows_counted = 0;
  t->method = DBP_SPLIT_CTID;
  t->nparts = 2;
  t->parts = calloc(2, sizeof *t->parts);
  t->parts[0].page_hi = 18446744073709551615u;
  t->parts[0].rows_estimate = 5;
  t->parts[1].page_lo = 18446744073709551615u;
  t->parts[1].rows_estimate = -1;
}

static void check_same_values(const dbp_plan *a, const dbp_plan *b) {
  cr_assert_str_eq(a->connection, b->connection);
  cr_assert_eq(a->kind, b->kind);
  cr_assert_str_eq(a->where, b->where);
  cr_assert_eq(a->ntables, b->ntables);
  for (size_t i = 0; i < a->ntables; i++) {
    const dbp_plan_table *x = &a->tables[i], *y = &b->tables[i];
    cr_assert_str_eq(x->schema, y->schema);
    cr_assert_str_eq(x->name, y->name);
    cr_assert_str_eq(x->qualified, y->qualified);
    cr_assert_eq(x->kind, y->kind);
    cr_assert_eq(x->table_kind, y->table_kind);
    cr_assert_eq(x->rows_estimate, y->rows_estimate);
    cr_assert_eq(x->rows_counted, y->rows_counted);
    cr_assert_eq(x->method, y->method);
    cr_assert_eq(x->nkey, y->nkey);
    for (size_t k = 0; k < x->nkey; k++) {
      cr_assert_str_eq(x->key[k], y->key[k]);
      cr_assert_eq(x->key_type[k], y->key_type[k]);
    }
    cr_assert_eq(x->nparts, y->nparts);
    for (size_t j = 0; j < x->nparts; j++) {
      const dbp_plan_part *p = &x->parts[j], *q = &y->parts[j];
      cr_assert_eq(p->lo == NULL, q->lo == NULL, "table %zu part %zu lo", i, j);
      cr_assert_eq(p->hi == NULL, q->hi == NULL, "table %zu part %zu hi", i, j);
      for (size_t k = 0; p->lo && k < x->nkey; k++) cr_assert_str_eq(p->lo[k], q->lo[k]);
      for (size_t k = 0; p->hi && k < x->nkey; k++) cr_assert_str_eq(p->hi[k], q->hi[k]);
      cr_assert_eq(p->null_key, q->null_key);
      cr_assert_eq(p->page_lo, q->page_lo);
      cr_assert_eq(p->page_hi, q->page_hi);
      cr_assert_eq(p->rows_estimate, q->rows_estimate);
    }
  }
}

Test(plan_json, round_trip_is_exact) {
  dbp_plan p, q;
  make_plan(&p);
  dbp_buf a = {0}, b = {0};
  cr_assert_eq(dbp_plan_to_json(&p, &a), 0);
  char err[512];
  int rc = dbp_plan_from_json(a.data, a.len, &q, err, sizeof err);
  cr_assert_eq(rc, 0, "%s\n%s", err, a.data);
  check_same_values(&p, &q);
  cr_assert_eq(dbp_plan_to_json(&q, &b), 0);
  cr_assert_str_eq(a.data, b.data);
  /* The SQL of every part is the same from either copy. */
  for (size_t i = 0; i < p.ntables; i++)
    for (size_t j = 0; j < p.tables[i].nparts; j++) {
      char *s1 = dbp_plan_part_sql(&p.tables[i], j, p.where);
      char *s2 = dbp_plan_part_sql(&q.tables[i], j, q.where);
      cr_assert(s1 != NULL && s2 != NULL);
      cr_assert_str_eq(s1, s2);
      free(s1);
      free(s2);
    }
  dbp_plan_free(&p);
  dbp_plan_free(&q);
  dbp_buf_free(&a);
  dbp_buf_free(&b);
}

/* What a YAML reader would refuse or fold is escaped; the rest of UTF-8
 * is kept as it is. */
Test(plan_json, escapes_what_yaml_would_change) {
  dbp_plan p;
  make_plan(&p);
  dbp_buf a = {0};
  cr_assert_eq(dbp_plan_to_json(&p, &a), 0);
  cr_assert(strstr(a.data, "\\u2028") != NULL);
  cr_assert(strstr(a.data, "\\u0085") != NULL);
  cr_assert(strstr(a.data, "\\u0080") != NULL);
  cr_assert(strstr(a.data, "\\ufeff") != NULL);
  cr_assert(strstr(a.data, "\\uffff") != NULL);
  cr_assert(strstr(a.data, "\xe2\x80\xa8") == NULL);
  cr_assert(strstr(a.data, "\xc3\xbcn\xc3\xaf \xf0\x9f\x98\x80") != NULL);
  cr_assert(strstr(a.data, "\"kind\": \"postgresql\"") != NULL);
  cr_assert(strstr(a.data, "\"method\": \"ctid\"") != NULL);
  cr_assert(strstr(a.data, "\"page_hi\": 18446744073709551615") != NULL);
  dbp_plan_free(&p);
  dbp_buf_free(&a);
}

Test(plan_json, empty_plan) {
  dbp_plan p = {.kind = DBP_DB_MYSQL}, q;
  dbp_buf a = {0};
  cr_assert_eq(dbp_plan_to_json(&p, &a), 0);
  cr_assert_str_eq(a.data,
                   "{\"connection\": null, \"kind\": \"mysql\", \"where\": null, \"tables\": []}");
  char err[256];
  cr_assert_eq(dbp_plan_from_json(a.data, a.len, &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q.kind, DBP_DB_MYSQL);
  cr_assert_null(q.connection);
  cr_assert_null(q.where);
  cr_assert_eq(q.ntables, 0);
  dbp_plan_free(&q);
  dbp_buf_free(&a);
}

/* Text that is no plan: DBP_EINVAL and a message saying what and where,
 * and nothing to free. */
static void refused(const char *text, const char *want) {
  dbp_plan q;
  char err[512];
  int rc = dbp_plan_from_json(text, strlen(text), &q, err, sizeof err);
  cr_expect_eq(rc, DBP_EINVAL, "%s: %s", text, dbp_err_name(rc));
  cr_expect(strstr(err, want) != NULL, "for %s: message \"%s\" lacks \"%s\"", text, err, want);
  cr_expect(q.tables == NULL && q.connection == NULL && q.where == NULL && q.ntables == 0);
}

#define T0                                                                               \
  "{\"schema\": \"s\", \"name\": \"t\", \"qualified\": \"\\\"s\\\".\\\"t\\\"\", "        \
  "\"table_kind\": \"table\", \"rows_estimate\": -1, \"rows_counted\": -1, \"method\": " \
  "\"key\", \"key\": [{\"name\": \"id\", \"type\": \"integer\"}], \"parts\": "
#define PLAN(tables) \
  "{\"connection\": null, \"kind\": \"postgresql\", \"where\": null, \"tables\": [" tables "]}"
#define PT(parts) PLAN(T0 parts "}")
#define PART(lo, hi)             \
  "{\"lo\": " lo ", \"hi\": " hi \
  ", \"null_key\": false, \"page_lo\": 0, \"page_hi\": 0, \"rows_estimate\": 1}"

Test(plan_json, a_good_base_reads) {
  const char *text = PT("[" PART("null", "[\"5\"]") ", " PART("[\"5\"]", "null") "]");
  dbp_plan q;
  char err[512];
  cr_assert_eq(dbp_plan_from_json(text, strlen(text), &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q.ntables, 1);
  cr_assert_eq(q.tables[0].nparts, 2);
  char *sql = dbp_plan_part_sql(&q.tables[0], 1, NULL);
  cr_assert_str_eq(sql, "SELECT * FROM \"s\".\"t\" WHERE (\"id\" >= E'5')");
  free(sql);
  dbp_plan_free(&q);
}

Test(plan_json, bad_input_is_refused) {
  refused("", "no JSON value");
  refused("{\"connection\": ", "not JSON");
  refused("[1, 2]", "the plan is not an object");
  refused("{\"connection\": null, \"kind\": \"postgresql\", \"where\": null}", "lacks \"tables\"");
  refused(PLAN("") "x", "not JSON");
  refused("{\"connection\": null, \"kind\": \"oracle\", \"where\": null, \"tables\": []}",
          "\"kind\" is not a known kind");
  refused("{\"connection\": 5, \"kind\": \"mysql\", \"where\": null, \"tables\": []}",
          "\"connection\" is not a string or null");
  refused("{\"connection\": null, \"kind\": \"mysql\", \"where\": null, \"tables\": {}}",
          "\"tables\" is not a list");
  refused(
      "{\"connection\": null, \"connection\": null, \"kind\": \"mysql\", \"where\": null, "
      "\"tables\": []}",
      "twice");
  refused("{\"connection\": null, \"kind\": \"mysql\", \"where\": null, \"tables\": [], \"x\": 1}",
          "unknown field \"x\"");
  refused(PT("[]"), "table 1: \"parts\" is empty");
  refused(PT("[" PART("[\"1\", \"2\"]", "null") "]"), "one per key column");
  refused(PT("[" PART("[1]", "null") "]"), "table 1, part 1: \"lo\" value 1 is not a string");
  refused(PT("[" PART("null", "null") ", 7]"), "table 1, part 2 is not an object");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": 1, \"page_lo\": 0, \"page_hi\": 0, "
             "\"rows_estimate\": 1}]"),
          "\"null_key\" is not true or false");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": false, \"page_lo\": -3, "
             "\"page_hi\": 0, \"rows_estimate\": 1}]"),
          "\"page_lo\" is negative");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": false, \"page_lo\": 0, "
             "\"page_hi\": 0, \"rows_estimate\": -2}]"),
          "\"rows_estimate\" is below -1");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": false, \"page_lo\": 0, "
             "\"page_hi\": 0, \"rows_estimate\": 99999999999999999999}]"),
          "out of range");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": false, \"page_lo\": 0, "
             "\"page_hi\": 0, \"rows_estimate\": 1.5}]"),
          "is not an integer");
  refused(PT("[{\"lo\": null, \"hi\": null, \"null_key\": false, \"page_lo\": 9, "
             "\"page_hi\": 4, \"rows_estimate\": 1}]"),
          "\"page_hi\" is not above \"page_lo\"");
  refused(PLAN("{\"schema\": \"s\", \"name\": \"t\", \"qualified\": \"q\", \"table_kind\": "
               "\"table\", \"rows_estimate\": -1, \"rows_counted\": -1, \"method\": \"key\", "
               "\"key\": [], \"parts\": [" PART("null", "null") "]}"),
          "split by key but \"key\" is empty");
  refused(PLAN("{\"schema\": \"s\", \"name\": \"t\", \"qualified\": \"q\", \"table_kind\": "
               "\"table\", \"rows_estimate\": -1, \"rows_counted\": -1, \"method\": \"bogus\", "
               "\"key\": [], \"parts\": [" PART("null", "null") "]}"),
          "\"method\" is not a known method");
  refused(PLAN("{\"schema\": \"s\", \"name\": \"t\", \"qualified\": \"q\", \"table_kind\": "
               "\"table\", \"rows_estimate\": -1, \"rows_counted\": -1, \"method\": \"none\", "
               "\"key\": [{\"name\": \"id\", \"type\": \"blob\"}], \"parts\": [" PART("null",
                                                                                      "null") "]}"),
          "key column 1: \"type\" is not a known type");
  refused(PLAN("{\"schema\": \"s\", \"name\": \"t\", \"qualified\": \"q\", \"table_kind\": "
               "\"table\", \"rows_estimate\": -1, \"rows_counted\": -1, \"method\": \"ctid\", "
               "\"key\": [{\"name\": \"id\", \"type\": \"text\"}], \"parts\": [" PART("[\"a\"]",
                                                                                      "null") "]}"),
          "key bounds in a table split by ctid");
  refused(PT("[" PART("null", "null") "]") "\n---\n{}", "not JSON");
  /* A NUL inside a string. */
  const char nul[] = PT("[" PART("[\"a\\u0000b\"]", "null") "]");
  refused(nul, "is not a string");
}

/* Both results NULL or an argument missing. */
Test(plan_json, null_arguments) {
  dbp_plan q;
  char err[128];
  cr_expect_eq(dbp_plan_from_json(NULL, 0, &q, err, sizeof err), DBP_EINVAL);
  cr_expect_eq(dbp_plan_to_json(NULL, NULL), DBP_EINVAL);
  cr_expect_null(dbp_plan_part_sql(NULL, 0, NULL));
  dbp_plan_free(NULL);
  dbp_plan_table_free(NULL);
}

/* The SQL and descriptions of parts made by hand, in both dialects. */
Test(plan_json, part_sql_and_describe) {
  dbp_plan p;
  make_plan(&p);
  dbp_plan_table *t = &p.tables[0];
  char *s = dbp_plan_part_sql(t, 1, NULL);
  cr_assert_str_eq(s,
                   "SELECT * FROM \"My \"\"Schema\"\".x\".\"Order.Items \xe2\x80\xa8\" WHERE "
                   "((\"a\"\"b\", \"c.d\\\") >= (E'0', E'it\\'s \"q\"') AND "
                   "(\"a\"\"b\", \"c.d\\\") < (E'1', E'back\\\\slash\\\\'))");
  free(s);
  s = dbp_plan_part_describe(t, 1);
  cr_assert_str_eq(s,
                   "(a\"b, c.d\\) >= (0, 'it''s \"q\"') AND (a\"b, c.d\\) < (1, 'back\\slash\\')");
  free(s);
  /* MariaDB: the expanded comparison, bare numbers, hex strings. */
  t->kind = DBP_DB_MYSQL;
  free(t->qualified);
  t->qualified = strdup("`s`.`t`");
  s = dbp_plan_part_sql(t, 1, "x = 1");
  cr_assert_str_eq(s,
                   "SELECT * FROM `s`.`t` WHERE (\nx = 1\n) AND "
                   "((`a\"b` > 0 OR (`a\"b` = 0 AND (`c.d\\` >= _utf8mb4 X'6974277320227122'))) "
                   "AND (`a\"b` < 1 OR (`a\"b` = 1 AND (`c.d\\` < _utf8mb4 "
                   "X'6261636b5c736c6173685c'))))");
  free(s);
  t = &p.tables[1];
  s = dbp_plan_part_sql(t, 0, "");
  cr_assert_str_eq(s, "SELECT * FROM \"s\".\"t\" WHERE (\"v\" < E'-9223372036854775808.5')");
  free(s);
  s = dbp_plan_part_sql(t, 2, NULL);
  cr_assert_str_eq(s, "SELECT * FROM \"s\".\"t\" WHERE (\"v\" IS NULL)");
  free(s);
  s = dbp_plan_part_describe(t, 2);
  cr_assert_str_eq(s, "v IS NULL");
  free(s);
  s = dbp_plan_part_describe(t, 0);
  cr_assert_str_eq(s, "v < -9223372036854775808.5");
  free(s);
  cr_assert_null(dbp_plan_part_sql(t, 3, NULL));
  t = &p.tables[2];
  t->parts[0].page_hi = 128;
  t->parts[1].page_lo = 128;
  s = dbp_plan_part_sql(t, 0, NULL);
  cr_assert_str_eq(s, "SELECT * FROM \"s\".\"heap\" WHERE (ctid < '(128,0)'::tid)");
  free(s);
  s = dbp_plan_part_sql(t, 1, "a");
  cr_assert_str_eq(s, "SELECT * FROM \"s\".\"heap\" WHERE (\na\n) AND (ctid >= '(128,0)'::tid)");
  free(s);
  s = dbp_plan_part_describe(t, 0);
  cr_assert_str_eq(s, "pages 0-127");
  free(s);
  s = dbp_plan_part_describe(t, 1);
  cr_assert_str_eq(s, "pages 128 to the end");
  free(s);
  dbp_plan_free(&p);
  cr_assert_str_eq(dbp_split_method_name(DBP_SPLIT_NONE), "none");
  cr_assert_str_eq(dbp_split_method_name(DBP_SPLIT_KEY), "key");
  cr_assert_str_eq(dbp_split_method_name(DBP_SPLIT_CTID), "ctid");
}

/* A part of every row has no WHERE at all. */
Test(plan_json, whole_table_part) {
  dbp_plan_table t = {.kind = DBP_DB_MYSQL, .method = DBP_SPLIT_NONE, .nparts = 1};
  dbp_plan_part part = {.rows_estimate = -1};
  t.parts = &part;
  t.qualified = (char *)"`d`.`t`";
  char *s = dbp_plan_part_sql(&t, 0, NULL);
  cr_assert_str_eq(s, "SELECT * FROM `d`.`t`");
  free(s);
  s = dbp_plan_part_describe(&t, 0);
  cr_assert_str_eq(s, "all rows");
  free(s);
}
