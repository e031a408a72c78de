#!/usr/bin/env node
// Coil's scaling benchmark: does one Node process scale Python/torch inference
// across cores with a pool of isolated interpreters, where one interpreter called
// from N threads (what every Node<->Python bridge offers today) cannot?
//
// Per workload (tools/bench/models/*.py, random weights, nothing downloaded):
//   coil        a pool of 1..N interpreters, driven from Node by a closed-loop load
//               generator with 2 callers per interpreter by default (meant to keep
//               each busy; the "interp busy" column shows whether it did);
//   1 interp    ONE Coil interpreter running the model from T Python threads
//               (models/driver.py): T threads share one GIL, as they do when a
//               bridge calls one embedded interpreter from several threads. The
//               calls start in Python, so the Node crossing is not even paid;
//   plain       plain CPython (python_baseline.py, a subprocess), 1 and N threads;
//               and, as a control, the same on the shared libpython that Coil embeds
//               (pylauncher.c: Debian's python3 links libpython statically, and the
//               shared build is slower -- a cost Coil pays before doing anything).
// Then the cost of a no-op round trip Node -> interpreter -> Node, and (in a child
// process: a process gets only 15 interpreters in its lifetime) whether 15
// interpreters that import torch start in one process.
//
// `npm run bench` runs it (tools/bench.sh); started without the glibc tunable, it
// runs itself again with it. Needs the packages built (npx nx run-many -t build).
// Prints tables and writes bench-results/scaling.json.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, LeastLoadedScheduler } from "@coil/core";
import { GLIBC_TUNABLE, interpreterBudget, interpreterStats, MAX_INTERPRETERS } from "@coil/native";

