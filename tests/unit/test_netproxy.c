/* test_netproxy.c — the SSRF proxy end to end on loopback: two upstream
 * HTTP servers (127.0.0.1 and 127.0.0.2) and four proxies on one libuv loop
 * (the main thread), and a client thread (libcurl and raw sockets) asking
 * through them: allowed and refused targets in every spelling, CONNECT
 * tunnels, bodies, 8 MB and 64 MB responses (backpressure), every limit,
 * and a close with connections open (LeakSanitizer in the -asan build).
 *
 * No packet leaves 127.0.0.0/8: connect() is interposed here, refuses any
 * other address and records every attempt, so the checks can also prove
 * that a refused address was never even tried. getaddrinfo() is interposed
 * for a few *.test names (several addresses, ::1 first, a metadata address,
 * no such name, a slow answer) so names are tested without DNS, and
 * 127.0.0.9 is a black hole (its socket becomes a pipe that never turns
 * writable) for the connect timeout. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/netpolicy.h"
#include "tintype/netproxy.h"
#include "tt_test.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------ */
/* the guards: connect() and getaddrinfo() */

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
typedef void (*fai_fn)(struct addrinfo *);
static connect_fn real_connect;
static gai_fn real_gai;
static fai_fn real_fai;

#define MAX_ATTEMPTS 4096
static struct {
  char ip[INET6_ADDRSTRLEN];
  int port;
} attempts[MAX_ATTEMPTS];
static int nattempts, outside_attempts, holes[16], nholes;

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len) {
  const struct sockaddr *sa = *(const struct sockaddr *const *)&addr; /* plain pointer or transparent union */
  if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port, inside = 0;
    if (sa->sa_family == AF_INET) {
      const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
      inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
      port = ntohs(s4->sin_port);
      inside = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
      inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
      port = ntohs(s6->sin6_port);
    }
    pthread_mutex_lock(&mu);
    if (nattempts < MAX_ATTEMPTS) {
      snprintf(attempts[nattempts].ip, sizeof attempts[0].ip, "%s", ip);
      attempts[nattempts++].port = port;
    }
    if (!inside) outside_attempts++;
    pthread_mutex_unlock(&mu);
    if (!inside) {
      errno = ENETUNREACH;
      return -1;
    }
    if (!strcmp(ip, "127.0.0.9")) { /* black hole: connecting forever */
      int pp[2];
      if (pipe(pp) == 0) {
        dup2(pp[0], fd);
        close(pp[0]);
        pthread_mutex_lock(&mu);
        if (nholes < 16)
          holes[nholes++] = pp[1];
        else
          close(pp[1]);
        pthread_mutex_unlock(&mu);
        errno = EINPROGRESS;
        return -1;
      }
    }
  }
  return real_connect(fd, sa, len);
}

static int attempts_to(const char *ip, int port) {
  int n = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nattempts; i++)
    if (!strcmp(attempts[i].ip, ip) && (port < 0 || attempts[i].port == port)) n++;
  pthread_mutex_unlock(&mu);
  return n;
}

static char FAKE[] = "fake";

static struct addrinfo *fake_ai(const char *ip, int port, struct addrinfo *next) {
  struct block {
    struct addrinfo ai;
    struct sockaddr_storage ss;
  } *b = calloc(1, sizeof *b);
  if (!b) abort();
  b->ai.ai_socktype = SOCK_STREAM;
  b->ai.ai_protocol = IPPROTO_TCP;
  b->ai.ai_canonname = FAKE; /* ours: freeaddrinfo below frees it */
  b->ai.ai_addr = (struct sockaddr *)&b->ss;
  b->ai.ai_next = next;
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&b->ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &s6->sin6_addr);
    b->ai.ai_family = AF_INET6;
    b->ai.ai_addrlen = sizeof *s6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&b->ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s4->sin_addr);
    b->ai.ai_family = AF_INET;
    b->ai.ai_addrlen = sizeof *s4;
  }
  return &b->ai;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  size_t n = node ? strlen(node) : 0;
  if (n > 5 && !strcmp(node + n - 5, ".test")) {
    int port = service ? atoi(service) : 0;
    if (!strcmp(node, "two.test")) { /* denied, allowed but refusing, allowed and listening */
      *res = fake_ai("127.0.0.2", port, fake_ai("127.0.0.3", port, fake_ai("127.0.0.1", port, NULL)));
    } else if (!strcmp(node, "six.test")) {
      *res = fake_ai("::1", port, fake_ai("127.0.0.1", port, NULL));
    } else if (!strcmp(node, "meta.test")) {
      *res = fake_ai("169.254.169.254", port, NULL);
    } else if (!strcmp(node, "slow.test")) {
      usleep(1500 * 1000);
      *res = fake_ai("127.0.0.2", port, NULL);
    } else {
      return EAI_NONAME;
    }
    return 0;
  }
  return real_gai(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai) {
  if (ai && ai->ai_canonname == FAKE) {
    while (ai) {
      struct addrinfo *next = ai->ai_next;
      free(ai);
      ai = next;
    }
    return;
  }
  real_fai(ai);
}

/* ------------------------------------------------------------------ */
/* upstream servers (loop thread) */

