/* images.c — /api/images: the gallery (DESIGN §3, §4).
 *
 * POST /api/images makes a record (state created). PUT /api/images/{id}/raw
 * streams the upload into the blob store — never whole in memory: pieces
 * collect in a 64 KiB staging buffer and reading pauses while it is being
 * written — after checking the first bytes are a real image (PNG, JPEG,
 * WebP or GIF signature; the declared Content-Type is not trusted). The
 * blob is committed atomically; then, as for jobs, the processing message
 * is sent BEFORE the record says "uploaded", so a crash between the two
 * leaves a message that finds the image not yet uploaded (retried, later
 * dead-lettered) rather than an uploaded image nobody will process.
 * GET reads one image or lists the caller's; GET .../raw|processed|thumbnail
 * streams the bytes with an ETag (Bearer or the record's signed links). */
#include <string.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/multipart.h"
#include "tintype/router.h"

#define STAGE 65536

static json_t *image_json(tt_http_req *req, tt_api *api, const tt_image *im) {
  json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I, s:s?, s:I, s:I, s:I}", "id", im->id, "state", im->state,
                        "content_type", im->content_type, "bytes", (json_int_t)im->bytes, "width",
                        (json_int_t)im->width, "height", (json_int_t)im->height, "error", im->error, "created_at",
                        (json_int_t)im->created_at, "updated_at", (json_int_t)im->updated_at, "version",
                        (json_int_t)im->version);
  if (!o) return NULL;
  /* the size is known once processed: null before, never a made-up 0 */
  if (im->width <= 0 || im->height <= 0) {
    json_object_set_new(o, "width", json_null());
    json_object_set_new(o, "height", json_null());
  }
  json_t *links = json_object();
  char path[128];
  snprintf(path, sizeof path, "/api/images/%s", im->id);
  json_object_set_new(links, "self", json_string(path));
  snprintf(path, sizeof path, "/api/images/%s/raw", im->id);
  json_object_set_new(links, "upload", json_string(path));
  static const struct {
    const char *name, *suffix;
    size_t key_off;
  } kinds[] = {{"raw", "raw", offsetof(tt_image, raw_key)},
               {"processed", "processed", offsetof(tt_image, processed_key)},
               {"thumbnail", "thumbnail", offsetof(tt_image, thumb_key)}};
  for (size_t i = 0; i < 3; i++) {
    const char *key = *(char *const *)((const char *)im + kinds[i].key_off);
    if (!key) continue;
    snprintf(path, sizeof path, "/api/images/%s/%s", im->id, kinds[i].suffix);
    const char *l = api_signed_link(req, api, path);
    if (l) json_object_set_new(links, kinds[i].name, json_string(l));
  }
  json_object_set_new(o, "links", links);
  return o;
}

static int owns(api_call *c, const tt_image *im) { return c->is_admin || !strcmp(im->owner, c->user_id); }

/* ---- POST /api/images ---- */

static void on_image_created(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  const tt_image *im = rec;
  tt_http_add_header(c->req, "Location", tt_arena_sprintf(c->req->arena, "/api/images/%s", im->id));
  api_json(c->req, 201, image_json(c->req, c->api, im));
}

static void create_op(api_call *c) {
  if (!c->user_id[0]) {
    api_problem(c->req, 403, "admin-has-no-images", "images belong to users; use a user's API key");
    return;
  }
  if (c->req->body_len) { /* an optional empty JSON object; nothing else is accepted */
    json_t *in = api_json_body(c->req);
    if (!in) return;
    const char *k = json_object_iter_key(json_object_iter(in));
    if (k) {
      char *f = tt_arena_strdup(c->req->arena, k);
      json_decref(in);
      api_invalid(c->req, f, "unknown field");
      return;
    }
    json_decref(in);
  }
  tt_image im;
  memset(&im, 0, sizeof im);
  memcpy(im.owner, c->user_id, TT_ID_SIZE);
  im.state = (char *)tt_image_state_name(TT_IMAGE_CREATED);
  tt_store_create(c->api->store, TT_KIND_IMAGE, &im, on_image_created, c);
}

/* ---- PUT /api/images/{id}/raw ---- */

