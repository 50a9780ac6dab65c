/* webhook.c — the webhook outbox and its deliverer (include/tintype/webhook.h).
 *
 * The outbox is the store (tt_delivery records), so nothing a process holds
 * in memory is needed for a delivery to happen: the worker that finishes a
 * job writes the delivery before it acknowledges the job's message (a crash
 * in between redelivers the message, and the worker writes it then), and any
 * worker's deliverer sends it. The deliverer lists pending deliveries every
 * POLL_MS, takes a due one with a conditional update (attempts + 1, next_at
 * moved past this attempt: a lease), reads the job and its owner, signs the
 * body, and POSTs it with libcurl on libuv's thread pool (one blocking easy
 * handle per delivery, at most PARALLEL at once; a delivery is rare next to
 * renders), then records the outcome with another conditional update.
 *
 * The connect-time check is libcurl's open-socket callback: it sees the
 * address about to be connected to (after any DNS), and refuses it unless
 * the network policy allows it and it is no port of tintype's own. */
#include "tintype/webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tintype/alloc.h"
#include "tintype/crypto.h"
#include "tintype/error.h"
#include "tintype/job.h"
#include "tintype/log.h"
#include "tintype/ports.h"

#define POLL_MS 250
#define PARALLEL 4
#define SCAN_LIMIT 100
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define LEASE_EXTRA_MS 2000

struct tt_webhooks {
  uv_loop_t *loop;
  const tt_config *cfg;
  tt_store *store;
  const tt_netpolicy *policy;
  uint8_t secret[TT_SECRET_MAX];
  size_t secret_len;
  uv_timer_t timer;
  int scanning, inflight, closing;
  void (*close_cb)(void *);
  void *close_ud;
};

typedef struct send {
  tt_webhooks *h;
  tt_delivery *d; /* the claimed delivery (owned) */
  char *body;
  char url[2048];
  char headers[3][200];
  long status;    /* HTTP status of the answer, 0 when none */
  char error[256];
  uv_work_t work;
} send_t;

static void maybe_closed(tt_webhooks *h);

void tt_webhook_delivery_id(const char *job_id, char out[TT_ID_SIZE]) {
  tt_job_derived_id(out, "delivery", job_id, (const char *)NULL);
}

void tt_webhook_secret(const uint8_t *secret, size_t secret_len, const char *owner, const char *key_hash,
                       char out[TT_WEBHOOK_SECRET_LEN]) {
  char msg[256];
  int n = snprintf(msg, sizeof msg, "webhook\n%s\n%s", owner, key_hash ? key_hash : "");
  uint8_t mac[32];
  tt_hmac_sha256(secret, secret_len, msg, (size_t)n, mac);
  int j = snprintf(out, TT_WEBHOOK_SECRET_LEN, "whsec_");
  for (int i = 0; i < 32; i++) j += snprintf(out + j, (size_t)(TT_WEBHOOK_SECRET_LEN - j), "%02x", mac[i]);
}

/* ---- the outbox ------------------------------------------------------ */

typedef struct enq {
  void (*cb)(void *, int);
  void *ud;
} enq;

static void on_enqueued(void *ud, int status, const void *rec) {
  (void)rec;
  enq *e = ud;
  e->cb(e->ud, status == TT_EEXIST ? TT_OK : status); /* written before: the same delivery */
  free(e);
}

static int callback_of(const tt_job *j, char *out, size_t cap) {
  out[0] = 0;
  if (!j->request || !strstr(j->request, "callback_url")) return 0;
  json_error_t e;
  json_t *r = json_loads(j->request, 0, &e);
  const char *u = json_string_value(json_object_get(r, "callback_url"));
  if (u) snprintf(out, cap, "%s", u);
  json_decref(r);
  return out[0] != 0;
}

void tt_webhook_enqueue(tt_store *store, const tt_job *j, void (*cb)(void *ud, int status), void *ud) {
  char url[2048];
  if (!callback_of(j, url, sizeof url)) {
    cb(ud, TT_OK);
    return;
  }
  tt_delivery d;
  memset(&d, 0, sizeof d);
  tt_webhook_delivery_id(j->id, d.id);
  d.state = "pending";
  d.owner = (char *)j->owner;
  d.job_id = (char *)j->id;
  d.url = url;
  d.next_at = tt_now_ms();
  enq *e = tt_xmalloc(sizeof *e);
  e->cb = cb;
  e->ud = ud;
  tt_store_create(store, TT_KIND_DELIVERY, &d, on_enqueued, e);
}

/* ---- one POST, on the thread pool ------------------------------------ */

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  send_t *s = ud;
  (void)purpose;
  const struct sockaddr *sa = &a->addr;
  int port = sa->sa_family == AF_INET    ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
             : sa->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
                                         : 0;
  tt_net_verdict v = tt_netpolicy_check_sa(s->h->policy, sa);
  if (v != TT_NET_ALLOWED || !port || tt_ports_is_own(port)) {
    snprintf(s->error, sizeof s->error, "blocked: the callback's address is not allowed (network policy%s)",
             v == TT_NET_ALLOWED ? ": a port of tintype's own" : "");
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype, a->protocol);
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n; /* the answer's body is not read further than this */
}

