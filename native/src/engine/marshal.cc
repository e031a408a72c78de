#include "marshal.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace coil {

namespace {

// Deeper nesting than this is refused rather than risking the thread's stack
// (and it stops self-referencing containers).
constexpr int kMaxDepth = 100;

// --- Tensors over DLPack ---------------------------------------------------------
// Where torch has DLPack (torch._C._from_dlpack / _to_dlpack, every torch since 1.x),
// the engine makes input tensors and reads results itself, without the bridge's
// make_tensor and _export_tensor in Python: ~1 us a tensor instead of ~3-4, on every
// call (docs/engine.md, "The crossing in C++"). An input is a DLManagedTensor over
// Node's memory whose deleter -- called by torch when the last tensor using the memory
// is gone, on whichever thread that is -- lets Node's buffer go. A result is read
// from the capsule _to_dlpack makes and copied once, as before.

dlpack::DataType DlpackTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return {dlpack::kFloat, 16, 1};
    case DType::kBFloat16: return {dlpack::kBfloat, 16, 1};
    case DType::kFloat32: return {dlpack::kFloat, 32, 1};
    case DType::kFloat64: return {dlpack::kFloat, 64, 1};
    case DType::kInt8: return {dlpack::kInt, 8, 1};
    case DType::kInt16: return {dlpack::kInt, 16, 1};
    case DType::kInt32: return {dlpack::kInt, 32, 1};
    case DType::kInt64: return {dlpack::kInt, 64, 1};
    case DType::kUInt8: return {dlpack::kUInt, 8, 1};
    case DType::kBool: return {dlpack::kBool, 8, 1};
    case DType::kUInt16: return {dlpack::kUInt, 16, 1};
    case DType::kUInt32: return {dlpack::kUInt, 32, 1};
    case DType::kUInt64: return {dlpack::kUInt, 64, 1};
  }
  return {dlpack::kUInt, 8, 1};
}

bool IsDlpackTypeOf(const dlpack::DataType& got, DType dtype) {
  const dlpack::DataType want = DlpackTypeOf(dtype);
  return got.code == want.code && got.bits == want.bits && got.lanes == want.lanes;
}

// An input tensor lent to torch: the DLPack description and what keeps Node's
// buffer alive, freed together by the deleter.
struct LentTensor {
  dlpack::ManagedTensor managed{};
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  std::shared_ptr<void> keepalive;
};

void ReturnLentTensor(dlpack::ManagedTensor* managed) { delete static_cast<LentTensor*>(managed->manager_ctx); }

// Whether the bytes are exactly the shape's (else make_tensor raises the error).
bool ShapeFits(const TensorValue& t) {
  size_t elements = 1;
  for (int64_t dim : t.shape) {
    if (dim < 0) return false;
    if (__builtin_mul_overflow(elements, static_cast<size_t>(dim), &elements)) return false;
  }
  size_t nbytes = 0;
  return !__builtin_mul_overflow(elements, DTypeSize(t.dtype), &nbytes) && nbytes == t.nbytes;
}

// Zero-byte tensors still need an address.
char g_empty_tensor_data = 0;

}  // namespace

bool Marshal::Attach(PyObject* bridge) {
  bridge_ = bridge;
  tensor_marker_ = api_->PyObject_GetAttrString(bridge, "TENSOR_MARKER");
  make_tensor_ = api_->PyObject_GetAttrString(bridge, "make_tensor");
  export_tensor_ = api_->PyObject_GetAttrString(bridge, "_export_tensor");
  describe_error_ = api_->PyObject_GetAttrString(bridge, "describe_error");
  if (tensor_marker_ && make_tensor_ && export_tensor_ && describe_error_) return true;
  api_->PyErr_Clear();
  return false;
}

PyObject* Marshal::CallWith(PyObject* function, PyObject* arg) {
  PyRef args(api_, api_->PyTuple_New(1));
  if (!args) return nullptr;
  api_->Py_IncRef(arg);
  api_->PyTuple_SetItem(args.get(), 0, arg);
  return api_->PyObject_CallObject(function, args.get());
}

