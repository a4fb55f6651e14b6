/* Internal: the MySQL/MariaDB driver's connection and what its files share
 * (mysql.c: statements and the driver table; mysql_call.c: running the
 * library's nonblocking calls; mysql_connect.c: connecting, TLS, the side
 * session for KILL; mysql_stmt.c: prepared statements and their cache;
 * types.c: the column type mapping). Not installed. */
#ifndef DBPIPE_DB_MYSQL_CONN_H
#define DBPIPE_DB_MYSQL_CONN_H

#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/drvkit.h"
#include "db/mysql_opts.h"

/* How a column's values are turned into dbpipe's form. */
enum { DBP__MY_CONV_NONE = 0, DBP__MY_CONV_BIT1 = 1 };

/* How many prepared statements a connection keeps for reuse, and the
 * longest SQL text worth keeping (longer statements are prepared and
 * closed every time, as they are rarely repeated verbatim). */
#define MY_STMT_CACHE 16
#define MY_STMT_CACHE_SQL_MAX 8192

/* One kept statement: its SQL text (the key) and handle. */
typedef struct my_cached {
  char *sql; /* malloc'd; NULL = free slot */
  size_t len;
  uint64_t hash;
  MYSQL_STMT *stmt;
  uint64_t used; /* the cache clock at the last use, for LRU */
} my_cached;

typedef struct my_conn my_conn;

/* One nonblocking libmariadb call as its two halves. `start` makes the
 * _start call with the arguments in p->arg, `cont` the _cont call with the
 * events that happened; both store the call's result in the same place of
 * p and return the library's status (0 = finished). `done` (may be NULL)
 * runs once the call finished, to forget what it freed. */
typedef struct my_op {
  int (*start)(my_conn *p);
  int (*cont)(my_conn *p, int ev);
  void (*done)(my_conn *p);
} my_op;

extern const my_op dbp__my_connect_op, dbp__my_query_op, dbp__my_fetch_op, dbp__my_free_op,
    dbp__my_next_op, dbp__my_prepare_op, dbp__my_execute_op, dbp__my_sfetch_op, dbp__my_sclose_op,
    dbp__my_ping_op, dbp__my_reset_op;

struct my_conn {
  dbp_conn base;
  MYSQL *m;
  unsigned long thread_id;

  /* The nonblocking call in progress (op != NULL) and its status. */
  const my_op *op;
  int op_status;
  /* The arguments of the call being started ... */
  struct {
    const char *sql, *host, *user, *db, *sock;
    size_t len;
    unsigned port;
  } arg;
  /* ... and where the calls put their results. */
  int ret_int;
  my_bool ret_bool;
  MYSQL *ret_mysql;
  MYSQL_ROW ret_row;

  MYSQL_RES *res;   /* the text-protocol result being streamed */
  MYSQL_STMT *stmt; /* the prepared statement in use */
  my_cached *cur;   /* the cache slot that stmt belongs to, or NULL */
  MYSQL_RES *meta;  /* its result metadata */

  /* Prepared statements kept for reuse; in use while p->cur points at
   * one. Every handle here is owned by the cache. */
  my_cached cache[MY_STMT_CACHE];
  uint64_t clock;

  unsigned char *conv; /* per column: DBP__MY_CONV_* */
  /* The parameters of the execution being sent: scratch space kept for
   * the connection's life (the library copies them when they are bound),
   * pcap entries allocated. */
  MYSQL_BIND *pbind;
  size_t pcap;
  /* Result buffers of a prepared statement, one per column. */
  MYSQL_BIND *rbind;
  char **rbuf;
  size_t *rsize; /* bytes allocated at rbuf[i] */
  unsigned long *rlen;
  my_bool *rnull, *rerr;
  size_t rcap; /* columns the arrays above can hold */

  /* What the DSN asks for, and the password to log in with: the DSN's,
   * else the one ~/.my.cnf or MYSQL_PWD gives (malloc'd, wiped on close;
   * side sessions borrow their connection's). */
  dbp__my_opts opts;
  char *password;

  /* The connect in progress on this handle (see my_connect_step). */
  bool greeted;      /* the server's greeting was looked at */
  bool tls_named;    /* the DSN's host name replaced the address in target */
  bool limited;      /* the socket has its limits for the TLS handshake */
  int64_t limit_end; /* ... which end then (mono_ms) */
  const char *why;   /* why a TLS check refused the server */
  char target[256];  /* the host handed to the library */
};

#define MY(c) ((my_conn *)(c))

/* ---- mysql_call.c ---- */

