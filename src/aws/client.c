/* client.c — the AWS HTTP client (include/tintype/aws.h): one libcurl multi
 * handle per libuv loop, driven by uv_poll_t (a socket each) and one
 * uv_timer_t (libcurl's timeout), so calls complete on the loop with no
 * thread. The multi handle keeps connections alive and reuses them across
 * calls and backends of the loop.
 *
 * A call is signed (src/aws/sigv4.c) with the credentials of creds.c at
 * every attempt, so a retry after a rotation uses the new keys. Retries
 * follow the SDKs' "standard" mode: throttling codes, 5xx and connection
 * errors are retried up to AWS_MAX_ATTEMPTS (3) with full-jitter
 * exponential backoff, and a retry budget (500 tokens; 5 a retry, 10 after
 * a timeout; a success refunds) stops retry storms when a service is down.
 * Neighbours: the backends src/blobs/s3.c, src/queue/sqs.c,
 * src/store/dynamodb.c call tt_aws_call_start with an IAM action name. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "aws/aws_internal.h"
#include "tintype/crypto.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"

static int64_t real_now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}
int64_t (*tt_aws_now_ms)(void) = real_now_ms;

#define RETRY_TOKENS 500
#define RETRY_COST 5
#define TIMEOUT_COST 10

enum { R_WAIT_CREDS = 1, R_IN_MULTI = 2, R_STREAM_HEAD = 4, R_PAUSED = 8, R_DONE = 16, R_CANCELED = 32, R_BORROWED = 64, R_READER_WAIT = 128 };

struct tt_aws_req {
  tt_aws *a;
  unsigned flags;
  int raw; /* unsigned, absolute url */
  tt_aws_svc svc;
  const char *action, *op, *method;
  char *url;  /* raw only */
  char *base; /* NULL: the service endpoint */
  char *path, *query, *ctype;
  tt_aws_hdr *hdrs;
  size_t nh;
  char *body;
  size_t len;
  int64_t timeout_ms;
  tt_aws_head_cb on_head;
  tt_aws_data_cb on_data;
  tt_aws_cb cb;
  void *ud;
  CURL *easy;
  struct curl_slist *sl;
  tt_buf resp, rhdr;
  char hv[2048];
  int attempt, cost, err;
  long status;
  CURLcode cerr;
  char code[128], msg[512];
  uv_timer_t t; /* backoff, deferred completion, stream head */
  int head_pending;
};

/* ---- registry: one client per loop ------------------------------------ */

#define MAX_LOOPS 8
static struct {
  uv_loop_t *loop;
  tt_aws *a;
} reg[MAX_LOOPS];

static void check_done(tt_aws *a);

static void on_timer(uv_timer_t *t) {
  tt_aws *a = t->data;
  int running;
  curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(a);
}

static int on_curl_timer(CURLM *m, long ms, void *userp) {
  (void)m;
  tt_aws *a = userp;
  if (ms < 0)
    uv_timer_stop(&a->timer);
  else
    uv_timer_start(&a->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

typedef struct sockctx {
  uv_poll_t poll;
  curl_socket_t fd;
  tt_aws *a;
} sockctx;

static void on_poll(uv_poll_t *p, int status, int events) {
  sockctx *sc = p->data;
  int flags = 0;
  if (status < 0) flags |= CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  tt_aws *a = sc->a;
  curl_multi_socket_action(a->multi, sc->fd, flags, &running);
  check_done(a);
}

static void free_sock(uv_handle_t *h) { free(h->data); }

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  tt_aws *a = userp;
  sockctx *sc = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sc) {
      uv_poll_stop(&sc->poll);
      uv_close((uv_handle_t *)&sc->poll, free_sock);
      curl_multi_assign(a->multi, s, NULL);
    }
    return 0;
  }
  if (!sc) {
    sc = calloc(1, sizeof *sc);
    if (!sc) return -1;
    sc->fd = s;
    sc->a = a;
    sc->poll.data = sc;
    if (uv_poll_init_socket(a->loop, &sc->poll, s)) {
      free(sc);
      return -1;
    }
    uv_unref((uv_handle_t *)&sc->poll); /* the timer's reference stands for every call */
    curl_multi_assign(a->multi, s, sc);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&sc->poll, ev, on_poll);
  return 0;
}

