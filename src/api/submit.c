/* submit.c — `tintype submit URL`: the producer of the seed. Posts one job
 * to a running API with libcurl (a blocking client is right for a one-shot
 * command) and prints the job's id, state and links; with --wait 1 it
 * follows the job's Server-Sent Events until a final state and exits 0 only
 * if the job succeeded. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tintype/api.h"
#include "tintype/buf.h"

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  tt_buf_append(ud, p, size * n);
  return size * n;
}

static char last_state[32];

static size_t print_events(char *p, size_t size, size_t n, void *ud) {
  tt_buf *b = ud;
  tt_buf_append(b, p, size * n);
  char *sep;
  while ((sep = strstr(b->data, "\n\n"))) { /* one event */
    *sep = 0;
    char *data = strstr(b->data, "data: ");
    if (data) {
      json_t *j = json_loads(data + 6, 0, NULL);
      if (j) {
        const char *st = json_string_value(json_object_get(j, "state"));
        snprintf(last_state, sizeof last_state, "%s", st ? st : "");
        printf("state: %s\n", last_state);
        fflush(stdout);
        json_decref(j);
      }
    }
    size_t used = (size_t)(sep + 2 - b->data);
    memmove(b->data, sep + 2, b->len - used + 1);
    b->len -= used;
  }
  return size * n;
}

int tt_submit_main(const tt_config *cfg, const char *url) {
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
  json_object_set_new(job, "url", json_string(url));
  char *body = json_dumps(job, JSON_COMPACT);
  json_decref(job);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  tt_buf resp = TT_BUF_INIT;
  char endpoint[1100], auth[300];
  snprintf(endpoint, sizeof endpoint, "%s/api/jobs", cfg->api_url);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
  struct curl_slist *hdrs = curl_slist_append(NULL, auth);
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, endpoint);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  int exit_code = 0;
  json_t *out = rc == CURLE_OK ? json_loads(resp.data ? resp.data : "", 0, &e) : NULL;
  if (rc != CURLE_OK) {
    fprintf(stderr, "tintype submit: %s: %s\n", endpoint, curl_easy_strerror(rc));
    exit_code = 1;
  } else if (status != 202 && status != 200) {
    const char *detail = json_string_value(json_object_get(out, "detail"));
    fprintf(stderr, "tintype submit: %ld: %s\n", status, detail ? detail : (resp.data ? resp.data : ""));
    exit_code = 1;
  } else {
    const char *id = json_string_value(json_object_get(out, "id"));
    printf("job: %s\nstate: %s\nstatus: %s%s\nevents: %s%s\nresult: %s/api/jobs/%s/result (once succeeded)\n",
           id, json_string_value(json_object_get(out, "state")), cfg->api_url,
           json_string_value(json_object_get(json_object_get(out, "links"), "self")), cfg->api_url,
           json_string_value(json_object_get(json_object_get(out, "links"), "events")), cfg->api_url, id);
    fflush(stdout);
    if (cfg->wait && id) {
      tt_buf ev = TT_BUF_INIT;
      snprintf(endpoint, sizeof endpoint, "%s/api/jobs/%s/events", cfg->api_url, id);
      curl_easy_reset(h);
      curl_easy_setopt(h, CURLOPT_URL, endpoint);
      struct curl_slist *h2 = curl_slist_append(NULL, auth);
      curl_easy_setopt(h, CURLOPT_HTTPHEADER, h2);
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, print_events);
      curl_easy_setopt(h, CURLOPT_WRITEDATA, &ev);
      rc = curl_easy_perform(h);
      curl_slist_free_all(h2);
      tt_buf_free(&ev);
      exit_code = rc == CURLE_OK && !strcmp(last_state, "succeeded") ? 0 : 1;
    }
  }
  json_decref(out);
  tt_buf_free(&resp);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(body);
  return exit_code;
}
