// One unit of work for an interpreter: call a function of the Python bridge
// with converted arguments, then carry the result or the error back.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "value.h"

namespace coil {

struct JobError {
  std::string code;  // a CoilError code: PYTHON_ERROR, CANCELLED, DEADLINE_EXCEEDED, ...
  std::string message;
  std::string python_type;  // PYTHON_ERROR only
  std::string traceback;    // PYTHON_ERROR only
};

struct Job {
  uint64_t id = 0;
  std::string function;     // attribute of coil_bridge to call with `args`
  std::vector<Value> args;  // consumed when the job starts
  void* context = nullptr;  // the submitter's bookkeeping, returned untouched

  // Set by the interpreter: when the job was queued, how long it waited there,
  // how long it ran (zero for a job that never ran).
  std::chrono::steady_clock::time_point submitted_at{};
  double queued_seconds = 0;
  double run_seconds = 0;

  bool ok = false;
  Value result;
  JobError error;
};

// Receives finished jobs: on the interpreter's thread, or on the caller's for a job
// cancelled while queued or submitted to an interpreter that failed to start.
// Must be thread-safe.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  virtual void Complete(std::unique_ptr<Job> job) = 0;
  // Several finished jobs at once, so that a sink that must wake another thread
  // wakes it once for all of them (docs/engine.md, "Where a call's time goes").
  // Leaves `jobs` empty.
  virtual void CompleteAll(std::vector<std::unique_ptr<Job>>* jobs) {
    for (auto& job : *jobs) Complete(std::move(job));
    jobs->clear();
  }
};

}  // namespace coil
