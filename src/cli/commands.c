/* The commands: export (one query from the command line), run and check
 * (job files). Each parses its options, validates everything before any
 * database is touched (exit code 2 on a mistake) and hands over to the
 * runner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dbpipe/job.h"
#include "job/job_internal.h"

/* ---- option parsing: --name VALUE, --name=VALUE, flags, positionals ---- */

typedef struct cli_args {
  int argc;
  char **argv;
  int i;
  bool only_positional; /* after "--" */
  const char *cmd;
  const cli_opt *opts;
} cli_args;

enum { ARG_END = -1, ARG_POSITIONAL = -2, ARG_ERROR = -3 };

/* Returns the index of the next option in a->opts (its value in *val), or
 * ARG_POSITIONAL (*val = the argument), ARG_END, or ARG_ERROR after printing
 * what was wrong. */
static int next_arg(cli_args *a, const char **val) {
  *val = NULL;
  if (++a->i >= a->argc) return ARG_END;
  const char *s = a->argv[a->i];
  if (a->only_positional || s[0] != '-' || s[1] == '\0') {
    *val = s;
    return ARG_POSITIONAL;
  }
  if (strcmp(s, "--") == 0) {
    a->only_positional = true;
    return next_arg(a, val);
  }
  if (strcmp(s, "-h") == 0) s = "--help";
  if (s[1] != '-') {
    char rb[1024];
    cli_errf("dbpipe %s: unknown option '%s' (see dbpipe help %s)", a->cmd,
             cli_safe_arg(s, rb, sizeof rb), a->cmd);
    return ARG_ERROR;
  }
  const char *name = s + 2, *eq = strchr(name, '=');
  size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
  for (int k = 0; a->opts[k].name != NULL; k++) {
    if (strlen(a->opts[k].name) != nlen || strncmp(a->opts[k].name, name, nlen) != 0) continue;
    if (!a->opts[k].arg) {
      if (eq != NULL) {
        fprintf(stderr, "dbpipe %s: --%s takes no value\n", a->cmd, a->opts[k].name);
        return ARG_ERROR;
      }
      return k;
    }
    if (eq != NULL) {
      *val = eq + 1;
    } else if (a->i + 1 < a->argc) {
      *val = a->argv[++a->i];
    } else {
      fprintf(stderr, "dbpipe %s: --%s needs a value (see dbpipe help %s)\n", a->cmd,
              a->opts[k].name, a->cmd);
      return ARG_ERROR;
    }
    return k;
  }
  cli_errf("dbpipe %s: unknown option '--%.*s' (see dbpipe help %s)", a->cmd, (int)nlen, name,
           a->cmd);
  return ARG_ERROR;
}

static int bad_value(const char *cmd, const char *opt, const char *val, const char *expect) {
  char rb[1024];
  cli_errf("dbpipe %s: --%s: expected %s, got '%s'", cmd, opt, expect,
           cli_safe_arg(val, rb, sizeof rb));
  return CLI_USAGE;
}

int cli_parse_log_format(const char *s, cli_log_format *out) {
  if (strcmp(s, "text") == 0) {
    *out = CLI_LOG_TEXT;
  } else if (strcmp(s, "json") == 0) {
    *out = CLI_LOG_JSON;
  } else {
    return DBP_EINVAL;
  }
  return 0;
}

/* The live display only makes sense for a person watching a terminal. */
static bool want_progress(const cli_log *log) {
  return log->format == CLI_LOG_TEXT && !log->quiet && isatty(STDERR_FILENO);
}

/* ---- dbpipe export ---- */

/* The option that gives setting `id`. */
static const char *option_of(dbp_setting_id id) {
  const char *key = dbp_settings(NULL)[id].key;
  for (int k = 0; k < E_COUNT; k++) {
    if (cli_export_opts[k].setting != NULL && strcmp(cli_export_opts[k].setting, key) == 0)
      return cli_export_opts[k].name;
  }
  return key;
}

