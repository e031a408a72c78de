#!/usr/bin/env node
// Where one call's time goes, phase by phase (issue 13): a zoo model in ONE Coil
// interpreter (its thread pinned to --cpu), each call timestamped on one clock
// (CLOCK_MONOTONIC: Node's process.hrtime, Python's perf_counter_ns):
//   Node -> call_object      Node's call() until the bridge's call_object runs: the
//                            submit, the interpreter taking the job, the GIL, the inputs;
//   call_object -> forward   the backend's inference mode and nn.Module.__call__;
//   forward                  the model's own forward();
//   forward -> return        the rest of __call__ and export() of the result;
//   return -> Node           converting the result, delivering it, Node's thread seeing
//                            it and the caller's await resuming;
//   between calls            on the interpreter's thread, one call_object's return to
//                            the next one's start (all of the above outside Python).
// Three ways: the same interpreter running a Python loop over call_object itself (no
// Node crossing: what plain Python pays for the bridge), and called from Node with 1 and
// 2 callers; with 2 callers again while every other thread of the process (Node's main
// thread, V8's and libuv's workers) is kept off the interpreter's CPU. With one caller
// every phase is timed; with two, the interpreter's phases.
// Also per call: the interpreter thread's page faults and context switches, and the
// hand-off's sleeps and wake-ups (handOffStats). Nothing is spawned while calls are
// timed: a fork of this process makes every page the interpreter writes next fault
// once (copy-on-write), which would be counted against the calls.
// --rounds passes, the order of the three rotated, samples pooled. Prints a table,
// writes bench-results/call-timeline.json; docs/engine.md ("Where a call's time goes,
// phase by phase") reads a run.
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, LeastLoadedScheduler, Tensor } from "@coil/core";
import { handOff, handOffStats } from "@coil/native";
import { packModel } from "@coil/runtime";

import { fail, parseFlags } from "./lib/args.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { REPO_ROOT } from "./lib/paths.mjs";
import { allowedCpus, threadCounters } from "./lib/proc.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { mean, percentile } from "./lib/stats.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";
import { MODELS, STACKS } from "./zoo/models.mjs";

await relaunchWithTunable();

const RUN_MODEL = join(REPO_ROOT, "packages", "runtime", "test", "fixtures", "zero-config", "run_model.py");
const WAYS = ["in-interpreter loop", "1 caller", "2 callers", "2 callers, rest pinned away"];

const flags = parseFlags(import.meta.url, {
  model: { type: "string", default: "deberta_v2", help: "a zoo model (tools/bench/zoo/models.mjs)" },
  calls: { type: "integer", default: 2000, help: "timed calls per way and round" },
  rounds: { type: "integer", default: 2, help: "passes over the three ways, order rotated" },
  cpu: { type: "integer", min: 0, default: () => allowedCpus()[0], defaultHelp: "the first allowed", help: "the CPU the interpreter's thread is pinned to" },
  "hand-off": { type: "string", default: "{}", help: 'the engine\'s hand-off settings for the run, as JSON (@coil/native handOff(), e.g. \'{"callerSpinUs":0}\')' },
  python: { type: "path", default: undefined, defaultHelp: "the model's stack's", help: "the Python Coil embeds" },
  out: outFlag("call-timeline"),
});
const model = MODELS.find((m) => m.name === flags.model);
if (!model) fail(`unknown model ${flags.model}; known: ${MODELS.map((m) => m.name).join(", ")}`);
const otherCpus = allowedCpus().filter((cpu) => cpu !== flags.cpu);
if (!allowedCpus().includes(flags.cpu)) fail(`--cpu ${flags.cpu} is not one this process may use (${allowedCpus().join(", ")})`);
const python = flags.python ?? STACKS[model.stack].python;
let handOffSettings;
try {
  handOffSettings = JSON.parse(flags.handOff);
} catch (error) {
  fail(`--hand-off: not JSON (${error.message})`);
}

const results = startResults({ options: { ...flags, python, out: repoRelative(flags.out) } });
console.log(`call timeline: ${model.name} (${model.stack}), ${formatMachine(results.machine)}`);

const scratch = scratchDir("coil-call-timeline");
const archive = join(scratch, `${model.name}.pt`);
progress(`packing ${model.name}`);
await packModel({ target: `${model.file}:${model.factory}`, output: archive, example: model.example, python });
const reference = await runJsonChild(python, [RUN_MODEL, model.file, model.factory, model.example, archive], { cwd: REPO_ROOT, timeoutMs: 600_000 });
const inputs = reference.inputs.map((t) => Tensor.from(t.dtype, t.shape, t.data));

