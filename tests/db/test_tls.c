/* TLS against real servers, for both databases: what each sslmode does
 * with a server that speaks TLS (the fixture's main servers, whose
 * certificate from the test CA names localhost, 127.0.0.1 and ::1 but not
 * 127.0.0.2, where they listen too) and with one that does not (the
 * fixture's servers without TLS). On PostgreSQL this is libpq's own work;
 * these tests prove it holds through dbpipe, as they prove the MariaDB
 * driver's.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "dbtest.h"
#include "rttest.h"

/* Writes into out the DSN `base` pointed at `host` (NULL: base's own),
 * with the query parameters `params` (may be NULL; "%CA%" stands for the
 * test CA file and "%OTHERCA%" for the CA that signed nothing). */
static void make_dsn(char *out, size_t len, const char *base, const char *host,
                     const char *params) {
  dbp_dsn d;
  char err[256];
  cr_assert_eq(dbp_dsn_parse(base, &d, err, sizeof err), 0, "%s", err);
  char ca[1024], other[1024], dir[1024];
  snprintf(ca, sizeof ca, "%s", dbt_tls_ca());
  snprintf(dir, sizeof dir, "%s", ca);
  snprintf(other, sizeof other, "%s/other-ca.crt", dirname(dir));
  char p[3072] = "";
  for (const char *s = params ? params : ""; *s;) {
    if (strncmp(s, "%CA%", 4) == 0) {
      strcat(p, ca);
      s += 4;
    } else if (strncmp(s, "%OTHERCA%", 9) == 0) {
      strcat(p, other);
      s += 9;
    } else {
      strncat(p, s++, 1);
    }
  }
  snprintf(out, len, "%s://%s:%s@%s:%d/%s%s%s", d.kind == DBP_DB_PG ? "postgresql" : "mysql",
           d.user, d.password, host ? host : d.host, d.port, d.dbname, p[0] ? "?" : "", p);
  dbp_dsn_free(&d);
}

/* Which server of the fixture a case talks to. */
enum { MAIN = 0, NOTLS = 1, NAMECERT = 2 };

/* Whether c's session is encrypted, as the server sees it. */
static int session_tls(dbp_conn *c, bool *on) {
  bool pg = dbp_conn_kind(c) == DBP_DB_PG;
  const char *sql = pg ? "SELECT CASE WHEN ssl THEN 'on' ELSE 'off' END FROM pg_stat_ssl "
                         "WHERE pid = pg_backend_pid()"
                       : "SHOW SESSION STATUS LIKE 'Ssl_cipher'";
  CHECK_RC(c, dbp_query(c, sql, 0, NULL, 10000), 0);
  dbp_row r;
  CHECK_RC(c, dbp_fetch(c, &r), 1);
  size_t col = pg ? 0 : 1;
  CHECK(r.vals[col] != NULL);
  *on = pg ? (r.lens[0] == 2 && memcmp(r.vals[0], "on", 2) == 0) : r.lens[col] > 0;
  CHECK_RC(c, dbp_fetch(c, &r), 0);
  return 0;
}

typedef struct tls_case {
  int kind;           /* DBT_PG or DBT_MY */
  int server;         /* MAIN, NOTLS, or NAMECERT (MariaDB only) */
  const char *host;   /* NULL: the DSN's own (127.0.0.1) */
  const char *params; /* query parameters */
  bool connects;      /* whether the connect must succeed */
  bool tls;           /* and then whether the session is encrypted */
  const char *words;  /* on failure: a word the message must hold */
} tls_case;

