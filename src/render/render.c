/* render.c — the render engine (render.h): one Chromium, many shots.
 *
 * The engine owns the browser (chromium.c) and its DevTools connection
 * (cdp.c), restarts both when the browser dies, and runs each shot as a
 * little state machine of CDP commands on the loop:
 *
 *   context   Target.createBrowserContext (its own proxy: netproxy.c) →
 *             Target.createTarget about:blank → Target.attachToTarget
 *             (flattened session) → Page/Network enable, lifecycle events,
 *             device metrics, dark mode, touch (sent back to back: one
 *             session runs them in order, so no round trip is waited for)
 *   navigate  Page.navigate; the main frame's lifecycle event named by
 *             wait_until for the navigation's loaderId; the main document's
 *             Network.responseReceived gives HTTP status and final URL
 *   wait      wait_for: one Runtime.evaluate awaiting a promise that
 *             resolves when the selector matches; then delay_ms
 *   capture   Page.captureScreenshot (full page and selector: a clip
 *             beyond the viewport); base64 decoded here
 *   dispose   Target.disposeBrowserContext, then the proxy closes; or, for
 *             a job of an owner with isolation_owner, the context is reset
 *             and kept warm for that owner's next job, which then starts at
 *             navigate (warm contexts, below)
 *
 * timeout_ms bounds navigate + wait; each command has its own timeout too.
 * A shot holds a reference per command in flight and per open timer, and is
 * freed when the last one is gone, so late answers never touch freed memory. */
#include "tintype/render.h"

#include <ctype.h>
#include <curl/curl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tintype/alloc.h"
#include "tintype/cdp.h"
#include "tintype/chromium.h"
#include "tintype/crypto.h"
#include "tintype/defer.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/netproxy.h"

#define CMD_TIMEOUT_MS 15000     /* any one setup / capture command */
#define CAPTURE_TIMEOUT_MS 30000 /* a tall full page takes a while to encode */
#define RESTART_MAX_DELAY_MS 10000

enum { B_STARTING, B_READY, B_DOWN, B_CLOSING };
enum { LC_DCL = 1, LC_LOAD = 2, LC_IDLE = 4 };
enum { P_WAITING, P_CONTEXT, P_READY, P_NAVIGATE, P_WAIT, P_CAPTURE, P_DONE };
enum { W_BUSY, W_RESET, W_IDLE, W_RETIRED };

typedef struct shot shot;
typedef struct wctx wctx;

/* A warm browser context (--isolation owner): its page, flattened session
 * and long-lived policy proxy, bound to one owner for its whole life. */
struct wctx {
  tt_render *r;
  wctx *next, *prev; /* r->warm, most recently used first */
  char owner[64];
  char ctx[128], target[128], session[128];
  tt_netproxy *proxy;
  int state;
  int jobs;  /* jobs it has served, the current one included */
  int refs;  /* reset and dispose commands in flight, and the shot running in it */
  int reset_failed;
  int fetch_on; /* a job turned request interception on: the reset turns it off */
  uint64_t last_used, reset_started;
  shot *next_shot; /* a shot of the same owner waiting for the reset to end */
  char site[300];  /* scheme://host of its last job's page: its renderer may still be alive */
};

struct tt_render {
  uv_loop_t *loop;
  char chromium[1024];
  char chromium_flags[1024];
  int devtools_port; /* the browser's: never reachable by a page */
  tt_netpolicy policy;
  int max_full_page_height;
  int use_spare;
  tt_chromium *browser;
  tt_cdp *cdp;
  int bstate;
  int restarts, quick_deaths, started_once;
  uint64_t browser_started;
  uv_timer_t restart_timer;
  shot *shots; /* every shot not yet answered */
  shot *spare; /* a context made ahead, waiting for the next shot */
  int isolation_owner, ctx_max_jobs, max_contexts;
  uint64_t ctx_idle_ms;
  wctx *warm;
  int nwarm;
  uv_timer_t idle_timer;
  tt_render_close_cb close_cb;
  void *close_ud;
  int cdps;          /* DevTools connections not yet reported closed */
  tt_render_phase_cb on_phase; /* tt_render_on_phase: shots report loading, waiting, capturing */
  int timer_closing; /* the last step of freeing the engine: timers still closing */
};

struct shot {
  tt_render *r;
  shot *next, *prev;
  tt_options o;
  tt_render_cb cb;
  void *ud;
  int phase, refs, answered;
  int spare; /* made ahead for a shot not asked for yet: no caller */
  char owner[64]; /* "" or the owner whose warm contexts it may use */
  wctx *w;        /* the warm context it runs in */
  wctx *wait_w;   /* the warm context whose reset it waits for */
  tt_cdp *cdp; /* the connection this shot's commands went to */
  tt_netproxy *proxy;
  uv_timer_t deadline, delay;
  int timers_open;
  char ctx[128], target[128], session[128], loader[128];
  char ev_loader[128];
  unsigned ev_mask;
  int navigated;
  uint64_t t0, t_start, t_ctx, t_nav, t_wait, t_js;
  char blocked_host[256], blocked_ip[64], blocked_why[32];
  int cancel;             /* tt_render_cancel: its answer is due */
  int crashed;            /* Inspector.targetCrashed */
  int nav_blocked;        /* the main document is the proxy's answer: 1 refused, 2 unreachable */
  int refused;            /* the job failed as blocked by the network policy */
  char proxy_error[256];  /* that answer's reason */
  char pdf_stream[128];   /* format pdf: the IO stream handle printToPDF gave */
  char origin[512];       /* the page's own origin (headers, basic_auth go there only) */
  int fetch_on;           /* request interception on for this job */
  int auth_given;         /* basic_auth answers so far */
  size_t pdf_cap;         /* bytes allocated at res.data while it is read */
  tt_render_result res;
};

static void start_browser(tt_render *r);
static void shot_step_context(shot *s);
static void site_of(const char *url, char *out, size_t n);
static void shot_fail(shot *s, int status, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static double ms_since(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) / 1e6 : 0; }

/* tells the shot's caller where it is (a spare has no caller yet) */
static void report_phase(shot *s, const char *phase) {
  if (!s->spare && !s->answered && s->r->on_phase) s->r->on_phase(s->ud, phase);
}

void tt_render_on_phase(tt_render *r, tt_render_phase_cb cb) { r->on_phase = cb; }

/* ---- shot lifetime ------------------------------------------------------ */

static void shot_unlink(shot *s) {
  tt_render *r = s->r;
  if (s->prev) s->prev->next = s->next;
  else if (r->shots == s) r->shots = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

static void shot_maybe_free(shot *s) {
  if (!s->answered || s->refs || s->timers_open) return;
  if (s->proxy) tt_netproxy_close(s->proxy);
  free(s->res.data);
  free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  shot *s = h->data;
  s->timers_open--;
  shot_maybe_free(s);
}

static void on_disposed(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  (void)status;
  (void)j;
  shot *s = ud;
  s->refs--;
  shot_maybe_free(s);
}

static void release_context(shot *s, int status);

/* answers the caller once, then lets the browser context go (or keeps it
 * warm for the owner's next job) */
static void shot_answer(shot *s, int status) {
  if (s->answered) return;
  s->answered = 1;
  s->phase = P_DONE;
  shot_unlink(s);
  if (s->wait_w) {
    if (s->wait_w->next_shot == s) s->wait_w->next_shot = NULL;
    s->wait_w = NULL;
  }
  uint64_t now = uv_hrtime();
  s->res.t.total = ms_since(s->t0, now);
  uv_close((uv_handle_t *)&s->deadline, on_timer_closed);
  uv_close((uv_handle_t *)&s->delay, on_timer_closed);
  release_context(s, status);
  if (s->spare) {
    if (s->r->spare == s) s->r->spare = NULL;
  } else {
    s->cb(s->ud, status, &s->res);
  }
  shot_maybe_free(s);
}

static void shot_fail(shot *s, int status, int retryable, const char *fmt, ...) {
  if (s->answered) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->res.error, sizeof s->res.error, fmt, ap);
  va_end(ap);
  s->res.retryable = retryable;
  shot_answer(s, status);
}

/* a command of this shot; its callback must start with CMD_ENTER */
static int shot_send(shot *s, const char *session, const char *method, json_t *params, int timeout_ms,
                     tt_cdp_result_cb cb) {
  int rc = tt_cdp_send(s->cdp, session, method, params, timeout_ms, cb, s);
  if (rc) {
    shot_fail(s, TT_EIO, 1, "the browser connection is gone (%s)", tt_strerror(rc));
    return rc;
  }
  s->refs++;
  return 0;
}

/* Releases the command's reference; returns 1 when the shot is still live
 * and the answer should be looked at. */
static int cmd_enter(shot *s, int status, json_t *j, const char *what) {
  s->refs--;
  if (s->answered) {
    shot_maybe_free(s);
    return 0;
  }
  if (status == TT_OK) return 1;
  if (status == TT_ETIMEDOUT)
    shot_fail(s, TT_EIO, 1, "the browser did not answer %s in time", what);
  else if (status == TT_ECANCELED)
    shot_fail(s, TT_EIO, 1, "the browser connection closed during %s", what);
  else {
    const char *m = json_string_value(json_object_get(j, "message"));
    shot_fail(s, TT_EIO, 1, "%s failed: %s", what, m ? m : tt_strerror(status));
  }
  return 0;
}


/* ---- warm contexts (--isolation owner) ---------------------------------- */

/* A context that served a job of owner X is reset and kept for X's next
 * job: about:blank (the page and its scripts are gone), then every origin
 * its proxy saw cleared (Storage.clearDataForOrigin "all": local and
 * session storage, IndexedDB, Cache Storage, service workers, ...), the
 * context's cookies, HTTP cache and permissions, and the
 * proxy's connections closed and counters zeroed. Any failure retires it,
 * as do a timeout or crash of its job, --context-max-jobs,
 * --context-idle-ms and --max-contexts (least recently used first). A
 * context never serves another owner. */

static int warm_send(wctx *w, const char *session, const char *method, json_t *params, tt_cdp_result_cb cb) {
  tt_render *r = w->r;
  if (!r->cdp) {
    json_decref(params);
    return TT_ECANCELED;
  }
  int rc = tt_cdp_send(r->cdp, session, method, params, CMD_TIMEOUT_MS, cb, w);
  if (!rc) w->refs++;
  return rc;
}

static void warm_maybe_free(wctx *w) {
  if (w->state == W_RETIRED && !w->refs) free(w);
}

