/* users.c — /api/users: sign-up (the API key is shown once, stored only as
 * its SHA-256), the caller's own record, admin or self read and delete, key
 * rotation. A user who is not the caller answers 404, never 403, so ids
 * cannot be probed. */
#include <ctype.h>
#include <string.h>

#include "api_internal.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/router.h"

static json_t *user_json(const tt_user *u) {
  return json_pack("{s:s, s:s?, s:s?, s:I, s:I}", "id", u->id, "name", u->name, "email", u->email,
                   "created_at", (json_int_t)u->created_at, "version", (json_int_t)u->version);
}

/* 1..max characters (UTF-8 code points; jansson has checked the encoding),
 * no control characters */
static int valid_text(const char *s, size_t max) {
  size_t n = strlen(s), chars = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xc0) != 0x80) chars++;
  if (chars == 0 || chars > max) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  return 1;
}

static int valid_email(const char *s) {
  if (!valid_text(s, 254)) return 0;
  const char *at = strchr(s, '@');
  if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.') return 0;
  for (const char *p = s; *p; p++)
    if (isspace((unsigned char)*p)) return 0;
  return 1;
}

typedef struct signup {
  tt_http_req *req;
  char key[TT_APIKEY_LEN + 1];
} signup;

static void on_created(void *ud, int status, const void *rec) {
  signup *su = ud;
  if (status == TT_EEXIST) {
    api_problem(su->req, 409, "email-taken", "a user with this email exists");
    return;
  }
  if (status) {
    api_backend_error(su->req, status);
    return;
  }
  const tt_user *u = rec;
  json_t *j = user_json(u);
  json_object_set_new(j, "api_key", json_string(su->key));
  char *loc = tt_arena_sprintf(su->req->arena, "/api/users/%s", u->id);
  tt_http_add_header(su->req, "Location", loc);
  tt_http_add_header(su->req, "Cache-Control", "no-store");
  api_json(su->req, 201, j);
}

static void signup_op(api_call *c);
static void signup_body(tt_http_req *req, tt_api *api);

static void signup_handler(tt_http_req *req, void *ud) {
  tt_api *api = ud;
  if (!strcmp(api->cfg->signup, "closed")) { /* only the admin key makes users */
    const char *h = tt_http_header_get(req, "Authorization");
    if (!h) {
      api_problem(req, 403, "signup-closed", "sign-up is closed on this server: ask its operator for an account");
      return;
    }
    api_auth(req, api, signup_op);
    return;
  }
  char addr[64];
  api_client_addr(req, api, addr, sizeof addr);
  int64_t retry = 0;
  if (!api_rate_take(addr, API_RL_SIGNUP, api->cfg->signup_rate, uv_now(api->loop), &retry)) {
    api_too_many(req, retry, "too many sign-ups from this address; try again later");
    return;
  }
  signup_body(req, api);
}

static void signup_op(api_call *c) {
  if (!c->is_admin) {
    api_problem(c->req, 403, "signup-closed", "sign-up is closed on this server: only the admin key creates users");
    return;
  }
  signup_body(c->req, c->api);
}

static void signup_body(tt_http_req *req, tt_api *api) {
  json_t *in = api_json_body(req);
  if (!in) return;
  const char *k;
  json_t *v;
  json_object_foreach(in, k, v) {
    if (strcmp(k, "name") && strcmp(k, "email")) {
      char *d = tt_arena_sprintf(req->arena, "unknown field %.80s", k);
      char *f = tt_arena_sprintf(req->arena, "%.80s", k);
      json_decref(in);
      api_invalid(req, f, d);
      return;
    }
  }
  json_t *name = json_object_get(in, "name"), *email = json_object_get(in, "email");
  if (!json_is_string(name) || !valid_text(json_string_value(name), 100) ||
      strlen(json_string_value(name)) != json_string_length(name)) {
    json_decref(in);
    api_invalid(req, "name", "name is required: 1 to 100 characters, no control characters");
    return;
  }
  if (!json_is_string(email) || !valid_email(json_string_value(email)) ||
      strlen(json_string_value(email)) != json_string_length(email)) {
    json_decref(in);
    api_invalid(req, "email", "email is required and must look like name@example.com");
    return;
  }
  signup *su = tt_arena_calloc(req->arena, sizeof *su);
  su->req = req;
  if (tt_apikey_new(su->key)) {
    json_decref(in);
    api_problem(req, 500, "internal", "no randomness available");
    return;
  }
  char hash[TT_SHA256_HEX];
  tt_sha256_hex(su->key, strlen(su->key), hash);
  tt_user u;
  memset(&u, 0, sizeof u);
  u.name = (char *)json_string_value(name);
  /* e-mail addresses are compared case-insensitively: stored lower-cased,
   * so Ada@Example.com and ada@example.com are one account */
  char *lower = tt_arena_strdup(req->arena, json_string_value(email));
  for (char *p = lower; p && *p; p++) *p = (char)tolower((unsigned char)*p);
  u.email = lower;
  u.api_key_hash = hash;
  tt_store_create(api->store, TT_KIND_USER, &u, on_created, su); /* copies u */
  json_decref(in);
}

