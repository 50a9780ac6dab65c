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
#include <errno.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tintype/alloc.h"
#include "tintype/crypto.h"
#include "tintype/error.h"

static const char *formats[] = {"png", "jpeg", "webp", "pdf"};
static const char *mimes[] = {"image/png", "image/jpeg", "image/webp", "application/pdf"};
static const char *medias[] = {"print", "screen"};
static const char *margin_sides[] = {"top", "right", "bottom", "left"};

/* paper sizes, portrait, inches */
static const struct {
  const char *name;
  double w, h;
} papers[] = {
    {"A3", 297 / 25.4, 420 / 25.4}, {"A4", 210 / 25.4, 297 / 25.4}, {"A5", 148 / 25.4, 210 / 25.4},
    {"Letter", 8.5, 11},            {"Legal", 8.5, 14},             {"Tabloid", 11, 17},
};
#define NPAPERS (sizeof papers / sizeof papers[0])
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
  o->max_pdf_bytes = cfg->max_pdf_bytes > 0 ? cfg->max_pdf_bytes : 50 << 20;
  o->max_pdf_pages = cfg->max_pdf_pages > 0 ? (int)cfg->max_pdf_pages : 500;
  snprintf(o->pdf.paper, sizeof o->pdf.paper, "Letter"); /* Chromium's own default */
  o->pdf.width = 8.5;
  o->pdf.height = 11;
  for (int i = 0; i < 4; i++) o->pdf.margin[i] = 0.4; /* ~1 cm, Chromium's default */
  o->pdf.scale = 1.0;
  o->js_timeout_ms = (int)(cfg->max_js_ms > 0 ? cfg->max_js_ms : 5000);
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

/* ---- pdf ---------------------------------------------------------------- */

static double round5(double in) { return round(in * 1e5) / 1e5; }

/* A length: a number of CSS px, or a string "210mm", "8.5in", "2cm",
 * "96px" (no unit: px), into inches. */
static int get_length(const json_t *v, const char *field, double lo, double hi, double *out, err_t *e) {
  double x, per_in = 96;
  if (json_is_number(v)) {
    x = json_number_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    x = strtod(s, &end);
    if (end == s || errno || json_string_length(v) > 32)
      return bad(e, field, "%s must be a length such as \"210mm\", \"8.5in\", \"2cm\" or \"96px\"", field);
    if (!strcmp(end, "in")) per_in = 1;
    else if (!strcmp(end, "mm")) per_in = 25.4;
    else if (!strcmp(end, "cm")) per_in = 2.54;
    else if (!strcmp(end, "px") || !*end) per_in = 96;
    else return bad(e, field, "%s: the unit must be in, mm, cm or px, not \"%.8s\"", field, end);
  } else {
    return bad(e, field, "%s must be a length such as \"210mm\", \"8.5in\", \"2cm\" or \"96px\"", field);
  }
  double in = x / per_in;
  if (!isfinite(in) || in < lo || in > hi)
    return bad(e, field, "%s must be between %gin and %gin (%gmm and %gmm)", field, lo, hi, lo * 25.4, hi * 25.4);
  *out = round5(in);
  return TT_OK;
}

/* "1-5, 8, 11-13": pages from 1, each range increasing */
static int get_page_ranges(const json_t *v, char *out, size_t cap, err_t *e) {
  const char *f = "pdf.page_ranges";
  if (!json_is_string(v)) return bad(e, f, "%s must be a string such as \"1-3, 5\"", f);
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (n == 0 || n >= cap) return bad(e, f, "%s must be 1 to %zu characters", f, cap - 1);
  const char *p = s;
  for (;;) {
    while (*p == ' ') p++;
    if (!isdigit((unsigned char)*p)) return bad(e, f, "%s must be page numbers and ranges such as \"1-3, 5\"", f);
    long a = strtol(p, (char **)&p, 10), b = a;
    while (*p == ' ') p++;
    if (*p == '-') {
      p++;
      while (*p == ' ') p++;
      if (!isdigit((unsigned char)*p)) return bad(e, f, "%s must be page numbers and ranges such as \"1-3, 5\"", f);
      b = strtol(p, (char **)&p, 10);
      while (*p == ' ') p++;
    }
    if (a < 1 || b < a || b > 1000000) return bad(e, f, "%s: pages count from 1 and a range must not go down", f);
    if (!*p) break;
    if (*p != ',') return bad(e, f, "%s must be page numbers and ranges such as \"1-3, 5\"", f);
    p++;
  }
  memcpy(out, s, n + 1);
  return TT_OK;
}

