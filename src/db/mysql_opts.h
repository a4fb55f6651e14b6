/* Internal: what a MySQL/MariaDB DSN asks of the driver (mysql_opts.c).
 * Not installed. */
#ifndef DBPIPE_DB_MYSQL_OPTS_H
#define DBPIPE_DB_MYSQL_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "dbpipe/db.h"

/* The DSN's sslmode, in libpq's words (MySQL's spellings are accepted). */
typedef enum dbp__my_sslmode {
  DBP__MY_SSL_DISABLE = 0, /* never TLS (the default when no sslmode is given) */
  DBP__MY_SSL_PREFER,      /* TLS when the server offers it, plaintext otherwise */
  DBP__MY_SSL_REQUIRE,     /* TLS or fail; the certificate is not checked */
  DBP__MY_SSL_VERIFY_CA,   /* TLS, the chain checked against sslrootcert */
  DBP__MY_SSL_VERIFY_FULL, /* verify-ca, and the DSN's host name checked too */
} dbp__my_sslmode;

/* The query parameters of a MySQL DSN, checked. Strings point into the
 * dbp_dsn they came from. */
typedef struct dbp__my_opts {
  dbp__my_sslmode ssl;
  const char *ssl_ca, *ssl_cert, *ssl_key; /* NULL when not given */
  const char *charset;                     /* "utf8mb4" unless given */
  const char *app_name;                    /* NULL when not given */
  const char *socket;                      /* NULL when not given */
  /* TCP keepalive and the user timeout (TCP connections only). */
  bool keepalives;
  int keepalives_idle;     /* seconds before the first probe */
  int keepalives_interval; /* seconds between probes */
  int keepalives_count;    /* unanswered probes before the peer is dead */
  int tcp_user_timeout;    /* ms unacknowledged data may wait; 0 = system's */
} dbp__my_opts;

/* Reads and checks the query parameters of d into o: the one reading of a
 * MySQL DSN's parameters, for the connect and the offline check. Returns 0,
 * or DBP_EDSN with a message naming the parameter in msg. */
int dbp__my_opts_parse(const dbp_dsn *d, dbp__my_opts *o, char *msg, size_t mlen);

/* Whether `key` is a MySQL DSN parameter, and one that names the Unix
 * socket (socket, unix_socket). */
bool dbp__my_param_known(const char *key);
bool dbp__my_param_is_socket(const char *key);
/* The parameters' names, comma-separated into buf, for messages. */
const char *dbp__my_param_names(char *buf, size_t len);

/* The password to use when the DSN has none, as the mariadb client finds
 * it: `password=` in the [client] or [client-mariadb] group of ~/.my.cnf
 * (the last one wins; a world-writable file is ignored, as the client does;
 * no other option there is used), else the MYSQL_PWD environment variable.
 * Returns a malloc'd string or NULL. */
char *dbp__my_password_fallback(void);

/* Sets the keepalive and user-timeout options o asks for on the TCP socket
 * fd. Returns 0 or the negative errno of the setsockopt that failed. */
int dbp__my_set_keepalive(int fd, const dbp__my_opts *o);

#endif /* DBPIPE_DB_MYSQL_OPTS_H */
