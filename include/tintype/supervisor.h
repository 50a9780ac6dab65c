/* supervisor.h — the process model of DESIGN §1.
 *
 * The supervisor (the process the user started) opens the listening socket
 * (or, in reuseport mode, lets each child open its own), forks `processes`
 * children, replaces a child that dies (first restart at once, then with
 * backoff when a child keeps dying young), and on SIGTERM/SIGINT tells every
 * child to drain and waits for them, exiting 0 when all left cleanly. */
#ifndef TINTYPE_SUPERVISOR_H
#define TINTYPE_SUPERVISOR_H

#include "tintype/config.h"

/* A child's main: runs its own loop until drained; returns the exit code.
 * listen_fd is the inherited listener, or -1 in reuseport mode. */
typedef int (*tt_child_main)(const tt_config *cfg, int listen_fd, int index, void *ud);

typedef struct tt_supervisor_spec {
  const char *role;    /* "api", "worker" */
  int processes;       /* resolved count (>= 1) */
  int listen;          /* open a TCP listener on cfg->host:cfg->port */
  tt_child_main child;
  void *ud;
} tt_supervisor_spec;

/* A child calls this once its own signal handlers are in place: signals
 * stay blocked from fork until then, so an early SIGTERM is not lost and
 * does not kill a child that has no handler yet. */
void tt_supervisor_child_ready(void);

/* Runs until shut down. Returns the process exit code. */
int tt_supervisor_run(const tt_config *cfg, const tt_supervisor_spec *spec);
/* The same for several roles at once (`tintype up`: api + worker). Children
 * are numbered across roles (0..total-1: their metrics slots); a role
 * without `listen` gets listen_fd -2. */
int tt_supervisor_run_roles(const tt_config *cfg, const tt_supervisor_spec *specs, int nspecs);

/* Opens a TCP socket bound to host:port, listening, non-blocking, close-on-
 * exec; SO_REUSEPORT when reuseport. Returns the fd or a negative code. */
int tt_listen_socket(const char *host, int port, int backlog, int reuseport);

/* Number of CPUs this process may run on (>= 1). */
int tt_cpu_count(void);

#endif
