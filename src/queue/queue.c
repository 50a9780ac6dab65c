/* queue.c — the queue seam's front (include/tintype/queue.h): it owns the
 * contract, so a backend only moves messages. Every call is checked here
 * (queue names, body size, delays, visibility and wait ranges, batch size);
 * a bad one never reaches the backend and its error is delivered through
 * tt_defer. Calls in flight are counted here; close first asks the backend
 * to end its parked long polls (ops->interrupt), then runs the backend's
 * close once nothing is in flight. A backend that fails inline is deferred
 * here too. Which backend a URL names is src/backends.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/alloc.h"
#include "tintype/defer.h"
#include "tintype/error.h"
#include "tintype/queue.h"

enum { CB_PLAIN, CB_SEND, CB_RECV, CB_COUNT, CB_COUNTS };

typedef struct qcall {
  tt_queue *q;
  int returned, fired, status;
  int type;
  union {
    tt_queue_cb plain;
    tt_queue_send_cb send;
    tt_queue_recv_cb recv;
    tt_queue_count_cb count;
    tt_queue_counts_cb counts;
  } cb;
  void *ud;
} qcall;

static void finish_close(void *arg);

/* closing: 1 = asked, 2 = the backend's close is scheduled */
static void schedule_close(tt_queue *q) {
  if (q->closing != 1) return;
  q->closing = 2;
  tt_defer(q->loop, finish_close, q);
}

static void call_end(qcall *c) {
  tt_queue *q = c->q;
  free(c);
  if (--q->inflight == 0) schedule_close(q);
}

/* the callback of c with status and no payload */
static void call_status(qcall *c, int st) {
  switch (c->type) {
  case CB_PLAIN:
    if (c->cb.plain) c->cb.plain(c->ud, st);
    break;
  case CB_SEND:
    if (c->cb.send) c->cb.send(c->ud, st, NULL);
    break;
  case CB_RECV:
    if (c->cb.recv) c->cb.recv(c->ud, st, NULL, 0);
    break;
  case CB_COUNT:
    if (c->cb.count) c->cb.count(c->ud, st, 0);
    break;
  case CB_COUNTS:
    if (c->cb.counts) c->cb.counts(c->ud, st, NULL);
    break;
  }
}

static void deliver_deferred(void *arg) {
  qcall *c = arg;
  call_status(c, c->status);
  call_end(c);
}

static void call_fail(qcall *c, int status) {
  c->returned = c->fired = 1;
  c->status = status;
  tt_defer(c->q->loop, deliver_deferred, c);
}

#define FAIL(c, st)   \
  do {                \
    call_fail(c, st); \
    return;           \
  } while (0)

static void call_returned(qcall *c) {
  c->returned = 1;
  if (c->fired) tt_defer(c->q->loop, deliver_deferred, c);
}

/* Before the call returned: only a status can be kept for later. */
static int caught_inline(qcall *c, int status, int payload) {
  if (c->returned) return 0;
  if (payload) {
    fprintf(stderr, "tintype: queue backend %s delivered data before its call returned\n",
            c->q->ops->name);
    abort();
  }
  c->fired = 1;
  c->status = status;
  return 1;
}

static void on_plain(void *ud, int status) {
  qcall *c = ud;
  if (caught_inline(c, status, 0)) return;
  call_status(c, status);
  call_end(c);
}

static void on_send(void *ud, int status, const char *id) {
  qcall *c = ud;
  if (caught_inline(c, status, status == TT_OK)) return;
  if (c->cb.send) c->cb.send(c->ud, status, id);
  call_end(c);
}

static void on_recv(void *ud, int status, const tt_queue_msg *msgs, size_t n) {
  qcall *c = ud;
  if (caught_inline(c, status, n > 0)) return;
  if (c->cb.recv) c->cb.recv(c->ud, status, msgs, n);
  call_end(c);
}

static void on_count(void *ud, int status, int64_t n) {
  qcall *c = ud;
  if (caught_inline(c, status, status == TT_OK)) return;
  if (c->cb.count) c->cb.count(c->ud, status, n);
  call_end(c);
}

static void on_counts(void *ud, int status, const tt_queue_counts *counts) {
  qcall *c = ud;
  if (caught_inline(c, status, status == TT_OK)) return;
  if (c->cb.counts) c->cb.counts(c->ud, status, counts);
  call_end(c);
}

int tt_queue_name_valid(const char *s) {
  if (!s) return 0;
  size_t n = 0;
  for (; s[n]; n++) {
    char ch = s[n];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || ch == '.'))
      return 0;
    if (n >= TT_QUEUE_NAME_MAX) return 0;
  }
  return n > 0;
}

static qcall *call_new(tt_queue *q, int type, void *ud) {
  qcall *c = tt_xcalloc(1, sizeof *c);
  c->q = q;
  c->type = type;
  c->ud = ud;
  q->inflight++;
  return c;
}

