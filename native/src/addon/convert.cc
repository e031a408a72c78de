#include "convert.h"

#include <cmath>
#include <cstring>

namespace coil {

namespace {

constexpr int kMaxDepth = 100;
// Results up to this size are copied into memory V8 allocates; larger ones are handed
// over as they are. N-API wraps handed-over memory as an external buffer with a
// finalizer (on Node 20 a node::Buffer, a weak reference and a private property each):
// for a small tensor that costs more than the copy (docs/engine.md, "Node's share").
constexpr size_t kCopyResultsUpTo = 16 * 1024;
constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

[[noreturn]] void Throw(const std::string& code, const std::string& message) {
  throw ConvertError{code, message};
}

napi_typedarray_type TypedArrayFor(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
    case DType::kBFloat16:
      return napi_uint16_array;  // raw bits: Node 20 has no Float16Array
    case DType::kFloat32:
      return napi_float32_array;
    case DType::kFloat64:
      return napi_float64_array;
    case DType::kInt8:
      return napi_int8_array;
    case DType::kInt16:
      return napi_int16_array;
    case DType::kInt32:
      return napi_int32_array;
    case DType::kInt64:
      return napi_bigint64_array;
    case DType::kUInt8:
    case DType::kBool:
      return napi_uint8_array;
    case DType::kUInt16:
      return napi_uint16_array;
    case DType::kUInt32:
      return napi_uint32_array;
    case DType::kUInt64:
      return napi_biguint64_array;
  }
  return napi_uint8_array;
}

// A dtype's name, read into a buffer on the stack (every name fits: no allocation).
bool DTypeOf(Napi::Env env, Napi::Value name, DType* out) {
  if (!name.IsString()) return false;
  char text[16];
  size_t length = 0;
  if (napi_get_value_string_utf8(env, name, text, sizeof(text), &length) != napi_ok) return false;
  return length < sizeof(text) - 1 && DTypeFromName(std::string(text, length), out);
}

Value TensorToValue(const ConvertContext& ctx, Napi::Object obj) {
  Napi::Value dtype_js = obj.Get("dtype");
  Napi::Value shape_js = obj.Get("shape");
  Napi::Value data_js = obj.Get("data");
  DType dtype;
  if (!DTypeOf(ctx.env, dtype_js, &dtype)) {
    Throw("UNSUPPORTED_DTYPE", "tensor dtype must be one of float16, bfloat16, float32, float64, int8, int16, "
                               "int32, int64, uint8, uint16, uint32, uint64, bool");
  }
  if (!shape_js.IsArray()) Throw("INVALID_ARGUMENT", "tensor shape must be an array of non-negative integers");
  if (!data_js.IsTypedArray()) Throw("INVALID_ARGUMENT", "tensor data must be a TypedArray");
  auto tensor = std::make_unique<TensorValue>();
  tensor->dtype = dtype;
  Napi::Array shape = shape_js.As<Napi::Array>();
  double elements = 1;
  for (uint32_t i = 0; i < shape.Length(); ++i) {
    Napi::Value dim = shape.Get(i);
    double d = dim.IsNumber() ? dim.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > kMaxSafeInteger) {
      Throw("INVALID_ARGUMENT", "tensor shape must be an array of non-negative integers");
    }
    tensor->shape.push_back(static_cast<int64_t>(d));
    elements *= d;
  }
  Napi::TypedArray data = data_js.As<Napi::TypedArray>();
  size_t byte_length = data.ByteLength();
  double expected = elements * static_cast<double>(DTypeSize(dtype));
  if (expected != static_cast<double>(byte_length)) {
    Throw("SHAPE_MISMATCH", "tensor of dtype " + std::string(DTypeName(dtype)) + " and " +
                                std::to_string(static_cast<uint64_t>(elements)) + " elements needs " +
                                std::to_string(static_cast<uint64_t>(expected)) + " bytes, its data has " +
                                std::to_string(byte_length));
  }
  tensor->nbytes = byte_length;
  tensor->data = static_cast<uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  tensor->keepalive = ctx.retain(data);
  Value out;
  out.kind = Value::Kind::kTensor;
  out.tensor = std::move(tensor);
  return out;
}

}  // namespace