/* Frames what dbp_task_finish found as the command line's message. */
static void finish_cb(void *ud, const dbp_task_problem *pb) {
  (void)ud;
  const char *opt = option_of(pb->setting);
  switch (pb->code) {
    case DBP_TASK_UNKNOWN_ENDING:
      cli_errf("dbpipe export: --to: %s with --format csv, tsv or jsonl", pb->reason);
      break;
    case DBP_TASK_CONFLICT:
      cli_errf("dbpipe export: --%s %s", opt, pb->reason);
      break;
    case DBP_TASK_BAD_TARGET:
      /* Nothing but a file may stand where the output goes (checked, not
       * created: a directory, a FIFO or /dev/stdout is refused). */
      cli_errf("dbpipe export: --to %s", pb->reason);
      break;
    default:
      cli_errf("dbpipe export: --%s: %s", opt, pb->reason);
      break;
  }
}

/* Exports one query: parses and checks every option (exit code 2 before
 * anything runs), scrubs the password out of the process's arguments and
 * hands one task to the runner. */
int cli_cmd_export(int argc, char **argv) {
  cli_args a = {.argc = argc, .argv = argv, .i = 0, .cmd = "export", .opts = cli_export_opts};
  const char *v[E_COUNT] = {0};
  bool flags[E_COUNT] = {0};
  cli_log log = {.out = stderr};
  dbp_job_task t;
  dbp_task_init(&t);
  char *from = NULL;        /* our copy of the DSN: the argument itself is scrubbed */
  dbp_buf lists[2] = {{0}}; /* --tables, --exclude given more than once, joined */
  int code = CLI_USAGE;
  const char *val;
  int k;
  while ((k = next_arg(&a, &val)) != ARG_END) {
    if (k == ARG_ERROR) goto out;
    if (k == ARG_POSITIONAL) {
      char rb[1024];
      cli_errf("dbpipe export: unexpected argument '%s' (see dbpipe help export)",
               cli_safe_arg(val, rb, sizeof rb));
      goto out;
    }
    if (k == E_HELP) {
      cli_help(stdout, "export");
      code = CLI_OK;
      goto out;
    }
    if ((k == E_TABLES || k == E_EXCLUDE) && v[k] != NULL) {
      /* More patterns: one list, as the setting reads it. */
      dbp_buf *b = &lists[k == E_TABLES ? 0 : 1];
      if (b->data == NULL) dbp_buf_puts(b, v[k]);
      dbp_buf_printf(b, ",%s", val);
      if (b->oom) {
        code = CLI_FAILED;
        goto out;
      }
      v[k] = b->data;
      continue;
    }
    if (cli_export_opts[k].arg && v[k] != NULL) {
      cli_errf("dbpipe export: --%s given twice", cli_export_opts[k].name);
      goto out;
    }
    if (k == E_FROM) {
      /* Like the mariadb client: keep a copy, then overwrite the password
       * in argv so that ps and /proc/PID/cmdline never show it. */
      from = strdup(val);
      if (from == NULL) {
        code = CLI_FAILED;
        goto out;
      }
      dbp_dsn_wipe_password((char *)val);
      val = from;
    }
    v[k] = val;
    flags[k] = true;
  }
  if (v[E_FROM] != NULL && v[E_FROM_ENV] != NULL) {
    cli_errf("dbpipe export: give --from or --from-env, not both");
    goto out;
  }
  if (v[E_FROM_ENV] != NULL) {
    const char *env = getenv(v[E_FROM_ENV]);
    if (*v[E_FROM_ENV] == '\0' || env == NULL || *env == '\0') {
      cli_errf("dbpipe export: --from-env %s: the environment variable %s is %s", v[E_FROM_ENV],
               v[E_FROM_ENV], env == NULL ? "not set" : "empty");
      goto out;
    }
    from = strdup(env);
    if (from == NULL) {
      code = CLI_FAILED;
      goto out;
    }
    v[E_FROM] = from;
  }
  int sources = (v[E_QUERY] != NULL) + (v[E_TABLE] != NULL) + (v[E_TABLES] != NULL);
  if (v[E_FROM] == NULL || v[E_TO] == NULL || sources != 1) {
    cli_errf("dbpipe export: %s",
             v[E_FROM] == NULL ? "--from DSN (or --from-env VAR) is required"
             : v[E_TO] == NULL ? "--to PATH is required"
             : sources > 1     ? "give one of --query, --table and --tables"
                               : "--query SQL, --table NAME or --tables PATTERNS is required");
    cli_errf(
        "usage: dbpipe export --from DSN (--query SQL | --table NAME | --tables PATTERNS) "
        "--to PATH [options]");
    goto out;
  }

  /* Every option that is a task setting goes through the settings parser
   * of job files: one syntax, one set of checks. */
  t.name = strdup(v[E_TABLE] ? v[E_TABLE] : "export");
  if (t.name == NULL) {
    code = CLI_FAILED;
    goto out;
  }
  dbp_job_conn conn = {.name = "db", .pool = 1};
  char why[400];
  for (int i = 0; i < E_COUNT; i++) {
    if (cli_export_opts[i].setting == NULL || !flags[i]) continue;
    const char *value = cli_export_opts[i].flag != NULL ? cli_export_opts[i].flag : v[i];
    int rc = i == E_POOL || i == E_SNAPSHOT
                 ? dbp_job_conn_set(&conn, cli_export_opts[i].setting, value, why, sizeof why)
                 : dbp_task_set(&t, cli_export_opts[i].setting, value, why, sizeof why);
    if (rc == DBP_EINVAL) {
      code = bad_value("export", cli_export_opts[i].name, value, why);
      goto out;
    }
    if (rc != 0) {
      code = CLI_FAILED;
      goto out;
    }
  }
  /* Format and compression against the file name, the settings together,
   * and what is at the path: the same rules as a job file's. */
  if (dbp_task_finish(&t, finish_cb, NULL) != 0) goto out;
  if (v[E_LOG_FORMAT] != NULL && cli_parse_log_format(v[E_LOG_FORMAT], &log.format) != 0) {
    code = bad_value("export", "log-format", v[E_LOG_FORMAT], "text or json");
    goto out;
  }
  if (v[E_MANIFEST] != NULL && (*v[E_MANIFEST] == '\0' || strcmp(v[E_MANIFEST], "-") == 0)) {
    code = bad_value("export", "manifest", v[E_MANIFEST], "a file name");
    goto out;
  }
  if (v[E_MANIFEST] != NULL && strcmp(v[E_MANIFEST], t.path) == 0) {
    cli_errf("dbpipe export: --manifest and --to name the same file");
    goto out;
  }
  log.quiet = flags[E_QUIET];

  /* The DSN last: its error message is the one most worth reading. Every
   * message shows it redacted. */
  const char *opt = v[E_FROM_ENV] != NULL ? "--from-env" : "--from";
  dbp_dsn dsn;
  char ebuf[512] = "", rbuf[1024];
  if (dbp_dsn_parse(v[E_FROM], &dsn, ebuf, sizeof ebuf) != 0) {
    cli_errf("dbpipe export: %s: bad connection string %s: %s", opt,
             dbp_dsn_redact(v[E_FROM], rbuf, sizeof rbuf),
             ebuf[0] ? ebuf : "expected postgresql://... or mysql://...");
    goto out;
  }
  conn.kind = dsn.kind;
  dbp_dsn_free(&dsn);
  ebuf[0] = '\0';
  if (dbp_dsn_check(v[E_FROM], ebuf, sizeof ebuf) != 0) {
    cli_errf("dbpipe export: %s: bad connection string: %s", opt,
             ebuf[0] ? ebuf : dbp_dsn_redact(v[E_FROM], rbuf, sizeof rbuf));
    goto out;
  }
  if (t.query != NULL && dbp_sql_check_single(conn.kind, t.query, ebuf, sizeof ebuf) != 0) {
    cli_errf("dbpipe export: --query: %s", ebuf[0] ? ebuf : "give exactly one statement");
    goto out;
  }
  if (t.where != NULL) {
    int rc = dbp__where_check(conn.kind, t.where, ebuf, sizeof ebuf);
    if (rc == DBP_ENOMEM) {
      code = CLI_FAILED;
      goto out;
    }
    if (rc != 0) {
      cli_errf("dbpipe export: --where: %s", ebuf);
      goto out;
    }
  }
  conn.dsn = (char *)v[E_FROM];
  conn.dsn_redacted = (char *)dbp_dsn_redact(v[E_FROM], rbuf, sizeof rbuf);

  dbp_job job = {.file = NULL,
                 .nconns = 1,
                 .conns = &conn,
                 .ntasks = 1,
                 .tasks = &t,
                 .concurrency = 1,
                 .manifest = (char *)v[E_MANIFEST]};
  /* One query (or table) read whole is one statement: it needs no shared
   * snapshot. Several tables, or a table read in parts side by side, do,
   * and should read in parallel: a pool of as many connections as parts
   * (4 when not known), at most 8, unless --pool says. --snapshot (the
   * connection's) overrides the job's choice either way. */
  bool parallel = t.ntables > 0 || t.partitions > 0 || t.chunk_rows > 0;
  job.snapshot = parallel ? DBP_JOB_SNAPSHOT_ON : DBP_JOB_SNAPSHOT_NONE;
  if (parallel) {
    if (v[E_POOL] == NULL) {
      size_t want = t.partitions > 0 ? t.partitions : 4;
      conn.pool = want < 8 ? want : 8;
    }
    job.concurrency = conn.pool;
  }
  cli_run_options ro = {.log = &log, .progress = want_progress(&log), .command = "export"};
  code = cli_run_job(&job, NULL, &ro);

out:
  if (from != NULL) {
    memset(from, 0, strlen(from));
    free(from);
  }
  dbp_task_clear(&t);
  dbp_buf_free(&lists[0]);
  dbp_buf_free(&lists[1]);
  cli_log_free(&log);
  return code;
}

