/* shot.c — `tintype shot URL -o FILE`: one render, no server, no queue.
 *
 * The flags are the job options of the API (DESIGN §4) spelled as flags;
 * they are gathered into the same JSON object a POST /api/jobs body would
 * carry and validated by options.c, so the two entry points cannot drift.
 * The render engine (render.c) starts its browser, shoots once, and the
 * image (or PDF) is written to FILE.tmp and renamed, so FILE is whole or absent. The
 * result's metadata goes to stdout as one JSON object; logs go to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/ports.h"
#include "tintype/render.h"

typedef enum { F_INT, F_NUM, F_STR, F_BOOL, F_JSON, F_LIST } ftype;
typedef struct {
  const char *flag;
  const char *field; /* "viewport.width" for nested ones */
  ftype type;
  const char *arg;  /* what --help shows after the flag */
  const char *help; /* one line for --help */
} shot_flag;

static const shot_flag flags[] = {
    {"width", "viewport.width", F_INT, "PX", "viewport width, CSS pixels (default 1280)"},
    {"height", "viewport.height", F_INT, "PX", "viewport height, CSS pixels (default 800)"},
    {"scale", "viewport.scale", F_NUM, "N", "device pixel ratio, e.g. 2 for twice the pixels (default 1)"},
    {"mobile", "viewport.mobile", F_BOOL, "", "a phone: 980 px layout viewport and touch"},
    {"full-page", "full_page", F_BOOL, "", "the whole page, not only the viewport"},
    {"format", "format", F_STR, "FMT", "png, jpeg, webp or pdf (default: from FILE's extension, else png)"},
    {"quality", "quality", F_INT, "N", "jpeg/webp quality, 1-100"},
    {"wait-until", "wait_until", F_STR, "EVENT", "load, domcontentloaded or networkidle (default load)"},
    {"wait-for", "wait_for", F_STR, "CSS", "wait until this selector matches an element (hidden ones too)"},
    {"selector", "selector", F_STR, "CSS", "capture only this element"},
    {"delay", "delay_ms", F_INT, "MS", "wait this long after loading, milliseconds"},
    {"timeout", "timeout_ms", F_INT, "MS", "give up after this long, milliseconds"},
    {"dark", "dark_mode", F_BOOL, "", "prefers-color-scheme: dark"},
    {"optimize-for-speed", "optimize_for_speed", F_BOOL, "", "png only: Chromium's faster, larger encoding"},
    {"paper", "pdf.paper", F_STR, "NAME", "pdf: A3, A4, A5, Letter, Legal or Tabloid (default Letter)"},
    {"paper-width", "pdf.width", F_STR, "LEN", "pdf: paper width, e.g. 210mm, 8.5in (with --paper-height)"},
    {"paper-height", "pdf.height", F_STR, "LEN", "pdf: paper height, e.g. 297mm, 11in"},
    {"landscape", "pdf.landscape", F_BOOL, "", "pdf: the paper turned"},
    {"margin", "pdf.margin", F_STR, "LEN", "pdf: every margin, e.g. 1cm, 0in (default 0.4in)"},
    {"print-background", "pdf.print_background", F_BOOL, "", "pdf: print background colours and images"},
    {"page-ranges", "pdf.page_ranges", F_STR, "LIST", "pdf: pages to keep, e.g. 1-3,5"},
    {"pdf-scale", "pdf.scale", F_NUM, "N", "pdf: zoom of the printed page, 0.1-2 (default 1)"},
    {"media", "pdf.media", F_STR, "TYPE", "pdf: print (the page's @media print styles) or screen"},
    {"css", "css", F_STR, "CSS", "a stylesheet added to the page before the capture"},
    {"js", "js", F_STR, "JS", "a script run in the page before the capture (an async function's body)"},
    {"js-timeout", "js_timeout_ms", F_INT, "MS", "the script's own time limit (default and most: --max-js-ms)"},
    {"hide", "hide_selectors", F_LIST, "CSS", "hide the elements this selector matches (repeatable)"},
    {"click", "click_selectors", F_LIST, "CSS", "click the element this selector matches, in order (repeatable)"},
    {"scroll-to", "scroll_to", F_STR, "CSS", "scroll this element into view before the capture"},
    {"user-agent", "user_agent", F_STR, "UA", "the User-Agent the page and its server see"},
    {"locale", "locale", F_STR, "TAG", "the page's language, e.g. de-DE (navigator.language, Intl, Accept-Language)"},
    {"timezone", "timezone", F_STR, "ZONE", "the page's time zone, e.g. Europe/Berlin"},
    {"options", "", F_JSON, "JSON", "any job options as a JSON object (as POST /api/jobs takes), merged"},
};

