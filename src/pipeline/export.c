/* dbp_export_query: one query into one or more files.
 *
 *   source coroutine --[bounded channel of batches]--> sink coroutine --> writer
 *
 * The source reads the query and copies what it gets out of the driver's
 * buffers into batches (rows are valid only until the next read); the sink
 * encodes and hands chunks to the writer, whose background coroutine
 * compresses and writes them on the thread pool. Batches and chunks come from
 * fixed pools that cycle through channels, so memory is bounded whatever the
 * row count and a slow disk slows the query down. A batch holds whole rows:
 * fetched rows value by value, COPY rows as they came (one dbp_copy_read
 * each), so the sink never looks for where a row ends.
 *
 * How the source reads (the db layer says what it can do; the pipeline
 * never asks which database it talks to):
 *  - A connection that can COPY, CSV or TSV that COPY writes itself:
 *    dbp_copy_start in CSV or text format with the header, delimiter and
 *    NULL string asked for; the rows go through untouched (the sink only
 *    counts them, to split).
 *  - A connection that can COPY, JSON Lines or options COPY cannot write
 *    (CRLF): a describe step for the column types, then text COPY, parsed
 *    and re-encoded.
 *  - Bound parameters (COPY takes none), a statement COPY refuses
 *    (DBP_ENOCOPY), or a connection without COPY: dbp_query + dbp_fetch,
 *    encoded row by row.
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

#include "dbpipe/pipeline.h"
#include "export/export_int.h"
#include "export/writer.h"

#define BATCH_BYTES (256 * 1024)
#define DEFAULT_BATCH_ROWS 4096
#define BATCH_VALUES 65536 /* values per batch at most, for wide rows */
/* A batch older than this goes to the sink even when it is not full, so
 * that a slow query's rows reach the file and the progress counters while
 * it runs, not only when a batch fills (fast streams fill batches first). */
#define BATCH_AGE_MS 250
#define DEFAULT_QUEUE 4
#define CO_STACK (256 * 1024)

_Static_assert(DBP_EXPORT_MAX_BATCH_ROWS <= BATCH_VALUES, "a batch row holds at least one value");

enum { M_ROWS, M_COPY_RAW, M_COPY_TEXT };

/* A batch of whole rows whose values sit back to back in `bytes`, with
 * their offsets and lengths (SIZE_MAX: NULL), `width` values per row. A
 * fetched row has one value per column; a COPY row is one value, the row's
 * bytes with their LF. */
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
  dbp_encode_options enc;
  dbp_encoder *e;
  size_t ncols;
  int64_t deadline; /* loop ms, -1 = none */

  /* Batches: `width` values per row (fixed once the first batch exists),
   * batch_rows rows at most. */
  size_t width, batch_rows, max_batches, nbatches;
  batch **batches;
  dbp_chan *full, *free;
  bool src_done;
  uint64_t batch_since; /* loop ms when the source took its current batch */

  dbp__writer *w;
  bool compressed;
  uint64_t max_rows, max_bytes;
  dbp_export_progress *prog;

  /* Sink state. */
  bool part_open;
  uint64_t part_rows, rows;
  dbp_buf hdr; /* raw COPY: the header line, repeated in every part */
  bool hdr_pending;
  dbp_buf scratch; /* unescaped text fields */
  dbp_buf moved;   /* a row moved to the next part */
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

