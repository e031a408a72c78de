// The slice of the CPython C API the engine uses, resolved with dlsym from one
// libpython loaded into its own link-map namespace. Nothing is linked at build
// time, so one binary serves any CPython >= 3.8 built with a shared libpython.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <wchar.h>

namespace coil {

// Opaque CPython types; only their addresses cross this boundary.
struct PyObject {
  ssize_t ob_refcnt;  // layout shared by all non-free-threaded CPython 3.x builds
  void* ob_type;
};
struct PyThreadState;

constexpr int kPyFileInput = 257;    // Py_file_input

struct PythonApi {
  // Lifecycle and threads.
  void (*Py_InitializeEx)(int);
  void (*Py_SetProgramName)(const wchar_t*);  // optional: removed in 3.13
  wchar_t* (*Py_DecodeLocale)(const char*, size_t*);
  const char* (*Py_GetVersion)();
  PyThreadState* (*PyEval_SaveThread)();
  void (*PyEval_RestoreThread)(PyThreadState*);
  int (*PyThreadState_SetAsyncExc)(unsigned long, PyObject*);
  unsigned long (*PyThread_get_thread_ident)();

  // Objects.
  void (*Py_IncRef)(PyObject*);
  void (*Py_DecRef)(PyObject*);
  PyObject* (*PyObject_GetAttrString)(PyObject*, const char*);
  int (*PyObject_SetAttrString)(PyObject*, const char*, PyObject*);
  PyObject* (*PyObject_CallObject)(PyObject*, PyObject*);
  PyObject* (*PyObject_Str)(PyObject*);
  PyObject* (*Py_CompileString)(const char*, const char*, int);
  PyObject* (*PyEval_EvalCode)(PyObject*, PyObject*, PyObject*);
  PyObject* (*PyEval_GetBuiltins)();
  int (*PyType_IsSubtype)(void*, void*);
  PyObject* (*PyCapsule_New)(void*, const char*, void (*)(PyObject*));
  void* (*PyCapsule_GetPointer)(PyObject*, const char*);
  int (*PyCapsule_IsValid)(PyObject*, const char*);

  // Errors.
  PyObject* (*PyErr_Occurred)();
  void (*PyErr_Fetch)(PyObject**, PyObject**, PyObject**);
  void (*PyErr_NormalizeException)(PyObject**, PyObject**, PyObject**);
  void (*PyErr_Restore)(PyObject*, PyObject*, PyObject*);
  void (*PyErr_SetString)(PyObject*, const char*);
  void (*PyErr_Clear)();

  // Scalars, strings, bytes.
  PyObject* (*PyLong_FromLongLong)(long long);
  long long (*PyLong_AsLongLongAndOverflow)(PyObject*, int*);
  PyObject* (*PyLong_FromUnsignedLongLong)(unsigned long long);
  unsigned long long (*PyLong_AsUnsignedLongLong)(PyObject*);
  PyObject* (*PyFloat_FromDouble)(double);
  double (*PyFloat_AsDouble)(PyObject*);
  PyObject* (*PyBool_FromLong)(long);
  PyObject* (*PyUnicode_FromStringAndSize)(const char*, ssize_t);
  const char* (*PyUnicode_AsUTF8AndSize)(PyObject*, ssize_t*);
  PyObject* (*PyBytes_FromStringAndSize)(const char*, ssize_t);
  int (*PyBytes_AsStringAndSize)(PyObject*, char**, ssize_t*);

  // Containers.
  PyObject* (*PyList_New)(ssize_t);
  int (*PyList_SetItem)(PyObject*, ssize_t, PyObject*);
  ssize_t (*PyList_Size)(PyObject*);
  PyObject* (*PyList_GetItem)(PyObject*, ssize_t);
  PyObject* (*PyTuple_New)(ssize_t);
  int (*PyTuple_SetItem)(PyObject*, ssize_t, PyObject*);
  ssize_t (*PyTuple_Size)(PyObject*);
  PyObject* (*PyTuple_GetItem)(PyObject*, ssize_t);
  PyObject* (*PyDict_New)();
  int (*PyDict_SetItem)(PyObject*, PyObject*, PyObject*);
  int (*PyDict_SetItemString)(PyObject*, const char*, PyObject*);
  int (*PyDict_Next)(PyObject*, ssize_t*, PyObject**, PyObject**);
  PyObject* (*PyDict_GetItemString)(PyObject*, const char*);  // borrowed

  // Data symbols: singletons and the exact types marshal.cc recognises.
  PyObject* None;
  PyObject* True;
  PyObject* False;
  void* LongType;
  void* FloatType;
  void* BoolType;
  void* UnicodeType;
  void* BytesType;
  void* ListType;
  void* TupleType;
  void* DictType;
  PyObject* ExcRuntimeError;
  PyObject* ExcTypeError;

  // Resolves every symbol from `handle`; on failure returns false and names the
  // missing symbols in `error`.
  bool Resolve(void* handle, std::string* error);
};

// An owned reference, released with the API it came from.
class PyRef {
 public:
  PyRef() = default;
  PyRef(const PythonApi* api, PyObject* obj) : api_(api), obj_(obj) {}
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  PyRef(PyRef&& other) noexcept : api_(other.api_), obj_(other.obj_) { other.obj_ = nullptr; }
  PyRef& operator=(PyRef&& other) noexcept {
    if (this != &other) {
      Reset();
      api_ = other.api_;
      obj_ = other.obj_;
      other.obj_ = nullptr;
    }
    return *this;
  }
  ~PyRef() { Reset(); }

  PyObject* get() const { return obj_; }
  PyObject* release() {
    PyObject* o = obj_;
    obj_ = nullptr;
    return o;
  }
  explicit operator bool() const { return obj_ != nullptr; }
  void Reset() {
    if (obj_ != nullptr) api_->Py_DecRef(obj_);
    obj_ = nullptr;
  }

 private:
  const PythonApi* api_ = nullptr;
  PyObject* obj_ = nullptr;
};

}  // namespace coil
