/* store.c — the store seam's front (include/tintype/store.h): it owns the
 * contract, so a backend only stores and fetches. Every call is checked here
 * (kind, ids, required fields, versions, query limits); a bad one never
 * reaches the backend and its error is delivered through tt_defer. New
 * records get their id, version and times here. Calls in flight are counted
 * here, and the backend's close runs only once none is left. A backend that
 * fails inline (before its call returned) is deferred here too.
 *
 * Also the record field tables (record.h) and the dup/free helpers built on
 * them. Which backend a URL names is src/backends.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "tintype/alloc.h"
#include "tintype/defer.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/store.h"

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
    F(tt_job, phase, TT_F_STR, 0),
    F(tt_job, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_job, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_job, started_at, TT_F_INT, 0),
    F(tt_job, finished_at, TT_F_INT, 0),
    F(tt_job, version, TT_F_INT, TT_F_AUTO),
};

static const tt_field cache_fields[] = {
    F(tt_cache_entry, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_cache_entry, owner, TT_F_ID, TT_F_IMMUTABLE),
    F(tt_cache_entry, state, TT_F_STR, 0),
    F(tt_cache_entry, job_id, TT_F_STR, 0),
    F(tt_cache_entry, result_key, TT_F_STR, 0),
    F(tt_cache_entry, result, TT_F_STR, 0),
    F(tt_cache_entry, rendered_at, TT_F_INT, 0),
    F(tt_cache_entry, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_cache_entry, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_cache_entry, version, TT_F_INT, TT_F_AUTO),
};

static const tt_field batch_fields[] = {
    F(tt_batch, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_batch, owner, TT_F_ID, TT_F_IMMUTABLE),
    F(tt_batch, state, TT_F_STR, 0),
    F(tt_batch, request, TT_F_STR, 0),
    F(tt_batch, items, TT_F_STR, 0),
    F(tt_batch, idempotency_key, TT_F_STR, 0),
    F(tt_batch, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_batch, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_batch, version, TT_F_INT, TT_F_AUTO),
};

static const tt_field delivery_fields[] = {
    F(tt_delivery, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_delivery, state, TT_F_STR, 0),
    F(tt_delivery, owner, TT_F_STR, 0),
    F(tt_delivery, job_id, TT_F_STR, 0),
    F(tt_delivery, url, TT_F_STR, 0),
    F(tt_delivery, attempts, TT_F_INT, 0),
    F(tt_delivery, next_at, TT_F_INT, 0),
    F(tt_delivery, last_error, TT_F_STR, 0),
    F(tt_delivery, delivered_at, TT_F_INT, 0),
    F(tt_delivery, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_delivery, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_delivery, version, TT_F_INT, TT_F_AUTO),
};

static const tt_field render_secret_fields[] = {
    F(tt_render_secret, id, TT_F_ID, TT_F_KEY | TT_F_IMMUTABLE),
    F(tt_render_secret, owner, TT_F_ID, TT_F_IMMUTABLE),
    F(tt_render_secret, state, TT_F_STR, 0),
    F(tt_render_secret, name, TT_F_STR, 0),
    F(tt_render_secret, created_at, TT_F_INT, TT_F_IMMUTABLE),
    F(tt_render_secret, updated_at, TT_F_INT, TT_F_AUTO),
    F(tt_render_secret, version, TT_F_INT, TT_F_AUTO),
};

#define N(a) ((int)(sizeof a / sizeof a[0]))
static const tt_kind_desc kinds[] = {
    {"users", sizeof(tt_user), user_fields, N(user_fields), 0},
    {"images", sizeof(tt_image), image_fields, N(image_fields), 1},
    {"jobs", sizeof(tt_job), job_fields, N(job_fields), 1},
    {"cache", sizeof(tt_cache_entry), cache_fields, N(cache_fields), 1},
    {"batches", sizeof(tt_batch), batch_fields, N(batch_fields), 1},
    {"deliveries", sizeof(tt_delivery), delivery_fields, N(delivery_fields), 0},
    {"render_secrets", sizeof(tt_render_secret), render_secret_fields, N(render_secret_fields), 1},
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
    if (s) TT_REC_STR(dst, f) = tt_xstrdup(s);
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
  void *r = tt_xmalloc(tt_kind_get(k)->size);
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
tt_cache_entry *tt_cache_entry_dup(const tt_cache_entry *c) { return dup_kind(TT_KIND_CACHE, c); }
void tt_cache_entry_free(tt_cache_entry *c) { free_kind(TT_KIND_CACHE, c); }
tt_batch *tt_batch_dup(const tt_batch *b) { return dup_kind(TT_KIND_BATCH, b); }
void tt_batch_free(tt_batch *b) { free_kind(TT_KIND_BATCH, b); }
tt_delivery *tt_delivery_dup(const tt_delivery *d) { return dup_kind(TT_KIND_DELIVERY, d); }
void tt_delivery_free(tt_delivery *d) { free_kind(TT_KIND_DELIVERY, d); }
tt_render_secret *tt_render_secret_dup(const tt_render_secret *r) { return dup_kind(TT_KIND_RENDER_SECRET, r); }
void tt_render_secret_free(tt_render_secret *r) { free_kind(TT_KIND_RENDER_SECRET, r); }
void tt_user_free(tt_user *u) { free_kind(TT_KIND_USER, u); }
void tt_image_free(tt_image *i) { free_kind(TT_KIND_IMAGE, i); }
void tt_job_free(tt_job *j) { free_kind(TT_KIND_JOB, j); }

/* ---- the contract: one call in flight ------------------------------------ */

