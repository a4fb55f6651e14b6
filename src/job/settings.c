/* Task settings: the one parser of a task's values for job files and the
 * command line, and the checks that need all of them (dbp_task_finish). */
#include "dbpipe/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

#define MAX_RETRIES 100
#define MAX_POOL 1000
#define MAX_CONCURRENCY 10000
#define MAX_PARTITIONS 10000

static const dbp_setting settings[DBP_SET_COUNT] = {
    [DBP_SET_NAME] = {DBP_SET_NAME, "name", DBP_SETTING_NAME, false, "a word"},
    [DBP_SET_QUERY] = {DBP_SET_QUERY, "query", DBP_SETTING_TEXT, false, "an SQL query"},
    [DBP_SET_TABLE] = {DBP_SET_TABLE, "table", DBP_SETTING_TEXT, false, "a table name"},
    [DBP_SET_TABLES] = {DBP_SET_TABLES, "tables", DBP_SETTING_TEXT, false,
                        "table patterns like public.* or shop.order_*"},
    [DBP_SET_EXCLUDE] = {DBP_SET_EXCLUDE, "exclude", DBP_SETTING_TEXT, true,
                         "table patterns like public.tmp_*"},
    [DBP_SET_VIEWS] = {DBP_SET_VIEWS, "views", DBP_SETTING_BOOL, true, "true or false"},
    [DBP_SET_WHERE] = {DBP_SET_WHERE, "where", DBP_SETTING_TEXT, true, "an SQL condition"},
    [DBP_SET_PARTITION_BY] = {DBP_SET_PARTITION_BY, "partition_by", DBP_SETTING_TEXT, true,
                              "a column name, or auto (the primary key)"},
    [DBP_SET_PARTITIONS] = {DBP_SET_PARTITIONS, "partitions", DBP_SETTING_NUMBER, true,
                            "a number from 1 to 10000"},
    [DBP_SET_CHUNK_ROWS] = {DBP_SET_CHUNK_ROWS, "chunk_rows", DBP_SETTING_NUMBER, true,
                            "a whole number of rows, at least 1"},
    [DBP_SET_TO] = {DBP_SET_TO, "to", DBP_SETTING_TEXT, false, "a path"},
    [DBP_SET_FORMAT] = {DBP_SET_FORMAT, "format", DBP_SETTING_CHOICE, true, "csv, tsv or jsonl"},
    [DBP_SET_COMPRESSION] = {DBP_SET_COMPRESSION, "compression", DBP_SETTING_CHOICE, true,
                             "none, gzip or zstd"},
    [DBP_SET_LEVEL] = {DBP_SET_LEVEL, "level", DBP_SETTING_NUMBER, true,
                       "a number (gzip 1-9, zstd 1-22)"},
    [DBP_SET_HEADER] = {DBP_SET_HEADER, "header", DBP_SETTING_BOOL, true, "true or false"},
    [DBP_SET_DELIMITER] = {DBP_SET_DELIMITER, "delimiter", DBP_SETTING_CHAR, true,
                           "one ASCII character other than a quote or line break (or 'tab')"},
    [DBP_SET_NULL] = {DBP_SET_NULL, "null", DBP_SETTING_STRING, true, "a string"},
    [DBP_SET_CRLF] = {DBP_SET_CRLF, "crlf", DBP_SETTING_BOOL, true, "true or false"},
    [DBP_SET_MAX_ROWS] = {DBP_SET_MAX_ROWS, "max_rows", DBP_SETTING_NUMBER, true, "a whole number"},
    [DBP_SET_MAX_BYTES] = {DBP_SET_MAX_BYTES, "max_bytes", DBP_SETTING_SIZE, true,
                           "a size like 1048576, 500MB or 1GiB"},
    [DBP_SET_TIMEOUT] = {DBP_SET_TIMEOUT, "timeout", DBP_SETTING_TIME_LIMIT, true,
                         "a duration like 500ms, 30s, 10m or 1h (0 or none: no limit)"},
    [DBP_SET_IDLE_TIMEOUT] = {DBP_SET_IDLE_TIMEOUT, "idle_timeout", DBP_SETTING_TIME_LIMIT, true,
                              "a duration like 500ms, 30s, 10m or 1h (0 or none: no limit)"},
    [DBP_SET_RETRIES] = {DBP_SET_RETRIES, "retries", DBP_SETTING_NUMBER, true,
                         "a number from 0 to 100"},
    [DBP_SET_RETRY_BACKOFF] = {DBP_SET_RETRY_BACKOFF, "retry_backoff", DBP_SETTING_DURATION, true,
                               "a number with ms, s, m or h: 500ms, 30s, 10m, 1h"},
    [DBP_SET_POOL] = {DBP_SET_POOL, "pool", DBP_SETTING_NUMBER, false, "a number from 1 to 1000"},
    [DBP_SET_SNAPSHOT] = {DBP_SET_SNAPSHOT, "snapshot", DBP_SETTING_CHOICE, false,
                          "on, none or lock-free"},
    [DBP_SET_CONCURRENCY] = {DBP_SET_CONCURRENCY, "concurrency", DBP_SETTING_NUMBER, false,
                             "a number from 1 to 10000"},
};

