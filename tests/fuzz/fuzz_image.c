/* fuzz_image.c — the image-header sniffers: the upload's magic-number check
 * (sniff() of src/api/images.c, included here for its statics) and
 * src/imaging/'s loader choice and header read through libvips, with the
 * pixel budget set so low (64 x 64) that only tiny pictures are decoded and
 * every other input stops at the header, as a decompression bomb does.
 *
 * Checked: sniff names one of the four upload types or nothing; the
 * imaging result is one of its documented codes with an error sentence on
 * failure, and a success has its size within the budget. */
#include <stdint.h>

#include "../../src/api/images.c"
#include "tintype/imaging.h"

#define REQUIRE(c)                                     \
  do {                                                 \
    if (!(c)) {                                        \
      fprintf(stderr, "fuzz_image: broken: %s\n", #c); \
      abort();                                         \
    }                                                  \
  } while (0)

static int have_vips;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  tt_log_init(2, TT_LOG_OFF, "fuzz");
  have_vips = tt_imaging_init() == TT_OK;
  if (!have_vips) fprintf(stderr, "fuzz_image: libvips did not load: only the upload sniffer is fuzzed\n");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *ct = sniff(data, size);
  REQUIRE(!ct || !strcmp(ct, "image/png") || !strcmp(ct, "image/jpeg") || !strcmp(ct, "image/webp") ||
          !strcmp(ct, "image/gif"));
  if (!have_vips) return 0;
  tt_imaging_limits lim = {64 * 64, 16};
  tt_imaging_out out;
  int rc = tt_imaging_process(data, size, &lim, &out);
  REQUIRE(rc == TT_OK || rc == TT_EINVAL || rc == TT_ETOOBIG || rc == TT_ENOMEM);
  if (rc) {
    REQUIRE(out.error[0]);
  } else {
    REQUIRE(out.width > 0 && out.height > 0 && (int64_t)out.width * out.height <= lim.max_pixels);
    REQUIRE(out.processed && out.processed_len && out.thumb && out.thumb_len);
  }
  tt_imaging_out_free(&out);
  return 0;
}