typedef struct scall {
  tt_store *s;
  int returned; /* the backend call has returned */
  int fired;    /* the backend called back before that: deliver deferred */
  int status;
  tt_store_cb cb;
  tt_store_list_cb lcb;
  void *ud;
} scall;

static void finish_close(void *arg);

/* closing: 1 = asked, 2 = the backend's close is scheduled */
static void schedule_close(tt_store *s) {
  if (s->closing != 1) return;
  s->closing = 2;
  tt_defer(s->loop, finish_close, s);
}

static void call_end(scall *c) {
  tt_store *s = c->s;
  free(c);
  if (--s->inflight == 0) schedule_close(s);
}

static void deliver_deferred(void *arg) {
  scall *c = arg;
  if (c->lcb) c->lcb(c->ud, c->status, NULL, 0, NULL);
  else if (c->cb) c->cb(c->ud, c->status, NULL);
  call_end(c);
}

static scall *call_new(tt_store *s, tt_store_cb cb, tt_store_list_cb lcb, void *ud) {
  scall *c = tt_xcalloc(1, sizeof *c);
  c->s = s;
  c->cb = cb;
  c->lcb = lcb;
  c->ud = ud;
  s->inflight++;
  return c;
}

/* An error decided by the front: the callback runs on a later iteration. */
static void call_fail(scall *c, int status) {
  c->returned = c->fired = 1;
  c->status = status;
  tt_defer(c->s->loop, deliver_deferred, c);
}

#define FAIL(c, st)  \
  do {               \
    call_fail(c, st); \
    return;          \
  } while (0)

/* After the backend call has returned: deliver an inline completion now. */
static void call_returned(scall *c) {
  c->returned = 1;
  if (c->fired) tt_defer(c->s->loop, deliver_deferred, c);
}

static void inline_payload(tt_store *s) {
  fprintf(stderr, "tintype: store backend %s delivered data before its call returned\n",
          s->ops->name);
  abort();
}

static void on_rec(void *ud, int status, const void *rec) {
  scall *c = ud;
  if (!c->returned) { /* inline: keep the status, deliver after the call returns */
    if (rec) inline_payload(c->s);
    c->fired = 1;
    c->status = status;
    return;
  }
  if (c->cb) c->cb(c->ud, status, rec);
  call_end(c);
}

static void on_list(void *ud, int status, const void *recs, size_t n, const char *next) {
  scall *c = ud;
  if (!c->returned) {
    if (status == TT_OK) inline_payload(c->s);
    c->fired = 1;
    c->status = status;
    return;
  }
  if (c->lcb) c->lcb(c->ud, status, recs, n, next);
  call_end(c);
}

/* Every call starts here: NULL when the store is closing (the call then
 * fails with TT_ECANCELED) or the kind is unknown (TT_EINVAL). */
static scall *begin(tt_store *s, tt_kind k, tt_store_cb cb, tt_store_list_cb lcb, void *ud) {
  scall *c = call_new(s, cb, lcb, ud);
  if (s->closing) call_fail(c, TT_ECANCELED);
  else if (!tt_kind_get(k)) call_fail(c, TT_EINVAL);
  else return c;
  return NULL;
}

/* owner and state sit at the same place in every kind that has them
 * (checked below), so the front reads them through one shape */
typedef struct owned_head {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE];
  char *state;
} owned_head;
_Static_assert(offsetof(tt_image, state) == offsetof(owned_head, state), "image head");
_Static_assert(offsetof(tt_job, state) == offsetof(owned_head, state), "job head");
_Static_assert(offsetof(tt_cache_entry, state) == offsetof(owned_head, state), "cache head");
_Static_assert(offsetof(tt_batch, state) == offsetof(owned_head, state), "batch head");
_Static_assert(offsetof(tt_render_secret, state) == offsetof(owned_head, state), "render secret head");

static const char *state_of(tt_kind k, const void *rec) {
  if (k == TT_KIND_DELIVERY) return ((const tt_delivery *)rec)->state;
  return tt_kind_get(k)->has_owner ? ((const owned_head *)rec)->state : "-";
}

