/* chromium.c — starts and stops headless Chromium (chromium.h).
 *
 * uv_spawn with stderr piped: Chromium prints its DevTools address there
 * once it listens; everything else it prints (dbus complaints in a
 * container, GPU notes) is dropped. The profile folder is made with mkdtemp
 * and removed with nftw after the process is gone, so no state survives
 * from one browser to the next; folders of an owner that was killed
 * outright are swept at the next start. cdp.c connects to the address; render.c
 * drives it. */
#include "tintype/chromium.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tintype/buf.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/ports.h"

struct tt_chromium {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t err;
  uv_timer_t timer;
  tt_chromium_ready_cb ready;
  tt_chromium_exit_cb exited;
  void *ud;
  tt_buf line;
  char profile[512];
  char ws[256];
  int is_ready, exited_done, stopping, open_handles;
  int devtools_port; /* listed in ports.h while the browser runs */
  char buf[4096];
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void on_closed(uv_handle_t *h) {
  tt_chromium *b = h->data;
  if (--b->open_handles) return;
  if (b->profile[0]) nftw(b->profile, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  tt_buf_free(&b->line);
  free(b);
}

static void finish_ready(tt_chromium *b, int status) {
  if (b->is_ready) return;
  b->is_ready = 1;
  uv_timer_stop(&b->timer);
  if (b->ready) b->ready(b, status, status ? NULL : b->ws, b->ud);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  tt_chromium *b = p->data;
  b->exited_done = 1;
  if (b->devtools_port > 0) tt_ports_remove(b->devtools_port);
  /* the browser's helpers (zygote, renderers, crash handler) are in its
   * process group: end them too, and give them a moment to go before the
   * profile folder is removed (at most 300 ms, only when a browser ends) */
  kill(-p->pid, SIGKILL);
  for (int i = 0; i < 30 && kill(-p->pid, 0) == 0; i++) usleep(10000);
  uv_timer_stop(&b->timer);
  finish_ready(b, TT_EIO); /* died before it was ready */
  if (b->exited) b->exited(b, status, sig, b->ud);
  uv_close((uv_handle_t *)&b->proc, on_closed);
  uv_close((uv_handle_t *)&b->timer, on_closed);
  if (!uv_is_closing((uv_handle_t *)&b->err)) uv_close((uv_handle_t *)&b->err, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tt_chromium *b = h->data;
  *buf = uv_buf_init(b->buf, sizeof b->buf);
}

static void on_stderr(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tt_chromium *b = s->data;
  if (n < 0) {
    uv_close((uv_handle_t *)&b->err, on_closed);
    return;
  }
  if (b->is_ready) return; /* only the first lines matter */
  tt_buf_append(&b->line, buf->base, (size_t)n);
  char *p = b->line.data ? strstr(b->line.data, "DevTools listening on ") : NULL;
  if (!p) {
    if (b->line.len > 65536) tt_buf_reset(&b->line); /* noise: keep memory bounded */
    return;
  }
  p += strlen("DevTools listening on ");
  char *eol = strchr(p, '\n');
  if (!eol) return; /* the rest of the line comes with the next read */
  size_t len = (size_t)(eol - p);
  if (len && p[len - 1] == '\r') len--;
  if (len >= sizeof b->ws || strncmp(p, "ws://", 5)) {
    finish_ready(b, TT_EIO);
    return;
  }
  memcpy(b->ws, p, len);
  b->ws[len] = 0;
  /* ws://127.0.0.1:PORT/devtools/...: no page of any job on this machine
   * may reach it (ports.h); the list entry goes when the browser does */
  const char *pc = strchr(b->ws + 5, ':');
  b->devtools_port = pc ? atoi(pc + 1) : 0;
  if (b->devtools_port > 0 && tt_ports_add(b->devtools_port) != TT_OK) b->devtools_port = 0;
  finish_ready(b, 0);
}

static void on_start_timeout(uv_timer_t *t) {
  tt_chromium *b = t->data;
  tt_logf(TT_LOG_ERROR, "chromium: no DevTools address after start; stopping it");
  finish_ready(b, TT_ETIMEDOUT);
  tt_chromium_stop(b);
}

/* Browsers still running on a profile whose owner is gone: --pdeathsig
 * reaches only the process tintype spawned, so a browser started through a
 * wrapper that forks instead of exec'ing it outlives a worker killed
 * outright. Found by the profile in their command line (every process of
 * one browser carries it) and killed before the folder goes. */
static void kill_orphans(const char *profile) {
  char want[600];
  int wl = snprintf(want, sizeof want, "--user-data-dir=%s", profile);
  if (wl < 0 || (size_t)wl >= sizeof want) return;
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1 || pid == (long)getpid()) continue;
    char path[64], cmd[8192];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    cmd[n] = 0;
    for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
      if (!strcmp(cmd + i, want)) {
        tt_logf(TT_LOG_WARN, "chromium: killing pid %ld, left running by a worker that died (%s)", pid, profile);
        kill((pid_t)pid, SIGKILL);
        break;
      }
  }
  closedir(d);
}

/* Profile folders whose owner is gone: a worker killed outright (SIGKILL,
 * OOM) cannot remove its browser's folder, so the next start in the same
 * parent does. The owner's pid is in the folder's "tintype-owner" file; a
 * folder without one, or whose owner is alive, is left alone. */
static void sweep_stale(const char *parent) {
  DIR *d = opendir(parent);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "tintype-chromium-", 17)) continue;
    char path[1024], own[1100];
    snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
    snprintf(own, sizeof own, "%s/tintype-owner", path);
    FILE *f = fopen(own, "r");
    if (!f) continue;
    long pid = 0;
    int n = fscanf(f, "%ld", &pid);
    fclose(f);
    if (n != 1 || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    kill_orphans(path);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  closedir(d);
}

