/* The connection pool: a bounded set of connections to one DSN.
 *
 * Every connection the pool owns is in exactly one of three places:
 *
 *   idle     a stack (most recently released on top) of connections nobody
 *            uses; acquire takes from the top, the reaper closes from the
 *            bottom, so surplus connections age out.
 *   used     handed out, or held by a pool call that is checking, resetting
 *            or passing it on. Release looks a connection up here, so a
 *            foreign or twice-released connection is ignored.
 *   opening  no connection yet: a slot reserved by a coroutine that is
 *            connecting. Slots count against max_size, so a burst of
 *            acquires never opens more than max_size connections.
 *
 * total = used + idle + opening <= max_size at every moment.
 *
 * Waiters queue first come, first served. Whoever frees something hands it
 * straight to the oldest waiter instead of putting it back where a newcomer
 * could take it: a released connection (HAND_CONN), or, when a connection
 * was discarded or a connect failed, the right to open one (HAND_SLOT,
 * counted in `opening` from the moment it is handed over). A newcomer only
 * takes an idle connection or opens one when nobody is queued. While anyone
 * waits there is nothing idle and total == max_size, so the queue only
 * moves on hand-overs.
 *
 * A waiter whose wait ends by timeout or cancellation in the same loop turn
 * as its hand-over passes what it was given on (next waiter, or idle), so
 * nothing leaks. A pool call that holds a connection or a slot across a wait
 * counts itself in `busy`; a closed pool is freed only once nothing is used,
 * opening or busy.
 *
 * Shared connections. The one-call helpers (dbp_pool_query, dbp_pool_exec)
 * run a stateless statement on PostgreSQL through a pipe (db/pipeline.h):
 * a connection taken from the pool like any acquire and put into pipeline
 * mode, which many statements use at once. Pipes are listed in `pipes`
 * while open; their connections stay in `used` the whole time, so the
 * invariants above hold unchanged. A statement joins the least loaded pipe
 * with room (fewer than pipeline_depth in flight), or takes a connection
 * of its own for a new pipe while the pool can grow without waiting and
 * every pipe is busy, so load spreads over max_size connections. When no
 * pipe has room and the pool cannot grow, it waits in `pipe_waiters` for a
 * pipe to open, to gain room or to close, or, with no pipe at all, queues
 * for a connection like any acquire. A pipe whose statements are all
 * answered closes and gives its connection back: without a reset (nothing
 * stateless leaves anything behind), unless a cancel went out on it.
 */
#include "dbpipe/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"
#include "db/pipeline.h"
#include "db/result.h"
#include "util/assert.h"

/* How long a liveness check (dbp_conn_ping) and a reset (dbp_conn_reset)
 * may take. */
#define POOL_CHECK_TIMEOUT_MS 2000
#define POOL_RESET_TIMEOUT_MS 5000
/* After the server refused a connection for having too many, how long the
 * pool keeps to the number it had then before trying for more again. */
#define POOL_TOOMANY_HOLD_MS 30000

#define POOL_DEFAULT_MAX_SIZE 4
#define POOL_DEFAULT_CONNECT_MS 10000
#define POOL_DEFAULT_IDLE_MS 300000
#define POOL_DEFAULT_LIFETIME_MS 3600000
#define POOL_DEFAULT_CHECK_MS 1000
#define POOL_DEFAULT_DEPTH 16
#define POOL_CLASS_SLOTS 64

enum { HAND_NONE = 0, HAND_CONN, HAND_SLOT, HAND_CLOSED };

/* One coroutine queued in dbp_pool_acquire; lives on that coroutine's
 * stack and is in the pool's queue (the runtime's dbp_waitq, which a
 * timeout or cancellation of the wait leaves by itself) only while it
 * waits. */
typedef struct pool_waiter {
  dbp_waiter w;   /* first: the queue hands out &w; woken with a HAND_* */
  dbp_conn *conn; /* with HAND_CONN */
} pool_waiter;

typedef struct pool_idle {
  dbp_conn *conn;
  uint64_t since; /* loop clock when it became idle */
} pool_idle;

struct dbp_pool_s {
  dbp_rt *rt;
  char *dsn;
  char *dsn_redacted;
  dbp_pool_options o; /* normalized: no zeros meaning "default" */

  pool_idle *idle; /* [max_size]; top of the stack at nidle - 1 */
  size_t nidle;
  dbp_conn **used; /* [max_size] */
  size_t nused;
  size_t opening;

  dbp_waitq waiters; /* of pool_waiter.w, oldest first */

  size_t busy;         /* pool calls suspended while holding pool state */
  bool closed;         /* dbp_pool_close began */
  bool orphaned;       /* dbp_pool_close returned; the last one out frees */
  dbp_waiter *drained; /* dbp_pool_close waits on it (on its stack) */

  uv_timer_t *reaper; /* unref'd: an idle pool never keeps the loop alive */
  uint64_t reaper_due;

  dbp_pool_stats st; /* counters; the gauges are computed on demand */

  dbp_db_kind kind;  /* of the DSN */
  dbp__pipe **pipes; /* [max_size]: the open pipes */
  size_t npipes;
  dbp_waitq pipe_waiters; /* helpers waiting for room on a pipe */
  size_t helpers_queued;  /* of `waiters`, one-call statements that want a
                             connection for a new pipe (not counted by the
                             pipes' fairness to acquires) */
  /* What dbp_sql_is_stateless said of recent SQL texts: lexing a text
   * costs more than the rest of a pipelined call, and services repeat
   * theirs. Direct-mapped by hash. */
  struct pool_class {
    uint64_t hash;
    char *sql;
    size_t len;
    bool stateless;
    bool read_only;
  } cls[POOL_CLASS_SLOTS];

