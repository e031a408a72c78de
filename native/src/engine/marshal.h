// Values between the engine and one interpreter's Python: arguments become Python
// objects (tensors as views of Node's memory, no copy), results become Values
// (tensors copied once), a Python exception becomes a JobError. Everything here
// runs on the interpreter's thread with the GIL held.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "dlpack.h"
#include "job.h"
#include "python_api.h"
#include "value.h"

namespace coil {

class Marshal {
 public:
  // An input tensor's memory as Python sees it. `owner` is a Python object that
  // owns the view of Node's memory (a ctypes array over it); whatever uses the
  // memory -- torch.frombuffer, numpy, memoryview slices -- holds a reference to it
  // through the buffer protocol, so its refcount says exactly whether Python still
  // uses the memory.
  struct InputView {
    PyObject* owner;                  // our own reference
    std::shared_ptr<void> keepalive;  // Node's buffer stays alive while Python can see it
  };
  using InputViews = std::vector<InputView>;

  explicit Marshal(const PythonApi* api) : api_(api) {}
  Marshal(const Marshal&) = delete;
  Marshal& operator=(const Marshal&) = delete;

  // Takes what the conversions need from the imported bridge: TENSOR_MARKER,
  // make_tensor, _export_tensor and describe_error. False (no exception left set) if
  // one is missing. Before this, only TakeError works, describing errors with str().
  bool Attach(PyObject* bridge);

  // Reads the bridge's NATIVE_TENSORS again (torch loaded, a backend's device hooks
  // set): call before converting a call's arguments and again before its result.
  // The first time a torch offers DLPack, checks which dtypes it carries both ways.
  void RefreshNativeTensors();

  // A new reference, or null with a Python exception set. Each tensor becomes a
  // view of the caller's memory, recorded in `views` for ReleaseInputs.
  PyObject* ToPython(const Value& value, InputViews* views) { return ToPython(value, views, 0); }

  // False with a Python exception set when `obj`, or something inside it, cannot
  // go back to Node. Tensors (the bridge's export tuples) are copied into memory
  // the Value owns: the one copy out.
  bool FromPython(PyObject* obj, Value* out) { return FromPython(obj, out, 0); }

  // After a call: drops the views only this side still references, and with them
  // Node's buffers. One Python still holds (a tensor the model kept) lingers, and
  // is checked again after every later call until Python lets go.
  void ReleaseInputs(InputViews* views);

  // Takes the pending Python exception into `error` (code PYTHON_ERROR, with the
  // type, message and traceback) and clears it. Returns true when the exception
  // was the engine's own interrupt (the bridge's CoilInterrupt).
  bool TakeError(JobError* error);

 private:
  // The bridge's NATIVE_TENSORS, unpacked (marshal.cc, "Tensors over DLPack").
  struct NativeTensors {
    PyRef state;                      // the tuple itself: keeps the borrowed items alive
    PyObject* tensor_type = nullptr;  // torch.Tensor
    PyObject* from_dlpack = nullptr;  // torch._C._from_dlpack, or null
    PyObject* to_dlpack = nullptr;    // torch._C._to_dlpack, or null
    std::array<PyObject*, kDTypeCount> dtypes{};  // torch's dtype object of each code, or null
    bool inputs = false;   // no device hook on inputs: they may be made here
    bool outputs = false;  // no device hook on outputs: they may be read here
  };
  enum class CopyResult { kCopied, kDeclined, kFailed };

  PyObject* ToPython(const Value& value, InputViews* views, int depth);
  bool FromPython(PyObject* obj, Value* out, int depth);
  PyObject* CallWith(PyObject* function, PyObject* arg);  // function(arg): new reference, or null with the error set
  PyObject* TensorOverDlpack(const TensorValue& tensor);
  bool TensorFromPython(PyObject* obj, Value* out, int depth);
  int DlpackCode(PyObject* tensor);
  CopyResult CopyOut(const dlpack::Tensor& dl, DType dtype, Value* out);
  // The one copy out: `tensor` (dtype, shape, nbytes set) gets its own copy of the
  // bytes at `data` and becomes `out`. False, with the error set, out of memory.
  bool CopyInto(std::unique_ptr<TensorValue> tensor, const void* data, Value* out);
  void ProbeDlpack();

  const PythonApi* const api_;
  PyObject* bridge_ = nullptr;
  PyObject* tensor_marker_ = nullptr;
  PyObject* make_tensor_ = nullptr;
  PyObject* export_tensor_ = nullptr;
  PyObject* describe_error_ = nullptr;
  InputViews lingering_;  // views Python still referenced after their call
  NativeTensors native_;
  PyObject* probed_ = nullptr;  // the from_dlpack dlpack_ok_ was found with (referenced)
  std::array<bool, kDTypeCount> dlpack_ok_{};  // DLPack carries this dtype code both ways
};

}  // namespace coil
