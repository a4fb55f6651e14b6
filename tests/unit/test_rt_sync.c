/* Semaphore, mutex, event and wait group: exclusion, fairness, timeouts
 * and cancellation at each kind of wait. */
#include <criterion/criterion.h>

#include "dbpipe/rt.h"
#include "rttest.h"

/* A shared record of who is inside a critical section. */
typedef struct {
  dbp_rt *rt;
  dbp_mutex *m;
  dbp_sem *s;
  int counter;
  int inside, max_inside;
  int order[32];
  int n;
} crit;

typedef struct {
  crit *c;
  int id;
} crit_arg;

static int body_mutex_increment(void *arg, void **result) {
  (void)result;
  crit *c = ((crit_arg *)arg)->c;
  cr_assert_eq(dbp_mutex_lock(c->m, DBP_FOREVER), 0);
  c->inside++;
  if (c->inside > c->max_inside) c->max_inside = c->inside;
  int v = c->counter;
  cr_assert_eq(dbp_yield(c->rt), 0);
  cr_assert_eq(dbp_sleep(c->rt, 1), 0);
  c->counter = v + 1;
  c->inside--;
  dbp_mutex_unlock(c->m);
  return 0;
}

static int body_mutex_ten(dbp_rt *rt, void *arg) {
  (void)arg;
  crit c = {.rt = rt};
  cr_assert_eq(dbp_mutex_new(rt, &c.m), 0);
  dbp_co *cos[10];
  crit_arg args[10];
  for (int i = 0; i < 10; i++) {
    args[i] = (crit_arg){&c, i};
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_mutex_increment, &args[i], NULL), 0);
  }
  for (int i = 0; i < 10; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  cr_assert_eq(c.counter, 10, "no update lost");
  cr_assert_eq(c.max_inside, 1, "the mutex excluded");
  dbp_mutex_free(c.m);
  return 0;
}

Test(rt_sync, mutex_ten_coroutines_increment_with_yields_inside) {
  cr_assert_eq(dbt_run_in_coro(body_mutex_ten, NULL), 0);
}

static int body_mutex_order(void *arg, void **result) {
  (void)result;
  crit_arg *a = arg;
  cr_assert_eq(dbp_mutex_lock(a->c->m, DBP_FOREVER), 0);
  a->c->order[a->c->n++] = a->id;
  dbp_mutex_unlock(a->c->m);
  return 0;
}

typedef struct {
  dbp_mutex *m;
  int rc;
  bool cleanup;
} lock_cancel;

static int body_lock_forever(void *arg, void **result) {
  (void)result;
  lock_cancel *l = arg;
  l->rc = dbp_mutex_lock(l->m, DBP_FOREVER);
  l->cleanup = true;
  if (l->rc == 0) dbp_mutex_unlock(l->m);
  return l->rc;
}

static int body_mutex_fifo_timeout_cancel(dbp_rt *rt, void *arg) {
  (void)arg;
  crit c = {.rt = rt};
  cr_assert_eq(dbp_mutex_new(rt, &c.m), 0);
  cr_assert_eq(dbp_mutex_lock(c.m, 0), 0, "a free mutex is taken without waiting");
  cr_assert_eq(dbp_mutex_lock(c.m, 0), DBP_ETIMEDOUT, "timeout 0 only polls");
  cr_assert_eq(dbp_mutex_lock(c.m, 10), DBP_ETIMEDOUT);
  /* FIFO: waiters get the lock in the order they asked. */
  dbp_co *cos[5];
  crit_arg args[5];
  for (int i = 0; i < 5; i++) {
    args[i] = (crit_arg){&c, i};
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_mutex_order, &args[i], NULL), 0);
  }
  cr_assert_eq(dbp_sleep(rt, 5), 0);
  cr_assert_eq(c.n, 0);
  /* A cancelled waiter leaves the queue and runs its cleanup. */
  lock_cancel lc = {.m = c.m};
  dbp_co *victim;
  cr_assert_eq(dbp_spawn(rt, &victim, body_lock_forever, &lc, NULL), 0);
  cr_assert_eq(dbp_yield(rt), 0);
  dbp_cancel(victim);
  cr_assert_eq(dbp_join(victim, NULL), DBP_ECANCELED);
  cr_assert(lc.cleanup);
  dbp_mutex_unlock(c.m);
  for (int i = 0; i < 5; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  for (int i = 0; i < 5; i++) cr_assert_eq(c.order[i], i);
  cr_assert_eq(dbp_mutex_lock(c.m, 0), 0, "unlocked at the end");
  dbp_mutex_unlock(c.m);
  dbp_mutex_free(c.m);
  return 0;
}

