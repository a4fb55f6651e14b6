/* The MySQL/MariaDB driver against a real server: what only MariaDB does
 * (the statement cache, the Unix socket, session reset, connect errors,
 * password sources, ...). What both databases do is tested once for both
 * in test_conn.c.
 *
 * Each test makes a runtime, runs its body in a coroutine (the database
 * calls wait), and checks what the body recorded. Bodies check with
 * cr_expect and return nonzero on the first failure, so nothing jumps off a
 * coroutine stack.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/driver.h" /* the driver's socket, for the keepalive tests */
#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "rttest.h"

static int open_my(dbp_rt *rt, dbp_conn **c) {
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_my_dsn(), 10000, c, &err);
  if (rc != 0) {
    char m[700];
    cr_expect(0, "connect failed: %s", dbp_dberr_format(&err, m, sizeof m));
  }
  return rc;
}

/* ---- transactions ---- */

static int tx_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  CHECK(!dbp_conn_in_transaction(c));
  CHECK_RC(
      c, dbp_exec(c, "CREATE TEMPORARY TABLE tx_t (a INT) ENGINE=InnoDB", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK(dbp_conn_in_transaction(c));
  CHECK_RC(c, dbp_exec(c, "ROLLBACK", 0, NULL, 10000, NULL), 0);
  CHECK(!dbp_conn_in_transaction(c));
  int64_t n = 0;
  CHECK_RC(c, dbp_exec(c, "INSERT INTO tx_t SELECT seq FROM seq_1_to_7", 0, NULL, 10000, &n), 0);
  CHECK(n == 7);
  CHECK_RC(c, dbp_exec(c, "DELETE FROM tx_t WHERE a > 5", 0, NULL, 10000, &n), 0);
  CHECK(n == 2);
  dbp_param p = dbt_param("3");
  CHECK_RC(c, dbp_exec(c, "DELETE FROM tx_t WHERE a <= ?", 1, &p, 10000, &n), 0);
  CHECK(n == 3);
  CHECK_RC(c, dbp_exec(c, "SELECT * FROM tx_t", 0, NULL, 10000, &n), 0);
  CHECK(n == 2);
  CHECK(dbp_conn_backend_id(c) > 0);
  CHECK(strstr(dbp_conn_dsn(c), "mysql://") == dbp_conn_dsn(c) ||
        strstr(dbp_conn_dsn(c), "mariadb://") == dbp_conn_dsn(c));
  CHECK_RC(c, dbp_query(c, "SELECT seq FROM seq_1_to_3", 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), DBP_ESTATE);
  CHECK_RC(c, dbp_query_close(c), 0);
  CHECK_RC(c, dbp_exec(c, "SELECT 1", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_copy_start(c, "SELECT 1", NULL, 10000), DBP_ENOCOPY);
  /* Several statements in one string are a syntax error (see
   * multi_statement_string_runs_nothing). */
  CHECK_RC(c, dbp_exec(c, "SELECT 1; SELEC 2", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->db_errno == 1064);
  /* A statement without rows given to dbp_query is an error (it has run:
   * the server only says afterwards that it returns no rows), with and
   * without parameters; the connection stays usable. */
  CHECK_RC(c, dbp_query(c, "UPDATE tx_t SET a = a + 1", 0, NULL, 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "no result set") != NULL);
  CHECK(dbp_ncols(c) == 0);
  CHECK(!dbp_conn_is_broken(c));
  dbp_param one = dbt_param("1");
  CHECK_RC(c, dbp_query(c, "UPDATE tx_t SET a = a + ?", 1, &one, 10000), DBP_EQUERY);
  CHECK(strstr(dbp_conn_error(c)->message, "no result set") != NULL);
  CHECK_RC(c, dbp_query(c, "SET @x = 1", 0, NULL, 10000), DBP_EQUERY);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT SUM(a) FROM tx_t", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "13") == 0);
  /* The server cannot make the client send its files. */
  CHECK_RC(
      c,
      dbp_exec(c, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE tx_t", 0, NULL, 10000, NULL),
      DBP_EQUERY);
  CHECK_RC(c, dbt_one_value(c, "SELECT COUNT(*) FROM tx_t", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "2") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(mysql, transactions_and_state, .timeout = 30) {
  dbt_run(tx_body, NULL);
}

/* ---- cancellation, for the statement cache ---- */

/* Asks a second connection whether session `id` is running a statement.
 * (A session that just answered a command shows it for a moment while the
 * server finishes writing; after a killed statement dbpipe pings, so that
 * moment belongs to the ping, not to the statement.) */
static int my_active(dbp_conn *mon, int64_t id, bool *active) {
  char sid[32], v[16];
  snprintf(sid, sizeof sid, "%" PRId64, id);
  dbp_param p = dbt_param(sid);
  int rc = dbt_one_value(mon,
                         "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND "
                         "command NOT IN ('Sleep', 'Ping')",
                         1, &p, v, sizeof v);
  *active = strcmp(v, "0") != 0;
  return rc;
}

static int after_cancel(dbp_rt *rt, dbp_conn *c, dbp_conn *mon, uint64_t t0) {
  uint64_t took = dbp_now(rt) - t0;
  cr_expect_lt(took, 1000, "the interrupted statement took %" PRIu64 " ms", took);
  CHECK(took < 1000);
  if (dbp_conn_is_broken(c)) return 0;
  bool active = true;
  CHECK_RC(mon, my_active(mon, dbp_conn_backend_id(c), &active), 0);
  CHECK(!active);
  char v[16];
  CHECK_RC(c, dbt_one_value(c, "SELECT 1", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "1") == 0);
  return 0;
}

/* ---- the statement cache ---- */

/* How many prepared statements a connection keeps (src/db/mysql.c). */
#define STMT_CACHE 16

/* One of the server's session status counters of c, read through the text
 * protocol (which moves none of the Com_stmt_* counters). */
static int session_status(dbp_conn *c, const char *name, int64_t *out) {
  char sql[128], v[32];
  snprintf(sql, sizeof sql, "SHOW SESSION STATUS LIKE '%s'", name);
  int rc = dbp_query(c, sql, 0, NULL, 10000);
  if (rc != 0) return rc;
  dbp_row row;
  rc = dbp_fetch(c, &row);
  if (rc != 1) return rc < 0 ? rc : DBP_EPROTO;
  size_t n = row.lens[1] < sizeof v - 1 ? row.lens[1] : sizeof v - 1;
  memcpy(v, row.vals[1], n);
  v[n] = '\0';
  *out = strtoll(v, NULL, 10);
  rc = dbp_fetch(c, &row);
  return rc == 0 ? 0 : (rc < 0 ? rc : DBP_EPROTO);
}

/* The prepared statements c's session holds on the server: prepared minus
 * closed (every prepare in these tests succeeds). */
static int open_stmts(dbp_conn *c, int64_t *out) {
  int64_t prep = 0, closed = 0;
  int rc = session_status(c, "Com_stmt_prepare", &prep);
  if (rc == 0) rc = session_status(c, "Com_stmt_close", &closed);
  *out = prep - closed;
  return rc;
}

static int reuse_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  int64_t prep0, exec0, prep1, exec1;
  CHECK_RC(c, session_status(c, "Com_stmt_prepare", &prep0), 0);
  CHECK_RC(c, session_status(c, "Com_stmt_execute", &exec0), 0);
  for (int i = 1; i <= 1000; i++) {
    char id[16], twice[16];
    snprintf(id, sizeof id, "%d", i);
    snprintf(twice, sizeof twice, "%d", 2 * i);
    dbp_param p = dbt_param(id);
    CHECK_RC(c, dbp_query(c, "SELECT seq, seq * 2 FROM seq_1_to_1000 WHERE seq = ?", 1, &p, 10000),
             0);
    CHECK(dbp_ncols(c) == 2);
    dbp_row r;
    CHECK_RC(c, dbp_fetch(c, &r), 1);
    CHECK(dbt_val_is(&r, 0, id) && dbt_val_is(&r, 1, twice));
    CHECK_RC(c, dbp_fetch(c, &r), 0);
  }
  CHECK_RC(c, session_status(c, "Com_stmt_prepare", &prep1), 0);
  CHECK_RC(c, session_status(c, "Com_stmt_execute", &exec1), 0);
  cr_expect_eq(prep1 - prep0, 1, "prepared %" PRId64 " times", prep1 - prep0);
  cr_expect_eq(exec1 - exec0, 1000, "executed %" PRId64 " times", exec1 - exec0);
  CHECK(prep1 - prep0 == 1 && exec1 - exec0 == 1000);
  /* dbp_exec shares the cache. */
  dbp_param p = dbt_param("7");
  int64_t affected = -1;
  for (int i = 0; i < 3; i++) CHECK_RC(c, dbp_exec(c, "DO ?", 1, &p, 10000, &affected), 0);
  CHECK_RC(c, session_status(c, "Com_stmt_prepare", &prep1), 0);
  CHECK(prep1 - prep0 == 2);
  dbp_conn_close(c);
  return 0;
}

Test(stmt_cache, repeated_statement_is_prepared_once, .timeout = 60) {
  dbt_run(reuse_body, NULL);
}

static int evict_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  int64_t before = 0, open = 0, global = 0;
  CHECK_RC(c, open_stmts(c, &before), 0);
  CHECK(before == 0);
  /* Three rounds over more distinct statements than the cache holds, in
   * an order that keeps evicting. */
  for (int round = 0; round < 3; round++) {
    for (int k = 0; k < 2 * STMT_CACHE + 8; k++) {
      char sql[64], want[32];
      snprintf(sql, sizeof sql, "SELECT ? + %d", k);
      snprintf(want, sizeof want, "%d", 1000 * round + k);
      char in[16], v[32];
      snprintf(in, sizeof in, "%d", 1000 * round);
      dbp_param p = dbt_param(in);
      CHECK_RC(c, dbt_one_value(c, sql, 1, &p, v, sizeof v), 0);
      cr_expect_str_eq(v, want);
      CHECK(strcmp(v, want) == 0);
      CHECK_RC(c, open_stmts(c, &open), 0);
      CHECK(open >= 1 && open <= STMT_CACHE);
    }
  }
  cr_expect_eq(open, STMT_CACHE, "%" PRId64 " statements open", open);
  CHECK(open == STMT_CACHE);
  /* The server agrees (other sessions may hold statements too). */
  dbp_row r;
  CHECK_RC(c, dbp_query(c, "SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'", 0, NULL, 10000), 0);
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  global = strtoll(r.vals[1], NULL, 10);
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  CHECK(global >= STMT_CACHE);
  dbp_conn_close(c);
  return 0;
}

Test(stmt_cache, more_statements_than_it_holds_all_work, .timeout = 60) {
  dbt_run(evict_body, NULL);
}

/* Runs `SELECT * FROM tbl WHERE id = ?` for id 1 and checks the column
 * names (comma-separated) and the values. */
static int select_star(dbp_conn *c, const char *tbl, const char *names, const char *vals) {
  char sql[128], got_names[128] = "", got_vals[128] = "";
  snprintf(sql, sizeof sql, "SELECT * FROM %s WHERE id = ?", tbl);
  dbp_param p = dbt_param("1");
  CHECK_RC(c, dbp_query(c, sql, 1, &p, 10000), 0);
  const dbp_column *cols = dbp_columns(c);
  for (size_t i = 0; i < dbp_ncols(c); i++) {
    strcat(got_names, i ? "," : "");
    strcat(got_names, cols[i].name);
  }
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  for (size_t i = 0; i < r.ncols; i++) {
    strcat(got_vals, i ? "," : "");
    strncat(got_vals, r.vals[i] ? r.vals[i] : "NULL", r.vals[i] ? r.lens[i] : 4);
  }
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  cr_expect_str_eq(got_names, names);
  cr_expect_str_eq(got_vals, vals);
  CHECK(strcmp(got_names, names) == 0 && strcmp(got_vals, vals) == 0);
  return 0;
}

static int alter_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  char tbl[64], sql[256];
  snprintf(tbl, sizeof tbl, "stmt_alter_%ld", (long)getpid());
  snprintf(sql, sizeof sql, "CREATE OR REPLACE TABLE %s (id INT PRIMARY KEY, a VARCHAR(10))", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (?, 'one')", tbl);
  dbp_param one = dbt_param("1");
  CHECK_RC(c, dbp_exec(c, sql, 1, &one, 10000, NULL), 0);
  /* A failing execution (duplicate key) leaves the statement usable. */
  CHECK_RC(c, dbp_exec(c, sql, 1, &one, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->db_errno == 1062);
  dbp_param two = dbt_param("2");
  int64_t affected = 0;
  CHECK_RC(c, dbp_exec(c, sql, 1, &two, 10000, &affected), 0);
  CHECK(affected == 1);

  CHECK(select_star(c, tbl, "id,a", "1,one") == 0);
  CHECK(select_star(c, tbl, "id,a", "1,one") == 0);
  snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN b INT NOT NULL DEFAULT 7", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  CHECK(select_star(c, tbl, "id,a,b", "1,one,7") == 0);
  /* The same number of columns, other names and types. */
  snprintf(sql, sizeof sql, "ALTER TABLE %s CHANGE a c VARCHAR(20), MODIFY b VARCHAR(5)", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "UPDATE %s SET c = ?, b = 'x' WHERE id = 1", tbl);
  dbp_param d = dbt_param("uno");
  CHECK_RC(c, dbp_exec(c, sql, 1, &d, 10000, &affected), 0);
  CHECK(select_star(c, tbl, "id,c,b", "1,uno,x") == 0);
  snprintf(sql, sizeof sql, "SELECT * FROM %s WHERE id = ?", tbl);
  CHECK_RC(c, dbp_query(c, sql, 1, &one, 10000), 0);
  CHECK(dbp_columns(c)[2].type == DBP_T_TEXT);
  CHECK_RC(c, dbp_query_close(c), 0);
  /* Fewer columns. */
  snprintf(sql, sizeof sql, "ALTER TABLE %s DROP COLUMN c", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  CHECK(select_star(c, tbl, "id,b", "1,x") == 0);
  snprintf(sql, sizeof sql, "DROP TABLE %s", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

Test(stmt_cache, cached_statement_follows_alter_table, .timeout = 60) {
  dbt_run(alter_body, NULL);
}

static int cached_timeout_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c, *mon;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  CHECK_RC(NULL, open_my(rt, &mon), 0);
  char v[16];
  dbp_param zero = dbt_param("0"), ten = dbt_param("10");
  for (int round = 0; round < 2; round++) {
    CHECK_RC(c, dbt_one_value(c, "SELECT SLEEP(?)", 1, &zero, v, sizeof v), 0);
    CHECK(strcmp(v, "0") == 0);
    CHECK_RC(c, dbt_one_value(c, "SELECT SLEEP(?)", 1, &zero, v, sizeof v), 0);
    uint64_t t0 = dbp_now(rt);
    CHECK_RC(c, dbp_query(c, "SELECT SLEEP(?)", 1, &ten, 100), DBP_ETIMEDOUT);
    CHECK(after_cancel(rt, c, mon, t0) == 0);
    CHECK(!dbp_conn_is_broken(c));
    CHECK_RC(c, dbt_one_value(c, "SELECT SLEEP(?)", 1, &zero, v, sizeof v), 0);
    CHECK(strcmp(v, "0") == 0);
    t0 = dbp_now(rt);
    CHECK_RC(c, dbp_exec(c, "SELECT SLEEP(?)", 1, &ten, 100, NULL), DBP_ETIMEDOUT);
    CHECK(after_cancel(rt, c, mon, t0) == 0);
    CHECK(!dbp_conn_is_broken(c));
  }
  CHECK_RC(c, dbt_one_value(c, "SELECT SLEEP(?)", 1, &zero, v, sizeof v), 0);
  CHECK(strcmp(v, "0") == 0);
  int64_t open = 0;
  CHECK_RC(c, open_stmts(c, &open), 0);
  CHECK(open >= 1 && open <= STMT_CACHE);
  dbp_conn_close(c);
  dbp_conn_close(mon);
  return 0;
}

Test(stmt_cache, timed_out_cached_statement_runs_again, .timeout = 60) {
  dbt_run(cached_timeout_body, NULL);
}

/* Reads the rest of `SELECT seq ... WHERE seq >= from` and checks every
 * row follows on. */
static int read_from(dbp_conn *c, int from, int to) {
  dbp_row r;
  int rc, want = from;
  while ((rc = dbp_fetch(c, &r)) == 1) {
    char s[16];
    snprintf(s, sizeof s, "%d", want++);
    CHECK(dbt_val_is(&r, 0, s));
  }
  CHECK_RC(c, rc, 0);
  CHECK(want == to + 1);
  return 0;
}

static int abandon_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  const char *big = "SELECT seq, REPEAT('x', 100) FROM seq_1_to_1000000 WHERE seq >= ?";
  const char *small = "SELECT seq FROM seq_1_to_5 WHERE seq >= ?";
  dbp_param one = dbt_param("1"), three = dbt_param("3"), k = dbt_param("999000");
  dbp_row r;
  for (int round = 0; round < 2; round++) {
    /* Abandoned halfway, with much left on the server. */
    CHECK_RC(c, dbp_query(c, big, 1, &one, 30000), 0);
    for (int i = 0; i < 10; i++) CHECK_RC(c, dbp_fetch(c, &r), 1);
    CHECK_RC(c, dbp_query_close(c), 0);
    CHECK(!dbp_conn_is_broken(c));
    CHECK_RC(c, dbp_query(c, big, 1, &k, 30000), 0);
    CHECK(read_from(c, 999000, 1000000) == 0);
    /* Abandoned with the rest already read by the library. */
    CHECK_RC(c, dbp_query(c, small, 1, &one, 10000), 0);
    CHECK_RC(c, dbp_fetch(c, &r), 1);
    CHECK_RC(c, dbp_query_close(c), 0);
    CHECK_RC(c, dbp_query(c, small, 1, &three, 10000), 0);
    CHECK(read_from(c, 3, 5) == 0);
  }
  dbp_conn_close(c);
  return 0;
}

Test(stmt_cache, abandoned_stream_then_same_statement, .timeout = 120) {
  dbt_run(abandon_body, NULL);
}

/* ---- one statement per string ---- */

/* A string of several statements is refused by the server as a whole:
 * the first statement's rows are not exported while a second one
 * deletes. */
static int multi_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  char tbl[64], sql[256], v[16];
  snprintf(tbl, sizeof tbl, "multi_%ld", (long)getpid());
  snprintf(sql, sizeof sql, "CREATE OR REPLACE TABLE %s (a INT)", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1), (2), (3)", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  snprintf(sql, sizeof sql, "select 1 as a; delete from %s", tbl);
  CHECK_RC(c, dbp_query(c, sql, 0, NULL, 10000), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->db_errno == 1064);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), DBP_EQUERY);
  snprintf(sql, sizeof sql, "delete from %s; select 1 as a", tbl);
  CHECK_RC(c, dbp_query(c, sql, 0, NULL, 10000), DBP_EQUERY);
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", tbl);
  CHECK_RC(c, dbt_one_value(c, sql, 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, "3", "rows were deleted");
  CHECK(strcmp(v, "3") == 0);
  snprintf(sql, sizeof sql, "DROP TABLE %s", tbl);
  CHECK_RC(c, dbp_exec(c, sql, 0, NULL, 10000, NULL), 0);
  dbp_conn_close(c);
  return 0;
}

Test(mysql, multi_statement_string_runs_nothing, .timeout = 30) {
  dbt_run(multi_body, NULL);
}

/* ---- Unix socket ---- */

#define SOCKET_CONNECTS 100

typedef struct sock_run {
  dbp_rt *rt;
  int ok, failed;
  char first_error[700];
} sock_run;

static int sock_one(void *arg, void **result) {
  (void)result;
  sock_run *s = arg;
  dbp_rt *rt = s->rt;
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dbt_my_socket_dsn(), 30000, &c, &err);
  if (rc == 0) rc = dbp_exec(c, "DO 1", 0, NULL, 30000, NULL);
  if (rc == 0) {
    s->ok++;
  } else {
    if (s->failed++ == 0) dbp_dberr_format(c ? dbp_conn_error(c) : &err, s->first_error, 700);
  }
  dbp_conn_close(c);
  return 0;
}

/* Many connects at once over the socket, where the handshake often ends
 * inside the first call of the nonblocking connect. */
static int socket_body(dbp_rt *rt, void *arg) {
  (void)arg;
  sock_run s = {rt, 0, 0, ""};
  dbp_co *cos[SOCKET_CONNECTS];
  for (int i = 0; i < SOCKET_CONNECTS; i++) CHECK(dbp_spawn(rt, &cos[i], sock_one, &s, NULL) == 0);
  for (int i = 0; i < SOCKET_CONNECTS; i++) CHECK(dbp_join(cos[i], NULL) == 0);
  cr_expect_eq(s.ok, SOCKET_CONNECTS, "%d of %d socket connects failed; the first: %s", s.failed,
               SOCKET_CONNECTS, s.first_error);
  CHECK(s.ok == SOCKET_CONNECTS);
  return 0;
}

/* The socket parameter with host localhost (which dbpipe resolves to an
 * address) still means the socket, as for the mariadb client; the server
 * sees a local user. */
static int socket_localhost_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_dsn d;
  char err[256], dsn[1024], v[128];
  CHECK(dbp_dsn_parse(dbt_my_socket_dsn(), &d, err, sizeof err) == 0);
  snprintf(dsn, sizeof dsn, "mysql://%s:%s@localhost/%s?socket=%s", d.user, d.password, d.dbname,
           dbp__dsn_param(&d, "socket"));
  dbp_dsn_free(&d);
  dbp_conn *c = NULL;
  dbp_dberr e;
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &e);
  cr_expect_eq(rc, 0, "%s: %s", dsn, e.message);
  CHECK(rc == 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT CURRENT_USER()", 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, "dbpipe@localhost");
  CHECK(strcmp(v, "dbpipe@localhost") == 0);
  /* A cancel reaches the session through the socket too. */
  CHECK_RC(c, dbp_exec(c, "SELECT SLEEP(30)", 0, NULL, 200, NULL), DBP_ETIMEDOUT);
  CHECK(!dbp_conn_is_broken(c));
  dbp_conn_close(c);
  return 0;
}

Test(mysql, socket_parameter_with_localhost_uses_the_socket, .timeout = 60) {
  dbt_run(socket_localhost_body, NULL);
}

/* CPU load beside the connects: the client is often descheduled between
 * its connect and its reads, so the server's answers are already waiting
 * and the library finishes the handshake without returning. The load runs
 * in child processes that stop by themselves after a minute at most. */
Test(mysql, many_concurrent_socket_connects, .timeout = 120) {
  pid_t kids[4];
  for (int i = 0; i < 4; i++) {
    kids[i] = fork();
    cr_assert(kids[i] >= 0);
    if (kids[i] == 0) {
      alarm(60);
      for (volatile uint64_t x = 0;; x++) {
      }
    }
  }
  int rc = 0;
  for (int round = 0; round < 3 && rc == 0; round++) rc = dbt_run_in_coro(socket_body, NULL);
  for (int i = 0; i < 4; i++) {
    kill(kids[i], SIGKILL);
    waitpid(kids[i], NULL, 0);
  }
  cr_assert_eq(rc, 0);
}

/* ---- session reset ---- */

static int reset_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  char v[256], tz0[64], mode0[256], cs0[64];
  CHECK_RC(c, dbt_one_value(c, "SELECT @@session.time_zone", 0, NULL, tz0, sizeof tz0), 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT @@session.sql_mode", 0, NULL, mode0, sizeof mode0), 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT @@character_set_client", 0, NULL, cs0, sizeof cs0), 0);
  CHECK(strcmp(cs0, "utf8mb4") == 0);
  /* A bound statement in the driver's cache before the reset. */
  dbp_param p = dbt_param("41");
  CHECK_RC(c, dbt_one_value(c, "SELECT ? + 1", 1, &p, v, sizeof v), 0);
  CHECK(strcmp(v, "42") == 0);
  /* An earlier user's session state of every kind. */
  CHECK_RC(c, dbp_exec(c, "SET @leftover = 'x'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "SET time_zone = '+05:00'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "SET sql_mode = 'ANSI_QUOTES'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "SET NAMES latin1", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "CREATE TEMPORARY TABLE leftover_t (a INT)", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "PREPARE leftover_s FROM 'SELECT 1'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_exec(c, "BEGIN", 0, NULL, 10000, NULL), 0);
  CHECK(dbp_conn_in_transaction(c));

  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK(!dbp_conn_in_transaction(c));

  CHECK_RC(c, dbt_one_value(c, "SELECT COALESCE(@leftover, 'gone')", 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, "gone", "a user variable survived the reset");
  CHECK(strcmp(v, "gone") == 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT @@session.time_zone", 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, tz0, "time_zone survived the reset");
  CHECK(strcmp(v, tz0) == 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT @@session.sql_mode", 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, mode0, "sql_mode survived the reset: %s, was %s", v, mode0);
  CHECK(strcmp(v, mode0) == 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT @@character_set_client", 0, NULL, v, sizeof v), 0);
  cr_expect_str_eq(v, cs0, "the character set was not set again");
  CHECK(strcmp(v, cs0) == 0);
  CHECK_RC(c, dbp_exec(c, "SELECT * FROM leftover_t", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->db_errno == 1146); /* no such table */
  CHECK_RC(c, dbp_exec(c, "EXECUTE leftover_s", 0, NULL, 10000, NULL), DBP_EQUERY);
  CHECK(dbp_conn_error(c)->db_errno == 1243); /* unknown prepared statement */
  /* The cached statement was dropped by the server; the driver prepares
   * it again. */
  p = dbt_param("99");
  CHECK_RC(c, dbt_one_value(c, "SELECT ? + 1", 1, &p, v, sizeof v), 0);
  cr_expect_str_eq(v, "100");
  CHECK(strcmp(v, "100") == 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT ? + 1", 1, &p, v, sizeof v), 0);
  CHECK(strcmp(v, "100") == 0);
  /* Text beyond latin1 still round-trips in utf8mb4. */
  dbp_param u = dbt_param("\xe2\x82\xac\xf0\x9f\x98\x80");
  CHECK_RC(c, dbt_one_value(c, "SELECT ?", 1, &u, v, sizeof v), 0);
  CHECK(strcmp(v, "\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
  /* keep_session only rolls back. */
  CHECK_RC(c, dbp_exec(c, "SET @kept = 'y'", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, dbp_conn_reset(c, true, 10000), 0);
  CHECK_RC(c, dbt_one_value(c, "SELECT COALESCE(@kept, 'gone')", 0, NULL, v, sizeof v), 0);
  CHECK(strcmp(v, "y") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(mysql, reset_clears_session_state, .timeout = 60) {
  dbt_run(reset_body, NULL);
}

/* A reset with the statement cache full, then every statement again. */
static int reset_cache_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c;
  CHECK_RC(NULL, open_my(rt, &c), 0);
  for (int round = 0; round < 3; round++) {
    for (int k = 0; k < STMT_CACHE; k++) {
      char sql[64], want[32], v[32];
      snprintf(sql, sizeof sql, "SELECT ? + %d", k);
      snprintf(want, sizeof want, "%d", 1 + k);
      dbp_param p = dbt_param("1");
      CHECK_RC(c, dbt_one_value(c, sql, 1, &p, v, sizeof v), 0);
      cr_expect_str_eq(v, want);
      CHECK(strcmp(v, want) == 0);
      CHECK_RC(c, dbt_one_value(c, sql, 1, &p, v, sizeof v), 0);
      CHECK(strcmp(v, want) == 0);
    }
    CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  }
  dbp_conn_close(c);
  return 0;
}

Test(mysql, reset_keeps_cached_statements_working, .timeout = 60) {
  dbt_run(reset_cache_body, NULL);
}

/* ---- connect errors ---- */

/* Writes into out the DSN `base` with user, password (NULL: none), the
 * database and query parameters replaced where given. */
static void dsn_with(char *out, size_t len, const char *base, const char *user, const char *pw,
                     const char *db, const char *params) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(base, &d, err, sizeof err), 0, "%s", err);
  snprintf(out, len, "mysql://%s%s%s@%s:%d/%s%s%s", user ? user : d.user, pw ? ":" : "",
           pw ? pw : "", d.host, d.port, db ? db : d.dbname, params ? "?" : "",
           params ? params : "");
  dbp_dsn_free(&d);
}

/* Opens dsn expecting failure `want`; checks retryable and that the
 * SQLSTATE is `state` ("" = none). */
static int open_fails(dbp_rt *rt, const char *dsn, int want, bool retryable, const char *state) {
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &err);
  char m[700];
  dbp_dberr_format(&err, m, sizeof m);
  cr_expect_eq(rc, want, "%s: got %s (%s)", dsn, dbp_err_name(rc), m);
  if (c != NULL) dbp_conn_close(c);
  CHECK(rc == want);
  cr_expect_eq(err.retryable, retryable, "%s: retryable %d (%s)", dsn, err.retryable, m);
  CHECK(err.retryable == retryable);
  cr_expect_str_eq(err.sqlstate, state, "%s: SQLSTATE '%s' (%s)", dsn, err.sqlstate, m);
  CHECK(strcmp(err.sqlstate, state) == 0);
  CHECK(strstr(m, ":dbpipe@") == NULL);
  return 0;
}

static int errors_body(dbp_rt *rt, void *arg) {
  (void)arg;
  char dsn[1024];
  /* A user limited to one connection: the second one is "too many". */
  dbp_conn *one = NULL;
  dbp_dberr err;
  CHECK(dbp_conn_open(rt, dbt_my_limited_dsn(), 10000, &one, &err) == 0);
  dbp_conn *two = NULL;
  int rc = dbp_conn_open(rt, dbt_my_limited_dsn(), 10000, &two, &err);
  char m[700];
  cr_expect_eq(rc, DBP_ETOOMANY, "second connection: %s (%s)", dbp_err_name(rc),
               dbp_dberr_format(&err, m, sizeof m));
  dbp_conn_close(two);
  dbp_conn_close(one);
  CHECK(rc == DBP_ETOOMANY);
  CHECK(err.retryable);
  CHECK(err.db_errno == 1203 || err.db_errno == 1226);
  /* A database the user may not see (1044; the server says so rather
   * than "unknown database" to a user without global rights), a wrong
   * password: trying again does not help. */
  dsn_with(dsn, sizeof dsn, dbt_my_dsn(), NULL, "dbpipe", "no_such_db_here", NULL);
  CHECK(open_fails(rt, dsn, DBP_EAUTH, false, "42000") == 0);
  dsn_with(dsn, sizeof dsn, dbt_my_dsn(), NULL, "wrong-password", NULL, NULL);
  CHECK(open_fails(rt, dsn, DBP_EAUTH, false, "28000") == 0);
  /* Nobody listens: the library's own error has no SQLSTATE. */
  CHECK(open_fails(rt, "mysql://u:p@127.0.0.1:1/db", DBP_ECONNECT, true, "") == 0);
  return 0;
}

Test(mysql, connect_errors_are_sorted, .timeout = 60) {
  dbt_run(errors_body, NULL);
}

/* ---- password sources ---- */

/* Makes a fresh HOME (returned path) with ~/.my.cnf holding `cnf` (NULL:
 * no file). */
static void fake_home(char *home, size_t len, const char *cnf) {
  snprintf(home, len, "/tmp/dbpipe-home-XXXXXX");
  cr_assert(mkdtemp(home) != NULL);
  cr_assert_eq(setenv("HOME", home, 1), 0);
  if (cnf == NULL) return;
  char path[512];
  snprintf(path, sizeof path, "%s/.my.cnf", home);
  FILE *f = fopen(path, "w");
  cr_assert(f != NULL);
  fputs(cnf, f);
  fclose(f);
  chmod(path, 0600);
}

static void drop_home(const char *home) {
  char path[512];
  snprintf(path, sizeof path, "%s/.my.cnf", home);
  unlink(path);
  rmdir(home);
}

typedef struct pw_case {
  const char *cnf; /* ~/.my.cnf, or NULL */
  const char *env; /* MYSQL_PWD, or NULL */
  int want;        /* what connecting without a password gives */
  mode_t mode;     /* ~/.my.cnf's mode; 0 = 0600 */
} pw_case;

static int pw_body(dbp_rt *rt, void *arg) {
  const pw_case *pc = arg;
  char dsn[1024];
  dsn_with(dsn, sizeof dsn, dbt_my_dsn(), NULL, NULL, NULL, NULL);
  dbp_conn *c = NULL;
  dbp_dberr err;
  char m[700];
  int rc = dbp_conn_open(rt, dsn, 10000, &c, &err);
  cr_expect_eq(rc, pc->want, "%s: %s (%s)", dsn, dbp_err_name(rc),
               dbp_dberr_format(&err, m, sizeof m));
  if (rc == 0) {
    char v[128];
    /* Where it connected is the DSN's choice, not the file's. */
    CHECK_RC(
        c, dbt_one_value(c, "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())", 0, NULL, v, sizeof v),
        0);
    cr_expect_str_eq(v, "dbpipe@127.0.0.1 shop");
    CHECK(strcmp(v, "dbpipe@127.0.0.1 shop") == 0);
    dbp_conn_close(c);
  } else if (c != NULL) {
    dbp_conn_close(c);
  }
  CHECK(rc == pc->want);
  return 0;
}

static void run_pw(pw_case pc) {
  char home[64];
  fake_home(home, sizeof home, pc.cnf);
  if (pc.mode != 0) {
    char path[600];
    snprintf(path, sizeof path, "%s/.my.cnf", home);
    cr_assert_eq(chmod(path, pc.mode), 0);
  }
  if (pc.env != NULL)
    cr_assert_eq(setenv("MYSQL_PWD", pc.env, 1), 0);
  else
    unsetenv("MYSQL_PWD");
  int rc = dbt_run_in_coro(pw_body, &pc);
  drop_home(home);
  cr_assert_eq(rc, 0);
}

Test(mysql, password_from_mysql_pwd, .timeout = 30) {
  run_pw((pw_case){NULL, "dbpipe", 0, 0});
}

Test(mysql, password_from_my_cnf_client_group, .timeout = 30) {
  run_pw(
      (pw_case){"[mysqld]\npassword=nope\n[client]\nuser = root\npassword = \"dbpipe\"\n"
                "host=192.0.2.1\nport=1\ndatabase=mysql\nsocket=/nonexistent\n",
                "wrong", 0, 0});
}

Test(mysql, password_from_my_cnf_client_mariadb_group, .timeout = 30) {
  run_pw((pw_case){"# comment\n[client]\npassword=wrong\n[client-mariadb]\npassword=dbpipe\n", NULL,
                   0, 0});
}

/* A file anybody may write could hand dbpipe anybody's password: ignored,
 * as the mariadb client ignores it. */
Test(mysql, a_world_writable_my_cnf_is_ignored, .timeout = 30) {
  run_pw((pw_case){"[client]\npassword=dbpipe\n", NULL, DBP_EAUTH, 0666});
}

Test(mysql, no_password_anywhere_is_refused, .timeout = 30) {
  run_pw((pw_case){"[client]\nuser=dbpipe\n", NULL, DBP_EAUTH, 0});
}
