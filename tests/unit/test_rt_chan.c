/* Channels: FIFO order, backpressure, close semantics, priority order,
 * timeouts and cancellation of blocked senders and receivers. */
#include <criterion/criterion.h>

#include "dbpipe/rt.h"
#include "rttest.h"

#define P(i) ((void *)(intptr_t)(i))

typedef struct {
  dbp_rt *rt;
  dbp_chan *ch;
  int sent; /* sends that returned */
  int last_rc;
  int n;
  bool cleanup;
} chan_ctx;

static int body_send_n(void *arg, void **result) {
  (void)result;
  chan_ctx *c = arg;
  for (int i = 1; i <= c->n; i++) {
    c->last_rc = dbp_chan_send(c->ch, P(i), DBP_FOREVER);
    if (c->last_rc != 0) break;
    c->sent++;
  }
  c->cleanup = true;
  return c->last_rc;
}

static int body_backpressure(dbp_rt *rt, void *arg) {
  (void)arg;
  chan_ctx c = {.rt = rt, .n = 10};
  cr_assert_eq(dbp_chan_new(rt, 3, &c.ch), 0);
  dbp_co *sender;
  cr_assert_eq(dbp_spawn(rt, &sender, body_send_n, &c, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 5), 0);
  cr_assert_eq(c.sent, 3, "the sender blocks when the channel is full");
  cr_assert_eq(dbp_chan_len(c.ch), 3);
  for (int i = 1; i <= 10; i++) {
    void *item;
    cr_assert_eq(dbp_chan_recv(c.ch, &item, DBP_FOREVER), 0);
    cr_assert_eq(item, P(i), "FIFO order");
    cr_assert_leq(dbp_chan_len(c.ch), 3);
  }
  cr_assert_eq(dbp_join(sender, NULL), 0);
  cr_assert_eq(c.sent, 10);
  dbp_chan_free(c.ch);
  return 0;
}

Test(rt_chan, sender_blocks_when_full_and_order_is_fifo) {
  cr_assert_eq(dbt_run_in_coro(body_backpressure, NULL), 0);
}

typedef struct {
  dbp_chan *ch;
  int rc;
  void *item;
  bool cleanup;
} recv_ctx;

static int body_recv_one(void *arg, void **result) {
  (void)result;
  recv_ctx *r = arg;
  r->rc = dbp_chan_recv(r->ch, &r->item, DBP_FOREVER);
  r->cleanup = true;
  return r->rc;
}

static int body_close(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new(rt, 2, &ch), 0);
  /* Close wakes every blocked receiver. */
  recv_ctx r[4];
  dbp_co *cos[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (recv_ctx){.ch = ch};
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_recv_one, &r[i], NULL), 0);
  }
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_chan_close(ch);
  dbp_chan_close(ch); /* idempotent */
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(dbp_join(cos[i], NULL), DBP_ECLOSED);
    cr_assert(r[i].cleanup);
  }
  cr_assert_eq(dbp_chan_send(ch, P(1), 0), DBP_ECLOSED);
  cr_assert_eq(dbp_chan_try_send(ch, P(1)), DBP_ECLOSED);
  dbp_chan_free(ch);

  /* Close wakes every blocked sender; items already in are still delivered. */
  cr_assert_eq(dbp_chan_new(rt, 2, &ch), 0);
  chan_ctx s[3];
  dbp_co *senders[3];
  for (int i = 0; i < 3; i++) {
    s[i] = (chan_ctx){.rt = rt, .ch = ch, .n = 5};
    cr_assert_eq(dbp_spawn(rt, &senders[i], body_send_n, &s[i], NULL), 0);
  }
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  cr_assert_eq(dbp_chan_len(ch), 2);
  dbp_chan_close(ch);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(dbp_join(senders[i], NULL), DBP_ECLOSED);
    cr_assert(s[i].cleanup);
  }
  void *item;
  cr_assert_eq(dbp_chan_recv(ch, &item, DBP_FOREVER), 0);
  cr_assert_eq(item, P(1));
  cr_assert_eq(dbp_chan_try_recv(ch, &item), 0);
  cr_assert_eq(item, P(2));
  cr_assert_eq(dbp_chan_recv(ch, &item, DBP_FOREVER), DBP_ECLOSED, "drained, then closed");
  cr_assert_eq(dbp_chan_try_recv(ch, &item), DBP_ECLOSED);
  dbp_chan_free(ch);
  return 0;
}

