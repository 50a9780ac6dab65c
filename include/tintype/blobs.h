/* blobs.h — the bytes seam (DESIGN §2): put / get / head / delete by key.
 *
 * The URL's scheme picks the backend from the table in src/backends.c:
 *   file://DIR    embedded, src/blobs/file.c: the blob is the file DIR/KEY.
 *   s3://B/P      recognised, TT_ENOTSUP until its backend is listed
 *   else          TT_EINVAL
 *
 * Keys: 1..1024 bytes, '/'-separated segments of printable ASCII; no empty
 * segment (so no leading/trailing or doubled '/'), no "." or ".." segment,
 * no backslash, no NUL or control byte, no segment starting with ".tt"
 * (reserved for temp files). Anything else is TT_EINVAL: no key can leave
 * the root. Keys used by tintype: images/ID/raw, images/ID/processed,
 * images/ID/thumb, jobs/ID.EXT (DESIGN §3).
 *
 * Put is atomic: readers see the old blob or the whole new one, never a part
 * (file: written to a temp file in the target directory, fsync, rename,
 * fsync of the directory; a put that is aborted or fails leaves nothing).
 * When the put callback reports success the bytes survive a crash.
 * Content type is kept with the bytes (file: extended attribute
 * user.tintype.content_type set on the temp file before the rename, so it
 * is replaced atomically with the data). The etag changes whenever the bytes
 * are replaced (file: "<size hex>-<mtime ns hex>-<inode hex>").
 *
 * Calling convention: as store.h — callbacks exactly once, on the loop,
 * never before the call returns; errors TT_EINVAL (bad key), TT_ENOTFOUND,
 * TT_EIO, TT_ENOMEM, TT_ETOOBIG, or a libuv code (UV_ENOSPC...). Data passed
 * to tt_blobs_write must stay valid until its callback (as uv_write); info
 * and chunks handed to callbacks are valid only until the callback returns. */
#ifndef TINTYPE_BLOBS_H
#define TINTYPE_BLOBS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct tt_blobs tt_blobs;
typedef struct tt_blob_writer tt_blob_writer;
typedef struct tt_blob_reader tt_blob_reader;

#define TT_BLOB_KEY_MAX 1024
#define TT_BLOB_CTYPE_MAX 255
#define TT_BLOB_CHUNK (256 * 1024) /* get: bytes per read callback at most */

typedef struct tt_blob_info {
  int64_t size;
  const char *content_type; /* "application/octet-stream" when none was given */
  const char *etag;         /* quoted, as an HTTP ETag */
  int64_t mtime_ms;
} tt_blob_info;

typedef void (*tt_blobs_cb)(void *ud, int status);
typedef void (*tt_blobs_info_cb)(void *ud, int status, const tt_blob_info *info);
/* get_open: r is NULL when status != 0 */
typedef void (*tt_blobs_open_cb)(void *ud, int status, tt_blob_reader *r, const tt_blob_info *info);
/* read: len == 0 with status 0 is the end */
typedef void (*tt_blobs_read_cb)(void *ud, int status, const char *data, size_t len);
/* get_all */
typedef void (*tt_blobs_data_cb)(void *ud, int status, const tt_blob_info *info, const char *data,
                                 size_t len);
typedef void (*tt_blobs_close_cb)(void *ud);

/* The backend vtable. Callers use the tt_blobs_* functions below; a backend
 * fills this struct, embeds struct tt_blobs first in its handle (and
 * struct tt_blob_writer / tt_blob_reader first in its writers and
 * readers), and is listed in src/backends.c. The front (src/blobs/blobs.c)
 * owns the contract, so by the time an op is called the store is open,
 * every key satisfies tt_blobs_key_valid and every content type
 * tt_blobs_ctype_valid (NULL: none given). put_start allocates a writer
 * (never NULL; the front sets its base); get_open hands its reader to the
 * callback (the front sets its base). A backend calls cb exactly once, on
 * the loop; failing inline is allowed (the front defers it), delivering
 * info, a reader or bytes inline is not. close is called once no op is in
 * flight: the backend frees its handle and then calls cb(ud). */
