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
  /* FIPS 180-4 / NIST vectors: empty, two-block message, one million 'a' */
  tt_sha256_hex("", 0, h);
  CHECK_STR(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  tt_sha256_hex(two, strlen(two), h);
  CHECK_STR(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  static char million[1000000];
  memset(million, 'a', sizeof million);
  tt_sha256_hex(million, sizeof million, h);
  CHECK_STR(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  /* RFC 4231 test cases 1 and 6 (key longer than the block) */
  uint8_t mac[32], key1[20], key6[131];
  memset(key1, 0x0b, sizeof key1);
  memset(key6, 0xaa, sizeof key6);
  tt_hmac_sha256(key1, sizeof key1, "Hi There", 8, mac);
  static const uint8_t want1[32] = {0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf,
                                    0xce, 0xaf, 0x0b, 0xf1, 0x2b, 0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83,
                                    0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7};
  CHECK(memcmp(mac, want1, 32) == 0);
  const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  tt_hmac_sha256(key6, sizeof key6, m6, strlen(m6), mac);
  static const uint8_t want6[32] = {0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
                                    0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
                                    0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
  CHECK(memcmp(mac, want6, 32) == 0);
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
  /* the whole of a long path is signed (fuzz_signlink: paths over 8,399
   * bytes used to share one signature with any path of the same prefix and
   * with any expiry) */
  static char lp[9001], lp2[9001], lurl[9200];
  memset(lp, 'p', 9000);
  lp[0] = '/';
  memcpy(lp2, lp, sizeof lp);
  lp2[8999] = 'q';
  CHECK_INT(tt_sign_path(secret, 32, lp, 2000000000, lurl, sizeof lurl), TT_OK);
  const char *lq = lurl + 9001;
  CHECK_INT(tt_sign_check(secret, 32, lp, lq, 1900000000), TT_OK);
  CHECK_INT(tt_sign_check(secret, 32, lp2, lq, 1900000000), TT_EAUTH);
  char lq2[256];
  snprintf(lq2, sizeof lq2, "%s", lq);
  lq2[8] = lq2[8] == '2' ? '3' : '2'; /* expires=3000000000 with the same sig */
  CHECK_INT(tt_sign_check(secret, 32, lp, lq2, 1900000000), TT_EAUTH);

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
