/* Output format and compression names, and picking them from a file name. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbpipe/export.h"
#include "export/export_int.h"

const char *dbp_format_name(dbp_format f) {
  switch (f) {
    case DBP_FMT_AUTO:
      return "auto";
    case DBP_FMT_CSV:
      return "csv";
    case DBP_FMT_TSV:
      return "tsv";
    case DBP_FMT_JSONL:
      return "jsonl";
  }
  return "unknown";
}

const char *dbp_compression_name(dbp_compression c) {
  switch (c) {
    case DBP_COMP_AUTO:
      return "auto";
    case DBP_COMP_NONE:
      return "none";
    case DBP_COMP_GZIP:
      return "gzip";
    case DBP_COMP_ZSTD:
      return "zstd";
  }
  return "unknown";
}

/* True when the n bytes ending at `end` equal `suffix`, ignoring case. */
static bool ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

static const struct {
  const char *ext;
  dbp_compression comp;
} comp_exts[] = {{".gz", DBP_COMP_GZIP}, {".zst", DBP_COMP_ZSTD}};

static const struct {
  const char *ext;
  dbp_format fmt;
} fmt_exts[] = {{".csv", DBP_FMT_CSV},
                {".tsv", DBP_FMT_TSV},
                {".jsonl", DBP_FMT_JSONL},
                {".ndjson", DBP_FMT_JSONL}};

/* Splits the final component of `path` into stem and suffix: the suffix is
 * the known format extension plus the compression extension (".csv.gz"),
 * or, for an unknown ending, the last extension of the name (".txt").
 * Returns the length of the stem; fills *fmt and *comp (AUTO when unknown).
 * The split never reaches into a directory name. */
size_t dbp__path_split_ext(const char *path, dbp_format *fmt, dbp_compression *comp) {
  size_t n = strlen(path);
  const char *slash = strrchr(path, '/');
  size_t base = slash ? (size_t)(slash - path) + 1 : 0;
  dbp_format f = DBP_FMT_AUTO;
  dbp_compression c = DBP_COMP_AUTO;
  size_t stem = n;
  for (size_t i = 0; i < sizeof comp_exts / sizeof comp_exts[0]; i++) {
    if (ends_with(path + base, stem - base, comp_exts[i].ext) &&
        stem - base > strlen(comp_exts[i].ext)) {
      c = comp_exts[i].comp;
      stem -= strlen(comp_exts[i].ext);
      break;
    }
  }
  for (size_t i = 0; i < sizeof fmt_exts / sizeof fmt_exts[0]; i++) {
    if (ends_with(path + base, stem - base, fmt_exts[i].ext) &&
        stem - base > strlen(fmt_exts[i].ext)) {
      f = fmt_exts[i].fmt;
      stem -= strlen(fmt_exts[i].ext);
      break;
    }
  }
  if (f == DBP_FMT_AUTO) {
    /* An unknown extension ("data.txt", "data.txt.gz") still stays last. */
    for (size_t i = stem; i > base + 1; i--) {
      if (path[i - 1] == '.') {
        stem = i - 1;
        break;
      }
    }
  }
  if (fmt) *fmt = f;
  if (comp) *comp = c;
  return stem;
}

void dbp_format_detect(const char *path, dbp_format *fmt, dbp_compression *comp) {
  dbp_format f = DBP_FMT_AUTO;
  dbp_compression c = DBP_COMP_AUTO;
  if (path != NULL) dbp__path_split_ext(path, &f, &c);
  if (fmt) *fmt = f;
  if (comp) *comp = c;
}

void dbp_format_from_path(const char *path, dbp_format *fmt, dbp_compression *comp) {
  dbp_format f;
  dbp_compression c;
  dbp_format_detect(path, &f, &c);
  if (fmt) *fmt = f == DBP_FMT_AUTO ? DBP_FMT_CSV : f;
  if (comp) *comp = c == DBP_COMP_AUTO ? DBP_COMP_NONE : c;
}

int dbp_format_parse(const char *s, dbp_format *out) {
  if (s == NULL || out == NULL) return DBP_EINVAL;
  if (strcasecmp(s, "csv") == 0) {
    *out = DBP_FMT_CSV;
  } else if (strcasecmp(s, "tsv") == 0) {
    *out = DBP_FMT_TSV;
  } else if (strcasecmp(s, "jsonl") == 0 || strcasecmp(s, "ndjson") == 0) {
    *out = DBP_FMT_JSONL;
  } else {
    return DBP_EFORMAT;
  }
  return 0;
}

int dbp_compression_parse(const char *s, dbp_compression *out) {
  if (s == NULL || out == NULL) return DBP_EINVAL;
  if (strcasecmp(s, "none") == 0) {
    *out = DBP_COMP_NONE;
  } else if (strcasecmp(s, "gzip") == 0 || strcasecmp(s, "gz") == 0) {
    *out = DBP_COMP_GZIP;
  } else if (strcasecmp(s, "zstd") == 0 || strcasecmp(s, "zst") == 0) {
    *out = DBP_COMP_ZSTD;
  } else {
    return DBP_EFORMAT;
  }
  return 0;
}

/* The name of part `index` of a split export: the number goes before the
 * format and compression extensions, "dir/out.csv.gz" -> "dir/out-00003.csv.gz",
 * "out" -> "out-00003". Returns a malloc'd string or NULL (out of memory). */
char *dbp__part_path(const char *path, unsigned index) {
  size_t stem = dbp__path_split_ext(path, NULL, NULL);
  size_t n = strlen(path);
  char num[16];
  int k = snprintf(num, sizeof num, "-%05u", index);
  char *out = malloc(n + (size_t)k + 1);
  if (out == NULL) return NULL;
  memcpy(out, path, stem);
  memcpy(out + stem, num, (size_t)k);
  memcpy(out + stem + (size_t)k, path + stem, n - stem + 1);
  return out;
}
