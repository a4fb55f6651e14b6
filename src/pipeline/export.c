/* dbp_export_query: one query into one or more files.
 *
 *   source coroutine --[bounded channel of batches]--> sink coroutine --> writer
 *
 * The source reads the query and copies what it gets out of the driver's
 * buffers into batches (rows are valid only until the next fetch); the sink
 * encodes and hands chunks to the writer, whose background coroutine
 * compresses and writes them on the thread pool. Batches and chunks come from
 * fixed pools that cycle through channels, so memory is bounded whatever the
 * row count and a slow disk slows the query down.
 *
 * How the source reads:
 *  - PostgreSQL, CSV or TSV that COPY can write itself: COPY (query) TO
 *    STDOUT with FORMAT csv / text, HEADER, DELIMITER and NULL; the bytes go
 *    through untouched (the sink only finds row ends, to count and split).
 *  - PostgreSQL, JSON Lines or options COPY cannot do (CRLF): a describe step
 *    for the column types, then text COPY, parsed and re-encoded.
 *  - PostgreSQL with parameters (COPY takes none) or a statement COPY does
 *    not accept, and MySQL: dbp_query + dbp_fetch, encoded row by row.
 *
 * Failure: the source and the sink run under dbp_gather(FIRST_ERROR), so the
 * first failure cancels the other side (cancelling the source cancels the
 * statement on the server), and cancelling the caller cancels both. Files are
 * committed (renamed into place) only after both finished cleanly; otherwise
 * the writer removes every temporary file and nothing reaches a final path.
 * The path "-" streams to standard output through the same writer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export_int.h"
#include "export/writer.h"

#define BATCH_BYTES (256 * 1024)
#define DEFAULT_BATCH_ROWS 4096
#define BATCH_VALUES 65536 /* values per batch at most, for wide rows */
#define DEFAULT_QUEUE 4
#define CO_STACK (256 * 1024)

enum { M_ROWS, M_COPY_RAW, M_COPY_TEXT };

/* A batch: raw COPY bytes, or rows whose values sit back to back in `bytes`
 * with their offsets and lengths (SIZE_MAX: NULL). */
typedef struct batch {
  dbp_buf bytes;
  size_t nrows;
  size_t *offs, *lens;
} batch;

typedef struct xp {
  dbp_rt *rt;
  dbp_conn *c;
  const char *sql;
  size_t nparams;
  const dbp_param *params;
  int mode;
  bool raw_csv; /* raw CSV (quotes matter for row ends) or text */
  bool in_txn;  /* the connection was in a transaction before we started */
  dbp_encode_options enc;
  dbp_encoder *e;
  size_t ncols;
  int64_t deadline; /* loop ms, -1 = none */

  size_t batch_rows, max_batches, nbatches;
  batch **batches;
  dbp_chan *full, *free;
  bool src_done;

  dbp__writer *w;
  bool compressed;
  uint64_t max_rows, max_bytes;
  dbp_export_progress *prog;

  /* Sink state. */
  bool part_open;
  uint64_t part_rows, rows;
  dbp_buf carry; /* a row that goes on into the next batch */
  dbp_buf hdr;   /* raw mode: the header line, repeated in every part */
  bool hdr_pending;
  bool in_quotes;
  dbp_buf scratch; /* a row moved to the next part; unescaped text fields */
  dbp_buf moved;
  const char **vals;
  size_t *lens;

  dbp_dberr err; /* the first real failure (not a sibling's cancellation) */
} xp;

/* Records the first failure that is not just the other side's cancellation.
 * Returns code. */
static int fail(xp *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(xp *x, int code, const char *fmt, ...) {
  if (x->err.code != 0 || code == 0 || code == DBP_ECANCELED) return code;
  memset(&x->err, 0, sizeof x->err);
  x->err.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->err.message, sizeof x->err.message, fmt, ap);
  va_end(ap);
  return code;
}

/* A database call failed: keep the connection's details (SQLSTATE, errno,
 * retryable, the server's message). */
