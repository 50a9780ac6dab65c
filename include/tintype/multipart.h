/* multipart.h — a streaming multipart/form-data parser (RFC 7578).
 *
 * Fed the body in pieces of any size, it calls back with each part's
 * headers and then its bytes, never holding more than one delimiter's
 * length of the body (plus one part's headers, at most 8 KiB). Data passed
 * to callbacks is valid only during the call. */
#ifndef TINTYPE_MULTIPART_H
#define TINTYPE_MULTIPART_H

#include <stddef.h>

#define TT_MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 */
#define TT_MULTIPART_MAX_HEADERS 8192

typedef struct tt_multipart tt_multipart;

typedef struct tt_multipart_cbs {
  /* name/filename/content_type may be NULL when absent; return non-zero to stop with TT_EINVAL */
  int (*part_begin)(void *ud, const char *name, const char *filename, const char *content_type);
  int (*part_data)(void *ud, const char *data, size_t len);
  int (*part_end)(void *ud);
} tt_multipart_cbs;

/* The boundary parameter of a multipart/form-data Content-Type, into out.
 * TT_EINVAL when the type is not multipart/form-data or has no valid boundary. */
int tt_multipart_boundary(const char *content_type, char *out, size_t outlen);

tt_multipart *tt_multipart_new(const char *boundary, const tt_multipart_cbs *cbs, void *ud);
/* TT_OK, or TT_EINVAL on malformed input (then the parser is done). */
int tt_multipart_feed(tt_multipart *m, const char *data, size_t len);
/* At the end of the body: TT_OK when the closing delimiter was seen. */
int tt_multipart_finish(tt_multipart *m);
void tt_multipart_free(tt_multipart *m);

#endif
