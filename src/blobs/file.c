/* file.c — the filesystem blob backend (file://DIR), filling tt_blobs_ops
 * from include/tintype/blobs.h.
 *
 * The blob KEY is the file DIR/KEY (directories made on demand). A put
 * streams into DIR/KEY's directory as ".tt-put-XXXXXX" (mkstemp), sets the
 * content type as the xattr user.tintype.content_type, fsyncs, renames over
 * DIR/KEY and fsyncs the directory: atomic and durable when the commit
 * callback says so. Every blocking call runs on libuv's thread pool
 * (uv_queue_work); callbacks come back on the loop. Keys and content types
 * arrive checked by the front (blobs.c, tt_blobs_key_valid), so no key
 * leaves DIR; symlinks inside DIR are not created by tintype and not
 * defended against (DIR belongs to tintype).
 *
 * Temp files left by a process killed mid-put are never served (no key can
 * name ".tt*") and are swept when a process opens DIR: a writer holds an
 * flock on its temp file for the file's whole life, the kernel drops it
 * when the writer dies, so the sweep removes exactly the temp files nobody
 * is writing (another process's upload in progress stays). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tintype/alloc.h"
#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tintype/log.h"

#define XATTR_CTYPE "user.tintype.content_type"
#define DEFAULT_CTYPE "application/octet-stream"

typedef struct fblobs {
  tt_blobs base;
  char *root;
  int sweeping, close_asked; /* close waits for the sweep (below) */
  tt_blobs_close_cb close_cb;
  void *close_ud;
} fblobs;

typedef struct fwriter {
  tt_blob_writer base;
  char *path; /* DIR/KEY */
  char *tmp;  /* temp file path once opened */
  char ctype[TT_BLOB_CTYPE_MAX + 1];
  int fd;
  int err; /* sticky: a failed write fails the commit */
} fwriter;

typedef struct freader {
  tt_blob_reader base;
  int fd;
  char *buf;
} freader;

enum { F_WRITE, F_COMMIT, F_ABORT, F_OPEN, F_READ, F_HEAD, F_DELETE };

typedef struct fop {
  uv_work_t req;
  fblobs *fb;
  int what, status;
  char *path;
  fwriter *w;
  freader *r;
  const void *data;
  size_t len;
  /* info */
  int64_t size, mtime_ms;
  char ctype[TT_BLOB_CTYPE_MAX + 1], etag[64];
  union {
    tt_blobs_cb plain;
    tt_blobs_info_cb info;
    tt_blobs_open_cb open;
    tt_blobs_read_cb read;
  } cb;
  void *ud;
} fop;

static int errno_tt(int e) {
  switch (e) {
  case ENOENT:
  case ENOTDIR:
  case EISDIR: return TT_ENOTFOUND;
  case ENOMEM: return TT_ENOMEM;
  case ENOSPC: return UV_ENOSPC;
  case EDQUOT: return UV_ENOSPC;
  case EACCES:
  case EPERM: return UV_EACCES;
  default: return TT_EIO;
  }
}

static char *key_path(fblobs *fb, const char *key) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", fb->root, key) < 0) tt_oom();
  return p;
}

static int mkparents(const char *path) {
  char *p = strdup(path);
  if (!p) return TT_ENOMEM;
  char *slash = strrchr(p, '/');
  int err = TT_OK;
  if (slash && slash != p) {
    *slash = 0;
    struct stat st;
    if (stat(p, &st) != 0) {
      for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) err = errno_tt(errno);
        *s = '/';
      }
      if (!err && mkdir(p, 0755) != 0 && errno != EEXIST) err = errno_tt(errno);
    }
  }
  free(p);
  return err;
}

static void fill_info(fop *op, const struct stat *st, int fd, const char *path) {
  op->size = st->st_size;
  op->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
  snprintf(op->etag, sizeof op->etag, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_size,
           (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st->st_mtim.tv_nsec,
           (unsigned long long)st->st_ino);
  ssize_t n = fd >= 0 ? fgetxattr(fd, XATTR_CTYPE, op->ctype, sizeof op->ctype - 1)
                      : getxattr(path, XATTR_CTYPE, op->ctype, sizeof op->ctype - 1);
  if (n <= 0) n = snprintf(op->ctype, sizeof op->ctype, "%s", DEFAULT_CTYPE);
  op->ctype[n] = 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t r = write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_tt(errno);
    }
    p += r;
    n -= (size_t)r;
  }
  return TT_OK;
}