void tt_shot_usage(FILE *out) {
  fprintf(out, "Render options (the job options of POST /api/jobs):\n");
  for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
    char left[40];
    snprintf(left, sizeof left, "--%s%s%s", flags[k].flag, flags[k].arg[0] ? " " : "", flags[k].arg);
    fprintf(out, "  %-24s %s\n", left, flags[k].help);
  }
  fprintf(out, "\n");
}

static void set_field(json_t *opts, const char *field, json_t *v) {
  const char *dot = strchr(field, '.');
  if (!dot) {
    json_object_set_new(opts, field, v);
    return;
  }
  char parent[32];
  snprintf(parent, sizeof parent, "%.*s", (int)(dot - field), field);
  json_t *p = json_object_get(opts, parent);
  if (!p) {
    p = json_object();
    json_object_set_new(opts, parent, p);
  }
  json_object_set_new(p, dot + 1, v);
}

int tt_shot_flag(json_t *opts, int argc, char **argv, int *i, char *err, size_t errlen) {
  const char *a = argv[*i];
  if (strncmp(a, "--", 2)) return 0;
  a += 2;
  const char *eq = strchr(a, '=');
  size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
  for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
    const shot_flag *f = &flags[k];
    if (strlen(f->flag) != nlen || strncmp(a, f->flag, nlen)) continue;
    if (f->type == F_BOOL) {
      int on = 1;
      if (eq) {
        if (!strcmp(eq + 1, "true") || !strcmp(eq + 1, "1")) on = 1;
        else if (!strcmp(eq + 1, "false") || !strcmp(eq + 1, "0")) on = 0;
        else {
          snprintf(err, errlen, "--%s takes no value (or =true/=false), not '%s'", f->flag, eq + 1);
          return TT_EINVAL;
        }
      }
      set_field(opts, f->field, json_boolean(on));
      return 1;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
      if (*i + 1 >= argc) {
        snprintf(err, errlen, "--%s needs a value", f->flag);
        return TT_EINVAL;
      }
      v = argv[++*i];
    }
    if (f->type == F_STR) {
      set_field(opts, f->field, json_string(v));
      return 1;
    }
    if (f->type == F_LIST) { /* --hide A --hide B: ["A", "B"] */
      json_t *list = json_object_get(opts, f->field);
      if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(opts, f->field, list);
      }
      json_array_append_new(list, json_string(v));
      return 1;
    }
    if (f->type == F_JSON) {
      json_error_t je;
      json_t *more = json_loads(v, JSON_REJECT_DUPLICATES, &je);
      if (!json_is_object(more)) {
        snprintf(err, errlen, "--%s must be a JSON object%s%s", f->flag, more ? "" : ": ", more ? "" : je.text);
        json_decref(more);
        return TT_EINVAL;
      }
      json_object_update_recursive(opts, more); /* later flags win over it, it over earlier ones */
      json_decref(more);
      return 1;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno) {
      snprintf(err, errlen, "--%s: '%s' is not a number", f->flag, v);
      return TT_EINVAL;
    }
    if (f->type == F_INT) {
      long long n = strtoll(v, &end, 10);
      if (*end || errno) {
        snprintf(err, errlen, "--%s: '%s' is not a whole number", f->flag, v);
        return TT_EINVAL;
      }
      set_field(opts, f->field, json_integer(n));
    } else {
      set_field(opts, f->field, json_real(d));
    }
    return 1;
  }
  return 0;
}

/* "viewport.width" -> "--width" for messages */
static const char *flag_of(const char *field) {
  for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
    if (field[0] && !strcmp(flags[k].field, field)) return flags[k].flag;
  return NULL;
}

typedef struct shot_run {
  tt_render *r;
  const char *outfile;
  int code;
} shot_run;

static int write_file(const char *path, const unsigned char *data, size_t len) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = -errno;
      close(fd);
      unlink(tmp);
      return e;
    }
    off += (size_t)n;
  }
  if (close(fd) || rename(tmp, path)) {
    int e = -errno;
    unlink(tmp);
    return e;
  }
  return 0;
}

