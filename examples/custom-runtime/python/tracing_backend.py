"""The tracing backend's Python side: runs once in each interpreter of a pool.

It does what a backend's Python side does -- import what the device needs, set the
bridge's hooks -- and, to show the hooks at work, counts the tensors that come in,
the calls it wraps and the tensors that go out.
"""

import sys

import coil_bridge

trace = {"inputs": 0, "calls": 0, "outputs": 0, "input_shapes": []}


def _to_device(tensor):
    # A real device backend copies the tensor to its device here; the CPU is ours.
    trace["inputs"] += 1
    trace["input_shapes"].append(list(tensor.shape))
    return tensor


def _from_device(tensor):
    trace["outputs"] += 1
    return tensor


class _Traced:
    def __init__(self, torch):
        self._mode = torch.inference_mode()

    def __enter__(self):
        trace["calls"] += 1
        return self._mode.__enter__()

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def prepare(label, threads):
    import torch

    torch.set_num_threads(threads)
    coil_bridge.set_backend_hooks(
        to_device=_to_device,
        from_device=_from_device,
        call_context=lambda: _Traced(torch),
    )
    return {
        "backend": "tracing",
        "label": label,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cores": 1,
        "threads": torch.get_num_threads(),
    }


def read_trace():
    """What this interpreter has seen since the pool prepared it."""
    return dict(trace)
