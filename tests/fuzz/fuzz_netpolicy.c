/* fuzz_netpolicy.c — the address classifier (src/render/netpolicy.c) and
 * the proxy's reading of a request's host:port (parse_authority and
 * literal_addr of src/render/netproxy.c, included here for its statics).
 *
 * Input: the first line is an allow list (TINTYPE_ALLOW_NETWORKS), every
 * further line an address or authority as a page would write it. Checked:
 *  - the proxy and the policy read a literal the same way: whatever
 *    literal_addr makes of a host, check_sa on it is check_str's verdict
 *    (else a spelling could be judged as one address and connected to as
 *    another);
 *  - a metadata address is refused whatever the allow list opens;
 *  - opening ranges never closes one (allowed without → allowed with);
 *  - with nothing opened, "allowed" is exactly the range name "public";
 *  - an authority the proxy accepts has a host and a port in 1..65535.
 * Nothing here resolves a name: parse_authority only splits text. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/render/netproxy.c"

#define REQUIRE(c)                                                        \
  do {                                                                    \
    if (!(c)) {                                                           \
      fprintf(stderr, "fuzz_netpolicy: broken for '%s': %s\n", line, #c); \
      abort();                                                            \
    }                                                                     \
  } while (0)

static void one(const tt_netpolicy *none, const tt_netpolicy *opened, const char *line) {
  tt_net_verdict v = tt_netpolicy_check_str(none, line);
  tt_net_verdict vo = tt_netpolicy_check_str(opened, line);
  const char *range = tt_netpolicy_range_name(line);
  REQUIRE(v >= TT_NET_ALLOWED && v <= TT_NET_INVALID);
  if (v == TT_NET_METADATA || vo == TT_NET_METADATA) REQUIRE(v == vo);
  if (v == TT_NET_ALLOWED) REQUIRE(vo == TT_NET_ALLOWED);
  if (v == TT_NET_INVALID) REQUIRE(vo == TT_NET_INVALID);
  if (line[0] != '[') { /* range_name takes no brackets */
    if (v == TT_NET_ALLOWED) REQUIRE(!strcmp(range, "public"));
    if (v == TT_NET_METADATA) REQUIRE(!strcmp(range, "metadata"));
    if (v == TT_NET_INVALID) REQUIRE(!strcmp(range, "invalid"));
  }
  struct sockaddr_storage ss;
  if (literal_addr(line, 80, &ss)) {
    REQUIRE(tt_netpolicy_check_sa(none, (struct sockaddr *)&ss) == v);
    REQUIRE(tt_netpolicy_check_sa(opened, (struct sockaddr *)&ss) == vo);
  }
  char host[256];
  int port = -1;
  if (!parse_authority(line, strlen(line), host, sizeof host, 80, &port)) {
    REQUIRE(host[0] && port >= 1 && port <= 65535);
    if (literal_addr(host, port, &ss)) { /* as the proxy checks it */
      tt_net_verdict hv = tt_netpolicy_check_sa(none, (struct sockaddr *)&ss);
      REQUIRE(hv == tt_netpolicy_check_str(none, host));
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = 0;
  char *nl = strchr(s, '\n');
  char *rest = NULL;
  if (nl) {
    *nl = 0;
    rest = nl + 1;
  }
  tt_netpolicy none, opened;
  char err[160];
  tt_netpolicy_init(&none, "", err, sizeof err);
  if (tt_netpolicy_init(&opened, s, err, sizeof err) != TT_OK) {
    if (!err[0]) abort(); /* a refused list is named */
    tt_netpolicy_init(&opened, "", err, sizeof err);
  }
  one(&none, &opened, s); /* the allow list is an address too */
  for (char *line = rest; line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = 0;
    one(&none, &opened, line);
    line = next;
  }
  free(s);
  return 0;
}
