// The checks the native tests share: each CHECK counts a pass or a failure, the
// run goes on, and the program reports the totals. Tests leave with _exit (see
// Finish), so this keeps to plain globals and printf.
#pragma once

#include <unistd.h>

#include <cstdio>

namespace coil_test {

inline int g_passed = 0;
inline int g_failed = 0;
inline int g_known = 0;  // known bugs reproduced (KNOWN_BUG)

// Leaves now, flushing output first but running no static destructors: the engine's
// interpreters are never finalised (docs/engine.md, fact 8).
[[noreturn]] inline void Finish(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

inline void Section(const char* name) {
  std::printf("-- %s\n", name);
  std::fflush(stdout);
}

}  // namespace coil_test

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (cond) {                                                                       \
      ++coil_test::g_passed;                                                          \
    } else {                                                                          \
      ++coil_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
    }                                                                                 \
  } while (0)

#define CHECK_MSG(cond, ...)                                                          \
  do {                                                                                \
    if (cond) {                                                                       \
      ++coil_test::g_passed;                                                          \
    } else {                                                                          \
      ++coil_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
      std::fprintf(stderr, __VA_ARGS__);                                              \
      std::fprintf(stderr, "\n");                                                     \
    }                                                                                 \
  } while (0)

// Fatal: what follows cannot run meaningfully.
#define REQUIRE(cond)                                                                 \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      ++coil_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      std::printf("%d passed, %d failed (stopped early)\n", coil_test::g_passed,      \
                  coil_test::g_failed);                                               \
      coil_test::Finish(1);                                                           \
    }                                                                                 \
    ++coil_test::g_passed;                                                            \
  } while (0)

// A check that fails because of a known bug (see the comment where it is used). It
// does not fail the run; once the bug is fixed it passes, and then the run fails
// with a reminder to turn it into a CHECK (strict expected failure).
#define KNOWN_BUG(cond, bug)                                                                       \
  do {                                                                                             \
    if (cond) {                                                                                    \
      ++coil_test::g_failed;                                                                       \
      std::fprintf(stderr, "%s:%d: known bug \"%s\" no longer reproduces: make this a CHECK\n",    \
                   __FILE__, __LINE__, bug);                                                       \
    } else {                                                                                       \
      ++coil_test::g_known;                                                                        \
      std::fprintf(stderr, "%s:%d: KNOWN BUG (expected failure): %s: %s\n", __FILE__, __LINE__, bug, \
                   #cond);                                                                         \
    }                                                                                              \
  } while (0)
