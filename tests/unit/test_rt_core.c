/* The runtime's core: lifecycle, join, yield, sleep, cancel, deadlines,
 * misuse, and the runtime on a caller's loop. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "dbpipe/rt.h"

static dbp_rt *new_rt(void) {
  dbp_rt *rt = NULL;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  return rt;
}

static void run_and_free(dbp_rt *rt) {
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_rt_alive(rt), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- lifecycle ---- */

typedef struct {
  dbp_rt *rt;
  int steps[8];
  int n;
} trace;

static int body_steps(void *arg, void **result) {
  trace *t = arg;
  t->steps[t->n++] = 1;
  cr_assert_not_null(dbp_current(t->rt));
  cr_assert_eq(dbp_yield(t->rt), 0);
  t->steps[t->n++] = 2;
  cr_assert_eq(dbp_sleep(t->rt, 5), 0);
  t->steps[t->n++] = 3;
  *result = t;
  return 42;
}

Test(rt_core, lifecycle_create_start_suspend_resume_finish) {
  dbp_rt *rt = new_rt();
  trace t = {.rt = rt};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_steps, &t, &(dbp_spawn_options){.name = "worker"}), 0);
  cr_assert_str_eq(dbp_co_name(co), "worker");
  cr_assert_eq(t.n, 0, "spawn queues, it does not run the body inline");
  cr_assert_eq(dbp_rt_alive(rt), 1);
  cr_assert(!dbp_co_done(co));
  cr_assert_null(dbp_current(rt));
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert(dbp_co_done(co));
  cr_assert_eq(t.n, 3);
  cr_assert_eq(t.steps[0], 1);
  cr_assert_eq(t.steps[2], 3);
  void *res = NULL;
  cr_assert_eq(dbp_join(co, &res), 42, "join from outside a coroutine after the run");
  cr_assert_eq(res, &t);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

static int body_ret(void *arg, void **result) {
  *result = arg;
  return (int)(intptr_t)arg == 7 ? DBP_EIO : 0;
}

typedef struct {
  dbp_rt *rt;
  int rc_a, rc_b;
  void *res_a, *res_b;
} join_ctx;

static int body_joiner(void *arg, void **result) {
  (void)result;
  join_ctx *j = arg;
  dbp_co *a, *b;
  cr_assert_eq(dbp_spawn(j->rt, &a, body_ret, (void *)(intptr_t)3, NULL), 0);
  cr_assert_eq(dbp_spawn(j->rt, &b, body_ret, (void *)(intptr_t)7, NULL), 0);
  j->rc_b = dbp_join(b, &j->res_b);
  j->rc_a = dbp_join(a, &j->res_a);
  return 0;
}

Test(rt_core, join_returns_code_and_result) {
  dbp_rt *rt = new_rt();
  join_ctx j = {.rt = rt};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_joiner, &j, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(j.rc_a, 0);
  cr_assert_eq(j.res_a, (void *)(intptr_t)3);
  cr_assert_eq(j.rc_b, DBP_EIO);
  cr_assert_eq(j.res_b, (void *)(intptr_t)7);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

static int body_sleep_forever(void *arg, void **result) {
  (void)result;
  return dbp_sleep(arg, DBP_FOREVER);
}

static int body_join_timeout(void *arg, void **result) {
  (void)result;
  dbp_rt *rt = arg;
  dbp_co *child;
  cr_assert_eq(dbp_spawn(rt, &child, body_sleep_forever, rt, NULL), 0);
  cr_assert_eq(dbp_join_timeout(child, NULL, 10), DBP_ETIMEDOUT);
  cr_assert(!dbp_co_done(child), "a timed-out join leaves the child running");
  cr_assert_eq(dbp_join_timeout(child, NULL, 0), DBP_ETIMEDOUT);
  dbp_cancel(child);
  cr_assert_eq(dbp_join(child, NULL), DBP_ECANCELED);
  return 0;
}

Test(rt_core, join_timeout_leaves_child_owned) {
  dbp_rt *rt = new_rt();
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_join_timeout, rt, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

Test(rt_core, join_unfinished_from_outside_is_enotcoro) {
  dbp_rt *rt = new_rt();
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_ret, NULL, NULL), 0);
  cr_assert_eq(dbp_join(co, NULL), DBP_ENOTCORO);
  cr_assert_eq(dbp_rt_free(rt), DBP_EBUSY, "free refuses while a coroutine is alive");
  run_and_free(rt);
}

