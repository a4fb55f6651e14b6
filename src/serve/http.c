/* HTTP/1.1 server on libuv, requests parsed by http-parser (see http.h). */
#include "serve/http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dbpipe/common.h"

#define LINGER_MS 2000
#define READ_CHUNK 65536

enum conn_state { ST_READ, ST_HANDLE, ST_CLOSING };
enum timer_kind { TK_NONE, TK_HEAD, TK_BODY, TK_IDLE, TK_LINGER };

typedef struct conn conn;

typedef struct hdr_span {
  size_t name_off, name_len, val_off, val_len;
} hdr_span;

struct dbp_http_exchange {
  conn *c;     /* NULL once dead or given back */
  bool handed; /* given to the handler: then the handler's to free */
  bool gone, head_method, streaming, chunked, close_after, response_begun;
  void (*gone_cb)(void *);
  void *gone_arg;
  dbp_http_request req;
  /* building the request */
  dbp_buf target, raw, body, path;
  hdr_span *spans;
  size_t nspans, cap_spans;
  dbp_http_header_field *fields;
  bool last_was_value;
  char method[24];
};

struct conn {
  uv_tcp_t tcp; /* first: the handle's data is not needed to find the conn */
  uv_timer_t timer;
  uv_shutdown_t shut;
  dbp_http_server *s;
  conn *prev, *next;
  http_parser p;
  enum conn_state state;
  enum timer_kind tk;
  int handles_open;
  int err_status; /* set by a parser callback that fails the request */
  bool msg_done, in_message, in_process, reading, linger, shutting, closed, keep_alive;
  size_t head_bytes;
  dbp_http_exchange *x; /* being parsed or handled */
  char *in;
  size_t in_off, in_len, in_cap;
  size_t pending; /* bytes queued with uv_write, not yet written */
  char rbuf[READ_CHUNK];
};

struct dbp_http_server {
  uv_tcp_t tcp;
  uv_loop_t *loop;
  dbp_http_options o;
  dbp_http_handler fn;
  void *ud;
  int port;
  conn *conns;
  size_t nconns;
  bool closing, listener_closed;
  void (*done)(void *);
  void *done_arg;
};

typedef struct wreq {
  uv_write_t w;
  conn *c;
  size_t len;
  char data[];
} wreq;

static void conn_process(conn *c);
static void conn_close(conn *c);
static void conn_fail(conn *c, int status);
static void conn_end_gracefully(conn *c, bool linger);
static void server_maybe_done(dbp_http_server *s);

/* ---- exchanges ---- */

static void exchange_free(dbp_http_exchange *x) {
  dbp_buf_free(&x->target);
  dbp_buf_free(&x->raw);
  dbp_buf_free(&x->body);
  dbp_buf_free(&x->path);
  free(x->spans);
  free(x->fields);
  free(x);
}

/* The client went away: x becomes dead, the handler is told. */
static void exchange_kill(dbp_http_exchange *x) {
  x->c = NULL;
  x->gone = true;
  if (x->gone_cb) {
    void (*cb)(void *) = x->gone_cb;
    x->gone_cb = NULL;
    cb(x->gone_arg);
  }
}

/* ---- writing ---- */

static void on_write(uv_write_t *w, int status) {
  wreq *r = (wreq *)w;
  conn *c = r->c;
  c->pending -= r->len;
  free(r);
  if (status < 0) {
    conn_close(c);
    return;
  }
}

static int conn_write(conn *c, const dbp_buf *head, const void *data, size_t len,
                      const char *tail) {
  size_t hl = head ? head->len : 0, tl = tail ? strlen(tail) : 0;
  if (c->closed || c->shutting) return DBP_ECLOSED;
  wreq *r = malloc(sizeof *r + hl + len + tl);
  if (!r) return DBP_ENOMEM;
  if (hl) memcpy(r->data, head->data, hl);
  if (len) memcpy(r->data + hl, data, len);
  if (tl) memcpy(r->data + hl + len, tail, tl);
  r->c = c;
  r->len = hl + len + tl;
  uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
  int rc = uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(r);
    return dbp_err_from_errno(rc);
  }
  c->pending += r->len;
  return 0;
}

static const char *reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default: {
      const char *r = http_status_str((enum http_status)status);
      return r && *r ? r : "Unknown";
    }
  }
}

