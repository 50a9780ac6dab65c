/* cdp.c — the DevTools client of cdp.h on libwebsockets.
 *
 * One lws context per connection, on the caller's loop (foreign libuv
 * loop). Outgoing messages wait in a FIFO and are written one per
 * "writeable" callback with LWS_PRE headroom; incoming fragments collect
 * until the final one and are parsed with jansson. A 50 ms timer fails
 * commands past their deadline. The context is destroyed from that timer,
 * never from inside a libwebsockets callback. chromium.c starts the
 * browser whose address this connects to; render.c drives it. */
#include "tintype/cdp.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/log.h"

typedef struct pending {
  struct pending *next;
  long id;
  uint64_t deadline;
  tt_cdp_result_cb cb;
  void *ud;
} pending;

typedef struct outmsg {
  struct outmsg *next;
  size_t len;
  unsigned char data[]; /* LWS_PRE + len */
} outmsg;

struct tt_cdp {
  uv_loop_t *loop;
  struct lws_context *ctx;
  struct lws *wsi;
  uv_timer_t timer;
  tt_cdp_connect_cb on_connect;
  tt_cdp_event_cb on_event;
  tt_cdp_closed_cb on_closed;
  void *ud;
  pending *pend;
  outmsg *out_head, *out_tail;
  tt_buf in;
  long next_id;
  int connected, closing, destroyed, close_status, reported;
  char host[64], path[512];
  int port;
};

static void fail_all(tt_cdp *c, int status) {
  while (c->pend) {
    pending *p = c->pend;
    c->pend = p->next;
    p->cb(c, status, NULL, p->ud);
    free(p);
  }
  while (c->out_head) {
    outmsg *m = c->out_head;
    c->out_head = m->next;
    free(m);
  }
  c->out_tail = NULL;
}

static void dispatch(tt_cdp *c, const char *text, size_t len) {
  json_error_t e;
  json_t *j = json_loadb(text, len, 0, &e);
  if (!j) {
    tt_logf(TT_LOG_WARN, "cdp: unparsable message: %s", e.text);
    return;
  }
  json_t *id = json_object_get(j, "id");
  if (json_is_integer(id)) {
    long want = (long)json_integer_value(id);
    for (pending **pp = &c->pend; *pp; pp = &(*pp)->next) {
      if ((*pp)->id != want) continue;
      pending *p = *pp;
      *pp = p->next;
      json_t *err = json_object_get(j, "error");
      if (err)
        p->cb(c, TT_EIO, err, p->ud);
      else
        p->cb(c, 0, json_object_get(j, "result"), p->ud);
      free(p);
      break;
    }
  } else if (c->on_event) {
    const char *m = json_string_value(json_object_get(j, "method"));
    if (m) c->on_event(c, m, json_string_value(json_object_get(j, "sessionId")), json_object_get(j, "params"), c->ud);
  }
  json_decref(j);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  (void)user;
  struct lws_context *ctx = lws_get_context(wsi);
  tt_cdp *c = ctx ? lws_context_user(ctx) : NULL;
  if (!c) return 0;
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      c->connected = 1;
      if (c->on_connect) c->on_connect(c, 0, c->ud);
      if (c->out_head) lws_callback_on_writable(wsi);
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      outmsg *m = c->out_head;
      if (!m || c->closing) break;
      c->out_head = m->next;
      if (!c->out_head) c->out_tail = NULL;
      int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
      free(m);
      if (n < 0) return -1;
      if (c->out_head) lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
      tt_buf_append(&c->in, in, len);
      if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        dispatch(c, c->in.data, c->in.len);
        tt_buf_reset(&c->in);
      }
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      c->wsi = NULL;
      if (!c->connected && c->on_connect) c->on_connect(c, TT_EIO, c->ud);
      c->close_status = TT_EIO;
      tt_cdp_close(c);
      break;
    case LWS_CALLBACK_CLIENT_CLOSED:
      c->wsi = NULL;
      if (!c->closing) c->close_status = TT_EIO; /* the browser went away */
      tt_cdp_close(c);
      break;
    default: break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {{"tintype-cdp", callback, 0, 1 << 20, 0, NULL, 0},
                                                 {NULL, NULL, 0, 0, 0, NULL, 0}};

