/* Semaphore, mutex, event and wait group. Every wait is FIFO-fair (a
 * release hands the permit or the lock to the first waiter, so a newcomer
 * cannot overtake it), has a timeout and is cancellable. */
#include <stdlib.h>

#include "rt/rt_internal.h"

/* ---- semaphore ---- */

struct dbp_sem_s {
  dbp_rt *rt;
  size_t permits;
  dbp_waitq waiters;
};

int dbp_sem_new(dbp_rt *rt, size_t permits, dbp_sem **out) {
  if (out) *out = NULL;
  if (!rt || !out) return DBP_EINVAL;
  dbp_sem *s = calloc(1, sizeof *s);
  if (!s) return DBP_ENOMEM;
  s->rt = rt;
  s->permits = permits;
  *out = s;
  return 0;
}

/* Takes a permit, waiting behind earlier waiters. Returns 0 (the permit is
 * the caller's), DBP_ETIMEDOUT or DBP_ECANCELED (no permit taken). */
int dbp_sem_acquire(dbp_sem *s, int64_t timeout_ms) {
  if (!s) return DBP_EINVAL;
  if (!s->rt->current) return DBP_ENOTCORO;
  /* Permits pile up only while nobody waits (a release hands them over). */
  DBP_ASSERT(s->permits == 0 || !s->waiters.head_);
  if (s->permits > 0 && !s->waiters.head_) {
    s->permits--;
    return 0;
  }
  dbp_waiter w;
  dbp_waiter_init(&w);
  dbp_waitq_push(&s->waiters, &w);
  int rc = dbp_await(s->rt, &w, timeout_ms);
  return rc != 0 ? rc : w.result;
}

void dbp_sem_release(dbp_sem *s) {
  if (!s) return;
  dbp_waiter *w = dbp_waitq_pop(&s->waiters);
  if (w)
    dbp_wake(w, 0); /* the permit passes straight to the first waiter */
  else
    s->permits++;
}

size_t dbp_sem_available(const dbp_sem *s) {
  return s ? s->permits : 0;
}

void dbp_sem_free(dbp_sem *s) {
  if (!s) return;
  dbp_waitq_wake_all(&s->waiters, DBP_ECLOSED);
  free(s);
}

/* ---- mutex ---- */

struct dbp_mutex_s {
  dbp_rt *rt;
  bool locked;
  dbp_waitq waiters;
};

int dbp_mutex_new(dbp_rt *rt, dbp_mutex **out) {
  if (out) *out = NULL;
  if (!rt || !out) return DBP_EINVAL;
  dbp_mutex *m = calloc(1, sizeof *m);
  if (!m) return DBP_ENOMEM;
  m->rt = rt;
  *out = m;
  return 0;
}

int dbp_mutex_lock(dbp_mutex *m, int64_t timeout_ms) {
  if (!m) return DBP_EINVAL;
  if (!m->rt->current) return DBP_ENOTCORO;
  DBP_ASSERT(m->locked || !m->waiters.head_);
  if (!m->locked) {
    m->locked = true;
    return 0;
  }
  dbp_waiter w;
  dbp_waiter_init(&w);
  dbp_waitq_push(&m->waiters, &w);
  int rc = dbp_await(m->rt, &w, timeout_ms);
  return rc != 0 ? rc : w.result;
}

void dbp_mutex_unlock(dbp_mutex *m) {
  if (!m || !m->locked) return;
  dbp_waiter *w = dbp_waitq_pop(&m->waiters);
  if (w)
    dbp_wake(w, 0); /* stays locked: ownership passes to the first waiter */
  else
    m->locked = false;
}

void dbp_mutex_free(dbp_mutex *m) {
  if (!m) return;
  dbp_waitq_wake_all(&m->waiters, DBP_ECLOSED);
  free(m);
}

/* ---- event ---- */

struct dbp_event_s {
  dbp_rt *rt;
  bool set;
  dbp_waitq waiters;
};

int dbp_event_new(dbp_rt *rt, dbp_event **out) {
  if (out) *out = NULL;
  if (!rt || !out) return DBP_EINVAL;
  dbp_event *e = calloc(1, sizeof *e);
  if (!e) return DBP_ENOMEM;
  e->rt = rt;
  *out = e;
  return 0;
}

void dbp_event_set(dbp_event *e) {
  if (!e) return;
  e->set = true;
  dbp_waitq_wake_all(&e->waiters, 0);
}

void dbp_event_clear(dbp_event *e) {
  if (e) e->set = false;
}

bool dbp_event_is_set(const dbp_event *e) {
  return e && e->set;
}

int dbp_event_wait(dbp_event *e, int64_t timeout_ms) {
  if (!e) return DBP_EINVAL;
  if (!e->rt->current) return DBP_ENOTCORO;
  DBP_ASSERT(!e->set || !e->waiters.head_);
  if (e->set) return 0;
  dbp_waiter w;
  dbp_waiter_init(&w);
  dbp_waitq_push(&e->waiters, &w);
  int rc = dbp_await(e->rt, &w, timeout_ms);
  return rc != 0 ? rc : w.result;
}

void dbp_event_free(dbp_event *e) {
  if (!e) return;
  dbp_waitq_wake_all(&e->waiters, DBP_ECLOSED);
  free(e);
}

/* ---- wait group ---- */

struct dbp_waitgroup_s {
  dbp_rt *rt;
  size_t count;
  dbp_waitq waiters;
};

int dbp_waitgroup_new(dbp_rt *rt, dbp_waitgroup **out) {
  if (out) *out = NULL;
  if (!rt || !out) return DBP_EINVAL;
  dbp_waitgroup *wg = calloc(1, sizeof *wg);
  if (!wg) return DBP_ENOMEM;
  wg->rt = rt;
  *out = wg;
  return 0;
}

void dbp_waitgroup_add(dbp_waitgroup *wg, size_t n) {
  if (wg) wg->count += n;
}

/* Counts one down; at zero every waiter wakes. A done() too many is
 * ignored rather than wrapping the count around. */
void dbp_waitgroup_done(dbp_waitgroup *wg) {
  if (!wg || wg->count == 0) return;
  if (--wg->count == 0) dbp_waitq_wake_all(&wg->waiters, 0);
}

int dbp_waitgroup_wait(dbp_waitgroup *wg, int64_t timeout_ms) {
  if (!wg) return DBP_EINVAL;
  if (!wg->rt->current) return DBP_ENOTCORO;
  DBP_ASSERT(wg->count > 0 || !wg->waiters.head_);
  if (wg->count == 0) return 0;
  dbp_waiter w;
  dbp_waiter_init(&w);
  dbp_waitq_push(&wg->waiters, &w);
  int rc = dbp_await(wg->rt, &w, timeout_ms);
  return rc != 0 ? rc : w.result;
}

void dbp_waitgroup_free(dbp_waitgroup *wg) {
  if (!wg) return;
  dbp_waitq_wake_all(&wg->waiters, DBP_ECLOSED);
  free(wg);
}
