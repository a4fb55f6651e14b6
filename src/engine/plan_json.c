/* Plans as JSON: dbp_plan_to_json and dbp_plan_from_json.
 *
 * The text is read back with libyaml (JSON is YAML's flow style), through
 * the job loader's tree, which knows where every node is, so that a
 * message names the line and column of what is wrong. Two things set
 * YAML apart from JSON, and the writer steers clear of both: a YAML
 * reader refuses the C1 controls and U+FFFE/U+FFFF in its input, and folds
 * U+0085, U+2028 and U+2029 inside a quoted scalar as line breaks. Those
 * are written as \u escapes, which both read the same.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe.h"
#include "job/yaml_tree.h"

/* ---- writing ---- */

/* The code point of the valid UTF-8 sequence of n bytes at p. */
static uint32_t code_point(const unsigned char *p, size_t n) {
  if (n == 1) return p[0];
  uint32_t cp = p[0] & (0x7f >> n);
  for (size_t i = 1; i < n; i++) cp = (cp << 6) | (p[i] & 0x3f);
  return cp;
}

/* Appends s as a JSON string that a YAML reader reads back unchanged;
 * invalid UTF-8 becomes U+FFFD. NULL is null. */
static void put_str(dbp_buf *b, const char *s) {
  if (s == NULL) {
    dbp_buf_puts(b, "null");
    return;
  }
  const unsigned char *u = (const unsigned char *)s;
  size_t left = strlen(s);
  dbp_buf_append(b, "\"", 1);
  while (left > 0) {
    unsigned char c = *u;
    size_t n = 1;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      dbp_buf_append(b, esc, 2);
    } else if (c == '\n') {
      dbp_buf_puts(b, "\\n");
    } else if (c == '\r') {
      dbp_buf_puts(b, "\\r");
    } else if (c == '\t') {
      dbp_buf_puts(b, "\\t");
    } else if (c < 0x20 || c == 0x7f) {
      dbp_buf_printf(b, "\\u%04x", c);
    } else if (c < 0x80) {
      dbp_buf_append(b, u, 1);
    } else if ((n = dbp_utf8_len(u, left)) == 0) {
      dbp_buf_puts(b, "\xEF\xBF\xBD");
      n = 1;
    } else {
      uint32_t cp = code_point(u, n);
      if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
          cp == 0xfffe || cp == 0xffff)
        dbp_buf_printf(b, "\\u%04" PRIx32, cp);
      else
        dbp_buf_append(b, u, n);
    }
    u += n;
    left -= n;
  }
  dbp_buf_append(b, "\"", 1);
}

static void put_vals(dbp_buf *b, char *const *v, size_t n) {
  if (v == NULL) {
    dbp_buf_puts(b, "null");
    return;
  }
  dbp_buf_append(b, "[", 1);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) dbp_buf_puts(b, ", ");
    put_str(b, v[i]);
  }
  dbp_buf_append(b, "]", 1);
}

static const char *kind_name(dbp_db_kind k) {
  return k == DBP_DB_MYSQL ? "mysql" : "postgresql";
}