static int open_tmp(fwriter *w) {
  int err = mkparents(w->path);
  if (err) return err;
  const char *slash = strrchr(w->path, '/');
  if (asprintf(&w->tmp, "%.*s/.tt-put-XXXXXX", (int)(slash - w->path), w->path) < 0) {
    w->tmp = NULL;
    return TT_ENOMEM;
  }
  char *templ = tt_xstrdup(w->tmp);
  for (int tries = 0;; tries++) {
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
      err = errno_tt(errno);
      free(templ);
      free(w->tmp);
      w->tmp = NULL;
      return err == TT_ENOTFOUND ? TT_EIO : err;
    }
    /* held until the file is renamed or removed (or this process dies): the
     * sweep of another process's open leaves a locked temp file alone */
    struct stat st;
    if (flock(w->fd, LOCK_EX) == 0 && fstat(w->fd, &st) == 0 && st.st_nlink > 0) break;
    /* a sweep removed it between mkostemp and flock: make another */
    close(w->fd);
    w->fd = -1;
    if (tries == 3) {
      free(templ);
      return TT_EIO;
    }
    strcpy(w->tmp, templ);
  }
  free(templ);
  fchmod(w->fd, 0644);
  return TT_OK;
}

static void drop_tmp(fwriter *w) {
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  if (w->tmp) unlink(w->tmp);
  free(w->tmp);
  w->tmp = NULL;
}

static void work(uv_work_t *req) {
  fop *op = req->data;
  fwriter *w = op->w;
  struct stat st;
  switch (op->what) {
  case F_WRITE:
    if (w->err) break;
    if (w->fd < 0 && (w->err = open_tmp(w))) break;
    w->err = write_all(w->fd, op->data, op->len);
    break;
  case F_COMMIT: {
    if (w->err) break;
    if (w->fd < 0 && (w->err = open_tmp(w))) break;
    if (w->ctype[0] && fsetxattr(w->fd, XATTR_CTYPE, w->ctype, strlen(w->ctype), 0) != 0) {
      w->err = errno == ENOTSUP ? TT_ENOTSUP : errno_tt(errno);
      break;
    }
    if (fsync(w->fd) != 0 || fstat(w->fd, &st) != 0) {
      w->err = errno_tt(errno);
      break;
    }
    if (rename(w->tmp, w->path) != 0) {
      w->err = errno == EISDIR ? TT_EEXIST : errno_tt(errno);
      break;
    }
    free(w->tmp);
    w->tmp = NULL; /* renamed: nothing to clean up */
    fill_info(op, &st, w->fd, NULL);
    close(w->fd);
    w->fd = -1;
    char *dir = strdup(w->path);
    if (dir) {
      *strrchr(dir, '/') = 0;
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        if (fsync(dfd) != 0) w->err = errno_tt(errno);
        close(dfd);
      }
      free(dir);
    }
    break;
  }
  case F_ABORT: break; /* cleanup happens in drop_tmp below */
  case F_OPEN: {
    int fd = open(op->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      op->status = errno_tt(errno);
      return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      op->status = TT_ENOTFOUND;
      return;
    }
    fill_info(op, &st, fd, NULL);
    op->r->fd = fd;
    return;
  }
  case F_READ: {
    ssize_t n;
    do n = read(op->r->fd, op->r->buf, TT_BLOB_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0) op->status = errno_tt(errno);
    else op->len = (size_t)n;
    return;
  }
  case F_HEAD:
    if (stat(op->path, &st) != 0) op->status = errno_tt(errno);
    else if (!S_ISREG(st.st_mode)) op->status = TT_ENOTFOUND;
    else fill_info(op, &st, -1, op->path);
    return;
  case F_DELETE:
    if (unlink(op->path) != 0) op->status = errno == EISDIR ? TT_ENOTFOUND : errno_tt(errno);
    return;
  }
  /* writer ops end here */
  if (op->what == F_COMMIT || op->what == F_ABORT) {
    if (w->err || op->what == F_ABORT) drop_tmp(w);
  }
  op->status = op->what == F_ABORT ? TT_OK : w->err;
}

