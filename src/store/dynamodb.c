/* dynamodb.c — the records seam (include/tintype/store.h) on Amazon
 * DynamoDB, through the client of src/aws/.
 *
 * dynamodb://?prefix=P: one table, "Precords" (single-table design, argued
 * in docs/ARCHITECTURE.md, "AWS backends"). Every kind of record.h's kind
 * table is stored the same way, driven by its field descriptors:
 *   records   pk "PFX#id" (PFX from kind_pfx below: U, I, J, C, B, D; a
 *             kind added later without an entry uses its table name), one
 *             attribute per record field, "version" the optimistic lock;
 *             gsi1pk "PFX" | "PFX#owner" and gsi1sk = id on the index
 *             "gsi1" (listings; ids are UUIDv7, so a descending Query is
 *             newest first, and the cursor is the last id returned);
 *             gsi2pk "PFX#state" | "PFX#owner#state" and gsi2sk = id on
 *             "gsi2" for kinds with a state (listings by state: the
 *             webhook outbox's "pending ones of every user" is one exact
 *             Query, never a filter over every delivery ever made).
 *   uniques   pk "E#email" | "K#api_key_hash" | "X#owner#idempotency_key"
 *             (the uniques table below, sqlite's UNIQUE constraints),
 *             attribute "ref" = the record's id; written in the same
 *             TransactWriteItems as the record, each conditional on
 *             attribute_not_exists(pk), so a taken email is TT_EEXIST.
 * Reads by id and by unique key are strongly consistent GetItems (a user
 * signs up, then authenticates at once: read-your-writes). Listings read
 * the indexes, which are eventually consistent — as DynamoDB's GSIs are.
 *
 * update is one UpdateItem (SET every mutable field and gsi2pk, version +
 * 1) whose condition also requires the owner and the unique fields
 * unchanged; when it fails with the version still current, the stored
 * record decides: immutable fields are taken from it, and a changed unique
 * field (a user's new email) moves its unique items in a transaction.
 * Emulators that lack ReturnValuesOnConditionCheckFailure (dynalite) get a
 * consistent GetItem instead. Records without unique items never need a
 * transaction. `tintype aws init` creates the table (src/aws_init.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "tintype/aws.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/store.h"

typedef struct ddb {
  tt_store base;
  tt_aws *aws;
  char table[256];
  int busy, closing;
  tt_store_close_cb ccb;
  void *cud;
  uv_timer_t t;
} ddb;

enum { O_CREATE, O_GET, O_UPDATE, O_DEL, O_LIST, O_BY_HASH, O_BY_IDEM };

/* room for a record of any kind (op_new checks a later kind fits) */
typedef union anyrec {
  tt_user u;
  tt_image i;
  tt_job j;
  tt_cache_entry c;
  tt_batch b;
  tt_delivery d;
  char room[512];
} anyrec;

/* the pk prefix of each kind, by tt_kind; a kind past the table uses its
 * table name (never one letter, so never a unique item's tag) */
static const char *const kind_pfx[] = {"U", "I", "J", "C", "B", "D", "R"};

/* the unique items (sqlite's UNIQUE constraints): pk "TAG#value" or, per
 * owner, "TAG#owner#value"; ref = the record's id */
typedef struct uniq_def {
  tt_kind k;
  const char *tag, *field;
  int per_owner;
} uniq_def;
static const uniq_def uniq_defs[] = {
    {TT_KIND_USER, "E", "email", 0},
    {TT_KIND_USER, "K", "api_key_hash", 0},
    {TT_KIND_JOB, "X", "idempotency_key", 1},
};
#define NUNIQ (int)(sizeof uniq_defs / sizeof uniq_defs[0])
#define MAXU 4 /* unique items of one record, at most */

typedef struct dop {
  ddb *d;
  int what, status, retried;
  tt_kind k;
  tt_store_cb cb;
  tt_store_list_cb lcb;
  void *ud;
  uv_timer_t t;
  anyrec in, out;
  int have_in, have_out;
  char id[TT_ID_SIZE];
  int64_t version;
  /* list */
  char owner[TT_ID_SIZE], cursor[TT_ID_SIZE], *state;
  int limit;
  char *recs; /* limit records of the kind's own size (the list's array) */
  int n;
  char next[TT_ID_SIZE];
} dop;

/* ---- the kind's descriptors ------------------------------------------------ */

static const char *pfx(tt_kind k) {
  return (unsigned)k < sizeof kind_pfx / sizeof kind_pfx[0] ? kind_pfx[k] : tt_kind_get(k)->table;
}