static void put_table(dbp_buf *b, const dbp_plan_table *t) {
  dbp_buf_puts(b, "{\"schema\": ");
  put_str(b, t->schema);
  dbp_buf_puts(b, ", \"name\": ");
  put_str(b, t->name);
  dbp_buf_puts(b, ", \"qualified\": ");
  put_str(b, t->qualified);
  dbp_buf_puts(b, ", \"table_kind\": ");
  put_str(b, dbp_table_kind_name(t->table_kind));
  dbp_buf_printf(b, ", \"rows_estimate\": %" PRId64 ", \"rows_counted\": %" PRId64,
                 t->rows_estimate, t->rows_counted);
  dbp_buf_puts(b, ", \"method\": ");
  put_str(b, dbp_split_method_name(t->method));
  dbp_buf_puts(b, ", \"key\": [");
  for (size_t i = 0; i < t->nkey; i++) {
    dbp_buf_puts(b, i ? ", {\"name\": " : "{\"name\": ");
    put_str(b, t->key[i]);
    dbp_buf_puts(b, ", \"type\": ");
    put_str(b, dbp_type_name(t->key_type[i]));
    dbp_buf_append(b, "}", 1);
  }
  dbp_buf_puts(b, "], \"parts\": [");
  for (size_t i = 0; i < t->nparts; i++) {
    const dbp_plan_part *p = &t->parts[i];
    dbp_buf_puts(b, i ? ", {\"lo\": " : "{\"lo\": ");
    put_vals(b, p->lo, t->nkey);
    dbp_buf_puts(b, ", \"hi\": ");
    put_vals(b, p->hi, t->nkey);
    dbp_buf_printf(b,
                   ", \"null_key\": %s, \"page_lo\": %" PRIu64 ", \"page_hi\": %" PRIu64
                   ", \"rows_estimate\": %" PRId64 "}",
                   p->null_key ? "true" : "false", p->page_lo, p->page_hi, p->rows_estimate);
  }
  dbp_buf_puts(b, "]}");
}

int dbp_plan_to_json(const dbp_plan *p, dbp_buf *out) {
  if (p == NULL || out == NULL) return DBP_EINVAL;
  dbp_buf_puts(out, "{\"connection\": ");
  put_str(out, p->connection);
  dbp_buf_puts(out, ", \"kind\": ");
  put_str(out, kind_name(p->kind));
  dbp_buf_puts(out, ", \"where\": ");
  put_str(out, p->where);
  dbp_buf_puts(out, ", \"tables\": [");
  for (size_t i = 0; i < p->ntables; i++) {
    if (i > 0) dbp_buf_puts(out, ", ");
    put_table(out, &p->tables[i]);
  }
  dbp_buf_puts(out, "]}");
  return out->oom ? DBP_ENOMEM : 0;
}

/* ---- reading ---- */

typedef struct reader {
  char *err;
  size_t errlen;
  int rc; /* the first failure */
} reader;

typedef const dbp__ynode node;

/* Records what is wrong with node n (NULL: the whole text). */
static int bad(reader *r, node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(reader *r, node *n, const char *fmt, ...) {
  if (r->rc != 0) return r->rc;
  r->rc = DBP_EINVAL;
  if (r->err != NULL && r->errlen > 0) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n != NULL)
      snprintf(r->err, r->errlen, "plan: line %d, column %d: %s", n->line, n->column, msg);
    else
      snprintf(r->err, r->errlen, "plan: %s", msg);
  }
  return r->rc;
}

static int oom(reader *r) {
  if (r->rc == 0) {
    r->rc = DBP_ENOMEM;
    if (r->err != NULL && r->errlen > 0) snprintf(r->err, r->errlen, "plan: out of memory");
  }
  return r->rc;
}

/* Checks that mapping m (called `what`) holds exactly the keys `known`,
 * each once. */
static int check_keys(reader *r, node *m, const char *what, const char *const *known, size_t n) {
  if (m == NULL || m->type != DBP__Y_MAPPING) return bad(r, m, "%s is not an object", what);
  for (size_t i = 0; i < m->count; i++) {
    node *k = m->pairs[i].key;
    if (k->type != DBP__Y_SCALAR) return bad(r, k, "%s has a key that is not a string", what);
    size_t j = 0;
    while (j < n && strcmp(known[j], k->value) != 0) j++;
    if (j == n) return bad(r, k, "%s has an unknown field \"%s\"", what, k->value);
    for (size_t l = 0; l < i; l++)
      if (strcmp(m->pairs[l].key->value, k->value) == 0)
        return bad(r, k, "%s has \"%s\" twice", what, k->value);
  }
  for (size_t j = 0; j < n; j++) {
    size_t i = 0;
    while (i < m->count && strcmp(m->pairs[i].key->value, known[j]) != 0) i++;
    if (i == m->count) return bad(r, m, "%s lacks \"%s\"", what, known[j]);
  }
  return 0;
}

