/* Consistent snapshots shared by several connections, against real
 * servers: the same bodies on PostgreSQL (suite snapshot_pg) and on MariaDB
 * (suite snapshot_my), and what only one of them does in suites of its own.
 *
 * The consistency tests keep a table of accounts (and a second, smaller
 * one) whose grand total never changes while other connections keep moving
 * amounts between rows and between the tables; workers that joined one
 * snapshot each sum a different part, and the parts must add up to the
 * total. Bodies run in a coroutine and check with the CHECK macros, which
 * return instead of jumping off the coroutine stack.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

/* ---- the dialects ---- */

typedef struct dialect {
  dbp_db_kind kind;
  const char *(*dsn)(void);
  const char *engine; /* appended to CREATE TABLE */
  const char *fill;   /* INSERT ... SELECT of ids 1..%d with balance 1000 */
} dialect;

static const char *pg_dsn(void) {
  return dbt_pg_dsn();
}

static const char *my_dsn(void) {
  return dbt_my_dsn();
}

static const dialect PG = {
    .kind = DBP_DB_PG,
    .dsn = pg_dsn,
    .engine = "",
    .fill = "INSERT INTO %s SELECT g, 1000 FROM generate_series(1, %d) g",
};

static const dialect MY = {
    .kind = DBP_DB_MYSQL,
    .dsn = my_dsn,
    .engine = " ENGINE=InnoDB",
    .fill = "INSERT INTO %s SELECT seq, 1000 FROM seq_1_to_%d",
};

