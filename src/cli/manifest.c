/* manifest.json: what a run did, written atomically even when it failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *task_status(cli_task_state s) {
  switch (s) {
    case CLI_T_DONE:
      return "ok";
    case CLI_T_INTERRUPTED:
      return "interrupted";
    default:
      return "failed";
  }
}

/* Creates every missing directory above `path` (like mkdir -p of its
 * dirname). Returns 0 or -1 with errno set. */
static int mkdir_parents(const char *path) {
  char *dir = strdup(path);
  if (dir == NULL) return -1;
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) {
    free(dir);
    return 0;
  }
  *slash = '\0';
  for (char *p = dir + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        free(dir);
        errno = e;
        return -1;
      }
      *p = saved;
      if (saved == '\0') break;
    }
  }
  free(dir);
  return 0;
}

static void render(cli_str *j, const cli_run *run, const char *status) {
  char ts[40];
  cli_str_puts(j, "{\n  \"dbpipe\": ");
  cli_str_json(j, dbp_version());
  cli_str_puts(j, ",\n  \"job\": ");
  cli_str_json(j, run->job->file);
  cli_str_puts(j, ",\n  \"started\": ");
  cli_str_json(j, cli_fmt_iso(&run->started, ts, sizeof ts));
  cli_str_puts(j, ",\n  \"finished\": ");
  cli_str_json(j, cli_fmt_iso(&run->finished, ts, sizeof ts));
  cli_str_puts(j, ",\n  \"status\": ");
  cli_str_json(j, status);
  cli_str_puts(j, ",\n  \"tasks\": [");
  for (size_t i = 0; i < run->ntasks; i++) {
    const cli_task *t = &run->tasks[i];
    bool ok = t->state == CLI_T_DONE;
    cli_str_puts(j, i ? ",\n    {\n      \"name\": " : "\n    {\n      \"name\": ");
    cli_str_json(j, t->jt->name);
    cli_str_puts(j, ",\n      \"connection\": ");
    cli_str_json(j, run->job->conns[t->jt->conn].name);
    cli_str_puts(j, ",\n      \"status\": ");
    cli_str_json(j, task_status(t->state));
    cli_str_puts(j, ",\n      \"error\": ");
    cli_str_json(j, ok ? NULL : t->error);
    cli_str_printf(j,
                   ",\n      \"attempts\": %d,\n      \"rows\": %llu,\n      \"bytes\": %llu,"
                   "\n      \"duration_ms\": %llu,\n      \"files\": [",
                   t->attempts, (unsigned long long)(ok ? t->res.rows : 0),
                   (unsigned long long)(ok ? t->res.bytes : 0),
                   (unsigned long long)(t->finished_ms - t->started_ms));
    for (size_t f = 0; ok && f < t->res.nfiles; f++) {
      const dbp_export_file *ef = &t->res.files[f];
      cli_str_puts(j, f ? ",\n        {\"path\": " : "\n        {\"path\": ");
      cli_str_json(j, ef->path);
      cli_str_printf(j, ", \"rows\": %llu, \"bytes\": %llu, \"sha256\": ",
                     (unsigned long long)ef->rows, (unsigned long long)ef->bytes);
      cli_str_json(j, ef->sha256);
      cli_str_puts(j, "}");
    }
    cli_str_puts(j, ok && t->res.nfiles ? "\n      ]\n    }" : "]\n    }");
  }
  cli_str_puts(j, run->ntasks ? "\n  ]\n}\n" : "]\n}\n");
}

int cli_manifest_write(const char *path, const cli_run *run, const char *status, char *err,
                       size_t errlen) {
  cli_str j = {0};
  render(&j, run, status);
  if (j.oom || j.p == NULL) {
    cli_str_free(&j);
    snprintf(err, errlen, "out of memory");
    return DBP_ENOMEM;
  }
  char *part = NULL;
  int rc = 0, fd = -1;
  if (asprintf(&part, "%s.part", path) < 0) {
    cli_str_free(&j);
    snprintf(err, errlen, "out of memory");
    return DBP_ENOMEM;
  }
  if (mkdir_parents(path) != 0) goto fail;
  fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) goto fail;
  for (size_t off = 0; off < j.len;) {
    ssize_t w = write(fd, j.p + off, j.len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) goto fail;
    off += (size_t)w;
  }
  if (fsync(fd) != 0) goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(part, path) != 0) goto fail;
  goto out;

fail:
  rc = dbp_err_from_errno(-errno);
  snprintf(err, errlen, "%s", strerror(errno));
  if (fd >= 0) close(fd);
  unlink(part);
out:
  free(part);
  cli_str_free(&j);
  return rc;
}