static const tt_field *field(tt_kind k, const char *name) {
  const tt_kind_desc *d = tt_kind_get(k);
  for (int i = 0; i < d->nfields; i++)
    if (!strcmp(d->fields[i].name, name)) return &d->fields[i];
  return NULL;
}

static const char *owner_of(tt_kind k, const void *r) {
  const tt_field *f = tt_kind_get(k)->has_owner ? field(k, "owner") : NULL;
  return f && f->type == TT_F_ID ? TT_REC_ID(r, f) : NULL;
}

static const tt_field *state_field(tt_kind k) {
  const tt_field *f = field(k, "state");
  return f && f->type == TT_F_STR ? f : NULL;
}

static const char *state_of(tt_kind k, const void *r) {
  const tt_field *f = state_field(k);
  return f ? TT_REC_STR(r, f) : NULL;
}

static int64_t version_of(tt_kind k, const void *r) {
  const tt_field *f = field(k, "version");
  return f ? TT_REC_INT(r, f) : 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void ddb_maybe_closed(ddb *d);

static void op_closed(uv_handle_t *h) {
  dop *o = h->data;
  ddb *d = o->d;
  free(o);
  d->busy--;
  ddb_maybe_closed(d);
}

static void *rec_at(dop *o, int i) { return o->recs + (size_t)i * tt_kind_get(o->k)->size; }

static void finish(dop *o) {
  if (o->what == O_LIST) {
    o->lcb(o->ud, o->status, o->status ? NULL : o->recs, o->status ? 0 : (size_t)o->n,
           !o->status && o->next[0] ? o->next : NULL);
  } else if (o->cb) {
    o->cb(o->ud, o->status, !o->status && o->have_out ? &o->out : NULL);
  }
  for (int i = 0; i < o->n; i++) tt_rec_clear(o->k, rec_at(o, i));
  free(o->recs);
  if (o->have_in) tt_rec_clear(o->k, &o->in);
  if (o->have_out) tt_rec_clear(o->k, &o->out);
  free(o->state);
  uv_close((uv_handle_t *)&o->t, op_closed);
}

static void on_later(uv_timer_t *t) { finish(t->data); }
static void done_later(dop *o, int st) {
  o->status = st;
  uv_timer_start(&o->t, on_later, 0, 0);
}

static dop *op_new(tt_store *s, int what, tt_kind k) {
  ddb *d = (ddb *)s;
  dop *o = calloc(1, sizeof *o);
  if (!o) {
    fprintf(stderr, "tintype: out of memory in the store\n");
    abort();
  }
  o->d = d;
  o->what = what;
  o->k = k;
  if (!tt_kind_get(k) || tt_kind_get(k)->size > sizeof(anyrec)) {
    o->k = TT_KIND_USER; /* the front checked the kind: only an oversized one lands here */
    o->status = TT_EINVAL;
  }
  uv_timer_init(s->loop, &o->t);
  o->t.data = o;
  d->busy++;
  return o;
}

static int map_err(int err, const tt_aws_resp *r) {
  if (err != TT_EIO) return err;
  if (!strcmp(r->code, "ConditionalCheckFailedException")) return TT_ECONFLICT;
  if (!strcmp(r->code, "ResourceNotFoundException")) {
    tt_logf(TT_LOG_ERROR, "dynamodb: the table does not exist (create it with tintype aws init)");
    return TT_EIO;
  }
  if (!strcmp(r->code, "UnknownOperationException")) {
    tt_logf(TT_LOG_ERROR, "dynamodb: the endpoint does not implement this operation (%s)", r->message);
    return TT_ENOTSUP;
  }
  if (!strcmp(r->code, "ValidationException") || !strcmp(r->code, "SerializationException"))
    return TT_EINVAL;
  return TT_EIO;
}

static void send_body(dop *o, const char *action, json_t *j, tt_aws_cb cb) {
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!body) {
    done_later(o, TT_ENOMEM);
    return;
  }
  tt_aws_call c = {.svc = TT_AWS_DYNAMODB,
                   .action = action,
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = strlen(body)};
  tt_aws_req *r = tt_aws_call_start(o->d->aws, &c, cb, o);
  free(body);
  if (!r) done_later(o, TT_ENOMEM);
}

static void call(dop *o, const char *action, json_t *j, tt_aws_cb cb) {
  json_object_set_new(j, "TableName", json_string(o->d->table));
  send_body(o, action, j, cb);
}

