#include "interpreter.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
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

using Clock = std::chrono::steady_clock;

std::atomic<int> g_batch_while_queued{HandOff{}.batch_while_queued};
std::atomic<int> g_batch_window_us{HandOff{}.batch_window_us};
std::atomic<int> g_spin_us{HandOff{}.spin_us};
std::atomic<int> g_max_spin_us{HandOff{}.max_spin_us};
std::atomic<int> g_caller_spin_us{HandOff{}.caller_spin_us};
std::atomic<int> g_contention_check_ms{HandOff{}.contention_check_ms};

// Interpreters of this process that want a CPU: with work (a job queued or running)
// or their thread spinning for a job -- each once, also while a job reaches a
// spinning thread (Interpreter::claim_). A thread spins, and Node's thread polls,
// only while these and Node's thread fit in the CPUs.
std::atomic<int> g_claimed_cpus{0};

// Other processes' threads count too: the kernel's count of runnable threads
// (/proc/loadavg's "R/T"), read now and then by interpreter threads (NoteContention),
// above the CPUs twice running means some wait. Until this time (steady clock, ns),
// nothing spins or polls. (A thread's own involuntary context switches were tried
// first: on an idle 2-vCPU VM they come from this process's own wake-ups too, and
// it backed off all the time.)
std::atomic<int64_t> g_contended_until_ns{0};
std::atomic<int64_t> g_next_contention_check_ns{0};
std::atomic<int> g_over_cpus_in_a_row{0};
std::atomic<uint64_t> g_contention_backoffs{0};
std::atomic<uint64_t> g_job_wait_sleeps{0};
std::atomic<uint64_t> g_caller_wakeups{0};
std::atomic<uint64_t> g_scope_flags_cleared{0};
constexpr auto kContentionBackoff = std::chrono::milliseconds(100);
// Looks in a row over the CPUs before backing off: a burst of this process's own
// helper threads (V8's garbage collector) or a kernel thread passing by lasts less.
constexpr int kContendedLooks = 3;

// Runnable threads on the machine right now (this one included), or -1.
int RunnableThreads() {
  static const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[128];
  ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
  if (n <= 0) return -1;
  text[n] = '\0';
  // "0.52 0.58 0.59 2/171 12345": the fourth field's numerator.
  const char* field = text;
  for (int spaces = 0; spaces < 3 && field != nullptr; ++spaces) {
    field = std::strchr(field, ' ');
    if (field != nullptr) ++field;
  }
  if (field == nullptr) return -1;
  int runnable = 0;
  for (; *field >= '0' && *field <= '9'; ++field) runnable = runnable * 10 + (*field - '0');
  return *field == '/' ? runnable : -1;
}

