"""The CPU backend's Python side: runs once in each interpreter of a pool."""

import os
import sys


def prepare(threads, interop_threads):
    import torch

    import coil_bridge

    # Several interpreters share the cores: each gets its share of intra-op threads
    # rather than all of them, which would oversubscribe the machine.
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(interop_threads)
    except RuntimeError:
        pass  # fixed once parallel work has started in this interpreter (a reused one)
    # Inference only: no autograd bookkeeping around model calls.
    coil_bridge.set_backend_hooks(call_context=torch.inference_mode)
    return {
        "backend": "cpu",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cores": os.cpu_count() or 1,
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
    }
