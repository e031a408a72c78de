#include "python_api.h"

#include <dlfcn.h>

namespace coil {

namespace {

template <typename T>
void Bind(void* handle, const char* name, T* slot, std::string* missing, bool optional = false) {
  void* sym = dlsym(handle, name);
  *slot = reinterpret_cast<T>(sym);
  if (sym == nullptr && !optional) {
    if (!missing->empty()) missing->append(", ");
    missing->append(name);
  }
}

}  // namespace

bool PythonApi::Resolve(void* h, std::string* error) {
  std::string missing;
#define COIL_BIND(name) Bind(h, #name, &name, &missing)
  COIL_BIND(Py_InitializeEx);
  Bind(h, "Py_SetProgramName", &Py_SetProgramName, &missing, /*optional=*/true);
  COIL_BIND(Py_DecodeLocale);
  COIL_BIND(Py_GetVersion);
  COIL_BIND(PyEval_SaveThread);
  COIL_BIND(PyEval_RestoreThread);
  COIL_BIND(PyThreadState_SetAsyncExc);
  COIL_BIND(PyThread_get_thread_ident);
  COIL_BIND(Py_IncRef);
  COIL_BIND(Py_DecRef);
  COIL_BIND(PyObject_GetAttrString);
  COIL_BIND(PyObject_SetAttrString);
  COIL_BIND(PyObject_CallObject);
  COIL_BIND(PyObject_Str);
  COIL_BIND(Py_CompileString);
  COIL_BIND(PyEval_EvalCode);
  COIL_BIND(PyEval_GetBuiltins);
  COIL_BIND(PyType_IsSubtype);
  COIL_BIND(PyCapsule_New);
  COIL_BIND(PyCapsule_GetPointer);
  COIL_BIND(PyCapsule_IsValid);
  COIL_BIND(PyErr_Occurred);
  COIL_BIND(PyErr_Fetch);
  COIL_BIND(PyErr_NormalizeException);
  COIL_BIND(PyErr_Restore);
  COIL_BIND(PyErr_SetString);
  COIL_BIND(PyErr_Clear);
  COIL_BIND(PyLong_FromLongLong);
  COIL_BIND(PyLong_AsLongLongAndOverflow);
  COIL_BIND(PyLong_FromUnsignedLongLong);
  COIL_BIND(PyLong_AsUnsignedLongLong);
  COIL_BIND(PyFloat_FromDouble);
  COIL_BIND(PyFloat_AsDouble);
  COIL_BIND(PyBool_FromLong);
  COIL_BIND(PyUnicode_FromStringAndSize);
  COIL_BIND(PyUnicode_AsUTF8AndSize);
  COIL_BIND(PyBytes_FromStringAndSize);
  COIL_BIND(PyBytes_AsStringAndSize);
  COIL_BIND(PyList_New);
  COIL_BIND(PyList_SetItem);
  COIL_BIND(PyList_Size);
  COIL_BIND(PyList_GetItem);
  COIL_BIND(PyTuple_New);
  COIL_BIND(PyTuple_SetItem);
  COIL_BIND(PyTuple_Size);
  COIL_BIND(PyTuple_GetItem);
  COIL_BIND(PyDict_New);
  COIL_BIND(PyDict_SetItem);
  COIL_BIND(PyDict_SetItemString);
  COIL_BIND(PyDict_Next);
  COIL_BIND(PyDict_GetItemString);
#undef COIL_BIND
  Bind(h, "_Py_NoneStruct", &None, &missing);
  Bind(h, "_Py_TrueStruct", &True, &missing);
  Bind(h, "_Py_FalseStruct", &False, &missing);
  Bind(h, "PyLong_Type", &LongType, &missing);
  Bind(h, "PyFloat_Type", &FloatType, &missing);
  Bind(h, "PyBool_Type", &BoolType, &missing);
  Bind(h, "PyUnicode_Type", &UnicodeType, &missing);
  Bind(h, "PyBytes_Type", &BytesType, &missing);
  Bind(h, "PyList_Type", &ListType, &missing);
  Bind(h, "PyTuple_Type", &TupleType, &missing);
  Bind(h, "PyDict_Type", &DictType, &missing);
  PyObject** exc = nullptr;
  Bind(h, "PyExc_RuntimeError", &exc, &missing);
  ExcRuntimeError = exc != nullptr ? *exc : nullptr;
  exc = nullptr;
  Bind(h, "PyExc_TypeError", &exc, &missing);
  ExcTypeError = exc != nullptr ? *exc : nullptr;
  if (!missing.empty()) {
    *error = "libpython lacks required symbols: " + missing;
    return false;
  }
  return true;
}

}  // namespace coil
