/* netpolicy.c — the address classifier behind include/tintype/netpolicy.h.
 *
 * Every address is brought to 16 bytes (IPv4 as ::ffff:a.b.c.d) and
 * IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
 * forms are unwrapped to the IPv4 address they carry, so one table of IPv4
 * ranges covers every spelling. The render engine asks this module for each
 * connection Chromium makes for a job; this file knows nothing of Chromium. */
#include "tintype/netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/error.h"

typedef struct {
  const char *cidr;
  const char *name;
} range;

/* denied IPv4 ranges (special-purpose registry, RFC 6890 and successors) */
static const range v4_denied[] = {
    {"0.0.0.0/8", "unspecified"},        {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "cgnat"},          {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "ietf-protocol"},   {"192.0.2.0/24", "documentation"},
    {"192.88.99.0/24", "6to4-relay"},    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},   {"198.51.100.0/24", "documentation"},
    {"203.0.113.0/24", "documentation"}, {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved"},         {"255.255.255.255/32", "broadcast"},
};

static const range v6_denied[] = {
    {"::/128", "unspecified"},    {"::1/128", "loopback"},     {"fc00::/7", "unique-local"},
    {"fe80::/10", "link-local"},  {"fec0::/10", "site-local"}, {"ff00::/8", "multicast"},
    {"2001:db8::/32", "documentation"}, {"100::/64", "discard"}, {"2001::/23", "ietf-protocol"},
};

static const char *metadata[] = {"169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"};

/* text -> 16 bytes; IPv4 as mapped. 0 on success. IPv4 is read the way
 * URL hosts and inet_aton read it, so every spelling of an address lands on
 * the same bytes: decimal (2130706433), octal (0177.0.0.1), hex
 * (0x7f.0.0.1) and short forms (127.1). */
static int to16(const char *s, uint8_t out[16]) {
  struct in_addr a4;
  struct in6_addr a6;
  int dotted = s[0] && strspn(s, "0123456789abcdefABCDEFxX.") == strlen(s);
  if (inet_pton(AF_INET, s, &a4) == 1 || (dotted && inet_aton(s, &a4))) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a4, 4);
    return 0;
  }
  if (inet_pton(AF_INET6, s, &a6) == 1) {
    memcpy(out, &a6, 16);
    return 0;
  }
  return -1;
}

static int is_mapped(const uint8_t a[16]) {
  static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return !memcmp(a, pfx, 12);
}

/* IPv4-compatible (::a.b.c.d, deprecated), NAT64 and 6to4 carry an IPv4
 * address: bring it out as mapped so the IPv4 table applies. */
static void unwrap(uint8_t a[16]) {
  static const uint8_t zero12[12] = {0};
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  uint8_t v4[4];
  if (!memcmp(a, zero12, 12) && (a[12] | a[13] | a[14]) != 0) { /* ::a.b.c.d, not ::/::1 */
    memcpy(v4, a + 12, 4);
  } else if (!memcmp(a, nat64, 12)) {
    memcpy(v4, a + 12, 4);
  } else if (a[0] == 0x20 && a[1] == 0x02) { /* 2002:AABB:CCDD::/48 */
    memcpy(v4, a + 2, 4);
  } else {
    return;
  }
  memset(a, 0, 10);
  a[10] = a[11] = 0xff;
  memcpy(a + 12, v4, 4);
}

static int parse_cidr(const char *s, tt_cidr *c) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = 0;
  if (to16(buf, c->addr)) return -1;
  int v4 = strchr(buf, ':') == NULL;
  int max = v4 ? 32 : 128;
  int p = max;
  if (slash) {
    char *end;
    long x = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || x < 0 || x > max) return -1;
    p = (int)x;
  }
  c->prefix = v4 ? p + 96 : p;
  return 0;
}

static int in_cidr(const uint8_t a[16], const tt_cidr *c) {
  int bits = c->prefix;
  for (int i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
    if ((a[i] & mask) != (c->addr[i] & mask)) return 0;
  }
  return 1;
}

static const char *denied_range(const uint8_t a[16]) {
  tt_cidr c;
  if (is_mapped(a)) {
    for (size_t i = 0; i < sizeof v4_denied / sizeof v4_denied[0]; i++)
      if (!parse_cidr(v4_denied[i].cidr, &c) && in_cidr(a, &c)) return v4_denied[i].name;
    return NULL;
  }
  for (size_t i = 0; i < sizeof v6_denied / sizeof v6_denied[0]; i++)
    if (!parse_cidr(v6_denied[i].cidr, &c) && in_cidr(a, &c)) return v6_denied[i].name;
  /* anything outside global unicast 2000::/3 is not a public address */
  if ((a[0] & 0xe0) != 0x20) return "reserved";
  return NULL;
}

static int is_metadata(const uint8_t a[16]) {
  uint8_t m[16];
  for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++)
    if (!to16(metadata[i], m) && !memcmp(a, m, 16)) return 1;
  return 0;
}

int tt_netpolicy_init(tt_netpolicy *p, const char *list, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (!list) return TT_OK;
  char item[96];
  const char *s = list;
  while (*s) {
    while (*s == ' ' || *s == ',' || *s == '\t') s++;
    if (!*s) break;
    size_t n = strcspn(s, ", \t");
    if (n >= sizeof item || p->nallow == TT_NETPOLICY_MAX_ALLOW) {
      snprintf(err, errlen, "allow-networks: too long or too many ranges at '%.40s'", s);
      return TT_EINVAL;
    }
    memcpy(item, s, n);
    item[n] = 0;
    if (parse_cidr(item, &p->allow[p->nallow])) {
      snprintf(err, errlen, "allow-networks: '%s' is not an address or CIDR range", item);
      return TT_EINVAL;
    }
    p->nallow++;
    s += n;
  }
  return TT_OK;
}

static tt_net_verdict check16(const tt_netpolicy *p, uint8_t a[16]) {
  uint8_t orig[16];
  memcpy(orig, a, 16);
  unwrap(a);
  if (is_metadata(a) || is_metadata(orig)) return TT_NET_METADATA;
  /* a wrapped IPv4 address is judged as that IPv4 address */
  if (!denied_range(a)) return TT_NET_ALLOWED;
  for (int i = 0; i < p->nallow; i++)
    if (in_cidr(a, &p->allow[i])) return TT_NET_ALLOWED;
  return TT_NET_DENIED;
}

tt_net_verdict tt_netpolicy_check_str(const tt_netpolicy *p, const char *ip) {
  uint8_t a[16];
  if (!ip) return TT_NET_INVALID;
  /* "[::1]" as found in URLs */
  char buf[64];
  size_t n = strlen(ip);
  if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']' && n - 2 < sizeof buf) {
    memcpy(buf, ip + 1, n - 2);
    buf[n - 2] = 0;
    ip = buf;
  }
  if (to16(ip, a)) return TT_NET_INVALID;
  return check16(p, a);
}

tt_net_verdict tt_netpolicy_check_sa(const tt_netpolicy *p, const struct sockaddr *sa) {
  uint8_t a[16];
  if (!sa) return TT_NET_INVALID;
  if (sa->sa_family == AF_INET) {
    memset(a, 0, 10);
    a[10] = a[11] = 0xff;
    memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  } else {
    return TT_NET_INVALID;
  }
  return check16(p, a);
}

const char *tt_netpolicy_range_name(const char *ip) {
  uint8_t a[16];
  if (to16(ip, a)) return "invalid";
  unwrap(a);
  if (is_metadata(a)) return "metadata";
  const char *r = denied_range(a);
  return r ? r : "public";
}
