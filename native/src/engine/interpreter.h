// One isolated CPython interpreter: a private copy of libpython (and of every
// library it loads) in its own link-map namespace, initialised, used and kept
// on one dedicated OS thread that is never allowed to exit (docs/engine.md,
// facts 1-8). This file is the thread, its queue of jobs and their interrupts;
// bootstrap.* starts Python, marshal.* converts values.
#pragma once

#include <atomic>
#include <chrono>
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
  // The built libcoil_namespace.so, loaded first in the namespace so that no dlopen in
  // it can ask for RTLD_GLOBAL (namespace.h); empty loads libpython alone.
  std::string namespace_root;
};

// How finished jobs reach the sink and new jobs reach an interpreter's thread, for
// every interpreter of the process. On a VM each wake-up of another thread costs
// microseconds in the kernel, more than a small model's call (docs/engine.md,
// "Where a call's time goes"), so:
// - while at least `batch_while_queued` jobs are still queued, finished jobs are
//   held back and handed to the sink together, one wake-up for the lot, as long as
//   the next job, if no longer than the longest this thread ran lately, ends within
//   `batch_window_us` of the first of them (0: each job alone) -- so runs of small
//   jobs batch, and a result waits for a long job only if it is the first long one
//   in dozens;
// - with its queue empty, a thread spins up to `spin_us` for the next job before it
//   sleeps (or through twice its usual wait for one, where that is under
//   `max_spin_us`), so a caller that answers quickly need not wake it -- only while a CPU is
//   free for it (counting Node's main thread, every interpreter with a job queued or
//   running, and every thread spinning), so spinning never takes a CPU from work.
// - the thread that submits jobs and takes results (Node's main thread) may poll
//   for results instead of sleeping until it is woken, for up to `caller_spin_us`
//   after its last result or submission while jobs are in flight (or through a call
//   as long as twice the longest lately, up to 20 `caller_spin_us`: the addon's
//   PollWindow) -- only while a CPU is free for it (CpuFreeForCaller); interpreters
//   then need not wake it.
// "Free" counts this process's threads against the CPUs it may use, and also backs
// off when other processes want them: when the machine's runnable threads outnumber
// the CPUs on three looks `contention_check_ms` apart, nothing spins or polls for a
// while (ContentionBackoffs counts those times; 0: never look). Each look is a system
// call on an interpreter's thread, which costs a model more than its own time on a
// VM without PCID (docs/engine.md), hence a look every 20 ms, not every call.
struct HandOff {
  int batch_while_queued = 2;
  int batch_window_us = 200;
  int spin_us = 50;
  int max_spin_us = 1000;
  int caller_spin_us = 1000;
  int contention_check_ms = 20;
};
void SetHandOff(const HandOff& hand_off);  // any thread; applies from each thread's next job
HandOff GetHandOff();
// Whether the caller's thread can poll without taking a CPU from an interpreter that
// has work (queued or running) or a thread spinning for it.
bool CpuFreeForCaller();
// How many times spinning and polling were suspended because the CPUs were contended.
uint64_t ContentionBackoffs();
// How many times an interpreter's thread slept waiting for a job (its spin, if any,
// ran out), and how many times one woke Node's thread for results (it was not
// polling): each is a system call and a wake-up the hand-off exists to avoid.
uint64_t JobWaitSleeps();
uint64_t CallerWakeups();
void NoteCallerWakeup();
// How many times an interpreter's thread found glibc's scope-lookup flag left set by
// a failed dlsym in its namespace, and cleared it (interpreter.cc, ClearLeakedScopeFlag).
uint64_t ScopeFlagsCleared();

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
  size_t Load() const { return claim_.load(std::memory_order_relaxed) / kJob; }
  // Seconds this interpreter's thread has spent running jobs, since it started.
  double BusySeconds() const { return static_cast<double>(busy_ns_.load(std::memory_order_relaxed)) * 1e-9; }
  int index() const { return index_; }

 private:
  using Batch = std::vector<std::unique_ptr<Job>>;

  void ThreadMain();
  void Serve();
  std::unique_ptr<Job> NextJob(Batch* finished, std::chrono::steady_clock::duration* typical_wait);
  static std::chrono::microseconds SpinBudget(std::chrono::steady_clock::duration typical_wait);
  void SpinForWork(std::chrono::microseconds budget);  // until a job is queued or the budget is spent

  // A job in flight (queued or running), or the thread spinning for one: either
  // claims a CPU for this interpreter (interpreter.cc, g_claimed_cpus).
  static constexpr unsigned kJob = 2;
  static constexpr unsigned kSpinning = 1;
  void Claim(unsigned amount);
  void Unclaim(unsigned amount);
  bool Initialize(JobError* error);
  void Run(Job& job);
  void TakeError(Job& job);
  PyObject* BridgeFunction(const std::string& name);
  // What the bridge's watchdog compares against: written with the GIL held, like
  // its reads (coil_bridge.current_job()).
  void SetCurrentJob(uint64_t id) { python_job_.store(id, std::memory_order_relaxed); }

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
  std::atomic<size_t> queued_{0};  // queue_.size(), readable without the lock (spinning)
  bool failed_ = false;  // initialisation failed: every job fails with init_error_
  JobError init_error_;
  std::atomic<unsigned> claim_{0};  // kJob per job in flight, + kSpinning while spinning
  std::atomic<uint64_t> busy_ns_{0};

  std::atomic<uint64_t> running_job_{0};
  std::atomic<uint64_t> python_job_{0};  // read by the bridge through ctypes as a uint64
  static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t) && std::atomic<uint64_t>::is_always_lock_free,
                "the bridge reads the job slot as a plain uint64");
  std::atomic<uint64_t> interrupt_job_{0};
  std::string interrupt_code_;  // guarded by mutex_
  int wake_fd_ = -1;            // write end of the watchdog's pipe: job ids to interrupt
  std::thread thread_;
};

}  // namespace coil
