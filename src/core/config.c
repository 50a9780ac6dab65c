/* config.c — the settings table behind include/tintype/config.h.
 *
 * One row per setting: flag name, type, where it lives in tt_config, its
 * default, its allowed range, the commands that take it and a line of help.
 * Environment names are derived: "max-body-bytes" -> TINTYPE_MAX_BODY_BYTES. */
#include "tintype/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tintype/error.h"
#include "tintype/ports.h"

typedef enum { T_STR, T_INT, T_SIZE, T_MS, T_WAIT } opt_type;

typedef struct {
  const char *name;
  opt_type type;
  size_t off;
  size_t cap; /* for strings */
  const char *def;
  int64_t min, max;
  unsigned cmds;
  const char *help;
} opt;

#define SERVE (TT_CMD_UP | TT_CMD_API)
#define BACKENDS (TT_CMD_UP | TT_CMD_API | TT_CMD_WORKER | TT_CMD_AWS)
#define ALL (TT_CMD_UP | TT_CMD_API | TT_CMD_WORKER | TT_CMD_SHOT | TT_CMD_SUBMIT | TT_CMD_AWS)
#define RENDER (TT_CMD_UP | TT_CMD_API | TT_CMD_WORKER | TT_CMD_SHOT)
#define S(f) offsetof(tt_config, f), sizeof(((tt_config *)0)->f)
#define I(f) offsetof(tt_config, f), 0
#define BIG ((int64_t)1 << 40)