static void send_run(uv_work_t *w) {
  send_t *s = w->data;
  CURL *c = curl_easy_init();
  if (!c) {
    snprintf(s->error, sizeof s->error, "out of memory");
    return;
  }
  struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
  hs = curl_slist_append(hs, "User-Agent: tintype-webhook/1");
  hs = curl_slist_append(hs, "Expect:");
  for (int i = 0; i < 3; i++) hs = curl_slist_append(hs, s->headers[i]);
  curl_easy_setopt(c, CURLOPT_URL, s->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->h->cfg->webhook_timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status < 200 || s->status > 299) snprintf(s->error, sizeof s->error, "the receiver answered %ld", s->status);
  } else if (!s->error[0]) {
    snprintf(s->error, sizeof s->error, "%s", curl_easy_strerror(rc));
  }
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
}

static void send_free(send_t *s) {
  tt_webhooks *h = s->h;
  tt_delivery_free(s->d);
  free(s->body);
  free(s);
  h->inflight--;
  maybe_closed(h);
}

static void on_outcome_saved(void *ud, int status, const void *rec) {
  (void)rec;
  send_t *s = ud;
  if (status && status != TT_ECANCELED)
    tt_logf(TT_LOG_WARN, "webhook %s: cannot record the outcome: %s", s->d->id, tt_strerror(status));
  send_free(s);
}

/* records the attempt's outcome on the delivery */
static void finish(send_t *s, const char *error) {
  tt_delivery *d = s->d;
  int64_t now = tt_now_ms();
  free(d->last_error);
  d->last_error = error ? tt_xstrdup(error) : NULL;
  free(d->state);
  if (!error) {
    d->state = tt_xstrdup("delivered");
    d->delivered_at = now;
  } else if (d->attempts >= s->h->cfg->webhook_max_attempts) {
    d->state = tt_xstrdup("failed");
    tt_logf(TT_LOG_INFO, "webhook %s of job %s given up after %lld attempts: %s", d->id, d->job_id,
            (long long)d->attempts, error);
  } else {
    d->state = tt_xstrdup("pending");
    int64_t wait = BACKOFF_FIRST_MS;
    for (int64_t i = 1; i < d->attempts && wait < BACKOFF_MAX_MS; i++) wait *= 2;
    d->next_at = now + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
  }
  tt_store_update(s->h->store, TT_KIND_DELIVERY, d, on_outcome_saved, s);
}

static void send_done(uv_work_t *w, int status) {
  send_t *s = w->data;
  if (status) snprintf(s->error, sizeof s->error, "the delivery was not run");
  finish(s, s->error[0] ? s->error : NULL);
}

/* ---- building a delivery: job + owner -> signed body ------------------ */

typedef struct build {
  send_t *s;
  json_t *job;
} build;

static void on_owner(void *ud, int status, const void *rec) {
  send_t *s = ud;
  if (status) {
    finish(s, status == TT_ENOTFOUND ? "the job's owner no longer exists" : tt_strerror(status));
    return;
  }
  const tt_user *u = rec;
  char secret[TT_WEBHOOK_SECRET_LEN];
  tt_webhook_secret(s->h->secret, s->h->secret_len, u->id, u->api_key_hash, secret);
  long long ts = (long long)(tt_now_ms() / 1000);
  char tsbuf[32];
  int tn = snprintf(tsbuf, sizeof tsbuf, "%lld.", ts);
  size_t bl = strlen(s->body);
  char *msg = tt_xmalloc((size_t)tn + bl);
  memcpy(msg, tsbuf, (size_t)tn);
  memcpy(msg + tn, s->body, bl);
  uint8_t mac[32];
  tt_hmac_sha256(secret, strlen(secret), msg, (size_t)tn + bl, mac);
  free(msg);
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  snprintf(s->headers[0], sizeof s->headers[0], "X-Tintype-Event-Id: %s", s->d->id);
  snprintf(s->headers[1], sizeof s->headers[1], "X-Tintype-Timestamp: %lld", ts);
  snprintf(s->headers[2], sizeof s->headers[2], "X-Tintype-Signature: t=%lld,v1=%s", ts, hex);
  s->work.data = s;
  if (uv_queue_work(s->h->loop, &s->work, send_run, send_done)) finish(s, "cannot queue the delivery");
}