static void put_head(dbp_buf *h, int status, const char *ctype, const char *const *extra,
                     bool close) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  dbp_buf_printf(h, "HTTP/1.1 %d %s\r\nServer: dbpipe\r\nDate: %s\r\n", status, reason(status),
                 date);
  if (ctype) dbp_buf_printf(h, "Content-Type: %s\r\n", ctype);
  if (close) dbp_buf_puts(h, "Connection: close\r\n");
  /* A header with a line break in it would let its text forge others. */
  for (size_t i = 0; extra && extra[i]; i++)
    if (!strpbrk(extra[i], "\r\n")) dbp_buf_printf(h, "%s\r\n", extra[i]);
}

/* An answer of the layer itself, then the connection ends. */
static void conn_fail(conn *c, int status) {
  if (c->closed || c->shutting) return;
  if (c->x && !c->x->handed) {
    exchange_free(c->x);
    c->x = NULL;
  }
  char msg[96];
  int n = snprintf(msg, sizeof msg, "%d %s\n", status, reason(status));
  dbp_buf h = {0};
  put_head(&h, status, "text/plain; charset=utf-8", NULL, true);
  dbp_buf_printf(&h, "Content-Length: %d\r\n\r\n", n);
  if (!h.oom) conn_write(c, &h, msg, (size_t)n, NULL);
  dbp_buf_free(&h);
  conn_end_gracefully(c, true);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  enum timer_kind k = c->tk;
  c->tk = TK_NONE;
  switch (k) {
    case TK_HEAD:
    case TK_BODY:
      if (c->in_message)
        conn_fail(c, 408);
      else
        conn_close(c);
      break;
    case TK_IDLE:
    case TK_LINGER:
      conn_close(c);
      break;
    case TK_NONE:
      break;
  }
}

static void timer_set(conn *c, enum timer_kind k, unsigned ms) {
  if (c->closed) return;
  c->tk = k;
  if (k == TK_NONE)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->handles_open > 0) return;
  dbp_http_server *s = c->s;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  if (c->x && !c->x->handed) exchange_free(c->x); /* a request still being parsed */
  free(c->in);
  free(c);
  server_maybe_done(s);
}

/* At once: pending writes are dropped. A live exchange becomes dead. */
static void conn_close(conn *c) {
  if (c->closed) return;
  dbp_http_exchange *x = NULL;
  if (c->x && c->x->handed) { /* the handler's: it still owns it */
    x = c->x;
    c->x = NULL;
  }
  c->closed = true;
  c->state = ST_CLOSING;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (x) exchange_kill(x);
}

