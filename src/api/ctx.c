/* ctx.c — shared machinery of the API handlers (api_internal.h):
 * authentication against the store, JSON bodies with clear 4xx answers,
 * problem details with a stable type per kind, signed links.
 *
 * Authentication is Bearer KEY: the SHA-256 of the key is looked up in the
 * store (keys are never stored); the admin key of the config compares in
 * constant time. Every lookup is asynchronous, so the handler continues in
 * a callback with an api_call that lives in the request's arena. */
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"

void api_problem(tt_http_req *req, int status, const char *kind, const char *detail) {
  json_t *j = json_pack("{s:s, s:s, s:i}", "type", "", "title", tt_http_status_text(status), "status", status);
  char type[96];
  snprintf(type, sizeof type, "/problems/%s", kind);
  json_object_set_new(j, "type", json_string(type));
  if (detail) json_object_set_new(j, "detail", json_string(detail));
  json_object_set_new(j, "instance", json_stringn(req->path, req->path_len));
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  char *body = s ? tt_arena_strdup(req->arena, s) : NULL;
  free(s);
  if (!body) {
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  tt_http_respond(req, status, "application/problem+json", body, strlen(body));
}

void api_invalid(tt_http_req *req, const char *field, const char *detail) {
  json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s%}", "type", "/problems/invalid-field", "title",
                        "Bad Request", "status", 400, "detail", detail, "field", field, "instance", req->path,
                        req->path_len);
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  char *body = s ? tt_arena_strdup(req->arena, s) : NULL;
  free(s);
  if (!body) {
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  tt_http_respond(req, 400, "application/problem+json", body, strlen(body));
}

void api_backend_error(tt_http_req *req, int err) {
  switch (err) {
    case TT_ENOTFOUND: api_problem(req, 404, "not-found", "no such resource"); return;
    case TT_ECONFLICT:
      api_problem(req, 409, "conflict", "the resource changed meanwhile; read it again and retry");
      return;
    case TT_EEXIST: api_problem(req, 409, "already-exists", "a resource with this unique value exists"); return;
    case TT_EBUSY:
      tt_http_add_header(req, "Retry-After", "1");
      api_problem(req, 503, "busy", "the data store is busy; retry shortly");
      return;
    default: {
      tt_buf *l = tt_log_begin(TT_LOG_ERROR, "backend error");
      if (l) {
        tt_log_cstr(l, "request_id", req->request_id);
        tt_log_cstr(l, "error", tt_err_name(err));
        tt_log_end(l);
      }
      api_problem(req, 500, "internal", "the server could not complete the request");
    }
  }
}

/* The dotted key path ("viewport.width") of the value at byte pos of a
 * JSON text, found by a small scan: strings (with escapes), objects and
 * arrays; array elements add no name. Used to name the field of a number
 * the parser refused. */
static void json_path_at(const char *s, size_t pos, char *out, size_t outlen) {
  enum { MAXD = 16 };
  char keys[MAXD][48];
  int is_obj[MAXD];
  int depth = -1;
  char last[48] = "";
  int expect_key = 0;
  for (size_t i = 0; i < pos && s[i]; i++) {
    char c = s[i];
    if (c == '"') {
      size_t j = i + 1, n = 0;
      char buf[48];
      while (s[j] && s[j] != '"') {
        if (s[j] == '\\' && s[j + 1]) j++;
        if (n + 1 < sizeof buf) buf[n++] = s[j];
        j++;
      }
      buf[n] = 0;
      if (depth >= 0 && is_obj[depth] && expect_key) snprintf(last, sizeof last, "%s", buf);
      i = j;
    } else if (c == '{' || c == '[') {
      if (depth >= 0 && depth + 1 < MAXD) snprintf(keys[depth], sizeof keys[depth], "%s", is_obj[depth] ? last : "");
      if (depth + 1 < MAXD) is_obj[++depth] = c == '{';
      expect_key = c == '{';
      last[0] = 0;
    } else if (c == '}' || c == ']') {
      if (depth >= 0) depth--;
      expect_key = 0;
    } else if (c == ':') {
      expect_key = 0;
    } else if (c == ',') {
      expect_key = depth >= 0 && is_obj[depth];
    }
  }
  size_t n = 0;
  out[0] = 0;
  for (int d = 0; d < depth; d++)
    if (is_obj[d] && keys[d][0]) n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s", n ? "." : "", keys[d]);
  if (depth >= 0 && is_obj[depth] && last[0] && n < outlen)
    snprintf(out + n, outlen - n, "%s%s", n ? "." : "", last);
}

