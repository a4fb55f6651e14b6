/* The job-file loader: YAML (libyaml's document API) -> dbp_job, with every
 * problem reported at its line and column. */
#include "dbpipe/job.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "dbpipe/db.h"
#include "dbpipe/export.h"
#include "job/job_internal.h"

#define JOB_MAX_FILE_BYTES (16u << 20)
#define JOB_MAX_CONCURRENCY 10000
#define JOB_MAX_POOL 1000
#define JOB_MAX_RETRIES 100

/* ---- the keys a task (and `defaults:`) may hold ---- */

enum {
  K_NAME,
  K_FROM,
  K_QUERY,
  K_TABLE,
  K_TO,
  K_FORMAT,
  K_COMPRESSION,
  K_LEVEL,
  K_HEADER,
  K_DELIMITER,
  K_NULL,
  K_CRLF,
  K_MAX_ROWS,
  K_MAX_BYTES,
  K_TIMEOUT,
  K_IDLE_TIMEOUT,
  K_RETRIES,
  K_RETRY_BACKOFF,
  K_COUNT
};

static const struct {
  const char *name;
  bool in_defaults; /* may appear under defaults: */
} task_keys[K_COUNT] = {
    [K_NAME] = {"name", false},
    [K_FROM] = {"from", true},
    [K_QUERY] = {"query", false},
    [K_TABLE] = {"table", false},
    [K_TO] = {"to", false},
    [K_FORMAT] = {"format", true},
    [K_COMPRESSION] = {"compression", true},
    [K_LEVEL] = {"level", true},
    [K_HEADER] = {"header", true},
    [K_DELIMITER] = {"delimiter", true},
    [K_NULL] = {"null", true},
    [K_CRLF] = {"crlf", true},
    [K_MAX_ROWS] = {"max_rows", true},
    [K_MAX_BYTES] = {"max_bytes", true},
    [K_TIMEOUT] = {"timeout", true},
    [K_IDLE_TIMEOUT] = {"idle_timeout", true},
    [K_RETRIES] = {"retries", true},
    [K_RETRY_BACKOFF] = {"retry_backoff", true},
};

static const char *const top_keys[] = {"connections", "concurrency", "manifest", "defaults",
                                       "tasks"};
static const char *const conn_keys[] = {"dsn", "pool"};

/* The settings of one task or of `defaults:` as written. */
typedef struct tset {
  const yaml_node_t *key[K_COUNT]; /* the key node of each setting given */
  const yaml_node_t *val[K_COUNT]; /* its value node */
  bool ok[K_COUNT];                /* given and valid */
  char *name, *query, *table, *to, *null_string;
  size_t conn;
  dbp_format format;
  dbp_compression compression;
  int64_t level, retries, timeout_ms, idle_ms, backoff_ms;
  bool header, crlf;
  char delimiter;
  uint64_t max_rows, max_bytes;
} tset;

/* A hash set of strings owned elsewhere, each with a number: keeps finding
 * duplicate task names and output paths linear in the number of tasks. */
typedef struct strset {
  const char **keys;
  size_t *vals;
  size_t cap, count; /* cap is 0 or a power of two */
} strset;

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

/* The number stored for `key`, or -1. */
static long strset_find(const strset *set, const char *key) {
  if (set->cap == 0) return -1;
  for (size_t i = (size_t)str_hash(key) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
    if (set->keys[i] == NULL) return -1;
    if (strcmp(set->keys[i], key) == 0) return (long)set->vals[i];
  }
}

/* Adds `key` (kept by pointer) with number `val`; a key already there keeps
 * its first number. Returns false when out of memory. */
static bool strset_add(strset *set, const char *key, size_t val) {
  if ((set->count + 1) * 2 > set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 64;
    const char **keys = calloc(cap, sizeof *keys);
    size_t *vals = calloc(cap, sizeof *vals);
    if (keys == NULL || vals == NULL) {
      free(keys);
      free(vals);
      return false;
    }
    for (size_t i = 0; i < set->cap; i++) {
      if (set->keys[i] == NULL) continue;
      size_t j = (size_t)str_hash(set->keys[i]) & (cap - 1);
      while (keys[j] != NULL) j = (j + 1) & (cap - 1);
      keys[j] = set->keys[i];
      vals[j] = set->vals[i];
    }
    free(set->keys);
    free(set->vals);
    set->keys = keys;
    set->vals = vals;
    set->cap = cap;
  }
  size_t i = (size_t)str_hash(key) & (set->cap - 1);
  while (set->keys[i] != NULL) {
    if (strcmp(set->keys[i], key) == 0) return true;
    i = (i + 1) & (set->cap - 1);
  }
  set->keys[i] = key;
  set->vals[i] = val;
  set->count++;
  return true;
}

static void strset_free(strset *set) {
  free(set->keys);
  free(set->vals);
  *set = (strset){0};
}

/* Parser state. */
typedef struct jp {
  const char *src;
  size_t srclen;
  size_t *lines; /* byte offset where each line starts */
  size_t nlines;
  yaml_document_t doc;
  dbp_job_diag *diag;
  dbp_job *job;
  dbp_job_getenv_fn getenv_fn;
  void *getenv_ud;
  const char *dir; /* base of relative paths, NULL = keep relative */
  char date[16];
  bool oom;
  bool *conn_ok; /* per connection: its DSN checked out */
  strset names;  /* task name -> task index, for duplicates */
  strset paths;  /* output path -> task index */
} jp;

/* ---- positions ---- */

static void index_lines(jp *p) {
  size_t n = 1;
  for (size_t i = 0; i < p->srclen; i++) {
    if (p->src[i] == '\n' || (p->src[i] == '\r' && (i + 1 >= p->srclen || p->src[i + 1] != '\n')))
      n++;
  }
  p->lines = malloc(n * sizeof *p->lines);
  if (p->lines == NULL) {
    p->oom = true;
    return;
  }
  p->lines[0] = 0;
  p->nlines = 1;
  for (size_t i = 0; i < p->srclen; i++) {
    if (p->src[i] == '\n' || (p->src[i] == '\r' && (i + 1 >= p->srclen || p->src[i + 1] != '\n')))
      p->lines[p->nlines++] = i + 1;
  }
}

