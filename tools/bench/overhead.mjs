#!/usr/bin/env node
// Where a Coil call's extra time goes (issue 13): the same model, like for like, in
//   plain       plain CPython (the same --python), a closed loop on one thread;
//   coil loop   ONE Coil interpreter running that same loop itself (overhead/loop.py):
//               no Node crossing, so what differs from plain is what the interpreter's
//               namespace costs per op;
//   coil node   the same interpreter called from Node's closed loop (1 and 2 callers):
//               the whole crossing (conversion, queue, thread hand-offs, completion);
//               and "empty call", the same crossing with the same input but no model;
//   plain, other CPU busy   plain CPython again while another process spins on a CPU
//               (--no-neighbour: not measured): Coil always has Node's thread beside
//               its interpreter, and on this VM a busy neighbour slows the model.
// Each with 1 torch thread, for each candidate fix (--variants: base; gc-freeze,
// gc.freeze() after the model is built; mallopt, M_TRIM/M_MMAP thresholds raised on
// the interpreter's libc; gc-off, a diagnostic; no-hand-off, the engine's batching of
// results and spinning off -- what the hand-off between the threads saves; no-caller-spin,
// only Node's polling off; fixed-spin, interpreters spin spinUs only, not through
// their usual wait for a job; python-tensors, the bridge's Python make_tensor and
// _export_tensor instead of the engine's DLPack conversions). Reports calls/s, µs a call, the ratio
// to plain Python, and per call the minor page faults and context switches of the
// thread that ran the model -- voluntary (it slept) and involuntary (preempted) -- and
// of the whole process and Node's main thread.
//
// Each configuration runs --rounds times, plain and Coil interleaved, and each method's
// median round is shown with the range. Prints a table and writes
// bench-results/overhead.json. docs/engine.md ("Where a
// call's time goes") records a run and the profile beside it.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";
import { handOff } from "@coil/native";

