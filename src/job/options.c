/* options.c — job options from JSON (include/tintype/job.h), part of the
 * job module with job.c (states, queue names, messages).
 *
 * Every key is checked for its JSON type and range, unknown keys are
 * refused (a typo such as "fullpage" must not silently render something
 * else), and the URL is parsed by libcurl's URL API: http or https with a
 * host, normalised. The network policy (which addresses a page may reach)
 * is not decided here but where connections are made (netpolicy.c). */
#include "tintype/job.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <stdlib.h>

#include "tintype/alloc.h"
#include "tintype/crypto.h"
#include "tintype/error.h"

static const char *formats[] = {"png", "jpeg", "webp"};
static const char *mimes[] = {"image/png", "image/jpeg", "image/webp"};
static const char *waits[] = {"load", "domcontentloaded", "networkidle"};
static const char *isolations[] = {"owner", "job"};

const char *tt_format_name(tt_format f) { return formats[f]; }
const char *tt_format_mime(tt_format f) { return mimes[f]; }
const char *tt_wait_until_name(tt_wait_until w) { return waits[w]; }

void tt_options_defaults(tt_options *o, const tt_config *cfg) {
  memset(o, 0, sizeof *o);
  o->width = 1280;
  o->height = 800;
  o->scale = 1.0;
  o->format = TT_FMT_PNG;
  o->wait_until = TT_WAIT_LOAD;
  /* the default never exceeds the configured maximum */
  o->timeout_ms = (int)(cfg->default_render_timeout_ms < cfg->max_render_timeout_ms ? cfg->default_render_timeout_ms
                                                                                     : cfg->max_render_timeout_ms);
  o->max_pixels = cfg->max_capture_pixels > 0 ? cfg->max_capture_pixels : 100000000;
}

typedef struct {
  char *field;
  size_t fieldlen;
  char *detail;
  size_t detaillen;
} err_t;

static int bad(err_t *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(err_t *e, const char *field, const char *fmt, ...) {
  snprintf(e->field, e->fieldlen, "%s", field);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->detail, e->detaillen, fmt, ap);
  va_end(ap);
  return TT_EINVAL;
}

static int get_int(const json_t *v, const char *field, long long lo, long long hi, int *out, err_t *e) {
  if (!json_is_integer(v)) return bad(e, field, "%s must be an integer", field);
  long long x = json_integer_value(v);
  if (x < lo || x > hi) return bad(e, field, "%s must be between %lld and %lld", field, lo, hi);
  *out = (int)x;
  return TT_OK;
}

static int get_bool(const json_t *v, const char *field, int *out, err_t *e) {
  if (!json_is_boolean(v)) return bad(e, field, "%s must be true or false", field);
  *out = json_is_true(v);
  return TT_OK;
}

static int get_enum(const json_t *v, const char *field, const char **names, int n, int *out, err_t *e) {
  if (json_is_string(v))
    for (int i = 0; i < n; i++)
      if (!strcmp(json_string_value(v), names[i])) {
        *out = i;
        return TT_OK;
      }
  char list[128] = "";
  for (int i = 0; i < n; i++) {
    strcat(list, i ? ", " : "");
    strcat(list, names[i]);
  }
  return bad(e, field, "%s must be one of: %s", field, list);
}

static int get_selector(const json_t *v, const char *field, char *out, size_t cap, err_t *e) {
  if (!json_is_string(v)) return bad(e, field, "%s must be a string (a CSS selector)", field);
  size_t n = json_string_length(v);
  if (n == 0 || n >= cap) return bad(e, field, "%s must be 1 to %zu characters", field, cap - 1);
  const char *s = json_string_value(v);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20) return bad(e, field, "%s must not contain control characters", field);
  memcpy(out, s, n + 1);
  return TT_OK;
}

/* 1 when s is `scheme://` followed by a non-empty authority. libcurl is
 * lenient there: it reads `http:///x` and `http:/x` as `http://x/`, so the
 * worker would resolve the name `x`, which the client never wrote as a host
 * (issue 16 item 10). RFC 3986 §3: an authority begins with "//" and ends at
 * the next "/", "?", "#" or the end; here it must not be empty. */
static int has_authority(const char *s) {
  size_t i = 0;
  while (s[i] && (isalpha((unsigned char)s[i]) || (i && (isdigit((unsigned char)s[i]) || strchr("+-.", s[i])))))
    i++;
  if (!i || s[i] != ':' || s[i + 1] != '/' || s[i + 2] != '/') return 0;
  char c = s[i + 3];
  return c && c != '/' && c != '\\' && c != '?' && c != '#';
}

