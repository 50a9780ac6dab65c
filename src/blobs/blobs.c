/* blobs.c — the blob seam's front: picks a backend from the URL, validates
 * keys (the one rule set every backend shares, include/tintype/blobs.h),
 * and builds the whole-buffer conveniences (put, get_all) from the
 * streamed calls of the vtable. Backends: src/blobs/file.c. */
#include <stdlib.h>
#include <string.h>

#include "tintype/blobs.h"
#include "tintype/error.h"

int tt_blobs_file_open(uv_loop_t *loop, const char *url, tt_blobs **out);
int tt_blobs_s3_open(uv_loop_t *loop, const char *url, tt_blobs **out);

int tt_blobs_open(uv_loop_t *loop, const char *url, tt_blobs **out) {
  *out = NULL;
  if (!loop || !url) return TT_EINVAL;
  if (!strncmp(url, "file://", 7)) return tt_blobs_file_open(loop, url, out);
  if (!strncmp(url, "s3://", 5)) return tt_blobs_s3_open(loop, url, out);
  return TT_EINVAL;
}

int tt_blobs_key_valid(const char *key) {
  if (!key) return 0;
  size_t n = strlen(key);
  if (n == 0 || n > TT_BLOB_KEY_MAX) return 0;
  const char *seg = key;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c == '/' || c == 0) {
      size_t len = (size_t)(key + i - seg);
      if (len == 0) return 0;                                    /* empty segment */
      if (len == 1 && seg[0] == '.') return 0;                   /* "." */
      if (len == 2 && seg[0] == '.' && seg[1] == '.') return 0;  /* ".." */
      if (len >= 3 && !strncmp(seg, ".tt", 3)) return 0;         /* temp-file space */
      seg = key + i + 1;
      continue;
    }
    if (c < 0x20 || c >= 0x7f || c == '\\') return 0;
  }
  return 1;
}

tt_blob_writer *tt_blobs_put_start(tt_blobs *b, const char *key, const char *content_type) {
  return b->ops->put_start(b, key, content_type);
}
void tt_blobs_write(tt_blob_writer *w, const void *data, size_t len, tt_blobs_cb cb, void *ud) {
  /* the writer's first member is its tt_blobs pointer (see file.c) */
  tt_blobs *b = *(tt_blobs **)w;
  b->ops->write(w, data, len, cb, ud);
}
void tt_blobs_commit(tt_blob_writer *w, tt_blobs_info_cb cb, void *ud) {
  tt_blobs *b = *(tt_blobs **)w;
  b->ops->commit(w, cb, ud);
}
void tt_blobs_abort(tt_blob_writer *w, tt_blobs_cb cb, void *ud) {
  tt_blobs *b = *(tt_blobs **)w;
  b->ops->abort(w, cb, ud);
}
void tt_blobs_get_open(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud) {
  b->ops->get_open(b, key, cb, ud);
}
void tt_blobs_read(tt_blob_reader *r, tt_blobs_read_cb cb, void *ud) {
  tt_blobs *b = *(tt_blobs **)r;
  b->ops->read(r, cb, ud);
}
void tt_blobs_get_close(tt_blob_reader *r) {
  tt_blobs *b = *(tt_blobs **)r;
  b->ops->get_close(r);
}
void tt_blobs_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud) {
  b->ops->head(b, key, cb, ud);
}
void tt_blobs_delete(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud) {
  b->ops->del(b, key, cb, ud);
}
int tt_blobs_url(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen) {
  return b->ops->url(b, key, expires_s, out, outlen);
}
void tt_blobs_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud) { b->ops->close(b, cb, ud); }

/* ---- whole-buffer put: start + one write + commit ---------------------- */

typedef struct put_all {
  tt_blob_writer *w;
  char *data;
  tt_blobs_info_cb cb;
  void *ud;
} put_all;

