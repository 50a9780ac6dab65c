/* test_seams.c — what the seam fronts (src/store/store.c, src/queue/queue.c,
 * src/blobs/blobs.c) promise whatever the backend: a backend that fails
 * inline is heard only after the call returned, bad arguments never reach
 * the backend, the backend's close runs once nothing is in flight, and
 * calls after close fail with TT_ECANCELED. A fake backend of each seam
 * counts what reaches it. Named cases, as the contract suites. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/id.h"
#include "tintype/queue.h"
#include "tintype/store.h"
#include "tt_test.h"

static uv_loop_t loop;
static int returned, calls, inline_calls, last_status, reached, closed_backend, closed_user;

static void note(int status) {
  calls++;
  last_status = status;
  if (!returned) inline_calls++;
}
static void rec_cb(void *ud, int status, const void *rec) { (void)ud, (void)rec, note(status); }
static void run(void) {
  returned = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  returned = 0;
}
static void reset(void) { calls = inline_calls = last_status = reached = 0; }

/* ---- a store backend that fails every call inline ----------------------- */

static void fs_get(tt_store *s, tt_kind k, const char *id, tt_store_cb cb, void *ud) {
  (void)s, (void)k, (void)id;
  reached++;
  cb(ud, TT_EIO, NULL); /* inline: the front must defer it */
}
static void fs_close(tt_store *s, tt_store_close_cb cb, void *ud) {
  closed_backend++;
  free(s);
  if (cb) cb(ud);
}
static const tt_store_ops fake_store_ops = {.name = "fake", .get = fs_get, .close = fs_close};

static void on_user_close(void *ud) { (void)ud, closed_user++; }

static void case_store_inline_failure_is_deferred(void) {
  tt_store *s = calloc(1, sizeof *s);
  s->ops = &fake_store_ops;
  s->loop = &loop;
  char id[TT_ID_SIZE];
  tt_id_new(id);
  reset();
  tt_store_get(s, TT_KIND_JOB, id, rec_cb, NULL);
  run();
  CHECK_INT(reached, 1);
  CHECK_INT(calls, 1);
  CHECK_INT(inline_calls, 0);
  CHECK_INT(last_status, TT_EIO);

  /* a bad id never reaches the backend */
  reset();
  tt_store_get(s, TT_KIND_JOB, "nope", rec_cb, NULL);
  tt_store_get(s, (tt_kind)7, id, rec_cb, NULL);
  run();
  CHECK_INT(reached, 0);
  CHECK_INT(calls, 2);
  CHECK_INT(inline_calls, 0);

  /* close waits for the call in flight; a call after close is canceled */
  reset();
  closed_backend = closed_user = 0;
  tt_store_get(s, TT_KIND_JOB, id, rec_cb, NULL);
  tt_store_close(s, on_user_close, NULL);
  CHECK_INT(closed_user, 0);
  tt_store_get(s, TT_KIND_JOB, id, rec_cb, NULL);
  run();
  CHECK_INT(calls, 2);
  CHECK_INT(last_status, TT_ECANCELED);
  CHECK_INT(closed_backend, 1);
  CHECK_INT(closed_user, 1);
}

/* ---- a queue backend: counts what reaches it, fails inline --------------- */

static void fq_send(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay,
                    tt_queue_send_cb cb, void *ud) {
  (void)q, (void)queue, (void)body, (void)len, (void)delay;
  reached++;
  cb(ud, TT_EBUSY, NULL);
}
static void fq_close(tt_queue *q, tt_queue_close_cb cb, void *ud) {
  closed_backend++;
  free(q);
  if (cb) cb(ud);
}
static const tt_queue_ops fake_queue_ops = {.name = "fake", .send = fq_send, .close = fq_close};
static void send_cb(void *ud, int status, const char *id) { (void)ud, (void)id, note(status); }

