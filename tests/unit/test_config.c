/* test_config.c — settings: defaults, environment, flags, sizes, ranges. */
#include <stdlib.h>

#include "tintype/config.h"
#include "tintype/error.h"
#include "tt_test.h"

int main(void) {
  tt_config c;
  char err[256];
  tt_config_defaults(&c);
  CHECK_INT(c.port, 8080);
  CHECK_INT(c.max_header_bytes, 16 * 1024);
  CHECK_INT(c.max_body_bytes, 1024 * 1024);
  CHECK_STR(c.listen_mode, "inherit");

  int64_t v;
  CHECK_INT(tt_config_parse_size("16k", &v), TT_OK);
  CHECK_INT(v, 16384);
  CHECK_INT(tt_config_parse_size("2M", &v), TT_OK);
  CHECK_INT(v, 2 * 1024 * 1024);
  CHECK_INT(tt_config_parse_size("12x", &v), TT_EINVAL);
  CHECK_INT(tt_config_parse_size("-1", &v), TT_EINVAL);
  CHECK_INT(tt_config_parse_size("", &v), TT_EINVAL);

  setenv("TINTYPE_PORT", "9999", 1);
  setenv("TINTYPE_MAX_BODY_BYTES", "2k", 1);
  CHECK_INT(tt_config_from_env(&c, TT_CMD_API, err, sizeof err), TT_OK);
  CHECK_INT(c.port, 9999);
  CHECK_INT(c.max_body_bytes, 2048);

  /* flags win over the environment */
  char *argv[] = {"--port", "7000", "--max-headers=12", "extra"};
  const char *pos[2];
  int npos = 2, help = 0;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 4, argv, pos, &npos, &help, err, sizeof err), TT_OK);
  CHECK_INT(c.port, 7000);
  CHECK_INT(c.max_headers, 12);
  CHECK_INT(npos, 1);
  CHECK_STR(pos[0], "extra");

  /* out of range, not a number, unknown flag, flag of another command */
  char *bad1[] = {"--port", "70000"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 2, bad1, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  CHECK(strstr(err, "out of range") != NULL);
  char *bad2[] = {"--header-timeout-ms", "soon"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 2, bad2, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  char *bad3[] = {"--no-such-flag", "1"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 2, bad3, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  char *bad4[] = {"--concurrency", "3"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 2, bad4, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  char *bad5[] = {"--listen-mode", "fork"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_API, 2, bad5, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  /* warm contexts: owner (the default) or job, for up and worker */
  tt_config_defaults(&c);
  CHECK_STR(c.isolation, "owner");
  char *iso[] = {"--isolation", "job", "--max-contexts", "3", "--context-max-jobs", "7", "--context-idle-ms", "500"};
  npos = 8;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_WORKER, 8, iso, pos, &npos, &help, err, sizeof err), TT_OK);
  CHECK_STR(c.isolation, "job");
  CHECK_INT(c.max_contexts, 3);
  CHECK_INT(c.context_max_jobs, 7);
  CHECK_INT(c.context_idle_ms, 500);
  char *bad6[] = {"--isolation", "browser"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_WORKER, 2, bad6, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  CHECK(strstr(err, "isolation") != NULL);
  char *bad7[] = {"--max-contexts", "0"};
  npos = 2;
  CHECK_INT(tt_config_from_args(&c, TT_CMD_WORKER, 2, bad7, pos, &npos, &help, err, sizeof err), TT_EINVAL);
  tt_config_defaults(&c);

  setenv("TINTYPE_PORT", "abc", 1);
  CHECK_INT(tt_config_from_env(&c, TT_CMD_API, err, sizeof err), TT_EINVAL);
  CHECK(strstr(err, "TINTYPE_PORT") != NULL);
  unsetenv("TINTYPE_PORT");

  tt_config_defaults(&c);
  snprintf(c.data_dir, sizeof c.data_dir, "/tmp/x");
  tt_config_finish(&c);
  CHECK_STR(c.store_url, "sqlite:///tmp/x/tintype.db");
  CHECK_STR(c.blobs_url, "file:///tmp/x/blobs");
  TT_TEST_END();
}
