/* log.c — JSON-lines logger of include/tintype/log.h.
 *
 * One process-wide buffer guarded by a mutex. The HTTP server turns on
 * buffered mode and flushes once per loop iteration, so a busy process
 * makes one write(2) for many request lines instead of one each. */
#include "tintype/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TT_LOG_HIGH_WATER (64 * 1024)

static struct {
  pthread_mutex_t mu;
  int fd;
  tt_log_level min;
  int buffered;
  char role[32];
  tt_buf out;
  time_t stamp_sec;
  int pid;
  char pidstr[16];
  char stamp[32]; /* "2026-11-22T07:40:00" */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = 2, .min = TT_LOG_INFO, .role = "tintype"};

/* the pid, refreshed in a fork child (pthread_atfork) */
static pid_t cached_pid;
static void pid_reset(void) { cached_pid = 0; }
static pid_t getpid_cached(void) {
  static int registered;
  if (!registered) {
    registered = 1;
    pthread_atfork(NULL, NULL, pid_reset);
  }
  if (!cached_pid) cached_pid = getpid();
  return cached_pid;
}

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void tt_log_init(int fd, tt_log_level min, const char *role) {
  pthread_mutex_lock(&L.mu);
  L.fd = fd;
  L.min = min;
  if (role) snprintf(L.role, sizeof L.role, "%s", role);
  pthread_mutex_unlock(&L.mu);
}

int tt_log_level_parse(const char *s) {
  for (int i = 0; i <= TT_LOG_OFF; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

void tt_log_set_role(const char *role) {
  pthread_mutex_lock(&L.mu);
  snprintf(L.role, sizeof L.role, "%s", role);
  pthread_mutex_unlock(&L.mu);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { /* non-blocking fd: spin briefly rather than lose lines */
        usleep(100);
        continue;
      }
      return; /* nowhere to report a failing log fd */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void flush_locked(void) {
  if (L.out.len) write_all(L.fd, L.out.data, L.out.len);
  tt_buf_reset(&L.out);
  if (L.out.cap > 4 * TT_LOG_HIGH_WATER) tt_buf_free(&L.out);
}

void tt_log_set_buffered(int on) {
  pthread_mutex_lock(&L.mu);
  L.buffered = on;
  if (!on) flush_locked();
  pthread_mutex_unlock(&L.mu);
}

void tt_log_flush(void) {
  pthread_mutex_lock(&L.mu);
  flush_locked();
  pthread_mutex_unlock(&L.mu);
}

int tt_log_enabled(tt_log_level lvl) { return lvl >= L.min && lvl < TT_LOG_OFF; }

tt_buf *tt_log_begin(tt_log_level lvl, const char *msg) {
  if (!tt_log_enabled(lvl)) return NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  pthread_mutex_lock(&L.mu);
  if (ts.tv_sec != L.stamp_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(L.stamp, sizeof L.stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    L.stamp_sec = ts.tv_sec;
  }
  /* getpid() is a system call: ask once per process (and again after fork) */
  int pid = (int)getpid_cached();
  if (pid != L.pid) {
    L.pid = pid;
    snprintf(L.pidstr, sizeof L.pidstr, "%d", pid);
  }
  long ms = ts.tv_nsec / 1000000;
  char msd[4] = {(char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 0};
  tt_buf_puts(&L.out, "{\"time\":\"");
  tt_buf_puts(&L.out, L.stamp);
  tt_buf_putc(&L.out, '.');
  tt_buf_puts(&L.out, msd);
  tt_buf_puts(&L.out, "Z\",\"level\":\"");
  tt_buf_puts(&L.out, level_names[lvl]);
  tt_buf_puts(&L.out, "\",\"pid\":");
  tt_buf_puts(&L.out, L.pidstr);
  tt_buf_puts(&L.out, ",\"role\":\"");
  tt_buf_puts(&L.out, L.role);
  tt_buf_puts(&L.out, "\",\"msg\":");
  tt_buf_json_str(&L.out, msg, strlen(msg));
  return &L.out;
}

void tt_log_str(tt_buf *line, const char *key, const char *val, size_t len) {
  tt_buf_puts(line, ",\"");
  tt_buf_puts(line, key);
  tt_buf_puts(line, "\":");
  if (val)
    tt_buf_json_str(line, val, len);
  else
    tt_buf_puts(line, "null");
}

void tt_log_cstr(tt_buf *line, const char *key, const char *val) {
  tt_log_str(line, key, val, val ? strlen(val) : 0);
}

void tt_log_int(tt_buf *line, const char *key, long long val) {
  char num[24];
  int i = (int)sizeof num;
  unsigned long long u = val < 0 ? 0ULL - (unsigned long long)val : (unsigned long long)val;
  do {
    num[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (val < 0) num[--i] = '-';
  tt_buf_puts(line, ",\"");
  tt_buf_puts(line, key);
  tt_buf_puts(line, "\":");
  tt_buf_append(line, num + i, sizeof num - (size_t)i);
}

void tt_log_end(tt_buf *line) {
  tt_buf_puts(line, "}\n");
  if (!L.buffered || L.out.len >= TT_LOG_HIGH_WATER) flush_locked();
  pthread_mutex_unlock(&L.mu);
}

void tt_logf(tt_log_level lvl, const char *fmt, ...) {
  if (!tt_log_enabled(lvl)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tt_buf *l = tt_log_begin(lvl, msg);
  if (l) tt_log_end(l);
}
