/* server.c — tintype's HTTP/1.1 engine, the server side: libuv for I/O,
 * llhttp for parsing (src/http/internal.h). The listener (inherited from
 * the supervisor, or SO_REUSEPORT), accepting, the 503 at
 * --max-connections once no idle connection can be reclaimed, the
 * per-loop flush of the log and of deferred completions, and the drain
 * (Connection: close, health check 503, listener closed, idle connections
 * closed, a deadline for the rest). Neighbours: router.c picks handlers,
 * src/api/ holds them (the front-end included), supervisor.c hands us the
 * listening socket. */
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
    if (!CF(c, C_CLOSING) && (c->state == ST_IDLE || c->state == ST_FRESH) && c->rpos == c->rlen &&
        (!oldest || c->idle_since < oldest->idle_since))
      oldest = c;
  if (!oldest) return 0;
  http__conn_close(oldest, 0);
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
    http__conn_close(c, 0);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  tt_arena_init(&c->arena, c->arena_first, sizeof c->arena_first);
  http__req_reset(c);
  c->state = ST_FRESH;
  c->idle_since = uv_now(s->loop);
  http__conn_timer(c, s->cfg.header_timeout_ms);
  if (uv_read_start((uv_stream_t *)&c->tcp, http__on_alloc, http__on_read) == 0) C_ON(c, C_READING);
}

static void on_prepare(uv_prepare_t *p) {
  tt_http_server *s = p->data;
  while (s->finishing) {
    tt_http_conn *c = s->finishing;
    s->finishing = c->finish_next;
    C_OFF(c, C_FINISH_QUEUED);
    if (CF(c, C_FINISH_PENDING))
      http__run_finish(c);
    else if (CF(c, C_CLOSING) && c->handles_open == 0 && !CF(c, C_HANDLER_OWNS))
      http__conn_free(c);
  }
  tt_log_flush();
}

int tt_http_server_new(uv_loop_t *loop, const tt_config *cfg, tt_router *router, tt_http_server **out) {
  tt_http_server *s = calloc(1, sizeof *s);
  if (!s) return TT_ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  s->router = router;
  http__parser_settings(&s->settings);
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

void http__server_check_drained(tt_http_server *s) {
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
  for (tt_http_conn *c = s->conns; c; c = c->next) http__conn_close(c, TT_ECANCELED);
  http__server_check_drained(s);
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
    if ((c->state == ST_FRESH || c->state == ST_IDLE) && c->rlen == c->rpos) http__conn_close(c, 0);
  uv_timer_start(&s->drain_timer, on_shutdown_deadline, (uint64_t)s->cfg.shutdown_timeout_ms, 0);
  http__server_check_drained(s);
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
  for (tt_http_conn *c = s->conns; c; c = c->next) http__conn_close(c, TT_ECANCELED);
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
