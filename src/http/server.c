/* server.c — tintype's HTTP/1.1 engine: libuv for I/O, llhttp for parsing.
 *
 * One tt_http_server per process and loop; one tt_http_conn per socket.
 * A connection moves through FRESH -> HEAD -> BODY -> HANDLING -> WRITING
 * -> IDLE -> HEAD ... and one uv_timer enforces the deadline of whichever
 * state it is in (header, body, write and idle timeouts of tt_config).
 * Pipelined requests wait in the read buffer: llhttp is paused at the end
 * of each message and resumed when its response has been written, so
 * responses always leave in order. The wire format of responses is built in
 * the request's arena and written with one uv_write of [head, body].
 *
 * Neighbours: router.c picks handlers, static.c finds embedded files,
 * src/api/ holds the handlers, supervisor.c hands us the listening socket. */
#include <ctype.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tintype/alloc.h"
#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/http.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/router.h"

#define ARENA_FIRST 4096
#define MAX_RESP_HEADERS 24

enum conn_state { ST_FRESH, ST_HEAD, ST_BODY, ST_HANDLING, ST_WRITING, ST_IDLE, ST_LINGER };


struct tt_http_server {
  uv_loop_t *loop;
  tt_config cfg;
  tt_router *router;
  uv_tcp_t listener;
  int listening;
  uv_prepare_t flusher;
  uv_timer_t drain_timer;
  llhttp_settings_t settings;
  tt_http_conn *conns; /* doubly linked list of open connections */
  unsigned nconns;
  unsigned nclosing; /* of nconns, closed and waiting for their handles */
  int draining, listener_closed, drain_finished, freeing;
  void (*drain_done)(tt_http_server *, void *);
  void *drain_ud;
  time_t date_sec;
  char date[40];
  char rid_prefix[16];
  uint64_t rid_next;
  unsigned pending_closes; /* handles of the server itself still closing */
  tt_http_conn *finishing;  /* responses to finish in the next prepare phase */
};

typedef struct resp_header {
  const char *name, *value;
} resp_header;

struct tt_http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  tt_http_server *srv;
  tt_http_conn *prev, *next;
  enum conn_state state;
  int closing;       /* uv_close called on the handles */
  int handles_open;  /* tcp + timer not yet closed */
  int handler_owns;  /* a handler holds req and has not answered */
  int reading;
  int in_parse;
  int unread_body; /* answered before the request body was read */
  uv_shutdown_t shutdown_req;
  int peer_eof;
  uint64_t deadline;  /* loop time (ms) the current state expires; 0: none */
  uint64_t timer_due; /* when the uv timer fires; 0: not armed */
  /* read buffer: bytes [rpos, rlen) not yet parsed */
  char *rbuf; /* cfg.read_buffer_bytes */
  size_t rpos, rlen;
  int64_t requests; /* begun on this connection: --max-keepalive-requests */
  uint64_t idle_since; /* loop time it became FRESH or IDLE: reclaim the oldest */
  /* obs-fold detection: the bytes llhttp is parsing now, and whether the
   * previous chunk ended at a line start followed only by SP/HT */
  const char *exec_start;
  int exec_tail_fold;

  /* the current request */
  tt_http_req req;
  tt_arena arena;
  _Alignas(16) char arena_first[ARENA_FIRST];
  tt_buf url, field, value, body;
  size_t header_bytes;
  size_t chunk_ext_bytes; /* chunk extensions seen: --max-chunk-ext-bytes */
  unsigned header_cap;
  const tt_route *route;
  int route_status; /* 200, 404, 405 */
  unsigned allow;
  int64_t body_limit;
  int err_status;    /* status of an error found while parsing */
  const char *err_detail;
  int keep_alive;
  int is_head;
  int has_host;
  const char *expect;
  const char *client_rid;
  /* response */
  resp_header rh[MAX_RESP_HEADERS];
  unsigned nrh;
  int status;
  size_t bytes_out;
  int responded;
  int streaming;
  uv_write_t wreq;
  uv_write_t creq; /* 100 Continue */
  tt_http_done_fn done_cb;
  void *done_ud;
  /* streamed request body */
  int stream_body;   /* this request's route takes its body as a stream */
  int body_complete; /* llhttp saw the end of the message */
  int body_paused;   /* the handler asked for no more reads */
  int body_err;      /* an error not yet delivered */
  tt_http_body_cb body_cb;
  void *body_ud;
  /* a response that completed while user code was running finishes after
   * that code returns (or, outside any engine call, in the next prepare
   * phase): the request stays valid until the callback that answered returns */
  int in_user;
  int finish_pending, finish_status, finish_queued;
  tt_http_conn *finish_next;
};

/* ------------------------------------------------------------------ */

