/* Waiting on libuv from coroutines: fd watchers (uv_poll_t), thread-pool
 * work (uv_queue_work) and name resolution (uv_getaddrinfo). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

/* ---- fd watchers ---- */

/* One uv_poll_t per fd. The poll keeps running with the events of the last
 * wait between waits (so a coroutine that reads, hits EAGAIN and waits again
 * costs no epoll_ctl), but is unreferenced while nobody waits, and stopped
 * the first time it fires with nobody waiting (so a readable idle socket
 * does not spin the loop). */
struct dbp_fdwatch_s {
  uv_poll_t poll;
  dbp_rt *rt;
  int fd;
  int started;        /* uv events the poll runs with; 0 when stopped */
  int want;           /* DBP_READABLE/DBP_WRITABLE of the current wait */
  dbp_waiter *waiter; /* the waiting coroutine's waiter */
  bool closing;       /* dbp_fdwatch_close was called */
  bool waiting;       /* a coroutine is inside dbp_fdwatch_wait */
  bool closed;        /* the close callback ran while a coroutine waited */
};

static void fdwatch_closed(uv_handle_t *h) {
  dbp_fdwatch *w = h->data;
  if (w->waiting)
    w->closed = true; /* the waiting coroutine frees it when it resumes */
  else
    free(w);
}

static void fdwatch_polled(uv_poll_t *h, int status, int events) {
  dbp_fdwatch *w = h->data;
  if (!w->waiter || status < 0) {
    uv_poll_stop(h);
    w->started = 0;
  }
  if (!w->waiter) return;
  int rev = 0;
  if (status < 0) {
    rev = w->want; /* errors count as ready: the next I/O call reports them */
  } else {
    if (events & (UV_READABLE | UV_DISCONNECT)) rev |= DBP_READABLE;
    if (events & UV_WRITABLE) rev |= DBP_WRITABLE;
    rev &= w->want;
  }
  if (!rev) return;
  dbp_waiter *wt = w->waiter;
  w->waiter = NULL;
  dbp_wake(wt, rev);
}

/* Creates a watcher for fd (which libuv switches to non-blocking mode).
 * DBP_EEXIST when another open watcher of this loop has the fd. */
int dbp_fdwatch_new(dbp_rt *rt, int fd, dbp_fdwatch **out) {
  if (out) *out = NULL;
  if (!rt || !out || fd < 0) return DBP_EINVAL;
  if ((size_t)fd < rt->by_fd_cap && rt->by_fd[fd]) return DBP_EEXIST;
  if ((size_t)fd >= rt->by_fd_cap) {
    size_t cap = rt->by_fd_cap ? rt->by_fd_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    dbp_fdwatch **t = realloc(rt->by_fd, cap * sizeof *t);
    if (!t) return DBP_ENOMEM;
    memset(t + rt->by_fd_cap, 0, (cap - rt->by_fd_cap) * sizeof *t);
    rt->by_fd = t;
    rt->by_fd_cap = cap;
  }
  dbp_fdwatch *w = calloc(1, sizeof *w);
  if (!w) return DBP_ENOMEM;
  int r = uv_poll_init(rt->loop, &w->poll, fd);
  if (r != 0) {
    free(w);
    return r == UV_EEXIST ? DBP_EEXIST : dbp_err_from_errno(r);
  }
  w->poll.data = w;
  w->rt = rt;
  w->fd = fd;
  rt->watchers++;
  rt->by_fd[fd] = w;
  uv_unref((uv_handle_t *)&w->poll);
  *out = w;
  return 0;
}

/* What of `events` the fd is ready for right now (poll(2) without
 * waiting); errors and hang-ups count as ready, as in fdwatch_polled. */
