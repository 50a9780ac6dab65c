/* jobs.c — /api/jobs: render jobs (DESIGN §4).
 *
 * POST validates every option (options.h), honours Idempotency-Key, and
 * writes the queue message BEFORE the record, both keyed by a job id made
 * here: a crash between the two leaves a message whose record does not
 * exist, which the worker treats as "not yet" (left to its visibility
 * timeout, dead-lettered after max_receives) and the client — who never got
 * a 202 — retries. The opposite order could leave a queued record that no
 * message will ever run. GET reads, lists (state filter, cursor), DELETE
 * cancels an unfinished job (conditional update, retried on a lost race),
 * /result serves the image (Bearer or a signed link), /events streams each
 * state change as Server-Sent Events until a final state, polling the store
 * so changes made by any process or instance are seen. */
#include <string.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/clock.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/job.h"
#include "tintype/router.h"

#define EVENTS_POLL_MS 250

static int final_state(const char *s) { return tt_job_state_final(s); }

int api_job_cached(const tt_job *j) {
  if (!j->result || !strstr(j->result, "\"cached\"")) return 0;
  json_error_t e;
  json_t *r = json_loads(j->result, 0, &e);
  int cached = json_is_true(json_object_get(r, "cached"));
  json_decref(r);
  return cached;
}

json_t *api_job_json(tt_http_req *req, tt_api *api, const tt_job *j) {
  json_error_t e;
  json_t *request = j->request ? json_loads(j->request, 0, &e) : NULL;
  json_t *result = j->result ? json_loads(j->result, 0, &e) : NULL;
  json_t *o = json_pack("{s:s, s:s, s:o?, s:o?, s:I, s:s?, s:I, s:I, s:I}", "id", j->id, "state", j->state,
                        "request", request, "result", result, "attempts", (json_int_t)j->attempts, "error",
                        j->error, "created_at", (json_int_t)j->created_at, "updated_at",
                        (json_int_t)j->updated_at, "version", (json_int_t)j->version);
  if (!o) return NULL;
  /* where a job is now: queued, then the worker's phases while it runs */
  if (j->state && !strcmp(j->state, "queued"))
    json_object_set_new(o, "phase", json_string("queued"));
  else if (j->state && !strcmp(j->state, "running"))
    json_object_set_new(o, "phase", json_string(j->phase && *j->phase ? j->phase : "opening"));
  if (j->started_at) json_object_set_new(o, "started_at", json_integer(j->started_at));
  if (j->finished_at) json_object_set_new(o, "finished_at", json_integer(j->finished_at));
  if (j->idempotency_key) json_object_set_new(o, "idempotency_key", json_string(j->idempotency_key));
  json_object_set_new(o, "cached", json_boolean(api_job_cached(j)));
  char path[128];
  json_t *links = json_object();
  snprintf(path, sizeof path, "/api/jobs/%s", j->id);
  json_object_set_new(links, "self", json_string(path));
  snprintf(path, sizeof path, "/api/jobs/%s/events", j->id);
  json_object_set_new(links, "events", json_string(path));
  if (tt_job_state_of(j->state) == TT_JOB_SUCCEEDED && j->result_key) {
    snprintf(path, sizeof path, "/api/jobs/%s/result", j->id);
    const char *signed_link = api_signed_link(req, api, path);
    if (signed_link) json_object_set_new(links, "result", json_string(signed_link));
  }
  json_object_set_new(o, "links", links);
  return o;
}

/* ---- POST /api/jobs ---- */

typedef struct create {
  api_call *c;
  tt_job job;
  char *request_json;
  char *idem;              /* in the request arena */
  int64_t created_version; /* keyed path: the record's version, to undo it */
  int send_status;         /* keyed path: why the send failed */
  int64_t wait_ms;         /* ?wait=: answer with the image when it is ready in time */
  int cache_ttl;           /* seconds; 0: no cache lookup */
  char cache_id[TT_ID_SIZE];
  int cache_hit;
  char *cached_result;
  int has_callback; /* a cached job with a webhook still sends its message: the worker writes the webhook */
  const tt_job *made;
} create;

