/* id.c — UUIDv7 ids (include/tintype/id.h), timestamped by the wall clock
 * (src/core/clock.c).
 *
 * Used by the store for record ids, by the queue for message ids, and by
 * callers that need an id before the record exists (blob keys). Monotonic
 * within a process: same millisecond -> the 12-bit counter in rand_a goes
 * up; if it overflows, the timestamp borrows the next millisecond. */
#include "tintype/id.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms;
static unsigned id_seq;

static void fill_random(unsigned char *p, size_t n) {
  while (n) {
    ssize_t r = getrandom(p, n, 0);
    if (r <= 0) continue; /* EINTR; getrandom never fails otherwise once seeded */
    p += r;
    n -= (size_t)r;
  }
}

void tt_id_new(char out[TT_ID_SIZE]) {
  unsigned char b[16];
  fill_random(b + 8, 8);
  int64_t ms = tt_now_ms();
  unsigned seq;
  pthread_mutex_lock(&id_mu);
  if (ms > id_last_ms) {
    id_last_ms = ms;
    id_seq = b[8] & 0x1f; /* random start, room to count up */
  } else if (++id_seq > 0xfff) {
    id_last_ms++;
    id_seq = 0;
  }
  ms = id_last_ms;
  seq = id_seq;
  pthread_mutex_unlock(&id_mu);
  for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | (seq >> 8));
  b[7] = (unsigned char)(seq & 0xff);
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = 0;
}

int tt_id_valid(const char *s) {
  if (!s) return 0;
  for (int i = 0; i < TT_ID_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0;
    }
  }
  return s[TT_ID_LEN] == 0;
}
