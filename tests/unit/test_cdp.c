/* test_cdp.c — the DevTools client against a real headless Chromium:
 * browser commands, a browser context with a page attached as a flattened
 * session, a script evaluated in it, a protocol error, events, and a clean
 * close that cancels what is still pending. */
#include <unistd.h>

#include "tintype/cdp.h"
#include "tintype/chromium.h"
#include "tintype/error.h"
#include "tt_test.h"

static uv_loop_t loop;
static tt_chromium *browser;
static tt_cdp *cdp;
static char ws[256], product[128], ctx_id[128], target_id[128], session[128];
static int step = 0, result_value = 0, proto_error = 0, canceled = 0, closed = 0, events = 0, exited = 0;

static void next(void);

static void on_result(tt_cdp *c, int status, json_t *j, void *ud) {
  (void)c;
  long which = (long)ud;
  switch (which) {
    case 1:
      CHECK_INT(status, 0);
      snprintf(product, sizeof product, "%s", json_string_value(json_object_get(j, "product")));
      break;
    case 2:
      CHECK_INT(status, 0);
      snprintf(ctx_id, sizeof ctx_id, "%s", json_string_value(json_object_get(j, "browserContextId")));
      break;
    case 3:
      CHECK_INT(status, 0);
      snprintf(target_id, sizeof target_id, "%s", json_string_value(json_object_get(j, "targetId")));
      break;
    case 4:
      CHECK_INT(status, 0);
      snprintf(session, sizeof session, "%s", json_string_value(json_object_get(j, "sessionId")));
      break;
    case 5:
      CHECK_INT(status, 0);
      result_value = (int)json_integer_value(json_object_get(json_object_get(j, "result"), "value"));
      break;
    case 6:
      proto_error = status == TT_EIO && json_object_get(j, "message") != NULL;
      break;
    case 7:
      canceled = status == TT_ECANCELED;
      return;
  }
  next();
}

static void on_event(tt_cdp *c, const char *method, const char *sid, json_t *params, void *ud) {
  (void)c;
  (void)params;
  (void)ud;
  if (!strcmp(method, "Target.attachedToTarget") || (sid && !strncmp(method, "Page.", 5))) events++;
}

static void on_closed(tt_cdp *c, int status, void *ud) {
  (void)c;
  (void)ud;
  CHECK_INT(status, 0);
  closed = 1;
  tt_chromium_stop(browser);
}

static void next(void) {
  step++;
  switch (step) {
    case 1: tt_cdp_send(cdp, NULL, "Browser.getVersion", NULL, 5000, on_result, (void *)1); break;
    case 2: tt_cdp_send(cdp, NULL, "Target.createBrowserContext", NULL, 5000, on_result, (void *)2); break;
    case 3:
      tt_cdp_send(cdp, NULL, "Target.createTarget",
                  json_pack("{s:s, s:s}", "url", "about:blank", "browserContextId", ctx_id), 5000, on_result, (void *)3);
      break;
    case 4:
      tt_cdp_send(cdp, NULL, "Target.attachToTarget", json_pack("{s:s, s:b}", "targetId", target_id, "flatten", 1),
                  5000, on_result, (void *)4);
      break;
    case 5:
      tt_cdp_send(cdp, session, "Page.enable", NULL, 5000, NULL == NULL ? on_result : on_result, (void *)0);
      tt_cdp_send(cdp, session, "Runtime.evaluate", json_pack("{s:s, s:b}", "expression", "1+2", "returnByValue", 1),
                  5000, on_result, (void *)5);
      break;
    case 6: break; /* the Page.enable answer */
    case 7: tt_cdp_send(cdp, NULL, "No.suchMethod", NULL, 5000, on_result, (void *)6); break;
    case 8:
      /* a command still pending at close is canceled */
      tt_cdp_send(cdp, NULL, "Browser.getVersion", NULL, 5000, on_result, (void *)7);
      tt_cdp_close(cdp);
      break;
  }
}

static void on_connect(tt_cdp *c, int status, void *ud) {
  (void)c;
  (void)ud;
  CHECK_INT(status, 0);
  next();
}

static void on_ready(tt_chromium *b, int status, const char *url, void *ud) {
  (void)b;
  (void)ud;
  CHECK_INT(status, 0);
  if (status) return;
  snprintf(ws, sizeof ws, "%s", url);
  CHECK_INT(tt_cdp_connect(&loop, ws, on_connect, on_event, on_closed, NULL, &cdp), TT_OK);
}

static void on_exit_(tt_chromium *b, int64_t st, int sig, void *ud) {
  (void)b;
  (void)st;
  (void)sig;
  (void)ud;
  exited = 1;
}

static void on_refused(tt_cdp *c, int status, void *ud) {
  (void)c;
  (void)ud;
  *(int *)ud = status;
}

static void on_refused_closed(tt_cdp *c, int status, void *ud) {
  (void)c;
  (void)status;
  (void)ud;
}

int main(void) {
  uv_loop_init(&loop);
  CHECK_INT(tt_chromium_start(&loop, NULL, on_ready, on_exit_, NULL, &browser), TT_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(!strncmp(product, "Chrome/", 7) || !strncmp(product, "HeadlessChrome/", 15));
  CHECK(ctx_id[0] && target_id[0] && session[0]);
  CHECK_INT(result_value, 3);
  CHECK(proto_error);
  CHECK(canceled);
  CHECK(closed);
  CHECK(exited);
  CHECK(events >= 1);

  /* nothing listening: the connect callback reports the failure */
  int refused = 1;
  tt_cdp *c2 = NULL;
  CHECK_INT(tt_cdp_connect(&loop, "ws://127.0.0.1:1/devtools/browser/x", on_refused, NULL, on_refused_closed,
                           &refused, &c2),
            TT_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(refused, TT_EIO);
  CHECK_INT(tt_cdp_connect(&loop, "http://nope", NULL, NULL, NULL, NULL, &c2), TT_EINVAL);
  CHECK_INT(uv_loop_close(&loop), 0);
  TT_TEST_END();
}
