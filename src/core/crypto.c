/* crypto.c — API keys, hashes, signed links and the server secret
 * (include/tintype/crypto.h).
 *
 * SHA-256 (FIPS 180-4) and HMAC (RFC 2104) are written out here rather than
 * taken from OpenSSL: the first OpenSSL 3 digest call loads its provider
 * machinery and adds 2.2 MB to every API process's RSS (measured), which
 * alone broke the 8 MB budget of an idle API process. Randomness comes from
 * the kernel (getrandom). The known-answer tests in tests/unit/test_crypto.c
 * check both against the standards' vectors. */
#include "tintype/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tintype/alloc.h"
#include "tintype/error.h"

/* ---- SHA-256 ---- */

typedef struct {
  uint32_t h[8];
  uint64_t len;
  uint8_t buf[64];
  size_t n;
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6],
           h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = cc;
    cc = b;
    b = a;
    a = t1 + t2;
  }
  c->h[0] += a;
  c->h[1] += b;
  c->h[2] += cc;
  c->h[3] += d;
  c->h[4] += e;
  c->h[5] += f;
  c->h[6] += g;
  c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->len = 0;
  c->n = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
  const uint8_t *p = data;
  c->len += n;
  while (n) {
    size_t take = 64 - c->n < n ? 64 - c->n : n;
    memcpy(c->buf + c->n, p, take);
    c->n += take;
    p += take;
    n -= take;
    if (c->n == 64) {
      sha256_block(c, c->buf);
      c->n = 0;
    }
  }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
  uint64_t bits = c->len * 8;
  uint8_t pad = 0x80, zero = 0;
  sha256_update(c, &pad, 1);
  while (c->n != 56) sha256_update(c, &zero, 1);
  uint8_t lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(c, lenb, 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(c->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)c->h[i];
  }
}

void tt_sha256(const void *data, size_t n, uint8_t out[32]) {
  sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, data, n);
  sha256_final(&c, out);
}

void tt_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]) {
  uint8_t k[64] = {0}, ipad[64], opad[64], inner[32];
  if (klen > 64)
    tt_sha256(key, klen, k);
  else
    memcpy(k, key, klen);
  for (int i = 0; i < 64; i++) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, ipad, 64);
  sha256_update(&c, msg, mlen);
  sha256_final(&c, inner);
  sha256_init(&c);
  sha256_update(&c, opad, 64);
  sha256_update(&c, inner, 32);
  sha256_final(&c, out);
}

int tt_random_bytes(void *out, size_t n) {
  uint8_t *p = out;
  while (n) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return TT_EIO;
    }
    p += r;
    n -= (size_t)r;
  }
  return TT_OK;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* unpadded base64url of n bytes; out needs 4*ceil(n/3)+1 */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out) {
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[j++] = b64url[(v >> 18) & 63];
    out[j++] = b64url[(v >> 12) & 63];
    if (i + 1 < n) out[j++] = b64url[(v >> 6) & 63];
    if (i + 2 < n) out[j++] = b64url[v & 63];
  }
  out[j] = 0;
  return j;
}

/* base64 (standard or url alphabet, padding optional) of n characters into
 * out (room for n/4*3+3 bytes); TT_EINVAL on any other character */
int tt_base64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen) {
  uint32_t acc = 0;
  int bits = 0;
  size_t j = 0;
  while (n && in[n - 1] == '=') n--;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)in[i], v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return TT_EINVAL;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (unsigned char)(acc >> bits);
    }
  }
  if (bits >= 6) return TT_EINVAL; /* a lone sixth bit group */
  *outlen = j;
  return TT_OK;
}

int tt_apikey_new(char *out) {
  uint8_t r[32];
  if (tt_random_bytes(r, sizeof r)) return TT_EIO;
  memcpy(out, "tt_", 3);
  b64url_encode(r, sizeof r, out + 3);
  return TT_OK;
}

void tt_sha256_hex(const void *s, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  uint8_t d[32];
  tt_sha256(s, n, d);
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[64] = 0;
}

