/* config.h — every setting tintype has, in one struct and one table.
 *
 * Each setting has a default, a command-line flag (--max-body-bytes) and an
 * environment twin (TINTYPE_MAX_BODY_BYTES); the flag wins over the
 * environment, the environment over the default. The table in config.c is
 * the single source for parsing, validation (range checks) and --help, so a
 * limit cannot exist without a name, a default and a documented meaning.
 * Sizes accept k/m/g suffixes (powers of 1024); durations are milliseconds. */
#ifndef TINTYPE_CONFIG_H
#define TINTYPE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* commands, as a bit mask: which settings each one takes */
enum {
  TT_CMD_UP = 1 << 0,
  TT_CMD_API = 1 << 1,
  TT_CMD_WORKER = 1 << 2,
  TT_CMD_SHOT = 1 << 3,
  TT_CMD_SUBMIT = 1 << 4,
  TT_CMD_AWS = 1 << 5, /* tintype aws init */
};

enum { TT_LISTEN_INHERIT = 0, TT_LISTEN_REUSEPORT = 1 };

typedef struct tt_config {
  /* everywhere */
  char log_level[16];
  /* backends (DESIGN §2) */
  char data_dir[1024];
  char store_url[1024];
  char queue_url[1024];
  char blobs_url[1024];
  /* HTTP API */
  char host[256];
  int64_t port;
  int64_t processes;
  char routes[128];
  char listen_mode[16];
  int64_t backlog;
  int64_t max_connections;
  int64_t max_header_bytes;
  int64_t max_headers;
  int64_t max_url_bytes;
  int64_t max_body_bytes;
  int64_t header_timeout_ms;
  int64_t body_timeout_ms;
  int64_t idle_timeout_ms;
  int64_t write_timeout_ms;
  int64_t max_chunk_ext_bytes;    /* ";ext" after chunk sizes, per request */
  int64_t max_keepalive_requests; /* then Connection: close (nginx keepalive_requests) */
  int64_t read_buffer_bytes;      /* per connection, read ahead */
  int64_t linger_ms;              /* read-and-drop after an error answer */
  int64_t max_request_id_bytes;   /* X-Request-Id kept from a client */
  int64_t max_signup_body_bytes;  /* POST /api/users */
  int64_t max_job_body_bytes;     /* POST /api/jobs */
  int64_t max_image_body_bytes;   /* POST /api/images */
  int64_t max_api_key_bytes;      /* Authorization: Bearer KEY */
  int64_t max_idempotency_key_bytes;
  int64_t events_max_ms; /* SSE stream lifetime */
  int64_t shutdown_timeout_ms;
  int64_t drain_delay_ms;
  int64_t max_upload_bytes; /* image uploads */
  char secret[256];    /* signs links; empty: DATA/secret */
  char admin_key[256]; /* bearer key with admin rights; empty: none */
  char signup[16];              /* open | closed (only the admin key makes users) */
  int64_t signup_rate;          /* sign-ups per minute per client address (429) */
  int64_t auth_failure_rate;    /* failed authentications per minute per client address (429) */
  char trusted_proxies[1024];   /* CIDRs whose X-Forwarded-For names the client */
  /* worker */
  int64_t concurrency;
  int64_t fair_backlog;      /* job messages held beyond the slots (fairness between owners; 0: off) */
  int64_t fair_max_preemptions; /* times one job gives its slot back to another owner */
  int64_t fair_preempt_after_ms; /* only a job running this long may be preempted */
  int64_t worker_processes;  /* up: worker processes beside the API ones */
  int64_t job_visibility_ms; /* a received message stays hidden this long; extended while work runs */
  int64_t max_receives;      /* deliveries before a message is dead-lettered and its job failed */
  int64_t max_image_pixels;  /* decoded width*height of an upload (decompression bombs) */
  int64_t max_full_page_height; /* CSS px a full-page shot may span */
  int64_t max_capture_pixels;   /* device pixels of one capture (viewport, full page, clip) */
  char allow_networks[1024]; /* CIDRs the render may reach beyond public unicast */
  char ports_dir[512];       /* ports.h: the machine-wide list of tintype's own ports */
  char chromium[1024];       /* browser binary */
  char chromium_flags[1024]; /* extra browser flags (tuning) */
  char isolation[16];        /* owner: warm browser contexts per owner; job: a fresh one per job */
  int64_t context_max_jobs;  /* jobs one warm context serves before it is retired */
  int64_t context_idle_ms;   /* a warm context idle this long is retired */
  int64_t max_contexts;      /* warm contexts kept per worker process (LRU) */
  /* render options a client may ask for */
  int64_t max_viewport_width;
  int64_t max_viewport_height;
  int64_t max_render_timeout_ms;
  int64_t default_render_timeout_ms;
  int64_t max_delay_ms;
  int64_t max_job_url_bytes;
  int64_t max_cache_ttl;  /* seconds a cached result may be reused (job option cache_ttl) */
  int64_t max_pdf_bytes;  /* largest PDF a job may make (format pdf) */
  int64_t max_pdf_pages;  /* most pages in one PDF */
  int64_t max_css_bytes;  /* job option css */
  int64_t max_js_bytes;   /* job option js */
  int64_t max_js_ms;      /* longest js_timeout_ms (and its default) */
  int64_t max_selectors;  /* entries of hide_selectors, click_selectors */
  int64_t max_user_agent_bytes;
  int64_t max_job_headers;  /* entries of headers */
  int64_t max_cookies;      /* entries of cookies */
  int64_t max_block_urls;   /* entries of block_urls */
  /* API features (issue 15) */
  int64_t max_wait_ms;    /* POST /api/jobs?wait= */
  int64_t max_batch;      /* jobs per POST /api/jobs/batch */
  int64_t render_link_ttl;    /* seconds a render link is served from the result cache */
  int64_t max_render_secrets; /* render-link signing secrets per user */
  int64_t webhook_timeout_ms;   /* one webhook delivery */
  int64_t webhook_max_attempts; /* deliveries before a webhook is failed */
  /* submit */
  char api_url[1024];
  char api_key[256];
  char job_json[4096];
  int64_t wait; /* ms to follow the job; -1: until it ends; 0: do not */
} tt_config;

void tt_config_defaults(tt_config *c);

/* Applies TINTYPE_* variables for the settings `cmd` takes. On a bad value
 * writes a message to err (size errlen) and returns TT_EINVAL. */
int tt_config_from_env(tt_config *c, unsigned cmd, char *err, size_t errlen);

/* Parses argv (after the subcommand). Flags take "--name value" or
 * "--name=value". Arguments that are not flags are returned in order in
 * positional[] (at most *npos, updated). "--help"/"-h" sets *help. */
int tt_config_from_args(tt_config *c, unsigned cmd, int argc, char **argv, const char **positional,
                        int *npos, int *help, char *err, size_t errlen);

/* Fills store/queue/blobs URLs left empty from data_dir. */
void tt_config_finish(tt_config *c);

/* Writes the options that `cmd` takes, with env names and defaults. */
void tt_config_usage(FILE *out, unsigned cmd);

/* Parses a wait: true/yes/on/1 -> -1 (no limit), false/no/off/0 -> 0, a
 * duration with a unit ("30s", "2m", "500ms", "1h") -> milliseconds;
 * TT_EINVAL otherwise (a bare number has no unit: refused). */
int tt_config_parse_wait(const char *s, int64_t *out);

/* Parses "16k", "1m", "42" into bytes; TT_EINVAL when not a size. */
int tt_config_parse_size(const char *s, int64_t *out);

#endif
