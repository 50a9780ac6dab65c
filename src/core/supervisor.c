/* supervisor.c — forks and minds the worker processes (supervisor.h).
 *
 * The supervisor itself runs no event loop: it blocks SIGCHLD, SIGTERM,
 * SIGINT and SIGHUP and waits for them with sigtimedwait(), which keeps it
 * tiny and keeps libuv's process-global signal machinery out of the
 * children it forks (each child starts a fresh loop of its own).
 *
 * Restarts: a child that dies is forked again at once; one that dies
 * within 1 s of its start backs off (100 ms, doubling, at most 5 s) so a
 * crash loop cannot spin the machine. (10 s was too long: under the kill
 * drill, children killed every 2 s each waited up to 5 s to come back,
 * leaving the port to one child or none.) Shutdown: every child gets SIGTERM and
 * drains (see http.h); children still alive after drain delay + shutdown
 * timeout + 5 s get SIGKILL. Exit code 0 when every child left with 0. */
#include "tintype/supervisor.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tintype/clock.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/ports.h"

#define MAX_CHILDREN 256
#define YOUNG_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

int tt_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int tt_listen_socket(const char *host, int port, int backlog, int reuseport) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
  if (rc != 0) return TT_EINVAL;
  int fd = -1, err = TT_EIO;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && (backlog == 0 || listen(fd, backlog) == 0)) break;
    err = -errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd >= 0 ? fd : err;
}

static int socket_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

static uint64_t now_ms(void) { return tt_mono_ms(); }

typedef struct {
  const tt_supervisor_spec *spec; /* the role this slot runs */
  pid_t pid;           /* 0: not running */
  uint64_t started_ms;
  uint64_t restart_at; /* when pid == 0: fork again at this time */
  unsigned backoff_ms;
} slot;

typedef struct {
  const tt_config *cfg;
  tt_config child_cfg; /* port resolved */
  int listen_fd;       /* inherit mode: shared listener; reuseport: reserved port */
  int reuseport;
  sigset_t sigs, oldmask;
  slot slots[MAX_CHILDREN];
} sup;

static sigset_t child_oldmask;

void tt_supervisor_child_ready(void) { sigprocmask(SIG_SETMASK, &child_oldmask, NULL); }

/* restart_ms: how long until it is forked again (-1: not said) */
static void log_child(const char *msg, pid_t pid, int index, int status, long restart_ms) {
  tt_buf *l = tt_log_begin(status == 0 || status == -1 ? TT_LOG_INFO : TT_LOG_WARN, msg);
  if (!l) return;
  tt_log_int(l, "child_pid", pid);
  tt_log_int(l, "index", index);
  if (status != -1) {
    if (WIFEXITED(status))
      tt_log_int(l, "exit_code", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
      tt_log_cstr(l, "signal", strsignal(WTERMSIG(status)));
  }
  if (restart_ms >= 0) tt_log_int(l, "restart_ms", restart_ms);
  tt_log_end(l);
}

static int spawn(sup *s, int index) {
  tt_log_flush();
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    /* supervisor already gone (compared with its pid, not 1: in a container
     * the supervisor is pid 1 itself) */
    if (getppid() != parent) _exit(0);
    child_oldmask = s->oldmask; /* unblocked by tt_supervisor_child_ready() */
    const tt_supervisor_spec *spec = s->slots[index].spec;
    int fd = s->listen_fd;
    if (!spec->listen) {
      if (fd >= 0) close(fd);
      fd = -2; /* this role has no listener */
    } else if (s->reuseport) {
      close(s->listen_fd);
      fd = -1;
    }
    tt_log_set_role(spec->role);
    tt_metrics_bind(index);
    int rc = spec->child(&s->child_cfg, fd, index, spec->ud);
    tt_log_flush();
    fflush(stdout);
    _exit(rc);
  }
  s->slots[index].pid = pid;
  s->slots[index].started_ms = now_ms();
  log_child("child started", pid, index, -1, -1);
  return 0;
}

int tt_supervisor_run(const tt_config *cfg, const tt_supervisor_spec *spec) {
  return tt_supervisor_run_roles(cfg, spec, 1);
}

