/* ports.c — the machine-wide list of tintype's own listening ports (ports.h).
 *
 * One small file per port in a shared folder, DIR/PORT, holding the pid of
 * its owner (for people reading the folder) and flock()ed by it for as long
 * as the port is its own: the kernel drops the lock when the owner dies, so
 * liveness needs no pid checks (pids are reused). A file is made under a
 * temporary name, locked, then renamed into place, so a reader never sees an
 * unlocked live entry. A lookup is open + a non-blocking flock try, a few
 * microseconds, made once per proxied connection to a non-public address.
 * The supervisor (src/core/supervisor.c) registers the API port; the render
 * engine registers DevTools and proxy ports; netproxy.c looks them up. */
#include "tintype/ports.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tintype/error.h"

#define MAX_OWN 256

static char dir_[512] = TT_PORTS_DEFAULT_DIR;
static struct {
  int port, fd;
} own_[MAX_OWN];
static int nown_;

static void path_of(int port, char *out, size_t cap) { snprintf(out, cap, "%s/%d", dir_, port); }

/* 1: a live owner holds path's lock; 0: no file, or nobody holds it. With
 * sweep, an unheld file is removed if it is still the one that was tried. */
static int held(const char *path, int sweep) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int live = 0;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    live = errno == EWOULDBLOCK;
  } else if (sweep) {
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino) unlink(path);
  }
  close(fd);
  return live;
}

int tt_ports_init(const char *dir) {
  if (dir && *dir) {
    if (strlen(dir) >= sizeof dir_ - 24) return TT_EINVAL;
    snprintf(dir_, sizeof dir_, "%s", dir);
  }
  if (mkdir(dir_, 01777) == 0) {
    chmod(dir_, 01777); /* the umask trimmed it */
  } else if (errno != EEXIST) {
    return -errno;
  }
  DIR *d = opendir(dir_);
  if (!d) return -errno;
  struct dirent *e;
  while ((e = readdir(d))) { /* entries of owners killed outright */
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir_, e->d_name);
    held(path, 1);
  }
  closedir(d);
  return TT_OK;
}

int tt_ports_add(int port) {
  if (port <= 0 || port > 65535) return TT_EINVAL;
  if (nown_ == MAX_OWN) return TT_ETOOBIG;
  char path[600], tmp[640], b[32];
  path_of(port, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s/.%d.%ld", dir_, port, (long)getpid());
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT && tt_ports_init(NULL) == TT_OK) /* the folder was removed */
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
  int rc = TT_OK;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || write(fd, b, (size_t)n) != n) rc = TT_EIO;
  if (rc == TT_OK && rename(tmp, path) != 0) rc = -errno;
  if (rc != TT_OK) {
    unlink(tmp);
    close(fd);
    return rc;
  }
  own_[nown_].port = port;
  own_[nown_++].fd = fd;
  return TT_OK;
}

void tt_ports_remove(int port) {
  for (int i = 0; i < nown_; i++) {
    if (own_[i].port != port) continue;
    char path[600];
    path_of(port, path, sizeof path);
    struct stat a, b;
    /* only if the file there is still ours (not a newer owner's) */
    if (fstat(own_[i].fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino) unlink(path);
    close(own_[i].fd);
    own_[i] = own_[--nown_];
    return;
  }
}

int tt_ports_is_own(int port) {
  if (port <= 0 || port > 65535) return 0;
  for (int i = 0; i < nown_; i++)
    if (own_[i].port == port) return 1;
  char path[600];
  path_of(port, path, sizeof path);
  return held(path, 0);
}
