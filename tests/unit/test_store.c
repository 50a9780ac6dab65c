/* test_store.c — the store contract (include/tintype/store.h), in named
 * cases: create/get/update/delete with versions (conflicts), unique
 * lookups, lists with cursors and state filter, callbacks never inline,
 * ids (UUIDv7, increasing), close and reopen; and every later kind: result
 * cache entries, batches, webhook deliveries (listed by state across
 * owners, claimed by a conditional update).
 *
 * The backend is $TT_TEST_STORE_URL (e.g. dynamodb://?prefix=... against an
 * emulator), else a temporary sqlite:// file. Unique values carry a per-run
 * nonce, so a backend that keeps data between runs is fine. Cases marked
 * embedded test the sqlite URL forms; kill -9 durability is
 * test_store_crash.c. `test_store CASE...` runs some cases. Cases that
 * need unique keys (a transaction on DynamoDB) start with
 * TT_NEEDS("transactions"): a named skip where $TT_TEST_LACKS says so. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "store/record.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/store.h"
#include "tt_test.h"

static uv_loop_t loop;
static tt_store *st;
static const char *url;
static int returned; /* set after each call returns: callbacks must see 1 */

/* the last single-record result */
static struct {
  int calls, status, inline_call;
  tt_user u;
  tt_image i;
  tt_job j;
  tt_cache_entry *c; /* the later kinds: a whole copy */
  tt_batch *b;
  tt_delivery *d;
  int have;
} r;

static void rec_cb(void *ud, int status, const void *rec) {
  tt_kind k = (tt_kind)(intptr_t)ud;
  r.calls++;
  r.status = status;
  if (!returned) r.inline_call = 1;
  r.have = rec != NULL;
  if (!rec) return;
  /* copy the fixed part; strings are checked inside the callback via dup */
  if (k == TT_KIND_USER) {
    tt_user *d = tt_user_dup(rec);
    if (d) {
      r.u.version = d->version;
      memcpy(r.u.id, d->id, sizeof r.u.id);
      r.u.created_at = d->created_at;
      free(r.u.name), free(r.u.email), free(r.u.api_key_hash);
      r.u.name = d->name ? strdup(d->name) : NULL;
      r.u.email = d->email ? strdup(d->email) : NULL;
      r.u.api_key_hash = d->api_key_hash ? strdup(d->api_key_hash) : NULL;
      tt_user_free(d);
    }
  } else if (k == TT_KIND_IMAGE) {
    const tt_image *i = rec;
    memcpy(r.i.id, i->id, sizeof r.i.id);
    memcpy(r.i.owner, i->owner, sizeof r.i.owner);
    r.i.version = i->version;
    r.i.bytes = i->bytes;
  } else if (k == TT_KIND_CACHE) {
    tt_cache_entry_free(r.c);
    r.c = tt_cache_entry_dup(rec);
  } else if (k == TT_KIND_BATCH) {
    tt_batch_free(r.b);
    r.b = tt_batch_dup(rec);
  } else if (k == TT_KIND_DELIVERY) {
    tt_delivery_free(r.d);
    r.d = tt_delivery_dup(rec);
  } else {
    const tt_job *j = rec;
    memcpy(r.j.id, j->id, sizeof r.j.id);
    r.j.version = j->version;
    r.j.attempts = j->attempts;
  }
}

static void run(void) {
  returned = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  returned = 0;
}

#define DO(call)        \
  do {                  \
    r.calls = 0;        \
    returned = 0;       \
    call;               \
    run();              \
    CHECK_INT(r.calls, 1); \
  } while (0)

#define UD(k) ((void *)(intptr_t)(k))

static struct {
  int status, n, calls;
  char ids[64][TT_ID_SIZE];
  char next[TT_ID_SIZE];
} l;

