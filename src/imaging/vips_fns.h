/* vips_fns.h — the libvips functions tintype calls, as a table of pointers
 * filled by dlsym in tt_imaging_init (src/imaging/imaging.c).
 *
 * libvips' headers are used for types and prototypes only: each field has
 * the type of the real function (__typeof__), so the compiler checks every
 * call, yet no object file references a libvips or glib symbol and the
 * binary does not link them. Never use a libvips or GObject macro that
 * expands to a function call (VIPS_IMAGE(), G_OBJECT(), VIPS_INIT()...):
 * call through the table. tests/unit/test_imaging.c uses the same table to
 * draw its inputs and read the outputs' pixels. */
#ifndef TT_IMAGING_VIPS_FNS_H
#define TT_IMAGING_VIPS_FNS_H

#include <vips/vips.h>

/* X(name): required, tt_imaging_init fails without it */
/* clang-format off */
#define TT_VIPS_REQUIRED(X)                                                              \
  X(vips_version) X(vips_init) X(vips_concurrency_set) X(vips_cache_set_max)             \
  X(vips_error_buffer_copy) X(vips_error_clear) X(g_object_unref) X(g_free)              \
  X(g_log_set_handler)                                                                   \
  X(vips_foreign_find_load_buffer) X(vips_image_new_from_buffer)                         \
  X(vips_image_get_width) X(vips_image_get_height) X(vips_image_get_bands)               \
  X(vips_image_hasalpha) X(vips_autorot) X(vips_colourspace) X(vips_extract_band)        \
  X(vips_recomb) X(vips_image_new_matrix_from_array) X(vips_cast) X(vips_bandjoin2)      \
  X(vips_thumbnail_image) X(vips_jpegsave_buffer) X(vips_pngsave_buffer)                 \
  X(vips_webpsave_buffer)                                                                \
  /* for tests/unit/test_imaging.c */                                                    \
  X(vips_image_new_from_memory_copy) X(vips_black) X(vips_getpoint) X(vips_image_set_int) \
  X(vips_image_get_int) X(vips_image_write_to_buffer) X(vips_object_map)                 \
  X(vips_tracked_get_files)
/* clang-format on */

/* X(name): used when present (libvips 8.13+) */
#define TT_VIPS_OPTIONAL(X) X(vips_block_untrusted_set) X(vips_operation_block_set)

#define TT_VIPS_FIELD(name) __typeof__(&name) name;
typedef struct tt_vips_fns {
  TT_VIPS_REQUIRED(TT_VIPS_FIELD)
  TT_VIPS_OPTIONAL(TT_VIPS_FIELD)
} tt_vips_fns;
#undef TT_VIPS_FIELD

/* The table, once tt_imaging_init has returned 0; NULL before or after a
 * failed init. */
const tt_vips_fns *tt_imaging_vips(void);

#endif
