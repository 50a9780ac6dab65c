/* log.h — tintype's one logging path: one JSON object per line.
 *
 * Every line has "time" (RFC 3339 UTC, milliseconds), "level", "pid",
 * "role" and "msg"; structured fields are added with the builder:
 *
 *   tt_buf *l = tt_log_begin(TT_LOG_INFO, "request");
 *   if (l) { tt_log_str(l, "path", p, n); tt_log_int(l, "status", 200);
 *            tt_log_end(l); }
 *
 * tt_log_begin returns NULL when the level is filtered out (and then holds
 * no lock). Between begin and end a process-wide lock is held, so lines
 * from libuv's thread pool never interleave. In buffered mode (servers)
 * lines collect in memory and reach the fd at tt_log_flush() — called once
 * per loop iteration — or when 64 KiB are waiting; otherwise each line is
 * written at tt_log_end. */
#ifndef TINTYPE_LOG_H
#define TINTYPE_LOG_H

#include <stddef.h>

#include "tintype/buf.h"

typedef enum { TT_LOG_DEBUG, TT_LOG_INFO, TT_LOG_WARN, TT_LOG_ERROR, TT_LOG_OFF } tt_log_level;

void tt_log_init(int fd, tt_log_level min, const char *role);
/* "debug" | "info" | "warn" | "error" | "off" -> level, -1 when unknown */
int tt_log_level_parse(const char *s);
void tt_log_set_role(const char *role); /* e.g. "api", "supervisor" */
void tt_log_set_buffered(int on);
void tt_log_flush(void);
int tt_log_enabled(tt_log_level lvl);

tt_buf *tt_log_begin(tt_log_level lvl, const char *msg);
void tt_log_str(tt_buf *line, const char *key, const char *val, size_t len);
void tt_log_cstr(tt_buf *line, const char *key, const char *val);
void tt_log_int(tt_buf *line, const char *key, long long val);
void tt_log_end(tt_buf *line);

/* A plain line: msg formatted printf-style. */
void tt_logf(tt_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
