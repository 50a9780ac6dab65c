/* s3.c — the blob seam (include/tintype/blobs.h) on Amazon S3 (REST),
 * through the client of src/aws/.
 *
 * s3://BUCKET/PREFIX: blob KEY is the object PREFIX/KEY. Path-style
 * addressing when an endpoint is configured (AWS_ENDPOINT_URL[_S3]: moto,
 * MinIO...), virtual-hosted (BUCKET.s3.REGION.amazonaws.com) on AWS.
 * Query parameters: multipart_threshold (default 16m) and part_size (8m,
 * at least 5m, as S3 wants), links=presign|stream (default presign).
 *
 * Put: writes collect in memory up to the threshold; a blob that ends
 * below it is one PUT with its known length, a larger one becomes a
 * multipart upload whose parts go out as they fill (so memory stays at
 * one part), completed at commit and aborted on any failure or abort.
 * Get: one GET streamed with backpressure: at most one chunk waits in
 * memory; past that libcurl is paused until the reader asks for more.
 * Head is HEAD; delete is HEAD + DELETE (S3's DELETE cannot say "absent").
 * Links: a presigned GET (src/aws/sigv4.c) capped by the credentials'
 * expiry; with links=stream, tt_blobs_url answers TT_ENOTSUP and the API
 * streams the bytes itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tintype/aws.h"
#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/log.h"

typedef struct s3 {
  tt_blobs base;
  tt_aws *aws;
  char bucket[64];
  char prefix[512];
  int64_t threshold, part_size;
  int stream_links;
  int busy; /* operations in flight */
  int closing;
  tt_blobs_close_cb ccb;
  void *cud;
  uv_timer_t t; /* close callback */
} s3;

#define S(b) ((s3 *)(b))

/* ---- small helpers --------------------------------------------------------- */

/* the object's encoded path ("/BUCKET/PREFIX/KEY" or "/PREFIX/KEY") and the
 * base URL to send it to */
static int object_path(s3 *s, const char *key, const char *extra, tt_buf *path, char *base,
                       size_t baselen) {
  int custom;
  const char *ep = tt_aws_endpoint(s->aws, TT_AWS_S3, &custom);
  int rc = tt_buf_putc(path, '/');
  if (custom) {
    snprintf(base, baselen, "%s", ep);
    if (!rc) rc = tt_aws_uri_encode(path, s->bucket, strlen(s->bucket), 0);
    if (!rc && (key || s->prefix[0])) rc = tt_buf_putc(path, '/');
  } else {
    /* https://s3.REGION.amazonaws.com -> https://BUCKET.s3.REGION.amazonaws.com */
    const char *h = strstr(ep, "://");
    snprintf(base, baselen, "%.*s%s.%s", (int)(h ? h + 3 - ep : 0), ep, s->bucket, h ? h + 3 : ep);
  }
  if (!rc && s->prefix[0]) {
    rc = tt_aws_uri_encode(path, s->prefix, strlen(s->prefix), 1);
    if (!rc && key) rc = tt_buf_putc(path, '/');
  }
  if (!rc && key) rc = tt_aws_uri_encode(path, key, strlen(key), 1);
  if (!rc && extra) rc = tt_buf_puts(path, extra);
  return rc;
}

static void s3_maybe_closed(s3 *s);

typedef struct later {
  uv_timer_t t;
  void (*fn)(void *);
  void *arg;
} later;
static void later_closed(uv_handle_t *h) { free(h->data); }
static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  l->fn(l->arg);
  uv_close((uv_handle_t *)&l->t, later_closed);
}
static void defer(s3 *s, void (*fn)(void *), void *arg) {
  later *l = calloc(1, sizeof *l);
  if (!l) abort();
  l->fn = fn;
  l->arg = arg;
  uv_timer_init(s->base.loop, &l->t);
  l->t.data = l;
  uv_timer_start(&l->t, later_fire, 0, 0);
}

static int map_err(int err, const tt_aws_resp *r) {
  if (err != TT_EIO) return err;
  if (r->status == 404 || !strcmp(r->code, "NoSuchKey") || !strcmp(r->code, "NoSuchBucket"))
    return TT_ENOTFOUND;
  if (!strcmp(r->code, "EntityTooLarge")) return TT_ETOOBIG;
  if (!strcmp(r->code, "InvalidArgument") || !strcmp(r->code, "KeyTooLongError")) return TT_EINVAL;
  return TT_EIO;
}

