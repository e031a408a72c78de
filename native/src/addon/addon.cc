// The Node-API face of the engine: starts interpreters, submits jobs, and
// settles their promises on the main thread in batches.
#include <napi.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../codecs/json_numbers.h"
#include "../engine/interpreter.h"
#include "convert.h"
#include "libuv.h"

namespace coil {

namespace {

// glibc gives a process 16 link-map namespaces, the main program's included,
// and never gives one back (docs/engine.md, facts 2 and 8).
constexpr int kMaxInterpreters = 15;
std::atomic<int> g_created{0};  // process-wide: worker threads share the namespaces

struct Pending {
  Napi::Promise::Deferred deferred;
  bool settled = false;  // rejected early by cancel(); the job's own result is dropped
  Napi::Reference<Napi::Float64Array> timings;  // optional: [queued, run] seconds, written at settle
};

class Addon : public CompletionSink {
 public:
  explicit Addon(Napi::Env env)
      : env_(env),
        completions_resource_(Napi::Persistent(Napi::Object::New(env))),
        completions_(env, "coil-completions", completions_resource_.Value()) {
    // Results wake the main thread through a libuv async handle of its own, not a
    // thread-safe function: uv_async_send takes no lock, while N-API's thread-safe
    // function holds a mutex across its eventfd write that the main thread takes to
    // drain it -- an interpreter then found it held, or had to wake the main thread
    // blocked on it, a futex system call on the model's thread for most results
    // (docs/engine.md, "The wake-up without a lock").
    uv_loop_s* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
    wake_.owner = this;
    if (!wake_.Fits() || uv_async_init(loop, wake_.async(), &Addon::OnWake) != 0) {
      Napi::Error::New(env, "cannot create the completions' wake-up handle (libuv's uv_async_t)")
          .ThrowAsJavaScriptException();
      return;
    }
    uv_unref(wake_.handle());  // referenced only while calls are in flight
    // An async cleanup hook: the handle must be closed, and its close finish, before
    // the environment's loop goes (a worker's loop is closed with it).
    NAPI_THROW_IF_FAILED_VOID(env, napi_add_async_cleanup_hook(env, &Addon::Teardown, this, nullptr));
    set_immediate_ = Napi::Persistent(env.Global().Get("setImmediate").As<Napi::Function>());
    settle_next_ = Napi::Persistent(Napi::Function::New(
        env, [](const Napi::CallbackInfo& info) { static_cast<Addon*>(info.Data())->SettleBatch(); }, "settleNext",
        this));
    poll_next_ = Napi::Persistent(Napi::Function::New(
        env, [](const Napi::CallbackInfo& info) { static_cast<Addon*>(info.Data())->Poll(); }, "pollResults", this));
  }

  // Interpreter threads: queue the jobs; wake the main thread once per batch.
  void Complete(std::unique_ptr<Job> job) override {
    std::vector<std::unique_ptr<Job>> jobs;
    jobs.push_back(std::move(job));
    CompleteAll(&jobs);
  }

