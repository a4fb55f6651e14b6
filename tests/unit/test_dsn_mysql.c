/* MySQL DSN parameters have one reading (mysql_opts.c): the offline check
 * (dbp_dsn_check) refuses exactly what the driver's connect would, and
 * accepts every spelling the driver knows. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "db/mysql_opts.h"
#include "dbpipe.h"

/* What the driver's connect makes of url's parameters: 0 or DBP_EDSN. */
static int connect_reading(const char *url) {
  dbp_dsn d;
  char msg[512];
  cr_assert_eq(dbp_dsn_parse(url, &d, msg, sizeof msg), 0, "%s: %s", url, msg);
  dbp__my_opts o;
  int rc = dbp__my_opts_parse(&d, &o, msg, sizeof msg);
  dbp_dsn_free(&d);
  return rc;
}

static void agree(const char *query) {
  char url[512], err[512];
  snprintf(url, sizeof url, "mysql://u:pw-not-shown@h/db?%s", query);
  int check = dbp_dsn_check(url, err, sizeof err);
  int conn = connect_reading(url);
  cr_expect_eq(check, conn, "%s: the check says %d (%s), the connect %d", query, check, err, conn);
  cr_expect(strstr(err, "pw-not-shown") == NULL, "%s", err);
}

Test(dsn_mysql, the_check_and_the_connect_read_parameters_alike) {
  static const char *const queries[] = {
      "charset=utf8mb4",
      "character_set=latin1",
      "charset=utf8;x",
      "charset=",
      "sslmode=REQUIRED",
      "ssl-mode=verify_identity",
      "ssl_mode=sometimes",
      "sslmode=verify-ca",
      "sslmode=verify-ca&ssl-ca=/ca.pem",
      "sslrootcert=",
      "sslca=/ca.pem",
      "sslcert=",
      "ssl-cert=/c.pem",
      "sslkey=/k.pem",
      "ssl-key=",
      "application_name=",
      "program_name=x",
      "keepalives=1",
      "keepalives=2",
      "keepalives_idle=0",
      "keepalives_idle=60",
      "keepalives_interval=x",
      "keepalives_count=32768",
      "tcp_user_timeout=0",
      "tcp_user_timeout=-1",
      "tcp_user_timeout=+5",
      "connect_timeout=3",
      "connect_timeout=soon",
      "no_such_option=1",
      "sslmodee=require",
  };
  for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) agree(queries[i]);
}

Test(dsn_mysql, every_listed_name_is_accepted) {
  char names[300], url[512], err[512];
  dbp__my_param_names(names, sizeof names);
  cr_assert(strstr(names, "connect_timeout, charset, sslmode") == names, "%s", names);
  for (char *n = strtok(names, ", "); n != NULL; n = strtok(NULL, ", ")) {
    const char *v = strcmp(n, "sslmode") == 0 ? "disable" : strstr(n, "keepalives") ? "1" : "5";
    if (strcmp(n, "socket") == 0) continue; /* stands for the host: tested in test_dsn */
    snprintf(url, sizeof url, "mysql:///db?%s=%s", n, v);
    cr_expect_eq(dbp_dsn_check(url, err, sizeof err), 0, "%s: %s", url, err);
    cr_expect(dbp__my_param_known(n), "%s", n);
  }
  cr_expect(!dbp__my_param_known("sslmodee"));
  cr_expect(dbp__my_param_is_socket("unix_socket") && !dbp__my_param_is_socket("host"));
}
