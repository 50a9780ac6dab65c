/* metrics.c — the shared counter region of include/tintype/metrics.h.
 *
 * Layout: a header (route names, slot count, restarts) then one slot per
 * child: per route, counts by status class, latency histogram buckets and
 * the sum of durations. Buckets follow Prometheus' default ladder from
 * 1 ms to 10 s. */
#include "tintype/metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "tintype/error.h"

#define NROUTES (TT_METRICS_ROUTES + 1)
#define NBUCKETS 12
static const double bucket_s[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    10};

typedef struct {
  uint64_t by_class[NROUTES][5]; /* 1xx..5xx */
  uint64_t hist[NROUTES][NBUCKETS + 1];
  uint64_t sum_us[NROUTES];
  uint64_t named[TT_M__COUNT];
} slot;

typedef struct {
  int nslots;
  uint64_t restarts;
  uint64_t auth_epoch;
  char route[NROUTES][96];
} header;

static header *H;
static slot *S;    /* all slots */
static slot *mine; /* this process's */

int tt_metrics_init(int slots) {
  if (slots < 1) slots = 1;
  size_t len = sizeof(header) + (size_t)slots * sizeof(slot);
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return TT_ENOMEM;
  H = p;
  H->nslots = slots;
  S = (slot *)((char *)p + sizeof(header));
  return TT_OK;
}

void tt_metrics_bind(int index) {
  if (H && index >= 0 && index < H->nslots) mine = &S[index];
}

void tt_metrics_name_route(int id, const char *pattern) {
  if (H && id >= 0 && id < TT_METRICS_ROUTES) snprintf(H->route[id], sizeof H->route[id], "%s", pattern);
}

void tt_metrics_request(int route_id, int status, uint64_t us) {
  if (!mine) return;
  int r = (route_id >= 0 && route_id < TT_METRICS_ROUTES) ? route_id : TT_METRICS_ROUTES;
  int cls = status / 100 - 1;
  if (cls < 0 || cls > 4) cls = 4;
  mine->by_class[r][cls]++;
  double s = (double)us / 1e6;
  int b = 0;
  while (b < NBUCKETS && s > bucket_s[b]) b++;
  mine->hist[r][b]++;
  mine->sum_us[r] += us;
}

void tt_metrics_restart(void) {
  if (H) H->restarts++;
}

static uint64_t local_epoch; /* without a shared region (tests, one process) */

uint64_t tt_shared_auth_epoch(void) {
  return H ? __atomic_load_n(&H->auth_epoch, __ATOMIC_ACQUIRE) : local_epoch;
}

void tt_shared_auth_epoch_bump(void) {
  if (H)
    __atomic_add_fetch(&H->auth_epoch, 1, __ATOMIC_ACQ_REL);
  else
    local_epoch++;
}

void tt_metrics_add(tt_metric m, uint64_t n) {
  if (mine && m < TT_M__COUNT) mine->named[m] += n;
}

