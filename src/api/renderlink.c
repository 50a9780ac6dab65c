/* renderlink.c — signed render links (issue 15 item 2):
 *
 *   GET /api/render/USER.png?url=...&width=800&sig=HEX
 *
 * a URL that works in an <img src> or an Open Graph tag: the job options
 * are the query (src/job/options.c's tt_options_from_query turns them into
 * the JSON every job is validated from), `sig` is HMAC-SHA256 of the path
 * and the canonical query made with one of USER's render secrets. The
 * first hit renders through the queue and a worker and waits like
 * POST /api/jobs?wait= (jobs.c, jobwait.c), bounded by --max-wait-ms; later
 * hits are answered from the result cache (the entry the worker wrote) with
 * Cache-Control and the blob's ETag (blobserve.c). Concurrent first hits
 * share one job: an Idempotency-Key made of the cache entry and the minute.
 *
 * Also the secrets themselves: POST/GET /api/users/{id}/render-secrets and
 * DELETE .../{sid}. A secret's value is derived (server secret, owner, id)
 * and shown once; revoking deletes its record, and every link it signed
 * answers 403. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/clock.h"
#include "tintype/error.h"
#include "tintype/metrics.h"

#define SECRET_PREFIX "ttrs_"
#define SECRET_LEN (5 + 64) /* prefix + hex of 32 bytes */
#define MAX_PARAMS 64
#define DEDUP_WINDOW_MS 60000 /* concurrent first hits within it share one render */

/* One table: the file's extension -> the job's format. */
static const struct {
  const char *ext, *format;
} link_formats[] = {
    {"png", "png"},
    {"jpeg", "jpeg"},
    {"jpg", "jpeg"},
    {"webp", "webp"},
    {"pdf", "pdf"},
};

/* ---- secrets ---- */

static void secret_value(const tt_api *api, const char *owner, const char *id, char out[SECRET_LEN + 1]) {
  char msg[32 + 2 * TT_ID_SIZE];
  int n = snprintf(msg, sizeof msg, "render-secret\n%s\n%s", owner, id);
  uint8_t h[32];
  tt_hmac_sha256(api->secret, api->secret_len, msg, (size_t)n, h);
  static const char hex[] = "0123456789abcdef";
  memcpy(out, SECRET_PREFIX, 5);
  for (int i = 0; i < 32; i++) {
    out[5 + 2 * i] = hex[h[i] >> 4];
    out[6 + 2 * i] = hex[h[i] & 15];
  }
  out[SECRET_LEN] = 0;
}

static json_t *secret_json(const tt_render_secret *r) {
  json_t *j = json_pack("{s:s, s:I}", "id", r->id, "created_at", (json_int_t)r->created_at);
  if (j && r->name) json_object_set_new(j, "name", json_string(r->name));
  return j;
}

/* self only: another user's id is 404, the admin key has no secrets */
static int secrets_self(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!c->user_id[0]) {
    api_problem(c->req, 403, "forbidden", "render secrets belong to a user; use that user's API key");
    return 0;
  }
  if (strcmp(id, "me") && strcmp(id, c->user_id)) {
    api_problem(c->req, 404, "not-found", "no such user");
    return 0;
  }
  return 1;
}

typedef struct screate {
  api_call *c;
  tt_render_secret rec;
} screate;

static void on_secret_created(void *ud, int status, const void *rec) {
  screate *sc = ud;
  tt_http_req *req = sc->c->req;
  if (status) {
    api_backend_error(req, status);
    return;
  }
  const tt_render_secret *r = rec;
  char v[SECRET_LEN + 1];
  secret_value(sc->c->api, r->owner, r->id, v);
  json_t *j = secret_json(r);
  json_object_set_new(j, "secret", json_string(v));
  tt_http_add_header(req, "Cache-Control", "no-store");
  tt_http_add_header(req, "Location",
                     tt_arena_sprintf(req->arena, "/api/users/%s/render-secrets/%s", r->owner, r->id));
  api_json(req, 201, j);
}

