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

struct ConvertContext {
  Napi::Env env;
  Napi::FunctionReference* tensor_class;  // instances of it are tensors
  // Keeps a Node buffer alive until the returned handle is dropped (on any thread).
  std::function<std::shared_ptr<void>(Napi::Value)> retain;
};

// Throws ConvertError.
Value ToValue(const ConvertContext& ctx, Napi::Value js, int depth = 0);

Napi::Value FromValue(Napi::Env env, Value& value, Napi::Function create_tensor);

}  // namespace coil
