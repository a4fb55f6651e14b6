/* dbpipe: the command-line tool. Dispatches to export, run and check. */
#include <libpq-fe.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "cli/cli.h"

static const char overview[] =
    "dbpipe %s: run SQL against PostgreSQL and MySQL/MariaDB concurrently and stream\n"
    "the results into CSV, TSV or JSON Lines files (optionally gzip or zstd).\n"
    "\n"
    "Usage:\n"
    "  dbpipe export --from DSN (--query SQL | --table NAME | --tables PATTERNS) --to PATH\n"
    "                [options]\n"
    "  dbpipe run JOB.yaml [--concurrency N] [--only TASK]... [--quiet] [--log-format F]\n"
    "  dbpipe check JOB.yaml\n"
    "  dbpipe help [COMMAND]\n"
    "  dbpipe --version\n"
    "\n"
    "Commands:\n"
    "  export   one query or table into one file (or numbered parts), or many tables\n"
    "           into a file each, from one snapshot\n"
    "  run      every task of a job file, several at once\n"
    "  check    validate a job file; touches no database and no file\n"
    "\n"
    "DSNs are URLs: postgresql://user:password@host:port/db?sslmode=...,\n"
    "mysql://user:password@host:port/db (also postgres:// and mariadb://).\n"
    "Passwords are never printed; without one in the DSN, PGPASSWORD / PGPASSFILE /\n"
    "~/.pgpass and MYSQL_PWD / ~/.my.cnf are used.\n"
    "\n"
    "Exit codes: 0 all done, 1 a task failed, 2 bad usage or job file (nothing ran),\n"
    "130 interrupted (queries cancelled on the server, no partial files).\n"
    "\n"
    "`dbpipe help COMMAND` (or `dbpipe COMMAND --help`) shows a command's options.\n";