static node *field(node *m, const char *key) {
  for (size_t i = 0; i < m->count; i++)
    if (strcmp(m->pairs[i].key->value, key) == 0) return m->pairs[i].value;
  return NULL;
}

static bool is_null(node *n) {
  return n->type == DBP__Y_SCALAR && n->plain && dbp__ytree_is_null(n);
}

/* A string (quoted), or with nullable also null (*out NULL). */
static int get_str(reader *r, node *m, const char *what, const char *key, bool nullable,
                   char **out) {
  *out = NULL;
  node *n = field(m, key);
  if (nullable && is_null(n)) return 0;
  if (n->type != DBP__Y_SCALAR || n->plain)
    return bad(r, n, "%s: \"%s\" is not a string%s", what, key, nullable ? " or null" : "");
  if (strlen(n->value) != n->length) return bad(r, n, "%s: \"%s\" holds a NUL", what, key);
  *out = strdup(n->value);
  return *out == NULL ? oom(r) : 0;
}

/* An integer of at least `min` (0 for an unsigned one). */
static int get_int(reader *r, node *m, const char *what, const char *key, int64_t min, int64_t *i,
                   uint64_t *u) {
  node *n = field(m, key);
  const char *s = n->value;
  bool ok = n->type == DBP__Y_SCALAR && n->plain && s != NULL;
  bool neg = ok && s[0] == '-';
  ok = ok && s[neg] >= '0' && s[neg] <= '9' && (s[neg] != '0' || s[neg + 1] == '\0');
  for (size_t k = neg; ok && s[k]; k++) ok = s[k] >= '0' && s[k] <= '9';
  if (!ok) return bad(r, n, "%s: \"%s\" is not an integer", what, key);
  errno = 0;
  if (u != NULL) {
    if (neg) return bad(r, n, "%s: \"%s\" is negative", what, key);
    *u = strtoull(s, NULL, 10);
  } else {
    *i = strtoll(s, NULL, 10);
    if (errno == 0 && *i < min) return bad(r, n, "%s: \"%s\" is below %" PRId64, what, key, min);
  }
  if (errno != 0) return bad(r, n, "%s: \"%s\" is out of range", what, key);
  return 0;
}

static int get_bool(reader *r, node *m, const char *what, const char *key, bool *out) {
  node *n = field(m, key);
  if (n->type == DBP__Y_SCALAR && n->plain && strcmp(n->value, "true") == 0)
    *out = true;
  else if (n->type == DBP__Y_SCALAR && n->plain && strcmp(n->value, "false") == 0)
    *out = false;
  else
    return bad(r, n, "%s: \"%s\" is not true or false", what, key);
  return 0;
}

/* The string field `key`, one of names[lo..hi] (NULL entries skipped):
 * its index. */
static int get_name(reader *r, node *m, const char *what, const char *key, const char *(*name)(int),
                    int lo, int hi, int *out) {
  node *n = field(m, key);
  if (n->type == DBP__Y_SCALAR && !n->plain)
    for (int i = lo; i <= hi; i++)
      if (strcmp(name(i), n->value) == 0) {
        *out = i;
        return 0;
      }
  return bad(r, n, "%s: \"%s\" is not a known %s", what, key, key);
}

static const char *method_at(int i) {
  return dbp_split_method_name((dbp_split_method)i);
}
static const char *type_at(int i) {
  return dbp_type_name((dbp_type)i);
}
static const char *table_kind_at(int i) {
  return dbp_table_kind_name((dbp_table_kind)i);
}
static const char *kind_at(int i) {
  return kind_name((dbp_db_kind)i);
}

static int get_list(reader *r, node *m, const char *what, const char *key, node **out) {
  *out = field(m, key);
  if ((*out)->type != DBP__Y_SEQUENCE) return bad(r, *out, "%s: \"%s\" is not a list", what, key);
  return 0;
}

