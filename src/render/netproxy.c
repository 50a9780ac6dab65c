/* netproxy.c — the per-job HTTP forward proxy behind include/tintype/netproxy.h:
 * where DESIGN §5's network policy is enforced on what Chromium connects to.
 *
 * A connection moves HEAD -> RESOLVING -> CONNECTING -> SPLICE, or to LINGER
 * with an error answer. The head is read into one fixed buffer (its size is
 * the head limit) and parsed by llhttp in place, so every URL and header
 * span points into that buffer. The target is resolved here (IP literals
 * directly, names with uv_getaddrinfo), each address is put to
 * tt_netpolicy_check_sa() and only allowed ones are kept and connected to,
 * in order. Then bytes are spliced both ways, with a read side stopped
 * while the other side's write queue is above HIGH_WATER. A forwarded
 * http:// request keeps llhttp running over its body, so exactly one
 * request reaches the upstream server per client connection.
 *
 * Neighbours: netpolicy.c classifies addresses; the render job (with
 * cdp.c) points a browser context at this proxy's port. */
#include "tintype/netproxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/ports.h"

#define CHUNK ((size_t)64 * 1024)       /* one read from either side */
#define HIGH_WATER ((size_t)256 * 1024) /* stop reading a side once the other has this much queued */
#define LOW_WATER ((size_t)64 * 1024)   /* ... and read again below this */
#define LINGER_MS 1000                  /* read and discard after an error answer, then close */
#define REPLY_TIMEOUT_MS 5000           /* for an error answer to be written */
#define MAX_HEADERS 128                 /* header lines in a head; 431 beyond */
#define MAX_CANDIDATES 16               /* allowed addresses tried per request */
#define MAX_CONN_TOKENS 16              /* names listed in Connection: */
#define HARD_EXTRA_CONNS 16             /* beyond max_conns + this, close without answering */

typedef struct span {
  size_t off, len;
} span;

enum state { ST_HEAD, ST_RESOLVING, ST_CONNECTING, ST_SPLICE, ST_LINGER };

typedef struct pconn pconn;

/* one connect attempt; on the heap so a failed one can finish closing while
 * the next address is tried on a fresh handle */
typedef struct upstream {
  uv_tcp_t tcp;
  uv_connect_t creq;
  pconn *c;
} upstream;

/* a buffer read from one side and written to the other (or an answer) */
typedef struct wbuf {
  uv_write_t w;
  pconn *c;
  int to_up; /* written to upstream: a client read may be waiting on it */
  char data[];
} wbuf;

struct tt_netproxy {
  uv_loop_t *loop;
  const tt_netpolicy *policy;
  tt_netproxy_blocked_cb on_blocked;
  void *ud;
  tt_netproxy_limits lim;
  uv_tcp_t listener;
  int port;
  int closed, listener_open;
  pconn *conns;
  int nconns;
  tt_netproxy_stats stats;
  int deny_ports[4]; /* loopback ports never reached: the browser's DevTools, this proxy */
  int port_listed;   /* this proxy's port is in the machine-wide list (ports.h) */
  int ndeny;
  /* the hosts asked for since the last reset: where a warm context's
   * storage must be cleared (render.c) */
  struct {
    char host[256];
    int port, tunnel;
  } hosts[TT_NETPROXY_MAX_HOSTS];
  int nhosts, hosts_overflow;
};

struct pconn {
  tt_netproxy *p;
  pconn *prev, *next;
  uv_tcp_t cl;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  uv_shutdown_t cl_shut, up_shut;
  upstream *up;
  int refs; /* open handles (cl, timer, upstreams) + a pending getaddrinfo */
  int closing, gai_pending;
  enum state state;
  uint64_t last_active;
  /* the head, parsed in place */
  char *head;
  size_t hlen, hcap, head_end;
  llhttp_t parser;
  span url, hf[MAX_HEADERS], hv[MAX_HEADERS];
  int nh, field_open, value_open, head_done, too_many;
  /* the target */
  int is_connect;
  char host[256];
  int port;
  span authority; /* of an absolute-form URL, for Host: */
  span origin;    /* path and query of an absolute-form URL */
  struct sockaddr_storage cand[MAX_CANDIDATES];
  int ncand, icand;
  /* splice */
  int cl_paused, up_paused, cl_eof, up_eof, msg_done;
};

static void conn_close(pconn *c);
static void try_connect(pconn *c);
static void start_resolve(pconn *c);

/* ------------------------------------------------------------------ */
/* lifetime */

static void proxy_maybe_free(tt_netproxy *p) {
  if (p->closed && !p->listener_open && !p->conns) free(p);
}

static void conn_unref(pconn *c) {
  if (--c->refs > 0) return;
  tt_netproxy *p = c->p;
  if (c->prev)
    c->prev->next = c->next;
  else
    p->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  p->nconns--;
  free(c->head);
  free(c);
  proxy_maybe_free(p);
}

