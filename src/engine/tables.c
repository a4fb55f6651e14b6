/* Whole tables: a `tables` task becomes one task per table the catalog
 * lists, and every table task gets a plan (one part, or the parts of a
 * split), before any export starts. Discovery and planning run on a
 * connection of the run, inside the snapshot when it shares one, so they
 * see the database the exports will read. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

#define PLAN_TIMEOUT_MS (5 * 60 * 1000)

/* ---- file names ---- */

/* Appends `v` made safe as (part of) one path component: '/', '%' and
 * control characters become %XX, and a value that is "." or ".." is
 * written %2E / %2E%2E, so that no table name can reach outside the
 * directory the path names, or into a subdirectory. */
static void put_safe(dbp_buf *b, const char *v) {
  if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
    for (const char *p = v; *p; p++) dbp_buf_puts(b, "%2E");
    return;
  }
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '/' || *p == '%' || *p < 0x20 || *p == 0x7f) {
      dbp_buf_printf(b, "%%%02X", *p);
    } else {
      dbp_buf_append(b, p, 1);
    }
  }
}

char *dbp__fill_path(const char *tmpl, const char *schema, const char *table, size_t part) {
  dbp_buf b = {0};
  for (const char *p = tmpl; *p;) {
    if (schema != NULL && strncmp(p, "{schema}", 8) == 0) {
      put_safe(&b, schema);
      p += 8;
    } else if (table != NULL && strncmp(p, "{table}", 7) == 0) {
      put_safe(&b, table);
      p += 7;
    } else if (part != 0 && strncmp(p, "{part}", 6) == 0) {
      dbp_buf_printf(&b, "%05zu", part);
      p += 6;
    } else {
      dbp_buf_append(&b, p++, 1);
    }
  }
  if (b.oom || b.data == NULL) {
    dbp_buf_free(&b);
    return NULL;
  }
  return b.data;
}

/* ---- marking a task failed before it ran ---- */

static void fail_task(dbp__task *t, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_task(dbp__task *t, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->info.message, sizeof t->info.message, fmt, ap);
  va_end(ap);
  dbp_secrets_scrub_str(&t->run->secrets, t->info.message);
  t->info.state = DBP_TASK_FAILED;
  t->info.error = rc;
}

static void fail_db(dbp__task *t, int rc, const dbp_dberr *e, const char *what) {
  char buf[600];
  dbp_dberr copy = *e;
  if (copy.code == 0) copy.code = rc;
  snprintf(t->info.sqlstate, sizeof t->info.sqlstate, "%s", e->sqlstate);
  t->info.db_errno = e->db_errno;
  snprintf(t->info.detail, sizeof t->info.detail, "%s", e->message);
  dbp_secrets_scrub_str(&t->run->secrets, t->info.detail);
  fail_task(t, rc, "%s: %s", what,
            copy.message[0] ? dbp_dberr_format(&copy, buf, sizeof buf) : dbp_strerror(rc));
}

/* ---- discovery ---- */

static int64_t plan_timeout(const dbp_job_task *jt) {
  return jt->timeout_ms > 0 && jt->timeout_ms != DBP_FOREVER ? jt->timeout_ms : PLAN_TIMEOUT_MS;
}

/* Keeps l alive until dbp_run_free; its entries are pointed to by tasks. */
static int keep_list(dbp_run *run, dbp_table_list *l) {
  dbp_table_list *n = realloc(run->lists, (run->nlists + 1) * sizeof *n);
  if (n == NULL) return DBP_ENOMEM;
  run->lists = n;
  run->lists[run->nlists++] = *l;
  memset(l, 0, sizeof *l);
  return 0;
}

/* Waits: lists the tables `f` selects on a connection of task t's
 * database. */
static int list_tables(dbp__task *t, const dbp_table_filter *f, dbp_table_list *out, dbp_dberr *err,
                       bool *connecting) {
  dbp_run *run = t->run;
  const dbp_job_task *jt = t->info.task;
  dbp_conn *c = NULL;
  int64_t timeout = plan_timeout(jt);
  *connecting = true;
  int rc = dbp__source_acquire(run, jt->conn, timeout, &c, err);
  if (rc != 0) return rc;
  *connecting = false;
  rc = dbp_list_tables(c, f, timeout, out);
  if (rc != 0) *err = *dbp_conn_error(c);
  dbp__source_release(run, jt->conn, c, rc != 0);
  return rc;
}

