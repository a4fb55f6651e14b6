/* The job-file loader: the YAML tree (yaml_tree.c) -> dbp_job, every task
 * setting through the one settings parser (settings.c), every problem
 * reported at its line and column. This file assembles the job:
 * connections, tasks, defaults, templates and the manifest path. */
#include "dbpipe/job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbpipe/db.h"
#include "dbpipe/export.h"
#include "job/job_internal.h"
#include "job/yaml_tree.h"

/* The keys a task (and `defaults:`) may hold: every task setting, and
 * `from`, the connection, which only the job can resolve. */
#define K_FROM DBP_SET_TASK_COUNT
#define K_COUNT (DBP_SET_TASK_COUNT + 1)

static const char *key_name(int k) {
  return k == K_FROM ? "from" : dbp_settings(NULL)[k].key;
}

static const char *const top_keys[] = {"connections", "concurrency", "snapshot",
                                       "manifest",    "defaults",    "tasks"};
static const char *const conn_keys[] = {"dsn", "pool", "snapshot"};

/* The keys of one task or of `defaults:` as written. */
typedef struct given {
  const dbp__ynode *key[K_COUNT]; /* the key node of each setting given */
  const dbp__ynode *val[K_COUNT]; /* its value node */
  char *text[K_COUNT];            /* defaults: the value as read (owned); NULL = unreadable */
  bool from_ok;                   /* `from` named a known connection ... */
  size_t conn;                    /* ... this one */
} given;

/* Parser state. */
typedef struct jp {
  dbp__ytree y;
  dbp_job_diag *diag;
  dbp_job *job;
  dbp_job_getenv_fn getenv_fn;
  void *getenv_ud;
  const char *dir; /* base of relative paths, NULL = keep relative */
  const dbp_job_options *opts;
  char date[16];
  bool oom;
  bool *conn_ok;     /* per connection: its DSN checked out */
  dbp__strset names; /* task name -> task index, for duplicates */
  dbp__strset paths; /* output path -> task index */
} jp;

/* ---- diagnostics ---- */