static void on_handle_closed(uv_handle_t *h) { conn_unref(h->data); }

static void on_upstream_closed(uv_handle_t *h) {
  upstream *u = h->data;
  pconn *c = u->c;
  free(u);
  conn_unref(c);
}

static void upstream_close(pconn *c) {
  if (!c->up) return;
  uv_close((uv_handle_t *)&c->up->tcp, on_upstream_closed);
  c->up = NULL;
}

static void conn_close(pconn *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai); /* its callback still runs and unrefs */
  upstream_close(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->cl, on_handle_closed);
}

static wbuf *wbuf_new(pconn *c, size_t n, int to_up) {
  wbuf *b = malloc(sizeof *b + n);
  if (!b) return NULL;
  b->c = c;
  b->to_up = to_up;
  b->w.data = b;
  return b;
}

static wbuf *wbuf_of(const uv_buf_t *buf) { return (wbuf *)(buf->base - offsetof(wbuf, data)); }

/* ------------------------------------------------------------------ */
/* error answers: write, send FIN, read and discard briefly, close (so the
 * kernel does not answer unread request bytes with a reset that destroys
 * the answer before the browser reads it) */

static char discard[4096];

static void discard_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(discard, sizeof discard);
}

static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0) conn_close(s->data);
}

static void on_timer(uv_timer_t *t);

static void timer_set(pconn *c, uint64_t ms) {
  if (!c->closing) uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_cl_shutdown_linger(uv_shutdown_t *r, int status) {
  pconn *c = r->data;
  if (status < 0) conn_close(c);
}

static void on_reply_written(uv_write_t *w, int status) {
  wbuf *b = w->data;
  pconn *c = b->c;
  free(b);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->cl_shut.data = c;
  if (uv_shutdown(&c->cl_shut, (uv_stream_t *)&c->cl, on_cl_shutdown_linger) < 0 ||
      uv_read_start((uv_stream_t *)&c->cl, discard_alloc, on_linger_read) < 0) {
    conn_close(c);
    return;
  }
  timer_set(c, LINGER_MS);
}

static const char *status_text(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

/* Answers status with a one-line text body and ends the connection. */
static void reply(pconn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(pconn *c, int status, const char *fmt, ...) {
  if (c->closing) return;
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai);
  upstream_close(c);
  c->state = ST_LINGER;
  uv_read_stop((uv_stream_t *)&c->cl);
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  int tn = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (tn < 0) tn = 0;
  if ((size_t)tn >= sizeof text) tn = sizeof text - 1;
  /* X-Tintype-Proxy marks the answer as the proxy's own: to a plain-http
   * request it is what the browser shows as the page, and the render engine
   * must not take it for the page's (it fails the job with this text) */
  char head[1024];
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                    "Connection: close\r\nServer: tintype-netproxy\r\nX-Tintype-Proxy: %.*s\r\n\r\n",
                    status, status_text(status), tn + 1, tn, text);
  wbuf *b = wbuf_new(c, (size_t)hn + (size_t)tn + 1, 0);
  if (!b) {
    conn_close(c);
    return;
  }
  memcpy(b->data, head, (size_t)hn);
  memcpy(b->data + hn, text, (size_t)tn);
  b->data[hn + tn] = '\n';
  uv_buf_t ub = uv_buf_init(b->data, (unsigned)(hn + tn + 1));
  if (uv_write(&b->w, (uv_stream_t *)&c->cl, &ub, 1, on_reply_written) < 0) {
    free(b);
    conn_close(c);
    return;
  }
  timer_set(c, REPLY_TIMEOUT_MS);
}

/* A refusal: count it, tell the job (which may close the whole proxy from
 * in there), then answer. */
static void block(pconn *c, int status, const char *ip, const char *why) {
  tt_netproxy *p = c->p;
  p->stats.blocked++;
  if (p->on_blocked && !p->closed) p->on_blocked(p->ud, c->host, c->port, ip, why);
  if (c->closing) return;
  if (!*ip)
    reply(c, status, "tintype: %s did not resolve", c->host);
  else if (!strcmp(why, "metadata"))
    reply(c, status, "tintype: %s is a cloud metadata address; renders never reach it", ip);
  else
    reply(c, status, "tintype: %s (%s) is not an address this render may connect to", ip, why);
}

static void on_timer(uv_timer_t *t) {
  pconn *c = t->data;
  if (c->closing) return;
  switch (c->state) {
    case ST_HEAD: reply(c, 408, "tintype: the proxy request head did not arrive in time"); break;
    case ST_RESOLVING:
    case ST_CONNECTING: reply(c, 504, "tintype: %s:%d did not answer in time", c->host, c->port); break;
    case ST_SPLICE: {
      uint64_t now = uv_now(c->p->loop), idle = (uint64_t)c->p->lim.idle_timeout_ms;
      if (now - c->last_active < idle) {
        timer_set(c, idle - (now - c->last_active));
        return;
      }
      conn_close(c);
      break;
    }
    case ST_LINGER: conn_close(c); break;
  }
}

/* ------------------------------------------------------------------ */
/* the head */

static int on_url(llhttp_t *ps, const char *at, size_t n) {
  pconn *c = ps->data;
  if (!c->url.len) c->url.off = (size_t)(at - c->head);
  c->url.len += n;
  return 0;
}

static int on_header_field(llhttp_t *ps, const char *at, size_t n) {
  pconn *c = ps->data;
  if (!c->field_open) {
    if (c->nh == MAX_HEADERS) {
      c->too_many = 1;
      return -1;
    }
    c->field_open = 1;
    c->hf[c->nh] = (span){(size_t)(at - c->head), 0};
    c->hv[c->nh] = (span){0, 0};
  }
  c->hf[c->nh].len += n;
  return 0;
}

static int on_header_field_complete(llhttp_t *ps) {
  ((pconn *)ps->data)->field_open = 0;
  return 0;
}

static int on_header_value(llhttp_t *ps, const char *at, size_t n) {
  pconn *c = ps->data;
  if (!c->value_open) {
    c->value_open = 1;
    c->hv[c->nh].off = (size_t)(at - c->head);
  }
  c->hv[c->nh].len += n;
  return 0;
}

static int on_header_value_complete(llhttp_t *ps) {
  pconn *c = ps->data;
  c->value_open = 0;
  c->nh++;
  return 0;
}

/* stop at the end of the head: nothing is forwarded before the target
 * has been checked and connected */
static int on_headers_complete(llhttp_t *ps) {
  ((pconn *)ps->data)->head_done = 1;
  return HPE_PAUSED;
}

/* stop at the end of a forwarded request: one request per connection */
static int on_message_complete(llhttp_t *ps) {
  ((pconn *)ps->data)->msg_done = 1;
  return HPE_PAUSED;
}

static llhttp_settings_t parser_settings;

static int span_is(const pconn *c, span s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && !strncasecmp(c->head + s.off, lit, n);
}

/* host[:port] or [v6][:port] -> host (an IPv6 literal without brackets)
 * and port; a missing port is default_port, or an error when that is 0. */
static int parse_authority(const char *s, size_t n, char *host, size_t cap, int default_port, int *port) {
  size_t i, hn;
  if (n == 0) return -1;
  if (s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (!rb) return -1;
    hn = (size_t)(rb - s) - 1;
    if (hn == 0 || hn >= cap) return -1;
    memcpy(host, s + 1, hn);
    host[hn] = 0;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) != 1) return -1; /* no zone ids */
    i = (size_t)(rb - s) + 1;
  } else {
    for (i = 0; i < n && s[i] != ':'; i++)
      if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_') return -1;
    hn = i;
    if (hn == 0 || hn > 253 || hn >= cap) return -1;
    memcpy(host, s, hn);
    host[hn] = 0;
  }
  if (i == n) {
    *port = default_port;
    return default_port ? 0 : -1;
  }
  if (s[i] != ':' || i + 1 == n || n - (i + 1) > 5) return -1;
  long v = 0;
  for (i++; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < 1 || v > 65535) return -1;
  *port = (int)v;
  return 0;
}