static void respond_job(tt_http_req *req, tt_api *api, int status, const tt_job *j) {
  char *loc = tt_arena_sprintf(req->arena, "/api/jobs/%s", j->id);
  tt_http_add_header(req, "Location", loc);
  api_json(req, status, api_job_json(req, api, j));
}

static void on_job_created(void *ud, int status, const void *rec);
static void answer(create *cr, int status, const tt_job *j);

/* A job answered from the cache is finished before any worker saw it; if
 * it names a callback_url, its message still goes out so that a worker
 * writes its webhook into the outbox (webhook.h) — one path for every
 * finished job. */
static void on_cached_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  create *cr = ud;
  if (status) tt_logf(TT_LOG_WARN, "jobs: the webhook message of cached job %s: %s", cr->made->id, tt_strerror(status));
  answer(cr, 202, cr->made);
  tt_job_free((tt_job *)cr->made);
}

static void answer_cached(create *cr, const tt_job *j) {
  tt_metrics_add(TT_M_JOBS_CREATED, 1);
  tt_metrics_add(TT_M_CACHE_HITS, 1);
  if (!cr->has_callback) {
    answer(cr, 202, j);
    return;
  }
  cr->made = tt_job_dup(j);
  if (!cr->made) tt_oom();
  char msg[TT_JOB_MSG_MAX];
  int n = tt_job_message(msg, j->id);
  tt_queue_send(cr->c->api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_cached_sent, cr);
}

/* The job exists: its record now, or (with ?wait=) the image once it is
 * ready (jobwait.c). */
static void answer(create *cr, int status, const tt_job *j) {
  if (cr->wait_ms > 0 || (cr->c->flags & API_CALL_RENDER_LINK)) {
    api_job_wait(cr->c, j, cr->wait_ms);
    return;
  }
  respond_job(cr->c->req, cr->c->api, status, j);
}

/* A job already holds this request's Idempotency-Key: the same request
 * (canonical JSON of url + options) is answered with that job, 200
 * Idempotent-Replayed; another request reusing the key is 422. */
static void answer_existing(create *cr, const tt_job *j) {
  if (j->request && cr->request_json && strcmp(j->request, cr->request_json)) {
    api_problem(cr->c->req, 422, "idempotency-key-reused", "this Idempotency-Key was used for a different request");
    return;
  }
  tt_http_add_header(cr->c->req, "Idempotent-Replayed", "true");
  answer(cr, 200, j);
}

static void on_idem_existing(void *ud, int status, const void *rec) {
  create *cr = ud;
  if (status) {
    api_backend_error(cr->c->req, status);
    return;
  }
  answer_existing(cr, rec);
}

/* Without a key: message first, then the record. A record never exists
 * without its message; a message whose record was never written (the
 * create failed) is dropped by the worker. */
static void on_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  create *cr = ud;
  if (status) {
    api_backend_error(cr->c->req, status);
    return;
  }
  tt_store_create(cr->c->api->store, TT_KIND_JOB, &cr->job, on_job_created, cr);
}

static void on_job_created(void *ud, int status, const void *rec) {
  create *cr = ud;
  if (status) {
    api_backend_error(cr->c->req, status);
    return;
  }
  if (cr->cache_hit) {
    answer_cached(cr, rec);
    return;
  }
  tt_metrics_add(TT_M_JOBS_CREATED, 1);
  answer(cr, 202, rec);
}

static void send_then_create(create *cr) {
  char msg[TT_JOB_MSG_MAX];
  int n = tt_job_message(msg, cr->job.id);
  tt_queue_send(cr->c->api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_sent, cr);
}

/* With a key: the record first — its (owner, key) is unique, so of many
 * concurrent requests exactly one creates it — then the winner alone sends
 * the message. Losers send nothing (no orphan message) and answer with the
 * winner's job or 422. If the send fails, the record is deleted again and
 * the client may retry with the same key. */
