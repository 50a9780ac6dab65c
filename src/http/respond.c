/* respond.c — responses out (src/http/internal.h): the head built in the
 * request's arena and written with the body in one uv_write, chunked
 * streams, problem details, the request body handed to streaming handlers,
 * the deferred completion that keeps a request valid until the code that
 * answered returns, and the one access-log line per request. */
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
  tt_metrics_request(c->rq.route ? c->rq.route->id : -1, c->rq.status, us);
  tt_buf *l = tt_log_begin(TT_LOG_INFO, "request");
  if (!l) return;
  tt_log_cstr(l, "request_id", c->req.request_id);
  tt_log_cstr(l, "method", c->req.method_name ? c->req.method_name : "-");
  if (c->req.path)
    tt_log_str(l, "path", c->req.path, c->req.path_len);
  else
    tt_log_str(l, "path", c->url.data ? c->url.data : "", c->url.len > 256 ? 256 : c->url.len);
  tt_log_int(l, "status", c->rq.status);
  tt_log_int(l, "bytes", (long long)c->rq.bytes_out);
  tt_log_int(l, "us", (long long)us);
  if (status_code < 0) tt_log_cstr(l, "error", tt_err_name(status_code));
  tt_log_end(l);
}

/* Lingering close: after answering a request whose body we did not read
 * (413, an early 401...), closing at once would make the kernel answer the
 * client's unread bytes with a reset, which can destroy our response before
 * the client reads it. So: send FIN, read and discard for up to --linger-ms
 * or until the client closes, then close (nginx's lingering_close). */
static void response_finished(tt_http_conn *c, int status) {
  log_request(c, status);
  C_OFF(c, C_HANDLER_OWNS);
  if (c->rq.done_cb) {
    tt_http_done_fn cb = c->rq.done_cb;
    c->rq.done_cb = NULL;
    c->in_user++; /* nothing may http__finish a second time from in here */
    cb(&c->req, status, c->rq.done_ud);
    c->in_user--;
  }
  C_OFF(c, C_FINISH_PENDING);
  if (CF(c, C_CLOSING)) {
    if (c->handles_open == 0 && !CF(c, C_FINISH_QUEUED)) http__conn_free(c);
    return;
  }
  if (status == 0 && RQ(c, RQ_UNREAD_BODY)) {
    http__conn_linger(c);
    return;
  }
  if (status < 0 || !RQ(c, RQ_KEEP_ALIVE)) {
    http__conn_close(c, status);
    return;
  }
  http__req_reset(c);
  c->state = ST_IDLE;
  c->idle_since = uv_now(c->srv->loop);
  http__conn_timer(c, c->srv->cfg.idle_timeout_ms);
  if (!CF(c, C_IN_PARSE)) http__conn_parse(c);
}

static void on_written(uv_write_t *w, int status) { response_finished(w->data, status); }

static void on_stream_head_written(uv_write_t *w, int status) {
  tt_http_conn *c = w->data;
  if (status < 0) http__conn_close(c, status); /* the handler hears it through on_done */
}

/* Builds the head into the arena. len < 0: chunked stream. */
static char *build_head(tt_http_conn *c, int status, const char *ctype, int64_t len, size_t *outlen) {
  tt_http_server *s = c->srv;
  tt_buf b = TT_BUF_INIT; /* built on the heap, then copied into the arena once */
  if (s->draining) RQ_OFF(c, RQ_KEEP_ALIVE);
  tt_buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: tintype\r\n", status, tt_http_status_text(status),
                server_date(s));
  if (ctype) tt_buf_printf(&b, "Content-Type: %s\r\n", ctype);
  int bodyless = status == 304 || status == 204 || (status >= 100 && status < 200);
  if (len >= 0 && !bodyless)
    tt_buf_printf(&b, "Content-Length: %lld\r\n", (long long)len);
  else if (len < 0)
    tt_buf_puts(&b, c->req.http_minor >= 1 ? "Transfer-Encoding: chunked\r\n" : "");
  if (len < 0 && c->req.http_minor == 0) RQ_OFF(c, RQ_KEEP_ALIVE);
  if (c->req.request_id) tt_buf_printf(&b, "X-Request-Id: %s\r\n", c->req.request_id);
  for (unsigned i = 0; i < c->rq.nrh; i++) tt_buf_printf(&b, "%s: %s\r\n", c->rq.rh[i].name, c->rq.rh[i].value);
  if (!RQ(c, RQ_KEEP_ALIVE))
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

