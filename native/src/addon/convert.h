// JavaScript <-> engine values, on Node's main thread.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "../engine/job.h"
#include "../engine/value.h"

namespace coil {

// Thrown (as a JS CoilError) when an argument cannot cross to Python.
struct ConvertError {
  std::string code;
  std::string message;
};

// configure's tensorClass, and what reading its instances takes.
struct TensorClass {
  Napi::FunctionReference constructor;  // instances of it are tensors
  Napi::ObjectReference prototype;      // a tensor's, unless it is of a subclass
  Napi::Reference<Napi::Array> keys;    // "dtype", "shape", "data": made once, not for each read

  void Set(Napi::Function tensor_class);
  bool IsEmpty() const { return constructor.IsEmpty(); }
};

struct ConvertContext {
  Napi::Env env;
  const TensorClass* tensors;
  // Keeps a Node buffer alive until the returned handle is dropped (on any thread).
  std::function<std::shared_ptr<void>(Napi::Value)> retain;
  // The keys, taken from tensors->keys at the first tensor of a conversion.
  mutable napi_value keys[3] = {nullptr, nullptr, nullptr};
};

// Throws ConvertError.
Value ToValue(const ConvertContext& ctx, Napi::Value js, int depth = 0);

// The result as JavaScript values, built by `decode` (the addon's configure hook
// decodeResult; packages/native/src/result-decoder.ts) from the encoding above FromValue.
Napi::Value FromValue(Napi::Env env, Value& value, Napi::Function decode);

// The dtypes' names, indexed by DType: how decodeResult reads a tensor's dtype code.
Napi::Array DTypeNames(Napi::Env env);

}  // namespace coil