  void CompleteAll(std::vector<std::unique_ptr<Job>>* jobs) override {
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closing_) {  // Node is tearing the environment down; nobody is waiting
        for (auto& job : *jobs) job.release();  // its buffers belong to a dead environment: leave them be
        jobs->clear();
        return;
      }
      for (auto& job : *jobs) done_.push_back(std::move(job));
      has_done_.store(true, std::memory_order_relaxed);
      // A main thread that is polling (Poll) takes them without being woken.
      signal = !signalled_ && !main_polling_;
      if (signal) {
        signalled_ = true;
        signalling_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
    jobs->clear();
    // Outside the lock: the wake-up is a system call, and the main thread takes this
    // lock as soon as it wakes. The cleanup hook waits for it (signalling_).
    if (signal) {
      NoteCallerWakeup();
      uv_async_send(wake_.async());
      signalling_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  // Main thread.
  Napi::Promise Track(uint64_t id, Napi::Float64Array timings = Napi::Float64Array()) {
    Pending* pending = new Pending{Napi::Promise::Deferred::New(env_), false, {}};
    if (!timings.IsEmpty()) pending->timings = Napi::Persistent(timings);
    pending_.emplace(id, pending);
    // In-flight work keeps the event loop (and so the process) alive
    // (docs/engine.md, fact 7).
    if (in_flight_++ == 0) uv_ref(wake_.handle());
    last_progress_ = std::chrono::steady_clock::now();
    StartPolling();
    return pending->deferred.Promise();
  }

  // Main thread: rejects the promise now; the job's eventual completion is dropped.
  bool RejectEarly(uint64_t id, const std::string& code, const std::string& message) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second->settled) return false;
    it->second->settled = true;
    it->second->deferred.Reject(MakeError(code, message, "", "").Value());
    return true;
  }

  // A handle that keeps `buffer` alive; dropping it on any thread queues the
  // release for the main thread.
  std::shared_ptr<void> Retain(Napi::Value buffer) {
    napi_ref ref = nullptr;
    napi_create_reference(env_, buffer, 1, &ref);
    return std::shared_ptr<void>(ref, [this](void* r) {
      std::lock_guard<std::mutex> lock(mutex_);
      releases_.push_back(static_cast<napi_ref>(r));
      has_releases_.store(true, std::memory_order_relaxed);
    });
  }

  Napi::Error MakeError(const std::string& code, const std::string& message, const std::string& python_type,
                        const std::string& traceback) {
    Napi::Object details = Napi::Object::New(env_);
    if (!python_type.empty()) details.Set("pythonType", python_type);
    if (!traceback.empty()) details.Set("pythonTraceback", traceback);
    if (!create_error_.IsEmpty()) {
      Napi::Value err = create_error_.Call({Napi::String::New(env_, code), Napi::String::New(env_, message), details});
      return Napi::Error(env_, err);
    }
    Napi::Error err = Napi::Error::New(env_, message);
    err.Set("code", code);
    return err;
  }

  void DrainReleases() {
    // Looked at without the lock first: Poll runs this hundreds of thousands of
    // times a second, and each time it took the lock an interpreter finishing a job
    // could find it held and sleep (a system call: docs/engine.md).
    if (!has_releases_.load(std::memory_order_acquire)) return;
    std::vector<napi_ref> releases;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      releases.swap(releases_);
      has_releases_.store(false, std::memory_order_relaxed);
    }
    for (napi_ref ref : releases) napi_delete_reference(env_, ref);
  }

  Napi::Env env_;
  Napi::FunctionReference set_immediate_;  // node:timers' setImmediate (configure), else the global one
  Napi::FunctionReference settle_next_;    // calls SettleBatch()
  Napi::FunctionReference poll_next_;      // calls Poll()
  TensorClass tensor_class_;
  Napi::FunctionReference decode_result_;
  Napi::FunctionReference create_error_;
  std::vector<Interpreter*> interpreters_;  // never freed: they live as long as the process

 private:
  // Main thread, from libuv: in a callback scope, so that the promises' reactions
  // (microtasks) run when it closes, as for any callback into JavaScript. No C++
  // exception may leave it: one is reported as Node reports a callback's throw
  // (uncaughtException) -- where the environment is stopping and JavaScript no
  // longer runs (a worker being terminated), that report fails and the error is dropped.
  static void OnWake(uv_async_s* handle) {
    Addon* addon = AsyncWake<Addon>::OwnerOf(handle);
    try {
      Napi::HandleScope scope(addon->env_);  // the error's handle lives in it too
      try {
        // Opened on the context's own resource: Napi::CallbackScope makes a new
        // object for each.
        napi_callback_scope opened = nullptr;
        NAPI_THROW_IF_FAILED_VOID(addon->env_,
                                  napi_open_callback_scope(addon->env_, addon->completions_resource_.Value(),
                                                           addon->completions_, &opened));
        Napi::CallbackScope callback(addon->env_, opened);
        addon->SettleBatch();
      } catch (const Napi::Error& error) {
        napi_fatal_exception(addon->env_, error.Value());
      }
    } catch (...) {  // not even a handle scope: nothing to report with
    }
  }

