/* error.c — names for the codes of include/tintype/error.h.
 *
 * tintype's own codes are in a table; anything else is handed to libuv,
 * whose codes are negative errno values. */
#include "tintype/error.h"

#include <uv.h>

static const struct {
  int code;
  const char *name;
  const char *text;
} tt_errors[] = {
    {TT_OK, "TT_OK", "success"},
    {TT_ENOMEM, "TT_ENOMEM", "out of memory"},
    {TT_EINVAL, "TT_EINVAL", "invalid argument"},
    {TT_ENOTFOUND, "TT_ENOTFOUND", "not found"},
    {TT_ECONFLICT, "TT_ECONFLICT", "conflict: record changed since read"},
    {TT_EEXIST, "TT_EEXIST", "already exists"},
    {TT_EIO, "TT_EIO", "input/output error"},
    {TT_ETIMEDOUT, "TT_ETIMEDOUT", "timed out"},
    {TT_ECANCELED, "TT_ECANCELED", "canceled"},
    {TT_ENOTSUP, "TT_ENOTSUP", "not supported"},
    {TT_ETOOBIG, "TT_ETOOBIG", "over the configured limit"},
    {TT_EBUSY, "TT_EBUSY", "busy"},
    {TT_ESTALE, "TT_ESTALE", "stale handle"},
    {TT_EINTERNAL, "TT_EINTERNAL", "internal error"},
    {TT_EAUTH, "TT_EAUTH", "authentication failed"},
};

const char *tt_strerror(int err) {
  for (unsigned i = 0; i < sizeof tt_errors / sizeof tt_errors[0]; i++)
    if (tt_errors[i].code == err) return tt_errors[i].text;
  if (err < 0 && err > -4096) return uv_strerror(err);
  return "unknown error";
}

const char *tt_err_name(int err) {
  for (unsigned i = 0; i < sizeof tt_errors / sizeof tt_errors[0]; i++)
    if (tt_errors[i].code == err) return tt_errors[i].name;
  if (err < 0 && err > -4096) return uv_err_name(err);
  return "UNKNOWN";
}