static void err_at(jp *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void err_at(jp *p, int line, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (dbp__job_diag_vadd(p->diag, line, col, fmt, ap) != 0) p->oom = true;
  va_end(ap);
}

#define ERR(p, node, ...) err_at((p), (node)->line, (node)->column, __VA_ARGS__)

/* Context for reports coming out of dbp__job_expand / dbp__job_templates. */
typedef struct report_ctx {
  jp *p;
  const dbp__ynode *node;
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
  dbp__ytree_locate(&r->p->y, r->node, r->marker, r->skip_env, k, &line, &col);
  err_at(r->p, line, col, "%s: %s", r->where, message);
}

/* ---- small helpers ---- */

static char *xstrdup(jp *p, const char *s) {
  char *d = strdup(s);
  if (d == NULL) p->oom = true;
  return d;
}

static const char *sval(const dbp__ynode *n) {
  return n->value;
}

#define is_null dbp__ytree_is_null
#define kind_name dbp__ytree_kind

/* The scalar text of `n`, or NULL after reporting that `what` (a key name)
 * needs `expect`. */
static const char *want_scalar(jp *p, const dbp__ynode *n, const char *what, const char *expect) {
  if (n->type != DBP__Y_SCALAR || is_null(n)) {
    ERR(p, n, "'%s' must be %s, not %s", what, expect, kind_name(n));
    return NULL;
  }
  if (strlen(sval(n)) != n->length) {
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

static void unknown_key(jp *p, const dbp__ynode *key, const char *where, const char *const *known,
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
static const char *pair_key(jp *p, const dbp__ynode *map, const dbp__ypair *pair,
                            const char *where) {
  const dbp__ynode *key = pair->key;
  if (key->type != DBP__Y_SCALAR) {
    ERR(p, key, "keys in %s must be plain words, not %s", where, kind_name(key));
    return NULL;
  }
  for (const dbp__ypair *q = map->pairs; q < pair; q++) {
    const dbp__ynode *k2 = q->key;
    if (k2->type == DBP__Y_SCALAR && strcmp(sval(k2), sval(key)) == 0) {
      ERR(p, key, "duplicate key '%s' in %s (first at line %d)", sval(key), where, k2->line);
      return NULL;
    }
  }
  return sval(key);
}

/* Expands ${VAR} in the scalar `n`. Returns a new string or NULL (reported). */
static char *expand(jp *p, const dbp__ynode *n, const char *value, const char *where) {
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
static char *output_path(jp *p, const dbp__ynode *n, const char *value, const char *name,
                         const char *where) {
  char *out = NULL;
  report_ctx r = {p, n, value, "{", true, where};
  /* A task's path keeps the runner's templates; the manifest (no name) has
   * none. */
  int rc = dbp__job_templates(value, name, p->date, name != NULL, &out, report_cb, &r);
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

/* Appends c (owned from here on) to the job's connections, with whether
 * its DSN checked out; out of memory frees it. */
static void append_conn(jp *p, dbp_job_conn c, bool ok) {
  dbp_job *job = p->job;
  dbp_job_conn *nc = dbp__grow(job->conns, job->nconns, sizeof *nc);
  if (nc != NULL) job->conns = nc;
  bool *nok = dbp__grow(p->conn_ok, job->nconns, sizeof *nok);
  if (nok != NULL) p->conn_ok = nok;
  if (nc == NULL || nok == NULL) {
    p->oom = true;
    free(c.name);
    free(c.dsn);
    free(c.dsn_redacted);
    return;
  }
  p->conn_ok[job->nconns] = ok;
  job->conns[job->nconns++] = c;
}

/* Reads one entry of connections: (a DSN, or a mapping with dsn and pool),
 * expands and checks its DSN, and appends it to the job even when it is bad
 * (so tasks naming it get no second, misleading error). */
static void parse_connection(jp *p, const dbp__ynode *key, const dbp__ynode *val) {
  char where[160];
  snprintf(where, sizeof where, "connection '%s'", sval(key));
  const dbp__ynode *dsn_node = NULL, *pool_node = NULL, *snap_node = NULL;
  if (val->type == DBP__Y_MAPPING) {
    for (size_t pr_i = 0; pr_i < val->count; pr_i++) {
      const dbp__ypair *pr = &val->pairs[pr_i];
      const char *k = pair_key(p, val, pr, where);
      if (k == NULL) continue;
      if (strcmp(k, "dsn") == 0) {
        dsn_node = pr->value;
      } else if (strcmp(k, "pool") == 0) {
        pool_node = pr->value;
      } else if (strcmp(k, "snapshot") == 0) {
        snap_node = pr->value;
      } else {
        unknown_key(p, pr->key, where, conn_keys, sizeof conn_keys / sizeof conn_keys[0]);
      }
    }
    if (dsn_node == NULL) ERR(p, val, "%s has no 'dsn' (the connection string)", where);
  } else if (val->type == DBP__Y_SCALAR && !is_null(val)) {
    dsn_node = val;
  } else {
    ERR(p, val,
        "%s must be a connection string or a mapping with 'dsn', 'pool' and 'snapshot', not %s",
        where, kind_name(val));
  }

  dbp_job_conn c = {.line = key->line, .column = key->column};
  bool ok = dsn_node != NULL;
  c.name = xstrdup(p, sval(key));
  if (pool_node != NULL) {
    const char *s = want_scalar(p, pool_node, "pool", "a positive number");
    char why[200];
    if (s != NULL && dbp_job_conn_set(&c, "pool", s, why, sizeof why) != 0) {
      ERR(p, pool_node, "%s: 'pool' must be %s, not '%s'", where, why, s);
      ok = false;
    }
    if (s == NULL) ok = false;
  }
  if (snap_node != NULL) {
    const char *s = want_scalar(p, snap_node, "snapshot", "on, none or lock-free");
    char why[200];
    if (s != NULL && dbp_job_conn_set(&c, "snapshot", s, why, sizeof why) != 0) {
      ERR(p, snap_node, "%s: 'snapshot' must be %s, not '%s'", where, why, s);
      ok = false;
    }
    if (s == NULL) ok = false;
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

  append_conn(p, c, ok);
}

static bool find_extra(const jp *p, const char *name) {
  for (size_t i = 0; i < p->opts->nextra_conns; i++) {
    if (strcmp(p->opts->extra_conns[i].name, name) == 0) return true;
  }
  return false;
}

static char *dup_or_null(jp *p, const char *s) {
  return s != NULL ? xstrdup(p, s) : NULL;
}

/* Appends copies of the caller's connections after the job's own, checked
 * already when they were loaded. */
static void add_extras(jp *p) {
  for (size_t i = 0; i < p->opts->nextra_conns && !p->oom; i++) {
    const dbp_job_conn *x = &p->opts->extra_conns[i];
    dbp_job_conn c = {.name = xstrdup(p, x->name),
                      .dsn = xstrdup(p, x->dsn),
                      .dsn_redacted = dup_or_null(p, x->dsn_redacted),
                      .kind = x->kind,
                      .pool = x->pool,
                      .snapshot = x->snapshot};
    /* A failed copy has set p->oom; the rest is freed with the job. */
    append_conn(p, c, true);
  }
}

static void parse_connections(jp *p, const dbp__ynode *n) {
  if (n->type != DBP__Y_MAPPING) {
    ERR(p, n, "'connections' must map names to connection strings, not %s", kind_name(n));
    return;
  }
  for (size_t pr_i = 0; pr_i < n->count; pr_i++) {
    const dbp__ypair *pr = &n->pairs[pr_i];
    const char *k = pair_key(p, n, pr, "connections");
    if (k == NULL) continue;
    if (*k == '\0') {
      ERR(p, pr->key, "a connection needs a name");
      continue;
    }
    if (find_extra(p, k)) {
      /* A task naming it could not tell which one it meant. */
      ERR(p, pr->key,
          "connection '%s' is already defined by the service (drop it or choose another name)", k);
      continue;
    }
    parse_connection(p, pr->key, pr->value);
  }
  if (n->count == 0) ERR(p, n, "'connections' is empty: name at least one database");
}

/* ---- task settings ---- */

/* Resolves `from` at value node v into g (reporting an unknown name). */
static void read_from(jp *p, given *g, const dbp__ynode *v, const char *where) {
  const char *s = want_scalar(p, v, "from", "a connection name");
  if (s == NULL) return;
  long ci = find_conn(p->job, s);
  if (ci < 0) {
    char known[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < p->job->nconns && used < sizeof known; i++) {
      int w =
          snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", p->job->conns[i].name);
      if (w > 0) used += (size_t)w;
    }
    if (p->job->nconns > 0) {
      ERR(p, v, "%s: unknown connection '%s' (defined: %s)", where, s, known);
    } else {
      ERR(p, v, "%s: unknown connection '%s' (no connections are defined)", where, s);
    }
    return;
  }
  g->conn = (size_t)ci;
  g->from_ok = true;
}

/* The patterns of a list (`tables: [public.*, shop.orders]`), joined with
 * commas for the settings parser, which splits them again outside quotes:
 * a quoted comma ('"odd,name".t') survives. Each item is expanded. Returns
 * a new string, or NULL after reporting. */
static char *join_items(jp *p, const dbp__ynode *v, const dbp_setting *st, const char *where) {
  dbp_buf b = {0};
  bool bad = false;
  for (size_t i = 0; i < v->count; i++) {
    const dbp__ynode *it = v->items[i];
    if (it->type != DBP__Y_SCALAR || is_null(it) || strlen(sval(it)) != it->length) {
      ERR(p, it, "%s: every item of '%s' must be a table pattern, not %s", where, st->key,
          it->type == DBP__Y_SCALAR && !is_null(it) ? "text with a NUL character" : kind_name(it));
      bad = true;
      continue;
    }
    char *x = expand(p, it, sval(it), where);
    if (x == NULL) {
      bad = true;
      continue;
    }
    /* Joined, an item whose quote does not end would swallow the next
     * one: `[s."a, b"]` is two YAML items, s."a and b". */
    char quote = 0;
    for (const char *c = x; *c; c++) {
      if (quote == 0 && (*c == '"' || *c == '`')) {
        quote = *c;
      } else if (*c == quote) {
        quote = 0;
      }
    }
    if (quote != 0) {
      ERR(p, it,
          "%s: the item '%s' of '%s' has a quote that never ends (a comma inside [...] "
          "ends an item: quote the whole pattern, '\"a, b\".t')",
          where, x, st->key);
      free(x);
      bad = true;
      continue;
    }
    if (i > 0) dbp_buf_append(&b, ",", 1);
    dbp_buf_append(&b, x, strlen(x));
    free(x);
  }
  if (v->count == 0) {
    ERR(p, v, "%s: '%s' is an empty list (expected %s)", where, st->key, st->expect);
    bad = true;
  }
  if (b.oom) p->oom = true;
  if (bad || b.oom) {
    dbp_buf_free(&b);
    return NULL;
  }
  return b.data;
}

/* Reads the value node v of task setting k and applies it to t with the
 * settings parser, framing a refusal as a job file's message. Strings that
 * take ${VAR} (query, table, to, ...) are expanded first; `tables` and
 * `exclude` may be lists. Returns a copy of the text handed to the parser
 * (NULL when the node had none, or the value was refused) when `keep`,
 * for `defaults:`. */
static char *read_value(jp *p, dbp_job_task *t, int k, const dbp__ynode *v, const char *where,
                        bool keep) {
  const dbp_setting *st = &dbp_settings(NULL)[k];
  const char *s = NULL;
  char *expanded = NULL;
  bool patterns = k == DBP_SET_TABLES || k == DBP_SET_EXCLUDE;
  if (patterns && v->type == DBP__Y_SEQUENCE) {
    expanded = join_items(p, v, st, where);
    if (expanded == NULL) {
      /* Reported: the setting was given, and is bad. */
      dbp_task_set(t, st->key, NULL, NULL, 0);
      return NULL;
    }
    s = expanded;
  } else if (st->kind == DBP_SETTING_STRING) {
    if (v->type != DBP__Y_SCALAR) {
      ERR(p, v, "'%s' must be %s, not %s", st->key, st->expect, kind_name(v));
    } else {
      /* `null:` alone means the empty string here. */
      s = is_null(v) && *sval(v) == '\0' ? "" : sval(v);
    }
  } else {
    s = want_scalar(p, v, st->key, st->expect);
  }
  if (s != NULL && expanded == NULL && st->kind == DBP_SETTING_TEXT) {
    expanded = expand(p, v, s, where);
    s = expanded;
  }
  char why[400];
  int rc = dbp_task_set(t, st->key, s, why, sizeof why);
  if (rc == DBP_ENOMEM) p->oom = true;
  if (rc == DBP_EINVAL && s != NULL) {
    switch (patterns ? DBP_SETTING_NUMBER : st->kind) {
      case DBP_SETTING_NAME:
        ERR(p, v, "task name '%s' %s", s, why);
        break;
      case DBP_SETTING_TEXT:
        ERR(p, v, "%s: '%s' is empty (expected %s)", where, st->key, why);
        break;
      case DBP_SETTING_CHOICE:
        ERR(p, v, "%s: unknown %s '%s' (use %s)", where, st->key, s, why);
        break;
      case DBP_SETTING_DURATION:
      case DBP_SETTING_TIME_LIMIT:
        ERR(p, v, "%s: bad duration '%s' for '%s' (use %s)", where, s, st->key, why);
        break;
      default:
        ERR(p, v, "%s: '%s' must be %s, not '%s'", where, st->key, why, s);
        break;
    }
  }
  char *kept = NULL;
  if (keep && rc == 0 && s != NULL) kept = xstrdup(p, s);
  free(expanded);
  return kept;
}

/* Reads the mapping `n` (a task, or `defaults:`) into t, recording in g
 * where each key and value is. */
static void read_settings(jp *p, const dbp__ynode *n, dbp_job_task *t, given *g, bool is_defaults,
                          const char *where) {
  const char *known[K_COUNT];
  size_t nknown = 0;
  for (int k = 0; k < K_COUNT; k++) {
    /* In the order a task is written: name, from, query, ... */
    int kk = k == 0 ? DBP_SET_NAME : k == 1 ? K_FROM : k - 1;
    bool ok = kk == K_FROM || !is_defaults || dbp_settings(NULL)[kk].in_defaults;
    if (ok) known[nknown++] = key_name(kk);
  }
  for (size_t pr_i = 0; pr_i < n->count; pr_i++) {
    const dbp__ypair *pr = &n->pairs[pr_i];
    const char *key = pair_key(p, n, pr, where);
    if (key == NULL) continue;
    int k = 0;
    while (k < K_COUNT && strcmp(key_name(k), key) != 0) k++;
    const dbp__ynode *kn = pr->key;
    if (k == K_COUNT) {
      unknown_key(p, kn, where, known, nknown);
      continue;
    }
    if (is_defaults && k != K_FROM && !dbp_settings(NULL)[k].in_defaults) {
      ERR(p, kn, "'%s' cannot be a default: set it in each task", key);
      continue;
    }
    g->key[k] = kn;
    g->val[k] = pr->value;
    if (k == K_FROM) {
      read_from(p, g, g->val[k], where);
    } else {
      g->text[k] = read_value(p, t, k, g->val[k], where, is_defaults);
    }
  }
}

/* ---- tasks ---- */

/* Frames what dbp_task_finish found as a job file's message, at the value
 * of the setting it is about (or at `to` when the value was inherited). */
typedef struct finish_ctx {
  jp *p;
  const given *g;
  const char *where;
  const dbp__ynode *task; /* the task's mapping */
} finish_ctx;

static void finish_cb(void *ud, const dbp_task_problem *pb) {
  finish_ctx *f = ud;
  if (pb->code == DBP_TASK_SOURCE) {
    /* At the task when it names nothing to read, else at the later of the
     * keys given. */
    static const int src[] = {DBP_SET_QUERY, DBP_SET_TABLE, DBP_SET_TABLES};
    const dbp__ynode *first = NULL, *last = NULL;
    for (size_t i = 0; i < 3; i++) {
      const dbp__ynode *k = f->g->key[src[i]];
      if (k == NULL) continue;
      if (first == NULL || k->start.index < first->start.index) first = k;
      if (last == NULL || k->start.index > last->start.index) last = k;
    }
    if (last == NULL) {
      ERR(f->p, f->task, "%s needs 'query', 'table' or 'tables'", f->where);
    } else {
      ERR(f->p, last, "%s has both '%s' and '%s': give one of them", f->where, sval(first),
          sval(last));
    }
    return;
  }
  const dbp__ynode *at = f->g->val[pb->setting];
  if (at == NULL || pb->from_default) at = f->g->val[DBP_SET_TO];
  if (at == NULL) return; /* nothing a task without a path can be told */
  switch (pb->code) {
    case DBP_TASK_UNKNOWN_ENDING:
      ERR(f->p, at, "%s: %s with 'format:'", f->where, pb->reason);
      break;
    case DBP_TASK_CONFLICT:
      ERR(f->p, at, "%s: '%s' %s", f->where, key_name(pb->setting), pb->reason);
      break;
    default:
      ERR(f->p, at, "%s: %s", f->where, pb->reason);
      break;
  }
}

/* Reads task #index, applies `defs` to it, checks it as a whole (required
 * keys, the settings together, unique names and paths) and appends it to
 * the job. */
static void parse_task(jp *p, const dbp__ynode *n, size_t index, const given *defs) {
  char where[160];
  if (n->type != DBP__Y_MAPPING) {
    ERR(p, n, "task #%zu must be a mapping with name, from, to and query or table, not %s",
        index + 1, kind_name(n));
    return;
  }
  /* The name first, for messages. */
  snprintf(where, sizeof where, "task #%zu", index + 1);
  for (size_t pr_i = 0; pr_i < n->count; pr_i++) {
    const dbp__ypair *pr = &n->pairs[pr_i];
    const dbp__ynode *k = pr->key, *v = pr->value;
    if (k->type == DBP__Y_SCALAR && strcmp(sval(k), "name") == 0 && v->type == DBP__Y_SCALAR &&
        !is_null(v)) {
      snprintf(where, sizeof where, "task '%s'", sval(v));
      break;
    }
  }

  size_t problems = p->diag->count;
  dbp_job_task task;
  dbp_task_init(&task);
  task.line = n->line;
  task.column = n->column;
  given g = {0};
  read_settings(p, n, &task, &g, false, where);
  bool ok = true;
  const unsigned char *o = task.origin;

  /* Required settings. */
  if (g.key[DBP_SET_NAME] == NULL) {
    ERR(p, n, "%s has no 'name'", where);
  }
  if (g.key[K_FROM] == NULL && defs->key[K_FROM] == NULL) {
    ERR(p, n, "%s has no 'from' (the connection to read from)", where);
  }
  if (g.key[DBP_SET_TO] == NULL) {
    ERR(p, n, "%s has no 'to' (the output file)", where);
  }
  /* One of query, table and tables: dbp_task_finish says (DBP_TASK_SOURCE). */

  /* Unique names. */
  bool named = o[DBP_SET_NAME] == DBP_ORIGIN_TASK;
  if (named) {
    long other = dbp__strset_find(&p->names, task.name);
    if (other >= 0) {
      ERR(p, g.val[DBP_SET_NAME], "duplicate task name '%s' (first defined at line %d)", task.name,
          p->job->tasks[other].line);
    }
  }

  /* The connection: the task's own, else the default one. */
  const given *src = g.key[K_FROM] != NULL ? &g : defs;
  if (src->from_ok) {
    task.conn = src->conn;
    if (!p->conn_ok[task.conn]) ok = false; /* already reported there */
  } else {
    ok = false;
  }

  /* What the task does not say, `defaults:` may. */
  for (int k = 0; k < DBP_SET_TASK_COUNT; k++) {
    if (defs->key[k] == NULL) continue;
    if (dbp_task_set_default(&task, key_name(k), defs->text[k], NULL, 0) == DBP_ENOMEM)
      p->oom = true;
  }

  /* The output path, with its templates, then the settings checked
   * together (format and compression against it). */
  if (task.path != NULL && (!named || strcmp(task.path, "-") == 0)) {
    if (named) {
      /* Tasks run side by side: their rows would interleave on one stdout. */
      ERR(p, g.val[DBP_SET_TO],
          "%s: 'to: -' (standard output) is not possible in a job file, whose tasks run "
          "side by side; use dbpipe export --to - for one query",
          where);
    }
    free(task.path);
    task.path = NULL;
  } else if (task.path != NULL) {
    char *path = output_path(p, g.val[DBP_SET_TO], task.path, task.name, where);
    free(task.path);
    task.path = path;
  }
  finish_ctx fc = {p, &g, where, n};
  dbp_task_finish(&task, finish_cb, &fc);

  /* One statement per task: a second one would run unseen. */
  if (task.query != NULL && src->from_ok && p->conn_ok[src->conn]) {
    char why[400] = "";
    if (dbp_sql_check_single(p->job->conns[src->conn].kind, task.query, why, sizeof why) != 0) {
      ERR(p, g.val[DBP_SET_QUERY], "%s: %s", where,
          why[0] ? why : "the query must be one statement");
    }
  }

  /* A filter is pasted into each table's query: it must not end it. */
  if (task.where != NULL && src->from_ok && p->conn_ok[src->conn]) {
    char why[400] = "";
    if (dbp__where_check(p->job->conns[src->conn].kind, task.where, why, sizeof why) != 0) {
      const dbp__ynode *at =
          g.val[DBP_SET_WHERE] != NULL ? g.val[DBP_SET_WHERE] : g.val[DBP_SET_TO];
      if (at == NULL) at = n;
      ERR(p, at, "%s: 'where': %s", where, why);
    }
  }

  /* Two tasks writing one file would destroy each other's output. A path
   * the runner still fills in ({table}, {part}) names files only it knows:
   * it checks them once the tables are found. */
  if (task.path != NULL && !dbp__path_has_runner_templates(task.path)) {
    long other = dbp__strset_find(&p->paths, task.path);
    if (other >= 0) {
      ERR(p, g.val[DBP_SET_TO], "%s writes the same file as task '%s' (line %d)", where,
          p->job->tasks[other].name, p->job->tasks[other].line);
    }
  }

  if (p->diag->count != problems || task.path == NULL) ok = false;
  if (ok && !p->oom) {
    dbp_job_task *nt = dbp__grow(p->job->tasks, p->job->ntasks, sizeof *nt);
    if (nt != NULL) {
      p->job->tasks = nt;
      if (!dbp__strset_add(&p->names, task.name, p->job->ntasks) ||
          !dbp__strset_add(&p->paths, task.path, p->job->ntasks))
        p->oom = true;
      p->job->tasks[p->job->ntasks++] = task;
      return;
    }
    p->oom = true;
  }
  /* A bad task is dropped, but its name is remembered (as a task with an
   * empty path) so that a later duplicate is still reported. The job is
   * never handed out after an error, so this placeholder is never run. */
  if (named) {
    dbp_job_task *nt = dbp__grow(p->job->tasks, p->job->ntasks, sizeof *nt);
    if (nt != NULL) {
      p->job->tasks = nt;
      if (!dbp__strset_add(&p->names, task.name, p->job->ntasks)) p->oom = true;
      dbp_job_task placeholder;
      dbp_task_init(&placeholder);
      placeholder.name = task.name;
      placeholder.line = task.line;
      placeholder.column = task.column;
      placeholder.path = xstrdup(p, "");
      p->job->tasks[p->job->ntasks++] = placeholder;
      task.name = NULL;
    } else {
      p->oom = true;
    }
  }
  dbp_task_clear(&task);
}

static void parse_tasks(jp *p, const dbp__ynode *n, const given *defs) {
  if (n->type != DBP__Y_SEQUENCE) {
    ERR(p, n, "'tasks' must be a list of tasks, not %s", kind_name(n));
    return;
  }
  size_t i = 0;
  for (; i < n->count; i++) parse_task(p, n->items[i], i, defs);
  if (i == 0) ERR(p, n, "'tasks' is empty: a job needs at least one task");
}

static bool ends_with(const char *s, const char *suffix) {
  size_t ls = strlen(s), lx = strlen(suffix);
  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* ---- the whole file ---- */

/* A file of named databases (connections_only): `connections:` alone. */
static void parse_connections_file(jp *p, const dbp__ynode *root) {
  if (root->type != DBP__Y_MAPPING) {
    ERR(p, root, "a connections file is a mapping with 'connections', not %s", kind_name(root));
    return;
  }
  const dbp__ynode *conns = NULL;
  for (size_t pr_i = 0; pr_i < root->count; pr_i++) {
    const dbp__ypair *pr = &root->pairs[pr_i];
    const char *k = pair_key(p, root, pr, "the connections file");
    if (k == NULL) continue;
    if (strcmp(k, "connections") == 0) {
      conns = pr->value;
    } else {
      ERR(p, pr->key, "'%s' has no place in a connections file (it holds only 'connections')", k);
    }
  }
  p->job->concurrency = DBP_JOB_DEFAULT_CONCURRENCY;
  if (conns != NULL) {
    parse_connections(p, conns);
  } else {
    err_at(p, 1, 1, "the connections file has no 'connections'");
  }
  add_extras(p);
}

/* Reads the top-level mapping. Connections are read before tasks whatever
 * their order in the file, so that tasks can refer to them. */
static void parse_root(jp *p, const dbp__ynode *root, const char *file) {
  if (p->opts->connections_only) {
    parse_connections_file(p, root);
    return;
  }
  if (root->type != DBP__Y_MAPPING) {
    ERR(p, root, "a job file is a mapping with 'connections' and 'tasks', not %s", kind_name(root));
    return;
  }
  const dbp__ynode *conns = NULL, *conc = NULL, *snap = NULL, *manifest = NULL, *defaults = NULL,
                   *tasks = NULL;
  for (size_t pr_i = 0; pr_i < root->count; pr_i++) {
    const dbp__ypair *pr = &root->pairs[pr_i];
    const char *k = pair_key(p, root, pr, "the job");
    if (k == NULL) continue;
    const dbp__ynode *v = pr->value;
    if (strcmp(k, "connections") == 0) {
      conns = v;
    } else if (strcmp(k, "concurrency") == 0) {
      conc = v;
    } else if (strcmp(k, "snapshot") == 0) {
      snap = v;
    } else if (strcmp(k, "manifest") == 0) {
      manifest = v;
    } else if (strcmp(k, "defaults") == 0) {
      defaults = v;
    } else if (strcmp(k, "tasks") == 0) {
      tasks = v;
    } else {
      unknown_key(p, pr->key, "the job", top_keys, sizeof top_keys / sizeof top_keys[0]);
    }
  }

  dbp_job *job = p->job;
  if (conns != NULL) {
    parse_connections(p, conns);
  } else if (p->opts->nextra_conns == 0) {
    err_at(p, 1, 1, "the job has no 'connections'");
  }
  /* Before the tasks, which may name them. */
  add_extras(p);

  job->concurrency = DBP_JOB_DEFAULT_CONCURRENCY;
  if (conc != NULL) {
    const char *s = want_scalar(p, conc, "concurrency", "a positive number");
    char why[200];
    if (s != NULL && dbp_job_set(job, "concurrency", s, why, sizeof why) != 0)
      ERR(p, conc, "'concurrency' must be %s, not '%s'", why, s);
  }
  /* Not given: AUTO, which the runner reads as on. */
  if (snap != NULL) {
    const char *s = want_scalar(p, snap, "snapshot", "on, none or lock-free");
    char why[200];
    if (s != NULL && dbp_job_set(job, "snapshot", s, why, sizeof why) != 0)
      ERR(p, snap, "'snapshot' must be %s, not '%s'", why, s);
  }

  /* The manifest: given, disabled with `false`, the caller's default, or
   * <stem>.manifest.json. */
  bool disabled = false;
  if (manifest != NULL && manifest->type == DBP__Y_SCALAR && manifest->plain) {
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
  } else if (manifest == NULL && p->opts->default_manifest != NULL) {
    job->manifest = xstrdup(p, p->opts->default_manifest);
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

  given defs = {0};
  if (defaults != NULL) {
    if (defaults->type == DBP__Y_MAPPING) {
      dbp_job_task scratch;
      dbp_task_init(&scratch);
      read_settings(p, defaults, &scratch, &defs, true, "defaults");
      dbp_task_clear(&scratch);
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
  for (int k = 0; k < K_COUNT; k++) free(defs.text[k]);
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
    dbp_task_clear(&job->tasks[i]);
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

  jp p = {.diag = diag,
          .getenv_fn = opts->getenv,
          .getenv_ud = opts->getenv_ud,
          .dir = opts->dir,
          .opts = opts};
  int rc = DBP_ENOMEM;

  p.job = calloc(1, sizeof *p.job);
  if (p.job == NULL) goto done;
  p.job->started = opts->now != 0 ? opts->now : time(NULL);
  struct tm tm;
  gmtime_r(&p.job->started, &tm);
  strftime(p.date, sizeof p.date, "%Y-%m-%d", &tm);
  p.job->file = strdup(file);
  p.job->dir = opts->dir != NULL ? strdup(opts->dir) : NULL;
  if (p.job->file == NULL || (opts->dir != NULL && p.job->dir == NULL)) goto done;

  int lrc = dbp__ytree_load(&p.y, text, len, diag);
  if (lrc == DBP_ENOMEM) goto done;
  if (p.y.root != NULL) {
    parse_root(&p, p.y.root, file);
  } else if (lrc == 0) {
    err_at(&p, 0, 0, "the %s file is empty", opts->connections_only ? "connections" : "job");
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
  dbp__ytree_free(&p.y);
  dbp_job_free(p.job);
  free(p.conn_ok);
  dbp__strset_free(&p.names);
  dbp__strset_free(&p.paths);
  if (rc == DBP_ENOMEM) {
    dbp_job_diag_free(diag);
    diag->file = strdup(file);
    if (diag->file != NULL) dbp__job_diag_add(diag, 0, 0, "out of memory");
  }
  return rc;
}