  // The environment is going: no interpreter may wake it from now on (CompleteAll
  // checks closing_), and one already past that check finishes its uv_async_send
  // before the handle is closed.
  static void Teardown(napi_async_cleanup_hook_handle hook, void* self) {
    auto* addon = static_cast<Addon*>(self);
    {
      std::lock_guard<std::mutex> lock(addon->mutex_);
      addon->closing_ = true;
    }
    while (addon->signalling_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    addon->teardown_ = hook;
    uv_close(addon->wake_.handle(), [](uv_handle_s* handle) {
      napi_remove_async_cleanup_hook(AsyncWake<Addon>::OwnerOf(handle)->teardown_);
    });
  }

  // Settles the finished jobs. Jobs finishing meanwhile don't signal again: if any
  // are waiting afterwards, the next batch runs from setImmediate. Node's dispatch
  // loop would otherwise pick up each new signal in the same event-loop turn (up to
  // a thousand times), and timers -- deadlines among them -- would wait.
  void SettleBatch() {
    Napi::HandleScope scope(env_);
    SettleFinished();
    bool more;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      more = !done_.empty();
      if (!more) signalled_ = false;  // the next completion signals again
    }
    if (more) set_immediate_.Call({settle_next_.Value()});
  }

  // Main thread: while calls are in flight and a CPU is free, look for results from
  // setImmediate (the event loop keeps serving I/O and timers, without sleeping)
  // rather than sleep until an interpreter wakes this thread -- on a VM, the wake-up
  // of an idle CPU costs more than a small model's call (engine/interpreter.h,
  // HandOff). Stops callerSpinUs after the last result or submission.
  void StartPolling() {
    if (polling_ || GetHandOff().caller_spin_us <= 0 || !CpuFreeForCaller()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closing_) return;
      main_polling_ = true;
    }
    polling_ = true;
    set_immediate_.Call({poll_next_.Value()});
  }