  /* The server's own limit, learnt from a DBP_ETOOMANY: the pool opens no
   * more than `cap` connections until `cap_until` (loop ms). */
  size_t cap;
  uint64_t cap_until;
};

const double dbp_pool_wait_bounds[DBP_POOL_WAIT_BUCKETS - 1] = {
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60,
};

/* ---- small helpers ---- */

static uint64_t pool_now(const dbp_pool *p) {
  return dbp_now(p->rt);
}

/* Counts one acquire's wait in the histogram. The bounds are compared as
 * published: us / 1e6 rounds to the same double as the literal bound, so
 * a wait of exactly a bound lands in that bound's bucket. */
static void pool_note_wait(dbp_pool *p, uint64_t us) {
  double s = (double)us / 1e6;
  size_t i = 0;
  while (i < DBP_POOL_WAIT_BUCKETS - 1 && s > dbp_pool_wait_bounds[i]) i++;
  p->st.wait_buckets[i]++;
  p->st.wait_us_total += us;
}

static size_t pool_nwait(const dbp_pool *p) {
  return dbp_waitq_len(&p->waiters);
}

static size_t pool_total(const dbp_pool *p) {
  return p->nused + p->nidle + p->opening;
}

/* How many connections the pool may have now: max_size, or fewer for a
 * while after the server said it has too many. */
static size_t pool_cap(const dbp_pool *p) {
  if (p->cap > 0 && pool_now(p) < p->cap_until && p->cap < p->o.max_size) return p->cap;
  return p->o.max_size;
}

/* The header's invariant, and the queue's: nobody waits while a
 * connection is idle (a newcomer takes it; a release hands it over). */
static void pool_check_state(const dbp_pool *p) {
  DBP_ASSERT(p->nused <= p->o.max_size && p->nidle <= p->o.max_size);
  DBP_ASSERT(pool_total(p) <= p->o.max_size);
  DBP_ASSERT(pool_nwait(p) == 0 || p->nidle == 0);
  DBP_ASSERT(!p->closed || (p->nidle == 0 && pool_nwait(p) == 0));
  (void)p;
}

static bool pool_idle_has(const dbp_pool *p, const dbp_conn *c) {
  for (size_t i = 0; i < p->nidle; i++)
    if (p->idle[i].conn == c) return true;
  return false;
}

static void pool_note_peaks(dbp_pool *p) {
  if (p->nused > p->st.in_use_peak) p->st.in_use_peak = p->nused;
  if (pool_total(p) > p->st.total_peak) p->st.total_peak = pool_total(p);
}

/* Remaining milliseconds until `deadline` (UINT64_MAX = none), as a timeout
 * argument: DBP_FOREVER without a deadline, 0 once it passed. */
static int64_t pool_remaining(const dbp_pool *p, uint64_t deadline) {
  if (deadline == UINT64_MAX) return DBP_FOREVER;
  uint64_t now = pool_now(p);
  return deadline > now ? (int64_t)(deadline - now) : 0;
}

/* The smaller of two timeouts where DBP_FOREVER is infinite. */
static int64_t pool_min_timeout(int64_t a, int64_t b) {
  if (a == DBP_FOREVER) return b;
  if (b == DBP_FOREVER) return a;
  return a < b ? a : b;
}

static bool pool_past(const dbp_pool *p, uint64_t since, int64_t limit_ms) {
  return limit_ms != DBP_FOREVER && pool_now(p) - since >= (uint64_t)limit_ms;
}

static bool pool_expired(const dbp_pool *p, dbp_conn *c) {
  return pool_past(p, dbp_conn_opened_at(c), p->o.max_lifetime_ms);
}

static void pool_used_add(dbp_pool *p, dbp_conn *c) {
  DBP_ASSERT(p->nused < p->o.max_size && !pool_idle_has(p, c));
  p->used[p->nused++] = c;
  pool_note_peaks(p);
}

/* Removes `c` from the used set; false when it is not there. */
static bool pool_used_remove(dbp_pool *p, dbp_conn *c) {
  for (size_t i = 0; i < p->nused; i++) {
    if (p->used[i] == c) {
      p->used[i] = p->used[--p->nused];
      return true;
    }
  }
  return false;
}

static bool pool_used_has(const dbp_pool *p, const dbp_conn *c) {
  for (size_t i = 0; i < p->nused; i++)
    if (p->used[i] == c) return true;
  return false;
}

static void pool_idle_remove_at(dbp_pool *p, size_t i) {
  memmove(&p->idle[i], &p->idle[i + 1], (p->nidle - i - 1) * sizeof p->idle[0]);
  p->nidle--;
}

/* Closes a connection the pool no longer counts anywhere. */
static void pool_close_conn(dbp_pool *p, dbp_conn *c, bool broken) {
  dbp_conn_close(c);
  p->st.closed++;
  if (broken) p->st.broken++;
}

/* ---- the waiter queue ---- */

/* Dequeues the oldest waiter and wakes it with `what`; NULL when nobody
 * waits. */
static pool_waiter *pool_wake_oldest(dbp_pool *p, int what, dbp_conn *c) {
  pool_waiter *w = (pool_waiter *)dbp_waitq_pop(&p->waiters);
  if (!w) return NULL;
  w->conn = c;
  dbp_wake(&w->w, what);
  return w;
}

/* ---- the reaper: closes idle connections past their time ---- */

static void pool_reaper_arm(dbp_pool *p);
static void pool_give_slot(dbp_pool *p);

/* Closes idle connections older than max_lifetime_ms, and idle longer than
 * idle_timeout_ms while the pool holds more than min_size, oldest idle
 * first. Never waits. */
