"""The Python side of tools/bench/instructions.mjs: one model, called a fixed number of
times between two callgrind dumps (callgrind_marks.c), so that Valgrind counts the
instructions of those calls alone.

    python counted.py plain <marks.so> <calls> <warmup> <file> <factory> <example> [<arg>...]

runs plain CPython's loop and prints one JSON line; inside a Coil interpreter,
`Counted` is the replicated object: called from Node it is the model, `cached` returns
the model's result without running it (the crossing alone), and `loop` runs the plain
loop there. `factory(*args)` builds the model, `example()` its inputs, as the zoo's
files and overhead/loop.py define them."""
import ctypes
import importlib.util
import json
import os
import sys

import torch


class Marks:
    """Callgrind's dumps of this thread's counts: each writes the counts since the last
    and zeroes them (callgrind's own zeroing leaves stale per-function counts)."""

    def __init__(self, path):
        self._lib = ctypes.CDLL(path)
        self._lib.coil_callgrind_dump.argtypes = [ctypes.c_char_p]

    def dump(self, phase):
        self._lib.coil_callgrind_dump(phase.encode())


def build(file, factory, example, args):
    """(model, inputs): the model in eval mode and its example inputs as a tuple."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    spec = importlib.util.spec_from_file_location("counted_model", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = getattr(module, factory)(*args).eval()
    inputs = getattr(module, example)()
    return model, (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)


def loop(model, inputs, calls):
    """Back-to-back calls, each inside torch.inference_mode() as Coil's CPU backend
    runs them."""
    for _ in range(calls):
        with torch.inference_mode():
            model(*inputs)


def counted_loop(marks, phase, model, inputs, calls, warmup):
    """`warmup` calls, then `calls` calls counted alone: dumped as `phase`."""
    loop(model, inputs, warmup)
    marks.dump("start")
    loop(model, inputs, calls)
    marks.dump(phase)


class Counted:
    def __init__(self, marks, file, factory, example, *args):
        torch.set_num_threads(1)
        self.marks = Marks(marks)
        self.model, self.inputs = build(file, factory, example, args)
        with torch.inference_mode():
            self.result = self.model(*self.inputs)

    def __call__(self, *inputs):
        return self.model(*inputs)

    def example(self):
        return list(self.inputs)

    def cached(self, *inputs):
        return self.result

    def loop(self, calls, warmup):
        counted_loop(self.marks, "loop", self.model, self.inputs, calls, warmup)


def main(mode, marks, calls, warmup, file, factory, example, *args):
    if mode != "plain":
        raise SystemExit(f"unknown mode {mode!r}")
    torch.set_num_threads(1)
    marks = Marks(marks)
    model, inputs = build(file, factory, example, args)
    counted_loop(marks, "plain", model, inputs, int(calls), int(warmup))
    print(json.dumps({"python": sys.version.split()[0], "torch": torch.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