static int get_url_into(const json_t *v, const char *name, size_t max, char *out, err_t *e) {
  if (!json_is_string(v)) return bad(e, name, "%s must be a string", name);
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n == 0) return bad(e, name, "%s must not be empty", name);
  if (n > max) return bad(e, name, "%s is longer than %zu bytes (max-job-url-bytes)", name, max);
  if (strlen(s) != n) return bad(e, name, "%s must not contain NUL", name);
  /* "127.0.0.1:8765/page", "example.com", "localhost:8080": an address with
   * no scheme (a "scheme" followed by a port number is a host) */
  size_t sl = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
  if (!strstr(s, "://") && !strpbrk(s, " \t") && (s[sl] != ':' || (s[sl + 1] >= '0' && s[sl + 1] <= '9') || !sl ||
                            !((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return bad(e, name, "%s has no scheme: write http://%.150s (or https://)", name, s);
  if (!strstr(s, "://") && !strpbrk(s, " \t")) return bad(e, name, "%s must use http or https", name); /* mailto:, data: */
  CURLU *h = curl_url();
  if (!h) return TT_ENOMEM;
  int rc = TT_OK;
  char *scheme = NULL, *host = NULL, *full = NULL;
  if (curl_url_set(h, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    rc = bad(e, name, "%s is not a valid absolute URL", name);
  } else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
    rc = bad(e, name, "%s must use http or https", name);
  } else if (!has_authority(s)) {
    rc = bad(e, name, "%s must name a host after the scheme's \"//\"", name);
  } else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
    rc = bad(e, name, "%s must name a host", name);
  } else if (curl_url_get(h, CURLUPART_URL, &full, 0) != CURLUE_OK || strlen(full) > max) {
    rc = bad(e, name, "%s is not a valid absolute URL", name);
  } else {
    memcpy(out, full, strlen(full) + 1);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(full);
  curl_url_cleanup(h);
  return rc;
}

static int get_url(const json_t *v, const tt_config *cfg, tt_options *o, err_t *e) {
  size_t max = (size_t)cfg->max_job_url_bytes < sizeof o->url - 1 ? (size_t)cfg->max_job_url_bytes
                                                                  : sizeof o->url - 1;
  return get_url_into(v, "url", max, o->url, e);
}

static int parse_viewport(const json_t *vp, const tt_config *cfg, tt_options *o, err_t *e) {
  if (!json_is_object(vp)) return bad(e, "viewport", "viewport must be an object");
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)vp, k, v) {
    int rc;
    if (!strcmp(k, "width"))
      rc = get_int(v, "viewport.width", 1, cfg->max_viewport_width, &o->width, e);
    else if (!strcmp(k, "height"))
      rc = get_int(v, "viewport.height", 1, cfg->max_viewport_height, &o->height, e);
    else if (!strcmp(k, "mobile"))
      rc = get_bool(v, "viewport.mobile", &o->mobile, e);
    else if (!strcmp(k, "scale")) {
      if (!json_is_number(v)) return bad(e, "viewport.scale", "viewport.scale must be a number");
      double d = json_number_value(v);
      if (!isfinite(d) || d < 0.1 || d > 4) return bad(e, "viewport.scale", "viewport.scale must be between 0.1 and 4");
      o->scale = d;
      rc = TT_OK;
    } else {
      char f[96];
      snprintf(f, sizeof f, "viewport.%.80s", k);
      return bad(e, f, "unknown option %s", f);
    }
    if (rc) return rc;
  }
  return TT_OK;
}

int tt_options_parse(const json_t *in, const tt_config *cfg, tt_options *o, char *field, size_t fieldlen,
                     char *detail, size_t detaillen) {
  err_t e = {field, fieldlen, detail, detaillen};
  tt_options_defaults(o, cfg);
  if (!json_is_object(in)) return bad(&e, "", "the job must be a JSON object");
  int have_url = 0, have_quality = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)in, k, v) {
    int rc, tmp = 0;
    if (!strcmp(k, "url")) {
      rc = get_url(v, cfg, o, &e);
      have_url = 1;
    } else if (!strcmp(k, "viewport")) {
      rc = parse_viewport(v, cfg, o, &e);
    } else if (!strcmp(k, "full_page")) {
      rc = get_bool(v, k, &o->full_page, &e);
    } else if (!strcmp(k, "format")) {
      if (!(rc = get_enum(v, k, formats, 3, &tmp, &e))) o->format = (tt_format)tmp;
    } else if (!strcmp(k, "quality")) {
      rc = get_int(v, k, 1, 100, &o->quality, &e);
      have_quality = 1;
    } else if (!strcmp(k, "wait_until")) {
      if (!(rc = get_enum(v, k, waits, 3, &tmp, &e))) o->wait_until = (tt_wait_until)tmp;
    } else if (!strcmp(k, "wait_for")) {
      rc = get_selector(v, k, o->wait_for, sizeof o->wait_for, &e);
    } else if (!strcmp(k, "selector")) {
      rc = get_selector(v, k, o->selector, sizeof o->selector, &e);
    } else if (!strcmp(k, "delay_ms")) {
      rc = get_int(v, k, 0, cfg->max_delay_ms, &o->delay_ms, &e);
    } else if (!strcmp(k, "timeout_ms")) {
      rc = get_int(v, k, 1000, cfg->max_render_timeout_ms, &o->timeout_ms, &e);
    } else if (!strcmp(k, "dark_mode")) {
      rc = get_bool(v, k, &o->dark_mode, &e);
    } else if (!strcmp(k, "isolation")) {
      /* only ever stricter than the worker's --isolation: "owner" asks for
       * nothing a job-isolating worker would not give */
      rc = get_enum(v, k, isolations, 2, &o->isolation_job, &e);
    } else if (!strcmp(k, "optimize_for_speed")) {
      rc = get_bool(v, k, &o->optimize_for_speed, &e);
    } else if (!strcmp(k, "callback_url")) {
      size_t max = (size_t)cfg->max_job_url_bytes < sizeof o->callback_url - 1 ? (size_t)cfg->max_job_url_bytes
                                                                                : sizeof o->callback_url - 1;
      rc = get_url_into(v, "callback_url", max, o->callback_url, &e);
    } else if (!strcmp(k, "cache_ttl")) {
      if (json_is_integer(v) && json_integer_value(v) > cfg->max_cache_ttl && json_integer_value(v) <= 31536000)
        return bad(&e, k, "cache_ttl must be at most %lld seconds (max-cache-ttl)", (long long)cfg->max_cache_ttl);
      rc = get_int(v, k, 0, cfg->max_cache_ttl, &o->cache_ttl, &e);
    } else {
      char f[96];
      snprintf(f, sizeof f, "%.80s", k);
      return bad(&e, f, "unknown option %s", f);
    }
    if (rc) return rc;
  }
  if (!have_url) return bad(&e, "url", "url is required");
  /* the pixel budget, where the request decides it: the viewport itself
   * (a full page or an element is cut to it at capture time) */
  double dw = o->width * o->scale, dh = o->height * o->scale;
  if (dw > TT_CAPTURE_MAX_SIDE || dh > TT_CAPTURE_MAX_SIDE)
    return bad(&e, "viewport", "viewport.width and viewport.height times viewport.scale must be at most %d device "
               "pixels each (asked: %.0f x %.0f)", TT_CAPTURE_MAX_SIDE, dw, dh);
  if (dw * dh > (double)o->max_pixels)
    return bad(&e, "viewport", "viewport.width x viewport.height x viewport.scale^2 is %.0f device pixels; at most "
               "%lld (max-capture-pixels)", dw * dh, (long long)o->max_pixels);
  if (have_quality && o->format == TT_FMT_PNG)
    return bad(&e, "quality", "quality applies to jpeg and webp only");
  if (!have_quality && o->format != TT_FMT_PNG) o->quality = 80;
  if (o->full_page && o->selector[0])
    return bad(&e, "selector", "selector and full_page cannot be combined");
  if (o->optimize_for_speed && o->format != TT_FMT_PNG)
    return bad(&e, "optimize_for_speed", "optimize_for_speed applies to png only");
  return TT_OK;
}