import { fail, parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { describeError, progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { BENCH_DIR, REPO_ROOT } from "./lib/paths.mjs";
import { threadCounters } from "./lib/proc.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { printTable } from "./lib/table.mjs";
import { deterministicTensor } from "./lib/tensor.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();

const LOOP = join(BENCH_DIR, "overhead", "loop.py");
const MODELS = ["mlp", "deep"];
const VARIANTS = ["base", "no-hand-off", "no-caller-spin", "fixed-spin", "python-tensors", "gc-freeze", "gc-off", "mallopt"];
// The engine's hand-off between Node's thread and the interpreter's all off: each
// result wakes Node's thread, nothing spins (@coil/native handOff()).
const HAND_OFF_VARIANTS = {
  "no-hand-off": { batchWindowUs: 0, spinUs: 0, callerSpinUs: 0 },
  // Node's thread sleeps until woken instead of polling beside the model: no busy
  // neighbour for the interpreter's CPU, a wake-up a result instead.
  "no-caller-spin": { callerSpinUs: 0 },
  // An idle interpreter spins spinUs only, not through its usual wait for a job: with
  // one caller it sleeps whenever Node's turn between two calls outlasts spinUs.
  "fixed-spin": { maxSpinUs: 0 },
};
// Run in the interpreter before the model: tensors cross as before the engine made
// and read them over DLPack (coil_bridge.NATIVE_TENSORS).
const BRIDGE_VARIANTS = { "python-tensors": "import coil_bridge\ncoil_bridge.NATIVE_TENSORS = None" };
const pythonVariant = (variant) => (variant in HAND_OFF_VARIANTS || variant in BRIDGE_VARIANTS ? "base" : variant);

const flags = parseFlags(import.meta.url, {
  duration: { type: "number", positive: true, default: 3, help: "measured seconds per configuration" },
  warmup: { type: "number", default: 1, help: "warm-up seconds before each measurement" },
  models: { type: "list", default: MODELS, defaultHelp: MODELS.join(","), help: "which models (overhead/loop.py)" },
  // mallopt stays set on the interpreter's libc once applied: keep it last.
  variants: { type: "list", default: ["base", "no-hand-off"], defaultHelp: "base,no-hand-off", help: `candidate fixes, in order (${VARIANTS.join(", ")})` },
  rounds: { type: "integer", default: 3, help: "rounds per configuration (the median is reported)" },
  neighbour: { type: "boolean", default: true, help: "also plain Python with another process spinning on a CPU (the ceiling one Coil interpreter has on 2 CPUs)" },
  callers: { type: "integers", default: [1, 2, 16], defaultHelp: "1,2,16", help: "Node callers for the coil node rows" },
  python: {
    type: "path",
    default: join(REPO_ROOT, ".venv-torch2", "bin", "python"),
    defaultHelp: ".venv-torch2/bin/python",
    help: "the Python that Coil embeds and the baseline runs",
  },
  out: outFlag("overhead"),
});
for (const m of flags.models) if (!MODELS.includes(m)) fail(`unknown model ${m}; known: ${MODELS.join(", ")}`);
for (const v of flags.variants) if (!VARIANTS.includes(v)) fail(`unknown variant ${v}; known: ${VARIANTS.join(", ")}`);
if (flags.variants.includes("mallopt") && flags.variants.at(-1) !== "mallopt") fail("mallopt stays set: list it last");

const results = startResults({ options: { ...flags, out: repoRelative(flags.out) }, rows: [] });
const loadBefore = loadavg();

// --- /proc counters of the whole process (a thread's: lib/proc.mjs threadCounters) ---------

function processMinflt() {
  const stat = readFileSync("/proc/self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

// --- the configurations -------------------------------------------------------------------

async function plain(model, variant) {
  const argv = [LOOP, "--model", model, "--variant", pythonVariant(variant), "--duration", String(flags.duration), "--warmup", String(flags.warmup)];
  return runJsonChild(flags.python, argv, { cwd: REPO_ROOT, timeoutMs: 120_000 + (flags.duration + flags.warmup) * 4e3 });
}

/** Runs `body` while another process spins on a CPU: what plain Python runs at when,
 * as in Coil, another thread (Node's) is busy beside it. On a VM whose vCPUs share a
 * core, a busy neighbour slows the model (docs/engine.md, "What still costs"). */
async function withBusyNeighbour(body) {
  const spinner = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return await body();
  } finally {
    spinner.kill("SIGKILL");
  }
}

/** One Coil interpreter holding overhead/loop.py's Bench for `model` under `variant`;
 * `body(bench, tid)` measures it. */
async function withBench(model, variant, body) {
  let pool;
  try {
    pool = await InterpreterPool.create({ size: 1, backend: new CpuBackend(), python: flags.python });
    results.machine.backend ??= pool.backendInfo[0];
    results.handOff ??= handOff();
    if (variant in HAND_OFF_VARIANTS) handOff(HAND_OFF_VARIANTS[variant]);
    if (variant in BRIDGE_VARIANTS) await Promise.all(pool.interpreters.map((i) => i.exec(BRIDGE_VARIANTS[variant])));
    const bench = pool.replicate({ file: LOOP, factory: "Bench", args: [model, pythonVariant(variant), 1] });
    await bench.materialize();
    results.benchInfo ??= await bench.callMethod("info");
    const [tid] = await Promise.all(pool.interpreters.map((i) => i.eval("__import__('threading').get_native_id()")));
    const rows = await body(bench, tid);
    await bench.callMethod("close");
    return rows;
  } catch (error) {
    return [{ method: "coil", error: describeError(error) }];
  } finally {
    if (results.handOff) handOff(results.handOff);
    await pool?.close();
  }
}

/** One round: the loop inside the interpreter, then Node's loops. */
async function coilRound(bench, tid) {
  const rows = [{ method: "coil loop", ...(await bench.callMethod("measure", [flags.duration, flags.warmup])) }];
  const x = deterministicTensor([8, 64], 1);
  for (const callers of flags.callers) {
    rows.push(await nodeLoop(`coil node ×${callers}`, () => bench.call([x]), callers, tid));
    // The same crossing with the same input and no model: what the hand-offs cost.
    rows.push(await nodeLoop(`  empty call ×${callers}`, () => bench.callMethod("nothing", [x]), callers, tid));
  }
  return rows;
}

/** Per method, the round with the median calls/s, and the range over rounds. */
function medianRows(rounds) {
  const byMethod = new Map();
  for (const r of rounds.flat()) byMethod.set(r.method, [...(byMethod.get(r.method) ?? []), r]);
  return [...byMethod.values()].map((rows) => {
    if (rows.some((r) => r.error)) return rows.find((r) => r.error);
    const sorted = [...rows].sort((p, q) => p.callsPerSecond - q.callsPerSecond);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    return { ...median, rounds: rows.length, minCallsPerSecond: sorted[0].callsPerSecond, maxCallsPerSecond: sorted.at(-1).callsPerSecond };
  });
}

/** Node's closed loop over `call` with `callers` callers, and the /proc counters of
 * the interpreter's thread `tid`, Node's main thread and the process, per call. */
async function nodeLoop(method, call, callers, tid) {
  const before = { thread: threadCounters(tid), main: threadCounters(process.pid), process: processMinflt() };
  const window = { warmupMs: flags.warmup * 1e3, durationMs: flags.duration * 1e3 };
  // Counters over warm-up + window: the warm-up's calls are counted too.
  let total = 0;
  const stats = await closedLoop(
    () => {
      total += 1;
      return call();
    },
    { concurrency: callers, tids: [tid], ...window },
  );
  const after = { thread: threadCounters(tid), main: threadCounters(process.pid), process: processMinflt() };
  return {
    method,
    callsPerSecond: stats.callsPerSecond,
    usPerCall: 1e6 / stats.callsPerSecond,
    threadCpu: stats.interpreterBusy,
    mainThreadCpu: stats.mainThreadBusy,
    minorFaultsPerCall: (after.thread.minflt - before.thread.minflt) / total,
    voluntarySwitchesPerCall: (after.thread.voluntary - before.thread.voluntary) / total,
    involuntarySwitchesPerCall: (after.thread.involuntary - before.thread.involuntary) / total,
    mainVoluntarySwitchesPerCall: (after.main.voluntary - before.main.voluntary) / total,
    mainInvoluntarySwitchesPerCall: (after.main.involuntary - before.main.involuntary) / total,
    processMinorFaultsPerCall: (after.process - before.process) / total,
    otherCpu: stats.otherCpu,
  };
}

// --- run ---------------------------------------------------------------------------

console.log(formatMachine(results.machine));
console.log(`python: ${flags.python}; load average at start ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);
for (const model of flags.models) {
  for (const variant of flags.variants) {
    // Rounds interleave plain and Coil, so that a burst of other work on the shared
    // machine lands on both; each method's median round is reported.
    const rounds = await withBench(model, variant, async (bench, tid) => {
      const all = [];
      for (let round = 1; round <= flags.rounds; round++) {
        progress(`${model}, ${variant}, round ${round}/${flags.rounds}`);
        let plainRow;
        try {
          plainRow = { method: "plain", ...(await plain(model, variant)) };
        } catch (error) {
          plainRow = { method: "plain", error: describeError(error) };
        }
        const rows = [plainRow];
        if (flags.neighbour) {
          let busyRow;
          try {
            busyRow = { method: "  plain, other CPU busy", ...(await withBusyNeighbour(() => plain(model, variant))) };
          } catch (error) {
            busyRow = { method: "  plain, other CPU busy", error: describeError(error) };
          }
          rows.push(busyRow);
        }
        all.push([...rows, ...(await coilRound(bench, tid))]);
      }
      return all;
    });
    const rows = medianRows(rounds);
    const base = rows.find((r) => r.method === "plain") ?? {};
    for (const r of rows) {
      r.model = model;
      r.variant = variant;
      const empty = r.method.includes("empty");
      r.ratio = !empty && base.callsPerSecond && r.callsPerSecond ? r.callsPerSecond / base.callsPerSecond : null;
      r.extraUs = !empty && base.usPerCall && r.usPerCall ? r.usPerCall - base.usPerCall : null;
      results.rows.push(r);
    }
  }
}
results.loadAverageAtEnd = loadavg();

const n = (digits) => (v) => (v === undefined || v === null ? "" : v.toFixed(digits));
const cell = (get, fmt) => (r) => fmt(get(r));
printTable(
  [
    ["model", (r) => r.model, "l"],
    ["variant", (r) => r.variant, "l"],
    ["method", (r) => r.method, "l"],
    ["calls/s", cell((r) => r.callsPerSecond, n(0))],
    ["range", (r) => (r.rounds > 1 ? `${r.minCallsPerSecond.toFixed(0)}–${r.maxCallsPerSecond.toFixed(0)}` : ""), "l"],
    ["µs/call", cell((r) => r.usPerCall, n(1))],
    ["× plain", cell((r) => r.ratio, n(2))],
    ["+µs", cell((r) => r.extraUs, n(1))],
    ["thread cpu", cell((r) => r.threadCpu, n(2))],
    ["main cpu", cell((r) => r.mainThreadCpu, n(2))],
    ["minflt/call", cell((r) => r.minorFaultsPerCall, n(3))],
    ["proc minflt/call", cell((r) => r.processMinorFaultsPerCall, n(3))],
    ["vol/call", cell((r) => r.voluntarySwitchesPerCall, n(2))],
    ["invol/call", cell((r) => r.involuntarySwitchesPerCall, n(2))],
    ["main vol", cell((r) => r.mainVoluntarySwitchesPerCall, n(2))],
    ["main invol", cell((r) => r.mainInvoluntarySwitchesPerCall, n(2))],
  ],
  results.rows.map((r) => (r.error ? { ...r, label: `${r.model} ${r.variant} ${r.method}` } : r)),
  { rule: true },
);
console.log(`load average at end ${results.loadAverageAtEnd.map((l) => l.toFixed(2)).join(" ")}`);
writeResults(flags.out, results);
