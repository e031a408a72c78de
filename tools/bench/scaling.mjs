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
// Usage: GLIBC_TUNABLES=glibc.rtld.nns=16 node tools/bench/scaling.mjs [flags]
// (tools/bench.sh sets the tunable). Needs the packages built (npx nx run-many -t build).
//   --duration <s>          measured seconds per configuration (default 3)
//   --warmup <s>            warm-up seconds before each measurement (default 1)
//   --quick                 smoke run: 1 s per configuration, fewer configurations
//   --workloads a,b         subset of: python-bound, mlp, resnet18
//   --max-interpreters <n>  N (default: the cores, within the process's budget)
//   --callers-per-interpreter <n>  Node callers per interpreter (default 2)
//   --noop-concurrency <n>  outstanding no-op calls (default 256)
//   --wait-quiet <s>        before each measurement, wait up to <s> seconds for other
//                           processes to leave the CPUs alone (default 10; 0 with
//                           --quick): on a shared machine they distort the numbers
//   --[no-]startup          the 15-interpreter start-up check (default: on if the
//                           interpreter budget is >= 15, off with --quick)
//   --python <exe>          the Python that Coil embeds and the baseline runs
//                           (default $COIL_PYTHON or /usr/bin/python3)
//   --out <file>            JSON results (default bench-results/scaling.json)

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { interpreterBudget, interpreterStats, MAX_INTERPRETERS } from "@coil/native";

import { otherCpu, privateMb, sampleCpu, threadBusy } from "./proc.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
// Cores' worth of CPU other processes may use during a measurement before the
// measurement is flagged as disturbed.
const DISTURBED = 0.25;
// ... and under which the machine counts as quiet enough to start one.
const QUIET = 0.1;
const ROOT = resolve(HERE, "..", "..");
const MODELS = join(HERE, "models");
const EXAMPLES = join(ROOT, "examples", "models");

// The workloads: the Python module that builds the model (build()) -- under models/,
// or one of the published examples -- and the arguments of one call as Node passes
// them. Its example_inputs() builds the same inputs on the Python side.
const WORKLOADS = {
  "python-bound": {
    module: "python_bound",
    dir: MODELS,
    what: "greedy decoding, GRUCell(32,64), 28 steps, argmax in Python over logits.tolist()",
    args: () => [1],
  },
  mlp: {
    module: "mlp",
    dir: EXAMPLES,
    what: "MLP 64 -> 64 -> 10, input float32 [8,64]",
    args: () => [randomTensor([8, 64], 1)],
  },
  resnet18: {
    module: "resnet18",
    dir: EXAMPLES,
    what: "torchvision resnet18(weights=None), eval, input float32 [1,3,224,224]",
    args: () => [randomTensor([1, 3, 224, 224], 1)],
  },
};

// --- options ------------------------------------------------------------------------

