/* Value syntax of job files and command-line options: durations, sizes,
 * integers and booleans. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dbpipe/job.h"
#include "job/job_internal.h"

/* Reads the decimal digits at *s into *out, advancing *s. Fails without
 * digits or on overflow. */
static int read_digits(const char **s, uint64_t *out) {
  const char *p = *s;
  uint64_t v = 0;
  if (!isdigit((unsigned char)*p)) return DBP_EINVAL;
  while (isdigit((unsigned char)*p)) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return DBP_EINVAL;
    v = v * 10 + d;
    p++;
  }
  *s = p;
  *out = v;
  return 0;
}

/* Multiplies with an overflow check against `limit`. */
static int mul_checked(uint64_t a, uint64_t b, uint64_t limit, uint64_t *out) {
  if (b != 0 && a > limit / b) return DBP_EINVAL;
  *out = a * b;
  return 0;
}

int dbp_parse_duration(const char *s, int64_t *ms) {
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  const uint64_t limit = (uint64_t)INT64_MAX;
  uint64_t total = 0;
  if (s == NULL || *s == '\0') return DBP_EINVAL;
  /* A bare number is seconds. */
  const char *p = s;
  uint64_t v;
  if (read_digits(&p, &v) == 0 && *p == '\0') {
    if (mul_checked(v, 1000, limit, &total) != 0) return DBP_EINVAL;
    *ms = (int64_t)total;
    return 0;
  }
  /* Otherwise one or more NUMBER UNIT pairs: "1h30m", "500ms". */
  p = s;
  while (*p != '\0') {
    if (read_digits(&p, &v) != 0) return DBP_EINVAL;
    size_t n = 0;
    while (isalpha((unsigned char)p[n])) n++;
    uint64_t scale = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if (strlen(units[i].unit) == n && strncmp(p, units[i].unit, n) == 0) scale = units[i].ms;
    }
    if (scale == 0) return DBP_EINVAL;
    uint64_t part;
    if (mul_checked(v, scale, limit, &part) != 0 || part > limit - total) return DBP_EINVAL;
    total += part;
    p += n;
  }
  *ms = (int64_t)total;
  return 0;
}

int dbp_parse_size(const char *s, uint64_t *bytes) {
  static const struct {
    const char *unit;
    uint64_t mul;
  } units[] = {{"", 1},
               {"B", 1},
               {"kB", 1000},
               {"KB", 1000},
               {"MB", 1000 * 1000},
               {"GB", 1000 * 1000 * 1000},
               {"TB", (uint64_t)1000 * 1000 * 1000 * 1000},
               {"KiB", 1024},
               {"MiB", 1024 * 1024},
               {"GiB", 1024 * 1024 * 1024},
               {"TiB", (uint64_t)1024 * 1024 * 1024 * 1024}};
  const char *p = s;
  uint64_t v;
  if (s == NULL || read_digits(&p, &v) != 0) return DBP_EINVAL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].unit) == 0) return mul_checked(v, units[i].mul, UINT64_MAX, bytes);
  }
  return DBP_EINVAL;
}

int dbp__parse_uint(const char *s, uint64_t max, uint64_t *out) {
  const char *p = s;
  uint64_t v;
  if (s == NULL || read_digits(&p, &v) != 0 || *p != '\0' || v > max) return DBP_EINVAL;
  *out = v;
  return 0;
}

int dbp__parse_int(const char *s, int64_t min, int64_t max, int64_t *out) {
  bool neg = false;
  uint64_t v;
  if (s == NULL) return DBP_EINVAL;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  if (dbp__parse_uint(s, (uint64_t)INT64_MAX, &v) != 0) return DBP_EINVAL;
  int64_t r = neg ? -(int64_t)v : (int64_t)v;
  if (r < min || r > max) return DBP_EINVAL;
  *out = r;
  return 0;
}

int dbp__parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return DBP_EINVAL;
}

int dbp__parse_time_limit(const char *s, int64_t *ms) {
  int64_t v;
  if (s == NULL) return DBP_EINVAL;
  if (strcmp(s, "none") == 0) {
    *ms = DBP_JOB_NO_TIMEOUT;
    return 0;
  }
  if (dbp_parse_duration(s, &v) != 0) return DBP_EINVAL;
  *ms = v == 0 ? DBP_JOB_NO_TIMEOUT : v;
  return 0;
}
