/* Composing coroutines: gather, wait_any, as_completed, wait_for, and the
 * deadline scopes that bound every wait. */
#include <criterion/criterion.h>

#include "dbpipe/rt.h"
#include "rttest.h"

/* A child that sleeps `ms`, then returns `rc` with result `id`; records
 * whether its cleanup ran after a cancel. */
typedef struct {
  dbp_rt *rt;
  int64_t ms;
  int rc;
  int id;
  bool cleanup;
  bool finished;
} child;

static int body_child(void *arg, void **result) {
  child *c = arg;
  int rc = dbp_sleep(c->rt, c->ms);
  c->cleanup = true;
  if (rc != 0) return rc;
  c->finished = true;
  *result = (void *)(intptr_t)c->id;
  return c->rc;
}

static void spawn_children(dbp_rt *rt, child *cs, dbp_co **cos, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cs[i].rt = rt;
    cs[i].id = (int)i + 100;
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_child, &cs[i], NULL), 0);
  }
}

static int body_gather_all(dbp_rt *rt, void *arg) {
  (void)arg;
  child cs[4] = {{.ms = 30}, {.ms = 5, .rc = DBP_EIO}, {.ms = 10}, {.ms = 1, .rc = DBP_EQUERY}};
  dbp_co *cos[4];
  spawn_children(rt, cs, cos, 4);
  void *results[4];
  int errs[4];
  cr_assert_eq(dbp_gather(rt, cos, 4, results, errs, DBP_GATHER_ALL), 0,
               "ALL returns 0, errors only in errs");
  int expect[4] = {0, DBP_EIO, 0, DBP_EQUERY};
  for (int i = 0; i < 4; i++) {
    cr_assert(cs[i].finished, "every child ran to the end");
    cr_assert_eq(errs[i], expect[i]);
    cr_assert_eq(results[i], (void *)(intptr_t)(100 + i));
  }
  return 0;
}

Test(rt_compose, gather_all_collects_every_result_and_error) {
  cr_assert_eq(dbt_run_in_coro(body_gather_all, NULL), 0);
}

static int body_gather_first_error(dbp_rt *rt, void *arg) {
  (void)arg;
  child cs[4] = {{.ms = 10000}, {.ms = 5, .rc = DBP_EIO}, {.ms = 1}, {.ms = 10000}};
  dbp_co *cos[4];
  spawn_children(rt, cs, cos, 4);
  int errs[4];
  uint64_t t0 = dbp_now(rt);
  cr_assert_eq(dbp_gather(rt, cos, 4, NULL, errs, DBP_GATHER_FIRST_ERROR), DBP_EIO);
  cr_assert_lt(dbp_now(rt) - t0, 5000, "the long children were cancelled");
  cr_assert_eq(errs[0], DBP_ECANCELED);
  cr_assert_eq(errs[1], DBP_EIO);
  cr_assert_eq(errs[2], 0);
  cr_assert_eq(errs[3], DBP_ECANCELED);
  cr_assert(cs[0].cleanup && cs[3].cleanup, "the cancelled children cleaned up");
  cr_assert(!cs[0].finished && !cs[3].finished);
  /* all succeed: 0 */
  child ok[3] = {{.ms = 3}, {.ms = 1}, {.ms = 2}};
  spawn_children(rt, ok, cos, 3);
  void *results[3];
  cr_assert_eq(dbp_gather(rt, cos, 3, results, NULL, DBP_GATHER_FIRST_ERROR), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(results[i], (void *)(intptr_t)(100 + i));
  return 0;
}

Test(rt_compose, gather_first_error_cancels_the_rest) {
  cr_assert_eq(dbt_run_in_coro(body_gather_first_error, NULL), 0);
}

typedef struct {
  dbp_rt *rt;
  child cs[3];
  int rc;
} gatherer;

static int body_gatherer(void *arg, void **result) {
  (void)result;
  gatherer *g = arg;
  dbp_co *cos[3];
  spawn_children(g->rt, g->cs, cos, 3);
  g->rc = dbp_gather(g->rt, cos, 3, NULL, NULL, DBP_GATHER_ALL);
  return g->rc;
}

static int body_gather_cancelled(dbp_rt *rt, void *arg) {
  (void)arg;
  gatherer g = {.rt = rt, .cs = {{.ms = 10000}, {.ms = 1}, {.ms = 10000}}};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_gatherer, &g, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 10), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(g.cs[1].finished);
  cr_assert(g.cs[0].cleanup && !g.cs[0].finished, "children cancelled and awaited");
  cr_assert(g.cs[2].cleanup && !g.cs[2].finished);
  return 0;
}

Test(rt_compose, cancelled_gather_cancels_and_awaits_children) {
  cr_assert_eq(dbt_run_in_coro(body_gather_cancelled, NULL), 0);
}

