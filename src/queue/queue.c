/* queue.c — the queue seam's front: picks a backend from the URL and calls
 * through its vtable (include/tintype/queue.h). Backends: src/queue/sqlite.c. */
#include <string.h>

#include "tintype/error.h"
#include "tintype/queue.h"

int tt_queue_sqlite_open(uv_loop_t *loop, const char *url, tt_queue **out);
int tt_queue_sqs_open(uv_loop_t *loop, const char *url, tt_queue **out);

int tt_queue_open(uv_loop_t *loop, const char *url, tt_queue **out) {
  *out = NULL;
  if (!loop || !url) return TT_EINVAL;
  if (!strncmp(url, "sqlite://", 9)) return tt_queue_sqlite_open(loop, url, out);
  if (!strncmp(url, "sqs://", 6)) return tt_queue_sqs_open(loop, url, out);
  return TT_EINVAL;
}

void tt_queue_declare(tt_queue *q, const char *queue, const tt_queue_attrs *a, tt_queue_cb cb,
                      void *ud) {
  q->ops->declare(q, queue, a, cb, ud);
}
void tt_queue_send(tt_queue *q, const char *queue, const void *body, size_t len, int64_t delay_ms,
                   tt_queue_send_cb cb, void *ud) {
  q->ops->send(q, queue, body, len, delay_ms, cb, ud);
}
void tt_queue_receive(tt_queue *q, const char *queue, const tt_queue_recv_opts *o,
                      tt_queue_recv_cb cb, void *ud) {
  q->ops->receive(q, queue, o, cb, ud);
}
void tt_queue_delete(tt_queue *q, const char *queue, const char *receipt, tt_queue_cb cb, void *ud) {
  q->ops->del(q, queue, receipt, cb, ud);
}
void tt_queue_change_visibility(tt_queue *q, const char *queue, const char *receipt,
                                int64_t visibility_ms, tt_queue_cb cb, void *ud) {
  q->ops->change_visibility(q, queue, receipt, visibility_ms, cb, ud);
}
void tt_queue_purge(tt_queue *q, const char *queue, int which, tt_queue_count_cb cb, void *ud) {
  q->ops->purge(q, queue, which, cb, ud);
}
void tt_queue_redrive(tt_queue *q, const char *queue, tt_queue_count_cb cb, void *ud) {
  q->ops->redrive(q, queue, cb, ud);
}
void tt_queue_counts_get(tt_queue *q, const char *queue, tt_queue_counts_cb cb, void *ud) {
  q->ops->counts(q, queue, cb, ud);
}
void tt_queue_close(tt_queue *q, tt_queue_close_cb cb, void *ud) { q->ops->close(q, cb, ud); }
