/* web_lookup.c — lookup of the embedded web/ files (include/tintype/web.h).
 *
 * The request path is percent-decoded into a small stack buffer and checked
 * segment by segment; anything that could mean "somewhere else" (dot
 * segments, empty segments, backslashes, NUL or control bytes, non-ASCII) is
 * refused before the binary search, so only exact names of the embedded set
 * are ever served. The response side is web.c, beside this file: src/http/
 * knows no front-end. */
#include <string.h>

#include "tintype/web.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

const tt_web_asset *tt_web_find(const char *path, size_t len) {
  char buf[512];
  size_t n = 0;
  if (len == 0 || path[0] != '/') return NULL;
  for (size_t i = 0; i < len; i++) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= len) return NULL;
      int h = hexval(path[i + 1]), l = hexval(path[i + 2]);
      if (h < 0 || l < 0) return NULL;
      c = (char)(h * 16 + l);
      i += 2;
    }
    unsigned char u = (unsigned char)c;
    if (u < 0x21 || u >= 0x7f || c == '\\') return NULL;
    if (n + 1 >= sizeof buf - 16) return NULL;
    buf[n++] = c;
  }
  /* a trailing slash means the folder's index.html */
  if (buf[n - 1] == '/') {
    memcpy(buf + n, "index.html", 10);
    n += 10;
  }
  buf[n] = 0;
  /* every segment: non-empty, not "." or ".." (hidden files are never embedded) */
  for (size_t i = 0; i < n; i++) {
    if (buf[i] != '/') continue;
    if (i + 1 >= n || buf[i + 1] == '/' || buf[i + 1] == '.') return NULL;
  }
  size_t lo = 0, hi = tt_web_assets_count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(tt_web_assets[mid].path, buf);
    if (c == 0) return &tt_web_assets[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}
