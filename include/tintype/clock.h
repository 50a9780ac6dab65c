/* clock.h — the two clocks: wall time for what is stored or shown (record
 * times, message times, log lines), monotonic time for durations and
 * deadlines (backoffs, timeouts), which must not jump with the wall clock.
 * libuv's loop time (uv_now) is the monotonic clock of code on a loop. */
#ifndef TINTYPE_CLOCK_H
#define TINTYPE_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME), as stored in records. */
int64_t tt_now_ms(void);

/* Milliseconds since an arbitrary point (CLOCK_MONOTONIC). */
uint64_t tt_mono_ms(void);

#endif
