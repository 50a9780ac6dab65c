/* dynamodb.c — the records seam (include/tintype/store.h) on Amazon
 * DynamoDB, through the client of src/aws/.
 *
 * dynamodb://?prefix=P: one table, "Precords" (single-table design, argued
 * in docs/ARCHITECTURE.md, "AWS backends"):
 *   records   pk "U#id" | "I#id" | "J#id", one attribute per record field
 *             (record.h's tables), "version" the optimistic lock;
 *             gsi1pk "U" | "I#owner" | "J#owner" and gsi1sk = id on the
 *             index "gsi1" (projection ALL) for listings: ids are UUIDv7,
 *             so a descending Query is newest first, and the cursor is the
 *             last id returned (gsi1sk < cursor).
 *   uniques   pk "E#email" | "K#api_key_hash" | "X#owner#idempotency_key",
 *             attribute "ref" = the record's id; written in the same
 *             TransactWriteItems as the record, each conditional on
 *             attribute_not_exists(pk), so a taken email is TT_EEXIST.
 * Reads by id and by unique key are strongly consistent GetItems (a user
 * signs up, then authenticates at once: read-your-writes). Listings read
 * the index, which is eventually consistent (a record can appear in a list
 * a moment after its create returned) — as DynamoDB's GSIs are.
 *
 * update is one UpdateItem (SET every mutable field, version + 1) whose
 * condition also requires the unique fields unchanged; when one did change
 * (a user's new email), a transaction moves the unique items. ?create=1 is
 * not needed here: `tintype aws init` creates the table (src/aws/init.c). */
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

enum { O_CREATE, O_GET, O_UPDATE, O_DEL, O_LIST, O_BY_HASH, O_BY_IDEM, O_NOOP };

typedef union anyrec {
  tt_user u;
  tt_image i;
  tt_job j;
} anyrec;

typedef struct dop {
  ddb *d;
  int what, stage, status;
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
  anyrec *recs;
  int n;
  char next[TT_ID_SIZE];
  char *a, *b;
  json_t *old; /* the stored item (update/delete with uniques) */
} dop;

static const char kind_char[] = {'U', 'I', 'J'};

/* ---- lifecycle -------------------------------------------------------------- */

static void ddb_maybe_closed(ddb *d);

static void op_closed(uv_handle_t *h) {
  dop *o = h->data;
  ddb *d = o->d;
  free(o);
  d->busy--;
  ddb_maybe_closed(d);
}

static void finish(dop *o) {
  if (o->what == O_LIST) {
    o->lcb(o->ud, o->status, o->status ? NULL : o->recs, o->status ? 0 : (size_t)o->n,
           !o->status && o->next[0] ? o->next : NULL);
    for (int i = 0; i < o->n; i++) tt_rec_clear(o->k, &o->recs[i]);
    free(o->recs);
  } else if (o->cb) {
    o->cb(o->ud, o->status, !o->status && o->have_out ? &o->out : NULL);
  }
  if (o->have_in) tt_rec_clear(o->k, &o->in);
  if (o->have_out) tt_rec_clear(o->k, &o->out);
  free(o->state);
  free(o->a);
  free(o->b);
  json_decref(o->old);
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
  o->k = (unsigned)k <= TT_KIND_JOB ? k : TT_KIND_USER;
  if (o->k != k) o->status = TT_EINVAL;
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
  if (!strcmp(r->code, "ValidationException") || !strcmp(r->code, "SerializationException"))
    return TT_EINVAL;
  return TT_EIO;
}

static void call(dop *o, const char *action, json_t *j, tt_aws_cb cb) {
  json_object_set_new(j, "TableName", json_string(o->d->table));
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

/* a TransactWriteItems: each item names its table itself */
static void transact(dop *o, json_t *items, tt_aws_cb cb) {
  json_t *j = json_pack("{s:o}", "TransactItems", items);
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!body) {
    done_later(o, TT_ENOMEM);
    return;
  }
  tt_aws_call c = {.svc = TT_AWS_DYNAMODB,
                   .action = "dynamodb:TransactWriteItems",
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = strlen(body)};
  tt_aws_req *r = tt_aws_call_start(o->d->aws, &c, cb, o);
  free(body);
  if (!r) done_later(o, TT_ENOMEM);
}

/* ---- items <-> records --------------------------------------------------------- */

static json_t *S(const char *s) { return json_pack("{s:s}", "S", s); }
static json_t *N(int64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)v);
  return json_pack("{s:s}", "N", b);
}