static void on_secrets_counted(void *ud, int status, const void *recs, size_t n, const char *next) {
  (void)recs;
  screate *sc = ud;
  tt_http_req *req = sc->c->req;
  if (status) {
    api_backend_error(req, status);
    return;
  }
  int64_t max = sc->c->api->cfg->max_render_secrets;
  if ((int64_t)n >= max || next) {
    api_problem(req, 409, "too-many-render-secrets",
                tt_arena_sprintf(req->arena,
                                 "a user holds at most %lld render secrets (max-render-secrets); "
                                 "revoke one first",
                                 (long long)max));
    return;
  }
  tt_store_create(sc->c->api->store, TT_KIND_RENDER_SECRET, &sc->rec, on_secret_created, sc);
}

static void secret_create_op(api_call *c) {
  if (!secrets_self(c)) return;
  tt_http_req *req = c->req;
  screate *sc = tt_arena_calloc(req->arena, sizeof *sc);
  if (!sc) tt_oom();
  sc->c = c;
  if (req->body_len) { /* optional {"name": "..."} */
    json_t *in = api_json_body(req);
    if (!in) return;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
      if (strcmp(k, "name")) {
        api_invalid(req, tt_arena_strdup(req->arena, k), "unknown field: a render secret has only a name");
        json_decref(in);
        return;
      }
      size_t len = json_string_length(v);
      if (!json_is_string(v) || len < 1 || len > 100) {
        api_invalid(req, "name", "name must be a string of 1 to 100 bytes");
        json_decref(in);
        return;
      }
      sc->rec.name = tt_arena_strdup(req->arena, json_string_value(v));
    }
    json_decref(in);
  }
  memcpy(sc->rec.owner, c->user_id, TT_ID_SIZE);
  sc->rec.state = "active";
  tt_store_query q = {.owner = c->user_id, .limit = (int)c->api->cfg->max_render_secrets};
  tt_store_list(c->api->store, TT_KIND_RENDER_SECRET, &q, on_secrets_counted, sc);
}

static void on_secrets_listed(void *ud, int status, const void *recs, size_t n, const char *next) {
  (void)next;
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  json_t *items = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(items, secret_json((const tt_render_secret *)recs + i));
  api_json(c->req, 200, json_pack("{s:o}", "items", items));
}

static void secret_list_op(api_call *c) {
  if (!secrets_self(c)) return;
  tt_store_query q = {.owner = c->user_id, .limit = TT_STORE_LIST_MAX};
  tt_store_list(c->api->store, TT_KIND_RENDER_SECRET, &q, on_secrets_listed, c);
}

static void on_secret_deleted(void *ud, int status, const void *rec) {
  (void)rec;
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  tt_http_respond(c->req, 204, NULL, NULL, 0);
}

static void on_secret_to_delete(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status || strcmp(((const tt_render_secret *)rec)->owner, c->user_id)) {
    api_problem(c->req, 404, "not-found", "no such render secret");
    return;
  }
  const tt_render_secret *r = rec;
  tt_store_delete(c->api->store, TT_KIND_RENDER_SECRET, r->id, 0, on_secret_deleted, c);
}

static void secret_delete_op(api_call *c) {
  if (!secrets_self(c)) return;
  const char *sid = tt_http_param_get(c->req, "sid");
  if (!tt_id_valid(sid)) {
    api_problem(c->req, 404, "not-found", "no such render secret");
    return;
  }
  tt_store_get(c->api->store, TT_KIND_RENDER_SECRET, sid, on_secret_to_delete, c);
}

static void secrets_handler(tt_http_req *req, void *ud) {
  api_auth(req, ud, req->method == TT_HTTP_POST ? secret_create_op : secret_list_op);
}
static void secret_handler(tt_http_req *req, void *ud) { api_auth(req, ud, secret_delete_op); }

int api_register_render_secrets(tt_router *r, tt_api *api) {
  int rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_POST, "/api/users/{id}/render-secrets", secrets_handler,
                         api, 4096);
  if (!rc)
    rc = tt_router_add(r, TT_HTTP_DELETE, "/api/users/{id}/render-secrets/{sid}", secret_handler, api, 0);
  return rc;
}

/* ---- the link ---- */

typedef struct rlink {
  api_call c;
  char owner[TT_ID_SIZE];
  const char *format;
  const char *names[MAX_PARAMS], *values[MAX_PARAMS]; /* decoded, sig and expires left out */
  size_t n;
  const char *sig;
  int64_t expires; /* 0: none */
  int64_t wait_ms; /* how long a first hit waits for its render */
  char *message;   /* what was signed: path "?" canonical query */
  tt_options o;
  char cache_id[TT_ID_SIZE];
} rlink;

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* percent-decoding of one name or value ('+' is a space, as in forms);
 * NULL on a bad escape or a NUL */
