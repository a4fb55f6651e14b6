/* The public wait queue: first come, first served, a place kept at the
 * head, and a waiter that leaves by itself when its wait times out, is
 * cancelled or ends at once. */
#include <criterion/criterion.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe/rt.h"
#include "rttest.h"

typedef struct {
  dbp_rt *rt;
  dbp_waitq *q;
  int id;
  bool front;
  int64_t timeout;
  int rc;
  int *order;
  int *norder;
} qwait;

static int waiter_main(void *arg, void **result) {
  (void)result;
  qwait *a = arg;
  dbp_waiter w;
  dbp_waiter_init(&w);
  if (a->front)
    dbp_waitq_push_front(a->q, &w);
  else
    dbp_waitq_push(a->q, &w);
  a->rc = dbp_await(a->rt, &w, a->timeout);
  if (a->rc == 0) a->order[(*a->norder)++] = a->id;
  return 0;
}

static int body_fifo(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_waitq q;
  memset(&q, 0, sizeof q);
  int order[4], n = 0;
  qwait a[4];
  dbp_co *co[4];
  for (int i = 0; i < 4; i++) {
    a[i] = (qwait){rt, &q, i, i == 3, DBP_FOREVER, -99, order, &n};
    CHECK(dbp_spawn(rt, &co[i], waiter_main, &a[i], NULL) == 0);
    CHECK(dbp_yield(rt) == 0); /* each queues before the next starts */
  }
  CHECK(dbp_waitq_len(&q) == 4);
  /* 3 went in at the front: 3, 0, 1, 2. */
  for (int i = 0; i < 4; i++) {
    dbp_waiter *w = dbp_waitq_pop(&q);
    CHECK(w != NULL);
    dbp_wake(w, 0);
    CHECK(dbp_sleep(rt, 1) == 0);
  }
  CHECK(dbp_waitq_pop(&q) == NULL);
  for (int i = 0; i < 4; i++) CHECK(dbp_join(co[i], NULL) == 0 && a[i].rc == 0);
  CHECK(n == 4 && order[0] == 3 && order[1] == 0 && order[2] == 1 && order[3] == 2);
  return 0;
}

Test(rt_waitq, first_come_first_served_with_a_front_place) {
  dbt_run(body_fifo, NULL);
}

static int body_leaves(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_waitq q;
  memset(&q, 0, sizeof q);
  int order[4], n = 0;
  qwait t = {rt, &q, 1, false, 20, -99, order, &n};
  qwait c = {rt, &q, 2, false, DBP_FOREVER, -99, order, &n};
  qwait z = {rt, &q, 3, false, 0, -99, order, &n};
  qwait last = {rt, &q, 4, false, DBP_FOREVER, -99, order, &n};
  dbp_co *ct, *cc, *cz, *cl;
  CHECK(dbp_spawn(rt, &ct, waiter_main, &t, NULL) == 0);
  CHECK(dbp_spawn(rt, &cc, waiter_main, &c, NULL) == 0);
  CHECK(dbp_spawn(rt, &cz, waiter_main, &z, NULL) == 0);
  CHECK(dbp_spawn(rt, &cl, waiter_main, &last, NULL) == 0);
  CHECK(dbp_yield(rt) == 0);
  /* The zero timeout failed at once and left; three wait. */
  CHECK(dbp_join(cz, NULL) == 0 && z.rc == DBP_ETIMEDOUT);
  CHECK(dbp_waitq_len(&q) == 3);
  dbp_cancel(cc);
  CHECK(dbp_join(cc, NULL) == 0 && c.rc == DBP_ECANCELED);
  CHECK(dbp_waitq_len(&q) == 2);
  CHECK(dbp_join(ct, NULL) == 0 && t.rc == DBP_ETIMEDOUT);
  CHECK(dbp_waitq_len(&q) == 1);
  /* Only the last one is left to be handed anything. */
  dbp_waitq_wake_all(&q, 0);
  CHECK(dbp_waitq_len(&q) == 0);
  CHECK(dbp_join(cl, NULL) == 0 && last.rc == 0);
  CHECK(n == 1 && order[0] == 4);
  return 0;
}

Test(rt_waitq, timed_out_cancelled_and_zero_timeout_waiters_leave) {
  dbt_run(body_leaves, NULL);
}

static int body_remove(dbp_rt *rt, void *arg) {
  (void)rt;
  (void)arg;
  dbp_waitq q;
  memset(&q, 0, sizeof q);
  dbp_waiter a, b, c;
  dbp_waiter_init(&a);
  dbp_waiter_init(&b);
  dbp_waiter_init(&c);
  dbp_waitq_push(&q, &a);
  dbp_waitq_push(&q, &b);
  dbp_waitq_push(&q, &c);
  dbp_waitq_remove(&b);
  dbp_waitq_remove(&b); /* in no queue now: a no-op */
  CHECK(dbp_waitq_len(&q) == 2);
  dbp_wake(&c, 7); /* a wake takes it out too */
  CHECK(dbp_waitq_len(&q) == 1);
  CHECK(dbp_waitq_pop(&q) == &a && dbp_waitq_len(&q) == 0);
  CHECK(dbp_waitq_pop(&q) == NULL && c.result == 7);
  return 0;
}

Test(rt_waitq, remove_and_wake_take_a_waiter_out) {
  dbt_run(body_remove, NULL);
}