static json_t *key_of(tt_kind k, const char *id) {
  char pk[64];
  snprintf(pk, sizeof pk, "%c#%s", kind_char[k], id);
  return json_pack("{s:o}", "pk", S(pk));
}

static const char *owner_of(tt_kind k, const anyrec *r) {
  return k == TT_KIND_IMAGE ? r->i.owner : k == TT_KIND_JOB ? r->j.owner : NULL;
}

/* the unique items of a record: up to 2 pk strings (malloc) */
static int uniques(tt_kind k, const anyrec *r, char *out[2]) {
  out[0] = out[1] = NULL;
  int n = 0;
  if (k == TT_KIND_USER) {
    if (r->u.email && asprintf(&out[n], "E#%s", r->u.email) > 0) n++;
    if (r->u.api_key_hash && asprintf(&out[n], "K#%s", r->u.api_key_hash) > 0) n++;
  } else if (k == TT_KIND_JOB && r->j.idempotency_key) {
    if (asprintf(&out[n], "X#%s#%s", r->j.owner, r->j.idempotency_key) > 0) n++;
  }
  return n;
}

static json_t *item_of(tt_kind k, const anyrec *r) {
  const tt_kind_desc *d = tt_kind_get(k);
  json_t *it = key_of(k, r->u.id);
  char g[64];
  if (d->has_owner)
    snprintf(g, sizeof g, "%c#%s", kind_char[k], owner_of(k, r));
  else
    snprintf(g, sizeof g, "%c", kind_char[k]);
  json_object_set_new(it, "gsi1pk", S(g));
  json_object_set_new(it, "gsi1sk", S(r->u.id));
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

static int rec_of(tt_kind k, json_t *it, anyrec *r) {
  const tt_kind_desc *d = tt_kind_get(k);
  memset(r, 0, sizeof *r);
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

static int64_t item_version(json_t *it) {
  const char *v = json_string_value(json_object_get(json_object_get(it, "version"), "N"));
  return v ? strtoll(v, NULL, 10) : -1;
}

static int64_t *version_ptr(tt_kind k, anyrec *r) {
  return k == TT_KIND_USER ? &r->u.version : k == TT_KIND_IMAGE ? &r->i.version : &r->j.version;
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
  if (tt_rec_copy(o->k, &o->out, &o->in)) {
    done_later(o, TT_ENOMEM);
    return;
  }
  o->have_out = 1;
  done_later(o, 0);
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

static void d_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_CREATE, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status || !rec) {
    done_later(o, TT_EINVAL);
    return;
  }
  if (tt_rec_copy(k, &o->in, rec)) {
    o->have_in = 1;
    done_later(o, TT_ENOMEM);
    return;
  }
  o->have_in = 1;
  char *id = o->in.u.id;
  if (id[0] && !tt_id_valid(id)) {
    done_later(o, TT_EINVAL);
    return;
  }
  if (!id[0]) tt_id_new(id);
  const tt_kind_desc *d = tt_kind_get(k);
  if (d->has_owner) {
    const char *state = k == TT_KIND_IMAGE ? o->in.i.state : o->in.j.state;
    if (!tt_id_valid(owner_of(k, &o->in)) || !state || !state[0]) {
      done_later(o, TT_EINVAL);
      return;
    }
  }
  int64_t now = tt_aws_now_ms();
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (!strcmp(f->name, "version")) TT_REC_INT(&o->in, f) = 1;
    if (!strcmp(f->name, "updated_at")) TT_REC_INT(&o->in, f) = now;
    if (!strcmp(f->name, "created_at") && !TT_REC_INT(&o->in, f)) TT_REC_INT(&o->in, f) = now;
  }
  char *u[2];
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
  for (int i = 0; i < nu; i++) {
    json_array_append_new(items, unique_put(o->d, u[i], id));
    free(u[i]);
  }
  transact(o, items, on_created);
}

/* ---- get ------------------------------------------------------------------------------ */

static void on_got(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *it = json_object_get(j, "Item");
  if (!it) {
    json_decref(j);
    done_later(o, TT_ENOTFOUND);
    return;
  }
  int rc = rec_of(o->k, it, &o->out);
  o->have_out = 1;
  json_decref(j);
  done_later(o, rc);
}

static void get_item(dop *o, const char *id) {
  call(o, "dynamodb:GetItem",
       json_pack("{s:o,s:b}", "Key", key_of(o->k, id), "ConsistentRead", 1), on_got);
}

