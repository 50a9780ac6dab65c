/* ratelimit.c — who the client is, and how often it may knock (hardening,
 * issue 16 item 9).
 *
 * api_client_addr(): the socket's peer address — or, when that peer is one
 * of `--trusted-proxies` (the ALB, HAProxy), the rightmost address of
 * X-Forwarded-For that is not itself a trusted proxy (each proxy appends
 * the address it saw; what lies left of the last untrusted entry was
 * written by the client and proves nothing).
 *
 * api_rate_take(): a token bucket per (purpose, address) in a fixed table of
 * this process (sign-ups, failed authentications): `limit` events per
 * minute, refilled continuously. A full table evicts by hash slot, so its
 * memory is bounded whatever the number of addresses. Per process: with P
 * API processes a client spread over all of them gets at most P times the
 * limit; the point is to make 2,000 accounts in 1.5 s impossible, not to
 * count exactly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "api_internal.h"

#define RL_SLOTS 4096

typedef struct rl_slot {
  char addr[INET6_ADDRSTRLEN];
  int purpose;
  double tokens;
  uint64_t at_ms;
} rl_slot;

static rl_slot slots_[RL_SLOTS];

static int to16(const char *ip, uint8_t out[16]) {
  struct in_addr a4;
  if (inet_pton(AF_INET, ip, &a4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, ip, out) == 1 ? 0 : -1;
}

int api_addr_in(const char *ip, const tt_netpolicy *list) {
  uint8_t a[16];
  if (!list || to16(ip, a)) return 0;
  for (int i = 0; i < list->nallow; i++) {
    const tt_cidr *c = &list->allow[i];
    int bits = c->prefix, k = 0;
    for (; bits >= 8; bits -= 8, k++)
      if (a[k] != c->addr[k]) break;
    if (bits >= 8) continue;
    if (bits == 0 || ((a[k] ^ c->addr[k]) & (uint8_t)(0xff << (8 - bits))) == 0) return 1;
  }
  return 0;
}

static void sa_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
  if (ss->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      inet_ntop(AF_INET, a->s6_addr + 12, out, (socklen_t)cap);
      return;
    }
    inet_ntop(AF_INET6, a, out, (socklen_t)cap);
    return;
  }
  inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
}

void api_client_addr(tt_http_req *req, const tt_api *api, char *out, size_t cap) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  snprintf(out, cap, "unknown");
  if (tt_http_req_peer(req, &ss) != 0) return;
  sa_text(&ss, out, cap);
  if (!api->trusted.nallow || !api_addr_in(out, &api->trusted)) return;
  const char *xff = tt_http_header_get(req, "X-Forwarded-For");
  if (!xff) return;
  /* from the right: the first entry a trusted proxy did not write */
  const char *end = xff + strlen(xff);
  while (end > xff) {
    const char *start = end;
    while (start > xff && start[-1] != ',') start--;
    const char *a = start, *b = end;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    char ip[INET6_ADDRSTRLEN];
    uint8_t tmp[16];
    size_t n = (size_t)(b - a);
    if (n == 0 || n >= sizeof ip) return; /* garbage: keep the proxy's address */
    memcpy(ip, a, n);
    ip[n] = 0;
    if (to16(ip, tmp)) return;
    snprintf(out, cap, "%s", ip);
    if (!api_addr_in(ip, &api->trusted)) return;
    end = start > xff ? start - 1 : xff;
  }
}

static unsigned slot_of(const char *addr, int purpose) {
  unsigned h = 2166136261u ^ (unsigned)purpose;
  for (const char *p = addr; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  return h % RL_SLOTS;
}

int api_rate_take(const char *addr, int purpose, int64_t per_minute, uint64_t now_ms, int64_t *retry_after_s) {
  if (per_minute <= 0) return 1; /* 0: no limit */
  rl_slot *s = &slots_[slot_of(addr, purpose)];
  if (s->purpose != purpose || strcmp(s->addr, addr)) { /* a new client (or an evicted one) */
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->purpose = purpose;
    s->tokens = (double)per_minute;
    s->at_ms = now_ms;
  }
  double rate = (double)per_minute / 60000.0; /* tokens per ms */
  s->tokens += (double)(now_ms - s->at_ms) * rate;
  if (s->tokens > (double)per_minute) s->tokens = (double)per_minute;
  s->at_ms = now_ms;
  if (s->tokens >= 1.0) {
    s->tokens -= 1.0;
    return 1;
  }
  if (retry_after_s) *retry_after_s = (int64_t)((1.0 - s->tokens) / rate / 1000.0) + 1;
  return 0;
}

int api_rate_check(const char *addr, int purpose, int64_t per_minute, uint64_t now_ms, int64_t *retry_after_s) {
  if (per_minute <= 0) return 1;
  rl_slot *s = &slots_[slot_of(addr, purpose)];
  if (s->purpose != purpose || strcmp(s->addr, addr)) return 1;
  double rate = (double)per_minute / 60000.0;
  double t = s->tokens + (double)(now_ms - s->at_ms) * rate;
  if (t >= 1.0) return 1;
  if (retry_after_s) *retry_after_s = (int64_t)((1.0 - t) / rate / 1000.0) + 1;
  return 0;
}

void api_too_many(tt_http_req *req, int64_t retry_after_s, const char *what) {
  char ra[24];
  snprintf(ra, sizeof ra, "%lld", (long long)retry_after_s);
  tt_http_add_header(req, "Retry-After", tt_arena_strdup(req->arena, ra));
  api_problem(req, 429, "too-many-requests", what);
}
