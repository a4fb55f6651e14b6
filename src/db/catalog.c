/* The catalog: dbp_list_tables, the tables that patterns name.
 *
 * The patterns are compiled and matched here, in C, never sent: one query
 * reads every relation the catalog shows (name, kind, whether it is in the
 * current schema, the row estimate), the matches are kept and sorted, and
 * then one query per schema that has matches reads the primary keys of its
 * tables, the schema name going in as a bound parameter. The rules the
 * patterns follow are documented in include/dbpipe/db.h.
 *
 * A compiled part is its literal bytes with a mark per byte: a wildcard
 * ('*' or '?') or a byte that stands for itself (quoted, or a plain
 * character, folded to lower case on PostgreSQL).
 */
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"
#include "db/drvkit.h"

/* ---- patterns ---- */

enum { LIT = 0, STAR = 1, ONE = 2 };

typedef struct part {
  char *s;            /* the bytes; a wildcard's byte is its own character */
  unsigned char *how; /* LIT, STAR or ONE per byte */
  size_t n;
  bool wild; /* holds a wildcard */
} part;

typedef struct pattern {
  bool qualified; /* has a schema part */
  part schema, table;
} pattern;

static void part_free(part *p) {
  free(p->s);
  free(p->how);
  p->s = NULL;
  p->how = NULL;
}

/* Reads one part of `src` from *i up to an unquoted '.' or the end. Returns
 * NULL, or why the pattern is refused. */
