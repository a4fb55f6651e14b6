/* See faultproxy.h. Everything below runs on the proxy's own loop thread,
 * except the public setters and getters, which only touch the settings and
 * counters under the mutex and wake the loop with an async handle. */
#include "faultproxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dbpipe/db.h"

#define PX_READ_SIZE 65536

struct px_settings {
  int mode;       /* enum dbt_proxy_mode */
  unsigned ms;    /* delay */
  int dir;        /* stall direction */
  uint64_t after; /* stall / cut threshold */
  int how;        /* refuse variant */
  unsigned left;  /* connections left in this mode; 0 = until changed */
};

typedef struct px_conn px_conn;
typedef struct px_chunk px_chunk;

struct dbt_proxy {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  uv_timer_t lifetime;
  uv_tcp_t *listener; /* NULL while not listening */
  struct sockaddr_storage target;
  int port;
  char *dsn; /* dbt_proxy_for_dsn only */

  pthread_mutex_t mu; /* guards everything from here on */
  pthread_cond_t applied_cv;
  struct px_settings set;
  unsigned gen, applied; /* settings changes made / taken in by the loop */
  bool stopping;         /* dbt_proxy_stop was called */
  bool finished;         /* the loop closed its handles; no more wakes */
  unsigned nstats, capstats;
  dbt_proxy_conn_stats *stats;
  px_conn *conns; /* open connections (loop thread only) */
};

/* One side of a connection: 0 = the client, 1 = the server. The index of
 * the side a chunk was read from is also its direction (enum dbt_proxy_dir). */
struct px_conn {
  dbt_proxy *p;
  px_conn *next, *prev;
  uv_tcp_t side[2];
  uv_connect_t connect;
  struct px_settings set; /* as accepted */
  unsigned idx;           /* into p->stats */
  int refs;               /* open handles, writes in flight, chunks waiting */
  bool open[2];           /* handle initialised and not yet closing */
  bool eof[2];            /* end of stream read from this side */
  bool stopped;           /* stalled or cut: no more forwarding */
  bool tearing;           /* both sides are being closed */
  px_chunk *waiting;      /* delayed chunks, oldest first */
};

struct px_chunk {
  px_conn *c;
  px_chunk *next;
  int dir;
  bool eof;          /* an end of stream rather than data */
  bool reset_after;  /* cut mode: reset both sides once written */
  uv_timer_t *timer; /* delay mode, while waiting */
  uv_write_t req;
  uv_buf_t buf;
};

static void px_teardown(px_conn *c, bool reset);

/* ---- small helpers ---- */

static void px_lock(const dbt_proxy *p) {
  pthread_mutex_lock((pthread_mutex_t *)&p->mu);
}

static void px_unlock(const dbt_proxy *p) {
  pthread_mutex_unlock((pthread_mutex_t *)&p->mu);
}

static void px_stat_add(px_conn *c, int dir, uint64_t n) {
  px_lock(c->p);
  c->p->stats[c->idx].bytes[dir] += n;
  px_unlock(c->p);
}

static void px_stat_flag(px_conn *c, bool *(*which)(dbt_proxy_conn_stats *)) {
  px_lock(c->p);
  *which(&c->p->stats[c->idx]) = true;
  px_unlock(c->p);
}

static bool *px_f_stalled(dbt_proxy_conn_stats *s) {
  return &s->stalled;
}
static bool *px_f_cut(dbt_proxy_conn_stats *s) {
  return &s->cut;
}
static bool *px_f_closed(dbt_proxy_conn_stats *s) {
  return &s->closed;
}

/* Drops a reference; the last one unlinks and frees the connection. */
static void px_unref(px_conn *c) {
  if (--c->refs > 0) return;
  px_stat_flag(c, px_f_closed);
  if (c->prev != NULL) {
    c->prev->next = c->next;
  } else {
    c->p->conns = c->next;
  }
  if (c->next != NULL) c->next->prev = c->prev;
  free(c);
}

static void px_chunk_free(px_chunk *k) {
  free(k->buf.base);
  free(k);
}

/* ---- closing ---- */

static void px_side_closed(uv_handle_t *h) {
  px_unref(h->data);
}

static void px_close_side(px_conn *c, int s, bool reset) {
  if (!c->open[s]) return;
  c->open[s] = false;
  uv_read_stop((uv_stream_t *)&c->side[s]);
  /* A reset needs a connected socket and no shutdown in progress; fall
   * back to a plain close when libuv refuses it. */
  if (!reset || uv_tcp_close_reset(&c->side[s], px_side_closed) != 0) {
    uv_close((uv_handle_t *)&c->side[s], px_side_closed);
  }
}

