/* Waiting on several coroutines: as_completed, wait_any, gather, wait_for.
 * All of them listen for completions (dbp__co_listen) instead of joining,
 * so one waiter can watch many coroutines. */
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

struct dbp_as_completed_s {
  dbp_rt *rt;
  size_t n;
  size_t *done; /* indexes in completion order */
  size_t done_len, handed;
  dbp_waiter *waiter; /* the coroutine in dbp_as_completed_next, if any */
  dbp__listener ls[];
};

static void ac_heard(dbp__listener *l) {
  dbp_as_completed *ac = l->data;
  ac->done[ac->done_len++] = l->index;
  if (ac->waiter) {
    dbp_waiter *w = ac->waiter;
    ac->waiter = NULL;
    dbp_wake(w, 0);
  }
}

static int by_finish(const void *a, const void *b, void *cos) {
  uint64_t fa = ((dbp_co **)cos)[*(const size_t *)a]->finish_seq;
  uint64_t fb = ((dbp_co **)cos)[*(const size_t *)b]->finish_seq;
  return fa < fb ? -1 : fa > fb;
}

/* Watches cos[0..n) (which stay the caller's). Coroutines that already
 * finished are handed out first, in the order they finished. */
int dbp_as_completed_new(dbp_rt *rt, dbp_co **cos, size_t n, dbp_as_completed **out) {
  if (out) *out = NULL;
  if (!rt || !out || (n && !cos)) return DBP_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!cos[i] || cos[i]->rt != rt) return DBP_EINVAL;
  dbp_as_completed *ac = calloc(1, sizeof *ac + n * sizeof ac->ls[0]);
  if (!ac) return DBP_ENOMEM;
  ac->done = malloc((n ? n : 1) * sizeof *ac->done);
  if (!ac->done) {
    free(ac);
    return DBP_ENOMEM;
  }
  ac->rt = rt;
  ac->n = n;
  for (size_t i = 0; i < n; i++)
    if (cos[i]->state == DBP__DONE) ac->done[ac->done_len++] = i;
  qsort_r(ac->done, ac->done_len, sizeof *ac->done, by_finish, cos);
  for (size_t i = 0; i < n; i++)
    if (cos[i]->state != DBP__DONE) dbp__co_listen(cos[i], &ac->ls[i], ac_heard, ac, i);
  *out = ac;
  return 0;
}

int dbp_as_completed_next(dbp_as_completed *ac, int64_t timeout_ms, size_t *index) {
  if (!ac || !index) return DBP_EINVAL;
  if (ac->handed == ac->n) return DBP_ECLOSED;
  if (ac->handed == ac->done_len) {
    if (!ac->rt->current) return DBP_ENOTCORO;
    dbp_waiter w;
    dbp_waiter_init(&w);
    /* Lives on this stack only while it waits; cleared on wake-up. */
    /* cppcheck-suppress autoVariables */
    ac->waiter = &w;
    int rc = dbp_await(ac->rt, &w, timeout_ms);
    if (ac->waiter == &w) ac->waiter = NULL;
    if (rc != 0) return rc;
  }
  *index = ac->done[ac->handed++];
  return 0;
}

void dbp_as_completed_free(dbp_as_completed *ac) {
  if (!ac) return;
  for (size_t i = 0; i < ac->n; i++) dbp__co_unlisten(&ac->ls[i]);
  free(ac->done);
  free(ac);
}

int dbp_wait_any(dbp_rt *rt, dbp_co **cos, size_t n, int64_t timeout_ms, size_t *index) {
  if (!rt || !cos || n == 0 || !index) return DBP_EINVAL;
  dbp_as_completed *ac;
  int rc = dbp_as_completed_new(rt, cos, n, &ac);
  if (rc != 0) return rc;
  rc = dbp_as_completed_next(ac, timeout_ms, index);
  dbp_as_completed_free(ac);
  return rc;
}

/* Cancels the unfinished coroutines of cos and waits, without being
 * interrupted, until every one of them has finished. */
static void cancel_and_settle(dbp_rt *rt, dbp_co **cos, size_t n) {
  for (size_t i = 0; i < n; i++) dbp_cancel(cos[i]);
  for (size_t i = 0; i < n; i++) dbp__co_wait_done(rt, cos[i]);
}

/* Joins (and so frees) every coroutine of cos, which have all finished. */
static void join_all(dbp_co **cos, size_t n, void **results, int *errs) {
  for (size_t i = 0; i < n; i++) {
    void *r;
    int rc = dbp_join(cos[i], &r);
    if (results) results[i] = r;
    if (errs) errs[i] = rc;
  }
}

int dbp_gather(dbp_rt *rt, dbp_co **cos, size_t n, void **results, int *errs, int mode) {
  if (!rt || (n && !cos) || (mode != DBP_GATHER_FIRST_ERROR && mode != DBP_GATHER_ALL))
    return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  dbp_as_completed *ac;
  int rc = dbp_as_completed_new(rt, cos, n, &ac);
  if (rc != 0) return rc;
  int ret = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i;
    rc = dbp_as_completed_next(ac, DBP_FOREVER, &i);
    if (rc != 0) { /* the gatherer was cancelled, or its deadline passed */
      ret = rc;
      break;
    }
    if (mode == DBP_GATHER_FIRST_ERROR && cos[i]->rc != 0) {
      ret = cos[i]->rc;
      break;
    }
  }
  dbp_as_completed_free(ac);
  if (ret != 0) cancel_and_settle(rt, cos, n);
  join_all(cos, n, results, errs);
  return ret;
}

int dbp_wait_for(dbp_rt *rt, dbp_co_fn fn, void *arg, int64_t timeout_ms, void **result) {
  if (result) *result = NULL;
  if (!rt || !fn) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  dbp_co *child;
  int rc = dbp_spawn(rt, &child, fn, arg, &(dbp_spawn_options){.name = rt->current->name});
  if (rc != 0) return rc;
  size_t i;
  rc = dbp_wait_any(rt, &child, 1, timeout_ms, &i);
  if (rc != 0) { /* timed out, or the caller was cancelled */
    cancel_and_settle(rt, &child, 1);
    dbp_join(child, NULL);
    return rc;
  }
  return dbp_join(child, result);
}