  void Poll() {
    Napi::HandleScope scope(env_);
    polling_ = false;
    const auto now = std::chrono::steady_clock::now();
    if (SettleFinished()) last_progress_ = now;
    if (in_flight_ > 0 && now - last_progress_ < PollWindow() && CpuFreeForCaller()) {
      polling_ = true;
      set_immediate_.Call({poll_next_.Value()});
      return;
    }
    bool leftover;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      main_polling_ = false;  // from here on, results wake this thread again
      leftover = !done_.empty() && !signalled_;
      if (leftover) signalled_ = true;
    }
    if (leftover) set_immediate_.Call({settle_next_.Value()});
  }

  // How long Poll keeps looking with no result: callerSpinUs, or through a call as
  // long as the longest lately (twice over) -- if it stopped mid-call, the result
  // would have to wake this thread, and the interpreter, whose spin ends before this
  // thread has answered, would sleep too (docs/engine.md) -- up to 20 callerSpinUs:
  // past that the wake-ups cost under 1% of a call, and polling is no longer worth
  // its CPU.
  std::chrono::microseconds PollWindow() const {
    const std::chrono::microseconds spin(GetHandOff().caller_spin_us);
    return std::max(spin, std::min(2 * longest_run_, 20 * spin));
  }

  // Main thread: settles the jobs finished so far; whether there were any.
  bool SettleFinished() {
    std::vector<std::unique_ptr<Job>> done;
    // Without the lock when nothing finished (see DrainReleases); a result missed
    // here is taken by the next look, and Poll and SettleBatch check under the lock
    // before they stop looking.
    if (has_done_.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(mutex_);
      done.swap(done_);
      has_done_.store(false, std::memory_order_relaxed);
    }
    const bool any = !done.empty();
    for (auto& job : done) Settle(*job);
    done.clear();  // the jobs' inputs queue their buffers' release...
    DrainReleases();  // ...done here
    return any;
  }

  void Settle(Job& job) {
    // The longest call lately, decaying by 1/8 a call (as the interpreters' own).
    const auto run = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::duration<double>(job.run_seconds));
    longest_run_ = std::max(run, longest_run_ - longest_run_ / 8);
    auto it = pending_.find(job.id);
    if (it == pending_.end()) return;
    std::unique_ptr<Pending> pending(it->second);
    pending_.erase(it);
    if (--in_flight_ == 0) uv_unref(wake_.handle());
    if (pending->settled) return;
    if (!pending->timings.IsEmpty()) {
      Napi::Float64Array timings = pending->timings.Value();
      timings[0] = job.queued_seconds;
      timings[1] = job.run_seconds;
    }
    if (!job.ok) {
      pending->deferred.Reject(
          MakeError(job.error.code, job.error.message, job.error.python_type, job.error.traceback).Value());
      return;
    }
    try {
      pending->deferred.Resolve(FromValue(env_, job.result, decode_result_.Value()));
    } catch (const Napi::Error& e) {
      pending->deferred.Reject(e.Value());
    }
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<Job>> done_;
  std::vector<napi_ref> releases_;
  bool signalled_ = false;
  bool closing_ = false;
  bool main_polling_ = false;  // the main thread polls for results: don't wake it
  bool polling_ = false;       // main thread only: a Poll() is scheduled
  std::chrono::steady_clock::time_point last_progress_;  // main thread only
  std::chrono::microseconds longest_run_{0};            // main thread only: see PollWindow
  std::atomic<int> signalling_{0};  // interpreter threads inside uv_async_send
  AsyncWake<Addon> wake_;            // wakes the main thread: OnWake
  Napi::ObjectReference completions_resource_;
  Napi::AsyncContext completions_;  // what OnWake's callback scope runs as
  napi_async_cleanup_hook_handle teardown_ = nullptr;
  // Set with done_ / releases_ under mutex_, cleared when the main thread takes them:
  // lets the main thread look without the lock.
  std::atomic<bool> has_done_{false};
  std::atomic<bool> has_releases_{false};
  std::unordered_map<uint64_t, Pending*> pending_;
  size_t in_flight_ = 0;
};

void KeepAddon(Napi::Env, Addon*) {}

Addon& GetAddon(Napi::Env env) { return *env.GetInstanceData<Addon>(); }

Napi::Value ThrowCoil(Napi::Env env, const std::string& code, const std::string& message) {
  GetAddon(env).MakeError(code, message, "", "").ThrowAsJavaScriptException();
  return env.Undefined();
}

