/* submit.c — `tintype submit URL [-o FILE]`: the producer of the seed.
 * Posts one job to a running API with libcurl (a blocking client is right
 * for a one-shot command) and prints the job's id, state and links. With
 * -o FILE it asks for the image in the same call (POST /api/jobs?wait=,
 * at most 30 s or --wait); when that answers 202 (the wait ran out) or
 * the server refuses the wait (400 naming wait: its --max-wait-ms is
 * smaller), or with --wait (true, or a duration like 30s) alone, it follows
 * the job's Server-Sent Events, printing each new state once, until a final state:
 * a success prints the signed result link (it works without the key), the
 * size and bytes, and -o downloads the image; a failure prints the job's
 * error on stderr and exits 1. Output lines are "name: value". */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "tintype/api.h"
#include "tintype/buf.h"
#include "tintype/error.h"

#define SUBMIT_ONE_CALL_MS 30000 /* -o waits this long in one call, then follows the events */

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  tt_buf_append(ud, p, size * n);
  return size * n;
}

typedef struct follow {
  tt_buf buf;
  char state[32]; /* the last state printed */
  json_t *last;   /* the job as its last event showed it */
} follow;

static int final_state(const char *s) {
  return !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "canceled");
}

static size_t on_events(char *p, size_t size, size_t n, void *ud) {
  follow *f = ud;
  tt_buf_append(&f->buf, p, size * n);
  char *sep;
  while (f->buf.data && (sep = strstr(f->buf.data, "\n\n"))) { /* one event */
    *sep = 0;
    char *data = strstr(f->buf.data, "data: ");
    json_t *j = data ? json_loads(data + 6, 0, NULL) : NULL;
    const char *st = json_string_value(json_object_get(j, "state"));
    if (st) {
      if (strcmp(st, f->state)) { /* each state once, though every change is an event */
        snprintf(f->state, sizeof f->state, "%s", st);
        printf("state: %s\n", f->state);
        fflush(stdout);
      }
      json_decref(f->last);
      f->last = json_incref(j);
    }
    json_decref(j);
    size_t used = (size_t)(sep + 2 - f->buf.data);
    memmove(f->buf.data, sep + 2, f->buf.len - used + 1);
    f->buf.len -= used;
  }
  return size * n;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The format FILE's extension names ("jpeg" for .jpg), or NULL. */
static const char *format_of_file(const char *path) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  if (!dot || dot == path || (slash && dot <= slash + 1)) return NULL;
  static const char *const ext[][2] = {
      {".png", "png"}, {".jpg", "jpeg"}, {".jpeg", "jpeg"}, {".webp", "webp"}, {".pdf", "pdf"}};
  for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++)
    if (!strcasecmp(dot, ext[k][0])) return ext[k][1];
  return NULL;
}

static void say_duration(char *out, size_t n, int64_t ms) {
  if (ms % 60000 == 0) snprintf(out, n, "%lldm", (long long)(ms / 60000));
  else if (ms % 1000 == 0) snprintf(out, n, "%llds", (long long)(ms / 1000));
  else snprintf(out, n, "%lldms", (long long)ms);
}

/* GET url (a signed link: no key) into path, whole or not at all */
static int download(CURL *h, const char *url, const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  FILE *fp = fopen(tmp, "wbx");
  if (!fp) {
    fprintf(stderr, "tintype submit: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, fp);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
  CURLcode rc = curl_easy_perform(h);
  int bad = fclose(fp) != 0;
  if (rc != CURLE_OK || bad || rename(tmp, path)) {
    fprintf(stderr, "tintype submit: cannot download the result into %s: %s\n", path,
            rc != CURLE_OK ? curl_easy_strerror(rc) : strerror(errno));
    unlink(tmp);
    return 1;
  }
  return 0;
}

/* The value of header name in the response head hd (a copy in out), or NULL. */
static const char *header_of(const tt_buf *hd, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  for (const char *p = hd->data; p && *p;) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (len > n && !strncasecmp(p, name, n) && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') v++;
      size_t vl = (size_t)(p + len - v);
      while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) vl--;
      snprintf(out, cap, "%.*s", (int)vl, v);
      return out;
    }
    p = eol ? eol + 1 : NULL;
  }
  return NULL;
}