static void pool_sweep(dbp_pool *p) {
  for (size_t i = 0; i < p->nidle;) {
    pool_idle *e = &p->idle[i];
    bool too_old = pool_expired(p, e->conn);
    bool too_idle = pool_total(p) > p->o.min_size && pool_past(p, e->since, p->o.idle_timeout_ms);
    if (too_old || too_idle) {
      dbp_conn *c = e->conn;
      pool_idle_remove_at(p, i);
      pool_close_conn(p, c, false);
      pool_give_slot(p);
    } else {
      i++;
    }
  }
}

static void pool_reaper_cb(uv_timer_t *t) {
  dbp_pool *p = t->data;
  pool_sweep(p);
  pool_reaper_arm(p);
}

/* Starts the reaper timer for the earliest moment an idle connection will
 * be due, unless it already runs for an earlier one. */
static void pool_reaper_arm(dbp_pool *p) {
  uint64_t due = UINT64_MAX;
  bool idle_applies = pool_total(p) > p->o.min_size && p->o.idle_timeout_ms != DBP_FOREVER;
  for (size_t i = 0; i < p->nidle; i++) {
    if (p->o.max_lifetime_ms != DBP_FOREVER) {
      uint64_t d = dbp_conn_opened_at(p->idle[i].conn) + (uint64_t)p->o.max_lifetime_ms;
      if (d < due) due = d;
    }
    if (idle_applies) {
      uint64_t d = p->idle[i].since + (uint64_t)p->o.idle_timeout_ms;
      if (d < due) due = d;
    }
  }
  if (due == UINT64_MAX) {
    uv_timer_stop(p->reaper);
    return;
  }
  if (uv_is_active((uv_handle_t *)p->reaper) && p->reaper_due <= due) return;
  uint64_t now = pool_now(p);
  p->reaper_due = due;
  uv_timer_start(p->reaper, pool_reaper_cb, due > now ? due - now : 0, 0);
}

static void pool_reaper_free_cb(uv_handle_t *h) {
  free(h);
}

/* ---- handing things over ---- */

/* Passes on a healthy, reset connection that is in the used set: to the
 * oldest waiter (it stays used), else onto the idle stack as idle since
 * `since`; a closed pool closes it. Never waits. */
static void pool_put_back(dbp_pool *p, dbp_conn *c, uint64_t since) {
  DBP_ASSERT(pool_used_has(p, c));
  if (pool_wake_oldest(p, HAND_CONN, c)) return;
  pool_used_remove(p, c);
  if (p->closed) {
    pool_close_conn(p, c, false);
    return;
  }
  DBP_ASSERT(p->nidle < p->o.max_size && pool_nwait(p) == 0);
  p->idle[p->nidle].conn = c;
  p->idle[p->nidle].since = since;
  p->nidle++;
  /* One-call statements waiting for room may open a pipe on it. */
  dbp_waitq_wake_all(&p->pipe_waiters, 0);
  pool_check_state(p);
  pool_reaper_arm(p);
}

static void pool_give_conn(dbp_pool *p, dbp_conn *c) {
  pool_put_back(p, c, pool_now(p));
}

/* A unit of capacity became free (a connection was closed or a connect
 * failed): the oldest waiter gets the right to open a connection. */
static void pool_give_slot(dbp_pool *p) {
  if (p->closed) return;
  if (pool_nwait(p) == 0) {
    dbp_waitq_wake_all(&p->pipe_waiters, 0); /* room to open a pipe */
    return;
  }
  p->opening++;
  pool_wake_oldest(p, HAND_SLOT, NULL);
}

/* Called by every pool call on its way out: once a closed pool has nothing
 * left in flight, wakes dbp_pool_close or, if that returned already, frees
 * the pool. `p` must not be touched afterwards. */
static void pool_free(dbp_pool *p);

static void pool_maybe_done(dbp_pool *p) {
  if (!p->closed || p->nused || p->opening || p->busy) return;
  if (p->orphaned)
    pool_free(p);
  else if (p->drained)
    dbp_wake(p->drained, 0);
}

/* ---- construction ---- */

/* Normalizes one duration option: 0 takes the default, DBP_FOREVER stays,
 * DBP_POOL_NOW becomes a real zero (when `zero_ok`), other negatives are
 * invalid. */
static int pool_norm_ms(int64_t v, int64_t def, bool zero_ok, int64_t *out) {
  if (v == 0)
    *out = def;
  else if (v == DBP_FOREVER)
    *out = DBP_FOREVER;
  else if (v == DBP_POOL_NOW && zero_ok)
    *out = 0;
  else if (v < 0)
    return DBP_EINVAL;
  else
    *out = v;
  return 0;
}

static int pool_norm_options(const dbp_pool_options *in, dbp_pool_options *o) {
  dbp_pool_options zero = {0};
  if (!in) in = &zero;
  int rc;
  o->min_size = in->min_size;
  o->max_size = in->max_size ? in->max_size : POOL_DEFAULT_MAX_SIZE;
  if (o->min_size > o->max_size) return DBP_EINVAL;
  if ((rc = pool_norm_ms(in->connect_timeout_ms, POOL_DEFAULT_CONNECT_MS, false,
                         &o->connect_timeout_ms)) < 0 ||
      (rc = pool_norm_ms(in->idle_timeout_ms, POOL_DEFAULT_IDLE_MS, true, &o->idle_timeout_ms)) <
          0 ||
      (rc = pool_norm_ms(in->max_lifetime_ms, POOL_DEFAULT_LIFETIME_MS, true,
                         &o->max_lifetime_ms)) < 0 ||
      (rc = pool_norm_ms(in->check_after_ms, POOL_DEFAULT_CHECK_MS, true, &o->check_after_ms)) <
          0 ||
      (rc = pool_norm_ms(in->io_timeout_ms, DBP_DEFAULT_IO_TIMEOUT_MS, false, &o->io_timeout_ms)) <
          0)
    return rc;
  o->keep_session = in->keep_session;
  o->no_pipeline = in->no_pipeline;
  o->pipeline_depth = in->pipeline_depth ? in->pipeline_depth : POOL_DEFAULT_DEPTH;
  o->max_result_bytes = in->max_result_bytes ? in->max_result_bytes : DBP__RESULT_MAX_BYTES;
  return 0;
}