json_t *api_json_body(tt_http_req *req) {
  const char *ct = tt_http_header_get(req, "Content-Type");
  if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
    api_problem(req, 415, "unsupported-media-type", "send the body as application/json");
    return NULL;
  }
  if (!req->body || !req->body_len) {
    api_problem(req, 400, "invalid-json", "the request body is empty");
    return NULL;
  }
  json_error_t e;
  /* jansson rejects invalid UTF-8 and NUL in strings; its parser has a
   * nesting limit (2048), well within its stack use */
  json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
  if (!j && (strstr(e.text, "overflow") || strstr(e.text, "too big"))) {
    /* a number out of any range: a bad value of a field, not bad JSON */
    char path[128];
    json_path_at(req->body, (size_t)e.position, path, sizeof path);
    char *d = tt_arena_sprintf(req->arena, "%s is a number out of range", path[0] ? path : "a number");
    api_invalid(req, tt_arena_strdup(req->arena, path), d);
    return NULL;
  }
  if (!j) {
    char *d = tt_arena_sprintf(req->arena, "the body is not valid JSON: %s (at byte %d)", e.text, e.position);
    api_problem(req, 400, "invalid-json", d);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    api_problem(req, 400, "invalid-json", "the body must be a JSON object");
    return NULL;
  }
  return j;
}