/* The request target: CONNECT authority or an absolute http:// URL.
 * NULL when fine, else what is wrong (answered with 400). */
static const char *parse_target(pconn *c) {
  const char *u = c->head + c->url.off;
  size_t n = c->url.len;
  if (c->parser.http_major != 1) return "only HTTP/1.x proxy requests are served";
  c->is_connect = llhttp_get_method(&c->parser) == HTTP_CONNECT;
  if (c->is_connect) {
    if (parse_authority(u, n, c->host, sizeof c->host, 0, &c->port)) return "CONNECT wants host:port";
    return NULL;
  }
  if (n >= 8 && !strncasecmp(u, "https://", 8))
    return "https:// is proxied through CONNECT, not in absolute form";
  if (n < 7 || strncasecmp(u, "http://", 7) != 0) {
    if (n && u[0] == '/') return "this is a proxy: the request target must be an absolute http:// URL";
    return "only http:// URLs are proxied (and CONNECT for the rest)";
  }
  size_t a = 7, e = a;
  while (e < n && u[e] != '/' && u[e] != '?' && u[e] != '#') e++;
  if (memchr(u + a, '@', e - a)) return "credentials in the URL are not proxied";
  if (parse_authority(u + a, e - a, c->host, sizeof c->host, 80, &c->port))
    return "bad host or port in the URL";
  c->authority = (span){c->url.off + a, e - a};
  size_t end = e;
  while (end < n && u[end] != '#') end++; /* a fragment is not sent */
  c->origin = (span){c->url.off + e, end - e};
  return NULL;
}

