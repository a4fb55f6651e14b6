/* The names beside an export's target and the checks on them: which file
 * names are temporary files or numbered parts of a target, what a target
 * may be, and the removal of temporary files that dead writers left (the
 * scheme is described in writer.h). Everything here runs on the thread
 * pool or touches nothing (dbp_export_check_target). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/export_int.h"
#include "export/writer.h"

#define TMP_EXTRA (1 + DBP__TOKEN_LEN + 5)

char *dbp__str_cat(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *s = malloc(na + nb + 1);
  if (s == NULL) return NULL;
  memcpy(s, a, na);
  memcpy(s + na, b, nb + 1);
  return s;
}

char *dbp__dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return dbp__str_cat(".", "");
  char *d = dbp__str_cat(path, "");
  if (d != NULL) d[slash == path ? 1 : slash - path] = '\0';
  return d;
}

/* ---- names ---- */

/* A target's file name split the way dbp__part_path splits it: the part
 * number goes between stem and extensions. */
typedef struct tname {
  const char *base; /* the last component of the path */
  size_t nbase;
  size_t stem; /* length of the stem within base */
} tname;

static tname tname_of(const char *path) {
  const char *slash = strrchr(path, '/');
  tname t;
  t.base = slash ? slash + 1 : path;
  t.nbase = strlen(t.base);
  t.stem = dbp__path_split_ext(t.base, NULL, NULL);
  return t;
}

/* When name[0..n) is the name of part k of the target ("out-00003.csv.gz"
 * for "out.csv.gz", exactly as dbp__part_path spells it), returns k; else 0. */
static unsigned part_index(const tname *t, const char *name, size_t n) {
  size_t ext = t->nbase - t->stem;
  if (n < t->nbase + 6 || memcmp(name, t->base, t->stem) != 0 || name[t->stem] != '-' ||
      memcmp(name + n - ext, t->base + t->stem, ext) != 0)
    return 0;
  const char *d = name + t->stem + 1;
  size_t nd = n - ext - t->stem - 1;
  if (nd > 10) return 0;
  unsigned long v = 0;
  for (size_t i = 0; i < nd; i++) {
    if (d[i] < '0' || d[i] > '9') return 0;
    v = v * 10 + (unsigned long)(d[i] - '0');
  }
  if (v == 0 || v > UINT_MAX) return 0;
  char num[16];
  int k = snprintf(num, sizeof num, "%05lu", v);
  return (size_t)k == nd && memcmp(num, d, nd) == 0 ? (unsigned)v : 0;
}

enum { TMP_NONE = 0, TMP_LOCK = 1, TMP_LATER = 2 };

/* Classifies a directory entry: a temporary name of the target that holds
 * its token's lock (the plain file, or part 1 of a split export:
 * TMP_LOCK), a temporary name of a later part (TMP_LATER), or neither.
 * Points *tok at the token within name. */
static int tmp_kind(const tname *t, const char *name, const char **tok) {
  size_t n = strlen(name);
  if (n <= TMP_EXTRA || strcmp(name + n - 5, ".part") != 0 || name[n - TMP_EXTRA] != '.')
    return TMP_NONE;
  const char *k = name + n - TMP_EXTRA + 1;
  for (size_t i = 0; i < DBP__TOKEN_LEN; i++) {
    if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f'))) return TMP_NONE;
  }
  *tok = k;
  size_t m = n - TMP_EXTRA;
  if (m == t->nbase && memcmp(name, t->base, m) == 0) return TMP_LOCK;
  unsigned idx = part_index(t, name, m);
  return idx == 0 ? TMP_NONE : idx == 1 ? TMP_LOCK : TMP_LATER;
}

void dbp__remove_parts_past(const char *path, unsigned last) {
  for (unsigned k = last + 1;; k++) {
    char *stale = dbp__part_path(path, k);
    struct stat st;
    bool there = stale != NULL && lstat(stale, &st) == 0;
    if (there && S_ISREG(st.st_mode)) unlink(stale);
    free(stale);
    if (!there) break;
  }
}