int UsableCpus() {
  static const int cpus = [] {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
  }();
  return cpus;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int64_t SinceEpochNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

bool CpusFitWith(int extra) {
  if (SinceEpochNs(Clock::now()) < g_contended_until_ns.load(std::memory_order_relaxed)) return false;
  return g_claimed_cpus.load(std::memory_order_relaxed) + extra <= UsableCpus();
}

// glibc marks a thread that is inside a symbol lookup in the global scope with a flag
// in its thread control block ("gscope": 1 in use, 2 someone waits); a dlopen or
// dlclose that frees an old scope array first waits for every other thread's flag to
// clear. Code in a namespace that calls dlsym(RTLD_DEFAULT or RTLD_NEXT) for a symbol
// that does not exist (torch's WaitCounter looks for an optional backend that way, on
// every torch.compile) leaves its thread's flag set: the lookup's error unwinds past
// the handler that clears it (glibc 2.36). The next such dlopen in any other thread --
// torch.compile loading its kernels in another interpreter -- then waits forever
// (docs/engine.md, fact 14). Between jobs this thread is in no lookup: a flag still set
// is that leak, cleared here, and a dlopen waiting on it woken. The flag's place is
// glibc's x86-64 TCB layout (`tcbhead_t.gscope_flag`, unchanged since 2.10).
void ClearLeakedScopeFlag() {
#if defined(__x86_64__) && defined(__GLIBC__)
  int* flag = reinterpret_cast<int*>(reinterpret_cast<char*>(pthread_self()) + 0x1c);
  if (__atomic_load_n(flag, __ATOMIC_RELAXED) == 0) return;
  if (__atomic_exchange_n(flag, 0, __ATOMIC_RELEASE) == 2) {
    syscall(SYS_futex, flag, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }
  g_scope_flags_cleared.fetch_add(1, std::memory_order_relaxed);
#endif
}

}  // namespace

uint64_t ScopeFlagsCleared() { return g_scope_flags_cleared.load(std::memory_order_relaxed); }

void SetHandOff(const HandOff& hand_off) {
  g_batch_while_queued.store(hand_off.batch_while_queued < 1 ? 1 : hand_off.batch_while_queued);
  g_batch_window_us.store(hand_off.batch_window_us < 0 ? 0 : hand_off.batch_window_us);
  g_spin_us.store(hand_off.spin_us < 0 ? 0 : hand_off.spin_us);
  g_max_spin_us.store(hand_off.max_spin_us < 0 ? 0 : hand_off.max_spin_us);
  g_caller_spin_us.store(hand_off.caller_spin_us < 0 ? 0 : hand_off.caller_spin_us);
  g_contention_check_ms.store(hand_off.contention_check_ms < 0 ? 0 : hand_off.contention_check_ms);
  if (hand_off.contention_check_ms <= 0) g_contended_until_ns.store(0, std::memory_order_relaxed);
}

HandOff GetHandOff() {
  return HandOff{g_batch_while_queued.load(), g_batch_window_us.load(), g_spin_us.load(),
                 g_max_spin_us.load(),          g_caller_spin_us.load(),    g_contention_check_ms.load()};
}

bool CpuFreeForCaller() { return CpusFitWith(1); }

uint64_t ContentionBackoffs() { return g_contention_backoffs.load(std::memory_order_relaxed); }
uint64_t JobWaitSleeps() { return g_job_wait_sleeps.load(std::memory_order_relaxed); }
uint64_t CallerWakeups() { return g_caller_wakeups.load(std::memory_order_relaxed); }
void NoteCallerWakeup() { g_caller_wakeups.fetch_add(1, std::memory_order_relaxed); }

static void NoteContention(Clock::time_point now) {
  const int every_ms = g_contention_check_ms.load(std::memory_order_relaxed);
  if (every_ms <= 0) return;
  const int64_t now_ns = SinceEpochNs(now);
  int64_t next = g_next_contention_check_ns.load(std::memory_order_relaxed);
  // One thread looks per period, whichever gets there first.
  if (now_ns < next || !g_next_contention_check_ns.compare_exchange_strong(
                           next, SinceEpochNs(now + std::chrono::milliseconds(every_ms)),
                           std::memory_order_relaxed)) {
    return;
  }
  const int runnable = RunnableThreads();
  if (runnable < 0 || runnable <= UsableCpus()) {
    g_over_cpus_in_a_row.store(0, std::memory_order_relaxed);
    return;
  }
  if (g_over_cpus_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1 >= kContendedLooks) {
    g_contended_until_ns.store(SinceEpochNs(now + kContentionBackoff), std::memory_order_relaxed);
    g_contention_backoffs.fetch_add(1, std::memory_order_relaxed);
    g_over_cpus_in_a_row.store(0, std::memory_order_relaxed);
  }
}

// claim_ is 2 per job in flight, plus 1 while the thread spins: the interpreter claims
// a CPU while it is not 0. Every change is one atomic add on that word, so the moves
// of g_claimed_cpus (at 0 -> not 0 and back) follow its order, from any thread.
void Interpreter::Claim(unsigned amount) {
  if (claim_.fetch_add(amount, std::memory_order_relaxed) == 0) g_claimed_cpus.fetch_add(1, std::memory_order_relaxed);
}

void Interpreter::Unclaim(unsigned amount) {
  if (claim_.fetch_sub(amount, std::memory_order_relaxed) == amount) {
    g_claimed_cpus.fetch_sub(1, std::memory_order_relaxed);
  }
}

Interpreter::Interpreter(int index, InterpreterOptions options, CompletionSink* sink,
                         std::unique_ptr<Job> init_job)
    : index_(index),
      options_(std::move(options)),
      sink_(sink),
      init_job_(std::move(init_job)),
      api_(std::make_unique<PythonApi>()) {
  Claim(kJob);  // initialisation counts as work in flight
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
  Claim(kJob);
  job->submitted_at = Clock::now();
  queue_.push_back(std::move(job));
  queued_.store(queue_.size(), std::memory_order_release);
  lock.unlock();
  wake_.notify_one();
}

Interpreter::CancelResult Interpreter::Cancel(uint64_t job_id, const std::string& code) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->id != job_id) continue;
    std::unique_ptr<Job> job = std::move(*it);
    queue_.erase(it);
    queued_.store(queue_.size(), std::memory_order_release);
    Unclaim(kJob);
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
    Unclaim(kJob);
    if (!ok) {
      failed_ = true;
      init_error_ = error;
      orphans.swap(queue_);
      queued_.store(0);
      while (Load() > 0) Unclaim(kJob);
    }
  }
  sink_->Complete(std::move(init));
  for (auto& job : orphans) {
    job->ok = false;
    job->error = error;
    sink_->Complete(std::move(job));
  }

  if (ok) Serve();
  // Park: a thread of a namespace must not exit while the process lives
  // (docs/engine.md, fact 3).
  for (;;) pause();
}

