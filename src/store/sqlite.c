/* sqlite.c — the SQLite store backend (sqlite://PATH), filling
 * tt_store_ops from include/tintype/store.h.
 *
 * Statements are generated once from the field tables in record.h and
 * prepared once per pooled connection (sqlite_db.c). Every call becomes a
 * tt_dbop: it copies its inputs, runs on libuv's thread pool, and calls the
 * user back on the loop with records that live in the op and are freed
 * right after the callback. Conditional writes are a single statement
 * (UPDATE ... WHERE id=? AND version=? RETURNING ...), so they are atomic
 * across threads and processes without an explicit transaction. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "store/sqlite_db.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/store.h"

#define NKINDS 3

typedef struct sq_store {
  tt_store base;
  tt_db *db;
  int closing;
  tt_store_close_cb close_cb;
  void *close_ud;
} sq_store;

/* ---- generated SQL ----------------------------------------------------- */

static struct {
  char *insert, *get, *update, *del;
  char *list[4]; /* bit 0: state given, bit 1: cursor given */
} sql[NKINDS];
static char *sql_by_hash, *sql_by_idem;
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;
static int sql_ok;

static char *cols_of(const tt_kind_desc *d) {
  size_t n = 0;
  for (int i = 0; i < d->nfields; i++) n += strlen(d->fields[i].name) + 1;
  char *s = malloc(n + 1), *p = s;
  if (!s) return NULL;
  for (int i = 0; i < d->nfields; i++) p += sprintf(p, "%s%s", i ? "," : "", d->fields[i].name);
  return s;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *s = NULL;
  if (vasprintf(&s, f, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

static void sql_build(void) {
  for (int k = 0; k < NKINDS; k++) {
    const tt_kind_desc *d = tt_kind_get((tt_kind)k);
    char *cols = cols_of(d);
    char qs[256] = "", sets[1024] = "";
    size_t ql = 0, sl = 0;
    if (!cols) return;
    for (int i = 0; i < d->nfields; i++) {
      const tt_field *f = &d->fields[i];
      ql += (size_t)snprintf(qs + ql, sizeof qs - ql, "%s?", i ? "," : "");
      if (!(f->flags & (TT_F_IMMUTABLE | TT_F_AUTO)))
        sl += (size_t)snprintf(sets + sl, sizeof sets - sl, "%s=?,", f->name);
    }
    sql[k].insert = fmt("INSERT INTO %s(%s) VALUES(%s)", d->table, cols, qs);
    sql[k].get = fmt("SELECT %s FROM %s WHERE id=?", cols, d->table);
    sql[k].update = fmt("UPDATE %s SET %supdated_at=?,version=version+1 WHERE id=? AND version=? "
                        "RETURNING %s",
                        d->table, sets, cols);
    sql[k].del = fmt("DELETE FROM %s WHERE id=?1 AND (?2=0 OR version=?2)", d->table);
    for (int v = 0; v < 4; v++)
      sql[k].list[v] = fmt("SELECT %s FROM %s WHERE %s%s%s 1 ORDER BY id DESC LIMIT ?4", cols,
                           d->table, d->has_owner ? "owner=?1 AND " : "",
                           (v & 1) ? "state=?2 AND " : "", (v & 2) ? "id<?3 AND " : "");
    if (k == TT_KIND_USER) sql_by_hash = fmt("SELECT %s FROM users WHERE api_key_hash=?", cols);
    if (k == TT_KIND_JOB)
      sql_by_idem = fmt("SELECT %s FROM jobs WHERE owner=? AND idempotency_key=?", cols);
    free(cols);
    if (!sql[k].insert || !sql[k].get || !sql[k].update || !sql[k].del) return;
    for (int v = 0; v < 4; v++)
      if (!sql[k].list[v]) return;
  }
  sql_ok = sql_by_hash && sql_by_idem;
}

/* ---- ops ---------------------------------------------------------------- */

enum { OP_CREATE, OP_GET, OP_UPDATE, OP_DELETE, OP_LIST, OP_BY_HASH, OP_BY_IDEM, OP_NOOP };

typedef union anyrec {
  tt_user u;
  tt_image i;
  tt_job j;
} anyrec;

typedef struct sq_op {
  tt_dbop base;
  sq_store *s;
  int what;
  tt_kind kind;
  anyrec rec; /* input of create/update; output of every single-record call */
  int have_rec;
  char id[TT_ID_SIZE], cursor[TT_ID_SIZE], next[TT_ID_SIZE];
  int64_t version;
  char *a, *b; /* hash | owner + idempotency key | owner + state */
  int limit;
  void *recs; /* list output */
  size_t n;
  tt_store_cb cb;
  tt_store_list_cb lcb;
  void *ud;
} sq_op;

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
  return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* binds fields selected by mask-out flags, from column index *ix on */
static void bind_fields(sqlite3_stmt *st, const tt_kind_desc *d, const void *rec, int skip,
                        int *ix) {
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    if (f->flags & skip) continue;
    int c = (*ix)++;
    switch (f->type) {
    case TT_F_ID: bind_text(st, c, TT_REC_ID(rec, f)); break;
    case TT_F_STR: bind_text(st, c, TT_REC_STR(rec, f)); break;
    case TT_F_INT: sqlite3_bind_int64(st, c, TT_REC_INT(rec, f)); break;
    }
  }
}

/* row -> rec (rec must be zeroed); TT_OK or TT_ENOMEM */
static int read_row(sqlite3_stmt *st, const tt_kind_desc *d, void *rec) {
  for (int i = 0; i < d->nfields; i++) {
    const tt_field *f = &d->fields[i];
    const char *t = (const char *)sqlite3_column_text(st, i);
    switch (f->type) {
    case TT_F_ID: snprintf(TT_REC_ID(rec, f), TT_ID_SIZE, "%s", t ? t : ""); break;
    case TT_F_STR:
      if (t && !(TT_REC_STR(rec, f) = strdup(t))) return TT_ENOMEM;
      break;
    case TT_F_INT: TT_REC_INT(rec, f) = sqlite3_column_int64(st, i); break;
    }
  }
  return TT_OK;
}

/* steps a single-row query into op->rec: TT_OK, TT_ENOTFOUND or an error */
static int fetch_one(sq_op *op, tt_dbc *c, sqlite3_stmt *st) {
  const tt_kind_desc *d = tt_kind_get(op->kind);
  int rc = sqlite3_step(st);
  int err;
  if (rc == SQLITE_ROW) {
    if (op->have_rec) tt_rec_clear(op->kind, &op->rec);
    memset(&op->rec, 0, sizeof op->rec);
    op->have_rec = 1;
    err = read_row(st, d, &op->rec);
  } else {
    err = rc == SQLITE_DONE ? TT_ENOTFOUND : tt_db_err(c, rc);
  }
  sqlite3_reset(st);
  return err;
}

static void work(tt_dbop *base, tt_dbc *c) {
  sq_op *op = (sq_op *)base;
  const tt_kind_desc *d = tt_kind_get(op->kind);
  int k = (int)op->kind, rc, ix = 1;
  sqlite3_stmt *st;
  switch (op->what) {
  case OP_NOOP: return;
  case OP_CREATE:
    if (!(st = tt_db_stmt(c, sql[k].insert))) break;
    bind_fields(st, d, &op->rec, 0, &ix);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    op->base.status = rc == SQLITE_DONE ? TT_OK : tt_db_err(c, rc);
    return;
  case OP_GET:
    if (!(st = tt_db_stmt(c, sql[k].get))) break;
    bind_text(st, 1, op->id);
    op->base.status = fetch_one(op, c, st);
    return;
  case OP_UPDATE: {
    if (!(st = tt_db_stmt(c, sql[k].update))) break;
    bind_fields(st, d, &op->rec, TT_F_IMMUTABLE | TT_F_AUTO, &ix);
    sqlite3_bind_int64(st, ix++, tt_now_ms());
    bind_text(st, ix++, op->id);
    sqlite3_bind_int64(st, ix++, op->version);
    int err = fetch_one(op, c, st);
    if (err == TT_ENOTFOUND) {
      /* nothing matched: gone, or a newer version */
      if (!(st = tt_db_stmt(c, sql[k].get))) break;
      bind_text(st, 1, op->id);
      err = fetch_one(op, c, st);
      if (err == TT_OK) err = TT_ECONFLICT;
    }
    op->base.status = err;
    return;
  }
  case OP_DELETE:
    if (!(st = tt_db_stmt(c, sql[k].del))) break;
    bind_text(st, 1, op->id);
    sqlite3_bind_int64(st, 2, op->version);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      op->base.status = tt_db_err(c, rc);
      return;
    }
    if (sqlite3_changes(tt_dbc_handle(c)) == 1) return;
    if (!(st = tt_db_stmt(c, sql[k].get))) break;
    bind_text(st, 1, op->id);
    op->base.status = fetch_one(op, c, st) == TT_OK ? TT_ECONFLICT : TT_ENOTFOUND;
    return;
  case OP_LIST: {
    int v = (op->b ? 1 : 0) | (op->cursor[0] ? 2 : 0);
    if (!(st = tt_db_stmt(c, sql[k].list[v]))) break;
    if (d->has_owner) bind_text(st, 1, op->a);
    if (op->b) bind_text(st, 2, op->b);
    if (op->cursor[0]) bind_text(st, 3, op->cursor);
    sqlite3_bind_int(st, 4, op->limit + 1);
    op->recs = calloc((size_t)op->limit + 1, d->size);
    if (!op->recs) {
      op->base.status = TT_ENOMEM;
      return;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (op->n == (size_t)op->limit) { /* one more exists: there is a next page */
        snprintf(op->next, sizeof op->next, "%s", TT_REC_ID((char *)op->recs, &d->fields[0]) +
                                                        (op->n - 1) * d->size);
        break;
      }
      void *r = (char *)op->recs + op->n * d->size;
      op->n++;
      if (read_row(st, d, r) != TT_OK) {
        op->base.status = TT_ENOMEM;
        break;
      }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) op->base.status = tt_db_err(c, rc);
    sqlite3_reset(st);
    return;
  }
  case OP_BY_HASH:
    if (!(st = tt_db_stmt(c, sql_by_hash))) break;
    bind_text(st, 1, op->a);
    op->base.status = fetch_one(op, c, st);
    return;
  case OP_BY_IDEM:
    if (!(st = tt_db_stmt(c, sql_by_idem))) break;
    bind_text(st, 1, op->a);
    bind_text(st, 2, op->b);
    op->base.status = fetch_one(op, c, st);
    return;
  }
  op->base.status = TT_EIO;
}

static void finish_close(void *ud) {
  sq_store *s = ud;
  if (!s->closing || tt_db_pending(s->db)) return;
  tt_store_close_cb cb = s->close_cb;
  void *cud = s->close_ud;
  tt_db_free(s->db);
  free(s);
  if (cb) cb(cud);
}

static void done(tt_dbop *base) {
  sq_op *op = (sq_op *)base;
  const tt_kind_desc *d = tt_kind_get(op->kind);
  int st = op->base.status;
  if (op->what == OP_LIST) {
    if (op->lcb) op->lcb(op->ud, st, st ? NULL : op->recs, st ? 0 : op->n, op->next[0] ? op->next : NULL);
    for (size_t i = 0; i < op->n; i++) tt_rec_clear(op->kind, (char *)op->recs + i * d->size);
    free(op->recs);
  } else if (op->cb) {
    int show = st == TT_OK && op->have_rec && op->what != OP_DELETE;
    op->cb(op->ud, st, show ? &op->rec : NULL);
  }
  if (op->have_rec) tt_rec_clear(op->kind, &op->rec);
  free(op->a);
  free(op->b);
  free(op);
}

static sq_op *op_new(tt_store *s, int what, tt_kind k) {
  sq_op *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->s = (sq_store *)s;
  op->what = what;
  op->kind = k;
  op->base.work = work;
  op->base.done = done;
  if (!tt_kind_get(k)) {
    op->kind = TT_KIND_USER;
    op->base.status = TT_EINVAL;
  }
  return op;
}

/* Without memory there is no op to defer the callback with; the thread
 * pool needs a request. This is the one place a store call gives up. */
static void oom(void) {
  fprintf(stderr, "tintype: out of memory in the store\n");
  abort();
}

static void submit(sq_op *op) { tt_db_submit(op->s->db, &op->base); }

static int valid_id_or_empty(const char *id) { return !id[0] || tt_id_valid(id); }

static void sq_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_CREATE, k);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  op->base.writes = 1;
  if (!op->base.status && !rec) op->base.status = TT_EINVAL;
  if (!op->base.status) {
    op->have_rec = 1;
    if (tt_rec_copy(k, &op->rec, rec) != TT_OK) op->base.status = TT_ENOMEM;
  }
  if (!op->base.status) {
    const tt_kind_desc *d = tt_kind_get(k);
    char *id = op->rec.u.id; /* id is the first member of every record */
    if (!valid_id_or_empty(id)) op->base.status = TT_EINVAL;
    if (!id[0]) tt_id_new(id);
    if (d->has_owner) {
      const char *owner = k == TT_KIND_IMAGE ? op->rec.i.owner : op->rec.j.owner;
      const char *state = k == TT_KIND_IMAGE ? op->rec.i.state : op->rec.j.state;
      if (!tt_id_valid(owner) || !state || !state[0]) op->base.status = TT_EINVAL;
    }
    int64_t now = tt_now_ms();
    for (int i = 0; i < d->nfields; i++) {
      const tt_field *f = &d->fields[i];
      if (!strcmp(f->name, "version")) TT_REC_INT(&op->rec, f) = 1;
      if (!strcmp(f->name, "updated_at")) TT_REC_INT(&op->rec, f) = now;
      if (!strcmp(f->name, "created_at") && !TT_REC_INT(&op->rec, f)) TT_REC_INT(&op->rec, f) = now;
    }
  }
  submit(op);
}

