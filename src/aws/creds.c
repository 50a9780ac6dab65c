/* creds.c — credentials and region for src/aws/client.c, in the SDKs'
 * order: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), the container endpoint (AWS_CONTAINER_CREDENTIALS_
 * FULL_URI or _RELATIVE_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]),
 * then IMDSv2 (PUT /latest/api/token, then the role and its credentials;
 * AWS_EC2_METADATA_SERVICE_ENDPOINT overrides 169.254.169.254, and
 * AWS_EC2_METADATA_DISABLED=true skips it). Region: AWS_REGION,
 * AWS_DEFAULT_REGION, IMDS placement/region, else us-east-1.
 *
 * Credentials that expire are refreshed by a timer at Expiration - 15 min
 * (half the remaining life when that is shorter); calls keep signing with
 * the old ones while the refresh runs, and a failed refresh is retried
 * until they expire. Fetches use the same client, unsigned. Nothing here
 * logs a key, a secret or a token. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/aws_internal.h"
#include "tintype/error.h"
#include "tintype/log.h"

#define REFRESH_MARGIN_MS (15 * 60 * 1000)
#define META_TIMEOUT_MS 2000

static const char *env(const char *n) {
  const char *v = getenv(n);
  return v && *v ? v : NULL;
}

int64_t tt_aws__parse_time(const char *s) {
  if (!s) return -1;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!e) return -1;
  return (int64_t)timegm(&tm) * 1000;
}

void tt_aws__resolve_endpoints(tt_aws *a) {
  static const char *const vars[TT_AWS_NSVC] = {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS",
                                                "AWS_ENDPOINT_URL_DYNAMODB"};
  static const char *const host[TT_AWS_NSVC] = {"s3", "sqs", "dynamodb"};
  for (int s = 0; s < TT_AWS_NSVC; s++) {
    const char *v = env(vars[s]);
    if (!v) v = env("AWS_ENDPOINT_URL");
    if (v) {
      snprintf(a->endpoint[s], sizeof a->endpoint[s], "%s", v);
      size_t n = strlen(a->endpoint[s]);
      while (n && a->endpoint[s][n - 1] == '/') a->endpoint[s][--n] = 0;
      a->custom[s] = 1;
    } else {
      snprintf(a->endpoint[s], sizeof a->endpoint[s], "https://%s.%s.amazonaws.com", host[s],
               a->region[0] ? a->region : "us-east-1");
      a->custom[s] = 0;
    }
  }
}

void tt_aws__creds_init(tt_aws *a) {
  const char *r = env("AWS_REGION");
  if (!r) r = env("AWS_DEFAULT_REGION");
  if (r) snprintf(a->region, sizeof a->region, "%s", r);
  const char *m = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  snprintf(a->imds, sizeof a->imds, "%s", m ? m : "http://169.254.169.254");
  size_t n = strlen(a->imds);
  while (n && a->imds[n - 1] == '/') a->imds[--n] = 0;
  const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
  if (ak && sk) {
    snprintf(a->creds.akid, sizeof a->creds.akid, "%s", ak);
    snprintf(a->creds.secret, sizeof a->creds.secret, "%s", sk);
    const char *t = env("AWS_SESSION_TOKEN");
    snprintf(a->creds.token, sizeof a->creds.token, "%s", t ? t : "");
    a->creds.expires_ms = 0;
    a->creds.source = "env";
    a->have_creds = 1;
    if (!a->region[0]) snprintf(a->region, sizeof a->region, "us-east-1");
  }
  tt_aws__resolve_endpoints(a);
}

int tt_aws__creds_usable(tt_aws *a) {
  return a->have_creds && a->region[0] &&
         (a->creds.expires_ms == 0 || tt_aws_now_ms() < a->creds.expires_ms);
}

void tt_aws__creds_stop(tt_aws *a) {
  uv_timer_stop(&a->refresh);
  /* waiters are requests, which hold the client: none can be left here */
}

/* ---- the fetch: a small state machine over unsigned requests ----------- */

typedef struct fetch {
  tt_aws *a;
  int step;
  char role[256];
  tt_aws_creds c;
  int from_container;
} fetch;

static void fetch_step(fetch *f);
static void schedule_refresh(tt_aws *a);

