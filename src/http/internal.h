/* internal.h — what the files of the HTTP engine share (src/http/ only).
 *
 * The engine is split by job: conn.c (a connection's life: accept to free,
 * reading, the one timer per connection, lingering close), parse.c (llhttp's
 * callbacks, every request limit, dispatch to the router), respond.c
 * (response heads, bodies, chunked streams, streamed request bodies, the
 * access log), server.c (the listener, accepting and the overload answer,
 * reclaiming idle connections, drain). The two structs below are the state;
 * functions named http__* cross files and are not part of include/tintype/http.h. */
#ifndef TT_HTTP_INTERNAL_H
#define TT_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "tintype/buf.h"
#include "tintype/http.h"
#include "tintype/router.h"

#define ARENA_FIRST 4096
#define MAX_RESP_HEADERS 24

enum conn_state { ST_FRESH, ST_HEAD, ST_BODY, ST_HANDLING, ST_WRITING, ST_IDLE, ST_LINGER };


struct tt_http_server {
  uv_loop_t *loop;
  tt_config cfg;
  tt_router *router;
  uv_tcp_t listener;
  int listening;
  uv_prepare_t flusher;
  uv_timer_t drain_timer;
  llhttp_settings_t settings;
  tt_http_conn *conns; /* doubly linked list of open connections */
  unsigned nconns;
  unsigned nclosing; /* of nconns, closed and waiting for their handles */
  int draining, listener_closed, drain_finished, freeing;
  void (*drain_done)(tt_http_server *, void *);
  void *drain_ud;
  time_t date_sec;
  char date[40];
  char rid_prefix[16];
  uint64_t rid_next;
  unsigned pending_closes; /* handles of the server itself still closing */
  tt_http_conn *finishing;  /* responses to finish in the next prepare phase */
};

typedef struct resp_header {
  const char *name, *value;
} resp_header;

struct tt_http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  tt_http_server *srv;
  tt_http_conn *prev, *next;
  enum conn_state state;
  int closing;       /* uv_close called on the handles */
  int handles_open;  /* tcp + timer not yet closed */
  int handler_owns;  /* a handler holds req and has not answered */
  int reading;
  int in_parse;
  int unread_body; /* answered before the request body was read */
  uv_shutdown_t shutdown_req;
  int peer_eof;
  uint64_t deadline;  /* loop time (ms) the current state expires; 0: none */
  uint64_t timer_due; /* when the uv timer fires; 0: not armed */
  /* read buffer: bytes [rpos, rlen) not yet parsed */
  char *rbuf; /* cfg.read_buffer_bytes */
  size_t rpos, rlen;
  int64_t requests; /* begun on this connection: --max-keepalive-requests */
  uint64_t idle_since; /* loop time it became FRESH or IDLE: reclaim the oldest */
  /* obs-fold detection: the bytes llhttp is parsing now, and whether the
   * previous chunk ended at a line start followed only by SP/HT */
  const char *exec_start;
  int exec_tail_fold;

  /* the current request */
  tt_http_req req;
  tt_arena arena;
  _Alignas(16) char arena_first[ARENA_FIRST];
  tt_buf url, field, value, body;
  size_t header_bytes;
  size_t chunk_ext_bytes; /* chunk extensions seen: --max-chunk-ext-bytes */
  unsigned header_cap;
  const tt_route *route;
  int route_status; /* 200, 404, 405 */
  unsigned allow;
  int64_t body_limit;
  int err_status;    /* status of an error found while parsing */
  const char *err_detail;
  int keep_alive;
  int is_head;
  int has_host;
  const char *expect;
  const char *client_rid;
  /* response */
  resp_header rh[MAX_RESP_HEADERS];
  unsigned nrh;
  int status;
  size_t bytes_out;
  int responded;
  int streaming;
  uv_write_t wreq;
  uv_write_t creq; /* 100 Continue */
  tt_http_done_fn done_cb;
  void *done_ud;
  /* streamed request body */
  int stream_body;   /* this request's route takes its body as a stream */
  int body_complete; /* llhttp saw the end of the message */
  int body_paused;   /* the handler asked for no more reads */
  int body_err;      /* an error not yet delivered */
  tt_http_body_cb body_cb;
  void *body_ud;
  /* a response that completed while user code was running finishes after
   * that code returns (or, outside any engine call, in the next prepare
   * phase): the request stays valid until the callback that answered returns */
  int in_user;
  int finish_pending, finish_status, finish_queued;
  tt_http_conn *finish_next;
};

#define CONN(p) ((tt_http_conn *)(p)->data)

/* the deferred-completion bracket around user code (respond.c) */
static inline void http__user_enter(tt_http_conn *c) { c->in_user++; }

void http__body_error(tt_http_conn *c, int err);
void http__conn_close(tt_http_conn *c, int why);
void http__conn_free(tt_http_conn *c);
void http__conn_linger(tt_http_conn *c);
void http__conn_parse(tt_http_conn *c);
void http__conn_timer(tt_http_conn *c, int64_t ms);
void http__finish(tt_http_conn *c, int status);
void http__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void http__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
tt_http_conn *http__req_conn(const tt_http_req *req);
void http__req_reset(tt_http_conn *c);
void http__run_finish(tt_http_conn *c);
int http__send_error(tt_http_conn *c, int status, const char *detail);
void http__server_check_drained(tt_http_server *s);
void http__user_exit(tt_http_conn *c);
void http__parser_settings(llhttp_settings_t *st);

#endif