static int parse_margin(const json_t *v, tt_pdf_options *pdf, err_t *e) {
  if (json_is_number(v) || json_is_string(v)) { /* one length for all four sides */
    int rc = get_length(v, "pdf.margin", 0, TT_PDF_MAX_SIDE_IN, &pdf->margin[0], e);
    if (!rc) pdf->margin[1] = pdf->margin[2] = pdf->margin[3] = pdf->margin[0];
    return rc;
  }
  if (!json_is_object(v))
    return bad(e, "pdf.margin", "pdf.margin must be a length or an object of top, right, bottom, left");
  const char *k;
  json_t *x;
  json_object_foreach((json_t *)v, k, x) {
    int i = 0;
    while (i < 4 && strcmp(k, margin_sides[i])) i++;
    char f[96];
    snprintf(f, sizeof f, "pdf.margin.%.70s", k);
    if (i == 4) return bad(e, f, "unknown option %s", f);
    int rc = get_length(x, f, 0, TT_PDF_MAX_SIDE_IN, &pdf->margin[i], e);
    if (rc) return rc;
  }
  return TT_OK;
}

static int parse_pdf(const json_t *in, tt_pdf_options *pdf, err_t *e) {
  if (!json_is_object(in)) return bad(e, "pdf", "pdf must be an object");
  const char *k;
  json_t *v;
  int have_w = 0, have_h = 0, have_paper = 0;
  json_object_foreach((json_t *)in, k, v) {
    int rc = TT_OK;
    if (!strcmp(k, "paper")) {
      size_t i = 0;
      while (i < NPAPERS && !(json_is_string(v) && !strcasecmp(json_string_value(v), papers[i].name))) i++;
      if (i == NPAPERS)
        return bad(e, "pdf.paper", "pdf.paper must be one of: A3, A4, A5, Letter, Legal, Tabloid (or give pdf.width "
                   "and pdf.height)");
      snprintf(pdf->paper, sizeof pdf->paper, "%s", papers[i].name);
      pdf->width = round5(papers[i].w);
      pdf->height = round5(papers[i].h);
      have_paper = 1;
    } else if (!strcmp(k, "width")) {
      rc = get_length(v, "pdf.width", TT_PDF_MIN_SIDE_IN, TT_PDF_MAX_SIDE_IN, &pdf->width, e);
      have_w = 1;
    } else if (!strcmp(k, "height")) {
      rc = get_length(v, "pdf.height", TT_PDF_MIN_SIDE_IN, TT_PDF_MAX_SIDE_IN, &pdf->height, e);
      have_h = 1;
    } else if (!strcmp(k, "landscape")) {
      rc = get_bool(v, "pdf.landscape", &pdf->landscape, e);
    } else if (!strcmp(k, "margin")) {
      rc = parse_margin(v, pdf, e);
    } else if (!strcmp(k, "print_background")) {
      rc = get_bool(v, "pdf.print_background", &pdf->print_background, e);
    } else if (!strcmp(k, "page_ranges")) {
      rc = get_page_ranges(v, pdf->page_ranges, sizeof pdf->page_ranges, e);
    } else if (!strcmp(k, "scale")) {
      double d = json_number_value(v);
      if (!json_is_number(v) || !isfinite(d) || d < 0.1 || d > 2)
        return bad(e, "pdf.scale", "pdf.scale must be a number between 0.1 and 2");
      pdf->scale = round5(d);
    } else if (!strcmp(k, "media")) {
      rc = get_enum(v, "pdf.media", medias, 2, &pdf->media_screen, e);
    } else {
      char f[96];
      snprintf(f, sizeof f, "pdf.%.80s", k);
      return bad(e, f, "unknown option %s", f);
    }
    if (rc) return rc;
  }
  if (have_paper && (have_w || have_h))
    return bad(e, have_w ? "pdf.width" : "pdf.height", "pdf.paper and pdf.width/pdf.height cannot be combined");
  if (have_w != have_h)
    return bad(e, have_w ? "pdf.height" : "pdf.width", "pdf.width and pdf.height go together");
  if (have_w) pdf->paper[0] = 0;
  double w = pdf->landscape ? pdf->height : pdf->width, h = pdf->landscape ? pdf->width : pdf->height;
  if (pdf->margin[0] + pdf->margin[2] > h - 0.5 || pdf->margin[1] + pdf->margin[3] > w - 0.5)
    return bad(e, "pdf.margin", "pdf.margin leaves less than half an inch of the paper to print on");
  return TT_OK;
}