typedef struct upload {
  api_call *c;
  tt_image *im; /* our copy of the record */
  tt_blob_writer *w;
  char *stage; /* STAGE + one read buffer of slack */
  size_t n;  /* bytes in the stage */
  size_t wn; /* of which the first wn are being written */
  size_t total;
  int writing, ended, failed;
  char ctype[16];
  char key[96];
  int64_t bytes;
  /* multipart (POST .../upload): the one file part is the image */
  tt_multipart *mp;
  int file_seen, in_file;
} upload;

static void upload_fail(upload *u, int status, const char *kind, const char *detail);

/* the parser may be on the stack when an upload fails: it is freed when
 * the request ends (upload_done), everything else here */
static void up_free(upload *u) {
  free(u->stage);
  u->stage = NULL;
  tt_image_free(u->im);
  u->im = NULL;
}

static void on_aborted(void *ud, int status) {
  (void)ud;
  (void)status;
}

static void upload_fail(upload *u, int status, const char *kind, const char *detail) {
  if (u->failed) return;
  u->failed = 1;
  if (u->w && !u->writing) {
    tt_blobs_abort(u->w, on_aborted, NULL);
    u->w = NULL;
  }
  if (status) api_problem(u->c->req, status, kind, detail);
  if (!u->writing) up_free(u);
}

static const char *sniff(const unsigned char *p, size_t n) {
  if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return "image/jpeg";
  if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "image/webp";
  if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "image/gif";
  return NULL;
}

static void on_blob_dropped(void *ud, int status) {
  (void)ud;
  if (status && status != TT_ENOTFOUND) tt_logf(TT_LOG_WARN, "images: cannot delete an unused upload: %s", tt_strerror(status));
}

static void on_record_updated(void *ud, int status, const void *rec) {
  upload *u = ud;
  if (status) {
    /* another upload to this image switched the record first (or the
     * store failed): our bytes are nobody's, and were never served */
    tt_blobs_delete(u->c->api->blobs, u->key, on_blob_dropped, NULL);
    api_backend_error(u->c->req, status);
  } else {
    /* a re-upload after a failure: the earlier bytes are nobody's now */
    if (u->im->raw_key && strcmp(u->im->raw_key, u->key))
      tt_blobs_delete(u->c->api->blobs, u->im->raw_key, on_blob_dropped, NULL);
    tt_metrics_add(TT_M_IMAGES_UPLOADED, 1);
    tt_metrics_add(TT_M_UPLOAD_BYTES, (uint64_t)u->bytes);
    api_json(u->c->req, 200, image_json(u->c->req, u->c->api, rec));
  }
  up_free(u);
}

static void on_process_sent(void *ud, int status, const char *msg_id) {
  (void)msg_id;
  upload *u = ud;
  if (status) {
    api_backend_error(u->c->req, status);
    up_free(u);
    return;
  }
  tt_image im = *u->im;
  im.state = (char *)tt_image_state_name(TT_IMAGE_UPLOADED);
  im.raw_key = u->key;
  im.content_type = u->ctype;
  im.bytes = u->bytes;
  im.error = NULL;
  tt_store_update(u->c->api->store, TT_KIND_IMAGE, &im, on_record_updated, u);
}

static void on_committed(void *ud, int status, const tt_blob_info *info) {
  upload *u = ud;
  u->w = NULL;
  if (status) {
    api_backend_error(u->c->req, status);
    up_free(u);
    return;
  }
  u->bytes = info->size;
  char msg[TT_JOB_MSG_MAX];
  int n = tt_image_message(msg, u->im->id);
  tt_queue_send(u->c->api->queue, TT_QUEUE_IMAGES, msg, (size_t)n, 0, on_process_sent, u);
}

static void flush_stage(upload *u);

