/* The arithmetic of the command line's progress: percents and ETAs from
 * estimates that are guesses, the run's outlook added up from its tasks,
 * and the short forms of rates and ETAs the display and logs show. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"

TestSuite(cli_progress);

Test(cli_progress, percent_of_a_known_estimate) {
  cr_expect_eq(cli_percent(0, 1000000), 0);
  cr_expect_eq(cli_percent(412000, 1000000), 41);
  cr_expect_eq(cli_percent(1, 3), 33);
  cr_expect_eq(cli_percent(2, 3), 66, "rounded down, never up");
  cr_expect_eq(cli_percent(999999, 1000000), 99);
}

Test(cli_progress, percent_without_an_estimate_is_unknown) {
  cr_expect_eq(cli_percent(0, -1), -1);
  cr_expect_eq(cli_percent(5000, -1), -1);
  cr_expect_eq(cli_percent(5000, INT64_MIN), -1);
}

Test(cli_progress, percent_stops_at_99_when_the_estimate_is_reached_or_exceeded) {
  cr_expect_eq(cli_percent(1000, 1000), 99);
  cr_expect_eq(cli_percent(1500, 1000), 99, "never more than 100%%");
  cr_expect_eq(cli_percent(UINT64_MAX, 1), 99);
  /* An estimate of 0 (a table the catalog believes empty) is reached at once. */
  cr_expect_eq(cli_percent(0, 0), 99);
  cr_expect_eq(cli_percent(42, 0), 99);
}

Test(cli_progress, percent_of_huge_numbers_does_not_overflow) {
  /* rows * 100 would overflow: a quintillion-row estimate. */
  int64_t big = INT64_C(1000000000000000000);
  cr_expect_eq(cli_percent(UINT64_C(412000000000000000), big), 41);
  cr_expect_eq(cli_percent((uint64_t)big - 1, big), 99);
  cr_expect_eq(cli_percent(1, big), 0);
  cr_expect_eq(cli_percent((uint64_t)INT64_MAX - 1, INT64_MAX), 99, "not 100");
  cr_expect_eq(cli_percent(UINT64_MAX / 100 + 1, INT64_MAX), 2);
}

Test(cli_progress, eta_from_the_rate_and_the_rows_left) {
  cr_expect_eq(cli_eta_s(412000, 1000000, 35100.0), 17, "588,000 left at 35.1k/s: 16.75 s up");
  cr_expect_eq(cli_eta_s(0, 1000, 100.0), 10);
  cr_expect_eq(cli_eta_s(999, 1000, 1000.0), 1, "a row left is never 0 s");
  cr_expect_eq(cli_eta_s(0, 60, 0.5), 120);
}

Test(cli_progress, no_eta_without_an_estimate_a_rate_or_rows_left) {
  cr_expect_eq(cli_eta_s(10, -1, 100.0), -1, "estimate unknown");
  cr_expect_eq(cli_eta_s(10, 1000, 0.0), -1, "rate zero");
  cr_expect_eq(cli_eta_s(10, 1000, -5.0), -1, "rate negative");
  cr_expect_eq(cli_eta_s(10, 1000, 0.0 / 0.0), -1, "rate NaN");
  cr_expect_eq(cli_eta_s(1000, 1000, 100.0), -1, "estimate reached");
  cr_expect_eq(cli_eta_s(2000, 1000, 100.0), -1, "estimate exceeded: no negative ETA");
  cr_expect_eq(cli_eta_s(0, 0, 100.0), -1, "estimate zero");
}

Test(cli_progress, eta_of_huge_numbers_is_capped) {
  cr_expect_eq(cli_eta_s(0, INT64_MAX, 0.001), CLI_ETA_MAX_S);
  cr_expect_eq(cli_eta_s(0, INT64_MAX, 1e-300), CLI_ETA_MAX_S);
  int64_t s = cli_eta_s(1, INT64_MAX, 1e12);
  cr_expect_eq(s, 9223373, "got %lld", (long long)s);
}

