/* Helpers for the tests of the dbpipe executable: spawning it (on pipes or
 * a pseudo-terminal), temporary directories, a small JSON reader and direct
 * queries to the test servers. */
#ifndef DBPIPE_TESTS_CLITEST_H
#define DBPIPE_TESTS_CLITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- small utilities ---- */

/* Monotonic milliseconds. */
uint64_t now_ms(void);

/* The dbpipe binary under test (DBPIPE_BIN, which ctest sets). */
const char *cli_bin(void);

/* A fresh directory under /tmp; the caller removes it with rm_rf. */
void make_tmpdir(char *buf, size_t len);
void rm_rf(const char *path);
bool exists(const char *fmt, ...);

/* Counts the entries of a directory tree whose name ends in `suffix`. */
int count_suffix(const char *dir, const char *suffix);
void write_file(const char *path, const char *fmt, ...);

/* The whole file as a string (malloc'd), NULL if it cannot be read. */
char *read_file(const char *path);

/* The SHA-256 of a file, through sha256sum. */
void sha256_file(const char *path, char out[65]);

/* Sets DBPIPE_PG_DSN and DBPIPE_MY_DSN for the child processes (the DSNs may
 * come from the fixture's env file rather than the environment). */
void export_dsns(void);

/* ---- running the binary ---- */

typedef struct proc {
  pid_t pid;
  int out_fd, err_fd; /* -1 once at EOF; with a pty both are the master */
  bool pty;
  char *out, *err;
  size_t out_len, err_len;
  int status; /* exit code, 128+signal, or -1 while running */
} proc;

void buf_add(char **buf, size_t *len, const char *p, size_t n);

/* Starts `dbpipe argv...` in directory `cwd` (NULL = here). With `pty` its
 * stdout and stderr are a pseudo-terminal of 120x40 characters. */
void proc_start(proc *p, const char *cwd, bool pty, const char *const *argv);

/* Reads whatever arrives within timeout_ms. Returns false once both streams
 * are at EOF. */
bool proc_pump(proc *p, int timeout_ms);

/* Waits up to timeout_ms for the process to end, collecting its output.
 * Returns its exit code (128+N for a signal), or -1 after killing it on
 * timeout. */
int proc_wait(proc *p, int timeout_ms);
void proc_free(proc *p);

/* Runs dbpipe to the end (at most 60 s) and returns its exit code. */
int run_cli(proc *p, const char *cwd, const char *const *argv);

/* ---- a small JSON reader ---- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
  int t;
  bool b;
  double num;
  char *s;          /* J_STR */
  size_t n;         /* items in J_ARR / J_OBJ */
  struct jv *items; /* values */
  char **keys;      /* J_OBJ */
} jv;

const char *j_ws(const char *p);
const char *j_string(const char *p, char **out);
const char *j_value(const char *p, jv *out);
void j_free(jv *v);

/* Parses a whole JSON document; false if it is not valid JSON. */
bool j_parse(const char *text, jv *out);
jv *j_get(jv *obj, const char *key);
const char *j_str(jv *obj, const char *key);
double j_num(jv *obj, const char *key);

/* The task object called `name` in a manifest. */
jv *manifest_task(jv *m, const char *name);

/* ---- looking at the servers ---- */

/* Number of statements running on PostgreSQL whose text contains `marker`
 * (other than this query). */
int pg_running(const char *marker);

/* The same on MariaDB, from the process list. */
int my_running(const char *marker);

#endif /* DBPIPE_TESTS_CLITEST_H */