static int fail_db(xp *x, int code) {
  if (x->err.code != 0 || code == DBP_ECANCELED) return code;
  const dbp_dberr *e = dbp_conn_error(x->c);
  if (e != NULL && e->code == code) {
    x->err = *e;
    return code;
  }
  return fail(x, code, "%s", dbp_strerror(code));
}

static int fail_writer(xp *x, int code) {
  if (x->err.code != 0 || code == DBP_ECANCELED) return code;
  char msg[256];
  int wc = dbp__writer_error(x->w, msg, sizeof msg);
  if (wc == code && msg[0]) return fail(x, code, "%s", msg);
  return fail(x, code, "%s", dbp_strerror(code));
}

/* Applies the export's deadline to the running coroutine. */
static bool push_deadline(xp *x, uint64_t *token) {
  if (x->deadline < 0) return false;
  int64_t left = x->deadline - (int64_t)dbp_now(x->rt);
  return dbp_deadline_push(x->rt, left > 0 ? left : 0, token) == 0;
}

static int64_t time_left(xp *x) {
  if (x->deadline < 0) return DBP_FOREVER;
  int64_t left = x->deadline - (int64_t)dbp_now(x->rt);
  return left > 0 ? left : 0;
}

/* ---- batches ---- */

static void batch_free(batch *b) {
  if (b == NULL) return;
  dbp_buf_free(&b->bytes);
  free(b->offs);
  free(b->lens);
  free(b);
}

/* Takes a free batch: a recycled one, a new one while the pool is not full,
 * else waits for the sink to give one back (backpressure). */
static int get_batch(xp *x, batch **out) {
  void *item = NULL;
  int rc = dbp_chan_try_recv(x->free, &item);
  if (rc == DBP_EAGAIN && x->nbatches < x->max_batches) {
    batch *b = calloc(1, sizeof *b);
    if (b == NULL || dbp_buf_reserve(&b->bytes, BATCH_BYTES) != 0) {
      batch_free(b);
      return fail(x, DBP_ENOMEM, "out of memory");
    }
    x->batches[x->nbatches++] = b;
    item = b;
    rc = 0;
  } else if (rc == DBP_EAGAIN) {
    rc = dbp_chan_recv(x->free, &item, DBP_FOREVER);
  }
  if (rc != 0) return rc;
  batch *b = item;
  b->nrows = 0;
  b->bytes.len = 0;
  *out = b;
  return 0;
}

/* ---- the source ---- */

/* Copies one fetched row into the batch: one reservation, then memcpy. */
static int batch_add_row(xp *x, batch *b, const dbp_row *row) {
  if (b->offs == NULL) {
    size_t n = x->batch_rows * (x->ncols ? x->ncols : 1);
    b->offs = malloc(n * sizeof *b->offs);
    b->lens = malloc(n * sizeof *b->lens);
    if (b->offs == NULL || b->lens == NULL) return fail(x, DBP_ENOMEM, "out of memory");
  }
  size_t total = 0;
  for (size_t i = 0; i < x->ncols; i++) total += row->vals[i] ? row->lens[i] : 0;
  if (dbp_buf_reserve(&b->bytes, total) != 0) return fail(x, DBP_ENOMEM, "out of memory");
  size_t *offs = b->offs + b->nrows * x->ncols, *lens = b->lens + b->nrows * x->ncols;
  for (size_t i = 0; i < x->ncols; i++) {
    offs[i] = b->bytes.len;
    if (row->vals[i] == NULL) {
      lens[i] = SIZE_MAX;
      continue;
    }
    memcpy(b->bytes.data + b->bytes.len, row->vals[i], row->lens[i]);
    b->bytes.len += row->lens[i];
    lens[i] = row->lens[i];
  }
  b->nrows++;
  return 0;
}

static int send_batch(xp *x, batch *b) {
  return dbp_chan_send(x->full, b, DBP_FOREVER);
}

