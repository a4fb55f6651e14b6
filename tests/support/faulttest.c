/* Helpers of the connect-fault tests: DSN variants, a port nobody listens
 * on, a peer that never speaks, and a connect that must fail clearly. */
#include "faulttest.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbtest.h"
#include "rttest.h"

void fault_dsn_variant(const char *base, char *buf, size_t len, int kind, const char *password,
                       const char *host, int port) {
  dbp_dsn d;
  char err[200];
  cr_assert_eq(dbp_dsn_parse(base, &d, err, sizeof err), 0, "%s", err);
  const char *scheme = kind == DBT_PG ? "postgresql" : "mysql";
  const char *h = host ? host : d.host;
  bool v6 = strchr(h, ':') != NULL;
  int n = snprintf(buf, len, "%s://%s:%s@%s%s%s:%d/%s", scheme, d.user ? d.user : "",
                   password ? password : (d.password ? d.password : ""), v6 ? "[" : "", h,
                   v6 ? "]" : "", port ? port : d.port, d.dbname ? d.dbname : "");
  cr_assert(n > 0 && (size_t)n < len);
  dbp_dsn_free(&d);
}

int fault_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close(fd);
  return ntohs(a.sin_port);
}

int fault_stalled_peer(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 16), 0);
  socklen_t alen = sizeof a;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static int open_fail_body(dbp_rt *rt, void *arg) {
  fault_open_case *oc = arg;
  dbp_conn *c = NULL;
  dbp_dberr err;
  uint64_t t0 = dbp_now(rt);
  int rc = dbp_conn_open(rt, oc->dsn, oc->timeout_ms, &c, &err);
  uint64_t took = dbp_now(rt) - t0;
  char m[700];
  dbp_dberr_format(&err, m, sizeof m);
  cr_expect_eq(rc, oc->want, "got %s: %s", dbp_err_name(rc), m);
  CHECK(rc == oc->want);
  CHECK(c == NULL);
  CHECK(err.code == oc->want);
  cr_expect(strstr(err.message, oc->must_say) != NULL, "message '%s' lacks '%s'", err.message,
            oc->must_say);
  if (oc->never_say) cr_expect_null(strstr(m, oc->never_say), "password in message: %s", m);
  /* Fast and clear: well within a second here. */
  cr_expect_lt(took, 1000, "took %" PRIu64 " ms", took);
  return 0;
}

void fault_open_fails(fault_open_case *oc) {
  dbt_run(open_fail_body, oc);
}