/* ---- dbpipe run / check ---- */

/* Loads a job file, printing every problem. Returns 0 or CLI_USAGE. */
static int load_job(const char *cmd, const char *path, const cli_log *log, dbp_job **job) {
  dbp_job_diag diag;
  int rc = dbp_job_load(path, NULL, job, &diag);
  if (rc == 0) return 0;
  char buf[2048];
  for (size_t i = 0; i < diag.count; i++) {
    if (log != NULL && log->format == CLI_LOG_JSON) {
      dbp_buf s = {0};
      struct timespec now;
      char ts[40];
      clock_gettime(CLOCK_REALTIME, &now);
      dbp_buf_puts(&s, "{\"ts\":");
      dbp_buf_json(&s, cli_fmt_iso(&now, ts, sizeof ts));
      dbp_buf_puts(&s, ",\"level\":\"error\",\"event\":\"job_invalid\",\"file\":");
      dbp_buf_json(&s, path);
      dbp_buf_printf(&s, ",\"line\":%d,\"column\":%d,\"message\":", diag.errors[i].line,
                     diag.errors[i].column);
      dbp_buf_json(&s, diag.errors[i].message);
      dbp_buf_puts(&s, "}\n");
      if (s.data != NULL) fputs(s.data, stderr);
      dbp_buf_free(&s);
    } else {
      cli_errf("%s", dbp_job_diag_format(&diag, i, buf, sizeof buf));
    }
  }
  if (rc == DBP_EJOB && (log == NULL || log->format == CLI_LOG_TEXT)) {
    cli_errf("dbpipe %s: %zu problem%s in %s; nothing was run", cmd, diag.count,
             diag.count == 1 ? "" : "s", path);
  }
  dbp_job_diag_free(&diag);
  return CLI_USAGE;
}