Value ToValue(const ConvertContext& ctx, Napi::Value js, int depth) {
  if (depth > kMaxDepth) Throw("INVALID_ARGUMENT", "argument nested too deeply (or refers to itself)");
  Value out;
  switch (js.Type()) {
    case napi_undefined:
    case napi_null:
      return out;
    case napi_boolean:
      out.kind = Value::Kind::kBool;
      out.b = js.As<Napi::Boolean>().Value();
      return out;
    case napi_number: {
      double d = js.As<Napi::Number>().DoubleValue();
      if (d == std::floor(d) && std::fabs(d) <= kMaxSafeInteger && !(d == 0 && std::signbit(d))) {
        out.kind = Value::Kind::kInt;
        out.i = static_cast<int64_t>(d);
      } else {
        out.kind = Value::Kind::kFloat;
        out.f = d;
      }
      return out;
    }
    case napi_bigint: {
      bool lossless = false;
      int64_t i = js.As<Napi::BigInt>().Int64Value(&lossless);
      if (lossless) {
        out.kind = Value::Kind::kInt;
        out.i = i;
        return out;
      }
      uint64_t u = js.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) Throw("INVALID_ARGUMENT", "BigInt outside the 64-bit range cannot cross to Python");
      out.kind = Value::Kind::kUInt;
      out.u = u;
      return out;
    }
    case napi_string:
      out.kind = Value::Kind::kStr;
      out.s = js.As<Napi::String>().Utf8Value();
      return out;
    case napi_object: {
      if (js.IsArray()) {
        Napi::Array array = js.As<Napi::Array>();
        out.kind = Value::Kind::kList;
        out.items.reserve(array.Length());
        for (uint32_t i = 0; i < array.Length(); ++i) out.items.push_back(ToValue(ctx, array.Get(i), depth + 1));
        return out;
      }
      if (js.IsTypedArray() || js.IsDataView() || js.IsArrayBuffer()) {
        if (js.IsTypedArray() && js.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
          Napi::TypedArray bytes = js.As<Napi::TypedArray>();
          out.kind = Value::Kind::kBytes;
          out.s.assign(static_cast<const char*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset(), bytes.ByteLength());
          return out;
        }
        Throw("INVALID_ARGUMENT", "pass bytes as a Buffer or Uint8Array, and numeric arrays as a Tensor");
      }
      Napi::Object obj = js.As<Napi::Object>();
      if (!ctx.tensor_class->IsEmpty() && obj.InstanceOf(ctx.tensor_class->Value())) return TensorToValue(ctx, obj);
      out.kind = Value::Kind::kDict;
      Napi::Array keys = obj.GetPropertyNames();
      out.dict.reserve(keys.Length());
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        Napi::Value key = keys.Get(i);
        std::string name = key.ToString().Utf8Value();
        out.dict.emplace_back(name, ToValue(ctx, obj.Get(key), depth + 1));
      }
      return out;
    }
    default:
      Throw("INVALID_ARGUMENT", "functions and symbols cannot cross to Python");
  }
}

Napi::Value FromValue(Napi::Env env, Value& value, Napi::Function create_tensor) {
  switch (value.kind) {
    case Value::Kind::kNone:
      return env.Null();
    case Value::Kind::kBool:
      return Napi::Boolean::New(env, value.b);
    case Value::Kind::kInt:
      if (value.i >= -9007199254740991LL && value.i <= 9007199254740991LL) {
        return Napi::Number::New(env, static_cast<double>(value.i));
      }
      return Napi::BigInt::New(env, value.i);
    case Value::Kind::kUInt:
      return Napi::BigInt::New(env, value.u);
    case Value::Kind::kFloat:
      return Napi::Number::New(env, value.f);
    case Value::Kind::kStr:
      return Napi::String::New(env, value.s);
    case Value::Kind::kBytes:
      return Napi::Buffer<char>::Copy(env, value.s.data(), value.s.size());
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      Napi::Array array = Napi::Array::New(env, value.items.size());
      for (size_t i = 0; i < value.items.size(); ++i) {
        array.Set(static_cast<uint32_t>(i), FromValue(env, value.items[i], create_tensor));
      }
      return array;
    }
    case Value::Kind::kDict: {
      // Defined, not assigned: a key named "__proto__" must not reach the setter.
      Napi::Object obj = Napi::Object::New(env);
      for (auto& entry : value.dict) {
        obj.DefineProperty(Napi::PropertyDescriptor::Value(
            Napi::String::New(env, entry.first), FromValue(env, entry.second, create_tensor), napi_default_jsproperty));
      }
      return obj;
    }
    case Value::Kind::kTensor: {
      TensorValue& t = *value.tensor;
      Napi::ArrayBuffer buffer;
      if (t.nbytes <= kCopyResultsUpTo) {
        buffer = Napi::ArrayBuffer::New(env, t.nbytes);
        if (t.nbytes > 0) std::memcpy(buffer.Data(), t.owned.get(), t.nbytes);
        t.owned.reset();
      } else {
        // The engine's single copy becomes Node's memory as it is.
        void* data = t.owned.release();
        buffer = Napi::ArrayBuffer::New(env, data, t.nbytes, [](Napi::Env, void* p) { std::free(p); });
      }
      size_t length = t.nbytes / DTypeSize(t.dtype);
      napi_value typed = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, TypedArrayFor(t.dtype), length, buffer, 0, &typed),
                           Napi::Value());
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (size_t i = 0; i < t.shape.size(); ++i) {
        shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.shape[i])));
      }
      return create_tensor.Call({Napi::String::New(env, DTypeName(t.dtype)), shape, typed});
    }
  }
  return env.Undefined();
}

}  // namespace coil
