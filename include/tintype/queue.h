/* queue.h — the messages seam (DESIGN §2): SQS semantics.
 *
 * One tt_queue handle reaches every named queue of its backend ("jobs",
 * "images", ...); names are 1..80 characters of [A-Za-z0-9_.-]. Backends:
 *   sqlite://PATH   embedded, src/queue/sqlite.c; may be the same file as
 *                   the store. ?sync=full as for the store.
 *   sqs://NAME      recognised, TT_ENOTSUP (not built yet)
 *   anything else   TT_EINVAL
 *
 * Semantics (as SQS standard queues):
 *   - at-least-once: a message received and not deleted before its
 *     visibility timeout ends is delivered again, to anyone. No ordering.
 *   - every receive makes a NEW receipt handle. delete and change_visibility
 *     need the latest one: once a message has been received again, an older
 *     receipt is stale and the call changes nothing (TT_ESTALE). A message
 *     that no longer exists (deleted, purged, dead-lettered) answers
 *     TT_ENOTFOUND. So "status 0 from delete" happens exactly once per
 *     message.
 *   - a receipt stays valid after its visibility timeout has passed as long
 *     as nobody has received the message again (as SQS).
 *   - redrive: each queue has max_receives (default 5; 0 = never). A message
 *     already received max_receives times is, at its next receive, moved to
 *     the queue's dead-letter state instead of being delivered. Dead messages
 *     are counted, kept, and can be moved back with tt_queue_redrive().
 *   - long poll: receive waits up to wait_ms for at least one message. Within
 *     one process a send on the same handle wakes waiters at once; sends by
 *     other processes are seen at the next poll, every TT_QUEUE_POLL_MS.
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

#define TT_QUEUE_MAX_BODY (256 * 1024) /* as SQS */
#define TT_QUEUE_MAX_BATCH 10          /* receive at most this many at once, as SQS */
#define TT_QUEUE_POLL_MS 25            /* long-poll re-check interval (sqlite) */
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
  void (*close)(tt_queue *q, tt_queue_close_cb cb, void *ud);
} tt_queue_ops;

struct tt_queue {
  const tt_queue_ops *ops;
  uv_loop_t *loop;
};

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
 * (may be NULL) runs on the loop. Calls after close are a bug. */
void tt_queue_close(tt_queue *q, tt_queue_close_cb cb, void *ud);

#endif