/* bytes into path, whole or not at all */
static int save_file(const char *path, const char *data, size_t len) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  FILE *fp = fopen(tmp, "wbx");
  if (!fp) {
    fprintf(stderr, "tintype submit: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  int bad = fwrite(data, 1, len, fp) != len;
  bad |= fclose(fp) != 0;
  if (bad || rename(tmp, path)) {
    fprintf(stderr, "tintype submit: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
    return 1;
  }
  return 0;
}

/* The lines of a succeeded job: its signed result link, format, size, bytes. */
static int print_success(const tt_config *cfg, json_t *job) {
  json_t *res = json_object_get(job, "result");
  const char *link = json_string_value(json_object_get(json_object_get(job, "links"), "result"));
  if (link) printf("result: %s%s\n", cfg->api_url, link);
  printf("format: %s\nsize: %lldx%lld\nbytes: %lld\n", json_string_value(json_object_get(res, "format")),
         (long long)json_integer_value(json_object_get(res, "width")),
         (long long)json_integer_value(json_object_get(res, "height")),
         (long long)json_integer_value(json_object_get(res, "bytes")));
  fflush(stdout);
  return 0;
}

/* Follows the job's events to a final state (or cfg->wait), then reports.
 * Returns the exit code. */
static int follow_job(const tt_config *cfg, CURL *h, const char *auth, const char *id, const char *events_url,
                      const char *outfile, const char *state, int64_t said_wait) {
  follow f = {.buf = TT_BUF_INIT}; /* "state: ..." was printed with the job */
  snprintf(f.state, sizeof f.state, "%s", state);
  int64_t deadline = cfg->wait > 0 ? now_ms() + cfg->wait : 0;
  CURLcode rc = CURLE_OK;
  /* the stream ends at a final state, or when the server ends it (it caps a
   * stream's life): then it is opened again */
  for (;;) {
    const char *st = json_string_value(json_object_get(f.last, "state"));
    if (st && final_state(st)) break;
    int64_t left = deadline ? deadline - now_ms() : 0;
    if (deadline && left <= 0) break;
    curl_easy_reset(h);
    struct curl_slist *hd = curl_slist_append(NULL, auth);
    curl_easy_setopt(h, CURLOPT_URL, events_url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_events);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    if (deadline) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
    rc = curl_easy_perform(h);
    curl_slist_free_all(hd);
    tt_buf_reset(&f.buf);
    if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT) break;
  }
  tt_buf_free(&f.buf);
  const char *st = json_string_value(json_object_get(f.last, "state"));
  int code = 1;
  if (!st || !final_state(st)) {
    if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT) {
      fprintf(stderr, "tintype submit: %s: %s\n", events_url, curl_easy_strerror(rc));
    } else {
      char d[32];
      say_duration(d, sizeof d, said_wait);
      fprintf(stderr, "tintype submit: job %s is still %s after %s; follow it at %s\n", id, f.state, d,
              events_url);
    }
  } else if (!strcmp(st, "failed")) {
    const char *e = json_string_value(json_object_get(f.last, "error"));
    fprintf(stderr, "tintype submit: job %s failed: %s\n", id, e && *e ? e : "no reason given");
  } else if (!strcmp(st, "canceled")) {
    fprintf(stderr, "tintype submit: job %s was canceled; it will never have a result\n", id);
  } else {
    code = print_success(cfg, f.last);
    if (code == 0 && outfile) {
      const char *link = json_string_value(json_object_get(json_object_get(f.last, "links"), "result"));
      char url[2400];
      snprintf(url, sizeof url, "%s%s", cfg->api_url, link ? link : "");
      if (!link) {
        fprintf(stderr, "tintype submit: the job has no result link to download\n");
        code = 1;
      } else if ((code = download(h, url, outfile)) == 0) {
        printf("saved: %s\n", outfile);
      }
    }
  }
  json_decref(f.last);
  return code;
}