const { values: flags } = parseArgsOrExit({
  options: {
    duration: { type: "string" },
    warmup: { type: "string" },
    quick: { type: "boolean", default: false },
    workloads: { type: "string" },
    "max-interpreters": { type: "string" },
    "callers-per-interpreter": { type: "string" },
    "noop-concurrency": { type: "string" },
    "wait-quiet": { type: "string" },
    startup: { type: "boolean" },
    python: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  allowNegative: true,
  strict: true,
});

if (flags.help) {
  const header = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
  console.log(header.slice(1, header.findIndex((l) => l.startsWith("import "))).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  process.exit(0);
}

const budget = interpreterBudget();
const options = {
  quick: flags.quick,
  durationS: positive("duration", flags.duration ?? (flags.quick ? "1" : "3")),
  warmupS: nonNegative("warmup", flags.warmup ?? (flags.quick ? "0.3" : "1")),
  workloads: (flags.workloads ?? Object.keys(WORKLOADS).join(",")).split(",").map((w) => w.trim()).filter(Boolean),
  // This process keeps every interpreter it creates (the pools reuse them), and a
  // process gets 15 in its lifetime: N is all it ever creates.
  maxInterpreters: Math.floor(positive("max-interpreters", flags["max-interpreters"] ?? String(Math.min(availableParallelism(), budget)))),
  callersPerInterpreter: Math.floor(positive("callers-per-interpreter", flags["callers-per-interpreter"] ?? "2")),
  noopConcurrency: Math.floor(positive("noop-concurrency", flags["noop-concurrency"] ?? "256")),
  waitQuietS: nonNegative("wait-quiet", flags["wait-quiet"] ?? (flags.quick ? "0" : "10")),
  startup: flags.startup ?? (!flags.quick && budget >= MAX_INTERPRETERS),
  python: flags.python ?? process.env.COIL_PYTHON ?? "/usr/bin/python3",
  out: resolve(flags.out ?? join(ROOT, "bench-results", "scaling.json")),
};
for (const w of options.workloads) {
  if (!WORKLOADS[w]) fail(`unknown workload ${w}; known: ${Object.keys(WORKLOADS).join(", ")}`);
}
if (options.maxInterpreters > budget) {
  fail(
    `--max-interpreters ${options.maxInterpreters} exceeds what this process may hold (${budget}); ` +
      "start it with GLIBC_TUNABLES=glibc.rtld.nns=16 (tools/bench.sh does), at most 15",
  );
}

// --- the benchmark ---------------------------------------------------------------------

const N = options.maxInterpreters;
// 1..N in full runs; --quick measures the ends only.
const interpreterCounts = options.quick ? [...new Set([1, N])] : range(N).map((i) => i + 1);
const threadCounts = [...new Set([1, N])];
const results = {
  startedAt: new Date().toISOString(),
  options: { ...options, out: relative(ROOT, options.out) },
  machine: machineInfo(),
  workloads: {},
  noop: [],
  startup: null,
  bars: [],
};

async function main() {
  const t0 = performance.now();
  results.machine.privateMbBeforeInterpreters = privateMb();
  const before = sampleCpu();
  await new Promise((r) => setTimeout(r, 1000));
  results.machine.otherCpuAtStart = otherCpu(before, sampleCpu());
  printMachine(results.machine);

  for (const name of options.workloads) {
    const rows = await benchmarkWorkload(name, WORKLOADS[name]);
    results.workloads[name] = rows;
    printWorkload(name, WORKLOADS[name], rows);
  }

  results.noop = await benchmarkNoop();
  printNoop(results.noop);

  results.startup = options.startup
    ? await startupCheck()
    : { skipped: true, reason: options.quick ? "--quick" : `interpreter budget ${budget} < 15, or --no-startup` };
  printStartup(results.startup);

  results.bars = bars(results);
  printBars(results.bars);

  results.elapsedSeconds = (performance.now() - t0) / 1e3;
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, JSON.stringify(results, null, 2) + "\n");
  console.log(`\n${results.elapsedSeconds.toFixed(0)} s in all; results written to ${relative(process.cwd(), options.out) || options.out}`);
}

// --- workloads -----------------------------------------------------------------------

async function benchmarkWorkload(name, workload) {
  const file = join(workload.dir, `${workload.module}.py`);
  const rows = [];
  const args = workload.args();
  const window = { warmupMs: options.warmupS * 1e3, durationMs: options.durationS * 1e3 };
  progress(`${name}:`);

  // Coil: 1..N interpreters, each with its own copy of the model.
  let coilTorchThreads;
  for (const n of interpreterCounts) {
    const label = `coil, ${n} interpreter${n > 1 ? "s" : ""}`;
    progress(`  ${label}`);
    rows.push(
      await withPool(n, label, async (pool) => {
        const model = pool.replicate({ file, factory: "build" });
        await model.materialize();
        const concurrency = options.callersPerInterpreter * n;
        const tids = await interpreterThreads(pool);
        await settle();
        const stats = await closedLoop(() => model.call(args), { concurrency, tids, ...window });
        coilTorchThreads ??= pool.backendInfo[0].threads;
        return row(name, "coil", label, {
          workers: n,
          interpreters: n,
          concurrency,
          torchThreads: pool.backendInfo[0].threads,
          ...stats,
          privateMb: privateMb(),
        });
      }),
    );
  }

  // One interpreter, T Python threads sharing its GIL (see models/driver.py).
  await withPoolRows(rows, 1, `1 interpreter, threads`, async (pool) => {
    const driver = pool.replicate({ file: join(MODELS, "driver.py"), factory: "Driver", args: [workload.module] });
    await driver.materialize();
    const out = [];
    for (const threads of threadCounts) {
      const label = `1 interpreter, ${threads} thread${threads > 1 ? "s" : ""}`;
      progress(`  ${label}`);
      await settle();
      const r = await driver.callMethod("measure", [threads, options.durationS, options.warmupS]);
      out.push(
        row(name, "threads", label, {
          workers: threads,
          interpreters: 1,
          concurrency: threads,
          torchThreads: r.torchThreads,
          callsPerSecond: r.callsPerSecond,
          calls: r.calls,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          otherCpu: r.otherCpu,
          privateMb: privateMb(),
        }),
      );
    }
    return out;
  });

  // Plain CPython, same torch intra-op threads as Coil's 1-interpreter pool.
  progress(`  plain Python, ${threadCounts.join(" and ")} thread(s)`);
  try {
    await settle();
    const plain = await runPythonBaseline(options.python, workload.module, threadCounts, coilTorchThreads);
    for (const r of plain.results) {
      rows.push(
        row(name, "python", `plain Python, ${r.threads} thread${r.threads > 1 ? "s" : ""}`, {
          workers: r.threads,
          interpreters: 0,
          concurrency: r.threads,
          torchThreads: r.torchThreads,
          callsPerSecond: r.callsPerSecond,
          calls: r.calls,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          otherCpu: r.otherCpu,
          privateMb: r.privateMb,
          memoryOf: "python process",
        }),
      );
    }
  } catch (error) {
    rows.push(row(name, "python", "plain Python", { error: describe(error) }));
  }

  // Control: plain Python again, on the shared libpython Coil embeds.
  if (!options.quick) {
    const label = "plain Python on libpython.so, 1 thread";
    progress(`  ${label}`);
    try {
      const launcher = sharedLibpythonLauncher();
      await settle();
      const [r] = (await runPythonBaseline(launcher, workload.module, [1], coilTorchThreads)).results;
      rows.push(
        row(name, "python-shared", label, {
          workers: 1,
          interpreters: 0,
          concurrency: 1,
          torchThreads: r.torchThreads,
          callsPerSecond: r.callsPerSecond,
          calls: r.calls,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          otherCpu: r.otherCpu,
          privateMb: r.privateMb,
          memoryOf: "python process",
        }),
      );
    } catch (error) {
      rows.push(row(name, "python-shared", label, { error: describe(error) }));
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

/** Runs `body` with a pool of `size`; an error becomes an error row, not a crash. */
async function withPool(size, label, body) {
  let pool;
  try {
    pool = await InterpreterPool.create({ size, backend: new CpuBackend(), python: options.python });
    results.machine.backend ??= pool.backendInfo[0];
    results.machine.libpython ??= pool.python.library;
    return await body(pool);
  } catch (error) {
    return { method: "error", label, error: describe(error) };
  } finally {
    // Close before the next configuration: its interpreters go back, reset, for
    // the next pool to reuse.
    await pool?.close();
  }
}

async function withPoolRows(rows, size, label, body) {
  const out = await withPool(size, label, body);
  if (Array.isArray(out)) rows.push(...out);
  else rows.push(out);
}

function runPythonBaseline(python, module, threads, torchThreads) {
  const script = join(HERE, "python_baseline.py");
  const argv = [
    script,
    "--workload",
    module,
    "--threads",
    threads.join(","),
    "--duration",
    String(options.durationS),
    "--warmup",
    String(options.warmupS),
  ];
  if (torchThreads) argv.push("--torch-threads", String(torchThreads));
  return runChild(python, argv, { cwd: ROOT, timeoutMs: 120_000 + threads.length * 4 * (options.durationS + options.warmupS) * 1e3 });
}

let launcherPath;
/** Builds (once per run) pylauncher.c against the shared libpython the pools use. */
function sharedLibpythonLauncher() {
  if (launcherPath) return launcherPath;
  const library = results.machine.libpython;
  if (!library) throw new Error("no pool has started, so the shared libpython is unknown");
  const out = join(tmpdir(), `coil-bench-pylauncher-${process.getuid?.() ?? 0}`);
  const cc = process.env.CC ?? "cc";
  const built = spawnSync(cc, ["-O2", "-o", out, join(HERE, "pylauncher.c"), library], { encoding: "utf8" });
  if (built.error || built.status !== 0 || !existsSync(out)) {
    throw new Error(`cannot build the libpython launcher with ${cc}: ${built.error?.message ?? built.stderr.trim()}`);
  }
  launcherPath = out;
  return out;
}

// --- no-op round trips -------------------------------------------------------------

async function benchmarkNoop() {
  const counts = [...new Set([1, Math.min(2, N), N])];
  const window = { warmupMs: options.warmupS * 1e3, durationMs: options.durationS * 1e3 };
  const C = options.noopConcurrency;
  const rows = [];
  progress("no-op round trips:");
  for (const n of counts) {
    const out = await withPool(n, `no-op, ${n} interpreter(s)`, async (pool) => {
      const measured = [];
      const tids = await interpreterThreads(pool);
      const measure = async (label, via, concurrency, call) => {
        progress(`  ${label}`);
        await settle();
        const stats = await closedLoop(call, { concurrency, tids, ...window });
        measured.push({
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
          pool.pickInterpreter().call("noop", []),
        );
        if (n === 1) await measure(`pool.run('noop'), 1 interpreter, 1 outstanding`, "pool.run", 1, () => pool.run("noop", []));
      }
      return measured;
    });
    if (Array.isArray(out)) rows.push(...out);
    else rows.push(out);
  }
  return rows;
}

// --- 15 interpreters in one (child) process --------------------------------------------

async function startupCheck() {
  progress("15 interpreters importing torch, in a child process:");
  const tunables = [process.env.GLIBC_TUNABLES, "glibc.rtld.nns=16"].filter(Boolean).join(":");
  try {
    return await runChild(process.execPath, [join(HERE, "startup15.mjs"), "--python", options.python], {
      cwd: ROOT,
      env: { ...process.env, GLIBC_TUNABLES: tunables },
      timeoutMs: 300_000,
    });
  } catch (error) {
    return { started: false, error: describe(error) };
  }
}

// --- load generation ---------------------------------------------------------------

/**
 * Closed loop: `concurrency` callers, each awaiting its call before issuing the
 * next, for warm-up + duration. Counts the calls that complete inside the measured
 * window (after the warm-up; calls still in flight at its end are not counted).
 */
async function closedLoop(call, { concurrency, warmupMs, durationMs, tids = [] }) {
  const latencies = new Samples();
  const now = performance.now();
  const start = now + warmupMs;
  const end = start + durationMs;
  // CPU use over the measured window: the machine's, Node's main thread's (its
  // tid is the pid) and the interpreters' threads'. Sampled by the first caller
  // that sees the window open or close -- not by timers: under load, completions
  // keep the event loop from reaching its timers for hundreds of ms.
  const sampled = [process.pid, ...tids];
  let cpuBefore;
  let cpuAfter;
  let failure;
  const caller = async () => {
    while (failure === undefined) {
      const begin = performance.now();
      if (begin >= start && cpuBefore === undefined) cpuBefore = sampleCpu(sampled);
      if (begin >= end) {
        cpuAfter ??= sampleCpu(sampled);
        return;
      }
      try {
        await call();
      } catch (error) {
        failure = error;
        return;
      }
      const done = performance.now();
      if (done >= start && done <= end) latencies.push(done - begin);
    }
  };
  await Promise.all(range(concurrency).map(caller));
  if (failure !== undefined) throw failure;
  const sorted = latencies.sorted();
  const busy = cpuBefore && cpuAfter ? threadBusy(cpuBefore, cpuAfter) : [];
  return {
    calls: sorted.length,
    callsPerSecond: sorted.length / (durationMs / 1e3),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    otherCpu: cpuBefore && cpuAfter ? otherCpu(cpuBefore, cpuAfter) : null,
    mainThreadBusy: busy[0] ?? null,
    interpreterBusy: busy.length > 1 ? busy.slice(1).reduce((a, b) => a + b, 0) / (busy.length - 1) : null,
  };
}

/** With --wait-quiet: waits, at most that many seconds, until other processes use
 * under QUIET cores, so that a shared machine's other work disturbs fewer rows
 * (the "other CPU" column still tells whether it did). */
async function settle() {
  if (!options.waitQuietS) return;
  const deadline = performance.now() + options.waitQuietS * 1e3;
  let announced = false;
  for (;;) {
    const before = sampleCpu();
    await new Promise((r) => setTimeout(r, 1000));
    const other = otherCpu(before, sampleCpu());
    if (other < QUIET) return;
    if (performance.now() >= deadline) {
      progress(`    still busy (other processes use ${other.toFixed(2)} cores); measuring anyway`);
      return;
    }
    if (!announced) progress(`    waiting for the machine to quieten (other processes use ${other.toFixed(2)} cores)`);
    announced = true;
  }
}

/** The OS thread ids of the pool's interpreters (each runs on its own thread). */
function interpreterThreads(pool) {
  return Promise.all(pool.interpreters.map((i) => i.eval("__import__('threading').get_native_id()")));
}

/** A growable array of doubles (millions of samples for no-ops, without GC churn). */
class Samples {
  #data = new Float64Array(1 << 16);
  #length = 0;
  push(x) {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = x;
  }
  sorted() {
    return this.#data.subarray(0, this.#length).sort();
  }
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, fraction) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

// --- bars --------------------------------------------------------------------------------

function bars(res) {
  const out = [];
  // `rows`: the measurements the bar rests on; a bar is flagged when other
  // processes took CPU during any of them (its verdict is then not to be trusted).
  const bar = (name, measured, pass, detail, rows = []) => {
    const noise = Math.max(0, ...rows.map((r) => r?.otherCpu ?? 0));
    const disturbed = noise > DISTURBED;
    out.push({
      bar: name,
      measured,
      status: pass === null ? "SKIP" : pass ? "PASS" : "FAIL",
      detail: detail + (disturbed ? `; DISTURBED: other processes used up to ${noise.toFixed(2)} cores meanwhile` : ""),
      disturbed,
    });
  };
  const find = (rows, method, workers) => rows?.find((r) => r.method === method && r.workers === workers && !r.error);

  const pb = res.workloads["python-bound"];
  if (pb) {
    const c1 = find(pb, "coil", 1);
    const c2 = find(pb, "coil", 2);
    const ratio = c1 && c2 ? c2.callsPerSecond / c1.callsPerSecond : null;
    bar(
      "python-bound: 2 interpreters >= 1.8x of 1",
      ratio,
      ratio === null ? null : ratio >= 1.8,
      c1 && c2 ? `${fmtRate(c2.callsPerSecond)} vs ${fmtRate(c1.callsPerSecond)} calls/s` : "needs --max-interpreters >= 2",
      [c1, c2],
    );
    const t1 = find(pb, "threads", 1);
    const tN = find(pb, "threads", N);
    const tRatio = t1 && tN && N > 1 ? tN.callsPerSecond / t1.callsPerSecond : null;
    bar(
      `python-bound: 1 interpreter with ${N} threads <= 1.1x of 1 thread`,
      tRatio,
      tRatio === null ? null : tRatio <= 1.1,
      t1 && tN && N > 1
        ? `${fmtRate(tN.callsPerSecond)} vs ${fmtRate(t1.callsPerSecond)} calls/s` +
            (c1 ? ` (${fmtRatio(tN.callsPerSecond / c1.callsPerSecond)} of Coil with 1 interpreter)` : "")
        : "needs --max-interpreters >= 2",
      [t1, tN],
    );
  }
  for (const [name, rows] of Object.entries(res.workloads)) {
    const c1 = find(rows, "coil", 1);
    const p1 = find(rows, "python", 1);
    const shared = find(rows, "python-shared", 1);
    const ratio = c1 && p1 ? c1.callsPerSecond / p1.callsPerSecond : null;
    bar(
      `${name}: Coil 1 interpreter >= 0.95x plain Python`,
      ratio,
      ratio === null ? null : ratio >= 0.95,
      c1 && p1
        ? `${fmtRate(c1.callsPerSecond)} vs ${fmtRate(p1.callsPerSecond)} calls/s` +
            (shared ? `; plain Python on the shared libpython: ${fmtRatio(shared.vsPlain)}` : "")
        : "a row is missing",
      [c1, p1],
    );
  }
  const noop2 = res.noop.find((r) => r.via === "pool.run" && r.interpreters === 2 && r.concurrency > 1 && !r.error);
  bar(
    "no-op: >= 100,000 calls/s with 2 interpreters (pool.run)",
    noop2?.callsPerSecond ?? null,
    noop2 ? noop2.callsPerSecond >= 100_000 : null,
    noop2 ? `${fmtRate(noop2.callsPerSecond)} calls/s, ${noop2.concurrency} outstanding` : "needs --max-interpreters >= 2",
    [noop2],
  );
  const s = res.startup;
  bar(
    "15 interpreters importing torch start in one process",
    s?.skipped ? null : (s?.seconds ?? null),
    s?.skipped ? null : Boolean(s?.started),
    s?.skipped ? s.reason : s?.started ? `in ${s.seconds.toFixed(1)} s, ${fmtInt(s.privateMb)} MB private` : (s?.error ?? "did not start"),
  );
  return out;
}

// --- output ------------------------------------------------------------------------------

function machineInfo() {
  const report = process.report?.getReport?.();
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryGb: totalmem() / 2 ** 30,
    kernel: release(),
    glibc: report?.header?.glibcVersionRuntime ?? "unknown",
    node: process.version,
    loadAverageAtStart: loadavg(),
    interpreterBudget: budget,
    glibcTunables: process.env.GLIBC_TUNABLES ?? null,
  };
}

function printMachine(m) {
  console.log("Coil scaling benchmark");
  console.log(
    `  machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb.toFixed(1)} GiB, Linux ${m.kernel}, glibc ${m.glibc}, Node ${m.node}`,
  );
  console.log(
    `  interpreter budget ${m.interpreterBudget} (GLIBC_TUNABLES=${m.glibcTunables ?? "unset"}); ` +
      `N = ${N}; ${options.durationS} s per configuration after ${options.warmupS} s warm-up${options.quick ? " (--quick)" : ""}`,
  );
  console.log(
    `  private memory before any interpreter: ${fmtInt(m.privateMbBeforeInterpreters)} MB; other processes use ` +
      `${m.otherCpuAtStart.toFixed(2)} cores now (load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")})`,
  );
  if (m.otherCpuAtStart > DISTURBED) {
    console.log("  WARNING: the machine is busy; other processes distort the numbers (see the 'other CPU' column)");
  }
}

function printWorkload(name, workload, rows) {
  const backend = results.machine.backend;
  console.log(`\n== ${name}: ${workload.what}`);
  if (backend) console.log(`   Python ${backend.python}, torch ${backend.torch}, mkldnn ${backend.mkldnn}`);
  printTable(
    [
      ["configuration", (r) => r.label, "l"],
      ["callers", (r) => r.concurrency],
      ["torch thr", (r) => r.torchThreads],
      ["calls/s", (r) => fmtRate(r.callsPerSecond)],
      ["p50 ms", (r) => fmtMs(r.p50Ms)],
      ["p99 ms", (r) => fmtMs(r.p99Ms)],
      ["private MB", (r) => (r.privateMb === undefined ? "" : fmtInt(r.privateMb) + (r.memoryOf ? "*" : ""))],
      ["interp", (r) => (r.memoryOf ? "-" : r.interpretersInProcess)],
      ["scaling", (r) => fmtRatio(r.scaling)],
      ["vs plain", (r) => fmtRatio(r.vsPlain)],
      ["main busy", (r) => fmtPercent(r.mainThreadBusy)],
      ["interp busy", (r) => fmtPercent(r.interpreterBusy)],
      ["other CPU", (r) => fmtOther(r.otherCpu)],
    ],
    rows,
  );
  console.log(
    `   callers: calls outstanding (coil: Node callers, ${options.callersPerInterpreter} per interpreter; the others: Python threads). ` +
      "torch thr: torch intra-op threads.\n" +
      "   scaling: vs the 1-worker row of the same kind; vs plain: vs plain Python, 1 thread.\n" +
      "   private MB: the Node process (Private_Clean+Private_Dirty) holding 'interp' interpreters in all; * the Python process.\n" +
      "   '1 interpreter, T threads': T Python threads of one Coil interpreter sharing its GIL (the bridge baseline; calls start in Python).\n" +
      "   'on libpython.so': plain Python linked to the shared libpython Coil loads (Debian's python3 links it statically).\n" +
      "   main busy / interp busy: CPU share of Node's main thread / of each interpreter's own thread (mean) during the window.\n" +
      "   other CPU: cores other processes used meanwhile (! above 0.25: that row is disturbed).",
  );
}

function printNoop(rows) {
  console.log("\n== no-op round trip, Node -> interpreter -> Node");
  printTable(
    [
      ["configuration", (r) => r.label, "l"],
      ["calls/s", (r) => fmtRate(r.callsPerSecond)],
      ["p50 us", (r) => fmtInt(r.p50Us)],
      ["p99 us", (r) => fmtInt(r.p99Us)],
      ["private MB", (r) => fmtInt(r.privateMb)],
      ["main busy", (r) => fmtPercent(r.mainThreadBusy)],
      ["interp busy", (r) => fmtPercent(r.interpreterBusy)],
      ["other CPU", (r) => fmtOther(r.otherCpu)],
    ],
    rows,
  );
  console.log(
    "   pool.run: the pool's API (tracks each call so close() can drain or cancel it); interpreter.call: the\n" +
      "   interpreter the pool's scheduler picks, called directly. p50 at 1 outstanding: one unloaded round trip.",
  );
}

function printStartup(s) {
  console.log("\n== 15 interpreters importing torch in one process (child process)");
  if (s.skipped) console.log(`   skipped: ${s.reason}`);
  else if (!s.started) console.log(`   did NOT start: ${s.error}`);
  else {
    console.log(
      `   started: ${s.interpreters} interpreters (torch ${s.torch}) in ${s.seconds.toFixed(1)} s; private memory ` +
        `${fmtInt(s.privateMb)} MB (${fmtInt(s.privateMbBefore)} MB before, ~${fmtInt(s.perInterpreterMb)} MB per interpreter); ` +
        `a torch op ran in each: ${s.allRan}`,
    );
  }
}

function printBars(list) {
  console.log("\n== bars");
  for (const b of list) {
    const measured =
      b.measured === null ? "-" : b.bar.startsWith("no-op") ? fmtRate(b.measured) : b.bar.startsWith("15 ") ? `${b.measured.toFixed(1)} s` : fmtRatio(b.measured);
    console.log(`   ${b.status.padEnd(4)}  ${b.bar}: ${measured}  (${b.detail})`);
  }
}

function printTable(columns, rows) {
  const cells = rows.map((r) =>
    r.error ? [r.label, `ERROR: ${r.error}`] : columns.map(([, get]) => String(get(r) ?? "")),
  );
  const widths = columns.map(([title], i) => Math.max(title.length, ...cells.filter((c) => c.length === columns.length).map((c) => c[i].length)));
  const line = (c) => "   " + c.map((x, i) => (columns[i][2] === "l" ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  console.log(line(columns.map(([title]) => title)));
  for (const c of cells) console.log(c.length === columns.length ? line(c) : `   ${c[0].padEnd(widths[0])}  ${c[1]}`);
}

// --- helpers --------------------------------------------------------------------------

/** Deterministic uniform [-1, 1) float32 data (a small LCG), so runs compare. */
function randomTensor(shape, seed) {
  const t = Tensor.zeros("float32", shape);
  let x = seed >>> 0;
  for (let i = 0; i < t.data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    t.data[i] = x / 2 ** 31 - 1;
  }
  return t;
}

/** Runs a program that prints one JSON object as its last line of stdout. */
function runChild(command, argv, { cwd, env = process.env, timeoutMs }) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split("\n").pop();
      try {
        const parsed = JSON.parse(last);
        if (code !== 0 && parsed.started !== false) throw new Error(`exit code ${code}`);
        resolvePromise(parsed);
      } catch {
        reject(new Error(`${command} ${argv[0]} exited with ${signal ?? code}: ${(stderr || stdout).trim().split("\n").slice(-5).join(" | ")}`));
      }
    });
  });
}

function describe(error) {
  const code = error?.code ? `${error.code}: ` : "";
  return `${code}${error?.message ?? String(error)}`.split("\n")[0];
}

function progress(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

function range(n) {
  return Array.from({ length: n }, (_, i) => i);
}

function parseArgsOrExit(config) {
  try {
    return parseArgs(config);
  } catch (error) {
    return fail(`${error.message} (--help lists the flags)`);
  }
}

function positive(name, text) {
  const value = Number(text);
  if (!(value > 0)) fail(`--${name} must be a positive number, got ${text}`);
  return value;
}

function nonNegative(name, text) {
  const value = Number(text);
  if (!(value >= 0)) fail(`--${name} must be a number >= 0, got ${text}`);
  return value;
}

function fail(message) {
  console.error(`scaling.mjs: ${message}`);
  process.exit(2);
}

function fmtRate(x) {
  if (x == null || Number.isNaN(x)) return "";
  return x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1);
}

function fmtMs(x) {
  if (x == null || Number.isNaN(x)) return "";
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

function fmtInt(x) {
  return x == null || Number.isNaN(x) ? "" : Math.round(x).toLocaleString("en-US");
}

function fmtPercent(x) {
  return x == null || Number.isNaN(x) ? "" : `${Math.round(x * 100)}%`;
}

function fmtOther(x) {
  return x == null || Number.isNaN(x) ? "" : `${x.toFixed(2)}${x > DISTURBED ? "!" : ""}`;
}

function fmtRatio(x) {
  return x == null || Number.isNaN(x) ? "" : `${x.toFixed(2)}x`;
}

await main();