static const char *part_parse(const char *src, size_t *i, bool fold, part *out) {
  size_t len = strlen(src);
  out->s = malloc(len + 1);
  out->how = malloc(len + 1);
  out->n = 0;
  out->wild = false;
  if (out->s == NULL || out->how == NULL) return "out of memory";
  size_t k = *i;
  bool any = false; /* a quoted run counts, even an empty "" one */
  while (k < len && src[k] != '.') {
    unsigned char ch = (unsigned char)src[k];
    if (ch == '"' || ch == '`') {
      size_t open = k++;
      for (;;) {
        if (k >= len) {
          *i = open;
          return "a quote that never ends";
        }
        if ((unsigned char)src[k] == ch) {
          if (k + 1 < len && (unsigned char)src[k + 1] == ch) {
            k++; /* a doubled quote stands for one */
          } else {
            k++;
            break;
          }
        }
        out->s[out->n] = src[k];
        out->how[out->n++] = LIT;
        k++;
      }
      any = true;
      continue;
    }
    if (ch <= ' ' || ch == 0x7f) {
      *i = k;
      return "whitespace or a control character outside quotes (quote the name)";
    }
    out->s[out->n] = (char)(fold && ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    out->how[out->n] = ch == '*' ? STAR : ch == '?' ? ONE : LIT;
    if (ch == '*' || ch == '?') out->wild = true;
    out->n++;
    any = true;
    k++;
  }
  *i = k;
  return out->n == 0 ? (any ? "an empty quoted name" : "an empty name") : NULL;
}

/* Compiles `src`. Returns NULL, or why it is refused. */
static const char *pattern_parse(const char *src, bool fold, pattern *p) {
  memset(p, 0, sizeof *p);
  size_t i = 0;
  part first;
  const char *why = part_parse(src, &i, fold, &first);
  if (why != NULL) {
    part_free(&first);
    return why;
  }
  if (src[i] == '\0') {
    p->table = first;
    return NULL;
  }
  i++; /* the dot */
  part second;
  why = part_parse(src, &i, fold, &second);
  if (why == NULL && src[i] != '\0') why = "more than one dot outside quotes";
  if (why != NULL) {
    part_free(&first);
    part_free(&second);
    return why;
  }
  p->qualified = true;
  p->schema = first;
  p->table = second;
  return NULL;
}

static void pattern_free(pattern *p) {
  part_free(&p->schema);
  part_free(&p->table);
}

/* The length of the UTF-8 character that starts at s (1 for a byte that
 * starts none, so that any bytes can be matched). */
static size_t char_len(const char *s, size_t left) {
  unsigned char c = (unsigned char)s[0];
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
  if (n > left) return 1;
  for (size_t k = 1; k < n; k++)
    if (((unsigned char)s[k] & 0xc0) != 0x80) return 1;
  return n;
}

/* Does the whole of name match p? A '*' backtracks to the last star only,
 * which is enough for globs (no pattern needs more than one retry point). */
static bool part_match(const part *p, const char *name) {
  size_t nl = strlen(name), pi = 0, ni = 0;
  size_t star_p = (size_t)-1, star_n = 0;
  while (ni < nl) {
    if (pi < p->n && p->how[pi] == STAR) {
      star_p = pi++;
      star_n = ni;
    } else if (pi < p->n && p->how[pi] == ONE) {
      pi++;
      ni += char_len(name + ni, nl - ni);
    } else if (pi < p->n && p->s[pi] == name[ni]) {
      pi++;
      ni++;
    } else if (star_p != (size_t)-1) {
      pi = star_p + 1;
      star_n += char_len(name + star_n, nl - star_n);
      ni = star_n;
    } else {
      return false;
    }
  }
  while (pi < p->n && p->how[pi] == STAR) pi++;
  return pi == p->n;
}

/* ---- what the catalog says of one relation ---- */

typedef struct rel {
  char *schema, *name;
  dbp_table_kind kind;
  bool partition, visible, system;
  int64_t rows;
} rel;

static bool pattern_match(const pattern *p, const rel *r) {
  if (!part_match(&p->table, r->name)) return false;
  return p->qualified ? part_match(&p->schema, r->schema) : r->visible;
}

/* May a match of p list r? Views, partitions and the system schemas need a
 * pattern that names them (see db.h). */
static bool pattern_admits(const pattern *p, const rel *r, bool views) {
  bool exact = p->qualified ? !p->schema.wild && !p->table.wild : !p->table.wild;
  if (r->system && (!p->qualified || p->schema.wild)) return false;
  if ((r->kind == DBP_TABLE_VIEW || r->kind == DBP_TABLE_MATVIEW) && !views && !exact) return false;
  if (r->partition && !exact) return false;
  return true;
}

typedef struct compiled {
  pattern *inc, *exc;
  size_t ninc, nexc;
  bool views;
} compiled;

static bool wanted(const compiled *cf, const rel *r) {
  bool in = false;
  if (cf->ninc == 0) {
    /* Every table: as the pattern *.* would list. */
    in = !r->system && !r->partition &&
         (cf->views || (r->kind != DBP_TABLE_VIEW && r->kind != DBP_TABLE_MATVIEW));
  }
  for (size_t i = 0; i < cf->ninc && !in; i++)
    in = pattern_match(&cf->inc[i], r) && pattern_admits(&cf->inc[i], r, cf->views);
  if (!in) return false;
  for (size_t i = 0; i < cf->nexc; i++)
    if (pattern_match(&cf->exc[i], r)) return false;
  return true;
}

static void compiled_free(compiled *cf) {
  for (size_t i = 0; i < cf->ninc; i++) pattern_free(&cf->inc[i]);
  for (size_t i = 0; i < cf->nexc; i++) pattern_free(&cf->exc[i]);
  free(cf->inc);
  free(cf->exc);
}

/* Compiles one list of patterns; errors recorded in c->err. */
static int compile_list(dbp_conn *c, const char *what, const char *const *src, size_t n,
                        pattern **out, size_t *nout) {
  *nout = 0;
  if (n == 0) return 0;
  if (src == NULL)
    return dbp__seterr(c, DBP_EINVAL, NULL, 0, false, "table filter: %zu %s patterns but no array",
                       n, what);
  *out = calloc(n, sizeof **out);
  if (*out == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (src[i] == NULL)
      return dbp__seterr(c, DBP_EINVAL, NULL, 0, false, "table filter: %s pattern %zu is NULL",
                         what, i + 1);
    const char *why = pattern_parse(src[i], c->kind == DBP_DB_PG, &(*out)[i]);
    if (why != NULL) {
      pattern_free(&(*out)[i]);
      int code = strcmp(why, "out of memory") == 0 ? DBP_ENOMEM : DBP_EINVAL;
      return dbp__seterr(c, code, NULL, 0, false, "invalid %s pattern '%s': %s", what, src[i], why);
    }
    (*nout)++;
  }
  return 0;
}

/* ---- the queries ---- */

/* Columns: schema, name, kind, is a partition, in the current schema (PG:
 * visible; MySQL: the current database's name), row estimate. */
static const char pg_rels_sql[] =
    "SELECT n.nspname, c.relname, c.relkind::text, c.relispartition,"
    " pg_catalog.pg_table_is_visible(c.oid)::text,"
    " CASE WHEN c.relkind = 'v' THEN -1"
    "  WHEN c.relkind = 'p' THEN (SELECT CASE WHEN count(*) = 0 THEN 0"
    "   WHEN bool_or(l.reltuples >= 0) THEN sum(greatest(l.reltuples, 0))::int8 ELSE -1 END"
    "   FROM pg_catalog.pg_partition_tree(c.oid) t"
    "   JOIN pg_catalog.pg_class l ON l.oid = t.relid WHERE t.isleaf)"
    "  ELSE c.reltuples::int8 END"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND c.relpersistence <> 't'";

static const char my_rels_sql[] =
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, CREATE_OPTIONS, DATABASE(), TABLE_ROWS"
    " FROM information_schema.TABLES"
    " WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW', 'SYSTEM VIEW')";

/* Columns: table name, column name, type OID (PG) or DATA_TYPE (MySQL),
 * type name (PG) or COLUMN_TYPE (MySQL), schema; each table's columns in
 * key order. MySQL compares information_schema's names without regard to
 * case, so its joins compare bytes too, and rows of another schema whose
 * name differs only in case are skipped here. */
static const char pg_keys_sql[] =
    "SELECT c.relname, a.attname, bt.oid::text, bt.typname, n.nspname"
    " FROM pg_catalog.pg_index i"
    " JOIN pg_catalog.pg_class c ON c.oid = i.indrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " JOIN pg_catalog.pg_type bt"
    "  ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
    " WHERE i.indisprimary AND n.nspname = $1 AND k.ord <= i.indnkeyatts"
    " ORDER BY k.ord";

static const char my_keys_sql[] =
    "SELECT k.TABLE_NAME, k.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, k.TABLE_SCHEMA"
    " FROM information_schema.KEY_COLUMN_USAGE k"
    " JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA"
    "  AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME"
    "  AND CAST(c.TABLE_SCHEMA AS BINARY) = CAST(k.TABLE_SCHEMA AS BINARY)"
    "  AND CAST(c.TABLE_NAME AS BINARY) = CAST(k.TABLE_NAME AS BINARY)"
    "  AND CAST(c.COLUMN_NAME AS BINARY) = CAST(k.COLUMN_NAME AS BINARY)"
    " WHERE k.TABLE_SCHEMA = ? AND k.CONSTRAINT_NAME = 'PRIMARY'"
    " ORDER BY k.ORDINAL_POSITION";

static bool is_system(dbp_db_kind kind, const char *schema) {
  if (kind == DBP_DB_PG)
    return strcmp(schema, "pg_catalog") == 0 || strcmp(schema, "information_schema") == 0 ||
           strncmp(schema, "pg_toast", 8) == 0 || strncmp(schema, "pg_temp_", 8) == 0;
  return strcmp(schema, "mysql") == 0 || strcmp(schema, "information_schema") == 0 ||
         strcmp(schema, "performance_schema") == 0 || strcmp(schema, "sys") == 0;
}

static char *dup_val(const dbp_row *row, size_t i) {
  if (row->vals[i] == NULL) return strdup("");
  char *s = malloc(row->lens[i] + 1);
  if (s == NULL) return NULL;
  memcpy(s, row->vals[i], row->lens[i]);
  s[row->lens[i]] = '\0';
  return s;
}

static int64_t int_val(const dbp_row *row, size_t i) {
  if (row->vals[i] == NULL) return -1;
  char buf[32];
  size_t n = row->lens[i] < sizeof buf - 1 ? row->lens[i] : sizeof buf - 1;
  memcpy(buf, row->vals[i], n);
  buf[n] = '\0';
  return strtoll(buf, NULL, 10);
}

static bool val_is(const dbp_row *row, size_t i, const char *s) {
  return row->vals[i] != NULL && row->lens[i] == strlen(s) &&
         memcmp(row->vals[i], s, row->lens[i]) == 0;
}

/* Fills r from one row of the relations query. r->schema or r->name is
 * NULL when out of memory. */
static void rel_from_row(dbp_db_kind kind, const dbp_row *row, rel *r) {
  memset(r, 0, sizeof *r);
  if (kind == DBP_DB_PG) {
    char k = row->vals[2] != NULL && row->lens[2] == 1 ? row->vals[2][0] : '?';
    r->kind = k == 'r'   ? DBP_TABLE_BASE
              : k == 'p' ? DBP_TABLE_PARTITIONED
              : k == 'v' ? DBP_TABLE_VIEW
                         : DBP_TABLE_MATVIEW;
    r->partition = val_is(row, 3, "t");
    r->visible = val_is(row, 4, "true");
  } else {
    bool view = val_is(row, 2, "VIEW") || val_is(row, 2, "SYSTEM VIEW");
    char *opts = dup_val(row, 3);
    bool parted = opts != NULL && strstr(opts, "partitioned") != NULL;
    free(opts);
    r->kind = view ? DBP_TABLE_VIEW : parted ? DBP_TABLE_PARTITIONED : DBP_TABLE_BASE;
    r->visible = row->vals[4] != NULL && row->lens[0] == row->lens[4] &&
                 memcmp(row->vals[0], row->vals[4], row->lens[0]) == 0;
  }
  r->rows = r->kind == DBP_TABLE_VIEW ? -1 : int_val(row, 5);
  r->schema = dup_val(row, 0);
  r->name = dup_val(row, 1);
}

/* ---- primary key types ---- */

/* A MySQL DATA_TYPE (and COLUMN_TYPE, for BIT(1)) as dbp_columns would
 * normalize the column. */
static dbp_type my_type(const char *dt, const char *coltype) {
  static const struct {
    const char *name;
    dbp_type type;
  } map[] = {
      {"tinyint", DBP_T_INTEGER},     {"smallint", DBP_T_INTEGER}, {"mediumint", DBP_T_INTEGER},
      {"int", DBP_T_INTEGER},         {"bigint", DBP_T_INTEGER},   {"year", DBP_T_INTEGER},
      {"decimal", DBP_T_NUMERIC},     {"float", DBP_T_FLOAT},      {"double", DBP_T_FLOAT},
      {"json", DBP_T_JSON},           {"char", DBP_T_TEXT},        {"varchar", DBP_T_TEXT},
      {"tinytext", DBP_T_TEXT},       {"text", DBP_T_TEXT},        {"mediumtext", DBP_T_TEXT},
      {"longtext", DBP_T_TEXT},       {"enum", DBP_T_TEXT},        {"set", DBP_T_TEXT},
      {"uuid", DBP_T_TEXT},           {"inet4", DBP_T_TEXT},       {"inet6", DBP_T_TEXT},
      {"binary", DBP_T_BYTES},        {"varbinary", DBP_T_BYTES},  {"tinyblob", DBP_T_BYTES},
      {"blob", DBP_T_BYTES},          {"mediumblob", DBP_T_BYTES}, {"longblob", DBP_T_BYTES},
      {"date", DBP_T_DATE},           {"time", DBP_T_TIME},        {"datetime", DBP_T_TIMESTAMP},
      {"timestamp", DBP_T_TIMESTAMP},
  };
  if (strcmp(dt, "bit") == 0) return strcmp(coltype, "bit(1)") == 0 ? DBP_T_INTEGER : DBP_T_BYTES;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(dt, map[i].name) == 0) return map[i].type;
  return DBP_T_OTHER;
}