static void put_committed(void *ud, int status, const tt_blob_info *info) {
  put_all *p = ud;
  p->cb(p->ud, status, info);
  free(p->data);
  free(p);
}

static void put_aborted(void *ud, int status) {
  put_all *p = ud;
  p->cb(p->ud, status, NULL);
  free(p->data);
  free(p);
}

typedef struct put_abort_ctx {
  put_all *p;
  int status;
} put_abort_ctx;

static void put_aborted_err(void *ud, int status) {
  (void)status;
  put_abort_ctx *a = ud;
  put_all *p = a->p;
  int st = a->status;
  free(a);
  put_aborted(p, st);
}

static void put_written(void *ud, int status) {
  put_all *p = ud;
  if (status == 0) {
    tt_blobs_commit(p->w, put_committed, p);
    return;
  }
  put_abort_ctx *a = malloc(sizeof *a);
  if (!a) abort();
  a->p = p;
  a->status = status;
  tt_blobs_abort(p->w, put_aborted_err, a);
}

void tt_blobs_put(tt_blobs *b, const char *key, const char *content_type, const void *data,
                  size_t len, tt_blobs_info_cb cb, void *ud) {
  put_all *p = calloc(1, sizeof *p);
  if (!p || !(p->w = tt_blobs_put_start(b, key, content_type))) abort(); /* no memory to defer with */
  p->cb = cb;
  p->ud = ud;
  if (len) {
    if (!(p->data = malloc(len))) abort();
    memcpy(p->data, data, len);
  }
  if (len) tt_blobs_write(p->w, p->data, len, put_written, p);
  else tt_blobs_commit(p->w, put_committed, p);
}

/* ---- whole-buffer get: open + reads into one buffer -------------------- */

typedef struct get_all {
  tt_blob_reader *r;
  size_t max;
  char *buf;
  size_t len, cap;
  tt_blob_info info;
  char ctype[TT_BLOB_CTYPE_MAX + 1], etag[64];
  tt_blobs_data_cb cb;
  void *ud;
} get_all;

static void get_finish(get_all *g, int status) {
  if (g->r) tt_blobs_get_close(g->r);
  g->cb(g->ud, status, status ? NULL : &g->info, status ? NULL : (g->buf ? g->buf : ""),
        status ? 0 : g->len);
  free(g->buf);
  free(g);
}

static void get_chunk(void *ud, int status, const char *data, size_t len) {
  get_all *g = ud;
  if (status || len == 0) {
    get_finish(g, status);
    return;
  }
  if (g->len + len > g->cap) { /* the blob grew? never past the size seen at open */
    get_finish(g, TT_EIO);
    return;
  }
  memcpy(g->buf + g->len, data, len);
  g->len += len;
  tt_blobs_read(g->r, get_chunk, g);
}

static void get_opened(void *ud, int status, tt_blob_reader *r, const tt_blob_info *info) {
  get_all *g = ud;
  g->r = r;
  if (status) {
    get_finish(g, status);
    return;
  }
  if ((uint64_t)info->size > g->max) {
    get_finish(g, TT_ETOOBIG);
    return;
  }
  g->info = *info;
  strncpy(g->ctype, info->content_type, sizeof g->ctype - 1);
  strncpy(g->etag, info->etag, sizeof g->etag - 1);
  g->info.content_type = g->ctype;
  g->info.etag = g->etag;
  g->cap = (size_t)info->size;
  if (g->cap && !(g->buf = malloc(g->cap))) {
    get_finish(g, TT_ENOMEM);
    return;
  }
  tt_blobs_read(r, get_chunk, g);
}

void tt_blobs_get_all(tt_blobs *b, const char *key, size_t max, tt_blobs_data_cb cb, void *ud) {
  get_all *g = calloc(1, sizeof *g);
  if (!g) abort();
  g->max = max;
  g->cb = cb;
  g->ud = ud;
  tt_blobs_get_open(b, key, get_opened, g);
}
