/* Escaped text and number formatting for the command line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

const char *cli_fmt_count(uint64_t n, char *buf, size_t len) {
  char digits[32];
  int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
  char out[48];
  size_t o = 0;
  for (int i = 0; i < nd; i++) {
    if (i > 0 && (nd - i) % 3 == 0) out[o++] = ',';
    out[o++] = digits[i];
  }
  out[o] = '\0';
  snprintf(buf, len, "%s", out);
  return buf;
}

const char *cli_fmt_bytes(uint64_t n, char *buf, size_t len) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (n < 1024) {
    snprintf(buf, len, "%llu B", (unsigned long long)n);
    return buf;
  }
  double v = (double)n / 1024.0;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

const char *cli_fmt_duration(uint64_t ms, char *buf, size_t len) {
  return dbp_fmt_duration(ms, buf, len);
}

const char *cli_fmt_iso(const struct timespec *ts, char *buf, size_t len) {
  return dbp_fmt_iso(ts, buf, len);
}

const char *cli_display_path(const char *path) {
  static char cwd[4096];
  static size_t len;
  if (len == 0) {
    if (getcwd(cwd, sizeof cwd) == NULL) return path;
    len = strlen(cwd);
  }
  if (len > 1 && strncmp(path, cwd, len) == 0 && path[len] == '/') return path + len + 1;
  return path;
}

void cli_escaped(dbp_buf *s, const char *p) {
  if (p == NULL) return;
  const unsigned char *u = (const unsigned char *)p;
  while (*u != '\0') {
    unsigned char c = *u;
    const char *esc = c == '\n'   ? "\\n"
                      : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t"
                      : c == 0x1B ? "\\e"
                                  : NULL;
    if (esc != NULL) {
      dbp_buf_puts(s, esc);
      u++;
    } else if (c < 0x20 || c == 0x7F) {
      dbp_buf_printf(s, "\\x%02x", c);
      u++;
    } else if (c == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F) {
      /* U+0080..U+009F: C1 controls, which terminals obey like ESC [. */
      dbp_buf_printf(s, "\\xc2\\x%02x", u[1]);
      u += 2;
    } else {
      dbp_buf_append(s, u, 1);
      u++;
    }
  }
}

static void vline(FILE *f, const char *fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  dbp_buf s = {0};
  cli_escaped(&s, buf);
  dbp_buf_append(&s, "\n", 1);
  if (s.data != NULL) fputs(s.data, f);
  dbp_buf_free(&s);
}

void cli_errf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline(stderr, fmt, ap);
  va_end(ap);
}

void cli_outf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline(stdout, fmt, ap);
  va_end(ap);
}

const char *cli_safe_arg(const char *arg, char *buf, size_t len) {
  /* Anything that looks like a URL is shown the way DSNs are. */
  if (arg != NULL && strstr(arg, "://") != NULL) return dbp_dsn_redact(arg, buf, len);
  return arg;
}
