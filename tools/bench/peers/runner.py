"""One model for tools/bench/peers.mjs, the same code under Coil and under
node-calls-python (a Node<->Python bridge with one interpreter and its GIL).

    Runner("loop:mlp")              tools/bench/overhead/loop.py's MLP (batch [8, 64])
    Runner("loop:deep")             ... its 16-block model
    Runner("zoo:deberta_v2:encoder_inputs")   a zoo transformer (tools/bench/zoo/hf.py)

Coil calls the object with tensors (`__call__`); node-calls-python passes lists, as
its users do (it converts JavaScript arrays to Python lists): `call_lists`."""
import importlib.util
import os
import sys

import torch

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _module(path, name):
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "to_tuple"):
        value = value.to_tuple()
    if isinstance(value, dict):
        value = tuple(value.values())
    return next(t for t in (_first_tensor(v) for v in value) if t is not None) if isinstance(value, (list, tuple)) else None


class Runner:
    def __init__(self, source, threads=1):
        torch.set_num_threads(threads)
        kind, name, *rest = source.split(":")
        if kind == "loop":
            loop = _module(os.path.join(BENCH, "overhead", "loop.py"), "coil_peer_loop")
            self.model, self.inputs = loop.build_model(name), (loop.example_input(),)
        elif kind == "zoo":
            zoo = _module(os.path.join(BENCH, "zoo", "hf.py"), "coil_peer_zoo")
            inputs = getattr(zoo, rest[0])()
            self.model = getattr(zoo, name)()
            self.inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        else:
            raise ValueError(f"unknown model source {source!r}")

    def examples(self):
        """The example inputs (Coil: tensors)."""
        return list(self.inputs)

    def __call__(self, *inputs):
        """Coil: tensors in, the first output tensor out."""
        return _first_tensor(self.model(*inputs))

    def example_lists(self):
        """node-calls-python: [flat values, shape, dtype] per input."""
        return [[t.flatten().tolist(), list(t.shape), str(t.dtype).replace("torch.", "")] for t in self.inputs]

    def call_lists(self, *items):
        """node-calls-python: lists in, the first output's flat values out."""
        tensors = [torch.tensor(flat, dtype=getattr(torch, dtype)).reshape(shape) for flat, shape, dtype in items]
        with torch.inference_mode():
            return _first_tensor(self.model(*tensors)).flatten().tolist()


def main(source, seconds, warmup):
    """Plain Python: the same model, one thread, a closed loop (models/driver.py's)."""
    import json

    sys.path.insert(0, os.path.join(BENCH, "models"))
    from driver import measure

    runner = Runner(source)
    print(json.dumps(measure(runner.model, runner.inputs, 1, float(seconds), float(warmup))))


if __name__ == "__main__":
    main(*sys.argv[1:])
