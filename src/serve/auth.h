/* Internal: who may talk to `dbpipe serve`. Not installed.
 *
 * With --token-file every request but /healthz carries
 * "Authorization: Bearer TOKEN". The token file is treated like a private
 * key: a regular file that only its owner may read or write. A server that
 * listens beyond loopback without a token refuses to start. */
#ifndef DBPIPE_SERVE_AUTH_H
#define DBPIPE_SERVE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* The shortest token accepted: 16 bytes (128 bits when random). */
#define DBP_SERVE_TOKEN_MIN 16

/* Reads the token from `path` into a malloc'd *token (the caller wipes
 * and frees it): one line, trailing line ends and blanks dropped. Refused
 * with DBP_EACCES (not a regular file, or the group or others may read or
 * write it), DBP_EINVAL (empty, shorter than DBP_SERVE_TOKEN_MIN, more
 * than one line, or blanks or control characters inside) or the error of
 * reading it; err says why and never shows the token. */
int dbp_serve_token_load(const char *path, char **token, char *err, size_t errlen);

/* True when `authorization` (the header's value; NULL when absent) is
 * "Bearer " followed by exactly `token` (the scheme's case ignored).
 * The comparison looks at the SHA-256 digests of both in constant time,
 * so that neither the token's bytes nor its length leak through timing. */
bool dbp_serve_token_ok(const char *token, const char *authorization);

/* True when the --listen host is a loopback address: 127.0.0.0/8, ::1 or
 * "localhost". Anything else (0.0.0.0, ::, a LAN address, a name) counts
 * as reachable from elsewhere. */
bool dbp_serve_is_loopback(const char *host);

#endif /* DBPIPE_SERVE_AUTH_H */