/* Byte offset of a libyaml mark (0-based line, column in characters). */
static size_t mark_offset(const jp *p, yaml_mark_t m) {
  if (p->lines == NULL || m.line >= p->nlines) return p->srclen;
  size_t off = p->lines[m.line];
  for (size_t col = 0; off < p->srclen && col < m.column; col++) {
    off++;
    while (off < p->srclen && ((unsigned char)p->src[off] & 0xC0) == 0x80) off++;
  }
  return off;
}

/* Finds where, inside the source text of node `n`, the k-th `marker` is
 * (skipping a "{" right after "$" when skip_env): the position of a piece
 * of a scalar's value. Falls back to the node's start. */
static void locate(const jp *p, const yaml_node_t *n, const char *marker, bool skip_env, size_t k,
                   int *line, int *col) {
  *line = (int)n->start_mark.line + 1;
  *col = (int)n->start_mark.column + 1;
  size_t b = mark_offset(p, n->start_mark), e = mark_offset(p, n->end_mark);
  size_t mlen = strlen(marker), seen = 0;
  int l = *line, c = *col;
  for (size_t i = b; i < e && i < p->srclen; i++) {
    if (i + mlen <= e && memcmp(p->src + i, marker, mlen) == 0 &&
        !(skip_env && i > b && p->src[i - 1] == '$')) {
      if (seen++ == k) {
        *line = l;
        *col = c;
        return;
      }
    }
    char ch = p->src[i];
    if (ch == '\n' || (ch == '\r' && (i + 1 >= p->srclen || p->src[i + 1] != '\n'))) {
      l++;
      c = 1;
    } else if (((unsigned char)ch & 0xC0) != 0x80 && ch != '\r') {
      c++;
    }
  }
}

/* ---- diagnostics ---- */

static void err_at(jp *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(jp *p, int line, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (dbp__job_diag_vadd(p->diag, line, col, fmt, ap) != 0) p->oom = true;
  va_end(ap);
}

#define ERR(p, node, ...) \
  err_at((p), (int)(node)->start_mark.line + 1, (int)(node)->start_mark.column + 1, __VA_ARGS__)

/* Context for reports coming out of dbp__job_expand / dbp__job_templates. */
typedef struct report_ctx {
  jp *p;
  const yaml_node_t *node;
  const char *value;  /* the string the offsets refer to */
  const char *marker; /* "${" or "{" */
  bool skip_env;
  const char *where; /* "connection 'pg'", "task 'orders'" */
} report_ctx;

static void report_cb(void *ud, size_t offset, const char *message) {
  report_ctx *r = ud;
  size_t k = 0, mlen = strlen(r->marker);
  for (size_t i = 0; i + mlen <= offset; i++) {
    if (memcmp(r->value + i, r->marker, mlen) == 0) k++;
  }
  int line, col;
  locate(r->p, r->node, r->marker, r->skip_env, k, &line, &col);
  err_at(r->p, line, col, "%s: %s", r->where, message);
}

/* ---- small helpers ---- */

static char *xstrdup(jp *p, const char *s) {
  char *d = strdup(s);
  if (d == NULL) p->oom = true;
  return d;
}

static yaml_node_t *node_at(jp *p, int index) {
  return yaml_document_get_node(&p->doc, index);
}

static const char *sval(const yaml_node_t *n) {
  return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *v = sval(n);
  return *v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
         strcmp(v, "NULL") == 0;
}

static const char *kind_name(const yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE) return "a mapping";
  if (n->type == YAML_SEQUENCE_NODE) return "a list";
  return is_null(n) ? "nothing" : "a scalar";
}

/* The scalar text of `n`, or NULL after reporting that `what` (a key name)
 * needs `expect`. */
static const char *want_scalar(jp *p, const yaml_node_t *n, const char *what, const char *expect) {
  if (n->type != YAML_SCALAR_NODE || is_null(n)) {
    ERR(p, n, "'%s' must be %s, not %s", what, expect, kind_name(n));
    return NULL;
  }
  if (strlen(sval(n)) != n->data.scalar.length) {
    ERR(p, n, "'%s' must not contain a NUL character", what);
    return NULL;
  }
  return sval(n);
}

/* Edit distance, for "did you mean" hints on unknown keys. */
static size_t distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 32 || lb > 32) return 99;
  size_t row[33];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t cur = row[j];
      size_t best = prev + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      prev = cur;
    }
  }
  return row[lb];
}

static void unknown_key(jp *p, const yaml_node_t *key, const char *where, const char *const *known,
                        size_t nknown) {
  const char *best = NULL;
  size_t bestd = 3;
  for (size_t i = 0; i < nknown; i++) {
    if (known[i] == NULL) continue;
    size_t d = distance(sval(key), known[i]);
    if (d < bestd) {
      bestd = d;
      best = known[i];
    }
  }
  if (best != NULL) {
    ERR(p, key, "unknown key '%s' in %s (did you mean '%s'?)", sval(key), where, best);
  } else {
    ERR(p, key, "unknown key '%s' in %s", sval(key), where);
  }
}

/* Checks that `pair`'s key is a scalar and not a repeat of an earlier key of
 * the same mapping. Returns the key text, or NULL after reporting. */
static const char *pair_key(jp *p, const yaml_node_t *map, const yaml_node_pair_t *pair,
                            const char *where) {
  const yaml_node_t *key = node_at(p, pair->key);
  if (key->type != YAML_SCALAR_NODE) {
    ERR(p, key, "keys in %s must be plain words, not %s", where, kind_name(key));
    return NULL;
  }
  for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
    const yaml_node_t *k2 = node_at(p, q->key);
    if (k2->type == YAML_SCALAR_NODE && strcmp(sval(k2), sval(key)) == 0) {
      ERR(p, key, "duplicate key '%s' in %s (first at line %d)", sval(key), where,
          (int)k2->start_mark.line + 1);
      return NULL;
    }
  }
  return sval(key);
}

/* Expands ${VAR} in the scalar `n`. Returns a new string or NULL (reported). */
static char *expand(jp *p, const yaml_node_t *n, const char *value, const char *where) {
  char *out = NULL;
  report_ctx r = {p, n, value, "${", false, where};
  int rc = dbp__job_expand(value, p->getenv_fn, p->getenv_ud, &out, report_cb, &r);
  if (rc == DBP_ENOMEM) p->oom = true;
  return rc == 0 ? out : NULL;
}

