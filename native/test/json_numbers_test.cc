// Native test of the JSON number scanner (native/src/codecs/json_numbers.*), the
// codec behind the addon's scanJsonNumbers that the HTTP adapter uses: malformed
// and ragged input, nesting limits, capacity, overflow and underflow, and 20,000
// random numbers against strtod. Built with -DCOIL_BUILD_TESTS=ON;
// native/test/run-sanitized.sh runs it under ASan+UBSan and under valgrind.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "json_numbers.h"

namespace {

// Scans `text` from its start into `out` (resized to `capacity`, filled with a
// sentinel so that unwritten slots show).
coil::codecs::NumberArrayScan Scan(const std::string& text, std::vector<double>* out, size_t capacity = 64,
                                   int levels = 8) {
  out->assign(capacity, -12345.0);
  return coil::codecs::ScanJsonNumberArray(reinterpret_cast<const uint8_t*>(text.data()), text.size(), 0, levels,
                                           out->data(), capacity);
}

void TestSyntax() {
  coil_test::Section("syntax");
  std::vector<double> out;
  {
    auto r = Scan("[1, -2.5e3 ,[0.125,[ ]],\n[-0]]x", &out);
    CHECK(r.ok && r.count == 4 && r.end == 30 && !r.regular);
    CHECK(out[0] == 1 && out[1] == -2500 && out[2] == 0.125 && out[3] == 0 && std::signbit(out[3]));
  }
  for (const char* bad : {"[1,]", "[,1]", "[01]", "[1.]", "[.5]", "[+1]", "[-]", "[1e]", "[1e+]", "[inf]", "[nan]",
                          "[0x10]", "[1 2]", "[[1]", "[\"1\"]", "[true]", "[1,null]", "[", "", "1"}) {
    CHECK_MSG(!Scan(bad, &out).ok, "%s", bad);
  }
  {
    auto r = Scan("[1]]", &out);  // the array ends at its ']': what follows is the caller's
    CHECK(r.ok && r.end == 3);
  }
}

void TestRegularity() {
  coil_test::Section("regular and ragged nesting");
  std::vector<double> out;
  // Regular nesting (an N-d array) and ragged nesting: both scan, only one is regular.
  for (const char* regular : {"[]", "[1,2]", "[[1,2],[3,4]]", "[[],[]]", "[[[1],[2]],[[3],[4]]]", "[[[]],[[]]]"}) {
    auto r = Scan(regular, &out);
    CHECK_MSG(r.ok && r.regular, "%s", regular);
  }
  for (const char* ragged : {"[[1,2],[3]]", "[[1],[2,3]]", "[1,[2]]", "[[1],2]", "[[1],[[2]]]", "[[],[1]]", "[[1],[]]",
                             "[[[1]],[[2],[3]]]", "[[],[[]]]", "[[[1,2]],[[3]]]", "[[],1]", "[[[]],[1]]"}) {
    auto r = Scan(ragged, &out);
    CHECK_MSG(r.ok && !r.regular, "%s", ragged);
  }
  {
    // Past kRegularityLevels the lengths are not compared, but the scan still works.
    std::string deep = std::string(40, '[') + "1" + std::string(40, ']');
    auto r = Scan(deep, &out, 64, 64);
    CHECK(r.ok && r.regular && r.count == 1 && out[0] == 1);
    std::string deep_ragged = "[" + deep + "," + std::string(40, '[') + "1,2" + std::string(40, ']') + "]";
    r = Scan(deep_ragged, &out, 64, 64);
    CHECK(r.ok && r.count == 3 && r.regular);  // ragged only at level 41: not compared
  }
}

void TestLimits() {
  coil_test::Section("nesting and capacity limits");
  std::vector<double> out;
  CHECK(!Scan("[[[[1]]]]", &out, 64, 3).ok);  // deeper than allowed
  CHECK(Scan("[[[[1]]]]", &out, 64, 4).ok);
  {
    auto r = Scan("[1,2,3,4]", &out, 2);  // no room: counted, not written past capacity
    CHECK(r.ok && r.count == 4 && out[0] == 1 && out[1] == 2);
  }
}

void TestExtremes() {
  coil_test::Section("overflow and underflow");
  std::vector<double> out;
  {
    auto r = Scan("[1e400,-1e400,1e-400,-1e-400,0.5e400,0.0000001e-320,2.4703282292062328e-324]", &out);
    CHECK(r.ok && r.count == 7);
    CHECK(std::isinf(out[0]) && out[0] > 0 && std::isinf(out[1]) && out[1] < 0);
    CHECK(out[2] == 0 && !std::signbit(out[2]) && out[3] == 0 && std::signbit(out[3]));
    CHECK(std::isinf(out[4]) && out[5] == 0 && out[6] == 5e-324);
  }
  {
    // Millions of digits before a large exponent: the value still overflows (1e999999),
    // and the mirror case underflows.
    std::string zeros(2000000, '0');
    auto r = Scan("[0." + zeros + "1e3000000, 1" + zeros + "e-3000000]", &out);
    CHECK(r.ok && r.count == 2 && std::isinf(out[0]) && out[1] == 0);
  }
}

void TestRounding() {
  coil_test::Section("rounding, against strtod");
  std::vector<double> out;
  // Random numbers, written with 1..19 significant digits and wide exponents: the
  // value equals strtod's (correctly rounded, as JSON.parse).
  uint64_t state = 88172645463325252ull;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int mismatches = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string number = (next() & 1) ? "-" : "";
    int digits = 1 + static_cast<int>(next() % 19);
    number += static_cast<char>('1' + next() % 9);
    for (int d = 1; d < digits; ++d) number += static_cast<char>('0' + next() % 10);
    if (next() & 1) {
      size_t dot = 1 + next() % number.size();
      if (dot < number.size() && number[dot - 1] != '-') number.insert(dot, ".");
    }
    if (next() & 1) number += "e" + std::to_string(static_cast<int>(next() % 700) - 350);
    auto r = Scan("[" + number + "]", &out);
    double want = std::strtod(number.c_str(), nullptr);
    if (!r.ok || r.count != 1 || std::memcmp(&out[0], &want, sizeof want) != 0) {
      if (mismatches++ < 5) std::fprintf(stderr, "  %s: got %.17g, strtod %.17g\n", number.c_str(), out[0], want);
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

int main() {
  TestSyntax();
  TestRegularity();
  TestLimits();
  TestExtremes();
  TestRounding();
  std::printf("%d passed, %d failed\n", coil_test::g_passed, coil_test::g_failed);
  coil_test::Finish(coil_test::g_failed == 0 ? 0 : 1);
}