static uint8_t pat(uint64_t i) { return (uint8_t)(i * 131 + (i >> 12)); }

#define SCHUNK (64 * 1024)

typedef struct srv srv;
typedef struct sconn {
  uv_tcp_t tcp;
  srv *s;
  struct sconn *prev, *next;
  tt_buf in, out;
  int nreq, keep, closing;
  uint64_t big_left, big_sent, start;
  int mark, marked;
  uv_write_t w;
  uv_shutdown_t sh;
  char chunk[SCHUNK];
} sconn;

struct srv {
  uv_tcp_t tcp;
  char ip[32];
  int port;
  int accepted, requests;
  char last_head[8192];
  tt_buf last_body;
  sconn *conns;
};

static srv srv1, srv2;
static int second_requests;       /* a request after the first on one upstream connection */
static uint64_t sent_at_mark = 0; /* bytes the 64 MB response had written after 500 ms */

static void sconn_freed(uv_handle_t *h) {
  sconn *k = h->data;
  if (k->prev)
    k->prev->next = k->next;
  else
    k->s->conns = k->next;
  if (k->next) k->next->prev = k->prev;
  tt_buf_free(&k->in);
  tt_buf_free(&k->out);
  free(k);
}

static void sconn_close(sconn *k) {
  if (k->closing) return;
  k->closing = 1;
  uv_close((uv_handle_t *)&k->tcp, sconn_freed);
}

static void on_sshut(uv_shutdown_t *r, int status) {
  (void)status;
  sconn_close(r->data);
}

static void swrite_next(sconn *k);

static void on_swritten(uv_write_t *w, int status) {
  sconn *k = w->data;
  if (k->closing) return;
  if (status < 0) {
    sconn_close(k);
    return;
  }
  if (k->mark && !k->marked && (uv_now(k->tcp.loop) - k->start >= 500 || !k->big_left)) {
    k->marked = 1;
    pthread_mutex_lock(&mu);
    sent_at_mark = k->big_sent;
    pthread_mutex_unlock(&mu);
  }
  if (k->big_left) {
    swrite_next(k);
    return;
  }
  if (k->keep) return;
  k->sh.data = k;
  if (uv_shutdown(&k->sh, (uv_stream_t *)&k->tcp, on_sshut) < 0) sconn_close(k);
}

static void swrite_next(sconn *k) {
  size_t n = k->big_left < SCHUNK ? (size_t)k->big_left : SCHUNK;
  for (size_t i = 0; i < n; i++) k->chunk[i] = (char)pat(k->big_sent + i);
  k->big_sent += n;
  k->big_left -= n;
  uv_buf_t b = uv_buf_init(k->chunk, (unsigned)n);
  k->w.data = k;
  if (uv_write(&k->w, (uv_stream_t *)&k->tcp, &b, 1, on_swritten) < 0) sconn_close(k);
}

static void srespond(sconn *k, const char *body, size_t n, int keep) {
  tt_buf_reset(&k->out);
  tt_buf_printf(&k->out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n", n,
                keep ? "" : "Connection: close\r\n");
  tt_buf_append(&k->out, body, n);
  k->keep = keep;
  uv_buf_t b = uv_buf_init(k->out.data, (unsigned)k->out.len);
  k->w.data = k;
  if (uv_write(&k->w, (uv_stream_t *)&k->tcp, &b, 1, on_swritten) < 0) sconn_close(k);
}

static void salloc(uv_handle_t *h, size_t sug, uv_buf_t *b) {
  (void)h;
  b->base = malloc(sug);
  b->len = b->base ? sug : 0;
}

/* one request: the head, then a Content-Length or chunked body */
static void sread(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  sconn *k = st->data;
  if (nread > 0) tt_buf_append(&k->in, b->base, (size_t)nread);
  free(b->base);
  if (nread < 0) {
    sconn_close(k);
    return;
  }
  if (!k->in.len) return;
  char *he = strstr(k->in.data, "\r\n\r\n");
  if (!he) return;
  size_t hl = (size_t)(he - k->in.data) + 4, bl = k->in.len - hl;
  const char *cl = strcasestr(k->in.data, "\ncontent-length:");
  const char *te = strcasestr(k->in.data, "\ntransfer-encoding: chunked");
  if (cl && cl < he && bl < (size_t)atol(cl + 16)) return;
  if (te && te < he && (bl < 5 || memcmp(k->in.data + k->in.len - 5, "0\r\n\r\n", 5))) return;
  srv *s = k->s;
  if (k->nreq++) { /* a second request on this connection */
    pthread_mutex_lock(&mu);
    second_requests++;
    pthread_mutex_unlock(&mu);
    sconn_close(k);
    return;
  }
  pthread_mutex_lock(&mu);
  s->requests++;
  snprintf(s->last_head, sizeof s->last_head, "%.*s", (int)hl, k->in.data);
  tt_buf_reset(&s->last_body);
  tt_buf_append(&s->last_body, k->in.data + hl, bl);
  pthread_mutex_unlock(&mu);
  const char *path = strchr(k->in.data, ' ') + 1;
  char hello[64];
  if (!strncmp(path, "/echo ", 6)) {
    tt_buf body = TT_BUF_INIT;
    tt_buf_append(&body, k->in.data + hl, bl);
    srespond(k, body.data ? body.data : "", body.len, 0);
    tt_buf_free(&body);
  } else if (!strncmp(path, "/big?n=", 7)) {
    k->big_left = strtoull(path + 7, NULL, 10);
    k->mark = strncmp(strchr(path, ' ') - 7, "&mark=1", 7) == 0;
    k->start = uv_now(st->loop);
    tt_buf_reset(&k->out);
    tt_buf_printf(&k->out, "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nConnection: close\r\n\r\n",
                  (unsigned long long)k->big_left);
    uv_buf_t hb = uv_buf_init(k->out.data, (unsigned)k->out.len);
    k->w.data = k;
    if (uv_write(&k->w, st, &hb, 1, on_swritten) < 0) sconn_close(k);
  } else {
    snprintf(hello, sizeof hello, "hello from %s", s->ip);
    srespond(k, hello, strlen(hello), !strncmp(path, "/keepalive ", 11));
  }
  tt_buf_reset(&k->in);
}