static int64_t http_date(const char *v) {
  if (!v) return 0;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!strptime(v, "%a, %d %b %Y %H:%M:%S", &tm)) return 0;
  return (int64_t)timegm(&tm) * 1000;
}

typedef struct info_buf {
  tt_blob_info info;
  char ctype[TT_BLOB_CTYPE_MAX + 1];
  char etag[160];
} info_buf;

static void info_from(const tt_aws_resp *r, info_buf *ib) {
  const char *v = tt_aws_resp_header(r->req, "Content-Length");
  ib->info.size = v ? atoll(v) : 0;
  v = tt_aws_resp_header(r->req, "Content-Type");
  snprintf(ib->ctype, sizeof ib->ctype, "%s", v ? v : "application/octet-stream");
  v = tt_aws_resp_header(r->req, "ETag");
  snprintf(ib->etag, sizeof ib->etag, "%s", v ? v : "\"\"");
  ib->info.mtime_ms = http_date(tt_aws_resp_header(r->req, "Last-Modified"));
  ib->info.content_type = ib->ctype;
  ib->info.etag = ib->etag;
}

static tt_aws_req *object_call(s3 *s, const char *method, const char *action, const char *key,
                               const char *query, const char *ctype, const void *body, size_t len,
                               tt_aws_cb cb, void *ud) {
  tt_buf path = TT_BUF_INIT;
  char base[600];
  if (object_path(s, key, NULL, &path, base, sizeof base)) {
    tt_buf_free(&path);
    return NULL;
  }
  tt_aws_call c = {.svc = TT_AWS_S3,
                   .action = action,
                   .base = base,
                   .method = method,
                   .path = path.data,
                   .query = query,
                   .content_type = ctype,
                   .body = body,
                   .len = len,
                   .keep_body = 1};
  tt_aws_req *r = tt_aws_call_start(s->aws, &c, cb, ud);
  tt_buf_free(&path);
  return r;
}

/* ---- put --------------------------------------------------------------------- */

typedef struct s3_writer {
  tt_blob_writer base; /* first: the front's part */
  tt_blobs *b;
  char key[TT_BLOB_KEY_MAX + 1];
  char ctype[TT_BLOB_CTYPE_MAX + 1];
  int bad;
  tt_buf buf;
  int64_t total;
  char *upload_id;
  int parts;
  tt_buf xml; /* CompleteMultipartUpload's part list */
  int failed;
  /* the call in progress */
  tt_blobs_cb wcb;
  tt_blobs_info_cb icb;
  void *ud;
  int committing;
  int status;
  info_buf ib;
} s3_writer;

static void w_free(s3_writer *w) {
  s3 *s = S(w->b);
  tt_buf_free(&w->buf);
  tt_buf_free(&w->xml);
  free(w->upload_id);
  free(w);
  s->busy--;
  s3_maybe_closed(s);
}

static void w_done_write(void *arg) {
  s3_writer *w = arg;
  w->wcb(w->ud, w->status);
}
static void w_done_info(void *arg) {
  s3_writer *w = arg;
  tt_blobs_info_cb cb = w->icb;
  void *ud = w->ud;
  int st = w->status;
  info_buf ib = w->ib;
  w_free(w);
  cb(ud, st, st ? NULL : &ib.info);
}
static void w_done_abort(void *arg) {
  s3_writer *w = arg;
  tt_blobs_cb cb = w->wcb;
  void *ud = w->ud;
  int st = w->status;
  w_free(w);
  if (cb) cb(ud, st);
}

static void on_aborted_quietly(void *ud, int err, const tt_aws_resp *r) {
  (void)r;
  s3_writer *w = ud;
  if (err) tt_logf(TT_LOG_WARN, "s3: abort of a failed multipart upload failed (%s)", tt_strerror(err));
  free(w->upload_id);
  w->upload_id = NULL;
  if (w->committing == 2) w_done_info(w);
  else if (w->committing == 3) w_done_abort(w);
}

