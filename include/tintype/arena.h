/* arena.h — a bump allocator owned by one request (or one job).
 *
 * Allocations are never freed one by one: tt_arena_reset() drops them all
 * at once (keeping the first block for the next request) and
 * tt_arena_free() releases everything. The first block may be memory the
 * caller owns (embedded in a connection), so a typical request allocates
 * nothing from malloc at all. Not thread-safe: one arena, one loop. */
#ifndef TINTYPE_ARENA_H
#define TINTYPE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct tt_arena_block tt_arena_block;

typedef struct tt_arena {
  char *base;             /* current block's memory */
  size_t size, used;      /* current block's size and fill */
  char *first;            /* caller's first block (may be NULL) */
  size_t first_size;
  tt_arena_block *blocks; /* malloc'd blocks, newest first */
  size_t total;           /* bytes handed out since the last reset */
} tt_arena;

/* first/size: an optional caller-owned block used before any malloc. */
void tt_arena_init(tt_arena *a, void *first, size_t size);
/* 16-byte aligned memory; never NULL (out of memory ends the process
 * through tt_oom, include/tintype/alloc.h), so callers need no check. */
void *tt_arena_alloc(tt_arena *a, size_t n);
void *tt_arena_calloc(tt_arena *a, size_t n);
char *tt_arena_strndup(tt_arena *a, const char *s, size_t n);
char *tt_arena_strdup(tt_arena *a, const char *s);
char *tt_arena_sprintf(tt_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *tt_arena_vsprintf(tt_arena *a, const char *fmt, va_list ap);
/* Forget every allocation; keeps the caller's first block. */
void tt_arena_reset(tt_arena *a);
/* Release every malloc'd block. The arena may be re-initialised. */
void tt_arena_free(tt_arena *a);

#endif
