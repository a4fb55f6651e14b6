/* See txload.h. */
#include "txload.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpipe.h"

typedef struct mover {
  txload *l;
  pthread_t th;
  bool started;
  PGconn *pg;
  MYSQL *my;
  unsigned seed;
  char why[512];
} mover;

struct txload {
  txload_spec s;
  atomic_bool stop;
  atomic_long commits;
  int n;
  mover *m;
};

/* One statement; 0, 1 for an error worth retrying, -1 for another one. */
static int run(mover *m, const char *sql) {
  if (m->pg != NULL) {
    PGresult *r = PQexec(m->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      /* 40001 serialization failure, 40P01 deadlock, 55P03 lock timeout */
      bool retry = state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
                                     strcmp(state, "55P03") == 0);
      if (!retry) snprintf(m->why, sizeof m->why, "%s: %s", sql, PQresultErrorMessage(r));
      rc = retry ? 1 : -1;
    }
    PQclear(r);
    return rc;
  }
  if (mysql_query(m->my, sql) != 0) {
    unsigned e = mysql_errno(m->my);
    bool retry = e == 1213 || e == 1205; /* deadlock, lock wait timeout */
    if (!retry) snprintf(m->why, sizeof m->why, "%s: %s", sql, mysql_error(m->my));
    return retry ? 1 : -1;
  }
  MYSQL_RES *res = mysql_store_result(m->my);
  if (res != NULL) mysql_free_result(res);
  return 0;
}

/* Moves amount from (ft, from) to (tt, to) in one transaction. */
static int move(mover *m, const char *ft, int from, const char *tt, int to, long amount) {
  int cmp = strcmp(ft, tt);
  bool from_first = cmp < 0 || (cmp == 0 && from < to);
  char x[256], y[256];
  snprintf(x, sizeof x, "UPDATE %s SET bal = bal - %ld WHERE id = %d", ft, amount, from);
  snprintf(y, sizeof y, "UPDATE %s SET bal = bal + %ld WHERE id = %d", tt, amount, to);
  int rc = run(m, m->pg != NULL ? "BEGIN" : "START TRANSACTION");
  if (rc == 0) rc = run(m, from_first ? x : y);
  if (rc == 0) rc = run(m, from_first ? y : x);
  if (rc == 0) rc = run(m, "COMMIT");
  if (rc != 0) (void)run(m, "ROLLBACK");
  return rc;
}

static void *mover_main(void *arg) {
  mover *m = arg;
  txload *l = m->l;
  if (m->my != NULL) mysql_thread_init();
  while (!atomic_load(&l->stop)) {
    bool between = l->s.a != NULL && rand_r(&m->seed) % 2 == 0;
    long amount = 1 + rand_r(&m->seed) % 100;
    int rc;
    if (between) {
      int i = 1 + rand_r(&m->seed) % l->s.rows_ab, j = 1 + rand_r(&m->seed) % l->s.rows_ab;
      rc = rand_r(&m->seed) % 2 ? move(m, l->s.a, i, l->s.b, j, amount)
                                : move(m, l->s.b, j, l->s.a, i, amount);
    } else {
      int i = 1 + rand_r(&m->seed) % l->s.rows_one, j = 1 + rand_r(&m->seed) % l->s.rows_one;
      if (i == j) continue;
      rc = move(m, l->s.one, i, l->s.one, j, amount);
    }
    if (rc == 0) atomic_fetch_add(&l->commits, 1);
    if (rc < 0) break;
  }
  if (m->my != NULL) mysql_thread_end();
  return NULL;
}

static void open_conn(const char *dsn, mover *m) {
  if (strncmp(dsn, "postgres", 8) == 0) {
    m->pg = PQconnectdb(dsn);
    cr_assert_eq(PQstatus(m->pg), CONNECTION_OK, "mover: %s", PQerrorMessage(m->pg));
    return;
  }
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dsn, &d, err, sizeof err), 0, "%s", err);
  m->my = mysql_init(NULL);
  bool ok = mysql_real_connect(m->my, d.host, d.user, d.password, d.dbname, (unsigned)d.port, NULL,
                               0) != NULL;
  dbp_dsn_free(&d);
  cr_assert(ok, "mover: %s", mysql_error(m->my));
}

txload *txload_start(const txload_spec *s) {
  mysql_library_init(0, NULL, NULL);
  txload *l = calloc(1, sizeof *l);
  cr_assert_not_null(l);
  l->s = *s;
  l->n = s->threads;
  l->m = calloc((size_t)l->n, sizeof *l->m);
  atomic_init(&l->stop, false);
  atomic_init(&l->commits, 0);
  for (int i = 0; i < l->n; i++) {
    l->m[i].l = l;
    l->m[i].seed = 17u * (unsigned)i + 3u;
    open_conn(s->dsn, &l->m[i]);
  }
  for (int i = 0; i < l->n; i++) {
    cr_assert_eq(pthread_create(&l->m[i].th, NULL, mover_main, &l->m[i]), 0);
    l->m[i].started = true;
  }
  return l;
}

long txload_commits(txload *l) {
  return atomic_load(&l->commits);
}

long txload_stop(txload *l, char *why, size_t len) {
  atomic_store(&l->stop, true);
  if (len > 0) why[0] = '\0';
  for (int i = 0; i < l->n; i++) {
    mover *m = &l->m[i];
    if (m->started) pthread_join(m->th, NULL);
    if (m->why[0] != '\0' && len > 0 && why[0] == '\0') snprintf(why, len, "%s", m->why);
    if (m->pg != NULL) PQfinish(m->pg);
    if (m->my != NULL) mysql_close(m->my);
  }
  long n = atomic_load(&l->commits);
  free(l->m);
  free(l);
  return n;
}