/* a failed part or completion: abort the upload so no parts linger */
static void w_fail(s3_writer *w, int err) {
  w->failed = err;
  w->status = err;
  if (w->upload_id) {
    char q[700];
    snprintf(q, sizeof q, "uploadId=%s", w->upload_id);
    if (w->committing) w->committing = 2;
    if (object_call(S(w->b), "DELETE", "s3:AbortMultipartUpload", w->key, q, NULL, NULL, 0,
                    on_aborted_quietly, w)) {
      if (!w->committing) defer(S(w->b), w_done_write, w);
      return;
    }
  }
  if (w->committing)
    defer(S(w->b), w_done_info, w);
  else
    defer(S(w->b), w_done_write, w);
}

static void upload_parts(s3_writer *w, int final);

static void on_part(void *ud, int err, const tt_aws_resp *r) {
  s3_writer *w = ud;
  if (err) {
    w_fail(w, map_err(err, r));
    return;
  }
  const char *etag = tt_aws_resp_header(r->req, "ETag");
  if (!etag) {
    w_fail(w, TT_EIO);
    return;
  }
  if (tt_buf_printf(&w->xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", w->parts,
                    etag)) {
    w_fail(w, TT_ENOMEM);
    return;
  }
  size_t n = (size_t)S(w->b)->part_size;
  if (n > w->buf.len) n = w->buf.len;
  memmove(w->buf.data, w->buf.data + n, w->buf.len - n);
  w->buf.len -= n;
  upload_parts(w, w->committing);
}

static void on_completed(void *ud, int err, const tt_aws_resp *r) {
  s3_writer *w = ud;
  if (err || strstr(r->body, "<Error>")) { /* S3 may answer 200 with an error */
    w_fail(w, err ? map_err(err, r) : TT_EIO);
    return;
  }
  free(w->upload_id);
  w->upload_id = NULL;
  const char *e = strstr(r->body, "<ETag>");
  const char *f = e ? strstr(e, "</ETag>") : NULL;
  if (e && f) {
    snprintf(w->ib.etag, sizeof w->ib.etag, "%.*s", (int)(f - e - 6), e + 6);
    /* the XML escapes the quotes */
    char *q;
    while ((q = strstr(w->ib.etag, "&quot;"))) {
      *q = '"';
      memmove(q + 1, q + 6, strlen(q + 6) + 1);
    }
  }
  w->status = 0;
  w_done_info(w);
}

static void complete_upload(s3_writer *w) {
  tt_buf body = TT_BUF_INIT;
  char q[700];
  snprintf(q, sizeof q, "uploadId=%s", w->upload_id);
  if (tt_buf_printf(&body, "<CompleteMultipartUpload>%s</CompleteMultipartUpload>", w->xml.data)) {
    w_fail(w, TT_ENOMEM);
    return;
  }
  /* the body must outlive the call: keep it in the writer */
  tt_buf_free(&w->buf);
  w->buf = body;
  if (!object_call(S(w->b), "POST", "s3:PutObject", w->key, q, "application/xml", w->buf.data,
                   w->buf.len, on_completed, w))
    w_fail(w, TT_ENOMEM);
}

/* sends the next full part (or, final, whatever is left), else reports */
static void upload_parts(s3_writer *w, int final) {
  s3 *s = S(w->b);
  if ((int64_t)w->buf.len >= s->part_size || (final && (w->buf.len || w->parts == 0))) {
    size_t n = (size_t)s->part_size;
    if (n > w->buf.len) n = w->buf.len;
    char q[800];
    snprintf(q, sizeof q, "partNumber=%d&uploadId=%s", ++w->parts, w->upload_id);
    if (!object_call(s, "PUT", "s3:PutObject", w->key, q, NULL, w->buf.data, n, on_part, w))
      w_fail(w, TT_ENOMEM);
    return;
  }
  if (final) {
    complete_upload(w);
    return;
  }
  w->status = 0;
  w_done_write(w); /* on the loop already: an S3 answer brought us here */
}

static void on_created(void *ud, int err, const tt_aws_resp *r) {
  s3_writer *w = ud;
  if (err) {
    w_fail(w, map_err(err, r));
    return;
  }
  const char *a = strstr(r->body, "<UploadId>");
  const char *b = a ? strstr(a, "</UploadId>") : NULL;
  if (!a || !b) {
    w_fail(w, TT_EIO);
    return;
  }
  a += 10;
  w->upload_id = malloc((size_t)(b - a) + 1);
  if (!w->upload_id) {
    w_fail(w, TT_ENOMEM);
    return;
  }
  memcpy(w->upload_id, a, (size_t)(b - a));
  w->upload_id[b - a] = 0;
  if (tt_buf_puts(&w->xml, "")) {
    w_fail(w, TT_ENOMEM);
    return;
  }
  upload_parts(w, w->committing);
}

