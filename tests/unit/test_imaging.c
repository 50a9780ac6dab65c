/* test_imaging.c — uploaded pictures as a user sees them after processing:
 * output sizes and formats (by magic bytes), the sepia tint of a known
 * pixel, alpha kept, EXIF orientation applied, corrupt and refused inputs
 * with a sentence, and a decompression bomb refused from its header in
 * little time and memory. Every input is drawn here with libvips, through
 * the module's own table of dlsym'ed functions: no fixtures on disk, and
 * the test binary links libvips no more than tintype does. */
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imaging/vips_fns.h"
#include "tintype/error.h"
#include "tintype/imaging.h"
#include "tt_test.h"

static const tt_vips_fns *V;

typedef enum { ENC_JPEG, ENC_PNG, ENC_WEBP, ENC_GIF, ENC_TIFF, ENC_AVIF } enc;

/* A w x h image of `bands` bands: a `fill` background with a 50x50 `mark`
 * block in the top-left corner (the orientation marker). */
static VipsImage *draw(int w, int h, int bands, const unsigned char *fill, const unsigned char *mark) {
  size_t n = (size_t)w * h * bands;
  unsigned char *px = malloc(n);
  if (!px) return NULL;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      memcpy(px + ((size_t)y * w + x) * bands, (x < 50 && y < 50 && mark) ? mark : fill, bands);
  VipsImage *img = V->vips_image_new_from_memory_copy(px, n, w, h, bands, VIPS_FORMAT_UCHAR);
  free(px);
  return img;
}

/* Encodes img; the caller g_frees *buf. 0 or -1. */
static int encode(VipsImage *img, enc e, void **buf, size_t *len) {
  int rc;
  switch (e) {
    case ENC_JPEG: rc = V->vips_jpegsave_buffer(img, buf, len, "Q", 95, NULL); break;
    case ENC_PNG: rc = V->vips_pngsave_buffer(img, buf, len, NULL); break;
    case ENC_WEBP: rc = V->vips_webpsave_buffer(img, buf, len, "lossless", TRUE, NULL); break;
    case ENC_GIF: rc = V->vips_image_write_to_buffer(img, ".gif", buf, len, NULL); break;
    case ENC_TIFF: rc = V->vips_image_write_to_buffer(img, ".tif", buf, len, NULL); break;
    default: rc = V->vips_image_write_to_buffer(img, ".avif", buf, len, NULL); break;
  }
  return rc ? -1 : 0;
}

/* draw + encode in one go; NULL on failure */
static void *make(int w, int h, int bands, const unsigned char *fill, const unsigned char *mark, enc e,
                  size_t *len) {
  void *buf = NULL;
  VipsImage *img = draw(w, h, bands, fill, mark);
  if (!img || encode(img, e, &buf, len)) buf = NULL;
  if (img) V->g_object_unref(img);
  return buf;
}

static int is_jpeg(const void *p, size_t n) { return n > 3 && !memcmp(p, "\xff\xd8\xff", 3); }
static int is_png(const void *p, size_t n) { return n > 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8); }
static int is_webp(const void *p, size_t n) {
  return n > 12 && !memcmp(p, "RIFF", 4) && !memcmp((const char *)p + 8, "WEBP", 4);
}

typedef struct {
  int w, h, bands;
  double px[4]; /* the pixel asked for */
} decoded;

/* Decodes an output buffer: its size, bands and the pixel at (x, y). */
static int decode(const void *buf, size_t len, int x, int y, decoded *d) {
  memset(d, 0, sizeof *d);
  VipsImage *img = V->vips_image_new_from_buffer(buf, len, "", NULL);
  if (!img) return -1;
  d->w = V->vips_image_get_width(img);
  d->h = V->vips_image_get_height(img);
  d->bands = V->vips_image_get_bands(img);
  double *vec = NULL;
  int n = 0, rc = V->vips_getpoint(img, &vec, &n, x, y, NULL);
  for (int i = 0; !rc && i < n && i < 4; i++) d->px[i] = vec[i];
  V->g_free(vec);
  V->g_object_unref(img);
  return rc ? -1 : 0;
}

