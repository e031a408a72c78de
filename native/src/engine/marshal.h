// Values between the engine and one interpreter's Python: arguments become Python
// objects (tensors as views of Node's memory, no copy), results become Values
// (tensors copied once), a Python exception becomes a JobError. Everything here
// runs on the interpreter's thread with the GIL held.
#pragma once

#include <memory>
#include <vector>

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
  // make_tensor and describe_error. False (no exception left set) if one is
  // missing. Before this, only TakeError works, describing errors with str().
  bool Attach(PyObject* bridge);

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
  PyObject* ToPython(const Value& value, InputViews* views, int depth);
  bool FromPython(PyObject* obj, Value* out, int depth);

  const PythonApi* const api_;
  PyObject* tensor_marker_ = nullptr;
  PyObject* make_tensor_ = nullptr;
  PyObject* describe_error_ = nullptr;
  InputViews lingering_;  // views Python still referenced after their call
};

}  // namespace coil
