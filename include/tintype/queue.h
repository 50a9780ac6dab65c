/* queue.h — the messages seam (DESIGN §2): SQS semantics.
 *
 * One tt_queue handle reaches every named queue of its backend ("jobs",
 * "images", ...); names are 1..80 characters of [A-Za-z0-9_.-]. The URL's
 * scheme picks the backend from the table in src/backends.c:
 *   sqlite://PATH   embedded, src/queue/sqlite.c; may be the same file as
 *                   the store. ?sync=full as for the store.
 *   sqs://NAME      recognised, TT_ENOTSUP until its backend is listed
 *   anything else   TT_EINVAL
 *
 * Semantics (as SQS standard queues):
 *   - at-least-once: a message received and not deleted before its
 *     visibility timeout ends is delivered again, to anyone. No ordering.
 *   - every receive makes a NEW receipt handle. delete and change_visibility
 *     need the latest one: once a message has been received again, an older
 *     receipt is stale. BACKEND-SPECIFIC: sqlite refuses a stale receipt
 *     (TT_ESTALE, nothing changes) and a message that no longer exists
 *     (deleted, purged, dead-lettered) answers TT_ENOTFOUND, so there
 *     "status 0 from delete" happens exactly once per message. SQS's
 *     DeleteMessage with a stale receipt may or may not delete and usually
 *     answers success: a caller must never rely on TT_ESTALE or on a single
 *     successful delete, only on "a message not deleted comes back" (the
 *     worker tolerates redelivery: it re-reads the record's state).
 *   - a receipt stays valid after its visibility timeout has passed as long
 *     as nobody has received the message again (as SQS).
 *   - redrive: each queue has max_receives (default 5; 0 = never). A message
 *     already received max_receives times is, at its next receive, moved to
 *     the queue's dead-letter state instead of being delivered. Dead messages
 *     are counted, kept, and can be moved back with tt_queue_redrive().
 *   - long poll: receive waits up to wait_ms for at least one message.
 *     BACKEND-SPECIFIC latency: sqlite wakes waiters of the same handle at
 *     once and sees other processes' sends within 25 ms; SQS answers as its
 *     service does.
 *   - counts are approximate (SQS's are, by its own documentation).
 *
 * Calling convention: as store.h — every call returns nothing, its callback
 * runs exactly once on the loop thread and never before the call returns;
 * inputs are copied before the call returns; messages and receipts handed
 * to a callback are valid only until it returns (copy the receipt if the
 * delete happens later). Errors: TT_EINVAL, TT_ENOTFOUND, TT_ESTALE,
 * TT_EBUSY (locked past the 5 s busy timeout), TT_EIO, TT_ENOMEM,
 * TT_ETOOBIG (body over TT_QUEUE_MAX_BODY), TT_ECANCELED (closing).
 *
 * Durability: as store.h (sqlite WAL, synchronous=NORMAL by default). */
#ifndef TINTYPE_QUEUE_H
#define TINTYPE_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/id.h"

typedef struct tt_queue tt_queue;

/* The contract's limits, as SQS's; the front (src/queue/queue.c) checks them. */
#define TT_QUEUE_MAX_BODY (256 * 1024)
#define TT_QUEUE_MAX_BATCH 10 /* receive at most this many at once */
#define TT_QUEUE_NAME_MAX 80
#define TT_QUEUE_MAX_VISIBILITY_MS (12LL * 3600 * 1000)
#define TT_QUEUE_MAX_DELAY_MS (15LL * 60 * 1000)
#define TT_QUEUE_MAX_WAIT_MS 20000
#define TT_QUEUE_DEFAULT_VISIBILITY_MS 30000
#define TT_QUEUE_DEFAULT_MAX_RECEIVES 5

typedef struct tt_queue_msg {
  char id[TT_ID_SIZE]; /* message id, fixed for the message's life */
  const char *body;    /* not NUL-terminated in general; len bytes */
  size_t len;
  const char *receipt; /* NUL-terminated; new on every receive */
  int receive_count;   /* 1 on first delivery */
  int64_t sent_at;     /* ms since epoch */
} tt_queue_msg;

typedef struct tt_queue_counts {
  int64_t visible;   /* can be received now */
  int64_t in_flight; /* received, visibility timeout running */
  int64_t delayed;   /* sent with a delay not yet passed, never received */
  int64_t dead;      /* in the dead-letter state */
} tt_queue_counts;

/* Queue settings; stored in the backend, shared by every process. */
typedef struct tt_queue_attrs {
  int64_t visibility_ms; /* default visibility timeout, 0..12 h */
  int max_receives;      /* 0 = never dead-letter */
} tt_queue_attrs;

typedef struct tt_queue_recv_opts {
  int max;               /* 1..TT_QUEUE_MAX_BATCH; 0 = 1 */
  int64_t visibility_ms; /* < 0: the queue's default; 0..12 h */
  int64_t wait_ms;       /* 0: answer at once; up to 20 s */
} tt_queue_recv_opts;

/* status / message id of the new message (valid during the callback) */
typedef void (*tt_queue_send_cb)(void *ud, int status, const char *id);
/* msgs[0..n-1]; n == 0 with status 0 when wait_ms passed with nothing */
typedef void (*tt_queue_recv_cb)(void *ud, int status, const tt_queue_msg *msgs, size_t n);
/* delete, change visibility, declare */
typedef void (*tt_queue_cb)(void *ud, int status);
/* purge / redrive: how many messages were affected */
typedef void (*tt_queue_count_cb)(void *ud, int status, int64_t n);
typedef void (*tt_queue_counts_cb)(void *ud, int status, const tt_queue_counts *c);
typedef void (*tt_queue_close_cb)(void *ud);