/* The timer of a chunk dropped by a teardown has closed. */
static void px_timer_dropped(uv_handle_t *h) {
  px_chunk *k = h->data;
  px_conn *c = k->c;
  free(h);
  px_chunk_free(k);
  px_unref(c);
}

/* Closes both sides (with a reset when asked) and drops delayed chunks. */
static void px_teardown(px_conn *c, bool reset) {
  if (c->tearing) return;
  c->tearing = true;
  c->stopped = true;
  px_close_side(c, 0, reset);
  px_close_side(c, 1, reset);
  px_chunk *k = c->waiting;
  c->waiting = NULL;
  while (k != NULL) {
    px_chunk *next = k->next;
    uv_timer_stop(k->timer);
    uv_close((uv_handle_t *)k->timer, px_timer_dropped);
    k = next;
  }
}

/* ---- forwarding ---- */

static void px_written(uv_write_t *req, int status) {
  px_chunk *k = req->data;
  px_conn *c = k->c;
  bool reset = k->reset_after;
  px_chunk_free(k);
  if (status != 0 && status != UV_ECANCELED) {
    px_teardown(c, true);
  } else if (reset && status == 0) {
    px_stat_flag(c, px_f_cut);
    px_teardown(c, true);
  }
  px_unref(c);
}

static void px_shut(uv_shutdown_t *req, int status) {
  px_conn *c = req->data;
  (void)status;
  free(req);
  /* Both ways ended: the connection is done. */
  if (c->eof[0] && c->eof[1]) px_teardown(c, false);
  px_unref(c);
}

/* Writes chunk k (data, or an end of stream) to the side opposite its
 * direction. Takes ownership of k. */
static void px_send(px_chunk *k) {
  px_conn *c = k->c;
  int to = 1 - k->dir;
  if (c->tearing || !c->open[to]) {
    px_chunk_free(k);
    return;
  }
  if (k->eof) {
    px_chunk_free(k);
    uv_shutdown_t *req = malloc(sizeof *req);
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->side[to], px_shut) == 0) {
      c->refs++;
    } else {
      free(req);
      px_teardown(c, false);
    }
    return;
  }
  k->req.data = k;
  if (uv_write(&k->req, (uv_stream_t *)&c->side[to], &k->buf, 1, px_written) == 0) {
    c->refs++;
    px_stat_add(c, k->dir, k->buf.len);
  } else {
    px_chunk_free(k);
    px_teardown(c, true);
  }
}

/* The timer of a chunk already sent has closed. */
static void px_timer_done(uv_handle_t *h) {
  px_conn *c = h->data;
  free(h);
  px_unref(c);
}

/* A chunk's delay is over: take it off the waiting list and send it now.
 * (Sending from a close callback would reorder chunks: libuv runs close
 * callbacks newest first.) */
static void px_delay_fire(uv_timer_t *t) {
  px_chunk *k = t->data;
  px_conn *c = k->c;
  for (px_chunk **pp = &c->waiting; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  }
  k->timer = NULL;
  t->data = c;
  uv_close((uv_handle_t *)t, px_timer_done);
  px_send(k);
}

/* Sends chunk k now, or after the connection's delay in delay mode. */
static void px_queue(px_chunk *k) {
  px_conn *c = k->c;
  if (c->set.mode != DBT_PROXY_DELAY) {
    px_send(k);
    return;
  }
  k->timer = malloc(sizeof *k->timer);
  uv_timer_init(&c->p->loop, k->timer);
  k->timer->data = k;
  k->next = NULL;
  px_chunk **tail = &c->waiting;
  while (*tail != NULL) tail = &(*tail)->next;
  *tail = k;
  c->refs++;
  /* The delay is a lower bound the tests rely on. A timer counts from the
   * loop's clock, which libuv reads once per iteration and keeps in whole
   * milliseconds: read it now, and wait one millisecond more for the part
   * it cuts off, so no chunk leaves before its delay is over. */
  uv_update_time(&c->p->loop);
  uv_timer_start(k->timer, px_delay_fire, (uint64_t)c->set.ms + 1, 0);
}

static void px_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  buf->base = malloc(PX_READ_SIZE);
  buf->len = buf->base != NULL ? PX_READ_SIZE : 0;
}

static px_chunk *px_chunk_new(px_conn *c, int dir, char *base, size_t len) {
  px_chunk *k = calloc(1, sizeof *k);
  k->c = c;
  k->dir = dir;
  k->buf = uv_buf_init(base, (unsigned)len);
  return k;
}