static const struct {
  int code;
  const char *text;
} status_texts[] = {
    {100, "Continue"}, {200, "OK"}, {201, "Created"}, {202, "Accepted"}, {204, "No Content"},
    {206, "Partial Content"}, {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"},
    {304, "Not Modified"}, {307, "Temporary Redirect"}, {400, "Bad Request"}, {401, "Unauthorized"},
    {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"}, {406, "Not Acceptable"},
    {408, "Request Timeout"}, {409, "Conflict"}, {410, "Gone"}, {411, "Length Required"},
    {412, "Precondition Failed"}, {413, "Content Too Large"}, {414, "URI Too Long"},
    {415, "Unsupported Media Type"}, {416, "Range Not Satisfiable"}, {417, "Expectation Failed"},
    {422, "Unprocessable Content"}, {428, "Precondition Required"}, {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"}, {500, "Internal Server Error"}, {501, "Not Implemented"},
    {502, "Bad Gateway"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"},
};

const char *tt_http_status_text(int status) {
  for (size_t i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++)
    if (status_texts[i].code == status) return status_texts[i].text;
  return "Unknown";
}

static tt_http_conn *req_conn(const tt_http_req *req) {
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
  return uv_tcp_getpeername(&req_conn(req)->tcp, (struct sockaddr *)ss, &len);
}

int tt_http_server_draining(const tt_http_server *s) { return s->draining; }

unsigned tt_http_server_connections(const tt_http_server *s) { return s->nconns; }

/* ------------------------------------------------------------------ */
/* connection lifetime */

static void conn_parse(tt_http_conn *c);
static void conn_linger(tt_http_conn *c);
static void user_enter(tt_http_conn *c);
static void user_exit(tt_http_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void conn_timer(tt_http_conn *c, int64_t ms);
static void server_check_drained(tt_http_server *s);
static int send_error(tt_http_conn *c, int status, const char *detail);

static void conn_free(tt_http_conn *c) {
  tt_http_server *s = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  s->nclosing--;
  tt_arena_free(&c->arena);
  tt_buf_free(&c->url);
  tt_buf_free(&c->field);
  tt_buf_free(&c->value);
  tt_buf_free(&c->body);
  free(c->rbuf);
  free(c);
  server_check_drained(s);
}

static void on_handle_closed(uv_handle_t *h) {
  tt_http_conn *c = h->data;
  if (--c->handles_open == 0 && !c->handler_owns && !c->finish_queued) conn_free(c);
}

static void conn_close(tt_http_conn *c, int why) {
  if (c->closing) return;
  c->closing = 1;
  c->srv->nclosing++;
  user_enter(c);
  if (c->stream_body && !c->body_complete && c->body_cb) {
    tt_http_body_cb cb = c->body_cb;
    c->body_cb = NULL;
    c->body_err = TT_ECANCELED;
    cb(&c->req, TT_ECANCELED, NULL, 0, c->body_ud);
  }
  if (c->handler_owns && c->done_cb) {
    tt_http_done_fn cb = c->done_cb;
    c->done_cb = NULL;
    cb(&c->req, why ? why : TT_ECANCELED, c->done_ud);
  }
  c->in_user--; /* a finish requested in there runs from the prepare phase */
  if (c->finish_pending && !c->finish_queued) {
    c->finish_queued = 1;
    c->finish_next = c->srv->finishing;
    c->srv->finishing = c;
  }
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Tells a streaming handler its body failed (once). */
static void body_error(tt_http_conn *c, int err) {
  if (c->body_err) return;
  c->body_err = err;
  if (c->body_cb) {
    tt_http_body_cb cb = c->body_cb;
    c->body_cb = NULL;
    user_enter(c);
    cb(&c->req, err, NULL, 0, c->body_ud);
    user_exit(c);
  }
}

static void on_timeout(uv_timer_t *t) {
  tt_http_conn *c = t->data;
  c->timer_due = 0;
  if (!c->deadline) return; /* no deadline in this state (a handler is working) */
  uint64_t now = uv_now(c->srv->loop);
  if (c->deadline > now) { /* the deadline moved on since the timer was armed */
    c->timer_due = c->deadline;
    uv_timer_start(&c->timer, on_timeout, c->deadline - now, 0);
    return;
  }
  c->deadline = 0;
  switch (c->state) {
    case ST_HEAD:
      if (send_error(c, 408, "the request headers did not arrive in time")) conn_close(c, TT_ETIMEDOUT);
      break;
    case ST_BODY:
      if (c->stream_body && c->handler_owns && !c->responded) {
        body_error(c, TT_ETIMEDOUT); /* the handler answers (408) */
        if (!c->responded) conn_close(c, TT_ETIMEDOUT);
        break;
      }
      if (send_error(c, 408, "the request body stalled")) conn_close(c, TT_ETIMEDOUT);
      break;
    default: /* FRESH, IDLE: nothing was asked; WRITING: client not reading */
      conn_close(c, TT_ETIMEDOUT);
  }
}

/* Sets the deadline of the current state. The uv timer is only re-armed
 * when the new deadline is earlier than the one it is armed for; a later
 * deadline is picked up when it fires. On a busy keep-alive connection this
 * makes the per-request cost a field store instead of timer-heap updates. */
static void conn_timer(tt_http_conn *c, int64_t ms) {
  if (c->closing) return;
  if (ms <= 0) {
    c->deadline = 0;
    return;
  }
  uint64_t now = uv_now(c->srv->loop);
  c->deadline = now + (uint64_t)ms;
  if (!c->timer_due || c->deadline < c->timer_due) {
    c->timer_due = c->deadline;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
  }
}

/* Resets per-request state so the next message can begin. */
static void req_reset(tt_http_conn *c) {
  tt_arena_reset(&c->arena);
  memset(&c->req, 0, sizeof c->req);
  c->req.arena = &c->arena;
  c->req.server = c->srv;
  tt_buf_reset(&c->url);
  tt_buf_reset(&c->field);
  tt_buf_reset(&c->value);
  if (c->body.cap > 64 * 1024)
    tt_buf_free(&c->body);
  else
    tt_buf_reset(&c->body);
  c->header_bytes = 0;
  c->chunk_ext_bytes = 0;
  c->header_cap = 0;
  c->route = NULL;
  c->route_status = 0;
  c->allow = 0;
  c->body_limit = c->srv->cfg.max_body_bytes;
  c->err_status = 0;
  c->err_detail = NULL;
  c->keep_alive = 1;
  c->is_head = 0;
  c->has_host = 0;
  c->expect = NULL;
  c->client_rid = NULL;
  c->nrh = 0;
  c->status = 0;
  c->bytes_out = 0;
  c->responded = 0;
  c->streaming = 0;
  c->done_cb = NULL;
  c->done_ud = NULL;
  c->stream_body = 0;
  c->unread_body = 0;
  c->body_complete = 0;
  c->body_paused = 0;
  c->body_err = 0;
  c->body_cb = NULL;
  c->body_ud = NULL;
}

/* ------------------------------------------------------------------ */
/* response */

static const char *server_date(tt_http_server *s) {
  time_t now = time(NULL);
  if (now != s->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    s->date_sec = now;
  }
  return s->date;
}

static void log_request(tt_http_conn *c, int status_code) {
  uint64_t us = (uv_hrtime() - c->req.start_ns) / 1000;
  tt_metrics_request(c->route ? c->route->id : -1, c->status, us);
  tt_buf *l = tt_log_begin(TT_LOG_INFO, "request");
  if (!l) return;
  tt_log_cstr(l, "request_id", c->req.request_id);
  tt_log_cstr(l, "method", c->req.method_name ? c->req.method_name : "-");
  if (c->req.path)
    tt_log_str(l, "path", c->req.path, c->req.path_len);
  else
    tt_log_str(l, "path", c->url.data ? c->url.data : "", c->url.len > 256 ? 256 : c->url.len);
  tt_log_int(l, "status", c->status);
  tt_log_int(l, "bytes", (long long)c->bytes_out);
  tt_log_int(l, "us", (long long)us);
  if (status_code < 0) tt_log_cstr(l, "error", tt_err_name(status_code));
  tt_log_end(l);
}

/* Lingering close: after answering a request whose body we did not read
 * (413, an early 401...), closing at once would make the kernel answer the
 * client's unread bytes with a reset, which can destroy our response before
 * the client reads it. So: send FIN, read and discard for up to --linger-ms
 * or until the client closes, then close (nginx's lingering_close). */
static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  tt_http_conn *c = st->data;
  if (nread < 0) conn_close(c, 0);
  c->rpos = c->rlen = 0; /* discard */
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  (void)r;
  (void)status;
}

static void conn_linger(tt_http_conn *c) {
  c->state = ST_LINGER;
  c->deadline = 0;
  c->rpos = c->rlen = 0;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) != 0) {
    conn_close(c, 0);
    return;
  }
  c->reading = 1;
  uv_timer_start(&c->timer, on_timeout, (uint64_t)c->srv->cfg.linger_ms, 0);
  c->timer_due = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.linger_ms;
  c->deadline = c->timer_due;
}

/* The response (or stream) has been fully written. */
static void response_finished(tt_http_conn *c, int status) {
  log_request(c, status);
  c->handler_owns = 0;
  if (c->done_cb) {
    tt_http_done_fn cb = c->done_cb;
    c->done_cb = NULL;
    c->in_user++; /* nothing may finish a second time from in here */
    cb(&c->req, status, c->done_ud);
    c->in_user--;
  }
  c->finish_pending = 0;
  if (c->closing) {
    if (c->handles_open == 0 && !c->finish_queued) conn_free(c);
    return;
  }
  if (status == 0 && c->unread_body) {
    conn_linger(c);
    return;
  }
  if (status < 0 || !c->keep_alive || c->peer_eof) {
    conn_close(c, status);
    return;
  }
  req_reset(c);
  c->state = ST_IDLE;
  c->idle_since = uv_now(c->srv->loop);
  conn_timer(c, c->srv->cfg.idle_timeout_ms);
  if (!c->in_parse) conn_parse(c);
}

static void on_written(uv_write_t *w, int status) { response_finished(w->data, status); }

static void on_stream_head_written(uv_write_t *w, int status) {
  tt_http_conn *c = w->data;
  if (status < 0) conn_close(c, status); /* the handler hears it through on_done */
}

/* Builds the head into the arena. len < 0: chunked stream. */
static char *build_head(tt_http_conn *c, int status, const char *ctype, int64_t len, size_t *outlen) {
  tt_http_server *s = c->srv;
  tt_buf b = TT_BUF_INIT; /* built on the heap, then copied into the arena once */
  if (s->draining) c->keep_alive = 0;
  tt_buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: tintype\r\n", status, tt_http_status_text(status),
                server_date(s));
  if (ctype) tt_buf_printf(&b, "Content-Type: %s\r\n", ctype);
  int bodyless = status == 304 || status == 204 || (status >= 100 && status < 200);
  if (len >= 0 && !bodyless)
    tt_buf_printf(&b, "Content-Length: %lld\r\n", (long long)len);
  else if (len < 0)
    tt_buf_puts(&b, c->req.http_minor >= 1 ? "Transfer-Encoding: chunked\r\n" : "");
  if (len < 0 && c->req.http_minor == 0) c->keep_alive = 0;
  if (c->req.request_id) tt_buf_printf(&b, "X-Request-Id: %s\r\n", c->req.request_id);
  for (unsigned i = 0; i < c->nrh; i++) tt_buf_printf(&b, "%s: %s\r\n", c->rh[i].name, c->rh[i].value);
  if (!c->keep_alive)
    tt_buf_puts(&b, "Connection: close\r\n");
  else if (c->req.http_minor == 0)
    tt_buf_puts(&b, "Connection: keep-alive\r\n");
  tt_buf_puts(&b, "\r\n");
  char *head = b.data ? tt_arena_strndup(&c->arena, b.data, b.len) : NULL;
  *outlen = b.len;
  tt_buf_free(&b);
  return head;
}

/* ---- deferred completion ---- */

static void finish(tt_http_conn *c, int status) {
  c->finish_pending = 1;
  c->finish_status = status;
  if (c->in_user || c->finish_queued) return; /* user_exit or the prepare phase runs it */
  c->finish_queued = 1;
  c->finish_next = c->srv->finishing;
  c->srv->finishing = c;
}

static void run_finish(tt_http_conn *c) {
  if (!c->finish_pending) return;
  c->finish_pending = 0;
  response_finished(c, c->finish_status);
}

static void user_enter(tt_http_conn *c) { c->in_user++; }

static void user_exit(tt_http_conn *c) {
  if (--c->in_user == 0 && c->finish_pending && !c->finish_queued) run_finish(c);
}

int tt_http_add_header(tt_http_req *req, const char *name, const char *value) {
  tt_http_conn *c = req_conn(req);
  if (c->responded || c->nrh == MAX_RESP_HEADERS) return TT_EINVAL;
  c->rh[c->nrh++] = (resp_header){name, value};
  return TT_OK;
}

void tt_http_set_close(tt_http_req *req) { req_conn(req)->keep_alive = 0; }

void tt_http_on_done(tt_http_req *req, tt_http_done_fn cb, void *ud) {
  tt_http_conn *c = req_conn(req);
  c->done_cb = cb;
  c->done_ud = ud;
}

int tt_http_respond(tt_http_req *req, int status, const char *ctype, const void *body, size_t len) {
  tt_http_conn *c = req_conn(req);
  if (c->responded) return TT_EINVAL;
  c->responded = 1;
  c->status = status;
  if (c->stream_body && !c->body_complete) {
    c->keep_alive = 0; /* the rest of the body will not be read */
    c->body_cb = NULL;
    c->unread_body = 1;
  }
  if (c->state == ST_HEAD || c->state == ST_BODY) c->unread_body = 1; /* answered mid-request (413, 408) */
  if (c->closing) { /* client left while the handler worked */
    finish(c, TT_ECANCELED);
    return TT_ECANCELED;
  }
  size_t hlen;
  char *head = build_head(c, status, ctype, (int64_t)len, &hlen);
  if (!head) {
    finish(c, TT_ENOMEM);
    return TT_ENOMEM;
  }
  int bodyless = c->is_head || status == 304 || status == 204 || status < 200;
  if (!body && len && !bodyless) { /* only HEAD may declare bytes it does not send */
    c->responded = 0;
    return tt_http_respond_problem(req, 500, "internal error: response without its body");
  }
  uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hlen), uv_buf_init((char *)body, (unsigned)len)};
  unsigned nbufs = (!bodyless && len) ? 2 : 1;
  c->bytes_out = bodyless ? 0 : len;
  c->state = ST_WRITING;
  /* fast path: the socket usually takes it all at once */
  int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
  size_t total = hlen + (nbufs == 2 ? len : 0);
  if (n == (int)total) {
    finish(c, 0);
    return TT_OK;
  }
  if (n < 0 && n != UV_EAGAIN) {
    finish(c, n);
    return n;
  }
  if (n > 0) { /* partial: advance the buffers */
    size_t done = (size_t)n;
    for (unsigned i = 0; i < nbufs; i++) {
      size_t take = done < bufs[i].len ? done : bufs[i].len;
      bufs[i].base += take;
      bufs[i].len -= take;
      done -= take;
    }
  }
  uv_buf_t *first = bufs;
  while (nbufs && first->len == 0) {
    first++;
    nbufs--;
  }
  c->wreq.data = c;
  conn_timer(c, c->srv->cfg.write_timeout_ms);
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, first, nbufs, on_written);
  if (rc) finish(c, rc);
  return rc;
}