int tt_submit_main(const tt_config *cfg, const char *url, const char *outfile) {
  if (!cfg->api_key[0]) {
    fprintf(stderr, "tintype submit: set TINTYPE_API_KEY (or --api-key)\n");
    return 2;
  }
  json_error_t e;
  json_t *job = json_loads(cfg->job_json, 0, &e);
  if (!json_is_object(job)) {
    fprintf(stderr, "tintype submit: --job must be a JSON object: %s\n", e.text);
    json_decref(job);
    return 2;
  }
  if (outfile && !*outfile) {
    fprintf(stderr, "tintype submit: -o needs a file name\n");
    json_decref(job);
    return 2;
  }
  /* -o y.jpg asks for JPEG unless --job says; a contradiction is refused */
  const char *by_ext = outfile ? format_of_file(outfile) : NULL;
  const char *asked = json_string_value(json_object_get(job, "format"));
  if (by_ext && asked && strcmp(asked, by_ext)) {
    fprintf(stderr, "tintype submit: --job format %s does not match -o %s (a %s file name)\n", asked, outfile,
            by_ext);
    json_decref(job);
    return 2;
  }
  if (by_ext && !asked) json_object_set_new(job, "format", json_string(by_ext));
  json_object_set_new(job, "url", json_string(url));
  char *body = json_dumps(job, JSON_COMPACT);
  json_decref(job);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  tt_buf resp = TT_BUF_INIT, head = TT_BUF_INIT;
  char endpoint[1100], auth[300];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
  struct curl_slist *hdrs = curl_slist_append(NULL, auth);
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  /* -o: one call (POST /api/jobs?wait=) answers with the image itself; a
   * 202 (the wait ran out) falls back to following the job's events, and a
   * server that refuses the wait (--max-wait-ms smaller, or 0) gets the
   * plain POST */
  int64_t one_call_ms = 0;
  if (outfile) one_call_ms = cfg->wait > 0 && cfg->wait < SUBMIT_ONE_CALL_MS ? cfg->wait : SUBMIT_ONE_CALL_MS;
  int64_t started = now_ms();
  long status = 0;
  CURLcode rc;
  json_t *out = NULL;
  for (;;) {
    if (one_call_ms)
      snprintf(endpoint, sizeof endpoint, "%s/api/jobs?wait=%lldms", cfg->api_url, (long long)one_call_ms);
    else
      snprintf(endpoint, sizeof endpoint, "%s/api/jobs", cfg->api_url);
    tt_buf_reset(&resp);
    tt_buf_reset(&head);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, endpoint);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_decref(out);
    out = rc == CURLE_OK && resp.len ? json_loadb(resp.data, resp.len, 0, &e) : NULL;
    if (one_call_ms && rc == CURLE_OK && status == 400 &&
        !strcmp(json_string_value(json_object_get(out, "field")) ? json_string_value(json_object_get(out, "field")) : "",
                "wait")) {
      one_call_ms = 0; /* this server does not wait that long: the job, then its events */
      continue;
    }
    break;
  }
  int exit_code = 0;
  char ct[128] = "", jid[64] = "";
  if (rc == CURLE_OK) {
    header_of(&head, "Content-Type", ct, sizeof ct);
    header_of(&head, "X-Tintype-Job-Id", jid, sizeof jid);
  }
  if (rc != CURLE_OK) {
    fprintf(stderr, "tintype submit: %s: %s\n", endpoint, curl_easy_strerror(rc));
    exit_code = 1;
  } else if (status == 200 && one_call_ms && !strncmp(ct, "image/", 6) && jid[0]) {
    /* the image itself: save it, then the job's record says the rest */
    printf("job: %s\n", jid);
    exit_code = save_file(outfile, resp.data ? resp.data : "", resp.len);
    char job_url[1200];
    snprintf(job_url, sizeof job_url, "%s/api/jobs/%s", cfg->api_url, jid);
    tt_buf_reset(&resp);
    curl_easy_reset(h);
    struct curl_slist *ah = curl_slist_append(NULL, auth);
    curl_easy_setopt(h, CURLOPT_URL, job_url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, ah);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    curl_slist_free_all(ah);
    json_decref(out);
    out = rc == CURLE_OK && resp.len ? json_loadb(resp.data, resp.len, 0, &e) : NULL;
    const char *st = json_string_value(json_object_get(out, "state"));
    printf("state: %s\nstatus: %s\n", st ? st : "succeeded", job_url);
    if (out) print_success(cfg, out);
    if (!exit_code) printf("saved: %s\n", outfile);
    fflush(stdout);
  } else if ((status == 502 || status == 409) && one_call_ms && jid[0]) { /* the job ended otherwise */
    const char *detail = json_string_value(json_object_get(out, "detail"));
    printf("job: %s\nstate: %s\n", jid, status == 502 ? "failed" : "canceled");
    fflush(stdout);
    if (status == 502)
      fprintf(stderr, "tintype submit: job %s failed: %s\n", jid, detail ? detail : "no reason given");
    else
      fprintf(stderr, "tintype submit: job %s was canceled; it will never have a result\n", jid);
    exit_code = 1;
  } else if (status != 202 && status != 200) {
    const char *detail = json_string_value(json_object_get(out, "detail"));
    fprintf(stderr, "tintype submit: %ld: %s\n", status, detail ? detail : (resp.data ? resp.data : ""));
    exit_code = 1;
  } else {
    const char *id = json_string_value(json_object_get(out, "id"));
    const char *self = json_string_value(json_object_get(json_object_get(out, "links"), "self"));
    const char *events = json_string_value(json_object_get(json_object_get(out, "links"), "events"));
    printf("job: %s\nstate: %s\nstatus: %s%s\nevents: %s%s\n", id, json_string_value(json_object_get(out, "state")),
           cfg->api_url, self ? self : "", cfg->api_url, events ? events : "");
    int following = (cfg->wait || outfile) && id && events;
    if (!following) printf("result: %s/api/jobs/%s/result (with the key, once succeeded)\n", cfg->api_url, id);
    fflush(stdout);
    if (following) {
      char events_url[2200];
      snprintf(events_url, sizeof events_url, "%s%s", cfg->api_url, events);
      tt_config left = *cfg; /* a --wait counts from the first request */
      if (outfile && left.wait > 0) left.wait = left.wait > now_ms() - started ? left.wait - (now_ms() - started) : 1;
      const char *st0 = json_string_value(json_object_get(out, "state"));
      exit_code = follow_job(&left, h, auth, id, events_url, outfile, st0 ? st0 : "queued", cfg->wait);
    }
  }
  json_decref(out);
  tt_buf_free(&resp);
  tt_buf_free(&head);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(body);
  return exit_code;
}
