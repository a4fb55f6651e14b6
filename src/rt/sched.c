/* The scheduler: a ready queue drained from the loop, one timer heap for
 * every timeout, and the wait/wake protocol all suspension points share.
 *
 * Coroutines only ever switch to and from the scheduler (never directly to
 * each other), and only the drain switches into a coroutine. A wake-up from
 * a libuv callback or from another coroutine just appends to the ready
 * queue, so nothing re-enters. The queue is drained from two handles:
 *
 *   uv_idle   started only while the queue is non-empty; it runs early in
 *             each loop turn (after timers) and keeps the poll phase from
 *             blocking while there is work;
 *   uv_check  always started but unreferenced; it runs right after the poll
 *             phase, so a coroutine woken by I/O runs in the same turn
 *             instead of the next.
 *
 * Neither keeps the loop alive when nothing is ready (idle is stopped, check
 * is unreferenced), and the timer is only active while some wait has a
 * timeout, so a caller's loop can exit and dbp_rt_run returns.
 */
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

/* How many rounds one drain runs before giving the loop a turn. Each round
 * runs every coroutine that was ready when it began; coroutines that keep
 * yielding get up to this many turns per loop iteration. */
#define DRAIN_ROUNDS 32

static void on_idle(uv_idle_t *h);
static void on_check(uv_check_t *h);
static void on_timer(uv_timer_t *h);

/* ---- wait queues: intrusive FIFOs through dbp_waiter.prev_/next_,
 * with queue_ naming the queue a waiter is in (NULL: none) ---- */

static void waitq_link(dbp_waitq *q, dbp_waiter *w, bool front) {
  DBP_ASSERT(w->queue_ == NULL); /* a waiter is in one queue at a time */
  DBP_ASSERT(!w->fired_);        /* a woken waiter never queues again */
  w->queue_ = q;
  if (front) {
    w->prev_ = NULL;
    w->next_ = q->head_;
    if (q->head_)
      q->head_->prev_ = w;
    else
      q->tail_ = w;
    q->head_ = w;
  } else {
    w->next_ = NULL;
    w->prev_ = q->tail_;
    if (q->tail_)
      q->tail_->next_ = w;
    else
      q->head_ = w;
    q->tail_ = w;
  }
  q->len_++;
}

void dbp_waitq_push(dbp_waitq *q, dbp_waiter *w) {
  if (q && w) waitq_link(q, w, false);
}

void dbp_waitq_push_front(dbp_waitq *q, dbp_waiter *w) {
  if (q && w) waitq_link(q, w, true);
}

void dbp_waitq_remove(dbp_waiter *w) {
  dbp_waitq *q = w ? w->queue_ : NULL;
  if (!q) return;
  DBP_ASSERT(q->len_ > 0);
  DBP_ASSERT(w->prev_ ? w->prev_->next_ == w : q->head_ == w);
  DBP_ASSERT(w->next_ ? w->next_->prev_ == w : q->tail_ == w);
  if (w->prev_)
    w->prev_->next_ = w->next_;
  else
    q->head_ = w->next_;
  if (w->next_)
    w->next_->prev_ = w->prev_;
  else
    q->tail_ = w->prev_;
  w->prev_ = w->next_ = NULL;
  w->queue_ = NULL;
  q->len_--;
}

dbp_waiter *dbp_waitq_pop(dbp_waitq *q) {
  dbp_waiter *w = q ? q->head_ : NULL;
  if (w) dbp_waitq_remove(w);
  return w;
}

void dbp_waitq_wake_all(dbp_waitq *q, int result) {
  dbp_waiter *w;
  while ((w = dbp_waitq_pop(q))) dbp_wake(w, result);
}

size_t dbp_waitq_len(const dbp_waitq *q) {
  return q ? q->len_ : 0;
}

/* ---- the timer heap: coroutines ordered by (expiry, timer_seq) ---- */

static bool heap_less(const dbp_co *a, const dbp_co *b) {
  return a->expiry < b->expiry || (a->expiry == b->expiry && a->timer_seq < b->timer_seq);
}

static void heap_set(dbp_rt *rt, size_t i, dbp_co *co) {
  rt->heap[i] = co;
  co->heap_idx = i;
}

