/* manifest.json: what a run did, written atomically even when it failed. */
#include <stdio.h>
#include <string.h>

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

/* Runs in a coroutine of the run's runtime, once every task has ended,
 * through the writer every export uses (unpredictable temporary name,
 * fsync, rename, directory fsync; a target that is no regular file is
 * refused). */
int cli_manifest_write(const char *path, const cli_run *run, const char *status, char *err,
                       size_t errlen) {
  if (errlen > 0) err[0] = '\0';
  cli_str j = {0};
  render(&j, run, status);
  if (j.oom || j.p == NULL) {
    cli_str_free(&j);
    snprintf(err, errlen, "out of memory");
    return DBP_ENOMEM;
  }
  int rc = dbp_write_file_atomic(run->rt, path, j.p, j.len, false, err, errlen);
  if (rc != 0 && errlen > 0 && err[0] == '\0') snprintf(err, errlen, "%s", dbp_strerror(rc));
  cli_str_free(&j);
  return rc;
}