void api_json(tt_http_req *req, int status, json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  size_t n = s ? strlen(s) : 0;
  char *body = s ? tt_arena_alloc(req->arena, n + 2) : NULL;
  if (!body) {
    free(s);
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  memcpy(body, s, n);
  body[n] = '\n';
  body[n + 1] = 0;
  free(s);
  tt_http_respond(req, status, "application/json", body, n + 1);
}

const char *api_query_param(tt_http_req *req, const char *key) {
  size_t kl = strlen(key);
  for (const char *p = req->query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    if (seg >= kl + 1 && !strncmp(p, key, kl) && p[kl] == '=') return tt_arena_strndup(req->arena, p + kl + 1, seg - kl - 1);
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

static const api_call *api_current_call(const tt_http_req *req);

/* The key of one user's links: HMAC(server secret, "links\n" id "\n" key
 * hash). A new API key (rotation) or no user record (deletion) and every
 * link signed before stops working. */
static void link_key(const tt_api *api, const char *owner, const char *key_hash, uint8_t out[32]) {
  char msg[8 + TT_ID_SIZE + TT_SHA256_HEX];
  int n = snprintf(msg, sizeof msg, "links\n%s\n%s", owner, key_hash);
  tt_hmac_sha256(api->secret, api->secret_len, msg, (size_t)n, out);
}

const char *api_signed_link(tt_http_req *req, tt_api *api, const char *path) {
  const api_call *c = api_current_call(req);
  if (!c || !c->user_id[0] || !c->key_hash[0]) return NULL; /* admin answers carry no links */
  char buf[1024];
  int64_t exp = (int64_t)time(NULL) + TT_LINK_TTL_S;
  exp -= exp % 60; /* stable links within a minute: friendlier to caches */
  exp += 60;
  uint8_t key[32];
  link_key(api, c->user_id, c->key_hash, key);
  if (tt_sign_path(key, sizeof key, path, exp, buf, sizeof buf)) return NULL;
  size_t n = strlen(buf);
  if (n + 3 + TT_ID_SIZE > sizeof buf) return NULL;
  snprintf(buf + n, sizeof buf - n, "&u=%s", c->user_id); /* whose key signed it */
  return tt_arena_strdup(req->arena, buf);
}

typedef struct auth_ctx {
  api_call *call;
  api_handler_fn fn;
  char hash[TT_SHA256_HEX];
  uint64_t epoch; /* read before the lookup: a revocation during it wins */
} auth_ctx;

static auth_entry *cache_slot(tt_api *api, const char *hash) {
  unsigned h = 0;
  for (int i = 0; i < 8; i++) h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
  return &api->auth_cache[h % AUTH_CACHE_SLOTS];
}

void api_auth_forget(tt_api *api, const char *user_id) {
  for (int i = 0; i < AUTH_CACHE_SLOTS; i++)
    if (!strcmp(api->auth_cache[i].user_id, user_id)) api->auth_cache[i].hash[0] = 0;
  tt_shared_auth_epoch_bump(); /* and in every other process */
}

/* A wrong key: 401, and one token less for its address (--auth-failure-rate) */
static void auth_failed(tt_http_req *req, tt_api *api) {
  char addr[64];
  api_client_addr(req, api, addr, sizeof addr);
  api_rate_take(addr, API_RL_AUTH_FAILURE, api->cfg->auth_failure_rate, uv_now(api->loop), NULL);
  tt_http_add_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
  api_problem(req, 401, "unauthorized", "the API key is not valid");
}

static void on_user(void *ud, int status, const void *rec) {
  auth_ctx *a = ud;
  tt_http_req *req = a->call->req;
  if (status == TT_ENOTFOUND) {
    auth_failed(req, a->call->api);
    return;
  }
  if (status) {
    api_backend_error(req, status);
    return;
  }
  const tt_user *u = rec;
  memcpy(a->call->user_id, u->id, TT_ID_SIZE);
  memcpy(a->call->key_hash, a->hash, sizeof a->call->key_hash);
  auth_entry *e = cache_slot(a->call->api, a->hash);
  memcpy(e->hash, a->hash, sizeof e->hash);
  memcpy(e->user_id, u->id, TT_ID_SIZE);
  e->expires = uv_now(a->call->api->loop) + AUTH_CACHE_MS;
  e->epoch = a->epoch;
  a->fn(a->call);
}

static api_call *new_call(tt_http_req *req, tt_api *api) {
  api_call *c = tt_arena_calloc(req->arena, sizeof *c);
  if (!c) return NULL;
  c->req = req;
  c->api = api;
  req->app = c;
  return c;
}

static const api_call *api_current_call(const tt_http_req *req) { return req->app; }

void api_auth(tt_http_req *req, tt_api *api, api_handler_fn fn) {
  api_call *c = new_call(req, api);
  if (!c) {
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  const char *h = tt_http_header_get(req, "Authorization");
  unsigned nauth = 0; /* two keys: which one is meant? refuse rather than pick */
  for (unsigned i = 0; i < req->nheaders; i++) nauth += !strcasecmp(req->headers[i].name, "Authorization");
  if (nauth > 1) {
    api_problem(req, 400, "bad-authorization", "send one Authorization header, not several");
    return;
  }
  if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
    tt_http_add_header(req, "WWW-Authenticate", "Bearer");
    api_problem(req, 401, "unauthorized", "send Authorization: Bearer <API key>");
    return;
  }
  const char *key = h + 7;
  while (*key == ' ') key++;
  /* an address that guessed wrong too often waits, right key or not (the
   * guesser cannot tell a good key from a bad one meanwhile) */
  char addr[64];
  int64_t retry = 0;
  api_client_addr(req, api, addr, sizeof addr);
  if (!api_rate_check(addr, API_RL_AUTH_FAILURE, api->cfg->auth_failure_rate, uv_now(api->loop), &retry)) {
    api_too_many(req, retry, "too many failed authentications from this address; try again later");
    return;
  }
  if (api->cfg->admin_key[0] && tt_ct_equal(key, api->cfg->admin_key)) {
    c->is_admin = 1;
    fn(c);
    return;
  }
  if ((int64_t)strlen(key) > api->cfg->max_api_key_bytes) {
    auth_failed(req, api);
    return;
  }
  char hash[TT_SHA256_HEX];
  tt_sha256_hex(key, strlen(key), hash);
  auth_entry *e = cache_slot(api, hash);
  uint64_t epoch = tt_shared_auth_epoch();
  if (e->hash[0] && e->epoch == epoch && !strcmp(e->hash, hash) && e->expires > uv_now(api->loop)) {
    memcpy(c->user_id, e->user_id, TT_ID_SIZE);
    memcpy(c->key_hash, hash, sizeof c->key_hash);
    fn(c);
    return;
  }
  auth_ctx *a = tt_arena_alloc(req->arena, sizeof *a);
  a->call = c;
  a->fn = fn;
  memcpy(a->hash, hash, sizeof a->hash);
  a->epoch = epoch;
  tt_store_user_by_key_hash(api->store, hash, on_user, a);
}

typedef struct signed_ctx {
  api_call *call;
  api_handler_fn fn;
} signed_ctx;

static void on_link_owner(void *ud, int status, const void *rec) {
  signed_ctx *sc = ud;
  api_call *c = sc->call;
  tt_http_req *req = c->req;
  if (status == TT_ENOTFOUND) {
    api_problem(req, 403, "link-revoked", "this link's owner no longer exists");
    return;
  }
  if (status) {
    api_backend_error(req, status);
    return;
  }
  const tt_user *u = rec;
  uint8_t key[32];
  link_key(c->api, u->id, u->api_key_hash ? u->api_key_hash : "", key);
  int s = tt_sign_check(key, sizeof key, req->path, req->query, (int64_t)time(NULL));
  if (s != TT_OK) {
    api_problem(req, 403, s == TT_ETIMEDOUT ? "link-expired" : "bad-signature",
                s == TT_ETIMEDOUT ? "this link has expired"
                                  : "this link's signature is not valid (or its owner's API key was rotated)");
    return;
  }
  /* the signature grants exactly this path, as its owner: the handler's
   * ownership check still applies */
  memcpy(c->user_id, u->id, TT_ID_SIZE);
  if (u->api_key_hash) snprintf(c->key_hash, sizeof c->key_hash, "%s", u->api_key_hash);
  sc->fn(c);
}

void api_auth_or_signed(tt_http_req *req, tt_api *api, api_handler_fn fn) {
  const char *sig = req->query ? api_query_param(req, "sig") : NULL;
  if (!sig) { /* "?xsig=1" or "?a=sig=" is not a signed link: the key decides */
    api_auth(req, api, fn);
    return;
  }
  const char *owner = api_query_param(req, "u");
  if (!owner || !tt_id_valid(owner)) {
    api_problem(req, 403, "bad-signature", "this link's signature is not valid");
    return;
  }
  api_call *c = new_call(req, api);
  signed_ctx *sc = c ? tt_arena_calloc(req->arena, sizeof *sc) : NULL;
  if (!sc) {
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  sc->call = c;
  sc->fn = fn;
  tt_store_get(api->store, TT_KIND_USER, owner, on_link_owner, sc);
}
