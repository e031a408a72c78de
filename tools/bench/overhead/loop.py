"""The overhead experiment's Python side (tools/bench/overhead.mjs): the models, the
candidate fixes, and a closed loop that calls a model back to back on this thread.

Used three ways, so that the same code runs in each:
  - plain CPython: `python loop.py --model mlp --variant base ...` prints one JSON line;
  - inside one Coil interpreter, as a replicated object (`Bench`): `measure()` runs the
    same loop there, so the calls never cross from Node -- what is left is what the
    namespace costs per op;
  - inside one Coil interpreter, called from Node: the object itself is the model
    (`__call__`), so Node's closed loop pays the whole crossing.

Per-call minor page faults and context switches come from /proc/thread-self (the
calling thread) and /proc/self (the whole process).
"""

import argparse
import ctypes
import gc
import json
import sys
import time

import torch


def build_model(name):
    """mlp: 64 -> 128 -> 10 (9.6k parameters, the issue's ~10k MLP), 3 ops a call.
    deep: 16 blocks of Linear(64, 64) + LayerNorm + GELU + residual and a head:
    ~65 ops a call, each about as small. Both take a float32 batch [8, 64]."""
    torch.manual_seed(0)
    if name == "mlp":
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    elif name == "deep":
        model = Deep(16, 64)
    else:
        raise ValueError(f"unknown model {name!r}; known: mlp, deep")
    return model.eval()


class Block(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x):
        return x + torch.nn.functional.gelu(self.norm(self.linear(x)))


class Deep(torch.nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        self.blocks = torch.nn.ModuleList(Block(width) for _ in range(depth))
        self.head = torch.nn.Linear(width, 10)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def example_input():
    """What Node passes too (tools/bench/lib/tensor.mjs makes its own values)."""
    return torch.randn(8, 64, generator=torch.Generator().manual_seed(1))


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def apply_variant(variant):
    """A candidate fix, applied after the model is built. Each is undone by
    undo_variant() except mallopt, which stays with the libc it was set on."""
    if variant == "base":
        return
    if variant == "gc-freeze":
        # Move the model's objects out of the cyclic GC's generations: collections
        # stop walking them (docs/engine.md, fact 13).
        gc.collect()
        gc.freeze()
    elif variant == "gc-off":
        gc.disable()  # diagnostic only: what GC costs at most
    elif variant == "mallopt":
        # The libc this interpreter's code calls (in a namespace: its own copy, which
        # does not read the process's GLIBC_TUNABLES malloc settings the same way).
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
    else:
        raise ValueError(f"unknown variant {variant!r}")


def undo_variant(variant):
    if variant == "gc-freeze":
        gc.unfreeze()
    elif variant == "gc-off":
        gc.enable()


def thread_counters():
    """(minor faults, [voluntary, involuntary] context switches) of this thread,
    and minor faults of the whole process."""
    with open("/proc/thread-self/stat") as f:
        stat = f.read()
    minflt = int(stat[stat.rindex(")") + 2 :].split()[7])
    switches = [0, 0]  # voluntary (it slept), involuntary (it was preempted)
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                switches[0] = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                switches[1] = int(line.split()[1])
    with open("/proc/self/stat") as f:
        stat = f.read()
    process_minflt = int(stat[stat.rindex(")") + 2 :].split()[7])
    return minflt, switches, process_minflt


def closed_loop(model, x, duration, warmup):
    """Calls model(x) back to back for warmup + duration seconds, each call inside
    torch.inference_mode() as Coil's CPU backend runs it."""
    for _ in range(3):
        with torch.inference_mode():
            model(x)
    clock = time.perf_counter
    end_warmup = clock() + warmup
    while clock() < end_warmup:
        with torch.inference_mode():
            model(x)
    before = thread_counters()
    cpu_before = time.thread_time()
    start = clock()
    end = start + duration
    calls = 0
    while True:
        with torch.inference_mode():
            model(x)
        calls += 1
        now = clock()
        if now >= end:
            break
    elapsed = now - start
    after = thread_counters()
    return {
        "calls": calls,
        "seconds": elapsed,
        "callsPerSecond": calls / elapsed,
        "usPerCall": elapsed / calls * 1e6,
        "threadCpu": (time.thread_time() - cpu_before) / elapsed,
        "minorFaultsPerCall": (after[0] - before[0]) / calls,
        "voluntarySwitchesPerCall": (after[1][0] - before[1][0]) / calls,
        "involuntarySwitchesPerCall": (after[1][1] - before[1][1]) / calls,
        "processMinorFaultsPerCall": (after[2] - before[2]) / calls,
    }


class Bench:
    """In a Coil interpreter: the model (called from Node), and the loop run there."""

    def __init__(self, model, variant="base", torch_threads=1):
        torch.set_num_threads(torch_threads)
        self.variant = variant
        self.model = build_model(model)
        self.x = example_input()
        apply_variant(variant)

    def __call__(self, x):
        return self.model(x)

    def nothing(self, x):
        return None

    def measure(self, duration, warmup):
        return closed_loop(self.model, self.x, duration, warmup)

    def close(self):
        undo_variant(self.variant)

    def info(self):
        return {"threads": torch.get_num_threads(), "interopThreads": torch.get_num_interop_threads(),
                "gcThresholds": list(gc.get_threshold()), "gcFrozen": gc.get_freeze_count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--variant", default="base")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--warmup", type=float, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.torch_threads)
    model = build_model(options.model)
    apply_variant(options.variant)
    result = closed_loop(model, example_input(), options.duration, options.warmup)
    result["python"] = sys.version.split()[0]
    result["torch"] = torch.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