static s3_writer *s3_put_start(tt_blobs *b, const char *key, const char *ctype) {
  s3_writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->b = b;
  w->bad = !tt_blobs_key_valid(key) || (ctype && strlen(ctype) > TT_BLOB_CTYPE_MAX);
  if (!w->bad) snprintf(w->key, sizeof w->key, "%s", key);
  snprintf(w->ctype, sizeof w->ctype, "%s", ctype && *ctype ? ctype : "application/octet-stream");
  S(b)->busy++;
  return w;
}

static void s3_write(s3_writer *w, const void *data, size_t len, tt_blobs_cb cb, void *ud) {
  w->wcb = cb;
  w->ud = ud;
  w->status = w->bad ? TT_EINVAL : w->failed;
  if (!w->status && tt_buf_append(&w->buf, data, len)) w->status = TT_ENOMEM;
  if (w->status) {
    defer(S(w->b), w_done_write, w);
    return;
  }
  w->total += (int64_t)len;
  s3 *s = S(w->b);
  if (w->upload_id) {
    if ((int64_t)w->buf.len >= s->part_size) {
      upload_parts(w, 0);
      return;
    }
  } else if (w->total >= s->threshold) {
    /* big: becomes a multipart upload; parts go as they fill */
    if (!object_call(s, "POST", "s3:PutObject", w->key, "uploads", w->ctype, NULL, 0, on_created, w))
      w_fail(w, TT_ENOMEM);
    return;
  }
  defer(s, w_done_write, w);
}

static void on_put(void *ud, int err, const tt_aws_resp *r) {
  s3_writer *w = ud;
  w->status = map_err(err, r);
  if (!err) {
    const char *e = tt_aws_resp_header(r->req, "ETag");
    snprintf(w->ib.etag, sizeof w->ib.etag, "%s", e ? e : "\"\"");
  }
  w_done_info(w);
}

static void s3_commit(s3_writer *w, tt_blobs_info_cb cb, void *ud) {
  w->icb = cb;
  w->ud = ud;
  w->committing = 1;
  w->ib.info.size = w->total;
  snprintf(w->ib.ctype, sizeof w->ib.ctype, "%s", w->ctype);
  w->ib.info.content_type = w->ib.ctype;
  w->ib.info.etag = w->ib.etag;
  w->ib.info.mtime_ms = tt_aws_now_ms();
  w->status = w->bad ? TT_EINVAL : w->failed;
  if (w->status) {
    defer(S(w->b), w_done_info, w);
    return;
  }
  if (w->upload_id) {
    upload_parts(w, 1);
    return;
  }
  if (!object_call(S(w->b), "PUT", "s3:PutObject", w->key, NULL, w->ctype, w->buf.data, w->buf.len,
                   on_put, w)) {
    w->status = TT_ENOMEM;
    defer(S(w->b), w_done_info, w);
  }
}

static void on_abort(void *ud, int err, const tt_aws_resp *r) {
  s3_writer *w = ud;
  w->status = err ? map_err(err, r) : 0;
  if (w->status == TT_ENOTFOUND) w->status = 0;
  w_done_abort(w);
}

static void s3_abort(s3_writer *w, tt_blobs_cb cb, void *ud) {
  w->wcb = cb;
  w->ud = ud;
  w->status = 0;
  if (w->upload_id) {
    char q[700];
    snprintf(q, sizeof q, "uploadId=%s", w->upload_id);
    w->committing = 3;
    if (object_call(S(w->b), "DELETE", "s3:AbortMultipartUpload", w->key, q, NULL, NULL, 0, on_abort,
                    w))
      return;
  }
  defer(S(w->b), w_done_abort, w);
}

/* ---- get ----------------------------------------------------------------------- */

typedef struct s3_reader {
  tt_blob_reader base; /* first: the front's part */
  tt_blobs *b;
  tt_aws_req *req;
  tt_buf in, out;
  int eof, err, opened, closed, paused;
  tt_blobs_open_cb ocb;
  tt_blobs_read_cb rcb;
  void *oud, *rud;
  int delivering;
  info_buf ib;
} s3_reader;

