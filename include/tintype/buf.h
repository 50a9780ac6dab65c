/* buf.h — a growable byte buffer (malloc-owned), for bodies, log lines and
 * anything built up piece by piece. The bytes are always NUL-terminated so
 * text can be used as a C string. */
#ifndef TINTYPE_BUF_H
#define TINTYPE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct tt_buf {
  char *data;
  size_t len, cap;
} tt_buf;

#define TT_BUF_INIT {NULL, 0, 0}

int tt_buf_reserve(tt_buf *b, size_t extra); /* TT_OK or TT_ENOMEM */
int tt_buf_append(tt_buf *b, const void *p, size_t n);
int tt_buf_puts(tt_buf *b, const char *s);
int tt_buf_putc(tt_buf *b, char c);
int tt_buf_printf(tt_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
int tt_buf_json_str(tt_buf *b, const char *s, size_t n);
void tt_buf_reset(tt_buf *b); /* len = 0, keeps memory */
void tt_buf_free(tt_buf *b);

#endif