static int make_encoder(xp *x, const dbp_column *cols, size_t ncols) {
  dbp_encoder_free(x->e);
  x->e = NULL;
  x->ncols = ncols;
  free(x->vals);
  free(x->lens);
  x->vals = calloc(ncols ? ncols : 1, sizeof *x->vals);
  x->lens = calloc(ncols ? ncols : 1, sizeof *x->lens);
  if (x->vals == NULL || x->lens == NULL) return fail(x, DBP_ENOMEM, "out of memory");
  /* Bound a batch's offset and length arrays however wide the rows are. */
  if (ncols > 0 && x->batch_rows > BATCH_VALUES / ncols)
    x->batch_rows = BATCH_VALUES / ncols > 16 ? BATCH_VALUES / ncols : 16;
  int rc = dbp_encoder_new(&x->enc, cols, ncols, &x->e);
  return rc ? fail(x, rc, "cannot encode the result: %s", dbp_strerror(rc)) : 0;
}

/* dbp_query + dbp_fetch, row by row into batches. */
static int source_rows(xp *x) {
  int rc = dbp_query(x->c, x->sql, x->nparams, x->params, time_left(x));
  if (rc != 0) return fail_db(x, rc);
  rc = make_encoder(x, dbp_columns(x->c), dbp_ncols(x->c));
  if (rc != 0) return rc;
  batch *b = NULL;
  for (;;) {
    dbp_row row;
    rc = dbp_fetch(x->c, &row);
    if (rc < 0) return fail_db(x, rc);
    if (rc == 0) break;
    if (b == NULL && (rc = get_batch(x, &b)) != 0) return rc;
    if ((rc = batch_add_row(x, b, &row)) != 0) return rc;
    if (b->nrows == x->batch_rows || b->bytes.len >= BATCH_BYTES) {
      rc = send_batch(x, b);
      b = NULL;
      if (rc != 0) return rc;
    }
  }
  return b != NULL ? send_batch(x, b) : 0;
}

/* Appends `s` as an E'' string literal: quote and backslash doubled as
 * escapes, control bytes as \xhh. */
static int append_literal(dbp_buf *q, const char *s) {
  int rc = dbp_buf_append(q, "E'", 2);
  for (; rc == 0 && *s; s++) {
    unsigned char c = (unsigned char)*s;
    char tmp[8];
    if (c == '\'' || c == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)c;
      rc = dbp_buf_append(q, tmp, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      rc = dbp_buf_append(q, tmp, 4);
    } else {
      rc = dbp_buf_append(q, s, 1);
    }
  }
  return rc ? rc : dbp_buf_append(q, "'", 1);
}

/* COPY (\n<sql>\n) TO STDOUT (...): the line breaks keep a trailing
 * comment in the query from swallowing the parenthesis; trailing
 * semicolons are dropped. Returns a NUL-terminated buffer. */
static int build_copy(xp *x, dbp_buf *q) {
  size_t n = strlen(x->sql);
  while (n > 0 && strchr(" \t\r\n;", x->sql[n - 1]) != NULL) n--;
  int rc = dbp_buf_append(q, "COPY (\n", 7);
  if (rc == 0) rc = dbp_buf_append(q, x->sql, n);
  if (rc == 0) rc = dbp_buf_append(q, "\n) TO STDOUT", 12);
  if (rc == 0 && x->mode == M_COPY_RAW) {
    const char *fmt = x->raw_csv ? " (FORMAT csv" : " (FORMAT text";
    rc = dbp_buf_append(q, fmt, strlen(fmt));
    if (rc == 0 && !x->enc.no_header) rc = dbp_buf_append(q, ", HEADER", 8);
    if (rc == 0 && x->enc.delimiter) {
      char d[2] = {x->enc.delimiter, 0};
      rc = dbp_buf_append(q, ", DELIMITER ", 12);
      if (rc == 0) rc = append_literal(q, d);
    }
    if (rc == 0 && x->enc.null_string) {
      rc = dbp_buf_append(q, ", NULL ", 7);
      if (rc == 0) rc = append_literal(q, x->enc.null_string);
    }
    if (rc == 0) rc = dbp_buf_append(q, ")", 1);
  }
  return rc ? rc : dbp_buf_append(q, "", 1);
}

