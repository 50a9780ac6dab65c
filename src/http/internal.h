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

/* A connection's own state bits (tt_http_conn.flags). */
enum {
  C_CLOSING = 1 << 0,        /* uv_close called on the handles */
  C_READING = 1 << 1,        /* uv_read_start in effect */
  C_IN_PARSE = 1 << 2,       /* inside http__conn_parse */
  C_HANDLER_OWNS = 1 << 3,   /* a handler holds req and has not answered */
  C_FINISH_PENDING = 1 << 4, /* a response completed while user code ran */
  C_FINISH_QUEUED = 1 << 5,  /* ... and waits in the server's finishing list */
};

/* One request's state bits (tt_http_conn.rq.flags). */
enum {
  RQ_KEEP_ALIVE = 1 << 0,    /* the connection stays open after this response */
  RQ_HEAD = 1 << 1,          /* a HEAD request: no body goes out */
  RQ_RESPONDED = 1 << 2,     /* the handler answered */
  RQ_STREAM_BODY = 1 << 3,   /* the route takes the body as a stream */
  RQ_BODY_COMPLETE = 1 << 4, /* llhttp saw the end of the message */
  RQ_BODY_PAUSED = 1 << 5,   /* the handler asked for no more body reads */
  RQ_UNREAD_BODY = 1 << 6,   /* answered before the body was read: linger */
};

#define CF(c, f) (((c)->flags & (f)) != 0)
#define C_ON(c, f) ((c)->flags |= (f))
#define C_OFF(c, f) ((c)->flags &= ~(unsigned)(f))
#define C_SET(c, f, on) ((on) ? C_ON(c, f) : C_OFF(c, f))
#define RQ(c, f) (((c)->rq.flags & (f)) != 0)
#define RQ_ON(c, f) ((c)->rq.flags |= (f))
#define RQ_OFF(c, f) ((c)->rq.flags &= ~(unsigned)(f))
#define RQ_SET(c, f, on) ((on) ? RQ_ON(c, f) : RQ_OFF(c, f))

/* Everything one request sets: zeroed in one step when the next begins
 * (http__req_reset), so nothing of a request can leak into the next. */
typedef struct req_state {
  unsigned flags; /* RQ_* */
  size_t header_bytes;
  size_t chunk_ext_bytes; /* chunk extensions seen: --max-chunk-ext-bytes */
  unsigned header_cap;
  const tt_route *route;
  int route_status; /* 200, 404, 405 */
  unsigned allow;
  int64_t body_limit;
  int err_status; /* status of an error found while parsing */
  const char *err_detail;
  int has_host; /* Host headers seen */
  const char *expect;
  const char *client_rid;
  /* response */
  resp_header rh[MAX_RESP_HEADERS];
  unsigned nrh;
  int status;
  size_t bytes_out;
  int streaming; /* 0, or the phase of a chunked response */
  tt_http_done_fn done_cb;
  void *done_ud;
  /* streamed request body */
  int body_err; /* an error not yet delivered */
  tt_http_body_cb body_cb;
  void *body_ud;
} req_state;

struct tt_http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  tt_http_server *srv;
  tt_http_conn *prev, *next;
  enum conn_state state;
  unsigned flags;   /* C_* */
  int handles_open; /* tcp + timer not yet closed */
  uv_shutdown_t shutdown_req;
  uint64_t deadline;  /* loop time (ms) the current state expires; 0: none */
  uint64_t timer_due; /* when the uv timer fires; 0: not armed */
  /* read buffer: bytes [rpos, rlen) not yet parsed */
  char *rbuf; /* cfg.read_buffer_bytes */
  size_t rpos, rlen;
  int64_t requests;    /* begun on this connection: --max-keepalive-requests */
  uint64_t idle_since; /* loop time it became FRESH or IDLE: reclaim the oldest */
  /* obs-fold detection: the bytes llhttp is parsing now, and whether the
   * previous chunk ended at a line start followed only by SP/HT */
  const char *exec_start;
  int exec_tail_fold;

  /* the current request: what the handler sees, its memory, and its state */
  tt_http_req req;
  tt_arena arena;
  _Alignas(16) char arena_first[ARENA_FIRST];
  tt_buf url, field, value, body; /* kept (emptied) between requests: their memory is reused */
  req_state rq;
  uv_write_t wreq;
  uv_write_t creq; /* 100 Continue */
  /* a response that completed while user code was running finishes after
   * that code returns (or, outside any engine call, in the next prepare
   * phase): the request stays valid until the callback that answered returns */
  int in_user;
  int finish_status;
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