/* Bytes already forwarded (or queued) in direction dir. */
static uint64_t px_sent(px_conn *c, int dir) {
  px_lock(c->p);
  uint64_t n = c->p->stats[c->idx].bytes[dir];
  px_unlock(c->p);
  return n;
}

static void px_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  px_conn *c = s->data;
  int dir = (uv_tcp_t *)s == &c->side[0] ? DBT_C2S : DBT_S2C;
  if (nread <= 0 || c->stopped) {
    if (nread == UV_EOF && !c->stopped) {
      free(buf->base);
      c->eof[dir] = true;
      uv_read_stop(s);
      px_chunk *k = px_chunk_new(c, dir, NULL, 0);
      k->eof = true;
      px_queue(k);
      return;
    }
    free(buf->base);
    if (nread < 0 && !c->stopped) px_teardown(c, true);
    return;
  }

  size_t len = (size_t)nread;
  bool limited = (c->set.mode == DBT_PROXY_STALL && dir == c->set.dir) ||
                 (c->set.mode == DBT_PROXY_CUT && dir == DBT_S2C);
  bool last = false;
  if (limited) {
    /* Writes are counted when queued, so px_sent includes bytes still in
     * flight: the threshold is exact. */
    uint64_t done = px_sent(c, dir);
    uint64_t room = c->set.after > done ? c->set.after - done : 0;
    if (room <= len) {
      len = (size_t)room;
      last = true;
    }
  }
  if (last) {
    c->stopped = true;
    uv_read_stop((uv_stream_t *)&c->side[0]);
    uv_read_stop((uv_stream_t *)&c->side[1]);
    if (c->set.mode == DBT_PROXY_STALL) px_stat_flag(c, px_f_stalled);
  }
  if (len == 0) {
    free(buf->base);
    if (last && c->set.mode == DBT_PROXY_CUT) {
      px_stat_flag(c, px_f_cut);
      px_teardown(c, true);
    }
    return;
  }
  px_chunk *k = px_chunk_new(c, dir, buf->base, len);
  k->reset_after = last && c->set.mode == DBT_PROXY_CUT;
  px_queue(k);
}

/* ---- accepting ---- */

static void px_connected(uv_connect_t *req, int status) {
  px_conn *c = req->data;
  if (status != 0 || c->tearing) {
    px_teardown(c, true);
  } else {
    uv_read_start((uv_stream_t *)&c->side[0], px_alloc, px_read);
    uv_read_start((uv_stream_t *)&c->side[1], px_alloc, px_read);
  }
  px_unref(c);
}

/* Takes the settings for a new connection, counting down `left`. */
static struct px_settings px_take(dbt_proxy *p, unsigned *idx) {
  px_lock(p);
  struct px_settings s = p->set;
  if (p->set.left > 0 && --p->set.left == 0) p->set = (struct px_settings){0};
  if (p->nstats == p->capstats) {
    p->capstats = p->capstats ? p->capstats * 2 : 16;
    p->stats = realloc(p->stats, p->capstats * sizeof *p->stats);
  }
  *idx = p->nstats++;
  p->stats[*idx] = (dbt_proxy_conn_stats){.mode = s.mode};
  px_unlock(p);
  return s;
}

static void px_accept(uv_stream_t *server, int status) {
  dbt_proxy *p = server->data;
  if (status != 0) return;
  px_conn *c = calloc(1, sizeof *c);
  c->p = p;
  uv_tcp_init(&p->loop, &c->side[0]);
  c->side[0].data = c;
  c->open[0] = true;
  c->refs = 1;
  c->next = p->conns;
  if (p->conns != NULL) p->conns->prev = c;
  p->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->side[0]) != 0) {
    c->idx = 0;
    c->set = px_take(p, &c->idx);
    px_teardown(c, false);
    return;
  }
  c->set = px_take(p, &c->idx);
  if (c->set.mode == DBT_PROXY_REFUSE) {
    px_teardown(c, false);
    return;
  }
  uv_tcp_nodelay(&c->side[0], 1);
  uv_tcp_init(&p->loop, &c->side[1]);
  c->side[1].data = c;
  c->open[1] = true;
  c->refs++;
  uv_tcp_nodelay(&c->side[1], 1);
  c->connect.data = c;
  if (uv_tcp_connect(&c->connect, &c->side[1], (struct sockaddr *)&p->target, px_connected) != 0) {
    px_teardown(c, true);
    return;
  }
  c->refs++;
}

