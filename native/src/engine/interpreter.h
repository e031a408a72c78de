// One isolated CPython interpreter: a private copy of libpython (and of every
// library it loads) in its own link-map namespace, initialised, used and kept
// on one dedicated OS thread that is never allowed to exit (docs/engine.md,
// facts 1-8). This file is the thread, its queue of jobs and their interrupts;
// bootstrap.* starts Python, marshal.* converts values.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "job.h"

namespace coil {

class Marshal;
struct PyObject;
struct PythonApi;
struct PyThreadState;

struct InterpreterOptions {
  std::string library;     // path of the shared libpython to load
  std::string executable;  // the python executable it belongs to (drives prefix / venv discovery)
  std::vector<std::string> sys_path;  // sys.path exactly as that executable reports it
  std::string bridge_path;            // native/python/coil_bridge.py
};

class Interpreter {
 public:
  enum class CancelResult { kNotFound, kDequeued, kInterrupting };

  // Starts the thread. `init_job` completes through `sink` once Python is up
  // (ok, result = Python version string) or could not start (error).
  Interpreter(int index, InterpreterOptions options, CompletionSink* sink, std::unique_ptr<Job> init_job);
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;
  // Interpreters live as long as the process (namespaces are never given back),
  // so there is no destructor that joins: see docs/engine.md, fact 8.
  ~Interpreter() = delete;

  void Submit(std::unique_ptr<Job> job);

  // Queued: removed and completed with `code`. Running: Python is interrupted at
  // its next bytecode boundary with a BaseException, reported as `code`. Touches
  // nothing of Python: any thread may call it (see interpreter.cc).
  CancelResult Cancel(uint64_t job_id, const std::string& code);

  // Ids of the queued jobs and of the one running (if any), in order.
  std::vector<uint64_t> JobIds();

  // Jobs queued plus the one running.
  size_t Load() const { return load_.load(std::memory_order_relaxed); }
  // Seconds this interpreter's thread has spent running jobs, since it started.
  double BusySeconds() const { return static_cast<double>(busy_ns_.load(std::memory_order_relaxed)) * 1e-9; }
  int index() const { return index_; }

 private:
  void ThreadMain();
  bool Initialize(JobError* error);
  void Run(Job& job);
  void TakeError(Job& job);
  PyObject* BridgeFunction(const std::string& name);
  void SetCurrentJob(uint64_t id);

  const int index_;
  const InterpreterOptions options_;
  CompletionSink* const sink_;
  std::unique_ptr<Job> init_job_;

  // Python's side; touched only by this interpreter's thread.
  const std::unique_ptr<PythonApi> api_;
  std::unique_ptr<Marshal> marshal_;
  PyThreadState* thread_state_ = nullptr;
  PyObject* bridge_ = nullptr;
  unsigned long thread_ident_ = 0;  // CPython's id of this interpreter's thread
  std::unordered_map<std::string, PyObject*> functions_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool failed_ = false;  // initialisation failed: every job fails with init_error_
  JobError init_error_;
  std::atomic<size_t> load_{0};
  std::atomic<uint64_t> busy_ns_{0};
  std::atomic<uint64_t> running_job_{0};
  std::atomic<uint64_t> interrupt_job_{0};
  std::string interrupt_code_;  // guarded by mutex_
  int wake_fd_ = -1;            // write end of the watchdog's pipe: job ids to interrupt
  std::thread thread_;
};

}  // namespace coil