int dbp__new_token(char out[DBP__TOKEN_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[DBP__TOKEN_LEN / 2];
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t k = getrandom(r + got, sizeof r - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno;
    got += (size_t)k;
  }
  for (size_t i = 0; i < sizeof r; i++) {
    out[2 * i] = hex[r[i] >> 4];
    out[2 * i + 1] = hex[r[i] & 15];
  }
  out[DBP__TOKEN_LEN] = '\0';
  return 0;
}

/* ---- target checks ---- */

const char *dbp__file_kind(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "a special file";
}

const char *dbp__not_regular(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
  return dbp__file_kind(st.st_mode);
}

/* Is path standard output's name, or a link to it? Then "-" is meant. */
static bool names_stdout(const char *path) {
  if (strcmp(path, "/dev/stdout") == 0) return true;
  char to[32];
  ssize_t n = readlink(path, to, sizeof to - 1);
  if (n < 0) return false;
  to[n] = '\0';
  return strcmp(to, "/dev/stdout") == 0 || strcmp(to, "/proc/self/fd/1") == 0 ||
         strcmp(to, "/dev/fd/1") == 0;
}

void dbp__refusal(char *buf, size_t len, const char *path, const char *kind) {
  snprintf(buf, len, "refusing to write %s: it is %s, not a regular file%s", path, kind,
           names_stdout(path) ? " (use - for standard output)" : "");
}

int dbp__check_target(const char *path, bool split, char *buf, size_t len) {
  if (path == NULL || *path == '\0') {
    snprintf(buf, len, "the output path is empty");
    return DBP_EINVAL;
  }
  if (strcmp(path, "-") == 0) {
    if (!split) return 0;
    snprintf(buf, len, "standard output (-) cannot be split into parts");
    return DBP_EINVAL;
  }
  if (path[strlen(path) - 1] == '/') {
    snprintf(buf, len, "the output path %s names a directory, not a file", path);
    return DBP_EINVAL;
  }
  if (!split) {
    const char *kind = dbp__not_regular(path);
    if (kind == NULL) return 0;
    dbp__refusal(buf, len, path, kind);
    return DBP_EINVAL;
  }
  /* Split: every numbered part name that exists in the directory. */
  char *dir = dbp__dir_of(path);
  DIR *d = dir ? opendir(dir) : NULL;
  free(dir);
  if (d == NULL) return 0;
  tname t = tname_of(path);
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    unsigned k = part_index(&t, e->d_name, strlen(e->d_name));
    struct stat st;
    if (k == 0 || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        S_ISREG(st.st_mode))
      continue;
    char *part = dbp__part_path(path, k);
    dbp__refusal(buf, len, part ? part : path, dbp__file_kind(st.st_mode));
    free(part);
    rc = DBP_EINVAL;
  }
  closedir(d);
  return rc;
}

/* ---- stale temporary files ---- */

/* Opens a directory entry to look at it: never follows a symbolic link,
 * never waits on a FIFO. */
static int open_entry(int dfd, const char *name) {
  return openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

/* True when the file open as fd is a regular file of ours that no writer
 * holds locked; then this process holds the lock until fd is closed. */
static bool unlocked_own(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) return false;
  return flock(fd, LOCK_EX | LOCK_NB) == 0;
}

typedef struct stale_name {
  char *name;
  int kind;
  const char *tok; /* into name */
} stale_name;

void dbp__remove_stale(const char *dir, const char *path) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  tname t = tname_of(path);
  stale_name *v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *tok;
    int kind = tmp_kind(&t, e->d_name, &tok);
    if (kind == TMP_NONE) continue;
    if (n == cap) {
      size_t c = cap ? 2 * cap : 8;
      stale_name *g = realloc(v, c * sizeof *g);
      if (g == NULL) break;
      v = g;
      cap = c;
    }
    char *copy = dbp__str_cat(e->d_name, "");
    if (copy == NULL) break;
    v[n++] = (stale_name){copy, kind, copy + (tok - e->d_name)};
  }
  int dfd = dirfd(d);
  char *first = dbp__part_path(t.base, 1);
  for (int pass = TMP_LATER; pass >= TMP_LOCK; pass--) {
    for (size_t i = 0; i < n; i++) {
      if (v[i].kind != pass) continue;
      int fd = open_entry(dfd, v[i].name);
      if (fd < 0) continue;
      bool dead = unlocked_own(fd);
      int lfd = -1;
      if (dead && pass == TMP_LATER && first != NULL) {
        char lock[NAME_MAX + 1];
        snprintf(lock, sizeof lock, "%s.%.*s.part", first, DBP__TOKEN_LEN, v[i].tok);
        lfd = open_entry(dfd, lock);
        struct stat st;
        if (lfd >= 0 && fstat(lfd, &st) == 0 && S_ISREG(st.st_mode) &&
            flock(lfd, LOCK_EX | LOCK_NB) != 0)
          dead = false;
      }
      if (dead) unlinkat(dfd, v[i].name, 0);
      if (lfd >= 0) close(lfd);
      close(fd);
    }
  }
  free(first);
  for (size_t i = 0; i < n; i++) free(v[i].name);
  free(v);
  closedir(d);
}

/* ---- public ---- */

int dbp_export_check_target(const char *path, bool split, char *errbuf, size_t errlen) {
  char msg[512] = "";
  int rc = dbp__check_target(path, split, msg, sizeof msg);
  if (errbuf != NULL && errlen > 0) snprintf(errbuf, errlen, "%s", msg);
  return rc;
}
