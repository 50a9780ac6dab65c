/* multipart.c — streaming multipart/form-data (include/tintype/multipart.h).
 *
 * The body is treated as if it began with CRLF, so every delimiter —
 * including the first — is "\r\n--BOUNDARY". In a part's data the parser
 * looks for that delimiter in (held bytes + new bytes) and passes on all
 * but the last len(delimiter)-1 bytes, which it holds in case they begin a
 * delimiter split across two pieces. */
#include "tintype/multipart.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tintype/alloc.h"
#include "tintype/buf.h"
#include "tintype/error.h"

enum { M_PREAMBLE, M_AFTER_DELIM, M_HEADERS, M_DATA, M_EPILOGUE, M_ERROR };

struct tt_multipart {
  tt_multipart_cbs cbs;
  void *ud;
  char delim[4 + TT_MULTIPART_MAX_BOUNDARY + 1];
  size_t dlen;
  int state;
  tt_buf hold;    /* bytes that may start a delimiter (data), or the preamble tail */
  tt_buf headers; /* the current part's header block */
  char after[2];
  int nafter;
};

int tt_multipart_boundary(const char *ct, char *out, size_t outlen) {
  if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) return TT_EINVAL;
  const char *p = ct + 19;
  while (*p) {
    while (*p == ';' || *p == ' ' || *p == '\t') p++;
    if (!strncasecmp(p, "boundary=", 9)) {
      p += 9;
      size_t n = 0;
      if (*p == '"') {
        const char *end = strchr(p + 1, '"');
        if (!end) return TT_EINVAL;
        n = (size_t)(end - p - 1);
        p++;
      } else {
        while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') n++;
      }
      if (n == 0 || n > TT_MULTIPART_MAX_BOUNDARY || n >= outlen) return TT_EINVAL;
      memcpy(out, p, n);
      out[n] = 0;
      return TT_OK;
    }
    while (*p && *p != ';') p++;
  }
  return TT_EINVAL;
}

tt_multipart *tt_multipart_new(const char *boundary, const tt_multipart_cbs *cbs, void *ud) {
  size_t bl = strlen(boundary);
  if (bl == 0 || bl > TT_MULTIPART_MAX_BOUNDARY) return NULL;
  tt_multipart *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cbs = *cbs;
  m->ud = ud;
  memcpy(m->delim, "\r\n--", 4);
  memcpy(m->delim + 4, boundary, bl + 1);
  m->dlen = 4 + bl;
  m->state = M_PREAMBLE;
  tt_buf_append(&m->hold, "\r\n", 2); /* the virtual CRLF before the first delimiter */
  return m;
}

void tt_multipart_free(tt_multipart *m) {
  if (!m) return;
  tt_buf_free(&m->hold);
  tt_buf_free(&m->headers);
  free(m);
}

static int fail(tt_multipart *m) {
  m->state = M_ERROR;
  return TT_EINVAL;
}

/* "name" or "filename" parameter of a Content-Disposition value */
static char *disp_param(const char *v, const char *key) {
  size_t kl = strlen(key);
  for (const char *p = v; (p = strcasestr(p, key)); p += kl) {
    if (p != v && p[-1] != ' ' && p[-1] != ';' && p[-1] != '\t') continue;
    const char *q = p + kl;
    while (*q == ' ') q++;
    if (*q != '=') continue;
    q++;
    while (*q == ' ') q++;
    size_t n = 0;
    if (*q == '"') {
      q++;
      while (q[n] && q[n] != '"') n++;
    } else {
      while (q[n] && q[n] != ';' && q[n] != ' ') n++;
    }
    return tt_xstrndup(q, n);
  }
  return NULL;
}