static void warm_unlink(wctx *w) {
  tt_render *r = w->r;
  if (w->prev) w->prev->next = w->next;
  else if (r->warm == w) r->warm = w->next;
  if (w->next) w->next->prev = w->prev;
  w->next = w->prev = NULL;
}

static void warm_to_front(wctx *w) {
  tt_render *r = w->r;
  warm_unlink(w);
  w->next = r->warm;
  if (r->warm) r->warm->prev = w;
  r->warm = w;
}

static void on_warm_cmd(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  (void)status;
  (void)j;
  wctx *w = ud;
  w->refs--;
  warm_maybe_free(w);
}

static void shot_step_context(shot *s);

static void warm_retire(wctx *w, const char *why) {
  tt_render *r = w->r;
  if (w->state == W_RETIRED) return;
  shot *q = w->next_shot;
  w->next_shot = NULL;
  warm_unlink(w);
  r->nwarm--;
  w->state = W_RETIRED;
  tt_metrics_add(TT_M_CONTEXTS_RETIRED, 1);
  tt_logf(TT_LOG_DEBUG, "render: warm context retired after %d jobs (%s)", w->jobs, why);
  if (w->proxy) tt_netproxy_close(w->proxy);
  w->proxy = NULL;
  if (r->cdp && r->bstate == B_READY)
    warm_send(w, NULL, "Target.disposeBrowserContext", json_pack("{s:s}", "browserContextId", w->ctx), on_warm_cmd);
  warm_maybe_free(w);
  if (q) {
    q->wait_w = NULL; /* a fresh context instead; or it waits for the next browser */
    if (!q->answered && r->cdp && r->bstate == B_READY) shot_step_context(q);
  }
}

static void warm_drop_all(tt_render *r, const char *why) {
  while (r->warm) warm_retire(r->warm, why);
}

static void on_blocked(void *ud, const char *host, int port, const char *ip, const char *why);
static void shot_navigate(shot *s);

/* the shot runs in w from here: no context, page or session to make */
static void shot_take_warm(shot *s, wctx *w) {
  tt_render *r = s->r;
  w->state = W_BUSY;
  w->jobs++;
  w->refs++; /* the shot's, until release_context */
  w->next_shot = NULL;
  warm_to_front(w);
  s->wait_w = NULL;
  s->w = w;
  snprintf(s->ctx, sizeof s->ctx, "%s", w->ctx);
  snprintf(s->target, sizeof s->target, "%s", w->target);
  snprintf(s->session, sizeof s->session, "%s", w->session);
  s->proxy = w->proxy;
  tt_netproxy_rebind(w->proxy, on_blocked, s);
  s->cdp = r->cdp;
  s->t_start = uv_hrtime();
  s->res.t.queued = ms_since(s->t0, s->t_start);
  s->res.context_jobs = w->jobs;
  tt_metrics_add(TT_M_CONTEXTS_REUSED, 1);
  shot_navigate(s);
}

static void warm_reset_done(wctx *w) {
  tt_render *r = w->r;
  if (w->reset_failed) {
    warm_retire(w, "reset failed");
    return;
  }
  w->state = W_IDLE;
  w->last_used = uv_hrtime();
  tt_logf(TT_LOG_DEBUG, "render: warm context reset in %.1f ms", ms_since(w->reset_started, w->last_used));
  shot *q = w->next_shot;
  if (q && !q->answered && r->cdp && r->bstate == B_READY) shot_take_warm(q, w);
}

static void on_reset_step(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  wctx *w = ud;
  w->refs--;
  if (w->state == W_RETIRED) {
    warm_maybe_free(w);
    return;
  }
  if (status) {
    const char *m = json_string_value(json_object_get(j, "message"));
    tt_logf(TT_LOG_WARN, "render: resetting a warm context failed: %s", m ? m : tt_strerror(status));
    w->reset_failed = 1;
  }
  if (!w->refs) warm_reset_done(w);
}

static void clear_host(void *ud, const char *host, int port, int tunnel) {
  wctx *w = ud;
  /* a tunnel carries https or ws; a forwarded request is plain http */
  static const char *schemes[2] = {"https", "http"};
  for (int i = tunnel ? 0 : 1; i < 2; i++) {
    char origin[400];
    int dflt = i == 0 ? 443 : 80;
    const char *l = strchr(host, ':') ? "[" : "", *rb = *l ? "]" : "";
    if (port == dflt)
      snprintf(origin, sizeof origin, "%s://%s%s%s", schemes[i], l, host, rb);
    else
      snprintf(origin, sizeof origin, "%s://%s%s%s:%d", schemes[i], l, host, rb, port);
    if (warm_send(w, w->session, "Storage.clearDataForOrigin",
                  json_pack("{s:s, s:s}", "origin", origin, "storageTypes", "all"), on_reset_step))
      w->reset_failed = 1;
  }
}

static void on_reset_blank(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  wctx *w = ud;
  w->refs--;
  if (w->state == W_RETIRED) {
    warm_maybe_free(w);
    return;
  }
  const char *err = json_string_value(json_object_get(j, "errorText"));
  if (status || (err && *err)) {
    warm_retire(w, "about:blank failed");
    return;
  }
  /* the job's page is gone: clear where it went, and cut what it opened */
  int over = tt_netproxy_hosts(w->proxy, clear_host, w);
  tt_netproxy_reset(w->proxy, NULL, NULL);
  if (over) {
    warm_retire(w, "too many origins to clear");
    return;
  }
  const char *sid = w->session;
  if (warm_send(w, sid, "Network.clearBrowserCookies", NULL, on_reset_step) ||
      warm_send(w, sid, "Network.clearBrowserCache", NULL, on_reset_step) ||
      warm_send(w, NULL, "Browser.resetPermissions", json_pack("{s:s}", "browserContextId", w->ctx), on_reset_step))
    w->reset_failed = 1;
  if (!w->refs) warm_reset_done(w);
}

static void warm_reset(wctx *w) {
  w->state = W_RESET;
  w->reset_failed = 0;
  w->reset_started = uv_hrtime();
  tt_netproxy_rebind(w->proxy, NULL, NULL); /* between jobs: nobody's */
  /* paused requests of the job's page are let go with the interception */
  if (w->fetch_on && warm_send(w, w->session, "Fetch.disable", NULL, on_reset_step)) w->reset_failed = 1;
  w->fetch_on = 0;
  if (warm_send(w, w->session, "Page.navigate", json_pack("{s:s}", "url", "about:blank"), on_reset_blank))
    warm_retire(w, "the browser connection is gone");
}

/* a shot's own context becomes a warm one of its owner; NULL when every
 * warm slot is taken by a context in use */
static wctx *warm_adopt(shot *s) {
  tt_render *r = s->r;
  if (r->nwarm >= r->max_contexts) {
    wctx *lru = NULL;
    for (wctx *w = r->warm; w; w = w->next)
      if (w->state == W_IDLE) lru = w;
    if (!lru) return NULL;
    warm_retire(lru, "max-contexts");
  }
  wctx *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->r = r;
  snprintf(w->owner, sizeof w->owner, "%s", s->owner);
  snprintf(w->ctx, sizeof w->ctx, "%s", s->ctx);
  snprintf(w->target, sizeof w->target, "%s", s->target);
  snprintf(w->session, sizeof w->session, "%s", s->session);
  w->proxy = s->proxy;
  w->fetch_on = s->fetch_on;
  w->jobs = 1;
  w->state = W_BUSY; /* the shot is done with it: no reference of its own */
  w->next = r->warm;
  if (r->warm) r->warm->prev = w;
  r->warm = w;
  r->nwarm++;
  s->proxy = NULL;
  s->ctx[0] = 0;
  return w;
}

/* the shot's context may serve its owner again: the job ended in a way
 * its page caused or in success, with nothing of it still in flight */
static int keep_warm(const shot *s, int status, int jobs) {
  const tt_render *r = s->r;
  if (!r->isolation_owner || !s->owner[0] || s->o.isolation_job || s->spare || !s->session[0]) return 0;
  if (s->refs || s->crashed || jobs >= r->ctx_max_jobs) return 0;
  /* the main document was refused: the browser itself may still ask the
   * refused host (new-headless chromium fetches /favicon.ico of the proxy's
   * answer page after the job ended); a fresh context and proxy keep that
   * out of the owner's next job */
  if (s->nav_blocked || s->refused) return 0;
  return status == TT_OK || status == TT_EINVAL || status == TT_EAUTH;
}

static void release_context(shot *s, int status) {
  tt_render *r = s->r;
  int alive = s->ctx[0] && s->cdp && s->cdp == r->cdp && r->bstate == B_READY;
  wctx *w = s->w;
  s->w = NULL;
  if (w) {
    s->proxy = NULL; /* the warm context's */
    s->ctx[0] = 0;
    w->refs--;
    if (w->state == W_RETIRED) { /* the browser went while the shot ran */
      warm_maybe_free(w);
      return;
    }
    w->fetch_on |= s->fetch_on;
    if (alive && keep_warm(s, status, w->jobs)) {
      site_of(s->res.final_url[0] ? s->res.final_url : s->o.url, w->site, sizeof w->site);
      warm_reset(w);
    }
    else
      warm_retire(w, w->jobs >= r->ctx_max_jobs ? "context-max-jobs" : "the job failed");
    return;
  }
  if (alive && keep_warm(s, status, 1) && (w = warm_adopt(s))) {
    site_of(s->res.final_url[0] ? s->res.final_url : s->o.url, w->site, sizeof w->site);
    warm_reset(w);
    return;
  }
  if (alive && !tt_cdp_send(s->cdp, NULL, "Target.disposeBrowserContext", json_pack("{s:s}", "browserContextId", s->ctx),
                            CMD_TIMEOUT_MS, on_disposed, s))
    s->refs++;
}

/* the owner's most recently used context in state; site non-NULL: only
 * one whose last page was on that site */
static wctx *warm_find(tt_render *r, const char *owner, int state, const char *site) {
  for (wctx *w = r->warm; w; w = w->next)
    if (w->state == state && !strcmp(w->owner, owner) && (state != W_RESET || !w->next_shot) &&
        (!site || !strcmp(w->site, site)))
      return w;
  return NULL;
}

/* Site affinity. A warm context's renderer process is its last page's
 * site's (about:blank between jobs stays in it); a job on another site
 * costs a new renderer (a process start, ~80 ms CPU here). So a job takes,
 * in order: an idle context of its owner that last showed its site; one of
 * those being reset (handed on); a new context while the worker holds
 * fewer than --max-contexts (it serves this site from then on); then any
 * idle context of its owner; then any being reset. */