typedef struct tt_blobs_ops {
  const char *name;
  tt_blob_writer *(*put_start)(tt_blobs *b, const char *key, const char *content_type);
  void (*write)(tt_blob_writer *w, const void *data, size_t len, tt_blobs_cb cb, void *ud);
  void (*commit)(tt_blob_writer *w, tt_blobs_info_cb cb, void *ud);
  void (*abort)(tt_blob_writer *w, tt_blobs_cb cb, void *ud);
  void (*get_open)(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud);
  void (*read)(tt_blob_reader *r, tt_blobs_read_cb cb, void *ud);
  void (*get_close)(tt_blob_reader *r);
  void (*head)(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud);
  void (*del)(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud);
  int (*url)(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen);
  void (*close)(tt_blobs *b, tt_blobs_close_cb cb, void *ud);
} tt_blobs_ops;

/* Every backend's handle starts with this. The backend's open sets ops and
 * loop and zeroes the rest (calloc); the rest belongs to the front. */
struct tt_blobs {
  const tt_blobs_ops *ops;
  uv_loop_t *loop;
  int inflight; /* calls whose callback has not returned yet */
  int closing;
  tt_blobs_close_cb close_cb;
  void *close_ud;
};

/* A backend's writer and reader start with these; the front fills them. */
struct tt_blob_writer {
  tt_blobs *blobs;
  int err; /* set by the front for a writer it refused (bad key, closing) */
};
struct tt_blob_reader {
  tt_blobs *blobs;
};

/* Synchronous; creates DIR if needed. TT_EINVAL, TT_ENOTSUP, TT_EIO. */
int tt_blobs_open(uv_loop_t *loop, const char *url, tt_blobs **out);

/* Streamed put. put_start only allocates (never NULL); a bad key shows
 * up as TT_EINVAL from the first write or the commit. Then any number of
 * writes, one at a time (the next after the previous callback), then
 * exactly one of commit (cb gets the new blob's info) or abort. The writer
 * is freed when commit/abort calls back. */
tt_blob_writer *tt_blobs_put_start(tt_blobs *b, const char *key, const char *content_type);
void tt_blobs_write(tt_blob_writer *w, const void *data, size_t len, tt_blobs_cb cb, void *ud);
void tt_blobs_commit(tt_blob_writer *w, tt_blobs_info_cb cb, void *ud);
void tt_blobs_abort(tt_blob_writer *w, tt_blobs_cb cb, void *ud);

/* Whole-buffer put: start + write + commit. data is copied before return. */
void tt_blobs_put(tt_blobs *b, const char *key, const char *content_type, const void *data,
                  size_t len, tt_blobs_info_cb cb, void *ud);

/* Streamed get: open (cb gets a reader and the info), then read one chunk
 * at a time (pull: the next read after the previous callback, so a slow
 * consumer holds no more than one chunk), then get_close (always, also
 * after an error or early stop). The reader sees the blob as it was at
 * open even if it is replaced meanwhile. */
void tt_blobs_get_open(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud);
void tt_blobs_read(tt_blob_reader *r, tt_blobs_read_cb cb, void *ud);
void tt_blobs_get_close(tt_blob_reader *r);

/* Whole blob in one callback; TT_ETOOBIG when larger than max bytes. */
void tt_blobs_get_all(tt_blobs *b, const char *key, size_t max, tt_blobs_data_cb cb, void *ud);

/* Size, content type, etag, mtime. TT_ENOTFOUND when absent. */
void tt_blobs_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud);

/* Deletes; TT_ENOTFOUND when absent. */
void tt_blobs_delete(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud);

/* Synchronous. Where a client can download key: file backend writes the
 * API's own path "/api/blobs/KEY" (the API signs and serves it, DESIGN §4);
 * s3 will write a presigned GET valid expires_s seconds. TT_EINVAL (bad key),
 * TT_ETOOBIG (outlen too small). */
int tt_blobs_url(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen);

/* Closes: operations in flight complete first, then cb (may be NULL).
 * Calls after close fail with TT_ECANCELED (and are a bug). */
void tt_blobs_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud);

/* 1 when key satisfies the rules above (exposed for the API and tests). */
int tt_blobs_key_valid(const char *key);
/* 1 when ctype is NULL or at most TT_BLOB_CTYPE_MAX bytes without control
 * characters. */
int tt_blobs_ctype_valid(const char *ctype);

#endif
