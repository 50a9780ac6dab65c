/* clock.c — the wall and monotonic clocks (include/tintype/clock.h). Every
 * stored time goes through tt_now_ms(); every duration outside a libuv loop
 * through tt_mono_ms(). */
#include "tintype/clock.h"

#include <time.h>

int64_t tt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t tt_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