const dbp_setting *dbp_settings(size_t *count) {
  if (count != NULL) *count = DBP_SET_COUNT;
  return settings;
}

const dbp_setting *dbp_setting_find(const char *key) {
  for (size_t i = 0; key != NULL && i < DBP_SET_COUNT; i++) {
    if (strcmp(settings[i].key, key) == 0) return &settings[i];
  }
  return NULL;
}

void dbp_task_init(dbp_job_task *t) {
  *t = (dbp_job_task){.timeout_ms = DBP_JOB_NO_TIMEOUT,
                      .idle_timeout_ms = DBP_DEFAULT_IO_TIMEOUT_MS,
                      .retry_backoff_ms = DBP_JOB_DEFAULT_BACKOFF_MS};
}

static void free_list(char **items, size_t n) {
  for (size_t i = 0; i < n; i++) free(items[i]);
  free(items);
}

void dbp_task_clear(dbp_job_task *t) {
  free(t->name);
  free(t->query);
  free(t->table);
  free_list(t->tables, t->ntables);
  free_list(t->exclude, t->nexclude);
  free(t->where);
  free(t->partition_by);
  free(t->path);
  free((char *)t->export.encode.null_string);
  dbp_task_init(t);
}

static int refuse(char *err, size_t errlen, const char *reason) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s", reason);
  return DBP_EINVAL;
}

/* Replaces the string *dst with a copy of s. */
static int set_string(char **dst, const char *s) {
  char *copy = strdup(s);
  if (copy == NULL) return DBP_ENOMEM;
  free(*dst);
  *dst = copy;
  return 0;
}

static int parse_name(const char *s, char *err, size_t errlen) {
  for (const char *c = s; *c; c++) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_' || *c == '-' || *c == '.'))
      return refuse(err, errlen, "may only use letters, digits, '_', '-' and '.'");
  }
  if (s[0] == '.' || s[0] == '-')
    return refuse(err, errlen, "must start with a letter, digit or '_'");
  return 0;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Splits a list of table patterns at the commas outside "..." and `...`
 * (a doubled quote inside them closes and reopens the quote, so it needs no
 * care), trimming the spaces around each pattern. Only what would make the
 * list itself unreadable is refused here: an empty pattern, a quote that
 * never ends. The catalog checks each pattern's syntax (dbp_list_tables),
 * with the quotes kept for it. */
static int parse_patterns(const char *value, char ***out, size_t *nout, char *err, size_t errlen) {
  char **items = NULL;
  size_t n = 0;
  const char *p = value;
  int rc = 0;
  for (;;) {
    const char *start = p;
    char quote = 0;
    while (*p != '\0' && (quote != 0 || *p != ',')) {
      if (quote == 0 && (*p == '"' || *p == '`')) {
        quote = *p;
      } else if (quote != 0 && *p == quote) {
        quote = 0;
      }
      p++;
    }
    if (quote != 0) {
      rc = refuse(err, errlen, "table patterns whose quotes all end");
      break;
    }
    const char *end = p;
    while (start < end && is_space(*start)) start++;
    while (end > start && is_space(end[-1])) end--;
    if (start == end) {
      rc = refuse(err, errlen, "table patterns separated by commas, none of them empty");
      break;
    }
    char **grown = dbp__grow(items, n, sizeof *items);
    char *item = strndup(start, (size_t)(end - start));
    if (grown != NULL) items = grown;
    if (grown == NULL || item == NULL) {
      free(item);
      rc = DBP_ENOMEM;
      break;
    }
    items[n++] = item;
    if (*p == '\0') break;
    p++; /* the comma */
  }
  if (rc != 0) {
    free_list(items, n);
    return rc;
  }
  *out = items;
  *nout = n;
  return 0;
}

