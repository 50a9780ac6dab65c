/* web.c — serves the embedded front-end (include/tintype/web.h) and is the
 * load balancer's health check: GET / and GET /index.html answer 200, or
 * 503 once the process is draining so the balancer stops sending to it.
 *
 * Conditional and compressed responses: strong ETag per representation,
 * If-None-Match (weak comparison, "*", lists) -> 304, gzip variant (made at
 * build time) when Accept-Encoding allows it, Vary: Accept-Encoding. The
 * bytes are the binary's own read-only data: responses borrow them, nothing
 * is copied. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "tintype/api.h"
#include "tintype/http.h"
#include "tintype/web.h"

/* Does Accept-Encoding allow gzip? "gzip", "x-gzip" or "*" with q > 0. */
static int accepts_gzip(const char *ae) {
  if (!ae) return 0;
  int star = -1, gz = -1;
  const char *p = ae;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *tok = p;
    while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t') p++;
    size_t tl = (size_t)(p - tok);
    int q = 1;
    while (*p && *p != ',') {
      if (*p == ';') {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if ((*p == 'q' || *p == 'Q') && p[1] == '=') {
          p += 2;
          /* q=0, q=0.0, q=0.000 mean "not acceptable" */
          const char *v = p;
          int nonzero = 0;
          while (*p && *p != ',' && *p != ';' && *p != ' ') {
            if (*p >= '1' && *p <= '9') nonzero = 1;
            p++;
          }
          q = (p > v) && nonzero;
          continue;
        }
      }
      if (*p && *p != ',') p++;
    }
    if (tl == 4 && !strncasecmp(tok, "gzip", 4)) gz = q;
    if (tl == 6 && !strncasecmp(tok, "x-gzip", 6) && gz < 0) gz = q;
    if (tl == 1 && *tok == '*') star = q;
  }
  if (gz >= 0) return gz;
  return star > 0;
}

/* If-None-Match: "*" or a list of (possibly weak) entity tags. */
static int etag_matches(const char *inm, const char *etag) {
  if (!inm) return 0;
  size_t el = strlen(etag);
  const char *p = inm;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (*p == '*') return 1;
    if (p[0] == 'W' && p[1] == '/') p += 2;
    if (*p != '"') break;
    const char *end = strchr(p + 1, '"');
    if (!end) break;
    if ((size_t)(end + 1 - p) == el && !strncmp(p, etag, el)) return 1;
    p = end + 1;
  }
  return 0;
}

void tt_api_web_handler(tt_http_req *req, void *ud) {
  (void)ud;
  int health = (req->path_len == 1) || (req->path_len == 11 && !memcmp(req->path, "/index.html", 11));
  if (health && tt_http_req_draining(req)) {
    tt_http_add_header(req, "Cache-Control", "no-store");
    tt_http_add_header(req, "Retry-After", "5");
    tt_http_set_close(req);
    tt_http_respond_problem(req, 503, "this instance is shutting down");
    return;
  }
  const tt_web_asset *a = tt_web_find(req->path, req->path_len);
  if (!a) {
    tt_http_respond_problem(req, 404, "no such resource");
    return;
  }
  int gz = a->gz && accepts_gzip(tt_http_header_get(req, "Accept-Encoding"));
  const char *etag = gz ? a->gz_etag : a->etag;
  tt_http_add_header(req, "ETag", etag);
  tt_http_add_header(req, "Cache-Control", "no-cache");
  tt_http_add_header(req, "X-Content-Type-Options", "nosniff");
  if (a->gz) tt_http_add_header(req, "Vary", "Accept-Encoding");
  if (etag_matches(tt_http_header_get(req, "If-None-Match"), etag)) {
    tt_http_respond(req, 304, NULL, NULL, 0);
    return;
  }
  if (gz) {
    tt_http_add_header(req, "Content-Encoding", "gzip");
    tt_http_respond(req, 200, a->content_type, a->gz, a->gzlen);
  } else {
    tt_http_respond(req, 200, a->content_type, a->data, a->len);
  }
}