/* Creates a pool for `dsn` (copied) on `rt`. Checks the DSN's syntax but
 * does not connect. On success *out owns the pool until dbp_pool_close. */
int dbp_pool_new(dbp_rt *rt, const char *dsn, const dbp_pool_options *opts, dbp_pool **out) {
  if (!rt || !dsn || !out) return DBP_EINVAL;
  *out = NULL;

  dbp_pool_options o;
  int rc = pool_norm_options(opts, &o);
  if (rc < 0) return rc;

  dbp_dsn parsed;
  char errbuf[128];
  rc = dbp_dsn_parse(dsn, &parsed, errbuf, sizeof errbuf);
  if (rc < 0) return rc;
  dbp_db_kind kind = parsed.kind;
  dbp_dsn_free(&parsed);

  dbp_pool *p = calloc(1, sizeof *p);
  if (!p) return DBP_ENOMEM;
  p->rt = rt;
  p->o = o;
  rc = DBP_ENOMEM;
  size_t rlen = strlen(dsn) + 8; /* the "***" may be longer than the password */
  if (!(p->dsn = strdup(dsn)) || !(p->dsn_redacted = malloc(rlen)) ||
      !(p->idle = calloc(o.max_size, sizeof *p->idle)) ||
      !(p->used = calloc(o.max_size, sizeof *p->used)) ||
      !(p->pipes = calloc(o.max_size, sizeof *p->pipes)) ||
      !(p->reaper = malloc(sizeof *p->reaper)))
    goto err;
  p->kind = kind;
  dbp_dsn_redact(dsn, p->dsn_redacted, rlen);

  int uvrc = uv_timer_init(dbp_rt_loop(rt), p->reaper);
  if (uvrc < 0) {
    rc = dbp_err_from_errno(uvrc);
    goto err;
  }
  p->reaper->data = p;
  uv_unref((uv_handle_t *)p->reaper);

  *out = p;
  return 0;

err:
  free(p->reaper);
  free(p->pipes);
  free(p->used);
  free(p->idle);
  free(p->dsn_redacted);
  free(p->dsn);
  free(p);
  return rc;
}

/* Frees a closed pool with nothing in flight. */
static void pool_free(dbp_pool *p) {
  DBP_ASSERT(p->closed && !p->nused && !p->opening && !p->busy && !pool_nwait(p));
  for (size_t i = 0; i < p->nidle; i++) pool_close_conn(p, p->idle[i].conn, false);
  uv_close((uv_handle_t *)p->reaper, pool_reaper_free_cb);
  for (size_t i = 0; i < POOL_CLASS_SLOTS; i++) free(p->cls[i].sql);
  free(p->pipes);
  free(p->used);
  free(p->idle);
  free(p->dsn_redacted);
  free(p->dsn);
  free(p);
}

/* ---- acquire ---- */

/* Queues the calling coroutine and waits until something is handed to it
 * or the deadline passes. On 0, either *c holds a connection (in the used
 * set) or *slot is set (a reserved opening slot). On a timeout or
 * cancellation that raced with a hand-over, what was handed over is passed
 * on before returning the error. */
static int pool_wait_turn(dbp_pool *p, uint64_t deadline, bool first, bool helper, dbp_conn **c,
                          bool *slot) {
  pool_waiter w;
  memset(&w, 0, sizeof w);
  dbp_waiter_init(&w.w);
  /* At the head when `first`: a waiter whose turn came but could not be
   * used keeps its place. */
  if (first)
    dbp_waitq_push_front(&p->waiters, &w.w);
  else
    dbp_waitq_push(&p->waiters, &w.w);
  if (helper) p->helpers_queued++;
  int rc = dbp_await(p->rt, &w.w, pool_remaining(p, deadline));
  if (helper) p->helpers_queued--;

  if (!dbp_waiter_fired(&w.w)) {
    /* The failed wait left the queue, so nothing can wake it now. */
    DBP_ASSERT(rc < 0);
    dbp_waitq_remove(&w.w);
    return rc < 0 ? rc : DBP_EPROTO;
  }
  int handed = w.w.result;
  if (rc < 0) {
    /* Handed something in the same turn as the wait gave up: pass it on. */
    if (handed == HAND_CONN) {
      pool_give_conn(p, w.conn);
    } else if (handed == HAND_SLOT) {
      p->opening--;
      pool_give_slot(p);
    }
    return rc;
  }
  if (handed == HAND_CONN) {
    *c = w.conn;
  } else if (handed == HAND_SLOT) {
    *slot = true;
  } else {
    rc = DBP_EPOOLCLOSED;
  }
  return rc;
}

/* Pings a connection taken from the idle stack (in the used set). Returns 0
 * when it answered. Otherwise the connection is out of the pool's sets:
 * closed, or, if only our own deadline or a cancellation cut the check
 * short, passed back healthy; the return says which: DBP_EAGAIN (dead,
 * closed: try again) or the wait's error (give up). */
static int pool_check(dbp_pool *p, dbp_conn *c, uint64_t since, uint64_t deadline) {
  int64_t tmo = pool_min_timeout(POOL_CHECK_TIMEOUT_MS, pool_remaining(p, deadline));
  if (tmo == 0) {
    pool_put_back(p, c, since);
    return DBP_ETIMEDOUT;
  }
  int rc = dbp_conn_ping(c, tmo);
  if (rc == 0 && !dbp_conn_is_broken(c)) return 0;
  bool ours = rc == DBP_ECANCELED || (rc == DBP_ETIMEDOUT && pool_remaining(p, deadline) == 0);
  if (ours && !dbp_conn_is_broken(c) && !dbp_conn_in_transaction(c)) {
    pool_put_back(p, c, since); /* unproven either way: still due a check */
    return rc;
  }
  pool_used_remove(p, c);
  pool_close_conn(p, c, !ours);
  return ours ? rc : DBP_EAGAIN;
}