/* a TransactWriteItems: each item names its table itself */
static void transact(dop *o, json_t *items, tt_aws_cb cb) {
  send_body(o, "dynamodb:TransactWriteItems", json_pack("{s:o}", "TransactItems", items), cb);
}

/* ---- items <-> records --------------------------------------------------------- */

static json_t *S(const char *s) { return json_pack("{s:s}", "S", s); }
static json_t *N(int64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)v);
  return json_pack("{s:s}", "N", b);
}

static json_t *key_of(tt_kind k, const char *id) {
  char pk[300];
  snprintf(pk, sizeof pk, "%s#%s", pfx(k), id);
  return json_pack("{s:o}", "pk", S(pk));
}

/* gsi1pk / gsi2pk of a record (malloc); gsi2pk NULL when it has no state */
static char *gsi1pk(tt_kind k, const char *owner) {
  char *s = NULL;
  if (owner ? asprintf(&s, "%s#%s", pfx(k), owner) < 0 : asprintf(&s, "%s", pfx(k)) < 0) return NULL;
  return s;
}
static char *gsi2pk(tt_kind k, const char *owner, const char *state) {
  char *s = NULL;
  if (!state) return NULL;
  if (owner ? asprintf(&s, "%s#%s#%s", pfx(k), owner, state) < 0 : asprintf(&s, "%s#%s", pfx(k), state) < 0)
    return NULL;
  return s;
}

/* the unique items of a record: pk strings (malloc), how many */
static int uniques(tt_kind k, const void *r, char *out[MAXU]) {
  int n = 0;
  for (int i = 0; i < NUNIQ && n < MAXU; i++) {
    if (uniq_defs[i].k != k) continue;
    const char *v = TT_REC_STR(r, field(k, uniq_defs[i].field));
    if (!v) continue;
    int rc = uniq_defs[i].per_owner ? asprintf(&out[n], "%s#%s#%s", uniq_defs[i].tag, owner_of(k, r), v)
                                    : asprintf(&out[n], "%s#%s", uniq_defs[i].tag, v);
    if (rc > 0) n++;
  }
  return n;
}

static int kind_has_uniques(tt_kind k) {
  for (int i = 0; i < NUNIQ; i++)
    if (uniq_defs[i].k == k) return 1;
  return 0;
}

static void free_strs(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
}

static json_t *item_of(tt_kind k, const anyrec *r) {
  const tt_kind_desc *d = tt_kind_get(k);
  json_t *it = key_of(k, r->u.id);
  const char *owner = owner_of(k, r);
  char *g1 = gsi1pk(k, owner), *g2 = gsi2pk(k, owner, state_of(k, r));
  if (g1) json_object_set_new(it, "gsi1pk", S(g1));
  json_object_set_new(it, "gsi1sk", S(r->u.id));
  if (g2) {
    json_object_set_new(it, "gsi2pk", S(g2));
    json_object_set_new(it, "gsi2sk", S(r->u.id));
  }
  free(g1);
  free(g2);
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (f->type == TT_F_ID) {
      if (*TT_REC_ID(r, f)) json_object_set_new(it, f->name, S(TT_REC_ID(r, f)));
    } else if (f->type == TT_F_STR) {
      const char *v = TT_REC_STR(r, f);
      if (v) json_object_set_new(it, f->name, S(v));
    } else {
      json_object_set_new(it, f->name, N(TT_REC_INT(r, f)));
    }
  }
  return it;
}

/* item -> r, a record of kind k (overwritten: clear it first if it held strings) */
static int rec_of(tt_kind k, json_t *it, void *r) {
  const tt_kind_desc *d = tt_kind_get(k);
  memset(r, 0, d->size);
  if (!json_is_object(it)) return TT_EIO;
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    json_t *a = json_object_get(it, f->name);
    const char *s = json_string_value(json_object_get(a, "S"));
    const char *nv = json_string_value(json_object_get(a, "N"));
    if (f->type == TT_F_ID) {
      if (s) snprintf(TT_REC_ID(r, f), TT_ID_SIZE, "%s", s);
    } else if (f->type == TT_F_STR) {
      if (s && !(TT_REC_STR(r, f) = strdup(s))) return TT_ENOMEM;
    } else {
      TT_REC_INT(r, f) = nv ? strtoll(nv, NULL, 10) : 0;
    }
  }
  return TT_OK;
}

