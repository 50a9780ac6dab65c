/* http.h — tintype's HTTP/1.1 server: one libuv loop, llhttp parsing.
 *
 * Lifecycle. tt_http_server_new() binds nothing: the supervisor hands it a
 * listening socket (tt_http_server_listen_fd). Each connection parses
 * requests with llhttp; keep-alive and pipelining are handled one request
 * at a time, in order: while a request is being answered, parsing of
 * already-received bytes pauses and resumes when the response is written.
 *
 * A request. When its headers are complete the router picks a route (404
 * and 405 are answered by the server, with problem+json bodies). The body is
 * collected into memory up to the route's limit (413 beyond it; 100 Continue
 * is sent when the client asked and the body is acceptable). When the whole
 * message is in, the route's handler runs with a tt_http_req whose memory
 * comes from a per-request arena: everything the handler allocates with
 * req->arena is freed at once when the response has been written.
 *
 * Answering. A handler answers exactly once, now or later (from any
 * callback on the same loop): tt_http_respond() with a body, or
 * tt_http_stream_start()/..._write()/..._end() for a chunked stream. Bytes
 * passed to tt_http_respond are *borrowed*: they must stay valid until the
 * response is written — static data, the arena, or memory released from a
 * tt_http_on_done callback. Responses are written with one vectored write:
 * head and body, no copy of the body. HEAD requests run the GET handler and
 * the server drops the body but keeps its Content-Length.
 *
 * If the client goes away while a handler is still working, the request
 * stays valid until the handler answers; answering then is harmless (the
 * bytes go nowhere). tt_http_on_done() tells a handler when its request
 * ends, either way.
 *
 * Limits (tt_config): max_header_bytes/max_headers -> 431, max_url_bytes
 * -> 414, max_body_bytes or the route's limit -> 413, header_timeout_ms and
 * body_timeout_ms -> 408 and close, idle_timeout_ms -> close,
 * write_timeout_ms -> close, max_connections -> 503 and close, anything
 * llhttp rejects (including Content-Length with Transfer-Encoding and
 * repeated Content-Length) -> 400 and close. Each error answer closes the
 * connection. */
#ifndef TINTYPE_HTTP_H
#define TINTYPE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tintype/arena.h"
#include "tintype/config.h"

enum {
  TT_HTTP_GET = 1 << 0,
  TT_HTTP_HEAD = 1 << 1,
  TT_HTTP_POST = 1 << 2,
  TT_HTTP_PUT = 1 << 3,
  TT_HTTP_DELETE = 1 << 4,
  TT_HTTP_PATCH = 1 << 5,
  TT_HTTP_OPTIONS = 1 << 6,
  TT_HTTP_OTHER = 1 << 7,
};

#define TT_HTTP_MAX_PARAMS 8

typedef struct tt_http_header {
  const char *name; /* as received; compare case-insensitively */
  const char *value;
} tt_http_header;

typedef struct tt_http_param {
  const char *name; /* from the route pattern */
  const char *value; /* raw path segment (not percent-decoded), NUL-terminated */
} tt_http_param;

typedef struct tt_http_server tt_http_server;
typedef struct tt_http_conn tt_http_conn;
typedef struct tt_http_req tt_http_req;

typedef void (*tt_http_handler_fn)(tt_http_req *req, void *ud);
typedef void (*tt_http_done_fn)(tt_http_req *req, int status, void *ud);
typedef void (*tt_http_write_cb)(tt_http_req *req, int status, void *ud);

struct tt_http_req {
  tt_arena *arena;         /* freed when the request ends */
  tt_http_server *server;
  unsigned method;         /* TT_HTTP_* */
  const char *method_name; /* "GET" */
  const char *target;      /* raw request target, NUL-terminated */
  const char *path;        /* target up to '?', NUL-terminated, not decoded */
  size_t path_len;
  const char *query;       /* after '?', or NULL */
  tt_http_header *headers;
  unsigned nheaders;
  const char *body; /* collected body (NUL-terminated), or NULL when empty */
  size_t body_len;
  tt_http_param params[TT_HTTP_MAX_PARAMS];
  unsigned nparams;
  const char *request_id; /* accepted X-Request-Id or a new one */
  void *route_ud;         /* the route's ud */
  uint64_t start_ns;      /* uv_hrtime() at the first byte */
  unsigned http_minor;    /* 0 or 1 */
  void *app;              /* the application's own per-request state (NULL until it sets it) */
};