static void sq_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_GET, k);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  if (!id || !tt_id_valid(id)) op->base.status = op->base.status ? op->base.status : TT_ENOTFOUND;
  else memcpy(op->id, id, TT_ID_SIZE);
  submit(op);
}

static void sq_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_UPDATE, k);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  op->base.writes = 1;
  if (!op->base.status && !rec) op->base.status = TT_EINVAL;
  if (!op->base.status) {
    op->have_rec = 1;
    if (tt_rec_copy(k, &op->rec, rec) != TT_OK) op->base.status = TT_ENOMEM;
    if (!tt_id_valid(op->rec.u.id)) op->base.status = TT_ENOTFOUND;
    else memcpy(op->id, op->rec.u.id, TT_ID_SIZE);
    op->version = k == TT_KIND_USER ? op->rec.u.version
                  : k == TT_KIND_IMAGE ? op->rec.i.version
                                       : op->rec.j.version;
    const char *state = k == TT_KIND_IMAGE ? op->rec.i.state
                        : k == TT_KIND_JOB ? op->rec.j.state
                                           : "x";
    if (!state || !state[0]) op->base.status = TT_EINVAL;
  }
  submit(op);
}

static void sq_del(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb,
                   void *ud) {
  sq_op *op = op_new(s, OP_DELETE, k);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  op->base.writes = 1;
  op->version = version;
  if (!id || !tt_id_valid(id)) op->base.status = op->base.status ? op->base.status : TT_ENOTFOUND;
  else memcpy(op->id, id, TT_ID_SIZE);
  if (version < 0) op->base.status = TT_EINVAL;
  submit(op);
}