void Marshal::RefreshNativeTensors() {
  if (bridge_ == nullptr) return;
  PyObject* state = api_->PyObject_GetAttrString(bridge_, "NATIVE_TENSORS");
  if (state == nullptr) {
    api_->PyErr_Clear();
    return;
  }
  if (state == native_.state.get()) {
    api_->Py_DecRef(state);
    return;
  }
  native_ = NativeTensors{};
  native_.state = PyRef(api_, state);
  // (torch.Tensor, _from_dlpack, _to_dlpack, dtypes by code, inputs hooked?, outputs hooked?)
  if (state->ob_type != api_->TupleType || api_->PyTuple_Size(state) != 6) return;
  auto item = [&](ssize_t i) {
    PyObject* o = api_->PyTuple_GetItem(state, i);
    return o == api_->None ? nullptr : o;
  };
  PyObject* dtypes = item(3);
  if (item(0) == nullptr || dtypes == nullptr || dtypes->ob_type != api_->TupleType ||
      api_->PyTuple_Size(dtypes) != kDTypeCount) {
    return;
  }
  native_.tensor_type = item(0);
  native_.from_dlpack = item(1);
  native_.to_dlpack = item(2);
  for (int code = 0; code < kDTypeCount; ++code) {
    PyObject* dtype = api_->PyTuple_GetItem(dtypes, code);
    native_.dtypes[static_cast<size_t>(code)] = dtype == api_->None ? nullptr : dtype;
  }
  native_.inputs = api_->PyTuple_GetItem(state, 4) == api_->False;
  native_.outputs = api_->PyTuple_GetItem(state, 5) == api_->False;
  if (native_.from_dlpack != nullptr && native_.to_dlpack != nullptr && native_.from_dlpack != probed_) ProbeDlpack();
}

// Which dtypes this torch takes in over DLPack and gives back as the same dtype: one
// element of each, through _from_dlpack then _to_dlpack (torch 1.13 has no DLPack
// bool, and a refused dtype raises an error whose making costs more than a call).
void Marshal::ProbeDlpack() {
  if (probed_ != nullptr) api_->Py_DecRef(probed_);
  probed_ = native_.from_dlpack;
  api_->Py_IncRef(probed_);
  for (int code = 0; code < kDTypeCount; ++code) {
    const auto dtype = static_cast<DType>(code);
    auto& ok = dlpack_ok_[static_cast<size_t>(code)];
    ok = false;
    if (native_.dtypes[static_cast<size_t>(code)] == nullptr) continue;
    auto keepalive = std::make_shared<uint64_t>(0);  // one element of any dtype
    TensorValue probe;
    probe.dtype = dtype;
    probe.shape = {1};
    probe.data = keepalive.get();
    probe.nbytes = DTypeSize(dtype);
    probe.keepalive = keepalive;
    PyRef tensor(api_, TensorOverDlpack(probe));
    PyRef dtype_of(api_, tensor ? api_->PyObject_GetAttrString(tensor.get(), "dtype") : nullptr);
    if (dtype_of && dtype_of.get() == native_.dtypes[static_cast<size_t>(code)]) {
      PyRef capsule(api_, CallWith(native_.to_dlpack, tensor.get()));
      auto* managed = capsule ? static_cast<dlpack::ManagedTensor*>(api_->PyCapsule_GetPointer(capsule.get(), dlpack::kCapsuleName))
                              : nullptr;
      ok = managed != nullptr && managed->dl_tensor.device.device_type == dlpack::kCpu &&
           IsDlpackTypeOf(managed->dl_tensor.dtype, dtype);
    }
    api_->PyErr_Clear();
  }
}

PyObject* Marshal::TensorOverDlpack(const TensorValue& t) {
  auto* lent = new LentTensor();
  lent->shape = t.shape;
  lent->strides.resize(t.shape.size());
  int64_t stride = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    lent->strides[i] = stride;
    stride *= t.shape[i];
  }
  lent->keepalive = t.keepalive;
  dlpack::Tensor& dl = lent->managed.dl_tensor;
  dl.data = t.nbytes > 0 ? t.data : &g_empty_tensor_data;
  dl.device = {dlpack::kCpu, 0};
  dl.ndim = static_cast<int32_t>(t.shape.size());
  dl.dtype = DlpackTypeOf(t.dtype);
  dl.shape = lent->shape.data();
  dl.strides = lent->strides.data();
  dl.byte_offset = 0;
  lent->managed.manager_ctx = lent;
  lent->managed.deleter = ReturnLentTensor;
  PyRef capsule(api_, api_->PyCapsule_New(&lent->managed, dlpack::kCapsuleName, nullptr));
  if (!capsule) {
    delete lent;
    return nullptr;
  }
  PyObject* tensor = CallWith(native_.from_dlpack, capsule.get());
  // A consumer renames the capsule. Still named: nobody took the memory (the call
  // failed), so it is still ours to give back.
  if (api_->PyCapsule_IsValid(capsule.get(), dlpack::kCapsuleName)) {
    if (tensor != nullptr) {  // a result that did not take the capsule: refuse it
      api_->Py_DecRef(tensor);
      tensor = nullptr;
      api_->PyErr_SetString(api_->ExcTypeError, "torch._C._from_dlpack did not take the tensor");
    }
    ReturnLentTensor(&lent->managed);
  }
  return tensor;
}