/* The first header named `name` (case-insensitive), or NULL. */
const char *tt_http_header_get(const tt_http_req *req, const char *name);
/* The value of the route parameter `name`, or NULL. */
const char *tt_http_param_get(const tt_http_req *req, const char *name);
/* The client's address (0, or a libuv error). */
int tt_http_req_peer(const tt_http_req *req, struct sockaddr_storage *ss);
/* Whether the server is draining (SIGTERM received). */
int tt_http_req_draining(const tt_http_req *req);

/* Adds a response header. name/value must outlive the response (static or
 * arena). Call before tt_http_respond / tt_http_stream_start. */
int tt_http_add_header(tt_http_req *req, const char *name, const char *value);
/* Asks for the connection to be closed after this response. */
void tt_http_set_close(tt_http_req *req);
/* Answers. body (may be NULL when len is 0) is borrowed, see above. For a
 * HEAD request body may be NULL with len the length a GET would send. */
int tt_http_respond(tt_http_req *req, int status, const char *content_type, const void *body, size_t len);
/* Answers with RFC 9457 problem details (application/problem+json). */
int tt_http_respond_problem(tt_http_req *req, int status, const char *detail);

/* Streaming: Transfer-Encoding: chunked. Each write's bytes are borrowed
 * until its callback (may be NULL) runs; stream_end sends the last chunk. */
int tt_http_stream_start(tt_http_req *req, int status, const char *content_type);
int tt_http_stream_write(tt_http_req *req, const void *data, size_t len, tt_http_write_cb cb, void *ud);
int tt_http_stream_end(tt_http_req *req);

/* Streamed request bodies (routes added with tt_router_add_streaming): the
 * handler runs when the headers are in and calls tt_http_body_start once,
 * now or later (e.g. after authenticating); until then the server reads no
 * further than its own buffer. cb(req, 0, data, len, ud) per piece (data
 * valid only during the call), cb(req, 0, NULL, 0, ud) at the end, or
 * cb(req, err, NULL, 0, ud) once on error: TT_ETOOBIG over the route's
 * limit, TT_ETIMEDOUT (body timeout), TT_EINVAL (bad framing), TT_ECANCELED
 * (client gone). After an error or before the end the handler may still
 * answer (413, 408, 400, or early: 401, 404); the connection then closes.
 * tt_http_body_pause/resume stop and restart reading from the socket, for
 * back-pressure: at most one read buffer (16 KiB) arrives after a pause. */
typedef void (*tt_http_body_cb)(tt_http_req *req, int status, const char *data, size_t len, void *ud);
int tt_http_body_start(tt_http_req *req, tt_http_body_cb cb, void *ud);
void tt_http_body_pause(tt_http_req *req);
void tt_http_body_resume(tt_http_req *req);

/* cb runs once when the request ends: status 0 after the response was
 * written, a negative code when the connection failed or the client left. */
void tt_http_on_done(tt_http_req *req, tt_http_done_fn cb, void *ud);

const char *tt_http_status_text(int status);

/* ---- server ---- */
struct tt_router;
int tt_http_server_new(uv_loop_t *loop, const tt_config *cfg, struct tt_router *router,
                       tt_http_server **out);
/* Starts accepting on a socket that is already bound and listening. */
int tt_http_server_listen_fd(tt_http_server *s, int fd);
/* Starts draining: health check answers 503 and every response says
 * Connection: close; after drain_delay_ms the listener closes and idle
 * connections are closed; done(s, ud) runs when no request is left or
 * shutdown_timeout_ms passed (then the rest are cut). */
void tt_http_server_drain(tt_http_server *s, void (*done)(tt_http_server *s, void *ud), void *ud);
int tt_http_server_draining(const tt_http_server *s);
unsigned tt_http_server_connections(const tt_http_server *s);
/* Closes every handle; call after drain's done or before the loop ends. */
void tt_http_server_free(tt_http_server *s);

#endif