static void sq_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb,
                    void *ud) {
  sq_op *op = op_new(s, OP_LIST, k);
  if (!op) oom();
  op->lcb = cb;
  op->ud = ud;
  if (!op->base.status) {
    const tt_kind_desc *d = tt_kind_get(k);
    if (!q) {
      op->base.status = TT_EINVAL;
    } else {
      if (d->has_owner && (!q->owner || !tt_id_valid(q->owner))) op->base.status = TT_EINVAL;
      if (q->cursor && !tt_id_valid(q->cursor)) op->base.status = TT_EINVAL;
      if (q->limit < 0) op->base.status = TT_EINVAL;
      op->limit = q->limit == 0 ? TT_STORE_LIST_DEFAULT
                  : q->limit > TT_STORE_LIST_MAX ? TT_STORE_LIST_MAX
                                                 : q->limit;
      if (!op->base.status) {
        if (d->has_owner && !(op->a = strdup(q->owner))) op->base.status = TT_ENOMEM;
        if (q->state && !(op->b = strdup(q->state))) op->base.status = TT_ENOMEM;
        if (q->cursor) memcpy(op->cursor, q->cursor, TT_ID_SIZE);
      }
    }
  }
  submit(op);
}

static void sq_by_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_BY_HASH, TT_KIND_USER);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  if (!hash || !hash[0]) op->base.status = TT_EINVAL;
  else if (!(op->a = strdup(hash))) op->base.status = TT_ENOMEM;
  submit(op);
}