static void on_keyed_reread(void *ud, int status, const void *rec) {
  create *cr = ud;
  if (status) {
    api_backend_error(cr->c->req, status);
    return;
  }
  tt_metrics_add(TT_M_JOBS_CREATED, 1);
  answer(cr, 202, rec);
}

static void on_keyed_undone(void *ud, int status, const void *rec) {
  (void)status;
  (void)rec;
  create *cr = ud;
  api_backend_error(cr->c->req, cr->send_status);
}

static void on_keyed_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  create *cr = ud;
  if (status) {
    cr->send_status = status;
    tt_store_delete(cr->c->api->store, TT_KIND_JOB, cr->job.id, cr->created_version, on_keyed_undone, cr);
    return;
  }
  /* the stored record (its version and times) is what the client gets */
  tt_store_get(cr->c->api->store, TT_KIND_JOB, cr->job.id, on_keyed_reread, cr);
}

static void send_keyed(create *cr) {
  char msg[TT_JOB_MSG_MAX];
  int n = tt_job_message(msg, cr->job.id);
  tt_queue_send(cr->c->api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_keyed_sent, cr);
}

static void on_keyed_created(void *ud, int status, const void *rec) {
  create *cr = ud;
  if (status == TT_EEXIST) { /* a concurrent request with the same key won */
    tt_store_job_by_idempotency(cr->c->api->store, cr->c->user_id, cr->idem, on_idem_existing, cr);
    return;
  }
  if (status) {
    api_backend_error(cr->c->req, status);
    return;
  }
  if (cr->cache_hit) { /* already succeeded: no render to ask for */
    answer_cached(cr, rec);
    return;
  }
  cr->created_version = ((const tt_job *)rec)->version;
  send_keyed(cr);
}

/* A queued job of this key whose message may have been lost (the process
 * that created the record died before its send): a replay long after its
 * creation, never started, sends its message again. A second message for a
 * job is harmless (workers are idempotent: the first to run it wins, the
 * other finds it started or finished). */
static int maybe_orphaned(const create *cr, const tt_job *j) {
  int64_t age = tt_now_ms() - j->created_at;
  return j->state && !strcmp(j->state, tt_job_state_name(TT_JOB_QUEUED)) && j->attempts == 0 &&
         age > (int64_t)cr->c->api->cfg->job_visibility_ms;
}

static void on_resent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  create *cr = ud;
  if (status) tt_logf(TT_LOG_WARN, "jobs: re-sending the message of job %s: %s", cr->job.id, tt_strerror(status));
  tt_store_job_by_idempotency(cr->c->api->store, cr->c->user_id, cr->idem, on_idem_existing, cr);
}

/* ---- the result cache (issue 15 item 2) ----
 * A fresh entry for the same owner and canonical request becomes a new job
 * record, already succeeded, that names the same blob: no message, no
 * render. The worker writes entries (worker.c) when a job that asked for
 * caching succeeds. Both paths (with and without Idempotency-Key) look here
 * first when the job has a cache_ttl. */

static void create_uncached(create *cr) {
  if (cr->job.idempotency_key)
    tt_store_create(cr->c->api->store, TT_KIND_JOB, &cr->job, on_keyed_created, cr);
  else
    send_then_create(cr);
}

