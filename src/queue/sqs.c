/* sqs.c — the queue seam (include/tintype/queue.h) on Amazon SQS, JSON
 * protocol (X-Amz-Target AmazonSQS.*), through the client of src/aws/.
 *
 * sqs://PREFIX: the logical queue Q is the SQS queue "PREFIX-Q" (PREFIX may
 * be empty: "sqs://" uses Q itself), its dead-letter queue is the one its
 * RedrivePolicy names. Queue URLs are looked up once (GetQueueUrl) and
 * cached. Queues and their RedrivePolicy belong to the deployment
 * (CloudFormation); declare only reads maxReceiveCount and warns when it
 * differs from the caller's max_receives, unless the URL says ?create=1
 * (tintype aws init, tests), when it creates the queue and "PREFIX-Q-dlq".
 *
 * Deletes and visibility changes made in the same loop turn go out as one
 * DeleteMessageBatch / ChangeMessageVisibilityBatch per queue (the worker's
 * heartbeat extends every in-flight job at once). Times are SQS's whole
 * seconds: visibility and delay round up. SQS cannot tell a stale receipt
 * from a current one: delete with an old receipt may still delete (as the
 * queue header warns), and a second delete succeeds. redrive is
 * TT_ENOTSUP (use SQS's StartMessageMoveTask from the console or CLI). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/aws.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/queue.h"

#define MAXQ 32
#define QNAME_MAX 80

typedef struct qent {
  char name[QNAME_MAX + 1];
  char *url, *dlq_url;
  int max_receives; /* from the RedrivePolicy, 0 = none */
} qent;

typedef struct op op;

typedef struct sqs {
  tt_queue base;
  tt_aws *aws;
  char prefix[101];
  int create;
  qent q[MAXQ];
  int nq;
  op *ops; /* every op in flight */
  int interrupted; /* close began: long polls answer empty, none parks */
  int closing;
  tt_queue_close_cb ccb;
  void *cud;
  op *pend; /* deletes and visibility changes waiting for the batch flush */
  uv_timer_t flush;
  int flush_armed;
} sqs;

enum { K_DECLARE, K_SEND, K_RECV, K_DEL, K_VIS, K_PURGE, K_REDRIVE, K_COUNTS };

struct op {
  sqs *s;
  int kind, stage, status;
  op *next, *prev, *pnext;
  char queue[QNAME_MAX + 1];
  qent *qe;
  void *cb, *ud;
  uv_timer_t t;
  tt_aws_req *req;
  char *body;
  size_t len;
  int64_t delay_ms, vis_ms;
  tt_queue_recv_opts ro;
  char *receipt;
  int which;
  int64_t count;
  tt_queue_attrs attrs;
  tt_queue_counts counts;
  char sent_id[TT_ID_SIZE];
};

/* ---- op lifecycle --------------------------------------------------------- */

static void maybe_closed(sqs *s);

static void op_closed(uv_handle_t *h) {
  op *o = h->data;
  sqs *s = o->s;
  free(o->body);
  free(o->receipt);
  free(o);
  maybe_closed(s);
}

static void complete(op *o) {
  sqs *s = o->s;
  if (o->prev)
    o->prev->next = o->next;
  else
    s->ops = o->next;
  if (o->next) o->next->prev = o->prev;
  int st = o->status;
  switch (o->kind) {
  case K_SEND:
    ((tt_queue_send_cb)o->cb)(o->ud, st, st ? NULL : o->sent_id);
    break;
  case K_RECV:
    ((tt_queue_recv_cb)o->cb)(o->ud, st, NULL, 0);
    break;
  case K_PURGE:
  case K_REDRIVE:
    ((tt_queue_count_cb)o->cb)(o->ud, st, st ? 0 : o->count);
    break;
  case K_COUNTS:
    ((tt_queue_counts_cb)o->cb)(o->ud, st, st ? NULL : &o->counts);
    break;
  default:
    if (o->cb) ((tt_queue_cb)o->cb)(o->ud, st);
  }
  uv_close((uv_handle_t *)&o->t, op_closed);
}