/* ---- the result ---- */

const char *dbp_table_kind_name(dbp_table_kind k) {
  switch (k) {
    case DBP_TABLE_BASE:
      return "table";
    case DBP_TABLE_PARTITIONED:
      return "partitioned table";
    case DBP_TABLE_VIEW:
      return "view";
    case DBP_TABLE_MATVIEW:
      return "materialized view";
  }
  return "?";
}

void dbp_table_list_free(dbp_table_list *l) {
  if (l == NULL) return;
  for (size_t i = 0; i < l->n; i++) {
    dbp_table_info *t = &l->tables[i];
    free((char *)t->schema);
    free((char *)t->name);
    free((char *)t->qualified);
    for (size_t k = 0; k < t->npkey; k++) {
      free((char *)t->pkey[k].name);
      free((char *)t->pkey[k].db_type);
    }
    free((dbp_key_column *)t->pkey);
  }
  free(l->tables);
  l->n = 0;
  l->tables = NULL;
}

/* Appends `s` quoted as one identifier: quote characters doubled, dots
 * kept inside (dbp_quote_ident's rule, without its split on dots). */
static void quote_part(dbp_buf *b, char q, const char *s) {
  dbp_buf_append(b, &q, 1);
  for (; *s; s++) {
    if (*s == q) dbp_buf_append(b, &q, 1);
    dbp_buf_append(b, s, 1);
  }
  dbp_buf_append(b, &q, 1);
}

