/* batch.c — batches of jobs (issue 15 item 3): POST /api/jobs/batch and
 * GET /api/jobs?batch=ID (jobs.c hands that query here).
 *
 * A batch is {"jobs":[options, ...]} with 1 to --max-batch items. Each item
 * is validated and answered on its own: a valid one becomes a job exactly
 * as POST /api/jobs makes it (queue message and record), an invalid one
 * becomes its problem, and neither stops the others. The items run one
 * after the other (a batch is bounded; a batch must not starve the
 * process's other requests), then a batch record (store.h tt_batch) keeps
 * what each item became, and the answer is read back from it.
 *
 * One Idempotency-Key covers the whole batch: the batch's id is derived
 * from owner + key (a replay is a get by id: the same answer, with the
 * jobs as they are now, Idempotent-Replayed: true; another body with the
 * same key is 422), and each item's job gets the key "batch:ID:INDEX", so a
 * retry after a crash half-way creates only the jobs still missing (job
 * creation with a key is record first, then message, as in jobs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"

#define BATCH_BODY_MAX (1024 * 1024)

typedef struct batch {
  api_call *c;
  json_t *in;   /* the items as given (owned) */
  json_t *canon; /* per item: canonical options, or NULL when invalid (owned) */
  json_t *items; /* per item: {"job":ID} or {"problem":{...}} (owned) */
  size_t n, at;
  char id[TT_ID_SIZE];
  char idem[256];
  int keyed, replay, listing;
  char *request_json;
  tt_job job; /* the item being created */
  char job_idem[TT_ID_SIZE + 32];
  int64_t created_version;
  json_t *out; /* the answer being built (owned) */
} batch;

static void batch_free_json(batch *b) {
  json_decref(b->in);
  json_decref(b->canon);
  json_decref(b->items);
  json_decref(b->out);
  b->in = b->canon = b->items = b->out = NULL;
}

static json_t *problem_json(int status, const char *kind, const char *detail, const char *field) {
  char type[96];
  snprintf(type, sizeof type, "/problems/%s", kind);
  json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", tt_http_status_text(status), "status",
                        status, "detail", detail);
  if (p && field) json_object_set_new(p, "field", json_string(field));
  return p;
}

/* ---- the answer: items read back from the store ------------------------ */

static void render_next(batch *b);

static void on_item_job(void *ud, int status, const void *rec) {
  batch *b = ud;
  const tt_job *j = rec;
  if (status == TT_OK && strcmp(j->owner, b->c->user_id)) status = TT_ENOTFOUND;
  json_t *job = status == TT_OK ? api_job_json(b->c->req, b->c->api, j) : NULL;
  if (b->listing) {
    if (job) json_array_append_new(json_object_get(b->out, "items"), job);
  } else if (job) {
    json_array_append_new(json_object_get(b->out, "items"), json_pack("{s:i, s:o}", "status", 202, "job", job));
  } else {
    json_t *p = status == TT_ENOTFOUND ? problem_json(404, "not-found", "the job of this item is gone", NULL)
                                       : problem_json(503, "busy", "the job of this item could not be read", NULL);
    json_array_append_new(json_object_get(b->out, "items"), json_pack("{s:i, s:o}", "status",
                                                                      status == TT_ENOTFOUND ? 404 : 503, "problem", p));
  }
  b->at++;
  render_next(b);
}

static void render_next(batch *b) {
  for (; b->at < json_array_size(b->items); b->at++) {
    json_t *it = json_array_get(b->items, b->at);
    const char *jid = json_string_value(json_object_get(it, "job"));
    if (jid) {
      tt_store_get(b->c->api->store, TT_KIND_JOB, jid, on_item_job, b);
      return;
    }
    if (b->listing) continue;
    json_t *p = json_object_get(it, "problem");
    json_array_append_new(json_object_get(b->out, "items"),
                          json_pack("{s:I, s:O}", "status", json_integer_value(json_object_get(p, "status")),
                                    "problem", p));
  }
  tt_http_req *req = b->c->req;
  json_t *out = b->out;
  b->out = NULL;
  batch_free_json(b);
  if (b->replay) tt_http_add_header(req, "Idempotent-Replayed", "true");
  if (!b->listing) tt_http_add_header(req, "Location", tt_arena_sprintf(req->arena, "/api/jobs?batch=%s", b->id));
  api_json(req, 200, out);
}

static void render(batch *b, const char *items_json) {
  json_error_t e;
  json_decref(b->items);
  b->items = items_json ? json_loads(items_json, 0, &e) : NULL;
  if (!json_is_array(b->items)) {
    json_decref(b->items);
    b->items = json_array();
  }
  b->at = 0;
  if (b->listing) {
    b->out = json_pack("{s:[], s:n}", "items", "next_cursor");
  } else {
    char link[96];
    snprintf(link, sizeof link, "/api/jobs?batch=%s", b->id);
    b->out = json_pack("{s:s, s:[], s:{s:s}}", "id", b->id, "items", "links", "jobs", link);
  }
  render_next(b);
}

