#include "interpreter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bootstrap.h"
#include "marshal.h"
#include "python_api.h"

namespace coil {

namespace {

void Fail(Job& job, const std::string& code, const std::string& message) {
  job.ok = false;
  job.error = JobError{code, message, "", ""};
}

}  // namespace

Interpreter::Interpreter(int index, InterpreterOptions options, CompletionSink* sink,
                         std::unique_ptr<Job> init_job)
    : index_(index),
      options_(std::move(options)),
      sink_(sink),
      init_job_(std::move(init_job)),
      api_(std::make_unique<PythonApi>()) {
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
  // own (docs/engine.md, fact 3; seen crashing). Instead the bridge's watchdog, a
  // thread of the interpreter itself, reads the job id from this pipe and, if that
  // job is still running, raises CoilInterrupt in it (PyThreadState_SetAsyncExc).
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
  api_->PyErr_Fetch(&type, &value, &tb);
  PyRef number(api_.get(), api_->PyLong_FromUnsignedLongLong(id));
  if (!number || api_->PyObject_SetAttrString(bridge_, "current_job", number.get()) != 0) api_->PyErr_Clear();
  api_->PyErr_Restore(type, value, tb);
}

void Interpreter::ThreadMain() {
  JobError error;
  bool ok = Initialize(&error);
  std::unique_ptr<Job> init = std::move(init_job_);
  init->ok = ok;
  if (ok) {
    init->result.kind = Value::Kind::kStr;
    init->result.s = api_->Py_GetVersion();
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
  // Park: a thread of a namespace must not exit while the process lives
  // (docs/engine.md, fact 3).
  for (;;) pause();
}

bool Interpreter::Initialize(JobError* error) {
  if (!StartPython(options_, api_.get(), error)) return false;
  marshal_ = std::make_unique<Marshal>(api_.get());
  bool ok = false;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    error->code = "PYTHON_INIT_FAILED";
    error->message = std::string("cannot create the interrupt pipe: ") + std::strerror(errno);
  } else {
    wake_fd_ = fds[1];
    bridge_ = ImportBridge(*api_, options_, fds[0], marshal_.get(), error);
    ok = bridge_ != nullptr;
  }
  thread_ident_ = api_->PyThread_get_thread_ident();
  // Idle interpreters hold no GIL, so threads the model starts keep running.
  thread_state_ = api_->PyEval_SaveThread();
  return ok;
}

PyObject* Interpreter::BridgeFunction(const std::string& name) {
  auto it = functions_.find(name);
  if (it != functions_.end()) return it->second;
  PyObject* fn = api_->PyObject_GetAttrString(bridge_, name.c_str());
  if (fn != nullptr) functions_.emplace(name, fn);
  return fn;
}

void Interpreter::Run(Job& job) {
  api_->PyEval_RestoreThread(thread_state_);
  // Current from the start, so a cancel during input conversion is not lost...
  SetCurrentJob(job.id);
  Marshal::InputViews views;
  if (interrupt_job_.load() == job.id) {
    // ...and one that came while this thread waited for the GIL fails it now.
    std::lock_guard<std::mutex> lock(mutex_);
    Fail(job, interrupt_code_, "interrupted before the call started");
  } else {
    PyObject* fn = BridgeFunction(job.function);
    PyRef args(api_.get(), fn != nullptr ? api_->PyTuple_New(static_cast<ssize_t>(job.args.size())) : nullptr);
    bool ready = static_cast<bool>(args);
    for (size_t i = 0; ready && i < job.args.size(); ++i) {
      PyObject* item = marshal_->ToPython(job.args[i], &views);
      if (item == nullptr) {
        ready = false;
        break;
      }
      api_->PyTuple_SetItem(args.get(), static_cast<ssize_t>(i), item);
    }
    job.args.clear();  // inputs now live in Python or in `views`
    PyRef result(api_.get(), ready ? api_->PyObject_CallObject(fn, args.get()) : nullptr);
    SetCurrentJob(0);
    if (interrupt_job_.load() == job.id) {
      // An interrupt that arrived as the call returned must not hit the next one.
      api_->PyThreadState_SetAsyncExc(thread_ident_, nullptr);
    }
    args.Reset();
    if (result && marshal_->FromPython(result.get(), &job.result)) {
      job.ok = true;
    } else {
      job.result = Value();
      TakeError(job);
    }
  }
  marshal_->ReleaseInputs(&views);
  thread_state_ = api_->PyEval_SaveThread();
}

void Interpreter::TakeError(Job& job) {
  job.ok = false;
  if (marshal_->TakeError(&job.error)) {  // the bridge's CoilInterrupt: say why it was raised
    std::lock_guard<std::mutex> lock(mutex_);
    job.error.code = interrupt_code_.empty() ? "CANCELLED" : interrupt_code_;
  }
}

}  // namespace coil
