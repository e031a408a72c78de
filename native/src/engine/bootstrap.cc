#include "bootstrap.h"

#include "namespace.h"

#include <dlfcn.h>
#include <link.h>

#include <string>

namespace coil {

namespace {

// Must equal BRIDGE_VERSION in native/python/coil_bridge.py; bump both together
// whenever the functions one calls on the other, or the dtype codes, change.
constexpr long long kBridgeVersion = 4;

// Runs once in each fresh interpreter, with the names below preset in globals.
constexpr const char* kBootstrap = R"PY(
import sys
sys.path[:] = _coil_sys_path
sys.executable = _coil_executable
sys.argv = ['coil']
import importlib.util
_spec = importlib.util.spec_from_file_location('coil_bridge', _coil_bridge_path)
bridge = importlib.util.module_from_spec(_spec)
sys.modules['coil_bridge'] = bridge
_spec.loader.exec_module(bridge)
bridge.start_watchdog(_coil_wake_fd, _coil_library)
)PY";

std::string ClassifyLoadError(const std::string& message) {
  if (message.find("no more namespaces") != std::string::npos) return "INTERPRETER_LIMIT";
  if (message.find("static TLS") != std::string::npos) return "GLIBC_TUNABLE_MISSING";
  return "PYTHON_INIT_FAILED";
}

bool Fail(JobError* error, const std::string& code, const std::string& message) {
  error->code = code;
  error->message = message;
  return false;
}

PyObject* Str(const PythonApi& api, const std::string& text) {
  return api.PyUnicode_FromStringAndSize(text.data(), static_cast<ssize_t>(text.size()));
}

}  // namespace

bool StartPython(const InterpreterOptions& options, PythonApi* api, JobError* error) {
  std::string message;
  void* handle = OpenNamespace(options.namespace_root, options.library, &message);
  if (handle == nullptr) {
    return Fail(error, ClassifyLoadError(message),
                "cannot load " + options.library + " into a new namespace: " + message);
  }
  Lmid_t lmid = 0;
  if (dlinfo(handle, RTLD_DI_LMID, &lmid) != 0) return Fail(error, "PYTHON_INIT_FAILED", dlerror());
  // The namespace's own libc must set up this thread's ctype tables (docs/engine.md, fact 4).
  void* libc = dlmopen(lmid, "libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto* ctype_init = libc != nullptr ? reinterpret_cast<void (*)()>(dlsym(libc, "__ctype_init")) : nullptr;
  if (ctype_init == nullptr) return Fail(error, "PYTHON_INIT_FAILED", "cannot find __ctype_init in the namespace's libc");
  ctype_init();

  std::string missing;
  if (!api->Resolve(handle, &missing)) return Fail(error, "PYTHON_INIT_FAILED", missing);

  if (api->Py_SetProgramName != nullptr && !options.executable.empty()) {
    // Kept for the process's lifetime: CPython stores the pointer.
    wchar_t* program = api->Py_DecodeLocale(options.executable.c_str(), nullptr);
    if (program != nullptr) api->Py_SetProgramName(program);
  }
  // 0: never install Python's signal handlers in Node's process (docs/engine.md, fact 6).
  api->Py_InitializeEx(0);
  return true;
}

PyObject* ImportBridge(const PythonApi& api, const InterpreterOptions& options, int watchdog_fd, void* job_slot_address,
                       Marshal* marshal, JobError* error) {
  PyRef globals(&api, api.PyDict_New());
  api.PyDict_SetItemString(globals.get(), "__builtins__", api.PyEval_GetBuiltins());
  PyRef path(&api, api.PyList_New(static_cast<ssize_t>(options.sys_path.size())));
  for (size_t i = 0; i < options.sys_path.size(); ++i) {
    api.PyList_SetItem(path.get(), static_cast<ssize_t>(i), Str(api, options.sys_path[i]));
  }
  api.PyDict_SetItemString(globals.get(), "_coil_sys_path", path.get());
  PyRef executable(&api, Str(api, options.executable));
  api.PyDict_SetItemString(globals.get(), "_coil_executable", executable.get());
  PyRef wake_fd(&api, api.PyLong_FromLongLong(watchdog_fd));
  api.PyDict_SetItemString(globals.get(), "_coil_wake_fd", wake_fd.get());
  PyRef library(&api, Str(api, options.library));
  api.PyDict_SetItemString(globals.get(), "_coil_library", library.get());
  PyRef bridge_path(&api, Str(api, options.bridge_path));
  api.PyDict_SetItemString(globals.get(), "_coil_bridge_path", bridge_path.get());

  PyRef code(&api, api.Py_CompileString(kBootstrap, "<coil-bootstrap>", kPyFileInput));
  PyRef done(&api, code ? api.PyEval_EvalCode(code.get(), globals.get(), globals.get()) : nullptr);
  if (!done) {
    JobError python;
    marshal->TakeError(&python);
    error->code = ClassifyLoadError(python.message) == "GLIBC_TUNABLE_MISSING" ? "GLIBC_TUNABLE_MISSING"
                                                                               : "PYTHON_INIT_FAILED";
    error->message = "the Coil bridge failed to start: " + python.message;
    error->python_type = python.python_type;
    error->traceback = python.traceback;
    return nullptr;
  }
  PyObject* module = api.PyDict_GetItemString(globals.get(), "bridge");  // borrowed
  api.Py_IncRef(module);
  PyRef bridge(&api, module);
  // The bridge and this engine call each other by convention: refuse a mismatch
  // (e.g. a bridge from another build) with a clear error rather than odd failures.
  PyRef version(&api, api.PyObject_GetAttrString(bridge.get(), "BRIDGE_VERSION"));
  int overflow = 0;
  long long bridge_version = version ? api.PyLong_AsLongLongAndOverflow(version.get(), &overflow) : -1;
  api.PyErr_Clear();
  if (bridge_version != kBridgeVersion) {
    Fail(error, "PYTHON_INIT_FAILED",
         options.bridge_path + " has version " + std::to_string(bridge_version) + ", this native engine needs version " +
             std::to_string(kBridgeVersion) +
             ": rebuild @coil/native (npm run build -w @coil/native) so both come from one source");
    return nullptr;
  }
  PyRef attach(&api, api.PyObject_GetAttrString(bridge.get(), "attach_job_slot"));
  PyRef args(&api, api.PyTuple_New(1));
  if (args) api.PyTuple_SetItem(args.get(), 0, api.PyLong_FromUnsignedLongLong(reinterpret_cast<uintptr_t>(job_slot_address)));
  PyRef attached(&api, attach && args ? api.PyObject_CallObject(attach.get(), args.get()) : nullptr);
  if (!attached) {
    api.PyErr_Clear();
    Fail(error, "PYTHON_INIT_FAILED", "coil_bridge.attach_job_slot failed");
    return nullptr;
  }
  if (!marshal->Attach(bridge.get())) {
    Fail(error, "PYTHON_INIT_FAILED", "coil_bridge lacks TENSOR_MARKER, make_tensor or describe_error");
    return nullptr;
  }
  return bridge.release();
}

}  // namespace coil
