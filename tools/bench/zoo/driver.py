"""One zoo model in plain Python, a child process of the zoo benchmark (one torch thread):

    python driver.py check <model.py> <factory> <example> <seconds> <warmup> [<onnx path>] [compile] [batch8]
        eager calls/s; whether torch.jit.script, torch.jit.trace and (torch 2.x)
        torch.export take the model; TorchScript's calls/s where one of them did;
        with "compile", torch.compile's (torch 2.x: inductor) calls/s once compiled;
        with "batch8", eager calls/s at batch 8 too (the example repeated);
        with an ONNX path, the model exported there (torch.onnx.export) and, where this
        Python has onnxruntime, its calls/s and max abs error against eager.
    python driver.py eager <model.py> <factory> <example> <seconds> <warmup> <start-at>
        one of N plain processes: eager calls/s in the window that opens at
        <start-at> (time.time(), the same for all N), and this process's memory.
    python driver.py serve <model.py> <factory> <example> [torchscript] [compile]
        stays up for the zoo's interleaved rounds (measure.mjs): prepares eager and the
        forms asked for, says {"ready": ...}, then answers each request line
        {"form", "seconds", "warmup", "startAt", "cpu"?, "minCalls"?} with one {"answer": ...} line, until
        its stdin closes.

Prints one JSON line. A step that fails is reported as {"ok": false, "error": ...}."""
import importlib.util
import json
import os
import sys
import time
import warnings

import torch

# The closed loop is the one the scaling benchmark's Python side uses.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from driver import measure  # noqa: E402


def load(file, factory, example):
    """The model's factory (each call builds one, with the same seeded weights) and its
    example inputs."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    spec = importlib.util.spec_from_file_location("zoo_model", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs = getattr(module, example)()
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    return getattr(module, factory), inputs


def why(error):
    """An exception as one short line: the column that says why a step failed."""
    # TorchScript's messages start on the line after the type: keep the first lines that say something.
    lines = [line.strip() for line in f"{type(error).__name__}: {error}".split("\n") if line.strip()]
    return " ".join(lines[:3])[:300]


def attempt(step):
    try:
        return {"ok": True, "value": step()}
    except Exception as error:  # a failure is data, not the end of the run
        return {"ok": False, "error": why(error)}


def memory_mb():
    """Private memory and Pss of this process, in MB (/proc/self/smaps_rollup)."""
    kb = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                kb[parts[0].rstrip(":")] = int(parts[1])
    return {"privateMb": (kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024, "pssMb": kb.get("Pss", 0) / 1024}


def flat_tensors(value):
    """A model's outputs as a flat list of tensors, in order (dicts and ModelOutputs by value)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict) or hasattr(value, "to_tuple"):
        value = list(value.values()) if isinstance(value, dict) else list(value.to_tuple())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in flat_tensors(item)]
    return []


def compiled(model, inputs):
    """torch.compile with its defaults (inductor), compiled by a first call; and how
    long that call took."""
    if not hasattr(torch, "compile"):
        raise RuntimeError(f"torch {torch.__version__} has no torch.compile")
    fn = torch.compile(model)
    started = time.perf_counter()
    with torch.inference_mode():
        fn(*inputs)
    return fn, time.perf_counter() - started


def compiled_rate(model, inputs, seconds, warmup):
    fn, compile_seconds = compiled(model, inputs)
    return {**measure(fn, inputs, 1, seconds, warmup), "compileSeconds": compile_seconds}


def onnx_export(model, inputs, path):
    """torch.onnx.export to `path`: torch 2.x's exporter (dynamo) first, else the
    TorchScript-based one. Returns which one wrote it."""
    errors = []
    attempts = (("dynamo", {"dynamo": True}), ("torchscript", {"dynamo": False})) if hasattr(torch, "export") else (("torchscript", {}),)
    for name, options in attempts:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, inputs, path, **options)
            return name
        except Exception as error:  # noqa: BLE001 - each exporter's reason goes into the cell
            errors.append(f"{name}: {why(error)}")
    raise RuntimeError(" / ".join(errors))