static json_t *pdf_length(double in) {
  char b[48];
  snprintf(b, sizeof b, "%.10gin", in);
  return json_string(b);
}

static json_t *pdf_to_json(const tt_pdf_options *p) {
  json_t *j = json_pack("{s:b, s:{s:o, s:o, s:o, s:o}, s:b, s:f, s:s}", "landscape", p->landscape, "margin", "top",
                        pdf_length(p->margin[0]), "right", pdf_length(p->margin[1]), "bottom",
                        pdf_length(p->margin[2]), "left", pdf_length(p->margin[3]), "print_background",
                        p->print_background, "scale", p->scale, "media", medias[p->media_screen]);
  if (!j) return NULL;
  if (p->paper[0]) {
    json_object_set_new(j, "paper", json_string(p->paper));
  } else {
    json_object_set_new(j, "width", pdf_length(p->width));
    json_object_set_new(j, "height", pdf_length(p->height));
  }
  if (p->page_ranges[0]) json_object_set_new(j, "page_ranges", json_string(p->page_ranges));
  return j;
}

/* ---- page controls -------------------------------------------------------- */

/* a string of 1..max bytes, no NUL (css, js, user_agent) */
static int get_text(const json_t *v, const char *field, int64_t max, const char *limit, int ctl_ok, char *out,
                    size_t cap, err_t *e) {
  if (!json_is_string(v)) return bad(e, field, "%s must be a string", field);
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n == 0) return bad(e, field, "%s must not be empty", field);
  if ((int64_t)n > max || n >= cap) return bad(e, field, "%s is longer than %lld bytes (%s)", field, (long long)max, limit);
  if (strlen(s) != n) return bad(e, field, "%s must not contain NUL", field);
  if (!ctl_ok)
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return bad(e, field, "%s must not contain control characters", field);
  memcpy(out, s, n + 1);
  return TT_OK;
}

/* ["#a", ".b"] into NUL-separated out */
static int get_selector_list(const json_t *v, const char *field, const tt_config *cfg, char *out, size_t cap, int *count,
                             err_t *e) {
  if (!json_is_array(v)) return bad(e, field, "%s must be an array of CSS selectors", field);
  size_t n = json_array_size(v);
  int64_t max = cfg->max_selectors > 0 ? cfg->max_selectors : 20;
  if ((int64_t)n > max) return bad(e, field, "%s has more than %lld entries (max-selectors)", field, (long long)max);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    char f[96], one[1024];
    snprintf(f, sizeof f, "%s[%zu]", field, i);
    int rc = get_selector(json_array_get(v, i), f, one, sizeof one, e);
    if (rc) return rc;
    size_t l = strlen(one) + 1;
    if (off + l > cap - 1) return bad(e, field, "%s: the selectors together are longer than %zu bytes", field, cap - 2);
    memcpy(out + off, one, l);
    off += l;
  }
  *count = (int)n;
  return TT_OK;
}

/* "de-DE", "en", "zh-Hant-TW": BCP 47's shape (letters, digits, hyphens) */
static int get_locale(const json_t *v, char *out, size_t cap, err_t *e) {
  const char *f = "locale";
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;
  int ok = s && n >= 2 && n < cap && json_string_length(v) == n;
  size_t i = 0, part = 0;
  for (; ok && i < n; i++) {
    if (s[i] == '-') {
      ok = part > 0;
      part = 0;
    } else if (isalpha((unsigned char)s[i]) || (i >= 2 && isdigit((unsigned char)s[i]))) {
      ok = ++part <= 8;
    } else {
      ok = 0;
    }
  }
  if (!ok || part == 0 || !isalpha((unsigned char)s[0]) || !isalpha((unsigned char)s[1]))
    return bad(e, f, "locale must be a BCP 47 language tag such as \"de-DE\" or \"en\"");
  memcpy(out, s, n + 1);
  return TT_OK;
}