/* "ConditionalCheckFailed" reasons of a canceled transaction: bit i set */
static unsigned cancel_bits(const tt_aws_resp *r) {
  unsigned bits = 0;
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *rs = json_object_get(j, "CancellationReasons");
  for (size_t i = 0; i < json_array_size(rs) && i < 32; i++) {
    const char *c = json_string_value(json_object_get(json_array_get(rs, i), "Code"));
    if (c && !strcmp(c, "ConditionalCheckFailed")) bits |= 1u << i;
  }
  json_decref(j);
  if (!j) {
    /* some emulators list the reasons only in the message */
    if (strstr(r->message, "ConditionalCheckFailed")) bits = ~0u;
  }
  return bits;
}

/* ---- create ------------------------------------------------------------------------ */

static void on_created(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    int st = map_err(err, r);
    if (st == TT_ECONFLICT || !strcmp(r->code, "TransactionCanceledException")) st = TT_EEXIST;
    done_later(o, st);
    return;
  }
  o->have_out = 1;
  done_later(o, tt_rec_copy(o->k, &o->out, &o->in));
}

static json_t *unique_put(ddb *d, const char *pk, const char *id) {
  return json_pack("{s:{s:s,s:{s:o,s:o},s:s}}", "Put", "TableName", d->table, "Item", "pk", S(pk), "ref",
                   S(id), "ConditionExpression", "attribute_not_exists(pk)");
}
static json_t *unique_del(ddb *d, const char *pk, const char *id) {
  return json_pack("{s:{s:s,s:{s:o},s:s,s:{s:o},s:{s:o}}}", "Delete", "TableName", d->table, "Key", "pk", S(pk),
                   "ConditionExpression", "#r = :id", "ExpressionAttributeNames", "#r", json_string("ref"),
                   "ExpressionAttributeValues", ":id", S(id));
}

/* the front (store.c) made the id, version and times and checked owner and state */
static void d_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_CREATE, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status) {
    done_later(o, o->status);
    return;
  }
  o->have_in = 1;
  if (tt_rec_copy(k, &o->in, rec)) {
    done_later(o, TT_ENOMEM);
    return;
  }
  char *u[MAXU];
  int nu = uniques(k, &o->in, u);
  json_t *item = item_of(k, &o->in);
  if (!nu) {
    call(o, "dynamodb:PutItem",
         json_pack("{s:o,s:s}", "Item", item, "ConditionExpression", "attribute_not_exists(pk)"),
         on_created);
    return;
  }
  json_t *items = json_array();
  json_array_append_new(items, json_pack("{s:{s:s,s:o,s:s}}", "Put", "TableName", o->d->table, "Item",
                                         item, "ConditionExpression", "attribute_not_exists(pk)"));
  for (int i = 0; i < nu; i++) json_array_append_new(items, unique_put(o->d, u[i], o->in.u.id));
  free_strs(u, nu);
  transact(o, items, on_created);
}

/* ---- get ------------------------------------------------------------------------------ */

/* a consistent GetItem of o->id */
static void on_got(void *ud, int err, const tt_aws_resp *r);

static void fetch(dop *o, tt_aws_cb cb) {
  call(o, "dynamodb:GetItem", json_pack("{s:o,s:b}", "Key", key_of(o->k, o->id), "ConsistentRead", 1), cb);
}

/* the stored item of a response (GetItem's Item) into o->out */
static int take_item(dop *o, const tt_aws_resp *r, const char *member) {
  json_t *j = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
  json_t *it = json_object_get(j, member);
  int rc = TT_ENOTFOUND;
  if (it) {
    if (o->have_out) tt_rec_clear(o->k, &o->out);
    o->have_out = 1;
    rc = rec_of(o->k, it, &o->out);
  }
  json_decref(j);
  return rc;
}

static void on_got(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  done_later(o, err ? map_err(err, r) : take_item(o, r, "Item"));
}

static void d_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_GET, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status) {
    done_later(o, o->status);
    return;
  }
  memcpy(o->id, id, TT_ID_SIZE);
  fetch(o, on_got);
}

/* ---- update ------------------------------------------------------------------------------ */

/* UpdateItem of every mutable field (REMOVE of NULL strings) and of
 * gsi2pk, conditional on the version, the owner and (with_uniques) the
 * unique fields being what o->in says */
