/* store.h — the records seam (DESIGN §2, §3): users, images, jobs.
 *
 * A tt_store is opened from a URL and is used from the one libuv loop it was
 * opened on. The URL's scheme picks the backend from the table in
 * src/backends.c:
 *   sqlite://PATH          embedded, src/store/sqlite.c (PATH may be relative;
 *                          its directory is created). Query ?sync=full selects
 *                          synchronous=FULL (default NORMAL, see below).
 *   dynamodb://?prefix=..  recognised, TT_ENOTSUP until its backend is listed
 *   anything else          TT_EINVAL
 *
 * Calling convention (every operation):
 *   - returns nothing; the callback runs EXACTLY ONCE, always on the loop's
 *     thread and never before the call returns (so callers have one code
 *     path, errors included — argument errors arrive as TT_EINVAL through
 *     the callback too).
 *   - Inputs (records, ids, queries) are copied before the call returns; the
 *     caller may free or reuse them at once.
 *   - A record handed to a callback belongs to the store and is valid only
 *     until the callback returns. Keep it with tt_user_dup() / tt_image_dup()
 *     / tt_job_dup() and release that copy with the matching *_free().
 *   - Errors: TT_ENOTFOUND (no such id / key), TT_ECONFLICT (version lost the
 *     race), TT_EEXIST (id or unique key taken), TT_EINVAL (bad argument),
 *     TT_EBUSY (database locked longer than the busy timeout, 5 s),
 *     TT_EIO (storage failed), TT_ENOMEM, TT_ECANCELED (store closing).
 *
 * Versions: create stores version 1; update and delete take the version the
 * caller read and succeed only if it is still current (update stores
 * version+1). A lost race is TT_ECONFLICT: re-read and retry or give up.
 * id, owner and created_at never change after create; updated_at is set by
 * the store on every write.
 *
 * Durability (sqlite): WAL with synchronous=NORMAL. Once a callback reports
 * success the write survives the process being killed (kill -9) at any
 * moment; after an OS crash or power loss the last few hundred milliseconds
 * of commits may be rolled back (never corrupted). ?sync=full makes every
 * commit fsync the WAL (survives power loss; slower, see docs/data-layer.md).
 *
 * Times are milliseconds since the Unix epoch. Strings are NUL-terminated
 * UTF-8; a NULL string field is stored as NULL (absent). */
#ifndef TINTYPE_STORE_H
#define TINTYPE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/id.h"

typedef struct tt_store tt_store;

typedef enum tt_kind {
  TT_KIND_USER = 0,
  TT_KIND_IMAGE = 1,
  TT_KIND_JOB = 2,
  TT_KIND_CACHE = 3, /* tt_cache_entry */
  TT_KIND_BATCH = 4, /* tt_batch */
  TT_KIND_DELIVERY = 5, /* tt_delivery: the webhook outbox */
  TT_KIND_RENDER_SECRET = 6, /* tt_render_secret: a user's render-link signing secrets */
} tt_kind;

typedef struct tt_user {
  char id[TT_ID_SIZE]; /* empty on create: the store makes one */
  char *name;
  char *email;        /* unique when not NULL */
  char *api_key_hash; /* unique when not NULL */
  int64_t created_at, updated_at;
  int64_t version;
} tt_user;

/* state: "created" | "uploaded" | "processing" | "processed" | "failed" */
typedef struct tt_image {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE]; /* user id, required */
  char *state;
  char *raw_key, *processed_key, *thumb_key; /* blob keys */
  char *content_type;
  int64_t bytes, width, height;
  char *error;
  int64_t created_at, updated_at;
  int64_t version;
} tt_image;

/* state: "queued" | "running" | "succeeded" | "failed" | "canceled" */
typedef struct tt_job {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE];
  char *state;
  char *request;    /* JSON text: url + options, as given */
  char *result_key; /* blob key of the result */
  char *result;     /* JSON text: format, bytes, width, height, http status, final url, timings */
  int64_t attempts;
  char *error;
  char *idempotency_key; /* unique per owner when not NULL */
  char *phase;           /* while running: opening, loading, waiting, capturing (NULL otherwise) */
  int64_t created_at, updated_at, started_at, finished_at;
  int64_t version;
} tt_job;

