/* The metrics registry: the exact text it renders, the names it refuses,
 * and promtool's verdict on what it renders. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve/metrics.h"

/* The registry's text, in a buffer the caller frees. */
static char *render(const dbp_metrics *m) {
  dbp_buf b = {0};
  cr_assert_eq(dbp_metrics_render(m, &b), 0);
  char *s = strdup(dbp_buf_str(&b));
  cr_assert_not_null(s);
  dbp_buf_free(&b);
  return s;
}

static void expect_text(const dbp_metrics *m, const char *want) {
  char *got = render(m);
  cr_expect_str_eq(got, want, "rendered:\n%s\nwanted:\n%s", got, want);
  free(got);
}

Test(metrics, content_type) {
  cr_assert_str_eq(dbp_metrics_content_type(), "text/plain; version=0.0.4; charset=utf-8");
}

Test(metrics, counter_without_labels_starts_at_zero_and_ignores_negative_steps) {
  dbp_metrics *m = dbp_metrics_new();
  dbp_metric *c = dbp_metrics_counter(m, "dbpipe_jobs_total", "Jobs run.", 0, NULL);
  cr_assert_not_null(c);
  cr_expect_eq(dbp_metric_series(c), 1);
  expect_text(m,
              "# HELP dbpipe_jobs_total Jobs run.\n# TYPE dbpipe_jobs_total counter\n"
              "dbpipe_jobs_total 0\n");
  dbp_metric_inc(c, NULL, 1);
  dbp_metric_inc(c, NULL, 2.5);
  dbp_metric_inc(c, NULL, -1);
  dbp_metric_inc(c, NULL, 0.0 / 0.0);
  dbp_metric_set(c, NULL, 100); /* not a gauge: ignored */
  dbp_metric_observe(c, NULL, 100);
  expect_text(m,
              "# HELP dbpipe_jobs_total Jobs run.\n# TYPE dbpipe_jobs_total counter\n"
              "dbpipe_jobs_total 3.5\n");
  dbp_metrics_free(m);
}

Test(metrics, counter_with_labels_one_line_per_series) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"db", "status"};
  dbp_metric *c = dbp_metrics_counter(m, "dbpipe_tasks_total", "Tasks by outcome.", 2, labels);
  cr_assert_not_null(c);
  cr_expect_eq(dbp_metric_series(c), 0);
  expect_text(m,
              "# HELP dbpipe_tasks_total Tasks by outcome.\n# TYPE dbpipe_tasks_total counter\n");
  dbp_metric_inc(c, (const char *[]){"pg", "ok"}, 1);
  dbp_metric_inc(c, (const char *[]){"my", "failed"}, 1);
  dbp_metric_inc(c, (const char *[]){"pg", "ok"}, 2);
  dbp_metric_inc(c, (const char *[]){"pg", "failed"}, 1);
  dbp_metric_inc(c, (const char *[]){"my", NULL}, 4); /* NULL is "" */
  dbp_metric_inc(c, (const char *[]){"my", ""}, 1);
  cr_expect_eq(dbp_metric_series(c), 4);
  expect_text(m,
              "# HELP dbpipe_tasks_total Tasks by outcome.\n# TYPE dbpipe_tasks_total counter\n"
              "dbpipe_tasks_total{db=\"my\",status=\"\"} 5\n"
              "dbpipe_tasks_total{db=\"my\",status=\"failed\"} 1\n"
              "dbpipe_tasks_total{db=\"pg\",status=\"failed\"} 1\n"
              "dbpipe_tasks_total{db=\"pg\",status=\"ok\"} 3\n");
  dbp_metrics_free(m);
}