void http__finish(tt_http_conn *c, int status) {
  C_ON(c, C_FINISH_PENDING);
  c->finish_status = status;
  if (c->in_user || CF(c, C_FINISH_QUEUED)) return; /* http__user_exit or the prepare phase runs it */
  C_ON(c, C_FINISH_QUEUED);
  c->finish_next = c->srv->finishing;
  c->srv->finishing = c;
}

void http__run_finish(tt_http_conn *c) {
  if (!CF(c, C_FINISH_PENDING)) return;
  C_OFF(c, C_FINISH_PENDING);
  response_finished(c, c->finish_status);
}


void http__user_exit(tt_http_conn *c) {
  if (--c->in_user == 0 && CF(c, C_FINISH_PENDING) && !CF(c, C_FINISH_QUEUED)) http__run_finish(c);
}

int tt_http_add_header(tt_http_req *req, const char *name, const char *value) {
  tt_http_conn *c = http__req_conn(req);
  if (RQ(c, RQ_RESPONDED) || c->rq.nrh == MAX_RESP_HEADERS) return TT_EINVAL;
  c->rq.rh[c->rq.nrh++] = (resp_header){name, value};
  return TT_OK;
}

void tt_http_set_close(tt_http_req *req) { RQ_OFF(http__req_conn(req), RQ_KEEP_ALIVE); }

void tt_http_on_done(tt_http_req *req, tt_http_done_fn cb, void *ud) {
  tt_http_conn *c = http__req_conn(req);
  c->rq.done_cb = cb;
  c->rq.done_ud = ud;
}

int tt_http_respond(tt_http_req *req, int status, const char *ctype, const void *body, size_t len) {
  tt_http_conn *c = http__req_conn(req);
  if (RQ(c, RQ_RESPONDED)) return TT_EINVAL;
  RQ_ON(c, RQ_RESPONDED);
  c->rq.status = status;
  if (RQ(c, RQ_STREAM_BODY) && !RQ(c, RQ_BODY_COMPLETE)) {
    RQ_OFF(c, RQ_KEEP_ALIVE); /* the rest of the body will not be read */
    c->rq.body_cb = NULL;
    RQ_ON(c, RQ_UNREAD_BODY);
  }
  if (c->state == ST_HEAD || c->state == ST_BODY) RQ_ON(c, RQ_UNREAD_BODY); /* answered mid-request (413, 408) */
  if (CF(c, C_CLOSING)) { /* client left while the handler worked */
    http__finish(c, TT_ECANCELED);
    return TT_ECANCELED;
  }
  size_t hlen;
  char *head = build_head(c, status, ctype, (int64_t)len, &hlen);
  if (!head) {
    http__finish(c, TT_ENOMEM);
    return TT_ENOMEM;
  }
  int bodyless = RQ(c, RQ_HEAD) || status == 304 || status == 204 || status < 200;
  if (!body && len && !bodyless) { /* only HEAD may declare bytes it does not send */
    RQ_OFF(c, RQ_RESPONDED);
    return tt_http_respond_problem(req, 500, "internal error: response without its body");
  }
  uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hlen), uv_buf_init((char *)body, (unsigned)len)};
  unsigned nbufs = (!bodyless && len) ? 2 : 1;
  c->rq.bytes_out = bodyless ? 0 : len;
  c->state = ST_WRITING;
  /* fast path: the socket usually takes it all at once */
  int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
  size_t total = hlen + (nbufs == 2 ? len : 0);
  if (n == (int)total) {
    http__finish(c, 0);
    return TT_OK;
  }
  if (n < 0 && n != UV_EAGAIN) {
    http__finish(c, n);
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
  http__conn_timer(c, c->srv->cfg.write_timeout_ms);
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, first, nbufs, on_written);
  if (rc) http__finish(c, rc);
  return rc;
}

int tt_http_respond_problem(tt_http_req *req, int status, const char *detail) {
  tt_http_conn *c = http__req_conn(req);
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
    http__user_enter(c);
    cb(&c->req, status, ud);
    http__user_exit(c);
  }
  if (last || (status < 0 && RQ(c, RQ_RESPONDED))) {
    response_finished(c, status);
  } else if (status < 0) {
    http__conn_close(c, status);
  } else {
    http__conn_timer(c, 0);
  }
}