static void d_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_GET, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status) {
    done_later(o, o->status);
    return;
  }
  if (!id || !tt_id_valid(id)) {
    done_later(o, TT_ENOTFOUND);
    return;
  }
  get_item(o, id);
}

/* ---- update ------------------------------------------------------------------------------ */

/* UpdateItem SET of every mutable field (REMOVE of NULL strings) */
static json_t *update_spec(dop *o, int with_uniques, json_t **names_out, json_t **vals_out) {
  const tt_kind_desc *d = tt_kind_get(o->k);
  json_t *names = json_object(), *vals = json_object();
  char set[2048] = "SET ", rem[1024] = "";
  size_t sl = 4, rl = 0;
  int64_t now = tt_aws_now_ms();
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (f->flags & (TT_F_KEY | TT_F_IMMUTABLE)) continue;
    char nm[48], vn[48];
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
        rl += (size_t)snprintf(rem + rl, sizeof rem - rl, "%s%s", rl ? ", " : "", nm);
        continue;
      }
      json_object_set_new(vals, vn, S(v));
    } else if (f->type == TT_F_INT) {
      json_object_set_new(vals, vn, N(TT_REC_INT(&o->in, f)));
    } else {
      continue;
    }
    sl += (size_t)snprintf(set + sl, sizeof set - sl, "%s%s = %s", sl > 4 ? ", " : "", nm, vn);
  }
  char expr[3200];
  snprintf(expr, sizeof expr, "%s%s%s", set, rl ? " REMOVE " : "", rem);
  json_object_set_new(names, "#v", json_string("version"));
  json_object_set_new(vals, ":v", N(o->version));
  char cond[512] = "attribute_exists(pk) AND #v = :v";
  if (with_uniques) {
    /* the fast path holds only while the unique fields are unchanged */
    const char *uf[2] = {NULL, NULL};
    const char *uv[2] = {NULL, NULL};
    if (o->k == TT_KIND_USER) {
      uf[0] = "email", uv[0] = o->in.u.email;
      uf[1] = "api_key_hash", uv[1] = o->in.u.api_key_hash;
    } else if (o->k == TT_KIND_JOB) {
      uf[0] = "idempotency_key", uv[0] = o->in.j.idempotency_key;
    }
    for (int i = 0; i < 2 && uf[i]; i++) {
      char nm[8], vn[8];
      snprintf(nm, sizeof nm, "#u%d", i);
      snprintf(vn, sizeof vn, ":u%d", i);
      json_object_set_new(names, nm, json_string(uf[i]));
      size_t cl = strlen(cond);
      if (uv[i]) {
        json_object_set_new(vals, vn, S(uv[i]));
        snprintf(cond + cl, sizeof cond - cl, " AND %s = %s", nm, vn);
      } else {
        snprintf(cond + cl, sizeof cond - cl, " AND attribute_not_exists(%s)", nm);
      }
    }
  }
  *names_out = names;
  *vals_out = vals;
  return json_pack("{s:o,s:s,s:s}", "Key", key_of(o->k, o->id), "UpdateExpression", expr,
                   "ConditionExpression", cond);
}

static void on_updated(void *ud, int err, const tt_aws_resp *r);
static void on_moved(void *ud, int err, const tt_aws_resp *r);

/* a unique field changed: move the unique items with the record, atomically */
static void update_slow(dop *o) {
  anyrec old;
  if (rec_of(o->k, o->old, &old)) {
    tt_rec_clear(o->k, &old);
    done_later(o, TT_ENOMEM);
    return;
  }
  /* immutable fields come from the stored record */
  snprintf(o->in.u.id, TT_ID_SIZE, "%s", old.u.id);
  if (o->k == TT_KIND_JOB) snprintf(o->in.j.owner, TT_ID_SIZE, "%s", old.j.owner);
  char *ou[2], *nu[2];
  int no = uniques(o->k, &old, ou), nn = uniques(o->k, &o->in, nu);
  json_t *names, *vals;
  json_t *up = update_spec(o, 0, &names, &vals);
  json_object_set_new(up, "TableName", json_string(o->d->table));
  json_object_set_new(up, "ExpressionAttributeNames", names);
  json_object_set_new(up, "ExpressionAttributeValues", vals);
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
  for (int i = 0; i < no; i++) free(ou[i]);
  for (int j = 0; j < nn; j++) free(nu[j]);
  tt_rec_clear(o->k, &old);
  transact(o, items, on_moved);
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
  get_item(o, o->id); /* the transaction returns nothing: read it back */
}