import { fail, parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { describeError, progress } from "./lib/log.mjs";
import { BENCH_DIR, BENCH_MODELS, EXAMPLE_MODELS, REPO_ROOT } from "./lib/paths.mjs";
import { privateMb } from "./lib/proc.mjs";
import { otherCpuNow, waitForQuiet } from "./lib/quiet.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { deterministicTensor } from "./lib/tensor.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";
import { printBars, scalingBars } from "./scaling/bars.mjs";
import { printMachine, printNoop, printStartup, printWorkload } from "./scaling/report.mjs";

await relaunchWithTunable();

// The workloads: the Python module that builds the model (build()) -- under models/,
// or one of the published examples -- and the arguments of one call as Node passes
// them. Its example_inputs() builds the same inputs on the Python side.
const WORKLOADS = {
  "python-bound": {
    module: "python_bound",
    dir: BENCH_MODELS,
    what: "greedy decoding, GRUCell(32,64), 28 steps, argmax in Python over logits.tolist()",
    args: () => [1],
  },
  mlp: {
    module: "mlp",
    dir: EXAMPLE_MODELS,
    what: "MLP 64 -> 64 -> 10, input float32 [8,64]",
    args: () => [deterministicTensor([8, 64], 1)],
  },
  resnet18: {
    module: "resnet18",
    dir: EXAMPLE_MODELS,
    what: "torchvision resnet18(weights=None), eval, input float32 [1,3,224,224]",
    args: () => [deterministicTensor([1, 3, 224, 224], 1)],
  },
};

// --- options ------------------------------------------------------------------------

const budget = interpreterBudget();
const flags = parseFlags(import.meta.url, {
  duration: {
    type: "number",
    positive: true,
    default: (f) => (f.quick ? 1 : 3),
    defaultHelp: "3; 1 with --quick",
    help: "measured seconds per configuration",
  },
  warmup: {
    type: "number",
    default: (f) => (f.quick ? 0.3 : 1),
    defaultHelp: "1; 0.3 with --quick",
    help: "warm-up seconds before each measurement",
  },
  quick: { type: "boolean", default: false, help: "smoke run: 1 s per configuration, fewer configurations" },
  workloads: { type: "list", default: Object.keys(WORKLOADS), defaultHelp: Object.keys(WORKLOADS).join(","), help: "which workloads" },
  // This process keeps every interpreter it creates (the pools reuse them), and a
  // process gets 15 in its lifetime: N is all it ever creates.
  "max-interpreters": {
    type: "integer",
    default: Math.min(availableParallelism(), budget),
    defaultHelp: "the cores, within the process's budget",
    max: budget,
    maxWhy: `what this process may hold; start it with GLIBC_TUNABLES=${GLIBC_TUNABLE} for up to ${MAX_INTERPRETERS}`,
    help: "N",
  },
  "callers-per-interpreter": { type: "integer", default: 2, help: "Node callers per interpreter" },
  "noop-concurrency": { type: "integer", default: 256, help: "outstanding no-op calls" },
  "wait-quiet": {
    type: "number",
    default: (f) => (f.quick ? 0 : 10),
    defaultHelp: "10; 0 with --quick",
    help: "before each measurement, wait up to this many seconds for other processes to leave the CPUs alone",
  },
  startup: {
    type: "boolean",
    default: (f) => !f.quick && budget >= MAX_INTERPRETERS,
    defaultHelp: "on if the interpreter budget is >= 15, off with --quick",
    help: "the 15-interpreter start-up check",
  },
  python: {
    type: "path",
    default: process.env.COIL_PYTHON ?? "/usr/bin/python3",
    defaultHelp: "$COIL_PYTHON or /usr/bin/python3",
    help: "the Python that Coil embeds and the baseline runs",
  },
  out: outFlag("scaling"),
});
for (const w of flags.workloads) {
  if (!WORKLOADS[w]) fail(`unknown workload ${w}; known: ${Object.keys(WORKLOADS).join(", ")}`);
}
// The options under the names bench-results/scaling.json has always recorded them by.
const options = {
  quick: flags.quick,
  durationS: flags.duration,
  warmupS: flags.warmup,
  workloads: flags.workloads,
  maxInterpreters: flags.maxInterpreters,
  callersPerInterpreter: flags.callersPerInterpreter,
  noopConcurrency: flags.noopConcurrency,
  waitQuietS: flags.waitQuiet,
  startup: flags.startup,
  python: flags.python,
  out: repoRelative(flags.out),
};

// --- the benchmark ---------------------------------------------------------------------

const N = options.maxInterpreters;
// 1..N in full runs; --quick measures the ends only.
const interpreterCounts = options.quick ? [...new Set([1, N])] : Array.from({ length: N }, (_, i) => i + 1);
const threadCounts = [...new Set([1, N])];
const window = { warmupMs: options.warmupS * 1e3, durationMs: options.durationS * 1e3 };
const results = startResults({ options, workloads: {}, noop: [], startup: null, bars: [] });

// --- workloads -----------------------------------------------------------------------

async function benchmarkWorkload(name, workload) {
  const file = join(workload.dir, `${workload.module}.py`);
  const rows = [];
  const args = workload.args();
  progress(`${name}:`);

  // Coil: 1..N interpreters, each with its own copy of the model.
  let coilTorchThreads;
  for (const n of interpreterCounts) {
    const label = `coil, ${n} interpreter${n > 1 ? "s" : ""}`;
    progress(`  ${label}`);
    rows.push(
      ...(await withPool(n, label, async (pool) => {
        const model = pool.replicate({ file, factory: "build" });
        await model.materialize();
        const concurrency = options.callersPerInterpreter * n;
        const tids = await interpreterThreads(pool);
        await waitForQuiet(options.waitQuietS);
        const stats = await closedLoop(() => model.call(args), { concurrency, tids, ...window });
        coilTorchThreads ??= pool.backendInfo[0].threads;
        const torchThreads = pool.backendInfo[0].threads;
        return [row(name, "coil", label, { workers: n, interpreters: n, concurrency, torchThreads, ...stats, privateMb: privateMb() })];
      })),
    );
  }

  // One interpreter, T Python threads sharing its GIL (see models/driver.py).
  rows.push(
    ...(await withPool(1, "1 interpreter, threads", async (pool) => {
      const driver = pool.replicate({ file: join(BENCH_MODELS, "driver.py"), factory: "Driver", args: [workload.module] });
      await driver.materialize();
      const out = [];
      for (const threads of threadCounts) {
        const label = `1 interpreter, ${threads} thread${threads > 1 ? "s" : ""}`;
        progress(`  ${label}`);
        await waitForQuiet(options.waitQuietS);
        const r = await driver.callMethod("measure", [threads, options.durationS, options.warmupS]);
        out.push(pythonRow(name, "threads", label, 1, { ...r, privateMb: privateMb() }));
      }
      return out;
    })),
  );

  // Plain CPython, same torch intra-op threads as Coil's 1-interpreter pool; then, as
  // a control, on the shared libpython Coil embeds.
  const baselines = [["python", "plain Python", () => options.python, threadCounts]];
  if (!options.quick) baselines.push(["python-shared", "plain Python on libpython.so", sharedLibpythonLauncher, [1]]);
  for (const [method, what, python, threads] of baselines) {
    progress(`  ${what}, ${threads.join(" and ")} thread(s)`);
    try {
      const executable = python();
      await waitForQuiet(options.waitQuietS);
      const plain = await runPythonBaseline(executable, workload.module, threads, coilTorchThreads);
      for (const r of plain.results) {
        const label = `${what}, ${r.threads} thread${r.threads > 1 ? "s" : ""}`;
        rows.push(pythonRow(name, method, label, 0, { ...r, memoryOf: "python process" }));
      }
    } catch (error) {
      rows.push(row(name, method, method === "python" ? what : `${what}, 1 thread`, { error: describeError(error) }));
    }
  }

  // Ratios: vs the 1-worker row of the same method, and vs plain Python 1 thread.
  const plain1 = rows.find((r) => r.method === "python" && r.workers === 1 && !r.error);
  for (const r of rows) {
    if (r.error) continue;
    const base = rows.find((b) => b.method === r.method && b.workers === 1 && !b.error);
    r.scaling = base ? r.callsPerSecond / base.callsPerSecond : null;
    r.vsPlain = plain1 ? r.callsPerSecond / plain1.callsPerSecond : null;
  }
  return rows;
}

function row(workload, method, label, fields) {
  return { workload, method, label, ...fields, interpretersInProcess: interpreterStats().created };
}

/** A row measured by models/driver.py: T Python threads, in a Coil interpreter or a
 * plain Python process. */
function pythonRow(workload, method, label, interpreters, r) {
  return row(workload, method, label, {
    workers: r.threads,
    interpreters,
    concurrency: r.threads,
    torchThreads: r.torchThreads,
    callsPerSecond: r.callsPerSecond,
    calls: r.calls,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    otherCpu: r.otherCpu,
    privateMb: r.privateMb,
    ...(r.memoryOf && { memoryOf: r.memoryOf }),
  });
}

/** Runs `body(pool, scheduler)` with a pool of `size` and the scheduler that picks its
 * interpreters; returns its rows, or an error row instead of crashing. */
async function withPool(size, label, body) {
  let pool;
  try {
    const scheduler = new LeastLoadedScheduler();
    pool = await InterpreterPool.create({ size, backend: new CpuBackend(), python: options.python, scheduler });
    results.machine.backend ??= pool.backendInfo[0];
    results.machine.libpython ??= pool.python.library;
    return await body(pool, scheduler);
  } catch (error) {
    return [{ method: "error", label, error: describeError(error) }];
  } finally {
    // Close before the next configuration: its interpreters go back, reset, for
    // the next pool to reuse.
    await pool?.close();
  }
}

/** The OS thread ids of the pool's interpreters (each runs on its own thread). */
function interpreterThreads(pool) {
  return Promise.all(pool.interpreters.map((i) => i.eval("__import__('threading').get_native_id()")));
}

function runPythonBaseline(python, module, threads, torchThreads) {
  const argv = [join(BENCH_DIR, "python_baseline.py"), "--workload", module, "--threads", threads.join(",")];
  argv.push("--duration", String(options.durationS), "--warmup", String(options.warmupS));
  if (torchThreads) argv.push("--torch-threads", String(torchThreads));
  const timeoutMs = 120_000 + threads.length * 4 * (options.durationS + options.warmupS) * 1e3;
  return runJsonChild(python, argv, { cwd: REPO_ROOT, timeoutMs });
}

let launcherPath;
/** Builds (once per run) pylauncher.c against the shared libpython the pools use. */
function sharedLibpythonLauncher() {
  if (launcherPath) return launcherPath;
  const library = results.machine.libpython;
  if (!library) throw new Error("no pool has started, so the shared libpython is unknown");
  const out = join(tmpdir(), `coil-bench-pylauncher-${process.getuid?.() ?? 0}`);
  const cc = process.env.CC ?? "cc";
  const built = spawnSync(cc, ["-O2", "-o", out, join(BENCH_DIR, "pylauncher.c"), library], { encoding: "utf8" });
  if (built.error || built.status !== 0 || !existsSync(out)) {
    throw new Error(`cannot build the libpython launcher with ${cc}: ${built.error?.message ?? built.stderr.trim()}`);
  }
  launcherPath = out;
  return out;
}

// --- no-op round trips -------------------------------------------------------------

async function benchmarkNoop() {
  const C = options.noopConcurrency;
  const rows = [];
  progress("no-op round trips:");
  for (const n of [...new Set([1, Math.min(2, N), N])]) {
    const measured = await withPool(n, `no-op, ${n} interpreter(s)`, async (pool, scheduler) => {
      const out = [];
      const tids = await interpreterThreads(pool);
      const measure = async (label, via, concurrency, call) => {
        progress(`  ${label}`);
        await waitForQuiet(options.waitQuietS);
        const stats = await closedLoop(call, { concurrency, tids, ...window });
        out.push({
          method: "noop",
          label,
          via,
          interpreters: n,
          concurrency,
          ...stats,
          p50Us: stats.p50Ms * 1e3,
          p99Us: stats.p99Ms * 1e3,
          privateMb: privateMb(),
          interpretersInProcess: interpreterStats().created,
        });
      };
      const s = n > 1 ? "s" : "";
      await measure(`pool.run('noop'), ${n} interpreter${s}, ${C} outstanding`, "pool.run", C, () => pool.run("noop", []));
      if (!options.quick) {
        // The same through Interpreter.call, which the pool's run() wraps: the
        // difference is the pool's per-call bookkeeping.
        await measure(`interpreter.call('noop'), ${n} interpreter${s}, ${C} outstanding`, "interpreter.call", C, () =>
          scheduler.pick(pool.interpreters).call("noop", []),
        );
        if (n === 1) await measure(`pool.run('noop'), 1 interpreter, 1 outstanding`, "pool.run", 1, () => pool.run("noop", []));
      }
      return out;
    });
    rows.push(...measured);
  }
  return rows;
}

// --- 15 interpreters in one (child) process --------------------------------------------

async function startupCheck() {
  progress("15 interpreters importing torch, in a child process:");
  try {
    // This process has the tunable (relaunchWithTunable), and the child inherits it.
    const argv = [join(BENCH_DIR, "startup15.mjs"), "--python", options.python];
    return await runJsonChild(process.execPath, argv, { cwd: REPO_ROOT, timeoutMs: 300_000, jsonOnFailure: true });
  } catch (error) {
    return { started: false, error: describeError(error) };
  }
}

// --- the run ---------------------------------------------------------------------------

async function main() {
  const t0 = performance.now();
  results.machine.privateMbBeforeInterpreters = privateMb();
  results.machine.otherCpuAtStart = await otherCpuNow();
  printMachine(results.machine, options);

  for (const name of options.workloads) {
    results.workloads[name] = await benchmarkWorkload(name, WORKLOADS[name]);
    printWorkload(name, WORKLOADS[name], results.workloads[name], results.machine.backend, options);
  }

  results.noop = await benchmarkNoop();
  printNoop(results.noop);

  results.startup = options.startup
    ? await startupCheck()
    : { skipped: true, reason: options.quick ? "--quick" : `interpreter budget ${budget} < 15, or --no-startup` };
  printStartup(results.startup);

  results.bars = scalingBars(results, N);
  printBars(results.bars);

  results.elapsedSeconds = (performance.now() - t0) / 1e3;
  console.log(`\n${results.elapsedSeconds.toFixed(0)} s in all`);
  writeResults(flags.out, results);
}

await main();
