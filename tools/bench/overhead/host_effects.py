"""What this machine itself does to a model's time, in plain Python (no Coil): the two
effects docs/engine.md ("What the host costs a call") builds on.

    python tools/bench/overhead/host_effects.py [--model deep|mlp|zoo:<name>] [--rounds 12] [--out FILE]

1. Per-vCPU speed: the same loop pinned to each CPU in turn, round after round. On this
   project's VM one vCPU ran it at ~1,600 calls/s while the other ran it at ~2,600, for
   minutes at a time -- which is why the zoo compares like for like on the same CPU.
2. Kernel entries between calls: the loop with nothing, one `getppid`, four, or a 20 us
   sleep after each call, interleaved on one CPU. Where a kernel entry flushes the TLB
   (page-table isolation on a CPU without PCID: no `pcid` in /proc/cpuinfo), the model
   pays for one system call far more than the call's own microsecond.
3. A gap between calls with no kernel entry: a busy wait of 60 or 120 us after each call
   (as a Coil interpreter waits for Node's next call with one caller), only the model's
   own time counted. On this project's VM the next call is slower after a gap.

Prints the tables and writes JSON (default bench-results/host-effects.json).
"""

import argparse
import ctypes
import importlib.util
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def build(spec):
    """(model, args): loop.py's `deep`/`mlp`, or a zoo model `zoo:<name>` from hf.py (venv)."""
    if spec.startswith("zoo:"):
        name = spec[4:]
        path = os.path.join(REPO, "tools", "bench", "zoo", "hf.py")
        module_spec = importlib.util.spec_from_file_location("zoo_hf", path)
        hf = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(hf)
        example = {"t5": "seq2seq_inputs", "gpt2": "decoder_inputs", "llama": "decoder_inputs"}.get(name, "encoder_inputs")
        inputs = getattr(hf, example)()
        return getattr(hf, name)().eval(), (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    sys.path.insert(0, HERE)
    import loop  # noqa: E402 - beside this file

    return loop.build_model(spec), (loop.example_input(),)


def rate(model, args, seconds, after_call=None):
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with torch.inference_mode():
            model(*args)
        if after_call is not None:
            after_call()
        calls += 1
    return calls / (time.perf_counter() - start)


def model_rate(model, args, seconds, gap_us):
    """Calls per second of the model's own time, with a busy wait of gap_us after each call."""
    calls, busy, start = 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        with torch.inference_mode():
            model(*args)
        ended = time.perf_counter()
        busy += ended - began
        while time.perf_counter() - ended < gap_us * 1e-6:
            pass
        calls += 1
    return calls / busy


def gaps(model, args, rounds, seconds, cpu):
    os.sched_setaffinity(0, {cpu})
    rates = rotated_rounds([0, 60, 120], rounds, lambda gap: model_rate(model, args, seconds, gap))
    return {f"busy {gap} us" if gap else "no gap": r for gap, r in rates.items()}


def rotated_rounds(names, rounds, measure):
    """{name: [measure(name) each round]}, the order rotated each round."""
    rates = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            rates[name].append(measure(name))
    return rates


def per_cpu(model, args, rounds, seconds):
    cpus = sorted(os.sched_getaffinity(0))
    rates = {cpu: [] for cpu in cpus}
    for _ in range(rounds):
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            rates[cpu].append(rate(model, args, seconds))
    os.sched_setaffinity(0, set(cpus))
    return {str(cpu): r for cpu, r in rates.items()}


def kernel_entries(model, args, rounds, seconds, cpu):
    libc = ctypes.CDLL(None)
    getppid = libc.getppid  # through ctypes: no cache in front of the system call

    def four():
        getppid(), getppid(), getppid(), getppid()

    variants = {
        "nothing": None,
        "1 getppid": getppid,
        "4 getppid": four,
        "sleep 20 us": lambda: time.sleep(20e-6),
    }
    os.sched_setaffinity(0, {cpu})
    return rotated_rounds(list(variants), rounds, lambda name: rate(model, args, seconds, variants[name]))


def against(rates, base_name):
    """Each variant's median rate and its ratio to `base_name`'s in the same round."""
    base = rates[base_name]
    summary = {}
    for name, r in rates.items():
        ratios = [x / b for x, b in zip(r, base)]
        summary[name] = {"median": statistics.median(r), "ratioMedian": statistics.median(ratios), "ratioMin": min(ratios), "ratioMax": max(ratios), "rounds": r}
    return summary


def shown(entry):
    return f"{entry['ratioMedian']:.3f} ({entry['ratioMin']:.2f}-{entry['ratioMax']:.2f})"


def table(title, rows, header):
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="deep", help="deep, mlp (loop.py) or zoo:<name> (hf.py, the venv's transformers)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds a round")
    parser.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)), help="the CPU of the kernel-entry rounds")
    parser.add_argument("--out", default=os.path.join(REPO, "bench-results", "host-effects.json"))
    options = parser.parse_args()
    torch.set_num_threads(1)
    model, args = build(options.model)
    rate(model, args, 0.5)  # warm-up

    speeds = per_cpu(model, args, options.rounds, options.seconds)
    table(
        f"{options.model}: calls/s pinned to each CPU, round by round",
        [[cpu, f"{statistics.median(r):,.0f}", " ".join(f"{x:,.0f}" for x in r)] for cpu, r in speeds.items()],
        ["cpu", "median", "rounds"],
    )
    entries = against(kernel_entries(model, args, options.rounds, options.seconds, options.cpu), "nothing")
    table(
        f"{options.model} on CPU {options.cpu}: after each call",
        [[name, f"{e['median']:,.0f}", f"{1e6 / e['median']:,.0f}", shown(e)] for name, e in entries.items()],
        ["after each call", "calls/s", "us/call", "x nothing (range)"],
    )
    waits = against(gaps(model, args, options.rounds, options.seconds, options.cpu), "no gap")
    table(
        f"{options.model} on CPU {options.cpu}: the model's own time after a gap",
        [[name, f"{1e6 / e['median']:,.0f}", shown(e)] for name, e in waits.items()],
        ["after each call", "model us/call", "x no gap (range)"],
    )
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    result = {
        "model": options.model,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pcid": "pcid" in flags,
        "pti": "pti" in flags,
        "perCpu": speeds,
        "kernelEntries": entries,
        "gaps": waits,
    }
    os.makedirs(os.path.dirname(options.out), exist_ok=True)
    with open(options.out, "w") as out:
        json.dump(result, out, indent=2)
    print(f"\nCPU flags: pcid {'yes' if result['pcid'] else 'no'}, pti {'yes' if result['pti'] else 'no'}; results written to {options.out}")


if __name__ == "__main__":
    main()