int cli_cmd_run(int argc, char **argv) {
  cli_args a = {.argc = argc, .argv = argv, .i = 0, .cmd = "run", .opts = cli_run_opts};
  cli_log log = {.out = stderr};
  const char *path = NULL, *val;
  const char **only = calloc((size_t)argc + 1, sizeof *only);
  size_t nonly = 0, concurrency = 0;
  const char *idle = NULL;
  char why[400];
  int k, code = CLI_USAGE;
  dbp_job *job = NULL;
  bool *selected = NULL;
  bool snapshot_given = false;
  dbp_job_snapshot snapshot = DBP_JOB_SNAPSHOT_AUTO;
  if (only == NULL) return CLI_FAILED;
  while ((k = next_arg(&a, &val)) != ARG_END) {
    if (k == ARG_ERROR) goto out;
    if (k == ARG_POSITIONAL) {
      if (path != NULL) {
        char r1[1024], r2[1024];
        cli_errf("dbpipe run: one job file at a time ('%s' and '%s')",
                 cli_safe_arg(path, r1, sizeof r1), cli_safe_arg(val, r2, sizeof r2));
        goto out;
      }
      path = val;
    } else if (k == R_HELP) {
      cli_help(stdout, "run");
      code = CLI_OK;
      goto out;
    } else if (k == R_CONCURRENCY) {
      /* The job file's concurrency: one parser. */
      dbp_job scratch = {0};
      if (dbp_job_set(&scratch, "concurrency", val, why, sizeof why) != 0) {
        code = bad_value("run", "concurrency", val, why);
        goto out;
      }
      concurrency = scratch.concurrency;
    } else if (k == R_ONLY) {
      only[nonly++] = val;
    } else if (k == R_IDLE_TIMEOUT) {
      /* The job file's idle_timeout: one parser, checked before the file
       * is read. */
      dbp_job_task scratch;
      dbp_task_init(&scratch);
      if (dbp_task_set(&scratch, "idle_timeout", val, why, sizeof why) != 0) {
        code = bad_value("run", "idle-timeout", val, why);
        goto out;
      }
      idle = val;
    } else if (k == R_SNAPSHOT) {
      /* The job file's snapshot: one parser, checked before the file is
       * read. */
      dbp_job scratch = {0};
      if (dbp_job_set(&scratch, "snapshot", val, why, sizeof why) != 0) {
        code = bad_value("run", "snapshot", val, why);
        goto out;
      }
      snapshot = scratch.snapshot;
      snapshot_given = true;
    } else if (k == R_QUIET) {
      log.quiet = true;
    } else if (k == R_LOG_FORMAT) {
      if (cli_parse_log_format(val, &log.format) != 0) {
        code = bad_value("run", "log-format", val, "text or json");
        goto out;
      }
    }
  }
  if (path == NULL) {
    fprintf(stderr, "dbpipe run: which job file? usage: dbpipe run JOB.yaml [options]\n");
    goto out;
  }
  if (load_job("run", path, &log, &job) != 0) goto out;
  /* The command line wins over the job file, for every task. */
  for (size_t i = 0; idle != NULL && i < job->ntasks; i++)
    dbp_task_set(&job->tasks[i], "idle_timeout", idle, NULL, 0);
  /* ... and over every connection's own snapshot: setting. */
  if (snapshot_given) {
    job->snapshot = snapshot;
    for (size_t i = 0; i < job->nconns; i++) job->conns[i].snapshot = DBP_JOB_SNAPSHOT_AUTO;
  }

  if (nonly > 0) {
    selected = calloc(job->ntasks, sizeof *selected);
    if (selected == NULL) {
      code = CLI_FAILED;
      goto out;
    }
    bool bad = false;
    for (size_t i = 0; i < nonly; i++) {
      long t = dbp_job_find_task(job, only[i]);
      if (t < 0) {
        dbp_buf names = {0};
        for (size_t j = 0; j < job->ntasks; j++) {
          dbp_buf_printf(&names, "%s%s", j ? ", " : "", job->tasks[j].name);
        }
        cli_errf("dbpipe run: --only %s: %s has no such task (tasks: %s)", only[i], path,
                 dbp_buf_str(&names));
        dbp_buf_free(&names);
        bad = true;
        continue;
      }
      selected[t] = true;
    }
    if (bad) goto out;
  }

  cli_run_options ro = {
      .log = &log, .progress = want_progress(&log), .concurrency = concurrency, .command = "run"};
  code = cli_run_job(job, selected, &ro);

out:
  free(only);
  free(selected);
  dbp_job_free(job);
  cli_log_free(&log);
  return code;
}

