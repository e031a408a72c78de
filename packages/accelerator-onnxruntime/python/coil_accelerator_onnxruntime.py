"""The ONNX Runtime accelerator's Python side.

coil_bridge.accelerate_object calls `accelerate(model, request)` in each interpreter:
the model is exported to ONNX once per archive (the first interpreter to get the
file's lock exports it; the others, and later processes, load the cached file), then
run by an onnxruntime InferenceSession of this interpreter. The bridge keeps the
session only if it equals eager on the request's example inputs."""

import contextlib
import fcntl
import io
import logging
import os
import shutil
import threading
import warnings

import coil_bridge


def _why(error):
    """An exception as one short line."""
    lines = [line.strip() for line in f"{type(error).__name__}: {error}".split("\n") if line.strip()]
    return " ".join(lines[:3])[:300]


def _dynamic_shapes(request):
    """torch.export's dynamic shapes: every -1 dimension dynamic, relations between
    them (a batch shared by several inputs) inferred by torch.export."""
    from torch.export import Dim

    return tuple({dim: Dim.DYNAMIC for dim in dims} or None for dims in request.dynamic)


def _dynamic_axes(request):
    """The TorchScript-based exporter's dynamic axes: every -1 dimension, by name."""
    return {name: {dim: f"{name}_{dim}" for dim in dims} for name, dims in zip(request.names, request.dynamic) if dims}