static void pool_fill_err(dbp_dberr *err, int rc) {
  if (!err) return;
  memset(err, 0, sizeof *err);
  err->code = rc;
  snprintf(err->message, sizeof err->message, "pool: %s", dbp_strerror(rc));
}

/* Waits for a connection: an idle one (pinged first when it sat idle longer
 * than check_after_ms, replaced when dead or too old), a new one when the
 * pool is below max_size and nobody queues, or the next one handed to us in
 * arrival order. On 0 the caller holds *out until dbp_pool_release. On an
 * error *out is NULL and `err` (if not NULL) says why: the connect error
 * with the server's detail, or just the code. */
static int pool_acquire(dbp_pool *p, int64_t timeout_ms, bool helper, dbp_conn **out,
                        dbp_dberr *err);

int dbp_pool_acquire(dbp_pool *p, int64_t timeout_ms, dbp_conn **out, dbp_dberr *err) {
  return pool_acquire(p, timeout_ms, false, out, err);
}

/* dbp_pool_acquire; `helper` when a one-call statement queues for a
 * connection to open a pipe on. */
static int pool_acquire(dbp_pool *p, int64_t timeout_ms, bool helper, dbp_conn **out,
                        dbp_dberr *err) {
  if (out) *out = NULL;
  if (!p || !out || timeout_ms < DBP_FOREVER) return DBP_EINVAL;
  if (!dbp_current(p->rt)) return DBP_ENOTCORO;
  if (p->closed) {
    pool_fill_err(err, DBP_EPOOLCLOSED);
    return DBP_EPOOLCLOSED;
  }

  uint64_t start = pool_now(p);
  /* The loop clock is in milliseconds and only moves between loop turns:
   * the histogram takes the wait from the high-resolution one. */
  uint64_t start_ns = uv_hrtime();
  uint64_t deadline = timeout_ms == DBP_FOREVER ? UINT64_MAX : start + (uint64_t)timeout_ms;
  dbp_conn *c = NULL;
  bool slot = false; /* we hold one unit of `opening` */
  bool connect_failed = false;
  bool requeue = false; /* wait at the head of the queue (see DBP_ETOOMANY) */
  int rc = 0;
  p->busy++;

  for (;;) {
    if (p->closed) {
      if (slot) {
        p->opening--;
        slot = false;
      }
      rc = DBP_EPOOLCLOSED;
      break;
    }
    if (slot && p->nidle > 0 && pool_nwait(p) == 0) {
      /* Something came back while we held a slot: use it, free the slot
       * (nobody queues while a connection is idle). */
      p->opening--;
      slot = false;
    }
    if (!slot) {
      if (pool_nwait(p) == 0 && p->nidle > 0) {
        pool_idle top = p->idle[--p->nidle];
        c = top.conn;
        pool_used_add(p, c);
        bool dead = !dbp_conn_alive(c); /* a peek, it does not wait */
        if (dead || pool_expired(p, c)) {
          /* Dead (the server restarted or ended the session while it sat
           * idle) or too old: replace it with the capacity it frees. */
          pool_used_remove(p, c);
          pool_close_conn(p, c, dead);
          c = NULL;
          p->opening++;
          slot = true;
          continue;
        }
        /* A zero timeout does not wait, so it skips the ping: the peek
         * above is all it gets. */
        if (timeout_ms != 0 && pool_past(p, top.since, p->o.check_after_ms)) {
          rc = pool_check(p, c, top.since, deadline);
          if (rc == DBP_EAGAIN) {
            /* Dead: its capacity is ours to replace it with. */
            c = NULL;
            p->opening++;
            slot = true;
            rc = 0;
            continue;
          }
          if (rc < 0) {
            c = NULL;
            break;
          }
          if (p->closed) continue; /* the top of the loop rejects it */
        }
        break;
      }
      if (pool_nwait(p) == 0 && pool_total(p) < pool_cap(p)) {
        p->opening++;
        slot = true;
        pool_note_peaks(p);
      } else {
        rc = pool_wait_turn(p, deadline, requeue, helper, &c, &slot);
        requeue = false;
        if (rc < 0) break;
        if (c) break;
        continue;
      }
    }

    /* We hold a slot: connect. */
    int64_t tmo = pool_min_timeout(p->o.connect_timeout_ms, pool_remaining(p, deadline));
    if (tmo == 0) {
      rc = DBP_ETIMEDOUT;
      p->opening--;
      slot = false;
      pool_give_slot(p);
      break;
    }
    rc = dbp_conn_open(p->rt, p->dsn, tmo, &c, err);
    p->opening--;
    slot = false;
    if (rc == DBP_ETOOMANY && p->nused + p->nidle + p->opening > 0) {
      /* The server has no connection to spare, but this pool holds some,
       * or is opening some that may have got the server's last places:
       * keep to what the server allowed for a while and wait, in turn,
       * for one of ours to come back instead of failing (a connect of
       * ours that fails instead hands its slot on, so the wait ends). This
       * waiter was served already, so it goes back to the head of the
       * queue. */
      c = NULL;
      rc = 0;
      p->cap = p->nused + p->nidle + p->opening;
      p->cap_until = pool_now(p) + POOL_TOOMANY_HOLD_MS;
      requeue = true;
      continue;
    }
    if (rc < 0) {
      c = NULL;
      connect_failed = true;
      pool_give_slot(p);
      break;
    }
    dbp_conn_set_io_timeout(c, p->o.io_timeout_ms);
    p->st.opened++;
    pool_used_add(p, c);
    break;
  }

  if (c && p->closed) {
    pool_used_remove(p, c);
    pool_close_conn(p, c, false);
    c = NULL;
    rc = DBP_EPOOLCLOSED;
  }
  if (c) {
    rc = 0;
    p->st.acquired++;
    *out = c;
  } else {
    if (rc == 0) rc = DBP_EPOOLCLOSED;
    if (rc == DBP_ETIMEDOUT) p->st.timeouts++;
    if (!connect_failed) pool_fill_err(err, rc);
  }
  p->st.wait_ms_total += pool_now(p) - start;
  pool_note_wait(p, (uv_hrtime() - start_ns) / 1000);
  DBP_ASSERT(p->busy > 0 && !slot);
  pool_check_state(p);
  p->busy--;
  pool_maybe_done(p);
  return rc;
}

