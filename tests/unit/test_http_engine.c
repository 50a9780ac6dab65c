/* test_http_engine.c — the HTTP engine in-process, over real loopback
 * sockets: handlers that read bodies (Content-Length, chunked,
 * 100-continue, per-route limits), answer later from a timer, stream
 * chunked responses, and outlive a client that left. The server runs on
 * its own thread and loop; the test speaks raw HTTP with blocking sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tintype/error.h"
#include "tintype/http.h"
#include "tintype/log.h"
#include "tintype/router.h"
#include "tintype/supervisor.h"
#include "tt_test.h"

static uv_loop_t loop;
static tt_http_server *server;
static uv_async_t stop_async;
static int port;
static volatile int gone_done_status = 1;
static volatile int late_answer_rc = 1;

static void echo(tt_http_req *req, void *ud) {
  (void)ud;
  char *b = tt_arena_sprintf(req->arena, "%zu:%.*s", req->body_len, (int)req->body_len, req->body ? req->body : "");
  tt_http_respond(req, 200, "text/plain", b, strlen(b));
}

typedef struct {
  uv_timer_t t;
  tt_http_req *req;
  int step;
} later;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  static const char *parts[] = {"alpha ", "beta ", "gamma"};
  const char *path = l->req->path;
  if (!strcmp(path, "/async")) {
    tt_http_respond(l->req, 200, "text/plain", "late", 4);
  } else if (!strcmp(path, "/gone")) {
    late_answer_rc = tt_http_respond(l->req, 200, "text/plain", "nobody", 6);
  } else { /* stream */
    if (l->step < 3) {
      tt_http_stream_write(l->req, parts[l->step], strlen(parts[l->step]), NULL, NULL);
      l->step++;
      uv_timer_start(t, later_fire, 10, 0);
      return;
    }
    tt_http_stream_end(l->req);
  }
  uv_close((uv_handle_t *)t, later_closed);
}

static void on_gone_done(tt_http_req *req, int status, void *ud) {
  (void)req;
  (void)ud;
  gone_done_status = status;
}

static void deferred(tt_http_req *req, void *ud) {
  (void)ud;
  later *l = calloc(1, sizeof *l);
  l->req = req;
  l->t.data = l;
  uv_timer_init(&loop, &l->t);
  int ms = 30;
  if (!strcmp(req->path, "/stream")) {
    tt_http_stream_start(req, 200, "text/plain");
    ms = 5;
  }
  if (!strcmp(req->path, "/gone")) {
    tt_http_on_done(req, on_gone_done, NULL);
    ms = 300;
  }
  uv_timer_start(&l->t, later_fire, ms, 0);
}

/* streamed body: counts bytes and a checksum, pausing after each piece and
 * resuming from a timer (as a handler writing to a slow disk would) */
typedef struct sink {
  uv_timer_t t;
  tt_http_req *req;
  size_t n;
  unsigned sum;
  int err;
} sink;

static void sink_closed(uv_handle_t *h) { (void)h; }

static void sink_resume(uv_timer_t *t) {
  sink *k = t->data;
  tt_http_body_resume(k->req);
}

static void sink_piece(tt_http_req *req, int status, const char *data, size_t len, void *ud) {
  sink *k = ud;
  if (status) {
    k->err = status;
    uv_close((uv_handle_t *)&k->t, sink_closed);
    tt_http_respond_problem(req, status == TT_ETOOBIG ? 413 : 400, "body failed");
    return;
  }
  if (!data) {
    uv_close((uv_handle_t *)&k->t, sink_closed);
    char *b = tt_arena_sprintf(req->arena, "%zu:%u", k->n, k->sum);
    tt_http_respond(req, 200, "text/plain", b, strlen(b));
    return;
  }
  for (size_t i = 0; i < len; i++) k->sum = k->sum * 31 + (unsigned char)data[i];
  k->n += len;
  tt_http_body_pause(req);
  uv_timer_start(&k->t, sink_resume, 1, 0);
}

