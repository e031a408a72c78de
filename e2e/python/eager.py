"""What a server answered a metadata-built request, against eager PyTorch on the same
inputs: the model built from its file and factory, called with the request's inputs in
their order; every output the server named must be eager's (same shape, values within
TOL; integers, booleans and strings exactly), and no eager output may be missing.

  eager.py MODEL_FILE FACTORY EXCHANGE_JSON TOL

EXCHANGE_JSON: {"inputs": [...], "outputs": [...], "output_names": [...]}, each tensor
{name, datatype, shape, data (flat)}; output_names are the metadata's outputs, which
name a model's tuple or single tensor (a dict names its own). Prints one JSON line.
"""
import importlib.util
import json
import math
import os
import sys

import torch

DTYPES = {
    "BOOL": torch.bool, "UINT8": torch.uint8, "INT8": torch.int8, "INT16": torch.int16, "INT32": torch.int32,
    "INT64": torch.int64, "FP32": torch.float32, "FP64": torch.float64,
}


def load(file):
    sys.path.insert(0, os.path.dirname(file))
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(file))[0], file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nested(items, shape):
    """BYTES data as the model takes it: lists of bytes, nested by the shape."""
    if len(shape) <= 1:
        return list(items)
    step = len(items) // shape[0]
    return [nested(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def argument(tensor):
    if tensor["datatype"] == "BYTES":
        return nested([item.encode("utf-8") for item in tensor["data"]], tensor["shape"])
    return torch.tensor(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])


def named_outputs(result, names):
    """A dict (a transformers ModelOutput is one) by its keys, a tuple or list by the
    metadata's names, a single tensor as the first."""
    if isinstance(result, dict):
        return {key: value for key, value in result.items() if value is not None}
    if isinstance(result, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in result):
        return {names[i] if i < len(names) else f"output__{i}": value for i, value in enumerate(result)}
    return {names[0] if names else "output__0": result}


def difference(name, served, want, tol):
    """The largest difference of one output; raises SystemExit on a mismatch."""
    if list(want.shape) != served["shape"]:
        raise SystemExit(f"{name}: shape {served['shape']} != eager {list(want.shape)}")
    flat = want.flatten().tolist()
    if len(flat) != len(served["data"]):
        raise SystemExit(f"{name}: {len(served['data'])} values != eager {len(flat)}")
    if want.dtype.is_floating_point:
        diff = max((abs(a - b) for a, b in zip(served["data"], flat)), default=0.0)
        if not diff <= tol or any(math.isnan(a) for a in served["data"]):
            raise SystemExit(f"{name}: max |diff| {diff} > {tol}")
        return diff
    if [bool(v) if want.dtype == torch.bool else v for v in served["data"]] != flat:
        raise SystemExit(f"{name}: {served['data']} != eager {flat}")
    return 0.0


def main(file, factory, exchange_file, tol):
    exchange = json.load(open(exchange_file))
    model = getattr(load(file), factory)()
    with torch.no_grad():
        result = model(*[argument(t) for t in exchange["inputs"]])
    want = named_outputs(result, exchange["output_names"])
    served = {o["name"]: o for o in exchange["outputs"]}
    if sorted(served) != sorted(want):
        raise SystemExit(f"served outputs {sorted(served)} != eager's {sorted(want)}")
    diffs = {name: difference(name, served[name], value, float(tol)) for name, value in want.items()}
    print(json.dumps({"max_abs_diff": diffs}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
