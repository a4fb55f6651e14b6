/* A hash set of strings for the job loader (duplicate names and paths). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/job_internal.h"

static uint64_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

long dbp__strset_find(const dbp__strset *set, const char *key) {
  if (set->cap == 0) return -1;
  for (size_t i = (size_t)str_hash(key) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
    if (set->keys[i] == NULL) return -1;
    if (strcmp(set->keys[i], key) == 0) return (long)set->vals[i];
  }
}

bool dbp__strset_add(dbp__strset *set, const char *key, size_t val) {
  if ((set->count + 1) * 2 > set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 64;
    const char **keys = calloc(cap, sizeof *keys);
    size_t *vals = calloc(cap, sizeof *vals);
    if (keys == NULL || vals == NULL) {
      free(keys);
      free(vals);
      return false;
    }
    for (size_t i = 0; i < set->cap; i++) {
      if (set->keys[i] == NULL) continue;
      size_t j = (size_t)str_hash(set->keys[i]) & (cap - 1);
      while (keys[j] != NULL) j = (j + 1) & (cap - 1);
      keys[j] = set->keys[i];
      vals[j] = set->vals[i];
    }
    free(set->keys);
    free(set->vals);
    set->keys = keys;
    set->vals = vals;
    set->cap = cap;
  }
  size_t i = (size_t)str_hash(key) & (set->cap - 1);
  while (set->keys[i] != NULL) {
    if (strcmp(set->keys[i], key) == 0) return true;
    i = (i + 1) & (set->cap - 1);
  }
  set->keys[i] = key;
  set->vals[i] = val;
  set->count++;
  return true;
}

void dbp__strset_free(dbp__strset *set) {
  free(set->keys);
  free(set->vals);
  *set = (dbp__strset){0};
}
