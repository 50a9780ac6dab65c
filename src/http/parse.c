/* parse.c — requests in (src/http/internal.h): llhttp's callbacks, every
 * limit a request can break (url, header bytes and count, body, chunk
 * extensions, obs-fold, Host, control characters, timeouts armed per
 * state), the request id, and the hand-over to the router's handler.
 * llhttp is paused at the end of each message and resumed when its response
 * is out, so pipelined requests wait in the read buffer (conn.c) and their
 * responses leave in order (respond.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"
#include "tintype/alloc.h"
#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/http.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/router.h"

tt_http_conn *http__req_conn(const tt_http_req *req) {
  return (tt_http_conn *)((char *)req - offsetof(tt_http_conn, req));
}

const char *tt_http_header_get(const tt_http_req *req, const char *name) {
  for (unsigned i = 0; i < req->nheaders; i++)
    if (!strcasecmp(req->headers[i].name, name)) return req->headers[i].value;
  return NULL;
}

const char *tt_http_param_get(const tt_http_req *req, const char *name) {
  for (unsigned i = 0; i < req->nparams; i++)
    if (!strcmp(req->params[i].name, name)) return req->params[i].value;
  return NULL;
}

int tt_http_req_draining(const tt_http_req *req) { return req->server->draining; }

int tt_http_req_peer(const tt_http_req *req, struct sockaddr_storage *ss) {
  int len = sizeof *ss;
  return uv_tcp_getpeername(&http__req_conn(req)->tcp, (struct sockaddr *)ss, &len);
}

int tt_http_server_draining(const tt_http_server *s) { return s->draining; }

unsigned tt_http_server_connections(const tt_http_server *s) { return s->nconns; }

/* ------------------------------------------------------------------ */
/* parsing */

#define CONN(p) ((tt_http_conn *)(p)->data)

static int fail(tt_http_conn *c, int status, const char *detail) {
  c->rq.err_status = status;
  c->rq.err_detail = detail;
  return -1;
}