Test(metrics, gauges_set_and_add_either_way) {
  dbp_metrics *m = dbp_metrics_new();
  dbp_metric *g = dbp_metrics_gauge(m, "dbpipe_connections", "Open connections.", 0, NULL);
  const char *pool[] = {"pool"};
  dbp_metric *q = dbp_metrics_gauge(m, "dbpipe_queue_depth", "Waiting requests.", 1, pool);
  cr_assert_not_null(g);
  cr_assert_not_null(q);
  dbp_metric_set(g, NULL, 7);
  dbp_metric_add(g, NULL, -10);
  dbp_metric_inc(g, NULL, 1);
  dbp_metric_set(q, (const char *[]){"b"}, 2);
  dbp_metric_add(q, (const char *[]){"a"}, -0.5);
  dbp_metric_add(q, (const char *[]){"b"}, 1);
  expect_text(m,
              "# HELP dbpipe_connections Open connections.\n# TYPE dbpipe_connections gauge\n"
              "dbpipe_connections -2\n"
              "# HELP dbpipe_queue_depth Waiting requests.\n# TYPE dbpipe_queue_depth gauge\n"
              "dbpipe_queue_depth{pool=\"a\"} -0.5\n"
              "dbpipe_queue_depth{pool=\"b\"} 3\n");
  dbp_metrics_free(m);
}

Test(metrics, histogram_without_labels) {
  dbp_metrics *m = dbp_metrics_new();
  const double bounds[] = {0.25, 1, 10};
  dbp_metric *h = dbp_metrics_histogram(m, "dbpipe_task_seconds", "Task time.", 0, NULL, 3, bounds);
  cr_assert_not_null(h);
  expect_text(m,
              "# HELP dbpipe_task_seconds Task time.\n# TYPE dbpipe_task_seconds histogram\n"
              "dbpipe_task_seconds_bucket{le=\"0.25\"} 0\n"
              "dbpipe_task_seconds_bucket{le=\"1\"} 0\n"
              "dbpipe_task_seconds_bucket{le=\"10\"} 0\n"
              "dbpipe_task_seconds_bucket{le=\"+Inf\"} 0\n"
              "dbpipe_task_seconds_sum 0\n"
              "dbpipe_task_seconds_count 0\n");
  dbp_metric_observe(h, NULL, 0.25); /* on a bound: in that bucket */
  dbp_metric_observe(h, NULL, 0.5);
  dbp_metric_observe(h, NULL, 2);
  dbp_metric_observe(h, NULL, 100);
  dbp_metric_inc(h, NULL, 1); /* not a counter: ignored */
  expect_text(m,
              "# HELP dbpipe_task_seconds Task time.\n# TYPE dbpipe_task_seconds histogram\n"
              "dbpipe_task_seconds_bucket{le=\"0.25\"} 1\n"
              "dbpipe_task_seconds_bucket{le=\"1\"} 2\n"
              "dbpipe_task_seconds_bucket{le=\"10\"} 3\n"
              "dbpipe_task_seconds_bucket{le=\"+Inf\"} 4\n"
              "dbpipe_task_seconds_sum 102.75\n"
              "dbpipe_task_seconds_count 4\n");
  dbp_metrics_free(m);
}

Test(metrics, histogram_set_replaces_buckets_and_sum) {
  dbp_metrics *m = dbp_metrics_new();
  const double bounds[] = {0.5, 2};
  const char *labels[] = {"connection"};
  dbp_metric *h = dbp_metrics_histogram(m, "dbpipe_wait_seconds", "", 1, labels, 2, bounds);
  cr_assert_not_null(h);
  dbp_metric_observe(h, (const char *[]){"pg"}, 1);
  dbp_metric_hist_set(h, (const char *[]){"pg"}, (const uint64_t[]){3, 0, 2}, 7.5);
  dbp_metric_hist_set(h, (const char *[]){"my"}, (const uint64_t[]){0, 1, 0}, 1.25);
  dbp_metric_hist_set(h, (const char *[]){"x"}, NULL, 1); /* no counts: nothing */
  expect_text(m,
              "# TYPE dbpipe_wait_seconds histogram\n"
              "dbpipe_wait_seconds_bucket{connection=\"my\",le=\"0.5\"} 0\n"
              "dbpipe_wait_seconds_bucket{connection=\"my\",le=\"2\"} 1\n"
              "dbpipe_wait_seconds_bucket{connection=\"my\",le=\"+Inf\"} 1\n"
              "dbpipe_wait_seconds_sum{connection=\"my\"} 1.25\n"
              "dbpipe_wait_seconds_count{connection=\"my\"} 1\n"
              "dbpipe_wait_seconds_bucket{connection=\"pg\",le=\"0.5\"} 3\n"
              "dbpipe_wait_seconds_bucket{connection=\"pg\",le=\"2\"} 3\n"
              "dbpipe_wait_seconds_bucket{connection=\"pg\",le=\"+Inf\"} 5\n"
              "dbpipe_wait_seconds_sum{connection=\"pg\"} 7.5\n"
              "dbpipe_wait_seconds_count{connection=\"pg\"} 5\n");
  dbp_metrics_free(m);
}

