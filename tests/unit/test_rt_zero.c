/* A zero timeout means "do not wait" in every call that takes one: what is
 * ready now succeeds, anything else fails at once with DBP_ETIMEDOUT,
 * without letting another coroutine run and without leaving a waiter
 * behind. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe/rt.h"
#include "rttest.h"

/* A coroutine that only records that it ran: if a zero-timeout call let
 * the loop turn, it would have. */
static int mark_main(void *arg, void **result) {
  (void)result;
  *(int *)arg = 1;
  return 0;
}

typedef struct {
  dbp_rt *rt;
  int ran;
  dbp_co *bystander;
} zctx;

static int bystander_start(zctx *z) {
  z->ran = 0;
  return dbp_spawn(z->rt, &z->bystander, mark_main, &z->ran, NULL);
}

/* Checks that nothing else ran meanwhile, then lets the bystander finish. */
static int bystander_end(zctx *z) {
  int ran = z->ran;
  int rc = dbp_join(z->bystander, NULL);
  return ran == 0 && rc == 0 ? 0 : -1;
}

static int body_sem_mutex(dbp_rt *rt, void *arg) {
  (void)arg;
  zctx z = {.rt = rt};
  dbp_sem *s;
  CHECK(dbp_sem_new(rt, 1, &s) == 0);
  CHECK(bystander_start(&z) == 0);
  CHECK(dbp_sem_acquire(s, 0) == 0); /* a permit is there */
  CHECK(dbp_sem_acquire(s, 0) == DBP_ETIMEDOUT);
  CHECK(bystander_end(&z) == 0);
  dbp_sem_release(s);
  CHECK(dbp_sem_available(s) == 1); /* the failed acquire left nothing queued */
  dbp_sem_free(s);

  dbp_mutex *m;
  CHECK(dbp_mutex_new(rt, &m) == 0);
  CHECK(bystander_start(&z) == 0);
  CHECK(dbp_mutex_lock(m, 0) == 0);
  CHECK(dbp_mutex_lock(m, 0) == DBP_ETIMEDOUT);
  CHECK(bystander_end(&z) == 0);
  dbp_mutex_unlock(m);
  CHECK(dbp_mutex_lock(m, 0) == 0); /* unlocked: no queued waiter took it */
  dbp_mutex_unlock(m);
  dbp_mutex_free(m);
  return 0;
}

Test(rt_zero, sem_and_mutex) {
  dbt_run(body_sem_mutex, NULL);
}

static int body_event_wg(dbp_rt *rt, void *arg) {
  (void)arg;
  zctx z = {.rt = rt};
  dbp_event *e;
  dbp_waitgroup *wg;
  CHECK(dbp_event_new(rt, &e) == 0);
  CHECK(dbp_waitgroup_new(rt, &wg) == 0);
  CHECK(bystander_start(&z) == 0);
  CHECK(dbp_event_wait(e, 0) == DBP_ETIMEDOUT);
  dbp_event_set(e);
  CHECK(dbp_event_wait(e, 0) == 0);
  CHECK(dbp_waitgroup_wait(wg, 0) == 0);
  dbp_waitgroup_add(wg, 1);
  CHECK(dbp_waitgroup_wait(wg, 0) == DBP_ETIMEDOUT);
  CHECK(bystander_end(&z) == 0);
  dbp_waitgroup_done(wg);
  dbp_waitgroup_free(wg);
  dbp_event_free(e);
  return 0;
}

Test(rt_zero, event_and_waitgroup) {
  dbt_run(body_event_wg, NULL);
}

static int body_chan(dbp_rt *rt, void *arg) {
  (void)arg;
  zctx z = {.rt = rt};
  dbp_chan *ch;
  CHECK(dbp_chan_new(rt, 1, &ch) == 0);
  int a = 1, b = 2;
  void *got = NULL;
  CHECK(bystander_start(&z) == 0);
  CHECK(dbp_chan_recv(ch, &got, 0) == DBP_ETIMEDOUT && got == NULL); /* empty */
  CHECK(dbp_chan_send(ch, &a, 0) == 0);                              /* room */
  CHECK(dbp_chan_send(ch, &b, 0) == DBP_ETIMEDOUT);                  /* full */
  CHECK(dbp_chan_len(ch) == 1);
  CHECK(dbp_chan_recv(ch, &got, 0) == 0 && got == &a);
  CHECK(dbp_chan_recv(ch, &got, 0) == DBP_ETIMEDOUT); /* b never went in */
  CHECK(bystander_end(&z) == 0);
  dbp_chan_close(ch);
  CHECK(dbp_chan_send(ch, &a, 0) == DBP_ECLOSED);
  CHECK(dbp_chan_recv(ch, &got, 0) == DBP_ECLOSED);
  dbp_chan_free(ch);

  dbp_chan *pq;
  CHECK(dbp_chan_new_priority(rt, 1, &pq) == 0);
  CHECK(dbp_chan_send_prio(pq, &a, 5, 0) == 0);
  CHECK(dbp_chan_send_prio(pq, &b, 1, 0) == DBP_ETIMEDOUT);
  dbp_chan_free(pq);
  return 0;
}