/* COPY refused the statement itself (not its data): a syntax error for
 * things like SHOW or EXPLAIN, or "feature not supported" for DML without
 * RETURNING or an older server. Those run as a plain query instead, unless
 * a transaction block is now aborted by the failed COPY. */
static bool copy_refused(xp *x) {
  const dbp_dberr *e = dbp_conn_error(x->c);
  if (x->in_txn || e == NULL || dbp_conn_is_broken(x->c)) return false;
  return strcmp(e->sqlstate, "42601") == 0 || strcmp(e->sqlstate, "0A000") == 0;
}

/* PostgreSQL COPY: describe first when the sink re-encodes, then stream
 * COPY's chunks into fixed-size batches (a row may straddle two). */
static int source_copy(xp *x) {
  int rc;
  if (x->mode == M_COPY_TEXT) {
    rc = dbp_describe(x->c, x->sql, time_left(x));
    if (rc != 0) return fail_db(x, rc);
    size_t n = dbp_ncols(x->c);
    dbp_column *cols = calloc(n ? n : 1, sizeof *cols);
    if (cols == NULL) return fail(x, DBP_ENOMEM, "out of memory");
    memcpy(cols, dbp_columns(x->c), n * sizeof *cols);
    /* Text COPY already writes bytea as its \x text form. */
    for (size_t i = 0; i < n; i++) {
      if (cols[i].type == DBP_T_BYTES) cols[i].type = DBP_T_TEXT;
    }
    rc = make_encoder(x, cols, n);
    free(cols);
    if (rc != 0) return rc;
  }
  dbp_buf q = {0};
  rc = build_copy(x, &q);
  if (rc != 0) return fail(x, rc, "out of memory");
  rc = dbp_copy_start(x->c, q.data, time_left(x));
  dbp_buf_free(&q);
  if (rc == DBP_EQUERY && copy_refused(x)) {
    x->mode = M_ROWS;
    return source_rows(x);
  }
  if (rc != 0) return fail_db(x, rc);
  batch *b = NULL;
  for (;;) {
    const char *p;
    size_t n;
    rc = dbp_copy_read(x->c, &p, &n);
    if (rc < 0) return fail_db(x, rc);
    if (rc == 0) break;
    while (n > 0) {
      if (b == NULL && (rc = get_batch(x, &b)) != 0) return rc;
      size_t take = BATCH_BYTES - b->bytes.len < n ? BATCH_BYTES - b->bytes.len : n;
      memcpy(b->bytes.data + b->bytes.len, p, take);
      b->bytes.len += take;
      p += take;
      n -= take;
      if (b->bytes.len == BATCH_BYTES) {
        rc = send_batch(x, b);
        b = NULL;
        if (rc != 0) return rc;
      }
    }
  }
  return b != NULL ? send_batch(x, b) : 0;
}

static int source_main(void *arg, void **result) {
  xp *x = arg;
  (void)result;
  uint64_t token;
  bool pushed = push_deadline(x, &token);
  int rc = x->mode == M_ROWS ? source_rows(x) : source_copy(x);
  if (pushed) dbp_deadline_pop(x->rt, token);
  if (rc == 0) {
    x->src_done = true;
    dbp_chan_close(x->full);
    return 0;
  }
  if (rc == DBP_ETIMEDOUT) fail(x, rc, "the export timed out");
  /* Leave the connection idle (the driver cancels what is still running). */
  dbp_query_close(x->c);
  return rc;
}

/* ---- the sink ---- */

