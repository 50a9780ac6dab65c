/* test_crypto.c — API keys, signed links (tamper, expiry), secret file. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tintype/crypto.h"
#include "tintype/error.h"
#include "tt_test.h"

int main(void) {
  char k1[TT_APIKEY_LEN + 1], k2[TT_APIKEY_LEN + 1];
  CHECK_INT(tt_apikey_new(k1), TT_OK);
  CHECK_INT(tt_apikey_new(k2), TT_OK);
  CHECK_INT(strlen(k1), TT_APIKEY_LEN);
  CHECK(strncmp(k1, "tt_", 3) == 0);
  CHECK(strcmp(k1, k2) != 0);
  char h[TT_SHA256_HEX];
  tt_sha256_hex("abc", 3, h);
  CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(tt_ct_equal("abc", "abc"));
  CHECK(!tt_ct_equal("abc", "abd"));
  CHECK(!tt_ct_equal("abc", "abcd"));

  const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
  char url[512];
  CHECK_INT(tt_sign_path(secret, 32, "/api/jobs/1/result", 2000000000, url, sizeof url), TT_OK);
  const char *q = strchr(url, '?') + 1;
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/1/result", q, 1900000000), TT_OK);
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/2/result", q, 1900000000), TT_EAUTH); /* other path */
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/1/result", q, 2000000001), TT_ETIMEDOUT);
  const uint8_t other[] = "fedcba9876543210fedcba9876543210";
  CHECK_INT(tt_sign_check(other, 32, "/api/jobs/1/result", q, 1900000000), TT_EAUTH);
  char tampered[512];
  snprintf(tampered, sizeof tampered, "%s", q);
  char *e = strstr(tampered, "expires=") + 8;
  *e = *e == '2' ? '3' : '2'; /* move the expiry */
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/1/result", tampered, 1900000000), TT_EAUTH);
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/1/result", "expires=2000000000", 0), TT_EAUTH);
  CHECK_INT(tt_sign_check(secret, 32, "/api/jobs/1/result", NULL, 0), TT_EAUTH);
  CHECK_INT(tt_sign_path(secret, 32, "/x", 1, url, 8), TT_ETOOBIG);

  char dir[] = "/tmp/tt-crypto-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  uint8_t s1[TT_SECRET_MAX], s2[TT_SECRET_MAX];
  size_t l1 = 0, l2 = 0;
  CHECK_INT(tt_secret_load(NULL, dir, s1, &l1), TT_OK);
  CHECK_INT(tt_secret_load("", dir, s2, &l2), TT_OK);
  CHECK_INT(l1, 32);
  CHECK(l1 == l2 && memcmp(s1, s2, l1) == 0); /* made once, then read */
  char fn[256];
  snprintf(fn, sizeof fn, "%s/secret", dir);
  struct stat st;
  CHECK(stat(fn, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK_INT(tt_secret_load("short", dir, s2, &l2), TT_EINVAL);
  CHECK_INT(tt_secret_load("a-configured-secret-of-some-length", dir, s2, &l2), TT_OK);
  CHECK_INT(l2, 34);
  unlink(fn);
  rmdir(dir);
  TT_TEST_END();
}