static void case_queue_front_checks(void) {
  tt_queue *q = calloc(1, sizeof *q);
  q->ops = &fake_queue_ops;
  q->loop = &loop;
  reset();
  tt_queue_send(q, "bad name!", "x", 1, 0, send_cb, NULL);
  tt_queue_send(q, "jobs", "x", 0, 0, send_cb, NULL);
  tt_queue_send(q, "jobs", "x", 1, TT_QUEUE_MAX_DELAY_MS + 1, send_cb, NULL);
  run();
  CHECK_INT(reached, 0);
  CHECK_INT(calls, 3);
  CHECK_INT(last_status, TT_EINVAL);
  reset();
  tt_queue_send(q, "jobs", "x", 1, 0, send_cb, NULL);
  run();
  CHECK_INT(reached, 1);
  CHECK_INT(inline_calls, 0);
  CHECK_INT(last_status, TT_EBUSY);
  closed_backend = closed_user = 0;
  tt_queue_close(q, on_user_close, NULL);
  CHECK_INT(closed_user, 0); /* never inline */
  run();
  CHECK_INT(closed_backend, 1);
  CHECK_INT(closed_user, 1);
}

/* ---- blobs: a bad key never reaches the backend -------------------------- */

static void fb_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud) {
  (void)b, (void)key;
  reached++;
  cb(ud, TT_ENOTFOUND, NULL);
}
static tt_blob_writer *fb_put_start(tt_blobs *b, const char *key, const char *ctype) {
  (void)b, (void)key, (void)ctype;
  reached++;
  return calloc(1, sizeof(tt_blob_writer));
}
static void fb_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud) {
  closed_backend++;
  free(b);
  if (cb) cb(ud);
}
static const tt_blobs_ops fake_blobs_ops = {
    .name = "fake", .head = fb_head, .put_start = fb_put_start, .close = fb_close};
static void info_cb(void *ud, int status, const tt_blob_info *i) { (void)ud, (void)i, note(status); }

static void case_blobs_front_checks(void) {
  tt_blobs *b = calloc(1, sizeof *b);
  b->ops = &fake_blobs_ops;
  b->loop = &loop;
  reset();
  tt_blobs_head(b, "../etc/passwd", info_cb, NULL);
  tt_blob_writer *w = tt_blobs_put_start(b, "a/.tt-put-x", "text/plain");
  tt_blobs_commit(w, info_cb, NULL);
  run();
  CHECK_INT(reached, 0);
  CHECK_INT(calls, 2);
  CHECK_INT(last_status, TT_EINVAL);
  reset();
  tt_blobs_head(b, "images/x/raw", info_cb, NULL);
  run();
  CHECK_INT(reached, 1);
  CHECK_INT(inline_calls, 0);
  CHECK_INT(last_status, TT_ENOTFOUND);
  closed_backend = 0;
  tt_blobs_close(b, NULL, NULL);
  run();
  CHECK_INT(closed_backend, 1);
}

/* ---- the table ------------------------------------------------------------ */

static void case_backend_table(void) {
  tt_store *s;
  tt_queue *q;
  tt_blobs *b;
  /* the AWS backends are listed: their URLs open (no call goes out) */
  CHECK_INT(tt_store_open(&loop, "dynamodb://?prefix=x", &s), TT_OK);
  CHECK_INT(tt_queue_open(&loop, "sqs://x", &q), TT_OK);
  CHECK_INT(tt_blobs_open(&loop, "s3://bucket/p", &b), TT_OK);
  tt_store_close(s, NULL, NULL);
  tt_queue_close(q, NULL, NULL);
  tt_blobs_close(b, NULL, NULL);
  run();
  CHECK_INT(tt_store_open(&loop, "dynamodb://host", &s), TT_EINVAL);
  CHECK_INT(tt_queue_open(&loop, "sqs://bad name", &q), TT_EINVAL);
  CHECK_INT(tt_blobs_open(&loop, "s3://b/p", &b), TT_EINVAL); /* bucket names are 3..63 */
  CHECK_INT(tt_store_open(&loop, "sqlitex://x", &s), TT_EINVAL);
  CHECK_INT(tt_blobs_open(&loop, "files://x", &b), TT_EINVAL);
  CHECK_INT(tt_queue_open(&loop, NULL, &q), TT_EINVAL);
}

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
    {"store_inline_failure_is_deferred", case_store_inline_failure_is_deferred},
    {"queue_front_checks", case_queue_front_checks},
    {"blobs_front_checks", case_blobs_front_checks},
    {"backend_table", case_backend_table},
};

int main(int argc, char **argv) {
  uv_loop_init(&loop);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name)) continue;
    fprintf(stderr, "case %s\n", cases[i].name);
    cases[i].fn();
  }
  CHECK_INT(uv_loop_close(&loop), 0);
  TT_TEST_END();
}