// JS: one interpreter. Created only by startInterpreter().
class InterpreterWrap : public Napi::ObjectWrap<InterpreterWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeInterpreter",
                       {
                           InstanceMethod<&InterpreterWrap::Call>("call"),
                           InstanceMethod<&InterpreterWrap::Cancel>("cancel"),
                           InstanceMethod<&InterpreterWrap::CancelAll>("cancelAll"),
                           InstanceAccessor<&InterpreterWrap::GetLoad>("load"),
                           InstanceAccessor<&InterpreterWrap::GetIndex>("index"),
                           InstanceAccessor<&InterpreterWrap::GetBusySeconds>("busySeconds"),
                       });
  }

  explicit InterpreterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InterpreterWrap>(info) {}

  Interpreter* interpreter = nullptr;

 private:
  // call(functionName: string, args: unknown[], jobId: number, timings?: Float64Array(2)):
  //   Promise<unknown>; timings, when given, receives [seconds queued, seconds run]
  //   just before the promise settles.
  Napi::Value Call(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Addon& addon = GetAddon(env);
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsNumber()) {
      return ThrowCoil(env, "INVALID_ARGUMENT", "call(functionName, args[], jobId[, timings])");
    }
    Napi::Float64Array timings;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
          info[3].As<Napi::Float64Array>().ElementLength() < 2) {
        return ThrowCoil(env, "INVALID_ARGUMENT", "call's timings must be a Float64Array of at least 2 elements");
      }
      timings = info[3].As<Napi::Float64Array>();
    }
    addon.DrainReleases();
    auto job = std::make_unique<Job>();
    job->id = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
    job->function = info[0].As<Napi::String>().Utf8Value();
    ConvertContext ctx{env, &addon.tensor_class_, [&addon](Napi::Value v) { return addon.Retain(v); }};
    Napi::Array args = info[1].As<Napi::Array>();
    try {
      job->args.reserve(args.Length());
      for (uint32_t i = 0; i < args.Length(); ++i) job->args.push_back(ToValue(ctx, args.Get(i)));
    } catch (const ConvertError& e) {
      job.reset();
      addon.DrainReleases();
      return ThrowCoil(env, e.code, e.message);
    }
    Napi::Promise promise = addon.Track(job->id, timings);
    interpreter->Submit(std::move(job));
    return promise;
  }

  // cancel(jobId: number, code: "CANCELLED" | "DEADLINE_EXCEEDED", message: string):
  //   "dequeued" | "interrupting" | "unknown"
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsString()) {
      return ThrowCoil(env, "INVALID_ARGUMENT", "cancel(jobId, code, message)");
    }
    auto id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    std::string code = info[1].As<Napi::String>().Utf8Value();
    bool rejected = GetAddon(env).RejectEarly(id, code, info[2].As<Napi::String>().Utf8Value());
    if (!rejected) return Napi::String::New(env, "unknown");
    switch (interpreter->Cancel(id, code)) {
      case Interpreter::CancelResult::kDequeued:
        return Napi::String::New(env, "dequeued");
      case Interpreter::CancelResult::kInterrupting:
        return Napi::String::New(env, "interrupting");
      default:
        return Napi::String::New(env, "unknown");
    }
  }

  // cancelAll(code, message): cancels every job queued or running; returns how many.
  Napi::Value CancelAll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
      return ThrowCoil(env, "INVALID_ARGUMENT", "cancelAll(code, message)");
    }
    std::string code = info[0].As<Napi::String>().Utf8Value();
    std::string message = info[1].As<Napi::String>().Utf8Value();
    Addon& addon = GetAddon(env);
    uint32_t cancelled = 0;
    for (uint64_t id : interpreter->JobIds()) {
      if (!addon.RejectEarly(id, code, message)) continue;
      interpreter->Cancel(id, code);
      ++cancelled;
    }
    return Napi::Number::New(env, cancelled);
  }

  Napi::Value GetLoad(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(interpreter->Load()));
  }
  Napi::Value GetBusySeconds(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), interpreter->BusySeconds());
  }
  Napi::Value GetIndex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), interpreter->index()); }
};

Napi::FunctionReference* g_interpreter_class = nullptr;

