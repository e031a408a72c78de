"""A closed-loop load generator in Python: `threads` threads of ONE interpreter
each call the model back to back, sharing that interpreter's GIL.

Used twice by the scaling benchmark:
  - inside one Coil interpreter (as a replicated object, `Driver`), it is the
    baseline every Node<->Python bridge offers today: one embedded interpreter
    that N threads call into. Measuring from Python threads leaves out the cost of
    crossing from Node, which only flatters the baseline;
  - in plain CPython (python_baseline.py), single-threaded and multi-threaded.

Each call runs inside torch.inference_mode(), as Coil's CPU backend runs every
call (inference mode is per thread, so each call enters it itself).
"""

import importlib
import math
import os
import sys
import threading
import time

import torch

# Workloads are modules beside this file (python_bound) or the published examples
# (examples/models: mlp, resnet18), so the benchmark measures what users get.
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples", "models")
if EXAMPLES not in sys.path:
    sys.path.append(EXAMPLES)


def private_mb():
    """Private memory of this process (Private_Clean + Private_Dirty), in MB."""
    total_kb = 0
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def busy_seconds():
    """(CPU seconds used by every process on the machine, by this process) so far."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    mine = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), mine.user + mine.system


def other_cpu(before, after, seconds):
    """Cores' worth of CPU that other processes used between two busy_seconds()
    samples: noise that makes a measurement unreliable."""
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(1, rank)) - 1]


def measure(fn, args, threads, duration, warmup, min_calls=3):
    """Runs fn(*args) from `threads` threads for warmup + duration seconds; counts
    the calls that complete inside the measured window (after the warm-up). The window
    stays open past `duration` until `min_calls` calls completed in it (a model slower
    than the window gets a rate over a longer one rather than none); the rate is taken
    between the first and the last of those completions, as the Node side's closed loop
    does (tools/bench/lib/closed-loop.mjs, completionRate: why)."""
    # A few calls first: the first ones pay one-time costs (oneDNN primitive
    # creation, allocator growth) that can outlast a time-based warm-up.
    for _ in range(3):
        with torch.inference_mode():
            fn(*args)
    latencies = [[] for _ in range(threads)]
    start_gate = threading.Barrier(threads + 1)
    window = {}
    counted = {"calls": 0, "first": math.inf, "last": 0.0}
    lock = threading.Lock()

    def worker(mine):
        start_gate.wait()
        start, end = window["start"], window["end"]
        while True:
            t0 = time.perf_counter()
            if t0 >= end and counted["calls"] >= min_calls:
                return
            with torch.inference_mode():
                fn(*args)
            t1 = time.perf_counter()
            with lock:
                if start <= t1 and (t1 <= end or counted["calls"] < min_calls):
                    mine.append(t1 - t0)
                    counted["calls"] += 1
                    counted["first"] = min(counted["first"], t1)
                    counted["last"] = max(counted["last"], t1)

    workers = [threading.Thread(target=worker, args=(latencies[i],), name=f"bench-{i}") for i in range(threads)]
    for w in workers:
        w.start()
    now = time.perf_counter()
    window["start"] = now + warmup
    window["end"] = now + warmup + duration
    start_gate.wait()
    # Sample the machine's CPU use over the measured window only.
    time.sleep(max(0.0, window["start"] - time.perf_counter()))
    cpu_before, sampled_at = busy_seconds(), time.perf_counter()
    time.sleep(max(0.0, window["end"] - time.perf_counter()))
    for w in workers:
        w.join()
    cpu_after, sampled_for = busy_seconds(), time.perf_counter() - sampled_at
    duration = max(window["end"], counted["last"]) - window["start"]
    merged = sorted(x for mine in latencies for x in mine)
    between = counted["last"] - counted["first"]
    rate = (len(merged) - 1) / between if len(merged) >= 2 and between > 0 else len(merged) / duration
    return {
        "threads": threads,
        "calls": len(merged),
        "seconds": duration,
        "callsPerSecond": rate,
        "p50Ms": percentile(merged, 0.50) * 1e3,
        "p99Ms": percentile(merged, 0.99) * 1e3,
        "privateMb": private_mb(),
        "torchThreads": torch.get_num_threads(),
        "otherCpu": other_cpu(cpu_before, cpu_after, sampled_for),
    }


class Driver:
    """The replicated object the benchmark builds in one Coil interpreter: the
    workload `workload` (a sibling module) plus its example inputs."""

    def __init__(self, workload, **kwargs):
        module = importlib.import_module(workload)  # here, or in examples/models (see top)
        self.model = module.build(**kwargs)
        self.args = module.example_inputs()

    def measure(self, threads, duration, warmup):
        return measure(self.model, self.args, int(threads), float(duration), float(warmup))