static int start_part(xp *x) {
  int rc = dbp__writer_begin(x->w);
  if (rc != 0) return fail_writer(x, rc);
  x->part_open = true;
  x->part_rows = 0;
  dbp_buf *out = dbp__writer_buf(x->w);
  size_t before = out->len;
  if (x->mode == M_COPY_RAW) {
    if (!x->hdr_pending && x->hdr.len > 0) rc = dbp_buf_append(out, x->hdr.data, x->hdr.len);
  } else {
    rc = dbp_encoder_header(x->e, out);
  }
  if (rc != 0) return fail(x, rc, "out of memory");
  if (x->prog) x->prog->bytes_in += out->len - before;
  return 0;
}

static int end_part(xp *x) {
  x->part_open = false;
  int rc = dbp__writer_end(x->w, x->part_rows);
  return rc ? fail_writer(x, rc) : 0;
}

/* Before a row of `n` bytes (0: not known yet): does it start a new part?
 * Rows: max_rows per part. Bytes, uncompressed: the row would take the part
 * past max_bytes. Bytes, compressed: the part has reached max_bytes (the
 * compressed size is only known after the fact). A part always gets at
 * least one row. */
static bool must_rotate(xp *x, size_t n) {
  if (x->part_rows == 0) return false;
  if (x->max_rows && x->part_rows >= x->max_rows) return true;
  if (!x->max_bytes) return false;
  uint64_t size = dbp__writer_size(x->w);
  return x->compressed ? size >= x->max_bytes : n > 0 && size + n > x->max_bytes;
}

static int row_done(xp *x, size_t bytes) {
  x->part_rows++;
  x->rows++;
  if (x->prog) {
    x->prog->rows++;
    x->prog->bytes_in += bytes;
  }
  int rc = dbp__writer_flush_if_full(x->w);
  return rc ? fail_writer(x, rc) : 0;
}

/* A row that is already encoded (raw COPY bytes). */
static int put_raw_row(xp *x, const char *p, size_t n) {
  int rc = 0;
  if (!x->part_open) {
    rc = start_part(x);
  } else if (must_rotate(x, n)) {
    rc = end_part(x);
    if (rc == 0) rc = start_part(x);
  }
  if (rc != 0) return rc;
  if (dbp_buf_append(dbp__writer_buf(x->w), p, n) != 0) return fail(x, DBP_ENOMEM, "out of memory");
  return row_done(x, n);
}

/* Encodes a row straight into the writer's buffer. When, uncompressed, it
 * turns out too big for the part, it moves to the next one. */
static int put_row(xp *x, const dbp_row *row) {
  int rc = 0;
  if (!x->part_open) {
    rc = start_part(x);
  } else if (must_rotate(x, 0)) {
    rc = end_part(x);
    if (rc == 0) rc = start_part(x);
  }
  if (rc != 0) return rc;
  dbp_buf *out = dbp__writer_buf(x->w);
  size_t mark = out->len;
  uint64_t before = dbp__writer_size(x->w);
  rc = dbp_encoder_row(x->e, row, out);
  if (rc != 0) return fail(x, rc, "encoding a row: %s", dbp_strerror(rc));
  size_t n = out->len - mark;
  if (x->max_bytes && !x->compressed && x->part_rows > 0 && before + n > x->max_bytes) {
    x->moved.len = 0;
    if (dbp_buf_append(&x->moved, out->data + mark, n) != 0)
      return fail(x, DBP_ENOMEM, "out of memory");
    out->len = mark;
    if ((rc = end_part(x)) != 0 || (rc = start_part(x)) != 0) return rc;
    if (dbp_buf_append(dbp__writer_buf(x->w), x->moved.data, n) != 0)
      return fail(x, DBP_ENOMEM, "out of memory");
  }
  return row_done(x, n);
}

static int sink_rows(xp *x, const batch *b) {
  dbp_row row = {x->ncols, x->vals, x->lens};
  for (size_t r = 0; r < b->nrows; r++) {
    const size_t *offs = b->offs + r * x->ncols, *lens = b->lens + r * x->ncols;
    for (size_t i = 0; i < x->ncols; i++) {
      x->vals[i] = lens[i] == SIZE_MAX ? NULL : b->bytes.data + offs[i];
      x->lens[i] = lens[i] == SIZE_MAX ? 0 : lens[i];
    }
    int rc = put_row(x, &row);
    if (rc != 0) return rc;
  }
  return 0;
}

