/* Running libmariadb's nonblocking calls: every call that talks to the
 * server is a _start/_cont pair (MYSQL_OPT_NONBLOCK). One loop here drives
 * any of them: it waits on mysql_get_socket() for what the status asks
 * (read, write, and the library's own timeout from
 * mysql_get_timeout_value_ms) through the kit's wait, and continues until
 * the call is done. The _start call and its _cont calls store the result in
 * the same place, so a call that finishes inside _start is no different
 * from one that waited. A call cut short by an interruption stays pending
 * (p->op) until dbp__my_resume finishes it.
 */
#include <stdlib.h>

#include "db/mysql_conn.h"

/* ---- the calls, as start/cont pairs ---- */

static int start_connect(my_conn *p) {
  return mysql_real_connect_start(&p->ret_mysql, p->m, p->arg.host, p->arg.user, p->password,
                                  p->arg.db, p->arg.port, p->arg.sock, 0);
}
static int cont_connect(my_conn *p, int ev) {
  return mysql_real_connect_cont(&p->ret_mysql, p->m, ev);
}
static int start_query(my_conn *p) {
  return mysql_real_query_start(&p->ret_int, p->m, p->arg.sql, p->arg.len);
}
static int cont_query(my_conn *p, int ev) {
  return mysql_real_query_cont(&p->ret_int, p->m, ev);
}
static int start_fetch(my_conn *p) {
  return mysql_fetch_row_start(&p->ret_row, p->res);
}
static int cont_fetch(my_conn *p, int ev) {
  return mysql_fetch_row_cont(&p->ret_row, p->res, ev);
}
static int start_free(my_conn *p) {
  return mysql_free_result_start(p->res);
}
static int cont_free(my_conn *p, int ev) {
  return mysql_free_result_cont(p->res, ev);
}
static void done_free(my_conn *p) {
  p->res = NULL;
}
static int start_next(my_conn *p) {
  return mysql_next_result_start(&p->ret_int, p->m);
}
static int cont_next(my_conn *p, int ev) {
  return mysql_next_result_cont(&p->ret_int, p->m, ev);
}
static int start_prepare(my_conn *p) {
  return mysql_stmt_prepare_start(&p->ret_int, p->stmt, p->arg.sql, p->arg.len);
}
static int cont_prepare(my_conn *p, int ev) {
  return mysql_stmt_prepare_cont(&p->ret_int, p->stmt, ev);
}
static int start_execute(my_conn *p) {
  return mysql_stmt_execute_start(&p->ret_int, p->stmt);
}
static int cont_execute(my_conn *p, int ev) {
  return mysql_stmt_execute_cont(&p->ret_int, p->stmt, ev);
}
static int start_sfetch(my_conn *p) {
  return mysql_stmt_fetch_start(&p->ret_int, p->stmt);
}
static int cont_sfetch(my_conn *p, int ev) {
  return mysql_stmt_fetch_cont(&p->ret_int, p->stmt, ev);
}
static int start_sclose(my_conn *p) {
  return mysql_stmt_close_start(&p->ret_bool, p->stmt);
}
static int cont_sclose(my_conn *p, int ev) {
  return mysql_stmt_close_cont(&p->ret_bool, p->stmt, ev);
}
static void done_sclose(my_conn *p) {
  p->stmt = NULL;
}
static int start_ping(my_conn *p) {
  return mysql_ping_start(&p->ret_int, p->m);
}
static int cont_ping(my_conn *p, int ev) {
  return mysql_ping_cont(&p->ret_int, p->m, ev);
}
static int start_reset(my_conn *p) {
  return mysql_reset_connection_start(&p->ret_int, p->m);
}
static int cont_reset(my_conn *p, int ev) {
  return mysql_reset_connection_cont(&p->ret_int, p->m, ev);
}

