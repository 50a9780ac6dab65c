/* sqlite.c — the SQLite queue backend (sqlite://PATH), filling
 * tt_queue_ops from include/tintype/queue.h with SQS semantics.
 *
 * All named queues share one table, tt_queue_msgs (the queue's own schema,
 * below, versioned as "queue" by src/sqlite/db.c): a message is visible when visible_at <= now;
 * receiving sets a fresh random receipt, bumps receive_count and pushes
 * visible_at out by the visibility timeout, in one BEGIN IMMEDIATE
 * transaction, so two receivers (threads or processes) never get the same
 * delivery. Delete/change-visibility match (seq, receipt): a receipt
 * replaced by a later receive matches nothing (TT_ESTALE). Dead-lettering
 * is the dead=1 state, set at the receive that would exceed max_receives.
 *
 * Long poll: an empty receive with wait time left parks on a waiter list;
 * a repeating timer (POLL_MS) resubmits parked receives, and a send on
 * this handle resubmits the ones for its queue at once.
 *
 * Arguments arrive checked (src/queue/queue.c, the front), except the
 * receipt's format, which is this backend's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sqlite/db.h"
#include "tintype/alloc.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/queue.h"

#define POLL_MS 25 /* long-poll re-check interval: other processes' sends */
#define RECEIPT_MAX 48

typedef struct qop qop;

typedef struct sq_queue {
  tt_queue base;
  tt_db *db;
  uv_timer_t timer;
  qop *waiters; /* parked long polls */
  int closing; /* interrupted: no receive parks any more */
  tt_queue_close_cb close_cb;
  void *close_ud;
} sq_queue;

enum { Q_DECLARE, Q_SEND, Q_RECV, Q_DELETE, Q_CHVIS, Q_PURGE, Q_REDRIVE, Q_COUNTS };

typedef struct outmsg {
  tt_queue_msg m;
  char receipt[RECEIPT_MAX];
  char *body;
} outmsg;

struct qop {
  tt_dbop base;
  sq_queue *q;
  int what;
  char queue[TT_QUEUE_NAME_MAX + 1];
  char id[TT_ID_SIZE];
  char *body;
  size_t len;
  int64_t delay_ms, vis_ms, seq;
  char receipt[RECEIPT_MAX];
  int max, which;
  uint64_t deadline; /* uv_now() ms */
  tt_queue_attrs attrs;
  outmsg out[TT_QUEUE_MAX_BATCH];
  size_t n;
  int64_t count;
  tt_queue_counts counts;
  union {
    tt_queue_cb plain;
    tt_queue_send_cb send;
    tt_queue_recv_cb recv;
    tt_queue_count_cb count;
    tt_queue_counts_cb counts;
  } cb;
  void *ud;
  qop *next; /* waiter list */
};

/* ---- schema: the queue's own tables --------------------------------------- */

static const char *const schema_steps[] = {
    /* 1: queues and messages */
    "CREATE TABLE IF NOT EXISTS tt_queues("
    " name TEXT PRIMARY KEY NOT NULL, visibility_ms INTEGER NOT NULL, max_receives INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS tt_queue_msgs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, id TEXT NOT NULL,"
    " body BLOB NOT NULL, dead INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL,"
    " receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT, sent_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tt_queue_ready ON tt_queue_msgs(queue, dead, visible_at);",
};
static const tt_db_schema schema = {"queue", schema_steps,
                                    (int)(sizeof schema_steps / sizeof schema_steps[0])};

/* ---- SQL ---------------------------------------------------------------- */

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_DECLARE[] =
    "INSERT INTO tt_queues(name,visibility_ms,max_receives) VALUES(?1,?2,?3) "
    "ON CONFLICT(name) DO UPDATE SET visibility_ms=?2, max_receives=?3";
static const char SQL_ATTRS[] = "SELECT visibility_ms,max_receives FROM tt_queues WHERE name=?";
static const char SQL_SEND[] =
    "INSERT INTO tt_queue_msgs(queue,id,body,visible_at,sent_at) VALUES(?,?,?,?,?)";
static const char SQL_ANY[] =
    "SELECT 1 FROM tt_queue_msgs WHERE queue=?1 AND dead=0 AND visible_at<=?2 LIMIT 1";
static const char SQL_PICK[] =
    "SELECT seq,id,body,receive_count,sent_at FROM tt_queue_msgs "
    "WHERE queue=?1 AND dead=0 AND visible_at<=?2 ORDER BY visible_at LIMIT ?3";
