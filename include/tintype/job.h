/* job.h — the job domain (src/job/), shared by the API, the worker and
 * `tintype shot` so that none of them keeps a twin:
 *   - the options of one render (DESIGN §4 "Job options"): parsed and
 *     validated from JSON, with defaults, written back as canonical JSON
 *     (src/job/options.c). Limits come from tt_config (max viewport,
 *     longest timeout and delay, longest URL) and are named in the error;
 *   - the states of a job and of an image, as enums with their stored names;
 *   - the queue names and the message format between API and worker
 *     (src/job/job.c). */
#ifndef TINTYPE_JOB_H
#define TINTYPE_JOB_H

#include <jansson.h>
#include <stddef.h>

#include "tintype/config.h"
#include "tintype/id.h"

/* ---- states ---------------------------------------------------------------
 * Records store the names (store.h: char *state); code compares enums. */
typedef enum {
  TT_JOB_QUEUED,
  TT_JOB_RUNNING,
  TT_JOB_SUCCEEDED,
  TT_JOB_FAILED,
  TT_JOB_CANCELED,
  TT_JOB_NSTATES
} tt_job_state;

typedef enum {
  TT_IMAGE_CREATED,
  TT_IMAGE_UPLOADED,
  TT_IMAGE_PROCESSING,
  TT_IMAGE_PROCESSED,
  TT_IMAGE_FAILED,
  TT_IMAGE_NSTATES
} tt_image_state;

const char *tt_job_state_name(tt_job_state s);     /* "queued" */
const char *tt_image_state_name(tt_image_state s); /* "created" */
/* The state named s; -1 when s is NULL or no state's name. */
int tt_job_state_of(const char *s);
int tt_image_state_of(const char *s);
/* 1 for succeeded, failed, canceled: nothing moves a job on from there. */
int tt_job_state_final(const char *s);

/* ---- queues and messages ----------------------------------------------------
 * The API sends one message per job (to TT_QUEUE_JOBS) and per uploaded
 * image (TT_QUEUE_IMAGES): {"job":"ID"} or {"image":"ID"} (a requeued job's
 * message carries more, below). The record is the
 * truth; the message only names it. */
#define TT_QUEUE_JOBS "jobs"
#define TT_QUEUE_IMAGES "images"
#define TT_JOB_MSG_MAX 96

/* Writes the message naming job (or image) id into out; its length. */
int tt_job_message(char out[TT_JOB_MSG_MAX], const char *id);
int tt_image_message(char out[TT_JOB_MSG_MAX], const char *id);
/* A job's message sent again by a worker that gave the job's slot to another
 * owner (worker.c, fairness): {"job":"ID","preempted":N}, N the times it
 * was preempted, so a job is preempted a bounded number of times. */
int tt_job_message_requeued(char out[TT_JOB_MSG_MAX], const char *id, int preempted);
/* N of that message; 0 for a message the API sent. */
int tt_job_message_preempted(const char *body, size_t len);
/* The id a message names; TT_EINVAL when it names no job (no image). */
int tt_job_message_parse(const char *body, size_t len, char id[TT_ID_SIZE]);
int tt_image_message_parse(const char *body, size_t len, char id[TT_ID_SIZE]);

/* ---- options --------------------------------------------------------------- */

typedef enum { TT_FMT_PNG, TT_FMT_JPEG, TT_FMT_WEBP, TT_FMT_PDF } tt_format;

/* format "pdf": Page.printToPDF's paper, in inches (rounded to 1e-5, so the
 * canonical JSON reads back to the same values). The paper's size is the
 * portrait one; landscape turns it. */
typedef struct tt_pdf_options {
  char paper[16];       /* "A4" ... when named, else "" (width and height given) */
  double width, height; /* inches */
  int landscape;
  double margin[4];     /* top, right, bottom, left; inches */
  int print_background;
  char page_ranges[256]; /* "1-3, 5" or "" (every page) */
  double scale;          /* 0.1 .. 2 */
  int media_screen;      /* 1: the page's screen styles, not its @media print ones */
} tt_pdf_options;

/* Paper sides a job may ask for, inches (Chromium refuses less than 0.1;
 * 100 in is more than any printer's roll) */
#define TT_PDF_MIN_SIDE_IN 1.0
#define TT_PDF_MAX_SIDE_IN 100.0
typedef enum { TT_WAIT_LOAD, TT_WAIT_DOMCONTENTLOADED, TT_WAIT_NETWORKIDLE } tt_wait_until;

/* page controls: the most bytes a job's css or js may have (the configured
 * max-css-bytes / max-js-bytes are at most this) and the room for one list
 * of selectors (each NUL-terminated) */