static void on_cache_lookup(void *ud, int status, const void *rec) {
  create *cr = ud;
  const tt_cache_entry *e = rec;
  int64_t now = tt_now_ms();
  if (status == TT_OK && e->state && !strcmp(e->state, "ready") && e->result_key && e->job_id &&
      !strcmp(e->owner, cr->c->user_id) && now - e->rendered_at <= (int64_t)cr->cache_ttl * 1000) {
    json_error_t jerr;
    json_t *r = e->result ? json_loads(e->result, 0, &jerr) : NULL;
    if (!json_is_object(r)) {
      json_decref(r);
      r = json_object();
    }
    json_object_set_new(r, "cached", json_true());
    json_object_set_new(r, "cached_from", json_string(e->job_id));
    json_object_set_new(r, "rendered_at", json_integer(e->rendered_at));
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (s) {
      tt_http_req *req = cr->c->req;
      cr->cached_result = tt_arena_strdup(req->arena, s);
      free(s);
      cr->cache_hit = 1;
      cr->job.state = (char *)tt_job_state_name(TT_JOB_SUCCEEDED);
      cr->job.result_key = tt_arena_strdup(req->arena, e->result_key);
      cr->job.result = cr->cached_result;
      cr->job.started_at = cr->job.finished_at = now;
      tt_store_create(cr->c->api->store, TT_KIND_JOB, &cr->job,
                      cr->job.idempotency_key ? on_keyed_created : on_job_created, cr);
      return;
    }
  }
  if (status != TT_OK && status != TT_ENOTFOUND)
    tt_logf(TT_LOG_WARN, "result cache lookup failed: %s", tt_strerror(status)); /* render instead */
  tt_metrics_add(TT_M_CACHE_MISSES, 1);
  create_uncached(cr);
}

/* No job with this Idempotency-Key (or none given): from the cache, or
 * queued. */
static void create_new(create *cr) {
  if (cr->cache_ttl > 0) {
    tt_store_get(cr->c->api->store, TT_KIND_CACHE, cr->cache_id, on_cache_lookup, cr);
    return;
  }
  create_uncached(cr);
}

static void on_idem_lookup(void *ud, int status, const void *rec) {
  create *cr = ud;
  if (status == TT_OK) {
    const tt_job *j = rec;
    if (maybe_orphaned(cr, j) && j->request && cr->request_json && !strcmp(j->request, cr->request_json)) {
      char msg[TT_JOB_MSG_MAX];
      int n = tt_job_message(msg, j->id);
      memcpy(cr->job.id, j->id, TT_ID_SIZE);
      tt_queue_send(cr->c->api->queue, TT_QUEUE_JOBS, msg, (size_t)n, 0, on_resent, cr);
      return;
    }
    answer_existing(cr, j);
    return;
  }
  if (status != TT_ENOTFOUND) {
    api_backend_error(cr->c->req, status);
    return;
  }
  create_new(cr);
}

void api_job_submit(api_call *c, const tt_options *o, int64_t wait_ms, const char *idem) {
  tt_http_req *req = c->req;
  create *cr = tt_arena_calloc(req->arena, sizeof *cr);
  if (!cr) {
    api_problem(req, 500, "internal", "out of memory");
    return;
  }
  cr->c = c;
  cr->wait_ms = wait_ms;
  cr->has_callback = o->callback_url[0] != 0;
  cr->cache_ttl = c->api->cfg->max_cache_ttl > 0 ? o->cache_ttl : 0;
  if (cr->cache_ttl && tt_job_cache_id(c->user_id, o, cr->cache_id)) {
    api_problem(req, 500, "internal", "out of memory");
    return;
  }
  json_t *canon = tt_options_to_json(o);
  char *s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(canon);
  cr->request_json = s ? tt_arena_strdup(req->arena, s) : NULL;
  free(s);
  if (!cr->request_json) {
    api_problem(req, 500, "internal", "out of memory");
    return;
  }
  tt_id_new(cr->job.id);
  memcpy(cr->job.owner, c->user_id, TT_ID_SIZE);
  cr->job.state = (char *)tt_job_state_name(TT_JOB_QUEUED);
  cr->job.request = cr->request_json;
  if (idem) {
    cr->idem = tt_arena_strdup(req->arena, idem);
    cr->job.idempotency_key = cr->idem;
    tt_store_job_by_idempotency(c->api->store, c->user_id, cr->idem, on_idem_lookup, cr);
    return;
  }
  create_new(cr);
}