static int on_message_begin(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  if (c->state != ST_FRESH && c->state != ST_IDLE) http__req_reset(c);
  c->state = ST_HEAD;
  c->req.start_ns = uv_hrtime();
  http__conn_timer(c, c->srv->cfg.header_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (c->url.len + len > (size_t)c->srv->cfg.max_url_bytes)
    return fail(c, 414, "the request target is longer than the server accepts (max-url-bytes)");
  c->rq.header_bytes += len;
  if (tt_buf_append(&c->url, at, len)) return fail(c, 500, "out of memory");
  return 0;
}

static int header_budget(tt_http_conn *c, size_t len) {
  c->rq.header_bytes += len;
  if (c->rq.header_bytes > (size_t)c->srv->cfg.max_header_bytes)
    return fail(c, 431, "the request headers are larger than the server accepts (max-header-bytes)");
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (header_budget(c, len)) return -1;
  if (tt_buf_append(&c->field, at, len)) return fail(c, 500, "out of memory");
  return 0;
}

/* Does the value span at `at` continue a line folded with CRLF + SP/HT
 * (obs-fold)? llhttp accepts folding; RFC 9112 §5.2 lets a server refuse
 * it, and a front-end that reads it differently (ALB, HAProxy) is how a
 * request is smuggled. Looks back over SP/HT to the byte before them: a
 * line end means fold. At the start of this chunk, the previous chunk's
 * end says. */
static int is_obs_fold(const tt_http_conn *c, const char *at) {
  const char *q = at;
  while (q > c->exec_start && (q[-1] == ' ' || q[-1] == '\t')) q--;
  if (q > c->exec_start) return q[-1] == '\n';
  return c->exec_tail_fold;
}

/* After a chunk: does it end at a line start followed only by SP/HT? */
static int tail_fold(const char *start, size_t len, int prev) {
  const char *q = start + len;
  while (q > start && (q[-1] == ' ' || q[-1] == '\t')) q--;
  if (q == start) return prev;
  return q[-1] == '\n';
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (len && is_obs_fold(c, at)) /* an empty span (an empty value) continues nothing */
    return fail(c, 400, "a header line continued on the next (obs-fold) is not accepted");
  if (header_budget(c, len)) return -1;
  if (tt_buf_append(&c->value, at, len)) return fail(c, 500, "out of memory");
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  tt_http_req *r = &c->req;
  if (r->nheaders >= (unsigned)c->srv->cfg.max_headers)
    return fail(c, 431, "the request has more headers than the server accepts (max-headers)");
  if (r->nheaders == c->rq.header_cap) {
    unsigned cap = c->rq.header_cap ? c->rq.header_cap * 2 : 16;
    tt_http_header *h = tt_arena_alloc(&c->arena, cap * sizeof *h);
    if (!h) return fail(c, 500, "out of memory");
    if (r->nheaders) memcpy(h, r->headers, r->nheaders * sizeof *h);
    r->headers = h;
    c->rq.header_cap = cap;
  }
  /* NUL or other control bytes in a value are refused (llhttp allows some) */
  for (size_t i = 0; i < c->value.len; i++) {
    unsigned char ch = (unsigned char)c->value.data[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return fail(c, 400, "control character in a header value");
  }
  /* trim trailing whitespace of the value */
  size_t vl = c->value.len;
  while (vl && (c->value.data[vl - 1] == ' ' || c->value.data[vl - 1] == '\t')) vl--;
  tt_http_header *h = &r->headers[r->nheaders++];
  h->name = tt_arena_strndup(&c->arena, c->field.data ? c->field.data : "", c->field.len);
  h->value = tt_arena_strndup(&c->arena, c->value.data ? c->value.data : "", vl);
  if (!h->name || !h->value) return fail(c, 500, "out of memory");
  if (!strcasecmp(h->name, "host"))
    c->rq.has_host++;
  else if (!strcasecmp(h->name, "expect"))
    c->rq.expect = h->value;
  else if (!strcasecmp(h->name, "x-request-id"))
    c->rq.client_rid = h->value;
  tt_buf_reset(&c->field);
  tt_buf_reset(&c->value);
  return 0;
}

static int valid_request_id(const char *s, int64_t max) {
  size_t n = strlen(s);
  if (n == 0 || (int64_t)n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("-_.:", s[i])) return 0;
  return 1;
}

static unsigned method_bit(uint8_t m) {
  switch (m) {
    case HTTP_GET: return TT_HTTP_GET;
    case HTTP_HEAD: return TT_HTTP_HEAD;
    case HTTP_POST: return TT_HTTP_POST;
    case HTTP_PUT: return TT_HTTP_PUT;
    case HTTP_DELETE: return TT_HTTP_DELETE;
    case HTTP_PATCH: return TT_HTTP_PATCH;
    case HTTP_OPTIONS: return TT_HTTP_OPTIONS;
    default: return TT_HTTP_OTHER;
  }
}

static void write_continue_cb(uv_write_t *w, int status) {
  (void)w;
  (void)status; /* a failure shows up on the next read or write */
}

/* ---- end of headers, one job per step ---- */

/* Version, method, and whether the connection outlives this request. */
static int head_version_and_keepalive(tt_http_conn *c, llhttp_t *p) {
  tt_http_req *r = &c->req;
  r->http_minor = llhttp_get_http_minor(p);
  if (p->http_major != 1) return fail(c, 400, "only HTTP/1.0 and HTTP/1.1 are spoken here");
  r->method = method_bit(llhttp_get_method(p));
  r->method_name = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  RQ_SET(c, RQ_HEAD, r->method == TT_HTTP_HEAD);
  RQ_SET(c, RQ_KEEP_ALIVE, llhttp_should_keep_alive(p));
  /* the last request a keep-alive connection may carry (nginx keepalive_requests) */
  if (++c->requests >= c->srv->cfg.max_keepalive_requests) RQ_OFF(c, RQ_KEEP_ALIVE);
  /* HTTP/1.0 knows no chunked framing: whatever a front-end made of it, the
   * connection ends with this response (RFC 9112 §6.1) */
  if (r->http_minor == 0 && (p->flags & F_CHUNKED)) RQ_OFF(c, RQ_KEEP_ALIVE);
  return 0;
}

/* The client's X-Request-Id when it is well formed, else our own. Runs
 * before any check that can fail, so every error answer carries one. */
static void head_request_id(tt_http_conn *c) {
  tt_http_server *s = c->srv;
  tt_http_req *r = &c->req;
  if (c->rq.client_rid && valid_request_id(c->rq.client_rid, s->cfg.max_request_id_bytes))
    r->request_id = c->rq.client_rid;
  else
    r->request_id = tt_arena_sprintf(&c->arena, "%s%08llx", s->rid_prefix, (unsigned long long)s->rid_next++);
}

/* Target split into path and query; exactly one Host on 1.1; origin form. */
static int head_target(tt_http_conn *c) {
  tt_http_req *r = &c->req;
  r->target = tt_arena_strndup(&c->arena, c->url.data ? c->url.data : "", c->url.len);
  const char *q = strchr(r->target, '?');
  r->path_len = q ? (size_t)(q - r->target) : c->url.len;
  r->path = q ? tt_arena_strndup(&c->arena, r->target, r->path_len) : r->target;
  r->query = q ? q + 1 : NULL;
  if (r->http_minor >= 1 && c->rq.has_host != 1)
    return fail(c, 400, c->rq.has_host ? "more than one Host header" : "HTTP/1.1 requests need a Host header");
  if (r->path[0] != '/' && !(r->method == TT_HTTP_OPTIONS && !strcmp(r->path, "*")))
    return fail(c, 400, "the request target must be an absolute path"); /* OPTIONS *: 404 by the router */
  return 0;
}

/* The route, and the body limit it sets (before a byte of body is read). */
static int head_route(tt_http_conn *c, llhttp_t *p) {
  tt_http_req *r = &c->req;
  c->rq.route_status = tt_router_match(c->srv->router, r->method, r->path, r->path_len, &c->arena, r->params,
                                       &r->nparams, &c->rq.route, &c->rq.allow);
  if (c->rq.route_status == 500) return fail(c, 500, "out of memory");
  if (c->rq.route && c->rq.route->max_body >= 0) c->rq.body_limit = c->rq.route->max_body;
  if (c->rq.route) r->route_ud = c->rq.route->ud;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)c->rq.body_limit)
    return fail(c, 413, "the request body is larger than the server accepts (max-body-bytes)");
  return 0;
}

