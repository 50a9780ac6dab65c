/* store.c — the store seam's front: picks a backend from the URL and calls
 * through its vtable (include/tintype/store.h); also the record field
 * tables (record.h) and the dup/free helpers built on them.
 *
 * Backends: src/store/sqlite.c. The front never includes a backend's
 * header; it knows each only by its open function. */
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "tintype/error.h"
#include "tintype/store.h"

int tt_store_sqlite_open(uv_loop_t *loop, const char *url, tt_store **out);
int tt_store_dynamodb_open(uv_loop_t *loop, const char *url, tt_store **out);

#define F(T, name, type, flags) {#name, type, offsetof(T, name), flags}

static const tt_field user_fields[] = {
    F(tt_user, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_user, name, TT_F_STR, 0),
    F(tt_user, email, TT_F_STR, 0),
    F(tt_user, api_key_hash, TT_F_STR, 0),
    F(tt_user, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_user, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_user, version, TT_F_INT, TT_F_AUTO),
};
static const tt_field image_fields[] = {
    F(tt_image, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_image, owner, TT_F_ID, TT_F_IMMUTABLE),
    F(tt_image, state, TT_F_STR, 0),
    F(tt_image, raw_key, TT_F_STR, 0),
    F(tt_image, processed_key, TT_F_STR, 0),
    F(tt_image, thumb_key, TT_F_STR, 0),
    F(tt_image, content_type, TT_F_STR, 0),
    F(tt_image, bytes, TT_F_INT, 0),
    F(tt_image, width, TT_F_INT, 0),
    F(tt_image, height, TT_F_INT, 0),
    F(tt_image, error, TT_F_STR, 0),
    F(tt_image, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_image, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_image, version, TT_F_INT, TT_F_AUTO),
};
static const tt_field job_fields[] = {
    F(tt_job, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_job, owner, TT_F_ID, TT_F_IMMUTABLE),
    F(tt_job, state, TT_F_STR, 0),
    F(tt_job, request, TT_F_STR, 0),
    F(tt_job, result_key, TT_F_STR, 0),
    F(tt_job, result, TT_F_STR, 0),
    F(tt_job, attempts, TT_F_INT, 0),
    F(tt_job, error, TT_F_STR, 0),
    F(tt_job, idempotency_key, TT_F_STR, 0),
    F(tt_job, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_job, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_job, started_at, TT_F_INT, 0),
    F(tt_job, finished_at, TT_F_INT, 0),
    F(tt_job, version, TT_F_INT, TT_F_AUTO),
};

#define N(a) ((int)(sizeof a / sizeof a[0]))
static const tt_kind_desc kinds[] = {
    {"users", sizeof(tt_user), user_fields, N(user_fields), 0},
    {"images", sizeof(tt_image), image_fields, N(image_fields), 1},
    {"jobs", sizeof(tt_job), job_fields, N(job_fields), 1},
};

const tt_kind_desc *tt_kind_get(tt_kind k) {
  return (unsigned)k < sizeof kinds / sizeof kinds[0] ? &kinds[k] : NULL;
}

int tt_rec_copy(tt_kind k, void *dst, const void *src) {
  const tt_kind_desc *d = tt_kind_get(k);
  memcpy(dst, src, d->size);
  int err = TT_OK;
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (f->type != TT_F_STR) continue;
    const char *s = TT_REC_STR(src, f);
    TT_REC_STR(dst, f) = NULL;
    if (s && !(TT_REC_STR(dst, f) = strdup(s))) err = TT_ENOMEM;
  }
  return err;
}

void tt_rec_clear(tt_kind k, void *rec) {
  const tt_kind_desc *d = tt_kind_get(k);
  for (int i = 0; i < d->nfields; i++)
    if (d->fields[i].type == TT_F_STR) free(TT_REC_STR(rec, &d->fields[i]));
  memset(rec, 0, d->size);
}

static void *dup_kind(tt_kind k, const void *src) {
  if (!src) return NULL;
  void *r = malloc(tt_kind_get(k)->size);
  if (!r) return NULL;
  if (tt_rec_copy(k, r, src) != TT_OK) {
    tt_rec_clear(k, r);
    free(r);
    return NULL;
  }
  return r;
}

static void free_kind(tt_kind k, void *r) {
  if (!r) return;
  tt_rec_clear(k, r);
  free(r);
}

tt_user *tt_user_dup(const tt_user *u) { return dup_kind(TT_KIND_USER, u); }
tt_image *tt_image_dup(const tt_image *i) { return dup_kind(TT_KIND_IMAGE, i); }
tt_job *tt_job_dup(const tt_job *j) { return dup_kind(TT_KIND_JOB, j); }
void tt_user_free(tt_user *u) { free_kind(TT_KIND_USER, u); }
void tt_image_free(tt_image *i) { free_kind(TT_KIND_IMAGE, i); }
void tt_job_free(tt_job *j) { free_kind(TT_KIND_JOB, j); }

int tt_store_open(uv_loop_t *loop, const char *url, tt_store **out) {
  *out = NULL;
  if (!loop || !url) return TT_EINVAL;
  if (!strncmp(url, "sqlite://", 9)) return tt_store_sqlite_open(loop, url, out);
  if (!strncmp(url, "dynamodb://", 11)) return tt_store_dynamodb_open(loop, url, out);
  return TT_EINVAL;
}

void tt_store_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  s->ops->create(s, k, rec, cb, ud);
}
void tt_store_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  s->ops->get(s, k, id, cb, ud);
}
void tt_store_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  s->ops->update(s, k, rec, cb, ud);
}
void tt_store_delete(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb,
                     void *ud) {
  s->ops->del(s, k, id, version, cb, ud);
}
void tt_store_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb,
                   void *ud) {
  s->ops->list(s, k, q, cb, ud);
}
void tt_store_user_by_key_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  s->ops->user_by_key_hash(s, hash, cb, ud);
}
void tt_store_job_by_idempotency(tt_store *s, const char *owner, const char *key, tt_store_cb cb,
                                 void *ud) {
  s->ops->job_by_idempotency(s, owner, key, cb, ud);
}
void tt_store_close(tt_store *s, tt_store_close_cb cb, void *ud) { s->ops->close(s, cb, ud); }