static void on_deferred(uv_timer_t *t) { complete(t->data); }

/* completes later, on the loop (argument errors, cached answers) */
static void done_later(op *o, int status) {
  o->status = status;
  uv_timer_start(&o->t, on_deferred, 0, 0);
}

static op *op_new(sqs *s, int kind, const char *queue, void *cb, void *ud) {
  op *o = calloc(1, sizeof *o);
  if (!o) {
    tt_logf(TT_LOG_ERROR, "sqs: out of memory");
    abort();
  }
  o->s = s;
  o->kind = kind;
  o->cb = cb;
  o->ud = ud;
  uv_timer_init(s->base.loop, &o->t);
  o->t.data = o;
  o->next = s->ops;
  if (s->ops) s->ops->prev = o;
  s->ops = o;
  if (queue) snprintf(o->queue, sizeof o->queue, "%s", queue);
  return o;
}

static int name_ok(const char *q) {
  if (!q) return 0;
  size_t n = 0;
  for (; q[n]; n++) {
    char c = q[n];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
    if (n >= QNAME_MAX) return 0;
  }
  return n > 0;
}

static void sqs_name(sqs *s, const char *q, char *out, size_t n) {
  int k = snprintf(out, n, "%.100s%s%.80s", s->prefix, s->prefix[0] ? "-" : "", q);
  (void)k;
  for (char *c = out; *c; c++)
    if (*c == '.') *c = '_';
}

static int map_err(int err, const tt_aws_resp *r) {
  if (err != TT_EIO) return err;
  const char *c = r->code;
  if (!strcmp(c, "QueueDoesNotExist") || !strcmp(c, "AWS.SimpleQueueService.NonExistentQueue"))
    return TT_ENOTFOUND;
  if (!strcmp(c, "ReceiptHandleIsInvalid") || !strcmp(c, "InvalidParameterValue") ||
      !strcmp(c, "InvalidAttributeValue") || !strcmp(c, "MissingParameter"))
    return TT_EINVAL;
  if (!strcmp(c, "MessageNotInflight")) return TT_ESTALE;
  if (!strcmp(c, "InvalidMessageContents")) return TT_EINVAL;
  return TT_EIO;
}

/* POSTs j (stolen) as action */
static void call(op *o, const char *action, json_t *j, tt_aws_cb cb, int64_t timeout_ms) {
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!body) {
    done_later(o, TT_ENOMEM);
    return;
  }
  tt_aws_call c = {.svc = TT_AWS_SQS,
                   .action = action,
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = strlen(body),
                   .timeout_ms = timeout_ms};
  o->req = tt_aws_call_start(o->s->aws, &c, cb, o);
  free(body);
  if (!o->req) done_later(o, TT_ENOMEM);
}

/* ---- queue URLs ------------------------------------------------------------ */

static void step(op *o);

static qent *qfind(sqs *s, const char *q) {
  for (int i = 0; i < s->nq; i++)
    if (!strcmp(s->q[i].name, q)) return &s->q[i];
  return NULL;
}

