/* JSON Lines: one object per row, keys in column order. NULL is null,
 * booleans true/false, numbers with the server's own digits when they form a
 * JSON number (NaN and the infinities become strings), json columns embedded,
 * everything else a string. Strings escape the quote, the backslash and
 * control characters (\b \f \n \r \t short, the rest \u00XX, as PostgreSQL's
 * own JSON output does) and replace ill-formed UTF-8 with U+FFFD, one per
 * maximal ill-formed subsequence (the Unicode "best practice"). */
#include <stdint.h>
#include <string.h>

#include "export/export_int.h"

/* Length of the well-formed UTF-8 sequence starting at p (a byte >= 0x80),
 * or 0 when it is ill-formed; then *skip is the length of the maximal
 * ill-formed subpart to replace (at least 1). Follows Unicode table 3-7. */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *skip) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t need;
  *skip = 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    need = 2;
  } else if (c < 0xF0) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c < 0xF5) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n < 2 || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < need; k++) {
    if (k >= n || p[k] < 0x80 || p[k] > 0xBF) {
      *skip = k;
      return 0;
    }
  }
  return need;
}

/* Writes s[0..n) as a JSON string at w (room for 6n + 2) and returns the
 * end. Plain runs are found eight bytes at a time and copied whole. */
static char *json_str(char *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  *w++ = '"';
  while (p < end) {
    const unsigned char *run = p;
    while (end - p >= 8) {
      uint64_t x = dbp__load64(p);
      if (dbp__has_less(x, 0x20) | dbp__has_byte(x, DBP__ONES * '"') |
          dbp__has_byte(x, DBP__ONES * '\\') | (x & DBP__HIGHS))
        break;
      p += 8;
    }
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    memcpy(w, run, (size_t)(p - run));
    w += p - run;
    if (p == end) break;
    unsigned char c = *p;
    if (c >= 0x80) {
      size_t skip, len = utf8_seq(p, (size_t)(end - p), &skip);
      if (len > 0) {
        memcpy(w, p, len);
        w += len;
        p += len;
      } else {
        memcpy(w, "\xEF\xBF\xBD", 3);
        w += 3;
        p += skip;
      }
      continue;
    }
    p++;
    *w++ = '\\';
    switch (c) {
      case '"':
      case '\\':
        *w++ = (char)c;
        break;
      case '\b':
        *w++ = 'b';
        break;
      case '\f':
        *w++ = 'f';
        break;
      case '\n':
        *w++ = 'n';
        break;
      case '\r':
        *w++ = 'r';
        break;
      case '\t':
        *w++ = 't';
        break;
      default:
        memcpy(w, "u00", 3);
        w[3] = hex[c >> 4];
        w[4] = hex[c & 15];
        w += 5;
        break;
    }
  }
  *w++ = '"';
  return w;
}

int dbp__json_string(const char *s, size_t n, dbp_buf *out) {
  if (n > SIZE_MAX / 8) return DBP_ENOMEM;
  int rc = dbp_buf_reserve(out, 6 * n + 2);
  if (rc != 0) return rc;
  char *w = json_str(out->data + out->len, s, n);
  out->len = (size_t)(w - out->data);
  return 0;
}

static bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

/* Index just past the JSON number starting at s[i], or 0 if none starts
 * there: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static size_t scan_number(const unsigned char *s, size_t i, size_t n) {
  if (i < n && s[i] == '-') i++;
  if (i >= n || !is_digit(s[i])) return 0;
  if (s[i] == '0') {
    i++;
  } else {
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !is_digit(s[i])) return 0;
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !is_digit(s[i])) return 0;
    while (i < n && is_digit(s[i])) i++;
  }
  return i;
}

bool dbp__json_is_number(const char *s, size_t n) {
  return n > 0 && scan_number((const unsigned char *)s, 0, n) == n;
}

static bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Index just past the JSON string starting at s[i] (a quote), or 0 when it
 * is not a well-formed string (bad escape, raw control byte, bad UTF-8). */
static size_t scan_string(const unsigned char *s, size_t i, size_t n) {
  for (i++; i < n;) {
    unsigned char c = s[i];
    if (c == '"') return i + 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (i + 1 >= n) return 0;
      unsigned char x = s[i + 1];
      if (x == 'u') {
        if (i + 5 >= n) return 0;
        for (size_t k = 2; k < 6; k++)
          if (!is_hex(s[i + k])) return 0;
        i += 6;
      } else if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' ||
                 x == 'r' || x == 't') {
        i += 2;
      } else {
        return 0;
      }
    } else if (c >= 0x80) {
      size_t skip, len = utf8_seq(s + i, n - i, &skip);
      if (len == 0) return 0;
      i += len;
    } else {
      i++;
    }
  }
  return 0;
}

static size_t skip_ws(const unsigned char *s, size_t i, size_t n) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

