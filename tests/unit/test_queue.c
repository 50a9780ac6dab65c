/* test_queue.c — the queue contract (include/tintype/queue.h), in named
 * cases: send/receive/delete, visibility expiry redelivers, change
 * visibility, delay, max_receives -> dead letter, redrive, purge, counts,
 * long poll (wakes on a send, times out), close.
 *
 * The backend is $TT_TEST_QUEUE_URL (e.g. sqs://... against an emulator),
 * else a temporary sqlite:// file. Queue names carry a per-run nonce. Cases
 * marked embedded test what only the SQLite backend promises (its URL
 * forms, TT_ESTALE for a stale receipt, "deleted exactly once"; SQS may
 * or may not delete there, see queue.h). Several processes on one file:
 * test_queue_multiproc.c. `test_queue CASE...` runs some cases. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/error.h"
#include "tintype/queue.h"
#include "tt_test.h"

static uv_loop_t loop;
static tt_queue *q;
static int returned, inline_calls;

static struct {
  int calls, status;
  int n;
  char body[TT_QUEUE_MAX_BATCH][64];
  char receipt[TT_QUEUE_MAX_BATCH][64];
  char id[TT_QUEUE_MAX_BATCH][TT_ID_SIZE];
  int rc[TT_QUEUE_MAX_BATCH];
  int64_t count;
  tt_queue_counts c;
  uint64_t at; /* uv_now at callback */
} r;

static void note(int status) {
  r.calls++;
  r.status = status;
  r.at = uv_now(&loop);
  if (!returned) inline_calls++;
}
static void send_cb(void *ud, int status, const char *id) {
  (void)ud;
  note(status);
  if (id) snprintf(r.id[0], TT_ID_SIZE, "%s", id);
}
static void recv_cb(void *ud, int status, const tt_queue_msg *m, size_t n) {
  (void)ud;
  note(status);
  r.n = (int)n;
  for (size_t i = 0; i < n; i++) {
    snprintf(r.body[i], sizeof r.body[i], "%.*s", (int)m[i].len, m[i].body);
    snprintf(r.receipt[i], sizeof r.receipt[i], "%s", m[i].receipt);
    snprintf(r.id[i], TT_ID_SIZE, "%s", m[i].id);
    r.rc[i] = m[i].receive_count;
  }
}
static void plain_cb(void *ud, int status) {
  (void)ud;
  note(status);
}
static void count_cb(void *ud, int status, int64_t n) {
  (void)ud;
  note(status);
  r.count = n;
}
static void counts_cb(void *ud, int status, const tt_queue_counts *c) {
  (void)ud;
  note(status);
  if (c) r.c = *c;
}

static void run(void) {
  returned = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  returned = 0;
}
#define DO(call)           \
  do {                     \
    r.calls = 0;           \
    returned = 0;          \
    call;                  \
    run();                 \
    CHECK_INT(r.calls, 1); \
  } while (0)

/* the queue named NAME for this run */
static const char *Q(const char *name) {
  static char buf[8][TT_QUEUE_NAME_MAX + 1];
  static int slot;
  char *b = buf[slot++ % 8];
  snprintf(b, TT_QUEUE_NAME_MAX + 1, "%s-%s", tt_test_nonce(), name);
  return b;
}

static void qsend(const char *queue, const char *s, int64_t delay) {
  DO(tt_queue_send(q, queue, s, strlen(s), delay, send_cb, NULL));
  CHECK_INT(r.status, TT_OK);
}
static void qrecv(const char *queue, int max, int64_t vis, int64_t wait) {
  tt_queue_recv_opts o = {max, vis, wait};
  DO(tt_queue_receive(q, queue, &o, recv_cb, NULL));
}
static tt_queue_counts counts(const char *queue) {
  DO(tt_queue_counts_get(q, queue, counts_cb, NULL));
  return r.c;
}

/* long poll helper: a send from a timer while a receive waits */
static uv_timer_t later;
static void send_later(uv_timer_t *t) {
  (void)t;
  tt_queue_send(q, Q("lp"), "wake", 4, 0, send_cb, NULL);
}

static char tmpdir[] = "/tmp/tt-queue-XXXXXX";

