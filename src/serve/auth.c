/* Who may talk to the server (auth.h). */
#include "serve/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpipe/common.h"
#include "export/export_int.h"

#define TOKEN_FILE_MAX 4096

static int fail(char *err, size_t errlen, int code, const char *path, const char *why) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "token file %s: %s", path, why);
  return code;
}

int dbp_serve_token_load(const char *path, char **token, char *err, size_t errlen) {
  *token = NULL;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) return fail(err, errlen, DBP_EACCES, path, "is a symbolic link");
    return fail(err, errlen, dbp_err_from_errno(-errno), path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errlen, DBP_EACCES, path, "is not a regular file");
  }
  if (st.st_mode & 077) {
    close(fd);
    return fail(err, errlen, DBP_EACCES, path,
                "the group or others may read or write it (chmod 600 it)");
  }
  char buf[TOKEN_FILE_MAX + 1];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return fail(err, errlen, dbp_err_from_errno(-e), path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == sizeof buf - 1) {
      close(fd);
      return fail(err, errlen, DBP_EINVAL, path, "is too long for a token");
    }
  }
  close(fd);
  while (n > 0 &&
         (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    n--;
  buf[n] = '\0';
  int rc = 0;
  const char *why = NULL;
  if (n == 0) {
    why = "is empty";
  } else if (n < DBP_SERVE_TOKEN_MIN) {
    why = "holds a token shorter than 16 bytes";
  } else {
    for (size_t i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)buf[i];
      if (ch <= ' ' || ch == 0x7f) {
        why = ch == '\n' ? "holds more than one line" : "holds blanks or control characters";
        break;
      }
    }
  }
  if (why != NULL) {
    rc = fail(err, errlen, DBP_EINVAL, path, why);
  } else {
    *token = malloc(n + 1);
    if (*token == NULL)
      rc = fail(err, errlen, DBP_ENOMEM, path, "out of memory");
    else
      memcpy(*token, buf, n + 1);
  }
  /* The buffer held the token: wipe it (volatile, so it is not elided). */
  volatile char *v = buf;
  for (size_t i = 0; i <= n; i++) v[i] = 0;
  return rc;
}

static void digest(const char *s, size_t n, uint8_t out[32]) {
  dbp__sha256 h;
  dbp__sha256_init(&h);
  dbp__sha256_update(&h, s, n);
  dbp__sha256_final(&h, out);
}

bool dbp_serve_token_ok(const char *token, const char *authorization) {
  if (token == NULL || authorization == NULL) return false;
  if (strncasecmp(authorization, "Bearer ", 7) != 0) return false;
  const char *given = authorization + 7;
  uint8_t a[32], b[32];
  digest(token, strlen(token), a);
  digest(given, strlen(given), b);
  unsigned diff = 0;
  for (size_t i = 0; i < 32; i++) diff |= (unsigned)(a[i] ^ b[i]);
  return diff == 0;
}

bool dbp_serve_is_loopback(const char *host) {
  if (host == NULL) return false;
  if (strcasecmp(host, "localhost") == 0) return true;
  struct in_addr a4;
  if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  char h6[64];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h6) {
    memcpy(h6, host + 1, n - 2);
    h6[n - 2] = '\0';
    host = h6;
  }
  struct in6_addr a6;
  if (inet_pton(AF_INET6, host, &a6) == 1) return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
  return false;
}