static void create_op(api_call *c) {
  tt_http_req *req = c->req;
  if (c->is_admin && !c->user_id[0]) {
    api_problem(req, 403, "admin-has-no-jobs", "jobs belong to users; use a user's API key");
    return;
  }
  int64_t wait_ms;
  if (api_parse_wait(req, c->api->cfg, &wait_ms)) return;
  json_t *in = api_json_body(req);
  if (!in) return;
  tt_options o;
  char field[96], detail[256];
  int rc = tt_options_parse(in, c->api->cfg, &o, field, sizeof field, detail, sizeof detail);
  json_decref(in);
  if (rc) {
    api_invalid(req, tt_arena_strdup(req->arena, field), tt_arena_strdup(req->arena, detail));
    return;
  }
  const char *idem = tt_http_header_get(req, "Idempotency-Key");
  if (idem) {
    size_t n = strlen(idem);
    int64_t max = c->api->cfg->max_idempotency_key_bytes;
    int ok = n > 0 && (int64_t)n <= max;
    for (size_t i = 0; ok && i < n; i++)
      if ((unsigned char)idem[i] < 0x21 || (unsigned char)idem[i] > 0x7e) ok = 0;
    if (!ok) {
      char *d = tt_arena_sprintf(req->arena,
                                 "Idempotency-Key must be 1 to %lld visible ASCII characters "
                                 "(max-idempotency-key-bytes)",
                                 (long long)max);
      api_invalid(req, "Idempotency-Key", d);
      return;
    }
  }
  api_job_submit(c, &o, wait_ms, idem);
}

/* ---- GET /api/jobs/{id}, DELETE, /result ---- */

typedef struct one {
  api_call *c;
  int retries;
} one;

static int owns(api_call *c, const tt_job *j) { return c->is_admin || !strcmp(j->owner, c->user_id); }

static void on_get(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status || !owns(c, rec)) {
    api_backend_error(c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  api_job_with_webhook(c, rec);
}

static void get_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such job");
    return;
  }
  tt_store_get(c->api->store, TT_KIND_JOB, id, on_get, c);
}

static void on_cancel_read(void *ud, int status, const void *rec);

static void on_canceled(void *ud, int status, const void *rec) {
  one *o = ud;
  if (status == TT_ECONFLICT && o->retries++ < 5) { /* a worker moved it meanwhile: look again */
    tt_store_get(o->c->api->store, TT_KIND_JOB, tt_http_param_get(o->c->req, "id"), on_cancel_read, o);
    return;
  }
  if (status) {
    api_backend_error(o->c->req, status);
    return;
  }
  tt_metrics_add(TT_M_JOBS_CANCELED, 1);
  api_json(o->c->req, 200, api_job_json(o->c->req, o->c->api, rec));
}

static void on_cancel_read(void *ud, int status, const void *rec) {
  one *o = ud;
  if (status || !owns(o->c, rec)) {
    api_backend_error(o->c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  const tt_job *j = rec;
  if (final_state(j->state)) {
    char *d = tt_arena_sprintf(o->c->req->arena, "the job %s already; only a queued or running job can be canceled",
                               !strcmp(j->state, "canceled") ? "was canceled" : j->state);
    api_problem(o->c->req, 409, "job-finished", d);
    return;
  }
  tt_job u = *j;
  u.state = (char *)tt_job_state_name(TT_JOB_CANCELED);
  u.finished_at = tt_now_ms();
  tt_store_update(o->c->api->store, TT_KIND_JOB, &u, on_canceled, o);
}

static void cancel_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such job");
    return;
  }
  one *o = tt_arena_calloc(c->req->arena, sizeof *o);
  o->c = c;
  tt_store_get(c->api->store, TT_KIND_JOB, id, on_cancel_read, o);
}

/* result: the blob (blobserve.c) */