@contextlib.contextmanager
def _quiet_torch():
    """torch's warnings and prints while exporting (a refused torch.export prints its
    whole graph; torchvision's ops missing): the reason of a failure is kept, not printed."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export(model, request, path):
    """torch.onnx.export to `path`: torch 2.x's exporter (torch.export-based, "dynamo")
    first, else the TorchScript-based one, with the -1 dimensions kept dynamic. Returns
    which one wrote it."""
    import torch

    inputs = request.examples[0]
    attempts = []
    if hasattr(torch, "export") and hasattr(torch.export, "Dim"):
        attempts.append(("dynamo", lambda: {"dynamo": True, "dynamic_shapes": _dynamic_shapes(request), "verbose": False}))
    attempts.append(("torchscript", lambda: {"dynamic_axes": _dynamic_axes(request), **({"dynamo": False} if attempts else {})}))
    errors = []
    for name, options in attempts:
        try:
            with _quiet_torch(), torch.no_grad():
                torch.onnx.export(model, inputs, path, input_names=list(request.names), **options())
            return name
        except Exception as error:  # noqa: BLE001 - each exporter's reason goes into the message
            errors.append(f"{name}: {_why(error)}")
    raise RuntimeError("the ONNX export failed: " + " / ".join(errors))


def exported_file(model, request):
    """The model's ONNX file in the cache folder (<cache_dir>/<cache_key>/model.onnx,
    with its external data beside it), exported by whichever interpreter (or process)
    first holds its lock; the others wait, then load it. A failed export is remembered
    (per torch version), so the others fail at once with its reason."""
    import torch

    options = request.options
    os.makedirs(options["cache_dir"], exist_ok=True)
    folder = os.path.join(options["cache_dir"], options["cache_key"])
    path = os.path.join(folder, "model.onnx")
    failed = f"{folder}.torch-{torch.__version__}.failed"
    # flock locks belong to the open file, so interpreters of one process exclude each other too.
    with open(folder + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.exists(failed):
                with open(failed) as reason:
                    raise RuntimeError(reason.read())
            if os.path.exists(path):
                return path, "cached"
            # Written in a folder of its own, then renamed: a reader sees the whole export or none.
            partial = f"{folder}.{os.getpid()}-{threading.get_ident()}.partial"
            try:
                os.makedirs(partial)
                exporter = export(model, request, os.path.join(partial, "model.onnx"))
                os.replace(partial, folder)
            except Exception as error:
                with open(failed, "w") as reason:
                    reason.write(str(error))
                raise
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            return path, exporter
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class OnnxRuntimeModel:
    """Runs an onnxruntime session as the model did: the same positional inputs, the
    same output structure (the session's flat outputs put back into eager's)."""

    def __init__(self, session, names, structure, details):
        import torch
        from torch.utils import _pytree as pytree

        self._from_numpy = torch.from_numpy
        graph_inputs = session.get_inputs()
        wanted = {arg.name for arg in graph_inputs}
        missing = [arg.name for arg in graph_inputs if arg.name not in names and not arg.type.startswith("optional")]
        if missing:
            raise RuntimeError(f"the ONNX graph needs inputs the model's signature does not have: {', '.join(missing)}")
        # The session's inputs by the model's positions; an input the graph does not use is dropped.
        self._feed = tuple((position, name) for position, name in enumerate(names) if name in wanted)
        self._outputs = [arg.name for arg in session.get_outputs()]
        self._run = _session_run(session)
        self._rebuild = _rebuilder(structure, pytree)
        self.coil_details = details

    def __call__(self, *inputs):
        outputs = self._run(self._outputs, {name: inputs[position].numpy() for position, name in self._feed}, None)
        return self._rebuild([self._from_numpy(array) for array in outputs])


def _session_run(session):
    """The session's own run(output_names, feed, run_options) method, without what
    InferenceSession.run does around it on every call: checking the inputs fed (done once,
    above), OrtValues' owners (the feed is numpy arrays) and graph capture (a WebGPU
    option), listing the output names, and retrying on another execution provider (this
    session has only the CPU's) -- each a few calls into onnxruntime's bindings. Where
    onnxruntime keeps its session elsewhere, InferenceSession.run."""
    run = getattr(getattr(session, "_sess", None), "run", None)
    return run if callable(run) else session.run


def _rebuilder(structure, pytree):
    """How the session's flat outputs become eager's structure. A tensor, a tuple of
    tensors or a mapping of names to tensors (a ModelOutput) is rebuilt directly, as
    what Node receives from it: a ModelOutput is returned as a plain dict of its fields
    (the bridge sends both the same way), 10 µs less than building one per call."""
    leaf = pytree.tree_flatten(0)[1]
    children = structure.children() if callable(getattr(structure, "children", None)) else structure.children_specs
    if structure == leaf:
        return lambda outputs: outputs[0]
    if structure.type is tuple and all(child == leaf for child in children):
        return tuple
    if isinstance(structure.context, (list, tuple)) and issubclass(structure.type, dict) and all(child == leaf for child in children):
        keys = tuple(structure.context)
        return lambda outputs: dict(zip(keys, outputs))
    return lambda outputs: pytree.tree_unflatten(outputs, structure)


def accelerate(model, request):
    try:
        import onnxruntime
    except ImportError as error:
        raise coil_bridge.AcceleratorUnavailable(f"this Python has no onnxruntime ({error}; pip install onnxruntime)") from None
    import torch
    from torch.utils import _pytree as pytree

    options = request.options
    path, exporter = exported_file(model, request)
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = options.get("intra_op_threads", 1)
    session_options.inter_op_num_threads = options.get("inter_op_threads", 1)
    session = onnxruntime.InferenceSession(path, session_options, providers=["CPUExecutionProvider"])
    # Eager's output structure, which the session's flat outputs are put back into.
    leaves, structure = pytree.tree_flatten(request.run(model, request.examples[0]))
    if len(session.get_outputs()) != len(leaves) or not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
        raise RuntimeError(
            f"the ONNX graph has {len(session.get_outputs())} outputs where eager returns {len(leaves)} values ({structure})"
        )
    details = {
        "exporter": exporter,
        "onnxruntime": onnxruntime.__version__,
        "file": path,
        "intraOpThreads": session.get_session_options().intra_op_num_threads,
    }
    return OnnxRuntimeModel(session, request.names, structure, details)
