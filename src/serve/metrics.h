/* A registry of metrics, rendered in the Prometheus text exposition format
 * 0.0.4 (what GET /metrics serves).
 *
 * A registry holds families (counters, gauges, histograms), each with a
 * fixed list of label names; a family holds one series per distinct list of
 * label values, created on its first update. Single-threaded: every call on
 * one registry comes from the same thread (the loop's), nothing locks.
 *
 * Names. A family name matches [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's ends in
 * "_total" and nothing else's does; no family name ends in "_bucket", "_sum"
 * or "_count" (a histogram's series use those). A label name matches
 * [a-zA-Z_][a-zA-Z0-9_]*, does not start with "__", is not "quantile", is
 * not "le" (which histograms add), and appears once per family. These are
 * the rules of the format plus the ones `promtool check metrics` lints; its
 * other lints (':' in names, camelCase, abbreviated units, missing help) are
 * the caller's to respect.
 *
 * Label values are any text, copied; invalid UTF-8 is replaced by U+FFFD
 * (so two values that differ only in invalid bytes are one series). A
 * `values` argument holds one string per label name (NULL counts as ""); a
 * family without labels takes NULL and always has its one series, rendered
 * as 0 until updated.
 *
 * Updates return nothing: a call on the wrong kind of family, with a value
 * the kind refuses, or that needs a new series when memory runs out changes
 * nothing.
 */
#ifndef DBP_SERVE_METRICS_H
#define DBP_SERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dbpipe/common.h"

typedef struct dbp_metrics dbp_metrics;
typedef struct dbp_metric dbp_metric;

/* NULL when memory runs out. */
dbp_metrics *dbp_metrics_new(void);
/* Frees the registry and its families (NULL is fine). */
void dbp_metrics_free(dbp_metrics *m);

/* New families, owned by the registry. `help` (NULL is "") and the label
 * names are copied. NULL for a name the rules above refuse, a name the
 * registry already has, or when memory runs out. */
dbp_metric *dbp_metrics_counter(dbp_metrics *m, const char *name, const char *help, size_t nlabels,
                                const char *const *label_names);
dbp_metric *dbp_metrics_gauge(dbp_metrics *m, const char *name, const char *help, size_t nlabels,
                              const char *const *label_names);
/* `bounds` are the buckets' finite upper bounds, strictly ascending (NULL
 * when nbounds is 0); the +Inf bucket is implied. NULL also for bounds that
 * are not. */
dbp_metric *dbp_metrics_histogram(dbp_metrics *m, const char *name, const char *help,
                                  size_t nlabels, const char *const *label_names, size_t nbounds,
                                  const double *bounds);

/* Counters: adds `by` when by >= 0 (a negative or NaN `by` is ignored).
 * Gauges: adds `by`, whatever its sign. */
void dbp_metric_inc(dbp_metric *f, const char *const *values, double by);
/* Gauges only. */
void dbp_metric_set(dbp_metric *f, const char *const *values, double v);
void dbp_metric_add(dbp_metric *f, const char *const *values, double by);
/* Histograms only: counts `v` in the first bucket whose bound is >= v (NaN
 * only in +Inf), adds it to the sum. */
void dbp_metric_observe(dbp_metric *f, const char *const *values, double v);

/* Histograms only: replaces a series' buckets with `counts` (nbounds + 1
 * counts, not cumulative, the last one +Inf's) and its sum with `sum`:
 * for histograms kept elsewhere (a pool's acquire waits) and copied in at
 * each scrape. */
void dbp_metric_hist_set(dbp_metric *f, const char *const *values, const uint64_t *counts,
                         double sum);

/* The number of series the family holds (1 for a family without labels). */
size_t dbp_metric_series(const dbp_metric *f);

/* Appends the whole registry to `out`: for each family in the order they
 * were registered "# HELP" (unless the help is empty) and "# TYPE", then its
 * series sorted by their label values (byte order, first label first).
 * 0, or DBP_ENOMEM (out then holds a truncated text). */
int dbp_metrics_render(const dbp_metrics *m, dbp_buf *out);

/* The Content-Type of the rendered text. */
const char *dbp_metrics_content_type(void);

#endif /* DBP_SERVE_METRICS_H */
