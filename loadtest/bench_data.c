/* bench_data.c — data-layer benchmark (loadtest/bench_data.sh builds and
 * runs it): through the public async API, on one sqlite file,
 *   queue:  full cycles per second (send -> receive -> delete of one
 *           message), C pipelines in flight per process;
 *   reads:  store point reads (tt_store_get of a random user) per second;
 *   writes: conditional updates (tt_store_update with the version read)
 *           per second, each pipeline updating its own record.
 * Usage: bench_data MODE PROCS SECONDS [INFLIGHT] [DIR]
 * Prints one line per process and a total. */
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

#define NUSERS 1000

static uv_loop_t loop;
static tt_store *st;
static tt_queue *qu;
static int mode; /* 0 queue, 1 reads, 2 writes */
static double seconds;
static int inflight = 32;
static uint64_t deadline;
static long done_ops, errors;
static char ids[NUSERS][TT_ID_SIZE];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int over(void) { return uv_now(&loop) >= deadline; }

/* ---- queue cycle -------------------------------------------------------- */
static void q_send(void);
static void q_deleted(void *ud, int status) {
  (void)ud;
  if (status == 0) done_ops++;
  else errors++;
  if (!over()) q_send();
}
static void q_received(void *ud, int status, const tt_queue_msg *m, size_t n) {
  (void)ud;
  if (status || n == 0) {
    if (status) errors++;
    if (!over()) q_send(); /* someone else took ours; go again */
    return;
  }
  tt_queue_delete(qu, "bench", m[0].receipt, q_deleted, NULL);
}
static void q_sent(void *ud, int status, const char *id) {
  (void)ud;
  (void)id;
  if (status) errors++;
  tt_queue_recv_opts o = {1, 30000, 0};
  tt_queue_receive(qu, "bench", &o, q_received, NULL);
}
static void q_send(void) { tt_queue_send(qu, "bench", "{\"job\":\"x\"}", 11, 0, q_sent, NULL); }

/* ---- store reads -------------------------------------------------------- */
static void s_get(void);
static void s_got(void *ud, int status, const void *rec) {
  (void)ud;
  (void)rec;
  if (status == 0) done_ops++;
  else errors++;
  if (!over()) s_get();
}
static void s_get(void) { tt_store_get(st, TT_KIND_USER, ids[random() % NUSERS], s_got, NULL); }

/* ---- store conditional writes ------------------------------------------ */
typedef struct wr {
  tt_user u;
  char name[32];
} wr;
static void w_update(wr *w);
static void w_updated(void *ud, int status, const void *rec) {
  wr *w = ud;
  if (status == 0) {
    done_ops++;
    w->u.version = ((const tt_user *)rec)->version;
  } else {
    errors++;
  }
  if (!over()) w_update(w);
  else free(w);
}
static void w_update(wr *w) {
  snprintf(w->name, sizeof w->name, "n%ld", done_ops);
  w->u.name = w->name;
  tt_store_update(st, TT_KIND_USER, &w->u, w_updated, w);
}
static void w_created(void *ud, int status, const void *rec) {
  wr *w = ud;
  if (status) {
    fprintf(stderr, "create: %s\n", tt_strerror(status));
    exit(1);
  }
  w->u = *(const tt_user *)rec;
  w->u.name = w->u.email = w->u.api_key_hash = NULL;
  w_update(w);
}

/* ---- setup -------------------------------------------------------------- */
static int nseeded;
static void seeded(void *ud, int status, const void *rec) {
  (void)ud;
  if (status) {
    fprintf(stderr, "seed: %s\n", tt_strerror(status));
    exit(1);
  }
  memcpy(ids[nseeded++], ((const tt_user *)rec)->id, TT_ID_SIZE);
}

static int run_one(const char *url, int proc, int nprocs, double *rate) {
  uv_loop_init(&loop);
  if (tt_store_open(&loop, url, &st) || tt_queue_open(&loop, url, &qu)) return 1;
  srandom((unsigned)getpid());
  if (mode == 1) { /* each process reads users of its own seed set */
    for (int i = 0; i < NUSERS; i++) {
      tt_user u = {0};
      tt_store_create(st, TT_KIND_USER, &u, seeded, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  (void)proc;
  (void)nprocs;
  uv_update_time(&loop);
  deadline = uv_now(&loop) + (uint64_t)(seconds * 1000);
  double t0 = now_s();
  for (int i = 0; i < inflight; i++) {
    if (mode == 0) q_send();
    else if (mode == 1) s_get();
    else {
      wr *w = calloc(1, sizeof *w);
      tt_store_create(st, TT_KIND_USER, &w->u, w_created, w);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double t1 = now_s();
  *rate = done_ops / (t1 - t0);
  tt_store_close(st, NULL, NULL);
  tt_queue_close(qu, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return errors ? 2 : 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_data queue|reads|writes PROCS SECONDS [INFLIGHT] [DIR]\n");
    return 2;
  }
  mode = !strcmp(argv[1], "queue") ? 0 : !strcmp(argv[1], "reads") ? 1 : 2;
  int procs = atoi(argv[2]);
  seconds = atof(argv[3]);
  if (argc > 4) inflight = atoi(argv[4]);
  char dir[] = "/tmp/tt-bench-XXXXXX", url[300];
  const char *d = argc > 5 ? argv[5] : mkdtemp(dir);
  if (!d) return 2;
  const char *sync = getenv("TT_BENCH_SYNC"); /* "full" to measure synchronous=FULL */
  snprintf(url, sizeof url, "sqlite://%s/tintype.db%s%s", d, sync ? "?sync=" : "", sync ? sync : "");
  { /* create the schema once, before the processes race for it */
    uv_loop_t l;
    uv_loop_init(&l);
    tt_queue *q0;
    if (tt_queue_open(&l, url, &q0)) return 1;
    tt_queue_close(q0, NULL, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
  }
  int fds[64][2];
  pid_t pids[64];
  for (int p = 0; p < procs && p < 64; p++) {
    if (pipe(fds[p])) return 2;
    fflush(NULL);
    pids[p] = fork();
    if (pids[p] == 0) {
      double rate = 0;
      int rc = run_one(url, p, procs, &rate);
      if (write(fds[p][1], &rate, sizeof rate) != sizeof rate) rc = 3;
      fprintf(stderr, "  process %d: errors %ld\n", p, errors);
      _exit(rc);
    }
    close(fds[p][1]);
  }
  double total = 0;
  int bad = 0;
  for (int p = 0; p < procs && p < 64; p++) {
    double rate = 0;
    if (read(fds[p][0], &rate, sizeof rate) != sizeof rate) bad = 1;
    int ws;
    waitpid(pids[p], &ws, 0);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws)) bad = 1;
    printf("%-6s procs=%d inflight=%d process %d: %.0f ops/s\n", argv[1], procs, inflight, p, rate);
    total += rate;
  }
  printf("%-6s procs=%d inflight=%d total: %.0f ops/s (%.0f per process)%s\n", argv[1], procs,
         inflight, total, total / procs, bad ? "  [ERRORS]" : "");
  if (argc <= 5) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    if (system(cmd)) return 2;
  }
  return bad;
}
