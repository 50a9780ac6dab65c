/* blobs.c — the blob seam's front (include/tintype/blobs.h): it owns the
 * contract, so a backend only keeps bytes. Keys and content types are
 * checked here (the one rule set every backend shares); a bad one never
 * reaches the backend and its error is delivered through tt_defer. Calls in
 * flight are counted here and the backend's close runs once none is left.
 * A backend that fails inline is deferred here too. Also the whole-buffer
 * conveniences (put, get_all), built from the streamed calls. Which backend
 * a URL names is src/backends.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/alloc.h"
#include "tintype/blobs.h"
#include "tintype/defer.h"
#include "tintype/error.h"

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
      if (len >= 3 && !memcmp(seg, ".tt", 3)) return 0;          /* temp-file space */
      seg = key + i + 1;
      continue;
    }
    if (c < 0x20 || c >= 0x7f || c == '\\') return 0;
  }
  return 1;
}

int tt_blobs_ctype_valid(const char *ctype) {
  if (!ctype) return 1;
  size_t n = strlen(ctype);
  if (n > TT_BLOB_CTYPE_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)ctype[i] < 0x20 || ctype[i] == 0x7f) return 0;
  return 1;
}

/* ---- the contract: one call in flight ------------------------------------ */

enum { CB_PLAIN, CB_INFO, CB_OPEN, CB_READ };

typedef struct bcall {
  tt_blobs *b;
  int returned, fired, status;
  int type;
  tt_blob_writer *w_free; /* a writer the front made for a bad key: freed at the end */
  union {
    tt_blobs_cb plain;
    tt_blobs_info_cb info;
    tt_blobs_open_cb open;
    tt_blobs_read_cb read;
  } cb;
  void *ud;
} bcall;

static void finish_close(void *arg);

/* closing: 1 = asked, 2 = the backend's close is scheduled */
static void schedule_close(tt_blobs *b) {
  if (b->closing != 1) return;
  b->closing = 2;
  tt_defer(b->loop, finish_close, b);
}

static void call_end(bcall *c) {
  tt_blobs *b = c->b;
  free(c->w_free);
  free(c);
  if (--b->inflight == 0) schedule_close(b);
}

static void call_status(bcall *c, int st) {
  switch (c->type) {
  case CB_PLAIN:
    if (c->cb.plain) c->cb.plain(c->ud, st);
    break;
  case CB_INFO:
    if (c->cb.info) c->cb.info(c->ud, st, NULL);
    break;
  case CB_OPEN:
    if (c->cb.open) c->cb.open(c->ud, st, NULL, NULL);
    break;
  case CB_READ:
    if (c->cb.read) c->cb.read(c->ud, st, NULL, 0);
    break;
  }
}

static void deliver_deferred(void *arg) {
  bcall *c = arg;
  call_status(c, c->status);
  call_end(c);
}

static void call_fail(bcall *c, int status) {
  c->returned = c->fired = 1;
  c->status = status;
  tt_defer(c->b->loop, deliver_deferred, c);
}

#define FAIL(c, st)   \
  do {                \
    call_fail(c, st); \
    return;           \
  } while (0)

static void call_returned(bcall *c) {
  c->returned = 1;
  if (c->fired) tt_defer(c->b->loop, deliver_deferred, c);
}

static int caught_inline(bcall *c, int status, int payload) {
  if (c->returned) return 0;
  if (payload) {
    fprintf(stderr, "tintype: blobs backend %s delivered data before its call returned\n",
            c->b->ops->name);
    abort();
  }
  c->fired = 1;
  c->status = status;
  return 1;
}

static void on_plain(void *ud, int status) {
  bcall *c = ud;
  if (caught_inline(c, status, 0)) return;
  call_status(c, status);
  call_end(c);
}

static void on_info(void *ud, int status, const tt_blob_info *info) {
  bcall *c = ud;
  if (caught_inline(c, status, info != NULL)) return;
  if (c->cb.info) c->cb.info(c->ud, status, info);
  call_end(c);
}

static void on_open(void *ud, int status, tt_blob_reader *r, const tt_blob_info *info) {
  bcall *c = ud;
  if (caught_inline(c, status, r != NULL)) return;
  if (r) r->blobs = c->b;
  c->cb.open(c->ud, status, r, info);
  call_end(c);
}

static void on_read(void *ud, int status, const char *data, size_t len) {
  bcall *c = ud;
  if (caught_inline(c, status, len > 0)) return;
  c->cb.read(c->ud, status, data, len);
  call_end(c);
}

static bcall *call_new(tt_blobs *b, int type, void *ud) {
  bcall *c = tt_xcalloc(1, sizeof *c);
  c->b = b;
  c->type = type;
  c->ud = ud;
  b->inflight++;
  return c;
}