static void on_shutdown(uv_shutdown_t *sh, int status) {
  conn *c = sh->data;
  if (c->closed) return;
  if (status < 0 || !c->linger) {
    conn_close(c);
    return;
  }
  /* Keep reading (and dropping) what the client still sends, so that our
   * answer is not lost to a reset, until it closes or a short while. */
  timer_set(c, TK_LINGER, LINGER_MS);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  conn *c = h->data;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

static void reading(conn *c, bool on) {
  if (c->closed || on == c->reading) return;
  if (on) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
  } else {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

/* Sends what is queued, then FIN; with linger keeps reading a little. */
static void conn_end_gracefully(conn *c, bool linger) {
  if (c->closed || c->shutting) return;
  c->state = ST_CLOSING;
  c->shutting = true;
  c->linger = linger;
  timer_set(c, TK_LINGER, LINGER_MS * 2); /* bound the whole ending */
  reading(c, linger);
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) conn_close(c);
}

/* ---- parser callbacks ---- */

static int buf_add(conn *c, dbp_buf *b, const char *at, size_t len, bool head) {
  if (head) {
    c->head_bytes += len;
    if (c->head_bytes > c->s->o.max_header_bytes) {
      c->err_status = 431;
      return -1;
    }
  }
  if (dbp_buf_append(b, at, len) < 0) {
    c->err_status = 500;
    return -1;
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  dbp_http_exchange *x = calloc(1, sizeof *x);
  if (!x) {
    c->err_status = 500;
    return -1;
  }
  x->c = c;
  c->x = x;
  c->in_message = true;
  c->head_bytes = 0;
  timer_set(c, TK_HEAD, c->s->o.header_timeout_ms);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  return buf_add(c, &c->x->target, at, len, true);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  dbp_http_exchange *x = c->x;
  if (x->fields) return 0; /* trailers of a chunked body are ignored */
  if (x->nspans == 0 || x->last_was_value) {
    if (x->nspans) {
      if (buf_add(c, &x->raw, "", 1, false)) return -1; /* ends the previous value */
    }
    if (x->nspans == x->cap_spans) {
      size_t cap = x->cap_spans ? x->cap_spans * 2 : 16;
      hdr_span *ns = realloc(x->spans, cap * sizeof *ns);
      if (!ns) {
        c->err_status = 500;
        return -1;
      }
      x->spans = ns;
      x->cap_spans = cap;
    }
    x->spans[x->nspans++] = (hdr_span){.name_off = x->raw.len};
    x->last_was_value = false;
  }
  x->spans[x->nspans - 1].name_len += len;
  return buf_add(c, &x->raw, at, len, true);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  dbp_http_exchange *x = c->x;
  if (x->fields) return 0;
  hdr_span *sp = &x->spans[x->nspans - 1];
  if (!x->last_was_value) {
    if (buf_add(c, &x->raw, "", 1, false)) return -1; /* ends the name */
    sp->val_off = x->raw.len;
    x->last_was_value = true;
  }
  sp->val_len += len;
  return buf_add(c, &x->raw, at, len, true);
}

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  dbp_http_exchange *x = c->x;
  const dbp_http_server *s = c->s;
  if (x->nspans && buf_add(c, &x->raw, "", 1, false)) return -1;
  if (dbp_buf_append(&x->target, "", 0) < 0 || x->raw.oom) {
    c->err_status = 500;
    return -1;
  }
  x->fields = calloc(x->nspans + 1, sizeof *x->fields);
  if (!x->fields) {
    c->err_status = 500;
    return -1;
  }
  for (size_t i = 0; i < x->nspans; i++) {
    char *v = x->raw.data + x->spans[i].val_off;
    size_t vl = x->spans[i].val_len;
    if (!x->last_was_value && i == x->nspans - 1) {
      v = "";
      vl = 0;
    }
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) v[--vl] = '\0';
    x->fields[i].name = x->raw.data + x->spans[i].name_off;
    x->fields[i].value = v;
  }
  snprintf(x->method, sizeof x->method, "%s", http_method_str((enum http_method)p->method));
  const char *t = dbp_buf_str(&x->target);
  const char *q = strchr(t, '?');
  dbp_buf_append(&x->path, t, q ? (size_t)(q - t) : strlen(t));
  dbp_buf_append(&x->path, "", 0);
  if (x->path.oom) {
    c->err_status = 500;
    return -1;
  }
  x->req = (dbp_http_request){.method = x->method,
                              .target = t,
                              .path = dbp_buf_str(&x->path),
                              .query = q ? q + 1 : NULL,
                              .version_major = p->http_major,
                              .version_minor = p->http_minor,
                              .headers = x->fields,
                              .nheaders = x->nspans};
  x->head_method = p->method == HTTP_HEAD;
  c->keep_alive = http_should_keep_alive(p) != 0;

  const char *te = dbp_http_header(&x->req, "transfer-encoding");
  if (te && strcasecmp(te, "chunked") != 0) {
    c->err_status = 400;
    return -1;
  }
  bool has_len = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
  if (has_len && p->content_length > s->o.max_body_bytes) {
    c->err_status = 413;
    return -1;
  }
  const char *expect = dbp_http_header(&x->req, "expect");
  if (expect) {
    if (strcasecmp(expect, "100-continue") != 0) {
      c->err_status = 417;
      return -1;
    }
    if (p->http_major == 1 && p->http_minor >= 1) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      conn_write(c, NULL, cont, sizeof cont - 1, NULL);
    }
  }
  timer_set(c, TK_BODY, s->o.body_timeout_ms);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  dbp_http_exchange *x = c->x;
  if (x->body.len + len > c->s->o.max_body_bytes) {
    c->err_status = 413;
    return -1;
  }
  return buf_add(c, &x->body, at, len, false);
}

