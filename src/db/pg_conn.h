/* Internal: the PostgreSQL driver's connection, shared by pg.c (the
 * statements and the driver table) and pg_connect.c (connecting). Not
 * installed. */
#ifndef DBPIPE_DB_PG_CONN_H
#define DBPIPE_DB_PG_CONN_H

#include <libpq-fe.h>

#include "db/drvkit.h"

/* A statement prepared on the server under a name of ours, kept by its
 * SQL text (and parameter count) so that a repeated statement skips parse
 * and plan. The cache (pg_stmt.c) owns the entries it lists; `users`
 * counts the statements in flight that use one, so that an entry dropped
 * from the cache while in use lives until the last of them is answered. */
typedef struct pg_stmt pg_stmt;
struct pg_stmt {
  pg_stmt *hnext; /* the next entry of its hash bucket */
  char *sql;
  size_t len;
  uint64_t hash;
  int nparams;
  uint64_t used;  /* the cache clock at the last use, for LRU */
  unsigned users; /* statements in flight that use it */
  bool listed;    /* in the cache (else dropped, freed at users 0) */
  bool prepared;  /* its Parse went out (else only seen once so far) */
  bool failed;    /* the server refused to prepare it: err says why */
  dbp_dberr err;
  char name[24]; /* "dbpipe_s<n>" */
};

#define DBP__PG_STMT_CACHE 256
#define DBP__PG_STMT_BUCKETS 512

typedef struct pg_stmts {
  pg_stmt **tab; /* DBP__PG_STMT_BUCKETS buckets, allocated on first use */
  size_t n;
  uint64_t clock;
  uint64_t next_id;
} pg_stmts;

typedef struct pg_conn {
  dbp_conn base;
  PGconn *pg;
  PGresult *pending;  /* the first row, read by query, handed out by fetch */
  PGresult *row;      /* the result holding the row handed out last */
  char *copy_buf;     /* libpq's buffer handed out by copy_read */
  bool in_copy;       /* the server is sending COPY data */
  size_t nbytes;      /* bytea columns of the current result ... */
  size_t *bytes_cols; /* ... and their indexes */
  size_t bytes_cap;
  char *scratch; /* NUL-terminated copies of parameters */
  size_t scratch_cap;
  dbp_buf bytea;     /* the decoded bytea values of the row handed out */
  bool cancel_stuck; /* a cancel request was left running on the thread pool */
  pg_stmts stmts;    /* statements kept prepared on this session */
  pg_stmt *sent;     /* the cached statement the running call executes */
} pg_conn;

#define PG(c) ((pg_conn *)(c))

/* ---- pg_stmt.c: the statement cache ---- */

/* The kept statement for (sql, nparams), marked used, or NULL. */
pg_stmt *dbp__pg_stmt_find(pg_conn *p, const char *sql, size_t len, int nparams);
/* The same with the text's dbp__sql_hash known already. */
pg_stmt *dbp__pg_stmt_find_hashed(pg_conn *p, const char *sql, size_t len, int nparams,
                                  uint64_t text_hash);
/* A new entry for (sql, nparams) with a fresh name, listed, not yet
 * prepared: the caller prepares it on the server (now, or when it comes
 * again). When the cache is full its least recently
 * used entry is dropped first and returned in *evicted (else NULL): the
 * caller deallocates it on the server and then calls dbp__pg_stmt_unref on
 * it. NULL when out of memory. */
pg_stmt *dbp__pg_stmt_add(pg_conn *p, const char *sql, size_t len, int nparams, pg_stmt **evicted);
/* Takes an entry out of the cache (its prepare failed, say); it is freed
 * once no statement in flight uses it. */
void dbp__pg_stmt_drop(pg_conn *p, pg_stmt *s);
/* One user fewer; frees a dropped entry at zero. An evicted entry comes
 * back with one reference held for the caller. */
void dbp__pg_stmt_unref(pg_stmt *s);
/* The server forgot every prepared statement (DISCARD ALL, a new
 * session): empties the cache. */
void dbp__pg_stmt_forget_all(pg_conn *p);
/* True when a statement's error says the cached statement it executed is
 * gone from the server (26000, after a DEALLOCATE or DISCARD behind our
 * back) or its plan no longer fits the tables (0A000 "cached plan must not
 * change result type", after DDL): the caller drops the entry and runs the
 * statement again, once. */
bool dbp__pg_stmt_stale(const dbp_dberr *e);
/* Frees the cache (closing the connection). */
void dbp__pg_stmt_free_all(pg_conn *p);

/* ---- pg.c, for the pipeline (pipeline.c) ---- */

/* Fills *e from an error result (as the driver records its own errors:
 * code, SQLSTATE, retryable, message with `secret` scrubbed) and returns
 * the code; DBP_ECONNLOST when the session is over. */
int dbp__pg_error_of(PGconn *pg, const PGresult *res, const char *secret, dbp_dberr *e);
/* The bytes dbp__pg_text_params needs for n parameters. *nul_at gets 1
 * plus the index of the first value that holds a NUL byte, which
 * PostgreSQL text cannot hold (DBP__PG_NUL_PARAM, SQLSTATE 22021), else 0. */
size_t dbp__pg_text_params_size(const dbp_param *params, size_t n, size_t *nul_at);
#define DBP__PG_NUL_PARAM \
  "parameter $%zu contains a NUL byte, which PostgreSQL text cannot hold (send bytea as \\x hex)"
/* Copies n text parameters NUL-terminated into scratch (room for each
 * value's length plus one) and points vals[i] at them (NULL for SQL
 * NULL): libpq reads text parameters as C strings. */
void dbp__pg_text_params(const dbp_param *params, size_t n, char *scratch, const char **vals);
/* The database type name of a column of type `oid` ("int4"; "oid:N" in
 * buf for types outside the built-in table) and its normalized type. */
const char *dbp__pg_type_name(uint32_t oid, dbp_type *type, char buf[24]);
/* The row count of a command's result (PQcmdTuples), or `otherwise` when
 * the command reports none. */
int64_t dbp__pg_affected(const PGresult *res, int64_t otherwise);
/* Points vals/lens at row t of res (NULL for SQL NULL), with the bytea
 * columns bytes_cols[0..nbytes) decoded into b. 0 or DBP_ENOMEM. */
int dbp__pg_row(const PGresult *res, int t, size_t n, const size_t *bytes_cols, size_t nbytes,
                dbp_buf *b, const char **vals, size_t *lens);
/* Decodes the text form of a bytea value into out (room for len bytes).
 * Returns the decoded length. */
size_t dbp__pg_bytea_decode(char *out, const char *v, size_t len);
/* Asks the server to cancel what runs on c, waiting at most until
 * `deadline` (loop ms, -1 none). 0 when the server took the request. */
int dbp__pg_send_cancel(dbp_conn *c, int64_t deadline);

/* Starts libpq's connect to `addr` (or the DSN's host when "") and polls it
 * to the end (the driver's connect). */
int dbp__pg_connect(dbp_conn *c, const char *addr);

#endif /* DBPIPE_DB_PG_CONN_H */
