/* fuzz_multipart.c — the streaming multipart/form-data parser
 * (src/http/multipart.c), as the image upload form feeds it.
 *
 * Input: byte 0 picks a piece size (1..64), the bytes up to the first
 * newline are the request's Content-Type (the boundary comes from it, as in
 * src/api/), the rest is the body. The body is parsed twice — in one piece
 * and in pieces of that size — and both runs must report the same parts,
 * bytes and result: the parser promises the same answer whatever the split
 * (multipart.h). A difference aborts, so libFuzzer reports it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/multipart.h"

typedef struct {
  tt_buf log;
  int parts;
} rec;

static int on_begin(void *ud, const char *name, const char *filename, const char *ct) {
  rec *r = ud;
  r->parts++;
  tt_buf_printf(&r->log, "[%s|%s|%s]", name ? name : "-", filename ? filename : "-", ct ? ct : "-");
  return r->parts > 64; /* a handler may stop the parse: exercised past 64 parts */
}
static int on_data(void *ud, const char *d, size_t n) { return tt_buf_append(&((rec *)ud)->log, d, n); }
static int on_end(void *ud) { return tt_buf_puts(&((rec *)ud)->log, "{end}"); }
static const tt_multipart_cbs cbs = {on_begin, on_data, on_end};

static int parse(const char *boundary, const uint8_t *body, size_t len, size_t piece, rec *r) {
  tt_multipart *m = tt_multipart_new(boundary, &cbs, r);
  if (!m) return 99;
  int rc = TT_OK;
  for (size_t i = 0; i < len && rc == TT_OK; i += piece)
    rc = tt_multipart_feed(m, (const char *)body + i, i + piece > len ? len - i : piece);
  if (rc == TT_OK) rc = tt_multipart_finish(m);
  tt_multipart_free(m);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t piece = (size_t)(data[0] % 64) + 1;
  data++, size--;
  const uint8_t *nl = memchr(data, '\n', size);
  size_t ctlen = nl ? (size_t)(nl - data) : size;
  char ct[512];
  if (ctlen >= sizeof ct) return 0;
  memcpy(ct, data, ctlen);
  ct[ctlen] = 0;
  char boundary[TT_MULTIPART_MAX_BOUNDARY + 1];
  if (tt_multipart_boundary(ct, boundary, sizeof boundary) != TT_OK) return 0;
  if (strlen(boundary) > TT_MULTIPART_MAX_BOUNDARY) abort();
  const uint8_t *body = nl ? nl + 1 : data + size;
  size_t blen = (size_t)(data + size - body);

  rec whole = {TT_BUF_INIT, 0}, split = {TT_BUF_INIT, 0};
  int rc1 = parse(boundary, body, blen, blen ? blen : 1, &whole);
  int rc2 = parse(boundary, body, blen, piece, &split);
  /* a stop by the handler happens at the same part either way, so the logs
   * up to it agree too */
  if (rc1 != rc2 || whole.log.len != split.log.len ||
      (whole.log.len && memcmp(whole.log.data, split.log.data, whole.log.len))) {
    fprintf(stderr, "multipart: one piece rc=%d %zu log bytes, pieces of %zu rc=%d %zu log bytes\n", rc1,
            whole.log.len, piece, rc2, split.log.len);
    abort();
  }
  tt_buf_free(&whole.log);
  tt_buf_free(&split.log);
  return 0;
}
