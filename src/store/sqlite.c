/* sqlite.c — the SQLite store backend (sqlite://PATH), filling
 * tt_store_ops from include/tintype/store.h.
 *
 * Statements are generated once from the field tables in record.h and
 * prepared once per pooled connection (src/sqlite/db.c). Every call becomes a
 * tt_dbop: it copies its inputs, runs on libuv's thread pool, and calls the
 * user back on the loop with records that live in the op and are freed
 * right after the callback. Conditional writes are a single statement
 * (UPDATE ... WHERE id=? AND version=? RETURNING ...), so they are atomic
 * across threads and processes without an explicit transaction.
 *
 * Arguments arrive checked and new records complete (src/store/store.c,
 * the front); this file only runs SQL. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "sqlite/db.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/store.h"

#define NKINDS 7

typedef struct sq_store {
  tt_store base;
  tt_db *db;
} sq_store;

/* ---- schema: the store's own tables, versioned as "store" --------------- */

static const char *const schema_steps[] = {
    /* 1: users, images, jobs */
    "CREATE TABLE IF NOT EXISTS users("
    " id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT UNIQUE, api_key_hash TEXT UNIQUE,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS images("
    " id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, state TEXT NOT NULL,"
    " raw_key TEXT, processed_key TEXT, thumb_key TEXT, content_type TEXT,"
    " bytes INTEGER NOT NULL DEFAULT 0, width INTEGER NOT NULL DEFAULT 0,"
    " height INTEGER NOT NULL DEFAULT 0, error TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS images_owner ON images(owner, id);"
    "CREATE INDEX IF NOT EXISTS images_owner_state ON images(owner, state, id);"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, state TEXT NOT NULL,"
    " request TEXT, result_key TEXT, result TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " error TEXT, idempotency_key TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0,"
    " version INTEGER NOT NULL, UNIQUE(owner, idempotency_key)"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, id);"
    "CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs(owner, state, id);",
    /* 2: a running job's phase (opening, loading, waiting, capturing; issue 14) */
    "ALTER TABLE jobs ADD COLUMN phase TEXT;",
    /* 3: the result cache (issue 15) */
    "CREATE TABLE IF NOT EXISTS cache("
    " id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, state TEXT NOT NULL,"
    " job_id TEXT, result_key TEXT, result TEXT, rendered_at INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS cache_owner ON cache(owner, id);"
    "CREATE INDEX IF NOT EXISTS cache_owner_state ON cache(owner, state, id);",
    /* 4: batches of jobs (issue 15) */
    "CREATE TABLE IF NOT EXISTS batches("
    " id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, state TEXT NOT NULL,"
    " request TEXT, items TEXT, idempotency_key TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS batches_owner ON batches(owner, id);"
    "CREATE INDEX IF NOT EXISTS batches_owner_state ON batches(owner, state, id);",
    /* 5: the webhook outbox (issue 15) */
    "CREATE TABLE IF NOT EXISTS deliveries("
    " id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, owner TEXT, job_id TEXT, url TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " delivered_at INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(state, id);",
    /* 6: render-link signing secrets (issue 15 item 2); values are derived, not stored */
    "CREATE TABLE IF NOT EXISTS render_secrets("
    " id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, state TEXT NOT NULL, name TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, version INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS render_secrets_owner ON render_secrets(owner, id);"
    "CREATE INDEX IF NOT EXISTS render_secrets_owner_state ON render_secrets(owner, state, id);",
};
static const tt_db_schema schema = {"store", schema_steps,
                                    (int)(sizeof schema_steps / sizeof schema_steps[0])};

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

enum { OP_CREATE, OP_GET, OP_UPDATE, OP_DELETE, OP_LIST, OP_BY_HASH, OP_BY_IDEM };

typedef union anyrec {
  tt_user u;
  tt_image i;
  tt_job j;
  tt_cache_entry c;
  tt_batch b;
  tt_delivery d;
  tt_render_secret r;
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

static sq_op *op_new(tt_store *s, int what, tt_kind k, tt_store_cb cb, void *ud) {
  sq_op *op = tt_xcalloc(1, sizeof *op);
  op->s = (sq_store *)s;
  op->what = what;
  op->kind = k;
  op->cb = cb;
  op->ud = ud;
  op->base.work = work;
  op->base.done = done;
  return op;
}

static void submit(sq_op *op) { tt_db_submit(op->s->db, &op->base); }

/* the record is deep-copied into the op (strings are malloc'ed) */
static void take_rec(sq_op *op, const void *rec) {
  op->have_rec = 1;
  if (tt_rec_copy(op->kind, &op->rec, rec) != TT_OK) tt_oom();
}

static void sq_create(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_CREATE, k, cb, ud);
  op->base.writes = 1;
  take_rec(op, rec);
  submit(op);
}

static void sq_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_GET, k, cb, ud);
  memcpy(op->id, id, TT_ID_SIZE);
  submit(op);
}

static void sq_update(tt_store *s, tt_kind k, const void *rec, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_UPDATE, k, cb, ud);
  op->base.writes = 1;
  take_rec(op, rec);
  memcpy(op->id, op->rec.u.id, TT_ID_SIZE); /* id is the first member of every record */
  op->version = k == TT_KIND_USER    ? op->rec.u.version
                : k == TT_KIND_IMAGE ? op->rec.i.version
                : k == TT_KIND_JOB   ? op->rec.j.version
                : k == TT_KIND_CACHE ? op->rec.c.version
                : k == TT_KIND_BATCH ? op->rec.b.version
                : k == TT_KIND_DELIVERY ? op->rec.d.version
                                     : op->rec.r.version;
  submit(op);
}

static void sq_del(tt_store *s, tt_kind k, const char *id, int64_t version, tt_store_cb cb,
                   void *ud) {
  sq_op *op = op_new(s, OP_DELETE, k, cb, ud);
  op->base.writes = 1;
  op->version = version;
  memcpy(op->id, id, TT_ID_SIZE);
  submit(op);
}

static void sq_list(tt_store *s, tt_kind k, const tt_store_query *q, tt_store_list_cb cb,
                    void *ud) {
  sq_op *op = op_new(s, OP_LIST, k, NULL, ud);
  op->lcb = cb;
  op->limit = q->limit;
  if (q->owner) op->a = tt_xstrdup(q->owner);
  if (q->state) op->b = tt_xstrdup(q->state);
  if (q->cursor) memcpy(op->cursor, q->cursor, TT_ID_SIZE);
  submit(op);
}

static void sq_by_hash(tt_store *s, const char *hash, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_BY_HASH, TT_KIND_USER, cb, ud);
  op->a = tt_xstrdup(hash);
  submit(op);
}

static void sq_by_idem(tt_store *s, const char *owner, const char *key, tt_store_cb cb, void *ud) {
  sq_op *op = op_new(s, OP_BY_IDEM, TT_KIND_JOB, cb, ud);
  op->a = tt_xstrdup(owner);
  op->b = tt_xstrdup(key);
  submit(op);
}

/* the front calls this once no op is in flight */
static void sq_close(tt_store *s, tt_store_close_cb cb, void *ud) {
  sq_store *ss = (sq_store *)s;
  tt_db_free(ss->db);
  free(ss);
  if (cb) cb(ud);
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
  int err = tt_db_open(loop, url, &schema, &s->db);
  if (err) {
    free(s);
    return err;
  }
  s->base.ops = &sqlite_ops;
  s->base.loop = loop;
  *out = &s->base;
  return TT_OK;
}
