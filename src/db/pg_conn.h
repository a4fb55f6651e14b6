/* Internal: the PostgreSQL driver's connection, shared by pg.c (the
 * statements and the driver table) and pg_connect.c (connecting). Not
 * installed. */
#ifndef DBPIPE_DB_PG_CONN_H
#define DBPIPE_DB_PG_CONN_H

#include <libpq-fe.h>

#include "db/drvkit.h"

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
} pg_conn;

#define PG(c) ((pg_conn *)(c))

/* Starts libpq's connect to `addr` (or the DSN's host when "") and polls it
 * to the end (the driver's connect). */
int dbp__pg_connect(dbp_conn *c, const char *addr);

#endif /* DBPIPE_DB_PG_CONN_H */