/* Parses `value` for task setting `id` into t. */
static int apply(dbp_job_task *t, dbp_setting_id id, const char *value, char *err, size_t errlen) {
  const dbp_setting *st = &settings[id];
  dbp_export_options *x = &t->export;
  uint64_t u;
  int64_t i64;
  bool b;
  if (value == NULL) return refuse(err, errlen, st->expect);
  switch (id) {
    case DBP_SET_NAME:
      if (parse_name(value, err, errlen) != 0) return DBP_EINVAL;
      return set_string(&t->name, value);
    case DBP_SET_QUERY:
    case DBP_SET_TABLE:
    case DBP_SET_TO: {
      const char *c = value;
      while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r') c++;
      if (*c == '\0') return refuse(err, errlen, st->expect);
      return set_string(id == DBP_SET_QUERY   ? &t->query
                        : id == DBP_SET_TABLE ? &t->table
                                              : &t->path,
                        value);
    }
    case DBP_SET_TABLES:
    case DBP_SET_EXCLUDE: {
      char **items;
      size_t n;
      int rc = parse_patterns(value, &items, &n, err, errlen);
      if (rc != 0) return rc;
      if (id == DBP_SET_TABLES) {
        free_list(t->tables, t->ntables);
        t->tables = items;
        t->ntables = n;
      } else {
        free_list(t->exclude, t->nexclude);
        t->exclude = items;
        t->nexclude = n;
      }
      return 0;
    }
    case DBP_SET_VIEWS:
      if (dbp__parse_bool(value, &t->views) != 0) return refuse(err, errlen, st->expect);
      return 0;
    case DBP_SET_WHERE:
    case DBP_SET_PARTITION_BY: {
      const char *c = value;
      while (is_space(*c)) c++;
      if (*c == '\0') return refuse(err, errlen, st->expect);
      if (id == DBP_SET_WHERE) return set_string(&t->where, value);
      /* auto: the primary key, which the planner finds. */
      if (strcmp(value, "auto") == 0) {
        free(t->partition_by);
        t->partition_by = NULL;
        return 0;
      }
      return set_string(&t->partition_by, value);
    }
    case DBP_SET_PARTITIONS:
      if (dbp__parse_uint(value, MAX_PARTITIONS, &u) != 0 || u == 0)
        return refuse(err, errlen, st->expect);
      t->partitions = (size_t)u;
      return 0;
    case DBP_SET_CHUNK_ROWS:
      if (dbp__parse_uint(value, UINT64_MAX, &u) != 0 || u == 0)
        return refuse(err, errlen, st->expect);
      t->chunk_rows = u;
      return 0;
    case DBP_SET_FORMAT:
      if (dbp_format_parse(value, &x->format) != 0 || x->format == DBP_FMT_AUTO) {
        x->format = DBP_FMT_AUTO;
        return refuse(err, errlen, st->expect);
      }
      return 0;
    case DBP_SET_COMPRESSION:
      if (dbp_compression_parse(value, &x->compression) != 0 || x->compression == DBP_COMP_AUTO) {
        x->compression = DBP_COMP_AUTO;
        return refuse(err, errlen, st->expect);
      }
      return 0;
    case DBP_SET_LEVEL:
      /* The range of the compression is checked once it is known. */
      if (dbp__parse_int(value, 1, 22, &i64) != 0) return refuse(err, errlen, st->expect);
      x->level = (int)i64;
      return 0;
    case DBP_SET_HEADER:
    case DBP_SET_CRLF:
      if (dbp__parse_bool(value, &b) != 0) return refuse(err, errlen, st->expect);
      if (id == DBP_SET_HEADER) {
        x->encode.no_header = !b;
      } else {
        x->encode.crlf = b;
      }
      return 0;
    case DBP_SET_DELIMITER: {
      const char *d = value;
      if (strcmp(d, "tab") == 0 || strcmp(d, "\\t") == 0) d = "\t";
      if (strlen(d) != 1 || d[0] == '\n' || d[0] == '\r' || d[0] == '"' ||
          (unsigned char)d[0] >= 0x80)
        return refuse(err, errlen, st->expect);
      x->encode.delimiter = d[0];
      return 0;
    }
    case DBP_SET_NULL: {
      char *copy = strdup(value);
      if (copy == NULL) return DBP_ENOMEM;
      free((char *)x->encode.null_string);
      x->encode.null_string = copy;
      return 0;
    }
    case DBP_SET_MAX_ROWS:
      if (dbp__parse_uint(value, UINT64_MAX, &x->max_rows) != 0)
        return refuse(err, errlen, st->expect);
      return 0;
    case DBP_SET_MAX_BYTES:
      if (dbp_parse_size(value, &x->max_bytes) != 0) return refuse(err, errlen, st->expect);
      return 0;
    case DBP_SET_TIMEOUT:
    case DBP_SET_IDLE_TIMEOUT:
      if (dbp__parse_time_limit(value, &i64) != 0) return refuse(err, errlen, st->expect);
      *(id == DBP_SET_TIMEOUT ? &t->timeout_ms : &t->idle_timeout_ms) = i64;
      return 0;
    case DBP_SET_RETRIES:
      if (dbp__parse_uint(value, MAX_RETRIES, &u) != 0) return refuse(err, errlen, st->expect);
      t->retries = (int)u;
      return 0;
    case DBP_SET_RETRY_BACKOFF:
      if (dbp_parse_duration(value, &i64) != 0) return refuse(err, errlen, st->expect);
      t->retry_backoff_ms = i64;
      return 0;
    default:
      return DBP_ENOENT;
  }
}