static int64_t env_int(const char *name, int64_t def, int64_t lo, int64_t hi) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end;
  long long x = strtoll(v, &end, 10);
  if (*end || x < lo || x > hi) return def;
  return x;
}

static void inflight_add(tt_aws *a, int d) {
  a->inflight += d;
  /* libcurl's timer keeps the loop alive exactly while calls are in flight
   * and not paused for a reader that has not asked for more (as a libuv
   * stream whose reading stopped) */
  int live = a->inflight - a->paused;
  if (live > 0 && !a->timer_ref) {
    uv_ref((uv_handle_t *)&a->timer);
    a->timer_ref = 1;
  } else if (live <= 0 && a->timer_ref) {
    uv_unref((uv_handle_t *)&a->timer);
    a->timer_ref = 0;
  }
}

tt_aws *tt_aws_acquire(uv_loop_t *loop) {
  int free_slot = -1;
  for (int i = 0; i < MAX_LOOPS; i++) {
    if (reg[i].loop == loop && reg[i].a) {
      reg[i].a->refs++;
      return reg[i].a;
    }
    if (!reg[i].a && free_slot < 0) free_slot = i;
  }
  if (free_slot < 0) return NULL;
  static int global_done;
  if (!global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) return NULL;
    global_done = 1;
  }
  tt_aws *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->loop = loop;
  a->refs = 1;
  a->multi = curl_multi_init();
  if (!a->multi) {
    free(a);
    return NULL;
  }
  uv_timer_init(loop, &a->timer);
  a->timer.data = a;
  uv_unref((uv_handle_t *)&a->timer);
  uv_timer_init(loop, &a->refresh);
  a->refresh.data = a;
  uv_unref((uv_handle_t *)&a->refresh);
  curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
  curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
  curl_multi_setopt(a->multi, CURLMOPT_MAXCONNECTS, 16L);
  a->timeout_ms = env_int("TINTYPE_AWS_TIMEOUT_MS", 15000, 100, 600000);
  a->max_attempts = (int)env_int("AWS_MAX_ATTEMPTS", 3, 1, 100);
  a->backoff_base_ms = env_int("TINTYPE_AWS_BACKOFF_MS", 1000, 1, 60000);
  a->backoff_max_ms = 20000;
  a->retry_tokens = RETRY_TOKENS;
  tt_aws__creds_init(a);
  reg[free_slot].loop = loop;
  reg[free_slot].a = a;
  return a;
}

static void free_client(uv_handle_t *h) {
  tt_aws *a = h->data;
  free(a);
}
static void refresh_closed(uv_handle_t *h) {
  tt_aws *a = h->data;
  uv_close((uv_handle_t *)&a->timer, free_client);
}

static void destroy(tt_aws *a) {
  for (int i = 0; i < MAX_LOOPS; i++)
    if (reg[i].a == a) reg[i].a = NULL, reg[i].loop = NULL;
  tt_aws__creds_stop(a);
  curl_multi_cleanup(a->multi);
  memset(&a->creds, 0, sizeof a->creds);
  uv_timer_stop(&a->timer);
  uv_close((uv_handle_t *)&a->refresh, refresh_closed);
}

void tt_aws_release(tt_aws *a) {
  if (!a) return;
  if (--a->refs == 0 && a->inflight == 0) destroy(a);
}

/* ---- one request --------------------------------------------------------- */

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
  tt_aws_req *r = ud;
  size_t len = sz * n;
  if (len >= 5 && !strncmp(p, "HTTP/", 5)) tt_buf_reset(&r->rhdr); /* a new response (100, redirects) */
  if (tt_buf_append(&r->rhdr, p, len)) return 0;
  return len;
}

static void on_t(uv_timer_t *t);

