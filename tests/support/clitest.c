/* Helpers for the tests of the dbpipe executable: see clitest.h. */
#include "clitest.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dbpipe.h"
#include "dbtest.h"

/* ---- small utilities ---- */

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *cli_bin(void) {
  const char *bin = getenv("DBPIPE_BIN");
  cr_assert(bin != NULL && *bin, "DBPIPE_BIN is not set (run the tests through ctest)");
  return bin;
}

/* A fresh directory under /tmp; the caller removes it with rm_rf. */
void make_tmpdir(char *buf, size_t len) {
  snprintf(buf, len, "/tmp/dbpipe-cli-XXXXXX");
  cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

void rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d != NULL) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

bool exists(const char *fmt, ...) {
  char path[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(path, sizeof path, fmt, ap);
  va_end(ap);
  struct stat st;
  return stat(path, &st) == 0;
}

/* Counts the entries of a directory tree whose name ends in `suffix`. */
int count_suffix(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *e;
  size_t ls = strlen(suffix);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) n += count_suffix(sub, suffix);
    size_t l = strlen(e->d_name);
    if (l >= ls && strcmp(e->d_name + l - ls, suffix) == 0) n++;
  }
  closedir(d);
  return n;
}

void write_file(const char *path, const char *fmt, ...) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

/* The whole file as a string (malloc'd), NULL if it cannot be read. */
char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 2) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

/* The SHA-256 of a file, through sha256sum. */
void sha256_file(const char *path, char out[65]) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  out[0] = '\0';
  if (fscanf(p, "%64s", out) != 1) out[0] = '\0';
  pclose(p);
}

/* Sets DBPIPE_PG_DSN and DBPIPE_MY_DSN for the child processes (the DSNs may
 * come from the fixture's env file rather than the environment). */
void export_dsns(void) {
  setenv("DBPIPE_PG_DSN", dbt_pg_dsn(), 1);
  setenv("DBPIPE_MY_DSN", dbt_my_dsn(), 1);
}

/* ---- running the binary ---- */