static void fetch_done(fetch *f, int err) {
  tt_aws *a = f->a;
  a->fetching = 0;
  if (!err) {
    a->creds = f->c;
    a->have_creds = 1;
    a->fetch_failures = 0;
    if (!a->region[0]) snprintf(a->region, sizeof a->region, "us-east-1");
    tt_aws__resolve_endpoints(a);
    tt_buf *l = tt_log_begin(TT_LOG_INFO, "aws credentials loaded");
    if (l) {
      tt_log_cstr(l, "source", a->creds.source);
      tt_log_int(l, "expires_in_s",
                 a->creds.expires_ms ? (a->creds.expires_ms - tt_aws_now_ms()) / 1000 : -1);
      tt_log_end(l);
    }
  } else {
    a->fetch_failures++;
    tt_logf(TT_LOG_WARN, "aws: no credentials from the container endpoint or IMDS (%s)",
            tt_strerror(err));
  }
  memset(&f->c, 0, sizeof f->c);
  free(f);
  schedule_refresh(a);
  aws_waiter *w = a->waiters;
  a->waiters = NULL;
  int usable = tt_aws__creds_usable(a);
  while (w) {
    aws_waiter *n = w->next;
    w->fn(w->ud, usable ? 0 : TT_EAUTH);
    free(w);
    w = n;
  }
}

static int parse_creds(fetch *f, const char *body, size_t len) {
  json_t *j = json_loadb(body, len, 0, NULL);
  if (!j) return TT_EIO;
  const char *ak = json_string_value(json_object_get(j, "AccessKeyId"));
  const char *sk = json_string_value(json_object_get(j, "SecretAccessKey"));
  const char *tk = json_string_value(json_object_get(j, "Token"));
  const char *ex = json_string_value(json_object_get(j, "Expiration"));
  int rc = TT_EIO;
  if (ak && sk) {
    snprintf(f->c.akid, sizeof f->c.akid, "%s", ak);
    snprintf(f->c.secret, sizeof f->c.secret, "%s", sk);
    snprintf(f->c.token, sizeof f->c.token, "%s", tk ? tk : "");
    f->c.expires_ms = ex ? tt_aws__parse_time(ex) : 0;
    if (f->c.expires_ms < 0) f->c.expires_ms = 0;
    rc = TT_OK;
  }
  json_decref(j);
  return rc;
}

static void on_meta(void *ud, int err, const tt_aws_resp *r) {
  fetch *f = ud;
  tt_aws *a = f->a;
  if (err) {
    if (f->step == 4) { /* region is optional */
      f->step = 5;
      fetch_step(f);
      return;
    }
    fetch_done(f, err == TT_ECANCELED ? err : TT_EAUTH);
    return;
  }
  switch (f->step) {
  case 0: /* container */
    if (parse_creds(f, r->body, r->len)) {
      fetch_done(f, TT_EIO);
      return;
    }
    f->c.source = "container";
    f->step = 5;
    break;
  case 1: /* IMDS token */
    snprintf(a->imds_token, sizeof a->imds_token, "%.*s", (int)r->len, r->body);
    f->step = 2;
    break;
  case 2: /* role name: the first line */
    snprintf(f->role, sizeof f->role, "%.*s", (int)strcspn(r->body, "\r\n"), r->body);
    if (!f->role[0]) {
      fetch_done(f, TT_EAUTH);
      return;
    }
    f->step = 3;
    break;
  case 3:
    if (parse_creds(f, r->body, r->len)) {
      fetch_done(f, TT_EIO);
      return;
    }
    f->c.source = "imds";
    f->step = a->region[0] ? 5 : 4;
    break;
  case 4:
    snprintf(a->region, sizeof a->region, "%.*s", (int)strcspn(r->body, "\r\n"), r->body);
    f->step = 5;
    break;
  }
  fetch_step(f);
}