static int by_name(const void *a, const void *b) {
  const dbp_table_info *x = a, *y = b;
  int d = strcmp(x->schema, y->schema);
  return d != 0 ? d : strcmp(x->name, y->name);
}

/* What is left of the call's budget for its next statement. */
static int64_t left_ms(dbp_conn *c, int64_t deadline) {
  if (deadline < 0) return DBP_FOREVER;
  int64_t now = (int64_t)dbp_now(c->rt);
  return deadline > now ? deadline - now : 0;
}

static int oom(dbp_conn *c) {
  dbp_query_close(c);
  return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
}

/* Reads the relations and keeps those the filter wants, unsorted. */
/* MySQL: when every include pattern names its schema without wildcards
 * (or names none: the current database), the catalog query asks for those
 * schemas only, as bound parameters, instead of reading information_schema
 * for every database of the server. Appends the condition to sql and the
 * names to params; false when the patterns need every schema. */
static bool my_schema_filter(const compiled *cf, dbp_buf *sql, dbp_param *params, size_t *np) {
  if (cf->ninc == 0 || cf->ninc > 64) return false;
  for (size_t i = 0; i < cf->ninc; i++) {
    if (cf->inc[i].qualified && cf->inc[i].schema.wild) return false;
  }
  dbp_buf_puts(sql, " AND TABLE_SCHEMA IN (DATABASE()");
  for (size_t i = 0; i < cf->ninc; i++) {
    if (!cf->inc[i].qualified) continue;
    params[*np] = (dbp_param){cf->inc[i].schema.s, cf->inc[i].schema.n};
    (*np)++;
    dbp_buf_puts(sql, ", ?");
  }
  dbp_buf_puts(sql, ")");
  return true;
}

