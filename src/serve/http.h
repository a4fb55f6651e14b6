/* The HTTP/1.1 server of `dbpipe serve`: a listener on a libuv loop that
 * parses requests with http-parser and hands each complete one to a handler.
 *
 * Everything runs on the loop's thread; no function here may be called from
 * another thread.
 *
 * Requests: the head is limited to max_header_bytes (request target, header
 * names and values), the body (Content-Length or chunked) is buffered whole
 * up to max_body_bytes. `Expect: 100-continue` is answered with 100 Continue
 * before the body is read; other expectations get 417. Transfer-Encoding
 * other than chunked gets 400. The layer answers malformed requests (400),
 * oversized heads (431) and bodies (413), and slow heads or bodies (408)
 * itself, then closes that connection; other connections are not affected.
 *
 * Connections: keep-alive per HTTP/1.1 (HTTP/1.0 only with
 * `Connection: keep-alive`), `Connection: close` honoured. Pipelined
 * requests are answered in order: the next request is parsed only once the
 * current response has ended. Beyond max_connections a connection is
 * accepted, answered 503 and closed.
 *
 * Exchanges and ownership: the handler is called once per request with an
 * exchange `x`. From that call the handler owns x, and gives it back with
 * exactly one of dbp_http_respond, dbp_http_stream_end or dbp_http_release;
 * x (and the request, its headers and body) must not be used after that.
 * The response may be given at once or later, from any callback of the loop.
 * If the client goes away before the response has ended (a read error, end
 * of input, a failed write, or too much output waiting for a slow reader),
 * x becomes dead: the callback of dbp_http_on_gone runs once, the response
 * functions do nothing and return DBP_ECLOSED, and the handler still has to
 * give x back (dbp_http_release is the usual way; dbp_http_respond and
 * dbp_http_stream_end also do). dbp_http_release of a live exchange whose
 * response has not ended answers 500 if nothing was sent yet, and otherwise
 * closes the connection (a stream cut short must not look complete). */
#ifndef DBP_SERVE_HTTP_H
#define DBP_SERVE_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct dbp_http_server dbp_http_server;
typedef struct dbp_http_exchange dbp_http_exchange;

/* Limits; 0 means the default given. */
typedef struct dbp_http_options {
  size_t max_header_bytes;    /* request target + header names and values: 16 KiB */
  size_t max_body_bytes;      /* 1 MiB */
  unsigned header_timeout_ms; /* accept or a request's first byte to its whole head: 10 s */
  unsigned body_timeout_ms;   /* from the head to the end of the body: 30 s */
  unsigned idle_timeout_ms;   /* an idle keep-alive connection is closed after: 5 s */
  size_t max_connections;     /* 256 */
  size_t max_pending_bytes;   /* output queued on one connection before it is dropped: 4 MiB */
} dbp_http_options;

typedef struct dbp_http_header_field {
  const char *name, *value; /* as received (value without surrounding blanks) */
} dbp_http_header_field;

typedef struct dbp_http_request {
  const char *method; /* "GET", "POST", ... */
  const char *target; /* the raw request target */
  const char *path;   /* target up to '?', not decoded */
  const char *query;  /* after '?', not decoded; NULL when the target has none */
  int version_major, version_minor;
  const dbp_http_header_field *headers;
  size_t nheaders;
  const char *body; /* NUL-terminated for convenience; body_len counts the bytes */
  size_t body_len;
} dbp_http_request;

/* Called once per complete request; see the ownership rule above. */
typedef void (*dbp_http_handler)(dbp_http_exchange *x, const dbp_http_request *req, void *ud);

/* Listens on host (an IPv4 or IPv6 literal) and port (0: a free one).
 * 0, or DBP_EINVAL (bad host or port), DBP_ENOMEM, or a libuv error
 * mapped through dbp_err_from_errno (address in use, ...). */
int dbp_http_listen(uv_loop_t *loop, const char *host, int port, const dbp_http_options *o,
                    dbp_http_handler fn, void *ud, dbp_http_server **out);
/* The port listened on (the one picked when 0 was asked). */
int dbp_http_port(const dbp_http_server *s);
/* Open connections, including ones being answered 503 or closed. */
size_t dbp_http_connections(const dbp_http_server *s);
/* Stops accepting, closes connections without an exchange at once, lets
 * exchanges in progress end (their responses say Connection: close), then
 * calls done(arg) (may be NULL) and frees the server. */
void dbp_http_close(dbp_http_server *s, void (*done)(void *), void *arg);

/* Case-insensitive lookup of a request header; the first one of that name,
 * or NULL. */
const char *dbp_http_header(const dbp_http_request *req, const char *name);

/* The whole response, with Content-Length (no body for HEAD, 204 and 304).
 * extra_headers: "Name: value" strings, NULL-terminated; may be NULL; one
 * holding CR or LF is left out.
 * Gives x back. 0, DBP_ECLOSED (x was dead), DBP_ESTATE (a stream was begun;
 * x is still given back and its connection closed), DBP_ENOMEM. */
int dbp_http_respond(dbp_http_exchange *x, int status, const char *content_type, const void *body,
                     size_t len, const char *const *extra_headers);
/* A streamed response: chunked for HTTP/1.1 clients, for HTTP/1.0 ones the
 * bytes as they are, the connection then closed at the end. */
int dbp_http_stream_begin(dbp_http_exchange *x, int status, const char *content_type,
                          const char *const *extra_headers);
/* Queues len bytes (0 does nothing). DBP_ECLOSED when x is dead, or becomes
 * so because the client has more than max_pending_bytes not yet taken (the
 * connection is then dropped; on_gone is not called for it, this result
 * says it). No function here calls on_gone from inside itself. */
int dbp_http_stream_write(dbp_http_exchange *x, const void *data, size_t len);
/* Ends the stream and gives x back. */
int dbp_http_stream_end(dbp_http_exchange *x);
/* Bytes queued on x's connection and not yet written (0 when dead): for
 * producers that pace themselves. */
size_t dbp_http_pending(const dbp_http_exchange *x);
/* cb(arg) runs once if the client goes away before the response ended. */
void dbp_http_on_gone(dbp_http_exchange *x, void (*cb)(void *), void *arg);
/* Whether x's client went away. */
int dbp_http_gone(const dbp_http_exchange *x);
/* Gives x back (see the ownership rule above). */
void dbp_http_release(dbp_http_exchange *x);

#endif /* DBP_SERVE_HTTP_H */