static size_t on_write(char *p, size_t sz, size_t n, void *ud) {
  tt_aws_req *r = ud;
  size_t len = sz * n;
  if (r->on_data) {
    long st = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
    if (st >= 200 && st < 300) {
      if (!(r->flags & R_STREAM_HEAD)) {
        /* hand the headers over on the loop first, then the bytes */
        r->flags |= R_STREAM_HEAD | R_PAUSED;
        r->status = st;
        r->head_pending = 1;
        uv_timer_start(&r->t, on_t, 0, 0);
        return CURL_WRITEFUNC_PAUSE;
      }
      if (r->head_pending || (r->flags & R_CANCELED)) {
        r->flags |= R_PAUSED;
        return CURL_WRITEFUNC_PAUSE;
      }
      if (r->on_data(r->ud, p, len)) {
        r->flags |= R_PAUSED;
        if (!(r->flags & R_READER_WAIT)) {
          r->flags |= R_READER_WAIT;
          r->a->paused++;
          inflight_add(r->a, 0);
        }
        return CURL_WRITEFUNC_PAUSE;
      }
      return len;
    }
  }
  if (r->resp.len + len > (64u << 20)) return 0; /* a buffered answer is never this big */
  if (tt_buf_append(&r->resp, p, len)) return 0;
  return len;
}

