/* Whole results (db.h): a query's rows read into memory, and the builder
 * behind them (result.h).
 *
 * Everything a result holds lives in chunks that are never moved or
 * resized: the columns and their strings, and each row as one record of
 * its value pointers, then its lengths, then its value bytes (each value
 * followed by a NUL). Only the index of rows (one pointer per row) grows
 * by reallocation, and nothing outside sees it.
 *
 * A result and its first chunk are one allocation, sized so that the
 * common answer of a pool statement (a row or a few, a handful of short
 * columns) needs no other. Later chunks double in size up to a cap; a row
 * bigger than the next chunk gets a chunk of its own, and the current one
 * stays in use for the rows after it. */
#include "db/result.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/driver.h"
#include "db/drvkit.h"

/* Records in a chunk start at this alignment: the pointers, lengths and
 * column structs they hold need no more. */
#define RES_ALIGN alignof(dbp_column)
_Static_assert(RES_ALIGN >= alignof(const char *) && RES_ALIGN >= alignof(size_t),
               "a record's arrays must be aligned in the chunk");

/* The whole first allocation (the result with its first chunk). */
#define RES_FIRST_BLOCK ((size_t)1024)
/* The second chunk's size, and the largest a chunk grows to (bigger rows
 * get a chunk of their own). */
#define RES_CHUNK_MIN ((size_t)4096)
#define RES_CHUNK_MAX ((size_t)1 << 20)
/* Rows indexed inside the result itself before the index is allocated. */
#define RES_INLINE_ROWS 4

typedef struct res_chunk {
  struct res_chunk *next; /* the chunks allocated on their own */
  char *data;
  size_t cap, used;
} res_chunk;

struct dbp_result_s {
  size_t nrows, ncols;
  const dbp_column *cols;
  int64_t affected;
  size_t bytes; /* value bytes held (the NULs not counted) */

  /* Row i's record: its ncols value pointers, then ncols lengths. */
  char **rows;
  size_t rows_cap;
  char *rows_inline[RES_INLINE_ROWS];

  res_chunk *cur;   /* where the next record goes */
  res_chunk *extra; /* every chunk but `first`, newest first */
  size_t next_cap;  /* the size of the next shared chunk */
  res_chunk first;  /* its data follows the struct in the same block */
};

_Static_assert(sizeof(struct dbp_result_s) + 256 <= RES_FIRST_BLOCK,
               "the first chunk must have room for a small result");

static size_t align_up(size_t n) {
  return (n + (RES_ALIGN - 1)) & ~(RES_ALIGN - 1);
}

/* Room for n bytes at RES_ALIGN, or NULL when out of memory. */
static void *res_alloc(dbp_result *r, size_t n) {
  res_chunk *ch = r->cur;
  size_t at = align_up(ch->used);
  if (at <= ch->cap && n <= ch->cap - at) {
    ch->used = at + n;
    return ch->data + at;
  }
  /* A new chunk: the next shared size, or exactly n for a bigger record
   * (which then leaves the current chunk current). */
  bool own = n > r->next_cap;
  size_t cap = own ? n : r->next_cap;
  if (cap > SIZE_MAX - sizeof(res_chunk)) return NULL;
  res_chunk *nc = malloc(sizeof(res_chunk) + cap);
  if (nc == NULL) return NULL;
  nc->data = (char *)(nc + 1);
  nc->cap = cap;
  nc->used = n;
  nc->next = r->extra;
  r->extra = nc;
  if (!own) {
    r->cur = nc;
    if (r->next_cap < RES_CHUNK_MAX) r->next_cap *= 2;
  }
  return nc->data;
}

/* A copy of s in the chunks (NULL stays NULL); *ok goes false when out of
 * memory. */
static const char *res_strdup(dbp_result *r, const char *s, bool *ok) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *p = res_alloc(r, n);
  if (p == NULL) {
    *ok = false;
    return NULL;
  }
  memcpy(p, s, n);
  return p;
}

dbp_result *dbp__result_new(void) {
  dbp_result *r = malloc(RES_FIRST_BLOCK);
  if (r == NULL) return NULL;
  memset(r, 0, sizeof *r);
  r->rows = r->rows_inline;
  r->rows_cap = RES_INLINE_ROWS;
  r->first.data = (char *)(r + 1);
  r->first.cap = RES_FIRST_BLOCK - sizeof *r;
  r->cur = &r->first;
  r->next_cap = RES_CHUNK_MIN;
  return r;
}