/* ---- render links: query parameters -> the JSON of a job ---- */

/* options whose values are strings whatever they look like */
static const char *const query_strings[] = {
    "url", "format", "wait_until", "wait_for", "selector", "isolation", "callback_url", "user_agent", "locale",
    "timezone", "css", "js", "scroll_to", "pdf.paper", "pdf.page_ranges", "pdf.media", "basic_auth.username",
    "basic_auth.password",
};
/* short names of nested options */
static const char *const query_aliases[][2] = {
    {"width", "viewport.width"}, {"height", "viewport.height"}, {"scale", "viewport.scale"},
    {"mobile", "viewport.mobile"},
};

static int is_number(const char *s, int *integer) {
  const char *p = s;
  if (*p == '-') p++;
  if (!isdigit((unsigned char)*p)) return 0;
  while (isdigit((unsigned char)*p)) p++;
  *integer = 1;
  if (*p == '.') {
    *integer = 0;
    p++;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
  }
  return *p == 0;
}

static json_t *query_value(const char *name, const char *v, err_t *e, int *rc) {
  *rc = TT_OK;
  for (size_t i = 0; i < sizeof query_strings / sizeof query_strings[0]; i++)
    if (!strcmp(name, query_strings[i])) return json_string(v);
  if (!strcmp(v, "true")) return json_true();
  if (!strcmp(v, "false")) return json_false();
  int integer = 0;
  if (is_number(v, &integer)) {
    errno = 0;
    if (integer) {
      long long x = strtoll(v, NULL, 10);
      if (errno) return *rc = bad(e, name, "%s is a number out of range", name), NULL;
      return json_integer(x);
    }
    return json_real(strtod(v, NULL));
  }
  if (v[0] == '[' || v[0] == '{') {
    json_error_t je;
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, &je);
    if (!j) *rc = bad(e, name, "%s is not valid JSON: %s", name, je.text);
    return j;
  }
  return json_string(v);
}

