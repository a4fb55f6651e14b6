/* The metrics registry and its text exposition (see metrics.h).
 *
 * A family keeps its series in an array (in creation order) and an
 * open-addressing table of indexes into it, keyed by a hash of the label
 * values, so an update costs one hash of its values and, usually, one
 * comparison. Rendering sorts a copy of the array. */
#include "serve/metrics.h"

#include <float.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind;

/* One series, in one allocation: this struct, the value pointers, the
 * bucket counts (histograms), then the value strings. */
typedef struct series {
  uint64_t hash;
  size_t nvalues;      /* the family's nlabels, for sorting */
  const char **values; /* nvalues strings */
  uint64_t *buckets;   /* histograms: nbounds + 1 counts, not cumulative */
  uint64_t count;      /* histograms */
  double value;        /* counters, gauges; a histogram's sum */
} series;

struct dbp_metric {
  kind kind;
  char *name, *help;
  size_t nlabels;
  char **labels;
  size_t nbounds;
  double *bounds;
  series **all; /* in creation order */
  size_t n, cap;
  uint32_t *slots; /* index + 1 into all, 0 when free; a power of two long */
  size_t nslots;
};

struct dbp_metrics {
  dbp_metric **fams;
  size_t n, cap;
};

const char *dbp_metrics_content_type(void) {
  return "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- names ---- */

static bool is_alpha_(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static bool valid_family_name(const char *name, kind k) {
  if (name == NULL || name[0] == '\0') return false;
  for (const char *p = name; *p; p++) {
    bool ok = is_alpha_(*p) || *p == ':' || (p != name && is_digit(*p));
    if (!ok) return false;
  }
  if (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count")) {
    return false;
  }
  return ends_with(name, "_total") == (k == KIND_COUNTER);
}

static bool valid_label_name(const char *name) {
  if (name == NULL || name[0] == '\0') return false;
  for (const char *p = name; *p; p++) {
    if (!(is_alpha_(*p) || (p != name && is_digit(*p)))) return false;
  }
  return strncmp(name, "__", 2) != 0 && strcmp(name, "le") != 0 && strcmp(name, "quantile") != 0;
}

/* ---- text ---- */

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

/* Length of s when every invalid UTF-8 sequence becomes U+FFFD, and
 * whether it had any. */
static size_t utf8_clean_len(const char *s, bool *dirty) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s), out = 0;
  *dirty = false;
  while (left > 0) {
    size_t k = p[0] < 0x80 ? 1 : dbp_utf8_len(p, left);
    if (k == 0) {
      *dirty = true;
      out += sizeof REPLACEMENT - 1;
      k = 1;
    } else {
      out += k;
    }
    p += k;
    left -= k;
  }
  return out;
}

/* Writes s cleaned (utf8_clean_len bytes and a NUL) to dst; returns the
 * end (at the NUL). */
static char *utf8_clean_copy(char *dst, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s);
  while (left > 0) {
    size_t k = p[0] < 0x80 ? 1 : dbp_utf8_len(p, left);
    if (k == 0) {
      memcpy(dst, REPLACEMENT, sizeof REPLACEMENT - 1);
      dst += sizeof REPLACEMENT - 1;
      k = 1;
    } else {
      memcpy(dst, p, k);
      dst += k;
    }
    p += k;
    left -= k;
  }
  *dst = '\0';
  return dst;
}

static char *clean_dup(const char *s) {
  bool dirty;
  char *d = malloc(utf8_clean_len(s, &dirty) + 1);
  if (d != NULL) utf8_clean_copy(d, s);
  return d;
}

/* A double as the format reads it: NaN, +Inf, -Inf, whole numbers up to
 * 2^53 in digits, anything else in the fewest digits that read back the
 * same. buf holds at least 32 bytes. */
static const char *fmt_double(double v, char *buf, size_t len) {
  if (v != v) return "NaN";
  if (v > DBL_MAX) return "+Inf";
  if (v < -DBL_MAX) return "-Inf";
  double a = v < 0 ? -v : v;
  if (a <= 9007199254740992.0 && (double)(int64_t)v == v) {
    if (v == 0) return 1 / v < 0 ? "-0" : "0";
    snprintf(buf, len, "%" PRId64, (int64_t)v);
    return buf;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  /* A locale whose decimal point is a comma would otherwise leak in. */
  for (char *p = buf; *p; p++) {
    if (*p == ',') *p = '.';
  }
  return buf;
}

/* Appends s with the given characters escaped: backslash and newline
 * always, the double quote when `quote`. */
static void put_escaped(dbp_buf *out, const char *s, bool quote) {
  const char *run = s;
  for (const char *p = s;; p++) {
    char c = *p;
    if (c != '\0' && c != '\\' && c != '\n' && !(quote && c == '"')) continue;
    dbp_buf_append(out, run, (size_t)(p - run));
    if (c == '\0') break;
    dbp_buf_append(out, c == '\\' ? "\\\\" : c == '\n' ? "\\n" : "\\\"", 2);
    run = p + 1;
  }
}

/* ---- series lookup ---- */

static uint64_t hash_values(size_t n, const char *const *values) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : "");
    for (; *p; p++) h = (h ^ *p) * 0x100000001b3u;
    /* 0xff never occurs in UTF-8: values are separated unambiguously. */
    h = (h ^ 0xffu) * 0x100000001b3u;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9u;
  h ^= h >> 32;
  return h;
}