/* a * b, or false when that does not fit a size_t. */
static bool mul_size(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

/* Fixes how many values a batch row holds (`width`: the columns of a
 * fetched row, or 1 for a COPY row) and so how many rows fit a batch.
 * Called before the first batch is taken. */
static void set_width(xp *x, size_t width) {
  x->width = width ? width : 1;
  size_t most = BATCH_VALUES / x->width;
  if (most < 16) most = 16;
  if (x->batch_rows > most) x->batch_rows = most;
}

/* A new batch with room for batch_rows rows of `width` values. */
static int batch_new(xp *x, batch **out) {
  size_t nvals, bytes;
  if (!mul_size(x->batch_rows, x->width, &nvals) || !mul_size(nvals, sizeof(size_t), &bytes))
    return fail(x, DBP_EINVAL, "a batch of %zu rows of %zu values is too large", x->batch_rows,
                x->width);
  batch *b = calloc(1, sizeof *b);
  if (b == NULL || dbp_buf_reserve(&b->bytes, BATCH_BYTES) != 0 ||
      (b->offs = malloc(bytes)) == NULL || (b->lens = malloc(bytes)) == NULL) {
    batch_free(b);
    return fail(x, DBP_ENOMEM, "out of memory");
  }
  *out = b;
  return 0;
}

/* Takes a free batch: a recycled one, a new one while the pool is not full,
 * else waits for the sink to give one back (backpressure). */
static int get_batch(xp *x, batch **out) {
  void *item = NULL;
  int rc = dbp_chan_try_recv(x->free, &item);
  if (rc == DBP_EAGAIN && x->nbatches < x->max_batches) {
    batch *b = NULL;
    if ((rc = batch_new(x, &b)) != 0) return rc;
    x->batches[x->nbatches++] = b;
    item = b;
  } else if (rc == DBP_EAGAIN) {
    rc = dbp_chan_recv(x->free, &item, DBP_FOREVER);
  }
  if (rc != 0) return rc;
  batch *b = item;
  b->nrows = 0;
  b->bytes.len = 0;
  x->batch_since = dbp_now(x->rt);
  *out = b;
  return 0;
}

static int send_batch(xp *x, batch *b) {
  return dbp_chan_send(x->full, b, DBP_FOREVER);
}

/* Sends the batch when it is full or old. */
static int batch_added(xp *x, batch **b) {
  if ((*b)->nrows < x->batch_rows && (*b)->bytes.len < BATCH_BYTES &&
      dbp_now(x->rt) - x->batch_since < BATCH_AGE_MS)
    return 0;
  int rc = send_batch(x, *b);
  *b = NULL;
  return rc;
}

/* ---- the source ---- */

/* Copies one fetched row into the batch: one reservation, then memcpy. */
static int batch_add_row(xp *x, batch *b, const dbp_row *row) {
  size_t total = 0;
  for (size_t i = 0; i < x->ncols; i++) total += row->vals[i] ? row->lens[i] : 0;
  if (dbp_buf_reserve(&b->bytes, total) != 0) return fail(x, DBP_ENOMEM, "out of memory");
  size_t *offs = b->offs + b->nrows * x->width, *lens = b->lens + b->nrows * x->width;
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

/* Copies one COPY row (its LF included) into the batch. */
static int batch_add_copy_row(xp *x, batch *b, const char *p, size_t n) {
  if (dbp_buf_append(&b->bytes, p, n) != 0) return fail(x, DBP_ENOMEM, "out of memory");
  b->offs[b->nrows] = b->bytes.len - n;
  b->lens[b->nrows] = n;
  b->nrows++;
  return 0;
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
  int rc = dbp_encoder_new(&x->enc, cols, ncols, &x->e);
  return rc ? fail(x, rc, "cannot encode the result: %s", dbp_strerror(rc)) : 0;
}

/* dbp_query + dbp_fetch, row by row into batches. */
static int source_rows(xp *x) {
  int rc = dbp_query(x->c, x->sql, x->nparams, x->params, time_left(x));
  if (rc != 0) return fail_db(x, rc);
  rc = make_encoder(x, dbp_columns(x->c), dbp_ncols(x->c));
  if (rc != 0) return rc;
  set_width(x, x->ncols);
  batch *b = NULL;
  for (;;) {
    dbp_row row;
    rc = dbp_fetch(x->c, &row);
    if (rc < 0) return fail_db(x, rc);
    if (rc == 0) break;
    if (b == NULL && (rc = get_batch(x, &b)) != 0) return rc;
    if ((rc = batch_add_row(x, b, &row)) != 0) return rc;
    if ((rc = batch_added(x, &b)) != 0) return rc;
  }
  return b != NULL ? send_batch(x, b) : 0;
}

/* The COPY that gives the bytes the sink needs: CSV or text as the export
 * asks (raw), or plain text with a header to parse. */
static dbp_copy_options copy_options(const xp *x) {
  dbp_copy_options o = {.format = DBP_COPY_TEXT};
  if (x->mode == M_COPY_RAW) {
    o.format = x->enc.format == DBP_FMT_CSV ? DBP_COPY_CSV : DBP_COPY_TEXT;
    o.header = !x->enc.no_header;
    o.delimiter = x->enc.delimiter;
    o.null_string = x->enc.null_string;
  }
  return o;
}

/* COPY: describe first when the sink re-encodes, then one batch row per
 * COPY row. A statement COPY refuses runs as a plain query instead. */
static int source_copy(xp *x) {
  int rc;
  if (x->mode == M_COPY_TEXT) {
    rc = dbp_describe(x->c, x->sql, time_left(x));
    if (rc != 0) return fail_db(x, rc);
    size_t n = dbp_ncols(x->c);
    dbp_column *cols = calloc(n ? n : 1, sizeof *cols);
    if (cols == NULL) return fail(x, DBP_ENOMEM, "out of memory");
    memcpy(cols, dbp_columns(x->c), n * sizeof *cols);
    /* Text COPY already writes binary values as their \x text form. */
    for (size_t i = 0; i < n; i++) {
      if (cols[i].type == DBP_T_BYTES) cols[i].type = DBP_T_TEXT;
    }
    rc = make_encoder(x, cols, n);
    free(cols);
    if (rc != 0) return rc;
  }
  dbp_copy_options co = copy_options(x);
  rc = dbp_copy_start(x->c, x->sql, &co, time_left(x));
  if (rc == DBP_ENOCOPY) {
    x->mode = M_ROWS;
    return source_rows(x);
  }
  if (rc != 0) return fail_db(x, rc);
  set_width(x, 1);
  batch *b = NULL;
  for (;;) {
    const char *p;
    size_t n;
    rc = dbp_copy_read(x->c, &p, &n);
    if (rc < 0) return fail_db(x, rc);
    if (rc == 0) break;
    if (b == NULL && (rc = get_batch(x, &b)) != 0) return rc;
    if ((rc = batch_add_copy_row(x, b, p, n)) != 0) return rc;
    if ((rc = batch_added(x, &b)) != 0) return rc;
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
    const size_t *offs = b->offs + r * x->width, *lens = b->lens + r * x->width;
    for (size_t i = 0; i < x->ncols; i++) {
      x->vals[i] = lens[i] == SIZE_MAX ? NULL : b->bytes.data + offs[i];
      x->lens[i] = lens[i] == SIZE_MAX ? 0 : lens[i];
    }
    int rc = put_row(x, &row);
    if (rc != 0) return rc;
  }
  return 0;
}

/* One row of text COPY output, parsed and re-encoded. */
static int text_row(xp *x, const char *line, size_t n) {
  if (n > 0 && line[n - 1] == '\n') n--;
  int rc = dbp__copytext_split(line, n, x->ncols, x->vals, x->lens, &x->scratch);
  if (rc == DBP_EPROTO)
    return fail(x, rc, "COPY sent a row without the %zu columns described", x->ncols);
  if (rc != 0) return fail(x, rc, "out of memory");
  dbp_row row = {x->ncols, x->vals, x->lens};
  return put_row(x, &row);
}

/* One raw COPY row: the header, or data. */
static int raw_row(xp *x, const char *p, size_t n) {
  if (x->hdr_pending) {
    x->hdr.len = 0;
    if (dbp_buf_append(&x->hdr, p, n) != 0) return fail(x, DBP_ENOMEM, "out of memory");
    x->hdr_pending = false;
    return start_part(x);
  }
  return put_raw_row(x, p, n);
}

static int sink_copy(xp *x, const batch *b) {
  for (size_t r = 0; r < b->nrows; r++) {
    const char *p = b->bytes.data + b->offs[r];
    int rc = x->mode == M_COPY_RAW ? raw_row(x, p, b->lens[r]) : text_row(x, p, b->lens[r]);
    if (rc != 0) return rc;
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
    rc = x->mode == M_ROWS ? sink_rows(x, b) : sink_copy(x, b);
    dbp_chan_try_send(x->free, b);
    if (rc != 0) return rc;
  }
  /* Closed without the source saying it is done: it failed. */
  if (!x->src_done) return DBP_ECANCELED;
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
  if (o.batch_rows > DBP_EXPORT_MAX_BATCH_ROWS)
    return res_error(res, DBP_EINVAL, "batch_rows %zu is more than the %zu allowed", o.batch_rows,
                     DBP_EXPORT_MAX_BATCH_ROWS);
  if (o.queue_batches > DBP_EXPORT_MAX_QUEUE)
    return res_error(res, DBP_EINVAL, "queue_batches %zu is more than the %zu allowed",
                     o.queue_batches, DBP_EXPORT_MAX_QUEUE);
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
  x.max_batches = queue + 2; /* the queue, one being filled, one being drained */

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

  if (nparams == 0 && dbp_conn_can_copy(c)) {
    bool raw = fmt != DBP_FMT_JSONL && copy_can_write(&x.enc);
    x.mode = raw ? M_COPY_RAW : M_COPY_TEXT;
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

int dbp_export_table(dbp_conn *c, const char *table, const char *path,
                     const dbp_export_options *opts, dbp_export_result *res) {
  if (res == NULL) return DBP_EINVAL;
  memset(res, 0, sizeof *res);
  if (c == NULL || table == NULL || *table == '\0')
    return res_error(res, DBP_EINVAL, "dbp_export_table: missing connection or table");
  char *name = dbp_quote_ident(dbp_conn_kind(c), table);
  dbp_buf sql = {0};
  int rc = name != NULL ? dbp_buf_printf(&sql, "SELECT * FROM %s", name) : DBP_ENOMEM;
  free(name);
  if (rc != 0) {
    dbp_buf_free(&sql);
    return res_error(res, DBP_ENOMEM, "out of memory");
  }
  rc = dbp_export_query(c, sql.data, 0, NULL, path, opts, res);
  dbp_buf_free(&sql);
  return rc;
}

void dbp_export_result_free(dbp_export_result *res) {
  if (res == NULL) return;
  for (size_t i = 0; i < res->nfiles; i++) free(res->files[i].path);
  free(res->files);
  res->files = NULL;
  res->nfiles = 0;
}
