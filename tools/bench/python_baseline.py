"""Plain CPython baseline of the scaling benchmark (run by scaling.mjs as a
subprocess): the same model as Coil runs, called in a closed loop from 1 thread
and then from N threads of this one process (which share its GIL).

Prints one JSON object on stdout:
  {"python": ..., "torch": ..., "results": [<driver.measure() result per thread count>]}
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "models"))

import torch  # noqa: E402

import driver  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", required=True, help="module under tools/bench/models (e.g. python_bound)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts, measured in order")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per thread count")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each measurement")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: torch's default); the benchmark passes what Coil's 1-interpreter pool used",
    )
    options = parser.parse_args()

    if options.torch_threads > 0:
        torch.set_num_threads(options.torch_threads)
    module = __import__(options.workload)
    model = module.build()
    args = module.example_inputs()
    results = [
        driver.measure(model, args, int(threads), options.duration, options.warmup)
        for threads in options.threads.split(",")
    ]
    json.dump({"python": sys.version.split()[0], "torch": torch.__version__, "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
