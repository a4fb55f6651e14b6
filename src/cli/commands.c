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
#include "job/job_internal.h"

/* ---- option parsing: --name VALUE, --name=VALUE, flags, positionals ---- */

typedef struct cli_opt {
  const char *name; /* without the dashes */
  bool arg;         /* takes a value */
} cli_opt;

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
    fprintf(stderr, "dbpipe %s: unknown option '%s' (see dbpipe help %s)\n", a->cmd, s, a->cmd);
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
  fprintf(stderr, "dbpipe %s: unknown option '--%.*s' (see dbpipe help %s)\n", a->cmd, (int)nlen,
          name, a->cmd);
  return ARG_ERROR;
}

static int bad_value(const char *cmd, const char *opt, const char *val, const char *expect) {
  fprintf(stderr, "dbpipe %s: --%s: expected %s, got '%s'\n", cmd, opt, expect, val);
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

enum {
  E_FROM,
  E_QUERY,
  E_TABLE,
  E_TO,
  E_FORMAT,
  E_COMPRESSION,
  E_LEVEL,
  E_NO_HEADER,
  E_DELIMITER,
  E_NULL,
  E_CRLF,
  E_MAX_ROWS,
  E_MAX_BYTES,
  E_TIMEOUT,
  E_RETRIES,
  E_POOL,
  E_MANIFEST,
  E_QUIET,
  E_LOG_FORMAT,
  E_HELP
};

static const cli_opt export_opts[] = {[E_FROM] = {"from", true},
                                      [E_QUERY] = {"query", true},
                                      [E_TABLE] = {"table", true},
                                      [E_TO] = {"to", true},
                                      [E_FORMAT] = {"format", true},
                                      [E_COMPRESSION] = {"compression", true},
                                      [E_LEVEL] = {"level", true},
                                      [E_NO_HEADER] = {"no-header", false},
                                      [E_DELIMITER] = {"delimiter", true},
                                      [E_NULL] = {"null", true},
                                      [E_CRLF] = {"crlf", false},
                                      [E_MAX_ROWS] = {"max-rows", true},
                                      [E_MAX_BYTES] = {"max-bytes", true},
                                      [E_TIMEOUT] = {"timeout", true},
                                      [E_RETRIES] = {"retries", true},
                                      [E_POOL] = {"pool", true},
                                      [E_MANIFEST] = {"manifest", true},
                                      [E_QUIET] = {"quiet", false},
                                      [E_LOG_FORMAT] = {"log-format", true},
                                      [E_HELP] = {"help", false},
                                      {NULL, false}};

int cli_cmd_export(int argc, char **argv) {
  cli_args a = {.argc = argc, .argv = argv, .i = 0, .cmd = "export", .opts = export_opts};
  const char *v[E_HELP + 1] = {0};
  bool flags[E_HELP + 1] = {0};
  cli_log log = {.out = stderr};
  const char *val;
  int k;
  while ((k = next_arg(&a, &val)) != ARG_END) {
    if (k == ARG_ERROR) return CLI_USAGE;
    if (k == ARG_POSITIONAL) {
      fprintf(stderr, "dbpipe export: unexpected argument '%s' (see dbpipe help export)\n", val);
      return CLI_USAGE;
    }
    if (k == E_HELP) {
      cli_help(stdout, "export");
      return CLI_OK;
    }
    if (export_opts[k].arg && v[k] != NULL) {
      fprintf(stderr, "dbpipe export: --%s given twice\n", export_opts[k].name);
      return CLI_USAGE;
    }
    v[k] = val;
    flags[k] = true;
  }
  if (v[E_FROM] == NULL || v[E_TO] == NULL || (v[E_QUERY] == NULL) == (v[E_TABLE] == NULL)) {
    fprintf(stderr, "dbpipe export: %s\n",
            v[E_FROM] == NULL    ? "--from DSN is required"
            : v[E_TO] == NULL    ? "--to PATH is required"
            : v[E_QUERY] != NULL ? "give --query or --table, not both"
                                 : "--query SQL or --table NAME is required");
    fprintf(stderr,
            "usage: dbpipe export --from DSN (--query SQL | --table NAME) --to PATH "
            "[options]\n");
    return CLI_USAGE;
  }

  dbp_job_task t = {.name = (char *)(v[E_TABLE] ? v[E_TABLE] : "export"),
                    .query = (char *)v[E_QUERY],
                    .table = (char *)v[E_TABLE],
                    .path = (char *)v[E_TO],
                    .no_header = flags[E_NO_HEADER],
                    .crlf = flags[E_CRLF],
                    .null_string = (char *)v[E_NULL],
                    .timeout_ms = DBP_JOB_NO_TIMEOUT,
                    .retry_backoff_ms = DBP_JOB_DEFAULT_BACKOFF_MS};
  uint64_t u;
  int64_t i64;
  if (*t.path == '\0') return bad_value("export", "to", "", "a file name");
  if (v[E_QUERY] != NULL && *v[E_QUERY] == '\0')
    return bad_value("export", "query", "", "an SQL query");
  if (v[E_TABLE] != NULL && *v[E_TABLE] == '\0')
    return bad_value("export", "table", "", "a table name");

  dbp_format pf;
  dbp_compression pc;
  dbp_format_detect(t.path, &pf, &pc);
  t.format = pf != DBP_FMT_AUTO ? pf : DBP_FMT_CSV;
  t.compression = pc != DBP_COMP_AUTO ? pc : DBP_COMP_NONE;
  if (v[E_FORMAT] != NULL) {
    dbp_format f;
    if (dbp_format_parse(v[E_FORMAT], &f) != 0 || f == DBP_FMT_AUTO)
      return bad_value("export", "format", v[E_FORMAT], "csv, tsv or jsonl");
    if (pf != DBP_FMT_AUTO && f != pf) {
      fprintf(stderr,
              "dbpipe export: --format %s does not match the file name '%s' (which says %s)\n",
              dbp_format_name(f), t.path, dbp_format_name(pf));
      return CLI_USAGE;
    }
    t.format = f;
  }
  if (v[E_COMPRESSION] != NULL) {
    dbp_compression c;
    if (dbp_compression_parse(v[E_COMPRESSION], &c) != 0 || c == DBP_COMP_AUTO)
      return bad_value("export", "compression", v[E_COMPRESSION], "none, gzip or zstd");
    if (c != t.compression) {
      fprintf(stderr, "dbpipe export: --compression %s does not match the file name '%s' (%s)\n",
              dbp_compression_name(c), t.path,
              c == DBP_COMP_NONE   ? "remove the .gz or .zst ending"
              : c == DBP_COMP_GZIP ? "end it in .gz"
                                   : "end it in .zst");
      return CLI_USAGE;
    }
  }
  if (v[E_LEVEL] != NULL) {
    int64_t max = t.compression == DBP_COMP_GZIP ? 9 : 22;
    if (t.compression == DBP_COMP_NONE) {
      fprintf(stderr, "dbpipe export: --level needs compression (a .gz or .zst file name)\n");
      return CLI_USAGE;
    }
    if (dbp__parse_int(v[E_LEVEL], 1, max, &i64) != 0)
      return bad_value("export", "level", v[E_LEVEL],
                       max == 9 ? "a gzip level from 1 to 9" : "a zstd level from 1 to 22");
    t.level = (int)i64;
  }
  if (v[E_DELIMITER] != NULL) {
    const char *d = v[E_DELIMITER];
    if (strcmp(d, "tab") == 0 || strcmp(d, "\\t") == 0) d = "\t";
    if (strlen(d) != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r' ||
        (unsigned char)d[0] >= 0x80)
      return bad_value("export", "delimiter", v[E_DELIMITER], "one ASCII character (or 'tab')");
    t.delimiter = d[0];
  }
  if (t.format == DBP_FMT_JSONL && (v[E_DELIMITER] || v[E_NULL] || flags[E_NO_HEADER])) {
    fprintf(stderr, "dbpipe export: --delimiter, --null and --no-header do not apply to jsonl\n");
    return CLI_USAGE;
  }
  if (v[E_MAX_ROWS] != NULL) {
    if (dbp__parse_uint(v[E_MAX_ROWS], UINT64_MAX, &u) != 0 || u == 0)
      return bad_value("export", "max-rows", v[E_MAX_ROWS], "a positive number");
    t.max_rows = u;
  }
  if (v[E_MAX_BYTES] != NULL) {
    if (dbp_parse_size(v[E_MAX_BYTES], &u) != 0 || u == 0)
      return bad_value("export", "max-bytes", v[E_MAX_BYTES], "a size like 500MB or 1GiB");
    t.max_bytes = u;
  }
  if (v[E_TIMEOUT] != NULL) {
    if (dbp_parse_duration(v[E_TIMEOUT], &i64) != 0 || i64 == 0)
      return bad_value("export", "timeout", v[E_TIMEOUT], "a duration like 500ms, 30s, 10m or 1h");
    t.timeout_ms = i64;
  }
  if (v[E_RETRIES] != NULL) {
    if (dbp__parse_uint(v[E_RETRIES], 100, &u) != 0)
      return bad_value("export", "retries", v[E_RETRIES], "a number from 0 to 100");
    t.retries = (int)u;
  }
  dbp_job_conn conn = {.name = "db", .pool = 1};
  if (v[E_POOL] != NULL) {
    if (dbp__parse_uint(v[E_POOL], 1000, &u) != 0 || u == 0)
      return bad_value("export", "pool", v[E_POOL], "a number from 1 to 1000");
    conn.pool = (size_t)u;
  }
  if (v[E_LOG_FORMAT] != NULL && cli_parse_log_format(v[E_LOG_FORMAT], &log.format) != 0)
    return bad_value("export", "log-format", v[E_LOG_FORMAT], "text or json");
  if (v[E_MANIFEST] != NULL && *v[E_MANIFEST] == '\0')
    return bad_value("export", "manifest", "", "a file name");
  if (v[E_MANIFEST] != NULL && strcmp(v[E_MANIFEST], t.path) == 0) {
    fprintf(stderr, "dbpipe export: --manifest and --to name the same file\n");
    return CLI_USAGE;
  }
  log.quiet = flags[E_QUIET];

  /* The DSN last: its error message is the one most worth reading. */
  dbp_dsn dsn;
  char ebuf[256] = "", rbuf[1024];
  if (dbp_dsn_parse(v[E_FROM], &dsn, ebuf, sizeof ebuf) != 0) {
    fprintf(stderr, "dbpipe export: --from: bad connection string %s: %s\n",
            dbp_dsn_redact(v[E_FROM], rbuf, sizeof rbuf),
            ebuf[0] ? ebuf : "expected postgresql://... or mysql://...");
    return CLI_USAGE;
  }
  conn.kind = dsn.kind;
  dbp_dsn_free(&dsn);
  conn.dsn = (char *)v[E_FROM];
  conn.dsn_redacted = (char *)dbp_dsn_redact(v[E_FROM], rbuf, sizeof rbuf);

  dbp_job job = {.file = NULL,
                 .nconns = 1,
                 .conns = &conn,
                 .ntasks = 1,
                 .tasks = &t,
                 .concurrency = 1,
                 .manifest = (char *)v[E_MANIFEST]};
  cli_run_options ro = {.log = &log, .progress = want_progress(&log), .command = "export"};
  int code = cli_run_job(&job, NULL, &ro);
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
      cli_str s = {0};
      struct timespec now;
      char ts[40];
      clock_gettime(CLOCK_REALTIME, &now);
      cli_str_puts(&s, "{\"ts\":");
      cli_str_json(&s, cli_fmt_iso(&now, ts, sizeof ts));
      cli_str_puts(&s, ",\"level\":\"error\",\"event\":\"job_invalid\",\"file\":");
      cli_str_json(&s, path);
      cli_str_printf(&s, ",\"line\":%d,\"column\":%d,\"message\":", diag.errors[i].line,
                     diag.errors[i].column);
      cli_str_json(&s, diag.errors[i].message);
      cli_str_puts(&s, "}\n");
      if (s.p != NULL) fputs(s.p, stderr);
      cli_str_free(&s);
    } else {
      fprintf(stderr, "%s\n", dbp_job_diag_format(&diag, i, buf, sizeof buf));
    }
  }
  if (rc == DBP_EJOB && (log == NULL || log->format == CLI_LOG_TEXT)) {
    fprintf(stderr, "dbpipe %s: %zu problem%s in %s; nothing was run\n", cmd, diag.count,
            diag.count == 1 ? "" : "s", path);
  }
  dbp_job_diag_free(&diag);
  return CLI_USAGE;
}