static void case_urls(void) {
  tt_queue *x;
  CHECK_INT(tt_queue_open(&loop, "sqs://bad prefix", &x), TT_EINVAL);
  CHECK_INT(tt_queue_open(&loop, "amqp://x", &x), TT_EINVAL);
  CHECK_INT(tt_queue_open(&loop, "sqlite://x.db?sync=sometimes", &x), TT_EINVAL);
}

/* bad arguments come back through the callback, later */
static void case_bad_arguments(void) {
  DO(tt_queue_send(q, "bad name!", "x", 1, 0, send_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_queue_send(q, Q("jobs"), "x", 0, 0, send_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  {
    char *big = calloc(1, TT_QUEUE_MAX_BODY + 1);
    DO(tt_queue_send(q, Q("jobs"), big, TT_QUEUE_MAX_BODY + 1, 0, send_cb, NULL));
    CHECK_INT(r.status, TT_ETOOBIG);
    free(big);
  }
  qrecv(Q("jobs"), 11, -1, 0);
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_queue_delete(q, Q("jobs"), "garbage", plain_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_queue_purge(q, Q("jobs"), 0, count_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
}

static void case_send_receive_delete(void) {
  const char *jobs = Q("jobs"), *other = Q("other");
  qsend(jobs, "one", 0);
  char id1[TT_ID_SIZE];
  memcpy(id1, r.id[0], sizeof id1);
  CHECK(tt_id_valid(id1));
  tt_queue_counts c = counts(jobs);
  CHECK_INT(c.visible, 1);
  CHECK_INT(c.in_flight, 0);
  qrecv(jobs, 10, 60000, 0);
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "one");
  CHECK_STR(r.id[0], id1);
  CHECK_INT(r.rc[0], 1);
  char rc1[64];
  snprintf(rc1, sizeof rc1, "%s", r.receipt[0]);
  c = counts(jobs);
  CHECK_INT(c.visible, 0);
  CHECK_INT(c.in_flight, 1);
  qrecv(jobs, 10, 60000, 0); /* invisible now */
  CHECK_INT(r.n, 0);
  qrecv(other, 10, 60000, 0); /* queues are separate */
  CHECK_INT(r.n, 0);
  DO(tt_queue_delete(q, jobs, rc1, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  c = counts(jobs);
  CHECK_INT(c.visible + c.in_flight + c.delayed + c.dead, 0);
}

/* sqlite: a receipt names its queue, and a delete succeeds once */
static void case_delete_exactly_once(void) {
  const char *jobs = Q("once"), *other = Q("other");
  qsend(jobs, "one", 0);
  qrecv(jobs, 1, 60000, 0);
  char rc1[64];
  snprintf(rc1, sizeof rc1, "%s", r.receipt[0]);
  DO(tt_queue_delete(q, other, rc1, plain_cb, NULL)); /* wrong queue: nothing */
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_queue_delete(q, jobs, rc1, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  DO(tt_queue_delete(q, jobs, rc1, plain_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND); /* deleted exactly once */
}

/* visibility expiry redelivers with a new receipt */
static void case_visibility_redelivers(void) {
  const char *jobs = Q("redeliver");
  qsend(jobs, "two", 0);
  qrecv(jobs, 1, 100, 0);
  CHECK_INT(r.n, 1);
  char old[64];
  snprintf(old, sizeof old, "%s", r.receipt[0]);
  usleep(150 * 1000);
  qrecv(jobs, 1, 60000, 0);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "two");
  CHECK_INT(r.rc[0], 2);
  CHECK(strcmp(old, r.receipt[0]) != 0);
  char fresh[64];
  snprintf(fresh, sizeof fresh, "%s", r.receipt[0]);
  /* change visibility: give it back at once */
  DO(tt_queue_change_visibility(q, jobs, fresh, 0, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  qrecv(jobs, 1, 60000, 0);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.rc[0], 3);
  /* still in flight: nobody else gets it; its latest receipt acknowledges */
  snprintf(fresh, sizeof fresh, "%s", r.receipt[0]);
  qrecv(jobs, 1, 0, 0);
  CHECK_INT(r.n, 0);
  DO(tt_queue_delete(q, jobs, fresh, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
}

/* sqlite: a stale receipt changes nothing (SQS: may or may not delete) */
static void case_stale_receipt_refused(void) {
  const char *jobs = Q("stale");
  qsend(jobs, "two", 0);
  qrecv(jobs, 1, 100, 0);
  char old[64];
  snprintf(old, sizeof old, "%s", r.receipt[0]);
  usleep(150 * 1000);
  qrecv(jobs, 1, 60000, 0);
  CHECK_INT(r.n, 1);
  DO(tt_queue_delete(q, jobs, old, plain_cb, NULL));
  CHECK_INT(r.status, TT_ESTALE); /* never deletes a message redelivered */
  DO(tt_queue_change_visibility(q, jobs, old, 0, plain_cb, NULL));
  CHECK_INT(r.status, TT_ESTALE);
  tt_queue_counts c = counts(jobs);
  CHECK_INT(c.in_flight, 1); /* still there */
}

/* a valid receipt still deletes after its visibility passed, if nobody
 * received the message again; an extension holds */
static void case_change_visibility(void) {
  const char *vis = Q("vis");
  char fresh[64];
  qsend(vis, "three", 0);
  qrecv(vis, 1, 50, 0);
  snprintf(fresh, sizeof fresh, "%s", r.receipt[0]);
  DO(tt_queue_change_visibility(q, vis, fresh, 60000, plain_cb, NULL)); /* extend */
  CHECK_INT(r.status, TT_OK);
  usleep(100 * 1000);
  qrecv(vis, 1, 50, 0);
  CHECK_INT(r.n, 0); /* extension held */
  DO(tt_queue_change_visibility(q, vis, fresh, 10, plain_cb, NULL));
  usleep(30 * 1000);
  DO(tt_queue_delete(q, vis, fresh, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
}

static void case_delay(void) {
  const char *delayed = Q("delayed");
  qsend(delayed, "later", 200);
  tt_queue_counts c = counts(delayed);
  CHECK_INT(c.delayed, 1);
  CHECK_INT(c.visible, 0);
  qrecv(delayed, 1, 1000, 0);
  CHECK_INT(r.n, 0);
  usleep(250 * 1000);
  qrecv(delayed, 1, 1000, 0);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "later");
}

/* max_receives -> dead letter, redrive, purge */
static void case_dead_letter_redrive_purge(void) {
  const char *dlq = Q("dlq");
  tt_queue_attrs a = {60000, 2};
  DO(tt_queue_declare(q, dlq, &a, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  qsend(dlq, "poison", 0);
  qsend(dlq, "fine", 0);
  for (int i = 0; i < 2; i++) {
    qrecv(dlq, 10, 0, 0); /* visibility 0: immediately visible again */
    CHECK_INT(r.n, 2);
  }
  qrecv(dlq, 10, 0, 0); /* third receive: both exceed max_receives */
  CHECK_INT(r.n, 0);
  tt_queue_counts c = counts(dlq);
  CHECK_INT(c.dead, 2);
  CHECK_INT(c.visible, 0);
  DO(tt_queue_delete(q, dlq, r.receipt[0], plain_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND); /* dead messages cannot be acked */
  DO(tt_queue_redrive(q, dlq, count_cb, NULL));
  CHECK_INT(r.count, 2);
  c = counts(dlq);
  CHECK_INT(c.visible, 2);
  CHECK_INT(c.dead, 0);
  qrecv(dlq, 10, 60000, 0);
  CHECK_INT(r.n, 2);
  CHECK_INT(r.rc[0], 1); /* count reset by redrive */
  DO(tt_queue_purge(q, dlq, TT_QUEUE_LIVE, count_cb, NULL));
  CHECK_INT(r.count, 2); /* in-flight ones too */
  c = counts(dlq);
  CHECK_INT(c.visible + c.in_flight + c.dead, 0);
}

/* max_receives 0: never dead */
static void case_max_receives_zero(void) {
  const char *forever = Q("forever");
  tt_queue_attrs a = {60000, 0};
  DO(tt_queue_declare(q, forever, &a, plain_cb, NULL));
  qsend(forever, "x", 0);
  for (int i = 0; i < 8; i++) qrecv(forever, 1, 0, 0);
  CHECK_INT(r.n, 1);
  CHECK_INT(r.rc[0], 8);
}

static void case_batch_of_ten(void) {
  const char *batch = Q("batch");
  for (int i = 0; i < 12; i++) qsend(batch, "m", 0);
  qrecv(batch, 10, 60000, 0);
  CHECK_INT(r.n, 10);
  int distinct = 1;
  for (int i = 0; i < 10; i++)
    for (int j = i + 1; j < 10; j++)
      if (!strcmp(r.receipt[i], r.receipt[j])) distinct = 0;
  CHECK(distinct);
}

/* long poll: a local send wakes the waiter well before wait_ms */
static void case_long_poll_wakes(void) {
  uv_timer_init(&loop, &later);
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  uv_timer_start(&later, send_later, 100, 0);
  {
    tt_queue_recv_opts o = {1, 60000, 5000};
    r.calls = 0;
    r.n = 0;
    returned = 0;
    tt_queue_receive(q, Q("lp"), &o, recv_cb, NULL);
    returned = 1;
    /* run until the receive answered (the send callback also counts) */
    while (r.n == 0 && uv_run(&loop, UV_RUN_ONCE)) {
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    returned = 0;
  }
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "wake");
  CHECK(r.at - t0 >= 90);
  CHECK(r.at - t0 < 1000);
  uv_close((uv_handle_t *)&later, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
}

/* long poll with nothing: answers empty after about wait_ms; a message that
 * becomes visible (delay) is found while waiting */
static void case_long_poll_times_out(void) {
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  qrecv(Q("lp-empty"), 1, 60000, 300);
  CHECK_INT(r.n, 0);
  CHECK_INT(r.status, TT_OK);
  CHECK(r.at - t0 >= 300);
  CHECK(r.at - t0 < 1500);
  qsend(Q("lp2"), "soon", 150);
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  qrecv(Q("lp2"), 1, 60000, 3000);
  CHECK_INT(r.n, 1);
  CHECK(r.at - t0 < 1000);
}

/* close ends a waiting long poll at once, empty */
static void case_close_ends_long_poll(void) {
  tt_queue_recv_opts o = {1, 60000, 10000};
  r.calls = 0;
  r.n = -1;
  tt_queue_receive(q, Q("nothing"), &o, recv_cb, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_run(&loop, UV_RUN_NOWAIT);
  usleep(20000);
  uv_run(&loop, UV_RUN_NOWAIT);
  returned = 1;
  tt_queue_close(q, NULL, NULL);
  q = NULL;
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(r.calls, 1);
  CHECK_INT(r.n, 0);
  CHECK(uv_now(&loop) - t0 < 1000);
}

static const tt_case cases[] = {
    {"urls", case_urls, 1},
    {"bad_arguments", case_bad_arguments, 0},
    {"send_receive_delete", case_send_receive_delete, 0},
    {"delete_exactly_once", case_delete_exactly_once, 1},
    {"visibility_redelivers", case_visibility_redelivers, 0},
    {"stale_receipt_refused", case_stale_receipt_refused, 1},
    {"change_visibility", case_change_visibility, 0},
    {"delay", case_delay, 0},
    {"dead_letter_redrive_purge", case_dead_letter_redrive_purge, 0},
    {"max_receives_zero", case_max_receives_zero, 0},
    {"batch_of_ten", case_batch_of_ten, 0},
    {"long_poll_wakes", case_long_poll_wakes, 0},
    {"long_poll_times_out", case_long_poll_times_out, 0},
    {"close_ends_long_poll", case_close_ends_long_poll, 0}, /* last: closes the queue */
};

int main(int argc, char **argv) {
  if (!mkdtemp(tmpdir)) return 2;
  char dflt[256];
  snprintf(dflt, sizeof dflt, "sqlite://%s/tintype.db", tmpdir);
  const char *url = tt_test_url("TT_TEST_QUEUE_URL", dflt);
  uv_loop_init(&loop);
  CHECK_INT(tt_queue_open(&loop, url, &q), TT_OK);
  if (!q) return 1;
  tt_run_cases(cases, sizeof cases / sizeof cases[0], argc, argv);
  if (q) {
    tt_queue_close(q, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK_INT(inline_calls, 0);
  CHECK_INT(uv_loop_close(&loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) return 2;
  TT_TEST_END();
}
