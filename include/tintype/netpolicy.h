/* netpolicy.h — which addresses a render may connect to (DESIGN §5).
 *
 * Default: public unicast only. Denied: loopback, RFC 1918 private, link-
 * local, CGNAT (100.64/10), unique-local (fc00::/7), multicast, unspecified,
 * broadcast, documentation/benchmark/reserved ranges, NAT64 and 6to4 forms
 * that embed a denied IPv4 address, and the IPv4-mapped / IPv4-compatible
 * forms of every denied IPv4 address. TINTYPE_ALLOW_NETWORKS=CIDR,... opens
 * ranges (tests, intranets). Cloud metadata addresses (169.254.169.254,
 * fd00:ec2::254, and 169.254.170.2 of ECS) stay denied whatever is allowed.
 *
 * IPv4 text is read as URL hosts are (decimal, octal, hex and short forms:
 * 2130706433, 0177.0.0.1, 127.1 are all loopback).
 *
 * The check is made on the address actually connected to (after DNS), so
 * a name that resolves differently the second time changes nothing. */
#ifndef TINTYPE_NETPOLICY_H
#define TINTYPE_NETPOLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TT_NETPOLICY_MAX_ALLOW 32

typedef struct tt_cidr {
  uint8_t addr[16]; /* IPv4 stored as IPv4-mapped IPv6 */
  int prefix;       /* 0..128 (IPv4 prefixes + 96) */
} tt_cidr;

typedef struct tt_netpolicy {
  tt_cidr allow[TT_NETPOLICY_MAX_ALLOW];
  int nallow;
} tt_netpolicy;

typedef enum {
  TT_NET_ALLOWED = 0,    /* public, or opened by an allow range */
  TT_NET_DENIED = 1,     /* a special-purpose range not opened */
  TT_NET_METADATA = 2,   /* a cloud metadata address: never */
  TT_NET_INVALID = 3,    /* not an IP address */
} tt_net_verdict;

/* Parses "127.0.0.1/32, 10.0.0.0/8, ::1/128" (empty: nothing allowed
 * beyond the default). TT_EINVAL naming the bad item in err. */
int tt_netpolicy_init(tt_netpolicy *p, const char *allow_list, char *err, size_t errlen);

/* Verdict for a textual IPv4 or IPv6 address ("127.0.0.2", "::ffff:10.0.0.1"). */
tt_net_verdict tt_netpolicy_check_str(const tt_netpolicy *p, const char *ip);
/* Verdict for a socket address (AF_INET / AF_INET6). */
tt_net_verdict tt_netpolicy_check_sa(const tt_netpolicy *p, const struct sockaddr *sa);
/* The name of the range an address falls in ("loopback", "private",
 * "link-local", "metadata", "public", ...), for error messages. */
const char *tt_netpolicy_range_name(const char *ip);

#endif