static void r_free(s3_reader *r) {
  s3 *s = S(r->b);
  tt_buf_free(&r->in);
  tt_buf_free(&r->out);
  free(r);
  s->busy--;
  s3_maybe_closed(s);
}

/* frees a closed reader once nothing refers to it */
static void r_release(s3_reader *r) {
  if (r->closed && !r->req && !r->delivering) r_free(r);
}

static void r_deliver(void *arg) {
  s3_reader *r = arg;
  r->delivering = 0;
  if (r->closed) {
    r_release(r);
    return;
  }
  if (!r->rcb) return;
  tt_blobs_read_cb cb = r->rcb;
  void *ud = r->rud;
  if (r->in.len) {
    tt_buf t = r->out;
    r->out = r->in;
    r->in = t;
    tt_buf_reset(&r->in);
    r->rcb = NULL;
    if (r->paused && r->req) {
      r->paused = 0;
      tt_aws_resume(r->req);
    }
    cb(ud, 0, r->out.data, r->out.len);
  } else if (r->err || r->eof) {
    r->rcb = NULL;
    cb(ud, r->err, NULL, 0);
  }
  /* else: wait for bytes */
}

static void r_kick(s3_reader *r) {
  if (r->delivering || !r->rcb) return;
  if (!r->in.len && !r->err && !r->eof) return;
  r->delivering = 1;
  defer(S(r->b), r_deliver, r);
}

static void r_kick(s3_reader *r);
static void on_get_head(void *ud, const tt_aws_resp *resp) {
  s3_reader *r = ud;
  info_from(resp, &r->ib);
  r->opened = 1;
  r->ocb(r->oud, 0, &r->base, &r->ib.info);
}

static int on_get_data(void *ud, const char *data, size_t len) {
  s3_reader *r = ud;
  if (r->in.len && r->in.len + len > TT_BLOB_CHUNK) { /* one chunk waits at most */
    r->paused = 1;
    return 1;
  }
  if (tt_buf_append(&r->in, data, len)) {
    r->paused = 1;
    return 1;
  }
  r_kick(r); /* only starts a timer: safe inside libcurl */
  return 0;
}

static void on_get_done(void *ud, int err, const tt_aws_resp *resp) {
  s3_reader *r = ud;
  r->req = NULL;
  if (!r->opened) {
    if (err) {
      tt_blobs_open_cb cb = r->ocb;
      void *oud = r->oud;
      r_free(r);
      cb(oud, map_err(err, resp), NULL, NULL);
      return;
    }
    /* an empty body: no bytes ever came, so no head either */
    info_from(resp, &r->ib);
    r->opened = 1;
    r->eof = 1;
    r->ocb(r->oud, 0, &r->base, &r->ib.info);
    r_release(r);
    return;
  }
  if (r->closed) {
    r_release(r);
    return;
  }
  if (err)
    r->err = map_err(err, resp);
  else
    r->eof = 1;
  r_kick(r);
}

static void r_open_fail(void *arg) {
  s3_reader *r = arg;
  tt_blobs_open_cb cb = r->ocb;
  void *oud = r->oud;
  int err = r->err;
  r_free(r);
  cb(oud, err, NULL, NULL);
}

static void s3_get_open(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud) {
  s3 *s = S(b);
  s3_reader *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->b = b;
  r->ocb = cb;
  r->oud = ud;
  s->busy++;
  if (!tt_blobs_key_valid(key)) r->err = TT_EINVAL;
  tt_buf path = TT_BUF_INIT;
  char base[600];
  int rc = r->err ? r->err : object_path(s, key, NULL, &path, base, sizeof base);
  if (!rc) {
    tt_aws_call c = {.svc = TT_AWS_S3,
                     .action = "s3:GetObject",
                     .base = base,
                     .method = "GET",
                     .path = path.data,
                     .timeout_ms = 300000,
                     .on_head = on_get_head,
                     .on_data = on_get_data};
    r->req = tt_aws_call_start(s->aws, &c, on_get_done, r);
    if (!r->req) rc = TT_ENOMEM;
  }
  tt_buf_free(&path);
  if (rc) {
    r->err = rc;
    defer(s, r_open_fail, r);
  }
}

static void s3_read(s3_reader *r, tt_blobs_read_cb cb, void *ud) {
  r->rcb = cb;
  r->rud = ud;
  r_kick(r);
}