/* an IANA zone: "Europe/Berlin", "UTC"; known to the system's tz database
 * when it has one (the browser reads the same names through ICU) */
static int get_timezone(const json_t *v, char *out, size_t cap, err_t *e) {
  const char *f = "timezone";
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;
  int ok = s && n > 0 && n < cap && json_string_length(v) == n && s[0] != '/' && !strstr(s, "..");
  for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)s[i]) || strchr("/_+-", s[i]);
  if (ok && !access("/usr/share/zoneinfo", F_OK)) {
    char path[128];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", s);
    struct stat st;
    ok = !stat(path, &st) && S_ISREG(st.st_mode);
  }
  if (!ok) return bad(e, f, "timezone must be an IANA time zone such as \"Europe/Berlin\" or \"UTC\"");
  memcpy(out, s, n + 1);
  return TT_OK;
}

static json_t *selector_list_json(const char *buf, int n) {
  json_t *a = json_array();
  const char *p = buf;
  for (int i = 0; i < n; i++) {
    json_array_append_new(a, json_string(p));
    p += strlen(p) + 1;
  }
  return a;
}

/* ---- network controls ------------------------------------------------------ */

static const char *const resource_names[] = {"image", "media", "font", "stylesheet", "script", "xhr", "fetch",
                                             "eventsource", "manifest", "texttrack", "ping", "prefetch", "other"};
static const char *const resource_cdp[] = {"Image", "Media", "Font", "Stylesheet", "Script", "XHR", "Fetch",
                                           "EventSource", "Manifest", "TextTrack", "Ping", "Prefetch", "Other"};
#define NRESOURCES (int)(sizeof resource_names / sizeof resource_names[0])

const char *const *tt_resource_names(int *n) {
  *n = NRESOURCES;
  return resource_names;
}
const char *const *tt_resource_cdp_types(void) { return resource_cdp; }

/* an RFC 9110 token */
static int is_token(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
  return 1;
}

static int field_value_ok(const char *s, size_t n) {
  if (strlen(s) != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) return 0;
  return 1;
}

static int dump_into(json_t *j, char *out, size_t cap, const char *field, err_t *e) {
  char *d = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (!d) return TT_ENOMEM;
  size_t n = strlen(d);
  if (n >= cap) {
    free(d);
    return bad(e, field, "%s is longer than %zu bytes in all", field, cap - 1);
  }
  memcpy(out, d, n + 1);
  free(d);
  return TT_OK;
}

/* headers for the page's own origin; the ones a proxy or the browser owns
 * are refused (hop-by-hop, Host, Content-Length, Proxy-*, Cookie: use
 * cookies) */
static int get_headers(const json_t *v, const tt_config *cfg, tt_options *o, err_t *e) {
  static const char *const refused[] = {"host", "content-length", "connection", "keep-alive", "te", "trailer",
                                        "transfer-encoding", "upgrade", "cookie", "expect", "http2-settings"};
  if (!json_is_object(v)) return bad(e, "headers", "headers must be an object of header names and values");
  if ((int64_t)json_object_size(v) > cfg->max_job_headers)
    return bad(e, "headers", "headers has more than %lld entries (max-job-headers)", (long long)cfg->max_job_headers);
  const char *k;
  json_t *x;
  json_t *canon = json_object();
  json_object_foreach((json_t *)v, k, x) {
    char f[96];
    snprintf(f, sizeof f, "headers.%.80s", k);
    if (!is_token(k) || strlen(k) > 256) {
      json_decref(canon);
      return bad(e, f, "%s: a header name is a token (letters, digits, -) of at most 256 characters", f);
    }
    int bad_name = !strncasecmp(k, "proxy-", 6) || !strncasecmp(k, "sec-", 4);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) bad_name |= !strcasecmp(k, refused[i]);
    if (bad_name) {
      json_decref(canon);
      return bad(e, f, "%s: this header belongs to the browser or the connection, not to a job%s", f,
                 !strcasecmp(k, "cookie") ? " (use cookies)" : "");
    }
    if (!json_is_string(x) || !field_value_ok(json_string_value(x), json_string_length(x))) {
      json_decref(canon);
      return bad(e, f, "%s must be a string without control characters", f);
    }
    json_object_set(canon, k, x);
  }
  o->nheaders = (int)json_object_size(canon);
  return o->nheaders ? dump_into(canon, o->headers_json, sizeof o->headers_json, "headers", e)
                     : (json_decref(canon), TT_OK);
}

