#!/usr/bin/env node
// Where one thread's time goes while Coil serves calls (issue 13; docs/engine.md,
// "Results built in one JavaScript call"): N interpreters, C callers in closed loops
// on a target (lib/call-target.mjs), and `perf record` of one thread -- Node's main
// thread, or the first interpreter's -- for --seconds, with call graphs and Node's
// JIT symbols (the script runs itself under --perf-basic-prof). Prints the thread's
// CPU a call, its samples by library, the functions with the most samples under them
// (inclusive), and, for each --under function, what it calls directly; writes a summary
// to bench-results/thread-profile.json and keeps perf's data beside it for
// `perf report -i`. Needs perf (Debian: linux-perf) and the permission to sample.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, LeastLoadedScheduler } from "@coil/core";

import { fail, parseFlags } from "./lib/args.mjs";
import { openTarget, prepareTarget, TARGET_FLAGS } from "./lib/call-target.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { startPerf } from "./lib/perf.mjs";
import { progress } from "./lib/log.mjs";
import { formatMachine } from "./lib/machine.mjs";
import { outFlag, repoRelative, startResults, writeResults } from "./lib/results.mjs";
import { scratchDir } from "./lib/scratch.mjs";
import { printTable } from "./lib/table.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

if (!process.execArgv.includes("--perf-basic-prof")) {
  const child = spawnSync(process.execPath, ["--perf-basic-prof", ...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(child.status ?? 1);
}
await relaunchWithTunable();

const flags = parseFlags(import.meta.url, {
  interpreters: { type: "integer", default: 2, help: "N: the pool's interpreters" },
  callers: { type: "integer", default: 4, help: "C: callers in closed loops" },
  ...TARGET_FLAGS,
  thread: { type: "string", default: "main", help: "the thread to sample: main (Node's) or interpreter (the first one's)" },
  seconds: { type: "number", positive: true, default: 6, help: "sampled seconds" },
  frequency: { type: "integer", default: 2999, help: "samples a second" },
  top: { type: "integer", default: 25, help: "functions listed" },
  under: { type: "list", default: [], help: "functions (a part of their name) to break down by what they call directly" },
  out: outFlag("thread-profile"),
});
if (!["main", "interpreter"].includes(flags.thread)) fail(`--thread must be main or interpreter, got ${flags.thread}`);

const target = await prepareTarget(flags, scratchDir("coil-thread-profile"));
const pool = await InterpreterPool.create({
  size: flags.interpreters,
  python: target.python,
  backend: new CpuBackend({ threadsPerInterpreter: 1 }),
  scheduler: new LeastLoadedScheduler(),
});
const data = flags.out.replace(/\.json$/, "") + ".perf.data";
const results = startResults({ options: { ...flags, out: repoRelative(flags.out) }, target: target.name, perfData: repoRelative(data) });
console.log(`${flags.thread} thread of ${target.name}, ${flags.interpreters} interpreters, ${flags.callers} callers; ${formatMachine(results.machine)}`);
try {
  const { object, inputs } = await openTarget(pool, target);
  const tids = await Promise.all(pool.interpreters.map((i) => i.eval(`__import__("threading").get_native_id()`)));
  const tid = flags.thread === "main" ? process.pid : tids[0];
  const loop = (seconds) => closedLoop(() => object.call(inputs), { concurrency: flags.callers, durationMs: seconds * 1e3, tids });
  progress("warming up");
  await loop(1);
  const perf = await startPerf(["record", "-g", "-F", String(flags.frequency), "-t", String(tid), "-o", data]);
  progress(`sampling for ${flags.seconds} s`);
  const stats = await loop(flags.seconds);
  const { code, stderr } = await perf.stop();
  if (code !== 0 && code !== null) throw new Error(`perf record failed (exit ${code}): ${stderr.trim()}`);
  // An interpreter's share of the calls: 1/N of them (the scheduler spreads them).
  const [busy, calls] = flags.thread === "main" ? [stats.mainThreadBusy, stats.calls] : [stats.interpreterBusy, stats.calls / flags.interpreters];
  results.calls = stats.calls;
  results.callsPerSecond = stats.callsPerSecond;
  results.threadCpuUsPerCall = busy === null ? null : (busy * stats.seconds * 1e6) / calls;
  Object.assign(results, summarize(data));
} finally {
  await pool.close();
}

console.log(`${Math.round(results.callsPerSecond)} calls/s; the thread's CPU a call: ${results.threadCpuUsPerCall?.toFixed(1) ?? "?"} µs; ${results.samples} samples`);
const percent = (x) => `${(100 * x).toFixed(1)}%`;
printTable([["library", (r) => r.name, "l"], ["samples", (r) => percent(r.share)]], results.libraries);
printTable([["function (inclusive)", (r) => r.name.slice(0, 110), "l"], ["samples", (r) => percent(r.share)]], results.functions);
for (const { name, share, callees } of results.under) {
  console.log(`\n${name}: ${percent(share)} of the samples; what it calls directly`);
  printTable([["callee", (r) => r.name.slice(0, 110), "l"], ["samples", (r) => percent(r.share)]], callees);
}
writeResults(flags.out, results);

/** Samples by library, the functions with the most samples under them, and the
 * --under functions' direct callees, from `perf script`'s stacks; shares of all the
 * thread's samples. */
function summarize(file) {
  const text = execFileSync("perf", ["script", "-i", file, "-F", "ip,sym,dso"], { maxBuffer: 1 << 30, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const stacks = text
    .split("\n\n")
    .map((block) =>
      block
        .split("\n")
        .map((line) => /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line))
        .filter(Boolean)
        .map(([, symbol, dso]) => ({ symbol, dso: /^perf-\d+\.map$/.test(dso.split("/").pop()) ? "JavaScript (JIT)" : dso.split("/").pop() })),
    )
    .filter((frames) => frames.length > 0);
  const count = (keys) => {
    const counts = new Map();
    for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1]).map(([name, n]) => ({ name, share: n / stacks.length }));
  };
  const libraries = count(stacks.map((frames) => frames[0].dso)).slice(0, 12);
  const named = (frames) => frames.map((f) => f.symbol).filter((symbol) => symbol !== "[unknown]");
  const functions = count(stacks.flatMap((frames) => [...new Set(named(frames))])).slice(0, flags.top);
  const under = flags.under.map((part) => {
    const callees = [];
    let hits = 0;
    for (const frames of stacks) {
      const at = frames.findLastIndex((f) => f.symbol.includes(part)); // the outermost, for recursion
      if (at < 0) continue;
      hits++;
      callees.push(at === 0 ? "(itself)" : frames[at - 1].symbol);
    }
    return { name: part, share: hits / stacks.length, callees: count(callees).slice(0, 12) };
  });
  return { samples: stacks.length, libraries, functions, under };
}
