/* Helpers shared by the atomic file writer's tests: see writertest.h. */
#include "writertest.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the test directory and the files in it ---- */

char tmpdir[64];

void tmpdir_make(void) {
  strcpy(tmpdir, "/tmp/dbp-writer-XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

void tmpdir_remove(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) cr_log_warn("could not remove %s", tmpdir);
}

char *in_tmp(const char *name) {
  static char buf[4][256];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  return p;
}

bool path_exists(const char *path) {
  return access(path, F_OK) == 0;
}

/* Is name[0..) FINALBASE "." 16 lowercase hex digits ".part"? With base
 * NULL, any final name. */
static bool is_temp_name(const char *name, const char *base) {
  size_t n = strlen(name);
  if (n <= 22 || strcmp(name + n - 5, ".part") != 0 || name[n - 22] != '.') return false;
  for (size_t i = n - 21; i < n - 5; i++) {
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return false;
  }
  return base == NULL || (strlen(base) == n - 22 && strncmp(name, base, n - 22) == 0);
}

/* Counts the temporary files beside `final` (its directory, its name);
 * copies the first one's path to out when out is not NULL. */
int temps_of(const char *final, char *out, size_t outlen) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s", final);
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  const char *base = strrchr(final, '/') + 1;
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_temp_name(e->d_name, base)) continue;
    if (n++ == 0 && out != NULL) snprintf(out, outlen, "%.200s/%.80s", dir, e->d_name);
  }
  closedir(d);
  return n;
}

/* Temporary files of any target in the test directory. */
int count_temps(void) {
  DIR *d = opendir(tmpdir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += is_temp_name(e->d_name, NULL);
  closedir(d);
  return n;
}

void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

/* Deterministic test data: lines of pseudo-random words, compressible but
 * not trivially so. */
char *make_data(size_t n) {
  static const char *words[] = {"alpha", "beta", "gamma", "delta", "épsilon", "ζ",
                                "山田",  "42",   "-0.50", "\"q\"", "x,y"};
  char *p = malloc(n);
  uint32_t s = 12345;
  size_t i = 0;
  while (i < n) {
    s = s * 1103515245 + 12345;
    const char *w = words[(s >> 16) % 11];
    size_t k = strlen(w);
    for (size_t j = 0; j < k && i < n; j++) p[i++] = w[j];
    if (i < n) p[i++] = (s >> 8) % 7 == 0 ? '\n' : ',';
  }
  return p;
}

/* ---- a writer from start to end ---- */

/* Writes c->data (c->parts times, as parts) and commits or aborts. While
 * the first file is open, notes whether one temporary file exists beside
 * NAME (its name and mode) and NAME not. */
int body_write(dbp_rt *rt, void *arg) {
  wcase *c = arg;
  dbp__writer *w;
  int rc = dbp__writer_new(rt, c->path, &c->o, &w);
  if (rc != 0) return rc;
  int parts = c->parts ? c->parts : 1;
  for (int p = 0; p < parts && rc == 0; p++) {
    rc = dbp__writer_begin(w);
    for (size_t off = 0; rc == 0 && off < c->len; off += c->piece) {
      size_t k = c->len - off < c->piece ? c->len - off : c->piece;
      rc = dbp__writer_write(w, c->data + off, k);
    }
    if (rc == 0) rc = dbp__writer_end(w, (uint64_t)p + 10);
    if (rc == 0 && p == 0) {
      /* Let the background writer create the file. */
      for (int i = 0; i < 50; i++) dbp_sleep(rt, 1);
      const char *first = c->o.split ? in_tmp("out-00001.csv") : c->path;
      c->part_seen = temps_of(first, c->tmp_name, sizeof c->tmp_name) == 1;
      struct stat st;
      if (c->part_seen && lstat(c->tmp_name, &st) == 0) c->tmp_mode = st.st_mode;
      c->final_seen_early = path_exists(c->o.split ? in_tmp("out-00001.csv") : c->path);
    }
  }
  if (rc == 0 && !c->abort) rc = dbp__writer_commit(w);
  if (rc != 0 || c->abort) {
    dbp__writer_abort(w);
    c->err = dbp__writer_error(w, c->msg, sizeof c->msg);
  } else {
    c->files = dbp__writer_take_files(w, &c->nfiles);
  }
  dbp__writer_free(w);
  return rc;
}

void free_files(wcase *c) {
  for (size_t i = 0; i < c->nfiles; i++) free(c->files[i].path);
  free(c->files);
}

typedef struct plain_call {
  dbt_body_fn body;
  void *arg;
  dbp_rt *rt;
  int rc;
} plain_call;

static int plain_entry(void *arg, void **result) {
  (void)result;
  plain_call *c = arg;
  c->rc = c->body(c->rt, c->arg);
  return 0;
}

int run_plain(dbt_body_fn body, void *arg) {
  plain_call c = {body, arg, NULL, 100};
  if (dbp_rt_new(&c.rt, NULL, NULL) != 0) return 101;
  if (dbp_spawn(c.rt, NULL, plain_entry, &c, &(dbp_spawn_options){.detached = true}) != 0)
    return 102;
  dbp_rt_run(c.rt);
  dbp_rt_free(c.rt);
  return c.rc;
}