enum { TT_QUEUE_LIVE = 1, TT_QUEUE_DEAD = 2 }; /* purge: which messages */

/* The backend vtable. Callers use the tt_queue_* functions below; a backend
 * fills this struct, embeds struct tt_queue first in its handle, and is
 * listed in src/backends.c. The front (src/queue/queue.c) owns the
 * contract, so by the time an op is called the queue is open, the name is
 * valid and every range above holds: send's body is 1..TT_QUEUE_MAX_BODY
 * bytes and its delay in range; receive's max is 1..TT_QUEUE_MAX_BATCH,
 * visibility_ms is -1 (the queue's default) or in range, wait_ms in range;
 * receipts are non-empty (their format is the backend's to check);
 * purge's which is valid. A backend copies its inputs before returning and
 * calls cb exactly once, on the loop. Failing inline is allowed (the front
 * defers it); delivering messages or counts inline is not.
 * interrupt (may be NULL) is called when close begins: parked long polls
 * answer at once with status 0 and no messages, and no new one may park.
 * close is called once no op is in flight: the backend frees its handle and
 * then calls cb(ud) (inline is fine). */
typedef struct tt_queue_ops {
  const char *name;
  void (*declare)(tt_queue *q, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb, void *ud);
  void (*send)(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay_ms,
               tt_queue_send_cb cb, void *ud);
  void (*receive)(tt_queue *q, const char *queue, const tt_queue_recv_opts *o, tt_queue_recv_cb cb,
                  void *ud);
  void (*del)(tt_queue *q, const char *queue, const char *receipt, tt_queue_cb cb, void *ud);
  void (*change_visibility)(tt_queue *q, const char *queue, const char *receipt,
                            int64_t visibility_ms, tt_queue_cb cb, void *ud);
  void (*purge)(tt_queue *q, const char *queue, int which, tt_queue_count_cb cb, void *ud);
  void (*redrive)(tt_queue *q, const char *queue, tt_queue_count_cb cb, void *ud);
  void (*counts)(tt_queue *q, const char *queue, tt_queue_counts_cb cb, void *ud);
  void (*interrupt)(tt_queue *q);
  void (*close)(tt_queue *q, tt_queue_close_cb cb, void *ud);
} tt_queue_ops;

/* Every backend's handle starts with this. The backend's open sets ops and
 * loop and zeroes the rest (calloc); the rest belongs to the front. */
struct tt_queue {
  const tt_queue_ops *ops;
  uv_loop_t *loop;
  int inflight; /* calls whose callback has not returned yet */
  int closing;
  tt_queue_close_cb close_cb;
  void *close_ud;
};

/* 1 when s is a valid queue name (1..TT_QUEUE_NAME_MAX of [A-Za-z0-9_.-]). */
int tt_queue_name_valid(const char *s);

/* Synchronous; as tt_store_open. */
int tt_queue_open(uv_loop_t *loop, const char *url, tt_queue **out);

/* Creates the queue or changes its attributes. Queues never declared use
 * TT_QUEUE_DEFAULT_VISIBILITY_MS and TT_QUEUE_DEFAULT_MAX_RECEIVES. */
void tt_queue_declare(tt_queue *q, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb,
                      void *ud);

/* Sends body (copied; 1..TT_QUEUE_MAX_BODY bytes) to be receivable after
 * delay_ms (0..15 min). */
void tt_queue_send(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay_ms,
                   tt_queue_send_cb cb, void *ud);

/* Receives up to o->max messages, making them invisible to others for the
 * visibility timeout. Long-polls up to o->wait_ms (see top). */
void tt_queue_receive(tt_queue *q, const char *queue, const tt_queue_recv_opts *o,
                      tt_queue_recv_cb cb, void *ud);

/* Acknowledges: deletes the message if receipt is its latest.
 * 0, TT_ESTALE (received again since), TT_ENOTFOUND (gone), TT_EINVAL. */
void tt_queue_delete(tt_queue *q, const char *queue, const char *receipt, tt_queue_cb cb, void *ud);

/* Makes the message visible again after visibility_ms from now (0 = at once:
 * give it back; more = extend). Same errors as delete. */
void tt_queue_change_visibility(tt_queue *q, const char *queue, const char *receipt,
                                int64_t visibility_ms, tt_queue_cb cb, void *ud);

/* Deletes every message of the queue that `which` selects (TT_QUEUE_LIVE,
 * TT_QUEUE_DEAD or both OR-ed), in flight ones included. */
void tt_queue_purge(tt_queue *q, const char *queue, int which, tt_queue_count_cb cb, void *ud);

/* Moves every dead message back to visible, receive count reset to 0. */
void tt_queue_redrive(tt_queue *q, const char *queue, tt_queue_count_cb cb, void *ud);

/* Snapshot of the four counts (approximate under concurrent writes). */
void tt_queue_counts_get(tt_queue *q, const char *queue, tt_queue_counts_cb cb, void *ud);

/* Closes: waiting long polls end at once with status 0 and no messages,
 * other calls in flight complete normally, then the handle is freed and cb
 * (may be NULL) runs on the loop. Calls after close fail with TT_ECANCELED
 * (and are a bug); closing twice aborts. */
void tt_queue_close(tt_queue *q, tt_queue_close_cb cb, void *ud);

#endif