static bool same_values(const series *s, size_t n, const char *const *values) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(s->values[i], values[i] ? values[i] : "") != 0) return false;
  }
  return true;
}

static void slots_put(uint32_t *slots, size_t nslots, uint64_t hash, uint32_t idx1) {
  size_t mask = nslots - 1, i = (size_t)hash & mask;
  while (slots[i] != 0) i = (i + 1) & mask;
  slots[i] = idx1;
}

static int slots_grow(dbp_metric *f) {
  size_t nslots = f->nslots ? f->nslots * 2 : 16;
  uint32_t *slots = calloc(nslots, sizeof *slots);
  if (slots == NULL) return DBP_ENOMEM;
  for (size_t i = 0; i < f->n; i++) slots_put(slots, nslots, f->all[i]->hash, (uint32_t)(i + 1));
  free(f->slots);
  f->slots = slots;
  f->nslots = nslots;
  return 0;
}

/* A new series for clean (valid UTF-8) values, added to the family. */
static series *series_add(dbp_metric *f, uint64_t hash, const char *const *values) {
  if (f->n >= UINT32_MAX - 1) return NULL;
  if ((f->n + 1) * 2 > f->nslots && slots_grow(f) != 0) return NULL;
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    series **all = realloc(f->all, cap * sizeof *all);
    if (all == NULL) return NULL;
    f->all = all;
    f->cap = cap;
  }
  size_t nb = f->kind == KIND_HISTOGRAM ? f->nbounds + 1 : 0;
  size_t text = 0;
  for (size_t i = 0; i < f->nlabels; i++) text += strlen(values[i] ? values[i] : "") + 1;
  size_t head = sizeof(series) + f->nlabels * sizeof(char *) + nb * sizeof(uint64_t);
  series *s = calloc(1, head + text);
  if (s == NULL) return NULL;
  s->hash = hash;
  s->nvalues = f->nlabels;
  s->values = (const char **)(void *)(s + 1);
  s->buckets = nb ? (uint64_t *)(void *)(s->values + f->nlabels) : NULL;
  char *p = (char *)s + head;
  for (size_t i = 0; i < f->nlabels; i++) {
    const char *v = values[i] ? values[i] : "";
    size_t k = strlen(v) + 1;
    memcpy(p, v, k);
    s->values[i] = p;
    p += k;
  }
  f->all[f->n++] = s;
  slots_put(f->slots, f->nslots, hash, (uint32_t)f->n);
  return s;
}

static series *find_clean(dbp_metric *f, const char *const *values) {
  uint64_t hash = hash_values(f->nlabels, values);
  if (f->nslots > 0) {
    size_t mask = f->nslots - 1;
    for (size_t i = (size_t)hash & mask; f->slots[i] != 0; i = (i + 1) & mask) {
      series *s = f->all[f->slots[i] - 1];
      if (s->hash == hash && same_values(s, f->nlabels, values)) return s;
    }
  }
  return series_add(f, hash, values);
}

/* The series for these values, created when new; NULL when that fails. */
static series *find(dbp_metric *f, const char *const *values) {
  if (f->nlabels == 0) return f->all[0];
  if (values == NULL) return NULL;
  bool dirty = false;
  for (size_t i = 0; i < f->nlabels && !dirty; i++) {
    const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : "");
    while (*p && *p < 0x80) p++;
    if (*p) utf8_clean_len((const char *)p, &dirty);
  }
  if (!dirty) return find_clean(f, values);
  /* Rare: some value has invalid UTF-8; look up the cleaned values. */
  size_t total = 0;
  for (size_t i = 0; i < f->nlabels; i++) {
    total += utf8_clean_len(values[i] ? values[i] : "", &dirty) + 1;
  }
  char **clean = malloc(f->nlabels * sizeof *clean + total);
  if (clean == NULL) return NULL;
  char *p = (char *)(clean + f->nlabels);
  for (size_t i = 0; i < f->nlabels; i++) {
    clean[i] = p;
    p = utf8_clean_copy(p, values[i] ? values[i] : "") + 1;
  }
  series *s = find_clean(f, (const char *const *)clean);
  free(clean);
  return s;
}