static char *decode(tt_arena *a, const char *s, size_t n) {
  char *out = tt_arena_alloc(a, n + 1), *w = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      int x = i + 2 < n ? hexval(s[i + 1]) : -1, y = i + 2 < n ? hexval(s[i + 2]) : -1;
      if (x < 0 || y < 0 || (x == 0 && y == 0)) return NULL;
      *w++ = (char)(x * 16 + y);
      i += 2;
    } else {
      *w++ = s[i] == '+' ? ' ' : s[i];
    }
  }
  *w = 0;
  return out;
}

/* RFC 3986 encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper case) */
static void encode(tt_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p)) {
      tt_buf_append(b, (const char *)p, 1);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      tt_buf_append(b, e, 3);
    }
  }
}

typedef struct pair {
  char *k, *v; /* encoded */
} pair;

static int pair_cmp(const void *a, const void *b) {
  const pair *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c ? c : strcmp(x->v, y->v);
}

/* the signed message: path "?" every parameter but sig, names and values
 * encoded as above, sorted, joined with & */
static char *canonical(tt_http_req *req, const char *const *names, const char *const *values, size_t n) {
  pair *ps = tt_arena_calloc(req->arena, (n ? n : 1) * sizeof *ps);
  if (!ps) return NULL;
  for (size_t i = 0; i < n; i++) {
    tt_buf b = TT_BUF_INIT;
    encode(&b, names[i]);
    ps[i].k = tt_arena_strndup(req->arena, b.data ? b.data : "", b.len);
    tt_buf_reset(&b);
    encode(&b, values[i]);
    ps[i].v = tt_arena_strndup(req->arena, b.data ? b.data : "", b.len);
    tt_buf_free(&b);
  }
  qsort(ps, n, sizeof *ps, pair_cmp);
  tt_buf m = TT_BUF_INIT;
  tt_buf_append(&m, req->path, req->path_len);
  tt_buf_append(&m, "?", 1);
  for (size_t i = 0; i < n; i++) {
    if (i) tt_buf_append(&m, "&", 1);
    tt_buf_append(&m, ps[i].k, strlen(ps[i].k));
    tt_buf_append(&m, "=", 1);
    tt_buf_append(&m, ps[i].v, strlen(ps[i].v));
  }
  char *s = tt_arena_strndup(req->arena, m.data ? m.data : "", m.len);
  tt_buf_free(&m);
  return s;
}

static void forbidden(tt_http_req *req, const char *kind, const char *detail) {
  tt_http_add_header(req, "Cache-Control", "no-store");
  api_problem(req, 403, kind, detail);
}

static void bad_sig(tt_http_req *req) {
  /* one answer for an unknown user, a revoked secret and a wrong signature:
   * a stranger learns nothing about which users exist */
  forbidden(req, "bad-signature", "this render link's signature is not valid (or its secret was revoked)");
}

static void on_cache_entry(void *ud, int status, const void *rec) {
  rlink *l = ud;
  tt_http_req *req = l->c.req;
  const tt_cache_entry *e = rec;
  int64_t now = tt_now_ms();
  int64_t ttl_ms = (int64_t)l->o.cache_ttl * 1000;
  if (status == TT_OK && e && e->state && !strcmp(e->state, "ready") && e->result_key && e->job_id &&
      !strcmp(e->owner, l->owner) && ttl_ms > 0 && now - e->rendered_at <= ttl_ms) {
    tt_metrics_add(TT_M_RENDER_LINK_HITS, 1);
    int64_t left = (ttl_ms - (now - e->rendered_at)) / 1000;
    l->c.cache_control = tt_arena_sprintf(req->arena, "public, max-age=%lld", (long long)left);
    tt_http_add_header(req, "X-Tintype-Cache", "hit");
    tt_http_add_header(req, "X-Tintype-Job-Id", tt_arena_strdup(req->arena, e->job_id));
    api_serve_blob(&l->c, tt_arena_strdup(req->arena, e->result_key));
    return;
  }
  tt_metrics_add(TT_M_RENDER_LINK_MISSES, 1);
  /* render, waiting like ?wait=; concurrent first hits share the job of
   * this minute's key (a failure is retried in the next minute) */
  char *idem =
      tt_arena_sprintf(req->arena, "render-link:%s:%lld", l->cache_id, (long long)(now / DEDUP_WINDOW_MS));
  l->c.cache_control =
      l->o.cache_ttl > 0 ? tt_arena_sprintf(req->arena, "public, max-age=%d", l->o.cache_ttl) : "no-cache";
  api_job_submit(&l->c, &l->o, l->wait_ms, idem);
}