static void heap_up(dbp_rt *rt, size_t i) {
  dbp_co *co = rt->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(co, rt->heap[p])) break;
    heap_set(rt, i, rt->heap[p]);
    i = p;
  }
  heap_set(rt, i, co);
}

static void heap_down(dbp_rt *rt, size_t i) {
  dbp_co *co = rt->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const dbp_co *best = co;
    if (l < rt->heap_len && heap_less(rt->heap[l], best)) m = l, best = rt->heap[l];
    if (l + 1 < rt->heap_len && heap_less(rt->heap[l + 1], best)) m = l + 1;
    if (m == i) break;
    heap_set(rt, i, rt->heap[m]);
    i = m;
  }
  heap_set(rt, i, co);
}

/* Starts, moves or stops the runtime's one uv_timer for the heap's top. */
static void timer_rearm(dbp_rt *rt) {
  if (rt->heap_len == 0) {
    if (rt->timer_due != DBP__NEVER) {
      uv_timer_stop(&rt->timer);
      rt->timer_due = DBP__NEVER;
    }
    return;
  }
  uint64_t due = rt->heap[0]->expiry;
  if (due == rt->timer_due) return;
  uint64_t now = uv_now(rt->loop);
  uv_timer_start(&rt->timer, on_timer, due > now ? due - now : 0, 0);
  rt->timer_due = due;
}

static int heap_push(dbp_rt *rt, dbp_co *co) {
  DBP_ASSERT(co->heap_idx == SIZE_MAX); /* one timeout per wait */
  if (rt->heap_len == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 64;
    dbp_co **h = realloc(rt->heap, cap * sizeof *h);
    if (!h) return DBP_ENOMEM;
    rt->heap = h;
    rt->heap_cap = cap;
  }
  co->timer_seq = rt->timer_seq++;
  rt->heap[rt->heap_len] = co;
  co->heap_idx = rt->heap_len++;
  heap_up(rt, co->heap_idx);
  timer_rearm(rt);
  return 0;
}

static void heap_remove(dbp_rt *rt, dbp_co *co) {
  size_t i = co->heap_idx;
  if (i == SIZE_MAX) return;
  DBP_ASSERT(i < rt->heap_len && rt->heap[i] == co);
  co->heap_idx = SIZE_MAX;
  dbp_co *last = rt->heap[--rt->heap_len];
  if (i < rt->heap_len) {
    heap_set(rt, i, last);
    heap_up(rt, i);
    heap_down(rt, last->heap_idx);
  }
  timer_rearm(rt);
}

/* ---- waking ---- */

static void co_wake(dbp_co *co, int code) {
  DBP_ASSERT(co->state == DBP__WAITING);
  heap_remove(co->rt, co);
  co->wake_code = code;
  dbp__make_ready(co->rt, co);
}

static void on_timer(uv_timer_t *h) {
  dbp_rt *rt = h->data;
  rt->timer_due = DBP__NEVER; /* a one-shot timer that fired is inactive */
  uint64_t now = uv_now(rt->loop);
  while (rt->heap_len > 0 && rt->heap[0]->expiry <= now) {
    dbp_co *co = rt->heap[0];
    if (co->wait) dbp_waitq_remove(co->wait);
    co_wake(co, co->timeout_ok && !co->by_deadline ? 0 : DBP_ETIMEDOUT);
  }
  timer_rearm(rt);
}

void dbp__make_ready(dbp_rt *rt, dbp_co *co) {
  /* Queued once: a ready coroutine is never made ready again, a finished
   * one never resumed. */
  DBP_ASSERT(co->state != DBP__READY && co->state != DBP__DONE);
  DBP_ASSERT(co->ready_next == NULL && rt->ready_tail != co);
  co->state = DBP__READY;
  co->ready_next = NULL;
  if (rt->ready_tail)
    rt->ready_tail->ready_next = co;
  else
    rt->ready_head = co;
  rt->ready_tail = co;
  if (!rt->idle_on && !rt->freeing) {
    uv_idle_start(&rt->idle, on_idle);
    rt->idle_on = true;
  }
}