#define SNAP_TEST(name, secs)                           \
  static int name##_body(dbp_rt *rt, const dialect *d); \
  static int name##_entry(dbp_rt *rt, void *arg) {      \
    return name##_body(rt, arg);                        \
  }                                                     \
  Test(snapshot_pg, name, .timeout = secs) {            \
    dbt_run(name##_entry, (void *)&PG);                 \
  }                                                     \
  Test(snapshot_my, name, .timeout = secs) {            \
    dbt_run(name##_entry, (void *)&MY);                 \
  }                                                     \
  static int name##_body(dbp_rt *rt, const dialect *d)

/* ---- helpers ---- */

#define T 10000 /* ms: every statement's timeout */

static int open_dsn(dbp_rt *rt, const char *dsn, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, T, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

static int exec(dbp_conn *c, const char *sql) {
  int rc = dbp_exec(c, sql, 0, NULL, T, NULL);
  if (rc != 0) cr_expect(0, "%s: %s", sql, dbp_conn_error(c)->message);
  return rc;
}

/* One value of a one-row query, as text ("" for NULL). */
static int value(dbp_conn *c, const char *sql, char *out, size_t len) {
  int rc = dbp_query(c, sql, 0, NULL, T);
  if (rc != 0) {
    cr_expect(0, "%s: %s", sql, dbp_conn_error(c)->message);
    return rc;
  }
  dbp_row row;
  out[0] = '\0';
  int got = 0;
  while ((rc = dbp_fetch(c, &row)) == 1) {
    if (got++) continue;
    size_t n = row.vals[0] != NULL ? row.lens[0] : 0;
    if (n >= len) n = len - 1;
    if (n > 0) memcpy(out, row.vals[0], n);
    out[n] = '\0';
  }
  if (rc < 0 || got != 1) cr_expect(0, "%s: %d rows, rc %d", sql, got, rc);
  return rc < 0 ? rc : (got == 1 ? 0 : DBP_EPROTO);
}

static int sum(dbp_conn *c, const char *sql, long long *out) {
  char v[64];
  int rc = value(c, sql, v, sizeof v);
  if (rc == 0) *out = strtoll(v, NULL, 10);
  return rc;
}

static void show(const char *what, int rc, const dbp_dberr *e) {
  char m[700];
  cr_expect(0, "%s returned %s: %s", what, dbp_err_name(rc), dbp_dberr_format(e, m, sizeof m));
}

/* The accounts: `acct` with NACCT rows and `side` with NSIDE, 1000 each. */
#define NACCT 200
#define NSIDE 20
#define TOTAL ((long long)(NACCT + NSIDE) * 1000)

static int make_tables(dbp_conn *c, const dialect *d, const char *acct, const char *side) {
  char sql[256];
  const char *names[2] = {acct, side};
  const int rows[2] = {NACCT, NSIDE};
  for (int i = 0; i < 2; i++) {
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", names[i]);
    CHECK(exec(c, sql) == 0);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, bal bigint NOT NULL)%s",
             names[i], d->engine);
    CHECK(exec(c, sql) == 0);
    snprintf(sql, sizeof sql, d->fill, names[i], rows[i]);
    CHECK(exec(c, sql) == 0);
  }
  return 0;
}

static void drop_tables(dbp_conn *c, const char *acct, const char *side) {
  char sql[128];
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", acct);
  (void)dbp_exec(c, sql, 0, NULL, T, NULL);
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", side);
  (void)dbp_exec(c, sql, 0, NULL, T, NULL);
}

/* Moves `amount` from row `from` of `ft` to row `to` of `tt` in one
 * transaction, the rows updated in a fixed order (table name, then id) so
 * that concurrent movers cannot deadlock. */
static int transfer(dbp_conn *c, const char *ft, int from, const char *tt, int to,
                    long long amount) {
  int cmp = strcmp(ft, tt);
  bool from_first = cmp < 0 || (cmp == 0 && from < to);
  char a[160], b[160];
  snprintf(a, sizeof a, "UPDATE %s SET bal = bal - %lld WHERE id = %d", ft, amount, from);
  snprintf(b, sizeof b, "UPDATE %s SET bal = bal + %lld WHERE id = %d", tt, amount, to);
  int rc = dbp_exec(c, "BEGIN", 0, NULL, T, NULL);
  if (rc == 0) rc = dbp_exec(c, from_first ? a : b, 0, NULL, T, NULL);
  if (rc == 0) rc = dbp_exec(c, from_first ? b : a, 0, NULL, T, NULL);
  if (rc == 0) rc = dbp_exec(c, "COMMIT", 0, NULL, T, NULL);
  if (rc != 0 && !dbp_conn_is_broken(c) && dbp_conn_in_transaction(c))
    (void)dbp_exec(c, "ROLLBACK", 0, NULL, T, NULL);
  return rc;
}

/* ---- consistency under writes ---- */

typedef struct mover {
  dbp_rt *rt;
  const dialect *d;
  const char *acct, *side;
  volatile bool *stop;
  unsigned seed;
  long commits;
  char why[600];
} mover;

static int mover_main(void *arg, void **result) {
  (void)result;
  mover *m = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(m->rt, m->d->dsn(), T, &c, &err);
  if (rc != 0) {
    snprintf(m->why, sizeof m->why, "connect: %s", err.message);
    return rc;
  }
  while (!*m->stop) {
    bool to_side = rand_r(&m->seed) % 4 == 0;
    int from = 1 + rand_r(&m->seed) % NACCT;
    int to = 1 + rand_r(&m->seed) % (to_side ? NSIDE : NACCT);
    if (!to_side && to == from) continue;
    long long amount = 1 + rand_r(&m->seed) % 50;
    bool back = rand_r(&m->seed) % 2 == 0; /* side -> acct as often */
    rc = back && to_side ? transfer(c, m->side, to, m->acct, from, amount)
                         : transfer(c, m->acct, from, to_side ? m->side : m->acct, to, amount);
    if (rc == 0) {
      m->commits++;
    } else if (!dbp_conn_error(c)->retryable) {
      snprintf(m->why, sizeof m->why, "transfer: %s", dbp_conn_error(c)->message);
      break;
    }
    (void)dbp_yield(m->rt);
  }
  dbp_conn_close(c);
  return m->why[0] != '\0' ? DBP_EQUERY : 0;
}

#define NWORK 4
#define NMOVE 3
#define ROUNDS 20

/* Worker k's part: the rows whose id is k modulo NWORK, in both tables. */
static int part_sum(dbp_conn *w, const char *acct, const char *side, int k, long long *out) {
  char sql[200];
  long long a = 0, b = 0;
  snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(bal), 0) FROM %s WHERE id %% %d = %d", acct, NWORK,
           k);
  CHECK(sum(w, sql, &a) == 0);
  snprintf(sql, sizeof sql, "SELECT COALESCE(SUM(bal), 0) FROM %s WHERE id %% %d = %d", side, NWORK,
           k);
  CHECK(sum(w, sql, &b) == 0);
  *out = a + b;
  return 0;
}