static const char *const export_help[] = {
    "Usage: dbpipe export --from DSN (--query SQL | --table NAME | --tables PATTERNS)\n"
    "                     --to PATH [options]\n"
    "\n"
    "Runs one query (or SELECT * FROM a table) and writes its rows to PATH. The file\n"
    "is written under a temporary name beside PATH (PATH.<random>.part) and renamed\n"
    "when complete: a failed or interrupted export leaves nothing at PATH.\n"
    "With --tables, every table the patterns find is written to a file of its own\n"
    "(PATH must hold {table}), all of them read from one consistent snapshot.\n"
    "\n",
    "Options:\n"
    "  --from DSN            the database (postgresql://... or mysql://...); the\n"
    "                        password is wiped from the process's arguments at once,\n"
    "                        but --from-env or a password file is safer\n"
    "  --from-env VAR        read the DSN from the environment variable VAR\n"
    "  --query SQL           the query to run\n"
    "  --table NAME          export a whole table (schema.table allowed; quoted for you)\n"
    "  --tables P[,P...]     export every table matching a pattern: schema.table with\n"
    "                        * and ? (public.*, shop.order_*; \"...\" quotes a name);\n"
    "                        repeat or separate with commas\n"
    "  --exclude P[,P...]    with --tables: leave out the tables these patterns match\n"
    "  --views               with --tables: patterns match views too\n"
    "  --where SQL           with --table/--tables: only the rows of this condition\n"
    "  --partitions N        read each table in N parts side by side (1-10000)\n"
    "  --chunk-rows N        or: in parts of about N rows each\n"
    "  --partition-by COL    the column the parts are ranges of (default auto: the\n"
    "                        primary key)\n"
    "                        Parts are joined into one file, unless PATH holds\n"
    "                        {part}: then a file per part\n",
    "  --to PATH             the output file; its ending picks the format and compression:\n"
    "                        (with --tables: {schema} and {table} name each table's file;\n"
    "                        {part} each part's)\n"
    "                        .csv .tsv .jsonl, then optionally .gz or .zst (a name\n"
    "                        without an ending gets CSV; any other ending needs\n"
    "                        --format). It must not be a directory, FIFO or device.\n"
    "                        '-' writes the rows to standard output (--format, default\n"
    "                        csv, and --compression say what; no splitting; logs stay\n"
    "                        on stderr; no manifest unless --manifest)\n",
    "  --format F            csv, tsv or jsonl (must agree with the file name)\n"
    "  --compression C       none, gzip or zstd (must agree with the file name)\n"
    "  --level N             compression level (gzip 1-9, zstd 1-22)\n"
    "  --no-header           CSV/TSV: no header row\n"
    "  --delimiter C         CSV/TSV: field separator (one character; 'tab' for a tab)\n"
    "  --null S              CSV/TSV: text for SQL NULL (CSV: empty, TSV: \\N)\n"
    "  --crlf                end lines with CRLF\n"
    "  --max-rows N          split into PATH-00001.EXT, ... of at most N rows each\n"
    "  --max-bytes N         split once a part reaches N bytes (500MB, 1GiB, ...)\n"
    "  --timeout DURATION    give up after this long (500ms, 30s, 10m, 1h; 0 or none:\n"
    "                        no limit, the default)\n"
    "  --idle-timeout DURATION\n"
    "                        fail when the server sends (or takes) nothing for this\n"
    "                        long while the query runs (default 10m; 0 or none: no\n"
    "                        limit)\n"
    "  --retries N           retry connection losses, deadlocks, too many connections,\n"
    "                        ... N times (never a bad password or unknown database)\n",
    "  --pool N              connections to keep (default 1; with --tables, --partitions\n"
    "                        or --chunk-rows: the parts, or 4, at most 8; as many tasks\n"
    "                        run at once)\n"
    "  --snapshot S          on: every connection reads one snapshot (the default with\n"
    "                        --tables, --partitions or --chunk-rows); none: each reads\n"
    "                        on its own (the default otherwise); lock-free: MariaDB/MySQL\n"
    "                        without the brief commit lock (tables may disagree)\n"
    "  --manifest PATH       also write a JSON manifest of the files (rows, bytes, sha256)\n"
    "  --quiet               print only errors\n"
    "  --log-format F        text (default) or json: one JSON object per line\n"
    "\n",
    "The query must be one statement that returns rows (not UPDATE without RETURNING,\n"
    "SET, ...). A DSN's parameters are checked before anything runs; parameters that\n"
    "would override its host (?host=, ?hostaddr=) are refused.\n"
    "\n"
    "Passwords: a DSN without one uses PGPASSWORD, PGPASSFILE or ~/.pgpass\n"
    "(PostgreSQL) and MYSQL_PWD or the [client] section of ~/.my.cnf (MySQL), so the\n"
    "password need not be on the command line at all.\n"
    "\n"
    "Exit codes: 0 done, 1 failed, 2 bad usage (nothing ran), 130 interrupted\n"
    "(SIGINT, SIGTERM, SIGHUP or SIGQUIT: the query is cancelled, no partial file).\n"
    "\n",
    "Examples:\n"
    "  dbpipe export --from postgresql://app:secret@127.0.0.1/shop \\\n"
    "                --query \"SELECT * FROM orders WHERE placed_at >= DATE '2024-01-01'\" \\\n"
    "                --to out/orders.csv.gz\n"
    "  dbpipe export --from mysql://app:secret@127.0.0.1/shop --table customers \\\n"
    "                --to out/customers.jsonl.zst --max-rows 100000\n"
    "  dbpipe export --from-env DB --tables 'public.*' --exclude 'public.tmp_*' \\\n"
    "                --to 'out/{schema}.{table}.csv.zst'\n"
    "  dbpipe export --from-env DB --table orders --partitions 8 --to out/orders.csv.gz\n"
    "  DB=postgresql://app@127.0.0.1/shop dbpipe export --from-env DB --table orders \\\n"
    "                --to - --format jsonl | jq .\n",
    NULL};

