/* defer.h — run a function on the loop's next iteration.
 *
 * The seam fronts (store, queue, blobs) use it to keep their promise that a
 * callback never runs before the call that asked for it returns: an argument
 * error, or a backend that failed inline, is reported through tt_defer. One
 * small allocation and a zero-delay uv_timer per call; meant for the rare
 * path, not for every operation. */
#ifndef TINTYPE_DEFER_H
#define TINTYPE_DEFER_H

#include <uv.h>

/* fn(arg) runs once, on loop's thread, after the current callback returns.
 * Out of memory ends the process (tt_oom). */
void tt_defer(uv_loop_t *loop, void (*fn)(void *arg), void *arg);

#endif
