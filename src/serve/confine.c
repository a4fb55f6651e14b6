/* Keeping a posted job's files under the server's root (confine.h). */
#include "serve/confine.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *dbp_serve_root(const char *dir) {
  char *r = realpath(dir, NULL);
  if (r == NULL) return NULL;
  struct stat st;
  if (stat(r, &st) != 0 || !S_ISDIR(st.st_mode)) {
    free(r);
    errno = ENOTDIR;
    return NULL;
  }
  return r;
}

/* A posted job reads no variable of the server's. */
static const char *no_env(const char *name, void *ud) {
  (void)name;
  (void)ud;
  return NULL;
}

int dbp_serve_parse_job(const char *text, size_t len, const char *name, const char *root,
                        dbp_job **out, dbp_job_diag *diag) {
  dbp_job_options o = {.getenv = no_env, .dir = root};
  return dbp_job_parse(text, len, name, &o, out, diag);
}

static int refuse(char *err, size_t errlen, const char *what, const char *path, const char *why) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s: %s: %s", what, path, why);
  return DBP_EACCES;
}

int dbp_serve_confine_path(const char *path, const char *root, const char *what, char *err,
                           size_t errlen) {
  if (path == NULL) return 0;
  if (strcmp(path, "-") == 0)
    return refuse(err, errlen, what, path, "standard output is not a file the server can keep");
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/') rl--;
  bool at_root_slash = rl == 1 && root[0] == '/';
  if (strncmp(path, root, rl) != 0 || (!at_root_slash && path[rl] != '/'))
    return refuse(err, errlen, what, path, "outside the server's root directory");
  const char *rest = path + (at_root_slash ? 1 : rl + 1);
  if (*rest == '\0') return refuse(err, errlen, what, path, "names the root directory itself");
  /* Walk the components below the root: lexically, then on disk for as
   * long as they exist. */
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) return refuse(err, errlen, what, path, "path too long");
  memcpy(buf, path, strlen(path) + 1);
  size_t at = (size_t)(rest - path);
  bool exists = true;
  for (;;) {
    const char *comp = buf + at;
    const char *slash = strchr(comp, '/');
    size_t n = slash ? (size_t)(slash - comp) : strlen(comp);
    bool last = slash == NULL || comp[n + 1] == '\0';
    if (n == 0) return refuse(err, errlen, what, path, "an empty path component (//)");
    if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
      return refuse(err, errlen, what, path, "a \".\" or \"..\" component");
    if (exists) {
      char save = buf[at + n];
      buf[at + n] = '\0';
      struct stat st;
      if (lstat(buf, &st) != 0) {
        if (errno != ENOENT) return refuse(err, errlen, what, path, strerror(errno));
        exists = false; /* what follows is created by the run */
      } else if (S_ISLNK(st.st_mode)) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "%s is a symbolic link", buf);
        buf[at + n] = save;
        return refuse(err, errlen, what, path, why);
      } else if (!last && !S_ISDIR(st.st_mode)) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "%s is not a directory", buf);
        buf[at + n] = save;
        return refuse(err, errlen, what, path, why);
      } else if (last && !S_ISREG(st.st_mode)) {
        buf[at + n] = save;
        return refuse(err, errlen, what, path, "exists and is not a regular file");
      }
      buf[at + n] = save;
    }
    if (slash == NULL || last) break;
    at += n + 1;
  }
  if (path[strlen(path) - 1] == '/')
    return refuse(err, errlen, what, path, "names a directory, not a file");
  return 0;
}

int dbp_serve_confine(const dbp_job *job, const char *root, char *err, size_t errlen) {
  for (size_t i = 0; i < job->ntasks; i++) {
    char what[200];
    snprintf(what, sizeof what, "task %s", job->tasks[i].name);
    int rc = dbp_serve_confine_path(job->tasks[i].path, root, what, err, errlen);
    if (rc != 0) return rc;
  }
  return dbp_serve_confine_path(job->manifest, root, "the manifest", err, errlen);
}