/* libvips keeps every live object in a table of its own, so LeakSanitizer
 * cannot see a leaked image: count them, and libvips' open temporary files,
 * before and after each test. (Its tracked-allocation count is no measure:
 * its threads release their per-thread buffers when they next run.) */
static void *count_one(void *item, void *a, void *b) {
  (void)item, (void)b;
  ++*(int *)a;
  return NULL;
}
typedef struct {
  int objects, files;
} vips_live;
static vips_live live(void) {
  vips_live l = {0, V->vips_tracked_get_files()};
  V->vips_object_map(count_one, &l.objects, NULL);
  return l;
}
static void run(const char *name, void (*fn)(void)) {
  vips_live a = live();
  fn();
  vips_live b = live();
  if (a.objects != b.objects || a.files != b.files)
    fprintf(stderr, "  %s left libvips objects %d -> %d, temp files %d -> %d\n", name, a.objects, b.objects,
            a.files, b.files);
  CHECK_INT(b.objects, a.objects);
  CHECK_INT(b.files, a.files);
}

#define NEAR(a, b, tol) ((a) >= (b) - (tol) && (a) <= (b) + (tol))

static const unsigned char GREY[4] = {128, 128, 128, 255}, WHITE[4] = {255, 255, 255, 255},
                           RED[4] = {255, 0, 0, 255}, GREY_HALF[4] = {128, 128, 128, 128};

/* sepia of mid-grey 128 is (173, 154, 120): the tint r > g > b */
static void check_sepia_grey(const decoded *d, int tol) {
  if (!(NEAR(d->px[0], 173, tol) && NEAR(d->px[1], 154, tol) && NEAR(d->px[2], 120, tol)))
    fprintf(stderr, "  sepia pixel %.0f,%.0f,%.0f, want 173,154,120 +-%d\n", d->px[0], d->px[1], d->px[2],
            tol);
  CHECK(NEAR(d->px[0], 173, tol) && NEAR(d->px[1], 154, tol) && NEAR(d->px[2], 120, tol));
  CHECK(d->px[0] > d->px[1] + 10 && d->px[1] > d->px[2] + 20);
}

/* A worker without libvips: init and process say so, nothing crashes. Runs
 * in a child because init happens once per process. */
static void test_no_libvips(void) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("TINTYPE_LIBVIPS", "/nonexistent/libvips.so.42", 1);
    tt_imaging_out out;
    int a = tt_imaging_init(), b = tt_imaging_init();
    int c = tt_imaging_process("\xff\xd8\xff", 3, NULL, &out);
    int ok = a == TT_ENOTSUP && b == TT_ENOTSUP && c == TT_ENOTSUP && out.error[0] && !out.processed;
    tt_imaging_out_free(&out);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int maps_libvips(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int found = 0;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, "libvips.so")) found = 1;
  if (f) fclose(f);
  return found;
}

/* Before tt_imaging_init nothing maps libvips, and processing does not
 * start it behind the caller's back (the supervisor must never map it). */