static void s3_get_close(s3_reader *r) {
  r->closed = 1;
  r->rcb = NULL;
  if (r->req) {
    tt_aws_cancel(r->req); /* on_get_done releases */
    return;
  }
  r_release(r);
}

/* ---- head, delete ----------------------------------------------------------------- */

typedef struct hop {
  s3 *s;
  char key[TT_BLOB_KEY_MAX + 1];
  tt_blobs_info_cb icb;
  tt_blobs_cb cb;
  void *ud;
  int status;
  info_buf ib;
} hop;

static void hop_info_done(void *arg) {
  hop *h = arg;
  s3 *s = h->s;
  h->icb(h->ud, h->status, h->status ? NULL : &h->ib.info);
  free(h);
  s->busy--;
  s3_maybe_closed(s);
}
static void hop_done(void *arg) {
  hop *h = arg;
  s3 *s = h->s;
  h->cb(h->ud, h->status);
  free(h);
  s->busy--;
  s3_maybe_closed(s);
}

static void on_head(void *ud, int err, const tt_aws_resp *r) {
  hop *h = ud;
  h->status = map_err(err, r);
  if (!err) info_from(r, &h->ib);
  hop_info_done(h);
}

static void s3_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud) {
  hop *h = calloc(1, sizeof *h);
  if (!h) abort();
  h->s = S(b);
  h->icb = cb;
  h->ud = ud;
  S(b)->busy++;
  if (!tt_blobs_key_valid(key)) {
    h->status = TT_EINVAL;
    defer(S(b), hop_info_done, h);
    return;
  }
  if (!object_call(S(b), "HEAD", "s3:GetObject", key, NULL, NULL, NULL, 0, on_head, h)) {
    h->status = TT_ENOMEM;
    defer(S(b), hop_info_done, h);
  }
}

static void on_deleted(void *ud, int err, const tt_aws_resp *r) {
  hop *h = ud;
  h->status = map_err(err, r);
  hop_done(h);
}

static void on_del_head(void *ud, int err, const tt_aws_resp *r) {
  hop *h = ud;
  if (err) {
    h->status = map_err(err, r);
    hop_done(h);
    return;
  }
  if (!object_call(h->s, "DELETE", "s3:DeleteObject", h->key, NULL, NULL, NULL, 0, on_deleted, h)) {
    h->status = TT_ENOMEM;
    hop_done(h);
  }
}

static void s3_del(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud) {
  hop *h = calloc(1, sizeof *h);
  if (!h) abort();
  h->s = S(b);
  h->cb = cb;
  h->ud = ud;
  S(b)->busy++;
  if (!tt_blobs_key_valid(key)) {
    h->status = TT_EINVAL;
    defer(S(b), hop_done, h);
    return;
  }
  snprintf(h->key, sizeof h->key, "%s", key);
  if (!object_call(S(b), "HEAD", "s3:GetObject", key, NULL, NULL, NULL, 0, on_del_head, h)) {
    h->status = TT_ENOMEM;
    defer(S(b), hop_done, h);
  }
}

/* ---- links --------------------------------------------------------------------------- */

static int s3_url(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen) {
  s3 *s = S(b);
  if (!tt_blobs_key_valid(key)) return TT_EINVAL;
  if (s->stream_links) return TT_ENOTSUP;
  tt_aws_key k;
  int64_t exp_ms;
  if (tt_aws_key_get(s->aws, TT_AWS_S3, &k, &exp_ms)) return TT_EAUTH;
  int64_t now = tt_aws_now_ms();
  if (exp_ms) {
    /* a link signed with temporary keys dies with them */
    int64_t left = (exp_ms - now) / 1000 - 30;
    if (left < 1) return TT_EAUTH;
    if (expires_s > left) expires_s = left;
  }
  if (expires_s > 604800) expires_s = 604800;
  tt_buf path = TT_BUF_INIT;
  char base[600];
  int rc = object_path(s, key, NULL, &path, base, sizeof base);
  const char *host = strstr(base, "://");
  if (!rc) rc = tt_aws_presign(base, host ? host + 3 : base, path.data, &k, now / 1000, expires_s, out, outlen);
  tt_buf_free(&path);
  return rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void s3_closed(uv_handle_t *h) {
  s3 *s = h->data;
  tt_blobs_close_cb cb = s->ccb;
  void *ud = s->cud;
  tt_aws_release(s->aws);
  free(s);
  if (cb) cb(ud);
}

static void s3_maybe_closed(s3 *s) {
  if (s->closing != 1 || s->busy) return;
  s->closing = 2;
  uv_close((uv_handle_t *)&s->t, s3_closed);
}

static void s3_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud) {
  s3 *s = S(b);
  s->ccb = cb;
  s->cud = ud;
  s->closing = 1;
  s3_maybe_closed(s);
}