/* The word of a snapshot choice; AUTO reads as `dflt`. */
static const char *snapshot_word(dbp_job_snapshot s, dbp_job_snapshot dflt) {
  if (s == DBP_JOB_SNAPSHOT_AUTO) s = dflt;
  return s == DBP_JOB_SNAPSHOT_NONE ? "none" : s == DBP_JOB_SNAPSHOT_LOCK_FREE ? "lock-free" : "on";
}

static void put_list(dbp_buf *b, char *const *items, size_t n) {
  for (size_t i = 0; i < n; i++) dbp_buf_printf(b, "%s%s", i ? ", " : "", items[i]);
}

/* What a task reads, for check: "query", "shop.orders", "tables public.*
 * (exclude public.tmp_*) with views where ... split 4 parts by auto". */
static void describe_source(dbp_buf *b, const dbp_job_task *t) {
  if (t->ntables > 0) {
    dbp_buf_puts(b, "tables ");
    put_list(b, t->tables, t->ntables);
    if (t->nexclude > 0) {
      dbp_buf_puts(b, " (exclude ");
      put_list(b, t->exclude, t->nexclude);
      dbp_buf_puts(b, ")");
    }
    if (t->views) dbp_buf_puts(b, " with views");
  } else {
    dbp_buf_puts(b, t->table != NULL ? t->table : "query");
  }
  if (t->where != NULL) dbp_buf_printf(b, " where %s", t->where);
  const char *by = t->partition_by != NULL ? t->partition_by : "auto";
  if (t->partitions > 0) {
    dbp_buf_printf(b, " split %zu part%s by %s", t->partitions, t->partitions == 1 ? "" : "s", by);
  } else if (t->chunk_rows > 0) {
    dbp_buf_printf(b, " split in chunks of %llu rows by %s", (unsigned long long)t->chunk_rows, by);
  }
}