/* ---- yield ordering ---- */

typedef struct {
  dbp_rt *rt;
  char log[64];
  int n;
} ylog;
typedef struct {
  ylog *l;
  char c;
} yarg;

static int body_yield3(void *arg, void **result) {
  (void)result;
  yarg *a = arg;
  for (int i = 0; i < 3; i++) {
    a->l->log[a->l->n++] = a->c;
    cr_assert_eq(dbp_yield(a->l->rt), 0);
  }
  return 0;
}

Test(rt_core, yield_lets_every_other_ready_coroutine_run_once) {
  dbp_rt *rt = new_rt();
  ylog l = {.rt = rt};
  yarg a = {&l, 'a'}, b = {&l, 'b'}, c = {&l, 'c'};
  dbp_spawn_options d = {.detached = true};
  cr_assert_eq(dbp_spawn(rt, NULL, body_yield3, &a, &d), 0);
  cr_assert_eq(dbp_spawn(rt, NULL, body_yield3, &b, &d), 0);
  cr_assert_eq(dbp_spawn(rt, NULL, body_yield3, &c, &d), 0);
  run_and_free(rt);
  cr_assert_str_eq(l.log, "abcabcabc");
}

/* ---- sleep ---- */

typedef struct {
  dbp_rt *rt;
  int order[4];
  int n;
} sleeps;
typedef struct {
  sleeps *s;
  int id;
  int64_t ms;
} sleep_arg;

static int body_sleep_then_log(void *arg, void **result) {
  (void)result;
  sleep_arg *a = arg;
  uint64_t t0 = dbp_now(a->s->rt);
  cr_assert_eq(dbp_sleep(a->s->rt, a->ms), 0);
  cr_assert_geq(dbp_now(a->s->rt) - t0, (uint64_t)a->ms);
  a->s->order[a->s->n++] = a->id;
  return 0;
}

Test(rt_core, sleeps_end_in_deadline_order) {
  dbp_rt *rt = new_rt();
  sleeps s = {.rt = rt};
  sleep_arg a[3] = {{&s, 1, 60}, {&s, 2, 20}, {&s, 3, 40}};
  for (int i = 0; i < 3; i++)
    cr_assert_eq(
        dbp_spawn(rt, NULL, body_sleep_then_log, &a[i], &(dbp_spawn_options){.detached = true}), 0);
  run_and_free(rt);
  cr_assert_eq(s.n, 3);
  cr_assert_eq(s.order[0], 2);
  cr_assert_eq(s.order[1], 3);
  cr_assert_eq(s.order[2], 1);
}

/* ---- cancellation ---- */

typedef struct {
  dbp_rt *rt;
  int first, second;
  bool cleanup;
} cancel_ctx;

static int body_cancel_sleep(void *arg, void **result) {
  (void)result;
  cancel_ctx *c = arg;
  c->first = dbp_sleep(c->rt, 10000);
  /* Cancellation is delivered once: the cleanup can still wait. */
  c->second = dbp_sleep(c->rt, 1);
  c->cleanup = true;
  return c->first;
}

static int body_canceller(void *arg, void **result) {
  (void)result;
  dbp_co *victim = arg;
  dbp_cancel(victim);
  return 0;
}