static int on_message_complete(http_parser *p) {
  conn *c = p->data;
  c->msg_done = true;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the connection's cycle ---- */

static void dispatch(conn *c) {
  dbp_http_exchange *x = c->x;
  c->in_message = false;
  c->state = ST_HANDLE;
  timer_set(c, TK_NONE, 0);
  dbp_buf_append(&x->body, "", 0);
  x->req.body = dbp_buf_str(&x->body);
  x->req.body_len = x->body.len;
  x->close_after = !c->keep_alive || c->s->closing;
  x->handed = true;
  c->s->fn(x, &x->req, c->s->ud);
}

static void conn_process(conn *c) {
  if (c->in_process) return;
  c->in_process = true;
  while (c->state == ST_READ && c->in_off < c->in_len) {
    http_parser_pause(&c->p, 0);
    size_t n =
        http_parser_execute(&c->p, &parser_settings, c->in + c->in_off, c->in_len - c->in_off);
    c->in_off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (c->err_status || (e != HPE_OK && e != HPE_PAUSED)) {
      int st = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
      c->in_process = false;
      conn_fail(c, st);
      return;
    }
    if (c->msg_done) {
      c->msg_done = false;
      dispatch(c);
    }
  }
  c->in_process = false;
  if (c->closed) return;
  if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
  if (c->state == ST_CLOSING) return;
  /* While a request is handled, what comes next is kept, up to a bound. */
  size_t held = c->in_len - c->in_off;
  reading(c, held < c->s->o.max_header_bytes + READ_CHUNK);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  conn *c = st->data;
  (void)b;
  if (n == 0) return;
  if (n < 0) {
    /* End of input or an error: a client that leaves during an exchange is
     * gone; otherwise whatever we queued is still sent. */
    if (c->state == ST_READ && n == UV_EOF)
      conn_end_gracefully(c, false);
    else
      conn_close(c);
    return;
  }
  if (c->state == ST_CLOSING) return; /* lingering: dropped */
  if (c->in_len + (size_t)n > c->in_cap) {
    if (c->in_off) {
      memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
      c->in_len -= c->in_off;
      c->in_off = 0;
    }
    if (c->in_len + (size_t)n > c->in_cap) {
      size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
      while (cap < c->in_len + (size_t)n) cap *= 2;
      char *ni = realloc(c->in, cap);
      if (!ni) {
        conn_close(c);
        return;
      }
      c->in = ni;
      c->in_cap = cap;
    }
  }
  memcpy(c->in + c->in_len, c->rbuf, (size_t)n);
  c->in_len += (size_t)n;
  conn_process(c);
}

/* The handler gave x back with its response ended. */
static void exchange_done(dbp_http_exchange *x, bool close) {
  conn *c = x->c;
  exchange_free(x);
  if (!c) return;
  c->x = NULL;
  if (close || c->s->closing) {
    conn_end_gracefully(c, true);
    return;
  }
  c->state = ST_READ;
  timer_set(c, TK_IDLE, c->s->o.idle_timeout_ms);
  if (!c->in_process) conn_process(c);
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *ls, int status) {
  dbp_http_server *s = (dbp_http_server *)ls;
  if (status < 0 || s->closing) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles_open = 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  bool over = s->nconns >= s->o.max_connections;
  s->nconns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (over) {
    conn_fail(c, 503);
    return;
  }
  http_parser_init(&c->p, HTTP_REQUEST);
  c->p.data = c;
  c->state = ST_READ;
  timer_set(c, TK_HEAD, s->o.header_timeout_ms);
  reading(c, true);
}

static void server_maybe_done(dbp_http_server *s) {
  if (!s->closing || !s->listener_closed || s->nconns) return;
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;
  free(s);
  if (done) done(arg);
}

static void on_listener_closed(uv_handle_t *h) {
  dbp_http_server *s = (dbp_http_server *)h;
  s->listener_closed = true;
  server_maybe_done(s);
}

/* ---- public ---- */

int dbp_http_listen(uv_loop_t *loop, const char *host, int port, const dbp_http_options *o,
                    dbp_http_handler fn, void *ud, dbp_http_server **out) {
  if (!loop || !host || !fn || !out || port < 0 || port > 65535) return DBP_EINVAL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if ((strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                         : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss)) != 0)
    return DBP_EINVAL;
  dbp_http_server *s = calloc(1, sizeof *s);
  if (!s) return DBP_ENOMEM;
  if (o) s->o = *o;
  if (!s->o.max_header_bytes) s->o.max_header_bytes = 16 * 1024;
  if (!s->o.max_body_bytes) s->o.max_body_bytes = 1024 * 1024;
  if (!s->o.header_timeout_ms) s->o.header_timeout_ms = 10000;
  if (!s->o.body_timeout_ms) s->o.body_timeout_ms = 30000;
  if (!s->o.idle_timeout_ms) s->o.idle_timeout_ms = 5000;
  if (!s->o.max_connections) s->o.max_connections = 256;
  if (!s->o.max_pending_bytes) s->o.max_pending_bytes = 4 * 1024 * 1024;
  s->loop = loop;
  s->fn = fn;
  s->ud = ud;
  uv_tcp_init(loop, &s->tcp);
  int rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->tcp, 128, on_connection);
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (rc == 0) rc = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &blen);
  if (rc < 0) {
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    return dbp_err_from_errno(rc);
  }
  s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
  *out = s;
  return 0;
}

int dbp_http_port(const dbp_http_server *s) {
  return s->port;
}
size_t dbp_http_connections(const dbp_http_server *s) {
  return s->nconns;
}

