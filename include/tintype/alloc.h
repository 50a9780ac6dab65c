/* alloc.h — the one out-of-memory policy (as Redis's zmalloc_oom_handler and
 * h2o's h2o_fatal): an allocation that fails ends the process through
 * tt_oom(), which says so on stderr and aborts. The supervisor restarts the
 * child; a half-handled request is worse than a restart.
 *
 * Code that can answer "no memory" to its caller without allocating (a
 * synchronous open returning TT_ENOMEM) may still do so; everything else
 * uses the tt_x* wrappers below, which never return NULL. */
#ifndef TINTYPE_ALLOC_H
#define TINTYPE_ALLOC_H

#include <stddef.h>

/* Writes "tintype: out of memory" to stderr and aborts. */
_Noreturn void tt_oom(void);

void *tt_xmalloc(size_t n);
void *tt_xcalloc(size_t n, size_t size);
void *tt_xrealloc(void *p, size_t n);
char *tt_xstrdup(const char *s);
char *tt_xstrndup(const char *s, size_t n);

/* The libraries that allocate for us follow the same policy: at start-up
 * (a constructor in src/core/alloc.c, so tests get it too) jansson and
 * libuv are given these wrappers, so a json_*() or uv_*() call never fails
 * for want of memory and its result needs no NULL check for that reason. */

#endif