typedef union anyrec {
  tt_user u;
  tt_image i;
  tt_job j;
  tt_cache_entry c;
  tt_batch b;
  tt_delivery d;
} anyrec;

void tt_store_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  scall *c = begin(s, k, cb, NULL, ud);
  if (!c) return;
  if (!rec) FAIL(c, TT_EINVAL);
  const tt_kind_desc *d = tt_kind_get(k);
  anyrec r; /* a shallow copy the front completes; the backend copies it deeply */
  memcpy(&r, rec, d->size);
  char *id = r.u.id; /* id is the first member of every record */
  if (id[0] && !tt_id_valid(id)) FAIL(c, TT_EINVAL);
  if (d->has_owner) {
    const char *owner = ((const owned_head *)&r)->owner;
    const char *state = state_of(k, &r);
    if (!tt_id_valid(owner) || !state || !state[0]) FAIL(c, TT_EINVAL);
  }
  if (!id[0]) tt_id_new(id);
  int64_t now = tt_now_ms();
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (!strcmp(f->name, "version")) TT_REC_INT(&r, f) = 1;
    if (!strcmp(f->name, "updated_at")) TT_REC_INT(&r, f) = now;
    if (!strcmp(f->name, "created_at") && !TT_REC_INT(&r, f)) TT_REC_INT(&r, f) = now;
  }
  s->ops->create(s, k, &r, on_rec, c);
  call_returned(c);
}

void tt_store_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  scall *c = begin(s, k, cb, NULL, ud);
  if (!c) return;
  if (!id || !tt_id_valid(id)) FAIL(c, TT_ENOTFOUND);
  s->ops->get(s, k, id, on_rec, c);
  call_returned(c);
}

void tt_store_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  scall *c = begin(s, k, cb, NULL, ud);
  if (!c) return;
  if (!rec) FAIL(c, TT_EINVAL);
  const char *state = state_of(k, rec);
  if (!state || !state[0]) FAIL(c, TT_EINVAL);
  if (!tt_id_valid(((const tt_user *)rec)->id)) FAIL(c, TT_ENOTFOUND);
  s->ops->update(s, k, rec, on_rec, c);
  call_returned(c);
}

void tt_store_delete(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb,
                     void *ud) {
  scall *c = begin(s, k, cb, NULL, ud);
  if (!c) return;
  if (version < 0) FAIL(c, TT_EINVAL);
  if (!id || !tt_id_valid(id)) FAIL(c, TT_ENOTFOUND);
  s->ops->del(s, k, id, version, on_rec, c);
  call_returned(c);
}

void tt_store_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb,
                   void *ud) {
  scall *c = begin(s, k, NULL, cb, ud);
  if (!c) return;
  if (!q || q->limit < 0 || (q->cursor && !tt_id_valid(q->cursor)) ||
      (tt_kind_get(k)->has_owner && (!q->owner || !tt_id_valid(q->owner))))
    FAIL(c, TT_EINVAL);
  tt_store_query nq = *q;
  nq.limit = q->limit == 0 ? TT_STORE_LIST_DEFAULT
             : q->limit > TT_STORE_LIST_MAX ? TT_STORE_LIST_MAX
                                            : q->limit;
  if (!tt_kind_get(k)->has_owner) nq.owner = NULL;
  s->ops->list(s, k, &nq, on_list, c);
  call_returned(c);
}

void tt_store_user_by_key_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  scall *c = begin(s, TT_KIND_USER, cb, NULL, ud);
  if (!c) return;
  if (!hash || !hash[0]) FAIL(c, TT_EINVAL);
  s->ops->user_by_key_hash(s, hash, on_rec, c);
  call_returned(c);
}

void tt_store_job_by_idempotency(tt_store *s, const char *owner, const char *key, tt_store_cb cb,
                                 void *ud) {
  scall *c = begin(s, TT_KIND_JOB, cb, NULL, ud);
  if (!c) return;
  if (!owner || !tt_id_valid(owner) || !key || !key[0]) FAIL(c, TT_EINVAL);
  s->ops->job_by_idempotency(s, owner, key, on_rec, c);
  call_returned(c);
}

/* ---- close: the backend's close runs once nothing is in flight ----------- */

static void finish_close(void *arg) {
  tt_store *s = arg;
  if (s->inflight) { /* a late call came in; its end reschedules this */
    s->closing = 1;
    return;
  }
  s->ops->close(s, s->close_cb, s->close_ud);
}

void tt_store_close(tt_store *s, tt_store_close_cb cb, void *ud) {
  if (s->closing) {
    fprintf(stderr, "tintype: tt_store_close called twice\n");
    abort();
  }
  s->closing = 1;
  s->close_cb = cb;
  s->close_ud = ud;
  if (!s->inflight) schedule_close(s);
}
