/* crypto.c — API keys, hashes, signed links and the server secret
 * (include/tintype/crypto.h), on OpenSSL's libcrypto. */
#include "tintype/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tintype/error.h"

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

int tt_apikey_new(char *out) {
  uint8_t r[32];
  if (RAND_bytes(r, sizeof r) != 1) return TT_EIO;
  memcpy(out, "tt_", 3);
  b64url_encode(r, sizeof r, out + 3);
  return TT_OK;
}

void tt_sha256_hex(const void *s, size_t n, char *out) {
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256(s, n, d);
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int tt_ct_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = la != lb;
  size_t n = la < lb ? la : lb;
  for (size_t i = 0; i < n; i++) diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static void mac(const uint8_t *secret, size_t slen, const char *path, int64_t expires, char *out) {
  char msg[8400];
  int n = snprintf(msg, sizeof msg, "%s\n%lld", path, (long long)expires);
  if (n < 0 || (size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
  uint8_t d[EVP_MAX_MD_SIZE];
  unsigned dl = 0;
  HMAC(EVP_sha256(), secret, (int)slen, (const uint8_t *)msg, (size_t)n, d, &dl);
  b64url_encode(d, dl, out);
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
    if (RAND_bytes(r, sizeof r) != 1) return TT_EIO;
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