static void test_not_started(void) {
  pid_t pid = fork();
  if (pid == 0) {
    tt_imaging_out out;
    int before = maps_libvips();
    int rc = tt_imaging_process("\xff\xd8\xff", 3, NULL, &out);
    int ok = !before && rc == TT_ENOTSUP && !maps_libvips() &&
             !strcmp(out.error, "image processing is not available on this worker");
    tt_imaging_out_free(&out);
    ok = ok && tt_imaging_init() == 0 && maps_libvips();
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_jpeg(void) {
  size_t len = 0;
  VipsImage *img = draw(1000, 500, 3, GREY, WHITE); /* white 50x50 top-left, grey elsewhere */
  void *in = NULL;
  CHECK(img && !encode(img, ENC_JPEG, &in, &len));
  if (img) V->g_object_unref(img);
  tt_imaging_out out;
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_STR(out.format, "jpeg");
  CHECK_INT(out.width, 1000);
  CHECK_INT(out.height, 500);
  CHECK_STR(out.processed_type, "image/jpeg");
  CHECK_STR(out.thumb_type, "image/jpeg");
  CHECK(is_jpeg(out.processed, out.processed_len));
  CHECK(is_jpeg(out.thumb, out.thumb_len));
  CHECK_STR(out.error, "");
  char *stale = V->vips_error_buffer_copy(); /* a success leaves nothing for the next failure to quote */
  CHECK_STR(stale, "");
  V->g_free(stale);
  decoded d;
  CHECK_INT(decode(out.processed, out.processed_len, 500, 250, &d), 0);
  CHECK_INT(d.w, 1000);
  CHECK_INT(d.h, 500);
  CHECK_INT(d.bands, 3);
  check_sepia_grey(&d, 4);
  /* white saturates red and green, blue stays below: 255, 255, 239 */
  CHECK_INT(decode(out.processed, out.processed_len, 20, 20, &d), 0);
  CHECK(d.px[0] >= 250 && d.px[1] >= 250 && NEAR(d.px[2], 239, 4));
  /* the thumbnail is scaled, not toned */
  CHECK_INT(decode(out.thumb, out.thumb_len, 128, 64, &d), 0);
  CHECK_INT(d.w, 256);
  CHECK_INT(d.h, 128);
  CHECK(NEAR(d.px[0], 128, 4) && NEAR(d.px[1], 128, 4) && NEAR(d.px[2], 128, 4));
  tt_imaging_out_free(&out);
  CHECK(!out.processed && !out.thumb && !out.format);
  tt_imaging_out_free(&out); /* twice is harmless */

  /* exactly at the limit passes; one pixel less refuses */
  tt_imaging_limits at = {.max_pixels = 500000, .thumb_size = 256};
  CHECK_INT(tt_imaging_process(in, len, &at, &out), 0);
  tt_imaging_out_free(&out);
  at.max_pixels = 499999;
  CHECK_INT(tt_imaging_process(in, len, &at, &out), TT_ETOOBIG);
  CHECK_STR(out.error, "image is 1000x500 = 500000 px, over the 499999 px limit");
  CHECK(!out.processed && !out.thumb);
  tt_imaging_out_free(&out);

  /* a thumb_size of 100: long side 100 */
  tt_imaging_limits small = {.max_pixels = TT_IMAGING_DEFAULT_MAX_PIXELS, .thumb_size = 100};
  CHECK_INT(tt_imaging_process(in, len, &small, &out), 0);
  CHECK_INT(decode(out.thumb, out.thumb_len, 0, 0, &d), 0);
  CHECK_INT(d.w, 100);
  CHECK_INT(d.h, 50);
  tt_imaging_out_free(&out);

  tt_imaging_limits bad = {.max_pixels = 0, .thumb_size = 256};
  CHECK_INT(tt_imaging_process(in, len, &bad, &out), TT_EINVAL);
  tt_imaging_out_free(&out);

  /* truncated: the header survives, the pixels do not */
  CHECK_INT(tt_imaging_process(in, len / 2, NULL, &out), TT_EINVAL);
  fprintf(stderr, "  truncated JPEG: %s\n", out.error);
  CHECK(!strncmp(out.error, "corrupt JPEG: ", 14) && strlen(out.error) > 14);
  CHECK(!out.processed && !out.thumb);
  tt_imaging_out_free(&out);
  /* truncated inside the header */
  CHECK_INT(tt_imaging_process(in, 40, NULL, &out), TT_EINVAL);
  fprintf(stderr, "  JPEG cut at 40 bytes: %s\n", out.error);
  CHECK(!strncmp(out.error, "corrupt JPEG: ", 14) && strlen(out.error) > 14);
  tt_imaging_out_free(&out);
  V->g_free(in);
}

static void test_png_alpha(void) {
  size_t len = 0;
  /* 100x50, half-transparent grey with an opaque red marker: no upscale */
  void *in = make(100, 50, 4, GREY_HALF, RED, ENC_PNG, &len);
  CHECK(in != NULL);
  tt_imaging_out out;
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_STR(out.format, "png");
  CHECK_STR(out.processed_type, "image/png");
  CHECK_STR(out.thumb_type, "image/png");
  CHECK(is_png(out.processed, out.processed_len));
  CHECK(is_png(out.thumb, out.thumb_len));
  decoded d;
  CHECK_INT(decode(out.processed, out.processed_len, 80, 40, &d), 0);
  CHECK_INT(d.w, 100);
  CHECK_INT(d.h, 50);
  CHECK_INT(d.bands, 4);
  check_sepia_grey(&d, 1);
  CHECK_INT(d.px[3], 128); /* alpha untouched */
  CHECK_INT(decode(out.processed, out.processed_len, 10, 10, &d), 0);
  CHECK_INT(d.px[3], 255);
  CHECK(NEAR(d.px[0], 100, 1) && NEAR(d.px[1], 89, 1) && NEAR(d.px[2], 69, 1)); /* sepia of red */
  CHECK_INT(decode(out.thumb, out.thumb_len, 80, 40, &d), 0);
  CHECK_INT(d.w, 100); /* never upscaled */
  CHECK_INT(d.h, 50);
  CHECK_INT(d.bands, 4);
  CHECK(NEAR(d.px[3], 128, 1));
  tt_imaging_out_free(&out);
  V->g_free(in);

  /* grey + alpha (2 bands) comes out as sepia RGBA */
  static const unsigned char ga[2] = {128, 200};
  in = make(64, 64, 2, ga, NULL, ENC_PNG, &len);
  CHECK(in != NULL);
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_INT(decode(out.processed, out.processed_len, 32, 32, &d), 0);
  CHECK_INT(d.bands, 4);
  check_sepia_grey(&d, 1);
  CHECK_INT(d.px[3], 200);
  tt_imaging_out_free(&out);
  V->g_free(in);
}

static void test_webp_gif(void) {
  size_t len = 0;
  void *in = make(400, 300, 3, GREY, NULL, ENC_WEBP, &len);
  CHECK(in != NULL);
  tt_imaging_out out;
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_STR(out.format, "webp");
  CHECK_STR(out.processed_type, "image/webp");
  CHECK(is_webp(out.processed, out.processed_len));
  CHECK(is_webp(out.thumb, out.thumb_len));
  decoded d;
  CHECK_INT(decode(out.processed, out.processed_len, 200, 150, &d), 0);
  check_sepia_grey(&d, 4);
  CHECK_INT(decode(out.thumb, out.thumb_len, 0, 0, &d), 0);
  CHECK_INT(d.w, 256);
  CHECK_INT(d.h, 192);
  tt_imaging_out_free(&out);
  V->g_free(in);

  /* GIF is accepted and comes out as PNG */
  in = make(300, 100, 3, GREY, NULL, ENC_GIF, &len);
  CHECK(in != NULL && len > 6 && !memcmp(in, "GIF8", 4));
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_STR(out.format, "gif");
  CHECK(is_png(out.processed, out.processed_len));
  CHECK(is_png(out.thumb, out.thumb_len));
  CHECK_INT(decode(out.thumb, out.thumb_len, 0, 0, &d), 0);
  CHECK_INT(d.w, 256);
  CHECK_INT(d.h, 85);
  tt_imaging_out_free(&out);
  V->g_free(in);

  /* TIFF and AVIF too, as PNG */
  static const struct {
    enc e;
    const char *format;
  } more[] = {{ENC_TIFF, "tiff"}, {ENC_AVIF, "heif"}};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    in = make(128, 64, 3, GREY, NULL, more[i].e, &len);
    CHECK(in != NULL);
    CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
    CHECK_STR(out.format, more[i].format);
    CHECK(is_png(out.processed, out.processed_len));
    CHECK_INT(decode(out.processed, out.processed_len, 64, 32, &d), 0);
    check_sepia_grey(&d, 6);
    tt_imaging_out_free(&out);
    V->g_free(in);
  }
}

/* Orientation 6 ("rotate 90° clockwise to display"): a 300x200 JPEG shows
 * as 200x300, and its top-left marker ends up top-right. */
static void test_orientation(void) {
  VipsImage *img = draw(300, 200, 3, GREY, RED);
  CHECK(img != NULL);
  if (!img) return;
  V->vips_image_set_int(img, "orientation", 6);
  void *in = NULL;
  size_t len = 0;
  CHECK(!encode(img, ENC_JPEG, &in, &len));
  V->g_object_unref(img);
  tt_imaging_out out;
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), 0);
  CHECK_INT(out.width, 200);
  CHECK_INT(out.height, 300);
  decoded d;
  CHECK_INT(decode(out.processed, out.processed_len, 175, 25, &d), 0);
  CHECK_INT(d.w, 200);
  CHECK_INT(d.h, 300);
  CHECK(NEAR(d.px[0], 100, 6) && NEAR(d.px[1], 89, 6) && NEAR(d.px[2], 69, 6)); /* sepia red */
  CHECK_INT(decode(out.processed, out.processed_len, 25, 25, &d), 0);
  check_sepia_grey(&d, 4);
  CHECK_INT(decode(out.thumb, out.thumb_len, 160, 10, &d), 0);
  CHECK(d.w == 170 || d.w == 171);
  CHECK_INT(d.h, 256);
  CHECK(d.px[0] > 200 && d.px[1] < 60 && d.px[2] < 60); /* red, top-right */
  /* the outputs carry no orientation that would rotate them again */
  VipsImage *o = V->vips_image_new_from_buffer(out.processed, out.processed_len, "", NULL);
  int orient = 1;
  CHECK(o != NULL);
  if (o && V->vips_image_get_int(o, "orientation", &orient)) V->vips_error_clear(); /* absent */
  CHECK_INT(orient, 1);
  if (o) V->g_object_unref(o);
  tt_imaging_out_free(&out);
  V->g_free(in);
}

