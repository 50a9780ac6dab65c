/* test_blobs.c — the blob contract (include/tintype/blobs.h), in named
 * cases: key validation (nothing escapes the root), streamed and whole
 * puts, content type kept, head/etag, streamed get in chunks, atomic
 * replace (an open reader keeps the old bytes), abort leaves nothing,
 * delete, callbacks never inline.
 *
 * The backend is $TT_TEST_BLOBS_URL (e.g. s3://bucket/prefix against an
 * emulator), else a temporary file:// folder. Keys carry a per-run nonce.
 * Cases marked embedded look at the files on disk or the file backend's
 * URL forms. `test_blobs CASE...` runs some cases. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "tintype/blobs.h"
#include "tintype/error.h"
#include "tt_test.h"

static uv_loop_t loop;
static tt_blobs *b;
static int returned, inline_calls;

static struct {
  int calls, status;
  int64_t size;
  char ctype[256], etag[64];
  tt_blob_reader *r;
  char *data;
  size_t len;
  int chunks;
} r;

static void note(int status) {
  r.calls++;
  r.status = status;
  if (!returned) inline_calls++;
}
static void info_cb(void *ud, int status, const tt_blob_info *i) {
  (void)ud;
  note(status);
  if (i) {
    r.size = i->size;
    snprintf(r.ctype, sizeof r.ctype, "%s", i->content_type);
    snprintf(r.etag, sizeof r.etag, "%s", i->etag);
  }
}
static void plain_cb(void *ud, int status) {
  (void)ud;
  note(status);
}
static void open_cb(void *ud, int status, tt_blob_reader *rd, const tt_blob_info *i) {
  info_cb(ud, status, i);
  r.r = rd;
}
static void read_cb(void *ud, int status, const char *data, size_t len) {
  (void)ud;
  note(status);
  if (status || len == 0) return;
  r.chunks++;
  r.data = realloc(r.data, r.len + len);
  memcpy(r.data + r.len, data, len);
  r.len += len;
  tt_blobs_read(r.r, read_cb, NULL); /* pull the next chunk */
}
static void all_cb(void *ud, int status, const tt_blob_info *i, const char *data, size_t len) {
  info_cb(ud, status, i);
  free(r.data);
  r.data = NULL;
  r.len = 0;
  if (status == 0) {
    r.data = malloc(len + 1);
    memcpy(r.data, data, len);
    r.len = len;
  }
}

static void run(void) {
  returned = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  returned = 0;
}
#define DO(call)           \
  do {                     \
    r.calls = 0;           \
    returned = 0;          \
    call;                  \
    run();                 \
    CHECK_INT(r.calls, 1); \
  } while (0)

static char tmpdir[] = "/tmp/tt-blobs-XXXXXX";

/* the key NAME for this run */
static const char *K(const char *name) {
  static char buf[8][TT_BLOB_KEY_MAX + 1];
  static int slot;
  char *k = buf[slot++ % 8];
  snprintf(k, TT_BLOB_KEY_MAX + 1, "%s/%s", tt_test_nonce(), name);
  return k;
}

/* the file of key NAME (embedded backend) */
static const char *P(const char *name) {
  static char buf[600];
  snprintf(buf, sizeof buf, "%s/blobs/%s", tmpdir, K(name));
  return buf;
}

