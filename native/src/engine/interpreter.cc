#include "interpreter.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

namespace coil {

namespace {

// Must equal BRIDGE_VERSION in native/python/coil_bridge.py; bump both together
// whenever the functions one calls on the other, or the dtype codes, change.
constexpr long long kBridgeVersion = 2;

// Deeper nesting than this is refused rather than risking the thread's stack
// (and it stops self-referencing containers).
constexpr int kMaxDepth = 100;

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

}  // namespace

struct Interpreter::InputView {
  // A Python object that owns the view of Node's memory (a ctypes array over it).
  // Whatever uses the memory -- torch.frombuffer, numpy, memoryview slices -- holds
  // a reference to it through the buffer protocol, so its refcount says exactly
  // whether Python still uses the memory.
  PyObject* owner;                  // our own reference
  std::shared_ptr<void> keepalive;  // Node's buffer stays alive while Python can see it
};

Interpreter::Interpreter(int index, InterpreterOptions options, CompletionSink* sink,
                         std::unique_ptr<Job> init_job)
    : index_(index), options_(std::move(options)), sink_(sink), init_job_(std::move(init_job)) {
  load_.store(1);  // initialisation counts as work in flight
  thread_ = std::thread(&Interpreter::ThreadMain, this);
  thread_.detach();
}

void Interpreter::Submit(std::unique_ptr<Job> job) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (failed_) {
    lock.unlock();
    job->ok = false;
    job->error = init_error_;
    sink_->Complete(std::move(job));
    return;
  }
  load_.fetch_add(1, std::memory_order_relaxed);
  job->submitted_at = std::chrono::steady_clock::now();
  queue_.push_back(std::move(job));
  lock.unlock();
  wake_.notify_one();
}

Interpreter::CancelResult Interpreter::Cancel(uint64_t job_id, const std::string& code) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->id != job_id) continue;
    std::unique_ptr<Job> job = std::move(*it);
    queue_.erase(it);
    load_.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();
    Fail(*job, code, code == "DEADLINE_EXCEEDED" ? "deadline exceeded before the call started"
                                                 : "cancelled before the call started");
    sink_->Complete(std::move(job));
    return CancelResult::kDequeued;
  }
  if (running_job_.load() != job_id || job_id == 0) return CancelResult::kNotFound;
  interrupt_code_ = code;
  interrupt_job_.store(job_id);
  lock.unlock();
  // Nothing of the namespace's libpython may run on this thread -- not even
  // Py_AddPendingCall, which reads a pthread key that collides with the caller's
  // own (DESIGN.md fact 3; seen crashing). Instead the bridge's watchdog, a thread
  // of the interpreter itself, reads the job id from this pipe and, if that job
  // is still running, raises CoilInterrupt in it (PyThreadState_SetAsyncExc).
  ssize_t written = write(wake_fd_, &job_id, sizeof(job_id));
  (void)written;  // a full pipe means interrupts are already pending
  return CancelResult::kInterrupting;
}

std::vector<uint64_t> Interpreter::JobIds() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<uint64_t> ids;
  if (uint64_t running = running_job_.load(); running != 0) ids.push_back(running);
  for (const auto& job : queue_) ids.push_back(job->id);
  return ids;
}

void Interpreter::SetCurrentJob(uint64_t id) {
  // What the watchdog compares against; written with the GIL held, like its reads.
  // Runs right after a call that may have failed: keep that call's exception.
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  api_.PyErr_Fetch(&type, &value, &tb);
  PyRef number(&api_, api_.PyLong_FromUnsignedLongLong(id));
  if (!number || api_.PyObject_SetAttrString(bridge_, "current_job", number.get()) != 0) api_.PyErr_Clear();
  api_.PyErr_Restore(type, value, tb);
}

