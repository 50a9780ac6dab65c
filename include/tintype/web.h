/* web.h — the front-end files of web/, embedded into the binary at build
 * time by tools/embed.c, and their lookup.
 *
 * The embedded set is the whole namespace: tt_web_find() only ever returns
 * one of these entries, so no request path can reach the filesystem. */
#ifndef TINTYPE_WEB_H
#define TINTYPE_WEB_H

#include <stddef.h>

typedef struct tt_web_asset {
  const char *path;         /* "/index.html" */
  const char *content_type; /* "text/html; charset=utf-8" */
  const unsigned char *data;
  size_t len;
  const unsigned char *gz; /* gzip variant or NULL */
  size_t gzlen;
  const char *etag;    /* strong ETag of data, quotes included */
  const char *gz_etag; /* strong ETag of the gzip variant */
} tt_web_asset;

extern const tt_web_asset tt_web_assets[]; /* sorted by path */
extern const unsigned tt_web_assets_count;

/* Looks up a request path (already without the query string). "/" and any
 * path ending in "/" map to its index.html. Percent-escapes are decoded;
 * "..", ".", empty or backslash segments, NUL and control bytes never match.
 * Returns NULL when the path is not in the embedded set. */
const tt_web_asset *tt_web_find(const char *path, size_t len);

#endif
