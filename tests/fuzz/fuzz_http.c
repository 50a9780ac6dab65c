/* fuzz_http.c — the HTTP request path: bytes in → src/http/server.c's
 * parser (llhttp, strict), its limits and framing checks, the router
 * (src/http/router.c) and the response writer, exactly as a client reaches
 * them.
 *
 * The server runs unchanged on a libuv loop inside the fuzzer, listening on
 * 127.0.0.1 (an ephemeral port; nothing leaves the machine). Each input is
 * one connection: a client on the same loop writes the bytes (at once or
 * in pieces, see below), half-closes,
 * reads whatever comes back and resets the connection (SO_LINGER 0, so
 * thousands of runs leave no TIME_WAIT behind), then the loop runs until
 * the server has closed its side. Routes mirror the API's shapes: bodies
 * with small limits, streamed uploads (one started at once, one from a
 * timer as after an authentication lookup), path parameters, a chunked
 * response, an answer from a timer, a catch-all. Limits are lowered so the fuzzer reaches them.
 * ASan/UBSan/LeakSanitizer do the judging; the checks here are that every
 * response starts "HTTP/1.1 " and that the server ends with no connection
 * open. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tintype/error.h"
#include "tintype/http.h"
#include "tintype/log.h"
#include "tintype/router.h"

#define REQUIRE(c)                                    \
  do {                                                \
    if (!(c)) {                                       \
      fprintf(stderr, "fuzz_http: broken: %s\n", #c); \
      abort();                                        \
    }                                                 \
  } while (0)

static uv_loop_t loop;
static tt_http_server *srv;
static struct sockaddr_in addr;

/* ---- handlers ----------------------------------------------------------- */

static void h_health(tt_http_req *req, void *ud) {
  (void)ud;
  tt_http_respond(req, 200, "text/html", "ok\n", 3);
}

static void h_echo(tt_http_req *req, void *ud) {
  (void)ud;
  const char *id = tt_http_param_get(req, "id");
  const char *ua = tt_http_header_get(req, "user-agent");
  char *b = tt_arena_sprintf(req->arena, "%s %s id=%s q=%s ua=%s body=%zu", req->method_name, req->path,
                             id ? id : "-", req->query ? req->query : "-", ua ? ua : "-", req->body_len);
  if (req->query && strstr(req->query, "close")) tt_http_set_close(req);
  tt_http_add_header(req, "X-Echo", "1");
  tt_http_respond(req, 200, "text/plain", b, strlen(b));
}

static void h_problem(tt_http_req *req, void *ud) {
  (void)ud;
  tt_http_respond_problem(req, 422, "the fuzzer's request was read");
}

static void h_stream(tt_http_req *req, void *ud) {
  (void)ud;
  tt_http_stream_start(req, 200, "text/plain");
  tt_http_stream_write(req, "alpha ", 6, NULL, NULL);
  tt_http_stream_write(req, "beta", 4, NULL, NULL);
  tt_http_stream_end(req);
}

typedef struct {
  size_t n;
  unsigned sum;
} sink;

static void on_piece(tt_http_req *req, int status, const char *data, size_t len, void *ud) {
  sink *k = ud;
  if (status) {
    tt_http_respond_problem(req,
                            status == TT_ETOOBIG     ? 413
                            : status == TT_ETIMEDOUT ? 408
                                                     : 400,
                            "body failed");
    return;
  }
  if (!data) {
    char *b = tt_arena_sprintf(req->arena, "%zu:%u", k->n, k->sum);
    tt_http_respond(req, 200, "text/plain", b, strlen(b));
    return;
  }
  for (size_t i = 0; i < len; i++) k->sum = k->sum * 31 + (unsigned char)data[i];
  k->n += len;
}

static void h_upload(tt_http_req *req, void *ud) {
  (void)ud;
  if (tt_http_header_get(req, "x-deny")) { /* answers before reading the body */
    tt_http_respond_problem(req, 401, "denied");
    return;
  }
  sink *k = tt_arena_calloc(req->arena, sizeof *k);
  tt_http_body_start(req, on_piece, k);
}

/* answered later, from a timer, as a handler waiting on the store does: by
 * then the client may have gone (its half-close reached the server) */
typedef struct {
  uv_timer_t t;
  tt_http_req *req;
  int upload;
} later;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  if (l->upload) {
    sink *k = tt_arena_calloc(l->req->arena, sizeof *k);
    tt_http_body_start(l->req, on_piece, k); /* after an "auth lookup" */
  } else {
    tt_http_respond(l->req, 200, "text/plain", "late", 4);
  }
  uv_close((uv_handle_t *)t, later_closed);
}

static void h_later(tt_http_req *req, void *ud) {
  later *l = calloc(1, sizeof *l);
  if (!l) abort();
  l->req = req;
  l->upload = ud != NULL;
  uv_timer_init(&loop, &l->t);
  l->t.data = l;
  uv_timer_start(&l->t, later_fire, 0, 0);
}

/* ---- one connection ----------------------------------------------------- */

/* The bytes go in one write, or in pieces of `piece` bytes, one per loop
 * iteration from an idle handle: the server's read of each piece happens
 * in that iteration's poll phase, so requests reach the parser split across
 * reads at every offset (the spans llhttp hands out then cross reads). */
typedef struct {
  uv_tcp_t tcp;
  uv_idle_t idle;
  uv_connect_t conn;
  uv_write_t w;
  uv_shutdown_t sh;
  const char *p;
  size_t left, piece;
  char head[16];
  size_t got;
  int closes; /* handles closed (2: done) */
} client;

