/* cdp.h — a Chrome DevTools Protocol client over one WebSocket, on the
 * caller's libuv loop (libwebsockets with its libuv event library, as a
 * foreign loop). Commands carry ids and complete through callbacks, each
 * with a timeout; events (also of flattened target sessions, by sessionId)
 * go to one event callback. Everything runs on the loop thread. */
#ifndef TINTYPE_CDP_H
#define TINTYPE_CDP_H

#include <jansson.h>
#include <uv.h>

typedef struct tt_cdp tt_cdp;

/* status 0 once the WebSocket is open, else TT_EIO (refused, bad handshake) */
typedef void (*tt_cdp_connect_cb)(tt_cdp *c, int status, void *ud);
/* status 0 with the command's "result"; TT_EIO with the protocol's "error"
 * object; TT_ETIMEDOUT; TT_ECANCELED (connection closed). The JSON is
 * borrowed: valid during the call. */
typedef void (*tt_cdp_result_cb)(tt_cdp *c, int status, json_t *json, void *ud);
/* an event: method, sessionId (NULL for the browser's own), params */
typedef void (*tt_cdp_event_cb)(tt_cdp *c, const char *method, const char *session_id, json_t *params, void *ud);
/* the connection is gone (status 0 after tt_cdp_close, else the reason);
 * the handle is freed after this returns */
typedef void (*tt_cdp_closed_cb)(tt_cdp *c, int status, void *ud);

int tt_cdp_connect(uv_loop_t *loop, const char *ws_url, tt_cdp_connect_cb on_connect, tt_cdp_event_cb on_event,
                   tt_cdp_closed_cb on_closed, void *ud, tt_cdp **out);
/* Sends method with params (stolen; NULL for none) to the browser or to a
 * session. The callback runs exactly once. */
int tt_cdp_send(tt_cdp *c, const char *session_id, const char *method, json_t *params, int timeout_ms,
                tt_cdp_result_cb cb, void *ud);
/* Closes: pending commands complete with TT_ECANCELED, then on_closed. */
void tt_cdp_close(tt_cdp *c);

#endif