const char *tt_aws_resp_header(const tt_aws_req *r, const char *name) {
  tt_aws_req *w = (tt_aws_req *)r;
  size_t nl = strlen(name);
  const char *p = r->rhdr.data;
  if (!p) return NULL;
  while (*p) {
    const char *e = strstr(p, "\r\n");
    if (!e) e = p + strlen(p);
    if ((size_t)(e - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
      const char *v = p + nl + 1;
      while (v < e && (*v == ' ' || *v == '\t')) v++;
      size_t vl = (size_t)(e - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
      if (vl >= sizeof w->hv) vl = sizeof w->hv - 1;
      memcpy(w->hv, v, vl);
      w->hv[vl] = 0;
      return w->hv;
    }
    if (!*e) break;
    p = e + 2;
  }
  return NULL;
}

static void parse_error(tt_aws_req *r) {
  r->code[0] = r->msg[0] = 0;
  const char *b = r->resp.data;
  const char *qe = tt_aws_resp_header(r, "x-amzn-query-error");
  if (b && r->resp.len) {
    while (*b == ' ' || *b == '\n' || *b == '\r') b++;
    if (*b == '{') {
      json_t *j = json_loadb(r->resp.data, r->resp.len, 0, NULL);
      if (j) {
        const char *t = json_string_value(json_object_get(j, "__type"));
        if (!t) t = json_string_value(json_object_get(j, "code"));
        if (t) {
          const char *h = strrchr(t, '#');
          snprintf(r->code, sizeof r->code, "%s", h ? h + 1 : t);
        }
        const char *m = json_string_value(json_object_get(j, "message"));
        if (!m) m = json_string_value(json_object_get(j, "Message"));
        if (m) snprintf(r->msg, sizeof r->msg, "%s", m);
        json_decref(j);
      }
    } else {
      const char *c = strstr(b, "<Code>");
      if (c) {
        c += 6;
        const char *e = strstr(c, "</Code>");
        if (e) snprintf(r->code, sizeof r->code, "%.*s", (int)(e - c), c);
      }
      const char *m = strstr(b, "<Message>");
      if (m) {
        m += 9;
        const char *e = strstr(m, "</Message>");
        if (e) snprintf(r->msg, sizeof r->msg, "%.*s", (int)(e - m), m);
      }
    }
  }
  if (qe && !r->code[0]) snprintf(r->code, sizeof r->code, "%.*s", (int)strcspn(qe, ";"), qe);
}

static int is_throttle(const char *c) {
  static const char *const t[] = {"Throttling", "ThrottlingException", "ThrottledException",
                                  "RequestThrottledException", "TooManyRequestsException",
                                  "ProvisionedThroughputExceededException",
                                  "TransactionInProgressException", "RequestLimitExceeded",
                                  "BandwidthLimitExceeded", "LimitExceededException",
                                  "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
                                  "EC2ThrottledException", "ThrottlingException", "RequestTimeout",
                                  "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                                  NULL};
  for (int i = 0; t[i]; i++)
    if (!strcmp(c, t[i])) return 1;
  return 0;
}

static int is_auth(const char *c) {
  static const char *const t[] = {"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied",
                                  "AccessDeniedException", "UnrecognizedClientException",
                                  "InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException",
                                  "InvalidSignatureException", "MissingAuthenticationToken",
                                  "IncompleteSignature", "InvalidToken", "AuthFailure", NULL};
  for (int i = 0; t[i]; i++)
    if (!strcmp(c, t[i])) return 1;
  return 0;
}

static void attempt(tt_aws_req *r);
static void finish(tt_aws_req *r, int err);
static void on_creds_for_req(void *ud, int err);

static void req_closed(uv_handle_t *h) {
  tt_aws_req *r = h->data;
  free(r);
}

static void unpause_count(tt_aws_req *r) {
  if (r->flags & R_READER_WAIT) {
    r->flags &= ~(unsigned)R_READER_WAIT;
    r->a->paused--;
    inflight_add(r->a, 0);
  }
}

static void req_free(tt_aws_req *r) {
  tt_aws *a = r->a;
  unpause_count(r);
  if (r->easy) {
    if (r->flags & R_IN_MULTI) curl_multi_remove_handle(a->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  curl_slist_free_all(r->sl);
  r->sl = NULL;
  for (size_t i = 0; i < r->nh; i++) {
    free((char *)r->hdrs[i].name);
    free((char *)r->hdrs[i].value);
  }
  free(r->hdrs);
  free(r->url);
  free(r->base);
  free(r->path);
  free(r->query);
  free(r->ctype);
  if (!(r->flags & R_BORROWED)) free(r->body);
  tt_buf_free(&r->resp);
  tt_buf_free(&r->rhdr);
  uv_close((uv_handle_t *)&r->t, req_closed);
  inflight_add(a, -1);
  if (a->refs == 0 && a->inflight == 0) destroy(a);
}

static void deliver(tt_aws_req *r) {
  tt_aws_resp resp = {r->status, r->resp.data ? r->resp.data : "", r->resp.len, r->code, r->msg, r};
  r->flags |= R_DONE;
  if (r->cb) r->cb(r->ud, r->err, &resp);
  req_free(r);
}

static void on_t(uv_timer_t *t) {
  tt_aws_req *r = t->data;
  if (r->flags & R_DONE) {
    deliver(r);
  } else if (r->head_pending) {
    r->head_pending = 0;
    tt_aws_resp resp = {r->status, "", 0, "", "", r};
    r->on_head(r->ud, &resp);
    if (r->flags & R_CANCELED) return;
    tt_aws_resume(r);
  } else {
    attempt(r);
  }
}

/* completion later, on the loop */
static void finish(tt_aws_req *r, int err) {
  r->err = err;
  r->flags |= R_DONE;
  if (r->easy) {
    if (r->flags & R_IN_MULTI) curl_multi_remove_handle(r->a->multi, r->easy);
    r->flags &= ~(unsigned)R_IN_MULTI;
  }
  uv_timer_start(&r->t, on_t, 0, 0);
}

static void log_failure(tt_aws_req *r, const char *what) {
  /* a plain 4xx answer (no such queue, condition failed) is the caller's
   * business; refusals, 5xx, timeouts and connection errors are warnings */
  int quiet = r->status >= 400 && r->status < 500 && r->err != TT_EAUTH && r->status != 403;
  tt_buf *l = tt_log_begin(quiet ? TT_LOG_DEBUG : TT_LOG_WARN, what);
  if (!l) return;
  tt_log_cstr(l, "action", r->action ? r->action : r->method);
  if (r->status) tt_log_int(l, "http_status", r->status);
  if (r->code[0]) tt_log_cstr(l, "code", r->code);
  if (r->msg[0]) tt_log_cstr(l, "detail", r->msg);
  if (r->cerr) tt_log_cstr(l, "error", curl_easy_strerror(r->cerr));
  tt_log_int(l, "attempts", r->attempt);
  tt_log_end(l);
}

static void completed(tt_aws_req *r, CURLcode res) {
  tt_aws *a = r->a;
  long st = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
  long nc = 0;
  curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nc);
  a->stats.connects += (uint64_t)nc;
  tt_metrics_add(TT_M_AWS_CONNECTS, (uint64_t)nc);
  curl_multi_remove_handle(a->multi, r->easy);
  r->flags &= ~(unsigned)R_IN_MULTI;
  r->status = res == CURLE_OK ? st : 0;
  r->cerr = res;
  int retryable = 0, cost = RETRY_COST, err = 0;
  if (res != CURLE_OK) {
    if (r->flags & R_STREAM_HEAD) {
      err = res == CURLE_OPERATION_TIMEDOUT ? TT_ETIMEDOUT : TT_EIO; /* bytes already handed on */
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
      err = TT_ETIMEDOUT;
      retryable = 1;
      cost = TIMEOUT_COST;
    } else if (res == CURLE_OUT_OF_MEMORY) {
      err = TT_ENOMEM;
    } else {
      err = TT_EIO;
      retryable = res != CURLE_WRITE_ERROR && res != CURLE_ABORTED_BY_CALLBACK &&
                  res != CURLE_URL_MALFORMAT && res != CURLE_UNSUPPORTED_PROTOCOL;
    }
  } else if (st < 200 || st >= 300) {
    if (!r->raw) parse_error(r);
    err = TT_EIO;
    if (st == 403 || is_auth(r->code)) err = TT_EAUTH;
    if (st >= 500 || st == 429 || is_throttle(r->code)) retryable = 1;
  }
  if (err == 0) {
    if (r->cost)
      a->retry_tokens += r->cost;
    else
      a->retry_tokens += 1;
    if (a->retry_tokens > RETRY_TOKENS) a->retry_tokens = RETRY_TOKENS;
    finish(r, 0);
    return;
  }
  if (retryable && !(r->flags & R_CANCELED) && r->attempt < r->a->max_attempts &&
      a->retry_tokens >= cost) {
    a->retry_tokens -= cost;
    r->cost = cost;
    a->stats.retries++;
    tt_metrics_add(TT_M_AWS_RETRIES, 1);
    int64_t cap = a->backoff_base_ms << (r->attempt - 1 < 20 ? r->attempt - 1 : 20);
    if (cap > a->backoff_max_ms) cap = a->backoff_max_ms;
    uint32_t rnd = 0;
    tt_random_bytes(&rnd, sizeof rnd);
    int64_t wait = (int64_t)((double)rnd / 4294967296.0 * (double)cap);
    tt_buf *l = tt_log_begin(TT_LOG_INFO, "aws call retried");
    if (l) {
      tt_log_cstr(l, "action", r->action ? r->action : r->method);
      if (r->status) tt_log_int(l, "http_status", r->status);
      if (r->code[0]) tt_log_cstr(l, "code", r->code);
      if (res) tt_log_cstr(l, "error", curl_easy_strerror(res));
      tt_log_int(l, "attempt", r->attempt);
      tt_log_int(l, "backoff_ms", wait);
      tt_log_end(l);
    }
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    uv_timer_start(&r->t, on_t, (uint64_t)wait, 0);
    return;
  }
  a->stats.failures++;
  r->err = err;
  if (!(r->flags & R_CANCELED) && !(r->raw && st == 404))
    log_failure(r, err == TT_ETIMEDOUT ? "aws call timed out" : "aws call failed");
  finish(r, r->flags & R_CANCELED ? TT_ECANCELED : err);
}

static void check_done(tt_aws *a) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(a->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    tt_aws_req *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (r) completed(r, m->data.result);
  }
}

static const char *const svc_name[TT_AWS_NSVC] = {"s3", "sqs", "dynamodb"};

static int add_header(tt_aws_req *r, const char *name, const char *value) {
  char line[8192];
  snprintf(line, sizeof line, "%s: %s", name, value);
  struct curl_slist *n = curl_slist_append(r->sl, line);
  if (!n) return TT_ENOMEM;
  r->sl = n;
  return TT_OK;
}

/* the host part of "scheme://host[:port]" */
static const char *host_of(const char *base) {
  const char *h = strstr(base, "://");
  return h ? h + 3 : base;
}

static int build(tt_aws_req *r, char *url, size_t urllen) {
  tt_aws *a = r->a;
  r->resp.len = 0;
  tt_buf_reset(&r->rhdr);
  r->code[0] = r->msg[0] = 0;
  if (r->raw) {
    snprintf(url, urllen, "%s", r->url);
    for (size_t i = 0; i < r->nh; i++)
      if (add_header(r, r->hdrs[i].name, r->hdrs[i].value)) return TT_ENOMEM;
    return TT_OK;
  }
  const char *base = r->base ? r->base : a->endpoint[r->svc];
  char host[512];
  snprintf(host, sizeof host, "%s", host_of(base));
  snprintf(url, urllen, "%s%s%s%s", base, r->path, r->query ? "?" : "", r->query ? r->query : "");
  char date[TT_AWS_DATE_LEN];
  tt_aws_amzdate(tt_aws_now_ms() / 1000, date);
  char hash[TT_SHA256_HEX];
  if (r->svc == TT_AWS_S3 && r->len == 0 && r->method && strcmp(r->method, "POST") &&
      strcmp(r->method, "PUT"))
    tt_sha256_hex("", 0, hash);
  else
    tt_sha256_hex(r->body ? r->body : "", r->len, hash);
  tt_aws_hdr h[40];
  size_t n = 0;
  h[n++] = (tt_aws_hdr){"host", host};
  h[n++] = (tt_aws_hdr){"x-amz-date", date};
  if (r->svc == TT_AWS_S3) h[n++] = (tt_aws_hdr){"x-amz-content-sha256", hash};
  if (a->creds.token[0]) h[n++] = (tt_aws_hdr){"x-amz-security-token", a->creds.token};
  if (r->ctype) h[n++] = (tt_aws_hdr){"content-type", r->ctype};
  char target[160];
  if (r->svc != TT_AWS_S3 && r->action) {
    const char *op = r->op ? r->op : strchr(r->action, ':') ? strchr(r->action, ':') + 1 : r->action;
    snprintf(target, sizeof target, "%s.%s",
             r->svc == TT_AWS_SQS ? "AmazonSQS" : "DynamoDB_20120810", op);
    h[n++] = (tt_aws_hdr){"x-amz-target", target};
  }
  for (size_t i = 0; i < r->nh && n < 40; i++) h[n++] = r->hdrs[i];
  tt_aws_key k = {a->creds.akid, a->creds.secret, a->creds.token, a->region, svc_name[r->svc]};
  tt_aws_sig_req sr = {r->method, r->path, r->query, h, n, hash, r->svc == TT_AWS_S3};
  char auth[1200];
  int rc = tt_aws_sign(&sr, &k, date, auth, sizeof auth, NULL);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++)
    if (add_header(r, h[i].name, h[i].value)) return TT_ENOMEM;
  if (add_header(r, "Authorization", auth)) return TT_ENOMEM;
  memset(auth, 0, sizeof auth);
  return TT_OK;
}

static void attempt(tt_aws_req *r) {
  tt_aws *a = r->a;
  if (r->flags & R_CANCELED) {
    finish(r, TT_ECANCELED);
    return;
  }
  if (!r->raw && !tt_aws__creds_usable(a)) {
    r->flags |= R_WAIT_CREDS; /* expired during a backoff: wait for the refresh */
    tt_aws__creds_need(a, on_creds_for_req, r);
    return;
  }
  r->attempt++;
  curl_slist_free_all(r->sl);
  r->sl = NULL;
  char url[4096];
  int rc = build(r, url, sizeof url);
  CURL *e = rc ? NULL : curl_easy_init();
  if (!e) {
    finish(r, rc ? rc : TT_ENOMEM);
    return;
  }
  r->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->timeout_ms < 5000 ? r->timeout_ms : 5000));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
  if (add_header(r, "Expect", "") || add_header(r, "Accept", "")) {
    finish(r, TT_ENOMEM);
    return;
  }
  const char *m = r->method ? r->method : "POST";
  if (!strcmp(m, "GET")) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (!strcmp(m, "HEAD")) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    if (strcmp(m, "DELETE") || r->len) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
    }
  }
  if (!r->ctype && strcmp(m, "GET") && strcmp(m, "HEAD") && add_header(r, "Content-Type", "")) {
    finish(r, TT_ENOMEM);
    return;
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->sl);
  a->stats.requests++;
  tt_metrics_add(TT_M_AWS_REQUESTS, 1);
  if (curl_multi_add_handle(a->multi, e) != CURLM_OK) {
    finish(r, TT_ENOMEM);
    return;
  }
  r->flags |= R_IN_MULTI;
}

