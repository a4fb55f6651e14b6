/* manifest.json: what a run did, written atomically even when it failed. */
#include <stdio.h>
#include <stdlib.h>
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

static const char *kind_name(dbp_db_kind k) {
  return k == DBP_DB_PG ? "postgresql" : "mysql";
}

/* Per database: the snapshot everything was read in, so that a change-data
 * capture can start where the export ends. */
static void render_databases(dbp_buf *j, const dbp_run *run) {
  dbp_buf_puts(j, ",\n  \"databases\": [");
  size_t n = 0;
  for (size_t i = 0; i < run->job->nconns; i++) {
    const dbp__db *db = &run->dbs[i];
    if (!db->used) continue;
    dbp_buf_puts(j, n++ ? ",\n    {\"connection\": " : "\n    {\"connection\": ");
    dbp_buf_json(j, run->job->conns[i].name);
    dbp_buf_puts(j, ", \"kind\": ");
    dbp_buf_json(j, kind_name(run->job->conns[i].kind));
    dbp_buf_puts(j, ", \"snapshot\": ");
    if (!db->snapshot || db->snap_rc != 0 || db->nworkers_joined == 0) {
      dbp_buf_puts(j, "null}");
      continue;
    }
    dbp_buf_puts(j, "{\"mode\": ");
    dbp_buf_json(j, db->mode == DBP_SNAPSHOT_LOCK_FREE ? "lock-free" : "shared");
    dbp_buf_puts(j, ", \"id\": ");
    dbp_buf_json(j, db->snap_id[0] ? db->snap_id : NULL);
    dbp_buf_puts(j, ", \"position\": ");
    dbp_buf_json(j, db->position[0] ? db->position : NULL);
    dbp_buf_puts(j, ", \"binlog_file\": ");
    dbp_buf_json(j, db->binlog_file[0] ? db->binlog_file : NULL);
    dbp_buf_printf(j,
                   ", \"binlog_pos\": %llu, \"on_standby\": %s, \"lock_ms\": %.3f, "
                   "\"workers\": %zu}}",
                   (unsigned long long)db->binlog_pos, db->on_standby ? "true" : "false",
                   (double)db->lock_us / 1000.0, db->nworkers_joined);
  }
  dbp_buf_puts(j, n ? "\n  ]" : "]");
}

/* Per database: the plan of its table tasks, as dbp_plan_from_json reads it. */
static void render_plans(dbp_buf *j, const dbp_run *run) {
  dbp_buf_puts(j, ",\n  \"plans\": [");
  size_t n = 0;
  dbp_plan_table *tabs = calloc(run->ntasks ? run->ntasks : 1, sizeof *tabs);
  for (size_t i = 0; tabs != NULL && i < run->job->nconns; i++) {
    dbp_plan p = {.connection = run->job->conns[i].name, .kind = run->job->conns[i].kind};
    for (size_t k = 0; k < run->ntasks; k++) {
      const dbp__task *t = &run->tasks[k];
      if (t->has_plan && t->info.task->conn == i) tabs[p.ntables++] = t->plan;
    }
    if (p.ntables == 0) continue;
    p.tables = tabs;
    dbp_buf_puts(j, n++ ? ",\n    " : "\n    ");
    dbp_plan_to_json(&p, j);
  }
  free(tabs);
  dbp_buf_puts(j, n ? "\n  ]" : "]");
}

/* A split task's parts: range, rows, bytes and (one file each) sha256. */
static void render_parts(dbp_buf *j, const dbp__task *t, bool ok) {
  dbp_buf_puts(j, ",\n      \"parts\": [");
  for (size_t k = 0; k < t->nparts; k++) {
    const dbp__part *p = &t->parts[k];
    char *range = dbp_plan_part_describe(&t->plan, k);
    dbp_buf_printf(j, "%s{\"part\": %zu, \"range\": ", k ? ",\n        " : "\n        ", k + 1);
    dbp_buf_json(j, range);
    free(range);
    bool done = ok && p->state == DBP_TASK_DONE;
    dbp_buf_printf(j, ", \"rows\": %llu, \"bytes\": %llu, \"sha256\": ",
                   (unsigned long long)(done ? p->result.rows : 0),
                   (unsigned long long)(done ? p->result.bytes : 0));
    dbp_buf_json(j, done && p->result.nfiles == 1 ? p->result.files[0].sha256 : NULL);
    dbp_buf_puts(j, "}");
  }
  dbp_buf_puts(j, t->nparts ? "\n      ]" : "]");
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
  render_databases(j, run);
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
    dbp_buf_puts(j, ",\n      \"table\": ");
    dbp_buf_json(j, t->table);
    if (t->rows_estimate >= 0) {
      dbp_buf_printf(j, ",\n      \"rows_estimate\": %lld", (long long)t->rows_estimate);
    } else {
      dbp_buf_puts(j, ",\n      \"rows_estimate\": null");
    }
    if (run->tasks[i].nparts > 0) render_parts(j, &run->tasks[i], ok);
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
  dbp_buf_puts(j, run->ntasks ? "\n  ]" : "]");
  render_plans(j, run);
  dbp_buf_puts(j, "\n}\n");
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