static json_t *update_spec(dop *o, int with_uniques) {
  const tt_kind_desc *d = tt_kind_get(o->k);
  json_t *names = json_object(), *vals = json_object();
  char set[4096] = "SET ", rem[2048] = "";
  size_t sl = 4, rl = 0;
  int64_t now = tt_aws_now_ms();
#define SET_ADD(nm, vn) sl += (size_t)snprintf(set + sl, sizeof set - sl, "%s%s = %s", sl > 4 ? ", " : "", nm, vn)
#define REM_ADD(nm) rl += (size_t)snprintf(rem + rl, sizeof rem - rl, "%s%s", rl ? ", " : "", nm)
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (f->flags & (TT_F_KEY | TT_F_IMMUTABLE)) continue;
    char nm[16], vn[16];
    snprintf(nm, sizeof nm, "#f%d", i);
    snprintf(vn, sizeof vn, ":f%d", i);
    json_object_set_new(names, nm, json_string(f->name));
    if (!strcmp(f->name, "version")) {
      json_object_set_new(vals, vn, N(o->version + 1));
    } else if (!strcmp(f->name, "updated_at")) {
      json_object_set_new(vals, vn, N(now));
    } else if (f->type == TT_F_STR) {
      const char *v = TT_REC_STR(&o->in, f);
      if (!v) {
        REM_ADD(nm);
        continue;
      }
      json_object_set_new(vals, vn, S(v));
    } else if (f->type == TT_F_INT) {
      json_object_set_new(vals, vn, N(TT_REC_INT(&o->in, f)));
    } else {
      json_object_del(names, nm);
      continue;
    }
    SET_ADD(nm, vn);
  }
  const char *owner = owner_of(o->k, &o->in);
  if (state_field(o->k)) { /* the state index follows the state */
    char *g2 = gsi2pk(o->k, owner, state_of(o->k, &o->in));
    json_object_set_new(names, "#g2", json_string("gsi2pk"));
    json_object_set_new(names, "#g2s", json_string("gsi2sk"));
    json_object_set_new(vals, ":g2", S(g2 ? g2 : ""));
    json_object_set_new(vals, ":g2s", S(o->id));
    SET_ADD("#g2", ":g2");
    SET_ADD("#g2s", ":g2s");
    free(g2);
  }
#undef SET_ADD
#undef REM_ADD
  char expr[6200];
  snprintf(expr, sizeof expr, "%s%s%s", set, rl ? " REMOVE " : "", rem);
  json_object_set_new(names, "#v", json_string("version"));
  json_object_set_new(vals, ":v", N(o->version));
  char cond[1024] = "attribute_exists(pk) AND #v = :v";
  if (owner) {
    json_object_set_new(names, "#o", json_string("owner"));
    json_object_set_new(vals, ":o", S(owner));
    strcat(cond, " AND #o = :o");
  }
  for (int i = 0; with_uniques && i < NUNIQ; i++) {
    if (uniq_defs[i].k != o->k) continue;
    const char *v = TT_REC_STR(&o->in, field(o->k, uniq_defs[i].field));
    char nm[16], vn[16];
    snprintf(nm, sizeof nm, "#u%d", i);
    snprintf(vn, sizeof vn, ":u%d", i);
    json_object_set_new(names, nm, json_string(uniq_defs[i].field));
    size_t cl = strlen(cond);
    if (v) {
      json_object_set_new(vals, vn, S(v));
      snprintf(cond + cl, sizeof cond - cl, " AND %s = %s", nm, vn);
    } else {
      snprintf(cond + cl, sizeof cond - cl, " AND attribute_not_exists(%s)", nm);
    }
  }
  return json_pack("{s:o,s:s,s:s,s:o,s:o}", "Key", key_of(o->k, o->id), "UpdateExpression", expr,
                   "ConditionExpression", cond, "ExpressionAttributeNames", names,
                   "ExpressionAttributeValues", vals);
}

static void on_updated(void *ud, int err, const tt_aws_resp *r);
static void on_moved(void *ud, int err, const tt_aws_resp *r);
static void on_update_reread(void *ud, int err, const tt_aws_resp *r);

static void update_fast(dop *o) {
  json_t *j = update_spec(o, 1);
  json_object_set_new(j, "ReturnValues", json_string("ALL_NEW"));
  json_object_set_new(j, "ReturnValuesOnConditionCheckFailure", json_string("ALL_OLD"));
  call(o, "dynamodb:UpdateItem", j, on_updated);
}

/* a unique field changed: move the unique items with the record, atomically */
static void update_slow(dop *o, const anyrec *old) {
  char *ou[MAXU], *nu[MAXU];
  int no = uniques(o->k, old, ou), nn = uniques(o->k, &o->in, nu);
  json_t *up = update_spec(o, 0);
  json_object_set_new(up, "TableName", json_string(o->d->table));
  json_t *items = json_array();
  json_array_append_new(items, json_pack("{s:o}", "Update", up));
  for (int i = 0; i < no; i++) {
    int keep = 0;
    for (int j = 0; j < nn; j++) keep |= !strcmp(ou[i], nu[j]);
    if (!keep) json_array_append_new(items, unique_del(o->d, ou[i], o->id));
  }
  for (int j = 0; j < nn; j++) {
    int had = 0;
    for (int i = 0; i < no; i++) had |= !strcmp(ou[i], nu[j]);
    if (!had) json_array_append_new(items, unique_put(o->d, nu[j], o->id));
  }
  free_strs(ou, no);
  free_strs(nu, nn);
  transact(o, items, on_moved);
}