/* The result cache (issue 15 item 2): one entry per (owner, canonical
 * request), whose id is derived from both (tt_job_cache_id in job.h), so a
 * lookup is a get by id. It names the blob of the render that made it.
 * state: "ready". rendered_at decides freshness against a job's cache_ttl. */
typedef struct tt_cache_entry {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE];
  char *state;
  char *job_id;     /* the job whose render this is */
  char *result_key; /* its blob */
  char *result;     /* its result JSON */
  int64_t rendered_at;
  int64_t created_at, updated_at;
  int64_t version;
} tt_cache_entry;

/* A batch of jobs (POST /api/jobs/batch, issue 15 item 3). With an
 * Idempotency-Key its id is derived from owner + key, so a replay is a get
 * by id. state: "created". request: the canonical JSON of the batch; items:
 * a JSON array, per request item {"job":ID} or {"problem":{...}}. */
typedef struct tt_batch {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE];
  char *state;
  char *request;
  char *items;
  char *idempotency_key;
  int64_t created_at, updated_at;
  int64_t version;
} tt_batch;

/* The webhook outbox (issue 15 item 4): one delivery per finished job
 * that named a callback_url; its id (the event id the receiver sees) is
 * derived from the job id, so writing it twice is one delivery. Not owned
 * for listing purposes (any worker lists the pending ones of every user):
 * owner is a plain field. state: "pending" | "delivered" | "failed".
 * next_at: when it may be tried (again); a worker that takes it moves
 * next_at past its own attempt (a lease), so a worker killed mid-delivery
 * leaves it to be taken again. */
typedef struct tt_delivery {
  char id[TT_ID_SIZE];
  char *state;
  char *owner;
  char *job_id;
  char *url;
  int64_t attempts;
  int64_t next_at;
  char *last_error;
  int64_t delivered_at;
  int64_t created_at, updated_at;
  int64_t version;
} tt_delivery;

/* A signing secret of a user's render links (issue 15 item 2,
 * src/api/renderlink.c). The secret's value is not stored: it is derived
 * from the server secret, the owner and this id, shown once at creation.
 * Revoking deletes the record. state: "active"; name: the user's label. */
typedef struct tt_render_secret {
  char id[TT_ID_SIZE];
  char owner[TT_ID_SIZE];
  char *state;
  char *name;
  int64_t created_at, updated_at;
  int64_t version;
} tt_render_secret;
tt_render_secret *tt_render_secret_dup(const tt_render_secret *r);
void tt_render_secret_free(tt_render_secret *r);

/* rec points to a tt_user, tt_image or tt_job as the call's kind says;
 * NULL when status != 0 and after delete. */
typedef void (*tt_store_cb)(void *ud, int status, const void *rec);

/* recs is an array of n records of the call's kind (tt_user[] etc.).
 * next_cursor is NULL on the last page, else pass it as the next query's
 * cursor. Both valid only during the callback. */
typedef void (*tt_store_list_cb)(void *ud, int status, const void *recs, size_t n,
                                 const char *next_cursor);

typedef void (*tt_store_close_cb)(void *ud);

/* List query. Newest first (descending id). */
typedef struct tt_store_query {
  const char *owner;  /* images/jobs: required; users: ignored (all users) */
  const char *state;  /* NULL = any state */
  int limit;          /* 1..1000; 0 = 50; larger values are clamped to 1000 */
  const char *cursor; /* NULL = first page; else a next_cursor seen before */
} tt_store_query;

#define TT_STORE_LIST_MAX 1000
#define TT_STORE_LIST_DEFAULT 50

/* The backend vtable. Callers use the tt_store_* functions below; a backend
 * fills this struct, embeds struct tt_store first in its handle, and is
 * listed in src/backends.c. The front (src/store/store.c) owns the contract,
 * so by the time an op is called:
 *   - the store is open (not closing) and k is a valid kind;
 *   - create: rec has a valid id (made by the front when empty), version 1,
 *     created_at/updated_at set, and owner + state present for images/jobs;
 *   - get/update/delete: the id is a valid id; update's state is present;
 *     delete's version is >= 0;
 *   - list: q->limit is 1..TT_STORE_LIST_MAX, owner is a valid id for
 *     images/jobs (NULL for users), cursor NULL or a valid id;
 *   - by_key_hash: hash non-empty; by_idempotency: owner valid, key non-empty.
 * A backend copies its inputs before returning and calls cb exactly once,
 * on the loop. Failing inline (cb with an error before the op returns) is
 * allowed: the front defers it. Delivering a record inline is not.
 * close is called by the front once no op is in flight: the backend frees
 * its handle and calls cb(ud) (inline is fine). */