static void on_result_job(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status || !owns(c, rec)) {
    api_backend_error(c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  const tt_job *j = rec;
  if (!strcmp(j->state, "canceled") || !strcmp(j->state, "failed")) { /* final: say so, not "yet" */
    char *d = !strcmp(j->state, "canceled")
                  ? "the job was canceled: it will never have a result"
                  : tt_arena_sprintf(c->req->arena, "the job failed (%s): it will never have a result; submit it again",
                                     j->error ? j->error : "no reason given");
    api_problem(c->req, 409, "no-result", d);
    return;
  }
  if (tt_job_state_of(j->state) != TT_JOB_SUCCEEDED || !j->result_key) {
    char *d = tt_arena_sprintf(c->req->arena, "the job is %s; its result exists once it has succeeded", j->state);
    api_problem(c->req, 409, "no-result-yet", d);
    return;
  }
  api_serve_blob(c, j->result_key);
}

static void result_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such job");
    return;
  }
  tt_store_get(c->api->store, TT_KIND_JOB, id, on_result_job, c);
}

/* ---- GET /api/jobs ---- */

static void on_list(void *ud, int status, const void *recs, size_t n, const char *next) {
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  const tt_job *jobs = recs;
  json_t *items = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(items, api_job_json(c->req, c->api, &jobs[i]));
  json_t *o = json_pack("{s:o, s:s?}", "items", items, "next_cursor", next);
  api_json(c->req, 200, o);
}

static void list_op(api_call *c) {
  tt_http_req *req = c->req;
  tt_store_query q = {.owner = c->user_id, .limit = TT_STORE_LIST_DEFAULT};
  const char *state = api_query_param(req, "state"), *limit = api_query_param(req, "limit"), *cursor = api_query_param(req, "cursor");
  const char *batch = api_query_param(req, "batch");
  if (batch) { /* the jobs of one batch, in the batch's order (batch.c) */
    if (!tt_id_valid(batch)) {
      api_invalid(req, "batch", "batch must be the id of a batch (POST /api/jobs/batch)");
      return;
    }
    if (state || limit || cursor) {
      api_invalid(req, state ? "state" : limit ? "limit" : "cursor", "batch lists a whole batch: no state, limit or cursor");
      return;
    }
    if (c->is_admin && !c->user_id[0]) {
      api_problem(req, 403, "admin-has-no-jobs", "jobs belong to users; use a user's API key");
      return;
    }
    api_batch_list(c, batch);
    return;
  }
  if (state) {
    if (tt_job_state_of(state) < 0) {
      api_invalid(req, "state", "state must be queued, running, succeeded, failed or canceled");
      return;
    }
    q.state = state;
  }
  if (limit) {
    char *end;
    long v = strtol(limit, &end, 10);
    if (*end || end == limit || v < 1 || v > TT_STORE_LIST_MAX) {
      api_invalid(req, "limit", "limit must be an integer from 1 to 1000");
      return;
    }
    q.limit = (int)v;
  }
  if (cursor) {
    if (!tt_id_valid(cursor)) {
      api_invalid(req, "cursor", "cursor must be a next_cursor from an earlier page");
      return;
    }
    q.cursor = cursor;
  }
  if (c->is_admin && !c->user_id[0]) {
    api_problem(req, 403, "admin-has-no-jobs", "jobs belong to users; use a user's API key");
    return;
  }
  tt_store_list(c->api->store, TT_KIND_JOB, &q, on_list, c);
}

/* ---- GET /api/jobs/{id}/events (SSE) ---- */

typedef struct events {
  api_call *c;
  uv_timer_t timer;
  int64_t last_version;
  uint64_t started;
  int gone, done, closing;
  char id[TT_ID_SIZE];
} events;

static void events_poll(uv_timer_t *t);

static void events_closed(uv_handle_t *h) {
  events *ev = h->data;
  tt_http_stream_end(ev->c->req); /* the request ends with the stream */
}

static void events_finish(events *ev) {
  if (ev->closing) return;
  ev->closing = 1;
  uv_timer_stop(&ev->timer);
  uv_close((uv_handle_t *)&ev->timer, events_closed);
}