Test(rt_chan, close_wakes_everyone_and_keeps_remaining_items) {
  cr_assert_eq(dbt_run_in_coro(body_close, NULL), 0);
}

static int body_try_and_timeouts(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new(rt, 1, &ch), 0);
  void *item;
  cr_assert_eq(dbp_chan_try_recv(ch, &item), DBP_EAGAIN);
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_chan_recv(ch, &item, 10), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_chan_try_send(ch, P(7)), 0);
  cr_assert_eq(dbp_chan_try_send(ch, P(8)), DBP_EAGAIN);
  cr_assert_eq(dbp_chan_send(ch, P(8), 0), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_chan_send(ch, P(8), 10), DBP_ETIMEDOUT);
  cr_assert_eq(dbp_chan_len(ch), 1);
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(7));
  dbp_chan_free(ch);
  dbp_chan *bad;
  cr_assert_eq(dbp_chan_new(rt, 0, &bad), DBP_EINVAL);
  cr_assert_null(bad);
  return 0;
}

Test(rt_chan, try_ops_and_timeouts) {
  cr_assert_eq(dbt_run_in_coro(body_try_and_timeouts, NULL), 0);
}

static int body_cancel_send_recv(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new(rt, 1, &ch), 0);
  /* a blocked receiver */
  recv_ctx r = {.ch = ch};
  dbp_co *co;
  cr_assert_eq(dbp_spawn(rt, &co, body_recv_one, &r, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(r.cleanup);
  /* the cancelled receiver is gone: an item sent now stays in the channel */
  cr_assert_eq(dbp_chan_try_send(ch, P(1)), 0);
  cr_assert_eq(dbp_chan_len(ch), 1);
  /* a blocked sender */
  chan_ctx s = {.rt = rt, .ch = ch, .n = 1};
  cr_assert_eq(dbp_spawn(rt, &co, body_send_n, &s, NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  dbp_cancel(co);
  cr_assert_eq(dbp_join(co, NULL), DBP_ECANCELED);
  cr_assert(s.cleanup);
  cr_assert_eq(s.sent, 0);
  void *item;
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(1));
  cr_assert_eq(dbp_chan_try_recv(ch, &item), DBP_EAGAIN, "the cancelled send left nothing");
  dbp_chan_free(ch);
  return 0;
}

Test(rt_chan, cancel_blocked_send_and_recv) {
  cr_assert_eq(dbt_run_in_coro(body_cancel_send_recv, NULL), 0);
}

static int body_priority(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new_priority(rt, 16, &ch), 0);
  int64_t prios[] = {5, 1, 3, 1, 0, 5, 3, 2};
  for (int i = 0; i < 8; i++) cr_assert_eq(dbp_chan_send_prio(ch, P(i), prios[i], 0), 0);
  /* lowest first, FIFO among equals */
  int expect[] = {4, 1, 3, 7, 2, 6, 0, 5};
  for (int i = 0; i < 8; i++) {
    void *item;
    cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
    cr_assert_eq(item, P(expect[i]), "position %d", i);
  }
  dbp_chan_free(ch);
  return 0;
}

Test(rt_chan, priority_channel_order) {
  cr_assert_eq(dbt_run_in_coro(body_priority, NULL), 0);
}

typedef struct {
  dbp_chan *ch;
  int64_t prio;
  int id;
} prio_send;

static int body_prio_sender(void *arg, void **result) {
  (void)result;
  prio_send *p = arg;
  return dbp_chan_send_prio(p->ch, P(p->id), p->prio, DBP_FOREVER);
}

static int body_priority_full(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new_priority(rt, 2, &ch), 0);
  cr_assert_eq(dbp_chan_send_prio(ch, P(0), 9, 0), 0);
  cr_assert_eq(dbp_chan_send_prio(ch, P(1), 9, 0), 0);
  /* blocked senders enter (FIFO) as room is made; then priority decides */
  prio_send ps[2] = {{ch, 1, 2}, {ch, 0, 3}};
  dbp_co *cos[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(dbp_spawn(rt, &cos[i], body_prio_sender, &ps[i], NULL), 0);
  cr_assert_eq(dbp_sleep(rt, 2), 0);
  void *item;
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(0));
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(2), "the first blocked sender's item (prio 1) beats prio 9");
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(3));
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), 0);
  cr_assert_eq(item, P(1));
  for (int i = 0; i < 2; i++) cr_assert_eq(dbp_join(cos[i], NULL), 0);
  dbp_chan_free(ch);
  return 0;
}