int tt_ct_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = la != lb;
  size_t n = la < lb ? la : lb;
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

/* The MAC covers the whole of PATH "\n" EXPIRES. (It used to be cut at
 * 8,399 bytes, so two paths longer than that which agreed up to there, with
 * any expiry, shared one signature; fuzz_signlink found it. Paths can be
 * that long when --max-url-bytes is raised.) */
static void mac(const uint8_t *secret, size_t slen, const char *path, int64_t expires, char *out) {
  char small[512], *msg = small;
  int n = snprintf(small, sizeof small, "%s\n%lld", path, (long long)expires);
  if (n >= (int)sizeof small) {
    msg = tt_xmalloc((size_t)n + 1);
    snprintf(msg, (size_t)n + 1, "%s\n%lld", path, (long long)expires);
  }
  uint8_t d[32];
  tt_hmac_sha256(secret, slen, msg, n > 0 ? (size_t)n : 0, d);
  if (msg != small) free(msg);
  b64url_encode(d, sizeof d, out);
}

int tt_sign_path(const uint8_t *secret, size_t slen, const char *path, int64_t expires, char *out, size_t len) {
  char sig[64];
  mac(secret, slen, path, expires, sig);
  int n = snprintf(out, len, "%s?expires=%lld&sig=%s", path, (long long)expires, sig);
  return (n < 0 || (size_t)n >= len) ? TT_ETOOBIG : TT_OK;
}

/* value of `key` in an &-separated query, copied into out */
static int query_get(const char *q, const char *key, char *out, size_t len) {
  size_t kl = strlen(key);
  for (const char *p = q; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    if (seg > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      size_t vl = seg - kl - 1;
      if (vl >= len) return 0;
      memcpy(out, p + kl + 1, vl);
      out[vl] = 0;
      return 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  return 0;
}

int tt_sign_check(const uint8_t *secret, size_t slen, const char *path, const char *query, int64_t now) {
  char exp[32], sig[64], want[64];
  if (!query || !query_get(query, "expires", exp, sizeof exp) || !query_get(query, "sig", sig, sizeof sig))
    return TT_EAUTH;
  char *end;
  errno = 0;
  long long e = strtoll(exp, &end, 10);
  if (errno || *end || end == exp) return TT_EAUTH;
  mac(secret, slen, path, e, want);
  if (!tt_ct_equal(sig, want)) return TT_EAUTH;
  if (e < now) return TT_ETIMEDOUT;
  return TT_OK;
}

int tt_secret_load(const char *configured, const char *data_dir, uint8_t *out, size_t *outlen) {
  if (configured && *configured) {
    size_t n = strlen(configured);
    if (n < 16 || n > TT_SECRET_MAX) return TT_EINVAL;
    memcpy(out, configured, n);
    *outlen = n;
    return TT_OK;
  }
  char fn[1100];
  snprintf(fn, sizeof fn, "%s/secret", data_dir);
  mkdir(data_dir, 0700);
  for (int attempt = 0; attempt < 50; attempt++) {
    int fd = open(fn, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = read(fd, out, TT_SECRET_MAX);
      close(fd);
      if (n == 32) {
        *outlen = 32;
        return TT_OK;
      }
      if (n > 0 && n != 32) return TT_EIO; /* damaged */
      usleep(10000); /* being written by a concurrent first start */
      continue;
    }
    /* make it: write a temp file, then link it into place (fails if another
     * process won the race, and then we read theirs) */
    uint8_t r[32];
    if (tt_random_bytes(r, sizeof r)) return TT_EIO;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", fn, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return TT_EIO;
    int ok = write(fd, r, sizeof r) == (ssize_t)sizeof r && fsync(fd) == 0;
    close(fd);
    if (ok && link(tmp, fn) == 0) {
      unlink(tmp);
      memcpy(out, r, sizeof r);
      *outlen = sizeof r;
      return TT_OK;
    }
    unlink(tmp);
    if (!ok || errno != EEXIST) return TT_EIO;
  }
  return TT_EIO;
}
