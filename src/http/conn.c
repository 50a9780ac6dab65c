/* conn.c — the life of one HTTP connection (src/http/internal.h): from the
 * accept to the free, reading into its buffer, the one uv_timer that
 * enforces whichever deadline its state has (header, body, write, idle
 * timeouts), closing and the lingering close after an error answer.
 * A connection moves FRESH -> HEAD -> BODY -> HANDLING -> WRITING -> IDLE
 * -> HEAD ...; parse.c moves it through the request, respond.c through the
 * response, server.c accepts it and reclaims it when idle at the limit. */
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

void http__conn_free(tt_http_conn *c) {
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
  http__server_check_drained(s);
}

static void on_handle_closed(uv_handle_t *h) {
  tt_http_conn *c = h->data;
  if (--c->handles_open == 0 && !CF(c, C_HANDLER_OWNS) && !CF(c, C_FINISH_QUEUED)) http__conn_free(c);
}

void http__conn_close(tt_http_conn *c, int why) {
  if (CF(c, C_CLOSING)) return;
  C_ON(c, C_CLOSING);
  c->srv->nclosing++;
  http__user_enter(c);
  if (RQ(c, RQ_STREAM_BODY) && !RQ(c, RQ_BODY_COMPLETE) && c->rq.body_cb) {
    tt_http_body_cb cb = c->rq.body_cb;
    c->rq.body_cb = NULL;
    c->rq.body_err = TT_ECANCELED;
    cb(&c->req, TT_ECANCELED, NULL, 0, c->rq.body_ud);
  }
  if (CF(c, C_HANDLER_OWNS) && c->rq.done_cb) {
    tt_http_done_fn cb = c->rq.done_cb;
    c->rq.done_cb = NULL;
    cb(&c->req, why ? why : TT_ECANCELED, c->rq.done_ud);
  }
  c->in_user--; /* a http__finish requested in there runs from the prepare phase */
  if (CF(c, C_FINISH_PENDING) && !CF(c, C_FINISH_QUEUED)) {
    C_ON(c, C_FINISH_QUEUED);
    c->finish_next = c->srv->finishing;
    c->srv->finishing = c;
  }
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Tells a streaming handler its body failed (once). */
void http__body_error(tt_http_conn *c, int err) {
  if (c->rq.body_err) return;
  c->rq.body_err = err;
  if (c->rq.body_cb) {
    tt_http_body_cb cb = c->rq.body_cb;
    c->rq.body_cb = NULL;
    http__user_enter(c);
    cb(&c->req, err, NULL, 0, c->rq.body_ud);
    http__user_exit(c);
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
      if (http__send_error(c, 408, "the request headers did not arrive in time")) http__conn_close(c, TT_ETIMEDOUT);
      break;
    case ST_BODY:
      if (RQ(c, RQ_STREAM_BODY) && CF(c, C_HANDLER_OWNS) && !RQ(c, RQ_RESPONDED)) {
        http__body_error(c, TT_ETIMEDOUT); /* the handler answers (408) */
        if (!RQ(c, RQ_RESPONDED)) http__conn_close(c, TT_ETIMEDOUT);
        break;
      }
      if (http__send_error(c, 408, "the request body stalled")) http__conn_close(c, TT_ETIMEDOUT);
      break;
    default: /* FRESH, IDLE: nothing was asked; WRITING: client not reading */
      http__conn_close(c, TT_ETIMEDOUT);
  }
}

/* Sets the deadline of the current state. The uv timer is only re-armed
 * when the new deadline is earlier than the one it is armed for; a later
 * deadline is picked up when it fires. On a busy keep-alive connection this
 * makes the per-request cost a field store instead of timer-heap updates. */
void http__conn_timer(tt_http_conn *c, int64_t ms) {
  if (CF(c, C_CLOSING)) return;
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
void http__req_reset(tt_http_conn *c) {
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
  memset(&c->rq, 0, sizeof c->rq); /* every request field, in one step */
  c->rq.flags = RQ_KEEP_ALIVE;
  c->rq.body_limit = c->srv->cfg.max_body_bytes;
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  tt_http_conn *c = st->data;
  if (nread < 0) http__conn_close(c, 0);
  c->rpos = c->rlen = 0; /* discard */
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  (void)r;
  (void)status;
}

void http__conn_linger(tt_http_conn *c) {
  c->state = ST_LINGER;
  c->deadline = 0;
  c->rpos = c->rlen = 0;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, http__on_alloc, on_linger_read) != 0) {
    http__conn_close(c, 0);
    return;
  }
  C_ON(c, C_READING);
  uv_timer_start(&c->timer, on_timeout, (uint64_t)c->srv->cfg.linger_ms, 0);
  c->timer_due = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.linger_ms;
  c->deadline = c->timer_due;
}

/* The response (or stream) has been fully written. */
void http__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
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

void http__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  tt_http_conn *c = st->data;
  if (nread == 0) return;
  if (nread < 0) {
    /* EOF while a request is being answered means the client left (as
     * nginx reads it): the handler hears it through on_done */
    if (nread == UV_ENOBUFS) { /* buffer full of pipelined bytes: wait for the response */
      uv_read_stop(st);
      C_OFF(c, C_READING);
      return;
    }
    http__conn_close(c, nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  c->rlen += (size_t)nread;
  if (c->state == ST_BODY) http__conn_timer(c, c->srv->cfg.body_timeout_ms);
  http__conn_parse(c);
  if (!CF(c, C_CLOSING) && CF(c, C_READING) && RQ(c, RQ_STREAM_BODY) && RQ(c, RQ_BODY_PAUSED) && c->state == ST_BODY) {
    uv_read_stop(st);
    C_OFF(c, C_READING);
  }
}