void tt_metrics_render(tt_buf *out) {
  if (!H) return;
  static const char *cls[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  tt_buf_puts(out,
              "# HELP tintype_http_requests_total HTTP requests answered, by route pattern and status class.\n"
              "# TYPE tintype_http_requests_total counter\n");
  for (int r = 0; r < NROUTES; r++) {
    const char *name = r == TT_METRICS_ROUTES ? "(none)" : H->route[r];
    if (!name[0]) continue;
    for (int k = 0; k < 5; k++) {
      uint64_t n = 0;
      for (int i = 0; i < H->nslots; i++) n += S[i].by_class[r][k];
      if (n) tt_buf_printf(out, "tintype_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n", name, cls[k],
                           (unsigned long long)n);
    }
  }
  tt_buf_puts(out,
              "# HELP tintype_http_request_duration_seconds Time from the first byte of a request to its last "
              "response byte.\n# TYPE tintype_http_request_duration_seconds histogram\n");
  for (int r = 0; r < NROUTES; r++) {
    const char *name = r == TT_METRICS_ROUTES ? "(none)" : H->route[r];
    if (!name[0]) continue;
    uint64_t cum = 0, sum = 0, total = 0;
    for (int i = 0; i < H->nslots; i++) {
      sum += S[i].sum_us[r];
      for (int b = 0; b <= NBUCKETS; b++) total += S[i].hist[r][b];
    }
    if (!total) continue;
    for (int b = 0; b <= NBUCKETS; b++) {
      for (int i = 0; i < H->nslots; i++) cum += S[i].hist[r][b];
      if (b < NBUCKETS)
        tt_buf_printf(out, "tintype_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name,
                      bucket_s[b], (unsigned long long)cum);
      else
        tt_buf_printf(out, "tintype_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name,
                      (unsigned long long)cum);
    }
    tt_buf_printf(out, "tintype_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, (double)sum / 1e6);
    tt_buf_printf(out, "tintype_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                  (unsigned long long)total);
  }
  static const char *names[TT_M__COUNT][2] = {
      {"tintype_jobs_created_total", "Jobs accepted by POST /api/jobs."},
      {"tintype_jobs_canceled_total", "Jobs canceled by DELETE /api/jobs/{id}."},
      {"tintype_images_uploaded_total", "Images uploaded."},
      {"tintype_upload_bytes_total", "Bytes of uploaded images."},
      {"tintype_jobs_succeeded_total", "Jobs a worker rendered."},
      {"tintype_jobs_failed_total", "Jobs that ended failed (page error, timeout, policy, or retries used up)."},
      {"tintype_job_retries_total", "Job attempts given back to the queue after a retryable failure."},
      {"tintype_job_render_milliseconds_total", "Render time of succeeded jobs, summed (divide by succeeded)."},
      {"tintype_images_processed_total", "Uploads a worker processed."},
      {"tintype_images_failed_total", "Uploads that failed processing (not an image, too many pixels)."},
      {"tintype_browser_restarts_total", "Chromium processes started again after one died."},
      {"tintype_requests_blocked_total", "Page requests the network policy refused."},
      {"tintype_storage_full_total", "Requests answered 507: no space left for blobs or the database."},
      {"tintype_aws_requests_total", "HTTP requests to S3, SQS, DynamoDB and the credential endpoints."},
      {"tintype_aws_connections_total", "New TCP connections to AWS endpoints (the rest reuse one)."},
      {"tintype_aws_retries_total", "AWS calls retried (throttling, 5xx, connection errors, timeouts)."},
      {"tintype_browser_contexts_created_total", "Browser contexts made for jobs."},
      {"tintype_browser_contexts_reused_total", "Jobs that ran in a warm browser context of their owner."},
      {"tintype_browser_contexts_retired_total",
       "Warm browser contexts ended (--context-max-jobs, --context-idle-ms, --max-contexts, a failure)."},
      {"tintype_result_cache_hits_total", "Jobs answered from the result cache (no render)."},
      {"tintype_result_cache_misses_total", "Jobs that asked for the result cache (cache_ttl) and were rendered."},
      {"tintype_render_link_hits_total", "Render links answered from the result cache (no job, no render)."},
      {"tintype_render_link_misses_total", "Render links that made (or joined) a job to render."},
  };
  for (int m = 0; m < TT_M__COUNT; m++) {
    uint64_t n = 0;
    for (int i = 0; i < H->nslots; i++) n += S[i].named[m];
    tt_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", names[m][0], names[m][1], names[m][0],
                  names[m][0], (unsigned long long)n);
  }
  tt_buf_printf(out,
                "# HELP tintype_process_restarts_total Children the supervisor replaced.\n"
                "# TYPE tintype_process_restarts_total counter\ntintype_process_restarts_total %llu\n",
                (unsigned long long)H->restarts);
}
