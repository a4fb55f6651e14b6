/* Fuzz target for the reader of PostgreSQL's text COPY format
 * (dbp__copytext_split in src/export/copytext.c), which turns COPY rows
 * into values for the TSV and JSON Lines encoders.
 *
 * Input: byte 0 picks the mode and the column count (1 + (b >> 1) % 6).
 *   even: the rest is split at '\n' into lines fed to the reader raw: it
 *         must not crash, must return 0 or DBP_EPROTO, and every value it
 *         hands out lies inside the line or the scratch buffer.
 *   odd:  the rest is cells (a length byte, 0xFF = NULL, then the bytes),
 *         encoded with the TSV encoder (tab, \N, no header: exactly COPY's
 *         text format) and read back: every value must come back as given.
 */
#include "dbpipe/export.h"
#include "export/export_int.h"
#include "fuzz.h"

#define MAX_COLS 6

static bool inside(const char *p, size_t n, const char *lo, size_t len) {
  return p >= lo && p + n <= lo + len;
}

static void raw_lines(const uint8_t *p, size_t n, size_t ncols) {
  dbp_buf scratch = {0};
  const char *vals[MAX_COLS];
  size_t lens[MAX_COLS];
  while (n > 0) {
    const uint8_t *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    /* An exact-size copy of the line, so an overrun is caught. */
    char *line = malloc(len ? len : 1);
    memcpy(line, p, len);
    int rc = dbp__copytext_split(line, len, ncols, vals, lens, &scratch);
    FZ_CHECK(rc == 0 || rc == DBP_EPROTO, "the reader returned %d", rc);
    if (rc == 0) {
      for (size_t i = 0; i < ncols; i++) {
        if (vals[i] == NULL) continue;
        FZ_CHECK(inside(vals[i], lens[i], line, len) ||
                     inside(vals[i], lens[i], scratch.data, scratch.cap),
                 "value %zu points outside the line and the scratch buffer", i);
      }
    }
    free(line);
    if (nl == NULL) break;
    n -= len + 1;
    p += len + 1;
  }
  dbp_buf_free(&scratch);
}

static void round_trip(fz_in *in, size_t ncols) {
  dbp_column cols[MAX_COLS];
  for (size_t i = 0; i < ncols; i++) cols[i] = (dbp_column){"c", DBP_T_TEXT, "text", 25};
  dbp_encoder *e = NULL;
  dbp_encode_options o = {.format = DBP_FMT_TSV, .no_header = true};
  FZ_CHECK(dbp_encoder_new(&o, cols, ncols, &e) == 0, "no TSV encoder");
  dbp_buf out = {0}, scratch = {0};
  char *cells[MAX_COLS];
  size_t cl[MAX_COLS];
  while (in->n > 0) {
    for (size_t i = 0; i < ncols; i++) {
      uint8_t len = fz_byte(in);
      if (len == 0xFF) {
        cells[i] = NULL;
        cl[i] = 0;
        continue;
      }
      size_t got;
      const uint8_t *p = fz_bytes(in, len, &got);
      cells[i] = malloc(got ? got : 1);
      memcpy(cells[i], p, got);
      cl[i] = got;
    }
    out.len = 0;
    dbp_row row = {ncols, (const char *const *)cells, cl};
    FZ_CHECK(dbp_encoder_row(e, &row, &out) == 0, "encoding failed");
    FZ_CHECK(out.len > 0 && out.data[out.len - 1] == '\n', "a row without its line end");
    FZ_CHECK(memchr(out.data, '\n', out.len - 1) == NULL, "a raw LF inside a row");
    const char *vals[MAX_COLS];
    size_t lens[MAX_COLS];
    int rc = dbp__copytext_split(out.data, out.len - 1, ncols, vals, lens, &scratch);
    if (rc != 0) {
      fz_dump("line", out.data, out.len - 1);
      FZ_FAIL("the reader refused the encoder's row (%d)", rc);
    }
    for (size_t i = 0; i < ncols; i++) {
      bool ok = cells[i] == NULL
                    ? vals[i] == NULL
                    : vals[i] != NULL && lens[i] == cl[i] && memcmp(vals[i], cells[i], cl[i]) == 0;
      if (!ok) {
        fz_dump("line", out.data, out.len - 1);
        if (cells[i]) fz_dump("want", cells[i], cl[i]);
        if (vals[i]) fz_dump("got", vals[i], lens[i]);
        FZ_FAIL("column %zu does not read back", i);
      }
      free(cells[i]);
    }
  }
  dbp_buf_free(&out);
  dbp_buf_free(&scratch);
  dbp_encoder_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t ncols = 1 + (size_t)(data[0] >> 1) % MAX_COLS;
  if (data[0] & 1) {
    fz_in in = {data + 1, size - 1};
    round_trip(&in, ncols);
  } else {
    raw_lines(data + 1, size - 1, ncols);
  }
  return 0;
}
