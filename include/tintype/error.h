/* error.h — tintype's one error space.
 *
 * Every fallible call returns 0 (TT_OK) or a negative code. libuv's codes
 * (negative errno values, UV_E*) pass through unchanged; tintype's own codes
 * live in a range of their own below -10000 so the two never collide.
 * tt_strerror() names any of them. */
#ifndef TINTYPE_ERROR_H
#define TINTYPE_ERROR_H

enum {
  TT_OK = 0,
  TT_ENOMEM = -10001,    /* allocation failed */
  TT_EINVAL = -10002,    /* bad argument or input */
  TT_ENOTFOUND = -10003, /* no such record, message, blob or route */
  TT_ECONFLICT = -10004, /* conditional write lost: version changed */
  TT_EEXIST = -10005,    /* unique key already taken */
  TT_EIO = -10006,       /* storage or network I/O failed */
  TT_ETIMEDOUT = -10007, /* deadline passed */
  TT_ECANCELED = -10008, /* operation canceled (shutdown, client gone) */
  TT_ENOTSUP = -10009,   /* not supported / not built yet */
  TT_ETOOBIG = -10010,   /* over a configured limit */
  TT_EBUSY = -10011,     /* resource busy, try again */
  TT_ESTALE = -10012,    /* handle no longer valid (stale receipt) */
  TT_EINTERNAL = -10013, /* a bug: invariant broken */
  TT_EAUTH = -10014,     /* missing or bad credentials */
};

/* A short, static, human-readable description of any tintype or libuv
 * error code. Never NULL. */
const char *tt_strerror(int err);

/* The symbolic name ("TT_ECONFLICT", "ECONNRESET"). Never NULL. */
const char *tt_err_name(int err);

#endif