/* every call begins: the call record, its callback, the closing check */
#define BEGIN(type, member)         \
  bcall *c = call_new(b, type, ud); \
  c->cb.member = cb;                \
  if (b->closing) FAIL(c, TT_ECANCELED)

tt_blob_writer *tt_blobs_put_start(tt_blobs *b, const char *key, const char *content_type) {
  tt_blob_writer *w;
  if (b->closing || !tt_blobs_key_valid(key) || !tt_blobs_ctype_valid(content_type)) {
    w = tt_xcalloc(1, sizeof *w); /* the front's own: it fails every call */
    w->err = b->closing ? TT_ECANCELED : TT_EINVAL;
  } else if (!(w = b->ops->put_start(b, key, content_type))) {
    tt_oom();
  }
  w->blobs = b;
  return w;
}

void tt_blobs_write(tt_blob_writer *w, const void *data, size_t len, tt_blobs_cb cb, void *ud) {
  tt_blobs *b = w->blobs;
  BEGIN(CB_PLAIN, plain);
  if (w->err) FAIL(c, w->err);
  b->ops->write(w, data, len, on_plain, c);
  call_returned(c);
}

void tt_blobs_commit(tt_blob_writer *w, tt_blobs_info_cb cb, void *ud) {
  tt_blobs *b = w->blobs;
  BEGIN(CB_INFO, info);
  if (w->err) {
    c->w_free = w;
    FAIL(c, w->err);
  }
  b->ops->commit(w, on_info, c);
  call_returned(c);
}

void tt_blobs_abort(tt_blob_writer *w, tt_blobs_cb cb, void *ud) {
  tt_blobs *b = w->blobs;
  BEGIN(CB_PLAIN, plain);
  if (w->err) {
    c->w_free = w;
    FAIL(c, TT_OK);
  }
  b->ops->abort(w, on_plain, c);
  call_returned(c);
}

void tt_blobs_get_open(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud) {
  BEGIN(CB_OPEN, open);
  if (!tt_blobs_key_valid(key)) FAIL(c, TT_EINVAL);
  b->ops->get_open(b, key, on_open, c);
  call_returned(c);
}

void tt_blobs_read(tt_blob_reader *r, tt_blobs_read_cb cb, void *ud) {
  tt_blobs *b = r->blobs;
  BEGIN(CB_READ, read);
  b->ops->read(r, on_read, c);
  call_returned(c);
}

void tt_blobs_get_close(tt_blob_reader *r) {
  if (r) r->blobs->ops->get_close(r);
}

void tt_blobs_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud) {
  BEGIN(CB_INFO, info);
  if (!tt_blobs_key_valid(key)) FAIL(c, TT_EINVAL);
  b->ops->head(b, key, on_info, c);
  call_returned(c);
}

void tt_blobs_delete(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud) {
  BEGIN(CB_PLAIN, plain);
  if (!tt_blobs_key_valid(key)) FAIL(c, TT_EINVAL);
  b->ops->del(b, key, on_plain, c);
  call_returned(c);
}

int tt_blobs_url(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen) {
  if (!tt_blobs_key_valid(key)) return TT_EINVAL;
  return b->ops->url(b, key, expires_s, out, outlen);
}

static void finish_close(void *arg) {
  tt_blobs *b = arg;
  if (b->inflight) { /* a late call came in; its end reschedules this */
    b->closing = 1;
    return;
  }
  b->ops->close(b, b->close_cb, b->close_ud);
}

void tt_blobs_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud) {
  if (b->closing) {
    fprintf(stderr, "tintype: tt_blobs_close called twice\n");
    abort();
  }
  b->closing = 1;
  b->close_cb = cb;
  b->close_ud = ud;
  if (!b->inflight) schedule_close(b);
}

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
  put_abort_ctx *a = tt_xmalloc(sizeof *a);
  a->p = p;
  a->status = status;
  tt_blobs_abort(p->w, put_aborted_err, a);
}

void tt_blobs_put(tt_blobs *b, const char *key, const char *content_type, const void *data,
                  size_t len, tt_blobs_info_cb cb, void *ud) {
  put_all *p = tt_xcalloc(1, sizeof *p);
  p->w = tt_blobs_put_start(b, key, content_type);
  p->cb = cb;
  p->ud = ud;
  if (len) {
    p->data = tt_xmalloc(len);
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
  if (g->cap) g->buf = tt_xmalloc(g->cap);
  tt_blobs_read(r, get_chunk, g);
}

void tt_blobs_get_all(tt_blobs *b, const char *key, size_t max, tt_blobs_data_cb cb, void *ud) {
  get_all *g = tt_xcalloc(1, sizeof *g);
  g->max = max;
  g->cb = cb;
  g->ud = ud;
  tt_blobs_get_open(b, key, get_opened, g);
}
