/* The HTTP layer of `dbpipe serve`: the server runs on a loop in the test
 * thread, clients (plain blocking sockets, or curl) in a second thread; what
 * the clients saw is checked in the test thread once the loop has ended. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbpipe/common.h"
#include "serve/http.h"

extern char **environ;

#define MAXR 16

typedef struct resp {
  int status; /* 0: none (connection closed before a response) */
  dbp_buf head, body;
} resp;

typedef struct t_ctx t_ctx;
struct t_ctx {
  uv_loop_t loop;
  dbp_http_server *s;
  int port;
  uv_async_t client_done;
  pthread_t th;
  void (*client)(t_ctx *);
  bool closing;
  int closed_done;
  /* what the clients saw */
  resp r[MAXR];
  int nr;
  int eof_after; /* the server closed the connection after the last response */
  char out[1 << 18];
  size_t out_len;
  /* what the server saw */
  int requests, gone, released_after_gone, close_seen_inflight;
  _Atomic int dropped; /* a slow reader's stream was cut */
  size_t conns_at_close;
  char tmpdir[64];
};

/* ---- blocking client helpers (client thread) ---- */

static int cli_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 20};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void cli_send(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}
static void cli_puts(int fd, const char *s) {
  cli_send(fd, s, strlen(s));
}

typedef struct rconn {
  int fd;
  char buf[1 << 17];
  size_t len;
} rconn;

/* Reads until buf holds at least n bytes; false on EOF or error. */
static bool fill(rconn *c, size_t n) {
  while (c->len < n) {
    if (c->len == sizeof c->buf) return false;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (r <= 0) return false;
    c->len += (size_t)r;
  }
  return true;
}