Test(metrics, histogram_with_labels_and_one_without_bounds) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"task"};
  const double bounds[] = {0.005, 1.5};
  dbp_metric *h = dbp_metrics_histogram(m, "dbpipe_rows", "Rows per task.", 1, labels, 2, bounds);
  dbp_metric *e = dbp_metrics_histogram(m, "dbpipe_empty", "", 1, labels, 0, NULL);
  dbp_metric *z = dbp_metrics_histogram(m, "dbpipe_only_inf", "No bounds.", 0, NULL, 0, NULL);
  cr_assert_not_null(h);
  cr_assert_not_null(e);
  cr_assert_not_null(z);
  dbp_metric_observe(h, (const char *[]){"t2"}, 3);
  dbp_metric_observe(h, (const char *[]){"t1"}, 0.001);
  dbp_metric_observe(h, (const char *[]){"t1"}, -1);
  dbp_metric_observe(z, NULL, 5);
  expect_text(m,
              "# HELP dbpipe_rows Rows per task.\n# TYPE dbpipe_rows histogram\n"
              "dbpipe_rows_bucket{task=\"t1\",le=\"0.005\"} 2\n"
              "dbpipe_rows_bucket{task=\"t1\",le=\"1.5\"} 2\n"
              "dbpipe_rows_bucket{task=\"t1\",le=\"+Inf\"} 2\n"
              "dbpipe_rows_sum{task=\"t1\"} -0.999\n"
              "dbpipe_rows_count{task=\"t1\"} 2\n"
              "dbpipe_rows_bucket{task=\"t2\",le=\"0.005\"} 0\n"
              "dbpipe_rows_bucket{task=\"t2\",le=\"1.5\"} 0\n"
              "dbpipe_rows_bucket{task=\"t2\",le=\"+Inf\"} 1\n"
              "dbpipe_rows_sum{task=\"t2\"} 3\n"
              "dbpipe_rows_count{task=\"t2\"} 1\n"
              "# TYPE dbpipe_empty histogram\n"
              "# HELP dbpipe_only_inf No bounds.\n# TYPE dbpipe_only_inf histogram\n"
              "dbpipe_only_inf_bucket{le=\"+Inf\"} 1\n"
              "dbpipe_only_inf_sum 5\n"
              "dbpipe_only_inf_count 1\n");
  dbp_metrics_free(m);
}

Test(metrics, escapes_label_values_and_help) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"v"};
  dbp_metric *g =
      dbp_metrics_gauge(m, "odd", "Back\\slash, \"quotes\"\nand a new line.", 1, labels);
  cr_assert_not_null(g);
  dbp_metric_set(g, (const char *[]){"say \"hi\""}, 1);
  dbp_metric_set(g, (const char *[]){"C:\\dir\\"}, 2);
  dbp_metric_set(g, (const char *[]){"two\nlines"}, 3);
  dbp_metric_set(g, (const char *[]){"caf\xc3\xa9 \xe2\x9c\x93 \xe6\x97\xa5\xf0\x9f\x98\x80"}, 4);
  dbp_metric_set(g, (const char *[]){"tab\there {}=,"}, 5);
  expect_text(m,
              "# HELP odd Back\\\\slash, \"quotes\"\\nand a new line.\n# TYPE odd gauge\n"
              "odd{v=\"C:\\\\dir\\\\\"} 2\n"
              "odd{v=\"caf\xc3\xa9 \xe2\x9c\x93 \xe6\x97\xa5\xf0\x9f\x98\x80\"} 4\n"
              "odd{v=\"say \\\"hi\\\"\"} 1\n"
              "odd{v=\"tab\there {}=,\"} 5\n"
              "odd{v=\"two\\nlines\"} 3\n");
  dbp_metrics_free(m);
}