int tt_http_respond_problem(tt_http_req *req, int status, const char *detail) {
  tt_http_conn *c = req_conn(req);
  tt_buf b = TT_BUF_INIT;
  tt_buf_printf(&b, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d", tt_http_status_text(status),
                status);
  if (detail) {
    tt_buf_puts(&b, ",\"detail\":");
    tt_buf_json_str(&b, detail, strlen(detail));
  }
  if (req->path) {
    tt_buf_puts(&b, ",\"instance\":");
    tt_buf_json_str(&b, req->path, req->path_len);
  }
  tt_buf_puts(&b, "}\n");
  char *body = b.data ? tt_arena_strndup(&c->arena, b.data, b.len) : NULL;
  size_t len = b.len;
  tt_buf_free(&b);
  if (!body) {
    static const char oom[] = "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500}\n";
    return tt_http_respond(req, 500, "application/problem+json", oom, sizeof oom - 1);
  }
  return tt_http_respond(req, status, "application/problem+json", body, len);
}

/* ---- streaming (chunked) ---- */

typedef struct stream_write {
  uv_write_t w;
  tt_http_conn *c;
  tt_http_write_cb cb;
  void *ud;
  char sizeline[24];
  int last;
} stream_write;

static void on_stream_written(uv_write_t *w, int status) {
  stream_write *sw = (stream_write *)w;
  tt_http_conn *c = sw->c;
  tt_http_write_cb cb = sw->cb;
  void *ud = sw->ud;
  int last = sw->last;
  free(sw);
  if (cb) {
    user_enter(c);
    cb(&c->req, status, ud);
    user_exit(c);
  }
  if (last || (status < 0 && c->responded)) {
    response_finished(c, status);
  } else if (status < 0) {
    conn_close(c, status);
  } else {
    conn_timer(c, 0);
  }
}