static int tls_body(dbp_rt *rt, void *arg) {
  const tls_case *tc = arg;
  const char *base = tc->server == NOTLS
                         ? (tc->kind == DBT_PG ? dbt_pg_notls_dsn() : dbt_my_notls_dsn())
                     : tc->server == NAMECERT ? dbt_my_namecert_dsn()
                                              : dbt_dsn(tc->kind);
  char dsn[4096];
  make_dsn(dsn, sizeof dsn, base, tc->host, tc->params);
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, 15000, &c, &err);
  char m[700];
  if (!tc->connects) {
    cr_expect_neq(rc, 0, "%s: connected, but should have been refused", dsn);
    if (c != NULL) dbp_conn_close(c);
    CHECK(rc != 0);
    cr_expect(strstr(err.message, tc->words) != NULL, "%s: message lacks '%s': %s", dsn, tc->words,
              dbp_dberr_format(&err, m, sizeof m));
    CHECK(strstr(err.message, tc->words) != NULL);
    /* A certificate or a server that does not do TLS stays so: a retry
     * cannot help. */
    cr_expect(!err.retryable, "%s: refusal is marked retryable", dsn);
    CHECK(!err.retryable);
    /* The password never shows. */
    CHECK(strstr(err.message, ":dbpipe@") == NULL);
    return 0;
  }
  cr_expect_eq(rc, 0, "%s: %s", dsn, dbp_dberr_format(&err, m, sizeof m));
  CHECK(rc == 0);
  bool on = false;
  int r = session_tls(c, &on);
  dbp_conn_close(c);
  CHECK(r == 0);
  cr_expect_eq(on, tc->tls, "%s: TLS is %s", dsn, on ? "on" : "off");
  CHECK(on == tc->tls);
  return 0;
}

static void run_case(tls_case tc) {
  dbt_run(tls_body, &tc);
}

/* ---- require ---- */

Test(tls, pg_require_uses_tls, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, NULL, "sslmode=require", true, true, NULL});
}
Test(tls, my_require_uses_tls, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, NULL, "sslmode=require", true, true, NULL});
}
Test(tls, pg_require_refuses_server_without_tls, .timeout = 60) {
  run_case((tls_case){DBT_PG, NOTLS, NULL, "sslmode=require", false, false, "SSL"});
}
Test(tls, my_require_refuses_server_without_tls, .timeout = 60) {
  run_case((tls_case){DBT_MY, NOTLS, NULL, "sslmode=require", false, false,
                      "the server does not offer TLS"});
}
Test(tls, my_verify_ca_refuses_server_without_tls, .timeout = 60) {
  run_case((tls_case){DBT_MY, NOTLS, NULL, "sslmode=verify-ca&sslrootcert=%CA%", false, false,
                      "the server does not offer TLS"});
}

/* ---- prefer, and no sslmode ---- */

Test(tls, pg_prefer_uses_tls_when_offered, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, NULL, "sslmode=prefer", true, true, NULL});
}
Test(tls, my_prefer_uses_tls_when_offered, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, NULL, "sslmode=prefer", true, true, NULL});
}
Test(tls, pg_prefer_works_without_tls, .timeout = 60) {
  run_case((tls_case){DBT_PG, NOTLS, NULL, "sslmode=prefer", true, false, NULL});
}
Test(tls, my_prefer_works_without_tls, .timeout = 60) {
  run_case((tls_case){DBT_MY, NOTLS, NULL, "sslmode=prefer", true, false, NULL});
}
/* MySQL DSNs without sslmode stay in plaintext, as before. */
Test(tls, my_default_is_plaintext, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, NULL, NULL, true, false, NULL});
}
Test(tls, my_disable_is_plaintext, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, NULL, "sslmode=disable&sslrootcert=%CA%", true, false, NULL});
}

/* ---- verify-full ---- */

