/* options.h — the options of one render (DESIGN §4 "Job options"): parsed
 * and validated from JSON, with defaults, and written back as canonical JSON.
 *
 * One module for every entry point that takes them — POST /api/jobs, the
 * `shot` command, the worker reading a job record — so validation and
 * defaults cannot drift apart. Limits come from tt_config (max viewport,
 * longest timeout and delay, longest URL) and are named in the error. */
#ifndef TINTYPE_OPTIONS_H
#define TINTYPE_OPTIONS_H

#include <jansson.h>
#include <stddef.h>

#include "tintype/config.h"

typedef enum { TT_FMT_PNG, TT_FMT_JPEG, TT_FMT_WEBP } tt_format;
typedef enum { TT_WAIT_LOAD, TT_WAIT_DOMCONTENTLOADED, TT_WAIT_NETWORKIDLE } tt_wait_until;

typedef struct tt_options {
  char url[8192];
  int width, height; /* CSS pixels */
  double scale;      /* device scale factor */
  int mobile;
  int full_page;
  tt_format format;
  int quality; /* 1..100; jpeg and webp only (0 when png) */
  tt_wait_until wait_until;
  char wait_for[1024]; /* CSS selector or "" */
  char selector[1024]; /* CSS selector or "" */
  int delay_ms;
  int timeout_ms;
  int dark_mode;
  int isolation_job;      /* "isolation": "job": a fresh browser context even when the worker keeps warm ones */
  int optimize_for_speed; /* png only: Chromium's faster, larger encoding (about 2x the bytes) */
} tt_options;

/* Fills defaults: 1280x800 @1, png, wait_until load, timeout from config. */
void tt_options_defaults(tt_options *o, const tt_config *cfg);

/* Validates `in` (a JSON object) into *o (defaults first). On error returns
 * TT_EINVAL and writes the offending field's name ("viewport.width", or the
 * unknown key) into field and a sentence into detail. */
int tt_options_parse(const json_t *in, const tt_config *cfg, tt_options *o, char *field, size_t fieldlen,
                     char *detail, size_t detaillen);

/* Canonical JSON of every option (new reference). */
json_t *tt_options_to_json(const tt_options *o);

const char *tt_format_name(tt_format f);      /* "png" */
const char *tt_format_mime(tt_format f);      /* "image/png" */
const char *tt_wait_until_name(tt_wait_until w);

#endif