static void list_cb(void *ud, int status, const void *recs, size_t n, const char *next) {
  tt_kind k = (tt_kind)(intptr_t)ud;
  l.calls++;
  l.status = status;
  l.n = (int)n;
  for (size_t x = 0; x < n && x < 64; x++) /* id is the first member of every record */
    memcpy(l.ids[x], (const char *)recs + x * tt_kind_get(k)->size, TT_ID_SIZE);
  snprintf(l.next, sizeof l.next, "%s", next ? next : "");
}

static int closed;
static void on_close(void *ud) { closed = (int)(intptr_t)ud; }


/* a user of its own for each case: unique email and key hash per run
 * (uniq), or a name only (no unique item: no transaction on DynamoDB) */
static void make_user_with(const char *name, char out[TT_ID_SIZE], int uniq) {
  static int serial;
  char email[128], hash[128];
  serial++;
  snprintf(email, sizeof email, "%s-%s-%d@example.com", name, tt_test_nonce(), serial);
  snprintf(hash, sizeof hash, "hash-%s-%s-%d", name, tt_test_nonce(), serial);
  tt_user u = {0};
  u.name = (char *)name;
  u.email = uniq ? email : NULL;
  u.api_key_hash = uniq ? hash : NULL;
  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  memcpy(out, r.u.id, TT_ID_SIZE);
}
static void make_user(const char *name, char out[TT_ID_SIZE]) { make_user_with(name, out, 0); }

static char tmpdir[] = "/tmp/tt-store-XXXXXX";

static void case_urls(void) {
  tt_store *x;
  CHECK_INT(tt_store_open(&loop, "dynamodb://host", &x), TT_EINVAL);
  CHECK_INT(tt_store_open(&loop, "redis://x", &x), TT_EINVAL);
  CHECK_INT(tt_store_open(&loop, "sqlite://", &x), TT_EINVAL);
  CHECK_INT(tt_store_open(&loop, "sqlite:///proc/nope/x.db", &x), TT_EIO);
}

static void case_ids(void) {
  char a[TT_ID_SIZE], b[TT_ID_SIZE];
  tt_id_new(a);
  tt_id_new(b);
  CHECK(tt_id_valid(a));
  CHECK(a[14] == '7'); /* version nibble */
  CHECK(strchr("89ab", a[19]) != NULL);
  CHECK(strcmp(a, b) < 0);
  CHECK(!tt_id_valid("not-an-id"));
}