static const char *same_sites[] = {"Strict", "Lax", "None"};

static int get_cookies(const json_t *v, const tt_config *cfg, tt_options *o, err_t *e) {
  if (!json_is_array(v)) return bad(e, "cookies", "cookies must be an array of {name, value, ...}");
  if ((int64_t)json_array_size(v) > cfg->max_cookies)
    return bad(e, "cookies", "cookies has more than %lld entries (max-cookies)", (long long)cfg->max_cookies);
  json_t *canon = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(v, i, c) {
    char f[96];
    snprintf(f, sizeof f, "cookies[%zu]", i);
    if (!json_is_object(c)) {
      json_decref(canon);
      return bad(e, f, "%s must be an object {name, value, path?, secure?, http_only?, same_site?}", f);
    }
    json_t *one = json_object();
    json_array_append_new(canon, one);
    const char *k;
    json_t *x;
    int rc = TT_OK;
    json_object_foreach(c, k, x) {
      char g[160];
      snprintf(g, sizeof g, "%s.%.60s", f, k);
      if (!strcmp(k, "name")) {
        if (!json_is_string(x) || !is_token(json_string_value(x)) || json_string_length(x) > 256)
          rc = bad(e, g, "%s must be a cookie name (a token of at most 256 characters)", g);
      } else if (!strcmp(k, "value") || !strcmp(k, "path")) {
        const char *s = json_string_value(x);
        int okv = s && json_string_length(x) <= 4096 && field_value_ok(s, json_string_length(x)) && !strchr(s, ';');
        if (okv && !strcmp(k, "path")) okv = s[0] == '/';
        if (!okv) rc = bad(e, g, "%s must be a string without control characters or ';'%s", g,
                            !strcmp(k, "path") ? ", starting with /" : "");
      } else if (!strcmp(k, "secure") || !strcmp(k, "http_only")) {
        if (!json_is_boolean(x)) rc = bad(e, g, "%s must be true or false", g);
      } else if (!strcmp(k, "same_site")) {
        int t;
        rc = get_enum(x, g, same_sites, 3, &t, e);
      } else {
        rc = bad(e, g, "unknown option %s (a cookie is set for the page's URL only: no domain)", g);
      }
      if (rc) {
        json_decref(canon);
        return rc;
      }
      json_object_set(one, k, x);
    }
    if (!json_object_get(one, "name") || !json_object_get(one, "value")) {
      json_decref(canon);
      return bad(e, f, "%s needs a name and a value", f);
    }
  }
  return json_array_size(canon) ? dump_into(canon, o->cookies_json, sizeof o->cookies_json, "cookies", e)
                                 : (json_decref(canon), TT_OK);
}

static int get_basic_auth(const json_t *v, tt_options *o, err_t *e) {
  if (!json_is_object(v)) return bad(e, "basic_auth", "basic_auth must be an object {username, password}");
  const char *k;
  json_t *x;
  int have_u = 0, have_p = 0;
  json_object_foreach((json_t *)v, k, x) {
    char f[96];
    snprintf(f, sizeof f, "basic_auth.%.70s", k);
    int isu = !strcmp(k, "username");
    if (!isu && strcmp(k, "password")) return bad(e, f, "unknown option %s", f);
    const char *s = json_string_value(x);
    if (!s || json_string_length(x) > 255 || !field_value_ok(s, json_string_length(x)) || (isu && (!*s || strchr(s, ':'))))
      return bad(e, f, "%s must be a string of at most 255 characters without control characters%s", f,
                 isu ? ", not empty, without ':'" : "");
    snprintf(isu ? o->auth_user : o->auth_password, sizeof o->auth_user, "%s", s);
    if (isu) have_u = 1;
    else have_p = 1;
  }
  if (!have_u || !have_p) return bad(e, have_u ? "basic_auth.password" : "basic_auth.username",
                                     "basic_auth needs a username and a password");
  return TT_OK;
}