/* Joins a relative path onto the base directory. Takes `path`. */
static char *resolve(jp *p, char *path) {
  if (path == NULL || path[0] == '/' || p->dir == NULL) return path;
  char *out = NULL;
  if (asprintf(&out, "%s/%s", p->dir, path) < 0) {
    p->oom = true;
    out = NULL;
  }
  free(path);
  return out;
}

/* Applies the templates of an output path written at node `n`, expanded to
 * `value`, and resolves it. Returns a new string or NULL (reported). */
static char *output_path(jp *p, const yaml_node_t *n, const char *value, const char *name,
                         const char *where) {
  char *out = NULL;
  report_ctx r = {p, n, value, "{", true, where};
  int rc = dbp__job_templates(value, name, p->date, &out, report_cb, &r);
  if (rc == DBP_ENOMEM) p->oom = true;
  if (rc != 0) return NULL;
  if (*out == '\0') {
    ERR(p, n, "%s: the output path is empty", where);
    free(out);
    return NULL;
  }
  return resolve(p, out);
}

/* ---- connections ---- */

static long find_conn(const dbp_job *job, const char *name) {
  for (size_t i = 0; i < job->nconns; i++) {
    if (strcmp(job->conns[i].name, name) == 0) return (long)i;
  }
  return -1;
}

/* Reads one entry of connections: (a DSN, or a mapping with dsn and pool),
 * expands and checks its DSN, and appends it to the job even when it is bad
 * (so tasks naming it get no second, misleading error). */
static void parse_connection(jp *p, const yaml_node_t *key, const yaml_node_t *val) {
  char where[160];
  snprintf(where, sizeof where, "connection '%s'", sval(key));
  const yaml_node_t *dsn_node = NULL, *pool_node = NULL;
  if (val->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *pr = val->data.mapping.pairs.start; pr < val->data.mapping.pairs.top;
         pr++) {
      const char *k = pair_key(p, val, pr, where);
      if (k == NULL) continue;
      if (strcmp(k, "dsn") == 0) {
        dsn_node = node_at(p, pr->value);
      } else if (strcmp(k, "pool") == 0) {
        pool_node = node_at(p, pr->value);
      } else {
        unknown_key(p, node_at(p, pr->key), where, conn_keys, 2);
      }
    }
    if (dsn_node == NULL) ERR(p, val, "%s has no 'dsn' (the connection string)", where);
  } else if (val->type == YAML_SCALAR_NODE && !is_null(val)) {
    dsn_node = val;
  } else {
    ERR(p, val, "%s must be a connection string or a mapping with 'dsn' and 'pool', not %s", where,
        kind_name(val));
  }

  dbp_job_conn c = {.line = (int)key->start_mark.line + 1,
                    .column = (int)key->start_mark.column + 1};
  bool ok = dsn_node != NULL;
  c.name = xstrdup(p, sval(key));
  if (pool_node != NULL) {
    const char *s = want_scalar(p, pool_node, "pool", "a positive number");
    uint64_t v = 0;
    if (s != NULL && (dbp__parse_uint(s, JOB_MAX_POOL, &v) != 0 || v == 0)) {
      ERR(p, pool_node, "%s: 'pool' must be a number from 1 to %d, not '%s'", where, JOB_MAX_POOL,
          s);
      ok = false;
    }
    if (s == NULL) ok = false;
    c.pool = (size_t)v;
  }
  if (dsn_node != NULL) {
    const char *s = want_scalar(p, dsn_node, "dsn", "a connection string");
    c.dsn = s != NULL ? expand(p, dsn_node, s, where) : NULL;
    if (c.dsn == NULL) {
      ok = false;
    } else {
      dbp_dsn d;
      char ebuf[256] = "";
      if (dbp_dsn_parse(c.dsn, &d, ebuf, sizeof ebuf) != 0) {
        ERR(p, dsn_node, "%s: bad connection string: %s", where,
            ebuf[0] ? ebuf : "expected postgresql://... or mysql://...");
        ok = false;
      } else {
        c.kind = d.kind;
        dbp_dsn_free(&d);
        char rbuf[1024];
        c.dsn_redacted = xstrdup(p, dbp_dsn_redact(c.dsn, rbuf, sizeof rbuf));
        /* What `run` would refuse (unknown parameters, bad values, a host
         * override) is refused here, before anything runs. */
        ebuf[0] = '\0';
        if (dbp_dsn_check(c.dsn, ebuf, sizeof ebuf) != 0) {
          ERR(p, dsn_node, "%s: bad connection string: %s", where,
              ebuf[0] ? ebuf : "a parameter dbpipe cannot use");
          ok = false;
        }
      }
    }
  }

  dbp_job *job = p->job;
  dbp_job_conn *nc = dbp__grow(job->conns, job->nconns, sizeof *nc);
  bool *nok = dbp__grow(p->conn_ok, job->nconns, sizeof *nok);
  if (nok != NULL) p->conn_ok = nok;
  if (nc == NULL || nok == NULL) {
    if (nc != NULL) job->conns = nc;
    p->oom = true;
    free(c.name);
    free(c.dsn);
    free(c.dsn_redacted);
    return;
  }
  job->conns = nc;
  p->conn_ok[job->nconns] = ok;
  job->conns[job->nconns++] = c;
}

static void parse_connections(jp *p, const yaml_node_t *n) {
  if (n->type != YAML_MAPPING_NODE) {
    ERR(p, n, "'connections' must map names to connection strings, not %s", kind_name(n));
    return;
  }
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    const char *k = pair_key(p, n, pr, "connections");
    if (k == NULL) continue;
    if (*k == '\0') {
      ERR(p, node_at(p, pr->key), "a connection needs a name");
      continue;
    }
    parse_connection(p, node_at(p, pr->key), node_at(p, pr->value));
  }
  if (n->data.mapping.pairs.start == n->data.mapping.pairs.top)
    ERR(p, n, "'connections' is empty: name at least one database");
}

/* ---- task settings ---- */