// The tensor's dtype code where DLPack carries it (dlpack_ok_), else -1; no exception left set.
int Marshal::DlpackCode(PyObject* tensor) {
  PyRef dtype(api_, api_->PyObject_GetAttrString(tensor, "dtype"));
  if (!dtype) {
    api_->PyErr_Clear();
    return -1;
  }
  for (int code = 0; code < kDTypeCount; ++code) {
    if (dlpack_ok_[static_cast<size_t>(code)] && native_.dtypes[static_cast<size_t>(code)] == dtype.get()) return code;
  }
  return -1;
}

Marshal::CopyResult Marshal::CopyOut(const dlpack::Tensor& dl, DType dtype, Value* out) {
  if (dl.device.device_type != dlpack::kCpu || !IsDlpackTypeOf(dl.dtype, dtype) || dl.ndim < 0 ||
      (dl.ndim > 0 && dl.shape == nullptr)) {
    return CopyResult::kDeclined;
  }
  auto tensor = std::make_unique<TensorValue>();
  tensor->dtype = dtype;
  size_t elements = 1;
  int64_t expected_stride = 1;
  bool compact = true;
  for (int32_t i = dl.ndim; i-- > 0;) {
    const int64_t dim = dl.shape[i];
    if (dim < 0) return CopyResult::kDeclined;
    // Strides of size-1 dimensions are arbitrary; others must be row-major.
    if (dl.strides != nullptr && dim != 1 && dl.strides[i] != expected_stride) compact = false;
    expected_stride *= dim;
    elements *= static_cast<size_t>(dim);
  }
  if (!compact && elements > 0) return CopyResult::kDeclined;  // _export_tensor makes it contiguous
  tensor->shape.assign(dl.shape, dl.shape + dl.ndim);
  tensor->nbytes = elements * DTypeSize(dtype);
  return CopyInto(std::move(tensor), static_cast<const char*>(dl.data) + dl.byte_offset, out) ? CopyResult::kCopied
                                                                                              : CopyResult::kFailed;
}

bool Marshal::CopyInto(std::unique_ptr<TensorValue> tensor, const void* data, Value* out) {
  tensor->owned.reset(std::malloc(tensor->nbytes > 0 ? tensor->nbytes : 1));
  if (!tensor->owned) {
    api_->PyErr_SetString(api_->ExcRuntimeError, "out of memory copying a tensor result");
    return false;
  }
  tensor->data = tensor->owned.get();
  if (tensor->nbytes > 0) std::memcpy(tensor->data, data, tensor->nbytes);
  out->kind = Value::Kind::kTensor;
  out->tensor = std::move(tensor);
  return true;
}

// A torch tensor in a result: read over DLPack where it can be, else the bridge's
// _export_tensor (device hooks, dtypes DLPack lacks, non-contiguous views) gives the
// marker tuple the engine has always read.
bool Marshal::TensorFromPython(PyObject* obj, Value* out, int depth) {
  const int code = native_.outputs && native_.to_dlpack != nullptr ? DlpackCode(obj) : -1;
  if (code >= 0) {
    PyRef capsule(api_, CallWith(native_.to_dlpack, obj));
    auto* managed = capsule ? static_cast<dlpack::ManagedTensor*>(api_->PyCapsule_GetPointer(capsule.get(), dlpack::kCapsuleName))
                            : nullptr;
    if (managed != nullptr) {
      switch (CopyOut(managed->dl_tensor, static_cast<DType>(code), out)) {
        case CopyResult::kCopied: return true;
        case CopyResult::kFailed: return false;
        case CopyResult::kDeclined: break;
      }
    }
    api_->PyErr_Clear();  // the capsule goes with its deleter; _export_tensor says what is wrong, if anything
  }
  PyRef exported(api_, CallWith(export_tensor_, obj));
  if (!exported) return false;
  if (exported.get()->ob_type != api_->TupleType || api_->PyTuple_Size(exported.get()) != 6 ||
      api_->PyTuple_GetItem(exported.get(), 0) != tensor_marker_) {
    api_->PyErr_SetString(api_->ExcTypeError, "_export_tensor must return a marker tuple");
    return false;
  }
  return FromPython(exported.get(), out, depth + 1);
}

