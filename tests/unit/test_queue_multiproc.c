/* test_queue_multiproc.c — 4 producer and 4 consumer processes move 20,000
 * messages through one sqlite queue file. Every message must be delivered
 * at least once and deleted (delete answered 0) exactly once; none lost.
 * Consumers abandon ~1% of first deliveries (no delete, as a crashed
 * worker would), so visibility expiry and redelivery across processes are
 * exercised too. */
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/error.h"
#include "tintype/queue.h"
#include "tt_test.h"

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 5000
#define TOTAL (PRODUCERS * PER_PRODUCER)
#define VIS_MS 1500
#define QNAME "mp"

static char dir[] = "/tmp/tt-qmp-XXXXXX";
static char url[256], stopfile[256];

/* ---- producer ----------------------------------------------------------- */

static struct {
  tt_queue *q;
  int who, next, inflight, failed;
} pr;

static void produce_more(void);
static void sent(void *ud, int status, const char *id) {
  (void)ud;
  (void)id;
  pr.inflight--;
  if (status) {
    fprintf(stderr, "producer %d: send: %s\n", pr.who, tt_strerror(status));
    pr.failed++;
  }
  produce_more();
}
static void produce_more(void) {
  while (pr.inflight < 16 && pr.next < PER_PRODUCER) {
    char body[32];
    int n = snprintf(body, sizeof body, "%d:%d", pr.who, pr.next++);
    pr.inflight++;
    tt_queue_send(pr.q, QNAME, body, (size_t)n, 0, sent, NULL);
  }
}

static int producer(int who) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  pr.who = who;
  if (tt_queue_open(&loop, url, &pr.q) != TT_OK) return 10;
  produce_more();
  uv_run(&loop, UV_RUN_DEFAULT);
  tt_queue_close(pr.q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return pr.failed || pr.next != PER_PRODUCER ? 11 : 0;
}

/* ---- consumer ----------------------------------------------------------- */

static struct {
  tt_queue *q;
  uv_loop_t *loop;
  int who, stopping, receiving, deleting, errors;
  FILE *deleted;   /* one line per delete answered 0 */
  long deliveries; /* messages handed to us */
  long abandoned;
  long stale;
} co;

static void receive_one(void);

static void deleted_cb(void *ud, int status) {
  char *body = ud;
  co.deleting--;
  if (status == TT_OK) fprintf(co.deleted, "%s\n", body);
  else if (status == TT_ESTALE || status == TT_ENOTFOUND) co.stale++;
  else {
    fprintf(stderr, "consumer %d: delete: %s\n", co.who, tt_strerror(status));
    co.errors++;
  }
  free(body);
}

static void received(void *ud, int status, const tt_queue_msg *m, size_t n) {
  (void)ud;
  co.receiving--;
  if (status) {
    fprintf(stderr, "consumer %d: receive: %s\n", co.who, tt_strerror(status));
    co.errors++;
  }
  for (size_t i = 0; i < n; i++) {
    co.deliveries++;
    /* abandon ~1% of first deliveries: they come back after VIS_MS */
    unsigned h = 0;
    for (size_t k = 0; k < m[i].len; k++) h = h * 31 + (unsigned char)m[i].body[k];
    if (m[i].receive_count == 1 && h % 100 == 7) {
      co.abandoned++;
      continue;
    }
    char *body = strndup(m[i].body, m[i].len);
    if (!body) abort();
    co.deleting++;
    tt_queue_delete(co.q, QNAME, m[i].receipt, deleted_cb, body);
  }
  if (n == 0 && access(stopfile, F_OK) == 0) co.stopping = 1;
  if (!co.stopping && co.errors < 100) receive_one();
}

static void receive_one(void) {
  tt_queue_recv_opts o = {10, VIS_MS, 200};
  co.receiving++;
  tt_queue_receive(co.q, QNAME, &o, received, NULL);
}