static void warm_choose(tt_render *r, const char *owner, const char *url, wctx **idle, wctx **wait) {
  char site[300];
  site_of(url, site, sizeof site);
  *idle = *wait = NULL;
  if (site[0]) {
    if ((*idle = warm_find(r, owner, W_IDLE, site)) || (*wait = warm_find(r, owner, W_RESET, site))) return;
    if (r->nwarm < r->max_contexts) return;
  }
  if (!(*idle = warm_find(r, owner, W_IDLE, NULL))) *wait = warm_find(r, owner, W_RESET, NULL);
}

static void on_idle_tick(uv_timer_t *t) {
  tt_render *r = t->data;
  uint64_t now = uv_hrtime();
  wctx *w = r->warm;
  while (w) {
    wctx *n = w->next;
    if (w->state == W_IDLE && now - w->last_used >= r->ctx_idle_ms * 1000000u) warm_retire(w, "context-idle-ms");
    w = n;
  }
}

/* ---- the network policy's proxy ----------------------------------------- */

static void on_blocked(void *ud, const char *host, int port, const char *ip, const char *why) {
  shot *s = ud;
  tt_logf(TT_LOG_INFO, "render: blocked %s:%d (%s, %s) for %s", host, port, ip[0] ? ip : "-", why, s->o.url);
  tt_render_result *res = &s->res; /* blocked_hosts: each host once, up to the limit */
  if (s->answered) return;          /* the browser's own late fetch: nobody's job */
  res->blocked++; /* counted while the proxy is the shot's: a warm proxy is nobody's between jobs */
  int seen = 0;
  for (int i = 0; i < res->nblocked_hosts && !seen; i++) seen = !strcmp(res->blocked_hosts[i], host);
  if (!seen && res->nblocked_hosts < TT_RENDER_BLOCKED_HOSTS)
    snprintf(res->blocked_hosts[res->nblocked_hosts++], sizeof res->blocked_hosts[0], "%s", host);
  if (!s->blocked_host[0]) {
    snprintf(s->blocked_host, sizeof s->blocked_host, "%s", host);
    snprintf(s->blocked_ip, sizeof s->blocked_ip, "%s", ip);
    snprintf(s->blocked_why, sizeof s->blocked_why, "%s", why);
  }
}

static void fail_blocked(shot *s) {
  s->refused = 1;
  const char *h = s->blocked_host, *ip = s->blocked_ip, *why = s->blocked_why;
  char where[400];
  if (!strcmp(why, "unresolvable")) {
    shot_fail(s, TT_EINVAL, 0, "the page did not load: %s did not resolve", h);
    return;
  }
  if (!ip[0] || !strcmp(h, ip) || (h[0] == '[' && !strncmp(h + 1, ip, strlen(ip))))
    snprintf(where, sizeof where, "%s (%s)", ip[0] ? ip : h, why);
  else
    snprintf(where, sizeof where, "%s is %s (%s)", h, ip, why);
  /* the exact setting that opens it, and that a running server reads it at start only */
  const char *a = ip[0] ? ip : h;
  if (!strcmp(why, "metadata"))
    shot_fail(s, TT_EAUTH, 0, "blocked by the network policy: %s, never allowed", where);
  else
    shot_fail(s, TT_EAUTH, 0,
              "blocked by the network policy: %s; to allow it, start tintype with "
              "TINTYPE_ALLOW_NETWORKS=%s/%d (or --allow-networks; restart a running server)",
              where, a, strchr(a, ':') ? 128 : 32);
}

/* the main document is the proxy's answer, not the page */
static void nav_refused(shot *s) {
  if (s->nav_blocked == 1) {
    fail_blocked(s);
    return;
  }
  const char *e = s->proxy_error;
  if (!strncmp(e, "tintype: ", 9)) e += 9;
  shot_fail(s, TT_EINVAL, 0, "the page did not load: %s", e);
}

/* ---- capture ------------------------------------------------------------ */

static void on_captured(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Page.captureScreenshot")) return;
  if (s->nav_blocked) { /* a later navigation (script, meta refresh) went where it may not */
    nav_refused(s);
    return;
  }
  const char *b64 = json_string_value(json_object_get(j, "data"));
  size_t n = b64 ? strlen(b64) : 0;
  unsigned char *img = n ? malloc(n / 4 * 3 + 3) : NULL;
  size_t len = 0;
  if (!img || tt_base64_decode(b64, n, img, &len)) {
    free(img);
    shot_fail(s, TT_EIO, 1, "the browser sent no image");
    return;
  }
  s->res.data = img;
  s->res.len = len;
  s->res.format = s->o.format;
  if (tt_image_size(img, len, &s->res.width, &s->res.height)) {
    shot_fail(s, TT_EIO, 1, "the browser sent an unreadable image");
    return;
  }
  s->res.t.capture = ms_since(s->t_wait, uv_hrtime());
  shot_answer(s, TT_OK);
}

/* ---- pdf ---------------------------------------------------------------- */

/* format pdf: Page.printToPDF with transferMode ReturnAsStream, then
 * IO.read in PDF_CHUNK pieces (base64 decoded straight into the result,
 * never one message of the whole document) until eof or max_pdf_bytes,
 * then IO.close. The page count is that of the "/Type /Page" objects
 * Chromium's writer (Skia) leaves uncompressed; max_pdf_pages is checked
 * on it. */
#define PDF_CHUNK (1 << 20)

static void on_setup(tt_cdp *c, int status, json_t *j, void *ud);
static void origin_of(const char *url, char *out, size_t n);

/* "/Type /Page" objects, not "/Type /Pages" */
static int pdf_count_pages(const unsigned char *p, size_t n) {
  static const char pat[] = "/Type /Page";
  size_t m = sizeof pat - 1;
  int count = 0;
  for (size_t i = 0; i + m < n; i++) {
    if (p[i] != '/' || memcmp(p + i, pat, m)) continue;
    unsigned char c = p[i + m];
    if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z')) count++;
    i += m - 1;
  }
  return count;
}

/* a printToPDF or IO answer; a protocol error of printToPDF is the job's
 * ("Page range exceeds page count"), not the browser's */
static int pdf_enter(shot *s, int status, json_t *j, const char *what) {
  if (status == TT_EIO && json_is_string(json_object_get(j, "message"))) {
    s->refs--;
    if (s->answered) {
      shot_maybe_free(s);
      return 0;
    }
    shot_fail(s, TT_EINVAL, 0, "%s failed: %s", what, json_string_value(json_object_get(j, "message")));
    return 0;
  }
  return cmd_enter(s, status, j, what);
}

static void on_pdf_closed(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "IO.close")) return;
  int pages = pdf_count_pages(s->res.data, s->res.len);
  if (pages > s->o.max_pdf_pages) {
    shot_fail(s, TT_EINVAL, 0, "the PDF has %d pages; at most %d (max-pdf-pages): choose fewer with pdf.page_ranges",
              pages, s->o.max_pdf_pages);
    return;
  }
  s->res.pages = pages;
  s->res.format = TT_FMT_PDF;
  /* the size of a page, PostScript points (1/72 in) */
  const tt_pdf_options *pdf = &s->o.pdf;
  s->res.width = (int)lround((pdf->landscape ? pdf->height : pdf->width) * 72);
  s->res.height = (int)lround((pdf->landscape ? pdf->width : pdf->height) * 72);
  s->res.t.capture = ms_since(s->t_wait, uv_hrtime());
  shot_answer(s, TT_OK);
}

static void pdf_read_next(shot *s);

static void on_pdf_read(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "IO.read")) return;
  const char *data = json_string_value(json_object_get(j, "data"));
  size_t n = data ? strlen(data) : 0;
  int b64 = json_is_true(json_object_get(j, "base64Encoded"));
  size_t most = b64 ? n / 4 * 3 + 3 : n;
  if (s->res.len + most > s->pdf_cap) {
    size_t cap = s->pdf_cap ? s->pdf_cap * 2 : (size_t)PDF_CHUNK + 3;
    while (cap < s->res.len + most) cap *= 2;
    unsigned char *nb = realloc(s->res.data, cap);
    if (!nb) tt_oom();
    s->res.data = nb;
    s->pdf_cap = cap;
  }
  size_t got = n;
  if (b64) {
    if (tt_base64_decode(data, n, s->res.data + s->res.len, &got)) {
      shot_fail(s, TT_EIO, 1, "the browser sent an unreadable PDF");
      return;
    }
  } else if (n) {
    memcpy(s->res.data + s->res.len, data, n);
  }
  s->res.len += got;
  if ((int64_t)s->res.len > s->o.max_pdf_bytes) {
    /* the stream is the page's: it goes with the context (not kept warm: a command is in flight) */
    shot_send(s, s->session, "IO.close", json_pack("{s:s}", "handle", s->pdf_stream), CMD_TIMEOUT_MS, on_setup);
    shot_fail(s, TT_EINVAL, 0, "the PDF is larger than %lld bytes (max-pdf-bytes): choose fewer pages with "
              "pdf.page_ranges", (long long)s->o.max_pdf_bytes);
    return;
  }
  if (json_is_true(json_object_get(j, "eof"))) {
    if (!s->res.len) {
      shot_fail(s, TT_EIO, 1, "the browser sent no PDF");
      return;
    }
    shot_send(s, s->session, "IO.close", json_pack("{s:s}", "handle", s->pdf_stream), CMD_TIMEOUT_MS, on_pdf_closed);
    return;
  }
  pdf_read_next(s);
}

static void pdf_read_next(shot *s) {
  shot_send(s, s->session, "IO.read", json_pack("{s:s, s:i}", "handle", s->pdf_stream, "size", PDF_CHUNK),
            CAPTURE_TIMEOUT_MS, on_pdf_read);
}

static void on_printed(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!pdf_enter(s, status, j, "Page.printToPDF")) return;
  if (s->nav_blocked) {
    nav_refused(s);
    return;
  }
  const char *h = json_string_value(json_object_get(j, "stream"));
  if (!h || !*h || strlen(h) >= sizeof s->pdf_stream) {
    shot_fail(s, TT_EIO, 1, "the browser sent no PDF stream");
    return;
  }
  snprintf(s->pdf_stream, sizeof s->pdf_stream, "%s", h);
  pdf_read_next(s);
}

static void print_pdf(shot *s) {
  const tt_pdf_options *p = &s->o.pdf;
  json_t *params = json_pack("{s:b, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:b}", "landscape", p->landscape,
                             "printBackground", p->print_background, "scale", p->scale, "paperWidth", p->width,
                             "paperHeight", p->height, "marginTop", p->margin[0], "marginRight", p->margin[1],
                             "marginBottom", p->margin[2], "marginLeft", p->margin[3], "transferMode",
                             "ReturnAsStream", "preferCSSPageSize", 0);
  if (p->page_ranges[0]) json_object_set_new(params, "pageRanges", json_string(p->page_ranges));
  shot_send(s, s->session, "Page.printToPDF", params, CAPTURE_TIMEOUT_MS, on_printed);
}