void Interpreter::ThreadMain() {
  JobError error;
  bool ok = Initialize(&error);
  std::unique_ptr<Job> init = std::move(init_job_);
  init->ok = ok;
  if (ok) {
    init->result.kind = Value::Kind::kStr;
    init->result.s = api_.Py_GetVersion();
  } else {
    init->error = error;
  }
  std::deque<std::unique_ptr<Job>> orphans;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    load_.fetch_sub(1, std::memory_order_relaxed);
    if (!ok) {
      failed_ = true;
      init_error_ = error;
      orphans.swap(queue_);
      load_.store(0);
    }
  }
  sink_->Complete(std::move(init));
  for (auto& job : orphans) {
    job->ok = false;
    job->error = error;
    sink_->Complete(std::move(job));
  }

  if (ok) {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
        running_job_.store(job->id);
      }
      const auto started = std::chrono::steady_clock::now();
      Run(*job);
      const auto run = std::chrono::steady_clock::now() - started;
      job->queued_seconds = std::chrono::duration<double>(started - job->submitted_at).count();
      job->run_seconds = std::chrono::duration<double>(run).count();
      busy_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(run).count()),
                         std::memory_order_relaxed);
      running_job_.store(0);
      load_.fetch_sub(1, std::memory_order_relaxed);
      sink_->Complete(std::move(job));
    }
  }
  // Park: a thread of a namespace must not exit while the process lives (fact 3).
  for (;;) pause();
}

bool Interpreter::Initialize(JobError* error) {
  auto fail = [&](const std::string& code, const std::string& message) {
    error->code = code;
    error->message = message;
    return false;
  };
  void* handle = dlmopen(LM_ID_NEWLM, options_.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::string message = dlerror();
    return fail(ClassifyLoadError(message), "cannot load " + options_.library + " into a new namespace: " + message);
  }
  Lmid_t lmid = 0;
  if (dlinfo(handle, RTLD_DI_LMID, &lmid) != 0) return fail("PYTHON_INIT_FAILED", dlerror());
  // The namespace's own libc must set up this thread's ctype tables (fact 4).
  void* libc = dlmopen(lmid, "libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto* ctype_init = libc != nullptr ? reinterpret_cast<void (*)()>(dlsym(libc, "__ctype_init")) : nullptr;
  if (ctype_init == nullptr) return fail("PYTHON_INIT_FAILED", "cannot find __ctype_init in the namespace's libc");
  ctype_init();

  std::string missing;
  if (!api_.Resolve(handle, &missing)) return fail("PYTHON_INIT_FAILED", missing);

  if (api_.Py_SetProgramName != nullptr && !options_.executable.empty()) {
    // Kept for the process's lifetime: CPython stores the pointer.
    wchar_t* program = api_.Py_DecodeLocale(options_.executable.c_str(), nullptr);
    if (program != nullptr) api_.Py_SetProgramName(program);
  }
  api_.Py_InitializeEx(0);  // 0: never install Python's signal handlers in Node's process (fact 6)
  bool ok = Bootstrap(error);
  // Idle interpreters hold no GIL, so threads the model starts keep running.
  thread_state_ = api_.PyEval_SaveThread();
  return ok;
}

bool Interpreter::Bootstrap(JobError* error) {
  PyRef globals(&api_, api_.PyDict_New());
  api_.PyDict_SetItemString(globals.get(), "__builtins__", api_.PyEval_GetBuiltins());
  PyRef path(&api_, api_.PyList_New(static_cast<ssize_t>(options_.sys_path.size())));
  for (size_t i = 0; i < options_.sys_path.size(); ++i) {
    const std::string& entry = options_.sys_path[i];
    api_.PyList_SetItem(path.get(), static_cast<ssize_t>(i),
                        api_.PyUnicode_FromStringAndSize(entry.data(), static_cast<ssize_t>(entry.size())));
  }
  api_.PyDict_SetItemString(globals.get(), "_coil_sys_path", path.get());
  PyRef executable(&api_, api_.PyUnicode_FromStringAndSize(options_.executable.data(),
                                                            static_cast<ssize_t>(options_.executable.size())));
  api_.PyDict_SetItemString(globals.get(), "_coil_executable", executable.get());
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    error->code = "PYTHON_INIT_FAILED";
    error->message = std::string("cannot create the interrupt pipe: ") + std::strerror(errno);
    return false;
  }
  wake_fd_ = fds[1];
  PyRef wake_fd(&api_, api_.PyLong_FromLongLong(fds[0]));
  api_.PyDict_SetItemString(globals.get(), "_coil_wake_fd", wake_fd.get());
  PyRef library(&api_, api_.PyUnicode_FromStringAndSize(options_.library.data(),
                                                         static_cast<ssize_t>(options_.library.size())));
  api_.PyDict_SetItemString(globals.get(), "_coil_library", library.get());
  PyRef bridge_path(&api_, api_.PyUnicode_FromStringAndSize(options_.bridge_path.data(),
                                                             static_cast<ssize_t>(options_.bridge_path.size())));
  api_.PyDict_SetItemString(globals.get(), "_coil_bridge_path", bridge_path.get());

  PyRef code(&api_, api_.Py_CompileString(kBootstrap, "<coil-bootstrap>", kPyFileInput));
  PyRef done(&api_, code ? api_.PyEval_EvalCode(code.get(), globals.get(), globals.get()) : nullptr);
  if (!done) {
    Job probe;
    CaptureException(probe);
    error->code = ClassifyLoadError(probe.error.message) == "GLIBC_TUNABLE_MISSING" ? "GLIBC_TUNABLE_MISSING"
                                                                                    : "PYTHON_INIT_FAILED";
    error->message = "the Coil bridge failed to start: " + probe.error.message;
    error->python_type = probe.error.python_type;
    error->traceback = probe.error.traceback;
    return false;
  }
  bridge_ = api_.PyDict_GetItemString(globals.get(), "bridge");
  api_.Py_IncRef(bridge_);
  // The bridge and this engine call each other by convention: refuse a mismatch
  // (e.g. a bridge from another build) with a clear error rather than odd failures.
  PyRef version(&api_, api_.PyObject_GetAttrString(bridge_, "BRIDGE_VERSION"));
  int overflow = 0;
  long long bridge_version = version ? api_.PyLong_AsLongLongAndOverflow(version.get(), &overflow) : -1;
  api_.PyErr_Clear();
  if (bridge_version != kBridgeVersion) {
    error->code = "PYTHON_INIT_FAILED";
    error->message = options_.bridge_path + " has version " + std::to_string(bridge_version) +
                     ", this native engine needs version " + std::to_string(kBridgeVersion) +
                     ": rebuild @coil/native (npm run build -w @coil/native) so both come from one source";
    return false;
  }
  tensor_marker_ = api_.PyObject_GetAttrString(bridge_, "TENSOR_MARKER");
  make_tensor_ = api_.PyObject_GetAttrString(bridge_, "make_tensor");
  describe_error_ = api_.PyObject_GetAttrString(bridge_, "describe_error");
  thread_ident_ = api_.PyThread_get_thread_ident();
  if (!tensor_marker_ || !make_tensor_ || !describe_error_) {
    api_.PyErr_Clear();
    error->code = "PYTHON_INIT_FAILED";
    error->message = "coil_bridge lacks TENSOR_MARKER, make_tensor or describe_error";
    return false;
  }
  lingering_ = new std::vector<InputView>();
  return true;
}

