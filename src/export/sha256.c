/* SHA-256 (FIPS 180-4), for the checksum of every exported file. */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "export/export_int.h"

/* The first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Compresses nblocks consecutive 64-byte blocks into the state. */
static void sha256_blocks_portable(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  uint32_t w[64];
  while (nblocks-- > 0) {
    for (int i = 0; i < 16; i++) w[i] = load_be32(p + 4 * i);
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = k + S1 + ch + K[i] + w[i];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + maj;
      k = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
    p += 64;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1

/* The same compression with the x86 SHA extensions: the state lives in two
 * registers as (A,B,E,F) and (C,D,G,H); each sha256rnds2 does two rounds and
 * the roles of the two registers swap after it. The message schedule is
 * built four words at a time with sha256msg1/msg2. */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_blocks_ni(uint32_t h[8],
                                                                         const uint8_t *p,
                                                                         size_t nblocks) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);  /* C D A B */
  __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* E F G H */
  __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                        /* A B E F */
  s1 = _mm_blend_epi16(s1, t, 0xF0);                                             /* C D G H */
  while (nblocks-- > 0) {
    __m128i save0 = s0, save1 = s1, w[4];
    for (int g = 0; g < 16; g++) {
      if (g < 4) {
        w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
      } else {
        /* w[g & 3] still holds the group g - 4. */
        __m128i x = _mm_sha256msg1_epu32(w[g & 3], w[(g - 3) & 3]);
        x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g - 1) & 3], w[(g - 2) & 3], 4));
        w[g & 3] = _mm_sha256msg2_epu32(x, w[(g - 1) & 3]);
      }
      __m128i m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
      s1 = _mm_sha256rnds2_epu32(s1, s0, m);
      s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m, 0x0E));
    }
    s0 = _mm_add_epi32(s0, save0);
    s1 = _mm_add_epi32(s1, save1);
    p += 64;
  }
  t = _mm_shuffle_epi32(s0, 0x1B);                                  /* F E B A */
  s1 = _mm_shuffle_epi32(s1, 0xB1);                                 /* D C H G */
  _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, s1, 0xF0)); /* D C B A */
  _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(s1, t, 8));    /* H G F E */
}

/* Valgrind (3.19) reports the CPU's SHA flag but cannot run the
 * instructions: under Valgrind the portable code is used. The client request
 * is header-only and costs nothing outside Valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static bool cpu_has_sha_ni(void) {
  if (RUNNING_ON_VALGRIND) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_SSSE3) && (c & bit_SSE4_1);
}
#endif

/* Which implementation this machine uses: checked once (CPUID), cached. */
int dbp__sha256_impl(void) {
  static _Atomic int impl = -1;
  int v = atomic_load_explicit(&impl, memory_order_relaxed);
  if (v < 0) {
    v = DBP__SHA256_PORTABLE;
#ifdef HAVE_SHA_NI
    if (cpu_has_sha_ni()) v = DBP__SHA256_SHA_NI;
#endif
    atomic_store_explicit(&impl, v, memory_order_relaxed);
  }
  return v;
}

/* Compresses nblocks 64-byte blocks with implementation `impl` (falling
 * back to the portable one where it cannot run). */
void dbp__sha256_compress(uint32_t h[8], const uint8_t *p, size_t nblocks, int impl) {
#ifdef HAVE_SHA_NI
  if (impl == DBP__SHA256_SHA_NI && dbp__sha256_impl() == DBP__SHA256_SHA_NI) {
    sha256_blocks_ni(h, p, nblocks);
    return;
  }
#endif
  (void)impl;
  sha256_blocks_portable(h, p, nblocks);
}

static void sha256_blocks(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  dbp__sha256_compress(h, p, nblocks, dbp__sha256_impl());
}

void dbp__sha256_init(dbp__sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->total = 0;
  s->nbuf = 0;
}

/* Feeds n bytes. Whole blocks are hashed straight from the caller's memory;
 * only a partial block is copied. */
void dbp__sha256_update(dbp__sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->total += n;
  if (s->nbuf > 0) {
    size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
    memcpy(s->buf + s->nbuf, p, take);
    s->nbuf += take;
    p += take;
    n -= take;
    if (s->nbuf < 64) return;
    sha256_blocks(s->h, s->buf, 1);
    s->nbuf = 0;
  }
  if (n >= 64) {
    sha256_blocks(s->h, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
  }
  if (n > 0) {
    memcpy(s->buf, p, n);
    s->nbuf = n;
  }
}

/* Pads, finishes and writes the 32-byte digest. The state must be
 * re-initialized before reuse. */
void dbp__sha256_final(dbp__sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->total * 8;
  s->buf[s->nbuf++] = 0x80;
  if (s->nbuf > 56) {
    memset(s->buf + s->nbuf, 0, 64 - s->nbuf);
    sha256_blocks(s->h, s->buf, 1);
    s->nbuf = 0;
  }
  memset(s->buf + s->nbuf, 0, 56 - s->nbuf);
  for (int i = 0; i < 8; i++) s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_blocks(s->h, s->buf, 1);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(s->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)s->h[i];
  }
}

/* Finishes and writes the digest as 64 lowercase hex digits plus NUL. */
void dbp__sha256_final_hex(dbp__sha256 *s, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t d[32];
  dbp__sha256_final(s, d);
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = '\0';
}
