/* Helpers shared by the atomic file writer's tests (tests/unit/test_writer*.c):
 * a test directory per test, the writer's temporary names, test data, and a
 * writer run from start to commit or abort.
 *
 * Each test file declares the suite with the same options:
 *   TestSuite(writer, .init = tmpdir_make, .fini = tmpdir_remove, .timeout = 120);
 * count_entries and sha256sum come from exporttest.h. */
#ifndef DBPIPE_TESTS_WRITERTEST_H
#define DBPIPE_TESTS_WRITERTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dbpipe/rt.h"
#include "export/writer.h"
#include "exporttest.h"
#include "rttest.h"

/* ---- the test directory and the files in it ---- */

/* The test's own directory, made by tmpdir_make and removed, with all in
 * it, by tmpdir_remove (the suite's .init and .fini). */
extern char tmpdir[64];

void tmpdir_make(void);
void tmpdir_remove(void);

/* tmpdir/name, in one of four buffers used in turn. */
char *in_tmp(const char *name);

bool path_exists(const char *path);

/* Counts the temporary files beside `final` (its directory, its name);
 * copies the first one's path to out when out is not NULL. */
int temps_of(const char *final, char *out, size_t outlen);

/* Temporary files of any target in the test directory. */
int count_temps(void);

void write_text(const char *path, const char *text);

/* Deterministic test data: lines of pseudo-random words, compressible but
 * not trivially so (for the caller to free). */
char *make_data(size_t n);

/* ---- a writer from start to end ---- */

typedef struct {
  const char *path;
  dbp__writer_options o;
  const char *data;
  size_t len;
  size_t piece; /* bytes per write call */
  int parts;    /* files to write (split) */
  bool abort;   /* abort instead of commit */
  bool part_seen, final_seen_early;
  char tmp_name[300]; /* the first file's temporary name while it was open */
  mode_t tmp_mode;
  dbp_export_file *files;
  size_t nfiles;
  int err;
  char msg[256];
} wcase;

/* Writes c->data (c->parts times, as parts) and commits or aborts. While
 * the first file is open, notes whether one temporary file exists beside
 * NAME (its name and mode) and NAME not. A dbt_body_fn. */
int body_write(dbp_rt *rt, void *arg);

void free_files(wcase *c);

/* Runs body in a coroutine of a fresh runtime without Criterion's asserts
 * (for forked children). Returns the body's code. */
int run_plain(dbt_body_fn body, void *arg);

#endif /* DBPIPE_TESTS_WRITERTEST_H */