/* ---- creating the items --------------------------------------------- */

static void next_item(batch *b);

static void item_done(batch *b, json_t *outcome) {
  json_array_append_new(b->items, outcome);
  b->at++;
  next_item(b);
}

static void item_failed(batch *b, int err) {
  int busy = err == TT_EBUSY;
  item_done(b, json_pack("{s:o}", "problem",
                         problem_json(busy ? 503 : 500, busy ? "busy" : "internal",
                                      busy ? "the data store is busy; retry this item" : "this item's job was not created",
                                      NULL)));
}

static void item_made(batch *b, const char *job_id) {
  tt_metrics_add(TT_M_JOBS_CREATED, 1);
  item_done(b, json_pack("{s:s}", "job", job_id));
}

static void on_item_created(void *ud, int status, const void *rec) {
  (void)rec;
  batch *b = ud;
  if (status) {
    item_failed(b, status);
    return;
  }
  item_made(b, b->job.id);
}

static void on_item_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  batch *b = ud;
  if (status) {
    item_failed(b, status);
    return;
  }
  tt_store_create(b->c->api->store, TT_KIND_JOB, &b->job, on_item_created, b);
}

static void on_keyed_item_undone(void *ud, int status, const void *rec) {
  (void)status;
  (void)rec;
  item_failed(ud, TT_EIO);
}

static void on_keyed_item_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  batch *b = ud;
  if (status) { /* the record goes again: a retry of the batch makes it anew */
    tt_store_delete(b->c->api->store, TT_KIND_JOB, b->job.id, b->created_version, on_keyed_item_undone, b);
    return;
  }
  item_made(b, b->job.id);
}

static void on_keyed_item_existing(void *ud, int status, const void *rec) {
  batch *b = ud;
  if (status) {
    item_failed(b, status);
    return;
  }
  item_done(b, json_pack("{s:s}", "job", ((const tt_job *)rec)->id)); /* made by an earlier try */
}

static void on_keyed_item_created(void *ud, int status, const void *rec) {
  batch *b = ud;
  if (status == TT_EEXIST) {
    tt_store_job_by_idempotency(b->c->api->store, b->c->user_id, b->job_idem, on_keyed_item_existing, b);
    return;
  }
  if (status) {
    item_failed(b, status);
    return;
  }
  b->created_version = ((const tt_job *)rec)->version;
  char msg[TT_JOB_MSG_MAX];
  int n = tt_job_message(msg, b->job.id);
  tt_queue_send(b->c->api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_keyed_item_sent, b);
}

static void on_batch_saved(void *ud, int status, const void *rec) {
  batch *b = ud;
  (void)rec;
  if (status && status != TT_EEXIST) /* the jobs exist: answer them; only ?batch= will not find them */
    tt_logf(TT_LOG_WARN, "batch %s: cannot store the batch record: %s", b->id, tt_strerror(status));
  char *items = json_dumps(b->items, JSON_COMPACT);
  render(b, items);
  free(items);
}

static void next_item(batch *b) {
  tt_api *api = b->c->api;
  while (b->at < b->n) {
    json_t *canon = json_array_get(b->canon, b->at);
    if (!json_object_get(canon, "url")) { /* invalid: {"problem":...}, made when it was checked */
      json_array_append(b->items, canon);
      b->at++;
      continue;
    }
    char *req_json = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    if (!req_json) tt_oom();
    memset(&b->job, 0, sizeof b->job);
    tt_id_new(b->job.id);
    memcpy(b->job.owner, b->c->user_id, TT_ID_SIZE);
    b->job.state = (char *)tt_job_state_name(TT_JOB_QUEUED);
    b->job.request = tt_arena_strdup(b->c->req->arena, req_json);
    free(req_json);
    if (b->keyed) {
      snprintf(b->job_idem, sizeof b->job_idem, "batch:%s:%zu", b->id, b->at);
      b->job.idempotency_key = b->job_idem;
      tt_store_create(api->store, TT_KIND_JOB, &b->job, on_keyed_item_created, b);
    } else {
      char msg[TT_JOB_MSG_MAX];
      int n = tt_job_message(msg, b->job.id);
      tt_queue_send(api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_item_sent, b);
    }
    return;
  }
  char *items = json_dumps(b->items, JSON_COMPACT);
  if (!items) tt_oom();
  tt_batch rec = {.state = "created", .request = b->request_json, .items = items,
                  .idempotency_key = b->keyed ? b->idem : NULL};
  memcpy(rec.id, b->id, TT_ID_SIZE);
  memcpy(rec.owner, b->c->user_id, TT_ID_SIZE);
  tt_store_create(api->store, TT_KIND_BATCH, &rec, on_batch_saved, b);
  free(items);
}

