/* Reading a job file from disk for the loader (dbp_job_parse). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

#define JOB_MAX_FILE_BYTES (16u << 20)

int dbp_job_load(const char *path, const dbp_job_options *opts, dbp_job **out, dbp_job_diag *diag) {
  static const dbp_job_options no_opts;
  *out = NULL;
  *diag = (dbp_job_diag){0};
  int rc;
  char *text = NULL, *dir = NULL;
  int err = 0;
  /* Opened without blocking and checked before reading: a FIFO or a device
   * would otherwise hang the loader or feed it endless input. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    err = errno;
    rc = err == ENOENT ? DBP_ENOENT : err == EACCES ? DBP_EACCES : DBP_EIO;
    goto fail;
  }
  struct stat st = {0};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    bool is_dir = S_ISDIR(st.st_mode);
    close(fd);
    diag->file = strdup(path);
    dbp__job_diag_add(
        diag, 0, 0, "cannot read the job file: %s",
        is_dir ? "it is a directory" : "it is not a regular file (a FIFO, device or socket)");
    return DBP_EIO;
  }
  /* A regular file never blocks; reads go back to the ordinary mode. */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (f == NULL) {
    err = errno;
    close(fd);
    rc = DBP_ENOMEM;
    goto fail;
  }
  text = malloc(JOB_MAX_FILE_BYTES + 1);
  if (text == NULL) {
    fclose(f);
    return DBP_ENOMEM;
  }
  size_t n = fread(text, 1, JOB_MAX_FILE_BYTES + 1, f);
  bool bad = ferror(f) != 0;
  int e = errno;
  fclose(f);
  if (bad || n > JOB_MAX_FILE_BYTES) {
    free(text);
    text = NULL;
    if (bad) {
      err = e;
      rc = dbp_err_from_errno(-e) == DBP_EACCES ? DBP_EACCES : DBP_EIO;
      goto fail;
    }
    diag->file = strdup(path);
    dbp__job_diag_add(diag, 0, 0, "the file is larger than %u MiB", JOB_MAX_FILE_BYTES >> 20);
    return DBP_EJOB;
  }

  dbp_job_options o = opts != NULL ? *opts : no_opts;
  if (o.dir == NULL) {
    /* Relative paths in the job are relative to the job file. */
    char *copy = strdup(path);
    if (copy == NULL) {
      free(text);
      return DBP_ENOMEM;
    }
    char *slash = strrchr(copy, '/');
    const char *d = slash == NULL ? "." : slash == copy ? "/" : (*slash = '\0', copy);
    dir = realpath(d, NULL);
    if (dir == NULL) dir = strdup(d);
    free(copy);
    if (dir == NULL) {
      free(text);
      return DBP_ENOMEM;
    }
    o.dir = dir;
  }
  rc = dbp_job_parse(text, n, path, &o, out, diag);
  free(text);
  free(dir);
  return rc;

fail:
  diag->file = strdup(path);
  if (diag->file != NULL) {
    dbp__job_diag_add(diag, 0, 0, "cannot read the job file: %s", strerror(err));
  }
  return rc;
}