static int read_rels(dbp_conn *c, const compiled *cf, int64_t deadline, dbp_table_list *out) {
  int rc;
  if (c->kind == DBP_DB_PG) {
    rc = dbp_query(c, pg_rels_sql, 0, NULL, left_ms(c, deadline));
  } else {
    dbp_buf sql = {0};
    dbp_param params[64];
    size_t np = 0;
    dbp_buf_puts(&sql, my_rels_sql);
    my_schema_filter(cf, &sql, params, &np);
    if (sql.oom) {
      dbp_buf_free(&sql);
      return oom(c);
    }
    rc = dbp_query(c, sql.data, np, params, left_ms(c, deadline));
    dbp_buf_free(&sql);
  }
  if (rc != 0) return rc;
  size_t cap = 0;
  char q = c->kind == DBP_DB_MYSQL ? '`' : '"';
  dbp_row row;
  while ((rc = dbp_fetch(c, &row)) > 0) {
    if (row.ncols < 6) {
      dbp_query_close(c);
      return dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "the catalog query gave %zu columns",
                         row.ncols);
    }
    rel r;
    rel_from_row(c->kind, &row, &r);
    if (r.schema == NULL || r.name == NULL) {
      free(r.schema);
      free(r.name);
      return oom(c);
    }
    r.system = is_system(c->kind, r.schema);
    if (!wanted(cf, &r)) {
      free(r.schema);
      free(r.name);
      continue;
    }
    if (out->n == cap) {
      size_t ncap = cap ? 2 * cap : 32;
      dbp_table_info *t = realloc(out->tables, ncap * sizeof *t);
      if (t == NULL) {
        free(r.schema);
        free(r.name);
        return oom(c);
      }
      out->tables = t;
      cap = ncap;
    }
    dbp_buf qn = {0};
    quote_part(&qn, q, r.schema);
    dbp_buf_append(&qn, ".", 1);
    quote_part(&qn, q, r.name);
    if (qn.oom) {
      dbp_buf_free(&qn);
      free(r.schema);
      free(r.name);
      return oom(c);
    }
    out->tables[out->n++] = (dbp_table_info){.schema = r.schema,
                                             .name = r.name,
                                             .qualified = qn.data,
                                             .kind = r.kind,
                                             .partition = r.partition,
                                             .rows_estimate = r.rows < 0 ? -1 : r.rows};
  }
  return rc;
}