static void fetch_step(fetch *f) {
  tt_aws *a = f->a;
  char url[1024];
  switch (f->step) {
  case 0: {
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (full)
      snprintf(url, sizeof url, "%s", full);
    else
      snprintf(url, sizeof url, "http://169.254.170.2%s", rel);
    char tok[2048] = "";
    const char *tf = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tv = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (tf) {
      FILE *fp = fopen(tf, "r");
      if (fp) {
        size_t n = fread(tok, 1, sizeof tok - 1, fp);
        tok[n] = 0;
        tok[strcspn(tok, "\r\n")] = 0;
        fclose(fp);
      }
    } else if (tv) {
      snprintf(tok, sizeof tok, "%s", tv);
    }
    tt_aws_hdr h = {"Authorization", tok};
    tt_aws__raw(a, "GET", url, &h, tok[0] ? 1 : 0, META_TIMEOUT_MS, on_meta, f);
    return;
  }
  case 1: {
    snprintf(url, sizeof url, "%s/latest/api/token", a->imds);
    tt_aws_hdr h = {"X-aws-ec2-metadata-token-ttl-seconds", "21600"};
    tt_aws__raw(a, "PUT", url, &h, 1, META_TIMEOUT_MS, on_meta, f);
    return;
  }
  case 2:
  case 3:
  case 4: {
    if (f->step == 2)
      snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/", a->imds);
    else if (f->step == 3)
      snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/%s", a->imds, f->role);
    else
      snprintf(url, sizeof url, "%s/latest/meta-data/placement/region", a->imds);
    tt_aws_hdr h = {"X-aws-ec2-metadata-token", a->imds_token};
    tt_aws__raw(a, "GET", url, &h, 1, META_TIMEOUT_MS, on_meta, f);
    return;
  }
  default:
    fetch_done(f, TT_OK);
  }
}

static int container_uri_allowed(const char *u) {
  if (!strncmp(u, "https://", 8)) return 1;
  static const char *const ok[] = {"http://127.", "http://localhost", "http://[::1]",
                                   "http://169.254.170.2/", "http://169.254.170.2:",
                                   "http://169.254.170.23/", "http://[fd00:ec2::23]", NULL};
  for (int i = 0; ok[i]; i++)
    if (!strncmp(u, ok[i], strlen(ok[i]))) return 1;
  return 0;
}

static void fetch_start(tt_aws *a) {
  if (a->fetching) return;
  if (!strcmp(a->creds.source ? a->creds.source : "", "env")) return; /* static */
  fetch *f = calloc(1, sizeof *f);
  if (!f) return;
  f->a = a;
  a->fetching = 1;
  const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (full && !container_uri_allowed(full)) {
    tt_logf(TT_LOG_WARN, "aws: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or loopback; ignored");
    full = NULL;
  }
  if (full || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
    f->step = 0;
  else if (env("AWS_EC2_METADATA_DISABLED") && !strcmp(env("AWS_EC2_METADATA_DISABLED"), "true")) {
    f->step = 5;
    a->fetching = 0;
    free(f);
    aws_waiter *w = a->waiters;
    a->waiters = NULL;
    while (w) {
      aws_waiter *n = w->next;
      w->fn(w->ud, TT_EAUTH);
      free(w);
      w = n;
    }
    return;
  } else
    f->step = 1;
  fetch_step(f);
}

static void on_refresh(uv_timer_t *t) {
  tt_aws *a = t->data;
  fetch_start(a);
}

static void schedule_refresh(tt_aws *a) {
  uv_timer_stop(&a->refresh);
  if (!a->have_creds || !a->creds.expires_ms) return;
  int64_t left = a->creds.expires_ms - tt_aws_now_ms();
  int64_t at;
  if (a->fetch_failures) /* retry a failed refresh while the old keys last */
    at = left > 60000 ? 30000 : 1000;
  else {
    at = left - REFRESH_MARGIN_MS;
    if (at < left / 2) at = left / 2;
  }
  if (at < 200) at = 200;
  uv_timer_start(&a->refresh, on_refresh, (uint64_t)at, 0);
}

void tt_aws__creds_need(tt_aws *a, void (*fn)(void *ud, int err), void *ud) {
  aws_waiter *w = calloc(1, sizeof *w);
  if (!w) {
    fn(ud, TT_ENOMEM);
    return;
  }
  w->fn = fn;
  w->ud = ud;
  w->next = a->waiters;
  a->waiters = w;
  if (!strcmp(a->creds.source ? a->creds.source : "", "env")) {
    /* static keys with no region cannot happen (init sets one): answer now */
    fetch *f = calloc(1, sizeof *f);
    if (!f) return;
    f->a = a;
    f->c = a->creds;
    f->step = 5;
    a->fetching = 1;
    fetch_step(f);
    return;
  }
  fetch_start(a);
}
