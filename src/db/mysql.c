/* The MySQL/MariaDB driver, on libmariadb's nonblocking API: the driver
 * table's entries, error sorting, the text protocol and getting a session
 * back to idle. Its other parts: mysql_call.c runs every call as its
 * _start/_cont pair, mysql_connect.c connects (options, TLS, keepalive) and
 * runs the side session for KILL, mysql_stmt.c runs statements with
 * parameters as prepared statements with a cache, types.c maps the column
 * types.
 *
 * Statements without parameters use the text protocol with
 * mysql_use_result: rows stream one at a time with the server's own text
 * for every value. The session reset is COM_RESET_CONNECTION (my_reset).
 *
 * A call interrupted by a timeout or a cancellation leaves libmariadb in
 * the middle of an operation. conn.c's clean-up then runs my_abort: KILL
 * QUERY from a side session, finish that operation and drain what follows,
 * so the connection is idle again; if that fails the session is closed.
 */
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/mysql_conn.h"

/* ---- errors ---- */

static bool lost_errno(unsigned e) {
  return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == ER_CONNECTION_KILLED ||
         e == ER_SERVER_SHUTDOWN || e == CR_SERVER_LOST_EXTENDED || e == ER_NET_READ_ERROR ||
         e == ER_NET_READ_INTERRUPTED || e == ER_NET_ERROR_ON_WRITE || e == 4031;
}

static bool retryable_errno(unsigned e) {
  return lost_errno(e) || dbp__my_toomany_errno(e) || e == ER_LOCK_DEADLOCK ||
         e == ER_LOCK_WAIT_TIMEOUT;
}

int dbp__my_err(dbp_conn *c, unsigned e, const char *state, const char *msg) {
  if (e == 0) {
    e = CR_UNKNOWN_ERROR;
    if (msg == NULL || !*msg) msg = "unknown error";
  }
  state = dbp__my_state(e, state);
  if (lost_errno(e)) return dbp__err_lost(c, state, (int)e, msg);
  int code = e == CR_COMMANDS_OUT_OF_SYNC ? DBP_EPROTO : DBP_EQUERY;
  return dbp__seterr(c, code, state, (int)e, retryable_errno(e), "%s", msg);
}

static int my_conn_err(dbp_conn *c) {
  MYSQL *m = MY(c)->m;
  return dbp__my_err(c, mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
}

int dbp__my_stmt_err(dbp_conn *c) {
  MYSQL_STMT *s = MY(c)->stmt;
  /* An error the server sends while the rows are read (a subquery of
   * several rows, say) reaches the connection, not the statement, when the
   * fetch runs through the nonblocking API: take it from there. */
  if (mysql_stmt_errno(s) == 0 && mysql_errno(MY(c)->m) != 0)
    return dbp__my_err(c, mysql_errno(MY(c)->m), mysql_sqlstate(MY(c)->m), mysql_error(MY(c)->m));
  return dbp__my_err(c, mysql_stmt_errno(s), mysql_stmt_sqlstate(s), mysql_stmt_error(s));
}

/* ---- closing ---- */

static void my_close(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->res != NULL) {
    /* Freeing an unfinished streamed result would read the rest of it;
     * detach it so only memory is freed. */
    p->res->handle = NULL;
    mysql_free_result(p->res);
    p->res = NULL;
  }
  if (p->m != NULL) {
    /* mysql_close sends COM_QUIT (a few bytes that fit any socket buffer)
     * and never waits for an answer. It also detaches every statement of
     * the connection, so closing the statement afterwards only frees it. */
    mysql_close(p->m);
    p->m = NULL;
  }
  if (p->password != NULL) {
    volatile char *s = p->password;
    while (*s) *s++ = '\0';
    free(p->password);
    p->password = NULL;
  }
  dbp__my_stmt_free(p);
  p->op = NULL;
  free(p->pbind);
  p->pbind = NULL;
  p->pcap = 0;
  for (size_t i = 0; i < p->rcap; i++) free(p->rbuf[i]);
  free(p->rbind);
  free(p->rbuf);
  free(p->rlen);
  free(p->rnull);
  free(p->rerr);
  free(p->rsize);
  free(p->conv);
  p->rsize = NULL;
  p->rbind = NULL;
  p->rbuf = NULL;
  p->rlen = NULL;
  p->rnull = p->rerr = NULL;
  p->conv = NULL;
  p->rcap = 0;
}

