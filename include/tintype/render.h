/* render.h — the render engine (DESIGN §5): one headless Chromium per
 * process, driven over CDP, shooting any number of pages at once, each in a
 * browser context of its own or (isolation_owner) in a warm context of its
 * owner, reset between jobs, whose every request goes through the SSRF proxy
 * of that context, serving one job at a time.
 *
 * Lifecycle: tt_render_open starts the browser and returns at once; shots
 * asked for before it is ready wait for it. When the browser dies, the shots
 * in flight fail with TT_EIO (retryable) and a new browser is started (at
 * once, then with backoff if it keeps dying young). tt_render_close fails
 * what is still waiting with TT_ECANCELED, stops the browser and frees the
 * engine. Everything runs on the loop's thread. */
#ifndef TINTYPE_RENDER_H
#define TINTYPE_RENDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/config.h"
#include "tintype/netpolicy.h"
#include "tintype/job.h"

typedef struct tt_render tt_render;

/* result.blocked_hosts names at most this many refused hosts (a page can
 * ask for any number; the count `blocked` has them all) */
#define TT_RENDER_BLOCKED_HOSTS 10

typedef struct tt_render_opts {
  const char *chromium;         /* NULL or "": tt_chromium_default_binary() */
  const char *chromium_flags;   /* extra flags, space separated; NULL: none */
  const tt_netpolicy *policy;   /* borrowed; NULL: the default policy */
  int max_full_page_height;     /* CSS px; 0: 16384 */
  int spare;                    /* 1: keep one browser context made ahead for the next shot */
  int isolation_owner;          /* 1: warm contexts per owner, reset between jobs (tt_render_shot_owned) */
  int context_max_jobs;         /* jobs per warm context before it is retired; 0: 100 */
  int context_idle_ms;          /* a warm context unused this long is retired; 0: 60000 */
  int max_contexts;             /* warm contexts kept (LRU); 0: 8 */
} tt_render_opts;

/* Where a shot's time went, in milliseconds. */
typedef struct tt_render_timings {
  double queued;   /* waiting for the browser */
  double context;  /* browser context + page + session + emulation */
  double navigate; /* navigation until the wait_until event */
  double wait;     /* wait_for selector + delay */
  double capture;  /* screenshot (Chromium encodes) + base64 decode */
  double total;
} tt_render_timings;

typedef struct tt_render_result {
  unsigned char *data; /* the image; the callback may take it (set NULL) and free() it later */
  size_t len;
  tt_format format;
  int width, height;   /* pixels of the image; pdf: a page's size in points (1/72 in) */
  int pages;           /* pdf: pages in the document */
  int clicked;         /* click_selectors that matched an element (and were clicked) */
  int clicked_asked;   /* the job had click_selectors: `clicked` is in the JSON */
  int blocked_by_job;  /* requests block_resources / block_urls stopped */
  int intercepted;     /* the job had block_*: `blocked_by_job` is in the JSON */
  int http_status;     /* of the main document; 0 when none was seen */
  char final_url[2048];
  int blocked;         /* requests the network policy refused */
  /* the hosts of those requests, each once, the first TT_RENDER_BLOCKED_HOSTS */
  char blocked_hosts[TT_RENDER_BLOCKED_HOSTS][128];
  int nblocked_hosts;
  int clipped;         /* the capture was cut to the pixel budget (max-capture-pixels) or the largest side */
  int context_jobs;    /* jobs the browser context served, this one included (1: a fresh context) */
  tt_render_timings t;
  int retryable;       /* on failure: 1 when another attempt may succeed (browser died) */
  char error[512];     /* on failure: a sentence for the user */
} tt_render_result;

/* status: 0; TT_ETIMEDOUT (the page did not get ready within timeout_ms);
 * TT_EAUTH (the page itself was refused by the network policy); TT_EINVAL
 * (navigation failed, selector matched nothing or is invalid); TT_EIO (the
 * browser or the page crashed, retryable); TT_ECANCELED (engine closing).
 * The result is valid during the callback. */
typedef void (*tt_render_cb)(void *ud, int status, tt_render_result *r);
typedef void (*tt_render_close_cb)(void *ud);

int tt_render_open(uv_loop_t *loop, const tt_render_opts *o, tt_render **out);
/* Where a shot is, for its caller: cb(ud of tt_render_shot, "loading" |
 * "waiting" | "capturing") as it gets there, always before its answer.
 * "waiting" only when the shot has wait_for or delay_ms. */
typedef void (*tt_render_phase_cb)(void *ud, const char *phase);
void tt_render_on_phase(tt_render *r, tt_render_phase_cb cb);
/* Shoots o (copied). The callback runs exactly once, never before this
 * returns. */
void tt_render_shot(tt_render *r, const tt_options *o, tt_render_cb cb, void *ud);
/* The same for a job of owner (a user id; NULL or "": none). With
 * isolation_owner and unless o->isolation_job, the shot runs in a warm
 * context of that owner when one is free (or being reset), and its context
 * is kept for the owner's next job; never in a context of another owner. */
void tt_render_shot_owned(tt_render *r, const tt_options *o, const char *owner, tt_render_cb cb, void *ud);
/* Stops the shot asked for with ud, wherever it is: its callback runs
 * with TT_ECANCELED (never before this returns), and its browser context
 * goes as after a timeout (disposed, or a warm one retired: the page may
 * still be loading). TT_ENOTFOUND when no unanswered shot has that ud.
 * The worker preempts a job with it (worker.c, fairness). */
int tt_render_cancel(tt_render *r, void *ud);
/* Shots in flight now (started or waiting). */
int tt_render_active(const tt_render *r);
/* Browsers started after the first (crashes survived). */
int tt_render_restarts(const tt_render *r);
/* The current browser's pid, 0 when none (tests kill it). */
int tt_render_browser_pid(const tt_render *r);
void tt_render_close(tt_render *r, tt_render_close_cb cb, void *ud);

/* Chromium's "net::ERR_CONNECTION_REFUSED" as words a person understands,
 * the code kept in parentheses (neterr.c); other text is copied. */
void tt_render_net_error_words(const char *error_text, char *out, size_t n);

/* Reads the pixel size from a PNG, JPEG or WebP header; 0 or TT_EINVAL. */
int tt_image_size(const unsigned char *p, size_t n, int *w, int *h);

/* The result's metadata as JSON (format, bytes, width, height,
 * http_status, final_url, blocked, timings; pages for a pdf): what a job record keeps and
 * `tintype shot` prints. New reference. */

json_t *tt_render_result_json(const tt_render_result *r);

/* `tintype shot`: reads one job option flag at argv[*i] into opts (a JSON
 * object of job options). Returns 1 when it took the flag (and its value,
 * advancing *i), 0 when the flag is not a job option, TT_EINVAL (message
 * in err) when its value is missing or malformed. */
int tt_shot_flag(json_t *opts, int argc, char **argv, int *i, char *err, size_t errlen);
/* `tintype shot --help`: the job option flags tt_shot_flag takes. */
void tt_shot_usage(FILE *out);
/* Renders url with opts into outfile; prints the metadata to stdout.
 * Returns the exit code: 0, 1 (the render failed), 2 (bad options). */
int tt_shot_main(const tt_config *cfg, const char *url, json_t *opts, const char *outfile);

#endif