/* IPv4 text is read the way URL hosts are (and netpolicy.c reads it):
 * 2130706433, 0x7f000002, 0177.0.0.1 and 127.1 are addresses, not names. */
static int literal_addr(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (strchr(host, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) return 0;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    return 1;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  int dotted = strspn(host, "0123456789abcdefABCDEFxX.") == strlen(host);
  if (inet_pton(AF_INET, host, &s4->sin_addr) != 1 && !(dotted && inet_aton(host, &s4->sin_addr))) return 0;
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  return 1;
}

static void note_host(tt_netproxy *p, const char *host, int port, int tunnel) {
  for (int i = 0; i < p->nhosts; i++)
    if (p->hosts[i].port == port && p->hosts[i].tunnel == tunnel && !strcasecmp(p->hosts[i].host, host)) return;
  if (p->nhosts == TT_NETPROXY_MAX_HOSTS) {
    p->hosts_overflow = 1;
    return;
  }
  snprintf(p->hosts[p->nhosts].host, sizeof p->hosts[0].host, "%s", host);
  p->hosts[p->nhosts].port = port;
  p->hosts[p->nhosts].tunnel = tunnel;
  p->nhosts++;
}

static void head_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  pconn *c = h->data;
  *buf = uv_buf_init(c->head + c->hlen, (unsigned)(c->hcap - c->hlen));
}

static void on_head_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  pconn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) { /* the browser went away before asking anything */
    conn_close(c);
    return;
  }
  const char *at = c->head + c->hlen;
  c->hlen += (size_t)nread;
  enum llhttp_errno e = llhttp_execute(&c->parser, at, (size_t)nread);
  if (e == HPE_OK) {
    if (c->hlen >= c->hcap)
      reply(c, 431, "tintype: the proxy request head is larger than %zu bytes", c->hcap);
    return;
  }
  if (e != HPE_PAUSED || !c->head_done) {
    if (c->too_many)
      reply(c, 431, "tintype: more than %d header lines", MAX_HEADERS);
    else
      reply(c, 400, "tintype: malformed proxy request (%s)", llhttp_errno_name(e));
    return;
  }
  c->head_end = (size_t)(llhttp_get_error_pos(&c->parser) - c->head);
  uv_read_stop(s);
  const char *bad = parse_target(c);
  if (bad) {
    reply(c, 400, "tintype: %s", bad);
    return;
  }
  c->p->stats.requests++;
  note_host(c->p, c->host, c->port, c->is_connect);
  start_resolve(c);
}

/* ------------------------------------------------------------------ */
/* the policy: resolve, keep allowed addresses, remember the first refused */

static const char *verdict_why(tt_net_verdict v, const char *ip) {
  if (v == TT_NET_METADATA) return "metadata";
  if (v == TT_NET_INVALID) return "invalid";
  return tt_netpolicy_range_name(ip);
}

static void sa_ip(const struct sockaddr *sa, char *ip, size_t cap) {
  const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                            : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  if (!inet_ntop(sa->sa_family, a, ip, (socklen_t)cap)) snprintf(ip, cap, "?");
}

/* Adds sa to the candidates when the policy allows it; else records it as
 * the refusal to report if nothing is allowed. */
static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family != AF_INET6) return 0;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
  return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

/* A port tintype itself listens on, at an address the policy allows only
 * because an allow range opened it (loopback, private, ... — judged as the
 * IPv4 inside any IPv6 form, as the policy judges it): this proxy's own
 * list (the browser's DevTools port, itself) or any tintype process's on
 * the machine (ports.h: the API, other workers' DevTools, other proxies). */
static int internal_port(const pconn *c, const struct sockaddr *sa) {
  static const tt_netpolicy closed; /* the default policy: nothing opened */
  int opened = tt_netpolicy_check_sa(&closed, sa) != TT_NET_ALLOWED;
  if (!opened && !is_loopback(sa)) return 0;
  for (int i = 0; i < c->p->ndeny; i++)
    if (c->port == c->p->deny_ports[i]) return 1;
  return tt_ports_is_own(c->port);
}

static void consider(pconn *c, const struct sockaddr *sa, char *ref_ip, size_t ipcap, const char **ref_why) {
  tt_net_verdict v = tt_netpolicy_check_sa(c->p->policy, sa);
  if (v == TT_NET_ALLOWED && internal_port(c, sa)) {
    /* loopback may be open (tests, intranets), but never a port of
     * tintype's own: a page there could drive a browser (and so every
     * other job), read loopback-only /metrics, or loop through a proxy */
    if (!*ref_why) {
      sa_ip(sa, ref_ip, ipcap);
      *ref_why = "tintype-internal";
    }
    return;
  }
  if (v == TT_NET_ALLOWED) {
    if (c->ncand == MAX_CANDIDATES) return;
    size_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&c->cand[c->ncand++], sa, len);
    return;
  }
  if (*ref_why) return;
  sa_ip(sa, ref_ip, ipcap);
  *ref_why = verdict_why(v, ref_ip);
}

