/* test_ports.c — the machine-wide list of tintype's own ports (ports.h):
 * an entry counts for other processes while its owner lives, stops counting
 * the moment the owner is killed outright (and is swept by the next init),
 * is removed only by its owner, and a newer owner's entry survives an older
 * owner's remove. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tintype/error.h"
#include "tintype/ports.h"
#include "tt_test.h"

static char top[] = "/tmp/tt-ports-test-XXXXXX";
static char dir[128];

static int file_exists(int port) {
  char p[200];
  snprintf(p, sizeof p, "%s/%d", dir, port);
  struct stat st;
  return stat(p, &st) == 0;
}

/* is_own(port) as another process sees it */
static int seen_by_other(int port) {
  pid_t pid = fork();
  if (pid == 0) _exit(tt_ports_is_own(port) ? 1 : 0);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  CHECK(mkdtemp(top) != NULL);
  snprintf(dir, sizeof dir, "%s/ports", top); /* made by init */
  CHECK_INT(tt_ports_init(dir), TT_OK);
  struct stat st;
  CHECK(stat(dir, &st) == 0 && (st.st_mode & 01777) == 01777);

  /* case: live entries count, for us and for other processes */
  CHECK_INT(tt_ports_is_own(40001), 0);
  CHECK_INT(tt_ports_add(40001), TT_OK);
  CHECK_INT(tt_ports_is_own(40001), 1);
  CHECK_INT(seen_by_other(40001), 1);
  CHECK_INT(seen_by_other(40002), 0);
  tt_ports_remove(40001);
  CHECK_INT(seen_by_other(40001), 0);
  CHECK_INT(file_exists(40001), 0);

  /* case: an owner killed outright counts for nothing; init sweeps it */
  int pfd[2];
  CHECK_INT(pipe(pfd), 0);
  pid_t k = fork();
  if (k == 0) {
    if (tt_ports_add(40003) != TT_OK) _exit(1);
    char c = 'r';
    if (write(pfd[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char c = 0;
  CHECK_INT(read(pfd[0], &c, 1), 1);
  CHECK_INT(tt_ports_is_own(40003), 1);
  kill(k, SIGKILL);
  waitpid(k, NULL, 0);
  CHECK_INT(tt_ports_is_own(40003), 0);
  CHECK_INT(file_exists(40003), 1);
  CHECK_INT(tt_ports_init(NULL), TT_OK);
  CHECK_INT(file_exists(40003), 0);

  /* case: a child that inherited the entry keeps it alive after the
   * registering process is gone (the supervisor's API port, its children) */
  k = fork();
  if (k == 0) {
    if (tt_ports_add(40004) != TT_OK) _exit(1);
    pid_t g = fork();
    if (g == 0) {
      pause();
      _exit(0);
    }
    if (write(pfd[1], &g, sizeof g) != (ssize_t)sizeof g) _exit(1);
    _exit(0); /* without remove: the grandchild still holds the lock */
  }
  pid_t g = 0;
  CHECK_INT(read(pfd[0], &g, sizeof g), (int)sizeof g);
  waitpid(k, NULL, 0);
  CHECK_INT(tt_ports_is_own(40004), 1);
  kill(g, SIGKILL);
  /* its descriptors close as it dies (not our child: we cannot wait it) */
  for (int i = 0; i < 500 && tt_ports_is_own(40004); i++) usleep(10000);
  CHECK_INT(tt_ports_is_own(40004), 0);

  /* case: an old owner's remove leaves a newer owner's entry alone */
  CHECK_INT(tt_ports_add(40005), TT_OK);
  k = fork();
  if (k == 0) {
    /* the child inherited our table; its own add replaces the file */
    _exit(tt_ports_add(40005) == TT_OK ? 0 : 1);
  }
  waitpid(k, NULL, 0);
  tt_ports_remove(40005); /* the file there is the child's (dead) one: not ours */
  CHECK_INT(file_exists(40005), 1);

  /* case: bad ports */
  CHECK_INT(tt_ports_add(0), TT_EINVAL);
  CHECK_INT(tt_ports_add(70000), TT_EINVAL);
  CHECK_INT(tt_ports_is_own(-1), 0);

  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
  CHECK_INT(system(cmd), 0);
  TT_TEST_END();
}