static const opt opts[] = {
    {"log-level", T_STR, S(log_level), "info", 0, 0, ALL, "debug, info, warn, error or off"},
    {"data", T_STR, S(data_dir), "./data", 0, 0, BACKENDS,
     "data folder of the embedded backends (SQLite database, blob files)"},
    {"store", T_STR, S(store_url), "", 0, 0, BACKENDS,
     "records backend URL (default sqlite://DATA/tintype.db)"},
    {"queue", T_STR, S(queue_url), "", 0, 0, BACKENDS,
     "queue backend URL (default sqlite://DATA/tintype.db)"},
    {"blobs", T_STR, S(blobs_url), "", 0, 0, BACKENDS,
     "blob backend URL (default file://DATA/blobs)"},
    {"host", T_STR, S(host), "0.0.0.0", 0, 0, SERVE, "address to listen on"},
    {"port", T_INT, I(port), "8080", 0, 65535, SERVE, "TCP port to listen on (0: any free port)"},
    {"processes", T_INT, I(processes), "0", 0, 256, BACKENDS,
     "processes to fork (0: one per CPU)"},
    {"routes", T_STR, S(routes), "users,images,jobs,web", 0, 0, SERVE,
     "route groups this API serves (users,images,jobs,web)"},
    {"listen-mode", T_STR, S(listen_mode), "inherit", 0, 0, SERVE,
     "inherit: one listener shared by all processes; reuseport: one SO_REUSEPORT socket each"},
    {"backlog", T_INT, I(backlog), "1024", 1, 65535, SERVE, "listen(2) backlog"},
    {"max-connections", T_INT, I(max_connections), "4096", 1, 1000000, SERVE,
     "open connections per process; beyond it new ones get 503 and are closed"},
    {"max-header-bytes", T_SIZE, I(max_header_bytes), "16k", 256, 1 << 20, SERVE,
     "request line and headers, in bytes (431 when over)"},
    {"max-headers", T_INT, I(max_headers), "100", 1, 10000, SERVE,
     "number of request headers (431 when over)"},
    {"max-url-bytes", T_SIZE, I(max_url_bytes), "8k", 16, 1 << 20, SERVE,
     "request target length (414 when over)"},
    {"max-body-bytes", T_SIZE, I(max_body_bytes), "1m", 0, BIG, SERVE,
     "request body, in bytes, for routes without their own limit (413 when over)"},
    {"header-timeout-ms", T_MS, I(header_timeout_ms), "10000", 1, 3600000, SERVE,
     "time to receive a request's line and headers (408 and close)"},
    {"body-timeout-ms", T_MS, I(body_timeout_ms), "30000", 1, 3600000, SERVE,
     "longest pause between pieces of a request body (408 and close)"},
    {"idle-timeout-ms", T_MS, I(idle_timeout_ms), "60000", 1, 3600000, SERVE,
     "keep-alive connection idle before it is closed"},
    {"write-timeout-ms", T_MS, I(write_timeout_ms), "30000", 1, 3600000, SERVE,
     "longest wait for a client to accept response bytes before closing"},
    {"max-chunk-ext-bytes", T_SIZE, I(max_chunk_ext_bytes), "4k", 0, 1 << 20, SERVE,
     "chunk extensions (;name=value after a chunk size) of one request, in bytes (400 when over)"},
    {"max-keepalive-requests", T_INT, I(max_keepalive_requests), "10000", 1, 1000000000, SERVE,
     "requests on one keep-alive connection; the last one is answered with Connection: close"},
    {"read-buffer-bytes", T_SIZE, I(read_buffer_bytes), "16k", 1024, 1 << 20, SERVE,
     "bytes read ahead per connection; pipelined requests wait there and reading pauses when it is full"},
    {"linger-ms", T_MS, I(linger_ms), "1000", 0, 60000, SERVE,
     "after an error answer, how long the rest of the request is read and dropped before the close"},
    {"max-request-id-bytes", T_INT, I(max_request_id_bytes), "128", 1, 1024, SERVE,
     "longest X-Request-Id kept from a client; a longer (or odd) one is replaced by our own"},
    {"max-signup-body-bytes", T_SIZE, I(max_signup_body_bytes), "16k", 64, 1 << 20, SERVE,
     "body of POST /api/users, in bytes (413 when over)"},
    {"max-job-body-bytes", T_SIZE, I(max_job_body_bytes), "64k", 256, 16 << 20, SERVE,
     "body of POST /api/jobs, in bytes (413 when over)"},
    {"max-image-body-bytes", T_SIZE, I(max_image_body_bytes), "4k", 64, 1 << 20, SERVE,
     "body of POST /api/images, in bytes (413 when over)"},
    {"max-api-key-bytes", T_INT, I(max_api_key_bytes), "256", 16, 4096, SERVE,
     "longest API key looked up; a longer Authorization key is refused (401)"},
    {"max-idempotency-key-bytes", T_INT, I(max_idempotency_key_bytes), "255", 1, 1024, SERVE,
     "longest Idempotency-Key (400 naming Idempotency-Key when over)"},
    {"events-max-ms", T_MS, I(events_max_ms), "900000", 1000, 86400000, SERVE,
     "how long one /api/jobs/{id}/events stream may stay open; it ends then and the client reconnects"},
    {"shutdown-timeout-ms", T_MS, I(shutdown_timeout_ms), "10000", 0, 3600000, BACKENDS,
     "on SIGTERM, how long requests and jobs in flight may take to finish"},
    {"drain-delay-ms", T_MS, I(drain_delay_ms), "0", 0, 3600000, SERVE,
     "on SIGTERM, how long the health check answers 503 before listeners close"},
    {"max-upload-bytes", T_SIZE, I(max_upload_bytes), "20m", 1024, BIG, SERVE,
     "largest image upload, in bytes (413 when over)"},
    {"secret", T_STR, S(secret), "", 0, 0, BACKENDS,
     "server secret for signed links, 16+ bytes (empty: made once in DATA/secret); prefer the env variable"},
    {"admin-key", T_STR, S(admin_key), "", 0, 0, SERVE,
     "API key with admin rights (empty: no admin); prefer the env variable"},
    {"signup", T_STR, S(signup), "open", 0, 0, SERVE,
     "open: anyone may sign up; closed: only the admin key creates users (403 signup-closed)"},
    {"signup-rate", T_INT, I(signup_rate), "10", 0, 1000000, SERVE,
     "sign-ups per minute from one client address (429 with Retry-After beyond; 0: no limit)"},
    {"auth-failure-rate", T_INT, I(auth_failure_rate), "30", 0, 1000000, SERVE,
     "failed authentications per minute from one client address (429 with Retry-After beyond; 0: no limit)"},
    {"trusted-proxies", T_STR, S(trusted_proxies), "", 0, 0, SERVE,
     "CIDRs of load balancers whose X-Forwarded-For names the client (e.g. the ALB's subnets)"},
    {"concurrency", T_INT, I(concurrency), "4", 1, 256, TT_CMD_UP | TT_CMD_WORKER,
     "jobs in flight per worker process"},
    {"fair-backlog", T_INT, I(fair_backlog), "2", 0, 256, TT_CMD_UP | TT_CMD_WORKER,
     "job messages a worker process holds beyond its --concurrency slots, so a job of an owner with nothing running "
     "is seen and started (preempting an owner over its share) while others' jobs fill every slot; 0: no fairness"},
    {"fair-max-preemptions", T_INT, I(fair_max_preemptions), "2", 0, 1000, TT_CMD_UP | TT_CMD_WORKER,
     "times one job may give its slot back to another owner's job before it keeps it (0: never preempt)"},
    {"fair-preempt-after-ms", T_MS, I(fair_preempt_after_ms), "2000", 0, 3600000, TT_CMD_UP | TT_CMD_WORKER,
     "a job is preempted for another owner only once it has run this long (0: at once); a younger one frees its "
     "slot soon enough"},
    {"worker-processes", T_INT, I(worker_processes), "1", 0, 256, TT_CMD_UP,
     "worker processes beside the API processes (each runs one Chromium)"},
    {"job-visibility-ms", T_MS, I(job_visibility_ms), "60000", 1000, 43200000, TT_CMD_UP | TT_CMD_WORKER | TT_CMD_AWS,
     "how long a received job or image stays hidden from other workers; extended while it runs"},
    {"max-receives", T_INT, I(max_receives), "5", 1, 1000, TT_CMD_UP | TT_CMD_WORKER | TT_CMD_AWS,
     "deliveries of one message before its job or image is failed and the message dead-lettered"},
    {"max-image-pixels", T_INT, I(max_image_pixels), "50000000", 1, BIG, TT_CMD_UP | TT_CMD_WORKER,
     "largest decoded upload, width x height (the image fails: decompression bombs)"},
    {"max-full-page-height", T_INT, I(max_full_page_height), "16384", 16, 65536, RENDER,
     "tallest full-page shot, CSS pixels (taller pages are cut there)"},
    {"max-capture-pixels", T_INT, I(max_capture_pixels), "100000000", 100000, 1000000000, RENDER,
     "device pixels one capture may have (width x height x scale^2): 400 naming viewport when the request asks for "
     "more; a taller page or element is cut there (result.clipped)"},
    {"allow-networks", T_STR, S(allow_networks), "", 0, 0, RENDER,
     "CIDRs a page may reach beyond public addresses, e.g. 127.0.0.1/32 (metadata stays denied)"},
    {"ports-dir", T_STR, S(ports_dir), TT_PORTS_DEFAULT_DIR, 0, 0, RENDER,
     "folder where every tintype process on this machine lists the ports it listens on; pages never reach them"},
    {"chromium", T_STR, S(chromium), "", 0, 0, TT_CMD_UP | TT_CMD_WORKER | TT_CMD_SHOT,
     "headless browser binary (empty: /usr/bin/chromium-headless-shell when installed, else /usr/bin/chromium)"},
    {"chromium-flags", T_STR, S(chromium_flags), "", 0, 0, TT_CMD_UP | TT_CMD_WORKER | TT_CMD_SHOT,
     "more browser flags, space separated (up to 16; the network-quiet ones are always set)"},
    {"isolation", T_STR, S(isolation), "owner", 0, 0, TT_CMD_UP | TT_CMD_WORKER,
     "owner: a worker keeps warm browser contexts per owner, reset between jobs; job: a fresh context per job"},
    {"context-max-jobs", T_INT, I(context_max_jobs), "100", 1, 1000000, TT_CMD_UP | TT_CMD_WORKER,
     "jobs one warm browser context serves before it is retired (--isolation owner)"},
    {"context-idle-ms", T_MS, I(context_idle_ms), "60000", 10, 86400000, TT_CMD_UP | TT_CMD_WORKER,
     "a warm browser context unused this long is retired (--isolation owner)"},
    {"max-contexts", T_INT, I(max_contexts), "8", 1, 256, TT_CMD_UP | TT_CMD_WORKER,
     "warm browser contexts kept per worker process, least recently used retired first (--isolation owner)"},
    {"max-viewport-width", T_INT, I(max_viewport_width), "3840", 16, 16384, RENDER,
     "widest viewport a job may ask for, CSS pixels (400 naming viewport.width)"},
    {"max-viewport-height", T_INT, I(max_viewport_height), "2160", 16, 16384, RENDER,
     "tallest viewport a job may ask for, CSS pixels (400 naming viewport.height)"},
    {"max-render-timeout-ms", T_MS, I(max_render_timeout_ms), "60000", 1000, 600000, RENDER,
     "longest timeout_ms a job may ask for (400 naming timeout_ms)"},
    {"default-render-timeout-ms", T_MS, I(default_render_timeout_ms), "30000", 1000, 600000, RENDER,
     "timeout of a job that does not say"},
    {"max-delay-ms", T_MS, I(max_delay_ms), "10000", 0, 600000, RENDER,
     "longest delay_ms a job may ask for (400 naming delay_ms)"},
    {"max-job-url-bytes", T_SIZE, I(max_job_url_bytes), "4k", 16, 65536, RENDER,
     "longest page URL a job may name (400 naming url)"},
    {"max-wait-ms", T_MS, I(max_wait_ms), "60000", 0, 600000, SERVE,
     "longest POST /api/jobs?wait= a client may ask for (400 naming wait); 0 turns one-call capture off"},
    {"max-cache-ttl", T_INT, I(max_cache_ttl), "86400", 0, 31536000, RENDER,
     "longest cache_ttl a job may ask for, seconds (400 naming cache_ttl); 0 turns the result cache off"},
    {"max-pdf-bytes", T_SIZE, I(max_pdf_bytes), "50m", 1024, BIG, RENDER,
     "largest PDF one job may make, in bytes (format pdf; a larger one fails the job naming it)"},
    {"max-pdf-pages", T_INT, I(max_pdf_pages), "500", 1, 100000, RENDER,
     "most pages in one PDF (format pdf; more fails the job naming it: choose fewer with pdf.page_ranges)"},
    {"max-css-bytes", T_SIZE, I(max_css_bytes), "16k", 0, 32768, RENDER,
     "longest css (a stylesheet) a job may add to its page, bytes (400 naming css)"},
    {"max-js-bytes", T_SIZE, I(max_js_bytes), "16k", 0, 32768, RENDER,
     "longest js (a script) a job may run in its page, bytes (400 naming js)"},
    {"max-js-ms", T_MS, I(max_js_ms), "5000", 100, 60000, RENDER,
     "longest a job's js may run (its js_timeout_ms, 400 naming it when longer; also the default)"},
    {"max-selectors", T_INT, I(max_selectors), "20", 1, 64, RENDER,
     "most entries in a job's hide_selectors or click_selectors (400 naming the list)"},
    {"max-user-agent-bytes", T_SIZE, I(max_user_agent_bytes), "512", 16, 1023, RENDER,
     "longest user_agent a job may set (400 naming user_agent)"},
    {"max-job-headers", T_INT, I(max_job_headers), "20", 0, 100, RENDER,
     "most entries in a job's headers (400 naming headers); each name and value together at most 8 KiB"},
    {"max-cookies", T_INT, I(max_cookies), "20", 0, 100, RENDER,
     "most entries in a job's cookies (400 naming cookies)"},
    {"max-block-urls", T_INT, I(max_block_urls), "20", 0, 64, RENDER,
     "most glob patterns in a job's block_urls (400 naming block_urls)"},
    {"webhook-timeout-ms", T_MS, I(webhook_timeout_ms), "10000", 100, 600000, TT_CMD_UP | TT_CMD_WORKER,
     "longest one webhook delivery may take (connect + answer); a slower receiver counts as a failure"},
    {"webhook-max-attempts", T_INT, I(webhook_max_attempts), "8", 1, 100, TT_CMD_UP | TT_CMD_WORKER,
     "deliveries of one webhook before it is given up (failed), with backoff 1 s, 2 s, 4 s ... 5 min between"},
    {"render-link-ttl", T_INT, I(render_link_ttl), "86400", 0, 31536000, SERVE,
     "seconds a render link's image is served from the result cache (a link's own cache_ttl overrides it); "
     "capped by --max-cache-ttl"},
    {"max-render-secrets", T_INT, I(max_render_secrets), "5", 1, 100, SERVE,
     "render-link signing secrets one user may hold at once (409 beyond; revoke one first)"},
    {"max-batch", T_INT, I(max_batch), "50", 1, 1000, SERVE,
     "most jobs in one POST /api/jobs/batch (400 naming jobs)"},
    {"api", T_STR, S(api_url), "http://127.0.0.1:8080", 0, 0, TT_CMD_SUBMIT,
     "base URL of a running tintype API"},
    {"api-key", T_STR, S(api_key), "", 0, 0, TT_CMD_SUBMIT, "API key to submit with (prefer the env variable)"},
    {"job", T_STR, S(job_json), "{}", 0, 0, TT_CMD_SUBMIT,
     "more job options as a JSON object, e.g. '{\"format\":\"webp\",\"full_page\":true}'"},
    {"wait", T_WAIT, I(wait), "false", -1, 86400000, TT_CMD_SUBMIT,
     "follow the job until it ends: true (or a bare --wait), at most a duration (30s, 2m, 500ms), or false"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

int tt_config_parse_wait(const char *s, int64_t *out) {
  if (!s || !*s) return TT_EINVAL;
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(s, yes[i])) return *out = -1, TT_OK;
    if (!strcasecmp(s, no[i])) return *out = 0, TT_OK;
  }
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (errno || end == s || !(v > 0) || v > 86400.0 * 1000) return TT_EINVAL;
  double mul;
  if (!strcmp(end, "ms")) mul = 1;
  else if (!strcmp(end, "s")) mul = 1000;
  else if (!strcmp(end, "m") || !strcmp(end, "min")) mul = 60000;
  else if (!strcmp(end, "h")) mul = 3600000;
  else return TT_EINVAL; /* a bare number: seconds or milliseconds? say which */
  double ms = v * mul;
  if (ms < 1 || ms > 86400000) return TT_EINVAL;
  *out = (int64_t)ms;
  return TT_OK;
}