static void on_job(void *ud, int status, const void *rec) {
  send_t *s = ud;
  if (status) {
    finish(s, status == TT_ENOTFOUND ? "the job no longer exists" : tt_strerror(status));
    return;
  }
  const tt_job *j = rec;
  json_error_t e;
  json_t *req = j->request ? json_loads(j->request, 0, &e) : NULL;
  json_t *res = j->result ? json_loads(j->result, 0, &e) : NULL;
  char type[48], path[96];
  snprintf(type, sizeof type, "job.%s", j->state);
  snprintf(path, sizeof path, "/api/jobs/%s/result", j->id);
  json_t *job = json_pack("{s:s, s:s, s:o?, s:o?, s:I, s:s?, s:I, s:I, s:I}", "id", j->id, "state", j->state,
                          "request", req, "result", res, "attempts", (json_int_t)j->attempts, "error", j->error,
                          "created_at", (json_int_t)j->created_at, "finished_at", (json_int_t)j->finished_at,
                          "version", (json_int_t)j->version);
  if (job && tt_job_state_of(j->state) == TT_JOB_SUCCEEDED) json_object_set_new(job, "result_path", json_string(path));
  json_t *body = json_pack("{s:s, s:s, s:I, s:o}", "event_id", s->d->id, "type", type, "attempt",
                           (json_int_t)s->d->attempts, "job", job ? job : json_null());
  s->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!s->body) tt_oom();
  tt_store_get(s->h->store, TT_KIND_USER, j->owner, on_owner, s);
}

static void on_claimed(void *ud, int status, const void *rec) {
  send_t *s = ud;
  if (status) { /* another worker took it (TT_ECONFLICT), or it went */
    if (status != TT_ECONFLICT && status != TT_ENOTFOUND && status != TT_ECANCELED)
      tt_logf(TT_LOG_WARN, "webhook %s: cannot take it: %s", s->d->id, tt_strerror(status));
    send_free(s);
    return;
  }
  tt_delivery *d = tt_delivery_dup(rec);
  if (!d) tt_oom();
  tt_delivery_free(s->d);
  s->d = d;
  tt_store_get(s->h->store, TT_KIND_JOB, d->job_id, on_job, s);
}

static void take(tt_webhooks *h, const tt_delivery *d) {
  send_t *s = calloc(1, sizeof *s);
  if (!s) tt_oom();
  s->h = h;
  s->d = tt_delivery_dup(d);
  if (!s->d) tt_oom();
  snprintf(s->url, sizeof s->url, "%s", d->url ? d->url : "");
  h->inflight++;
  s->d->attempts++;
  s->d->next_at = tt_now_ms() + h->cfg->webhook_timeout_ms + LEASE_EXTRA_MS; /* the lease */
  tt_store_update(h->store, TT_KIND_DELIVERY, s->d, on_claimed, s);
}

/* ---- the poll --------------------------------------------------------- */

static void on_pending(void *ud, int status, const void *recs, size_t n, const char *next) {
  (void)next;
  tt_webhooks *h = ud;
  h->scanning = 0;
  if (status) {
    if (status != TT_ECANCELED) tt_logf(TT_LOG_WARN, "webhooks: cannot list the outbox: %s", tt_strerror(status));
    maybe_closed(h);
    return;
  }
  const tt_delivery *ds = recs;
  int64_t now = tt_now_ms();
  for (size_t i = n; i-- > 0 && h->inflight < PARALLEL && !h->closing;) /* oldest first */
    if (ds[i].next_at <= now) take(h, &ds[i]);
  maybe_closed(h);
}

static void on_tick(uv_timer_t *t) {
  tt_webhooks *h = t->data;
  if (h->scanning || h->closing || h->inflight >= PARALLEL) return;
  h->scanning = 1;
  tt_store_query q = {.state = "pending", .limit = SCAN_LIMIT};
  tt_store_list(h->store, TT_KIND_DELIVERY, &q, on_pending, h);
}

int tt_webhooks_open(uv_loop_t *loop, const tt_config *cfg, tt_store *store, const tt_netpolicy *policy,
                     const uint8_t *secret, size_t secret_len, tt_webhooks **out) {
  *out = NULL;
  if (secret_len > TT_SECRET_MAX || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return TT_EINVAL;
  tt_webhooks *h = calloc(1, sizeof *h);
  if (!h) return TT_ENOMEM;
  h->loop = loop;
  h->cfg = cfg;
  h->store = store;
  h->policy = policy;
  memcpy(h->secret, secret, secret_len);
  h->secret_len = secret_len;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  uv_timer_start(&h->timer, on_tick, POLL_MS, POLL_MS);
  *out = h;
  return TT_OK;
}

static void on_timer_closed(uv_handle_t *hd) {
  tt_webhooks *h = hd->data;
  void (*cb)(void *) = h->close_cb;
  void *ud = h->close_ud;
  free(h);
  if (cb) cb(ud);
}

static void maybe_closed(tt_webhooks *h) {
  if (h->closing != 1 || h->inflight || h->scanning || uv_is_closing((uv_handle_t *)&h->timer)) return;
  h->closing = 2;
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

void tt_webhooks_close(tt_webhooks *h, void (*cb)(void *ud), void *ud) {
  h->closing = 1;
  h->close_cb = cb;
  h->close_ud = ud;
  uv_timer_stop(&h->timer);
  maybe_closed(h);
}