Test(rt_sync, mutex_fifo_timeout_and_cancel) {
  cr_assert_eq(dbt_run_in_coro(body_mutex_fifo_timeout_cancel, NULL), 0);
}

/* ---- semaphore ---- */

static int body_sem_worker(void *arg, void **result) {
  (void)result;
  crit *c = ((crit_arg *)arg)->c;
  cr_assert_eq(dbp_sem_acquire(c->s, DBP_FOREVER), 0);
  c->inside++;
  if (c->inside > c->max_inside) c->max_inside = c->inside;
  cr_assert_eq(dbp_sleep(c->rt, 2), 0);
  cr_assert_eq(dbp_yield(c->rt), 0);
  c->inside--;
  c->counter++;
  dbp_sem_release(c->s);
  return 0;
}

static int body_sem_bound(dbp_rt *rt, void *arg) {
  (void)arg;
  crit c = {.rt = rt};
  cr_assert_eq(dbp_sem_new(rt, 3, &c.s), 0);
  cr_assert_eq(dbp_sem_available(c.s), 3);
  dbp_co *cos[20];
  crit_arg args[20];
  for (int i = 0; i < 20; i++) {
    args[i] = (crit_arg){&c, i};
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_sem_worker, &args[i], NULL), 0);
  }
  for (int i = 0; i < 20; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  cr_assert_eq(c.counter, 20);
  cr_assert_eq(c.max_inside, 3, "never more inside than permits, and all used");
  cr_assert_eq(dbp_sem_available(c.s), 3);
  dbp_sem_free(c.s);
  return 0;
}

Test(rt_sync, semaphore_bounds_concurrency) {
  cr_assert_eq(dbt_run_in_coro(body_sem_bound, NULL), 0);
}

typedef struct {
  dbp_sem *s;
  int rc;
  bool cleanup;
} sem_cancel;

static int body_acquire_forever(void *arg, void **result) {
  (void)result;
  sem_cancel *sc = arg;
  sc->rc = dbp_sem_acquire(sc->s, DBP_FOREVER);
  sc->cleanup = true;
  return sc->rc;
}

static int body_sem_timeout_cancel(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_sem *s;
  cr_assert_eq(dbp_sem_new(rt, 1, &s), 0);
  cr_assert_eq(dbp_sem_acquire(s, 0), 0);
  cr_assert_eq(dbp_sem_acquire(s, 0), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_sem_acquire(s, 10), DBP_ETIMEDOUT);
  sem_cancel sc = {.s = s};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_acquire_forever, &sc, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(sc.cleanup);
  dbp_sem_release(s);
  cr_assert_eq(dbp_sem_available(s), 1, "the cancelled waiter took no permit");
  dbp_sem_free(s);
  return 0;
}

Test(rt_sync, semaphore_timeout_and_cancel) {
  cr_assert_eq(dbt_run_in_coro(body_sem_timeout_cancel, NULL), 0);
}

/* ---- event ---- */

typedef struct {
  dbp_event *e;
  int woke;
  int rc;
  bool cleanup;
} ev_ctx;

static int body_event_wait(void *arg, void **result) {
  (void)result;
  ev_ctx *e = arg;
  e->rc = dbp_event_wait(e->e, DBP_FOREVER);
  if (e->rc == 0) e->woke++;
  e->cleanup = true;
  return e->rc;
}