typedef struct tt_store_ops {
  const char *name;
  void (*create)(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud);
  void (*get)(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud);
  void (*update)(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud);
  void (*del)(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb, void *ud);
  void (*list)(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb, void *ud);
  void (*user_by_key_hash)(tt_store *s, const char *hash, tt_store_cb cb, void *ud);
  void (*job_by_idempotency)(tt_store *s, const char *owner, const char *key, tt_store_cb cb,
                             void *ud);
  void (*close)(tt_store *s, tt_store_close_cb cb, void *ud);
} tt_store_ops;

/* Every backend's handle starts with this. The backend's open sets ops and
 * loop and zeroes the rest (calloc); the rest belongs to the front. */
struct tt_store {
  const tt_store_ops *ops;
  uv_loop_t *loop;
  int inflight; /* calls whose callback has not returned yet */
  int closing;
  tt_store_close_cb close_cb;
  void *close_ud;
};

/* Opens the backend named by url on loop. Synchronous (runs migrations).
 * TT_OK and *out set, or TT_EINVAL (bad/unknown URL), TT_ENOTSUP (known but
 * not built), TT_EIO (cannot open/create/migrate), TT_ENOMEM. */
int tt_store_open(uv_loop_t *loop, const char *url, tt_store **out);

/* Creates rec (version and created_at/updated_at are set by the store; an
 * empty id gets tt_id_new()). cb gets the stored record.
 * TT_EEXIST when the id, a user's email or api_key_hash, or a job's
 * (owner, idempotency_key) is taken; TT_EINVAL when a required field
 * (image/job owner and state) is missing or an id is malformed. */
void tt_store_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud);

/* Reads one record by id. TT_ENOTFOUND when absent. */
void tt_store_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud);

/* Replaces every mutable field of record rec->id, if rec->version is still
 * the stored version. cb gets the new record (version + 1).
 * TT_ENOTFOUND (no such id), TT_ECONFLICT (version changed), TT_EEXIST
 * (a unique field now collides). */
void tt_store_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud);

/* Deletes id if its version is `version` (0 = whatever the version).
 * TT_ENOTFOUND, TT_ECONFLICT. cb's rec is NULL. */
void tt_store_delete(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb,
                     void *ud);

/* One page of records; see tt_store_query. TT_EINVAL when owner is missing
 * for images/jobs or the cursor is not an id. */
void tt_store_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb,
                   void *ud);

/* The user whose api_key_hash equals hash (TT_KIND_USER record). */
void tt_store_user_by_key_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud);

/* The job of owner created with this idempotency key (TT_KIND_JOB). */
void tt_store_job_by_idempotency(tt_store *s, const char *owner, const char *key, tt_store_cb cb,
                                 void *ud);

/* Closes the store. Operations still in flight complete first (their
 * callbacks run normally); calls made after close fail with TT_ECANCELED
 * (and are a bug); closing twice aborts. The handle is
 * freed after the store is idle; cb (may be NULL) runs then, on the loop. */
void tt_store_close(tt_store *s, tt_store_close_cb cb, void *ud);

/* Deep copies (malloc) and their release. NULL on ENOMEM. Free accepts NULL. */
tt_user *tt_user_dup(const tt_user *u);
tt_image *tt_image_dup(const tt_image *i);
tt_job *tt_job_dup(const tt_job *j);
tt_cache_entry *tt_cache_entry_dup(const tt_cache_entry *c);
void tt_cache_entry_free(tt_cache_entry *c);
tt_batch *tt_batch_dup(const tt_batch *b);
void tt_batch_free(tt_batch *b);
tt_delivery *tt_delivery_dup(const tt_delivery *d);
void tt_delivery_free(tt_delivery *d);
void tt_user_free(tt_user *u);
void tt_image_free(tt_image *i);
void tt_job_free(tt_job *j);

#endif
