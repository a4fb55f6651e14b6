/* Streaming gzip (zlib, gzip container) and zstd compressors behind one
 * small interface. Used from the thread pool: nothing here touches the loop. */
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "export/writer.h"

#define OUT_CAP (128 * 1024)

struct dbp__zstream {
  dbp_compression kind;
  z_stream z;
  bool z_ready;
  ZSTD_CCtx *zc;
  unsigned char *out;
};

/* Checks `level` for `kind` and maps 0 to the library default. */
int dbp__zstream_check_level(dbp_compression kind, int level) {
  if (level == 0 || kind == DBP_COMP_NONE) return 0;
  if (kind == DBP_COMP_GZIP) return level >= 1 && level <= 9 ? 0 : DBP_EINVAL;
  if (kind == DBP_COMP_ZSTD)
    return level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel() ? 0 : DBP_EINVAL;
  return DBP_EINVAL;
}

/* Creates a compressor for one stream at a time (reset between files).
 * Returns 0, DBP_EINVAL for a bad kind or level, DBP_ENOMEM or
 * DBP_ECOMPRESS. */
int dbp__zstream_new(dbp_compression kind, int level, dbp__zstream **out) {
  if ((kind != DBP_COMP_GZIP && kind != DBP_COMP_ZSTD) || out == NULL) return DBP_EINVAL;
  int rc = dbp__zstream_check_level(kind, level);
  if (rc != 0) return rc;
  dbp__zstream *s = calloc(1, sizeof *s);
  if (s == NULL) return DBP_ENOMEM;
  s->kind = kind;
  rc = DBP_ENOMEM;
  s->out = malloc(OUT_CAP);
  if (s->out == NULL) goto err;
  if (kind == DBP_COMP_GZIP) {
    /* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
    int zr = deflateInit2(&s->z, level ? level : Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                          Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
      rc = zr == Z_MEM_ERROR ? DBP_ENOMEM : DBP_ECOMPRESS;
      goto err;
    }
    s->z_ready = true;
  } else {
    s->zc = ZSTD_createCCtx();
    if (s->zc == NULL) goto err;
    rc = DBP_ECOMPRESS;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(s->zc, ZSTD_c_compressionLevel,
                                            level ? level : ZSTD_CLEVEL_DEFAULT)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(s->zc, ZSTD_c_checksumFlag, 1)))
      goto err;
  }
  *out = s;
  return 0;

err:
  dbp__zstream_free(s);
  return rc;
}

/* Starts a new, independent stream (the next file). */
int dbp__zstream_reset(dbp__zstream *s) {
  if (s->kind == DBP_COMP_GZIP) return deflateReset(&s->z) == Z_OK ? 0 : DBP_ECOMPRESS;
  return ZSTD_isError(ZSTD_CCtx_reset(s->zc, ZSTD_reset_session_only)) ? DBP_ECOMPRESS : 0;
}

/* Compresses in[0..n) and hands every piece of output to emit(ctx, p, len)
 * (which returns 0 or an error that stops the run and is returned). `mode`
 * DBP__Z_FLUSH makes everything fed so far decodable; DBP__Z_FINISH ends the
 * stream (gzip trailer, zstd epilogue). Returns 0, emit's error or
 * DBP_ECOMPRESS. */
int dbp__zstream_run(dbp__zstream *s, const void *in, size_t n, int mode,
                     int (*emit)(void *ctx, const void *p, size_t len), void *ctx) {
  if (s->kind == DBP_COMP_GZIP) {
    int flush = mode == DBP__Z_FINISH ? Z_FINISH : mode == DBP__Z_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    if (n == 0 && flush == Z_NO_FLUSH) return 0;
    s->z.next_in = (Bytef *)in;
    /* zlib counts in uInt: feed very large inputs in slices. */
    size_t left = n;
    do {
      uInt take = left > (1u << 30) ? (1u << 30) : (uInt)left;
      left -= take;
      s->z.avail_in = take;
      int f = left > 0 ? Z_NO_FLUSH : flush;
      do {
        s->z.next_out = s->out;
        s->z.avail_out = OUT_CAP;
        int zr = deflate(&s->z, f);
        if (zr == Z_STREAM_ERROR) return DBP_ECOMPRESS;
        size_t have = OUT_CAP - s->z.avail_out;
        if (have > 0) {
          int rc = emit(ctx, s->out, have);
          if (rc != 0) return rc;
        }
      } while (s->z.avail_out == 0);
      if (s->z.avail_in != 0) return DBP_ECOMPRESS;
    } while (left > 0);
    return 0;
  }
  ZSTD_EndDirective op = mode == DBP__Z_FINISH  ? ZSTD_e_end
                         : mode == DBP__Z_FLUSH ? ZSTD_e_flush
                                                : ZSTD_e_continue;
  if (n == 0 && op == ZSTD_e_continue) return 0;
  ZSTD_inBuffer ib = {in, n, 0};
  for (;;) {
    ZSTD_outBuffer ob = {s->out, OUT_CAP, 0};
    size_t rem = ZSTD_compressStream2(s->zc, &ob, &ib, op);
    if (ZSTD_isError(rem)) return DBP_ECOMPRESS;
    if (ob.pos > 0) {
      int rc = emit(ctx, s->out, ob.pos);
      if (rc != 0) return rc;
    }
    if (op == ZSTD_e_continue ? ib.pos == ib.size : rem == 0) return 0;
  }
}

void dbp__zstream_free(dbp__zstream *s) {
  if (s == NULL) return;
  if (s->z_ready) deflateEnd(&s->z);
  ZSTD_freeCCtx(s->zc);
  free(s->out);
  free(s);
}