static int body_event(dbp_rt *rt, void *arg) {
  (void)arg;
  ev_ctx e = {0};
  cr_assert_eq(dbp_event_new(rt, &e.e), 0);
  cr_assert(!dbp_event_is_set(e.e));
  cr_assert_eq(dbp_event_wait(e.e, 0), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_event_wait(e.e, 10), DBP_ETIMEDOUT);
  dbp_co *cos[5];
  for (int i = 0; i < 5; i++) cr_assert_eq(dbp_spawn(rt, &cos[i], body_event_wait, &e, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  cr_assert_eq(e.woke, 0);
  dbp_event_set(e.e);
  for (int i = 0; i < 5; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  cr_assert_eq(e.woke, 5, "set wakes every waiter");
  cr_assert_eq(dbp_event_wait(e.e, 0), 0, "a set event does not wait");
  dbp_event_clear(e.e);
  cr_assert_eq(dbp_event_wait(e.e, 0), DBP_ETIMEDOUT);
  /* cancel at an event wait */
  dbp_co *victim;
  e.cleanup = false;
  cr_assert_eq(dbp_spawn(rt, &victim, body_event_wait, &e, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_cancel(victim);
  cr_assert_eq(dbp_join(victim, NULL), DBP_ECANCELED);
  cr_assert(e.cleanup);
  dbp_event_free(e.e);
  return 0;
}

Test(rt_sync, event_set_clear_timeout_cancel) {
  cr_assert_eq(dbt_run_in_coro(body_event, NULL), 0);
}

/* ---- wait group ---- */

typedef struct {
  dbp_rt *rt;
  dbp_waitgroup *wg;
  int finished;
  bool cleanup;
} wg_ctx;

static int body_wg_worker(void *arg, void **result) {
  (void)result;
  wg_ctx *w = arg;
  cr_assert_eq(dbp_sleep(w->rt, 3), 0);
  w->finished++;
  dbp_waitgroup_done(w->wg);
  return 0;
}

static int body_wg_wait(void *arg, void **result) {
  (void)result;
  wg_ctx *w = arg;
  int rc = dbp_waitgroup_wait(w->wg, DBP_FOREVER);
  w->cleanup = true;
  return rc;
}

static int body_waitgroup(dbp_rt *rt, void *arg) {
  (void)arg;
  wg_ctx w = {.rt = rt};
  cr_assert_eq(dbp_waitgroup_new(rt, &w.wg), 0);
  cr_assert_eq(dbp_waitgroup_wait(w.wg, 0), 0, "count zero: no wait");
  dbp_waitgroup_add(w.wg, 4);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(dbp_spawn(rt, NULL, body_wg_worker, &w, &(dbp_spawn_options){.detached = true}),
                 0);
  cr_assert_eq(dbp_waitgroup_wait(w.wg, 0), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_waitgroup_wait(w.wg, DBP_FOREVER), 0);
  cr_assert_eq(w.finished, 4);
  /* timeout and cancel */
  dbp_waitgroup_add(w.wg, 1);
  cr_assert_eq(dbp_waitgroup_wait(w.wg, 10), DBP_ETIMEDOUT);
  dbp_co *victim;
  cr_assert_eq(dbp_spawn(rt, &victim, body_wg_wait, &w, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_cancel(victim);
  cr_assert_eq(dbp_join(victim, NULL), DBP_ECANCELED);
  cr_assert(w.cleanup);
  dbp_waitgroup_done(w.wg);
  dbp_waitgroup_done(w.wg); /* one too many: ignored */
  cr_assert_eq(dbp_waitgroup_wait(w.wg, 0), 0);
  dbp_waitgroup_free(w.wg);
  return 0;
}

Test(rt_sync, waitgroup_waits_for_count_zero) {
  cr_assert_eq(dbt_run_in_coro(body_waitgroup, NULL), 0);
}

Test(rt_sync, sync_waits_outside_a_coroutine_return_enotcoro) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_sem *s;
  dbp_mutex *m;
  dbp_event *e;
  dbp_waitgroup *wg;
  cr_assert_eq(dbp_sem_new(rt, 0, &s), 0);
  cr_assert_eq(dbp_mutex_new(rt, &m), 0);
  cr_assert_eq(dbp_event_new(rt, &e), 0);
  cr_assert_eq(dbp_waitgroup_new(rt, &wg), 0);
  cr_assert_eq(dbp_sem_acquire(s, 0), DBP_ENOTCORO);
  cr_assert_eq(dbp_mutex_lock(m, 0), DBP_ENOTCORO);
  cr_assert_eq(dbp_event_wait(e, 0), DBP_ENOTCORO);
  dbp_waitgroup_add(wg, 1);
  cr_assert_eq(dbp_waitgroup_wait(wg, 0), DBP_ENOTCORO);
  cr_assert_eq(dbp_sem_acquire(NULL, 0), DBP_EINVAL);
  dbp_sem_free(s);
  dbp_mutex_free(m);
  dbp_event_free(e);
  dbp_waitgroup_free(wg);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
