/* webhook.h — webhooks (issue 15 item 4), src/webhook/webhook.c.
 *
 * A job whose options name a callback_url is POSTed to that URL when it
 * ends (succeeded, failed, canceled). The delivery is written first to an
 * outbox in the store (a tt_delivery record, one per job, its id the event
 * id), by whoever finishes the job; a deliverer in every worker process
 * takes due deliveries from the outbox, one conditional write each (a
 * lease: a worker killed mid-delivery leaves it to be taken again), and
 * POSTs them — at least once, so receivers de-duplicate by event id.
 *
 * Each POST carries X-Tintype-Event-Id, X-Tintype-Timestamp and
 * X-Tintype-Signature: t=TIMESTAMP,v1=HEX(HMAC-SHA256(SECRET, TIMESTAMP "." BODY))
 * with the owner's webhook secret (tt_webhook_secret: made from the server
 * secret and the owner's API key hash, so rotating the API key rotates it).
 * Failures (no connection, a non-2xx answer, --webhook-timeout-ms) are
 * retried with backoff (1 s, 2 s, 4 s ... 5 min) up to
 * --webhook-max-attempts; attempts and the last error stay on the delivery,
 * which GET /api/jobs/{id} shows as the job's `webhook`.
 *
 * The connection is checked where it is made, as a page's is: the address
 * connected to (after DNS) must pass the network policy (netpolicy.h) and
 * be none of tintype's own ports (ports.h); a denied address is never sent
 * a packet. No redirects are followed, no proxy from the environment used. */
#ifndef TINTYPE_WEBHOOK_H
#define TINTYPE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/config.h"
#include "tintype/netpolicy.h"
#include "tintype/store.h"

#define TT_WEBHOOK_SECRET_LEN 70 /* "whsec_" + 64 hex + NUL, rounded */

typedef struct tt_webhooks tt_webhooks;

/* Starts the deliverer on loop (it polls the outbox). TT_OK or TT_ENOMEM. */
int tt_webhooks_open(uv_loop_t *loop, const tt_config *cfg, tt_store *store, const tt_netpolicy *policy,
                     const uint8_t *secret, size_t secret_len, tt_webhooks **out);
/* Stops taking deliveries; cb runs once the ones in flight have ended. */
void tt_webhooks_close(tt_webhooks *h, void (*cb)(void *ud), void *ud);

/* Writes job j's delivery into the outbox when its request names a
 * callback_url (else cb(ud, TT_OK) at once, before returning). Writing it
 * again is harmless (the same id). cb(ud, status) on the loop. */
void tt_webhook_enqueue(tt_store *store, const tt_job *j, void (*cb)(void *ud, int status), void *ud);

/* The delivery id (= event id) of job job_id. */
void tt_webhook_delivery_id(const char *job_id, char out[TT_ID_SIZE]);

/* The webhook secret of owner whose API key hash is key_hash. */
void tt_webhook_secret(const uint8_t *secret, size_t secret_len, const char *owner, const char *key_hash,
                       char out[TT_WEBHOOK_SECRET_LEN]);

#endif
