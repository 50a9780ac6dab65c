/* netproxy.h — the SSRF enforcement point (DESIGN §5): a small HTTP forward
 * proxy on 127.0.0.1 that every connection of a job's browser context goes
 * through (Target.createBrowserContext with proxyServer
 * "http://127.0.0.1:PORT" and proxyBypassList "<-loopback>").
 *
 * The proxy resolves each target itself, checks every candidate address
 * with tt_netpolicy_check_sa() and connects only to an allowed one, so the
 * address checked is the address connected to. It speaks two request forms:
 *
 *   CONNECT host:port HTTP/1.1          (https, ws, wss: a byte tunnel)
 *   GET http://host[:port]/path HTTP/1.1 (plain http: forwarded in origin
 *                                          form, one request per connection)
 *
 * Refused: 403 (policy; on_blocked runs), 502 (name does not resolve:
 * on_blocked with ip "" and why "unresolvable"; or no allowed address
 * accepted the connection), 504 (resolve + connect too slow), 400
 * (malformed, https:// or another scheme in absolute form, origin form),
 * 408 (head too slow), 431 (head too large), 503 (too many connections).
 *
 * One proxy per job, or per warm browser context (render.c, --isolation
 * owner), reset between its jobs: blocked attempts are attributed to the
 * job it serves. Everything runs on the loop thread. */
#ifndef TINTYPE_NETPROXY_H
#define TINTYPE_NETPROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/netpolicy.h"

/* defaults of tt_netproxy_limits */
#define TT_NETPROXY_MAX_HEAD (16 * 1024)     /* request head bytes; 431 beyond */
#define TT_NETPROXY_MAX_CONNS 256            /* open client connections; 503 beyond */
#define TT_NETPROXY_HEAD_TIMEOUT_MS 30000    /* whole head from accept; 408 */
#define TT_NETPROXY_CONNECT_TIMEOUT_MS 30000 /* resolve + connect; 504 */
#define TT_NETPROXY_IDLE_TIMEOUT_MS 30000    /* no byte either way once spliced; close */

typedef struct tt_netproxy tt_netproxy;

/* A request the policy refused: host and port as asked (an IPv6 literal
 * without its brackets), the address refused ("" if the name did not
 * resolve), and why: the range name of tt_netpolicy_range_name()
 * ("loopback", "private", "link-local", ...), "metadata", or
 * "unresolvable". When a name has several addresses, ip and why are those
 * of the first one refused. */
typedef void (*tt_netproxy_blocked_cb)(void *ud, const char *host, int port, const char *ip, const char *why);

typedef struct tt_netproxy_limits {
  size_t max_head;
  int max_conns;
  int head_timeout_ms;
  int connect_timeout_ms;
  int idle_timeout_ms;
} tt_netproxy_limits;

/* Listens on 127.0.0.1, an ephemeral port. policy is borrowed (must outlive
 * the proxy). on_blocked may be NULL. */
int tt_netproxy_start(uv_loop_t *loop, const tt_netpolicy *policy, tt_netproxy_blocked_cb on_blocked,
                      void *ud, tt_netproxy **out);
int tt_netproxy_port(const tt_netproxy *p);
/* Refuses loopback connections to this port whatever the policy allows
 * (the browser's DevTools port; the proxy refuses its own port already).
 * Up to 4 ports. */
void tt_netproxy_deny_local_port(tt_netproxy *p, int port);

/* The TT_NETPROXY_* defaults. */
void tt_netproxy_limits_default(tt_netproxy_limits *l);
/* Applies to connections accepted from now on. TT_EINVAL for a zero or
 * negative value, or a head limit below 1 KiB. */
int tt_netproxy_set_limits(tt_netproxy *p, const tt_netproxy_limits *l);

/* Counters for the job's result metadata / tests. requests: proxy requests
 * whose target was well formed (they reached the policy); blocked: calls of
 * on_blocked; bytes_up: bytes sent to upstream servers (the rewritten head
 * of a forwarded request included); bytes_down: bytes relayed from
 * upstream servers to the browser. */
typedef struct tt_netproxy_stats {
  int64_t requests, blocked, bytes_up, bytes_down;
} tt_netproxy_stats;
void tt_netproxy_stats_get(const tt_netproxy *p, tt_netproxy_stats *s);

/* Hosts (with port; tunnel 1 for CONNECT, 0 for a forwarded http://
 * request) asked for since the start or the last reset, each once: the
 * origins a job touched. TT_ETOOBIG when more than TT_NETPROXY_MAX_HOSTS
 * distinct ones were asked for (the list is then incomplete). */
#define TT_NETPROXY_MAX_HOSTS 64
typedef void (*tt_netproxy_host_cb)(void *ud, const char *host, int port, int tunnel);
int tt_netproxy_hosts(const tt_netproxy *p, tt_netproxy_host_cb cb, void *ud);
/* Between two jobs of a warm context: closes every connection (nothing of
 * one job's tunnels or forwarded requests reaches the next; every new one
 * is checked at connect time, as always), zeroes the counters, forgets the
 * hosts and attributes blocked attempts to on_blocked/ud from now on. The
 * listener (and its port, fixed in the browser context) stays. */
void tt_netproxy_reset(tt_netproxy *p, tt_netproxy_blocked_cb on_blocked, void *ud);
/* Only the attribution of blocked attempts changes. */
void tt_netproxy_rebind(tt_netproxy *p, tt_netproxy_blocked_cb on_blocked, void *ud);

/* Closes the listener and every connection; no callback runs after this
 * returns (it may be called from on_blocked); memory is freed once libuv
 * has closed the handles (on the loop), so run the loop afterwards. */
void tt_netproxy_close(tt_netproxy *p);

#endif