static void test_refused(void) {
  tt_imaging_out out;
  static const char garbage[] = "this is not an image, just some text that came up as an upload";
  CHECK_INT(tt_imaging_process(garbage, sizeof garbage - 1, NULL, &out), TT_EINVAL);
  CHECK(!strncmp(out.error, "not an image", 12));
  CHECK(out.format == NULL && !out.processed);
  tt_imaging_out_free(&out);
  CHECK_INT(tt_imaging_process(garbage, 0, NULL, &out), TT_EINVAL);
  CHECK(!strncmp(out.error, "not an image", 12));
  tt_imaging_out_free(&out);

  static const char svg[] =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"100\">"
      "<image href=\"file:///etc/passwd\" width=\"100\" height=\"100\"/></svg>";
  CHECK_INT(tt_imaging_process(svg, sizeof svg - 1, NULL, &out), TT_EINVAL);
  CHECK(!strncmp(out.error, "not an image in an accepted format", 34));
  tt_imaging_out_free(&out);
  /* refused inside libvips as well, whoever asks: its SVG loader is blocked */
  VipsImage *direct = V->vips_image_new_from_buffer(svg, sizeof svg - 1, "", NULL);
  CHECK(direct == NULL);
  if (direct) V->g_object_unref(direct);
  V->vips_error_clear();
  /* Radiance HDR: libvips has a loader; tintype does not accept the format, and
   * after init libvips refuses it too */
  VipsImage *img = draw(8, 8, 3, GREY, NULL);
  void *hdr = NULL;
  size_t hdr_len = 0;
  CHECK(img && !V->vips_image_write_to_buffer(img, ".hdr", &hdr, &hdr_len, NULL));
  if (img) V->g_object_unref(img);
  CHECK(hdr_len > 10 && !memcmp(hdr, "#?RADIANCE", 10));
  CHECK_INT(tt_imaging_process(hdr, hdr_len, NULL, &out), TT_EINVAL);
  CHECK(!strncmp(out.error, "not an image in an accepted format", 34));
  tt_imaging_out_free(&out);
  direct = V->vips_image_new_from_buffer(hdr, hdr_len, "", NULL);
  CHECK(direct == NULL);
  if (direct) V->g_object_unref(direct);
  V->vips_error_clear();
  V->g_free(hdr);
  static const char pdf[] =
      "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
  CHECK_INT(tt_imaging_process(pdf, sizeof pdf - 1, NULL, &out), TT_EINVAL);
  CHECK(!strncmp(out.error, "not an image in an accepted format", 34));
  tt_imaging_out_free(&out);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
  if (f) fclose(f);
  return v;
}