/* signature good: the options, then the cache */
static void link_signed(rlink *l) {
  tt_http_req *req = l->c.req;
  const tt_config *cfg = l->c.api->cfg;
  if (l->expires && (int64_t)time(NULL) > l->expires) {
    forbidden(req, "link-expired", "this render link has expired");
    return;
  }
  char field[96], detail[256];
  json_t *in = NULL;
  int rc = tt_options_from_query(l->names, l->values, l->n, &in, field, sizeof field, detail, sizeof detail);
  if (!rc) {
    if (json_object_get(in, "format")) {
      rc = TT_EINVAL;
      snprintf(field, sizeof field, "format");
      snprintf(detail, sizeof detail,
               "a render link's format is its extension (.png, .jpeg, .webp, .pdf), not a parameter");
    } else if (json_object_get(in, "callback_url")) {
      rc = TT_EINVAL;
      snprintf(field, sizeof field, "callback_url");
      snprintf(detail, sizeof detail, "render links do not send webhooks; use POST /api/jobs");
    } else {
      json_object_set_new(in, "format", json_string(l->format));
      if (!json_object_get(in, "cache_ttl")) {
        int64_t ttl = cfg->render_link_ttl < cfg->max_cache_ttl ? cfg->render_link_ttl : cfg->max_cache_ttl;
        json_object_set_new(in, "cache_ttl", json_integer(ttl));
      }
      rc = tt_options_parse(in, cfg, &l->o, field, sizeof field, detail, sizeof detail);
    }
  }
  json_decref(in);
  if (rc) {
    tt_http_add_header(req, "Cache-Control", "no-store");
    api_invalid(req, tt_arena_strdup(req->arena, field), tt_arena_strdup(req->arena, detail));
    return;
  }
  if (tt_job_cache_id(l->owner, &l->o, l->cache_id)) {
    api_problem(req, 500, "internal", "out of memory");
    return;
  }
  if (l->o.cache_ttl > 0 && cfg->max_cache_ttl > 0) {
    tt_store_get(l->c.api->store, TT_KIND_CACHE, l->cache_id, on_cache_entry, l);
    return;
  }
  on_cache_entry(l, TT_ENOTFOUND, NULL);
}

static void on_link_secrets(void *ud, int status, const void *recs, size_t n, const char *next) {
  (void)next;
  rlink *l = ud;
  tt_http_req *req = l->c.req;
  if (status) {
    api_backend_error(req, status);
    return;
  }
  const tt_render_secret *rs = recs;
  int ok = 0;
  for (size_t i = 0; i < n && !ok; i++) {
    char v[SECRET_LEN + 1];
    secret_value(l->c.api, l->owner, rs[i].id, v);
    uint8_t mac[32];
    tt_hmac_sha256(v, SECRET_LEN, l->message, strlen(l->message), mac);
    char hex[65];
    static const char digits[] = "0123456789abcdef";
    for (int b = 0; b < 32; b++) {
      hex[2 * b] = digits[mac[b] >> 4];
      hex[2 * b + 1] = digits[mac[b] & 15];
    }
    hex[64] = 0;
    ok = tt_ct_equal(hex, l->sig);
  }
  if (!ok) {
    bad_sig(req);
    return;
  }
  link_signed(l);
}

static void on_link_user(void *ud, int status, const void *rec) {
  (void)rec;
  rlink *l = ud;
  if (status == TT_ENOTFOUND) {
    bad_sig(l->c.req);
    return;
  }
  if (status) {
    api_backend_error(l->c.req, status);
    return;
  }
  tt_store_query q = {.owner = l->owner, .limit = (int)l->c.api->cfg->max_render_secrets};
  tt_store_list(l->c.api->store, TT_KIND_RENDER_SECRET, &q, on_link_secrets, l);
}