void Interpreter::Serve() {
  Batch finished;
  Clock::time_point first_finished{};
  Clock::duration longest_run{};
  Clock::duration typical_wait{};
  for (;;) {
    std::unique_ptr<Job> job = NextJob(&finished, &typical_wait);
    const auto started = Clock::now();
    Run(*job);
    const auto ended = Clock::now();
    job->queued_seconds = std::chrono::duration<double>(started - job->submitted_at).count();
    job->run_seconds = std::chrono::duration<double>(ended - started).count();
    busy_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(ended - started).count()),
                       std::memory_order_relaxed);
    running_job_.store(0);
    Unclaim(kJob);
    NoteContention(ended);
    // The longest job here lately: the longest run, decaying by 1/8 a job, so that
    // after a long job it takes dozens of short ones before results are held again.
    longest_run = std::max(ended - started, longest_run - longest_run / 8);
    if (finished.empty()) first_finished = ended;
    finished.push_back(std::move(job));
    // Hold the results back only while enough work is queued that the callers'
    // thread has nothing to wait for, and only if the next job, if no longer than
    // the longest lately, ends inside the window: a run of small jobs batches; a held
    // result waits for a long job only if that one is longer than any in a long while.
    const int window_us = g_batch_window_us.load(std::memory_order_relaxed);
    const bool hold = window_us > 0 &&
                      queued_.load(std::memory_order_acquire) >=
                          static_cast<size_t>(g_batch_while_queued.load(std::memory_order_relaxed)) &&
                      ended - first_finished + longest_run < std::chrono::microseconds(window_us);
    if (!hold) sink_->CompleteAll(&finished);
  }
}

std::unique_ptr<Job> Interpreter::NextJob(Batch* finished, Clock::duration* typical_wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  bool spun = false;
  Clock::time_point waiting_since{};
  while (queue_.empty()) {
    lock.unlock();
    if (!finished->empty()) {
      // Nothing left to run (cancels may have emptied the queue too): deliver what
      // was held back before waiting.
      sink_->CompleteAll(finished);
    } else if (!spun) {
      spun = true;
      waiting_since = Clock::now();
      SpinForWork(SpinBudget(*typical_wait));
    } else {
      lock.lock();
      if (queue_.empty()) g_job_wait_sleeps.fetch_add(1, std::memory_order_relaxed);
      wake_.wait(lock, [this] { return !queue_.empty(); });
      break;
    }
    lock.lock();
  }
  // How long this thread waits for its next job lately (0 when one was queued), a
  // moving average over ~8 jobs: what the next spin is sized on.
  const Clock::duration waited = spun ? Clock::now() - waiting_since : Clock::duration::zero();
  *typical_wait += (waited - *typical_wait) / 8;
  std::unique_ptr<Job> job = std::move(queue_.front());
  queue_.pop_front();
  queued_.store(queue_.size(), std::memory_order_release);
  running_job_.store(job->id);
  return job;
}

// A sleep costs the next call far more than its own time on a VM (docs/engine.md,
// "What the host costs a call"): where twice the wait for a job lately is under
// `max_spin_us`, spin through that -- one caller's turn in Node between two calls
// takes ~60-160 us here, past a fixed `spin_us` -- else `spin_us`.
std::chrono::microseconds Interpreter::SpinBudget(Clock::duration typical_wait) {
  const std::chrono::microseconds base(g_spin_us.load(std::memory_order_relaxed));
  const std::chrono::microseconds longest(g_max_spin_us.load(std::memory_order_relaxed));
  if (base.count() <= 0) return base;
  const auto through = std::chrono::duration_cast<std::chrono::microseconds>(2 * typical_wait);
  return through <= longest ? std::max(base, through) : base;
}

void Interpreter::SpinForWork(std::chrono::microseconds budget) {
  if (budget.count() <= 0) return;
  Claim(kSpinning);
  // This thread (counted now) and Node's main thread must both fit, and keep fitting:
  // an interpreter given work meanwhile wants its CPU back.
  if (CpusFitWith(1)) {
    const auto until = Clock::now() + budget;
    for (unsigned i = 1; queued_.load(std::memory_order_acquire) == 0; ++i) {
      CpuRelax();
      if ((i & 63) == 0 && (Clock::now() >= until || !CpusFitWith(1))) break;
    }
  }
  Unclaim(kSpinning);
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
    bridge_ = ImportBridge(*api_, options_, fds[0], &python_job_, marshal_.get(), error);
    ok = bridge_ != nullptr;
  }
  thread_ident_ = api_->PyThread_get_thread_ident();
  // Idle interpreters hold no GIL, so threads the model starts keep running.
  thread_state_ = api_->PyEval_SaveThread();
  ClearLeakedScopeFlag();
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
    marshal_->RefreshNativeTensors();
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
    // The call may have loaded torch or set a backend's hooks (not read with its error pending).
    if (result) marshal_->RefreshNativeTensors();
    if (result && marshal_->FromPython(result.get(), &job.result)) {
      job.ok = true;
    } else {
      job.result = Value();
      TakeError(job);
    }
  }
  marshal_->ReleaseInputs(&views);
  thread_state_ = api_->PyEval_SaveThread();
  ClearLeakedScopeFlag();
}

void Interpreter::TakeError(Job& job) {
  job.ok = false;
  if (marshal_->TakeError(&job.error)) {  // the bridge's CoilInterrupt: say why it was raised
    std::lock_guard<std::mutex> lock(mutex_);
    job.error.code = interrupt_code_.empty() ? "CANCELLED" : interrupt_code_;
  }
}

}  // namespace coil