static void on_stage_written(void *ud, int status) {
  upload *u = ud;
  u->writing = 0;
  if (u->failed) { /* failed while writing: finish the cleanup now */
    if (u->w) tt_blobs_abort(u->w, on_aborted, NULL);
    u->w = NULL;
    up_free(u);
    return;
  }
  if (status) {
    upload_fail(u, 0, NULL, NULL);
    api_backend_error(u->c->req, status);
    return;
  }
  /* pieces that arrived during the write sit after the written bytes */
  memmove(u->stage, u->stage + u->wn, u->n - u->wn);
  u->n -= u->wn;
  u->wn = 0;
  if (u->ended) {
    if (u->n) {
      flush_stage(u);
      return;
    }
    tt_blobs_commit(u->w, on_committed, u);
    return;
  }
  if (u->n >= STAGE) {
    flush_stage(u);
    return;
  }
  tt_http_body_resume(u->c->req);
}

static void flush_stage(upload *u) {
  if (!u->w) {
    const char *ct = sniff((const unsigned char *)u->stage, u->n);
    if (!ct) {
      upload_fail(u, 415, "not-an-image", "the upload is not a PNG, JPEG, WebP or GIF image");
      return;
    }
    snprintf(u->ctype, sizeof u->ctype, "%s", ct);
    u->w = tt_blobs_put_start(u->c->api->blobs, u->key, u->ctype);
    if (!u->w) {
      upload_fail(u, 500, "internal", "out of memory");
      return;
    }
  }
  u->writing = 1;
  u->wn = u->n;
  tt_http_body_pause(u->c->req);
  tt_blobs_write(u->w, u->stage, u->wn, on_stage_written, u);
}

#define STAGE_CAP (STAGE + 2 * 16384 + 64)

static void stage_bytes(upload *u, const char *data, size_t len) {
  if (u->failed) return;
  if (u->total + len > (size_t)u->c->api->cfg->max_upload_bytes) {
    upload_fail(u, 413, "upload-too-large", "the upload is larger than max-upload-bytes");
    return;
  }
  if (u->n + len > STAGE_CAP) { /* cannot happen with the engine's one-buffer bound; refuse, never overflow */
    upload_fail(u, 500, "internal", "upload staging overflow");
    return;
  }
  memcpy(u->stage + u->n, data, len);
  u->n += len;
  u->total += len;
  if (u->n >= STAGE && !u->writing) flush_stage(u);
}

/* the end of the upload's bytes */
static void upload_end(upload *u) {
  u->ended = 1;
  if (u->total == 0) {
    upload_fail(u, 400, "empty-upload", "the upload is empty");
    return;
  }
  if (u->writing) return; /* committed when the write completes */
  if (u->n || !u->w) {
    flush_stage(u);
    return;
  }
  tt_blobs_commit(u->w, on_committed, u);
}

static void on_piece(tt_http_req *req, int status, const char *data, size_t len, void *ud) {
  upload *u = ud;
  if (u->failed) return;
  if (status) {
    if (status == TT_ETOOBIG)
      upload_fail(u, 413, "upload-too-large", "the upload is larger than max-upload-bytes");
    else if (status == TT_ETIMEDOUT)
      upload_fail(u, 408, "upload-timeout", "the upload stalled");
    else
      upload_fail(u, status == TT_ECANCELED ? 0 : 400, "bad-upload", "the upload's framing is invalid");
    if (status == TT_ECANCELED) tt_http_respond_problem(req, 400, "client gone"); /* ends the request */
    return;
  }
  if (!data) { /* end */
    upload_end(u);
    return;
  }
  /* pieces after a pause still arrive (at most one read buffer): the stage
   * has that much slack */
  stage_bytes(u, data, len);
}

/* multipart callbacks */
static int mp_begin(void *ud, const char *name, const char *filename, const char *ct) {
  (void)ct;
  upload *u = ud;
  int is_file = filename != NULL || (name && !strcmp(name, "file"));
  if (is_file && u->file_seen) return 1; /* one image per upload */
  u->file_seen |= is_file;
  u->in_file = is_file;
  return 0;
}

static int mp_data(void *ud, const char *data, size_t len) {
  upload *u = ud;
  if (u->in_file) stage_bytes(u, data, len);
  return u->failed;
}

static int mp_end(void *ud) {
  ((upload *)ud)->in_file = 0;
  return 0;
}

static const tt_multipart_cbs mp_cbs = {mp_begin, mp_data, mp_end};