PyObject* Interpreter::BridgeFunction(const std::string& name) {
  auto it = functions_.find(name);
  if (it != functions_.end()) return it->second;
  PyObject* fn = api_.PyObject_GetAttrString(bridge_, name.c_str());
  if (fn != nullptr) functions_.emplace(name, fn);
  return fn;
}

void Interpreter::Run(Job& job) {
  api_.PyEval_RestoreThread(thread_state_);
  // Current from the start, so a cancel during input conversion is not lost...
  SetCurrentJob(job.id);
  std::vector<InputView> views;
  if (interrupt_job_.load() == job.id) {
    // ...and one that came while this thread waited for the GIL fails it now.
    std::lock_guard<std::mutex> lock(mutex_);
    Fail(job, interrupt_code_, "interrupted before the call started");
  } else {
    PyObject* fn = BridgeFunction(job.function);
    PyRef args(&api_, fn != nullptr ? api_.PyTuple_New(static_cast<ssize_t>(job.args.size())) : nullptr);
    bool ready = static_cast<bool>(args);
    for (size_t i = 0; ready && i < job.args.size(); ++i) {
      PyObject* item = ToPython(job.args[i], &views, 0);
      if (item == nullptr) {
        ready = false;
        break;
      }
      api_.PyTuple_SetItem(args.get(), static_cast<ssize_t>(i), item);
    }
    job.args.clear();  // inputs now live in Python or in `views`
    PyRef result(&api_, ready ? api_.PyObject_CallObject(fn, args.get()) : nullptr);
    SetCurrentJob(0);
    if (interrupt_job_.load() == job.id) {
      // An interrupt that arrived as the call returned must not hit the next one.
      api_.PyThreadState_SetAsyncExc(thread_ident_, nullptr);
    }
    args.Reset();
    if (result && FromPython(result.get(), &job.result, 0)) {
      job.ok = true;
    } else {
      job.result = Value();
      CaptureException(job);
    }
  }
  ReleaseViews(&views);
  thread_state_ = api_.PyEval_SaveThread();
}