static void on_updated(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  json_t *j = r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
  if (err) {
    int st = map_err(err, r);
    if (st == TT_ECONFLICT) {
      json_t *it = json_object_get(j, "Item"); /* ReturnValuesOnConditionCheckFailure */
      if (!it) {
        st = TT_ENOTFOUND;
      } else if (item_version(it) == o->version) {
        o->old = json_incref(it);
        json_decref(j);
        update_slow(o);
        return;
      }
    }
    json_decref(j);
    done_later(o, st);
    return;
  }
  int rc = rec_of(o->k, json_object_get(j, "Attributes"), &o->out);
  o->have_out = 1;
  json_decref(j);
  done_later(o, rc);
}

static void d_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_UPDATE, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status || !rec) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->have_in = 1;
  if (tt_rec_copy(k, &o->in, rec)) {
    done_later(o, TT_ENOMEM);
    return;
  }
  if (!tt_id_valid(o->in.u.id)) {
    done_later(o, TT_ENOTFOUND);
    return;
  }
  memcpy(o->id, o->in.u.id, TT_ID_SIZE);
  o->version = *version_ptr(k, &o->in);
  const char *state = k == TT_KIND_IMAGE ? o->in.i.state : k == TT_KIND_JOB ? o->in.j.state : "x";
  if (!state || !state[0]) {
    done_later(o, TT_EINVAL);
    return;
  }
  json_t *names, *vals;
  json_t *j = update_spec(o, k != TT_KIND_IMAGE, &names, &vals);
  json_object_set_new(j, "ExpressionAttributeNames", names);
  json_object_set_new(j, "ExpressionAttributeValues", vals);
  json_object_set_new(j, "ReturnValues", json_string("ALL_NEW"));
  json_object_set_new(j, "ReturnValuesOnConditionCheckFailure", json_string("ALL_OLD"));
  call(o, "dynamodb:UpdateItem", j, on_updated);
}

/* ---- delete ----------------------------------------------------------------------------------- */

static void on_deleted(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    int st = map_err(err, r);
    if (st == TT_ECONFLICT) {
      json_t *j = json_loadb(r->body, r->len, 0, NULL);
      if (!json_object_get(j, "Item")) st = TT_ENOTFOUND;
      json_decref(j);
    }
    if (!strcmp(r->code, "TransactionCanceledException")) st = TT_ECONFLICT;
    done_later(o, st);
    return;
  }
  done_later(o, 0);
}

static void on_del_read(void *ud, int err, const tt_aws_resp *r) {
  dop *o = ud;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *it = json_object_get(j, "Item");
  if (!it) {
    json_decref(j);
    done_later(o, TT_ENOTFOUND);
    return;
  }
  int64_t v = item_version(it);
  if (o->version && v != o->version) {
    json_decref(j);
    done_later(o, TT_ECONFLICT);
    return;
  }
  anyrec old;
  int rc = rec_of(o->k, it, &old);
  json_decref(j);
  if (rc) {
    tt_rec_clear(o->k, &old);
    done_later(o, rc);
    return;
  }
  char *u[2];
  int nu = uniques(o->k, &old, u);
  tt_rec_clear(o->k, &old);
  json_t *items = json_array();
  json_array_append_new(
      items, json_pack("{s:{s:s,s:o,s:s,s:{s:s},s:{s:o}}}", "Delete", "TableName", o->d->table, "Key",
                       key_of(o->k, o->id), "ConditionExpression", "#v = :v",
                       "ExpressionAttributeNames", "#v", "version", "ExpressionAttributeValues", ":v",
                       N(v)));
  for (int i = 0; i < nu; i++) {
    json_array_append_new(items, unique_del(o->d, u[i], o->id));
    free(u[i]);
  }
  transact(o, items, on_deleted);
}

