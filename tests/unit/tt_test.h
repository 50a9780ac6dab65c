/* tt_test.h — the few macros every unit test uses. A failed check prints
 * file:line and the expression, and the test exits non-zero at the end. */
#ifndef TT_TEST_H
#define TT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int tt_test_failures = 0;
static int tt_test_checks = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    tt_test_checks++;                                                      \
    if (!(cond)) {                                                         \
      tt_test_failures++;                                                  \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

#define CHECK_INT(a, b)                                                                        \
  do {                                                                                         \
    long long _a = (long long)(a), _b = (long long)(b);                                        \
    tt_test_checks++;                                                                          \
    if (_a != _b) {                                                                            \
      tt_test_failures++;                                                                      \
      fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, _a, #b, _b); \
    }                                                                                          \
  } while (0)

#define CHECK_STR(a, b)                                                                           \
  do {                                                                                            \
    const char *_a = (a), *_b = (b);                                                              \
    tt_test_checks++;                                                                             \
    if (!_a || !_b || strcmp(_a, _b)) {                                                           \
      tt_test_failures++;                                                                         \
      fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, _a ? _a : "(null)", \
              _b ? _b : "(null)");                                                                \
    }                                                                                             \
  } while (0)

/* ---- named cases (as libuv's test-list.h) --------------------------------
 * A test file lists its cases; `test_x NAME...` runs only those. A case
 * marked embedded runs only against the embedded backend: the contract
 * suites take their backend from an environment URL (TT_TEST_STORE_URL,
 * TT_TEST_QUEUE_URL, TT_TEST_BLOBS_URL), and what only the embedded backend
 * promises (its URL forms, files on disk, SQLite's stale-receipt answer)
 * is skipped against another one. */
typedef struct tt_case {
  const char *name;
  void (*fn)(void);
  int embedded_only;
} tt_case;

/* A backend under test that lacks a feature says so in $TT_TEST_LACKS:
 * "FEATURE=why;FEATURE=why" (e.g. "transactions=dynalite lacks
 * TransactWriteItems"). A case that needs it starts with
 * TT_NEEDS("transactions") and is then a named skip: "case NAME: skipped
 * (why)" — never a silent pass. tt_test_lacks is NULL when present. */
static inline const char *tt_test_lacks(const char *feature) {
  static char why[256];
  const char *l = getenv("TT_TEST_LACKS");
  size_t fl = strlen(feature);
  for (const char *p = l; p && *p;) {
    const char *end = strchr(p, ';');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > fl && !strncmp(p, feature, fl) && p[fl] == '=') {
      snprintf(why, sizeof why, "%.*s", (int)(n - fl - 1), p + fl + 1);
      return why;
    }
    p = end ? end + 1 : NULL;
  }
  return NULL;
}

static const char *tt_case_skipped; /* set by TT_NEEDS: why the case was skipped */
#define TT_NEEDS(feature)                                     \
  do {                                                        \
    if ((tt_case_skipped = tt_test_lacks(feature))) return;   \
  } while (0)

static int tt_test_embedded = 1; /* 0 when the backend came from the environment */

/* The backend URL: $env when set and non-empty, else dflt (a temp embedded one). */
static inline const char *tt_test_url(const char *env, const char *dflt) {
  const char *u = getenv(env);
  if (u && u[0]) {
    tt_test_embedded = 0;
    fprintf(stderr, "backend from %s: %s\n", env, u);
    return u;
  }
  return dflt;
}

/* A per-run prefix, so runs against a backend that persists (an emulator
 * left running, a real account) never collide on unique values. */
static inline const char *tt_test_nonce(void) {
  static char n[24];
  if (!n[0]) snprintf(n, sizeof n, "t%lx%x", (unsigned long)time(NULL), (unsigned)getpid() & 0xffff);
  return n;
}

static inline int tt_run_cases(const tt_case *cases, size_t n, int argc, char **argv) {
  int ran = 0;
  for (size_t i = 0; i < n; i++) {
    int wanted = argc <= 1;
    for (int a = 1; a < argc; a++)
      if (!strcmp(argv[a], cases[i].name)) wanted = 1;
    if (!wanted) continue;
    if (cases[i].embedded_only && !tt_test_embedded) {
      fprintf(stderr, "case %s: skipped (embedded backend only)\n", cases[i].name);
      continue;
    }
    int before = tt_test_failures;
    tt_case_skipped = NULL;
    cases[i].fn();
    if (tt_case_skipped) {
      fprintf(stderr, "case %s: skipped (%s)\n", cases[i].name, tt_case_skipped);
      continue;
    }
    fprintf(stderr, "case %s: %s\n", cases[i].name, tt_test_failures == before ? "ok" : "FAILED");
    ran++;
  }
  if (!ran) fprintf(stderr, "no case ran\n");
  return ran;
}

#define TT_TEST_END()                                                                  \
  do {                                                                                 \
    fprintf(stderr, "%d checks, %d failed\n", tt_test_checks, tt_test_failures);       \
    return tt_test_failures ? 1 : 0;                                                   \
  } while (0)

#endif
