/* tt_test.h — the few macros every unit test uses. A failed check prints
 * file:line and the expression, and the test exits non-zero at the end. */
#ifndef TT_TEST_H
#define TT_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define TT_TEST_END()                                                                  \
  do {                                                                                 \
    fprintf(stderr, "%d checks, %d failed\n", tt_test_checks, tt_test_failures);       \
    return tt_test_failures ? 1 : 0;                                                   \
  } while (0)

#endif