/* The fast update's condition failed and o->out holds the stored record
 * (status TT_OK) or status says why not. */
static void update_decide(dop *o, int status) {
  if (status) {
    done_later(o, status);
    return;
  }
  if (version_of(o->k, &o->out) != o->version) {
    done_later(o, TT_ECONFLICT);
    return;
  }
  /* the version is current: immutable fields (the owner) or a unique
   * field differ. Immutable fields come from the stored record. */
  const tt_kind_desc *d = tt_kind_get(o->k);
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (!(f->flags & TT_F_IMMUTABLE)) continue;
    if (f->type == TT_F_ID) {
      memcpy(TT_REC_ID(&o->in, f), TT_REC_ID(&o->out, f), TT_ID_SIZE);
    } else if (f->type == TT_F_INT) {
      TT_REC_INT(&o->in, f) = TT_REC_INT(&o->out, f);
    } else {
      free(TT_REC_STR(&o->in, f));
      const char *v = TT_REC_STR(&o->out, f);
      TT_REC_STR(&o->in, f) = v ? strdup(v) : NULL;
    }
  }
  char *ou[MAXU], *nu[MAXU];
  int no = uniques(o->k, &o->out, ou), nn = uniques(o->k, &o->in, nu);
  int same = no == nn;
  for (int i = 0; same && i < no; i++) same = !strcmp(ou[i], nu[i]);
  free_strs(ou, no);
  free_strs(nu, nn);
  if (same) {
    if (o->retried++) { /* changed again in between: a lost race */
      done_later(o, TT_ECONFLICT);
      return;
    }
    tt_rec_clear(o->k, &o->out);
    o->have_out = 0;
    update_fast(o);
    return;
  }
  anyrec old;
  memcpy(&old, &o->out, sizeof old);
  memset(&o->out, 0, sizeof o->out);
  o->have_out = 0;
  update_slow(o, &old);
  tt_rec_clear(o->k, &old);
}

static void on_update_reread(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  update_decide(o, err ? map_err(err, r) : take_item(o, r, "Item"));
}

static void on_moved(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    int st = map_err(err, r);
    if (!strcmp(r->code, "TransactionCanceledException")) {
      unsigned bits = cancel_bits(r);
      st = (bits & 1) ? TT_ECONFLICT : TT_EEXIST;
    }
    done_later(o, st);
    return;
  }
  fetch(o, on_got); /* the transaction returns nothing: read it back */
}

static void on_updated(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    int st = map_err(err, r);
    if (st != TT_ECONFLICT) {
      done_later(o, st);
      return;
    }
    /* ReturnValuesOnConditionCheckFailure gives the stored item; an
     * endpoint that ignores it (dynalite) costs one consistent read */
    int got = take_item(o, r, "Item");
    if (got == TT_ENOTFOUND)
      fetch(o, on_update_reread);
    else
      update_decide(o, got);
    return;
  }
  done_later(o, take_item(o, r, "Attributes"));
}

static void d_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_UPDATE, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status) {
    done_later(o, o->status);
    return;
  }
  o->have_in = 1;
  if (tt_rec_copy(k, &o->in, rec)) {
    done_later(o, TT_ENOMEM);
    return;
  }
  memcpy(o->id, o->in.u.id, TT_ID_SIZE);
  o->version = version_of(k, &o->in);
  update_fast(o);
}

/* ---- delete ----------------------------------------------------------------------------------- */

static void on_del_reread(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  int st = err ? map_err(err, r) : take_item(o, r, "Item");
  done_later(o, st == TT_OK ? TT_ECONFLICT : st);
}

static void on_deleted(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    int st = map_err(err, r);
    if (!strcmp(r->code, "TransactionCanceledException")) st = TT_ECONFLICT;
    if (st == TT_ECONFLICT) { /* gone, or another version: the stored item tells */
      fetch(o, on_del_reread);
      return;
    }
    done_later(o, st);
    return;
  }
  if (o->have_out) tt_rec_clear(o->k, &o->out);
  o->have_out = 0;
  done_later(o, 0);
}