static const char *format_names = "csv, tsv or jsonl";
static const char *compression_names = "none, gzip or zstd";

/* Parses the value of setting `k` into t. Reports and leaves t->ok[k] false
 * when the value is bad. */
static void parse_setting(jp *p, tset *t, int k, const yaml_node_t *v, const char *where) {
  const char *kn = task_keys[k].name;
  const char *s;
  uint64_t u;
  switch (k) {
    case K_NAME:
      if ((s = want_scalar(p, v, kn, "a word")) == NULL) return;
      for (const char *c = s; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.')) {
          ERR(p, v, "task name '%s' may only use letters, digits, '_', '-' and '.'", s);
          return;
        }
      }
      if (s[0] == '.' || s[0] == '-') {
        ERR(p, v, "task name '%s' must start with a letter, digit or '_'", s);
        return;
      }
      t->name = xstrdup(p, s);
      break;
    case K_FROM: {
      if ((s = want_scalar(p, v, kn, "a connection name")) == NULL) return;
      long ci = find_conn(p->job, s);
      if (ci < 0) {
        char known[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < p->job->nconns && used < sizeof known; i++) {
          int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                           p->job->conns[i].name);
          if (w > 0) used += (size_t)w;
        }
        if (p->job->nconns > 0) {
          ERR(p, v, "%s: unknown connection '%s' (defined: %s)", where, s, known);
        } else {
          ERR(p, v, "%s: unknown connection '%s' (no connections are defined)", where, s);
        }
        return;
      }
      t->conn = (size_t)ci;
      break;
    }
    case K_QUERY:
    case K_TABLE:
    case K_TO: {
      const char *expect = k == K_QUERY ? "an SQL query" : k == K_TABLE ? "a table name" : "a path";
      if ((s = want_scalar(p, v, kn, expect)) == NULL) return;
      char *x = expand(p, v, s, where);
      if (x == NULL) return;
      const char *c = x;
      while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r') c++;
      if (*c == '\0') {
        ERR(p, v, "%s: '%s' is empty", where, kn);
        free(x);
        return;
      }
      char **dst = k == K_QUERY ? &t->query : k == K_TABLE ? &t->table : &t->to;
      *dst = x;
      break;
    }
    case K_FORMAT:
      if ((s = want_scalar(p, v, kn, format_names)) == NULL) return;
      if (dbp_format_parse(s, &t->format) != 0 || t->format == DBP_FMT_AUTO) {
        ERR(p, v, "%s: unknown format '%s' (use %s)", where, s, format_names);
        return;
      }
      break;
    case K_COMPRESSION:
      if ((s = want_scalar(p, v, kn, compression_names)) == NULL) return;
      if (dbp_compression_parse(s, &t->compression) != 0 || t->compression == DBP_COMP_AUTO) {
        ERR(p, v, "%s: unknown compression '%s' (use %s)", where, s, compression_names);
        return;
      }
      break;
    case K_LEVEL:
      if ((s = want_scalar(p, v, kn, "a number")) == NULL) return;
      if (dbp__parse_int(s, 1, 22, &t->level) != 0) {
        ERR(p, v, "%s: 'level' must be a number (gzip 1-9, zstd 1-22), not '%s'", where, s);
        return;
      }
      break;
    case K_HEADER:
    case K_CRLF:
      if ((s = want_scalar(p, v, kn, "true or false")) == NULL) return;
      if (dbp__parse_bool(s, k == K_HEADER ? &t->header : &t->crlf) != 0) {
        ERR(p, v, "%s: '%s' must be true or false, not '%s'", where, kn, s);
        return;
      }
      break;
    case K_DELIMITER:
      if ((s = want_scalar(p, v, kn, "one character")) == NULL) return;
      if (strlen(s) != 1 || s[0] == '\n' || s[0] == '\r' || s[0] == '"' ||
          (unsigned char)s[0] >= 0x80) {
        ERR(p, v, "%s: 'delimiter' must be one ASCII character other than a quote or line break",
            where);
        return;
      }
      t->delimiter = s[0];
      break;
    case K_NULL:
      if (v->type != YAML_SCALAR_NODE) {
        ERR(p, v, "'null' must be a string, not %s", kind_name(v));
        return;
      }
      /* `null:` alone means the empty string here. */
      t->null_string = xstrdup(
          p, is_null(v) && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && *sval(v) == '\0'
                 ? ""
                 : sval(v));
      break;
    case K_MAX_ROWS:
      if ((s = want_scalar(p, v, kn, "a number")) == NULL) return;
      if (dbp__parse_uint(s, UINT64_MAX, &t->max_rows) != 0) {
        ERR(p, v, "%s: 'max_rows' must be a whole number, not '%s'", where, s);
        return;
      }
      break;
    case K_MAX_BYTES:
      if ((s = want_scalar(p, v, kn, "a size")) == NULL) return;
      if (dbp_parse_size(s, &t->max_bytes) != 0) {
        ERR(p, v, "%s: 'max_bytes' must be a size like 1048576, 500MB or 1GiB, not '%s'", where, s);
        return;
      }
      break;
    case K_TIMEOUT:
    case K_IDLE_TIMEOUT:
      /* The same parser as the command line's --timeout / --idle-timeout. */
      if ((s = want_scalar(p, v, kn, "a duration")) == NULL) return;
      if (dbp__parse_time_limit(s, k == K_TIMEOUT ? &t->timeout_ms : &t->idle_ms) != 0) {
        ERR(p, v, "%s: bad duration '%s' for '%s' (use %s)", where, s, kn, dbp__time_limit_syntax);
        return;
      }
      break;
    case K_RETRY_BACKOFF:
      if ((s = want_scalar(p, v, kn, "a duration")) == NULL) return;
      if (dbp_parse_duration(s, &t->backoff_ms) != 0) {
        ERR(p, v,
            "%s: bad duration '%s' for '%s' (use a number with ms, s, m or h: 500ms, 30s, "
            "10m, 1h)",
            where, s, kn);
        return;
      }
      break;
    case K_RETRIES:
      if ((s = want_scalar(p, v, kn, "a number")) == NULL) return;
      if (dbp__parse_uint(s, JOB_MAX_RETRIES, &u) != 0) {
        ERR(p, v, "%s: 'retries' must be a number from 0 to %d, not '%s'", where, JOB_MAX_RETRIES,
            s);
        return;
      }
      t->retries = (int64_t)u;
      break;
    default:
      return;
  }
  t->ok[k] = true;
}