static void consume(rconn *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static char *find_head_end(rconn *c) {
  for (;;) {
    char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (e) return e;
    if (!fill(c, c->len + 1)) return NULL;
  }
}

static const char *hdr_in(const char *head, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') return p + 3 + n;
  return NULL;
}

/* One response (skipping 100 Continue unless want_100). */
static bool read_resp(rconn *c, resp *r, bool want_100) {
  for (;;) {
    char *e = find_head_end(c);
    if (!e) return false;
    size_t hl = (size_t)(e - c->buf) + 4;
    memset(r, 0, sizeof *r);
    dbp_buf_append(&r->head, c->buf, hl);
    sscanf(c->buf, "HTTP/1.1 %d", &r->status);
    consume(c, hl);
    if (r->status == 100 && !want_100) {
      dbp_buf_free(&r->head);
      continue;
    }
    break;
  }
  const char *h = dbp_buf_str(&r->head);
  const char *cl = hdr_in(h, "content-length");
  const char *te = hdr_in(h, "transfer-encoding");
  if (r->status == 100) return true;
  if (cl) {
    size_t n = strtoul(cl, NULL, 10);
    if (!fill(c, n)) return false;
    dbp_buf_append(&r->body, c->buf, n);
    consume(c, n);
  } else if (te && strstr(te, "chunked")) {
    for (;;) {
      char *e;
      while (!(e = memmem(c->buf, c->len, "\r\n", 2)))
        if (!fill(c, c->len + 1)) return false;
      size_t n = strtoul(c->buf, NULL, 16);
      consume(c, (size_t)(e - c->buf) + 2);
      if (!fill(c, n + 2)) return false;
      dbp_buf_append(&r->body, c->buf, n);
      consume(c, n + 2);
      if (n == 0) break;
    }
  } else {
    while (fill(c, c->len + 1)) {
    }
    dbp_buf_append(&r->body, c->buf, c->len);
    c->len = 0;
  }
  dbp_buf_append(&r->body, "", 0);
  return true;
}

static resp *next_resp(t_ctx *t) {
  return t->nr < MAXR ? &t->r[t->nr++] : &t->r[MAXR - 1];
}

static bool at_eof(rconn *c) {
  if (c->len) return false;
  char b;
  return recv(c->fd, &b, 1, 0) == 0;
}

/* Runs curl with args (NULL-terminated, after "curl"), its output into t->out. */
static int run_curl(t_ctx *t, const char *const *args) {
  char path[128];
  snprintf(path, sizeof path, "%s/curl.out", t->tmpdir);
  const char *argv[32] = {"curl", "-sS", "--max-time", "30"};
  int n = 4;
  for (int i = 0; args[i] && n < 30; i++) argv[n++] = args[i];
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid;
  int rc = posix_spawnp(&pid, "curl", &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int st;
  waitpid(pid, &st, 0);
  FILE *f = fopen(path, "rb");
  t->out_len = f ? fread(t->out, 1, sizeof t->out - 1, f) : 0;
  t->out[t->out_len] = '\0';
  if (f) fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the server side (test thread) ---- */

typedef struct later {
  uv_timer_t timer;
  dbp_http_exchange *x;
  t_ctx *t;
  int left, n;
  bool forever, gone;
  char path[64];
} later;

static void later_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_gone(void *arg) {
  later *l = arg;
  l->t->gone++;
  l->gone = true;
  uv_timer_stop(&l->timer);
  dbp_http_release(l->x);
  l->t->released_after_gone++;
  uv_close((uv_handle_t *)&l->timer, later_closed);
}

static void later_fire(uv_timer_t *tm) {
  later *l = tm->data;
  if (strcmp(l->path, "/later") == 0 || strcmp(l->path, "/inflight") == 0) {
    char body[64];
    int n = snprintf(body, sizeof body, "late %s", l->path);
    if (l->t->s) l->t->conns_at_close = dbp_http_connections(l->t->s);
    dbp_http_respond(l->x, 200, "text/plain", body, (size_t)n, NULL);
    uv_close((uv_handle_t *)tm, later_closed);
    return;
  }
  if (strcmp(l->path, "/flood") == 0) {
    static char big[64 * 1024];
    memset(big, 'f', sizeof big);
    int rc = dbp_http_stream_write(l->x, big, sizeof big);
    if (rc == 0 && --l->left) return;
    if (rc == DBP_ECLOSED && dbp_http_gone(l->x)) l->t->dropped++;
    dbp_http_release(l->x);
    uv_close((uv_handle_t *)tm, later_closed);
    return;
  }
  /* streams */
  char chunk[1024];
  int n = snprintf(chunk, sizeof chunk, "part-%d\n", l->n++);
  if (l->forever) {
    memset(chunk + n, 'x', sizeof chunk - (size_t)n);
    n = (int)sizeof chunk;
  }
  dbp_http_stream_write(l->x, chunk, (size_t)n);
  if (--l->left == 0) {
    dbp_http_stream_end(l->x);
    uv_close((uv_handle_t *)tm, later_closed);
  }
}

static void closed_cb(void *arg) {
  t_ctx *t = arg;
  t->closed_done++;
  t->s = NULL;
}

static void start_close(t_ctx *t) {
  if (t->closing) return;
  t->closing = true;
  dbp_http_close(t->s, closed_cb, t);
}

static void handler(dbp_http_exchange *x, const dbp_http_request *req, void *ud) {
  t_ctx *t = ud;
  t->requests++;
  if (strcmp(req->path, "/later") == 0 || strcmp(req->path, "/stream") == 0 ||
      strcmp(req->path, "/forever") == 0 || strcmp(req->path, "/inflight") == 0 ||
      strcmp(req->path, "/flood") == 0) {
    later *l = calloc(1, sizeof *l);
    l->x = x;
    l->t = t;
    snprintf(l->path, sizeof l->path, "%s", req->path);
    uv_timer_init(&t->loop, &l->timer);
    l->timer.data = l;
    unsigned ms = 50;
    if (strcmp(req->path, "/stream") == 0) {
      l->left = 10;
      ms = 5;
    } else if (strcmp(req->path, "/forever") == 0) {
      l->left = 4000;
      l->forever = true;
      ms = 5;
      dbp_http_on_gone(x, on_gone, l);
    } else if (strcmp(req->path, "/flood") == 0) {
      l->left = 20000; /* 1.25 GiB: far more than any socket buffer */
      ms = 1;
    } else if (strcmp(req->path, "/inflight") == 0) {
      ms = 300;
      start_close(t);
      t->close_seen_inflight = t->closed_done == 0;
    }
    if (l->left) dbp_http_stream_begin(x, 200, "text/plain", NULL);
    uv_timer_start(&l->timer, later_fire, ms, ms);
    return;
  }
  if (strcmp(req->path, "/shutdown") == 0) {
    dbp_http_respond(x, 204, NULL, NULL, 0, NULL);
    start_close(t);
    return;
  }
  /* echo: method, path, query, body length, X-Test, then the body */
  dbp_buf b = {0};
  const char *xt = dbp_http_header(req, "X-TEST");
  dbp_buf_printf(&b, "%s %s %s %zu %s\n", req->method, req->path, req->query ? req->query : "-",
                 req->body_len, xt ? xt : "-");
  dbp_buf_append(&b, req->body, req->body_len);
  const char *extra[] = {"X-Served: yes", NULL};
  dbp_http_respond(x, 200, "text/plain", b.data, b.len, extra);
  dbp_buf_free(&b);
}

static void on_client_done(uv_async_t *a) {
  t_ctx *t = a->data;
  uv_close((uv_handle_t *)a, NULL);
  if (t->s) start_close(t);
}

static void *client_main(void *arg) {
  t_ctx *t = arg;
  t->client(t);
  uv_async_send(&t->client_done);
  return NULL;
}

static t_ctx *run(const dbp_http_options *o, void (*client)(t_ctx *)) {
  t_ctx *t = calloc(1, sizeof *t);
  cr_assert_eq(uv_loop_init(&t->loop), 0);
  snprintf(t->tmpdir, sizeof t->tmpdir, "/tmp/dbp-http-XXXXXX");
  cr_assert_not_null(mkdtemp(t->tmpdir));
  cr_assert_eq(dbp_http_listen(&t->loop, "127.0.0.1", 0, o, handler, t, &t->s), 0);
  t->port = dbp_http_port(t->s);
  cr_assert_gt(t->port, 0);
  t->client = client;
  uv_async_init(&t->loop, &t->client_done, on_client_done);
  t->client_done.data = t;
  cr_assert_eq(pthread_create(&t->th, NULL, client_main, t), 0);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  pthread_join(t->th, NULL);
  cr_assert_eq(t->closed_done, 1, "the server's close completed once");
  cr_assert_eq(uv_loop_close(&t->loop), 0, "no handle left on the loop");
  return t;
}

static void t_free(t_ctx *t) {
  for (int i = 0; i < MAXR; i++) {
    dbp_buf_free(&t->r[i].head);
    dbp_buf_free(&t->r[i].body);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "%s/curl.out", t->tmpdir);
  unlink(cmd);
  rmdir(t->tmpdir);
  free(t);
}

static const char *H(t_ctx *t, int i) {
  return dbp_buf_str(&t->r[i].head);
}
static const char *B(t_ctx *t, int i) {
  return dbp_buf_str(&t->r[i].body);
}

/* Sends req on a new connection, reads one response and, when that says
 * Connection: close, notes whether the server closed after it. */
static void one_shot(t_ctx *t, const char *req, size_t len) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_send(c->fd, req, len);
  resp *r = next_resp(t);
  read_resp(c, r, false);
  t->eof_after = strstr(dbp_buf_str(&r->head), "Connection: close") && at_eof(c);
  close(c->fd);
  free(c);
}

/* ---- the tests ---- */

static void c_get_post(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Test: one\r\n\r\n");
  read_resp(c, next_resp(t), false);
  cli_puts(c->fd, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  read_resp(c, next_resp(t), false);
  cli_puts(c->fd,
           "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  read_resp(c, next_resp(t), false);
  close(c->fd);
  free(c);
}

Test(http, get_post_content_length_and_chunked) {
  t_ctx *t = run(NULL, c_get_post);
  cr_assert_eq(t->nr, 3);
  cr_assert_eq(t->r[0].status, 200);
  cr_assert_str_eq(B(t, 0), "GET /a/b x=1&y=2 0 one\n");
  cr_assert_not_null(strstr(H(t, 0), "\r\nServer: dbpipe\r\n"));
  cr_assert_not_null(strstr(H(t, 0), "\r\nDate: "));
  cr_assert_not_null(strstr(H(t, 0), "\r\nX-Served: yes\r\n"));
  cr_assert_not_null(strstr(H(t, 0), "\r\nContent-Length: 23\r\n"));
  cr_assert_null(strstr(H(t, 0), "Connection: close"));
  cr_assert_str_eq(B(t, 1), "POST /p - 5 -\nhello");
  cr_assert_str_eq(B(t, 2), "POST /c - 7 -\nabcdefg");
  cr_assert_eq(t->requests, 3);
  t_free(t);
}

static void c_expect_raw(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd,
           "PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  read_resp(c, next_resp(t), true); /* 100 before any body byte was sent */
  cli_puts(c->fd, "abcd");
  read_resp(c, next_resp(t), false);
  close(c->fd);
  free(c);
  /* curl with 100 KiB and Expect: 100-continue */
  char path[128];
  snprintf(path, sizeof path, "%s/body", t->tmpdir);
  FILE *f = fopen(path, "wb");
  for (int i = 0; i < 100 * 1024; i++) fputc('a' + i % 26, f);
  fclose(f);
  char data[160], url[64];
  snprintf(data, sizeof data, "@%s", path);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/upload", t->port);
  const char *args[] = {"-H", "Expect: 100-continue", "--data-binary", data, url, NULL};
  t->eof_after = run_curl(t, args);
  unlink(path);
}

Test(http, expect_100_continue_and_curl_upload) {
  t_ctx *t = run(NULL, c_expect_raw);
  cr_assert_eq(t->r[0].status, 100);
  cr_assert_eq(t->r[1].status, 200);
  cr_assert_str_eq(B(t, 1), "PUT /e - 4 -\nabcd");
  cr_assert_eq(t->eof_after, 0, "curl exit status");
  const char *want = "POST /upload - 102400 -\nabcdefghij";
  cr_assert_eq(strncmp(t->out, want, strlen(want)), 0, "got %.60s", t->out);
  cr_assert_eq(t->out_len, strlen("POST /upload - 102400 -\n") + 102400);
  t_free(t);
}

static void c_pipelined(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  /* the first is answered later: the second must still come after it */
  cli_puts(c->fd,
           "GET /later HTTP/1.1\r\nHost: h\r\n\r\n"
           "GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
           "POST /third HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok");
  for (int i = 0; i < 3; i++) read_resp(c, next_resp(t), false);
  /* and the connection is still usable */
  cli_puts(c->fd, "GET /fourth HTTP/1.1\r\nHost: h\r\n\r\n");
  read_resp(c, next_resp(t), false);
  close(c->fd);
  free(c);
}

Test(http, keep_alive_and_pipelining_in_order) {
  t_ctx *t = run(NULL, c_pipelined);
  cr_assert_eq(t->nr, 4);
  cr_assert_str_eq(B(t, 0), "late /later");
  cr_assert_str_eq(B(t, 1), "GET /second - 0 -\n");
  cr_assert_str_eq(B(t, 2), "POST /third - 2 -\nok");
  cr_assert_str_eq(B(t, 3), "GET /fourth - 0 -\n");
  t_free(t);
}

static void c_http10(t_ctx *t) {
  static const char a[] = "GET /old HTTP/1.0\r\n\r\n";
  one_shot(t, a, sizeof a - 1);
  int e1 = t->eof_after;
  static const char b[] = "GET /close HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  one_shot(t, b, sizeof b - 1);
  int e2 = t->eof_after;
  /* HTTP/1.0 asking for keep-alive keeps the connection */
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  read_resp(c, next_resp(t), false);
  cli_puts(c->fd, "GET /ka2 HTTP/1.0\r\n\r\n");
  read_resp(c, next_resp(t), false);
  t->eof_after = e1 * 4 + e2 * 2 + at_eof(c);
  close(c->fd);
  free(c);
}

Test(http, http10_and_connection_close) {
  t_ctx *t = run(NULL, c_http10);
  cr_assert_eq(t->nr, 4);
  cr_assert_str_eq(B(t, 0), "GET /old - 0 -\n");
  cr_assert_not_null(strstr(H(t, 0), "Connection: close"));
  cr_assert_str_eq(B(t, 1), "GET /close - 0 -\n");
  cr_assert_not_null(strstr(H(t, 1), "Connection: close"));
  cr_assert_str_eq(B(t, 2), "GET /ka - 0 -\n");
  cr_assert_null(strstr(H(t, 2), "Connection: close"));
  cr_assert_str_eq(B(t, 3), "GET /ka2 - 0 -\n");
  cr_assert_eq(t->eof_after, 7, "every connection closed by the server after its last answer");
  t_free(t);
}

static void c_errors(t_ctx *t) {
  static const char bad[] = "GARBAGE /x HTTP/1.1\r\n\r\n";
  one_shot(t, bad, sizeof bad - 1);
  int eofs = t->eof_after;
  static const char ok[] = "GET /after HTTP/1.1\r\nHost: h\r\n\r\n";
  one_shot(t, ok, sizeof ok - 1);
  /* 20 KiB of headers */
  dbp_buf big = {0};
  dbp_buf_puts(&big, "GET /big HTTP/1.1\r\nHost: h\r\n");
  for (int i = 0; i < 20; i++) {
    dbp_buf_printf(&big, "X-Fill-%d: ", i);
    for (int j = 0; j < 1024; j++) dbp_buf_puts(&big, "v");
    dbp_buf_puts(&big, "\r\n");
  }
  dbp_buf_puts(&big, "\r\n");
  one_shot(t, big.data, big.len);
  eofs += t->eof_after;
  dbp_buf_free(&big);
  /* bodies over the limit (1000 bytes in this test) */
  static const char cl[] = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\nxxxx";
  one_shot(t, cl, sizeof cl - 1);
  eofs += t->eof_after;
  dbp_buf ch = {0};
  dbp_buf_puts(&ch, "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 5; i++) {
    dbp_buf_puts(&ch, "12c\r\n");
    for (int j = 0; j < 300; j++) dbp_buf_puts(&ch, "y");
    dbp_buf_puts(&ch, "\r\n");
  }
  one_shot(t, ch.data, ch.len);
  eofs += t->eof_after;
  dbp_buf_free(&ch);
  static const char te[] = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n";
  one_shot(t, te, sizeof te - 1);
  static const char ex[] =
      "POST /b HTTP/1.1\r\nHost: h\r\nExpect: tea\r\nContent-Length: 1\r\n\r\n";
  one_shot(t, ex, sizeof ex - 1);
  /* curl's 100-continue for a body over the limit: 413 without a 100 */
  static const char ex2[] =
      "POST /b HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 9999\r\n\r\n";
  one_shot(t, ex2, sizeof ex2 - 1);
  one_shot(t, ok, sizeof ok - 1);
  t->eof_after = eofs;
}

Test(http, errors_answered_and_server_keeps_serving) {
  dbp_http_options o = {.max_body_bytes = 1000};
  t_ctx *t = run(&o, c_errors);
  cr_assert_eq(t->nr, 9);
  cr_assert_eq(t->r[0].status, 400);
  cr_assert_not_null(strstr(H(t, 0), "Connection: close"));
  cr_assert_eq(t->r[1].status, 200);
  cr_assert_str_eq(B(t, 1), "GET /after - 0 -\n");
  cr_assert_eq(t->r[2].status, 431);
  cr_assert_eq(t->r[3].status, 413);
  cr_assert_eq(t->r[4].status, 413);
  cr_assert_eq(t->r[5].status, 400);
  cr_assert_eq(t->r[6].status, 417);
  cr_assert_eq(t->r[7].status, 413);
  cr_assert_eq(t->r[8].status, 200);
  cr_assert_eq(t->eof_after, 4, "closed after each error");
  cr_assert_eq(t->requests, 2);
  t_free(t);
}

static void c_timeouts(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd, "GET /slow HTTP/1.1\r\nHost: h\r\nX-Half");
  read_resp(c, next_resp(t), false);
  int eofs = at_eof(c);
  close(c->fd);
  /* a body that stops coming */
  c->fd = cli_connect(t->port);
  c->len = 0;
  cli_puts(c->fd, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  read_resp(c, next_resp(t), false);
  eofs += at_eof(c);
  close(c->fd);
  /* idle keep-alive: answered, then closed without a response */
  c->fd = cli_connect(t->port);
  c->len = 0;
  cli_puts(c->fd, "GET /idle HTTP/1.1\r\nHost: h\r\n\r\n");
  read_resp(c, next_resp(t), false);
  eofs += at_eof(c);
  close(c->fd);
  free(c);
  t->eof_after = eofs;
}

Test(http, head_body_and_idle_timeouts) {
  dbp_http_options o = {.header_timeout_ms = 200, .body_timeout_ms = 200, .idle_timeout_ms = 200};
  t_ctx *t = run(&o, c_timeouts);
  cr_assert_eq(t->nr, 3);
  cr_assert_eq(t->r[0].status, 408);
  cr_assert_eq(t->r[1].status, 408);
  cr_assert_eq(t->r[2].status, 200);
  cr_assert_eq(t->eof_after, 3);
  cr_assert_eq(t->requests, 1);
  t_free(t);
}

static void c_stream(t_ctx *t) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stream", t->port);
  const char *args[] = {"-i", url, NULL};
  t->eof_after = run_curl(t, args);
}

Test(http, streaming_chunked_read_by_curl) {
  t_ctx *t = run(NULL, c_stream);
  cr_assert_eq(t->eof_after, 0, "curl exit status");
  cr_assert_not_null(strstr(t->out, "Transfer-Encoding: chunked\r\n"), "%s", t->out);
  const char *body = strstr(t->out, "\r\n\r\n");
  cr_assert_not_null(body);
  cr_assert_str_eq(
      body + 4, "part-0\npart-1\npart-2\npart-3\npart-4\npart-5\npart-6\npart-7\npart-8\npart-9\n");
  t_free(t);
}

static void c_gone(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd, "GET /forever HTTP/1.1\r\nHost: h\r\n\r\n");
  fill(c, 4000); /* some of the stream */
  close(c->fd);
  free(c);
}

Test(http, client_leaving_mid_stream_is_gone) {
  t_ctx *t = run(NULL, c_gone);
  cr_assert_eq(t->gone, 1);
  cr_assert_eq(t->released_after_gone, 1);
  t_free(t);
}

static void c_inflight(t_ctx *t) {
  static const char a[] = "GET /inflight HTTP/1.1\r\nHost: h\r\n\r\n";
  one_shot(t, a, sizeof a - 1);
}

Test(http, close_waits_for_inflight_exchange) {
  t_ctx *t = run(NULL, c_inflight);
  cr_assert_eq(t->close_seen_inflight, 1, "close had not completed when the handler returned");
  cr_assert_eq(t->nr, 1);
  cr_assert_eq(t->r[0].status, 200);
  cr_assert_str_eq(B(t, 0), "late /inflight");
  cr_assert_not_null(strstr(H(t, 0), "Connection: close"));
  cr_assert_eq(t->conns_at_close, 1, "the connection stayed open until the response");
  cr_assert_eq(t->eof_after, 1);
  t_free(t);
}

static void c_maxconn(t_ctx *t) {
  int a = cli_connect(t->port), b = cli_connect(t->port);
  /* make sure both are accepted (and counted) first */
  cli_puts(a, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  cli_puts(b, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  rconn *c = calloc(1, sizeof *c);
  c->fd = a;
  read_resp(c, next_resp(t), false);
  c->fd = b;
  read_resp(c, next_resp(t), false);
  static const char g[] = "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n";
  one_shot(t, g, sizeof g - 1);
  close(a);
  close(b);
  /* once those are gone, a new one is served again */
  for (int i = 0; i < 100; i++) {
    one_shot(t, g, sizeof g - 1);
    resp *r = &t->r[t->nr - 1];
    if (r->status == 200) break;
    dbp_buf_free(&r->head);
    dbp_buf_free(&r->body);
    t->nr--;
    usleep(50000);
  }
  free(c);
}

Test(http, max_connections_answers_503) {
  dbp_http_options o = {.max_connections = 2};
  t_ctx *t = run(&o, c_maxconn);
  cr_assert_eq(t->nr, 4);
  cr_assert_eq(t->r[0].status, 200);
  cr_assert_eq(t->r[1].status, 200);
  cr_assert_eq(t->r[2].status, 503);
  cr_assert_eq(t->r[3].status, 200);
  t_free(t);
}

static void noop_handler(dbp_http_exchange *x, const dbp_http_request *req, void *ud) {
  (void)req;
  (void)ud;
  dbp_http_release(x);
}
static void count_done(void *arg) {
  ++*(int *)arg;
}

Test(http, listen_ipv6_and_bad_hosts) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  dbp_http_server *s = NULL;
  cr_assert_eq(dbp_http_listen(&loop, "::1", 0, NULL, noop_handler, NULL, &s), 0);
  cr_assert_gt(dbp_http_port(s), 0);
  cr_assert_eq(dbp_http_connections(s), 0);
  int done = 0;
  dbp_http_close(s, count_done, &done);
  cr_assert_eq(dbp_http_listen(&loop, "localhost", 0, NULL, noop_handler, NULL, &s), DBP_EINVAL);
  cr_assert_eq(dbp_http_listen(&loop, "127.0.0.1", 70000, NULL, noop_handler, NULL, &s),
               DBP_EINVAL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(done, 1);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

static void c_slow_reader(t_ctx *t) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    cli_puts(fd, "GET /flood HTTP/1.1\r\nHost: h\r\n\r\n");
    /* read nothing until the server gives up on us (bounded wait) */
    for (int i = 0; i < 600 && !t->dropped; i++) usleep(50000);
  }
  close(fd);
}

Test(http, slow_reader_is_dropped) {
  dbp_http_options o = {.max_pending_bytes = 256 * 1024};
  t_ctx *t = run(&o, c_slow_reader);
  cr_assert_eq(t->dropped, 1);
  t_free(t);
}

static void c_close_idle(t_ctx *t) {
  rconn *c = calloc(1, sizeof *c), *d = calloc(1, sizeof *d);
  c->fd = cli_connect(t->port);
  cli_puts(c->fd, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
  { /* a head with Content-Length, but no body follows */
    resp *r = next_resp(t);
    char *e = find_head_end(c);
    if (e) {
      size_t hl = (size_t)(e - c->buf) + 4;
      dbp_buf_append(&r->head, c->buf, hl);
      dbp_buf_append(&r->body, "", 0);
      sscanf(c->buf, "HTTP/1.1 %d", &r->status);
      consume(c, hl);
    }
  }
  cli_puts(c->fd, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  read_resp(c, next_resp(t), false);
  /* c is now an idle keep-alive connection; another one closes the server */
  d->fd = cli_connect(t->port);
  cli_puts(d->fd, "GET /shutdown HTTP/1.1\r\nHost: h\r\n\r\n");
  read_resp(d, next_resp(t), false);
  /* long before the idle timeout (a minute here), c is closed */
  t->eof_after = at_eof(c) + at_eof(d);
  close(c->fd);
  close(d->fd);
  free(c);
  free(d);
}

Test(http, close_ends_idle_keep_alive_at_once) {
  dbp_http_options o = {.idle_timeout_ms = 60000};
  t_ctx *t = run(&o, c_close_idle);
  cr_assert_eq(t->nr, 3);
  cr_assert_eq(t->r[0].status, 200);
  cr_assert_not_null(strstr(H(t, 0), "\r\nContent-Length: 14\r\n"), "%s", H(t, 0));
  cr_assert_str_eq(B(t, 0), "");
  cr_assert_str_eq(B(t, 1), "GET /x - 0 -\n");
  cr_assert_eq(t->r[2].status, 204);
  cr_assert_null(strstr(H(t, 2), "Content-Length"));
  cr_assert_eq(t->eof_after, 2);
  t_free(t);
}