static void decide(pconn *c, const char *ref_ip, const char *ref_why) {
  if (c->ncand) {
    c->state = ST_CONNECTING;
    try_connect(c);
  } else if (ref_why) {
    block(c, 403, ref_ip, ref_why);
  } else {
    block(c, 502, "", "unresolvable"); /* resolved to nothing usable */
  }
}

static void on_resolved(uv_getaddrinfo_t *r, int status, struct addrinfo *res) {
  pconn *c = r->data;
  c->gai_pending = 0;
  if (c->closing || c->state != ST_RESOLVING) {
    uv_freeaddrinfo(res);
    conn_unref(c);
    return;
  }
  c->refs--; /* not the last: cl and timer still hold it */
  if (status < 0) {
    block(c, 502, "", "unresolvable");
    return;
  }
  char ip[INET6_ADDRSTRLEN] = "";
  const char *why = NULL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_addr && (ai->ai_family == AF_INET || ai->ai_family == AF_INET6))
      consider(c, ai->ai_addr, ip, sizeof ip, &why);
  uv_freeaddrinfo(res);
  decide(c, ip, why);
}

static void start_resolve(pconn *c) {
  c->state = ST_RESOLVING;
  /* the proxy log: every host a job's browser asked for, page or not */
  tt_buf *l = tt_log_begin(TT_LOG_DEBUG, "proxy request");
  if (l) {
    tt_log_cstr(l, "method", c->is_connect ? "CONNECT" : "GET");
    tt_log_cstr(l, "host", c->host);
    tt_log_int(l, "port", c->port);
    tt_log_end(l);
  }
  timer_set(c, (uint64_t)c->p->lim.connect_timeout_ms);
  struct sockaddr_storage ss;
  char ip[INET6_ADDRSTRLEN] = "";
  const char *why = NULL;
  if (literal_addr(c->host, c->port, &ss)) {
    consider(c, (struct sockaddr *)&ss, ip, sizeof ip, &why);
    decide(c, ip, why);
    return;
  }
  char service[8];
  snprintf(service, sizeof service, "%d", c->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_protocol = IPPROTO_TCP,
                           .ai_flags = AI_NUMERICSERV};
  c->gai.data = c;
  int r = uv_getaddrinfo(c->p->loop, &c->gai, on_resolved, c->host, service, &hints);
  if (r < 0) {
    reply(c, 502, "tintype: could not resolve %s (%s)", c->host, uv_strerror(r));
    return;
  }
  c->gai_pending = 1;
  c->refs++;
}

/* ------------------------------------------------------------------ */
/* splice */

/* a read from the browser becomes a write to upstream, and the reverse */
static void cl_chunk_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  wbuf *b = wbuf_new(h->data, CHUNK, 1);
  *buf = b ? uv_buf_init(b->data, CHUNK) : uv_buf_init(NULL, 0);
}

static void up_chunk_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  wbuf *b = wbuf_new(((upstream *)h->data)->c, CHUNK, 0);
  *buf = b ? uv_buf_init(b->data, CHUNK) : uv_buf_init(NULL, 0);
}

static uv_stream_t *cl_stream(pconn *c) { return (uv_stream_t *)&c->cl; }
static uv_stream_t *up_stream(pconn *c) { return (uv_stream_t *)&c->up->tcp; }

static void on_cl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_data_written(uv_write_t *w, int status) {
  wbuf *b = w->data;
  pconn *c = b->c;
  int to_up = b->to_up;
  free(b);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* the side that fed this queue may read again */
  if (to_up && c->cl_paused && up_stream(c)->write_queue_size <= LOW_WATER) {
    c->cl_paused = 0;
    if (uv_read_start(cl_stream(c), cl_chunk_alloc, on_cl_read) < 0) conn_close(c);
  } else if (!to_up && c->up_paused && cl_stream(c)->write_queue_size <= LOW_WATER) {
    c->up_paused = 0;
    if (uv_read_start(up_stream(c), up_chunk_alloc, on_up_read) < 0) conn_close(c);
  }
}

/* Writes n bytes of b (owned from here) to the other side. */
static int relay(pconn *c, wbuf *b, size_t n) {
  uv_stream_t *dst = b->to_up ? up_stream(c) : cl_stream(c);
  uv_buf_t ub = uv_buf_init(b->data, (unsigned)n);
  int r = uv_write(&b->w, dst, &ub, 1, on_data_written);
  if (r < 0) {
    free(b);
    return r;
  }
  if (b->to_up)
    c->p->stats.bytes_up += (int64_t)n;
  else
    c->p->stats.bytes_down += (int64_t)n;
  return 0;
}

