"""Runs an example model with eager PyTorch in a plain Python process -- the
reference the test compares Coil's output with.

    python3 eager.py <model.py> <factory> <out-dir>

Builds factory() from the file (same seed as the packed model), calls it under
torch.no_grad() on the file's example_inputs(), and writes each input and the
output as raw float32 (input0.bin..., output.bin) plus their shapes (shapes.json); an input that is a list of bytes (a
BYTES tensor) is written as JSON instead: input0.json, the texts in base64.
"""

import base64
import importlib.util
import json
import os
import sys

import torch


def main(path, factory, out):
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, factory)()
    inputs = module.example_inputs()
    with torch.no_grad():
        output = model(*inputs)
    shapes = {"inputs": [], "output": list(output.shape)}
    for index, value in enumerate(inputs):
        if isinstance(value, list):  # BYTES: a list of bytes
            with open(os.path.join(out, f"input{index}.json"), "w") as f:
                json.dump([base64.b64encode(b).decode("ascii") for b in value], f)
            shapes["inputs"].append([len(value)])
            continue
        value.contiguous().numpy().astype("float32").tofile(os.path.join(out, f"input{index}.bin"))
        shapes["inputs"].append(list(value.shape))
    output.contiguous().numpy().astype("float32").tofile(os.path.join(out, "output.bin"))
    with open(os.path.join(out, "shapes.json"), "w") as f:
        json.dump(shapes, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