static int set_with_origin(dbp_job_task *t, const char *key, const char *value, char *err,
                           size_t errlen, dbp_setting_origin origin) {
  const dbp_setting *st = dbp_setting_find(key);
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (st == NULL || st->id >= DBP_SET_TASK_COUNT) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "no such setting");
    return DBP_ENOENT;
  }
  if (origin == DBP_ORIGIN_DEFAULT && t->origin[st->id] != DBP_ORIGIN_UNSET) return 0;
  int rc = apply(t, st->id, value, err, errlen);
  if (rc == 0) {
    t->origin[st->id] = (unsigned char)origin;
  } else if (rc == DBP_EINVAL) {
    t->origin[st->id] = DBP_ORIGIN_BAD;
  }
  return rc;
}

int dbp_task_set(dbp_job_task *t, const char *key, const char *value, char *err, size_t errlen) {
  return set_with_origin(t, key, value, err, errlen, DBP_ORIGIN_TASK);
}

int dbp_task_set_default(dbp_job_task *t, const char *key, const char *value, char *err,
                         size_t errlen) {
  return set_with_origin(t, key, value, err, errlen, DBP_ORIGIN_DEFAULT);
}

/* A number from 1 to max for the setting `id` (pool, concurrency). */
static int parse_count(dbp_setting_id id, const char *value, uint64_t max, uint64_t *out, char *err,
                       size_t errlen) {
  if (value == NULL || dbp__parse_uint(value, max, out) != 0 || *out == 0)
    return refuse(err, errlen, settings[id].expect);
  return 0;
}

/* on, none, lock-free; the words of a boolean stand for on and none. */
static int parse_snapshot(const char *value, dbp_job_snapshot *out, char *err, size_t errlen) {
  bool b;
  if (value != NULL && strcmp(value, "on") == 0) {
    *out = DBP_JOB_SNAPSHOT_ON;
  } else if (value != NULL && strcmp(value, "none") == 0) {
    *out = DBP_JOB_SNAPSHOT_NONE;
  } else if (value != NULL && strcmp(value, "lock-free") == 0) {
    *out = DBP_JOB_SNAPSHOT_LOCK_FREE;
  } else if (value != NULL && dbp__parse_bool(value, &b) == 0) {
    *out = b ? DBP_JOB_SNAPSHOT_ON : DBP_JOB_SNAPSHOT_NONE;
  } else {
    return refuse(err, errlen, settings[DBP_SET_SNAPSHOT].expect);
  }
  return 0;
}

