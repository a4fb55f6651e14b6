/* Database connection strings for the integration tests (Criterion).
 *
 * Each getter returns the DSN from the environment (DBPIPE_PG_DSN or
 * DBPIPE_MY_DSN). Failing that it reads the env file named by DBPIPE_DBS_ENV,
 * the one `scripts/dbs up DIR` writes to DIR/env and the CTest fixture points
 * at. When neither has it, the running test is skipped, except when CI=true,
 * where it fails: in CI every database test must run.
 *
 * Call these from inside a test (or its .init), never at file scope. The
 * returned string stays valid for the life of the process. */
#ifndef DBPIPE_TESTS_DBTEST_H
#define DBPIPE_TESTS_DBTEST_H

enum dbt_kind {
  DBT_PG = 1, /* PostgreSQL */
  DBT_MY = 2  /* MariaDB / MySQL */
};

const char *dbt_pg_dsn(void);
const char *dbt_my_dsn(void);

/* kind is DBT_PG (1) or DBT_MY (2); anything else fails the test. */
const char *dbt_dsn(int kind);

/* The extra servers and files of scripts/dbs, found the same way:
 * DBPIPE_PG_NOTLS_DSN / DBPIPE_MY_NOTLS_DSN (servers without TLS),
 * DBPIPE_PG_STANDBY_DSN (a hot standby streaming from the PostgreSQL
 * server without TLS, which is its primary),
 * DBPIPE_MY_NAMECERT_DSN (a MariaDB server whose certificate, from the same
 * CA, names localhost only), DBPIPE_MY_SOCKET_DSN (the MariaDB server over
 * its Unix socket),
 * DBPIPE_MY_LIMITED_DSN (a MariaDB user allowed one connection at a time)
 * and DBPIPE_TLS_CA (the CA file that signed the TLS servers'
 * certificate, valid for localhost, 127.0.0.1 and ::1). */
const char *dbt_pg_notls_dsn(void);
const char *dbt_pg_standby_dsn(void);
const char *dbt_my_notls_dsn(void);
const char *dbt_my_namecert_dsn(void);
const char *dbt_my_socket_dsn(void);
const char *dbt_my_limited_dsn(void);
const char *dbt_tls_ca(void);

#endif