void dbp_waiter_init(dbp_waiter *w) {
  if (w) memset(w, 0, sizeof *w);
}

void dbp_wake(dbp_waiter *w, int result) {
  if (!w || w->fired_) return;
  w->fired_ = 1;
  w->result = result;
  dbp_waitq_remove(w);
  dbp_co *co = w->co_;
  if (co && co->state == DBP__WAITING && co->wait == w) co_wake(co, 0);
}

bool dbp_waiter_fired(const dbp_waiter *w) {
  return w && w->fired_;
}

/* ---- switching ---- */

/* Runs on the coroutine's stack: saves it and continues the scheduler. */
void dbp__suspend(dbp_co *co) {
  dbp_rt *rt = co->rt;
  DBP__FIBER_START(&co->asan_fake, rt->sched_stack_bottom, rt->sched_stack_size);
  dbp__ctx_switch(&co->ctx, &rt->sched_ctx);
  DBP__FIBER_FINISH(co->asan_fake, &rt->sched_stack_bottom, &rt->sched_stack_size);
}

/* Runs on the scheduler's stack: continues co until it suspends or ends. */
static void co_resume(dbp_rt *rt, dbp_co *co) {
  void *fake = NULL;
  DBP_ASSERT(co->state == DBP__READY && co->stack && !rt->current);
  rt->current = co;
  co->state = DBP__RUNNING;
  DBP__FIBER_START(&fake, co->stack->lo, co->stack->size);
  dbp__ctx_switch(&rt->sched_ctx, &co->ctx);
  DBP__FIBER_FINISH(fake, NULL, NULL);
  rt->current = NULL;
  dbp__stack_check(co->stack, co->name);
  if (co->state == DBP__DONE) dbp__co_finished(rt, co);
}

static void drain(dbp_rt *rt) {
  if (rt->draining) return;
  rt->draining = true;
  for (int round = 0; round < DRAIN_ROUNDS && rt->ready_head; round++) {
    dbp_co *co = rt->ready_head;
    rt->ready_head = rt->ready_tail = NULL;
    while (co) {
      dbp_co *next = co->ready_next;
      co->ready_next = NULL;
      co_resume(rt, co);
      co = next;
    }
  }
  if (!rt->ready_head && rt->idle_on) {
    uv_idle_stop(&rt->idle);
    rt->idle_on = false;
  }
  rt->draining = false;
}

static void on_idle(uv_idle_t *h) {
  drain(h->data);
}
static void on_check(uv_check_t *h) {
  dbp_rt *rt = h->data;
  if (rt->ready_head) drain(rt);
}

/* ---- awaiting ---- */

int dbp__await(dbp_rt *rt, dbp_waiter *w, int64_t timeout_ms, int flags) {
  if (!rt || !w) return DBP_EINVAL;
  dbp_co *co = rt->current;
  if (!co) return DBP_ENOTCORO;
  if (w->co_ && w->co_ != co) return DBP_EBUSY;
  if (w->fired_) return 0;
  bool intr = !(flags & DBP__AWAIT_UNINTERRUPTIBLE);
  uint64_t expiry = DBP__NEVER;
  bool by_deadline = false;
  if (intr) {
    if (co->cancel_pending) {
      co->cancel_pending = false;
      dbp_waitq_remove(w);
      return DBP_ECANCELED;
    }
    if (timeout_ms >= 0 || co->deadline != DBP__NEVER) {
      uv_update_time(rt->loop);
      uint64_t now = uv_now(rt->loop);
      if (timeout_ms >= 0) expiry = now + (uint64_t)timeout_ms;
      if (co->deadline < expiry) {
        expiry = co->deadline;
        by_deadline = true;
      }
      if (expiry <= now) {
        dbp_waitq_remove(w);
        return (flags & DBP__AWAIT_TIMEOUT_OK) && !by_deadline ? 0 : DBP_ETIMEDOUT;
      }
    }
  }
  co->uninterruptible = !intr;
  co->timeout_ok = (flags & DBP__AWAIT_TIMEOUT_OK) != 0;
  co->by_deadline = by_deadline;
  co->wake_code = 0;
  if (expiry != DBP__NEVER) {
    co->expiry = expiry;
    if (heap_push(rt, co) != 0) {
      dbp_waitq_remove(w);
      return DBP_ENOMEM;
    }
  }
  w->co_ = co;
  co->wait = w;
  co->state = DBP__WAITING;
  dbp__suspend(co);
  /* Whoever woke it took it off the timer heap and, unless it was the
   * wake-up itself, out of the queue it waited in. */
  DBP_ASSERT(co->state == DBP__RUNNING && co->heap_idx == SIZE_MAX);
  DBP_ASSERT(w->fired_ || w->queue_ == NULL);
  co->wait = NULL;
  w->co_ = NULL;
  return co->wake_code;
}