static void on_creds_for_req(void *ud, int err) {
  tt_aws_req *r = ud;
  r->flags &= ~(unsigned)R_WAIT_CREDS;
  if (r->flags & R_CANCELED) {
    finish(r, TT_ECANCELED);
    return;
  }
  if (err) {
    snprintf(r->msg, sizeof r->msg, "no AWS credentials (environment, container or IMDS)");
    log_failure(r, "aws call failed");
    finish(r, TT_EAUTH);
    return;
  }
  attempt(r);
}

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static tt_aws_req *req_new(tt_aws *a, tt_aws_cb cb, void *ud) {
  tt_aws_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->a = a;
  r->cb = cb;
  r->ud = ud;
  uv_timer_init(a->loop, &r->t);
  r->t.data = r;
  inflight_add(a, 1);
  return r;
}

static int copy_headers(tt_aws_req *r, const tt_aws_hdr *h, size_t nh) {
  if (!nh) return TT_OK;
  r->hdrs = calloc(nh, sizeof *r->hdrs);
  if (!r->hdrs) return TT_ENOMEM;
  r->nh = nh;
  for (size_t i = 0; i < nh; i++) {
    r->hdrs[i].name = strdup(h[i].name);
    r->hdrs[i].value = strdup(h[i].value);
    if (!r->hdrs[i].name || !r->hdrs[i].value) return TT_ENOMEM;
  }
  return TT_OK;
}

