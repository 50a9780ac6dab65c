/* aws.h — the AWS client under the s3://, sqs:// and dynamodb:// backends.
 *
 * Three layers, each usable alone:
 *   - SigV4 (src/aws/sigv4.c): pure functions, the clock passed in, so the
 *     golden vectors of AWS's test suite run as unit tests. Header signing
 *     for every call; query signing for presigned S3 GETs.
 *   - credentials and region (src/aws/creds.c): the SDK chain env ->
 *     container (AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI) ->
 *     IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address);
 *     refreshed well before Expiration while calls keep the old ones.
 *   - the client (src/aws/client.c): one libcurl multi handle per libuv
 *     loop, driven by uv_poll_t/uv_timer_t (no threads), keep-alive reuse,
 *     per-request timeouts, the SDKs' "standard" retry mode.
 *
 * Calling convention as the seams (store.h): a call's callback runs exactly
 * once, on the loop, never before the call returns. Secrets are never
 * logged: log lines name the IAM action, the HTTP status and AWS's error
 * code and message, nothing else of the request. */
#ifndef TINTYPE_AWS_H
#define TINTYPE_AWS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/buf.h"

/* ---- SigV4 ---------------------------------------------------------- */

typedef struct tt_aws_hdr {
  const char *name, *value;
} tt_aws_hdr;

typedef struct tt_aws_sig_req {
  const char *method;
  const char *path;  /* as sent: URI-encoded */
  const char *query; /* as sent without '?': encoded; NULL = none */
  const tt_aws_hdr *headers; /* every header to sign, host and x-amz-date included */
  size_t nheaders;
  const char *payload_hash; /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
  int s3; /* 1: the path is canonical as given (S3); 0: encoded once more (other services) */
} tt_aws_sig_req;

typedef struct tt_aws_key {
  const char *akid, *secret, *token; /* token may be NULL */
  const char *region, *service;
} tt_aws_key;

#define TT_AWS_DATE_LEN 17 /* "YYYYMMDDTHHMMSSZ" + NUL */

/* "20150830T123600Z" for a Unix time */
void tt_aws_amzdate(int64_t unix_s, char out[TT_AWS_DATE_LEN]);

/* Appends s percent-encoded as SigV4 wants (unreserved A-Za-z0-9-_.~ kept;
 * '/' kept too when keep_slash). TT_OK or TT_ENOMEM. */
int tt_aws_uri_encode(tt_buf *out, const char *s, size_t n, int keep_slash);

/* Signs r at amzdate (which must equal the x-amz-date header): writes the
 * Authorization header value into auth. creq, when not NULL, receives the
 * canonical request (for tests). TT_OK, TT_ENOMEM, TT_ETOOBIG, TT_EINVAL. */
int tt_aws_sign(const tt_aws_sig_req *r, const tt_aws_key *k, const char *amzdate, char *auth,
                size_t authlen, tt_buf *creq);

/* A presigned GET: base is "scheme://host[:port]", host what the Host header
 * will be, path encoded. out gets base + path + "?X-Amz-..." valid expires_s
 * seconds from now_s. */
int tt_aws_presign(const char *base, const char *host, const char *path, const tt_aws_key *k,
                   int64_t now_s, int64_t expires_s, char *out, size_t outlen);

/* ---- the client ----------------------------------------------------- */

typedef struct tt_aws tt_aws;
typedef struct tt_aws_req tt_aws_req;

typedef enum { TT_AWS_S3 = 0, TT_AWS_SQS = 1, TT_AWS_DYNAMODB = 2, TT_AWS_NSVC } tt_aws_svc;

typedef struct tt_aws_resp {
  long status;       /* HTTP status, 0 when no response */
  const char *body;  /* NUL-terminated (buffered calls) */
  size_t len;
  const char *code;    /* AWS error code ("ThrottlingException"), "" when none */
  const char *message; /* AWS error message, "" when none */
  tt_aws_req *req;     /* for tt_aws_resp_header */
} tt_aws_resp;

/* Buffered: called once at the end. err: 0 on 2xx; otherwise TT_EAUTH
 * (signature, key, token or IAM refused), TT_ETIMEDOUT (no answer in
 * time), TT_EIO (connection failed or another HTTP error: see r->status and
 * r->code), TT_ECANCELED. r is never NULL. */