static int end_headers(tt_multipart *m) {
  char *name = NULL, *filename = NULL, *ctype = NULL;
  char *s = m->headers.data ? m->headers.data : (char *)"";
  int rc = TT_OK;
  for (char *line = s, *next; line && *line; line = next) {
    char *eol = strstr(line, "\r\n");
    next = eol ? eol + 2 : NULL;
    if (eol) *eol = 0;
    char *colon = strchr(line, ':');
    if (!colon) {
      rc = TT_EINVAL;
      break;
    }
    *colon = 0;
    char *val = colon + 1;
    while (*val == ' ' || *val == '\t') val++;
    if (!strcasecmp(line, "Content-Disposition")) {
      if (strncasecmp(val, "form-data", 9) != 0) {
        rc = TT_EINVAL;
        break;
      }
      free(name);
      free(filename);
      name = disp_param(val, "name");
      filename = disp_param(val, "filename");
    } else if (!strcasecmp(line, "Content-Type")) {
      free(ctype);
      ctype = tt_xstrdup(val);
    }
  }
  if (rc == TT_OK && m->cbs.part_begin && m->cbs.part_begin(m->ud, name, filename, ctype)) rc = TT_EINVAL;
  free(name);
  free(filename);
  free(ctype);
  tt_buf_reset(&m->headers);
  return rc;
}

int tt_multipart_feed(tt_multipart *m, const char *data, size_t len) {
  if (m->state == M_ERROR) return TT_EINVAL;
  size_t i = 0;
  while (i < len || ((m->state == M_PREAMBLE || m->state == M_DATA) && m->hold.len >= m->dlen)) {
    switch (m->state) {
      case M_EPILOGUE: return TT_OK; /* ignored */
      case M_PREAMBLE:
      case M_DATA: {
        /* work on hold + the rest of this piece */
        if (tt_buf_append(&m->hold, data + i, len - i)) return fail(m);
        i = len;
        char *w = m->hold.data;
        size_t wl = m->hold.len;
        char *hit = memmem(w, wl, m->delim, m->dlen);
        if (!hit) {
          size_t keep = m->dlen - 1 < wl ? m->dlen - 1 : wl;
          size_t emit = wl - keep;
          if (m->state == M_DATA && emit && m->cbs.part_data && m->cbs.part_data(m->ud, w, emit)) return fail(m);
          memmove(w, w + emit, keep);
          m->hold.len = keep;
          return TT_OK;
        }
        size_t pos = (size_t)(hit - w);
        if (m->state == M_DATA) {
          if (pos && m->cbs.part_data && m->cbs.part_data(m->ud, w, pos)) return fail(m);
          if (m->cbs.part_end && m->cbs.part_end(m->ud)) return fail(m);
        }
        size_t rest = wl - pos - m->dlen;
        memmove(w, hit + m->dlen, rest);
        m->hold.len = rest;
        m->state = M_AFTER_DELIM;
        m->nafter = 0;
        /* the held rest is processed as new input */
        if (rest) {
          char *copy = tt_xmalloc(rest);
          memcpy(copy, w, rest);
          m->hold.len = 0;
          int rc = tt_multipart_feed(m, copy, rest);
          free(copy);
          if (rc) return rc;
        }
        break;
      }
      case M_AFTER_DELIM:
        while (i < len && m->nafter < 2) m->after[m->nafter++] = data[i++];
        if (m->nafter < 2) return TT_OK;
        if (m->after[0] == '-' && m->after[1] == '-') {
          m->state = M_EPILOGUE;
          return TT_OK;
        }
        if (m->after[0] != '\r' || m->after[1] != '\n') return fail(m);
        m->state = M_HEADERS;
        break;
      case M_HEADERS: {
        while (i < len) {
          if (m->headers.len >= TT_MULTIPART_MAX_HEADERS) return fail(m);
          if (tt_buf_putc(&m->headers, data[i++])) return fail(m);
          size_t hl = m->headers.len;
          if (hl == 2 && !memcmp(m->headers.data, "\r\n", 2)) { /* no headers at all */
            tt_buf_reset(&m->headers);
            if (end_headers(m)) return fail(m);
            m->state = M_DATA;
            break;
          }
          if (hl >= 4 && !memcmp(m->headers.data + hl - 4, "\r\n\r\n", 4)) {
            m->headers.len -= 2; /* keep the last line's CRLF */
            m->headers.data[m->headers.len] = 0;
            if (end_headers(m)) return fail(m);
            m->state = M_DATA;
            tt_buf_reset(&m->hold);
            break;
          }
        }
        break;
      }
      default: return fail(m);
    }
  }
  return TT_OK;
}

int tt_multipart_finish(tt_multipart *m) { return m->state == M_EPILOGUE ? TT_OK : TT_EINVAL; }