static void saccept(uv_stream_t *l, int status) {
  srv *s = l->data;
  if (status < 0) return;
  sconn *k = calloc(1, sizeof *k);
  if (!k) abort();
  k->s = s;
  uv_tcp_init(l->loop, &k->tcp);
  k->tcp.data = k;
  k->next = s->conns;
  if (s->conns) s->conns->prev = k;
  s->conns = k;
  if (uv_accept(l, (uv_stream_t *)&k->tcp) < 0) {
    sconn_close(k);
    return;
  }
  pthread_mutex_lock(&mu);
  s->accepted++;
  pthread_mutex_unlock(&mu);
  uv_read_start((uv_stream_t *)&k->tcp, salloc, sread);
}

static int srv_start(uv_loop_t *loop, srv *s, const char *ip) {
  struct sockaddr_in sa;
  snprintf(s->ip, sizeof s->ip, "%s", ip);
  uv_ip4_addr(ip, 0, &sa);
  uv_tcp_init(loop, &s->tcp);
  s->tcp.data = s;
  int r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0);
  if (!r) r = uv_listen((uv_stream_t *)&s->tcp, 128, saccept);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (!r) r = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
  if (!r) s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return r;
}

static void srv_close(srv *s) {
  uv_close((uv_handle_t *)&s->tcp, NULL);
  for (sconn *k = s->conns; k; k = k->next) sconn_close(k);
}

static int srv_get(srv *s, int *requests) {
  pthread_mutex_lock(&mu);
  int a = s->accepted;
  if (requests) *requests = s->requests;
  pthread_mutex_unlock(&mu);
  return a;
}

/* ------------------------------------------------------------------ */
/* proxies (loop thread) and what they report */

enum { PX, PX2, PXALL, PXLIM, PXSELF, PXDENY, NPX }; /* PXSELF closes itself from on_blocked; PXDENY refuses srv1's port */
static tt_netproxy *px[NPX];
static int pport[NPX];
static tt_netpolicy pol[NPX];
static tt_netproxy_stats final_stats[NPX];
static int closing_all, blocked_after_close;

typedef struct brec {
  int tag, port;
  char host[256], ip[64], why[32];
} brec;
static brec blocks[256];
static int nblocks;

static void on_blocked(void *ud, const char *host, int port, const char *ip, const char *why) {
  pthread_mutex_lock(&mu);
  if (closing_all) blocked_after_close++;
  if (nblocks < 256) {
    brec *b = &blocks[nblocks++];
    b->tag = (int)(intptr_t)ud;
    b->port = port;
    snprintf(b->host, sizeof b->host, "%s", host);
    snprintf(b->ip, sizeof b->ip, "%s", ip);
    snprintf(b->why, sizeof b->why, "%s", why);
  }
  pthread_mutex_unlock(&mu);
  if ((intptr_t)ud == PXSELF && px[PXSELF]) {
    tt_netproxy_close(px[PXSELF]); /* from inside the callback: allowed */
    px[PXSELF] = NULL;
  }
}

static int nblocked(void) {
  pthread_mutex_lock(&mu);
  int n = nblocks;
  pthread_mutex_unlock(&mu);
  return n;
}

/* the refusal reported since `before`, when exactly one was */
static brec last_block(int before) {
  brec b = {.tag = -1};
  pthread_mutex_lock(&mu);
  if (nblocks == before + 1) b = blocks[before];
  pthread_mutex_unlock(&mu);
  return b;
}

static uv_async_t done_async;

static void on_done(uv_async_t *a) {
  (void)a;
  pthread_mutex_lock(&mu);
  closing_all = 1;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < NPX; i++) {
    if (!px[i]) continue;
    tt_netproxy_stats_get(px[i], &final_stats[i]);
    tt_netproxy_close(px[i]); /* with connections open: a tunnel, a half head, a slow lookup */
  }
  srv_close(&srv1);
  srv_close(&srv2);
  uv_close((uv_handle_t *)&done_async, NULL);
}