def onnxruntime_rate(path, model, inputs, seconds, warmup):
    """onnxruntime (CPU, one intra-op and one inter-op thread) on the exported file:
    its calls/s and the max abs error of its first output against eager's."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("this Python has no onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {spec.name: tensor.numpy() for spec, tensor in zip(session.get_inputs(), inputs)}
    got = session.run(None, feed)
    with torch.inference_mode():
        want = flat_tensors(model(*inputs))
    error = float((torch.from_numpy(got[0]).double() - want[0].double()).abs().max()) if got and want else None
    rate = measure(lambda: session.run(None, feed), (), 1, seconds, warmup)
    return {**rate, "maxError": error, "version": onnxruntime.__version__}


def batched(inputs, size):
    """The example inputs as a batch of `size` (each repeated along its batch dimension)."""
    if not all(isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == 1 for t in inputs):
        raise ValueError("the example inputs have no batch dimension of 1 to repeat")
    return tuple(t.repeat(size, *([1] * (t.dim() - 1))) for t in inputs)


def check(build, inputs, seconds, warmup, onnx_path=None, compile_too=False, batch8=False):
    """Each form starts from a model of its own (`build()`, the same seeded weights):
    tracing can change the instance it traces -- transformers' Swin then holds its
    window size as a tensor, and torch.compile of that instance breaks into 12 graphs
    and runs at eager's speed instead of 2.2x."""
    result = {"torch": torch.__version__}
    model = build()
    result["eager"] = attempt(lambda: measure(model, inputs, 1, seconds, warmup))
    if batch8:
        result["eager8"] = attempt(lambda: measure(model, batched(inputs, 8), 1, seconds, warmup))
    with torch.no_grad():
        scripted = attempt(lambda: torch.jit.script(build()))
        traced = attempt(lambda: torch.jit.trace(build(), inputs, strict=False, check_trace=False))
        if hasattr(torch, "export") and hasattr(torch.export, "export"):
            exported = attempt(lambda: torch.export.export(build(), inputs) and True)
            result["export"] = {k: v for k, v in exported.items() if k != "value"}
    result["script"] = {k: v for k, v in scripted.items() if k != "value"}
    result["trace"] = {k: v for k, v in traced.items() if k != "value"}
    # TorchScript's rate: the scripted module where scripting worked, else the traced one.
    compiled, how = (scripted, "script") if scripted["ok"] else (traced, "trace")
    if compiled["ok"]:
        rate = attempt(lambda: measure(compiled["value"], inputs, 1, seconds, warmup))
        result["torchscript"] = {**rate, "via": how}
    if compile_too:
        result["compile"] = attempt(lambda: compiled_rate(build(), inputs, seconds, warmup))
    if onnx_path:
        model = build()
        exported = attempt(lambda: onnx_export(model, inputs, onnx_path))
        result["onnx"] = {**exported, "path": onnx_path} if exported["ok"] else exported
        if exported["ok"]:
            result["onnxruntime"] = attempt(lambda: onnxruntime_rate(onnx_path, model, inputs, seconds, warmup))
    return result


def eager_process(model, inputs, seconds, warmup, start_at):
    time.sleep(max(0.0, start_at - time.time()))
    return {**measure(model, inputs, 1, seconds, warmup), **memory_mb()}


def torchscript_of(model, inputs):
    """The scripted module where scripting works, else the traced one (as check())."""
    with torch.no_grad():
        try:
            return torch.jit.script(model)
        except Exception:  # noqa: BLE001 - tracing is the fallback, as in check()
            return torch.jit.trace(model, inputs, strict=False, check_trace=False)


def serve(build, inputs, forms):
    """Answers measurement requests on stdin, one JSON line each, so that the zoo can
    interleave this process's rounds with Coil's (the host's speed drifts by more than
    the differences measured: ratios come from adjacent rounds). Each form runs a model
    of its own (check(): why)."""
    runners = {"eager": attempt(build)}
    if "torchscript" in forms:
        runners["torchscript"] = attempt(lambda: torchscript_of(build(), inputs))
    if "compile" in forms:
        runners["compile"] = attempt(lambda: compiled(build(), inputs)[0])
    all_cpus = os.sched_getaffinity(0)
    print(json.dumps({"ready": {name: {k: v for k, v in r.items() if k != "value"} for name, r in runners.items()}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        fn = runners[request["form"]]["value"]
        # On one CPU where asked: a VM's vCPUs can run at different speeds (docs/engine.md).
        cpu = request.get("cpu")
        os.sched_setaffinity(0, {cpu} if cpu is not None else all_cpus)
        time.sleep(max(0.0, request["startAt"] - time.time()))
        rate = measure(fn, inputs, 1, float(request["seconds"]), float(request["warmup"]), int(request.get("minCalls", 3)))
        answer = {**rate, **memory_mb()}
        print(json.dumps({"answer": finite(answer)}), flush=True)


def main(mode, file, factory, example, *rest):
    torch.set_num_threads(1)
    build, inputs = load(file, factory, example)
    if mode == "serve":
        return serve(build, inputs, rest)
    seconds, warmup, *rest = rest
    if mode == "check":
        onnx_path = rest[0] if rest and rest[0] else None
        result = check(build, inputs, float(seconds), float(warmup), onnx_path, "compile" in rest[1:], "batch8" in rest[1:])
    else:
        result = eager_process(build(), inputs, float(seconds), float(warmup), float(rest[0]))
    print(json.dumps(finite(result)))


def finite(value):
    """NaN (the percentiles of a window with no call completed) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main(*sys.argv[1:])