int dbp_await(dbp_rt *rt, dbp_waiter *w, int64_t timeout_ms) {
  return dbp__await(rt, w, timeout_ms, 0);
}

int dbp_await_done(dbp_rt *rt, dbp_waiter *w) {
  return dbp__await(rt, w, DBP_FOREVER, DBP__AWAIT_UNINTERRUPTIBLE);
}

int dbp_yield(dbp_rt *rt) {
  if (!rt) return DBP_EINVAL;
  dbp_co *co = rt->current;
  if (!co) return DBP_ENOTCORO;
  if (co->cancel_pending) {
    co->cancel_pending = false;
    return DBP_ECANCELED;
  }
  if (co->deadline != DBP__NEVER && co->deadline <= uv_now(rt->loop)) return DBP_ETIMEDOUT;
  dbp__make_ready(rt, co);
  dbp__suspend(co);
  if (co->cancel_pending) {
    co->cancel_pending = false;
    return DBP_ECANCELED;
  }
  return 0;
}

int dbp_sleep(dbp_rt *rt, int64_t ms) {
  if (!rt) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  if (ms == 0) return dbp_yield(rt);
  dbp_waiter w;
  dbp_waiter_init(&w);
  return dbp__await(rt, &w, ms, DBP__AWAIT_TIMEOUT_OK);
}

/* Cancels: delivered now if co is in an interruptible wait, else at its
 * next wait. A finished coroutine is left alone. */
void dbp_cancel(dbp_co *co) {
  if (!co || co->state == DBP__DONE) return;
  if (co->state == DBP__WAITING && !co->uninterruptible) {
    if (co->wait) dbp_waitq_remove(co->wait);
    co_wake(co, DBP_ECANCELED);
    return;
  }
  co->cancel_pending = true;
}

bool dbp_cancel_pending(dbp_rt *rt) {
  return rt && rt->current && rt->current->cancel_pending;
}

int dbp_deadline_push(dbp_rt *rt, int64_t ms, uint64_t *token) {
  if (!rt || !token) return DBP_EINVAL;
  dbp_co *co = rt->current;
  if (!co) return DBP_ENOTCORO;
  *token = co->deadline;
  if (ms >= 0) {
    uv_update_time(rt->loop);
    uint64_t d = uv_now(rt->loop) + (uint64_t)ms;
    if (d < co->deadline) co->deadline = d;
  }
  return 0;
}

void dbp_deadline_pop(dbp_rt *rt, uint64_t token) {
  if (rt && rt->current) rt->current->deadline = token;
}

/* ---- the runtime ---- */

static void on_handle_closed(uv_handle_t *h) {
  dbp_rt *rt = h->data;
  if (--rt->closing == 0 && !rt->owns_loop) free(rt);
}

/* Creates a runtime on `loop` (or a loop of its own). Owns: the idle, check
 * and timer handles it puts on the loop, and its own loop if it made one.
 * Unless opts->no_fault_handler, also installs the overflow handler (once
 * per process) and the alternate signal stack it runs on (once per
 * thread). Returns 0, DBP_EINVAL (a stack size out of range), DBP_ENOMEM
 * or DBP_ESYS. */