static void on_form_piece(tt_http_req *req, int status, const char *data, size_t len, void *ud) {
  upload *u = ud;
  if (u->failed) return;
  if (status || data) {
    if (status == 0 && tt_multipart_feed(u->mp, data, len) != TT_OK && !u->failed)
      upload_fail(u, 400, "bad-multipart", "the multipart/form-data body is malformed or has more than one file");
    else if (status)
      on_piece(req, status, NULL, 0, ud);
    return;
  }
  if (tt_multipart_finish(u->mp) != TT_OK) {
    upload_fail(u, 400, "bad-multipart", "the multipart/form-data body is not terminated");
    return;
  }
  if (!u->file_seen) {
    upload_fail(u, 400, "no-file", "the form has no file part");
    return;
  }
  upload_end(u);
}

static void on_upload_image(void *ud, int status, const void *rec) {
  upload *u = ud;
  if (status || !owns(u->c, rec)) {
    api_backend_error(u->c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  const tt_image *im = rec;
  int ist = tt_image_state_of(im->state);
  if (ist != TT_IMAGE_CREATED && ist != TT_IMAGE_FAILED) {
    char *d = tt_arena_sprintf(u->c->req->arena, "the image is %s; upload to a new image", im->state);
    api_problem(u->c->req, 409, "already-uploaded", d);
    return;
  }
  u->im = tt_image_dup(im);
  u->stage = tt_xmalloc(STAGE_CAP);
  if (!u->im || !u->stage) {
    up_free(u);
    api_problem(u->c->req, 500, "internal", "out of memory");
    return;
  }
  /* every upload writes a key of its own, and the conditional record update
   * (on the version read here) decides which upload the image is: two
   * uploads at once can never leave the record naming one upload's type and
   * size while the key holds the other's bytes */
  char upload_id[TT_ID_SIZE];
  tt_id_new(upload_id);
  snprintf(u->key, sizeof u->key, "images/%s/raw-%s", im->id, upload_id);
  if (u->c->req->method == TT_HTTP_POST) {
    char boundary[TT_MULTIPART_MAX_BOUNDARY + 1];
    if (tt_multipart_boundary(tt_http_header_get(u->c->req, "Content-Type"), boundary, sizeof boundary) ||
        !(u->mp = tt_multipart_new(boundary, &mp_cbs, u))) {
      up_free(u);
      api_problem(u->c->req, 415, "unsupported-media-type", "send the upload as multipart/form-data with a boundary");
      return;
    }
    tt_http_body_start(u->c->req, on_form_piece, u);
    return;
  }
  tt_http_body_start(u->c->req, on_piece, u);
}

static void upload_done(tt_http_req *req, int status, void *ud) {
  (void)req;
  (void)status;
  upload *u = ud;
  tt_multipart_free(u->mp);
  u->mp = NULL;
}

static void upload_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such image");
    return;
  }
  upload *u = tt_arena_calloc(c->req->arena, sizeof *u);
  u->c = c;
  tt_http_on_done(c->req, upload_done, u);
  tt_store_get(c->api->store, TT_KIND_IMAGE, id, on_upload_image, u);
}

/* ---- GET one, list ---- */

static void on_image(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status || !owns(c, rec)) {
    api_backend_error(c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  api_json(c->req, 200, image_json(c->req, c->api, rec));
}

static void get_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id");
  if (!tt_id_valid(id)) {
    api_problem(c->req, 404, "not-found", "no such image");
    return;
  }
  tt_store_get(c->api->store, TT_KIND_IMAGE, id, on_image, c);
}

static void on_images(void *ud, int status, const void *recs, size_t n, const char *next) {
  api_call *c = ud;
  if (status) {
    api_backend_error(c->req, status);
    return;
  }
  const tt_image *ims = recs;
  json_t *items = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(items, image_json(c->req, c->api, &ims[i]));
  api_json(c->req, 200, json_pack("{s:o, s:s?}", "items", items, "next_cursor", next));
}