/* ---- GET /api/users/me, GET/DELETE /api/users/{id}, POST .../key ---- */

static const char *target_id(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!id || !strcmp(id, "me")) return c->user_id[0] ? c->user_id : NULL;
  return id;
}

static void on_got(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  api_json(c->req, 200, user_json(rec));
}

static void on_deleted(void *ud, int status, const void *rec) {
  (void)rec;
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  api_auth_forget(c->api, c->state ? (const char *)c->state : c->user_id);
  tt_http_respond(c->req, 204, NULL, NULL, 0);
}

static void on_purged(void *ud, int status, int64_t deleted) {
  api_call *c = ud;
  if (status) {
    tt_logf(TT_LOG_WARN, "users: purging %s stopped after %lld records: %s", (const char *)c->state,
            (long long)deleted, tt_strerror(status));
    api_backend_error(c->req, status);
    return;
  }
  tt_store_delete(c->api->store, TT_KIND_USER, c->state, 0, on_deleted, c);
}

static void on_user_for_delete(void *ud, int status, const void *rec) {
  (void)rec;
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  api_purge_owner(c->api, c->state, on_purged, c);
}

typedef struct rotate {
  api_call *c;
  char key[TT_APIKEY_LEN + 1];
  char hash[TT_SHA256_HEX];
} rotate;

static void on_rotated(void *ud, int status, const void *rec) {
  rotate *r = ud;
  if (status) {
    api_backend_error(r->c->req, status);
    return;
  }
  api_auth_forget(r->c->api, ((const tt_user *)rec)->id);
  json_t *j = user_json(rec);
  json_object_set_new(j, "api_key", json_string(r->key));
  tt_http_add_header(r->c->req, "Cache-Control", "no-store");
  api_json(r->c->req, 200, j);
}

static void on_read_for_rotate(void *ud, int status, const void *rec) {
  rotate *r = ud;
  if (status) {
    api_backend_error(r->c->req, status);
    return;
  }
  tt_user u = *(const tt_user *)rec;
  u.api_key_hash = r->hash;
  tt_store_update(r->c->api->store, TT_KIND_USER, &u, on_rotated, r);
}

static void user_op(api_call *c) {
  const char *id = target_id(c);
  if (!id || (!c->is_admin && strcmp(id, c->user_id)) || !tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such user");
    return;
  }
  tt_http_req *req = c->req;
  if (req->method == TT_HTTP_DELETE) {
    c->state = tt_arena_strdup(req->arena, id);
    /* everything the user owns first, the user last: a purge cut short
     * leaves the user, and deleting again finishes it (purge.c) */
    tt_store_get(c->api->store, TT_KIND_USER, id, on_user_for_delete, c);
  } else if (req->method == TT_HTTP_POST) { /* key rotation */
    rotate *r = tt_arena_calloc(req->arena, sizeof *r);
    r->c = c;
    if (tt_apikey_new(r->key)) {
      api_problem(req, 500, "internal", "no randomness available");
      return;
    }
    tt_sha256_hex(r->key, strlen(r->key), r->hash);
    tt_store_get(c->api->store, TT_KIND_USER, id, on_read_for_rotate, r);
  } else {
    tt_store_get(c->api->store, TT_KIND_USER, id, on_got, c);
  }
}

static void user_handler(tt_http_req *req, void *ud) { api_auth(req, ud, user_op); }

int api_register_users(tt_router *r, tt_api *api) {
  int rc = tt_router_add(r, TT_HTTP_POST, "/api/users", signup_handler, api,
                         api ? api->cfg->max_signup_body_bytes : 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_DELETE, "/api/users/me", user_handler, api, -1);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_DELETE, "/api/users/{id}", user_handler, api, -1);
  if (!rc) rc = tt_router_add(r, TT_HTTP_POST, "/api/users/{id}/key", user_handler, api, 0);
  if (!rc) rc = api_register_webhooks(r, api); /* /api/users/{id}/webhook-secret */
  if (!rc) rc = api_register_render_secrets(r, api); /* /api/users/{id}/render-secrets */
  return rc;
}