static const char *const run_help[] = {
    "Usage: dbpipe run JOB.yaml [--concurrency N] [--only TASK]... [--idle-timeout D]\n"
    "                  [--snapshot on|none|lock-free] [--quiet] [--log-format F]\n"
    "\n"
    "Validates the job file (like `dbpipe check`), then runs its tasks, at most\n"
    "`concurrency` at once, each on a connection from its database's pool. A failed\n"
    "task does not stop the others. Ctrl-C (SIGINT), SIGTERM, SIGHUP or SIGQUIT cancels\n"
    "every query on the server, removes partial files and exits with 130; a second\n"
    "one removes the partial files and exits at once, without waiting for the servers.\n"
    "\n"
    "On a terminal a live display shows each running task (rows, rows/s, bytes) and\n"
    "the pools; otherwise one log line per event.\n"
    "\n",
    "Options:\n"
    "  --concurrency N       tasks at once (overrides the job's `concurrency`)\n"
    "  --only TASK           run only this task (repeat for more)\n"
    "  --idle-timeout DURATION\n"
    "                        overrides every task's idle_timeout (0 or none: no limit)\n"
    "  --snapshot S          on, none or lock-free: overrides the job's and every\n"
    "                        connection's snapshot: setting\n"
    "  --quiet               print only errors\n"
    "  --log-format F        text (default) or json: one JSON object per line\n"
    "                        {\"ts\", \"level\", \"event\", \"task\", \"message\", ...}\n"
    "\n",
    "The job file (YAML):\n"
    "  connections:            name -> DSN, or name -> {dsn: DSN, pool: N, snapshot: S}\n"
    "    pg: postgresql://app:${PG_PASSWORD}@127.0.0.1:5432/shop\n"
    "    my: {dsn: \"mysql://app:${MY_PASSWORD:-secret}@127.0.0.1/shop\", pool: 2}\n"
    "  concurrency: 4          tasks at once (default 4)\n"
    "  snapshot: on            on (default): the tasks reading one database share one\n"
    "                          snapshot; none: each reads on its own; lock-free:\n"
    "                          MariaDB/MySQL without the commit lock (tables may\n"
    "                          disagree); a connection's snapshot: overrides it\n"
    "  manifest: out/manifest.json\n"
    "                          default: JOBNAME.manifest.json beside the job file;\n"
    "                          false: none\n"
    "  defaults:               settings for every task that does not set them:\n"
    "    compression: gzip     from, format, compression, level, header, delimiter,\n"
    "    timeout: 10m          null, crlf, max_rows, max_bytes, timeout, idle_timeout,\n"
    "    retries: 2            retries, retry_backoff, exclude, views, where,\n"
    "                          partition_by, partitions, chunk_rows\n"
    "  tasks:\n",
    "    - name: orders        required: letters, digits, _ - .\n"
    "      from: pg            required (unless in defaults): a connection name\n"
    "      query: SELECT ...   one of query, table and tables\n"
    "      table: shop.orders\n"
    "      tables: [public.*, shop.order_*]\n"
    "                          every table the patterns find (* and ?; \"...\" quotes);\n"
    "                          a list, or one string with commas\n"
    "      exclude: public.tmp_*   with tables: tables to leave out\n"
    "      views: false        with tables: patterns match views too\n"
    "      where: region = 'eu'    with table/tables: only these rows\n"
    "      partitions: 4       read each table in this many parts side by side\n"
    "      chunk_rows: 1000000 or: in parts of about this many rows\n"
    "      partition_by: id    the parts' column (default auto: the primary key)\n"
    "      to: out/{name}-{date}.csv.gz\n"
    "                          required; {name} is the task, {date} the run's UTC date;\n"
    "                          with tables {schema} and {table} (required) name each\n"
    "                          table's file; {part} makes a file per part (else the\n"
    "                          parts are joined into one);\n"
    "                          not a directory, FIFO or device; '-' (standard output)\n"
    "                          is refused: tasks run side by side (use dbpipe export)\n",
    "      format: csv         csv | tsv | jsonl (default: from the file name; a name\n"
    "                          without an ending gets csv, any other ending needs it)\n"
    "      compression: gzip   none | gzip | zstd (default: from the file name)\n"
    "      level: 6            compression level\n"
    "      header: true        CSV/TSV header row\n"
    "      delimiter: ','      CSV/TSV field separator\n"
    "      null: ''            CSV/TSV text for NULL\n"
    "      crlf: false         CRLF line ends\n"
    "      max_rows: 100000    split into numbered parts\n"
    "      max_bytes: 1GiB\n"
    "      timeout: 30s        per attempt (ms, s, m, h; 0 or none: no limit, the default)\n"
    "      idle_timeout: 10m   fail when the server sends or takes nothing for this long\n"
    "                          while the query runs (default 10m; 0 or none: no limit)\n"
    "      retries: 3          extra attempts for retryable errors (lost connection,\n"
    "      retry_backoff: 1s   deadlock, ...), waiting 1s, 2s, 4s, ... in between\n"
    "\n",
    "A query is one statement that returns rows; DSN parameters are checked (host\n"
    "overrides like ?host= are refused). A DSN without a password uses PGPASSWORD,\n"
    "PGPASSFILE or ~/.pgpass (PostgreSQL) and MYSQL_PWD or ~/.my.cnf [client] (MySQL).\n"
    "\n"
    "${VAR} and ${VAR:-default} are replaced from the environment in DSNs, queries,\n"
    "table names and paths; $$ is a literal $. Relative paths are relative to the job\n"
    "file's directory.\n"
    "\n"
    "Examples:\n"
    "  dbpipe run examples/shop.yaml\n"
    "  dbpipe run nightly.yaml --concurrency 8 --only orders --only customers\n"
    "  dbpipe run nightly.yaml --log-format json 2> run.log\n",
    NULL};

