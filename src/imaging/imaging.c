/* imaging.c — uploaded pictures → sepia + thumbnail, with libvips loaded at
 * run time (include/tintype/imaging.h).
 *
 * libvips and the ~100 libraries behind it are dlopen'ed by
 * tt_imaging_init, in a worker process only: linked directly they cost the
 * supervisor 12 MB of PSS and every process start 30 ms (docs/ARCHITECTURE.md,
 * "Imaging"). Calls go through the table of vips_fns.h; tt_imaging_process
 * never starts libvips on its own.
 *
 * One upload: sniff the loader (only the allowed ones are unblocked in
 * libvips), read the header and refuse more than max_pixels before any pixel
 * is decoded, auto-rotate, then build two pipelines on the rotated image —
 * sRGB → sepia recomb (alpha kept aside) → save, and thumbnail → save — each
 * saved in the original's family. The worker runs jobs on libuv's thread
 * pool, so libvips runs one thread per operation and caches nothing. */
#include "tintype/imaging.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/vips_fns.h"
#include "tintype/error.h"
#include "tintype/log.h"

/* ---- loading libvips ---------------------------------------------------- */

static tt_vips_fns fns;
static const tt_vips_fns *ready; /* &fns once init succeeded */
static int init_rc = TT_ENOTSUP;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Accepted loaders: the libvips class (its sniffer's answer) and the class
 * at the top of its family, unblocked by name. Everything else under
 * VipsForeignLoad stays blocked: SVG (librsvg, can reference files), PDF
 * (poppler/pdfium), ImageMagick, OpenSlide, FITS, Matlab, CSV/matrix, raw
 * .vips files, JPEG 2000 and JPEG XL (rare in uploads, less fuzzed). */
typedef enum { OUT_JPEG, OUT_PNG, OUT_WEBP } out_family;
typedef struct {
  const char *buffer_class; /* what vips_foreign_find_load_buffer returns */
  const char *family_class; /* unblocked with vips_operation_block_set */
  const char *format;       /* tt_imaging_out.format */
  const char *display;      /* in error sentences */
  out_family out;
} loader;
static const loader loaders[] = {
    {"VipsForeignLoadJpegBuffer", "VipsForeignLoadJpeg", "jpeg", "JPEG", OUT_JPEG},
    {"VipsForeignLoadPngBuffer", "VipsForeignLoadPng", "png", "PNG", OUT_PNG},
    {"VipsForeignLoadWebpBuffer", "VipsForeignLoadWebp", "webp", "WebP", OUT_WEBP},
    {"VipsForeignLoadNsgifBuffer", "VipsForeignLoadNsgif", "gif", "GIF", OUT_PNG},
    {"VipsForeignLoadTiffBuffer", "VipsForeignLoadTiff", "tiff", "TIFF", OUT_PNG},
    {"VipsForeignLoadHeifBuffer", "VipsForeignLoadHeif", "heif", "HEIF/AVIF", OUT_PNG},
};
#define ACCEPTED "JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF"

/* libvips' warnings (g_warning in domain "VIPS") become debug log lines
 * instead of free text on the worker's stderr. */
static void on_glib_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer ud) {
  (void)level, (void)ud;
  tt_buf *l = tt_log_begin(TT_LOG_DEBUG, "libvips");
  if (!l) return;
  tt_log_cstr(l, "domain", domain ? domain : "");
  tt_log_cstr(l, "detail", message ? message : "");
  tt_log_end(l);
}

static void do_init(void) {
  const char *path = getenv("TINTYPE_LIBVIPS");
  if (!path || !*path) path = "libvips.so.42";
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    tt_logf(TT_LOG_WARN, "imaging: cannot load libvips (%s): image processing is off", dlerror());
    init_rc = TT_ENOTSUP;
    return;
  }
  void *p;
