#include "marshal.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace coil {

namespace {

// Deeper nesting than this is refused rather than risking the thread's stack
// (and it stops self-referencing containers).
constexpr int kMaxDepth = 100;

}  // namespace

bool Marshal::Attach(PyObject* bridge) {
  tensor_marker_ = api_->PyObject_GetAttrString(bridge, "TENSOR_MARKER");
  make_tensor_ = api_->PyObject_GetAttrString(bridge, "make_tensor");
  describe_error_ = api_->PyObject_GetAttrString(bridge, "describe_error");
  if (tensor_marker_ && make_tensor_ && describe_error_) return true;
  api_->PyErr_Clear();
  return false;
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
    tensor->owned.reset(std::malloc(tensor->nbytes > 0 ? tensor->nbytes : 1));
    if (!tensor->owned) {
      api_->PyErr_SetString(api_->ExcRuntimeError, "out of memory copying a tensor result");
      return false;
    }
    tensor->data = tensor->owned.get();
    if (tensor->nbytes > 0) {
      std::memcpy(tensor->data, reinterpret_cast<const void*>(static_cast<uintptr_t>(address.i)), tensor->nbytes);
    }
    out->kind = Value::Kind::kTensor;
    out->tensor = std::move(tensor);
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