static int get_block_resources(const json_t *v, tt_options *o, err_t *e) {
  if (!json_is_array(v)) return bad(e, "block_resources", "block_resources must be an array of resource types");
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    char f[64];
    snprintf(f, sizeof f, "block_resources[%zu]", i);
    int t;
    int rc = get_enum(x, f, (const char **)resource_names, NRESOURCES, &t, e);
    if (rc) return rc;
    o->block_types |= 1u << t;
  }
  return TT_OK;
}

static int get_block_urls(const json_t *v, const tt_config *cfg, tt_options *o, err_t *e) {
  if (!json_is_array(v)) return bad(e, "block_urls", "block_urls must be an array of URL patterns (* and ? globs)");
  size_t n = json_array_size(v), off = 0;
  if ((int64_t)n > cfg->max_block_urls)
    return bad(e, "block_urls", "block_urls has more than %lld entries (max-block-urls)", (long long)cfg->max_block_urls);
  for (size_t i = 0; i < n; i++) {
    char f[64], one[1024];
    snprintf(f, sizeof f, "block_urls[%zu]", i);
    json_t *x = json_array_get(v, i);
    const char *s = json_string_value(x);
    if (!s || !*s || json_string_length(x) >= sizeof one || !field_value_ok(s, json_string_length(x)))
      return bad(e, f, "%s must be a URL pattern of 1 to %zu characters (* and ? globs)", f, sizeof one - 1);
    snprintf(one, sizeof one, "%s", s);
    size_t l = strlen(one) + 1;
    if (off + l > sizeof o->block_urls - 1) return bad(e, "block_urls", "block_urls are longer than %zu bytes in all",
                                                      sizeof o->block_urls - 2);
    memcpy(o->block_urls + off, one, l);
    off += l;
  }
  o->nblock_urls = (int)n;
  return TT_OK;
}