static void capture(shot *s, json_t *clip) {
  s->phase = P_CAPTURE;
  report_phase(s, "capturing");
  uv_timer_stop(&s->deadline);
  s->t_wait = uv_hrtime();
  s->res.t.wait = ms_since(s->t_nav, s->t_wait);
  if (s->o.format == TT_FMT_PDF) {
    json_decref(clip);
    print_pdf(s);
    return;
  }
  json_t *p = json_pack("{s:s, s:b}", "format", tt_format_name(s->o.format), "fromSurface", 1);
  if (s->o.format != TT_FMT_PNG && s->o.quality) json_object_set_new(p, "quality", json_integer(s->o.quality));
  /* Chromium's faster PNG: about half the encoding CPU, ~1.3x the bytes on
   * the bench page (docs/ARCHITECTURE.md): asked for, never the default */
  if (s->o.optimize_for_speed) json_object_set_new(p, "optimizeForSpeed", json_true());
  if (clip) {
    json_object_set_new(p, "clip", clip);
    json_object_set_new(p, "captureBeyondViewport", json_true());
  }
  shot_send(s, s->session, "Page.captureScreenshot", p, CAPTURE_TIMEOUT_MS, on_captured);
}

static json_t *make_clip_scaled(double x, double y, double w, double h, double scale) {
  return json_pack("{s:f, s:f, s:f, s:f, s:f}", "x", x, "y", y, "width", w, "height", h, "scale", scale);
}

static json_t *make_clip(double x, double y, double w, double h) { return make_clip_scaled(x, y, w, h, 1.0); }
/* The pixel budget, where the page decides it (a full page's height, an
 * element's size): no side over TT_CAPTURE_MAX_SIDE device pixels and no
 * more than max_pixels in all; the capture is cut (from the right and the
 * bottom) and the result says clipped. A capture within the budget cannot
 * take the shared browser down (a 1 Gpx full page aborted it). */
static void budget_clip(shot *s, double *w, double *h) {
  double sc = s->o.scale > 0 ? s->o.scale : 1.0;
  double maxside = TT_CAPTURE_MAX_SIDE / sc;
  if (*w > maxside) {
    *w = floor(maxside);
    s->res.clipped = 1;
  }
  if (*h > maxside) {
    *h = floor(maxside);
    s->res.clipped = 1;
  }
  double maxh = floor((double)s->o.max_pixels / (ceil(*w) * sc * sc));
  if (*h > maxh) {
    *h = maxh < 1 ? 1 : maxh;
    s->res.clipped = 1;
  }
}

static void on_metrics(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Page.getLayoutMetrics")) return;
  json_t *cs = json_object_get(j, "cssContentSize");
  double w = json_number_value(json_object_get(cs, "width"));
  double h = json_number_value(json_object_get(cs, "height"));
  if (w < s->o.width) w = s->o.width;
  if (h < s->o.height) h = s->o.height;
  if (h > s->r->max_full_page_height) h = s->r->max_full_page_height;
  if (w > s->o.width) w = s->o.width; /* full page means full height; width stays the viewport's */
  /* mobile: a page without <meta name=viewport> lays out wider (980 px) and
   * the viewport shot shows all of it shrunk to the screen; full page is
   * that picture extended downwards, so the clip spans the layout width at
   * the same zoom, not the left o.width CSS px of it */
  double lw = json_number_value(json_object_get(json_object_get(j, "cssLayoutViewport"), "clientWidth"));
  if (s->o.mobile && lw > s->o.width) {
    double zoom = s->o.width / lw;
    double lh = json_number_value(json_object_get(cs, "height"));
    if (lh < s->o.height / zoom) lh = s->o.height / zoom;
    if (lh > s->r->max_full_page_height) lh = s->r->max_full_page_height;
    double ew = s->o.width, eh = lh * zoom; /* the pixel budget counts what comes out */
    budget_clip(s, &ew, &eh);
    lh = eh / zoom;
    capture(s, make_clip_scaled(0, 0, lw, floor(lh), zoom));
    return;
  }
  budget_clip(s, &w, &h);
  capture(s, make_clip(0, 0, ceil(w), ceil(h)));
}

static void on_rect(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "finding the selector")) return;
  json_t *ex = json_object_get(j, "exceptionDetails");
  if (ex) {
    shot_fail(s, TT_EINVAL, 0, "selector \"%s\" is not a valid CSS selector", s->o.selector);
    return;
  }
  json_t *v = json_object_get(json_object_get(j, "result"), "value");
  if (!json_is_object(v)) {
    shot_fail(s, TT_EINVAL, 0, "selector \"%s\" matched no element", s->o.selector);
    return;
  }
  double x = json_number_value(json_object_get(v, "x")), y = json_number_value(json_object_get(v, "y"));
  double w = json_number_value(json_object_get(v, "width")), h = json_number_value(json_object_get(v, "height"));
  if (w < 1 || h < 1) {
    shot_fail(s, TT_EINVAL, 0, "selector \"%s\" matched an element with no size (%gx%g)", s->o.selector, w, h);
    return;
  }
  if (h > s->r->max_full_page_height) h = s->r->max_full_page_height;
  budget_clip(s, &w, &h);
  capture(s, make_clip(x, y, w, h));
}

static json_t *js_string(const char *v) {
  json_t *str = json_string(v);
  char *d = json_dumps(str, JSON_ENCODE_ANY);
  json_decref(str);
  json_t *out = json_string(d ? d : "\"\"");
  free(d);
  return out;
}

static json_t *eval_params(const char *fmt, const char *arg, int await) {
  json_t *lit = js_string(arg);
  char *expr = NULL;
  if (asprintf(&expr, fmt, json_string_value(lit)) < 0) expr = NULL;
  json_decref(lit);
  json_t *p = json_pack("{s:s, s:b, s:b}", "expression", expr ? expr : "null", "returnByValue", 1, "awaitPromise", await);
  free(expr);
  return p;
}

static void start_capture(shot *s) {
  if (s->answered) return;
  if (s->o.selector[0]) {
    shot_send(s, s->session, "Runtime.evaluate",
              eval_params("(() => { const e = document.querySelector(%s); if (!e) return null;"
                          " const r = e.getBoundingClientRect();"
                          " return {x: r.left + window.scrollX, y: r.top + window.scrollY,"
                          " width: r.width, height: r.height}; })()",
                          s->o.selector, 0),
              CMD_TIMEOUT_MS, on_rect);
  } else if (s->o.full_page) {
    shot_send(s, s->session, "Page.getLayoutMetrics", NULL, CMD_TIMEOUT_MS, on_metrics);
  } else {
    capture(s, NULL);
  }
}

/* ---- wait --------------------------------------------------------------- */

static void on_delay(uv_timer_t *t) { start_capture(t->data); }
static void run_controls(shot *s);

static void after_controls(shot *s) {
  if (s->answered) return;
  if (s->o.delay_ms > 0)
    uv_timer_start(&s->delay, on_delay, (uint64_t)s->o.delay_ms, 0);
  else
    start_capture(s);
}

/* ---- page controls -------------------------------------------------------- */

/* After wait_for, before delay_ms, each step one Runtime.evaluate (none when
 * the job asks for nothing): css and hide_selectors (one <style>; a
 * selector the browser cannot parse fails the job naming it), then js (the
 * body of an async function, bounded by js_timeout_ms both in the page — a
 * race with a timer, for what awaits — and by Runtime.evaluate's own
 * timeout, for a loop that never yields), then click_selectors in order (a
 * selector that matches nothing is skipped: a cookie banner is not always
 * there; result.clicked counts the clicks) and scroll_to (an element that
 * is not there fails the job), then two animation frames so what the
 * clicks changed is painted. The next navigation takes all of it away:
 * nothing of it outlives the job in a warm context. */

static json_t *selector_array(const char *buf, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++, buf += strlen(buf) + 1) json_array_append_new(a, json_string(buf));
  return a;
}

/* the expression fmt with %s replaced by the JSON of arg (a JS literal) */
static json_t *eval_json(const char *fmt, json_t *arg, int await, int timeout_ms) {
  char *lit = json_dumps(arg, JSON_ENCODE_ANY | JSON_COMPACT);
  json_decref(arg);
  char *expr = NULL;
  if (!lit || asprintf(&expr, fmt, lit) < 0) expr = NULL;
  free(lit);
  json_t *p = json_pack("{s:s, s:b, s:b}", "expression", expr ? expr : "null", "returnByValue", 1, "awaitPromise", await);
  free(expr);
  if (timeout_ms > 0) json_object_set_new(p, "timeout", json_integer(timeout_ms));
  return p;
}

/* the exception's own words: "Error: boom" */
static const char *exception_words(json_t *j) {
  json_t *ex = json_object_get(j, "exceptionDetails");
  const char *d = json_string_value(json_object_get(json_object_get(ex, "exception"), "description"));
  if (!d) d = json_string_value(json_object_get(json_object_get(ex, "exception"), "value"));
  if (!d) d = json_string_value(json_object_get(ex, "text"));
  return d ? d : "an exception";
}

/* its first line (the stack after it names only the wrapper's lines) */
static int first_line_len(const char *w) {
  const char *nl = strchr(w, '\n');
  size_t n = nl ? (size_t)(nl - w) : strlen(w);
  return (int)(n > 400 ? 400 : n);
}

static void on_clicks(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "clicking the selectors")) return;
  if (json_object_get(j, "exceptionDetails")) {
    const char *w = exception_words(j);
    shot_fail(s, TT_EINVAL, 0, "click_selectors: %.*s", first_line_len(w), w);
    return;
  }
  json_t *v = json_object_get(json_object_get(j, "result"), "value");
  json_t *badsel = json_object_get(v, "bad");
  if (json_is_integer(badsel)) {
    const char *sel = s->o.click_selectors;
    for (json_int_t i = 0; i < json_integer_value(badsel) && i < s->o.nclick; i++) sel += strlen(sel) + 1;
    shot_fail(s, TT_EINVAL, 0, "click_selectors[%d] \"%s\" is not a valid CSS selector",
              (int)json_integer_value(badsel), sel);
    return;
  }
  if (json_is_true(json_object_get(v, "scroll_bad"))) {
    shot_fail(s, TT_EINVAL, 0, "scroll_to \"%s\" is not a valid CSS selector", s->o.scroll_to);
    return;
  }
  if (json_is_true(json_object_get(v, "scroll_missing"))) {
    shot_fail(s, TT_EINVAL, 0, "scroll_to \"%s\" matched no element", s->o.scroll_to);
    return;
  }
  s->res.clicked = (int)json_integer_value(json_object_get(v, "clicked"));
  s->res.clicked_asked = s->o.nclick > 0;
  after_controls(s);
}