Test(rt_core, cancel_during_sleep_runs_cleanup) {
  dbp_rt *rt = new_rt();
  cancel_ctx c = {.rt = rt};
  dbp_co *victim, *killer;
  cr_assert_eq(dbp_spawn(rt, &victim, body_cancel_sleep, &c, NULL), 0);
  cr_assert_eq(dbp_spawn(rt, &killer, body_canceller, victim, NULL), 0);
  uint64_t t0 = uv_now(dbp_rt_loop(rt));
  cr_assert_eq(dbp_rt_run(rt), 0);
  cr_assert_lt(uv_now(dbp_rt_loop(rt)) - t0, 5000, "the 10 s sleep was cut short");
  cr_assert_eq(dbp_join(victim, NULL), DBP_ECANCELED);
  cr_assert_eq(dbp_join(killer, NULL), 0);
  cr_assert_eq(c.first, DBP_ECANCELED);
  cr_assert_eq(c.second, 0, "the wait after the delivered cancel works normally");
  cr_assert(c.cleanup);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

typedef struct {
  dbp_rt *rt;
  bool pending_seen;
  int rc_yield, rc_after;
} self_cancel;

static int body_self_cancel(void *arg, void **result) {
  (void)result;
  self_cancel *s = arg;
  dbp_cancel(dbp_current(s->rt));
  s->pending_seen = dbp_cancel_pending(s->rt);
  s->rc_yield = dbp_yield(s->rt);
  s->rc_after = dbp_yield(s->rt);
  return 0;
}

Test(rt_core, cancel_before_a_wait_is_delivered_at_the_next_wait) {
  dbp_rt *rt = new_rt();
  self_cancel s = {.rt = rt};
  cr_assert_eq(dbp_spawn(rt, NULL, body_self_cancel, &s, &(dbp_spawn_options){.detached = true}),
               0);
  run_and_free(rt);
  cr_assert(s.pending_seen);
  cr_assert_eq(s.rc_yield, DBP_ECANCELED);
  cr_assert_eq(s.rc_after, 0);
}

Test(rt_core, cancel_finished_coroutine_is_noop) {
  dbp_rt *rt = new_rt();
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_ret, (void *)(intptr_t)3, NULL), 0);
  cr_assert_eq(dbp_rt_run(rt), 0);
  dbp_cancel(co);
  dbp_cancel(co);
  void *res;
  cr_assert_eq(dbp_join(co, &res), 0);
  cr_assert_eq(res, (void *)(intptr_t)3);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- misuse ---- */

Test(rt_core, waits_outside_a_coroutine_return_enotcoro) {
  dbp_rt *rt = new_rt();
  cr_assert_eq(dbp_yield(rt), DBP_ENOTCORO);
  cr_assert_eq(dbp_sleep(rt, 1), DBP_ENOTCORO);
  dbp_waiter w;
  dbp_waiter_init(&w);
  cr_assert_eq(dbp_await(rt, &w, 0), DBP_ENOTCORO);
  uint64_t tok;
  cr_assert_eq(dbp_deadline_push(rt, 10, &tok), DBP_ENOTCORO);
  cr_assert_eq(dbp_spawn(rt, NULL, body_ret, NULL, NULL), DBP_EINVAL, "a joinable spawn needs out");
  cr_assert_eq(dbp_spawn(NULL, NULL, body_ret, NULL, NULL), DBP_EINVAL);
  cr_assert_eq(dbp_rt_free(rt), 0);
}

/* ---- the await-a-callback API ---- */

typedef struct {
  dbp_rt *rt;
  uv_timer_t timer;
  dbp_waiter w;
  int rc, result;
} timer_wait;

static void on_test_timer(uv_timer_t *t) {
  timer_wait *tw = t->data;
  dbp_wake(&tw->w, 1234);
  dbp_wake(&tw->w, 99); /* ignored: the first wake counts */
}

static int body_await_timer(void *arg, void **result) {
  (void)result;
  timer_wait *tw = arg;
  uv_timer_init(dbp_rt_loop(tw->rt), &tw->timer);
  tw->timer.data = tw;
  dbp_waiter_init(&tw->w);
  uv_timer_start(&tw->timer, on_test_timer, 5, 0);
  tw->rc = dbp_await(tw->rt, &tw->w, DBP_FOREVER);
  tw->result = tw->w.result;
  uv_close((uv_handle_t *)&tw->timer, NULL);
  return 0;
}

Test(rt_core, await_wakes_from_a_libuv_callback) {
  dbp_rt *rt = new_rt();
  timer_wait tw = {.rt = rt};
  cr_assert_eq(dbp_spawn(rt, NULL, body_await_timer, &tw, &(dbp_spawn_options){.detached = true}),
               0);
  run_and_free(rt);
  cr_assert_eq(tw.rc, 0);
  cr_assert_eq(tw.result, 1234);
}

static int body_await_timeout_then_done(void *arg, void **result) {
  (void)result;
  timer_wait *tw = arg;
  uv_timer_init(dbp_rt_loop(tw->rt), &tw->timer);
  tw->timer.data = tw;
  dbp_waiter_init(&tw->w);
  uv_timer_start(&tw->timer, on_test_timer, 30, 0);
  cr_assert_eq(dbp_await(tw->rt, &tw->w, 1), DBP_ETIMEDOUT);
  cr_assert(!dbp_waiter_fired(&tw->w));
  /* The rule: the callback may still come; wait for it before leaving. */
  dbp_cancel(dbp_current(tw->rt));
  tw->rc = dbp_await_done(tw->rt, &tw->w);
  tw->result = tw->w.result;
  cr_assert(dbp_cancel_pending(tw->rt), "await_done leaves the cancel pending");
  cr_assert_eq(dbp_yield(tw->rt), DBP_ECANCELED);
  uv_close((uv_handle_t *)&tw->timer, NULL);
  return 0;
}

