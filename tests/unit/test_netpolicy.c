/* test_netpolicy.c — the address classifier: every denied range in each
 * spelling (IPv4, mapped, compatible, NAT64, 6to4), allow ranges, and the
 * metadata addresses that no allow range opens. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "tintype/error.h"
#include "tintype/netpolicy.h"
#include "tt_test.h"

static tt_netpolicy none, lo1;

static void expect(const tt_netpolicy *p, const char *ip, tt_net_verdict v) {
  tt_net_verdict got = tt_netpolicy_check_str(p, ip);
  if (got != v) fprintf(stderr, "  %s: got %d, want %d\n", ip, got, v);
  CHECK_INT(got, v);
}

int main(void) {
  char err[128];
  CHECK_INT(tt_netpolicy_init(&none, "", err, sizeof err), TT_OK);
  CHECK_INT(tt_netpolicy_init(&lo1, "127.0.0.1/32", err, sizeof err), TT_OK);

  const char *denied[] = {
      "127.0.0.1", "127.0.0.2", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
      "192.168.1.1", "169.254.1.1", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1",
      "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.7", "198.18.0.1", "::", "::1", "fe80::1",
      "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:192.168.0.1",
      "::127.0.0.1", "::10.0.0.1", "64:ff9b::a00:1", "64:ff9b::7f00:1", "2002:7f00:1::", "2002:a00:1::1",
      "2001:db8::1", "[::1]", "::ffff:0:0"};
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) expect(&none, denied[i], TT_NET_DENIED);

  const char *public[] = {"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.0", "100.63.255.255",
                          "100.128.0.0", "11.0.0.1", "2606:4700:4700::1111", "2a00:1450:4001::200e",
                          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"};
  for (size_t i = 0; i < sizeof public / sizeof public[0]; i++) expect(&none, public[i], TT_NET_ALLOWED);

  /* metadata: never, whatever is allowed */
  tt_netpolicy all;
  CHECK_INT(tt_netpolicy_init(&all, "0.0.0.0/0, ::/0", err, sizeof err), TT_OK);
  const char *meta[] = {"169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "169.254.170.2",
                        "::169.254.169.254", "64:ff9b::a9fe:a9fe"};
  for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
    expect(&none, meta[i], TT_NET_METADATA);
    expect(&all, meta[i], TT_NET_METADATA);
  }
  expect(&all, "10.1.2.3", TT_NET_ALLOWED);

  /* allow 127.0.0.1/32 opens exactly that address, in any spelling */
  expect(&lo1, "127.0.0.1", TT_NET_ALLOWED);
  expect(&lo1, "::ffff:127.0.0.1", TT_NET_ALLOWED);
  expect(&lo1, "127.0.0.2", TT_NET_DENIED);
  expect(&lo1, "::1", TT_NET_DENIED);
  expect(&lo1, "10.0.0.1", TT_NET_DENIED);

  /* sockaddr form */
  struct sockaddr_in s4 = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.2", &s4.sin_addr);
  CHECK_INT(tt_netpolicy_check_sa(&lo1, (struct sockaddr *)&s4), TT_NET_DENIED);
  inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
  CHECK_INT(tt_netpolicy_check_sa(&lo1, (struct sockaddr *)&s4), TT_NET_ALLOWED);
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "::ffff:127.0.0.2", &s6.sin6_addr);
  CHECK_INT(tt_netpolicy_check_sa(&lo1, (struct sockaddr *)&s6), TT_NET_DENIED);

  /* other spellings of IPv4 addresses (as URL hosts allow) land on the same address */
  const char *spellings[] = {"127.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "017700000001",
                             "10.1", "167772161", "0xa9.0xfe.0xa9.0xfe", "192.168.1"};
  for (size_t i = 0; i < 6; i++) {
    expect(&none, spellings[i], TT_NET_DENIED);
    expect(&lo1, spellings[i], TT_NET_ALLOWED); /* all of them are 127.0.0.1 */
  }
  expect(&none, "10.1", TT_NET_DENIED);
  expect(&none, "167772161", TT_NET_DENIED);
  expect(&all, "0xa9.0xfe.0xa9.0xfe", TT_NET_METADATA);
  expect(&none, "192.168.1", TT_NET_DENIED);
  CHECK_STR(tt_netpolicy_range_name("0177.0.0.1"), "loopback");
  (void)spellings;

  /* bad input */
  expect(&none, "not-an-ip", TT_NET_INVALID);
  expect(&none, "127.0.0.1.5", TT_NET_INVALID);
  expect(&none, "256.1.1.1", TT_NET_INVALID);
  expect(&none, "", TT_NET_INVALID);
  tt_netpolicy bad;
  CHECK_INT(tt_netpolicy_init(&bad, "10.0.0.0/33", err, sizeof err), TT_EINVAL);
  CHECK(strstr(err, "10.0.0.0/33") != NULL);
  CHECK_INT(tt_netpolicy_init(&bad, "example.com", err, sizeof err), TT_EINVAL);
  CHECK_INT(tt_netpolicy_init(&bad, "::1/129", err, sizeof err), TT_EINVAL);
  CHECK_STR(tt_netpolicy_range_name("10.1.1.1"), "private");
  CHECK_STR(tt_netpolicy_range_name("169.254.169.254"), "metadata");
  CHECK_STR(tt_netpolicy_range_name("8.8.4.4"), "public");
  TT_TEST_END();
}
