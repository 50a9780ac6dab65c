/* test_web.c — lookup of the embedded web/ set: the files are there with
 * the right types, ETags and gzip variants, and no spelling of a path
 * reaches anything outside the set. */
#include <zlib.h>

#include "tintype/web.h"
#include "tt_test.h"

static const tt_web_asset *f(const char *p) { return tt_web_find(p, strlen(p)); }

int main(void) {
  CHECK(tt_web_assets_count >= 2);
  for (unsigned i = 1; i < tt_web_assets_count; i++)
    CHECK(strcmp(tt_web_assets[i - 1].path, tt_web_assets[i].path) < 0); /* sorted */

  const tt_web_asset *idx = f("/index.html");
  CHECK(idx != NULL);
  if (idx) {
    CHECK_STR(idx->content_type, "text/html; charset=utf-8");
    CHECK(idx->len > 100 && memcmp(idx->data, "<!doctype html>", 15) == 0);
    CHECK(strlen(idx->etag) == 18 && idx->etag[0] == '"');
    CHECK(idx->gz != NULL && idx->gzlen < idx->len);
    /* the gzip variant inflates to the same bytes */
    unsigned char out[65536];
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK_INT(inflateInit2(&z, 31), Z_OK);
    z.next_in = (unsigned char *)idx->gz;
    z.avail_in = (uInt)idx->gzlen;
    z.next_out = out;
    z.avail_out = sizeof out;
    CHECK_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
    CHECK_INT(z.total_out, idx->len);
    CHECK(memcmp(out, idx->data, idx->len) == 0);
    inflateEnd(&z);
    CHECK(strcmp(idx->etag, idx->gz_etag) != 0);
  }
  CHECK(f("/") == idx);
  CHECK(f("/%69ndex.html") == idx); /* percent-decoding of plain letters */
  const tt_web_asset *css = f("/style.css");
  CHECK(css && !strcmp(css->content_type, "text/css; charset=utf-8"));

  /* nothing outside the set */
  const char *bad[] = {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd", "/./index.html",
                       "/web/../index.html", "//index.html", "/index.html%00", "/index.html%00.css",
                       "/.%2e/index.html", "/%2e/index.html", "\\index.html", "/\\..\\index.html",
                       "/index.html/", "/index.html%", "/index.html%2", "/index.html%zz", "index.html",
                       "/INDEX.HTML", "/.git/config", "/%c0%ae%c0%ae/etc/passwd", "/ index.html", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (f(bad[i])) fprintf(stderr, "unexpectedly found: %s\n", bad[i]);
    CHECK(f(bad[i]) == NULL);
  }
  TT_TEST_END();
}
