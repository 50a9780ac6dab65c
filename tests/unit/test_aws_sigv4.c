/* test_aws_sigv4.c — the SigV4 signer (src/aws/sigv4.c) against AWS's
 * published vectors: the aws-sig-v4 test suite's get-vanilla,
 * get-vanilla-query-order-key-case and post-x-www-form-urlencoded (credential
 * AKIDEXAMPLE, 20150830T123600Z, us-east-1, service "service"), the S3
 * documentation's GET Object with Range and its presigned-URL example, and
 * the canonicalisation rules libcurl 7.88.1 gets wrong (query order,
 * valueless parameters, header folding, repeated headers). */
#include <string.h>

#include "tintype/aws.h"
#include "tintype/buf.h"
#include "tintype/error.h"
#include "tt_test.h"

static const tt_aws_key suite = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL,
                                 "us-east-1", "service"};

static const char *sig_of(const char *auth) {
  const char *s = strstr(auth, "Signature=");
  return s ? s + 10 : "";
}

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

int main(void) {
  char auth[1024], date[TT_AWS_DATE_LEN];
  tt_aws_amzdate(1440938160, date);
  CHECK_STR(date, "20150830T123600Z");

  /* get-vanilla */
  {
    tt_aws_hdr h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
    tt_aws_sig_req r = {"GET", "/", NULL, h, 2, EMPTY_SHA, 0};
    tt_buf creq = TT_BUF_INIT;
    CHECK_INT(tt_aws_sign(&r, &suite, date, auth, sizeof auth, &creq), TT_OK);
    CHECK_STR(creq.data, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\n" EMPTY_SHA);
    CHECK_STR(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                    "SignedHeaders=host;x-amz-date, "
                    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    tt_buf_free(&creq);
  }
  /* get-vanilla-query-order-key-case: the query is sorted */
  {
    tt_aws_hdr h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
    tt_aws_sig_req r = {"GET", "/", "Param2=value2&Param1=value1", h, 2, EMPTY_SHA, 0};
    CHECK_INT(tt_aws_sign(&r, &suite, date, auth, sizeof auth, NULL), TT_OK);
    CHECK_STR(sig_of(auth), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  }
  /* post-x-www-form-urlencoded: content-type signed, body hashed */
  {
    tt_aws_hdr h[] = {{"Content-Type", "application/x-www-form-urlencoded"},
                      {"Host", "example.amazonaws.com"},
                      {"X-Amz-Date", "20150830T123600Z"}};
    tt_aws_sig_req r = {"POST", "/", NULL, h, 3,
                        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", 0};
    CHECK_INT(tt_aws_sign(&r, &suite, date, auth, sizeof auth, NULL), TT_OK);
    CHECK_STR(sig_of(auth), "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
  }
  /* S3 docs, "Example: GET Object" (header signing with a Range) */
  const tt_aws_key s3 = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL,
                         "us-east-1", "s3"};
  {
    tt_aws_hdr h[] = {{"Host", "examplebucket.s3.amazonaws.com"},
                      {"Range", "bytes=0-9"},
                      {"x-amz-content-sha256", EMPTY_SHA},
                      {"x-amz-date", "20130524T000000Z"}};
    tt_aws_sig_req r = {"GET", "/test.txt", NULL, h, 4, EMPTY_SHA, 1};
    CHECK_INT(tt_aws_sign(&r, &s3, "20130524T000000Z", auth, sizeof auth, NULL), TT_OK);
    CHECK_STR(sig_of(auth), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    CHECK(strstr(auth, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,") != NULL);
  }
  /* S3 docs, presigned URL example (20130524T000000Z, 86400 s) */
  {
    char url[2048];
    CHECK_INT(tt_aws_presign("https://examplebucket.s3.amazonaws.com", "examplebucket.s3.amazonaws.com",
                             "/test.txt", &s3, 1369353600, 86400, url, sizeof url),
              TT_OK);
    CHECK_STR(url, "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                   "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                   "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                   "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    CHECK_INT(tt_aws_presign("http://h", "h", "/k", &s3, 1369353600, 0, url, sizeof url), TT_EINVAL);
    CHECK_INT(tt_aws_presign("http://h", "h", "/k", &s3, 1369353600, 604801, url, sizeof url),
              TT_EINVAL);
    CHECK_INT(tt_aws_presign("http://h", "h", "/k", &s3, 1369353600, 60, url, 20), TT_ETOOBIG);
    /* a session token is part of the signed query */
    tt_aws_key t = s3;
    t.token = "tok/en+=";
    CHECK_INT(tt_aws_presign("http://h", "h", "/k", &t, 1369353600, 60, url, sizeof url), TT_OK);
    CHECK(strstr(url, "&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-SignedHeaders=host") != NULL);
  }
  /* canonicalisation details */
  {
    tt_aws_hdr h[] = {{"My-Header1", "  a   b   c  "}, {"host", "h"}, {"x-amz-date", date},
                      {"my-header1", "second"}};
    tt_aws_sig_req r = {"GET", "/", "uploads&b=2&a=1&a=0", h, 4, "UNSIGNED-PAYLOAD", 1};
    tt_buf creq = TT_BUF_INIT;
    CHECK_INT(tt_aws_sign(&r, &suite, date, auth, sizeof auth, &creq), TT_OK);
    CHECK_STR(creq.data, "GET\n/\na=0&a=1&b=2&uploads=\nhost:h\nmy-header1:a b c,second\n"
                         "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\nUNSIGNED-PAYLOAD");
    tt_buf_free(&creq);
    tt_buf e = TT_BUF_INIT;
    CHECK_INT(tt_aws_uri_encode(&e, "a b/c*~", 7, 1), TT_OK);
    CHECK_STR(e.data, "a%20b/c%2A~");
    tt_buf_reset(&e);
    CHECK_INT(tt_aws_uri_encode(&e, "a/b", 3, 0), TT_OK);
    CHECK_STR(e.data, "a%2Fb");
    tt_buf_free(&e);
    /* other services: the path is encoded once more */
    tt_aws_hdr h2[] = {{"host", "h"}, {"x-amz-date", date}};
    tt_aws_sig_req r2 = {"GET", "/a%20b", NULL, h2, 2, EMPTY_SHA, 0};
    CHECK_INT(tt_aws_sign(&r2, &suite, date, auth, sizeof auth, &creq), TT_OK);
    CHECK(!strncmp(creq.data, "GET\n/a%2520b\n", 13));
    tt_buf_free(&creq);
    tt_aws_key bad = suite;
    bad.secret = NULL;
    CHECK_INT(tt_aws_sign(&r2, &bad, date, auth, sizeof auth, NULL), TT_EINVAL);
    CHECK_INT(tt_aws_sign(&r2, &suite, date, auth, 40, NULL), TT_ETOOBIG);
  }
  TT_TEST_END();
}