static void case_user_unique_keys(void) {
  TT_NEEDS("transactions");
  char email[128], hash[128];
  snprintf(email, sizeof email, "ada-%s@example.com", tt_test_nonce());
  snprintf(hash, sizeof hash, "hash-ada-%s", tt_test_nonce());
  tt_user u = {0};
  u.name = "Ada";
  u.email = email;
  u.api_key_hash = hash;
  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.inline_call, 0);
  CHECK_INT(r.u.version, 1);
  CHECK(tt_id_valid(r.u.id));
  CHECK(r.u.created_at > 0);
  char uid[TT_ID_SIZE];
  memcpy(uid, r.u.id, sizeof uid);

  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EEXIST); /* same email + key hash */
  char other_email[128];
  snprintf(other_email, sizeof other_email, "other-%s@example.com", tt_test_nonce());
  u.email = other_email;
  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EEXIST); /* same key hash */
  memcpy(u.id, uid, sizeof u.id);
  char other_hash[128];
  snprintf(other_hash, sizeof other_hash, "hash-other-%s", tt_test_nonce());
  u.api_key_hash = other_hash;
  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EEXIST); /* same id */
  memcpy(u.id, "bad", 4);
  DO(tt_store_create(st, TT_KIND_USER, &u, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EINVAL);

  DO(tt_store_user_by_key_hash(st, hash, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_STR(r.u.id, uid);
  CHECK_STR(r.u.name, "Ada");
  DO(tt_store_user_by_key_hash(st, "nope", rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  CHECK_INT(r.have, 0);

  /* a new email and key hash: the old ones are free, the new ones taken */
  char new_email[128], new_hash[128];
  snprintf(new_email, sizeof new_email, "ada-new-%s@example.com", tt_test_nonce());
  snprintf(new_hash, sizeof new_hash, "hash-ada-new-%s", tt_test_nonce());
  tt_user m = {0};
  memcpy(m.id, uid, sizeof m.id);
  m.name = "Ada";
  m.email = new_email;
  m.api_key_hash = new_hash;
  m.version = 1;
  DO(tt_store_update(st, TT_KIND_USER, &m, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.u.version, 2);
  CHECK_STR(r.u.email, new_email);
  DO(tt_store_user_by_key_hash(st, new_hash, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_STR(r.u.id, uid);
  DO(tt_store_user_by_key_hash(st, hash, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  tt_user n = {0};
  n.name = "Ada II";
  n.email = email; /* the old pair: free again */
  n.api_key_hash = hash;
  DO(tt_store_create(st, TT_KIND_USER, &n, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  char uid2[TT_ID_SIZE];
  memcpy(uid2, r.u.id, sizeof uid2);
  m.version = 2;
  m.email = email; /* taken by Ada II now */
  DO(tt_store_update(st, TT_KIND_USER, &m, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EEXIST);
  DO(tt_store_delete(st, TT_KIND_USER, uid2, 1, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_user_by_key_hash(st, hash, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ENOTFOUND); /* its unique items went with it */
}

static void case_get(void) {
  char uid[TT_ID_SIZE], b[TT_ID_SIZE];
  make_user("getter", uid);
  tt_id_new(b);
  DO(tt_store_get(st, TT_KIND_USER, uid, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_STR(r.u.name, "getter");
  DO(tt_store_get(st, TT_KIND_USER, b, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_store_get(st, TT_KIND_USER, "../../etc", rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_store_get(st, (tt_kind)9, uid, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_EINVAL);
}

static void case_update_conditional(void) {
  char uid[TT_ID_SIZE], b[TT_ID_SIZE];
  make_user("writer", uid);
  tt_id_new(b);
  DO(tt_store_get(st, TT_KIND_USER, uid, rec_cb, UD(TT_KIND_USER)));
  /* two writers read version 1, one wins */
  tt_user w1 = {0};
  memcpy(w1.id, uid, sizeof w1.id);
  w1.name = "Ada L.";
  w1.email = r.u.email;
  w1.api_key_hash = r.u.api_key_hash;
  w1.version = 1;
  tt_user w2 = w1;
  w2.name = "Ada K.";
  DO(tt_store_update(st, TT_KIND_USER, &w1, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.u.version, 2);
  CHECK_STR(r.u.name, "Ada L.");
  w1.email = w2.email = r.u.email; /* r's strings are replaced by each callback */
  w1.api_key_hash = w2.api_key_hash = r.u.api_key_hash;
  DO(tt_store_update(st, TT_KIND_USER, &w2, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_ECONFLICT);
  DO(tt_store_get(st, TT_KIND_USER, uid, rec_cb, UD(TT_KIND_USER)));
  CHECK_STR(r.u.name, "Ada L."); /* the loser changed nothing */
  CHECK_INT(r.u.version, 2);
  /* both in flight at once: exactly one succeeds */
  {
    char *email = r.u.email ? strdup(r.u.email) : NULL;
    char *hash = r.u.api_key_hash ? strdup(r.u.api_key_hash) : NULL;
    w1.email = w2.email = email;
    w1.api_key_hash = w2.api_key_hash = hash;
    w1.version = 2;
    w2.version = 2;
    r.calls = 0;
    returned = 0;
    tt_store_update(st, TT_KIND_USER, &w1, rec_cb, UD(TT_KIND_USER));
    tt_store_update(st, TT_KIND_USER, &w2, rec_cb, UD(TT_KIND_USER));
    run();
    CHECK_INT(r.calls, 2);
    DO(tt_store_get(st, TT_KIND_USER, uid, rec_cb, UD(TT_KIND_USER)));
    CHECK_INT(r.u.version, 3);
    tt_user ghost = w1;
    memcpy(ghost.id, b, sizeof ghost.id);
    DO(tt_store_update(st, TT_KIND_USER, &ghost, rec_cb, UD(TT_KIND_USER)));
    CHECK_INT(r.status, TT_ENOTFOUND);
    free(email);
    free(hash);
  }
}

static void case_image_owner_required(void) {
  char uid[TT_ID_SIZE];
  tt_id_new(uid); /* an owner is an id: the store does not require the user */
  tt_image im = {0};
  im.state = "created";
  DO(tt_store_create(st, TT_KIND_IMAGE, &im, rec_cb, UD(TT_KIND_IMAGE)));
  CHECK_INT(r.status, TT_EINVAL); /* no owner */
  memcpy(im.owner, uid, sizeof im.owner);
  im.bytes = 12345;
  DO(tt_store_create(st, TT_KIND_IMAGE, &im, rec_cb, UD(TT_KIND_IMAGE)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.i.bytes, 12345);
  CHECK_STR(r.i.owner, uid);
}

/* 7 jobs of a new owner (x odd: succeeded, even: queued), with keys
 * k0..k6 (unique items) when keyed */
static void make_jobs_with(char uid[TT_ID_SIZE], char jobids[7][TT_ID_SIZE], int keyed) {
  tt_id_new(uid);
  for (int x = 0; x < 7; x++) {
    tt_job j = {0};
    memcpy(j.owner, uid, TT_ID_SIZE);
    j.state = x % 2 ? "succeeded" : "queued";
    j.request = "{\"url\":\"https://example.com\"}";
    char key[16];
    snprintf(key, sizeof key, "k%d", x);
    j.idempotency_key = keyed ? key : NULL;
    DO(tt_store_create(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
    CHECK_INT(r.status, TT_OK);
    memcpy(jobids[x], r.j.id, TT_ID_SIZE);
  }
}
static void make_jobs(char uid[TT_ID_SIZE], char jobids[7][TT_ID_SIZE]) { make_jobs_with(uid, jobids, 0); }

static void case_job_idempotency_key(void) {
  TT_NEEDS("transactions");
  char uid[TT_ID_SIZE], other[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs_with(uid, jobids, 1);
  tt_id_new(other);
  tt_job j = {0};
  memcpy(j.owner, uid, sizeof j.owner);
  j.state = "queued";
  j.idempotency_key = "k3";
  DO(tt_store_create(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_EEXIST);
  memcpy(j.owner, other, sizeof j.owner); /* another user may reuse the key */
  DO(tt_store_create(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_job_by_idempotency(st, uid, "k3", rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  CHECK_STR(r.j.id, jobids[3]);
  DO(tt_store_job_by_idempotency(st, uid, "k99", rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_ENOTFOUND);
}

static void list(tt_kind k, const tt_store_query *q) {
  l.calls = 0;
  returned = 0;
  tt_store_list(st, k, q, list_cb, UD(k));
  run();
  CHECK_INT(l.calls, 1);
}

static void case_list_pages(void) {
  char uid[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs(uid, jobids);
  /* page through the 7 jobs of uid, 3 at a time, newest first */
  tt_store_query q = {uid, NULL, 3, NULL};
  char seen[7][TT_ID_SIZE];
  int nseen = 0, pages = 0;
  char cur[TT_ID_SIZE] = "";
  do {
    q.cursor = cur[0] ? cur : NULL;
    list(TT_KIND_JOB, &q);
    CHECK_INT(l.status, TT_OK);
    for (int x = 0; x < l.n && nseen < 7; x++) memcpy(seen[nseen++], l.ids[x], TT_ID_SIZE);
    memcpy(cur, l.next, sizeof cur);
    pages++;
  } while (cur[0] && pages < 10);
  CHECK_INT(pages, 3);
  CHECK_INT(nseen, 7);
  for (int x = 0; x < 7 && nseen == 7; x++) CHECK_STR(seen[x], jobids[6 - x]);
}

static void case_list_filters(void) {
  char uid[TT_ID_SIZE], other[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs(uid, jobids);
  tt_id_new(other);
  tt_job j = {0};
  memcpy(j.owner, other, sizeof j.owner);
  j.state = "queued";
  DO(tt_store_create(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
  tt_store_query q = {uid, "succeeded", 0, NULL};
  list(TT_KIND_JOB, &q);
  CHECK_INT(l.n, 3); /* x = 1, 3, 5 */
  CHECK_STR(l.next, "");
  q.state = NULL;
  q.owner = other;
  list(TT_KIND_JOB, &q);
  CHECK_INT(l.n, 1); /* a user sees only their own */
  q.owner = NULL;
  list(TT_KIND_JOB, &q);
  CHECK_INT(l.status, TT_EINVAL);
  q.owner = uid;
  q.cursor = "zzz";
  list(TT_KIND_JOB, &q);
  CHECK_INT(l.status, TT_EINVAL);
}

static void case_job_update(void) {
  char uid[TT_ID_SIZE], other[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs(uid, jobids);
  tt_id_new(other);
  /* job update keeps JSON text and counts attempts */
  tt_job j = {0};
  memcpy(j.id, jobids[0], TT_ID_SIZE);
  memcpy(j.owner, other, sizeof j.owner); /* owner is immutable: ignored */
  j.state = "running";
  j.attempts = 1;
  j.result = "{\"format\":\"png\"}";
  j.version = 1;
  DO(tt_store_update(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.j.version, 2);
  CHECK_INT(r.j.attempts, 1);
  tt_store_query q = {uid, "running", 0, NULL};
  list(TT_KIND_JOB, &q);
  CHECK_INT(l.n, 1);
}

static void case_delete_versioned(void) {
  char uid[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs(uid, jobids);
  tt_job j = {0};
  memcpy(j.id, jobids[0], TT_ID_SIZE);
  j.state = "running";
  j.version = 1;
  DO(tt_store_update(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB))); /* version 2 */
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[0], 1, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_ECONFLICT);
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[0], 2, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.have, 0);
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[0], 0, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_store_get(st, TT_KIND_JOB, jobids[0], rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[1], 0, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[2], -1, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_EINVAL);
}

/* a deleted job's idempotency key is free again (its unique item went with it) */
static void case_job_key_freed_by_delete(void) {
  TT_NEEDS("transactions");
  char uid[TT_ID_SIZE], jobids[7][TT_ID_SIZE];
  make_jobs_with(uid, jobids, 1);
  DO(tt_store_delete(st, TT_KIND_JOB, jobids[2], 1, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_job_by_idempotency(st, uid, "k2", rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  tt_job j = {0};
  memcpy(j.owner, uid, sizeof j.owner);
  j.state = "queued";
  j.idempotency_key = "k2";
  DO(tt_store_create(st, TT_KIND_JOB, &j, rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_job_by_idempotency(st, uid, "k2", rec_cb, UD(TT_KIND_JOB)));
  CHECK_INT(r.status, TT_OK);
  CHECK(strcmp(r.j.id, jobids[2]) != 0);
}

/* result cache entries: an id chosen by the caller (derived from owner +
 * request), so a lookup is a get; a second render of the same request
 * conflicts on create and replaces the entry by a versioned update */
static void case_cache_entries(void) {
  char owner[TT_ID_SIZE], id[TT_ID_SIZE], id2[TT_ID_SIZE], job[TT_ID_SIZE];
  tt_id_new(owner);
  tt_id_new(id);
  tt_id_new(id2);
  tt_id_new(job);
  tt_cache_entry e = {0};
  memcpy(e.id, id, TT_ID_SIZE);
  memcpy(e.owner, owner, TT_ID_SIZE);
  e.state = "ready";
  e.job_id = job;
  e.result_key = "results/a.png";
  e.result = "{\"format\":\"png\",\"bytes\":12}";
  e.rendered_at = 1700000000123;
  DO(tt_store_create(st, TT_KIND_CACHE, &e, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_create(st, TT_KIND_CACHE, &e, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_EEXIST);
  DO(tt_store_get(st, TT_KIND_CACHE, id, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_OK);
  if (!r.c) return;
  CHECK_STR(r.c->owner, owner);
  CHECK_STR(r.c->job_id, job);
  CHECK_STR(r.c->result_key, "results/a.png");
  CHECK_STR(r.c->result, "{\"format\":\"png\",\"bytes\":12}");
  CHECK_INT(r.c->rendered_at, 1700000000123);
  CHECK_INT(r.c->version, 1);
  e.rendered_at = 1700000009999;
  e.result_key = "results/b.png";
  e.version = 1;
  DO(tt_store_update(st, TT_KIND_CACHE, &e, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_OK);
  if (!r.c) return;
  CHECK_INT(r.c->version, 2);
  CHECK_STR(r.c->result_key, "results/b.png");
  CHECK_INT(r.c->rendered_at, 1700000009999);
  DO(tt_store_update(st, TT_KIND_CACHE, &e, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_ECONFLICT); /* another worker's render won */
  memcpy(e.id, id2, TT_ID_SIZE);
  DO(tt_store_create(st, TT_KIND_CACHE, &e, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_OK);
  tt_store_query q = {owner, NULL, 0, NULL};
  list(TT_KIND_CACHE, &q);
  CHECK_INT(l.n, 2);
  if (l.n == 2) CHECK_STR(l.ids[0], id2); /* newest first */
  q.state = "ready";
  list(TT_KIND_CACHE, &q);
  CHECK_INT(l.n, 2);
  DO(tt_store_delete(st, TT_KIND_CACHE, id, 2, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_get(st, TT_KIND_CACHE, id, rec_cb, UD(TT_KIND_CACHE)));
  CHECK_INT(r.status, TT_ENOTFOUND);
}

/* batches: an id derived from owner + Idempotency-Key, so a replay is a
 * conflict on create and a get; listed per owner */
static void case_batches(void) {
  char owner[TT_ID_SIZE], other[TT_ID_SIZE], id[TT_ID_SIZE];
  tt_id_new(owner);
  tt_id_new(other);
  tt_id_new(id);
  tt_batch b = {0};
  memcpy(b.id, id, TT_ID_SIZE);
  memcpy(b.owner, owner, TT_ID_SIZE);
  b.state = "created";
  b.request = "{\"items\":[{\"url\":\"https://example.com\"}]}";
  b.items = "[{\"job\":\"j1\"},{\"problem\":{\"status\":400}}]";
  b.idempotency_key = "batch-1";
  DO(tt_store_create(st, TT_KIND_BATCH, &b, rec_cb, UD(TT_KIND_BATCH)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_create(st, TT_KIND_BATCH, &b, rec_cb, UD(TT_KIND_BATCH)));
  CHECK_INT(r.status, TT_EEXIST); /* the replay */
  DO(tt_store_get(st, TT_KIND_BATCH, id, rec_cb, UD(TT_KIND_BATCH)));
  CHECK_INT(r.status, TT_OK);
  if (!r.b) return;
  CHECK_STR(r.b->owner, owner);
  CHECK_STR(r.b->items, "[{\"job\":\"j1\"},{\"problem\":{\"status\":400}}]");
  CHECK_STR(r.b->idempotency_key, "batch-1");
  b.items = "[]";
  b.idempotency_key = NULL; /* a NULL string clears the field */
  b.version = 1;
  DO(tt_store_update(st, TT_KIND_BATCH, &b, rec_cb, UD(TT_KIND_BATCH)));
  CHECK_INT(r.status, TT_OK);
  if (!r.b) return;
  CHECK_STR(r.b->items, "[]");
  CHECK(r.b->idempotency_key == NULL);
  CHECK_STR(r.b->request, "{\"items\":[{\"url\":\"https://example.com\"}]}");
  for (int x = 0; x < 2; x++) {
    tt_batch o = {0};
    memcpy(o.owner, x ? owner : other, TT_ID_SIZE);
    o.state = "created";
    DO(tt_store_create(st, TT_KIND_BATCH, &o, rec_cb, UD(TT_KIND_BATCH)));
    CHECK_INT(r.status, TT_OK);
  }
  tt_store_query q = {owner, NULL, 0, NULL};
  list(TT_KIND_BATCH, &q);
  CHECK_INT(l.n, 2); /* the other owner's is not listed */
  if (l.n == 2) CHECK_STR(l.ids[1], id);
  q.owner = NULL;
  list(TT_KIND_BATCH, &q);
  CHECK_INT(l.status, TT_EINVAL);
}

/* the webhook outbox: not owned; the worker lists the pending ones of every
 * user (by state, newest first, paged), takes one with a conditional
 * update (exactly one of two workers wins), and marks it delivered */
static void case_deliveries(void) {
  char ids[3][TT_ID_SIZE], owners[2][TT_ID_SIZE];
  tt_id_new(owners[0]);
  tt_id_new(owners[1]);
  for (int x = 0; x < 3; x++) {
    tt_delivery d = {0};
    tt_id_new(ids[x]);
    memcpy(d.id, ids[x], TT_ID_SIZE);
    d.state = "pending";
    d.owner = x < 2 ? owners[x] : NULL;
    d.job_id = ids[x];
    d.url = "http://127.0.0.1:9/hook";
    d.next_at = 1000 + x;
    DO(tt_store_create(st, TT_KIND_DELIVERY, &d, rec_cb, UD(TT_KIND_DELIVERY)));
    CHECK_INT(r.status, TT_OK);
    DO(tt_store_create(st, TT_KIND_DELIVERY, &d, rec_cb, UD(TT_KIND_DELIVERY)));
    CHECK_INT(r.status, TT_EEXIST); /* the job's event is written once */
  }
  /* every owner's, newest first: ours are the newest pending ones */
  tt_store_query q = {NULL, "pending", 2, NULL};
  list(TT_KIND_DELIVERY, &q);
  CHECK_INT(l.status, TT_OK);
  CHECK_INT(l.n, 2);
  if (l.n == 2) {
    CHECK_STR(l.ids[0], ids[2]);
    CHECK_STR(l.ids[1], ids[1]);
  }
  CHECK_STR(l.next, ids[1]);
  char cur[TT_ID_SIZE];
  memcpy(cur, l.next, sizeof cur);
  q.cursor = cur;
  q.limit = 1;
  list(TT_KIND_DELIVERY, &q);
  CHECK_INT(l.n, 1);
  if (l.n == 1) CHECK_STR(l.ids[0], ids[0]);
  q.owner = owners[0]; /* the owner of an unowned kind is no filter */
  q.cursor = NULL;
  q.limit = 3;
  list(TT_KIND_DELIVERY, &q);
  CHECK_INT(l.n, 3);
  /* two workers take ids[0] at version 1: one wins */
  DO(tt_store_get(st, TT_KIND_DELIVERY, ids[0], rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_OK);
  if (!r.d) return;
  CHECK_STR(r.d->owner, owners[0]);
  CHECK_STR(r.d->url, "http://127.0.0.1:9/hook");
  CHECK_INT(r.d->next_at, 1000);
  tt_delivery w = {0};
  memcpy(w.id, ids[0], TT_ID_SIZE);
  w.state = "pending";
  w.owner = owners[0];
  w.job_id = ids[0];
  w.url = "http://127.0.0.1:9/hook";
  w.attempts = 1;
  w.next_at = 99000;
  w.version = 1;
  DO(tt_store_update(st, TT_KIND_DELIVERY, &w, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_OK);
  if (!r.d) return;
  CHECK_INT(r.d->version, 2);
  CHECK_INT(r.d->attempts, 1);
  CHECK_INT(r.d->next_at, 99000);
  DO(tt_store_update(st, TT_KIND_DELIVERY, &w, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_ECONFLICT);
  /* delivered: it leaves the pending list and joins the delivered one */
  w.state = "delivered";
  w.delivered_at = 123456;
  w.last_error = NULL;
  w.version = 2;
  DO(tt_store_update(st, TT_KIND_DELIVERY, &w, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_OK);
  q.owner = NULL;
  q.state = "pending";
  list(TT_KIND_DELIVERY, &q);
  CHECK(l.n >= 2);
  if (l.n >= 2) {
    CHECK_STR(l.ids[0], ids[2]);
    CHECK_STR(l.ids[1], ids[1]);
  }
  int found = 0;
  for (int x = 0; x < l.n; x++) found |= !strcmp(l.ids[x], ids[0]);
  CHECK_INT(found, 0);
  q.state = "delivered";
  list(TT_KIND_DELIVERY, &q);
  CHECK(l.n >= 1);
  if (l.n >= 1) CHECK_STR(l.ids[0], ids[0]);
  q.state = NULL; /* any state */
  list(TT_KIND_DELIVERY, &q);
  CHECK_INT(l.n, 3);
  if (l.n == 3) CHECK_STR(l.ids[2], ids[0]);
  DO(tt_store_delete(st, TT_KIND_DELIVERY, ids[1], 0, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_OK);
  DO(tt_store_delete(st, TT_KIND_DELIVERY, ids[1], 0, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_store_delete(st, TT_KIND_DELIVERY, ids[2], 7, rec_cb, UD(TT_KIND_DELIVERY)));
  CHECK_INT(r.status, TT_ECONFLICT);
}

static void case_close_and_reopen(void) {
  char uid[TT_ID_SIZE];
  make_user("keeper", uid);
  /* close: callback later, on the loop */
  closed = 0;
  tt_store_close(st, on_close, (void *)1);
  CHECK_INT(closed, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(closed, 1);
  /* reopen: data persisted (sqlite: schema not re-migrated) */
  st = NULL;
  CHECK_INT(tt_store_open(&loop, url, &st), TT_OK);
  if (!st) return;
  DO(tt_store_get(st, TT_KIND_USER, uid, rec_cb, UD(TT_KIND_USER)));
  CHECK_INT(r.status, TT_OK);
}

static const tt_case cases[] = {
    {"urls", case_urls, 1},
    {"ids", case_ids, 0},
    {"user_unique_keys", case_user_unique_keys, 0},
    {"get", case_get, 0},
    {"update_conditional", case_update_conditional, 0},
    {"image_owner_required", case_image_owner_required, 0},
    {"job_idempotency_key", case_job_idempotency_key, 0},
    {"list_pages", case_list_pages, 0},
    {"list_filters", case_list_filters, 0},
    {"job_update", case_job_update, 0},
    {"delete_versioned", case_delete_versioned, 0},
    {"job_key_freed_by_delete", case_job_key_freed_by_delete, 0},
    {"cache_entries", case_cache_entries, 0},
    {"batches", case_batches, 0},
    {"deliveries", case_deliveries, 0},
    {"close_and_reopen", case_close_and_reopen, 0},
};

int main(int argc, char **argv) {
  if (!mkdtemp(tmpdir)) return 2;
  char dflt[256];
  snprintf(dflt, sizeof dflt, "sqlite://%s/sub/tintype.db", tmpdir); /* directory is created */
  url = tt_test_url("TT_TEST_STORE_URL", dflt);
  uv_loop_init(&loop);
  CHECK_INT(tt_store_open(&loop, url, &st), TT_OK);
  if (!st) return 1;
  tt_run_cases(cases, sizeof cases / sizeof cases[0], argc, argv);
  if (st) {
    tt_store_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  free(r.u.name), free(r.u.email), free(r.u.api_key_hash);
  tt_cache_entry_free(r.c);
  tt_batch_free(r.b);
  tt_delivery_free(r.d);
  CHECK_INT(uv_loop_close(&loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) return 2;
  TT_TEST_END();
}