static const cli_opt check_opts[] = {{.name = "help"}, {.name = NULL}};

int cli_cmd_check(int argc, char **argv) {
  cli_args a = {.argc = argc, .argv = argv, .i = 0, .cmd = "check", .opts = check_opts};
  const char *path = NULL, *val;
  int k;
  while ((k = next_arg(&a, &val)) != ARG_END) {
    if (k == ARG_ERROR) return CLI_USAGE;
    if (k == 0) {
      cli_help(stdout, "check");
      return CLI_OK;
    }
    if (path != NULL) {
      char r1[1024], r2[1024];
      cli_errf("dbpipe check: one job file at a time ('%s' and '%s')",
               cli_safe_arg(path, r1, sizeof r1), cli_safe_arg(val, r2, sizeof r2));
      return CLI_USAGE;
    }
    path = val;
  }
  if (path == NULL) {
    fprintf(stderr, "dbpipe check: which job file? usage: dbpipe check JOB.yaml\n");
    return CLI_USAGE;
  }
  dbp_job *job;
  if (load_job("check", path, NULL, &job) != 0) return CLI_USAGE;
  /* Names, paths and DSNs come from the file: shown, never obeyed. */
  cli_outf("%s: ok: %zu task%s, %zu connection%s, concurrency %zu, snapshot %s", path, job->ntasks,
           job->ntasks == 1 ? "" : "s", job->nconns, job->nconns == 1 ? "" : "s", job->concurrency,
           snapshot_word(job->snapshot, DBP_JOB_SNAPSHOT_ON));
  for (size_t i = 0; i < job->nconns; i++) {
    const dbp_job_conn *c = &job->conns[i];
    if (c->snapshot != DBP_JOB_SNAPSHOT_AUTO) {
      cli_outf("  connection %s: %s (snapshot %s)", c->name, c->dsn_redacted,
               snapshot_word(c->snapshot, DBP_JOB_SNAPSHOT_ON));
    } else {
      cli_outf("  connection %s: %s", c->name, c->dsn_redacted);
    }
  }
  for (size_t i = 0; i < job->ntasks; i++) {
    const dbp_job_task *t = &job->tasks[i];
    dbp_buf what = {0};
    describe_source(&what, t);
    cli_outf(
        "  task %s: %s %s -> %s (%s%s%s)", t->name, job->conns[t->conn].name, dbp_buf_str(&what),
        t->path, dbp_format_name(t->export.format),
        t->export.compression != DBP_COMP_NONE ? ", " : "",
        t->export.compression != DBP_COMP_NONE ? dbp_compression_name(t->export.compression) : "");
    dbp_buf_free(&what);
  }
  cli_outf("  manifest: %s", job->manifest ? job->manifest : "none");
  dbp_job_free(job);
  return CLI_OK;
}