// configure({ tensorClass, decodeResult(program, packed, ...spread), createError(code, message, details),
//             setImmediate? }): decodeResult builds a result from FromValue's encoding (convert.cc).
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addon& addon = GetAddon(env);
  if (info.Length() < 1 || !info[0].IsObject()) return ThrowCoil(env, "INVALID_ARGUMENT", "configure(hooks)");
  Napi::Object hooks = info[0].As<Napi::Object>();
  Napi::Value tensor_class = hooks.Get("tensorClass");
  Napi::Value decode_result = hooks.Get("decodeResult");
  Napi::Value create_error = hooks.Get("createError");
  if (!tensor_class.IsFunction() || !decode_result.IsFunction() || !create_error.IsFunction()) {
    return ThrowCoil(env, "INVALID_ARGUMENT", "configure needs tensorClass, decodeResult and createError functions");
  }
  if (!tensor_class.As<Napi::Function>().Get("prototype").IsObject()) {
    return ThrowCoil(env, "INVALID_ARGUMENT", "configure's tensorClass must be a class");
  }
  addon.tensor_class_.Set(tensor_class.As<Napi::Function>());
  addon.decode_result_ = Napi::Persistent(decode_result.As<Napi::Function>());
  addon.create_error_ = Napi::Persistent(create_error.As<Napi::Function>());
  // node:timers' setImmediate, which fake timers in tests leave alone (they replace
  // the global one this addon took at load).
  Napi::Value set_immediate = hooks.Get("setImmediate");
  if (set_immediate.IsFunction()) addon.set_immediate_ = Napi::Persistent(set_immediate.As<Napi::Function>());
  return env.Undefined();
}

// startInterpreter({ library, executable, sysPath, bridgePath, namespaceRoot?, jobId }):
//   { interpreter, ready: Promise<string /* Python version */> }
Napi::Value StartInterpreter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addon& addon = GetAddon(env);
  if (info.Length() < 1 || !info[0].IsObject()) return ThrowCoil(env, "INVALID_ARGUMENT", "startInterpreter(options)");
  Napi::Object opts = info[0].As<Napi::Object>();
  if (!opts.Get("library").IsString() || !opts.Get("executable").IsString() || !opts.Get("bridgePath").IsString() ||
      !opts.Get("sysPath").IsArray() || !opts.Get("jobId").IsNumber()) {
    return ThrowCoil(env, "INVALID_ARGUMENT",
                     "startInterpreter needs library, executable, bridgePath (strings), sysPath (string[]), jobId");
  }
  int index = g_created.fetch_add(1);
  if (index >= kMaxInterpreters) {
    g_created.fetch_sub(1);
    return ThrowCoil(env, "INTERPRETER_LIMIT",
                     "this process has already created " + std::to_string(kMaxInterpreters) +
                         " interpreters, the most glibc's 16 link-map namespaces allow; namespaces are never "
                         "given back, so reuse interpreters (close pools to return theirs)");
  }
  InterpreterOptions options;
  options.library = opts.Get("library").As<Napi::String>().Utf8Value();
  options.executable = opts.Get("executable").As<Napi::String>().Utf8Value();
  options.bridge_path = opts.Get("bridgePath").As<Napi::String>().Utf8Value();
  if (opts.Get("namespaceRoot").IsString()) options.namespace_root = opts.Get("namespaceRoot").As<Napi::String>().Utf8Value();
  Napi::Array sys_path = opts.Get("sysPath").As<Napi::Array>();
  for (uint32_t i = 0; i < sys_path.Length(); ++i) options.sys_path.push_back(sys_path.Get(i).ToString().Utf8Value());

  auto init = std::make_unique<Job>();
  init->id = static_cast<uint64_t>(opts.Get("jobId").As<Napi::Number>().Int64Value());
  Napi::Promise ready = addon.Track(init->id);
  auto* interpreter = new Interpreter(index, std::move(options), &addon, std::move(init));
  addon.interpreters_.push_back(interpreter);

  Napi::Object wrap = g_interpreter_class->New({});
  InterpreterWrap::Unwrap(wrap)->interpreter = interpreter;
  Napi::Object result = Napi::Object::New(env);
  result.Set("interpreter", wrap);
  result.Set("ready", ready);
  return result;
}

