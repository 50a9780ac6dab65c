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
char *tt_xstrdup(const char *s);

#endif
