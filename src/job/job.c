/* job.c — the job domain's states, queue names and messages
 * (include/tintype/job.h). The API writes states and sends messages, the
 * worker reads both; keeping the names and the format here is what lets
 * them not drift. Options are options.c, beside this file. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tintype/error.h"
#include "tintype/job.h"

static const char *const job_states[TT_JOB_NSTATES] = {"queued", "running", "succeeded", "failed",
                                                       "canceled"};
static const char *const image_states[TT_IMAGE_NSTATES] = {"created", "uploaded", "processing",
                                                           "processed", "failed"};

const char *tt_job_state_name(tt_job_state s) {
  return (unsigned)s < TT_JOB_NSTATES ? job_states[s] : "unknown";
}

const char *tt_image_state_name(tt_image_state s) {
  return (unsigned)s < TT_IMAGE_NSTATES ? image_states[s] : "unknown";
}

static int index_of(const char *const *names, int n, const char *s) {
  if (!s) return -1;
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], s)) return i;
  return -1;
}

int tt_job_state_of(const char *s) { return index_of(job_states, TT_JOB_NSTATES, s); }
int tt_image_state_of(const char *s) { return index_of(image_states, TT_IMAGE_NSTATES, s); }

int tt_job_state_final(const char *s) {
  int st = tt_job_state_of(s);
  return st == TT_JOB_SUCCEEDED || st == TT_JOB_FAILED || st == TT_JOB_CANCELED;
}

static int message(char out[TT_JOB_MSG_MAX], const char *field, const char *id) {
  int n = snprintf(out, TT_JOB_MSG_MAX, "{\"%s\":\"%s\"}", field, id);
  return n < 0 || n >= TT_JOB_MSG_MAX ? 0 : n;
}

int tt_job_message(char out[TT_JOB_MSG_MAX], const char *id) { return message(out, "job", id); }
int tt_image_message(char out[TT_JOB_MSG_MAX], const char *id) { return message(out, "image", id); }

int tt_job_message_requeued(char out[TT_JOB_MSG_MAX], const char *id, int preempted) {
  int n = snprintf(out, TT_JOB_MSG_MAX, "{\"job\":\"%s\",\"preempted\":%d}", id, preempted);
  return n < 0 || n >= TT_JOB_MSG_MAX ? 0 : n;
}

int tt_job_message_preempted(const char *body, size_t len) {
  json_error_t e;
  json_t *j = json_loadb(body, len, 0, &e);
  json_t *v = json_object_get(j, "preempted");
  json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
  json_decref(j);
  return n < 0 ? 0 : n > 1000000 ? 1000000 : (int)n;
}

static int parse(const char *body, size_t len, const char *field, char id[TT_ID_SIZE]) {
  json_error_t e;
  json_t *j = json_loadb(body, len, 0, &e);
  const char *s = json_string_value(json_object_get(j, field));
  int rc = s && strlen(s) < TT_ID_SIZE ? TT_OK : TT_EINVAL;
  if (rc == TT_OK) snprintf(id, TT_ID_SIZE, "%s", s);
  json_decref(j);
  return rc;
}

int tt_job_message_parse(const char *body, size_t len, char id[TT_ID_SIZE]) {
  return parse(body, len, "job", id);
}
int tt_image_message_parse(const char *body, size_t len, char id[TT_ID_SIZE]) {
  return parse(body, len, "image", id);
}