static void px_listener_closed(uv_handle_t *h) {
  free(h);
}

/* Opens the listener on 127.0.0.1:p->port (0 = pick one). Returns 0 or a
 * libuv error. */
static int px_listen(dbt_proxy *p) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", p->port, &a);
  uv_tcp_t *l = malloc(sizeof *l);
  uv_tcp_init(&p->loop, l);
  l->data = p;
  int rc = uv_tcp_bind(l, (struct sockaddr *)&a, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)l, 64, px_accept);
  if (rc != 0) {
    uv_close((uv_handle_t *)l, px_listener_closed);
    return rc;
  }
  if (p->port == 0) {
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(l, (struct sockaddr *)&got, &len);
    p->port = ntohs(got.sin_port);
  }
  p->listener = l;
  return 0;
}

static void px_unlisten(dbt_proxy *p) {
  if (p->listener == NULL) return;
  uv_close((uv_handle_t *)p->listener, px_listener_closed);
  p->listener = NULL;
}

/* Closes everything the loop owns, so uv_run returns. */
static void px_shutdown_loop(dbt_proxy *p) {
  px_lock(p);
  if (p->finished) {
    px_unlock(p);
    return;
  }
  p->finished = true;
  pthread_cond_broadcast(&p->applied_cv);
  px_unlock(p);
  px_unlisten(p);
  for (px_conn *c = p->conns; c != NULL;) {
    px_conn *next = c->next;
    px_teardown(c, true);
    c = next;
  }
  uv_close((uv_handle_t *)&p->wake, NULL);
  uv_close((uv_handle_t *)&p->lifetime, NULL);
}

/* Takes in a settings change (listening or not) or the stop request, then
 * tells the setter waiting in px_set that the change is in force. */
static void px_woken(uv_async_t *a) {
  dbt_proxy *p = a->data;
  px_lock(p);
  bool stop = p->stopping;
  bool unlisten = p->set.mode == DBT_PROXY_REFUSE && p->set.how == DBT_REFUSE_UNLISTEN;
  unsigned gen = p->gen;
  px_unlock(p);
  if (stop) {
    px_shutdown_loop(p);
  } else if (unlisten) {
    px_unlisten(p);
  } else if (p->listener == NULL) {
    /* Listen again on the same port. */
    int rc = px_listen(p);
    if (rc != 0)
      fprintf(stderr, "faultproxy: cannot listen again on %d: %s\n", p->port, uv_strerror(rc));
  }
  px_lock(p);
  p->applied = gen;
  pthread_cond_broadcast(&p->applied_cv);
  px_unlock(p);
}

static void px_expired(uv_timer_t *t) {
  fprintf(stderr, "faultproxy: lifetime over; closing\n");
  px_shutdown_loop(t->data);
}

static void px_thread(void *arg) {
  dbt_proxy *p = arg;
  uv_run(&p->loop, UV_RUN_DEFAULT);
}

/* ---- the public side ---- */

static bool px_is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
  return memcmp(&a6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback) == 0;
}

dbt_proxy *dbt_proxy_start(const char *host, int port) {
  dbt_proxy *p = calloc(1, sizeof *p);
  cr_assert_not_null(p);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&p->target;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&p->target;
  if (uv_ip4_addr(host, port, a4) != 0 && uv_ip6_addr(host, port, a6) != 0) {
    cr_assert_fail("faultproxy: target '%s' is not an IP literal", host);
  }
  cr_assert(px_is_loopback(&p->target), "faultproxy: target %s is not a loopback address", host);
  cr_assert(port > 0 && port < 65536, "faultproxy: bad target port %d", port);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->applied_cv, NULL);
  cr_assert_eq(uv_loop_init(&p->loop), 0);
  uv_async_init(&p->loop, &p->wake, px_woken);
  p->wake.data = p;
  uv_timer_init(&p->loop, &p->lifetime);
  p->lifetime.data = p;
  uv_timer_start(&p->lifetime, px_expired, DBT_PROXY_LIFETIME_MS, 0);
  int rc = px_listen(p);
  cr_assert_eq(rc, 0, "faultproxy: cannot listen on 127.0.0.1: %s", uv_strerror(rc));
  cr_assert_eq(uv_thread_create(&p->thread, px_thread, p), 0);
  return p;
}

/* Appends s percent-encoded (everything but unreserved characters). */
static void px_pct(char **w, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      *(*w)++ = (char)ch;
    } else {
      *(*w)++ = '%';
      *(*w)++ = hex[ch >> 4];
      *(*w)++ = hex[ch & 15];
    }
  }
}