/* A 30000x30000 PNG (900 Mpx, 112 MB decoded even at one bit a pixel) that
 * is a few hundred KB: refused from its header, quickly, without growing. */
static void test_bomb(void) {
  double t0 = now();
  VipsImage *black = NULL;
  void *in = NULL;
  size_t len = 0;
  CHECK(!V->vips_black(&black, 30000, 30000, NULL));
  CHECK(black && !V->vips_pngsave_buffer(black, &in, &len, "bitdepth", 1, "compression", 9, NULL));
  if (black) V->g_object_unref(black);
  double t1 = now();
  fprintf(stderr, "  bomb: %zu bytes, made in %.2f s\n", len, t1 - t0);
  CHECK(len > 0 && len < 1024 * 1024);

  FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": reset the peak RSS (VmHWM) */
  if (f) {
    fputs("5", f);
    fclose(f);
  }
  long rss0 = status_kb("VmRSS");
  tt_imaging_out out;
  double t2 = now();
  CHECK_INT(tt_imaging_process(in, len, NULL, &out), TT_ETOOBIG);
  double t3 = now();
  long hwm = status_kb("VmHWM");
  fprintf(stderr, "  bomb refused in %.1f ms, peak RSS +%ld kB: %s\n", (t3 - t2) * 1e3, hwm - rss0,
          out.error);
  CHECK_STR(out.error, "image is 30000x30000 = 900 Mpx, over the 40 Mpx limit");
  CHECK(!out.processed && !out.thumb);
  CHECK(t3 - t2 < 1.0);
  CHECK(rss0 > 0 && hwm - rss0 < 32 * 1024);
  tt_imaging_out_free(&out);
  V->g_free(in);
}