int dbp__my_columns(dbp_conn *c, const MYSQL_FIELD *fields, size_t n) {
  my_conn *p = MY(c);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += fields[i].name_length + 1 + 24;
  int rc = dbp__cols_begin(c, n, bytes);
  if (rc == 0 && n > p->rcap) {
    /* Grow every per-column array together; rcap counts what all hold. */
    unsigned char *cv = realloc(p->conv, n);
    if (cv != NULL) p->conv = cv;
    MYSQL_BIND *b = realloc(p->rbind, n * sizeof *b);
    if (b != NULL) p->rbind = b;
    char **rb = realloc(p->rbuf, n * sizeof *rb);
    if (rb != NULL) {
      p->rbuf = rb;
      for (size_t i = p->rcap; i < n; i++) rb[i] = NULL;
    }
    unsigned long *rl = realloc(p->rlen, n * sizeof *rl);
    if (rl != NULL) p->rlen = rl;
    my_bool *rn = realloc(p->rnull, n * sizeof *rn);
    if (rn != NULL) p->rnull = rn;
    my_bool *re = realloc(p->rerr, n * sizeof *re);
    if (re != NULL) p->rerr = re;
    size_t *rs = realloc(p->rsize, n * sizeof *rs);
    if (rs != NULL) {
      p->rsize = rs;
      for (size_t i = p->rcap; i < n; i++) rs[i] = 0;
    }
    if (cv == NULL || b == NULL || rb == NULL || rl == NULL || rn == NULL || re == NULL ||
        rs == NULL)
      rc = DBP_ENOMEM;
    else
      p->rcap = n;
  }
  if (rc != 0) {
    dbp__cols_clear(c);
    return dbp__seterr(c, rc, NULL, 0, false, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const MYSQL_FIELD *f = &fields[i];
    dbp_column *col = &c->cols[i];
    const char *tname;
    col->name = dbp__cols_str(c, f->name, f->name_length);
    col->type = dbp__my_field_type(f, &tname, &p->conv[i]);
    col->db_type = dbp__cols_str(c, tname, strlen(tname));
    col->db_type_id = (uint32_t)f->type;
  }
  return 0;
}

void dbp__my_convert(dbp_conn *c) {
  const unsigned char *conv = MY(c)->conv;
  for (size_t i = 0; i < c->ncols; i++) {
    if (conv[i] == DBP__MY_CONV_BIT1 && c->vals[i] != NULL) {
      /* BIT(1) arrives as one raw byte; dbpipe shows it as 0 or 1. */
      bool one = c->lens[i] > 0 && c->vals[i][c->lens[i] - 1] != 0;
      c->vals[i] = one ? "1" : "0";
      c->lens[i] = 1;
    }
  }
}

/* ---- getting back to idle ---- */

/* Frees the streamed text result, reading whatever of it is left. */
static int my_res_free(dbp_conn *c) {
  if (MY(c)->res == NULL) return 0;
  return dbp__my_drive(c, &dbp__my_free_op); /* forgets the result when done */
}

/* Reads the rest of the streamed text result, discarding the rows; *rows
 * (may be NULL) gets their number. Returns 0, the result's error, or a
 * wait's code (the call then stays pending). */
static int my_skip_rows(dbp_conn *c, int64_t *rows) {
  my_conn *p = MY(c);
  int64_t n = 0;
  int rc;
  for (;;) {
    if ((rc = dbp__my_drive(c, &dbp__my_fetch_op)) != 0) return rc;
    if (p->ret_row == NULL) break;
    n++;
  }
  unsigned e = mysql_errno(p->m);
  if ((rc = my_res_free(c)) != 0) return rc;
  if (e != 0) return my_conn_err(c);
  if (rows != NULL) *rows = n;
  return 0;
}

/* Reads every remaining result of a multi-statement batch, discarding
 * rows. *affected (may be NULL) gets the affected rows (or rows read) of
 * the last statement. Returns 0, the first statement error, DBP_ECONNLOST,
 * or a wait's code (the call then stays pending). */
static int my_rest(dbp_conn *c, int64_t *affected) {
  my_conn *p = MY(c);
  int rc;
  while (mysql_more_results(p->m)) {
    if ((rc = dbp__my_drive(c, &dbp__my_next_op)) != 0) return rc;
    if (p->ret_int > 0) return my_conn_err(c); /* an error ends the batch */
    if (mysql_field_count(p->m) == 0) {
      if (affected != NULL) *affected = (int64_t)mysql_affected_rows(p->m);
      continue;
    }
    p->res = mysql_use_result(p->m);
    if (p->res == NULL) return my_conn_err(c);
    if ((rc = my_skip_rows(c, affected)) != 0) return rc;
  }
  return 0;
}

/* Brings the connection back to idle after the pending call finished:
 * closes the statement, frees the result (both read what is left), opens
 * and drops a result the server is about to send, reads the remaining
 * results. Statement errors along the way are expected (a killed query)
 * and ignored; a lost connection or an interruption is returned. */
static int my_drain(dbp_conn *c) {
  my_conn *p = MY(c);
  int rc;
  if ((rc = dbp__my_stmt_close(c)) != 0) return rc;
  if ((rc = my_res_free(c)) != 0) return rc;
  if (p->m->status == MYSQL_STATUS_GET_RESULT) {
    p->res = mysql_use_result(p->m);
    if (p->res != NULL && (rc = my_res_free(c)) != 0) return rc;
  }
  rc = my_rest(c, NULL);
  return rc == DBP_ECONNLOST || dbp__interrupted(rc) ? rc : 0;
}

/* Waits until the server thread of c is idle. The server answers a
 * killed statement a moment before its thread is done with it (the
 * processlist still says "Query"); a ping is only read once that thread is
 * idle, so after it nothing runs. Returns 0, a wait's code, or the ping's
 * error. */
static int my_quiesce(dbp_conn *c) {
  int rc = dbp__my_drive(c, &dbp__my_ping_op);
  if (rc == 0 && MY(c)->ret_int != 0) rc = my_conn_err(c);
  return rc;
}

/* Gives up the session: closes it, so that conn.c marks the connection
 * broken. */
static void my_give_up(dbp_conn *c) {
  dbp__unwatch(c);
  my_close(c);
}

/* The driver's abort (see driver.h): with `cancel`, KILL QUERY from a side
 * session; then finish the interrupted call and drain (and after a KILL,
 * wait for the server's thread to be idle). On failure the session is
 * closed. */
static int my_abort(dbp_conn *c, bool cancel, int64_t *stray) {
  *stray = 0; /* a closed MariaDB session ends its statement */
  int rc = MY(c)->m == NULL ? DBP_ECONNLOST : 0;
  if (rc == 0 && cancel) rc = dbp__my_kill(c, c->deadline, false);
  if (rc == 0) rc = dbp__my_resume(c);
  if (rc == 0) rc = my_drain(c);
  if (rc == 0 && cancel) rc = my_quiesce(c);
  if (rc != 0 && MY(c)->m != NULL) my_give_up(c);
  return rc;
}

/* Handles a call that stopped with `why`. A timeout or cancellation goes
 * up to conn.c, whose clean-up runs my_abort; any other error (lost, or
 * stuck in the middle of a call that cannot be finished) gives the session
 * up. Returns why. */
int dbp__my_stop(dbp_conn *c, int why) {
  if (dbp__interrupted(why)) return why;
  if ((why == DBP_ECONNLOST || MY(c)->op != NULL) && MY(c)->m != NULL) my_give_up(c);
  return why;
}

/* Ends a statement that failed with `err` (already recorded): drains what
 * is left so the connection is idle. Returns err. */
int dbp__my_fail(dbp_conn *c, int err) {
  if (err == DBP_ECONNLOST) return dbp__my_stop(c, err);
  dbp_dberr keep = c->err;
  int rc = my_drain(c);
  if (rc == 0 && keep.db_errno == ER_QUERY_INTERRUPTED) rc = my_quiesce(c);
  if (rc != 0) return dbp__my_stop(c, rc);
  return dbp__seterr(c, keep.code, keep.sqlstate, keep.db_errno, keep.retryable, "%s",
                     keep.message);
}

/* The tail of a text statement: the remaining results of the batch. */
static int my_text_end(dbp_conn *c, int64_t *affected) {
  int rc = my_rest(c, affected);
  if (rc == 0) return 0;
  return dbp__interrupted(rc) || rc == DBP_ECONNLOST ? dbp__my_stop(c, rc) : dbp__my_fail(c, rc);
}

/* ---- statements ---- */

/* Runs `sql` in the text protocol up to its first result. Returns 0 (the
 * result, if any, is ready for mysql_use_result) or an error. */
static int my_text_start(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  p->arg.sql = sql;
  p->arg.len = strlen(sql);
  int rc = dbp__my_drive(c, &dbp__my_query_op);
  if (rc != 0) return dbp__my_stop(c, rc);
  if (p->ret_int != 0) return dbp__my_fail(c, my_conn_err(c));
  return 0;
}

/* Reads the next row of the streamed text result. Returns 1, 0 at the end
 * of the whole statement (remaining results drained), or an error. */
static int my_text_row(dbp_conn *c, dbp_row *row) {
  my_conn *p = MY(c);
  int rc = dbp__my_drive(c, &dbp__my_fetch_op);
  if (rc != 0) return dbp__my_stop(c, rc);
  MYSQL_ROW r = p->ret_row;
  if (r == NULL) {
    unsigned e = mysql_errno(p->m);
    int err = e != 0 ? my_conn_err(c) : 0;
    if (err == DBP_ECONNLOST) return dbp__my_stop(c, err);
    if ((rc = my_res_free(c)) != 0) return dbp__my_stop(c, rc);
    if (err == 0) return my_text_end(c, NULL);
    return err;
  }
  unsigned long *lens = mysql_fetch_lengths(p->res);
  for (size_t i = 0; i < c->ncols; i++) {
    c->vals[i] = r[i];
    c->lens[i] = r[i] != NULL ? (size_t)lens[i] : 0;
  }
  dbp__my_convert(c);
  dbp__row_out(c, row);
  return 1;
}

static int my_exec(dbp_conn *c, const char *sql, size_t n, const dbp_param *params,
                   int64_t *affected) {
  my_conn *p = MY(c);
  int rc;
  if (n > 0) {
    if ((rc = dbp__my_stmt_start(c, sql, n, params)) != 0) return rc;
    *affected = (int64_t)mysql_stmt_affected_rows(p->stmt);
    if (mysql_stmt_field_count(p->stmt) > 0) {
      /* Rows nobody asked for: they are pending, so dbp__my_stmt_done
       * closes the statement, which reads them. */
      *affected = 0;
    }
    if ((rc = dbp__my_stmt_done(c)) != 0) return dbp__my_stop(c, rc);
    return 0;
  }
  if ((rc = my_text_start(c, sql)) != 0) return rc;
  if (mysql_field_count(p->m) == 0) {
    *affected = (int64_t)mysql_affected_rows(p->m);
  } else {
    p->res = mysql_use_result(p->m);
    if (p->res == NULL) return dbp__my_fail(c, my_conn_err(c));
    rc = my_skip_rows(c, affected);
    if (dbp__interrupted(rc) || rc == DBP_ECONNLOST || MY(c)->op != NULL)
      return dbp__my_stop(c, rc);
    if (rc != 0) return dbp__my_fail(c, rc);
  }
  return my_text_end(c, affected);
}

/* The error of a query that was expected to return rows (dbp_query, the
 * export path) but ran as a statement without a result set (UPDATE, SET,
 * DELETE...). The connection is idle. */
static int no_result_set(dbp_conn *c) {
  return dbp__seterr(c, DBP_EQUERY, NULL, 0, false,
                     "the statement returned no result set (dbp_query wants a query that "
                     "returns rows, such as SELECT)");
}

/* Runs a query up to its column metadata. Returns 1 (rows follow) or an
 * error. */
static int my_query(dbp_conn *c, const char *sql, size_t n, const dbp_param *params) {
  my_conn *p = MY(c);
  int rc;
  if (n > 0) {
    if ((rc = dbp__my_stmt_start(c, sql, n, params)) != 0) return rc;
    /* The statement's own metadata, which the execution brought up to
     * date (read in place: a MYSQL_RES copy of it per execution would
     * only cost an allocation). */
    unsigned nf = mysql_stmt_field_count(p->stmt);
    if (nf == 0) {
      int64_t n_aff = (int64_t)mysql_stmt_affected_rows(p->stmt);
      if ((rc = dbp__my_stmt_done(c)) != 0) return dbp__my_stop(c, rc);
      if (c->any_result) {
        /* dbp_query_all: a result without columns, and its count. */
        dbp__cols_clear(c);
        c->no_rows_affected = n_aff;
        return 0;
      }
      return no_result_set(c);
    }
    rc = dbp__my_columns(c, p->stmt->fields, nf);
    if (rc == 0) rc = dbp__my_stmt_bind(c);
    if (rc != 0) return dbp__my_fail(c, rc);
    return 1;
  }
  if ((rc = my_text_start(c, sql)) != 0) return rc;
  if (mysql_field_count(p->m) == 0) {
    int64_t n_aff = (int64_t)mysql_affected_rows(p->m);
    if ((rc = my_text_end(c, NULL)) != 0) return rc;
    if (c->any_result) {
      dbp__cols_clear(c);
      c->no_rows_affected = n_aff;
      return 0;
    }
    return no_result_set(c);
  }
  p->res = mysql_use_result(p->m);
  if (p->res == NULL) return dbp__my_fail(c, my_conn_err(c));
  rc = dbp__my_columns(c, mysql_fetch_fields(p->res), mysql_num_fields(p->res));
  if (rc != 0) return dbp__my_fail(c, rc);
  return 1;
}

static int my_fetch(dbp_conn *c, dbp_row *row) {
  return MY(c)->stmt != NULL ? dbp__my_stmt_row(c, row) : my_text_row(c, row);
}

/* Abandons the current result. Rows the library already holds are
 * skipped without waiting; if the next one has to come from the server,
 * the statement is to be killed rather than read to the end. A fast
 * server refills the socket as quickly as it is read, so at most a bounded
 * number of rows is skipped before the rest is killed. */
static int my_discard(dbp_conn *c) {
  my_conn *p = MY(c);
  const my_op *op = p->stmt != NULL  ? &dbp__my_sfetch_op
                    : p->res != NULL ? &dbp__my_fetch_op
                                     : NULL;
  for (int budget = 1024; op != NULL; budget--) {
    if (budget == 0 || dbp__my_try(c, op) != 0) return DBP__CANCEL; /* the call stays pending */
    bool end = op == &dbp__my_sfetch_op ? p->ret_int != 0 && p->ret_int != MYSQL_DATA_TRUNCATED
                                        : p->ret_row == NULL;
    if (end) break;
  }
  if (op == &dbp__my_fetch_op && mysql_more_results(p->m)) return DBP__CANCEL;
  return DBP__DRAIN; /* closing the statement or freeing the result may still wait */
}

static int my_describe(dbp_conn *c, const char *sql) {
  my_conn *p = MY(c);
  int rc = dbp__my_prepare(c, sql);
  if (rc != 0) return rc;
  p->meta = mysql_stmt_result_metadata(p->stmt);
  if (p->meta != NULL) {
    rc = dbp__my_columns(c, mysql_fetch_fields(p->meta), mysql_num_fields(p->meta));
    if (rc != 0) return dbp__my_fail(c, rc);
  }
  if ((rc = dbp__my_stmt_close(c)) != 0) return dbp__my_stop(c, rc);
  return 0;
}

static int my_cancel(dbp_conn *c) {
  if (MY(c)->m == NULL) return 0;
  return dbp__my_kill(c, (int64_t)dbp_now(c->rt) + DBP__CLEANUP_MS, false);
}

static bool my_in_transaction(const dbp_conn *c) {
  const my_conn *p = (const my_conn *)c;
  if (p->m == NULL) return false;
  unsigned int status = 0;
  if (mariadb_get_infov(p->m, MARIADB_CONNECTION_SERVER_STATUS, &status)) return false;
  return (status & SERVER_STATUS_IN_TRANS) != 0;
}

static int64_t my_backend_id(const dbp_conn *c) {
  return (int64_t)((const my_conn *)c)->thread_id;
}

/* True when the server's COM_RESET_CONNECTION puts the session's
 * character set back to the one the login asked for. MariaDB does since
 * 10.5.5 (and 10.4.14, 10.3.24, 10.2.33); before that, and on MySQL, a
 * reset applies the server's defaults instead. */
static bool reset_restores_charset(MYSQL *m) {
  if (!mariadb_connection(m)) return false;
  unsigned long v = mysql_get_server_version(m); /* 10.5.5 is 100505 */
  unsigned long major = v / 100;
  unsigned long patch = v % 100;
  if (major >= 1005) return major > 1005 || patch >= 5;
  return (major == 1004 && patch >= 14) || (major == 1003 && patch >= 24) ||
         (major == 1002 && patch >= 33);
}

/* Returns the idle session to its state right after connect (the
 * driver's reset entry). COM_RESET_CONNECTION drops what earlier users
 * left: user variables, session settings (time_zone, sql_mode...),
 * temporary tables, PREPAREd statements, locks, and the driver's kept
 * statements with them: the library detaches those handles, so they are
 * only freed here (a COM_STMT_CLOSE for each would be wasted), and
 * prepared again when next used. The session's character set, the only
 * setting the driver makes at connect (in the login), comes back with the
 * reset on a MariaDB that restores it; on other servers it is set again
 * (SET NAMES, one more round trip). A failure is returned as it is:
 * conn.c then gives the connection up. */
static int my_reset(dbp_conn *c) {
  my_conn *p = MY(c);
  int rc = dbp__my_drive(c, &dbp__my_reset_op);
  if (rc == 0 && p->ret_int != 0) rc = my_conn_err(c);
  if (rc != 0) return rc;
  dbp__my_stmt_free(p);
  if (reset_restores_charset(p->m)) return 0;
  /* The DSN's character set, not the library's idea of the current one,
   * which follows a user's SET NAMES. The connect accepted the name, so
   * it is one of the server's (letters, digits, '_'). */
  char sql[96];
  const char *cs = p->opts.charset;
  if (strspn(cs, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(cs))
    cs = "utf8mb4";
  snprintf(sql, sizeof sql, "SET NAMES %.64s", cs);
  p->arg.sql = sql;
  p->arg.len = strlen(sql);
  rc = dbp__my_drive(c, &dbp__my_query_op);
  if (rc == 0 && p->ret_int != 0) rc = my_conn_err(c);
  return rc;
}

static int my_sockfd(const dbp_conn *c) {
  const my_conn *p = (const my_conn *)c;
  return p->m != NULL ? (int)mysql_get_socket(p->m) : -1;
}

const dbp__driver dbp__mysql_driver = {
    .conn_size = sizeof(my_conn),
    .connect = dbp__my_connect,
    .close = my_close,
    .exec = my_exec,
    .query = my_query,
    .fetch = my_fetch,
    .discard = my_discard,
    .abort = my_abort,
    .describe = my_describe,
    .copy_start = NULL,
    .copy_read = NULL,
    .cancel = my_cancel,
    .in_transaction = my_in_transaction,
    .backend_id = my_backend_id,
    .reset = my_reset,
    .socket = my_sockfd,
    .canceled_sqlstate = "70100",
    .canceled_errno = ER_QUERY_INTERRUPTED,
    .canceled_how = "killed on the server",
};