static void on_replay_lookup(void *ud, int status, const void *rec) {
  batch *b = ud;
  if (status == TT_OK) {
    const tt_batch *r = rec;
    if (strcmp(r->owner, b->c->user_id) || !r->request || strcmp(r->request, b->request_json)) {
      batch_free_json(b);
      api_problem(b->c->req, 422, "idempotency-key-reused", "this Idempotency-Key was used for a different batch");
      return;
    }
    b->replay = 1;
    render(b, r->items);
    return;
  }
  if (status != TT_ENOTFOUND) {
    batch_free_json(b);
    api_backend_error(b->c->req, status);
    return;
  }
  next_item(b);
}

static void batch_op(api_call *c) {
  tt_http_req *req = c->req;
  if (c->is_admin && !c->user_id[0]) {
    api_problem(req, 403, "admin-has-no-jobs", "jobs belong to users; use a user's API key");
    return;
  }
  json_t *body = api_json_body(req);
  if (!body) return;
  const char *k;
  json_t *v;
  json_object_foreach(body, k, v) if (strcmp(k, "jobs")) {
    char *f = tt_arena_sprintf(req->arena, "%.80s", k);
    json_decref(body);
    api_invalid(req, f, tt_arena_sprintf(req->arena, "unknown field %s (a batch is {\"jobs\":[...]})", f));
    return;
  }
  json_t *jobs = json_object_get(body, "jobs");
  size_t n = json_array_size(jobs);
  int64_t max = c->api->cfg->max_batch;
  if (!json_is_array(jobs) || n == 0 || (int64_t)n > max) {
    json_decref(body);
    api_invalid(req, "jobs",
                tt_arena_sprintf(req->arena, "jobs must be an array of 1 to %lld job requests (max-batch)", (long long)max));
    return;
  }
  batch *b = tt_arena_calloc(req->arena, sizeof *b);
  b->c = c;
  b->n = n;
  b->in = json_incref(jobs);
  json_decref(body);
  b->canon = json_array();
  b->items = json_array();
  json_t *canon_all = json_array();
  for (size_t i = 0; i < n; i++) {
    tt_options o;
    char field[96], detail[256];
    json_t *item = json_array_get(b->in, i);
    if (tt_options_parse(item, c->api->cfg, &o, field, sizeof field, detail, sizeof detail)) {
      char f[128];
      snprintf(f, sizeof f, "jobs[%zu]%s%s", i, field[0] ? "." : "", field);
      json_array_append_new(b->canon, json_pack("{s:o}", "problem", problem_json(400, "invalid-field", detail, f)));
      json_array_append(canon_all, item);
    } else {
      json_t *cj = tt_options_to_json(&o);
      json_array_append(b->canon, cj);
      json_array_append_new(canon_all, cj);
    }
  }
  char *s = json_dumps(canon_all, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(canon_all);
  if (!s) tt_oom();
  b->request_json = tt_arena_strdup(req->arena, s);
  free(s);
  const char *idem = tt_http_header_get(req, "Idempotency-Key");
  if (idem) {
    size_t len = strlen(idem);
    int ok = len > 0 && len < sizeof b->idem;
    for (size_t i = 0; ok && i < len; i++)
      if ((unsigned char)idem[i] < 0x21 || (unsigned char)idem[i] > 0x7e) ok = 0;
    if (!ok) {
      batch_free_json(b);
      api_invalid(req, "Idempotency-Key", "Idempotency-Key must be 1 to 255 visible ASCII characters");
      return;
    }
    memcpy(b->idem, idem, len + 1);
    b->keyed = 1;
    tt_job_derived_id(b->id, "batch", c->user_id, b->idem, (const char *)NULL);
    tt_store_get(c->api->store, TT_KIND_BATCH, b->id, on_replay_lookup, b);
    return;
  }
  tt_id_new(b->id);
  next_item(b);
}

/* ---- GET /api/jobs?batch=ID -------------------------------------------- */

static void on_list_batch(void *ud, int status, const void *rec) {
  batch *b = ud;
  if (status == TT_OK && strcmp(((const tt_batch *)rec)->owner, b->c->user_id)) status = TT_ENOTFOUND;
  if (status) {
    if (status == TT_ENOTFOUND) api_problem(b->c->req, 404, "not-found", "no such batch");
    else api_backend_error(b->c->req, status);
    return;
  }
  render(b, ((const tt_batch *)rec)->items);
}

void api_batch_list(api_call *c, const char *id) {
  batch *b = tt_arena_calloc(c->req->arena, sizeof *b);
  b->c = c;
  b->listing = 1;
  memcpy(b->id, id, TT_ID_SIZE);
  tt_store_get(c->api->store, TT_KIND_BATCH, id, on_list_batch, b);
}

static void batch_handler(tt_http_req *req, void *ud) { api_auth(req, ud, batch_op); }

int api_register_batch(tt_router *r, tt_api *api) {
  return tt_router_add(r, TT_HTTP_POST, "/api/jobs/batch", batch_handler, api, BATCH_BODY_MAX);
}
