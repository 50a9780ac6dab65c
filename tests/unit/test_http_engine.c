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