int tt_http_stream_start(tt_http_req *req, int status, const char *ctype) {
  tt_http_conn *c = req_conn(req);
  if (c->responded || c->streaming) return TT_EINVAL;
  if (c->closing) return TT_ECANCELED;
  c->status = status;
  c->streaming = 1;
  c->state = ST_WRITING;
  size_t hlen;
  char *head = build_head(c, status, ctype, -1, &hlen);
  if (!head) return TT_ENOMEM;
  uv_buf_t b = uv_buf_init(head, (unsigned)hlen);
  c->wreq.data = c;
  return uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_stream_head_written);
}

static int stream_send(tt_http_conn *c, const void *data, size_t len, tt_http_write_cb cb, void *ud, int last) {
  stream_write *sw = tt_xcalloc(1, sizeof *sw);
  sw->c = c;
  sw->cb = cb;
  sw->ud = ud;
  sw->last = last;
  uv_buf_t bufs[3];
  unsigned n = 0;
  int chunked = c->req.http_minor >= 1 && !c->is_head;
  if (c->is_head) len = 0;
  if (len) {
    if (chunked) {
      int w = snprintf(sw->sizeline, sizeof sw->sizeline, "%zx\r\n", len);
      bufs[n++] = uv_buf_init(sw->sizeline, (unsigned)w);
    }
    bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    if (chunked) bufs[n++] = uv_buf_init("\r\n", 2);
    c->bytes_out += len;
  }
  if (last && chunked) bufs[n++] = uv_buf_init("0\r\n\r\n", 5);
  if (n == 0) bufs[n++] = uv_buf_init("", 0);
  conn_timer(c, c->srv->cfg.write_timeout_ms);
  int rc = uv_write(&sw->w, (uv_stream_t *)&c->tcp, bufs, n, on_stream_written);
  if (rc) free(sw);
  return rc;
}

