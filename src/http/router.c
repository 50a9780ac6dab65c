/* router.c — the segment tree behind include/tintype/router.h.
 *
 * Each node is one path segment: literal children in a list, at most one
 * parameter child and at most one "*" child. Matching walks the path once,
 * trying literal, then parameter, then wildcard, with backtracking so that
 * "/a/{x}/c" and "/a/b/d" can coexist. Up to 8 route entries (method sets)
 * hang off each terminal node. The tree is built at start-up and read-only
 * afterwards; with a few dozen routes it lives in a handful of cache lines. */
#include "tintype/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/error.h"
#include "tintype/metrics.h"

#define MAX_ROUTES_PER_NODE 8

typedef struct node node;
struct node {
  char *seg;         /* literal text, or parameter name for param nodes */
  node *children;    /* literal children */
  node *next;        /* sibling in parent's literal list */
  node *param;       /* "{name}" child */
  node *wild;        /* "*" child */
  tt_route routes[MAX_ROUTES_PER_NODE];
  unsigned nroutes;
};

struct tt_router {
  node root;
  int next_id;
};

tt_router *tt_router_new(void) { return calloc(1, sizeof(tt_router)); }

static void free_node(node *n) {
  node *c = n->children;
  while (c) {
    node *nx = c->next;
    free_node(c);
    free(c);
    c = nx;
  }
  if (n->param) {
    free_node(n->param);
    free(n->param);
  }
  if (n->wild) {
    free_node(n->wild);
    free(n->wild);
  }
  free(n->seg);
}

void tt_router_free(tt_router *r) {
  if (!r) return;
  free_node(&r->root);
  free(r);
}

static node *new_node(const char *s, size_t n) {
  node *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->seg = strndup(s, n);
  if (!x->seg) {
    free(x);
    return NULL;
  }
  return x;
}

static int add(tt_router *r, unsigned methods, const char *pattern, tt_http_handler_fn fn, void *ud,
               int64_t max_body, int stream_body) {
  if (!r || !pattern || pattern[0] != '/' || !fn || !methods) return TT_EINVAL;
  node *cur = &r->root;
  const char *p = pattern + 1;
  int ended = 0;
  while (!ended) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (!slash) ended = 1;
    if (n == 0 && !ended) return TT_EINVAL; /* "//" */
    if (n == 1 && p[0] == '*') {
      if (!ended) return TT_EINVAL; /* "*" must be last */
      if (!cur->wild && !(cur->wild = new_node("*", 1))) return TT_ENOMEM;
      cur = cur->wild;
    } else if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
      if (n == 2 || memchr(p + 1, '{', n - 2) || memchr(p + 1, '}', n - 2)) return TT_EINVAL;
      if (cur->param) {
        if (strlen(cur->param->seg) != n - 2 || strncmp(cur->param->seg, p + 1, n - 2)) return TT_EINVAL;
      } else if (!(cur->param = new_node(p + 1, n - 2))) {
        return TT_ENOMEM;
      }
      cur = cur->param;
    } else {
      if (memchr(p, '{', n) || memchr(p, '}', n) || memchr(p, '*', n)) return TT_EINVAL;
      node *c = cur->children;
      while (c && !(strlen(c->seg) == n && !strncmp(c->seg, p, n))) c = c->next;
      if (!c) {
        if (!(c = new_node(p, n))) return TT_ENOMEM;
        c->next = cur->children;
        cur->children = c;
      }
      cur = c;
    }
    p = slash ? slash + 1 : p + n;
  }
  for (unsigned i = 0; i < cur->nroutes; i++)
    if (cur->routes[i].methods & methods) return TT_EEXIST;
  if (cur->nroutes == MAX_ROUTES_PER_NODE) return TT_ENOMEM;
  int id = r->next_id++;
  cur->routes[cur->nroutes++] = (tt_route){methods, fn, ud, max_body, stream_body, id};
  tt_metrics_name_route(id, pattern);
  return TT_OK;
}

int tt_router_add(tt_router *r, unsigned methods, const char *pattern, tt_http_handler_fn fn, void *ud,
                  int64_t max_body) {
  return add(r, methods, pattern, fn, ud, max_body, 0);
}

int tt_router_add_streaming(tt_router *r, unsigned methods, const char *pattern, tt_http_handler_fn fn,
                            void *ud, int64_t max_body) {
  return add(r, methods, pattern, fn, ud, max_body, 1);
}