static const char SQL_DEADEN[] = "UPDATE tt_queue_msgs SET dead=1, receipt=NULL WHERE seq=?";
static const char SQL_TAKE[] =
    "UPDATE tt_queue_msgs SET receive_count=receive_count+1, receipt=?2, visible_at=?3 WHERE seq=?1";
static const char SQL_DELETE[] =
    "DELETE FROM tt_queue_msgs WHERE seq=?1 AND queue=?2 AND receipt=?3 AND dead=0";
static const char SQL_CHVIS[] =
    "UPDATE tt_queue_msgs SET visible_at=?4 WHERE seq=?1 AND queue=?2 AND receipt=?3 AND dead=0";
static const char SQL_WHY[] = "SELECT dead FROM tt_queue_msgs WHERE seq=?1 AND queue=?2";
static const char SQL_PURGE[] = "DELETE FROM tt_queue_msgs WHERE queue=?1 AND dead=?2";
static const char SQL_REDRIVE[] =
    "UPDATE tt_queue_msgs SET dead=0, receive_count=0, receipt=NULL, visible_at=?2 "
    "WHERE queue=?1 AND dead=1";
static const char SQL_COUNTS[] =
    "SELECT coalesce(sum(dead=0 AND visible_at<=?2),0),"
    " coalesce(sum(dead=0 AND visible_at>?2 AND receive_count>0),0),"
    " coalesce(sum(dead=0 AND visible_at>?2 AND receive_count=0),0),"
    " coalesce(sum(dead=1),0) FROM tt_queue_msgs WHERE queue=?1";

/* ---- helpers ------------------------------------------------------------ */

/* "SEQ.HEX16" */
static int receipt_parse(const char *r, int64_t *seq) {
  if (!r) return TT_EINVAL;
  size_t n = strlen(r);
  if (n >= RECEIPT_MAX) return TT_EINVAL;
  char *end;
  long long v = strtoll(r, &end, 10);
  if (end == r || *end != '.' || v <= 0 || strlen(end + 1) != 16) return TT_EINVAL;
  for (const char *p = end + 1; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return TT_EINVAL;
  *seq = v;
  return TT_OK;
}

static void receipt_make(char *out, int64_t seq) {
  static __thread uint64_t s;
  while (!s)
    if (getrandom(&s, sizeof s, 0) != sizeof s) s = 0;
  /* xorshift64*: receipts must differ per receive, not be secret */
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  snprintf(out, RECEIPT_MAX, "%lld.%016llx", (long long)seq,
           (unsigned long long)(s * 0x2545F4914F6CDD1DULL));
}

static int step_done(tt_dbc *c, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? TT_OK : tt_db_err(c, rc);
}

/* after a (seq, receipt) write matched nothing: stale or gone? */
static int why_not(tt_dbc *c, qop *op) {
  sqlite3_stmt *st = tt_db_stmt(c, SQL_WHY);
  if (!st) return TT_EIO;
  sqlite3_bind_int64(st, 1, op->seq);
  sqlite3_bind_text(st, 2, op->queue, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int err = rc == SQLITE_ROW ? (sqlite3_column_int(st, 0) ? TT_ENOTFOUND : TT_ESTALE)
            : rc == SQLITE_DONE ? TT_ENOTFOUND
                                : tt_db_err(c, rc);
  sqlite3_reset(st);
  return err;
}

static void recv_work(qop *op, tt_dbc *c) {
  int64_t now = tt_now_ms();
  sqlite3_stmt *st = tt_db_stmt(c, SQL_ANY);
  if (!st) goto eio;
  /* cheap read first: an empty poll takes no write lock */
  sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return;
  if (rc != SQLITE_ROW) {
    op->base.status = tt_db_err(c, rc);
    return;
  }
  tt_db_wlock(op->base.db);
  int err = tt_db_exec(c, SQL_BEGIN);
  if (err) goto out;
  now = tt_now_ms();
  int64_t vis = TT_QUEUE_DEFAULT_VISIBILITY_MS;
  int maxr = TT_QUEUE_DEFAULT_MAX_RECEIVES;
  if (!(st = tt_db_stmt(c, SQL_ATTRS))) goto eio_locked;
  sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
  if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    vis = sqlite3_column_int64(st, 0);
    maxr = sqlite3_column_int(st, 1);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    err = tt_db_err(c, rc);
    goto out;
  }
  if (op->vis_ms >= 0) vis = op->vis_ms;
  for (int round = 0; round < 8 && op->n < (size_t)op->max; round++) {
    struct {
      int64_t seq;
      int rc;
    } pick[TT_QUEUE_MAX_BATCH];
    int np = 0, want = op->max - (int)op->n;
    if (!(st = tt_db_stmt(c, SQL_PICK))) goto eio_locked;
    sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int(st, 3, want);
    size_t base = op->n;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      pick[np].seq = sqlite3_column_int64(st, 0);
      pick[np].rc = sqlite3_column_int(st, 3);
      if (maxr <= 0 || pick[np].rc < maxr) {
        outmsg *o = &op->out[op->n++];
        snprintf(o->m.id, sizeof o->m.id, "%s", (const char *)sqlite3_column_text(st, 1));
        int len = sqlite3_column_bytes(st, 2);
        o->body = malloc((size_t)len + 1);
        if (!o->body) {
          sqlite3_reset(st);
          err = TT_ENOMEM;
          goto out;
        }
        if (len) memcpy(o->body, sqlite3_column_blob(st, 2), (size_t)len);
        o->body[len] = 0;
        o->m.len = (size_t)len;
        o->m.receive_count = pick[np].rc + 1;
        o->m.sent_at = sqlite3_column_int64(st, 4);
      }
      np++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      err = tt_db_err(c, rc);
      goto out;
    }
    size_t oi = base;
    for (int i = 0; i < np; i++) {
      if (maxr > 0 && pick[i].rc >= maxr) {
        if (!(st = tt_db_stmt(c, SQL_DEADEN))) goto eio_locked;
        sqlite3_bind_int64(st, 1, pick[i].seq);
      } else {
        outmsg *o = &op->out[oi++];
        receipt_make(o->receipt, pick[i].seq);
        o->m.receipt = o->receipt;
        if (!(st = tt_db_stmt(c, SQL_TAKE))) goto eio_locked;
        sqlite3_bind_int64(st, 1, pick[i].seq);
        sqlite3_bind_text(st, 2, o->receipt, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now + vis);
      }
      if ((err = step_done(c, st))) goto out;
    }
    if (np < want) break; /* nothing more visible */
  }
  err = tt_db_exec(c, SQL_COMMIT);
  goto out;
eio_locked:
  err = TT_EIO;
out:
  if (err) {
    tt_db_exec(c, SQL_ROLLBACK);
    for (size_t i = 0; i < op->n; i++) free(op->out[i].body);
    op->n = 0;
    op->base.status = err;
  }
  tt_db_wunlock(op->base.db);
  return;
eio:
  op->base.status = TT_EIO;
}

