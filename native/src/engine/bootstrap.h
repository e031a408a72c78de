// Starting one interpreter, on the thread that will own it for the process's life:
// a private libpython in a new link-map namespace, that namespace's libc set up
// for this thread, Python initialised without its signal handlers, sys.path and
// sys.executable as the user's python reports them, and the Coil bridge imported.
#pragma once

#include "interpreter.h"
#include "job.h"
#include "marshal.h"
#include "python_api.h"

namespace coil {

// Loads options.library into a new namespace, resolves the C API from it into
// `api` and initialises Python. On success this thread holds the GIL; on failure
// `error` says why (INTERPRETER_LIMIT, GLIBC_TUNABLE_MISSING or PYTHON_INIT_FAILED).
bool StartPython(const InterpreterOptions& options, PythonApi* api, JobError* error);

// GIL held: configures sys as `options` say, imports coil_bridge from
// options.bridge_path, checks that its version is this engine's, starts its
// watchdog (which reads the ids of jobs to interrupt from `watchdog_fd`), tells it
// where the running job's id is kept (`job_slot_address`, a uint64_t) and attaches
// `marshal` to it. Returns a new reference to the bridge module, or null
// with `error` set.
PyObject* ImportBridge(const PythonApi& api, const InterpreterOptions& options, int watchdog_fd, void* job_slot_address,
                       Marshal* marshal, JobError* error);

}  // namespace coil