Test(cli_progress, eta_in_short_form) {
  char b[32];
  cr_expect_str_eq(cli_fmt_eta(0, b, sizeof b), "0s");
  cr_expect_str_eq(cli_fmt_eta(12, b, sizeof b), "12s");
  cr_expect_str_eq(cli_fmt_eta(59, b, sizeof b), "59s");
  cr_expect_str_eq(cli_fmt_eta(60, b, sizeof b), "1m00s");
  cr_expect_str_eq(cli_fmt_eta(65, b, sizeof b), "1m05s");
  cr_expect_str_eq(cli_fmt_eta(3599, b, sizeof b), "59m59s");
  cr_expect_str_eq(cli_fmt_eta(3600 * 2 + 180, b, sizeof b), "2h03m");
  cr_expect_str_eq(cli_fmt_eta(86400 * 3 + 3600 * 4 + 59, b, sizeof b), "3d04h");
  cr_expect_str_eq(cli_fmt_eta(86400 * 100, b, sizeof b), ">99d");
  cr_expect_str_eq(cli_fmt_eta(CLI_ETA_MAX_S, b, sizeof b), ">99d");
  cr_expect_str_eq(cli_fmt_eta(-1, b, sizeof b), "");
  char tiny[4];
  cr_expect_str_eq(cli_fmt_eta(3600, tiny, sizeof tiny), "1h0", "cut, still terminated");
}

Test(cli_progress, rates_in_short_form) {
  char b[32];
  cr_expect_str_eq(cli_fmt_rate(0, b, sizeof b), "0");
  cr_expect_str_eq(cli_fmt_rate(-3, b, sizeof b), "0");
  cr_expect_str_eq(cli_fmt_rate(0.0 / 0.0, b, sizeof b), "0");
  cr_expect_str_eq(cli_fmt_rate(850.2, b, sizeof b), "850");
  cr_expect_str_eq(cli_fmt_rate(999.4, b, sizeof b), "999");
  cr_expect_str_eq(cli_fmt_rate(999.6, b, sizeof b), "1.00k", "not 1000");
  cr_expect_str_eq(cli_fmt_rate(4210, b, sizeof b), "4.21k");
  cr_expect_str_eq(cli_fmt_rate(35100, b, sizeof b), "35.1k");
  cr_expect_str_eq(cli_fmt_rate(412000, b, sizeof b), "412k");
  cr_expect_str_eq(cli_fmt_rate(999700, b, sizeof b), "1.00M", "not 1000k");
  cr_expect_str_eq(cli_fmt_rate(1.2e6, b, sizeof b), "1.20M");
  cr_expect_str_eq(cli_fmt_rate(3.4e9, b, sizeof b), "3.40G");
  cr_expect_str_eq(cli_fmt_rate(1e12, b, sizeof b), "1.00T");
  cr_expect_str_eq(cli_fmt_rate(5e15, b, sizeof b), "5000T", "the largest unit goes on");
}

static dbp_task_info task(dbp_task_state st, int64_t est, uint64_t rows, double rate) {
  dbp_task_info t;
  memset(&t, 0, sizeof t);
  t.name = "t";
  t.state = st;
  t.rows_estimate = est;
  t.progress.rows = rows;
  t.rows_per_sec = rate;
  t.nparts = 1;
  return t;
}

Test(cli_progress, the_run_outlook_adds_up_its_tasks) {
  dbp_task_info ts[] = {
      task(DBP_TASK_DONE, 1000, 1200, 0),       /* counts as its estimate */
      task(DBP_TASK_RUNNING, 1000, 500, 100.0), /* 500 toward 1000 */
      task(DBP_TASK_RUNNING, 1000, 1500, 50.0), /* exceeded: counts 1000 */
      task(DBP_TASK_QUEUED, 1000, 0, 0),        /* nothing yet */
      task(DBP_TASK_FAILED, 1000, 300, 0),      /* left out */
      task(DBP_TASK_CONNECTING, 0, 0, 0),       /* estimated empty */
  };
  ts[0].table = "public.a";
  cli_outlook o = {0};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) cli_outlook_add(&o, &ts[i]);
  cr_expect_eq(o.tasks, 6);
  cr_expect_eq(o.tables, 1);
  cr_expect_eq(o.counted, 5);
  cr_expect_eq(o.done, 1);
  cr_expect_eq(o.unestimated, 0);
  cr_expect_eq(o.estimate, 4000);
  cr_expect_eq(o.progress, 2500);
  cr_expect_float_eq(o.rows_per_sec, 150.0, 1e-9);
  cr_expect_eq(cli_outlook_percent(&o), 62);
  cr_expect_eq(cli_outlook_eta_s(&o), 10, "1,500 left at 150 rows/s");
}