static void work(tt_dbop *base, tt_dbc *c) {
  qop *op = (qop *)base;
  sqlite3_stmt *st = NULL;
  int64_t now = tt_now_ms();
  int err;
  switch (op->what) {
  case Q_RECV: recv_work(op, c); return;
  case Q_DECLARE:
    if (!(st = tt_db_stmt(c, SQL_DECLARE))) break;
    sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->attrs.visibility_ms);
    sqlite3_bind_int(st, 3, op->attrs.max_receives);
    op->base.status = step_done(c, st);
    return;
  case Q_SEND:
    if (!(st = tt_db_stmt(c, SQL_SEND))) break;
    sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, op->body, (int)op->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now + op->delay_ms);
    sqlite3_bind_int64(st, 5, now);
    op->base.status = step_done(c, st);
    return;
  case Q_DELETE:
  case Q_CHVIS:
    if (!(st = tt_db_stmt(c, op->what == Q_DELETE ? SQL_DELETE : SQL_CHVIS))) break;
    sqlite3_bind_int64(st, 1, op->seq);
    sqlite3_bind_text(st, 2, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, op->receipt, -1, SQLITE_STATIC);
    if (op->what == Q_CHVIS) sqlite3_bind_int64(st, 4, now + op->vis_ms);
    if ((err = step_done(c, st))) {
      op->base.status = err;
      return;
    }
    if (sqlite3_changes(tt_dbc_handle(c)) == 0) op->base.status = why_not(c, op);
    return;
  case Q_PURGE:
    for (int dead = 0; dead < 2; dead++) {
      if (!(op->which & (dead ? TT_QUEUE_DEAD : TT_QUEUE_LIVE))) continue;
      if (!(st = tt_db_stmt(c, SQL_PURGE))) goto eio;
      sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
      sqlite3_bind_int(st, 2, dead);
      if ((err = step_done(c, st))) {
        op->base.status = err;
        return;
      }
      op->count += sqlite3_changes(tt_dbc_handle(c));
    }
    return;
  case Q_REDRIVE:
    if (!(st = tt_db_stmt(c, SQL_REDRIVE))) break;
    sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    if ((err = step_done(c, st))) {
      op->base.status = err;
      return;
    }
    op->count = sqlite3_changes(tt_dbc_handle(c));
    return;
  case Q_COUNTS: {
    if (!(st = tt_db_stmt(c, SQL_COUNTS))) break;
    sqlite3_bind_text(st, 1, op->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      op->counts.visible = sqlite3_column_int64(st, 0);
      op->counts.in_flight = sqlite3_column_int64(st, 1);
      op->counts.delayed = sqlite3_column_int64(st, 2);
      op->counts.dead = sqlite3_column_int64(st, 3);
    } else {
      op->base.status = tt_db_err(c, rc);
    }
    sqlite3_reset(st);
    return;
  }
  }