/* Expect: 100-continue — answered at once, or the error now and close. */
static int head_expect(tt_http_conn *c, int has_body) {
  if (!c->rq.expect) return 0;
  if (strcasecmp(c->rq.expect, "100-continue") != 0) return fail(c, 417, "only 'Expect: 100-continue' is understood");
  /* the client waits for our word before sending a body we would discard */
  if (c->rq.route_status != 200) return fail(c, c->rq.route_status, NULL);
  if (has_body && c->req.http_minor >= 1) {
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
    if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)b.len) {
      c->creq.data = c;
      uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, write_continue_cb);
    }
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  int rc = head_version_and_keepalive(c, p);
  if (rc) return rc;
  head_request_id(c);
  if ((rc = head_target(c)) || (rc = head_route(c, p)) || (rc = head_expect(c, has_body))) return rc;
  c->state = ST_BODY;
  http__conn_timer(c, has_body ? c->srv->cfg.body_timeout_ms : c->srv->cfg.header_timeout_ms);
  if (c->rq.route && c->rq.route->stream_body) {
    /* the handler runs now; body bytes that arrive before it calls
     * tt_http_body_start wait in c->body (at most one read buffer: reading
     * stops until then) */
    RQ_ON(c, RQ_STREAM_BODY);
    RQ_ON(c, RQ_BODY_PAUSED);
    C_ON(c, C_HANDLER_OWNS);
    http__user_enter(c);
    c->rq.route->fn(&c->req, c->rq.route->ud);
    http__user_exit(c);
  }
  return 0;
}

/* Chunk extensions (";name=value" after a chunk size) are read and dropped,
 * but counted: unbounded, 30 MB of ";aaaa" would be parsed for nothing
 * (the llhttp CVE-2024-22019 class). */