/* The same job task for one table of its pattern's list. */
static int make_table_task(dbp_run *run, const dbp__task *tmpl, const dbp_table_info *ti,
                           dbp__task *out) {
  memset(out, 0, sizeof *out);
  out->info = tmpl->info;
  out->run = run;
  out->is_table = true;
  out->tinfo = *ti;
  size_t n = strlen(tmpl->info.task->name) + strlen(ti->schema) + strlen(ti->name) + 3;
  out->own_name = malloc(n);
  out->own_table = malloc(n);
  out->path = dbp__fill_path(tmpl->info.task->path, ti->schema, ti->name, 0);
  if (out->own_name == NULL || out->own_table == NULL || out->path == NULL) return DBP_ENOMEM;
  snprintf(out->own_name, n, "%s:%s.%s", tmpl->info.task->name, ti->schema, ti->name);
  snprintf(out->own_table, n, "%s.%s", ti->schema, ti->name);
  out->info.name = out->own_name;
  out->info.path = out->path;
  out->info.table = out->own_table;
  return 0;
}

/* Waits: expands the pattern task at index i into `*list` entries
 * appended to nt. */
static int expand(dbp_run *run, dbp__task *t, dbp__task **nt, size_t *nn) {
  const dbp_job_task *jt = t->info.task;
  dbp_table_filter f = {.include = (const char *const *)jt->tables,
                        .ninclude = jt->ntables,
                        .exclude = (const char *const *)jt->exclude,
                        .nexclude = jt->nexclude,
                        .views = jt->views};
  dbp_table_list l = {0};
  dbp_dberr err = {0};
  bool connecting = false;
  int rc = list_tables(t, &f, &l, &err, &connecting);
  if (rc == 0 && l.n == 0) {
    dbp_buf s = {0};
    for (size_t k = 0; k < jt->ntables; k++)
      dbp_buf_printf(&s, "%s'%s'", k ? ", " : "", jt->tables[k]);
    fail_task(t, DBP_ENOENT, "no table matches %s on connection '%s'", s.data ? s.data : "",
              t->info.connection);
    dbp_buf_free(&s);
  } else if (rc != 0) {
    char what[300];
    snprintf(what, sizeof what, "connection '%s'", t->info.connection);
    fail_db(t, rc, &err, connecting ? what : "cannot list the tables");
  }
  if (rc != 0 || l.n == 0) {
    dbp_table_list_free(&l);
    /* The pattern stays one (failed) task, so the failure is seen. */
    dbp__task *g = realloc(*nt, (*nn + 1) * sizeof *g);
    if (g == NULL) return DBP_ENOMEM;
    *nt = g;
    g[(*nn)++] = *t;
    memset(t, 0, sizeof *t);
    return 0;
  }
  dbp__task *g = realloc(*nt, (*nn + l.n) * sizeof *g);
  if (g == NULL) {
    dbp_table_list_free(&l);
    return DBP_ENOMEM;
  }
  *nt = g;
  for (size_t k = 0; k < l.n; k++) {
    rc = make_table_task(run, t, &l.tables[k], &g[*nn]);
    (*nn)++;
    if (rc != 0) break;
  }
  if (rc == 0) rc = keep_list(run, &l);
  if (rc != 0) dbp_table_list_free(&l); /* only on ENOMEM, which fails the run */
  dbp__task_clear(t);
  return rc;
}

/* Waits: the catalog's entry of a `table:` task, for its key and row
 * estimate. The name is matched exactly (each dot-separated part quoted),
 * as the export would resolve it. Not found: *found false (an unsplit
 * export then runs as before and the server says what is wrong). */