int dbp_rt_new(dbp_rt **out, uv_loop_t *loop, const dbp_rt_options *opts) {
  if (!out) return DBP_EINVAL;
  *out = NULL;
  int rc;
  if (opts && !dbp__stack_size_ok(opts->stack_size)) return DBP_EINVAL;
  dbp_rt *rt = calloc(1, sizeof *rt);
  if (!rt) return DBP_ENOMEM;
  rt->timer_due = DBP__NEVER;
  rt->stack_size = opts && opts->stack_size ? opts->stack_size : (size_t)64 * 1024;
  if (loop) {
    rt->loop = loop;
  } else {
    if (uv_loop_init(&rt->own_loop) != 0) {
      rc = DBP_ESYS;
      goto fail;
    }
    rt->loop = &rt->own_loop;
    rt->owns_loop = true;
  }
  rc = dbp__stack_thread_init(rt, opts && opts->no_fault_handler);
  if (rc != 0) goto fail_loop;
  uv_idle_init(rt->loop, &rt->idle);
  uv_check_init(rt->loop, &rt->check);
  uv_timer_init(rt->loop, &rt->timer);
  rt->idle.data = rt->check.data = rt->timer.data = rt;
  uv_check_start(&rt->check, on_check);
  uv_unref((uv_handle_t *)&rt->check);
  *out = rt;
  return 0;

fail_loop:
  if (rt->owns_loop) uv_loop_close(&rt->own_loop);
fail:
  free(rt);
  return rc;
}

/* Runs the loop until it has nothing left to do. Returns 0 when every
 * coroutine finished, DBP_EBUSY when the loop ran dry while coroutines
 * still wait (for something nothing will deliver: a deadlock), DBP_EINVAL
 * when called from a coroutine. */
int dbp_rt_run(dbp_rt *rt) {
  if (!rt) return DBP_EINVAL;
  if (rt->current || rt->draining) return DBP_EINVAL;
  uv_run(rt->loop, UV_RUN_DEFAULT);
  return rt->alive ? DBP_EBUSY : 0;
}

typedef struct foreign_count {
  dbp_rt *rt;
  size_t n;
} foreign_count;

/* Counts the open handles on the runtime's own loop that are not its own. */
static void count_foreign(uv_handle_t *h, void *arg) {
  foreign_count *fc = arg;
  if (h == (uv_handle_t *)&fc->rt->idle || h == (uv_handle_t *)&fc->rt->check ||
      h == (uv_handle_t *)&fc->rt->timer || uv_is_closing(h))
    return;
  fc->n++;
}

/* Frees the runtime: finished coroutines nobody joined are freed with it.
 * For a caller's loop, the runtime's memory goes in the close callbacks of
 * its handles, so the caller must run the loop once more (as with any
 * libuv handle). DBP_EBUSY, changing nothing, while coroutines are alive,
 * fd watchers are open, or other handles are open on the runtime's own
 * loop. */
int dbp_rt_free(dbp_rt *rt) {
  if (!rt) return DBP_EINVAL;
  if (rt->alive || rt->current || rt->draining || rt->watchers) return DBP_EBUSY;
  DBP_ASSERT(rt->heap_len == 0 && rt->ready_head == NULL);
  if (rt->owns_loop) {
    foreign_count fc = {rt, 0};
    uv_walk(rt->loop, count_foreign, &fc);
    if (fc.n) return DBP_EBUSY;
  }
  while (rt->all) dbp__co_free(rt->all);
  dbp__stack_cache_free(rt);
  dbp__stack_thread_fini(rt);
  free(rt->heap);
  rt->heap = NULL;
  free(rt->by_fd);
  rt->by_fd = NULL;
  rt->freeing = true;
  uv_handle_t *hs[] = {(uv_handle_t *)&rt->idle, (uv_handle_t *)&rt->check,
                       (uv_handle_t *)&rt->timer};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
    rt->closing++;
    uv_close(hs[i], on_handle_closed);
  }
  if (rt->owns_loop) {
    uv_run(rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(rt->loop);
    free(rt);
  }
  return 0;
}

uv_loop_t *dbp_rt_loop(dbp_rt *rt) {
  return rt ? rt->loop : NULL;
}
size_t dbp_rt_alive(dbp_rt *rt) {
  return rt ? rt->alive : 0;
}
dbp_co *dbp_current(dbp_rt *rt) {
  return rt ? rt->current : NULL;
}
uint64_t dbp_now(dbp_rt *rt) {
  return rt ? uv_now(rt->loop) : 0;
}