#define TT_VIPS_LOAD(name)                                                               \
  p = dlsym(h, #name);                                                                   \
  if (!p) {                                                                              \
    tt_logf(TT_LOG_WARN, "imaging: %s has no %s: image processing is off", path, #name); \
    goto fail;                                                                           \
  }                                                                                      \
  memcpy(&fns.name, &p, sizeof p);
  TT_VIPS_REQUIRED(TT_VIPS_LOAD)
#undef TT_VIPS_LOAD
#define TT_VIPS_LOAD_OPT(name) \
  p = dlsym(h, #name);         \
  memcpy(&fns.name, &p, sizeof p);
  TT_VIPS_OPTIONAL(TT_VIPS_LOAD_OPT)
#undef TT_VIPS_LOAD_OPT

  /* fail_on needs 8.12; the ABI check is the one VIPS_INIT makes */
  int major = fns.vips_version(0), minor = fns.vips_version(1);
  if (major != 8 || minor < 12 ||
      fns.vips_version(3) - fns.vips_version(5) != VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE) {
    tt_logf(TT_LOG_WARN,
            "imaging: libvips %d.%d is not supported (8.12 or later, ABI %d): image processing is off", major,
            minor, VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE);
    goto fail;
  }
  if (fns.vips_init("tintype")) {
    char *e = fns.vips_error_buffer_copy();
    tt_logf(TT_LOG_ERROR, "imaging: libvips did not start: %s", e ? e : "");
    fns.g_free(e);
    init_rc = TT_EIO; /* half-started: keep the library mapped */
    return;
  }
  fns.vips_concurrency_set(1); /* the worker's thread pool is the parallelism */
  fns.vips_cache_set_max(0);   /* no operation cache: memory stays flat between jobs */
  /* Decoded pixels are big blocks freed at the end of a job, on libvips'
   * threads and their malloc arenas. glibc's dynamic mmap threshold would
   * take them into the heap after the first free and keep them: measured,
   * RSS grew 20 MB a job on 3000x2000 JPEGs. A fixed threshold returns each
   * to the system (docs/ARCHITECTURE.md, "Imaging"). */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  if (fns.vips_block_untrusted_set) fns.vips_block_untrusted_set(TRUE);
  if (fns.vips_operation_block_set) { /* else process() still refuses what is not in loaders[] */
    fns.vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++)
      fns.vips_operation_block_set(loaders[i].family_class, FALSE);
  }
  fns.g_log_set_handler("VIPS",
                        G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                        on_glib_log, NULL);
  init_rc = 0;
  __atomic_store_n(&ready, &fns, __ATOMIC_RELEASE);
  return;
fail:
  memset(&fns, 0, sizeof fns);
  dlclose(h);
  init_rc = TT_ENOTSUP;
}

int tt_imaging_init(void) {
  pthread_once(&init_once, do_init);
  return init_rc;
}

/* never starts libvips itself: only tt_imaging_init does, where the caller
 * chose to */
const tt_vips_fns *tt_imaging_vips(void) { return __atomic_load_n(&ready, __ATOMIC_ACQUIRE); }

/* ---- one upload ---------------------------------------------------------- */

static void set_error(tt_imaging_out *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(tt_imaging_out *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->error, sizeof out->error, fmt, ap);
  va_end(ap);
}

/* "40 Mpx", "40.01 Mpx", "5000 px" */
static void fmt_pixels(char *b, size_t n, int64_t px) {
  if (px >= 1000000 && px % 1000000 == 0)
    snprintf(b, n, "%" PRId64 " Mpx", px / 1000000);
  else if (px >= 1000000)
    snprintf(b, n, "%.2f Mpx", (double)px / 1e6);
  else
    snprintf(b, n, "%" PRId64 " px", px);
}

/* libvips' error buffer, taken and cleared: TT_ENOMEM when it ran out of
 * memory, else TT_EINVAL with the first line's message (without the
 * "domain: " prefix) copied to detail. The buffer is process-wide, so a job
 * failing at the same instant on another thread may lend its line. */
static int take_vips_error(const tt_vips_fns *v, char *detail, size_t n) {
  char *e = v->vips_error_buffer_copy();
  const char *s = e ? e : "";
  int rc = (strstr(s, "out of memory") || strstr(s, "unable to allocate")) ? TT_ENOMEM : TT_EINVAL;
  size_t len = strcspn(s, "\n");
  const char *colon = memchr(s, ':', len);
  if (colon && colon[1] == ' ') {
    len -= (size_t)(colon + 2 - s);
    s = colon + 2;
  }
  while (len && (s[len - 1] == '.' || s[len - 1] == ' ')) len--;
  snprintf(detail, n, "%.*s", len ? (int)len : 13, len ? s : "unknown error");
  v->g_free(e);
  return rc;
}

/* The usual sepia matrix, rows R, G, B (white becomes 255, 255, 239). */
static const double sepia_matrix[9] = {0.393, 0.769, 0.189, 0.349, 0.686, 0.168, 0.272, 0.534, 0.131};

#define MAX_TMP 16
typedef struct {
  const tt_vips_fns *v;
  VipsImage *t[MAX_TMP];
  int n;
} pipeline;

/* Registers img so it is unreffed at the end; returns it (NULL stays NULL). */
static VipsImage *keep(pipeline *pl, VipsImage *img) {
  if (img && pl->n < MAX_TMP) pl->t[pl->n++] = img; /* 11 at most: sized with room */
  return img;
}

/* rot (any interpretation, maybe alpha) → 8-bit sRGB sepia, alpha untouched */
static VipsImage *sepia(pipeline *pl, VipsImage *rot) {
  const tt_vips_fns *v = pl->v;
  VipsImage *srgb = NULL, *rgb = NULL, *m = NULL, *toned = NULL, *toned8 = NULL, *alpha = NULL,
            *alpha8 = NULL, *joined = NULL;
  if (v->vips_colourspace(rot, &srgb, VIPS_INTERPRETATION_sRGB, NULL)) return NULL;
  keep(pl, srgb);
  int has_alpha = v->vips_image_hasalpha(srgb) && v->vips_image_get_bands(srgb) >= 4;
  if (v->vips_extract_band(srgb, &rgb, 0, "n", 3, NULL)) return NULL;
  keep(pl, rgb);
  if (!keep(pl, m = v->vips_image_new_matrix_from_array(3, 3, sepia_matrix, 9))) return NULL;
  if (v->vips_recomb(rgb, &toned, m, NULL)) return NULL;
  keep(pl, toned);
  if (v->vips_cast(toned, &toned8, VIPS_FORMAT_UCHAR, NULL)) return NULL; /* clips to 0..255 */
  keep(pl, toned8);
  if (!has_alpha) return toned8;
  if (v->vips_extract_band(srgb, &alpha, 3, NULL)) return NULL;
  keep(pl, alpha);
  if (v->vips_cast(alpha, &alpha8, VIPS_FORMAT_UCHAR, NULL)) return NULL;
  keep(pl, alpha8);
  if (v->vips_bandjoin2(toned8, alpha8, &joined, NULL)) return NULL;
  return keep(pl, joined);
}

/* Metadata (EXIF and its GPS position, XMP, ICC) is stripped. */
static int save(const tt_vips_fns *v, VipsImage *img, out_family f, void **buf, size_t *len,
                const char **type) {
  switch (f) {
    case OUT_JPEG:
      *type = "image/jpeg";
      return v->vips_jpegsave_buffer(img, buf, len, "Q", 85, "strip", TRUE, NULL);
    case OUT_WEBP:
      *type = "image/webp";
      return v->vips_webpsave_buffer(img, buf, len, "Q", 85, "strip", TRUE, NULL);
    case OUT_PNG:
    default: *type = "image/png"; return v->vips_pngsave_buffer(img, buf, len, "strip", TRUE, NULL);
  }
}

/* A pipeline failed. Pixels are decoded on demand, so this is where a corrupt
 * or truncated body shows up. */
static int fail_decode(const tt_vips_fns *v, const loader *ld, tt_imaging_out *out) {
  char detail[200];
  int rc = take_vips_error(v, detail, sizeof detail);
  if (rc == TT_ENOMEM)
    set_error(out, "not enough memory to process this %s", ld->display);
  else
    set_error(out, "corrupt %s: %s", ld->display, detail);
  return rc;
}

static int process(pipeline *pl, const void *in, size_t len, const tt_imaging_limits *lim,
                   tt_imaging_out *out) {
  const tt_vips_fns *v = pl->v;
  const char *cls = v->vips_foreign_find_load_buffer(in, len);
  const loader *ld = NULL;
  for (size_t i = 0; cls && i < sizeof loaders / sizeof loaders[0]; i++)
    if (!strcmp(cls, loaders[i].buffer_class)) ld = &loaders[i];
  if (!ld) {
    v->vips_error_clear();
    set_error(out, "not an image in an accepted format (" ACCEPTED ")");
    return TT_EINVAL;
  }
  out->format = ld->format;

  /* header only: the loader decodes pixels when the first one is asked for */
  VipsImage *img = v->vips_image_new_from_buffer(in, len, "", "fail_on", VIPS_FAIL_ON_ERROR, NULL);
  if (!keep(pl, img)) return fail_decode(v, ld, out);
  int w = v->vips_image_get_width(img), h = v->vips_image_get_height(img);
  int64_t px = (int64_t)w * h;
  if (px > lim->max_pixels) {
    char a[32], b[32];
    fmt_pixels(a, sizeof a, px);
    fmt_pixels(b, sizeof b, lim->max_pixels);
    if (!strcmp(a, b)) { /* rounded to the same figure: say it exactly */
      snprintf(a, sizeof a, "%" PRId64 " px", px);
      snprintf(b, sizeof b, "%" PRId64 " px", lim->max_pixels);
    }
    set_error(out, "image is %dx%d = %s, over the %s limit", w, h, a, b);
    return TT_ETOOBIG;
  }

  VipsImage *rot = NULL, *toned, *thumb = NULL;
  if (v->vips_autorot(img, &rot, NULL)) return fail_decode(v, ld, out);
  keep(pl, rot);
  out->width = v->vips_image_get_width(rot);
  out->height = v->vips_image_get_height(rot);
  if (!(toned = sepia(pl, rot)) ||
      save(v, toned, ld->out, &out->processed, &out->processed_len, &out->processed_type))
    return fail_decode(v, ld, out);
  if (v->vips_thumbnail_image(rot, &thumb, lim->thumb_size, "height", lim->thumb_size, "size", VIPS_SIZE_DOWN,
                              NULL))
    return fail_decode(v, ld, out);
  keep(pl, thumb);
  if (save(v, thumb, ld->out, &out->thumb, &out->thumb_len, &out->thumb_type)) return fail_decode(v, ld, out);
  return 0;
}

int tt_imaging_process(const void *in, size_t len, const tt_imaging_limits *lim, tt_imaging_out *out) {
  memset(out, 0, sizeof *out);
  tt_imaging_limits defaults = {TT_IMAGING_DEFAULT_MAX_PIXELS, TT_IMAGING_DEFAULT_THUMB_SIZE};
  if (!lim) lim = &defaults;
  if (lim->max_pixels <= 0 || lim->thumb_size <= 0 || lim->thumb_size > VIPS_MAX_COORD) {
    set_error(out, "bad imaging limits (max_pixels %" PRId64 ", thumb_size %d)", lim->max_pixels,
              lim->thumb_size);
    return TT_EINVAL;
  }
  pipeline pl = {.v = tt_imaging_vips()};
  if (!pl.v) {
    set_error(out, "image processing is not available on this worker");
    return TT_ENOTSUP;
  }
  if (!in || !len) {
    set_error(out, "not an image: the upload is empty");
    return TT_EINVAL;
  }
  int rc = process(&pl, in, len, lim, out);
  for (int i = 0; i < pl.n; i++) pl.v->g_object_unref(pl.t[i]);
  if (rc) {
    char keep_error[sizeof out->error];
    memcpy(keep_error, out->error, sizeof keep_error);
    const char *format = out->format;
    tt_imaging_out_free(out);
    memcpy(out->error, keep_error, sizeof keep_error);
    out->format = format;
  }
  return rc;
}

void tt_imaging_out_free(tt_imaging_out *out) {
  if (!out) return;
  const tt_vips_fns *v = tt_imaging_vips();
  if (v) { /* buffers exist only after a successful init */
    v->g_free(out->processed);
    v->g_free(out->thumb);
  }
  memset(out, 0, sizeof *out);
}