/* Runs `op` on c's own session or a side session q, waiting through ws
 * until `deadline`, to the end. `connecting` marks a connect: the socket is
 * then checked by inode, and the TLS checks of dbp__my_connect_step run
 * between the steps. On an interruption the call stays pending in q->op /
 * q->op_status (to be finished by dbp__my_resume) and the wait's code is
 * returned; a failed TLS check returns DBP_ECONNECT. */
int dbp__my_run(dbp_conn *c, my_conn *q, dbp__watch *ws, int64_t deadline, const my_op *op,
                bool connecting);
/* dbp__my_run on c's own session under the statement's deadline. A
 * socket that vanished is recorded (DBP_ECONNLOST). */
int dbp__my_drive(dbp_conn *c, const my_op *op);
/* Starts op on c's session without waiting: 0 when it finished at once, 1
 * when it would wait (it then stays pending for dbp__my_resume). */
int dbp__my_try(dbp_conn *c, const my_op *op);
/* Finishes the pending call, if any. Returns 0 or a wait's code. */
int dbp__my_resume(dbp_conn *c);

/* ---- mysql_connect.c ---- */

int dbp__my_connect(dbp_conn *c, const char *addr);
/* The TLS checks between two steps of a connect on q (see there). */
int dbp__my_connect_step(dbp_conn *c, my_conn *q, int ev, int64_t deadline);
/* Runs KILL QUERY <id> (KILL <id> when `whole`) against c's session from
 * a side session within `deadline`. Records nothing in c->err. */
int dbp__my_kill(dbp_conn *c, int64_t deadline, bool whole);
/* The errno sets the driver sorts errors by. */
bool dbp__my_toomany_errno(unsigned e);
/* The SQLSTATE to report with error e: the server's, or NULL for the
 * library's own errors. */
const char *dbp__my_state(unsigned e, const char *state);

/* ---- mysql.c ---- */

/* Records the MySQL error e (errno, SQLSTATE, message) and returns its
 * code: DBP_ECONNLOST when the session is gone, else DBP_EQUERY (or
 * DBP_EPROTO when the library lost track of the protocol). */
int dbp__my_err(dbp_conn *c, unsigned e, const char *state, const char *msg);
/* dbp__my_err for the statement in use. */
int dbp__my_stmt_err(dbp_conn *c);
/* Fills c's column metadata from n fields. */
int dbp__my_columns(dbp_conn *c, const MYSQL_FIELD *fields, size_t n);
/* Applies the per-column conversions to the row in c's arrays. */
void dbp__my_convert(dbp_conn *c);
/* Handles a call that stopped with `why` (see there), and a statement
 * that failed with `err` already recorded (drained back to idle). */
int dbp__my_stop(dbp_conn *c, int why);
int dbp__my_fail(dbp_conn *c, int err);

/* ---- mysql_stmt.c ---- */

/* Prepares `sql` as a server-side statement, the one in use. */
int dbp__my_prepare(dbp_conn *c, const char *sql);
/* Prepares (or reuses a kept statement), binds the parameters and
 * executes: the statement stays in use with its result pending. Returns 0
 * or an error (the connection then idle or gone). */
int dbp__my_stmt_start(dbp_conn *c, const char *sql, size_t n, const dbp_param *params);
/* Binds every result column of the statement in use as a string buffer. */
int dbp__my_stmt_bind(dbp_conn *c);
/* Reads the next row of the statement in use. Returns 1, 0 at the end
 * (the statement then done), or an error. */
int dbp__my_stmt_row(dbp_conn *c, dbp_row *row);
/* Closes the statement in use (reading what is pending); a kept one
 * leaves the cache. Returns 0 or a wait's code. */
int dbp__my_stmt_close(dbp_conn *c);
/* Ends the use of the statement in use after it finished cleanly: kept
 * for reuse when it can be, else closed. Returns 0 or a wait's code. */
int dbp__my_stmt_done(dbp_conn *c);
/* Frees the statement handles and buffers without a word to the server
 * (the session is gone or going, or was reset: a reset detaches every
 * handle, as the server dropped the statements). */
void dbp__my_stmt_free(my_conn *p);

/* ---- types.c ---- */

/* The extended metadata attribute `which` of f ("json", "uuid"...), or an
 * empty string when the server sent none. */
MARIADB_CONST_STRING dbp__my_field_attr(const MYSQL_FIELD *f, enum mariadb_field_attr_t which);
/* Maps one field's metadata to a normalized type and a type name; sets
 * *conv (DBP__MY_CONV_*) for values that need converting. */
dbp_type dbp__my_field_type(const MYSQL_FIELD *f, const char **name, unsigned char *conv);

#endif /* DBPIPE_DB_MYSQL_CONN_H */
