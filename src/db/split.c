/* The planner: dbp_plan_split and the SQL of each part.
 *
 * How the boundaries are found. The key is walked in key order, on the
 * server, one boundary per statement: the first boundary is the row at
 * position `step` of the key order, each next one the row `step` positions
 * past the previous boundary,
 *
 *   SELECT k FROM t WHERE [(where) AND] k > b ORDER BY k LIMIT 1 OFFSET step - 1
 *
 * so that every part [b(i-1), b(i)) holds exactly `step` rows of a unique
 * key, however skewed or sparse its values are. The walk reads the key's
 * index once from end to end (OFFSET skips along the index), which for a
 * table worth splitting costs far less than the export itself. The
 * alternatives are cheaper but not exact: PostgreSQL's pg_stats histograms
 * are stale after bulk loads and missing for tables never analysed, MariaDB
 * has them only after ANALYZE TABLE ... PERSISTENT, and sampling gives
 * parts of uneven size, worse the more skewed the key. `partitions` N counts
 * the rows first (step = ceil(count / N)); `chunk_rows` is the step itself
 * and needs no count.
 *
 * Whatever the boundaries, the parts read every row once: they are
 * half-open ranges in the server's own order, the walk compares with the
 * very predicates the parts use (so the collation deciding text order is
 * the same in both), and the values are written as literals whose meaning
 * no session setting changes. Each boundary is strictly above the one
 * before (the walk asks for k > b), so a column with repeated values only
 * makes parts uneven.
 *
 * Two integer shortcuts skip the walk, with the same guarantee: a single
 * integer key whose span max - min + 1 is within 5% of the catalog's row
 * estimate is split into ranges of equal width without even the count (the
 * count is a pass over the table before any part can start, and what a
 * user comparing with hand-made range copies pays for), and one whose
 * count equals its span gets the walk's exact boundaries by arithmetic.
 *
 * Tables without a key on PostgreSQL are split by heap pages (ctid ranges)
 * instead, the last part open above so that a table that grew since
 * planning is still read whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe.h"

const char *dbp_split_method_name(dbp_split_method m) {
  switch (m) {
    case DBP_SPLIT_NONE:
      return "none";
    case DBP_SPLIT_KEY:
      return "key";
    case DBP_SPLIT_CTID:
      return "ctid";
  }
  return "?";
}

/* ---- freeing ---- */