void Interpreter::ReleaseViews(std::vector<InputView>* views) {
  // A view whose only reference is ours can go, and with it Node's buffer. One
  // Python still holds (a tensor the model kept) lingers until Python lets go.
  auto sweep = [this](std::vector<InputView>* list, std::vector<InputView>* keep) {
    for (InputView& view : *list) {
      if (view.owner->ob_refcnt > 1) {
        keep->push_back(std::move(view));
      } else {
        api_.Py_DecRef(view.owner);
      }
    }
    list->clear();
  };
  std::vector<InputView> still;
  sweep(lingering_, &still);
  sweep(views, &still);
  lingering_->swap(still);
}

void Interpreter::Fail(Job& job, const std::string& code, const std::string& message) {
  job.ok = false;
  job.error = JobError{code, message, "", ""};
}

void Interpreter::CaptureException(Job& job) {
  job.ok = false;
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  api_.PyErr_Fetch(&type, &value, &tb);
  if (type == nullptr) {
    Fail(job, "INTERNAL", "a Python call failed without setting an exception");
    return;
  }
  api_.PyErr_NormalizeException(&type, &value, &tb);
  PyRef t(&api_, type), v(&api_, value), trace(&api_, tb);
  job.error.code = "PYTHON_ERROR";
  // describe_error(exc, tb) -> (type name, message, formatted traceback, interrupted?)
  PyRef described;
  if (describe_error_ != nullptr) {
    PyRef args(&api_, api_.PyTuple_New(2));
    PyObject* exc = v ? v.get() : api_.None;
    PyObject* tbo = trace ? trace.get() : api_.None;
    api_.Py_IncRef(exc);
    api_.Py_IncRef(tbo);
    api_.PyTuple_SetItem(args.get(), 0, exc);
    api_.PyTuple_SetItem(args.get(), 1, tbo);
    described = PyRef(&api_, api_.PyObject_CallObject(describe_error_, args.get()));
  }
  Value info;
  if (described && FromPython(described.get(), &info, 0) && info.kind == Value::Kind::kTuple && info.items.size() == 4) {
    job.error.python_type = info.items[0].s;
    job.error.message = info.items[1].s;
    job.error.traceback = info.items[2].s;
    if (info.items[3].b) {
      std::lock_guard<std::mutex> lock(mutex_);
      job.error.code = interrupt_code_.empty() ? "CANCELLED" : interrupt_code_;
    }
    return;
  }
  api_.PyErr_Clear();
  PyRef text(&api_, v ? api_.PyObject_Str(v.get()) : nullptr);
  ssize_t size = 0;
  const char* utf8 = text ? api_.PyUnicode_AsUTF8AndSize(text.get(), &size) : nullptr;
  job.error.message = utf8 != nullptr ? std::string(utf8, static_cast<size_t>(size)) : "unprintable Python exception";
  api_.PyErr_Clear();
}