#define TT_PAGE_CODE_MAX 32768
#define TT_SELECTOR_LIST_MAX 8192
#define TT_CONTROL_JSON_MAX 8192 /* headers and cookies, as canonical JSON */

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
  int64_t max_pixels; /* the pixel budget of one capture: from config (max-capture-pixels), not from the job */
  int isolation_job;      /* "isolation": "job": a fresh browser context even when the worker keeps warm ones */
  int optimize_for_speed; /* png only: Chromium's faster, larger encoding (~1.3x the bytes, half the CPU) */
  int cache_ttl; /* seconds a cached identical result may be reused; 0 = render anew */
  char callback_url[2048]; /* webhook: POSTed the job when it ends, or "" */
  tt_pdf_options pdf;      /* format pdf only */
  /* page controls (issue 15 item 5), "" / 0 when not asked for; applied in
   * this order after wait_for and before delay_ms: css and hide_selectors,
   * js, click_selectors, scroll_to */
  char css[TT_PAGE_CODE_MAX + 1]; /* a stylesheet added to the page */
  char js[TT_PAGE_CODE_MAX + 1];  /* the body of an async function run in the page */
  int js_timeout_ms;              /* js's own limit (max-js-ms) */
  char hide_selectors[TT_SELECTOR_LIST_MAX]; /* NUL-separated; nhide of them */
  int nhide;
  char click_selectors[TT_SELECTOR_LIST_MAX]; /* clicked in order; one matching nothing is skipped */
  int nclick;
  char scroll_to[1024]; /* CSS selector scrolled into view */
  char user_agent[1024];
  char locale[36];   /* BCP 47: navigator.language, Intl, Accept-Language */
  char timezone[64]; /* IANA zone name */
  /* network controls: applied by request interception (Fetch) to the
   * page's own origin only, or (cookies) set for the target URL */
  char headers_json[TT_CONTROL_JSON_MAX]; /* canonical {"Name":"value"} or "" */
  int nheaders;
  char cookies_json[TT_CONTROL_JSON_MAX]; /* canonical [{name, value, ...}] or "" */
  char auth_user[256], auth_password[256]; /* basic_auth, "" when none */
  unsigned block_types;                    /* block_resources: bits of tt_resource_names() */
  char block_urls[TT_SELECTOR_LIST_MAX];   /* NUL-separated glob patterns */
  int nblock_urls;
  int64_t max_pdf_bytes;   /* from config (max-pdf-bytes), not from the job */
  int max_pdf_pages;       /* from config (max-pdf-pages), not from the job */
} tt_options;

/* No side of a capture is longer than this many device pixels (Chromium's
 * largest texture): a wider or taller capture is cut, a wider viewport is
 * refused (400 naming viewport). */
#define TT_CAPTURE_MAX_SIDE 16384

/* Fills defaults: 1280x800 @1, png, wait_until load, timeout from config. */
void tt_options_defaults(tt_options *o, const tt_config *cfg);

/* Validates `in` (a JSON object) into *o (defaults first). On error returns
 * TT_EINVAL and writes the offending field's name ("viewport.width", or the
 * unknown key) into field and a sentence into detail. */
int tt_options_parse(const json_t *in, const tt_config *cfg, tt_options *o, char *field, size_t fieldlen,
                     char *detail, size_t detaillen);

/* Render links (issue 15 item 2): job options given as query parameters
 * (names and values already percent-decoded) made into the JSON object
 * tt_options_parse reads — an adapter, not a second parser. `width`,
 * `height`, `scale`, `mobile` mean viewport.*; a dotted name nests
 * (`viewport.width`, `pdf.landscape`). A value is a string for the options
 * that are strings (url, selectors, ...); otherwise `true`/`false` are
 * booleans, a number is a number, a value starting with `[` or `{` is JSON,
 * anything else a string. A name given twice, or as a value and as a
 * nested name, is TT_EINVAL with the field named. *out: a new reference. */
int tt_options_from_query(const char *const *names, const char *const *values, size_t n, json_t **out,
                          char *field, size_t fieldlen, char *detail, size_t detaillen);

/* Canonical JSON of every option (new reference). */
json_t *tt_options_to_json(const tt_options *o);

/* The result cache's entry id for owner's request o (store.h,
 * tt_cache_entry): a UUID (version 8) made of the SHA-256 of the owner and
 * the canonical JSON of every option that shapes the bytes — everything
 * but cache_ttl itself — so different options, headers or cookies never
 * share an entry and no user ever sees another's. TT_OK or TT_ENOMEM. */
int tt_job_cache_id(const char *owner, const tt_options *o, char out[TT_ID_SIZE]);

/* A UUID (version 8) naming the SHA-256 of the NUL-separated parts (NULL
 * ends the list): deterministic record ids (cache entries, batches). */
void tt_job_derived_id(char out[TT_ID_SIZE], const char *part, ...);

/* block_resources names ("image", "media", ...) and Chromium's resource
 * type of each ("Image", ...), in bit order; n of them. */
const char *const *tt_resource_names(int *n);
const char *const *tt_resource_cdp_types(void);

const char *tt_format_name(tt_format f);      /* "png" */
const char *tt_format_mime(tt_format f);      /* "image/png", "application/pdf" */
const char *tt_wait_until_name(tt_wait_until w);

#endif