int dbp__result_set_columns(dbp_result *r, size_t n, const dbp_column *cols) {
  if (r == NULL || r->nrows > 0 || (n > 0 && cols == NULL)) return DBP_EINVAL;
  if (n > SIZE_MAX / sizeof(dbp_column)) return DBP_ENOMEM;
  dbp_column *out = NULL;
  if (n > 0) {
    out = res_alloc(r, n * sizeof *out);
    if (out == NULL) return DBP_ENOMEM;
  }
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    out[i] = cols[i];
    out[i].name = res_strdup(r, cols[i].name, &ok);
    out[i].db_type = res_strdup(r, cols[i].db_type, &ok);
  }
  if (!ok) return DBP_ENOMEM; /* what was taken stays in the chunks, unused */
  r->cols = out;
  r->ncols = n;
  return 0;
}

/* Makes room in the index for one more row. */
static int res_index_grow(dbp_result *r) {
  if (r->nrows < r->rows_cap) return 0;
  if (r->rows_cap > SIZE_MAX / 2 / sizeof(char *)) return DBP_ENOMEM;
  size_t cap = r->rows_cap * 2;
  char **rows;
  if (r->rows == r->rows_inline) {
    rows = malloc(cap * sizeof *rows);
    if (rows != NULL) memcpy(rows, r->rows_inline, sizeof r->rows_inline);
  } else {
    rows = realloc(r->rows, cap * sizeof *rows);
  }
  if (rows == NULL) return DBP_ENOMEM;
  r->rows = rows;
  r->rows_cap = cap;
  return 0;
}

int dbp__result_add_row(dbp_result *r, const dbp_row *row, size_t max_bytes) {
  if (r == NULL || row == NULL || row->ncols != r->ncols) return DBP_EINVAL;
  size_t n = r->ncols;
  if (n > 0 && (row->vals == NULL || row->lens == NULL)) return DBP_EINVAL;
  if (max_bytes == 0) max_bytes = DBP__RESULT_MAX_BYTES;
  /* The values' bytes against the bound, then the record's size. */
  size_t bytes = 0, nuls = 0;
  for (size_t i = 0; i < n; i++) {
    if (row->vals[i] == NULL) continue;
    if (row->lens[i] > SIZE_MAX - bytes) return DBP_ETOOBIG;
    bytes += row->lens[i];
    nuls++;
  }
  if (bytes > max_bytes || r->bytes > max_bytes - bytes) return DBP_ETOOBIG;
  size_t arrays = sizeof(const char *) + sizeof(size_t);
  if (n > (SIZE_MAX / 2) / arrays || bytes + nuls > SIZE_MAX / 2) return DBP_ENOMEM;
  size_t head = n * arrays;
  if (res_index_grow(r) != 0) return DBP_ENOMEM;
  char *rec = res_alloc(r, head + bytes + nuls);
  if (rec == NULL) return DBP_ENOMEM;
  const char **vals = (const char **)(void *)rec;
  size_t *lens = (size_t *)(void *)(rec + n * sizeof(const char *));
  char *p = rec + head;
  for (size_t i = 0; i < n; i++) {
    if (row->vals[i] == NULL) {
      vals[i] = NULL;
      lens[i] = 0;
      continue;
    }
    size_t len = row->lens[i];
    if (len > 0) memcpy(p, row->vals[i], len);
    p[len] = '\0';
    vals[i] = p;
    lens[i] = len;
    p += len + 1;
  }
  r->rows[r->nrows++] = rec;
  r->bytes += bytes;
  return 0;
}

void dbp__result_set_affected(dbp_result *r, int64_t n) {
  if (r != NULL) r->affected = n;
}

/* ---- the accessors ---- */

size_t dbp_result_nrows(const dbp_result *r) {
  return r != NULL ? r->nrows : 0;
}

size_t dbp_result_ncols(const dbp_result *r) {
  return r != NULL ? r->ncols : 0;
}

