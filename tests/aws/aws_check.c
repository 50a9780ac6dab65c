/* aws_check.c — the AWS backends' contract checks, run by
 * tests/integration/test_aws_*.py against moto (or any endpoint named by
 * AWS_ENDPOINT_URL*): `aws_check queue|blobs|store|auth-fail KIND|
 * denied OP|loop SECONDS`. The backend URLs come from TT_TEST_QUEUE_URL,
 * TT_TEST_BLOBS_URL and TT_TEST_STORE_URL. Checks print as tt_test.h's and
 * the exit status is 1 when one failed.
 *
 * SQS semantics differ from the embedded queue where SQS's contract does
 * (whole seconds, no stale-receipt detection, no redrive API); the checks
 * here are what SQS does promise. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/aws.h"
#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/queue.h"
#include "tintype/store.h"
#include "tt_test.h"

static uv_loop_t loop;
static int returned, inline_calls;

static struct {
  int calls, status;
  int n;
  char body[TT_QUEUE_MAX_BATCH][256];
  char receipt[TT_QUEUE_MAX_BATCH][2048];
  char id[TT_QUEUE_MAX_BATCH][TT_ID_SIZE];
  int rc[TT_QUEUE_MAX_BATCH];
  int64_t count;
  tt_queue_counts c;
  uint64_t at;
} r;

static void note(int status) {
  r.calls++;
  r.status = status;
  r.at = uv_now(&loop);
  if (!returned) inline_calls++;
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

/* until the callback: a streamed get keeps its transfer (and so the loop)
 * busy while the reader holds it */
#define DO1(call)                                              \
  do {                                                         \
    r.calls = 0;                                               \
    returned = 0;                                              \
    call;                                                      \
    returned = 1;                                              \
    while (r.calls == 0 && uv_run(&loop, UV_RUN_ONCE)) {       \
    }                                                          \
    returned = 0;                                              \
    CHECK_INT(r.calls, 1);                                     \
  } while (0)

/* ---- queue ---------------------------------------------------------------- */

