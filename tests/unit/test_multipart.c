/* test_multipart.c — the streaming multipart parser gives the same parts
 * whatever the piece sizes (every split of the body, and byte by byte),
 * keeps data that merely resembles a delimiter, and refuses broken input. */
#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/multipart.h"
#include "tt_test.h"

typedef struct {
  tt_buf log;
  int parts;
} rec;

static int begin(void *ud, const char *name, const char *filename, const char *ct) {
  rec *r = ud;
  r->parts++;
  tt_buf_printf(&r->log, "[%s|%s|%s]", name ? name : "-", filename ? filename : "-", ct ? ct : "-");
  return 0;
}
static int data(void *ud, const char *d, size_t n) { return tt_buf_append(&((rec *)ud)->log, d, n); }
static int end(void *ud) { return tt_buf_puts(&((rec *)ud)->log, "{end}"); }

static const tt_multipart_cbs cbs = {begin, data, end};

static int parse(const char *body, size_t len, size_t piece, tt_buf *out) {
  rec r = {TT_BUF_INIT, 0};
  tt_multipart *m = tt_multipart_new("XyZ--boundary", &cbs, &r);
  int rc = TT_OK;
  for (size_t i = 0; i < len && rc == TT_OK; i += piece)
    rc = tt_multipart_feed(m, body + i, i + piece > len ? len - i : piece);
  if (rc == TT_OK) rc = tt_multipart_finish(m);
  tt_multipart_free(m);
  tt_buf_reset(out);
  tt_buf_append(out, r.log.data ? r.log.data : "", r.log.len);
  tt_buf_free(&r.log);
  return rc;
}

int main(void) {
  char b[80];
  CHECK_INT(tt_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof b), TT_OK);
  CHECK_STR(b, "abc123");
  CHECK_INT(tt_multipart_boundary("multipart/form-data; charset=x; boundary=\"a b\"", b, sizeof b), TT_OK);
  CHECK_STR(b, "a b");
  CHECK_INT(tt_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof b), TT_EINVAL);
  CHECK_INT(tt_multipart_boundary("multipart/form-data", b, sizeof b), TT_EINVAL);
  CHECK_INT(tt_multipart_boundary(NULL, b, sizeof b), TT_EINVAL);

  static const char body[] =
      "preamble to ignore\r\n"
      "--XyZ--boundary\r\n"
      "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
      "hello\r\n"
      "--XyZ--boundary\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
      "Content-Type: image/png\r\n\r\n"
      "\x89PNG\r\n--XyZ--boundar not yet\r\n-\r\n--XyZ\r\nend"
      "\r\n--XyZ--boundary--\r\n"
      "epilogue";
  const char *want =
      "[title|-|-]hello{end}[file|a.png|image/png]\x89PNG\r\n--XyZ--boundar not yet\r\n-\r\n--XyZ\r\nend{end}";
  tt_buf out = TT_BUF_INIT;
  size_t len = sizeof body - 1;
  for (size_t piece = 1; piece <= len; piece++) {
    int rc = parse(body, len, piece, &out);
    if (rc || strcmp(out.data, want)) fprintf(stderr, "piece %zu: rc %d got %s\n", piece, rc, out.data);
    CHECK_INT(rc, TT_OK);
    CHECK_STR(out.data, want);
  }
  /* broken inputs */
  const char *bad[] = {
      "--XyZ--boundary\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno closing delimiter",
      "--XyZ--boundaryJUNK",
      "--XyZ--boundary\r\nNoColonHere\r\n\r\nx\r\n--XyZ--boundary--",
      "--XyZ--boundary\r\nContent-Disposition: attachment\r\n\r\nx\r\n--XyZ--boundary--",
      "no delimiter at all",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(parse(bad[i], strlen(bad[i]), 7, &out), TT_EINVAL);
  tt_buf_free(&out);
  TT_TEST_END();
}