/* one DeleteItem conditional on version v (0: on existing) */
static void delete_plain(dop *o, int64_t v) {
  json_t *j = json_pack("{s:o}", "Key", key_of(o->k, o->id));
  if (v) {
    json_object_set_new(j, "ConditionExpression", json_string("#v = :v"));
    json_object_set_new(j, "ExpressionAttributeNames", json_pack("{s:s}", "#v", "version"));
    json_object_set_new(j, "ExpressionAttributeValues", json_pack("{s:o}", ":v", N(v)));
  } else {
    json_object_set_new(j, "ConditionExpression", json_string("attribute_exists(pk)"));
  }
  call(o, "dynamodb:DeleteItem", j, on_deleted);
}

static void on_del_read(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  int st = err ? map_err(err, r) : take_item(o, r, "Item");
  if (st) {
    done_later(o, st);
    return;
  }
  int64_t v = version_of(o->k, &o->out);
  if (o->version && v != o->version) {
    done_later(o, TT_ECONFLICT);
    return;
  }
  char *u[MAXU];
  int nu = uniques(o->k, &o->out, u);
  if (!nu) {
    delete_plain(o, v);
    return;
  }
  json_t *items = json_array();
  json_array_append_new(
      items, json_pack("{s:{s:s,s:o,s:s,s:{s:s},s:{s:o}}}", "Delete", "TableName", o->d->table, "Key",
                       key_of(o->k, o->id), "ConditionExpression", "#v = :v",
                       "ExpressionAttributeNames", "#v", "version", "ExpressionAttributeValues", ":v",
                       N(v)));
  for (int i = 0; i < nu; i++) json_array_append_new(items, unique_del(o->d, u[i], o->id));
  free_strs(u, nu);
  transact(o, items, on_deleted);
}

static void d_del(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_DEL, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status) {
    done_later(o, o->status);
    return;
  }
  memcpy(o->id, id, TT_ID_SIZE);
  o->version = version;
  if (!kind_has_uniques(k)) {
    delete_plain(o, version);
    return;
  }
  /* a kind with unique items: read them, then delete all at once */
  fetch(o, on_del_read);
}

/* ---- list ---------------------------------------------------------------------------------------- */

static void list_page(dop *o);

static void on_listed(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *items = json_object_get(j, "Items");
  for (size_t i = 0; i < json_array_size(items); i++) {
    if (o->n == o->limit) {
      /* one more than a page exists: the page ends at the last one taken */
      snprintf(o->next, sizeof o->next, "%s", (const char *)rec_at(o, o->n - 1)); /* id comes first */
      json_decref(j);
      done_later(o, 0);
      return;
    }
    int rc = rec_of(o->k, json_array_get(items, i), rec_at(o, o->n));
    o->n++;
    if (rc) {
      json_decref(j);
      done_later(o, rc);
      return;
    }
  }
  json_t *lek = json_object_get(j, "LastEvaluatedKey");
  const char *sk = json_string_value(json_object_get(json_object_get(lek, o->state ? "gsi2sk" : "gsi1sk"), "S"));
  if (sk) { /* the 1 MB page limit: go on from there */
    snprintf(o->cursor, sizeof o->cursor, "%s", sk);
    json_decref(j);
    list_page(o);
    return;
  }
  json_decref(j);
  done_later(o, 0);
}

static void list_page(dop *o) {
  const char *owner = o->owner[0] ? o->owner : NULL;
  char *g = o->state ? gsi2pk(o->k, owner, o->state) : gsi1pk(o->k, owner);
  if (!g) {
    done_later(o, TT_ENOMEM);
    return;
  }
  json_t *names = json_pack("{s:s}", "#p", o->state ? "gsi2pk" : "gsi1pk");
  json_t *vals = json_pack("{s:o}", ":p", S(g));
  free(g);
  char kc[64] = "#p = :p";
  if (o->cursor[0]) {
    strcat(kc, " AND #k < :c");
    json_object_set_new(names, "#k", json_string(o->state ? "gsi2sk" : "gsi1sk"));
    json_object_set_new(vals, ":c", S(o->cursor));
  }
  json_t *j = json_pack("{s:s,s:s,s:b,s:I,s:o,s:o}", "IndexName", o->state ? "gsi2" : "gsi1",
                        "KeyConditionExpression", kc, "ScanIndexForward", 0, "Limit",
                        (json_int_t)(o->limit - o->n + 1), "ExpressionAttributeNames", names,
                        "ExpressionAttributeValues", vals);
  call(o, "dynamodb:Query", j, on_listed);
}