SNAP_TEST(workers_agree_while_others_write, 240) {
  const char *acct = "snapw_acct", *side = "snapw_side";
  dbp_conn *coord = NULL, *w[NWORK] = {0};
  CHECK(open_dsn(rt, d->dsn(), &coord) == 0);
  CHECK(make_tables(coord, d, acct, side) == 0);
  for (int i = 0; i < NWORK; i++) CHECK(open_dsn(rt, d->dsn(), &w[i]) == 0);

  volatile bool stop = false;
  mover m[NMOVE];
  dbp_co *co[NMOVE];
  for (int i = 0; i < NMOVE; i++) {
    m[i] = (mover){
        .rt = rt, .d = d, .acct = acct, .side = side, .stop = &stop, .seed = 7u + (unsigned)i};
    CHECK(dbp_spawn(rt, &co[i], mover_main, &m[i], NULL) == 0);
  }
  CHECK(dbp_sleep(rt, 200) == 0);

  int failed = 0;
  long moved_during_reads = 0;
  for (int r = 0; r < ROUNDS && !failed; r++) {
    dbp_snapshot *s = NULL;
    dbp_dberr err;
    int rc = dbp_snapshot_begin(coord, NULL, T, &s, &err);
    if (rc != 0) {
      show("dbp_snapshot_begin", rc, &err);
      failed = 1;
      break;
    }
    for (int i = 0; i < NWORK && !failed; i++) {
      rc = dbp_snapshot_join(s, w[i], T, &err);
      if (rc != 0) {
        show("dbp_snapshot_join", rc, &err);
        failed = 1;
      }
      (void)dbp_sleep(rt, 3); /* PostgreSQL: the movers commit between joins */
    }
    if (!failed && (rc = dbp_snapshot_ready(s, T, &err)) != 0) {
      show("dbp_snapshot_ready", rc, &err);
      failed = 1;
    }
    if (!failed) cr_expect_eq(dbp_snapshot_workers(s), (size_t)NWORK);
    long before = 0, after = 0;
    for (int i = 0; i < NMOVE; i++) before += m[i].commits;
    long long total = 0;
    for (int i = 0; i < NWORK && !failed; i++) {
      long long part = 0;
      if (part_sum(w[i], acct, side, i, &part) != 0) failed = 1;
      total += part;
      (void)dbp_sleep(rt, 3); /* the movers commit between the parts */
    }
    for (int i = 0; i < NMOVE; i++) after += m[i].commits;
    moved_during_reads += after - before;
    if (!failed) cr_expect_eq(total, TOTAL, "round %d: the parts add up to %lld", r, total);
    if (total != TOTAL) failed = 1;
    for (int i = 0; i < NWORK; i++) (void)dbp_exec(w[i], "COMMIT", 0, NULL, T, NULL);
    CHECK(dbp_snapshot_end(s, T) == 0);
    CHECK(!dbp_conn_in_transaction(coord));
  }

  stop = true;
  long commits = 0;
  for (int i = 0; i < NMOVE; i++) {
    cr_expect_eq(dbp_join(co[i], NULL), 0, "mover %d: %s", i, m[i].why);
    commits += m[i].commits;
  }
  /* The test means something only if the movers really moved meanwhile,
   * also while the workers read. */
  cr_expect_gt(commits, ROUNDS, "only %ld transfers committed", commits);
  cr_expect_gt(moved_during_reads, 0, "no transfer committed while the workers read");
  long long grand = 0, part = 0;
  for (int k = 0; k < NWORK; k++) {
    CHECK(part_sum(coord, acct, side, k, &part) == 0);
    grand += part;
  }
  cr_expect_eq(grand, TOTAL, "the movers kept the total");
  drop_tables(coord, acct, side);
  for (int i = 0; i < NWORK; i++) dbp_conn_close(w[i]);
  dbp_conn_close(coord);
  return failed ? -1 : 0;
}

/* A transfer from worker 0's half to worker 1's half, committed by its own
 * connection while the snapshot is being joined. */
typedef struct late_transfer {
  const dialect *d;
  dbp_rt *rt;
  const char *acct;
  volatile bool done;
  int rc;
} late_transfer;

static int late_main(void *arg, void **result) {
  (void)result;
  late_transfer *lt = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  lt->rc = dbp_conn_open(lt->rt, lt->d->dsn(), T, &c, &err);
  if (lt->rc != 0) return lt->rc;
  /* Row 1 is odd (worker 0 sums odd ids), row 2 even (worker 1). */
  lt->rc = transfer(c, lt->acct, 1, lt->acct, 2, 500);
  lt->done = true;
  dbp_conn_close(c);
  return lt->rc;
}