/* Several uploads at once, as on the worker's thread pool. */
typedef struct {
  void *in;
  size_t len;
  int rc, w, h;
} job;
static void *run_job(void *arg) {
  job *j = arg;
  tt_imaging_out out;
  j->rc = tt_imaging_process(j->in, j->len, NULL, &out);
  decoded d;
  if (!j->rc && !decode(out.thumb, out.thumb_len, 0, 0, &d)) j->w = d.w, j->h = d.h;
  tt_imaging_out_free(&out);
  return NULL;
}
static void test_threads(void) {
  enum { N = 4 };
  job jobs[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].in = make(600 + 100 * i, 300, 3, GREY, RED, i % 2 ? ENC_PNG : ENC_JPEG, &jobs[i].len);
    CHECK(jobs[i].in != NULL);
  }
  for (int i = 0; i < N; i++) CHECK_INT(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(jobs[i].rc, 0);
    CHECK_INT(jobs[i].w, 256);
    CHECK_INT(jobs[i].h, (int)(256.0 * 300 / (600 + 100 * i) + 0.5));
    V->g_free(jobs[i].in);
  }
}

int main(void) {
  test_no_libvips(); /* first: init is once per process */
  test_not_started();
  CHECK_INT(tt_imaging_init(), 0);
  CHECK_INT(tt_imaging_init(), 0);
  V = tt_imaging_vips();
  CHECK(V != NULL);
  if (!V) TT_TEST_END();
  run("jpeg", test_jpeg);
  run("png_alpha", test_png_alpha);
  run("webp_gif", test_webp_gif);
  run("orientation", test_orientation);
  run("refused", test_refused);
  run("bomb", test_bomb);
  run("threads", test_threads);
  TT_TEST_END();
}
