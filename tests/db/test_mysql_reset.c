/* The MySQL/MariaDB session reset against a real MariaDB: what it costs
 * (COM_RESET_CONNECTION alone, no statement after it) and that the
 * session's character set and collation come back as the login set them,
 * also for a character set that is not the server's default.
 *
 * Bodies run in a coroutine and check with cr_expect, returning nonzero on
 * the first failure (see dbcheck.h).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "dbvalues.h"
#include "rttest.h"

/* The fixture's MariaDB DSN with `params` as its query string. */
static void dsn_params(char *out, size_t len, const char *params) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(dbt_my_dsn(), &d, err, sizeof err), 0, "%s", err);
  snprintf(out, len, "mysql://%s:%s@%s:%d/%s?%s", d.user, d.password ? d.password : "", d.host,
           d.port, d.dbname, params);
  dbp_dsn_free(&d);
}

/* One of the server's session status counters, read with a text query. */
static int session_counter(dbp_conn *c, const char *name, long *out) {
  char sql[128], v[32];
  snprintf(sql, sizeof sql, "SHOW SESSION STATUS LIKE '%s'", name);
  dbp_row r;
  int rc = dbp_query(c, sql, 0, NULL, 10000);
  if (rc != 0) return rc;
  if ((rc = dbp_fetch(c, &r)) != 1) return rc < 0 ? rc : DBP_EPROTO;
  size_t n = r.lens[1] < sizeof v - 1 ? r.lens[1] : sizeof v - 1;
  memcpy(v, r.vals[1], n);
  v[n] = '\0';
  *out = strtol(v, NULL, 10);
  rc = dbp_fetch(c, &r);
  return rc == 0 ? 0 : (rc < 0 ? rc : DBP_EPROTO);
}

/* The character set and collation of the session, as "cs/collation". */
static int charset_of(dbp_conn *c, char *out, size_t len) {
  return dbt_one_value(c,
                       "SELECT CONCAT(@@character_set_client, '/', @@character_set_results, '/', "
                       "@@collation_connection)",
                       0, NULL, out, len);
}

static int charset_body(dbp_rt *rt, void *arg) {
  const char *params = arg;
  char dsn[1024], at_connect[200], v[200];
  dsn_params(dsn, sizeof dsn, params);
  dbp_conn *c = NULL;
  dbp_dberr err;
  CHECK_RC(NULL, dbp_conn_open(rt, dsn, 10000, &c, &err), 0);
  CHECK_RC(c, charset_of(c, at_connect, sizeof at_connect), 0);
  const char *cs = strchr(params, '=') + 1;
  cr_expect(strncmp(at_connect, cs, strlen(cs)) == 0, "connected as %s", at_connect);
  CHECK(strncmp(at_connect, cs, strlen(cs)) == 0);
  /* A bound statement in the cache, then another character set. */
  dbp_param p = dbt_param("1");
  CHECK_RC(c, dbt_one_value(c, "SELECT ? + 1", 1, &p, v, sizeof v), 0);
  CHECK(strcmp(v, "2") == 0);
  CHECK_RC(c, dbp_exec(c, "SET NAMES cp1251", 0, NULL, 10000, NULL), 0);
  CHECK_RC(c, charset_of(c, v, sizeof v), 0);
  CHECK(strncmp(v, "cp1251/", 7) == 0);

  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK(!dbp_conn_is_broken(c));
  CHECK_RC(c, charset_of(c, v, sizeof v), 0);
  cr_expect_str_eq(v, at_connect, "after the reset, the session has %s", v);
  CHECK(strcmp(v, at_connect) == 0);
  /* The kept statement was dropped with the session and is prepared
   * again. */
  CHECK_RC(c, dbt_one_value(c, "SELECT ? + 1", 1, &p, v, sizeof v), 0);
  CHECK(strcmp(v, "2") == 0);
  dbp_conn_close(c);
  return 0;
}

Test(mysql_reset, restores_the_dsn_charset_utf8mb4, .timeout = 60) {
  dbt_run(charset_body, "charset=utf8mb4");
}

Test(mysql_reset, restores_the_dsn_charset_latin1, .timeout = 60) {
  dbt_run(charset_body, "charset=latin1");
}

/* On MariaDB (10.5.5 and later, which restores the login's character set
 * itself) the reset is COM_RESET_CONNECTION alone: the server counts no
 * statement run by the driver after it, and no statement handle closed. */
static int cost_body(dbp_rt *rt, void *arg) {
  (void)arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  CHECK_RC(NULL, dbp_conn_open(rt, dbt_my_dsn(), 10000, &c, &err), 0);
  char ver[64];
  CHECK_RC(c, dbt_one_value(c, "SELECT VERSION()", 0, NULL, ver, sizeof ver), 0);
  cr_expect(strstr(ver, "MariaDB") != NULL, "the fixture's server is %s", ver);
  CHECK(strstr(ver, "MariaDB") != NULL);
  int major = 0, minor = 0, patch = 0;
  CHECK(sscanf(ver, "%d.%d.%d", &major, &minor, &patch) == 3);
  CHECK(major * 10000 + minor * 100 + patch >= 100505);
  /* Three kept statements. */
  for (int k = 0; k < 3; k++) {
    char sql[32], v[32], want[32];
    snprintf(sql, sizeof sql, "SELECT ? * %d", k + 2);
    snprintf(want, sizeof want, "%d", 3 * (k + 2));
    dbp_param p = dbt_param("3");
    CHECK_RC(c, dbt_one_value(c, sql, 1, &p, v, sizeof v), 0);
    CHECK(strcmp(v, want) == 0);
  }
  long questions = -1, closed = -1, prepared = -1;
  CHECK_RC(c, session_counter(c, "Com_stmt_prepare", &prepared), 0);
  CHECK(prepared == 3);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  /* The reset zeroes the session's counters; the first statement after it
   * is the one counting. */
  CHECK_RC(c, session_counter(c, "Questions", &questions), 0);
  cr_expect_eq(questions, 1, "%ld statements since the reset", questions);
  CHECK(questions == 1);
  CHECK_RC(c, session_counter(c, "Com_stmt_close", &closed), 0);
  CHECK(closed == 0);
  CHECK_RC(c, session_counter(c, "Com_stmt_prepare", &prepared), 0);
  CHECK(prepared == 0);
  /* And twice in a row, with no kept statement in between. */
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK_RC(c, dbp_conn_reset(c, false, 10000), 0);
  CHECK_RC(c, session_counter(c, "Questions", &questions), 0);
  CHECK(questions == 1);
  dbp_conn_close(c);
  return 0;
}

Test(mysql_reset, is_one_command_on_mariadb, .timeout = 60) {
  dbt_run(cost_body, NULL);
}
