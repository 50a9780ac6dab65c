/* fuzz_options.c — job options from JSON (src/job/options.c), the body of
 * POST /api/jobs and the flags of `tintype shot`, URL checks included.
 *
 * Any bytes: jansson parses them (as src/api/ does), then tt_options_parse
 * with the default limits. On success the options must hold what the
 * limits allow and the canonical JSON (tt_options_to_json) must parse back
 * to the same options; on failure a field is named. Broken promises abort. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/error.h"
#include "tintype/job.h"

static tt_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  tt_config_defaults(&cfg);
  return 0;
}

#define REQUIRE(c)                                       \
  do {                                                   \
    if (!(c)) {                                          \
      fprintf(stderr, "fuzz_options: broken: %s\n", #c); \
      abort();                                           \
    }                                                    \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t je;
  json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
  if (!j) return 0;
  static tt_options o, o2; /* 10 KiB each: off the stack */
  char field[96] = "", detail[256] = "";
  int rc = tt_options_parse(j, &cfg, &o, field, sizeof field, detail, sizeof detail);
  json_decref(j);
  if (rc != TT_OK) {
    REQUIRE(rc == TT_EINVAL || rc == TT_ENOMEM);
    REQUIRE(rc == TT_ENOMEM || detail[0]);
    return 0;
  }
  REQUIRE(!strncmp(o.url, "http://", 7) || !strncmp(o.url, "https://", 8));
  REQUIRE(o.url[o.url[4] == 's' ? 8 : 7] != '/' && o.url[o.url[4] == 's' ? 8 : 7] != 0);
  REQUIRE(strlen(o.url) <= (size_t)cfg.max_job_url_bytes);
  REQUIRE(o.width >= 1 && o.width <= cfg.max_viewport_width);
  REQUIRE(o.height >= 1 && o.height <= cfg.max_viewport_height);
  REQUIRE(o.scale >= 0.1 && o.scale <= 4);
  REQUIRE(o.timeout_ms >= 1 && o.timeout_ms <= cfg.max_render_timeout_ms);
  REQUIRE(o.delay_ms >= 0 && o.delay_ms <= cfg.max_delay_ms);
  REQUIRE(!(o.full_page && o.selector[0]));

  json_t *canon = tt_options_to_json(&o);
  if (!canon) return 0;
  rc = tt_options_parse(canon, &cfg, &o2, field, sizeof field, detail, sizeof detail);
  if (rc != TT_OK) {
    char *s = json_dumps(canon, 0);
    fprintf(stderr, "fuzz_options: canonical JSON refused (%s: %s): %s\n", field, detail, s ? s : "?");
    abort();
  }
  json_decref(canon);
  REQUIRE(memcmp(&o, &o2, sizeof o) == 0);
  return 0;
}