static void writer_free(fwriter *w) {
  drop_tmp(w);
  free(w->path);
  free(w);
}

static void after(uv_work_t *req, int status) {
  fop *op = req->data;
  if (status == UV_ECANCELED && !op->status) op->status = TT_ECANCELED;
  tt_blob_info info = {op->size, op->ctype, op->etag, op->mtime_ms};
  switch (op->what) {
  case F_WRITE: op->cb.plain(op->ud, op->status); break;
  case F_COMMIT:
    writer_free(op->w);
    op->cb.info(op->ud, op->status, op->status ? NULL : &info);
    break;
  case F_ABORT:
    writer_free(op->w);
    if (op->cb.plain) op->cb.plain(op->ud, op->status);
    break;
  case F_OPEN:
    if (op->status) {
      free(op->r->buf);
      free(op->r);
      op->r = NULL;
    }
    op->cb.open(op->ud, op->status, op->r ? &op->r->base : NULL, op->status ? NULL : &info);
    break;
  case F_READ: op->cb.read(op->ud, op->status, op->status ? NULL : op->r->buf, op->len); break;
  case F_HEAD: op->cb.info(op->ud, op->status, op->status ? NULL : &info); break;
  case F_DELETE:
    if (op->cb.plain) op->cb.plain(op->ud, op->status);
    break;
  }
  free(op->path);
  free(op);
}

static fop *op_new(fblobs *fb, int what, void *ud) {
  fop *op = tt_xcalloc(1, sizeof *op);
  op->fb = fb;
  op->what = what;
  op->ud = ud;
  op->req.data = op;
  return op;
}

static void submit(fop *op) {
  if (uv_queue_work(op->fb->base.loop, &op->req, work, after) != 0) abort();
}

static tt_blob_writer *f_put_start(tt_blobs *b, const char *key, const char *ctype) {
  fwriter *w = tt_xcalloc(1, sizeof *w);
  w->fd = -1;
  w->path = key_path((fblobs *)b, key);
  if (ctype) snprintf(w->ctype, sizeof w->ctype, "%s", ctype);
  return &w->base;
}

static void f_write(tt_blob_writer *bw, const void *data, size_t len, tt_blobs_cb cb, void *ud) {
  fop *op = op_new((fblobs *)bw->blobs, F_WRITE, ud);
  op->w = (fwriter *)bw;
  op->data = data;
  op->len = len;
  op->cb.plain = cb;
  submit(op);
}

static void f_commit(tt_blob_writer *bw, tt_blobs_info_cb cb, void *ud) {
  fop *op = op_new((fblobs *)bw->blobs, F_COMMIT, ud);
  op->w = (fwriter *)bw;
  op->cb.info = cb;
  submit(op);
}

static void f_abort(tt_blob_writer *bw, tt_blobs_cb cb, void *ud) {
  fop *op = op_new((fblobs *)bw->blobs, F_ABORT, ud);
  op->w = (fwriter *)bw;
  op->cb.plain = cb;
  submit(op);
}

static void f_get_open(tt_blobs *b, const char *key, tt_blobs_open_cb cb, void *ud) {
  fop *op = op_new((fblobs *)b, F_OPEN, ud);
  op->cb.open = cb;
  op->r = tt_xcalloc(1, sizeof *op->r);
  op->r->buf = tt_xmalloc(TT_BLOB_CHUNK);
  op->r->fd = -1;
  op->path = key_path((fblobs *)b, key);
  submit(op);
}

static void f_read(tt_blob_reader *br, tt_blobs_read_cb cb, void *ud) {
  fop *op = op_new((fblobs *)br->blobs, F_READ, ud);
  op->r = (freader *)br;
  op->cb.read = cb;
  submit(op);
}

static void f_get_close(tt_blob_reader *br) {
  freader *r = (freader *)br;
  if (r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r);
}

static void f_head(tt_blobs *b, const char *key, tt_blobs_info_cb cb, void *ud) {
  fop *op = op_new((fblobs *)b, F_HEAD, ud);
  op->cb.info = cb;
  op->path = key_path((fblobs *)b, key);
  submit(op);
}