static void on_up_shutdown(uv_shutdown_t *r, int status) {
  pconn *c = r->data;
  if (status < 0 && !c->closing) conn_close(c);
}

/* the upstream server is done: everything it sent reaches the browser,
 * then the connection ends (the browser opens a new one for more) */
static void on_cl_shutdown_done(uv_shutdown_t *r, int status) {
  (void)status;
  conn_close(r->data);
}

/* Client bytes of a forwarded request: how many belong to it (llhttp
 * frames the body). -1: malformed body or a second request (the browser
 * reusing a connection we did not offer to keep): the connection ends. */
static ssize_t frame(pconn *c, const char *data, size_t n) {
  if (c->is_connect) return (ssize_t)n;
  if (c->msg_done) return n ? -1 : 0;
  enum llhttp_errno e = llhttp_execute(&c->parser, data, n);
  if (e == HPE_OK) return (ssize_t)n;
  if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && c->msg_done) {
    size_t take = (size_t)(llhttp_get_error_pos(&c->parser) - data);
    return take < n ? -1 : (ssize_t)take;
  }
  return -1;
}

static void on_cl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pconn *c = s->data;
  if (nread <= 0) {
    if (buf->base) free(wbuf_of(buf));
    if (nread == 0) return;
    if (nread != UV_EOF) {
      conn_close(c);
      return;
    }
    c->cl_eof = 1; /* the browser half-closed: pass it on, keep relaying down */
    c->up_shut.data = c;
    if (uv_shutdown(&c->up_shut, up_stream(c), on_up_shutdown) < 0) conn_close(c);
    return;
  }
  wbuf *b = wbuf_of(buf);
  c->last_active = uv_now(c->p->loop);
  ssize_t take = frame(c, b->data, (size_t)nread);
  if (take < 0) {
    free(b);
    conn_close(c);
    return;
  }
  if (take == 0) {
    free(b);
    return;
  }
  if (relay(c, b, (size_t)take) < 0) {
    conn_close(c);
    return;
  }
  if (up_stream(c)->write_queue_size > HIGH_WATER) {
    uv_read_stop(s);
    c->cl_paused = 1;
  }
}

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pconn *c = ((upstream *)s->data)->c;
  if (nread <= 0) {
    if (buf->base) free(wbuf_of(buf));
    if (nread == 0) return;
    if (nread != UV_EOF) {
      conn_close(c);
      return;
    }
    c->up_eof = 1;
    uv_read_stop(cl_stream(c));
    c->cl_shut.data = c;
    if (uv_shutdown(&c->cl_shut, cl_stream(c), on_cl_shutdown_done) < 0) conn_close(c);
    return;
  }
  wbuf *b = wbuf_of(buf);
  c->last_active = uv_now(c->p->loop);
  if (relay(c, b, (size_t)nread) < 0) {
    conn_close(c);
    return;
  }
  if (cl_stream(c)->write_queue_size > HIGH_WATER) {
    uv_read_stop(s);
    c->up_paused = 1;
  }
}

/* Copies bytes into a fresh buffer and relays them (head, tunnel answer,
 * request bytes that came with the head). */
static int send_copy(pconn *c, int to_up, const char *data, size_t n) {
  if (!n) return 0;
  wbuf *b = wbuf_new(c, n, to_up);
  if (!b) return TT_ENOMEM;
  memcpy(b->data, data, n);
  if (!to_up) { /* our own answer, not upstream bytes */
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)n);
    int r = uv_write(&b->w, cl_stream(c), &ub, 1, on_data_written);
    if (r < 0) free(b);
    return r;
  }
  return relay(c, b, n);
}

static int is_hop_by_hop(const pconn *c, span name, const span *tokens, int ntok) {
  static const char *hop[] = {
      "connection", "proxy-connection", "keep-alive", "proxy-authorization", "upgrade", "te", "host"};
  for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
    if (span_is(c, name, hop[i])) return 1;
  /* the framing headers stay whatever Connection: names: the body is
   * forwarded as the browser framed it */
  if (span_is(c, name, "content-length") || span_is(c, name, "transfer-encoding")) return 0;
  for (int i = 0; i < ntok; i++)
    if (tokens[i].len == name.len && !strncasecmp(c->head + tokens[i].off, c->head + name.off, name.len))
      return 1;
  return 0;
}

/* The request as the upstream server gets it: origin form, Host from the
 * URL, hop-by-hop headers (and those Connection: names) dropped,
 * Connection: close. */