Test(metrics, invalid_utf8_becomes_replacement_characters_in_one_series) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"v"};
  dbp_metric *c = dbp_metrics_counter(m, "bad_total", "Bad \xff help.", 1, labels);
  cr_assert_not_null(c);
  dbp_metric_inc(c, (const char *[]){"a\xff"}, 1);
  dbp_metric_inc(c, (const char *[]){"a\xfe"}, 1);             /* same after cleaning */
  dbp_metric_inc(c, (const char *[]){"a\xef\xbf\xbd"}, 1);     /* U+FFFD itself */
  dbp_metric_inc(c, (const char *[]){"\xc3\xa9\xc0\xaf"}, 10); /* overlong '/' */
  cr_expect_eq(dbp_metric_series(c), 2);
  expect_text(m,
              "# HELP bad_total Bad \xef\xbf\xbd help.\n# TYPE bad_total counter\n"
              "bad_total{v=\"a\xef\xbf\xbd\"} 3\n"
              "bad_total{v=\"\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\"} 10\n");
  dbp_metrics_free(m);
}

Test(metrics, families_in_registration_order_series_sorted) {
  dbp_metrics *m = dbp_metrics_new();
  const char *ab[] = {"a", "b"};
  dbp_metric *z = dbp_metrics_gauge(m, "zeta", "Z.", 2, ab);
  dbp_metric *a = dbp_metrics_gauge(m, "alpha", "A.", 0, NULL);
  cr_assert_not_null(z);
  cr_assert_not_null(a);
  const char *vals[][2] = {{"y", "2"}, {"y", "10"}, {"x", "9"}, {"", "z"}, {"y", "1"}, {"x", ""}};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    dbp_metric_set(z, vals[i], (double)i);
  }
  const char *want =
      "# HELP zeta Z.\n# TYPE zeta gauge\n"
      "zeta{a=\"\",b=\"z\"} 3\n"
      "zeta{a=\"x\",b=\"\"} 5\n"
      "zeta{a=\"x\",b=\"9\"} 2\n"
      "zeta{a=\"y\",b=\"1\"} 4\n"
      "zeta{a=\"y\",b=\"10\"} 1\n"
      "zeta{a=\"y\",b=\"2\"} 0\n"
      "# HELP alpha A.\n# TYPE alpha gauge\n"
      "alpha 0\n";
  expect_text(m, want);
  expect_text(m, want); /* rendering changes nothing */
  dbp_metrics_free(m);
}

Test(metrics, values_nan_inf_negative_large_and_fractions) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"k"};
  dbp_metric *g = dbp_metrics_gauge(m, "vals", "Values.", 1, labels);
  cr_assert_not_null(g);
  struct {
    const char *key;
    double v;
  } cases[] = {
      {"a_nan", 0.0 / 0.0},
      {"b_pinf", 1.0 / 0.0},
      {"c_ninf", -1.0 / 0.0},
      {"d_neg", -3},
      {"e_2p53", 9007199254740992.0},
      {"f_neg2p53", -9007199254740992.0},
      {"g_past2p53", 9007199254740994.0},
      {"h_tenth", 0.1},
      {"i_third", 1.0 / 3.0},
      {"j_huge", 1e300},
      {"k_tiny", 1.5e-7},
      {"l_negzero", -0.0},
      {"m_int", 123456789012.0},
      {"n_max", 1.7976931348623157e308},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dbp_metric_set(g, (const char *[]){cases[i].key}, cases[i].v);
  }
  expect_text(m,
              "# HELP vals Values.\n# TYPE vals gauge\n"
              "vals{k=\"a_nan\"} NaN\n"
              "vals{k=\"b_pinf\"} +Inf\n"
              "vals{k=\"c_ninf\"} -Inf\n"
              "vals{k=\"d_neg\"} -3\n"
              "vals{k=\"e_2p53\"} 9007199254740992\n"
              "vals{k=\"f_neg2p53\"} -9007199254740992\n"
              "vals{k=\"g_past2p53\"} 9007199254740994\n"
              "vals{k=\"h_tenth\"} 0.1\n"
              "vals{k=\"i_third\"} 0.3333333333333333\n"
              "vals{k=\"j_huge\"} 1e+300\n"
              "vals{k=\"k_tiny\"} 1.5e-07\n"
              "vals{k=\"l_negzero\"} -0\n"
              "vals{k=\"m_int\"} 123456789012\n"
              "vals{k=\"n_max\"} 1.7976931348623157e+308\n");
  /* Every fraction reads back as the same double. */
  char *text = render(m);
  const char *p = strstr(text, "i_third\"} ");
  cr_assert_not_null(p);
  cr_expect_eq(strtod(p + strlen("i_third\"} "), NULL), 1.0 / 3.0);
  free(text);
  dbp_metrics_free(m);
}

