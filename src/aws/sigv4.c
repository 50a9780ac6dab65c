/* sigv4.c — AWS Signature Version 4 (include/tintype/aws.h): canonical
 * request, string to sign, the derived key and the signature, for header
 * signing (every call of src/aws/client.c) and query signing (presigned S3
 * GETs of src/blobs/s3.c).
 *
 * An own signer rather than libcurl's CURLOPT_AWS_SIGV4: Debian 12's curl
 * 7.88.1 neither sorts nor encodes the query, adds no x-amz-content-sha256,
 * signs "Expect:" and duplicates a caller's X-Amz-Date, and cannot presign
 * (docs/ARCHITECTURE.md, "AWS backends"). The clock is a parameter, so
 * AWS's published vectors run as unit tests (tests/unit/test_aws_sigv4.c).
 * Hashes are src/core/crypto.c's own SHA-256/HMAC, not OpenSSL's (whose
 * first use costs an API process 2.2 MB of RSS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tintype/aws.h"
#include "tintype/crypto.h"
#include "tintype/error.h"

void tt_aws_amzdate(int64_t unix_s, char out[TT_AWS_DATE_LEN]) {
  time_t t = (time_t)unix_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, TT_AWS_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int tt_aws_uri_encode(tt_buf *out, const char *s, size_t n, int keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  if (tt_buf_reserve(out, n * 3)) return TT_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      out->data[out->len++] = (char)c;
    } else {
      out->data[out->len++] = '%';
      out->data[out->len++] = hex[c >> 4];
      out->data[out->len++] = hex[c & 15];
    }
  }
  out->data[out->len] = 0;
  return TT_OK;
}

static void hexify(const uint8_t *d, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[2 * n] = 0;
}

/* ---- canonical pieces --------------------------------------------------- */

typedef struct {
  char *name;  /* lowercased */
  char *value; /* trimmed, inner runs of spaces folded */
} hdr;

static int hdr_cmp(const void *a, const void *b) {
  return strcmp(((const hdr *)a)->name, ((const hdr *)b)->name);
}

typedef struct {
  const char *p;
  size_t n;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  /* sort by name, then by value: compare up to '=' first */
  const char *ex = memchr(x->p, '=', x->n), *ey = memchr(y->p, '=', y->n);
  size_t nx = ex ? (size_t)(ex - x->p) : x->n, ny = ey ? (size_t)(ey - y->p) : y->n;
  size_t m = nx < ny ? nx : ny;
  int c = memcmp(x->p, y->p, m);
  if (c) return c;
  if (nx != ny) return nx < ny ? -1 : 1;
  m = x->n < y->n ? x->n : y->n;
  c = memcmp(x->p, y->p, m);
  if (c) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* the query, split at '&', sorted; a valueless "name" becomes "name=" */
static int canonical_query(tt_buf *b, const char *q) {
  if (!q || !*q) return TT_OK;
  size_t cnt = 1;
  for (const char *p = q; *p; p++) cnt += *p == '&';
  span *v = calloc(cnt, sizeof *v);
  if (!v) return TT_ENOMEM;
  size_t k = 0;
  for (const char *p = q;;) {
    const char *e = strchr(p, '&');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) v[k++] = (span){p, n};
    if (!e) break;
    p = e + 1;
  }
  qsort(v, k, sizeof *v, span_cmp);
  int rc = TT_OK;
  for (size_t i = 0; i < k && !rc; i++) {
    if (i) rc = tt_buf_putc(b, '&');
    if (!rc) rc = tt_buf_append(b, v[i].p, v[i].n);
    if (!rc && !memchr(v[i].p, '=', v[i].n)) rc = tt_buf_putc(b, '=');
  }
  free(v);
  return rc;
}

/* canonical headers + "\n" + signed headers into b; signed headers also
 * into sh (NUL-terminated) */
