/* ports.h — the TCP ports tintype itself listens on, known machine-wide.
 *
 * Every listener a page must never reach — the API port (registered by the
 * supervisor), each browser's DevTools port and each job's SSRF proxy
 * (registered by the render engine) — is written down as a file named after
 * the port in one folder shared by every tintype process and instance on the
 * machine (`--ports-dir`, default /tmp/tintype-ports). The SSRF proxy asks
 * tt_ports_is_own() before it connects to an address that the network policy
 * allows only because an allow range opened it (loopback, private, ...): a
 * worker's page then cannot reach another worker's DevTools, the API's
 * loopback-only /metrics or another job's proxy, whatever the policy opens.
 *
 * A port counts while its file is locked (flock) by the process that
 * registered it, or by a child that inherited the descriptor: a kill -9
 * releases the lock, so the file of a dead owner counts for nothing (and is
 * swept by the next tt_ports_init). Ports are numbers only: a registered port
 * is refused on every non-public address. */
#ifndef TINTYPE_PORTS_H
#define TINTYPE_PORTS_H

#define TT_PORTS_DEFAULT_DIR "/tmp/tintype-ports"

/* The folder to use (NULL or "": the default); made if missing, mode 1777
 * like /tmp so instances run by different users share it. 0 or a TT_E*. */
int tt_ports_init(const char *dir);
/* Registers port as this process's. 0 or a TT_E* (the caller logs it: a
 * failure weakens the check, it does not stop the service). */
int tt_ports_add(int port);
/* Unregisters port, if this process registered it. */
void tt_ports_remove(int port);
/* 1 when a live tintype process registered port, else 0. */
int tt_ports_is_own(int port);

#endif
