#include "json_numbers.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace coil::codecs {

namespace {

bool IsDigit(uint8_t c) { return c >= '0' && c <= '9'; }
bool IsSpace(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Scans one JSON number at data[p]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// Returns the position after it, or 0 when malformed (a number never ends at 0).
size_t ScanNumber(const uint8_t* data, size_t size, size_t p, double* value) {
  const size_t start = p;
  bool negative = false;
  if (p < size && data[p] == '-') {
    negative = true;
    ++p;
  }
  const size_t int_start = p;
  if (p < size && data[p] == '0') {
    ++p;
  } else if (p < size && data[p] >= '1' && data[p] <= '9') {
    while (p < size && IsDigit(data[p])) ++p;
  } else {
    return 0;
  }
  const size_t int_end = p;
  if (p < size && data[p] == '.') {
    ++p;
    if (p >= size || !IsDigit(data[p])) return 0;
    while (p < size && IsDigit(data[p])) ++p;
  }
  long long exponent = 0;
  if (p < size && (data[p] == 'e' || data[p] == 'E')) {
    ++p;
    bool exp_negative = false;
    if (p < size && (data[p] == '+' || data[p] == '-')) {
      exp_negative = data[p] == '-';
      ++p;
    }
    if (p >= size || !IsDigit(data[p])) return 0;
    while (p < size && IsDigit(data[p])) {
      // Saturates far beyond any digit count a body can hold, so the overflow test
      // below stays right however many digits come before the exponent.
      if (exponent < 100000000000000LL) exponent = exponent * 10 + (data[p] - '0');
      ++p;
    }
    if (exp_negative) exponent = -exponent;
  }
  const char* first = reinterpret_cast<const char*>(data + start);
  const char* last = reinterpret_cast<const char*>(data + p);
  std::from_chars_result result = std::from_chars(first, last, *value);
  if (result.ec == std::errc::result_out_of_range) {
    // Too large or too small for a double: JSON.parse gives +-Infinity or +-0. The
    // decimal exponent of the first significant digit tells which: overflow needs
    // about +308, underflow -324. (Rare: worked out only here.)
    long long lead = static_cast<long long>(int_end - int_start);
    if (int_end - int_start == 1 && data[int_start] == '0') {
      lead = 0;
      for (size_t i = int_end + 1; i < p && data[i] == '0'; ++i) --lead;
    }
    bool overflow = lead + exponent > 0;
    double magnitude = overflow ? std::numeric_limits<double>::infinity() : 0.0;
    *value = negative ? -magnitude : magnitude;
  } else if (result.ec != std::errc() || result.ptr != last) {
    return 0;
  }
  return p;
}

}  // namespace

NumberArrayScan ScanJsonNumberArray(const uint8_t* data, size_t size, size_t position, int max_levels, double* out,
                                    size_t capacity) {
  NumberArrayScan scan;
  if (position >= size || data[position] != '[' || max_levels < 1) return scan;
  // Regularity, for the levels 1..kRegularityLevels: the length every array of a level
  // must have (kUnknown until one closes), the elements so far of the open array of
  // each level; and the level numbers sit at (0 until the first number), which must be
  // deeper than every level that has an array among its elements.
  constexpr size_t kUnknown = static_cast<size_t>(-1);
  size_t expected[kRegularityLevels + 1];
  size_t elements[kRegularityLevels + 1];
  for (int i = 0; i <= kRegularityLevels; ++i) expected[i] = kUnknown;
  int leaf_level = 0;
  int deepest_array_element = 0;
  bool regular = true;
  auto count_element = [&](int at_level) {
    if (at_level <= kRegularityLevels) ++elements[at_level];
  };
  auto close_level = [&](int closed) {
    if (closed > kRegularityLevels) return;
    if (expected[closed] == kUnknown) expected[closed] = elements[closed];
    else if (expected[closed] != elements[closed]) regular = false;
  };
  size_t p = position + 1;
  int level = 1;
  elements[1] = 0;
  bool after_open = true;
  size_t count = 0;
  for (;;) {
    // An element: a number, a nested array, or (right after '[') the end of an empty one.
    while (p < size && IsSpace(data[p])) ++p;
    if (p >= size) return scan;
    uint8_t c = data[p];
    if (c == ']' && after_open) {
      ++p;
      close_level(level);
      --level;
    } else if (c == '[') {
      if (level + 1 > max_levels) return scan;
      if (leaf_level != 0 && level >= leaf_level) regular = false;  // an array beside numbers
      if (level > deepest_array_element) deepest_array_element = level;
      count_element(level);
      ++level;
      if (level <= kRegularityLevels) elements[level] = 0;
      ++p;
      after_open = true;
      continue;
    } else if (c == '-' || IsDigit(c)) {
      double value = 0;
      size_t end = ScanNumber(data, size, p, &value);
      if (end == 0) return scan;
      if (count < capacity) out[count] = value;
      ++count;
      if (leaf_level == 0) leaf_level = level;
      else if (leaf_level != level) regular = false;
      if (level <= deepest_array_element) regular = false;  // a number beside arrays
      count_element(level);
      p = end;
    } else {
      return scan;
    }
    // After an element: ',' for the next one, or ']'s closing levels.
    for (;;) {
      if (level == 0) {
        scan.ok = true;
        scan.regular = regular;
        scan.end = p;
        scan.count = count;
        return scan;
      }
      while (p < size && IsSpace(data[p])) ++p;
      if (p >= size) return scan;
      if (data[p] == ',') {
        ++p;
        after_open = false;
        break;
      }
      if (data[p] != ']') return scan;
      ++p;
      close_level(level);
      --level;
    }
  }
}

}  // namespace coil::codecs