Test(rt_chan, priority_channel_with_blocked_senders) {
  cr_assert_eq(dbt_run_in_coro(body_priority_full, NULL), 0);
}

typedef struct {
  dbp_rt *rt;
  dbp_chan *ch;
  long sum;
  int count;
} pc_ctx;

static int body_consumer(void *arg, void **result) {
  (void)result;
  pc_ctx *p = arg;
  void *item;
  int rc;
  while ((rc = dbp_chan_recv(p->ch, &item, DBP_FOREVER)) == 0) {
    p->sum += (intptr_t)item;
    p->count++;
  }
  return rc == DBP_ECLOSED ? 0 : rc;
}

static int body_producers_consumers(dbp_rt *rt, void *arg) {
  (void)arg;
  pc_ctx p = {.rt = rt};
  cr_assert_eq(dbp_chan_new(rt, 4, &p.ch), 0);
  dbp_co *cons[3];
  for (int i = 0; i < 3; i++) cr_assert_eq(dbp_spawn(rt, &cons[i], body_consumer, &p, NULL), 0);
  chan_ctx prod[3];
  dbp_co *pros[3];
  for (int i = 0; i < 3; i++) {
    prod[i] = (chan_ctx){.rt = rt, .ch = p.ch, .n = 1000};
    cr_assert_eq(dbp_spawn(rt, &pros[i], body_send_n, &prod[i], NULL), 0);
  }
  for (int i = 0; i < 3; i++) cr_assert_eq(dbp_join(pros[i], NULL), 0);
  dbp_chan_close(p.ch);
  for (int i = 0; i < 3; i++) cr_assert_eq(dbp_join(cons[i], NULL), 0);
  cr_assert_eq(p.count, 3000);
  cr_assert_eq(p.sum, 3L * 1000 * 1001 / 2);
  dbp_chan_free(p.ch);
  return 0;
}

Test(rt_chan, many_producers_and_consumers_lose_nothing) {
  cr_assert_eq(dbt_run_in_coro(body_producers_consumers, NULL), 0);
}

Test(rt_chan, waits_outside_a_coroutine_return_enotcoro) {
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_chan *ch;
  cr_assert_eq(dbp_chan_new(rt, 1, &ch), 0);
  void *item;
  cr_assert_eq(dbp_chan_recv(ch, &item, 0), DBP_ENOTCORO);
  cr_assert_eq(dbp_chan_send(ch, P(1), 0), DBP_ENOTCORO);
  cr_assert_eq(dbp_chan_try_send(ch, P(1)), 0, "try_* works anywhere");
  cr_assert_eq(dbp_chan_try_recv(ch, &item), 0);
  dbp_chan_free(ch);
  cr_assert_eq(dbp_rt_free(rt), 0);
}