PyObject* Interpreter::ToPython(const Value& value, std::vector<InputView>* views, int depth) {
  if (depth > kMaxDepth) {
    api_.PyErr_SetString(api_.ExcTypeError, "argument nested too deeply");
    return nullptr;
  }
  switch (value.kind) {
    case Value::Kind::kNone:
      api_.Py_IncRef(api_.None);
      return api_.None;
    case Value::Kind::kBool:
      return api_.PyBool_FromLong(value.b ? 1 : 0);
    case Value::Kind::kInt:
      return api_.PyLong_FromLongLong(value.i);
    case Value::Kind::kUInt:
      return api_.PyLong_FromUnsignedLongLong(value.u);
    case Value::Kind::kFloat:
      return api_.PyFloat_FromDouble(value.f);
    case Value::Kind::kStr:
      return api_.PyUnicode_FromStringAndSize(value.s.data(), static_cast<ssize_t>(value.s.size()));
    case Value::Kind::kBytes:
      return api_.PyBytes_FromStringAndSize(value.s.data(), static_cast<ssize_t>(value.s.size()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      bool list = value.kind == Value::Kind::kList;
      auto n = static_cast<ssize_t>(value.items.size());
      PyRef out(&api_, list ? api_.PyList_New(n) : api_.PyTuple_New(n));
      for (ssize_t i = 0; out && i < n; ++i) {
        PyObject* item = ToPython(value.items[static_cast<size_t>(i)], views, depth + 1);
        if (item == nullptr) return nullptr;
        (list ? api_.PyList_SetItem : api_.PyTuple_SetItem)(out.get(), i, item);
      }
      return out.release();
    }
    case Value::Kind::kDict: {
      PyRef out(&api_, api_.PyDict_New());
      for (const auto& entry : value.dict) {
        PyRef key(&api_, api_.PyUnicode_FromStringAndSize(entry.first.data(), static_cast<ssize_t>(entry.first.size())));
        PyRef item(&api_, ToPython(entry.second, views, depth + 1));
        if (!key || !item || api_.PyDict_SetItem(out.get(), key.get(), item.get()) != 0) return nullptr;
      }
      return out.release();
    }
    case Value::Kind::kTensor: {
      const TensorValue& t = *value.tensor;
      // A view of Node's memory, no copy: make_tensor(code, shape, address, nbytes)
      // returns (tensor, owner of the memory view).
      PyRef shape(&api_, api_.PyTuple_New(static_cast<ssize_t>(t.shape.size())));
      for (size_t i = 0; i < t.shape.size(); ++i) {
        api_.PyTuple_SetItem(shape.get(), static_cast<ssize_t>(i), api_.PyLong_FromLongLong(t.shape[i]));
      }
      PyRef args(&api_, api_.PyTuple_New(4));
      api_.PyTuple_SetItem(args.get(), 0, api_.PyLong_FromLongLong(static_cast<int>(t.dtype)));
      api_.PyTuple_SetItem(args.get(), 1, shape.release());
      static char empty = 0;  // ctypes wants an address even for zero bytes
      void* address = t.nbytes > 0 ? t.data : &empty;
      api_.PyTuple_SetItem(args.get(), 2, api_.PyLong_FromUnsignedLongLong(reinterpret_cast<uintptr_t>(address)));
      api_.PyTuple_SetItem(args.get(), 3, api_.PyLong_FromUnsignedLongLong(t.nbytes));
      PyRef made(&api_, api_.PyObject_CallObject(make_tensor_, args.get()));
      if (!made) return nullptr;
      if (made.get()->ob_type != api_.TupleType || api_.PyTuple_Size(made.get()) != 2) {
        api_.PyErr_SetString(api_.ExcTypeError, "make_tensor must return (tensor, owner)");
        return nullptr;
      }
      PyObject* tensor = api_.PyTuple_GetItem(made.get(), 0);
      PyObject* owner = api_.PyTuple_GetItem(made.get(), 1);
      api_.Py_IncRef(owner);
      views->push_back(InputView{owner, t.keepalive});
      api_.Py_IncRef(tensor);
      return tensor;
    }
  }
  api_.PyErr_SetString(api_.ExcTypeError, "unknown value kind");
  return nullptr;
}

bool Interpreter::FromPython(PyObject* obj, Value* out, int depth) {
  if (depth > kMaxDepth) {
    api_.PyErr_SetString(api_.ExcTypeError, "result nested too deeply (or refers to itself)");
    return false;
  }
  void* type = obj->ob_type;
  if (obj == api_.None) {
    out->kind = Value::Kind::kNone;
  } else if (type == api_.BoolType) {
    out->kind = Value::Kind::kBool;
    out->b = obj == api_.True;
  } else if (type == api_.LongType) {
    int overflow = 0;
    long long v = api_.PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow == 0) {
      out->kind = Value::Kind::kInt;
      out->i = v;
    } else {
      unsigned long long u = overflow > 0 ? api_.PyLong_AsUnsignedLongLong(obj) : 0;
      if (overflow < 0 || api_.PyErr_Occurred() != nullptr) {
        api_.PyErr_Clear();
        api_.PyErr_SetString(api_.ExcTypeError, "int outside the 64-bit range cannot be returned to Node");
        return false;
      }
      out->kind = Value::Kind::kUInt;
      out->u = u;
    }
  } else if (type == api_.FloatType) {
    out->kind = Value::Kind::kFloat;
    out->f = api_.PyFloat_AsDouble(obj);
  } else if (type == api_.UnicodeType) {
    ssize_t size = 0;
    const char* utf8 = api_.PyUnicode_AsUTF8AndSize(obj, &size);
    if (utf8 == nullptr) return false;
    out->kind = Value::Kind::kStr;
    out->s.assign(utf8, static_cast<size_t>(size));
  } else if (type == api_.BytesType) {
    char* data = nullptr;
    ssize_t size = 0;
    if (api_.PyBytes_AsStringAndSize(obj, &data, &size) != 0) return false;
    out->kind = Value::Kind::kBytes;
    out->s.assign(data, static_cast<size_t>(size));
  } else if (type == api_.TupleType && api_.PyTuple_Size(obj) == 6 && api_.PyTuple_GetItem(obj, 0) == tensor_marker_) {
    // (TENSOR_MARKER, dtype code, shape, data address, nbytes, tensor): the one copy out.
    Value code, shape, address, nbytes;
    if (!FromPython(api_.PyTuple_GetItem(obj, 1), &code, depth + 1) ||
        !FromPython(api_.PyTuple_GetItem(obj, 2), &shape, depth + 1) ||
        !FromPython(api_.PyTuple_GetItem(obj, 3), &address, depth + 1) ||
        !FromPython(api_.PyTuple_GetItem(obj, 4), &nbytes, depth + 1)) {
      return false;
    }
    auto tensor = std::make_unique<TensorValue>();
    if (code.kind != Value::Kind::kInt || code.i < 0 || code.i >= kDTypeCount) {
      api_.PyErr_SetString(api_.ExcTypeError, "bridge produced an unknown dtype code");
      return false;
    }
    tensor->dtype = static_cast<DType>(code.i);
    size_t expected = DTypeSize(tensor->dtype);
    for (const Value& dim : shape.items) {
      if (dim.kind != Value::Kind::kInt || dim.i < 0) {
        api_.PyErr_SetString(api_.ExcTypeError, "bridge produced a bad shape");
        return false;
      }
      tensor->shape.push_back(dim.i);
      expected *= static_cast<size_t>(dim.i);
    }
    tensor->nbytes = static_cast<size_t>(nbytes.i);
    if (tensor->nbytes != expected) {
      api_.PyErr_SetString(api_.ExcTypeError, "bridge produced a tensor whose size does not match its shape");
      return false;
    }
    tensor->owned.reset(std::malloc(tensor->nbytes > 0 ? tensor->nbytes : 1));
    if (!tensor->owned) {
      api_.PyErr_SetString(api_.ExcRuntimeError, "out of memory copying a tensor result");
      return false;
    }
    tensor->data = tensor->owned.get();
    if (tensor->nbytes > 0) {
      std::memcpy(tensor->data, reinterpret_cast<const void*>(static_cast<uintptr_t>(address.i)), tensor->nbytes);
    }
    out->kind = Value::Kind::kTensor;
    out->tensor = std::move(tensor);
  } else if (type == api_.ListType || type == api_.TupleType) {
    bool list = type == api_.ListType;
    ssize_t n = list ? api_.PyList_Size(obj) : api_.PyTuple_Size(obj);
    out->kind = list ? Value::Kind::kList : Value::Kind::kTuple;
    out->items.resize(static_cast<size_t>(n));
    for (ssize_t i = 0; i < n; ++i) {
      PyObject* item = list ? api_.PyList_GetItem(obj, i) : api_.PyTuple_GetItem(obj, i);
      if (!FromPython(item, &out->items[static_cast<size_t>(i)], depth + 1)) return false;
    }
  } else if (type == api_.DictType) {
    out->kind = Value::Kind::kDict;
    ssize_t pos = 0;
    PyObject *key = nullptr, *item = nullptr;
    while (api_.PyDict_Next(obj, &pos, &key, &item)) {
      if (key->ob_type != api_.UnicodeType) {
        api_.PyErr_SetString(api_.ExcTypeError, "dict keys returned to Node must be str");
        return false;
      }
      ssize_t size = 0;
      const char* utf8 = api_.PyUnicode_AsUTF8AndSize(key, &size);
      if (utf8 == nullptr) return false;
      out->dict.emplace_back(std::string(utf8, static_cast<size_t>(size)), Value());
      if (!FromPython(item, &out->dict.back().second, depth + 1)) return false;
    }
  } else {
    api_.PyErr_SetString(api_.ExcTypeError,
                         "cannot return this Python object to Node (the bridge exports tensors, numbers, "
                         "str, bytes, None, lists, tuples and dicts)");
    return false;
  }
  return true;
}

}  // namespace coil
