/* Callgrind's client request for tools/bench/instructions.mjs, callable through
 * ctypes: a dump writes out the counts since the last one and zeroes them, so the
 * calls between two dumps are counted alone (and start-up not at all). Outside
 * Valgrind it is a few no-op instructions. */
#include <valgrind/callgrind.h>

void coil_callgrind_dump(const char* phase) { CALLGRIND_DUMP_STATS_AT(phase); }