static void sink_start(uv_timer_t *t) {
  sink *k = t->data;
  tt_http_body_start(k->req, sink_piece, k);
}

static void streamed(tt_http_req *req, void *ud) {
  (void)ud;
  if (tt_http_header_get(req, "X-Deny")) { /* answers before reading the body */
    tt_http_respond_problem(req, 401, "denied");
    return;
  }
  sink *k = tt_arena_calloc(req->arena, sizeof *k);
  k->req = req;
  uv_timer_init(&loop, &k->t);
  k->t.data = k;
  uv_timer_start(&k->t, sink_start, 20, 0); /* starts reading later, like after an auth lookup */
}

static void on_stop(uv_async_t *a) {
  (void)a;
  tt_http_server_free(server);
  uv_close((uv_handle_t *)&stop_async, NULL);
}

static void *server_thread(void *arg) {
  (void)arg;
  uv_run(&loop, UV_RUN_DEFAULT);
  return NULL;
}

/* ---- client side ---- */

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void say(int fd, const char *s) { CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s)); }

/* reads until `n` complete responses are in (or EOF/timeout); returns all */
static char *hear(int fd, const char *until, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  while (len + 1 < cap) {
    if (until && strstr(buf, until)) break;
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r <= 0) break;
    len += (size_t)r;
    buf[len] = 0;
  }
  return buf;
}