enum { R_CONCURRENCY, R_ONLY, R_QUIET, R_LOG_FORMAT, R_HELP };
static const cli_opt run_opts[] = {[R_CONCURRENCY] = {"concurrency", true},
                                   [R_ONLY] = {"only", true},
                                   [R_QUIET] = {"quiet", false},
                                   [R_LOG_FORMAT] = {"log-format", true},
                                   [R_HELP] = {"help", false},
                                   {NULL, false}};

int cli_cmd_run(int argc, char **argv) {
  cli_args a = {.argc = argc, .argv = argv, .i = 0, .cmd = "run", .opts = run_opts};
  cli_log log = {.out = stderr};
  const char *path = NULL, *val;
  const char **only = calloc((size_t)argc + 1, sizeof *only);
  size_t nonly = 0, concurrency = 0;
  uint64_t u;
  int k, code = CLI_USAGE;
  dbp_job *job = NULL;
  bool *selected = NULL;
  if (only == NULL) return CLI_FAILED;
  while ((k = next_arg(&a, &val)) != ARG_END) {
    if (k == ARG_ERROR) goto out;
    if (k == ARG_POSITIONAL) {
      if (path != NULL) {
        fprintf(stderr, "dbpipe run: one job file at a time ('%s' and '%s')\n", path, val);
        goto out;
      }
      path = val;
    } else if (k == R_HELP) {
      cli_help(stdout, "run");
      code = CLI_OK;
      goto out;
    } else if (k == R_CONCURRENCY) {
      if (dbp__parse_uint(val, 10000, &u) != 0 || u == 0) {
        code = bad_value("run", "concurrency", val, "a number from 1 to 10000");
        goto out;
      }
      concurrency = (size_t)u;
    } else if (k == R_ONLY) {
      only[nonly++] = val;
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
        cli_str names = {0};
        for (size_t j = 0; j < job->ntasks; j++) {
          cli_str_printf(&names, "%s%s", j ? ", " : "", job->tasks[j].name);
        }
        fprintf(stderr, "dbpipe run: --only %s: %s has no such task (tasks: %s)\n", only[i], path,
                names.p ? names.p : "");
        cli_str_free(&names);
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

static const cli_opt check_opts[] = {{"help", false}, {NULL, false}};

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
      fprintf(stderr, "dbpipe check: one job file at a time ('%s' and '%s')\n", path, val);
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
  printf("%s: ok: %zu task%s, %zu connection%s, concurrency %zu\n", path, job->ntasks,
         job->ntasks == 1 ? "" : "s", job->nconns, job->nconns == 1 ? "" : "s", job->concurrency);
  for (size_t i = 0; i < job->nconns; i++) {
    printf("  connection %s: %s\n", job->conns[i].name, job->conns[i].dsn_redacted);
  }
  for (size_t i = 0; i < job->ntasks; i++) {
    const dbp_job_task *t = &job->tasks[i];
    printf("  task %s: %s %s -> %s (%s%s%s)\n", t->name, job->conns[t->conn].name,
           t->table ? t->table : "query", t->path, dbp_format_name(t->format),
           t->compression != DBP_COMP_NONE ? ", " : "",
           t->compression != DBP_COMP_NONE ? dbp_compression_name(t->compression) : "");
  }
  printf("  manifest: %s\n", job->manifest ? job->manifest : "none");
  dbp_job_free(job);
  return CLI_OK;
}