/* ---- release ---- */

/* Makes a returned connection fit for the next user: abandons an unread
 * result, then dbp_conn_reset (rolls back an open transaction and, unless
 * the pool keeps sessions, returns the session to its state after
 * connect). Returns true when it can go back to the pool; *broken tells a
 * failure apart from a deliberate drop. Outside a coroutine nothing can
 * wait: only a connection with nothing to undo (idle, no transaction, and
 * the pool keeps sessions) goes back; any other is dropped, which ends its
 * transaction and session on the server just as well. */
static bool pool_reset(dbp_pool *p, dbp_conn *c, bool clean, bool *broken) {
  *broken = dbp_conn_is_broken(c);
  if (*broken) return false;
  bool keep = p->o.keep_session || clean;
  if (!dbp_current(p->rt)) return keep && !dbp_conn_in_transaction(c) && dbp_query_close(c) == 0;
  int rc = dbp_query_close(c); /* returns at once when no result is open */
  if (rc < 0 || dbp_conn_is_broken(c)) {
    *broken = true;
    return false;
  }
  rc = dbp_conn_reset(c, keep, POOL_RESET_TIMEOUT_MS);
  if (rc < 0 || dbp_conn_is_broken(c)) {
    *broken = true;
    return false;
  }
  return true;
}

/* The second half of a release, with p->busy already counting the caller:
 * resets `c` (in the used set) and passes it on, or closes it and lets the
 * oldest waiter open a replacement. */
static void pool_finish_release(dbp_pool *p, dbp_conn *c, bool clean) {
  DBP_ASSERT(pool_used_has(p, c));
  bool broken = false;
  bool keep = !p->closed && pool_reset(p, c, clean, &broken);
  if (keep && (p->closed || pool_expired(p, c))) keep = false;
  if (keep) {
    pool_give_conn(p, c);
  } else {
    pool_used_remove(p, c);
    pool_close_conn(p, c, broken);
    pool_give_slot(p);
  }
  DBP_ASSERT(p->busy > 0);
  pool_check_state(p);
  p->busy--;
  pool_maybe_done(p);
}

typedef struct pool_reset_job {
  dbp_pool *p;
  dbp_conn *c;
  bool clean;
} pool_reset_job;

static int pool_reset_main(void *arg, void **result) {
  (void)result;
  pool_reset_job j = *(pool_reset_job *)arg;
  free(arg);
  pool_finish_release(j.p, j.c, j.clean);
  return 0;
}

/* Gives back a connection acquired from `p`, from any coroutine (or from
 * outside one). Broken connections, those whose reset failed and those past
 * max_lifetime_ms are closed, and the oldest waiter may open a replacement;
 * healthy ones go to the oldest waiter or become idle. When the caller has
 * a cancellation pending, the reset runs in a coroutine of its own, so that
 * its waits do not swallow the caller's cancellation. A connection the pool
 * does not have out is ignored. */
static void pool_release(dbp_pool *p, dbp_conn *c, bool clean);

void dbp_pool_release(dbp_pool *p, dbp_conn *c) {
  pool_release(p, c, false);
}

/* dbp_pool_release; `clean` when the caller knows the session holds
 * nothing of its user's (only stateless statements ran): then only an
 * open transaction is rolled back, as with keep_session. */
static void pool_release(dbp_pool *p, dbp_conn *c, bool clean) {
  if (!p || !c) return;
  if (!pool_used_has(p, c)) {
    /* Idle means it came back already: a second release of the same
     * acquire, a bug in the caller (a connection closed since cannot be
     * told from a foreign one, and is ignored). */
    DBP_ASSERT(!pool_idle_has(p, c));
    return;
  }
  p->busy++;
  if (!p->closed && !dbp_conn_is_broken(c) && dbp_current(p->rt) && dbp_cancel_pending(p->rt)) {
    pool_reset_job *j = malloc(sizeof *j);
    if (j) {
      j->p = p;
      j->c = c;
      j->clean = clean;
      dbp_spawn_options so = {.name = "dbpipe-pool-reset", .detached = true};
      if (dbp_spawn(p->rt, NULL, pool_reset_main, j, &so) == 0) return;
      free(j);
    }
  }
  pool_finish_release(p, c, clean);
}

/* ---- one call per statement ---- */

/* Whether a new connection can be had without waiting behind anyone: an
 * idle one, or room to open one. */
static bool pool_can_grow(const dbp_pool *p) {
  return pool_nwait(p) == 0 && (p->nidle > 0 || pool_total(p) < pool_cap(p));
}

/* The pipe with the fewest statements in flight that takes more, or NULL. */
static dbp__pipe *pool_pick_pipe(const dbp_pool *p) {
  dbp__pipe *best = NULL;
  size_t low = p->o.pipeline_depth;
  for (size_t i = 0; i < p->npipes; i++) {
    dbp__pipe *pp = p->pipes[i];
    size_t n = dbp__pipe_in_flight(pp);
    if (n < low && dbp__pipe_accepting(pp)) {
      best = pp;
      low = n;
    }
  }
  return best;
}