const pool = await InterpreterPool.create({
  size: 1,
  python,
  backend: new CpuBackend({ threadsPerInterpreter: 1 }),
  scheduler: new LeastLoadedScheduler(),
});
const interpreter = pool.interpreters[0];
results.handOff = handOff({ ...handOff(), ...handOffSettings });
const loaded = await pool.loadArchive(archive, { eager: true });
const tid = await interpreter.eval(`__import__("os").sched_setaffinity(0, {${flags.cpu}}) or __import__("threading").get_native_id()`);

// Four stamps a call, in a preallocated array: call_object's start, forward's start and
// end (module hooks), call_object's return. The bridge looks call_object up each call.
await interpreter.exec(`
import array as _array, time as _time, coil_bridge as _bridge
_timeline = {"n": 0, "cap": 0, "stamps": _array.array("q"), "args": None}
def _timeline_arm(calls):
    _timeline.update(n=0, cap=calls, stamps=_array.array("q", bytes(32 * calls)))
def _timeline_stamp(slot):
    i = _timeline["n"]
    if i < _timeline["cap"]:
        _timeline["stamps"][4 * i + slot] = _time.perf_counter_ns()
_timeline_model = list(_bridge._objects.values())[-1]
_timeline_model.register_forward_pre_hook(lambda module, args: _timeline_stamp(1))
_timeline_model.register_forward_hook(lambda module, args, output: _timeline_stamp(2))
_timeline_call_object = _bridge.call_object
def _timed_call_object(object_id, method, args, kwargs):
    _timeline_stamp(0)
    if _timeline["args"] is None:
        _timeline["args"] = (object_id, [a.clone() if hasattr(a, "clone") else a for a in args], dict(kwargs or {}))
    try:
        return _timeline_call_object(object_id, method, args, kwargs)
    finally:
        _timeline_stamp(3)
        _timeline["n"] += 1
_bridge.call_object = _timed_call_object
def _timeline_loop(calls):
    object_id, args, kwargs = _timeline["args"]
    for _ in range(calls):
        _timed_call_object(object_id, None, args, kwargs)
`);

/** The interpreter thread's /proc counters and the hand-off's. */
function counters() {
  const hand = handOffStats();
  return { ...threadCounters(tid), sleeps: hand.jobWaitSleeps, wakeups: hand.callerWakeups };
}

/** Node-side stamps (ns) of one caller's calls: [submitted, resolved] each. */
async function callFromNode(calls, callers) {
  const node = callers === 1 ? new Float64Array(2 * calls) : null;
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < calls) {
        const i = next++;
        if (node) node[2 * i] = Number(process.hrtime.bigint());
        await loaded.call(inputs);
        if (node) node[2 * i + 1] = Number(process.hrtime.bigint());
      }
    }),
  );
  return node;
}

const samples = Object.fromEntries(WAYS.map((way) => [way, { phases: {}, wallUs: [], counters: [], forwardUs: [] }]));
const add = (way, phase, us) => (samples[way].phases[phase] ??= []).push(us);

/** Every thread of this process but the interpreter's on `cpus` (Python's os.sched_setaffinity takes a thread id). */
const pinOthers = (cpus) =>
  interpreter.eval(
    `[__import__("os").sched_setaffinity(int(t), {${cpus.join(", ")}}) for t in __import__("os").listdir("/proc/self/task") if int(t) != ${tid}] and None`,
  );