Test(rt_core, await_timeout_then_await_done) {
  dbp_rt *rt = new_rt();
  timer_wait tw = {.rt = rt};
  cr_assert_eq(dbp_spawn(rt, NULL, body_await_timeout_then_done, &tw,
                         &(dbp_spawn_options){.detached = true}),
               0);
  run_and_free(rt);
  cr_assert_eq(tw.rc, 0);
  cr_assert_eq(tw.result, 1234);
}

/* ---- a caller-supplied loop ---- */

static void on_caller_timer(uv_timer_t *t) {
  (*(int *)t->data)++;
}

static int body_sleep_10(void *arg, void **result) {
  (void)result;
  return dbp_sleep(arg, 10);
}

Test(rt_core, runs_on_a_caller_supplied_loop) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  uv_timer_t timer;
  int fired = 0;
  uv_timer_init(&loop, &timer);
  timer.data = &fired;
  uv_timer_start(&timer, on_caller_timer, 20, 0);
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, &loop, NULL), 0);
  cr_assert_eq(dbp_rt_loop(rt), &loop);
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_sleep_10, rt, NULL), 0);
  /* The caller runs its own loop; it ends when both are done. */
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(fired, 1);
  cr_assert_eq(dbp_join(co, NULL), 0);
  cr_assert_eq(dbp_rt_free(rt), 0);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "the runtime left nothing open on the caller's loop");
}

Test(rt_core, free_refuses_while_foreign_handles_are_open_on_its_loop) {
  dbp_rt *rt = new_rt();
  uv_timer_t t;
  uv_timer_init(dbp_rt_loop(rt), &t);
  cr_assert_eq(dbp_rt_free(rt), DBP_EBUSY);
  uv_close((uv_handle_t *)&t, NULL);
  cr_assert_eq(dbp_rt_free(rt), 0, "a closing handle is fine: free runs the loop to finish it");
}

Test(rt_core, idle_runtime_does_not_keep_the_loop_alive) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, &loop, NULL), 0);
  cr_assert_eq(uv_run(&loop, UV_RUN_NOWAIT), 0, "nothing to do: the loop is not alive");
  cr_assert(!uv_loop_alive(&loop));
  cr_assert_eq(dbp_rt_free(rt), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- runtimes on several threads: nothing is shared ---- */

typedef struct {
  dbp_rt *rt;
  dbp_chan *ch;
  long sum;
} thread_work;

static int body_thread_producer(void *arg, void **result) {
  (void)result;
  thread_work *t = arg;
  for (intptr_t i = 1; i <= 2000; i++) {
    if (dbp_chan_send(t->ch, (void *)i, DBP_FOREVER) != 0) return DBP_EIO;
    if (i % 100 == 0 && dbp_sleep(t->rt, 1) != 0) return DBP_EIO;
  }
  dbp_chan_close(t->ch);
  return 0;
}

static int body_thread_consumer(void *arg, void **result) {
  (void)result;
  thread_work *t = arg;
  void *item;
  while (dbp_chan_recv(t->ch, &item, DBP_FOREVER) == 0) t->sum += (intptr_t)item;
  return 0;
}

static void *thread_main(void *arg) {
  thread_work *t = arg;
  if (dbp_rt_new(&t->rt, NULL, NULL) != 0) return NULL;
  dbp_chan_new(t->rt, 8, &t->ch);
  dbp_spawn_options d = {.detached = true};
  for (int i = 0; i < 4; i++) dbp_spawn(t->rt, NULL, body_thread_consumer, t, &d);
  dbp_spawn(t->rt, NULL, body_thread_producer, t, &d);
  if (dbp_rt_run(t->rt) != 0) t->sum = -1;
  dbp_chan_free(t->ch);
  dbp_rt_free(t->rt);
  return NULL;
}

Test(rt_core, runtimes_on_separate_threads_run_independently) {
  pthread_t th[3];
  thread_work tw[3] = {{0}};
  for (int i = 0; i < 3; i++) cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &tw[i]), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(tw[i].sum, 2000L * 2001 / 2, "thread %d", i);
}
