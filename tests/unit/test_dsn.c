/* DSN URLs: parsing, errors, redaction, identifier quoting and error
 * formatting. No database needed. */
#include <criterion/criterion.h>
#include <string.h>

#include "db/driver.h"
#include "dbpipe.h"

static dbp_dsn parse_ok(const char *url) {
  dbp_dsn d;
  char err[256] = "";
  int rc = dbp_dsn_parse(url, &d, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", url, err);
  return d;
}

static const char *param(const dbp_dsn *d, const char *key) {
  for (size_t i = 0; i < d->nparams; i++)
    if (strcmp(d->keys[i], key) == 0) return d->values[i];
  return NULL;
}

Test(dsn, full_postgresql_url) {
  dbp_dsn d = parse_ok(
      "postgresql://app:s3cret@db.example.com:6543/shop?sslmode=require&"
      "application_name=dbpipe&connect_timeout=5");
  cr_expect_eq(d.kind, DBP_DB_PG);
  cr_expect_str_eq(d.user, "app");
  cr_expect_str_eq(d.password, "s3cret");
  cr_expect_str_eq(d.host, "db.example.com");
  cr_expect_eq(d.port, 6543);
  cr_expect_str_eq(d.dbname, "shop");
  cr_expect_eq(d.nparams, 3);
  cr_expect_str_eq(param(&d, "sslmode"), "require");
  cr_expect_str_eq(param(&d, "application_name"), "dbpipe");
  cr_expect_str_eq(param(&d, "connect_timeout"), "5");
  cr_expect_str_eq(d.keys[0], "sslmode"); /* order kept */
  dbp_dsn_free(&d);
  cr_expect_null(d.user);
}

Test(dsn, every_scheme) {
  const struct {
    const char *url;
    dbp_db_kind kind;
  } cases[] = {
      {"postgresql://h/db", DBP_DB_PG}, {"postgres://h/db", DBP_DB_PG},
      {"POSTGRES://h/db", DBP_DB_PG},   {"mysql://h/db", DBP_DB_MYSQL},
      {"mariadb://h/db", DBP_DB_MYSQL}, {"MariaDB://h", DBP_DB_MYSQL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dbp_dsn d = parse_ok(cases[i].url);
    cr_expect_eq(d.kind, cases[i].kind, "%s", cases[i].url);
    cr_expect_str_eq(d.host, "h");
    dbp_dsn_free(&d);
  }
}

Test(dsn, absent_parts_are_null) {
  dbp_dsn d = parse_ok("mysql://");
  cr_expect_null(d.user);
  cr_expect_null(d.password);
  cr_expect_null(d.host);
  cr_expect_null(d.dbname);
  cr_expect_eq(d.port, 0);
  cr_expect_eq(d.nparams, 0);
  dbp_dsn_free(&d);

  d = parse_ok("postgresql://bob@localhost");
  cr_expect_str_eq(d.user, "bob");
  cr_expect_null(d.password);
  cr_expect_str_eq(d.host, "localhost");
  cr_expect_null(d.dbname);
  dbp_dsn_free(&d);

  /* "user:@" is an empty password, not none. */
  d = parse_ok("postgresql://bob:@localhost/");
  cr_expect_str_eq(d.password, "");
  cr_expect_null(d.dbname);
  dbp_dsn_free(&d);
}

Test(dsn, ipv6_hosts) {
  dbp_dsn d = parse_ok("postgresql://u:p@[::1]:5433/db");
  cr_expect_str_eq(d.host, "::1");
  cr_expect_eq(d.port, 5433);
  cr_expect_str_eq(d.dbname, "db");
  dbp_dsn_free(&d);

  d = parse_ok("mysql://[2001:db8::17]/x");
  cr_expect_str_eq(d.host, "2001:db8::17");
  cr_expect_eq(d.port, 0);
  dbp_dsn_free(&d);

  d = parse_ok("postgresql://[fe80::1%25eth0]:5432");
  cr_expect_str_eq(d.host, "fe80::1%eth0");
  dbp_dsn_free(&d);
}

Test(dsn, percent_decoding) {
  dbp_dsn d = parse_ok(
      "postgresql://us%40er:p%40ss%3Aw%2Fo%3Frd%25@%2Fvar%2Frun%2Fpostgresql/"
      "my%20db?application_name=a%26b%3Dc&options=-c%20x%3D1");
  cr_expect_str_eq(d.user, "us@er");
  cr_expect_str_eq(d.password, "p@ss:w/o?rd%");
  cr_expect_str_eq(d.host, "/var/run/postgresql");
  cr_expect_str_eq(d.dbname, "my db");
  cr_expect_str_eq(param(&d, "application_name"), "a&b=c");
  cr_expect_str_eq(param(&d, "options"), "-c x=1");
  dbp_dsn_free(&d);

  /* An '@' in the password without encoding: the last '@' ends userinfo. */
  d = parse_ok("mysql://u:p@ss@host:3307/db");
  cr_expect_str_eq(d.password, "p@ss");
  cr_expect_str_eq(d.host, "host");
  cr_expect_eq(d.port, 3307);
  dbp_dsn_free(&d);

  /* '+' stays a plus (libpq does not treat it as a space). */
  d = parse_ok("postgresql://h/db?application_name=a+b");
  cr_expect_str_eq(param(&d, "application_name"), "a+b");
  dbp_dsn_free(&d);
}

Test(dsn, query_parameters_fill_in_missing_url_parts) {
  dbp_dsn d = parse_ok("postgresql:///?host=%2Ftmp&port=5544&user=x&password=y&dbname=z");
  cr_expect_str_eq(d.host, "/tmp");
  cr_expect_eq(d.port, 5544);
  cr_expect_str_eq(d.user, "x");
  cr_expect_str_eq(d.password, "y");
  cr_expect_str_eq(d.dbname, "z");
  cr_expect_eq(d.nparams, 0);
  dbp_dsn_free(&d);

  d = parse_ok("mysql://h/db?&charset=latin1&&connect_timeout=3&");
  cr_expect_eq(d.nparams, 2);
  cr_expect_str_eq(param(&d, "charset"), "latin1");
  dbp_dsn_free(&d);
}

/* Parses a bad DSN; checks the code and that the message says `what`. */
static void parse_bad(const char *url, const char *what) {
  dbp_dsn d;
  char err[256] = "";
  int rc = dbp_dsn_parse(url, &d, err, sizeof err);
  cr_expect_eq(rc, DBP_EDSN, "%s parsed", url ? url : "(null)");
  cr_expect(strstr(err, what) != NULL, "%s: message '%s' lacks '%s'", url, err, what);
  cr_expect(strncmp(err, "invalid DSN: ", 13) == 0, "%s", err);
  cr_expect_null(d.host);
  cr_expect_eq(d.nparams, 0);
}

Test(dsn, errors_name_what_is_wrong) {
  parse_bad(NULL, "empty");
  parse_bad("", "empty");
  parse_bad("http://h/db", "unknown scheme 'http'");
  parse_bad("host=localhost dbname=x", "not a URL");
  parse_bad("postgresql:/h/db", "not a URL");
  parse_bad("postgresql://h:0/db", "invalid port");
  parse_bad("postgresql://h:65536/db", "invalid port");
  parse_bad("postgresql://h:54x2/db", "invalid port");
  parse_bad("postgresql://h:/db", "invalid port");
  parse_bad("postgresql://[::1/db", "unterminated IPv6");
  parse_bad("postgresql://[]/db", "empty IPv6");
  parse_bad("postgresql://[::1]x/db", "after the IPv6");
  parse_bad("postgresql://a,b/db", "several hosts");
  parse_bad("postgresql://u:p%zz@h/db", "percent-encoding in the password");
  parse_bad("postgresql://u%4@h/db", "percent-encoding in the user name");
  parse_bad("postgresql://h/d%00b", "percent-encoding in the database name");
  parse_bad("postgresql://h/db?sslmode", "'sslmode' has no value");
  parse_bad("postgresql://h/db?=x", "empty name");
  parse_bad("postgresql://h/db?a=%G1", "value of query parameter 'a'");
  parse_bad("postgresql://h/db?port=abc", "invalid port");
}

Test(dsn, errors_never_echo_the_password) {
  const char *urls[] = {
      "postgresql://u:hunter2secret%zz@h/db",
      "postgresql://u:hunter2secret@h:notaport/db",
      "postgresql://u:hunter2secret@[::1/db",
      "mysql://u:hunter2secret@h/db?port=hunter2secret",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    dbp_dsn d;
    char err[256] = "";
    cr_expect_eq(dbp_dsn_parse(urls[i], &d, err, sizeof err), DBP_EDSN);
    cr_expect_null(strstr(err, "hunter2"), "password leaked: %s", err);
  }
}

Test(dsn, redaction) {
  char buf[256];
  cr_expect_str_eq(
      dbp_dsn_redact("postgresql://app:s3cret@db:5432/shop?sslmode=require", buf, sizeof buf),
      "postgresql://app:***@db:5432/shop?sslmode=require");
  cr_expect_str_eq(dbp_dsn_redact("mysql://app@db/shop", buf, sizeof buf), "mysql://app@db/shop");
  cr_expect_str_eq(dbp_dsn_redact("mysql://db/shop", buf, sizeof buf), "mysql://db/shop");
  cr_expect_str_eq(dbp_dsn_redact("mysql://u:p@ss@h/d", buf, sizeof buf), "mysql://u:***@h/d");
  cr_expect_str_eq(dbp_dsn_redact("postgresql://u:@h/d", buf, sizeof buf),
                   "postgresql://u:***@h/d");
  cr_expect_str_eq(
      dbp_dsn_redact("postgresql://h/d?user=u&password=topsecret&sslmode=disable", buf, sizeof buf),
      "postgresql://h/d?user=u&password=***&sslmode=disable");
  cr_expect_str_eq(dbp_dsn_redact("postgresql://h/d?%70assword=topsecret", buf, sizeof buf),
                   "postgresql://h/d?%70assword=***");
  /* Not a URL: libpq keyword form. */
  cr_expect_str_eq(dbp_dsn_redact("host=h password=topsecret dbname=x", buf, sizeof buf),
                   "host=h password=*** dbname=x");
  cr_expect_str_eq(dbp_dsn_redact("host=h password = 'top secret' user=u", buf, sizeof buf),
                   "host=h password =*** user=u");
  cr_expect_str_eq(dbp_dsn_redact(NULL, buf, sizeof buf), "");
  /* Truncation keeps it a C string and never shows the password. */
  char small[20];
  dbp_dsn_redact("postgresql://app:s3cret@db:5432/shop", small, sizeof small);
  cr_expect_eq(strlen(small), sizeof small - 1);
  cr_expect_null(strstr(small, "s3c"));
  dbp_dsn_redact("postgresql://app:s3cret@db:5432/shop", small, 1);
  cr_expect_str_eq(small, "");
}

Test(dsn, quote_ident) {
  char *q = dbp_quote_ident(DBP_DB_PG, "orders");
  cr_expect_str_eq(q, "\"orders\"");
  free(q);
  q = dbp_quote_ident(DBP_DB_PG, "public.we\"ird");
  cr_expect_str_eq(q, "\"public\".\"we\"\"ird\"");
  free(q);
  q = dbp_quote_ident(DBP_DB_MYSQL, "shop.ta`ble");
  cr_expect_str_eq(q, "`shop`.`ta``ble`");
  free(q);
  cr_expect_null(dbp_quote_ident(DBP_DB_PG, NULL));
}

Test(dsn, error_formatting_and_type_names) {
  dbp_dberr e = {.code = DBP_ECONNLOST, .sqlstate = "57P01", .retryable = true};
  strcpy(e.message, "terminating connection due to administrator command");
  char buf[256];
  cr_expect_str_eq(dbp_dberr_format(&e, buf, sizeof buf),
                   "ECONNLOST: terminating connection due to administrator command (SQLSTATE "
                   "57P01)");
  dbp_dberr m = {.code = DBP_EQUERY, .sqlstate = "42S02", .db_errno = 1146};
  strcpy(m.message, "Table 'shop.x' doesn't exist");
  cr_expect_str_eq(dbp_dberr_format(&m, buf, sizeof buf),
                   "EQUERY: Table 'shop.x' doesn't exist (SQLSTATE 42S02, error 1146)");
  dbp_dberr bare = {.code = DBP_ETIMEDOUT};
  cr_expect_str_eq(dbp_dberr_format(&bare, buf, sizeof buf), "ETIMEDOUT: timed out");
  cr_expect_str_eq(dbp_type_name(DBP_T_INTEGER), "integer");
  cr_expect_str_eq(dbp_type_name(DBP_T_TIMESTAMP), "timestamp");
  cr_expect_str_eq(dbp_type_name(DBP_T_OTHER), "other");
}

Test(dsn, open_rejects_bad_dsn_before_connecting) {
  /* dbp_conn_open outside a coroutine is refused outright. */
  dbp_rt *rt;
  cr_assert_eq(dbp_rt_new(&rt, NULL, NULL), 0);
  dbp_conn *c = (dbp_conn *)1;
  dbp_dberr err;
  cr_expect_eq(dbp_conn_open(rt, "postgresql://h/db", 1000, &c, &err), DBP_ENOTCORO);
  cr_expect_null(c);
  cr_expect_eq(err.code, DBP_ENOTCORO);
  cr_expect_eq(dbp_rt_free(rt), 0);
}

Test(dsn, scrub_removes_a_password_from_any_text) {
  char msg[128] = "auth for 'hunter22' failed: hunter22hunter22!";
  dbp__scrub(msg, "hunter22");
  cr_expect_str_eq(msg, "auth for '***' failed: ******!");
  char same[32] = "x***y";
  dbp__scrub(same, "****");
  cr_expect_str_eq(same, "x***y");
  char self[32] = "a***b***";
  dbp__scrub(self, "***b");
  cr_expect_str_eq(self, "a******");
  char shortpw[32] = "a bad day";
  dbp__scrub(shortpw, "a"); /* too short to hide anything */
  cr_expect_str_eq(shortpw, "a bad day");
  dbp__scrub(shortpw, NULL);
  dbp__scrub(NULL, "secret");
}

/* ---- parameters that would replace what the URL says ---- */

Test(dsn, parameters_never_override_the_url) {
  /* The host: the URL's, or a parameter's when the URL has none. */
  parse_bad("postgresql://db.example.com/shop?host=evil.example.com",
            "query parameter 'host' would override the host the URL names");
  parse_bad("postgresql://db.example.com/shop?hostaddr=10.0.0.9",
            "query parameter 'hostaddr' would override the host");
  parse_bad("mysql://127.0.0.1/shop?socket=%2Frun%2Fmysqld%2Fmysqld.sock",
            "query parameter 'socket' would override the host");
  parse_bad("mysql://localhost/shop?hostaddr=127.0.0.9", "'hostaddr' would override");
  parse_bad("mysql://localhost/shop?socket=/a&socket=/b", "query parameter 'socket' would");
  parse_bad("postgresql:///shop?host=a&host=b", "query parameter 'host' is given twice");
  parse_bad("mysql:///shop?socket=/a&host=b", "query parameter 'host' is given twice");
  /* The other parts: once, in either place. */
  parse_bad("postgresql://u@h/shop?user=root", "'user' repeats the user name the URL gives");
  parse_bad("postgresql://u:pw@h/shop?password=x", "'password' repeats the password");
  parse_bad("postgresql://h/shop?dbname=other", "'dbname' repeats the database name");
  parse_bad("postgresql://h:5432/shop?port=5433", "'port' repeats the port");
  parse_bad("postgresql://h/?dbname=a&dbname=b", "'dbname' is given twice");

  dbp_dsn d = parse_ok("postgresql:///shop?host=%2Frun%2Fpostgresql");
  cr_expect_str_eq(d.host, "/run/postgresql");
  cr_expect_str_eq(d.dbname, "shop");
  dbp_dsn_free(&d);
  d = parse_ok("postgresql:///shop?hostaddr=127.0.0.1&port=5433");
  cr_expect_null(d.host);
  cr_expect_str_eq(param(&d, "hostaddr"), "127.0.0.1");
  cr_expect_eq(d.port, 5433);
  dbp_dsn_free(&d);
  d = parse_ok("mysql:///shop?socket=/run/mysqld/mysqld.sock");
  cr_expect_null(d.host);
  cr_expect_str_eq(param(&d, "socket"), "/run/mysqld/mysqld.sock");
  dbp_dsn_free(&d);
  /* MySQL's "localhost" is the local socket: naming it moves nothing. */
  d = parse_ok("mysql://localhost/shop?unix_socket=/tmp/my.sock");
  cr_expect_str_eq(d.host, "localhost");
  cr_expect_str_eq(param(&d, "unix_socket"), "/tmp/my.sock");
  dbp_dsn_free(&d);
  /* On PostgreSQL "socket" is no host: libpq judges it (dbp_dsn_check). */
  d = parse_ok("postgresql://h/db?socket=x");
  dbp_dsn_free(&d);
}

/* ---- malformed user information never shows the password ---- */

/* True when s shows any piece of the secret "Tr0ub4dor". */
static bool shows_secret(const char *s) {
  static const char *const pieces[] = {"Tr0", "r0u", "0ub", "ub4", "b4d", "4do", "dor"};
  for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
    if (strstr(s, pieces[i]) != NULL) return true;
  return false;
}

Test(dsn, malformed_user_information_is_redacted) {
  const char *urls[] = {
      "postgresql://app:Tr0ub4dor/3@host/db",
      "postgresql://app:Tr0ub4dor/3@host:5432/db?sslmode=require",
      "postgresql://app:Tr0ub/4dor@host/db?application_name=a@b",
      "postgresql://app:Tr0ub4dor?3@host/db",
      "postgresql://app:Tr0ub4dor?x=3@host/db",
      "postgresql://app:Tr0ub4dor?x=3@host/db?sslmode=disable",
      "postgresql://app:Tr0ub4dor?@host",
      "postgresql://app:/Tr0ub4dor@host",
      "postgresql://app:Tr0ub4dor//@host:5432/db",
      "postgresql://app:Tr0ub@4dor/x@host/db",
      "postgresql://app:Tr0ub@4dor?x@host/db",
      "postgresql://app:Tr0ub4dor/@",
      "postgresql://app:Tr0ub4dor/x/y/z@h",
      "postgresql://app:Tr0ub4dor@[::1/db",
      "postgresql://app:Tr0ub4dor@host:notaport/db",
      "postgresql://app:Tr0ub4dor%zz/x@host/db",
      "mysql://app:Tr0ub4dor/@host",
      "mariadb://app:Tr0ub4dor?#@host/db?charset=utf8mb4",
      "nosuch://app:Tr0ub4dor/x@host/db",
      "postgresql://app:Tr0ub4dor@h/db?host=evil",
      "postgresql://app:Tr0ub4dor@h/db?sslmode",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    char buf[256];
    dbp_dsn_redact(urls[i], buf, sizeof buf);
    cr_expect(!shows_secret(buf), "redacted '%s' as '%s'", urls[i], buf);
    cr_expect(strstr(buf, "app:***@") != NULL, "'%s' redacted as '%s'", urls[i], buf);
    dbp_dsn d;
    char err[256] = "";
    int rc = dbp_dsn_parse(urls[i], &d, err, sizeof err);
    cr_expect_eq(rc, DBP_EDSN, "'%s' parsed", urls[i]);
    if (rc == 0) dbp_dsn_free(&d);
    cr_expect(!shows_secret(err), "'%s': the error shows the password: %s", urls[i], err);
    rc = dbp_dsn_check(urls[i], err, sizeof err);
    cr_expect_eq(rc, DBP_EDSN);
    cr_expect(!shows_secret(err), "'%s': the check shows the password: %s", urls[i], err);
  }
}

Test(dsn, an_unencoded_slash_in_the_password_is_explained) {
  parse_bad("postgresql://app:Tr0ub4dor/3@host/db", "percent-encode '/', '?' and '@'");
  parse_bad("postgresql://app:pa?ss@host/db", "percent-encode");
  /* Encoded, the same password is fine. */
  dbp_dsn d = parse_ok("postgresql://app:Tr0ub4dor%2F3@host/db");
  cr_expect_str_eq(d.password, "Tr0ub4dor/3");
  cr_expect_str_eq(d.host, "host");
  dbp_dsn_free(&d);
  /* An '@' in a query value is no user information. */
  char buf[256];
  cr_expect_str_eq(dbp_dsn_redact("postgresql://u:pw@h/db?application_name=me@x", buf, sizeof buf),
                   "postgresql://u:***@h/db?application_name=me@x");
  cr_expect_str_eq(dbp_dsn_redact("postgresql://h/db?application_name=me@x", buf, sizeof buf),
                   "postgresql://h/db?application_name=me@x");
  d = parse_ok("postgresql://u:pw@h/db?application_name=me@x");
  cr_expect_str_eq(d.host, "h");
  cr_expect_str_eq(param(&d, "application_name"), "me@x");
  dbp_dsn_free(&d);
}

/* ---- the offline check ---- */

static void check_ok(const char *url) {
  char err[512] = "";
  cr_expect_eq(dbp_dsn_check(url, err, sizeof err), 0, "%s: %s", url, err);
}

static void check_bad(const char *url, const char *what) {
  char err[512] = "";
  cr_expect_eq(dbp_dsn_check(url, err, sizeof err), DBP_EDSN, "%s passed", url);
  cr_expect(strstr(err, what) != NULL, "%s: message '%s' lacks '%s'", url, err, what);
  cr_expect(strstr(err, "s3cr3t-pw") == NULL, "password shown: %s", err);
}

Test(dsn, check_accepts_what_the_drivers_take) {
  check_ok("postgresql://u:s3cr3t-pw@h:5432/db");
  check_ok(
      "postgresql://u:s3cr3t-pw@h/db?sslmode=verify-full&application_name=x&"
      "connect_timeout=5&keepalives_idle=30&options=-c%20statement_timeout%3D0&"
      "target_session_attrs=read-write");
  check_ok("postgres:///db?host=%2Frun%2Fpostgresql");
  check_ok(
      "mysql://u:s3cr3t-pw@h:3306/db?charset=utf8mb4&sslmode=REQUIRED&connect_timeout=3&"
      "sslrootcert=/etc/ca.pem&application_name=dbpipe&keepalives=1&keepalives_idle=60&"
      "keepalives_interval=10&keepalives_count=6&tcp_user_timeout=60000");
  check_ok("mariadb:///db?socket=/run/mysqld/mysqld.sock&ssl-mode=disabled");
}

Test(dsn, check_refuses_unknown_parameters_and_bad_values) {
  check_bad("postgresql://u:s3cr3t-pw@h/db?no_such_option=1",
            "unknown parameter 'no_such_option' for PostgreSQL");
  check_bad("postgresql://u:s3cr3t-pw@h/db?sslmode=sometimes",
            "parameter 'sslmode' has the invalid value 'sometimes' (expected disable,allow,");
  check_bad("postgresql://u:s3cr3t-pw@h/db?connect_timeout=soon",
            "'connect_timeout' has the invalid value 'soon' (expected a whole number)");
  check_bad("postgresql://u:s3cr3t-pw@h/db?keepalives=2", "(expected 0 or 1)");
  check_bad("postgresql://u:s3cr3t-pw@h/db?tcp_user_timeout=-1", "'tcp_user_timeout'");
  check_bad("postgresql://u:s3cr3t-pw@h/db?socket=/tmp", "unknown parameter 'socket'");
  check_bad("mysql://u:s3cr3t-pw@h/db?sslmodee=require", "unknown parameter 'sslmodee' for MySQL");
  check_bad("mysql://u:s3cr3t-pw@h/db?sslmode=sometimes", "'sslmode' has the invalid value");
  /* A combination the MySQL driver refuses at connect is refused here too. */
  check_bad("mysql://u:s3cr3t-pw@h/db?sslmode=verify-ca", "sslmode=verify-ca needs sslrootcert");
  check_bad("mysql://u:s3cr3t-pw@h/db?charset=utf8%3Bx", "'charset' has the invalid value");
  check_bad("mysql://u:s3cr3t-pw@h/db?keepalives_idle=x", "'keepalives_idle'");
  check_bad("mysql://u:s3cr3t-pw@h/db?sslcert=", "'sslcert'");
  check_bad("mysql://u:s3cr3t-pw@h/db?host=x", "would override the host");
  check_bad("mysql://u:s3cr3t-pw@h/db?socket=/x", "would override the host");
  check_bad("oracle://u:s3cr3t-pw@h/db", "unknown scheme");
  check_bad("", "empty");
  /* The message shows the DSN, redacted. */
  char err[512];
  cr_expect_eq(dbp_dsn_check("postgresql://u:s3cr3t-pw@h/db?sslmode=x", err, sizeof err), DBP_EDSN);
  cr_expect(strstr(err, "(in postgresql://u:***@h/db?sslmode=x)") != NULL, "%s", err);
}

/* ---- wiping a password in place (a program's own argv) ---- */

static void wipe_case(const char *url, const char *secret, const char *kept) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", url);
  dbp_dsn_wipe_password(buf);
  cr_expect_eq(strlen(buf), strlen(url), "%s: the length changed: %s", url, buf);
  cr_expect_null(strstr(buf, secret), "%s: still shows '%s': %s", url, secret, buf);
  cr_expect_not_null(strstr(buf, kept), "%s: lost '%s': %s", url, kept, buf);
}

Test(dsn, wipe_password_in_place) {
  wipe_case("postgresql://app:s3cr3t@db.example.com/shop", "s3cr3t", "app:******@db.example.com");
  wipe_case("postgresql://app:pa#ss@h/db", "pa#ss", "@h/db");
  wipe_case("postgresql://app:Tr0ub4dor/3@h/db", "Tr0ub4dor/3", "@h/db");
  wipe_case("mysql://app:p@ss@h:3306/shop?sslmode=require", "p@ss", "@h:3306/shop?sslmode=require");
  wipe_case("postgresql://app@h/db?sslmode=require&password=hunter22&x=1", "hunter22",
            "?sslmode=require&password=********&x=1");
  char none[] = "postgresql://app@h/db";
  dbp_dsn_wipe_password(none);
  cr_expect_str_eq(none, "postgresql://app@h/db");
  dbp_dsn_wipe_password(NULL);
}

/* A malformed URL whose user information is taken to run past its '?'
 * (the query does not look like one, so the last '@' ends it): a password
 * parameter before the password's ':' was shown by the redaction and left
 * by the argv wipe. Found by fuzz_dsn. */
Test(dsn, a_password_parameter_inside_a_long_user_information_is_hidden) {
  const char *url = "mys://\x01\x03portr\na@b\x0f/rdb?password=two1&y%=3\x01\x01hunteo+t:p%5p&o@ss";
  char once[256], twice[256];
  dbp_dsn_redact(url, once, sizeof once);
  cr_expect_null(strstr(once, "two1"), "shown: %s", once);
  dbp_dsn_redact(once, twice, sizeof twice);
  cr_expect_str_eq(once, twice);
  char copy[256];
  snprintf(copy, sizeof copy, "%s", url);
  dbp_dsn_wipe_password(copy);
  cr_expect_null(strstr(copy, "two1"), "left: %s", copy);
  cr_expect_eq(strlen(copy), strlen(url));
}

/* The same reading with the query string going on after that '@': its
 * password parameters are hidden too. Found by fuzz_dsn. */
Test(dsn, a_query_that_goes_on_after_a_long_user_information_is_redacted) {
  static const char *const urls[] = {
      "mysql://h/db?x&y=2s://a:a:x@b/?&=a@&password=hunter11",
      "mariadb://?&://a:@&password=hunter11 x<?&=1", /* another '?' later on */
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    char once[256], twice[256];
    dbp_dsn_redact(urls[i], once, sizeof once);
    cr_expect_null(strstr(once, "hunter11"), "shown: %s", once);
    dbp_dsn_redact(once, twice, sizeof twice);
    cr_expect_str_eq(once, twice);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", urls[i]);
    dbp_dsn_wipe_password(copy);
    cr_expect_null(strstr(copy, "hunter11"), "left: %s", copy);
  }
}
