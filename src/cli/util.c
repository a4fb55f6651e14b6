/* Strings and number formatting for the command line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

void cli_str_add(cli_str *s, const char *p, size_t n) {
  if (s->oom) return;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 128;
    while (cap < s->len + n + 1) cap *= 2;
    char *np = realloc(s->p, cap);
    if (np == NULL) {
      s->oom = true;
      return;
    }
    s->p = np;
    s->cap = cap;
  }
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = '\0';
}

void cli_str_puts(cli_str *s, const char *p) {
  cli_str_add(s, p, strlen(p));
}

void cli_str_printf(cli_str *s, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    cli_str_add(s, small, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    s->oom = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  cli_str_add(s, big, (size_t)n);
  free(big);
}

/* Length of the valid UTF-8 sequence at p (at most `left` bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t left) {
  size_t n;
  uint32_t cp;
  if (p[0] < 0x80) return 1;
  if ((p[0] & 0xE0) == 0xC0) {
    n = 2;
    cp = p[0] & 0x1F;
  } else if ((p[0] & 0xF0) == 0xE0) {
    n = 3;
    cp = p[0] & 0x0F;
  } else if ((p[0] & 0xF8) == 0xF0) {
    n = 4;
    cp = p[0] & 0x07;
  } else {
    return 0;
  }
  if (n > left) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    return 0;
  return n;
}

void cli_str_json(cli_str *s, const char *p) {
  if (p == NULL) {
    cli_str_puts(s, "null");
    return;
  }
  const unsigned char *u = (const unsigned char *)p;
  size_t left = strlen(p);
  cli_str_add(s, "\"", 1);
  while (left > 0) {
    unsigned char c = *u;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      cli_str_add(s, esc, 2);
      u++, left--;
    } else if (c == '\n') {
      cli_str_add(s, "\\n", 2);
      u++, left--;
    } else if (c == '\r') {
      cli_str_add(s, "\\r", 2);
      u++, left--;
    } else if (c == '\t') {
      cli_str_add(s, "\\t", 2);
      u++, left--;
    } else if (c < 0x20 || c == 0x7F) {
      cli_str_printf(s, "\\u%04x", c);
      u++, left--;
    } else {
      size_t n = utf8_len(u, left);
      if (n == 0) {
        cli_str_add(s, "\xEF\xBF\xBD", 3);
        n = 1;
      } else {
        cli_str_add(s, (const char *)u, n);
      }
      u += n, left -= n;
    }
  }
  cli_str_add(s, "\"", 1);
}

void cli_str_free(cli_str *s) {
  free(s->p);
  *s = (cli_str){0};
}

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
  if (ms < 1000) {
    snprintf(buf, len, "%llu ms", (unsigned long long)ms);
  } else if (ms < 60000) {
    snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
  } else if (ms < 3600000) {
    snprintf(buf, len, "%llum%02llus", (unsigned long long)(ms / 60000),
             (unsigned long long)(ms / 1000 % 60));
  } else {
    snprintf(buf, len, "%lluh%02llum", (unsigned long long)(ms / 3600000),
             (unsigned long long)(ms / 60000 % 60));
  }
  return buf;
}

const char *cli_fmt_iso(const struct timespec *ts, char *buf, size_t len) {
  struct tm tm;
  time_t t = ts->tv_sec;
  gmtime_r(&t, &tm);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%03ldZ", date, ts->tv_nsec / 1000000);
  return buf;
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

void cli_str_escaped(cli_str *s, const char *p) {
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
      cli_str_puts(s, esc);
      u++;
    } else if (c < 0x20 || c == 0x7F) {
      cli_str_printf(s, "\\x%02x", c);
      u++;
    } else if (c == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F) {
      /* U+0080..U+009F: C1 controls, which terminals obey like ESC [. */
      cli_str_printf(s, "\\xc2\\x%02x", u[1]);
      u += 2;
    } else {
      cli_str_add(s, (const char *)u, 1);
      u++;
    }
  }
}

static void vline(FILE *f, const char *fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  cli_str s = {0};
  cli_str_escaped(&s, buf);
  cli_str_add(&s, "\n", 1);
  if (s.p != NULL) fputs(s.p, f);
  cli_str_free(&s);
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
