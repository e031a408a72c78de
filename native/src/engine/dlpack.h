// The DLPack structures the engine exchanges with torch (torch._C._from_dlpack and
// _to_dlpack): the unversioned ABI, a "dltensor" PyCapsule around a DLManagedTensor,
// which every torch since 1.x and numpy since 1.22 speak. Declared here from the
// published layout (dmlc/dlpack, dlpack.h v0.8) rather than vendored: only these
// fields are used.
#pragma once

#include <cstdint>

namespace coil::dlpack {

constexpr int32_t kCpu = 1;  // DLDeviceType kDLCPU

// DLDataTypeCode
constexpr uint8_t kInt = 0;
constexpr uint8_t kUInt = 1;
constexpr uint8_t kFloat = 2;
constexpr uint8_t kBfloat = 4;
constexpr uint8_t kBool = 6;

struct Device {
  int32_t device_type;
  int32_t device_id;
};

struct DataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct Tensor {
  void* data;
  Device device;
  int32_t ndim;
  DataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means compact row-major
  uint64_t byte_offset;
};

struct ManagedTensor {
  Tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};

// The capsule's name while unconsumed; a consumer renames it "used_dltensor".
constexpr const char* kCapsuleName = "dltensor";

}  // namespace coil::dlpack
