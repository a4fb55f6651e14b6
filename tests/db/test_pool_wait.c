/* The pool's histogram of acquire waits (dbp_pool_stats.wait_buckets,
 * wait_us_total) against real PostgreSQL and MariaDB servers: a wait for a
 * held connection lands in the bucket of its length, a quick acquire in the
 * bucket its own measured wait belongs to, and acquires that time out, fail
 * at once or are made by a one-call helper are counted exactly as
 * wait_ms_total counts them. The only timing asserted is a lower bound a
 * wait cannot undercut: a waiter behind a held connection waits at least
 * (nearly) as long as it is held. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdint.h>

#include "dbpipe.h"
#include "dbtest.h"
#include "pooltest.h"

/* The documented bounds, in microseconds, kept apart from the library's own
 * table so that a changed bound fails here. */
static const uint64_t bounds_us[DBP_POOL_WAIT_BUCKETS - 1] = {
    1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, 30000000, 60000000,
};

static size_t bucket_of(uint64_t us) {
  size_t i = 0;
  while (i < DBP_POOL_WAIT_BUCKETS - 1 && us > bounds_us[i]) i++;
  return i;
}

static uint64_t bucket_sum(const dbp_pool_stats *s) {
  uint64_t n = 0;
  for (size_t i = 0; i < DBP_POOL_WAIT_BUCKETS; i++) n += s->wait_buckets[i];
  return n;
}

/* Between two snapshots exactly one acquire was counted: returns its
 * bucket after checking it is the one its measured wait belongs to. */
static size_t one_wait(const dbp_pool_stats *before, const dbp_pool_stats *after, uint64_t *us) {
  size_t hit = DBP_POOL_WAIT_BUCKETS;
  for (size_t i = 0; i < DBP_POOL_WAIT_BUCKETS; i++) {
    uint64_t d = after->wait_buckets[i] - before->wait_buckets[i];
    cr_assert_leq(d, 1, "bucket %zu grew by %" PRIu64, i, d);
    if (d == 1) {
      cr_assert_eq(hit, DBP_POOL_WAIT_BUCKETS, "two buckets grew for one acquire");
      hit = i;
    }
  }
  cr_assert_neq(hit, DBP_POOL_WAIT_BUCKETS, "no bucket grew");
  *us = after->wait_us_total - before->wait_us_total;
  cr_assert_eq(hit, bucket_of(*us), "a wait of %" PRIu64 " us counted in bucket %zu", *us, hit);
  return hit;
}

Test(pool_wait, bounds_are_the_documented_ones) {
  for (size_t i = 0; i < DBP_POOL_WAIT_BUCKETS - 1; i++)
    cr_assert_eq(dbp_pool_wait_bounds[i], (double)bounds_us[i] / 1e6, "bound %zu is %g", i,
                 dbp_pool_wait_bounds[i]);
}

/* ---- a wait for a held connection ---- */

typedef struct wait_arg {
  tctx *t;
  dbp_pool *p;
  int rc;
} wait_arg;

static int waiter(void *arg, void **result) {
  (void)result;
  wait_arg *w = arg;
  dbp_conn *c = NULL;
  w->rc = dbp_pool_acquire(w->p, 30000, &c, NULL);
  if (c) dbp_pool_release(w->p, c);
  return 0;
}