static int no_such_setting(char *err, size_t errlen) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "no such setting");
  return DBP_ENOENT;
}

int dbp_job_conn_set(dbp_job_conn *c, const char *key, const char *value, char *err,
                     size_t errlen) {
  uint64_t v;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (key != NULL && strcmp(key, settings[DBP_SET_SNAPSHOT].key) == 0)
    return parse_snapshot(value, &c->snapshot, err, errlen);
  if (key == NULL || strcmp(key, settings[DBP_SET_POOL].key) != 0)
    return no_such_setting(err, errlen);
  int rc = parse_count(DBP_SET_POOL, value, MAX_POOL, &v, err, errlen);
  if (rc == 0) c->pool = (size_t)v;
  return rc;
}

int dbp_job_set(dbp_job *job, const char *key, const char *value, char *err, size_t errlen) {
  uint64_t v;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (key != NULL && strcmp(key, settings[DBP_SET_SNAPSHOT].key) == 0)
    return parse_snapshot(value, &job->snapshot, err, errlen);
  if (key == NULL || strcmp(key, settings[DBP_SET_CONCURRENCY].key) != 0)
    return no_such_setting(err, errlen);
  int rc = parse_count(DBP_SET_CONCURRENCY, value, MAX_CONCURRENCY, &v, err, errlen);
  if (rc == 0) job->concurrency = (size_t)v;
  return rc;
}

/* ---- finishing a task ---- */

typedef struct finisher {
  dbp_job_task *t;
  dbp_task_report_fn report;
  void *ud;
  int problems;
} finisher;