static void put(const char *key, const char *ctype, const char *s) {
  DO(tt_blobs_put(b, key, ctype, s, strlen(s), info_cb, NULL));
}
static int get_all(const char *key) {
  DO(tt_blobs_get_all(b, key, 1 << 24, all_cb, NULL));
  return r.status;
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void case_urls(void) {
  tt_blobs *x;
  CHECK_INT(tt_blobs_open(&loop, "s3://b", &x), TT_EINVAL); /* s3: bucket names are 3..63 */
  CHECK_INT(tt_blobs_open(&loop, "ftp://x", &x), TT_EINVAL);
  char u[64];
  CHECK_INT(tt_blobs_url(b, "jobs/x.png", 300, u, sizeof u), TT_OK);
  CHECK_STR(u, "/api/blobs/jobs/x.png");
  CHECK_INT(tt_blobs_url(b, "jobs/x.png", 300, u, 8), TT_ETOOBIG);
}

static void case_keys(void) {
  const char *good[] = {"images/0190/raw", "jobs/abc.png", "a", "a.b/c-d_e", "x/..y", "..a"};
  const char *bad[] = {"",        "/etc/passwd", "../x",  "a/../../x", "a//b", "a/",
                       "./a",     "a/./b",       "a\\b",  "..",        ".",    "a/\x01",
                       "a/.tt-x", "a\x7f"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(tt_blobs_key_valid(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(!tt_blobs_key_valid(bad[i]));
  char longkey[TT_BLOB_KEY_MAX + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = 0;
  CHECK(!tt_blobs_key_valid(longkey));
  put("../escape", "text/plain", "x");
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_blobs_head(b, "/etc/passwd", info_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_blobs_delete(b, "a/../../x", plain_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  char u[64];
  CHECK_INT(tt_blobs_url(b, "../x", 300, u, sizeof u), TT_EINVAL);
  /* a bad key fails at the first write, and the writer is still released */
  tt_blob_writer *w = tt_blobs_put_start(b, "../x", NULL);
  DO(tt_blobs_write(w, "0123456789", 10, plain_cb, NULL));
  CHECK_INT(r.status, TT_EINVAL);
  DO(tt_blobs_abort(w, plain_cb, NULL));
  /* so does a content type with a control character */
  put(K("ctype"), "text/plain\r\nX: y", "x");
  CHECK_INT(r.status, TT_EINVAL);
}

/* nothing a bad key names is ever created (files on disk) */
static void case_keys_stay_in_root(void) {
  char path[400];
  put("../escape", "text/plain", "x");
  snprintf(path, sizeof path, "%s/escape", tmpdir);
  CHECK(access(path, F_OK) != 0);
}

/* whole put, head, get: content type kept */
static void case_put_head_get(void) {
  put(K("images/one/raw"), "image/png", "PNGDATA");
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.size, 7);
  CHECK_STR(r.ctype, "image/png");
  char etag1[64];
  snprintf(etag1, sizeof etag1, "%s", r.etag);
  CHECK(etag1[0] == '"');
  DO(tt_blobs_head(b, K("images/one/raw"), info_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.size, 7);
  CHECK_STR(r.ctype, "image/png");
  CHECK_STR(r.etag, etag1);
  CHECK_INT(get_all(K("images/one/raw")), TT_OK);
  CHECK_INT(r.len, 7);
  CHECK(r.data && !memcmp(r.data, "PNGDATA", 7));
  DO(tt_blobs_get_all(b, K("images/one/raw"), 3, all_cb, NULL));
  CHECK_INT(r.status, TT_ETOOBIG);
  put(K("plain"), NULL, "");
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.size, 0);
  CHECK_STR(r.ctype, "application/octet-stream");
  CHECK_INT(get_all(K("plain")), TT_OK);
  CHECK_INT(r.len, 0);
}

/* the file on disk is the bytes */
static void case_file_is_the_bytes(void) {
  put(K("images/disk/raw"), "image/png", "PNGDATA");
  struct stat st;
  CHECK(stat(P("images/disk/raw"), &st) == 0 && st.st_size == 7);
}

static void case_missing(void) {
  put(K("images/there/raw"), "image/png", "x");
  DO(tt_blobs_head(b, K("nope"), info_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
  CHECK_INT(get_all(K("images/nope/raw")), TT_ENOTFOUND);
  CHECK_INT(get_all(K("images/there")), TT_ENOTFOUND); /* a "directory" is not a blob */
}

/* streamed put: 5 chunks of 300 KiB, then a streamed get in chunks; an open
 * reader keeps the old bytes when the blob is replaced */
static void case_streamed_replace(void) {
  TT_NEEDS("snapshot_reads");
  size_t chunk = 300 * 1024, total = 5 * chunk;
  char *big = malloc(total);
  for (size_t i = 0; i < total; i++) big[i] = (char)(i * 7 + i / 1000);
  tt_blob_writer *w = tt_blobs_put_start(b, K("jobs/big.webp"), "image/webp");
  CHECK(w != NULL);
  for (int i = 0; i < 5; i++) {
    DO(tt_blobs_write(w, big + (size_t)i * chunk, chunk, plain_cb, NULL));
    CHECK_INT(r.status, TT_OK);
  }
  DO(tt_blobs_head(b, K("jobs/big.webp"), info_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND); /* not visible before commit */
  DO(tt_blobs_commit(w, info_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.size, (int64_t)total);
  char etag1[64];
  snprintf(etag1, sizeof etag1, "%s", r.etag);
  DO(tt_blobs_get_open(b, K("jobs/big.webp"), open_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_STR(r.ctype, "image/webp");
  tt_blob_reader *rd = r.r;
  free(r.data);
  r.data = NULL;
  r.len = 0;
  r.chunks = 0;
  put(K("jobs/big.webp"), "image/png", "new");
  CHECK_INT(r.status, TT_OK);
  r.calls = 0;
  returned = 0;
  tt_blobs_read(rd, read_cb, NULL);
  run();
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(r.len, total);
  CHECK(r.chunks >= (int)(total / TT_BLOB_CHUNK));
  CHECK(r.data && !memcmp(r.data, big, total));
  tt_blobs_get_close(rd);
  CHECK_INT(get_all(K("jobs/big.webp")), TT_OK);
  CHECK_INT(r.len, 3);
  CHECK_STR(r.ctype, "image/png"); /* type replaced with the bytes */
  CHECK(strcmp(r.etag, etag1) != 0);
  free(big);
}

static void case_abort_leaves_nothing(void) {
  tt_blob_writer *w = tt_blobs_put_start(b, K("aborted/x.png"), "image/png");
  DO(tt_blobs_write(w, "0123456789", 10, plain_cb, NULL));
  DO(tt_blobs_abort(w, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  DO(tt_blobs_head(b, K("aborted/x.png"), info_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
}

/* not even a temp file (files on disk) */
static void case_abort_leaves_no_temp_file(void) {
  put(K("tmpcheck/kept.png"), "image/png", "kept");
  tt_blob_writer *w = tt_blobs_put_start(b, K("tmpcheck/aborted.png"), "image/png");
  DO(tt_blobs_write(w, "0123456789", 10, plain_cb, NULL));
  DO(tt_blobs_abort(w, plain_cb, NULL));
  char path[600];
  snprintf(path, sizeof path, "%s", P("tmpcheck"));
  CHECK_INT(count_entries(path), 1); /* kept.png only */
}

static void case_delete(void) {
  put(K("images/del/raw"), "image/png", "x");
  DO(tt_blobs_delete(b, K("images/del/raw"), plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  DO(tt_blobs_delete(b, K("images/del/raw"), plain_cb, NULL));
  CHECK_INT(r.status, TT_ENOTFOUND);
}

/* a process opening DIR removes the temp files of dead writers, never those
 * of a put in progress (another process's upload) */
static void case_sweep_interrupted_puts(void) {
  tt_blob_writer *w = tt_blobs_put_start(b, K("sweep/live.png"), "image/png");
  DO(tt_blobs_write(w, "0123456789", 10, plain_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  char dead[700];
  snprintf(dead, sizeof dead, "%s/.tt-put-dead01", P("sweep"));
  FILE *f = fopen(dead, "w"); /* what a writer killed with -9 leaves: no lock held */
  CHECK(f != NULL);
  if (f) fputs("partial", f), fclose(f);
  CHECK_INT(count_entries(P("sweep")), 2);
  tt_blobs *other = NULL;
  char url[300];
  snprintf(url, sizeof url, "file://%s/blobs", tmpdir);
  CHECK_INT(tt_blobs_open(&loop, url, &other), TT_OK); /* a second process starting */
  run(); /* the sweep runs on the thread pool */
  CHECK(access(dead, F_OK) != 0);              /* the dead writer's file is gone */
  CHECK_INT(count_entries(P("sweep")), 1);     /* the live one stays */
  DO(tt_blobs_commit(w, info_cb, NULL));
  CHECK_INT(r.status, TT_OK);
  CHECK_INT(get_all(K("sweep/live.png")), TT_OK);
  CHECK_INT(r.len, 10);
  if (other) {
    tt_blobs_close(other, NULL, NULL);
    run();
  }
}

static const tt_case cases[] = {
    {"urls", case_urls, 1},
    {"keys", case_keys, 0},
    {"keys_stay_in_root", case_keys_stay_in_root, 1},
    {"put_head_get", case_put_head_get, 0},
    {"file_is_the_bytes", case_file_is_the_bytes, 1},
    {"missing", case_missing, 0},
    {"streamed_replace", case_streamed_replace, 0},
    {"abort_leaves_nothing", case_abort_leaves_nothing, 0},
    {"abort_leaves_no_temp_file", case_abort_leaves_no_temp_file, 1},
    {"sweep_interrupted_puts", case_sweep_interrupted_puts, 1},
    {"delete", case_delete, 0},
};

int main(int argc, char **argv) {
  if (!mkdtemp(tmpdir)) return 2;
  char dflt[256];
  snprintf(dflt, sizeof dflt, "file://%s/blobs", tmpdir);
  const char *url = tt_test_url("TT_TEST_BLOBS_URL", dflt);
  uv_loop_init(&loop);
  CHECK_INT(tt_blobs_open(&loop, url, &b), TT_OK);
  if (!b) return 1;
  tt_run_cases(cases, sizeof cases / sizeof cases[0], argc, argv);
  tt_blobs_close(b, NULL, NULL);
  run();
  CHECK_INT(inline_calls, 0);
  free(r.data);
  CHECK_INT(uv_loop_close(&loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) return 2;
  TT_TEST_END();
}
