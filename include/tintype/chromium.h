/* chromium.h — one headless Chromium process, owned by a worker's loop
 * (DESIGN §5). Started with the flags that keep it off the network on its
 * own (no background networking, component updates, sync, QUIC) and a fresh
 * profile folder that is removed when it stops; its DevTools WebSocket
 * address is read from its stderr ("DevTools listening on ws://..."). The
 * owner restarts it when the exit callback reports that it died. */
#ifndef TINTYPE_CHROMIUM_H
#define TINTYPE_CHROMIUM_H

#include <uv.h>

typedef struct tt_chromium tt_chromium;

/* status 0 and the browser's ws:// URL, or an error (TT_ETIMEDOUT when no
 * DevTools address appeared in time, or a libuv spawn error) */
typedef void (*tt_chromium_ready_cb)(tt_chromium *b, int status, const char *ws_url, void *ud);
/* the process ended: by itself (a crash) or after tt_chromium_stop */
typedef void (*tt_chromium_exit_cb)(tt_chromium *b, int64_t exit_status, int term_signal, void *ud);

typedef struct tt_chromium_opts {
  const char *binary;      /* NULL or "": TINTYPE_CHROMIUM, else tt_chromium_default_binary() */
  const char *profile_dir; /* parent of the fresh profile folder; NULL: /tmp */
  const char *extra_flags; /* more flags, separated by spaces (tuning); NULL: none */
  int start_timeout_ms;    /* 0: 20000 */
} tt_chromium_opts;

#define TT_CHROMIUM_SHELL "/usr/bin/chromium-headless-shell"
#define TT_CHROMIUM_FULL "/usr/bin/chromium"
/* chosen when it is set and not empty; else the headless shell when it is
 * installed (Debian's chromium-headless-shell), else /usr/bin/chromium */
const char *tt_chromium_default_binary(const char *chosen);

int tt_chromium_start(uv_loop_t *loop, const tt_chromium_opts *o, tt_chromium_ready_cb ready,
                      tt_chromium_exit_cb exited, void *ud, tt_chromium **out);
/* The process id (for tests and logs). */
int tt_chromium_pid(const tt_chromium *b);
/* SIGTERM, then SIGKILL after 2 s; the profile folder is removed and the
 * handle freed after the exit callback has run. */
void tt_chromium_stop(tt_chromium *b);

#endif