static int on_chunk_ext(llhttp_t *p, const char *at, size_t len) {
  (void)at;
  tt_http_conn *c = CONN(p);
  c->rq.chunk_ext_bytes += len;
  if (c->rq.chunk_ext_bytes > (size_t)c->srv->cfg.max_chunk_ext_bytes)
    return fail(c, 400, "the chunk extensions are longer than the server accepts (max-chunk-ext-bytes)");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (RQ(c, RQ_STREAM_BODY)) {
    c->req.body_len += len; /* bytes seen so far */
    if (c->req.body_len > (uint64_t)c->rq.body_limit)
      return fail(c, 413, "the request body is larger than the server accepts");
    if (RQ(c, RQ_RESPONDED) || c->rq.body_err) return 0; /* answered early: drop */
    if (c->rq.body_cb) {
      http__user_enter(c);
      c->rq.body_cb(&c->req, 0, at, len, c->rq.body_ud);
      http__user_exit(c);
      return 0;
    }
    if (tt_buf_append(&c->body, at, len)) return fail(c, 500, "out of memory");
    return 0;
  }
  if (c->body.len + len > (size_t)c->rq.body_limit) {
    return fail(c, 413, "the request body is larger than the server accepts (max-body-bytes)");
  }
  if (c->rq.route_status != 200) { /* discarded: only counted */
    c->body.len += len;
    return 0;
  }
  if (tt_buf_append(&c->body, at, len)) return fail(c, 500, "out of memory");
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  tt_http_req *r = &c->req;
  c->state = ST_HANDLING;
  http__conn_timer(c, 0);
  if (RQ(c, RQ_STREAM_BODY)) {
    RQ_ON(c, RQ_BODY_COMPLETE);
    RQ_SET(c, RQ_KEEP_ALIVE, RQ(c, RQ_KEEP_ALIVE) && llhttp_should_keep_alive(p));
    return HPE_PAUSED;
  }
  if (c->rq.route_status == 200) {
    r->body = c->body.len ? c->body.data : NULL;
    r->body_len = c->body.len;
  }
  RQ_SET(c, RQ_KEEP_ALIVE, RQ(c, RQ_KEEP_ALIVE) && llhttp_should_keep_alive(p));
  return HPE_PAUSED;
}

static void dispatch(tt_http_conn *c) {
  tt_http_req *r = &c->req;
  if (RQ(c, RQ_STREAM_BODY)) { /* already running: tell it the body ended */
    if (c->rq.body_cb && !RQ(c, RQ_RESPONDED)) {
      tt_http_body_cb cb = c->rq.body_cb;
      c->rq.body_cb = NULL;
      http__user_enter(c);
      cb(r, 0, NULL, 0, c->rq.body_ud);
      http__user_exit(c);
    }
    return;
  }
  if (c->rq.route_status == 200) {
    C_ON(c, C_HANDLER_OWNS);
    http__user_enter(c);
    c->rq.route->fn(r, c->rq.route->ud);
    http__user_exit(c);
    return;
  }
  if (c->rq.route_status == 405) {
    char allow[96];
    tt_router_allow_string(c->rq.allow, allow, sizeof allow);
    tt_http_add_header(r, "Allow", tt_arena_strdup(&c->arena, allow));
    tt_http_respond_problem(r, 405, "this method is not allowed on this resource; see the Allow header");
    return;
  }
  tt_http_respond_problem(r, 404, "no such resource");
}

static const char *parse_error_detail(tt_http_conn *c, llhttp_errno_t e) {
  switch (e) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
      return "Content-Length together with Transfer-Encoding, or repeated, is not accepted";
    case HPE_INVALID_TRANSFER_ENCODING:
      return "Transfer-Encoding must end with chunked";
    case HPE_INVALID_CONTENT_LENGTH: return "invalid Content-Length";
    case HPE_INVALID_CHUNK_SIZE: return "invalid chunk size";
    case HPE_INVALID_METHOD: return "invalid method";
    case HPE_INVALID_URL: return "invalid request target";
    case HPE_INVALID_VERSION: return "invalid HTTP version";
    case HPE_INVALID_HEADER_TOKEN: return "invalid header";
    default: {
      const char *reason = llhttp_get_error_reason(&c->parser);
      return reason ? reason : "malformed request";
    }
  }
}

