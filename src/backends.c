/* backends.c — the one table of backends: which open function a URL's
 * scheme names, for each seam (as curl's available_backends[] or SQLite's
 * VFS list). tt_store_open, tt_queue_open and tt_blobs_open live here and
 * do nothing but pick; everything a caller relies on after that (argument
 * checks, deferred errors, in-flight counting, close) is the seam's front:
 * src/store/store.c, src/queue/queue.c, src/blobs/blobs.c.
 *
 * ADDING A BACKEND = its own file (filling tt_*_ops, with an open function
 * `int open(uv_loop_t *, const char *url, tt_X **out)`) + ONE line in the
 * list of its seam below. A scheme listed as PLANNED is recognised and
 * answers TT_ENOTSUP until a backend of that name is listed. */
#include <string.h>

#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/queue.h"
#include "tintype/store.h"

/* X(scheme, open function) */
#define STORE_BACKENDS(X) \
  X("sqlite", tt_store_sqlite_open)     /* src/store/sqlite.c */ \
  X("dynamodb", tt_store_dynamodb_open) /* src/store/dynamodb.c */

#define QUEUE_BACKENDS(X) \
  X("sqlite", tt_queue_sqlite_open) /* src/queue/sqlite.c */ \
  X("sqs", tt_queue_sqs_open)       /* src/queue/sqs.c */

#define BLOBS_BACKENDS(X) \
  X("file", tt_blobs_file_open) /* src/blobs/file.c */ \
  X("s3", tt_blobs_s3_open)     /* src/blobs/s3.c */

/* recognised before their backend exists: TT_ENOTSUP */
static const char *const planned[] = {NULL}; /* all built: dynamodb, sqs, s3 */

/* ---- nothing to edit below this line ------------------------------------ */

#define PROTO_STORE(scheme, fn) int fn(uv_loop_t *loop, const char *url, tt_store **out);
#define PROTO_QUEUE(scheme, fn) int fn(uv_loop_t *loop, const char *url, tt_queue **out);
#define PROTO_BLOBS(scheme, fn) int fn(uv_loop_t *loop, const char *url, tt_blobs **out);
STORE_BACKENDS(PROTO_STORE)
QUEUE_BACKENDS(PROTO_QUEUE)
BLOBS_BACKENDS(PROTO_BLOBS)

#define ROW(scheme, fn) {scheme, fn},
static const struct {
  const char *scheme;
  int (*open)(uv_loop_t *, const char *, tt_store **);
} store_backends[] = {STORE_BACKENDS(ROW){NULL, NULL}};
static const struct {
  const char *scheme;
  int (*open)(uv_loop_t *, const char *, tt_queue **);
} queue_backends[] = {QUEUE_BACKENDS(ROW){NULL, NULL}};
static const struct {
  const char *scheme;
  int (*open)(uv_loop_t *, const char *, tt_blobs **);
} blobs_backends[] = {BLOBS_BACKENDS(ROW){NULL, NULL}};

/* 1 when url is "SCHEME://..." */
static int scheme_is(const char *url, const char *scheme) {
  size_t n = strlen(scheme);
  return !strncmp(url, scheme, n) && !strncmp(url + n, "://", 3);
}

static int unknown(const char *url) {
  for (int i = 0; planned[i]; i++)
    if (scheme_is(url, planned[i])) return TT_ENOTSUP;
  return TT_EINVAL;
}

/* Checks what an open returned: a handle whose base the front can use. */
#define OPEN(table, loop, url, out)                                       \
  do {                                                                    \
    *(out) = NULL;                                                        \
    if (!(loop) || !(url)) return TT_EINVAL;                              \
    for (int i = 0; table[i].scheme; i++) {                               \
      if (!scheme_is(url, table[i].scheme)) continue;                     \
      int err_ = table[i].open(loop, url, out);                           \
      if (err_ == TT_OK && (!*(out) || !(*(out))->ops || (*(out))->loop != (loop))) \
        return TT_EINTERNAL;                                              \
      return err_;                                                        \
    }                                                                     \
    return unknown(url);                                                  \
  } while (0)

int tt_store_open(uv_loop_t *loop, const char *url, tt_store **out) {
  OPEN(store_backends, loop, url, out);
}

int tt_queue_open(uv_loop_t *loop, const char *url, tt_queue **out) {
  OPEN(queue_backends, loop, url, out);
}

int tt_blobs_open(uv_loop_t *loop, const char *url, tt_blobs **out) {
  OPEN(blobs_backends, loop, url, out);
}