static void d_del(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_DEL, k);
  o->cb = cb;
  o->ud = ud;
  if (o->status || version < 0) {
    done_later(o, TT_EINVAL);
    return;
  }
  if (!id || !tt_id_valid(id)) {
    done_later(o, TT_ENOTFOUND);
    return;
  }
  memcpy(o->id, id, TT_ID_SIZE);
  o->version = version;
  if (k == TT_KIND_IMAGE) {
    json_t *j = json_pack("{s:o,s:s}", "Key", key_of(k, id), "ReturnValuesOnConditionCheckFailure",
                          "ALL_OLD");
    if (version) {
      json_object_set_new(j, "ConditionExpression", json_string("#v = :v"));
      json_object_set_new(j, "ExpressionAttributeNames", json_pack("{s:s}", "#v", "version"));
      json_object_set_new(j, "ExpressionAttributeValues", json_pack("{s:o}", ":v", N(version)));
    } else {
      json_object_set_new(j, "ConditionExpression", json_string("attribute_exists(pk)"));
    }
    call(o, "dynamodb:DeleteItem", j, on_deleted);
    return;
  }
  /* users and jobs own unique items: read them, then delete all at once */
  call(o, "dynamodb:GetItem", json_pack("{s:o,s:b}", "Key", key_of(k, id), "ConsistentRead", 1),
       on_del_read);
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
      snprintf(o->next, sizeof o->next, "%s", o->recs[o->n - 1].u.id);
      json_decref(j);
      done_later(o, 0);
      return;
    }
    if (rec_of(o->k, json_array_get(items, i), &o->recs[o->n])) {
      tt_rec_clear(o->k, &o->recs[o->n]);
      json_decref(j);
      done_later(o, TT_ENOMEM);
      return;
    }
    o->n++;
  }
  json_t *lek = json_object_get(j, "LastEvaluatedKey");
  const char *sk = json_string_value(json_object_get(json_object_get(lek, "gsi1sk"), "S"));
  if (sk) {
    snprintf(o->cursor, sizeof o->cursor, "%s", sk);
    json_decref(j);
    list_page(o);
    return;
  }
  json_decref(j);
  done_later(o, 0);
}

static void list_page(dop *o) {
  const tt_kind_desc *d = tt_kind_get(o->k);
  char g[64];
  if (d->has_owner)
    snprintf(g, sizeof g, "%c#%s", kind_char[o->k], o->owner);
  else
    snprintf(g, sizeof g, "%c", kind_char[o->k]);
  json_t *names = json_pack("{s:s}", "#p", "gsi1pk");
  json_t *vals = json_pack("{s:o}", ":p", S(g));
  char kc[64] = "#p = :p";
  if (o->cursor[0]) {
    strcat(kc, " AND #k < :c");
    json_object_set_new(names, "#k", json_string("gsi1sk"));
    json_object_set_new(vals, ":c", S(o->cursor));
  }
  json_t *j = json_pack("{s:s,s:s,s:b,s:I}", "IndexName", "gsi1", "KeyConditionExpression", kc,
                        "ScanIndexForward", 0, "Limit", (json_int_t)(o->limit - o->n + 1));
  if (o->state) {
    json_object_set_new(names, "#s", json_string("state"));
    json_object_set_new(vals, ":s", S(o->state));
    json_object_set_new(j, "FilterExpression", json_string("#s = :s"));
  }
  json_object_set_new(j, "ExpressionAttributeNames", names);
  json_object_set_new(j, "ExpressionAttributeValues", vals);
  call(o, "dynamodb:Query", j, on_listed);
}

static void d_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb, void *ud) {
  dop *o = op_new(s, O_LIST, k);
  o->lcb = cb;
  o->ud = ud;
  const tt_kind_desc *d = tt_kind_get(o->k);
  if (o->status || !q || q->limit < 0 || (d->has_owner && (!q->owner || !tt_id_valid(q->owner))) ||
      (q->cursor && !tt_id_valid(q->cursor))) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->limit = q->limit == 0 ? TT_STORE_LIST_DEFAULT : q->limit > TT_STORE_LIST_MAX ? TT_STORE_LIST_MAX : q->limit;
  if (d->has_owner) snprintf(o->owner, sizeof o->owner, "%s", q->owner);
  if (q->cursor) snprintf(o->cursor, sizeof o->cursor, "%s", q->cursor);
  if (q->state && !(o->state = strdup(q->state))) {
    done_later(o, TT_ENOMEM);
    return;
  }
  o->recs = calloc((size_t)o->limit, sizeof *o->recs);
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
  get_item(o, o->id);
}

static void by_unique(dop *o, const char *pk) {
  call(o, "dynamodb:GetItem", json_pack("{s:{s:o},s:b}", "Key", "pk", S(pk), "ConsistentRead", 1),
       on_ref);
}

static void d_by_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  dop *o = op_new(s, O_BY_HASH, TT_KIND_USER);
  o->cb = cb;
  o->ud = ud;
  if (!hash || !hash[0] || strlen(hash) > 512) {
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
  if (!owner || !tt_id_valid(owner) || !key || !key[0] || strlen(key) > 512) {
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