/* Two workers read halves of acct (odd and even ids); between their
 * starts a transfer of 500 from an odd row to an even one commits. With
 * `shared` they joined one snapshot, without it each started its own
 * transaction (PostgreSQL: REPEATABLE READ; MariaDB: the lock-free mode). */
static int halves_with_transfer_between(dbp_rt *rt, const dialect *d, bool shared,
                                        long long *total) {
  const char *acct = shared ? "snapd_acct_s" : "snapd_acct_n",
             *side = shared ? "snapd_side_s" : "snapd_side_n";
  dbp_conn *coord = NULL, *w[2] = {0};
  CHECK(open_dsn(rt, d->dsn(), &coord) == 0);
  CHECK(make_tables(coord, d, acct, side) == 0);
  CHECK(open_dsn(rt, d->dsn(), &w[0]) == 0 && open_dsn(rt, d->dsn(), &w[1]) == 0);
  dbp_snapshot_options o = {.mode = DBP_SNAPSHOT_LOCK_FREE};
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  if (shared || d->kind == DBP_DB_MYSQL) {
    int rc = dbp_snapshot_begin(coord, shared ? NULL : &o, T, &s, &err);
    if (rc != 0) show("dbp_snapshot_begin", rc, &err);
    CHECK(rc == 0);
  }
  /* Worker 0 starts (and, on PostgreSQL, takes its snapshot). */
  if (s != NULL) {
    CHECK(dbp_snapshot_join(s, w[0], T, &err) == 0);
  } else {
    CHECK(exec(w[0], "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") == 0);
    char v[16];
    CHECK(value(w[0], "SELECT 1", v, sizeof v) == 0);
  }
  late_transfer lt = {.d = d, .rt = rt, .acct = acct};
  dbp_co *co = NULL;
  CHECK(dbp_spawn(rt, &co, late_main, &lt, NULL) == 0);
  for (int i = 0; i < 100 && !lt.done; i++) (void)dbp_sleep(rt, 10);
  /* Locked on MariaDB, the commit waits for the lock; elsewhere it is in. */
  bool held = shared && d->kind == DBP_DB_MYSQL;
  cr_expect_eq(lt.done, !held, "the transfer %s before worker 1 joined",
               lt.done ? "committed" : "did not commit");
  if (s != NULL) {
    CHECK(dbp_snapshot_join(s, w[1], T, &err) == 0);
    CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  } else {
    CHECK(exec(w[1], "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") == 0);
  }
  CHECK(dbp_join(co, NULL) == 0);
  CHECK(lt.rc == 0);
  char sql[160];
  long long odd = 0, even = 0;
  snprintf(sql, sizeof sql, "SELECT SUM(bal) FROM %s WHERE id %% 2 = 1", acct);
  CHECK(sum(w[0], sql, &odd) == 0);
  snprintf(sql, sizeof sql, "SELECT SUM(bal) FROM %s WHERE id %% 2 = 0", acct);
  CHECK(sum(w[1], sql, &even) == 0);
  *total = odd + even;
  for (int i = 0; i < 2; i++) {
    CHECK(exec(w[i], "COMMIT") == 0);
    dbp_conn_close(w[i]);
  }
  CHECK(dbp_snapshot_end(s, T) == 0);
  drop_tables(coord, acct, side);
  dbp_conn_close(coord);
  return 0;
}

SNAP_TEST(separate_transactions_see_a_transfer_half, 60) {
  long long total = 0;
  CHECK(halves_with_transfer_between(rt, d, false, &total) == 0);
  /* Worker 0 read before the transfer, worker 1 after it: 500 twice. */
  cr_expect_eq(total, (long long)NACCT * 1000 + 500, "the halves add up to %lld", total);
  return 0;
}

SNAP_TEST(shared_snapshot_sees_none_of_a_transfer, 60) {
  long long total = 0;
  CHECK(halves_with_transfer_between(rt, d, true, &total) == 0);
  cr_expect_eq(total, (long long)NACCT * 1000, "the halves add up to %lld", total);
  return 0;
}

/* ---- states and errors on both ---- */