// replaceProcess(file, argv[], env[]): execve. The process becomes `file` run with
// these arguments and "NAME=value" environment -- the same process (pid, parent,
// process group), so a command that must restart itself with settings read only at
// start (GLIBC_TUNABLES, V8's flags) leaves no parent behind to forward signals or be
// orphaned from. Returns only on failure, by throwing; refused once an interpreter
// exists (their namespaces would vanish mid-call).
Napi::Value ReplaceProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
    return ThrowCoil(env, "INVALID_ARGUMENT", "replaceProcess(file, argv: string[], env: string[])");
  }
  if (g_created.load() > 0) {
    return ThrowCoil(env, "INVALID_ARGUMENT", "replaceProcess: this process already started interpreters");
  }
  auto strings = [](Napi::Array array, std::vector<std::string>* out) {
    for (uint32_t i = 0; i < array.Length(); ++i) out->push_back(array.Get(i).ToString().Utf8Value());
  };
  std::vector<std::string> args, vars;
  strings(info[1].As<Napi::Array>(), &args);
  strings(info[2].As<Napi::Array>(), &vars);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  const std::string file = info[0].As<Napi::String>().Utf8Value();
  // Node marks stdin, stdout and stderr close-on-exec: the new program must keep them.
  for (int fd = 0; fd <= 2; ++fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) != 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  execve(file.c_str(), argv.data(), envp.data());
  return ThrowCoil(env, "INTERNAL", "cannot execute " + file + ": " + std::strerror(errno));
}

// mapFile(path): Uint8Array over a private, copy-on-write mapping of the whole
// file, unmapped when collected. Give each interpreter its own: their clean pages
// are the same page-cache pages (the weights are in memory once), and a write
// copies the page for that mapping alone -- copy-on-write does not separate
// interpreters that share one mapping.
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowCoil(env, "INVALID_ARGUMENT", "mapFile(path)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ThrowCoil(env, "INVALID_ARGUMENT", "cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return ThrowCoil(env, "INVALID_ARGUMENT", path + " is not a regular file");
  }
  auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    close(fd);
    return Napi::Uint8Array::New(env, 0);
  }
  // Writable but private: a model that writes to a weight gets its own copy of
  // that page instead of a crash, and the file is never modified.
  void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  if (data == MAP_FAILED) return ThrowCoil(env, "INVALID_ARGUMENT", "cannot map " + path + ": " + std::strerror(errno));
  auto* length = new size_t(size);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, data, size, [](Napi::Env, void* p, size_t* n) { munmap(p, *n); delete n; }, length);
  return Napi::Uint8Array::New(env, size, buffer, 0);
}

// scanJsonNumbers(bytes: Uint8Array, position, maxLevels, out: Float64Array):
//   [end, count, regular] | null -- see codecs/json_numbers.h (count > out.length: out
//   was too small).
Napi::Value ScanJsonNumbers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    return ThrowCoil(env, "INVALID_ARGUMENT", "scanJsonNumbers(bytes: Uint8Array, position, maxLevels, out: Float64Array)");
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  Napi::Float64Array out = info[3].As<Napi::Float64Array>();
  double position = info[1].As<Napi::Number>().DoubleValue();
  if (!(position >= 0) || position >= static_cast<double>(bytes.ElementLength())) return env.Null();
  codecs::NumberArrayScan scan =
      codecs::ScanJsonNumberArray(bytes.Data(), bytes.ElementLength(), static_cast<size_t>(position),
                                  info[2].As<Napi::Number>().Int32Value(), out.Data(), out.ElementLength());
  if (!scan.ok) return env.Null();
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(scan.end)));
  result.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(scan.count)));
  result.Set(uint32_t{2}, Napi::Boolean::New(env, scan.regular));
  return result;
}