Test(tls, pg_verify_full_accepts_localhost, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, "localhost", "sslmode=verify-full&sslrootcert=%CA%", true, true,
                      NULL});
}
Test(tls, my_verify_full_accepts_localhost, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "localhost", "sslmode=verify-full&sslrootcert=%CA%", true, true,
                      NULL});
}
Test(tls, my_verify_full_accepts_ip_in_certificate, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "127.0.0.1", "sslmode=verify-full&sslrootcert=%CA%", true, true,
                      NULL});
}
Test(tls, pg_verify_full_refuses_name_not_in_certificate, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, "127.0.0.2", "sslmode=verify-full&sslrootcert=%CA%", false,
                      false, "certificate"});
}
Test(tls, my_verify_full_refuses_name_not_in_certificate, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "127.0.0.2", "sslmode=verify-full&sslrootcert=%CA%", false,
                      false, "certificate"});
}
Test(tls, pg_verify_full_refuses_unknown_ca, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, "localhost", "sslmode=verify-full&sslrootcert=%OTHERCA%", false,
                      false, "certificate"});
}
Test(tls, my_verify_full_refuses_unknown_ca, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "localhost", "sslmode=verify-full&sslrootcert=%OTHERCA%", false,
                      false, "certificate"});
}

/* The name the user wrote is what the certificate must hold, not the
 * address it resolved to: this server's certificate names localhost and
 * no address. */
Test(tls, my_verify_full_checks_the_name_not_the_address, .timeout = 60) {
  run_case((tls_case){DBT_MY, NAMECERT, "localhost", "sslmode=verify-full&sslrootcert=%CA%", true,
                      true, NULL});
}
Test(tls, my_verify_full_refuses_address_not_in_certificate, .timeout = 60) {
  run_case((tls_case){DBT_MY, NAMECERT, "127.0.0.1", "sslmode=verify-full&sslrootcert=%CA%", false,
                      false, "certificate"});
}

/* ---- verify-ca ---- */

Test(tls, pg_verify_ca_ignores_the_name, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, "127.0.0.2", "sslmode=verify-ca&sslrootcert=%CA%", true, true,
                      NULL});
}
Test(tls, my_verify_ca_ignores_the_name, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "127.0.0.2", "sslmode=verify-ca&sslrootcert=%CA%", true, true,
                      NULL});
}
Test(tls, pg_verify_ca_refuses_unknown_ca, .timeout = 60) {
  run_case((tls_case){DBT_PG, MAIN, "127.0.0.2", "sslmode=verify-ca&sslrootcert=%OTHERCA%", false,
                      false, "certificate"});
}
Test(tls, my_verify_ca_refuses_unknown_ca, .timeout = 60) {
  run_case((tls_case){DBT_MY, MAIN, "127.0.0.2", "sslmode=verify-ca&sslrootcert=%OTHERCA%", false,
                      false, "certificate"});
}

/* ---- statements over TLS ---- */

/* Over TLS the statements still wait on the loop: a timeout stops a long
 * statement (it would run to its end if the library read the encrypted
 * socket blocking), and the session is usable afterwards. */
static int tls_timeout_body(dbp_rt *rt, void *arg) {
  int kind = *(int *)arg;
  char dsn[4096];
  make_dsn(dsn, sizeof dsn, dbt_dsn(kind), "localhost", "sslmode=verify-full&sslrootcert=%CA%");
  dbp_conn *c = NULL;
  dbp_dberr err;
  char m[700];
  int rc = dbp_conn_open(rt, dsn, 15000, &c, &err);
  cr_expect_eq(rc, 0, "%s", dbp_dberr_format(&err, m, sizeof m));
  CHECK(rc == 0);
  const char *sleep = kind == DBT_PG ? "SELECT pg_sleep(30)" : "SELECT SLEEP(30)";
  CHECK_RC(c, dbp_exec(c, sleep, 0, NULL, 300, NULL), DBP_ETIMEDOUT);
  CHECK(!dbp_conn_is_broken(c));
  bool on = false;
  CHECK(session_tls(c, &on) == 0);
  CHECK(on);
  dbp_conn_close(c);
  return 0;
}

Test(tls, pg_statement_timeout_over_tls, .timeout = 60) {
  int kind = DBT_PG;
  dbt_run(tls_timeout_body, &kind);
}
Test(tls, my_statement_timeout_over_tls, .timeout = 60) {
  int kind = DBT_MY;
  dbt_run(tls_timeout_body, &kind);
}