/* A pipe's reader found it empty: the pipe closes and its connection goes
 * back, without a reset unless the pipe says one is needed. Runs in the
 * reader's coroutine. */
static void pool_pipe_drained(dbp__pipe *pp, void *arg) {
  dbp_pool *p = arg;
  for (size_t i = 0; i < p->npipes; i++)
    if (p->pipes[i] == pp) {
      p->pipes[i] = p->pipes[--p->npipes];
      break;
    }
  dbp_conn *c = dbp__pipe_conn(pp);
  bool reset = dbp__pipe_close(pp);
  /* Waiters may now take the connection (or open another pipe). */
  dbp_waitq_wake_all(&p->pipe_waiters, 0);
  pool_release(p, c, !reset); /* p may be gone after this */
}

/* Turns an acquired connection into a new pipe, listed in the pool. */
static int pool_open_pipe(dbp_pool *p, dbp_conn *c, dbp__pipe **out) {
  int rc = dbp__pipe_open(c, pool_pipe_drained, p, out);
  if (rc != 0) return rc;
  DBP_ASSERT(p->npipes < p->o.max_size);
  p->pipes[p->npipes++] = *out;
  dbp_waitq_wake_all(&p->pipe_waiters, 0);
  return 0;
}

static void pool_set_err(dbp_dberr *err, const dbp_dberr *from, int rc) {
  if (!err) return;
  if (from && from->code == rc) {
    *err = *from;
  } else {
    pool_fill_err(err, rc);
  }
}

/* dbp__sql_classify (stateless, and read-only into *read_only),
 * remembered per SQL text. */
static bool pool_stateless(dbp_pool *p, const dbp__sql_text *text, bool *read_only) {
  const char *sql = text->s;
  size_t len = text->len;
  uint64_t h = text->hash;
  struct pool_class *e = &p->cls[h % POOL_CLASS_SLOTS];
  if (e->sql && e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
    *read_only = e->read_only;
    return e->stateless;
  }
  bool st = dbp__sql_classify(p->kind, sql, read_only);
  char *copy = malloc(len + 1);
  if (copy) {
    memcpy(copy, sql, len + 1);
    free(e->sql);
    e->sql = copy;
    e->hash = h;
    e->len = len;
    e->stateless = st;
    e->read_only = *read_only;
  }
  return st;
}

/* The time left before `deadline` as a timeout (DBP_FOREVER for none). */
static int64_t pool_left(const dbp_pool *p, uint64_t deadline) {
  return deadline == UINT64_MAX ? DBP_FOREVER : pool_remaining(p, deadline);
}

/* Runs the statement on the acquired connection c and releases it (without
 * a reset when `stateless`). */
static int pool_run_on(dbp_pool *p, dbp_conn *c, const char *sql, size_t n, const dbp_param *params,
                       uint64_t deadline, bool stateless, bool rows, dbp_result **out,
                       int64_t *affected, dbp_dberr *err) {
  int rc;
  if (rows)
    rc = dbp_query_all(c, sql, n, params, pool_left(p, deadline), p->o.max_result_bytes, out);
  else
    rc = dbp_exec(c, sql, n, params, pool_left(p, deadline), affected);
  if (rc != 0) pool_set_err(err, dbp_conn_error(c), rc);
  pool_release(p, c, stateless && !dbp_conn_in_transaction(c));
  return rc;
}

/* The statement on a connection of its own: acquire, run, release. */
static int pool_run_alone(dbp_pool *p, const char *sql, size_t n, const dbp_param *params,
                          uint64_t deadline, bool stateless, bool rows, dbp_result **out,
                          int64_t *affected, dbp_dberr *err) {
  dbp_conn *c = NULL;
  int rc = dbp_pool_acquire(p, pool_left(p, deadline), &c, err);
  if (rc != 0) return rc;
  return pool_run_on(p, c, sql, n, params, deadline, stateless, rows, out, affected, err);
}