static void list_op(api_call *c) {
  tt_store_query q = {.owner = c->user_id, .limit = TT_STORE_LIST_DEFAULT};
  const char *limit = api_query_param(c->req, "limit"), *cursor = api_query_param(c->req, "cursor");
  if (limit) {
    char *end;
    long v = strtol(limit, &end, 10);
    if (*end || end == limit || v < 1 || v > TT_STORE_LIST_MAX) {
      api_invalid(c->req, "limit", "limit must be an integer from 1 to 1000");
      return;
    }
    q.limit = (int)v;
  }
  if (cursor) {
    if (!tt_id_valid(cursor)) {
      api_invalid(c->req, "cursor", "cursor must be a next_cursor from an earlier page");
      return;
    }
    q.cursor = cursor;
  }
  if (!c->user_id[0]) {
    api_problem(c->req, 403, "admin-has-no-images", "images belong to users; use a user's API key");
    return;
  }
  tt_store_list(c->api->store, TT_KIND_IMAGE, &q, on_images, c);
}

/* ---- GET bytes ---- */

/* "raw" has a route of its own; the others come as the {kind} parameter */
static const char *kind_of(tt_http_req *req) {
  const char *k = tt_http_param_get(req, "kind");
  return k ? k : "raw";
}

static void on_bytes_image(void *ud, int status, const void *rec) {
  api_call *c = ud;
  if (status || !owns(c, rec)) {
    api_backend_error(c->req, status ? status : TT_ENOTFOUND);
    return;
  }
  const tt_image *im = rec;
  const char *kind = kind_of(c->req);
  const char *key = !strcmp(kind, "raw") ? im->raw_key : !strcmp(kind, "processed") ? im->processed_key : im->thumb_key;
  if (!key) {
    char *d = tt_arena_sprintf(c->req->arena, "the image is %s; it has no %s bytes yet", im->state, kind);
    api_problem(c->req, 409, "not-ready", d);
    return;
  }
  api_serve_blob(c, key);
}

static void bytes_op(api_call *c) {
  const char *id = tt_http_param_get(c->req, "id"), *kind = kind_of(c->req);
  if (!tt_id_valid(id) || (strcmp(kind, "raw") && strcmp(kind, "processed") && strcmp(kind, "thumbnail"))) {
    api_problem(c->req, 404, "not-found", "no such image or kind (raw, processed, thumbnail)");
    return;
  }
  tt_store_get(c->api->store, TT_KIND_IMAGE, id, on_bytes_image, c);
}

/* ---- routes ---- */

static void images_handler(tt_http_req *req, void *ud) {
  api_auth(req, ud, req->method == TT_HTTP_POST ? create_op : list_op);
}
static void image_handler(tt_http_req *req, void *ud) { api_auth(req, ud, get_op); }
static void upload_handler(tt_http_req *req, void *ud) {
  tt_api *api = ud;
  /* a declared size over the limit is refused before any byte is read */
  const char *cl = tt_http_header_get(req, "Content-Length");
  if (cl && req->method == TT_HTTP_PUT && strtoll(cl, NULL, 10) > api->cfg->max_upload_bytes) {
    api_problem(req, 413, "upload-too-large", "the upload is larger than max-upload-bytes");
    return;
  }
  api_auth(req, ud, upload_op);
}

static void bytes_handler(tt_http_req *req, void *ud) { api_auth_or_signed(req, ud, bytes_op); }

int api_register_images(tt_router *r, tt_api *api) {
  int rc = tt_router_add(r, TT_HTTP_GET | TT_HTTP_POST, "/api/images", images_handler, api,
                         api ? api->cfg->max_image_body_bytes : 0);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/images/{id}", image_handler, api, 0);
  /* raw: GET the bytes, PUT them (streamed); upload: the multipart form
   * (streamed; its limit leaves room for the form's own bytes, the file
   * part itself is held to max-upload-bytes); processed and thumbnail: GET */
  int64_t max = api ? api->cfg->max_upload_bytes : 0;
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/images/{id}/raw", bytes_handler, api, 0);
  if (!rc) rc = tt_router_add_streaming(r, TT_HTTP_PUT, "/api/images/{id}/raw", upload_handler, api, max);
  if (!rc) rc = tt_router_add_streaming(r, TT_HTTP_POST, "/api/images/{id}/upload", upload_handler, api, max + 64 * 1024);
  if (!rc) rc = tt_router_add(r, TT_HTTP_GET, "/api/images/{id}/{kind}", bytes_handler, api, 0);
  return rc;
}