POOL_TEST(a_wait_for_a_held_connection_lands_in_its_bucket, 60) {
  /* No ping before a hand-out: the holder's acquire then does not wait on
   * the server at all. */
  dbp_pool_options o = {.max_size = 1, .check_after_ms = DBP_FOREVER};
  dbp_pool *p = mkpool(t, &o);
  dbp_pool_stats s0 = stats(p);
  cr_assert_eq(bucket_sum(&s0), 0);
  cr_assert_eq(s0.wait_us_total, 0);

  /* Open the connection first, so the holder takes an idle one. */
  dbp_conn *c = must_acquire(t, p);
  dbp_pool_release(p, c);

  dbp_pool_stats s1 = stats(p);
  c = must_acquire(t, p);
  dbp_pool_stats s2 = stats(p);
  uint64_t quick_us = 0;
  one_wait(&s1, &s2, &quick_us);

  wait_arg w = {t, p, -1};
  dbp_co *co;
  spawn(t, &co, waiter, &w);
  yield_until_waiting(t, p, 1);
  dbp_sleep(t->rt, 200);
  dbp_pool_release(p, c);
  join_all(&co, 1);
  cr_assert_eq(w.rc, 0);

  dbp_pool_stats s3 = stats(p);
  uint64_t waited_us = 0;
  size_t b = one_wait(&s2, &s3, &waited_us);
  /* The loop's timers run on its cached clock, so the hold may be a loop
   * turn short of 200 ms of real time; 150 ms it cannot undercut. */
  cr_assert_geq(waited_us, 150000, "waited %" PRIu64 " us for a connection held 200 ms", waited_us);
  cr_assert_geq(b, 5, "a wait above 0.1 s in bucket %zu", b);
  cr_assert_geq(dbp_pool_wait_bounds[b - 1], 0.1);

  cr_assert_eq(s3.acquired, 3);
  cr_assert_eq(bucket_sum(&s3), 3, "one count per acquire");
  cr_assert_geq(s3.wait_us_total, 150000);
  cr_assert_geq(s3.wait_ms_total, 150);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- failed acquires ---- */

POOL_TEST(acquires_that_time_out_are_counted, 60) {
  dbp_pool_options o = {.max_size = 1};
  dbp_pool *p = mkpool(t, &o);
  dbp_conn *c = must_acquire(t, p);

  dbp_pool_stats s0 = stats(p);
  dbp_conn *d = NULL;
  cr_assert_eq(dbp_pool_acquire(p, 200, &d, NULL), DBP_ETIMEDOUT);
  cr_assert_null(d);
  dbp_pool_stats s1 = stats(p);
  uint64_t us = 0;
  size_t b = one_wait(&s0, &s1, &us);
  cr_assert_eq(s1.timeouts, 1);
  cr_assert_geq(s1.wait_ms_total - s0.wait_ms_total, 200);
  cr_assert_geq(us, 150000, "timed out after %" PRIu64 " us of a 200 ms limit", us);
  cr_assert_geq(b, 5);

  /* A zero timeout fails without waiting, and is counted all the same. */
  cr_assert_eq(dbp_pool_acquire(p, 0, &d, NULL), DBP_ETIMEDOUT);
  dbp_pool_stats s2 = stats(p);
  one_wait(&s1, &s2, &us);
  cr_assert_eq(s2.timeouts, 2);

  dbp_pool_release(p, c);
  dbp_pool_stats s3 = stats(p);
  cr_assert_eq(s3.acquired + s3.timeouts, 3);
  cr_assert_eq(bucket_sum(&s3), 3, "successful and timed-out acquires alike");
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}

/* ---- the one-call helpers ---- */

POOL_TEST(a_helper_that_takes_a_connection_is_counted, 60) {
  dbp_pool_options o = {.max_size = 2};
  dbp_pool *p = mkpool(t, &o);
  /* With no connection yet, the statement acquires one (on PostgreSQL to
   * open a pipe on, on MariaDB to run alone): one acquire, one count. */
  dbp_pool_stats s0 = stats(p);
  int64_t n = -1;
  cr_assert_eq(dbp_pool_exec(p, "SELECT 1", 0, NULL, 10000, &n, NULL), 0);
  dbp_pool_stats s1 = stats(p);
  uint64_t us = 0;
  one_wait(&s0, &s1, &us);
  cr_assert_eq(s1.statements, 1);
  cr_assert_eq(s1.acquired, 1);
  cr_assert_eq(bucket_sum(&s1), s1.acquired + s1.timeouts);
  cr_assert_eq(dbp_pool_close(p, 10000), 0);
}