static int lookup_table(dbp__task *t, bool *found, dbp_dberr *err, bool *connecting) {
  const dbp_job_task *jt = t->info.task;
  dbp_db_kind kind = t->run->job->conns[jt->conn].kind;
  char *pat = dbp_quote_ident(kind, jt->table);
  if (pat == NULL) return DBP_ENOMEM;
  const char *inc[1] = {pat};
  dbp_table_filter f = {.include = inc, .ninclude = 1};
  dbp_table_list l = {0};
  int rc = list_tables(t, &f, &l, err, connecting);
  free(pat);
  *found = rc == 0 && l.n == 1;
  if (*found) {
    t->tinfo = l.tables[0];
    rc = keep_list(t->run, &l);
  }
  dbp_table_list_free(&l);
  return rc;
}

/* ---- plans ---- */

static bool wants_split(const dbp_job_task *jt) {
  return jt->partitions > 0 || jt->chunk_rows > 0;
}

/* A plan of one part by hand: nothing to ask the server. */
static int one_part_plan(dbp__task *t, dbp_db_kind kind) {
  dbp_plan_table *p = &t->plan;
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->schema = strdup(t->tinfo.schema);
  p->name = strdup(t->tinfo.name);
  p->qualified = strdup(t->tinfo.qualified);
  p->table_kind = t->tinfo.kind;
  p->rows_estimate = t->tinfo.rows_estimate;
  p->rows_counted = -1;
  p->method = DBP_SPLIT_NONE;
  p->parts = calloc(1, sizeof *p->parts);
  if (p->schema == NULL || p->name == NULL || p->qualified == NULL || p->parts == NULL) {
    dbp_plan_table_free(p);
    return DBP_ENOMEM;
  }
  p->nparts = 1;
  p->parts[0].rows_estimate = t->tinfo.rows_estimate;
  t->has_plan = true;
  return 0;
}

/* "dir/.dbpipe-TOKEN-p00003-out.csv.gz" beside "dir/out.csv.gz". */
static char *intermediate_path(const char *final, const char *token, size_t part) {
  const char *slash = strrchr(final, '/');
  size_t dirlen = slash != NULL ? (size_t)(slash - final) + 1 : 0;
  size_t n = strlen(final) + 64;
  char *p = malloc(n);
  if (p == NULL) return NULL;
  snprintf(p, n, "%.*s.dbpipe-%s-p%05zu-%s", (int)dirlen, final, token, part, final + dirlen);
  return p;
}

/* Waits: plans task t (a table task): its parts and their files. */
static int plan_task(dbp__task *t) {
  dbp_run *run = t->run;
  const dbp_job_task *jt = t->info.task;
  dbp_db_kind kind = run->job->conns[jt->conn].kind;
  dbp_dberr err = {0};
  int rc = 0;
  if (t->path == NULL && (t->path = strdup(jt->path)) == NULL) return DBP_ENOMEM;
  t->info.path = t->path;
  if (!t->pattern && t->tinfo.qualified == NULL) {
    bool found = false, connecting = false;
    rc = lookup_table(t, &found, &err, &connecting);
    if (rc == DBP_ENOMEM) return rc;
    if (rc != 0) {
      char what[300];
      snprintf(what, sizeof what, "connection '%s'", t->info.connection);
      fail_db(t, rc, &err, connecting ? what : "cannot look the table up");
      return 0;
    }
    if (found) {
      size_t n = strlen(t->tinfo.schema) + strlen(t->tinfo.name) + 2;
      if ((t->own_table = malloc(n)) == NULL) return DBP_ENOMEM;
      snprintf(t->own_table, n, "%s.%s", t->tinfo.schema, t->tinfo.name);
      t->info.table = t->own_table;
    }
    if (!found) {
      /* Splitting and filtering need the table's entry; a plain export
       * runs by name and the server says what is wrong. */
      if (wants_split(jt) || jt->where != NULL) {
        fail_task(t, DBP_ENOENT, "table '%s' not found on connection '%s'", jt->table,
                  t->info.connection);
      }
      return 0; /* unsplit: exported by name, the server tells what is wrong */
    }
  }
  if (wants_split(jt)) {
    dbp_conn *c = NULL;
    rc = dbp__source_acquire(run, jt->conn, plan_timeout(jt), &c, &err);
    bool connecting = rc != 0;
    if (rc == 0) {
      dbp_split_options so = {.column = jt->partition_by,
                              .partitions = jt->partitions,
                              .chunk_rows = jt->chunk_rows,
                              .where = jt->where};
      rc = dbp_plan_split(c, &t->tinfo, &so, plan_timeout(jt), &t->plan, &err);
      dbp__source_release(run, jt->conn, c, rc != 0);
      t->has_plan = rc == 0;
    }
    if (rc == DBP_ENOMEM) return rc;
    if (rc != 0) {
      char what[300];
      if (connecting) {
        snprintf(what, sizeof what, "connection '%s'", t->info.connection);
      } else {
        snprintf(what, sizeof what, "cannot plan the parts of %s", t->tinfo.qualified);
      }
      fail_db(t, rc, &err, what);
      return 0;
    }
  } else {
    rc = one_part_plan(t, kind);
    if (rc != 0) return rc;
  }
  t->info.plan = &t->plan;
  t->info.rows_estimate = t->plan.rows_counted >= 0 ? t->plan.rows_counted : t->plan.rows_estimate;
  t->per_part_files = strstr(t->path, "{part}") != NULL;
  size_t n = t->plan.nparts;
  t->info.nparts = n;
  if (n == 1 && !t->per_part_files) return 0; /* one export, straight to the file */
  t->parts = calloc(n, sizeof *t->parts);
  if (t->parts == NULL) return DBP_ENOMEM;
  t->nparts = n;
  /* The writer's own unpredictable token names the intermediate files. */
  int e = dbp__new_token(t->token);
  if (e != 0) return dbp_err_from_errno(-e);
  for (size_t k = 0; k < n; k++) {
    dbp__part *p = &t->parts[k];
    p->index = k;
    p->path = t->per_part_files ? dbp__fill_path(t->path, NULL, NULL, k + 1)
                                : intermediate_path(t->path, t->token, k + 1);
    if (p->path == NULL) return DBP_ENOMEM;
  }
  return 0;
}