int tt_options_from_query(const char *const *names, const char *const *values, size_t n, json_t **out,
                          char *field, size_t fieldlen, char *detail, size_t detaillen) {
  err_t e = {field, fieldlen, detail, detaillen};
  json_t *root = json_object();
  *out = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *name = names[i];
    for (size_t a = 0; a < sizeof query_aliases / sizeof query_aliases[0]; a++)
      if (!strcmp(name, query_aliases[a][0])) name = query_aliases[a][1];
    if (!*name || strlen(name) > 80 || name[0] == '.' || name[strlen(name) - 1] == '.' || strstr(name, "..")) {
      int rc = bad(&e, names[i], "%.80s is not an option name", names[i]);
      json_decref(root);
      return rc;
    }
    int rc;
    json_t *v = query_value(name, values[i], &e, &rc);
    if (rc || !v) {
      json_decref(root);
      return rc ? rc : TT_ENOMEM;
    }
    /* walk the dotted name, making the objects on the way */
    json_t *at = root;
    char part[96];
    const char *p = name;
    for (;;) {
      const char *dot = strchr(p, '.');
      size_t len = dot ? (size_t)(dot - p) : strlen(p);
      snprintf(part, sizeof part, "%.*s", (int)len, p);
      json_t *have = json_object_get(at, part);
      if (!dot) {
        if (have) {
          json_decref(v);
          json_decref(root);
          return bad(&e, name, "%s is given more than once", name);
        }
        json_object_set_new(at, part, v);
        break;
      }
      if (have && !json_is_object(have)) {
        json_decref(v);
        json_decref(root);
        return bad(&e, name, "%s is given both whole and by its parts", name);
      }
      if (!have) {
        have = json_object();
        json_object_set_new(at, part, have);
      }
      at = have;
      p = dot + 1;
    }
  }
  *out = root;
  return TT_OK;
}

json_t *tt_options_to_json(const tt_options *o) {
  json_t *j = json_pack("{s:s, s:{s:i, s:i, s:f, s:b}, s:b, s:s, s:s, s:i, s:i, s:b}", "url", o->url,
                        "viewport", "width", o->width, "height", o->height, "scale", o->scale, "mobile",
                        o->mobile, "full_page", o->full_page, "format", formats[o->format], "wait_until",
                        waits[o->wait_until], "delay_ms", o->delay_ms, "timeout_ms", o->timeout_ms,
                        "dark_mode", o->dark_mode);
  if (!j) return NULL;
  if (o->format != TT_FMT_PNG) json_object_set_new(j, "quality", json_integer(o->quality));
  if (o->wait_for[0]) json_object_set_new(j, "wait_for", json_string(o->wait_for));
  if (o->selector[0]) json_object_set_new(j, "selector", json_string(o->selector));
  if (o->isolation_job) json_object_set_new(j, "isolation", json_string("job"));
  if (o->optimize_for_speed) json_object_set_new(j, "optimize_for_speed", json_true());
  if (o->cache_ttl) json_object_set_new(j, "cache_ttl", json_integer(o->cache_ttl));
  if (o->callback_url[0]) json_object_set_new(j, "callback_url", json_string(o->callback_url));
  return j;
}

void tt_job_derived_id(char out[TT_ID_SIZE], const char *part, ...) {
  size_t n = 0;
  va_list ap;
  va_start(ap, part);
  for (const char *p = part; p; p = va_arg(ap, const char *)) n += strlen(p) + 1;
  va_end(ap);
  char *buf = tt_xmalloc(n ? n : 1), *w = buf;
  va_start(ap, part);
  for (const char *p = part; p; p = va_arg(ap, const char *)) w = stpcpy(w, p) + 1;
  va_end(ap);
  uint8_t h[32];
  tt_sha256(buf, n, h);
  free(buf);
  h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom (RFC 9562 §5.8) */
  h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* the RFC 9562 variant */
  static const char hex[] = "0123456789abcdef";
  int j = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hex[h[i] >> 4];
    out[j++] = hex[h[i] & 15];
  }
  out[j] = 0;
}

int tt_job_cache_id(const char *owner, const tt_options *o, char out[TT_ID_SIZE]) {
  tt_options k = *o;
  k.cache_ttl = 0; /* how old a result may be is not what the result is */
  k.callback_url[0] = 0; /* nor who is told about it */
  json_t *j = tt_options_to_json(&k);
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(j);
  if (!s) return TT_ENOMEM;
  tt_job_derived_id(out, "cache", owner, s, (const char *)NULL);
  free(s);
  return TT_OK;
}