static qent *qadd(sqs *s, const char *q) {
  qent *e = qfind(s, q);
  if (e) return e;
  if (s->nq == MAXQ) return NULL;
  e = &s->q[s->nq++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", q);
  return e;
}

static void on_attrs(void *ud, int err, const tt_aws_resp *r);

static void read_redrive(qent *e, json_t *attrs) {
  const char *rp = json_string_value(json_object_get(attrs, "RedrivePolicy"));
  e->max_receives = 0;
  if (!rp) return;
  json_t *p = json_loads(rp, 0, NULL);
  if (!p) return;
  json_t *m = json_object_get(p, "maxReceiveCount");
  e->max_receives = json_is_integer(m) ? (int)json_integer_value(m)
                    : json_is_string(m) ? atoi(json_string_value(m))
                                        : 0;
  const char *arn = json_string_value(json_object_get(p, "deadLetterTargetArn"));
  if (arn) {
    /* the DLQ's URL: same endpoint and account, its name after the last ':' */
    const char *name = strrchr(arn, ':');
    const char *slash = e->url ? strrchr(e->url, '/') : NULL;
    if (name && slash) {
      free(e->dlq_url);
      size_t n = (size_t)(slash - e->url) + 1 + strlen(name + 1) + 1;
      e->dlq_url = malloc(n);
      if (e->dlq_url) snprintf(e->dlq_url, n, "%.*s%s", (int)(slash - e->url + 1), e->url, name + 1);
    }
  }
  json_decref(p);
}

static void on_url(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  sqs *s = o->s;
  o->req = NULL;
  err = map_err(err, r);
  char name[200];
  sqs_name(s, o->queue, name, sizeof name);
  if (err == TT_ENOTFOUND && s->create && o->stage == 0) {
    /* dev/test: create it (and its dead-letter queue first) */
    o->stage = 1;
    json_t *j = json_pack("{s:s}", "QueueName", name);
    if (o->kind == K_DECLARE) {
      char vis[32];
      snprintf(vis, sizeof vis, "%lld", (long long)((o->attrs.visibility_ms + 999) / 1000));
      json_object_set_new(j, "Attributes", json_pack("{s:s}", "VisibilityTimeout", vis));
    }
    call(o, "sqs:CreateQueue", j, on_url, 0); /* iam: setup-only */
    return;
  }
  if (err) {
    if (err == TT_ENOTFOUND)
      tt_logf(TT_LOG_ERROR, "sqs: queue %s does not exist (create it with tintype aws init)", name);
    done_later(o, err);
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  const char *u = json_string_value(json_object_get(j, "QueueUrl"));
  qent *e = u ? qadd(s, o->queue) : NULL;
  if (e) {
    free(e->url);
    e->url = strdup(u);
  }
  json_decref(j);
  if (!e || !e->url) {
    done_later(o, e ? TT_ENOMEM : TT_EIO);
    return;
  }
  o->qe = e;
  /* read the RedrivePolicy once */
  json_t *q = json_pack("{s:s,s:[s]}", "QueueUrl", e->url, "AttributeNames", "RedrivePolicy");
  o->stage = 2;
  call(o, "sqs:GetQueueAttributes", q, on_attrs, 0);
}

static void on_attrs(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  read_redrive(o->qe, json_object_get(j, "Attributes"));
  json_decref(j);
  o->stage = 10;
  step(o);
}

static void resolve(op *o) {
  if (o->s->interrupted && o->kind == K_RECV) {
    done_later(o, 0);
    return;
  }
  qent *e = qfind(o->s, o->queue);
  if (e && e->url) {
    o->qe = e;
    o->stage = 10;
    step(o);
    return;
  }
  char name[200];
  sqs_name(o->s, o->queue, name, sizeof name);
  call(o, "sqs:GetQueueUrl", json_pack("{s:s}", "QueueName", name), on_url, 0);
}

/* ---- the operations --------------------------------------------------------- */

static void on_plain(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  o->status = map_err(err, r);
  if (o->kind == K_SEND && !err) {
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "MessageId"));
    snprintf(o->sent_id, sizeof o->sent_id, "%s", id ? id : "");
    json_decref(j);
  }
  complete(o);
}