static void run_clicks(shot *s) {
  if (!s->o.nclick && !s->o.scroll_to[0]) {
    after_controls(s);
    return;
  }
  json_t *arg = json_pack("{s:o, s:s}", "click", selector_array(s->o.click_selectors, s->o.nclick), "scroll",
                          s->o.scroll_to);
  shot_send(s, s->session, "Runtime.evaluate",
            eval_json("(async (a) => { let clicked = 0;"
                      " for (let i = 0; i < a.click.length; i++) { let e;"
                      "  try { e = document.querySelector(a.click[i]); } catch (x) { return {bad: i}; }"
                      "  if (e) { e.click(); clicked++;"
                      "   await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))); } }"
                      " if (a.scroll) { let e;"
                      "  try { e = document.querySelector(a.scroll); } catch (x) { return {scroll_bad: true}; }"
                      "  if (!e) return {scroll_missing: true};"
                      "  e.scrollIntoView({block: 'start', inline: 'nearest', behavior: 'instant'}); }"
                      " await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));"
                      " return {clicked}; })(%s)",
                      arg, 1, 0),
            CMD_TIMEOUT_MS, on_clicks);
}

static void on_js(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (status == TT_ETIMEDOUT) { /* the backstop: the page did not even answer */
    s->refs--;
    if (s->answered) {
      shot_maybe_free(s);
      return;
    }
    shot_fail(s, TT_EINVAL, 0, "js did not finish within %d ms (js_timeout_ms)", s->o.js_timeout_ms);
    return;
  }
  if (status == TT_EIO && json_is_string(json_object_get(j, "message"))) {
    /* a loop that never yields: the evaluate's timeout terminates it and
     * the protocol answers with an error ("Internal error") */
    s->refs--;
    if (s->answered) {
      shot_maybe_free(s);
      return;
    }
    if (ms_since(s->t_js, uv_hrtime()) >= s->o.js_timeout_ms * 0.9)
      shot_fail(s, TT_EINVAL, 0, "js did not finish within %d ms (js_timeout_ms)", s->o.js_timeout_ms);
    else
      shot_fail(s, TT_EINVAL, 0, "running js failed: %s", json_string_value(json_object_get(j, "message")));
    return;
  }
  if (!cmd_enter(s, status, j, "running js")) return;
  if (json_object_get(j, "exceptionDetails")) {
    const char *w = exception_words(j);
    if (strstr(w, "Execution was terminated") || strstr(w, "tintype-js-timeout"))
      shot_fail(s, TT_EINVAL, 0, "js did not finish within %d ms (js_timeout_ms)", s->o.js_timeout_ms);
    else
      shot_fail(s, TT_EINVAL, 0, "js threw: %.*s", first_line_len(w), w);
    return;
  }
  run_clicks(s);
}

static void run_js(shot *s) {
  if (!s->o.js[0]) {
    run_clicks(s);
    return;
  }
  /* the script is the body of an async function; what awaits loses the race
   * with the timer, what loops is stopped by the evaluate's own timeout */
  char *expr = NULL;
  int ms = s->o.js_timeout_ms;
  if (asprintf(&expr,
               "Promise.race([(async () => {\n%s\n})(), new Promise((_, no) => setTimeout(() =>"
               " no(new Error('tintype-js-timeout')), %d))]).then(() => true)",
               s->o.js, ms) < 0)
    tt_oom();
  json_t *p = json_pack("{s:s, s:b, s:b, s:i}", "expression", expr, "returnByValue", 1, "awaitPromise", 1, "timeout", ms);
  free(expr);
  s->t_js = uv_hrtime();
  shot_send(s, s->session, "Runtime.evaluate", p, ms + 2000, on_js);
}

static void on_styles(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "adding the stylesheet")) return;
  json_t *v = json_object_get(json_object_get(j, "result"), "value");
  if (json_object_get(j, "exceptionDetails")) {
    const char *w = exception_words(j);
    shot_fail(s, TT_EINVAL, 0, "css: %.*s", first_line_len(w), w);
    return;
  }
  if (json_is_integer(v)) {
    const char *sel = s->o.hide_selectors;
    for (json_int_t i = 0; i < json_integer_value(v) && i < s->o.nhide; i++) sel += strlen(sel) + 1;
    shot_fail(s, TT_EINVAL, 0, "hide_selectors[%d] \"%s\" is not a valid CSS selector", (int)json_integer_value(v),
              sel);
    return;
  }
  run_js(s);
}

static void run_controls(shot *s) {
  if (!s->o.css[0] && !s->o.nhide) {
    run_js(s);
    return;
  }
  json_t *arg = json_pack("{s:s, s:o}", "css", s->o.css, "hide", selector_array(s->o.hide_selectors, s->o.nhide));
  shot_send(s, s->session, "Runtime.evaluate",
            eval_json("((a) => { let css = a.css;"
                      " for (let i = 0; i < a.hide.length; i++) {"
                      "  try { document.querySelector(a.hide[i]); } catch (x) { return i; }"
                      "  css += '\\n' + a.hide[i] + ' { display: none !important; }'; }"
                      " const st = document.createElement('style'); st.textContent = css;"
                      " (document.head || document.documentElement).appendChild(st); return true; })(%s)",
                      arg, 0, 0),
            CMD_TIMEOUT_MS, on_styles);
}

static void after_wait_for(shot *s) { run_controls(s); }

static void on_wait_for(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "waiting for the selector")) return;
  if (json_object_get(j, "exceptionDetails")) {
    shot_fail(s, TT_EINVAL, 0, "wait_for \"%s\" is not a valid CSS selector", s->o.wait_for);
    return;
  }
  after_wait_for(s);
}

static void nav_ready(shot *s) {
  s->phase = P_WAIT;
  if (s->o.wait_for[0] || s->o.delay_ms || s->o.css[0] || s->o.js[0] || s->o.nhide || s->o.nclick || s->o.scroll_to[0])
    report_phase(s, "waiting");
  s->t_nav = uv_hrtime();
  s->res.t.navigate = ms_since(s->t_ctx, s->t_nav);
  if (s->nav_blocked) {
    nav_refused(s);
    return;
  }
  if (s->o.wait_for[0]) {
    /* resolves when the selector matches; the deadline timer ends it */
    shot_send(s, s->session, "Runtime.evaluate",
              eval_params("new Promise((resolve) => { const sel = %s;"
                          " const found = () => { if (document.querySelector(sel)) { resolve(true); return true; }"
                          " return false; };"
                          " if (found()) return;"
                          " const mo = new MutationObserver(() => { if (found()) mo.disconnect(); });"
                          " mo.observe(document, {childList: true, subtree: true, attributes: true}); })",
                          s->o.wait_for, 1),
              s->o.timeout_ms + 1000, on_wait_for);
  } else {
    after_wait_for(s);
  }
}

static unsigned wanted_mask(const shot *s) {
  switch (s->o.wait_until) {
    case TT_WAIT_DOMCONTENTLOADED: return LC_DCL;
    case TT_WAIT_NETWORKIDLE: return LC_IDLE;
    default: return LC_LOAD;
  }
}

static void check_loaded(shot *s) {
  if (s->phase != P_NAVIGATE || !s->navigated) return;
  if (strcmp(s->loader, s->ev_loader)) return;
  if (s->ev_mask & wanted_mask(s)) nav_ready(s);
}

static void on_deadline(uv_timer_t *t) {
  shot *s = t->data;
  const char *what = s->phase == P_NAVIGATE ? tt_wait_until_name(s->o.wait_until) : "the page";
  if (s->phase == P_WAIT && s->o.wait_for[0])
    shot_fail(s, TT_ETIMEDOUT, 0, "timed out after %d ms waiting for the selector \"%s\"", s->o.timeout_ms,
              s->o.wait_for);
  else if (s->nav_blocked || (s->blocked_host[0] && !s->navigated))
    fail_blocked(s);
  else
    shot_fail(s, TT_ETIMEDOUT, 0, "timed out after %d ms waiting for %s", s->o.timeout_ms, what);
}

/* ---- navigate ----------------------------------------------------------- */

static void on_navigate(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Page.navigate")) return;
  const char *err = json_string_value(json_object_get(j, "errorText"));
  if (err && *err) {
    if (s->blocked_host[0]) fail_blocked(s);
    else {
      char words[320];
      tt_render_net_error_words(err, words, sizeof words);
      shot_fail(s, TT_EINVAL, 0, "the page did not load: %s", words);
    }
    return;
  }
  const char *loader = json_string_value(json_object_get(j, "loaderId"));
  snprintf(s->loader, sizeof s->loader, "%s", loader ? loader : "");
  s->navigated = 1;
  check_loaded(s);
}

static void on_setup(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  cmd_enter(ud, status, j, "preparing the page");
}

static void shot_navigate(shot *s);
static void shot_go(shot *s);

static void on_emulated(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "emulating the locale and time zone")) return;
  shot_go(s);
}

static void on_attached(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Target.attachToTarget")) return;
  snprintf(s->session, sizeof s->session, "%s", json_string_value(json_object_get(j, "sessionId")));
  const char *sid = s->session;
  /* one session runs its commands in order: send them back to back */
  if (shot_send(s, sid, "Page.enable", NULL, CMD_TIMEOUT_MS, on_setup) ||
      shot_send(s, sid, "Page.setLifecycleEventsEnabled", json_pack("{s:b}", "enabled", 1), CMD_TIMEOUT_MS, on_setup) ||
      shot_send(s, sid, "Network.enable", json_pack("{s:i}", "maxTotalBufferSize", 0), CMD_TIMEOUT_MS, on_setup))
    return;
  if (s->spare) {
    s->phase = P_READY; /* the next shot takes it from here */
    return;
  }
  shot_navigate(s);
}

