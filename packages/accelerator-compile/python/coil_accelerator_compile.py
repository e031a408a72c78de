"""The compile accelerator's Python side: torch.compile, once per interpreter per model.

coil_bridge.accelerate_object calls `accelerate(model, request)` and keeps what it
returns only if it equals eager on the request's example inputs."""

import os

import coil_bridge


def _torch_major(version):
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _size_one(inputs, dynamic):
    """The example with every dynamic dimension narrowed to 1 (a batch of one)."""
    return tuple(
        _narrow_all(tensor, dims) for tensor, dims in zip(inputs, dynamic)
    )


def _narrow_all(tensor, dims):
    for dim in dims:
        tensor = tensor.narrow(dim, 0, 1)
    return tensor.clone()


def accelerate(model, request):
    import torch

    if _torch_major(torch.__version__) < 2 or not hasattr(torch, "compile"):
        raise coil_bridge.AcceleratorUnavailable(
            f"torch.compile needs torch >= 2.0; this interpreter has torch {torch.__version__} (use a Python with torch 2.x)"
        )
    options = request.options
    # Inductor's on-disk caches (FX graphs, AOTAutograd, compiled kernels) live in this
    # folder, read at each compile: interpreters -- and processes -- naming the same one
    # share them, so only the first to compile a graph pays for it in full.
    if options.get("cache_dir"):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = options["cache_dir"]
    import torch._dynamo
    import torch._inductor.config

    # Inductor compiles in worker processes by default; from inside a server's
    # interpreters, compile in the interpreter's own thread instead.
    torch._inductor.config.compile_threads = options.get("compile_threads", 1)
    compiled = torch.compile(model, backend=options.get("backend", "inductor"), mode=options.get("mode"))
    # Warm up as served calls run (under the backend's call context, e.g. inference
    # mode, so the guards match them): the dynamic dimensions marked dynamic (one graph
    # for sizes >= 2), then a batch of one (which torch specialises), so serving
    # compiles nothing.
    first, *rest = request.examples
    for tensor, dims in zip(first, request.dynamic):
        for dim in dims:
            torch._dynamo.mark_dynamic(tensor, dim)
    warmups = [first, *rest]
    if any(request.dynamic):
        warmups.append(_size_one(first, request.dynamic))
    for inputs in warmups:
        request.run(compiled, inputs)
    return compiled


def graphs_compiled():
    """How many graphs torch.compile made in this interpreter (tests: nothing recompiles)."""
    import torch._dynamo.utils

    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