/* Feeds buffered bytes to llhttp until they run out or a request is
 * waiting for its handler. */
void http__conn_parse(tt_http_conn *c) {
  C_ON(c, C_IN_PARSE);
  while (!CF(c, C_CLOSING) && c->rpos < c->rlen && (c->state == ST_FRESH || c->state == ST_IDLE ||
                                               c->state == ST_HEAD || c->state == ST_BODY)) {
    const char *start = c->rbuf + c->rpos;
    c->exec_start = start;
    llhttp_errno_t e = llhttp_execute(&c->parser, start, c->rlen - c->rpos);
    {
      const char *end = e == HPE_OK ? c->rbuf + c->rlen : llhttp_get_error_pos(&c->parser);
      if (end) c->exec_tail_fold = tail_fold(start, (size_t)(end - start), c->exec_tail_fold);
    }
    if (e == HPE_OK) {
      c->rpos = c->rlen;
      break;
    }
    if (e == HPE_PAUSED) {
      const char *pos = llhttp_get_error_pos(&c->parser);
      c->rpos = (size_t)(pos - c->rbuf);
      llhttp_resume(&c->parser);
      dispatch(c); /* may http__finish synchronously: then the loop goes on */
      continue;
    }
    /* a parse error or a limit: answer and close */
    int status = c->rq.err_status ? c->rq.err_status : 400;
    const char *detail = c->rq.err_status ? c->rq.err_detail : parse_error_detail(c, e);
    c->rpos = c->rlen;
    RQ_ON(c, RQ_UNREAD_BODY); /* whatever follows is not read: close lingering */
    if (RQ(c, RQ_STREAM_BODY) && CF(c, C_HANDLER_OWNS) && !RQ(c, RQ_RESPONDED)) {
      c->state = ST_HANDLING;
      http__conn_timer(c, 0);
      RQ_OFF(c, RQ_KEEP_ALIVE);
      http__body_error(c, status == 413 ? TT_ETOOBIG : status == 500 ? TT_ENOMEM : TT_EINVAL);
      break;
    }
    if (status == 405) {
      char allow[96];
      tt_router_allow_string(c->rq.allow, allow, sizeof allow);
      tt_http_add_header(&c->req, "Allow", tt_arena_strdup(&c->arena, allow));
      detail = "this method is not allowed on this resource; see the Allow header";
    } else if (status == 404) {
      detail = "no such resource";
    }
    c->state = ST_HANDLING;
    http__conn_timer(c, 0);
    http__send_error(c, status, detail);
    break;
  }
  if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
  C_OFF(c, C_IN_PARSE);
  /* read more when parsing can go on */
  if (!CF(c, C_CLOSING) && !CF(c, C_READING) && !(RQ(c, RQ_STREAM_BODY) && RQ(c, RQ_BODY_PAUSED) && c->state == ST_BODY) &&
      (c->state == ST_FRESH || c->state == ST_IDLE || c->state == ST_HEAD || c->state == ST_BODY)) {
    if (uv_read_start((uv_stream_t *)&c->tcp, http__on_alloc, http__on_read) == 0) C_ON(c, C_READING);
  }
}


/* The llhttp callbacks of every connection (the server's settings). */
void http__parser_settings(llhttp_settings_t *st) {
  llhttp_settings_init(st);
  st->on_message_begin = on_message_begin;
  st->on_url = on_url;
  st->on_header_field = on_header_field;
  st->on_header_value = on_header_value;
  st->on_header_value_complete = on_header_value_complete;
  st->on_headers_complete = on_headers_complete;
  st->on_body = on_body;
  st->on_chunk_extension_name = on_chunk_ext;
  st->on_chunk_extension_value = on_chunk_ext;
  st->on_message_complete = on_message_complete;
}