static void problem(finisher *f, dbp_task_problem_code code, dbp_setting_id id, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void problem(finisher *f, dbp_task_problem_code code, dbp_setting_id id, const char *fmt,
                    ...) {
  char reason[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  dbp_task_problem p = {.code = code,
                        .setting = id,
                        .from_default = f->t->origin[id] == DBP_ORIGIN_DEFAULT,
                        .reason = reason};
  f->problems++;
  if (f->report != NULL) f->report(f->ud, &p);
}

/* True when the last component of `path` has an ending (a '.' that is
 * neither its first character nor its last) once a .gz or .zst ending is
 * taken off. */
static bool has_format_ending(const char *path) {
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 3 && strcasecmp(base + n - 3, ".gz") == 0) {
    n -= 3;
  } else if (n > 4 && strcasecmp(base + n - 4, ".zst") == 0) {
    n -= 4;
  }
  for (size_t i = n; i > 1; i--) {
    if (base[i - 1] == '.') return i < n;
  }
  return false;
}

/* Decides the format and compression written to the path ("-" = standard
 * output) from its name and the settings given (AUTO = not given): a given
 * setting must agree with the name; a name whose ending dbpipe does not
 * write (".txt", ".json", ".parquet", ...) needs an explicit format;
 * otherwise CSV and no compression. */
static void output_format(finisher *f) {
  dbp_job_task *t = f->t;
  dbp_format fmt = t->export.format, pf = DBP_FMT_AUTO;
  dbp_compression comp = t->export.compression, pc = DBP_COMP_AUTO;
  const char *path = t->path;
  bool to_stdout = strcmp(path, "-") == 0;
  const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
  if (!to_stdout) dbp_format_detect(path, &pf, &pc);
  /* Compression: the name's, which an explicit setting must agree with. */
  dbp_compression c = pc != DBP_COMP_AUTO ? pc : DBP_COMP_NONE;
  if (comp != DBP_COMP_AUTO && to_stdout) c = comp;
  if (comp != DBP_COMP_AUTO && comp != c) {
    problem(f, DBP_TASK_COMPRESSION_MISMATCH, DBP_SET_COMPRESSION,
            "compression '%s'%s does not match the file name '%s' (%s)", dbp_compression_name(comp),
            t->origin[DBP_SET_COMPRESSION] == DBP_ORIGIN_DEFAULT ? " (from defaults)" : "", base,
            comp == DBP_COMP_NONE   ? "remove the .gz or .zst ending"
            : comp == DBP_COMP_GZIP ? "end it in .gz"
                                    : "end it in .zst");
  }
  /* Format: the name's; an explicit one must agree with it, and a name
   * with an ending dbpipe does not write needs one. */
  dbp_format ff = pf != DBP_FMT_AUTO ? pf : DBP_FMT_CSV;
  if (fmt != DBP_FMT_AUTO) {
    if (pf != DBP_FMT_AUTO && fmt != pf) {
      problem(f, DBP_TASK_FORMAT_MISMATCH, DBP_SET_FORMAT,
              "format '%s'%s does not match the file name '%s' (which says %s)",
              dbp_format_name(fmt),
              t->origin[DBP_SET_FORMAT] == DBP_ORIGIN_DEFAULT ? " (from defaults)" : "", base,
              dbp_format_name(pf));
    }
    ff = fmt;
  } else if (pf == DBP_FMT_AUTO && !to_stdout && has_format_ending(path)) {
    problem(f, DBP_TASK_UNKNOWN_ENDING, DBP_SET_TO,
            "dbpipe does not write the format of '%s' (it writes .csv, .tsv and .jsonl, "
            "optionally .gz or .zst): rename it, or say which format to write",
            base);
  }
  t->export.format = ff;
  t->export.compression = c;
}

/* Whether `path` holds the template {word}, read as the job loader reads
 * templates: a '{', letters, digits or '_', a '}'. */
static bool has_template(const char *path, const char *word) {
  size_t n = strlen(word);
  for (const char *p = strchr(path, '{'); p != NULL; p = strchr(p + 1, '{')) {
    if (strncmp(p + 1, word, n) == 0 && p[1 + n] == '}') return true;
  }
  return false;
}

bool dbp__path_has_runner_templates(const char *path) {
  return has_template(path, "schema") || has_template(path, "table") || has_template(path, "part");
}

int dbp__where_check(dbp_db_kind kind, const char *where, char *err, size_t errlen) {
  /* Alone first, for the positions of what is wrong ... */
  if (dbp_sql_check_single(kind, where, err, errlen) != 0) return DBP_EINVAL;
  /* ... then as the runner uses it: a ';' that ends the statement inside
   * the parentheses. */
  char *sql = NULL;
  if (asprintf(&sql, "SELECT 1 WHERE (\n%s\n)", where) < 0) return DBP_ENOMEM;
  int rc = dbp_sql_check_single(kind, sql, NULL, 0);
  free(sql);
  if (rc != 0)
    return refuse(err, errlen, "must be one SQL condition, without a ';' that would end the query");
  return 0;
}

static bool given(const dbp_job_task *t, dbp_setting_id id) {
  return t->origin[id] == DBP_ORIGIN_TASK || t->origin[id] == DBP_ORIGIN_DEFAULT;
}

/* Forgets an inherited setting that means nothing for this task (a split
 * of `defaults:` for a task that runs a query), as an inherited level is
 * forgotten without compression. */
static void drop(dbp_job_task *t, dbp_setting_id id) {
  switch (id) {
    case DBP_SET_EXCLUDE:
      free_list(t->exclude, t->nexclude);
      t->exclude = NULL;
      t->nexclude = 0;
      break;
    case DBP_SET_VIEWS:
      t->views = false;
      break;
    case DBP_SET_PARTITION_BY:
      free(t->partition_by);
      t->partition_by = NULL;
      break;
    case DBP_SET_PARTITIONS:
      t->partitions = 0;
      break;
    case DBP_SET_CHUNK_ROWS:
      t->chunk_rows = 0;
      break;
    default:
      return;
  }
  t->origin[id] = DBP_ORIGIN_UNSET;
}

/* What a task reads (one of query, table and tables) and the settings that
 * only some of them take: patterns, filters, splits, and the templates of
 * the output path that the runner fills in. An inherited setting that does
 * not apply is dropped, except a filter: rows it was meant to keep out
 * must not be written silently. */
static void whole_tables(finisher *f) {
  dbp_job_task *t = f->t;
  const unsigned char *o = t->origin;
  bool q = o[DBP_SET_QUERY] != DBP_ORIGIN_UNSET, tb = o[DBP_SET_TABLE] != DBP_ORIGIN_UNSET,
       tbs = o[DBP_SET_TABLES] != DBP_ORIGIN_UNSET;
  if (q + tb + tbs == 0) {
    problem(f, DBP_TASK_SOURCE, DBP_SET_QUERY, "needs a query, a table or table patterns");
  } else if (q + tb + tbs > 1) {
    problem(f, DBP_TASK_SOURCE, tbs ? DBP_SET_TABLES : DBP_SET_TABLE,
            "give only one of a query, a table and table patterns");
  }

  /* Patterns only go with patterns. */
  static const dbp_setting_id pattern_only[] = {DBP_SET_EXCLUDE, DBP_SET_VIEWS};
  for (size_t i = 0; i < 2 && !tbs; i++) {
    dbp_setting_id id = pattern_only[i];
    if (o[id] == DBP_ORIGIN_TASK) {
      problem(f, DBP_TASK_CONFLICT, id, "only applies to table patterns (tables)");
    } else if (o[id] == DBP_ORIGIN_DEFAULT) {
      drop(t, id);
    }
  }

  /* Filters and splits are for tables: a query says its own. */
  if (q && !tb && !tbs) {
    if (given(t, DBP_SET_WHERE))
      problem(f, DBP_TASK_CONFLICT, DBP_SET_WHERE,
              "%scannot filter a query: put the condition in the query",
              o[DBP_SET_WHERE] == DBP_ORIGIN_DEFAULT ? "(from defaults) " : "");
    static const dbp_setting_id split_only[] = {DBP_SET_PARTITION_BY, DBP_SET_PARTITIONS,
                                                DBP_SET_CHUNK_ROWS};
    for (size_t i = 0; i < 3; i++) {
      dbp_setting_id id = split_only[i];
      if (o[id] == DBP_ORIGIN_TASK) {
        problem(f, DBP_TASK_CONFLICT, id,
                "splits a table; a query cannot be split (give a table or table patterns)");
      } else if (o[id] == DBP_ORIGIN_DEFAULT) {
        drop(t, id);
      }
    }
  }

  /* One way to split: a task's own wins over an inherited one. */
  if (given(t, DBP_SET_PARTITIONS) && given(t, DBP_SET_CHUNK_ROWS)) {
    if (o[DBP_SET_PARTITIONS] != o[DBP_SET_CHUNK_ROWS]) {
      drop(t,
           o[DBP_SET_PARTITIONS] == DBP_ORIGIN_DEFAULT ? DBP_SET_PARTITIONS : DBP_SET_CHUNK_ROWS);
    } else {
      problem(f, DBP_TASK_CONFLICT, DBP_SET_CHUNK_ROWS,
              "%sand partitions both say how to split: give one of them",
              o[DBP_SET_CHUNK_ROWS] == DBP_ORIGIN_DEFAULT ? "(from defaults) " : "");
    }
  }
  bool splits = t->partitions > 0 || t->chunk_rows > 0;
  bool split_unknown =
      o[DBP_SET_PARTITIONS] == DBP_ORIGIN_BAD || o[DBP_SET_CHUNK_ROWS] == DBP_ORIGIN_BAD;
  if (!splits && !split_unknown) {
    if (o[DBP_SET_PARTITION_BY] == DBP_ORIGIN_TASK) {
      problem(f, DBP_TASK_CONFLICT, DBP_SET_PARTITION_BY,
              "needs partitions or chunk_rows (how to split)");
    } else if (o[DBP_SET_PARTITION_BY] == DBP_ORIGIN_DEFAULT) {
      drop(t, DBP_SET_PARTITION_BY);
    }
  }

  /* The output path's templates, once it is known. */
  if (t->path == NULL || o[DBP_SET_TO] == DBP_ORIGIN_BAD) return;
  if (strcmp(t->path, "-") == 0) {
    if (tbs)
      problem(f, DBP_TASK_CONFLICT, DBP_SET_TABLES,
              "writes a file for every table; standard output is one stream");
    if (t->partitions > 0)
      problem(f, DBP_TASK_CONFLICT, DBP_SET_PARTITIONS,
              "reads parts side by side into files; standard output is one stream");
    if (t->chunk_rows > 0)
      problem(f, DBP_TASK_CONFLICT, DBP_SET_CHUNK_ROWS,
              "reads parts side by side into files; standard output is one stream");
    return;
  }
  if (tbs && o[DBP_SET_TABLES] != DBP_ORIGIN_BAD && !has_template(t->path, "table")) {
    problem(f, DBP_TASK_CONFLICT, DBP_SET_TO,
            "needs {table} with table patterns: every table is written to a file of its own "
            "(out/{schema}.{table}.csv, say)");
  }
  if (!tbs) {
    if (has_template(t->path, "schema"))
      problem(f, DBP_TASK_CONFLICT, DBP_SET_TO,
              "uses {schema}, which only table patterns (tables) fill in");
    if (has_template(t->path, "table"))
      problem(f, DBP_TASK_CONFLICT, DBP_SET_TO,
              "uses {table}, which only table patterns (tables) fill in");
  }
  if (!splits && !split_unknown && has_template(t->path, "part"))
    problem(f, DBP_TASK_CONFLICT, DBP_SET_TO,
            "uses {part}, but the task is not split (partitions or chunk_rows)");
}

int dbp_task_finish(dbp_job_task *t, dbp_task_report_fn report, void *ud) {
  finisher f = {t, report, ud, 0};
  const unsigned char *o = t->origin;
  /* What depends on a refused value, or on a missing path, is not
   * decided: nothing to compare. */
  bool decided = t->path != NULL && o[DBP_SET_TO] != DBP_ORIGIN_BAD &&
                 o[DBP_SET_FORMAT] != DBP_ORIGIN_BAD && o[DBP_SET_COMPRESSION] != DBP_ORIGIN_BAD;
  if (decided) output_format(&f);
  dbp_compression comp = t->export.compression;

  if (decided && (o[DBP_SET_LEVEL] == DBP_ORIGIN_TASK || o[DBP_SET_LEVEL] == DBP_ORIGIN_DEFAULT)) {
    int max = comp == DBP_COMP_GZIP ? 9 : 22;
    if (comp == DBP_COMP_NONE && o[DBP_SET_LEVEL] == DBP_ORIGIN_TASK) {
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_LEVEL, "needs compression (gzip or zstd)");
    } else if (t->export.level > max && comp != DBP_COMP_NONE) {
      problem(&f, DBP_TASK_LEVEL_RANGE, DBP_SET_LEVEL, "level %d is out of range for %s (1-%d)",
              t->export.level, dbp_compression_name(comp), max);
    }
    /* An inherited level means nothing without compression. */
    if (comp == DBP_COMP_NONE) t->export.level = 0;
  }
  if (decided && t->export.format == DBP_FMT_JSONL) {
    if (o[DBP_SET_DELIMITER] == DBP_ORIGIN_TASK)
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_DELIMITER, "does not apply to jsonl");
    if (o[DBP_SET_NULL] == DBP_ORIGIN_TASK)
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_NULL, "does not apply to jsonl (NULL is always null)");
    if (o[DBP_SET_HEADER] == DBP_ORIGIN_TASK && t->export.encode.no_header)
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_HEADER,
              "does not apply to jsonl (it has no header row)");
  }
  whole_tables(&f);
  bool split = t->export.max_rows > 0 || t->export.max_bytes > 0;
  if (t->path != NULL && strcmp(t->path, "-") == 0) {
    if (t->export.max_rows > 0)
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_MAX_ROWS,
              "splits the output into files; standard output is one stream");
    if (t->export.max_bytes > 0)
      problem(&f, DBP_TASK_CONFLICT, DBP_SET_MAX_BYTES,
              "splits the output into files; standard output is one stream");
  } else if (t->path != NULL && o[DBP_SET_TO] != DBP_ORIGIN_BAD &&
             !dbp__path_has_runner_templates(t->path)) {
    /* What is at the output path must be replaceable by a file. A path
     * that still holds {schema}, {table} or {part} names no file yet: the
     * runner checks each one it fills in. */
    char why[600] = "";
    if (dbp_export_check_target(t->path, split, why, sizeof why) != 0)
      problem(&f, DBP_TASK_BAD_TARGET, DBP_SET_TO, "%s",
              why[0] ? why : "cannot write the output file there");
  }
  return f.problems > 0 ? DBP_EINVAL : 0;
}