static int fd_ready_now(int fd, int events) {
  struct pollfd pfd = {.fd = fd, .events = 0, .revents = 0};
  if (events & DBP_READABLE) pfd.events |= POLLIN;
  if (events & DBP_WRITABLE) pfd.events |= POLLOUT;
  int r;
  do {
    r = poll(&pfd, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return 0;
  if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) return events;
  int rev = 0;
  if (pfd.revents & POLLIN) rev |= DBP_READABLE;
  if (pfd.revents & POLLOUT) rev |= DBP_WRITABLE;
  return rev & events;
}

/* Waits until the fd is ready for some of `events`. A zero timeout does
 * not wait: it reports what is ready now, or DBP_ETIMEDOUT. */
int dbp_fdwatch_wait(dbp_fdwatch *w, int events, int64_t timeout_ms, int *revents) {
  if (revents) *revents = 0;
  if (!w || !(events & (DBP_READABLE | DBP_WRITABLE))) return DBP_EINVAL;
  if (w->closing) return DBP_ECLOSED;
  dbp_rt *rt = w->rt;
  if (!rt->current) return DBP_ENOTCORO;
  if (w->waiting) return DBP_EBUSY;
  if (timeout_ms == 0) {
    int rev = fd_ready_now(w->fd, events & (DBP_READABLE | DBP_WRITABLE));
    if (rev) {
      if (revents) *revents = rev;
      return 0;
    }
    /* Not ready: the wait below ends at once (DBP_ETIMEDOUT, or a pending
     * cancellation or passed deadline, as any wait). */
  }
  int uv_events = 0;
  if (events & DBP_READABLE) uv_events |= UV_READABLE | UV_DISCONNECT;
  if (events & DBP_WRITABLE) uv_events |= UV_WRITABLE;
  if (uv_events != w->started) {
    int r = uv_poll_start(&w->poll, uv_events, fdwatch_polled);
    if (r != 0) return dbp_err_from_errno(r);
    w->started = uv_events;
  }
  dbp_waiter wt;
  dbp_waiter_init(&wt);
  /* Lives on this stack only while it waits; cleared on wake-up. */
  /* cppcheck-suppress autoVariables */
  w->waiter = &wt;
  w->want = events & (DBP_READABLE | DBP_WRITABLE);
  w->waiting = true;
  uv_ref((uv_handle_t *)&w->poll);
  int rc = dbp_await(rt, &wt, timeout_ms);
  w->waiting = false;
  if (w->closed) {
    free(w);
    return DBP_ECLOSED;
  }
  if (w->waiter == &wt) w->waiter = NULL;
  if (!w->closing) uv_unref((uv_handle_t *)&w->poll);
  if (rc != 0) return rc;
  if (wt.result < 0) return wt.result;
  if (revents) *revents = wt.result;
  return 0;
}

int dbp_fdwatch_fd(const dbp_fdwatch *w) {
  return w ? w->fd : -1;
}

void dbp_fdwatch_kick(dbp_fdwatch *w) {
  if (!w || !w->waiter) return;
  dbp_waiter *wt = w->waiter;
  w->waiter = NULL;
  dbp_wake(wt, 0);
}

/* Stops watching at once (libuv stops polling the fd inside uv_close, so
 * the fd may be closed right after this call, and a new watcher may take
 * the same fd number). A coroutine waiting on w gets DBP_ECLOSED. The
 * memory goes after the close callback (and after that coroutine woke). */
void dbp_fdwatch_close(dbp_fdwatch *w) {
  if (!w || w->closing) return;
  w->closing = true;
  w->rt->watchers--;
  w->rt->by_fd[w->fd] = NULL;
  if (w->waiter) {
    dbp_waiter *wt = w->waiter;
    w->waiter = NULL;
    dbp_wake(wt, DBP_ECLOSED);
  }
  uv_close((uv_handle_t *)&w->poll, fdwatch_closed);
}

/* ---- thread-pool work ---- */

typedef struct work_req {
  uv_work_t req; /* first: the callbacks cast back */
  void (*fn)(void *arg);
  void *arg;
  dbp_waiter w;
} work_req;

static void work_run(uv_work_t *r) {
  work_req *wr = (work_req *)r;
  wr->fn(wr->arg);
}

static void work_after(uv_work_t *r, int status) {
  work_req *wr = (work_req *)r;
  dbp_wake(&wr->w, status);
}

/* fn runs on a pool thread and must not touch the runtime. Returns 0 when
 * fn ran; DBP_ECANCELED / DBP_ETIMEDOUT when the coroutine was cancelled or
 * its deadline passed (fn was dropped if still queued, else it finished
 * before this returns). */
int dbp_work(dbp_rt *rt, void (*fn)(void *arg), void *arg) {
  if (!rt || !fn) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  work_req wr;
  memset(&wr, 0, sizeof wr);
  wr.fn = fn;
  wr.arg = arg;
  dbp_waiter_init(&wr.w);
  int r = uv_queue_work(rt->loop, &wr.req, work_run, work_after);
  if (r != 0) return dbp_err_from_errno(r);
  int rc = dbp_await(rt, &wr.w, DBP_FOREVER);
  if (rc != 0) {
    uv_cancel((uv_req_t *)&wr.req);
    dbp_await_done(rt, &wr.w);
    return rc;
  }
  return 0;
}

/* ---- name resolution ---- */

typedef struct gai_req {
  uv_getaddrinfo_t req; /* first */
  dbp_waiter w;
  struct addrinfo *res;
} gai_req;

static void gai_done(uv_getaddrinfo_t *r, int status, struct addrinfo *res) {
  gai_req *g = (gai_req *)r;
  g->res = res;
  dbp_wake(&g->w, status);
}

static int gai_err(int status) {
  switch (status) {
    case UV_EAI_MEMORY:
      return DBP_ENOMEM;
    case UV_EAI_CANCELED:
      return DBP_ECANCELED;
    case UV_EINVAL:
    case UV_EAI_BADFLAGS:
    case UV_EAI_BADHINTS:
      return DBP_EINVAL;
    default:
      return DBP_ERESOLVE;
  }
}

int dbp_getaddrinfo(dbp_rt *rt, const char *host, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res) {
  if (res) *res = NULL;
  if (!rt || !res || (!host && !service)) return DBP_EINVAL;
  if (!rt->current) return DBP_ENOTCORO;
  gai_req g;
  memset(&g, 0, sizeof g);
  dbp_waiter_init(&g.w);
  int r = uv_getaddrinfo(rt->loop, &g.req, gai_done, host, service, hints);
  if (r != 0) return gai_err(r);
  int rc = dbp_await(rt, &g.w, DBP_FOREVER);
  if (rc != 0) {
    uv_cancel((uv_req_t *)&g.req);
    dbp_await_done(rt, &g.w);
    if (g.res) uv_freeaddrinfo(g.res);
    return rc;
  }
  if (g.w.result < 0) {
    if (g.res) uv_freeaddrinfo(g.res);
    return gai_err(g.w.result);
  }
  *res = g.res;
  return 0;
}

void dbp_freeaddrinfo(struct addrinfo *res) {
  if (res) uv_freeaddrinfo(res);
}
