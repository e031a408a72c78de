// Parses a JSON array of numbers (nested arrays of numbers too, flattened) into
// doubles: the tensor data of an Open Inference Protocol JSON request, which is
// nearly all of such a request. JavaScript can do this only by boxing every element
// (JSON.parse) or slowly for numbers past 15 significant digits -- and clients that
// print float32 data as doubles send 17. std::from_chars rounds correctly, as
// JSON.parse does. A codec of the addon (scanJsonNumbers), for the HTTP adapter:
// not part of the engine. Plain C++, so native/test/json_numbers_test.cc runs it
// under the sanitizers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coil::codecs {

struct NumberArrayScan {
  bool ok = false;       // false: not an array of numbers (or malformed, or too deep)
  bool regular = false;  // the nesting is an N-d array: arrays of one level all have one
                         // length, and every number sits at the same depth
  size_t end = 0;        // position after the closing ']'
  size_t count = 0;      // numbers in the array; those past `capacity` were not written
};

// Levels of nesting whose lengths `regular` compares; deeper ones are not compared.
inline constexpr int kRegularityLevels = 32;

// Scans the array that starts at data[position] ('['), writing its numbers in order
// to out[0..capacity). Not ok when anything but numbers, arrays, commas and JSON
// whitespace appears, when the JSON is malformed, or when arrays nest deeper than
// `max_levels`. A count above `capacity` means: scan again with that much room.
// A ragged array ([[1, 2], [3]], [1, [2]]) is ok but not `regular`.
NumberArrayScan ScanJsonNumberArray(const uint8_t* data, size_t size, size_t position, int max_levels, double* out,
                                    size_t capacity);

}  // namespace coil::codecs