static tt_queue *q;
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
static int batch_left, batch_bad;
static void plain_cb(void *ud, int status) {
  (void)ud;
  note(status);
}
static void batch_cb(void *ud, int status) {
  (void)ud;
  if (!returned) inline_calls++;
  batch_left--;
  if (status) batch_bad++;
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
static void qsend(const char *queue, const char *s, int64_t delay) {
  DO(tt_queue_send(q, queue, s, strlen(s), delay, send_cb, NULL));
  CHECK_INT(r.status, TT_OK);
}
static void qrecv(const char *queue, int max, int64_t vis, int64_t wait) {
  tt_queue_recv_opts o = {max, vis, wait};
  DO(tt_queue_receive(q, queue, &o, recv_cb, NULL));
}
/* a receive that waits for a message to be there (long polls of 1 s,
 * up to 5 s): emulators hand one back after its visibility ran out on a
 * timer of their own that a long poll may not see */
static void qrecv_until(const char *queue, int max, int64_t vis) {
  for (int i = 0; i < 5; i++) {
    qrecv(queue, max, vis, 1000);
    if (r.status || r.n) return;
  }
}
static tt_queue_counts counts(const char *queue) {
  DO(tt_queue_counts_get(q, queue, counts_cb, NULL));
  return r.c;
}
/* a check the endpoint cannot pass ($TT_TEST_LACKS, see tt_test.h): a
 * named skip, printed, never a silent pass */
static int lacking(const char *feature, const char *what) {
  const char *why = tt_test_lacks(feature);
  if (why) printf("skipped: %s (%s)\n", what, why);
  return why != NULL;
}

static tt_aws_stats stats(void) {
  tt_aws *a = tt_aws_acquire(&loop);
  tt_aws_stats s;
  tt_aws_stats_get(a, &s);
  tt_aws_release(a);
  return s;
}

static void queue_suite(const char *url) {
  CHECK_INT(tt_queue_open(&loop, url, &q), TT_OK);
  if (!q) return;
  /* bad arguments come back through the callback, later */
  DO(tt_queue_send(q, "bad name!", "x", 1, 0, send_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_queue_send(q, "jobs", "x", 0, 0, send_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  {
    char *big = calloc(1, TT_QUEUE_MAX_BODY + 1);
    DO(tt_queue_send(q, "jobs", big, TT_QUEUE_MAX_BODY + 1, 0, send_cb, NULL));
    CHECK_INT(r.status, TT_ETOOBIG);
    free(big);
  }
  qrecv("jobs", 11, -1, 0);
  CHECK_INT(r.status, TT_EINVAL);
  /* a queue nobody created: not found (without ?create=1 it stays so) */
  tt_queue_attrs a = {30000, 2};
  DO(tt_queue_declare(q, "jobs", &a, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  DO(tt_queue_declare(q, "other", &a, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);

  /* send, receive, delete */
  qsend("jobs", "{\"one\":1}", 0);
  char id1[TT_ID_SIZE];
  memcpy(id1, r.id[0], sizeof id1);
  CHECK(strlen(id1) > 0);
  /* SQS's counts are approximate (eventually consistent; an emulator may
   * count a new message on its next timer turn): wait for it, up to 5 s */
  tt_queue_counts c = counts("jobs");
  for (int i = 0; i < 50 && c.visible == 0; i++) {
    usleep(100 * 1000);
    c = counts("jobs");
  }
  CHECK_INT(c.visible, 1);
  CHECK_INT(c.in_flight, 0);
  qrecv("jobs", 10, 60000, 0);
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "{\"one\":1}");
  CHECK_STR(r.id[0], id1);
  CHECK_INT(r.rc[0], 1);
  static char rc1[2048];
  snprintf(rc1, sizeof rc1, "%s", r.receipt[0]);
  c = counts("jobs");
  if (!lacking("exact_counts", "in-flight messages are not counted as visible")) CHECK_INT(c.visible, 0);
  CHECK_INT(c.in_flight, 1);
  qrecv("jobs", 10, 60000, 0); /* invisible now */
  CHECK_INT(r.n, 0);
  qrecv("other", 10, 60000, 0); /* queues are separate */
  CHECK_INT(r.n, 0);
  DO(tt_queue_delete(q, "jobs", rc1, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  c = counts("jobs");
  CHECK_INT(c.visible + c.in_flight + c.delayed, 0);

  /* change visibility 0 gives it back at once, with a new receipt (an
   * emulator that counts the change as a receive dead-letters it here) */
  if (!lacking("receive_count", "a visibility change is not a receive")) {
    qsend("jobs", "two", 0);
    qrecv("jobs", 1, 60000, 0);
    CHECK_INT(r.n, 1);
    snprintf(rc1, sizeof rc1, "%s", r.receipt[0]);
    DO(tt_queue_change_visibility(q, "jobs", rc1, 0, plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    qrecv_until("jobs", 1, 60000);
    CHECK_INT(r.n, 1);
    CHECK_STR(r.body[0], "two");
    CHECK_INT(r.rc[0], 2);
    CHECK(strcmp(rc1, r.receipt[0]) != 0);
    DO(tt_queue_delete(q, "jobs", r.receipt[0], plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
  }

  /* delay: counted as delayed, not receivable, then found by a long poll */
  qsend("other", "later", 1000);
  c = counts("other");
  CHECK_INT(c.delayed, 1);
  qrecv("other", 1, 60000, 0);
  CHECK_INT(r.n, 0);
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  qrecv("other", 1, 60000, 5000);
  CHECK_INT(r.n, 1);
  CHECK_STR(r.body[0], "later");
  CHECK(r.at - t0 < 4500);
  DO(tt_queue_delete(q, "other", r.receipt[0], plain_cb, NULL));

  /* max_receives 2 -> the RedrivePolicy dead-letters the third receive */
  if (!lacking("visibility_zero", "a message received with visibility 0 is received again, then dead-lettered")) {
    qsend("jobs", "poison", 0);
    for (int i = 0; i < 2; i++) {
      qrecv_until("jobs", 10, 0);
      CHECK_INT(r.n, 1);
      CHECK_INT(r.rc[0], i + 1);
    }
    qrecv("jobs", 10, 0, 0);
    CHECK_INT(r.n, 0);
    c = counts("jobs");
    CHECK_INT(c.dead, 1);
    CHECK_INT(c.visible, 0);
    DO(tt_queue_redrive(q, "jobs", count_cb, NULL));
    CHECK_INT(r.status, TT_ENOTSUP);
    DO(tt_queue_purge(q, "jobs", TT_QUEUE_DEAD, count_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    CHECK_INT(r.count, 1);
    c = counts("jobs");
    CHECK_INT(c.dead, 0);
  }

  /* a batch of 10; their deletes in one turn go out as one request */
  for (int i = 0; i < 12; i++) qsend("jobs", "m", 0);
  qrecv("jobs", 10, 60000, 0);
  CHECK_INT(r.n, 10);
  int distinct = 1;
  for (int i = 0; i < 10; i++)
    for (int j = i + 1; j < 10; j++)
      if (!strcmp(r.receipt[i], r.receipt[j])) distinct = 0;
  CHECK(distinct);
  tt_aws_stats s0 = stats();
  batch_left = 10;
  batch_bad = 0;
  returned = 0;
  for (int i = 0; i < 10; i++) tt_queue_change_visibility(q, "jobs", r.receipt[i], 120000, batch_cb, NULL);
  run();
  CHECK_INT(batch_left, 0);
  CHECK_INT(batch_bad, 0);
  batch_left = 10;
  returned = 0;
  for (int i = 0; i < 10; i++) tt_queue_delete(q, "jobs", r.receipt[i], batch_cb, NULL);
  run();
  CHECK_INT(batch_left, 0);
  CHECK_INT(batch_bad, 0);
  tt_aws_stats s1 = stats();
  CHECK_INT(s1.requests - s0.requests, 2);
  c = counts("jobs");
  CHECK_INT(c.visible, 2);
  CHECK_INT(c.in_flight, 0);
  DO(tt_queue_purge(q, "jobs", TT_QUEUE_LIVE, count_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.count, 2);
  DO(tt_queue_purge(q, "jobs", 0, count_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);

  /* close ends a waiting long poll at once, empty */
  {
    tt_queue_recv_opts o = {1, 60000, 10000};
    r.calls = 0;
    r.n = -1;
    returned = 0;
    tt_queue_receive(q, "other", &o, recv_cb, NULL);
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT), usleep(10000);
    returned = 1;
    tt_queue_close(q, NULL, NULL);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.n, 0);
    CHECK(uv_now(&loop) - t0 < 2000);
  }
}

/* ---- blobs ------------------------------------------------------------------ */

static tt_blobs *b;
static struct {
  int64_t size;
  char ctype[256], etag[160];
  tt_blob_reader *rd;
  char *data;
  size_t len;
  int chunks;
  size_t max_chunk;
} br;

static void info_cb(void *ud, int status, const tt_blob_info *i) {
  (void)ud;
  note(status);
  if (i) {
    br.size = i->size;
    snprintf(br.ctype, sizeof br.ctype, "%s", i->content_type);
    snprintf(br.etag, sizeof br.etag, "%s", i->etag);
  }
}
static void open_cb(void *ud, int status, tt_blob_reader *rd, const tt_blob_info *i) {
  info_cb(ud, status, i);
  br.rd = rd;
}
static void read_cb(void *ud, int status, const char *data, size_t len) {
  (void)ud;
  note(status);
  if (status || len == 0) return;
  br.chunks++;
  if (len > br.max_chunk) br.max_chunk = len;
  br.data = realloc(br.data, br.len + len);
  memcpy(br.data + br.len, data, len);
  br.len += len;
}
static void data_cb(void *ud, int status, const tt_blob_info *i, const char *d, size_t n) {
  info_cb(ud, status, i);
  free(br.data);
  br.data = NULL;
  br.len = 0;
  if (!status) {
    br.data = malloc(n + 1);
    memcpy(br.data, d, n);
    br.len = n;
  }
}
static void put(const char *key, const char *ctype, const void *d, size_t n) {
  DO(tt_blobs_put(b, key, ctype, d, n, info_cb, NULL));
}
/* reads the whole blob, one chunk at a time, sleeping between reads (a slow
 * client): returns the status of the last call */
static int get_slow(const char *key, int sleep_ms) {
  free(br.data);
  br.data = NULL;
  br.len = 0;
  br.chunks = 0;
  br.max_chunk = 0;
  DO1(tt_blobs_get_open(b, key, open_cb, NULL));
  if (r.status) return r.status;
  for (;;) {
    size_t before = br.len;
    DO1(tt_blobs_read(br.rd, read_cb, NULL));
    if (r.status || br.len == before) break;
    if (sleep_ms) usleep((useconds_t)sleep_ms * 1000);
  }
  tt_blobs_get_close(br.rd);
  run();
  return r.status;
}

static void blobs_suite(const char *url, const char *big_url) {
  CHECK_INT(tt_blobs_open(&loop, "s3://", &b), TT_EINVAL);
  CHECK_INT(tt_blobs_open(&loop, "s3://Bad_Bucket/x", &b), TT_EINVAL);
  CHECK_INT(tt_blobs_open(&loop, "s3://bucket/p?part_size=1m", &b), TT_EINVAL);
  CHECK_INT(tt_blobs_open(&loop, url, &b), TT_OK);
  if (!b) return;
  /* bad keys, through the callback */
  put("../x", NULL, "x", 1);
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_blobs_head(b, "a//b", info_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  /* put, head, get, content type kept */
  const char *png = "\x89PNG fake";
  put("jobs/one.png", "image/png", png, strlen(png));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(br.size, (int64_t)strlen(png));
  char etag1[160];
  snprintf(etag1, sizeof etag1, "%s", br.etag);
  CHECK(etag1[0] == '"');
  DO(tt_blobs_head(b, "jobs/one.png", info_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(br.size, (int64_t)strlen(png));
  CHECK_STR(br.ctype, "image/png");
  CHECK_STR(br.etag, etag1);
  DO(tt_blobs_get_all(b, "jobs/one.png", 1 << 20, data_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK(br.len == strlen(png) && !memcmp(br.data, png, br.len));
  CHECK_STR(br.ctype, "image/png");
  /* replace: new bytes, new etag */
  put("jobs/one.png", "image/png", "other", 5);
  DO(tt_blobs_head(b, "jobs/one.png", info_cb, NULL));
  CHECK_INT(br.size, 5);
  CHECK(strcmp(br.etag, etag1) != 0);
  /* an empty blob */
  put("empty", NULL, "", 0);
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(get_slow("empty", 0), TT_OK);
  CHECK_INT(br.len, 0);
  CHECK_STR(br.ctype, "application/octet-stream");
  /* absent */
  DO(tt_blobs_head(b, "nope", info_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_blobs_get_open(b, "nope", open_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
  DO(tt_blobs_delete(b, "nope", plain_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
  /* streamed get of 3 MiB with a slow reader: chunks of at most
   * TT_BLOB_CHUNK (the rest waits in libcurl, paused) */
  size_t n = 3u << 20;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (char)(i * 7 + (i >> 13));
  put("images/x/raw", "application/octet-stream", big, n);
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(get_slow("images/x/raw", 5), TT_OK);
  CHECK(br.len == n && !memcmp(br.data, big, n));
  CHECK(br.chunks >= (int)(n / TT_BLOB_CHUNK));
  CHECK(br.max_chunk <= TT_BLOB_CHUNK);
  /* a reader closed early */
  DO1(tt_blobs_get_open(b, "images/x/raw", open_cb, NULL));
  DO1(tt_blobs_read(br.rd, read_cb, NULL));
  tt_blobs_get_close(br.rd);
  run();
  /* streamed put, several writes */
  {
    tt_blob_writer *w = tt_blobs_put_start(b, "jobs/two.txt", "text/plain");
    CHECK(w != NULL);
    DO(tt_blobs_write(w, "hello ", 6, plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    DO(tt_blobs_write(w, "world", 5, plain_cb, NULL));
    DO(tt_blobs_commit(w, info_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    CHECK_INT(br.size, 11);
    DO(tt_blobs_get_all(b, "jobs/two.txt", 100, data_cb, NULL));
    CHECK(br.len == 11 && !memcmp(br.data, "hello world", 11));
    CHECK_STR(br.ctype, "text/plain");
    DO(tt_blobs_get_all(b, "jobs/two.txt", 5, data_cb, NULL));
    CHECK_INT(r.status, TT_ETOOBIG);
    /* abort leaves nothing */
    w = tt_blobs_put_start(b, "jobs/aborted", NULL);
    DO(tt_blobs_write(w, "x", 1, plain_cb, NULL));
    DO(tt_blobs_abort(w, plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    DO(tt_blobs_head(b, "jobs/aborted", info_cb, NULL));
    CHECK_INT(r.status, TT_ENOTFOUND);
  }
  /* delete */
  DO(tt_blobs_delete(b, "jobs/two.txt", plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  DO(tt_blobs_head(b, "jobs/two.txt", info_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
  /* a link: presigned, host of the endpoint */
  char link[4096];
  CHECK_INT(tt_blobs_url(b, "jobs/one.png", 600, link, sizeof link), TT_OK);
  CHECK(strstr(link, "X-Amz-Signature=") != NULL);
  CHECK(strstr(link, "X-Amz-Expires=600") != NULL);
  printf("link %s\n", link);
  CHECK_INT(tt_blobs_url(b, "../x", 600, link, sizeof link), TT_EINVAL);
  tt_blobs_close(b, NULL, NULL);
  run();

  /* multipart: 11 MiB over a 5 MiB threshold = parts of 5, 5 and 1 MiB */
  CHECK_INT(tt_blobs_open(&loop, big_url, &b), TT_OK);
  if (!b) return;
  n = 11u << 20;
  big = realloc(big, n);
  for (size_t i = 0; i < n; i++) big[i] = (char)(i * 13 + (i >> 11));
  tt_aws_stats s0 = stats();
  {
    tt_blob_writer *w = tt_blobs_put_start(b, "images/big/raw", "image/jpeg");
    for (size_t off = 0; off < n; off += 1u << 20) {
      DO(tt_blobs_write(w, big + off, 1u << 20, plain_cb, NULL));
      CHECK_INT(r.status, TT_OK);
    }
    DO(tt_blobs_commit(w, info_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    CHECK_INT(br.size, (int64_t)n);
  }
  tt_aws_stats s1 = stats();
  CHECK_INT(s1.requests - s0.requests, 5); /* create, 3 parts, complete */
  DO(tt_blobs_head(b, "images/big/raw", info_cb, NULL));
  CHECK_INT(br.size, (int64_t)n);
  CHECK_STR(br.ctype, "image/jpeg");
  CHECK_INT(get_slow("images/big/raw", 0), TT_OK);
  CHECK(br.len == n && !memcmp(br.data, big, n));
  /* an aborted multipart upload leaves no object (and no upload) */
  if (!lacking("multipart_abort", "an aborted multipart upload leaves no object")) {
    tt_blob_writer *w = tt_blobs_put_start(b, "images/gone/raw", NULL);
    for (int i = 0; i < 6; i++) DO(tt_blobs_write(w, big, 1u << 20, plain_cb, NULL));
    DO(tt_blobs_abort(w, plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
    DO(tt_blobs_head(b, "images/gone/raw", info_cb, NULL));
    CHECK_INT(r.status, TT_ENOTFOUND);
  }
  free(big);
  free(br.data);
  br.data = NULL;
  tt_blobs_close(b, NULL, NULL);
  run();
}

/* the first call of a KIND fails with TT_EAUTH (wrong secret, missing token) */
static void auth_fail(const char *url) {
  CHECK_INT(tt_queue_open(&loop, url, &q), TT_OK);
  if (!q) return;
  qsend("jobs", "x", 0);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: aws_check queue|...\n");
    return 2;
  }
  uv_loop_init(&loop);
  const char *qurl = getenv("TT_TEST_QUEUE_URL");
  if (!strcmp(argv[1], "queue")) {
    queue_suite(qurl);
  } else if (!strcmp(argv[1], "blobs")) {
    blobs_suite(getenv("TT_TEST_BLOBS_URL"), getenv("TT_TEST_BLOBS_BIG_URL"));
  } else if (!strcmp(argv[1], "blobs-denied-delete")) {
    CHECK_INT(tt_blobs_open(&loop, getenv("TT_TEST_BLOBS_URL"), &b), TT_OK);
    if (b) {
      put("k", "text/plain", "v", 1);
      CHECK_INT(r.status, TT_OK);
      DO(tt_blobs_get_all(b, "k", 10, data_cb, NULL));
      CHECK_INT(r.status, TT_OK);
      DO(tt_blobs_delete(b, "k", plain_cb, NULL));
      printf("delete %s\n", tt_err_name(r.status));
      CHECK_INT(r.status, TT_EAUTH);
      DO(tt_blobs_head(b, "k", info_cb, NULL));
      CHECK_INT(r.status, TT_OK);
      tt_blobs_close(b, NULL, NULL);
      run();
    }
  } else if (!strcmp(argv[1], "queue-loop")) {
    /* a send every 100 ms for argv[2] ms (or until argv[3] sends): across a
     * credential rotation or an emulator restart, every one must succeed */
    long total = argc > 2 ? atol(argv[2]) : 5000, want = argc > 3 ? atol(argv[3]) : 0;
    CHECK_INT(tt_queue_open(&loop, qurl, &q), TT_OK);
    if (q) {
      int sent = 0, failed = 0;
      uv_update_time(&loop);
      uint64_t t0 = uv_now(&loop);
      while ((long)(uv_now(&loop) - t0) < total || (want && sent + failed < want)) {
        DO(tt_queue_send(q, "jobs", "tick", 4, 0, send_cb, NULL));
        if (r.status) {
          failed++;
          printf("send failed: %s\n", tt_err_name(r.status));
        } else {
          sent++;
        }
        usleep(100 * 1000);
        uv_update_time(&loop);
        if (want && sent + failed >= want && (long)(uv_now(&loop) - t0) >= total) break;
      }
      printf("sent %d failed %d\n", sent, failed);
      tt_queue_close(q, NULL, NULL);
      run();
    }
  } else if (!strcmp(argv[1], "blobs-put")) {
    CHECK_INT(tt_blobs_open(&loop, getenv("TT_TEST_BLOBS_URL"), &b), TT_OK);
    if (b) {
      put("k", "text/plain", "v", 1);
      printf("put %s\n", tt_err_name(r.status));
      tt_blobs_close(b, NULL, NULL);
      run();
    }
  } else if (!strcmp(argv[1], "blobs-link")) {
    CHECK_INT(tt_blobs_open(&loop, getenv("TT_TEST_BLOBS_URL"), &b), TT_OK);
    if (b) {
      char link[4096];
      CHECK_INT(tt_blobs_url(b, "jobs/a.png", 900, link, sizeof link), TT_OK);
      printf("link %s\n", link);
      tt_blobs_close(b, NULL, NULL);
      run();
    }
  } else if (!strcmp(argv[1], "queue-send")) {
    /* one send: its status is the exit code's subject (auth checks) */
    CHECK_INT(tt_queue_open(&loop, qurl, &q), TT_OK);
    if (q) {
      DO(tt_queue_send(q, "jobs", "x", 1, 0, send_cb, NULL));
      printf("status %s\n", tt_err_name(r.status));
      tt_queue_close(q, NULL, NULL);
      run();
    }
  } else if (!strcmp(argv[1], "queue-denied-delete")) {
    /* a policy without sqs:DeleteMessage: everything works but the delete */
    CHECK_INT(tt_queue_open(&loop, qurl, &q), TT_OK);
    if (q) {
      tt_queue_attrs a = {30000, 0};
      DO(tt_queue_declare(q, "jobs", &a, plain_cb, NULL));
      CHECK_INT(r.status, TT_OK);
      qsend("jobs", "x", 0);
      qrecv("jobs", 1, 60000, 0);
      CHECK_INT(r.n, 1);
      DO(tt_queue_change_visibility(q, "jobs", r.receipt[0], 30000, plain_cb, NULL));
      CHECK_INT(r.status, TT_OK);
      DO(tt_queue_delete(q, "jobs", r.receipt[0], plain_cb, NULL));
      printf("delete %s\n", tt_err_name(r.status));
      CHECK_INT(r.status, TT_EAUTH);
      tt_queue_counts c = counts("jobs");
      CHECK_INT(r.status, TT_OK);
      CHECK_INT(c.in_flight, 1);
      tt_queue_close(q, NULL, NULL);
      run();
    }
  } else {
    fprintf(stderr, "unknown check %s\n", argv[1]);
    return 2;
  }
  (void)auth_fail;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(inline_calls, 0);
  CHECK_INT(uv_loop_close(&loop), 0);
  TT_TEST_END();
}
