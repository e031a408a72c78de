// A value on its way between Node and Python: built on one thread, consumed on
// another, so it holds no handles of either runtime. Tensor inputs point at
// memory Node owns (kept alive by `keepalive`); tensor outputs own a malloc'd copy.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coil {

// Codes shared with the Python bridge (coil_bridge.DTYPES) and the addon.
enum class DType : int {
  kFloat16 = 0,
  kBFloat16 = 1,
  kFloat32 = 2,
  kFloat64 = 3,
  kInt8 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kUInt8 = 8,
  kBool = 9,
  kUInt16 = 10,
  kUInt32 = 11,
  kUInt64 = 12,
};
constexpr int kDTypeCount = 13;

size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);
bool DTypeFromName(const std::string& name, DType* out);

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

struct TensorValue {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  void* data = nullptr;  // input: Node's memory; output: points into `owned`
  size_t nbytes = 0;
  std::unique_ptr<void, FreeDeleter> owned;  // output bytes, handed to Node without copying
  std::shared_ptr<void> keepalive;           // input: releases Node's buffer when dropped
};

struct Value {
  enum class Kind { kNone, kBool, kInt, kUInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kTensor };

  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;  // ints above INT64_MAX (JS BigInt / Python int)
  double f = 0;
  std::string s;                                   // str (UTF-8) or bytes
  std::vector<Value> items;                        // list, tuple
  std::vector<std::pair<std::string, Value>> dict;  // dict with str keys, in order
  std::unique_ptr<TensorValue> tensor;

  static Value None() { return Value(); }
};

}  // namespace coil