static void events_done(tt_http_req *req, int status, void *ud) {
  (void)req;
  events *ev = ud;
  if (status < 0) ev->gone = 1; /* client left: the next poll tick ends it */
}

static void events_written(tt_http_req *req, int status, void *ud) {
  (void)req;
  events *ev = ud;
  if (status < 0) ev->gone = 1;
  if (ev->done || ev->gone) {
    events_finish(ev);
    return;
  }
  uv_timer_start(&ev->timer, events_poll, EVENTS_POLL_MS, 0);
}

static void on_events_job(void *ud, int status, const void *rec) {
  events *ev = ud;
  if (ev->gone) {
    events_finish(ev);
    return;
  }
  if (status) { /* deleted meanwhile, or the store failed: end the stream */
    events_finish(ev);
    return;
  }
  const tt_job *j = rec;
  ev->done = final_state(j->state);
  if (j->version == ev->last_version) {
    if (uv_now(ev->c->api->loop) - ev->started > (uint64_t)ev->c->api->cfg->events_max_ms) {
      events_finish(ev);
      return;
    }
    uv_timer_start(&ev->timer, events_poll, EVENTS_POLL_MS, 0);
    return;
  }
  ev->last_version = j->version;
  json_t *o = api_job_json(ev->c->req, ev->c->api, j);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char *msg = s ? tt_arena_sprintf(ev->c->req->arena, "event: state\nid: %lld\ndata: %s\n\n", (long long)j->version, s)
                : NULL;
  free(s);
  if (!msg || tt_http_stream_write(ev->c->req, msg, strlen(msg), events_written, ev)) events_finish(ev);
}

static void events_poll(uv_timer_t *t) {
  events *ev = t->data;
  if (ev->gone) {
    events_finish(ev);
    return;
  }
  tt_store_get(ev->c->api->store, TT_KIND_JOB, ev->id, on_events_job, ev);
}

static void on_events_first(void *ud, int status, const void *rec) {
  events *ev = ud;
  tt_http_req *req = ev->c->req;
  if (status || !owns(ev->c, rec)) {
    api_backend_error(req, status ? status : TT_ENOTFOUND);
    return;
  }
  tt_http_add_header(req, "Cache-Control", "no-store");
  tt_http_add_header(req, "X-Accel-Buffering", "no");
  if (tt_http_stream_start(req, 200, "text/event-stream")) return;
  tt_http_on_done(req, events_done, ev);
  uv_timer_init(ev->c->api->loop, &ev->timer);
  ev->timer.data = ev;
  ev->started = uv_now(ev->c->api->loop);
  on_events_job(ev, 0, rec);
}

static void events_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such job");
    return;
  }
  events *ev = tt_arena_calloc(c->req->arena, sizeof *ev);
  ev->c = c;
  memcpy(ev->id, id, TT_ID_SIZE);
  tt_store_get(c->api->store, TT_KIND_JOB, id, on_events_first, ev);
}

/* ---- routes ---- */

static void jobs_handler(tt_http_req *req, void *ud) {
  api_auth(req, ud, req->method == TT_HTTP_POST ? create_op : list_op);
}
static void job_handler(tt_http_req *req, void *ud) {
  api_auth(req, ud, req->method == TT_HTTP_DELETE ? cancel_op : get_op);
}
static void result_handler(tt_http_req *req, void *ud) { api_auth_or_signed(req, ud, result_op); }
static void events_handler(tt_http_req *req, void *ud) { api_auth(req, ud, events_op); }

int api_register_jobs(tt_router *r, tt_api *api) {
  int rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_POST, "/api/jobs", jobs_handler, api,
                         api ? api->cfg->max_job_body_bytes : 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_DELETE, "/api/jobs/{id}", job_handler, api, 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/jobs/{id}/result", result_handler, api, 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/jobs/{id}/events", events_handler, api, 0);
  if (!rc) rc = api_register_batch(r, api);
  if (!rc) rc = api_register_render(r, api); /* /api/render/{file}: signed render links (renderlink.c) */
  return rc;
}