PyObject* Marshal::ToPython(const Value& value, InputViews* views, int depth) {
  if (depth > kMaxDepth) {
    api_->PyErr_SetString(api_->ExcTypeError, "argument nested too deeply");
    return nullptr;
  }
  switch (value.kind) {
    case Value::Kind::kNone:
      api_->Py_IncRef(api_->None);
      return api_->None;
    case Value::Kind::kBool:
      return api_->PyBool_FromLong(value.b ? 1 : 0);
    case Value::Kind::kInt:
      return api_->PyLong_FromLongLong(value.i);
    case Value::Kind::kUInt:
      return api_->PyLong_FromUnsignedLongLong(value.u);
    case Value::Kind::kFloat:
      return api_->PyFloat_FromDouble(value.f);
    case Value::Kind::kStr:
      return api_->PyUnicode_FromStringAndSize(value.s.data(), static_cast<ssize_t>(value.s.size()));
    case Value::Kind::kBytes:
      return api_->PyBytes_FromStringAndSize(value.s.data(), static_cast<ssize_t>(value.s.size()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      bool list = value.kind == Value::Kind::kList;
      auto n = static_cast<ssize_t>(value.items.size());
      PyRef out(api_, list ? api_->PyList_New(n) : api_->PyTuple_New(n));
      for (ssize_t i = 0; out && i < n; ++i) {
        PyObject* item = ToPython(value.items[static_cast<size_t>(i)], views, depth + 1);
        if (item == nullptr) return nullptr;
        (list ? api_->PyList_SetItem : api_->PyTuple_SetItem)(out.get(), i, item);
      }
      return out.release();
    }
    case Value::Kind::kDict: {
      PyRef out(api_, api_->PyDict_New());
      for (const auto& entry : value.dict) {
        PyRef key(api_, api_->PyUnicode_FromStringAndSize(entry.first.data(), static_cast<ssize_t>(entry.first.size())));
        PyRef item(api_, ToPython(entry.second, views, depth + 1));
        if (!key || !item || api_->PyDict_SetItem(out.get(), key.get(), item.get()) != 0) return nullptr;
      }
      return out.release();
    }
    case Value::Kind::kTensor: {
      const TensorValue& t = *value.tensor;
      if (native_.inputs && native_.from_dlpack != nullptr && dlpack_ok_[static_cast<size_t>(t.dtype)] &&
          ShapeFits(t)) {
        return TensorOverDlpack(t);
      }
      // A view of Node's memory, no copy: make_tensor(code, shape, address, nbytes)
      // returns (tensor, owner of the memory view).
      PyRef shape(api_, api_->PyTuple_New(static_cast<ssize_t>(t.shape.size())));
      for (size_t i = 0; i < t.shape.size(); ++i) {
        api_->PyTuple_SetItem(shape.get(), static_cast<ssize_t>(i), api_->PyLong_FromLongLong(t.shape[i]));
      }
      PyRef args(api_, api_->PyTuple_New(4));
      api_->PyTuple_SetItem(args.get(), 0, api_->PyLong_FromLongLong(static_cast<int>(t.dtype)));
      api_->PyTuple_SetItem(args.get(), 1, shape.release());
      static char empty = 0;  // ctypes wants an address even for zero bytes
      void* address = t.nbytes > 0 ? t.data : &empty;
      api_->PyTuple_SetItem(args.get(), 2, api_->PyLong_FromUnsignedLongLong(reinterpret_cast<uintptr_t>(address)));
      api_->PyTuple_SetItem(args.get(), 3, api_->PyLong_FromUnsignedLongLong(t.nbytes));
      PyRef made(api_, api_->PyObject_CallObject(make_tensor_, args.get()));
      if (!made) return nullptr;
      if (made.get()->ob_type != api_->TupleType || api_->PyTuple_Size(made.get()) != 2) {
        api_->PyErr_SetString(api_->ExcTypeError, "make_tensor must return (tensor, owner)");
        return nullptr;
      }
      PyObject* tensor = api_->PyTuple_GetItem(made.get(), 0);
      PyObject* owner = api_->PyTuple_GetItem(made.get(), 1);
      api_->Py_IncRef(owner);
      views->push_back(InputView{owner, t.keepalive});
      api_->Py_IncRef(tensor);
      return tensor;
    }
  }
  api_->PyErr_SetString(api_->ExcTypeError, "unknown value kind");
  return nullptr;
}

bool Marshal::FromPython(PyObject* obj, Value* out, int depth) {
  if (depth > kMaxDepth) {
    api_->PyErr_SetString(api_->ExcTypeError, "result nested too deeply (or refers to itself)");
    return false;
  }
  void* type = obj->ob_type;
  if (obj == api_->None) {
    out->kind = Value::Kind::kNone;
  } else if (type == api_->BoolType) {
    out->kind = Value::Kind::kBool;
    out->b = obj == api_->True;
  } else if (type == api_->LongType) {
    int overflow = 0;
    long long v = api_->PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow == 0) {
      out->kind = Value::Kind::kInt;
      out->i = v;
    } else {
      unsigned long long u = overflow > 0 ? api_->PyLong_AsUnsignedLongLong(obj) : 0;
      if (overflow < 0 || api_->PyErr_Occurred() != nullptr) {
        api_->PyErr_Clear();
        api_->PyErr_SetString(api_->ExcTypeError, "int outside the 64-bit range cannot be returned to Node");
        return false;
      }
      out->kind = Value::Kind::kUInt;
      out->u = u;
    }
  } else if (type == api_->FloatType) {
    out->kind = Value::Kind::kFloat;
    out->f = api_->PyFloat_AsDouble(obj);
  } else if (type == api_->UnicodeType) {
    ssize_t size = 0;
    const char* utf8 = api_->PyUnicode_AsUTF8AndSize(obj, &size);
    if (utf8 == nullptr) return false;
    out->kind = Value::Kind::kStr;
    out->s.assign(utf8, static_cast<size_t>(size));
  } else if (type == api_->BytesType) {
    char* data = nullptr;
    ssize_t size = 0;
    if (api_->PyBytes_AsStringAndSize(obj, &data, &size) != 0) return false;
    out->kind = Value::Kind::kBytes;
    out->s.assign(data, static_cast<size_t>(size));
  } else if (type == api_->TupleType && api_->PyTuple_Size(obj) == 6 && api_->PyTuple_GetItem(obj, 0) == tensor_marker_) {
    // (TENSOR_MARKER, dtype code, shape, data address, nbytes, tensor): the one copy out.
    Value code, shape, address, nbytes;
    if (!FromPython(api_->PyTuple_GetItem(obj, 1), &code, depth + 1) ||
        !FromPython(api_->PyTuple_GetItem(obj, 2), &shape, depth + 1) ||
        !FromPython(api_->PyTuple_GetItem(obj, 3), &address, depth + 1) ||
        !FromPython(api_->PyTuple_GetItem(obj, 4), &nbytes, depth + 1)) {
      return false;
    }
    auto tensor = std::make_unique<TensorValue>();
    if (code.kind != Value::Kind::kInt || code.i < 0 || code.i >= kDTypeCount) {
      api_->PyErr_SetString(api_->ExcTypeError, "bridge produced an unknown dtype code");
      return false;
    }
    tensor->dtype = static_cast<DType>(code.i);
    size_t expected = DTypeSize(tensor->dtype);
    for (const Value& dim : shape.items) {
      if (dim.kind != Value::Kind::kInt || dim.i < 0) {
        api_->PyErr_SetString(api_->ExcTypeError, "bridge produced a bad shape");
        return false;
      }
      tensor->shape.push_back(dim.i);
      expected *= static_cast<size_t>(dim.i);
    }
    tensor->nbytes = static_cast<size_t>(nbytes.i);
    if (tensor->nbytes != expected) {
      api_->PyErr_SetString(api_->ExcTypeError, "bridge produced a tensor whose size does not match its shape");
      return false;
    }
    if (!CopyInto(std::move(tensor), reinterpret_cast<const void*>(static_cast<uintptr_t>(address.i)), out)) {
      return false;
    }
  } else if (type == api_->ListType || type == api_->TupleType) {
    bool list = type == api_->ListType;
    ssize_t n = list ? api_->PyList_Size(obj) : api_->PyTuple_Size(obj);
    out->kind = list ? Value::Kind::kList : Value::Kind::kTuple;
    out->items.resize(static_cast<size_t>(n));
    for (ssize_t i = 0; i < n; ++i) {
      PyObject* item = list ? api_->PyList_GetItem(obj, i) : api_->PyTuple_GetItem(obj, i);
      if (!FromPython(item, &out->items[static_cast<size_t>(i)], depth + 1)) return false;
    }
  } else if (type == api_->DictType) {
    out->kind = Value::Kind::kDict;
    ssize_t pos = 0;
    PyObject *key = nullptr, *item = nullptr;
    while (api_->PyDict_Next(obj, &pos, &key, &item)) {
      if (key->ob_type != api_->UnicodeType) {
        api_->PyErr_SetString(api_->ExcTypeError, "dict keys returned to Node must be str");
        return false;
      }
      ssize_t size = 0;
      const char* utf8 = api_->PyUnicode_AsUTF8AndSize(key, &size);
      if (utf8 == nullptr) return false;
      out->dict.emplace_back(std::string(utf8, static_cast<size_t>(size)), Value());
      if (!FromPython(item, &out->dict.back().second, depth + 1)) return false;
    }
  } else if (native_.tensor_type != nullptr &&
             (type == native_.tensor_type || api_->PyType_IsSubtype(type, native_.tensor_type))) {
    return TensorFromPython(obj, out, depth);
  } else {
    api_->PyErr_SetString(api_->ExcTypeError,
                         "cannot return this Python object to Node (the bridge exports tensors, numbers, "
                         "str, bytes, None, lists, tuples and dicts)");
    return false;
  }
  return true;
}