static void render_handler(tt_http_req *req, void *ud) {
  tt_api *api = ud;
  rlink *l = tt_arena_calloc(req->arena, sizeof *l);
  if (!l) {
    tt_http_respond_problem(req, 500, "out of memory");
    return;
  }
  l->c.req = req;
  l->c.api = api;
  l->c.flags = API_CALL_RENDER_LINK;
  req->app = &l->c;
  /* USER.EXT */
  const char *file = tt_http_param_get(req, "file");
  const char *dot = file ? strrchr(file, '.') : NULL;
  if (!dot || dot - file != TT_ID_SIZE - 1) {
    api_problem(req, 404, "not-found", "a render link is /api/render/USER.png (or .jpeg, .webp)");
    return;
  }
  for (size_t i = 0; i < sizeof link_formats / sizeof link_formats[0]; i++)
    if (!strcmp(dot + 1, link_formats[i].ext)) l->format = link_formats[i].format;
  memcpy(l->owner, file, TT_ID_SIZE - 1);
  l->owner[TT_ID_SIZE - 1] = 0;
  if (!l->format || !tt_id_valid(l->owner)) {
    api_problem(req, 404, "not-found", "a render link is /api/render/USER.png (or .jpeg, .webp)");
    return;
  }
  memcpy(l->c.user_id, l->owner, TT_ID_SIZE);
  /* the query: decoded pairs; sig and expires apart */
  const char *names[MAX_PARAMS], *values[MAX_PARAMS];
  size_t all = 0;
  for (const char *p = req->query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    if (seg) {
      if (all == MAX_PARAMS) {
        api_invalid(req, "",
                    tt_arena_sprintf(req->arena, "a render link has at most %d parameters", MAX_PARAMS));
        return;
      }
      const char *eq = memchr(p, '=', seg);
      size_t kl = eq ? (size_t)(eq - p) : seg;
      char *k = decode(req->arena, p, kl);
      char *v = eq ? decode(req->arena, eq + 1, seg - kl - 1) : tt_arena_strdup(req->arena, "");
      if (!k || !v) {
        char *f = k ? k : tt_arena_strndup(req->arena, p, kl < 80 ? kl : 80);
        api_invalid(req, f ? f : "", "a query parameter has a bad %-escape (or a NUL)");
        return;
      }
      names[all] = k;
      values[all] = v;
      all++;
    }
    p = amp ? amp + 1 : NULL;
  }
  const char *signed_names[MAX_PARAMS], *signed_values[MAX_PARAMS];
  size_t ns = 0;
  for (size_t i = 0; i < all; i++) {
    if (!strcmp(names[i], "sig")) {
      if (l->sig) {
        api_invalid(req, "sig", "sig is given more than once");
        return;
      }
      l->sig = values[i];
      continue;
    }
    signed_names[ns] = names[i];
    signed_values[ns++] = values[i];
    if (!strcmp(names[i], "expires")) {
      char *end;
      long long x = strtoll(values[i], &end, 10);
      if (end == values[i] || *end || x <= 0 || l->expires) {
        api_invalid(req, "expires", "expires must be one Unix time in seconds");
        return;
      }
      l->expires = x;
      continue;
    }
    if (!strcmp(names[i], "wait")) continue; /* signed, not a job option: read below */
    l->names[l->n] = names[i];
    l->values[l->n++] = values[i];
  }
  const char *w = api_query_param(req, "wait");
  if (w) {
    if (api_parse_wait(req, api->cfg, &l->wait_ms)) return;
  } else {
    l->wait_ms = api->cfg->max_wait_ms;
  }
  if (!l->sig || strlen(l->sig) != 64) {
    forbidden(req, "bad-signature",
              "a render link needs sig: the hex HMAC-SHA256 of its path and canonical query");
    return;
  }
  l->message = canonical(req, signed_names, signed_values, ns);
  if (!l->message) {
    api_problem(req, 500, "internal", "out of memory");
    return;
  }
  tt_store_get(api->store, TT_KIND_USER, l->owner, on_link_user, l);
}

int api_register_render(tt_router *r, tt_api *api) {
  return tt_router_add(r, TT_HTTP_GET, "/api/render/{file}", render_handler, api, 0);
}