/* emulation for this shot's options, then the navigation */
static void shot_navigate(shot *s) {
  const char *sid = s->session;
  if (shot_send(s, sid, "Emulation.setDeviceMetricsOverride",
                json_pack("{s:i, s:i, s:f, s:b}", "width", s->o.width, "height", s->o.height, "deviceScaleFactor",
                          s->o.scale, "mobile", s->o.mobile),
                CMD_TIMEOUT_MS, on_setup))
    return;
  /* a warm context's previous job may have set them: each is said again */
  int screen = s->o.format == TT_FMT_PDF && s->o.pdf.media_screen; /* printToPDF prints @media print otherwise */
  if ((s->o.dark_mode || screen || s->w) &&
      shot_send(s, sid, "Emulation.setEmulatedMedia",
                s->o.dark_mode ? json_pack("{s:s, s:[{s:s, s:s}]}", "media", screen ? "screen" : "", "features", "name",
                                           "prefers-color-scheme", "value", "dark")
                               : json_pack("{s:s, s:[]}", "media", screen ? "screen" : "", "features"),
                CMD_TIMEOUT_MS, on_setup))
    return;
  if ((s->o.mobile || s->w) &&
      shot_send(s, sid, "Emulation.setTouchEmulationEnabled",
                json_pack("{s:b, s:i}", "enabled", s->o.mobile, "maxTouchPoints", s->o.mobile ? 5 : 1), CMD_TIMEOUT_MS,
                on_setup))
    return;
  /* network controls: cookies for the page's URL, interception for
   * headers, basic_auth and blocking (only when asked: each paused request
   * costs a round trip) */
  if (s->o.cookies_json[0]) {
    json_t *in = json_loads(s->o.cookies_json, 0, NULL), *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(in, i, c) {
      json_t *one = json_pack("{s:O, s:O, s:s}", "name", json_object_get(c, "name"), "value",
                              json_object_get(c, "value"), "url", s->o.url);
      if (json_object_get(c, "path")) json_object_set(one, "path", json_object_get(c, "path"));
      if (json_object_get(c, "secure")) json_object_set(one, "secure", json_object_get(c, "secure"));
      if (json_object_get(c, "http_only")) json_object_set(one, "httpOnly", json_object_get(c, "http_only"));
      if (json_object_get(c, "same_site")) json_object_set(one, "sameSite", json_object_get(c, "same_site"));
      json_array_append_new(out, one);
    }
    json_decref(in);
    if (shot_send(s, sid, "Network.setCookies", json_pack("{s:o}", "cookies", out), CMD_TIMEOUT_MS, on_setup)) return;
  }
  if (s->o.nheaders || s->o.auth_user[0] || s->o.block_types || s->o.nblock_urls) {
    origin_of(s->o.url, s->origin, sizeof s->origin);
    s->fetch_on = 1;
    s->res.intercepted = s->o.block_types || s->o.nblock_urls;
    if (shot_send(s, sid, "Fetch.enable",
                  json_pack("{s:[{s:s, s:s}], s:b}", "patterns", "urlPattern", "*", "requestStage", "Request",
                            "handleAuthRequests", s->o.auth_user[0] != 0),
                  CMD_TIMEOUT_MS, on_setup))
      return;
  }
  /* identity: user agent and Accept-Language, locale, time zone ("" lifts
   * an override); sent last, and the navigation waits for the answer of
   * the last one, so the page's first script already sees them (and the
   * interception and cookies above are in place for its first request) */
  int ident = s->o.user_agent[0] || s->o.locale[0] || s->o.timezone[0] || s->w || s->fetch_on || s->o.cookies_json[0];
  if (ident &&
      (shot_send(s, sid, "Emulation.setUserAgentOverride",
                 json_pack("{s:s, s:s}", "userAgent", s->o.user_agent, "acceptLanguage", s->o.locale), CMD_TIMEOUT_MS,
                 on_setup) ||
       shot_send(s, sid, "Emulation.setLocaleOverride",
                 s->o.locale[0] ? json_pack("{s:s}", "locale", s->o.locale) : json_object(), CMD_TIMEOUT_MS, on_setup) ||
       shot_send(s, sid, "Emulation.setTimezoneOverride", json_pack("{s:s}", "timezoneId", s->o.timezone),
                 CMD_TIMEOUT_MS, on_emulated)))
    return;
  if (!ident) shot_go(s);
}

/* the page's own navigation, its deadline started */
static void shot_go(shot *s) {
  const char *sid = s->session;
  s->phase = P_NAVIGATE;
  report_phase(s, "loading");
  s->t_ctx = uv_hrtime();
  s->res.t.context = ms_since(s->t_start, s->t_ctx);
  uv_timer_start(&s->deadline, on_deadline, (uint64_t)s->o.timeout_ms, 0);
  shot_send(s, sid, "Page.navigate", json_pack("{s:s}", "url", s->o.url), (int)s->o.timeout_ms + 1000, on_navigate);
}

static void on_target(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Target.createTarget")) return;
  snprintf(s->target, sizeof s->target, "%s", json_string_value(json_object_get(j, "targetId")));
  shot_send(s, NULL, "Target.attachToTarget", json_pack("{s:s, s:b}", "targetId", s->target, "flatten", 1),
            CMD_TIMEOUT_MS, on_attached);
}

static void on_context(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (!cmd_enter(s, status, j, "Target.createBrowserContext")) return;
  snprintf(s->ctx, sizeof s->ctx, "%s", json_string_value(json_object_get(j, "browserContextId")));
  shot_send(s, NULL, "Target.createTarget",
            json_pack("{s:s, s:s, s:i, s:i}", "url", "about:blank", "browserContextId", s->ctx, "width", s->o.width,
                      "height", s->o.height),
            CMD_TIMEOUT_MS, on_target);
}

static void shot_step_context(shot *s) {
  tt_render *r = s->r;
  s->phase = P_CONTEXT;
  s->cdp = r->cdp;
  s->t_start = uv_hrtime();
  s->res.t.queued = ms_since(s->t0, s->t_start);
  s->res.context_jobs = 1;
  tt_metrics_add(TT_M_CONTEXTS_CREATED, 1);
  int rc = tt_netproxy_start(r->loop, &r->policy, on_blocked, s, &s->proxy);
  if (rc) {
    shot_fail(s, TT_EIO, 1, "cannot start the network policy proxy: %s", tt_strerror(rc));
    return;
  }
  if (r->devtools_port > 0) tt_netproxy_deny_local_port(s->proxy, r->devtools_port);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", tt_netproxy_port(s->proxy));
  /* "<-loopback>" removes Chromium's implicit bypass of localhost: every
   * request, loopback included, goes through the policy */
  shot_send(s, NULL, "Target.createBrowserContext",
            json_pack("{s:b, s:s, s:s}", "disposeOnDetach", 1, "proxyServer", proxy, "proxyBypassList", "<-loopback>"),
            CMD_TIMEOUT_MS, on_context);
}

/* ---- events ------------------------------------------------------------- */

static shot *by_session(tt_render *r, const char *sid) {
  for (shot *s = r->shots; s; s = s->next)
    if (s->session[0] && !strcmp(s->session, sid)) return s;
  if (r->spare && r->spare->session[0] && !strcmp(r->spare->session, sid)) return r->spare;
  return NULL;
}

/* ---- request interception (headers, basic_auth, block_*) ----------------- */

/* "http://h:8080" from a URL: scheme, host, port (the scheme's default left out) */
static void origin_of(const char *url, char *out, size_t n) {
  out[0] = 0;
  CURLU *h = curl_url();
  if (!h) return;
  char *scheme = NULL, *host = NULL, *port = NULL;
  if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    if (curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) port = NULL;
    int dflt = port && ((!strcasecmp(scheme, "http") && !strcmp(port, "80")) ||
                        (!strcasecmp(scheme, "https") && !strcmp(port, "443")));
    snprintf(out, n, "%s://%s%s%s", scheme, host, port && !dflt ? ":" : "", port && !dflt ? port : "");
    for (char *p = out; *p; p++) *p = (char)tolower((unsigned char)*p);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(h);
}

/* "scheme://host" of url, lower case, "" when it has none: the part of
 * Chromium's site (scheme + registrable domain, port ignored) a warm
 * context's affinity compares; one host is never two sites */
static void site_of(const char *url, char *out, size_t n) {
  out[0] = 0;
  CURLU *h = curl_url();
  if (!h) return;
  char *scheme = NULL, *host = NULL;
  if (curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host) {
    snprintf(out, n, "%s://%s", scheme, host);
    for (char *p = out; *p; p++) *p = (char)tolower((unsigned char)*p);
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(h);
}

static int same_origin(const shot *s, const char *url) {
  char o[512];
  origin_of(url, o, sizeof o);
  return o[0] && !strcmp(o, s->origin);
}

static int blocked_by_job(const shot *s, const char *url, const char *type) {
  if (s->o.block_types && type) {
    const char *const *cdp = tt_resource_cdp_types();
    int n;
    tt_resource_names(&n);
    for (int i = 0; i < n; i++)
      if ((s->o.block_types & (1u << i)) && !strcmp(type, cdp[i])) return 1;
  }
  const char *p = s->o.block_urls;
  for (int i = 0; i < s->o.nblock_urls; i++, p += strlen(p) + 1)
    if (!fnmatch(p, url, 0)) return 1;
  return 0;
}

/* an answer to a paused request: a request the page gave up on meanwhile
 * (an iframe removed, a navigation) answers "Invalid InterceptionId", which
 * is no failure of the job */
static void on_fetch_answer(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  shot *s = ud;
  if (status == TT_EIO && json_is_string(json_object_get(j, "message"))) status = TT_OK;
  cmd_enter(s, status, j, "answering a request");
}

static void on_request_paused(shot *s, json_t *p) {
  const char *id = json_string_value(json_object_get(p, "requestId"));
  json_t *req = json_object_get(p, "request");
  const char *url = json_string_value(json_object_get(req, "url"));
  const char *type = json_string_value(json_object_get(p, "resourceType"));
  if (!id || !url) return;
  if (type && strcmp(type, "Document") && blocked_by_job(s, url, type)) {
    s->res.blocked_by_job++;
    shot_send(s, s->session, "Fetch.failRequest", json_pack("{s:s, s:s}", "requestId", id, "errorReason", "BlockedByClient"),
              CMD_TIMEOUT_MS, on_fetch_answer);
    return;
  }
  json_t *params = json_pack("{s:s}", "requestId", id);
  if (s->o.nheaders && same_origin(s, url)) {
    /* the request's own headers with the job's over them (names compared
     * without case) */
    json_t *extra = json_loads(s->o.headers_json, 0, NULL), *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(req, "headers"), k, v) {
      int over = 0;
      const char *ek;
      json_t *ev;
      json_object_foreach(extra, ek, ev) over |= !strcasecmp(ek, k);
      if (!over && json_is_string(v)) json_array_append_new(list, json_pack("{s:s, s:O}", "name", k, "value", v));
    }
    json_object_foreach(extra, k, v) json_array_append_new(list, json_pack("{s:s, s:O}", "name", k, "value", v));
    json_decref(extra);
    json_object_set_new(params, "headers", list);
  }
  shot_send(s, s->session, "Fetch.continueRequest", params, CMD_TIMEOUT_MS, on_fetch_answer);
}