int tt_http_stream_write(tt_http_req *req, const void *data, size_t len, tt_http_write_cb cb, void *ud) {
  tt_http_conn *c = req_conn(req);
  if (!c->streaming || c->responded) return TT_EINVAL;
  if (c->closing) return TT_ECANCELED;
  if (len == 0) return TT_EINVAL; /* an empty chunk would end the stream */
  return stream_send(c, data, len, cb, ud, 0);
}

int tt_http_stream_end(tt_http_req *req) {
  tt_http_conn *c = req_conn(req);
  if (!c->streaming || c->responded) return TT_EINVAL;
  c->responded = 1;
  c->streaming = 3;
  if (c->closing) {
    finish(c, TT_ECANCELED);
    return TT_ECANCELED;
  }
  int rc = stream_send(c, NULL, 0, NULL, NULL, 1);
  if (rc) finish(c, rc);
  return rc;
}

int tt_http_body_start(tt_http_req *req, tt_http_body_cb cb, void *ud) {
  tt_http_conn *c = req_conn(req);
  if (!c->stream_body || c->body_cb || c->responded) return TT_EINVAL;
  user_enter(c);
  if (c->body_err) { /* failed before the handler was ready */
    int e = c->body_err;
    cb(req, e, NULL, 0, ud);
    user_exit(c);
    return TT_OK;
  }
  c->body_cb = cb;
  c->body_ud = ud;
  if (c->body.len) { /* what arrived before the start */
    size_t n = c->body.len;
    c->body.len = 0;
    cb(req, 0, c->body.data, n, ud);
  }
  if (c->body_complete && !c->responded) {
    if (c->body_cb) {
      c->body_cb = NULL;
      cb(req, 0, NULL, 0, ud);
    }
    user_exit(c);
    return TT_OK;
  }
  user_exit(c);
  if (c->responded || c->closing) return TT_OK;
  tt_http_body_resume(req);
  return TT_OK;
}

