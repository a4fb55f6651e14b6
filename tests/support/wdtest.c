/* See wdtest.h. */
#include "wdtest.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "exporttest.h"

/* ---- SQL on the servers ---- */

typedef struct wd_conn {
  PGconn *pg;
  MYSQL *my;
} wd_conn;

static wd_conn g_main[3]; /* by kind */

static bool is_pg_dsn(const char *dsn) {
  return strncmp(dsn, "postgres", 8) == 0;
}

/* Opens a blocking connection to `dsn`; NULL with the reason in err. */
static bool conn_open(const char *dsn, wd_conn *c, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  if (is_pg_dsn(dsn)) {
    c->pg = PQconnectdb(dsn);
    if (PQstatus(c->pg) != CONNECTION_OK) {
      snprintf(err, errlen, "connect: %s", PQerrorMessage(c->pg));
      PQfinish(c->pg);
      c->pg = NULL;
      return false;
    }
    PQclear(PQexec(c->pg, "SET client_min_messages = warning"));
    return true;
  }
  dbp_dsn d;
  char ebuf[256];
  if (dbp_dsn_parse(dsn, &d, ebuf, sizeof ebuf) != 0) {
    snprintf(err, errlen, "bad DSN: %s", ebuf);
    return false;
  }
  c->my = mysql_init(NULL);
  mysql_options(c->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  bool ok = mysql_real_connect(c->my, d.host, d.user, d.password,
                               d.dbname != NULL && *d.dbname ? d.dbname : NULL, (unsigned)d.port,
                               NULL, 0) != NULL;
  dbp_dsn_free(&d);
  if (!ok) {
    snprintf(err, errlen, "connect: %s", mysql_error(c->my));
    mysql_close(c->my);
    c->my = NULL;
  }
  return ok;
}

static void conn_close(wd_conn *c) {
  if (c->pg != NULL) PQfinish(c->pg);
  if (c->my != NULL) mysql_close(c->my);
  memset(c, 0, sizeof *c);
}

/* Runs sql; with `value` also returns the first value (malloc'd). */
static int conn_run(wd_conn *c, const char *sql, char **value, char *err, size_t errlen) {
  if (value != NULL) *value = NULL;
  if (c->pg != NULL) {
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      snprintf(err, errlen, "%s", PQresultErrorMessage(r));
      PQclear(r);
      return -1;
    }
    if (value != NULL) {
      bool has = st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0;
      *value = strdup(has ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    return 0;
  }
  if (mysql_query(c->my, sql) != 0) {
    snprintf(err, errlen, "%s", mysql_error(c->my));
    return -1;
  }
  MYSQL_RES *res = mysql_store_result(c->my);
  if (value != NULL) {
    MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
    *value = strdup(row != NULL && row[0] != NULL ? row[0] : "");
  }
  if (res != NULL) mysql_free_result(res);
  return 0;
}

static wd_conn *main_conn(int kind) {
  cr_assert(kind == DBT_PG || kind == DBT_MY, "kind %d", kind);
  wd_conn *c = &g_main[kind];
  if (c->pg == NULL && c->my == NULL) {
    char err[512];
    cr_assert(conn_open(dbt_dsn(kind), c, err, sizeof err), "%s", err);
  }
  return c;
}

static char *vfmt(const char *fmt, va_list ap) {
  char *s = NULL;
  cr_assert_geq(vasprintf(&s, fmt, ap), 0);
  return s;
}

void wd_exec(int kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  char err[1024];
  int rc = conn_run(main_conn(kind), sql, NULL, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", sql, err);
  free(sql);
}

int wd_try_exec(int kind, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  int rc = conn_run(main_conn(kind), sql, NULL, err, errlen);
  free(sql);
  return rc;
}

char *wd_value(int kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *sql = vfmt(fmt, ap);
  va_end(ap);
  char err[1024], *v = NULL;
  int rc = conn_run(main_conn(kind), sql, &v, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", sql, err);
  free(sql);
  return v;
}

int wd_exec_dsn(const char *dsn, char *err, size_t errlen, const char *sql) {
  wd_conn c;
  if (!conn_open(dsn, &c, err, errlen)) return -1;
  int rc = conn_run(&c, sql, NULL, err, errlen);
  conn_close(&c);
  return rc;
}

char *wd_value_dsn(const char *dsn, const char *sql) {
  wd_conn c;
  char err[1024], *v = NULL;
  cr_assert(conn_open(dsn, &c, err, sizeof err), "%s", err);
  int rc = conn_run(&c, sql, &v, err, sizeof err);
  conn_close(&c);
  cr_assert_eq(rc, 0, "%s: %s", sql, err);
  return v;
}

void wd_disconnect(void) {
  for (int k = 0; k < 3; k++) conn_close(&g_main[k]);
}

/* ---- schemas of the test's own ---- */

#define WD_MAX_SCHEMAS 32

static struct {
  int kind;
  char name[64];
} g_schemas[WD_MAX_SCHEMAS];
static size_t g_nschemas;

static void drop_schema(int kind, const char *name, bool must) {
  char err[1024];
  int rc = kind == DBT_PG
               ? wd_try_exec(kind, err, sizeof err, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", name)
               : wd_try_exec(kind, err, sizeof err, "DROP DATABASE IF EXISTS `%s`", name);
  if (must) cr_assert_eq(rc, 0, "dropping %s: %s", name, err);
}

const char *wd_schema(int kind, const char *tag) {
  cr_assert_lt(g_nschemas, WD_MAX_SCHEMAS);
  char *name = g_schemas[g_nschemas].name;
  snprintf(name, sizeof g_schemas[0].name, "dbpwd_%ld_%s", (long)getpid(), tag);
  g_schemas[g_nschemas].kind = kind;
  g_nschemas++;
  drop_schema(kind, name, true);
  if (kind == DBT_PG) {
    wd_exec(kind, "CREATE SCHEMA \"%s\"", name);
  } else {
    wd_exec(kind, "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", name);
  }
  return name;
}

void wd_drop_schemas(void) {
  for (size_t i = 0; i < g_nschemas; i++) drop_schema(g_schemas[i].kind, g_schemas[i].name, false);
  g_nschemas = 0;
}

void wd_quote(int kind, const char *ident, char *out, size_t len) {
  char q = kind == DBT_PG ? '"' : '`';
  size_t o = 0;
  cr_assert_gt(len, 2);
  out[o++] = q;
  for (const char *p = ident; *p; p++) {
    cr_assert_lt(o + 3, len, "identifier too long: %s", ident);
    if (*p == q) out[o++] = q;
    out[o++] = *p;
  }
  out[o++] = q;
  out[o] = '\0';
}

/* ---- running dbpipe ---- */

int wd_cli_v(proc *p, const char *cwd, const char *const *argv) {
  return run_cli(p, cwd, argv);
}

int wd_cli(proc *p, const char *cwd, ...) {
  const char *argv[64];
  size_t n = 0;
  va_list ap;
  va_start(ap, cwd);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL) {
    cr_assert_lt(n, 63);
    argv[n++] = a;
  }
  va_end(ap);
  argv[n] = NULL;
  return run_cli(p, cwd, argv);
}

/* ---- files and lines ---- */

void wd_list_add(wd_list *l, const char *s, size_t n) {
  l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
  cr_assert_not_null(l->v);
  l->v[l->n] = memdup0(s, n);
  l->n++;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void wd_list_sort(wd_list *l) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

void wd_list_free(wd_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static void files_walk(const char *dir, wd_list *out) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(sub, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      files_walk(sub, out);
    } else if (S_ISREG(st.st_mode)) {
      wd_list_add(out, sub, strlen(sub));
    } else {
      char odd[4100];
      snprintf(odd, sizeof odd, "?%s", sub);
      wd_list_add(out, odd, strlen(odd));
    }
  }
  closedir(d);
}

void wd_files(const char *dir, wd_list *out) {
  memset(out, 0, sizeof *out);
  files_walk(dir, out);
  wd_list_sort(out);
}

/* The file's bytes; a .gz file may hold several gzip members one after
 * the other (parts compressed on their own, then concatenated), which
 * gzip -d reads as one stream: so do we. */
static char *read_any(const char *path, size_t *len) {
  if (!ends_with(path, ".gz")) return read_output(path, len);
  size_t n;
  char *raw = read_raw(path, &n);
  tstr out = {0};
  ts_add(&out, "", 0);
  z_stream z = {0};
  cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (Bytef *)raw;
  z.avail_in = (uInt)n;
  char buf[65536];
  while (z.avail_in > 0) {
    z.next_out = (Bytef *)buf;
    z.avail_out = sizeof buf;
    int r = inflate(&z, Z_NO_FLUSH);
    cr_assert(r == Z_OK || r == Z_STREAM_END, "%s: inflate %d", path, r);
    ts_add(&out, buf, sizeof buf - z.avail_out);
    if (r == Z_STREAM_END && z.avail_in > 0) cr_assert_eq(inflateReset(&z), Z_OK);
    if (r == Z_OK && z.avail_in == 0 && z.avail_out != 0) cr_assert_fail("%s: truncated", path);
  }
  inflateEnd(&z);
  free(raw);
  *len = out.n;
  return out.p;
}

bool wd_csv_lines(const char *path, char **header, wd_list *lines) {
  *header = NULL;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  size_t n;
  char *data = read_any(path, &n);
  size_t at = 0;
  bool first = true;
  while (at < n) {
    const char *nl = memchr(data + at, '\n', n - at);
    size_t len = nl != NULL ? (size_t)(nl - (data + at)) : n - at;
    if (first) {
      *header = memdup0(data + at, len);
      first = false;
    } else {
      wd_list_add(lines, data + at, len);
    }
    at += len + 1;
  }
  free(data);
  return true;
}

bool wd_same_lines(wd_list *got, wd_list *want, const char *what) {
  wd_list_sort(got);
  wd_list_sort(want);
  size_t i = 0, j = 0, shown = 0;
  bool same = true;
  while (i < got->n || j < want->n) {
    int c = i == got->n ? 1 : j == want->n ? -1 : strcmp(got->v[i], want->v[j]);
    if (c == 0) {
      i++;
      j++;
      continue;
    }
    same = false;
    if (shown++ < 8) {
      cr_log_error("%s: %s: %s", what, c < 0 ? "extra (or twice)" : "missing",
                   c < 0 ? got->v[i] : want->v[j]);
    }
    if (c < 0) {
      i++;
    } else {
      j++;
    }
  }
  if (!same) cr_log_error("%s: %zu lines, want %zu", what, got->n, want->n);
  return same;
}

long long wd_sum_field(const wd_list *lines, size_t col) {
  long long sum = 0;
  for (size_t i = 0; i < lines->n; i++) {
    const char *p = lines->v[i];
    for (size_t c = 0; c < col && p != NULL; c++) {
      p = strchr(p, ',');
      if (p != NULL) p++;
    }
    cr_assert_not_null(p, "no field %zu in: %s", col, lines->v[i]);
    sum += strtoll(p, NULL, 10);
  }
  return sum;
}

void wd_sha256(const char *path, char out[65]) {
  /* sha256sum run without a shell: any character may be in the name. */
  int fd[2];
  out[0] = '\0';
  cr_assert_eq(pipe(fd), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execlp("sha256sum", "sha256sum", "--", path, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  char buf[256];
  size_t n = 0;
  ssize_t got;
  while (n < sizeof buf - 1 && (got = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)got;
  close(fd[0]);
  waitpid(pid, NULL, 0);
  buf[n] = '\0';
  if (n >= 64 && strspn(buf, "0123456789abcdef") >= 64) {
    memcpy(out, buf, 64);
    out[64] = '\0';
  }
}

/* ---- manifests ---- */

void wd_manifest(const char *path, jv *m, char **text) {
  *text = read_file(path);
  cr_assert_not_null(*text, "no manifest at %s", path);
  cr_assert(j_parse(*text, m), "the manifest is not JSON:\n%s", *text);
}

jv *wd_task_of_table(jv *m, const char *schema, const char *name) {
  jv *tasks = j_get(m, "tasks");
  cr_assert(tasks != NULL && tasks->t == J_ARR, "manifest without tasks");
  char want[512];
  snprintf(want, sizeof want, "%s.%s", schema, name);
  for (size_t i = 0; i < tasks->n; i++) {
    const char *t = j_str(&tasks->items[i], "table");
    if (t != NULL && strcmp(t, want) == 0) return &tasks->items[i];
  }
  return NULL;
}

void wd_check_task_files(jv *task) {
  const char *name = j_str(task, "name");
  jv *files = j_get(task, "files");
  cr_assert(files != NULL && files->t == J_ARR, "task %s: no files", name);
  uint64_t rows = 0, bytes = 0;
  for (size_t f = 0; f < files->n; f++) {
    jv *file = &files->items[f];
    const char *fp = j_str(file, "path");
    cr_assert_not_null(fp, "task %s: a file without a path", name);
    struct stat st;
    cr_assert_eq(stat(fp, &st), 0, "task %s: missing %s", name, fp);
    cr_expect_eq((uint64_t)st.st_size, (uint64_t)j_num(file, "bytes"), "size of %s", fp);
    char sha[65];
    wd_sha256(fp, sha);
    cr_expect_str_eq(j_str(file, "sha256"), sha, "checksum of %s", fp);
    rows += (uint64_t)j_num(file, "rows");
    bytes += (uint64_t)j_num(file, "bytes");
  }
  cr_expect_eq(rows, (uint64_t)j_num(task, "rows"), "task %s: rows of its files", name);
  cr_expect_eq(bytes, (uint64_t)j_num(task, "bytes"), "task %s: bytes of its files", name);
}