static int canonical_headers(tt_buf *b, tt_buf *sh, const tt_aws_hdr *in, size_t n) {
  hdr *h = calloc(n ? n : 1, sizeof *h);
  if (!h) return TT_ENOMEM;
  int rc = TT_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    h[i].name = strdup(in[i].name);
    const char *v = in[i].value ? in[i].value : "";
    h[i].value = malloc(strlen(v) + 1);
    if (!h[i].name || !h[i].value) {
      rc = TT_ENOMEM;
      break;
    }
    for (char *c = h[i].name; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    while (*v == ' ' || *v == '\t') v++;
    char *o = h[i].value;
    int space = 0;
    for (; *v; v++) {
      if (*v == ' ' || *v == '\t') {
        space = 1;
        continue;
      }
      if (space && o != h[i].value) *o++ = ' ';
      space = 0;
      *o++ = *v;
    }
    *o = 0;
  }
  if (!rc) {
    /* stable merge of repeated names: sort, then join their values with ',' */
    for (size_t i = 1; i < n; i++) /* insertion sort keeps the given order of repeats */
      for (size_t j = i; j > 0 && hdr_cmp(&h[j - 1], &h[j]) > 0; j--) {
        hdr t = h[j];
        h[j] = h[j - 1];
        h[j - 1] = t;
      }
    for (size_t i = 0; i < n && !rc; i++) {
      int first = i == 0 || strcmp(h[i - 1].name, h[i].name);
      int last = i + 1 == n || strcmp(h[i + 1].name, h[i].name);
      if (first) {
        rc = tt_buf_printf(b, "%s:%s", h[i].name, h[i].value);
        if (!rc && sh->len) rc = tt_buf_putc(sh, ';');
        if (!rc) rc = tt_buf_puts(sh, h[i].name);
      } else {
        rc = tt_buf_printf(b, ",%s", h[i].value);
      }
      if (!rc && last) rc = tt_buf_putc(b, '\n');
    }
  }
  for (size_t i = 0; i < n; i++) {
    free(h[i].name);
    free(h[i].value);
  }
  free(h);
  if (!rc) rc = tt_buf_printf(b, "\n%s", sh->data ? sh->data : "");
  return rc;
}

static int canonical_path(tt_buf *b, const char *path, int s3) {
  if (!path || !*path) return tt_buf_putc(b, '/');
  if (s3) return tt_buf_puts(b, path);
  /* other services: every segment is encoded once more (the path as sent is
   * already encoded). tintype's JSON calls always use "/". */
  return tt_aws_uri_encode(b, path, strlen(path), 1);
}

/* The derived key changes once a day per (secret, region, service): the
 * last few are kept, which saves four of a signature's six HMAC chains.
 * One loop thread signs at a time per process; the cache is per process. */
#define KEY_CACHE 4
static struct {
  char secret[257], date8[9], region[64], service[32];
  uint8_t key[32];
} key_cache[KEY_CACHE];
static unsigned key_next;

static void signing_key(const tt_aws_key *k, const char *date8, uint8_t out[32]) {
  for (int i = 0; i < KEY_CACHE; i++)
    if (!strncmp(key_cache[i].date8, date8, 8) && !strcmp(key_cache[i].secret, k->secret) &&
        !strcmp(key_cache[i].region, k->region) && !strcmp(key_cache[i].service, k->service)) {
      memcpy(out, key_cache[i].key, 32);
      return;
    }
  char kb[300];
  int n = snprintf(kb, sizeof kb, "AWS4%s", k->secret);
  uint8_t a[32], b[32];
  tt_hmac_sha256(kb, (size_t)n, date8, 8, a);
  tt_hmac_sha256(a, 32, k->region, strlen(k->region), b);
  tt_hmac_sha256(b, 32, k->service, strlen(k->service), a);
  tt_hmac_sha256(a, 32, "aws4_request", 12, out);
  memset(kb, 0, sizeof kb);
  if (strlen(k->region) < sizeof key_cache[0].region && strlen(k->service) < sizeof key_cache[0].service) {
    unsigned i = key_next++ % KEY_CACHE;
    snprintf(key_cache[i].secret, sizeof key_cache[i].secret, "%s", k->secret);
    snprintf(key_cache[i].date8, sizeof key_cache[i].date8, "%.8s", date8);
    snprintf(key_cache[i].region, sizeof key_cache[i].region, "%s", k->region);
    snprintf(key_cache[i].service, sizeof key_cache[i].service, "%s", k->service);
    memcpy(key_cache[i].key, out, 32);
  }
}