void buf_add(char **buf, size_t *len, const char *p, size_t n) {
  *buf = realloc(*buf, *len + n + 1);
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* Starts `dbpipe argv...` in directory `cwd` (NULL = here). With `pty` its
 * stdout and stderr are a pseudo-terminal of 120x40 characters. */
void proc_start(proc *p, const char *cwd, bool pty, const char *const *argv) {
  memset(p, 0, sizeof *p);
  p->status = -1;
  p->pty = pty;
  p->out = calloc(1, 1);
  p->err = calloc(1, 1);
  size_t argc = 0;
  while (argv[argc] != NULL) argc++;
  char **args = calloc(argc + 2, sizeof *args);
  args[0] = (char *)cli_bin();
  for (size_t i = 0; i < argc; i++) args[i + 1] = (char *)argv[i];

  if (pty) {
    int master;
    struct winsize ws = {.ws_row = 40, .ws_col = 120};
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    cr_assert_neq(pid, -1, "forkpty: %s", strerror(errno));
    if (pid == 0) {
      if (cwd != NULL && chdir(cwd) != 0) _exit(126);
      execv(args[0], args);
      _exit(127);
    }
    p->pid = pid;
    p->out_fd = master;
    p->err_fd = -1;
  } else {
    int out[2], err[2];
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      if (cwd != NULL && chdir(cwd) != 0) _exit(126);
      execv(args[0], args);
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = err[0];
  }
  free(args);
}

/* Reads whatever arrives within timeout_ms. Returns false once both streams
 * are at EOF. */
bool proc_pump(proc *p, int timeout_ms) {
  struct pollfd fds[2];
  int n = 0;
  if (p->out_fd >= 0) fds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
  if (p->err_fd >= 0) fds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
  if (n == 0) return false;
  int r = poll(fds, (nfds_t)n, timeout_ms);
  if (r <= 0) return true;
  for (int i = 0; i < n; i++) {
    if (fds[i].revents == 0) continue;
    char buf[8192];
    ssize_t got = read(fds[i].fd, buf, sizeof buf);
    if (got > 0) {
      if (fds[i].fd == p->out_fd) {
        buf_add(&p->out, &p->out_len, buf, (size_t)got);
      } else {
        buf_add(&p->err, &p->err_len, buf, (size_t)got);
      }
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      /* EOF (a pty master reports EIO once the child is gone). */
      close(fds[i].fd);
      if (fds[i].fd == p->out_fd) {
        p->out_fd = -1;
      } else {
        p->err_fd = -1;
      }
    }
  }
  return p->out_fd >= 0 || p->err_fd >= 0;
}

/* Waits up to timeout_ms for the process to end, collecting its output.
 * Returns its exit code (128+N for a signal), or -1 after killing it on
 * timeout. */
int proc_wait(proc *p, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  while (now_ms() < deadline) {
    int left = (int)(deadline - now_ms());
    bool open = proc_pump(p, left < 100 ? left : 100);
    int st;
    pid_t w = waitpid(p->pid, &st, WNOHANG);
    if (w == p->pid) {
      p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      /* Drain what is left in the pipes. */
      while (proc_pump(p, 200)) {
      }
      /* Under the sanitizers a report must fail the test even when the
       * exit code is the one expected (1 for a failed task, say). */
      cr_expect_null(strstr(p->err, "Sanitizer"), "sanitizer report:\n%s", p->err);
      cr_expect_null(strstr(p->err, "runtime error:"), "sanitizer report:\n%s", p->err);
      cr_expect_null(strstr(p->out, "Sanitizer"), "sanitizer report:\n%s", p->out);
      return p->status;
    }
    (void)open;
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  while (proc_pump(p, 100)) {
  }
  return -1;
}

void proc_free(proc *p) {
  if (p->out_fd >= 0) close(p->out_fd);
  if (p->err_fd >= 0) close(p->err_fd);
  free(p->out);
  free(p->err);
}

/* Runs dbpipe to the end (at most 60 s) and returns its exit code. */
int run_cli(proc *p, const char *cwd, const char *const *argv) {
  proc_start(p, cwd, false, argv);
  int code = proc_wait(p, 60000);
  cr_log_info("dbpipe exited %d\n--- stdout:\n%s--- stderr:\n%s", code, p->out, p->err);
  return code;
}

/* ---- a small JSON reader ---- */

const char *j_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

const char *j_string(const char *p, char **out) {
  if (*p != '"') return NULL;
  p++;
  char *buf = NULL;
  size_t len = 0;
  buf_add(&buf, &len, "", 0);
  while (*p != '"') {
    if ((unsigned char)*p < 0x20) {
      free(buf);
      return NULL;
    }
    if (*p == '\\') {
      p++;
      char c;
      switch (*p) {
        case '"':
          c = '"';
          break;
        case '\\':
          c = '\\';
          break;
        case '/':
          c = '/';
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case 'n':
          c = '\n';
          break;
        case 'r':
          c = '\r';
          break;
        case 't':
          c = '\t';
          break;
        case 'u': {
          unsigned v = 0;
          for (int i = 1; i <= 4; i++) {
            char h = p[i];
            if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) {
              free(buf);
              return NULL;
            }
            v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          p += 4;
          c = v < 0x80 ? (char)v : '?'; /* enough for these tests */
          break;
        }
        default:
          free(buf);
          return NULL;
      }
      buf_add(&buf, &len, &c, 1);
      p++;
    } else {
      buf_add(&buf, &len, p, 1);
      p++;
    }
  }
  *out = buf;
  return p + 1;
}

const char *j_value(const char *p, jv *out) {
  memset(out, 0, sizeof *out);
  p = j_ws(p);
  if (*p == '{' || *p == '[') {
    bool obj = *p == '{';
    char close = obj ? '}' : ']';
    out->t = obj ? J_OBJ : J_ARR;
    p = j_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      char *key = NULL;
      if (obj) {
        p = j_string(j_ws(p), &key);
        if (p == NULL) return NULL;
        p = j_ws(p);
        if (*p++ != ':') {
          free(key);
          return NULL;
        }
      }
      out->items = realloc(out->items, (out->n + 1) * sizeof *out->items);
      out->keys = realloc(out->keys, (out->n + 1) * sizeof *out->keys);
      out->keys[out->n] = key;
      p = j_value(p, &out->items[out->n]);
      out->n++;
      if (p == NULL) return NULL;
      p = j_ws(p);
      if (*p == ',') {
        p++;
        continue;
      }
      if (*p == close) return p + 1;
      return NULL;
    }
  }
  if (*p == '"') {
    out->t = J_STR;
    return j_string(p, &out->s);
  }
  if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
    out->t = J_BOOL;
    out->b = *p == 't';
    return p + (out->b ? 4 : 5);
  }
  if (strncmp(p, "null", 4) == 0) {
    out->t = J_NULL;
    return p + 4;
  }
  char *end;
  out->t = J_NUM;
  out->num = strtod(p, &end);
  if (end == p || *p == '+' || *p == '.') return NULL;
  return end;
}