tt_aws_req *tt_aws_call_start(tt_aws *a, const tt_aws_call *c, tt_aws_cb cb, void *ud) {
  tt_aws_req *r = req_new(a, cb, ud);
  if (!r) return NULL;
  r->svc = c->svc;
  r->action = c->action;
  r->op = c->op;
  r->method = c->method ? c->method : "POST";
  r->path = strdup(c->path ? c->path : "/");
  r->query = dupn(c->query);
  r->base = dupn(c->base);
  r->ctype = dupn(c->content_type);
  r->timeout_ms = c->timeout_ms ? c->timeout_ms : a->timeout_ms;
  r->on_head = c->on_head;
  r->on_data = c->on_data;
  int bad = !r->path || (c->query && !r->query) || (c->base && !r->base) || (c->content_type && !r->ctype) ||
            copy_headers(r, c->headers, c->nheaders);
  if (!bad && c->len && c->keep_body) {
    r->body = (char *)c->body;
    r->len = c->len;
    r->flags |= R_BORROWED;
  } else if (!bad && c->len) {
    r->body = malloc(c->len);
    if (r->body)
      memcpy(r->body, c->body, c->len);
    else
      bad = 1;
    r->len = c->len;
  }
  if (bad) {
    finish(r, TT_ENOMEM);
    return r;
  }
  if (!tt_aws__creds_usable(a)) {
    r->flags |= R_WAIT_CREDS;
    tt_aws__creds_need(a, on_creds_for_req, r);
    return r;
  }
  /* never complete before the call returns: even a failed start is deferred */
  attempt(r);
  return r;
}