/* signature (hex) of a canonical request at amzdate */
static void signature(const tt_buf *creq, const tt_aws_key *k, const char *amzdate, char sig[65]) {
  uint8_t h[32], key[32], mac[32];
  char hh[65], sts[512];
  tt_sha256(creq->data, creq->len, h);
  hexify(h, 32, hh);
  int n = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amzdate,
                   amzdate, k->region, k->service, hh);
  signing_key(k, amzdate, key);
  tt_hmac_sha256(key, 32, sts, (size_t)n, mac);
  hexify(mac, 32, sig);
  memset(key, 0, sizeof key);
}

int tt_aws_sign(const tt_aws_sig_req *r, const tt_aws_key *k, const char *amzdate, char *auth,
                size_t authlen, tt_buf *creq) {
  if (!r || !k || !k->akid || !k->secret || !k->region || !k->service || !amzdate ||
      strlen(amzdate) != 16 || strlen(k->secret) > 256)
    return TT_EINVAL;
  tt_buf b = TT_BUF_INIT, sh = TT_BUF_INIT;
  int rc = tt_buf_printf(&b, "%s\n", r->method ? r->method : "POST");
  if (!rc) rc = canonical_path(&b, r->path, r->s3);
  if (!rc) rc = tt_buf_putc(&b, '\n');
  if (!rc) rc = canonical_query(&b, r->query);
  if (!rc) rc = tt_buf_putc(&b, '\n');
  if (!rc) rc = canonical_headers(&b, &sh, r->headers, r->nheaders);
  if (!rc) rc = tt_buf_printf(&b, "\n%s", r->payload_hash ? r->payload_hash : "");
  if (!rc) {
    char sig[65];
    signature(&b, k, amzdate, sig);
    int n = snprintf(auth, authlen,
                     "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, "
                     "Signature=%s",
                     k->akid, amzdate, k->region, k->service, sh.data, sig);
    if (n < 0 || (size_t)n >= authlen) rc = TT_ETOOBIG;
    if (creq && !rc) rc = tt_buf_append(creq, b.data, b.len);
  }
  tt_buf_free(&b);
  tt_buf_free(&sh);
  return rc;
}

int tt_aws_presign(const char *base, const char *host, const char *path, const tt_aws_key *k,
                   int64_t now_s, int64_t expires_s, char *out, size_t outlen) {
  if (!k || !k->akid || !k->secret || expires_s < 1 || expires_s > 604800) return TT_EINVAL;
  char date[TT_AWS_DATE_LEN], cred[400];
  tt_aws_amzdate(now_s, date);
  snprintf(cred, sizeof cred, "%s/%.8s/%s/%s/aws4_request", k->akid, date, k->region, k->service);
  tt_buf q = TT_BUF_INIT;
  int rc = tt_buf_puts(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
  if (!rc) rc = tt_aws_uri_encode(&q, cred, strlen(cred), 0);
  if (!rc) rc = tt_buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%lld", date, (long long)expires_s);
  if (!rc && k->token && *k->token) {
    rc = tt_buf_puts(&q, "&X-Amz-Security-Token=");
    if (!rc) rc = tt_aws_uri_encode(&q, k->token, strlen(k->token), 0);
  }
  if (!rc) rc = tt_buf_puts(&q, "&X-Amz-SignedHeaders=host");
  char auth[1024];
  tt_buf creq = TT_BUF_INIT;
  if (!rc) {
    tt_aws_hdr h = {"host", host};
    tt_aws_sig_req r = {"GET", path, q.data, &h, 1, "UNSIGNED-PAYLOAD", 1};
    rc = tt_aws_sign(&r, k, date, auth, sizeof auth, &creq);
  }
  if (!rc) {
    const char *sig = strstr(auth, "Signature=") + 10;
    int n = snprintf(out, outlen, "%s%s?%s&X-Amz-Signature=%s", base, path, q.data, sig);
    if (n < 0 || (size_t)n >= outlen) rc = TT_ETOOBIG;
  }
  tt_buf_free(&q);
  tt_buf_free(&creq);
  return rc;
}
