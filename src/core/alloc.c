/* alloc.c — tt_oom() and the allocation wrappers that call it
 * (include/tintype/alloc.h). Every module that cannot hand "no memory" back
 * to its caller ends here, so there is one message and one way to die. */
#include "tintype/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

_Noreturn void tt_oom(void) {
  static const char msg[] = "tintype: out of memory\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1); /* no stdio: it may allocate */
  (void)w;
  abort();
}

void *tt_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) tt_oom();
  return p;
}

void *tt_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) tt_oom();
  return p;
}

void *tt_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) tt_oom();
  return q;
}

char *tt_xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p) tt_oom();
  return p;
}

char *tt_xstrndup(const char *s, size_t n) {
  char *p = strndup(s, n);
  if (!p) tt_oom();
  return p;
}

static void *x_calloc(size_t n, size_t size) { return tt_xcalloc(n, size); }

/* Before main: jansson and libuv allocate through the wrappers above. */
__attribute__((constructor)) static void alloc_install(void) {
  json_set_alloc_funcs(tt_xmalloc, free);
  uv_replace_allocator(tt_xmalloc, tt_xrealloc, x_calloc, free);
}
