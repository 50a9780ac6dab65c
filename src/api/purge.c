/* purge.c — everything a user owns goes with the user (hardening, issue 16
 * item 8).
 *
 * DELETE /api/users/{id} (users.c) calls api_purge_owner() before it deletes
 * the user record: page after page of the owner's jobs, then images (then
 * result cache entries, whose blobs are their jobs', batches and render
 * secrets), each
 * record's blobs deleted before the record itself, until a listing comes
 * back empty. The user record goes last, so a purge cut short (a crash, a
 * backend error) leaves the user in place and a repeated DELETE finishes it;
 * signed links stop at once anyway, because they are signed with a key made
 * from the owner's API key hash and checked against the owner's record
 * (ctx.c). Sequential, one record at a time: a user's data is bounded, and
 * a purge must not starve the process's other requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/log.h"

#define PURGE_PAGE 100

typedef struct purge {
  tt_api *api;
  char owner[TT_ID_SIZE];
  tt_kind kind; /* TT_KIND_JOB, then TT_KIND_IMAGE, then TT_KIND_CACHE (result cache entries), TT_KIND_BATCH, TT_KIND_RENDER_SECRET */
  char ids[PURGE_PAGE][TT_ID_SIZE];
  char *keys[PURGE_PAGE][3];
  size_t n, at;
  int blobs_left;
  int64_t deleted;
  api_purge_cb cb;
  void *ud;
} purge;

static void next_page(purge *p);
static void next_record(purge *p);

static void free_keys(purge *p) {
  for (size_t i = 0; i < p->n; i++)
    for (int k = 0; k < 3; k++) {
      free(p->keys[i][k]);
      p->keys[i][k] = NULL;
    }
}

static void finish(purge *p, int status) {
  free_keys(p);
  api_purge_cb cb = p->cb;
  void *ud = p->ud;
  int64_t n = p->deleted;
  free(p);
  cb(ud, status, n);
}

static void on_record_deleted(void *ud, int status, const void *rec) {
  (void)rec;
  purge *p = ud;
  if (status && status != TT_ENOTFOUND) {
    finish(p, status);
    return;
  }
  p->deleted++;
  p->at++;
  next_record(p);
}

static void on_blob_deleted(void *ud, int status) {
  purge *p = ud;
  if (status && status != TT_ENOTFOUND)
    tt_logf(TT_LOG_WARN, "purge: a blob of %s stays: %s", p->ids[p->at], tt_strerror(status));
  if (--p->blobs_left) return;
  tt_store_delete(p->api->store, p->kind, p->ids[p->at], 0, on_record_deleted, p);
}

static void next_record(purge *p) {
  if (p->at == p->n) {
    free_keys(p);
    next_page(p);
    return;
  }
  p->blobs_left = 1; /* held until every delete is started */
  for (int k = 0; k < 3; k++)
    if (p->keys[p->at][k]) {
      p->blobs_left++;
      tt_blobs_delete(p->api->blobs, p->keys[p->at][k], on_blob_deleted, p);
    }
  on_blob_deleted(p, 0);
}

static char *dup_or_null(const char *s) {
  if (!s || !*s) return NULL;
  char *d = strdup(s);
  if (!d) tt_oom();
  return d;
}

static void on_page(void *ud, int status, const void *recs, size_t n, const char *next_cursor) {
  (void)next_cursor; /* the first page again, until empty: what was on it is gone */
  purge *p = ud;
  if (status) {
    finish(p, status);
    return;
  }
  if (n == 0) {
    if (p->kind != TT_KIND_RENDER_SECRET) {
      p->kind = p->kind == TT_KIND_JOB     ? TT_KIND_IMAGE
                : p->kind == TT_KIND_IMAGE ? TT_KIND_CACHE
                : p->kind == TT_KIND_CACHE ? TT_KIND_BATCH
                                           : TT_KIND_RENDER_SECRET;
      next_page(p);
      return;
    }
    finish(p, TT_OK);
    return;
  }
  p->n = n;
  p->at = 0;
  for (size_t i = 0; i < n; i++) {
    if (p->kind == TT_KIND_JOB) {
      const tt_job *j = (const tt_job *)recs + i;
      memcpy(p->ids[i], j->id, TT_ID_SIZE);
      p->keys[i][0] = dup_or_null(j->result_key);
    } else if (p->kind == TT_KIND_CACHE) { /* its blob is a job's, gone with it */
      memcpy(p->ids[i], ((const tt_cache_entry *)recs + i)->id, TT_ID_SIZE);
    } else if (p->kind == TT_KIND_BATCH) {
      memcpy(p->ids[i], ((const tt_batch *)recs + i)->id, TT_ID_SIZE);
    } else if (p->kind == TT_KIND_RENDER_SECRET) {
      memcpy(p->ids[i], ((const tt_render_secret *)recs + i)->id, TT_ID_SIZE);
    } else {
      const tt_image *im = (const tt_image *)recs + i;
      memcpy(p->ids[i], im->id, TT_ID_SIZE);
      p->keys[i][0] = dup_or_null(im->raw_key);
      p->keys[i][1] = dup_or_null(im->processed_key);
      p->keys[i][2] = dup_or_null(im->thumb_key);
    }
  }
  next_record(p);
}

static void next_page(purge *p) {
  tt_store_query q = {.owner = p->owner, .limit = PURGE_PAGE};
  tt_store_list(p->api->store, p->kind, &q, on_page, p);
}

void api_purge_owner(tt_api *api, const char *owner, api_purge_cb cb, void *ud) {
  purge *p = calloc(1, sizeof *p);
  if (!p) tt_oom();
  p->api = api;
  snprintf(p->owner, sizeof p->owner, "%s", owner);
  p->kind = TT_KIND_JOB;
  p->cb = cb;
  p->ud = ud;
  next_page(p);
}