#define JSON_MAX_DEPTH 1024

/* Validates one JSON text without recursion: a bit stack remembers, per
 * nesting level, whether it is an object (1) or an array (0). Deeper than
 * JSON_MAX_DEPTH counts as invalid (the value is then written as a string). */
bool dbp__json_is_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  uint64_t stack[JSON_MAX_DEPTH / 64] = {0};
  size_t depth = 0, i = skip_ws(s, 0, n);
  enum { VALUE, AFTER, KEY } state = VALUE;
  for (;;) {
    switch (state) {
      case VALUE:
        if (i >= n) return false;
        state = AFTER;
        if (s[i] == '{' || s[i] == '[') {
          bool obj = s[i] == '{';
          i = skip_ws(s, i + 1, n);
          if (i < n && s[i] == (obj ? '}' : ']')) {
            i++;
            break;
          }
          if (depth == JSON_MAX_DEPTH) return false;
          if (obj)
            stack[depth / 64] |= UINT64_C(1) << (depth % 64);
          else
            stack[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
          depth++;
          state = obj ? KEY : VALUE;
        } else if (s[i] == '"') {
          i = scan_string(s, i, n);
          if (i == 0) return false;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
          i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
          i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
          i += 4;
        } else {
          i = scan_number(s, i, n);
          if (i == 0) return false;
        }
        break;
      case AFTER: {
        i = skip_ws(s, i, n);
        if (depth == 0) return i == n;
        if (i >= n) return false;
        bool obj = (stack[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
        if (s[i] == ',') {
          i = skip_ws(s, i + 1, n);
          state = obj ? KEY : VALUE;
        } else if (s[i] == (obj ? '}' : ']')) {
          i++;
          depth--;
        } else {
          return false;
        }
        break;
      }
      case KEY:
        if (i >= n || s[i] != '"') return false;
        i = scan_string(s, i, n);
        if (i == 0) return false;
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != ':') return false;
        i = skip_ws(s, i + 1, n);
        state = VALUE;
        break;
    }
  }
}

/* Embeds a valid JSON text. CR and LF can only be whitespace between tokens
 * there (never inside a string), so they become spaces: one row, one line. */
static char *json_embed(char *w, const char *p, size_t n) {
  memcpy(w, p, n);
  for (size_t i = 0; i < n; i++) {
    if (w[i] == '\n' || w[i] == '\r') w[i] = ' ';
  }
  return w + n;
}

/* Encodes one row as a JSON object (worst case reserved once: 6 bytes per
 * input byte, an escaped control character). */
int dbp__jsonl_row(dbp_encoder *e, const dbp_row *row, dbp_buf *out) {
  size_t need = 4 + e->key_off[e->ncols];
  for (size_t i = 0; i < e->ncols; i++) {
    if (row->vals[i] == NULL) {
      need += 4;
      continue;
    }
    size_t n = row->lens[i];
    if (n > SIZE_MAX / 8 || need > SIZE_MAX / 2) return DBP_ENOMEM;
    need += 6 * n + 6;
  }
  int rc = dbp_buf_reserve(out, need);
  if (rc != 0) return rc;
  char *w = out->data + out->len;
  if (e->ncols == 0) *w++ = '{';
  for (size_t i = 0; i < e->ncols; i++) {
    size_t klen = e->key_off[i + 1] - e->key_off[i];
    memcpy(w, e->keys + e->key_off[i], klen);
    w += klen;
    const char *v = row->vals[i];
    size_t n = row->lens[i];
    if (v == NULL) {
      memcpy(w, "null", 4);
      w += 4;
      continue;
    }
    switch (e->jkind[i]) {
      case DBP__J_NUMBER:
        if (dbp__json_is_number(v, n)) {
          memcpy(w, v, n);
          w += n;
        } else {
          w = json_str(w, v, n);
        }
        break;
      case DBP__J_BOOL:
        if (n == 1 && (v[0] == 't' || v[0] == '1')) {
          memcpy(w, "true", 4);
          w += 4;
        } else if (n == 1 && (v[0] == 'f' || v[0] == '0')) {
          memcpy(w, "false", 5);
          w += 5;
        } else {
          w = json_str(w, v, n);
        }
        break;
      case DBP__J_JSON:
        w = dbp__json_is_valid(v, n) ? json_embed(w, v, n) : json_str(w, v, n);
        break;
      case DBP__J_BYTES:
        /* "\\x" + hex: the text form's backslash escaped for JSON. */
        *w++ = '"';
        *w++ = '\\';
        w = dbp__hex_text(w, v, n);
        *w++ = '"';
        break;
      default:
        w = json_str(w, v, n);
        break;
    }
  }
  *w++ = '}';
  if (e->crlf) *w++ = '\r';
  *w++ = '\n';
  out->len = (size_t)(w - out->data);
  return 0;
}