static void on_timer_closed(uv_handle_t *h) {
  tt_cdp *c = h->data;
  tt_cdp_closed_cb cb = c->on_closed;
  void *ud = c->ud;
  int st = c->close_status;
  if (cb) cb(c, st, ud);
  tt_buf_free(&c->in);
  free(c);
}

static void on_tick(uv_timer_t *t) {
  tt_cdp *c = t->data;
  if (c->closing) {
    /* on a foreign loop lws destroys in two steps: the first call closes
     * its handles, the second (once the loop has run their close
     * callbacks) frees the context. Never from inside an lws callback. */
    if (c->destroyed == 0) {
      fail_all(c, TT_ECANCELED);
      lws_context_destroy(c->ctx);
    } else if (c->destroyed == 2) {
      lws_context_destroy(c->ctx);
      c->ctx = NULL;
      uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    }
    c->destroyed++;
    return;
  }
  uint64_t now = uv_now(c->loop);
  for (pending **pp = &c->pend; *pp;) {
    pending *p = *pp;
    if (p->deadline > now) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    p->cb(c, TT_ETIMEDOUT, NULL, p->ud);
    free(p);
  }
}

int tt_cdp_connect(uv_loop_t *loop, const char *ws_url, tt_cdp_connect_cb on_connect, tt_cdp_event_cb on_event,
                   tt_cdp_closed_cb on_closed, void *ud, tt_cdp **out) {
  tt_cdp *c = calloc(1, sizeof *c);
  if (!c) return TT_ENOMEM;
  if (sscanf(ws_url, "ws://%63[^:/]:%d%511s", c->host, &c->port, c->path) != 3) {
    free(c);
    return TT_EINVAL;
  }
  c->loop = loop;
  c->on_connect = on_connect;
  c->on_event = on_event;
  c->on_closed = on_closed;
  c->ud = ud;
  c->next_id = 1;
  lws_set_log_level(LLL_ERR, NULL);
  void *loops[1] = {loop};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = loops;
  info.user = c;
  c->ctx = lws_create_context(&info);
  if (!c->ctx) {
    free(c);
    return TT_EIO;
  }
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = c->ctx;
  ci.address = c->host;
  ci.port = c->port;
  ci.path = c->path;
  ci.host = c->host; /* no Origin: Chromium refuses WebSocket origins it was not told to allow */
  ci.local_protocol_name = "tintype-cdp";
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, on_tick, 50, 50);
  c->wsi = lws_client_connect_via_info(&ci);
  if (!c->wsi && !c->closing) {
    c->close_status = TT_EIO;
    tt_cdp_close(c);
  }
  *out = c;
  return TT_OK;
}

int tt_cdp_send(tt_cdp *c, const char *session_id, const char *method, json_t *params, int timeout_ms,
                tt_cdp_result_cb cb, void *ud) {
  if (c->closing) {
    json_decref(params);
    return TT_ECANCELED;
  }
  long id = c->next_id++;
  json_t *msg = json_pack("{s:I, s:s}", "id", (json_int_t)id, "method", method);
  if (params) json_object_set_new(msg, "params", params);
  if (session_id) json_object_set_new(msg, "sessionId", json_string(session_id));
  char *s = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!s) return TT_ENOMEM;
  size_t n = strlen(s);
  outmsg *m = malloc(sizeof *m + LWS_PRE + n);
  pending *p = calloc(1, sizeof *p);
  if (!m || !p) {
    free(s);
    free(m);
    free(p);
    return TT_ENOMEM;
  }
  memcpy(m->data + LWS_PRE, s, n);
  m->len = n;
  m->next = NULL;
  free(s);
  if (c->out_tail)
    c->out_tail->next = m;
  else
    c->out_head = m;
  c->out_tail = m;
  p->id = id;
  p->cb = cb;
  p->ud = ud;
  p->deadline = uv_now(c->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 30000);
  p->next = c->pend;
  c->pend = p;
  if (c->connected && c->wsi) lws_callback_on_writable(c->wsi);
  return TT_OK;
}

void tt_cdp_close(tt_cdp *c) {
  if (!c || c->closing) return;
  c->closing = 1;
  /* the next tick (never inside an lws callback) destroys the context */
}