eio:
  op->base.status = TT_EIO;
}

/* ---- loop side ---------------------------------------------------------- */

static void op_free(qop *op) {
  for (size_t i = 0; i < op->n; i++) free(op->out[i].body);
  free(op->body);
  free(op);
}

static void resubmit(qop *op) {
  for (size_t i = 0; i < op->n; i++) free(op->out[i].body);
  op->n = 0;
  op->base.status = 0;
  tt_db_submit(op->q->db, &op->base);
}

/* Resubmits parked receives (all, or only those for queue). */
static void wake(sq_queue *q, const char *queue) {
  qop **pp = &q->waiters, *list = NULL;
  while (*pp) {
    qop *w = *pp;
    if (!queue || !strcmp(w->queue, queue)) {
      *pp = w->next;
      w->next = list;
      list = w;
    } else {
      pp = &w->next;
    }
  }
  while (list) {
    qop *w = list;
    list = w->next;
    w->next = NULL;
    resubmit(w);
  }
  if (!q->waiters && !q->closing) uv_timer_stop(&q->timer);
}

static void tick(uv_timer_t *t) { wake(t->data, NULL); }

static void done(tt_dbop *base) {
  qop *op = (qop *)base;
  sq_queue *q = op->q;
  int st = op->base.status;
  switch (op->what) {
  case Q_RECV: {
    if (st == 0 && op->n == 0 && !q->closing && uv_now(q->base.loop) < op->deadline) {
      op->next = q->waiters; /* park: tick or a local send resubmits */
      q->waiters = op;
      if (!uv_is_active((uv_handle_t *)&q->timer))
        uv_timer_start(&q->timer, tick, POLL_MS, POLL_MS);
      return;
    }
    tt_queue_msg msgs[TT_QUEUE_MAX_BATCH];
    for (size_t i = 0; i < op->n; i++) {
      msgs[i] = op->out[i].m;
      msgs[i].body = op->out[i].body;
    }
    op->cb.recv(op->ud, st, st ? NULL : msgs, st ? 0 : op->n);
    break;
  }
  case Q_SEND:
    op->cb.send(op->ud, st, st ? NULL : op->id);
    if (st == 0 && !q->closing) wake(q, op->queue);
    break;
  case Q_DECLARE:
  case Q_DELETE:
  case Q_CHVIS:
    if (op->cb.plain) op->cb.plain(op->ud, st);
    break;
  case Q_PURGE:
  case Q_REDRIVE:
    if (op->cb.count) op->cb.count(op->ud, st, st ? 0 : op->count);
    break;
  case Q_COUNTS: op->cb.counts(op->ud, st, st ? NULL : &op->counts); break;
  }
  op_free(op);
}

static qop *op_new(tt_queue *tq, int what, const char *queue, void *ud) {
  qop *op = tt_xcalloc(1, sizeof *op);
  op->q = (sq_queue *)tq;
  op->what = what;
  op->ud = ud;
  op->base.work = work;
  op->base.done = done;
  snprintf(op->queue, sizeof op->queue, "%s", queue);
  return op;
}

static void submit(qop *op) { tt_db_submit(op->q->db, &op->base); }

static void q_declare(tt_queue *tq, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb,
                      void *ud) {
  qop *op = op_new(tq, Q_DECLARE, queue, ud);
  op->cb.plain = cb;
  op->base.writes = 1;
  op->attrs = *a;
  submit(op);
}

