/* webhooks.c — the API side of webhooks (include/tintype/webhook.h): a
 * user's webhook secret (GET /api/users/{id}/webhook-secret, self only),
 * and the delivery state shown on a job (`webhook` in GET /api/jobs/{id}).
 * Deliveries themselves are the worker's (src/webhook/webhook.c); a job's
 * callback_url is validated with the other options (src/job/options.c). */
#include <string.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/webhook.h"

static void secret_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!c->user_id[0] || !c->key_hash[0]) {
    api_problem(c->req, 403, "forbidden", "a webhook secret belongs to a user; use that user's API key");
    return;
  }
  if (strcmp(id, "me") && strcmp(id, c->user_id)) {
    api_problem(c->req, 404, "not-found", "no such user");
    return;
  }
  char secret[TT_WEBHOOK_SECRET_LEN];
  tt_webhook_secret(c->api->secret, c->api->secret_len, c->user_id, c->key_hash, secret);
  api_json(c->req, 200,
           json_pack("{s:s, s:s}", "webhook_secret", secret, "signature",
                     "X-Tintype-Signature: t=TIMESTAMP,v1=HEX(HMAC-SHA256(webhook_secret, TIMESTAMP \".\" BODY)); "
                     "rotating the API key rotates this secret"));
}

static void secret_handler(tt_http_req *req, void *ud) { api_auth(req, ud, secret_op); }

int api_register_webhooks(tt_router *r, tt_api *api) {
  return tt_router_add(r, TT_HTTP_GET, "/api/users/{id}/webhook-secret", secret_handler, api, 0);
}

typedef struct jobhook {
  api_call *c;
  tt_job *job;
} jobhook;

static void on_delivery(void *ud, int status, const void *rec) {
  jobhook *h = ud;
  json_t *o = api_job_json(h->c->req, h->c->api, h->job);
  if (o && status == TT_OK) {
    const tt_delivery *d = rec;
    json_object_set_new(o, "webhook",
                        json_pack("{s:s, s:s, s:I, s:s?, s:I}", "event_id", d->id, "state", d->state ? d->state : "",
                                  "attempts", (json_int_t)d->attempts, "last_error", d->last_error, "delivered_at",
                                  (json_int_t)d->delivered_at));
  } else if (o) {
    json_object_set_new(o, "webhook", json_pack("{s:s}", "state", "waiting")); /* the job has not ended */
  }
  tt_job_free(h->job);
  api_json(h->c->req, 200, o);
}

void api_job_with_webhook(api_call *c, const tt_job *j) {
  if (!j->request || !strstr(j->request, "\"callback_url\"")) {
    api_json(c->req, 200, api_job_json(c->req, c->api, j));
    return;
  }
  jobhook *h = tt_arena_calloc(c->req->arena, sizeof *h);
  h->c = c;
  if (!(h->job = tt_job_dup(j))) tt_oom();
  char id[TT_ID_SIZE];
  tt_webhook_delivery_id(j->id, id);
  tt_store_get(c->api->store, TT_KIND_DELIVERY, id, on_delivery, h);
}