/* ---- updates ---- */

void dbp_metric_inc(dbp_metric *f, const char *const *values, double by) {
  if (f == NULL || f->kind == KIND_HISTOGRAM) return;
  if (f->kind == KIND_COUNTER && !(by >= 0)) return;
  series *s = find(f, values);
  if (s != NULL) s->value += by;
}

void dbp_metric_set(dbp_metric *f, const char *const *values, double v) {
  if (f == NULL || f->kind != KIND_GAUGE) return;
  series *s = find(f, values);
  if (s != NULL) s->value = v;
}

void dbp_metric_add(dbp_metric *f, const char *const *values, double by) {
  if (f == NULL || f->kind != KIND_GAUGE) return;
  series *s = find(f, values);
  if (s != NULL) s->value += by;
}

void dbp_metric_observe(dbp_metric *f, const char *const *values, double v) {
  if (f == NULL || f->kind != KIND_HISTOGRAM) return;
  series *s = find(f, values);
  if (s == NULL) return;
  /* The first bound >= v; NaN compares false everywhere and lands in +Inf. */
  size_t lo = 0, hi = f->nbounds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->bounds[mid] >= v) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (v != v) lo = f->nbounds;
  s->buckets[lo]++;
  s->count++;
  s->value += v;
}

void dbp_metric_hist_set(dbp_metric *f, const char *const *values, const uint64_t *counts,
                         double sum) {
  if (f == NULL || f->kind != KIND_HISTOGRAM || counts == NULL) return;
  series *s = find(f, values);
  if (s == NULL) return;
  s->count = 0;
  for (size_t i = 0; i <= f->nbounds; i++) {
    s->buckets[i] = counts[i];
    s->count += counts[i];
  }
  s->value = sum;
}

size_t dbp_metric_series(const dbp_metric *f) {
  return f ? f->n : 0;
}

/* ---- registry ---- */

dbp_metrics *dbp_metrics_new(void) {
  return calloc(1, sizeof(dbp_metrics));
}

static void family_free(dbp_metric *f) {
  if (f == NULL) return;
  for (size_t i = 0; i < f->n; i++) free(f->all[i]);
  free(f->all);
  free(f->slots);
  if (f->labels != NULL) {
    for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
  }
  free(f->labels);
  free(f->bounds);
  free(f->name);
  free(f->help);
  free(f);
}

void dbp_metrics_free(dbp_metrics *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->n; i++) family_free(m->fams[i]);
  free(m->fams);
  free(m);
}

static dbp_metric *family_add(dbp_metrics *m, kind k, const char *name, const char *help,
                              size_t nlabels, const char *const *label_names, size_t nbounds,
                              const double *bounds) {
  if (m == NULL || !valid_family_name(name, k)) return NULL;
  if (nlabels > 0 && label_names == NULL) return NULL;
  for (size_t i = 0; i < nlabels; i++) {
    if (!valid_label_name(label_names[i])) return NULL;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(label_names[i], label_names[j]) == 0) return NULL;
    }
  }
  if (nbounds > 0 && bounds == NULL) return NULL;
  for (size_t i = 0; i < nbounds; i++) {
    if (!(bounds[i] >= -DBL_MAX && bounds[i] <= DBL_MAX)) return NULL;
    if (i > 0 && !(bounds[i] > bounds[i - 1])) return NULL;
  }
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->fams[i]->name, name) == 0) return NULL;
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 8;
    dbp_metric **fams = realloc(m->fams, cap * sizeof *fams);
    if (fams == NULL) return NULL;
    m->fams = fams;
    m->cap = cap;
  }

  dbp_metric *f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->kind = k;
  f->nlabels = nlabels;
  f->nbounds = nbounds;
  f->name = strdup(name);
  f->help = clean_dup(help ? help : "");
  bool ok = f->name != NULL && f->help != NULL;
  if (ok && nlabels > 0) {
    f->labels = calloc(nlabels, sizeof *f->labels);
    ok = f->labels != NULL;
    for (size_t i = 0; ok && i < nlabels; i++) ok = (f->labels[i] = strdup(label_names[i])) != NULL;
  }
  if (ok && nbounds > 0) {
    f->bounds = malloc(nbounds * sizeof *f->bounds);
    ok = f->bounds != NULL;
    if (ok) memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
  }
  /* A family without labels has its one series from the start. */
  if (ok && nlabels == 0) ok = series_add(f, hash_values(0, NULL), NULL) != NULL;
  if (!ok) {
    family_free(f);
    return NULL;
  }
  m->fams[m->n++] = f;
  return f;
}