static int consumer(int who) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  co.loop = &loop;
  co.who = who;
  char path[300];
  snprintf(path, sizeof path, "%s/deleted.%d", dir, who);
  co.deleted = fopen(path, "w");
  if (!co.deleted) return 20;
  if (tt_queue_open(&loop, url, &co.q) != TT_OK) return 21;
  receive_one();
  receive_one();
  uv_run(&loop, UV_RUN_DEFAULT);
  tt_queue_close(co.q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  fclose(co.deleted);
  snprintf(path, sizeof path, "%s/stats.%d", dir, who);
  FILE *f = fopen(path, "w");
  if (!f) return 22;
  fprintf(f, "%ld %ld %ld\n", co.deliveries, co.abandoned, co.stale);
  fclose(f);
  return co.errors ? 23 : 0;
}

/* ---- parent ------------------------------------------------------------- */

static pid_t spawn(int (*fn)(int), int who) {
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) _exit(fn(who));
  return p;
}

static long remaining(sqlite3 *db) {
  sqlite3_stmt *st;
  long n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM tt_queue_msgs WHERE queue='" QNAME "'", -1,
                         &st, NULL) != SQLITE_OK)
    return -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

int main(void) {
  if (!mkdtemp(dir)) return 2;
  snprintf(url, sizeof url, "sqlite://%s/tintype.db", dir);
  snprintf(stopfile, sizeof stopfile, "%s/stop", dir);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  pid_t prod[PRODUCERS], cons[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) cons[i] = spawn(consumer, i);
  for (int i = 0; i < PRODUCERS; i++) prod[i] = spawn(producer, i);
  for (int i = 0; i < PRODUCERS; i++) {
    int ws = -1;
    waitpid(prod[i], &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  }
  /* wait until the queue is drained (at most 150 s) */
  sqlite3 *db = NULL;
  CHECK_INT(sqlite3_open(dir[0] ? url + 9 : "", &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  long left = -1;
  for (int i = 0; i < 1500; i++) {
    left = remaining(db);
    if (left == 0) break;
    usleep(100 * 1000);
  }
  CHECK_INT(left, 0);
  int fd = open(stopfile, O_CREAT | O_WRONLY, 0644);
  if (fd >= 0) close(fd);
  for (int i = 0; i < CONSUMERS; i++) {
    int ws = -1;
    waitpid(cons[i], &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);

  /* every message deleted exactly once */
  unsigned char *seen = calloc(TOTAL, 1);
  long deletes = 0, bad = 0, dup = 0, deliveries = 0, abandoned = 0, stale = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    char path[300], line[64];
    snprintf(path, sizeof path, "%s/deleted.%d", dir, i);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    while (f && fgets(line, sizeof line, f)) {
      int p = -1, k = -1;
      if (sscanf(line, "%d:%d", &p, &k) != 2 || p < 0 || p >= PRODUCERS || k < 0 ||
          k >= PER_PRODUCER) {
        bad++;
        continue;
      }
      deletes++;
      if (seen[p * PER_PRODUCER + k]++) dup++;
    }
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/stats.%d", dir, i);
    f = fopen(path, "r");
    long d = 0, a = 0, s = 0;
    CHECK(f && fscanf(f, "%ld %ld %ld", &d, &a, &s) == 3);
    if (f) fclose(f);
    deliveries += d;
    abandoned += a;
    stale += s;
  }
  long missing = 0;
  for (int i = 0; i < TOTAL; i++)
    if (!seen[i]) missing++;
  CHECK_INT(bad, 0);
  CHECK_INT(dup, 0);
  CHECK_INT(missing, 0);
  CHECK_INT(deletes, TOTAL);
  CHECK(deliveries >= TOTAL + abandoned); /* each abandoned one came back */
  CHECK(abandoned > 0);
  fprintf(stderr, "moved %d messages in %.2f s: %ld deliveries, %ld abandoned+redelivered, %ld late acks\n",
          TOTAL, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, deliveries,
          abandoned, stale);
  free(seen);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  TT_TEST_END();
}