dbt_proxy *dbt_proxy_for_dsn(const char *dsn) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dsn, &d, err, sizeof err), 0, "faultproxy: %s", err);
  cr_assert(d.host != NULL && d.port > 0, "faultproxy: the DSN needs a host and a port");
  dbt_proxy *p = dbt_proxy_start(d.host, d.port);

  size_t cap = strlen(dsn) * 3 + 64;
  char *out = malloc(cap), *w = out;
  w += sprintf(w, "%s://", d.kind == DBP_DB_PG ? "postgresql" : "mysql");
  if (d.user != NULL) {
    px_pct(&w, d.user);
    if (d.password != NULL) {
      *w++ = ':';
      px_pct(&w, d.password);
    }
    *w++ = '@';
  }
  w += sprintf(w, "127.0.0.1:%d/", p->port);
  if (d.dbname != NULL) px_pct(&w, d.dbname);
  for (size_t i = 0; i < d.nparams; i++) {
    *w++ = i == 0 ? '?' : '&';
    px_pct(&w, d.keys[i]);
    *w++ = '=';
    px_pct(&w, d.values[i]);
  }
  *w = '\0';
  p->dsn = out;
  dbp_dsn_free(&d);
  return p;
}

int dbt_proxy_port(const dbt_proxy *p) {
  return p->port;
}

const char *dbt_proxy_dsn(const dbt_proxy *p) {
  cr_assert_not_null(p->dsn, "faultproxy: dbt_proxy_dsn needs a proxy from dbt_proxy_for_dsn");
  return p->dsn;
}

/* Installs new settings and waits until the loop has taken them in, so a
 * connect made right after a mode switch sees the new listening state. */
static void px_set(dbt_proxy *p, struct px_settings s) {
  px_lock(p);
  p->set = s;
  unsigned gen = ++p->gen;
  if (!p->finished) uv_async_send(&p->wake);
  while (!p->finished && (int)(p->applied - gen) < 0) pthread_cond_wait(&p->applied_cv, &p->mu);
  px_unlock(p);
}

void dbt_proxy_pass(dbt_proxy *p) {
  px_set(p, (struct px_settings){.mode = DBT_PROXY_PASS});
}

void dbt_proxy_delay(dbt_proxy *p, unsigned ms, unsigned count) {
  px_set(p, (struct px_settings){.mode = DBT_PROXY_DELAY, .ms = ms, .left = count});
}

void dbt_proxy_stall(dbt_proxy *p, enum dbt_proxy_dir dir, uint64_t after, unsigned count) {
  px_set(p,
         (struct px_settings){.mode = DBT_PROXY_STALL, .dir = dir, .after = after, .left = count});
}

void dbt_proxy_cut(dbt_proxy *p, uint64_t after, unsigned count) {
  px_set(p, (struct px_settings){.mode = DBT_PROXY_CUT, .after = after, .left = count});
}

void dbt_proxy_refuse(dbt_proxy *p, enum dbt_refuse_how how, unsigned count) {
  px_set(p,
         (struct px_settings){
             .mode = DBT_PROXY_REFUSE, .how = how, .left = how == DBT_REFUSE_UNLISTEN ? 0 : count});
}

unsigned dbt_proxy_accepted(const dbt_proxy *p) {
  px_lock(p);
  unsigned n = p->nstats;
  px_unlock(p);
  return n;
}

bool dbt_proxy_conn(const dbt_proxy *p, unsigned i, dbt_proxy_conn_stats *out) {
  px_lock(p);
  bool ok = i < p->nstats;
  if (ok) *out = p->stats[i];
  px_unlock(p);
  return ok;
}

uint64_t dbt_proxy_total(const dbt_proxy *p, enum dbt_proxy_dir dir) {
  px_lock(p);
  uint64_t n = 0;
  for (unsigned i = 0; i < p->nstats; i++) n += p->stats[i].bytes[dir];
  px_unlock(p);
  return n;
}

void dbt_proxy_stop(dbt_proxy *p) {
  if (p == NULL) return;
  px_lock(p);
  p->stopping = true;
  if (!p->finished) uv_async_send(&p->wake);
  px_unlock(p);
  uv_thread_join(&p->thread);
  /* Handles closed by the last loop turn: run once more for their close
   * callbacks, then the loop can go. */
  uv_run(&p->loop, UV_RUN_DEFAULT);
  uv_loop_close(&p->loop);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->applied_cv);
  free(p->stats);
  free(p->dsn);
  free(p);
}