SNAP_TEST(misuse_is_refused, 30) {
  dbp_conn *c = NULL, *w = NULL;
  CHECK(open_dsn(rt, d->dsn(), &c) == 0);
  CHECK(open_dsn(rt, d->dsn(), &w) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  CHECK(dbp_snapshot_begin(c, &(dbp_snapshot_options){.mode = 7}, T, &s, &err) == DBP_EINVAL);
  CHECK(s == NULL);
  /* A coordinator inside a transaction is refused and left alone. */
  CHECK(exec(c, "BEGIN") == 0);
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == DBP_ESTATE);
  CHECK(dbp_conn_in_transaction(c));
  CHECK(exec(c, "ROLLBACK") == 0);

  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  CHECK(dbp_snapshot_join(s, c, T, &err) == DBP_EINVAL);
  CHECK(exec(w, "BEGIN") == 0);
  CHECK(dbp_snapshot_join(s, w, T, &err) == DBP_ESTATE);
  CHECK(strstr(err.message, "already in a transaction") != NULL);
  CHECK(exec(w, "ROLLBACK") == 0);
  CHECK(dbp_snapshot_join(s, w, T, &err) == 0);
  CHECK(dbp_conn_in_transaction(w));
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  CHECK(dbp_snapshot_end(s, T) == 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK(dbp_conn_in_transaction(w)); /* the worker's is its caller's */
  CHECK(exec(w, "ROLLBACK") == 0);
  CHECK(dbp_snapshot_end(NULL, T) == 0);
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

SNAP_TEST(lost_coordinator_fails_the_join, 60) {
  dbp_conn *c = NULL, *w = NULL, *killer = NULL;
  CHECK(open_dsn(rt, d->dsn(), &c) == 0);
  CHECK(open_dsn(rt, d->dsn(), &w) == 0);
  CHECK(open_dsn(rt, d->dsn(), &killer) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  char sql[96];
  if (d->kind == DBP_DB_PG)
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)",
             (long long)dbp_conn_backend_id(c));
  else
    snprintf(sql, sizeof sql, "KILL CONNECTION %lld", (long long)dbp_conn_backend_id(c));
  CHECK(exec(killer, sql) == 0);
  (void)dbp_sleep(rt, 300);
  int rc = dbp_snapshot_join(s, w, T, &err);
  cr_expect_eq(rc, DBP_ECONNLOST, "join: %s (%s)", dbp_err_name(rc), err.message);
  CHECK(strstr(err.message, "coordinating connection is lost") != NULL);
  CHECK(!dbp_conn_in_transaction(w));
  if (d->kind == DBP_DB_MYSQL) {
    CHECK(dbp_snapshot_ready(s, T, &err) == DBP_ECONNLOST);
    /* The server let go of the lock with the session: commits go on. */
    CHECK(exec(w, "CREATE TABLE IF NOT EXISTS snapk (a int)") == 0);
    CHECK(exec(w, "INSERT INTO snapk VALUES (1)") == 0);
    CHECK(exec(w, "DROP TABLE snapk") == 0);
  }
  CHECK(dbp_snapshot_end(s, T) == 0);
  dbp_conn_close(killer);
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

/* ---- PostgreSQL ---- */

static int pg_id_shape(const char *id) {
  size_t n = strlen(id);
  if (n < 3) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)id[i]) && id[i] != '-') return 0;
  return 1;
}

/* "X/X": two hex numbers. */
static int lsn_shape(const char *p) {
  const char *slash = strchr(p, '/');
  if (slash == NULL || slash == p || slash[1] == '\0') return 0;
  for (const char *q = p; *q; q++)
    if (q != slash && !isxdigit((unsigned char)*q)) return 0;
  return 1;
}