/* 0 when the call already failed (closing: TT_ECANCELED; bad queue name:
 * TT_EINVAL) */
static int ready(qcall *c, const char *queue) {
  if (c->q->closing) call_fail(c, TT_ECANCELED);
  else if (!tt_queue_name_valid(queue)) call_fail(c, TT_EINVAL);
  else return 1;
  return 0;
}

/* every call begins: the call record, its callback, the common checks */
#define BEGIN(type, member)                \
  qcall *c = call_new(q, type, ud);        \
  c->cb.member = cb;                       \
  if (!ready(c, queue)) return

static int vis_ok(int64_t v) { return v >= 0 && v <= TT_QUEUE_MAX_VISIBILITY_MS; }

void tt_queue_declare(tt_queue *q, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb,
                      void *ud) {
  BEGIN(CB_PLAIN, plain);
  if (!a || !vis_ok(a->visibility_ms) || a->max_receives < 0) FAIL(c, TT_EINVAL);
  q->ops->declare(q, queue, a, on_plain, c);
  call_returned(c);
}

void tt_queue_send(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay_ms,
                   tt_queue_send_cb cb, void *ud) {
  BEGIN(CB_SEND, send);
  if (!body || len == 0 || delay_ms < 0 || delay_ms > TT_QUEUE_MAX_DELAY_MS) FAIL(c, TT_EINVAL);
  if (len > TT_QUEUE_MAX_BODY) FAIL(c, TT_ETOOBIG);
  q->ops->send(q, queue, body, len, delay_ms, on_send, c);
  call_returned(c);
}

void tt_queue_receive(tt_queue *q, const char *queue, const tt_queue_recv_opts *o,
                      tt_queue_recv_cb cb, void *ud) {
  BEGIN(CB_RECV, recv);
  if (!o || o->max < 0 || o->max > TT_QUEUE_MAX_BATCH ||
      o->visibility_ms > TT_QUEUE_MAX_VISIBILITY_MS || o->wait_ms < 0 ||
      o->wait_ms > TT_QUEUE_MAX_WAIT_MS)
    FAIL(c, TT_EINVAL);
  tt_queue_recv_opts no = *o;
  if (no.max == 0) no.max = 1;
  if (no.visibility_ms < 0) no.visibility_ms = -1;
  q->ops->receive(q, queue, &no, on_recv, c);
  call_returned(c);
}

void tt_queue_delete(tt_queue *q, const char *queue, const char *receipt, tt_queue_cb cb, void *ud) {
  BEGIN(CB_PLAIN, plain);
  if (!receipt || !receipt[0]) FAIL(c, TT_EINVAL);
  q->ops->del(q, queue, receipt, on_plain, c);
  call_returned(c);
}

void tt_queue_change_visibility(tt_queue *q, const char *queue, const char *receipt,
                                int64_t visibility_ms, tt_queue_cb cb, void *ud) {
  BEGIN(CB_PLAIN, plain);
  if (!receipt || !receipt[0] || !vis_ok(visibility_ms)) FAIL(c, TT_EINVAL);
  q->ops->change_visibility(q, queue, receipt, visibility_ms, on_plain, c);
  call_returned(c);
}

void tt_queue_purge(tt_queue *q, const char *queue, int which, tt_queue_count_cb cb, void *ud) {
  BEGIN(CB_COUNT, count);
  if (!(which & (TT_QUEUE_LIVE | TT_QUEUE_DEAD)) || (which & ~(TT_QUEUE_LIVE | TT_QUEUE_DEAD)))
    FAIL(c, TT_EINVAL);
  q->ops->purge(q, queue, which, on_count, c);
  call_returned(c);
}

void tt_queue_redrive(tt_queue *q, const char *queue, tt_queue_count_cb cb, void *ud) {
  BEGIN(CB_COUNT, count);
  q->ops->redrive(q, queue, on_count, c);
  call_returned(c);
}

void tt_queue_counts_get(tt_queue *q, const char *queue, tt_queue_counts_cb cb, void *ud) {
  BEGIN(CB_COUNTS, counts);
  q->ops->counts(q, queue, on_counts, c);
  call_returned(c);
}

/* ---- close --------------------------------------------------------------- */

static void finish_close(void *arg) {
  tt_queue *q = arg;
  if (q->inflight) { /* a late call came in; its end reschedules this */
    q->closing = 1;
    return;
  }
  q->ops->close(q, q->close_cb, q->close_ud);
}

void tt_queue_close(tt_queue *q, tt_queue_close_cb cb, void *ud) {
  if (q->closing) {
    fprintf(stderr, "tintype: tt_queue_close called twice\n");
    abort();
  }
  q->closing = 1;
  q->close_cb = cb;
  q->close_ud = ud;
  if (q->ops->interrupt) q->ops->interrupt(q); /* parked long polls end now, empty */
  if (!q->inflight) schedule_close(q);
}