int tt_options_parse(const json_t *in, const tt_config *cfg, tt_options *o, char *field, size_t fieldlen,
                     char *detail, size_t detaillen) {
  err_t e = {field, fieldlen, detail, detaillen};
  tt_options_defaults(o, cfg);
  if (!json_is_object(in)) return bad(&e, "", "the job must be a JSON object");
  int have_url = 0, have_quality = 0, have_pdf = 0, have_js_timeout = 0;
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
      if (!(rc = get_enum(v, k, formats, 4, &tmp, &e))) o->format = (tt_format)tmp;
    } else if (!strcmp(k, "pdf")) {
      rc = parse_pdf(v, &o->pdf, &e);
      have_pdf = 1;
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
    } else if (!strcmp(k, "css")) {
      rc = get_text(v, k, cfg->max_css_bytes, "max-css-bytes", 1, o->css, sizeof o->css, &e);
    } else if (!strcmp(k, "js")) {
      rc = get_text(v, k, cfg->max_js_bytes, "max-js-bytes", 1, o->js, sizeof o->js, &e);
    } else if (!strcmp(k, "js_timeout_ms")) {
      if (json_is_integer(v) && json_integer_value(v) > cfg->max_js_ms && json_integer_value(v) <= 600000)
        return bad(&e, k, "js_timeout_ms must be at most %lld (max-js-ms)", (long long)cfg->max_js_ms);
      rc = get_int(v, k, 100, cfg->max_js_ms, &o->js_timeout_ms, &e);
      have_js_timeout = 1;
    } else if (!strcmp(k, "hide_selectors")) {
      rc = get_selector_list(v, k, cfg, o->hide_selectors, sizeof o->hide_selectors, &o->nhide, &e);
    } else if (!strcmp(k, "click_selectors")) {
      rc = get_selector_list(v, k, cfg, o->click_selectors, sizeof o->click_selectors, &o->nclick, &e);
    } else if (!strcmp(k, "scroll_to")) {
      rc = get_selector(v, k, o->scroll_to, sizeof o->scroll_to, &e);
    } else if (!strcmp(k, "user_agent")) {
      rc = get_text(v, k, cfg->max_user_agent_bytes, "max-user-agent-bytes", 0, o->user_agent, sizeof o->user_agent, &e);
    } else if (!strcmp(k, "locale")) {
      rc = get_locale(v, o->locale, sizeof o->locale, &e);
    } else if (!strcmp(k, "timezone")) {
      rc = get_timezone(v, o->timezone, sizeof o->timezone, &e);
    } else if (!strcmp(k, "headers")) {
      rc = get_headers(v, cfg, o, &e);
    } else if (!strcmp(k, "cookies")) {
      rc = get_cookies(v, cfg, o, &e);
    } else if (!strcmp(k, "basic_auth")) {
      rc = get_basic_auth(v, o, &e);
    } else if (!strcmp(k, "block_resources")) {
      rc = get_block_resources(v, o, &e);
    } else if (!strcmp(k, "block_urls")) {
      rc = get_block_urls(v, cfg, o, &e);
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
  if (have_quality && o->format != TT_FMT_JPEG && o->format != TT_FMT_WEBP)
    return bad(&e, "quality", "quality applies to jpeg and webp only");
  if (!have_quality && (o->format == TT_FMT_JPEG || o->format == TT_FMT_WEBP)) o->quality = 80;
  if (have_pdf && o->format != TT_FMT_PDF) return bad(&e, "pdf", "pdf applies to format pdf only");
  if (o->format == TT_FMT_PDF && o->full_page)
    return bad(&e, "full_page", "full_page does not apply to format pdf (a PDF has every page)");
  if (o->format == TT_FMT_PDF && o->selector[0])
    return bad(&e, "selector", "selector does not apply to format pdf");
  if (o->full_page && o->selector[0])
    return bad(&e, "selector", "selector and full_page cannot be combined");
  if (have_js_timeout && !o->js[0]) return bad(&e, "js_timeout_ms", "js_timeout_ms applies with js only");
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
  if (o->format == TT_FMT_JPEG || o->format == TT_FMT_WEBP) json_object_set_new(j, "quality", json_integer(o->quality));
  if (o->format == TT_FMT_PDF) json_object_set_new(j, "pdf", pdf_to_json(&o->pdf));
  if (o->wait_for[0]) json_object_set_new(j, "wait_for", json_string(o->wait_for));
  if (o->selector[0]) json_object_set_new(j, "selector", json_string(o->selector));
  if (o->isolation_job) json_object_set_new(j, "isolation", json_string("job"));
  if (o->optimize_for_speed) json_object_set_new(j, "optimize_for_speed", json_true());
  if (o->cache_ttl) json_object_set_new(j, "cache_ttl", json_integer(o->cache_ttl));
  if (o->callback_url[0]) json_object_set_new(j, "callback_url", json_string(o->callback_url));
  if (o->css[0]) json_object_set_new(j, "css", json_string(o->css));
  if (o->js[0]) {
    json_object_set_new(j, "js", json_string(o->js));
    json_object_set_new(j, "js_timeout_ms", json_integer(o->js_timeout_ms));
  }
  if (o->nhide) json_object_set_new(j, "hide_selectors", selector_list_json(o->hide_selectors, o->nhide));
  if (o->nclick) json_object_set_new(j, "click_selectors", selector_list_json(o->click_selectors, o->nclick));
  if (o->scroll_to[0]) json_object_set_new(j, "scroll_to", json_string(o->scroll_to));
  if (o->user_agent[0]) json_object_set_new(j, "user_agent", json_string(o->user_agent));
  if (o->locale[0]) json_object_set_new(j, "locale", json_string(o->locale));
  if (o->timezone[0]) json_object_set_new(j, "timezone", json_string(o->timezone));
  if (o->headers_json[0]) json_object_set_new(j, "headers", json_loads(o->headers_json, 0, NULL));
  if (o->cookies_json[0]) json_object_set_new(j, "cookies", json_loads(o->cookies_json, 0, NULL));
  if (o->auth_user[0])
    json_object_set_new(j, "basic_auth", json_pack("{s:s, s:s}", "username", o->auth_user, "password", o->auth_password));
  if (o->block_types) {
    json_t *a = json_array();
    for (int i = 0; i < NRESOURCES; i++)
      if (o->block_types & (1u << i)) json_array_append_new(a, json_string(resource_names[i]));
    json_object_set_new(j, "block_resources", a);
  }
  if (o->nblock_urls) json_object_set_new(j, "block_urls", selector_list_json(o->block_urls, o->nblock_urls));
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
