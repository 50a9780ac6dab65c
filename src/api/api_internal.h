/* api_internal.h — what the handlers of src/api/ share: the per-process
 * context (backends, secret), authentication, JSON bodies in and out, and
 * problem details with a stable type per kind of error. Not a public
 * header: only src/api/ includes it. */
#ifndef TINTYPE_API_INTERNAL_H
#define TINTYPE_API_INTERNAL_H

#include <jansson.h>

#include "tintype/blobs.h"
#include "tintype/config.h"
#include "tintype/crypto.h"
#include "tintype/http.h"
#include "tintype/job.h"
#include "tintype/netpolicy.h"
#include "tintype/queue.h"
#include "tintype/router.h"
#include "tintype/store.h"

#define TT_LINK_TTL_S 3600 /* signed links live an hour */

/* API key hash -> user id, per process, for AUTH_CACHE_MS: a request then
 * needs one store round trip instead of two. Rotation and deletion bump a
 * machine-wide epoch (metrics.h) that empties every process's cache at
 * once; another instance behind the load balancer may accept a revoked key
 * for at most AUTH_CACHE_MS (documented in ARCHITECTURE.md). */
#define AUTH_CACHE_SLOTS 1024
#define AUTH_CACHE_MS 2000
typedef struct auth_entry {
  char hash[TT_SHA256_HEX];
  char user_id[TT_ID_SIZE];
  uint64_t expires; /* loop time, ms */
  uint64_t epoch;   /* tt_shared_auth_epoch() when cached */
} auth_entry;

typedef struct tt_api {
  auth_entry auth_cache[AUTH_CACHE_SLOTS];
  uv_loop_t *loop;
  const tt_config *cfg;
  tt_store *store;
  tt_queue *queue;
  tt_blobs *blobs;
  uint8_t secret[TT_SECRET_MAX];
  size_t secret_len;
  tt_netpolicy trusted; /* --trusted-proxies */
} tt_api;

/* One API call in progress; lives in the request arena. */
typedef struct api_call {
  tt_http_req *req;
  tt_api *api;
  char user_id[TT_ID_SIZE]; /* the caller ("" for admin without a user) */
  char key_hash[TT_SHA256_HEX]; /* the caller's API key hash ("" for admin and signed links) */
  int is_admin;
  unsigned flags;            /* API_CALL_* */
  const char *cache_control; /* for api_serve_blob; NULL: private, max-age=3600 */
  void *state; /* the handler's own */
} api_call;

/* api_call.flags */
#define API_CALL_RENDER_LINK 1u /* a render link: a wait that runs out answers 503 + Retry-After, not 202 */

typedef void (*api_handler_fn)(api_call *c);

/* Problem kinds: each has a stable type URI "/problems/<kind>". */
void api_problem(tt_http_req *req, int status, const char *kind, const char *detail);
/* 400 validation error naming the field */
void api_invalid(tt_http_req *req, const char *field, const char *detail);
/* maps a store/queue/blob error to a problem (404, 409, 503, 500) */
void api_backend_error(tt_http_req *req, int err);

/* Parses the request body as a JSON object (400 / 415 answered on error). */
json_t *api_json_body(tt_http_req *req);
/* Answers with j (steals the reference). */
void api_json(tt_http_req *req, int status, json_t *j);

/* Authenticates (Bearer key: a user's, or the admin key) and runs fn, or
 * answers 401. */
void api_auth(tt_http_req *req, tt_api *api, api_handler_fn fn);
/* Like api_auth, but a valid signed link (expires & sig in the query) for
 * the request path also admits, as the owner named in the path's record. */
void api_auth_or_signed(tt_http_req *req, tt_api *api, api_handler_fn fn);

/* Sends the blob `key` as the response (blobserve.c): streamed, ETag/304,
 * Range/206/416, HEAD. Errors of the blob store become problems. */
void api_serve_blob(api_call *c, const char *key);

/* The value of `key` in the query string (not decoded: values are ids,
 * states and numbers), in the arena; NULL when absent. */
const char *api_query_param(tt_http_req *req, const char *key);

/* A signed URL for path, valid TT_LINK_TTL_S seconds (arena string). */
/* A signed, expiring link to path for the caller's own record, or NULL
 * (admin callers: their answers carry no links). The key is made from the
 * server secret, the owner's id and API key hash: rotating the key or
 * deleting the user stops every link made before (ctx.c). */
const char *api_signed_link(tt_http_req *req, tt_api *api, const char *path);

/* ratelimit.c: the client's address (the socket's peer, or X-Forwarded-For
 * behind --trusted-proxies), token buckets per (purpose, address). */
enum { API_RL_SIGNUP = 1, API_RL_AUTH_FAILURE = 2 };
void api_client_addr(tt_http_req *req, const tt_api *api, char *out, size_t cap);
int api_addr_in(const char *ip, const tt_netpolicy *list);
/* 1: allowed (and counted); 0: over the limit, *retry_after_s set */
int api_rate_take(const char *addr, int purpose, int64_t per_minute, uint64_t now_ms, int64_t *retry_after_s);
/* as take, without counting */
int api_rate_check(const char *addr, int purpose, int64_t per_minute, uint64_t now_ms, int64_t *retry_after_s);
void api_too_many(tt_http_req *req, int64_t retry_after_s, const char *what);

/* Deletes every job and image of owner, blobs first (purge.c); cb gets the
 * number of records deleted. */
typedef void (*api_purge_cb)(void *ud, int status, int64_t deleted);
void api_purge_owner(tt_api *api, const char *owner, api_purge_cb cb, void *ud);

/* Forgets every cached key of user_id (rotation, deletion). */
void api_auth_forget(tt_api *api, const char *user_id);

/* The job as the API shows it (jobs.c); `cached` is 1 for a job answered
 * from the result cache. */
json_t *api_job_json(tt_http_req *req, tt_api *api, const tt_job *j);
int api_job_cached(const tt_job *j);

/* One-call capture (jobwait.c). api_parse_wait reads ?wait=DURATION into
 * *ms (0 when absent); -1 when it answered 400. api_job_wait holds the
 * request until job j is final or ms pass, then answers (image, problem,
 * or 202 with the job). */
int api_parse_wait(tt_http_req *req, const tt_config *cfg, int64_t *ms);
void api_job_wait(api_call *c, const tt_job *j, int64_t ms);

/* Creates job o for c's user (jobs.c, the path of POST /api/jobs after
 * validation): with idem an Idempotency-Key (checked by the caller),
 * the result cache when o asks for it, and with wait_ms > 0 (or a render
 * link) the image once it is ready (jobwait.c). */
void api_job_submit(api_call *c, const tt_options *o, int64_t wait_ms, const char *idem);

/* Render links (renderlink.c): GET /api/render/{file} and the user's
 * signing secrets under /api/users/{id}/render-secrets. */
int api_register_render(tt_router *r, tt_api *api);
int api_register_render_secrets(tt_router *r, tt_api *api);

/* Webhooks (webhooks.c): answers 200 with job j and, when it names a
 * callback_url, its delivery's state as `webhook`. */
void api_job_with_webhook(api_call *c, const tt_job *j);
int api_register_webhooks(tt_router *r, tt_api *api);

/* Batches (batch.c): GET /api/jobs?batch=ID answers through this. */
void api_batch_list(api_call *c, const char *id);
int api_register_batch(tt_router *r, tt_api *api);

int api_register_users(tt_router *r, tt_api *api);
int api_register_jobs(tt_router *r, tt_api *api);
int api_register_images(tt_router *r, tt_api *api);
int api_register_metrics(tt_router *r, tt_api *api);

#endif