/* lo or hi of a part: null, or one string per key column. */
static int get_bound(reader *r, node *m, const char *what, const char *key, size_t nkey,
                     char ***out) {
  *out = NULL;
  node *n = field(m, key);
  if (is_null(n)) return 0;
  if (n->type != DBP__Y_SEQUENCE || n->count != nkey)
    return bad(r, n, "%s: \"%s\" is not null or a list of %zu strings (one per key column)", what,
               key, nkey);
  if (nkey == 0) return bad(r, n, "%s: \"%s\" is a list but the table has no split key", what, key);
  *out = calloc(nkey, sizeof **out);
  if (*out == NULL) return oom(r);
  for (size_t i = 0; i < nkey; i++) {
    node *v = n->items[i];
    if (v->type != DBP__Y_SCALAR || v->plain || strlen(v->value) != v->length)
      return bad(r, v, "%s: \"%s\" value %zu is not a string", what, key, i + 1);
    if (((*out)[i] = strdup(v->value)) == NULL) return oom(r);
  }
  return 0;
}

static void free_bound(char **v, size_t n) {
  if (v == NULL) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int read_part(reader *r, node *m, const char *what, dbp_plan_table *t, dbp_plan_part *p) {
  static const char *const keys[] = {"lo", "hi", "null_key", "page_lo", "page_hi", "rows_estimate"};
  if (check_keys(r, m, what, keys, 6) != 0) return r->rc;
  char **lo = NULL, **hi = NULL;
  if (get_bound(r, m, what, "lo", t->nkey, &lo) != 0 ||
      get_bound(r, m, what, "hi", t->nkey, &hi) != 0) {
    free_bound(lo, t->nkey);
    free_bound(hi, t->nkey);
    return r->rc;
  }
  p->lo = lo;
  p->hi = hi;
  if (get_bool(r, m, what, "null_key", &p->null_key) != 0 ||
      get_int(r, m, what, "page_lo", 0, NULL, &p->page_lo) != 0 ||
      get_int(r, m, what, "page_hi", 0, NULL, &p->page_hi) != 0 ||
      get_int(r, m, what, "rows_estimate", -1, &p->rows_estimate, NULL) != 0)
    return r->rc;
  if (p->null_key && (t->nkey != 1 || lo != NULL || hi != NULL))
    return bad(r, field(m, "null_key"),
               "%s: a part of NULL keys needs one key column and no bounds", what);
  if ((lo != NULL || hi != NULL || p->null_key) && t->method != DBP_SPLIT_KEY)
    return bad(r, m, "%s: key bounds in a table split by %s", what,
               dbp_split_method_name(t->method));
  if (p->page_hi != 0 && p->page_hi <= p->page_lo)
    return bad(r, field(m, "page_hi"), "%s: \"page_hi\" is not above \"page_lo\"", what);
  return 0;
}

static int read_table(reader *r, node *m, const char *what, dbp_db_kind kind, dbp_plan_table *t) {
  static const char *const keys[] = {"schema",     "name",          "qualified",
                                     "table_kind", "rows_estimate", "rows_counted",
                                     "method",     "key",           "parts"};
  if (check_keys(r, m, what, keys, 9) != 0) return r->rc;
  t->kind = kind;
  int tk = 0, meth = 0;
  node *key, *parts;
  if (get_str(r, m, what, "schema", false, &t->schema) != 0 ||
      get_str(r, m, what, "name", false, &t->name) != 0 ||
      get_str(r, m, what, "qualified", false, &t->qualified) != 0 ||
      get_name(r, m, what, "table_kind", table_kind_at, DBP_TABLE_BASE, DBP_TABLE_MATVIEW, &tk) !=
          0 ||
      get_int(r, m, what, "rows_estimate", -1, &t->rows_estimate, NULL) != 0 ||
      get_int(r, m, what, "rows_counted", -1, &t->rows_counted, NULL) != 0 ||
      get_name(r, m, what, "method", method_at, DBP_SPLIT_NONE, DBP_SPLIT_CTID, &meth) != 0 ||
      get_list(r, m, what, "key", &key) != 0 || get_list(r, m, what, "parts", &parts) != 0)
    return r->rc;
  t->table_kind = (dbp_table_kind)tk;
  t->method = (dbp_split_method)meth;
  if (t->method == DBP_SPLIT_KEY && key->count == 0)
    return bad(r, key, "%s: split by key but \"key\" is empty", what);
  if (key->count > 0) {
    t->key = calloc(key->count, sizeof *t->key);
    t->key_type = calloc(key->count, sizeof *t->key_type);
    if (t->key == NULL || t->key_type == NULL) return oom(r);
    t->nkey = key->count;
  }
  for (size_t i = 0; i < key->count; i++) {
    char kw[200];
    snprintf(kw, sizeof kw, "%s, key column %zu", what, i + 1);
    static const char *const kkeys[] = {"name", "type"};
    int ty = 0;
    if (check_keys(r, key->items[i], kw, kkeys, 2) != 0 ||
        get_str(r, key->items[i], kw, "name", false, &t->key[i]) != 0 ||
        get_name(r, key->items[i], kw, "type", type_at, DBP_T_INTEGER, DBP_T_OTHER, &ty) != 0)
      return r->rc;
    t->key_type[i] = (dbp_type)ty;
  }
  if (parts->count == 0) return bad(r, parts, "%s: \"parts\" is empty", what);
  t->parts = calloc(parts->count, sizeof *t->parts);
  if (t->parts == NULL) return oom(r);
  for (size_t i = 0; i < parts->count; i++) {
    char pw[200];
    snprintf(pw, sizeof pw, "%s, part %zu", what, i + 1);
    t->nparts = i + 1;
    if (read_part(r, parts->items[i], pw, t, &t->parts[i]) != 0) return r->rc;
  }
  return 0;
}

static int read_plan(reader *r, node *root, dbp_plan *out) {
  static const char *const keys[] = {"connection", "kind", "where", "tables"};
  if (root == NULL) return bad(r, NULL, "the text holds no JSON value");
  if (check_keys(r, root, "the plan", keys, 4) != 0) return r->rc;
  int kind = 0;
  node *tables;
  if (get_str(r, root, "the plan", "connection", true, &out->connection) != 0 ||
      get_name(r, root, "the plan", "kind", kind_at, DBP_DB_PG, DBP_DB_MYSQL, &kind) != 0 ||
      get_str(r, root, "the plan", "where", true, &out->where) != 0 ||
      get_list(r, root, "the plan", "tables", &tables) != 0)
    return r->rc;
  out->kind = (dbp_db_kind)kind;
  if (tables->count > 0) {
    out->tables = calloc(tables->count, sizeof *out->tables);
    if (out->tables == NULL) return oom(r);
  }
  for (size_t i = 0; i < tables->count; i++) {
    char what[64];
    snprintf(what, sizeof what, "table %zu", i + 1);
    out->ntables = i + 1;
    if (read_table(r, tables->items[i], what, out->kind, &out->tables[i]) != 0) return r->rc;
  }
  return 0;
}

int dbp_plan_from_json(const char *text, size_t len, dbp_plan *out, char *err, size_t errlen) {
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (out != NULL) *out = (dbp_plan){0};
  reader r = {.err = err, .errlen = errlen};
  if (text == NULL || out == NULL) return bad(&r, NULL, "no text or no result");
  dbp_job_diag diag = {0};
  dbp__ytree y;
  int rc = dbp__ytree_load(&y, text, len, &diag);
  if (rc == DBP_ENOMEM) {
    oom(&r);
  } else if (rc != 0) {
    const dbp_job_error *e = diag.count > 0 ? &diag.errors[0] : NULL;
    r.rc = DBP_EINVAL;
    if (err != NULL && errlen > 0) {
      if (e != NULL && e->line > 0)
        snprintf(err, errlen, "plan: line %d, column %d: not JSON: %s", e->line, e->column,
                 e->message);
      else
        snprintf(err, errlen, "plan: not JSON: %s", e != NULL ? e->message : "unreadable");
    }
  } else {
    read_plan(&r, y.root, out);
  }
  dbp__ytree_free(&y);
  dbp_job_diag_free(&diag);
  if (r.rc != 0) dbp_plan_free(out);
  return r.rc;
}