int tt_config_parse_size(const char *s, int64_t *out) {
  if (!s || !*s) return TT_EINVAL;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return TT_EINVAL;
  int64_t mul = 1;
  if (*end) {
    switch (tolower((unsigned char)*end)) {
      case 'k': mul = 1024; break;
      case 'm': mul = 1024 * 1024; break;
      case 'g': mul = 1024 * 1024 * 1024; break;
      default: return TT_EINVAL;
    }
    end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return TT_EINVAL;
  }
  if (v > INT64_MAX / mul) return TT_EINVAL;
  *out = v * mul;
  return TT_OK;
}

static void env_name(const opt *o, char *buf, size_t n) {
  size_t j = (size_t)snprintf(buf, n, "TINTYPE_");
  for (const char *p = o->name; *p && j + 1 < n; p++)
    buf[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  buf[j] = 0;
}

static int set_opt(tt_config *c, const opt *o, const char *val, const char *origin, char *err,
                   size_t errlen) {
  char *base = (char *)c + o->off;
  if (o->type == T_STR) {
    if (strlen(val) >= o->cap) {
      snprintf(err, errlen, "%s: value too long (at most %zu bytes)", origin, o->cap - 1);
      return TT_EINVAL;
    }
    memcpy(base, val, strlen(val) + 1);
    return TT_OK;
  }
  int64_t v;
  if (o->type == T_SIZE) {
    if (tt_config_parse_size(val, &v)) goto bad;
  } else if (o->type == T_WAIT) {
    if (tt_config_parse_wait(val, &v)) goto bad;
  } else {
    errno = 0;
    char *end;
    long long x = strtoll(val, &end, 10);
    if (errno || end == val || *end) goto bad;
    v = x;
  }
  if (v < o->min || v > o->max) {
    snprintf(err, errlen, "%s: %s is out of range [%lld, %lld]", origin, val, (long long)o->min,
             (long long)o->max);
    return TT_EINVAL;
  }
  memcpy(base, &v, sizeof v);
  return TT_OK;
bad:
  snprintf(err, errlen, "%s: '%s' is not a %s", origin, val,
           o->type == T_SIZE   ? "size (like 16k or 1m)"
           : o->type == T_WAIT ? "duration with a unit (30s, 2m, 500ms, up to 24h) or true/false"
                               : "number");
  return TT_EINVAL;
}

void tt_config_defaults(tt_config *c) {
  memset(c, 0, sizeof *c);
  char err[128];
  for (size_t i = 0; i < NOPTS; i++) set_opt(c, &opts[i], opts[i].def, opts[i].name, err, sizeof err);
}

static int validate(tt_config *c, char *err, size_t errlen) {
  if (strcmp(c->isolation, "owner") && strcmp(c->isolation, "job")) {
    snprintf(err, errlen, "isolation: '%s' is not owner or job", c->isolation);
    return TT_EINVAL;
  }
  if (strcmp(c->listen_mode, "inherit") && strcmp(c->listen_mode, "reuseport")) {
    snprintf(err, errlen, "listen-mode: '%s' is not inherit or reuseport", c->listen_mode);
    return TT_EINVAL;
  }
  if (strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") && strcmp(c->log_level, "warn") &&
      strcmp(c->log_level, "error") && strcmp(c->log_level, "off")) {
    snprintf(err, errlen, "log-level: '%s' is not debug, info, warn, error or off", c->log_level);
    return TT_EINVAL;
  }
  return TT_OK;
}

int tt_config_from_env(tt_config *c, unsigned cmd, char *err, size_t errlen) {
  for (size_t i = 0; i < NOPTS; i++) {
    if (!(opts[i].cmds & cmd)) continue;
    char name[64];
    env_name(&opts[i], name, sizeof name);
    const char *v = getenv(name);
    if (v && *v) {
      int rc = set_opt(c, &opts[i], v, name, err, errlen);
      if (rc) return rc;
    }
  }
  return validate(c, err, errlen);
}

int tt_config_from_args(tt_config *c, unsigned cmd, int argc, char **argv, const char **positional,
                        int *npos, int *help, char *err, size_t errlen) {
  int maxpos = *npos;
  *npos = 0;
  *help = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      *help = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
      if (*npos >= maxpos) {
        snprintf(err, errlen, "unexpected argument '%s'", a);
        return TT_EINVAL;
      }
      positional[(*npos)++] = a;
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const opt *o = NULL;
    for (size_t k = 0; k < NOPTS; k++)
      if ((opts[k].cmds & cmd) && strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen))
        o = &opts[k];
    if (!o) {
      snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
      return TT_EINVAL;
    }
    const char *val = eq ? eq + 1 : NULL;
    if (!val) {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "option '--%s' needs a value", o->name);
        return TT_EINVAL;
      }
      val = argv[++i];
    }
    char origin[80];
    snprintf(origin, sizeof origin, "--%s", o->name);
    int rc = set_opt(c, o, val, origin, err, errlen);
    if (rc) return rc;
  }
  return validate(c, err, errlen);
}

