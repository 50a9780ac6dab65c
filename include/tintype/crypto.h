/* crypto.h — the few cryptographic jobs of the API, on OpenSSL's libcrypto:
 * API keys (made, hashed, compared), signed expiring links (an HMAC over
 * path and expiry, like S3 presigned GETs) and the server secret.
 *
 * API keys are "tt_" + 43 base64url characters (256 random bits); only
 * their SHA-256 (hex) is ever stored. A signed link is
 * PATH?expires=UNIX&sig=BASE64URL(HMAC-SHA256(secret, PATH "\n" UNIX)). */
#ifndef TINTYPE_CRYPTO_H
#define TINTYPE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TT_APIKEY_LEN 46   /* "tt_" + 43 */
#define TT_SHA256_HEX 65   /* 64 hex + NUL */
#define TT_SECRET_MAX 128

/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104). */
void tt_sha256(const void *data, size_t n, uint8_t out[32]);
void tt_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]);
/* n bytes from the kernel's CSPRNG (getrandom). TT_OK or TT_EIO. */
int tt_random_bytes(void *out, size_t n);

/* out: TT_APIKEY_LEN + 1 bytes. TT_OK or TT_EIO when no randomness. */
int tt_apikey_new(char *out);
/* hex SHA-256 of s into out (TT_SHA256_HEX bytes) */
void tt_sha256_hex(const void *s, size_t n, char *out);
/* constant-time comparison of two equal-length strings; 0 when different */
int tt_ct_equal(const char *a, const char *b);

/* Writes "PATH?expires=E&sig=S" into out (len bytes). TT_ETOOBIG if short. */
int tt_sign_path(const uint8_t *secret, size_t slen, const char *path, int64_t expires, char *out, size_t len);
/* Checks expires/sig in `query` against path. TT_OK, TT_EAUTH (missing or
 * wrong signature), TT_ETIMEDOUT (expired at `now`). */
int tt_sign_check(const uint8_t *secret, size_t slen, const char *path, const char *query, int64_t now);

/* The server secret: from `configured` (TINTYPE_SECRET) when set, else from
 * DIR/secret, made on first start (32 random bytes, mode 0600, created with
 * O_EXCL so that concurrent first starts agree). out: TT_SECRET_MAX bytes. */
int tt_secret_load(const char *configured, const char *data_dir, uint8_t *out, size_t *outlen);

/* Decodes base64 (standard or url alphabet, padding optional) of n
 * characters into out, which has room for n/4*3+3 bytes. TT_EINVAL on a
 * character outside the alphabets. */
int tt_base64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

#endif