static int pg_ids_and_positions(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL, *w = NULL;
  CHECK(open_dsn(rt, dbt_pg_dsn(), &c) == 0);
  CHECK(open_dsn(rt, dbt_pg_dsn(), &w) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  cr_expect(pg_id_shape(dbp_snapshot_id(s)), "id %s", dbp_snapshot_id(s));
  cr_expect(lsn_shape(dbp_snapshot_position(s)), "position %s", dbp_snapshot_position(s));
  CHECK(!dbp_snapshot_on_standby(s));
  CHECK(strcmp(dbp_snapshot_binlog_file(s), "") == 0 && dbp_snapshot_binlog_pos(s) == 0);
  CHECK(dbp_snapshot_lock_us(s) == 0);
  /* The same snapshot, imported by id as another process would. */
  CHECK(dbp_snapshot_import(w, dbp_snapshot_id(s), T, &err) == 0);
  char mine[64], theirs[64];
  CHECK(value(w, "SELECT pg_current_snapshot()::text", mine, sizeof mine) == 0);
  CHECK(value(c, "SELECT pg_current_snapshot()::text", theirs, sizeof theirs) == 0);
  cr_expect_str_eq(mine, theirs);
  CHECK(exec(w, "COMMIT") == 0);
  /* PostgreSQL keeps the snapshot after ready: late workers may join. */
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  CHECK(dbp_snapshot_join(s, w, T, &err) == 0);
  CHECK(exec(w, "COMMIT") == 0);
  CHECK(dbp_snapshot_end(s, T) == 0);
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

Test(snapshot_pg, ids_and_positions_look_right, .timeout = 30) {
  dbt_run(pg_ids_and_positions, NULL);
}

static int pg_bad_ids(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL, *w = NULL;
  CHECK(open_dsn(rt, dbt_pg_dsn(), &c) == 0);
  CHECK(open_dsn(rt, dbt_pg_dsn(), &w) == 0);
  dbp_dberr err;
  /* Not of the server's shape: refused before anything is sent. */
  CHECK(dbp_snapshot_import(w, "1'; DROP TABLE orders; --", T, &err) == DBP_EINVAL);
  CHECK(strstr(err.message, "is not a snapshot id") != NULL);
  CHECK(dbp_snapshot_import(w, "", T, &err) == DBP_EINVAL);
  CHECK(!dbp_conn_in_transaction(w));
  /* Of the right shape, but never exported. */
  int rc = dbp_snapshot_import(w, "0000BEEF-0000BEEF-1", T, &err);
  cr_expect_eq(rc, DBP_EQUERY, "%s", dbp_err_name(rc));
  cr_expect(strstr(err.message, "cannot import snapshot 0000BEEF-0000BEEF-1") != NULL, "%s",
            err.message);
  cr_expect(strstr(err.message, "invalid snapshot identifier") != NULL, "%s", err.message);
  cr_expect_str_eq(err.sqlstate, "22023");
  CHECK(!dbp_conn_in_transaction(w));
  /* Exported, but the coordinator's transaction has ended. */
  dbp_snapshot *s = NULL;
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  char id[64];
  snprintf(id, sizeof id, "%s", dbp_snapshot_id(s));
  CHECK(dbp_snapshot_end(s, T) == 0);
  rc = dbp_snapshot_import(w, id, T, &err);
  cr_expect_eq(rc, DBP_EQUERY, "%s", dbp_err_name(rc));
  cr_expect(strstr(err.message, "is the coordinating transaction still open?") != NULL, "%s",
            err.message);
  CHECK(!dbp_conn_in_transaction(w));
  char v[8];
  CHECK(value(w, "SELECT 1", v, sizeof v) == 0); /* the worker is fine */
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

Test(snapshot_pg, bad_or_ended_ids_are_clear_errors, .timeout = 30) {
  dbt_run(pg_bad_ids, NULL);
}

/* ---- MariaDB ---- */

/* "domain-server-seq" triples separated by commas. */
static int gtid_shape(const char *p) {
  int dashes = 0;
  for (; *p; p++) {
    if (*p == '-') {
      dashes++;
    } else if (*p == ',') {
      if (dashes != 2) return 0;
      dashes = 0;
    } else if (!isdigit((unsigned char)*p)) {
      return 0;
    }
  }
  return dashes == 2;
}

static int my_positions_without_binlog(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL, *w = NULL;
  CHECK(open_dsn(rt, dbt_my_dsn(), &c) == 0);
  CHECK(open_dsn(rt, dbt_my_dsn(), &w) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  /* The fixture's main server writes no binary log. */
  cr_expect_str_eq(dbp_snapshot_position(s), "");
  cr_expect_str_eq(dbp_snapshot_binlog_file(s), "");
  CHECK(dbp_snapshot_binlog_pos(s) == 0);
  CHECK(strcmp(dbp_snapshot_id(s), "") == 0);
  CHECK(dbp_snapshot_join(s, w, T, &err) == 0);
  (void)dbp_sleep(rt, 20);
  uint64_t held = dbp_snapshot_lock_us(s);
  CHECK(held >= 20000);
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  uint64_t lock = dbp_snapshot_lock_us(s);
  CHECK(lock >= held);
  (void)dbp_sleep(rt, 20);
  CHECK(dbp_snapshot_lock_us(s) == lock); /* stopped at the release */
  /* After the release a join could not share the snapshot. */
  dbp_conn *late = NULL;
  CHECK(open_dsn(rt, dbt_my_dsn(), &late) == 0);
  CHECK(dbp_snapshot_join(s, late, T, &err) == DBP_ESTATE);
  CHECK(strstr(err.message, "lock was released") != NULL);
  CHECK(!dbp_conn_in_transaction(late));
  CHECK(dbp_snapshot_end(s, T) == 0);
  CHECK(exec(w, "COMMIT") == 0);
  dbp_conn_close(late);
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

Test(snapshot_my, positions_empty_without_binlog, .timeout = 30) {
  dbt_run(my_positions_without_binlog, NULL);
}

static int my_positions_with_binlog(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL, *w = NULL;
  /* The fixture's server without TLS writes a binary log. */
  CHECK(open_dsn(rt, dbt_my_notls_dsn(), &c) == 0);
  CHECK(open_dsn(rt, dbt_my_notls_dsn(), &w) == 0);
  CHECK(exec(c, "CREATE TABLE IF NOT EXISTS snapb (a int) ENGINE=InnoDB") == 0);
  CHECK(exec(c, "INSERT INTO snapb VALUES (1)") == 0);
  char gtid[256];
  CHECK(value(c, "SELECT @@GLOBAL.gtid_binlog_pos", gtid, sizeof gtid) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  int rc = dbp_snapshot_begin(c, NULL, T, &s, &err);
  if (rc != 0) show("dbp_snapshot_begin", rc, &err);
  CHECK(rc == 0);
  cr_expect(gtid_shape(dbp_snapshot_position(s)), "position %s", dbp_snapshot_position(s));
  cr_expect_str_eq(dbp_snapshot_position(s), gtid);
  cr_expect(strncmp(dbp_snapshot_binlog_file(s), "binlog.", 7) == 0, "file %s",
            dbp_snapshot_binlog_file(s));
  CHECK(dbp_snapshot_binlog_pos(s) > 0);
  CHECK(dbp_snapshot_join(s, w, T, &err) == 0);
  CHECK(dbp_snapshot_ready(s, T, &err) == 0);
  CHECK(dbp_snapshot_end(s, T) == 0);
  CHECK(exec(w, "COMMIT") == 0);
  CHECK(exec(c, "DROP TABLE snapb") == 0);
  dbp_conn_close(w);
  dbp_conn_close(c);
  return 0;
}

Test(snapshot_my, positions_with_binlog, .timeout = 30) {
  dbt_run(my_positions_with_binlog, NULL);
}

/* A user made for the test, with no privilege beyond logging in. */
#define NP_PASS "snap-np-Secret9"

static int my_without_reload(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *admin = NULL;
  CHECK(open_dsn(rt, dbt_my_dsn(), &admin) == 0);
  dbp_dsn dsn;
  char ebuf[256], user[64], sql[256], url[512];
  CHECK(dbp_dsn_parse(dbt_my_dsn(), &dsn, ebuf, sizeof ebuf) == 0);
  snprintf(user, sizeof user, "snap_np_%ld", (long)getpid());
  snprintf(url, sizeof url, "mysql://%s:%s@%s:%d/", user, NP_PASS, dsn.host, dsn.port);
  dbp_dsn_free(&dsn);
  snprintf(sql, sizeof sql, "CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, NP_PASS);
  CHECK(exec(admin, sql) == 0);

  int failed = 0;
  dbp_conn *c = NULL, *w[2] = {0};
  if (open_dsn(rt, url, &c) != 0 || open_dsn(rt, url, &w[0]) != 0 || open_dsn(rt, url, &w[1]) != 0)
    failed = 1;
  dbp_snapshot *s = NULL;
  dbp_dberr err;
  if (!failed) {
    int rc = dbp_snapshot_begin(c, NULL, T, &s, &err);
    cr_expect_eq(rc, DBP_EACCES, "begin: %s", dbp_err_name(rc));
    cr_expect(strstr(err.message, "RELOAD privilege") != NULL, "%s", err.message);
    cr_expect(strstr(err.message, "lock-free mode") != NULL, "%s", err.message);
    cr_expect(strstr(err.message, NP_PASS) == NULL, "%s", err.message);
    cr_expect_eq(err.code, DBP_EACCES);
    cr_expect(s == NULL && !dbp_conn_in_transaction(c) && !dbp_conn_is_broken(c));
    if (rc != DBP_EACCES) failed = 1;
  }
  if (!failed) {
    /* The lock-free mode needs nothing. */
    dbp_snapshot_options o = {.mode = DBP_SNAPSHOT_LOCK_FREE};
    int rc = dbp_snapshot_begin(c, &o, T, &s, &err);
    if (rc != 0) show("lock-free begin", rc, &err);
    for (int i = 0; i < 2 && rc == 0; i++) {
      rc = dbp_snapshot_join(s, w[i], T, &err);
      if (rc != 0) show("lock-free join", rc, &err);
      char v[8];
      if (rc == 0) rc = value(w[i], "SELECT 1", v, sizeof v);
      if (rc == 0) cr_expect(dbp_conn_in_transaction(w[i]));
    }
    if (rc == 0) {
      cr_expect_str_eq(dbp_snapshot_position(s), "");
      cr_expect_eq(dbp_snapshot_lock_us(s), 0);
      cr_expect_eq(dbp_snapshot_workers(s), 2);
      rc = dbp_snapshot_ready(s, T, &err);
    }
    if (rc == 0) rc = dbp_snapshot_end(s, T);
    if (rc != 0) failed = 1;
  }
  for (int i = 0; i < 2; i++)
    if (w[i] != NULL) dbp_conn_close(w[i]);
  if (c != NULL) dbp_conn_close(c);
  snprintf(sql, sizeof sql, "DROP USER '%s'@'%%'", user);
  CHECK(exec(admin, sql) == 0);
  dbp_conn_close(admin);
  return failed ? -1 : 0;
}

Test(snapshot_my, without_reload_a_clear_error_and_lock_free_works, .timeout = 30) {
  dbt_run(my_without_reload, NULL);
}

/* Giving up on the lock, or on its release, leaves no lock behind on a
 * connection that looks usable: `probe` can then take a backup stage of its
 * own (MariaDB runs one at a time). */
static int probe_stage_free(dbp_conn *probe) {
  int rc = dbp_exec(probe, "BACKUP STAGE START", 0, NULL, 3000, NULL);
  if (rc != 0) cr_expect(0, "a backup stage is still held: %s", dbp_err_name(rc));
  CHECK(rc == 0);
  CHECK(exec(probe, "BACKUP STAGE END") == 0);
  return 0;
}

static int my_gave_up_waiting(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL, *probe = NULL;
  CHECK(open_dsn(rt, dbt_my_dsn(), &c) == 0);
  CHECK(open_dsn(rt, dbt_my_dsn(), &probe) == 0);
  dbp_snapshot *s = NULL;
  dbp_dberr err;

  /* Another backup stage is running: the begin waits, and gives up at its
   * timeout with the wait cancelled on the server. */
  CHECK(exec(probe, "BACKUP STAGE START") == 0);
  int rc = dbp_snapshot_begin(c, NULL, 300, &s, &err);
  cr_expect_eq(rc, DBP_ETIMEDOUT, "%s: %s", dbp_err_name(rc), err.message);
  CHECK(s == NULL && !dbp_conn_is_broken(c) && !dbp_conn_in_transaction(c));
  CHECK(exec(probe, "BACKUP STAGE END") == 0);
  char v[8];
  CHECK(value(c, "SELECT 1", v, sizeof v) == 0);
  CHECK(probe_stage_free(probe) == 0);

  /* The lock is held and the coroutine's deadline has passed, so a call
   * succeeds only if the server's reply is there at once. Whatever the
   * release managed (the statement, else a session reset, else nothing),
   * a coordinator that still looks usable holds no lock: one that could
   * not be released is given up (broken), not left blocking every commit
   * on the server. */
  CHECK(dbp_snapshot_begin(c, NULL, T, &s, &err) == 0);
  uint64_t tok;
  CHECK(dbp_deadline_push(rt, 0, &tok) == 0);
  rc = dbp_snapshot_end(s, T);
  dbp_deadline_pop(rt, tok);
  cr_expect(rc == 0 || rc == DBP_ETIMEDOUT, "%s", dbp_err_name(rc));
  if (!dbp_conn_is_broken(c)) {
    CHECK(probe_stage_free(probe) == 0);
    CHECK(value(c, "SELECT 1", v, sizeof v) == 0);
  }
  dbp_conn_close(c);
  CHECK(probe_stage_free(probe) == 0);
  dbp_conn_close(probe);
  return 0;
}

Test(snapshot_my, giving_up_on_the_lock_leaves_none, .timeout = 60) {
  dbt_run(my_gave_up_waiting, NULL);
}