// handOff({ batchWhileQueued?, batchWindowUs?, spinUs?, maxSpinUs?, callerSpinUs?, contentionCheckMs? }?): the process's settings
// after applying those given (engine/interpreter.h, HandOff).
Napi::Value HandOffSettings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HandOff hand_off = GetHandOff();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsObject()) return ThrowCoil(env, "INVALID_ARGUMENT", "handOff(settings?)");
    Napi::Object settings = info[0].As<Napi::Object>();
    struct Field {
      const char* name;
      int* target;
      int min;
    } fields[] = {{"batchWhileQueued", &hand_off.batch_while_queued, 1},
                  {"batchWindowUs", &hand_off.batch_window_us, 0},
                  {"spinUs", &hand_off.spin_us, 0},
                  {"maxSpinUs", &hand_off.max_spin_us, 0},
                  {"callerSpinUs", &hand_off.caller_spin_us, 0},
                  {"contentionCheckMs", &hand_off.contention_check_ms, 0}};
    for (const Field& field : fields) {
      Napi::Value value = settings.Get(field.name);
      if (value.IsUndefined()) continue;
      double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
      if (!(number >= field.min && number <= 1e6) || number != static_cast<double>(static_cast<int>(number))) {
        return ThrowCoil(env, "INVALID_ARGUMENT",
                         std::string("handOff's ") + field.name + " must be an integer from " +
                             std::to_string(field.min) + " to 1000000");
      }
      *field.target = static_cast<int>(number);
    }
    SetHandOff(hand_off);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("batchWhileQueued", hand_off.batch_while_queued);
  result.Set("batchWindowUs", hand_off.batch_window_us);
  result.Set("spinUs", hand_off.spin_us);
  result.Set("maxSpinUs", hand_off.max_spin_us);
  result.Set("callerSpinUs", hand_off.caller_spin_us);
  result.Set("contentionCheckMs", hand_off.contention_check_ms);
  return result;
}

// handOffStats(): { contentionBackoffs, jobWaitSleeps, callerWakeups } -- how often spinning and polling were
// suspended because other threads wanted the CPUs (engine/interpreter.h, HandOff).
Napi::Value HandOffStats(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("contentionBackoffs", static_cast<double>(ContentionBackoffs()));
  result.Set("jobWaitSleeps", static_cast<double>(JobWaitSleeps()));
  result.Set("callerWakeups", static_cast<double>(CallerWakeups()));
  return result;
}

// scopeFlagsCleared(): how many glibc scope-lookup flags left set by a failed dlsym the
// interpreters' threads cleared (engine/interpreter.cc, ClearLeakedScopeFlag).
Napi::Value ScopeFlagsClearedCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(ScopeFlagsCleared()));
}

Napi::Value InterpreterCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_created.load());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Never freed: interpreter threads may complete into it until the process ends.
  env.SetInstanceData<Addon, KeepAddon>(new Addon(env));
  g_interpreter_class = new Napi::FunctionReference(Napi::Persistent(InterpreterWrap::Define(env)));
  exports.Set("configure", Napi::Function::New<Configure>(env, "configure"));
  exports.Set("startInterpreter", Napi::Function::New<StartInterpreter>(env, "startInterpreter"));
  exports.Set("handOff", Napi::Function::New<HandOffSettings>(env, "handOff"));
  exports.Set("handOffStats", Napi::Function::New<HandOffStats>(env, "handOffStats"));
  exports.Set("interpreterCount", Napi::Function::New<InterpreterCount>(env, "interpreterCount"));
  exports.Set("scopeFlagsCleared", Napi::Function::New<ScopeFlagsClearedCount>(env, "scopeFlagsCleared"));
  exports.Set("mapFile", Napi::Function::New<MapFile>(env, "mapFile"));
  exports.Set("replaceProcess", Napi::Function::New<ReplaceProcess>(env, "replaceProcess"));
  exports.Set("scanJsonNumbers", Napi::Function::New<ScanJsonNumbers>(env, "scanJsonNumbers"));
  exports.Set("maxInterpreters", Napi::Number::New(env, kMaxInterpreters));
  exports.Set("dtypeNames", DTypeNames(env));
  return exports;
}

}  // namespace

}  // namespace coil

static Napi::Object InitCoilNative(Napi::Env env, Napi::Object exports) { return coil::Init(env, exports); }

NODE_API_MODULE(coil_native, InitCoilNative)
