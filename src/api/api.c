/* api.c — the API role of one process: a libuv loop, the router built
 * from the route groups of cfg->routes, the HTTP server on the listening
 * socket the supervisor handed over, and SIGTERM/SIGINT -> drain -> exit 0.
 *
 * Route groups let one ALB target group serve one prefix (DESIGN §1). The
 * health check (GET / and /index.html) is served by every API process
 * whatever its groups: the load balancer checks each target group on it. */
#include "tintype/api.h"

#include "api_internal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tintype/error.h"
#include "tintype/http.h"
#include "tintype/log.h"
#include "tintype/supervisor.h"
#include "tintype/web.h"


/* The OpenAPI document is the embedded web/openapi.json. */
static void openapi_handler(tt_http_req *req, void *ud) {
  (void)ud;
  const tt_web_asset *a = tt_web_find("/openapi.json", 13);
  if (!a) {
    tt_http_respond_problem(req, 404, "no OpenAPI document in this build");
    return;
  }
  tt_http_add_header(req, "ETag", a->etag);
  tt_http_add_header(req, "Cache-Control", "no-cache");
  tt_http_respond(req, 200, "application/json", a->data, a->len);
}

int tt_api_register(tt_router *r, const char *groups, tt_api *api, char *err, size_t errlen) {
  int rc = tt_router_add(r, TT_HTTP_GET, "/", tt_api_web_handler, NULL, 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/openapi.json", openapi_handler, NULL, 0);
  if (!rc) rc = api_register_metrics(r, api);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/index.html", tt_api_web_handler, NULL, 0);
  if (rc) return rc;
  char list[256];
  snprintf(list, sizeof list, "%s", groups);
  for (char *save = NULL, *g = strtok_r(list, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
    while (*g == ' ') g++;
    if (!strcmp(g, "web")) {
      rc = tt_router_add(r, TT_HTTP_GET, "/*", tt_api_web_handler, NULL, 0);
    } else if (!strcmp(g, "users")) {
      rc = api_register_users(r, api);
    } else if (!strcmp(g, "jobs")) {
      rc = api_register_jobs(r, api);
    } else if (!strcmp(g, "images")) {
      rc = api_register_images(r, api);
    } else {
      snprintf(err, errlen, "unknown route group '%s' (known: users, images, jobs, web)", g);
      return TT_EINVAL;
    }
    if (rc == TT_EEXIST) rc = TT_OK; /* a group named twice */
    if (rc) {
      snprintf(err, errlen, "cannot register routes of '%s': %s", g, tt_strerror(rc));
      return rc;
    }
  }
  return TT_OK;
}

typedef struct {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  tt_http_server *server;
} api_proc;

static void on_drained(tt_http_server *s, void *ud) {
  api_proc *p = ud;
  (void)s;
  uv_signal_stop(&p->sigterm);
  uv_signal_stop(&p->sigint);
  uv_stop(&p->loop);
}

static void on_signal(uv_signal_t *h, int sig) {
  api_proc *p = h->data;
  /* one drain is enough: later SIGTERM/SIGINT (the supervisor forwards the
   * terminal's Ctrl-C as SIGTERM) stay pending instead of killing the
   * process between its drain and its exit */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  tt_logf(TT_LOG_INFO, "%s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  tt_http_server_drain(p->server, on_drained, p);
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int tt_api_check_config(const tt_config *cfg, char *err, size_t errlen) {
  if (strcmp(cfg->signup, "open") && strcmp(cfg->signup, "closed")) {
    snprintf(err, errlen, "--signup must be open or closed, not %s", cfg->signup);
    return TT_EINVAL;
  }
  tt_netpolicy p;
  char why[200];
  if (tt_netpolicy_init(&p, cfg->trusted_proxies, why, sizeof why)) {
    snprintf(err, errlen, "--trusted-proxies: %s", why);
    return TT_EINVAL;
  }
  return TT_OK;
}

int tt_api_child_main(const tt_config *cfg, int listen_fd, int index, void *ud) {
  (void)ud;
  (void)index;
  api_proc p;
  memset(&p, 0, sizeof p);
  char err[256];
  if (uv_loop_init(&p.loop)) return 1;
  static tt_api api; /* one per process */
  memset(&api, 0, sizeof api);
  api.loop = &p.loop;
  api.cfg = cfg;
  if (tt_netpolicy_init(&api.trusted, cfg->trusted_proxies, err, sizeof err)) { /* checked in main */
    tt_logf(TT_LOG_ERROR, "--trusted-proxies: %s", err);
    return 2;
  }
  int brc;
  if ((brc = tt_store_open(&p.loop, cfg->store_url, &api.store)) ||
      (brc = tt_queue_open(&p.loop, cfg->queue_url, &api.queue)) ||
      (brc = tt_blobs_open(&p.loop, cfg->blobs_url, &api.blobs)) ||
      (brc = tt_secret_load(cfg->secret, cfg->data_dir, api.secret, &api.secret_len))) {
    tt_logf(TT_LOG_ERROR, "cannot open the backends (store %s, queue %s, blobs %s): %s", cfg->store_url,
            cfg->queue_url, cfg->blobs_url, tt_strerror(brc));
    return 1;
  }
  tt_router *router = tt_router_new();
  if (!router) return 1;
  if (tt_api_register(router, cfg->routes, &api, err, sizeof err)) {
    tt_logf(TT_LOG_ERROR, "%s", err);
    tt_router_free(router);
    return 2;
  }
  if (listen_fd < 0) {
    listen_fd = tt_listen_socket(cfg->host, (int)cfg->port, (int)cfg->backlog, 1);
    if (listen_fd < 0) {
      tt_logf(TT_LOG_ERROR, "cannot listen on port %lld: %s", (long long)cfg->port, tt_strerror(listen_fd));
      return 1;
    }
  }
  int rc = tt_http_server_new(&p.loop, cfg, router, &p.server);
  if (!rc) rc = tt_http_server_listen_fd(p.server, listen_fd);
  if (rc) {
    tt_logf(TT_LOG_ERROR, "cannot serve: %s", tt_strerror(rc));
    return 1;
  }
  uv_signal_init(&p.loop, &p.sigterm);
  uv_signal_init(&p.loop, &p.sigint);
  p.sigterm.data = p.sigint.data = &p;
  uv_signal_start(&p.sigterm, on_signal, SIGTERM);
  uv_signal_start(&p.sigint, on_signal, SIGINT);
  tt_supervisor_child_ready();

  uv_run(&p.loop, UV_RUN_DEFAULT);

  tt_http_server_free(p.server);
  tt_store_close(api.store, NULL, NULL);
  tt_queue_close(api.queue, NULL, NULL);
  tt_blobs_close(api.blobs, NULL, NULL);
  uv_run(&p.loop, UV_RUN_DEFAULT); /* let the backends finish and close */
  uv_walk(&p.loop, close_walk, NULL);
  uv_run(&p.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&p.loop)) tt_logf(TT_LOG_WARN, "loop closed with handles open");
  tt_router_free(router);
  tt_log_flush();
  return 0;
}