static int body_wait_any(dbp_rt *rt, void *arg) {
  (void)arg;
  child cs[3] = {{.ms = 40}, {.ms = 10}, {.ms = 25}};
  dbp_co *cos[3];
  spawn_children(rt, cs, cos, 3);
  size_t idx = 99;
  cr_assert_eq(dbp_wait_any(rt, cos, 3, 0, &idx), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_wait_any(rt, cos, 3, 2, &idx), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_wait_any(rt, cos, 3, DBP_FOREVER, &idx), 0);
  cr_assert_eq(idx, 1);
  cr_assert(!dbp_co_done(cos[0]) && !dbp_co_done(cos[2]), "joins nothing, waits for one");
  cr_assert_eq(dbp_wait_any(rt, cos, 3, 0, &idx), 0, "a finished one answers at once");
  cr_assert_eq(idx, 1);
  for (int i = 0; i < 3; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  return 0;
}

Test(rt_compose, wait_any_returns_the_first_to_finish) {
  cr_assert_eq(dbt_run_in_coro(body_wait_any, NULL), 0);
}

static int body_as_completed(dbp_rt *rt, void *arg) {
  (void)arg;
  child cs[5] = {{.ms = 50}, {.ms = 10}, {.ms = 40}, {.ms = 1}, {.ms = 25}};
  dbp_co *cos[5];
  spawn_children(rt, cs, cos, 5);
  dbp_as_completed *ac;
  cr_assert_eq(dbp_as_completed_new(rt, cos, 5, &ac), 0);
  size_t order[5], idx;
  for (int i = 0; i < 5; i++) cr_assert_eq(dbp_as_completed_next(ac, DBP_FOREVER, &order[i]), 0);
  cr_assert_eq(dbp_as_completed_next(ac, DBP_FOREVER, &idx), DBP_ECLOSED);
  dbp_as_completed_free(ac);
  size_t expect[5] = {3, 1, 4, 2, 0};
  for (int i = 0; i < 5; i++) cr_assert_eq(order[i], expect[i], "position %d", i);
  /* Already finished ones come out in the order they finished. */
  cr_assert_eq(dbp_as_completed_new(rt, cos, 5, &ac), 0);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(dbp_as_completed_next(ac, 0, &idx), 0);
    cr_assert_eq(idx, expect[i]);
  }
  dbp_as_completed_free(ac);
  for (int i = 0; i < 5; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  /* Timeout while nothing finished; freeing early is fine. */
  child late[1] = {{.ms = 30}};
  spawn_children(rt, late, cos, 1);
  cr_assert_eq(dbp_as_completed_new(rt, cos, 1, &ac), 0);
  cr_assert_eq(dbp_as_completed_next(ac, 1, &idx), DBP_ETIMEDOUT);
  dbp_as_completed_free(ac);
  cr_assert_eq(dbp_join(cos[0], NULL), 0);
  return 0;
}

Test(rt_compose, as_completed_hands_out_in_completion_order) {
  cr_assert_eq(dbt_run_in_coro(body_as_completed, NULL), 0);
}

/* ---- wait_for ---- */

static int body_wait_for(dbp_rt *rt, void *arg) {
  (void)arg;
  child fast = {.rt = rt, .ms = 1, .id = 5};
  void *res = NULL;
  cr_assert_eq(dbp_wait_for(rt, body_child, &fast, 5000, &res), 0);
  cr_assert_eq(res, (void *)(intptr_t)5);
  child err = {.rt = rt, .ms = 1, .rc = DBP_EIO};
  cr_assert_eq(dbp_wait_for(rt, body_child, &err, 5000, NULL), DBP_EIO);
  child slow = {.rt = rt, .ms = 10000};
  uint64_t t0 = dbp_now(rt);
  cr_assert_eq(dbp_wait_for(rt, body_child, &slow, 20, &res), DBP_ETIMEDOUT);
  cr_assert_lt(dbp_now(rt) - t0, 5000);
  cr_assert(slow.cleanup, "the child was cancelled and its cleanup awaited");
  cr_assert(!slow.finished);
  return 0;
}

Test(rt_compose, wait_for_times_out_and_cancels_the_child) {
  cr_assert_eq(dbt_run_in_coro(body_wait_for, NULL), 0);
}

/* ---- deadlines ---- */

static int body_deadlines(dbp_rt *rt, void *arg) {
  (void)arg;
  uint64_t outer, inner;
  uint64_t t0 = dbp_now(rt);
  cr_assert_eq(dbp_deadline_push(rt, 30, &outer), 0);
  cr_assert_eq(dbp_sleep(rt, 5), 0, "a wait that ends before the deadline is unaffected");
  cr_assert_eq(dbp_deadline_push(rt, 10000, &inner), 0);
  /* the nearest deadline wins: the outer 30 ms one */
  cr_assert_eq(dbp_sleep(rt, 10000), DBP_ETIMEDOUT);
  cr_assert_lt(dbp_now(rt) - t0, 5000);
  cr_assert_geq(dbp_now(rt) - t0, 29);
  dbp_deadline_pop(rt, inner);
  cr_assert_eq(dbp_yield(rt), DBP_ETIMEDOUT, "the passed deadline bounds every wait");
  dbp_deadline_pop(rt, outer);
  cr_assert_eq(dbp_sleep(rt, 1), 0, "popped: waits work again");
  cr_assert_eq(dbp_yield(rt), 0);
  /* a deadline ends waits of every kind */
  dbp_event *e;
  dbp_chan *ch;
  cr_assert_eq(dbp_event_new(rt, &e), 0);
  cr_assert_eq(dbp_chan_new(rt, 1, &ch), 0);
  cr_assert_eq(dbp_deadline_push(rt, 10, &outer), 0);
  cr_assert_eq(dbp_event_wait(e, DBP_FOREVER), DBP_ETIMEDOUT);
  dbp_deadline_pop(rt, outer);
  cr_assert_eq(dbp_deadline_push(rt, 10, &outer), 0);
  void *item;
  cr_assert_eq(dbp_chan_recv(ch, &item, DBP_FOREVER), DBP_ETIMEDOUT);
  dbp_deadline_pop(rt, outer);
  /* wait_for inside a deadline: the deadline applies to the caller */
  cr_assert_eq(dbp_deadline_push(rt, 10, &outer), 0);
  child slow = {.rt = rt, .ms = 10000};
  cr_assert_eq(dbp_wait_for(rt, body_child, &slow, DBP_FOREVER, NULL), DBP_ETIMEDOUT);
  cr_assert(slow.cleanup);
  dbp_deadline_pop(rt, outer);
  dbp_event_free(e);
  dbp_chan_free(ch);
  return 0;
}

Test(rt_compose, deadline_scopes_nest_and_bound_every_wait) {
  cr_assert_eq(dbt_run_in_coro(body_deadlines, NULL), 0);
}

/* ---- cancel at join ---- */

typedef struct {
  dbp_rt *rt;
  dbp_co *target;
  int rc;
  bool cleanup;
} joiner;

static int body_join_target(void *arg, void **result) {
  (void)result;
  joiner *j = arg;
  j->rc = dbp_join(j->target, NULL);
  j->cleanup = true;
  return j->rc;
}

static int body_cancel_join(dbp_rt *rt, void *arg) {
  (void)arg;
  child c = {.rt = rt, .ms = 40};
  joiner j = {.rt = rt};
  cr_assert_eq(dbp_spawn(rt, &j.target, body_child, &c, NULL), 0);
  dbp_co *jco;
  cr_assert_eq(dbp_spawn(rt, &jco, body_join_target, &j, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 5), 0);
  dbp_cancel(jco);
  cr_assert_eq(dbp_join(jco, NULL), DBP_ECANCELED);
  cr_assert(j.cleanup);
  cr_assert(!dbp_co_done(j.target), "the target keeps running, still owned");
  void *res;
  cr_assert_eq(dbp_join(j.target, &res), 0);
  cr_assert_eq(res, (void *)(intptr_t)0);
  cr_assert(c.finished);
  return 0;
}

Test(rt_compose, cancel_at_join) {
  cr_assert_eq(dbt_run_in_coro(body_cancel_join, NULL), 0);
}

static int body_detach(dbp_rt *rt, void *arg) {
  (void)arg;
  child c = {.rt = rt, .ms = 5};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_child, &c, NULL), 0);
  dbp_detach(co);
  cr_assert_eq(dbp_rt_alive(rt), 2);
  cr_assert_eq(dbp_sleep(rt, 20), 0);
  cr_assert(c.finished);
  cr_assert_eq(dbp_rt_alive(rt), 1, "the detached coroutine went away by itself");
  return 0;
}

Test(rt_compose, detached_coroutine_frees_itself) {
  cr_assert_eq(dbt_run_in_coro(body_detach, NULL), 0);
}

Test(rt_compose, compose_outside_a_coroutine_returns_enotcoro) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  child c = {.rt = rt, .ms = 1};
  cr_assert_eq(dbp_wait_for(rt, body_child, &c, 10, NULL), DBP_ENOTCORO);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_child, &c, NULL), 0);
  cr_assert_eq(dbp_gather(rt, &co, 1, NULL, NULL, DBP_GATHER_ALL), DBP_ENOTCORO);
  size_t idx;
  cr_assert_eq(dbp_wait_any(rt, &co, 1, 0, &idx), DBP_ENOTCORO);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_wait_any(rt, &co, 1, 0, &idx), 0, "finished: answers without waiting");
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
