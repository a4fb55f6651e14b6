/* Prepared statements: the MySQL/MariaDB driver runs a statement with
 * parameters as a server-side prepared statement (real binding, nothing is
 * spliced into the SQL). Its result comes in the binary protocol and is
 * converted back to text by binding every result column as a string.
 *
 * Prepared statements are kept per connection for reuse (the statement
 * cache): a statement run again with the same SQL text is only executed,
 * with no prepare and no close, so a bound point query costs one round trip
 * like a text query. A statement goes back to the cache only when it
 * finished cleanly (its result read to the end, nothing pending); on any
 * error, interruption or abandoned result it is closed instead.
 */
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdlib.h>
#include <string.h>

#include "db/mysql_conn.h"

/* ---- the statement cache ---- */

static uint64_t sql_hash(const char *sql, size_t len) {
  uint64_t h = 14695981039346656037u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)sql[i]) * 1099511628211u;
  return h;
}

/* The kept statement for sql[0..len) with hash h, or NULL. */
static my_cached *cache_find(my_conn *p, const char *sql, size_t len, uint64_t h) {
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql != NULL && e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) return e;
  }
  return NULL;
}

/* Empties slot e. Its handle now belongs to whoever took it. */
static void cache_forget(my_cached *e) {
  free(e->sql);
  memset(e, 0, sizeof *e);
}

/* A free slot, or NULL when all are taken (*lru then names the least
 * recently used one). */
static my_cached *cache_slot(my_conn *p, my_cached **lru) {
  my_cached *old = NULL;
  *lru = NULL;
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql == NULL) return e;
    if (old == NULL || e->used < old->used) old = e;
  }
  *lru = old;
  return NULL;
}

/* Makes the freshly prepared statement in use (p->stmt, not yet kept) a
 * kept one under sql[0..len), in slot e. When the text cannot be copied
 * the statement simply stays unkept and is closed after use. */
static void cache_keep(my_conn *p, my_cached *e, const char *sql, size_t len, uint64_t h) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return;
  memcpy(copy, sql, len);
  copy[len] = '\0';
  e->sql = copy;
  e->len = len;
  e->hash = h;
  e->stmt = p->stmt;
  e->used = ++p->clock;
  p->cur = e;
}

/* ---- the statement in use ---- */

/* Closes the prepared statement in use (which reads any rows still
 * pending) and forgets its metadata; a kept statement leaves the cache.
 * Closing sends COM_STMT_CLOSE, which the server never answers, so this
 * waits only when the socket cannot take a few bytes. Returns 0 or a
 * wait's code (the close then stays pending for the clean-up). */
int dbp__my_stmt_close(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->meta != NULL) {
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  if (p->cur != NULL) {
    cache_forget(p->cur);
    p->cur = NULL;
  }
  if (p->stmt == NULL) return 0;
  return dbp__my_drive(c, &dbp__my_sclose_op); /* forgets the statement when done */
}

/* Ends the use of the statement in use after it finished cleanly: a kept
 * statement whose result was read to the end, with nothing else pending
 * on the session, stays prepared for the next execution; any other is
 * closed (dbp__my_stmt_close). Returns 0 or a wait's code. */
int dbp__my_stmt_done(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->cur == NULL || p->m->status != MYSQL_STATUS_READY || mysql_stmt_more_results(p->stmt))
    return dbp__my_stmt_close(c);
  if (p->meta != NULL) {
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  p->cur->used = ++p->clock;
  p->cur = NULL;
  p->stmt = NULL;
  return 0;
}

