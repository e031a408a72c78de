"""The CPU backend's Python side: runs once in each interpreter of a pool."""

import functools
import os
import sys


def _inference_mode(torch):
    """torch.inference_mode as a context-manager factory; torch's C++ guard itself
    where it is one (torch 2.x): half the cost a call of the Python wrapper."""
    guard = getattr(torch._C, "_InferenceMode", None)
    if guard is not None and hasattr(guard, "__enter__") and hasattr(guard, "__exit__"):
        return functools.partial(guard, True)
    return torch.inference_mode


def prepare(threads, interop_threads):
    import torch

    import coil_bridge

    # Several interpreters share the cores: each gets its share of intra-op threads
    # rather than all of them, which would oversubscribe the machine.
    torch.set_num_threads(threads)
    # torch allows this once per process -- here, per interpreter -- and a second
    # call aborts the process instead of raising (seen with torch 1.13, in plain
    # Python too). An interpreter reused by a later pool keeps its first setting.
    if not getattr(sys, "_coil_interop_threads_set", False):
        torch.set_num_interop_threads(interop_threads)
        sys._coil_interop_threads_set = True
    # Inference only: no autograd bookkeeping around model calls.
    coil_bridge.set_backend_hooks(call_context=_inference_mode(torch))
    return {
        "backend": "cpu",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cores": os.cpu_count() or 1,
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
    }