int tt_supervisor_run_roles(const tt_config *cfg, const tt_supervisor_spec *specs, int nspecs) {
  static sup s; /* one per process; static keeps the 256 slots off the stack */
  memset(&s, 0, sizeof s);
  s.cfg = cfg;
  s.child_cfg = *cfg;
  s.listen_fd = -1;
  int n = 0, listen = 0, nlisten = 0;
  for (int k = 0; k < nspecs; k++) {
    if (specs[k].processes < 1 || n + specs[k].processes > MAX_CHILDREN) {
      fprintf(stderr, "tintype: processes must be between 1 and %d\n", MAX_CHILDREN);
      return 2;
    }
    for (int i = 0; i < specs[k].processes; i++) s.slots[n++].spec = &specs[k];
    if (specs[k].listen) {
      listen = 1;
      nlisten += specs[k].processes;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  /* the machine-wide list of tintype's ports (ports.h), which the API and
   * the workers' browsers and proxies are entered in */
  int ports_rc = tt_ports_init(cfg->ports_dir);
  if (ports_rc != TT_OK) tt_logf(TT_LOG_WARN, "ports folder %s: %s", cfg->ports_dir, tt_strerror(ports_rc));
  if (listen) {
    s.reuseport = !strcmp(cfg->listen_mode, "reuseport");
    /* reuseport: the supervisor binds without listening to learn (and hold)
     * the port; each child opens its own listening socket on it */
    s.listen_fd = tt_listen_socket(cfg->host, (int)cfg->port, s.reuseport ? 0 : (int)cfg->backlog, s.reuseport);
    if (s.listen_fd < 0) {
      tt_buf *l = tt_log_begin(TT_LOG_ERROR, "cannot listen");
      if (l) {
        tt_log_cstr(l, "host", cfg->host);
        tt_log_int(l, "port", cfg->port);
        tt_log_cstr(l, "error", tt_strerror(s.listen_fd));
        tt_log_end(l);
      }
      fprintf(stderr, "tintype: cannot listen on %s:%lld: %s\n", cfg->host, (long long)cfg->port,
              tt_strerror(s.listen_fd));
      if (s.listen_fd == -EADDRINUSE)
        fprintf(stderr, "tintype: another program (or tintype) uses port %lld; pick another with --port or "
                        "TINTYPE_PORT (TINTYPE_PORT=8090 make up)\n", (long long)cfg->port);
      else if (s.listen_fd == -EADDRNOTAVAIL || s.listen_fd == TT_EINVAL)
        fprintf(stderr, "tintype: %s is not an address of this machine; set --host or TINTYPE_HOST\n", cfg->host);
      return 1;
    }
    s.child_cfg.port = socket_port(s.listen_fd);
    /* no page of any job on this machine may reach the API (ports.h); the
     * children inherit the entry's lock, so it lasts while any of them does */
    int prc = ports_rc == TT_OK ? tt_ports_add((int)s.child_cfg.port) : ports_rc;
    if (prc != TT_OK)
      tt_logf(TT_LOG_WARN, "cannot list port %lld in %s: %s", (long long)s.child_cfg.port, cfg->ports_dir,
              tt_strerror(prc));
    tt_buf *l = tt_log_begin(TT_LOG_INFO, "listening");
    if (l) {
      tt_log_cstr(l, "host", cfg->host);
      tt_log_int(l, "port", s.child_cfg.port);
      tt_log_cstr(l, "mode", cfg->listen_mode);
      tt_log_int(l, "processes", nlisten);
      tt_log_end(l);
    }
  }

  sigemptyset(&s.sigs);
  sigaddset(&s.sigs, SIGCHLD);
  sigaddset(&s.sigs, SIGTERM);
  sigaddset(&s.sigs, SIGINT);
  sigaddset(&s.sigs, SIGHUP);
  sigprocmask(SIG_BLOCK, &s.sigs, &s.oldmask);

  for (int i = 0; i < n; i++) {
    int rc = spawn(&s, i);
    if (rc) {
      tt_logf(TT_LOG_ERROR, "fork failed: %s", tt_strerror(rc));
      s.slots[i].restart_at = now_ms() + BACKOFF_MIN_MS;
    }
  }
  if (listen) {
    /* one line for the person who typed `make up`: where to go (stdout is JSON logs) */
    const char *h = cfg->host;
    int any = !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::");
    fprintf(stderr, "tintype: open http://%s%s%s:%d/%s\n", strchr(any ? "" : h, ':') ? "[" : "",
            any ? "localhost" : h, strchr(any ? "" : h, ':') ? "]" : "", (int)s.child_cfg.port,
            any ? " (listening on every address: other machines can reach it too; --host 127.0.0.1 for this one only)"
                : "");
  }

  int stopping = 0, failed = 0;
  uint64_t stop_at = 0;
  uint64_t kill_at = 0;
  for (;;) {
    uint64_t now = now_ms(), wake = now + 1000;
    int alive = 0;
    for (int i = 0; i < n; i++) {
      slot *sl = &s.slots[i];
      if (sl->pid) {
        alive++;
        continue;
      }
      if (stopping) continue;
      if (sl->restart_at <= now) {
        if (spawn(&s, i) == 0)
          alive++;
        else
          sl->restart_at = now + BACKOFF_MAX_MS;
      }
      if (!sl->pid && sl->restart_at < wake) wake = sl->restart_at;
    }
    if (stopping && alive == 0) break;
    if (stopping && kill_at && now >= kill_at) {
      for (int i = 0; i < n; i++)
        if (s.slots[i].pid) {
          tt_logf(TT_LOG_WARN, "child %d did not stop in time: killing it", (int)s.slots[i].pid);
          kill(s.slots[i].pid, SIGKILL);
          failed = 1;
        }
      kill_at = 0;
    }
    if (stopping && kill_at && kill_at < wake) wake = kill_at;

    uint64_t wait_ms = wake > now ? wake - now : 0;
    struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
    siginfo_t info;
    int sig = sigtimedwait(&s.sigs, &info, &ts);
    if (sig < 0) continue; /* timeout or EINTR */

    if (sig == SIGCHLD) {
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++) {
          slot *sl = &s.slots[i];
          if (sl->pid != pid) continue;
          sl->pid = 0;
          if (!stopping) tt_metrics_restart();
          if (stopping) {
            log_child("child exited", pid, i, status, -1);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
            break;
          }
          uint64_t t = now_ms();
          if (t - sl->started_ms >= YOUNG_MS)
            sl->backoff_ms = 0; /* lived long enough: restart at once */
          else
            sl->backoff_ms = sl->backoff_ms ? sl->backoff_ms * 2 : BACKOFF_MIN_MS;
          if (sl->backoff_ms > BACKOFF_MAX_MS) sl->backoff_ms = BACKOFF_MAX_MS;
          /* the first young death restarts at once, later ones wait */
          sl->restart_at = t + (sl->backoff_ms == BACKOFF_MIN_MS ? 0 : sl->backoff_ms);
          log_child("child exited", pid, i, status, (long)(sl->restart_at - t));
          break;
        }
      }
    } else if (!stopping) {
      stopping = 1;
      stop_at = now_ms();
      tt_logf(TT_LOG_INFO, "%s: stopping %d children", strsignal(sig), n);
      /* our copy of the listener would keep the kernel accepting connections
       * that no child will serve once the children close theirs */
      if (s.listen_fd >= 0) {
        close(s.listen_fd);
        s.listen_fd = -1;
      }
      for (int i = 0; i < n; i++)
        if (s.slots[i].pid) kill(s.slots[i].pid, SIGTERM);
      kill_at = now_ms() + (uint64_t)cfg->drain_delay_ms + (uint64_t)cfg->shutdown_timeout_ms + 5000;
    } else if ((sig == SIGINT || sig == SIGTERM) && now_ms() - stop_at < 1000) {
      /* the same stop delivered twice (timeout(1) signals both the process
       * and its group; a terminal's Ctrl-C reaches every process): not a
       * second request */
    } else if (sig == SIGINT || sig == SIGTERM) {
      /* a second signal: no more patience */
      for (int i = 0; i < n; i++)
        if (s.slots[i].pid) kill(s.slots[i].pid, SIGKILL);
      failed = 1;
    }
  }
  if (s.listen_fd >= 0) close(s.listen_fd);
  if (listen) tt_ports_remove((int)s.child_cfg.port);
  tt_logf(TT_LOG_INFO, "stopped");
  sigprocmask(SIG_SETMASK, &s.oldmask, NULL);
  return failed ? 1 : 0;
}