static int pool_statement(dbp_pool *p, const char *sql, size_t n, const dbp_param *params,
                          int64_t timeout_ms, bool rows, dbp_result **out, int64_t *affected,
                          dbp_dberr *err) {
  if (out) *out = NULL;
  if (affected) *affected = 0;
  if (!p || !sql || (n > 0 && !params) || (rows && !out) || timeout_ms < DBP_FOREVER) {
    pool_fill_err(err, DBP_EINVAL);
    return DBP_EINVAL;
  }
  if (!dbp_current(p->rt)) {
    pool_fill_err(err, DBP_ENOTCORO);
    return DBP_ENOTCORO;
  }
  if (p->closed) {
    pool_fill_err(err, DBP_EPOOLCLOSED);
    return DBP_EPOOLCLOSED;
  }
  uint64_t deadline = timeout_ms == DBP_FOREVER ? UINT64_MAX : pool_now(p) + (uint64_t)timeout_ms;
  bool read_only = false;
  dbp__sql_text text = {.s = sql, .len = strlen(sql)};
  text.hash = dbp__sql_hash(sql, text.len);
  bool stateless = pool_stateless(p, &text, &read_only);
  int rc;
  char why[160];
  if (!stateless && dbp_sql_check_single(p->kind, sql, why, sizeof why) != 0) {
    /* One statement per call, on every database and path (several in one
     * text would run only through the simple protocol, alone). */
    if (err) {
      memset(err, 0, sizeof *err);
      err->code = DBP_EINVAL;
      snprintf(err->message, sizeof err->message, "one statement per call: %s", why);
    }
    return DBP_EINVAL;
  }
  p->busy++;
  p->st.statements++;
  if (!stateless || !dbp__pipe_kind_supported(p->kind) || p->o.no_pipeline || timeout_ms == 0) {
    rc = pool_run_alone(p, sql, n, params, deadline, stateless, rows, out, affected, err);
    goto done;
  }
  for (;;) {
    if (p->closed) {
      rc = DBP_EPOOLCLOSED;
      pool_fill_err(err, rc);
      break;
    }
    int64_t left = pool_left(p, deadline);
    /* While an acquire waits for a connection, pipes take nothing new, so
     * that one of them drains and goes to it: a stream of shared
     * statements never starves a caller that needs a connection alone. */
    dbp__pipe *pp = pool_nwait(p) > p->helpers_queued ? NULL : pool_pick_pipe(p);
    if (pp == NULL || (dbp__pipe_in_flight(pp) > 0 && pool_can_grow(p))) {
      if (pp == NULL && !pool_can_grow(p) && (p->npipes > 0 || p->opening > 0)) {
        /* Every pipe is full (or still being opened) and no connection is
         * free: wait for room, rather than queue for a connection of our
         * own, which would hold every pipe back for us. */
        if (left == 0) {
          rc = DBP_ETIMEDOUT;
          pool_fill_err(err, rc);
          break;
        }
        dbp_waiter w;
        dbp_waiter_init(&w);
        dbp_waitq_push(&p->pipe_waiters, &w);
        rc = dbp_await(p->rt, &w, left);
        if (rc == 0 && w.result != 0) rc = w.result;
        if (rc != 0) {
          if (rc == DBP_ETIMEDOUT) p->st.timeouts++;
          pool_fill_err(err, rc);
          break;
        }
        continue;
      }
      /* A connection of our own, for a new pipe (with no pipe at all this
       * queues like any acquire). */
      dbp_conn *c = NULL;
      rc = pool_acquire(p, left, true, &c, err);
      if (rc != 0) break;
      dbp__pipe *mine = NULL;
      if (p->closed || pool_open_pipe(p, c, &mine) != 0) {
        /* Not shareable after all: run on it alone. */
        rc = pool_run_on(p, c, sql, n, params, deadline, true, rows, out, affected, err);
        break;
      }
      pp = mine;
      left = pool_left(p, deadline);
    }
    bool left_behind = false;
    rc = dbp__pipe_run(pp, &text, n, params, left, read_only, rows, p->o.max_result_bytes, out,
                       affected, err, &left_behind);
    if (rc == DBP_EAGAIN) continue; /* it stopped taking statements meanwhile */
    p->st.pipelined++;
    if (left_behind) p->st.abandoned++;
    /* Room on a pipe for someone waiting. */
    dbp_waiter *w = dbp_waitq_pop(&p->pipe_waiters);
    if (w) dbp_wake(w, 0);
    break;
  }
done:
  DBP_ASSERT(p->busy > 0);
  p->busy--;
  pool_maybe_done(p);
  return rc;
}

int dbp_pool_query(dbp_pool *p, const char *sql, size_t nparams, const dbp_param *params,
                   int64_t timeout_ms, dbp_result **out, dbp_dberr *err) {
  return pool_statement(p, sql, nparams, params, timeout_ms, true, out, NULL, err);
}

int dbp_pool_exec(dbp_pool *p, const char *sql, size_t nparams, const dbp_param *params,
                  int64_t timeout_ms, int64_t *affected, dbp_dberr *err) {
  return pool_statement(p, sql, nparams, params, timeout_ms, false, NULL, affected, err);
}

/* ---- close ---- */

/* Fails every queued acquire with DBP_EPOOLCLOSED, closes idle connections,
 * then waits up to timeout_ms (from a coroutine; outside one it does not
 * wait) for connections in use or being opened to come back, closing each as
 * it does. Returns 0 when all came back and the pool is freed. On
 * DBP_ETIMEDOUT (or DBP_ECANCELED) some are still out: the pool stays
 * closed and frees itself when the last of them is released; `p` may then
 * only be passed to dbp_pool_release. */
int dbp_pool_close(dbp_pool *p, int64_t timeout_ms) {
  if (!p) return DBP_EINVAL;
  if (p->closed) return DBP_ESTATE;
  p->closed = true;
  while (pool_wake_oldest(p, HAND_CLOSED, NULL)) {
  }
  dbp_waitq_wake_all(&p->pipe_waiters, DBP_EPOOLCLOSED);
  while (p->nidle > 0) pool_close_conn(p, p->idle[--p->nidle].conn, false);
  uv_timer_stop(p->reaper);

  int rc = 0;
  if (p->nused || p->opening || p->busy) {
    if (dbp_current(p->rt) && timeout_ms != 0) {
      /* pool_maybe_done wakes us once nothing is left in flight. */
      dbp_waiter w;
      dbp_waiter_init(&w);
      p->drained = &w;
      rc = dbp_await(p->rt, &w, timeout_ms);
      p->drained = NULL;
    } else {
      rc = DBP_ETIMEDOUT;
    }
  }
  bool all_back = !p->nused && !p->opening;
  if (all_back && rc == DBP_ETIMEDOUT) rc = 0;
  if (!all_back && rc == 0) rc = DBP_ETIMEDOUT;
  if (all_back && !p->busy) {
    pool_free(p);
  } else {
    p->orphaned = true;
  }
  return rc;
}

/* ---- introspection ---- */

void dbp_pool_get_stats(const dbp_pool *p, dbp_pool_stats *out) {
  if (!out) return;
  if (!p) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = p->st;
  out->in_use = p->nused;
  out->idle = p->nidle;
  out->waiting = pool_nwait(p);
  out->total = pool_total(p);
  out->opening = p->opening;
  out->shared = p->npipes;
  out->in_flight = 0;
  for (size_t i = 0; i < p->npipes; i++) out->in_flight += dbp__pipe_in_flight(p->pipes[i]);
}

const char *dbp_pool_dsn(const dbp_pool *p) {
  return p ? p->dsn_redacted : "";
}