typedef struct {
  const char *pnames[TT_HTTP_MAX_PARAMS];
  const char *pvals[TT_HTTP_MAX_PARAMS];
  size_t plens[TT_HTTP_MAX_PARAMS];
  unsigned np;
  unsigned allow;
  int literal_final; /* a literal resource matched the path but not the method */
} walk;

static unsigned node_methods(const node *n) {
  unsigned m = 0;
  for (unsigned i = 0; i < n->nroutes; i++) m |= n->routes[i].methods;
  if (m & TT_HTTP_GET) m |= TT_HTTP_HEAD;
  return m;
}

static const tt_route *node_route(const node *n, unsigned method) {
  for (unsigned i = 0; i < n->nroutes; i++)
    if (n->routes[i].methods & method) return &n->routes[i];
  if (method == TT_HTTP_HEAD)
    for (unsigned i = 0; i < n->nroutes; i++)
      if (n->routes[i].methods & TT_HTTP_GET) return &n->routes[i];
  return NULL;
}

/* path points just past a '/', end is the end of the path */
static const tt_route *match(const node *n, const char *p, const char *end, unsigned method, walk *w) {
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *segend = slash ? slash : end;
  size_t len = (size_t)(segend - p);
  const tt_route *r;

  /* literal */
  for (const node *c = n->children; c; c = c->next) {
    if (strlen(c->seg) == len && !memcmp(c->seg, p, len)) {
      if (!slash) {
        if (c->nroutes) {
          /* the most specific resource decides its methods: no falling
           * back to a parameter route for a method it lacks */
          if ((r = node_route(c, method))) return r;
          w->allow |= node_methods(c);
          w->literal_final = 1;
          return NULL;
        }
      } else if ((r = match(c, slash + 1, end, method, w))) {
        return r;
      }
      break;
    }
  }
  if (w->literal_final) return NULL;
  /* parameter: one non-empty segment */
  if (n->param && len > 0 && w->np < TT_HTTP_MAX_PARAMS) {
    unsigned saved = w->np;
    w->pnames[w->np] = n->param->seg;
    w->pvals[w->np] = p;
    w->plens[w->np] = len;
    w->np++;
    if (!slash) {
      if (n->param->nroutes) {
        if ((r = node_route(n->param, method))) return r;
        w->allow |= node_methods(n->param);
      }
    } else if ((r = match(n->param, slash + 1, end, method, w))) {
      return r;
    }
    w->np = saved;
    if (w->literal_final) return NULL;
  }
  /* wildcard: the rest of the path */
  if (n->wild && n->wild->nroutes) {
    if ((r = node_route(n->wild, method))) return r;
    w->allow |= node_methods(n->wild);
  }
  return NULL;
}

int tt_router_match(const tt_router *r, unsigned method, const char *path, size_t len, tt_arena *arena,
                    tt_http_param *params, unsigned *nparams, const tt_route **route, unsigned *allow) {
  walk w;
  memset(&w, 0, sizeof w);
  *route = NULL;
  *nparams = 0;
  *allow = 0;
  if (!r || len == 0 || path[0] != '/') return 404;
  const tt_route *found = match(&r->root, path + 1, path + len, method, &w);
  if (!found) {
    *allow = w.allow;
    return w.allow ? 405 : 404;
  }
  for (unsigned i = 0; i < w.np; i++) {
    params[i].name = w.pnames[i];
    params[i].value = tt_arena_strndup(arena, w.pvals[i], w.plens[i]);
    if (!params[i].value) return 500;
  }
  *nparams = w.np;
  *route = found;
  return 200;
}

void tt_router_allow_string(unsigned m, char *buf, size_t len) {
  static const struct {
    unsigned bit;
    const char *name;
  } names[] = {{TT_HTTP_GET, "GET"},       {TT_HTTP_HEAD, "HEAD"},   {TT_HTTP_POST, "POST"},
               {TT_HTTP_PUT, "PUT"},       {TT_HTTP_DELETE, "DELETE"}, {TT_HTTP_PATCH, "PATCH"},
               {TT_HTTP_OPTIONS, "OPTIONS"}};
  size_t j = 0;
  if (len) buf[0] = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!(m & names[i].bit)) continue;
    int w = snprintf(buf + j, len - j, "%s%s", j ? ", " : "", names[i].name);
    if (w < 0 || (size_t)w >= len - j) break;
    j += (size_t)w;
  }
}
