// GONGDAI_CHECK: an assertion for programmer errors and broken invariants that stays on
// in release builds. Operating errors (bad input, a full disk) are returned as statuses,
// never checked here.
#ifndef GONGDAI_ENGINE_CHECK_H_
#define GONGDAI_ENGINE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define GONGDAI_CHECK(condition)                                                             \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

#endif  // GONGDAI_ENGINE_CHECK_H_