int main(void) {
  tt_log_init(2, TT_LOG_WARN, "test");
  tt_config cfg;
  tt_config_defaults(&cfg);
  cfg.max_body_bytes = 64;
  tt_router *r = tt_router_new();
  CHECK_INT(tt_router_add(r, TT_HTTP_POST, "/echo", echo, NULL, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_POST, "/big", echo, NULL, 4096), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/async", deferred, NULL, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/stream", deferred, NULL, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/gone", deferred, NULL, -1), TT_OK);
  CHECK_INT(tt_router_add_streaming(r, TT_HTTP_PUT, "/upload", streamed, NULL, 1 << 20), TT_OK);
  uv_loop_init(&loop);
  int fd = tt_listen_socket("127.0.0.1", 0, 64, 0);
  CHECK(fd >= 0);
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  port = ntohs(sa.sin_port);
  CHECK_INT(tt_http_server_new(&loop, &cfg, r, &server), TT_OK);
  CHECK_INT(tt_http_server_listen_fd(server, fd), TT_OK);
  uv_async_init(&loop, &stop_async, on_stop);
  pthread_t th;
  pthread_create(&th, NULL, server_thread, NULL);

  char buf[16384];
  /* Content-Length body, then a chunked body, pipelined on one connection */
  int c = dial();
  say(c,
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n");
  hear(c, "7:abcdefg", buf, sizeof buf);
  CHECK(strstr(buf, "\r\n\r\n5:hello") != NULL);
  CHECK(strstr(buf, "\r\n\r\n7:abcdefg") != NULL);
  CHECK(strstr(buf, "5:hello") < strstr(buf, "7:abcdefg"));
  /* Expect: 100-continue on an acceptable body: 100 first, then the answer */
  say(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  hear(c, "\r\n\r\n", buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  say(c, "xyz");
  hear(c, "3:xyz", buf, sizeof buf);
  CHECK(strstr(buf, "HTTP/1.1 200 OK") != NULL && strstr(buf, "3:xyz") != NULL);
  close(c);

  /* the route's own limit beats the server default (64) */
  c = dial();
  char big[2000];
  memset(big, 'b', sizeof big);
  char req[2200];
  snprintf(req, sizeof req, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%.*s", sizeof big,
           (int)sizeof big, big);
  say(c, req);
  hear(c, "2000:bbb", buf, sizeof buf);
  CHECK(strstr(buf, "HTTP/1.1 200 OK") != NULL);
  say(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  hear(c, NULL, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
  CHECK(strstr(buf, "application/problem+json") != NULL);
  close(c);

  /* chunked body over the limit */
  c = dial();
  say(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n");
  for (int i = 0; i < 0x50; i++) say(c, "z");
  say(c, "\r\n0\r\n\r\n");
  hear(c, NULL, buf, sizeof buf);
  CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
  close(c);

  /* an async answer holds back the pipelined request behind it */
  c = dial();
  say(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  hear(c, "2:hi", buf, sizeof buf);
  char *late = strstr(buf, "late"), *hi = strstr(buf, "2:hi");
  CHECK(late && hi && late < hi);
  close(c);

  /* a chunked stream */
  c = dial();
  say(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  hear(c, "0\r\n\r\n", buf, sizeof buf);
  CHECK(strstr(buf, "Transfer-Encoding: chunked") != NULL);
  CHECK(strstr(buf, "6\r\nalpha \r\n5\r\nbeta \r\n5\r\ngamma\r\n0\r\n\r\n") != NULL);
  /* the connection is still usable afterwards */
  say(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n!");
  hear(c, "1:!", buf, sizeof buf);
  CHECK(strstr(buf, "1:!") != NULL);
  close(c);
  /* HTTP/1.0 stream: no chunking, ends with the connection */
  c = dial();
  say(c, "GET /stream HTTP/1.0\r\n\r\n");
  hear(c, NULL, buf, sizeof buf);
  CHECK(strstr(buf, "\r\n\r\nalpha beta gamma") != NULL);
  CHECK(strstr(buf, "Transfer-Encoding") == NULL);
  close(c);

  /* a streamed body of 300 KB with Content-Length, then chunked, on one
   * connection: every byte arrives, in order, through pauses */
  {
    static char big2[300000];
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof big2; i++) {
      big2[i] = (char)('a' + i % 26);
      sum = sum * 31 + (unsigned char)big2[i];
    }
    char want[64];
    snprintf(want, sizeof want, "%zu:%u", sizeof big2, sum);
    c = dial();
    char hdr[128];
    snprintf(hdr, sizeof hdr, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", sizeof big2);
    say(c, hdr);
    CHECK(write(c, big2, sizeof big2) == (ssize_t)sizeof big2);
    hear(c, want, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK") != NULL && strstr(buf, want) != NULL);
    say(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    unsigned s2 = 0;
    for (const char *p = "hello world"; *p; p++) s2 = s2 * 31 + (unsigned char)*p;
    snprintf(want, sizeof want, "11:%u", s2);
    hear(c, want, buf, sizeof buf);
    CHECK(strstr(buf, want) != NULL);
    close(c);
    /* over the route's limit (1 MiB) by Content-Length: 413 before any byte */
    c = dial();
    say(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    hear(c, NULL, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
    close(c);
    /* over the limit while chunked: the handler hears TT_ETOOBIG and answers 413 */
    c = dial();
    say(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
      say(c, "40000\r\n");
      CHECK(write(c, big2, 0x40000) == 0x40000);
      say(c, "\r\n");
    }
    say(c, "0\r\n\r\n");
    hear(c, NULL, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
    close(c);
    /* the handler answers before reading: the connection closes after it */
    c = dial();
    say(c, "PUT /upload HTTP/1.1\r\nHost: x\r\nX-Deny: 1\r\nContent-Length: 5\r\n\r\nhello");
    hear(c, NULL, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 401", 12) == 0);
    CHECK(strstr(buf, "Connection: close") != NULL);
    close(c);
  }

  /* the client leaves while the handler works: done callback says so,
   * the late answer is harmless */
  c = dial();
  say(c, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
  usleep(50000);
  close(c);
  for (int i = 0; i < 100 && late_answer_rc == 1; i++) usleep(10000);
  CHECK(gone_done_status < 0);
  CHECK(late_answer_rc == TT_ECANCELED);

  uv_async_send(&stop_async);
  pthread_join(th, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  tt_router_free(r);
  TT_TEST_END();
}
