/* Shared pieces of the libFuzzer targets: a reader over the fuzz input,
 * a failure report that crashes (so libFuzzer keeps the input), and UTF-8
 * and JSON-number checks written independently of the library's own. */
#ifndef DBPIPE_TESTS_FUZZ_H
#define DBPIPE_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_HELPER static __attribute__((unused))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A cursor over the input; reads past the end give zeros. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n;
} fz_in;

FZ_HELPER uint8_t fz_byte(fz_in *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

/* Takes up to `want` bytes; *got is how many there were. */
FZ_HELPER const uint8_t *fz_bytes(fz_in *in, size_t want, size_t *got) {
  const uint8_t *p = in->p;
  *got = want < in->n ? want : in->n;
  in->p += *got;
  in->n -= *got;
  return p;
}

/* Reports a broken property with the input's context and aborts: libFuzzer
 * saves the input as a crash. */
#define FZ_FAIL(...)                                                        \
  do {                                                                      \
    fprintf(stderr, "fuzz property failed at %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                                           \
    fputc('\n', stderr);                                                    \
    abort();                                                                \
  } while (0)

#define FZ_CHECK(cond, ...)            \
  do {                                 \
    if (!(cond)) FZ_FAIL(__VA_ARGS__); \
  } while (0)

/* Prints n bytes of p escaped, for failure messages. */
FZ_HELPER void fz_dump(const char *what, const void *p, size_t n) {
  const unsigned char *s = p;
  fprintf(stderr, "%s (%zu bytes): \"", what, n);
  for (size_t i = 0; i < n; i++) {
    if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
      fputc(s[i], stderr);
    else
      fprintf(stderr, "\\x%02x", s[i]);
  }
  fprintf(stderr, "\"\n");
}

/* True when s[0..n) is well-formed UTF-8 (Unicode table 3-7: no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
FZ_HELPER bool fz_utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

/* True when s[0..n) is a JSON number (RFC 8259):
 *   -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
FZ_HELPER bool fz_json_number(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return false;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d) return false;
  }
  return i == n;
}

/* "\x" + lowercase hex of p[0..n) into a new buffer; *outlen its length. */
FZ_HELPER char *fz_hex(const uint8_t *p, size_t n, size_t *outlen) {
  static const char digits[] = "0123456789abcdef";
  char *s = malloc(2 + 2 * n + 1);
  s[0] = '\\';
  s[1] = 'x';
  for (size_t i = 0; i < n; i++) {
    s[2 + 2 * i] = digits[p[i] >> 4];
    s[3 + 2 * i] = digits[p[i] & 15];
  }
  *outlen = 2 + 2 * n;
  s[*outlen] = '\0';
  return s;
}

#endif /* DBPIPE_TESTS_FUZZ_H */