const my_op dbp__my_connect_op = {start_connect, cont_connect, NULL},
            dbp__my_query_op = {start_query, cont_query, NULL},
            dbp__my_fetch_op = {start_fetch, cont_fetch, NULL},
            dbp__my_free_op = {start_free, cont_free, done_free},
            dbp__my_next_op = {start_next, cont_next, NULL},
            dbp__my_prepare_op = {start_prepare, cont_prepare, NULL},
            dbp__my_execute_op = {start_execute, cont_execute, NULL},
            dbp__my_sfetch_op = {start_sfetch, cont_sfetch, NULL},
            dbp__my_sclose_op = {start_sclose, cont_sclose, done_sclose},
            dbp__my_ping_op = {start_ping, cont_ping, NULL},
            dbp__my_reset_op = {start_reset, cont_reset, NULL};

/* ---- the loop ---- */

/* Waits for what a libmariadb status asks for on the socket of m, through
 * ws, until `deadline`. Stores the events for the _cont call in *ev.
 * Returns 0 or the wait's error. */
static int my_wait(dbp_conn *c, dbp__watch *ws, int64_t deadline, MYSQL *m, int status, bool check,
                   int *ev) {
  int events = 0;
  if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT)) events |= DBP_READABLE;
  if (status & MYSQL_WAIT_WRITE) events |= DBP_WRITABLE;
  int64_t t = DBP_FOREVER;
  if (status & MYSQL_WAIT_TIMEOUT) t = (int64_t)mysql_get_timeout_value_ms(m);
  *ev = 0;
  if (events == 0) {
    /* Only the library's own timer: sleep it out. */
    int rc = dbp_sleep(c->rt, t >= 0 ? t : 0);
    *ev = MYSQL_WAIT_TIMEOUT;
    return rc;
  }
  int rev = 0;
  int rc = dbp__wait_on(c, ws, deadline, (int)mysql_get_socket(m), events, t, check, &rev);
  if (rc != 0) return rc;
  if (rev == 0) {
    *ev = MYSQL_WAIT_TIMEOUT;
    return 0;
  }
  if (rev & DBP_READABLE) *ev |= status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT);
  if (rev & DBP_WRITABLE) *ev |= status & MYSQL_WAIT_WRITE;
  if (*ev == 0) *ev = status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT);
  return 0;
}

/* Continues q's pending call until it is done. */
static int my_continue(dbp_conn *c, my_conn *q, dbp__watch *ws, int64_t deadline, bool connecting) {
  while (q->op_status != 0) {
    int ev = 0;
    int rc = my_wait(c, ws, deadline, q->m, q->op_status, connecting, &ev);
    if (rc == 0 && connecting) rc = dbp__my_connect_step(c, q, ev, deadline);
    if (rc != 0) return rc;
    q->op_status = q->op->cont(q, ev);
  }
  const my_op *op = q->op;
  q->op = NULL;
  if (op->done != NULL) op->done(q);
  return 0;
}

int dbp__my_run(dbp_conn *c, my_conn *q, dbp__watch *ws, int64_t deadline, const my_op *op,
                bool connecting) {
  q->op = op;
  q->op_status = op->start(q);
  return my_continue(c, q, ws, deadline, connecting);
}

/* A socket that vanished under c's own session is recorded. */
static int own_session(dbp_conn *c, int rc) {
  if (rc == DBP_ECONNLOST) dbp__err_socket_gone(c);
  return rc;
}

int dbp__my_drive(dbp_conn *c, const my_op *op) {
  return own_session(c, dbp__my_run(c, MY(c), &c->watch, c->deadline, op, false));
}

int dbp__my_try(dbp_conn *c, const my_op *op) {
  my_conn *p = MY(c);
  p->op = op;
  p->op_status = op->start(p);
  if (p->op_status != 0) return 1;
  p->op = NULL;
  if (op->done != NULL) op->done(p);
  return 0;
}

int dbp__my_resume(dbp_conn *c) {
  my_conn *p = MY(c);
  if (p->op == NULL) return 0;
  return own_session(c, my_continue(c, p, &c->watch, c->deadline, false));
}