static void on_received(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    o->status = err == TT_ECANCELED ? 0 : map_err(err, r);
    complete(o);
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *msgs = json_object_get(j, "Messages");
  size_t n = json_array_size(msgs);
  if (n > TT_QUEUE_MAX_BATCH) n = TT_QUEUE_MAX_BATCH;
  tt_queue_msg m[TT_QUEUE_MAX_BATCH];
  memset(m, 0, sizeof m);
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(msgs, i);
    const char *id = json_string_value(json_object_get(x, "MessageId"));
    snprintf(m[i].id, sizeof m[i].id, "%s", id ? id : "");
    json_t *b = json_object_get(x, "Body");
    m[i].body = json_string_value(b) ? json_string_value(b) : "";
    m[i].len = json_string_value(b) ? json_string_length(b) : 0;
    const char *rh = json_string_value(json_object_get(x, "ReceiptHandle"));
    m[i].receipt = rh ? rh : "";
    json_t *at = json_object_get(x, "Attributes");
    const char *rc = json_string_value(json_object_get(at, "ApproximateReceiveCount"));
    const char *st = json_string_value(json_object_get(at, "SentTimestamp"));
    m[i].receive_count = rc ? atoi(rc) : 1;
    m[i].sent_at = st ? atoll(st) : 0;
  }
  sqs *s = o->s;
  if (o->prev)
    o->prev->next = o->next;
  else
    s->ops = o->next;
  if (o->next) o->next->prev = o->prev;
  ((tt_queue_recv_cb)o->cb)(o->ud, 0, m, n);
  json_decref(j);
  uv_close((uv_handle_t *)&o->t, op_closed);
}

static void on_counts(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *a = json_object_get(j, "Attributes");
  const char *v = json_string_value(json_object_get(a, "ApproximateNumberOfMessages"));
  const char *f = json_string_value(json_object_get(a, "ApproximateNumberOfMessagesNotVisible"));
  const char *d = json_string_value(json_object_get(a, "ApproximateNumberOfMessagesDelayed"));
  if (o->stage == 10) {
    o->counts.visible = v ? atoll(v) : 0;
    o->counts.in_flight = f ? atoll(f) : 0;
    o->counts.delayed = d ? atoll(d) : 0;
  } else {
    o->counts.dead = (v ? atoll(v) : 0) + (f ? atoll(f) : 0) + (d ? atoll(d) : 0);
  }
  json_decref(j);
  if (o->stage == 10 && o->qe->dlq_url) {
    o->stage = 11;
    step(o);
    return;
  }
  done_later(o, 0);
}

static void on_purge_counted(void *ud, int err, const tt_aws_resp *r);

static void purge_next(op *o) {
  /* stage 10: count + purge the live queue; 12: the dead one */
  const char *url = NULL;
  if (o->stage == 10 && (o->which & TT_QUEUE_LIVE)) url = o->qe->url;
  if (o->stage <= 12 && !url && (o->which & TT_QUEUE_DEAD) && o->qe->dlq_url) {
    o->stage = 12;
    url = o->qe->dlq_url;
  }
  if (!url) {
    done_later(o, 0);
    return;
  }
  call(o, "sqs:GetQueueAttributes",
       json_pack("{s:s,s:[s,s,s]}", "QueueUrl", url, "AttributeNames", "ApproximateNumberOfMessages",
                 "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"),
       on_purge_counted, 0);
}

static void on_purged(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  o->stage = o->stage == 11 ? 12 : 14;
  if (o->stage == 14) {
    done_later(o, 0);
    return;
  }
  purge_next(o);
}

