/* tt_nodns.c — an LD_PRELOAD shim for tests: no name leaves the machine.
 *
 * getaddrinfo() of a numeric address or "localhost" goes to libc; any other
 * name is written, one per line, to the file $TT_NODNS_LOG and answered
 * EAI_NONAME without a lookup (a lookup is a packet to the resolver). A test
 * that runs `tintype shot` under it can then assert which names a job's
 * browser asked the SSRF proxy to resolve — and none was ever sent out. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  static gai_fn real;
  if (!real) real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  unsigned char buf[16];
  if (!node || !strcasecmp(node, "localhost") || inet_pton(AF_INET, node, buf) == 1 ||
      inet_pton(AF_INET6, node, buf) == 1)
    return real ? real(node, service, hints, res) : EAI_FAIL;
  const char *log = getenv("TT_NODNS_LOG");
  if (log && *log) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      char line[300];
      int n = snprintf(line, sizeof line, "%.256s\n", node);
      if (write(fd, line, (size_t)n) < 0) { /* nothing to do about it */
      }
      close(fd);
    }
  }
  return EAI_NONAME;
}
