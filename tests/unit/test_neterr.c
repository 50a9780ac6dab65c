/* test_neterr.c — Chromium's net::ERR_* codes become words a person reads,
 * with the code kept; other text and unknown codes stay readable. */
#include "tintype/render.h"
#include "tt_test.h"

static void words(const char *in, const char *want) {
  char out[320];
  tt_render_net_error_words(in, out, sizeof out);
  if (strcmp(out, want)) fprintf(stderr, "  for %s\n", in ? in : "(null)");
  CHECK_STR(out, want);
}

int main(void) {
  words("net::ERR_SSL_PROTOCOL_ERROR",
        "the server at that address does not speak HTTPS: try http:// (net::ERR_SSL_PROTOCOL_ERROR)");
  words("net::ERR_CONNECTION_REFUSED",
        "nothing is listening at that address and port (net::ERR_CONNECTION_REFUSED)");
  words("net::ERR_TOO_MANY_REDIRECTS", "the page redirects in a loop (net::ERR_TOO_MANY_REDIRECTS)");
  words("net::ERR_SOMETHING_NEW", "a network error (net::ERR_SOMETHING_NEW)");
  words("Cannot navigate to invalid URL", "Cannot navigate to invalid URL");
  words("", "a network error");
  words(NULL, "a network error");
  /* a small buffer truncates, never overflows */
  char small[8];
  tt_render_net_error_words("net::ERR_CONNECTION_RESET", small, sizeof small);
  CHECK_INT(strlen(small), 7);
  TT_TEST_END();
}