static void on_closed(void *ud) { (void)ud; }

static void on_shot(void *ud, int status, tt_render_result *res) {
  shot_run *sr = ud;
  if (status) {
    fprintf(stderr, "tintype shot: %s\n", res->error[0] ? res->error : tt_strerror(status));
    sr->code = 1;
  } else {
    int rc = write_file(sr->outfile, res->data, res->len);
    if (rc) {
      fprintf(stderr, "tintype shot: cannot write %s: %s\n", sr->outfile, tt_strerror(rc));
      sr->code = 1;
    } else {
      json_t *j = tt_render_result_json(res);
      char *s = json_dumps(j, JSON_COMPACT);
      json_decref(j);
      printf("%s\n", s ? s : "{}");
      fflush(stdout);
      free(s);
      sr->code = 0;
    }
  }
  tt_render_close(sr->r, on_closed, NULL);
}

/* The format FILE's extension names ("jpeg" for .jpg), or NULL. */
static const char *format_of_file(const char *path) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  if (!dot || (slash && dot < slash) || dot == path || (slash && dot == slash + 1)) return NULL;
  static const char *const ext[][2] = {
      {".png", "png"}, {".jpg", "jpeg"}, {".jpeg", "jpeg"}, {".webp", "webp"}, {".pdf", "pdf"}};
  for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++)
    if (!strcasecmp(dot, ext[k][0])) return ext[k][1];
  return NULL;
}

int tt_shot_main(const tt_config *cfg, const char *url, json_t *opts, const char *outfile) {
  json_object_set_new(opts, "url", json_string(url));
  /* -o y.jpg means JPEG: the extension gives the format when --format does
   * not, and a --format that contradicts it is refused, so a file's bytes
   * never disagree with its name */
  const char *by_ext = format_of_file(outfile);
  const char *asked = json_string_value(json_object_get(opts, "format"));
  if (by_ext && asked && strcmp(asked, by_ext) && (!strcmp(asked, "png") || !strcmp(asked, "jpeg") ||
                                                   !strcmp(asked, "webp") || !strcmp(asked, "pdf"))) {
    fprintf(stderr, "tintype shot: --format %s does not match -o %s (a %s file name); drop --format or rename the file\n",
            asked, outfile, by_ext);
    return 2;
  }
  if (by_ext && !json_object_get(opts, "format")) json_object_set_new(opts, "format", json_string(by_ext));
  tt_options o;
  char field[96], detail[256];
  if (tt_options_parse(opts, cfg, &o, field, sizeof field, detail, sizeof detail)) {
    const char *f = flag_of(field);
    size_t fl = strlen(field);
    /* "url is not ..." already names its field: no "url: url is not ..." */
    int named = fl && !strncmp(detail, field, fl) && detail[fl] == ' ';
    if (f)
      fprintf(stderr, "tintype shot: --%s: %s\n", f, detail);
    else if (named || !field[0])
      fprintf(stderr, "tintype shot: %s\n", detail);
    else
      fprintf(stderr, "tintype shot: %s: %s\n", field, detail);
    return 2;
  }
  tt_netpolicy policy;
  char err[256];
  int prc = tt_ports_init(cfg->ports_dir); /* ports.h: this shot's browser and proxy are listed */
  if (prc != TT_OK) tt_logf(TT_LOG_WARN, "ports folder %s: %s", cfg->ports_dir, tt_strerror(prc));
  if (tt_netpolicy_init(&policy, cfg->allow_networks, err, sizeof err)) {
    fprintf(stderr, "tintype shot: --allow-networks: %s\n", err);
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  tt_render_opts ro = {.chromium = cfg->chromium, .chromium_flags = cfg->chromium_flags, .policy = &policy,
                       .max_full_page_height = (int)cfg->max_full_page_height};
  shot_run sr = {.outfile = outfile, .code = 1};
  int rc = tt_render_open(&loop, &ro, &sr.r);
  if (rc) {
    fprintf(stderr, "tintype shot: cannot start the render engine: %s\n", tt_strerror(rc));
    uv_loop_close(&loop);
    return 1;
  }
  tt_render_shot(sr.r, &o, on_shot, &sr);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop)) tt_logf(TT_LOG_WARN, "shot: handles left open at exit");
  tt_log_flush();
  return sr.code;
}
