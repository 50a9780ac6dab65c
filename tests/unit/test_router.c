/* test_router.c — path parameters, precedence, 404 vs 405 and Allow, HEAD. */
#include "tintype/error.h"
#include "tintype/router.h"
#include "tt_test.h"

static void h1(tt_http_req *r, void *ud) { (void)r; (void)ud; }
static void h2(tt_http_req *r, void *ud) { (void)r; (void)ud; }

static int m(tt_router *r, unsigned method, const char *path, const tt_route **route, tt_http_param *ps,
             unsigned *np, unsigned *allow, tt_arena *a) {
  return tt_router_match(r, method, path, strlen(path), a, ps, np, route, allow);
}

int main(void) {
  tt_router *r = tt_router_new();
  tt_arena a;
  tt_arena_init(&a, NULL, 0);
  int A = 1, B = 2, C = 3, D = 4, E = 5;
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/api/images", h1, &A, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_POST, "/api/images", h2, &B, 1000), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET | TT_HTTP_DELETE, "/api/images/{id}", h1, &C, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/api/images/{id}/{kind}", h1, &D, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/api/images/latest", h2, &E, -1), TT_OK);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/*", h2, NULL, -1), TT_OK);
  /* malformed patterns and duplicates */
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "api", h1, NULL, -1), TT_EINVAL);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/a//b", h1, NULL, -1), TT_EINVAL);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/a/*/b", h1, NULL, -1), TT_EINVAL);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/a/{}", h1, NULL, -1), TT_EINVAL);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/api/images/{other}", h1, NULL, -1), TT_EINVAL);
  CHECK_INT(tt_router_add(r, TT_HTTP_GET, "/api/images", h1, NULL, -1), TT_EEXIST);

  const tt_route *rt;
  tt_http_param ps[TT_HTTP_MAX_PARAMS];
  unsigned np, allow;
  CHECK_INT(m(r, TT_HTTP_GET, "/api/images", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &A);
  CHECK_INT(m(r, TT_HTTP_POST, "/api/images", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &B && rt->max_body == 1000);
  /* HEAD is answered by GET */
  CHECK_INT(m(r, TT_HTTP_HEAD, "/api/images", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &A);
  /* parameters */
  CHECK_INT(m(r, TT_HTTP_DELETE, "/api/images/0193abc", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &C);
  CHECK_INT(np, 1);
  CHECK_STR(ps[0].name, "id");
  CHECK_STR(ps[0].value, "0193abc");
  CHECK_INT(m(r, TT_HTTP_GET, "/api/images/xyz/thumbnail", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &D);
  CHECK_INT(np, 2);
  CHECK_STR(ps[1].name, "kind");
  CHECK_STR(ps[1].value, "thumbnail");
  /* a literal beats a parameter */
  CHECK_INT(m(r, TT_HTTP_GET, "/api/images/latest", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->ud == &E);
  CHECK_INT(np, 0);
  /* ...and decides the methods of its resource: no falling back to {id} */
  CHECK_INT(m(r, TT_HTTP_DELETE, "/api/images/latest", &rt, ps, &np, &allow, &a), 405);
  CHECK_INT(allow, TT_HTTP_GET | TT_HTTP_HEAD);
  /* 405 with the allowed methods, GET implying HEAD */
  CHECK_INT(m(r, TT_HTTP_PUT, "/api/images/abc", &rt, ps, &np, &allow, &a), 405);
  CHECK_INT(allow, TT_HTTP_GET | TT_HTTP_HEAD | TT_HTTP_DELETE);
  char buf[64];
  tt_router_allow_string(allow, buf, sizeof buf);
  CHECK_STR(buf, "GET, HEAD, DELETE");
  /* the wildcard takes the rest */
  CHECK_INT(m(r, TT_HTTP_GET, "/style.css", &rt, ps, &np, &allow, &a), 200);
  CHECK(rt && rt->fn == h2 && rt->ud == NULL);
  CHECK_INT(m(r, TT_HTTP_GET, "/deep/er/path.js", &rt, ps, &np, &allow, &a), 200);
  CHECK_INT(m(r, TT_HTTP_GET, "/", &rt, ps, &np, &allow, &a), 200);
  /* wildcard only has GET */
  CHECK_INT(m(r, TT_HTTP_POST, "/style.css", &rt, ps, &np, &allow, &a), 405);
  /* empty parameter segment does not match {id}; falls back to wildcard? no: /api/images/ has no route */
  tt_router *r2 = tt_router_new();
  CHECK_INT(tt_router_add(r2, TT_HTTP_GET, "/jobs/{id}", h1, NULL, -1), TT_OK);
  CHECK_INT(m(r2, TT_HTTP_GET, "/jobs/", &rt, ps, &np, &allow, &a), 404);
  CHECK_INT(m(r2, TT_HTTP_GET, "/jobs", &rt, ps, &np, &allow, &a), 404);
  CHECK_INT(m(r2, TT_HTTP_GET, "/jobs/1/2", &rt, ps, &np, &allow, &a), 404);
  CHECK_INT(m(r2, TT_HTTP_GET, "", &rt, ps, &np, &allow, &a), 404);
  CHECK_INT(m(r2, TT_HTTP_GET, "jobs/1", &rt, ps, &np, &allow, &a), 404);
  tt_router_free(r2);
  tt_router_free(r);
  tt_arena_free(&a);
  TT_TEST_END();
}
