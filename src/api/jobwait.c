/* jobwait.c — one-call capture (issue 15 item 1): POST /api/jobs?wait=30s
 * (and the render links of renderlink.c) answer with the image itself.
 *
 * The job still goes through the queue and a worker; this file only holds
 * the HTTP request open and watches the job's record the way the SSE stream
 * of jobs.c does: a libuv timer re-reads the record from the store (so a
 * change made by any worker process or instance is seen): while the job
 * waits in the queue at doubling intervals from 25 ms up to
 * WAIT_POLL_MAX_MS; once it is seen running, every 25 ms for 2 s (a shot
 * on a warm tab takes ~250 ms: the doubling alone saw it at 375), then
 * doubling again — never a busy loop. A point read is microseconds on
 * SQLite, one GetItem on DynamoDB: ~80 reads while a job runs 2 s. The wait ends with:
 *   succeeded -> 200 with the bytes (blobserve.c), X-Tintype-Job-Id, Location
 *   failed    -> the job's problem: 502 /problems/job-failed, its error
 *   canceled  -> 409 /problems/job-canceled
 *   time out, client gone, server draining -> 202 with the job as it is
 *   (a render link: 503 /problems/render-pending with Retry-After: 5).
 * The wait is bounded by --max-wait-ms (400 naming `wait` beyond it). */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "tintype/error.h"

#define WAIT_POLL_FIRST_MS 25
#define WAIT_POLL_FAST_FOR_MS 2000 /* every WAIT_POLL_FIRST_MS until then */
#define WAIT_POLL_MAX_MS 250       /* the SSE stream's interval */

typedef struct waiter {
  api_call *c;
  uv_timer_t timer;
  char id[TT_ID_SIZE];
  uint64_t deadline; /* loop time */
  uint64_t running_at; /* loop time the job was first seen running, 0: not yet */
  uint64_t interval;
  int gone, closing;
  tt_job *job; /* the last record read (owned) */
} waiter;

int api_parse_wait(tt_http_req *req, const tt_config *cfg, int64_t *out) {
  *out = 0;
  const char *v = api_query_param(req, "wait");
  if (!v) return 0;
  char *end;
  double x = strtod(v, &end);
  double mul = 1000; /* a bare number is seconds */
  if (end == v || x < 0 || x != x) goto bad;
  if (!strcmp(end, "ms")) mul = 1;
  else if (!strcmp(end, "s") || !*end) mul = 1000;
  else if (!strcmp(end, "m")) mul = 60000;
  else goto bad;
  double ms = x * mul;
  if (ms > (double)cfg->max_wait_ms) {
    api_invalid(req, "wait",
                tt_arena_sprintf(req->arena, "wait must be at most %lld ms (max-wait-ms)", (long long)cfg->max_wait_ms));
    return -1;
  }
  *out = (int64_t)ms;
  return 0;
bad:
  api_invalid(req, "wait", "wait must be a duration such as 30s, 1500ms or 2m");
  return -1;
}

static void waiter_closed(uv_handle_t *h) {
  waiter *w = h->data;
  tt_http_req *req = w->c->req;
  const tt_job *j = w->job;
  tt_http_add_header(req, "X-Tintype-Job-Id", tt_arena_strdup(req->arena, j->id));
  tt_http_add_header(req, "Location", tt_arena_sprintf(req->arena, "/api/jobs/%s", j->id));
  int st = tt_job_state_of(j->state);
  if (!w->gone && st == TT_JOB_SUCCEEDED && j->result_key) {
    tt_http_add_header(req, "X-Tintype-Cache", api_job_cached(j) ? "hit" : "miss");
    api_serve_blob(w->c, j->result_key);
  } else if (!w->gone && st == TT_JOB_FAILED) {
    api_problem(req, 502, "job-failed", j->error ? j->error : "the job failed");
  } else if (!w->gone && st == TT_JOB_CANCELED) {
    api_problem(req, 409, "job-canceled", "the job was canceled before it finished");
  } else if (w->c->flags & API_CALL_RENDER_LINK) { /* an <img> cannot read a 202 job: try again later */
    tt_http_add_header(req, "Retry-After", "5");
    tt_http_add_header(req, "Cache-Control", "no-store");
    api_problem(req, 503, "render-pending", "the image is still being rendered; try again in a few seconds");
  } else {
    api_json(req, 202, api_job_json(req, w->c->api, j));
  }
  tt_job_free(w->job);
  w->job = NULL;
}

static void waiter_finish(waiter *w) {
  if (w->closing) return;
  w->closing = 1;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

static void waiter_tick(uv_timer_t *t);

static void on_wait_read(void *ud, int status, const void *rec) {
  waiter *w = ud;
  if (status == TT_OK) {
    tt_job *j = tt_job_dup(rec);
    if (j) {
      tt_job_free(w->job);
      w->job = j;
    }
  }
  uv_loop_t *loop = w->c->api->loop;
  if (tt_job_state_final(w->job->state) || w->gone || tt_http_req_draining(w->c->req) ||
      uv_now(loop) >= w->deadline) {
    waiter_finish(w);
    return;
  }
  uint64_t left = w->deadline - uv_now(loop);
  if (tt_job_state_of(w->job->state) == TT_JOB_RUNNING && !w->running_at) w->running_at = uv_now(loop);
  int fast = w->running_at && uv_now(loop) - w->running_at < WAIT_POLL_FAST_FOR_MS;
  if (fast) w->interval = WAIT_POLL_FIRST_MS;
  uv_timer_start(&w->timer, waiter_tick, w->interval < left ? w->interval : left, 0);
  if (!fast) w->interval = w->interval * 2 < WAIT_POLL_MAX_MS ? w->interval * 2 : WAIT_POLL_MAX_MS;
}

static void waiter_tick(uv_timer_t *t) {
  waiter *w = t->data;
  tt_store_get(w->c->api->store, TT_KIND_JOB, w->id, on_wait_read, w);
}

static void waiter_done(tt_http_req *req, int status, void *ud) {
  (void)req;
  waiter *w = ud;
  if (status < 0) w->gone = 1; /* the next tick answers (into nothing) */
}

void api_job_wait(api_call *c, const tt_job *j, int64_t wait_ms) {
  waiter *w = tt_arena_calloc(c->req->arena, sizeof *w);
  if (!w || !(w->job = tt_job_dup(j))) {
    api_problem(c->req, 500, "internal", "out of memory");
    return;
  }
  w->c = c;
  memcpy(w->id, j->id, TT_ID_SIZE);
  uv_timer_init(c->api->loop, &w->timer);
  w->timer.data = w;
  w->deadline = uv_now(c->api->loop) + (uint64_t)wait_ms;
  w->interval = WAIT_POLL_FIRST_MS;
  tt_http_on_done(c->req, waiter_done, w);
  on_wait_read(w, TT_ENOTFOUND, NULL); /* decide on the record we have; schedule the first read */
}
