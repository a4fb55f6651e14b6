/* The options of the commands that read them: which take a value, and which
 * are task settings of the job layer (dbpipe/settings.h). `dbpipe export
 * --max-rows 1000` is the setting max_rows with the value "1000": the
 * option's name is the setting's key with '-' for '_', and a flag stands
 * for a fixed value (--no-header is header=false). --pool and --snapshot
 * are the settings of the export's one connection. --tables and --exclude
 * may be repeated: their values join into one comma-separated list. */
#ifndef DBPIPE_CLI_OPTIONS_H
#define DBPIPE_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cli_opt {
  const char *name;    /* without the dashes */
  bool arg;            /* takes a value */
  const char *setting; /* the setting it gives (dbp_setting_find), or NULL */
  const char *flag;    /* for a flag that gives a setting: the value it stands for */
} cli_opt;

enum {
  E_FROM,
  E_FROM_ENV,
  E_QUERY,
  E_TABLE,
  E_TABLES,
  E_EXCLUDE,
  E_VIEWS,
  E_WHERE,
  E_PARTITION_BY,
  E_PARTITIONS,
  E_CHUNK_ROWS,
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
  E_IDLE_TIMEOUT,
  E_RETRIES,
  E_POOL,
  E_SNAPSHOT,
  E_MANIFEST,
  E_QUIET,
  E_LOG_FORMAT,
  E_HELP,
  E_COUNT
};

/* dbpipe export: every option, in the order their values are checked. */
static const cli_opt cli_export_opts[E_COUNT + 1] = {
    [E_FROM] = {"from", true, NULL, NULL},
    [E_FROM_ENV] = {"from-env", true, NULL, NULL},
    [E_QUERY] = {"query", true, "query", NULL},
    [E_TABLE] = {"table", true, "table", NULL},
    [E_TABLES] = {"tables", true, "tables", NULL},
    [E_EXCLUDE] = {"exclude", true, "exclude", NULL},
    [E_VIEWS] = {"views", false, "views", "true"},
    [E_WHERE] = {"where", true, "where", NULL},
    [E_PARTITION_BY] = {"partition-by", true, "partition_by", NULL},
    [E_PARTITIONS] = {"partitions", true, "partitions", NULL},
    [E_CHUNK_ROWS] = {"chunk-rows", true, "chunk_rows", NULL},
    [E_TO] = {"to", true, "to", NULL},
    [E_FORMAT] = {"format", true, "format", NULL},
    [E_COMPRESSION] = {"compression", true, "compression", NULL},
    [E_LEVEL] = {"level", true, "level", NULL},
    [E_NO_HEADER] = {"no-header", false, "header", "false"},
    [E_DELIMITER] = {"delimiter", true, "delimiter", NULL},
    [E_NULL] = {"null", true, "null", NULL},
    [E_CRLF] = {"crlf", false, "crlf", "true"},
    [E_MAX_ROWS] = {"max-rows", true, "max_rows", NULL},
    [E_MAX_BYTES] = {"max-bytes", true, "max_bytes", NULL},
    [E_TIMEOUT] = {"timeout", true, "timeout", NULL},
    [E_IDLE_TIMEOUT] = {"idle-timeout", true, "idle_timeout", NULL},
    [E_RETRIES] = {"retries", true, "retries", NULL},
    [E_POOL] = {"pool", true, "pool", NULL},
    [E_SNAPSHOT] = {"snapshot", true, "snapshot", NULL},
    [E_MANIFEST] = {"manifest", true, NULL, NULL},
    [E_QUIET] = {"quiet", false, NULL, NULL},
    [E_LOG_FORMAT] = {"log-format", true, NULL, NULL},
    [E_HELP] = {"help", false, NULL, NULL},
    [E_COUNT] = {NULL, false, NULL, NULL}};

enum { R_CONCURRENCY, R_ONLY, R_IDLE_TIMEOUT, R_SNAPSHOT, R_QUIET, R_LOG_FORMAT, R_HELP, R_COUNT };

/* dbpipe run. */
static const cli_opt cli_run_opts[R_COUNT + 1] = {
    [R_CONCURRENCY] = {"concurrency", true, "concurrency", NULL},
    [R_IDLE_TIMEOUT] = {"idle-timeout", true, "idle_timeout", NULL},
    [R_SNAPSHOT] = {"snapshot", true, "snapshot", NULL},
    [R_ONLY] = {"only", true, NULL, NULL},
    [R_QUIET] = {"quiet", false, NULL, NULL},
    [R_LOG_FORMAT] = {"log-format", true, NULL, NULL},
    [R_HELP] = {"help", false, NULL, NULL},
    [R_COUNT] = {NULL, false, NULL, NULL}};

#endif /* DBPIPE_CLI_OPTIONS_H */
