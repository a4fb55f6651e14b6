/* manifest.json: what a run did, written atomically even when it failed. */
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"

const char *dbp__manifest_task_status(dbp_task_state s) {
  switch (s) {
    case DBP_TASK_DONE:
      return "ok";
    case DBP_TASK_CANCELLED:
      return "interrupted";
    default:
      return "failed";
  }
}

static void render(dbp_buf *j, const dbp_run *run, const char *status) {
  char ts[40];
  dbp_buf_puts(j, "{\n  \"dbpipe\": ");
  dbp_buf_json(j, dbp_version());
  dbp_buf_puts(j, ",\n  \"job\": ");
  dbp_buf_json(j, run->job->file);
  dbp_buf_puts(j, ",\n  \"started\": ");
  dbp_buf_json(j, dbp_fmt_iso(&run->wall_started, ts, sizeof ts));
  dbp_buf_puts(j, ",\n  \"finished\": ");
  dbp_buf_json(j, dbp_fmt_iso(&run->wall_finished, ts, sizeof ts));
  dbp_buf_puts(j, ",\n  \"status\": ");
  dbp_buf_json(j, status);
  dbp_buf_puts(j, ",\n  \"tasks\": [");
  for (size_t i = 0; i < run->ntasks; i++) {
    const dbp_task_info *t = &run->tasks[i].info;
    bool ok = t->state == DBP_TASK_DONE;
    dbp_buf_puts(j, i ? ",\n    {\n      \"name\": " : "\n    {\n      \"name\": ");
    dbp_buf_json(j, t->name);
    dbp_buf_puts(j, ",\n      \"connection\": ");
    dbp_buf_json(j, t->connection);
    dbp_buf_puts(j, ",\n      \"status\": ");
    dbp_buf_json(j, dbp__manifest_task_status(t->state));
    dbp_buf_puts(j, ",\n      \"error\": ");
    dbp_buf_json(j, ok ? NULL : t->message);
    dbp_buf_printf(j,
                   ",\n      \"attempts\": %d,\n      \"rows\": %llu,\n      \"bytes\": %llu,"
                   "\n      \"duration_ms\": %llu,\n      \"files\": [",
                   t->attempts, (unsigned long long)(ok ? t->result.rows : 0),
                   (unsigned long long)(ok ? t->result.bytes : 0),
                   (unsigned long long)(t->finished_ms - t->started_ms));
    for (size_t f = 0; ok && f < t->result.nfiles; f++) {
      const dbp_export_file *ef = &t->result.files[f];
      dbp_buf_puts(j, f ? ",\n        {\"path\": " : "\n        {\"path\": ");
      dbp_buf_json(j, ef->path);
      dbp_buf_printf(j, ", \"rows\": %llu, \"bytes\": %llu, \"sha256\": ",
                     (unsigned long long)ef->rows, (unsigned long long)ef->bytes);
      dbp_buf_json(j, ef->sha256);
      dbp_buf_puts(j, "}");
    }
    dbp_buf_puts(j, ok && t->result.nfiles ? "\n      ]\n    }" : "]\n    }");
  }
  dbp_buf_puts(j, run->ntasks ? "\n  ]\n}\n" : "]\n}\n");
}

/* Runs in the run's coroutine, once every task has ended, through the
 * writer every export uses (unpredictable temporary name, fsync, rename,
 * directory fsync; a target that is no regular file is refused). */
int dbp__manifest_write(dbp_run *run, const char *status, char *err, size_t errlen) {
  if (errlen > 0) err[0] = '\0';
  dbp_buf j = {0};
  render(&j, run, status);
  if (j.oom || j.data == NULL) {
    dbp_buf_free(&j);
    snprintf(err, errlen, "out of memory");
    return DBP_ENOMEM;
  }
  int rc = dbp_write_file_atomic(run->rt, run->job->manifest, j.data, j.len, run->opts.no_fsync,
                                 err, errlen);
  if (rc != 0 && errlen > 0 && err[0] == '\0') snprintf(err, errlen, "%s", dbp_strerror(rc));
  dbp_buf_free(&j);
  return rc;
}
