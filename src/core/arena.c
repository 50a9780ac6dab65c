/* arena.c — the per-request bump allocator of include/tintype/arena.h.
 *
 * Blocks grow geometrically (at least 4 KiB, at least twice the request) and
 * live on a singly linked list until reset/free. */
#include "tintype/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/alloc.h"

struct tt_arena_block {
  tt_arena_block *next;
  size_t size;
  _Alignas(16) char data[];
};

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

void tt_arena_init(tt_arena *a, void *first, size_t size) {
  memset(a, 0, sizeof *a);
  if (first) {
    /* align the caller's block */
    uintptr_t p = (uintptr_t)first, q = (p + 15) & ~(uintptr_t)15;
    if (size > q - p) {
      a->first = (char *)q;
      a->first_size = size - (q - p);
    }
  }
  a->base = a->first;
  a->size = a->first_size;
}

void *tt_arena_alloc(tt_arena *a, size_t n) {
  size_t need = ALIGN16(n ? n : 1);
  if (need < n) return NULL;
  if (a->base && a->size - a->used >= need) {
    void *p = a->base + a->used;
    a->used += need;
    a->total += need;
    return p;
  }
  size_t bsize = a->blocks ? a->blocks->size * 2 : 4096;
  if (bsize < need * 2) bsize = need * 2;
  if (bsize < need) tt_oom(); /* overflow: no such memory anywhere */
  tt_arena_block *b = tt_xmalloc(sizeof *b + bsize);
  b->next = a->blocks;
  b->size = bsize;
  a->blocks = b;
  a->base = b->data;
  a->size = bsize;
  a->used = need;
  a->total += need;
  return b->data;
}

void *tt_arena_calloc(tt_arena *a, size_t n) {
  void *p = tt_arena_alloc(a, n);
  if (p) memset(p, 0, n);
  return p;
}

char *tt_arena_strndup(tt_arena *a, const char *s, size_t n) {
  char *p = tt_arena_alloc(a, n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *tt_arena_strdup(tt_arena *a, const char *s) {
  return tt_arena_strndup(a, s, strlen(s));
}

char *tt_arena_vsprintf(tt_arena *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return NULL; /* a bad format, not memory */
  char *p = tt_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *tt_arena_sprintf(tt_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = tt_arena_vsprintf(a, fmt, ap);
  va_end(ap);
  return p;
}

static void free_blocks(tt_arena *a) {
  tt_arena_block *b = a->blocks;
  while (b) {
    tt_arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->blocks = NULL;
}

void tt_arena_reset(tt_arena *a) {
  free_blocks(a);
  a->base = a->first;
  a->size = a->first_size;
  a->used = 0;
  a->total = 0;
}

void tt_arena_free(tt_arena *a) { tt_arena_reset(a); }