void Marshal::ReleaseInputs(InputViews* views) {
  auto sweep = [this](InputViews* list, InputViews* keep) {
    for (InputView& view : *list) {
      if (view.owner->ob_refcnt > 1) {
        keep->push_back(std::move(view));
      } else {
        api_->Py_DecRef(view.owner);
      }
    }
    list->clear();
  };
  InputViews still;
  sweep(&lingering_, &still);
  sweep(views, &still);
  lingering_.swap(still);
}

bool Marshal::TakeError(JobError* error) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  api_->PyErr_Fetch(&type, &value, &tb);
  if (type == nullptr) {
    *error = JobError{"INTERNAL", "a Python call failed without setting an exception", "", ""};
    return false;
  }
  api_->PyErr_NormalizeException(&type, &value, &tb);
  PyRef t(api_, type), v(api_, value), trace(api_, tb);
  error->code = "PYTHON_ERROR";
  // describe_error(exc, tb) -> (type name, message, formatted traceback, interrupted?)
  PyRef described;
  if (describe_error_ != nullptr) {
    PyRef args(api_, api_->PyTuple_New(2));
    PyObject* exc = v ? v.get() : api_->None;
    PyObject* tbo = trace ? trace.get() : api_->None;
    api_->Py_IncRef(exc);
    api_->Py_IncRef(tbo);
    api_->PyTuple_SetItem(args.get(), 0, exc);
    api_->PyTuple_SetItem(args.get(), 1, tbo);
    described = PyRef(api_, api_->PyObject_CallObject(describe_error_, args.get()));
  }
  Value info;
  if (described && FromPython(described.get(), &info) && info.kind == Value::Kind::kTuple && info.items.size() == 4) {
    error->python_type = info.items[0].s;
    error->message = info.items[1].s;
    error->traceback = info.items[2].s;
    return info.items[3].b;
  }
  api_->PyErr_Clear();
  PyRef text(api_, v ? api_->PyObject_Str(v.get()) : nullptr);
  ssize_t size = 0;
  const char* utf8 = text ? api_->PyUnicode_AsUTF8AndSize(text.get(), &size) : nullptr;
  error->message = utf8 != nullptr ? std::string(utf8, static_cast<size_t>(size)) : "unprintable Python exception";
  api_->PyErr_Clear();
  return false;
}

}  // namespace coil
