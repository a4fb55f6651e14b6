/* Binary values as text: "\x" + lowercase hex, the form every format
 * writes them in (PostgreSQL's bytea output, for both databases). */
#include "export/export_int.h"

char *dbp__hex_text(char *w, const void *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = p;
  *w++ = '\\';
  *w++ = 'x';
  for (size_t i = 0; i < n; i++) {
    *w++ = hex[s[i] >> 4];
    *w++ = hex[s[i] & 15];
  }
  return w;
}