/* One complete line of text COPY output (without its LF). */
static int text_line(xp *x, const char *line, size_t n) {
  int rc = dbp__copytext_split(line, n, x->ncols, x->vals, x->lens, &x->scratch);
  if (rc == DBP_EPROTO)
    return fail(x, rc, "COPY sent a row without the %zu columns described", x->ncols);
  if (rc != 0) return fail(x, rc, "out of memory");
  dbp_row row = {x->ncols, x->vals, x->lens};
  return put_row(x, &row);
}

/* One complete raw row (with its LF): the header, or data. */
static int raw_row(xp *x, const char *p, size_t n) {
  if (x->hdr_pending) {
    x->hdr.len = 0;
    if (dbp_buf_append(&x->hdr, p, n) != 0) return fail(x, DBP_ENOMEM, "out of memory");
    x->hdr_pending = false;
    return start_part(x);
  }
  return put_raw_row(x, p, n);
}

/* Cuts a batch of COPY bytes into rows. A row that goes on past the batch
 * waits in `carry` for the rest. */
static int sink_copy(xp *x, const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    const char *q;
    if (x->mode == M_COPY_RAW && x->raw_csv) {
      q = dbp__csv_row_end(p, end, &x->in_quotes);
    } else {
      q = memchr(p, '\n', (size_t)(end - p));
      if (q != NULL) q++;
    }
    if (q == NULL) {
      if (dbp_buf_append(&x->carry, p, (size_t)(end - p)) != 0)
        return fail(x, DBP_ENOMEM, "out of memory");
      return 0;
    }
    const char *row = p;
    size_t len = (size_t)(q - p);
    if (x->carry.len > 0) {
      if (dbp_buf_append(&x->carry, p, len) != 0) return fail(x, DBP_ENOMEM, "out of memory");
      row = x->carry.data;
      len = x->carry.len;
    }
    int rc = x->mode == M_COPY_RAW ? raw_row(x, row, len) : text_line(x, row, len - 1);
    x->carry.len = 0;
    if (rc != 0) return rc;
    p = q;
  }
  return 0;
}

static int sink_run(xp *x) {
  int rc;
  for (;;) {
    void *item;
    rc = dbp_chan_recv(x->full, &item, DBP_FOREVER);
    if (rc == DBP_ECLOSED) break;
    if (rc != 0) return rc;
    batch *b = item;
    rc = x->mode == M_ROWS ? sink_rows(x, b) : sink_copy(x, b->bytes.data, b->bytes.len);
    dbp_chan_try_send(x->free, b);
    if (rc != 0) return rc;
  }
  /* Closed without the source saying it is done: it failed. */
  if (!x->src_done) return DBP_ECANCELED;
  if (x->carry.len > 0) {
    /* COPY ends every row with LF; keep whatever came anyway. */
    rc = x->mode == M_COPY_RAW ? raw_row(x, x->carry.data, x->carry.len)
                               : text_line(x, x->carry.data, x->carry.len);
    x->carry.len = 0;
    if (rc != 0) return rc;
  }
  if (!x->part_open && (rc = start_part(x)) != 0) return rc;
  return end_part(x);
}

static int sink_main(void *arg, void **result) {
  xp *x = arg;
  (void)result;
  uint64_t token;
  bool pushed = push_deadline(x, &token);
  int rc = sink_run(x);
  if (pushed) dbp_deadline_pop(x->rt, token);
  if (rc == DBP_ETIMEDOUT) fail(x, rc, "the export timed out");
  return rc;
}

/* ---- the public call ---- */

