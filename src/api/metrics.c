/* metrics.c (api) — GET /metrics: Prometheus text. Open to loopback
 * clients (a scraper on the instance), otherwise the admin key. Adds the
 * queue depths, read from the queue backend at scrape time, to the shared
 * counters of include/tintype/metrics.h. */
#include <netinet/in.h>
#include <string.h>

#include "api_internal.h"
#include "tintype/error.h"
#include "tintype/metrics.h"
#include "tintype/router.h"

static const char *queues[] = {TT_QUEUE_JOBS, TT_QUEUE_IMAGES};

typedef struct scrape {
  api_call *c;
  tt_buf out;
  int next;
} scrape;

static void next_queue(scrape *s);

static void on_counts(void *ud, int status, const tt_queue_counts *k) {
  scrape *s = ud;
  const char *q = queues[s->next - 1];
  if (status == 0) {
    tt_buf_printf(&s->out, "tintype_queue_messages{queue=\"%s\",state=\"visible\"} %lld\n", q, (long long)k->visible);
    tt_buf_printf(&s->out, "tintype_queue_messages{queue=\"%s\",state=\"in_flight\"} %lld\n", q,
                  (long long)k->in_flight);
    tt_buf_printf(&s->out, "tintype_queue_messages{queue=\"%s\",state=\"delayed\"} %lld\n", q, (long long)k->delayed);
    tt_buf_printf(&s->out, "tintype_queue_messages{queue=\"%s\",state=\"dead\"} %lld\n", q, (long long)k->dead);
  }
  next_queue(s);
}

static void next_queue(scrape *s) {
  if (s->next < (int)(sizeof queues / sizeof queues[0])) {
    tt_queue_counts_get(s->c->api->queue, queues[s->next++], on_counts, s);
    return;
  }
  char *body = tt_arena_strndup(s->c->req->arena, s->out.data ? s->out.data : "", s->out.len);
  size_t len = s->out.len;
  tt_buf_free(&s->out);
  if (!body) {
    tt_http_respond_problem(s->c->req, 500, "out of memory");
    return;
  }
  tt_http_respond(s->c->req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static void scrape_op(api_call *c) {
  if (!c->is_admin) {
    api_problem(c->req, 403, "forbidden", "metrics are open to loopback clients and the admin key");
    return;
  }
  scrape *s = tt_arena_calloc(c->req->arena, sizeof *s);
  s->c = c;
  tt_metrics_render(&s->out);
  tt_buf_puts(&s->out,
              "# HELP tintype_queue_messages Messages in each queue by state.\n"
              "# TYPE tintype_queue_messages gauge\n");
  next_queue(s);
}

static int loopback(tt_http_req *req) {
  struct sockaddr_storage ss;
  if (tt_http_req_peer(req, &ss)) return 0;
  if (ss.ss_family == AF_INET)
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family == AF_INET6) {
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

static void metrics_handler(tt_http_req *req, void *ud) {
  tt_api *api = ud;
  if (loopback(req)) {
    api_call *c = tt_arena_calloc(req->arena, sizeof *c);
    c->req = req;
    c->api = api;
    c->is_admin = 1;
    scrape_op(c);
    return;
  }
  api_auth(req, api, scrape_op);
}

int api_register_metrics(tt_router *r, tt_api *api) {
  return tt_router_add(r, TT_HTTP_GET, "/metrics", metrics_handler, api, 0);
}
