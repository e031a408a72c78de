#!/usr/bin/env node
// The system calls a Coil call costs each thread (issue 13; docs/engine.md, "The
// wake-up without a lock"). On this VM a kernel entry on an interpreter's thread costs
// its model's next call far more than the entry's own microsecond (no PCID: the TLB
// is flushed), so the hand-off between Node's thread and the interpreters is judged by
// how many it makes -- a count, which does not drift with the host's speed as
// timings do. N interpreters, C callers in closed loops, on an object that spins
// --work-us in Python and returns a small dict of tensors (a model's call without its
// memory traffic), on a zoo model (--model) or on one of overhead/loop.py's
// (--loop-model): lib/call-target.mjs; `perf stat` counts each thread's
// system calls, futex calls among them, for --seconds (tracepoints: perf, and the
// permission to read them). --addons a.node,b.node measures builds side by side: a
// child process each (COIL_NATIVE_ADDON), alternating, --rounds each; by default this
// checkout's build. Per build, medians over rounds: calls/s, Node's main thread's CPU
// a call, and per call the main thread's and the interpreters' system calls. Prints a
// table, writes bench-results/syscalls.json.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, LeastLoadedScheduler } from "@coil/core";

import { parseFlags } from "./lib/args.mjs";
import { openTarget, prepareTarget, TARGET_FLAGS } from "./lib/call-target.mjs";
import { runJsonChild } from "./lib/child.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { startPerf } from "./lib/perf.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { REPO_ROOT } from "./lib/paths.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { percentile } from "./lib/stats.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

const SCRIPT = fileURLToPath(import.meta.url);
const flags = parseFlags(import.meta.url, {
  interpreters: { type: "integer", default: 2, help: "N: the pool's interpreters" },
  callers: { type: "integer", default: 4, help: "C: callers in closed loops" },
  ...TARGET_FLAGS,
  seconds: { type: "number", positive: true, default: 3, help: "counted seconds per run" },
  rounds: { type: "integer", default: 3, help: "runs per build, the builds alternating" },
  addons: { type: "list", default: [], defaultHelp: "this checkout's build", help: "the builds to compare: paths of coil_native.node (each beside its libcoil_namespace.so)" },
  child: { type: "string", default: undefined, hidden: true },
  out: outFlag("syscalls"),
});

if (flags.child) {
  console.log(JSON.stringify(await measure(JSON.parse(flags.child))));
  process.exit(0);
}

// --- the parent: what to call, then the builds in turn -------------------------------------

const addons = flags.addons.length ? flags.addons.map((a) => resolve(a)) : [null];
const target = { ...(await prepareTarget(flags, scratchDir("coil-syscalls"))), interpreters: flags.interpreters, callers: flags.callers, seconds: flags.seconds };

const results = startResults({ options: { ...flags, addons: addons.map((a) => a ?? "build"), out: repoRelative(flags.out) }, runs: [] });
console.log(`system calls a call: ${target.name}, ${flags.interpreters} interpreters, ${flags.callers} callers; ${formatMachine(results.machine)}`);
for (let round = 0; round < flags.rounds; round++) {
  for (const addon of addons) {
    progress(`round ${round + 1}/${flags.rounds}: ${addon ?? "this checkout's build"}`);
    const env = { ...process.env };
    if (addon) env.COIL_NATIVE_ADDON = addon;
    else delete env.COIL_NATIVE_ADDON;
    const run = await runJsonChild(process.execPath, [SCRIPT, "--child", JSON.stringify(target)], { cwd: REPO_ROOT, env, timeoutMs: 600_000 });
    results.runs.push({ addon: addon ?? "build", round, ...run });
  }
}

const median = (runs, key) => percentile(runs.map((r) => r[key]).sort((a, b) => a - b), 0.5);
const KEYS = ["callsPerSecond", "mainCpuUs", "mainSyscalls", "mainFutex", "interpreterSyscalls", "interpreterFutex"];
results.builds = [...new Set(results.runs.map((r) => r.addon))].map((addon) => {
  const runs = results.runs.filter((r) => r.addon === addon);
  return { addon, ...Object.fromEntries(KEYS.map((k) => [k, median(runs, k)])) };
});
const fixed = (digits) => (x) => x.toFixed(digits);
printTable(
  [
    ["build", (b) => b.addon, "l"],
    ["calls/s", (b) => Math.round(b.callsPerSecond)],
    ["main thread CPU µs/call", (b) => fixed(1)(b.mainCpuUs)],
    ["main: syscalls/call", (b) => fixed(3)(b.mainSyscalls)],
    ["main: futex/call", (b) => fixed(3)(b.mainFutex)],
    ["interpreters: syscalls/call", (b) => fixed(3)(b.interpreterSyscalls)],
    ["interpreters: futex/call", (b) => fixed(3)(b.interpreterFutex)],
  ],
  results.builds,
);
writeResults(flags.out, results);

// --- a child: one build, one run ----------------------------------------------------------

async function measure(target) {
  await relaunchWithTunable();
  const pool = await InterpreterPool.create({
    size: target.interpreters,
    python: target.python,
    backend: new CpuBackend({ threadsPerInterpreter: 1 }),
    scheduler: new LeastLoadedScheduler(),
  });
  try {
    const { object, inputs } = await openTarget(pool, target);
    const loop = (seconds) => closedLoop(() => object.call(inputs), { concurrency: target.callers, durationMs: seconds * 1e3 });
    await loop(1); // warm: the model, Node's JIT, the hand-off's view of a call's length
    const interpreterTids = await Promise.all(pool.interpreters.map((i) => i.eval(`__import__("threading").get_native_id()`)));
    const counts = join(scratchDir("coil-syscalls-stat"), "stat.csv");
    const perf = await startPerf(["stat", "-x", ",", "--per-thread", "-e", "raw_syscalls:sys_enter,syscalls:sys_enter_futex", "-p", String(process.pid), "-o", counts]);
    const { calls, seconds, callsPerSecond, mainThreadBusy } = await loop(target.seconds);
    const { code, stderr: perfError } = await perf.stop(); // perf stat writes its counts when interrupted
    const perThread = {};
    for (const line of readFileSync(counts, "utf8").split("\n")) {
      const [thread, value, , event] = line.split(",");
      if (!event || !/^\d+$/.test(value)) continue;
      const tid = Number(thread.split("-").pop());
      (perThread[tid] ??= {})[event.includes("futex") ? "futex" : "all"] = Number(value);
    }
    if (!perThread[process.pid]) throw new Error(`perf counted nothing (exit ${code}): ${perfError.trim() || "no output"}`);
    // perf counted a little longer than the loop's window, the threads idle or finishing
    // the calls still in flight: a few calls' worth at most.
    const perCall = (tids, key) => tids.reduce((sum, tid) => sum + (perThread[tid]?.[key] ?? 0), 0) / calls;
    return {
      calls,
      callsPerSecond,
      mainCpuUs: (mainThreadBusy * seconds * 1e6) / calls,
      mainSyscalls: perCall([process.pid], "all"),
      mainFutex: perCall([process.pid], "futex"),
      interpreterSyscalls: perCall(interpreterTids, "all"),
      interpreterFutex: perCall(interpreterTids, "futex"),
    };
  } finally {
    await pool.close();
  }
}