static void sq_by_idem(tt_store *s, const char *owner, const char *key, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_BY_IDEM, TT_KIND_JOB);
  if (!op) oom();
  op->cb = cb;
  op->ud = ud;
  if (!owner || !tt_id_valid(owner) || !key || !key[0]) op->base.status = TT_EINVAL;
  else if (!(op->a = strdup(owner)) || !(op->b = strdup(key))) op->base.status = TT_ENOMEM;
  submit(op);
}

static void sq_close(tt_store *s, tt_store_close_cb cb, void *ud) {
  sq_store *ss = (sq_store *)s;
  ss->closing = 1;
  ss->close_cb = cb;
  ss->close_ud = ud;
  /* a no-op through the pool, so the close callback is never inline */
  sq_op *op = op_new(s, OP_NOOP, TT_KIND_USER);
  if (!op) oom();
  submit(op);
}

static const tt_store_ops sqlite_ops = {
    .name = "sqlite",
    .create = sq_create,
    .get = sq_get,
    .update = sq_update,
    .del = sq_del,
    .list = sq_list,
    .user_by_key_hash = sq_by_hash,
    .job_by_idempotency = sq_by_idem,
    .close = sq_close,
};

int tt_store_sqlite_open(uv_loop_t *loop, const char *url, tt_store **out) {
  *out = NULL;
  pthread_once(&sql_once, sql_build);
  if (!sql_ok) return TT_ENOMEM;
  sq_store *s = calloc(1, sizeof *s);
  if (!s) return TT_ENOMEM;
  int err = tt_db_open(loop, url, &s->db);
  if (err) {
    free(s);
    return err;
  }
  s->base.ops = &sqlite_ops;
  s->base.loop = loop;
  tt_db_on_idle(s->db, finish_close, s);
  *out = &s->base;
  return TT_OK;
}
