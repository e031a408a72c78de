#include "value.h"

namespace coil {

namespace {
struct DTypeInfo {
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[kDTypeCount] = {
    {"float16", 2}, {"bfloat16", 2}, {"float32", 4}, {"float64", 8}, {"int8", 1},
    {"int16", 2},   {"int32", 4},    {"int64", 8},   {"uint8", 1},   {"bool", 1},
    {"uint16", 2},  {"uint32", 4},   {"uint64", 8},
};
}  // namespace

size_t DTypeSize(DType dtype) { return kDTypes[static_cast<int>(dtype)].size; }
const char* DTypeName(DType dtype) { return kDTypes[static_cast<int>(dtype)].name; }

bool DTypeFromName(const std::string& name, DType* out) {
  for (int i = 0; i < kDTypeCount; ++i) {
    if (name == kDTypes[i].name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

}  // namespace coil