dbp_metric *dbp_metrics_counter(dbp_metrics *m, const char *name, const char *help, size_t nlabels,
                                const char *const *label_names) {
  return family_add(m, KIND_COUNTER, name, help, nlabels, label_names, 0, NULL);
}

dbp_metric *dbp_metrics_gauge(dbp_metrics *m, const char *name, const char *help, size_t nlabels,
                              const char *const *label_names) {
  return family_add(m, KIND_GAUGE, name, help, nlabels, label_names, 0, NULL);
}

dbp_metric *dbp_metrics_histogram(dbp_metrics *m, const char *name, const char *help,
                                  size_t nlabels, const char *const *label_names, size_t nbounds,
                                  const double *bounds) {
  return family_add(m, KIND_HISTOGRAM, name, help, nlabels, label_names, nbounds, bounds);
}

/* ---- rendering ---- */

static int series_cmp(const void *a, const void *b) {
  const series *x = *(const series *const *)a, *y = *(const series *const *)b;
  for (size_t i = 0; i < x->nvalues; i++) {
    int c = strcmp(x->values[i], y->values[i]);
    if (c != 0) return c;
  }
  return 0;
}

/* {l1="v1",l2="v2"} plus le="..." when le is not NULL; nothing when there
 * is no label at all. */
static void put_labels(dbp_buf *out, const dbp_metric *f, const series *s, const char *le) {
  if (f->nlabels == 0 && le == NULL) return;
  dbp_buf_append(out, "{", 1);
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i > 0) dbp_buf_append(out, ",", 1);
    dbp_buf_puts(out, f->labels[i]);
    dbp_buf_append(out, "=\"", 2);
    put_escaped(out, s->values[i], true);
    dbp_buf_append(out, "\"", 1);
  }
  if (le != NULL) {
    dbp_buf_puts(out, f->nlabels > 0 ? ",le=\"" : "le=\"");
    dbp_buf_puts(out, le);
    dbp_buf_append(out, "\"", 1);
  }
  dbp_buf_append(out, "}", 1);
}

static void put_series(dbp_buf *out, const dbp_metric *f, const series *s) {
  char num[40];
  if (f->kind != KIND_HISTOGRAM) {
    dbp_buf_puts(out, f->name);
    put_labels(out, f, s, NULL);
    dbp_buf_printf(out, " %s\n", fmt_double(s->value, num, sizeof num));
    return;
  }
  uint64_t cum = 0;
  for (size_t b = 0; b <= f->nbounds; b++) {
    cum += s->buckets[b];
    dbp_buf_puts(out, f->name);
    dbp_buf_puts(out, "_bucket");
    put_labels(out, f, s, b < f->nbounds ? fmt_double(f->bounds[b], num, sizeof num) : "+Inf");
    dbp_buf_printf(out, " %" PRIu64 "\n", cum);
  }
  dbp_buf_puts(out, f->name);
  dbp_buf_puts(out, "_sum");
  put_labels(out, f, s, NULL);
  dbp_buf_printf(out, " %s\n", fmt_double(s->value, num, sizeof num));
  dbp_buf_puts(out, f->name);
  dbp_buf_puts(out, "_count");
  put_labels(out, f, s, NULL);
  dbp_buf_printf(out, " %" PRIu64 "\n", s->count);
}

static const char *const KIND_NAMES[] = {"counter", "gauge", "histogram"};

int dbp_metrics_render(const dbp_metrics *m, dbp_buf *out) {
  if (m == NULL || out == NULL) return DBP_EINVAL;
  series **sorted = NULL;
  size_t room = 0;
  for (size_t i = 0; i < m->n; i++) {
    const dbp_metric *f = m->fams[i];
    if (f->help[0] != '\0') {
      dbp_buf_printf(out, "# HELP %s ", f->name);
      put_escaped(out, f->help, false);
      dbp_buf_append(out, "\n", 1);
    }
    dbp_buf_printf(out, "# TYPE %s %s\n", f->name, KIND_NAMES[f->kind]);
    if (f->n > room) {
      free(sorted);
      room = f->n;
      sorted = malloc(room * sizeof *sorted);
      if (sorted == NULL) {
        out->oom = true;
        return DBP_ENOMEM;
      }
    }
    if (f->n > 0) memcpy(sorted, f->all, f->n * sizeof *sorted);
    if (f->n > 1) qsort(sorted, f->n, sizeof *sorted, series_cmp);
    for (size_t k = 0; k < f->n; k++) put_series(out, f, sorted[k]);
    if (out->oom) break;
  }
  free(sorted);
  return out->oom ? DBP_ENOMEM : 0;
}
