/* id.h — record and message ids: UUIDv7 in its 36-character string form.
 *
 * The first 48 bits are milliseconds since the Unix epoch, so ids sort by
 * creation time and lists page by id (DESIGN §3). Within one process ids are
 * strictly increasing: the 12-bit rand_a field is a counter within the same
 * millisecond (RFC 9562 §6.2 method 1); the remaining 62 bits are random
 * (getrandom). Thread-safe. */
#ifndef TINTYPE_ID_H
#define TINTYPE_ID_H

#include <stdint.h>

#include "tintype/clock.h" /* tt_now_ms: the time in an id */

#define TT_ID_LEN 36
#define TT_ID_SIZE (TT_ID_LEN + 1)

/* Writes a new id, NUL-terminated, into out (TT_ID_SIZE bytes). */
void tt_id_new(char out[TT_ID_SIZE]);

/* 1 when s is a lowercase hyphenated UUID string (any version), else 0. */
int tt_id_valid(const char *s);

#endif