/* ------------------------------------------------------------------ */
/* the client (its own thread) */

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, tt_buf *out) {
  char b[16384];
  ssize_t r;
  while ((r = recv(fd, b, sizeof b, 0)) > 0) tt_buf_append(out, b, (size_t)r);
}

static int status_of(const tt_buf *b) {
  return b->len > 12 && !strncmp(b->data, "HTTP/1.1 ", 9) ? atoi(b->data + 9) : -1;
}

static const char *body_of(const tt_buf *b) {
  const char *e = b->data ? strstr(b->data, "\r\n\r\n") : NULL;
  return e ? e + 4 : "";
}

/* one raw request; the whole answer (the proxy closes after it) */
static int raw_req(int port, const char *req, size_t n, tt_buf *out) {
  tt_buf_reset(out);
  int fd = raw_connect(port);
  if (fd < 0) return -1;
  send_all(fd, req, n);
  read_all(fd, out);
  close(fd);
  return status_of(out);
}

static int raw_reqf(int port, tt_buf *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int raw_reqf(int port, tt_buf *out, const char *fmt, ...) {
  char req[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(req, sizeof req, fmt, ap);
  va_end(ap);
  return raw_req(port, req, (size_t)n, out);
}

typedef struct cresp {
  CURLcode res;
  long code, connect_code;
  tt_buf body;
} cresp;

static size_t on_curl_body(char *p, size_t sz, size_t n, void *ud) {
  tt_buf_append(ud, p, sz * n);
  return sz * n;
}

static void curl_do(int pport_, const char *url, int tunnel, const char *post, size_t postlen,
                    struct curl_slist *hdrs, cresp *r) {
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", pport_);
  tt_buf_reset(&r->body);
  r->code = r->connect_code = 0;
  CURL *h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROXY, proxy);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "");
  curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, (long)tunnel);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (hdrs) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  if (hdrs) curl_easy_setopt(h, CURLOPT_PROXYUSERPWD, "job:secret");
  if (post) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)postlen);
  }
  r->res = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
  curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &r->connect_code);
  curl_easy_cleanup(h);
}