tt_aws_req *tt_aws__raw(tt_aws *a, const char *method, const char *url, const tt_aws_hdr *h,
                        size_t nh, int64_t timeout_ms, tt_aws_cb cb, void *ud) {
  tt_aws_req *r = req_new(a, cb, ud);
  if (!r) return NULL;
  r->raw = 1;
  r->method = method;
  r->action = method;
  r->svc = TT_AWS_S3;
  r->url = strdup(url);
  r->timeout_ms = timeout_ms;
  if (!r->url || copy_headers(r, h, nh)) {
    finish(r, TT_ENOMEM);
    return r;
  }
  attempt(r);
  return r;
}

void tt_aws_resume(tt_aws_req *r) {
  if (!(r->flags & R_PAUSED) || !r->easy || (r->flags & R_DONE)) return;
  r->flags &= ~(unsigned)R_PAUSED;
  unpause_count(r);
  curl_easy_pause(r->easy, CURLPAUSE_CONT);
  /* curl_easy_pause may have finished the transfer */
  check_done(r->a);
}

void tt_aws_cancel(tt_aws_req *r) {
  if (r->flags & (R_DONE | R_CANCELED)) return;
  r->flags |= R_CANCELED;
  unpause_count(r);
  r->head_pending = 0;
  r->on_data = NULL;
  if (r->flags & R_IN_MULTI) {
    curl_multi_remove_handle(r->a->multi, r->easy);
    r->flags &= ~(unsigned)R_IN_MULTI;
  }
  if (r->easy) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  /* waiting for credentials: the wait ends through on_creds_for_req */
  if (!(r->flags & R_WAIT_CREDS)) finish(r, TT_ECANCELED);
}

