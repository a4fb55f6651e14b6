/* Channels: bounded queues of pointers between coroutines.
 *
 * A FIFO channel keeps its items in a ring; a priority channel in a binary
 * heap ordered by (priority, sequence), so equal priorities stay FIFO.
 * Blocked senders and receivers wait in FIFO queues. A receiver that waits
 * is handed the next item directly, and a receiver that makes room moves
 * the first blocked sender's item in, so an item is never lost to a
 * cancellation: once a waiter was handed what it waited for, its wait has
 * succeeded (a later cancel is delivered at its next wait).
 */
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

typedef struct slot {
  void *item;
  int64_t prio;
  uint64_t seq;
} slot;

struct dbp_chan_s {
  dbp_rt *rt;
  size_t cap, len;
  size_t head; /* ring start (FIFO) */
  bool prio;
  bool closed;
  uint64_t seq;
  slot *slots;
  dbp_waitq senders, receivers;
};

/* A blocked sender or receiver, on its own stack. */
typedef struct chan_wait {
  dbp_waiter w;
  slot s;
} chan_wait;

static int chan_make(dbp_rt *rt, size_t capacity, bool prio, dbp_chan **out) {
  if (out) *out = NULL;
  if (!rt || !out || capacity == 0) return DBP_EINVAL;
  dbp_chan *ch = calloc(1, sizeof *ch);
  if (!ch) return DBP_ENOMEM;
  ch->slots = calloc(capacity, sizeof *ch->slots);
  if (!ch->slots) {
    free(ch);
    return DBP_ENOMEM;
  }
  ch->rt = rt;
  ch->cap = capacity;
  ch->prio = prio;
  *out = ch;
  return 0;
}

int dbp_chan_new(dbp_rt *rt, size_t capacity, dbp_chan **out) {
  return chan_make(rt, capacity, false, out);
}

int dbp_chan_new_priority(dbp_rt *rt, size_t capacity, dbp_chan **out) {
  return chan_make(rt, capacity, true, out);
}

static bool slot_less(const slot *a, const slot *b) {
  return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

/* What holds between calls: a buffer never over its capacity, receivers
 * wait only on an empty channel, senders only on a full one (an open
 * channel: close wakes them all). */
static void chan_check(const dbp_chan *ch) {
  DBP_ASSERT(ch->len <= ch->cap);
  DBP_ASSERT(!ch->receivers.head_ || ch->len == 0);
  DBP_ASSERT(!ch->senders.head_ || ch->len == ch->cap);
  DBP_ASSERT(!ch->closed || (!ch->receivers.head_ && !ch->senders.head_));
  (void)ch;
}

/* Adds s to the buffer, which has room. */
static void buf_push(dbp_chan *ch, slot s) {
  DBP_ASSERT(ch->len < ch->cap);
  s.seq = ch->seq++;
  if (!ch->prio) {
    ch->slots[(ch->head + ch->len++) % ch->cap] = s;
    return;
  }
  size_t i = ch->len++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!slot_less(&s, &ch->slots[p])) break;
    ch->slots[i] = ch->slots[p];
    i = p;
  }
  ch->slots[i] = s;
}

/* Removes the next item from the non-empty buffer. */
static void *buf_pop(dbp_chan *ch) {
  DBP_ASSERT(ch->len > 0);
  if (!ch->prio) {
    void *item = ch->slots[ch->head].item;
    ch->head = (ch->head + 1) % ch->cap;
    ch->len--;
    return item;
  }
  void *item = ch->slots[0].item;
  slot last = ch->slots[--ch->len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const slot *best = &last;
    if (l < ch->len && slot_less(&ch->slots[l], best)) m = l, best = &ch->slots[l];
    if (l + 1 < ch->len && slot_less(&ch->slots[l + 1], best)) m = l + 1;
    if (m == i) break;
    ch->slots[i] = ch->slots[m];
    i = m;
  }
  if (ch->len > 0) ch->slots[i] = last;
  return item;
}

/* Sends without waiting: hands the item to a waiting receiver or buffers
 * it. Returns 0, DBP_ECLOSED or DBP_EAGAIN (full). */
