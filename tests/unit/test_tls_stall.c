/* The MariaDB driver against a peer of the tests' own that stalls in the
 * TLS handshake: no database server is involved. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbcheck.h"
#include "dbpipe.h"
#include "rttest.h"

typedef struct stall_server {
  int lfd;
  int port;
  pthread_t th;
} stall_server;

/* Accepts one client, sends a MariaDB greeting that offers TLS, then
 * never answers: the client's TLS handshake waits for a ServerHello that
 * does not come. Holds the connection until the client goes. */
static void *stall_main(void *arg) {
  stall_server *s = arg;
  int fd = accept(s->lfd, NULL, NULL);
  if (fd < 0) return NULL;
  unsigned char g[128];
  size_t n = 4;
  g[n++] = 10;
  const char *ver = "5.5.5-10.11.0-MariaDB";
  memcpy(g + n, ver, strlen(ver) + 1);
  n += strlen(ver) + 1;
  memcpy(g + n, "\x01\x00\x00\x00", 4); /* thread id */
  n += 4;
  memcpy(g + n, "abcdefgh", 8); /* scramble, first part */
  n += 8;
  g[n++] = 0;
  unsigned caps = 0x0001 | 0x0200 | 0x0800 | 0x8000; /* long password, 4.1, SSL, secure */
  g[n++] = (unsigned char)(caps & 0xff);
  g[n++] = (unsigned char)(caps >> 8);
  g[n++] = 45;            /* utf8mb4 */
  g[n++] = 2, g[n++] = 0; /* status: autocommit */
  unsigned hi = 0x0008;   /* plugin auth */
  g[n++] = (unsigned char)(hi & 0xff), g[n++] = (unsigned char)(hi >> 8);
  g[n++] = 21; /* scramble length */
  memset(g + n, 0, 10);
  n += 10;
  memcpy(g + n, "ijklmnopqrst", 13); /* scramble, second part, NUL */
  n += 13;
  memcpy(g + n, "mysql_native_password", 22);
  n += 22;
  size_t len = n - 4;
  g[0] = (unsigned char)len, g[1] = (unsigned char)(len >> 8), g[2] = 0, g[3] = 0;
  if (write(fd, g, n) != (ssize_t)n) {
    close(fd);
    return NULL;
  }
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return NULL;
}

static void stall_start(stall_server *s) {
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(s->lfd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(s->lfd, 4), 0);
  socklen_t al = sizeof a;
  cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
  s->port = ntohs(a.sin_port);
  cr_assert_eq(pthread_create(&s->th, NULL, stall_main, s), 0);
}

/* Without a limit of its own on the blocking handshake, the library would
 * wait for the ServerHello for ever, holding the loop: the connect
 * deadline must end it. */
static int stall_body(dbp_rt *rt, void *arg) {
  int port = *(int *)arg;
  char dsn[256];
  snprintf(dsn, sizeof dsn, "mysql://u:p@127.0.0.1:%d/db?sslmode=require", port);
  dbp_conn *c = NULL;
  dbp_dberr err;
  int rc = dbp_conn_open(rt, dsn, 1000, &c, &err);
  if (c != NULL) dbp_conn_close(c);
  char m[700];
  cr_expect_eq(rc, DBP_ETIMEDOUT, "%s", dbp_dberr_format(&err, m, sizeof m));
  CHECK(rc == DBP_ETIMEDOUT);
  return 0;
}

Test(tls, my_stalled_tls_handshake_times_out, .timeout = 30) {
  stall_server s;
  stall_start(&s);
  dbt_run(stall_body, &s.port);
  shutdown(s.lfd, SHUT_RDWR);
  close(s.lfd);
  pthread_join(s.th, NULL);
}