static void tset_free(tset *t) {
  free(t->name);
  free(t->query);
  free(t->table);
  free(t->to);
  free(t->null_string);
}

/* Reads the mapping `n` (a task, or `defaults:`) into t. */
static void parse_settings(jp *p, const yaml_node_t *n, tset *t, bool is_defaults,
                           const char *where) {
  const char *known[K_COUNT];
  for (int k = 0; k < K_COUNT; k++) {
    known[k] = (!is_defaults || task_keys[k].in_defaults) ? task_keys[k].name : NULL;
  }
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    const char *key = pair_key(p, n, pr, where);
    if (key == NULL) continue;
    int k = 0;
    while (k < K_COUNT && strcmp(task_keys[k].name, key) != 0) k++;
    const yaml_node_t *kn = node_at(p, pr->key);
    if (k == K_COUNT) {
      unknown_key(p, kn, where, known, K_COUNT);
      continue;
    }
    if (is_defaults && !task_keys[k].in_defaults) {
      ERR(p, kn, "'%s' cannot be a default: set it in each task", key);
      continue;
    }
    t->key[k] = kn;
    t->val[k] = node_at(p, pr->value);
    parse_setting(p, t, k, t->val[k], where);
  }
}

/* ---- format and compression from the path and the settings ---- */

static bool ends_with(const char *s, const char *suffix) {
  size_t ls = strlen(s), lx = strlen(suffix);
  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* ---- tasks ---- */

/* Picks a setting: the task's own when given, else the default's. Returns
 * the source or NULL when neither gave a valid value. */
static const tset *pick(const tset *t, const tset *d, int k) {
  if (t->key[k] != NULL) return t->ok[k] ? t : NULL;
  return d->ok[k] ? d : NULL;
}

/* True when the task's connection (its own or the default one) is known
 * and its DSN was valid. */
static bool src_conn_ok(const jp *p, const tset *t, const tset *defs) {
  const tset *src = pick(t, defs, K_FROM);
  return src != NULL && p->conn_ok[src->conn];
}

/* Reads task #index, merges `defs` into it, checks it as a whole (required
 * keys, format and compression against the file name, unique names and
 * paths) and appends it to the job. */
static void parse_task(jp *p, const yaml_node_t *n, size_t index, const tset *defs) {
  char where[160];
  if (n->type != YAML_MAPPING_NODE) {
    ERR(p, n, "task #%zu must be a mapping with name, from, to and query or table, not %s",
        index + 1, kind_name(n));
    return;
  }
  /* The name first, for messages. */
  snprintf(where, sizeof where, "task #%zu", index + 1);
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    const yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
    if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), "name") == 0 &&
        v->type == YAML_SCALAR_NODE && !is_null(v)) {
      snprintf(where, sizeof where, "task '%s'", sval(v));
      break;
    }
  }

  tset t = {0};
  parse_settings(p, n, &t, false, where);
  bool ok = true;
  for (int k = 0; k < K_COUNT; k++) {
    if (t.key[k] != NULL && !t.ok[k]) ok = false;
  }

  /* Required settings. */
  if (t.key[K_NAME] == NULL) {
    ERR(p, n, "%s has no 'name'", where);
    ok = false;
  }
  if (t.key[K_FROM] == NULL && defs->key[K_FROM] == NULL) {
    ERR(p, n, "%s has no 'from' (the connection to read from)", where);
    ok = false;
  }
  if (t.key[K_TO] == NULL) {
    ERR(p, n, "%s has no 'to' (the output file)", where);
    ok = false;
  }
  if (t.key[K_QUERY] != NULL && t.key[K_TABLE] != NULL) {
    const yaml_node_t *second = t.key[K_QUERY]->start_mark.index > t.key[K_TABLE]->start_mark.index
                                    ? t.key[K_QUERY]
                                    : t.key[K_TABLE];
    ERR(p, second, "%s has both 'query' and 'table': give one of them", where);
    ok = false;
  } else if (t.key[K_QUERY] == NULL && t.key[K_TABLE] == NULL) {
    ERR(p, n, "%s needs 'query' or 'table'", where);
    ok = false;
  }

  /* Unique names. */
  if (t.ok[K_NAME]) {
    long other = strset_find(&p->names, t.name);
    if (other >= 0) {
      ERR(p, t.val[K_NAME], "duplicate task name '%s' (first defined at line %d)", t.name,
          p->job->tasks[other].line);
      ok = false;
    }
  }

  const tset *src;
  dbp_job_task task = {.line = (int)n->start_mark.line + 1,
                       .column = (int)n->start_mark.column + 1,
                       .timeout_ms = DBP_JOB_NO_TIMEOUT,
                       .idle_timeout_ms = DBP_DEFAULT_IO_TIMEOUT_MS,
                       .retry_backoff_ms = DBP_JOB_DEFAULT_BACKOFF_MS};

  if ((src = pick(&t, defs, K_FROM)) != NULL) {
    task.conn = src->conn;
    if (!p->conn_ok[task.conn]) ok = false; /* already reported there */
  } else {
    ok = false;
  }

  /* The output path, then format and compression checked against it. */
  if (t.ok[K_TO] && t.ok[K_NAME]) {
    if (strcmp(t.to, "-") == 0) {
      /* Tasks run side by side: their rows would interleave on one stdout. */
      ERR(p, t.val[K_TO],
          "%s: 'to: -' (standard output) is not possible in a job file, whose tasks run "
          "side by side; use dbpipe export --to - for one query",
          where);
      ok = false;
    } else {
      task.path = output_path(p, t.val[K_TO], t.to, t.name, where);
      if (task.path == NULL) ok = false;
    }
  }
  /* A setting given but invalid was reported already: nothing to compare. */
  bool fmt_bad = (t.key[K_FORMAT] != NULL && !t.ok[K_FORMAT]) ||
                 (t.key[K_FORMAT] == NULL && defs->key[K_FORMAT] != NULL && !defs->ok[K_FORMAT]);
  bool comp_bad = (t.key[K_COMPRESSION] != NULL && !t.ok[K_COMPRESSION]) ||
                  (t.key[K_COMPRESSION] == NULL && defs->key[K_COMPRESSION] != NULL &&
                   !defs->ok[K_COMPRESSION]);
  if (task.path != NULL && !fmt_bad && !comp_bad) {
    const tset *fs = pick(&t, defs, K_FORMAT), *cs = pick(&t, defs, K_COMPRESSION);
    char ferr[400], cerr[400];
    int bad = dbp__job_output_format(
        task.path, fs ? fs->format : DBP_FMT_AUTO, fs == defs ? " (from defaults)" : "",
        cs ? cs->compression : DBP_COMP_AUTO, cs == defs ? " (from defaults)" : "", &task.format,
        &task.compression, ferr, cerr, sizeof ferr);
    if (bad & DBP__OUT_BAD_COMPRESSION) {
      ERR(p, cs == &t ? t.val[K_COMPRESSION] : t.val[K_TO], "%s: %s", where, cerr);
      ok = false;
    }
    if (bad & DBP__OUT_BAD_FORMAT) {
      ERR(p, fs == &t ? t.val[K_FORMAT] : t.val[K_TO], "%s: %s", where, ferr);
      ok = false;
    }
    if (bad & DBP__OUT_UNKNOWN_ENDING) {
      ERR(p, t.val[K_TO], "%s: %s with 'format:'", where, ferr);
      ok = false;
    }
  }

  if ((src = pick(&t, defs, K_LEVEL)) != NULL) {
    int64_t lv = src->level;
    int64_t max = task.compression == DBP_COMP_GZIP ? 9 : 22;
    if (task.compression == DBP_COMP_NONE && src == &t) {
      ERR(p, t.val[K_LEVEL], "%s: 'level' needs compression (gzip or zstd)", where);
      ok = false;
    } else if (lv > max && task.compression != DBP_COMP_NONE) {
      ERR(p, src == &t ? t.val[K_LEVEL] : t.val[K_TO],
          "%s: level %lld is out of range for %s (1-%lld)", where, (long long)lv,
          dbp_compression_name(task.compression), (long long)max);
      ok = false;
    }
    if (task.compression != DBP_COMP_NONE) task.level = (int)lv;
  }
  if ((src = pick(&t, defs, K_HEADER)) != NULL) task.no_header = !src->header;
  if ((src = pick(&t, defs, K_CRLF)) != NULL) task.crlf = src->crlf;
  if ((src = pick(&t, defs, K_DELIMITER)) != NULL) {
    if (task.format == DBP_FMT_JSONL && src == &t) {
      ERR(p, t.val[K_DELIMITER], "%s: 'delimiter' does not apply to jsonl", where);
      ok = false;
    }
    task.delimiter = src->delimiter;
  }
  if ((src = pick(&t, defs, K_NULL)) != NULL) {
    if (task.format == DBP_FMT_JSONL && src == &t) {
      ERR(p, t.val[K_NULL], "%s: 'null' does not apply to jsonl (NULL is always null)", where);
      ok = false;
    }
    task.null_string = xstrdup(p, src->null_string);
  }
  if ((src = pick(&t, defs, K_MAX_ROWS)) != NULL) task.max_rows = src->max_rows;
  if ((src = pick(&t, defs, K_MAX_BYTES)) != NULL) task.max_bytes = src->max_bytes;
  if ((src = pick(&t, defs, K_TIMEOUT)) != NULL) task.timeout_ms = src->timeout_ms;
  if ((src = pick(&t, defs, K_IDLE_TIMEOUT)) != NULL) task.idle_timeout_ms = src->idle_ms;
  if ((src = pick(&t, defs, K_RETRIES)) != NULL) task.retries = (int)src->retries;
  if ((src = pick(&t, defs, K_RETRY_BACKOFF)) != NULL) task.retry_backoff_ms = src->backoff_ms;

  /* One statement per task: a second one would run unseen. */
  if (t.ok[K_QUERY] && src_conn_ok(p, &t, defs)) {
    char why[400] = "";
    const tset *fs = pick(&t, defs, K_FROM);
    if (dbp_sql_check_single(p->job->conns[fs->conn].kind, t.query, why, sizeof why) != 0) {
      ERR(p, t.val[K_QUERY], "%s: %s", where, why[0] ? why : "the query must be one statement");
      ok = false;
    }
  }

  /* What is at the output path must be replaceable by a file. */
  if (task.path != NULL) {
    char why[600] = "";
    if (dbp_export_check_target(task.path, task.max_rows > 0 || task.max_bytes > 0, why,
                                sizeof why) != 0) {
      ERR(p, t.val[K_TO], "%s: %s", where, why[0] ? why : "cannot write the output file there");
      ok = false;
    }
  }

  /* Two tasks writing one file would destroy each other's output. */
  if (task.path != NULL) {
    long other = strset_find(&p->paths, task.path);
    if (other >= 0) {
      ERR(p, t.val[K_TO], "%s writes the same file as task '%s' (line %d)", where,
          p->job->tasks[other].name, p->job->tasks[other].line);
      ok = false;
    }
  }

  if (ok && !p->oom) {
    dbp_job_task *nt = dbp__grow(p->job->tasks, p->job->ntasks, sizeof *nt);
    if (nt != NULL) {
      task.name = t.name;
      task.query = t.query;
      task.table = t.table;
      t.name = t.query = t.table = NULL;
      p->job->tasks = nt;
      if (!strset_add(&p->names, task.name, p->job->ntasks) ||
          !strset_add(&p->paths, task.path, p->job->ntasks))
        p->oom = true;
      p->job->tasks[p->job->ntasks++] = task;
      tset_free(&t);
      return;
    }
    p->oom = true;
  }
  /* A bad task is dropped, but its name is remembered (as a task with an
   * empty path) so that a later duplicate is still reported. The job is
   * never handed out after an error, so this placeholder is never run. */
  free(task.path);
  free(task.null_string);
  if (t.ok[K_NAME]) {
    dbp_job_task *nt = dbp__grow(p->job->tasks, p->job->ntasks, sizeof *nt);
    if (nt != NULL) {
      p->job->tasks = nt;
      if (!strset_add(&p->names, t.name, p->job->ntasks)) p->oom = true;
      p->job->tasks[p->job->ntasks++] = (dbp_job_task){
          .name = t.name, .line = task.line, .column = task.column, .path = xstrdup(p, "")};
      t.name = NULL;
    } else {
      p->oom = true;
    }
  }
  tset_free(&t);
}

