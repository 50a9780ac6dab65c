/* metrics.h — counters every process of a role writes and any of them can
 * read, rendered as Prometheus text (DESIGN §8).
 *
 * The region is one anonymous shared mapping made by the supervisor before
 * it forks, with one slot per child index: a child only ever writes its own
 * slot (no locks, no atomics needed beyond aligned 64-bit stores), and a
 * scrape on any process sums every slot, so GET /metrics answers the same
 * whichever process the load balancer picked. A slot survives its child's
 * restart, so counters stay monotonic. Without tt_metrics_init (tests,
 * `shot`) the calls are no-ops. */
#ifndef TINTYPE_METRICS_H
#define TINTYPE_METRICS_H

#include <stdint.h>

#include "tintype/buf.h"

#define TT_METRICS_ROUTES 64 /* route ids 0..63; 64 = no route matched */

/* Supervisor, before forking: the shared region for `slots` children. */
int tt_metrics_init(int slots);
/* Child: from now on this process writes slot `index`. */
void tt_metrics_bind(int index);
/* Names route id `id` (registration order; the same in every child). */
void tt_metrics_name_route(int id, const char *pattern);

/* One finished request: route id (-1: none), status, duration. */
void tt_metrics_request(int route_id, int status, uint64_t us);
/* The supervisor counts child restarts. */
void tt_metrics_restart(void);
/* Named counters of the API (jobs created, canceled, uploads...). */
typedef enum {
  TT_M_JOBS_CREATED,
  TT_M_JOBS_CANCELED,
  TT_M_IMAGES_UPLOADED,
  TT_M_UPLOAD_BYTES,
  TT_M_JOBS_SUCCEEDED,
  TT_M_JOBS_FAILED,
  TT_M_JOB_RETRIES,
  TT_M_JOB_RENDER_MS, /* summed render time of succeeded jobs */
  TT_M_IMAGES_PROCESSED,
  TT_M_IMAGES_FAILED,
  TT_M_BROWSER_RESTARTS,
  TT_M_REQUESTS_BLOCKED,
  TT_M_STORAGE_FULL, /* requests refused 507: the data folder (blobs or database) is full */
  TT_M_AWS_REQUESTS, /* src/aws/client.c: HTTP requests to AWS (retries included) */
  TT_M_AWS_CONNECTS, /* new TCP connections to AWS */
  TT_M_AWS_RETRIES,
  TT_M_CONTEXTS_CREATED, /* browser contexts made for jobs (render.c) */
  TT_M_CONTEXTS_REUSED,  /* jobs that ran in a warm context of their owner */
  TT_M_CONTEXTS_RETIRED, /* warm contexts ended (max jobs, idle, LRU, failure) */
  TT_M_CACHE_HITS,   /* POST /api/jobs answered from the result cache */
  TT_M_CACHE_MISSES, /* ... that asked for the cache and rendered */
  TT_M_RENDER_LINK_HITS,   /* GET /api/render/... served from the result cache */
  TT_M_RENDER_LINK_MISSES, /* ... that made (or joined) a job */
  TT_M__COUNT
} tt_metric;
void tt_metrics_add(tt_metric m, uint64_t n);

/* A machine-wide epoch in the same shared region: bumped when any process
 * revokes credentials (key rotation, user deletion) so every process's
 * authentication cache drops its entries at once. */
uint64_t tt_shared_auth_epoch(void);
void tt_shared_auth_epoch_bump(void);

/* Appends the Prometheus exposition of everything above to out. */
void tt_metrics_render(tt_buf *out);

#endif
