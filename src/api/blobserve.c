/* blobserve.c — sends a blob as an HTTP response for the API handlers
 * (job results, image bytes): streamed chunk by chunk from the blob store
 * (a slow client holds one chunk, never the whole blob), with a strong
 * ETag and If-None-Match -> 304, one byte Range (suffix, If-Range) -> 206 or
 * 416, and HEAD declaring the length a GET would send. A backend whose
 * links are absolute (s3://, presigned GETs) answers 302 to the link. */
#include <string.h>

#include "api_internal.h"
#include "tintype/error.h"

typedef struct bytes {
  api_call *c;
  tt_blob_reader *r;
  int64_t skip;      /* bytes still to pass over before the range */
  int64_t remaining; /* bytes still to send */
} bytes;

/* One "bytes=" range against size: 1 with [*a, *b] set, 0 when there is no
 * usable Range header (serve it all), -1 when unsatisfiable (416). Lists of
 * ranges are answered whole (RFC 9110 allows ignoring Range). */
static int parse_range(const char *h, int64_t size, int64_t *a, int64_t *b) {
  if (!h || strncmp(h, "bytes=", 6) || strchr(h, ',')) return 0;
  const char *p = h + 6;
  char *end;
  if (*p == '-') { /* suffix: the last n bytes */
    long long n = strtoll(p + 1, &end, 10);
    if (end == p + 1 || *end || n <= 0) return n == 0 && end != p + 1 && !*end ? -1 : 0;
    if (size == 0) return -1;
    *a = n >= size ? 0 : size - n;
    *b = size - 1;
    return 1;
  }
  long long x = strtoll(p, &end, 10);
  if (end == p || *end != '-' || x < 0) return 0;
  const char *q = end + 1;
  long long y = size - 1;
  if (*q) {
    y = strtoll(q, &end, 10);
    if (end == q || *end || y < x) return 0;
  }
  if (x >= size) return -1;
  if (y >= size) y = size - 1;
  *a = x;
  *b = y;
  return 1;
}

static void on_bytes_chunk(void *ud, int status, const char *data, size_t len);

static void on_bytes_written(tt_http_req *req, int status, void *ud) {
  (void)req;
  bytes *b = ud;
  if (status) {
    tt_blobs_get_close(b->r);
    tt_http_stream_end(b->c->req);
    return;
  }
  tt_blobs_read(b->r, on_bytes_chunk, b);
}

static void on_bytes_chunk(void *ud, int status, const char *data, size_t len) {
  bytes *b = ud;
  if (status == 0 && len && b->skip) { /* before the range */
    size_t drop = (int64_t)len <= b->skip ? len : (size_t)b->skip;
    b->skip -= (int64_t)drop;
    data += drop;
    len -= drop;
    if (!len) {
      tt_blobs_read(b->r, on_bytes_chunk, b);
      return;
    }
  }
  if (status == 0 && (int64_t)len > b->remaining) len = (size_t)b->remaining;
  b->remaining -= (int64_t)len;
  char *copy = (status == 0 && len) ? tt_arena_alloc(b->c->req->arena, len) : NULL;
  if (!copy) {
    tt_blobs_get_close(b->r);
    tt_http_stream_end(b->c->req);
    return;
  }
  memcpy(copy, data, len);
  if (tt_http_stream_write(b->c->req, copy, len, on_bytes_written, b)) {
    tt_blobs_get_close(b->r);
    tt_http_stream_end(b->c->req);
  }
}

static void on_bytes_open(void *ud, int status, tt_blob_reader *r, const tt_blob_info *info) {
  bytes *b = ud;
  tt_http_req *req = b->c->req;
  if (status) {
    api_backend_error(req, status);
    return;
  }
  b->r = r;
  tt_http_add_header(req, "ETag", tt_arena_strdup(req->arena, info->etag));
  tt_http_add_header(req, "Cache-Control", b->c->cache_control ? b->c->cache_control : "private, max-age=3600");
  tt_http_add_header(req, "X-Content-Type-Options", "nosniff");
  const char *inm = tt_http_header_get(req, "If-None-Match");
  if (inm && strstr(inm, info->etag)) {
    tt_blobs_get_close(r);
    tt_http_respond(req, 304, NULL, NULL, 0);
    return;
  }
  const char *ct = tt_arena_strdup(req->arena, info->content_type);
  tt_http_add_header(req, "Accept-Ranges", "bytes");
  int64_t a = 0, z = info->size - 1;
  const char *ifr = tt_http_header_get(req, "If-Range");
  int ranged = (!ifr || !strcmp(ifr, info->etag)) ? parse_range(tt_http_header_get(req, "Range"), info->size, &a, &z) : 0;
  if (ranged < 0) {
    tt_blobs_get_close(r);
    tt_http_add_header(req, "Content-Range", tt_arena_sprintf(req->arena, "bytes */%lld", (long long)info->size));
    api_problem(req, 416, "range-not-satisfiable", "the range is outside the image's bytes");
    return;
  }
  int code = 200;
  b->skip = 0;
  b->remaining = info->size;
  if (ranged > 0) {
    code = 206;
    b->skip = a;
    b->remaining = z - a + 1;
    tt_http_add_header(req, "Content-Range",
                       tt_arena_sprintf(req->arena, "bytes %lld-%lld/%lld", (long long)a, (long long)z,
                                        (long long)info->size));
  }
  if (req->method == TT_HTTP_HEAD || b->remaining == 0) {
    tt_blobs_get_close(r);
    /* HEAD declares the length a GET would send */
    tt_http_respond(req, code, ct, NULL, req->method == TT_HTTP_HEAD ? (size_t)b->remaining : 0);
    return;
  }
  tt_http_stream_start(req, code, ct);
  tt_blobs_read(r, on_bytes_chunk, b);
}

void api_serve_blob(api_call *c, const char *key) {
  /* a blob store that hands out its own links (S3: a presigned GET) gets
   * the client sent there: 302, and the bytes never cross this process.
   * The file backend's links are the API's own paths: stream them here. */
  char *link = tt_arena_calloc(c->req->arena, 4096);
  if (link && tt_blobs_url(c->api->blobs, key, TT_LINK_TTL_S, link, 4096) == TT_OK &&
      (!strncmp(link, "https://", 8) || !strncmp(link, "http://", 7))) {
    tt_http_add_header(c->req, "Location", link);
    tt_http_add_header(c->req, "Cache-Control", "private, no-store");
    tt_http_respond(c->req, 302, NULL, NULL, 0);
    return;
  }
  bytes *b = tt_arena_calloc(c->req->arena, sizeof *b);
  if (!b) {
    api_problem(c->req, 500, "internal", "out of memory");
    return;
  }
  b->c = c;
  tt_blobs_get_open(c->api->blobs, key, on_bytes_open, b);
}
