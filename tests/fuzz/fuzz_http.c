/* fuzz_http.c — the HTTP request path: bytes in → src/http/server.c's
 * parser (llhttp, strict), its limits and framing checks, the router
 * (src/http/router.c) and the response writer, exactly as a client reaches
 * them.
 *
 * The server runs unchanged on a libuv loop inside the fuzzer, listening on
 * 127.0.0.1 (an ephemeral port; nothing leaves the machine). Each input is
 * one connection: a client on the same loop writes the bytes, half-closes,
 * reads whatever comes back and resets the connection (SO_LINGER 0, so
 * thousands of runs leave no TIME_WAIT behind), then the loop runs until
 * the server has closed its side. Routes mirror the API's shapes: bodies
 * with small limits, a streamed upload, path parameters, a chunked
 * response, a catch-all. Limits are lowered so the fuzzer reaches them.
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

#define REQUIRE(c)                                        \
  do {                                                    \
    if (!(c)) {                                           \
      fprintf(stderr, "fuzz_http: broken: %s\n", #c);     \
      abort();                                            \
    }                                                     \
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
    tt_http_respond_problem(req, status == TT_ETOOBIG ? 413 : status == TT_ETIMEDOUT ? 408 : 400, "body failed");
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

/* ---- one connection ----------------------------------------------------- */

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_write_t w;
  uv_shutdown_t sh;
  uv_buf_t data;
  char head[16];
  size_t got;
  int closed;
} client;

static void c_closed(uv_handle_t *h) { ((client *)h->data)->closed = 1; }

static void c_close(client *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
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

static void c_written(uv_write_t *w, int status) {
  client *c = w->data;
  if (status == 0 && uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, c_shut) == 0) return;
  c_close(c);
}

static void c_connected(uv_connect_t *r, int status) {
  client *c = r->data;
  if (status) {
    fprintf(stderr, "fuzz_http: connect: %s\n", uv_strerror(status));
    abort();
  }
  uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
  if (uv_write(&c->w, (uv_stream_t *)&c->tcp, &c->data, 1, c_written)) c_close(c);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  client c;
  memset(&c, 0, sizeof c);
  c.tcp.data = c.conn.data = c.w.data = c.sh.data = &c;
  c.data = uv_buf_init((char *)data, (unsigned)size);
  REQUIRE(uv_tcp_init(&loop, &c.tcp) == 0);
  c.tcp.data = &c;
  REQUIRE(uv_tcp_connect(&c.conn, &c.tcp, (const struct sockaddr *)&addr, c_connected) == 0);
  uint64_t start = uv_hrtime();
  /* until our side is closed and the server has let go of the connection */
  while (!c.closed || tt_http_server_connections(srv) > 0) {
    uv_run(&loop, UV_RUN_ONCE);
    if (uv_hrtime() - start > 5000000000ull) { /* 5 s: the server kept a dead connection */
      fprintf(stderr, "fuzz_http: connection still open after 5 s (client closed: %d, server conns: %u)\n",
              c.closed, tt_http_server_connections(srv));
      abort();
    }
  }
  if (c.got) REQUIRE(c.got >= 9 ? !memcmp(c.head, "HTTP/1.1 ", 9) : !memcmp(c.head, "HTTP/1.1 ", c.got));
  return 0;
}