static void parse_tasks(jp *p, const yaml_node_t *n, const tset *defs) {
  if (n->type != YAML_SEQUENCE_NODE) {
    ERR(p, n, "'tasks' must be a list of tasks, not %s", kind_name(n));
    return;
  }
  size_t i = 0;
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
       it++, i++) {
    parse_task(p, node_at(p, *it), i, defs);
  }
  if (i == 0) ERR(p, n, "'tasks' is empty: a job needs at least one task");
}

/* ---- the whole file ---- */

/* Reads the top-level mapping. Connections are read before tasks whatever
 * their order in the file, so that tasks can refer to them. */
static void parse_root(jp *p, const yaml_node_t *root, const char *file) {
  if (root->type != YAML_MAPPING_NODE) {
    ERR(p, root, "a job file is a mapping with 'connections' and 'tasks', not %s", kind_name(root));
    return;
  }
  const yaml_node_t *conns = NULL, *conc = NULL, *manifest = NULL, *defaults = NULL, *tasks = NULL;
  for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
       pr++) {
    const char *k = pair_key(p, root, pr, "the job");
    if (k == NULL) continue;
    const yaml_node_t *v = node_at(p, pr->value);
    if (strcmp(k, "connections") == 0) {
      conns = v;
    } else if (strcmp(k, "concurrency") == 0) {
      conc = v;
    } else if (strcmp(k, "manifest") == 0) {
      manifest = v;
    } else if (strcmp(k, "defaults") == 0) {
      defaults = v;
    } else if (strcmp(k, "tasks") == 0) {
      tasks = v;
    } else {
      unknown_key(p, node_at(p, pr->key), "the job", top_keys,
                  sizeof top_keys / sizeof top_keys[0]);
    }
  }

  dbp_job *job = p->job;
  if (conns != NULL) {
    parse_connections(p, conns);
  } else {
    err_at(p, 1, 1, "the job has no 'connections'");
  }

  job->concurrency = DBP_JOB_DEFAULT_CONCURRENCY;
  if (conc != NULL) {
    const char *s = want_scalar(p, conc, "concurrency", "a positive number");
    uint64_t v;
    if (s != NULL && (dbp__parse_uint(s, JOB_MAX_CONCURRENCY, &v) != 0 || v == 0)) {
      ERR(p, conc, "'concurrency' must be a number from 1 to %d, not '%s'", JOB_MAX_CONCURRENCY, s);
    } else if (s != NULL) {
      job->concurrency = (size_t)v;
    }
  }

  /* The manifest: given, disabled with `false`, or <stem>.manifest.json. */
  bool disabled = false;
  if (manifest != NULL && manifest->type == YAML_SCALAR_NODE &&
      manifest->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
    bool b;
    if (dbp__parse_bool(sval(manifest), &b) == 0) {
      if (b) ERR(p, manifest, "'manifest' must be a path or false");
      disabled = true;
    }
  }
  if (manifest != NULL && !disabled) {
    const char *s = want_scalar(p, manifest, "manifest", "a path or false");
    char *x = s != NULL ? expand(p, manifest, s, "manifest") : NULL;
    if (x != NULL) job->manifest = output_path(p, manifest, x, NULL, "manifest");
    free(x);
  } else if (manifest == NULL) {
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    size_t stem = strlen(base);
    if (ends_with(base, ".yaml"))
      stem -= 5;
    else if (ends_with(base, ".yml"))
      stem -= 4;
    char *m = NULL;
    if (asprintf(&m, "%.*s.manifest.json", (int)stem, base) < 0) {
      p->oom = true;
    } else {
      job->manifest = resolve(p, m);
    }
  }

  tset defs = {0};
  if (defaults != NULL) {
    if (defaults->type == YAML_MAPPING_NODE) {
      parse_settings(p, defaults, &defs, true, "defaults");
    } else if (!is_null(defaults)) {
      ERR(p, defaults, "'defaults' must be a mapping of task settings, not %s",
          kind_name(defaults));
    }
  }

  if (tasks != NULL) {
    parse_tasks(p, tasks, &defs);
  } else {
    err_at(p, 1, 1, "the job has no 'tasks'");
  }
  tset_free(&defs);
}