/* Reads the primary keys of the tables of out->tables[from, to), one
 * schema. */
static int read_keys(dbp_conn *c, dbp_table_list *out, size_t from, size_t to, int64_t deadline) {
  const char *schema = out->tables[from].schema;
  dbp_param p = {schema, strlen(schema)};
  bool pg = c->kind == DBP_DB_PG;
  int rc = dbp_query(c, pg ? pg_keys_sql : my_keys_sql, 1, &p, left_ms(c, deadline));
  if (rc != 0) return rc;
  dbp_row row;
  while ((rc = dbp_fetch(c, &row)) > 0) {
    if (row.ncols < 5) {
      dbp_query_close(c);
      return dbp__seterr(c, DBP_EPROTO, NULL, 0, false, "the key query gave %zu columns",
                         row.ncols);
    }
    if (row.vals[4] == NULL || row.lens[4] != strlen(schema) ||
        memcmp(row.vals[4], schema, row.lens[4]) != 0)
      continue;
    char *tname = dup_val(&row, 0);
    if (tname == NULL) return oom(c);
    dbp_table_info key = {.schema = schema, .name = tname};
    dbp_table_info *t = bsearch(&key, out->tables + from, to - from, sizeof *out->tables, by_name);
    free(tname);
    if (t == NULL) continue; /* a table that was not asked for */
    dbp_key_column *cols = realloc((dbp_key_column *)t->pkey, (t->npkey + 1) * sizeof *cols);
    if (cols == NULL) return oom(c);
    t->pkey = cols;
    dbp_key_column *k = &cols[t->npkey];
    char *name = dup_val(&row, 1), *a = dup_val(&row, 2), *b = dup_val(&row, 3);
    char *db_type = NULL;
    if (name != NULL && a != NULL && b != NULL) {
      if (pg) {
        k->type = DBP_T_OTHER;
        dbp__pg_type((uint32_t)strtoul(a, NULL, 10), &k->type);
        db_type = b;
        b = NULL;
      } else {
        k->type = my_type(a, b);
        for (char *s = a; *s; s++)
          if (*s >= 'a' && *s <= 'z') *s = (char)(*s - 'a' + 'A');
        db_type = a;
        a = NULL;
      }
    }
    free(a);
    free(b);
    if (name == NULL || db_type == NULL) {
      free(name);
      free(db_type);
      return oom(c);
    }
    k->name = name;
    k->db_type = db_type;
    t->npkey++;
  }
  return rc;
}

int dbp_list_tables(dbp_conn *c, const dbp_table_filter *f, int64_t timeout_ms,
                    dbp_table_list *out) {
  if (out != NULL) {
    out->n = 0;
    out->tables = NULL;
  }
  if (c == NULL || out == NULL) return DBP_EINVAL;
  dbp_table_filter none = {0};
  if (f == NULL) f = &none;
  compiled cf = {.views = f->views};
  int rc = compile_list(c, "include", f->include, f->ninclude, &cf.inc, &cf.ninc);
  if (rc == 0) rc = compile_list(c, "exclude", f->exclude, f->nexclude, &cf.exc, &cf.nexc);
  if (rc == 0) {
    int64_t deadline = timeout_ms >= 0 ? (int64_t)dbp_now(c->rt) + timeout_ms : -1;
    rc = read_rels(c, &cf, deadline, out);
    if (rc == 0 && out->n > 1) qsort(out->tables, out->n, sizeof *out->tables, by_name);
    for (size_t i = 0; rc == 0 && i < out->n;) {
      size_t j = i + 1;
      while (j < out->n && strcmp(out->tables[j].schema, out->tables[i].schema) == 0) j++;
      /* Views have no primary key: a schema of views alone needs no query. */
      bool tables = false;
      for (size_t k = i; k < j; k++)
        if (out->tables[k].kind != DBP_TABLE_VIEW) tables = true;
      if (tables) rc = read_keys(c, out, i, j, deadline);
      i = j;
    }
  }
  compiled_free(&cf);
  if (rc != 0) dbp_table_list_free(out); /* never half a list */
  return rc;
}
