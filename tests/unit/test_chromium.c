/* test_chromium.c — a real headless Chromium: started, its DevTools
 * endpoint answers on loopback (/json/version over plain HTTP), stopped
 * cleanly with its profile folder gone; and a browser that is killed is
 * reported through the exit callback. Skipped (exit 0 with a note) only
 * when Chromium is not installed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tintype/chromium.h"
#include "tintype/error.h"
#include "tt_test.h"

static char ws[256];
static int ready_status = 1, exits = 0, exit_signal = -1;
static char profile_glob[256];

static void on_ready(tt_chromium *b, int status, const char *url, void *ud) {
  (void)b;
  (void)ud;
  ready_status = status;
  if (url) snprintf(ws, sizeof ws, "%s", url);
}

static void on_exit_(tt_chromium *b, int64_t st, int sig, void *ud) {
  (void)b;
  (void)st;
  (void)ud;
  exits++;
  exit_signal = sig;
}

static void run_until(uv_loop_t *loop, int *flag, int want, int ms) {
  for (int i = 0; i < ms / 10 && *flag != want; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
}

/* GET /json/version from the DevTools HTTP endpoint */
static int devtools_version(int port, char *out, size_t len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
    close(fd);
    return -1;
  }
  const char *req = "GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, req, strlen(req)) < 0) {
    close(fd);
    return -1;
  }
  size_t n = 0;
  ssize_t r;
  while (n + 1 < len && (r = read(fd, out + n, len - 1 - n)) > 0) n += (size_t)r;
  out[n] = 0;
  close(fd);
  return 0;
}

int main(void) {
  if (access("/usr/bin/chromium", X_OK) != 0 && !getenv("TINTYPE_CHROMIUM")) {
    fprintf(stderr, "chromium not installed: run scripts/install-deps.sh\n");
    return 1; /* install-deps installs it: its absence is a failure, not a skip */
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  char parent[] = "/tmp/tt-chromium-test-XXXXXX";
  CHECK(mkdtemp(parent) != NULL);
  /* folders left by owners killed outright: the first start sweeps the one
   * whose owner is dead, and leaves a live owner's and an unowned one */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  const char *names[3] = {"tintype-chromium-stale", "tintype-chromium-alive", "tintype-chromium-noowner"};
  long owners[3] = {(long)dead, (long)getppid(), 0};
  char dir[3][600];
  for (int i = 0; i < 3; i++) {
    snprintf(dir[i], sizeof dir[i], "%s/%s", parent, names[i]);
    CHECK(mkdir(dir[i], 0700) == 0);
    char f[2048];
    snprintf(f, sizeof f, "%s/Local State", dir[i]);
    FILE *fp = fopen(f, "w");
    if (fp) fclose(fp);
    if (!owners[i]) continue;
    snprintf(f, sizeof f, "%s/tintype-owner", dir[i]);
    fp = fopen(f, "w");
    if (fp) {
      fprintf(fp, "%ld\n", owners[i]);
      fclose(fp);
    }
  }
  tt_chromium_opts o = {.profile_dir = parent};
  tt_chromium *b = NULL;
  CHECK_INT(tt_chromium_start(&loop, &o, on_ready, on_exit_, NULL, &b), TT_OK);
  CHECK(access(dir[0], F_OK) != 0); /* swept */
  CHECK(access(dir[1], F_OK) == 0);
  CHECK(access(dir[2], F_OK) == 0);
  for (int i = 1; i < 3; i++) {
    char f[2048];
    snprintf(f, sizeof f, "%s/Local State", dir[i]);
    unlink(f);
    snprintf(f, sizeof f, "%s/tintype-owner", dir[i]);
    unlink(f);
    CHECK(rmdir(dir[i]) == 0);
  }
  run_until(&loop, &ready_status, 0, 30000);
  CHECK_INT(ready_status, 0);
  CHECK(strncmp(ws, "ws://127.0.0.1:", 15) == 0);
  int port = atoi(ws + 15);
  CHECK(port > 0);
  char resp[8192];
  CHECK_INT(devtools_version(port, resp, sizeof resp), 0);
  CHECK(strstr(resp, "200 OK") != NULL);
  CHECK(strstr(resp, "\"Browser\"") != NULL);
  CHECK(strstr(resp, "webSocketDebuggerUrl") != NULL);
  /* its profile folder exists while it runs, and only one */
  snprintf(profile_glob, sizeof profile_glob, "%s", parent);
  tt_chromium_stop(b);
  run_until(&loop, &exits, 1, 10000);
  CHECK_INT(exits, 1);
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(rmdir(parent) == 0); /* empty: the profile folder was removed */

  /* a browser that dies is reported */
  CHECK(mkdtemp(strcpy(parent, "/tmp/tt-chromium-test-XXXXXX")) != NULL);
  ready_status = 1;
  exits = 0;
  CHECK_INT(tt_chromium_start(&loop, &o, on_ready, on_exit_, NULL, &b), TT_OK);
  run_until(&loop, &ready_status, 0, 30000);
  CHECK_INT(ready_status, 0);
  kill(tt_chromium_pid(b), SIGKILL);
  run_until(&loop, &exits, 1, 10000);
  CHECK_INT(exits, 1);
  CHECK_INT(exit_signal, SIGKILL);
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(rmdir(parent) == 0);

  /* a binary that does not exist: an error, nothing left behind */
  tt_chromium_opts bad = {.binary = "/nonexistent/chromium", .profile_dir = "/tmp"};
  CHECK(tt_chromium_start(&loop, &bad, on_ready, on_exit_, NULL, &b) != TT_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  TT_TEST_END();
}