void tt_aws_stats_get(tt_aws *a, tt_aws_stats *out) { *out = a->stats; }

const char *tt_aws_endpoint(tt_aws *a, tt_aws_svc s, int *custom) {
  if (custom) *custom = a->custom[s];
  return a->endpoint[s];
}
const char *tt_aws_region(tt_aws *a) { return a->region; }

int tt_aws_key_get(tt_aws *a, tt_aws_svc s, tt_aws_key *k, int64_t *expires_ms) {
  if (!a->have_creds) return TT_EAUTH;
  k->akid = a->creds.akid;
  k->secret = a->creds.secret;
  k->token = a->creds.token[0] ? a->creds.token : NULL;
  k->region = a->region;
  k->service = svc_name[s];
  if (expires_ms) *expires_ms = a->creds.expires_ms;
  return TT_OK;
}

typedef struct ready_ctx {
  void (*cb)(void *ud, int err);
  void *ud;
  uv_timer_t t;
  tt_aws *a;
} ready_ctx;
static void ready_closed(uv_handle_t *h) { free(h->data); }
static void ready_now(uv_timer_t *t) {
  ready_ctx *c = t->data;
  c->cb(c->ud, 0);
  inflight_add(c->a, -1);
  uv_close((uv_handle_t *)&c->t, ready_closed);
}
void tt_aws_ready(tt_aws *a, void (*cb)(void *ud, int err), void *ud) {
  if (!tt_aws__creds_usable(a)) {
    tt_aws__creds_need(a, cb, ud);
    return;
  }
  ready_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    tt_aws__creds_need(a, cb, ud);
    return;
  }
  c->cb = cb;
  c->ud = ud;
  c->a = a;
  inflight_add(a, 1);
  uv_timer_init(a->loop, &c->t);
  c->t.data = c;
  uv_timer_start(&c->t, ready_now, 0, 0);
}

/* ---- URL helper --------------------------------------------------------- */

int tt_aws_url_param(const char *url, const char *key, char *out, size_t outlen) {
  const char *q = strchr(url, '?');
  if (!q) return 0;
  size_t kl = strlen(key);
  for (const char *p = q + 1; *p;) {
    const char *e = strchr(p, '&');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n > kl && p[kl] == '=' && !strncmp(p, key, kl)) {
      size_t o = 0;
      for (size_t i = kl + 1; i < n && o + 1 < outlen; i++) {
        char c = p[i];
        if (c == '%' && i + 2 < n + 1 && i + 2 <= n) {
          char hx[3] = {p[i + 1], p[i + 2], 0};
          c = (char)strtol(hx, NULL, 16);
          i += 2;
        } else if (c == '+') {
          c = ' ';
        }
        out[o++] = c;
      }
      out[o] = 0;
      return 1;
    }
    if (!e) break;
    p = e + 1;
  }
  return 0;
}