static int build_upstream_head(pconn *c, tt_buf *out) {
  span tokens[MAX_CONN_TOKENS];
  int ntok = 0;
  for (int i = 0; i < c->nh; i++) {
    if (!span_is(c, c->hf[i], "connection")) continue;
    const char *v = c->head + c->hv[i].off;
    size_t n = c->hv[i].len, j = 0;
    while (j < n && ntok < MAX_CONN_TOKENS) {
      while (j < n && (v[j] == ' ' || v[j] == '\t' || v[j] == ',')) j++;
      size_t st = j;
      while (j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t') j++;
      if (j > st) tokens[ntok++] = (span){c->hv[i].off + st, j - st};
    }
  }
  const char *origin = c->head + c->origin.off;
  int r = tt_buf_printf(out, "%s %s%.*s HTTP/%d.%d\r\nHost: %.*s\r\n", llhttp_method_name(c->parser.method),
                        (c->origin.len && origin[0] == '/') ? "" : "/", (int)c->origin.len, origin,
                        c->parser.http_major, c->parser.http_minor, (int)c->authority.len,
                        c->head + c->authority.off);
  for (int i = 0; i < c->nh && !r; i++) {
    if (is_hop_by_hop(c, c->hf[i], tokens, ntok)) continue;
    r = tt_buf_printf(out, "%.*s: %.*s\r\n", (int)c->hf[i].len, c->head + c->hf[i].off, (int)c->hv[i].len,
                      c->head + c->hv[i].off);
  }
  if (!r) r = tt_buf_puts(out, "Connection: close\r\n\r\n");
  return r;
}

static void start_splice(pconn *c) {
  static const char established[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
  c->state = ST_SPLICE;
  c->last_active = uv_now(c->p->loop);
  timer_set(c, (uint64_t)c->p->lim.idle_timeout_ms);
  uv_tcp_nodelay(&c->up->tcp, 1);
  const char *rest = c->head + c->head_end;
  size_t nrest = c->hlen - c->head_end;
  int r;
  if (c->is_connect) {
    r = send_copy(c, 0, established, sizeof established - 1);
    if (!r) r = send_copy(c, 1, rest, nrest);
  } else {
    tt_buf h = TT_BUF_INIT;
    r = build_upstream_head(c, &h);
    if (!r) r = send_copy(c, 1, h.data, h.len);
    tt_buf_free(&h);
    llhttp_resume(&c->parser);
    ssize_t take = r ? 0 : frame(c, rest, nrest); /* a GET completes here with nrest == 0 */
    if (take < 0)
      r = TT_EINVAL;
    else if (!r)
      r = send_copy(c, 1, rest, (size_t)take);
  }
  free(c->head); /* nothing points into it any more */
  c->head = NULL;
  if (r < 0 || uv_read_start(cl_stream(c), cl_chunk_alloc, on_cl_read) < 0 ||
      uv_read_start(up_stream(c), up_chunk_alloc, on_up_read) < 0)
    conn_close(c);
}

/* ------------------------------------------------------------------ */
/* connect: the allowed addresses in order, the next when one fails */

static void on_connected(uv_connect_t *req, int status) {
  upstream *u = req->data;
  pconn *c = u->c;
  if (c->closing || u != c->up) return; /* abandoned; its close is under way */
  if (status < 0) {
    upstream_close(c);
    try_connect(c);
    return;
  }
  start_splice(c);
}

static void try_connect(pconn *c) {
  while (c->icand < c->ncand) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->cand[c->icand++];
    upstream *u = calloc(1, sizeof *u);
    if (!u) break;
    u->c = c;
    if (uv_tcp_init(c->p->loop, &u->tcp) < 0) {
      free(u);
      break;
    }
    u->tcp.data = u;
    u->creq.data = u;
    c->refs++;
    c->up = u;
    if (uv_tcp_connect(&u->creq, &u->tcp, sa, on_connected) == 0) return;
    upstream_close(c);
  }
  reply(c, 502, "tintype: no allowed address of %s:%d accepted a connection", c->host, c->port);
}

/* ------------------------------------------------------------------ */
/* accept */

static void on_connection(uv_stream_t *server, int status) {
  tt_netproxy *p = server->data;
  if (status < 0 || p->closed) return;
  /* (without memory the connection is not taken and libuv stops accepting:
   * the job then ends on its own timeout) */
  pconn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->p = p;
  if (uv_tcp_init(p->loop, &c->cl) < 0 || uv_timer_init(p->loop, &c->timer) < 0) {
    free(c); /* neither can fail on a live loop; nothing to close */
    return;
  }
  c->cl.data = c->timer.data = c;
  c->refs = 2;
  c->next = p->conns;
  if (p->conns) p->conns->prev = c;
  p->conns = c;
  p->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->cl) < 0 || p->nconns > p->lim.max_conns + HARD_EXTRA_CONNS) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->cl, 1);
  if (p->nconns > p->lim.max_conns) {
    reply(c, 503, "tintype: more than %d proxy connections are open", p->lim.max_conns);
    return;
  }
  c->hcap = p->lim.max_head;
  c->head = malloc(c->hcap);
  if (!c->head) {
    reply(c, 503, "tintype: out of memory");
    return;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  c->state = ST_HEAD;
  timer_set(c, (uint64_t)p->lim.head_timeout_ms);
  if (uv_read_start((uv_stream_t *)&c->cl, head_alloc, on_head_read) < 0) conn_close(c);
}