static const char check_help[] =
    "Usage: dbpipe check JOB.yaml\n"
    "\n"
    "Validates a job file without touching any database or file: YAML syntax, unknown\n"
    "keys, value types, missing keys, unknown connections, duplicate task names,\n"
    "formats, compressions, file endings, output targets, DSNs and their parameters,\n"
    "one statement per query, and ${VAR}s. Every problem is listed as\n"
    "JOB.yaml:LINE:COLUMN: message. Exit code 0 when the job is valid, 2 otherwise.\n"
    "See `dbpipe help run` for the job file's keys.\n"
    "\n"
    "Example:\n"
    "  dbpipe check examples/shop.yaml\n";

int cli_help(FILE *f, const char *cmd) {
  if (cmd == NULL) {
    fprintf(f, overview, dbp_version());
  } else if (strcmp(cmd, "export") == 0) {
    for (size_t i = 0; export_help[i] != NULL; i++) fputs(export_help[i], f);
  } else if (strcmp(cmd, "run") == 0) {
    for (size_t i = 0; run_help[i] != NULL; i++) fputs(run_help[i], f);
  } else if (strcmp(cmd, "check") == 0) {
    fputs(check_help, f);
  } else if (strcmp(cmd, "help") == 0) {
    fputs("Usage: dbpipe help [COMMAND]\n\nShows the help of a command, or the overview.\n", f);
  } else {
    return -1;
  }
  return 0;
}

static void version(void) {
  int pq = PQlibVersion();
  printf("dbpipe %s\n", dbp_version());
  printf("libuv %s, libpq %d.%d, libmariadb %s, zlib %s, zstd %s\n", uv_version_string(),
         pq / 10000, pq % 100, mysql_get_client_info(), zlibVersion(), ZSTD_versionString());
}

int main(int argc, char **argv) {
  /* A closed pipe on stderr must not kill a run half way. */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    cli_help(stderr, NULL);
    return CLI_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    cli_help(stdout, NULL);
    return CLI_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
    version();
    return CLI_OK;
  }
  if (strcmp(cmd, "help") == 0) {
    if (argc > 3) {
      fprintf(stderr, "dbpipe help: expected at most one command\n");
      return CLI_USAGE;
    }
    if (cli_help(stdout, argc == 3 ? argv[2] : NULL) != 0) {
      fprintf(stderr, "dbpipe help: unknown command '%s' (commands: export, run, check)\n",
              argv[2]);
      return CLI_USAGE;
    }
    return CLI_OK;
  }
  if (strcmp(cmd, "export") == 0) return cli_cmd_export(argc - 1, argv + 1);
  if (strcmp(cmd, "run") == 0) return cli_cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0) return cli_cmd_check(argc - 1, argv + 1);
  fprintf(stderr,
          "dbpipe: unknown command '%s' (commands: export, run, check; see dbpipe --help)\n", cmd);
  return CLI_USAGE;
}
