/* record.h — field tables for tt_user / tt_image / tt_job (internal).
 *
 * One row per field: column name, type, offset in the struct, and whether
 * update may change it. Backends build their statements and encode/decode
 * records from these tables, so a new field is one line here plus a
 * migration; store.c uses them for dup/free. */
#ifndef TT_STORE_RECORD_H
#define TT_STORE_RECORD_H

#include <stddef.h>

#include "tintype/store.h"

typedef enum { TT_F_ID, TT_F_STR, TT_F_INT } tt_ftype;

/* flags */
#define TT_F_KEY 1       /* the primary key (id) */
#define TT_F_IMMUTABLE 2 /* set by create only (id, owner, created_at) */
#define TT_F_AUTO 4      /* maintained by the store (version, updated_at) */

typedef struct tt_field {
  const char *name;
  tt_ftype type;
  size_t off;
  int flags;
} tt_field;

typedef struct tt_kind_desc {
  const char *table;
  size_t size; /* sizeof the record struct */
  const tt_field *fields;
  int nfields;
  int has_owner; /* images, jobs */
} tt_kind_desc;

const tt_kind_desc *tt_kind_get(tt_kind k); /* NULL for an unknown kind */

/* Deep copy src into dst (dst overwritten). TT_OK or TT_ENOMEM (dst then
 * holds what was copied and must still be cleared). */
int tt_rec_copy(tt_kind k, void *dst, const void *src);
/* Frees the strings of rec and zeroes it. */
void tt_rec_clear(tt_kind k, void *rec);

#define TT_REC_STR(rec, f) (*(char **)((char *)(rec) + (f)->off))
#define TT_REC_INT(rec, f) (*(int64_t *)((char *)(rec) + (f)->off))
#define TT_REC_ID(rec, f) ((char *)(rec) + (f)->off)

#endif