/* Prepares `sql` as a server-side statement. */
int dbp__my_prepare(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  p->stmt = mysql_stmt_init(p->m);
  if (p->stmt == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
  p->arg.sql = sql;
  p->arg.len = strlen(sql);
  int rc = dbp__my_drive(c, &dbp__my_prepare_op);
  if (rc != 0) return dbp__my_stop(c, rc);
  if (p->ret_int != 0) return dbp__my_fail(c, dbp__my_stmt_err(c));
  return 0;
}

/* Makes a prepared statement for sql[0..len) the one in use: the kept
 * one when there is one (*reused set), else a fresh prepare that is kept
 * for next time, making room by closing the least recently used one.
 * Returns 0 or an error (the connection is then idle or broken). */
static int my_stmt_get(dbp_conn *c, const char *sql, size_t len, bool *reused) {
  my_conn *p = MY(c);
  uint64_t h = sql_hash(sql, len);
  my_cached *e = cache_find(p, sql, len, h);
  *reused = e != NULL;
  if (e != NULL) {
    p->stmt = e->stmt;
    p->cur = e;
    e->used = ++p->clock;
    return 0;
  }
  my_cached *lru = NULL;
  e = len <= MY_STMT_CACHE_SQL_MAX ? cache_slot(p, &lru) : NULL;
  if (lru != NULL) {
    /* Evict now rather than later: closing is one unanswered packet, so
     * deferring it would save no round trip, only add state. */
    p->stmt = lru->stmt;
    p->cur = lru;
    int rc = dbp__my_stmt_close(c);
    if (rc != 0) return dbp__my_stop(c, rc);
    e = lru;
  }
  int rc = dbp__my_prepare(c, sql);
  if (rc != 0) return rc;
  if (e != NULL) cache_keep(p, e, sql, len, h);
  return 0;
}

/* True when two extended metadata attributes differ. */
static bool attr_differs(const MYSQL_FIELD *a, const MYSQL_FIELD *b,
                         enum mariadb_field_attr_t which) {
  MARIADB_CONST_STRING x = dbp__my_field_attr(a, which), y = dbp__my_field_attr(b, which);
  return x.length != y.length || memcmp(x.str, y.str, x.length) != 0;
}

/* True when the result metadata of the execution that just ran (in
 * mysql->fields: what the server sent, or a copy of the statement's own)
 * differs from the statement's own metadata. The server sends metadata
 * with an execution when the statement was re-prepared after DDL, and the
 * library then updates the statement's copy only in part (types, not
 * names or extended types), so a difference means the kept statement is
 * outdated. */
static bool meta_changed(const my_conn *p) {
  const MYSQL_STMT *s = p->stmt;
  const MYSQL *m = p->m;
  if (s->field_count == 0 || m->fields == NULL || m->field_count != s->field_count) return false;
  for (unsigned i = 0; i < s->field_count; i++) {
    const MYSQL_FIELD *a = &m->fields[i], *b = &s->fields[i];
    if (a->type != b->type || a->charsetnr != b->charsetnr || a->name_length != b->name_length ||
        memcmp(a->name, b->name, a->name_length) != 0 ||
        attr_differs(a, b, MARIADB_FIELD_ATTR_FORMAT_NAME) ||
        attr_differs(a, b, MARIADB_FIELD_ATTR_DATA_TYPE_NAME))
      return true;
  }
  return false;
}

/* Binds the n text parameters (NULL pointer = SQL NULL) to the statement
 * in use and executes it. Returns 0 (its result is pending); 1 when
 * `reused` and the kept statement turned out outdated by a schema change
 * (ER_NEED_REPREPARE; a column count that changed: CR_NEW_STMT_METADATA;
 * or new result metadata from the server), the statement still in use
 * with any result pending; or an error, the statement then ended and the
 * connection idle or broken. */
static int my_stmt_exec(dbp_conn *c, size_t n, const dbp_param *params, bool reused) {
  my_conn *p = MY(c);
  unsigned long want = mysql_stmt_param_count(p->stmt);
  if (want != n)
    return dbp__my_fail(c, dbp__seterr(c, DBP_EINVAL, "07001", 0, false,
                                       "the statement has %lu placeholders but %zu parameters were "
                                       "given",
                                       want, n));
  if (n > p->pcap) {
    MYSQL_BIND *grown = realloc(p->pbind, n * sizeof *grown);
    if (grown == NULL)
      return dbp__my_fail(c, dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory"));
    p->pbind = grown;
    p->pcap = n;
  }
  memset(p->pbind, 0, n * sizeof *p->pbind);
  for (size_t i = 0; i < n; i++) {
    MYSQL_BIND *b = &p->pbind[i];
    if (params[i].val == NULL) {
      b->buffer_type = MYSQL_TYPE_NULL;
    } else {
      /* A string parameter in the connection's character set; the server
       * converts it to the column's type. The library only reads it. */
      b->buffer_type = MYSQL_TYPE_STRING;
      b->buffer = (void *)params[i].val;
      b->buffer_length = (unsigned long)params[i].len;
    }
  }
  if (mysql_stmt_bind_param(p->stmt, p->pbind)) return dbp__my_fail(c, dbp__my_stmt_err(c));
  int rc = dbp__my_drive(c, &dbp__my_execute_op);
  if (rc != 0) return dbp__my_stop(c, rc);
  if (p->ret_int != 0) {
    unsigned e = mysql_stmt_errno(p->stmt);
    if (reused && (e == ER_NEED_REPREPARE || e == CR_NEW_STMT_METADATA)) return 1;
    return dbp__my_fail(c, dbp__my_stmt_err(c));
  }
  if (reused && meta_changed(p)) return 1;
  return 0;
}

/* Prepares (or reuses), binds and executes. The statement stays in
 * p->stmt with its result pending. A kept statement found outdated is
 * closed and the text prepared afresh, once: the second pass never reuses,
 * as the outdated statement has left the cache. */
int dbp__my_stmt_start(dbp_conn *c, const char *sql, size_t n, const dbp_param *params) {
  size_t len = strlen(sql);
  for (;;) {
    bool reused = false;
    int rc = my_stmt_get(c, sql, len, &reused);
    if (rc != 0) return rc;
    rc = my_stmt_exec(c, n, params, reused);
    if (rc != 1) return rc;
    /* Closing reads whatever result is pending. */
    if ((rc = dbp__my_stmt_close(c)) != 0) return dbp__my_stop(c, rc);
  }
}

/* Binds every result column of the statement as a string buffer. */
int dbp__my_stmt_bind(dbp_conn *c) {
  my_conn *p = MY(c);
  for (size_t i = 0; i < c->ncols; i++) {
    if (p->rsize[i] == 0) {
      size_t want = 256;
      char *b = malloc(want);
      if (b == NULL) return dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory");
      free(p->rbuf[i]);
      p->rbuf[i] = b;
      p->rsize[i] = want;
    }
    MYSQL_BIND *b = &p->rbind[i];
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = p->rbuf[i];
    b->buffer_length = (unsigned long)p->rsize[i];
    b->length = &p->rlen[i];
    b->is_null = &p->rnull[i];
    b->error = &p->rerr[i];
  }
  if (mysql_stmt_bind_result(p->stmt, p->rbind)) return dbp__my_stmt_err(c);
  return 0;
}

/* Reads the next row of the statement into c's arrays. Returns 1, 0 at
 * the end (statement closed), or an error. */
int dbp__my_stmt_row(dbp_conn *c, dbp_row *row) {
  my_conn *p = MY(c);
  int rc = dbp__my_drive(c, &dbp__my_sfetch_op);
  if (rc != 0) return dbp__my_stop(c, rc);
  if (p->ret_int == MYSQL_NO_DATA) {
    rc = dbp__my_stmt_done(c);
    if (rc != 0) return dbp__my_stop(c, rc);
    return 0;
  }
  if (p->ret_int != 0 && p->ret_int != MYSQL_DATA_TRUNCATED)
    return dbp__my_fail(c, dbp__my_stmt_err(c));
  bool rebind = false;
  for (size_t i = 0; i < c->ncols; i++) {
    if (p->rnull[i]) {
      c->vals[i] = NULL;
      c->lens[i] = 0;
      continue;
    }
    size_t len = p->rlen[i];
    if (len > p->rsize[i]) {
      /* The value did not fit: grow the buffer, fetch the column again. */
      char *b = realloc(p->rbuf[i], len + 1);
      if (b == NULL)
        return dbp__my_fail(c, dbp__seterr(c, DBP_ENOMEM, NULL, 0, false, "out of memory"));
      p->rbuf[i] = b;
      p->rsize[i] = len + 1;
      MYSQL_BIND one;
      unsigned long got = 0;
      my_bool isnull = 0, err = 0;
      memset(&one, 0, sizeof one);
      one.buffer_type = MYSQL_TYPE_STRING;
      one.buffer = b;
      one.buffer_length = (unsigned long)(len + 1);
      one.length = &got;
      one.is_null = &isnull;
      one.error = &err;
      if (mysql_stmt_fetch_column(p->stmt, &one, (unsigned)i, 0))
        return dbp__my_fail(c, dbp__my_stmt_err(c));
      len = got;
      rebind = true;
    }
    c->vals[i] = p->rbuf[i];
    c->lens[i] = len;
  }
  if (rebind && (rc = dbp__my_stmt_bind(c)) != 0) return dbp__my_fail(c, rc);
  dbp__my_convert(c);
  dbp__row_out(c, row);
  return 1;
}

void dbp__my_stmt_free(my_conn *p) {
  /* The session is gone or was reset, which detaches every statement
   * handle: closing them only frees memory, with nothing sent. */
  if (p->meta != NULL) {
    p->meta->handle = NULL;
    mysql_free_result(p->meta);
    p->meta = NULL;
  }
  if (p->stmt != NULL && p->cur == NULL) mysql_stmt_close(p->stmt);
  p->stmt = NULL;
  p->cur = NULL;
  for (size_t i = 0; i < MY_STMT_CACHE; i++) {
    my_cached *e = &p->cache[i];
    if (e->sql == NULL) continue;
    mysql_stmt_close(e->stmt);
    free(e->sql);
    memset(e, 0, sizeof *e);
  }
}
