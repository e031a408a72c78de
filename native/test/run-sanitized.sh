#!/usr/bin/env bash
# Builds the native tests twice with plain cmake (not cmake-js) and runs them:
# engine_test (the engine, native/src/engine) and json_numbers_test (the JSON
# number codec, native/src/codecs).
#
#   asan      build-test-asan: -DCOIL_SANITIZE=ON (AddressSanitizer + UBSan), run with
#             LeakSanitizer's check at the end (engine_test calls it itself: it
#             leaves with _exit, interpreters are never finalised).
#   valgrind  build-test: no sanitizers, run under valgrind memcheck with
#             --error-exitcode=1, definite leaks counted as errors, and
#             native/test/valgrind.supp (each entry documented there).
#
# Usage: native/test/run-sanitized.sh [asan|valgrind|all]   (default: all)
# Environment: COIL_TEST_PYTHON (default /usr/bin/python3), COIL_TEST_LIBPYTHON,
#   BUILD_JOBS, and COIL_TEST_FAKE_TORCH for the ASan run (default 1, see below).
#
# What to know:
# - Every run needs GLIBC_TUNABLES=glibc.rtld.nns=16 in the environment the process
#   starts with (docs/engine.md, fact 2); this script sets it.
# - ASan/UBSan instrument only Coil's engine and this test. Each interpreter's
#   libpython, libc and torch are private copies in their own link-map namespace:
#   uninstrumented, and their malloc is the namespace libc's own, not ASan's, so
#   LeakSanitizer never sees CPython's or torch's allocations and needs no
#   suppressions (there is deliberately no lsan.supp).
# - Real torch cannot run under ASan with this engine: ASan stores its per-thread
#   pointer in pthread key 0 of the program's libc on every thread it starts, the
#   interpreter's thread included; the namespace's libpython gets key 0 of its own
#   libc for its GIL state, finds the shared slot already set and keeps it, and the
#   first PyGILState_Ensure (pybind11, as torch._C initialises) takes ASan's pointer
#   for a PyThreadState: SEGV in PyEval_RestoreThread. So the ASan run replaces
#   torch with a numpy stand-in (COIL_TEST_FAKE_TORCH=1); the valgrind run uses the
#   real torch. COIL_TEST_FAKE_TORCH=0 reproduces the crash.
# - Valgrind (3.19) cannot run real torch on a CPU that does not advertise rdtscp
#   (seen on a VM, 2026-12-06): torch loads libjxl, whose libhwy executes RDTSCP in a
#   constructor, and valgrind stops it with SIGILL. There the valgrind run uses the
#   numpy stand-in too, and says so; COIL_TEST_VALGRIND_FAKE_TORCH=0|1 overrides.
set -euo pipefail

NATIVE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASAN_BUILD="$NATIVE_DIR/build-test-asan"
PLAIN_BUILD="$NATIVE_DIR/build-test"
SUPPRESSIONS="$NATIVE_DIR/test/valgrind.supp"
JOBS="${BUILD_JOBS:-$(nproc)}"
WHAT="${1:-all}"

source "$NATIVE_DIR/../tools/env.sh"   # GLIBC_TUNABLES, set in that one place

case "$WHAT" in
  asan | valgrind | all) ;;
  *)
    echo "usage: $0 [asan|valgrind|all]" >&2
    exit 2
    ;;
esac

if [[ -n "${COIL_TEST_VALGRIND_FAKE_TORCH:-}" ]]; then
  VALGRIND_FAKE_TORCH="$COIL_TEST_VALGRIND_FAKE_TORCH"
elif grep -qw rdtscp /proc/cpuinfo; then
  VALGRIND_FAKE_TORCH=0
else
  VALGRIND_FAKE_TORCH=1
fi

build() {  # build DIR [cmake args...]
  local dir="$1"
  shift
  echo "== configure + build $dir $*"
  cmake -S "$NATIVE_DIR" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCOIL_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" --target engine_test json_numbers_test -j "$JOBS"
}

status=0

if [[ "$WHAT" == asan || "$WHAT" == all ]]; then
  build "$ASAN_BUILD" -DCOIL_SANITIZE=ON
  for test in json_numbers_test engine_test; do
    echo "== $test under ASan + UBSan (+ LeakSanitizer at the end)"
    if env \
      ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      COIL_TEST_FAKE_TORCH="${COIL_TEST_FAKE_TORCH:-1}" \
      COIL_TEST_TIMEOUT_S=120 \
      timeout 900 "$ASAN_BUILD/$test"; then
      echo "== $test, ASan/UBSan/LSan: clean"
    else
      echo "== $test, ASan/UBSan/LSan run FAILED (exit $?)" >&2
      status=1
    fi
  done
fi

if [[ "$WHAT" == valgrind || "$WHAT" == all ]]; then
  command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
  build "$PLAIN_BUILD" -DCOIL_SANITIZE=OFF
  if [[ "$VALGRIND_FAKE_TORCH" == 1 ]]; then
    echo "== note: valgrind runs engine_test with the numpy stand-in for torch" \
      "(this CPU does not advertise rdtscp, or COIL_TEST_VALGRIND_FAKE_TORCH=1)"
  fi
  for test in json_numbers_test engine_test; do
    echo "== $test under valgrind memcheck (engine_test takes a few minutes)"
    # PYTHONMALLOC=malloc: CPython's small-object allocator reads memory it does not
    # own by design (address_in_range); plain malloc keeps that out of the report.
    # --fair-sched=yes: valgrind runs one thread at a time, and by default a busy thread
    # can keep the others off for long -- the test's thread then missed a 30 s busy loop
    # it was to cancel (engine_test's "cancel: while the inputs are being converted").
    if env PYTHONMALLOC=malloc COIL_TEST_TIMEOUT_S=900 COIL_TEST_FAKE_TORCH="$VALGRIND_FAKE_TORCH" \
      timeout 3600 valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
      --errors-for-leak-kinds=definite --suppressions="$SUPPRESSIONS" --num-callers=30 \
      "$PLAIN_BUILD/$test"; then
      echo "== $test, valgrind: clean"
    else
      echo "== $test, valgrind run FAILED (exit $?)" >&2
      status=1
    fi
  done
fi

exit $status