/* basic_auth answers a challenge of the page's origin only; any other
 * (another origin's, a proxy's) is refused */
static void on_auth_required(shot *s, json_t *p) {
  const char *id = json_string_value(json_object_get(p, "requestId"));
  json_t *ch = json_object_get(p, "authChallenge");
  const char *src = json_string_value(json_object_get(ch, "source"));
  const char *url = json_string_value(json_object_get(json_object_get(p, "request"), "url"));
  if (!id) return;
  /* wrong credentials are asked for again: give them a few times, then let
   * the page have its 401 */
  int give = s->o.auth_user[0] && url && same_origin(s, url) && !(src && !strcmp(src, "Proxy")) &&
             s->auth_given < 5;
  if (give) s->auth_given++;
  json_t *resp = give ? json_pack("{s:s, s:s, s:s}", "response", "ProvideCredentials", "username", s->o.auth_user,
                                  "password", s->o.auth_password)
                      : json_pack("{s:s}", "response", "CancelAuth");
  shot_send(s, s->session, "Fetch.continueWithAuth",
            json_pack("{s:s, s:o}", "requestId", id, "authChallengeResponse", resp), CMD_TIMEOUT_MS, on_fetch_answer);
}

static void on_event(tt_cdp *c, const char *method, const char *sid, json_t *p, void *ud) {
  (void)c;
  tt_render *r = ud;
  if (!sid) return;
  shot *s = by_session(r, sid);
  if (!s || s->answered) return;
  if (!strcmp(method, "Fetch.requestPaused")) {
    on_request_paused(s, p);
  } else if (!strcmp(method, "Fetch.authRequired")) {
    on_auth_required(s, p);
  } else if (!strcmp(method, "Page.lifecycleEvent")) {
    const char *frame = json_string_value(json_object_get(p, "frameId"));
    const char *loader = json_string_value(json_object_get(p, "loaderId"));
    const char *name = json_string_value(json_object_get(p, "name"));
    if (!frame || !loader || !name || strcmp(frame, s->target)) return;
    if (strcmp(loader, s->ev_loader)) {
      snprintf(s->ev_loader, sizeof s->ev_loader, "%s", loader);
      s->ev_mask = 0;
    }
    if (!strcmp(name, "DOMContentLoaded")) s->ev_mask |= LC_DCL;
    else if (!strcmp(name, "load")) s->ev_mask |= LC_LOAD;
    else if (!strcmp(name, "networkIdle")) s->ev_mask |= LC_IDLE;
    check_loaded(s);
  } else if (!strcmp(method, "Network.responseReceived")) {
    const char *type = json_string_value(json_object_get(p, "type"));
    const char *frame = json_string_value(json_object_get(p, "frameId"));
    if (!type || strcmp(type, "Document") || !frame || strcmp(frame, s->target)) return;
    json_t *resp = json_object_get(p, "response");
    s->res.http_status = (int)json_integer_value(json_object_get(resp, "status"));
    const char *url = json_string_value(json_object_get(resp, "url"));
    snprintf(s->res.final_url, sizeof s->res.final_url, "%s", url ? url : "");
    /* the proxy's refusal of a plain-http document is an answer Chromium
     * shows; the proxy marks it so it is not mistaken for the page */
    json_t *h = json_object_get(resp, "headers");
    const char *k;
    json_t *v;
    s->nav_blocked = 0;
    json_object_foreach(h, k, v) {
      if (!strcasecmp(k, "X-Tintype-Proxy") && json_is_string(v)) {
        s->nav_blocked = s->res.http_status == 403 ? 1 : 2;
        snprintf(s->proxy_error, sizeof s->proxy_error, "%s", json_string_value(v));
      }
    }
  } else if (!strcmp(method, "Inspector.targetCrashed")) {
    s->crashed = 1;
    shot_fail(s, TT_EIO, 1, "the page crashed");
  }
}

/* ---- the browser -------------------------------------------------------- */

static void drop_spare(tt_render *r);
static void make_spare(tt_render *r);

static void fail_started(tt_render *r, int status, int retryable, const char *why) {
  drop_spare(r);
  warm_drop_all(r, "the browser is gone");
  /* every shot past the waiting room belonged to the browser that is gone */
  shot *s = r->shots;
  while (s) {
    shot *n = s->next;
    if (s->phase != P_WAITING) shot_fail(s, status, retryable, "%s", why);
    s = n;
  }
}

/* the browser keeps failing to start: nobody should wait for it forever */
static void fail_waiting(tt_render *r, const char *why) {
  shot *s = r->shots;
  while (s) {
    shot *n = s->next;
    if (s->phase == P_WAITING) shot_fail(s, TT_EIO, 1, "%s (%s)", why, r->chromium[0] ? r->chromium : "chromium");
    s = n;
  }
}

static void start_waiting(tt_render *r) {
  shot *s = r->shots;
  while (s && r->bstate == B_READY) {
    shot *n = s->next;
    if (s->phase == P_WAITING) shot_step_context(s);
    s = n;
  }
  make_spare(r);
}

static void maybe_freed(tt_render *r);

static void on_cdp_closed(tt_cdp *c, int status, void *ud) {
  tt_render *r = ud;
  (void)status;
  r->cdps--;
  if (r->cdp == c) {
    r->cdp = NULL;
    if (r->bstate != B_CLOSING) {
      fail_started(r, TT_EIO, 1, "the browser connection closed");
      if (r->bstate == B_READY) {
        r->bstate = B_DOWN;
        if (r->browser) tt_chromium_stop(r->browser); /* the exit callback restarts it */
      }
    }
  }
  maybe_freed(r);
}

static void on_cdp_connected(tt_cdp *c, int status, void *ud) {
  tt_render *r = ud;
  if (r->bstate == B_CLOSING) return;
  if (status) {
    tt_logf(TT_LOG_ERROR, "render: cannot connect to the browser: %s", tt_strerror(status));
    if (r->browser) tt_chromium_stop(r->browser);
    return;
  }
  r->bstate = B_READY;
  tt_logf(TT_LOG_INFO, "render: browser ready (pid %d) in %.0f ms", tt_chromium_pid(r->browser),
          ms_since(r->browser_started, uv_hrtime()));
  (void)c;
  start_waiting(r);
}

static void on_browser_ready(tt_chromium *b, int status, const char *ws, void *ud) {
  tt_render *r = ud;
  if (status || r->bstate == B_CLOSING) return; /* the exit callback follows */
  const char *h = strstr(ws, "://"); /* ws://127.0.0.1:PORT/devtools/browser/... */
  const char *pc = h ? strchr(h + 3, ':') : NULL;
  r->devtools_port = pc ? atoi(pc + 1) : 0;
  int rc = tt_cdp_connect(r->loop, ws, on_cdp_connected, on_event, on_cdp_closed, r, &r->cdp);
  if (!rc) r->cdps++;
  if (rc) {
    tt_logf(TT_LOG_ERROR, "render: cannot connect to %s: %s", ws, tt_strerror(rc));
    tt_chromium_stop(b);
  }
}

static void on_restart_timer(uv_timer_t *t) { start_browser(t->data); }

static void on_restart_timer_closed(uv_handle_t *h) {
  tt_render *r = h->data;
  tt_render_close_cb cb = r->close_cb;
  void *ud = r->close_ud;
  free(r);
  if (cb) cb(ud);
}

static void on_idle_timer_closed(uv_handle_t *h) {
  tt_render *r = h->data;
  uv_close((uv_handle_t *)&r->restart_timer, on_restart_timer_closed);
}

/* the engine goes once its browser, its connections and its timers have */
static void maybe_freed(tt_render *r) {
  if (r->bstate != B_CLOSING || r->browser || r->cdps || r->timer_closing) return;
  r->timer_closing = 1;
  uv_close((uv_handle_t *)&r->idle_timer, on_idle_timer_closed);
}

static void on_browser_exit(tt_chromium *b, int64_t code, int sig, void *ud) {
  tt_render *r = ud;
  if (r->browser != b) return;
  r->browser = NULL;
  if (r->cdp) {
    tt_cdp *c = r->cdp;
    r->cdp = NULL;
    tt_cdp_close(c);
  }
  if (r->bstate == B_CLOSING) {
    maybe_freed(r);
    return;
  }
  tt_logf(TT_LOG_WARN, "render: the browser exited (status %lld, signal %d); starting another", (long long)code, sig);
  char why[128];
  snprintf(why, sizeof why, "the browser exited (%s %d)", sig ? "signal" : "status", sig ? sig : (int)code);
  int never_ready = r->bstate == B_STARTING;
  fail_started(r, TT_EIO, 1, why);
  r->bstate = B_DOWN;
  uint64_t lived = (uv_hrtime() - r->browser_started) / 1000000;
  r->quick_deaths = lived < 5000 ? r->quick_deaths + 1 : 0;
  if (never_ready && r->quick_deaths >= 3) fail_waiting(r, "the browser does not start");
  uint64_t delay = 0;
  if (r->quick_deaths > 1) {
    delay = 250u << (r->quick_deaths < 6 ? r->quick_deaths : 6);
    if (delay > RESTART_MAX_DELAY_MS) delay = RESTART_MAX_DELAY_MS;
  }
  uv_timer_start(&r->restart_timer, on_restart_timer, delay, 0);
}

static void start_browser(tt_render *r) {
  if (r->bstate == B_CLOSING) return;
  tt_chromium_opts co = {.binary = r->chromium[0] ? r->chromium : NULL, .extra_flags = r->chromium_flags};
  r->bstate = B_STARTING;
  r->browser_started = uv_hrtime();
  if (r->started_once) r->restarts++;
  r->started_once = 1;
  int rc = tt_chromium_start(r->loop, &co, on_browser_ready, on_browser_exit, r, &r->browser);
  if (rc) {
    tt_logf(TT_LOG_ERROR, "render: cannot start %s: %s", r->chromium[0] ? r->chromium : "chromium", tt_strerror(rc));
    r->browser = NULL;
    r->bstate = B_DOWN;
    r->quick_deaths++;
    fail_waiting(r, "cannot start the browser");
    uv_timer_start(&r->restart_timer, on_restart_timer, RESTART_MAX_DELAY_MS, 0);
  }
}