static void xp_free(xp *x) {
  dbp__writer_free(x->w);
  for (size_t i = 0; i < x->nbatches; i++) batch_free(x->batches[i]);
  free(x->batches);
  if (x->full) dbp_chan_free(x->full);
  if (x->free) dbp_chan_free(x->free);
  dbp_encoder_free(x->e);
  dbp_buf_free(&x->carry);
  dbp_buf_free(&x->hdr);
  dbp_buf_free(&x->scratch);
  dbp_buf_free(&x->moved);
  free(x->vals);
  free(x->lens);
}

static int res_error(dbp_export_result *res, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int res_error(dbp_export_result *res, int code, const char *fmt, ...) {
  if (res == NULL) return code;
  res->err.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->err.message, sizeof res->err.message, fmt, ap);
  va_end(ap);
  return code;
}

/* Can COPY write this CSV / TSV itself? Not with CRLF line ends, nor with a
 * control character as the delimiter (other than TSV's own tab). */
static bool copy_can_write(const dbp_encode_options *enc) {
  unsigned char d = (unsigned char)enc->delimiter;
  return !enc->crlf && (d == 0 || d == '\t' || (d >= 0x20 && d < 0x7f));
}

/* dbp_export_check_target, run on the thread pool. */
typedef struct target_job {
  const char *path;
  bool split;
  int rc;
  char msg[sizeof((dbp_dberr *)0)->message];
} target_job;

static void target_work(void *arg) {
  target_job *t = arg;
  t->rc = dbp_export_check_target(t->path, t->split, t->msg, sizeof t->msg);
}