/* the vtable speaks of the front's base structs, which begin ours */
static tt_blob_writer *v_put_start(tt_blobs *b, const char *key, const char *ctype) {
  return (tt_blob_writer *)s3_put_start(b, key, ctype);
}
static void v_write(tt_blob_writer *w, const void *d, size_t n, tt_blobs_cb cb, void *ud) {
  s3_write((s3_writer *)w, d, n, cb, ud);
}
static void v_commit(tt_blob_writer *w, tt_blobs_info_cb cb, void *ud) {
  s3_commit((s3_writer *)w, cb, ud);
}
static void v_abort(tt_blob_writer *w, tt_blobs_cb cb, void *ud) { s3_abort((s3_writer *)w, cb, ud); }
static void v_read(tt_blob_reader *r, tt_blobs_read_cb cb, void *ud) {
  s3_read((s3_reader *)r, cb, ud);
}
static void v_get_close(tt_blob_reader *r) { s3_get_close((s3_reader *)r); }

static const tt_blobs_ops s3_ops = {
    .name = "s3",
    .put_start = v_put_start,
    .write = v_write,
    .commit = v_commit,
    .abort = v_abort,
    .get_open = s3_get_open,
    .read = v_read,
    .get_close = v_get_close,
    .head = s3_head,
    .del = s3_del,
    .url = s3_url,
    .close = s3_close,
};

static int64_t size_param(const char *url, const char *key, int64_t def) {
  char v[32];
  if (!tt_aws_url_param(url, key, v, sizeof v)) return def;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v || n <= 0) return -1;
  if (*end == 'k' || *end == 'K') n <<= 10, end++;
  else if (*end == 'm' || *end == 'M') n <<= 20, end++;
  else if (*end == 'g' || *end == 'G') n <<= 30, end++;
  return *end ? -1 : n;
}

int tt_blobs_s3_open(uv_loop_t *loop, const char *url, tt_blobs **out) {
  *out = NULL;
  if (strncmp(url, "s3://", 5)) return TT_EINVAL;
  const char *p = url + 5;
  size_t bn = strcspn(p, "/?");
  if (bn < 3 || bn > 63) return TT_EINVAL;
  s3 *s = calloc(1, sizeof *s);
  if (!s) return TT_ENOMEM;
  memcpy(s->bucket, p, bn);
  for (size_t i = 0; i < bn; i++) {
    char c = s->bucket[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      free(s);
      return TT_EINVAL;
    }
  }
  p += bn;
  if (*p == '/') {
    p++;
    size_t pn = strcspn(p, "?");
    while (pn && p[pn - 1] == '/') pn--;
    if (pn >= sizeof s->prefix) {
      free(s);
      return TT_EINVAL;
    }
    memcpy(s->prefix, p, pn);
    if (pn && !tt_blobs_key_valid(s->prefix)) {
      free(s);
      return TT_EINVAL;
    }
  }
  s->threshold = size_param(url, "multipart_threshold", 16 << 20);
  s->part_size = size_param(url, "part_size", 8 << 20);
  char v[16] = "";
  tt_aws_url_param(url, "links", v, sizeof v);
  s->stream_links = !strcmp(v, "stream");
  if (s->threshold < 0 || s->part_size < (5 << 20) || s->part_size > ((int64_t)5 << 30) ||
      (v[0] && strcmp(v, "stream") && strcmp(v, "presign"))) {
    free(s);
    return TT_EINVAL;
  }
  if (s->threshold < s->part_size) s->threshold = s->part_size;
  s->aws = tt_aws_acquire(loop);
  if (!s->aws) {
    free(s);
    return TT_ENOMEM;
  }
  s->base.ops = &s3_ops;
  s->base.loop = loop;
  uv_timer_init(loop, &s->t);
  s->t.data = s;
  *out = &s->base;
  return TT_OK;
}