/* the front checked the query: limit 1..1000, owner for owned kinds only */
static void d_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb, void *ud) {
  dop *o = op_new(s, O_LIST, k);
  o->lcb = cb;
  o->ud = ud;
  if (o->status || (q->state && !state_field(k))) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->limit = q->limit;
  if (q->owner) snprintf(o->owner, sizeof o->owner, "%s", q->owner);
  if (q->cursor) snprintf(o->cursor, sizeof o->cursor, "%s", q->cursor);
  if (q->state && !(o->state = strdup(q->state))) {
    done_later(o, TT_ENOMEM);
    return;
  }
  o->recs = calloc((size_t)o->limit, tt_kind_get(k)->size);
  if (!o->recs) {
    done_later(o, TT_ENOMEM);
    return;
  }
  list_page(o);
}

/* ---- unique lookups ------------------------------------------------------------------------------- */

static void on_ref(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  const char *ref = json_string_value(json_object_get(json_object_get(json_object_get(j, "Item"), "ref"), "S"));
  if (!ref || !tt_id_valid(ref)) {
    json_decref(j);
    done_later(o, TT_ENOTFOUND);
    return;
  }
  snprintf(o->id, sizeof o->id, "%s", ref);
  json_decref(j);
  fetch(o, on_got);
}

static void by_unique(dop *o, const char *pk) {
  call(o, "dynamodb:GetItem", json_pack("{s:{s:o},s:b}", "Key", "pk", S(pk), "ConsistentRead", 1),
       on_ref);
}

static void d_by_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_BY_HASH, TT_KIND_USER);
  o->cb = cb;
  o->ud = ud;
  if (strlen(hash) > 512) {
    done_later(o, TT_EINVAL);
    return;
  }
  char pk[600];
  snprintf(pk, sizeof pk, "K#%s", hash);
  by_unique(o, pk);
}

static void d_by_idem(tt_store *s, const char *owner, const char *key, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_BY_IDEM, TT_KIND_JOB);
  o->cb = cb;
  o->ud = ud;
  if (strlen(key) > 512) {
    done_later(o, TT_EINVAL);
    return;
  }
  char pk[700];
  snprintf(pk, sizeof pk, "X#%s#%s", owner, key);
  by_unique(o, pk);
}

/* ---- open / close ------------------------------------------------------------------------------------ */

static void ddb_closed(uv_handle_t *h) {
  ddb *d = h->data;
  tt_store_close_cb cb = d->ccb;
  void *ud = d->cud;
  tt_aws_release(d->aws);
  free(d);
  if (cb) cb(ud);
}

static void ddb_maybe_closed(ddb *d) {
  if (d->closing != 1 || d->busy) return;
  d->closing = 2;
  uv_close((uv_handle_t *)&d->t, ddb_closed);
}

static void d_close(tt_store *s, tt_store_close_cb cb, void *ud) {
  ddb *d = (ddb *)s;
  d->ccb = cb;
  d->cud = ud;
  d->closing = 1;
  ddb_maybe_closed(d);
}

static const tt_store_ops ddb_ops = {
    "dynamodb", d_create, d_get, d_update, d_del, d_list, d_by_hash, d_by_idem, d_close,
};

/* the table name of a dynamodb:// URL (also used by tintype aws init) */
int tt_store_dynamodb_table(const char *url, char *out, size_t n) {
  if (strncmp(url, "dynamodb://", 11)) return TT_EINVAL;
  const char *rest = url + 11;
  if (*rest && *rest != '?') return TT_EINVAL;
  char prefix[200] = "";
  tt_aws_url_param(url, "prefix", prefix, sizeof prefix);
  for (const char *c = prefix; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_' || *c == '-' || *c == '.'))
      return TT_EINVAL;
  int k = snprintf(out, n, "%srecords", prefix);
  return k < 0 || (size_t)k >= n ? TT_EINVAL : TT_OK;
}

int tt_store_dynamodb_open(uv_loop_t *loop, const char *url, tt_store **out) {
  *out = NULL;
  ddb *d = calloc(1, sizeof *d);
  if (!d) return TT_ENOMEM;
  if (tt_store_dynamodb_table(url, d->table, sizeof d->table)) {
    free(d);
    return TT_EINVAL;
  }
  d->aws = tt_aws_acquire(loop);
  if (!d->aws) {
    free(d);
    return TT_ENOMEM;
  }
  d->base.ops = &ddb_ops;
  d->base.loop = loop;
  uv_timer_init(loop, &d->t);
  d->t.data = d;
  *out = &d->base;
  return TT_OK;
}
