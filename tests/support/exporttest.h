/* Helpers shared by the export tests: run an export in a coroutine against
 * a real server, fetch the same query's rows as a reference, read files back
 * (decompressing .gz / .zst), and parse CSV, TSV and JSON Lines with small
 * parsers of the tests' own (so the library does not check itself). */
#ifndef DBPIPE_TESTS_EXPORTTEST_H
#define DBPIPE_TESTS_EXPORTTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "dbpipe.h"

/* ---- a growable string ---- */

typedef struct tstr {
  char *p;
  size_t n, cap;
} tstr;

void ts_add(tstr *s, const void *p, size_t n);
void ts_addc(tstr *s, char c);
void ts_adds(tstr *s, const char *z);

/* ---- a table of text cells ---- */

typedef struct cell {
  char *v; /* NULL = SQL NULL */
  size_t n;
  int kind;  /* JSON: 'n'ull 's'tring 'd'igits 'b'ool 'j'son; text formats: 0 */
  char *raw; /* JSON: the value's text as written */
} cell;

typedef struct table {
  size_t ncols, nrows;
  char **names;
  dbp_type *types;
  cell *cells; /* nrows * ncols */
  size_t cap;
} table;

/* Grows an array geometrically so that appending n items costs O(n) (a
 * realloc per item is quadratic under AddressSanitizer, which copies on
 * every realloc). */
void *grow_array(void *p, size_t need, size_t *cap, size_t size);

void table_free(table *t);
char *memdup0(const char *p, size_t n);

/* The rows of `sql` as dbp_query/dbp_fetch return them: the reference. */
int ref_query(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params, table *t);

/* The text a value should have in the output: binary as \x + hex. */
char *expected_text(const table *t, size_t r, size_t i, size_t *n);

/* ---- files ---- */

bool ends_with(const char *s, const char *suffix);
char *read_raw(const char *path, size_t *len);

/* Reads a file, decompressing it by its name (.gz with zlib, .zst with
 * libzstd); checks the stream is complete. */
char *read_output(const char *path, size_t *len);

/* Entries of a directory ("." and ".." excluded). */
int count_entries(const char *dir);

/* Temporary files beside `final` (FINAL.<16 hex digits>.part in its
 * directory), as the writer names them. */
int temps_beside(const char *final);

/* The test's temporary directory, made by make_tmp. */
extern char g_tmp[64];

void make_tmp(void);
void remove_tmp(void);
const char *tmp_path(const char *name);

/* ---- parsers ---- */

/* CSV as COPY writes it: "..." with doubled quotes; an empty unquoted field
 * is NULL (with the default NULL string). */
void parse_csv(const char *s, size_t n, char delim, bool crlf, table *t, bool header);

void text_unescape(const char *p, size_t n, tstr *out);

/* PostgreSQL's text format: tab-separated, \N for NULL, backslash escapes. */
void parse_tsv(const char *s, size_t n, bool crlf, table *t, bool header);

void put_utf8(tstr *o, unsigned cp);
unsigned hex4(const char *p);

/* A JSON string at s[*i] (the quote): decoded into out. */
void json_string(const char *s, size_t n, size_t *i, tstr *out);

/* Skips one JSON value (object, array, string, literal, number). */
void json_skip(const char *s, size_t n, size_t *i);

/* JSON Lines: one flat object per line; values keep their kind. */
void parse_jsonl(const char *s, size_t n, bool crlf, table *t);

bool is_json_number(const char *s);

/* Compares an exported table with the reference, cell by cell, by the rules
 * of the format. */
void compare_tables(const table *got, const table *ref, dbp_format fmt, bool names,
                    const char *what);

/* Parses an export's bytes in its format. */
void parse_output(const char *s, size_t n, const dbp_export_options *o, dbp_format fmt, table *t);

/* ---- running exports ---- */

typedef struct xjob {
  int kind; /* DBT_PG / DBT_MY */
  const char *sql;
  size_t nparams;
  const dbp_param *params;
  const char *path;
  dbp_export_options o;
  bool want_ref;        /* also fetch the rows with dbp_query */
  const char *copy_sql; /* also fetch this COPY's bytes */
  /* Results. */
  int rc;
  dbp_export_result res;
  table ref;
  tstr copy;
  bool conn_idle_after; /* SELECT 1 works on the connection afterwards */
} xjob;

dbp_conn *open_conn(dbp_rt *rt, int kind);
int fetch_copy(dbp_conn *c, const char *copy_sql, tstr *out);
int body_export(dbp_rt *rt, void *arg);
void xjob_free(xjob *j);

/* sha256sum's digest of a file. */
void sha256sum(const char *path, char out[65]);

#endif /* DBPIPE_TESTS_EXPORTTEST_H */
