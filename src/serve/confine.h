/* Internal: keeping a job posted to `dbpipe serve` inside the server's
 * root directory. Not installed.
 *
 * A job that arrives over HTTP names its output files; the server writes
 * them only under --root. dbp_serve_parse_job reads the job text with
 * relative paths resolved against the root and without the server's
 * environment (a ${VAR} in a posted job must not read the server's
 * secrets), then dbp_serve_confine checks every path the run will write:
 * each task's output and the manifest must lie below the root, reached
 * without a ".." or "." component and without a symbolic link on the
 * way, and an existing final file must be a regular file. The checks are
 * lexical first (nothing leaves the root by its text) and then on disk
 * (lstat of every existing component from the root down). */
#ifndef DBPIPE_SERVE_CONFINE_H
#define DBPIPE_SERVE_CONFINE_H

#include <stddef.h>

#include "dbpipe/job.h"

/* The root as the server uses it: realpath of `dir`, which must be an
 * existing directory. Returns a malloc'd string, or NULL with errno set. */
char *dbp_serve_root(const char *dir);

/* Parses a posted job: `name` labels it in diagnostics, relative paths
 * resolve against `root` (as dbp_serve_root gave it), and ${VAR} sees no
 * variable at all (every reference is an error naming it). Returns what
 * dbp_job_parse returns. */
int dbp_serve_parse_job(const char *text, size_t len, const char *name, const char *root,
                        dbp_job **out, dbp_job_diag *diag);

/* Checks that everything `job` writes stays under `root`. Returns 0, or
 * DBP_EACCES with a message in err naming the task (or the manifest), the
 * path and why: outside the root, a ".." or "." component, a symbolic link
 * at the named component, a final file that exists and is not a regular
 * file, or standard output ("-"), which a server has no use for. */
int dbp_serve_confine(const dbp_job *job, const char *root, char *err, size_t errlen);

/* The same check for one path (the manifest's, a task's); `what` names it
 * in the message. */
int dbp_serve_confine_path(const char *path, const char *root, const char *what, char *err,
                           size_t errlen);

#endif /* DBPIPE_SERVE_CONFINE_H */
