/* defer.c — tt_defer (include/tintype/defer.h): a zero-delay timer that
 * runs one function and frees itself. The seam fronts (src/store/store.c,
 * src/queue/queue.c, src/blobs/blobs.c) report argument errors and inline
 * backend failures through it, so no callback runs before its call returns. */
#include "tintype/defer.h"

#include <stdlib.h>

#include "tintype/alloc.h"

typedef struct deferred {
  uv_timer_t timer;
  void (*fn)(void *);
  void *arg;
} deferred;

static void on_closed(uv_handle_t *h) { free(h->data); }

static void on_timer(uv_timer_t *t) {
  deferred *d = t->data;
  uv_close((uv_handle_t *)&d->timer, on_closed);
  d->fn(d->arg);
}

void tt_defer(uv_loop_t *loop, void (*fn)(void *arg), void *arg) {
  deferred *d = tt_xmalloc(sizeof *d);
  d->fn = fn;
  d->arg = arg;
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, on_timer, 0, 0);
}