const dbp_column *dbp_result_column(const dbp_result *r, size_t col) {
  if (r == NULL || col >= r->ncols) return NULL;
  return &r->cols[col];
}

static const char *const *row_vals(const dbp_result *r, size_t row) {
  return (const char *const *)(void *)r->rows[row];
}

static const size_t *row_lens(const dbp_result *r, size_t row) {
  return (const size_t *)(void *)(r->rows[row] + r->ncols * sizeof(const char *));
}

const char *dbp_result_value(const dbp_result *r, size_t row, size_t col, size_t *len) {
  if (len != NULL) *len = 0;
  if (r == NULL || row >= r->nrows || col >= r->ncols) return NULL;
  if (len != NULL) *len = row_lens(r, row)[col];
  return row_vals(r, row)[col];
}

int dbp_result_row(const dbp_result *r, size_t row, dbp_row *out) {
  if (out == NULL) return DBP_EINVAL;
  out->ncols = 0;
  out->vals = NULL;
  out->lens = NULL;
  if (r == NULL || row >= r->nrows) return DBP_EINVAL;
  out->ncols = r->ncols;
  out->vals = row_vals(r, row);
  out->lens = row_lens(r, row);
  return 0;
}

int64_t dbp_result_affected(const dbp_result *r) {
  return r != NULL ? r->affected : 0;
}

void dbp_result_free(dbp_result *r) {
  if (r == NULL) return;
  for (res_chunk *ch = r->extra, *next; ch != NULL; ch = next) {
    next = ch->next;
    free(ch);
  }
  if (r->rows != r->rows_inline) free(r->rows);
  free(r);
}

/* ---- one call: a query's rows into a result ---- */

int dbp_query_all(dbp_conn *c, const char *sql, size_t nparams, const dbp_param *params,
                  int64_t timeout_ms, size_t max_bytes, dbp_result **out) {
  if (out == NULL) return DBP_EINVAL;
  *out = NULL;
  if (c == NULL || sql == NULL || (nparams > 0 && params == NULL)) return DBP_EINVAL;
  if (max_bytes == 0) max_bytes = DBP__RESULT_MAX_BYTES;
  /* Taken first, so that running out of memory sends nothing. */
  dbp_result *r = dbp__result_new();
  if (r == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  /* The query's timeout covers its rows too (db.h), so the whole call is
   * under the one deadline dbp_query sets: the fetches take none. */
  c->any_result = true;
  c->no_rows_affected = -1;
  int rc = dbp_query(c, sql, nparams, params, timeout_ms);
  c->any_result = false;
  if (rc != 0) {
    dbp_result_free(r);
    return rc;
  }
  if (c->no_rows_affected >= 0) {
    /* A statement without a result set: no columns, no rows, its count. */
    dbp__result_set_affected(r, c->no_rows_affected);
    *out = r;
    return 0;
  }
  rc = dbp__result_set_columns(r, dbp_ncols(c), dbp_columns(c));
  dbp_row row;
  int got = 0; /* the last fetch's outcome */
  while (rc == 0 && (got = dbp_fetch(c, &row)) == 1) rc = dbp__result_add_row(r, &row, max_bytes);
  if (rc != 0) {
    /* The builder refused (too big, out of memory): the rest is dropped
     * and the connection brought back to idle. */
    int closed = dbp_query_close(c);
    char what[160];
    if (rc == DBP_ETOOBIG)
      snprintf(what, sizeof what, "the result holds more than %zu bytes of values", max_bytes);
    else
      snprintf(what, sizeof what, "could not hold the result: %s", dbp_strerror(rc));
    if (closed != 0) {
      char why[sizeof c->err.message];
      memcpy(why, c->err.message, sizeof why);
      dbp__seterr(c, rc, NULL, 0, false, "%s, and abandoning the rest of it failed: %s", what, why);
    } else {
      dbp__seterr(c, rc, NULL, 0, false, "%s%s", what,
                  rc == DBP_ETOOBIG ? " (read it row by row with dbp_query and dbp_fetch)" : "");
    }
    dbp_result_free(r);
    return rc;
  }
  if (got < 0) { /* the query failed on the way, and is over */
    dbp_result_free(r);
    return got;
  }
  dbp__result_set_affected(r, (int64_t)r->nrows);
  *out = r;
  return 0;
}
