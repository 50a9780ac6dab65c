/* router.h — maps (method, path) to a handler.
 *
 * Patterns are '/'-separated segments: literal ("images"), a parameter
 * ("{id}", matching one non-empty segment) or, last, "*" (the rest of the
 * path, possibly empty). At each segment a literal beats a parameter, which
 * beats "*". A route registered for GET also answers HEAD. Matching a path
 * with no route for the method reports the methods that would match, for
 * the Allow header of a 405. */
#ifndef TINTYPE_ROUTER_H
#define TINTYPE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "tintype/http.h"

typedef struct tt_router tt_router;

typedef struct tt_route {
  unsigned methods; /* TT_HTTP_* mask */
  tt_http_handler_fn fn;
  void *ud;
  int64_t max_body; /* -1: the server's max_body_bytes */
  int stream_body;  /* handler runs at end of headers and reads the body with tt_http_body_start */
  int id;           /* registration order: the route's metrics id */
} tt_route;

tt_router *tt_router_new(void);
void tt_router_free(tt_router *r);

/* TT_OK, TT_EINVAL for a malformed pattern, TT_EEXIST when the pattern
 * already has a handler for one of these methods, TT_ENOMEM. */
int tt_router_add(tt_router *r, unsigned methods, const char *pattern, tt_http_handler_fn fn, void *ud,
                  int64_t max_body);

/* As tt_router_add, for a handler that takes its body as a stream (see
 * tt_http_body_start in http.h): it runs as soon as the headers are in. */
int tt_router_add_streaming(tt_router *r, unsigned methods, const char *pattern, tt_http_handler_fn fn,
                            void *ud, int64_t max_body);

/* Returns 200 with *route set and params filled (values are copied into
 * arena), 404 when no pattern matches the path, 405 when patterns match but
 * none for this method (then *allow holds the mask of allowed methods). */
int tt_router_match(const tt_router *r, unsigned method, const char *path, size_t len, tt_arena *arena,
                    tt_http_param *params, unsigned *nparams, const tt_route **route, unsigned *allow);

/* "GET, HEAD, POST" for a method mask, written into buf. */
void tt_router_allow_string(unsigned methods, char *buf, size_t len);

#endif