int tt_http_stream_start(tt_http_req *req, int status, const char *ctype) {
  tt_http_conn *c = http__req_conn(req);
  if (RQ(c, RQ_RESPONDED) || c->rq.streaming) return TT_EINVAL;
  if (CF(c, C_CLOSING)) return TT_ECANCELED;
  c->rq.status = status;
  c->rq.streaming = 1;
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
  int chunked = c->req.http_minor >= 1 && !RQ(c, RQ_HEAD);
  if (RQ(c, RQ_HEAD)) len = 0;
  if (len) {
    if (chunked) {
      int w = snprintf(sw->sizeline, sizeof sw->sizeline, "%zx\r\n", len);
      bufs[n++] = uv_buf_init(sw->sizeline, (unsigned)w);
    }
    bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    if (chunked) bufs[n++] = uv_buf_init("\r\n", 2);
    c->rq.bytes_out += len;
  }
  if (last && chunked) bufs[n++] = uv_buf_init("0\r\n\r\n", 5);
  if (n == 0) bufs[n++] = uv_buf_init("", 0);
  http__conn_timer(c, c->srv->cfg.write_timeout_ms);
  int rc = uv_write(&sw->w, (uv_stream_t *)&c->tcp, bufs, n, on_stream_written);
  if (rc) free(sw);
  return rc;
}

int tt_http_stream_write(tt_http_req *req, const void *data, size_t len, tt_http_write_cb cb, void *ud) {
  tt_http_conn *c = http__req_conn(req);
  if (!c->rq.streaming || RQ(c, RQ_RESPONDED)) return TT_EINVAL;
  if (CF(c, C_CLOSING)) return TT_ECANCELED;
  if (len == 0) return TT_EINVAL; /* an empty chunk would end the stream */
  return stream_send(c, data, len, cb, ud, 0);
}

int tt_http_stream_end(tt_http_req *req) {
  tt_http_conn *c = http__req_conn(req);
  if (!c->rq.streaming || RQ(c, RQ_RESPONDED)) return TT_EINVAL;
  RQ_ON(c, RQ_RESPONDED);
  c->rq.streaming = 3;
  if (CF(c, C_CLOSING)) {
    http__finish(c, TT_ECANCELED);
    return TT_ECANCELED;
  }
  int rc = stream_send(c, NULL, 0, NULL, NULL, 1);
  if (rc) http__finish(c, rc);
  return rc;
}

int tt_http_body_start(tt_http_req *req, tt_http_body_cb cb, void *ud) {
  tt_http_conn *c = http__req_conn(req);
  if (!RQ(c, RQ_STREAM_BODY) || c->rq.body_cb || RQ(c, RQ_RESPONDED)) return TT_EINVAL;
  http__user_enter(c);
  if (c->rq.body_err) { /* failed before the handler was ready */
    int e = c->rq.body_err;
    cb(req, e, NULL, 0, ud);
    http__user_exit(c);
    return TT_OK;
  }
  c->rq.body_cb = cb;
  c->rq.body_ud = ud;
  if (c->body.len) { /* what arrived before the start */
    size_t n = c->body.len;
    c->body.len = 0;
    cb(req, 0, c->body.data, n, ud);
  }
  if (RQ(c, RQ_BODY_COMPLETE) && !RQ(c, RQ_RESPONDED)) {
    if (c->rq.body_cb) {
      c->rq.body_cb = NULL;
      cb(req, 0, NULL, 0, ud);
    }
    http__user_exit(c);
    return TT_OK;
  }
  http__user_exit(c);
  if (RQ(c, RQ_RESPONDED) || CF(c, C_CLOSING)) return TT_OK;
  tt_http_body_resume(req);
  return TT_OK;
}

void tt_http_body_pause(tt_http_req *req) {
  tt_http_conn *c = http__req_conn(req);
  RQ_ON(c, RQ_BODY_PAUSED);
  if (CF(c, C_READING) && !CF(c, C_CLOSING) && c->state == ST_BODY) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    C_OFF(c, C_READING);
  }
}

void tt_http_body_resume(tt_http_req *req) {
  tt_http_conn *c = http__req_conn(req);
  RQ_OFF(c, RQ_BODY_PAUSED);
  if (CF(c, C_CLOSING) || CF(c, C_IN_PARSE) || c->state != ST_BODY) return;
  if (c->rpos < c->rlen) { /* bytes waiting in the buffer first */
    http__conn_parse(c);
    return;
  }
  if (!CF(c, C_READING) && uv_read_start((uv_stream_t *)&c->tcp, http__on_alloc, http__on_read) == 0) C_ON(c, C_READING);
}

/* An error found by the server itself: problem+json and close. Returns
 * non-zero when the response could not even be started. */
int http__send_error(tt_http_conn *c, int status, const char *detail) {
  if (RQ(c, RQ_RESPONDED) || c->state == ST_WRITING || CF(c, C_HANDLER_OWNS)) return 1;
  RQ_OFF(c, RQ_KEEP_ALIVE);
  if (!c->req.request_id) c->req.request_id = "-";
  if (!c->req.start_ns) c->req.start_ns = uv_hrtime();
  tt_http_respond_problem(&c->req, status, detail);
  return 0;
}