async function measure(way) {
  const calls = flags.calls;
  const pinned = way.endsWith("pinned away");
  if (pinned) await pinOthers(otherCpus);
  await interpreter.eval(`_timeline_arm(${calls})`);
  const before = counters();
  const started = process.hrtime.bigint();
  let node = null;
  if (way === "in-interpreter loop") await interpreter.eval(`_timeline_loop(${calls})`);
  else node = await callFromNode(calls, way === "1 caller" ? 1 : 2);
  const wallUs = Number(process.hrtime.bigint() - started) / 1e3 / calls;
  const after = counters();
  if (pinned) await pinOthers(allowedCpus());
  const stamps = await interpreter.eval(`_timeline["stamps"].tolist()`);
  const forward = Float64Array.from({ length: calls }, (_, i) => (stamps[4 * i + 2] - stamps[4 * i + 1]) / 1e3).sort();
  samples[way].forwardUs.push(percentile(forward, 0.5));
  for (let i = 0; i < calls; i++) {
    const [entry, forward, forwardEnd, exit] = stamps.slice(4 * i, 4 * i + 4);
    add(way, "call_object -> forward", (forward - entry) / 1e3);
    add(way, "forward", (forwardEnd - forward) / 1e3);
    add(way, "forward -> return", (exit - forwardEnd) / 1e3);
    if (i + 1 < calls) add(way, "between calls", (stamps[4 * i + 4] - exit) / 1e3);
    if (node) {
      add(way, "Node -> call_object", (entry - node[2 * i]) / 1e3);
      add(way, "return -> Node", (node[2 * i + 1] - exit) / 1e3);
    }
  }
  samples[way].wallUs.push(wallUs);
  samples[way].counters.push(Object.fromEntries(Object.keys(before).map((k) => [k, (after[k] - before[k]) / calls])));
}

// Warm: the model, Node's JIT, the hand-off's view of the call's length.
for (let i = 0; i < 200; i++) await loaded.call(inputs);
await interpreter.eval(`_timeline_arm(1)`);
for (let round = 0; round < flags.rounds; round++) {
  for (const way of WAYS.map((_, i) => WAYS[(i + round) % WAYS.length])) {
    if (way.endsWith("pinned away") && otherCpus.length === 0) continue;
    progress(`round ${round + 1}/${flags.rounds}: ${way}`);
    await measure(way);
  }
}
await pool.close();

const PHASES = ["Node -> call_object", "call_object -> forward", "forward", "forward -> return", "return -> Node", "between calls"];
const summary = (values) => {
  if (!values?.length) return null;
  const sorted = Float64Array.from(values).sort();
  return { median: percentile(sorted, 0.5), mean: mean(values), p10: percentile(sorted, 0.1), p90: percentile(sorted, 0.9) };
};
const measured = WAYS.filter((way) => samples[way].wallUs.length > 0);
const LOOP_WAY = WAYS[0];
results.ways = Object.fromEntries(
  measured.map((way) => {
    const s = samples[way];
    const counters = Object.fromEntries(Object.keys(s.counters[0]).map((k) => [k, mean(s.counters.map((c) => c[k]))]));
    // The model's own forward() against the loop's in the same round: the rounds alternate, the host drifts.
    const perRound = s.forwardUs.map((us, round) => us / samples[LOOP_WAY].forwardUs[round]);
    const forwardVsLoop = { median: percentile(Float64Array.from(perRound).sort(), 0.5), min: Math.min(...perRound), max: Math.max(...perRound) };
    return [way, { wallUsPerCall: mean(s.wallUs), phases: Object.fromEntries(PHASES.map((p) => [p, summary(s.phases[p])])), counters, forwardVsLoop }];
  }),
);

const us = (x) => (x === undefined || x === null ? "" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const cell = (way, phase) => {
  const s = results.ways[way].phases[phase];
  return s ? `${us(s.median)} / ${us(s.mean)}` : "";
};
console.log(`\n${model.name}, interpreter on CPU ${flags.cpu}: µs a call, median / mean (${flags.rounds} x ${flags.calls} calls each)`);
printTable(
  [["phase", (phase) => phase, "l"], ...measured.map((way) => [way, (phase) => cell(way, phase)])],
  PHASES,
);
console.log("");
const rows = [
  ["a call, all told (µs)", (way) => us(results.ways[way].wallUsPerCall)],
  ["forward, x the loop's (range)", (way) => ((f) => `${f.median.toFixed(3)} (${f.min.toFixed(2)}-${f.max.toFixed(2)})`)(results.ways[way].forwardVsLoop)],
  ["thread's page faults", (way) => results.ways[way].counters.minflt.toFixed(3)],
  ["thread slept / preempted", (way) => `${results.ways[way].counters.voluntary.toFixed(3)} / ${results.ways[way].counters.involuntary.toFixed(3)}`],
  ["hand-off sleeps / wake-ups", (way) => `${results.ways[way].counters.sleeps.toFixed(3)} / ${results.ways[way].counters.wakeups.toFixed(3)}`],
];
printTable([["per call", (row) => row[0], "l"], ...measured.map((way) => [way, (row) => row[1](way)])], rows);
writeResults(flags.out, results);
