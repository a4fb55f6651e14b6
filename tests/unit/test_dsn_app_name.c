/* dbp_dsn_with_app_name: the application name a run reports to servers. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "dbpipe.h"

static void expect(const char *url, const char *want) {
  char *got = dbp_dsn_with_app_name(url, "dbpipe");
  cr_assert_not_null(got);
  cr_expect_str_eq(got, want, "for %s", url);
  free(got);
}

Test(dsn_app_name, added_where_the_url_names_none) {
  expect("postgresql://u:pw@127.0.0.1/db",
         "postgresql://u:pw@127.0.0.1/db?application_name=dbpipe");
  expect("postgresql://u@h/db?sslmode=disable",
         "postgresql://u@h/db?sslmode=disable&application_name=dbpipe");
  expect("mysql://u:pw@h:3306/db", "mysql://u:pw@h:3306/db?application_name=dbpipe");
}

Test(dsn_app_name, kept_where_the_url_names_one) {
  expect("postgresql://u@h/db?application_name=etl", "postgresql://u@h/db?application_name=etl");
  expect("mysql://u@h/db?program_name=etl", "mysql://u@h/db?program_name=etl");
  expect("mysql://u@h/db?application_name=etl", "mysql://u@h/db?application_name=etl");
}

Test(dsn_app_name, odd_urls_are_copied_unchanged) {
  expect("postgresql://u@h/db#frag", "postgresql://u@h/db#frag");
  expect("not a url", "not a url");
}

Test(dsn_app_name, the_name_is_percent_encoded) {
  char *got = dbp_dsn_with_app_name("postgresql://h/db", "my app&x=1");
  cr_assert_not_null(got);
  cr_expect_str_eq(got, "postgresql://h/db?application_name=my%20app%26x%3D1");
  dbp_dsn d;
  char why[128];
  cr_assert_eq(dbp_dsn_parse(got, &d, why, sizeof why), 0, "%s", why);
  cr_expect_eq(d.nparams, 1);
  cr_expect_str_eq(d.values[0], "my app&x=1");
  dbp_dsn_free(&d);
  free(got);
}