Test(rt_zero, channel_send_and_recv) {
  dbt_run(body_chan, NULL);
}

static int sleeper_main(void *arg, void **result) {
  (void)result;
  return dbp_sleep(arg, 50);
}

static int body_join_any(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_co *co, *done;
  CHECK(dbp_spawn(rt, &co, sleeper_main, rt, NULL) == 0);
  int ran = 0;
  CHECK(dbp_spawn(rt, &done, mark_main, &ran, NULL) == 0);
  CHECK(dbp_yield(rt) == 0); /* `done` finishes, `co` sleeps */
  CHECK(ran == 1 && dbp_co_done(done) && !dbp_co_done(co));
  size_t i = 99;
  CHECK(dbp_wait_any(rt, &co, 1, 0, &i) == DBP_ETIMEDOUT && i == 99);
  dbp_co *both[2] = {co, done};
  CHECK(dbp_wait_any(rt, both, 2, 0, &i) == 0 && i == 1);
  dbp_as_completed *ac;
  CHECK(dbp_as_completed_new(rt, both, 2, &ac) == 0);
  CHECK(dbp_as_completed_next(ac, 0, &i) == 0 && i == 1);
  CHECK(dbp_as_completed_next(ac, 0, &i) == DBP_ETIMEDOUT);
  dbp_as_completed_free(ac);
  CHECK(dbp_join_timeout(co, NULL, 0) == DBP_ETIMEDOUT); /* still owned */
  CHECK(dbp_join_timeout(done, NULL, 0) == 0);           /* finished: joined */
  CHECK(dbp_join(co, NULL) == 0);
  dbp_waiter w;
  dbp_waiter_init(&w);
  CHECK(dbp_await(rt, &w, 0) == DBP_ETIMEDOUT);
  dbp_wake(&w, 3);
  CHECK(dbp_await(rt, &w, 0) == 0 && w.result == 3);
  return 0;
}

Test(rt_zero, join_wait_any_as_completed_await) {
  dbt_run(body_join_any, NULL);
}

/* The one behaviour that changed: a zero-timeout fd wait looks at the fd
 * (before, it failed without looking, even when the fd was ready). */
static int body_fd(dbp_rt *rt, void *arg) {
  (void)arg;
  int p[2];
  CHECK(pipe(p) == 0);
  dbp_fdwatch *r, *w;
  CHECK(dbp_fdwatch_new(rt, p[0], &r) == 0);
  CHECK(dbp_fdwatch_new(rt, p[1], &w) == 0);
  int rev = -1;
  CHECK(dbp_fdwatch_wait(r, DBP_READABLE, 0, &rev) == DBP_ETIMEDOUT && rev == 0);
  CHECK(dbp_fdwatch_wait(w, DBP_WRITABLE, 0, &rev) == 0 && rev == DBP_WRITABLE);
  CHECK(write(p[1], "x", 1) == 1);
  CHECK(dbp_fdwatch_wait(r, DBP_READABLE | DBP_WRITABLE, 0, &rev) == 0 && rev == DBP_READABLE);
  dbp_fdwatch_close(w);
  close(p[1]);
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  /* A hang-up counts as ready, as in a waiting wait. */
  CHECK(dbp_fdwatch_wait(r, DBP_READABLE, 0, &rev) == 0 && rev == DBP_READABLE);
  dbp_fdwatch_close(r);
  close(p[0]);
  return 0;
}

Test(rt_zero, fd_wait_reports_what_is_ready_now) {
  dbt_run(body_fd, NULL);
}

/* A pending cancellation is delivered first, as by any wait that cannot
 * complete at once. */
static int body_cancel_first(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_sem *s;
  CHECK(dbp_sem_new(rt, 0, &s) == 0);
  dbp_cancel(dbp_current(rt));
  CHECK(dbp_sem_acquire(s, 0) == DBP_ECANCELED);
  CHECK(dbp_sem_acquire(s, 0) == DBP_ETIMEDOUT);
  dbp_sem_free(s);
  return 0;
}

Test(rt_zero, a_pending_cancellation_comes_first) {
  dbt_run(body_cancel_first, NULL);
}

typedef struct {
  dbp_rt *rt;
  int started;
  int slept;
} child_arg;

static int child_main(void *arg, void **result) {
  (void)result;
  child_arg *a = arg;
  a->started = 1;
  a->slept = dbp_sleep(a->rt, 1000);
  return a->slept;
}

/* asyncio's wait_for(coro, 0): the child is cancelled before it starts,
 * its first wait reports it, and the caller gets DBP_ETIMEDOUT once the
 * child has finished. */
static int body_wait_for(dbp_rt *rt, void *arg) {
  (void)arg;
  child_arg a = {rt, 0, 99};
  uint64_t t0 = dbp_now(rt);
  CHECK(dbp_wait_for(rt, child_main, &a, 0, NULL) == DBP_ETIMEDOUT);
  CHECK(a.started == 1 && a.slept == DBP_ECANCELED && dbp_now(rt) - t0 < 500);
  return 0;
}

Test(rt_zero, wait_for_cancels_the_child_before_it_starts) {
  dbt_run(body_wait_for, NULL);
}