/* ---- the spare context -------------------------------------------------- */

/* A browser context, page and session made before a shot asks for one: a
 * shot that finds it ready skips context creation (a third of a shot's
 * time when the browser is not saturated). Under saturation it changes
 * nothing: the work is only moved earlier, never wasted (but for the last
 * spare). Nothing of it is shared: each is taken by exactly one shot. */
static shot *shot_new(tt_render *r) {
  shot *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->r = r;
  s->t0 = uv_hrtime();
  s->phase = P_WAITING;
  uv_timer_init(r->loop, &s->deadline);
  uv_timer_init(r->loop, &s->delay);
  s->deadline.data = s->delay.data = s;
  s->timers_open = 2;
  return s;
}

static void make_spare(tt_render *r) {
  if (!r->use_spare || r->spare || r->bstate != B_READY) return;
  shot *s = shot_new(r);
  if (!s) return;
  s->spare = 1;
  s->o.width = 1280;
  s->o.height = 800;
  r->spare = s;
  shot_step_context(s);
}

static void drop_spare(tt_render *r) {
  shot *s = r->spare;
  if (!s) return;
  r->spare = NULL;
  shot_fail(s, TT_ECANCELED, 0, "spare dropped");
}

/* ---- public ------------------------------------------------------------- */

int tt_render_open(uv_loop_t *loop, const tt_render_opts *o, tt_render **out) {
  tt_render *r = calloc(1, sizeof *r);
  if (!r) return TT_ENOMEM;
  r->loop = loop;
  snprintf(r->chromium, sizeof r->chromium, "%s",
           tt_chromium_default_binary(o && o->chromium && *o->chromium ? o->chromium : getenv("TINTYPE_CHROMIUM")));
  if (o && o->chromium_flags) snprintf(r->chromium_flags, sizeof r->chromium_flags, "%s", o->chromium_flags);
  if (o && o->policy) r->policy = *o->policy;
  r->max_full_page_height = o && o->max_full_page_height > 0 ? o->max_full_page_height : 16384;
  r->use_spare = o && o->spare;
  r->isolation_owner = o && o->isolation_owner;
  r->ctx_max_jobs = o && o->context_max_jobs > 0 ? o->context_max_jobs : 100;
  r->max_contexts = o && o->max_contexts > 0 ? o->max_contexts : 8;
  r->ctx_idle_ms = o && o->context_idle_ms > 0 ? (uint64_t)o->context_idle_ms : 60000;
  uv_timer_init(loop, &r->restart_timer);
  r->restart_timer.data = r;
  uv_timer_init(loop, &r->idle_timer);
  r->idle_timer.data = r;
  if (r->isolation_owner) {
    uint64_t tick = r->ctx_idle_ms / 4;
    tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
    uv_timer_start(&r->idle_timer, on_idle_tick, tick, tick);
  }
  start_browser(r);
  *out = r;
  return TT_OK;
}

typedef struct deferred {
  uv_timer_t t;
  shot *s;
} deferred;

static void on_deferred_closed(uv_handle_t *h) { free(h->data); }

static void on_deferred(uv_timer_t *t) {
  deferred *d = t->data;
  shot *s = d->s;
  uv_close((uv_handle_t *)&d->t, on_deferred_closed);
  shot_fail(s, TT_ECANCELED, 0, "the render engine is closing");
}

void tt_render_shot(tt_render *r, const tt_options *o, tt_render_cb cb, void *ud) {
  tt_render_shot_owned(r, o, NULL, cb, ud);
}

void tt_render_shot_owned(tt_render *r, const tt_options *o, const char *owner, tt_render_cb cb, void *ud) {
  int warm = r->isolation_owner && owner && *owner && strlen(owner) < sizeof(((wctx *)0)->owner) && !o->isolation_job;
  wctx *w = NULL, *wait = NULL;
  if (warm && r->bstate == B_READY && r->cdp) warm_choose(r, owner, o->url, &w, &wait);
  shot *s = !w && !wait && r->bstate == B_READY && r->spare && r->spare->phase == P_READY ? r->spare : NULL;
  if (s) {
    /* the spare becomes this shot */
    r->spare = NULL;
    s->spare = 0;
    s->t0 = s->t_start = uv_hrtime();
  } else {
    s = shot_new(r);
  }
  if (!s) tt_oom(); /* one policy (alloc.h); the callback is never inline */
  s->o = *o;
  s->cb = cb;
  s->ud = ud;
  if (warm) snprintf(s->owner, sizeof s->owner, "%s", owner);
  s->next = r->shots;
  if (r->shots) r->shots->prev = s;
  r->shots = s;
  if (r->bstate == B_CLOSING) {
    /* never answer before the call returns */
    deferred *d = calloc(1, sizeof *d);
    if (d) {
      d->s = s;
      uv_timer_init(r->loop, &d->t);
      d->t.data = d;
      uv_timer_start(&d->t, on_deferred, 0, 0);
    }
    return;
  }
  if (w) {
    shot_take_warm(s, w);
  } else if (wait) {
    wait->next_shot = s;
    s->wait_w = wait;
  } else if (s->phase == P_READY) {
    shot_navigate(s);
  } else if (r->bstate == B_READY) {
    shot_step_context(s);
  }
  make_spare(r);
}

/* tt_render_cancel's answer, on the next loop iteration; the reference it
 * held keeps the shot alive until then */
static void on_cancel_due(void *arg) {
  shot *s = arg;
  s->refs--;
  if (s->answered) {
    shot_maybe_free(s);
    return;
  }
  shot_fail(s, TT_ECANCELED, 0, "the shot was stopped by its caller");
}

int tt_render_cancel(tt_render *r, void *ud) {
  for (shot *s = r->shots; s; s = s->next) {
    if (s->spare || s->answered || s->ud != ud || s->cancel) continue;
    s->cancel = 1;
    s->refs++;
    tt_defer(r->loop, on_cancel_due, s);
    return TT_OK;
  }
  return TT_ENOTFOUND;
}

int tt_render_active(const tt_render *r) {
  int n = 0;
  for (const shot *s = r->shots; s; s = s->next) n++;
  return n;
}

int tt_render_restarts(const tt_render *r) { return r->restarts; }

int tt_render_browser_pid(const tt_render *r) {
  return r->browser && r->bstate == B_READY ? tt_chromium_pid(r->browser) : 0;
}

void tt_render_close(tt_render *r, tt_render_close_cb cb, void *ud) {
  r->close_cb = cb;
  r->close_ud = ud;
  int was = r->bstate;
  r->bstate = B_CLOSING;
  (void)was;
  drop_spare(r);
  warm_drop_all(r, "the engine is closing");
  shot *s = r->shots;
  while (s) {
    shot *n = s->next;
    shot_fail(s, TT_ECANCELED, 0, "the render engine is closing");
    s = n;
  }
  uv_timer_stop(&r->restart_timer);
  if (r->cdp) {
    tt_cdp *c = r->cdp;
    r->cdp = NULL;
    tt_cdp_close(c);
  }
  if (r->browser)
    tt_chromium_stop(r->browser);
  else
    maybe_freed(r);
}

json_t *tt_render_result_json(const tt_render_result *r) {
  json_t *hosts = json_array();
  for (int i = 0; i < r->nblocked_hosts; i++) json_array_append_new(hosts, json_string(r->blocked_hosts[i]));
  json_t *j = json_pack("{s:s, s:I, s:i, s:i, s:i, s:s, s:i, s:i, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "format",
                   tt_format_name(r->format), "bytes", (json_int_t)r->len, "width", r->width, "height", r->height,
                   "http_status", r->http_status, "final_url", r->final_url, "blocked", r->blocked, "context_jobs",
                   r->context_jobs, "timings",
                   "queued_ms", (json_int_t)llround(r->t.queued), "context_ms", (json_int_t)llround(r->t.context),
                   "navigate_ms", (json_int_t)llround(r->t.navigate), "wait_ms", (json_int_t)llround(r->t.wait),
                   "capture_ms", (json_int_t)llround(r->t.capture), "total_ms", (json_int_t)llround(r->t.total));
  if (j) json_object_set(j, "blocked_hosts", hosts);
  json_decref(hosts);
  if (j && r->clipped) json_object_set_new(j, "clipped", json_true());
  if (j && r->intercepted) json_object_set_new(j, "blocked_by_job", json_integer(r->blocked_by_job));
  if (j && r->clicked >= 0 && r->clicked_asked) json_object_set_new(j, "clicked", json_integer(r->clicked));
  if (j && r->format == TT_FMT_PDF && r->pages > 0) json_object_set_new(j, "pages", json_integer(r->pages));
  return j;
}

/* ---- image headers ------------------------------------------------------ */

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned be32(const unsigned char *p) { return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]; }
static unsigned le16(const unsigned char *p) { return (unsigned)p[1] << 8 | p[0]; }
static unsigned le24(const unsigned char *p) { return (unsigned)p[2] << 16 | (unsigned)p[1] << 8 | p[0]; }

int tt_image_size(const unsigned char *p, size_t n, int *w, int *h) {
  if (n >= 24 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8) && !memcmp(p + 12, "IHDR", 4)) {
    *w = (int)be32(p + 16);
    *h = (int)be32(p + 20);
    return TT_OK;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    size_t i = 2;
    while (i + 9 < n) {
      if (p[i] != 0xFF) return TT_EINVAL;
      unsigned m = p[i + 1];
      if (m == 0xFF) { i++; continue; }
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
      unsigned len = be16(p + i + 2);
      if ((m >= 0xC0 && m <= 0xCF) && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        *h = (int)be16(p + i + 5);
        *w = (int)be16(p + i + 7);
        return TT_OK;
      }
      i += 2 + len;
    }
    return TT_EINVAL;
  }
  if (n >= 30 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) {
    if (!memcmp(p + 12, "VP8X", 4)) {
      *w = (int)le24(p + 24) + 1;
      *h = (int)le24(p + 27) + 1;
      return TT_OK;
    }
    if (!memcmp(p + 12, "VP8 ", 4)) {
      *w = (int)(le16(p + 26) & 0x3FFF);
      *h = (int)(le16(p + 28) & 0x3FFF);
      return TT_OK;
    }
    if (!memcmp(p + 12, "VP8L", 4) && n >= 25) {
      unsigned b = (unsigned)p[21] | (unsigned)p[22] << 8 | (unsigned)p[23] << 16 | (unsigned)p[24] << 24;
      *w = (int)(b & 0x3FFF) + 1;
      *h = (int)((b >> 14) & 0x3FFF) + 1;
      return TT_OK;
    }
  }
  return TT_EINVAL;
}