Test(metrics, refuses_bad_names_and_duplicates) {
  dbp_metrics *m = dbp_metrics_new();
  const char *ok[] = {"db"};
  /* Family names. */
  cr_expect_null(dbp_metrics_gauge(m, "", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, NULL, "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "1abc", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "has-dash", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "has space", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "caf\xc3\xa9", "x", 0, NULL));
  cr_expect_null(dbp_metrics_counter(m, "requests", "x", 0, NULL)); /* no _total */
  cr_expect_null(dbp_metrics_gauge(m, "requests_total", "x", 0, NULL));
  cr_expect_null(dbp_metrics_histogram(m, "requests_total", "x", 0, NULL, 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "queue_count", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "queue_sum", "x", 0, NULL));
  cr_expect_null(dbp_metrics_histogram(m, "latency_bucket", "x", 0, NULL, 0, NULL));
  cr_expect_not_null(dbp_metrics_gauge(m, "_under:colon9", "x", 0, NULL));
  cr_expect_not_null(dbp_metrics_counter(m, "a:b_total", "x", 1, ok));
  /* Label names. */
  const char *digit[] = {"1db"}, *dunder[] = {"__name"}, *le[] = {"le"}, *q[] = {"quantile"},
             *colon[] = {"a:b"}, *empty[] = {""}, *twice[] = {"db", "db"}, *null[] = {NULL};
  cr_expect_null(dbp_metrics_gauge(m, "g1", "x", 1, digit));
  cr_expect_null(dbp_metrics_gauge(m, "g2", "x", 1, dunder));
  cr_expect_null(dbp_metrics_gauge(m, "g3", "x", 1, le));
  cr_expect_null(dbp_metrics_histogram(m, "g4", "x", 1, le, 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "g5", "x", 1, q));
  cr_expect_null(dbp_metrics_gauge(m, "g6", "x", 1, colon));
  cr_expect_null(dbp_metrics_gauge(m, "g7", "x", 1, empty));
  cr_expect_null(dbp_metrics_gauge(m, "g8", "x", 2, twice));
  cr_expect_null(dbp_metrics_gauge(m, "g9", "x", 1, null));
  cr_expect_null(dbp_metrics_gauge(m, "g10", "x", 1, NULL));
  const char *fine[] = {"_x", "a1", "Zz_9"};
  cr_expect_not_null(dbp_metrics_gauge(m, "g11", "x", 3, fine));
  /* Bounds. */
  const double down[] = {1, 0.5}, same[] = {1, 1}, nan[] = {0.0 / 0.0}, inf[] = {1, 1.0 / 0.0};
  cr_expect_null(dbp_metrics_histogram(m, "h1", "x", 0, NULL, 2, down));
  cr_expect_null(dbp_metrics_histogram(m, "h2", "x", 0, NULL, 2, same));
  cr_expect_null(dbp_metrics_histogram(m, "h3", "x", 0, NULL, 1, nan));
  cr_expect_null(dbp_metrics_histogram(m, "h4", "x", 0, NULL, 2, inf));
  cr_expect_null(dbp_metrics_histogram(m, "h5", "x", 0, NULL, 2, NULL));
  const double neg[] = {-5, -1, 0};
  cr_expect_not_null(dbp_metrics_histogram(m, "h6", "x", 0, NULL, 3, neg));
  /* Duplicates, of any kind. */
  cr_assert_not_null(dbp_metrics_gauge(m, "dup", "x", 0, NULL));
  cr_expect_null(dbp_metrics_gauge(m, "dup", "y", 0, NULL));
  cr_expect_null(dbp_metrics_histogram(m, "dup", "y", 0, NULL, 0, NULL));
  cr_assert_not_null(dbp_metrics_counter(m, "dup_total", "x", 0, NULL));
  cr_expect_null(dbp_metrics_counter(m, "dup_total", "x", 1, ok));
  /* Nothing refused left a trace. */
  expect_text(m,
              "# HELP _under:colon9 x\n# TYPE _under:colon9 gauge\n_under:colon9 0\n"
              "# HELP a:b_total x\n# TYPE a:b_total counter\n"
              "# HELP g11 x\n# TYPE g11 gauge\n"
              "# HELP h6 x\n# TYPE h6 histogram\n"
              "h6_bucket{le=\"-5\"} 0\nh6_bucket{le=\"-1\"} 0\nh6_bucket{le=\"0\"} 0\n"
              "h6_bucket{le=\"+Inf\"} 0\nh6_sum 0\nh6_count 0\n"
              "# HELP dup x\n# TYPE dup gauge\ndup 0\n"
              "# HELP dup_total x\n# TYPE dup_total counter\ndup_total 0\n");
  cr_expect_null(dbp_metrics_gauge(NULL, "nobody", "x", 0, NULL));
  dbp_metrics_free(m);
  dbp_metrics_free(NULL);
}

Test(metrics, ten_thousand_series) {
  dbp_metrics *m = dbp_metrics_new();
  const char *labels[] = {"id", "kind"};
  dbp_metric *c = dbp_metrics_counter(m, "many_total", "Many.", 2, labels);
  cr_assert_not_null(c);
  enum { N = 10000 };
  /* Created in a scrambled order (7919 is prime to N), updated twice. */
  for (int round = 0; round < 2; round++) {
    for (unsigned i = 0; i < N; i++) {
      char id[16];
      snprintf(id, sizeof id, "s%05u", (i * 7919u) % N);
      dbp_metric_inc(c, (const char *[]){id, (i * 7919u) % N % 2 ? "odd" : "even"}, 1 + round);
    }
  }
  cr_assert_eq(dbp_metric_series(c), N);
  char *text = render(m);
  const char *head = "# HELP many_total Many.\n# TYPE many_total counter\n";
  cr_assert_eq(strncmp(text, head, strlen(head)), 0);
  char *line = text + strlen(head);
  for (unsigned i = 0; i < N; i++) {
    char want[64];
    snprintf(want, sizeof want, "many_total{id=\"s%05u\",kind=\"%s\"} 3\n", i,
             i % 2 ? "odd" : "even");
    cr_assert_eq(strncmp(line, want, strlen(want)), 0, "line %u: %.60s", i, line);
    line += strlen(want);
  }
  cr_expect_str_eq(line, "");
  free(text);
  dbp_metrics_free(m);
}

/* Each bucket counts every observation up to its bound (as the test counts
 * them), none drops below the previous one, and le="+Inf" is the count. */
Test(metrics, histogram_buckets_are_cumulative_and_inf_equals_count) {
  dbp_metrics *m = dbp_metrics_new();
  const double bounds[] = {1, 2, 4, 8, 16, 32, 64};
  dbp_metric *h = dbp_metrics_histogram(m, "spread", "Spread.", 0, NULL, 7, bounds);
  cr_assert_not_null(h);
  unsigned x = 12345;
  double sum = 0;
  unsigned per[8] = {0};
  for (int i = 0; i < 1000; i++) {
    x = x * 1103515245u + 12345u;
    double v = (double)(x >> 16 & 0x7fff) / 256.0; /* 0 .. 128, some past every bound */
    sum += v;
    size_t b = 0;
    while (b < 7 && v > bounds[b]) b++;
    per[b]++;
    dbp_metric_observe(h, NULL, v);
  }
  char *text = render(m);
  const char *p = text;
  unsigned long prev = 0, cum = 0;
  for (size_t b = 0; b < 8; b++) {
    p = strstr(p, "spread_bucket{le=\"");
    cr_assert_not_null(p, "bucket %zu missing", b);
    p = strchr(p, '}') + 2;
    unsigned long n = strtoul(p, NULL, 10);
    cum += per[b];
    cr_expect_eq(n, cum, "bucket %zu: %lu, wanted %lu", b, n, cum);
    cr_expect_geq(n, prev);
    prev = n;
  }
  cr_expect_not_null(strstr(text, "spread_bucket{le=\"+Inf\"} 1000\n"));
  cr_expect_not_null(strstr(text, "spread_count 1000\n"));
  const char *s = strstr(text, "spread_sum ");
  cr_assert_not_null(s);
  cr_expect_eq(strtod(s + strlen("spread_sum "), NULL), sum);
  free(text);
  /* NaN counts only in +Inf. */
  dbp_metric_observe(h, NULL, 0.0 / 0.0);
  text = render(m);
  char le64[64];
  snprintf(le64, sizeof le64, "spread_bucket{le=\"64\"} %lu\n", cum - per[7]);
  cr_expect_not_null(strstr(text, le64), "%s", text);
  cr_expect_not_null(strstr(text, "spread_bucket{le=\"+Inf\"} 1001\n"));
  cr_expect_not_null(strstr(text, "spread_sum NaN\n"));
  cr_expect_not_null(strstr(text, "spread_count 1001\n"));
  free(text);
  dbp_metrics_free(m);
}

Test(metrics, render_appends_and_reports_a_full_buffer) {
  dbp_metrics *m = dbp_metrics_new();
  cr_assert_not_null(m);
  dbp_buf b = {0};
  cr_assert_eq(dbp_metrics_render(m, &b), 0);
  cr_expect_str_eq(dbp_buf_str(&b), ""); /* no family, no text */
  const char *l[] = {"x"};
  dbp_metric *g = dbp_metrics_gauge(m, "g", "G.", 1, l);
  cr_assert_not_null(g);
  dbp_metric_set(g, NULL, 1); /* values missing: ignored */
  cr_expect_eq(dbp_metric_series(g), 0);
  cr_assert_eq(dbp_buf_puts(&b, "before\n"), 0);
  cr_assert_eq(dbp_metrics_render(m, &b), 0);
  cr_expect_str_eq(dbp_buf_str(&b), "before\n# HELP g G.\n# TYPE g gauge\n");
  b.oom = true; /* as after a failed allocation */
  cr_expect_eq(dbp_metrics_render(m, &b), DBP_ENOMEM);
  cr_expect_eq(dbp_metrics_render(NULL, &b), DBP_EINVAL);
  dbp_buf_free(&b);
  dbp_metrics_free(m);
}

/* ---- promtool ---- */

/* promtool on PATH, or NULL. */
static const char *find_promtool(char *buf, size_t len) {
  const char *path = getenv("PATH");
  if (path == NULL) path = "/usr/bin:/bin";
  while (*path) {
    size_t k = strcspn(path, ":");
    snprintf(buf, len, "%.*s/promtool", (int)k, path);
    if (k > 0 && access(buf, X_OK) == 0) return buf;
    path += k;
    if (*path == ':') path++;
  }
  return NULL;
}

/* Runs `promtool check metrics` on text; returns its exit status and puts
 * what it printed in log. */
static int promtool_check(const char *text, char *log, size_t loglen) {
  char tool[4096];
  cr_assert_not_null(find_promtool(tool, sizeof tool),
                     "promtool is missing: install the Debian package `prometheus` "
                     "(apt-get install -y prometheus), which ships /usr/bin/promtool");
  char in[] = "/tmp/dbp-metrics-XXXXXX";
  int fd = mkstemp(in);
  cr_assert_geq(fd, 0);
  FILE *f = fdopen(fd, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fputs(text, f) >= 0, true);
  cr_assert_eq(fclose(f), 0);
  char out[64], cmd[8192];
  snprintf(out, sizeof out, "%s.out", in);
  snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' > '%s' 2>&1", tool, in, out);
  int st = system(cmd);
  cr_assert(st != -1 && WIFEXITED(st), "could not run %s", cmd);
  log[0] = '\0';
  FILE *o = fopen(out, "r");
  if (o != NULL) {
    size_t n = fread(log, 1, loglen - 1, o);
    log[n] = '\0';
    fclose(o);
  }
  unlink(in);
  unlink(out);
  return WEXITSTATUS(st);
}

Test(metrics, promtool_accepts_a_rich_registry) {
  dbp_metrics *m = dbp_metrics_new();
  const char *task_db[] = {"task", "db"};
  const char *pool[] = {"pool"};
  const double secs[] = {0.005, 0.01, 0.1, 1, 10, 60};
  dbp_metric *runs = dbp_metrics_counter(m, "dbpipe_runs_total", "Job runs started.", 0, NULL);
  dbp_metric *rows = dbp_metrics_counter(
      m, "dbpipe_rows_total", "Rows written, by task\\db (\"all\").\nSecond line.", 2, task_db);
  dbp_metric *conns = dbp_metrics_gauge(m, "dbpipe_pool_connections", "Open connections.", 1, pool);
  dbp_metric *up = dbp_metrics_gauge(m, "dbpipe_up", "Whether the service runs.", 0, NULL);
  dbp_metric *dur = dbp_metrics_histogram(m, "dbpipe_task_duration_seconds", "Task durations.", 2,
                                          task_db, 6, secs);
  dbp_metric *bytes =
      dbp_metrics_histogram(m, "dbpipe_file_size_bytes", "Output file sizes.", 0, NULL, 0, NULL);
  cr_assert(runs && rows && conns && up && dur && bytes);
  /* Registered and never used: HELP and TYPE only. */
  cr_assert_not_null(dbp_metrics_counter(m, "dbpipe_failures_total", "Failed runs.", 1, pool));
  dbp_metric_inc(runs, NULL, 3);
  const char *tricky[] = {
      "quote\"d", "back\\slash", "new\nline", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x93\xa6",
      "",         "{braces}=,",  "bad\xff"};
  for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
    dbp_metric_inc(rows, (const char *[]){tricky[i], i % 2 ? "pg" : "my"}, (double)(i * 1000));
    dbp_metric_observe(dur, (const char *[]){tricky[i], "pg"}, 0.003 * (double)(i + 1) * (double)i);
    dbp_metric_set(conns, (const char *[]){tricky[i]}, -(double)i);
  }
  dbp_metric_set(conns, (const char *[]){"nan"}, 0.0 / 0.0);
  dbp_metric_set(conns, (const char *[]){"inf"}, 1.0 / 0.0);
  dbp_metric_set(conns, (const char *[]){"-inf"}, -1.0 / 0.0);
  dbp_metric_set(conns, (const char *[]){"big"}, 1e300);
  dbp_metric_set(conns, (const char *[]){"frac"}, 1.0 / 3.0);
  dbp_metric_set(up, NULL, 1);
  dbp_metric_observe(bytes, NULL, 123456789);
  dbp_metric_observe(bytes, NULL, 0.0 / 0.0);

  char *text = render(m);
  char log[8192];
  int rc = promtool_check(text, log, sizeof log);
  cr_expect_eq(rc, 0, "promtool check metrics exited %d:\n%s\non:\n%s", rc, log, text);
  free(text);
  dbp_metrics_free(m);
}

Test(metrics, promtool_refuses_broken_text) {
  char log[8192];
  /* An unterminated label value. */
  int rc = promtool_check("# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b} 1\n", log,
                          sizeof log);
  cr_expect_neq(rc, 0, "promtool accepted broken text:\n%s", log);
  /* A well-formed text that breaks the conventions (a counter not named
   * _total, no help). */
  rc = promtool_check("# TYPE requests counter\nrequests 1\n", log, sizeof log);
  cr_expect_neq(rc, 0, "promtool accepted a counter without _total:\n%s", log);
}