void tt_http_body_pause(tt_http_req *req) {
  tt_http_conn *c = req_conn(req);
  c->body_paused = 1;
  if (c->reading && !c->closing && c->state == ST_BODY) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

void tt_http_body_resume(tt_http_req *req) {
  tt_http_conn *c = req_conn(req);
  c->body_paused = 0;
  if (c->closing || c->in_parse || c->state != ST_BODY) return;
  if (c->rpos < c->rlen) { /* bytes waiting in the buffer first */
    conn_parse(c);
    return;
  }
  if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

/* An error found by the server itself: problem+json and close. Returns
 * non-zero when the response could not even be started. */
static int send_error(tt_http_conn *c, int status, const char *detail) {
  if (c->responded || c->state == ST_WRITING || c->handler_owns) return 1;
  c->keep_alive = 0;
  if (!c->req.request_id) c->req.request_id = "-";
  if (!c->req.start_ns) c->req.start_ns = uv_hrtime();
  tt_http_respond_problem(&c->req, status, detail);
  return 0;
}

/* ------------------------------------------------------------------ */
/* parsing */

#define CONN(p) ((tt_http_conn *)(p)->data)

static int fail(tt_http_conn *c, int status, const char *detail) {
  c->err_status = status;
  c->err_detail = detail;
  return -1;
}

static int on_message_begin(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  if (c->state != ST_FRESH && c->state != ST_IDLE) req_reset(c);
  c->state = ST_HEAD;
  c->req.start_ns = uv_hrtime();
  conn_timer(c, c->srv->cfg.header_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (c->url.len + len > (size_t)c->srv->cfg.max_url_bytes)
    return fail(c, 414, "the request target is longer than the server accepts (max-url-bytes)");
  c->header_bytes += len;
  if (tt_buf_append(&c->url, at, len)) return fail(c, 500, "out of memory");
  return 0;
}

static int header_budget(tt_http_conn *c, size_t len) {
  c->header_bytes += len;
  if (c->header_bytes > (size_t)c->srv->cfg.max_header_bytes)
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
  if (r->nheaders == c->header_cap) {
    unsigned cap = c->header_cap ? c->header_cap * 2 : 16;
    tt_http_header *h = tt_arena_alloc(&c->arena, cap * sizeof *h);
    if (!h) return fail(c, 500, "out of memory");
    if (r->nheaders) memcpy(h, r->headers, r->nheaders * sizeof *h);
    r->headers = h;
    c->header_cap = cap;
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
    c->has_host++;
  else if (!strcasecmp(h->name, "expect"))
    c->expect = h->value;
  else if (!strcasecmp(h->name, "x-request-id"))
    c->client_rid = h->value;
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

static int on_headers_complete(llhttp_t *p) {
  tt_http_conn *c = CONN(p);
  tt_http_server *s = c->srv;
  tt_http_req *r = &c->req;

  r->http_minor = llhttp_get_http_minor(p);
  if (p->http_major != 1) return fail(c, 400, "only HTTP/1.0 and HTTP/1.1 are spoken here");
  r->method = method_bit(llhttp_get_method(p));
  r->method_name = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
  c->is_head = r->method == TT_HTTP_HEAD;
  c->keep_alive = llhttp_should_keep_alive(p);
  /* the last request a keep-alive connection may carry (nginx keepalive_requests) */
  if (++c->requests >= s->cfg.max_keepalive_requests) c->keep_alive = 0;
  /* HTTP/1.0 knows no chunked framing: whatever a front-end made of it, the
   * connection ends with this response (RFC 9112 §6.1) */
  if (r->http_minor == 0 && (p->flags & F_CHUNKED)) c->keep_alive = 0;

  /* request id first, so even errors below carry one */
  if (c->client_rid && valid_request_id(c->client_rid, s->cfg.max_request_id_bytes)) {
    r->request_id = c->client_rid;
  } else {
    r->request_id = tt_arena_sprintf(&c->arena, "%s%08llx", s->rid_prefix, (unsigned long long)s->rid_next++);
  }

  r->target = tt_arena_strndup(&c->arena, c->url.data ? c->url.data : "", c->url.len);
  if (!r->target) return fail(c, 500, "out of memory");
  const char *q = strchr(r->target, '?');
  r->path_len = q ? (size_t)(q - r->target) : c->url.len;
  r->path = q ? tt_arena_strndup(&c->arena, r->target, r->path_len) : r->target;
  r->query = q ? q + 1 : NULL;
  if (!r->path) return fail(c, 500, "out of memory");

  if (r->http_minor >= 1 && c->has_host != 1)
    return fail(c, 400, c->has_host ? "more than one Host header" : "HTTP/1.1 requests need a Host header");
  if (r->path[0] != '/') {
    if (r->method == TT_HTTP_OPTIONS && !strcmp(r->path, "*")) {
      /* OPTIONS * — answered as 404 by the router below */
    } else {
      return fail(c, 400, "the request target must be an absolute path");
    }
  }

  c->route_status =
      tt_router_match(s->router, r->method, r->path, r->path_len, &c->arena, r->params, &r->nparams, &c->route,
                      &c->allow);
  if (c->route_status == 500) return fail(c, 500, "out of memory");
  if (c->route && c->route->max_body >= 0) c->body_limit = c->route->max_body;
  if (c->route) r->route_ud = c->route->ud;

  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)c->body_limit)
    return fail(c, 413, "the request body is larger than the server accepts (max-body-bytes)");

  if (c->expect) {
    if (strcasecmp(c->expect, "100-continue") != 0)
      return fail(c, 417, "only 'Expect: 100-continue' is understood");
    if (c->route_status != 200) {
      /* the client waits for our word before sending a body we would
       * discard: answer now and close */
      return fail(c, c->route_status, NULL);
    }
    if (has_body && r->http_minor >= 1) {
      static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
      if (uv_try_write((uv_stream_t *)&c->tcp, &b, 1) != (int)b.len) {
        c->creq.data = c;
        uv_write(&c->creq, (uv_stream_t *)&c->tcp, &b, 1, write_continue_cb);
      }
    }
  }
  c->state = ST_BODY;
  conn_timer(c, has_body ? s->cfg.body_timeout_ms : s->cfg.header_timeout_ms);
  if (c->route && c->route->stream_body) {
    /* the handler runs now; body bytes that arrive before it calls
     * tt_http_body_start wait in c->body (at most one read buffer: reading
     * stops until then) */
    c->stream_body = 1;
    c->body_paused = 1;
    c->handler_owns = 1;
    user_enter(c);
    c->route->fn(r, c->route->ud);
    user_exit(c);
  }
  return 0;
}

/* Chunk extensions (";name=value" after a chunk size) are read and dropped,
 * but counted: unbounded, 30 MB of ";aaaa" would be parsed for nothing
 * (the llhttp CVE-2024-22019 class). */
static int on_chunk_ext(llhttp_t *p, const char *at, size_t len) {
  (void)at;
  tt_http_conn *c = CONN(p);
  c->chunk_ext_bytes += len;
  if (c->chunk_ext_bytes > (size_t)c->srv->cfg.max_chunk_ext_bytes)
    return fail(c, 400, "the chunk extensions are longer than the server accepts (max-chunk-ext-bytes)");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  tt_http_conn *c = CONN(p);
  if (c->stream_body) {
    c->req.body_len += len; /* bytes seen so far */
    if (c->req.body_len > (uint64_t)c->body_limit)
      return fail(c, 413, "the request body is larger than the server accepts");
    if (c->responded || c->body_err) return 0; /* answered early: drop */
    if (c->body_cb) {
      user_enter(c);
      c->body_cb(&c->req, 0, at, len, c->body_ud);
      user_exit(c);
      return 0;
    }
    if (tt_buf_append(&c->body, at, len)) return fail(c, 500, "out of memory");
    return 0;
  }
  if (c->body.len + len > (size_t)c->body_limit) {
    return fail(c, 413, "the request body is larger than the server accepts (max-body-bytes)");
  }
  if (c->route_status != 200) { /* discarded: only counted */
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
  conn_timer(c, 0);
  if (c->stream_body) {
    c->body_complete = 1;
    c->keep_alive = c->keep_alive && llhttp_should_keep_alive(p);
    return HPE_PAUSED;
  }
  if (c->route_status == 200) {
    r->body = c->body.len ? c->body.data : NULL;
    r->body_len = c->body.len;
  }
  c->keep_alive = c->keep_alive && llhttp_should_keep_alive(p);
  return HPE_PAUSED;
}

static void dispatch(tt_http_conn *c) {
  tt_http_req *r = &c->req;
  if (c->stream_body) { /* already running: tell it the body ended */
    if (c->body_cb && !c->responded) {
      tt_http_body_cb cb = c->body_cb;
      c->body_cb = NULL;
      user_enter(c);
      cb(r, 0, NULL, 0, c->body_ud);
      user_exit(c);
    }
    return;
  }
  if (c->route_status == 200) {
    c->handler_owns = 1;
    user_enter(c);
    c->route->fn(r, c->route->ud);
    user_exit(c);
    return;
  }
  if (c->route_status == 405) {
    char allow[96];
    tt_router_allow_string(c->allow, allow, sizeof allow);
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
static void conn_parse(tt_http_conn *c) {
  c->in_parse = 1;
  while (!c->closing && c->rpos < c->rlen && (c->state == ST_FRESH || c->state == ST_IDLE ||
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
      dispatch(c); /* may finish synchronously: then the loop goes on */
      continue;
    }
    /* a parse error or a limit: answer and close */
    int status = c->err_status ? c->err_status : 400;
    const char *detail = c->err_status ? c->err_detail : parse_error_detail(c, e);
    c->rpos = c->rlen;
    c->unread_body = 1; /* whatever follows is not read: close lingering */
    if (c->stream_body && c->handler_owns && !c->responded) {
      c->state = ST_HANDLING;
      conn_timer(c, 0);
      c->keep_alive = 0;
      body_error(c, status == 413 ? TT_ETOOBIG : status == 500 ? TT_ENOMEM : TT_EINVAL);
      break;
    }
    if (status == 405) {
      char allow[96];
      tt_router_allow_string(c->allow, allow, sizeof allow);
      tt_http_add_header(&c->req, "Allow", tt_arena_strdup(&c->arena, allow));
      detail = "this method is not allowed on this resource; see the Allow header";
    } else if (status == 404) {
      detail = "no such resource";
    }
    c->state = ST_HANDLING;
    conn_timer(c, 0);
    send_error(c, status, detail);
    break;
  }
  if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
  c->in_parse = 0;
  /* read more when parsing can go on */
  if (!c->closing && !c->reading && !(c->stream_body && c->body_paused && c->state == ST_BODY) &&
      (c->state == ST_FRESH || c->state == ST_IDLE || c->state == ST_HEAD || c->state == ST_BODY)) {
    if (c->peer_eof) {
      conn_close(c, 0);
      return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tt_http_conn *c = h->data;
  size_t rbuf_size = (size_t)c->srv->cfg.read_buffer_bytes;
  if (!c->rbuf) c->rbuf = tt_xmalloc(rbuf_size);
  if (c->rlen >= rbuf_size) {
    *buf = uv_buf_init(NULL, 0); /* makes libuv report UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(rbuf_size - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  tt_http_conn *c = st->data;
  if (nread == 0) return;
  if (nread < 0) {
    /* EOF while a request is being answered means the client left (as
     * nginx reads it): the handler hears it through on_done */
    if (nread == UV_ENOBUFS) { /* buffer full of pipelined bytes: wait for the response */
      uv_read_stop(st);
      c->reading = 0;
      return;
    }
    conn_close(c, nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  c->rlen += (size_t)nread;
  if (c->state == ST_BODY) conn_timer(c, c->srv->cfg.body_timeout_ms);
  conn_parse(c);
  if (!c->closing && c->reading && c->stream_body && c->body_paused && c->state == ST_BODY) {
    uv_read_stop(st);
    c->reading = 0;
  }
}

/* ------------------------------------------------------------------ */
/* server */

#define OVERLOAD_BODY \
  "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many connections\"}\n"
static const char overload_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    "Connection: close\r\nRetry-After: 1\r\nContent-Length: ";
static const char overload_body[] = OVERLOAD_BODY;

static void on_overflow_closed(uv_handle_t *h) { free(h); }

/* At --max-connections: the oldest connection that is waiting for a request
 * with nothing unread (keep-alive between requests, or accepted and silent)
 * is closed to admit the new one, as nginx reuses idle keep-alive
 * connections. So idle connections, however many, never make the health
 * check (or anyone) wait for a 503. 1 when one was closed. */
static int reclaim_idle(tt_http_server *s) {
  tt_http_conn *oldest = NULL;
  for (tt_http_conn *c = s->conns; c; c = c->next)
    if (!c->closing && (c->state == ST_IDLE || c->state == ST_FRESH) && c->rpos == c->rlen &&
        (!oldest || c->idle_since < oldest->idle_since))
      oldest = c;
  if (!oldest) return 0;
  conn_close(oldest, 0);
  return 1;
}

static void on_connection(uv_stream_t *server, int status) {
  tt_http_server *s = server->data;
  if (status < 0) return;
  if (s->nconns - s->nclosing >= (unsigned)s->cfg.max_connections && !reclaim_idle(s)) {
    uv_tcp_t *t = tt_xmalloc(sizeof *t);
    uv_tcp_init(s->loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
      char len[32];
      int ll = snprintf(len, sizeof len, "%zu\r\n\r\n", sizeof overload_body - 1);
      uv_buf_t b[3] = {uv_buf_init((char *)overload_response, sizeof overload_response - 1),
                       uv_buf_init(len, (unsigned)ll),
                       uv_buf_init((char *)overload_body, sizeof overload_body - 1)};
      uv_try_write((uv_stream_t *)t, b, 3);
      tt_logf(TT_LOG_WARN, "connection refused: max-connections (%lld) reached", (long long)s->cfg.max_connections);
    }
    uv_close((uv_handle_t *)t, on_overflow_closed);
    return;
  }
  tt_http_conn *c = tt_xcalloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c, 0);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  tt_arena_init(&c->arena, c->arena_first, sizeof c->arena_first);
  req_reset(c);
  c->state = ST_FRESH;
  c->idle_since = uv_now(s->loop);
  conn_timer(c, s->cfg.header_timeout_ms);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void on_prepare(uv_prepare_t *p) {
  tt_http_server *s = p->data;
  while (s->finishing) {
    tt_http_conn *c = s->finishing;
    s->finishing = c->finish_next;
    c->finish_queued = 0;
    if (c->finish_pending)
      run_finish(c);
    else if (c->closing && c->handles_open == 0 && !c->handler_owns)
      conn_free(c);
  }
  tt_log_flush();
}

int tt_http_server_new(uv_loop_t *loop, const tt_config *cfg, tt_router *router, tt_http_server **out) {
  tt_http_server *s = calloc(1, sizeof *s);
  if (!s) return TT_ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  s->router = router;
  llhttp_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_header_field = on_header_field;
  s->settings.on_header_value = on_header_value;
  s->settings.on_header_value_complete = on_header_value_complete;
  s->settings.on_headers_complete = on_headers_complete;
  s->settings.on_body = on_body;
  s->settings.on_chunk_extension_name = on_chunk_ext;
  s->settings.on_chunk_extension_value = on_chunk_ext;
  s->settings.on_message_complete = on_message_complete;
  unsigned char rnd[6];
  if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) memset(rnd, 0, sizeof rnd);
  snprintf(s->rid_prefix, sizeof s->rid_prefix, "%02x%02x%02x%02x%02x%02x-", rnd[0], rnd[1], rnd[2], rnd[3],
           rnd[4], rnd[5]);
  uv_prepare_init(loop, &s->flusher);
  s->flusher.data = s;
  uv_prepare_start(&s->flusher, on_prepare);
  uv_unref((uv_handle_t *)&s->flusher);
  uv_timer_init(loop, &s->drain_timer);
  s->drain_timer.data = s;
  tt_log_set_buffered(1);
  *out = s;
  return TT_OK;
}

int tt_http_server_listen_fd(tt_http_server *s, int fd) {
  int rc = uv_tcp_init(s->loop, &s->listener);
  if (rc) return rc;
  s->listener.data = s;
  /* one accept per wake-up: with a listener shared by several processes,
   * accepting until EAGAIN lets whichever process wakes first take a whole
   * burst of connections (measured: 64/0 splits); taking turns spreads them */
  if ((rc = uv_tcp_open(&s->listener, fd)) || (rc = uv_tcp_simultaneous_accepts(&s->listener, 0)) ||
      (rc = uv_listen((uv_stream_t *)&s->listener, (int)s->cfg.backlog, on_connection))) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    return rc;
  }
  s->listening = 1;
  return TT_OK;
}

static void server_check_drained(tt_http_server *s) {
  if (!s->draining || !s->listener_closed || s->drain_finished || s->nconns) return;
  s->drain_finished = 1;
  uv_timer_stop(&s->drain_timer);
  tt_log_flush();
  if (s->drain_done) s->drain_done(s, s->drain_ud);
}

static void on_shutdown_deadline(uv_timer_t *t) {
  tt_http_server *s = t->data;
  if (s->nconns)
    tt_logf(TT_LOG_WARN, "shutdown deadline passed with %u connections open: closing them", s->nconns);
  for (tt_http_conn *c = s->conns; c; c = c->next) conn_close(c, TT_ECANCELED);
  server_check_drained(s);
}

static void close_listener(tt_http_server *s) {
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  s->listener_closed = 1;
  /* idle connections have nothing in flight: close them now; the others
   * close after their response (every response now says close) */
  for (tt_http_conn *c = s->conns; c; c = c->next)
    if ((c->state == ST_FRESH || c->state == ST_IDLE) && c->rlen == c->rpos) conn_close(c, 0);
  uv_timer_start(&s->drain_timer, on_shutdown_deadline, (uint64_t)s->cfg.shutdown_timeout_ms, 0);
  server_check_drained(s);
}

static void on_drain_delay(uv_timer_t *t) { close_listener(t->data); }

void tt_http_server_drain(tt_http_server *s, void (*done)(tt_http_server *, void *), void *ud) {
  if (s->draining) return;
  s->draining = 1;
  s->drain_done = done;
  s->drain_ud = ud;
  tt_logf(TT_LOG_INFO, "draining: %u connections open", s->nconns);
  if (s->cfg.drain_delay_ms > 0)
    uv_timer_start(&s->drain_timer, on_drain_delay, (uint64_t)s->cfg.drain_delay_ms, 0);
  else
    close_listener(s);
}

static void on_server_handle_closed(uv_handle_t *h) {
  tt_http_server *s = h->data;
  if (--s->pending_closes == 0) free(s);
}

void tt_http_server_free(tt_http_server *s) {
  if (!s) return;
  for (tt_http_conn *c = s->conns; c; c = c->next) conn_close(c, TT_ECANCELED);
  s->drain_done = NULL;
  s->drain_finished = 1;
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  tt_log_flush();
  s->pending_closes = 2;
  uv_close((uv_handle_t *)&s->flusher, on_server_handle_closed);
  uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
}