/* Two tasks writing one file would leave one table's rows: refuse the
 * later ones. */
static void refuse_same_paths(dbp_run *run) {
  for (size_t i = 0; i < run->ntasks; i++) {
    dbp__task *a = &run->tasks[i];
    if (a->path == NULL || a->info.state == DBP_TASK_FAILED) continue;
    for (size_t j = 0; j < i; j++) {
      dbp__task *b = &run->tasks[j];
      if (b->path == NULL || b->info.state == DBP_TASK_FAILED) continue;
      if (strcmp(a->path, b->path) != 0) continue;
      fail_task(a, DBP_EINVAL,
                "writes the same file as task '%s' (%s): put {schema} and {table} in the output "
                "path",
                b->info.name, a->path);
      break;
    }
  }
}

int dbp__tables_plan(dbp_run *run) {
  dbp__task *nt = NULL;
  size_t nn = 0;
  int rc = 0;
  /* Expand the patterns first, in job order. */
  for (size_t i = 0; i < run->ntasks; i++) {
    dbp__task *t = &run->tasks[i];
    if (rc == 0 && t->pattern && !run->cancelled && t->info.state == DBP_TASK_QUEUED) {
      rc = expand(run, t, &nt, &nn);
      continue;
    }
    dbp__task *g = realloc(nt, (nn + 1) * sizeof *g);
    if (g == NULL) {
      rc = DBP_ENOMEM;
      dbp__task_clear(t);
      continue;
    }
    nt = g;
    nt[nn++] = *t;
  }
  free(run->tasks);
  run->tasks = nt;
  run->ntasks = nn;
  if (rc != 0) return rc;
  for (size_t i = 0; i < run->ntasks && !run->cancelled; i++) {
    dbp__task *t = &run->tasks[i];
    if (!t->is_table || t->info.state != DBP_TASK_QUEUED) continue;
    rc = plan_task(t);
    if (rc != 0) return rc;
  }
  refuse_same_paths(run);
  return 0;
}

void dbp__task_clear(dbp__task *t) {
  free(t->own_name);
  free(t->own_table);
  free(t->path);
  if (t->has_plan) dbp_plan_table_free(&t->plan);
  for (size_t k = 0; k < t->nparts; k++) {
    dbp_export_result_free(&t->parts[k].result);
    free(t->parts[k].path);
  }
  free(t->parts);
  dbp_export_result_free(&t->info.result);
  memset(t, 0, sizeof *t);
}