static int send_now(dbp_chan *ch, void *item, int64_t prio) {
  chan_check(ch);
  if (ch->closed) return DBP_ECLOSED;
  dbp_waiter *w = dbp_waitq_pop(&ch->receivers);
  if (w) {
    chan_wait *r = (chan_wait *)w;
    r->s.item = item;
    dbp_wake(w, 0);
    return 0;
  }
  if (ch->len == ch->cap) return DBP_EAGAIN;
  buf_push(ch, (slot){.item = item, .prio = prio});
  return 0;
}

/* Receives without waiting; a blocked sender's item then fills the room.
 * Returns 0, DBP_ECLOSED (closed and drained) or DBP_EAGAIN (empty). */
static int recv_now(dbp_chan *ch, void **item) {
  chan_check(ch);
  if (ch->len == 0) return ch->closed ? DBP_ECLOSED : DBP_EAGAIN;
  *item = buf_pop(ch);
  dbp_waiter *w = dbp_waitq_pop(&ch->senders);
  if (w) {
    chan_wait *s = (chan_wait *)w;
    buf_push(ch, s->s);
    dbp_wake(w, 0);
  }
  return 0;
}

static int send_wait(dbp_chan *ch, void *item, int64_t prio, int64_t timeout_ms) {
  if (!ch) return DBP_EINVAL;
  if (!ch->rt->current) return DBP_ENOTCORO;
  /* FIFO fairness: a sender never overtakes senders already blocked. */
  int rc = ch->senders.head_ ? DBP_EAGAIN : send_now(ch, item, prio);
  if (rc != DBP_EAGAIN) return rc;
  chan_wait sw;
  dbp_waiter_init(&sw.w);
  sw.s = (slot){.item = item, .prio = prio};
  dbp_waitq_push(&ch->senders, &sw.w);
  rc = dbp_await(ch->rt, &sw.w, timeout_ms);
  return rc != 0 ? rc : sw.w.result;
}

int dbp_chan_send(dbp_chan *ch, void *item, int64_t timeout_ms) {
  return send_wait(ch, item, 0, timeout_ms);
}

int dbp_chan_send_prio(dbp_chan *ch, void *item, int64_t priority, int64_t timeout_ms) {
  return send_wait(ch, item, priority, timeout_ms);
}

int dbp_chan_recv(dbp_chan *ch, void **item, int64_t timeout_ms) {
  if (item) *item = NULL;
  if (!ch || !item) return DBP_EINVAL;
  if (!ch->rt->current) return DBP_ENOTCORO;
  int rc = recv_now(ch, item);
  if (rc != DBP_EAGAIN) return rc;
  chan_wait rw;
  dbp_waiter_init(&rw.w);
  rw.s.item = NULL;
  dbp_waitq_push(&ch->receivers, &rw.w);
  rc = dbp_await(ch->rt, &rw.w, timeout_ms);
  if (rc != 0) return rc;
  if (rw.w.result != 0) return rw.w.result;
  *item = rw.s.item;
  return 0;
}

int dbp_chan_try_send(dbp_chan *ch, void *item) {
  if (!ch) return DBP_EINVAL;
  if (ch->senders.head_ && !ch->closed) return DBP_EAGAIN;
  return send_now(ch, item, 0);
}

int dbp_chan_try_recv(dbp_chan *ch, void **item) {
  if (item) *item = NULL;
  if (!ch || !item) return DBP_EINVAL;
  return recv_now(ch, item);
}

void dbp_chan_close(dbp_chan *ch) {
  if (!ch || ch->closed) return;
  ch->closed = true;
  dbp_waitq_wake_all(&ch->receivers, DBP_ECLOSED);
  dbp_waitq_wake_all(&ch->senders, DBP_ECLOSED);
}

size_t dbp_chan_len(const dbp_chan *ch) {
  return ch ? ch->len : 0;
}

/* Frees the channel. Should nobody wait on it; if someone does, they are
 * woken with DBP_ECLOSED first so that no waiter points into freed memory. */
void dbp_chan_free(dbp_chan *ch) {
  if (!ch) return;
  dbp_chan_close(ch);
  free(ch->slots);
  free(ch);
}