/* Debian's /usr/bin/chromium-headless-shell is a two-line sh script that
 * runs the real binary as its child (no exec): --pdeathsig would land on the
 * shell, and a kill -9 of the worker left the browser running with init as
 * its parent (found in a test run: an orphan at 10% CPU for 25 minutes).
 * Wrappers known to fork map to what they run; /usr/bin/chromium execs. */
static const struct {
  const char *wrapper, *real;
} forking_wrappers[] = {{TT_CHROMIUM_SHELL, "/usr/lib/chromium/chromium-headless-shell"}};

static const char *unwrap(const char *bin) {
  for (size_t i = 0; i < sizeof forking_wrappers / sizeof forking_wrappers[0]; i++)
    if (!strcmp(bin, forking_wrappers[i].wrapper) && access(forking_wrappers[i].real, X_OK) == 0)
      return forking_wrappers[i].real;
  return bin;
}

const char *tt_chromium_default_binary(const char *chosen) {
  if (chosen && *chosen) return chosen;
  /* the old headless shell: no browser UI layer, the lighter one for shots */
  if (access(TT_CHROMIUM_SHELL, X_OK) == 0) return TT_CHROMIUM_SHELL;
  return TT_CHROMIUM_FULL;
}

int tt_chromium_start(uv_loop_t *loop, const tt_chromium_opts *o, tt_chromium_ready_cb ready,
                      tt_chromium_exit_cb exited, void *ud, tt_chromium **out) {
  tt_chromium *b = calloc(1, sizeof *b);
  if (!b) return TT_ENOMEM;
  b->loop = loop;
  b->ready = ready;
  b->exited = exited;
  b->ud = ud;
  const char *bin =
      unwrap(tt_chromium_default_binary(o && o->binary && *o->binary ? o->binary : getenv("TINTYPE_CHROMIUM")));
  if (access(bin, X_OK)) { /* found here, not by the wrapper after the fork */
    int e = -errno;
    free(b);
    return e;
  }
  snprintf(b->profile, sizeof b->profile, "%s/tintype-chromium-XXXXXX", o && o->profile_dir ? o->profile_dir : "/tmp");
  static int swept;
  if (!swept) {
    swept = 1;
    sweep_stale(o && o->profile_dir ? o->profile_dir : "/tmp");
  }
  if (!mkdtemp(b->profile)) {
    free(b);
    return TT_EIO;
  }
  {
    char own[600];
    snprintf(own, sizeof own, "%s/tintype-owner", b->profile);
    FILE *f = fopen(own, "w");
    if (f) {
      fprintf(f, "%ld\n", (long)getpid());
      fclose(f);
    }
  }
  char userdir[600];
  snprintf(userdir, sizeof userdir, "--user-data-dir=%s", b->profile);
  /* setpriv --pdeathsig: a worker killed outright (kill -9, OOM) takes its
   * browser with it instead of leaving it running unowned; the browser's
   * helpers notice their parent is gone and leave too */
  char *args[] = {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--",
                  (char *)bin,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--disable-quic",
                  "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update",
                  "--disable-sync",
                  "--disable-default-apps",
                  "--disable-extensions",
                  "--mute-audio",
                  /* the browser asks for nothing of its own (issue 16 item 3).
                   * It never needs to resolve a name: every job request goes
                   * to the job's proxy, by address, and the proxy resolves. So
                   * its resolver answers "not found" to everything: the
                   * default profile's own requests (accounts.google.com,
                   * update.googleapis.com, clients2.google.com, DNS to the
                   * system resolver and a probe of 2001:4860:4860::8888 were
                   * seen from new-headless chromium) die before a packet. And
                   * services that would go through a job's proxy are off:
                   * autofill (a page with a form made the browser fetch
                   * content-autofill.googleapis.com), translate, optimization
                   * guide, media router, CT updates, safe browsing's
                   * client-side detection, domain reliability, pings.
                   * WebUIOmniboxPopup: new headless builds a WebUI omnibox
                   * popup renderer for every browser context, 0.27 CPU-s per
                   * context (docs/ARCHITECTURE.md "Render throughput"; the
                   * headless shell has no such UI). ThirdPartyStoragePartitioning
                   * off: an iframe's storage is keyed by its origin alone,
                   * which the job's proxy saw, so a warm context's reset
                   * clears it (Storage.clearDataForOrigin leaves partitioned
                   * keys behind: test_render_warm.py).
                   * One --disable-features only: Chromium keeps the last. */
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--disable-features=AutofillServerCommunication,Translate,OptimizationHints,"
                  "OptimizationGuideModelDownloading,OptimizationHintsFetching,MediaRouter,DialMediaRouteProvider,"
                  "CertificateTransparencyComponentUpdater,WebUIOmniboxPopup,WebUIOmniboxAimPopup,ThirdPartyStoragePartitioning",
                  "--disable-client-side-phishing-detection",
                  "--disable-domain-reliability",
                  "--no-pings",
                  "--metrics-recording-only",
                  "--hide-scrollbars",
                  /* WebRTC may use only what goes through the job's proxy:
                   * TCP (TURN over TCP, tunnelled and checked like any
                   * connection), never UDP, which an HTTP proxy cannot carry.
                   * Each browser knows one of the two spellings and ignores
                   * the other silently: new-headless chromium takes
                   * --webrtc-ip-handling-policy (a Chrome switch mapped to the
                   * webrtc.ip_handling_policy pref, which browser contexts
                   * inherit), the headless shell takes the --force- one.
                   * tests/integration/test_render_webrtc.py shoots with both. */
                  "--webrtc-ip-handling-policy=disable_non_proxied_udp",
                  "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
                  userdir,
                  "--remote-debugging-address=127.0.0.1",
                  "--remote-debugging-port=0",
                  NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                  NULL};
  /* the fixed flags, then up to 16 extra ones, then the first page */
  size_t nargs = 0;
  while (args[nargs]) nargs++;
  char extra[2048];
  snprintf(extra, sizeof extra, "%s", o && o->extra_flags ? o->extra_flags : "");
  int nextra = 0;
  /* an extra --disable-features joins the fixed one instead of replacing
   * it (Chromium keeps only the last) */
  char features[1024] = "";
  for (size_t i = 0; i < nargs; i++)
    if (!strncmp(args[i], "--disable-features=", 19)) {
      snprintf(features, sizeof features, "%s", args[i]);
      args[i] = features;
    }
  for (char *save = NULL, *t = strtok_r(extra, " ", &save); t && nextra < 16; t = strtok_r(NULL, " ", &save)) {
    size_t fl = strlen(features);
    if (fl && !strncmp(t, "--disable-features=", 19) && fl + strlen(t + 19) + 2 < sizeof features) {
      snprintf(features + fl, sizeof features - fl, ",%s", t + 19);
      continue;
    }
    args[nargs + (size_t)nextra++] = t;
  }
  args[nargs + (size_t)nextra] = "about:blank";
  uv_pipe_init(loop, &b->err, 0);
  uv_timer_init(loop, &b->timer);
  b->err.data = b->timer.data = b->proc.data = b;
  b->open_handles = 3;
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                   {.flags = UV_IGNORE},
                                   {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&b->err}};
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  int wrap = access("/usr/bin/setpriv", X_OK) == 0;
  po.file = wrap ? args[0] : bin;
  po.args = wrap ? args : args + 4;
  po.exit_cb = on_exit_cb;
  po.stdio = stdio;
  po.stdio_count = 3;
  po.flags = UV_PROCESS_DETACHED; /* its own process group: stop reaches every helper */
  int rc = uv_spawn(loop, &b->proc, &po);
  if (rc) {
    b->profile[0] ? nftw(b->profile, rm_entry, 16, FTW_DEPTH | FTW_PHYS) : 0;
    b->profile[0] = 0;
    b->is_ready = 1;
    b->open_handles = 3;
    uv_close((uv_handle_t *)&b->proc, on_closed);
    uv_close((uv_handle_t *)&b->err, on_closed);
    uv_close((uv_handle_t *)&b->timer, on_closed);
    return rc;
  }
  uv_read_start((uv_stream_t *)&b->err, on_alloc, on_stderr);
  uv_timer_start(&b->timer, on_start_timeout, (uint64_t)(o && o->start_timeout_ms ? o->start_timeout_ms : 20000), 0);
  *out = b;
  return TT_OK;
}

int tt_chromium_pid(const tt_chromium *b) { return b->proc.pid; }

static void on_kill_timer(uv_timer_t *t) {
  tt_chromium *b = t->data;
  if (!b->exited_done) kill(-b->proc.pid, SIGKILL);
}

void tt_chromium_stop(tt_chromium *b) {
  if (b->stopping || b->exited_done) return;
  b->stopping = 1;
  kill(-b->proc.pid, SIGTERM);
  uv_timer_start(&b->timer, on_kill_timer, 2000, 0);
}
