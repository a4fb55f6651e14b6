/* Helpers of the whole-database export tests: SQL on the test servers
 * through their own blocking client libraries (never through dbpipe, which
 * is what the tests look at), schemas of a test's own, running `dbpipe
 * export` with a list of arguments, and reading the files it wrote back as
 * lines. */
#ifndef DBPIPE_TESTS_WDTEST_H
#define DBPIPE_TESTS_WDTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clitest.h"

/* ---- SQL on the servers ---- */

/* Runs one statement on the process's own connection to the main server
 * of `kind` (DBT_PG or DBT_MY; opened on first use, UTF-8), failing the
 * test with the server's message on error. */
void wd_exec(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same without failing: 0, or -1 with the server's message in err. */
int wd_try_exec(int kind, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first value of the first row of a query, malloc'd ("" for NULL or no
 * row); fails the test on error. */
char *wd_value(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs one statement on a connection of its own to the server that `dsn`
 * names (a fixture DSN of either kind), then closes it. 0 or -1 with the
 * message in err. */
int wd_exec_dsn(const char *dsn, char *err, size_t errlen, const char *sql);

/* The first value of a query on a connection of its own to `dsn`. */
char *wd_value_dsn(const char *dsn, const char *sql);

/* Closes the connections wd_exec opened. */
void wd_disconnect(void);

/* ---- schemas of the test's own ---- */

/* "dbpwd_<pid>_<tag>": a schema (MariaDB: a database, utf8mb4) made
 * afresh for the running test, dropped by wd_drop_schemas. The name lives
 * until then. The fixture lets its user make them on MariaDB (scripts/dbs
 * grants dbpwd\_%). */
const char *wd_schema(int kind, const char *tag);

/* Drops every schema wd_schema made in this process (on every server). */
void wd_drop_schemas(void);

/* The identifier quoted for the dialect: "a""b" or `a``b`. */
void wd_quote(int kind, const char *ident, char *out, size_t len);

/* ---- running dbpipe ---- */

/* Runs `dbpipe ARGS...` (a NULL-terminated list) in `cwd` to its end and
 * returns its exit code; the caller frees p with proc_free. */
int wd_cli(proc *p, const char *cwd, ...) __attribute__((sentinel));

/* The same with the arguments in an array. */
int wd_cli_v(proc *p, const char *cwd, const char *const *argv);

/* ---- files and lines ---- */

typedef struct wd_list {
  size_t n;
  char **v;
} wd_list;

void wd_list_add(wd_list *l, const char *s, size_t n);
void wd_list_sort(wd_list *l);
void wd_list_free(wd_list *l);

/* The regular files under `dir`, recursively, as paths, sorted. Any other
 * kind of entry (a symbolic link, a FIFO) is listed too, with "?" in front,
 * so that a test can see it. */
void wd_files(const char *dir, wd_list *out);

/* Reads a CSV file of dbpipe's (decompressed by its name) whose values hold
 * no line breaks: its first line into *header (malloc'd; NULL for an empty
 * file) and every other line, appended, into *lines. False when the file
 * cannot be read. */
bool wd_csv_lines(const char *path, char **header, wd_list *lines);

/* Compares two lists sorted: the same lines, each as often. On a
 * difference, logs what one has that the other lacks (a few) and returns
 * false. */
bool wd_same_lines(wd_list *got, wd_list *want, const char *what);

/* The sum of field `col` (0-based, numbers) over CSV data lines without
 * quoted commas. */
long long wd_sum_field(const wd_list *lines, size_t col);

/* The SHA-256 of a file, by sha256sum ("" if it cannot be read). */
void wd_sha256(const char *path, char out[65]);

/* ---- manifests ---- */

/* Reads and parses a manifest; fails the test if it is missing or not
 * JSON. Free with j_free and free(*text). */
void wd_manifest(const char *path, jv *m, char **text);

/* The task of a manifest that exported table "schema.table" (its "table"
 * key), or NULL. */
jv *wd_task_of_table(jv *m, const char *schema, const char *name);

/* Checks every file a manifest task lists: it exists, its size and
 * sha256 are the ones recorded, and the rows add up to the task's. */
void wd_check_task_files(jv *task);

#endif /* DBPIPE_TESTS_WDTEST_H */