void j_free(jv *v) {
  free(v->s);
  for (size_t i = 0; i < v->n; i++) {
    j_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
}

/* Parses a whole JSON document; false if it is not valid JSON. */
bool j_parse(const char *text, jv *out) {
  const char *end = j_value(text, out);
  if (end == NULL || *j_ws(end) != '\0') {
    j_free(out);
    memset(out, 0, sizeof *out);
    return false;
  }
  return true;
}

jv *j_get(jv *obj, const char *key) {
  if (obj == NULL || obj->t != J_OBJ) return NULL;
  for (size_t i = 0; i < obj->n; i++) {
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  }
  return NULL;
}

const char *j_str(jv *obj, const char *key) {
  jv *v = j_get(obj, key);
  return v != NULL && v->t == J_STR ? v->s : NULL;
}

double j_num(jv *obj, const char *key) {
  jv *v = j_get(obj, key);
  cr_assert(v != NULL && v->t == J_NUM, "no number '%s'", key);
  return v->num;
}

/* The task object called `name` in a manifest. */
jv *manifest_task(jv *m, const char *name) {
  jv *tasks = j_get(m, "tasks");
  cr_assert(tasks != NULL && tasks->t == J_ARR, "manifest without tasks");
  for (size_t i = 0; i < tasks->n; i++) {
    const char *n = j_str(&tasks->items[i], "name");
    if (n != NULL && strcmp(n, name) == 0) return &tasks->items[i];
  }
  cr_assert_fail("no task '%s' in the manifest", name);
  return NULL;
}

/* ---- looking at the servers ---- */

/* Number of statements running on PostgreSQL whose text contains `marker`
 * (other than this query). */
int pg_running(const char *marker) {
  PGconn *c = PQconnectdb(dbt_pg_dsn());
  cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
  const char *params[1] = {marker};
  PGresult *r = PQexecParams(c,
                             "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                             "AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
                             1, NULL, params, NULL, NULL, 0);
  cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
  int n = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(c);
  return n;
}

/* The same on MariaDB, from the process list. */
int my_running(const char *marker) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &d, err, sizeof err), 0, "%s", err);
  MYSQL *m = mysql_init(NULL);
  cr_assert_not_null(
      mysql_real_connect(m, d.host, d.user, d.password, d.dbname, (unsigned)d.port, NULL, 0), "%s",
      mysql_error(m));
  dbp_dsn_free(&d);
  char q[512];
  snprintf(q, sizeof q,
           "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
           "AND COMMAND = 'Query' AND INSTR(INFO, '%s') > 0",
           marker);
  cr_assert_eq(mysql_query(m, q), 0, "%s", mysql_error(m));
  MYSQL_RES *res = mysql_store_result(m);
  MYSQL_ROW row = mysql_fetch_row(res);
  int n = atoi(row[0]);
  mysql_free_result(res);
  mysql_close(m);
  return n;
}