typedef void (*tt_aws_cb)(void *ud, int err, const tt_aws_resp *r);
/* Streaming: headers of a 2xx answer (no retry after this point). */
typedef void (*tt_aws_head_cb)(void *ud, const tt_aws_resp *r);
/* Streaming: body bytes; return 0 when taken, 1 to pause (the same bytes
 * come again after tt_aws_resume). Runs inside libcurl: call nothing of
 * this API from it. */
typedef int (*tt_aws_data_cb)(void *ud, const char *data, size_t len);

typedef struct tt_aws_call {
  tt_aws_svc svc;
  const char *action; /* IAM action name, "sqs:SendMessage": logs, and X-Amz-Target for JSON */
  const char *op;     /* wire operation when it differs ("DeleteMessageBatch" is sqs:DeleteMessage) */
  const char *base;   /* "scheme://host[:port]"; NULL = the service's endpoint */
  const char *method; /* NULL = POST */
  const char *path;        /* encoded; NULL = "/" */
  const char *query;       /* encoded, no '?'; NULL = none */
  const char *content_type;
  const tt_aws_hdr *headers; /* extra headers to send and sign */
  size_t nheaders;
  const void *body; /* copied */
  size_t len;
  int keep_body;    /* 1: body is not copied and stays valid until the callback */
  int64_t timeout_ms; /* 0 = the client's default */
  tt_aws_head_cb on_head; /* streaming download when set */
  tt_aws_data_cb on_data;
} tt_aws_call;

/* The client of this loop, created on first use (one per loop, shared by
 * every backend on it). Reference counted. NULL on ENOMEM. */
tt_aws *tt_aws_acquire(uv_loop_t *loop);
void tt_aws_release(tt_aws *a);

/* Starts a call; returns the request (valid until its callback runs) or
 * NULL on ENOMEM (then cb runs later with TT_ENOMEM). */
tt_aws_req *tt_aws_call_start(tt_aws *a, const tt_aws_call *c, tt_aws_cb cb, void *ud);
void tt_aws_resume(tt_aws_req *r); /* after on_data answered 1 */
void tt_aws_cancel(tt_aws_req *r); /* cb runs later with TT_ECANCELED */
/* A response header's value (NUL-terminated) or NULL. During callbacks. */
const char *tt_aws_resp_header(const tt_aws_req *r, const char *name);

/* Endpoint of a service: "scheme://host[:port]" (no trailing '/'),
 * whether the endpoint was configured (path-style S3 then), the region. */
const char *tt_aws_endpoint(tt_aws *a, tt_aws_svc s, int *custom);
const char *tt_aws_region(tt_aws *a);
/* Current credentials for presigning; 0 and *k filled, or TT_EAUTH when
 * none are known yet. *expires_ms: 0 when they never expire. */
int tt_aws_key_get(tt_aws *a, tt_aws_svc s, tt_aws_key *k, int64_t *expires_ms);

/* Fetches credentials (and region) now if none are cached; cb(ud, err).
 * Backends call it at open so the first request needs no wait. */
void tt_aws_ready(tt_aws *a, void (*cb)(void *ud, int err), void *ud);

typedef struct tt_aws_stats {
  uint64_t requests;  /* HTTP requests sent (attempts, retries included) */
  uint64_t connects;  /* new TCP connections */
  uint64_t retries;
  uint64_t failures;
} tt_aws_stats;
void tt_aws_stats_get(tt_aws *a, tt_aws_stats *out);

/* Time source of the client and signer (tests may replace it). ms since epoch. */
extern int64_t (*tt_aws_now_ms)(void);

/* ---- helpers for the backends (src/aws/json.c) ----------------------- */

/* Decodes "NAME" or "NAME?a=b&c=d" parts of a backend URL: the value of
 * query parameter key into out (URL-decoded). 1 found, 0 absent. */
int tt_aws_url_param(const char *url, const char *key, char *out, size_t outlen);

/* `tintype aws init` (src/aws/init.c): creates what the AWS URLs of cfg
 * name — the queues "jobs" and "images" with their dead-letter queues
 * (RedrivePolicy maxReceiveCount = --max-receives), the bucket, the table
 * and its index — and leaves what exists. Exit status. */
struct tt_config;
int tt_aws_init_main(const struct tt_config *cfg);

#endif