static int is_pattern(const char *p, size_t n, uint64_t off) {
  for (size_t i = 0; i < n; i++)
    if ((uint8_t)p[i] != pat(off + i)) return 0;
  return 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int held_fds[8], nheld;

static void *client(void *arg) {
  (void)arg;
  int P = pport[PX], A = srv1.port, B = srv2.port, b0, r1, r2;
  char url[256];
  cresp r = {0};
  tt_buf out = TT_BUF_INIT;
  brec br;

  /* 1. an allowed target: 200, its body, the request as the server got it */
  struct curl_slist *hdrs = curl_slist_append(NULL, "X-Test: kept");
  hdrs = curl_slist_append(hdrs, "Proxy-Connection: keep-alive");
  hdrs = curl_slist_append(hdrs, "Keep-Alive: timeout=5");
  snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", A);
  curl_do(P, url, 0, NULL, 0, hdrs, &r);
  curl_slist_free_all(hdrs);
  CHECK_INT(r.res, CURLE_OK);
  CHECK_INT(r.code, 200);
  CHECK_STR(r.body.data, "hello from 127.0.0.1");
  pthread_mutex_lock(&mu);
  char head[8192];
  snprintf(head, sizeof head, "%s", srv1.last_head);
  pthread_mutex_unlock(&mu);
  char want[128];
  snprintf(want, sizeof want, "GET /ok HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", A);
  CHECK(!strncmp(head, want, strlen(want)));
  CHECK(strstr(head, "\r\nX-Test: kept\r\n") != NULL);
  CHECK(strstr(head, "\r\nConnection: close\r\n\r\n") != NULL);
  CHECK(strcasestr(head, "proxy-") == NULL); /* Proxy-Connection, Proxy-Authorization */
  CHECK(strcasestr(head, "keep-alive") == NULL);

  /* 2. 127.0.0.2 (loopback, not allowed): 403, reported, never connected to */
  b0 = nblocked();
  snprintf(url, sizeof url, "http://127.0.0.2:%d/", B);
  curl_do(P, url, 0, NULL, 0, NULL, &r);
  CHECK_INT(r.code, 403);
  CHECK(strstr(r.body.data ? r.body.data : "", "loopback") != NULL);
  br = last_block(b0);
  CHECK_INT(br.tag, PX);
  CHECK_STR(br.host, "127.0.0.2");
  CHECK_INT(br.port, B);
  CHECK_STR(br.ip, "127.0.0.2");
  CHECK_STR(br.why, "loopback");
  CHECK_INT(srv_get(&srv2, NULL), 0);

  /* 3. CONNECT to it: 403, no connection */
  b0 = nblocked();
  curl_do(P, url, 1, NULL, 0, NULL, &r);
  CHECK(r.res != CURLE_OK);
  CHECK_INT(r.connect_code, 403);
  CHECK_STR(last_block(b0).why, "loopback");
  CHECK_INT(srv_get(&srv2, NULL), 0);

  /* 4. CONNECT to the allowed server: a request through the tunnel */
  srv_get(&srv1, &r1);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", A);
  curl_do(P, url, 1, NULL, 0, NULL, &r);
  CHECK_INT(r.res, CURLE_OK);
  CHECK_INT(r.connect_code, 200);
  CHECK_INT(r.code, 200);
  CHECK_STR(r.body.data, "hello from 127.0.0.1");
  srv_get(&srv1, &r2);
  CHECK_INT(r2, r1 + 1);
  pthread_mutex_lock(&mu);
  CHECK(!strncmp(srv1.last_head, "GET /ok HTTP/1.1\r\n", 18)); /* the browser's own bytes, untouched */
  pthread_mutex_unlock(&mu);

  /* 5. names: localhost (the real resolver), and ::1 listed first (denied,
   * never tried), and denied / refusing / allowed in that order */
  snprintf(url, sizeof url, "http://localhost:%d/ok", A);
  curl_do(P, url, 0, NULL, 0, NULL, &r);
  CHECK_INT(r.code, 200);
  CHECK_STR(r.body.data, "hello from 127.0.0.1");
  CHECK_INT(raw_reqf(P, &out, "GET http://six.test:%d/ok HTTP/1.1\r\nHost: six.test\r\n\r\n", A), 200);
  CHECK_STR(body_of(&out), "hello from 127.0.0.1");
  CHECK_INT(attempts_to("::1", -1), 0);
  b0 = nblocked();
  CHECK_INT(raw_reqf(pport[PX2], &out, "GET http://two.test:%d/ok HTTP/1.1\r\nHost: two.test\r\n\r\n", A),
            200);
  CHECK_STR(body_of(&out), "hello from 127.0.0.1");
  CHECK_INT(attempts_to("127.0.0.3", A), 1); /* allowed, refused the connection: the next one was tried */
  CHECK_INT(attempts_to("127.0.0.2", -1), 0);
  CHECK_INT(nblocked(), b0); /* something was allowed: not a refusal */

  /* 6. metadata: refused before any connect, even by a proxy that allows everything */
  b0 = nblocked();
  curl_do(P, "http://169.254.169.254/latest/meta-data/", 0, NULL, 0, NULL, &r);
  CHECK_INT(r.code, 403);
  br = last_block(b0);
  CHECK_STR(br.ip, "169.254.169.254");
  CHECK_STR(br.why, "metadata");
  CHECK_INT(br.port, 80);
  int pa = pport[PXALL];
  const char *meta_reqs[] = {
      "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://meta.test/ HTTP/1.1\r\nHost: meta.test\r\n\r\n",
      "GET http://[::ffff:169.254.169.254]/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://2852039166/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT [fd00:ec2::254]:80 HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof meta_reqs / sizeof meta_reqs[0]; i++) {
    b0 = nblocked();
    CHECK_INT(raw_req(pa, meta_reqs[i], strlen(meta_reqs[i]), &out), 403);
    br = last_block(b0);
    CHECK_INT(br.tag, PXALL);
    CHECK_STR(br.why, "metadata");
  }
  CHECK_INT(attempts_to("169.254.169.254", -1), 0);
  CHECK_INT(attempts_to("fd00:ec2::254", -1), 0);

  /* 7. other spellings of IPv4 hosts are the address they name */
  b0 = nblocked();
  CHECK_INT(raw_reqf(P, &out, "GET http://2130706434:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", B), 403);
  CHECK_STR(last_block(b0).ip, "127.0.0.2");
  b0 = nblocked();
  CHECK_INT(raw_reqf(P, &out, "CONNECT 0x7f000002:%d HTTP/1.1\r\nHost: x\r\n\r\n", B), 403);
  br = last_block(b0);
  CHECK_STR(br.host, "0x7f000002");
  CHECK_STR(br.ip, "127.0.0.2");
  CHECK_STR(br.why, "loopback");
  b0 = nblocked();
  CHECK_INT(raw_reqf(P, &out, "GET http://[::ffff:127.0.0.2]:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", B), 403);
  br = last_block(b0);
  CHECK_STR(br.host, "::ffff:127.0.0.2");
  CHECK_STR(br.why, "loopback");
  b0 = nblocked();
  CHECK_INT(raw_reqf(P, &out, "GET http://[::1]:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", A), 403);
  CHECK_STR(last_block(b0).ip, "::1");
  CHECK_INT(srv_get(&srv2, NULL), 0);
  CHECK_INT(attempts_to("127.0.0.2", -1), 0);
  CHECK_INT(attempts_to("::1", -1), 0);
  CHECK_INT(raw_reqf(P, &out, "GET http://0x7f000001:%d/ok HTTP/1.1\r\nHost: x\r\n\r\n", A), 200);
  CHECK_STR(body_of(&out), "hello from 127.0.0.1");
  CHECK_INT(raw_reqf(P, &out, "GET http://127.1:%d/ok HTTP/1.1\r\nHost: x\r\n\r\n", A), 200);

  /* 8. a name that does not resolve: 502, reported as unresolvable */
  b0 = nblocked();
  CHECK_INT(raw_reqf(P, &out, "GET http://nx.test/ HTTP/1.1\r\nHost: nx.test\r\n\r\n"), 502);
  br = last_block(b0);
  CHECK_STR(br.host, "nx.test");
  CHECK_STR(br.ip, "");
  CHECK_STR(br.why, "unresolvable");

  /* 9. bodies: a 1 MB POST, a chunked one, and what Connection: names is dropped */
  size_t pn = 1 << 20;
  char *post = malloc(pn);
  for (size_t i = 0; i < pn; i++) post[i] = (char)pat(i);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", A);
  curl_do(P, url, 0, post, pn, NULL, &r);
  CHECK_INT(r.code, 200);
  CHECK_INT(r.body.len, pn);
  CHECK(r.body.len == pn && is_pattern(r.body.data, pn, 0));
  curl_do(P, url, 1, post, pn, NULL, &r); /* and through a tunnel */
  CHECK_INT(r.code, 200);
  CHECK(r.body.len == pn && is_pattern(r.body.data, pn, 0));
  free(post);
  CHECK_INT(raw_reqf(P, &out,
                     "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Empty:\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                     A),
            200);
  CHECK_STR(body_of(&out), "5\r\nhello\r\n0\r\n\r\n");
  pthread_mutex_lock(&mu);
  CHECK(strstr(srv1.last_head, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
  CHECK(strstr(srv1.last_head, "X-Drop") == NULL);
  CHECK(strstr(srv1.last_head, "\r\nX-Empty: \r\n") != NULL);
  CHECK(!strncmp(srv1.last_head, "POST /echo HTTP/1.1\r\n", 21));
  pthread_mutex_unlock(&mu);

  /* 10. one request per connection: an upstream that ignores Connection:
   * close keeps its socket open; a second request from the browser on the
   * same connection is not forwarded, the connection ends instead */
  {
    int fd = raw_connect(P);
    char req[256];
    int n = snprintf(req, sizeof req, "GET http://127.0.0.1:%d/keepalive HTTP/1.1\r\nHost: x\r\n\r\n", A);
    send_all(fd, req, (size_t)n);
    char buf[512] = "";
    size_t got = 0;
    while (!strstr(buf, "hello from 127.0.0.1") && got < sizeof buf - 1) {
      ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
      if (k <= 0) break;
      got += (size_t)k;
      buf[got] = 0;
    }
    CHECK(strstr(buf, "hello from 127.0.0.1") != NULL);
    send_all(fd, req, (size_t)n);
    double t0 = now_s();
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    CHECK_INT(k, 0); /* closed, promptly */
    CHECK(now_s() - t0 < 5);
    close(fd);
    usleep(100 * 1000);
    pthread_mutex_lock(&mu);
    CHECK_INT(second_requests, 0);
    pthread_mutex_unlock(&mu);
  }

  /* 11. 8 MB, forwarded and tunnelled, intact */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big?n=%d", A, 8 << 20);
  curl_do(P, url, 0, NULL, 0, NULL, &r);
  CHECK_INT(r.code, 200);
  CHECK_INT(r.body.len, 8 << 20);
  CHECK(r.body.len == (8u << 20) && is_pattern(r.body.data, r.body.len, 0));
  curl_do(P, url, 1, NULL, 0, NULL, &r);
  CHECK_INT(r.code, 200);
  CHECK(r.body.len == (8u << 20) && is_pattern(r.body.data, r.body.len, 0));

  /* 12. backpressure: a browser that stops reading for a second holds the
   * upstream server back (it would have sent all 64 MB into the proxy's
   * memory in that time otherwise), then everything arrives intact */
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)P)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    uint64_t total = 64ull << 20;
    int n = snprintf(req, sizeof req, "GET http://127.0.0.1:%d/big?n=%llu&mark=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                     A, (unsigned long long)total);
    send_all(fd, req, (size_t)n);
    char *buf = malloc(1 << 16);
    ssize_t k = recv(fd, buf, 1, 0);
    CHECK_INT(k, 1);
    usleep(1000 * 1000);
    tt_buf h = TT_BUF_INIT;
    tt_buf_append(&h, buf, 1);
    uint64_t body = 0;
    int ok = 1;
    while ((k = recv(fd, buf, 1 << 16, 0)) > 0) {
      const char *p = buf;
      size_t m = (size_t)k;
      if (!body && !strstr(h.data, "\r\n\r\n")) {
        size_t before = h.len;
        tt_buf_append(&h, buf, m);
        char *e = strstr(h.data, "\r\n\r\n");
        if (!e) continue;
        size_t used = (size_t)(e + 4 - h.data) - before;
        p += used;
        m -= used;
      }
      if (!is_pattern(p, m, body)) ok = 0;
      body += m;
    }
    CHECK(ok);
    CHECK_INT(body, total);
    pthread_mutex_lock(&mu);
    uint64_t mark = sent_at_mark;
    pthread_mutex_unlock(&mu);
    fprintf(stderr, "  backpressure: the upstream had sent %.1f MB of 64 after 500 ms of a stalled reader\n",
            (double)mark / 1048576.0);
    CHECK(mark > 0 && mark < (32ull << 20));
    tt_buf_free(&h);
    free(buf);
    close(fd);
  }

  /* 12b. a denied local port (the browser's DevTools): 403 although
   * 127.0.0.1 is allowed, by forward and by CONNECT, and never connected
   * to; the proxy's own port likewise (a request for itself would loop) */
  {
    int D = pport[PXDENY], acc0 = srv_get(&srv1, NULL);
    b0 = nblocked();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/json/version", A);
    curl_do(D, url, 0, NULL, 0, NULL, &r);
    CHECK_INT(r.code, 403);
    CHECK_STR(last_block(b0).why, "tintype-internal");
    curl_do(D, url, 1, NULL, 0, NULL, &r);
    CHECK_INT(r.connect_code, 403);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", D);
    curl_do(D, url, 0, NULL, 0, NULL, &r);
    CHECK_INT(r.code, 403);
    CHECK_INT(srv_get(&srv1, NULL), acc0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", A); /* other proxies still reach it */
    curl_do(P, url, 0, NULL, 0, NULL, &r);
    CHECK_INT(r.code, 200);
  }

  /* 13. malformed requests: 400, nothing reaches a server */
  srv_get(&srv1, &r1);
  const char *bad[] = {
      "GARBAGE\r\n\r\n",
      "GET http://127.0.0.1/ HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET https://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET ftp://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT 127.0.0.1:99999 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://user:pw@127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET http://bad%20host/ HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST http://127.0.0.1/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET http://127.0.0.1/ HTTP/1.1\nHost: x\n\n",
      "GET http://127.0.0.1/ HTTP/2.0\r\nHost: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int st = raw_req(P, bad[i], strlen(bad[i]), &out);
    if (st != 400) fprintf(stderr, "  bad request %zu answered %d\n", i, st);
    CHECK_INT(st, 400);
  }
  srv_get(&srv1, &r2);
  CHECK_INT(r2, r1);

  /* 14. heads too large: 431 (bytes, and header lines) */
  {
    tt_buf big = TT_BUF_INIT;
    tt_buf_printf(&big, "GET http://127.0.0.1:%d/ok HTTP/1.1\r\nX-Big: ", A);
    for (int i = 0; i < 20000; i++) tt_buf_putc(&big, 'a');
    tt_buf_puts(&big, "\r\n\r\n");
    CHECK_INT(raw_req(P, big.data, big.len, &out), 431);
    tt_buf_reset(&big);
    tt_buf_printf(&big, "GET http://127.0.0.1:%d/ok HTTP/1.1\r\n", A);
    for (int i = 0; i < 200; i++) tt_buf_printf(&big, "X-%d: 1\r\n", i);
    tt_buf_puts(&big, "\r\n");
    CHECK_INT(raw_req(P, big.data, big.len, &out), 431);
    tt_buf_free(&big);
    srv_get(&srv1, &r2);
    CHECK_INT(r2, r1);
  }

  /* 15. limits of a proxy set to 2 connections and 300 ms timeouts */
  {
    int L = pport[PXLIM];
    double t0 = now_s(); /* the head timeout runs from accept */
    int s1 = raw_connect(L), s2 = raw_connect(L);
    usleep(50 * 1000);
    CHECK_INT(raw_reqf(L, &out, "GET http://127.0.0.1:%d/ok HTTP/1.1\r\nHost: x\r\n\r\n", A), 503);
    send_all(s1, "GET http://127.0.0.1/ HTTP/1.1\r\n", 32); /* a head that never ends */
    tt_buf_reset(&out);
    read_all(s1, &out);
    double dt = now_s() - t0;
    CHECK_INT(status_of(&out), 408);
    CHECK(dt > 0.25 && dt < 5);
    close(s1);
    close(s2);
    /* an idle tunnel ends (once the two above are gone: they count until closed) */
    char req[128], buf[256];
    int n = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", A);
    int s3 = -1;
    ssize_t k = 0;
    for (int tries = 0; tries < 100; tries++) {
      t0 = now_s();
      s3 = raw_connect(L);
      send_all(s3, req, (size_t)n);
      k = recv(s3, buf, sizeof buf - 1, 0);
      buf[k > 0 ? k : 0] = 0;
      if (strncmp(buf, "HTTP/1.1 503", 12)) break;
      close(s3);
      usleep(20 * 1000);
    }
    CHECK(!strcmp(buf, "HTTP/1.1 200 Connection Established\r\n\r\n"));
    k = recv(s3, buf, sizeof buf, 0);
    dt = now_s() - t0;
    CHECK_INT(k, 0);
    CHECK(dt > 0.25 && dt < 5);
    close(s3);
    /* a connect that never completes, a lookup that takes too long: 504 */
    t0 = now_s();
    CHECK_INT(raw_reqf(L, &out, "CONNECT 127.0.0.9:80 HTTP/1.1\r\nHost: x\r\n\r\n"), 504);
    CHECK(now_s() - t0 < 5);
    CHECK_INT(attempts_to("127.0.0.9", 80), 1);
    t0 = now_s();
    CHECK_INT(raw_reqf(L, &out, "GET http://slow.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", A), 504);
    dt = now_s() - t0;
    CHECK(dt > 0.25 && dt < 1.4); /* before the answer came (it is freed when it does) */
  }

  /* 16. a job that closes the proxy from on_blocked: that connection ends
   * without an answer, the listener is gone */
  b0 = nblocked();
  CHECK_INT(raw_reqf(pport[PXSELF], &out, "GET http://127.0.0.2:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", B), -1);
  CHECK_INT(last_block(b0).tag, PXSELF);
  usleep(100 * 1000);
  {
    int fd = raw_connect(pport[PXSELF]);
    CHECK_INT(fd, -1);
    if (fd >= 0) close(fd);
  }

  /* 17. leave connections open at close: an established tunnel, half a
   * head, a lookup under way, a 64 MB answer nobody reads */
  {
    int t = raw_connect(P);
    char req[160];
    int n = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", A);
    send_all(t, req, (size_t)n);
    char buf[128];
    CHECK(recv(t, buf, sizeof buf, 0) > 0);
    held_fds[nheld++] = t;
    int h = raw_connect(P);
    send_all(h, "GET http://127.0.0.1/ HTT", 25);
    held_fds[nheld++] = h;
    int s = raw_connect(P);
    n = snprintf(req, sizeof req, "GET http://slow.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", A);
    send_all(s, req, (size_t)n);
    held_fds[nheld++] = s;
    int g = raw_connect(P);
    n = snprintf(req, sizeof req, "GET http://127.0.0.1:%d/big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", A,
                 64 << 20);
    send_all(g, req, (size_t)n);
    held_fds[nheld++] = g;
    usleep(200 * 1000);
  }

  tt_buf_free(&r.body);
  tt_buf_free(&out);
  uv_async_send(&done_async);
  return NULL;
}

int main(void) {
  real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
  real_gai = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  real_fai = (fai_fn)dlsym(RTLD_NEXT, "freeaddrinfo");
  if (!real_connect || !real_gai || !real_fai) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  uv_loop_t loop;
  CHECK_INT(uv_loop_init(&loop), 0);

  char err[128];
  const char *allow[NPX] = {"127.0.0.1/32", "127.0.0.1/32, 127.0.0.3/32", "0.0.0.0/0, ::/0",
                            "127.0.0.1/32, 127.0.0.9/32", "127.0.0.1/32", "127.0.0.1/32"};
  for (int i = 0; i < NPX; i++) {
    CHECK_INT(tt_netpolicy_init(&pol[i], allow[i], err, sizeof err), 0);
    CHECK_INT(tt_netproxy_start(&loop, &pol[i], on_blocked, (void *)(intptr_t)i, &px[i]), 0);
    pport[i] = tt_netproxy_port(px[i]);
    CHECK(pport[i] > 0);
  }
  tt_netproxy_limits lim;
  tt_netproxy_limits_default(&lim);
  CHECK_INT(lim.max_head, 16 * 1024);
  CHECK_INT(lim.max_conns, 256);
  lim.max_conns = 2;
  lim.head_timeout_ms = lim.connect_timeout_ms = lim.idle_timeout_ms = 300;
  CHECK_INT(tt_netproxy_set_limits(px[PXLIM], &lim), 0);
  lim.max_head = 10;
  CHECK_INT(tt_netproxy_set_limits(px[PXLIM], &lim), TT_EINVAL);

  if (srv_start(&loop, &srv1, "127.0.0.1") || srv_start(&loop, &srv2, "127.0.0.2")) {
    fprintf(stderr,
            "cannot listen on 127.0.0.1 and 127.0.0.2 (on Linux all of 127/8 is on lo; elsewhere:"
            " ip addr add 127.0.0.2/8 dev lo)\n");
    return 1;
  }
  /* PXDENY: loopback is open, but srv1's port stands for the browser's
   * DevTools port, which no page may reach */
  tt_netproxy_deny_local_port(px[PXDENY], srv1.port);
  CHECK_INT(uv_async_init(&loop, &done_async, on_done), 0);

  pthread_t th;
  pthread_create(&th, NULL, client, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* until everything is closed and freed */
  pthread_join(th, NULL);
  CHECK_INT(uv_loop_close(&loop), 0);

  CHECK_INT(blocked_after_close, 0);
  CHECK_INT(outside_attempts, 0);
  CHECK_INT(srv2.accepted, 0);
  tt_netproxy_stats *s = &final_stats[PX];
  fprintf(stderr, "  px: %lld requests, %lld blocked, %lld bytes up, %lld bytes down\n",
          (long long)s->requests, (long long)s->blocked, (long long)s->bytes_up, (long long)s->bytes_down);
  int px_blocks = 0;
  for (int i = 0; i < nblocks; i++) px_blocks += blocks[i].tag == PX;
  CHECK_INT(s->blocked, px_blocks);
  CHECK(s->requests > s->blocked);
  CHECK(s->bytes_down > (16ll << 20) + (64ll << 20));
  CHECK(s->bytes_up > (2ll << 20));
  CHECK_INT(final_stats[PXALL].blocked, 6);
  CHECK_INT(final_stats[PXALL].requests, 6);

  for (int i = 0; i < nheld; i++) close(held_fds[i]);
  for (int i = 0; i < nholes; i++) close(holes[i]);
  tt_buf_free(&srv1.last_body);
  tt_buf_free(&srv2.last_body);
  curl_global_cleanup();
  TT_TEST_END();
}