static void on_purge_counted(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  json_t *a = json_object_get(j, "Attributes");
  const char *keys[] = {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"};
  for (int i = 0; i < 3; i++) {
    const char *v = json_string_value(json_object_get(a, keys[i]));
    o->count += v ? atoll(v) : 0;
  }
  json_decref(j);
  const char *url = o->stage == 10 ? o->qe->url : o->qe->dlq_url;
  o->stage = o->stage == 10 ? 11 : 13;
  call(o, "sqs:PurgeQueue", json_pack("{s:s}", "QueueUrl", url), on_purged, 0); /* iam: admin-only */
}

/* batch flush: deletes and visibility changes of one loop turn */
typedef struct batch {
  op *o[10];
  int n;
  int kind;
} batch;

static void on_batch(void *ud, int err, const tt_aws_resp *r) {
  batch *b = ud;
  json_t *j = err ? NULL : json_loadb(r->body, r->len, 0, NULL);
  int st = map_err(err, r);
  for (int i = 0; i < b->n; i++) b->o[i]->status = st;
  if (j) {
    json_t *f = json_object_get(j, "Failed");
    for (size_t i = 0; i < json_array_size(f); i++) {
      json_t *x = json_array_get(f, i);
      const char *id = json_string_value(json_object_get(x, "Id"));
      const char *code = json_string_value(json_object_get(x, "Code"));
      int k = id ? atoi(id) : -1;
      if (k >= 0 && k < b->n) {
        tt_aws_resp fake = {400, "", 0, code ? code : "", "", NULL};
        b->o[k]->status = map_err(TT_EIO, &fake);
      }
    }
    json_decref(j);
  }
  for (int i = 0; i < b->n; i++) {
    b->o[i]->req = NULL;
    complete(b->o[i]);
  }
  free(b);
}

static void on_one(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  o->status = map_err(err, r);
  complete(o);
}

static void send_batch(sqs *s, op **v, int n, int kind) {
  const char *url = v[0]->qe->url;
  if (n == 1) {
    op *o = v[0];
    json_t *j = json_pack("{s:s,s:s}", "QueueUrl", url, "ReceiptHandle", o->receipt);
    if (kind == K_VIS)
      json_object_set_new(j, "VisibilityTimeout", json_integer((o->vis_ms + 999) / 1000));
    call(o, kind == K_DEL ? "sqs:DeleteMessage" : "sqs:ChangeMessageVisibility", j, on_one, 0);
    return;
  }
  batch *b = calloc(1, sizeof *b);
  if (!b) abort();
  b->n = n;
  b->kind = kind;
  json_t *entries = json_array();
  for (int i = 0; i < n; i++) {
    b->o[i] = v[i];
    char id[16];
    snprintf(id, sizeof id, "%d", i % 10);
    json_t *e = json_pack("{s:s,s:s}", "Id", id, "ReceiptHandle", v[i]->receipt);
    if (kind == K_VIS)
      json_object_set_new(e, "VisibilityTimeout", json_integer((v[i]->vis_ms + 999) / 1000));
    json_array_append_new(entries, e);
  }
  json_t *j = json_pack("{s:s,s:o}", "QueueUrl", url, "Entries", entries);
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  tt_aws_call c = {.svc = TT_AWS_SQS,
                   /* the batch calls need the single calls' IAM actions */
                   .action = kind == K_DEL ? "sqs:DeleteMessage" : "sqs:ChangeMessageVisibility",
                   .op = kind == K_DEL ? "DeleteMessageBatch" : "ChangeMessageVisibilityBatch",
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = body ? strlen(body) : 0};
  tt_aws_req *rq = body ? tt_aws_call_start(s->aws, &c, on_batch, b) : NULL;
  free(body);
  if (!rq) abort(); /* out of memory */
  for (int i = 0; i < n; i++) v[i]->req = rq;
}

static void on_flush(uv_timer_t *t) {
  sqs *s = t->data;
  s->flush_armed = 0;
  op *list = s->pend;
  s->pend = NULL;
  while (list) {
    /* take the first op's (queue, kind) group, up to 10 */
    op *v[10];
    int n = 0;
    op *rest = NULL, **tail = &rest;
    op *first = list;
    for (op *o = list, *nx; o; o = nx) {
      nx = o->pnext;
      o->pnext = NULL;
      if (n < 10 && o->kind == first->kind && o->qe == first->qe) {
        v[n++] = o;
      } else {
        *tail = o;
        tail = &o->pnext;
      }
    }
    send_batch(s, v, n, first->kind);
    list = rest;
  }
}

/* declare with ?create=1: visibility timeout, and a dead-letter queue
 * "NAME-dlq" with the RedrivePolicy when max_receives > 0 */
static void on_declared_set(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  o->status = map_err(err, r);
  if (!o->status) {
    o->qe->max_receives = o->attrs.max_receives;
    if (o->attrs.max_receives == 0) {
      free(o->qe->dlq_url);
      o->qe->dlq_url = NULL;
    }
  }
  complete(o);
}

static void set_attrs(op *o, const char *dlq_arn) {
  char vis[32], mr[32];
  snprintf(vis, sizeof vis, "%lld", (long long)((o->attrs.visibility_ms + 999) / 1000));
  json_t *a = json_pack("{s:s}", "VisibilityTimeout", vis);
  if (dlq_arn) {
    snprintf(mr, sizeof mr, "%d", o->attrs.max_receives);
    json_t *rp = json_pack("{s:s,s:s}", "deadLetterTargetArn", dlq_arn, "maxReceiveCount", mr);
    char *t = json_dumps(rp, JSON_COMPACT);
    json_decref(rp);
    json_object_set_new(a, "RedrivePolicy", json_string(t ? t : ""));
    free(t);
  } else if (o->attrs.max_receives == 0 && o->qe->max_receives) {
    json_object_set_new(a, "RedrivePolicy", json_string(""));
  }
  call(o, "sqs:SetQueueAttributes", json_pack("{s:s,s:o}", "QueueUrl", o->qe->url, "Attributes", a), /* iam: setup-only */
       on_declared_set, 0);
}

static void on_dlq_arn(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  const char *arn = json_string_value(json_object_get(json_object_get(j, "Attributes"), "QueueArn"));
  if (!arn) {
    json_decref(j);
    done_later(o, TT_EIO);
    return;
  }
  set_attrs(o, arn);
  json_decref(j);
}

static void on_dlq_created(void *ud, int err, const tt_aws_resp *r) {
  op *o = ud;
  o->req = NULL;
  if (err) {
    done_later(o, map_err(err, r));
    return;
  }
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  const char *u = json_string_value(json_object_get(j, "QueueUrl"));
  if (u) {
    free(o->qe->dlq_url);
    o->qe->dlq_url = strdup(u);
  }
  json_decref(j);
  if (!o->qe->dlq_url) {
    done_later(o, TT_EIO);
    return;
  }
  call(o, "sqs:GetQueueAttributes",
       json_pack("{s:s,s:[s]}", "QueueUrl", o->qe->dlq_url, "AttributeNames", "QueueArn"), on_dlq_arn,
       0);
}

static void declare_create(op *o) {
  sqs *s = o->s;
  if (o->attrs.max_receives > 0) {
    char name[200];
    sqs_name(s, o->queue, name, sizeof name - 4);
    strcat(name, "-dlq");
    call(o, "sqs:CreateQueue", /* iam: setup-only */
         json_pack("{s:s,s:{s:s}}", "QueueName", name, "Attributes", "MessageRetentionPeriod",
                   "1209600"),
         on_dlq_created, 0);
    return;
  }
  set_attrs(o, NULL);
}

static void step(op *o) {
  sqs *s = o->s;
  qent *e = o->qe;
  switch (o->kind) {
  case K_DECLARE:
    if (o->attrs.max_receives != e->max_receives && !s->create)
      tt_logf(TT_LOG_WARN,
              "sqs: queue %s: maxReceiveCount of its RedrivePolicy is %d, max-receives is %d; "
              "make them equal so the last attempt fails the job",
              o->queue, e->max_receives, o->attrs.max_receives);
    if (s->create && o->stage == 10) {
      declare_create(o);
      return;
    }
    done_later(o, 0);
    return;
  case K_SEND: {
    json_t *j = json_pack("{s:s,s:s%}", "QueueUrl", e->url, "MessageBody", o->body, o->len);
    if (o->delay_ms > 0) json_object_set_new(j, "DelaySeconds", json_integer((o->delay_ms + 999) / 1000));
    call(o, "sqs:SendMessage", j, on_plain, 0);
    return;
  }
  case K_RECV: {
    int64_t wait = (o->ro.wait_ms + 999) / 1000;
    json_t *j = json_pack("{s:s,s:I,s:I,s:[s,s],s:[s,s]}", "QueueUrl", e->url, "MaxNumberOfMessages",
                          (json_int_t)(o->ro.max ? o->ro.max : 1), "WaitTimeSeconds",
                          (json_int_t)wait, "AttributeNames", "ApproximateReceiveCount",
                          "SentTimestamp", "MessageSystemAttributeNames",
                          "ApproximateReceiveCount", "SentTimestamp");
    if (o->ro.visibility_ms >= 0)
      json_object_set_new(j, "VisibilityTimeout", json_integer((o->ro.visibility_ms + 999) / 1000));
    call(o, "sqs:ReceiveMessage", j, on_received, wait * 1000 + 10000);
    return;
  }
  case K_DEL:
  case K_VIS:
    o->pnext = s->pend;
    s->pend = o;
    if (!s->flush_armed) {
      s->flush_armed = 1;
      uv_timer_start(&s->flush, on_flush, 0, 0);
    }
    return;
  case K_PURGE:
    purge_next(o);
    return;
  case K_COUNTS: {
    const char *url = o->stage == 10 ? e->url : e->dlq_url;
    call(o, "sqs:GetQueueAttributes",
         json_pack("{s:s,s:[s,s,s]}", "QueueUrl", url, "AttributeNames",
                   "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                   "ApproximateNumberOfMessagesDelayed"),
         on_counts, 0);
    return;
  }
  }
  done_later(o, TT_EINTERNAL);
}

/* ---- the vtable ------------------------------------------------------------- */

#define Q(q) ((sqs *)(q))

static void q_declare(tt_queue *q, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb,
                      void *ud) {
  op *o = op_new(Q(q), K_DECLARE, queue, (void *)cb, ud);
  if (!name_ok(queue) || !a || a->visibility_ms < 0 || a->visibility_ms > 12 * 3600 * 1000 ||
      a->max_receives < 0 || a->max_receives > 1000) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->attrs = *a;
  resolve(o);
}

static void q_send(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay_ms,
                   tt_queue_send_cb cb, void *ud) {
  op *o = op_new(Q(q), K_SEND, queue, (void *)cb, ud);
  if (!name_ok(queue) || !body || len == 0 || delay_ms < 0 || delay_ms > 15 * 60 * 1000) {
    done_later(o, TT_EINVAL);
    return;
  }
  if (len > TT_QUEUE_MAX_BODY) {
    done_later(o, TT_ETOOBIG);
    return;
  }
  o->body = malloc(len + 1);
  if (!o->body) {
    done_later(o, TT_ENOMEM);
    return;
  }
  memcpy(o->body, body, len);
  o->body[len] = 0;
  o->len = len;
  o->delay_ms = delay_ms;
  resolve(o);
}

static void q_receive(tt_queue *q, const char *queue, const tt_queue_recv_opts *ro,
                      tt_queue_recv_cb cb, void *ud) {
  op *o = op_new(Q(q), K_RECV, queue, (void *)cb, ud);
  if (!name_ok(queue) || !ro || ro->max < 0 || ro->max > TT_QUEUE_MAX_BATCH ||
      ro->visibility_ms > 12 * 3600 * 1000 || ro->wait_ms < 0 || ro->wait_ms > 20000) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->ro = *ro;
  resolve(o);
}

static void q_receipt_op(tt_queue *q, int kind, const char *queue, const char *receipt,
                         int64_t vis_ms, tt_queue_cb cb, void *ud) {
  op *o = op_new(Q(q), kind, queue, (void *)cb, ud);
  if (!name_ok(queue) || !receipt || !*receipt || strlen(receipt) > 4096 || vis_ms < 0 ||
      vis_ms > 12 * 3600 * 1000) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->receipt = strdup(receipt);
  o->vis_ms = vis_ms;
  if (!o->receipt) {
    done_later(o, TT_ENOMEM);
    return;
  }
  resolve(o);
}

static void q_del(tt_queue *q, const char *queue, const char *receipt, tt_queue_cb cb, void *ud) {
  q_receipt_op(q, K_DEL, queue, receipt, 0, cb, ud);
}

static void q_vis(tt_queue *q, const char *queue, const char *receipt, int64_t ms, tt_queue_cb cb,
                  void *ud) {
  q_receipt_op(q, K_VIS, queue, receipt, ms, cb, ud);
}

static void q_purge(tt_queue *q, const char *queue, int which, tt_queue_count_cb cb, void *ud) {
  op *o = op_new(Q(q), K_PURGE, queue, (void *)cb, ud);
  if (!name_ok(queue) || !(which & (TT_QUEUE_LIVE | TT_QUEUE_DEAD)) ||
      (which & ~(TT_QUEUE_LIVE | TT_QUEUE_DEAD))) {
    done_later(o, TT_EINVAL);
    return;
  }
  o->which = which;
  resolve(o);
}

static void q_redrive(tt_queue *q, const char *queue, tt_queue_count_cb cb, void *ud) {
  op *o = op_new(Q(q), K_REDRIVE, queue, (void *)cb, ud);
  done_later(o, name_ok(queue) ? TT_ENOTSUP : TT_EINVAL);
}

static void q_counts(tt_queue *q, const char *queue, tt_queue_counts_cb cb, void *ud) {
  op *o = op_new(Q(q), K_COUNTS, queue, (void *)cb, ud);
  if (!name_ok(queue)) {
    done_later(o, TT_EINVAL);
    return;
  }
  resolve(o);
}

static void flush_closed(uv_handle_t *h) {
  sqs *s = h->data;
  tt_queue_close_cb cb = s->ccb;
  void *ud = s->cud;
  free(s);
  if (cb) cb(ud);
}

static void maybe_closed(sqs *s) {
  if (!s->closing || s->ops || s->closing == 2) return;
  s->closing = 2;
  for (int i = 0; i < s->nq; i++) {
    free(s->q[i].url);
    free(s->q[i].dlq_url);
  }
  tt_aws_release(s->aws);
  uv_close((uv_handle_t *)&s->flush, flush_closed);
}

/* close began: waiting long polls end now, empty; everything else completes */
static void q_interrupt(tt_queue *q) {
  sqs *s = Q(q);
  s->interrupted = 1;
  for (op *o = s->ops; o; o = o->next)
    if (o->kind == K_RECV && o->req) tt_aws_cancel(o->req);
}

/* the front calls this once nothing is in flight */
static void q_close(tt_queue *q, tt_queue_close_cb cb, void *ud) {
  sqs *s = Q(q);
  s->interrupted = 1;
  s->closing = 1;
  s->ccb = cb;
  s->cud = ud;
  maybe_closed(s);
}

static const tt_queue_ops sqs_ops = {
    .name = "sqs",
    .declare = q_declare,
    .send = q_send,
    .receive = q_receive,
    .del = q_del,
    .change_visibility = q_vis,
    .purge = q_purge,
    .redrive = q_redrive,
    .counts = q_counts,
    .interrupt = q_interrupt,
    .close = q_close,
};

int tt_queue_sqs_open(uv_loop_t *loop, const char *url, tt_queue **out) {
  *out = NULL;
  if (strncmp(url, "sqs://", 6)) return TT_EINVAL;
  const char *p = url + 6;
  size_t n = strcspn(p, "?/");
  sqs *s = calloc(1, sizeof *s);
  if (!s) return TT_ENOMEM;
  if (n >= sizeof s->prefix) {
    free(s);
    return TT_EINVAL;
  }
  memcpy(s->prefix, p, n);
  for (size_t i = 0; i < n; i++) {
    char c = s->prefix[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      free(s);
      return TT_EINVAL;
    }
  }
  char v[16];
  s->create = tt_aws_url_param(url, "create", v, sizeof v) && !strcmp(v, "1");
  s->aws = tt_aws_acquire(loop);
  if (!s->aws) {
    free(s);
    return TT_ENOMEM;
  }
  s->base.ops = &sqs_ops;
  s->base.loop = loop;
  uv_timer_init(loop, &s->flush);
  s->flush.data = s;
  *out = &s->base;
  return TT_OK;
}