/* ------------------------------------------------------------------ */
/* public */

void tt_netproxy_limits_default(tt_netproxy_limits *l) {
  l->max_head = TT_NETPROXY_MAX_HEAD;
  l->max_conns = TT_NETPROXY_MAX_CONNS;
  l->head_timeout_ms = TT_NETPROXY_HEAD_TIMEOUT_MS;
  l->connect_timeout_ms = TT_NETPROXY_CONNECT_TIMEOUT_MS;
  l->idle_timeout_ms = TT_NETPROXY_IDLE_TIMEOUT_MS;
}

int tt_netproxy_set_limits(tt_netproxy *p, const tt_netproxy_limits *l) {
  if (l->max_head < 1024 || l->max_head > 1024 * 1024 || l->max_conns <= 0 || l->head_timeout_ms <= 0 ||
      l->connect_timeout_ms <= 0 || l->idle_timeout_ms <= 0)
    return TT_EINVAL;
  p->lim = *l;
  return TT_OK;
}

static void on_listener_closed(uv_handle_t *h) {
  tt_netproxy *p = h->data;
  p->listener_open = 0;
  proxy_maybe_free(p);
}

int tt_netproxy_start(uv_loop_t *loop, const tt_netpolicy *policy, tt_netproxy_blocked_cb on_blocked,
                      void *ud, tt_netproxy **out) {
  if (!loop || !policy || !out) return TT_EINVAL;
  if (!parser_settings.on_headers_complete) {
    llhttp_settings_init(&parser_settings);
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_field_complete = on_header_field_complete;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_header_value_complete = on_header_value_complete;
    parser_settings.on_message_complete = on_message_complete;
    parser_settings.on_headers_complete = on_headers_complete;
  }
  tt_netproxy *p = calloc(1, sizeof *p);
  if (!p) return TT_ENOMEM;
  p->loop = loop;
  p->policy = policy;
  p->on_blocked = on_blocked;
  p->ud = ud;
  tt_netproxy_limits_default(&p->lim);
  int r = uv_tcp_init(loop, &p->listener);
  if (r < 0) {
    free(p);
    return r;
  }
  p->listener.data = p;
  p->listener_open = 1;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  r = uv_tcp_bind(&p->listener, (const struct sockaddr *)&sa, 0);
  if (!r) r = uv_listen((uv_stream_t *)&p->listener, 128, on_connection);
  if (!r) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    r = uv_tcp_getsockname(&p->listener, (struct sockaddr *)&ss, &len);
    if (!r) {
      p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      p->deny_ports[p->ndeny++] = p->port; /* a request for itself would loop */
      p->port_listed = tt_ports_add(p->port) == TT_OK; /* and no other job's page may use it */
    }
  }
  if (r < 0) {
    p->closed = 1;
    uv_close((uv_handle_t *)&p->listener, on_listener_closed); /* freed on the loop */
    return r;
  }
  *out = p;
  return TT_OK;
}

void tt_netproxy_deny_local_port(tt_netproxy *p, int port) {
  if (p->ndeny < (int)(sizeof p->deny_ports / sizeof p->deny_ports[0])) p->deny_ports[p->ndeny++] = port;
}

int tt_netproxy_port(const tt_netproxy *p) { return p->port; }

void tt_netproxy_stats_get(const tt_netproxy *p, tt_netproxy_stats *s) { *s = p->stats; }

int tt_netproxy_hosts(const tt_netproxy *p, tt_netproxy_host_cb cb, void *ud) {
  for (int i = 0; i < p->nhosts; i++) cb(ud, p->hosts[i].host, p->hosts[i].port, p->hosts[i].tunnel);
  return p->hosts_overflow ? TT_ETOOBIG : TT_OK;
}

void tt_netproxy_reset(tt_netproxy *p, tt_netproxy_blocked_cb on_blocked, void *ud) {
  for (pconn *c = p->conns; c; c = c->next) conn_close(c);
  memset(&p->stats, 0, sizeof p->stats);
  p->nhosts = p->hosts_overflow = 0;
  p->on_blocked = on_blocked;
  p->ud = ud;
}

void tt_netproxy_rebind(tt_netproxy *p, tt_netproxy_blocked_cb on_blocked, void *ud) {
  p->on_blocked = on_blocked;
  p->ud = ud;
}

void tt_netproxy_close(tt_netproxy *p) {
  if (!p || p->closed) return;
  p->closed = 1;
  if (p->port_listed) tt_ports_remove(p->port);
  uv_close((uv_handle_t *)&p->listener, on_listener_closed);
  for (pconn *c = p->conns; c; c = c->next) conn_close(c);
}