void dbp_http_close(dbp_http_server *s, void (*done)(void *), void *arg) {
  if (s->closing) return;
  s->closing = true;
  s->done = done;
  s->done_arg = arg;
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == ST_READ) conn_end_gracefully(c, false);
  }
  uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}

const char *dbp_http_header(const dbp_http_request *req, const char *name) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  return NULL;
}

static bool no_body_status(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

int dbp_http_respond(dbp_http_exchange *x, int status, const char *content_type, const void *body,
                     size_t len, const char *const *extra_headers) {
  if (!x->c) {
    exchange_free(x);
    return DBP_ECLOSED;
  }
  if (x->response_begun) {
    exchange_done(x, true);
    return DBP_ESTATE;
  }
  if (status < 200 || status > 999) status = 500;
  x->response_begun = true;
  if (x->c->s->closing) x->close_after = true;
  dbp_buf h = {0};
  put_head(&h, status, content_type, extra_headers, x->close_after);
  bool nobody = no_body_status(status);
  if (!nobody) dbp_buf_printf(&h, "Content-Length: %zu\r\n", len);
  dbp_buf_puts(&h, "\r\n");
  int rc = h.oom ? DBP_ENOMEM : 0;
  if (rc == 0) rc = conn_write(x->c, &h, body, nobody || x->head_method ? 0 : len, NULL);
  dbp_buf_free(&h);
  exchange_done(x, x->close_after || rc < 0);
  return rc;
}

int dbp_http_stream_begin(dbp_http_exchange *x, int status, const char *content_type,
                          const char *const *extra_headers) {
  if (!x->c) return DBP_ECLOSED;
  if (x->response_begun) return DBP_ESTATE;
  x->response_begun = true;
  x->streaming = true;
  x->chunked = !(x->req.version_major == 1 && x->req.version_minor == 0);
  if (x->c->s->closing) x->close_after = true;
  if (!x->chunked) x->close_after = true;
  dbp_buf h = {0};
  put_head(&h, status, content_type, extra_headers, x->close_after);
  if (x->chunked) dbp_buf_puts(&h, "Transfer-Encoding: chunked\r\n");
  dbp_buf_puts(&h, "\r\n");
  int rc = h.oom ? DBP_ENOMEM : conn_write(x->c, &h, NULL, 0, NULL);
  dbp_buf_free(&h);
  return rc;
}

int dbp_http_stream_write(dbp_http_exchange *x, const void *data, size_t len) {
  conn *c = x->c;
  if (!c) return DBP_ECLOSED;
  if (!x->streaming) return DBP_ESTATE;
  if (len == 0 || x->head_method) return 0;
  if (c->pending > c->s->o.max_pending_bytes) {
    /* A reader this slow is dropped: x is now dead, which the caller learns
     * from the result rather than from a callback inside this call. */
    x->gone_cb = NULL;
    conn_close(c);
    return DBP_ECLOSED;
  }
  int rc;
  if (x->chunked) {
    dbp_buf h = {0};
    dbp_buf_printf(&h, "%zx\r\n", len);
    rc = h.oom ? DBP_ENOMEM : conn_write(c, &h, data, len, "\r\n");
    dbp_buf_free(&h);
  } else {
    rc = conn_write(c, NULL, data, len, NULL);
  }
  return rc;
}

int dbp_http_stream_end(dbp_http_exchange *x) {
  if (!x->c) {
    exchange_free(x);
    return DBP_ECLOSED;
  }
  if (!x->streaming) {
    exchange_done(x, true);
    return DBP_ESTATE;
  }
  int rc = 0;
  if (x->chunked && !x->head_method) rc = conn_write(x->c, NULL, "0\r\n\r\n", 5, NULL);
  exchange_done(x, x->close_after || rc < 0);
  return rc;
}

size_t dbp_http_pending(const dbp_http_exchange *x) {
  return x->c ? x->c->pending : 0;
}

void dbp_http_on_gone(dbp_http_exchange *x, void (*cb)(void *), void *arg) {
  x->gone_cb = cb;
  x->gone_arg = arg;
}

int dbp_http_gone(const dbp_http_exchange *x) {
  return x->gone;
}

void dbp_http_release(dbp_http_exchange *x) {
  if (!x->c) {
    exchange_free(x);
    return;
  }
  if (!x->response_begun) {
    static const char msg[] = "500 Internal Server Error\n";
    dbp_http_respond(x, 500, "text/plain; charset=utf-8", msg, sizeof msg - 1, NULL);
    return;
  }
  conn *c = x->c;
  exchange_free(x);
  c->x = NULL;
  conn_close(c);
}
