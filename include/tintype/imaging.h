/* imaging.h — processing of uploaded pictures (DESIGN §3, image records).
 *
 * One call turns the bytes of an upload into what the image record links
 * to: the original auto-rotated by its EXIF orientation and toned sepia
 * ("processed"), and a thumbnail. libvips does the work; it is loaded with
 * dlopen by tt_imaging_init, only in the processes that process images, so
 * the API processes and the supervisor never map its ~100 libraries
 * (docs/ARCHITECTURE.md, "Imaging").
 *
 * Accepted inputs: JPEG, PNG, WebP, GIF (first frame), TIFF (first page),
 * HEIF/AVIF (first image), each read from memory by its libvips loader.
 * Everything else — SVG, PDF, ImageMagick, OpenSlide, FITS, Matlab, raw
 * vips files and any loader libvips marks untrusted — is refused as "not an
 * accepted image format". Outputs keep the original's family (JPEG → JPEG,
 * PNG → PNG with its alpha, WebP → WebP); the others become PNG. Metadata
 * (EXIF with its GPS position, XMP, ICC) is stripped from both outputs. */
#ifndef TINTYPE_IMAGING_H
#define TINTYPE_IMAGING_H

#include <stddef.h>
#include <stdint.h>

#define TT_IMAGING_DEFAULT_MAX_PIXELS 40000000 /* 40 Mpx: a 7,700 x 5,200 photo */
#define TT_IMAGING_DEFAULT_THUMB_SIZE 256

typedef struct tt_imaging_limits {
  int64_t max_pixels; /* width*height of the decoded original above this: TT_ETOOBIG (decompression bombs);
                         checked from the header BEFORE decoding pixels */
  int thumb_size;     /* long side of the thumbnail in px, 256 */
} tt_imaging_limits;

typedef struct tt_imaging_out {
  void *processed;
  size_t processed_len;
  const char *processed_type; /* auto-rotated + sepia, e.g. "image/jpeg" */
  void *thumb;
  size_t thumb_len;
  const char *thumb_type; /* auto-rotated, long side thumb_size (never upscaled) */
  int width, height;      /* of the auto-rotated original */
  const char *format;     /* "jpeg" | "png" | "webp" | "gif" | "tiff" | "heif" of the original */
  char error[256];        /* on failure: a sentence for the user ("not an image", "image is 20000x20000 = 400
                             Mpx, over the 40 Mpx limit", "corrupt JPEG: ...") */
} tt_imaging_out;

/* Once per process, in the process that will call tt_imaging_process (a
 * worker, after fork; never in the supervisor). Loads libvips.so.42 (or
 * $TINTYPE_LIBVIPS) and starts it with one thread per operation, no
 * operation cache, and every loader but the accepted ones blocked. Also sets
 * glibc's mmap threshold to 128 KiB for the whole process, so freed pixel
 * buffers go back to the system. 0, or TT_ENOTSUP when libvips cannot be
 * loaded or is older than 8.12, TT_EIO when it fails to start; the reason is
 * logged. Idempotent, thread-safe: later calls return the first one's result. */
int tt_imaging_init(void);

/* Blocking (call it from libuv's thread pool); several may run at once.
 * Decodes `in`, auto-rotates it by its EXIF orientation, writes a sepia
 * version and a thumbnail. lim NULL: the defaults above. Returns 0,
 * TT_EINVAL (not an image, a refused format, corrupt or truncated: error
 * says why), TT_ETOOBIG (over max_pixels, found from the header before a
 * pixel is decoded), TT_ENOMEM, or TT_ENOTSUP (tt_imaging_init failed or was
 * not called). out is always filled (zeroed first); free it with
 * tt_imaging_out_free (safe on a zeroed or failed out). */
int tt_imaging_process(const void *in, size_t len, const tt_imaging_limits *lim, tt_imaging_out *out);

void tt_imaging_out_free(tt_imaging_out *out);

#endif
