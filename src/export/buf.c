/* dbp_buf: the growable byte buffer the encoders append to. */
#include <stdlib.h>
#include <string.h>

#include "dbpipe/export.h"

/* Makes room for `extra` more bytes after b->len, growing the allocation
 * geometrically so that appending row by row costs amortized O(1). The buffer
 * keeps ownership of its memory. Returns 0 or DBP_ENOMEM (b unchanged). */
int dbp_buf_reserve(dbp_buf *b, size_t extra) {
  if (b == NULL) return DBP_EINVAL;
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return DBP_ENOMEM;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return DBP_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Appends n bytes from p. Returns 0 or DBP_ENOMEM. */
int dbp_buf_append(dbp_buf *b, const void *p, size_t n) {
  int rc = dbp_buf_reserve(b, n);
  if (rc != 0) return rc;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Releases the memory and leaves an empty, reusable buffer. */
void dbp_buf_free(dbp_buf *b) {
  if (b == NULL) return;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