static void free_vals(char **v, size_t n) {
  if (v == NULL) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

void dbp_plan_table_free(dbp_plan_table *t) {
  if (t == NULL) return;
  free(t->schema);
  free(t->name);
  free(t->qualified);
  for (size_t i = 0; i < t->nparts && t->parts != NULL; i++) {
    free_vals(t->parts[i].lo, t->nkey);
    free_vals(t->parts[i].hi, t->nkey);
  }
  free(t->parts);
  if (t->key != NULL)
    for (size_t i = 0; i < t->nkey; i++) free(t->key[i]);
  free(t->key);
  free(t->key_type);
  *t = (dbp_plan_table){0};
}

void dbp_plan_free(dbp_plan *p) {
  if (p == NULL) return;
  free(p->connection);
  free(p->where);
  for (size_t i = 0; i < p->ntables && p->tables != NULL; i++) dbp_plan_table_free(&p->tables[i]);
  free(p->tables);
  *p = (dbp_plan){0};
}

/* ---- literals and predicates ---- */

/* An SQL number as MariaDB prints integers, decimals and doubles:
 * [-]digits[.digits][e[+-]digits]. */
static bool is_number(const char *s) {
  if (*s == '-' || *s == '+') s++;
  if (*s < '0' || *s > '9') return false;
  while (*s >= '0' && *s <= '9') s++;
  if (*s == '.') {
    s++;
    while (*s >= '0' && *s <= '9') s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    if (*s < '0' || *s > '9') return false;
    while (*s >= '0' && *s <= '9') s++;
  }
  return *s == '\0';
}

static bool is_numeric_type(dbp_type t) {
  return t == DBP_T_INTEGER || t == DBP_T_NUMERIC || t == DBP_T_FLOAT;
}

static void put_hex(dbp_buf *b, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    char h[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
    dbp_buf_append(b, h, 2);
  }
}

/* Appends value v of a column of type t as a literal that no setting of
 * the server changes. PostgreSQL: an E'' string without a type, so that
 * the column's type reads it (bytes are kept as "\x" and hex, bytea's own
 * input form). MariaDB: numbers bare (a BIGINT compared with a string goes
 * through double and loses precision), bytes as X'' and everything else as
 * a utf8mb4 hex string, which is coercible: the column's collation decides
 * the comparison, as it decides the walk's ORDER BY. */
static void put_literal(dbp_buf *b, dbp_db_kind kind, dbp_type t, const char *v) {
  if (kind == DBP_DB_PG) {
    dbp_buf_puts(b, "E'");
    for (const char *s = v; *s; s++) {
      if (*s == '\'' || *s == '\\') dbp_buf_append(b, "\\", 1);
      dbp_buf_append(b, s, 1);
    }
    dbp_buf_append(b, "'", 1);
    return;
  }
  if (is_numeric_type(t) && is_number(v)) {
    dbp_buf_puts(b, v);
  } else if (t == DBP_T_BYTES && v[0] == '\\' && v[1] == 'x') {
    dbp_buf_puts(b, "X'");
    dbp_buf_puts(b, v + 2);
    dbp_buf_append(b, "'", 1);
  } else {
    dbp_buf_puts(b, "_utf8mb4 X'");
    put_hex(b, (const unsigned char *)v, strlen(v));
    dbp_buf_append(b, "'", 1);
  }
}

/* A column name quoted for the dialect: quotes doubled, dots kept. */
static void put_name(dbp_buf *b, dbp_db_kind kind, const char *name) {
  char q = kind == DBP_DB_MYSQL ? '`' : '"';
  dbp_buf_append(b, &q, 1);
  for (const char *s = name; *s; s++) {
    if (*s == q) dbp_buf_append(b, &q, 1);
    dbp_buf_append(b, s, 1);
  }
  dbp_buf_append(b, &q, 1);
}

static void put_key_list(dbp_buf *b, const dbp_plan_table *t) {
  for (size_t i = 0; i < t->nkey; i++) {
    if (i > 0) dbp_buf_puts(b, ", ");
    put_name(b, t->kind, t->key[i]);
  }
}

/* Appends "key OP vals", lexicographic for a composite key. op is ">=",
 * ">" or "<". PostgreSQL compares rows, ("a", "b") >= (E'1', E'x'), which
 * its btree scans take as an index condition; MariaDB's range optimizer
 * takes the expanded form (a > 1 OR (a = 1 AND b >= 'x')) instead. */
static void put_compare(dbp_buf *b, const dbp_plan_table *t, char *const *vals, const char *op) {
  if (t->nkey == 1) {
    put_name(b, t->kind, t->key[0]);
    dbp_buf_printf(b, " %s ", op);
    put_literal(b, t->kind, t->key_type[0], vals[0]);
    return;
  }
  if (t->kind == DBP_DB_PG) {
    dbp_buf_append(b, "(", 1);
    put_key_list(b, t);
    dbp_buf_printf(b, ") %s (", op);
    for (size_t i = 0; i < t->nkey; i++) {
      if (i > 0) dbp_buf_puts(b, ", ");
      put_literal(b, t->kind, t->key_type[i], vals[i]);
    }
    dbp_buf_append(b, ")", 1);
    return;
  }
  const char *strict = op[0] == '<' ? "<" : ">";
  for (size_t i = 0; i < t->nkey; i++) {
    bool last = i + 1 == t->nkey;
    dbp_buf_append(b, "(", 1);
    put_name(b, t->kind, t->key[i]);
    dbp_buf_printf(b, " %s ", last ? op : strict);
    put_literal(b, t->kind, t->key_type[i], vals[i]);
    if (last) break;
    dbp_buf_puts(b, " OR (");
    put_name(b, t->kind, t->key[i]);
    dbp_buf_puts(b, " = ");
    put_literal(b, t->kind, t->key_type[i], vals[i]);
    dbp_buf_puts(b, " AND ");
  }
  for (size_t i = 0; i + 1 < t->nkey; i++) dbp_buf_puts(b, "))");
  dbp_buf_append(b, ")", 1);
}

/* Appends the predicate of part p; nothing for a part of every row. */
static void put_part_predicate(dbp_buf *b, const dbp_plan_table *t, const dbp_plan_part *p) {
  if (t->method == DBP_SPLIT_KEY && t->nkey > 0) {
    if (p->null_key) {
      put_name(b, t->kind, t->key[0]);
      dbp_buf_puts(b, " IS NULL");
      return;
    }
    if (p->lo != NULL) put_compare(b, t, p->lo, ">=");
    if (p->lo != NULL && p->hi != NULL) dbp_buf_puts(b, " AND ");
    if (p->hi != NULL) put_compare(b, t, p->hi, "<");
  } else if (t->method == DBP_SPLIT_CTID) {
    if (p->page_lo > 0) dbp_buf_printf(b, "ctid >= '(%" PRIu64 ",0)'::tid", p->page_lo);
    if (p->page_lo > 0 && p->page_hi > 0) dbp_buf_puts(b, " AND ");
    if (p->page_hi > 0) dbp_buf_printf(b, "ctid < '(%" PRIu64 ",0)'::tid", p->page_hi);
  }
}

static char *finish(dbp_buf *b) {
  if (b->oom) {
    dbp_buf_free(b);
    return NULL;
  }
  if (b->data == NULL) dbp_buf_puts(b, "");
  return b->data;
}

char *dbp_plan_part_sql(const dbp_plan_table *t, size_t part, const char *where) {
  if (t == NULL || part >= t->nparts || t->qualified == NULL) return NULL;
  dbp_buf pred = {0}, b = {0};
  put_part_predicate(&pred, t, &t->parts[part]);
  bool has_where = where != NULL && where[0] != '\0';
  dbp_buf_puts(&b, "SELECT * FROM ");
  dbp_buf_puts(&b, t->qualified);
  if (has_where || pred.len > 0) dbp_buf_puts(&b, " WHERE ");
  if (has_where) dbp_buf_printf(&b, "(\n%s\n)", where);
  if (has_where && pred.len > 0) dbp_buf_puts(&b, " AND ");
  if (pred.len > 0) dbp_buf_printf(&b, "(%s)", pred.data);
  if (pred.oom) b.oom = true;
  dbp_buf_free(&pred);
  return finish(&b);
}

/* A value for people: bare for numbers, else in single quotes. */
static void put_shown(dbp_buf *b, dbp_type t, const char *v) {
  if (is_numeric_type(t) && is_number(v)) {
    dbp_buf_puts(b, v);
    return;
  }
  dbp_buf_append(b, "'", 1);
  for (const char *s = v; *s; s++) {
    if (*s == '\'') dbp_buf_append(b, "'", 1);
    dbp_buf_append(b, s, 1);
  }
  dbp_buf_append(b, "'", 1);
}

static void show_compare(dbp_buf *b, const dbp_plan_table *t, char *const *vals, const char *op) {
  bool many = t->nkey > 1;
  if (many) dbp_buf_append(b, "(", 1);
  for (size_t i = 0; i < t->nkey; i++) dbp_buf_printf(b, "%s%s", i ? ", " : "", t->key[i]);
  dbp_buf_printf(b, "%s %s %s", many ? ")" : "", op, many ? "(" : "");
  for (size_t i = 0; i < t->nkey; i++) {
    if (i > 0) dbp_buf_puts(b, ", ");
    put_shown(b, t->key_type[i], vals[i]);
  }
  if (many) dbp_buf_append(b, ")", 1);
}

char *dbp_plan_part_describe(const dbp_plan_table *t, size_t part) {
  if (t == NULL || part >= t->nparts) return NULL;
  const dbp_plan_part *p = &t->parts[part];
  dbp_buf b = {0};
  if (t->method == DBP_SPLIT_KEY && t->nkey > 0 && p->null_key) {
    dbp_buf_printf(&b, "%s IS NULL", t->key[0]);
  } else if (t->method == DBP_SPLIT_KEY && t->nkey > 0 && (p->lo != NULL || p->hi != NULL)) {
    if (p->lo != NULL) show_compare(&b, t, p->lo, ">=");
    if (p->lo != NULL && p->hi != NULL) dbp_buf_puts(&b, " AND ");
    if (p->hi != NULL) show_compare(&b, t, p->hi, "<");
  } else if (t->method == DBP_SPLIT_CTID && p->page_hi > 0) {
    dbp_buf_printf(&b, "pages %" PRIu64 "-%" PRIu64, p->page_lo, p->page_hi - 1);
  } else if (t->method == DBP_SPLIT_CTID && p->page_lo > 0) {
    dbp_buf_printf(&b, "pages %" PRIu64 " to the end", p->page_lo);
  } else {
    dbp_buf_puts(&b, "all rows");
  }
  return finish(&b);
}

/* ---- planning ---- */

typedef struct planner {
  dbp_conn *c;
  dbp_db_kind kind;
  const dbp_table_info *t;
  const dbp_split_options *o;
  int64_t deadline; /* loop clock, -1 none */
  dbp_dberr *err;
  dbp_plan_table *out;
  bool nullable; /* the split column may be NULL */
} planner;

static int fail(planner *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(planner *p, int code, const char *fmt, ...) {
  if (p->err != NULL) {
    *p->err = (dbp_dberr){.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* A failed statement: the connection's own account of it. */
static int db_fail(planner *p, int rc) {
  if (p->err != NULL) {
    const dbp_dberr *e = dbp_conn_error(p->c);
    if (e != NULL) *p->err = *e;
    p->err->code = rc;
    if (p->err->message[0] == '\0')
      snprintf(p->err->message, sizeof p->err->message, "planning %s: %s", p->t->qualified,
               dbp_strerror(rc));
  }
  return rc;
}

static int64_t left_ms(planner *p) {
  if (p->deadline < 0) return DBP_FOREVER;
  int64_t now = (int64_t)dbp_now(dbp_conn_rt(p->c));
  return p->deadline > now ? p->deadline - now : 0;
}

static bool valid_utf8(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  while (n > 0) {
    size_t k = dbp_utf8_len(u, n);
    if (k == 0) return false;
    u += k;
    n -= k;
  }
  return true;
}

/* Runs sql and reads its first row's first n values into vals (malloc'd
 * strings; bytes as "\x" and hex). Returns 1 with a row, 0 with none (or
 * one holding a NULL or text that is not UTF-8, which no plan can keep),
 * or an error (recorded in p->err). */
static int query_row(planner *p, const char *sql, size_t np, const dbp_param *params, size_t n,
                     char **vals) {
  for (size_t i = 0; i < n; i++) vals[i] = NULL;
  int rc = dbp_query(p->c, sql, np, params, left_ms(p));
  if (rc != 0) return db_fail(p, rc);
  dbp_row row;
  rc = dbp_fetch(p->c, &row);
  if (rc < 0) return db_fail(p, rc);
  if (rc == 0) return 0;
  const dbp_column *cols = dbp_columns(p->c);
  bool usable = row.ncols >= n;
  for (size_t i = 0; usable && i < n; i++) {
    if (row.vals[i] == NULL) {
      usable = false;
      break;
    }
    dbp_buf v = {0};
    if (cols[i].type == DBP_T_BYTES) {
      dbp_buf_puts(&v, "\\x");
      put_hex(&v, (const unsigned char *)row.vals[i], row.lens[i]);
    } else if (memchr(row.vals[i], '\0', row.lens[i]) == NULL &&
               valid_utf8(row.vals[i], row.lens[i])) {
      dbp_buf_append(&v, row.vals[i], row.lens[i]);
    } else {
      usable = false;
      break;
    }
    vals[i] = finish(&v);
    if (vals[i] == NULL) {
      for (size_t k = 0; k < i; k++) free(vals[k]);
      dbp_query_close(p->c);
      return fail(p, DBP_ENOMEM, "out of memory");
    }
  }
  while ((rc = dbp_fetch(p->c, &row)) > 0) {
  }
  if (!usable || rc < 0) {
    for (size_t i = 0; i < n; i++) {
      free(vals[i]);
      vals[i] = NULL;
    }
  }
  if (rc < 0) return db_fail(p, rc);
  return usable ? 1 : 0;
}

static int64_t to_int(const char *s) {
  return s == NULL ? -1 : strtoll(s, NULL, 10);
}

/* a / b rounded up, without overflow for any b. */
static uint64_t ceil_div(uint64_t a, uint64_t b) {
  return a / b + (a % b != 0);
}

/* Fills out for one part of every row. */
static int one_part(planner *p, dbp_split_method m, int64_t rows) {
  p->out->method = m;
  p->out->parts = calloc(1, sizeof *p->out->parts);
  if (p->out->parts == NULL) return fail(p, DBP_ENOMEM, "out of memory");
  p->out->nparts = 1;
  p->out->parts[0].rows_estimate = rows;
  return 0;
}

static char *dup_str(const char *s) {
  return s == NULL ? NULL : strdup(s);
}

/* Sets the split key to n columns. */
static int set_key(planner *p, size_t n) {
  p->out->key = calloc(n, sizeof *p->out->key);
  p->out->key_type = calloc(n, sizeof *p->out->key_type);
  if (p->out->key == NULL || p->out->key_type == NULL) return fail(p, DBP_ENOMEM, "out of memory");
  p->out->nkey = n;
  return 0;
}

/* Looks the chosen column up in the catalog: its name as stored, whether
 * it may be NULL, its type as dbp_columns reports it. *plain is false for a
 * MariaDB ENUM or SET, which sorts by its list's order but compares with
 * strings as text, so that no range of it can be trusted. */
static int lookup_column(planner *p, bool *plain) {
  const dbp_table_info *t = p->t;
  const char *col = p->o->column;
  dbp_param prm[5] = {{t->schema, strlen(t->schema)},
                      {t->name, strlen(t->name)},
                      {col, strlen(col)},
                      {t->schema, strlen(t->schema)},
                      {t->name, strlen(t->name)}};
  static const char pg_sql[] =
      "SELECT a.attname, CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END, ''"
      " FROM pg_catalog.pg_attribute a"
      " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
      " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
      " WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3"
      " AND a.attnum > 0 AND NOT a.attisdropped";
  static const char my_sql[] =
      "SELECT COLUMN_NAME, IS_NULLABLE, DATA_TYPE FROM information_schema.COLUMNS"
      " WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?"
      " AND CAST(TABLE_SCHEMA AS BINARY) = CAST(? AS BINARY)"
      " AND CAST(TABLE_NAME AS BINARY) = CAST(? AS BINARY)";
  bool pg = p->kind == DBP_DB_PG;
  char *v[3];
  int rc = query_row(p, pg ? pg_sql : my_sql, pg ? 3 : 5, prm, 3, v);
  if (rc < 0) return rc;
  if (rc == 0)
    return fail(p, DBP_EINVAL, "table %s.%s has no column \"%s\" to split by", t->schema, t->name,
                col);
  p->nullable = strcmp(v[1], "NO") != 0;
  *plain = strcmp(v[2], "enum") != 0 && strcmp(v[2], "set") != 0;
  rc = set_key(p, 1);
  if (rc == 0) {
    p->out->key[0] = v[0];
    v[0] = NULL;
  }
  free(v[0]);
  free(v[1]);
  free(v[2]);
  if (rc != 0) return rc;
  /* The type as the connection reports the column's values. */
  dbp_buf sql = {0};
  dbp_buf_puts(&sql, "SELECT ");
  put_name(&sql, p->kind, p->out->key[0]);
  dbp_buf_printf(&sql, " FROM %s LIMIT 0", t->qualified);
  if (sql.oom) {
    dbp_buf_free(&sql);
    return fail(p, DBP_ENOMEM, "out of memory");
  }
  rc = dbp_query(p->c, sql.data, 0, NULL, left_ms(p));
  dbp_buf_free(&sql);
  if (rc != 0) return db_fail(p, rc);
  p->out->key_type[0] = dbp_ncols(p->c) > 0 ? dbp_columns(p->c)[0].type : DBP_T_OTHER;
  dbp_row row;
  while ((rc = dbp_fetch(p->c, &row)) > 0) {
  }
  return rc < 0 ? db_fail(p, rc) : 0;
}

/* Appends "FROM t WHERE ..." with the filter and `extra` (may be ""). */
static void put_from(dbp_buf *b, planner *p, const char *extra) {
  bool w = p->o->where != NULL && p->o->where[0] != '\0';
  dbp_buf_printf(b, " FROM %s", p->t->qualified);
  if (w || extra[0] != '\0') dbp_buf_puts(b, " WHERE ");
  if (w) dbp_buf_printf(b, "(\n%s\n)", p->o->where);
  if (w && extra[0] != '\0') dbp_buf_puts(b, " AND ");
  dbp_buf_puts(b, extra);
}

static bool same_vals(char *const *a, char *const *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(a[i], b[i]) != 0) return false;
  return true;
}

static char **copy_vals(char *const *v, size_t n) {
  char **c = calloc(n, sizeof *c);
  if (c == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    c[i] = strdup(v[i]);
    if (c[i] == NULL) {
      free_vals(c, i);
      return NULL;
    }
  }
  return c;
}

/* s as a whole int64, or false. */
static bool parse_int64(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0') return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

/* The min and max of a single integer key, once read. */
typedef struct key_range {
  bool known;
  int64_t min, max;
} key_range;

/* Reads a key_range from two values; false when they are no integers. */
static bool range_from(key_range *r, const char *mn, const char *mx) {
  r->known = parse_int64(mn, &r->min) && parse_int64(mx, &r->max) && r->max >= r->min;
  return r->known;
}

/* Counts the rows (and those whose split column is not NULL). For a
 * single integer key that cannot be NULL, *dense tells whether its values
 * are every integer from *lo up (count = max - min + 1): then the walk's
 * boundaries are known without walking (dense may be NULL). The key's min
 * and max are asked for with the count unless `range` already holds them. */
static int count_rows(planner *p, int64_t *all, int64_t *nonnull, bool *dense, int64_t *lo,
                      key_range *range) {
  bool integer_key =
      dense != NULL && !p->nullable && p->out->nkey == 1 && p->out->key_type[0] == DBP_T_INTEGER;
  bool ask_range = integer_key && !range->known;
  if (dense != NULL) *dense = false;
  dbp_buf sql = {0};
  dbp_buf_puts(&sql, "SELECT count(*)");
  if (p->nullable) {
    dbp_buf_puts(&sql, ", count(");
    put_name(&sql, p->kind, p->out->key[0]);
    dbp_buf_puts(&sql, ")");
  } else if (ask_range) {
    dbp_buf_puts(&sql, ", min(");
    put_name(&sql, p->kind, p->out->key[0]);
    dbp_buf_puts(&sql, "), max(");
    put_name(&sql, p->kind, p->out->key[0]);
    dbp_buf_puts(&sql, ")");
  }
  put_from(&sql, p, "");
  if (sql.oom) {
    dbp_buf_free(&sql);
    return fail(p, DBP_ENOMEM, "out of memory");
  }
  char *v[3] = {NULL, NULL, NULL};
  int rc = query_row(p, sql.data, 0, NULL, p->nullable ? 2 : ask_range ? 3 : 1, v);
  dbp_buf_free(&sql);
  if (rc < 0) return rc;
  *all = to_int(v[0]);
  *nonnull = p->nullable ? to_int(v[1]) : *all;
  if (ask_range) range_from(range, v[1], v[2]);
  if (integer_key && range->known && *all > 0 &&
      (uint64_t)range->max - (uint64_t)range->min == (uint64_t)*all - 1) {
    *dense = true;
    *lo = range->min;
  }
  free(v[0]);
  free(v[1]);
  free(v[2]);
  return 0;
}

/* The boundaries of a dense integer key: lo + step, lo + 2 step, ...
 * below lo + rows, exactly where the walk would find them. */
static int dense_bounds(planner *p, int64_t lo, uint64_t rows, uint64_t step, size_t max_bounds,
                        char ****bounds, size_t *nb) {
  size_t n = 0;
  for (uint64_t k = step; k < rows && n < max_bounds; k += step) n++;
  *bounds = calloc(n ? n : 1, sizeof **bounds);
  if (*bounds == NULL) return fail(p, DBP_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    char **v = calloc(1, sizeof *v);
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, (int64_t)((uint64_t)lo + (uint64_t)(i + 1) * step));
    if (v == NULL || (v[0] = strdup(num)) == NULL) {
      free(v);
      return fail(p, DBP_ENOMEM, "out of memory");
    }
    (*bounds)[(*nb)++] = v;
  }
  return 0;
}

/* The statement of the walk's next boundary after prev (NULL: the first). */
static char *walk_sql(planner *p, char *const *prev, uint64_t step) {
  const dbp_plan_table *t = p->out;
  dbp_buf sel = {0}, cond = {0};
  for (size_t i = 0; i < t->nkey; i++) {
    if (i > 0) dbp_buf_puts(&sel, ", ");
    /* PostgreSQL prints dates and times as DateStyle says, which another
     * session may read otherwise; JSON's form is ISO 8601 always. */
    dbp_type ty = t->key_type[i];
    bool iso =
        p->kind == DBP_DB_PG && (ty == DBP_T_DATE || ty == DBP_T_TIMESTAMP || ty == DBP_T_TIME);
    if (iso) dbp_buf_puts(&sel, "pg_catalog.to_json(");
    put_name(&sel, t->kind, t->key[i]);
    if (iso) dbp_buf_puts(&sel, ") #>> '{}'");
  }
  if (prev != NULL) {
    put_compare(&cond, t, prev, ">");
  } else if (p->nullable) {
    put_name(&cond, t->kind, t->key[0]);
    dbp_buf_puts(&cond, " IS NOT NULL");
  }
  dbp_buf b = {0};
  dbp_buf_printf(&b, "SELECT %s", dbp_buf_str(&sel));
  put_from(&b, p, dbp_buf_str(&cond));
  dbp_buf_puts(&b, " ORDER BY ");
  put_key_list(&b, t);
  dbp_buf_printf(&b, " LIMIT 1 OFFSET %" PRIu64, prev != NULL ? step - 1 : step);
  if (sel.oom || cond.oom) b.oom = true;
  dbp_buf_free(&sel);
  dbp_buf_free(&cond);
  return finish(&b);
}

/* A single integer key that cannot be NULL, whose span max - min + 1 is
 * within 5% of the catalog's row estimate: nearly every integer of the
 * span is there, so ranges of equal width hold about equal rows, and the
 * count (a pass over the table, before any part can start) is not needed.
 * min and max are the ends of the key's index; they are kept in *range
 * for the count that follows when the key is not nearly dense. Fills *lo
 * and *span. Returns 1 (use the ranges), 0 (count and walk instead) or an
 * error. */
static int near_dense(planner *p, int64_t *lo, uint64_t *span, key_range *range) {
  const dbp_plan_table *t = p->out;
  int64_t est = p->t->rows_estimate;
  if (p->nullable || t->nkey != 1 || t->key_type[0] != DBP_T_INTEGER || est <= 0) return 0;
  dbp_buf sql = {0};
  dbp_buf_puts(&sql, "SELECT min(");
  put_name(&sql, p->kind, t->key[0]);
  dbp_buf_puts(&sql, "), max(");
  put_name(&sql, p->kind, t->key[0]);
  dbp_buf_puts(&sql, ")");
  put_from(&sql, p, "");
  if (sql.oom) {
    dbp_buf_free(&sql);
    return fail(p, DBP_ENOMEM, "out of memory");
  }
  char *v[2] = {NULL, NULL};
  int rc = query_row(p, sql.data, 0, NULL, 2, v);
  dbp_buf_free(&sql);
  if (rc < 0) return rc;
  int use = 0;
  if (rc == 1 && range_from(range, v[0], v[1])) {
    uint64_t w = (uint64_t)range->max - (uint64_t)range->min; /* span - 1, no overflow */
    uint64_t e = (uint64_t)est;
    uint64_t diff = w + 1 > e ? w + 1 - e : e - (w + 1);
    if (w < UINT64_MAX && diff <= (w + 1) / 20) {
      *lo = range->min;
      *span = w + 1;
      use = 1;
    }
  }
  free(v[0]);
  free(v[1]);
  return use;
}

static int key_split(planner *p) {
  dbp_plan_table *out = p->out;
  out->method = DBP_SPLIT_KEY;
  size_t n = out->nkey;
  uint64_t step;
  size_t max_bounds = SIZE_MAX;
  int64_t all = -1, nonnull = -1, lo = 0;
  bool dense = false;
  uint64_t span = 0;
  key_range range = {0};
  int nd = p->o->partitions > 1 && p->o->where == NULL ? near_dense(p, &lo, &span, &range) : 0;
  if (nd < 0) return nd;
  if (nd == 1) {
    /* Ranges of equal width over a nearly dense key: no count, no walk. */
    all = nonnull = -1;
    dense = true;
    step = ceil_div(span, p->o->partitions);
    max_bounds = p->o->partitions - 1;
  } else if (p->o->partitions > 0) {
    int rc = count_rows(p, &all, &nonnull, &dense, &lo, &range);
    if (rc != 0) return rc;
    out->rows_counted = all;
    if (nonnull <= 0) return one_part(p, DBP_SPLIT_KEY, all < 0 ? -1 : all);
    step = ceil_div((uint64_t)nonnull, p->o->partitions);
    max_bounds = p->o->partitions - 1;
  } else {
    step = p->o->chunk_rows;
  }
  char ***bounds = NULL;
  size_t nb = 0, cap = 0;
  int rc = 0;
  /* Every integer from lo: the boundaries are lo + k * step, no walk. */
  if (dense)
    rc = dense_bounds(p, lo, nd == 1 ? span : (uint64_t)all, step, max_bounds, &bounds, &nb);
  while (!dense && nb < max_bounds) {
    char *sql = walk_sql(p, nb ? bounds[nb - 1] : NULL, step);
    if (sql == NULL) {
      rc = fail(p, DBP_ENOMEM, "out of memory");
      break;
    }
    char **v = calloc(n, sizeof *v);
    if (v == NULL) {
      free(sql);
      rc = fail(p, DBP_ENOMEM, "out of memory");
      break;
    }
    rc = query_row(p, sql, 0, NULL, n, v);
    free(sql);
    /* The same text twice (a float printed rounded): the walk is over. */
    if (rc == 1 && nb > 0 && same_vals(v, bounds[nb - 1], n)) {
      free_vals(v, n);
      rc = 0;
      break;
    }
    if (rc <= 0) {
      free(v);
      break;
    }
    rc = 0;
    if (nb == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char ***g = realloc(bounds, ncap * sizeof *g);
      if (g == NULL) {
        free_vals(v, n);
        rc = fail(p, DBP_ENOMEM, "out of memory");
        break;
      }
      bounds = g;
      cap = ncap;
    }
    bounds[nb++] = v;
  }
  if (rc == 0 && nb == 0) {
    rc = one_part(p, DBP_SPLIT_KEY, all);
  } else if (rc == 0) {
    size_t nparts = nb + 1 + (p->nullable ? 1 : 0);
    out->parts = calloc(nparts, sizeof *out->parts);
    if (out->parts == NULL) rc = fail(p, DBP_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i <= nb; i++) {
      dbp_plan_part *pt = &out->parts[i];
      out->nparts = i + 1;
      if (i > 0 && (pt->lo = copy_vals(bounds[i - 1], n)) == NULL) rc = DBP_ENOMEM;
      if (i < nb && (pt->hi = copy_vals(bounds[i], n)) == NULL) rc = DBP_ENOMEM;
      if (i < nb) {
        pt->rows_estimate = (int64_t)step;
      } else if (nonnull >= 0 || nd == 1) {
        int64_t rest = (nonnull >= 0 ? nonnull : p->t->rows_estimate) - (int64_t)(step * nb);
        pt->rows_estimate = rest > 0 ? rest : 0;
      } else {
        pt->rows_estimate = -1;
      }
    }
    if (rc == 0 && p->nullable) {
      dbp_plan_part *pt = &out->parts[nb + 1];
      out->nparts = nb + 2;
      pt->null_key = true;
      pt->rows_estimate = all >= 0 && nonnull >= 0 ? all - nonnull : -1;
    }
    if (rc == DBP_ENOMEM) fail(p, rc, "out of memory");
  }
  for (size_t i = 0; i < nb; i++) free_vals(bounds[i], n);
  free(bounds);
  return rc;
}

/* PostgreSQL without a key: ranges of heap pages. */
static int ctid_split(planner *p) {
  static const char sql[] =
      "SELECT pg_catalog.pg_relation_size(c.oid)"
      " / pg_catalog.current_setting('block_size')::int8, c.reltuples::int8"
      " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
      " WHERE n.nspname = $1 AND c.relname = $2";
  dbp_param prm[2] = {{p->t->schema, strlen(p->t->schema)}, {p->t->name, strlen(p->t->name)}};
  char *v[2];
  int rc = query_row(p, sql, 2, prm, 2, v);
  if (rc < 0) return rc;
  if (rc == 0)
    return fail(p, DBP_EINVAL, "table %s.%s is not in the catalog", p->t->schema, p->t->name);
  int64_t pages = to_int(v[0]), tuples = to_int(v[1]);
  free(v[0]);
  free(v[1]);
  bool filtered = p->o->where != NULL && p->o->where[0] != '\0';
  int64_t rows = filtered ? -1 : tuples > 0 ? tuples : p->t->rows_estimate;
  uint64_t per;
  if (pages <= 0) return one_part(p, DBP_SPLIT_CTID, rows);
  if (p->o->partitions > 0) {
    per = ceil_div((uint64_t)pages, p->o->partitions);
  } else {
    if (rows <= 0) {
      int64_t nonnull;
      rc = count_rows(p, &rows, &nonnull, NULL, NULL, NULL);
      if (rc != 0) return rc;
      p->out->rows_counted = rows;
    }
    if (rows <= 0) return one_part(p, DBP_SPLIT_CTID, rows);
    double d = (double)p->o->chunk_rows * (double)pages / (double)rows;
    per = d < 1 ? 1 : d >= (double)pages ? (uint64_t)pages : (uint64_t)d;
  }
  size_t nparts = (size_t)ceil_div((uint64_t)pages, per);
  dbp_plan_table *out = p->out;
  out->method = DBP_SPLIT_CTID;
  out->parts = calloc(nparts, sizeof *out->parts);
  if (out->parts == NULL) return fail(p, DBP_ENOMEM, "out of memory");
  out->nparts = nparts;
  for (size_t i = 0; i < nparts; i++) {
    dbp_plan_part *pt = &out->parts[i];
    pt->page_lo = i * per;
    pt->page_hi = i + 1 < nparts ? (i + 1) * per : 0;
    uint64_t span = (i + 1 < nparts ? pt->page_hi : (uint64_t)pages) - pt->page_lo;
    pt->rows_estimate = rows >= 0 ? (int64_t)((double)rows * (double)span / (double)pages) : -1;
  }
  return 0;
}

int dbp_plan_split(dbp_conn *c, const dbp_table_info *t, const dbp_split_options *o,
                   int64_t timeout_ms, dbp_plan_table *out, dbp_dberr *err) {
  if (out != NULL) *out = (dbp_plan_table){0};
  planner p = {.c = c, .t = t, .o = o, .err = err, .out = out};
  if (c == NULL || t == NULL || out == NULL || t->schema == NULL || t->name == NULL ||
      t->qualified == NULL || (t->npkey > 0 && t->pkey == NULL))
    return fail(&p, DBP_EINVAL, "dbp_plan_split: no connection, table or result");
  dbp_split_options none = {0};
  if (o == NULL) p.o = o = &none;
  if (o->partitions > 0 && o->chunk_rows > 0)
    return fail(&p, DBP_EINVAL, "splitting %s.%s: partitions and chunk_rows both given", t->schema,
                t->name);
  p.kind = dbp_conn_kind(c);
  p.deadline = timeout_ms >= 0 ? (int64_t)dbp_now(dbp_conn_rt(c)) + timeout_ms : -1;
  out->kind = p.kind;
  out->schema = dup_str(t->schema);
  out->name = dup_str(t->name);
  out->qualified = dup_str(t->qualified);
  out->table_kind = t->kind;
  out->rows_estimate = t->rows_estimate;
  out->rows_counted = -1;
  int rc = 0;
  if (out->schema == NULL || out->name == NULL || out->qualified == NULL)
    rc = fail(&p, DBP_ENOMEM, "out of memory");
  bool auto_col = o->column == NULL || strcmp(o->column, "auto") == 0;
  bool split = o->chunk_rows > 0 || o->partitions > 1;
  bool plain = true;
  if (rc != 0) {
  } else if (!split || t->kind == DBP_TABLE_VIEW) {
    rc = one_part(&p, DBP_SPLIT_NONE, t->rows_estimate);
  } else if (!auto_col) {
    rc = lookup_column(&p, &plain);
    if (rc == 0 && plain) rc = key_split(&p);
  } else if (t->npkey > 0) {
    rc = set_key(&p, t->npkey);
    for (size_t i = 0; rc == 0 && i < t->npkey; i++) {
      if ((out->key[i] = dup_str(t->pkey[i].name)) == NULL)
        rc = fail(&p, DBP_ENOMEM, "out of memory");
      out->key_type[i] = t->pkey[i].type;
      const char *dt = t->pkey[i].db_type != NULL ? t->pkey[i].db_type : "";
      if (p.kind == DBP_DB_MYSQL && (strcmp(dt, "ENUM") == 0 || strcmp(dt, "SET") == 0))
        plain = false;
    }
    if (rc == 0 && plain) rc = key_split(&p);
  } else if (p.kind == DBP_DB_PG && t->kind != DBP_TABLE_PARTITIONED) {
    rc = ctid_split(&p);
  } else {
    rc = one_part(&p, DBP_SPLIT_NONE, t->rows_estimate);
  }
  if (rc == 0 && !plain) {
    /* A key whose order cannot be trusted: the table as one part. */
    for (size_t i = 0; i < out->nkey; i++) free(out->key[i]);
    free(out->key);
    free(out->key_type);
    out->key = NULL;
    out->key_type = NULL;
    out->nkey = 0;
    rc = one_part(&p, DBP_SPLIT_NONE, t->rows_estimate);
  }
  if (rc != 0) dbp_plan_table_free(out);
  return rc;
}
