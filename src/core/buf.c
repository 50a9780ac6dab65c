/* buf.c — growable byte buffer of include/tintype/buf.h, plus the JSON
 * string escaper used by the logger and the problem+json writer. */
#include "tintype/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/alloc.h"
#include "tintype/error.h"

int tt_buf_reserve(tt_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return TT_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) {
    if (cap > ((size_t)-1) / 2) return TT_ENOMEM;
    cap *= 2;
  }
  char *p = tt_xrealloc(b->data, cap);
  b->data = p;
  b->cap = cap;
  return TT_OK;
}

int tt_buf_append(tt_buf *b, const void *p, size_t n) {
  int rc = tt_buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return TT_OK;
}

int tt_buf_puts(tt_buf *b, const char *s) { return tt_buf_append(b, s, strlen(s)); }

int tt_buf_putc(tt_buf *b, char c) { return tt_buf_append(b, &c, 1); }

int tt_buf_printf(tt_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return TT_EINVAL;
  if ((size_t)n < sizeof tmp) return tt_buf_append(b, tmp, (size_t)n);
  int rc = tt_buf_reserve(b, (size_t)n);
  if (rc) return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return TT_OK;
}

int tt_buf_json_str(tt_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  int rc = tt_buf_reserve(b, n + 2);
  if (rc) return rc;
  b->data[b->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
      if ((rc = tt_buf_putc(b, (char)c))) return rc;
      continue;
    }
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t el = 2;
    switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      default:
        esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
        esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
        el = 6;
    }
    if ((rc = tt_buf_append(b, esc, el))) return rc;
  }
  return tt_buf_putc(b, '"');
}

void tt_buf_reset(tt_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = 0;
}

void tt_buf_free(tt_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
