/* test_store_crash.c — kill -9 in the middle of writes loses nothing that
 * was acknowledged, and the database opens clean afterwards.
 *
 * A child process creates users and sends queue messages as fast as it can
 * (many in flight), and for each one whose callback said 0 writes its id to
 * a pipe. The parent kills it with SIGKILL at a random moment, three
 * rounds over the same file, then checks: PRAGMA integrity_check is "ok",
 * every acknowledged user and message is in the file, and tintype opens
 * the file again and writes to it. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/error.h"
#include "tintype/queue.h"
#include "tintype/store.h"
#include "tt_test.h"

static char dir[] = "/tmp/tt-crash-XXXXXX";
static char url[256];

static struct {
  tt_store *s;
  tt_queue *q;
  int fd;
  int inflight;
} ch;

static void more(void);

static void ack(char kind, const char *id) {
  char line[TT_ID_LEN + 2]; /* kind, id, newline: as read by the parent */
  line[0] = kind;
  memcpy(line + 1, id, TT_ID_LEN);
  line[TT_ID_LEN + 1] = '\n';
  if (write(ch.fd, line, sizeof line) != (ssize_t)sizeof line) _exit(31);
}

static void user_done(void *ud, int status, const void *rec) {
  (void)ud;
  ch.inflight--;
  if (status == TT_OK) ack('u', ((const tt_user *)rec)->id);
  more();
}

static void sent(void *ud, int status, const char *id) {
  (void)ud;
  ch.inflight--;
  if (status == TT_OK) ack('m', id);
  more();
}

static void more(void) {
  while (ch.inflight < 16) {
    ch.inflight += 2;
    tt_user u = {0};
    char name[64];
    snprintf(name, sizeof name, "user %ld", random());
    u.name = name;
    tt_store_create(ch.s, TT_KIND_USER, &u, user_done, NULL);
    tt_queue_send(ch.q, "crash", name, strlen(name), 0, sent, NULL);
  }
}

static int child(int fd) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ch.fd = fd;
  if (tt_store_open(&loop, url, &ch.s) || tt_queue_open(&loop, url, &ch.q)) return 30;
  more();
  uv_run(&loop, UV_RUN_DEFAULT); /* never ends: killed */
  return 0;
}

/* "u<id>\n" / "m<id>\n" lines read so far */
typedef struct {
  char (*ids)[TT_ID_SIZE + 1];
  size_t n, cap;
} acks;

static void add(acks *a, const char *line) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1024;
    a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
    if (!a->ids) abort();
  }
  memcpy(a->ids[a->n], line, TT_ID_SIZE);
  a->ids[a->n][TT_ID_SIZE] = 0;
  a->n++;
}

static int exists(sqlite3 *db, const char *sql, const char *id) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
  sqlite3_bind_text(st, 1, id, TT_ID_LEN, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return ok;
}

static void reopen_done(void *ud, int status, const void *rec) {
  (void)rec;
  *(int *)ud = status == TT_OK ? 1 : -1;
}

int main(void) {
  if (!mkdtemp(dir)) return 2;
  snprintf(url, sizeof url, "sqlite://%s/tintype.db", dir);
  srandom((unsigned)time(NULL) ^ (unsigned)getpid());
  acks a = {0};
  for (int round = 0; round < 3; round++) {
    int p[2];
    if (pipe(p) != 0) return 2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      _exit(child(p[1]));
    }
    close(p[1]);
    /* let it write for 200..700 ms, reading acks meanwhile */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long ms = 200 + random() % 500, elapsed = 0;
    char line[TT_ID_SIZE + 1];
    size_t have = 0;
    int killed = 0;
    for (;;) {
      if (!killed) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= ms) {
          kill(pid, SIGKILL);
          killed = 1;
        }
      }
      /* acks written before the kill are still in the pipe: read to EOF */
      ssize_t r = read(p[0], line + have, sizeof line - have);
      if (r <= 0) break;
      have += (size_t)r;
      if (have == sizeof line) {
        add(&a, line);
        have = 0;
      }
    }
    close(p[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
  }
  CHECK(a.n > 100); /* the child did get work acknowledged */

  sqlite3 *db = NULL;
  CHECK_INT(sqlite3_open(url + 9, &db), SQLITE_OK);
  sqlite3_stmt *st;
  CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
  CHECK_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_STR((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  size_t lost = 0, users = 0;
  for (size_t i = 0; i < a.n; i++) {
    const char *id = a.ids[i] + 1;
    int ok = a.ids[i][0] == 'u' ? exists(db, "SELECT 1 FROM users WHERE id=?", id)
                                : exists(db, "SELECT 1 FROM tt_queue_msgs WHERE id=?", id);
    users += a.ids[i][0] == 'u';
    if (!ok) lost++;
  }
  CHECK_INT(lost, 0);
  fprintf(stderr, "%zu acknowledged writes (%zu users), %zu lost\n", a.n, users, lost);
  sqlite3_close(db);
  free(a.ids);

  /* tintype opens it and writes */
  uv_loop_t loop;
  uv_loop_init(&loop);
  tt_store *s = NULL;
  CHECK_INT(tt_store_open(&loop, url, &s), TT_OK);
  if (s) {
    int done = 0;
    tt_user u = {0};
    u.name = "after";
    tt_store_create(s, TT_KIND_USER, &u, reopen_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(done, 1);
    tt_store_close(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  if (getenv("TT_KEEP")) { fprintf(stderr, "kept %s\n", dir); TT_TEST_END(); }
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  TT_TEST_END();
}