static void c_closed(uv_handle_t *h) { ((client *)h->data)->closes++; }

static void c_close(client *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  uv_close((uv_handle_t *)&c->idle, c_closed);
  uv_close((uv_handle_t *)&c->tcp, c_closed);
}

static void c_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  static char scratch[65536];
  *buf = uv_buf_init(scratch, sizeof scratch);
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *c = s->data;
  if (n < 0) {
    c_close(c);
    return;
  }
  for (ssize_t i = 0; i < n && c->got < sizeof c->head; i++) c->head[c->got++] = buf->base[i];
}

static void c_shut(uv_shutdown_t *r, int status) { (void)r, (void)status; }

static void c_half_close(client *c) {
  if (uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, c_shut) != 0) c_close(c);
}

static void c_written(uv_write_t *w, int status) {
  client *c = w->data;
  if (status == 0)
    c_half_close(c);
  else
    c_close(c);
}

static void c_next_piece(uv_idle_t *h) {
  client *c = h->data;
  uv_buf_t b = uv_buf_init((char *)c->p, (unsigned)(c->left < c->piece ? c->left : c->piece));
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN) return; /* the server is not reading: later */
  if (n < 0) {
    c_close(c);
    return;
  }
  c->p += n;
  c->left -= (size_t)n;
  if (c->left) return;
  uv_idle_stop(h);
  c_half_close(c);
}

static void c_connected(uv_connect_t *r, int status) {
  client *c = r->data;
  if (status) {
    fprintf(stderr, "fuzz_http: connect: %s\n", uv_strerror(status));
    abort();
  }
  uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
  if (c->piece < c->left) {
    uv_idle_start(&c->idle, c_next_piece);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)c->p, (unsigned)c->left);
  if (uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, c_written)) c_close(c);
}

/* ---- libFuzzer ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  tt_log_init(2, TT_LOG_OFF, "fuzz");
  REQUIRE(uv_loop_init(&loop) == 0);
  static tt_config cfg;
  tt_config_defaults(&cfg);
  cfg.max_header_bytes = 2048;
  cfg.max_headers = 16;
  cfg.max_url_bytes = 512;
  cfg.max_body_bytes = 4096;
  tt_router *r = tt_router_new();
  REQUIRE(tt_router_add(r, TT_HTTP_GET, "/index.html", h_health, NULL, -1) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_POST, "/api/jobs", h_echo, NULL, 256) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_GET | TT_HTTP_DELETE, "/api/jobs/{id}", h_echo, NULL, -1) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_PATCH, "/api/users/me", h_problem, NULL, 64) == TT_OK);
  REQUIRE(tt_router_add_streaming(r, TT_HTTP_PUT, "/api/images/{id}/raw", h_upload, NULL, 1024) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_GET, "/api/images/{id}/{kind}", h_echo, NULL, -1) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_GET, "/stream", h_stream, NULL, -1) == TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_GET | TT_HTTP_POST, "/later/{id}", h_later, NULL, 128) == TT_OK);
  REQUIRE(tt_router_add_streaming(r, TT_HTTP_PUT | TT_HTTP_POST, "/api/images", h_later, (void *)1, 512) ==
          TT_OK);
  REQUIRE(tt_router_add(r, TT_HTTP_GET, "/*", h_echo, NULL, -1) == TT_OK);
  REQUIRE(tt_http_server_new(&loop, &cfg, r, &srv) == TT_OK);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof addr;
  REQUIRE(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
  REQUIRE(getsockname(fd, (struct sockaddr *)&addr, &al) == 0);
  REQUIRE(listen(fd, 64) == 0);
  REQUIRE(tt_http_server_listen_fd(srv, fd) == TT_OK);
  return 0;
}

/* Input: one byte, then the bytes the client sends. The byte is the size
 * of the pieces (0: all at once; at most 256 pieces, so a small size on a
 * long input grows). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  client c;
  memset(&c, 0, sizeof c);
  c.p = (const char *)data + 1;
  c.left = size - 1;
  c.piece = data[0] ? data[0] : c.left;
  if (c.left / c.piece > 256) c.piece = c.left / 256 + 1;
  REQUIRE(uv_tcp_init(&loop, &c.tcp) == 0);
  REQUIRE(uv_idle_init(&loop, &c.idle) == 0);
  c.tcp.data = c.idle.data = c.conn.data = c.w.data = c.sh.data = &c;
  (void)uv_tcp_nodelay(&c.tcp, 1); /* pieces leave at once (no Nagle wait) */
  REQUIRE(uv_tcp_connect(&c.conn, &c.tcp, (const struct sockaddr *)&addr, c_connected) == 0);
  uint64_t start = uv_hrtime();
  /* until our side is closed and the server has let go of the connection */
  while (c.closes < 2 || tt_http_server_connections(srv) > 0) {
    uv_run(&loop, UV_RUN_ONCE);
    if (uv_hrtime() - start > 8000000000ull) { /* 8 s: the server kept a dead connection */
      fprintf(stderr,
              "fuzz_http: connection still open after 8 s (client handles closed: %d, server conns: %u)\n",
              c.closes, tt_http_server_connections(srv));
      abort();
    }
  }
  if (c.got) REQUIRE(c.got >= 9 ? !memcmp(c.head, "HTTP/1.1 ", 9) : !memcmp(c.head, "HTTP/1.1 ", c.got));
  return 0;
}