void tt_config_finish(tt_config *c) {
  if (!c->store_url[0]) snprintf(c->store_url, sizeof c->store_url, "sqlite://%.1000s/tintype.db", c->data_dir);
  if (!c->queue_url[0]) snprintf(c->queue_url, sizeof c->queue_url, "sqlite://%.1000s/tintype.db", c->data_dir);
  if (!c->blobs_url[0]) snprintf(c->blobs_url, sizeof c->blobs_url, "file://%.1000s/blobs", c->data_dir);
}

void tt_config_usage(FILE *out, unsigned cmd) {
  fprintf(out, "Options (each also read from its environment variable):\n");
  for (size_t i = 0; i < NOPTS; i++) {
    if (!(opts[i].cmds & cmd)) continue;
    char name[64];
    env_name(&opts[i], name, sizeof name);
    /* an empty default is "none", unless the help line already says what empty means */
    const char *def = opts[i].def;
    int told = !def[0] && (strstr(opts[i].help, "(default ") || strstr(opts[i].help, "(empty: "));
    if (told)
      fprintf(out, "  --%-22s %s\n  %-24s   [%s]\n", opts[i].name, opts[i].help, "", name);
    else
      fprintf(out, "  --%-22s %s\n  %-24s   [%s; default: %s]\n", opts[i].name, opts[i].help, "", name,
              def[0] ? def : "none");
  }
}
