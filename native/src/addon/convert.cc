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

bool IsTensor(const ConvertContext& ctx, Napi::Object obj) {
  if (ctx.tensors->IsEmpty()) return false;
  // Comparing prototypes is a fraction of what instanceof costs through N-API (it
  // looks up Symbol.hasInstance); instanceof still decides for anything else.
  napi_value prototype = nullptr;
  bool same = false;
  if (napi_get_prototype(ctx.env, obj, &prototype) == napi_ok &&
      napi_strict_equals(ctx.env, prototype, ctx.tensors->prototype.Value(), &same) == napi_ok && same) {
    return true;
  }
  return obj.InstanceOf(ctx.tensors->constructor.Value());
}

Value TensorToValue(const ConvertContext& ctx, Napi::Object obj) {
  if (ctx.keys[0] == nullptr) {
    Napi::Array keys = ctx.tensors->keys.Value();
    for (uint32_t i = 0; i < 3; ++i) ctx.keys[i] = keys.Get(i);
  }
  Napi::Value dtype_js = obj.Get(ctx.keys[0]);
  Napi::Value shape_js = obj.Get(ctx.keys[1]);
  Napi::Value data_js = obj.Get(ctx.keys[2]);
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

void TensorClass::Set(Napi::Function tensor_class) {
  constructor = Napi::Persistent(tensor_class);
  prototype = Napi::Persistent(tensor_class.Get("prototype").As<Napi::Object>());
  Napi::Env env = tensor_class.Env();
  Napi::Array names = Napi::Array::New(env, 3);
  names.Set(0u, "dtype");
  names.Set(1u, "shape");
  names.Set(2u, "data");
  keys = Napi::Persistent(names);
}

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
      if (IsTensor(ctx, obj)) return TensorToValue(ctx, obj);
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

namespace {

// A result crosses to JavaScript in one call of the decoder (packages/native/src/
// result-decoder.ts): each N-API call is a crossing of its own, and building a dict of
// tensors value by value took ~25 of them (docs/engine.md, "Results built in one
// JavaScript call"). The tree goes as a program, a letter a node in prefix order, and
// the values the nodes need, in order, as the call's arguments.
class ResultEncoder {
 public:
  explicit ResultEncoder(Napi::Env env) : env_(env) {}

  void Add(Value& value) {
    switch (value.kind) {
      case Value::Kind::kNone:
        program_ += 'n';
        return;
      case Value::Kind::kBool:
        Leaf(Napi::Boolean::New(env_, value.b));
        return;
      case Value::Kind::kInt:
        if (value.i >= -9007199254740991LL && value.i <= 9007199254740991LL) {
          Leaf(Napi::Number::New(env_, static_cast<double>(value.i)));
        } else {
          Leaf(Napi::BigInt::New(env_, value.i));
        }
        return;
      case Value::Kind::kUInt:
        Leaf(Napi::BigInt::New(env_, value.u));
        return;
      case Value::Kind::kFloat:
        Leaf(Napi::Number::New(env_, value.f));
        return;
      case Value::Kind::kStr:
        Leaf(Napi::String::New(env_, value.s));
        return;
      case Value::Kind::kBytes:
        Leaf(Napi::Buffer<char>::Copy(env_, value.s.data(), value.s.size()));
        return;
      case Value::Kind::kList:
      case Value::Kind::kTuple:
        program_ += 'l';
        Count(value.items.size());
        for (auto& item : value.items) Add(item);
        return;
      case Value::Kind::kDict:
        program_ += 'd';
        Count(value.dict.size());
        for (auto& entry : value.dict) {
          args_.push_back(Napi::String::New(env_, entry.first));
          Add(entry.second);
        }
        return;
      case Value::Kind::kTensor:
        AddTensor(*value.tensor);
        return;
    }
  }

  // decode(program, packed, ...spread): the arguments spread where they are few, else
  // in one array (a call's arguments live on the stack).
  Napi::Value Call(Napi::Function decode) {
    constexpr size_t kMaxSpread = 256;
    std::vector<napi_value> argv;
    argv.reserve(2 + (args_.size() <= kMaxSpread ? args_.size() : 0));
    argv.push_back(Napi::String::New(env_, program_));  // ASCII letters only
    if (args_.size() <= kMaxSpread) {
      argv.push_back(env_.Null());
      argv.insert(argv.end(), args_.begin(), args_.end());
    } else {
      Napi::Array packed = Napi::Array::New(env_, args_.size());
      for (size_t i = 0; i < args_.size(); ++i) packed.Set(static_cast<uint32_t>(i), args_[i]);
      argv.push_back(packed);
    }
    return decode.Call(argv);
  }

 private:
  void Leaf(napi_value value) {
    program_ += 'v';
    args_.push_back(value);
  }

  void Count(size_t n) { args_.push_back(Napi::Number::New(env_, static_cast<double>(n))); }

  // 't': the dtype's code, the data, the number of dimensions, then each.
  void AddTensor(TensorValue& t) {
    Napi::ArrayBuffer buffer;
    if (t.nbytes <= kCopyResultsUpTo) {
      buffer = Napi::ArrayBuffer::New(env_, t.nbytes);
      if (t.nbytes > 0) std::memcpy(buffer.Data(), t.owned.get(), t.nbytes);
      t.owned.reset();
    } else {
      // The engine's single copy becomes Node's memory as it is.
      void* data = t.owned.release();
      buffer = Napi::ArrayBuffer::New(env_, data, t.nbytes, [](Napi::Env, void* p) { std::free(p); });
    }
    size_t length = t.nbytes / DTypeSize(t.dtype);
    napi_value typed = nullptr;
    if (napi_create_typedarray(env_, TypedArrayFor(t.dtype), length, buffer, 0, &typed) != napi_ok) {
      throw Napi::Error::New(env_);
    }
    program_ += 't';
    args_.push_back(Napi::Number::New(env_, static_cast<int>(t.dtype)));
    args_.push_back(typed);
    Count(t.shape.size());
    for (int64_t d : t.shape) args_.push_back(Napi::Number::New(env_, static_cast<double>(d)));
  }

  Napi::Env env_;
  std::string program_;
  std::vector<napi_value> args_;
};

}  // namespace

Napi::Value FromValue(Napi::Env env, Value& value, Napi::Function decode) {
  ResultEncoder encoder(env);
  encoder.Add(value);
  return encoder.Call(decode);
}

Napi::Array DTypeNames(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, kDTypeCount);
  for (int i = 0; i < kDTypeCount; ++i) names.Set(static_cast<uint32_t>(i), DTypeName(static_cast<DType>(i)));
  return names;
}

}  // namespace coil