Test(cli_progress, a_task_without_an_estimate_leaves_the_run_without_a_percent) {
  dbp_task_info a = task(DBP_TASK_RUNNING, 1000, 500, 100.0);
  dbp_task_info q = task(DBP_TASK_RUNNING, -1, 500, 100.0);
  cli_outlook o = {0};
  cli_outlook_add(&o, &a);
  cli_outlook_add(&o, &q);
  cr_expect_eq(o.unestimated, 1);
  cr_expect_eq(cli_outlook_percent(&o), -1);
  cr_expect_eq(cli_outlook_eta_s(&o), -1);
  cr_expect_float_eq(o.rows_per_sec, 200.0, 1e-9, "its rate still counts");

  /* Once the unestimated one is done, the rest has a percent again. */
  q.state = DBP_TASK_DONE;
  o = (cli_outlook){0};
  cli_outlook_add(&o, &a);
  cli_outlook_add(&o, &q);
  cr_expect_eq(o.unestimated, 0);
  cr_expect_eq(o.done, 1);
  cr_expect_eq(cli_outlook_percent(&o), 50);
  cr_expect_eq(cli_outlook_eta_s(&o), 5);

  /* The same once it failed. */
  q.state = DBP_TASK_FAILED;
  o = (cli_outlook){0};
  cli_outlook_add(&o, &a);
  cli_outlook_add(&o, &q);
  cr_expect_eq(cli_outlook_percent(&o), 50);
  cr_expect_eq(cli_outlook_eta_s(&o), 5);
}

Test(cli_progress, the_run_outlook_at_its_edges) {
  cli_outlook o = {0};
  cr_expect_eq(cli_outlook_percent(&o), -1, "no task");
  cr_expect_eq(cli_outlook_eta_s(&o), -1);

  dbp_task_info d = task(DBP_TASK_DONE, 0, 0, 0);
  cli_outlook_add(&o, &d);
  cr_expect_eq(cli_outlook_percent(&o), 100, "everything done");
  cr_expect_eq(cli_outlook_eta_s(&o), -1);

  dbp_task_info r = task(DBP_TASK_RUNNING, 0, 10, 0);
  cli_outlook_add(&o, &r);
  cr_expect_eq(cli_outlook_percent(&o), 99, "estimates reached but not done");
  cr_expect_eq(cli_outlook_eta_s(&o), -1);

  /* Rate zero: a percent, no ETA. */
  o = (cli_outlook){0};
  dbp_task_info z = task(DBP_TASK_RUNNING, 100, 10, 0);
  cli_outlook_add(&o, &z);
  cr_expect_eq(cli_outlook_percent(&o), 10);
  cr_expect_eq(cli_outlook_eta_s(&o), -1);

  /* A retrying task's rate does not count (it is not exporting). */
  o = (cli_outlook){0};
  dbp_task_info rt = task(DBP_TASK_RETRYING, 100, 10, 500.0);
  cli_outlook_add(&o, &rt);
  cr_expect_float_eq(o.rows_per_sec, 0.0, 1e-9);
}

Test(cli_progress, the_run_outlook_saturates_on_huge_estimates) {
  cli_outlook o = {0};
  dbp_task_info a = task(DBP_TASK_RUNNING, INT64_MAX, (uint64_t)INT64_MAX / 2, 1e9);
  dbp_task_info b = task(DBP_TASK_QUEUED, INT64_MAX, 0, 0);
  dbp_task_info c = task(DBP_TASK_QUEUED, INT64_MAX, 0, 0);
  cli_outlook_add(&o, &a);
  cli_outlook_add(&o, &b);
  cli_outlook_add(&o, &c);
  cr_expect_eq(o.estimate, UINT64_MAX, "saturated, not wrapped");
  int pct = cli_outlook_percent(&o);
  cr_expect(pct >= 0 && pct <= 99, "percent %d", pct);
  int64_t eta = cli_outlook_eta_s(&o);
  cr_expect(eta > 0 && eta <= CLI_ETA_MAX_S, "eta %lld", (long long)eta);
}
