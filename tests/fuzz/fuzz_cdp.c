/* fuzz_cdp.c — the DevTools client's message dispatch (src/render/cdp.c,
 * included here for its statics): what the browser sends back over the
 * WebSocket, command results and events, one JSON text per message.
 *
 * Input: messages separated by newlines. Before them, four commands are
 * "sent" with tt_cdp_send (ids 1..4; the connection is not open, so they
 * only queue). Each message goes through dispatch(); at the end the
 * remaining commands are failed as a close would fail them. Checked: every
 * command's callback runs exactly once, with TT_OK and a result, TT_EIO and
 * the error object, or TT_ECANCELED; events carry a method. */
#include <stdint.h>

#include "../../src/render/cdp.c"

#define NCMD 4

static uv_loop_t loop;
static int calls[NCMD + 1];
static int events;

#define REQUIRE(c)                                   \
  do {                                               \
    if (!(c)) {                                      \
      fprintf(stderr, "fuzz_cdp: broken: %s\n", #c); \
      abort();                                       \
    }                                                \
  } while (0)

static void touch(json_t *j) { /* read it the way render.c does */
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  free(s);
  const char *k;
  json_t *v;
  if (json_is_object(j)) json_object_foreach(j, k, v)(void) json_string_value(v);
}

static void on_result(tt_cdp *c, int status, json_t *json, void *ud) {
  (void)c;
  int i = (int)(intptr_t)ud;
  REQUIRE(i >= 1 && i <= NCMD);
  calls[i]++;
  REQUIRE(status == TT_OK || status == TT_EIO || status == TT_ECANCELED);
  if (status == TT_EIO) REQUIRE(json != NULL);
  if (status == TT_ECANCELED) REQUIRE(json == NULL);
  if (json) touch(json);
}

static void on_event_cb(tt_cdp *c, const char *method, const char *sid, json_t *params, void *ud) {
  (void)c, (void)ud, (void)sid;
  REQUIRE(method != NULL);
  events++;
  if (params) touch(params);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  uv_loop_init(&loop);
  tt_log_init(2, TT_LOG_OFF, "fuzz");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tt_cdp *c = calloc(1, sizeof *c);
  if (!c) return 0;
  c->loop = &loop;
  c->next_id = 1;
  c->on_event = on_event_cb;
  memset(calls, 0, sizeof calls);
  for (int i = 1; i <= NCMD; i++)
    REQUIRE(tt_cdp_send(c, i & 1 ? NULL : "SESSION", "Page.navigate",
                        json_pack("{s:s}", "url", "about:blank"), 1000, on_result,
                        (void *)(intptr_t)i) == TT_OK);
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    dispatch(c, p, n);
    p += n + 1;
  }
  fail_all(c, TT_ECANCELED);
  for (int i = 1; i <= NCMD; i++) REQUIRE(calls[i] == 1);
  tt_buf_free(&c->in);
  free(c);
  return 0;
}