/* Reports a libyaml error; returns nothing, the diagnostics say it all. */
static void yaml_error(jp *p, const yaml_parser_t *y) {
  if (y->error == YAML_MEMORY_ERROR) {
    p->oom = true;
    return;
  }
  if (y->error == YAML_READER_ERROR) {
    err_at(p, 0, 0, "not readable as YAML text: %s (at byte %zu)",
           y->problem ? y->problem : "bad input", y->problem_offset);
    return;
  }
  int line = (int)y->problem_mark.line + 1, col = (int)y->problem_mark.column + 1;
  if (y->context != NULL) {
    err_at(p, line, col, "YAML syntax error: %s (%s at line %d, column %d)",
           y->problem ? y->problem : "invalid YAML", y->context, (int)y->context_mark.line + 1,
           (int)y->context_mark.column + 1);
  } else {
    err_at(p, line, col, "YAML syntax error: %s", y->problem ? y->problem : "invalid YAML");
  }
}

void dbp_job_free(dbp_job *job) {
  if (job == NULL) return;
  for (size_t i = 0; i < job->nconns; i++) {
    free(job->conns[i].name);
    if (job->conns[i].dsn != NULL) {
      /* It holds a password: do not leave it in freed memory. */
      memset(job->conns[i].dsn, 0, strlen(job->conns[i].dsn));
      free(job->conns[i].dsn);
    }
    free(job->conns[i].dsn_redacted);
  }
  for (size_t i = 0; i < job->ntasks; i++) {
    free(job->tasks[i].name);
    free(job->tasks[i].query);
    free(job->tasks[i].table);
    free(job->tasks[i].path);
    free(job->tasks[i].null_string);
  }
  free(job->conns);
  free(job->tasks);
  free(job->file);
  free(job->dir);
  free(job->manifest);
  free(job);
}