int dbp_export_query(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
                     const char *path, const dbp_export_options *opts, dbp_export_result *res) {
  int rc;
  if (res == NULL) return DBP_EINVAL;
  memset(res, 0, sizeof *res);
  if (c == NULL || sql == NULL || path == NULL || *path == '\0' || (nparams > 0 && params == NULL))
    return res_error(res, DBP_EINVAL, "dbp_export_query: missing connection, SQL or path");
  dbp_rt *rt = dbp_conn_rt(c);
  if (dbp_current(rt) == NULL)
    return res_error(res, DBP_ENOTCORO, "dbp_export_query must run inside a coroutine");
  dbp_export_options o = {0};
  if (opts != NULL) o = *opts;
  bool split = o.max_rows > 0 || o.max_bytes > 0;
  if (split && strcmp(path, "-") == 0)
    return res_error(res, DBP_EINVAL,
                     "standard output (-) cannot be split: max_rows and max_bytes need a file");
  /* A target that cannot become a regular file is refused before the query
   * runs (the check reads the directory: on the thread pool). */
  target_job tj = {.path = path, .split = split};
  rc = dbp_work(rt, target_work, &tj);
  if (rc != 0) return res_error(res, rc, "%s", dbp_strerror(rc));
  if (tj.rc != 0) return res_error(res, tj.rc, "%s", tj.msg);

  /* Standard output has no name to read: AUTO means CSV, uncompressed. */
  dbp_format fmt = o.format;
  dbp_compression comp = o.compression;
  dbp_format pf;
  dbp_compression pc;
  dbp_format_from_path(path, &pf, &pc);
  if (fmt == DBP_FMT_AUTO) fmt = pf;
  if (comp == DBP_COMP_AUTO) comp = pc;
  if (fmt != DBP_FMT_CSV && fmt != DBP_FMT_TSV && fmt != DBP_FMT_JSONL)
    return res_error(res, DBP_EFORMAT, "unknown output format %d", (int)fmt);

  xp x = {0};
  x.rt = rt;
  x.c = c;
  x.sql = sql;
  x.nparams = nparams;
  x.params = params;
  x.enc = o.encode;
  x.enc.format = fmt;
  x.prog = o.progress;
  x.max_rows = o.max_rows;
  x.max_bytes = o.max_bytes;
  x.compressed = comp != DBP_COMP_NONE;
  x.deadline = o.timeout_ms > 0 ? (int64_t)dbp_now(rt) + o.timeout_ms : -1;
  x.batch_rows = o.batch_rows ? o.batch_rows : DEFAULT_BATCH_ROWS;
  size_t queue = o.queue_batches ? o.queue_batches : DEFAULT_QUEUE;
  x.max_batches = queue + 2;
  x.in_txn = dbp_conn_in_transaction(c);

  /* Options the encoders (and so COPY) would refuse fail before anything runs. */
  dbp_encoder *probe = NULL;
  rc = dbp_encoder_new(&x.enc, NULL, 0, &probe);
  dbp_encoder_free(probe);
  if (rc != 0)
    return res_error(res, rc, "invalid %s options (delimiter or NULL string)",
                     dbp_format_name(fmt));

  dbp__writer_options wo = {
      .compression = comp,
      .level = o.level,
      .split = split,
      .no_fsync = o.no_fsync,
      .progress = o.progress,
  };
  if (x.compressed && o.max_bytes > 0) {
    /* Smaller, flushed chunks keep the compressed size current enough to
     * split near max_bytes. */
    uint64_t chunk = o.max_bytes / 4;
    wo.chunk_size = chunk < 16384 ? 16384 : chunk > DBP__WRITER_CHUNK ? DBP__WRITER_CHUNK : chunk;
    wo.flush_chunks = true;
  }
  rc = dbp__writer_new(rt, path, &wo, &x.w);
  if (rc != 0)
    return res_error(res, rc, "invalid compression level %d for %s", o.level,
                     dbp_compression_name(comp));

  if (dbp_conn_kind(c) == DBP_DB_PG && nparams == 0) {
    bool raw = fmt != DBP_FMT_JSONL && copy_can_write(&x.enc);
    x.mode = raw ? M_COPY_RAW : M_COPY_TEXT;
    x.raw_csv = fmt == DBP_FMT_CSV;
    x.hdr_pending = raw && !x.enc.no_header;
  } else {
    x.mode = M_ROWS;
  }

  dbp_co *cos[2] = {NULL, NULL};
  rc = DBP_ENOMEM;
  x.batches = calloc(x.max_batches, sizeof *x.batches);
  if (x.batches == NULL) goto done;
  if ((rc = dbp_chan_new(rt, queue, &x.full)) != 0) goto done;
  if ((rc = dbp_chan_new(rt, x.max_batches, &x.free)) != 0) goto done;
  dbp_spawn_options so = {.name = "export-source", .stack_size = CO_STACK};
  if ((rc = dbp_spawn(rt, &cos[0], source_main, &x, &so)) != 0) goto done;
  so.name = "export-sink";
  if ((rc = dbp_spawn(rt, &cos[1], sink_main, &x, &so)) != 0) {
    dbp_cancel(cos[0]);
    dbp_gather(rt, cos, 1, NULL, NULL, DBP_GATHER_ALL);
    goto done;
  }
  rc = dbp_gather(rt, cos, 2, NULL, NULL, DBP_GATHER_FIRST_ERROR);
  if (rc == 0) {
    rc = dbp__writer_commit(x.w);
    if (rc != 0) fail_writer(&x, rc);
  }

done:
  if (rc != 0) {
    dbp__writer_abort(x.w);
    /* The first real failure wins over the cancellation it caused. */
    if (x.err.code != 0) {
      rc = x.err.code;
    } else {
      x.err.code = rc;
      snprintf(x.err.message, sizeof x.err.message, "%s",
               rc == DBP_ECANCELED ? "the export was cancelled" : dbp_strerror(rc));
    }
    res->err = x.err;
  } else {
    res->files = dbp__writer_take_files(x.w, &res->nfiles);
    res->rows = x.rows;
    for (size_t i = 0; i < res->nfiles; i++) res->bytes += res->files[i].bytes;
  }
  xp_free(&x);
  return rc;
}

void dbp_export_result_free(dbp_export_result *res) {
  if (res == NULL) return;
  for (size_t i = 0; i < res->nfiles; i++) free(res->files[i].path);
  free(res->files);
  res->files = NULL;
  res->nfiles = 0;
}
