/* aws_internal.h — what src/aws/client.c and src/aws/creds.c share. */
#ifndef TT_AWS_INTERNAL_H
#define TT_AWS_INTERNAL_H

#include <curl/curl.h>

#include "tintype/aws.h"

typedef struct tt_aws_creds {
  char akid[128];
  char secret[256];
  char token[4096];
  int64_t expires_ms; /* 0: never */
  const char *source; /* "env", "container", "imds" */
} tt_aws_creds;

typedef struct aws_waiter {
  struct aws_waiter *next;
  void (*fn)(void *ud, int err);
  void *ud;
} aws_waiter;

struct tt_aws {
  uv_loop_t *loop;
  int refs;
  int inflight;
  int paused; /* streamed downloads waiting for their reader: they do not keep the loop alive */
  CURLM *multi;
  uv_timer_t timer; /* libcurl's timeout */
  int timer_ref;
  int64_t timeout_ms;
  int max_attempts;
  int64_t backoff_base_ms, backoff_max_ms;
  int retry_tokens;
  char region[64];
  char endpoint[TT_AWS_NSVC][512];
  int custom[TT_AWS_NSVC];
  /* credentials (creds.c) */
  tt_aws_creds creds;
  int have_creds;
  int fetching;
  int fetch_failures;
  aws_waiter *waiters;
  uv_timer_t refresh;
  char imds[256];
  char imds_token[256];
  int64_t imds_token_exp_ms;
  tt_aws_stats stats;
};

/* an unsigned request to an absolute URL (credential endpoints) */
tt_aws_req *tt_aws__raw(tt_aws *a, const char *method, const char *url, const tt_aws_hdr *h,
                        size_t nh, int64_t timeout_ms, tt_aws_cb cb, void *ud);

/* creds.c */
void tt_aws__creds_init(tt_aws *a);
void tt_aws__creds_need(tt_aws *a, void (*fn)(void *ud, int err), void *ud);
int tt_aws__creds_usable(tt_aws *a);
void tt_aws__creds_stop(tt_aws *a);
void tt_aws__resolve_endpoints(tt_aws *a);
/* ms since epoch from an ISO 8601 UTC time ("2026-12-01T10:00:00Z"); -1 bad */
int64_t tt_aws__parse_time(const char *s);

#endif