static void f_del(tt_blobs *b, const char *key, tt_blobs_cb cb, void *ud) {
  fop *op = op_new((fblobs *)b, F_DELETE, ud);
  op->cb.plain = cb;
  op->path = key_path((fblobs *)b, key);
  submit(op);
}

static int f_url(tt_blobs *b, const char *key, int64_t expires_s, char *out, size_t outlen) {
  (void)b;
  (void)expires_s;
  int n = snprintf(out, outlen, "/api/blobs/%s", key);
  return n < 0 || (size_t)n >= outlen ? TT_ETOOBIG : TT_OK;
}

/* the front calls this once no op is in flight */
static void finish_free(fblobs *fb);

static void f_close(tt_blobs *b, tt_blobs_close_cb cb, void *ud) {
  fblobs *fb = (fblobs *)b;
  fb->close_cb = cb;
  fb->close_ud = ud;
  fb->close_asked = 1;
  if (!fb->sweeping) finish_free(fb);
}

static const tt_blobs_ops file_ops = {
    .name = "file",
    .put_start = f_put_start,
    .write = f_write,
    .commit = f_commit,
    .abort = f_abort,
    .get_open = f_get_open,
    .read = f_read,
    .get_close = f_get_close,
    .head = f_head,
    .del = f_del,
    .url = f_url,
    .close = f_close,
};

/* ---- the sweep of interrupted puts --------------------------------------
 * On libuv's thread pool right after open, so a process starts at once
 * (a walk of 20,000 blobs with a stat per file took 1.6-2 s on this
 * machine; this one reads directory entries only and opens just the
 * .tt-put-* files). close waits for it. */

typedef struct sweep {
  uv_work_t req;
  fblobs *fb;
  int removed;
} sweep;

static void sweep_dir(int dfd, int depth, int *removed) {
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    int type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_REG && !strncmp(n, ".tt-put-", 8)) {
      int fd = openat(dfd, n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      /* the lock is free only when its writer is gone */
      if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dfd, n, 0) == 0) (*removed)++;
      close(fd);
    } else if (type == DT_DIR && depth < 32) {
      int sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (sub >= 0) sweep_dir(sub, depth + 1, removed);
    }
  }
  closedir(d);
}

static void sweep_work(uv_work_t *req) {
  sweep *sw = req->data;
  int fd = open(sw->fb->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) sweep_dir(fd, 0, &sw->removed);
}

static void finish_free(fblobs *fb) {
  tt_blobs_close_cb cb = fb->close_cb;
  void *ud = fb->close_ud;
  free(fb->root);
  free(fb);
  if (cb) cb(ud);
}

static void sweep_done(uv_work_t *req, int status) {
  (void)status;
  sweep *sw = req->data;
  fblobs *fb = sw->fb;
  if (sw->removed)
    tt_logf(TT_LOG_INFO, "blobs: removed %d temp files of interrupted uploads", sw->removed);
  free(sw);
  fb->sweeping = 0;
  if (fb->close_asked) finish_free(fb);
}

int tt_blobs_file_open(uv_loop_t *loop, const char *url, tt_blobs **out) {
  *out = NULL;
  const char *p = url + 7;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') n--;
  if (n == 0 || strchr(p, '?')) return TT_EINVAL;
  fblobs *fb = calloc(1, sizeof *fb);
  if (!fb || !(fb->root = strndup(p, n))) {
    free(fb);
    return TT_ENOMEM;
  }
  char *probe = NULL;
  int err = asprintf(&probe, "%s/x", fb->root) < 0 ? TT_ENOMEM : mkparents(probe);
  free(probe);
  struct stat st;
  if (!err && (stat(fb->root, &st) != 0 || !S_ISDIR(st.st_mode))) err = TT_EIO;
  if (err) {
    free(fb->root);
    free(fb);
    return err == TT_ENOMEM ? err : TT_EIO;
  }
  fb->base.ops = &file_ops;
  fb->base.loop = loop;
  sweep *sw = tt_xcalloc(1, sizeof *sw);
  sw->fb = fb;
  sw->req.data = sw;
  fb->sweeping = 1;
  if (uv_queue_work(loop, &sw->req, sweep_work, sweep_done) != 0) abort(); /* fails only for a NULL cb */
  *out = &fb->base;
  return TT_OK;
}