long dbp_job_find_task(const dbp_job *job, const char *name) {
  for (size_t i = 0; i < job->ntasks; i++) {
    if (job->tasks[i].name != NULL && strcmp(job->tasks[i].name, name) == 0) return (long)i;
  }
  return -1;
}

int dbp_job_parse(const char *text, size_t len, const char *file, const dbp_job_options *opts,
                  dbp_job **out, dbp_job_diag *diag) {
  static const dbp_job_options no_opts;
  if (opts == NULL) opts = &no_opts;
  if (file == NULL) file = "<job>";
  *out = NULL;
  *diag = (dbp_job_diag){0};
  diag->file = strdup(file);
  if (diag->file == NULL) return DBP_ENOMEM;

  jp p = {.src = text,
          .srclen = len,
          .diag = diag,
          .getenv_fn = opts->getenv,
          .getenv_ud = opts->getenv_ud,
          .dir = opts->dir};
  int rc = DBP_ENOMEM;
  yaml_parser_t y;
  bool have_doc = false, have_parser = false;

  p.job = calloc(1, sizeof *p.job);
  if (p.job == NULL) goto done;
  p.job->started = opts->now != 0 ? opts->now : time(NULL);
  struct tm tm;
  gmtime_r(&p.job->started, &tm);
  strftime(p.date, sizeof p.date, "%Y-%m-%d", &tm);
  p.job->file = strdup(file);
  p.job->dir = opts->dir != NULL ? strdup(opts->dir) : NULL;
  if (p.job->file == NULL || (opts->dir != NULL && p.job->dir == NULL)) goto done;
  index_lines(&p);
  if (p.oom) goto done;

  if (!yaml_parser_initialize(&y)) goto done;
  have_parser = true;
  yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
  if (!yaml_parser_load(&y, &p.doc)) {
    yaml_error(&p, &y);
  } else {
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&p.doc);
    if (root == NULL) {
      err_at(&p, 0, 0, "the job file is empty");
    } else {
      parse_root(&p, root, file);
      /* A second document would be silently ignored: say so. */
      yaml_document_t extra;
      if (yaml_parser_load(&y, &extra)) {
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        if (r2 != NULL) {
          err_at(&p, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1,
                 "a job file holds one YAML document; remove the second one");
        }
        yaml_document_delete(&extra);
      } else {
        yaml_error(&p, &y);
      }
    }
  }
  if (p.oom) goto done;
  if (diag->count > 0) {
    dbp__job_diag_sort(diag);
    rc = DBP_EJOB;
    goto done;
  }
  *out = p.job;
  p.job = NULL;
  dbp_job_diag_free(diag); /* nothing to say */
  rc = 0;

done:
  if (have_doc) yaml_document_delete(&p.doc);
  if (have_parser) yaml_parser_delete(&y);
  dbp_job_free(p.job);
  free(p.lines);
  free(p.conn_ok);
  strset_free(&p.names);
  strset_free(&p.paths);
  if (rc == DBP_ENOMEM) {
    dbp_job_diag_free(diag);
    diag->file = strdup(file);
    if (diag->file != NULL) dbp__job_diag_add(diag, 0, 0, "out of memory");
  }
  return rc;
}

int dbp_job_load(const char *path, const dbp_job_options *opts, dbp_job **out, dbp_job_diag *diag) {
  static const dbp_job_options no_opts;
  *out = NULL;
  *diag = (dbp_job_diag){0};
  int rc;
  char *text = NULL, *dir = NULL;
  int err = 0;
  /* Opened without blocking and checked before reading: a FIFO or a device
   * would otherwise hang the loader or feed it endless input. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    err = errno;
    rc = err == ENOENT ? DBP_ENOENT : err == EACCES ? DBP_EACCES : DBP_EIO;
    goto fail;
  }
  struct stat st = {0};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    bool is_dir = S_ISDIR(st.st_mode);
    close(fd);
    diag->file = strdup(path);
    dbp__job_diag_add(
        diag, 0, 0, "cannot read the job file: %s",
        is_dir ? "it is a directory" : "it is not a regular file (a FIFO, device or socket)");
    return DBP_EIO;
  }
  /* A regular file never blocks; reads go back to the ordinary mode. */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    err = errno;
    close(fd);
    rc = DBP_ENOMEM;
    goto fail;
  }
  text = malloc(JOB_MAX_FILE_BYTES + 1);
  if (text == NULL) {
    fclose(f);
    return DBP_ENOMEM;
  }
  size_t n = fread(text, 1, JOB_MAX_FILE_BYTES + 1, f);
  bool bad = ferror(f) != 0;
  int e = errno;
  fclose(f);
  if (bad || n > JOB_MAX_FILE_BYTES) {
    free(text);
    text = NULL;
    if (bad) {
      err = e;
      rc = dbp_err_from_errno(-e) == DBP_EACCES ? DBP_EACCES : DBP_EIO;
      goto fail;
    }
    diag->file = strdup(path);
    dbp__job_diag_add(diag, 0, 0, "the file is larger than %u MiB", JOB_MAX_FILE_BYTES >> 20);
    return DBP_EJOB;
  }

  dbp_job_options o = opts != NULL ? *opts : no_opts;
  if (o.dir == NULL) {
    /* Relative paths in the job are relative to the job file. */
    char *copy = strdup(path);
    if (copy == NULL) {
      free(text);
      return DBP_ENOMEM;
    }
    char *slash = strrchr(copy, '/');
    const char *d = slash == NULL ? "." : slash == copy ? "/" : (*slash = '\0', copy);
    dir = realpath(d, NULL);
    if (dir == NULL) dir = strdup(d);
    free(copy);
    if (dir == NULL) {
      free(text);
      return DBP_ENOMEM;
    }
    o.dir = dir;
  }
  rc = dbp_job_parse(text, n, path, &o, out, diag);
  free(text);
  free(dir);
  return rc;

fail:
  diag->file = strdup(path);
  if (diag->file != NULL) {
    dbp__job_diag_add(diag, 0, 0, "cannot read the job file: %s", strerror(err));
  }
  return rc;
}