static void q_send(tt_queue *tq, const char *queue, const void *body, size_t len, int64_t delay_ms,
                   tt_queue_send_cb cb, void *ud) {
  qop *op = op_new(tq, Q_SEND, queue, ud);
  op->cb.send = cb;
  op->base.writes = 1;
  op->body = tt_xmalloc(len);
  memcpy(op->body, body, len);
  op->len = len;
  op->delay_ms = delay_ms;
  tt_id_new(op->id);
  submit(op);
}

static void q_receive(tt_queue *tq, const char *queue, const tt_queue_recv_opts *o,
                      tt_queue_recv_cb cb, void *ud) {
  qop *op = op_new(tq, Q_RECV, queue, ud);
  op->cb.recv = cb;
  op->max = o->max;
  op->vis_ms = o->visibility_ms;
  op->deadline = uv_now(tq->loop) + (uint64_t)o->wait_ms;
  submit(op);
}

static void receipt_op(tt_queue *tq, int what, const char *queue, const char *receipt,
                       int64_t vis_ms, tt_queue_cb cb, void *ud) {
  qop *op = op_new(tq, what, queue, ud);
  op->cb.plain = cb;
  op->base.writes = 1;
  op->vis_ms = vis_ms;
  if (receipt_parse(receipt, &op->seq) != TT_OK) op->base.status = TT_EINVAL;
  else snprintf(op->receipt, sizeof op->receipt, "%s", receipt);
  submit(op);
}

static void q_delete(tt_queue *tq, const char *queue, const char *receipt, tt_queue_cb cb,
                     void *ud) {
  receipt_op(tq, Q_DELETE, queue, receipt, 0, cb, ud);
}

static void q_chvis(tt_queue *tq, const char *queue, const char *receipt, int64_t vis_ms,
                    tt_queue_cb cb, void *ud) {
  receipt_op(tq, Q_CHVIS, queue, receipt, vis_ms, cb, ud);
}

static void q_purge(tt_queue *tq, const char *queue, int which, tt_queue_count_cb cb, void *ud) {
  qop *op = op_new(tq, Q_PURGE, queue, ud);
  op->cb.count = cb;
  op->base.writes = 1;
  op->which = which;
  submit(op);
}

static void q_redrive(tt_queue *tq, const char *queue, tt_queue_count_cb cb, void *ud) {
  qop *op = op_new(tq, Q_REDRIVE, queue, ud);
  op->cb.count = cb;
  op->base.writes = 1;
  submit(op);
}

static void q_counts(tt_queue *tq, const char *queue, tt_queue_counts_cb cb, void *ud) {
  qop *op = op_new(tq, Q_COUNTS, queue, ud);
  op->cb.counts = cb;
  submit(op);
}

/* close begins: parked long polls end now, empty; none parks after this */
static void q_interrupt(tt_queue *tq) {
  sq_queue *q = (sq_queue *)tq;
  q->closing = 1;
  uv_timer_stop(&q->timer);
  while (q->waiters) {
    qop *w = q->waiters;
    q->waiters = w->next;
    w->cb.recv(w->ud, 0, NULL, 0);
    op_free(w);
  }
}

static void timer_closed(uv_handle_t *h) {
  sq_queue *q = h->data;
  tt_queue_close_cb cb = q->close_cb;
  void *ud = q->close_ud;
  tt_db_free(q->db);
  free(q);
  if (cb) cb(ud);
}

/* the front calls this once no op is in flight */
static void q_close(tt_queue *tq, tt_queue_close_cb cb, void *ud) {
  sq_queue *q = (sq_queue *)tq;
  q->close_cb = cb;
  q->close_ud = ud;
  uv_close((uv_handle_t *)&q->timer, timer_closed);
}

static const tt_queue_ops sqlite_ops = {
    .name = "sqlite",
    .declare = q_declare,
    .send = q_send,
    .receive = q_receive,
    .del = q_delete,
    .change_visibility = q_chvis,
    .purge = q_purge,
    .redrive = q_redrive,
    .counts = q_counts,
    .interrupt = q_interrupt,
    .close = q_close,
};

int tt_queue_sqlite_open(uv_loop_t *loop, const char *url, tt_queue **out) {
  *out = NULL;
  sq_queue *q = calloc(1, sizeof *q);
  if (!q) return TT_ENOMEM;
  int err = tt_db_open(loop, url, &schema, &q->db);
  if (err) {
    free(q);
    return err;
  }
  q->base.ops = &sqlite_ops;
  q->base.loop = loop;
  uv_timer_init(loop, &q->timer);
  q->timer.data = q;
  *out = &q->base;
  return TT_OK;
}
